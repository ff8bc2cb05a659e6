/**
 * The `console` exporter: a waterfall per finished trace on stderr, read
 * back into trees here. Printed when the root span finishes, or after an
 * idle time for a trace whose root is in another process.
 */
import assert from 'assert';
import { spawn } from 'child_process';
import * as http from 'http';
import * as path from 'path';
import { initGlobalTracer, Tracer as NoopTracer } from 'opentracing';
import { closeTracer, flushTracer, initTracer } from '../src';
import { plainApp, runApp } from './helpers/run-app';

interface Row {
  depth: number;
  name: string;
  service: string;
  /** Everything right of the service name: bar, duration, error mark, tags. */
  text: string;
  children: Row[];
}

interface PrintedTrace {
  traceId: string;
  header: string;
  roots: Row[];
}

/** Reads printed waterfalls back into trees, from the indentation. */
function parseWaterfalls(output: string, service: string): PrintedTrace[] {
  const traces: PrintedTrace[] = [];
  let current: PrintedTrace | undefined;
  let stack: Row[] = [];
  for (const line of output.split('\n')) {
    const head = /^trace ([0-9a-f]+) {2}(.*)$/.exec(line);
    if (head) {
      current = { traceId: head[1], header: head[2], roots: [] };
      traces.push(current);
      stack = [];
      continue;
    }
    if (current === undefined || !line.startsWith('  ') || !line.includes('│')) {
      if (line.trim() === '') current = undefined;
      continue;
    }
    const body = line.slice(2);
    const prefix = /^((?:│ {2}| {3})*)(├─ |└─ )?/.exec(body)!;
    const depth = prefix[2] ? prefix[0].length / 3 : 0;
    const rest = body.slice(prefix[0].length);
    const m = new RegExp(`^(.+?)\\s+(${service})\\s+│`).exec(rest);
    assert.ok(m, `unreadable row: ${line}`);
    const row: Row = { depth, name: m[1].trim(), service: m[2], text: rest.slice(m[0].length - 1), children: [] };
    stack.length = depth;
    if (depth === 0) current.roots.push(row);
    else stack[depth - 1].children.push(row);
    stack[depth] = row;
  }
  return traces;
}

describe('exporter console: a waterfall per trace on stderr', () => {
  it('node -r ./register: each trace of an app with no tracing code, client span over the server span it called, tags; stdout untouched', async () => {
    const run = await runApp({ OPENTRACING_INSTRUMENTATION_EXPORTER: 'console', NO_COLOR: '1' });
    assert.strictEqual(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stdout, /trace /, 'the waterfall goes to stderr only');
    const { seen } = JSON.parse(run.stdout) as { seen: string[] };
    const traces = parseWaterfalls(run.stderr, 'fixture-plain-app');
    assert.strictEqual(traces.length, 2, run.stderr);
    assert.deepStrictEqual(
      traces.map((t) => t.traceId),
      seen.map((h) => h.split(':')[0].padStart(16, '0')),
    );
    for (const [i, trace] of traces.entries()) {
      assert.strictEqual(trace.roots.length, 1, run.stderr);
      const [client] = trace.roots;
      assert.strictEqual(client.name, 'GET');
      assert.match(client.text, /│\s+\d+ ms|<1 ms/);
      assert.match(client.text, /component=http {2}http\.status_code=200 {2}http\.url=http:\/\/127\.0\.0\.1:\d+\/(one|two\?token=REDACTED)/);
      assert.match(trace.header, i === 0 ? /^GET http:\/\/127\.0\.0\.1:\d+\/one {2}· {2}2 spans$/ : /two\?token=REDACTED/);
      assert.strictEqual(client.children.length, 1);
      assert.strictEqual(client.children[0].name, 'GET');
      assert.doesNotMatch(client.children[0].text, /component=/, 'the server span shows no client component');
    }
  });

  it('a trace whose root is in another process is printed after an idle time; the preload still exits on the signal', async () => {
    const child = spawn(process.execPath, ['-r', path.join(__dirname, '..', 'register.js'), plainApp], {
      cwd: path.dirname(plainApp),
      env: { PATH: process.env.PATH ?? '', OPENTRACING_INSTRUMENTATION_EXPORTER: 'console', NO_COLOR: '1', STAY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    try {
      await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => ((stdout += d), stdout.includes('\n') && resolve())));
      // the app's server answers on its own port: find it through the client span's URL it printed
      const deadline = Date.now() + 5000;
      let found: RegExpExecArray | null = null;
      while (!(found = /http\.url=http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(found, `no waterfall printed: ${stderr}`);
      const port = Number(found[1]);
      const printedBefore = stderr.length;
      const sent = Date.now();
      await new Promise<void>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: '/from-outside', headers: { 'uber-trace-id': 'abcdef0123456789:1111111111111111:0:1' } }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
      while (!stderr.includes('trace abcdef0123456789') && Date.now() - sent < 5000) await new Promise((r) => setTimeout(r, 20));
      const waited = Date.now() - sent;
      assert.ok(waited >= 400 && waited < 3000, `printed after ${waited} ms`);
      const [trace] = parseWaterfalls(stderr.slice(printedBefore), 'fixture-plain-app');
      assert.strictEqual(trace.traceId, 'abcdef0123456789');
      assert.deepStrictEqual(trace.roots.map((r) => r.name), ['GET'], 'its parent is elsewhere: shown as a root');
      assert.match(trace.roots[0].text, /http\.url=http:\/\/127\.0\.0\.1:\d+\/from-outside/);
      child.kill('SIGTERM');
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
      assert.deepStrictEqual([code, signal], [null, 'SIGTERM']);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  });

  describe('in process (exporter option)', () => {
    afterEach(async () => {
      await closeTracer();
      initGlobalTracer(new NoopTracer());
    });

    it('nesting, error marks with the message, db.statement; printed when the root finishes', async () => {
      let out = '';
      const tracer = initTracer({ serviceName: 'svc', exporter: { type: 'console', stream: { write: (s: string) => (out += s) }, color: false } });
      const root = tracer.startSpan('GET /users/:id', { tags: { 'span.kind': 'server', 'http.status_code': 502 } });
      const query = tracer.startSpan('pg:SELECT', { childOf: root, tags: { 'span.kind': 'client', component: 'pg', 'db.statement': 'SELECT name FROM users WHERE id = $1' } });
      const inner = tracer.startSpan('renderPage', { childOf: query });
      inner.finish();
      query.finish();
      const call = tracer.startSpan('GET', { childOf: root, tags: { 'span.kind': 'client', component: 'axios', 'http.url': 'http://backend/profile/7' } });
      call.setTag('error', true);
      call.log({ event: 'error', 'error.kind': 'AxiosError', message: 'Request failed with status code 502' });
      call.finish();
      assert.strictEqual(out, '', 'nothing before the root finishes');
      root.setTag('error', true);
      root.finish();
      const [trace] = parseWaterfalls(out, 'svc');
      assert.ok(trace, out);
      const [server] = trace.roots;
      assert.strictEqual(server.name, 'GET /users/:id');
      assert.match(server.text, /ERROR {2}/);
      assert.deepStrictEqual(server.children.map((c) => c.name), ['pg:SELECT', 'GET']);
      assert.match(server.children[0].text, /component=pg {2}db\.statement="SELECT name FROM users WHERE id = \$1"/);
      assert.deepStrictEqual(server.children[0].children.map((c) => c.name), ['renderPage']);
      assert.match(server.children[1].text, /ERROR "Request failed with status code 502"/);
      assert.doesNotMatch(server.children[0].text, /ERROR/);
    });

    it('flushTracer prints what is still waiting (the exit flush)', async () => {
      let out = '';
      const tracer = initTracer({ serviceName: 'svc', exporter: { type: 'console', stream: { write: (s: string) => (out += s) }, color: false, idleMs: 60000 } });
      const remoteParent = tracer.extract('http_headers', { 'uber-trace-id': '1234:5678:0:1' })!;
      tracer.startSpan('child of a remote parent', { childOf: remoteParent }).finish();
      assert.strictEqual(out, '');
      await flushTracer();
      assert.match(out, /^trace 0000000000001234 {2}child of a remote parent {2}· {2}1 span\n/);
    });
  });
});
