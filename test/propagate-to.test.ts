/**
 * `propagateTo` against hostile host names: trace headers (and baggage) go
 * only where a pattern matches the whole destination host. Every name is
 * routed to a local dual-stack server (a custom `lookup`), which records what
 * it received, so the test sees exactly what would have left the process.
 */
import assert from 'assert';
import axios from 'axios';
import * as http from 'http';
import * as undici from 'undici';
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
  const t = useTracing(['http', 'https', 'axios', 'fetch'], { propagateTo: PATTERNS });
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

  const dispatcher = new undici.Agent({ connect: { lookup: toLoopback as never } });
  after(() => dispatcher.close());

  /** Each client, given a URL (any host name reaches the local server). */
  const CLIENTS: Array<[string, (url: string) => Promise<void>]> = [
    ['http.get, headers object (set after construction)', (url) => call(url, { headers: { 'x-case': '1' } })],
    [
      'http.get, raw header array (rendered at construction)',
      (url) => call(url, { headers: ['host', new URL(url).host, 'x-case', '1'] }),
    ],
    ['axios, http adapter', async (url) => void (await axios.get(url, { lookup: toLoopback as never, proxy: false }))],
    ['axios, fetch adapter', async (url) => void (await axios.get(url, { adapter: 'fetch', fetchOptions: { dispatcher } } as never))],
    ['global fetch', async (url) => void (await (await fetch(url, { dispatcher } as unknown as RequestInit)).text())],
    ['undici.request', async (url) => void (await (await undici.request(url, { dispatcher })).body.text())],
  ];

  for (const [client, get] of CLIENTS) {
    it(`${client}: trace headers and baggage go only to whole-host matches`, async () => {
      const parent = t.tracer.startSpan('parent');
      parent.setBaggageItem('tenant', 'acme');
      const outcomes: string[] = [];
      let sent = 0;
      try {
        for (const [host, expected, why] of CASES) {
          const authority = host.includes('{port}') ? host.replace('{port}', String(port)) : `${host}:${port}`;
          const url = `http://${authority}/${encodeURIComponent(why)}`;
          received.length = 0;
          let refused: unknown;
          await spanInContext(parent, () => get(url)).catch((err: unknown) => (refused = err));
          if (refused !== undefined && received.length === 0 && !expected) continue; // the client itself refuses this URL
          sent++;
          assert.strictEqual(received.length, 1, `${host}: the request did not arrive (${String(refused)})`);
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
        what: `propagateTo with ${CASES.length} hostile host names (prefix/suffix/look-alike/percent-encoded names, IP literals in other forms, trailing dots, upper case, userinfo, backslash and fragment tricks), through http (both header paths), axios (both adapters), global fetch and undici.request`,
        unit: 'requests',
        lostMeans: 'trace headers or baggage sent to a host no pattern matches whole (or withheld from one that matches)',
        tried: sent,
        lost: outcomes.length,
      });
      assert.deepStrictEqual(outcomes, []);
      // Only the userinfo case may be refused by a client (fetch refuses URLs with credentials).
      assert.ok(sent >= CASES.length - 1, `only ${sent} of ${CASES.length} cases were sent`);
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
