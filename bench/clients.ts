/**
 * The clients the benchmark drives, each against a real local server:
 * Node's `http` and axios and `fetch` to the peer process's keep-alive HTTP
 * server, `https` to its TLS server (a self-signed certificate made at run
 * time), pg's `SELECT 1` to PostgreSQL, ioredis' and node-redis' `GET` to
 * Redis, mysql2's and mysql's `SELECT 1` to MariaDB, amqplib's
 * `sendToQueue` on a channel without publisher confirms to RabbitMQ,
 * BullMQ's `Queue.add` (Redis), and the AWS SDK v3's S3 `GetObject` of a
 * small object from s3rver (in the peer process).
 *
 * The libraries are required when a client is made, not when this file
 * loads, so that a mode can set up its require hooks first.
 */
import type * as httpTypes from 'http';

export const CLIENT_NAMES = [
  'http',
  'https',
  'axios',
  'fetch',
  'pg',
  'ioredis',
  'mysql2',
  'mysql',
  'redis',
  'amqplib',
  'bullmq',
  'aws-sdk',
] as const;
export type ClientName = (typeof CLIENT_NAMES)[number];

/**
 * The numbers of calls in flight a client is measured at. amqplib's
 * `sendToQueue` is synchronous (it writes into the channel's buffer and
 * returns), so "in flight" means nothing for it; s3rver answers from the
 * file system in milliseconds, and 32 in flight measure its queueing, not
 * the client.
 */
export function concurrencyFor(client: ClientName, all: readonly number[]): number[] {
  return client === 'amqplib' || client === 'aws-sdk' ? all.filter((n) => n === 1) : [...all];
}

export interface Targets {
  httpPort: number;
  httpsPort: number;
  /** The peer's self-signed certificate (PEM), trusted by the https client. */
  httpsCa: string;
  /** s3rver's port in the peer process, and a bucket holding `BENCH_S3_KEY`. */
  s3Port: number;
  s3Bucket: string;
}

export const BENCH_S3_KEY = 'bench-object';

export interface Client {
  readonly name: ClientName;
  /** One complete call: request sent, whole response read. */
  call(): Promise<void>;
  close(): Promise<void>;
  /**
   * Told when the instrumentation has just been switched on or off, before
   * the calls of that state: a client whose OpenTelemetry instrumentation
   * wraps objects when they are made, not prototypes, uses objects made in
   * that state (see mysqlClient).
   */
  prepare?(instrumented: boolean): Promise<void>;
}

/* eslint-disable @typescript-eslint/no-require-imports */

function httpClient(targets: Targets): Client {
  const http = require('http') as typeof httpTypes;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const options: httpTypes.RequestOptions = { host: '127.0.0.1', port: targets.httpPort, path: '/bench', agent };
  return {
    name: 'http',
    call: () =>
      new Promise<void>((resolve, reject) => {
        const req = http.get(options, (res) => {
          res.on('error', reject);
          res.on('end', resolve);
          res.resume();
        });
        req.on('error', reject);
      }),
    close: async () => agent.destroy(),
  };
}

function axiosClient(targets: Targets): Client {
  const http = require('http') as typeof httpTypes;
  const axios = require('axios') as typeof import('axios').default;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const instance = axios.create({ baseURL: `http://127.0.0.1:${targets.httpPort}`, httpAgent: agent, proxy: false });
  return {
    name: 'axios',
    call: async () => {
      await instance.get('/bench');
    },
    close: async () => agent.destroy(),
  };
}

function fetchClient(targets: Targets): Client {
  const url = `http://127.0.0.1:${targets.httpPort}/bench`;
  return {
    name: 'fetch',
    call: async () => {
      const res = await fetch(url);
      await res.arrayBuffer();
    },
    // Node's global fetch keeps its connections in undici's global dispatcher,
    // whose idle sockets do not keep the process alive.
    close: async () => undefined,
  };
}

async function pgClient(): Promise<Client> {
  const pg = require('pg') as typeof import('pg');
  const pool = new pg.Pool({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test', max: 8 });
  await pool.query('SELECT 1');
  return {
    name: 'pg',
    call: async () => {
      await pool.query('SELECT 1');
    },
    close: () => pool.end(),
  };
}

async function ioredisClient(): Promise<Client> {
  const Redis = require('ioredis') as typeof import('ioredis').default;
  const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  const key = `otbench:${process.pid}:${Date.now()}`;
  await redis.set(key, 'value');
  return {
    name: 'ioredis',
    call: async () => {
      await redis.get(key);
    },
    close: async () => {
      await redis.del(key);
      await redis.quit();
    },
  };
}

async function mysql2Client(): Promise<Client> {
  const mysql = require('mysql2') as typeof import('mysql2');
  const pool = mysql.createPool({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test', connectionLimit: 8 });
  const query = (): Promise<void> => new Promise((resolve, reject) => pool.query('SELECT 1', (err) => (err ? reject(err) : resolve())));
  await query();
  return {
    name: 'mysql2',
    call: query,
    close: () => new Promise((resolve) => pool.end(() => resolve())),
  };
}

function httpsClient(targets: Targets): Client {
  const https = require('https') as typeof import('https');
  const agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca: targets.httpsCa });
  const options: import('https').RequestOptions = { host: '127.0.0.1', port: targets.httpsPort, path: '/bench', agent, servername: 'localhost' };
  return {
    name: 'https',
    call: () =>
      new Promise<void>((resolve, reject) => {
        const req = https.get(options, (res) => {
          res.on('error', reject);
          res.on('end', resolve);
          res.resume();
        });
        req.on('error', reject);
      }),
    close: async () => agent.destroy(),
  };
}

/**
 * OpenTelemetry's instrumentation-mysql wraps `createPool` and the pools it
 * makes (their `query` and `getConnection`), not mysql's prototypes: a pool
 * made while it is disabled is never traced by it, and one made while it is
 * enabled stays wrapped after `disable()`. So each state calls its own pool,
 * made in that state (this package patches the prototypes: both pools are
 * traced, or not, with the state).
 */
async function mysqlClient(): Promise<Client> {
  const mysql = require('mysql') as typeof import('mysql');
  const make = async (): Promise<import('mysql').Pool> => {
    const made = mysql.createPool({ host: '127.0.0.1', port: 3306, user: 'root', database: 'test', connectionLimit: 8 });
    await new Promise<void>((resolve, reject) => made.query('SELECT 1', (err) => (err ? reject(err) : resolve())));
    return made;
  };
  const pools = new Map<boolean, import('mysql').Pool>();
  let pool = await make();
  pools.set(false, pool);
  return {
    name: 'mysql',
    call: () => new Promise((resolve, reject) => pool.query('SELECT 1', (err) => (err ? reject(err) : resolve()))),
    prepare: async (instrumented) => {
      let own = pools.get(instrumented);
      if (own === undefined) pools.set(instrumented, (own = await make()));
      pool = own;
    },
    close: () => Promise.all([...pools.values()].map((p) => new Promise<void>((resolve) => p.end(() => resolve())))).then(() => undefined),
  };
}

async function redisClient(): Promise<Client> {
  const { createClient } = require('redis') as { createClient(o: object): { connect(): Promise<unknown>; get(k: string): Promise<unknown>; set(k: string, v: string): Promise<unknown>; del(k: string): Promise<unknown>; quit(): Promise<unknown> } };
  const client = createClient({ socket: { host: '127.0.0.1', port: 6379 } });
  await client.connect();
  const key = `otbench:noderedis:${process.pid}:${Date.now()}`;
  await client.set(key, 'value');
  return {
    name: 'redis',
    call: async () => {
      await client.get(key);
    },
    close: async () => {
      await client.del(key);
      await client.quit();
    },
  };
}

async function amqplibClient(): Promise<Client> {
  const amqp = require('amqplib') as typeof import('amqplib');
  // noDelay: small frames would otherwise wait on Nagle's algorithm.
  const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672', { noDelay: true });
  // A plain channel: no publisher confirms, so a publish is the client's work alone.
  const ch = await conn.createChannel();
  const queue = `otbench_amqp_${process.pid}_${Date.now()}`;
  // The broker keeps the last 1000 messages only: nothing consumes them.
  await ch.assertQueue(queue, { autoDelete: false, arguments: { 'x-max-length': 1000 } });
  const body = Buffer.from('x');
  const drained = (): Promise<void> => new Promise((resolve) => ch.once('drain', () => resolve()));
  return {
    name: 'amqplib',
    call: async () => {
      if (!ch.sendToQueue(queue, body)) await drained();
      // One turn of the event loop, so that the frames are written within the block that made them.
      await new Promise<void>((resolve) => setImmediate(resolve));
    },
    close: async () => {
      await ch.deleteQueue(queue);
      await conn.close();
    },
  };
}

async function bullmqClient(): Promise<Client> {
  const { Queue } = require('bullmq') as typeof import('bullmq');
  const queue = new Queue(`otbench-${process.pid}-${Date.now()}`, { connection: { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null } });
  await queue.waitUntilReady();
  let n = 0;
  return {
    name: 'bullmq',
    call: async () => {
      // No worker: the jobs wait in Redis until close() removes the queue. removeOnComplete does not apply to jobs never processed.
      await queue.add('bench', { n: n++ });
    },
    close: async () => {
      await queue.obliterate({ force: true });
      await queue.close();
    },
  };
}

async function awsSdkClient(targets: Targets): Promise<Client> {
  const { S3Client, GetObjectCommand } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  const http = require('http') as typeof httpTypes;
  const { NodeHttpHandler } = require('@smithy/node-http-handler') as { NodeHttpHandler: new (o: object) => unknown };
  const s3 = new S3Client({
    region: 'eu-west-3',
    endpoint: `http://127.0.0.1:${targets.s3Port}`,
    forcePathStyle: true,
    // s3rver knows this access key id and checks no signature.
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) }) as never,
  });
  const get = async (): Promise<void> => {
    const res = await s3.send(new GetObjectCommand({ Bucket: targets.s3Bucket, Key: BENCH_S3_KEY }));
    await res.Body!.transformToByteArray();
  };
  await get();
  return { name: 'aws-sdk', call: get, close: async () => s3.destroy() };
}

/* eslint-enable @typescript-eslint/no-require-imports */

export async function makeClient(name: ClientName, targets: Targets): Promise<Client> {
  switch (name) {
    case 'http':
      return httpClient(targets);
    case 'axios':
      return axiosClient(targets);
    case 'fetch':
      return fetchClient(targets);
    case 'pg':
      return pgClient();
    case 'ioredis':
      return ioredisClient();
    case 'mysql2':
      return mysql2Client();
    case 'https':
      return httpsClient(targets);
    case 'mysql':
      return mysqlClient();
    case 'redis':
      return redisClient();
    case 'amqplib':
      return amqplibClient();
    case 'bullmq':
      return bullmqClient();
    case 'aws-sdk':
      return awsSdkClient(targets);
  }
}
