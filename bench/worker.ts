/**
 * One measured process: sets one mode up, then, per client and concurrency,
 * runs alternated blocks of calls with the instrumentation on and off and
 * reports wall and CPU time per call of each block and their paired
 * differences. With `task: 'memory'` it measures the heap after many calls
 * instead (run with --expose-gc).
 *
 * Input: a JSON `WorkerInput` as argv[2]. Output: one line `RESULT <json>` on stdout.
 */
import { setupMode, type Controller, type ModeId } from './modes';
import { makeClient, type Client, type ClientName } from './clients';
import { summarize, type Summary } from './stats';

export interface Counts {
  /** Calls per state before measuring. */
  warmup: number;
  /** Calls per block. */
  block: number;
  /** Rounds; each is one block on and one block off, in alternating order. */
  rounds: number;
  /** Untimed calls after each switch on or off, before the block (inline caches, deopts settle). */
  settle: number;
}

export interface WorkerInput {
  task: 'latency' | 'memory';
  mode: ModeId;
  clients: ClientName[];
  concurrency: number[];
  counts: Counts;
  /** Memory task: calls between the two heap readings. */
  memoryCalls: number;
  httpPort: number;
  udpPort: number;
}

export interface PerCall {
  wall: Summary;
  cpu: Summary;
}

export interface LatencyResult {
  client: ClientName;
  concurrency: number;
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

async function latency(mode: Controller, client: Client, concurrency: number, counts: Counts): Promise<LatencyResult> {
  mode.on();
  await runCalls(client, concurrency, counts.warmup);
  mode.off();
  await runCalls(client, concurrency, counts.warmup);
  const on: Block[] = [];
  const off: Block[] = [];
  for (let r = 0; r < counts.rounds; r++) {
    const order = r % 2 === 0 ? [true, false] : [false, true];
    for (const instrumented of order) {
      if (instrumented) mode.on();
      else mode.off();
      await runCalls(client, concurrency, counts.settle);
      const block = await timedBlock(client, concurrency, counts.block);
      (instrumented ? on : off).push(block);
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

async function memory(mode: Controller, client: Client, calls: number, warmup: number): Promise<MemoryResult> {
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

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2]) as WorkerInput;
  // The mode first: its require hooks must be in place before the clients load.
  const mode = setupMode(input.mode, { udpPort: input.udpPort });
  const output: WorkerOutput = { mode: input.mode, latency: [], memory: [] };
  await mode.inParent(async () => {
    for (const name of input.clients) {
      const unsupported = mode.unsupported(name);
      if (unsupported !== undefined) {
        if (input.task === 'latency') {
          for (const concurrency of input.concurrency) output.latency.push({ client: name, concurrency, unsupported });
        } else {
          output.memory.push({ client: name, unsupported, calls: input.memoryCalls });
        }
        continue;
      }
      const client = await makeClient(name, { httpPort: input.httpPort });
      try {
        if (input.task === 'latency') {
          for (const concurrency of input.concurrency) {
            output.latency.push(await latency(mode, client, concurrency, input.counts));
          }
        } else {
          output.memory.push(await memory(mode, client, input.memoryCalls, input.counts.warmup));
        }
      } finally {
        await client.close();
      }
    }
  });
  await mode.close();
  process.stdout.write(`RESULT ${JSON.stringify(output)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench worker failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
