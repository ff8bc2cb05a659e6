import assert from 'assert';
import type { Span } from 'opentracing';
import { getCurrentSpan, installPatches, spanInContext, suppressInstrumentation, uninstallAllPatches } from '../src';
import { wrappedMethods } from '../src/hooks/redis';
import { patchModuleAs } from '../src/patcher';
import { CANARY } from './helpers/canary';
import { describeClientContract, type CallForm } from './helpers/contract';
import { REDIS, uniqueName } from './helpers/db';
import { assertUnhandledNope, redisSpans, VERSIONS, type NodeRedisVersion } from './helpers/node-redis';
import { logs, parentId, spanId, tag, tags, useTracing, waitFor } from './helpers/tracing';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Client = any;
type Version = NodeRedisVersion;

const OPTIONS = { socket: { host: REDIS.host, port: REDIS.port } };

async function connected(version: Version, options: Record<string, unknown> = {}): Promise<Client> {
  const client = version.redis().createClient({ ...OPTIONS, ...options });
  client.on('error', () => undefined);
  await suppressInstrumentation(() => client.connect());
  return client;
}

/** A promise that calls `observe` from its continuation, as the contract kit asks. */
function observed(p: Promise<unknown>, observe: () => void): Promise<unknown> {
  return p.then(
    (v) => {
      observe();
      return v;
    },
    (e: unknown) => {
      observe();
      throw e;
    },
  );
}

for (const version of VERSIONS) {
  const prefix = uniqueName(`ot_noderedis${version.major}`);
  const key = `${prefix}:k`;
  let client: Client;
  let pool: Client;

  const forms: CallForm[] = [
    { name: 'client.get(key)', operationName: 'redis:GET', run: (o) => observed(client.get(key), o) },
    { name: 'client.GET(key)', operationName: 'redis:GET', run: (o) => observed(client.GET(key), o) },
    { name: 'client.set(key, value)', operationName: 'redis:SET', run: (o) => observed(client.set(key, CANARY), o) },
    { name: 'client.sendCommand([...])', operationName: 'redis:GET', run: (o) => observed(client.sendCommand(['GET', key]), o) },
    {
      name: 'client.sendCommand([unknown command]) fails',
      operationName: 'redis:NOPE',
      fails: true,
      run: (o) => observed(client.sendCommand(['NOPE', key, CANARY]), o),
    },
    { name: 'client.multi().set().get().exec()', operationName: 'redis:MULTI', run: (o) => observed(client.multi().set(key, CANARY).get(key).exec(), o) },
    {
      name: 'client.multi().set().get().execAsPipeline()',
      operationName: 'redis:PIPELINE',
      run: (o) => observed(client.multi().set(key, CANARY).get(key).execAsPipeline(), o),
    },
    {
      name: 'client.subscribe(channel, listener) then unsubscribe',
      operationName: /^redis:(UN)?SUBSCRIBE$/,
      spans: 2,
      run: async (o) => {
        const sub = await suppressInstrumentation(async () => {
          const s = client.duplicate();
          s.on('error', () => undefined);
          await s.connect();
          return s;
        });
        try {
          const listener = (): void => undefined;
          await observed(sub.subscribe(`${prefix}:ch`, listener), o);
          await observed(sub.unsubscribe(`${prefix}:ch`, listener), o);
        } finally {
          await suppressInstrumentation(() => sub.quit());
        }
      },
    },
    version.major === 4
      ? { name: 'client.executeIsolated(c => c.get(key))', operationName: 'redis:GET', run: (o) => observed(client.executeIsolated((c: Client) => c.get(key)), o) }
      : { name: 'pool.get(key)', operationName: 'redis:GET', run: (o) => observed(pool.get(key), o) },
  ];

  describe(`redis patch (${version.label})`, () => {
    before(() => {
      version.redis(); // loads its @redis/client copy
    });

    describeClientContract({
      patch: 'redis',
      callForms: forms,
      before: async () => {
        patchModuleAs('@redis/client', version.core());
        client = await connected(version);
        if (version.major !== 4) {
          pool = version.redis().createClientPool(OPTIONS);
          pool.on('error', () => undefined);
          await suppressInstrumentation(() => pool.connect());
        }
      },
      after: async () => {
        await suppressInstrumentation(async () => {
          await client.del(key);
          await client.quit();
          if (pool) await pool.close();
        });
      },
      wrapped: () => wrappedMethods(version.core()),
      resolvedPath:
        version.major === 6 ? { module: '@redis/client', probe: '(m) => [[m.RedisClient.prototype, "sendCommand"], [m.RedisClient.prototype, "_executeMulti"]]' } : undefined,
    });
  });
}

for (const version of VERSIONS) {
  describe(`redis patch (${version.label}): node-redis specifics`, () => {
    const t = useTracing(['redis']);
    const prefix = uniqueName(`ot_noderedis${version.major}`);
    let client: Client;

    before(async () => {
      version.redis();
      patchModuleAs('@redis/client', version.core());
      client = await connected(version);
    });
    after(async () => {
      await suppressInstrumentation(async () => {
        for (const k of await client.keys(`${prefix}*`)) await client.del(k);
        await client.quit();
      });
    });

    it('tags a command as the contract asks, values hidden', async () => {
      const parent = t.tracer.startSpan('parent');
      await spanInContext(parent, () => client.hSet(`${prefix}:h`, 'field', CANARY));
      parent.finish();
      const [span] = redisSpans(t);
      assert.deepStrictEqual(tags(span), {
        'span.kind': 'client',
        component: 'redis',
        'db.type': 'redis',
        'db.instance': '0',
        'db.statement': `HSET ${prefix}:h [2 other arguments]`,
        'peer.ipv4': REDIS.host,
        'peer.port': REDIS.port,
      });
      assert.strictEqual(span.operationName, 'redis:HSET');
      assert.strictEqual(parentId(span), spanId(parent));
    });

    it('AUTH: no argument recorded; an unknown command: the arguments Redis quotes are not logged', async () => {
      await client.sendCommand(['AUTH', 'someone', CANARY]).catch(() => undefined);
      await client.sendCommand(['NOPE', `${prefix}:x`, CANARY]).catch(() => undefined);
      const [auth, nope] = redisSpans(t);
      assert.strictEqual(tag(auth, 'db.statement'), 'AUTH');
      assert.strictEqual(tag(auth, 'error'), true);
      assert.strictEqual(tag(nope, 'db.statement'), `NOPE ${prefix}:x [1 other argument]`);
      const message = logs(nope).find((l) => l.event === 'error')?.message;
      assert.ok(typeof message === 'string' && message.startsWith("ERR unknown command 'NOPE'") && !message.includes('args beginning'), String(message));
    });

    it('a client.sendCommand() rejection nobody handles stays unhandled, reported for node-redis\' own promise', async () => {
      await assertUnhandledNope(t, () => client.sendCommand(['NOPE', `${prefix}:x`]));
    });

    it('module commands (client.json.get) are traced', async () => {
      // The local Redis has no RedisJSON: the command fails, and is traced as such.
      const err = await client.json.get(`${prefix}:json`).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof Error);
      const spans = redisSpans(t);
      assert.deepStrictEqual(spans.map((s) => `${s.operationName} ${tag(s, 'db.statement')} ${tag(s, 'error')}`), [`redis:JSON.GET JSON.GET ${prefix}:json true`]);
    });

    it('the handshake (HELLO/AUTH, SELECT, CLIENT SETNAME/SETINFO) is not traced; db.instance is the selected database', async () => {
      const parent = t.tracer.startSpan('parent');
      const other = await spanInContext(parent, async () => {
        const c = version.redis().createClient({ ...OPTIONS, database: 3, name: `${prefix}-name` });
        c.on('error', () => undefined);
        await c.connect();
        await c.get(`${prefix}:db3`);
        return c;
      });
      parent.finish();
      await other.quit();
      const spans = redisSpans(t);
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:GET']);
      assert.strictEqual(tag(spans[0], 'db.instance'), '3');
    });

    it('auto-pipelined commands (same tick): one span each, under their own parents', async () => {
      const parents = [0, 1, 2].map((i) => t.tracer.startSpan(`p${i}`));
      await Promise.all(parents.map((p, i) => spanInContext(p, () => client.get(`${prefix}:auto${i}`))));
      for (const p of parents) p.finish();
      const spans = redisSpans(t);
      assert.strictEqual(spans.length, 3);
      assert.deepStrictEqual(spans.map((s) => parentId(s)).sort(), parents.map((p) => spanId(p)).sort());
    });

    it('MULTI: one span with the batch statement; a failed command in it marks the span', async () => {
      await client.set(`${prefix}:str`, 'x');
      t.clear();
      const err = await client
        .multi()
        .set(`${prefix}:m`, CANARY)
        .incr(`${prefix}:str`)
        .exec()
        .then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof Error);
      const spans = redisSpans(t);
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:MULTI']);
      assert.strictEqual(tag(spans[0], 'db.statement'), `SET ${prefix}:m ...; INCR ${prefix}:str`);
      assert.strictEqual(tag(spans[0], 'error'), true);
    });

    it('pub/sub: a message runs the listener in the context it was registered in', async () => {
      const sub = client.duplicate();
      sub.on('error', () => undefined);
      await suppressInstrumentation(() => sub.connect());
      const registered = t.tracer.startSpan('registered');
      const publisher = t.tracer.startSpan('publisher');
      const seen: Array<Span | undefined> = [];
      let got: () => void = () => undefined;
      const arrived = new Promise<void>((r) => (got = r));
      await spanInContext(registered, () =>
        sub.subscribe(`${prefix}:ch`, () => {
          seen.push(getCurrentSpan());
          got();
        }),
      );
      await spanInContext(publisher, () => client.publish(`${prefix}:ch`, CANARY));
      await arrived;
      registered.finish();
      publisher.finish();
      await suppressInstrumentation(() => sub.quit());
      assert.deepStrictEqual(seen, [registered]);
      const ops = redisSpans(t).map((s) => `${s.operationName}<${parentId(s) === spanId(registered) ? 'registered' : 'publisher'}`);
      assert.deepStrictEqual(ops, ['redis:SUBSCRIBE<registered', 'redis:PUBLISH<publisher']);
    });

    it('a command queued while the client reconnects: one span, under its caller', async () => {
      const c = await connected(version, { socket: { ...OPTIONS.socket, reconnectStrategy: () => 300 } });
      const id = await suppressInstrumentation(() => c.sendCommand(['CLIENT', 'ID']));
      const reconnecting = new Promise((r) => c.once('reconnecting', r));
      await suppressInstrumentation(() => client.sendCommand(['CLIENT', 'KILL', 'ID', String(id)]));
      await reconnecting;
      assert.strictEqual(c.isReady, false, 'the client is offline');
      const parent = t.tracer.startSpan('parent');
      const reply = await spanInContext(parent, () => c.get(`${prefix}:offline`));
      parent.finish();
      await suppressInstrumentation(() => c.quit());
      assert.strictEqual(reply, null);
      const spans = redisSpans(t);
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:GET']);
      assert.strictEqual(parentId(spans[0]), spanId(parent));
    });

    it('1,000 concurrent commands from 100 parents: none misparented, none unfinished', async () => {
      const parents = Array.from({ length: 100 }, (_, i) => t.tracer.startSpan(`parent${i}`));
      await Promise.all(
        parents.map((p, i) =>
          spanInContext(p, async () => {
            const work: Array<Promise<unknown>> = [];
            for (let j = 0; j < 10; j++) work.push(j % 2 ? client.get(`${prefix}:c${i}`) : client.sendCommand(['EXISTS', `${prefix}:c${j}`]));
            await Promise.all(work);
          }),
        ),
      );
      for (const p of parents) p.finish();
      const spans = redisSpans(t);
      assert.strictEqual(spans.length, 1000);
      const byParent = new Map<string | undefined, number>();
      for (const s of spans) byParent.set(parentId(s), (byParent.get(parentId(s)) ?? 0) + 1);
      for (const p of parents) assert.strictEqual(byParent.get(spanId(p)), 10, `children of ${spanId(p)}`);
      assert.strictEqual(t.accounting.open.size, 0, 'every span finished');
    });

    it(version.major === 4 ? 'executeIsolated: a task waiting for a free isolated client runs under its own caller' : 'a client pool: a task waiting for a free client runs under its own caller', async () => {
      let pooled: Client;
      let run: (k: string) => Promise<unknown>;
      if (version.major === 4) {
        pooled = await connected(version, { isolationPoolOptions: { min: 1, max: 1 } });
        run = (k) => pooled.executeIsolated((c: Client) => c.get(k));
      } else {
        pooled = version.redis().createClientPool(OPTIONS, { minimum: 1, maximum: 1 });
        pooled.on('error', () => undefined);
        await suppressInstrumentation(() => pooled.connect());
        run = (k) => pooled.get(k);
      }
      const parents = [0, 1, 2, 3].map((i) => t.tracer.startSpan(`p${i}`));
      await Promise.all(parents.map((p, i) => spanInContext(p, () => run(`${prefix}:pool${i}`))));
      for (const p of parents) p.finish();
      await suppressInstrumentation(() => (version.major === 4 ? pooled.quit() : pooled.close()));
      const spans = redisSpans(t);
      assert.deepStrictEqual(
        spans.map((s) => `${tag(s, 'db.statement')}<${parentId(s)}`).sort(),
        parents.map((p, i) => `GET ${prefix}:pool${i}<${spanId(p)}`).sort(),
      );
    });

    it('statementSerializer and maxStatementLength', async () => {
      installPatches(['redis'], { tracer: t.tracer, redis: { statementSerializer: (c, a) => `${c}(${a.length})`, maxStatementLength: 5 } });
      try {
        await client.sendCommand(['AUTH', CANARY]).catch(() => undefined);
        await client.get(`${prefix}:s`);
      } finally {
        installPatches(['redis'], { tracer: t.tracer });
      }
      assert.deepStrictEqual(redisSpans(t).map((s) => tag(s, 'db.statement')), ['AUTH', 'get(1…']);
    });

    it('after uninstall, a client\'s own copy of a wrapped method (subscribe) traces nothing', async () => {
      const sub = client.duplicate();
      sub.on('error', () => undefined);
      await suppressInstrumentation(() => sub.connect());
      uninstallAllPatches();
      try {
        await sub.subscribe(`${prefix}:after`, () => undefined);
        await sub.unsubscribe(`${prefix}:after`);
        await sub.quit();
      } finally {
        installPatches(['redis'], { tracer: t.tracer });
        patchModuleAs('@redis/client', version.core());
      }
      assert.deepStrictEqual(redisSpans(t), []);
    });
  });
}

describe('redis and ioredis in one process', () => {
  const t = useTracing(['redis', 'ioredis']);
  const prefix = uniqueName('ot_both');

  it('trace independently: one span per call each, with their own component', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const IORedis = require('ioredis');
    const io = new IORedis({ ...REDIS, lazyConnect: true });
    await suppressInstrumentation(() => io.connect());
    const nr = await connected(VERSIONS[0]);
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, async () => {
      await Promise.all([io.set(`${prefix}:a`, '1'), nr.set(`${prefix}:b`, '2'), io.get(`${prefix}:b`), nr.get(`${prefix}:a`)]);
    });
    parent.finish();
    await suppressInstrumentation(async () => {
      await nr.del([`${prefix}:a`, `${prefix}:b`]);
      await nr.quit();
      await io.quit();
    });
    await waitFor(() => t.spans().length >= 5, 2000, 'spans').catch(() => undefined);
    const spans = t.spans().filter((s) => s.operationName !== 'parent');
    assert.deepStrictEqual(
      spans.map((s) => `${tag(s, 'component')} ${s.operationName}`).sort(),
      ['ioredis redis:GET', 'ioredis redis:SET', 'redis redis:GET', 'redis redis:SET'],
    );
    for (const s of spans) assert.strictEqual(parentId(s), spanId(parent));
  });
});
