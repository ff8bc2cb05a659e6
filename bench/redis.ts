/**
 * node-redis `GET` rows (redis 6 / @redis/client 6.x): the cost per call of
 * this library (jaeger-client, a reporter that drops spans: mode 2b of the
 * main harness) against OpenTelemetry's `@opentelemetry/instrumentation-redis`
 * (SDK with `NoopSpanProcessor`: mode 4), each in its own process, calls made
 * in a parent span. Per mode: warm-up, then rounds alternating a block
 * installed and a block uninstalled; the figure is the median of the paired
 * per-round differences of wall time per call (µs), with the 25th–75th
 * percentiles. About 20 s on 2 cores:
 *
 *   npm run build && TS_NODE_TRANSPILE_ONLY=true node -r ts-node/register bench/build.ts && node dist-bench/bench/redis.js
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import { fork } from 'child_process';
import * as path from 'path';

const ROOT = path.join(__dirname, '..', '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);
const BLOCK = Number(process.env.BENCH_BLOCK ?? 1500);

interface Controller {
  on(): void;
  off(): void;
  inParent<T>(fn: () => T): T;
  close(): Promise<void>;
}

function ours(): Controller {
  const lib = require(path.join(ROOT, 'dist', 'index.js'));
  const dropping = { report() {}, close(cb?: () => void) { cb?.(); }, setProcess() {}, flush(cb?: () => void) { cb?.(); } };
  const tracer = lib.initTracer({ serviceName: 'bench', sampler: { type: 'const', param: 1 } }, { reporter: dropping });
  const parent = tracer.startSpan('bench-parent');
  lib.installPatches(['redis']);
  return {
    on: () => lib.installPatches(['redis']),
    off: () => lib.uninstallAllPatches(),
    inParent: (fn) => lib.spanInContext(parent, fn),
    async close() {
      lib.uninstallAllPatches();
      parent.finish();
      await lib.closeTracer();
    },
  };
}

function otel(): Controller {
  const api = require('@opentelemetry/api');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
  const base = require('@opentelemetry/sdk-trace-base');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation');
  const { RedisInstrumentation } = require('@opentelemetry/instrumentation-redis');
  const provider = new NodeTracerProvider({ sampler: new base.AlwaysOnSampler(), spanProcessors: [new base.NoopSpanProcessor()] });
  provider.register();
  const instrumentation = new RedisInstrumentation();
  registerInstrumentations({ instrumentations: [instrumentation], tracerProvider: provider });
  const parent = provider.getTracer('bench').startSpan('bench-parent');
  const parentContext = api.trace.setSpan(api.context.active(), parent);
  return {
    on: () => instrumentation.enable(),
    off: () => instrumentation.disable(),
    inParent: (fn) => api.context.with(parentContext, fn),
    async close() {
      instrumentation.disable();
      parent.end();
      await provider.shutdown();
    },
  };
}

async function block(client: { get(k: string): Promise<unknown> }, c: Controller, inFlight: number): Promise<number> {
  const start = process.hrtime.bigint();
  await c.inParent(async () => {
    let left = BLOCK;
    const lane = async (): Promise<void> => {
      while (left-- > 0) await client.get('ot_bench_noderedis');
    };
    await Promise.all(Array.from({ length: inFlight }, lane));
  });
  return Number(process.hrtime.bigint() - start) / 1000 / BLOCK;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function worker(mode: string): Promise<void> {
  const c = mode === 'ours' ? ours() : otel();
  const { createClient } = require('redis');
  const client = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  await client.connect();
  const result: Record<string, string> = {};
  for (const inFlight of [1, 32]) {
    c.on();
    await block(client, c, inFlight); // warm-up
    const diffs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [true, false] : [false, true];
      const t: Record<string, number> = {};
      for (const installed of order) {
        if (installed) c.on();
        else c.off();
        for (let i = 0; i < 20; i++) await client.get('ot_bench_noderedis'); // untimed after a switch
        t[String(installed)] = await block(client, c, inFlight);
      }
      diffs.push(t.true - t.false);
    }
    diffs.sort((a, b) => a - b);
    result[inFlight] = `${quantile(diffs, 0.5).toFixed(1)} µs (${quantile(diffs, 0.25).toFixed(1)}–${quantile(diffs, 0.75).toFixed(1)})`;
  }
  await client.quit();
  await c.close();
  process.send?.(result);
}

async function main(): Promise<void> {
  const rows: string[] = ['| node-redis GET (redis 6) | 1 in flight | 32 in flight |', '| --- | ---: | ---: |'];
  for (const mode of ['ours', 'otel']) {
    const result = await new Promise<Record<string, string>>((resolve, reject) => {
      const child = fork(__filename, ['--worker', mode]);
      child.once('message', (m) => resolve(m as Record<string, string>));
      child.once('exit', (code) => (code ? reject(new Error(`${mode} worker exited ${code}`)) : undefined));
    });
    rows.push(`| ${mode === 'ours' ? 'this library (jaeger-client, spans dropped)' : 'OpenTelemetry instrumentation-redis (NoopSpanProcessor)'} | ${result[1]} | ${result[32]} |`);
  }
  process.stdout.write(rows.join('\n') + '\n');
}

if (process.argv[2] === '--worker') void worker(process.argv[3]);
else void main();
