/**
 * The amqplib patch against the real RabbitMQ (127.0.0.1:5672): the client
 * contract for the producer side (publish, sendToQueue, confirm channels,
 * both APIs), then what only a consumer does: the followsFrom/childOf
 * reference to the producer, the span current while the message is
 * handled, finished once on every settle path (ack, ackAll, nack, nackAll,
 * reject, noAck, channel and connection close, timeout), hostile headers,
 * untrusted producers, and 1,000 messages across 10 consumers.
 * Versions: amqplib 2.x (installed `amqplib`) and 0.10.x (alias `amqplib-0.10`).
 */
import assert from 'assert';
import { randomBytes } from 'crypto';
import type { Span } from 'opentracing';
import type * as AmqpPromise from 'amqplib';
import { getCurrentSpan, installPatches, spanInContext, suppressInstrumentation, uninstallAllPatches } from '../src';
import type { AmqplibOptions } from '../src/hooks/amqplib';
import { patchModuleAs } from '../src/patcher';
import { describeClientContract } from './helpers/contract';
import { uniqueName, unhandled } from './helpers/db';
import { logs, spanId, tag, tags, traceId, useTracing, waitFor, type JaegerSpan, type TestTracer } from './helpers/tracing';

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

type Channel = AmqpPromise.Channel;
type ConfirmChannel = AmqpPromise.ConfirmChannel;
type Connection = Awaited<ReturnType<typeof AmqpPromise.connect>>;
type Message = AmqpPromise.ConsumeMessage;
/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
type CallbackApi = any;

const VERSIONS: Array<{ label: string; lib: () => typeof AmqpPromise; cb: () => CallbackApi; dir: string }> = [
  { label: 'amqplib 2', lib: () => require('amqplib') as typeof AmqpPromise, cb: () => require('amqplib/callback_api'), dir: 'amqplib' },
  { label: 'amqplib 0.10', lib: () => require('amqplib-0.10') as typeof AmqpPromise, cb: () => require('amqplib-0.10/callback_api'), dir: 'amqplib-0.10' },
];

/** lib/channel.js of a copy (hidden by amqplib 2's `exports` map: required by path). */
function libFile(dir: string, file: string): any {
  return require(require('path').join(__dirname, '..', 'node_modules', dir, 'lib', file));
}
/* eslint-enable @typescript-eslint/no-require-imports */

function cbp<T>(fn: (cb: (err: unknown, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

function named(t: TestTracer, op: string): JaegerSpan[] {
  return t.spans().filter((s) => s.operationName === op);
}

function refOf(span: JaegerSpan): { type: string; spanId: string } | undefined {
  const ref = span._references[0];
  if (ref === undefined) return undefined;
  const ctx = ref.referencedContext() as unknown as { toSpanId(): string };
  return { type: ref.type(), spanId: ctx.toSpanId() };
}

for (const version of VERSIONS) {
  const amqp = version.lib();
  const cbApi = version.cb();
  const base = libFile(version.dir, 'channel.js').Channel.prototype;
  const promiseModel = libFile(version.dir, 'channel_model.js').Channel.prototype;
  const callbackModel = libFile(version.dir, 'callback_model.js').Channel.prototype;
  /** The alias is not found under node_modules/amqplib: the test hands it to the registry (a no-op unless the patch is enabled). */
  const repatch = (): void => patchModuleAs('amqplib', amqp);

  describe(`amqplib patch (${version.label})`, () => {
    let conn: Connection;
    let ch: Channel;
    let confirm: ConfirmChannel;
    let cbConn: any;
    let cbCh: any;
    let cbConfirm: any;
    const queue = uniqueName('ot_amqp_q');
    const exchange = uniqueName('ot_amqp_x');

    describeClientContract({
      patch: 'amqplib',
      kind: 'producer',
      before: async () => {
        repatch();
        conn = await amqp.connect(AMQP_URL);
        ch = await conn.createChannel();
        confirm = await conn.createConfirmChannel();
        await ch.assertQueue(queue, { autoDelete: false });
        await ch.assertExchange(exchange, 'fanout', { autoDelete: false });
        cbConn = await cbp((cb) => cbApi.connect(AMQP_URL, cb));
        cbCh = await cbp((cb) => cbConn.createChannel(cb));
        cbConfirm = await cbp((cb) => cbConn.createConfirmChannel(cb));
      },
      after: async () => {
        await ch.deleteQueue(queue);
        await ch.deleteExchange(exchange);
        await conn.close();
        await cbp((cb) => cbConn.close(cb));
      },
      wrapped: () => [
        [base, 'sendMessage'],
        [base, 'pushConfirmCallback'],
        [base, 'sendImmediately'],
        [base, 'toClosed'],
        [promiseModel, 'consume'],
        [promiseModel, 'get'],
        [callbackModel, 'consume'],
        [callbackModel, 'get'],
      ],
      resolvedPath: {
        module: 'amqplib',
        probe: `(m) => { const p = require('path'); const c = require(p.join(p.dirname(require.resolve('amqplib')), 'lib', 'channel.js')); return [[c.Channel.prototype, 'sendMessage']]; }`,
      },
      callForms: [
        {
          name: 'channel.publish(exchange, routingKey, content, options)',
          operationName: 'amqp:publish',
          run: async (observe) => {
            repatch();
            ch.publish(exchange, 'rk', Buffer.from('x'), { headers: { a: '1' } });
            observe();
          },
        },
        {
          name: 'channel.sendToQueue(queue, content)',
          operationName: 'amqp:publish',
          run: async (observe) => {
            repatch();
            ch.sendToQueue(queue, Buffer.from('x'));
            observe();
          },
        },
        {
          name: 'confirmChannel.publish(exchange, routingKey, content, options, callback)',
          operationName: 'amqp:publish',
          run: (observe) => {
            repatch();
            return cbp((cb) => confirm.publish(exchange, 'rk', Buffer.from('x'), {}, (err) => (observe(), cb(err, undefined))));
          },
        },
        {
          name: 'callback_api channel.sendToQueue(queue, content)',
          operationName: 'amqp:publish',
          run: async (observe) => {
            repatch();
            cbCh.sendToQueue(queue, Buffer.from('x'));
            observe();
          },
        },
        {
          name: 'callback_api confirmChannel.sendToQueue(queue, content, options, callback)',
          operationName: 'amqp:publish',
          run: (observe) => {
            repatch();
            return cbp((cb) => cbConfirm.sendToQueue(queue, Buffer.from('x'), {}, (err: unknown) => (observe(), cb(err, undefined))));
          },
        },
      ],
    });

    describe('publish and consume', function () {
      this.timeout(30000);
      const t = useTracing(['amqplib']);
      let connection: Connection;
      let channel: Channel;
      const created: string[] = [];

      before(async () => {
        repatch();
        connection = await amqp.connect(AMQP_URL);
        channel = await connection.createChannel();
      });
      after(async () => {
        const cleaner = await connection.createChannel();
        for (const q of created) await cleaner.deleteQueue(q);
        await connection.close();
      });

      function withOptions(options: AmqplibOptions): void {
        before(() => {
          installPatches(['amqplib'], { tracer: t.tracer, amqplib: options });
          repatch();
        });
        after(() => {
          installPatches(['amqplib'], { tracer: t.tracer });
          repatch();
        });
      }

      async function freshQueue(ch: Channel = channel): Promise<string> {
        const q = uniqueName('ot_amqp_q');
        created.push(q);
        await ch.assertQueue(q, { autoDelete: false });
        return q;
      }

      /** Publishes under a fresh parent; returns the parent and the producer span id. */
      async function publishUnder(q: string, body = 'm', options: AmqpPromise.Options.Publish = {}): Promise<{ parent: Span; producer: JaegerSpan }> {
        const parent = t.tracer.startSpan('parent');
        spanInContext(parent, () => channel.sendToQueue(q, Buffer.from(body), options));
        parent.finish();
        const producers = named(t, 'amqp:publish');
        return { parent, producer: producers[producers.length - 1] };
      }

      /** Consumes one message with `handler`, resolves with the message and what was current in the handler. */
      function consumeOne(ch: Channel, q: string, handler: (m: Message) => unknown, options: AmqpPromise.Options.Consume = {}): Promise<{ message: Message; current: Span | undefined }> {
        return new Promise((resolve) => {
          void ch.consume(
            q,
            (m) => {
              if (m === null) return undefined;
              const current = getCurrentSpan();
              const result = handler(m);
              resolve({ message: m, current });
              return result;
            },
            options,
          );
        });
      }

      it('publish: contract tags; the trace context goes in a copy of the headers, the caller\'s options untouched', async () => {
        const q = await freshQueue();
        const headers = Object.freeze({ app: 'kept' });
        const options = Object.freeze({ headers, contentType: 'text/plain' });
        const { parent, producer } = await publishUnder(q, 'hello', options);
        assert.deepStrictEqual(Object.keys(headers), ['app']);
        assert.deepStrictEqual(Object.keys(options), ['headers', 'contentType']);
        assert.deepStrictEqual(tags(producer), {
          'span.kind': 'producer',
          component: 'amqplib',
          'message_bus.destination': q,
          'amqp.routing_key': q,
          'peer.ipv4': '127.0.0.1',
          'peer.port': 5672,
        });
        assert.strictEqual(traceId(producer), traceId(parent));
        const got = await channel.get(q, { noAck: true });
        assert.ok(got);
        assert.strictEqual(got.content.toString(), 'hello');
        assert.strictEqual(got.properties.headers?.app, 'kept');
        assert.match(String(got.properties.headers?.['uber-trace-id']), new RegExp(`^${traceId(parent)}:${spanId(producer)}:`));
      });

      it('publish to an exchange: destination is the exchange', async () => {
        const x = uniqueName('ot_amqp_x');
        await channel.assertExchange(x, 'direct', { autoDelete: false });
        try {
          channel.publish(x, 'key.1', Buffer.from('x'));
          const [span] = named(t, 'amqp:publish');
          assert.strictEqual(tag(span, 'message_bus.destination'), x);
          assert.strictEqual(tag(span, 'amqp.routing_key'), 'key.1');
        } finally {
          await channel.deleteExchange(x);
        }
      });

      it('a publish on a closed channel: amqplib\'s own error, no span (amqplib replaces the channel\'s sendMessage by a thrower)', async () => {
        const c = await connection.createChannel();
        await c.close();
        let thrown: unknown;
        try {
          c.sendToQueue('nowhere', Buffer.from('x'));
        } catch (err) {
          thrown = err;
        }
        assert.strictEqual((thrown as Error).name, 'IllegalOperationError');
        assert.deepStrictEqual(named(t, 'amqp:publish'), []);
      });

      it('confirm channel: the span is open until the broker confirms, then finished before the callback, which runs in the publisher\'s context', async () => {
        const c = await connection.createConfirmChannel();
        const q = await freshQueue();
        const parent = t.tracer.startSpan('parent');
        let inCallback: Span | undefined;
        let finishedAtCallback = -1;
        const done = new Promise<void>((resolve) =>
          spanInContext(parent, () =>
            c.sendToQueue(q, Buffer.from('x'), {}, () => {
              inCallback = getCurrentSpan();
              finishedAtCallback = named(t, 'amqp:publish').length;
              resolve();
            }),
          ),
        );
        assert.strictEqual(named(t, 'amqp:publish').length, 0, 'open until confirmed');
        await done;
        parent.finish();
        assert.strictEqual(finishedAtCallback, 1);
        assert.strictEqual(inCallback, parent);
        await c.close();
      });

      it('confirm channel, publish without a callback: amqplib\'s own empty slot (false) stays, the span ends when written', async () => {
        const c = await connection.createConfirmChannel();
        const q = await freshQueue();
        c.sendToQueue(q, Buffer.from('x'));
        assert.deepStrictEqual((c as unknown as { unconfirmed: unknown[] }).unconfirmed, [false]);
        assert.strictEqual(named(t, 'amqp:publish').length, 1);
        await c.waitForConfirms();
        await c.close();
      });

      it('a confirm channel closed before the confirm: the span fails with the channel\'s error, the callback gets it', async () => {
        const c = await connection.createConfirmChannel();
        const q = await freshQueue();
        const result = cbp((cb) => c.sendToQueue(q, Buffer.from('x'), {}, (err) => cb(null, err)));
        void c.close().catch(() => undefined);
        await result;
        await waitFor(() => named(t, 'amqp:publish').length === 1);
      });

      it('consume: one consumer span following from the producer, current while handled, finished at ack', async () => {
        const q = await freshQueue();
        const { producer } = await publishUnder(q);
        let later: Span | undefined;
        let ack!: () => void;
        const { message, current } = await consumeOne(channel, q, (m) => {
          setTimeout(() => {
            later = getCurrentSpan();
          }, 1);
          ack = () => channel.ack(m);
        });
        await waitFor(() => later !== undefined);
        assert.strictEqual(named(t, 'amqp:consume').length, 0, 'not finished before the ack');
        ack();
        const [consumer] = named(t, 'amqp:consume');
        assert.ok(consumer, 'finished at the ack');
        assert.strictEqual(current, consumer as unknown as Span, 'current in the callback');
        assert.strictEqual(later, consumer as unknown as Span, 'current in work the callback started');
        assert.deepStrictEqual(refOf(consumer), { type: 'follows_from', spanId: spanId(producer) });
        assert.strictEqual(traceId(consumer), traceId(producer));
        assert.deepStrictEqual(tags(consumer), {
          'span.kind': 'consumer',
          component: 'amqplib',
          'message_bus.destination': q,
          'amqp.routing_key': q,
          'amqp.redelivered': false,
          'peer.ipv4': '127.0.0.1',
          'peer.port': 5672,
          'amqp.settlement': 'ack',
        });
        assert.strictEqual(message.content.toString(), 'm');
      });

      describe('consumerReference: childOf', () => {
        withOptions({ consumerReference: 'childOf' });
        it('the consumer span is a child of the producer span', async () => {
          const q = await freshQueue();
          const { producer } = await publishUnder(q);
          await consumeOne(channel, q, (m) => channel.ack(m));
          const [consumer] = named(t, 'amqp:consume');
          assert.deepStrictEqual(refOf(consumer), { type: 'child_of', spanId: spanId(producer) });
        });
      });

      for (const [how, settle, expected] of [
        ['nack', (c: Channel, m: Message) => c.nack(m, false, false), 'nack'],
        ['reject', (c: Channel, m: Message) => c.reject(m, false), 'reject'],
        ['ackAll', (c: Channel) => c.ackAll(), 'ack'],
        ['nackAll', (c: Channel) => c.nackAll(false), 'nack'],
      ] as const) {
        it(`settled by ${how}: finished once, amqp.settlement=${expected}`, async () => {
          const q = await freshQueue();
          await publishUnder(q);
          const c = await connection.createChannel();
          const { message } = await consumeOne(c, q, () => undefined);
          await new Promise((r) => setTimeout(r, 10));
          assert.strictEqual(named(t, 'amqp:consume').length, 0);
          settle(c, message);
          const [consumer] = named(t, 'amqp:consume');
          assert.strictEqual(tag(consumer, 'amqp.settlement'), expected);
          await c.close();
          assert.strictEqual(named(t, 'amqp:consume').length, 1);
        });
      }

      it('ack(message, allUpTo): every message up to it is finished, later ones stay open', async () => {
        const q = await freshQueue();
        for (let i = 0; i < 3; i++) await publishUnder(q, String(i));
        const c = await connection.createChannel();
        const got: Message[] = [];
        await new Promise<void>((resolve) => {
          void c.consume(q, (m) => {
            if (m) got.push(m);
            if (got.length === 3) resolve();
          });
        });
        c.ack(got[1], true);
        assert.deepStrictEqual(named(t, 'amqp:consume').length, 2);
        c.ack(got[2]);
        assert.deepStrictEqual(named(t, 'amqp:consume').length, 3);
        await c.close();
      });

      it('noAck: finished when the callback returns, or when its promise settles', async () => {
        const q = await freshQueue();
        await publishUnder(q, 'sync');
        await publishUnder(q, 'async');
        const c = await connection.createChannel();
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let seen = 0;
        await c.consume(
          q,
          (m) => {
            seen++;
            if (m?.content.toString() === 'async') return gate;
            return undefined;
          },
          { noAck: true },
        );
        await waitFor(() => seen === 2);
        assert.strictEqual(named(t, 'amqp:consume').length, 1, 'the sync one');
        release();
        await waitFor(() => named(t, 'amqp:consume').length === 2);
        assert.deepStrictEqual(named(t, 'amqp:consume').map((s) => tag(s, 'amqp.settlement')), ['noAck', 'noAck']);
        await c.close();
      });

      it('a callback that throws: the error is on the span, the same error reaches amqplib, finished at settlement', async () => {
        const q = await freshQueue();
        await publishUnder(q);
        const c = await connection.createChannel();
        const boom = new Error('handler failed');
        const errors: unknown[] = [];
        c.on('error', (e) => errors.push(e));
        // amqplib 2 hands a throwing consumer's error to 'handler-error' listeners when there are some.
        c.on('handler-error', (e: unknown) => errors.push(e));
        const delivered = new Promise<Message>((resolve) => {
          void c.consume(q, (m) => {
            resolve(m!);
            throw boom;
          });
        });
        const m = await delivered;
        await waitFor(() => errors.length > 0 || named(t, 'amqp:consume').length > 0, 3000).catch(() => undefined);
        if (named(t, 'amqp:consume').length === 0) c.ack(m);
        await waitFor(() => named(t, 'amqp:consume').length === 1);
        const [consumer] = named(t, 'amqp:consume');
        assert.strictEqual(tag(consumer, 'error'), true);
        if (errors.length > 0) assert.ok(errors.includes(boom) || errors.some((e) => (e as Error).message.includes('handler failed')));
        await c.close().catch(() => undefined);
      });

      it('channel closed with messages unsettled: each span finished once, with a log', async () => {
        const q = await freshQueue();
        await publishUnder(q);
        await publishUnder(q);
        const c = await connection.createChannel();
        let n = 0;
        await c.consume(q, () => void n++);
        await waitFor(() => n === 2);
        await c.close();
        const spans = named(t, 'amqp:consume');
        assert.strictEqual(spans.length, 2);
        for (const s of spans) {
          assert.strictEqual(tag(s, 'amqp.settlement'), 'closed');
          assert.ok(logs(s).some((l) => l.event === 'channel_closed'));
        }
      });

      it('connection closed with messages unsettled: finished', async () => {
        const q = await freshQueue();
        await publishUnder(q);
        const other = await amqp.connect(AMQP_URL);
        const c = await other.createChannel();
        let n = 0;
        await c.consume(q, () => void n++);
        await waitFor(() => n === 1);
        await other.close();
        assert.strictEqual(named(t, 'amqp:consume').length, 1);
      });

      describe('settleTimeout', () => {
        withOptions({ settleTimeout: 40 });
        it('a message never settled: the span is finished after the timeout, with a log; a later ack changes nothing', async () => {
          const q = await freshQueue();
          await publishUnder(q);
          const c = await connection.createChannel();
          const { message } = await consumeOne(c, q, () => undefined);
          await waitFor(() => named(t, 'amqp:consume').length === 1, 2000);
          const [consumer] = named(t, 'amqp:consume');
          assert.strictEqual(tag(consumer, 'amqp.settlement'), 'timeout');
          assert.ok(logs(consumer).some((l) => l.event === 'settle_timeout'));
          c.ack(message);
          await c.close();
          assert.strictEqual(named(t, 'amqp:consume').length, 1);
        });
      });

      it('a message without trace headers: a root consumer span', async () => {
        const q = await freshQueue();
        suppressInstrumentation(() => channel.sendToQueue(q, Buffer.from('plain')));
        await consumeOne(channel, q, (m) => channel.ack(m));
        const [consumer] = named(t, 'amqp:consume');
        assert.strictEqual(consumer._references.length, 0);
        assert.strictEqual(consumer.context().parentIdStr ?? undefined, undefined);
      });

      it('hostile trace headers (fuzz, 300 messages): every message handled, every span finished, never a parent from garbage', async () => {
        const q = await freshQueue();
        const rnd = (n: number): string => randomBytes(n).toString('hex');
        const hostile = (i: number): Record<string, unknown> => {
          switch (i % 10) {
            case 0: return { 'uber-trace-id': rnd(i % 40) };
            case 1: return { 'uber-trace-id': `${rnd(20)}:${rnd(9)}:0:1` };
            case 2: return { 'uber-trace-id': ':::', 'jaeger-debug-id': rnd(4) };
            case 3: return { 'jaeger-debug-id': 'forced' };
            case 4: return { 'uber-trace-id': Buffer.from(rnd(8)), 'uberctx-x': Buffer.alloc(9000, 1) };
            case 5: return { 'uber-trace-id': 12345, 'uberctx-evil\r\nInjected': 'v' };
            case 6: return { 'UBER-TRACE-ID': `0:0:0:${i}` };
            case 7: return { 'uber-trace-id': { nested: true }, traceparent: 'zz' };
            case 8: return Object.fromEntries(Array.from({ length: 300 }, (_, k) => [`uberctx-k${k}`, 'v']));
            default: return { 'uber-trace-id': `${'f'.repeat(1000)}:1:0:1` };
          }
        };
        const N = 300;
        for (let i = 0; i < N; i++) suppressInstrumentation(() => channel.sendToQueue(q, Buffer.from(String(i)), { headers: hostile(i) }));
        const c = await connection.createChannel();
        let handled = 0;
        await c.consume(q, (m) => {
          handled++;
          c.ack(m!);
        });
        await waitFor(() => handled === N, 10000);
        const spans = named(t, 'amqp:consume');
        assert.strictEqual(spans.length, N);
        for (const s of spans) assert.strictEqual(s._references.length, 0, 'no reference from a malformed context');
        await c.close();
      });

      describe('trustIncomingContext: false', () => {
        withOptions({ trustIncomingContext: false });
        it('the consumer starts a new trace: no sampling flag, debug id or baggage from the producer', async () => {
          const q = await freshQueue();
          const parent = t.tracer.startSpan('parent');
          parent.setBaggageItem('tenant', 'planted');
          spanInContext(parent, () => channel.sendToQueue(q, Buffer.from('x'), { headers: { 'jaeger-debug-id': 'forced' } }));
          parent.finish();
          let baggage: string | undefined = 'unset';
          await consumeOne(channel, q, (m) => {
            baggage = getCurrentSpan()?.getBaggageItem('tenant');
            channel.ack(m);
          });
          const [consumer] = named(t, 'amqp:consume');
          assert.notStrictEqual(traceId(consumer), traceId(parent));
          assert.strictEqual(consumer._references.length, 0);
          assert.strictEqual(baggage, undefined);
        });
      });

      it('trusted (the default): the producer\'s baggage reaches the consumer', async () => {
        const q = await freshQueue();
        const parent = t.tracer.startSpan('parent');
        parent.setBaggageItem('tenant', 'acme');
        spanInContext(parent, () => channel.sendToQueue(q, Buffer.from('x')));
        parent.finish();
        let baggage: string | undefined;
        await consumeOne(channel, q, (m) => {
          baggage = getCurrentSpan()?.getBaggageItem('tenant');
          channel.ack(m);
        });
        assert.strictEqual(baggage, 'acme');
      });

      it('channel.get (promise): a consumer span per message, finished at ack; the promise is amqplib\'s', async () => {
        const q = await freshQueue();
        const { producer } = await publishUnder(q);
        const got = await channel.get(q);
        assert.ok(got);
        assert.strictEqual(named(t, 'amqp:consume').length, 0);
        channel.ack(got);
        const [consumer] = named(t, 'amqp:consume');
        assert.deepStrictEqual(refOf(consumer), { type: 'follows_from', spanId: spanId(producer) });
        assert.strictEqual(await channel.get(q), false, 'an empty queue: false, no span');
        assert.strictEqual(named(t, 'amqp:consume').length, 1);
      });

      it('channel.get (promise) that rejects and nobody handles: still reported unhandled, for amqplib\'s own promise', async () => {
        const c = await connection.createChannel();
        c.on('error', () => undefined); // the broker closes the channel: 404, no such queue
        let got: Promise<unknown> | undefined;
        const seen = await unhandled(() => {
          got = c.get(uniqueName('ot_amqp_missing'));
        }, 500);
        assert.strictEqual(seen.length, 1);
        assert.strictEqual(seen[0].promise, got);
        assert.match(JSON.stringify(seen[0].reason) + String((seen[0].reason as Error).message), /404|NOT_FOUND/);
        assert.strictEqual(named(t, 'amqp:consume').length, 0);
      });

      it('callback_api: consume and get, the consumer span current in the callback, finished at ack', async () => {
        const q = await freshQueue();
        await publishUnder(q, 'a');
        await publishUnder(q, 'b');
        const conn2 = await cbp<any>((cb) => cbApi.connect(AMQP_URL, cb));
        const c = await cbp<any>((cb) => conn2.createChannel(cb));
        const viaGet = await new Promise<{ m: Message; current: Span | undefined }>((resolve, reject) =>
          c.get(q, {}, (err: unknown, m: Message) => (err ? reject(err) : resolve({ m, current: getCurrentSpan() }))),
        );
        c.ack(viaGet.m);
        const viaConsume = await new Promise<{ m: Message; current: Span | undefined }>((resolve) =>
          c.consume(q, (m: Message) => resolve({ m, current: getCurrentSpan() }), {}, () => undefined),
        );
        c.ack(viaConsume.m);
        const spans = named(t, 'amqp:consume');
        assert.strictEqual(spans.length, 2);
        assert.strictEqual(viaGet.current, spans[0] as unknown as Span);
        assert.strictEqual(viaConsume.current, spans[1] as unknown as Span);
        await cbp((cb) => conn2.close(cb));
      });

      it('request and response hooks see the message and its settlement', async () => {
        const seen: string[] = [];
        installPatches(['amqplib'], {
          tracer: t.tracer,
          amqplib: {
            requestHook: (_s, r) => seen.push(`req:${r.operation}`),
            responseHook: (r) => seen.push(`res:${r.operation}:${r.operation === 'consume' ? r.settlement : r.written}`),
          },
        });
        repatch();
        try {
          const q = await freshQueue();
          await publishUnder(q);
          await consumeOne(channel, q, (m) => channel.ack(m));
          assert.deepStrictEqual(seen, ['req:publish', 'res:publish:true', 'req:consume', 'res:consume:ack']);
        } finally {
          installPatches(['amqplib'], { tracer: t.tracer });
          repatch();
        }
      });

      it('1,000 messages across 10 consumers (prefetch 5): each consumer span under its own producer, current across awaits, none left open', async function () {
        this.timeout(60000);
        const q = await freshQueue();
        const N = 1000;
        const producerOf = new Map<string, string>();
        for (let i = 0; i < N; i++) {
          const parent = t.tracer.startSpan('request');
          spanInContext(parent, () => channel.sendToQueue(q, Buffer.from(String(i))));
          parent.finish();
          const producers = named(t, 'amqp:publish');
          producerOf.set(String(i), spanId(producers[producers.length - 1]));
        }
        const consumerOf = new Map<string, Span>();
        const wrong: string[] = [];
        let done = 0;
        const channels: Channel[] = [];
        for (let k = 0; k < 10; k++) {
          const c = await connection.createChannel();
          await c.prefetch(5);
          channels.push(c);
          await c.consume(q, async (m) => {
            const id = m!.content.toString();
            const mine = getCurrentSpan();
            consumerOf.set(id, mine!);
            await new Promise((r) => setTimeout(r, Math.random() * 3));
            if (getCurrentSpan() !== mine) wrong.push(id);
            c.ack(m!);
            done++;
          });
        }
        await waitFor(() => done === N, 50000);
        for (const c of channels) await c.close();
        const spans = named(t, 'amqp:consume');
        assert.strictEqual(spans.length, N);
        assert.deepStrictEqual(wrong, []);
        for (const [id, span] of consumerOf) {
          assert.strictEqual(refOf(span as JaegerSpan)?.spanId, producerOf.get(id), `message ${id}`);
          assert.strictEqual(tag(span as JaegerSpan, 'amqp.settlement'), 'ack');
        }
        assert.strictEqual(t.accounting.open.size, 0);
      });

      it('uninstall: a consumer registered before gets no span, the message as usual', async () => {
        const q = await freshQueue();
        const c = await connection.createChannel();
        let got: Message | undefined;
        await c.consume(q, (m) => {
          if (m === null) return;
          got = m;
          c.ack(m);
        });
        uninstallAllPatches();
        try {
          channel.sendToQueue(q, Buffer.from('after'));
          await waitFor(() => got !== undefined);
          assert.strictEqual(got!.content.toString(), 'after');
          assert.strictEqual(got!.properties.headers?.['uber-trace-id'], undefined);
          assert.deepStrictEqual(t.spans(), []);
        } finally {
          installPatches(['amqplib'], { tracer: t.tracer });
          repatch();
          await c.close();
        }
      });
    });
  });
}
