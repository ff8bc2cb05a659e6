/**
 * Hostile trace context: baggage that arrived from a caller (any key, any
 * size) is forwarded downstream only as valid, bounded headers, so that no
 * caller can make the application's own outgoing requests fail.
 */
import assert from 'assert';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { FORMAT_HTTP_HEADERS, type Span } from 'opentracing';
import { installPatches, spanInContext } from '../src';
import { BAGGAGE_LIMIT } from '../src/constants';
import { record } from './helpers/reliability';
import { startHttpServer, type TestServer } from './helpers/servers';
import { rawRequest } from './helpers/requests';
import { createTestTracer, spanId, tag, useTracing, waitForSpans } from './helpers/tracing';

function baggageOf(headers: http.IncomingHttpHeaders): Array<[string, string]> {
  return Object.entries(headers)
    .filter(([k]) => k.startsWith('uberctx-'))
    .map(([k, v]) => [k, String(v)]);
}

describe('hostile baggage is forwarded only as valid, bounded headers', () => {
  const t = useTracing(['http', 'https']);
  let server: TestServer;
  before(async () => (server = await startHttpServer()));
  after(() => server.close());
  beforeEach(() => (server.received.length = 0));

  /** A span continuing what a (trusted) caller sent in `headers`, as the server patch would make it. */
  function continuing(headers: Record<string, string>): Span {
    const ctx = t.tracer.extract(FORMAT_HTTP_HEADERS, { 'uber-trace-id': '1234abcd:1234abcd:0:1', ...headers });
    return t.tracer.startSpan('server', { childOf: ctx ?? undefined });
  }

  /** GET through both header paths (object: set after construction; raw array: rendered at construction). */
  async function callBothWays(parent: Span): Promise<http.IncomingHttpHeaders[]> {
    const statuses: number[] = [];
    for (const headers of [{ 'x-app': '1' }, ['host', `127.0.0.1:${server.port}`, 'x-app', '1']]) {
      await spanInContext(
        parent,
        () =>
          new Promise<void>((resolve, reject) => {
            http
              .get(`${server.origin}/`, { headers }, (res) => {
                statuses.push(res.statusCode ?? 0);
                res.resume();
                res.on('end', resolve);
              })
              .on('error', reject);
          }),
      );
    }
    assert.deepStrictEqual(statuses, [200, 200]);
    return server.received.map((r) => r.headers);
  }

  it('baggage keys that are not valid header names are dropped, the request goes on', async () => {
    const parent = continuing({
      'jaeger-baggage': 'a b=1, k%0d%0aX-Injected: x=2, ok=3, caf\u00e9=4, =5',
      'uberctx-good': 'yes',
    });
    const received = await callBothWays(parent);
    parent.finish();
    for (const headers of received) {
      // An empty key is a valid (if odd) header: `uberctx-`.
      assert.deepStrictEqual(baggageOf(headers).sort(), [
        ['uberctx-', '5'],
        ['uberctx-good', 'yes'],
        ['uberctx-ok', '3'],
      ]);
      assert.strictEqual(headers['x-injected'], undefined);
    }
  });

  it(`more than ${BAGGAGE_LIMIT.MAX_ITEMS} baggage entries: the first ${BAGGAGE_LIMIT.MAX_ITEMS} are forwarded`, async () => {
    const many: Record<string, string> = {};
    for (let i = 0; i < 300; i++) many[`uberctx-k${i}`] = `v${i}`;
    const parent = continuing(many);
    const received = await callBothWays(parent);
    parent.finish();
    for (const headers of received) {
      const baggage = baggageOf(headers);
      assert.strictEqual(baggage.length, BAGGAGE_LIMIT.MAX_ITEMS);
      assert.deepStrictEqual(baggage[0], ['uberctx-k0', 'v0']);
    }
  });

  it(`baggage beyond ${BAGGAGE_LIMIT.MAX_BYTES} bytes is not forwarded (the downstream would answer 431)`, async () => {
    // What a trusted caller can send within Node's 16 KiB header limit.
    const big: Record<string, string> = {};
    for (let i = 0; i < 6; i++) big[`uberctx-big${i}`] = 'x'.repeat(2000);
    big['uberctx-huge'] = 'y'.repeat(9000);
    big['uberctx-small'] = 'z';
    const parent = continuing(big);
    const received = await callBothWays(parent);
    parent.finish();
    for (const headers of received) {
      const baggage = baggageOf(headers);
      const bytes = baggage.reduce((n, [k, v]) => n + k.length + v.length, 0);
      assert.ok(bytes <= BAGGAGE_LIMIT.MAX_BYTES, `${bytes} bytes of baggage forwarded`);
      assert.deepStrictEqual(
        baggage.map(([k]) => k),
        ['uberctx-big0', 'uberctx-big1', 'uberctx-big2', 'uberctx-big3', 'uberctx-small'],
      );
    }
    record('hostile.baggage-paths', {
      area: 'Hostile input',
      what: `baggage from a caller with invalid header names, > ${BAGGAGE_LIMIT.MAX_ITEMS} entries, > ${BAGGAGE_LIMIT.MAX_BYTES} bytes, forwarded by http (both header paths)`,
      unit: 'downstream requests',
      lostMeans: 'an application request failing because of forwarded baggage, or baggage forwarded beyond the bounds',
      tried: 6,
      lost: 0,
    });
  });
});

describe('hostile baggage under a tracer that names its baggage headers itself (jaeger `baggagePrefix`)', () => {
  // No header name says "baggage" any more: the bounds must find the baggage headers all the same.
  const NAMES = { contextKey: 'x-acme-trace', baggagePrefix: 'acme-ctx-' };
  const t = useTracing(['http', 'https', 'http-server'], {}, NAMES);
  let downstream: TestServer;
  let front: http.Server;
  let frontPort = 0;

  function baggageOf(headers: http.IncomingHttpHeaders): Array<[string, string]> {
    return Object.entries(headers)
      .filter(([k]) => k.startsWith(NAMES.baggagePrefix))
      .map(([k, v]) => [k, String(v)]);
  }

  /** GET downstream through both header paths (object, raw array); resolves with the statuses. */
  async function downstreamBothWays(): Promise<number[]> {
    const statuses: number[] = [];
    for (const headers of [{ 'x-app': '1' }, ['host', `127.0.0.1:${downstream.port}`, 'x-app', '1']]) {
      statuses.push(
        await new Promise<number>((resolve, reject) => {
          http
            .get(`${downstream.origin}/`, { headers }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            })
            .on('error', reject);
        }),
      );
    }
    return statuses;
  }

  before(async () => {
    downstream = await startHttpServer();
    // The front accepts what a trusted caller may send it (more than Node's
    // default 16 KiB of headers); the downstream keeps Node's default, so
    // unbounded baggage would get a 431 from it.
    front = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
      downstreamBothWays().then(
        (statuses) => res.end(JSON.stringify(statuses)),
        (err: Error) => {
          res.statusCode = 500;
          res.end(err.message);
        },
      );
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    frontPort = (front.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => front.close(resolve));
    await downstream.close();
  });
  beforeEach(() => (downstream.received.length = 0));

  /** Sends `headers` (raw lines) to the front, whose handler calls downstream twice; returns what downstream received. */
  async function throughTheFront(headers: string[]): Promise<http.IncomingHttpHeaders[]> {
    const reply = await rawRequest(frontPort, ['GET / HTTP/1.1', 'Host: front', 'X-Acme-Trace: 1234abcd:1234abcd:0:1', ...headers].join('\r\n'));
    assert.strictEqual(reply.status, 200, reply.text.slice(0, 200));
    assert.strictEqual(reply.text.slice(reply.text.indexOf('\r\n\r\n') + 4), '[200,200]');
    await waitForSpans(t, 3);
    const clientSpanIds = t
      .spans()
      .filter((s) => tag(s, 'span.kind') === 'client')
      .map((s) => spanId(s));
    const received = downstream.received.map((r) => r.headers);
    assert.strictEqual(received.length, 2);
    // The trace header still goes: the caller's trace, each call's own span.
    assert.deepStrictEqual(
      received.map((h) => String(h[NAMES.contextKey]).split(':').slice(0, 2)).map(([trace, span]) => [trace.replace(/^0+/, ''), span]),
      clientSpanIds.map((id) => ['1234abcd', id]),
    );
    return received;
  }

  it(`through the server patch, more than ${BAGGAGE_LIMIT.MAX_ITEMS} entries: the first ${BAGGAGE_LIMIT.MAX_ITEMS} valid ones are forwarded`, async () => {
    // First, a key that is no header name (dropped before it counts), then 300 entries.
    const lines = ['Jaeger-Baggage: a b=1'];
    for (let i = 0; i < 300; i++) lines.push(`Acme-Ctx-K${i}: v${i}`);
    for (const headers of await throughTheFront(lines)) {
      const baggage = baggageOf(headers);
      assert.deepStrictEqual(
        baggage,
        Array.from({ length: BAGGAGE_LIMIT.MAX_ITEMS }, (_, i) => [`acme-ctx-k${i}`, `v${i}`]),
      );
    }
  });

  it(`through the server patch, baggage beyond ${BAGGAGE_LIMIT.MAX_BYTES} bytes is not forwarded (the downstream would answer 431)`, async () => {
    const lines: string[] = [];
    for (let i = 0; i < 6; i++) lines.push(`Acme-Ctx-Big${i}: ${'x'.repeat(2000)}`);
    lines.push(`Acme-Ctx-Huge: ${'y'.repeat(9000)}`, 'Acme-Ctx-Small: z');
    for (const headers of await throughTheFront(lines)) {
      const baggage = baggageOf(headers);
      const bytes = baggage.reduce((n, [k, v]) => n + k.length + v.length, 0);
      assert.ok(bytes <= BAGGAGE_LIMIT.MAX_BYTES, `${bytes} bytes of baggage forwarded`);
      assert.deepStrictEqual(
        baggage.map(([k]) => k),
        ['acme-ctx-big0', 'acme-ctx-big1', 'acme-ctx-big2', 'acme-ctx-big3', 'acme-ctx-small'],
      );
    }
    record('hostile.baggage-custom-prefix', {
      area: 'Hostile input',
      what: `baggage from a caller, through the server patch, under a jaeger tracer with its own \`baggagePrefix\` and \`contextKey\`: > ${BAGGAGE_LIMIT.MAX_ITEMS} entries, > ${BAGGAGE_LIMIT.MAX_BYTES} bytes, forwarded by http (both header paths)`,
      unit: 'downstream requests',
      lostMeans: 'an application request failing because of forwarded baggage, or baggage forwarded beyond the bounds',
      tried: 4,
      lost: 0,
    });
  });

  it('set on the span, under an unsampled parent (its headers worked out once): bounded on every call, its own context goes', async () => {
    const u = createTestTracer({ sampled: false, ...NAMES });
    try {
      installPatches(['http', 'https'], { tracer: u.tracer });
      const parent = u.tracer.startSpan('parent');
      for (let i = 0; i < 300; i++) parent.setBaggageItem(`k${i}`, `v${i}`);
      await spanInContext(parent, async () => assert.deepStrictEqual(await downstreamBothWays(), [200, 200]));
      parent.finish();
      const received = downstream.received.map((r) => r.headers);
      assert.strictEqual(received.length, 2);
      for (const headers of received) {
        assert.strictEqual(String(headers[NAMES.contextKey]).split(':')[1], spanId(parent));
        assert.deepStrictEqual(
          baggageOf(headers),
          Array.from({ length: BAGGAGE_LIMIT.MAX_ITEMS }, (_, i) => [`acme-ctx-k${i}`, `v${i}`]),
        );
      }
    } finally {
      installPatches(['http', 'https', 'http-server'], { tracer: t.tracer });
      u.close();
    }
  });

  it('a tracer that refuses to inject the copy without baggage: the baggage headers are told by value, still bounded, the call goes on', async () => {
    const inject = t.tracer.inject.bind(t.tracer);
    t.tracer.inject = (context, format, carrier) => {
      const items = (context as unknown as { baggage: Record<string, string> }).baggage;
      if (Object.keys(items).length === 0) throw new Error('no copies');
      inject(context, format, carrier);
    };
    try {
      const parent = t.tracer.startSpan('parent');
      for (let i = 0; i < 300; i++) parent.setBaggageItem(`k${i}`, `v${i}`);
      await spanInContext(parent, async () => assert.deepStrictEqual(await downstreamBothWays(), [200, 200]));
      parent.finish();
      const received = downstream.received.map((r) => r.headers);
      const clientSpanIds = t
        .spans()
        .filter((s) => tag(s, 'span.kind') === 'client')
        .map((s) => spanId(s));
      assert.deepStrictEqual(
        received.map((h) => String(h[NAMES.contextKey]).split(':')[1]),
        clientSpanIds,
      );
      for (const headers of received) {
        assert.deepStrictEqual(
          baggageOf(headers),
          Array.from({ length: BAGGAGE_LIMIT.MAX_ITEMS }, (_, i) => [`acme-ctx-k${i}`, `v${i}`]),
        );
      }
    } finally {
      t.tracer.inject = inject;
    }
  });

  it('a context without baggage costs one inject; one with baggage two (to tell its baggage headers apart)', async () => {
    const inject = t.tracer.inject.bind(t.tracer);
    let injects = 0;
    t.tracer.inject = (context, format, carrier) => {
      injects++;
      inject(context, format, carrier);
    };
    try {
      const counts: number[] = [];
      for (const baggage of [false, true]) {
        const parent = t.tracer.startSpan('parent');
        if (baggage) parent.setBaggageItem('tenant', 'acme');
        injects = 0;
        await spanInContext(parent, async () => assert.deepStrictEqual(await downstreamBothWays(), [200, 200]));
        counts.push(injects);
        parent.finish();
      }
      assert.deepStrictEqual(counts, [2, 4]);
      assert.deepStrictEqual(downstream.received.map((r) => baggageOf(r.headers)), [[], [], [['acme-ctx-tenant', 'acme']], [['acme-ctx-tenant', 'acme']]]);
    } finally {
      t.tracer.inject = inject;
    }
  });
});
