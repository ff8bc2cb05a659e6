/**
 * The http patch's short path for spans that record nothing (an unsampled
 * trace whose sampling is final, or OpenTracing's no-op tracer) when no hook
 * would see them: the context is still propagated, the span is finished
 * exactly once, and the application sees exactly what it sees untraced.
 */
import assert from 'assert';
import * as http from 'http';
import { installPatches, spanInContext, uninstallAllPatches } from '../src';
import { assertAccountingClean, createTestTracer, spanId, type TestTracer } from './helpers/tracing';
import { readBody, startHttpServer, type TestServer } from './helpers/servers';

function get(url: string, options: http.RequestOptions = {}): Promise<{ res: http.IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, options, (res) => {
        readBody(res).then((body) => resolve({ res, body }), reject);
      })
      .on('error', reject);
  });
}

describe('http client patch, spans that record nothing', () => {
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

  describe('an unsampled trace', () => {
    let t: TestTracer;
    beforeEach(() => {
      t = createTestTracer({ sampled: false });
      installPatches(['http'], { tracer: t.tracer });
    });
    afterEach(async () => {
      uninstallAllPatches();
      await assertAccountingClean(t);
      t.close();
    });

    it('#http.get(url, cb): propagates the unsampled context of its own span, finishes it once, answers unchanged', async () => {
      const parent = t.tracer.startSpan('parent');
      const { res, body } = await spanInContext(parent, () => get(`${server.origin}/unsampled`));
      parent.finish();
      assert.strictEqual(res.statusCode, 200);
      assert.deepStrictEqual(JSON.parse(body), { ok: true, path: '/unsampled' });
      const header = server.received[0].headers['uber-trace-id'];
      assert.strictEqual(typeof header, 'string');
      const [traceId, sentSpanId, sentParentId, flags] = (header as string).split(':');
      assert.strictEqual((parent.context() as unknown as { traceIdStr: string }).traceIdStr, traceId);
      assert.strictEqual(sentParentId, spanId(parent), 'the client span, child of the parent, is what goes downstream');
      assert.notStrictEqual(sentSpanId, spanId(parent));
      assert.strictEqual(Number(flags) & 1, 0, 'not sampled');
      assert.strictEqual(t.accounting.started, 2);
      assert.strictEqual(t.accounting.finished, 2);
      assert.strictEqual(t.spans().length, 0, 'nothing reported');
    });

    it('#http.request(options) with an Expect header: injected into a copy, the caller headers untouched', async () => {
      const headers = { expect: '100-continue', 'x-app': '1' };
      await new Promise<void>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: server.port, path: '/expect', method: 'POST', headers }, (res) => {
          readBody(res).then(() => resolve(), reject);
        });
        req.on('error', reject);
        req.end('data');
      });
      assert.deepStrictEqual(headers, { expect: '100-continue', 'x-app': '1' });
      assert.match(String(server.received[0].headers['uber-trace-id']), /^[0-9a-f]+:[0-9a-f]+:0:0$/);
      assert.strictEqual(server.received[0].headers['x-app'], '1');
    });

    it('throws the same error as Node for an invalid URL, and still finishes its span once', () => {
      let ours: unknown;
      try {
        http.get('http://[bad');
      } catch (err) {
        ours = err;
      }
      uninstallAllPatches();
      let node: unknown;
      try {
        http.get('http://[bad');
      } catch (err) {
        node = err;
      }
      assert.ok(ours instanceof Error);
      assert.strictEqual((ours as NodeJS.ErrnoException).code, (node as NodeJS.ErrnoException).code);
      assert.strictEqual(t.accounting.finished, t.accounting.started);
    });

    it('with a response hook set, the call is followed: the hook sees the response once', async () => {
      uninstallAllPatches();
      const seen: number[] = [];
      installPatches(['http'], { tracer: t.tracer, http: { responseHook: (res) => seen.push(res.statusCode ?? 0) } });
      await get(`${server.origin}/status/503`);
      assert.deepStrictEqual(seen, [503]);
    });
  });

  describe('an unsampled trace, global fetch', () => {
    let t: TestTracer;
    beforeEach(() => {
      t = createTestTracer({ sampled: false });
      installPatches(['fetch'], { tracer: t.tracer });
    });
    afterEach(async () => {
      uninstallAllPatches();
      await assertAccountingClean(t);
      t.close();
    });

    it('fetch(url): propagates the unsampled context of its own span, finishes it once, answers unchanged', async () => {
      const parent = t.tracer.startSpan('parent');
      const res = await spanInContext(parent, () => fetch(`${server.origin}/fetch-unsampled`));
      const body = await res.text();
      parent.finish();
      assert.strictEqual(res.status, 200);
      assert.deepStrictEqual(JSON.parse(body), { ok: true, path: '/fetch-unsampled' });
      const [traceId, sentSpanId, sentParentId, flags] = String(server.received[0].headers['uber-trace-id']).split(':');
      assert.strictEqual((parent.context() as unknown as { traceIdStr: string }).traceIdStr, traceId);
      assert.strictEqual(sentParentId, spanId(parent));
      assert.notStrictEqual(sentSpanId, spanId(parent));
      assert.strictEqual(Number(flags) & 1, 0, 'not sampled');
      assert.strictEqual(t.accounting.started, 2);
      assert.strictEqual(t.accounting.finished, 2);
    });

    it('with a response hook set, the call is followed: the hook sees the response once', async () => {
      uninstallAllPatches();
      const seen: number[] = [];
      installPatches(['fetch'], { tracer: t.tracer, fetch: { responseHook: (res) => seen.push(res.status) } });
      const res = await fetch(`${server.origin}/status/503`);
      await res.text();
      assert.deepStrictEqual(seen, [503]);
    });
  });

  describe("OpenTracing's no-op tracer", () => {
    before(() => {
      // No tracer option and no global tracer registered: no-op spans.
      installPatches(['http', 'fetch']);
    });
    after(() => {
      uninstallAllPatches();
    });

    it('#http.get(url, cb): the call goes through unchanged, with no trace headers', async () => {
      const { res, body } = await get(`${server.origin}/noop`);
      assert.strictEqual(res.statusCode, 200);
      assert.deepStrictEqual(JSON.parse(body), { ok: true, path: '/noop' });
      assert.strictEqual(server.received[0].headers['uber-trace-id'], undefined);
    });

    it('fetch(url): the call goes through unchanged, with no trace headers', async () => {
      const res = await fetch(`${server.origin}/noop-fetch`);
      assert.deepStrictEqual(JSON.parse(await res.text()), { ok: true, path: '/noop-fetch' });
      assert.strictEqual(server.received[0].headers['uber-trace-id'], undefined);
    });

    it('a connection refused reaches the application as the same error', async () => {
      const err = await get('http://127.0.0.1:1/').then(
        () => assert.fail('should fail'),
        (e: NodeJS.ErrnoException) => e,
      );
      assert.strictEqual(err.code, 'ECONNREFUSED');
    });
  });
});
