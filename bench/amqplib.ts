/**
 * A one-off benchmark row for amqplib: the publish + consume round trip
 * (publish one message, its consumer callback acks it, next message) on the
 * local RabbitMQ, each mode in its own process:
 *
 *   none  no instrumentation
 *   ours  installPatches(['amqplib']), jaeger-client, const sampler, spans kept in memory
 *   otel  @opentelemetry/instrumentation-amqplib, sdk-trace-base, spans kept in memory
 *
 *   npx ts-node --transpile-only bench/amqplib.ts [--messages N] [--rounds N]
 *
 * Prints mean microseconds per round trip (median of the rounds) and each
 * mode's overhead over `none`. Takes well under a minute.
 */
/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
import { spawnSync } from 'child_process';
import { randomBytes } from 'crypto';

const URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
type Mode = 'none' | 'ours' | 'otel';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
}

/** Sets up the mode before amqplib is required (OpenTelemetry hooks `require`); returns a way to drop kept spans. */
function setUp(mode: Mode): () => void {
  if (mode === 'ours') {
    const jaeger = require('jaeger-client');
    const reporter = new jaeger.InMemoryReporter();
    const tracer = jaeger.initTracer({ serviceName: 'bench', sampler: { type: 'const', param: 1 } }, { reporter });
    require('../src').installPatches(['amqplib'], { tracer });
    return () => reporter.clear();
  }
  if (mode === 'otel') {
    const api = require('@opentelemetry/api');
    const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
    const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
    const { AmqplibInstrumentation } = require('@opentelemetry/instrumentation-amqplib');
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.trace.setGlobalTracerProvider(provider);
    const instrumentation = new AmqplibInstrumentation();
    instrumentation.setTracerProvider(provider);
    instrumentation.enable();
    return () => exporter.reset();
  }
  return () => undefined;
}

async function worker(mode: Mode, messages: number, rounds: number): Promise<void> {
  const drop = setUp(mode);
  const amqp = require('amqplib');
  // noDelay: one small message at a time would otherwise wait on Nagle and delayed ACKs (~40 ms a trip).
  const conn = await amqp.connect(URL, { noDelay: true });
  const ch = await conn.createChannel();
  const queue = `bench_amqp_${process.pid}_${randomBytes(4).toString('hex')}`;
  await ch.assertQueue(queue, { autoDelete: false });
  let next: (() => void) | undefined;
  await ch.consume(queue, (m: any) => {
    if (m === null) return; // cancelled by deleteQueue
    ch.ack(m);
    next?.();
  });
  const roundTrip = (): Promise<void> =>
    new Promise((resolve) => {
      next = resolve;
      ch.sendToQueue(queue, Buffer.from('x'));
    });
  for (let i = 0; i < 300; i++) await roundTrip(); // warm-up
  const perRound: number[] = [];
  for (let r = 0; r < rounds; r++) {
    drop();
    const start = process.hrtime.bigint();
    for (let i = 0; i < messages; i++) await roundTrip();
    perRound.push(Number(process.hrtime.bigint() - start) / 1000 / messages);
  }
  await ch.deleteQueue(queue);
  await conn.close();
  perRound.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ mode, us: perRound[Math.floor(perRound.length / 2)] }));
}

function main(): void {
  const messages = arg('--messages', 2000);
  const rounds = arg('--rounds', 5);
  const results: Record<string, number> = {};
  for (const mode of ['none', 'ours', 'otel', 'none', 'ours', 'otel'] as Mode[]) {
    const run = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', __filename, '--worker', mode, '--messages', String(messages), '--rounds', String(rounds)], {
      encoding: 'utf8',
      timeout: 60000,
    });
    if (run.status !== 0) throw new Error(`${mode}: ${run.stderr}`);
    const { us } = JSON.parse(run.stdout) as { us: number };
    results[mode] = Math.min(results[mode] ?? Infinity, us);
  }
  const base = results.none;
  console.log(`amqplib publish + consume round trip, ${messages} messages x ${rounds} rounds, best of 2 runs of the median round`);
  console.log('| mode | us per round trip | overhead |');
  console.log('| --- | --- | --- |');
  for (const mode of ['none', 'ours', 'otel']) console.log(`| ${mode} | ${results[mode].toFixed(1)} | ${mode === 'none' ? '' : `+${(results[mode] - base).toFixed(1)} us`} |`);
  console.log(`ours / otel overhead: ${((results.ours - base) / (results.otel - base)).toFixed(2)} x`);
}

if (process.argv.includes('--worker')) {
  worker(process.argv[process.argv.indexOf('--worker') + 1] as Mode, arg('--messages', 2000), arg('--rounds', 5)).catch((err) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
