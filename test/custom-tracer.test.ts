/**
 * A jaeger-client tracer the application builds itself (not through this
 * package's initTracer) does not trace its own exports or sampling polls
 * once the patches are installed, whichever comes first.
 */
import assert from 'assert';
import * as path from 'path';
import { runAppWith } from './helpers/run-app';
import { startHttpServer, type TestServer } from './helpers/servers';
import { startJaegerCollector, type JaegerCollector } from '../tools/jaeger-collector';

const app = path.join(__dirname, 'fixtures', 'own-jaeger-app', 'app.js');

describe("an application's own jaeger-client tracer (initTracer of jaeger-client) + installAllPatches()", () => {
  let collector: JaegerCollector;
  let sampling: TestServer;
  beforeEach(async () => {
    collector = await startJaegerCollector();
    const strategy = JSON.stringify({ strategyType: 'PROBABILISTIC', probabilisticSampling: { samplingRate: 1 } });
    sampling = await startHttpServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(strategy);
    });
  });
  afterEach(async () => {
    await collector.close();
    await sampling.close();
  });

  for (const order of ['install-first', 'tracer-first'] as const) {
    it(`${order}: only the application's spans reach the collector; no span for POST /api/traces or GET /sampling, no trace headers on them`, async () => {
      const run = await runAppWith([app], path.dirname(app), {
        ORDER: order,
        COLLECTOR: collector.endpoint,
        SAMPLING: `127.0.0.1:${sampling.port}`,
        RUN_MS: '1000',
      });
      assert.strictEqual(run.code, 0, run.stderr);
      assert.match(run.stdout, /done/);
      assert.ok(sampling.received.length >= 5, `${sampling.received.length} polls`);
      const seen = collector.spans.map((s) => `${s.operationName} ${String(s.tags['http.url'] ?? '').replace(/:\d+/, ':PORT')}`);
      // the app's span, its client call and the server span of the local server it called
      assert.deepStrictEqual(seen.sort(), ['GET http://127.0.0.1:PORT/work', 'GET http://127.0.0.1:PORT/work', 'app-work '], seen.join('\n'));
      for (const r of [...collector.requests, ...sampling.received]) {
        assert.strictEqual(r.headers['uber-trace-id'], undefined, `${r.method} ${r.url} carried trace headers`);
      }
    });
  }
});
