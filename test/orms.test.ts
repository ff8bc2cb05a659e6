/* eslint-disable @typescript-eslint/no-require-imports */
/**
 * ORMs and query builders over the drivers: knex, Sequelize and TypeORM on
 * PostgreSQL (pg) and MariaDB (mysql2). No ORM-level patch: each statement
 * an ORM sends must be exactly one driver span, under the span that was
 * current where the application made the call.
 */
import assert from 'assert';
import type { Span } from 'opentracing';
import { getCurrentSpan, spanInContext } from '../src';
import { MYSQL, PG, uniqueName } from './helpers/db';
import { parentId, spanId, tag, useTracing, type JaegerSpan, type TestTracer } from './helpers/tracing';

interface Db {
  label: string;
  /** The driver patch, and the `component` of its spans. */
  patch: 'pg' | 'mysql2';
  knex: object;
  sequelize: object;
  typeorm: object;
}

const DBS: Db[] = [
  {
    label: 'PostgreSQL (pg)',
    patch: 'pg',
    knex: { client: 'pg', connection: { ...PG } },
    sequelize: { dialect: 'postgres', host: PG.host, port: PG.port, username: PG.user, database: PG.database },
    typeorm: { type: 'postgres', host: PG.host, port: PG.port, username: PG.user, database: PG.database },
  },
  {
    label: 'MariaDB (mysql2)',
    patch: 'mysql2',
    knex: { client: 'mysql2', connection: { ...MYSQL } },
    sequelize: { dialect: 'mysql', host: MYSQL.host, port: MYSQL.port, username: MYSQL.user, database: MYSQL.database },
    typeorm: { type: 'mariadb', host: MYSQL.host, port: MYSQL.port, username: MYSQL.user, database: MYSQL.database },
  },
];

/** Runs `fn` under a new span of `t` (finished afterwards); returns that span. */
async function under(t: TestTracer, name: string, fn: (parent: Span) => Promise<unknown>): Promise<Span> {
  const parent = t.tracer.startSpan(name);
  try {
    // Awaited inside: a query builder is a thenable that sends its statement when awaited.
    await spanInContext(parent, async () => {
      await fn(parent);
    });
  } finally {
    parent.finish();
  }
  return parent;
}

/** Every span of the driver, with its operation name and parent span id. */
function driverSpans(t: TestTracer, db: Db): JaegerSpan[] {
  return t.spans().filter((s) => tag(s, 'component') === db.patch);
}

function verbs(spans: JaegerSpan[]): string[] {
  return spans.map((s) => s.operationName.replace(/^[a-z]+:/, ''));
}

function assertAllUnder(spans: JaegerSpan[], parent: Span, what: string): void {
  assert.ok(spans.length > 0, `${what}: no driver span`);
  for (const s of spans) assert.strictEqual(parentId(s), spanId(parent), `${what}: ${s.operationName} (${String(tag(s, 'db.statement'))}) is under its caller's span`);
}

/** 20 callers at once on a pool of 1: one span each, under its own caller's span, and the caller's span current after. */
async function twentyCallers(t: TestTracer, db: Db, call: (i: number) => Promise<unknown>): Promise<void> {
  const parents: Span[] = [];
  const mismatched: string[] = [];
  t.clear();
  await Promise.all(
    Array.from({ length: 20 }, (_, i) => {
      const parent = t.tracer.startSpan(`caller-${i}`);
      parents.push(parent);
      return spanInContext(parent, async () => {
        await call(i);
        if (getCurrentSpan() !== parent) mismatched.push(`caller-${i}`);
        parent.finish();
      });
    }),
  );
  assert.deepStrictEqual(mismatched, [], 'the caller\'s span is current after the call');
  const spans = driverSpans(t, db);
  assert.strictEqual(spans.length, 20, verbs(spans).join(', '));
  assert.deepStrictEqual(spans.map((s) => parentId(s)).sort(), parents.map((p) => spanId(p)).sort());
}

for (const db of DBS) {
  describe(`ORMs on ${db.label}`, function () {
    this.timeout(30000);
    const t = useTracing([db.patch]);

    describe('knex', () => {
      type Knex = import('knex').Knex;
      let knex: Knex;
      let table: string;
      before(async () => {
        const { knex: makeKnex } = require('knex') as typeof import('knex');
        knex = makeKnex({ ...db.knex, pool: { min: 0, max: 1 } } as import('knex').Knex.Config);
        table = uniqueName('ot_knex');
        await knex.schema.createTable(table, (tb) => {
          tb.increments('id');
          tb.string('name');
        });
      });
      after(async () => {
        await knex.schema.dropTableIfExists(table);
        await knex.destroy();
      });
      beforeEach(() => t.clear());

      it('each builder statement is one driver span under the caller\'s span', async () => {
        const parent = await under(t, 'caller', async () => {
          await knex(table).insert({ name: 'a' });
          await knex(table).select('*').where({ name: 'a' });
          await knex(table).where({ name: 'a' }).update({ name: 'b' });
          await knex(table).where({ name: 'b' }).del();
        });
        const spans = driverSpans(t, db);
        assertAllUnder(spans, parent, 'knex');
        assert.deepStrictEqual(verbs(spans), ['INSERT', 'SELECT', 'UPDATE', 'DELETE']);
      });

      it('knex.raw: one span', async () => {
        const parent = await under(t, 'caller', () => knex.raw('SELECT ? AS x', [1]));
        const spans = driverSpans(t, db);
        assertAllUnder(spans, parent, 'knex.raw');
        assert.deepStrictEqual(verbs(spans), ['SELECT']);
      });

      it('a query builder built under one span and awaited under another: its span is under the awaiting one (the statement is sent then)', async () => {
        let builder: PromiseLike<unknown> | undefined;
        await under(t, 'builder', async () => {
          builder = knex(table).select('*');
        });
        const awaiting = await under(t, 'awaiting', async () => {
          await new Promise((r) => setTimeout(r, 5));
          await builder;
        });
        assertAllUnder(driverSpans(t, db), awaiting, 'late thenable');
      });

      it('a builder returned unawaited out of spanInContext is sent where it is awaited (a root span here: no span is current there)', async () => {
        const parent = t.tracer.startSpan('returns-the-builder');
        await spanInContext(parent, () => knex.raw('SELECT 2 AS x'));
        parent.finish();
        const spans = driverSpans(t, db);
        assert.strictEqual(spans.length, 1);
        assert.strictEqual(parentId(spans[0]), undefined);
      });

      it('a transaction: BEGIN and COMMIT under the caller, each statement under the span current when it was sent', async () => {
        const inner: Span[] = [];
        const parent = await under(t, 'caller', () =>
          knex.transaction(async (trx) => {
            const child = t.tracer.startSpan('in-transaction', { childOf: getCurrentSpan() });
            inner.push(child);
            await spanInContext(child, async () => {
              await trx(table).insert({ name: 'tx' });
              await trx(table).select('*');
            });
            child.finish();
          }),
        );
        const spans = driverSpans(t, db);
        const [begin, insert, select, commit] = spans;
        assert.deepStrictEqual(verbs(spans), ['BEGIN', 'INSERT', 'SELECT', 'COMMIT']);
        assert.strictEqual(parentId(begin), spanId(parent));
        assert.strictEqual(parentId(commit), spanId(parent));
        assert.strictEqual(parentId(insert), spanId(inner[0]));
        assert.strictEqual(parentId(select), spanId(inner[0]));
      });

      it('pool max 1 with 20 concurrent callers', async () => {
        await twentyCallers(t, db, (i) => knex.raw('SELECT ? AS i', [i]));
      });
    });
    describe('Sequelize', () => {
      type Seq = import('sequelize').Sequelize;
      type ModelStatic = import('sequelize').ModelStatic<import('sequelize').Model>;
      let sequelize: Seq;
      let Item: ModelStatic;
      before(async () => {
        const { Sequelize, DataTypes } = require('sequelize') as typeof import('sequelize');
        sequelize = new Sequelize({ ...db.sequelize, logging: false, pool: { min: 0, max: 1 } } as import('sequelize').Options);
        Item = sequelize.define('Item', { name: DataTypes.STRING }, { tableName: uniqueName('ot_sequelize'), timestamps: false });
        await Item.sync();
        await sequelize.authenticate();
      });
      after(async () => {
        await Item.drop();
        await sequelize.close();
      });
      beforeEach(() => t.clear());

      it('sequelize.query: one span under the caller\'s span', async () => {
        const parent = await under(t, 'caller', () => sequelize.query('SELECT :x AS x', { replacements: { x: 1 } }));
        const spans = driverSpans(t, db);
        assertAllUnder(spans, parent, 'sequelize.query');
        assert.deepStrictEqual(verbs(spans), ['SELECT']);
      });

      it('model methods: one span per statement, under the caller\'s span', async () => {
        const parent = await under(t, 'caller', async () => {
          await Item.create({ name: 'a' });
          await Item.findAll({ where: { name: 'a' } });
          await Item.update({ name: 'b' }, { where: { name: 'a' } });
          await Item.destroy({ where: { name: 'b' } });
        });
        const spans = driverSpans(t, db);
        assertAllUnder(spans, parent, 'model methods');
        assert.deepStrictEqual(verbs(spans), ['INSERT', 'SELECT', 'UPDATE', 'DELETE']);
      });

      it('a managed transaction: its own statements under the caller, each statement under the span current when it was sent', async () => {
        const inner: Span[] = [];
        const parent = await under(t, 'caller', () =>
          sequelize.transaction(async (transaction) => {
            const child = t.tracer.startSpan('in-transaction', { childOf: getCurrentSpan() });
            inner.push(child);
            await spanInContext(child, async () => {
              await Item.create({ name: 'tx' }, { transaction });
              await Item.findAll({ transaction });
            });
            child.finish();
          }),
        );
        const spans = driverSpans(t, db);
        const mine = spans.filter((s) => ['INSERT', 'SELECT'].includes(verbs([s])[0]));
        const theirs = spans.filter((s) => !mine.includes(s));
        assert.deepStrictEqual(verbs(mine), ['INSERT', 'SELECT']);
        for (const s of mine) assert.strictEqual(parentId(s), spanId(inner[0]));
        assertAllUnder(theirs, parent, 'transaction statements');
        assert.ok(verbs(theirs).includes('COMMIT'), verbs(theirs).join(', '));
      });

      it('pool max 1 with 20 concurrent callers', async () => {
        await twentyCallers(t, db, (i) => sequelize.query('SELECT :i AS i', { replacements: { i } }));
      });
    });

    describe('TypeORM', () => {
      type DataSource = import('typeorm').DataSource;
      let ds: DataSource;
      let table: string;
      let Item: import('typeorm').EntitySchema<{ id: number; name: string }>;
      before(async () => {
        const { DataSource: Source, EntitySchema } = require('typeorm') as typeof import('typeorm');
        table = uniqueName('ot_typeorm');
        Item = new EntitySchema<{ id: number; name: string }>({
          name: table,
          tableName: table,
          columns: { id: { type: Number, primary: true, generated: true }, name: { type: String } },
        });
        ds = new Source({ ...db.typeorm, entities: [Item], synchronize: false, logging: false, poolSize: 1 } as import('typeorm').DataSourceOptions);
        await ds.initialize();
        const id = db.patch === 'pg' ? 'id SERIAL PRIMARY KEY' : 'id INT AUTO_INCREMENT PRIMARY KEY';
        await ds.query(`CREATE TABLE ${table} (${id}, name VARCHAR(100))`);
      });
      after(async () => {
        await ds.query(`DROP TABLE IF EXISTS ${table}`);
        await ds.destroy();
      });
      beforeEach(() => t.clear());

      it('repository methods and the query builder: one span per statement, under the caller\'s span', async () => {
        const parent = await under(t, 'caller', async () => {
          const repo = ds.getRepository(Item);
          await repo.insert({ name: 'a' });
          await repo.find({ where: { name: 'a' } });
          await ds.createQueryBuilder().update(Item).set({ name: 'b' }).where('name = :n', { n: 'a' }).execute();
          await repo.createQueryBuilder('i').where('i.name = :n', { n: 'b' }).getMany();
          await repo.delete({ name: 'b' });
        });
        const spans = driverSpans(t, db);
        assertAllUnder(spans, parent, 'repository');
        assert.deepStrictEqual(verbs(spans).filter((v) => !['START', 'BEGIN', 'COMMIT'].includes(v)), ['INSERT', 'SELECT', 'UPDATE', 'SELECT', 'DELETE']);
      });

      it('repository.save (its own transaction) and dataSource.query', async () => {
        const parent = await under(t, 'caller', async () => {
          await ds.getRepository(Item).save({ name: 'saved' });
          await ds.query('SELECT 1 AS x');
        });
        const spans = driverSpans(t, db);
        assertAllUnder(spans, parent, 'save');
        assert.ok(verbs(spans).includes('INSERT') && verbs(spans).includes('COMMIT'), verbs(spans).join(', '));
      });

      it('a transaction: its own statements under the caller, each statement under the span current when it was sent', async () => {
        const inner: Span[] = [];
        const parent = await under(t, 'caller', () =>
          ds.transaction(async (manager) => {
            const child = t.tracer.startSpan('in-transaction', { childOf: getCurrentSpan() });
            inner.push(child);
            await spanInContext(child, async () => {
              await manager.insert(Item, { name: 'tx' });
              await manager.find(Item);
            });
            child.finish();
          }),
        );
        const spans = driverSpans(t, db);
        const mine = spans.filter((s) => ['INSERT', 'SELECT'].includes(verbs([s])[0]));
        const theirs = spans.filter((s) => !mine.includes(s));
        assert.deepStrictEqual(verbs(mine), ['INSERT', 'SELECT']);
        for (const s of mine) assert.strictEqual(parentId(s), spanId(inner[0]));
        assertAllUnder(theirs, parent, 'transaction statements');
        assert.ok(verbs(theirs).includes('COMMIT'), verbs(theirs).join(', '));
      });

      it('pool max 1 with 20 concurrent callers', async () => {
        await twentyCallers(t, db, (i) => ds.query(`SELECT ${i} AS i`));
      });
    });
  });
}
