import assert from 'assert';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import * as net from 'net';
import type { Span, Tracer } from 'opentracing';
import { getCurrentSpan, installPatches, setCurrentSpanFunc, setResponseHook, spanInContext, suppressInstrumentation, uninstallAllPatches } from '../src';
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
  tracerWithBrokenMethod,
  tracerWithBrokenSpans,
} from './helpers/tracing';
import { CANARY } from './helpers/canary';
import { readBody, startHttpServer, startHttpsServer, testCertificate, type TestServer } from './helpers/servers';

function get(url: string | URL, options: http.RequestOptions = {}): Promise<{ res: http.IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, options, (res) => {
        readBody(res).then((body) => resolve({ res, body }), reject);
      })
      .on('error', reject);
  });
}

/** The span id carried by an `uber-trace-id` header value. */
function headerSpanId(value: unknown): string {
  assert.strictEqual(typeof value, 'string', 'uber-trace-id header missing');
  return (value as string).split(':')[1];
}

describe('http client patch', () => {
  const t = useTracing(['http', 'https']);
  let server: TestServer;
  let tls: TestServer;
  before(async () => {
    server = await startHttpServer();
    tls = await startHttpsServer();
  });
  after(async () => {
    await server.close();
    await tls.close();
  });
  beforeEach(() => {
    server.received.length = 0;
    tls.received.length = 0;
    setResponseHook('http', null);
  });

  describe('#http.get(url, cb)', () => {
    it('gives one client span, child of the current span, with the contract tags', async () => {
      const parent = t.tracer.startSpan('parent');
      const { body } = await spanInContext(parent, () => get(`${server.origin}/a/b?x=1`));
      parent.finish();
      assert.match(body, /"ok":true/);
      const [span] = t.spans().filter((s) => s.operationName === 'GET');
      assert.ok(span, 'no GET span');
      assert.strictEqual(t.spans().length, 2);
      assert.deepStrictEqual(tags(span), {
        'span.kind': 'client',
        component: 'http',
        'http.method': 'GET',
        'http.url': `${server.origin}/a/b?x=1`,
        'peer.ipv4': '127.0.0.1',
        'peer.port': server.port,
        'http.status_code': 200,
      });
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(traceId(span), traceId(parent));
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('starts a new trace when there is no current span', async () => {
      await get(`${server.origin}/`);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(parentId(span), undefined);
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('runs its callbacks and events in the caller context, never in the client span', async () => {
      const parent = t.tracer.startSpan('parent');
      const seen: Array<Span | undefined> = [];
      await spanInContext(parent, () =>
        new Promise<void>((resolve, reject) => {
          const req = http.get(`${server.origin}/`, (res) => {
            seen.push(getCurrentSpan());
            res.on('data', () => seen.push(getCurrentSpan()));
            res.on('end', () => {
              seen.push(getCurrentSpan());
              resolve();
            });
          });
          req.on('socket', () => seen.push(getCurrentSpan()));
          req.on('error', reject);
        }),
      );
      parent.finish();
      assert.ok(seen.length >= 3);
      for (const s of seen) assert.strictEqual(s, parent);
    });

    it('keeps name and length of the wrapped functions', () => {
      const unpatched = { request: http.request, get: http.get };
      assert.strictEqual(unpatched.request.name, 'request');
      assert.strictEqual(unpatched.get.name, 'get');
      assert.strictEqual(unpatched.request.length, 3);
      assert.strictEqual(unpatched.get.length, 3);
    });
  });

  describe('#http.request(URL, options, cb)', () => {
    it('injects into a copy: the caller headers object is not mutated, the server gets both', async () => {
      const headers = Object.freeze({ 'x-app': 'yes' });
      const parent = t.tracer.startSpan('parent');
      await spanInContext(
        parent,
        () =>
          new Promise<void>((resolve, reject) => {
            const req = http.request(new URL(`${server.origin}/post`), { method: 'post', headers }, (res) => {
              res.resume();
              res.on('end', resolve);
            });
            req.on('error', reject);
            req.end('body');
          }),
      );
      parent.finish();
      assert.deepStrictEqual(Object.keys(headers), ['x-app']);
      const got = server.received[0];
      assert.strictEqual(got.method, 'POST');
      assert.strictEqual(got.headers['x-app'], 'yes');
      const span = t.spans().find((s) => s.operationName === 'POST')!;
      assert.strictEqual(tag(span, 'http.method'), 'POST');
      assert.strictEqual(headerSpanId(got.headers['uber-trace-id']), spanId(span));
    });
  });

  describe('#http.request(options, cb)', () => {
    it('traces the options-object form', async () => {
      await new Promise<void>((resolve, reject) => {
        http
          .request({ host: '127.0.0.1', port: server.port, path: '/opts', method: 'DELETE' }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject)
          .end();
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(span.operationName, 'DELETE');
      assert.strictEqual(tag(span, 'http.url'), `${server.origin}/opts`);
      assert.ok(server.received[0].headers['uber-trace-id']);
    });

    it('injects when headers are a raw array (Node renders them at construction)', async () => {
      await new Promise<void>((resolve, reject) => {
        http
          .request({ port: server.port, host: '127.0.0.1', path: '/raw', headers: ['host', `127.0.0.1:${server.port}`, 'x-raw', '1'] }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject)
          .end();
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(server.received[0].headers['x-raw'], '1');
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });

    it('injects when an Expect header is set', async () => {
      const headers = { Expect: '100-continue' };
      await new Promise<void>((resolve, reject) => {
        const req = http.request({ port: server.port, host: '127.0.0.1', path: '/expect', method: 'POST', headers }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('continue', () => req.end('x'));
        req.on('error', reject);
      });
      const [span] = await waitForSpans(t, 1);
      assert.deepStrictEqual(Object.keys(headers), ['Expect']);
      assert.strictEqual(headerSpanId(server.received[0].headers['uber-trace-id']), spanId(span));
    });
  });

  describe('#http.get(url, options, cb)', () => {
    it('redacts credentials and secret query values in http.url', async () => {
      const port = server.port;
      await get(`http://user:${CANARY}@127.0.0.1:${port}/p?token=${CANARY}&page=2&X-Amz-Signature=${CANARY}&sig=${CANARY}`);
      const [span] = await waitForSpans(t, 1);
      const url = tag(span, 'http.url') as string;
      assert.ok(!url.includes(CANARY), url);
      assert.strictEqual(url, `http://127.0.0.1:${port}/p?token=REDACTED&page=2&X-Amz-Signature=REDACTED&sig=REDACTED`);
      // the server still got the real request
      assert.strictEqual(server.received[0].url, `/p?token=${CANARY}&page=2&X-Amz-Signature=${CANARY}&sig=${CANARY}`);
    });
  });

  describe('#https.get / #https.request', () => {
    it('traces https.get with component https', async () => {
      const parent = t.tracer.startSpan('parent');
      await spanInContext(
        parent,
        () =>
          new Promise<void>((resolve, reject) => {
            https
              .get(`${tls.origin}/secure`, { ca: testCertificate().cert }, (res) => {
                res.resume();
                res.on('end', resolve);
              })
              .on('error', reject);
          }),
      );
      parent.finish();
      const span = t.spans().find((s) => s.operationName === 'GET')!;
      assert.strictEqual(tag(span, 'component'), 'https');
      assert.strictEqual(tag(span, 'http.url'), `${tls.origin}/secure`);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(headerSpanId(tls.received[0].headers['uber-trace-id']), spanId(span));
      assert.strictEqual(t.spans().filter((s) => s.operationName === 'GET').length, 1, 'https must not add an http span');
    });

    it('traces https.request with an options object', async () => {
      await new Promise<void>((resolve, reject) => {
        https
          .request({ host: '127.0.0.1', port: tls.port, path: '/x', method: 'PUT', ca: testCertificate().cert }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject)
          .end();
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(span.operationName, 'PUT');
      assert.strictEqual(tag(span, 'component'), 'https');
      assert.strictEqual(tag(span, 'peer.port'), tls.port);
    });
  });

  describe('failures', () => {
    it('tags status >= 500 as an error, not 404', async () => {
      await get(`${server.origin}/status/503`);
      await get(`${server.origin}/status/404`);
      const spans = await waitForSpans(t, 2);
      const s503 = spans.find((s) => tag(s, 'http.status_code') === 503)!;
      const s404 = spans.find((s) => tag(s, 'http.status_code') === 404)!;
      assert.strictEqual(tag(s503, 'error'), true);
      assert.strictEqual(logs(s503)[0].event, 'error');
      assert.strictEqual(tag(s404, 'error'), undefined);
    });

    it('a connection refused tags the span and the app gets the same error', async () => {
      const closed = await new Promise<number>((resolve) => {
        const s = net.createServer().listen(0, '127.0.0.1', () => {
          const port = (s.address() as AddressInfo).port;
          s.close(() => resolve(port));
        });
      });
      let seen: Error | undefined;
      let monitored: Error | undefined;
      await new Promise<void>((resolve) => {
        const req = http.get(`http://127.0.0.1:${closed}/`);
        req.on('error', (err) => {
          seen = err;
          resolve();
        });
        req.on(require('events').errorMonitor, (err: Error) => (monitored = err));
      });
      assert.strictEqual((seen as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      assert.strictEqual(seen, monitored);
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      const log = logs(span)[0];
      assert.strictEqual(log.event, 'error');
      assert.strictEqual(log['error.kind'], 'ECONNREFUSED');
      assert.strictEqual(errorBehind(log['error.object']), seen);
    });

    it('finishes the span when the request is aborted before the response', async () => {
      await new Promise<void>((resolve) => {
        const req = http.get(`${server.origin}/slow/2000`);
        req.on('error', () => resolve());
        setTimeout(() => req.destroy(), 20);
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
    });

    it('finishes the span on a timeout handled by destroy', async () => {
      await new Promise<void>((resolve) => {
        const req = http.get(`${server.origin}/slow/2000`);
        req.setTimeout(30, () => req.destroy(new Error('timed out')));
        req.on('error', () => resolve());
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0].message, 'timed out');
    });

    it('finishes the span when the server destroys the socket', async () => {
      await new Promise<void>((resolve) => {
        http.get(`${server.origin}/destroy`).on('error', () => resolve());
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'error'), true);
    });

    it('finishes the span once, as an error, when the response is cut mid-body', async () => {
      await new Promise<void>((resolve) => {
        http.get(`${server.origin}/partial`, (res) => {
          res.on('data', () => undefined);
          res.on('error', () => undefined);
          res.on('close', () => resolve());
        }).on('error', () => undefined);
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(tag(span, 'http.status_code'), 200);
      assert.strictEqual(tag(span, 'error'), true);
    });

    it('throws the same error as Node for an invalid URL, and traces nothing', () => {
      let unpatched: unknown;
      let patched: unknown;
      uninstallAllPatches();
      try {
        http.get('not a url');
      } catch (err) {
        unpatched = err;
      }
      installPatches(['http', 'https'], { tracer: t.tracer });
      try {
        http.get('not a url');
      } catch (err) {
        patched = err;
      }
      assert.ok(unpatched instanceof Error);
      assert.strictEqual((patched as Error).constructor, (unpatched as Error).constructor);
      assert.strictEqual((patched as NodeJS.ErrnoException).code, (unpatched as NodeJS.ErrnoException).code);
      assert.strictEqual((patched as Error).message, (unpatched as Error).message);
    });

    for (const [what, opts] of [
      ['a method that is not a string', { method: 5 }],
      ['a method of another type', { method: { toUpperCase: () => 'GET' } }],
      ['an invalid method token', { method: 'G ET' }],
    ] as const) {
      it(`throws the same error as Node for ${what}`, () => {
        const call = (): unknown => {
          try {
            http.request({ host: '127.0.0.1', port: server.port, ...(opts as object) }).destroy();
          } catch (err) {
            return err;
          }
          return undefined;
        };
        uninstallAllPatches();
        const unpatched = call() as NodeJS.ErrnoException;
        installPatches(['http', 'https'], { tracer: t.tracer });
        const patched = call() as NodeJS.ErrnoException;
        assert.ok(unpatched instanceof Error);
        assert.strictEqual(patched.constructor, unpatched.constructor);
        assert.strictEqual(patched.code, unpatched.code);
        assert.strictEqual(patched.message, unpatched.message);
      });
    }

    it('throws the same error as Node for an invalid header value', () => {
      const call = (): unknown => {
        try {
          http.get({ host: '127.0.0.1', port: server.port, headers: { 'x-bad': 'a\nb' } });
        } catch (err) {
          return err;
        }
        return undefined;
      };
      uninstallAllPatches();
      const unpatched = call() as NodeJS.ErrnoException;
      installPatches(['http', 'https'], { tracer: t.tracer });
      const patched = call() as NodeJS.ErrnoException;
      assert.strictEqual(unpatched.code, 'ERR_INVALID_CHAR');
      assert.strictEqual(patched.code, unpatched.code);
      assert.strictEqual(patched.message, unpatched.message);
    });
  });

  describe('an upgrade request', () => {
    it('ends its span with the 101 status when the app takes the socket', async () => {
      const up = http.createServer();
      up.on('upgrade', (_req, socket) => {
        socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
      });
      await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
      try {
        const port = (up.address() as AddressInfo).port;
        await new Promise<void>((resolve, reject) => {
          const req = http.request({ host: '127.0.0.1', port, headers: { Connection: 'Upgrade', Upgrade: 'test' } });
          req.on('upgrade', (res, socket) => {
            assert.strictEqual(res.statusCode, 101);
            socket.destroy();
            resolve();
          });
          req.on('error', reject);
          req.end();
        });
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'http.status_code'), 101);
        assert.strictEqual(tag(span, 'error'), undefined);
      } finally {
        await new Promise((r) => up.close(r));
      }
    });
  });

  describe('a response nobody reads', () => {
    it('is discarded as Node would, so the span finishes and the socket is reused', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        // No callback, no 'response' listener: Node dumps the body. Were the
        // socket pinned, the second request would never get it.
        http.get({ host: '127.0.0.1', port: server.port, path: '/unread1', agent });
        http.get({ host: '127.0.0.1', port: server.port, path: '/unread2', agent });
        const spans = await waitForSpans(t, 2);
        assert.deepStrictEqual(spans.map((s) => tag(s, 'http.status_code')), [200, 200]);
        assert.deepStrictEqual(server.received.map((r) => r.url), ['/unread1', '/unread2']);
      } finally {
        agent.destroy();
      }
    });
  });

  describe('hooks', () => {
    it('calls the response hook with the IncomingMessage before the span finishes', async () => {
      let hookRes: http.IncomingMessage | undefined;
      let appRes: http.IncomingMessage | undefined;
      setResponseHook('http', (res, span) => {
        hookRes = res;
        span.setTag('app.status', res.statusCode);
      });
      await new Promise<void>((resolve) => {
        http.get(`${server.origin}/`, (res) => {
          appRes = res;
          res.resume();
          res.on('end', resolve);
        });
      });
      const [span] = await waitForSpans(t, 1);
      assert.strictEqual(hookRes, appRes);
      assert.strictEqual(tag(span, 'app.status'), 200);
    });

    it('calls the request hook with the ClientRequest before injection (baggage set there travels)', async () => {
      installPatches(['http', 'https'], {
        tracer: t.tracer,
        http: {
          requestHook: (span, req) => {
            span.setBaggageItem('tenant', 'acme');
            span.setTag('req.path', req.path);
          },
        },
      });
      try {
        await get(`${server.origin}/hooked`);
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'req.path'), '/hooked');
        assert.strictEqual(server.received[0].headers['uberctx-tenant'], 'acme');
      } finally {
        installPatches(['http', 'https'], { tracer: t.tracer });
      }
    });

    it('contains hooks that throw: the call goes on unchanged', async () => {
      installPatches(['http', 'https'], {
        tracer: t.tracer,
        http: {
          requestHook: () => {
            throw new Error('request hook broken');
          },
          responseHook: () => {
            throw new Error('response hook broken');
          },
        },
      });
      try {
        const { res, body } = await get(`${server.origin}/`);
        assert.strictEqual(res.statusCode, 200);
        assert.match(body, /"ok":true/);
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'http.status_code'), 200);
        assert.ok(server.received[0].headers['uber-trace-id']);
      } finally {
        installPatches(['http', 'https'], { tracer: t.tracer });
      }
    });

    it('honours isErrorStatus', async () => {
      installPatches(['http', 'https'], { tracer: t.tracer, http: { isErrorStatus: (s) => s >= 400 } });
      try {
        await get(`${server.origin}/status/404`);
        const [span] = await waitForSpans(t, 1);
        assert.strictEqual(tag(span, 'error'), true);
      } finally {
        installPatches(['http', 'https'], { tracer: t.tracer });
      }
    });
  });

  describe('current span', () => {
    it('asks the custom getter on every call, even one set after install', async () => {
      const a = t.tracer.startSpan('a');
      const b = t.tracer.startSpan('b');
      let current: Span = a;
      setCurrentSpanFunc(() => current);
      await get(`${server.origin}/1`);
      current = b;
      await get(`${server.origin}/2`);
      setCurrentSpanFunc(null);
      a.finish();
      b.finish();
      const gets = t.spans().filter((s) => s.operationName === 'GET');
      assert.deepStrictEqual(gets.map(parentId), [spanId(a), spanId(b)]);
    });

    it('with requireParentSpan and no current span: no span, no headers', async () => {
      installPatches(['http', 'https'], { tracer: t.tracer, http: { requireParentSpan: true } });
      try {
        await get(`${server.origin}/`);
        assert.strictEqual(t.spans().length, 0);
        assert.strictEqual(server.received[0].headers['uber-trace-id'], undefined);
        const parent = t.tracer.startSpan('p');
        await spanInContext(parent, () => get(`${server.origin}/`));
        parent.finish();
        assert.strictEqual(t.spans().filter((s) => s.operationName === 'GET').length, 1);
      } finally {
        installPatches(['http', 'https'], { tracer: t.tracer });
      }
    });

    it('inside suppressInstrumentation: no span, no headers', async () => {
      await suppressInstrumentation(() => get(`${server.origin}/`));
      assert.strictEqual(t.spans().length, 0);
      assert.strictEqual(server.received[0].headers['uber-trace-id'], undefined);
    });

    it('puts each of 50 concurrent calls under its own parent', async () => {
      const parents = Array.from({ length: 50 }, (_, i) => t.tracer.startSpan(`p${i}`));
      await Promise.all(
        parents.map((p, i) =>
          spanInContext(p, async () => {
            await new Promise((r) => setTimeout(r, i % 7));
            await get(`${server.origin}/c/${i}`);
          }),
        ),
      );
      parents.forEach((p) => p.finish());
      const gets = t.spans().filter((s) => s.operationName === 'GET');
      assert.strictEqual(gets.length, 50);
      for (const g of gets) {
        const i = Number(/\/c\/(\d+)/.exec(tag(g, 'http.url') as string)![1]);
        assert.strictEqual(parentId(g), spanId(parents[i]), `call ${i} under the wrong parent`);
      }
      for (const r of server.received) {
        const i = Number(/\/c\/(\d+)/.exec(r.url)![1]);
        const child = gets.find((g) => spanId(g) === headerSpanId(r.headers['uber-trace-id']))!;
        assert.strictEqual(parentId(child), spanId(parents[i]));
      }
    });
  });
});

describe('http client patch with a failing tracer', () => {
  let server: TestServer;
  before(async () => (server = await startHttpServer()));
  after(async () => {
    uninstallAllPatches();
    await server.close();
  });

  for (const method of ['startSpan', 'inject'] as const) {
    it(`the call succeeds unchanged when tracer.${method} throws`, async () => {
      const t = tracerWithBrokenMethod(method);
      installPatches(['http'], { tracer: t.tracer as Tracer });
      try {
        const { res, body } = await get(`${server.origin}/`);
        assert.strictEqual(res.statusCode, 200);
        assert.match(body, /"ok":true/);
        if (method === 'inject') {
          await waitFor(() => t.spans().length === 1);
          assert.strictEqual(t.spans()[0].operationName, 'GET');
        }
      } finally {
        uninstallAllPatches();
        t.close();
      }
    });
  }

  it('the call succeeds unchanged when span.finish and span.setTag throw', async () => {
    const t = tracerWithBrokenSpans();
    installPatches(['http'], { tracer: t.tracer });
    try {
      const { res } = await get(`${server.origin}/status/503`);
      assert.strictEqual(res.statusCode, 503);
    } finally {
      uninstallAllPatches();
      t.close();
    }
  });
});
