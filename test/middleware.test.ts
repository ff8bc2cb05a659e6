import assert from 'assert';
import express from 'express';
import type * as http from 'http';
import Koa from 'koa';
import type { AddressInfo } from 'net';
import { expressMiddleware, getCurrentSpan, koaMiddleware, serverSpanOf, spanInContext } from '../src';
import type { PatchName } from '../src/options';
import { request } from './helpers/requests';
import { startHttpServer, type TestServer } from './helpers/servers';
import { logs, parentId, spanId, tag, traceId, useTracing, waitForSpans, type JaegerSpan } from './helpers/tracing';

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => {
    if (server.listening) resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    else server.once('listening', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

const isServer = (s: JaegerSpan): boolean => tag(s, 'span.kind') === 'server';
const isClient = (s: JaegerSpan): boolean => tag(s, 'span.kind') === 'client';

/** The single server span of requests to `origin` (asserting there is exactly one). */
function onlyServerSpanOf(spans: JaegerSpan[], origin: string): JaegerSpan {
  const found = spans.filter((s) => isServer(s) && String(tag(s, 'http.url')).startsWith(`${origin}/`));
  assert.strictEqual(found.length, 1, `server spans for ${origin}: ${found.map((s) => s.operationName).join(', ')}`);
  return found[0];
}

function expressApp(downstream: TestServer): express.Express {
  const app = express();
  app.set('env', 'test'); // Express's final handler would print the stack of the failure test
  app.use(expressMiddleware({ callerNameHeaders: ['x-caller-name'], ignorePaths: ['/healthz'] }));
  app.use(express.json());
  const api = express.Router();
  // a second instance further down must not start a second span
  api.use(expressMiddleware());
  api.get('/users/:id', (req, res) => {
    const current = getCurrentSpan();
    request(`${downstream.origin}/profile/${req.params.id}`).then((reply) =>
      res.json({ id: req.params.id, profile: reply.status, sameSpan: current === serverSpanOf(req) }),
    );
  });
  api.post('/users', (req, res) => {
    request(`${downstream.origin}/created`).then(() => res.status(201).json(req.body));
  });
  api.get('/boom', () => {
    throw new Error('route failed');
  });
  app.use('/api', api);
  app.get('/healthz', (req, res) => res.send('ok'));
  return app;
}

function koaApp(downstream: TestServer): Koa {
  const app = new Koa();
  app.silent = true; // Koa would print the 500s of the failure tests
  app.use(koaMiddleware());
  // a router in two lines: what @koa/router leaves on the context
  app.use(async (ctx, next) => {
    if (/^\/items\/\w+$/.test(ctx.path)) (ctx as unknown as { _matchedRoute: string })._matchedRoute = '/items/:id';
    await next();
  });
  app.use(async (ctx) => {
    if (ctx.path === '/fail') throw new Error('koa handler failed');
    if (ctx.path === '/missing') ctx.throw(404, 'no such item');
    const reply = await request(`${downstream.origin}/stock${ctx.path}`);
    ctx.body = { stock: reply.status, sameSpan: getCurrentSpan() === serverSpanOf(ctx.req) };
  });
  return app;
}

function describeWith(patches: PatchName[], label: string, expectedComponent: { express: string; koa: string }): void {
  describe(label, () => {
    const t = useTracing(patches);
    let downstream: TestServer;
    let expressServer: http.Server;
    let koaServer: http.Server;
    let expressOrigin: string;
    let koaOrigin: string;
    before(async () => {
      downstream = await startHttpServer();
      expressServer = expressApp(downstream).listen(0, '127.0.0.1');
      koaServer = koaApp(downstream).listen(0, '127.0.0.1');
      expressOrigin = await listen(expressServer);
      koaOrigin = await listen(koaServer);
    });
    after(async () => {
      await close(expressServer);
      await close(koaServer);
      await downstream.close();
    });

    describe('Express', () => {
      it("one server span named by the route, continuing the caller's trace; outbound calls are its children", async () => {
        const parent = t.tracer.startSpan('caller');
        const reply = await spanInContext(parent, () =>
          request(`${expressOrigin}/api/users/42?token=x`, { headers: { 'x-caller-name': 'web' } }),
        );
        parent.finish();
        assert.deepStrictEqual(JSON.parse(reply.body), { id: '42', profile: 200, sameSpan: true });
        const spans = await waitForSpans(t, patches.includes('http-server') ? 5 : 4);
        const server = onlyServerSpanOf(spans, expressOrigin);
        const caller = spans.find((s) => isClient(s) && String(tag(s, 'http.url')).startsWith(expressOrigin))!;
        const outbound = spans.find((s) => isClient(s) && String(tag(s, 'http.url')).endsWith('/profile/42'))!;
        assert.strictEqual(server.operationName, 'GET /api/users/:id');
        assert.strictEqual(tag(server, 'component'), expectedComponent.express);
        assert.strictEqual(tag(server, 'http.url'), `${expressOrigin}/api/users/42?token=REDACTED`);
        assert.strictEqual(tag(server, 'http.status_code'), 200);
        if (!patches.includes('http-server')) assert.strictEqual(tag(server, 'peer.service'), 'web');
        assert.strictEqual(traceId(server), traceId(parent));
        assert.strictEqual(parentId(server), spanId(caller));
        assert.strictEqual(parentId(outbound), spanId(server));
      });

      it('a JSON body parsed by express.json(): the handler after it still runs in the server span', async () => {
        const reply = await request(`${expressOrigin}/api/users`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'ada' }),
        });
        assert.strictEqual(reply.status, 201);
        assert.deepStrictEqual(JSON.parse(reply.body), { name: 'ada' });
        const spans = await waitForSpans(t, patches.includes('http-server') ? 4 : 3);
        const server = onlyServerSpanOf(spans, expressOrigin);
        const outbound = spans.find((s) => isClient(s) && String(tag(s, 'http.url')).endsWith('/created'))!;
        assert.strictEqual(server.operationName, 'POST /api/users');
        assert.strictEqual(parentId(outbound), spanId(server));
      });

      it('a route that throws: Express answers 500, the span has error=true', async () => {
        // (Express has left the mounted router when its error handler answers: the route is lost, see expressRoute)
        const reply = await request(`${expressOrigin}/api/boom`);
        assert.strictEqual(reply.status, 500);
        const server = onlyServerSpanOf(await waitForSpans(t, 2), expressOrigin);
        assert.strictEqual(tag(server, 'error'), true);
        assert.strictEqual(tag(server, 'http.status_code'), 500);
        assert.strictEqual(server.operationName, 'GET');
      });

      it('no route matched: the operation stays the method; ignored paths get no span', async () => {
        assert.strictEqual((await request(`${expressOrigin}/nowhere/123`)).status, 404);
        assert.strictEqual((await request(`${expressOrigin}/healthz`)).body, 'ok');
        const spans = await waitForSpans(t, 3);
        await new Promise((r) => setTimeout(r, 20));
        const servers = t.spans().filter((s) => isServer(s) && String(tag(s, 'http.url')).startsWith(expressOrigin));
        if (patches.includes('http-server')) {
          // the patch saw /healthz first: its own options (none) trace it; the middleware adds nothing
          assert.deepStrictEqual(servers.map((s) => s.operationName).sort(), ['GET', 'GET /healthz']);
        } else {
          assert.deepStrictEqual(servers.map((s) => s.operationName), ['GET']);
        }
        assert.ok(spans.length >= 2);
        const notFound = servers.find((s) => tag(s, 'http.status_code') === 404)!;
        assert.strictEqual(tag(notFound, 'error'), undefined);
      });
    });

    describe('Koa', () => {
      it("one server span named by the route, continuing the caller's trace; outbound calls are its children", async () => {
        const parent = t.tracer.startSpan('caller');
        const reply = await spanInContext(parent, () => request(`${koaOrigin}/items/7`));
        parent.finish();
        assert.deepStrictEqual(JSON.parse(reply.body), { stock: 200, sameSpan: true });
        const spans = await waitForSpans(t, patches.includes('http-server') ? 5 : 4);
        const server = onlyServerSpanOf(spans, koaOrigin);
        const caller = spans.find((s) => isClient(s) && String(tag(s, 'http.url')).startsWith(koaOrigin))!;
        const outbound = spans.find((s) => isClient(s) && String(tag(s, 'http.url')).endsWith('/stock/items/7'))!;
        assert.strictEqual(server.operationName, 'GET /items/:id');
        assert.strictEqual(tag(server, 'component'), expectedComponent.koa);
        assert.strictEqual(parentId(server), spanId(caller));
        assert.strictEqual(traceId(server), traceId(parent));
        assert.strictEqual(parentId(outbound), spanId(server));
      });

      it('a middleware that throws: Koa answers 500, the span has error=true and the error object', async () => {
        const reply = await request(`${koaOrigin}/fail`);
        assert.strictEqual(reply.status, 500);
        const server = onlyServerSpanOf(await waitForSpans(t, 2), koaOrigin);
        assert.strictEqual(tag(server, 'error'), true);
        assert.strictEqual(tag(server, 'http.status_code'), 500);
        const [log] = logs(server);
        assert.strictEqual(log.message, 'koa handler failed');
        assert.ok(log['error.object'] instanceof Error);
        assert.strictEqual(logs(server).length, 1);
      });

      it('ctx.throw(404): a 404 without error', async () => {
        const reply = await request(`${koaOrigin}/missing`);
        assert.strictEqual(reply.status, 404);
        const server = onlyServerSpanOf(await waitForSpans(t, 2), koaOrigin);
        assert.strictEqual(tag(server, 'http.status_code'), 404);
        assert.strictEqual(tag(server, 'error'), undefined);
        assert.deepStrictEqual(logs(server), []);
      });
    });
  });
}

describeWith(['http'], 'middlewares without the http-server patch', { express: 'express', koa: 'koa' });
describeWith(['http', 'http-server'], 'middlewares with the http-server patch also active: still one span per request', {
  express: 'http',
  koa: 'http',
});
