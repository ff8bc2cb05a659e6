/**
 * The test side of the fuzz suites (test/fuzz.test.ts, test/w3c-fuzz.test.ts):
 * a seeded PRNG, the fuzzed application run as a child process
 * (test/helpers/fuzz-app.ts is its skeleton), and the driver that sends it
 * hostile requests, 16 at a time, and fetches its figures.
 */
import assert from 'assert';
import { fork, type ChildProcess } from 'child_process';
import * as http from 'http';
import * as path from 'path';
import type { FuzzAppStats } from './fuzz-app';

export const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 10000);
export const WARM_UP = 1000;
export const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Heap growth allowed between the warm-up and the end (after full GCs). */
export const MAX_HEAP_GROWTH = 4 * 1024 * 1024;
/** What a failure message says to replay the run. */
export const REPLAY = `(replay with FUZZ_SEED=${SEED})`;

export type Rand = () => number;

/** mulberry32: a small seeded PRNG, so that a failing run can be replayed with FUZZ_SEED. */
export function prng(seed: number): Rand {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const int = (r: Rand, min: number, max: number): number => min + Math.floor(r() * (max - min + 1));
export const pick = <T>(r: Rand, items: readonly T[]): T => items[Math.floor(r() * items.length)]!;

export const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(2)} MB`;

/** The first message from the child that carries `key`: its value. */
export function message<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: Record<string, unknown>): void => {
      if (msg && key in msg) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(msg[key] as T);
      }
    };
    const onExit = (code: number | null, signal: string | null): void => reject(new Error(`the application exited (${code ?? signal}) waiting for ${key}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export interface FuzzChild {
  child: ChildProcess;
  port: number;
  /** What the child wrote to stderr so far. */
  stderr: string;
}

/**
 * Registers `before` and `after` hooks in the calling `describe` that start
 * test/fuzz/`script` (with `--expose-gc`) and stop it; the returned object is
 * filled in by the `before` hook.
 */
export function useFuzzChild(script: string): FuzzChild {
  const app = { stderr: '' } as FuzzChild;
  before(async function () {
    this.timeout(60000);
    app.child = fork(path.join(__dirname, '..', 'fuzz', script), [], {
      execArgv: ['--expose-gc', '-r', 'ts-node/register'],
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: 'true', TS_NODE_PROJECT: path.join(__dirname, '..', '..', 'tsconfig.json') },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    app.child.stderr?.on('data', (d: Buffer) => (app.stderr += d.toString()));
    app.port = await message<number>(app.child, 'port');
  });
  after(async () => {
    const { child } = app;
    if (child.exitCode === null && child.connected) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send('exit');
      await exited;
    }
  });
  return app;
}

export interface FuzzOutcome {
  /** Requests answered 200. */
  ok: number;
  /** Requests Node's own parser refused before any application code. */
  refusedByNode: number;
  lost: string[];
}

/** The heap figures, measured by the time the child reports. */
export interface HeapFigures {
  heapBaseline: number;
  heapEnd: number;
}

export interface FuzzRun<S> {
  outcome: FuzzOutcome;
  stats: S & HeapFigures;
  /** From the first warm-up request to the last request answered. */
  ms: number;
  /** `stats.heapEnd - stats.heapBaseline`. */
  growth: number;
}

/**
 * Sends `WARM_UP` requests, has the child measure its heap, sends `REQUESTS`
 * more and asks for its figures. `next(i)` makes request `i`'s headers (and
 * says whether they are near Node's header limit: a 431 or a reset is then
 * Node refusing them, not a lost request); with `badRequestIsNodes`, a 400 is
 * Node's parser refusing them too.
 */
export async function fuzzRequests<S extends FuzzAppStats>(
  app: FuzzChild,
  opts: {
    pathPrefix: string;
    next: (i: number) => { headers: http.OutgoingHttpHeaders | string[]; oversized?: boolean };
    badRequestIsNodes?: boolean;
  },
): Promise<FuzzRun<S>> {
  const { child, port } = app;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const outcome: FuzzOutcome = { ok: 0, refusedByNode: 0, lost: [] };

  function send(i: number): Promise<void> {
    const { headers, oversized = false } = opts.next(i);
    return new Promise((resolve) => {
      let req: http.ClientRequest;
      try {
        req = http.request({ host: '127.0.0.1', port, path: `${opts.pathPrefix}${i}`, headers, agent });
      } catch (err) {
        outcome.lost.push(`request ${i}: the test's own client refused its headers (${(err as Error).message})`);
        resolve();
        return;
      }
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) outcome.ok++;
          else if ((res.statusCode === 431 && oversized) || (res.statusCode === 400 && opts.badRequestIsNodes)) outcome.refusedByNode++;
          else outcome.lost.push(`request ${i}: status ${res.statusCode}`);
          resolve();
        });
      });
      req.on('error', (err) => {
        // Node's parser answers 431 and closes; a request written meanwhile on that socket is reset.
        if (oversized) outcome.refusedByNode++;
        else outcome.lost.push(`request ${i}: ${err.message}`);
        resolve();
      });
      req.end();
    });
  }

  async function run(from: number, count: number): Promise<void> {
    let next = from;
    const worker = async (): Promise<void> => {
      while (next < from + count) await send(next++);
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  }

  const started = Date.now();
  await run(0, WARM_UP);
  child.send('baseline');
  await message<number>(child, 'baseline');
  await run(WARM_UP, REQUESTS);
  const ms = Date.now() - started;
  agent.destroy();
  child.send('report');
  const stats = await message<S & HeapFigures>(child, 'stats');
  return { outcome, stats, ms, growth: stats.heapEnd - stats.heapBaseline };
}

/** The reliability note on the child's heap. */
export function heapNote({ stats, growth }: FuzzRun<FuzzAppStats>): string {
  return `heap after full GCs (child run with --expose-gc): ${mb(stats.heapBaseline)} after the warm-up, ${mb(stats.heapEnd)} after ${REQUESTS} more requests (${growth >= 0 ? '+' : ''}${mb(growth)})`;
}

/** No request lost, no exception in the process or the handler, no failed downstream call. */
export function assertNothingLost({ outcome, stats }: FuzzRun<FuzzAppStats>, stderr: string): void {
  assert.deepStrictEqual(outcome.lost.slice(0, 10), [], `${outcome.lost.length} requests lost ${REPLAY}`);
  assert.deepStrictEqual(stats.uncaught.slice(0, 5), [], `exceptions reached the process ${REPLAY}\n${stderr}`);
  assert.strictEqual(stats.handlerExceptions, 0, `exceptions reached the handler ${REPLAY}`);
  assert.deepStrictEqual(stats.downstreamErrors.slice(0, 5), [], `downstream calls failed ${REPLAY}`);
}
