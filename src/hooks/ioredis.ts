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
import { OPERATION_PREFIX, TAG } from '../constants';
import { bindToCurrentContext, getCurrentSpan, suppressInstrumentation } from '../context';
import { startCall, type Call, type CallSpec } from '../call';
import type { IoredisClient, IoredisCommand, IoredisModule, IoredisPipeline } from '../internal-types';
import { logOnce } from '../logger';
import { optionsOf, type IoredisOptions, type IoredisRequest } from '../options';
import type { Instrumentation } from '../instrumentation';
import { addPeerTags, type TagMap } from '../span';
import { batchStatement, commandStatement, loggableCommandError, maxStatementLength, nameInfo, type FirstKey } from '../redis-statement';
import { truncate } from '../sql';
import { unwrapMethod, wrapMethod } from '../wrap';

const PATCH = 'ioredis';
const DB_TYPE_REDIS = 'redis';

/** On a Command or a Pipeline: the call it belongs to, or UNTRACED. */
const OWNER = Symbol('opentracing-instrumentation.ioredis.owner');
/** On a Pipeline: it is one of ioredis' auto-pipelines, whose commands are traced one by one. */
const AUTO = Symbol('opentracing-instrumentation.ioredis.auto');
const UNTRACED = 0;

/**
 * A traced command or batch. Its state is the connection whose peer is
 * tagged when it ends (a Cluster's node that got it last), or null once the
 * peer is tagged (a standalone connection is tagged at the start).
 */
type IoredisCall = Call<unknown, IoredisClient | null>;
type Owner = IoredisCall | typeof UNTRACED;

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

/** The first key of `command`, from ioredis' command table (`Command.getKeys()`). */
const commandKey: FirstKey = (_name, _args, command) => {
  const keys = typeof (command as IoredisCommand).getKeys === 'function' ? (command as IoredisCommand).getKeys!() : [];
  return keys.length > 0 ? keys[0] : undefined;
};

function argsOf(command: IoredisCommand): unknown[] {
  return Array.isArray(command.args) ? command.args : [];
}

function statementOf(command: IoredisCommand, options: IoredisOptions, compact: boolean): string {
  return commandStatement(String(command.name), argsOf(command), options, commandKey, compact, PATCH, logOnce, command);
}

function queueOf(pipeline: IoredisPipeline): IoredisCommand[] {
  return Array.isArray(pipeline._queue) ? pipeline._queue : [];
}

/** A MULTI batch's MULTI/EXEC wrappers: left out of its statement. */
function isWrapper(command: IoredisCommand): boolean {
  const name = String(command.name).toLowerCase();
  return name === 'multi' || name === 'exec';
}

/** The connection of a batch sent to one Redis (not a Cluster): its peer is known at the start. */
function standaloneOf(pipeline: IoredisPipeline): IoredisClient | undefined {
  const redis = pipeline.redis;
  return redis !== undefined && !redis.isCluster && !pipeline.isCluster ? redis : undefined;
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

/**
 * The standalone connection of the command whose call `startCall` is
 * starting (undefined: a Cluster's, tagged at the end). Set only around that
 * synchronous call, and restored after it, so that `COMMAND` stays one object
 * and no closure is made per command.
 */
let startingOn: IoredisClient | undefined;

/** The call of one command: the spec is shared, the Command is its subject. */
const COMMAND: CallSpec<IoredisRequest, IoredisCommand> = {
  operationName: (command) => nameInfo(String(command.name)).operationName,
  tags: (tags, command) => {
    const options = optionsOf(PATCH);
    tags[TAG.DB_TYPE] = DB_TYPE_REDIS;
    tags[TAG.DB_STATEMENT] = truncate(statementOf(command, options, false), maxStatementLength(options));
    if (startingOn !== undefined) connectionTags(tags, startingOn);
  },
  request: (command) => ({ command: String(command.name), args: argsOf(command) }),
  loggableError: loggableCommandError,
};

/** The call of a batch (its Pipeline is the subject): `SET k1 ...; GET k2`. */
function batchSpec(name: 'MULTI' | 'PIPELINE'): CallSpec<IoredisRequest, IoredisPipeline> {
  return {
    operationName: OPERATION_PREFIX.REDIS + name,
    tags: (tags, pipeline) => {
      const options = optionsOf(PATCH);
      const max = maxStatementLength(options);
      tags[TAG.DB_TYPE] = DB_TYPE_REDIS;
      tags[TAG.DB_STATEMENT] = truncate(batchStatement(queueOf(pipeline), (c) => (isWrapper(c) ? undefined : statementOf(c, options, true)), max), max);
      const redis = standaloneOf(pipeline);
      if (redis !== undefined) connectionTags(tags, redis);
    },
    request: (pipeline) => ({
      command: name.toLowerCase(),
      args: [],
      commands: queueOf(pipeline).map((c) => ({ command: String(c.name), args: argsOf(c) })),
    }),
    loggableError: loggableCommandError,
  };
}

const MULTI = batchSpec('MULTI');
const PIPELINE = batchSpec('PIPELINE');

/** Ends `call`: tags the node that got it last, then finishes; a batch's reply may hold its failed commands' errors. */
function end(call: IoredisCall, err?: unknown, reply?: unknown, hasReply = false, batch = false): void {
  if (call.finished) return;
  const node = call.state;
  if (node) {
    call.state = null;
    try {
      if (call.recording) call.setTags(connectionTags({}, node));
    } catch (tagErr) {
      logOnce('ioredis:tags', 'could not build the tags of an ioredis span', tagErr);
    }
  }
  if (batch && (err === undefined || err === null)) {
    // The response hook sees the results, then the span records their first error.
    if (hasReply) call.respond(reply);
    call.finish(firstBatchError(reply));
    return;
  }
  call.finish(err, reply, hasReply);
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

const NO_REPLY = Symbol('no reply');

/**
 * Ends the call when ioredis settles `target` (a Command or a Pipeline)
 * through its resolve/reject. A command resolves with the parser's raw reply
 * (Buffers) and converts it in transformReply: the response hook gets the
 * converted reply, the one the application sees (only paid for with a hook).
 */
function settleThrough(target: IoredisCommand | IoredisPipeline, call: IoredisCall, batch: boolean): void {
  const resolve = target.resolve;
  const reject = target.reject;
  let converted: unknown = NO_REPLY;
  target.resolve = function (this: unknown, value: unknown) {
    // Resolve first: a reply transformer that throws rejects the command instead (Command._convertValue).
    const result = resolve.apply(this, arguments as never);
    end(call, undefined, converted !== NO_REPLY ? converted : value, true, batch);
    return result;
  };
  target.reject = function (this: unknown, err: unknown) {
    end(call, err ?? new Error('ioredis command rejected'));
    return reject.apply(this, arguments as never);
  };
  const transform = (target as IoredisCommand).transformReply;
  if (!batch && typeof transform === 'function' && typeof optionsOf(PATCH).responseHook === 'function') {
    (target as IoredisCommand).transformReply = function (this: unknown) {
      converted = transform.apply(this, arguments as never);
      return converted;
    };
  }
}

/**
 * Starts the call of one command and marks it; our own failures are
 * contained (the command then goes on untraced). `client` is the standalone
 * connection whose peer is known now; for a Cluster it is undefined and the
 * node connection that gets the command is tagged at the end.
 */
function traceCommand(command: IoredisCommand, client: IoredisClient | undefined): void {
  let call: IoredisCall | undefined;
  try {
    const previous = startingOn;
    startingOn = client;
    try {
      call = startCall(PATCH, COMMAND, command);
    } finally {
      startingOn = previous;
    }
    command[OWNER] = call ?? UNTRACED;
    if (call === undefined) return;
    if (client !== undefined) call.state = null;
  } catch (err) {
    logOnce('ioredis:trace', 'could not trace an ioredis command; it goes on untraced', err);
    return;
  }
  try {
    settleThrough(command, call, false);
  } catch (err) {
    logOnce('ioredis:settle', 'could not follow an ioredis command; its span is closed now', err);
    end(call);
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
    if (owner !== UNTRACED && !isCluster && owner.state !== null) owner.state = client;
    return original.apply(client, args as never);
  }
  // An untraced batch's command (its Pipeline was not traced): no span of its own.
  if (isPipelineStream(args[1])) return original.apply(client, args as never);
  if (!isCluster && isHousekeeping(client, command)) {
    command[OWNER] = UNTRACED;
    return original.apply(client, args as never);
  }
  traceCommand(command, isCluster ? undefined : client);
  try {
    return original.apply(client, args as never);
  } catch (err) {
    const call = command[OWNER] as Owner | undefined;
    if (call !== undefined && call !== UNTRACED) end(call, err);
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
          if (owner !== undefined && owner !== UNTRACED) end(owner, new Error(ABANDONED));
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
  traceCommand(command, standaloneOf(pipeline));
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
      for (const c of queueOf(pipeline)) {
        const owner = c[OWNER] as Owner | undefined;
        if (owner !== undefined && owner !== UNTRACED) end(owner, err ?? new Error('ioredis pipeline rejected'));
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
  const queue = queueOf(pipeline);
  const call: IoredisCall | undefined = startCall(PATCH, queue.some((c) => String(c.name).toLowerCase() === 'multi') ? MULTI : PIPELINE, pipeline);
  if (call === undefined) {
    pipeline[OWNER] = UNTRACED;
    return original.apply(pipeline, args as never);
  }
  if (standaloneOf(pipeline) !== undefined) call.state = null;
  try {
    pipeline[OWNER] = call;
    // The batch's commands go through Redis.sendCommand too: mark them as the batch's.
    for (const c of queue) if (isCommand(c)) c[OWNER] = call;
    settleThrough(pipeline, call, true);
  } catch (err) {
    logOnce('ioredis:mark', 'could not follow an ioredis pipeline; its span is closed now', err);
    end(call);
    return original.apply(pipeline, args as never);
  }
  try {
    return original.apply(pipeline, args as never);
  } catch (err) {
    end(call, err);
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

type Wrapper = (original: (...a: unknown[]) => unknown, self: never, args: IArguments) => unknown;

/** Ends the spans of the commands a client disconnected for good leaves unsettled. */
const disconnect: Wrapper = (original, client: IoredisClient, args) => {
  const result = original.apply(client, args as never);
  endAbandoned(client);
  return result;
};

/** A SentinelConnector's connection to a sentinel: its commands are housekeeping. */
const connectToSentinel: Wrapper = (original, connector: unknown, args) => {
  const client = original.apply(connector, args as never);
  if (client !== null && typeof client === 'object') ownClients.add(client);
  return client;
};

/** Every (prototype, method, wrapper) the patch wraps in `exports`; optional methods only where they exist. */
function targets(exports: IoredisModule): Array<[Record<string, unknown>, string, Wrapper]> {
  const list: Array<[Record<string, unknown>, string, Wrapper]> = [];
  const add = (proto: object | undefined, name: string, wrapper: Wrapper, optional = false): void => {
    if (proto !== undefined && (!optional || typeof (proto as Record<string, unknown>)[name] === 'function')) list.push([proto as Record<string, unknown>, name, wrapper]);
  };
  const redis = redisPrototype(exports);
  if (redis === undefined) return list;
  add(redis, 'sendCommand', (o, c: IoredisClient, a) => tracedSendCommand(o as IoredisClient['sendCommand'], c, a, false));
  add(redis, 'disconnect', disconnect, true);
  add(redis, 'setStatus', tracedSetStatus as Wrapper, true);
  const cluster = exports.Cluster?.prototype;
  add(cluster, 'sendCommand', (o, c: IoredisClient, a) => tracedSendCommand(o as IoredisClient['sendCommand'], c, a, true));
  for (const name of CLUSTER_HOUSEKEEPING) add(cluster, name, untracedHousekeeping, true);
  add(exports.SentinelConnector?.prototype, 'connectToSentinel', connectToSentinel, true);
  const pipeline = exports.Pipeline?.prototype;
  add(pipeline, 'exec', tracedExec as Wrapper);
  add(pipeline, 'sendCommand', tracedPipelineSendCommand as Wrapper);
  return list;
}

export const ioredis: Instrumentation<IoredisModule> = {
  name: 'ioredis',
  module: 'ioredis',
  patch(exports) {
    for (const [proto, name, wrapper] of targets(exports)) {
      wrapMethod(proto, name, (original) =>
        function (this: never) {
          return wrapper(original as (...a: unknown[]) => unknown, this, arguments);
        },
      );
    }
  },
  unpatch(exports) {
    for (const [proto, name] of targets(exports)) unwrapMethod(proto, name);
  },
};
