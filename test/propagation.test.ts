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
import { FORMAT_HTTP_HEADERS, Span as OtSpan, SpanContext, Tracer, type Span, type SpanOptions } from 'opentracing';
import axios from 'axios';
import * as undici from 'undici';
import * as jaeger from 'jaeger-client';
import { installPatches, spanInContext, uninstallAllPatches } from '../src';
import { BAGGAGE_LIMIT } from '../src/constants';
import { compilePropagationRules } from '../src/propagation';
import { createTestTracer, parentId, spanId, tag, traceId, useTracing, type JaegerSpan, type TestTracer } from './helpers/tracing';
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

/*
 * A small OpenTracing tracer of its own (not jaeger): its contexts show their
 * baggage only through `forEachBaggageItem` (as basictracer's and
 * LightStep's do) and cannot be copied by this library, and it writes each
 * baggage item under a name that does not say what it is (`x-list-0`, ...,
 * value percent-encoded) and all of them again as `key=value;...` in
 * `x-list-all`.
 */
let listIds = 0;
const nextListId = (): string => (++listIds).toString(16);

class ListContext extends SpanContext {
  constructor(
    readonly traceId: string,
    readonly spanId: string,
    readonly items: ReadonlyArray<readonly [string, string]>,
  ) {
    super();
  }

  forEachBaggageItem(f: (key: string, value: string) => void): void {
    for (const [k, v] of this.items) f(k, v);
  }
}

class ListSpan extends OtSpan {
  constructor(
    private readonly owner: ListTracer,
    private ctx: ListContext,
  ) {
    super();
  }

  protected override _context(): ListContext {
    return this.ctx;
  }

  protected override _tracer(): Tracer {
    return this.owner;
  }

  protected override _setBaggageItem(key: string, value: string): void {
    const items = this.ctx.items.filter(([k]) => k !== key);
    this.ctx = new ListContext(this.ctx.traceId, this.ctx.spanId, [...items, [key, value]]);
  }

  protected override _getBaggageItem(key: string): string | undefined {
    return this.ctx.items.find(([k]) => k === key)?.[1];
  }
}

class ListTracer extends Tracer {
  protected override _startSpan(_name: string, fields: SpanOptions): ListSpan {
    const ref = fields.references?.[0]?.referencedContext();
    const parent = ref instanceof ListContext ? ref : undefined;
    return new ListSpan(this, new ListContext(parent?.traceId ?? nextListId(), nextListId(), parent?.items ?? []));
  }

  protected override _inject(context: SpanContext, _format: string, carrier: Record<string, string>): void {
    const ctx = context as ListContext;
    carrier['x-list-trace'] = `${ctx.traceId}.${ctx.spanId}`;
    ctx.items.forEach(([, v], i) => (carrier[`x-list-${i}`] = encodeURIComponent(v)));
    if (ctx.items.length > 0) carrier['x-list-all'] = ctx.items.map(([k, v]) => `${k}=${v}`).join(';');
  }
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

  describe('propagateBaggage with a tracer that names its headers itself', () => {
    // jaeger-client's `contextKey` and `baggagePrefix` options: no header
    // name tells the trace context from baggage any more.
    const NAMES = { contextKey: 'x-acme-trace', baggagePrefix: 'acme-ctx-' };
    const BAGGAGE: ReadonlyArray<readonly [string, string]> = [
      ['tenant', 'acme corp 7f3a'],
      ['plan', 'gold-plan-91c2'],
    ];

    /** Header names or values (raw or percent-encoded) that carry one of BAGGAGE's keys or values. */
    function baggageLeaks(r: Received): string[] {
      return Object.entries(r.headers)
        .filter(([name, value]) =>
          BAGGAGE.some(
            ([k, v]) => name.includes(k) || String(value).includes(v) || String(value).includes(encodeURIComponent(v)),
          ),
        )
        .map(([name, value]) => `${name}: ${String(value)}`);
    }

    function withBaggage(span: Span): Span {
      for (const [k, v] of BAGGAGE) span.setBaggageItem(k, v);
      return span;
    }

    function rawArrayGet(url: string): Promise<void> {
      return new Promise((resolve, reject) => {
        http
          .get(url, { lookup, agent: false, headers: ['host', new URL(url).host, 'x-app', '1'] }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
    }

    const PLAIN_CLIENTS: Client[] = [
      ...CLIENTS.filter((c) => !c.tls),
      { name: 'http.get, raw header array', component: 'http', tls: false, followsRedirects: false, get: rawArrayGet },
    ];

    let server: TestServer;
    before(async () => (server = await startHttpServer()));
    after(() => server.close());
    beforeEach(() => (server.received.length = 0));

    describe('propagateBaggage: false', () => {
      const t = useTracing([...PATCHES], { propagateBaggage: false }, NAMES);

      for (const client of PLAIN_CLIENTS) {
        it(`${client.name}: the trace context goes under its own name, no baggage under any name; the app's span keeps its baggage`, async () => {
          const parent = withBaggage(t.tracer.startSpan('parent'));
          await spanInContext(parent, () => client.get(`http://api.internal:${server.port}/b`));
          parent.finish();
          const spans = t.spans().filter((s) => tag(s, 'component') === client.component);
          assert.strictEqual(spans.length, 1);
          assert.strictEqual(server.received.length, 1);
          const got = server.received[0];
          assert.strictEqual(String(got.headers[NAMES.contextKey]).split(':')[1], spanId(spans[0]));
          assert.deepStrictEqual(baggageLeaks(got), []);
          // Not mutated: the spans, and any later injection of the parent's context, still have the baggage.
          for (const [k, v] of BAGGAGE) {
            assert.strictEqual(parent.getBaggageItem(k), v);
            assert.strictEqual(spans[0].getBaggageItem(k), v);
          }
          const carrier: Record<string, string> = {};
          t.tracer.inject(parent.context(), FORMAT_HTTP_HEADERS, carrier);
          assert.strictEqual(carrier[`${NAMES.baggagePrefix}tenant`], encodeURIComponent('acme corp 7f3a'));
        });
      }

      it('under an unsampled parent (its own context is sent, worked out once per parent): no baggage either, and baggage again once the option is back to true', async () => {
        const u = createTestTracer({ sampled: false, ...NAMES });
        try {
          installPatches([...PATCHES], { tracer: u.tracer, propagateBaggage: false });
          const parent = withBaggage(u.tracer.startSpan('parent'));
          await spanInContext(parent, async () => {
            await CLIENTS[0].get(`http://api.internal:${server.port}/1`);
            await CLIENTS[0].get(`http://api.internal:${server.port}/2`);
            installPatches([...PATCHES], { tracer: u.tracer });
            await CLIENTS[0].get(`http://api.internal:${server.port}/3`);
          });
          parent.finish();
          assert.deepStrictEqual(
            server.received.map((r) => [r.url, String(r.headers[NAMES.contextKey]).split(':')[1], baggageLeaks(r).length]),
            [
              ['/1', spanId(parent), 0],
              ['/2', spanId(parent), 0],
              ['/3', spanId(parent), 2],
            ],
          );
        } finally {
          installPatches([...PATCHES], { tracer: t.tracer, propagateBaggage: false });
          u.close();
        }
      });

      it('jaeger with the B3 codec: a baggage value equal to a trace header value (`x-b3-sampled: 1`) does not take that header with it', async () => {
        const b3 = createTestTracer(NAMES);
        (b3.tracer as unknown as jaeger.JaegerTracer).registerInjector(
          FORMAT_HTTP_HEADERS,
          new jaeger.ZipkinB3TextMapCodec({ urlEncoding: true, baggagePrefix: NAMES.baggagePrefix }),
        );
        try {
          installPatches([...PATCHES], { tracer: b3.tracer, propagateBaggage: false });
          const parent = withBaggage(b3.tracer.startSpan('parent'));
          parent.setBaggageItem('sampled', '1');
          await spanInContext(parent, () => CLIENTS[0].get(`http://api.internal:${server.port}/b`));
          parent.finish();
          const got = server.received[0].headers;
          const [span] = b3.spans().filter((s) => tag(s, 'component') === 'http');
          assert.deepStrictEqual(
            [got['x-b3-traceid'], got['x-b3-spanid'], got['x-b3-sampled']],
            [traceId(span), spanId(span), '1'],
          );
          assert.deepStrictEqual(baggageLeaks(server.received[0]), []);
          assert.deepStrictEqual(Object.keys(got).filter((h) => h.startsWith(NAMES.baggagePrefix)), []);
        } finally {
          installPatches([...PATCHES], { tracer: t.tracer, propagateBaggage: false });
          b3.close();
        }
      });

      it('a tracer that refuses to inject the copy without baggage: its baggage headers are dropped by value, the call goes on', async () => {
        const inject = t.tracer.inject.bind(t.tracer);
        // Refuses any context without baggage: the span's own context has some.
        t.tracer.inject = (context, format, carrier) => {
          const items = (context as unknown as { baggage: Record<string, string> }).baggage;
          if (Object.keys(items).length === 0) throw new Error('no copies');
          inject(context, format, carrier);
        };
        try {
          const parent = withBaggage(t.tracer.startSpan('parent'));
          await spanInContext(parent, () => CLIENTS[0].get(`http://api.internal:${server.port}/b`));
          parent.finish();
          const got = server.received[0];
          assert.notStrictEqual(got.headers[NAMES.contextKey], undefined);
          assert.deepStrictEqual(baggageLeaks(got), []);
        } finally {
          t.tracer.inject = inject;
        }
      });
    });

    describe('propagateBaggage: true (default)', () => {
      const t = useTracing([...PATCHES], {}, NAMES);

      for (const client of PLAIN_CLIENTS) {
        it(`${client.name}: the baggage goes under the tracer's prefix`, async () => {
          const parent = withBaggage(t.tracer.startSpan('parent'));
          await spanInContext(parent, () => client.get(`http://api.internal:${server.port}/b`));
          parent.finish();
          const got = server.received[0].headers;
          assert.notStrictEqual(got[NAMES.contextKey], undefined);
          assert.deepStrictEqual(
            Object.keys(got).filter((h) => h.startsWith(NAMES.baggagePrefix)).map((h) => [h, got[h]]),
            BAGGAGE.map(([k, v]) => [`${NAMES.baggagePrefix}${k}`, encodeURIComponent(v)]),
          );
        });
      }
    });

    describe('propagateBaggage: false, a tracer whose context cannot be copied (baggage read with forEachBaggageItem)', () => {
      const tracer = new ListTracer();
      before(() => installPatches([...PATCHES], { tracer, propagateBaggage: false }));
      after(() => uninstallAllPatches());

      for (const client of PLAIN_CLIENTS) {
        it(`${client.name}: every header that carries a baggage item is dropped, the trace context goes`, async () => {
          const parent = withBaggage(tracer.startSpan('parent'));
          await spanInContext(parent, () => client.get(`http://api.internal:${server.port}/b`));
          parent.finish();
          const got = server.received[0];
          assert.match(String(got.headers['x-list-trace']), /^[0-9a-f]+\.[0-9a-f]+$/);
          assert.deepStrictEqual(baggageLeaks(got), []);
          const carrier: Record<string, string> = {};
          tracer.inject(parent.context(), FORMAT_HTTP_HEADERS, carrier);
          assert.deepStrictEqual(Object.keys(carrier).sort(), ['x-list-0', 'x-list-1', 'x-list-all', 'x-list-trace']);
        });
      }

      it('a context whose forEachBaggageItem throws: the call goes on with its trace context (baggage by name only, as before)', async () => {
        const parent = withBaggage(tracer.startSpan('parent'));
        const forEach = Object.getOwnPropertyDescriptor(ListContext.prototype, 'forEachBaggageItem') as PropertyDescriptor;
        ListContext.prototype.forEachBaggageItem = () => {
          throw new Error('broken baggage');
        };
        try {
          await spanInContext(parent, () => CLIENTS[0].get(`http://api.internal:${server.port}/b`));
        } finally {
          Object.defineProperty(ListContext.prototype, 'forEachBaggageItem', forEach);
          parent.finish();
        }
        assert.strictEqual(server.received.length, 1);
        assert.notStrictEqual(server.received[0].headers['x-list-trace'], undefined);
      });
    });

    describe('propagateBaggage: true (default), a tracer whose context cannot be copied (baggage read with forEachBaggageItem)', () => {
      const tracer = new ListTracer();
      before(() => installPatches([...PATCHES], { tracer }));
      after(() => uninstallAllPatches());

      for (const client of PLAIN_CLIENTS) {
        it(`${client.name}: more than ${BAGGAGE_LIMIT.MAX_ITEMS} items, told by their values: the first ${BAGGAGE_LIMIT.MAX_ITEMS} headers go, and the trace context`, async () => {
          const parent = tracer.startSpan('parent');
          for (let i = 0; i < 300; i++) parent.setBaggageItem(`k${i}`, `value ${i}`);
          await spanInContext(parent, () => client.get(`http://api.internal:${server.port}/b`));
          parent.finish();
          assert.strictEqual(server.received.length, 1);
          const got = server.received[0].headers;
          assert.match(String(got['x-list-trace']), /^[0-9a-f]+\.[0-9a-f]+$/);
          // x-list-all (all 300 items in one header) comes after the first 64: not forwarded.
          assert.deepStrictEqual(
            Object.keys(got).filter((h) => h.startsWith('x-list-') && h !== 'x-list-trace').map((h) => [h, got[h]]),
            Array.from({ length: BAGGAGE_LIMIT.MAX_ITEMS }, (_, i) => [`x-list-${i}`, encodeURIComponent(`value ${i}`)]),
          );
        });
      }
    });
  });
});
