/* eslint-disable @typescript-eslint/no-require-imports */
import assert from 'assert';
import type { Span } from 'opentracing';
import { getCurrentSpan, installPatches, spanInContext } from '../src';
import { patchModuleAs } from '../src/patcher';
import type { MysqlOptions } from '../src/options';
import { CANARY, findSecret } from './helpers/canary';
import { describeClientContract, type CallForm } from './helpers/contract';
import { closedPort, MYSQL } from './helpers/db';
import { callbackForm, concurrentCallers, emitterForm, getConnectionForm, ownTags, q, selectTags, streamForm, useTracedTable, type Cb } from './helpers/mysql';
import { errorBehind, logs, parentId, spanId, tag, waitFor } from './helpers/tracing';

/** What the tests use of mysql2 (its own typings differ between 3.0 and 3.24). */
interface Command {
  on(event: string, listener: (...args: unknown[]) => void): Command;
  once(event: string, listener: (...args: unknown[]) => void): Command;
  stream(options?: object): NodeJS.ReadableStream;
}
interface Statement {
  execute(values: unknown[], cb: Cb): unknown;
  close(): void;
}
interface Connection {
  threadId: number;
  query(sql: unknown, values?: unknown, cb?: Cb): Command;
  execute(sql: unknown, values?: unknown, cb?: Cb): Command;
  prepare(sql: string, cb: (err: Error | null, statement: Statement) => void): unknown;
  beginTransaction(cb: Cb): unknown;
  commit(cb: Cb): unknown;
  end(cb?: (err?: Error) => void): unknown;
  destroy(): void;
  release(): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}
interface Pool {
  query(sql: unknown, values?: unknown, cb?: Cb): Command;
  execute(sql: unknown, values?: unknown, cb?: Cb): unknown;
  getConnection(cb: (err: Error | null, connection: Connection) => void): void;
  end(cb?: (err?: Error) => void): unknown;
}
interface PoolCluster {
  add(id: string, config: object): void;
  of(pattern: string): { query(sql: unknown, values?: unknown, cb?: Cb): Command };
  getConnection(pattern: string, cb: (err: Error | null, connection: Connection) => void): void;
  end(cb?: (err?: Error) => void): unknown;
}
interface Mysql2 {
  Connection: { prototype: object };
  Pool: { prototype: object };
  createConnection(config: object | string): Connection;
  createPool(config: object | string): Pool;
  createPoolCluster(config?: object): PoolCluster;
}
interface PromiseConnection {
  query(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  execute(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  prepare(sql: string): Promise<{ execute(values: unknown[]): Promise<[unknown, unknown]>; close(): Promise<void> | void }>;
  beginTransaction(): Promise<void>;
  commit(): Promise<void>;
  release(): void;
  end(): Promise<void>;
}
interface PromisePool {
  query(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  execute(sql: unknown, values?: unknown): Promise<[unknown, unknown]>;
  getConnection(): Promise<PromiseConnection>;
  end(): Promise<void>;
}
interface Mysql2Promise {
  createConnection(config: object): Promise<PromiseConnection>;
  createPool(config: object): PromisePool;
}

interface Version {
  label: string;
  /** The package name it is installed under (an npm alias for the older ones). */
  pkg: string;
  alias: boolean;
}

/** Newest 3.x, the first 3.x, and the last one before 3.11.5 moved the pool and connection into lib/base/. */
const VERSIONS: Version[] = [
  { label: 'mysql2 (newest 3.x)', pkg: 'mysql2', alias: false },
  { label: 'mysql2 3.0', pkg: 'mysql2-3.0', alias: true },
  { label: 'mysql2 3.11.4', pkg: 'mysql2-3.11', alias: true },
];

function load(version: Version): { lib: Mysql2; promise: Mysql2Promise } {
  // `mysql2` first: until the require hook sees package subpaths, `mysql2/promise` alone loads the core relatively.
  const lib = require(version.pkg) as Mysql2;
  const promise = require(`${version.pkg}/promise`) as Mysql2Promise;
  return { lib, promise };
}

const CONFIG = { ...MYSQL };

/** A `mysql:SELECT` form of the promise API: the rows of `call()`. */
function promiseForm(name: string, call: () => Promise<[unknown, unknown]>): CallForm {
  return {
    name,
    operationName: 'mysql:SELECT',
    run: async (observe) => {
      const [rows] = await call();
      observe();
      return rows;
    },
  };
}

function endPool(pool: { end(cb?: (err?: Error) => void): unknown } | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (pool === undefined) resolve();
    else pool.end(() => resolve());
  });
}

for (const version of VERSIONS) {
  describe(`mysql2: ${version.label}`, () => {
    const { lib, promise } = load(version);
    /** Aliased copies are not required by the name `mysql2`: the tests patch them as the registry would. */
    const patchCopy = (): void => {
      if (version.alias) patchModuleAs('mysql2', lib);
    };
    let connection: Connection;
    let pool: Pool;
    let cluster: PoolCluster;
    let pconnection: PromiseConnection;
    let ppool: PromisePool;

    const forms: CallForm[] = [
      callbackForm('connection.query(sql, callback)', (cb) => connection.query('SELECT 1 AS x', cb)),
      callbackForm('connection.query(sql, values, callback)', (cb) => connection.query('SELECT ? AS x', [1], cb)),
      callbackForm('connection.query(options, callback)', (cb) => connection.query({ sql: 'SELECT ? AS x', values: [2], rowsAsArray: true }, cb)),
      emitterForm('connection.query(sql) emitter', () => connection.query('SELECT 1 AS x UNION ALL SELECT 2')),
      streamForm(() => connection),
      callbackForm('connection.execute(sql, values, callback)', (cb) => connection.execute('SELECT ? AS x', [3], cb)),
      emitterForm('connection.execute(sql, values) emitter', () => connection.execute('SELECT ? AS x', [4])),
      {
        name: 'connection.prepare(sql) + statement.execute(values, callback)',
        operationName: 'mysql:SELECT',
        run: (observe) =>
          new Promise((resolve, reject) =>
            void connection.prepare('SELECT ? AS prepared', (err, statement) => {
              observe();
              if (err) return reject(err);
              statement.execute([5], (err2, rows) => {
                observe();
                if (err2) reject(err2);
                else resolve(rows);
              });
            }),
          ),
      },
      callbackForm('connection.query(bad sql, callback) fails', (cb) => connection.query('SELECT * FROM no_such_table_here', cb), true),
      callbackForm('pool.query(sql, values, callback)', (cb) => pool.query('SELECT ? AS x', [6], cb)),
      emitterForm('pool.query(sql) emitter', () => pool.query('SELECT 7 AS x')),
      callbackForm('pool.execute(sql, values, callback)', (cb) => pool.execute('SELECT ? AS x', [8], cb)),
      getConnectionForm('pool.getConnection + connection.query + release', (cb) => pool.getConnection(cb), 'SELECT 9 AS x'),
      callbackForm('poolCluster.of(pattern).query(sql, callback)', (cb) => cluster.of('*').query('SELECT 10 AS x', cb)),
      promiseForm('promise connection.query(sql, values)', () => pconnection.query('SELECT ? AS x', [11])),
      promiseForm('promise connection.execute(sql, values)', () => pconnection.execute('SELECT ? AS x', [12])),
      {
        name: 'promise connection.prepare + statement.execute',
        operationName: 'mysql:SELECT',
        run: async (observe) => {
          const statement = await pconnection.prepare('SELECT ? AS promised');
          const [rows] = await statement.execute([13]);
          observe();
          return rows;
        },
      },
      promiseForm('promise pool.query(sql, values)', () => ppool.query('SELECT ? AS x', [14])),
      promiseForm('promise pool.execute(sql, values)', () => ppool.execute('SELECT ? AS x', [15])),
      {
        name: 'promise pool.getConnection + connection.execute + release',
        operationName: 'mysql:SELECT',
        run: async (observe) => {
          const conn = await ppool.getConnection();
          observe();
          try {
            const [rows] = await conn.execute('SELECT ? AS x', [16]);
            observe();
            return rows;
          } finally {
            conn.release();
          }
        },
      },
    ];

    describeClientContract({
      patch: 'mysql2',
      callForms: forms.map((form) => ({
        ...form,
        run: (observe: () => void) => {
          patchCopy();
          return form.run(observe);
        },
      })),
      before: async () => {
        patchCopy();
        connection = lib.createConnection(CONFIG);
        pool = lib.createPool({ ...CONFIG, connectionLimit: 2 });
        cluster = lib.createPoolCluster();
        cluster.add('a', { ...CONFIG, connectionLimit: 1 });
        pconnection = await promise.createConnection(CONFIG);
        ppool = promise.createPool({ ...CONFIG, connectionLimit: 2 });
      },
      after: async () => {
        await new Promise<void>((resolve) => connection.end(() => resolve()));
        await endPool(pool);
        await endPool(cluster);
        await pconnection.end();
        await ppool.end();
      },
      wrapped: () => [
        [lib.Connection.prototype, 'query'],
        [lib.Connection.prototype, 'execute'],
        [lib.Connection.prototype, 'prepare'],
        [lib.Pool.prototype, 'query'],
        [lib.Pool.prototype, 'execute'],
        [lib.Pool.prototype, 'getConnection'],
      ],
      resolvedPath: {
        module: 'mysql2',
        probe: '(m) => [[m.Connection.prototype, "query"], [m.Connection.prototype, "execute"], [m.Pool.prototype, "query"], [m.Pool.prototype, "getConnection"]]',
      },
    });

    describe('spans, context and errors', function () {
      this.timeout(30000);
      const { t, db, mysqlSpans } = useTracedTable('mysql2', () => lib.createConnection(CONFIG), patchCopy);
      function withOptions(options: MysqlOptions): void {
        before(() => installPatches(['mysql2'], { tracer: t.tracer, mysql2: options }));
        after(() => installPatches(['mysql2'], { tracer: t.tracer }));
      }

      it('tags: db.type, db.instance, db.user, db.statement with literals masked, peer.*; no password anywhere', async () => {
        const withPassword = lib.createPool({ ...CONFIG, password: '', connectionLimit: 1 });
        await q(withPassword, "SELECT 'a literal' AS s, 42 AS n, ? AS p", ['given']);
        await endPool(withPassword);
        const [span] = mysqlSpans();
        assert.strictEqual(span.operationName, 'mysql:SELECT');
        assert.deepStrictEqual(ownTags(span), selectTags('mysql2'));
      });

      describe('recordRawStatement, captureParameters', () => {
        withOptions({ recordRawStatement: true, captureParameters: true, maxStatementLength: 40 });
        it('the text as written, the values as JSON, both cut at maxStatementLength', async () => {
          await q(db.conn, "SELECT 'a literal' AS s, ? AS p", ['given']);
          await q(db.conn, `SELECT '${'x'.repeat(60)}' AS long_one`);
          const [a, b] = mysqlSpans();
          assert.strictEqual(tag(a, 'db.statement'), "SELECT 'a literal' AS s, ? AS p");
          assert.strictEqual(tag(a, 'db.parameters'), '["given"]');
          assert.strictEqual(tag(b, 'db.statement'), `SELECT '${'x'.repeat(32)}…`);
        });
      });

      it('transaction helpers and the verb of each statement', async () => {
        await new Promise<void>((resolve, reject) => db.conn.beginTransaction((err) => (err ? reject(err) : resolve())));
        await q(db.conn, `INSERT INTO ${db.table} (id, secret) VALUES (?, ?)`, [1, 'one']);
        await q(db.conn, `UPDATE ${db.table} SET secret = ? WHERE id = ?`, ['uno', 1]);
        await q(db.conn, `DELETE FROM ${db.table} WHERE id = ?`, [1]);
        await new Promise<void>((resolve, reject) => db.conn.commit((err) => (err ? reject(err) : resolve())));
        assert.deepStrictEqual(
          mysqlSpans().map((s) => s.operationName),
          ['mysql:START', 'mysql:INSERT', 'mysql:UPDATE', 'mysql:DELETE', 'mysql:COMMIT'],
        );
      });

      for (const api of ['callback', 'promise'] as const) {
        it(`a pool of 1 with 20 concurrent callers (${api} API): one span each, under its own caller's span; no span for the pool's handshake`, async () => {
          const one = lib.createPool({ ...CONFIG, connectionLimit: 1 });
          const pone = api === 'promise' ? (one as unknown as { promise(): PromisePool }).promise() : undefined;
          const { parents, seen } = await concurrentCallers(t.tracer, 20, async (i) => {
            if (pone !== undefined) {
              if (i % 2 === 0) await pone.query('SELECT ? AS i, SLEEP(0.005)', [i]);
              else await pone.execute('SELECT ? AS i', [i]);
            } else if (i % 2 === 0) {
              await q(one, 'SELECT ? AS i, SLEEP(0.005)', [i]);
            } else {
              await new Promise((resolve, reject) => void one.execute('SELECT ? AS i', [i], (err, rows) => (err ? reject(err) : resolve(rows))));
            }
          });
          await endPool(one);
          const spans = mysqlSpans();
          assert.strictEqual(spans.length, 20);
          const parentIds = spans.map((s) => parentId(s)).sort();
          assert.deepStrictEqual(parentIds, parents.map((p) => spanId(p)).sort());
          for (const [parent, current] of seen) assert.strictEqual(current, parent);
        });
      }

      it('pool.getConnection waiters keep their own parent', async () => {
        const one = lib.createPool({ ...CONFIG, connectionLimit: 1 });
        const results = await Promise.all(
          Array.from({ length: 5 }, (_, i) => {
            const parent = t.tracer.startSpan(`waiter-${i}`);
            return spanInContext(parent, () =>
              new Promise<[Span, Span | undefined]>((resolve, reject) =>
                one.getConnection((err, c) => {
                  if (err) return reject(err);
                  const current = getCurrentSpan();
                  c.query('SELECT 1', () => {
                    c.release();
                    parent.finish();
                    resolve([parent, current]);
                  });
                }),
              ),
            );
          }),
        );
        await endPool(one);
        for (const [parent, current] of results) assert.strictEqual(current, parent);
        const spans = mysqlSpans();
        assert.deepStrictEqual(spans.map((s) => parentId(s)).sort(), results.map(([p]) => spanId(p)).sort());
      });

      it('errors: the app gets mysql2\'s own error; the span logs it with values and literals redacted', async () => {
        await q(db.conn, `INSERT INTO ${db.table} (id, secret) VALUES (?, ?)`, [2, CANARY]);
        const errors: Array<Error & { code?: string; errno?: number; sqlState?: string; sql?: string }> = [];
        const parent = t.tracer.startSpan('parent');
        await spanInContext(parent, async () => {
          // query() inlines the value; execute() binds it; a literal in the text; a syntax error quotes the text.
          for (const run of [
            () => q(db.conn, `INSERT INTO ${db.table} (id, secret) VALUES (?, ?)`, [3, CANARY]),
            () => new Promise((resolve, reject) => void db.conn.execute(`INSERT INTO ${db.table} (id, secret) VALUES (?, ?)`, [4, CANARY], (err, r) => (err ? reject(err) : resolve(r)))),
            () => q(db.conn, `INSERT INTO ${db.table} (id, secret) VALUES (5, '${CANARY}')`),
            () => q(db.conn, `SELECT FROM WHERE '${CANARY}'`),
            () => q(db.conn, 'SELECT FROM WHERE ?', [CANARY]),
          ]) {
            await run().then(
              () => assert.fail('expected an error'),
              (err: Error) => errors.push(err),
            );
          }
        });
        parent.finish();
        const spans = mysqlSpans().slice(1);
        assert.strictEqual(spans.length, 5);
        spans.forEach((span, i) => {
          const err = errors[i];
          assert.strictEqual(typeof err.code, 'string');
          assert.strictEqual(typeof err.errno, 'number');
          assert.strictEqual(typeof err.sqlState, 'string');
          assert.ok(err.message.includes(CANARY), 'the app\'s error is untouched');
          assert.strictEqual(tag(span, 'error'), true);
          const log = logs(span).find((l) => l.event === 'error')!;
          const field = log['error.object'] as { message: string; sql?: string; sqlMessage?: string };
          const logged = errorBehind(field) as typeof err;
          assert.notStrictEqual(logged, err, 'a redacted copy');
          assert.strictEqual(Object.getPrototypeOf(logged), Object.getPrototypeOf(err));
          assert.strictEqual(logged.code, err.code);
          assert.strictEqual(logged.errno, err.errno);
          assert.strictEqual(logged.sqlState, err.sqlState);
          assert.ok(!String(logged.sql).includes(CANARY), `sql: ${logged.sql}`);
          assert.ok(!String(log.message).includes(CANARY), `message: ${String(log.message)}`);
          assert.deepStrictEqual(findSecret(span), []);
        });
        assert.strictEqual(errors[0].code, 'ER_DUP_ENTRY');
        assert.strictEqual(errors[3].code, 'ER_PARSE_ERROR');
      });

      it('a connection refused with a password: the pool call fails, the password is nowhere', async () => {
        const port = await closedPort();
        const refused = lib.createPool({ ...CONFIG, port, password: CANARY, connectionLimit: 1 });
        const uri = lib.createPool(`mysql://root:${CANARY}@127.0.0.1:${MYSQL.port}/${MYSQL.database}?connectionLimit=1`);
        await assert.rejects(q(refused, 'SELECT 1'));
        await assert.rejects(q(uri, 'SELECT 1')); // root has no password here: access denied
        await endPool(refused);
        await endPool(uri);
        const spans = mysqlSpans();
        assert.strictEqual(spans.length, 2);
        for (const span of spans) {
          assert.strictEqual(tag(span, 'error'), true);
          assert.deepStrictEqual(findSecret(span), []);
        }
      });

      it('emitter form on a connection that dies mid-statement: the span ends with the error', async () => {
        const victim = lib.createConnection(CONFIG);
        victim.on('error', () => undefined);
        await q(victim, 'SELECT 1');
        t.clear();
        const command = victim.query('SELECT SLEEP(10)');
        command.on('error', () => undefined);
        await new Promise((r) => setTimeout(r, 100));
        await q(db.conn, `KILL ${victim.threadId}`);
        await waitFor(() => mysqlSpans().some((s) => tag(s, 'db.statement') === 'SELECT SLEEP(?)'), 5000, 'the SLEEP span');
        const span = mysqlSpans().find((s) => tag(s, 'db.statement') === 'SELECT SLEEP(?)')!;
        assert.strictEqual(tag(span, 'error'), true);
        victim.destroy();
      });

      it('emitter form on a closed connection: the span ends with the connection\'s error', async () => {
        const closed = lib.createConnection(CONFIG);
        const errors: unknown[] = [];
        closed.on('error', (err) => errors.push(err));
        await new Promise<void>((resolve) => closed.end(() => resolve()));
        t.clear();
        closed.query('SELECT 1');
        await waitFor(() => mysqlSpans().length === 1, 3000, 'the span');
        assert.strictEqual(tag(mysqlSpans()[0], 'error'), true);
        assert.strictEqual(errors.length, 1);
      });

      it('statement.execute callbacks and a statement reused: one span per execution', async () => {
        const statement = await new Promise<Statement>((resolve, reject) => db.conn.prepare('SELECT ? AS again', (err, s) => (err ? reject(err) : resolve(s))));
        for (const v of [1, 2, 3]) {
          await new Promise((resolve, reject) => void statement.execute([v], (err, rows) => (err ? reject(err) : resolve(rows))));
        }
        statement.close();
        assert.deepStrictEqual(
          mysqlSpans().map((s) => [s.operationName, tag(s, 'db.statement')]),
          [
            ['mysql:SELECT', 'SELECT ? AS again'],
            ['mysql:SELECT', 'SELECT ? AS again'],
            ['mysql:SELECT', 'SELECT ? AS again'],
          ],
        );
      });

      it('the response hook gets the results; the request hook the text and values as given', async () => {
        const requests: unknown[] = [];
        const responses: unknown[] = [];
        installPatches(['mysql2'], {
          tracer: t.tracer,
          mysql2: { requestHook: (_s, req) => requests.push(req), responseHook: (res) => responses.push(res) },
        });
        try {
          const rows = await q(db.conn, 'SELECT ? AS x', [7]);
          assert.deepStrictEqual(requests, [{ sql: 'SELECT ? AS x', values: [7] }]);
          assert.deepStrictEqual(responses, [rows]);
        } finally {
          installPatches(['mysql2'], { tracer: t.tracer });
        }
      });
    });
  });
}

