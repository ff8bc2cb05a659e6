/**
 * Hooks may be async: a request or response hook (every patch) or `traced`'s
 * `onStart` that returns a rejected promise is contained like one that
 * throws: the call goes on unchanged, the span finishes once, and no
 * unhandled rejection reaches the process.
 */
import assert from 'assert';
import * as path from 'path';
import axios from 'axios';
import Redis from 'ioredis';
import * as pg from 'pg';
import { installPatches, traced, uninstallAllPatches } from '../src';
import type { InstrumentationOptions, PatchName } from '../src/options';
import { PG, REDIS, uniqueName } from './helpers/db';
import { request } from './helpers/requests';
import { runAppWith } from './helpers/run-app';
import { startHttpServer, type TestServer } from './helpers/servers';
import { createTestTracer, waitFor, type TestTracer } from './helpers/tracing';
import { unhandledDuring as unhandledFrom } from './helpers/unhandled';

/** An async hook that fails, and a plain one that returns a rejected promise. */
const hookKinds = {
  'async () => { throw }': async (): Promise<void> => {
    throw new Error('async hook failed');
  },
  '() => Promise.reject()': (): Promise<void> => Promise.reject(new Error('hook promise rejected')),
};

/** The rejections nobody handled while `fn` ran (one more event-loop turn after the 50 ms). */
const unhandledDuring = (fn: () => Promise<void>): Promise<unknown[]> => unhandledFrom(fn, { thenImmediate: true });

function hooked(patch: PatchName, hook: () => Promise<void>): Omit<InstrumentationOptions, 'tracer'> {
  return { [patch]: { requestHook: hook, responseHook: hook } };
}

describe('async hooks: a rejected promise from a hook is contained', () => {
  let t: TestTracer;
  let server: TestServer;
  before(async () => {
    t = createTestTracer();
    server = await startHttpServer();
  });
  after(() => server.close());
  beforeEach(() => t.clear());
  afterEach(() => uninstallAllPatches());

  /** Every client/server span this test started has finished, and there are `n` of them. */
  async function finished(n: number): Promise<void> {
    await waitFor(() => t.spans().length >= n && t.accounting.open.size === 0, 3000, `${n} finished spans`);
    assert.strictEqual(t.spans().length, n);
  }

  for (const [kind, hook] of Object.entries(hookKinds)) {
    describe(kind, () => {
      it('http and https: http.get', async () => {
        installPatches(['http', 'https'], { tracer: t.tracer, ...hooked('http', hook) });
        const reasons = await unhandledDuring(async () => {
          const reply = await request(`${server.origin}/ok`);
          assert.strictEqual(reply.status, 200);
        });
        assert.deepStrictEqual(reasons, []);
        await finished(1);
      });

      it('axios', async () => {
        installPatches(['http', 'axios'], { tracer: t.tracer, ...hooked('axios', hook) });
        const reasons = await unhandledDuring(async () => {
          const res = await axios.get(`${server.origin}/ok`);
          assert.strictEqual(res.status, 200);
        });
        assert.deepStrictEqual(reasons, []);
        await finished(1);
      });

      it('fetch', async () => {
        installPatches(['fetch'], { tracer: t.tracer, ...hooked('fetch', hook) });
        const reasons = await unhandledDuring(async () => {
          const res = await fetch(`${server.origin}/ok`);
          assert.strictEqual(res.status, 200);
          await res.text();
        });
        assert.deepStrictEqual(reasons, []);
        await finished(1);
      });

      it('pg', async () => {
        installPatches(['pg'], { tracer: t.tracer, ...hooked('pg', hook) });
        const client = new pg.Client(PG);
        const reasons = await unhandledDuring(async () => {
          await client.connect();
          try {
            const res = await client.query('SELECT 1 AS one');
            assert.deepStrictEqual(res.rows, [{ one: 1 }]);
          } finally {
            await client.end();
          }
        });
        assert.deepStrictEqual(reasons, []);
        await finished(1);
      });

      it('ioredis', async () => {
        installPatches(['ioredis'], { tracer: t.tracer, ...hooked('ioredis', hook) });
        const key = uniqueName('ot_async_hook');
        const redis = new Redis({ ...REDIS, lazyConnect: true });
        const reasons = await unhandledDuring(async () => {
          await redis.connect();
          try {
            assert.strictEqual(await redis.set(key, 'v', 'EX', 60), 'OK');
            assert.deepStrictEqual(await redis.pipeline().get(key).del(key).exec(), [[null, 'v'], [null, 1]]);
          } finally {
            redis.disconnect();
          }
        });
        assert.deepStrictEqual(reasons, []);
        await finished(2);
      });

      it('http-server', async () => {
        installPatches(['http-server'], { tracer: t.tracer, ...hooked('http-server', hook) });
        const own = await startHttpServer();
        try {
          const reasons = await unhandledDuring(async () => {
            const reply = await request(`${own.origin}/ok`);
            assert.strictEqual(reply.status, 200);
          });
          assert.deepStrictEqual(reasons, []);
          await finished(1);
        } finally {
          await own.close();
        }
      });

      it("traced's onStart", async () => {
        installPatches([], { tracer: t.tracer });
        const double = traced((n: number) => n * 2, { name: 'double', onStart: hook });
        const reasons = await unhandledDuring(async () => {
          assert.strictEqual(double(21), 42);
        });
        assert.deepStrictEqual(reasons, []);
        await finished(1);
      });
    });
  }

  it('in a process of its own: exits 0, the rejection logged once per hook however many calls', async function () {
    this.timeout(20000);
    const app = `
      const http = require('http');
      const { installPatches, traced } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      const fail = async () => { throw new Error('hook failed on purpose'); };
      installPatches(['http'], { http: { requestHook: fail, responseHook: fail } });
      const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', async () => {
        const get = () => new Promise((resolve, reject) =>
          http.get('http://127.0.0.1:' + server.address().port + '/', (res) => res.resume().on('end', resolve)).on('error', reject));
        for (let i = 0; i < 3; i++) await get();
        traced(() => 1, { name: 'x', onStart: fail })();
        traced(() => 1, { name: 'x', onStart: fail })();
        setTimeout(() => { server.close(); console.log('done'); }, 50);
      });
    `;
    const run = await runAppWith(['-e', app], __dirname, { NODE_DEBUG: 'opentracing-instrumentation' });
    assert.strictEqual(run.code, 0, run.stderr);
    assert.strictEqual(run.stdout, 'done\n');
    const lines = run.stderr.split('\n').filter((l) => l.includes('rejected; the call goes on'));
    assert.deepStrictEqual(
      lines.map((l) => /((?:http|traced) [^:]*rejected; the call goes on)/.exec(l)?.[1]).sort(),
      ['http requestHook rejected; the call goes on', 'http responseHook rejected; the call goes on', 'traced onStart (x) rejected; the call goes on'],
      run.stderr,
    );
  });
});

