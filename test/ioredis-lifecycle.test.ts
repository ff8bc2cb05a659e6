/**
 * ioredis connection lifecycle: every span a command started ends, also when
 * ioredis itself never settles the command (a client disconnected while it
 * waited to reconnect), and the connection's own housekeeping (QUIT at
 * shutdown, re-subscribing and SELECT after a reconnect) starts no trace.
 */
import assert from 'assert';
import Redis from 'ioredis';
import { installPatches, spanInContext, uninstallAllPatches } from '../src';
import { REDIS, uniqueName } from './helpers/db';
import { createTestTracer, parentId, spanId, tag, waitFor, type TestTracer } from './helpers/tracing';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Cuts the client's socket from under it, as a network failure would. */
function cut(redis: Redis): void {
  (redis as unknown as { stream: { destroy(): void } }).stream.destroy();
}

describe('ioredis: connection lifecycle', () => {
  let t: TestTracer;
  beforeEach(() => {
    t = createTestTracer();
    installPatches(['ioredis'], { tracer: t.tracer });
  });
  afterEach(() => uninstallAllPatches());

  const names = (): string[] => t.spans().map((s) => s.operationName);

  it('a command waiting to be resent when the app disconnects for good: its span ends, failed', async () => {
    const redis = new Redis({ ...REDIS, retryStrategy: () => 200 });
    redis.on('error', () => undefined);
    await redis.ping();
    const key = uniqueName('ot_abandoned');
    // Never settled by ioredis: the promise is left pending, as without instrumentation.
    void redis.blpop(key, 1);
    await sleep(20);
    cut(redis);
    await waitFor(() => redis.status === 'reconnecting');
    redis.disconnect();
    await waitFor(() => t.accounting.open.size === 0, 2000, 'the BLPOP span ended');
    const blpop = t.spans().find((s) => s.operationName === 'redis:BLPOP')!;
    assert.strictEqual(tag(blpop, 'error'), true);
  });

  it('QUIT at shutdown, outside any trace, starts no trace; inside one it is a child', async () => {
    const a = new Redis(REDIS);
    await a.ping();
    await a.quit();
    const b = new Redis(REDIS);
    await b.ping();
    const parent = t.tracer.startSpan('shutdown');
    await spanInContext(parent, () => b.quit());
    parent.finish();
    assert.deepStrictEqual(names().sort(), ['redis:PING', 'redis:PING', 'redis:QUIT', 'shutdown']);
    assert.strictEqual(parentId(t.spans().find((s) => s.operationName === 'redis:QUIT')!), spanId(parent));
  });

  it('a subscriber that reconnects re-subscribes (and re-selects its db) without starting traces', async () => {
    const channel = uniqueName('ot_channel');
    const sub = new Redis({ ...REDIS, db: 1 });
    const pub = new Redis(REDIS);
    try {
      await sub.subscribe(channel);
      t.clear();
      const ready = new Promise((resolve) => sub.once('ready', resolve));
      cut(sub);
      await ready;
      // Subscribed again: a message reaches it.
      const got = new Promise((resolve) => sub.once('message', (_c, m) => resolve(m)));
      let received: unknown;
      for (let i = 0; i < 50 && received === undefined; i++) {
        await pub.publish(channel, 'hello');
        received = await Promise.race([got, sleep(20)]);
      }
      assert.strictEqual(received, 'hello');
      assert.deepStrictEqual([...new Set(names())], ['redis:PUBLISH'], 'only the application\'s own PUBLISH calls');
    } finally {
      sub.disconnect();
      pub.disconnect();
    }
  });

  it('an auto-pipeline rejected as a whole ends the spans of its commands with its error', async () => {
    // What Pipeline.exec does for a Cluster batch whose keys no longer share a
    // slot (a slot moved between queueing and exec): it rejects the pipeline
    // and never settles its commands; each caller gets the pipeline's error.
    const redis = new Redis({ ...REDIS, enableAutoPipelining: true });
    const key = uniqueName('ot_auto');
    try {
      await redis.ping();
      t.clear();
      const calls = [redis.set(`${key}:1`, 'a', 'EX', 60), redis.get(`${key}:2`)].map((p) => p.then(() => 'ok', (e: Error) => e.message));
      const pending = (redis as unknown as { _autoPipelines: Map<string, { reject(err: Error): void; exec: unknown }> })._autoPipelines;
      const [pipeline] = [...pending.values()];
      const exec = pipeline.exec as (...args: unknown[]) => unknown;
      pipeline.exec = function (this: typeof pipeline, ...args: unknown[]) {
        const result = exec.apply(this, args);
        this.reject(new Error('All keys in the pipeline should belong to the same slots allocation group'));
        return result;
      };
      assert.deepStrictEqual(await Promise.all(calls), [
        'All keys in the pipeline should belong to the same slots allocation group',
        'All keys in the pipeline should belong to the same slots allocation group',
      ]);
      await waitFor(() => t.accounting.open.size === 0, 2000, 'every command span ended');
      assert.deepStrictEqual(names().sort(), ['redis:GET', 'redis:SET']);
      for (const span of t.spans()) assert.strictEqual(tag(span, 'error'), true);
    } finally {
      await redis.del(`${key}:1`);
      redis.disconnect();
    }
  });

  it('a command the application sends from its ready listener is traced', async () => {
    const redis = new Redis({ ...REDIS, lazyConnect: true });
    try {
      const sent = new Promise((resolve) => redis.once('ready', () => resolve(redis.ping())));
      await redis.connect();
      assert.strictEqual(await sent, 'PONG');
      assert.deepStrictEqual(names(), ['redis:PING']);
    } finally {
      redis.disconnect();
    }
  });
});
