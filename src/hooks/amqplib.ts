/**
 * amqplib (0.10.x and 2.x; the promise API `amqplib` and `amqplib/callback_api`).
 *
 * The seam both APIs share is lib/channel.js: every `publish`/`sendToQueue`
 * (plain and confirm channels) goes through `Channel#sendMessage` with the
 * properties `Args.publish` built for that call; confirm channels then call
 * `pushConfirmCallback`; every `ack`/`ackAll`/`nack`/`nackAll`/`reject`
 * sends its method frame through `sendImmediately`; every way a channel
 * closes (client, server, connection) ends in `toClosed`. Only `consume` and
 * `get`, which know the queue, live in the two model files. None of these is
 * reachable from the package's main exports (amqplib 2's `exports` map hides
 * lib/), so `patch` loads them next to the exports' own file.
 */
import { createRequire } from 'module';
import { AMQP, MESSAGING, TAG } from '../constants';
import { currentStore, runInStore, spanInContext } from '../context';
import { startCall, extractFrom, type Call } from '../call';
import type { Instrumentation } from '../instrumentation';
import type { AmqpChannel, AmqpDefs, AmqpMessage, AmqpModelChannel, AmqpPublishFields } from '../internal-types';
import { logOnce } from '../logger';
import { optionsOf, type PatchOptions } from '../options';
import { withPromiseSeam } from '../promise-seam';
import { addPeerTags, logFields } from '../span';
import { originalOf, unwrapMethod, wrapMethod } from '../wrap';

/** What the amqplib request hook receives: the message being published, or the message delivered. */
export type AmqplibRequest =
  | { operation: 'publish'; exchange: string; routingKey: string; content: unknown; properties: Record<string, unknown> }
  | { operation: 'consume'; queue: string; message: AmqpMessage };

/** What the amqplib response hook receives: what `publish` returned, or how the message was settled. */
export type AmqplibResponse =
  | { operation: 'publish'; written: boolean }
  | { operation: 'consume'; settlement: 'ack' | 'nack' | 'reject' | 'noAck' | 'closed' | 'timeout' };

/** Options of the `amqplib` patch. */
export interface AmqplibOptions extends PatchOptions<AmqplibRequest, AmqplibResponse> {
  /**
   * How a consumer span refers to the producer's span found in the message:
   * `followsFrom` (the producer does not wait for the consumer) or `childOf`.
   * @default 'followsFrom'
   */
  consumerReference?: 'followsFrom' | 'childOf';
  /**
   * Whether consumers continue the trace a message carries. When it says no
   * (queues fed by producers outside your system), the consumer span starts
   * a new trace and nothing the producer sent (sampling flags, debug id,
   * baggage) reaches it. A predicate that throws counts as false.
   * @default true
   */
  trustIncomingContext?: boolean | ((message: AmqpMessage) => boolean);
  /**
   * Milliseconds after delivery when the consumer span of a message not yet
   * settled (acked, nacked, rejected) is finished anyway, with a
   * `settle_timeout` log; the message itself is left alone. 0: never.
   * @default 60000
   */
  settleTimeout?: number;
}

type Settlement = Extract<AmqplibResponse, { operation: 'consume' }>['settlement'];
interface Consumed {
  readonly call: Call<AmqplibResponse>;
  timer?: ReturnType<typeof setTimeout>;
  error?: unknown;
}
interface Seams {
  readonly base: AmqpChannel;
  readonly promiseModel: AmqpModelChannel;
  readonly callbackModel: AmqpModelChannel;
  readonly defs: AmqpDefs;
}

const PATCH = 'amqplib';
const seamsByExports = new WeakMap<object, Seams>();
/** Per channel, the consumer spans of its messages not yet settled, by delivery tag. */
const unsettled = new WeakMap<object, Map<number, Consumed>>();
/** Per confirm channel, the publish sent whose confirm callback is about to be registered (amqplib 2)... */
const publishedConfirm = new WeakMap<object, Confirm>();
/** ... or the confirm callback registered for the publish about to be sent (0.10). */
const pushedConfirm = new WeakMap<object, Confirm>();
let active = 0;

/** lib/channel.js and the two model files of the copy whose entry file exported `exports`. */
function seamsOf(exports: object): Seams {
  let seams = seamsByExports.get(exports);
  if (seams !== undefined) return seams;
  const file = Object.values(require.cache).find((m) => m !== undefined && m.exports === exports)?.filename;
  if (file === undefined) throw new Error('amqplib entry file not found in the require cache');
  const load = createRequire(file);
  seams = {
    base: (load('./lib/channel.js') as { Channel: { prototype: AmqpChannel } }).Channel.prototype,
    promiseModel: (load('./lib/channel_model.js') as { Channel: { prototype: AmqpModelChannel } }).Channel.prototype,
    callbackModel: (load('./lib/callback_model.js') as { Channel: { prototype: AmqpModelChannel } }).Channel.prototype,
    defs: load('./lib/defs.js') as AmqpDefs,
  };
  seamsByExports.set(exports, seams);
  return seams;
}

function peerTags(channel: AmqpChannel, tags: Record<string, string | number | boolean | undefined>): void {
  const stream = channel.connection?.stream;
  if (stream !== undefined) addPeerTags(tags, stream.remoteAddress, stream.remotePort);
}

function startPublish(channel: AmqpChannel, fields: AmqpPublishFields, content: unknown): Call<AmqplibResponse> | undefined {
  const exchange = String(fields.exchange ?? '');
  const routingKey = String(fields.routingKey ?? '');
  return startCall<AmqplibRequest, AmqplibResponse>(PATCH, {
    operationName: AMQP.PUBLISH,
    kind: MESSAGING.SPAN_KIND_PRODUCER,
    tags: (t) => {
      t[MESSAGING.DESTINATION] = exchange === '' ? routingKey : exchange;
      t[AMQP.ROUTING_KEY] = routingKey;
      peerTags(channel, t);
    },
    request: () => ({ operation: 'publish', exchange, routingKey, content, properties: fields }),
  });
}

/** A publish on a confirm channel and its confirm callback, met in either order (see `wrapPushConfirmCallback`). */
interface Confirm {
  call?: Call<AmqplibResponse>;
  /** No confirm callback: the span ends when the message is written. */
  written?: boolean;
}

function wrapSendMessage(original: AmqpChannel['sendMessage']): AmqpChannel['sendMessage'] {
  return function sendMessage(this: AmqpChannel, fields, properties, content) {
    let confirm: Confirm | undefined;
    if (typeof this.waitForConfirms === 'function') {
      confirm = pushedConfirm.get(this);
      if (confirm !== undefined) pushedConfirm.delete(this);
      else publishedConfirm.set(this, (confirm = {}));
    }
    const call = active > 0 && fields !== null && typeof fields === 'object' ? startPublish(this, fields, content) : undefined;
    if (call === undefined) return original.apply(this, arguments as unknown as Parameters<AmqpChannel['sendMessage']>);
    let props = properties;
    try {
      // A copy: Args.publish chains the caller's `headers` as the prototype of its own; ours chains that one in turn.
      const given = properties.headers;
      const headers = Object.create(given !== null && typeof given === 'object' ? given : null) as Record<string, unknown>;
      const stream = this.connection?.stream;
      call.injectInto(headers, stream?.servername ?? stream?._host ?? stream?.remoteAddress);
      props = { ...properties, headers };
    } catch (err) {
      logOnce('amqplib:inject', 'could not add trace headers to an AMQP message', err);
    }
    let written: boolean;
    try {
      written = original.call(this, fields, props, content);
    } catch (err) {
      call.finish(err);
      throw err;
    }
    if (confirm !== undefined && confirm.written !== true) confirm.call = call;
    else call.finish(undefined, { operation: 'publish', written }, true);
    return written;
  };
}

/**
 * A confirm channel's publish registers its confirm callback after sending
 * (amqplib 2, ConfirmChannel#publish) or before (0.10): whichever comes
 * first leaves a `Confirm` for the other, so the publish span ends when that
 * callback is called, with null (ack) or an error (nack, channel closed;
 * lib/channel.js), and the application's callback runs in the publisher's
 * context. A publish without a callback leaves amqplib's `false` in its slot
 * (amqplib 2.0 keeps those slots after a close, so that a later
 * waitForConfirms fails: a function there would change that): its span ends
 * when the message is written, as on a plain channel.
 */
function wrapPushConfirmCallback(original: AmqpChannel['pushConfirmCallback']): AmqpChannel['pushConfirmCallback'] {
  return function pushConfirmCallback(this: AmqpChannel, cb) {
    if (active === 0) return original.apply(this, arguments as unknown as [unknown]);
    let confirm = publishedConfirm.get(this);
    if (confirm !== undefined) publishedConfirm.delete(this);
    else pushedConfirm.set(this, (confirm = {}));
    if (typeof cb !== 'function') {
      confirm.written = true;
      confirm.call?.finish(undefined, { operation: 'publish', written: true }, true);
      return original.apply(this, arguments as unknown as [unknown]);
    }
    const store = currentStore();
    const held = confirm;
    const confirmed = function (this: unknown, err: unknown): unknown {
      held.call?.finish(err ?? undefined, { operation: 'publish', written: true }, true);
      return runInStore(store, () => (cb as (...a: unknown[]) => unknown).apply(this, arguments as unknown as unknown[]));
    };
    return original.call(this, confirmed);
  };
}

function trusted(message: AmqpMessage): boolean {
  const trust = optionsOf(PATCH).trustIncomingContext;
  if (trust === undefined || trust === true) return true;
  try {
    return typeof trust === 'function' && trust(message) === true;
  } catch (err) {
    logOnce('amqplib:trust', 'trustIncomingContext threw; the message starts a new trace', err);
    return false;
  }
}

function finishConsumed(channel: object, tag: number, consumed: Consumed, settlement: Settlement, event?: string): void {
  if (consumed.timer !== undefined) clearTimeout(consumed.timer);
  unsettled.get(channel)?.delete(tag);
  const { call } = consumed;
  if (call.finished) return;
  call.setTags({ [AMQP.SETTLEMENT]: settlement });
  if (event !== undefined && call.recording) logFields(call.span, { event, message: event === AMQP.TIMEOUT_EVENT ? 'the message was not settled in time; it stays unsettled' : 'the channel closed before the message was settled' });
  if (consumed.error !== undefined) call.finish(consumed.error);
  else call.finish(undefined, { operation: 'consume', settlement }, true);
}

/** Starts the consumer span of a delivered message and tracks it until it is settled; undefined: untraced. */
function startConsume(channel: AmqpChannel, queue: string, message: AmqpMessage): Consumed | undefined {
  const options = optionsOf(PATCH);
  const call = startCall<AmqplibRequest, AmqplibResponse>(PATCH, {
    operationName: AMQP.CONSUME,
    kind: MESSAGING.SPAN_KIND_CONSUMER,
    remote: trusted(message) ? extractFrom(PATCH, message.properties?.headers) : undefined,
    reference: options.consumerReference === 'childOf' ? 'childOf' : 'followsFrom',
    tags: (t) => {
      t[MESSAGING.DESTINATION] = String(queue);
      t[AMQP.ROUTING_KEY] = message.fields.routingKey;
      t[AMQP.REDELIVERED] = message.fields.redelivered === true;
      peerTags(channel, t);
    },
    request: () => ({ operation: 'consume', queue: String(queue), message }),
  });
  if (call === undefined) return undefined;
  const consumed: Consumed = { call };
  const tag = Number(message.fields.deliveryTag);
  let open = unsettled.get(channel);
  if (open === undefined) unsettled.set(channel, (open = new Map()));
  const previous = open.get(tag);
  if (previous !== undefined) finishConsumed(channel, tag, previous, 'closed');
  open.set(tag, consumed);
  const timeout = options.settleTimeout ?? AMQP.DEFAULT_SETTLE_TIMEOUT_MS;
  if (typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout)) {
    consumed.timer = setTimeout(() => {
      logOnce('amqplib:timeout', `a consumed AMQP message was not settled within ${timeout} ms; its span was finished (option amqplib.settleTimeout)`);
      finishConsumed(channel, tag, consumed, 'timeout', AMQP.TIMEOUT_EVENT);
    }, timeout);
    consumed.timer.unref();
  }
  return consumed;
}

/** Runs the application's handler with the consumer span current; under noAck the span ends when it settles. */
function handle(channel: AmqpChannel, consumed: Consumed, noAck: boolean, tag: number, run: () => unknown): unknown {
  const settled = (err?: unknown): void => {
    if (err !== undefined && consumed.error === undefined) consumed.error = err;
    if (noAck) finishConsumed(channel, tag, consumed, 'noAck');
  };
  let result: unknown;
  try {
    result = spanInContext(consumed.call.span, run);
  } catch (err) {
    settled(err ?? new Error(String(err)));
    throw err;
  }
  if (result instanceof Promise) {
    // The rejection stays unhandled exactly as without instrumentation: the derived promise rejects with the same reason.
    void result.then(
      () => settled(),
      (err: unknown) => {
        settled(err ?? new Error(String(err)));
        throw err;
      },
    );
  } else settled();
  return result;
}

function wrapConsume(original: AmqpModelChannel['consume']): AmqpModelChannel['consume'] {
  return function consume(this: AmqpChannel & AmqpModelChannel, queue, callback, options) {
    if (active === 0 || typeof callback !== 'function') return original.apply(this, arguments as unknown as Parameters<AmqpModelChannel['consume']>);
    const channel = this;
    const noAck = options !== null && typeof options === 'object' && options.noAck === true;
    const traced = function (this: unknown, message: AmqpMessage | null): unknown {
      // null: the broker cancelled the consumer (lib/channel.js handleCancel).
      const consumed = active > 0 && message !== null && typeof message === 'object' ? startConsume(channel, queue, message) : undefined;
      if (consumed === undefined) return callback.apply(this, arguments as unknown as [AmqpMessage | null]);
      return handle(channel, consumed, noAck, Number(message!.fields.deliveryTag), () => callback.apply(this, arguments as unknown as [AmqpMessage | null]));
    };
    const args = Array.prototype.slice.call(arguments) as Parameters<AmqpModelChannel['consume']>;
    args[1] = traced;
    return original.apply(this, args);
  };
}

function wrapGet(original: AmqpModelChannel['get'], promiseApi: boolean): AmqpModelChannel['get'] {
  return function get(this: AmqpChannel & AmqpModelChannel, queue, options, cb) {
    if (active === 0) return original.apply(this, arguments as unknown as Parameters<AmqpModelChannel['get']>);
    const channel = this;
    const noAck = options !== null && typeof options === 'object' && options.noAck === true;
    const start = (message: unknown): Consumed | undefined =>
      message !== null && typeof message === 'object' ? startConsume(channel, queue, message as AmqpMessage) : undefined;
    if (promiseApi) {
      // The promise the application gets is amqplib's own, untouched: the span starts where amqplib resolves it.
      // (src/promise-seam.ts: amqplib builds it with the global Promise, in get's synchronous part: lib/channel_model.js.)
      return withPromiseSeam('amqplib channel.get', () => original.apply(this, arguments as unknown as Parameters<AmqpModelChannel['get']>), {
        resolved(message) {
          const consumed = start(message);
          if (consumed !== undefined && noAck) finishConsumed(channel, Number((message as AmqpMessage).fields.deliveryTag), consumed, 'noAck');
        },
      }).result;
    }
    if (typeof cb !== 'function') return original.apply(this, arguments as unknown as Parameters<AmqpModelChannel['get']>);
    const traced = function (this: unknown, err: unknown, message: AmqpMessage | false): unknown {
      const consumed = err === null || err === undefined ? start(message) : undefined;
      if (consumed === undefined) return cb.apply(this, arguments as unknown as [unknown, AmqpMessage | false]);
      return handle(channel, consumed, noAck, Number((message as AmqpMessage).fields.deliveryTag), () => cb.apply(this, arguments as unknown as [unknown, AmqpMessage | false]));
    };
    return original.call(this, queue, options, traced);
  };
}

function wrapSendImmediately(original: AmqpChannel['sendImmediately'], defs: AmqpDefs): AmqpChannel['sendImmediately'] {
  return function sendImmediately(this: AmqpChannel, method, fields) {
    const result = original.apply(this, arguments as unknown as Parameters<AmqpChannel['sendImmediately']>);
    const open = unsettled.get(this);
    if (open !== undefined && open.size > 0 && (method === defs.BasicAck || method === defs.BasicNack || method === defs.BasicReject)) {
      try {
        const settlement: Settlement = method === defs.BasicAck ? 'ack' : method === defs.BasicNack ? 'nack' : 'reject';
        const tag = Number(fields.deliveryTag);
        // `multiple`: every message up to the tag (0: all of them), as ackAll/nackAll and allUpTo send it.
        if (fields.multiple === true && method !== defs.BasicReject) {
          for (const [t, consumed] of [...open]) if (tag === 0 || t <= tag) finishConsumed(this, t, consumed, settlement);
        } else {
          const consumed = open.get(tag);
          if (consumed !== undefined) finishConsumed(this, tag, consumed, settlement);
        }
      } catch (err) {
        logOnce('amqplib:settle', 'could not finish the span of a settled AMQP message', err);
      }
    }
    return result;
  };
}

function wrapToClosed(original: AmqpChannel['toClosed']): AmqpChannel['toClosed'] {
  return function toClosed(this: AmqpChannel) {
    try {
      return original.apply(this, arguments as unknown as unknown[]);
    } finally {
      const open = unsettled.get(this);
      if (open !== undefined) for (const [tag, consumed] of [...open]) finishConsumed(this, tag, consumed, 'closed', AMQP.CLOSED_EVENT);
      publishedConfirm.delete(this);
      pushedConfirm.delete(this);
    }
  };
}

function patch(exports: object): void {
  const { base, promiseModel, callbackModel, defs } = seamsOf(exports);
  if (wrapMethod(base, 'sendMessage', wrapSendMessage)) active++;
  wrapMethod(base, 'pushConfirmCallback', wrapPushConfirmCallback);
  wrapMethod(base, 'sendImmediately', (original) => wrapSendImmediately(original, defs));
  wrapMethod(base, 'toClosed', wrapToClosed);
  wrapMethod(promiseModel, 'consume', wrapConsume);
  wrapMethod(callbackModel, 'consume', wrapConsume);
  wrapMethod(promiseModel, 'get', (original) => wrapGet(original, true));
  wrapMethod(callbackModel, 'get', (original) => wrapGet(original, false));
}

function unpatch(exports: object): void {
  const seams = seamsByExports.get(exports);
  if (seams === undefined) return;
  const { base, promiseModel, callbackModel } = seams;
  const wasPatched = base.sendMessage !== originalOf(base.sendMessage);
  for (const name of ['sendMessage', 'pushConfirmCallback', 'sendImmediately', 'toClosed'] as const) unwrapMethod(base, name);
  for (const model of [promiseModel, callbackModel]) {
    unwrapMethod(model, 'consume');
    unwrapMethod(model, 'get');
  }
  if (wasPatched) active--;
}

/** `amqplib` (promise API) and `amqplib/callback_api`: both entry files sit beside lib/. */
export const amqplib: Instrumentation<object> = { name: PATCH, module: 'amqplib', versions: '>=0.10.0 <0.11 || >=2 <3', patch, unpatch };
export const amqplibCallbackApi: Instrumentation<object> = { ...amqplib, module: 'amqplib/callback_api' };
