import assert from 'assert';
import * as http from 'http';
import * as https from 'https';
import Module from 'module';
import { installAllPatches, installPatches, uninstallAllPatches } from '../src';
import { isWrapped } from '../src/wrap';
import { createTestTracer, tag, waitForSpans } from './helpers/tracing';
import { startHttpServer } from './helpers/servers';

describe('patch machinery', () => {
  const originals = { request: http.request, get: http.get, srequest: https.request, sget: https.get };
  const t = createTestTracer();
  after(() => {
    uninstallAllPatches();
    t.close();
  });

  it('#uninstallAllPatches() puts back the very same functions', () => {
    installAllPatches({ tracer: t.tracer });
    assert.notStrictEqual(http.request, originals.request);
    assert.ok(isWrapped(http.get));
    uninstallAllPatches();
    assert.strictEqual(http.request, originals.request);
    assert.strictEqual(http.get, originals.get);
    assert.strictEqual(https.request, originals.srequest);
    assert.strictEqual(https.get, originals.sget);
  });

  it('installing twice never wraps twice: one span per call', async () => {
    installAllPatches({ tracer: t.tracer });
    const once = http.request;
    installAllPatches({ tracer: t.tracer });
    installPatches(['http'], { tracer: t.tracer });
    assert.strictEqual(http.request, once);
    const server = await startHttpServer();
    try {
      t.clear();
      await new Promise<void>((resolve) => http.get(server.origin, (res) => (res.resume(), res.on('end', resolve))));
      await waitForSpans(t, 2);
      await new Promise((r) => setTimeout(r, 20));
      // one client span (http) and one server span (http-server) for the local server
      assert.deepStrictEqual(t.spans().map((s) => tag(s, 'span.kind')).sort(), ['client', 'server']);
      assert.strictEqual((server.received[0].headers['uber-trace-id'] as string).split(',').length, 1);
    } finally {
      await server.close();
      uninstallAllPatches();
    }
    assert.strictEqual(http.request, originals.request);
  });

  it('installing again replaces the one require hook instead of stacking them; uninstall gives back the very same require', () => {
    const original = Module.prototype.require;
    installAllPatches({ tracer: t.tracer });
    const first = Module.prototype.require;
    installAllPatches({ tracer: t.tracer });
    installPatches(['pg'], { tracer: t.tracer });
    assert.notStrictEqual(Module.prototype.require, original);
    // a second hook stacked on the first would stay behind, inert, when the first is taken out
    assert.notStrictEqual(Module.prototype.require, first);
    uninstallAllPatches();
    assert.strictEqual(Module.prototype.require, original);
  });

  it('a module required with the node: prefix after install is the patched one', () => {
    installPatches(['http'], { tracer: t.tracer });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const late = require('node:http') as typeof http;
    assert.ok(isWrapped(late.request));
    uninstallAllPatches();
    assert.ok(!isWrapped(late.request));
  });

  it('only the named patches are installed', () => {
    installPatches(['https'], { tracer: t.tracer });
    assert.ok(isWrapped(https.request));
    assert.ok(!isWrapped(http.request));
    uninstallAllPatches();
  });

  it('rejects unknown patch names and bad options with a clear TypeError, changing nothing', () => {
    assert.throws(() => installPatches(['htp' as never]), /unknown patch name: htp/);
    assert.throws(() => installAllPatches({ tracer: {} as never }), /options.tracer/);
    assert.throws(() => installAllPatches({ http: { responseHook: 3 as never } }), /responseHook must be a function/);
    assert.throws(() => installAllPatches({ propagateTo: 'x' as never }), /propagateTo/);
    assert.ok(!isWrapped(http.request));
  });
});
