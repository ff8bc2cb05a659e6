/**
 * S3 `PutObject` (AWS SDK v3, 1 in flight, 5-byte body, to a peer process
 * that answers every request `200` with an `ETag`, as S3 answers PutObject:
 * s3rver itself takes 6-17 ms a call on a shared machine, whose noise hides
 * a cost of tens of microseconds): the cost per call of this library's `aws-sdk` patch next to
 * OpenTelemetry's `@opentelemetry/instrumentation-aws-sdk`, both with their
 * http instrumentation on, as users run them.
 *
 *   npm run build && TS_NODE_TRANSPILE_ONLY=true node -r ts-node/register bench/build.ts \
 *     && node dist-bench/bench/aws-sdk.js [--rounds N] [--block N]
 *
 * Modes, each in its own process: `0` control (A/A: both blocks
 * uninstrumented), `ours` (jaeger-client, a reporter that drops spans),
 * `otel` (OpenTelemetry SDK, `NoopSpanProcessor`). Per round, one block of
 * calls with the instrumentation on and one with it off, order alternating;
 * the figure is the median of the paired per-call differences of wall time
 * and of process CPU time, with the 25th-75th percentiles. About 30 s.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import { spawn, execFileSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { ROOT, scriptArgs } from './paths';
import { summarize } from './stats';

type Mode = '0' | 'ours' | 'otel';

interface Switch {
  on(): void;
  off(): void;
  inParent<T>(fn: () => Promise<T>): Promise<T>;
}

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

function ours(): Switch {
  const lib = require(path.join(ROOT, 'dist', 'index.js')) as typeof import('../src/index');
  const { Tracer, ConstSampler } = require('jaeger-client');
  const drop = { report: () => undefined, close: (cb?: () => void) => cb?.(), setProcess: () => undefined };
  const tracer = new Tracer('bench', drop, new ConstSampler(true));
  const parent = tracer.startSpan('bench-parent');
  const on = (): void => lib.installPatches(['aws-sdk', 'http'], { tracer });
  on();
  return { on, off: () => lib.uninstallAllPatches(), inParent: (fn) => lib.spanInContext(parent, fn) };
}

function otel(): Switch {
  const api = require('@opentelemetry/api') as typeof import('@opentelemetry/api');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const base = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation') as typeof import('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const { AwsInstrumentation } = require('@opentelemetry/instrumentation-aws-sdk') as typeof import('@opentelemetry/instrumentation-aws-sdk');
  const provider = new NodeTracerProvider({ spanProcessors: [new base.NoopSpanProcessor()] });
  provider.register();
  const instrumentations = [new HttpInstrumentation(), new AwsInstrumentation()];
  // Before the SDK is required: their hooks patch it as it loads.
  registerInstrumentations({ instrumentations, tracerProvider: provider });
  const parent = api.trace.setSpan(api.context.active(), provider.getTracer('bench').startSpan('bench-parent'));
  return {
    on: () => instrumentations.forEach((i) => i.enable()),
    off: () => instrumentations.forEach((i) => i.disable()),
    inParent: (fn) => api.context.with(parent, fn),
  };
}

async function worker(mode: Mode, endpoint: string, bucket: string): Promise<void> {
  const sw: Switch = mode === 'ours' ? ours() : mode === 'otel' ? otel() : { on: () => undefined, off: () => undefined, inParent: (fn) => fn() };
  const { S3Client, PutObjectCommand } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  const s3 = new S3Client({ region: 'eu-west-3', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'x' } });
  const rounds = arg('--rounds', 10);
  const block = arg('--block', 150);
  const put = (i: number) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `k${i % 16}`, Body: 'hello' }));
  const run = async (n: number): Promise<{ wall: number; cpu: number }> => {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await sw.inParent(async () => {
      for (let i = 0; i < n; i++) await put(i);
    });
    const wall = Number(process.hrtime.bigint() - t0) / 1000 / n;
    const c = process.cpuUsage(c0);
    return { wall, cpu: (c.user + c.system) / n };
  };
  await run(200);
  sw.off();
  await run(100);
  const wall: number[] = [];
  const cpu: number[] = [];
  const offWall: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
    const got: Record<string, { wall: number; cpu: number }> = {};
    for (const which of order) {
      if (which === 'on') sw.on();
      else sw.off();
      await run(10);
      got[which] = await run(block);
    }
    wall.push(got.on.wall - got.off.wall);
    cpu.push(got.on.cpu - got.off.cpu);
    offWall.push(got.off.wall);
  }
  s3.destroy();
  process.stdout.write(JSON.stringify({ mode, wall: summarize(wall), cpu: summarize(cpu), base: summarize(offWall) }) + '\n');
  process.exit(0);
}

function runNode(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`worker exited ${code}`))));
  });
}

async function main(): Promise<void> {
  const bucket = `bench-${process.pid}`;
  // In a peer process, so that its work is not in the measured process' CPU time.
  const server = spawn(
    process.execPath,
    ['-e', `const s=require('http').createServer((q,r)=>{q.resume();q.on('end',()=>{r.writeHead(200,{ETag:'"5d41402abc4b2a76b9719d911017c592"','x-amz-request-id':'R1'});r.end()})});s.keepAliveTimeout=60000;s.listen(0,'127.0.0.1',()=>console.log(s.address().port))`],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve) => server.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim()))));
  const endpoint = `http://127.0.0.1:${port}`;
  const rows: string[] = [];
  try {
    for (const mode of ['0', 'ours', 'otel'] as Mode[]) {
      const out = await runNode([...scriptArgs('aws-sdk'), '--worker', mode, ...process.argv.slice(2)], { BENCH_ENDPOINT: endpoint, BENCH_BUCKET: bucket });
      const r = JSON.parse(out.trim().split('\n').pop()!) as { mode: string; wall: ReturnType<typeof summarize>; cpu: ReturnType<typeof summarize>; base: ReturnType<typeof summarize> };
      const fmt = (s: ReturnType<typeof summarize>): string => `${s.median.toFixed(1)} (${s.p25.toFixed(1)}–${s.p75.toFixed(1)})`;
      rows.push(`| S3 PutObject | ${r.mode} | ${fmt(r.wall)} | ${fmt(r.cpu)} | ${r.base.median.toFixed(0)} |`);
    }
  } finally {
    server.kill();
  }
  process.stdout.write(
    `Node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}; ${execFileSync(process.execPath, ['-p', "require('@aws-sdk/client-s3/package.json').version"], { cwd: ROOT }).toString().trim()}\n` +
      '| call | mode | wall added, us/call (p25–p75) | CPU added, us/call (p25–p75) | uninstrumented wall, us/call |\n| --- | --- | --- | --- | --- |\n' +
      rows.join('\n') +
      '\n',
  );
}

const at = process.argv.indexOf('--worker');
if (at !== -1) void worker(process.argv[at + 1] as Mode, process.env.BENCH_ENDPOINT!, process.env.BENCH_BUCKET!);
else void main();
