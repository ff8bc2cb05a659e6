/**
 * The contract kit (test/helpers/contract.ts) over the clients of the first
 * round: pg and ioredis, each from one declaration of its call forms.
 */
import Redis from 'ioredis';
import * as pg from 'pg';
import { describeClientContract } from './helpers/contract';
import { PG, REDIS, uniqueName } from './helpers/db';

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
