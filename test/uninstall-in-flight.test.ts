/**
 * Every span already started finishes once, whatever is uninstalled
 * meanwhile: calls in flight at `uninstallAllPatches()` end their spans
 * when they complete, for every patch, and no new span starts after it.
 */
import assert from 'assert';
import axios from 'axios';
import Redis from 'ioredis';
import * as pg from 'pg';
import * as undici from 'undici';
import { installPatches, uninstallAllPatches } from '../src';
import { PG, REDIS, uniqueName } from './helpers/db';
import { request } from './helpers/requests';
import { defaultHandler, startHttpServer, type TestServer } from './helpers/servers';
import { createTestTracer, waitFor, type TestTracer } from './helpers/tracing';

describe('uninstallAllPatches with calls in flight: each span started finishes once', () => {
  let t: TestTracer;
  let server: TestServer;
  before(async () => {
    server = await startHttpServer((req, res) => {
      // /late-redirect: a redirect that comes after the uninstall; fetch follows it.
      if (req.url === '/late-redirect') {
        setTimeout(() => res.writeHead(302, { location: '/slow/20' }).end(), 60);
        return;
      }
      defaultHandler(req, res);
    });
  });
  after(async () => {
    uninstallAllPatches();
    await server.close();
  });
  // A tracer per test: its accounting is this test's alone.
  beforeEach(() => (t = createTestTracer()));
  afterEach(() => uninstallAllPatches());

  /** Starts `n` calls with the patches installed, uninstalls while they are in flight, and checks every span ended once. */
  async function inFlight(patches: Parameters<typeof installPatches>[0], n: number, call: (i: number) => Promise<unknown>): Promise<void> {
    installPatches(patches, { tracer: t.tracer });
    const calls = Array.from({ length: n }, (_, i) => call(i));
    await new Promise((resolve) => setTimeout(resolve, 10));
    uninstallAllPatches();
    const results = await Promise.allSettled(calls);
    assert.deepStrictEqual(results.filter((r) => r.status === 'rejected'), []);
    assert.strictEqual(t.accounting.started, n, 'one span per call');
    await waitFor(() => t.accounting.open.size === 0, 3000, 'every span finished').catch(() => undefined);
    assert.strictEqual(t.accounting.open.size, 0, `${t.accounting.open.size} of ${n} spans never finished`);
    assert.strictEqual(t.accounting.doubleFinished, 0);
    // Nothing traced any more.
    const before = t.accounting.started;
    await call(n);
    assert.strictEqual(t.accounting.started, before, 'no span after uninstall');
  }

  it('global fetch', async () => {
    await inFlight(['fetch'], 50, async () => (await fetch(`${server.origin}/slow/80`)).text());
  });

  it('global fetch, a redirect answered after the uninstall: still one span, finished', async () => {
    await inFlight(['fetch'], 20, async () => {
      const res = await fetch(`${server.origin}/late-redirect`);
      assert.strictEqual(res.status, 200);
      return res.text();
    });
    const spans = t.spans().filter((s) => s.operationName === 'GET');
    assert.strictEqual(spans.length, 20);
  });

  it('undici.request', async () => {
    await inFlight(['fetch'], 20, async () => (await undici.request(`${server.origin}/slow/80`)).body.text());
  });

  it('http', async () => {
    await inFlight(['http'], 20, () => request(`${server.origin}/slow/80`));
  });

  it('axios', async () => {
    await inFlight(['http', 'axios'], 20, () => axios.get(`${server.origin}/slow/80`));
  });

  it('pg', async () => {
    const pool = new pg.Pool({ ...PG, max: 4 });
    try {
      await inFlight(['pg'], 12, () => pool.query('SELECT pg_sleep(0.05)'));
    } finally {
      await pool.end();
    }
  });

  it('ioredis', async () => {
    const redis = new Redis(REDIS);
    const key = uniqueName('ot_inflight');
    try {
      await inFlight(['ioredis'], 20, (i) => (i % 2 ? redis.blpop(`${key}:${i}`, 0.05) : redis.eval('return 1', 0)));
    } finally {
      redis.disconnect();
    }
  });
});
