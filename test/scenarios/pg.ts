/**
 * Differential scenarios for pg: queries in promise and callback form, on a
 * client and through a pool, submittables (Query, Cursor, QueryStream), and
 * the ways a query fails: a syntax error, a constraint violation, a bad
 * parameter count, a refused connection, a query timeout, a statement
 * timeout, a client ended mid-query, a null query. The promise forms also
 * count the microtask turns from the moment pg settles its promise to the
 * app's reaction.
 */
import pg from 'pg';
import QueryStream from 'pg-query-stream';
import type { EventEmitter } from 'events';
import { microtaskClock, type Recorder, type Scenario } from '../helpers/differential';
import { PG } from '../helpers/db';
import type { ScenarioEnv } from './env';

type Result = pg.QueryResult | pg.QueryResult[];

/** pg-cursor ships no types: what the scenarios use of it. */
interface CursorLike extends pg.Submittable {
  read(rows: number): Promise<unknown[]>;
  close(): Promise<void>;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Cursor = require('pg-cursor') as new (text: string, values?: unknown[]) => CursorLike;

/** What an application reads from a result. */
function view(result: Result | undefined): unknown {
  if (result === undefined) return undefined;
  const one = (r: pg.QueryResult): unknown => ({ command: r.command, rowCount: r.rowCount, rows: r.rows, fields: r.fields?.map((f) => f.name) });
  return Array.isArray(result) ? result.map(one) : one(result);
}

/** A fresh client for one run, connected; ended when `fn` is done. */
async function withClient(rec: Recorder, fn: (client: pg.Client) => Promise<void>, config: pg.ClientConfig = {}): Promise<void> {
  const client = new pg.Client({ ...PG, ...config });
  client.on('error', (err) => rec.error('client error event', err));
  client.on('end', () => rec.event('client end event'));
  await rec.settle('connect', client.connect());
  try {
    await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Promise form: records the outcome. */
function promised(rec: Recorder, where: string, p: () => Promise<Result>): Promise<unknown> {
  let promise: Promise<Result>;
  try {
    promise = p();
  } catch (err) {
    rec.error(`${where}:threw`, err);
    return Promise.resolve();
  }
  return rec.settle(where, promise, view);
}

/** Callback form: records `this`-free callback arguments and what the call returned. */
function callback(rec: Recorder, where: string, start: (cb: (err: Error | null, result?: Result) => void) => unknown): Promise<void> {
  return new Promise((resolve) => {
    let returned: unknown;
    try {
      returned = start((err, result) => {
        if (err) rec.error(`${where}:callback error`, err);
        else rec.event(`${where}:callback result`, view(result));
        resolve();
      });
    } catch (err) {
      rec.error(`${where}:threw`, err);
      resolve();
      return;
    }
    rec.event(`${where}:returned`, returned === undefined ? 'undefined' : typeof returned);
  });
}

/**
 * Promise form, timed from the moment pg settles: `call(start)` makes the
 * query and arranges for `start` to run right after pg has settled the
 * promise it built; the app's reaction records how many microtask turns it
 * came after that (an extra `.then` between pg and the app shows up here).
 */
async function timed(rec: Recorder, where: string, call: (start: () => void) => Promise<Result>): Promise<void> {
  let clock: (() => number) | undefined;
  const turns = (): unknown => clock?.() ?? 'before pg settled';
  await call(() => {
    clock ??= microtaskClock();
  }).then(
    (r) => rec.event(`${where}:resolved`, { turns: turns(), value: view(r) }),
    (err: unknown) => {
      rec.error(`${where}:rejected`, err);
      rec.event(`${where}:rejected after`, { turns: turns() });
    },
  );
}

/**
 * Calls `start` once the server's next reply that ends a query has been
 * handled: pg settles the query in its own `readyForQuery` (success) or
 * `errorMessage` (failure) listener on the connection (pg/lib/client.js
 * `_connect`), which runs before this one.
 */
function afterReply(connection: EventEmitter, start: () => void): void {
  const once = (): void => {
    connection.off('readyForQuery', once);
    connection.off('errorMessage', once);
    start();
  };
  connection.on('readyForQuery', once);
  connection.on('errorMessage', once);
}

export function pgScenarios(env: ScenarioEnv): Scenario[] {
  const scenarios: Scenario[] = [
    {
      name: 'client.query(text), promise',
      spans: 1,
      run: (rec) => withClient(rec, async (c) => void (await promised(rec, 'query', () => c.query('SELECT 1 AS n, $$a$$ AS s')))),
    },
    {
      name: 'client.query promise: microtask turns from pg settling to the app (result, config, error reply)',
      spans: 3,
      run: (rec) =>
        withClient(rec, async (c) => {
          await timed(rec, 'text', (start) => {
            afterReply(c.connection, start);
            return c.query('SELECT 1 AS n');
          });
          await timed(rec, 'config', (start) => {
            afterReply(c.connection, start);
            return c.query({ text: 'SELECT $1::int AS n', values: [2] });
          });
          await timed(rec, 'error reply', (start) => {
            afterReply(c.connection, start);
            return c.query('SELEKT 3');
          });
        }),
    },
    {
      name: 'client.query promise on an ended client: microtask turns from pg settling to the app',
      async run(rec) {
        const client = new pg.Client(PG);
        await client.connect();
        await client.end();
        await timed(rec, 'query', (start) => {
          const p = client.query('SELECT 1');
          process.nextTick(start); // after the tick in which pg fails the query (pg/lib/client.js query())
          return p;
        });
      },
    },
    {
      name: 'pool.query promise: microtask turns from pg settling to the app (result, error reply)',
      spans: 3,
      async run(rec) {
        const pool = new pg.Pool({ ...PG, max: 1 });
        pool.on('error', (err) => rec.error('pool error event', err));
        const arm = (start: () => void): void => {
          pool.once('acquire', (client: pg.PoolClient) => afterReply((client as unknown as pg.Client).connection, start));
        };
        await promised(rec, 'warm-up', () => pool.query('SELECT 0 AS n')); // a connected client waits in the pool
        await timed(rec, 'result', (start) => {
          arm(start);
          return pool.query('SELECT 1 AS n');
        });
        await timed(rec, 'error reply', (start) => {
          arm(start);
          return pool.query('SELEKT 2');
        });
        await pool.end();
      },
    },
    {
      name: 'client.query(text, values, callback)',
      run: (rec) => withClient(rec, (c) => callback(rec, 'query', (cb) => c.query('SELECT $1::int + 1 AS n', [41], cb))),
    },
    {
      name: 'client.query(config) with a name (prepared), twice',
      spans: 2,
      run: (rec) =>
        withClient(rec, async (c) => {
          const config = { name: 'safety-prepared', text: 'SELECT $1::text AS t', values: ['x'] };
          await promised(rec, 'first', () => c.query(config));
          await promised(rec, 'second', () => c.query({ ...config, values: ['y'] }));
        }),
    },
    {
      name: 'client.query(config) with rowMode array and a config callback',
      run: (rec) =>
        withClient(rec, (c) =>
          callback(rec, 'query', (cb) => c.query({ text: 'SELECT 1 AS a, 2 AS b', rowMode: 'array', callback: cb } as pg.QueryConfig & { callback: typeof cb })),
        ),
    },
    {
      name: 'a multi-statement query (array of results)',
      run: (rec) => withClient(rec, async (c) => void (await promised(rec, 'query', () => c.query('SELECT 1 AS a; SELECT 2 AS b') as unknown as Promise<Result>))),
    },
    {
      name: 'pool.query, promise and callback, max 1',
      spans: 2,
      async run(rec) {
        const pool = new pg.Pool({ ...PG, max: 1 });
        pool.on('error', (err) => rec.error('pool error event', err));
        await Promise.all([
          promised(rec, 'promise', () => pool.query('SELECT 1 AS n')),
          callback(rec, 'callback', (cb) => pool.query('SELECT 2 AS n', cb)),
        ]);
        await pool.end();
      },
    },
    {
      name: 'new Query(...) submitted, with row and end events',
      run: (rec) =>
        withClient(rec, async (c) => {
          const query = c.query(new pg.Query('SELECT generate_series(1, 3) AS n'));
          await new Promise<void>((resolve) => {
            query.on('row', (row: unknown) => rec.event('row', row));
            query.on('end', (r: pg.QueryResult) => {
              rec.event('end', r.rowCount);
              resolve();
            });
            query.on('error', (err: Error) => {
              rec.error('error', err);
              resolve();
            });
          });
        }),
    },
    {
      name: 'a Cursor read in two batches, then closed',
      run: (rec) =>
        withClient(rec, async (c) => {
          const cursor = c.query(new Cursor('SELECT generate_series(1, 5) AS n'));
          await rec.settle('read 2', cursor.read(2), (rows) => rows);
          await rec.settle('read 10', cursor.read(10), (rows) => rows);
          await rec.settle('close', cursor.close());
        }),
    },
    {
      name: 'a QueryStream read to its end',
      run: (rec) =>
        withClient(rec, async (c) => {
          const stream = c.query(new QueryStream('SELECT generate_series(1, 4) AS n', [], { batchSize: 2 }));
          const rows: unknown[] = [];
          for await (const row of stream) rows.push(row);
          rec.event('rows', rows);
        }),
    },
    {
      name: 'error reply: a syntax error (promise and callback)',
      spans: 2,
      run: (rec) =>
        withClient(rec, async (c) => {
          await promised(rec, 'promise', () => c.query('SELEKT 1'));
          await callback(rec, 'callback', (cb) => c.query('SELEKT 2', cb));
        }),
    },
    {
      name: 'error reply: a unique violation (the error quotes the row)',
      spans: 3,
      run: (rec) =>
        withClient(rec, async (c) => {
          await promised(rec, 'create', () => c.query('CREATE TEMP TABLE safety_t (id int PRIMARY KEY, v text)'));
          await promised(rec, 'insert', () => c.query('INSERT INTO safety_t VALUES (1, $1)', ['a']));
          await promised(rec, 'duplicate', () => c.query('INSERT INTO safety_t VALUES (1, $1)', ['b']));
        }),
    },
    {
      name: 'invalid argument: a bad parameter count',
      run: (rec) => withClient(rec, async (c) => void (await promised(rec, 'query', () => c.query('SELECT $1::int AS a, $2::int AS b', [1])))),
    },
    {
      name: 'invalid argument: a null query',
      spans: 0,
      run: (rec) => withClient(rec, async (c) => void (await promised(rec, 'query', () => c.query(null as unknown as string)))),
    },
    {
      name: 'network error: connection refused (connect, then a query on the failed client)',
      spans: 1,
      async run(rec) {
        const client = new pg.Client({ ...PG, port: env.closedPort });
        client.on('error', (err) => rec.error('client error event', err));
        await rec.settle('connect', client.connect());
        await promised(rec, 'query', () => client.query('SELECT 1'));
      },
    },
    {
      name: 'network error: a pool that cannot connect',
      async run(rec) {
        const pool = new pg.Pool({ ...PG, port: env.closedPort });
        await promised(rec, 'pool.query', () => pool.query('SELECT 1'));
        await pool.end();
      },
    },
    {
      name: 'timeout: query_timeout on a slow query',
      run: (rec) => withClient(rec, async (c) => void (await promised(rec, 'query', () => c.query('SELECT pg_sleep(0.3)'))), { query_timeout: 40 }),
    },
    {
      name: 'timeout: statement_timeout on the server',
      spans: 2,
      run: (rec) =>
        withClient(rec, async (c) => {
          await promised(rec, 'set', () => c.query("SET statement_timeout = '40ms'"));
          await promised(rec, 'query', () => c.query('SELECT pg_sleep(0.3)'));
        }),
    },
    {
      name: 'abort: the client is ended while a query runs',
      async run(rec) {
        const client = new pg.Client(PG);
        client.on('error', (err) => rec.error('client error event', err));
        client.on('end', () => rec.event('client end event'));
        await rec.settle('connect', client.connect());
        const query = promised(rec, 'query', () => client.query('SELECT pg_sleep(0.3)'));
        await new Promise((r) => setTimeout(r, 30));
        await rec.settle('end', client.end());
        await query;
      },
    },
    {
      name: 'a query on a client already ended',
      async run(rec) {
        const client = new pg.Client(PG);
        await client.connect();
        await client.end();
        await promised(rec, 'query', () => client.query('SELECT 1'));
      },
    },
  ];
  return scenarios.map((s) => ({ ...s, name: `pg: ${s.name}` }));
}
