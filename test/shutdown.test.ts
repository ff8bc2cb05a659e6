/**
 * Graceful shutdown under the preload: an application that handles SIGTERM
 * or SIGINT itself (`process.on` or `process.once`) by closing its server and
 * letting the request in flight finish must behave exactly as without
 * `-r ./register` (same exit code, same responses), and its spans are
 * flushed; an application with no handler still dies of the signal.
 */
import assert from 'assert';
import { spawn } from 'child_process';
import * as http from 'http';
import * as path from 'path';
import { startJaegerAgent, type JaegerAgent } from '../tools/jaeger-agent';

const root = path.join(__dirname, '..');
const app = path.join(__dirname, 'fixtures', 'shutdown-app', 'app.js');

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What the request in flight at the signal got: its body, or the error code. */
  response: string;
  stdout: string;
  stderr: string;
}

function get(port: number, p: string): Promise<string> {
  return new Promise((resolve) => {
    http
      .get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
        res.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
      })
      .on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
  });
}

/** Starts the app, sends GET /slow, sends `signal` once the request is in the handler. */
function run(env: Record<string, string>, signal: NodeJS.Signals, register: boolean): Promise<Outcome> {
  const args = register ? ['-r', path.join(root, 'register.js'), app] : [app];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: path.dirname(app),
      env: { PATH: process.env.PATH ?? '', SIGNAL: signal, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let response: Promise<string> | undefined;
    const killer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      const first = /^\{"port":(\d+)\}$/m.exec(stdout);
      if (first && response === undefined) response = get(Number(first[1]), '/slow');
      if (/^in-flight$/m.test(stdout) && !child.killed) child.kill(signal);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      clearTimeout(killer);
      void (response ?? Promise.resolve('never sent')).then((r) =>
        resolve({ code, signal: sig, response: r, stdout, stderr }),
      );
    });
  });
}

describe('shutdown under node -r ./register: the application decides what a signal does', () => {
  let agent: JaegerAgent;
  beforeEach(async () => {
    agent = await startJaegerAgent();
  });
  afterEach(async () => {
    await agent.close();
  });

  const agentEnv = (extra: Record<string, string>): Record<string, string> => ({
    JAEGER_AGENT_HOST: '127.0.0.1',
    JAEGER_AGENT_PORT: String(agent.port),
    JAEGER_REPORTER_FLUSH_INTERVAL: '60000',
    ...extra,
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    for (const handler of ['on', 'once'] as const) {
      it(`process.${handler}('${signal}'): closes, answers the request in flight, exits 0 as without the preload; spans flushed`, async () => {
        const without = await run({ HANDLER: handler }, signal, false);
        const withPreload = await run(agentEnv({ HANDLER: handler }), signal, true);
        assert.deepStrictEqual(
          { code: without.code, signal: without.signal, response: without.response },
          { code: 0, signal: null, response: '200 slow done' },
          without.stderr,
        );
        assert.deepStrictEqual(
          { code: withPreload.code, signal: withPreload.signal, response: withPreload.response },
          { code: without.code, signal: without.signal, response: without.response },
          withPreload.stderr,
        );
        assert.match(withPreload.stdout, /closed/);
        // the warm-up call (client and server span) and the request that was in flight
        const spans = await agent.waitForSpans(3);
        const slow = spans.filter((s) => s.tags['span.kind'] === 'server' && String(s.tags['http.url']).endsWith('/slow'));
        assert.strictEqual(slow.length, 1, JSON.stringify(spans.map((s) => [s.operationName, s.tags['http.url']])));
        assert.strictEqual(slow[0].tags['http.status_code'], 200);
      });
    }

    it(`no handler: dies of ${signal} as without the preload, the spans finished so far flushed`, async () => {
      const without = await run({ HANDLER: 'none' }, signal, false);
      const withPreload = await run(agentEnv({ HANDLER: 'none' }), signal, true);
      assert.strictEqual(without.signal, signal);
      assert.deepStrictEqual(
        { code: withPreload.code, signal: withPreload.signal, response: withPreload.response },
        { code: without.code, signal: without.signal, response: without.response },
      );
      const spans = await agent.waitForSpans(2);
      assert.deepStrictEqual(spans.map((s) => s.operationName).sort(), ['GET', 'GET']);
    });
  }
});
