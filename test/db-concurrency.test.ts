import assert from 'assert';
import Redis from 'ioredis';
import type { Span } from 'opentracing';
import * as pg from 'pg';
import { getCurrentSpan, spanInContext, suppressInstrumentation } from '../src';
import { PG, REDIS, uniqueName } from './helpers/db';
import { parentId, spanId, tag, useTracing } from './helpers/tracing';

const PARENTS = 100;

function jitter(): Promise<void> {
  const ms = Math.floor(Math.random() * 4);
  return new Promise((resolve) => (ms === 0 ? setImmediate(resolve) : setTimeout(resolve, ms)));
}

describe('pg and ioredis under concurrency', () => {
  const t = useTracing(['pg', 'ioredis']);
  const prefix = uniqueName('ot_conc');
  let pool: pg.Pool;
  let redis: Redis;

  before(async () => {
    pool = new pg.Pool({ ...PG, max: 4 });
    redis = new Redis({ ...REDIS, lazyConnect: true });
    await suppressInstrumentation(() => redis.connect());
  });
  after(async () => {
    await suppressInstrumentation(async () => {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    });
    await pool.end();
  });

  it(`${PARENTS} parents doing interleaved queries and commands: every child under its own parent`, async () => {
    const parents: Span[] = [];
    const wrongContext: string[] = [];
    const check = (parent: Span, where: string): void => {
      if (getCurrentSpan() !== parent) wrongContext.push(where);
    };
    await Promise.all(
      Array.from({ length: PARENTS }, (_, i) => {
        const parent = t.tracer.startSpan(`parent-${i}`);
        parents.push(parent);
        return spanInContext(parent, async () => {
          await jitter();
          const [res] = await Promise.all([pool.query(`SELECT $1::int AS i, true AS i_${i}`, [i]), redis.set(`${prefix}:${i}`, String(i))]);
          assert.deepStrictEqual(res.rows, [{ i, [`i_${i}`]: true }]);
          check(parent, `pool.query ${i}`);
          await jitter();
          await new Promise<void>((resolve, reject) =>
            redis.get(`${prefix}:${i}`, (err, v) => {
              check(parent, `redis callback ${i}`);
              return err ? reject(err) : v === String(i) ? resolve() : reject(new Error(`got ${v} for ${i}`));
            }),
          );
          const client = await pool.connect();
          check(parent, `pool.connect ${i}`);
          try {
            await new Promise<void>((resolve, reject) =>
              client.query(`SELECT ${i} AS again_${i}`, (err) => {
                check(parent, `client callback ${i}`);
                return err ? reject(err) : resolve();
              }),
            );
          } finally {
            client.release();
          }
          await redis.pipeline().incr(`${prefix}:${i}`).get(`${prefix}:${i}`).exec();
          check(parent, `pipeline ${i}`);
        }).finally(() => parent.finish());
      }),
    );
    assert.deepStrictEqual(wrongContext, []);

    const children = t.spans().filter((s) => tag(s, 'span.kind') === 'client');
    assert.strictEqual(children.length, PARENTS * 5);
    for (let i = 0; i < PARENTS; i++) {
      const mine = children.filter((s) => parentId(s) === spanId(parents[i]));
      const statements = mine.map((s) => `${s.operationName} ${String(tag(s, 'db.statement'))}`).sort();
      assert.deepStrictEqual(
        statements,
        [
          `pg:SELECT SELECT $1::int AS i, true AS i_${i}`,
          `pg:SELECT SELECT ? AS again_${i}`,
          `redis:GET GET ${prefix}:${i}`,
          `redis:PIPELINE INCR ${prefix}:${i}; GET ${prefix}:${i}`,
          `redis:SET SET ${prefix}:${i} [1 other argument]`,
        ].sort(),
        `children of parent ${i}`,
      );
    }
  });
});
