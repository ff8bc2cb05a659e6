import assert from 'assert';
import { startJaegerAgent, type JaegerAgent } from '../tools/jaeger-agent';
import * as path from 'path';
import { runApp, runAppWith } from './helpers/run-app';
import type { ReceivedSpan } from '../tools/jaeger-agent';

describe('node -r ./register app.js (end to end, spans over UDP to an agent stand-in)', () => {
  let agent: JaegerAgent;
  beforeEach(async () => {
    agent = await startJaegerAgent();
  });
  afterEach(async () => {
    await agent.close();
  });

  function agentEnv(extra: Record<string, string> = {}): Record<string, string> {
    return { JAEGER_AGENT_HOST: '127.0.0.1', JAEGER_AGENT_PORT: String(agent.port), ...extra };
  }

  it('an app with no tracing code sends a client span per call and exits on its own', async () => {
    const run = await runApp(agentEnv());
    assert.strictEqual(run.code, 0, run.stderr);
    assert.ok(run.ms < 10000, `took ${run.ms} ms to exit`);
    const spans = await agent.waitForSpans(4);
    assert.strictEqual(agent.errors.length, 0);
    assert.strictEqual(spans.length, 4, 'a client span per call, a server span per request');
    const clients = spans.filter((s) => s.tags['span.kind'] === 'client');
    const [one, two] = clients.sort((a, b) => a.startTime - b.startTime);
    // The app's own server (http-server patch) continues each call's trace.
    for (const client of [one, two]) {
      const server = spans.find((s) => s.tags['span.kind'] === 'server' && s.parentSpanId === client.spanId);
      assert.ok(server, `no server span under client span ${client.spanId}`);
      assert.strictEqual(server.traceId, client.traceId);
      assert.strictEqual(server.operationName, 'GET');
      assert.strictEqual(server.tags['http.status_code'], 200);
    }
    for (const s of clients) {
      assert.strictEqual(s.serviceName, 'fixture-plain-app', 'service name from package.json');
      assert.strictEqual(s.operationName, 'GET');
      assert.strictEqual(s.tags['span.kind'], 'client');
      assert.strictEqual(s.tags.component, 'http');
      assert.strictEqual(s.tags['http.status_code'], 200);
      assert.strictEqual(s.flags & 1, 1, 'sampled');
    }
    assert.match(String(one.tags['http.url']), /^http:\/\/127\.0\.0\.1:\d+\/one$/);
    assert.match(String(two.tags['http.url']), /\/two\?token=REDACTED$/);
    // the server saw the span's own context
    const { seen } = JSON.parse(run.stdout) as { seen: string[] };
    assert.deepStrictEqual(
      seen.map((h) => h.split(':')[1]),
      [one.spanId, two.spanId],
    );
  });

  it('a handler fetch()ing a URL that redirects twice: one fetch span, the same context on every hop', async () => {
    const app = path.join(__dirname, 'fixtures', 'fetch-redirect-app', 'app.js');
    const run = await runApp(agentEnv(), undefined, app);
    assert.strictEqual(run.code, 0, run.stderr);
    const { body, seen } = JSON.parse(run.stdout) as { body: string; seen: Array<{ url: string; trace: string }> };
    assert.strictEqual(body, '200 landed');
    // The app's own GET (client), its frontend (server), the fetch under it (client), three downstream hops (server).
    const spans = await agent.waitForSpans(6);
    await new Promise((r) => setTimeout(r, 100));
    assert.strictEqual(agent.spans.length, 6);
    const fetchSpans = spans.filter((s) => s.tags.component === 'fetch');
    assert.strictEqual(fetchSpans.length, 1);
    const [call] = fetchSpans;
    const frontend = spans.find((s) => s.tags['span.kind'] === 'server' && String(s.tags['http.url']).endsWith('/start'))!;
    assert.strictEqual(call.parentSpanId, frontend.spanId);
    assert.match(String(call.tags['http.url']), /\/hop\/2$/);
    assert.strictEqual(call.tags['http.status_code'], 200);
    assert.deepStrictEqual(
      call.logs.map((l) => [l.event, l['http.status_code'], String(l['http.url']).replace(/^.*(\/hop\/\d)$/, '$1')]),
      [
        ['redirect', 302, '/hop/1'],
        ['redirect', 302, '/hop/0'],
      ],
    );
    assert.deepStrictEqual(
      seen.map((h) => [h.url, h.trace.split(':')[1]]),
      [
        ['/hop/2', call.spanId],
        ['/hop/1', call.spanId],
        ['/hop/0', call.spanId],
      ],
    );
  });

  it("does not load Node's bundled undici at startup (it loads with the app's first fetch), and a fetch of a Request still honours its redirect mode", async () => {
    const { createServer } = await import('http');
    const server = createServer((req, res) => {
      if (req.url === '/moved') res.writeHead(302, { location: '/there' }).end();
      else res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const script = [
        "const loaded = () => process.moduleLoadList.some((m) => m.includes('deps/undici'));",
        "process.stdout.write('at-start:' + loaded() + '\\n');",
        `fetch(new Request('http://127.0.0.1:${port}/moved', { redirect: 'manual' })).then((r) => {`,
        "  process.stdout.write('status:' + r.status + ' loaded:' + loaded() + '\\n');",
        '});',
      ].join('\n');
      const run = await runAppWith(['-r', path.join(__dirname, '..', 'register'), '-e', script], path.join(__dirname, '..'), agentEnv());
      assert.strictEqual(run.code, 0, run.stderr);
      assert.deepStrictEqual(run.stdout.trim().split('\n'), ['at-start:false', 'status:302 loaded:true']);
      const spans = await agent.waitForSpans(1);
      assert.deepStrictEqual(
        spans.map((s) => [s.operationName, s.tags['http.status_code']]),
        [['GET', 302]],
      );
    } finally {
      server.close();
    }
  });

  it('JAEGER_SERVICE_NAME names the service', async () => {
    await runApp(agentEnv({ JAEGER_SERVICE_NAME: 'orders' }));
    const spans = await agent.waitForSpans(2);
    assert.deepStrictEqual([...new Set(spans.map((s) => s.serviceName))], ['orders']);
  });

  it('flushes the spans on SIGTERM and still dies by the signal', async () => {
    const run = await runApp(agentEnv({ STAY: '1', JAEGER_REPORTER_FLUSH_INTERVAL: '60000' }), 'SIGTERM');
    assert.strictEqual(run.signal, 'SIGTERM');
    const spans = await agent.waitForSpans(4);
    assert.strictEqual(spans.length, 4);
  });

  it('OPENTRACING_INSTRUMENTATION_DISABLE turns chosen patches off', async () => {
    const run = await runApp(agentEnv({ OPENTRACING_INSTRUMENTATION_DISABLE: 'http,nonsense' }));
    assert.strictEqual(run.code, 0);
    assert.match(run.stderr, /unknown patch name 'nonsense' ignored/);
    await new Promise((r) => setTimeout(r, 300));
    // No client spans; the server spans (http-server is still on) start their own traces.
    assert.deepStrictEqual(
      agent.spans.map((s) => [s.tags['span.kind'], s.parentSpanId]),
      [
        ['server', '0'],
        ['server', '0'],
      ],
    );
    const { seen } = JSON.parse(run.stdout) as { seen: string[] };
    assert.deepStrictEqual(seen, ['', '']);
  });

  it('an ES module app importing named functions from node:http is traced too', async () => {
    const run = await runApp(agentEnv(), undefined, path.join(__dirname, 'fixtures', 'esm-app', 'app.mjs'));
    assert.strictEqual(run.code, 0, run.stderr);
    const spans = await agent.waitForSpans(2);
    // the client span, and the server span of the app's own server (http-server) under it
    const span = spans.find((s) => s.tags['span.kind'] === 'client')!;
    const server = spans.find((s) => s.tags['span.kind'] === 'server')!;
    assert.strictEqual(span.serviceName, 'fixture-esm-app');
    assert.strictEqual(span.operationName, 'GET');
    assert.strictEqual(server.parentSpanId, span.spanId);
    const { seen } = JSON.parse(run.stdout) as { seen: string[] };
    assert.strictEqual(seen[0].split(':')[1], span.spanId);
  });

  it('an ES module app that installs in code after importing named functions from node:http', async () => {
    const run = await runApp(agentEnv(), undefined, path.join(__dirname, 'fixtures', 'esm-app', 'in-code.mjs'), false);
    assert.strictEqual(run.code, 0, run.stderr);
    const spans = await agent.waitForSpans(3);
    const get = spans.find((s) => s.operationName === 'GET' && s.tags['span.kind'] === 'client');
    const parent = spans.find((s) => s.operationName === 'parent');
    assert.ok(get && parent, JSON.stringify(spans.map((s) => s.operationName)));
    assert.strictEqual(get.parentSpanId, parent.spanId);
    const { seen } = JSON.parse(run.stdout) as { seen: string[] };
    assert.strictEqual(seen[0].split(':')[1], get.spanId);
  });
  /**
   * clients.mjs: a request to the app's own server (its server span the
   * parent) makes a call with pg (Client and Pool), ioredis, axios and
   * undici's fetch, all imported as ES modules.
   */
  async function assertEsmClientSpans(preload: string[]): Promise<void> {
    const app = path.join(__dirname, 'fixtures', 'esm-app', 'clients.mjs');
    const run = await runAppWith([...preload, app], path.dirname(app), agentEnv());
    assert.strictEqual(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as { status: number; body: string };
    assert.strictEqual(out.status, 200, out.body);
    const seen = JSON.parse(out.body) as Record<string, unknown>;
    assert.deepStrictEqual([seen.pg, seen.pool, seen.redis, seen.mysql], [1, 2, null, 3]);
    await agent.waitForSpans(10);
    await new Promise((r) => setTimeout(r, 200));
    const spans = agent.spans;
    const names = JSON.stringify(spans.map((s) => [s.operationName, s.tags.component, s.tags['http.url']]));
    const work = spans.find((s) => s.tags['span.kind'] === 'server' && String(s.tags['http.url']).endsWith('/work'));
    assert.ok(work, names);
    const under = (component: string): ReceivedSpan[] =>
      spans.filter((s) => s.tags['span.kind'] === 'client' && s.tags.component === component && s.parentSpanId === work.spanId);
    assert.deepStrictEqual(under('pg').map((s) => [s.operationName, s.tags['db.statement']]).sort(), [
      ['pg:SELECT', 'SELECT ? AS one'],
      ['pg:SELECT', 'SELECT ? AS two'],
    ], names);
    assert.deepStrictEqual(under('ioredis').map((s) => s.operationName), ['redis:GET'], names);
    assert.deepStrictEqual(under('mysql2').map((s) => [s.operationName, s.tags['db.statement']]), [['mysql:SELECT', 'SELECT ? AS three']], names);
    const viaAxios = under('axios');
    assert.deepStrictEqual(viaAxios.map((s) => [s.operationName, s.tags['http.url']]), [['GET', `${String(work.tags['http.url']).replace(/\/work$/, '')}/leaf?via=axios`]], names);
    const viaFetch = under('fetch');
    assert.strictEqual(viaFetch.length, 1, names);
    // one span per call: no http span under the server span (axios' request is its own span's)
    assert.deepStrictEqual(under('http'), [], names);
    // the leaf server received each call's own context
    assert.strictEqual(String(seen.axios).split(':')[1], viaAxios[0].spanId);
    assert.strictEqual(String(seen.fetch).split(':')[1], viaFetch[0].spanId);
  }

  it('an ES module app importing pg, ioredis, axios, undici and mysql2/promise: a client span per call under its parent (-r)', async () => {
    await assertEsmClientSpans(['-r', path.join(__dirname, '..', 'register.js')]);
  });

  it('the same app under --import with the CommonJS register.js', async () => {
    await assertEsmClientSpans(['--import', path.join(__dirname, '..', 'register.js')]);
  });

  it('the same app under --import opentracing-instrumentation/register.mjs', async () => {
    await assertEsmClientSpans(['--import', path.join(__dirname, '..', 'register.mjs')]);
  });
  it('an ES module app gets the same namespaces of pg, pg-pool, ioredis, axios and undici as without register', async () => {
    const app = path.join(__dirname, 'fixtures', 'esm-app', 'namespaces.mjs');
    const plain = await runApp(agentEnv(), undefined, app, false);
    const traced = await runApp(agentEnv(), undefined, app);
    assert.strictEqual(plain.code, 0, plain.stderr);
    assert.strictEqual(traced.code, 0, traced.stderr);
    assert.deepStrictEqual(JSON.parse(traced.stdout), JSON.parse(plain.stdout));
    const axiosKeys = (JSON.parse(traced.stdout) as { axios: { keys: string[] } }).axios.keys;
    assert.ok(axiosKeys.includes('default') && axiosKeys.includes('Axios'), axiosKeys.join());
  });
});
