/**
 * `propagateTo` against hostile host names: trace headers (and baggage) go
 * only where a pattern matches the whole destination host. Every name is
 * routed to a local dual-stack server (a custom `lookup`), which records what
 * it received, so the test sees exactly what would have left the process.
 */
import assert from 'assert';
import * as http from 'http';
import type { AddressInfo, LookupFunction } from 'net';
import { spanInContext } from '../src';
import { record } from './helpers/reliability';
import type { Received } from './helpers/servers';
import { useTracing } from './helpers/tracing';

/** Any host name resolves to loopback. */
const toLoopback = ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
  if (options && options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}) as LookupFunction;

const PATTERNS = ['allowed.example', '*.corp.example', /svc-[0-9]+\.internal/, '127.0.0.1', '::1'];

/** [URL authority (`{port}` is the server's port), expected to receive trace headers, why]. */
const CASES: Array<[string, boolean, string]> = [
  ['allowed.example', true, 'exact name'],
  ['ALLOWED.EXAMPLE', true, 'upper case: the same host'],
  ['Allowed.Example.', true, 'trailing dot (fully qualified): the same host'],
  ['allowed.example.evil.test', false, 'allowed name as a prefix of another domain'],
  ['evilallowed.example', false, 'allowed name as a suffix of a longer label'],
  ['allowed.examplex', false, 'allowed name plus one letter'],
  ['xn--llowed-6nf.example', false, 'look-alike (Cyrillic а, punycode)'],
  ['\u0430llowed.example', false, 'look-alike given in Unicode'],
  ['allowed.example%2eevil.test', false, 'percent-encoded dot'],
  ['a.corp.example', true, 'subdomain of a wildcard'],
  ['A.B.CORP.EXAMPLE.', true, 'deeper subdomain, upper case, trailing dot'],
  ['allowed.example.corp.example', true, 'a legitimately matching subdomain'],
  ['corp.example', false, 'the wildcard\'s own domain is not a subdomain'],
  ['evilcorp.example', false, 'wildcard suffix without the dot'],
  ['a.corp.example.evil.test', false, 'wildcard match as a prefix'],
  ['svc-12.internal', true, 'RegExp, whole host'],
  ['svc-12.internal.evil.test', false, 'RegExp match as a prefix'],
  ['xsvc-12.internal', false, 'RegExp match as a suffix'],
  ['127.0.0.1', true, 'IPv4 literal listed'],
  ['127.1', true, 'short IPv4 form: the URL parser makes it 127.0.0.1'],
  ['2130706433', true, 'integer IPv4 form: the URL parser makes it 127.0.0.1'],
  ['127.0.0.2', false, 'another IPv4 literal'],
  ['127.0.0.1.evil.test', false, 'listed IP as a prefix of a name'],
  ['[::1]', true, 'IPv6 literal listed'],
  ['[0:0:0:0:0:0:0:1]', true, 'long IPv6 form of the listed literal'],
  ['[::ffff:127.0.0.1]', false, 'IPv4-mapped IPv6: another literal'],
  ['localhost', false, 'a name that resolves to a listed IP is not listed'],
  ['allowed.example@evil.test:{port}', false, 'userinfo trick: the host is evil.test'],
  ['evil.test:{port}\\@allowed.example', false, 'backslash trick: the host is evil.test'],
  ['evil.test:{port}#@allowed.example', false, 'fragment trick: the host is evil.test'],
];

describe('propagateTo against hostile host names', () => {
  const t = useTracing(['http', 'https'], { propagateTo: PATTERNS });
  let server: http.Server;
  let port: number;
  const received: Received[] = [];
  before(async () => {
    server = http.createServer((req, res) => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      req.resume();
      res.end('ok');
    });
    // '::' is dual-stack: it takes 127.0.0.x and ::1 alike.
    await new Promise<void>((resolve) => server.listen(0, '::', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => (received.length = 0));

  function call(url: string, options: http.RequestOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      http
        .get(url, { lookup: toLoopback, agent: false, ...options }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject);
    });
  }

  /** Each case through a header object (set after construction) and a raw header array (rendered at construction). */
  for (const form of ['headers object', 'raw header array'] as const) {
    it(`sends trace headers and baggage only to whole-host matches (${form})`, async () => {
      const parent = t.tracer.startSpan('parent');
      parent.setBaggageItem('tenant', 'acme');
      const outcomes: string[] = [];
      try {
        for (const [host, expected, why] of CASES) {
          const authority = host.includes('{port}') ? host.replace('{port}', String(port)) : `${host}:${port}`;
          const url = `http://${authority}/${encodeURIComponent(why)}`;
          const hostname = new URL(url).hostname;
          const headers = form === 'raw header array' ? ['host', `${hostname}:${port}`, 'x-case', '1'] : { 'x-case': '1' };
          received.length = 0;
          await spanInContext(parent, () => call(url, { headers }));
          assert.strictEqual(received.length, 1, `${host}: the request did not arrive`);
          const got = received[0].headers;
          const traced = got['uber-trace-id'] !== undefined;
          const baggage = Object.keys(got).filter((k) => k.startsWith('uberctx-'));
          if (traced !== expected || baggage.length !== (expected ? 1 : 0)) {
            outcomes.push(`${host} (${why}): trace header ${traced ? 'sent' : 'not sent'}, baggage ${baggage.join(',') || 'none'}; expected ${expected ? 'both' : 'neither'}`);
          }
        }
      } finally {
        parent.finish();
      }
      record('secrets.propagateTo', {
        area: 'Secrets',
        what: `propagateTo with hostile host names (prefix/suffix/look-alike/percent-encoded names, IP literals in other forms, trailing dots, upper case, userinfo and backslash tricks): ${CASES.length} hosts × 2 header forms`,
        unit: 'requests',
        lostMeans: 'trace headers or baggage sent to a host no pattern matches whole (or withheld from one that matches)',
        tried: CASES.length,
        lost: outcomes.length,
      });
      assert.deepStrictEqual(outcomes, []);
    });
  }

  it('decides on the host connected to, not on a Host header the app sets', async () => {
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, () => call(`http://evil.test:${port}/`, { headers: { host: 'allowed.example' } }));
    await spanInContext(parent, () => call(`http://allowed.example:${port}/`, { headers: { host: 'evil.test' } }));
    parent.finish();
    assert.strictEqual(received.length, 2);
    assert.strictEqual(received[0].headers['uber-trace-id'], undefined);
    assert.notStrictEqual(received[1].headers['uber-trace-id'], undefined);
  });
});
