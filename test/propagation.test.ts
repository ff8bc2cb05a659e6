/**
 * Where trace context may go: `propagateTo` and `propagateBaggage`, for
 * http, https, axios (both adapters) and fetch (global and undici), against
 * local servers. Host names are resolved to 127.0.0.1 by a custom lookup, so
 * that any name can be tried without DNS.
 */
import assert from 'assert';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import * as net from 'net';
import type { Span } from 'opentracing';
import axios from 'axios';
import * as undici from 'undici';
import { installPatches, spanInContext } from '../src';
import { compilePropagationRules } from '../src/propagation';
import { parentId, spanId, tag, useTracing, type JaegerSpan, type TestTracer } from './helpers/tracing';
import { loopbackLookup } from './helpers/lookup';
import { defaultHandler, startHttpServer, startHttpsServer, type Handler, type Received, type TestServer } from './helpers/servers';

const PATCHES = ['http', 'https', 'axios', 'fetch'] as const;

const PROPAGATE_TO = ['api.internal', '*.corp.example', /allowed\.example/, '127.0.0.1'];

/** Host names, and whether PROPAGATE_TO lets trace context go there. */
const HOSTS: ReadonlyArray<readonly [string, boolean]> = [
  ['api.internal', true],
  ['API.Internal', true],
  ['api.internal.', true],
  ['api.internal.evil.test', false],
  ['evilapi.internal', false],
  ['svc.corp.example', true],
  ['a.b.corp.example', true],
  ['corp.example', false],
  ['evilcorp.example', false],
  ['svc.corp.example.evil.test', false],
  ['allowed.example', true],
  ['allowed.example.evil.test', false],
  ['evilallowed.example', false],
  ['x.allowed.example', false],
  ['127.0.0.1', true],
  ['127.0.0.1.evil.test', false],
  ['localhost', false],
];

/** `/to/<host>`: 302 to `http://<host>:<same port>/landing`. Else the default handler. */
function redirecting(port: () => number): Handler {
  return (req, res) => {
    const to = /^\/to\/([^/?]+)/.exec(req.url ?? '');
    if (to) {
      res.statusCode = 302;
      res.setHeader('location', `http://${to[1]}:${port()}/landing`);
      res.end();
      return;
    }
    defaultHandler(req, res);
  };
}

interface Client {
  name: string;
  component: string;
  /** Makes a GET to `url` (any host name resolved to 127.0.0.1) and reads the body. */
  get(url: string): Promise<void>;
  /** Follows redirects itself. */
  followsRedirects: boolean;
  tls: boolean;
}

const lookup = loopbackLookup();

/** fetch's `dispatcher` option (an undici extension that Node's RequestInit type does not list). */
function viaDispatcher(dispatcher: undici.Dispatcher): RequestInit {
  return { dispatcher } as unknown as RequestInit;
}
const dispatcher = new undici.Agent({ connect: { lookup: lookup as never, rejectUnauthorized: false } });

function nodeGet(mod: typeof http | typeof https, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    mod
      .get(url, { lookup, rejectUnauthorized: false, agent: false } as https.RequestOptions, (res) => {
        res.resume();
        res.on('end', resolve);
      })
      .on('error', reject);
  });
}

const insecureHttpsAgent = new https.Agent({ rejectUnauthorized: false });

const CLIENTS: Client[] = [
  { name: 'http.get', component: 'http', tls: false, followsRedirects: false, get: (url) => nodeGet(http, url) },
  { name: 'https.get', component: 'https', tls: true, followsRedirects: false, get: (url) => nodeGet(https, url) },
  {
    name: 'axios (http adapter)',
    component: 'axios',
    tls: false,
    followsRedirects: true,
    get: async (url) => void (await axios.get(url, { lookup: lookup as never, proxy: false })),
  },
  {
    name: 'axios over https (http adapter)',
    component: 'axios',
    tls: true,
    followsRedirects: false,
    get: async (url) => void (await axios.get(url, { lookup: lookup as never, httpsAgent: insecureHttpsAgent, proxy: false })),
  },
  {
    name: 'axios (fetch adapter)',
    component: 'axios',
    tls: false,
    followsRedirects: true,
    get: async (url) => void (await axios.get(url, { adapter: 'fetch', fetchOptions: { dispatcher } } as never)),
  },
  {
    name: 'global fetch',
    component: 'fetch',
    tls: false,
    followsRedirects: true,
    get: async (url) => void (await (await fetch(url, viaDispatcher(dispatcher))).text()),
  },
  {
    name: 'undici.request',
    component: 'fetch',
    tls: false,
    followsRedirects: false,
    get: async (url) => void (await (await undici.request(url, { dispatcher })).body.text()),
  },
];

function hasTraceContext(r: Received): boolean {
  return r.headers['uber-trace-id'] !== undefined;
}

function baggageHeaders(r: Received): string[] {
  return Object.keys(r.headers).filter((h) => h.startsWith('uberctx-'));
}

describe('propagation', () => {
  after(async () => {
    await dispatcher.close();
    insecureHttpsAgent.destroy();
  });

  describe('propagateTo', () => {
    const t = useTracing([...PATCHES], { propagateTo: PROPAGATE_TO });
    let server: TestServer;
    let tls: TestServer;
    before(async () => {
      let port = 0;
      server = await startHttpServer(redirecting(() => port));
      port = server.port;
      tls = await startHttpsServer();
    });
    after(async () => {
      await server.close();
      await tls.close();
    });
    beforeEach(() => {
      server.received.length = 0;
      tls.received.length = 0;
    });

    async function underParent(fn: () => Promise<void>): Promise<Span> {
      const parent = t.tracer.startSpan('parent');
      parent.setBaggageItem('tenant', 'acme');
      try {
        await spanInContext(parent, fn);
      } finally {
        parent.finish();
      }
      return parent;
    }

    function clientSpans(component: string): JaegerSpan[] {
      return t.spans().filter((s) => tag(s, 'component') === component);
    }

    for (const client of CLIENTS) {
      describe(client.name, () => {
        for (const [host, allowed] of HOSTS) {
          it(`${allowed ? 'sends' : 'does not send'} trace context to ${host}, and traces the call`, async () => {
            const target = client.tls ? tls : server;
            const hostPart = host.includes(':') ? `[${host}]` : host;
            const parent = await underParent(() => client.get(`${client.tls ? 'https' : 'http'}://${hostPart}:${target.port}/p`));
            const spans = clientSpans(client.component);
            assert.strictEqual(spans.length, 1, 'exactly one client span, whatever the host');
            assert.strictEqual(parentId(spans[0]), spanId(parent));
            assert.strictEqual(target.received.length, 1);
            const got = target.received[0];
            if (allowed) {
              assert.strictEqual(String(got.headers['uber-trace-id']).split(':')[1], spanId(spans[0]));
              assert.deepStrictEqual(baggageHeaders(got), ['uberctx-tenant']);
            } else {
              assert.strictEqual(hasTraceContext(got), false, `trace headers reached ${host}`);
              assert.deepStrictEqual(baggageHeaders(got), [], `baggage reached ${host}`);
            }
          });
        }

        if (client.followsRedirects) {
          it('checks each redirect hop: an allowed host redirecting elsewhere sends nothing to the second', async () => {
            await underParent(() => client.get(`http://api.internal:${server.port}/to/evil.test`));
            assert.deepStrictEqual(
              server.received.map((r) => [r.headers.host, hasTraceContext(r), baggageHeaders(r).length]),
              [
                [`api.internal:${server.port}`, true, 1],
                [`evil.test:${server.port}`, false, 0],
              ],
            );
            // One call, one span, whatever hops it takes.
            assert.strictEqual(clientSpans(client.component).length, 1);
          });

          it('checks each redirect hop: another host redirecting to an allowed one sends only to the second', async () => {
            await underParent(() => client.get(`http://evil.test:${server.port}/to/svc.corp.example`));
            assert.deepStrictEqual(
              server.received.map((r) => [r.headers.host, hasTraceContext(r)]),
              [
                [`evil.test:${server.port}`, false],
                [`svc.corp.example:${server.port}`, true],
              ],
            );
          });
        }
      });
    }

    describe('through an HTTP proxy (absolute-form request line)', () => {
      // The test server plays the proxy: it answers whatever it is asked.
      it('axios `proxy`: judged by the destination, not by the proxy', async () => {
        const proxy = { protocol: 'http', host: '127.0.0.1', port: server.port };
        await underParent(async () => {
          await axios.get('http://evil.test/x', { proxy });
          await axios.get('http://api.internal/y', { proxy });
        });
        assert.deepStrictEqual(
          server.received.map((r) => [r.url, hasTraceContext(r), baggageHeaders(r).length]),
          [
            ['http://evil.test/x', false, 0],
            ['http://api.internal/y', true, 1],
          ],
        );
        const spans = clientSpans('axios');
        assert.deepStrictEqual(
          spans.map((s) => tag(s, 'http.url')),
          ['http://evil.test/x', 'http://api.internal/y'],
        );
      });

      it('http.request with an absolute path: judged by the destination; http.url is the destination', async () => {
        // Raw array headers take the other path of the http patch (headers rendered at construction).
        const viaProxy = (url: string, raw = false): Promise<void> =>
          new Promise((resolve, reject) => {
            const host = new URL(url).host;
            http
              .get({ host: '127.0.0.1', port: server.port, path: url, headers: raw ? ['host', host] : { host } }, (res) => {
                res.resume();
                res.on('end', resolve);
              })
              .on('error', reject);
          });
        await underParent(async () => {
          await viaProxy('http://evil.test/x?token=hunter2');
          await viaProxy('http://svc.corp.example/y');
          await viaProxy('http://evil.test/raw', true);
          await viaProxy('http://svc.corp.example/raw', true);
        });
        assert.deepStrictEqual(
          server.received.map((r) => [r.url, hasTraceContext(r)]),
          [
            ['http://evil.test/x?token=hunter2', false],
            ['http://svc.corp.example/y', true],
            ['http://evil.test/raw', false],
            ['http://svc.corp.example/raw', true],
          ],
        );
        assert.deepStrictEqual(
          clientSpans('http').map((s) => tag(s, 'http.url')),
          ['http://evil.test/x?token=REDACTED', 'http://svc.corp.example/y', 'http://evil.test/raw', 'http://svc.corp.example/raw'],
        );
      });

      it('undici ProxyAgent (CONNECT tunnel): no span and no trace context for the tunnel, the request judged by its destination', async () => {
        const connects: http.IncomingHttpHeaders[] = [];
        const proxy = http.createServer();
        const sockets = new Set<net.Socket>();
        proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
          connects.push(req.headers);
          const upstream = net.connect(server.port, '127.0.0.1', () => {
            client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
            upstream.write(head);
            upstream.pipe(client);
            client.pipe(upstream);
          });
          for (const s of [client, upstream]) {
            sockets.add(s);
            s.on('error', () => undefined);
            s.on('close', () => sockets.delete(s));
          }
        });
        await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
        const agent = new undici.ProxyAgent(`http://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
        try {
          await underParent(async () => {
            await (await fetch(`http://api.internal:${server.port}/tunnelled`, viaDispatcher(agent))).text();
            await (await fetch(`http://evil.test:${server.port}/tunnelled`, viaDispatcher(agent))).text();
          });
        } finally {
          await agent.close();
          for (const s of sockets) s.destroy();
          await new Promise((r) => proxy.close(r));
        }
        assert.ok(connects.length >= 1);
        for (const h of connects) assert.strictEqual(h['uber-trace-id'], undefined, 'trace context sent to the proxy');
        assert.deepStrictEqual(
          server.received.map((r) => [r.headers.host, hasTraceContext(r)]),
          [
            [`api.internal:${server.port}`, true],
            [`evil.test:${server.port}`, false],
          ],
        );
        assert.deepStrictEqual(
          clientSpans('fetch').map((s) => s.operationName),
          ['GET', 'GET'],
          'one span per request, none for the tunnel',
        );
      });
    });
  });

  describe('propagateBaggage: false', () => {
    const t: TestTracer = useTracing([...PATCHES], { propagateBaggage: false });
    let server: TestServer;
    before(async () => {
      let port = 0;
      server = await startHttpServer(redirecting(() => port));
      port = server.port;
    });
    after(async () => {
      await server.close();
    });
    beforeEach(() => {
      server.received.length = 0;
    });

    for (const client of CLIENTS.filter((c) => !c.tls)) {
      it(`${client.name}: trace headers go, baggage does not`, async () => {
        const parent = t.tracer.startSpan('parent');
        parent.setBaggageItem('tenant', 'acme');
        parent.setBaggageItem('user', 'alice');
        await spanInContext(parent, () => client.get(`http://api.internal:${server.port}/b`));
        parent.finish();
        const [got] = server.received;
        assert.ok(hasTraceContext(got));
        assert.deepStrictEqual(baggageHeaders(got), []);
      });
    }

    it('baggage goes again when the option is back to its default', async () => {
      installPatches([...PATCHES], { tracer: t.tracer });
      try {
        const parent = t.tracer.startSpan('parent');
        parent.setBaggageItem('tenant', 'acme');
        await spanInContext(parent, () => CLIENTS[0].get(`http://api.internal:${server.port}/b`));
        parent.finish();
        assert.deepStrictEqual(baggageHeaders(server.received[0]), ['uberctx-tenant']);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer, propagateBaggage: false });
      }
    });
  });

  describe('the host rules', () => {
    it('match whole host names only, any case, with or without the trailing dot or IPv6 brackets', () => {
      const rules = compilePropagationRules(['Api.Internal', '*.corp.example', /allowed\.example/g, '::1', '[fe80::1]'], true);
      const allowed = (h: string): boolean => rules.allows(h);
      assert.deepStrictEqual(
        ['api.internal', 'API.INTERNAL.', 'x.corp.example', 'allowed.example', 'ALLOWED.EXAMPLE', '[::1]', '::1', 'fe80::1'].map(allowed),
        [true, true, true, true, true, true, true, true],
      );
      assert.deepStrictEqual(
        ['api.internal.evil', 'corp.example', '.corp.example', 'xcorp.example', 'allowed.example.evil.test', 'evilallowed.example', '::2', '', undefined as unknown as string].map(allowed),
        [false, false, false, false, false, false, false, false, false],
      );
      // a global RegExp keeps no state between hosts
      assert.deepStrictEqual([allowed('allowed.example'), allowed('allowed.example'), allowed('allowed.example')], [true, true, true]);
    });

    it('reject patterns that cannot be meant', () => {
      assert.throws(() => compilePropagationRules(['api.*.example'], true), TypeError);
      assert.throws(() => compilePropagationRules([''], true), TypeError);
      assert.throws(() => compilePropagationRules([42 as never], true), TypeError);
    });
  });
});
