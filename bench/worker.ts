/**
 * One measured process: sets one mode up, then, per client and concurrency,
 * runs alternated blocks of calls with the instrumentation on and off and
 * reports wall and CPU time per call of each block and their paired
 * differences. With `task: 'memory'` it measures the heap after many calls
 * instead (run with --expose-gc); with `task: 'flush'` (modes 3 and 3o), the
 * event-loop delay while the tracer flushes 20,000 finished spans.
 *
 * Block sizes are set per client from its measured call time (uninstrumented),
 * so that every block lasts about `blockMs` whatever the client costs: a
 * 7 ms S3 call and a 20 µs Redis GET get the same resolution per round.
 *
 * Input: a JSON `WorkerInput` as argv[2]. Output: one line `RESULT <json>` on stdout.
 */
import * as path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import { ROOT } from './paths';
import { FLUSH_WINDOW_MS, setupMode, type Controller, type ModeId } from './modes';
import { concurrencyFor, makeClient, type Client, type ClientName, type Targets } from './clients';
import { summarize, type Summary } from './stats';

export interface Counts {
  /** Calls per state before measuring, at most (fewer when `warmupMs` is reached first). */
  warmup: number;
  warmupMs: number;
  /** Calls per block; 0: as many as fill about `blockMs` (from the client's call time, uninstrumented). */
  block: number;
  blockMs: number;
  /** Rounds; each is one block on and one block off, in alternating order. */
  rounds: number;
  /** Untimed calls after each switch on or off, before the block (inline caches, deopts settle): at most this, at most a tenth of a block. */
  settle: number;
}

export interface WorkerInput {
  task: 'latency' | 'memory' | 'flush';
  mode: ModeId;
  clients: ClientName[];
  concurrency: number[];
  counts: Counts;
  /** Memory task: calls between the two heap readings, at most (fewer for a slow client: `memoryMs` per reading). */
  memoryCalls: number;
  memoryMs: number;
  /** Flush task: spans finished before the flush. */
  flushSpans: number;
  targets: Targets;
  udpPort: number;
  closedPort: number;
  /** A client that fails fails the worker (the smoke run); otherwise its rows say why and the others go on. */
  strict: boolean;
}

export interface FlushResult {
  mode: ModeId;
  spans: number;
  /** Event-loop delay while the flush ran (perf_hooks.monitorEventLoopDelay, 1 ms resolution), ms. */
  p50: number;
  p99: number;
  max: number;
  /** From flushTracer() called to resolved, ms. */
  flushMs: number;
}

export interface PerCall {
  wall: Summary;
  cpu: Summary;
}

export interface LatencyResult {
  client: ClientName;
  concurrency: number;
  /** Calls per block and rounds actually run. */
  block?: number;
  rounds?: number;
  unsupported?: string;
  on?: PerCall;
  off?: PerCall;
  /** on minus off, paired per round. */
  added?: PerCall;
}

export interface MemoryResult {
  client: ClientName;
  unsupported?: string;
  calls: number;
  /** heapUsed after a full GC, bytes: before and after `calls` calls, instrumentation off then on. */
  off?: { before: number; after: number };
  on?: { before: number; after: number };
}

export interface WorkerOutput {
  mode: ModeId;
  latency: LatencyResult[];
  memory: MemoryResult[];
  flush?: FlushResult;
}

/** Runs `n` calls with at most `concurrency` in flight. */
async function runCalls(client: Client, concurrency: number, n: number): Promise<void> {
  let started = 0;
  const lane = async (): Promise<void> => {
    while (started < n) {
      started++;
      await client.call();
    }
  };
  const lanes: Array<Promise<void>> = [];
  for (let i = 0; i < Math.min(concurrency, n); i++) lanes.push(lane());
  await Promise.all(lanes);
}

interface Block {
  wallUs: number;
  cpuUs: number;
}

async function timedBlock(client: Client, concurrency: number, n: number): Promise<Block> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await runCalls(client, concurrency, n);
  const wallNs = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  return { wallUs: wallNs / 1000 / n, cpuUs: (cpu.user + cpu.system) / n };
}

/** Wall µs per call of the client, uninstrumented, at this concurrency (after a few calls to open connections). */
async function callTime(mode: Controller, client: Client, concurrency: number): Promise<number> {
  mode.off();
  await client.prepare?.(false);
  await runCalls(client, concurrency, Math.max(10, concurrency));
  let n = Math.max(20, concurrency * 2);
  for (;;) {
    const t0 = process.hrtime.bigint();
    await runCalls(client, concurrency, n);
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (us > 20_000 || n >= 5000) return us / n;
    n *= 4;
  }
}

async function latency(mode: Controller, client: Client, concurrency: number, counts: Counts): Promise<LatencyResult> {
  // A fixed block and no warm-up time (the smoke run): nothing to calibrate.
  const perCall = counts.block > 0 && counts.warmupMs === 0 ? 1 : await callTime(mode, client, concurrency);
  const block = counts.block > 0 ? counts.block : Math.max(4, Math.round((counts.blockMs * 1000) / perCall));
  const warmup = Math.max(Math.min(10, counts.warmup), Math.min(counts.warmup, Math.round((counts.warmupMs * 1000) / perCall)));
  const settle = Math.max(Math.min(2, counts.settle), Math.min(counts.settle, Math.round(block / 10)));
  mode.on();
  await client.prepare?.(true);
  await runCalls(client, concurrency, warmup);
  mode.off();
  await client.prepare?.(false);
  await runCalls(client, concurrency, warmup);
  const on: Block[] = [];
  const off: Block[] = [];
  for (let r = 0; r < counts.rounds; r++) {
    const order = r % 2 === 0 ? [true, false] : [false, true];
    for (const instrumented of order) {
      if (instrumented) mode.on();
      else mode.off();
      await client.prepare?.(instrumented);
      await runCalls(client, concurrency, settle);
      (instrumented ? on : off).push(await timedBlock(client, concurrency, block));
    }
  }
  mode.on();
  const per = (blocks: Block[]): PerCall => ({
    wall: summarize(blocks.map((b) => b.wallUs)),
    cpu: summarize(blocks.map((b) => b.cpuUs)),
  });
  return {
    client: client.name,
    concurrency,
    block,
    rounds: counts.rounds,
    on: per(on),
    off: per(off),
    added: {
      wall: summarize(on.map((b, i) => b.wallUs - off[i].wallUs)),
      cpu: summarize(on.map((b, i) => b.cpuUs - off[i].cpuUs)),
    },
  };
}

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') throw new Error('the memory task needs node --expose-gc');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

async function memory(mode: Controller, client: Client, maxCalls: number, maxMs: number, warmup: number): Promise<MemoryResult> {
  const calls = Math.min(maxCalls, Math.max(1000, Math.round((maxMs * 1000) / (await callTime(mode, client, 32)))));
  const reading = async (): Promise<{ before: number; after: number }> => {
    await runCalls(client, 32, warmup);
    const before = heapAfterGc();
    await runCalls(client, 32, calls);
    const after = heapAfterGc();
    return { before, after };
  };
  mode.off();
  const off = await reading();
  mode.on();
  const on = await reading();
  return { client: client.name, calls, off, on };
}

/** Spans finished per turn of the event loop in the flush task: an application's burst, about 0.5 ms of span work a turn. */
const SPANS_PER_TURN = 100;

/**
 * The event loop while the tracer takes `spans` finished spans and sends
 * them: the spans are finished SPANS_PER_TURN per turn of the loop (as a busy
 * application finishes them), so whatever the reporter does when its queue
 * fills (the UDP reporter encodes and sends at once past a threshold, the
 * OTLP exporter hands a batch over) lands between the turns, then
 * flushTracer() sends the rest. The delay histogram runs over all of it.
 */
async function flush(mode: ModeId, spans: number): Promise<FlushResult> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { globalTracer } = require('opentracing') as typeof import('opentracing');
  const lib = require(path.join(ROOT, 'dist', 'index.js')) as typeof import('../src/index');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const tracer = globalTracer();
  const parent = tracer.startSpan('bench-flush-parent');
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < spans; ) {
    for (const end = Math.min(spans, done + SPANS_PER_TURN); done < end; done++) {
      const span = tracer.startSpan('pg:SELECT', {
        childOf: parent,
        tags: { 'span.kind': 'client', component: 'pg', 'db.type': 'sql', 'db.instance': 'test', 'db.statement': 'SELECT name FROM users WHERE id = $1', 'peer.port': 5432 },
      });
      span.finish();
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  // At most FLUSH_WINDOW_MS: the encoding is done by then, and what may follow is OpenTelemetry's
  // exporter retrying the refused connection with backoff (3o), idle time that would only dilute
  // the percentiles (a 1 ms tick per idle millisecond).
  await lib.flushTracer(FLUSH_WINDOW_MS);
  const flushMs = Number(process.hrtime.bigint() - t0) / 1e6;
  await new Promise((resolve) => setTimeout(resolve, 20));
  histogram.disable();
  parent.finish();
  const ms = (ns: number): number => ns / 1e6;
  return { mode, spans, p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), flushMs };
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2]) as WorkerInput;
  // The mode first: its require hooks must be in place before the clients load.
  const mode = setupMode(input.mode, {
    udpPort: input.udpPort,
    closedPort: input.closedPort,
    otlpQueueSize: input.task === 'flush' ? input.flushSpans * 2 : undefined,
  });
  const output: WorkerOutput = { mode: input.mode, latency: [], memory: [] };
  if (input.task === 'flush') {
    output.flush = await flush(input.mode, input.flushSpans);
    await closeWithin(mode, 1000);
    finish(output);
    return;
  }
  await mode.inParent(async () => {
    for (const name of input.clients) {
      const skip = (reason: string): void => {
        if (input.task === 'latency') {
          for (const concurrency of concurrencyFor(name, input.concurrency)) {
            if (!output.latency.some((l) => l.client === name && l.concurrency === concurrency)) {
              output.latency.push({ client: name, concurrency, unsupported: reason });
            }
          }
        } else {
          output.memory.push({ client: name, unsupported: reason, calls: input.memoryCalls });
        }
      };
      const unsupported = mode.unsupported(name);
      if (unsupported !== undefined) {
        skip(unsupported);
        continue;
      }
      try {
        const client = await makeClient(name, input.targets);
        try {
          if (input.task === 'latency') {
            for (const concurrency of concurrencyFor(name, input.concurrency)) {
              output.latency.push(await latency(mode, client, concurrency, input.counts));
            }
          } else {
            output.memory.push(await memory(mode, client, input.memoryCalls, input.memoryMs, Math.min(input.counts.warmup, 1000)));
          }
        } finally {
          await client.close();
        }
      } catch (err) {
        // A full run keeps the other clients' figures (half an hour of them); the smoke run fails loudly.
        if (input.strict) throw err;
        process.stderr.write(`bench worker, mode ${input.mode}, ${name} failed: ${err instanceof Error ? err.stack : String(err)}\n`);
        skip(`failed: ${err instanceof Error ? err.message : String(err)}`.replace(/\|/g, '/').slice(0, 120));
      }
    }
  });
  await closeWithin(mode, 1000);
  finish(output);
}

/**
 * Closes the mode, waiting at most `ms`: an exporter sending to the closed
 * port (3o, 4e) retries with backoff for seconds, which measures nothing.
 */
async function closeWithin(mode: Controller, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([mode.close().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Prints the result and exits (whatever timers of a tracer or client would still hold the process). */
function finish(output: WorkerOutput): void {
  process.stdout.write(`RESULT ${JSON.stringify(output)}\n`, () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`bench worker failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
