/**
 * Added CPU per span of the `otlp` exporter, next to OpenTelemetry's own
 * OTLP export path (BatchSpanProcessor + exporter-trace-otlp-proto).
 *
 *   npm run build && TS_NODE_TRANSPILE_ONLY=true node -r ts-node/register bench/build.ts \
 *     && node dist-bench/bench/otlp-export.js [--spans N] [--runs N]
 *
 * Four modes, each in its own process, against an OTLP/HTTP sink (200, body
 * discarded) in another process so that its CPU is not counted:
 *
 * - `jaeger-none`: jaeger-client tracer of this package, spans dropped (exporter `none`);
 * - `jaeger-otlp`: the same with the `otlp` exporter;
 * - `otel-noop`: OpenTelemetry's BasicTracerProvider with no span processor;
 * - `otel-batch`: the same with BatchSpanProcessor + OTLPTraceExporter (proto).
 *
 * Every mode makes the same spans (a client child of a root, six tags or
 * attributes, one log/event), in rounds of 500 with a flush after each
 * round (so both exporters send the same batches), after a warm-up; the
 * figure is process CPU (`process.cpuUsage`, user + system) per span, the
 * median of the runs. Added CPU = exporter mode − its no-export mode.
 */
import { execFileSync, spawn } from 'child_process';
import * as path from 'path';
import { ROOT } from './paths';

type Mode = 'jaeger-none' | 'jaeger-otlp' | 'otel-noop' | 'otel-batch';
const MODES: Mode[] = ['jaeger-none', 'jaeger-otlp', 'otel-noop', 'otel-batch'];
const ROUND = 500;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

/** Runs in a mode's own process: prints CPU microseconds per span. */
async function measure(mode: Mode, url: string, spans: number): Promise<number> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  let make: () => void;
  let flush: () => Promise<void>;
  if (mode.startsWith('jaeger')) {
    const lib = require(path.join(ROOT, 'dist')) as typeof import('../src');
    const tracer = lib.initTracer({
      serviceName: 'bench',
      exporter: mode === 'jaeger-otlp' ? { type: 'otlp', url, scheduledDelayMillis: 60000, maxQueueSize: 100000, maxExportBatchSize: ROUND } : 'none',
    });
    make = () => {
      const root = tracer.startSpan('GET /users/:id', { tags: { 'span.kind': 'server', 'http.method': 'GET' } });
      const span = tracer.startSpan('pg:SELECT', {
        childOf: root,
        tags: { 'span.kind': 'client', component: 'pg', 'db.type': 'sql', 'db.instance': 'app', 'db.statement': 'SELECT name FROM users WHERE id = $1', 'peer.port': 5432 },
      });
      span.log({ event: 'row', rows: 1 });
      span.finish();
      root.finish();
    };
    flush = () => lib.flushTracer(10000);
  } else {
    const api = require('@opentelemetry/api') as typeof import('@opentelemetry/api');
    const base = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
    const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
    const processors = [];
    if (mode === 'otel-batch') {
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto');
      processors.push(new base.BatchSpanProcessor(new OTLPTraceExporter({ url }), { maxQueueSize: 100000, maxExportBatchSize: ROUND, scheduledDelayMillis: 60000 }));
    }
    const provider = new base.BasicTracerProvider({ spanProcessors: processors, resource: resourceFromAttributes({ 'service.name': 'bench' }) });
    const tracer = provider.getTracer('bench');
    make = () => {
      const root = tracer.startSpan('GET /users/:id', { kind: api.SpanKind.SERVER, attributes: { 'http.method': 'GET' } });
      const ctx = api.trace.setSpan(api.ROOT_CONTEXT, root);
      const span = tracer.startSpan(
        'pg:SELECT',
        { kind: api.SpanKind.CLIENT, attributes: { component: 'pg', 'db.type': 'sql', 'db.instance': 'app', 'db.statement': 'SELECT name FROM users WHERE id = $1', 'peer.port': 5432 } },
        ctx,
      );
      span.addEvent('row', { rows: 1 });
      span.end();
      root.end();
    };
    flush = () => provider.forceFlush();
  }
  const rounds = async (n: number): Promise<void> => {
    for (let done = 0; done < n; done += ROUND) {
      for (let i = 0; i < ROUND; i += 2) make(); // two spans per make()
      await flush();
    }
  };
  await rounds(Math.max(ROUND * 4, spans / 5)); // warm-up
  const before = process.cpuUsage();
  await rounds(spans);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / spans;
}

function startSink(): Promise<{ url: string; stop(): void }> {
  const code = `
    const http = require('http');
    const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.statusCode = 200; res.end(); }); });
    server.keepAliveTimeout = 60000;
    server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    child.stdout.once('data', (d: Buffer) => resolve({ url: `http://127.0.0.1:${String(d).trim()}/v1/traces`, stop: () => child.stdin.end() }));
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const modeArg = process.argv.indexOf('--mode');
  if (modeArg !== -1) {
    const perSpan = await measure(process.argv[modeArg + 1] as Mode, process.argv[process.argv.indexOf('--url') + 1], arg('spans', 20000));
    process.stdout.write(`${perSpan}\n`);
    return;
  }
  const spans = arg('spans', 20000);
  const runs = arg('runs', 5);
  const sink = await startSink();
  const results: Record<Mode, number[]> = { 'jaeger-none': [], 'jaeger-otlp': [], 'otel-noop': [], 'otel-batch': [] };
  try {
    for (let run = 0; run < runs; run++) {
      for (const mode of run % 2 === 0 ? MODES : [...MODES].reverse()) {
        const out = execFileSync(process.execPath, [__filename, '--mode', mode, '--url', sink.url, '--spans', String(spans)], { encoding: 'utf8' });
        results[mode].push(Number(out.trim()));
      }
    }
  } finally {
    sink.stop();
  }
  const m = Object.fromEntries(MODES.map((mode) => [mode, median(results[mode])])) as Record<Mode, number>;
  const ours = m['jaeger-otlp'] - m['jaeger-none'];
  const theirs = m['otel-batch'] - m['otel-noop'];
  const f = (us: number): string => `${us.toFixed(2)} µs`;
  process.stdout.write(
    [
      `Node ${process.version}, ${spans} spans per run, median of ${runs} runs (CPU per span)`,
      `| mode | CPU per span |`,
      `| --- | --- |`,
      ...MODES.map((mode) => `| ${mode} | ${f(m[mode])} |`),
      '',
      `| exporter | added CPU per span |`,
      `| --- | --- |`,
      `| otlp exporter of this package (jaeger spans → OTLP/proto) | ${f(ours)} |`,
      `| OpenTelemetry BatchSpanProcessor + exporter-trace-otlp-proto | ${f(theirs)} |`,
      `| ratio | ${(ours / theirs).toFixed(2)} × |`,
      '',
    ].join('\n'),
  );
}

void main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
