import assert from 'assert';
import axios from 'axios';
import * as http from 'http';
import Redis from 'ioredis';
import pg from 'pg';
import * as undici from 'undici';
import type { Span } from 'opentracing';
import { spanInContext } from '../src';
import { tagError } from '../src/span';
import { CANARY, findSecret } from './helpers/canary';
import { PG, REDIS, uniqueName } from './helpers/db';
import { record } from './helpers/reliability';
import { startHttpServer, type TestServer } from './helpers/servers';
import { createTestTracer, logs, tag, useTracing, waitForSpans, type JaegerSpan } from './helpers/tracing';

describe('secrets stay out of spans', () => {
  describe('the canary scanner itself', () => {
    it('finds the canary in an operation name, a tag and an error log', () => {
      // This tracer's span is checked here and never finished (so never reported
      // to the suite-wide scan): no accounting for it.
      const t = createTestTracer({ accounted: false });
      const span = t.tracer.startSpan('op') as unknown as Parameters<typeof findSecret>[0] & { setTag: Function; log: Function };
      span.setTag('k', `x${CANARY}y`);
      span.log({ event: 'error', 'error.object': new Error(`bad ${CANARY}`) });
      assert.deepStrictEqual(findSecret(span), ['tag k', 'log[0] error.object']);
      assert.deepStrictEqual(findSecret({ operationName: `GET ${CANARY}` }), ['operationName']);
      assert.deepStrictEqual(findSecret({ operationName: 'GET', _tags: [{ key: 'a', value: 'b' }] }), []);
      t.close();
    });
  });

  describe('error logs', () => {
    it('the error.object field stands for the error in the process but serializes without its fields', () => {
      const t = createTestTracer({ accounted: false });
      const err = Object.assign(new Error(`Failed to parse URL from http://u:${CANARY}@h/?token=${CANARY}&x=1`), {
        code: 'E_X',
        config: { headers: { authorization: `Bearer ${CANARY}` } },
      });
      const span = t.tracer.startSpan('op') as unknown as Parameters<typeof findSecret>[0];
      tagError(span as unknown as Span, err);
      const [log] = logs(span as unknown as JaegerSpan);
      const field = log['error.object'] as Error & { config?: unknown };
      assert.strictEqual(Object.getPrototypeOf(field), err);
      assert.ok(field instanceof Error);
      assert.strictEqual(field.config, err.config, 'in the process, the error reads through');
      assert.strictEqual(log.message, 'Failed to parse URL from http://REDACTED@h/?token=REDACTED&x=1');
      assert.deepStrictEqual(JSON.parse(JSON.stringify(field)), { name: 'Error', code: 'E_X', message: log.message, stack: log.stack });
      assert.deepStrictEqual(findSecret(span), []);
      t.close();
    });

    it('errors whose accessors check their receiver (DOMException) stay readable', () => {
      const t = createTestTracer({ accounted: false });
      const span = t.tracer.startSpan('op');
      const err = new DOMException('This operation was aborted', 'AbortError');
      tagError(span, err);
      const field = logs(span as unknown as JaegerSpan)[0]['error.object'] as DOMException;
      assert.strictEqual(field.name, 'AbortError');
      assert.strictEqual(field.code, 20);
      assert.strictEqual(String(field), 'AbortError: This operation was aborted');
      t.close();
    });

    it('a cause is shown redacted too', () => {
      const t = createTestTracer({ accounted: false });
      const span = t.tracer.startSpan('op');
      tagError(span, new Error('fetch failed', { cause: new TypeError(`bad http://x/?sig=${CANARY}`) }));
      assert.deepStrictEqual(findSecret(span as unknown as Parameters<typeof findSecret>[0]), []);
      t.close();
    });
  });

  describe('http', () => {
    const t = useTracing(['http', 'https']);
    let server: TestServer;
    before(async () => (server = await startHttpServer()));
    after(() => server.close());

    it('URL userinfo, secret query values and Authorization never reach a span', async () => {
      const parent = t.tracer.startSpan('parent');
      const urls = [
        `http://user:${CANARY}@127.0.0.1:${server.port}/a`,
        `http://${CANARY}@127.0.0.1:${server.port}/b`,
        `${server.origin}/c?token=${CANARY}&password=${CANARY}&sig=${CANARY}&api_key=${CANARY}&access_token=${CANARY}`,
        `${server.origin}/status/503?secret=${CANARY}`,
      ];
      await spanInContext(parent, () =>
        Promise.all(
          urls.map(
            (u) =>
              new Promise<void>((resolve, reject) => {
                http
                  .get(u, { headers: { authorization: `Bearer ${CANARY}`, cookie: `session=${CANARY}` } }, (res) => {
                    res.resume();
                    res.on('end', resolve);
                  })
                  .on('error', reject);
              }),
          ),
        ),
      );
      parent.finish();
      const spans = await waitForSpans(t, urls.length + 1);
      assert.strictEqual(server.received.length, urls.length);
      for (const r of server.received) assert.strictEqual(r.headers.authorization, `Bearer ${CANARY}`);
      for (const s of spans) assert.deepStrictEqual(findSecret(s), [], s.operationName);
      recordCanary('http', 'URL userinfo, `token`/`password`/`sig`/`api_key`/`access_token` query values, an Authorization header, a cookie, the `auth` option', spans.length);
    });

    it('an auth option is not recorded', async () => {
      await new Promise<void>((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port: server.port, path: '/auth', auth: `user:${CANARY}` }, (res) => {
            res.resume();
            res.on('end', resolve);
          })
          .on('error', reject);
      });
      const [span] = await waitForSpans(t, 1);
      assert.deepStrictEqual(findSecret(span), []);
    });
  });
});

describe('secrets stay out of spans: axios and fetch', () => {
  const t = useTracing(['http', 'https', 'axios', 'fetch']);
  let server: TestServer;
  before(async () => (server = await startHttpServer()));
  after(() => server.close());

  const secretQuery = `token=${CANARY}&password=${CANARY}&sig=${CANARY}&api_key=${CANARY}&access_token=${CANARY}`;
  const paths = ['/ok', '/status/500', '/status/404', '/destroy'];

  /** Settles, whatever the outcome: errors are part of what is scanned. */
  async function settle(p: Promise<unknown>): Promise<void> {
    await p.then(
      () => undefined,
      () => undefined,
    );
  }

  it('axios: userinfo, secret query values, Authorization, auth option, in success and error spans (both adapters)', async () => {
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, async () => {
      for (const adapter of ['http', 'fetch'] as const) {
        for (const path of paths) {
          await settle(axios.get(`${server.origin}${path}?${secretQuery}`, { adapter, headers: { authorization: `Bearer ${CANARY}`, cookie: `s=${CANARY}` } }));
          await settle(axios.get(`${server.origin}${path}`, { adapter, auth: { username: 'u', password: CANARY }, params: { token: CANARY } }));
          if (adapter === 'http') await settle(axios.get(`http://u:${CANARY}@127.0.0.1:${server.port}${path}`, { adapter }));
        }
        await settle(axios.get(`${server.origin}/slow/2000?token=${CANARY}`, { adapter, timeout: 20, headers: { authorization: `Bearer ${CANARY}` } }));
        await settle(axios.get(`http://exa mple.com/?token=${CANARY}`, { adapter, headers: { authorization: `Bearer ${CANARY}` } }));
      }
    });
    parent.finish();
    const spans = t.spans().filter((s) => s.operationName !== 'parent');
    assert.ok(spans.length >= 20, `${spans.length} spans`);
    for (const s of spans) assert.deepStrictEqual(findSecret(s), [], `${s.operationName}: ${findSecret(s).join(', ')}`);
    recordCanary('axios', 'URL userinfo, secret query values (in the URL and in `params`), an Authorization header, a cookie, the `auth` option, an unparseable URL (both adapters)', spans.length);
  });

  it('fetch and undici: secret query values and Authorization, in success and error spans', async () => {
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, async () => {
      for (const path of paths) {
        await settle(fetch(`${server.origin}${path}?${secretQuery}`, { headers: { authorization: `Bearer ${CANARY}` } }).then((r) => r.text()));
        await settle(undici.request(`${server.origin}${path}?${secretQuery}`, { headers: { authorization: `Bearer ${CANARY}` } }).then((r) => r.body.text()));
      }
      await settle(fetch(`${server.origin}/slow/2000?token=${CANARY}`, { signal: AbortSignal.timeout(20) }));
      await settle(fetch(`http://u:${CANARY}@127.0.0.1:${server.port}/`));
    });
    parent.finish();
    const spans = t.spans().filter((s) => s.operationName !== 'parent');
    assert.ok(spans.length >= 8, `${spans.length} spans`);
    for (const s of spans) assert.deepStrictEqual(findSecret(s), [], `${s.operationName}: ${findSecret(s).join(', ')}`);
    recordCanary('fetch', 'secret query values, an Authorization header, URL userinfo (global fetch, undici.request)', spans.length);
  });
});

/** One reliability row per client: the canary placements tried and the spans they made. */
function recordCanary(client: string, placements: string, spans: number): void {
  record(`secrets.canary.${client}`, {
    area: 'Secrets',
    what: `${client}: the canary as ${placements}, in successful and failing calls`,
    unit: 'spans scanned',
    lostMeans: 'the canary in an operation name, a tag value or a log field (error objects as the tracer serializes them)',
    tried: spans,
    lost: 0,
  });
}

describe('secrets stay out of spans: pg and ioredis', () => {
  const t = useTracing(['pg', 'ioredis']);

  it('pg: the password in a connection string and a config, parameter values in successful and failing queries', async () => {
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, async () => {
      const byUrl = new pg.Client({ connectionString: `postgres://${PG.user}:${CANARY}@${PG.host}:${PG.port}/${PG.database}` });
      await byUrl.connect();
      await byUrl.query('SELECT $1::text AS secret', [CANARY]);
      await byUrl.query({ text: 'SELECT $1::text AS secret', values: [CANARY], name: 'safety-secret' });
      await byUrl.query('CREATE TEMP TABLE safety_secret (v text PRIMARY KEY, n int NOT NULL)');
      await byUrl.query('INSERT INTO safety_secret VALUES ($1, 1)', [CANARY]);
      // Errors whose detail quotes the row: a unique violation, a NOT NULL violation.
      await byUrl.query('INSERT INTO safety_secret VALUES ($1, 1)', [CANARY]).catch(() => undefined);
      await byUrl.query('INSERT INTO safety_secret VALUES ($1, NULL)', [`${CANARY}-2`]).catch(() => undefined);
      await byUrl.end();
      const byConfig = new pg.Pool({ ...PG, password: CANARY, max: 1 });
      await byConfig.query('SELECT $1::text AS secret', [CANARY]);
      await new Promise<void>((resolve) => byConfig.query('SELEKT $1::text', [CANARY], () => resolve()));
      // PostgreSQL quotes the value it could not convert in its message.
      await byConfig.query('SELECT $1::int AS n', [CANARY]).catch(() => undefined);
      await byConfig.end();
      const refused = new pg.Client({ connectionString: `postgres://${PG.user}:${CANARY}@127.0.0.1:1/${PG.database}` });
      await refused.connect().catch(() => undefined);
    });
    parent.finish();
    const spans = t.spans().filter((s) => s.operationName !== 'parent');
    assert.ok(spans.length >= 8, `${spans.length} spans`);
    assert.ok(spans.some((s) => tag(s, 'error') === true), 'no failing query was traced');
    for (const s of spans) assert.deepStrictEqual(findSecret(s), [], `${s.operationName}: ${findSecret(s).join(', ')}`);
    recordCanary('pg', 'the password of a connection string and of a config, SQL parameter values (also in queries failing on a unique or NOT NULL violation, whose detail quotes the row)', spans.length);
  });

  it('ioredis: the AUTH password and SET values, in successful and failing commands', async () => {
    const key = uniqueName('safety_secret');
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, async () => {
      const redis = new Redis(REDIS);
      await redis.set(key, CANARY);
      await redis.get(key);
      await redis.set(key, CANARY, 'EX', 60);
      await redis.lpush(key, CANARY).catch(() => undefined); // WRONGTYPE: the error carries the arguments
      await redis.call('NOSUCHCOMMAND', CANARY).catch(() => undefined); // Redis quotes the arguments
      await redis.pipeline().set(key, CANARY).lpush(key, CANARY).exec();
      await redis.multi().set(key, CANARY).get(key).exec();
      await redis.auth(CANARY).catch(() => undefined);
      await redis.call('AUTH', 'default', CANARY).catch(() => undefined);
      await redis.del(key);
      await redis.quit();
    });
    parent.finish();
    const spans = t.spans().filter((s) => s.operationName !== 'parent');
    assert.ok(spans.length >= 10, `${spans.length} spans`);
    assert.ok(spans.some((s) => tag(s, 'error') === true), 'no failing command was traced');
    for (const s of spans) assert.deepStrictEqual(findSecret(s), [], `${s.operationName}: ${findSecret(s).join(', ')}`);
    recordCanary('ioredis', 'a SET value (also in WRONGTYPE errors, pipelines and transactions), an unknown command\'s argument, the AUTH password', spans.length);
  });
});

describe('opted-in capture records the values (tested with another value than the canary)', () => {
  const OPTED_IN = 'opted-in-value-7c1e';
  const t = useTracing(['pg', 'ioredis'], {
    pg: { captureParameters: true },
    ioredis: { statementSerializer: (command, args) => `${command.toUpperCase()} ${args.map(String).join(' ')}` },
  });

  it('pg captureParameters: the values are in db.parameters', async () => {
    const pool = new pg.Pool({ ...PG, max: 1 });
    await pool.query('SELECT $1::text AS v', [OPTED_IN]);
    await pool.end();
    const [span] = t.spans().filter((s) => s.operationName === 'pg:SELECT');
    assert.strictEqual(tag(span, 'db.parameters'), JSON.stringify([OPTED_IN]));
    assert.deepStrictEqual(findSecret(span, OPTED_IN), ['tag db.parameters'], 'the scanner sees what opting in records');
  });

  it('ioredis statementSerializer: the arguments are in db.statement', async () => {
    const key = uniqueName('safety_optin');
    const redis = new Redis(REDIS);
    await redis.set(key, OPTED_IN, 'EX', 60);
    await redis.del(key);
    await redis.quit();
    const [span] = t.spans().filter((s) => s.operationName === 'redis:SET');
    assert.strictEqual(tag(span, 'db.statement'), `SET ${key} ${OPTED_IN} EX 60`);
    assert.deepStrictEqual(findSecret(span, OPTED_IN), ['tag db.statement']);
  });
});
