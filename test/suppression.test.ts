/**
 * `suppressInstrumentation`: nothing started inside it is traced or carries
 * trace context. The library relies on it for the tracer's own traffic: with
 * `JAEGER_ENDPOINT` (HTTP collector), sending spans must not make spans.
 */
import assert from 'assert';
import { spawn } from 'child_process';
import * as http from 'http';
import * as path from 'path';
import axios from 'axios';
import { initGlobalTracer, Tracer as NoopTracer } from 'opentracing';
import * as undici from 'undici';
import { closeTracer, initTracerFromEnv, installPatches, spanInContext, suppressInstrumentation, uninstallAllPatches } from '../src';
import { useTracing, waitFor } from './helpers/tracing';
import { startHttpServer, type TestServer } from './helpers/servers';
import { startJaegerCollector, type JaegerCollector } from '../tools/jaeger-collector';
import type { ReceivedSpan } from '../tools/jaeger-agent';

const root = path.join(__dirname, '..');
const PATCHES = ['http', 'https', 'axios', 'fetch'] as const;

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** One call with each client the library instruments. */
async function callEveryClient(origin: string, tag: string): Promise<void> {
  await httpGet(`${origin}/${tag}/http`);
  await axios.get(`${origin}/${tag}/axios`);
  await axios.get(`${origin}/${tag}/axios-fetch`, { adapter: 'fetch' });
  await (await fetch(`${origin}/${tag}/fetch`)).text();
  await (await undici.request(`${origin}/${tag}/undici`)).body.text();
}

describe('suppressInstrumentation(fn)', () => {
  const t = useTracing([...PATCHES]);
  let server: TestServer;
  before(async () => {
    server = await startHttpServer();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.received.length = 0;
  });

  it('no client traces a call made inside, and none sends trace headers', async () => {
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, () => suppressInstrumentation(() => callEveryClient(server.origin, 'inside')));
    parent.finish();
    assert.deepStrictEqual(
      t.spans().map((s) => s.operationName),
      ['parent'],
    );
    assert.strictEqual(server.received.length, 5);
    for (const r of server.received) assert.strictEqual(r.headers['uber-trace-id'], undefined, r.url);
  });

  it('reaches the async continuations of fn: timers, promise chains, event handlers', async () => {
    await suppressInstrumentation(
      () =>
        new Promise<void>((resolve, reject) => {
          setTimeout(() => {
            const emitter = new (require('events').EventEmitter)();
            emitter.on('go', () => {
              Promise.resolve()
                .then(() => callEveryClient(server.origin, 'later'))
                .then(resolve, reject);
            });
            setImmediate(() => emitter.emit('go'));
          }, 5);
        }),
    );
    assert.strictEqual(t.spans().length, 0);
    assert.strictEqual(server.received.length, 5);
    for (const r of server.received) assert.strictEqual(r.headers['uber-trace-id'], undefined, r.url);
  });

  it('ends with fn: the same calls right after are traced again', async () => {
    await suppressInstrumentation(() => httpGet(`${server.origin}/in`));
    await callEveryClient(server.origin, 'after');
    assert.strictEqual(t.spans().length, 5);
    assert.strictEqual(server.received.filter((r) => r.headers['uber-trace-id'] !== undefined).length, 5);
  });
});

/** No span describes a call to the collector itself. */
function spansToCollector(spans: ReceivedSpan[], collector: JaegerCollector): ReceivedSpan[] {
  return spans.filter((s) => String(s.tags['http.url'] ?? '').includes(`:${collector.port}/`) || s.tags['peer.port'] === collector.port);
}

describe("the tracer's own reporting over HTTP (JAEGER_ENDPOINT) is never traced", () => {
  let collector: JaegerCollector;
  let server: TestServer;
  beforeEach(async () => {
    collector = await startJaegerCollector();
    server = await startHttpServer();
  });
  afterEach(async () => {
    await collector.close();
    await server.close();
  });

  /** Runs `calls` (which make 120 outbound calls) with a real tracer posting to the collector. */
  async function withReportingTracer(flushIntervalMs: number, calls: () => Promise<void>): Promise<void> {
    initTracerFromEnv({
      serviceName: 'suppression-in-process',
      // What JAEGER_ENDPOINT sets; given here so that this process' environment stays as it is.
      reporter: { collectorEndpoint: collector.endpoint, flushIntervalMs },
    });
    installPatches([...PATCHES]); // spans go to the global tracer: the one just made
    try {
      await calls();
    } finally {
      await closeTracer();
      uninstallAllPatches();
      initGlobalTracer(new NoopTracer());
    }
  }

  function assertNoFeedback(): void {
    assert.strictEqual(collector.errors.length, 0);
    assert.deepStrictEqual(spansToCollector(collector.spans, collector), [], 'the reporter traced its own posts');
    assert.strictEqual(collector.spans.length, 120, 'one span per call, nothing more');
    assert.strictEqual(server.received.length, 120);
    for (const r of collector.requests) assert.strictEqual(r.headers['uber-trace-id'], undefined, 'the tracer sent trace headers to its collector');
  }

  it('in process: a full batch, sent from inside span.finish() on the application path, makes no span', async () => {
    await withReportingTracer(60000, async () => {
      for (let i = 0; i < 24; i++) await callEveryClient(server.origin, `c${i}`);
      // The sender's batch is 100 spans: the 100th finish posted them.
      await collector.waitForSpans(100);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepStrictEqual(collector.requests.map((r) => r.spans), [100]);
    });
    // closeTracer posted the other 20
    assert.deepStrictEqual(collector.requests.map((r) => r.spans), [100, 20]);
    assertNoFeedback();
  });

  it("in process: the reporter's timer flushes make no spans", async () => {
    await withReportingTracer(10, async () => {
      for (let i = 0; i < 24; i++) await callEveryClient(server.origin, `c${i}`);
      await collector.waitForSpans(120); // sent by the timer, not by a flush of ours
      await new Promise((r) => setTimeout(r, 50));
    });
    assert.ok(collector.requests.length >= 2, `${collector.requests.length} posts`);
    assertNoFeedback();
  });

  it("in process: the remote sampler's polls make no spans and carry no trace headers", async () => {
    const strategy = JSON.stringify({ strategyType: 'PROBABILISTIC', probabilisticSampling: { samplingRate: 1 } });
    const sampling = await startHttpServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(strategy);
    });
    try {
      initTracerFromEnv({
        serviceName: 'suppression-in-process',
        sampler: { type: 'remote', param: 1, hostPort: `127.0.0.1:${sampling.port}`, refreshIntervalMs: 10 },
        reporter: { collectorEndpoint: collector.endpoint, flushIntervalMs: 10 },
      });
      installPatches([...PATCHES]);
      try {
        await waitFor(() => sampling.received.length >= 2, 3000, 'sampling polls');
        await callEveryClient(server.origin, 'sampled');
        const polls = sampling.received.length;
        await waitFor(() => sampling.received.length >= polls + 2, 3000, 'more sampling polls');
        await collector.waitForSpans(5);
      } finally {
        await closeTracer();
        uninstallAllPatches();
        initGlobalTracer(new NoopTracer());
      }
      await new Promise((r) => setTimeout(r, 30));
      assert.deepStrictEqual(
        collector.spans.map((s) => String(s.tags['http.url']).replace(server.origin, '')).sort(),
        ['/sampled/axios', '/sampled/axios-fetch', '/sampled/fetch', '/sampled/http', '/sampled/undici'],
        'one span per call of the app; none for the polls',
      );
      for (const r of sampling.received) assert.strictEqual(r.headers['uber-trace-id'], undefined);
    } finally {
      await sampling.close();
    }
  });

  it('node -r ./register app.js: one axios span in the handler, its id downstream, the hook tag in Jaeger; no feedback loop; exits on its own', async () => {
    const BURST = 130;
    const app = path.join(__dirname, 'fixtures', 'http-clients-app', 'app.js');
    const started = Date.now();
    const child = spawn(process.execPath, ['-r', path.join(root, 'register.js'), app], {
      cwd: path.dirname(app),
      env: { PATH: process.env.PATH ?? '', JAEGER_ENDPOINT: collector.endpoint, BURST: String(BURST) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const firstLine = new Promise<string>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d;
        if (stdout.includes('\n')) resolve(stdout.slice(0, stdout.indexOf('\n')));
      });
    });
    const { port } = JSON.parse(await firstLine) as { port: number };
    // An outside client (this process, untraced here) hits the handler.
    const answer = JSON.parse(await httpGet(`http://127.0.0.1:${port}/`)) as { user: string };
    assert.strictEqual(answer.user, 'alice');
    const code = await exited;
    clearTimeout(killer);
    const ms = Date.now() - started;
    assert.strictEqual(code, 0, stderr);
    assert.ok(ms < 10000, `took ${ms} ms to exit`);

    const { seen } = JSON.parse(stdout.split('\n')[1]) as { seen: Array<{ url: string; trace: string }> };
    assert.strictEqual(seen.length, 1 + BURST);
    // A client span per call the app made; a server span per request its own servers took
    // (http-server): the frontend's one, and one per call to the downstream server.
    await collector.waitForSpans(2 * (1 + BURST) + 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.strictEqual(collector.errors.length, 0);
    assert.deepStrictEqual(spansToCollector(collector.spans, collector), [], 'the reporter traced its own posts');
    const spans = collector.spans.filter((s) => s.tags['span.kind'] === 'client');
    assert.strictEqual(spans.length, 1 + BURST, 'one span per call the app made, nothing more');
    assert.strictEqual(collector.spans.length, 2 * (1 + BURST) + 1, 'and one server span per request, nothing more');
    for (const r of collector.requests) assert.strictEqual(r.headers['uber-trace-id'], undefined);

    // The handler's axios.get: exactly one span, its id downstream, the hook's tag.
    const handlerCall = seen.find((s) => s.url === '/users/1')!;
    const forHandler = spans.filter((s) => String(s.tags['http.url']).endsWith('/users/1'));
    assert.strictEqual(forHandler.length, 1);
    const [axiosSpan] = forHandler;
    assert.strictEqual(axiosSpan.serviceName, 'fixture-http-clients-app');
    assert.strictEqual(axiosSpan.operationName, 'GET');
    assert.strictEqual(axiosSpan.tags.component, 'axios');
    assert.strictEqual(axiosSpan.tags['downstream.user'], 'alice');
    assert.strictEqual(handlerCall.trace.split(':')[1], axiosSpan.spanId);

    // Every downstream request carries the id of the one span of its call.
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    for (const s of seen) {
      const span = byId.get(s.trace.split(':')[1]);
      assert.ok(span, `${s.url}: no span with the id it received`);
      assert.ok(String(span.tags['http.url']).endsWith(s.url), `${s.url}: header of another call's span`);
    }
    const components = new Map<string, number>();
    for (const s of spans) components.set(String(s.tags.component), (components.get(String(s.tags.component)) ?? 0) + 1);
    assert.deepStrictEqual(Object.fromEntries(components), { axios: 1 + Math.ceil((BURST - 1) / 4) + Math.ceil((BURST - 2) / 4), fetch: Math.ceil(BURST / 4), http: Math.floor(BURST / 4) });
  });
});
