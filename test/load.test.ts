/**
 * Load and context isolation: many concurrent "requests", each with its own
 * parent span, each making http, axios, fetch, pg and ioredis calls, first
 * all at once and then one after the other in a shuffled order. Every client
 * span must be a child of its own request's span, every span finished exactly
 * once, the trace headers received by the server must name the client span
 * of the same call, and the current span the application sees after each
 * call must still be its request's span.
 *
 * Resources are bounded for a 2-core machine: one keep-alive http agent of
 * 64 sockets, one undici agent of 64 connections, one pg pool of 8, one Redis
 * connection. `LOAD_REQUESTS` changes the number of requests (default 1000).
 */
import assert from 'assert';
import axios from 'axios';
import * as http from 'http';
import type { Span } from 'opentracing';
import * as undici from 'undici';
import { getCurrentSpan, spanInContext } from '../src';
import { TAG } from '../src/constants';
import { record } from './helpers/reliability';
import { startHttpServer, type TestServer } from './helpers/servers';
import { parentId, spanId, tag, useTracing, type JaegerSpan } from './helpers/tracing';
import { loadCalls, type LoadCall, type LoadResources } from './scenarios/load-calls';

const REQUESTS = Number(process.env.LOAD_REQUESTS ?? 1000);

/** Small random delays on the server, so that responses come back out of order. */
function jitteringServer(): Promise<TestServer> {
  return startHttpServer((req, res) => {
    const delay = Math.floor(Math.random() * 4);
    const timer = setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url }));
    }, delay);
    res.on('close', () => clearTimeout(timer));
  });
}

function shuffled<T>(items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

describe(`load: ${REQUESTS} concurrent requests, each with its own parent, each calling every client`, () => {
  const t = useTracing(['http', 'https', 'axios', 'fetch', 'pg', 'ioredis']);
  let server: TestServer;
  const resources = {} as LoadResources;
  let calls: LoadCall[];
  before(async () => {
    server = await jitteringServer();
    resources.origin = server.origin;
    resources.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    resources.undiciAgent = new undici.Agent({ connections: 64 });
    resources.axios = axios.create({ httpAgent: resources.httpAgent, proxy: false });
    calls = await loadCalls(resources);
  });
  after(async () => {
    for (const c of calls ?? []) await c.close?.();
    resources.httpAgent.destroy();
    await resources.undiciAgent.close();
    await server.close();
  });

  it('puts every client span under its own request, finishes each once, keeps the context', async function () {
    this.timeout(180000);
    const started = Date.now();
    const parents: Span[] = [];
    const contextLost: string[] = [];
    const failures: string[] = [];
    let contextChecks = 0;

    async function oneRequest(i: number): Promise<void> {
      const parent = parents[i];
      const check = (where: string): void => {
        contextChecks++;
        if (getCurrentSpan() !== parent) contextLost.push(`request ${i}: ${where}`);
      };
      const run = async (call: LoadCall, round: string): Promise<void> => {
        try {
          await call.run(i, round);
        } catch (err) {
          failures.push(`request ${i} ${call.name} ${round}: ${(err as Error).message}`);
        }
        check(`after ${call.name} ${round}`);
      };
      // Round a: every client at once; round b: one after the other, in a random order.
      await Promise.all(calls.map((call) => run(call, 'a')));
      check('after round a');
      for (const call of shuffled(calls)) await run(call, 'b');
    }

    for (let i = 0; i < REQUESTS; i++) parents.push(t.tracer.startSpan(`request ${i}`));
    await Promise.all(parents.map((parent, i) => spanInContext(parent, () => oneRequest(i))));
    for (const parent of parents) parent.finish();
    const ms = Date.now() - started;

    assert.deepStrictEqual(failures.slice(0, 10), [], `${failures.length} calls failed`);
    assert.deepStrictEqual(contextLost.slice(0, 10), [], `${contextLost.length} times the app saw another current span`);

    // Every client span, attributed to its request by what the call carried (path, SQL comment, key).
    const byId = new Map<string, JaegerSpan>();
    const parentIds = new Map(parents.map((p, i) => [spanId(p), i]));
    const wrongParent: string[] = [];
    const perKind = new Map<string, number>();
    for (const span of t.spans()) {
      const component = tag(span, TAG.COMPONENT) as string | undefined;
      if (component === undefined) continue; // a request span
      byId.set(spanId(span), span);
      const call = calls.find((c) => c.component === component);
      assert.ok(call, `unexpected ${component} span ${span.operationName}`);
      const owner = call.requestOf(span);
      assert.ok(owner !== undefined, `${component} span without a request id: ${span.operationName}`);
      perKind.set(call.name, (perKind.get(call.name) ?? 0) + 1);
      if (parentIds.get(parentId(span) ?? '') !== owner) wrongParent.push(`${call.name} of request ${owner} under ${parentId(span)}`);
    }
    assert.deepStrictEqual(wrongParent.slice(0, 10), [], `${wrongParent.length} child spans under the wrong parent`);
    for (const call of calls) {
      assert.strictEqual(perKind.get(call.name), REQUESTS * 2 * call.spansPerCall, `${call.name} spans`);
    }

    // What the server received: the trace header of each call names that call's client span.
    const headerMismatch: string[] = [];
    for (const r of server.received) {
      const m = /^\/load\/(\d+)\//.exec(r.url);
      if (!m) continue;
      const header = String(r.headers['uber-trace-id'] ?? '');
      const span = byId.get(header.split(':')[1] ?? '');
      if (span === undefined || parentIds.get(parentId(span) ?? '') !== Number(m[1])) headerMismatch.push(`${r.url}: ${header}`);
    }
    assert.strictEqual(server.received.length, REQUESTS * 2 * calls.filter((c) => c.viaServer).length);
    assert.deepStrictEqual(headerMismatch.slice(0, 10), [], `${headerMismatch.length} requests carried another call's context`);

    const a = t.accounting;
    assert.strictEqual(a.doubleFinished, 0);
    assert.strictEqual(a.open.size, 0, `${a.open.size} spans left open`);
    const clientSpans = [...perKind.values()].reduce((x, y) => x + y, 0);
    record('load.isolation', {
      area: 'Load and context isolation',
      what: `${REQUESTS} concurrent requests, each with its own parent span, each making ${calls.map((c) => c.name).join(', ')} calls (all at once, then one by one shuffled)`,
      unit: 'client spans',
      lostMeans: 'a child span under the wrong parent, unfinished or finished twice; a trace header naming another call; a call that failed',
      tried: clientSpans,
      lost: wrongParent.length + headerMismatch.length + failures.length + a.open.size + a.doubleFinished,
      notes: [`${REQUESTS * 2 * calls.length} calls in ${ms} ms; ${server.received.length} trace headers checked at the server`],
    });
    record('load.context', {
      area: 'Load and context isolation',
      what: 'the current span the application sees after each call and each round, in the same load run',
      unit: 'checks',
      lostMeans: 'the application saw another request\'s span (or none) as current',
      tried: contextChecks,
      lost: contextLost.length,
    });
  });
});

describe('queued work keeps its caller: an undici pool with every connection busy', () => {
  // Captured at load time, before any test installs the patches.
  const dispatcherBase = Object.getPrototypeOf(undici.Agent.prototype) as { dispatch: unknown };
  const originalDispatch = dispatcherBase.dispatch;
  const t = useTracing(['http', 'https', 'axios', 'fetch']);
  let server: TestServer;
  let agent: undici.Agent;
  before(async () => {
    server = await jitteringServer();
    agent = new undici.Agent({ connections: 2 });
  });
  after(async () => {
    await agent.close();
    await server.close();
    assert.strictEqual(dispatcherBase.dispatch, originalDispatch, 'uninstall did not put back the very same dispatch');
  });

  const forms: Array<[string, (url: string) => Promise<unknown>]> = [
    ['global fetch', async (url) => (await fetch(url, { dispatcher: agent } as unknown as RequestInit)).text()],
    ['undici.fetch', async (url) => (await undici.fetch(url, { dispatcher: agent })).text()],
    ['undici.request', async (url) => (await undici.request(url, { dispatcher: agent })).body.text()],
  ];
  for (const [name, get] of forms) {
    it(`${name}: 20 callers, two connections: each span under its own caller`, async () => {
      // Connected clients busy with a request each: the pool queues the others
      // (a client still connecting takes them all at once).
      await get(`${server.origin}/warm-up`);
      t.clear();
      const parents = Array.from({ length: 20 }, (_, i) => t.tracer.startSpan(`caller ${i}`));
      await Promise.all(parents.map((p, i) => spanInContext(p, () => get(`${server.origin}/load/${i}/queued`))));
      for (const p of parents) p.finish();
      const children = t.spans().filter((s) => tag(s, TAG.COMPONENT) === 'fetch');
      assert.strictEqual(children.length, 20);
      for (const span of children) {
        const i = Number(/\/load\/(\d+)\//.exec(String(tag(span, TAG.HTTP_URL)))![1]);
        assert.strictEqual(parentId(span), spanId(parents[i]), `the call of caller ${i} is under another caller`);
      }
    });
  }
});
