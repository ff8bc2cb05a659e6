/**
 * The contract kit (test/helpers/contract.ts) over the clients of the first
 * round: pg, ioredis and fetch, each from one declaration of its call forms.
 */
import Redis from 'ioredis';
import * as net from 'net';
import * as pg from 'pg';
import * as undici from 'undici';
import { describeClientContract } from './helpers/contract';
import { PG, REDIS, uniqueName } from './helpers/db';
import { startHttpServer, type TestServer } from './helpers/servers';

const pool = new pg.Pool({ ...PG, max: 2 });
const client = new pg.Client(PG);

describeClientContract({
  patch: 'pg',
  before: async () => {
    await client.connect();
  },
  after: async () => {
    await client.end();
    await pool.end();
  },
  wrapped: () => [
    [pg.Client.prototype, 'query'],
    [Object.getPrototypeOf(pool), 'query'],
  ],
  resolvedPath: { module: 'pg', probe: '(m) => [[m.Client.prototype, "query"]]' },
  callForms: [
    {
      name: 'client.query(text, callback)',
      operationName: 'pg:SELECT',
      run: (observe) =>
        new Promise((resolve, reject) =>
          client.query('SELECT 1 AS one', (err, res) => {
            observe();
            if (err) reject(err);
            else resolve(res);
          }),
        ),
    },
    {
      name: 'client.query(text) promise',
      operationName: 'pg:SELECT',
      run: async (observe) => {
        const res = await client.query('SELECT $1::int AS n', [2]);
        observe();
        return res;
      },
    },
    {
      name: 'pool.query(text) promise',
      operationName: 'pg:SELECT',
      run: async (observe) => {
        const res = await pool.query('SELECT 3 AS n');
        observe();
        return res;
      },
    },
    {
      name: 'client.query(bad text) fails',
      operationName: 'pg:SELECT',
      fails: true,
      run: (observe) =>
        new Promise((resolve, reject) =>
          client.query('SELECT no_such_column FROM no_such_table', (err) => {
            observe();
            if (err) reject(err);
            else resolve(undefined);
          }),
        ),
    },
  ],
});

const redis = new Redis({ host: REDIS.host, port: REDIS.port, lazyConnect: true });
const key = uniqueName('contract');

describeClientContract({
  patch: 'ioredis',
  before: () => redis.connect(),
  after: async () => {
    await redis.del(key);
    await redis.quit();
  },
  wrapped: () => [[Redis.prototype, 'sendCommand']],
  resolvedPath: { module: 'ioredis', probe: '(m) => [[m.prototype, "sendCommand"]]' },
  callForms: [
    {
      name: 'redis.set(key, value, callback)',
      operationName: 'redis:SET',
      run: (observe) =>
        new Promise((resolve, reject) =>
          redis.set(key, 'v', (err, reply) => {
            observe();
            if (err) reject(err);
            else resolve(reply);
          }),
        ),
    },
    {
      name: 'redis.get(key) promise',
      operationName: 'redis:GET',
      run: async (observe) => {
        const v = await redis.get(key);
        observe();
        return v;
      },
    },
    {
      name: 'redis.pipeline().exec()',
      operationName: 'redis:PIPELINE',
      run: async (observe) => {
        const v = await redis.pipeline().get(key).incr(`${key}:n`).del(`${key}:n`).exec();
        observe();
        return v;
      },
    },
  ],
});

// fetch: Node's global fetch and the undici package, one span per fetch()
// call (redirects included) and per undici.request. The kit's checks all
// apply: undici publishes a request's end on diagnostics_channel before the
// application's read of the body resolves, and the kit waits for the spans.

let web: TestServer;

/** undici's DispatcherBase.prototype, whose `dispatch` the patch wraps (it keeps the caller's context for queued requests). */
function dispatcherBase(): object {
  let p: object | null = undici.Agent.prototype;
  while (p !== null && !(Object.prototype.hasOwnProperty.call(p, 'dispatch') && p.constructor.name === 'DispatcherBase')) p = Object.getPrototypeOf(p) as object | null;
  if (p === null) throw new Error('no DispatcherBase in undici');
  return p;
}

async function refusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

let refused = 0;

describeClientContract({
  patch: 'fetch',
  before: async () => {
    web = await startHttpServer();
    refused = await refusedPort();
  },
  after: () => web.close(),
  wrapped: () => [
    [globalThis, 'fetch'],
    [undici, 'fetch'],
    [dispatcherBase(), 'dispatch'],
  ],
  resolvedPath: { module: 'undici', probe: '(m) => [[m, "fetch"]]' },
  callForms: [
    {
      name: 'fetch(url) (global fetch)',
      operationName: 'GET',
      run: async (observe) => {
        const res = await fetch(`${web.origin}/`);
        const text = await res.text();
        observe();
        return text;
      },
    },
    {
      name: 'undici.fetch(url, { method: POST, body })',
      operationName: 'POST',
      run: async (observe) => {
        const res = await undici.fetch(`${web.origin}/`, { method: 'POST', body: 'x' });
        const text = await res.text();
        observe();
        return text;
      },
    },
    {
      name: 'undici.request(url)',
      operationName: 'GET',
      run: async (observe) => {
        const { body } = await undici.request(`${web.origin}/`);
        const text = await body.text();
        observe();
        return text;
      },
    },
    {
      name: 'fetch(url) over two redirects: one span',
      operationName: 'GET',
      run: async (observe) => {
        const res = await fetch(`${web.origin}/redirect/2`);
        const text = await res.text();
        observe();
        return text;
      },
    },
    {
      name: 'fetch(url) answered 503',
      operationName: 'GET',
      fails: true,
      run: async (observe) => {
        const res = await fetch(`${web.origin}/status/503`);
        const text = await res.text();
        observe();
        return text;
      },
    },
    {
      name: 'fetch(url) to a refused port',
      operationName: 'GET',
      fails: true,
      run: (observe) =>
        fetch(`http://127.0.0.1:${refused}/`).then(
          (res) => res.text(),
          (err: unknown) => {
            observe();
            throw err;
          },
        ),
    },
  ],
});
