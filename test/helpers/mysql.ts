/**
 * What test/mysql.test.ts (mysqljs) and test/mysql2.test.ts share: the call
 * forms both libraries have in common, the plumbing of callbacks and emitters,
 * and the "pool of 1, many concurrent callers" run.
 */
import type { Span, Tracer } from 'opentracing';
import { getCurrentSpan, spanInContext } from '../../src';
import type { CallForm } from './contract';
import { MYSQL, uniqueName } from './db';
import { tag, tags, useTracing, type JaegerSpan, type TestTracer } from './tracing';

/** A mysql or mysql2 query callback. */
export type Cb = (err: (Error & { code?: string; errno?: number; sqlState?: string; sql?: string }) | null, rows?: unknown, fields?: unknown) => void;

interface Emitter {
  on(e: string, l: (...a: unknown[]) => void): unknown;
}
interface Queryable {
  query(sql: unknown, values?: unknown, cb?: Cb): unknown;
}
interface Streamable {
  query(sql: string): { stream(options?: object): NodeJS.ReadableStream };
}
interface Endable {
  end(cb?: (err?: Error) => void): unknown;
}
interface Releasable extends Queryable {
  release(): void;
}

export function callback(resolve: (v: unknown) => void, reject: (e: unknown) => void, observe: () => void): Cb {
  return (err, rows) => {
    observe();
    if (err) reject(err);
    else resolve(rows);
  };
}

/** Resolves when an emitter-form command (or its stream) ends; observes each row. */
export function drained(emitter: Emitter, observe: () => void, rowEvent = 'result'): Promise<unknown> {
  return new Promise((resolve, reject) => {
    emitter.on(rowEvent, () => observe());
    emitter.on('error', (err: unknown) => {
      observe();
      reject(err);
    });
    emitter.on('end', () => {
      observe();
      resolve(undefined);
    });
  });
}

/** `c.query(sql, values)`, promised. */
export function q(c: Queryable, sql: string, values?: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => void c.query(sql, values ?? [], (err, rows) => (err ? reject(err) : resolve(rows))));
}

/** A `mysql:SELECT` form whose call takes a callback. */
export function callbackForm(name: string, call: (cb: Cb) => unknown, fails?: boolean): CallForm {
  return {
    name,
    operationName: 'mysql:SELECT',
    ...(fails ? { fails } : {}),
    run: (observe) => new Promise((resolve, reject) => void call(callback(resolve, reject, observe))),
  };
}

/** A `mysql:SELECT` form whose call returns an emitter. */
export function emitterForm(name: string, call: () => Emitter): CallForm {
  return { name, operationName: 'mysql:SELECT', run: (observe) => drained(call(), observe) };
}

/** `connection.query(sql).stream()`, drained. */
export function streamForm(connection: () => Streamable): CallForm {
  return {
    name: 'connection.query(sql).stream()',
    operationName: 'mysql:SELECT',
    run: (observe) => {
      const stream = connection().query('SELECT 1 AS x UNION ALL SELECT 2').stream();
      const done = drained(stream, observe, 'data');
      stream.resume();
      return done;
    },
  };
}

/** `getConnection` (of a pool or a pool cluster), then `connection.query(sql)` and `release()`. */
export function getConnectionForm(name: string, getConnection: (cb: (err: Error | null, conn: Releasable) => void) => void, sql: string): CallForm {
  return {
    name,
    operationName: 'mysql:SELECT',
    run: (observe) =>
      new Promise((resolve, reject) =>
        getConnection((err, conn) => {
          observe();
          if (err) return reject(err);
          conn.query(sql, undefined, (err2, rows) => {
            observe();
            conn.release();
            if (err2) reject(err2);
            else resolve(rows);
          });
        }),
      ),
  };
}

/**
 * `n` callers, each under a span of its own, make `call(i)` at once; `seen`
 * pairs each caller's span with the current span after its call.
 */
export async function concurrentCallers(tracer: Tracer, n: number, call: (i: number) => Promise<unknown>): Promise<{ parents: Span[]; seen: Array<[Span, Span | undefined]> }> {
  const parents: Span[] = [];
  const seen: Array<[Span, Span | undefined]> = [];
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const parent = tracer.startSpan(`caller-${i}`);
      parents.push(parent);
      return spanInContext(parent, async () => {
        await call(i);
        seen.push([parent, getCurrentSpan()]);
        parent.finish();
      });
    }),
  );
  return { parents, seen };
}

/**
 * In the calling `describe`: tracing with `patch` on, and a connection with a
 * table of its own (`id INT PRIMARY KEY, secret VARCHAR(100) UNIQUE`),
 * created by `before` hooks (`setUp` first) and dropped and closed after.
 */
export function useTracedTable<C extends Queryable & Endable>(
  patch: 'mysql' | 'mysql2',
  connect: () => C,
  setUp?: () => void,
): { t: TestTracer; db: { table: string; conn: C }; mysqlSpans(): JaegerSpan[] } {
  const t = useTracing([patch]);
  const db = {} as { table: string; conn: C };
  before(async () => {
    setUp?.();
    db.table = uniqueName(`ot_${patch}`);
    db.conn = connect();
    await q(db.conn, `CREATE TABLE ${db.table} (id INT PRIMARY KEY, secret VARCHAR(100) UNIQUE)`);
  });
  after(async () => {
    await q(db.conn, `DROP TABLE IF EXISTS ${db.table}`);
    await new Promise<void>((resolve) => db.conn.end(() => resolve()));
  });
  return { t, db, mysqlSpans: () => t.spans().filter((s) => tag(s, 'component') === patch) };
}

/** A span's tags but the sampler's. */
export function ownTags(span: JaegerSpan): Record<string, unknown> {
  return Object.fromEntries(Object.entries(tags(span)).filter(([k]) => !k.startsWith('sampler.')));
}

/** The tags of a `mysql`/`mysql2` span of `SELECT 'a literal' AS s, 42 AS n, ? AS p`. */
export function selectTags(component: 'mysql' | 'mysql2'): Record<string, unknown> {
  return {
    'span.kind': 'client',
    component,
    'db.type': 'sql',
    'db.instance': MYSQL.database,
    'db.user': MYSQL.user,
    'db.statement': 'SELECT ? AS s, ? AS n, ? AS p',
    'peer.ipv4': MYSQL.host,
    'peer.port': MYSQL.port,
  };
}
