/**
 * Differential scenarios for Node's http and https clients: every completion
 * path an application meets (response, error status, refused connection,
 * timeout, abort, socket destroyed, body cut) and the invalid arguments that
 * Node rejects synchronously.
 */
import { once } from 'events';
import * as http from 'http';
import * as https from 'https';
import type { ClientRequest, IncomingMessage } from 'http';
import type { Recorder, Scenario } from '../helpers/differential';
import type { ScenarioEnv } from './env';

/**
 * Records what an application listening to everything on `req` (and its
 * response) sees; resolves on the request's 'close'.
 */
export function observeRequest(rec: Recorder, req: ClientRequest | undefined): Promise<void> {
  if (req === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    req.on('response', (res: IncomingMessage) => {
      rec.event('response', { status: res.statusCode, message: res.statusMessage, type: res.headers['content-type'] });
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => rec.event('res:end', body));
      res.on('aborted', () => rec.event('res:aborted'));
      res.on('error', (err) => rec.error('res:error', err));
      res.on('close', () => rec.event('res:close', { complete: res.complete }));
    });
    req.on('socket', () => rec.event('req:socket'));
    req.on('continue', () => rec.event('req:continue'));
    req.on('timeout', () => {
      rec.event('req:timeout');
      req.destroy(new Error('the app gave up waiting'));
    });
    req.on('finish', () => rec.event('req:finish'));
    req.on('error', (err) => rec.error('req:error', err));
    req.on('close', () => {
      rec.event('req:close', { destroyed: req.destroyed, writableEnded: req.writableEnded });
      resolve();
    });
  });
}

type Client = typeof http | typeof https;

/** Scenarios for one of `http` / `https` against the env's server of that protocol. */
export function httpScenarios(env: ScenarioEnv, component: 'http' | 'https'): Scenario[] {
  const client: Client = component === 'http' ? http : https;
  const origin = (): string => (component === 'http' ? env.http.origin : env.https.origin);
  const tls = (): https.RequestOptions => (component === 'https' ? { ca: env.ca } : {});
  const closed = (): string => `${component}://127.0.0.1:${env.closedPort}/`;
  const prefix = `${component}:`;

  const scenarios: Scenario[] = [
    {
      name: 'GET 200, callback form (`this`, timing of the callback)',
      async run(rec) {
        let req: ClientRequest | undefined;
        const done = new Promise<void>((resolve) => {
          req = rec.sync('get', () =>
            client.get(`${origin()}/ok?x=1`, tls(), function (this: unknown, res) {
              rec.event('callback', { thisIsReq: this === req, status: res.statusCode });
              res.resume();
              res.on('end', () => resolve());
            }),
          );
        });
        rec.event('after get() returned', { isRequest: req instanceof http.ClientRequest });
        await Promise.all([done, observeRequest(rec, req)]);
      },
    },
    {
      name: 'POST with a body, options form, awaited with events.once (promise form)',
      async run(rec) {
        const url = new URL(`${origin()}/post`);
        const req = rec.sync('request', () =>
          client.request({ ...tls(), host: url.hostname, port: url.port, path: '/post', method: 'POST', headers: { 'content-type': 'text/plain' } }),
        );
        const observed = observeRequest(rec, req);
        req?.write('hello ');
        req?.end('world', () => rec.event('end callback'));
        if (req) await rec.settle('once(response)', once(req, 'response'), ([res]) => (res as IncomingMessage).statusCode);
        await observed;
      },
    },
    {
      name: 'URL object plus options, response headers read',
      async run(rec) {
        const req = rec.sync('get', () => client.get(new URL(`${origin()}/url-object`), { ...tls(), headers: { 'x-app': '1' } }));
        await observeRequest(rec, req);
      },
    },
    {
      name: 'error reply: 500',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/status/500`, tls())));
      },
    },
    {
      name: 'error reply: 404',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/status/404`, tls())));
      },
    },
    {
      name: 'network error: connection refused',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(closed(), tls())));
      },
    },
    {
      name: 'network error: the server destroys the socket',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/destroy`, { ...tls(), agent: false })));
      },
    },
    {
      name: 'network error: the response is cut mid-body',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/partial`, { ...tls(), agent: false })));
      },
    },
    {
      name: 'timeout: the timeout option fires and the app destroys the request',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/slow/3000`, { ...tls(), timeout: 40, agent: false })));
      },
    },
    {
      name: 'abort: AbortSignal aborted while waiting for the response',
      async run(rec) {
        const ac = new AbortController();
        const req = rec.sync('get', () => client.get(`${origin()}/slow/3000`, { ...tls(), signal: ac.signal, agent: false }));
        // Once the request is sent (a TLS handshake on a loaded machine can take longer than any fixed delay),
        // so that both runs see the same events.
        req?.once('finish', () => setTimeout(() => ac.abort(), 20));
        await observeRequest(rec, req);
      },
    },
    {
      name: 'abort: a signal aborted before the call',
      async run(rec) {
        const ac = new AbortController();
        ac.abort();
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/never`, { ...tls(), signal: ac.signal })));
      },
    },
    {
      name: 'abort: req.destroy() right after the call',
      async run(rec) {
        const req = rec.sync('get', () => client.get(`${origin()}/destroyed-at-once`, tls()));
        const observed = observeRequest(rec, req);
        req?.destroy();
        await observed;
      },
    },
    {
      name: 'Expect: 100-continue (headers rendered at construction)',
      async run(rec) {
        const url = new URL(`${origin()}/expect`);
        const req = rec.sync('request', () =>
          client.request({ ...tls(), host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', headers: { expect: '100-continue' } }),
        );
        const observed = observeRequest(rec, req);
        req?.on('continue', () => req.end('body after continue'));
        await observed;
      },
    },
    {
      name: 'raw header array',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/raw`, { ...tls(), headers: ['host', new URL(origin()).host, 'x-one', '1', 'x-two', '2'] })));
      },
    },
    // Invalid arguments: Node throws synchronously (the instrumented run must throw the same).
    {
      name: 'invalid argument: not a URL',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get('not a url')));
      },
    },
    {
      name: 'invalid argument: a header value with a newline',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/`, { ...tls(), headers: { 'x-bad': 'a\nb' } })));
      },
    },
    {
      name: 'invalid argument: a header value with a newline in a raw header array',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/`, { ...tls(), headers: ['x-bad', 'a\r\nb'] })));
      },
    },
    {
      name: 'invalid argument: a header name that is not a token',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => client.get(`${origin()}/`, { ...tls(), headers: { 'bad name': 'x' } })));
      },
    },
    {
      name: 'invalid argument: a method that is not a token',
      async run(rec) {
        const url = new URL(origin());
        await observeRequest(rec, rec.sync('request', () => client.request({ ...tls(), host: url.hostname, port: url.port, method: 'GE T' })));
      },
    },
    {
      name: 'invalid argument: the wrong protocol for this module',
      async run(rec) {
        const other = component === 'http' ? 'https' : 'http';
        await observeRequest(rec, rec.sync('get', () => client.get(`${other}://127.0.0.1:${env.closedPort}/`)));
      },
    },
  ];
  if (component === 'https') {
    scenarios.push({
      name: 'TLS error: self-signed certificate not trusted',
      async run(rec) {
        await observeRequest(rec, rec.sync('get', () => https.get(`${origin()}/untrusted`, { agent: false })));
      },
    });
  }
  return scenarios.map((s) => ({ ...s, name: prefix + ' ' + s.name }));
}
