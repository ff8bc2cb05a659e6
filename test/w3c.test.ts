/**
 * W3C Trace Context and Baggage (src/w3c.ts): the parser, and a real http
 * server under the `http-server` patch whose handler calls a downstream
 * server through the `http` patch, with a jaeger tracer that has the codec:
 * W3C in → both out, Jaeger in → both out, both in (agreeing, disagreeing),
 * and callers that are not trusted.
 */
import assert from 'assert';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as jaeger from 'jaeger-client';
import { FORMAT_HTTP_HEADERS, FORMAT_TEXT_MAP, type Tracer } from 'opentracing';
import { getCurrentSpan, initTracer, installPatches, registerW3CCodec, suppressInstrumentation, uninstallAllPatches, W3CTraceContextCodec } from '../src';
import { closeTracer } from '../src/tracer';
import { boundTraceState, formatBaggage, parseBaggage, parseTraceParent } from '../src/w3c';
import type { JaegerSpan } from './helpers/tracing';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = 'b7ad6b7169203331';
const PARENT = `00-${TRACE}-${SPAN}-01`;

describe('W3C traceparent parsing (W3C Trace Context, section 3.2)', () => {
  it('reads a valid value', () => {
    assert.deepStrictEqual(parseTraceParent(PARENT), { traceId: TRACE, spanId: SPAN, sampled: true });
    assert.deepStrictEqual(parseTraceParent(`00-${TRACE}-${SPAN}-00`), { traceId: TRACE, spanId: SPAN, sampled: false });
    assert.deepStrictEqual(parseTraceParent(`00-${TRACE}-${SPAN}-03`)?.sampled, true, 'other flag bits are ignored');
  });
  it('a later version: the first four fields are read, more fields after a dash are allowed', () => {
    assert.strictEqual(parseTraceParent(`cc-${TRACE}-${SPAN}-01-what-ever`)?.traceId, TRACE);
    assert.strictEqual(parseTraceParent(`cc-${TRACE}-${SPAN}-01`)?.traceId, TRACE);
    assert.strictEqual(parseTraceParent(`cc-${TRACE}-${SPAN}-01x`), undefined);
  });
  const invalid: Record<string, unknown> = {
    'version ff': `ff-${TRACE}-${SPAN}-01`,
    'version 00 with more fields': `${PARENT}-00`,
    'upper-case hex': PARENT.toUpperCase(),
    'one upper-case digit': `00-${TRACE.slice(0, 31)}C-${SPAN}-01`,
    'all-zero trace id': `00-${'0'.repeat(32)}-${SPAN}-01`,
    'all-zero span id': `00-${TRACE}-${'0'.repeat(16)}-01`,
    'short trace id': `00-${TRACE.slice(1)}-${SPAN}-01`,
    'long span id': `00-${TRACE}-${SPAN}0-01`,
    'one-digit flags': `00-${TRACE}-${SPAN}-1`,
    'three-digit version': `000-${TRACE}-${SPAN}-01`,
    'not hex': `00-${TRACE.slice(0, 31)}g-${SPAN}-01`,
    empty: '',
    'not a string': 42,
  };
  for (const [name, value] of Object.entries(invalid)) {
    it(`ignores ${name}`, () => assert.strictEqual(parseTraceParent(value), undefined));
  }
});

describe('W3C tracestate and baggage, bounded', () => {
  it('tracestate: valid members kept in order, malformed and repeated ones dropped', () => {
    assert.strictEqual(boundTraceState('congo=t61rcWkgMzE, rojo=00f067aa0ba902b7 ,Bad=1,x=,=y,t@sys=v,congo=again'), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,t@sys=v');
    assert.strictEqual(boundTraceState(['a=1', 'b=2']), 'a=1,b=2', 'several headers are one list');
    assert.strictEqual(boundTraceState('==='), undefined);
  });
  it('tracestate: at most 32 members and 512 characters, members over 128 characters dropped first', () => {
    const many = Array.from({ length: 40 }, (_, i) => `k${i}=v`).join(',');
    assert.strictEqual(boundTraceState(many)!.split(',').length, 32);
    const long = `big=${'x'.repeat(200)},${Array.from({ length: 10 }, (_, i) => `k${i}=${'v'.repeat(60)}`).join(',')}`;
    const kept = boundTraceState(long)!;
    assert.ok(kept.length <= 512, `${kept.length}`);
    assert.ok(!kept.includes('big='));
    assert.ok(kept.startsWith('k0='));
  });
  it('baggage: entries decoded, properties ignored, malformed entries dropped, 64 entries at most', () => {
    assert.deepStrictEqual(parseBaggage('a=1, b = x%20y ;p=1,bad key=1,c=%E0%A4%A,=z,d'), [
      ['a', '1'],
      ['b', 'x y'],
    ]);
    const many = Array.from({ length: 100 }, (_, i) => `k${i}=v`).join(',');
    assert.strictEqual(parseBaggage(many).length, 64);
    assert.strictEqual(parseBaggage(`a=${'x'.repeat(9000)}`).length, 0, 'over 8192 bytes');
  });
  it('baggage out: percent-encoded, keys that are not tokens dropped, bounded', () => {
    assert.strictEqual(formatBaggage({ a: 'x y', 'no key': 'v', b: 'é,=' }), 'a=x%20y,b=%C3%A9%2C%3D');
    const many: Record<string, string> = {};
    for (let i = 0; i < 100; i++) many[`k${i}`] = 'v';
    assert.strictEqual(formatBaggage(many)!.split(',').length, 64);
  });
});

/** A jaeger tracer (const `sampled`, in-memory reporter, 128-bit ids) with the W3C codec. */
function w3cTracer(sampled: boolean): { tracer: Tracer; spans: () => JaegerSpan[]; close: () => void } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { InMemoryReporter } = require('jaeger-client') as { InMemoryReporter: new () => { spans: JaegerSpan[] } };
  const reporter = new InMemoryReporter();
  const tracer = jaeger.initTracer(
    { serviceName: 'w3c-test', sampler: { type: 'const', param: sampled ? 1 : 0 } },
    { reporter: reporter as unknown as jaeger.Reporter, traceId128bit: true } as jaeger.TracingOptions,
  );
  assert.strictEqual(registerW3CCodec(tracer), true);
  return { tracer: tracer as unknown as Tracer, spans: () => reporter.spans, close: () => tracer.close() };
}

interface Hop {
  /** What the downstream server received. */
  down: http.IncomingHttpHeaders;
  /** The server span of the request. */
  server: JaegerSpan;
}

describe('W3C propagation through the server and client patches', () => {
  let t: ReturnType<typeof w3cTracer>;
  let app: http.Server;
  let downstream: http.Server;
  let received: http.IncomingHttpHeaders[];
  let serverSpans: JaegerSpan[];

  async function start(sampled: boolean, trust?: boolean): Promise<void> {
    t = w3cTracer(sampled);
    installPatches(['http', 'http-server'], { tracer: t.tracer, 'http-server': { trustIncomingContext: trust } });
    received = [];
    serverSpans = [];
    downstream = http.createServer((req, res) => {
      received.push(req.headers);
      res.end('down');
    });
    await new Promise<void>((r) => downstream.listen(0, '127.0.0.1', r));
    const downPort = (downstream.address() as AddressInfo).port;
    app = http.createServer((req, res) => {
      serverSpans.push(getCurrentSpan() as JaegerSpan);
      http.get(`http://127.0.0.1:${downPort}/down`, (r) => {
        r.resume();
        r.on('end', () => res.end('ok'));
      });
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  }

  /** A request from an untraced client (suppressed: the client patch adds no headers of its own). */
  async function call(headers: http.OutgoingHttpHeaders): Promise<Hop> {
    const { port } = app.address() as AddressInfo;
    await new Promise<void>((resolve, reject) => {
      suppressInstrumentation(() => {
        const req = http.request({ host: '127.0.0.1', port, path: '/in', headers, agent: false }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end();
      });
    });
    assert.strictEqual(received.length, serverSpans.length);
    return { down: received[received.length - 1]!, server: serverSpans[serverSpans.length - 1]! };
  }

  afterEach(async () => {
    uninstallAllPatches();
    await new Promise((r) => app?.close(r));
    await new Promise((r) => downstream?.close(r));
    t?.close();
  });

  function traceparentOf(h: http.IncomingHttpHeaders): { traceId: string; spanId: string; sampled: boolean } {
    const p = parseTraceParent(h.traceparent);
    assert.ok(p, `no valid traceparent downstream: ${String(h.traceparent)}`);
    return p;
  }

  function uberOf(h: http.IncomingHttpHeaders): string[] {
    assert.ok(typeof h['uber-trace-id'] === 'string', 'no uber-trace-id downstream');
    return (h['uber-trace-id'] as string).split(':');
  }

  it('W3C in → the server span continues it; Jaeger and W3C out, same ids, tracestate and baggage forwarded', async () => {
    await start(false);
    const hop = await call({ traceparent: PARENT, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7', baggage: 'user=alice,note=a%20b' });
    const ctx = hop.server.context();
    assert.strictEqual(ctx.traceIdStr.padStart(32, '0'), TRACE);
    assert.strictEqual(ctx.parentIdStr, SPAN);
    assert.strictEqual(ctx.isSampled(), true, "the caller's sampled flag is followed (the tracer samples nothing itself)");
    const w3c = traceparentOf(hop.down);
    const [uTrace, uSpan, , uFlags] = uberOf(hop.down);
    assert.strictEqual(w3c.traceId, TRACE);
    assert.strictEqual(uTrace!.padStart(32, '0'), TRACE);
    assert.strictEqual(w3c.spanId.replace(/^0+/, ''), uSpan, 'both headers name the client span');
    assert.strictEqual(w3c.sampled, true);
    assert.strictEqual(uFlags, '1');
    assert.strictEqual(hop.down.tracestate, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    assert.strictEqual(hop.down['uberctx-user'], 'alice');
    assert.strictEqual(hop.down['uberctx-note'], 'a%20b');
    assert.deepStrictEqual(parseBaggage(hop.down.baggage), [
      ['user', 'alice'],
      ['note', 'a b'],
    ]);
  });

  it('Jaeger in → the server span continues it; Jaeger and W3C out (trace id padded to 128 bits)', async () => {
    await start(false);
    const hop = await call({ 'uber-trace-id': 'abc123:def456:0:1', 'uberctx-k': 'v' });
    assert.strictEqual(hop.server.context().traceIdStr, 'abc123');
    assert.strictEqual(hop.server.context().parentIdStr, 'def456');
    const w3c = traceparentOf(hop.down);
    assert.strictEqual(w3c.traceId, 'abc123'.padStart(32, '0'));
    assert.strictEqual(uberOf(hop.down)[0], 'abc123');
    assert.strictEqual(w3c.sampled, true);
    assert.strictEqual(hop.down.tracestate, undefined);
    assert.strictEqual(hop.down.baggage, 'k=v');
  });

  it('no context in → a new 128-bit trace, both headers out', async () => {
    await start(true);
    const hop = await call({});
    assert.strictEqual(hop.server.context().traceIdStr.length > 16, true, '128-bit trace id');
    assert.strictEqual(traceparentOf(hop.down).traceId, hop.server.context().traceIdStr.padStart(32, '0'));
  });

  it('both in, same trace: W3C first (its span id is the parent)', async () => {
    await start(false);
    const hop = await call({ traceparent: PARENT, 'uber-trace-id': `${TRACE}:1234:0:1` });
    assert.strictEqual(hop.server.context().parentIdStr, SPAN);
    assert.strictEqual(traceparentOf(hop.down).traceId, TRACE);
  });

  it('both in, different traces: traceparent is followed, uber-trace-id ignored (sampling included)', async () => {
    await start(false);
    const hop = await call({ traceparent: `00-${TRACE}-${SPAN}-00`, 'uber-trace-id': 'abc123:def456:0:1', 'uberctx-k': 'v' });
    const ctx = hop.server.context();
    assert.strictEqual(ctx.traceIdStr.padStart(32, '0'), TRACE);
    assert.strictEqual(ctx.parentIdStr, SPAN);
    assert.strictEqual(ctx.isSampled(), false, "uber-trace-id's sampled flag is not used");
    assert.strictEqual(uberOf(hop.down)[0]!.padStart(32, '0'), TRACE, 'both headers out name the W3C trace');
    assert.strictEqual(hop.down['uberctx-k'], 'v', 'baggage is read from both');
  });

  it('a malformed traceparent beside a valid uber-trace-id: the Jaeger context is used', async () => {
    await start(false);
    const hop = await call({ traceparent: PARENT.toUpperCase(), 'uber-trace-id': 'abc123:def456:0:1' });
    assert.strictEqual(hop.server.context().traceIdStr, 'abc123');
  });

  describe('a caller that is not trusted (trustIncomingContext: false), both formats alike', () => {
    const forcing: Record<string, http.OutgoingHttpHeaders> = {
      'W3C sampled flag and baggage': { traceparent: PARENT, tracestate: 'a=b', baggage: 'user=mallory' },
      'Jaeger sampled flag, debug id and baggage': { 'uber-trace-id': 'abc123:def456:0:3', 'jaeger-debug-id': 'x', 'uberctx-user': 'mallory', 'jaeger-baggage': 'k=v' },
      'both': { traceparent: PARENT, 'uber-trace-id': `${TRACE}:def456:0:1`, baggage: 'user=mallory', 'uberctx-user': 'mallory' },
    };
    for (const [name, headers] of Object.entries(forcing)) {
      it(`${name}: a new trace, not sampled, no baggage, no tracestate`, async () => {
        await start(false, false);
        const hop = await call(headers);
        const ctx = hop.server.context();
        assert.notStrictEqual(ctx.traceIdStr.padStart(32, '0'), TRACE);
        assert.notStrictEqual(ctx.traceIdStr, 'abc123');
        assert.ok(!ctx.parentIdStr, 'a root span');
        assert.strictEqual(ctx.isSampled(), false);
        const w3c = traceparentOf(hop.down);
        assert.strictEqual(w3c.sampled, false);
        assert.strictEqual(uberOf(hop.down)[3], '0');
        assert.strictEqual(hop.down.baggage, undefined);
        assert.strictEqual(hop.down.tracestate, undefined);
        assert.deepStrictEqual(Object.keys(hop.down).filter((k) => k.startsWith('uberctx-')), []);
      });
    }
    it('the same W3C headers from a trusted caller are followed (the check above can fail)', async () => {
      await start(false, true);
      const hop = await call(forcing['W3C sampled flag and baggage']!);
      assert.strictEqual(hop.server.context().isSampled(), true);
      assert.strictEqual(hop.down.baggage, 'user=mallory');
    });
  });
});

describe('W3C codec on its own', () => {
  it('text maps too, with a custom Jaeger context key; extract never throws', () => {
    const t = w3cTracer(true);
    try {
      const codec = new W3CTraceContextCodec({ contextKey: 'my-trace-id', urlEncoding: false });
      const carrier: Record<string, unknown> = {};
      const span = t.tracer.startSpan('x');
      codec.inject(span.context(), carrier);
      assert.ok(typeof carrier['my-trace-id'] === 'string');
      assert.ok(parseTraceParent(carrier.traceparent));
      for (const bad of [{ traceparent: null }, { traceparent: ['a', 'b'] }, { tracestate: {} as unknown }, { baggage: 5 }]) {
        assert.doesNotThrow(() => codec.extract(bad as Record<string, unknown>));
      }
      const c2: Record<string, string> = {};
      t.tracer.inject(span.context(), FORMAT_TEXT_MAP, c2);
      assert.ok(parseTraceParent(c2.traceparent));
      span.finish();
    } finally {
      t.close();
    }
  });

  it('initTracer({ ... }, { propagation: "jaeger,w3c" }) registers it and makes 128-bit trace ids', async () => {
    const tracer = initTracer({ serviceName: 'w3c-init', reporter: { agentHost: '127.0.0.1', agentPort: 9 } }, { propagation: 'jaeger,w3c' });
    try {
      const span = tracer.startSpan('x');
      const carrier: Record<string, string> = {};
      tracer.inject(span.context(), FORMAT_HTTP_HEADERS, carrier);
      const p = parseTraceParent(carrier.traceparent);
      assert.ok(p, JSON.stringify(carrier));
      assert.ok(!p.traceId.startsWith('0000000000000000'), '128-bit trace id');
      assert.ok(carrier['uber-trace-id']);
      span.finish();
    } finally {
      await closeTracer();
    }
  });

  it('initTracer without the option: Jaeger headers only', async () => {
    const tracer = initTracer({ serviceName: 'w3c-init', reporter: { agentHost: '127.0.0.1', agentPort: 9 } });
    try {
      const span = tracer.startSpan('x');
      const carrier: Record<string, string> = {};
      tracer.inject(span.context(), FORMAT_HTTP_HEADERS, carrier);
      assert.deepStrictEqual(Object.keys(carrier), ['uber-trace-id']);
      span.finish();
    } finally {
      await closeTracer();
    }
  });
});
