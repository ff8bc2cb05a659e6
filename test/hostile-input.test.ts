/**
 * Hostile trace context: baggage that arrived from a caller (any key, any
 * size) is forwarded downstream only as valid, bounded headers, so that no
 * caller can make the application's own outgoing requests fail.
 */
import assert from 'assert';
import * as http from 'http';
import { FORMAT_HTTP_HEADERS, type Span } from 'opentracing';
import { spanInContext } from '../src';
import { BAGGAGE_LIMIT } from '../src/constants';
import { record } from './helpers/reliability';
import { startHttpServer, type TestServer } from './helpers/servers';
import { useTracing } from './helpers/tracing';

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
