import assert from 'assert';
import { spawn } from 'child_process';
import * as path from 'path';
import { startJaegerAgent, type JaegerAgent, type ReceivedSpan } from '../tools/jaeger-agent';

const root = path.join(__dirname, '..');

/** Runs an example with `--once` as its docs say (from the repository root), spans to the agent stand-in. */
function runExample(agent: JaegerAgent, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', JAEGER_AGENT_HOST: '127.0.0.1', JAEGER_AGENT_PORT: String(agent.port) };
  for (const key of ['JAEGER_ENDPOINT', 'JAEGER_SERVICE_NAME', 'JAEGER_SAMPLER_TYPE', 'JAEGER_DISABLED', 'OPENTRACING_INSTRUMENTATION_DISABLE']) {
    delete env[key];
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args, '--once'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The one span matching `pred`. */
function one(spans: ReceivedSpan[], what: string, pred: (s: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(pred);
  assert.strictEqual(found.length, 1, `${what}: ${found.length} spans in ${spans.map((s) => s.operationName).join(', ')}`);
  return found[0];
}

const kind = (k: string) => (s: ReceivedSpan): boolean => s.tags['span.kind'] === k;
const urlEnds = (suffix: string) => (s: ReceivedSpan): boolean => String(s.tags['http.url']).endsWith(suffix);

describe('examples/ (each run once, as documented)', () => {
  let agent: JaegerAgent;
  beforeEach(async () => {
    agent = await startJaegerAgent();
  });
  afterEach(async () => {
    await agent.close();
  });

  it('plain-http: node -r ./register examples/plain-http/app.js', async () => {
    const run = await runExample(agent, ['-r', './register', 'examples/plain-http/app.js']);
    assert.strictEqual(run.code, 0, run.stderr);
    assert.match(run.stdout, /^hello, it is \d{4}-/);
    const spans = await agent.waitForSpans(4);
    const hello = one(spans, 'server /hello', (s) => kind('server')(s) && urlEnds('/hello')(s));
    const call = one(spans, 'client /time', (s) => kind('client')(s) && urlEnds('/time')(s));
    const time = one(spans, 'server /time', (s) => kind('server')(s) && urlEnds('/time')(s));
    assert.strictEqual(hello.serviceName, 'example-plain-http');
    assert.strictEqual(call.parentSpanId, hello.spanId);
    assert.strictEqual(time.parentSpanId, call.spanId);
    assert.strictEqual(time.traceId, hello.traceId);
  });

  it('express: node -r ./register examples/express/app.js', async () => {
    const run = await runExample(agent, ['-r', './register', 'examples/express/app.js']);
    assert.strictEqual(run.code, 0, run.stderr);
    assert.deepStrictEqual(JSON.parse(run.stdout), { user: '42', profile: { id: 42, plan: 'pro' } });
    const spans = await agent.waitForSpans(4);
    const user = one(spans, 'GET /users/:id', (s) => s.operationName === 'GET /users/:id');
    const call = one(spans, 'client /api/profile/42', (s) => kind('client')(s) && urlEnds('/api/profile/42')(s));
    const profile = one(spans, 'GET /api/profile/:id', (s) => s.operationName === 'GET /api/profile/:id');
    assert.strictEqual(user.serviceName, 'example-express');
    assert.strictEqual(call.parentSpanId, user.spanId);
    assert.strictEqual(profile.parentSpanId, call.spanId);
  });

  it('in-code: node examples/in-code/app.js (custom response hook and current-span getter)', async () => {
    const run = await runExample(agent, ['examples/in-code/app.js']);
    assert.strictEqual(run.code, 0, run.stderr);
    assert.deepStrictEqual(JSON.parse(run.stdout), { order: 42, stock: { item: 42, available: 3 } });
    const spans = await agent.waitForSpans(5);
    const order = one(spans, 'server /orders/42', (s) => kind('server')(s) && urlEnds('/orders/42')(s));
    const load = one(spans, 'load-order', (s) => s.operationName === 'load-order');
    const call = one(spans, 'client /stock/42', (s) => kind('client')(s) && urlEnds('/stock/42')(s));
    const stock = one(spans, 'server /stock/42', (s) => kind('server')(s) && urlEnds('/stock/42')(s));
    assert.strictEqual(order.serviceName, 'example-in-code');
    assert.strictEqual(load.parentSpanId, order.spanId);
    assert.strictEqual(call.parentSpanId, load.spanId, 'the custom getter made load-order the parent');
    assert.strictEqual(call.tags['http.content_type'], 'application/json', 'the custom response hook ran');
    assert.strictEqual(stock.parentSpanId, call.spanId);
    assert.strictEqual(stock.tags['peer.service'], 'example-in-code');
  });
});
