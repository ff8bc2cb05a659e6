import assert from 'assert';
import { spawn } from 'child_process';
import * as path from 'path';
import { instrumentations } from '../src/hooks';
import { startJaegerAgent } from '../tools/jaeger-agent';

const root = path.join(__dirname, '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo as `npm run demo` does (dist/ is built by `pretest`). */
function runDemo(env: Record<string, string> = {}): Promise<Run> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  // the demo's own agent only (unless the test says otherwise): no real Jaeger, no collector
  for (const key of Object.keys(childEnv)) if (key.startsWith('JAEGER_')) delete childEnv[key];
  Object.assign(childEnv, env);
  delete childEnv.TS_NODE_PROJECT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'examples/demo/run.ts'], {
      cwd: root,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 40000);
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Row {
  depth: number;
  /** Hangs from a dotted line: follows from its parent. */
  follows: boolean;
  name: string;
  service: string;
  text: string;
  children: Row[];
}

interface PrintedTrace {
  header: string;
  roots: Row[];
}

/** Reads the printed waterfalls back into trees, from the indentation. */
function parseTraces(stdout: string): PrintedTrace[] {
  const traces: PrintedTrace[] = [];
  let current: PrintedTrace | undefined;
  let stack: Row[] = [];
  for (const line of stdout.split('\n')) {
    if (line.startsWith('Trace ')) {
      current = { header: line, roots: [] };
      traces.push(current);
      stack = [];
      continue;
    }
    if (current === undefined || !line.startsWith('  ') || !line.includes('│')) {
      if (line.trim() === '') current = undefined;
      continue;
    }
    const body = line.slice(2);
    const prefix = /^((?:│ {2}| {3})*)([├└]([─┈]) )?/.exec(body)!;
    const depth = prefix[2] ? prefix[0].length / 3 : 0;
    const rest = body.slice(prefix[0].length);
    const m = /^(.+?)\s+(demo-[a-z]+)\s+│/.exec(rest);
    assert.ok(m, `unreadable row: ${line}`);
    const row: Row = { depth, follows: prefix[3] === '┈', name: m[1].trim(), service: m[2], text: rest, children: [] };
    stack.length = depth;
    if (depth === 0) current.roots.push(row);
    else stack[depth - 1].children.push(row);
    stack[depth] = row;
  }
  return traces;
}

const has = (name: string): boolean => instrumentations.some((i) => i.name === name);

/** The printed traces of the demo's requests to the front service. */
function userTraces(traces: PrintedTrace[]): PrintedTrace[] {
  return traces.filter((t) => t.roots.length === 1 && t.roots[0].service === 'demo-frontend' && /\/users\/\d+/.test(t.header));
}

function assertHttpPart(trace: PrintedTrace): void {
  const [server] = trace.roots;
  assert.strictEqual(server.name, 'GET', trace.header);
  assert.ok(server.children.length > 0, `${trace.header}: the server span has children`);
  for (const child of server.children) assert.strictEqual(child.service, 'demo-frontend');
  // the backend's server span is the child of a client span, itself the child of the front server span
  const profile = server.children.find((c) => c.name === 'GET' && c.children.some((g) => g.name === 'GET /profile/:id'));
  assert.ok(profile, `${trace.header}: no client call with the backend's GET /profile/:id under it`);
  assert.strictEqual(profile.children[0].service, 'demo-backend');
  if (has('fetch')) {
    assert.ok(
      server.children.some((c) => c.children.some((g) => g.name === 'GET /recommendations/:id')),
      `${trace.header}: the fetch call is not under the server span`,
    );
  }
}

/**
 * The message hop under the backend's GET /profile/:id: amqp:publish, the
 * consumer span following from it, the traced handler and its Redis INCR.
 */
function assertMessageHop(trace: PrintedTrace): void {
  const profile = trace.roots[0].children.flatMap((c) => c.children).find((g) => g.name === 'GET /profile/:id')!;
  const publish = profile.children.find((c) => c.name === 'amqp:publish');
  assert.ok(publish, `${trace.header}: no amqp:publish under GET /profile/:id`);
  assert.match(publish.text, /component=amqplib {2}message_bus\.destination=oti-demo\.\d+\.\d+/);
  assert.strictEqual(publish.children.length, 1, trace.header);
  const [consume] = publish.children;
  assert.strictEqual(consume.name, 'amqp:consume');
  assert.strictEqual(consume.service, 'demo-backend');
  assert.ok(consume.follows, `${trace.header}: the consumer span hangs from a dotted line`);
  assert.match(consume.text, /│ +(\d+ ms|<1 ms) {2}follows from amqp:publish {2}component=amqplib .*amqp\.settlement=ack/);
  assert.deepStrictEqual(
    consume.children.map((c) => [c.name, c.follows]),
    [['recordView', false]],
  );
  if (has('ioredis')) {
    assert.deepStrictEqual(consume.children[0].children.map((c) => c.name), ['redis:INCR']);
  }
  // nothing else in the trace follows from anything
  const all = (rows: Row[]): Row[] => rows.flatMap((r) => [r, ...all(r.children)]);
  assert.deepStrictEqual(all(trace.roots).filter((r) => r.follows).map((r) => r.name), ['amqp:consume']);
}

describe('npm run demo (end to end, two services under node -r ./register)', () => {
  it('prints a trace tree per request, client spans under the server span, and exits 0', async () => {
    const run = await runDemo();
    assert.strictEqual(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /PostgreSQL .* ok\n/);
    assert.match(run.stdout, /Redis .* ok\n/);
    assert.match(run.stdout, /RabbitMQ {4}amqp:\/\/127\.0\.0\.1:5672 {2}ok\n/, 'the password is not printed');
    const traces = userTraces(parseTraces(run.stdout));
    assert.strictEqual(traces.length, 3, run.stdout);
    for (const trace of traces) assertHttpPart(trace);
    if (has('amqplib')) for (const trace of traces) assertMessageHop(trace);
    const [miss, hit, failing] = traces;
    const names = (t: PrintedTrace): string[] => t.roots[0].children.map((c) => c.name);
    assert.ok(names(miss).includes('renderPage'), 'the traced() function');
    if (has('pg')) {
      assert.ok(names(miss).includes('pg:SELECT'), names(miss).join());
      assert.ok(!names(hit).includes('pg:SELECT'), 'a cache hit does not query');
    }
    if (has('ioredis')) {
      assert.deepStrictEqual(names(miss).filter((n) => n.startsWith('redis:')), ['redis:GET', 'redis:SET']);
      assert.deepStrictEqual(names(hit).filter((n) => n.startsWith('redis:')), ['redis:GET']);
    }
    assert.match(failing.roots[0].text, /ERROR "HTTP 502 Bad Gateway"/);
    assert.doesNotMatch(run.stdout, /No spans arrived/);
  });

  it('with PostgreSQL, Redis and RabbitMQ unreachable: says what it skipped and still shows the http part (no message hop); JAEGER_AGENT_HOST gets a copy', async () => {
    // what the compose stack's agent would receive
    const jaeger = await startJaegerAgent();
    let run: Run;
    try {
      run = await runDemo({
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/test',
        REDIS_URL: 'redis://127.0.0.1:1',
        AMQP_URL: 'amqp://guest:guest@127.0.0.1:1',
        JAEGER_AGENT_HOST: '127.0.0.1',
        JAEGER_AGENT_PORT: String(jaeger.port),
        JAEGER_UI_URL: 'http://jaeger.example:16686/',
      });
      assert.strictEqual(run.code, 0, `${run.stdout}\n${run.stderr}`);
      const printed = [...run.stdout.matchAll(/^ {2}http:\/\/jaeger\.example:16686\/trace\/([0-9a-f]+)$/gm)].map((m) => m[1]);
      assert.ok(printed.length >= 3, 'a Jaeger UI link per trace');
      await jaeger.waitForSpans(1);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepStrictEqual([...new Set(jaeger.spans.map((s) => s.traceId))].sort(), [...printed].sort());
      assert.deepStrictEqual([...new Set(jaeger.spans.map((s) => s.serviceName))].sort(), ['demo-backend', 'demo-frontend']);
    } finally {
      await jaeger.close();
    }
    assert.match(run.stdout, /PostgreSQL .* skipped: .*ECONNREFUSED/);
    assert.match(run.stdout, /Redis .* skipped: .*ECONNREFUSED/);
    assert.match(run.stdout, /RabbitMQ .* skipped: .*ECONNREFUSED/);
    assert.match(run.stdout, /Skipped \(not reachable\): PostgreSQL, Redis, RabbitMQ \(no message hop\)\./);
    assert.doesNotMatch(run.stdout, /amqp:(publish|consume)|through the queue/);
    const traces = userTraces(parseTraces(run.stdout));
    assert.strictEqual(traces.length, 3, run.stdout);
    for (const trace of traces) {
      assertHttpPart(trace);
      for (const child of trace.roots[0].children) assert.doesNotMatch(child.name, /^(pg|redis):/);
      for (const row of trace.roots[0].children.flatMap((c) => c.children)) {
        assert.deepStrictEqual(row.children, [], `${trace.header}: ${row.name} does no more than answer`);
      }
    }
  });
});
