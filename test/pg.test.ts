import assert from 'assert';
import type { Span } from 'opentracing';
import * as pg from 'pg';
import QueryStream from 'pg-query-stream';
import { getCurrentSpan, installPatches, setResponseHook, spanInContext, suppressInstrumentation, uninstallAllPatches } from '../src';
import type { PgOptions } from '../src/options';
import { CANARY, findSecret } from './helpers/canary';
import { isWrapped } from '../src/wrap';
import { closedPort, PG, uniqueName, unhandled } from './helpers/db';
import {
  createTestTracer,
  errorBehind,
  logs,
  parentId,
  spanId,
  tag,
  tags,
  traceId,
  useTracing,
  waitFor,
  type JaegerSpan,
  type TestTracer,
} from './helpers/tracing';

/** pg-cursor ships no types: what the tests use of it. */
interface CursorLike extends pg.Submittable {
  read(rows: number, cb: (err: Error | undefined, rows: unknown[]) => void): void;
  read(rows: number): Promise<unknown[]>;
  close(): Promise<void>;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Cursor = require('pg-cursor') as new (text: string, values?: unknown[]) => CursorLike;


/** Where the canary occurs in any of `spans` (the shared scanner of test/helpers/canary.ts). */
function leaks(spans: JaegerSpan[]): string[] {
  return spans.flatMap((s) => findSecret(s).map((where) => `${s.operationName}: ${where}`));
}

function only(t: TestTracer, op: string): JaegerSpan {
  const found = t.spans().filter((s) => s.operationName === op);
  assert.strictEqual(found.length, 1, `expected one ${op} span, got ${t.spans().map((s) => s.operationName).join(', ')}`);
  return found[0];
}

function pgSpans(t: TestTracer): JaegerSpan[] {
  return t.spans().filter((s) => tag(s, 'component') === 'pg');
}

function contractTags(statement: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'span.kind': 'client',
    component: 'pg',
    'db.type': 'sql',
    'db.statement': statement,
    'db.instance': PG.database,
    'db.user': PG.user,
    'peer.ipv4': PG.host,
    'peer.port': PG.port,
    ...extra,
  };
}

/** Reconfigures the pg patch for one describe block, then puts the plain options back. */
function withPgOptions(t: TestTracer, pgOptions: PgOptions): void {
  before(() => installPatches(['pg'], { tracer: t.tracer, pg: pgOptions }));
  after(() => installPatches(['pg'], { tracer: t.tracer }));
}

/** A `.then` made on a native promise (`.catch` and `.finally` call `.then`): on which promise, and the promise it made. */
interface ThenCall {
  on: unknown;
  made: unknown;
}

/** Calls `fn` and records every `.then` made on a native promise while it runs. */
function recordThens<T>(fn: () => T): { result: T; thens: ThenCall[] } {
  const then = Promise.prototype.then;
  const thens: ThenCall[] = [];
  Promise.prototype.then = function (this: Promise<unknown>, ...args: Parameters<typeof then>) {
    const made = then.apply(this, args);
    thens.push({ on: this, made });
    return made;
  } as typeof then;
  try {
    return { result: fn(), thens };
  } finally {
    Promise.prototype.then = then;
  }
}

/**
 * How the promise `p` a call returned came to be: how many `.then` links lead
 * to it from a promise that was constructed (pg's own `.catch` makes one), and
 * how many `.then` were already made on it when the app got it.
 */
function lineage(p: unknown, thens: ThenCall[]): { links: number; subscribed: number } {
  let links = 0;
  for (let at = thens.find((c) => c.made === p); at !== undefined; at = thens.find((c) => c.made === at!.on)) links++;
  return { links, subscribed: thens.filter((c) => c.on === p).length };
}

/** Calls `query` once without instrumentation and once with it: the lineage of what each call returned. */
async function lineageOffAndOn(query: () => Promise<unknown>): Promise<{ off: ReturnType<typeof lineage>; on: ReturnType<typeof lineage> }> {
  const off = suppressInstrumentation(() => recordThens(query));
  const on = recordThens(query);
  assert.ok(off.result instanceof Promise && on.result instanceof Promise);
  await Promise.all([off.result, on.result]);
  return { off: lineage(off.result, off.thens), on: lineage(on.result, on.thens) };
}

describe('pg patch', () => {
  const t = useTracing(['pg']);
  const table = uniqueName('ot_pg');
  let client: pg.Client;

  before(async () => {
    client = new pg.Client(PG);
    await suppressInstrumentation(async () => {
      await client.connect();
      await client.query(`CREATE TABLE ${table} (id int PRIMARY KEY, name text)`);
      await client.query(`INSERT INTO ${table} SELECT g, 'row ' || g FROM generate_series(1, 50) g`);
    });
  });
  after(async () => {
    await suppressInstrumentation(async () => {
      await client.query(`DROP TABLE IF EXISTS ${table}`);
      await client.end();
    });
  });
  beforeEach(() => setResponseHook('pg', null));

  describe('#client.query(text)', () => {
    it('gives one client span, child of the current span, with the contract tags', async () => {
      const parent = t.tracer.startSpan('parent');
      const res = await spanInContext(parent, () => client.query(`SELECT count(*)::int AS n FROM ${table}`));
      parent.finish();
      assert.deepStrictEqual(res.rows, [{ n: 50 }]);
      const span = only(t, 'pg:SELECT');
      assert.deepStrictEqual(tags(span), contractTags(`SELECT count(*)::int AS n FROM ${table}`));
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(traceId(span), traceId(parent));
      assert.strictEqual(t.spans().length, 2);
    });

    it('starts a new trace when there is no current span', async () => {
      await client.query('SELECT 1');
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(parentId(span), undefined);
    });

    it('continues in the caller context after await, never in the client span', async () => {
      const parent = t.tracer.startSpan('parent');
      const seen = await spanInContext(parent, async () => {
        await client.query('SELECT 1');
        return getCurrentSpan();
      });
      parent.finish();
      assert.strictEqual(seen, parent);
    });

    it('names the operation after the statement verb, past comments, blanks and parentheses', async () => {
      await client.query('  -- leading comment\n /* block /* nested */ */ select 1');
      await client.query('(SELECT 1) UNION (SELECT 2)');
      await client.query(`WITH picked AS (SELECT id FROM ${table} WHERE id < 3) UPDATE ${table} SET name = name WHERE id IN (SELECT id FROM picked)`);
      await client.query('WITH x AS (SELECT 1 AS a) SELECT a FROM x');
      assert.deepStrictEqual(
        pgSpans(t).map((s) => s.operationName),
        ['pg:SELECT', 'pg:SELECT', 'pg:UPDATE', 'pg:SELECT'],
      );
    });

    it('masks the literals of db.statement and removes its comments by default; placeholders stay', async () => {
      await client.query("/* app:report */ SELECT 1, $1::text, 'it''s', E'a\\'b', $tag$body$tag$, 2.5e3 AS t1", ['x']);
      assert.strictEqual(tag(only(t, 'pg:SELECT'), 'db.statement'), 'SELECT ?, $1::text, ?, ?, ?, ? AS t1');
    });

    it('masks a password and a token: they never reach a tag', async () => {
      const role = `ot_role_${process.pid}`;
      await client.query(`CREATE ROLE ${role} PASSWORD 'hunter2-secret'`);
      try {
        await client.query(`SELECT name FROM ${table} WHERE name = 'token-secret'`);
      } finally {
        await client.query(`DROP ROLE ${role}`);
      }
      const statements = pgSpans(t).map((s) => tag(s, 'db.statement'));
      assert.deepStrictEqual(statements, [
        `CREATE ROLE ${role} PASSWORD ?`,
        `SELECT name FROM ${table} WHERE name = ?`,
        `DROP ROLE ${role}`,
      ]);
    });
  });

  describe('#client.query(text, values)', () => {
    it('does not record the parameter values by default', async () => {
      const res = await client.query(`SELECT name FROM ${table} WHERE id = $1`, [7]);
      assert.deepStrictEqual(res.rows, [{ name: 'row 7' }]);
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(tag(span, 'db.parameters'), undefined);
      assert.strictEqual(tag(span, 'db.statement'), `SELECT name FROM ${table} WHERE id = $1`);
    });
  });

  describe('#client.query(text, values, callback)', () => {
    it('runs the callback in the caller context, after the span has finished, with pg result', async () => {
      const parent = t.tracer.startSpan('parent');
      const { current, finishedBefore, rows } = await spanInContext(
        parent,
        () =>
          new Promise<{ current: Span | undefined; finishedBefore: boolean; rows: unknown[] }>((resolve, reject) => {
            client.query(`SELECT id FROM ${table} WHERE id = $1`, [3], (err, res) => {
              if (err) return reject(err);
              resolve({ current: getCurrentSpan(), finishedBefore: pgSpans(t).length === 1, rows: res.rows });
            });
          }),
      );
      parent.finish();
      assert.strictEqual(current, parent);
      assert.ok(finishedBefore, 'the span finishes before the callback runs');
      assert.deepStrictEqual(rows, [{ id: 3 }]);
      assert.strictEqual(parentId(only(t, 'pg:SELECT')), spanId(parent));
    });

    it('returns what pg returns (undefined) and passes the error to the callback', async () => {
      const { ret, err } = await new Promise<{ ret: unknown; err: Error | null }>((resolve) => {
        const ret: unknown = client.query('SELEC 1', [], (e) => resolve({ ret, err: e }));
      });
      assert.strictEqual(ret, undefined);
      assert.strictEqual((err as { code?: string }).code, '42601');
      const span = only(t, 'pg:SELEC');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
    });
  });

  describe('#client.query(text, callback)', () => {
    it('traces the callback form without values', async () => {
      const parent = t.tracer.startSpan('parent');
      const current = await spanInContext(
        parent,
        () => new Promise<Span | undefined>((resolve, reject) => client.query('SELECT 2 AS two', (err) => (err ? reject(err) : resolve(getCurrentSpan())))),
      );
      parent.finish();
      assert.strictEqual(current, parent);
      assert.strictEqual(parentId(only(t, 'pg:SELECT')), spanId(parent));
    });
  });

  describe('#client.query(config)', () => {
    it('traces a config object (named prepared statement, rowMode) without changing it', async () => {
      const config = { name: uniqueName('stmt'), text: `SELECT id, name FROM ${table} WHERE id = $1`, values: [5], rowMode: 'array' as const };
      const before = { ...config };
      const res = await client.query(config);
      assert.deepStrictEqual(res.rows, [[5, 'row 5']]);
      assert.deepStrictEqual(config, before);
      assert.strictEqual(tag(only(t, 'pg:SELECT'), 'db.statement'), config.text);
    });

    it('traces config.callback, run in the caller context', async () => {
      const parent = t.tracer.startSpan('parent');
      const current = await spanInContext(
        parent,
        () =>
          new Promise<Span | undefined>((resolve, reject) => {
            client.query({ text: 'SELECT 3', callback: (err: Error | null) => (err ? reject(err) : resolve(getCurrentSpan())) } as never);
          }),
      );
      parent.finish();
      assert.strictEqual(current, parent);
      assert.strictEqual(parentId(only(t, 'pg:SELECT')), spanId(parent));
    });
  });

  describe('#client.query(new Query(...))', () => {
    it('ends the span when the submitted Query ends; row and end events run in the caller context', async () => {
      const parent = t.tracer.startSpan('parent');
      const seen: Array<Span | undefined> = [];
      const query = new pg.Query(`SELECT id FROM ${table} WHERE id <= 3 ORDER BY id`);
      const ret = spanInContext(parent, () => client.query(query));
      assert.strictEqual(ret, query, 'pg returns the submittable itself');
      const ids: unknown[] = [];
      await new Promise<void>((resolve, reject) => {
        query.on('row', (row: { id: number }) => {
          seen.push(getCurrentSpan());
          ids.push(row.id);
        });
        query.on('end', () => {
          seen.push(getCurrentSpan());
          resolve();
        });
        query.on('error', reject);
      });
      parent.finish();
      assert.deepStrictEqual(ids, [1, 2, 3]);
      assert.strictEqual(seen.length, 4);
      for (const s of seen) assert.strictEqual(s, parent);
      assert.strictEqual(parentId(only(t, 'pg:SELECT')), spanId(parent));
    });

    it('tags the error of a failing Query, which still reaches its error listener', async () => {
      const query = new pg.Query('SELECT * FROM no_such_table_ot');
      client.query(query);
      const err = await new Promise<Error>((resolve) => query.on('error', resolve));
      assert.strictEqual((err as { code?: string }).code, '42P01');
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
      assert.strictEqual(logs(span)[0]['error.kind'], '42P01');
    });

    it('a row that fails to parse fails the Query and its span with the parser error', async () => {
      const failing = new Error('row parse failure');
      const types = {
        getTypeParser: () => () => {
          throw failing;
        },
      };
      const query = new pg.Query({ text: 'SELECT 1 AS one', types } as never);
      client.query(query);
      const err = await new Promise<Error>((resolve) => query.on('error', resolve));
      assert.strictEqual(err, failing);
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), failing);
      assert.deepStrictEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    });

    it('traces a Query given its own callback', async () => {
      const res = await new Promise<pg.QueryResult>((resolve, reject) => {
        client.query(new pg.Query('SELECT 4 AS four', [], ((err: Error | null, r: pg.QueryResult) => (err ? reject(err) : resolve(r))) as never));
      });
      assert.deepStrictEqual(res.rows, [{ four: 4 }]);
      only(t, 'pg:SELECT');
    });
  });

  describe('#client.query(new Cursor(...))', () => {
    it('ends the span when the cursor is read to its end and closed; reads run in the caller context', async () => {
      const parent = t.tracer.startSpan('parent');
      const seen: Array<Span | undefined> = [];
      let total = 0;
      await spanInContext(parent, async () => {
        const cursor = client.query(new Cursor(`SELECT id FROM ${table} ORDER BY id`) as CursorLike);
        for (;;) {
          const rows = await new Promise<unknown[]>((resolve, reject) =>
            cursor.read(20, (err, r) => {
              seen.push(getCurrentSpan());
              return err ? reject(err) : resolve(r);
            }),
          );
          total += rows.length;
          if (rows.length === 0) break;
        }
        await cursor.close();
      });
      parent.finish();
      assert.strictEqual(seen.length, 4);
      assert.strictEqual(total, 50);
      for (const s of seen) assert.strictEqual(s, parent);
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(tag(span, 'db.statement'), `SELECT id FROM ${table} ORDER BY id`);
    });

    it('ends the span when the cursor is closed early', async () => {
      const cursor = client.query(new Cursor(`SELECT id FROM ${table} ORDER BY id`) as CursorLike);
      const rows = await cursor.read(5);
      assert.strictEqual(rows.length, 5);
      assert.strictEqual(pgSpans(t).length, 0, 'still open while rows remain');
      await cursor.close();
      await waitFor(() => pgSpans(t).length === 1, 2000, 'the cursor span');
      assert.strictEqual(tag(only(t, 'pg:SELECT'), 'error'), undefined);
      // The connection is usable afterwards.
      assert.deepStrictEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    });

    it('tags a failing cursor and gives its read the same error', async () => {
      const cursor = client.query(new Cursor('SELECT 1/0') as CursorLike);
      const err = await cursor.read(1).then(
        () => assert.fail('expected a division error'),
        (e: Error) => e,
      );
      assert.strictEqual((err as { code?: string }).code, '22012');
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
    });
  });

  describe('#client.query(new QueryStream(...))', () => {
    it('ends the span when the stream ends; data events run in the caller context', async () => {
      const parent = t.tracer.startSpan('parent');
      const stream = spanInContext(parent, () => client.query(new QueryStream(`SELECT id FROM ${table} ORDER BY id`, [], { batchSize: 7 })));
      const seen = new Set<Span | undefined>();
      let n = 0;
      await new Promise<void>((resolve, reject) => {
        stream.on('data', () => {
          n++;
          seen.add(getCurrentSpan());
        });
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      parent.finish();
      assert.strictEqual(n, 50);
      assert.deepStrictEqual([...seen], [parent]);
      await waitFor(() => pgSpans(t).length === 1, 2000, 'the stream span');
      assert.strictEqual(parentId(only(t, 'pg:SELECT')), spanId(parent));
    });

    it('ends the span when the stream is destroyed early', async () => {
      const stream = client.query(new QueryStream(`SELECT id FROM ${table} ORDER BY id`, [], { batchSize: 5 }));
      await new Promise<void>((resolve) => {
        stream.once('data', () => {
          stream.destroy();
          resolve();
        });
      });
      await new Promise((resolve) => stream.once('close', resolve));
      await waitFor(() => pgSpans(t).length === 1, 2000, 'the destroyed stream span');
      assert.deepStrictEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    });

    it('tags a failing stream, which emits the same error', async () => {
      const stream = client.query(new QueryStream('SELECT * FROM no_such_table_ot'));
      const err = await new Promise<Error>((resolve) => {
        stream.on('error', resolve);
        stream.resume();
      });
      await waitFor(() => pgSpans(t).length === 1, 2000, 'the failed stream span');
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
    });
  });

  describe('errors reach the application unchanged', () => {
    it('a syntax error: same object, same code, span tagged', async () => {
      const err = await client.query('SELEKT 1').then(
        () => assert.fail('expected a syntax error'),
        (e: Error) => e,
      );
      assert.strictEqual((err as { code?: string }).code, '42601');
      assert.ok(err instanceof pg.DatabaseError);
      const span = only(t, 'pg:SELEKT');
      assert.strictEqual(tag(span, 'error'), true);
      const [log] = logs(span);
      assert.strictEqual(log.event, 'error');
      assert.strictEqual(errorBehind(log['error.object']), err);
      assert.strictEqual(log['error.kind'], '42601');
      assert.strictEqual(log.message, err.message);
    });

    it('a constraint violation; the row values in its detail are not logged', async () => {
      const err = await client.query(`INSERT INTO ${table} (id, name) VALUES (1, 'dup')`).then(
        () => assert.fail('expected a unique violation'),
        (e: Error) => e,
      );
      const e = err as pg.DatabaseError;
      assert.strictEqual(e.code, '23505');
      assert.strictEqual(e.detail, 'Key (id)=(1) already exists.', 'the app gets the error untouched');
      const [log] = logs(only(t, 'pg:INSERT'));
      const logged = errorBehind(log['error.object']) as pg.DatabaseError;
      assert.notStrictEqual(logged, err);
      assert.ok(logged instanceof pg.DatabaseError);
      assert.strictEqual(logged.detail, 'REDACTED');
      assert.strictEqual(logged.code, '23505');
      assert.strictEqual(logged.constraint, e.constraint);
      assert.strictEqual(log['error.kind'], '23505');
      assert.strictEqual(log.message, e.message);
      assert.strictEqual(log.stack, e.stack);
    });

    it('a query on a closed client', async () => {
      const c = new pg.Client(PG);
      await c.connect();
      await c.end();
      t.clear();
      const err = await c.query('SELECT 1').then(
        () => assert.fail('expected a closed-client error'),
        (e: Error) => e,
      );
      assert.match(err.message, /not queryable/);
      assert.strictEqual(errorBehind(logs(only(t, 'pg:SELECT'))[0]['error.object']), err);
    });

    it('a server that went away mid-query (backend terminated)', async () => {
      const victim = new pg.Client(PG);
      await victim.connect();
      const clientErrors: Error[] = [];
      victim.on('error', (e) => clientErrors.push(e));
      const pid = ((await victim.query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid;
      t.clear();
      const pending = victim.query('SELECT pg_sleep(10)').then(
        () => assert.fail('expected the query to fail'),
        (e: Error) => e,
      );
      await waitFor(() => false, 100).catch(() => undefined);
      await suppressInstrumentation(() => client.query('SELECT pg_terminate_backend($1)', [pid]));
      const err = await pending;
      assert.strictEqual((err as { code?: string }).code, '57P01');
      const span = only(t, 'pg:SELECT');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
      await victim.end().catch(() => undefined);
    });

    it('a rejection nobody handles stays unhandled, reported for the very promise the app got', async () => {
      let got: Promise<unknown> | undefined;
      const seen = await unhandled(() => {
        got = client.query('SELEKT 1');
      });
      assert.strictEqual(seen.length, 1);
      assert.strictEqual(seen[0].promise, got);
      assert.strictEqual((seen[0].reason as { code?: string }).code, '42601');
      assert.strictEqual(errorBehind(logs(only(t, 'pg:SELEKT'))[0]['error.object']), seen[0].reason);
    });

    it('a pool.query rejection nobody handles stays unhandled too', async () => {
      const pool = new pg.Pool({ ...PG, max: 1 });
      try {
        let got: Promise<unknown> | undefined;
        const seen = await unhandled(() => {
          got = pool.query('SELEKT 2');
        });
        assert.strictEqual(seen.length, 1);
        assert.strictEqual(seen[0].promise, got);
        assert.strictEqual((seen[0].reason as { code?: string }).code, '42601');
        assert.strictEqual(errorBehind(logs(only(t, 'pg:SELEKT'))[0]['error.object']), seen[0].reason);
      } finally {
        await pool.end();
      }
    });

    it('a synchronous throw (null query) is the same as without instrumentation', () => {
      assert.throws(() => client.query(null as never), /Client was passed a null or undefined query/);
      assert.strictEqual(t.accounting.open.size, 0);
    });
  });

  describe('promise form: the app gets pg\'s own promise', () => {
    // pg returns `new Promise(...).catch(...)` (pg/lib/client.js query(),
    // pg-pool/index.js promisify): one `.then` link from the promise it built,
    // and nothing subscribed to it yet. The patch must neither continue it nor
    // subscribe to it.
    const expected = { links: 1, subscribed: 0 };

    it('client.query(text), client.query(text, values), client.query(config)', async () => {
      for (const query of [
        () => client.query('SELECT 1'),
        () => client.query('SELECT $1::int AS n', [1]),
        () => client.query({ text: 'SELECT 2' }),
      ]) {
        const { off, on } = await lineageOffAndOn(query);
        assert.deepStrictEqual(off, expected, 'pg itself');
        assert.deepStrictEqual(on, off);
      }
      assert.strictEqual(pgSpans(t).length, 3);
    });

    it('a failing client.query', async () => {
      const { off, on } = await lineageOffAndOn(() => client.query('SELEKT 1').catch((e: Error) => e));
      // The `.catch` above is the app's own, made on what the query returned.
      assert.deepStrictEqual(off, { links: 2, subscribed: 0 });
      assert.deepStrictEqual(on, off);
      assert.strictEqual(tag(only(t, 'pg:SELEKT'), 'error'), true);
    });

    it('pool.query(text)', async () => {
      const pool = new pg.Pool({ ...PG, max: 1 });
      try {
        await pool.query('SELECT 0'); // a client is ready: the measured calls only queue
        t.clear();
        const { off, on } = await lineageOffAndOn(() => pool.query('SELECT 1'));
        assert.deepStrictEqual(off, expected, 'pg-pool itself');
        assert.deepStrictEqual(on, off);
        assert.strictEqual(pgSpans(t).length, 1);
      } finally {
        await pool.end();
      }
    });

    it('the promise class of the client and of the pool is back as it was once query() has returned', async () => {
      const holders: Array<[object, string, () => Promise<unknown>]> = [];
      holders.push([client, '_Promise', () => client.query('SELECT 1')]);
      const pool = new pg.Pool({ ...PG, max: 1 });
      holders.push([pool, 'Promise', () => pool.query('SELECT 2')]);
      // A class found on the prototype, not on the object itself.
      class InheritedPromise extends pg.Client {}
      const inherited = new InheritedPromise(PG);
      delete (inherited as unknown as Record<string, unknown>)._Promise;
      (InheritedPromise.prototype as unknown as Record<string, unknown>)._Promise = Promise;
      await inherited.connect();
      holders.push([inherited, '_Promise', () => inherited.query('SELECT 3')]);
      try {
        for (const [holder, key, query] of holders) {
          const before = Object.getOwnPropertyDescriptor(holder, key);
          const pending = query();
          assert.deepStrictEqual(Object.getOwnPropertyDescriptor(holder, key), before, key);
          await pending;
          assert.deepStrictEqual(Object.getOwnPropertyDescriptor(holder, key), before, key);
        }
        assert.strictEqual((inherited as unknown as Record<string, unknown>)._Promise, Promise);
        assert.strictEqual(pgSpans(t).length, 3);
      } finally {
        await pool.end();
        await inherited.end();
      }
    });

    it('a client whose promise class cannot be replaced: pg\'s promise is continued, the span still ends', async () => {
      const c = new pg.Client(PG);
      await c.connect();
      try {
        Object.defineProperty(c, '_Promise', { value: Promise, writable: false });
        const res = await c.query('SELECT 1 AS n');
        assert.deepStrictEqual(res.rows, [{ n: 1 }]);
        const err = await c.query('SELEKT 1').then(
          () => assert.fail('expected a syntax error'),
          (e: Error) => e,
        );
        assert.strictEqual((err as { code?: string }).code, '42601');
        assert.strictEqual(tag(only(t, 'pg:SELECT'), 'error'), undefined);
        assert.strictEqual(errorBehind(logs(only(t, 'pg:SELEKT'))[0]['error.object']), err);
      } finally {
        await c.end();
      }
    });
  });

  describe('#pool.query()', () => {
    let pool: pg.Pool;
    before(() => {
      pool = new pg.Pool({ ...PG, max: 1 });
    });
    after(() => pool.end());

    it('gives exactly one span per logical query (pool.query calls client.query inside)', async () => {
      const parent = t.tracer.startSpan('parent');
      const res = await spanInContext(parent, () => pool.query(`SELECT name FROM ${table} WHERE id = $1`, [9]));
      parent.finish();
      assert.deepStrictEqual(res.rows, [{ name: 'row 9' }]);
      assert.strictEqual(pgSpans(t).length, 1);
      const span = only(t, 'pg:SELECT');
      assert.deepStrictEqual(tags(span), contractTags(`SELECT name FROM ${table} WHERE id = $1`));
      assert.strictEqual(parentId(span), spanId(parent));
    });

    it('max: 1, two concurrent queries from two parents: each span under its own parent, callbacks in their own context', async () => {
      const a = t.tracer.startSpan('a');
      const b = t.tracer.startSpan('b');
      const run = (parent: Span, text: string) =>
        spanInContext(
          parent,
          () =>
            new Promise<Span | undefined>((resolve, reject) => {
              pool.query(text, (err) => (err ? reject(err) : resolve(getCurrentSpan())));
            }),
        );
      const [inA, inB] = await Promise.all([run(a, 'SELECT pg_sleep(0.05), 1 AS a'), run(b, 'SELECT 2 AS b')]);
      a.finish();
      b.finish();
      assert.strictEqual(inA, a);
      assert.strictEqual(inB, b, 'b waited for the client a released, and still runs in its own context');
      const spans = pgSpans(t);
      assert.strictEqual(spans.length, 2);
      const spanA = spans.find((s) => String(tag(s, 'db.statement')).includes('? AS a'))!;
      const spanB = spans.find((s) => String(tag(s, 'db.statement')).includes('? AS b'))!;
      assert.strictEqual(parentId(spanA), spanId(a));
      assert.strictEqual(parentId(spanB), spanId(b));
      assert.strictEqual(tag(spanB, 'peer.port'), PG.port, 'the waiting query is tagged with the client it got');
    });

    it('max: 1, pool.connect() waiting for a client: the callback runs in the caller context and its queries are its children', async () => {
      const a = t.tracer.startSpan('a');
      const b = t.tracer.startSpan('b');
      const held = await pool.connect();
      const waiting = spanInContext(
        b,
        () =>
          new Promise<Span | undefined>((resolve, reject) => {
            pool.connect((err, c, release) => {
              if (err || !c) return reject(err);
              const seen = getCurrentSpan();
              c.query('SELECT 5 AS five', (qErr) => {
                release();
                return qErr ? reject(qErr) : resolve(seen);
              });
            });
          }),
      );
      await spanInContext(a, () => held.query('SELECT 6 AS six'));
      held.release();
      const seen = await waiting;
      a.finish();
      b.finish();
      assert.strictEqual(seen, b);
      const spans = pgSpans(t);
      assert.strictEqual(parentId(spans.find((s) => tag(s, 'db.statement') === 'SELECT ? AS six')!), spanId(a));
      assert.strictEqual(parentId(spans.find((s) => tag(s, 'db.statement') === 'SELECT ? AS five')!), spanId(b));
    });

    it('tags the error when the pool cannot connect, and the app gets the same error', async () => {
      const port = await closedPort();
      const bad = new pg.Pool({ ...PG, port, max: 1 });
      try {
        const err = await bad.query('SELECT 1').then(
          () => assert.fail('expected a connection error'),
          (e: Error) => e,
        );
        assert.strictEqual((err as { code?: string }).code, 'ECONNREFUSED');
        const span = only(t, 'pg:SELECT');
        assert.strictEqual(tag(span, 'error'), true);
        assert.strictEqual(tag(span, 'peer.port'), port);
        assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
      } finally {
        await bad.end();
      }
    });

    it('the span goes to the client.query pg-pool makes for it, not to a query made meanwhile (from the pool\'s log)', async () => {
      // pg-pool calls its `log` option right before its own client.query, inside the stretch where the pool call is handed over.
      let inLog: Promise<unknown> | undefined;
      const logging = new pg.Pool({
        ...PG,
        max: 1,
        log: (message: string) => {
          if (message === 'dispatching query' && inLog === undefined) inLog = client.query('SELECT 2 AS from_log');
        },
      });
      try {
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, () => logging.query('SELECT 1 AS from_pool'));
        await inLog;
        parent.finish();
        const spans = pgSpans(t);
        assert.deepStrictEqual(spans.map((s) => tag(s, 'db.statement')).sort(), ['SELECT ? AS from_log', 'SELECT ? AS from_pool']);
        for (const span of spans) assert.strictEqual(parentId(span), spanId(parent));
      } finally {
        await logging.end();
      }
    });

    it('pool.query(text, values, callback): callback form with the same results', async () => {
      const res = await new Promise<pg.QueryResult>((resolve, reject) =>
        pool.query('SELECT $1::text AS v', ['x'], (err, r) => (err ? reject(err) : resolve(r))),
      );
      assert.deepStrictEqual(res.rows, [{ v: 'x' }]);
      assert.strictEqual(pgSpans(t).length, 1);
    });
  });

  describe('options', () => {
    describe('captureParameters: true, maxStatementLength: 40', () => {
      withPgOptions(t, { captureParameters: true, maxStatementLength: 40 });

      it('logs the error as it is, detail included', async () => {
        const err = await client.query(`INSERT INTO ${table} (id, name) VALUES (2, 'dup')`).then(
          () => assert.fail('expected a unique violation'),
          (e: Error) => e,
        );
        assert.strictEqual(errorBehind(logs(only(t, 'pg:INSERT'))[0]['error.object']), err);
      });

      it('records the values as JSON and cuts long statements', async () => {
        const text = `SELECT $1::text AS a, $2::int AS b, $3::bytea AS c, 'padding padding padding' AS d`;
        await client.query(text, ['x', 2, Buffer.from('abc')]);
        const span = only(t, 'pg:SELECT');
        assert.strictEqual(tag(span, 'db.parameters'), '["x",2,"<3 bytes>"]');
        assert.strictEqual(tag(span, 'db.statement'), `${text.slice(0, 40)}…`);
      });
    });

    describe('maxStatementLength: 40, literals masked', () => {
      withPgOptions(t, { maxStatementLength: 40 });

      it('masks a long statement as far as the tag shows, and cuts it', async () => {
        const text = `SELECT ARRAY[${Array.from({ length: 2000 }, (_, i) => `'v${i}'`).join(', ')}]`;
        await client.query(text);
        assert.strictEqual(tag(only(t, 'pg:SELECT'), 'db.statement'), `SELECT ARRAY[${'?, '.repeat(9)}…`);
      });

      it('a statement whose literals shrink below the cut is masked whole', async () => {
        const text = `SELECT '${'x'.repeat(500)}' AS a, 1 AS b`;
        await client.query(text);
        assert.strictEqual(tag(only(t, 'pg:SELECT'), 'db.statement'), 'SELECT ? AS a, ? AS b');
      });
    });

    describe('recordRawStatement: true', () => {
      withPgOptions(t, { recordRawStatement: true });

      it('records the statement as written, comments and literals included', async () => {
        const text = "/* app:report */ SELECT 1, 'x' AS t1";
        await client.query(text);
        assert.strictEqual(tag(only(t, 'pg:SELECT'), 'db.statement'), text);
      });
    });

    describe('requireParentSpan: true', () => {
      withPgOptions(t, { requireParentSpan: true });

      it('traces nothing without a current span, and still traces with one', async () => {
        await client.query('SELECT 1');
        await new Promise<void>((resolve, reject) => client.query('SELECT 1', (err) => (err ? reject(err) : resolve())));
        assert.strictEqual(pgSpans(t).length, 0);
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, () => client.query('SELECT 1'));
        parent.finish();
        assert.strictEqual(pgSpans(t).length, 1);
      });
    });

    describe('traceConnect: true', () => {
      withPgOptions(t, { traceConnect: true });

      it('adds a pg:connect span for client.connect(), child of the current span', async () => {
        const parent = t.tracer.startSpan('parent');
        const c = new pg.Client(PG);
        await spanInContext(parent, () => c.connect());
        parent.finish();
        await c.end();
        const span = only(t, 'pg:connect');
        assert.strictEqual(parentId(span), spanId(parent));
        assert.deepStrictEqual(tags(span), {
          'span.kind': 'client',
          component: 'pg',
          'db.type': 'sql',
          'db.instance': PG.database,
          'db.user': PG.user,
          'peer.ipv4': PG.host,
          'peer.port': PG.port,
        });
      });

      it('tags a failed connect; the callback gets the same error in the caller context', async () => {
        const port = await closedPort();
        const parent = t.tracer.startSpan('parent');
        const c = new pg.Client({ ...PG, port });
        const { err, current } = await spanInContext(
          parent,
          () => new Promise<{ err: Error; current: Span | undefined }>((resolve) => c.connect((e: Error) => resolve({ err: e, current: getCurrentSpan() }))),
        );
        parent.finish();
        assert.strictEqual(current, parent);
        assert.strictEqual((err as { code?: string }).code, 'ECONNREFUSED');
        const span = only(t, 'pg:connect');
        assert.strictEqual(errorBehind(logs(span)[0]['error.object']), err);
      });

      it('a pool that connects a client for pool.query gives a pg:connect span next to the query span', async () => {
        const pool = new pg.Pool({ ...PG, max: 1 });
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, () => pool.query('SELECT 1'));
        parent.finish();
        await pool.end();
        assert.strictEqual(parentId(only(t, 'pg:connect')), spanId(parent));
        assert.strictEqual(parentId(only(t, 'pg:SELECT')), spanId(parent));
      });
    });

    it('traceConnect is off by default', async () => {
      const c = new pg.Client(PG);
      await c.connect();
      await c.end();
      assert.strictEqual(pgSpans(t).length, 0);
    });
  });

  describe('secrets', () => {
    withPgOptions(t, { traceConnect: true });

    it('a password in a connection string or a config, and parameter values, never reach a tag or a log', async () => {
      const port = await closedPort();
      const withUrl = new pg.Client({ connectionString: `postgres://${PG.user}:${CANARY}@${PG.host}:${PG.port}/${PG.database}` });
      await withUrl.connect();
      await withUrl.query('SELECT 1');
      await withUrl.query('SELEKT 1').catch(() => undefined);
      await withUrl.end();
      const pool = new pg.Pool({ ...PG, password: CANARY, max: 1 });
      await pool.query('SELECT $1::text AS secret', [CANARY]);
      await pool.end();
      const refused = new pg.Pool({ connectionString: `postgres://${PG.user}:${CANARY}@127.0.0.1:${port}/${PG.database}`, max: 1 });
      await refused.query('SELECT 1').catch(() => undefined);
      await refused.end();
      const spans = t.spans();
      assert.ok(spans.length >= 7, `expected the spans of every call, got ${spans.length}`);
      assert.ok(spans.some((s) => tag(s, 'error') === true));
      assert.deepStrictEqual(leaks(spans), [], 'the password leaked into a span');
    });
  });

  describe('hooks', () => {
    it('the response hook gets the pg result before the span finishes; the request hook gets the query config', async () => {
      const seen: Array<{ rows: unknown[]; command: string; finishedSpans: number }> = [];
      const requests: unknown[] = [];
      installPatches(['pg'], {
        tracer: t.tracer,
        pg: {
          responseHook: (res, span) => {
            const r = res as pg.QueryResult;
            seen.push({ rows: r.rows, command: r.command, finishedSpans: pgSpans(t).length });
            span.setTag('app.rows', r.rowCount ?? -1);
          },
          requestHook: (span, config) => {
            requests.push(config);
            span.setTag('app.text', String(config.text));
          },
        },
      });
      try {
        const config = { text: 'SELECT 1 AS one' };
        await client.query(config);
        await client.query('SELECT $1::int AS two', [2]);
      } finally {
        installPatches(['pg'], { tracer: t.tracer });
      }
      assert.deepStrictEqual(seen, [
        { rows: [{ one: 1 }], command: 'SELECT', finishedSpans: 0 },
        { rows: [{ two: 2 }], command: 'SELECT', finishedSpans: 1 },
      ]);
      assert.deepStrictEqual(requests, [{ text: 'SELECT 1 AS one' }, { text: 'SELECT $1::int AS two', values: [2] }]);
      const [first] = pgSpans(t);
      assert.strictEqual(tag(first, 'app.rows'), 1);
      assert.strictEqual(tag(first, 'app.text'), 'SELECT 1 AS one');
    });

    it('setResponseHook replaces the hook at run time; a throwing hook never reaches the app', async () => {
      let calls = 0;
      setResponseHook('pg', () => {
        calls++;
        throw new Error('hook failure');
      });
      const res = await client.query('SELECT 7 AS seven');
      setResponseHook('pg', null);
      await client.query('SELECT 8');
      assert.deepStrictEqual(res.rows, [{ seven: 7 }]);
      assert.strictEqual(calls, 1);
      assert.strictEqual(pgSpans(t).length, 2);
    });
  });

  describe('safety', () => {
    it('keeps name and length of the wrapped methods', () => {
      const proto = pg.Client.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
      assert.ok(isWrapped(proto.query));
      assert.strictEqual(proto.query.name, 'query');
      assert.strictEqual(proto.query.length, 3);
      assert.strictEqual(proto.connect.name, 'connect');
      assert.strictEqual(proto.connect.length, 1);
      const pool = Object.getPrototypeOf(pg.Pool.prototype) as Record<string, (...a: unknown[]) => unknown>;
      assert.ok(isWrapped(pool.query));
      assert.strictEqual(pool.query.name, 'query');
      assert.strictEqual(pool.query.length, 3);
    });

    it('traces nothing under suppressInstrumentation', async () => {
      await suppressInstrumentation(() => client.query('SELECT 1'));
      assert.strictEqual(pgSpans(t).length, 0);
    });
  });
});

describe('pg patch with a failing tracer', () => {
  const broken = createTestTracer();
  let client: pg.Client;
  before(async () => {
    broken.tracer.startSpan = () => {
      throw new Error('tracer down');
    };
    installPatches(['pg'], { tracer: broken.tracer });
    client = new pg.Client(PG);
    await client.connect();
  });
  after(async () => {
    await client.end();
    uninstallAllPatches();
    broken.close();
  });

  it('queries go on, untraced, in every form', async () => {
    assert.deepStrictEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    const rows = await new Promise<unknown[]>((resolve, reject) => client.query('SELECT 2 AS two', (err, r) => (err ? reject(err) : resolve(r.rows))));
    assert.deepStrictEqual(rows, [{ two: 2 }]);
    const pool = new pg.Pool({ ...PG, max: 1 });
    assert.deepStrictEqual((await pool.query('SELECT 3 AS three')).rows, [{ three: 3 }]);
    await pool.end();
  });
});

describe('pg patch: late require and uninstall', () => {
  const t = createTestTracer();
  after(() => {
    uninstallAllPatches();
    t.close();
  });

  it('patches a pg loaded after install, and uninstall puts back the very same functions', async () => {
    const originals = { query: pg.Client.prototype.query, connect: pg.Client.prototype.connect };
    const poolProto = Object.getPrototypeOf(pg.Pool.prototype) as { query: unknown; connect: unknown };
    const poolOriginals = { query: poolProto.query, connect: poolProto.connect };
    installPatches(['pg'], { tracer: t.tracer });
    assert.notStrictEqual(pg.Client.prototype.query, originals.query);

    // A fresh copy of pg and pg-pool, required after install.
    const saved = new Map<string, NodeJS.Module>();
    for (const key of Object.keys(require.cache)) {
      if (/[\\/]node_modules[\\/](pg|pg-pool)[\\/]/.test(key)) {
        saved.set(key, require.cache[key]!);
        delete require.cache[key];
      }
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fresh = require('pg') as typeof pg;
      assert.notStrictEqual(fresh.Client, pg.Client, 'a fresh copy');
      assert.ok(isWrapped(fresh.Client.prototype.query));
      const freshPool = Object.getPrototypeOf(fresh.Pool.prototype) as { query: unknown };
      assert.ok(isWrapped(freshPool.query));
      const freshOriginal = (fresh.Client.prototype.query as unknown as Record<symbol, unknown>)[Symbol.for('opentracing-instrumentation.original')];

      const c = new fresh.Client(PG);
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      assert.strictEqual(t.spans().filter((s) => s.operationName === 'pg:SELECT').length, 1);

      uninstallAllPatches();
      assert.strictEqual(fresh.Client.prototype.query, freshOriginal);
      assert.ok(!isWrapped(freshPool.query));
    } finally {
      for (const key of Object.keys(require.cache)) {
        if (/[\\/]node_modules[\\/](pg|pg-pool)[\\/]/.test(key)) delete require.cache[key];
      }
      for (const [key, mod] of saved) require.cache[key] = mod;
    }
    assert.strictEqual(pg.Client.prototype.query, originals.query);
    assert.strictEqual(pg.Client.prototype.connect, originals.connect);
    assert.strictEqual(poolProto.query, poolOriginals.query);
    assert.strictEqual(poolProto.connect, poolOriginals.connect);
  });
});
