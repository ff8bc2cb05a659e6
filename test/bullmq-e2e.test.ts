/**
 * End to end over BullMQ: two processes under `node -r ./register`, no
 * tracing code in either. The producer service handles an HTTP request and
 * adds a job; the worker process runs it with a PostgreSQL query. The spans
 * the agent stand-in receives form one trace: client GET → server GET →
 * bullmq:add → bullmq:process (follows from it) → pg:SELECT.
 */
import assert from 'assert';
import * as path from 'path';
import { startJaegerAgent, type JaegerAgent } from '../tools/jaeger-agent';
import { PG, REDIS, uniqueName } from './helpers/db';
import { runApp } from './helpers/run-app';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Queue } = require('bullmq') as { Queue: new (name: string, opts: object) => { obliterate(o: object): Promise<void>; close(): Promise<void> } };

describe('bullmq end to end: producer and worker processes under -r register', function () {
  this.timeout(30000);
  let agent: JaegerAgent;
  const queue = uniqueName('ot_bull_e2e');
  const prefix = uniqueName('ot_bull');

  before(async () => {
    agent = await startJaegerAgent();
  });
  after(async () => {
    await agent.close();
    const q = new Queue(queue, { connection: REDIS, prefix });
    await q.obliterate({ force: true });
    await q.close();
  });

  it('one trace: server → bullmq:add → bullmq:process (follows from it) → the worker\'s pg query', async () => {
    const env = {
      JAEGER_AGENT_HOST: '127.0.0.1',
      JAEGER_AGENT_PORT: String(agent.port),
      REDIS_HOST: REDIS.host,
      REDIS_PORT: String(REDIS.port),
      BULL_QUEUE: queue,
      BULL_PREFIX: prefix,
      PGHOST: PG.host,
      PGPORT: String(PG.port),
      PGUSER: PG.user,
      PGDATABASE: PG.database,
    };
    const fixtures = path.join(__dirname, 'fixtures', 'messaging');
    const [worker, producer] = await Promise.all([
      runApp(env, undefined, path.join(fixtures, 'e2e-bull-worker', 'app.js')),
      runApp(env, undefined, path.join(fixtures, 'e2e-bull-producer', 'app.js')),
    ]);
    assert.strictEqual(producer.code, 0, producer.stderr);
    assert.strictEqual(worker.code, 0, worker.stderr);
    assert.match((JSON.parse(producer.stdout) as { body: string }).body, /^queued \d+$/);
    assert.deepStrictEqual(JSON.parse(worker.stdout), { order: 42, one: 1 });
    await agent.waitForSpans(5, 10000);
    await new Promise((r) => setTimeout(r, 300));
    const spans = agent.spans;
    const names = JSON.stringify(spans.map((s) => [s.serviceName, s.operationName, s.tags['span.kind']]));
    const find = (service: string, op: string, kind: string): (typeof spans)[number] => {
      const found = spans.filter((s) => s.serviceName === service && s.operationName === op && s.tags['span.kind'] === kind);
      assert.strictEqual(found.length, 1, `${service} ${op} ${kind}: ${names}`);
      return found[0];
    };
    const client = find('fixture-bull-producer', 'GET', 'client');
    const server = find('fixture-bull-producer', 'GET', 'server');
    const add = find('fixture-bull-producer', 'bullmq:add', 'producer');
    const processing = find('fixture-bull-worker', 'bullmq:process', 'consumer');
    const query = find('fixture-bull-worker', 'pg:SELECT', 'client');
    assert.deepStrictEqual(
      [server, add, processing, query].map((s) => [s.traceId, s.parentSpanId]),
      [
        [client.traceId, client.spanId],
        [client.traceId, server.spanId],
        [client.traceId, add.spanId],
        [client.traceId, processing.spanId],
      ],
    );
    assert.strictEqual(processing.tags['message_bus.destination'], queue);
  });
});
