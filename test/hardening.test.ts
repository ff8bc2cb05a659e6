/**
 * What a tracer or a user predicate may hand back that is not what its type
 * says: a `startSpan` that returns null or a stub (the call is simply not
 * traced), an `isErrorStatus` that returns a promise or another non-boolean
 * (only `true` marks an error). Every patch family alike.
 */
import assert from 'assert';
import * as path from 'path';
import axios from 'axios';
import Redis from 'ioredis';
import { Tracer as NoopTracer, type Tracer } from 'opentracing';
import * as pg from 'pg';
import { installPatches, traced, uninstallAllPatches } from '../src';
import { PG, REDIS, uniqueName } from './helpers/db';
import { request } from './helpers/requests';
import { runAppWith } from './helpers/run-app';
import { startHttpServer, type TestServer } from './helpers/servers';
import { createTestTracer, tag, waitFor, type TestTracer } from './helpers/tracing';
import { unhandledDuring } from './helpers/unhandled';

/** A tracer whose startSpan returns `value` (inject and extract: OpenTracing's no-ops). */
function tracerReturning(value: unknown): Tracer {
  const tracer = new NoopTracer();
  tracer.startSpan = (() => value) as unknown as Tracer['startSpan'];
  return tracer;
}

describe('a tracer whose startSpan returns no span: calls go on untraced', () => {
  let server: TestServer;
  before(async () => (server = await startHttpServer()));
  after(async () => {
    uninstallAllPatches();
    await server.close();
  });

  const stub = { finish: () => undefined }; // has finish, but no context/setTag/log
  for (const [what, value] of [['null', null], ['undefined', undefined], ['a number', 42], ['a stub without context()', stub]] as const) {
    describe(`startSpan returns ${what}`, () => {
      before(() => installPatches(['http', 'https', 'axios', 'fetch', 'pg', 'ioredis', 'http-server'], { tracer: tracerReturning(value) }));

      it('http.get, and an http server', async () => {
        const reply = await request(`${server.origin}/ok`);
        assert.strictEqual(reply.status, 200);
      });

      it('axios', async () => {
        const res = await axios.get(`${server.origin}/ok`);
        assert.strictEqual(res.status, 200);
      });

      it('fetch', async () => {
        const res = await fetch(`${server.origin}/ok`);
        assert.strictEqual(res.status, 200);
        await res.text();
      });

      it('pg', async () => {
        const client = new pg.Client(PG);
        await client.connect();
        try {
          assert.deepStrictEqual((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
        } finally {
          await client.end();
        }
      });

      it('ioredis', async () => {
        const key = uniqueName('ot_nospan');
        const redis = new Redis(REDIS);
        try {
          assert.strictEqual(await redis.set(key, 'v', 'EX', 60), 'OK');
          assert.deepStrictEqual(await redis.pipeline().get(key).del(key).exec(), [[null, 'v'], [null, 1]]);
        } finally {
          redis.disconnect();
        }
      });

      it('traced', async () => {
        const double = traced(function double(n: number) {
          return n * 2;
        });
        assert.strictEqual(double(21), 42);
        assert.strictEqual(await traced(async (n: number) => n + 1)(1), 2);
      });
    });
  }
});

describe('isErrorStatus: only true marks an error', () => {
  let t: TestTracer;
  let server: TestServer;
  before(async () => {
    t = createTestTracer();
    server = await startHttpServer();
  });
  after(async () => {
    uninstallAllPatches();
    await server.close();
  });
  beforeEach(() => t.clear());
  afterEach(() => uninstallAllPatches());

  const predicates: Array<[string, (status: number) => unknown]> = [
    ['an async predicate that resolves false', async () => false],
    ['an async predicate that rejects', async () => Promise.reject(new Error('predicate rejected'))],
    ['a predicate that returns a truthy string', () => 'yes'],
    ['a predicate that returns 1', () => 1],
  ];
  for (const [what, isErrorStatus] of predicates) {
    describe(what, () => {
      const predicate = isErrorStatus as (status: number) => boolean;

      /** The one span of the call has no error tag, and no rejection escaped. */
      async function noError(call: () => Promise<void>, n = 1): Promise<void> {
        const reasons = await unhandledDuring(call);
        assert.deepStrictEqual(reasons, []);
        await waitFor(() => t.spans().length >= n);
        for (const span of t.spans()) assert.strictEqual(tag(span, 'error'), undefined, span.operationName);
      }

      it('http', async () => {
        installPatches(['http'], { tracer: t.tracer, http: { isErrorStatus: predicate } });
        await noError(async () => assert.strictEqual((await request(`${server.origin}/ok`)).status, 200));
      });

      it('axios', async () => {
        installPatches(['http', 'axios'], { tracer: t.tracer, axios: { isErrorStatus: predicate } });
        await noError(async () => assert.strictEqual((await axios.get(`${server.origin}/ok`)).status, 200));
      });

      it('fetch', async () => {
        installPatches(['fetch'], { tracer: t.tracer, fetch: { isErrorStatus: predicate } });
        await noError(async () => {
          const res = await fetch(`${server.origin}/ok`);
          await res.text();
        });
      });

      it('http-server', async () => {
        installPatches(['http-server'], { tracer: t.tracer, 'http-server': { isErrorStatus: predicate } });
        const own = await startHttpServer();
        try {
          await noError(async () => assert.strictEqual((await request(`${own.origin}/ok`)).status, 200));
        } finally {
          await own.close();
        }
      });
    });
  }

  it('true still marks an error, everywhere', async () => {
    installPatches(['http', 'axios', 'fetch', 'http-server'], {
      tracer: t.tracer,
      http: { isErrorStatus: () => true },
      axios: { isErrorStatus: () => true },
      fetch: { isErrorStatus: () => true },
      'http-server': { isErrorStatus: () => true },
    });
    await axios.get(`${server.origin}/ok`);
    await (await fetch(`${server.origin}/ok`)).text();
    await waitFor(() => t.spans().length >= 4);
    const errors = t.spans().map((s) => `${String(tag(s, 'component'))} ${String(tag(s, 'span.kind'))} ${String(tag(s, 'error'))}`);
    assert.deepStrictEqual(errors.sort(), ['axios client true', 'fetch client true', 'http server true', 'http server true']);
  });

  it('a non-boolean answer gets one diagnostic per patch, however many calls', async function () {
    this.timeout(20000);
    const app = `
      const http = require('http');
      const { installPatches } = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
      // hooks: with the no-op global tracer, only a patch with a hook follows the call to its response
      const hook = () => undefined;
      installPatches(['http', 'http-server'], { http: { isErrorStatus: async () => false, responseHook: hook }, 'http-server': { isErrorStatus: () => 'no', responseHook: hook } });
      const server = http.createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1', async () => {
        const get = () => new Promise((resolve, reject) =>
          http.get('http://127.0.0.1:' + server.address().port + '/', (res) => res.resume().on('end', resolve)).on('error', reject));
        for (let i = 0; i < 3; i++) await get();
        server.close();
        console.log('done');
      });
    `;
    const run = await runAppWith(['-e', app], __dirname, { NODE_DEBUG: 'opentracing-instrumentation' });
    assert.strictEqual(run.code, 0, run.stderr);
    const lines = run.stderr.split('\n').filter((l) => l.includes('not a boolean'));
    assert.deepStrictEqual(
      lines.map((l) => l.replace(/^.*?(isErrorStatus)/, '$1')).sort(),
      [
        'isErrorStatus of the http patch returned object, not a boolean; only true marks an error',
        'isErrorStatus of the http-server patch returned string, not a boolean; only true marks an error',
      ],
      run.stderr,
    );
  });
});

