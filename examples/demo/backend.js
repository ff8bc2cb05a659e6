'use strict';
// The demo's second service: an ordinary Express app with no tracing code
// but one `traced()` around the message handler. `npm run demo` runs it
// under `node -r ./register` (service name demo-backend); its server spans
// continue the traces of the front service's axios and fetch calls, and are
// named after the Express routes.
//
// GET /profile/:id also publishes a "profile viewed" message to a RabbitMQ
// queue; this process consumes it and counts the view in Redis: the message
// hop (amqp:publish -> amqp:consume -> recordView -> redis:INCR) joins the
// same trace.
const express = require('express');
const { traced } = require('opentracing-instrumentation');

const AMQP_URL = process.env.DEMO_AMQP_URL || ''; // empty: RabbitMQ is skipped
const QUEUE = process.env.DEMO_AMQP_QUEUE || `oti-demo.${process.pid}`;
const REDIS_URL = process.env.DEMO_REDIS_URL || ''; // empty: Redis is skipped
const KEY_PREFIX = process.env.DEMO_KEY_PREFIX || `demo:${process.pid}:`;

const redis = REDIS_URL ? new (require('ioredis'))(REDIS_URL, { maxRetriesPerRequest: 1 }) : null;
let channel = null; // set once the consumer is up
let inFlight = 0; // published, not yet handled

const recordView = traced(
  async function recordView(event) {
    if (redis) await redis.incr(`${KEY_PREFIX}views:${event.id}`);
  },
  { onStart: (span, event) => span.setTag('user.id', event.id) },
);

async function startConsumer() {
  const connection = await require('amqplib').connect(AMQP_URL);
  const ch = await connection.createChannel();
  // the queue is unique to the run; the demo runner deletes it (x-expires is the safety net)
  await ch.assertQueue(QUEUE, { durable: false, arguments: { 'x-expires': 60000 } });
  await ch.consume(QUEUE, (msg) => {
    if (msg === null) return; // the queue was deleted
    recordView(JSON.parse(msg.content.toString()))
      .catch((err) => process.stderr.write(`recordView: ${err && err.message}\n`))
      .finally(() => {
        ch.ack(msg);
        inFlight -= 1;
      });
  });
  channel = ch;
  return connection;
}

const app = express();

app.get('/profile/:id', (req, res) => {
  const id = Number(req.params.id);
  if (channel) {
    inFlight += 1;
    channel.sendToQueue(QUEUE, Buffer.from(JSON.stringify({ event: 'profile.viewed', id })), { contentType: 'application/json' });
  }
  setTimeout(() => res.json({ id, plan: 'pro', since: 2019 }), 8);
});

app.get('/recommendations/:id', (req, res) => {
  if (req.params.id === '7') {
    // a failing dependency, to show what an error looks like in a trace
    res.status(503).json({ error: 'recommendation engine overloaded' });
    return;
  }
  setTimeout(() => res.json({ items: ['tea', 'teapot', 'kettle'] }), 12);
});

async function main() {
  let connection = null;
  if (AMQP_URL) {
    connection = await startConsumer().catch((err) => {
      process.stderr.write(`RabbitMQ: ${err && err.message}; no message hop\n`);
      return null;
    });
  }
  const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ service: 'demo-backend', port: server.address().port })}\n`);
  });

  // The demo runner closes our stdin when it is done: handle the messages
  // still on their way, close down, let Node exit (register flushes the spans
  // on the way out).
  process.stdin.on('end', async () => {
    server.close();
    for (const deadline = Date.now() + 3000; inFlight > 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (connection) await connection.close().catch(() => undefined);
    if (redis) redis.disconnect(); // not quit(): its QUIT would be a trace of its own
  });
  process.stdin.resume();
}

main();
