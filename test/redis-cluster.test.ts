import assert from 'assert';
import { spanInContext, suppressInstrumentation } from '../src';
import { patchModuleAs } from '../src/patcher';
import { CANARY } from './helpers/canary';
import { uniqueName } from './helpers/db';
import { useLocalCluster } from './helpers/redis-cluster';
import { parentId, spanId, tag, useTracing } from './helpers/tracing';
import { assertUnhandledNope, redisSpans, VERSIONS } from './helpers/node-redis';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Client = any;

/** A plain client to one node, outside the cluster client (and untraced). */
async function nodeClient(version: (typeof VERSIONS)[number], port: number): Promise<Client> {
  const c = version.redis().createClient({ socket: { host: '127.0.0.1', port } });
  c.on('error', () => undefined);
  await suppressInstrumentation(() => c.connect());
  return c;
}

/** The port of the node that owns `key`'s slot, and that slot, asked of the cluster itself. */
async function owner(direct: Client[], key: string): Promise<{ slot: number; port: number }> {
  return suppressInstrumentation(async () => {
    const slot = Number(await direct[0].sendCommand(['CLUSTER', 'KEYSLOT', key]));
    const slots = (await direct[0].sendCommand(['CLUSTER', 'SLOTS'])) as Array<[number, number, [string, number]]>;
    const range = slots.find(([from, to]) => slot >= Number(from) && slot <= Number(to));
    return { slot, port: Number(range![2][1]) };
  });
}

/**
 * Waits until every node's slot table gives `slot` to `port`: CLUSTER SETSLOT
 * is sent to each node in turn, and a client that asks a node still holding
 * the old table in between is sent back and forth until it gives up.
 */
async function settled(direct: Client[], slot: number, port: number): Promise<void> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const owners = await suppressInstrumentation(() =>
      Promise.all(
        direct.map(async (c) => {
          const slots = (await c.sendCommand(['CLUSTER', 'SLOTS'])) as Array<[number, number, [string, number]]>;
          const range = slots.find(([from, to]) => slot >= Number(from) && slot <= Number(to));
          return range === undefined ? undefined : Number(range[2][1]);
        }),
      ),
    );
    if (owners.every((p) => p === port)) return;
    if (Date.now() > deadline) throw new Error(`slot ${slot}: the nodes still disagree on its owner (${owners.join(', ')})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('redis patch on a local Redis Cluster', () => {
  const localCluster = useLocalCluster();

  for (const version of VERSIONS) {
    describe(version.label, () => {
      const t = useTracing(['redis']);
      const prefix = uniqueName(`ot_nrcluster${version.major}`);
      let cluster: Client;
      let direct: Client[];

      before(async () => {
        version.redis();
        patchModuleAs('@redis/client', version.core());
        cluster = version.redis().createCluster({ rootNodes: localCluster().nodes.map((n) => ({ socket: n })) });
        cluster.on('error', () => undefined);
        await suppressInstrumentation(() => cluster.connect());
        direct = await Promise.all(localCluster().ports.map((p) => nodeClient(version, p)));
      });
      after(async () => {
        await suppressInstrumentation(async () => {
          for (const c of direct) {
            for (const k of await c.keys(`*${prefix}*`)) await c.del(k);
            await c.quit();
          }
          await cluster.quit();
        });
      });

      it('one span per command, under its caller, tagged with the node that served it', async () => {
        const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map((k) => `${prefix}:${k}`);
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, async () => {
          for (const k of keys) await cluster.set(k, CANARY);
          await cluster.get(keys[0]);
        });
        parent.finish();
        const spans = redisSpans(t);
        assert.deepStrictEqual(spans.map((s) => s.operationName), [...keys.map(() => 'redis:SET'), 'redis:GET']);
        for (let i = 0; i < keys.length; i++) {
          assert.strictEqual(parentId(spans[i]), spanId(parent));
          assert.strictEqual(tag(spans[i], 'db.statement'), `SET ${keys[i]} [1 other argument]`);
          assert.strictEqual(tag(spans[i], 'peer.port'), (await owner(direct, keys[i])).port);
        }
      });

      it('connecting a cluster (CLUSTER SLOTS and the nodes\' handshakes) is not traced', async () => {
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, async () => {
          const c = version.redis().createCluster({ rootNodes: localCluster().nodes.map((n) => ({ socket: n })) });
          c.on('error', () => undefined);
          await c.connect();
          await c.quit();
        });
        parent.finish();
        assert.deepStrictEqual(redisSpans(t).map((s) => s.operationName), []);
      });

      it('a MOVED redirection is followed within the one span, tagged with the node that answered; the slot refresh is not traced', async () => {
        const key = `${prefix}:moved`;
        const { slot, port } = await owner(direct, key);
        const target = localCluster().ports.find((p) => p !== port)!;
        const targetId = await suppressInstrumentation(() => direct[localCluster().ports.indexOf(target)].sendCommand(['CLUSTER', 'MYID']));
        // Hand the (empty) slot to another node behind the cluster client's back: its table is now stale.
        await suppressInstrumentation(async () => {
          for (const c of direct) await c.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'NODE', String(targetId)]);
        });
        await settled(direct, slot, target);
        const parent = t.tracer.startSpan('parent');
        const reply = await spanInContext(parent, () => cluster.set(key, CANARY));
        parent.finish();
        assert.strictEqual(reply, 'OK');
        const spans = redisSpans(t);
        assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:SET']);
        assert.strictEqual(parentId(spans[0]), spanId(parent));
        assert.strictEqual(tag(spans[0], 'error'), undefined);
        assert.strictEqual(tag(spans[0], 'peer.port'), target);
      });

      it('an ASK redirection (slot migrating) is followed within the one span; ASKING is not a span of its own', async () => {
        const key = `${prefix}:ask`;
        const { slot, port } = await owner(direct, key);
        const source = direct[localCluster().ports.indexOf(port)];
        const targetPort = localCluster().ports.find((p) => p !== port)!;
        const target = direct[localCluster().ports.indexOf(targetPort)];
        await suppressInstrumentation(async () => {
          const sourceId = String(await source.sendCommand(['CLUSTER', 'MYID']));
          const targetId = String(await target.sendCommand(['CLUSTER', 'MYID']));
          await target.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', sourceId]);
          await source.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', targetId]);
        });
        try {
          const parent = t.tracer.startSpan('parent');
          const reply = await spanInContext(parent, () => cluster.set(key, CANARY));
          parent.finish();
          assert.strictEqual(reply, 'OK');
          const spans = redisSpans(t);
          assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:SET']);
          assert.strictEqual(parentId(spans[0]), spanId(parent));
          assert.strictEqual(tag(spans[0], 'error'), undefined);
          assert.strictEqual(tag(spans[0], 'peer.port'), targetPort);
        } finally {
          // Finish the migration: the slot (and the key now on the target) belong to the target.
          await suppressInstrumentation(async () => {
            const targetId = String(await target.sendCommand(['CLUSTER', 'MYID']));
            for (const c of direct) await c.sendCommand(['CLUSTER', 'SETSLOT', String(slot), 'NODE', targetId]);
          });
        }
      });

      it('redirected until the cluster gives up: one span, failed, finished', async () => {
        // Routed by a key of one node, the command names a key of another: MOVED every time.
        const routed = `${prefix}:route`;
        const { port } = await owner(direct, routed);
        let other = '';
        for (let i = 0; !other; i++) if ((await owner(direct, `${prefix}:o${i}`)).port !== port) other = `${prefix}:o${i}`;
        const parent = t.tracer.startSpan('parent');
        const err = await spanInContext(parent, () => cluster.sendCommand(routed, false, ['GET', other])).then(
          () => undefined,
          (e: unknown) => e,
        );
        parent.finish();
        assert.ok(err instanceof Error, 'the application gets the error');
        const spans = redisSpans(t);
        assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:GET']);
        assert.strictEqual(tag(spans[0], 'error'), true);
        assert.strictEqual(t.accounting.open.size, 0, 'the span is finished');
      });

      it('a cluster.sendCommand() rejection nobody handles stays unhandled, reported for node-redis\' own promise', async () => {
        const key = `${prefix}:nope`;
        await assertUnhandledNope(t, () => cluster.sendCommand(key, false, ['NOPE', key]));
        assert.strictEqual(t.accounting.open.size, 0);
      });

      it('multi().exec() on one slot: one MULTI span', async () => {
        const k = `{${prefix}}:m`;
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, () => cluster.multi().set(k, CANARY).get(k).exec());
        parent.finish();
        const spans = redisSpans(t);
        assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:MULTI']);
        assert.strictEqual(parentId(spans[0]), spanId(parent));
        assert.strictEqual(tag(spans[0], 'peer.port'), (await owner(direct, k)).port);
      });
    });
  }
});
