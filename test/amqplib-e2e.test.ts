/**
 * End to end over RabbitMQ: two processes under `node -r ./register`, no
 * tracing code in either. The producer service handles an HTTP request and
 * publishes; the consumer process handles the message with a PostgreSQL
 * query. The spans the agent stand-in receives form one trace:
 * client GET → server GET → amqp:publish → amqp:consume (follows from it)
 * → pg:SELECT.
 */
import assert from 'assert';
import * as path from 'path';
import type * as Amqp from 'amqplib';
import { startJaegerAgent, type JaegerAgent } from '../tools/jaeger-agent';
import { PG, uniqueName } from './helpers/db';
import { runApp } from './helpers/run-app';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const amqp = require('amqplib') as typeof Amqp;
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

describe('amqplib end to end: producer and consumer processes under -r register', function () {
  this.timeout(30000);
  let agent: JaegerAgent;
  const queue = uniqueName('ot_amqp_e2e');

  before(async () => {
    agent = await startJaegerAgent();
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { autoDelete: false });
    await conn.close();
  });
  after(async () => {
    await agent.close();
    const conn = await amqp.connect(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue);
    await conn.close();
  });

  it('one trace: server → producer → consumer (follows from the producer) → the consumer\'s pg query', async () => {
    const env = {
      JAEGER_AGENT_HOST: '127.0.0.1',
      JAEGER_AGENT_PORT: String(agent.port),
      AMQP_URL,
      AMQP_QUEUE: queue,
      PGHOST: PG.host,
      PGPORT: String(PG.port),
      PGUSER: PG.user,
      PGDATABASE: PG.database,
    };
    const fixtures = path.join(__dirname, 'fixtures', 'messaging');
    const [consumer, producer] = await Promise.all([
      runApp(env, undefined, path.join(fixtures, 'e2e-consumer', 'app.js')),
      runApp(env, undefined, path.join(fixtures, 'e2e-producer', 'app.js')),
    ]);
    assert.strictEqual(producer.code, 0, producer.stderr);
    assert.strictEqual(consumer.code, 0, consumer.stderr);
    assert.deepStrictEqual(JSON.parse(producer.stdout), { body: 'queued' });
    assert.deepStrictEqual(JSON.parse(consumer.stdout), { body: 'order 42', one: 1 });
    const spans = await agent.waitForSpans(5, 10000);
    const names = JSON.stringify(spans.map((s) => [s.serviceName, s.operationName, s.tags['span.kind']]));
    const find = (service: string, op: string, kind: string): (typeof spans)[number] => {
      const found = spans.filter((s) => s.serviceName === service && s.operationName === op && s.tags['span.kind'] === kind);
      assert.strictEqual(found.length, 1, `${service} ${op} ${kind}: ${names}`);
      return found[0];
    };
    const client = find('fixture-amqp-producer', 'GET', 'client');
    const server = find('fixture-amqp-producer', 'GET', 'server');
    const publish = find('fixture-amqp-producer', 'amqp:publish', 'producer');
    const consume = find('fixture-amqp-consumer', 'amqp:consume', 'consumer');
    const query = find('fixture-amqp-consumer', 'pg:SELECT', 'client');
    assert.deepStrictEqual(
      [server, publish, consume, query].map((s) => [s.traceId, s.parentSpanId]),
      [
        [client.traceId, client.spanId],
        [client.traceId, server.spanId],
        // jaeger-client records a followsFrom reference's span as the parent id too (the reference type is in the Thrift references).
        [client.traceId, publish.spanId],
        [client.traceId, consume.spanId],
      ],
    );
    assert.strictEqual(consume.tags['message_bus.destination'], queue);
    assert.strictEqual(consume.tags['amqp.settlement'], 'ack');
  });
});
