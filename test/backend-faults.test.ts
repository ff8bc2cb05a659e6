import assert from 'assert';
import * as dgram from 'dgram';
import type { AddressInfo } from 'net';
import { record } from './helpers/reliability';
import { runApp } from './helpers/run-app';
import { startHttpServer, type TestServer } from './helpers/servers';

function recordBackendFault(what: string): void {
  record('faults.backend', {
    area: 'Faults',
    what: 'the tracing backend fails: Jaeger agent port closed, HTTP collector answering 500, HTTP collector hanging (an app under `node -r ./register` making traced calls)',
    unit: 'app runs',
    lostMeans: 'an app call that failed or changed, a process that did not exit on its own',
    tried: 1,
    lost: 0,
    notes: [what],
  });
}

/** What the fixture app's server saw: one trace header per call. */
function seenHeaders(stdout: string): string[] {
  return (JSON.parse(stdout) as { seen: string[] }).seen;
}

describe('a failing tracing backend does not affect the application', () => {
  it('Jaeger agent port closed: the app works, gets its trace headers, and exits on its own', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const run = await runApp({ JAEGER_AGENT_HOST: '127.0.0.1', JAEGER_AGENT_PORT: String(port) });
    assert.strictEqual(run.code, 0, run.stderr);
    const seen = seenHeaders(run.stdout);
    assert.strictEqual(seen.length, 2);
    for (const h of seen) assert.match(h, /^[0-9a-f]+:[0-9a-f]+:0:1$/);
    recordBackendFault(`agent port closed: exited with 0 after ${run.ms} ms`);
  });

  describe('HTTP collector (JAEGER_ENDPOINT)', () => {
    let collector: TestServer;
    afterEach(() => collector.close());

    it('answering 500: the app works and exits; the collector got the batch, untraced', async () => {
      collector = await startHttpServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.statusCode = 500;
          res.end('collector broken');
        });
      });
      const run = await runApp({ JAEGER_ENDPOINT: `${collector.origin}/api/traces` });
      assert.strictEqual(run.code, 0, run.stderr);
      assert.strictEqual(seenHeaders(run.stdout).length, 2);
      assert.ok(collector.received.length >= 1, 'the batch was never sent');
      for (const r of collector.received) {
        assert.strictEqual(r.headers['uber-trace-id'], undefined, "the tracer's own request was traced");
      }
      recordBackendFault(`collector answering 500: exited with 0 after ${run.ms} ms`);
    });

    it('hanging: the app works and exits once the sender times out', async () => {
      collector = await startHttpServer((req) => {
        req.resume(); // accept and never answer
      });
      const run = await runApp({ JAEGER_ENDPOINT: `${collector.origin}/api/traces`, JAEGER_REPORTER_TIMEOUT: '300' });
      assert.strictEqual(run.code, 0, `exit code ${run.code} signal ${run.signal}: ${run.stderr}`);
      assert.strictEqual(seenHeaders(run.stdout).length, 2);
      assert.ok(collector.received.length >= 1);
      assert.ok(run.ms < 8000, `took ${run.ms} ms`);
      recordBackendFault(`collector hanging: exited with 0 after ${run.ms} ms (reporter timeout 300 ms)`);
    });
  });
});
