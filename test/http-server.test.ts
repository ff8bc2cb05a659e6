import assert from 'assert';
import { EventEmitter } from 'events';
import * as http from 'http';
import * as https from 'https';
import type { Span, Tracer } from 'opentracing';
import {
  beforeRequest,
  getCurrentSpan,
  installPatches,
  serverSpanOf,
  setResponseHook,
  spanInContext,
  uninstallAllPatches,
} from '../src';
import type { HttpServerOptions, PatchName } from '../src/options';
import { isWrapped } from '../src/wrap';
import {
  abandonRequest,
  deferred,
  rawRequest,
  request,
  withUncaughtExceptions,
} from './helpers/requests';
import { CANARY, findSecret } from './helpers/canary';
import { startHttpServer, startHttpsServer, testCertificate, type Handler, type TestServer } from './helpers/servers';
import {
  assertAccountingClean,
  createTestTracer,
  errorBehind,
  logs,
  parentId,
  spanId,
  tag,
  tags,
  traceId,
  useTracing,
  waitFor,
  waitForSpans,
  type JaegerSpan,
} from './helpers/tracing';

const PATCHES: PatchName[] = ['http', 'https', 'http-server'];

function serverSpans(spans: JaegerSpan[]): JaegerSpan[] {
  return spans.filter((s) => tag(s, 'span.kind') === 'server');
}

/** The tags of a span without those jaeger-client adds to a trace's root span. */
function ownTags(span: JaegerSpan): Record<string, unknown> {
  const all = tags(span);
  for (const key of Object.keys(all)) if (key.startsWith('sampler.')) delete all[key];
  return all;
}

/** The server spans of requests to `origin`. */
function serverSpansOf(spans: JaegerSpan[], origin: string): JaegerSpan[] {
  return serverSpans(spans).filter((s) => String(tag(s, 'http.url')).startsWith(`${origin}/`));
}

function clientSpans(spans: JaegerSpan[]): JaegerSpan[] {
  return spans.filter((s) => tag(s, 'span.kind') === 'client');
}

/** Outbound GET from inside a handler; resolves with the body. */
function get(url: string): Promise<string> {
  return request(url).then((r) => r.body);
}

describe('http-server patch', () => {
  const t = useTracing(PATCHES);
  const servers: TestServer[] = [];
  let downstream: TestServer;

  async function serve(handler: Handler): Promise<TestServer> {
    const s = await startHttpServer(handler);
    servers.push(s);
    return s;
  }

  /** Replaces the options of the installed patches for one test (reset after each test). */
  function configure(options: HttpServerOptions): void {
    installPatches(PATCHES, { tracer: t.tracer, 'http-server': options });
  }

  before(async () => {
    downstream = await startHttpServer();
  });
  after(async () => {
    await downstream.close();
  });
  beforeEach(() => {
    downstream.received.length = 0;
  });
  afterEach(async () => {
    while (servers.length) await servers.pop()!.close();
    installPatches(PATCHES, { tracer: t.tracer });
  });

  describe('#server.emit("request", req, res) of http.createServer(handler)', () => {
    it('gives one server span per request with the contract tags; no incoming context: a new trace', async () => {
      configure({ callerNameHeaders: ['x-caller-name', 'x-source'] });
      const server = await serve((req, res) => res.end('ok'));
      const reply = await rawRequest(
        server.port,
        'GET /a/b?x=1&token=hunter2 HTTP/1.1\r\nHost: 127.0.0.1:' + server.port + '\r\nX-Source: billing',
      );
      assert.strictEqual(reply.status, 200);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(t.spans().length, 1);
      assert.strictEqual(span.operationName, 'GET');
      // (jaeger-client adds sampler.type and sampler.param to the root span of a trace)
      assert.deepStrictEqual(ownTags(span), {
        'span.kind': 'server',
        component: 'http',
        'http.method': 'GET',
        'http.url': `http://127.0.0.1:${server.port}/a/b?x=1&token=REDACTED`,
        'peer.ipv4': '127.0.0.1',
        'peer.port': reply.localPort,
        'peer.service': 'billing',
        'http.status_code': 200,
      });
      assert.strictEqual(parentId(span), undefined);
    });

    it('peer.ipv4 for an IPv4 client of a dual-stack server (not ::ffff:127.0.0.1), peer.ipv6 for an IPv6 one', async () => {
      const server = http.createServer((req, res) => res.end());
      await new Promise<void>((resolve) => server.listen(0, '::', resolve));
      const port = (server.address() as import('net').AddressInfo).port;
      try {
        await request(`http://127.0.0.1:${port}/v4`);
        await request(`http://[::1]:${port}/v6`);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
      const spans = serverSpans(await waitForSpans(t, 4));
      const v4 = spans.find((s) => String(tag(s, 'http.url')).endsWith('/v4'))!;
      const v6 = spans.find((s) => String(tag(s, 'http.url')).endsWith('/v6'))!;
      assert.strictEqual(tag(v4, 'peer.ipv4'), '127.0.0.1');
      assert.strictEqual(tag(v4, 'peer.ipv6'), undefined);
      assert.strictEqual(tag(v6, 'peer.ipv6'), '::1');
      assert.strictEqual(tag(v6, 'http.url'), `http://[::1]:${port}/v6`);
    });

    it("continues the caller's trace (parent = the client span) and parents the handler's outbound calls", async () => {
      let inHandler: Span | undefined;
      let ofRequest: Span | undefined;
      const server = await serve((req, res) => {
        inHandler = getCurrentSpan();
        ofRequest = serverSpanOf(req);
        get(`${downstream.origin}/down`).then((body) => res.end(body));
      });
      const parent = t.tracer.startSpan('caller');
      const body = await spanInContext(parent, () => get(`${server.origin}/up`));
      parent.finish();
      assert.match(body, /"path":"\/down"/);
      const spans = await waitForSpans(t, 5);
      const up = clientSpans(spans).find((s) => (tag(s, 'http.url') as string).endsWith('/up'))!;
      const down = clientSpans(spans).find((s) => (tag(s, 'http.url') as string).endsWith('/down'))!;
      const upServer = serverSpans(spans).find((s) => (tag(s, 'http.url') as string).endsWith('/up'))!;
      const downServer = serverSpans(spans).find((s) => (tag(s, 'http.url') as string).endsWith('/down'))!;
      assert.ok(inHandler && inHandler === ofRequest, 'the server span is current in the handler');
      assert.strictEqual(spanId(inHandler), spanId(upServer));
      assert.strictEqual(parentId(up), spanId(parent));
      assert.strictEqual(parentId(upServer), spanId(up));
      assert.strictEqual(parentId(down), spanId(upServer));
      assert.strictEqual(parentId(downServer), spanId(down));
      for (const s of spans) assert.strictEqual(traceId(s), traceId(parent));
    });

    it('keeps the server span current in the request body events and in what they start', async () => {
      const seen: Array<Span | undefined> = [];
      const server = await serve((req, res) => {
        req.on('data', () => seen.push(getCurrentSpan()));
        req.on('end', () => {
          seen.push(getCurrentSpan());
          get(`${downstream.origin}/after-body`).then(() => res.end('done'));
        });
      });
      await new Promise<void>((resolve, reject) => {
        const req = http.request(`${server.origin}/upload`, { method: 'POST' }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.write('first chunk');
        // the second chunk arrives in a later parser callback, after the handler returned
        setTimeout(() => req.end('second chunk'), 30);
      });
      const spans = await waitForSpans(t, 4);
      assert.ok(seen.length >= 3, `saw ${seen.length} body events`);
      const upload = serverSpans(spans).find((s) => tag(s, 'http.method') === 'POST')!;
      assert.ok(seen.every((s) => s !== undefined && spanId(s) === spanId(upload)));
      const afterBody = clientSpans(spans).find((s) => (tag(s, 'http.url') as string).endsWith('/after-body'))!;
      assert.strictEqual(parentId(afterBody), spanId(upload));
    });

    it('on a keep-alive connection: a span per request, and an untraced request does not inherit the one before', async () => {
      configure({ ignorePaths: ['/healthz'] });
      const sockets = new Set<unknown>();
      const server = await serve((req, res) => {
        sockets.add(req.socket);
        // outbound after the handler returned, from a timer started in it
        setTimeout(() => get(`${downstream.origin}${req.url}`).then(() => res.end('ok')), 5);
      });
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (const path of ['/one', '/healthz', '/two']) {
          await new Promise<void>((resolve, reject) => {
            // a caller span per request would hide the bug: these carry no context
            http
              .get(`${server.origin}${path}`, { agent, headers: { 'x-test': path } }, (res) => {
                res.resume();
                res.on('end', resolve);
              })
              .on('error', reject);
          });
        }
      } finally {
        agent.destroy();
      }
      assert.strictEqual(sockets.size, 1, 'one connection');
      const spans = await waitForSpans(t, 3 * 3 - 1);
      const servers = serverSpansOf(spans, server.origin);
      assert.deepStrictEqual(servers.map((s) => tag(s, 'http.url')).sort(), [`${server.origin}/one`, `${server.origin}/two`]);
      const outbound = (p: string): JaegerSpan =>
        clientSpans(spans).find((s) => tag(s, 'http.url') === `${downstream.origin}${p}`)!;
      const serverOf = (p: string): JaegerSpan => servers.find((s) => tag(s, 'http.url') === `${server.origin}${p}`)!;
      assert.strictEqual(parentId(outbound('/one')), spanId(serverOf('/one')));
      assert.strictEqual(parentId(outbound('/two')), spanId(serverOf('/two')));
      assert.strictEqual(parentId(outbound('/healthz')), undefined, 'the ignored request starts its own trace');
      assert.notStrictEqual(traceId(outbound('/healthz')), traceId(serverOf('/one')));
    });

    it('puts each of 30 concurrent requests (own incoming contexts) and its outbound call under its own span', async () => {
      const server = await serve((req, res) => {
        setTimeout(() => get(`${downstream.origin}/for${req.url}`).then(() => res.end()), Math.random() * 10);
      });
      const parents = Array.from({ length: 30 }, (_, i) => t.tracer.startSpan(`caller-${i}`));
      await Promise.all(parents.map((p, i) => spanInContext(p, () => get(`${server.origin}/${i}`))));
      for (const p of parents) p.finish();
      const spans = await waitForSpans(t, 30 * 5);
      for (let i = 0; i < 30; i++) {
        const srv = serverSpans(spans).find((s) => tag(s, 'http.url') === `${server.origin}/${i}`)!;
        assert.strictEqual(traceId(srv), traceId(parents[i]));
        const out = clientSpans(spans).find((s) => tag(s, 'http.url') === `${downstream.origin}/for/${i}`)!;
        assert.strictEqual(parentId(out), spanId(srv));
      }
    });

    it('a later change to EventEmitter.prototype.emit (the domain module makes one) still reaches the servers', async () => {
      const inherited = EventEmitter.prototype.emit;
      const events: unknown[] = [];
      EventEmitter.prototype.emit = function (this: EventEmitter, event: string | symbol, ...args: unknown[]) {
        if (this instanceof http.Server) events.push(event);
        return inherited.call(this, event, ...args);
      };
      try {
        const server = await serve((req, res) => res.end());
        await request(`${server.origin}/`);
      } finally {
        EventEmitter.prototype.emit = inherited;
      }
      assert.ok(events.includes('request'), events.join());
      assert.strictEqual(serverSpans(await waitForSpans(t, 2)).length, 1);
    });

    it('keeps name and length of emit, and uninstall puts back the inherited EventEmitter emit', () => {
      assert.ok(isWrapped(http.Server.prototype.emit));
      assert.ok(isWrapped(https.Server.prototype.emit));
      assert.strictEqual(http.Server.prototype.emit.name, 'emit');
      assert.strictEqual(http.Server.prototype.emit.length, EventEmitter.prototype.emit.length);
      uninstallAllPatches();
      try {
        assert.ok(!Object.prototype.hasOwnProperty.call(http.Server.prototype, 'emit'));
        assert.ok(!Object.prototype.hasOwnProperty.call(https.Server.prototype, 'emit'));
        assert.strictEqual(http.Server.prototype.emit, EventEmitter.prototype.emit);
        assert.strictEqual(https.Server.prototype.emit, EventEmitter.prototype.emit);
      } finally {
        installPatches(PATCHES, { tracer: t.tracer });
      }
    });
  });

  describe('incoming trace context', () => {
    it('continues a hand-written uber-trace-id, 64- and 128-bit, plain or URL-encoded', async () => {
      const server = await serve((req, res) => res.end());
      const cases = [
        ['abc:def:0:1', 'abc', 'def'],
        ['0123456789abcdef0123456789abcdef:1234:5678:1', '123456789abcdef0123456789abcdef', '1234'],
        ['abc%3Adef%3A0%3A1', 'abc', 'def'],
      ];
      for (const [header, trace, parent] of cases) {
        t.clear();
        await rawRequest(server.port, `GET / HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: ${header}`);
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(span.context().traceIdStr.replace(/^0+/, ''), trace, header);
        assert.strictEqual(parentId(span), parent, header);
      }
    });

    it('a missing, malformed or hostile uber-trace-id gives a new root span; the app sees the header as sent', async () => {
      const seen: Array<string | undefined> = [];
      const server = await serve((req, res) => {
        seen.push(req.headers['uber-trace-id'] as string | undefined);
        res.end('fine');
      });
      const hostile = [
        '',
        'garbage',
        '1:2:3',
        '1:2:3:4:5',
        ':::',
        '0:1:0:1',
        '12xyz:34:0:1',
        '-1:-1:0:1',
        `${'f'.repeat(100)}:1:0:1`,
        `1:${'f'.repeat(40)}:0:1`,
        '%E0%A4%A:1:0:1',
        'abc:def:0:1, 123:456:0:1',
        '\u00e4\u00f6:\u00fc:0:1',
        'x'.repeat(4000),
      ];
      for (const value of hostile) {
        t.clear();
        const reply = await rawRequest(
          server.port,
          `GET /h HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: ${value}\r\nJaeger-Baggage: ${value}\r\nUberctx-${value.slice(0, 20).replace(/[^a-z]/gi, 'k') || 'k'}: ${value}`,
        );
        assert.strictEqual(reply.status, 200, JSON.stringify(value.slice(0, 40)));
        assert.match(reply.text, /fine$/);
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(parentId(span), undefined, JSON.stringify(value.slice(0, 40)));
        assert.match(span.context().traceIdStr, /^[1-9a-f][0-9a-f]{0,31}$/);
        assert.ok(!value.startsWith(span.context().traceIdStr), 'not taken from the header');
      }
      // duplicate headers, as two lines
      t.clear();
      const reply = await rawRequest(server.port, 'GET /dup HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: abc:def:0:1\r\nUber-Trace-Id: 123:456:0:1');
      assert.strictEqual(reply.status, 200);
      const [dup] = await waitForSpans(t, 1);
      assert.strictEqual(parentId(dup), undefined);
      assert.strictEqual(seen[0], '');
      assert.strictEqual(seen[1], 'garbage');
      assert.strictEqual(seen[seen.length - 1], 'abc:def:0:1, 123:456:0:1');
    });

    it('secrets in the URL (query values, absolute-form credentials) and in headers never reach the span', async () => {
      configure({ callerNameHeaders: ['x-caller-name'] });
      const server = await serve((req, res) => res.end());
      const heads = [
        `GET /login?token=${CANARY}&password=${CANARY}&api_key=${CANARY}&page=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CANARY}\r\nCookie: session=${CANARY}`,
        `GET http://user:${CANARY}@proxy.example/x?access_token=${CANARY} HTTP/1.1\r\nHost: proxy.example\r\nProxy-Authorization: Basic ${CANARY}`,
      ];
      for (const head of heads) await rawRequest(server.port, head);
      const spans = await waitForSpans(t, heads.length);
      for (const span of spans) assert.deepStrictEqual(findSecret(span), [], String(tag(span, 'http.url')));
      assert.deepStrictEqual(
        spans.map((s) => tag(s, 'http.url')),
        ['http://x/login?token=REDACTED&password=REDACTED&api_key=REDACTED&page=2', 'http://REDACTED@proxy.example/x?access_token=REDACTED'],
      );
    });

    it('requireParentSpan: only requests with an incoming context get a span', async () => {
      configure({ requireParentSpan: true });
      const server = await serve((req, res) => {
        get(`${downstream.origin}/x`).then(() => res.end());
      });
      await rawRequest(server.port, 'GET /no-context HTTP/1.1\r\nHost: x');
      await rawRequest(server.port, 'GET /garbage HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: 1:2:3');
      await rawRequest(server.port, 'GET /with-context HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: abc:def:0:1');
      const spans = await waitForSpans(t, 1 + 3 + 3);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepStrictEqual(serverSpansOf(spans, 'http://x').map((s) => tag(s, 'http.url')), [`http://x/with-context`]);
      // the client spans of untraced requests are their own traces (the http patch's requireParentSpan is off)
      assert.strictEqual(clientSpans(spans).length, 3);
    });
  });

  describe('response', () => {
    it('tags http.status_code; a 5xx status sets error=true with an error log, a 4xx does not', async () => {
      const server = await serve((req, res) => {
        res.statusCode = Number(req.url!.slice(1));
        res.end();
      });
      await request(`${server.origin}/503`);
      await request(`${server.origin}/404`);
      const spans = serverSpans(await waitForSpans(t, 4));
      const s503 = spans.find((s) => tag(s, 'http.status_code') === 503)!;
      const s404 = spans.find((s) => tag(s, 'http.status_code') === 404)!;
      assert.strictEqual(tag(s503, 'error'), true);
      assert.deepStrictEqual(logs(s503), [{ event: 'error', 'error.kind': 'http_status', message: 'HTTP 503 Service Unavailable' }]);
      assert.strictEqual(tag(s404, 'error'), undefined);
      assert.deepStrictEqual(logs(s404), []);
    });

    it('honours isErrorStatus (one that throws counts as no error)', async () => {
      configure({ isErrorStatus: (status) => status === 404 || (status === 418 && JSON.parse('{') === 1) });
      const server = await serve((req, res) => {
        res.statusCode = Number(req.url!.slice(1));
        res.end();
      });
      await request(`${server.origin}/404`);
      await request(`${server.origin}/418`);
      await request(`${server.origin}/500`);
      const spans = serverSpans(await waitForSpans(t, 6));
      const errorOf = (status: number): unknown => tag(spans.find((s) => tag(s, 'http.status_code') === status)!, 'error');
      assert.strictEqual(errorOf(404), true);
      assert.strictEqual(errorOf(418), undefined);
      assert.strictEqual(errorOf(500), undefined);
    });

    it('a handler that throws: the same error reaches the process as without the patch; error tags; one finish', async () => {
      const boom = new Error('handler failed');
      const handler: Handler = (req, res) => {
        // what an application's uncaughtException handler may leave behind: a late answer
        setTimeout(() => {
          res.statusCode = 500;
          res.end('recovered');
        }, 20);
        throw boom;
      };
      const run = (): Promise<{ errors: unknown[]; reply: { status: number; body: string } }> =>
        withUncaughtExceptions(async (errors) => {
          const server = await serve(handler);
          const reply = await request(`${server.origin}/throws`);
          return { errors: [...errors], reply: { status: reply.status, body: reply.body } };
        });
      const traced = await run();
      uninstallAllPatches();
      let untraced;
      try {
        untraced = await run();
      } finally {
        installPatches(PATCHES, { tracer: t.tracer });
      }
      assert.deepStrictEqual(traced.reply, untraced.reply);
      assert.deepStrictEqual(traced.reply, { status: 500, body: 'recovered' });
      assert.strictEqual(traced.errors.length, 1);
      assert.strictEqual(traced.errors[0], boom, 'the very same error object');
      assert.deepStrictEqual(untraced.errors, [boom]);
      const [span] = serverSpans(await waitForSpans(t, 2));
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(tag(span, 'http.status_code'), 500);
      const [log] = logs(span);
      assert.strictEqual(errorBehind(log['error.object']), boom);
      assert.strictEqual(log.message, 'handler failed');
      assert.strictEqual(logs(span).length, 1, 'the 500 adds no second error log');
      assert.strictEqual(t.accounting.doubleFinished, 0);
    });

    it('a client that goes away before the answer: the span finishes once, with an aborted log, no error', async () => {
      const closed = deferred();
      const arrived = deferred();
      const server = await serve((req, res) => {
        arrived.resolve();
        res.on('close', () => closed.resolve());
      });
      await abandonRequest(server.port, 'GET /never HTTP/1.1\r\nHost: x', arrived.promise);
      await closed.promise;
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), undefined);
      assert.strictEqual(tag(span, 'http.status_code'), undefined, 'nothing was sent');
      assert.deepStrictEqual(logs(span), [
        { event: 'aborted', message: 'the connection closed before the response was complete' },
      ]);
      await new Promise((r) => setTimeout(r, 20));
      assert.strictEqual(t.accounting.doubleFinished, 0);
      assert.strictEqual(t.accounting.open.size, 0);
    });

    it('a response cut after its headers: the status that was sent is tagged, and aborted', async () => {
      const headersOut = deferred();
      const server = await serve((req, res) => {
        res.writeHead(200, { 'content-length': '100' });
        res.write('partial', () => headersOut.resolve());
      });
      await abandonRequest(server.port, 'GET /partial HTTP/1.1\r\nHost: x', headersOut.promise);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(tag(span, 'error'), undefined);
      assert.strictEqual(logs(span)[0].event, 'aborted');
    });

    it('a response the server destroys mid-body: the span finishes once, with the status sent and an aborted log', async () => {
      const server = await serve((req, res) => {
        res.writeHead(200);
        res.write('some');
        setTimeout(() => res.destroy(), 5);
      });
      await request(`${server.origin}/broken`).catch(() => undefined);
      const [span] = serverSpansOf(await waitForSpans(t, 2), server.origin);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(logs(span)[0].event, 'aborted');
    });
  });

  describe('options', () => {
    it('ignorePaths and ignore: no span for those requests, the response is unchanged', async () => {
      configure({
        ignorePaths: ['/healthz', /^\/metrics(\/|$)/g],
        ignore: (req) => req.headers['x-probe'] === '1' || (req.url === '/throws' && JSON.parse('{') === 1),
      });
      const server = await serve((req, res) => res.end(`answer ${req.url}`));
      for (const path of ['/healthz', '/healthz?full=1', '/metrics', '/metrics/jvm', '/metrics/jvm']) {
        assert.strictEqual((await request(`${server.origin}${path}`)).body, `answer ${path}`);
      }
      await request(`${server.origin}/probe`, { headers: { 'x-probe': '1' } });
      await request(`${server.origin}/healthz2`);
      await request(`${server.origin}/throws`);
      const spans = await waitForSpans(t, 8 + 2);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepStrictEqual(
        serverSpans(t.spans()).map((s) => tag(s, 'http.url')),
        [`${server.origin}/healthz2`, `${server.origin}/throws`],
      );
      assert.strictEqual(clientSpans(spans).length, 8, 'the client side is traced as ever');
    });

    it('requestHook(span, req) runs before the handler, responseHook(res, span) before finish; throwing ones are contained', async () => {
      const order: string[] = [];
      configure({
        requestHook: (span, req) => {
          order.push('requestHook');
          span.setTag('request.id', String(req.headers['x-request-id']));
          span.setOperationName('custom');
        },
        responseHook: (res, span) => {
          order.push('responseHook');
          span.setTag('response.type', String(res.getHeader('content-type')));
        },
      });
      const server = await serve((req, res) => {
        order.push('handler');
        res.setHeader('content-type', 'text/plain');
        res.end('ok');
      });
      await request(`${server.origin}/`, { headers: { 'x-request-id': 'r-1' } });
      const [span] = serverSpans(await waitForSpans(t, 2));
      assert.deepStrictEqual(order, ['requestHook', 'handler', 'responseHook']);
      assert.strictEqual(span.operationName, 'custom');
      assert.strictEqual(tag(span, 'request.id'), 'r-1');
      assert.strictEqual(tag(span, 'response.type'), 'text/plain');

      t.clear();
      configure({
        requestHook: () => {
          throw new Error('bad request hook');
        },
        responseHook: () => {
          throw new Error('bad response hook');
        },
      });
      const reply = await request(`${server.origin}/again`);
      assert.strictEqual(reply.body, 'ok');
      assert.strictEqual(serverSpans(await waitForSpans(t, 2)).length, 1);
    });

    it('setResponseHook("http-server", hook) replaces the hook at run time', async () => {
      const server = await serve((req, res) => res.end());
      setResponseHook('http-server', (res, span) => span.setTag('hooked', res.statusCode));
      try {
        await request(`${server.origin}/`);
      } finally {
        setResponseHook('http-server', null);
      }
      await request(`${server.origin}/`);
      const spans = serverSpans(await waitForSpans(t, 4));
      assert.deepStrictEqual(spans.map((s) => tag(s, 'hooked')), [200, undefined]);
    });
  });

  describe('https and other request events', () => {
    it('https servers: component https and an https:// url', async () => {
      const server = await startHttpsServer((req, res) => res.end('tls'));
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        https
          .get(`${server.origin}/secure`, { ca: testCertificate().cert }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
      const spans = await waitForSpans(t, 2);
      const [span] = serverSpans(spans);
      assert.strictEqual(tag(span, 'component'), 'https');
      assert.strictEqual(tag(span, 'http.url'), `${server.origin}/secure`);
      assert.strictEqual(parentId(span), spanId(clientSpans(spans)[0]));
    });

    it('a checkContinue listener that emits request: one span, current in both', async () => {
      const seen: Array<Span | undefined> = [];
      const server = await serve((req, res) => {
        seen.push(getCurrentSpan());
        res.end('after continue');
      });
      server.server.on('checkContinue', (req, res) => {
        seen.push(getCurrentSpan());
        res.writeContinue();
        server.server.emit('request', req, res);
      });
      const reply = await new Promise<string>((resolve, reject) => {
        const req = http.request(`${server.origin}/c`, { method: 'PUT', headers: { Expect: '100-continue' } }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('continue', () => req.end('payload'));
        req.on('error', reject);
      });
      assert.strictEqual(reply, 'after continue');
      const spans = serverSpans(await waitForSpans(t, 2));
      await new Promise((r) => setTimeout(r, 20));
      assert.strictEqual(serverSpans(t.spans()).length, 1);
      assert.strictEqual(seen.length, 2);
      assert.ok(seen.every((s) => s !== undefined && spanId(s) === spanId(spans[0])));
    });

    it('other server events pass through untouched', async () => {
      const server = await serve((req, res) => res.end());
      const got: unknown[] = [];
      server.server.on('custom', (...args: unknown[]) => got.push(args));
      assert.strictEqual(server.server.emit('custom', 1, 2), true);
      assert.strictEqual(server.server.emit('nobody-listens'), false);
      assert.deepStrictEqual(got, [[1, 2]]);
    });
  });
});

describe('http-server patch: trusting the caller', () => {
  // A tracer that samples nothing by itself: only an incoming sampled flag or debug id makes it record.
  const u = createTestTracer({ sampled: false });
  let downstream: TestServer;
  let server: TestServer;
  let last: Span | undefined;
  before(async () => {
    downstream = await startHttpServer();
    server = await startHttpServer((req, res) => {
      last = serverSpanOf(req);
      get(`${downstream.origin}/down`).then(() => res.end());
    });
  });
  after(async () => {
    uninstallAllPatches();
    await server.close();
    await downstream.close();
    await assertAccountingClean(u);
    u.close();
  });
  beforeEach(() => {
    downstream.received.length = 0;
    last = undefined;
  });

  const hostileHead =
    'GET / HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: abc:def:0:1\r\nJaeger-Debug-Id: forced\r\nUberctx-User: mallory\r\nJaeger-Baggage: role=admin';

  interface Seen {
    traceId: string;
    sampled: boolean;
    debug: boolean;
    baggage: Record<string, string | undefined>;
    downstreamHeaders: http.IncomingHttpHeaders;
  }

  async function send(head: string, trust?: HttpServerOptions['trustIncomingContext']): Promise<Seen> {
    installPatches(['http', 'http-server'], { tracer: u.tracer, 'http-server': { trustIncomingContext: trust } });
    await rawRequest(server.port, head);
    await waitFor(() => last !== undefined && downstream.received.length === 1);
    const ctx = last!.context() as unknown as { traceIdStr: string; isSampled(): boolean; isDebug(): boolean };
    return {
      traceId: ctx.traceIdStr.replace(/^0+/, ''),
      sampled: ctx.isSampled(),
      debug: ctx.isDebug(),
      baggage: { user: last!.getBaggageItem('user'), role: last!.getBaggageItem('role') },
      downstreamHeaders: downstream.received[0].headers,
    };
  }

  it('trusted (the default): continues the trace, honours the sampled flag and the baggage', async () => {
    const seen = await send('GET / HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: abc:def:0:1\r\nUberctx-User: alice');
    assert.strictEqual(seen.traceId, 'abc');
    assert.strictEqual(seen.sampled, true);
    assert.strictEqual(seen.baggage.user, 'alice');
    assert.strictEqual(seen.downstreamHeaders['uberctx-user'], 'alice');
    const debug = await (last = undefined, downstream.received.length = 0, send('GET / HTTP/1.1\r\nHost: x\r\nJaeger-Debug-Id: wanted'));
    assert.strictEqual(debug.debug, true, 'a trusted caller may ask for a debug trace');
  });

  for (const [label, trust] of [
    ['false', false],
    ['a predicate saying no', (req: http.IncomingMessage) => req.headers['x-internal'] === 'yes'],
    ['a predicate that throws', () => JSON.parse('{') as boolean],
  ] as const) {
    it(`untrusted (${label}): a new unsampled trace; no debug, no baggage reaches the span or downstream`, async () => {
      const seen = await send(hostileHead, trust);
      assert.notStrictEqual(seen.traceId, 'abc');
      assert.strictEqual(seen.sampled, false);
      assert.strictEqual(seen.debug, false);
      assert.deepStrictEqual(seen.baggage, { user: undefined, role: undefined });
      const headers = Object.keys(seen.downstreamHeaders);
      assert.ok(headers.includes('uber-trace-id'), 'its own context still propagates');
      assert.ok(!headers.some((h) => h.startsWith('uberctx-') || h === 'jaeger-debug-id' || h === 'jaeger-baggage'), headers.join());
      assert.match(String(seen.downstreamHeaders['uber-trace-id']), new RegExp(`^0*${seen.traceId}:`));
    });
  }

  it('a predicate saying yes for this request: continued', async () => {
    const seen = await send(`${hostileHead}\r\nX-Internal: yes`, (req) => req.headers['x-internal'] === 'yes');
    assert.strictEqual(seen.traceId, 'abc');
    assert.strictEqual(seen.baggage.user, 'mallory');
  });
});

describe('http-server patch with a failing tracer', () => {
  let server: TestServer;
  before(async () => {
    server = await startHttpServer((req, res) => res.end(`served ${req.url}`));
  });
  after(async () => {
    uninstallAllPatches();
    await server.close();
  });

  function failing(method: 'startSpan' | 'extract'): { tracer: Tracer; t: ReturnType<typeof createTestTracer> } {
    const t = createTestTracer();
    const tracer = t.tracer;
    const original = tracer[method].bind(tracer) as (...args: unknown[]) => unknown;
    let calls = 0;
    (tracer as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      // startSpan: fail for the server span only (the first one per request)
      if (method === 'extract' || calls++ % 2 === 0) throw new Error(`${method} is broken`);
      return original(...args);
    };
    return { tracer, t };
  }

  it('the request is served unchanged when tracer.startSpan throws', async () => {
    const { tracer, t } = failing('startSpan');
    installPatches(['http-server'], { tracer });
    const reply = await rawRequest(server.port, 'GET /a HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: abc:def:0:1');
    assert.strictEqual(reply.status, 200);
    assert.match(reply.text, /served \/a$/);
    assert.strictEqual(t.spans().length, 0);
    t.close();
  });

  it('a new root span when tracer.extract throws', async () => {
    const { tracer, t } = failing('extract');
    installPatches(['http-server'], { tracer });
    const reply = await rawRequest(server.port, 'GET /b HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: abc:def:0:1');
    assert.match(reply.text, /served \/b$/);
    const [span] = await waitForSpans(t, 1);
    assert.strictEqual(parentId(span), undefined);
    t.close();
  });
});

describe('#beforeRequest(req, options) (no patch: the application starts and finishes the span)', () => {
  const t = useTracing(['http']);
  let server: TestServer;
  let made: Span[] = [];
  let options: import('../src').BeforeRequestOptions | undefined;
  before(async () => {
    server = await startHttpServer((req, res) => {
      const span = beforeRequest(req, options);
      made.push(span);
      res.on('finish', () => {
        span.setTag('http.status_code', res.statusCode);
        span.finish();
      });
      res.end('ok');
    });
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    made = [];
    options = undefined;
  });

  it('starts a server span from the request with the contract tags, continuing the caller', async () => {
    options = { callerNameHeaders: ['x-caller-name'] };
    const reply = await rawRequest(
      server.port,
      `GET /items?q=1&password=${CANARY} HTTP/1.1\r\nHost: shop.local\r\nUber-Trace-Id: abc:def:0:1\r\nX-Caller-Name: cart`,
    );
    assert.strictEqual(reply.status, 200);
    const [span] = await waitForSpans(t, 1);
    assert.strictEqual(span.operationName, 'GET');
    assert.deepStrictEqual(ownTags(span), {
      'span.kind': 'server',
      component: 'http',
      'http.method': 'GET',
      'http.url': 'http://shop.local/items?q=1&password=REDACTED',
      'peer.ipv4': '127.0.0.1',
      'peer.port': reply.localPort,
      'peer.service': 'cart',
      'http.status_code': 200,
    });
    assert.strictEqual(span.context().traceIdStr.replace(/^0+/, ''), 'abc');
    assert.strictEqual(parentId(span), 'def');
  });

  it('options: operationName, component, trustIncomingContext, tracer', async () => {
    const other = createTestTracer();
    options = { operationName: 'checkout', component: 'my-framework', trustIncomingContext: false, tracer: other.tracer };
    await rawRequest(server.port, 'POST /pay HTTP/1.1\r\nHost: x\r\nUber-Trace-Id: abc:def:0:1\r\nUberctx-User: mallory');
    const [span] = await waitForSpans(other, 1);
    assert.strictEqual(t.spans().length, 0, 'started with the given tracer');
    assert.strictEqual(span.operationName, 'checkout');
    assert.strictEqual(tag(span, 'component'), 'my-framework');
    assert.strictEqual(tag(span, 'http.method'), 'POST');
    assert.strictEqual(parentId(span), undefined);
    assert.strictEqual(span.getBaggageItem('user'), undefined);
    other.close();
  });

  it('takes a request-like object, and never throws: a no-op span when the tracer fails', () => {
    const like = { method: 'delete', url: '/x', headers: { host: 'h', 'uber-trace-id': 'abc:def:0:1' } };
    const span = beforeRequest(like);
    span.finish();
    const [finished] = t.spans();
    assert.strictEqual(finished.operationName, 'DELETE');
    assert.strictEqual(tag(finished, 'http.url'), 'http://h/x');
    assert.strictEqual(parentId(finished), 'def');

    const broken = createTestTracer();
    broken.tracer.startSpan = () => {
      throw new Error('tracer down');
    };
    const noop = beforeRequest(like, { tracer: broken.tracer });
    assert.doesNotThrow(() => {
      noop.setTag('x', 1);
      noop.finish();
    });
    assert.strictEqual(beforeRequest({ headers: null as never }, { tracer: broken.tracer }).constructor.name, 'Span');
    broken.close();
  });
});
