/**
 * The five clients the benchmark drives, each against a real local server:
 * Node's `http` and axios and `fetch` to the peer process's keep-alive HTTP
 * server, pg's `SELECT 1` to PostgreSQL, ioredis' `GET` to Redis.
 *
 * The libraries are required when a client is made, not when this file
 * loads, so that a mode can set up its require hooks first.
 */
import type * as httpTypes from 'http';

export const CLIENT_NAMES = ['http', 'axios', 'fetch', 'pg', 'ioredis', 'mysql2'] as const;
export type ClientName = (typeof CLIENT_NAMES)[number];

export interface Targets {
  httpPort: number;
}

export interface Client {
  readonly name: ClientName;
  /** One complete call: request sent, whole response read. */
  call(): Promise<void>;
  close(): Promise<void>;
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
  }
}
