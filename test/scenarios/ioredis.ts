/**
 * Differential scenarios for ioredis: commands in promise and callback form,
 * pipelines and transactions, and the ways a command fails: a reply error,
 * an unknown command, a wrong number of arguments, a failed pipeline
 * command, a refused connection, a command timeout, a closed client.
 */
import Redis from 'ioredis';
import type { Recorder, Scenario } from '../helpers/differential';
import { REDIS, uniqueName } from '../helpers/db';
import type { ScenarioEnv } from './env';

/** A fresh client for one run; its connection events are part of what the app sees. */
async function withRedis(rec: Recorder, fn: (redis: Redis) => Promise<void>, options: Record<string, unknown> = {}): Promise<void> {
  const redis = new Redis({ ...REDIS, ...options });
  for (const event of ['connect', 'ready', 'close', 'end']) redis.on(event, () => rec.event(`client ${event} event`));
  redis.on('error', (err: Error) => rec.error('client error event', err));
  try {
    await fn(redis);
  } finally {
    // disconnect, not quit: QUIT would be one more (traced) command.
    if (redis.status !== 'end') {
      const ended = new Promise((resolve) => redis.once('end', resolve));
      redis.disconnect();
      await ended;
    }
  }
}

function cb(rec: Recorder, where: string, start: (done: (err: Error | null | undefined, value?: unknown) => void) => unknown): Promise<void> {
  return new Promise((resolve) => {
    let returned: unknown;
    try {
      returned = start((err, value) => {
        if (err) rec.error(`${where}:callback error`, err);
        else rec.event(`${where}:callback result`, value);
        resolve();
      });
    } catch (err) {
      rec.error(`${where}:threw`, err);
      resolve();
      return;
    }
    rec.event(`${where}:returned`, returned instanceof Promise ? 'a promise' : typeof returned);
  });
}

export function ioredisScenarios(env: ScenarioEnv): Scenario[] {
  // One key per scenario, the same in every run (the runs are compared), removed after each run.
  const key = uniqueName('safety_diff');
  const scenarios: Scenario[] = [
    {
      name: 'SET then GET, promise form',
      spans: 3,
      run: (rec) =>
        withRedis(rec, async (r) => {
          await rec.settle('set', r.set(key, 'v1'), (v) => v);
          await rec.settle('get', r.get(key), (v) => v);
          await rec.settle('del', r.del(key), (v) => v);
        }),
    },
    {
      name: 'SET then GET, callback form',
      spans: 3,
      run: (rec) =>
        withRedis(rec, async (r) => {
          await cb(rec, 'set', (done) => r.set(key, 'v2', done));
          await cb(rec, 'get', (done) => r.get(key, done));
          await cb(rec, 'del', (done) => r.del(key, done));
        }),
    },
    {
      name: 'a pipeline and a transaction',
      spans: 2,
      run: (rec) =>
        withRedis(rec, async (r) => {
          await rec.settle('pipeline', r.pipeline().set(key, 'p').get(key).exec(), (v) => v);
          await rec.settle('multi', r.multi().incr(`${key}:n`).del(key, `${key}:n`).exec(), (v) => v);
        }),
    },
    {
      name: 'a pipeline with a failing command, callback form',
      spans: 1,
      run: (rec) =>
        withRedis(rec, (r) =>
          cb(rec, 'pipeline', (done) =>
            r
              .pipeline()
              .set(key, 'x')
              .lpush(key, 'y')
              .del(key)
              .exec((err, results) => done(err, results?.map(([e, v]) => (e ? `error: ${(e as Error).message}` : v)))),
          ),
        ),
    },
    {
      name: 'error reply: WRONGTYPE',
      spans: 3,
      run: (rec) =>
        withRedis(rec, async (r) => {
          await rec.settle('set', r.set(key, 'string'), (v) => v);
          await rec.settle('lpush', r.lpush(key, 'x'), (v) => v);
          await rec.settle('del', r.del(key), (v) => v);
        }),
    },
    {
      name: 'error reply: an unknown command',
      run: (rec) => withRedis(rec, async (r) => void (await rec.settle('call', r.call('NOSUCHCOMMAND', 'a', 'b'), (v) => v))),
    },
    {
      name: 'invalid argument: a wrong number of arguments',
      run: (rec) => withRedis(rec, async (r) => void (await rec.settle('set', (r as unknown as { set(k: string): Promise<unknown> }).set(key), (v) => v))),
    },
    {
      name: 'network error: connection refused, no retries',
      async run(rec) {
        await withRedis(
          rec,
          async (r) => {
            await rec.settle('get', r.get(key), (v) => v);
          },
          { port: env.closedPort, retryStrategy: () => null, maxRetriesPerRequest: 0 },
        );
      },
    },
    {
      name: 'timeout: commandTimeout on a blocking command',
      // Sent once the connection is ready: queued before, its 40 ms could run out during the
      // handshake of a loaded machine, in one mode and not the other (a different event order).
      run: (rec) =>
        withRedis(
          rec,
          async (r) => {
            if (r.status !== 'ready') await new Promise((resolve) => r.once('ready', resolve));
            await rec.settle('blpop', r.blpop(`${key}:empty`, 1), (v) => v);
          },
          { commandTimeout: 40 },
        ),
    },
    {
      name: 'a command on a client that has quit',
      spans: 2,
      run: (rec) =>
        withRedis(rec, async (r) => {
          await rec.settle('quit', r.quit(), (v) => v);
          await new Promise((resolve) => setTimeout(resolve, 20));
          await rec.settle('get', r.get(key), (v) => v);
        }),
    },
  ];
  return scenarios.map((s) => ({ ...s, name: `ioredis: ${s.name}` }));
}
