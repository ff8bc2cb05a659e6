import assert from 'assert';
import type { Span } from 'opentracing';
import type IORedis from 'ioredis';
import { getCurrentSpan, installPatches, setResponseHook, spanInContext, suppressInstrumentation, uninstallAllPatches } from '../src';
import type { IoredisOptions, IoredisRequest } from '../src/options';
import { patchModuleAs } from '../src/patcher';
import { CANARY, findSecret } from './helpers/canary';
import { isWrapped, originalOf } from '../src/wrap';
import { assertLoggedAs, REDIS, uniqueName, unhandledRejections } from './helpers/db';
import {
  createTestTracer,
  logs,
  parentId,
  spanId,
  tag,
  tags,
  traceId,
  useTracing,
  waitFor,
  type JaegerSpan,
  type TestTracer,
} from './helpers/tracing';

type RedisClass = typeof IORedis;
type Redis = IORedis;

/* eslint-disable @typescript-eslint/no-require-imports */
const VERSIONS: Array<{ label: string; load: () => RedisClass; alias?: string }> = [
  { label: 'ioredis 5', load: () => require('ioredis') as RedisClass },
  { label: 'ioredis 6', load: () => require('ioredis6') as RedisClass, alias: 'ioredis6' },
  { label: 'ioredis 4', load: () => require('ioredis4') as RedisClass, alias: 'ioredis4' },
];
/* eslint-enable @typescript-eslint/no-require-imports */



function redisSpans(t: TestTracer): JaegerSpan[] {
  return t.spans().filter((s) => tag(s, 'component') === 'ioredis');
}

function only(t: TestTracer, op: string): JaegerSpan {
  const found = t.spans().filter((s) => s.operationName === op);
  assert.strictEqual(found.length, 1, `expected one ${op} span, got ${t.spans().map((s) => s.operationName).join(', ')}`);
  return found[0];
}

function contractTags(statement: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'span.kind': 'client',
    component: 'ioredis',
    'db.type': 'redis',
    'db.statement': statement,
    'db.instance': '0',
    'peer.ipv4': REDIS.host,
    'peer.port': REDIS.port,
    ...extra,
  };
}

/** Where the canary occurs in any of `spans` (the shared scanner of test/helpers/canary.ts). */
function leaks(spans: JaegerSpan[]): string[] {
  return spans.flatMap((s) => findSecret(s).map((where) => `${s.operationName}: ${where}`));
}

async function connected(Redis: RedisClass, options: Record<string, unknown> = {}): Promise<Redis> {
  const redis = new Redis({ ...REDIS, lazyConnect: true, ...options });
  await suppressInstrumentation(() => redis.connect());
  return redis;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (e: Error) => e,
  );
}

for (const version of VERSIONS) {
  describe(`ioredis patch (${version.label})`, () => {
    const t = useTracing(['ioredis']);
    const Redis = version.load();
    const prefix = uniqueName('ot_redis');
    const key = (name: string): string => `${prefix}:${name}`;
    let redis: Redis;

    before(async () => {
      // An aliased copy is not found under node_modules/ioredis: hand it to the registry.
      if (version.alias) patchModuleAs('ioredis', Redis);
      redis = await connected(Redis);
    });
    after(async () => {
      redis.disconnect();
      // A fresh connection: the test one may be in a state a failed test left it in.
      const cleaner = await connected(Redis);
      await suppressInstrumentation(async () => {
        const keys = await cleaner.keys(`${prefix}:*`);
        if (keys.length > 0) await cleaner.del(...keys);
        await cleaner.quit();
      });
    });
    beforeEach(() => setResponseHook('ioredis', null));

    /** Runs one describe block with other ioredis options, then puts the plain ones back. */
    function withOptions(options: IoredisOptions): void {
      before(() => {
        installPatches(['ioredis'], { tracer: t.tracer, ioredis: options });
        if (version.alias) patchModuleAs('ioredis', Redis);
      });
      after(() => installPatches(['ioredis'], { tracer: t.tracer }));
    }

    describe('#set() / #get() (promise)', () => {
      it('gives one client span per command, child of the current span, with the contract tags', async () => {
        const parent = t.tracer.startSpan('parent');
        const got = await spanInContext(parent, async () => {
          await redis.set(key('session:42'), CANARY);
          return redis.get(key('session:42'));
        });
        parent.finish();
        assert.strictEqual(got, CANARY);
        const set = only(t, 'redis:SET');
        const get = only(t, 'redis:GET');
        assert.deepStrictEqual(tags(set), contractTags(`SET ${key('session:42')} [1 other argument]`));
        assert.deepStrictEqual(tags(get), contractTags(`GET ${key('session:42')}`));
        for (const s of [set, get]) {
          assert.strictEqual(parentId(s), spanId(parent));
          assert.strictEqual(traceId(s), traceId(parent));
        }
        assert.deepStrictEqual(leaks(t.spans()), [], 'a value reached a span');
      });

      it('starts a new trace when there is no current span', async () => {
        await redis.ping();
        assert.strictEqual(parentId(only(t, 'redis:PING')), undefined);
        assert.strictEqual(tag(only(t, 'redis:PING'), 'db.statement'), 'PING');
      });

      it('continues in the caller context after await', async () => {
        const parent = t.tracer.startSpan('parent');
        const seen = await spanInContext(parent, async () => {
          await redis.get(key('nothing'));
          return getCurrentSpan();
        });
        parent.finish();
        assert.strictEqual(seen, parent);
      });
    });

    describe('#get(key, callback)', () => {
      it('runs the callback in the caller context, after the span finished, with the same reply', async () => {
        await suppressInstrumentation(() => redis.set(key('cb'), 'value'));
        const parent = t.tracer.startSpan('parent');
        const { reply, current, finished } = await spanInContext(
          parent,
          () =>
            new Promise<{ reply: unknown; current: Span | undefined; finished: number }>((resolve, reject) => {
              redis.get(key('cb'), (err, r) => (err ? reject(err) : resolve({ reply: r, current: getCurrentSpan(), finished: redisSpans(t).length })));
            }),
        );
        parent.finish();
        assert.strictEqual(reply, 'value');
        assert.strictEqual(current, parent);
        assert.strictEqual(finished, 1);
        assert.strictEqual(parentId(only(t, 'redis:GET')), spanId(parent));
      });
    });

    describe('db.statement', () => {
      it('keeps the command and its key, and counts the other arguments', async () => {
        await redis.mset(key('a'), CANARY, key('b'), CANARY);
        await redis.hset(key('h'), 'field', CANARY);
        await redis.del(key('a'), key('b'));
        await redis.eval('return ARGV[1]', 1, key('e'), CANARY);
        await redis.config('GET', 'maxmemory');
        await redis.call('ECHO', CANARY);
        assert.deepStrictEqual(
          redisSpans(t).map((s) => tag(s, 'db.statement')),
          [
            `MSET ${key('a')} [3 other arguments]`,
            `HSET ${key('h')} [2 other arguments]`,
            `DEL ${key('a')} [1 other argument]`,
            `EVAL ${key('e')} [3 other arguments]`,
            'CONFIG GET [1 other argument]',
            'ECHO [1 other argument]',
          ],
        );
        assert.deepStrictEqual(leaks(t.spans()), []);
      });

      it('shows the key as sent, with the keyPrefix', async () => {
        const prefixed = await connected(Redis, { keyPrefix: `${prefix}:p:` });
        try {
          await prefixed.get('k');
        } finally {
          await suppressInstrumentation(() => prefixed.quit());
        }
        assert.strictEqual(tag(only(t, 'redis:GET'), 'db.statement'), `GET ${prefix}:p:k`);
      });

      it('db.instance is the selected database', async () => {
        const db2 = await connected(Redis, { db: 2 });
        try {
          await db2.get(key('db2'));
        } finally {
          await suppressInstrumentation(() => db2.quit());
        }
        assert.strictEqual(tag(only(t, 'redis:GET'), 'db.instance'), '2');
      });
    });

    describe('AUTH and HELLO', () => {
      withOptions({ statementSerializer: (command, args) => [command, ...args.map(String)].join(' ') });

      it('never records their arguments, not even through a user serializer', async () => {
        const other = await connected(Redis);
        try {
          const authErr = await rejection(other.call('AUTH', CANARY));
          assert.match(authErr.message, /AUTH|password/);
          await rejection(other.call('AUTH', 'someone', CANARY));
          await other.call('HELLO', '2', 'AUTH', 'default', CANARY);
          await other.set(key('shown'), 'visible');
        } finally {
          await suppressInstrumentation(() => other.quit());
        }
        const statements = redisSpans(t).map((s) => tag(s, 'db.statement'));
        assert.deepStrictEqual(statements, ['AUTH', 'AUTH', 'HELLO', `set ${key('shown')} visible`]);
        assert.deepStrictEqual(leaks(t.spans()), [], 'a credential reached a span');
      });
    });

    describe('statementSerializer', () => {
      withOptions({
        statementSerializer: (command) => {
          if (command === 'get') throw new Error('serializer failure');
          return `custom ${command}`;
        },
      });

      it('builds db.statement; a throwing serializer falls back to the default', async () => {
        await redis.set(key('s'), 'v');
        await redis.get(key('s'));
        assert.deepStrictEqual(
          redisSpans(t).map((s) => tag(s, 'db.statement')),
          ['custom set', `GET ${key('s')}`],
        );
      });

      it('gets the command name in lower case, as documented, however the app wrote it', async () => {
        await redis.call('SET', key('u'), 'v');
        await redis.call('GET', key('u'));
        const statements = redisSpans(t).map((s) => String(tag(s, 'db.statement')));
        // SET reached the serializer as `set`; GET as `get`, which it refuses (the default then applies).
        assert.strictEqual(statements[0], 'custom set');
        assert.match(statements[1], /^GET /);
      });
    });

    describe('offline queue', () => {
      it('a command queued before the connection is ready gives one span, under its caller', async () => {
        const lazy = new Redis({ ...REDIS, lazyConnect: true });
        const connector = t.tracer.startSpan('connector');
        const caller = t.tracer.startSpan('caller');
        try {
          // The socket (and the flush of the offline queue on ready) belongs to the connector's context.
          const ready = spanInContext(connector, () => lazy.connect());
          const pending = spanInContext(caller, () => lazy.get(key('queued')));
          assert.strictEqual((lazy as unknown as { offlineQueue: { length: number } }).offlineQueue.length, 1, 'the command waits in the offline queue');
          await ready;
          assert.strictEqual(await pending, null);
        } finally {
          connector.finish();
          caller.finish();
          await suppressInstrumentation(() => lazy.quit());
        }
        const get = only(t, 'redis:GET');
        assert.strictEqual(parentId(get), spanId(caller));
        assert.deepStrictEqual(tags(get), contractTags(`GET ${key('queued')}`));
        assert.strictEqual(redisSpans(t).length, 1, 'the handshake (INFO, CLIENT ...) is not traced as calls');
      });
    });

    describe('#pipeline().exec()', () => {
      it('gives one redis:PIPELINE span for the batch, with a summary statement, and no span per command', async () => {
        const parent = t.tracer.startSpan('parent');
        const results = await spanInContext(parent, () => redis.pipeline().set(key('p1'), CANARY).get(key('p1')).del(key('p1')).exec());
        parent.finish();
        assert.deepStrictEqual(results, [
          [null, 'OK'],
          [null, CANARY],
          [null, 1],
        ]);
        assert.strictEqual(redisSpans(t).length, 1);
        const span = only(t, 'redis:PIPELINE');
        assert.deepStrictEqual(tags(span), contractTags(`SET ${key('p1')} ...; GET ${key('p1')}; DEL ${key('p1')}`));
        assert.strictEqual(parentId(span), spanId(parent));
      });

      it('runs the exec callback in the caller context', async () => {
        const parent = t.tracer.startSpan('parent');
        const current = await spanInContext(
          parent,
          () =>
            new Promise<Span | undefined>((resolve, reject) => {
              redis
                .pipeline()
                .get(key('x'))
                .exec((err) => (err ? reject(err) : resolve(getCurrentSpan())));
            }),
        );
        parent.finish();
        assert.strictEqual(current, parent);
        assert.strictEqual(parentId(only(t, 'redis:PIPELINE')), spanId(parent));
      });

      it('tags the batch when one of its commands fails, and the app gets the same results', async () => {
        await suppressInstrumentation(() => redis.lpush(key('list'), 'a'));
        const results = (await redis.pipeline().get(key('list')).ping().exec()) as Array<[Error | null, unknown]>;
        assert.match(String(results[0][0]), /WRONGTYPE/);
        assert.strictEqual(results[1][1], 'PONG');
        const span = only(t, 'redis:PIPELINE');
        assert.strictEqual(tag(span, 'error'), true);
        assertLoggedAs(logs(span)[0]['error.object'], results[0][0]);
      });

      it('the response hook gets the results', async () => {
        let got: unknown;
        setResponseHook('ioredis', (results) => {
          got = results;
        });
        const results = await redis.pipeline().ping().exec();
        assert.deepStrictEqual(got, results);
      });
    });

    describe('#multi().exec()', () => {
      it('gives one redis:MULTI span for the transaction', async () => {
        const parent = t.tracer.startSpan('parent');
        const results = await spanInContext(parent, () => redis.multi().set(key('m'), 'v').get(key('m')).exec());
        parent.finish();
        assert.deepStrictEqual(results, [
          [null, 'OK'],
          [null, 'v'],
        ]);
        assert.strictEqual(redisSpans(t).length, 1);
        const span = only(t, 'redis:MULTI');
        assert.strictEqual(tag(span, 'db.statement'), `SET ${key('m')} ...; GET ${key('m')}`);
        assert.strictEqual(parentId(span), spanId(parent));
      });

      it('tags an aborted transaction (EXECABORT), which rejects with the same error', async () => {
        const err = await rejection(redis.multi().set(key('m2'), 'v').call('NOSUCHCOMMAND').exec() as Promise<unknown>);
        assert.match(err.message, /EXECABORT/);
        const span = only(t, 'redis:MULTI');
        assert.strictEqual(tag(span, 'error'), true);
        assert.match(String(logs(span)[0].message), /EXECABORT|unknown command/);
      });

      it('multi({ pipeline: false }) sends MULTI, each command and EXEC: a span each', async () => {
        const other = await connected(Redis);
        let res: unknown;
        try {
          await other.multi({ pipeline: false });
          assert.strictEqual(await other.set(key('np'), 'v'), 'QUEUED');
          res = await other.exec();
        } finally {
          await suppressInstrumentation(() => other.quit());
        }
        assert.deepStrictEqual(res, [[null, 'OK']]);
        assert.deepStrictEqual(
          redisSpans(t).map((s) => s.operationName),
          ['redis:MULTI', 'redis:SET', 'redis:EXEC'],
        );
      });
    });

    describe('errors reach the application unchanged', () => {
      it('WRONGTYPE', async () => {
        await suppressInstrumentation(() => redis.lpush(key('wrong'), 'a'));
        const err = await rejection(redis.get(key('wrong')));
        assert.match(err.message, /^WRONGTYPE/);
        assert.strictEqual(err.name, 'ReplyError');
        const span = only(t, 'redis:GET');
        assert.strictEqual(tag(span, 'error'), true);
        const [log] = logs(span);
        assert.strictEqual(log.event, 'error');
        assertLoggedAs(log['error.object'], err);
        assert.strictEqual(log['error.kind'], 'ReplyError');
        assert.strictEqual(log.message, err.message);
      });

      it('a rejection nobody handles stays unhandled, as without instrumentation', async () => {
        const reasons = await unhandledRejections(() => {
          void redis.call('NOSUCHCOMMAND');
        });
        assert.strictEqual(reasons.length, 1);
        assert.match(String(reasons[0]), /unknown command/);
        assertLoggedAs(logs(only(t, 'redis:NOSUCHCOMMAND'))[0]['error.object'], reasons[0]);
      });

      it('an unknown command', async () => {
        const err = await rejection(redis.call('NOSUCHCOMMAND', CANARY));
        assert.match(err.message, /unknown command/);
        assert.match(err.message, new RegExp(CANARY), 'the app gets the server message as it is');
        const span = only(t, 'redis:NOSUCHCOMMAND');
        assert.strictEqual(tag(span, 'db.statement'), 'NOSUCHCOMMAND [1 other argument]');
        assert.strictEqual(logs(span)[0].message, "ERR unknown command 'NOSUCHCOMMAND'");
        assert.deepStrictEqual(leaks([span]), []);
        assertLoggedAs(logs(span)[0]['error.object'], err);
      });

      it('a connection lost while a command waits', async () => {
        const victim = await connected(Redis, { retryStrategy: () => null, maxRetriesPerRequest: 0 });
        victim.on('error', () => undefined);
        const id = await suppressInstrumentation(() => victim.client('ID'));
        const pending = rejection(victim.blpop(key('never'), 5));
        await waitFor(() => false, 50).catch(() => undefined);
        await suppressInstrumentation(() => redis.client('KILL', 'ID', String(id)));
        const err = await pending;
        assert.match(err.message, /Connection is closed|closed/i);
        const span = only(t, 'redis:BLPOP');
        assert.strictEqual(tag(span, 'error'), true);
        assertLoggedAs(logs(span)[0]['error.object'], err);
        victim.disconnect();
      });

      it('a command on a closed client', async () => {
        const closed = await connected(Redis);
        await suppressInstrumentation(() => closed.quit());
        await waitFor(() => closed.status === 'end', 2000, 'the client to end');
        const err = await rejection(closed.get(key('x')));
        assert.match(err.message, /closed/i);
        assertLoggedAs(logs(only(t, 'redis:GET'))[0]['error.object'], err);
      });
    });

    describe('hooks', () => {
      it('the response hook gets the reply the app gets, before the span finishes; the request hook gets the command', async () => {
        const replies: Array<{ reply: unknown; finished: number }> = [];
        const requests: IoredisRequest[] = [];
        installPatches(['ioredis'], {
          tracer: t.tracer,
          ioredis: {
            responseHook: (reply, span) => {
              replies.push({ reply, finished: redisSpans(t).length });
              span.setTag('app.seen', true);
            },
            requestHook: (span, request) => {
              requests.push({ command: request.command, args: [...request.args] });
            },
          },
        });
        if (version.alias) patchModuleAs('ioredis', Redis);
        try {
          await redis.set(key('hook'), 'v');
          await redis.get(key('hook'));
          await rejection(redis.call('NOSUCHCOMMAND'));
        } finally {
          installPatches(['ioredis'], { tracer: t.tracer });
        }
        assert.deepStrictEqual(replies, [
          { reply: 'OK', finished: 0 },
          { reply: 'v', finished: 1 },
        ]);
        assert.deepStrictEqual(
          requests.map((r) => r.command.toLowerCase()),
          ['set', 'get', 'nosuchcommand'],
        );
        assert.deepStrictEqual(requests[0].args, [key('hook'), 'v']);
        assert.strictEqual(tag(redisSpans(t)[0], 'app.seen'), true);
      });

      it('a throwing hook never reaches the app', async () => {
        setResponseHook('ioredis', () => {
          throw new Error('hook failure');
        });
        assert.strictEqual(await redis.ping(), 'PONG');
        assert.strictEqual(redisSpans(t).length, 1);
      });
    });

    describe('enableAutoPipelining', () => {
      it('traces each auto-pipelined command on its own, under its own caller, with no batch span', async () => {
        const auto = await connected(Redis, { enableAutoPipelining: true });
        const parents = [0, 1, 2].map((i) => t.tracer.startSpan(`parent${i}`));
        try {
          const replies = await Promise.all(parents.map((p, i) => spanInContext(p, () => auto.echo(`m${i}`))));
          assert.deepStrictEqual(replies, ['m0', 'm1', 'm2']);
        } finally {
          for (const p of parents) p.finish();
          await suppressInstrumentation(() => auto.quit());
        }
        const spans = redisSpans(t);
        assert.deepStrictEqual(
          spans.map((s) => s.operationName),
          ['redis:ECHO', 'redis:ECHO', 'redis:ECHO'],
        );
        assert.deepStrictEqual(
          spans.map((s) => parentId(s)).sort(),
          parents.map((p) => spanId(p)).sort(),
        );
        for (const s of spans) assert.strictEqual(tag(s, 'peer.port'), REDIS.port);
      });
    });

    describe('requireParentSpan: true', () => {
      withOptions({ requireParentSpan: true });

      it('traces nothing without a current span, even once the command is re-sent from another context', async () => {
        const lazy = new Redis({ ...REDIS, lazyConnect: true });
        const connector = t.tracer.startSpan('connector');
        try {
          const ready = spanInContext(connector, () => lazy.connect());
          const pending = lazy.get(key('untraced'));
          await ready;
          await pending;
          await redis.pipeline().ping().exec();
        } finally {
          connector.finish();
          await suppressInstrumentation(() => lazy.quit());
        }
        assert.strictEqual(redisSpans(t).length, 0);
      });
    });

    describe('safety', () => {
      it('keeps name and length of the wrapped methods', () => {
        const proto = Redis.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
        const pipeline = (Redis as unknown as { Pipeline: { prototype: Record<string, (...a: unknown[]) => unknown> } }).Pipeline.prototype;
        const cluster = (Redis as unknown as { Cluster: { prototype: Record<string, (...a: unknown[]) => unknown> } }).Cluster.prototype;
        for (const fn of [proto.sendCommand, pipeline.exec, pipeline.sendCommand, cluster.sendCommand]) {
          assert.ok(isWrapped(fn));
          assert.strictEqual(fn.name, originalOf(fn).name); // ioredis 4's are anonymous
          assert.strictEqual(fn.length, originalOf(fn).length);
        }
        assert.strictEqual(pipeline.exec.length, 1);
      });

      it('traces nothing under suppressInstrumentation', async () => {
        await suppressInstrumentation(async () => {
          await redis.ping();
          await redis.pipeline().ping().exec();
        });
        assert.strictEqual(redisSpans(t).length, 0);
      });
    });
  });
}

describe('ioredis patch with a failing tracer', () => {
  const broken = createTestTracer();
  let redis: Redis;
  before(async () => {
    broken.tracer.startSpan = () => {
      throw new Error('tracer down');
    };
    installPatches(['ioredis'], { tracer: broken.tracer });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    redis = await connected(require('ioredis') as RedisClass);
  });
  after(async () => {
    await redis.quit();
    uninstallAllPatches();
    broken.close();
  });

  it('commands and batches go on, untraced', async () => {
    assert.strictEqual(await redis.ping(), 'PONG');
    assert.deepStrictEqual(await redis.pipeline().ping().exec(), [[null, 'PONG']]);
    assert.deepStrictEqual(await redis.multi().ping().exec(), [[null, 'PONG']]);
  });
});

describe('ioredis patch: late require and uninstall', () => {
  const t = createTestTracer();
  after(() => {
    uninstallAllPatches();
    t.close();
  });

  it('patches an ioredis loaded after install, and uninstall puts back the very same functions', async () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require('ioredis') as RedisClass & { Pipeline: { prototype: { exec: unknown } }; Cluster: { prototype: { sendCommand: unknown } } };
    const originals = {
      send: loaded.prototype.sendCommand,
      exec: loaded.Pipeline.prototype.exec,
      cluster: loaded.Cluster.prototype.sendCommand,
    };
    installPatches(['ioredis'], { tracer: t.tracer });
    assert.ok(isWrapped(loaded.prototype.sendCommand));

    const pattern = /[\\/]node_modules[\\/]ioredis[\\/]/;
    const saved = new Map<string, NodeJS.Module>();
    for (const k of Object.keys(require.cache)) {
      if (pattern.test(k)) {
        saved.set(k, require.cache[k]!);
        delete require.cache[k];
      }
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('ioredis') as RedisClass;
      assert.notStrictEqual(fresh, loaded, 'a fresh copy');
      assert.ok(isWrapped(fresh.prototype.sendCommand));
      const freshOriginal = (fresh.prototype.sendCommand as unknown as Record<symbol, unknown>)[Symbol.for('opentracing-instrumentation.original')];
      const redis = await connected(fresh);
      await redis.ping();
      await redis.quit();
      assert.strictEqual(t.spans().filter((s) => s.operationName === 'redis:PING').length, 1);
      uninstallAllPatches();
      assert.strictEqual(fresh.prototype.sendCommand, freshOriginal);
    } finally {
      for (const k of Object.keys(require.cache)) if (pattern.test(k)) delete require.cache[k];
      for (const [k, mod] of saved) require.cache[k] = mod;
    }
    assert.strictEqual(loaded.prototype.sendCommand, originals.send);
    assert.strictEqual(loaded.Pipeline.prototype.exec, originals.exec);
    assert.strictEqual(loaded.Cluster.prototype.sendCommand, originals.cluster);
  });
});
