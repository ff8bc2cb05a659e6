/**
 * The `otlp` exporter against a real OTLP/HTTP receiver (protobuf decoded by
 * protobufjs with OpenTelemetry's message definitions): ids, parents, links,
 * kinds, attributes, events, status and resource as jaeger recorded them;
 * the exporter's own requests untraced; one warning per kind of failure;
 * a bounded queue; and `node -r ./register` with
 * `OPENTRACING_INSTRUMENTATION_EXPORTER=otlp|none`.
 */
import assert from 'assert';
import * as http from 'http';
import * as net from 'net';
import { followsFrom, initGlobalTracer, Tracer as NoopTracer, type Span } from 'opentracing';
import { closeTracer, flushTracer, initTracer, installPatches, spanInContext, uninstallAllPatches, type JaegerTracer } from '../src';
import { OtlpReporter } from '../src/export/otlp';
import { resetLogOnce } from '../src/logger';
import { runApp } from './helpers/run-app';
import { startHttpServer, type TestServer } from './helpers/servers';
import { startOtlpReceiver, type OtlpReceiver, type OtlpSpan } from './helpers/otlp-receiver';
import { freePort } from './scenarios/env';

/** jaeger's id of a span, padded as OTLP carries it. */
function ids(span: Span): { traceId: string; spanId: string } {
  const ctx = span.context() as unknown as { toTraceId(): string; toSpanId(): string };
  return { traceId: ctx.toTraceId().padStart(32, '0'), spanId: ctx.toSpanId().padStart(16, '0') };
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}

/** Lines written to stderr while `fn` runs. */
async function stderrOf(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = function (chunk: string | Uint8Array) {
    lines.push(...String(chunk).split('\n').filter(Boolean));
    return true;
  } as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return lines;
}

describe('exporter otlp: OTLP over HTTP/protobuf to a real receiver', () => {
  let receiver: OtlpReceiver;
  let server: TestServer;
  beforeEach(async () => {
    receiver = await startOtlpReceiver();
    server = await startHttpServer();
    resetLogOnce();
  });
  afterEach(async () => {
    await closeTracer();
    uninstallAllPatches();
    initGlobalTracer(new NoopTracer());
    await receiver.close();
    await server.close();
  });

  function tracer(extra: { traceId128bit?: boolean } = {}): JaegerTracer {
    return initTracer(
      { serviceName: 'otlp-test', exporter: { type: 'otlp', url: receiver.url, headers: { 'x-api-key': 'k1' }, scheduledDelayMillis: 60000 } },
      { tags: { 'deploy.env': 'test' }, ...extra },
    );
  }

  it('ids, parent, follows-from link, kinds, attributes, events, error status and resource as jaeger recorded them; the export itself untraced', async () => {
    const before = process.env.OTEL_RESOURCE_ATTRIBUTES;
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment=staging,team=core';
    try {
      const t = tracer();
      installPatches(['http']);
      const started = Date.now();
      const root = t.startSpan('handle', { tags: { 'span.kind': 'server', 'http.method': 'GET' } });
      await spanInContext(root, () => get(`${server.origin}/work`));
      const failed = t.startSpan('pg:SELECT', { childOf: root, tags: { 'span.kind': 'client', 'db.statement': 'SELECT ?', 'peer.port': 5432, ratio: 0.5, cached: false } });
      failed.setTag('error', true);
      failed.log({ event: 'error', 'error.kind': 'Error', message: 'relation "x" does not exist', stack: 'Error: relation...' });
      failed.setTag('meta', { a: 1 });
      failed.finish();
      const producer = t.startSpan('amqp:publish', { childOf: root, tags: { 'span.kind': 'producer' } });
      producer.finish();
      const consumer = t.startSpan('amqp:consume', { references: [followsFrom(producer.context())], tags: { 'span.kind': 'consumer' } });
      consumer.finish();
      const internal = t.startSpan('renderPage', { childOf: root });
      internal.log({ event: 'cache-miss', key: 'user:1' });
      internal.finish();
      root.finish();
      await flushTracer();
      const spans = await receiver.waitForSpans(6);
      await new Promise((r) => setTimeout(r, 50));

      assert.strictEqual(receiver.errors.length, 0);
      assert.strictEqual(spans.length, 6, spans.map((s) => s.name).join());
      const byName = new Map<string, OtlpSpan>(spans.map((s) => [s.name, s]));
      const r = byName.get('handle')!;
      assert.deepStrictEqual({ traceId: r.traceId, spanId: r.spanId, parentSpanId: r.parentSpanId }, { ...ids(root), parentSpanId: '' });
      assert.strictEqual(r.kind, 2);
      assert.strictEqual(r.status.code, 0);
      assert.strictEqual(r.attributes['http.method'], 'GET');
      assert.strictEqual(r.attributes['span.kind'], undefined, 'the kind is the span kind, not an attribute');
      assert.strictEqual(r.flags & 1, 1, 'sampled');
      assert.ok(r.startTimeUnixNano >= BigInt(started) * 1000000n && r.startTimeUnixNano <= BigInt(Date.now()) * 1000000n);
      assert.ok(r.endTimeUnixNano >= r.startTimeUnixNano);
      assert.strictEqual(r.scope, 'opentracing-instrumentation');

      const client = spans.find((s) => s.name === 'GET')!;
      assert.strictEqual(client.kind, 3);
      assert.strictEqual(client.parentSpanId, r.spanId);
      assert.strictEqual(client.traceId, r.traceId);
      assert.strictEqual(client.attributes['http.url'], `${server.origin}/work`);
      assert.strictEqual(client.attributes['http.status_code'], 200);
      assert.strictEqual(String(server.received[0].headers['uber-trace-id']).split(':')[1], client.spanId.replace(/^0+/, ''));

      const f = byName.get('pg:SELECT')!;
      assert.deepStrictEqual({ traceId: f.traceId, spanId: f.spanId, parentSpanId: f.parentSpanId, kind: f.kind }, { ...ids(failed), parentSpanId: r.spanId, kind: 3 });
      assert.deepStrictEqual(f.status, { code: 2, message: 'relation "x" does not exist' });
      assert.deepStrictEqual(
        { statement: f.attributes['db.statement'], port: f.attributes['peer.port'], ratio: f.attributes.ratio, cached: f.attributes.cached, error: f.attributes.error, meta: f.attributes.meta },
        { statement: 'SELECT ?', port: 5432, ratio: 0.5, cached: false, error: true, meta: '{"a":1}' },
      );
      assert.strictEqual(f.events.length, 1);
      assert.strictEqual(f.events[0].name, 'error');
      assert.deepStrictEqual(f.events[0].attributes, { 'error.kind': 'Error', message: 'relation "x" does not exist', stack: 'Error: relation...' });
      assert.ok(f.events[0].timeUnixNano >= f.startTimeUnixNano && f.events[0].timeUnixNano <= f.endTimeUnixNano);

      assert.strictEqual(byName.get('amqp:publish')!.kind, 4);
      const c = byName.get('amqp:consume')!;
      assert.strictEqual(c.kind, 5);
      assert.strictEqual(c.parentSpanId, '', 'followsFrom is not a parent');
      assert.deepStrictEqual(c.links, [{ ...ids(producer), attributes: { 'opentracing.ref_type': 'follows_from' } }]);

      const i = byName.get('renderPage')!;
      assert.strictEqual(i.kind, 1);
      assert.deepStrictEqual(i.events.map((e) => [e.name, e.attributes]), [['cache-miss', { key: 'user:1' }]]);

      for (const s of spans) {
        assert.strictEqual(s.resource['service.name'], 'otlp-test');
        assert.strictEqual(s.resource['deploy.env'], 'test', 'jaeger tracer tags');
        assert.strictEqual(s.resource['deployment.environment'], 'staging', 'OTEL_RESOURCE_ATTRIBUTES');
        assert.strictEqual(s.resource.team, 'core');
        assert.strictEqual(typeof s.resource['jaeger.version'], 'string');
      }
      for (const req of receiver.requests) {
        assert.strictEqual(req.url, '/v1/traces');
        assert.strictEqual(req.headers['content-type'], 'application/x-protobuf');
        assert.strictEqual(req.headers['x-api-key'], 'k1');
        assert.strictEqual(req.headers['uber-trace-id'], undefined, 'the export carried trace headers');
      }
      // another export: a span for the first POST would show up now
      await flushTracer();
      assert.deepStrictEqual(receiver.spans.filter((s) => String(s.attributes['http.url'] ?? '').includes(`:${receiver.port}/`)), []);
      assert.strictEqual(receiver.spans.length, 6);
    } finally {
      if (before === undefined) delete process.env.OTEL_RESOURCE_ATTRIBUTES;
      else process.env.OTEL_RESOURCE_ATTRIBUTES = before;
    }
  });

  it('128-bit trace ids are sent whole; 64-bit ones padded to 16 bytes', async () => {
    const t = tracer({ traceId128bit: true });
    const span = t.startSpan('wide');
    span.finish();
    await flushTracer();
    const [s] = await receiver.waitForSpans(1);
    assert.strictEqual(s.traceId.length, 32);
    assert.notStrictEqual(s.traceId.slice(0, 16), '0000000000000000');
    assert.strictEqual(s.traceId, ids(span).traceId);
    await closeTracer();
    const narrow = tracer().startSpan('narrow');
    narrow.finish();
    await flushTracer();
    const [, n] = await receiver.waitForSpans(2);
    assert.match(n.traceId, /^0{16}[0-9a-f]{16}$/);
    assert.strictEqual(n.spanId.length, 16);
  });

  it('batches off the finish() path: report() only queues; a full batch goes on the next turn of the loop, untraced', async () => {
    const t = initTracer({ serviceName: 'otlp-test', exporter: { type: 'otlp', url: receiver.url, maxExportBatchSize: 10, scheduledDelayMillis: 60000 } });
    const reporter = (t as unknown as { _reporter: OtlpReporter })._reporter;
    installPatches(['http']);
    // finished in the application's context, under a current span: the export they trigger must not be traced
    const parent = t.startSpan('parent');
    spanInContext(parent, () => {
      for (let i = 0; i < 24; i++) t.startSpan(`s${i}`, { childOf: parent }).finish();
    });
    parent.finish();
    // nothing converted or sent inside finish()
    assert.strictEqual(reporter.pendingCount(), 25);
    await new Promise((r) => setImmediate(r));
    assert.strictEqual(reporter.pendingCount(), 0);
    await receiver.waitForSpans(25);
    assert.deepStrictEqual(receiver.requests.map((r) => r.spans), [10, 10, 5]);
    // under a full batch: only the timer (or a flush) sends
    for (let i = 0; i < 9; i++) t.startSpan(`t${i}`).finish();
    await new Promise((r) => setTimeout(r, 50));
    assert.strictEqual(reporter.pendingCount(), 9);
    await flushTracer();
    assert.deepStrictEqual(receiver.requests.map((r) => r.spans), [10, 10, 5, 9]);
    for (const r of receiver.requests) assert.strictEqual(r.headers['uber-trace-id'], undefined);
    assert.deepStrictEqual(receiver.spans.filter((s) => s.attributes['http.url'] !== undefined), [], 'an export was traced');
  });

  it('retries as the OTLP exporter does: a 503 then a 200 delivers the batch once, no warning', async () => {
    receiver.unavailable = 2;
    const reporter = new OtlpReporter({ url: receiver.url, scheduledDelayMillis: 60000, timeoutMillis: 5000 });
    const lines = await stderrOf(async () => {
      const t = initTracer({ serviceName: 'otlp-test' }, { reporter: reporter as never });
      for (let i = 0; i < 3; i++) t.startSpan(`r${i}`).finish();
      await flushTracer(5000);
    });
    assert.deepStrictEqual(receiver.requests.map((r) => r.spans), [0, 0, 3]);
    assert.deepStrictEqual(receiver.spans.map((s) => s.name).sort(), ['r0', 'r1', 'r2']);
    assert.deepStrictEqual([reporter.exported, reporter.failed], [3, 0]);
    assert.deepStrictEqual(lines, []);
  });

  it('a full queue drops spans, counts them and says so once', async () => {
    const reporter = new OtlpReporter({ url: receiver.url, maxQueueSize: 10, scheduledDelayMillis: 60000 });
    const lines = await stderrOf(async () => {
      const t = initTracer({ serviceName: 'otlp-test' }, { reporter: reporter as never });
      for (let i = 0; i < 25; i++) t.startSpan(`s${i}`).finish();
    });
    assert.strictEqual(reporter.dropped, 15);
    assert.strictEqual(lines.filter((l) => l.includes('spans are dropped')).length, 1, lines.join('\n'));
    await flushTracer();
    await receiver.waitForSpans(10);
  });

  describe('a failed export: one warning per kind of failure, never per span; the application goes on', () => {
    async function threeExports(url: string, timeoutMillis = 300, rounds = 3): Promise<{ lines: string[]; reporter: OtlpReporter }> {
      const reporter = new OtlpReporter({ url, timeoutMillis, scheduledDelayMillis: 60000 });
      const lines = await stderrOf(async () => {
        const t = initTracer({ serviceName: 'otlp-fail' }, { reporter: reporter as never });
        for (let round = 0; round < rounds; round++) {
          for (let i = 0; i < 5; i++) t.startSpan(`s${i}`).finish();
          await flushTracer(5000);
        }
      });
      assert.strictEqual(reporter.failed, 5 * rounds);
      return { lines: lines.filter((l) => l.startsWith('opentracing-instrumentation: ')), reporter };
    }

    it('connection refused', async () => {
      const port = await freePort();
      const { lines } = await threeExports(`http://127.0.0.1:${port}/v1/traces`);
      assert.strictEqual(lines.length, 1, lines.join('\n'));
      assert.match(lines[0], new RegExp(`otlp exporter: sending spans to http://127\\.0\\.0\\.1:${port}/v1/traces failed: connection refused`));
    });

    it('a host that does not resolve', async () => {
      const { lines } = await threeExports('http://otlp-collector.invalid:4318/v1/traces', 3000, 2);
      assert.strictEqual(lines.length, 1, lines.join('\n'));
      assert.match(lines[0], /otlp-collector\.invalid.*does not resolve/);
    });

    it('a collector that accepts and never answers, with exports piling up: one warning saying so, then the spans of the refused exports are counted as failed', async () => {
      const silent = net.createServer(() => undefined);
      const sockets = new Set<net.Socket>();
      silent.on('connection', (s) => sockets.add(s));
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/v1/traces`;
      const reporter = new OtlpReporter({ url, timeoutMillis: 3000, scheduledDelayMillis: 60000, maxExportBatchSize: 1 });
      try {
        const lines = await stderrOf(async () => {
          const t = initTracer({ serviceName: 'otlp-busy' }, { reporter: reporter as never });
          for (let i = 0; i < 40; i++) t.startSpan(`s${i}`).finish();
          reporter.flush();
          await new Promise((r) => setTimeout(r, 100));
        });
        const ours = lines.filter((l) => l.startsWith('opentracing-instrumentation: '));
        assert.strictEqual(ours.length, 1, ours.join('\n'));
        assert.match(ours[0], /failed: too many exports still in flight \(the collector is slow to answer or unreachable\); those spans are dropped/);
        assert.strictEqual(reporter.failed, 10, 'the 10 exports beyond the 30 in flight');
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((r) => silent.close(r));
      }
    });

    it('HTTP 400 and HTTP 503 (retried until the timeout): one warning each', async () => {
      receiver.status = 400;
      const bad = await threeExports(receiver.url);
      receiver.status = 503;
      const unavailable = await threeExports(receiver.url);
      assert.strictEqual(bad.lines.length, 1, bad.lines.join('\n'));
      assert.match(bad.lines[0], /answered HTTP 400/);
      assert.strictEqual(unavailable.lines.length, 1, unavailable.lines.join('\n'));
      assert.match(unavailable.lines[0], /retryable HTTP status/);
      assert.ok(receiver.requests.length >= 6);
    });
  });
});

describe('node -r ./register with OPENTRACING_INSTRUMENTATION_EXPORTER', () => {
  let receiver: OtlpReceiver;
  beforeEach(async () => {
    receiver = await startOtlpReceiver();
  });
  afterEach(async () => {
    await receiver.close();
  });

  it('otlp: OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces with OTEL_EXPORTER_OTLP_HEADERS; service.name; flushed at exit; the export untraced', async () => {
    const run = await runApp({
      OPENTRACING_INSTRUMENTATION_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20t0ken,x-tenant=acme',
    });
    assert.strictEqual(run.code, 0, run.stderr);
    assert.strictEqual(run.stderr, '');
    const spans = await receiver.waitForSpans(4);
    await new Promise((r) => setTimeout(r, 100));
    assert.strictEqual(spans.length, 4);
    assert.deepStrictEqual(spans.map((s) => s.kind).sort(), [2, 2, 3, 3]);
    for (const s of spans) assert.strictEqual(s.resource['service.name'], 'fixture-plain-app');
    const { seen } = JSON.parse(run.stdout) as { seen: string[] };
    const clientIds = spans.filter((s) => s.kind === 3).map((s) => s.spanId.replace(/^0+/, ''));
    assert.deepStrictEqual(seen.map((h) => h.split(':')[1]).sort(), clientIds.sort());
    for (const r of receiver.requests) {
      assert.strictEqual(r.url, '/v1/traces');
      assert.strictEqual(r.headers.authorization, 'Bearer t0ken');
      assert.strictEqual(r.headers['x-tenant'], 'acme');
      assert.strictEqual(r.headers['uber-trace-id'], undefined);
    }
  });

  it('otlp: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is', async () => {
    const run = await runApp({
      OPENTRACING_INSTRUMENTATION_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${receiver.port}/custom/path`,
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1',
    });
    assert.strictEqual(run.code, 0, run.stderr);
    await receiver.waitForSpans(4);
    assert.deepStrictEqual([...new Set(receiver.requests.map((r) => r.url))], ['/custom/path']);
  });

  it('otlp to a collector that refuses: the app runs and exits as usual, one warning', async () => {
    const port = await freePort();
    const run = await runApp({
      OPENTRACING_INSTRUMENTATION_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: '500',
    });
    assert.strictEqual(run.code, 0, run.stderr);
    assert.match(run.stdout, /"seen"/);
    assert.ok(run.ms < 8000, `${run.ms} ms`);
    const lines = run.stderr.split('\n').filter(Boolean);
    assert.ok(lines.length <= 1, run.stderr);
    for (const l of lines) assert.match(l, /^opentracing-instrumentation: otlp exporter: .*connection refused/);
  });

  it('otlp to a collector that accepts and never answers: the exit waits for the exit flush only (not the 10 s export timeout), one warning', async () => {
    const silent = net.createServer(() => undefined);
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const run = await runApp({
        OPENTRACING_INSTRUMENTATION_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
      });
      assert.strictEqual(run.code, 0, run.stderr);
      assert.ok(run.ms < 6000, `${run.ms} ms to exit`);
      assert.strictEqual(sockets.size > 0, true, 'the export was attempted');
      assert.match(run.stderr, /^opentracing-instrumentation: otlp exporter: sending spans to http:\/\/127\.0\.0\.1:\d+\/v1\/traces failed: no answer in time \(at exit\); those spans are dropped\n$/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('none: nothing is sent, trace context still goes downstream', async () => {
    const run = await runApp({ OPENTRACING_INSTRUMENTATION_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}` });
    assert.strictEqual(run.code, 0, run.stderr);
    assert.strictEqual(run.stderr, '');
    const { seen } = JSON.parse(run.stdout) as { seen: string[] };
    for (const h of seen) assert.match(h, /^[0-9a-f]+:[0-9a-f]+:0:1$/);
    await new Promise((r) => setTimeout(r, 200));
    assert.strictEqual(receiver.requests.length, 0);
  });

  it('an unknown value: one warning naming the variable, jaeger is used', async () => {
    const run = await runApp({ OPENTRACING_INSTRUMENTATION_EXPORTER: 'zipkin', JAEGER_AGENT_PORT: String(await freePort()) });
    assert.strictEqual(run.code, 0, run.stderr);
    assert.strictEqual(
      run.stderr,
      'opentracing-instrumentation: OPENTRACING_INSTRUMENTATION_EXPORTER=zipkin is not one of jaeger, otlp, console, none; using jaeger\n',
    );
  });
});

