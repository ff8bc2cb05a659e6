/**
 * Client spans for ioredis 4, 5 and 6: one span per command sent with
 * `Redis.prototype.sendCommand` or `Cluster.prototype.sendCommand`, one span
 * per `pipeline()` / `multi()` batch (`Pipeline.prototype.exec`), and one span
 * per command for auto-pipelined commands (`enableAutoPipelining`), which are
 * the application's own calls batched by ioredis.
 *
 * A command is marked the first time it is seen: ioredis sends the same
 * Command object again when it flushes its offline queue, re-sends after a
 * reconnect, follows a Cluster redirection or writes a batch's commands, and
 * those passes must not start spans of their own. The span ends when ioredis
 * settles the command through its `resolve` / `reject` (Command.js
 * `initPromise`), the one place every outcome goes through; the command's
 * promise itself is never touched, so an unhandled rejection stays unhandled.
 */
import type { Span } from 'opentracing';
import { OPERATION_PREFIX, TAG } from '../constants';
import { bindToCurrentContext, getCurrentSpan, isSuppressed, suppressInstrumentation } from '../context';
import type { IoredisClient, IoredisCommand, IoredisModule, IoredisPipeline } from '../internal-types';
import { logOnce, safeCall } from '../logger';
import { optionsOf, type IoredisOptions, type IoredisRequest } from '../options';
import type { Instrumentation } from '../instrumentation';
import { addPeerTags, clientTags, finishSpan, isRecording, setTags, startClientSpan, type TagMap } from '../span';
import { redactErrorFields, redactValues } from '../redact';
import { truncate } from '../sql';
import { unwrapMethod, wrapMethod } from '../wrap';

const COMPONENT = 'ioredis';
const DB_TYPE_REDIS = 'redis';
const DEFAULT_MAX_STATEMENT_LENGTH = 1024;
const MAX_KEY_LENGTH = 256;

/** On a Command or a Pipeline: the state of the span it belongs to, or UNTRACED. */
const OWNER = Symbol('opentracing-instrumentation.ioredis.owner');
/** On a Pipeline: it is one of ioredis' auto-pipelines, whose commands are traced one by one. */
const AUTO = Symbol('opentracing-instrumentation.ioredis.auto');
const UNTRACED = 0;

/** Commands whose arguments are never recorded, whatever the serializer: they carry credentials. */
const SECRET_COMMANDS = new Set(['auth', 'hello']);

/**
 * Commands ioredis itself writes while a connection is in its handshake
 * (status `connect`: event_handler.js connectHandler and `_readyCheck`):
 * AUTH/HELLO, SELECT, CLIENT SETNAME/SETINFO, READONLY, INFO. They are the
 * connection's setup, not the application's calls (a `CLIENT SETINFO`
 * refused by an older server would show as a failed call), and are not traced.
 */
const HANDSHAKE_COMMANDS = new Set(['auth', 'hello', 'select', 'client', 'readonly', 'info']);

/**
 * Clients inside the synchronous turn in which ioredis made the connection
 * ready (`setStatus('ready')`, then readyHandler in event_handler.js):
 * what it sends there is the connection's housekeeping, re-done after each
 * reconnect (READONLY, SELECT, re-subscribing the channels of a subscriber),
 * not the application's calls: untraced, or each reconnect would start
 * traces of its own. Commands resent from the offline queue are already
 * traced. Cleared on the next tick, before the 'ready' event reaches the
 * application (setStatus emits it on a later tick).
 */
const readyTurn = new WeakSet<object>();

/**
 * Clients ioredis makes for itself: a SentinelConnector's connections to the
 * sentinels (SENTINEL get-master-addr-by-name, the failover detector's
 * SUBSCRIBE +switch-master). All their commands are housekeeping.
 */
const ownClients = new WeakSet<object>();

/** Auto-pipelines whose whole-batch failure is followed (see `followAutoPipeline`). */
const followedAuto = new WeakSet<object>();

/**
 * Cluster methods that only talk to the cluster about itself: the slot-table
 * refresh (`CLUSTER SLOTS` on a throw-away connection, at connect, after a
 * MOVED and every `slotsRefreshInterval`) and the ready check (`CLUSTER
 * INFO`). Run untraced, or every cluster client would start a new trace
 * every few seconds; their callback goes back to the caller's context.
 */
const CLUSTER_HOUSEKEEPING = ['getInfoFromNode', 'readyCheck'] as const;

/** Container commands whose first argument is a subcommand worth showing (`CONFIG GET`, `CLIENT SETNAME`). */
const CONTAINER_COMMANDS = new Set([
  'acl', 'client', 'cluster', 'command', 'config', 'debug', 'function', 'latency', 'memory', 'module',
  'object', 'pubsub', 'script', 'slowlog', 'xgroup', 'xinfo',
]);

interface SpanState {
  readonly span: Span;
  readonly options: IoredisOptions;
  readonly batch: boolean;
  /** Cluster: the node connection that got the command last; its peer is tagged at the end. */
  node: IoredisClient | undefined;
  peerTagged: boolean;
  done: boolean;
  /** The reply as the application gets it, when a response hook needs it (see traceCommand). */
  reply?: { value: unknown };
}

type Owner = SpanState | typeof UNTRACED;

function maxLength(options: IoredisOptions): number {
  const max = options.maxStatementLength;
  return typeof max === 'number' && max > 0 ? Math.floor(max) : DEFAULT_MAX_STATEMENT_LENGTH;
}

function argText(arg: unknown): string | undefined {
  if (typeof arg === 'string') return truncate(arg, MAX_KEY_LENGTH);
  if (typeof arg === 'number') return String(arg);
  if (Buffer.isBuffer(arg)) return truncate(arg.toString('utf8', 0, MAX_KEY_LENGTH + 1), MAX_KEY_LENGTH);
  return undefined;
}

/** The command's first key, as ioredis computes keys (its command table), if any. */
function firstKey(command: IoredisCommand): string | undefined {
  if (typeof command.getKeys !== 'function') return undefined;
  try {
    const keys = command.getKeys();
    return keys.length > 0 ? argText(keys[0]) : undefined;
  } catch {
    return undefined; // a command ioredis does not know: its arguments stay hidden
  }
}

function otherArguments(n: number): string {
  return n === 1 ? '[1 other argument]' : `[${n} other arguments]`;
}

/** `SET session:42 [1 other argument]`; `CONFIG GET [1 other argument]`; `AUTH`. */
function defaultStatement(command: IoredisCommand, compact: boolean): string {
  const name = String(command.name);
  const lower = name.toLowerCase();
  const upper = name.toUpperCase();
  if (SECRET_COMMANDS.has(lower)) return upper;
  const args = Array.isArray(command.args) ? command.args : [];
  const parts = [upper];
  let shown = 0;
  if (CONTAINER_COMMANDS.has(lower) && args.length > 0) {
    const sub = argText(args[0]);
    if (sub !== undefined && /^[A-Za-z-]{1,32}$/.test(sub)) {
      parts.push(sub.toUpperCase());
      shown++;
    }
  }
  const key = firstKey(command);
  if (key !== undefined) {
    parts.push(key);
    shown++;
  }
  const others = args.length - shown;
  if (others > 0) parts.push(compact ? '...' : otherArguments(others));
  return parts.join(' ');
}

/** db.statement of one command: the user's serializer (never for AUTH/HELLO), else the default. */
function statementOf(command: IoredisCommand, options: IoredisOptions, compact: boolean): string {
  const serializer = options.statementSerializer;
  if (typeof serializer === 'function' && !SECRET_COMMANDS.has(String(command.name).toLowerCase())) {
    try {
      const s = serializer(String(command.name), Array.isArray(command.args) ? command.args : []);
      if (typeof s === 'string') return s;
    } catch (err) {
      logOnce('ioredis:serializer', 'the ioredis statementSerializer threw; using the default', err);
    }
  }
  return defaultStatement(command, compact);
}

/** A batch's commands, `SET k1 ...; GET k2`, cut at `max` characters (MULTI/EXEC wrappers left out). */
function batchStatement(queue: readonly IoredisCommand[], options: IoredisOptions, max: number): string {
  const parts: string[] = [];
  let length = 0;
  let i = 0;
  for (; i < queue.length && length <= max; i++) {
    const name = String(queue[i].name).toLowerCase();
    if (name === 'multi' || name === 'exec') continue;
    const s = statementOf(queue[i], options, true);
    parts.push(s);
    length += s.length + 2;
  }
  let text = parts.join('; ');
  if (i < queue.length) text += `; [${queue.length - i} more]`;
  return truncate(text, max);
}

function isMultiBatch(queue: readonly IoredisCommand[]): boolean {
  for (const c of queue) if (String(c.name).toLowerCase() === 'multi') return true;
  return false;
}

/** db.instance and peer.* of a Redis connection. */
function connectionTags(tags: TagMap, client: IoredisClient): TagMap {
  const options = client.options ?? {};
  const selected = client.condition?.select;
  const db = typeof selected === 'number' ? selected : (options.db ?? 0);
  tags[TAG.DB_INSTANCE] = String(db);
  let host: unknown = options.host;
  let port: unknown = options.port;
  if (options.sentinels) {
    // Sentinel: the options name the sentinels, the socket knows the master we got.
    host = client.stream?.remoteAddress;
    port = client.stream?.remotePort;
  } else if (typeof options.path === 'string' && options.path) {
    host = undefined; // a Unix socket: no peer host
    port = undefined;
  }
  return addPeerTags(
    tags,
    typeof host === 'string' ? host : undefined,
    typeof port === 'number' || typeof port === 'string' ? port : undefined,
  );
}

/** Redis quotes the arguments of a command it does not know: `ERR unknown command 'x', with args beginning with: 'v'`. */
const QUOTED_ARGS = /, with args beginning with:[^\n]*/;

/** The texts of a command's arguments, as Redis may echo them in an error. */
function argumentTexts(args: unknown): string[] {
  const out: string[] = [];
  if (!Array.isArray(args)) return out;
  for (const arg of args.slice(0, 200)) {
    if (typeof arg === 'string') out.push(arg);
    else if (typeof arg === 'number' || typeof arg === 'bigint') out.push(String(arg));
    else if (Buffer.isBuffer(arg)) out.push(arg.toString('utf8'));
  }
  return out;
}

/** `text` without the arguments Redis echoes; in a stack, only in its head (the message). */
function withoutArguments(text: string, args: readonly string[]): string {
  const frames = text.indexOf('\n    at ');
  const head = frames === -1 ? text : text.slice(0, frames);
  const redacted = redactValues(head.replace(QUOTED_ARGS, ''), args);
  return frames === -1 ? redacted : redacted + text.slice(frames);
}

/**
 * The error as logged on the span: ioredis sets `command: { name, args }` on
 * the errors of server replies (DataHandler.js), args that hold values and,
 * for AUTH/HELLO, credentials. The log keeps the command name only, and
 * drops the arguments Redis echoes in its message: quoted in an unknown
 * command or subcommand, as the whole message of a script's
 * `redis.error_reply(ARGV[1])`, an ACL rule in `ACL SETUSER`'s.
 */
function loggableError(err: unknown): unknown {
  if (err === null || typeof err !== 'object') return err;
  const e = err as { command?: unknown; message?: unknown; stack?: unknown };
  const fields: Record<string, unknown> = {};
  let args: string[] = [];
  if (e.command !== null && typeof e.command === 'object') {
    fields.command = { name: (e.command as { name?: unknown }).name };
    args = argumentTexts((e.command as { args?: unknown }).args);
  }
  if (typeof e.message === 'string') {
    const message = withoutArguments(e.message, args);
    if (message !== e.message) {
      fields.message = message;
      if (typeof e.stack === 'string') fields.stack = withoutArguments(e.stack, args);
    }
  }
  return Object.keys(fields).length > 0 ? redactErrorFields(err, fields) : err;
}

function finish(state: SpanState, err: unknown, reply?: unknown, hasReply = false): void {
  if (state.done) return;
  state.done = true;
  const { span } = state;
  if (!state.peerTagged && state.node !== undefined) {
    state.peerTagged = true;
    try {
      if (isRecording(span)) setTags(span, connectionTags({}, state.node));
    } catch (tagErr) {
      logOnce('ioredis:tags', 'could not build the tags of an ioredis span', tagErr);
    }
  }
  if (err !== undefined && err !== null) {
    finishSpan(span, loggableError(err));
    return;
  }
  if (hasReply) safeCall('ioredis responseHook', state.options.responseHook, reply, span);
  const batchError = state.batch ? firstBatchError(reply) : undefined;
  finishSpan(span, batchError === undefined ? undefined : loggableError(batchError));
}

/** The first failed command of a batch's results (`[[err, reply], ...]`, MULTI's EXEC reply included). */
function firstBatchError(results: unknown): unknown {
  if (!Array.isArray(results)) return undefined;
  for (const entry of results) {
    if (!Array.isArray(entry)) continue;
    if (entry[0]) return entry[0];
    if (Array.isArray(entry[1])) {
      for (const r of entry[1]) if (r instanceof Error) return r;
    }
  }
  return undefined;
}

/** Ends the span when ioredis settles `target` (a Command or a Pipeline) through its resolve/reject. */
function settleThrough(target: IoredisCommand | IoredisPipeline, state: SpanState): void {
  const resolve = target.resolve;
  const reject = target.reject;
  target.resolve = function (this: unknown, value: unknown) {
    // Resolve first: a reply transformer that throws rejects the command instead (Command._convertValue).
    const result = resolve.apply(this, arguments as never);
    finish(state, undefined, state.reply !== undefined ? state.reply.value : value, true);
    return result;
  };
  target.reject = function (this: unknown, err: unknown) {
    finish(state, err ?? new Error('ioredis command rejected'));
    return reject.apply(this, arguments as never);
  };
}

function startState(span: Span, options: IoredisOptions, batch: boolean): SpanState {
  return { span, options, batch, node: undefined, peerTagged: false, done: false };
}

/**
 * Starts the span of one command and marks it. `client` is the standalone
 * connection whose peer is known now; for a Cluster it is undefined and the
 * node connection that gets the command is tagged at the end.
 */
function traceCommand(command: IoredisCommand, client: IoredisClient | undefined): void {
  if (isSuppressed()) {
    command[OWNER] = UNTRACED;
    return;
  }
  const name = String(command.name);
  const span = startClientSpan(COMPONENT, OPERATION_PREFIX.REDIS + name.toUpperCase());
  if (span === undefined) {
    command[OWNER] = UNTRACED;
    return;
  }
  const options = optionsOf(COMPONENT);
  const state = startState(span, options, false);
  command[OWNER] = state;
  try {
    if (isRecording(span)) {
      const tags = clientTags(COMPONENT);
      tags[TAG.DB_TYPE] = DB_TYPE_REDIS;
      tags[TAG.DB_STATEMENT] = truncate(statementOf(command, options, false), maxLength(options));
      if (client !== undefined) {
        connectionTags(tags, client);
        state.peerTagged = true;
      }
      setTags(span, tags);
    }
  } catch (err) {
    logOnce('ioredis:tags', 'could not build the tags of an ioredis span', err);
  }
  if (typeof options.requestHook === 'function') {
    const request: IoredisRequest = { command: name, args: Array.isArray(command.args) ? command.args : [] };
    safeCall('ioredis requestHook', options.requestHook, span, request);
  }
  try {
    settleThrough(command, state);
    // ioredis resolves a command with the parser's raw reply (Buffers) and
    // converts it in transformReply; the response hook gets the converted
    // reply, the one the application sees. Only paid for when there is a hook.
    const transform = command.transformReply;
    if (typeof options.responseHook === 'function' && typeof transform === 'function') {
      command.transformReply = function (this: unknown) {
        const value = transform.apply(this, arguments as never);
        state.reply = { value };
        return value;
      };
    }
  } catch (err) {
    logOnce('ioredis:settle', 'could not follow an ioredis command; its span is closed now', err);
    finish(state, undefined);
  }
}

/** `traceCommand`, with our own failures contained: the command then goes on untraced. */
function traceCommandSafely(command: IoredisCommand, client: IoredisClient | undefined): void {
  try {
    traceCommand(command, client);
  } catch (err) {
    logOnce('ioredis:trace', 'could not trace an ioredis command; it goes on untraced', err);
  }
}

function isCommand(value: unknown): value is IoredisCommand {
  return value !== null && typeof value === 'object' && typeof (value as IoredisCommand).name === 'string';
}

function isPipelineStream(stream: unknown): boolean {
  return stream !== null && typeof stream === 'object' && (stream as { isPipeline?: unknown }).isPipeline === true;
}

/** Redis.prototype.sendCommand (standalone or a Cluster's node connection) and Cluster.prototype.sendCommand. */
function tracedSendCommand(
  original: IoredisClient['sendCommand'],
  client: IoredisClient,
  args: IArguments,
  isCluster: boolean,
): unknown {
  const command = args[0];
  if (!isCommand(command)) return original.apply(client, args as never);
  const owner = command[OWNER] as Owner | undefined;
  if (owner !== undefined) {
    // Seen before: a re-send, a redirection, or a traced batch's command. The last node is the peer.
    if (owner !== UNTRACED && !isCluster && !owner.peerTagged) owner.node = client;
    return original.apply(client, args as never);
  }
  // An untraced batch's command (its Pipeline was not traced): no span of its own.
  if (isPipelineStream(args[1])) return original.apply(client, args as never);
  if (!isCluster && isHousekeeping(client, command)) {
    command[OWNER] = UNTRACED;
    return original.apply(client, args as never);
  }
  traceCommandSafely(command, isCluster ? undefined : client);
  try {
    return original.apply(client, args as never);
  } catch (err) {
    const state = command[OWNER] as Owner | undefined;
    if (state !== undefined && state !== UNTRACED) finish(state, err);
    throw err;
  }
}

/**
 * Commands of the connection itself, never traced: its handshake, what
 * ioredis re-does when it becomes ready again, and a `QUIT` made outside any
 * trace (at shutdown: it would be a trace of its own, with nothing to say).
 */
function isHousekeeping(client: IoredisClient, command: IoredisCommand): boolean {
  if (readyTurn.has(client) || ownClients.has(client)) return true;
  const name = command.name.toLowerCase();
  if (client.status === 'connect' && HANDSHAKE_COMMANDS.has(name)) return true;
  return name === 'quit' && getCurrentSpan() === undefined;
}

/**
 * A client that will never reconnect: ended, or disconnected by the
 * application while it waited to reconnect (`disconnect()` then clears the
 * reconnection and its close was handled already: the client stays
 * `reconnecting` for good, Redis.js disconnect).
 */
function isDead(client: IoredisClient): boolean {
  return client.status === 'end' || (client.status === 'reconnecting' && client.manuallyClosing === true && !client.reconnectTimeout);
}

/**
 * Commands ioredis kept to resend after a reconnect that will not come are
 * never settled by it (flushQueue leaves `prevCommandQueue`; a disconnect
 * while reconnecting flushes nothing): their spans end here, failed, once
 * the close is done. The application's promise stays as ioredis leaves it.
 */
function endAbandoned(client: IoredisClient): void {
  process.nextTick(() => {
    try {
      if (!isDead(client)) return;
      for (const queue of [client.prevCommandQueue, client.commandQueue]) {
        if (typeof queue?.toArray !== 'function') continue;
        for (const item of queue.toArray()) {
          const owner = (item?.command as IoredisCommand | undefined)?.[OWNER] as Owner | undefined;
          if (owner !== undefined && owner !== UNTRACED && !owner.done) finish(owner, new Error(ABANDONED));
        }
      }
    } catch (err) {
      logOnce('ioredis:abandoned', 'could not end the spans of commands left by a closed ioredis client', err);
    }
  });
}

const ABANDONED = 'Connection is closed; ioredis does not settle this command (it was waiting to be resent)';

/** Redis.prototype.setStatus: marks the ready turn, and ends the spans a closed client abandons. */
function tracedSetStatus(original: NonNullable<IoredisClient['setStatus']>, client: IoredisClient, args: IArguments): unknown {
  const status = args[0];
  if (status === 'ready') {
    // Scheduled before setStatus schedules the 'ready' event: cleared first.
    readyTurn.add(client);
    process.nextTick(() => readyTurn.delete(client));
  }
  const result = original.apply(client, args as never);
  if (status === 'end') endAbandoned(client);
  return result;
}

/** True when `pipeline` is one of its client's pending auto-pipelines (autoPipelining.js). */
function isAutoPipeline(pipeline: IoredisPipeline): boolean {
  const redis = pipeline.redis;
  const pending = redis?._autoPipelines;
  if (!(pending instanceof Map) || pending.size === 0) return false;
  for (const p of pending.values()) if (p === pipeline) return true;
  return false;
}

/** Pipeline.prototype.sendCommand: queues a command; auto-pipelined commands are traced one by one. */
function tracedPipelineSendCommand(original: IoredisPipeline['sendCommand'], pipeline: IoredisPipeline, args: IArguments): unknown {
  const command = args[0];
  if (!isCommand(command) || command[OWNER] !== undefined) return original.apply(pipeline, args as never);
  try {
    if (pipeline[AUTO] !== true) {
      if (!isAutoPipeline(pipeline)) return original.apply(pipeline, args as never);
      pipeline[AUTO] = true;
    }
  } catch (err) {
    logOnce('ioredis:auto', 'could not inspect an ioredis pipeline', err);
    return original.apply(pipeline, args as never);
  }
  const redis = pipeline.redis;
  traceCommandSafely(command, redis && !redis.isCluster && !pipeline.isCluster ? redis : undefined);
  return original.apply(pipeline, args as never);
}

/**
 * An auto-pipeline that fails as a whole (a Cluster batch whose keys no
 * longer share a slot: Pipeline.exec rejects the pipeline and never settles
 * its commands; autoPipelining.js hands the error to each caller) ends the
 * spans of its traced commands with that error.
 */
function followAutoPipeline(pipeline: IoredisPipeline): void {
  if (followedAuto.has(pipeline)) return;
  followedAuto.add(pipeline);
  const reject = pipeline.reject;
  if (typeof reject !== 'function') return;
  pipeline.reject = function (this: unknown, err: unknown) {
    const result = reject.apply(this, arguments as never);
    try {
      for (const c of Array.isArray(pipeline._queue) ? pipeline._queue : []) {
        const owner = c[OWNER] as Owner | undefined;
        if (owner !== undefined && owner !== UNTRACED && !owner.done) finish(owner, err ?? new Error('ioredis pipeline rejected'));
      }
    } catch (finishErr) {
      logOnce('ioredis:auto-reject', 'could not end the spans of a failed ioredis auto-pipeline', finishErr);
    }
    return result;
  };
}

/** Pipeline.prototype.exec: one span for the batch, from the exec call to its results. */
function tracedExec(original: IoredisPipeline['exec'], pipeline: IoredisPipeline, args: IArguments): unknown {
  if (pipeline[AUTO] === true) {
    try {
      followAutoPipeline(pipeline);
    } catch (err) {
      logOnce('ioredis:auto-follow', 'could not follow an ioredis auto-pipeline', err);
    }
  }
  // Already traced (a Cluster retry or a delayed exec), auto-pipelined, or the
  // call of a MULTI pipeline that only queues its EXEC (transaction.js calls exec twice).
  if (pipeline[OWNER] !== undefined || pipeline[AUTO] === true || pipeline._transactions > 0) {
    return original.apply(pipeline, args as never);
  }
  if (isSuppressed()) {
    pipeline[OWNER] = UNTRACED;
    return original.apply(pipeline, args as never);
  }
  const queue = Array.isArray(pipeline._queue) ? pipeline._queue : [];
  const multi = isMultiBatch(queue);
  const span = startClientSpan(COMPONENT, OPERATION_PREFIX.REDIS + (multi ? 'MULTI' : 'PIPELINE'));
  if (span === undefined) {
    pipeline[OWNER] = UNTRACED;
    return original.apply(pipeline, args as never);
  }
  const options = optionsOf(COMPONENT);
  const state = startState(span, options, true);
  try {
    pipeline[OWNER] = state;
    // The batch's commands go through Redis.sendCommand too: mark them as the batch's.
    for (const c of queue) if (isCommand(c)) c[OWNER] = state;
  } catch (err) {
    logOnce('ioredis:mark', 'could not mark an ioredis pipeline; it goes on untraced', err);
    finish(state, undefined);
    return original.apply(pipeline, args as never);
  }
  const redis = pipeline.redis;
  const standalone = redis !== undefined && !redis.isCluster && !pipeline.isCluster;
  try {
    if (isRecording(span)) {
      const tags = clientTags(COMPONENT);
      tags[TAG.DB_TYPE] = DB_TYPE_REDIS;
      tags[TAG.DB_STATEMENT] = batchStatement(queue, options, maxLength(options));
      if (standalone) {
        connectionTags(tags, redis);
        state.peerTagged = true;
      }
      setTags(span, tags);
    }
    if (typeof options.requestHook === 'function') {
      const commands = queue.map((c) => ({ command: String(c.name), args: Array.isArray(c.args) ? c.args : [] }));
      safeCall('ioredis requestHook', options.requestHook, span, { command: multi ? 'multi' : 'pipeline', args: [], commands });
    }
  } catch (err) {
    logOnce('ioredis:tags', 'could not build the tags of an ioredis span', err);
  }
  try {
    settleThrough(pipeline, state);
  } catch (err) {
    logOnce('ioredis:settle', 'could not follow an ioredis pipeline; its span is closed now', err);
    finish(state, undefined);
  }
  try {
    return original.apply(pipeline, args as never);
  } catch (err) {
    finish(state, err);
    throw err;
  }
}

/** Runs `original` untraced, its callback (last function argument) back in the caller's context. */
function untracedHousekeeping(original: (...args: unknown[]) => unknown, self: unknown, args: IArguments): unknown {
  const list = Array.prototype.slice.call(args) as unknown[];
  const last = list.length - 1;
  if (last >= 0 && typeof list[last] === 'function') list[last] = bindToCurrentContext(list[last] as (...a: unknown[]) => unknown);
  return suppressInstrumentation(() => original.apply(self, list));
}

function redisPrototype(exports: IoredisModule): IoredisClient | undefined {
  // The module's exports are the Redis class itself (index.js: `exports = module.exports = Redis`).
  return typeof (exports as unknown) === 'function' ? exports.prototype : undefined;
}

export const ioredis: Instrumentation<IoredisModule> = {
  name: 'ioredis',
  module: 'ioredis',
  patch(exports) {
    const redis = redisPrototype(exports);
    if (redis === undefined) return;
    wrapMethod(redis, 'sendCommand', (original) =>
      function sendCommand(this: IoredisClient) {
        return tracedSendCommand(original, this, arguments, false);
      },
    );
    if (typeof redis.disconnect === 'function') {
      wrapMethod(redis as Required<Pick<IoredisClient, 'disconnect'>>, 'disconnect', (original) =>
        function disconnect(this: IoredisClient) {
          const result = original.apply(this, arguments as never);
          endAbandoned(this);
          return result;
        },
      );
    }
    if (typeof redis.setStatus === 'function') {
      wrapMethod(redis as Required<Pick<IoredisClient, 'setStatus'>>, 'setStatus', (original) =>
        function setStatus(this: IoredisClient) {
          return tracedSetStatus(original, this, arguments);
        },
      );
    }
    const cluster = exports.Cluster?.prototype;
    if (cluster !== undefined) {
      wrapMethod(cluster, 'sendCommand', (original) =>
        function sendCommand(this: IoredisClient) {
          return tracedSendCommand(original, this, arguments, true);
        },
      );
      for (const name of CLUSTER_HOUSEKEEPING) {
        if (typeof cluster[name] !== 'function') continue;
        wrapMethod(cluster, name, (original) =>
          function housekeeping(this: unknown) {
            return untracedHousekeeping(original, this, arguments);
          },
        );
      }
    }
    const sentinel = exports.SentinelConnector?.prototype;
    if (sentinel !== undefined && typeof sentinel.connectToSentinel === 'function') {
      wrapMethod(sentinel as Required<NonNullable<IoredisModule['SentinelConnector']>['prototype']>, 'connectToSentinel', (original) =>
        function connectToSentinel(this: unknown) {
          const client = original.apply(this, arguments as never);
          if (client !== null && typeof client === 'object') ownClients.add(client);
          return client;
        },
      );
    }
    const pipeline = exports.Pipeline?.prototype;
    if (pipeline !== undefined) {
      wrapMethod(pipeline, 'exec', (original) =>
        function exec(this: IoredisPipeline) {
          return tracedExec(original, this, arguments);
        },
      );
      wrapMethod(pipeline, 'sendCommand', (original) =>
        function sendCommand(this: IoredisPipeline) {
          return tracedPipelineSendCommand(original, this, arguments);
        },
      );
    }
  },
  unpatch(exports) {
    const redis = redisPrototype(exports);
    if (redis !== undefined) {
      unwrapMethod(redis, 'sendCommand');
      unwrapMethod(redis as Required<Pick<IoredisClient, 'setStatus'>>, 'setStatus');
      unwrapMethod(redis as Required<Pick<IoredisClient, 'disconnect'>>, 'disconnect');
    }
    const cluster = exports.Cluster?.prototype;
    if (cluster !== undefined) {
      unwrapMethod(cluster, 'sendCommand');
      for (const name of CLUSTER_HOUSEKEEPING) unwrapMethod(cluster, name);
    }
    const sentinel = exports.SentinelConnector?.prototype;
    if (sentinel !== undefined) unwrapMethod(sentinel as Required<NonNullable<IoredisModule['SentinelConnector']>['prototype']>, 'connectToSentinel');
    const pipeline = exports.Pipeline?.prototype;
    if (pipeline !== undefined) {
      unwrapMethod(pipeline, 'exec');
      unwrapMethod(pipeline, 'sendCommand');
    }
  },
};
