/**
 * Calls made under a parent whose trace is not sampled (sampling final) and
 * with no request or response hook start no client span: every client patch
 * gets the shared stand-in of src/span.ts (`startClientSpanWithParent`),
 * which records nothing and carries the parent's own context downstream.
 * With a hook set, or under a sampled parent, the call is traced as usual.
 */
import assert from 'assert';
import * as http from 'http';
import type { Span } from 'opentracing';
import axios from 'axios';
import IORedis from 'ioredis';
import * as pg from 'pg';
import { getCurrentSpan, installPatches, spanInContext, uninstallAllPatches } from '../src';
import type { InstrumentationOptions } from '../src/options';
import { PG, REDIS, uniqueName } from './helpers/db';
import { assertAccountingClean, createTestTracer, parentId, spanId, type JaegerSpan, type TestTracer } from './helpers/tracing';
import { readBody, startHttpServer, type TestServer } from './helpers/servers';

const PATCHES = ['http', 'fetch', 'axios', 'pg', 'ioredis'] as const;

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        readBody(res).then(resolve, reject);
      })
      .on('error', reject);
  });
}

/** The `uber-trace-id` a span's context injects: `trace:span:parent:flags`. */
function contextString(span: Span): string {
  return (span.context() as unknown as { toString(): string }).toString();
}

describe('calls under an unsampled parent: no client span, the parent context downstream', () => {
  let server: TestServer;
  let t: TestTracer;
  let client: pg.Client;
  let pool: pg.Pool;
  let redis: IORedis;
  const key = uniqueName('unsampled');

  function install(options: Omit<InstrumentationOptions, 'tracer'> = {}): void {
    uninstallAllPatches();
    installPatches([...PATCHES], { ...options, tracer: t.tracer });
  }

  before(async () => {
    server = await startHttpServer();
    client = new pg.Client(PG);
    await client.connect();
    pool = new pg.Pool({ ...PG, max: 2 });
    redis = new IORedis({ ...REDIS, lazyConnect: true });
    await redis.connect();
    await redis.set(key, 'v');
  });
  after(async () => {
    uninstallAllPatches();
    await redis.del(key);
    redis.disconnect();
    await client.end();
    await pool.end();
    await server.close();
  });
  beforeEach(() => {
    server.received.length = 0;
    t = createTestTracer({ sampled: false });
    install();
  });
  afterEach(async () => {
    uninstallAllPatches();
    await assertAccountingClean(t);
    t.close();
  });

  /** Runs `fn` under an unsampled parent; asserts that no span but the parent was started. */
  async function underParent<T>(fn: (parent: Span) => Promise<T>): Promise<T> {
    const parent = t.tracer.startSpan('parent');
    assert.strictEqual((parent.context() as unknown as { isSampled(): boolean }).isSampled(), false);
    let result: T;
    try {
      result = await spanInContext(parent, () => fn(parent));
    } finally {
      parent.finish();
    }
    assert.strictEqual(t.accounting.started, 1, 'no span but the parent');
    assert.strictEqual(t.spans().length, 0, 'nothing reported');
    return result;
  }

  /** The one request the server got carried exactly the parent's context (sampled=0, its trace and span id). */
  function assertParentContextSent(parent: Span): void {
    assert.strictEqual(server.received.length, 1);
    const header = String(server.received[0].headers['uber-trace-id']);
    assert.strictEqual(header, contextString(parent));
    const [traceId, sentSpanId, , flags] = header.split(':');
    assert.strictEqual(traceId, (parent.context() as unknown as { traceIdStr: string }).traceIdStr);
    assert.strictEqual(sentSpanId, spanId(parent));
    assert.strictEqual(Number.parseInt(flags, 16) & 1, 0, 'sampled=0');
  }

  it('http.get', async () => {
    await underParent(async (parent) => {
      assert.deepStrictEqual(JSON.parse(await get(`${server.origin}/a`)), { ok: true, path: '/a' });
      assertParentContextSent(parent);
    });
  });

  it('the parent context as it is at each call: baggage set in between goes along', async () => {
    await underParent(async (parent) => {
      parent.setBaggageItem('first', '1');
      await get(`${server.origin}/a1`);
      parent.setBaggageItem('second', '2');
      await get(`${server.origin}/a2`);
      assert.deepStrictEqual(
        server.received.map((r) => [r.headers['uberctx-first'], r.headers['uberctx-second'], r.headers['uber-trace-id']]),
        [
          ['1', undefined, contextString(parent)],
          ['1', '2', contextString(parent)],
        ],
      );
    });
  });

  it('fetch', async () => {
    await underParent(async (parent) => {
      const res = await fetch(`${server.origin}/b`);
      assert.deepStrictEqual(await res.json(), { ok: true, path: '/b' });
      assertParentContextSent(parent);
    });
  });

  for (const adapter of ['http', 'fetch'] as const) {
    it(`axios (${adapter} adapter)`, async () => {
      await underParent(async (parent) => {
        const res = await axios.get(`${server.origin}/c`, { adapter, proxy: false });
        assert.deepStrictEqual(res.data, { ok: true, path: '/c' });
        assertParentContextSent(parent);
      });
    });
  }

  it('pg client.query(text, cb): the callback still runs with the caller current', async () => {
    await underParent(async (parent) => {
      const seen = await new Promise<{ value: unknown; current: Span | undefined }>((resolve, reject) => {
        client.query('SELECT 1 AS one', (err, result) => {
          if (err) reject(err);
          else resolve({ value: result.rows[0].one, current: getCurrentSpan() });
        });
      });
      assert.strictEqual(seen.value, 1);
      assert.strictEqual(seen.current, parent);
    });
  });

  it('pg pool.query(text)', async () => {
    await underParent(async () => {
      const result = await pool.query('SELECT 2 AS two');
      assert.strictEqual(result.rows[0].two, 2);
    });
  });

  it('ioredis get and pipeline', async () => {
    await underParent(async () => {
      assert.strictEqual(await redis.get(key), 'v');
      const results = await redis.pipeline().get(key).exists(key).exec();
      assert.deepStrictEqual(results, [
        [null, 'v'],
        [null, 1],
      ]);
    });
  });

  it('a request hook set: the call gets its own client span, as usual', async () => {
    const hooked: Span[] = [];
    install({ http: { requestHook: (span) => hooked.push(span) } });
    const parent = t.tracer.startSpan('parent');
    await spanInContext(parent, () => get(`${server.origin}/d`));
    parent.finish();
    assert.strictEqual(t.accounting.started, 2);
    assert.strictEqual(hooked.length, 1);
    const [, sentSpanId, sentParentId] = String(server.received[0].headers['uber-trace-id']).split(':');
    assert.strictEqual(sentSpanId, spanId(hooked[0]));
    assert.strictEqual(sentParentId, spanId(parent));
  });

  it('a response hook set: the call gets its own client span, and the hook sees it', async () => {
    const hooked: Span[] = [];
    install({ fetch: { responseHook: (_res, span) => hooked.push(span) } });
    const parent = t.tracer.startSpan('parent');
    const res = await spanInContext(parent, () => fetch(`${server.origin}/e`));
    await res.text();
    parent.finish();
    assert.strictEqual(t.accounting.started, 2);
    assert.strictEqual(hooked.length, 1);
    assert.strictEqual(String(server.received[0].headers['uber-trace-id']).split(':')[1], spanId(hooked[0]));
  });

  it('no current span: the call starts its own (unsampled) trace, as usual', async () => {
    assert.deepStrictEqual(JSON.parse(await get(`${server.origin}/f`)), { ok: true, path: '/f' });
    assert.strictEqual(t.accounting.started, 1);
    assert.strictEqual(Number.parseInt(String(server.received[0].headers['uber-trace-id']).split(':')[3], 16) & 1, 0);
  });

  it('a sampled parent: every client gets its span, recorded', async () => {
    const sampled = createTestTracer();
    try {
      installPatches([...PATCHES], { tracer: sampled.tracer });
      const parent = sampled.tracer.startSpan('parent');
      await spanInContext(parent, async () => {
        await get(`${server.origin}/g`);
        await (await fetch(`${server.origin}/h`)).text();
        await axios.get(`${server.origin}/i`, { proxy: false });
        await client.query('SELECT 1');
        await redis.get(key);
      });
      parent.finish();
      const children = sampled.spans().filter((s: JaegerSpan) => parentId(s) === spanId(parent));
      assert.deepStrictEqual(children.map((s) => s.operationName).sort(), ['GET', 'GET', 'GET', 'pg:SELECT', 'redis:GET']);
      for (const [i, received] of server.received.entries()) {
        const sentSpanId = String(received.headers['uber-trace-id']).split(':')[1];
        assert.ok(children.some((s) => spanId(s) === sentSpanId), `request ${i} carried its client span`);
      }
    } finally {
      uninstallAllPatches();
      await assertAccountingClean(sampled);
      sampled.close();
    }
  });
});
