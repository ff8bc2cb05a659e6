import assert from 'assert';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as net from 'net';
import type { Span, Tracer } from 'opentracing';
import axios, { type AxiosError, type AxiosResponse } from 'axios';
import {
  getCurrentSpan,
  installPatches,
  setCurrentSpanFunc,
  setResponseHook,
  spanInContext,
  suppressInstrumentation,
  uninstallAllPatches,
} from '../src';
import type { AxiosResponseLike } from '../src';
import {
  errorBehind,
  logs,
  parentId,
  spanId,
  tag,
  tags,
  traceId,
  useTracing,
  waitForSpans,
  type JaegerSpan,
  tracerWithBrokenMethod,
  tracerWithBrokenSpans,
  underParent,
} from './helpers/tracing';
import { loopbackLookup } from './helpers/lookup';
import { startHttpServer, type TestServer } from './helpers/servers';

// Made before the patches are installed: axios binds instances at creation time.
const earlyInstance = axios.create({ headers: { 'x-early': '1' } });
const unpatchedRequest = axios.Axios.prototype.request;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const unpatched_request = (axios.Axios.prototype as any)._request;

const PATCHES = ['http', 'https', 'axios', 'fetch'] as const;

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

/** Runs `fn` with the patches off, then on again, and returns both outcomes. */
async function withAndWithout<T>(t: { tracer: Tracer }, fn: () => Promise<T>): Promise<{ plain: T; traced: T }> {
  uninstallAllPatches();
  let plain: T;
  try {
    plain = await fn();
  } finally {
    installPatches([...PATCHES], { tracer: t.tracer });
  }
  const traced = await fn();
  return { plain, traced };
}

function rejectionOf(p: Promise<unknown>): Promise<AxiosError> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (err: AxiosError) => err,
  );
}

function axiosSpans(t: { spans(): JaegerSpan[] }): JaegerSpan[] {
  return t.spans().filter((s) => tag(s, 'component') === 'axios');
}

describe('axios patch', () => {
  const t = useTracing([...PATCHES]);
  let server: TestServer;
  before(async () => {
    server = await startHttpServer();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.received.length = 0;
    setResponseHook('axios', null);
  });


  describe('#axios.get(url)', () => {
    it('gives exactly one client span, child of the current span, and the server gets its id', async () => {
      const { parent, result } = await underParent(t, () => axios.get(`${server.origin}/a/b?x=1`));
      assert.deepStrictEqual(result.data, { ok: true, path: '/a/b?x=1' });
      assert.strictEqual(t.spans().length, 2, 'the parent and one axios span: no http span underneath');
      const [span] = axiosSpans(t);
      assert.strictEqual(span.operationName, 'GET');
      assert.deepStrictEqual(tags(span), {
        'span.kind': 'client',
        component: 'axios',
        'http.method': 'GET',
        'http.url': `${server.origin}/a/b?x=1`,
        'peer.ipv4': '127.0.0.1',
        'peer.port': server.port,
        'http.status_code': 200,
      });
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(traceId(span), traceId(parent));
      assert.strictEqual(server.received.length, 1);
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('starts a new trace when there is no current span', async () => {
      await axios.get(`${server.origin}/`);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(t.spans().length, 1);
      assert.strictEqual(tag(span, 'component'), 'axios');
      assert.strictEqual(parentId(span), undefined);
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('takes as parent the current span when the call is made, even if the request goes out later', async () => {
      // A custom getter answers by what is current now; an async interceptor delays the dispatch.
      const a = t.tracer.startSpan('a');
      const b = t.tracer.startSpan('b');
      let current: Span = a;
      setCurrentSpanFunc(() => current);
      const api = axios.create();
      api.interceptors.request.use(async (config) => {
        await new Promise((r) => setTimeout(r, 10));
        return config;
      });
      const call = api.get(`${server.origin}/later-dispatch`);
      current = b;
      await call;
      setCurrentSpanFunc(null);
      a.finish();
      b.finish();
      const [span] = axiosSpans(t);
      assert.strictEqual(parentId(span), spanId(a));
    });

    it('runs the continuation in the caller context, never in the client span', async () => {
      const seen: Array<Span | undefined> = [];
      const { parent } = await underParent(t, async () => {
        await axios.get(`${server.origin}/`).then(() => seen.push(getCurrentSpan()));
        seen.push(getCurrentSpan());
      });
      assert.deepStrictEqual(seen, [parent, parent]);
    });

    it('keeps name and length of Axios.prototype._request, and puts back the very same on uninstall', () => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const proto = axios.Axios.prototype as any;
      assert.notStrictEqual(proto._request, unpatched_request);
      assert.strictEqual(proto._request.name, unpatched_request.name);
      assert.strictEqual(proto._request.length, unpatched_request.length);
      assert.strictEqual(axios.Axios.prototype.request, unpatchedRequest);
      uninstallAllPatches();
      try {
        assert.strictEqual(proto._request, unpatched_request);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });
  });

  describe('#axios(config) and #axios(url, config)', () => {
    it('traces the default export called as a function, with baseURL and params (secrets redacted)', async () => {
      const { parent } = await underParent(t, () =>
        axios({ baseURL: server.origin, url: '/items', params: { page: 2, token: 'hunter2' }, method: 'put', data: { a: 1 } }),
      );
      const [span] = axiosSpans(t);
      assert.strictEqual(axiosSpans(t).length, 1);
      assert.strictEqual(span.operationName, 'PUT');
      assert.strictEqual(tag(span, 'http.method'), 'PUT');
      assert.strictEqual(tag(span, 'http.url'), `${server.origin}/items?page=2&token=REDACTED`);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(server.received[0].url, '/items?page=2&token=hunter2');
      assert.strictEqual(server.received[0].method, 'PUT');
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('traces axios(url, config) and sets config.url on the caller object as axios does', async () => {
      const { plain, traced } = await withAndWithout(t, async () => {
        const config: { method: string; url?: string } = { method: 'delete' };
        await axios(`${server.origin}/gone`, config);
        return Object.keys(config).sort().join(',') + '|' + config.url;
      });
      assert.strictEqual(traced, plain);
      const [span] = axiosSpans(t);
      assert.strictEqual(span.operationName, 'DELETE');
      assert.strictEqual(tag(span, 'http.url'), `${server.origin}/gone`);
    });

    it('rejects a frozen config in axios(url, config) exactly as axios does', async () => {
      const { plain, traced } = await withAndWithout(t, () => rejectionOf(axios(`${server.origin}/`, Object.freeze({}))));
      assert.strictEqual(traced.constructor, plain.constructor);
      assert.strictEqual(traced.message, plain.message);
      assert.strictEqual(axiosSpans(t).length, 0);
    });

    it('leaves the caller config object and its headers as they were', async () => {
      const headers = Object.freeze({ 'x-app': 'yes' });
      const config = Object.freeze({ url: `${server.origin}/h`, headers });
      const response = await axios(config);
      assert.deepStrictEqual(Object.keys(config).sort(), ['headers', 'url']);
      assert.deepStrictEqual(Object.keys(headers), ['x-app']);
      // axios' own view of the request headers does not show ours either
      assert.strictEqual(response.config.headers['uber-trace-id'], undefined);
      assert.strictEqual(response.config.headers.get('uber-trace-id'), undefined);
      assert.strictEqual(server.received[0].headers['x-app'], 'yes');
      assert.ok(server.received[0].headers['uber-trace-id']);
    });

    it('keeps response.config.adapter as axios would set it', async () => {
      const { plain, traced } = await withAndWithout(t, async () => {
        const res = await axios.get(`${server.origin}/`);
        const err = await rejectionOf(axios.get(`${server.origin}/status/404`, { adapter: 'fetch' }));
        return [res.config.adapter, err.config?.adapter];
      });
      assert.deepStrictEqual(traced, plain);
    });
  });

  describe('#axios.create()', () => {
    it('traces an instance made before install', async () => {
      const { parent } = await underParent(t, () => earlyInstance.get(`${server.origin}/early`));
      const [span] = axiosSpans(t);
      assert.strictEqual(axiosSpans(t).length, 1);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(server.received[0].headers['x-early'], '1');
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('traces an instance (and one made from it) with baseURL, post and patch', async () => {
      const api = axios.create({ baseURL: `${server.origin}/api` });
      const nested = api.create({ headers: { 'x-nested': '1' } });
      await api.post('/things', { a: 1 });
      await nested.patch('/things/1', { b: 2 });
      const spans = axiosSpans(t);
      assert.deepStrictEqual(
        spans.map((s) => [s.operationName, tag(s, 'http.url')]),
        [
          ['POST', `${server.origin}/api/things`],
          ['PATCH', `${server.origin}/api/things/1`],
        ],
      );
      assert.deepStrictEqual(
        server.received.map((r) => headerSpanId(r.headers['uber-trace-id'])),
        spans.map(spanId),
      );
      assert.strictEqual(server.received[1].headers['x-nested'], '1');
    });
  });

  describe('interceptors and transformRequest', () => {
    it('sees the config the interceptors and transformRequest made: one span, final URL and method', async () => {
      const api = axios.create({ baseURL: server.origin });
      api.interceptors.request.use((config) => {
        config.url = '/rewritten';
        config.method = 'post';
        config.headers.set('x-intercepted', 'sync');
        return config;
      });
      api.interceptors.request.use(
        async (config) => {
          await new Promise((r) => setTimeout(r, 5));
          config.headers.set('x-async', 'yes');
          return config;
        },
        undefined,
        { synchronous: false },
      );
      api.interceptors.response.use((res) => ({ ...res, intercepted: true }));
      const { parent, result } = await underParent(t, () =>
        api.get('/original', {
          data: { n: 1 },
          transformRequest: [(data: { n: number }) => JSON.stringify({ n: data.n + 1 })],
          headers: { 'content-type': 'application/json' },
        }),
      );
      assert.strictEqual((result as AxiosResponse & { intercepted?: boolean }).intercepted, true);
      assert.strictEqual(axiosSpans(t).length, 1);
      assert.strictEqual(t.spans().length, 2);
      const [span] = axiosSpans(t);
      assert.strictEqual(span.operationName, 'POST');
      assert.strictEqual(tag(span, 'http.url'), `${server.origin}/rewritten`);
      assert.strictEqual(parentId(span), spanId(parent));
      const got = server.received[0];
      assert.strictEqual(got.url, '/rewritten');
      assert.strictEqual(got.headers['x-intercepted'], 'sync');
      assert.strictEqual(got.headers['x-async'], 'yes');
      assert.strictEqual(headerSpanId(got.headers['uber-trace-id']), spanId(span));
    });

    it('does not swallow a call an interceptor makes: it gets its own span, under the caller', async () => {
      const api = axios.create({ baseURL: server.origin });
      api.interceptors.request.use(async (config) => {
        const token = await axios.get(`${server.origin}/token`);
        config.headers.set('x-token-path', token.data.path);
        return config;
      });
      const { parent } = await underParent(t, () => api.get('/data'));
      const spans = axiosSpans(t);
      assert.strictEqual(spans.length, 2);
      assert.deepStrictEqual(spans.map((s) => tag(s, 'http.url')).sort(), [`${server.origin}/data`, `${server.origin}/token`]);
      for (const s of spans) assert.strictEqual(parentId(s), spanId(parent));
      const byPath = new Map(server.received.map((r) => [r.url, headerSpanId(r.headers['uber-trace-id'])]));
      for (const s of spans) assert.strictEqual(byPath.get(new URL(tag(s, 'http.url') as string).pathname), spanId(s));
    });
  });

  describe('redirects', () => {
    it('stays one span, and every hop carries its trace headers (http adapter)', async () => {
      const { parent, result } = await underParent(t, () => axios.get(`${server.origin}/redirect/3`));
      assert.strictEqual(result.status, 200);
      assert.strictEqual(axiosSpans(t).length, 1);
      assert.strictEqual(t.spans().length, 2);
      const [span] = axiosSpans(t);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.deepStrictEqual(
        server.received.map((r) => r.url),
        ['/redirect/3', '/redirect/2', '/redirect/1', '/'],
      );
      for (const r of server.received) assert.strictEqual(headerSpanId(r.headers['uber-trace-id']), spanId(span), r.url);
      assert.deepStrictEqual(logs(span), [
        { event: 'redirect', 'http.status_code': 302, 'http.url': `${server.origin}/redirect/2` },
        { event: 'redirect', 'http.status_code': 302, 'http.url': `${server.origin}/redirect/1` },
        { event: 'redirect', 'http.status_code': 302, 'http.url': `${server.origin}/` },
      ]);
    });

    it('stays one span, and every hop carries its trace headers (fetch adapter)', async () => {
      await underParent(t, () => axios.get(`${server.origin}/redirect/2`, { adapter: 'fetch' }));
      assert.strictEqual(t.spans().length, 2, 'no fetch span under the axios span');
      const [span] = axiosSpans(t);
      assert.strictEqual(server.received.length, 3);
      for (const r of server.received) assert.strictEqual(headerSpanId(r.headers['uber-trace-id']), spanId(span), r.url);
      assert.deepStrictEqual(logs(span), [
        { event: 'redirect', 'http.status_code': 302, 'http.url': `${server.origin}/redirect/1` },
        { event: 'redirect', 'http.status_code': 302, 'http.url': `${server.origin}/` },
      ]);
    });

    it('a call that makes a second request without a redirect logs none (a retrying adapter)', async () => {
      const http = axios.getAdapter('http');
      const twice = async (config: never): Promise<unknown> => {
        await http(config);
        return http(config);
      };
      await underParent(t, () => axios.get(`${server.origin}/twice`, { adapter: twice as never }));
      const [span] = axiosSpans(t);
      assert.strictEqual(server.received.length, 2);
      assert.deepStrictEqual(logs(span), []);
    });

    it('a call made later from inside the adapter (a user lookup), after the axios call settled, is its own call', async () => {
      // User code that axios runs inside the call (here: a custom `lookup`)
      // can leave work behind that runs after the call, in its async context.
      let release!: () => void;
      const settled = new Promise<void>((resolve) => (release = resolve));
      let later: Promise<void> | undefined;
      const agent = new http.Agent(); // a fresh connection, so that lookup runs
      await axios.get(`http://first.test:${server.port}/first`, {
        httpAgent: agent,
        lookup: loopbackLookup((): void => {
          later = settled.then(
            () =>
              new Promise<void>((resolve) => {
                http.get(`${server.origin}/later`, (r) => {
                  r.resume();
                  r.on('end', resolve);
                });
              }),
          );
        }) as never,
      });
      agent.destroy();
      assert.ok(later, 'lookup was called');
      release();
      await later;
      const spans = await waitForSpans(t, 2);
      const httpSpan = spans.find((s) => tag(s, 'component') === 'http');
      assert.ok(httpSpan, 'the later call has its own http span');
      assert.strictEqual(server.received[1].url, '/later');
      assert.strictEqual(headerSpanId(server.received[1].headers['uber-trace-id']), spanId(httpSpan));
    });
  });

  describe('the fetch adapter', () => {
    it("gives one axios span (no fetch span) and the server gets the axios span's id", async () => {
      const { parent, result } = await underParent(t, () => axios.post(`${server.origin}/f`, { a: 1 }, { adapter: 'fetch' }));
      assert.deepStrictEqual(result.data, { ok: true, path: '/f' });
      assert.strictEqual(t.spans().length, 2);
      const [span] = axiosSpans(t);
      assert.strictEqual(span.operationName, 'POST');
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('tags 503 as an error and passes error.response to the response hook', async () => {
      let hooked: AxiosResponseLike | undefined;
      setResponseHook('axios', (res) => (hooked = res));
      const err = await rejectionOf(axios.get(`${server.origin}/status/503`, { adapter: 'fetch' }));
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(tag(span, 'http.status_code'), 503);
      assert.strictEqual(hooked, err.response);
    });
  });

  describe('responses and the response hook', () => {
    it('hands the hook the very response the app gets (data transformed), before the span finishes', async () => {
      let hooked: AxiosResponseLike | undefined;
      setResponseHook('axios', (res, span) => {
        hooked = res;
        span.setTag('app.ok', (res.data as { ok: boolean }).ok);
      });
      const res = await axios.get(`${server.origin}/`);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(hooked, res);
      assert.strictEqual(tag(span, 'app.ok'), true);
    });

    it('4xx: the hook gets error.response, the status is tagged, the span is no error', async () => {
      let hooked: AxiosResponseLike | undefined;
      setResponseHook('axios', (res) => (hooked = res));
      const err = await rejectionOf(axios.get(`${server.origin}/status/404`));
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(hooked, err.response);
      assert.strictEqual(tag(span, 'http.status_code'), 404);
      assert.strictEqual(tag(span, 'error'), undefined);
      assert.strictEqual(logs(span).length, 0);
    });

    it('5xx: error=true, the log names the kind and holds the very rejection the app gets', async () => {
      const err = await rejectionOf(axios.get(`${server.origin}/status/502`));
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 502);
      assert.strictEqual(tag(span, 'error'), true);
      const [log] = logs(span);
      assert.strictEqual(log.event, 'error');
      assert.strictEqual(log['error.kind'], 'ERR_BAD_RESPONSE');
      assert.strictEqual(errorBehind(log['error.object']), err);
      assert.strictEqual(log.message, err.message);
    });

    it('5xx accepted by validateStatus still tags the error', async () => {
      const res = await axios.get(`${server.origin}/status/500`, { validateStatus: () => true });
      assert.strictEqual(res.status, 500);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'http_status');
    });

    it('honours isErrorStatus', async () => {
      installPatches([...PATCHES], { tracer: t.tracer, axios: { isErrorStatus: (s) => s >= 400 } });
      try {
        await rejectionOf(axios.get(`${server.origin}/status/404`));
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'error'), true);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('a transformResponse failure on a 200 marks the span with that error', async () => {
      const err = await rejectionOf(
        axios.get(`${server.origin}/`, {
          transformResponse: [
            () => {
              throw new Error('cannot parse');
            },
          ],
        }),
      );
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
    });

    it('a custom adapter: its response is the span status and goes to the hook', async () => {
      let hooked: AxiosResponseLike | undefined;
      setResponseHook('axios', (res) => (hooked = res));
      const res = await axios.get('http://no.such.host.invalid/x', {
        adapter: async (config) => ({ data: 'canned', status: 201, statusText: 'Created', headers: {}, config }),
      });
      assert.strictEqual(res.data, 'canned');
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 201);
      assert.strictEqual(tag(span, 'http.url'), 'http://no.such.host.invalid/x');
      assert.strictEqual(tag(span, 'peer.hostname'), 'no.such.host.invalid');
      assert.strictEqual(tag(span, 'peer.port'), 80, 'the default port of the scheme');
      assert.strictEqual(hooked, res);
    });
  });

  describe('failures, timeouts and cancellations', () => {
    it('a refused connection: error=true with its kind, and the app gets the same rejection as without us', async () => {
      const port = await closedPort();
      const { plain, traced } = await withAndWithout(t, () => rejectionOf(axios.get(`http://127.0.0.1:${port}/`)));
      assert.strictEqual(traced.code, 'ECONNREFUSED');
      assert.strictEqual(traced.constructor, plain.constructor);
      assert.strictEqual(traced.code, plain.code);
      assert.strictEqual(traced.message, plain.message);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(tag(span, 'http.status_code'), undefined);
      const [log] = logs(span);
      assert.strictEqual(log['error.kind'], 'ECONNREFUSED');
      assert.strictEqual(errorBehind(log['error.object']), traced);
    });

    it('a timeout (`timeout`) is an error of kind ECONNABORTED', async () => {
      const err = await rejectionOf(axios.get(`${server.origin}/slow/2000`, { timeout: 50 }));
      assert.strictEqual(err.code, 'ECONNABORTED');
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'ECONNABORTED');
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
    });

    it('a timeout with the fetch adapter is an error too', async () => {
      const err = await rejectionOf(axios.get(`${server.origin}/slow/2000`, { timeout: 50, adapter: 'fetch' }));
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
      assert.strictEqual(t.spans().length, 1);
    });

    it('a `signal` aborted in flight (AbortController) is an error of kind ERR_CANCELED', async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 30);
      const err = await rejectionOf(axios.get(`${server.origin}/slow/2000`, { signal: controller.signal }));
      assert.ok(axios.isCancel(err));
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'ERR_CANCELED');
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
    });

    it('a CancelToken cancelled in flight is an error of kind ERR_CANCELED', async () => {
      const source = axios.CancelToken.source();
      setTimeout(() => source.cancel('changed my mind'), 30);
      const err = await rejectionOf(axios.get(`${server.origin}/slow/2000`, { cancelToken: source.token }));
      assert.ok(axios.isCancel(err));
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0]['error.kind'], 'ERR_CANCELED');
      assert.strictEqual(logs(span)[0].message, 'changed my mind');
    });

    it('a request cancelled before it is dispatched sends nothing and makes no span', async () => {
      const controller = new AbortController();
      controller.abort();
      const { plain, traced } = await withAndWithout(t, () =>
        rejectionOf(axios.get(`${server.origin}/never`, { signal: controller.signal })),
      );
      assert.strictEqual(traced.constructor, plain.constructor);
      assert.strictEqual(traced.code, plain.code);
      assert.strictEqual(server.received.length, 0);
      assert.strictEqual(t.spans().length, 0);
    });

    it('a config from a call cancelled before dispatch can be sent again: one span, finished', async () => {
      const controller = new AbortController();
      controller.abort();
      const err = await rejectionOf(axios.get(`${server.origin}/again`, { signal: controller.signal }));
      assert.ok(err.config);
      const again = { ...err.config, signal: new AbortController().signal };
      await axios(again);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(t.spans().length, 1);
      assert.strictEqual(t.accounting.open.size, 0, 'a span was left open');
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
      // and replayed once the patches are gone: plain axios, no span started
      uninstallAllPatches();
      try {
        await axios(again);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
      assert.strictEqual(t.spans().length, 1);
      assert.strictEqual(t.accounting.open.size, 0, 'a span was left open');
      assert.strictEqual(server.received[1].headers['uber-trace-id'], undefined);
    });

    it('a URL axios rejects: the same rejection as without us, and a span that says so', async () => {
      const { plain, traced } = await withAndWithout(t, () => rejectionOf(axios.get('http:/no-slashes?token=hunter2')));
      assert.strictEqual(traced.constructor, plain.constructor);
      assert.strictEqual(traced.code, plain.code);
      assert.strictEqual(traced.message, plain.message);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), traced);
      assert.strictEqual(tag(span, 'http.url'), 'http://no-slashes/?token=REDACTED'); // as redactUrl reads it
    });

    it('an unknown adapter fails exactly as without us', async () => {
      const { plain, traced } = await withAndWithout(t, () => rejectionOf(axios.get(`${server.origin}/`, { adapter: 'carrier-pigeon' })));
      assert.strictEqual(traced.constructor, plain.constructor);
      assert.strictEqual(traced.message, plain.message);
      assert.strictEqual(t.spans().length, 0);
    });

    it('a retry of error.config is traced as a call of its own', async () => {
      const err = await rejectionOf(axios.get(`${server.origin}/status/404`));
      assert.ok(err.config);
      await rejectionOf(axios(err.config));
      const spans = await waitForSpans(t, 2);
      assert.strictEqual(spans.length, 2);
      assert.notStrictEqual(spanId(spans[0]), spanId(spans[1]));
      assert.deepStrictEqual(
        server.received.map((r) => headerSpanId(r.headers['uber-trace-id'])),
        spans.map(spanId),
      );
    });
  });

  describe('hooks and options', () => {
    it('calls the request hook with the final config before injection (baggage set there travels)', async () => {
      installPatches([...PATCHES], {
        tracer: t.tracer,
        axios: {
          requestHook: (span, config) => {
            span.setBaggageItem('tenant', 'acme');
            span.setTag('req.url', config.url);
          },
        },
      });
      try {
        await axios.get(`${server.origin}/hooked`);
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'req.url'), `${server.origin}/hooked`);
        assert.strictEqual(server.received[0].headers['uberctx-tenant'], 'acme');
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('contains hooks that throw: the call goes on unchanged', async () => {
      installPatches([...PATCHES], {
        tracer: t.tracer,
        axios: {
          requestHook: () => {
            throw new Error('request hook broken');
          },
          responseHook: () => {
            throw new Error('response hook broken');
          },
          isErrorStatus: () => {
            throw new Error('predicate broken');
          },
        },
      });
      try {
        const res = await axios.get(`${server.origin}/`);
        assert.strictEqual(res.status, 200);
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'http.status_code'), 200);
        assert.ok(server.received[0].headers['uber-trace-id']);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('with requireParentSpan and no current span: no span at all (not even http underneath), no headers', async () => {
      installPatches([...PATCHES], { tracer: t.tracer, axios: { requireParentSpan: true } });
      try {
        await axios.get(`${server.origin}/`);
        await axios.get(`${server.origin}/`, { adapter: 'fetch' });
        assert.strictEqual(t.spans().length, 0);
        for (const r of server.received) assert.strictEqual(r.headers['uber-trace-id'], undefined);
        await underParent(t, () => axios.get(`${server.origin}/`));
        assert.strictEqual(axiosSpans(t).length, 1);
      } finally {
        installPatches([...PATCHES], { tracer: t.tracer });
      }
    });

    it('inside suppressInstrumentation: no span, no headers, with either adapter', async () => {
      await suppressInstrumentation(() => axios.get(`${server.origin}/`));
      await suppressInstrumentation(() => axios.get(`${server.origin}/`, { adapter: 'fetch' }));
      assert.strictEqual(t.spans().length, 0);
      for (const r of server.received) assert.strictEqual(r.headers['uber-trace-id'], undefined);
    });

    it('puts each of 40 concurrent calls under its own parent', async () => {
      const parents = Array.from({ length: 40 }, (_, i) => t.tracer.startSpan(`p${i}`));
      await Promise.all(
        parents.map((p, i) =>
          spanInContext(p, async () => {
            await new Promise((r) => setTimeout(r, i % 5));
            await axios.get(`${server.origin}/c/${i}`, { adapter: i % 2 ? 'fetch' : 'http' });
          }),
        ),
      );
      parents.forEach((p) => p.finish());
      const spans = axiosSpans(t);
      assert.strictEqual(spans.length, 40);
      for (const s of spans) {
        const i = Number(/\/c\/(\d+)/.exec(tag(s, 'http.url') as string)![1]);
        assert.strictEqual(parentId(s), spanId(parents[i]), `call ${i} under the wrong parent`);
      }
      for (const r of server.received) {
        const i = Number(/\/c\/(\d+)/.exec(r.url)![1]);
        const child = spans.find((s) => spanId(s) === headerSpanId(r.headers['uber-trace-id']))!;
        assert.ok(child, `call ${i}: header of no axios span`);
        assert.strictEqual(parentId(child), spanId(parents[i]));
      }
    });
  });
});

describe('axios patch with a failing tracer', () => {
  let server: TestServer;
  before(async () => (server = await startHttpServer()));
  after(async () => {
    uninstallAllPatches();
    await server.close();
  });

  for (const method of ['startSpan', 'inject'] as const) {
    it(`the call succeeds unchanged when tracer.${method} throws`, async () => {
      const t = tracerWithBrokenMethod(method);
      installPatches([...PATCHES], { tracer: t.tracer });
      try {
        const res = await axios.get(`${server.origin}/`);
        assert.deepStrictEqual(res.data, { ok: true, path: '/' });
        const viaFetch = await axios.get(`${server.origin}/`, { adapter: 'fetch' });
        assert.strictEqual(viaFetch.status, 200);
      } finally {
        uninstallAllPatches();
        t.close();
      }
    });
  }

  it('the call succeeds unchanged when span.finish, span.log and span.setTag throw', async () => {
    const t = tracerWithBrokenSpans();
    installPatches([...PATCHES], { tracer: t.tracer });
    try {
      const err = await rejectionOf(axios.get(`${server.origin}/status/503`));
      assert.strictEqual(err.response?.status, 503);
    } finally {
      uninstallAllPatches();
      t.close();
    }
  });
});
