import assert from 'assert';
import * as diagnosticsChannel from 'diagnostics_channel';
import type * as http from 'http';
import type { AddressInfo } from 'net';
import * as net from 'net';
import type { Span, Tracer } from 'opentracing';
import * as undici from 'undici';
import { getCurrentSpan, installPatches, setResponseHook, spanInContext, suppressInstrumentation, uninstallAllPatches } from '../src';
import type { FetchResponseLike } from '../src';
import {
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
  tracerWithBrokenMethod,
  tracerWithBrokenSpans,
  underParent,
} from './helpers/tracing';
import { originalOf } from '../src/wrap';
import { defaultHandler, startHttpServer, type Handler, type TestServer } from './helpers/servers';

const PATCHES = ['http', 'https', 'fetch'] as const;

/** The span id carried by an `uber-trace-id` header value. */
function headerSpanId(value: unknown): string {
  assert.strictEqual(typeof value, 'string', 'uber-trace-id header missing');
  return (value as string).split(':')[1];
}

function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

type FetchError = TypeError & { cause?: { message?: string; code?: string } };

/** The rejection the application gets is the one it gets without instrumentation. */
function assertSameFetchError(traced: FetchError, plain: FetchError): void {
  assert.strictEqual(traced.constructor, plain.constructor);
  assert.strictEqual(traced.message, plain.message);
  assert.strictEqual(String(traced.cause?.message), String(plain.cause?.message));
  assert.strictEqual(traced.cause?.code, plain.cause?.code);
}

/** `/location?to=URL`: a 302 to URL (none without `to`). */
function redirectTo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const to = new URL(req.url ?? '/', 'http://x').searchParams.get('to');
  res.statusCode = 302;
  if (to !== null) res.setHeader('location', to);
  res.end();
}

/** `/big`: 8 MB, more than undici buffers, so it is only received if read. Else the default handler. */
const handler: Handler = (req, res) => {
  if (req.url?.startsWith('/location')) {
    redirectTo(req, res);
    return;
  }
  if (req.url === '/big') {
    res.setHeader('content-length', String(8 * 1024 * 1024));
    const chunk = Buffer.alloc(64 * 1024, 'a');
    let left = 128;
    const write = (): void => {
      while (left > 0) {
        left--;
        if (!res.write(chunk)) {
          res.once('drain', write);
          return;
        }
      }
      res.end();
    };
    write();
    return;
  }
  defaultHandler(req, res);
};

describe('fetch patch', () => {
  const t = useTracing([...PATCHES]);
  let server: TestServer;
  before(async () => {
    server = await startHttpServer(handler);
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.received.length = 0;
    setResponseHook('fetch', null);
  });


  function fetchSpans(): JaegerSpan[] {
    return t.spans().filter((s) => tag(s, 'component') === 'fetch');
  }

  describe('#fetch(url) (global fetch)', () => {
    it('gives one client span, child of the current span, with the contract tags; the server gets its id', async () => {
      const { parent, result } = await underParent(t, async () => (await fetch(`${server.origin}/a/b?x=1&token=hunter2`)).json());
      assert.deepStrictEqual(result, { ok: true, path: '/a/b?x=1&token=hunter2' });
      assert.strictEqual(t.spans().length, 2);
      const [span] = fetchSpans();
      assert.strictEqual(span.operationName, 'GET');
      assert.deepStrictEqual(tags(span), {
        'span.kind': 'client',
        component: 'fetch',
        'http.method': 'GET',
        'http.url': `${server.origin}/a/b?x=1&token=REDACTED`,
        'peer.ipv4': '127.0.0.1',
        'peer.port': server.port,
        'http.status_code': 200,
      });
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(traceId(span), traceId(parent));
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('starts a new trace when there is no current span', async () => {
      await (await fetch(`${server.origin}/`)).text();
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(parentId(span), undefined);
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('runs the continuations in the caller context, never in the client span', async () => {
      const seen: Array<Span | undefined> = [];
      const { parent } = await underParent(t, async () => {
        const res = await fetch(`${server.origin}/`);
        seen.push(getCurrentSpan());
        await res.text();
        seen.push(getCurrentSpan());
      });
      assert.deepStrictEqual(seen, [parent, parent]);
    });

    it('POST with a body and a Headers object: the caller headers stay as they were, the server gets both', async () => {
      const headers = new Headers({ 'x-app': 'yes', 'content-type': 'text/plain' });
      const init = { method: 'POST', headers, body: 'hello' };
      await (await fetch(`${server.origin}/post`, init)).text();
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(span.operationName, 'POST');
      assert.strictEqual(tag(span, 'http.method'), 'POST');
      assert.deepStrictEqual([...headers.keys()], ['content-type', 'x-app']);
      assert.deepStrictEqual(Object.keys(init), ['method', 'headers', 'body']);
      const got = server.received[0];
      assert.strictEqual(got.method, 'POST');
      assert.strictEqual(got.headers['x-app'], 'yes');
      assert.strictEqual(headerSpanId(got.headers['uber-trace-id']), spanId(span));
    });

    it("replaces a trace header the app set itself: the server gets one, the span's", async () => {
      await (await fetch(`${server.origin}/`, { headers: { 'Uber-Trace-Id': 'abc:def:0:1' } })).text();
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(server.received[0].headers['uber-trace-id'], `${traceId(span)}:${spanId(span)}:0:1`);
    });
  });

  describe('#undici.fetch / #undici.request (the undici package)', () => {
    it('traces undici.fetch once', async () => {
      const { parent } = await underParent(t, async () => (await undici.fetch(`${server.origin}/u`)).text());
      const spans = fetchSpans();
      assert.strictEqual(spans.length, 1);
      assert.strictEqual(parentId(spans[0]), spanId(parent));
      assert.strictEqual(tag(spans[0], 'http.status_code'), 200);
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(spans[0]));
    });

    it('traces undici.request once, operation name the method upper case', async () => {
      const { parent } = await underParent(t, async () => {
        const res = await undici.request(`${server.origin}/r?token=hunter2`, { method: 'PUT', body: 'x' });
        await res.body.text();
      });
      const [span] = fetchSpans();
      assert.strictEqual(fetchSpans().length, 1);
      assert.strictEqual(span.operationName, 'PUT');
      assert.strictEqual(tag(span, 'http.url'), `${server.origin}/r?token=REDACTED`);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('traces global fetch over an undici package dispatcher once', async () => {
      const agent = new undici.Agent();
      try {
        await underParent(t, async () => (await fetch(`${server.origin}/d`, { dispatcher: agent } as unknown as RequestInit)).text());
      } finally {
        await agent.close();
      }
      assert.strictEqual(fetchSpans().length, 1);
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(fetchSpans()[0]));
    });

    it('wraps fetch keeping its name and length; uninstall puts back the very same functions', async () => {
      const originals = { global: originalOf(globalThis.fetch), undici: originalOf(undici.fetch) };
      assert.notStrictEqual(globalThis.fetch, originals.global);
      assert.notStrictEqual(undici.fetch, originals.undici);
      assert.strictEqual(globalThis.fetch.name, originals.global.name);
      assert.strictEqual(globalThis.fetch.length, originals.global.length);
      assert.strictEqual(undici.fetch.length, originals.undici.length);
      uninstallAllPatches();
      try {
        assert.strictEqual(globalThis.fetch, originals.global);
        assert.strictEqual(undici.fetch, originals.undici);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('subscribes once, however many times it is installed', async () => {
      installPatches([...PATCHES], { tracer: t.tracer });
      installPatches(['fetch'], { tracer: t.tracer });
      await (await fetch(`${server.origin}/`)).text();
      await waitForSpans(t, 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.strictEqual(t.spans().length, 1);
      assert.strictEqual(server.received[0].headers['uber-trace-id']?.toString().includes(','), false);
    });
  });

  describe('redirects: one fetch() call, one span', () => {
    /** A fetch that redirects through `hops` and answers with the last, as the application sees it. */
    async function followed(url: string, init?: RequestInit): Promise<{ parent: Span; status: number }> {
      const { parent, result } = await underParent(t, async () => {
        const res = await fetch(url, init);
        await res.text();
        return res.status;
      });
      return { parent, status: result };
    }

    /** What fetch rejects with, without and then with instrumentation. */
    async function rejectionsOf(call: () => Promise<unknown>): Promise<{ plain: FetchError; traced: FetchError }> {
      const attempt = (): Promise<FetchError> => call().then(() => assert.fail('expected a rejection'), (err: FetchError) => err);
      uninstallAllPatches();
      const plain = await attempt();
      installPatches([...PATCHES], { tracer: t.tracer });
      const traced = await attempt();
      return { plain, traced };
    }

    it('follows two redirects as one span: the first URL, the last status, a log per redirect, its context on every hop', async () => {
      const hooked: Array<{ res: FetchResponseLike; current: Span | undefined }> = [];
      setResponseHook('fetch', (res) => hooked.push({ res, current: getCurrentSpan() }));
      const { parent, status } = await followed(`${server.origin}/redirect/2?token=hunter2`);
      assert.strictEqual(status, 200);
      assert.strictEqual(t.spans().length, 2);
      const [span] = fetchSpans();
      assert.strictEqual(span.operationName, 'GET');
      assert.strictEqual(tag(span, 'http.url'), `${server.origin}/redirect/2?token=REDACTED`);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(tag(span, 'error'), undefined);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.deepStrictEqual(logs(span), [
        { event: 'redirect', 'http.status_code': 302, 'http.url': `${server.origin}/redirect/1` },
        { event: 'redirect', 'http.status_code': 302, 'http.url': `${server.origin}/` },
      ]);
      assert.deepStrictEqual(
        server.received.map((r) => [r.url, headerSpanId(r.headers['uber-trace-id'])]),
        [
          ['/redirect/2?token=hunter2', spanId(span)],
          ['/redirect/1', spanId(span)],
          ['/', spanId(span)],
        ],
      );
      // Once, for the response that answers the call, in the caller's context.
      assert.strictEqual(hooked.length, 1);
      assert.strictEqual(hooked[0].res.status, 200);
      assert.strictEqual(hooked[0].res.url, `${server.origin}/`);
      assert.strictEqual(hooked[0].current, parent);
    });

    it('undici.fetch: one span over its redirects too', async () => {
      const { parent } = await underParent(t, async () => (await undici.fetch(`${server.origin}/redirect/2`)).text());
      const [span] = fetchSpans();
      assert.strictEqual(fetchSpans().length, 1);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.deepStrictEqual(
        server.received.map((r) => headerSpanId(r.headers['uber-trace-id'])),
        [spanId(span), spanId(span), spanId(span)],
      );
    });

    it("redirect: 'manual' (in init or in a Request): the redirect is the answer, no error", async () => {
      assert.strictEqual((await followed(`${server.origin}/redirect/2`, { redirect: 'manual' })).status, 302);
      assert.strictEqual((await followed(new Request(`${server.origin}/redirect/2`, { redirect: 'manual' }) as never)).status, 302);
      const spans = fetchSpans();
      assert.strictEqual(spans.length, 2);
      for (const span of spans) {
        assert.strictEqual(tag(span, 'http.status_code'), 302);
        assert.strictEqual(tag(span, 'error'), undefined);
        assert.deepStrictEqual(logs(span), []);
      }
      assert.strictEqual(server.received.length, 2);
    });

    it("redirect read through a getter (fetch's own read is the only one): still one span, ended", async () => {
      let reads = 0;
      const init = {
        get redirect(): 'manual' {
          reads++;
          return 'manual';
        },
      };
      assert.strictEqual((await followed(`${server.origin}/redirect/1`, init)).status, 302);
      assert.strictEqual(reads, 1);
      const [span] = await waitForSpans(t, 2).then(() => fetchSpans());
      assert.strictEqual(tag(span, 'http.status_code'), 302);
      assert.strictEqual(tag(span, 'error'), undefined);
    });

    it("redirect: 'error': the same rejection; the span is an error of kind redirect", async () => {
      const { plain, traced } = await rejectionsOf(() => fetch(`${server.origin}/redirect/1`, { redirect: 'error' }));
      assertSameFetchError(traced, plain);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 302);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'redirect');
    });

    it('more than 20 redirects: the same rejection; one span over the 21 requests, an error', async () => {
      const { plain, traced } = await rejectionsOf(() => fetch(`${server.origin}/redirect/25`));
      assertSameFetchError(traced, plain);
      const [span] = await waitForSpans(t, 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.strictEqual(t.spans().length, 1);
      assert.strictEqual(tag(span, 'error'), true);
      const errorLog = logs(span).find((l) => l.event === 'error')!;
      assert.deepStrictEqual(errorLog, { event: 'error', 'error.kind': 'redirect', message: 'more than 20 redirects' });
      assert.strictEqual(logs(span).filter((l) => l.event === 'redirect').length, 20);
      const traced21 = server.received.slice(-21);
      assert.ok(traced21.every((r) => headerSpanId(r.headers['uber-trace-id']) === spanId(span)));
    });

    it('a Location that is not HTTP(S): the same rejection; the span is an error', async () => {
      const url = `${server.origin}/location?to=${encodeURIComponent('ftp://files.example.test/x')}`;
      const { plain, traced } = await rejectionsOf(() => fetch(url));
      assertSameFetchError(traced, plain);
      const [span] = await waitForSpans(t, 1);
      assert.deepStrictEqual(logs(span), [
        { event: 'error', 'error.kind': 'redirect', message: 'the redirect leads to a URL that is not HTTP(S)' },
      ]);
      assert.strictEqual(tag(span, 'http.status_code'), 302);
    });

    it('a redirect without a Location is the answer', async () => {
      assert.strictEqual((await followed(`${server.origin}/location`)).status, 302);
      const [span] = fetchSpans();
      assert.strictEqual(tag(span, 'http.status_code'), 302);
      assert.strictEqual(tag(span, 'error'), undefined);
    });

    it('a later hop that fails (refused): the same rejection; one span, an error of its kind', async () => {
      const port = await closedPort();
      const url = `${server.origin}/location?to=${encodeURIComponent(`http://127.0.0.1:${port}/`)}`;
      const { plain, traced } = await rejectionsOf(() => fetch(url));
      assertSameFetchError(traced, plain);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(logs(span)[0].event, 'redirect');
      assert.strictEqual(logs(span)[1]['error.kind'], 'ECONNREFUSED');
    });

    it('a dispatcher that refuses the next hop (closed in between): one span, ended with its error', async () => {
      const agent = new undici.Agent();
      // Closes the agent when the redirect arrives: fetch's next dispatch is refused before any request exists.
      const closeOnRedirect = (message: unknown): void => {
        if ((message as { response: { statusCode: number } }).response.statusCode === 302) void agent.close();
      };
      diagnosticsChannel.subscribe('undici:request:headers', closeOnRedirect);
      try {
        await assert.rejects(undici.fetch(`${server.origin}/redirect/1`, { dispatcher: agent }), TypeError);
      } finally {
        diagnosticsChannel.unsubscribe('undici:request:headers', closeOnRedirect);
      }
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span).find((l) => l.event === 'error')!['error.kind'], 'UND_ERR_CLOSED');
      assert.strictEqual(server.received.length, 1);
    });

    it('a hop that waits in a full pool queue stays part of the call', async () => {
      // One connection: the redirect's next hop queues behind a slow request that took the connection meanwhile.
      const pool = new undici.Pool(server.origin, { connections: 1 });
      try {
        const slowFirst = undici.request(`${server.origin}/slow/50`, { dispatcher: pool }).then((r) => r.body.text());
        const { parent, result } = await underParent(t, async () => {
          const call = undici.fetch(`${server.origin}/redirect/1`, { dispatcher: pool });
          const slowAfter = undici.request(`${server.origin}/slow/200`, { dispatcher: pool }).then((r) => r.body.text());
          const res = await call;
          await res.text();
          await slowAfter;
          return res.status;
        });
        await slowFirst;
        assert.strictEqual(result, 200);
        const redirected = fetchSpans().find((s) => tag(s, 'http.url') === `${server.origin}/redirect/1`)!;
        assert.strictEqual(parentId(redirected), spanId(parent));
        assert.strictEqual(tag(redirected, 'http.status_code'), 200);
        assert.strictEqual(tag(redirected, 'error'), undefined);
        assert.deepStrictEqual(
          server.received.map((r) => r.url),
          ['/slow/50', '/redirect/1', '/slow/200', '/'],
          'the next hop did not wait in the queue',
        );
        assert.strictEqual(headerSpanId(server.received[3].headers['uber-trace-id']), spanId(redirected));
      } finally {
        await pool.close();
      }
    });
  });

  describe('responses and the response hook', () => {
    it('tags status >= 500 as an error, not 404', async () => {
      await (await fetch(`${server.origin}/status/503`)).text();
      await (await fetch(`${server.origin}/status/404`)).text();
      const spans = await waitForSpans(t, 2);
      const s503 = spans.find((s) => tag(s, 'http.status_code') === 503)!;
      const s404 = spans.find((s) => tag(s, 'http.status_code') === 404)!;
      assert.strictEqual(tag(s503, 'error'), true);
      assert.deepStrictEqual(logs(s503)[0], { event: 'error', 'error.kind': 'http_status', message: 'HTTP 503 Service Unavailable' });
      assert.strictEqual(tag(s404, 'error'), undefined);
    });

    it('honours isErrorStatus', async () => {
      installPatches([...PATCHES], { tracer: t.tracer, fetch: { isErrorStatus: (s) => s >= 400 } });
      try {
        await (await fetch(`${server.origin}/status/404`)).text();
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'error'), true);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('calls the response hook once, before the span finishes, in the caller context', async () => {
      const calls: Array<{ res: FetchResponseLike; current: Span | undefined }> = [];
      setResponseHook('fetch', (res, span) => {
        calls.push({ res, current: getCurrentSpan() });
        span.setTag('app.type', res.headers['content-type']);
      });
      const { parent } = await underParent(t, async () => (await fetch(`${server.origin}/hooked?x=1`)).text());
      assert.strictEqual(calls.length, 1);
      const [{ res, current }] = calls;
      assert.strictEqual(res.status, 200);
      assert.strictEqual(res.statusText, 'OK');
      assert.strictEqual(res.url, `${server.origin}/hooked?x=1`);
      assert.strictEqual(current, parent);
      const [span] = fetchSpans();
      assert.strictEqual(tag(span, 'app.type'), 'application/json');
    });

    it('contains hooks that throw: the call goes on unchanged', async () => {
      installPatches([...PATCHES], {
        tracer: t.tracer,
        fetch: {
          requestHook: () => {
            throw new Error('request hook broken');
          },
          responseHook: () => {
            throw new Error('response hook broken');
          },
        },
      });
      try {
        const res = await fetch(`${server.origin}/`);
        assert.deepStrictEqual(await res.json(), { ok: true, path: '/' });
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'http.status_code'), 200);
        assert.ok(server.received[0].headers['uber-trace-id']);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });
  });

  describe('ends of a request', () => {
    it('a small body nobody reads: the span still finishes', async () => {
      const res = await fetch(`${server.origin}/unread`);
      assert.strictEqual(res.status, 200);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), undefined);
    });

    it('a large body read to the end: the span finishes when it is received', async () => {
      const res = await fetch(`${server.origin}/big`);
      await new Promise((r) => setTimeout(r, 50));
      assert.strictEqual(t.spans().length, 0, 'finished before the body was received');
      assert.strictEqual((await res.arrayBuffer()).byteLength, 8 * 1024 * 1024);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), undefined);
    });

    it('a large body the app cancels after the headers: finished, no error', async () => {
      const res = await fetch(`${server.origin}/big`);
      await res.body!.cancel();
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(tag(span, 'error'), undefined);
    });

    it('an undici.request body destroyed after the headers: finished, no error', async () => {
      const res = await undici.request(`${server.origin}/big`);
      res.body.destroy();
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), undefined);
    });

    it('a response cut mid-body: finished once, as an error', async () => {
      const res = await fetch(`${server.origin}/partial`);
      await assert.rejects(res.text());
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(tag(span, 'error'), true);
    });

    it('a refused connection: error=true with its kind; the app gets the same rejection as without us', async () => {
      const port = await closedPort();
      const attempt = (): Promise<Error & { cause?: { code?: string } }> =>
        fetch(`http://127.0.0.1:${port}/`).then(
          () => assert.fail('expected a rejection'),
          (err: Error & { cause?: { code?: string } }) => err,
        );
      uninstallAllPatches();
      const plain = await attempt();
      installPatches([...PATCHES], { tracer: t.tracer });
      const traced = await attempt();
      assert.strictEqual(traced.constructor, plain.constructor);
      assert.strictEqual(traced.message, plain.message);
      assert.strictEqual(traced.cause?.code, 'ECONNREFUSED');
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      const [log] = logs(span);
      assert.strictEqual(log.event, 'error');
      assert.strictEqual(log['error.kind'], 'ECONNREFUSED');
      assert.strictEqual(errorBehind(log['error.object']), traced.cause);
    });

    it('an abort before the response (AbortController) is an error', async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 30);
      await assert.rejects(fetch(`${server.origin}/slow/2000`, { signal: controller.signal }), { name: 'AbortError' });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'AbortError');
    });

    it('a timeout (AbortSignal.timeout) is an error', async () => {
      await assert.rejects(fetch(`${server.origin}/slow/2000`, { signal: AbortSignal.timeout(30) }), { name: 'TimeoutError' });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'TimeoutError');
    });

    it('an undici headersTimeout is an error', async () => {
      const agent = new undici.Agent({ headersTimeout: 30 });
      try {
        await assert.rejects(undici.request(`${server.origin}/slow/2000`, { dispatcher: agent }));
      } finally {
        await agent.close();
      }
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'UND_ERR_HEADERS_TIMEOUT');
    });
  });

  describe('hooks and options', () => {
    it('calls the request hook before injection (baggage set there travels)', async () => {
      installPatches([...PATCHES], {
        tracer: t.tracer,
        fetch: {
          requestHook: (span, request) => {
            span.setBaggageItem('tenant', 'acme');
            span.setTag('req.path', `${request.method} ${request.path}`);
            request.addHeader('x-from-hook', '1');
          },
        },
      });
      try {
        await (await fetch(`${server.origin}/hooked`)).text();
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'req.path'), 'GET /hooked');
        assert.strictEqual(server.received[0].headers['uberctx-tenant'], 'acme');
        assert.strictEqual(server.received[0].headers['x-from-hook'], '1');
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('with requireParentSpan and no current span: no span, no headers', async () => {
      installPatches([...PATCHES], { tracer: t.tracer, fetch: { requireParentSpan: true } });
      try {
        await (await fetch(`${server.origin}/`)).text();
        assert.strictEqual(t.spans().length, 0);
        assert.strictEqual(server.received[0].headers['uber-trace-id'], undefined);
        await underParent(t, async () => (await fetch(`${server.origin}/`)).text());
        assert.strictEqual(fetchSpans().length, 1);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('inside suppressInstrumentation: no span, no headers (global fetch and undici)', async () => {
      await suppressInstrumentation(async () => {
        await (await fetch(`${server.origin}/`)).text();
        await (await undici.request(`${server.origin}/`)).body.text();
      });
      assert.strictEqual(t.spans().length, 0);
      for (const r of server.received) assert.strictEqual(r.headers['uber-trace-id'], undefined);
    });

    it('puts each of 40 concurrent calls under its own parent', async () => {
      const parents = Array.from({ length: 40 }, (_, i) => t.tracer.startSpan(`p${i}`));
      await Promise.all(
        parents.map((p, i) =>
          spanInContext(p, async () => {
            await new Promise((r) => setTimeout(r, i % 5));
            if (i % 2) await (await fetch(`${server.origin}/c/${i}`)).text();
            else await (await undici.request(`${server.origin}/c/${i}`)).body.text();
          }),
        ),
      );
      parents.forEach((p) => p.finish());
      const spans = fetchSpans();
      assert.strictEqual(spans.length, 40);
      for (const s of spans) {
        const i = Number(/\/c\/(\d+)/.exec(tag(s, 'http.url') as string)![1]);
        assert.strictEqual(parentId(s), spanId(parents[i]), `call ${i} under the wrong parent`);
      }
      for (const r of server.received) {
        const i = Number(/\/c\/(\d+)/.exec(r.url)![1]);
        const child = spans.find((s) => spanId(s) === headerSpanId(r.headers['uber-trace-id']))!;
        assert.strictEqual(parentId(child), spanId(parents[i]));
      }
    });

    it('uninstall unsubscribes: no span, no headers', async () => {
      uninstallAllPatches();
      try {
        assert.strictEqual(diagnosticsChannel.channel('undici:request:create').hasSubscribers, false);
        await (await fetch(`${server.origin}/`)).text();
        await new Promise((r) => setTimeout(r, 20));
        assert.strictEqual(t.spans().length, 0);
        assert.strictEqual(server.received[0].headers['uber-trace-id'], undefined);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });
  });
});

describe('fetch patch with a failing tracer', () => {
  let server: TestServer;
  before(async () => (server = await startHttpServer()));
  after(async () => {
    uninstallAllPatches();
    await server.close();
  });

  for (const method of ['startSpan', 'inject'] as const) {
    it(`the call succeeds unchanged when tracer.${method} throws`, async () => {
      const t = tracerWithBrokenMethod(method);
      installPatches(['fetch'], { tracer: t.tracer });
      try {
        const res = await fetch(`${server.origin}/`);
        assert.deepStrictEqual(await res.json(), { ok: true, path: '/' });
        if (method === 'inject') await waitFor(() => t.spans().length === 1);
      } finally {
        uninstallAllPatches();
        t.close();
      }
    });
  }

  it('the call succeeds unchanged when span.finish, span.log and span.setTag throw', async () => {
    const t = tracerWithBrokenSpans();
    installPatches(['fetch'], { tracer: t.tracer });
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const res = await fetch(`${server.origin}/status/503`);
      assert.strictEqual(res.status, 503);
      await res.text();
      await new Promise((r) => setTimeout(r, 20));
      assert.deepStrictEqual(uncaught, []);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      uninstallAllPatches();
      t.close();
    }
  });
});
