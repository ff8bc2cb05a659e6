/**
 * The contract kit (test/helpers/contract.ts) over the HTTP clients: http,
 * https and axios, each from one declaration of its call forms. What is
 * specific to each library (tags, redirects, proxies, upgrades, axios
 * interceptors and adapters) stays in its own test file.
 */
import axios from 'axios';
import * as http from 'http';
import * as https from 'https';
import type { IncomingMessage } from 'http';
import { describeClientContract, type CallForm } from './helpers/contract';
import { startHttpServer, startHttpsServer, testCertificate, type TestServer } from './helpers/servers';

type Client = typeof http | typeof https;

/** Resolves with the status once the whole response has been read; `observe` runs in the response's 'end'. */
function finished(req: http.ClientRequest, observe: () => void, end = true): Promise<number> {
  return new Promise((resolve, reject) => {
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => {
        observe();
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('error', (err) => {
      observe();
      reject(err);
    });
    if (end) req.end();
  });
}

/** Rejects on an error status, so that the kit counts the form as failing. */
async function failOnStatus(status: Promise<number>): Promise<number> {
  const s = await status;
  if (s >= 500) throw new Error(`HTTP ${s}`);
  return s;
}

function httpForms(client: Client, target: () => TestServer, tls: https.RequestOptions): CallForm[] {
  const url = (path: string): string => `${target().origin}${path}`;
  return [
    {
      name: 'get(url, options, cb)',
      operationName: 'GET',
      run: (observe) => finished(client.get(url('/a'), tls), observe, false),
    },
    {
      name: 'request(options) + end()',
      operationName: 'POST',
      run: (observe) => finished(client.request({ ...tls, host: '127.0.0.1', port: target().port, path: '/b', method: 'post' }), observe),
    },
    {
      // Node renders these headers in the request's constructor: the patch's other path.
      name: 'request(URL, options with a raw header array)',
      operationName: 'PUT',
      run: (observe) => finished(client.request(new URL(url('/c')), { ...tls, method: 'PUT', headers: ['x-form', 'raw'] }), observe),
    },
    {
      name: 'get(url) answered 503',
      operationName: 'GET',
      fails: true,
      run: (observe) => failOnStatus(finished(client.get(url('/status/503'), tls), observe, false)),
    },
  ];
}

let plain: TestServer | undefined;
let secure: TestServer | undefined;

describeClientContract({
  patch: 'http',
  before: async () => {
    plain = await startHttpServer();
  },
  after: () => plain!.close(),
  wrapped: () => [
    [http, 'request'],
    [http, 'get'],
  ],
  resolvedPath: { module: 'http', probe: '(m) => [[m, "request"], [m, "get"]]' },
  callForms: [
    ...httpForms(http, () => plain!, {}),
    {
      name: 'get(url) to a closed port',
      operationName: 'GET',
      fails: true,
      run: (observe) => finished(http.get('http://127.0.0.1:1/'), observe, false),
    },
  ],
});

describeClientContract({
  patch: 'https',
  before: async () => {
    secure = await startHttpsServer();
  },
  after: () => secure!.close(),
  wrapped: () => [
    [https, 'request'],
    [https, 'get'],
  ],
  resolvedPath: { module: 'https', probe: '(m) => [[m, "request"], [m, "get"]]' },
  callForms: httpForms(https, () => secure!, { ca: testCertificate().cert }),
});

let forAxios: TestServer | undefined;
const instance = axios.create({ timeout: 5000 });

describeClientContract({
  patch: 'axios',
  before: async () => {
    forAxios = await startHttpServer();
  },
  after: () => forAxios!.close(),
  wrapped: () => [[(axios as unknown as { Axios: { prototype: object } }).Axios.prototype, '_request']],
  resolvedPath: { module: 'axios', probe: '(m) => [[m.Axios.prototype, "_request"]]' },
  callForms: [
    {
      name: 'axios.get(url)',
      operationName: 'GET',
      run: async (observe) => {
        const res = await axios.get(`${forAxios!.origin}/a`);
        observe();
        return res;
      },
    },
    {
      name: 'axios(config), POST with a body',
      operationName: 'POST',
      run: async (observe) => {
        const res = await axios({ url: `${forAxios!.origin}/b`, method: 'post', data: { a: 1 } });
        observe();
        return res;
      },
    },
    {
      name: 'instance.get(url), fetch adapter',
      operationName: 'GET',
      run: async (observe) => {
        const res = await instance.get(`${forAxios!.origin}/c`, { adapter: 'fetch' });
        observe();
        return res;
      },
    },
    {
      name: 'axios.get(url) answered 503 (rejects)',
      operationName: 'GET',
      fails: true,
      run: (observe) =>
        axios.get(`${forAxios!.origin}/status/503`).finally(() => {
          observe();
        }),
    },
  ],
});
