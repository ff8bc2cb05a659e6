/* eslint-disable @typescript-eslint/no-require-imports */
import assert from 'assert';
import { CANARY, findSecret } from './helpers/canary';
import { describeClientContract, type CallForm } from './helpers/contract';
import { closedPort, MYSQL } from './helpers/db';
import { callbackForm, concurrentCallers, emitterForm, getConnectionForm, ownTags, q, selectTags, streamForm, useTracedTable, type Cb } from './helpers/mysql';
import { errorBehind, logs, parentId, spanId, tag } from './helpers/tracing';

interface Query {
  on(event: string, listener: (...args: unknown[]) => void): Query;
  stream(options?: object): NodeJS.ReadableStream;
}
interface Connection {
  query(sql: unknown, values?: unknown, cb?: Cb): Query;
  end(cb?: (err?: Error) => void): void;
  release(): void;
}
interface Pool {
  query(sql: unknown, values?: unknown, cb?: Cb): Query;
  getConnection(cb: (err: Error | null, connection: Connection) => void): void;
  end(cb?: (err?: Error) => void): void;
}
interface PoolCluster {
  add(id: string, config: object): void;
  of(pattern: string): { query(sql: unknown, values?: unknown, cb?: Cb): Query };
  getConnection(pattern: string, cb: (err: Error | null, connection: Connection) => void): void;
  end(cb?: (err?: Error) => void): void;
}
interface Mysql {
  createConnection(config: object | string): Connection;
  createPool(config: object | string): Pool;
  createPoolCluster(config?: object): PoolCluster;
}

const mysql = require('mysql') as Mysql;
const CONFIG = { ...MYSQL };

function end(x: { end(cb?: (err?: Error) => void): void }): Promise<void> {
  return new Promise((resolve) => x.end(() => resolve()));
}

describe('mysql (mysqljs) 2.x', () => {
  let connection: Connection;
  let pool: Pool;
  let cluster: PoolCluster;

  const forms: CallForm[] = [
    callbackForm('connection.query(sql, callback)', (cb) => connection.query('SELECT 1 AS x', cb)),
    callbackForm('connection.query(sql, values, callback)', (cb) => connection.query('SELECT ? AS x', [1], cb)),
    callbackForm('connection.query(options, callback)', (cb) => connection.query({ sql: 'SELECT ? AS x', values: [2], timeout: 5000 }, cb)),
    emitterForm('connection.query(sql) emitter', () => connection.query('SELECT 1 AS x UNION ALL SELECT 2')),
    streamForm(() => connection),
    callbackForm('connection.query(bad sql, callback) fails', (cb) => connection.query('SELECT * FROM no_such_table_here', cb), true),
    callbackForm('pool.query(sql, values, callback)', (cb) => pool.query('SELECT ? AS x', [3], cb)),
    emitterForm('pool.query(sql) emitter', () => pool.query('SELECT 4 AS x')),
    getConnectionForm('pool.getConnection + connection.query + release', (cb) => pool.getConnection(cb), 'SELECT 5 AS x'),
    callbackForm('poolCluster.of(pattern).query(sql, callback)', (cb) => cluster.of('*').query('SELECT 6 AS x', cb)),
    getConnectionForm('poolCluster.getConnection + connection.query + release', (cb) => cluster.getConnection('*', cb), 'SELECT 7 AS x'),
  ];

  describeClientContract({
    patch: 'mysql',
    callForms: forms,
    before: async () => {
      connection = mysql.createConnection(CONFIG);
      pool = mysql.createPool({ ...CONFIG, connectionLimit: 2 });
      cluster = mysql.createPoolCluster();
      cluster.add('a', { ...CONFIG, connectionLimit: 1 });
    },
    after: async () => {
      await end(connection);
      await end(pool);
      await end(cluster);
    },
    wrapped: () => {
      const Connection = require('mysql/lib/Connection') as { prototype: object };
      const Pool = require('mysql/lib/Pool') as { prototype: object };
      return [
        [Connection.prototype, 'query'],
        [Pool.prototype, 'query'],
        [Pool.prototype, 'getConnection'],
      ];
    },
    resolvedPath: {
      module: 'mysql',
      probe: '() => [[require(require.resolve("mysql/lib/Connection")).prototype, "query"], [require(require.resolve("mysql/lib/Pool")).prototype, "query"]]',
    },
  });

  describe('spans, context and errors', function () {
    this.timeout(30000);
    const { t, db, mysqlSpans } = useTracedTable('mysql', () => mysql.createConnection(CONFIG));

    it('tags: db.type, db.instance, db.user, db.statement with literals masked, peer.*', async () => {
      await q(db.conn, "SELECT 'a literal' AS s, 42 AS n, ? AS p", ['given']);
      const [span] = mysqlSpans();
      assert.strictEqual(span.operationName, 'mysql:SELECT');
      assert.deepStrictEqual(ownTags(span), selectTags('mysql'));
    });

    it('a pool of 1 with 20 concurrent callers: one span each, under its own caller\'s span; no span for the pool\'s ping', async () => {
      const one = mysql.createPool({ ...CONFIG, connectionLimit: 1 });
      const { parents, seen } = await concurrentCallers(t.tracer, 20, (i) => q(one, 'SELECT ? AS i, SLEEP(0.005)', [i]));
      await end(one);
      const spans = mysqlSpans();
      assert.strictEqual(spans.length, 20);
      assert.deepStrictEqual(spans.map((s) => parentId(s)).sort(), parents.map((p) => spanId(p)).sort());
      for (const [parent, current] of seen) assert.strictEqual(current, parent);
    });

    it('errors: the app gets mysql\'s own error; the span logs it with values and literals redacted', async () => {
      await q(db.conn, `INSERT INTO ${db.table} (id, secret) VALUES (?, ?)`, [1, CANARY]);
      t.clear();
      const errors: Array<Error & { code?: string; errno?: number; sqlState?: string }> = [];
      for (const run of [
        () => q(db.conn, `INSERT INTO ${db.table} (id, secret) VALUES (?, ?)`, [2, CANARY]),
        () => q(db.conn, `INSERT INTO ${db.table} (id, secret) VALUES (3, '${CANARY}')`),
        () => q(db.conn, 'SELECT FROM WHERE ?', [CANARY]),
      ]) {
        await run().then(
          () => assert.fail('expected an error'),
          (err: Error) => errors.push(err),
        );
      }
      const spans = mysqlSpans();
      assert.strictEqual(spans.length, 3);
      spans.forEach((span, i) => {
        const err = errors[i];
        assert.ok(err.message.includes(CANARY), 'the app\'s error is untouched');
        assert.strictEqual(typeof err.errno, 'number');
        const log = logs(span).find((l) => l.event === 'error')!;
        const logged = errorBehind(log['error.object']) as typeof err & { sql?: string };
        assert.strictEqual(Object.getPrototypeOf(logged), Object.getPrototypeOf(err));
        assert.strictEqual(logged.code, err.code);
        assert.strictEqual(logged.sqlState, err.sqlState);
        assert.ok(!String(logged.sql).includes(CANARY));
        assert.deepStrictEqual(findSecret(span), []);
      });
      assert.strictEqual(errors[0].code, 'ER_DUP_ENTRY');
    });

    it('a refused connection with a password: the pool call fails, the password is nowhere', async () => {
      const port = await closedPort();
      const refused = mysql.createPool({ ...CONFIG, port, password: CANARY, connectionLimit: 1 });
      await assert.rejects(q(refused, 'SELECT 1'));
      await end(refused);
      const [span] = mysqlSpans();
      assert.strictEqual(tag(span, 'error'), true);
      assert.deepStrictEqual(findSecret(span), []);
    });
  });
});
