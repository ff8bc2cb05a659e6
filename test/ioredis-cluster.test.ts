import assert from 'assert';
import type IORedis from 'ioredis';
import type { Cluster } from 'ioredis';
import { spanInContext, suppressInstrumentation } from '../src';
import { patchModuleAs } from '../src/patcher';
import { assertLoggedAs, uniqueName } from './helpers/db';
import { useLocalCluster } from './helpers/redis-cluster';
import { logs, parentId, spanId, tag, tags, useTracing, type JaegerSpan, type TestTracer } from './helpers/tracing';

type RedisClass = typeof IORedis;

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

/** The port of the node that serves `key`, from the cluster client's own slot table. */
async function ownerPort(cluster: Cluster, key: string): Promise<number> {
  const slot = Number(await suppressInstrumentation(() => cluster.cluster('KEYSLOT', key)));
  const nodes = (cluster as unknown as { slots: string[][] }).slots[slot];
  return Number(nodes[0].split(':')[1]);
}

describe('ioredis patch on a local Redis Cluster', () => {
  const localCluster = useLocalCluster();

  for (const version of VERSIONS) {
    describe(version.label, () => {
      const t = useTracing(['ioredis']);
      const Redis = version.load();
      const prefix = uniqueName('ot_cluster');
      let cluster: Cluster;

      before(async () => {
        if (version.alias) patchModuleAs('ioredis', Redis);
        cluster = new Redis.Cluster(localCluster().nodes, { lazyConnect: true });
        await suppressInstrumentation(() => cluster.connect());
      });
      after(async () => {
        await suppressInstrumentation(async () => {
          try {
            for (const node of cluster.nodes('master')) {
              for (const key of await node.keys(`*${prefix}*`)) await cluster.del(key);
            }
          } finally {
            await cluster.quit();
          }
        });
      });

      it('one span per command, under its caller, tagged with the node that served it', async () => {
        const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map((k) => `${prefix}:${k}`);
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, async () => {
          for (const k of keys) await cluster.set(k, 'v');
        });
        parent.finish();
        const spans = redisSpans(t);
        assert.deepStrictEqual(
          spans.map((s) => s.operationName),
          keys.map(() => 'redis:SET'),
        );
        const served = new Set<number>();
        for (let i = 0; i < keys.length; i++) {
          const port = await ownerPort(cluster, keys[i]);
          served.add(port);
          assert.deepStrictEqual(tags(spans[i]), {
            'span.kind': 'client',
            component: 'ioredis',
            'db.type': 'redis',
            'db.statement': `SET ${keys[i]} [1 other argument]`,
            'db.instance': '0',
            'peer.ipv4': '127.0.0.1',
            'peer.port': port,
          });
          assert.strictEqual(parentId(spans[i]), spanId(parent));
        }
        assert.ok(served.size > 1, 'the keys are spread over several nodes');
      });

      it('a MOVED redirection is followed within the one span, tagged with the node that answered', async () => {
        const key = `${prefix}:moved`;
        const right = await ownerPort(cluster, key);
        const wrong = localCluster().ports.find((p) => p !== right)!;
        const slot = Number(await suppressInstrumentation(() => cluster.cluster('KEYSLOT', key)));
        const table = (cluster as unknown as { slots: string[][] }).slots;
        table[slot] = [`127.0.0.1:${wrong}`]; // a stale slot table: the wrong node answers MOVED
        const refreshed = new Promise((resolve) => cluster.once('refresh', resolve));
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, () => cluster.set(key, 'v'));
        parent.finish();
        // The slot refresh that MOVED triggers (CLUSTER SLOTS) is the cluster's housekeeping: not traced.
        await refreshed;
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepStrictEqual(
          t.spans().map((s) => s.operationName),
          ['redis:SET', 'parent'],
        );
        const sets = redisSpans(t).filter((s) => s.operationName === 'redis:SET');
        assert.strictEqual(sets.length, 1);
        assert.strictEqual(tag(sets[0], 'error'), undefined);
        assert.strictEqual(tag(sets[0], 'peer.port'), right);
        assert.strictEqual(parentId(sets[0]), spanId(parent));
      });

      it('a command issued before the cluster is ready gives one span under its caller', async () => {
        const lazy = new Redis.Cluster(localCluster().nodes, { lazyConnect: true });
        const connector = t.tracer.startSpan('connector');
        const caller = t.tracer.startSpan('caller');
        try {
          const ready = spanInContext(connector, () => lazy.connect());
          const got = spanInContext(caller, () => lazy.get(`${prefix}:early`));
          await ready;
          assert.strictEqual(await got, null);
        } finally {
          connector.finish();
          caller.finish();
          await suppressInstrumentation(() => lazy.quit());
        }
        const gets = redisSpans(t).filter((s) => s.operationName === 'redis:GET');
        assert.strictEqual(gets.length, 1);
        assert.strictEqual(parentId(gets[0]), spanId(caller));
        assert.strictEqual(tag(gets[0], 'peer.port'), await ownerPort(cluster, `${prefix}:early`));
      });

      it('pipeline() and multi() on one slot: one span each, tagged with the node', async () => {
        const a = `${prefix}:{tag}:a`;
        const b = `${prefix}:{tag}:b`;
        const parent = t.tracer.startSpan('parent');
        const [piped, multi] = await spanInContext(parent, async () => [
          await cluster.pipeline().set(a, '1').get(a).exec(),
          await cluster.multi().set(b, '2').get(b).exec(),
        ]);
        parent.finish();
        assert.deepStrictEqual(piped, [
          [null, 'OK'],
          [null, '1'],
        ]);
        assert.deepStrictEqual(multi, [
          [null, 'OK'],
          [null, '2'],
        ]);
        const spans = redisSpans(t);
        assert.deepStrictEqual(
          spans.map((s) => s.operationName),
          ['redis:PIPELINE', 'redis:MULTI'],
        );
        const port = await ownerPort(cluster, a);
        for (const s of spans) {
          assert.strictEqual(tag(s, 'peer.port'), port);
          assert.strictEqual(parentId(s), spanId(parent));
        }
        assert.strictEqual(tag(spans[0], 'db.statement'), `SET ${a} ...; GET ${a}`);
      });

      it('a WRONGTYPE error through the cluster: tagged, same error to the app', async () => {
        const key = `${prefix}:list`;
        await suppressInstrumentation(() => cluster.lpush(key, 'x'));
        const err = await cluster.get(key).then(
          () => assert.fail('expected WRONGTYPE'),
          (e: Error) => e,
        );
        assert.match(err.message, /^WRONGTYPE/);
        const [span] = redisSpans(t);
        assert.strictEqual(tag(span, 'error'), true);
        assertLoggedAs(logs(span)[0]['error.object'], err);
      });
    });
  }
});
