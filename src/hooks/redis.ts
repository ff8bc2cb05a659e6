/**
 * Client spans for node-redis: `redis` 4, 5 and 6 (`@redis/client` 1.x, 5.x
 * and 6.x). Every command reaches the wire through the commands queue's
 * `addCommand` (dist/lib/client/commands-queue.js), the one seam the three
 * majors share; a span starts there, but only for a command the application
 * asked for: the client's public entry points (`sendCommand`; in 1.x, which
 * calls a private `#sendCommand`, the per-command methods `attachCommands`
 * put on the prototype) mark the synchronous stretch in which their command
 * is queued. The handshake (`HELLO`, `AUTH`, `SELECT`, `CLIENT SETINFO`),
 * resubscribes and `QUIT` are queued by the client itself, outside any
 * entry, and stay untraced. A batch (`multi().exec()`, `execAsPipeline()`)
 * is one span at its executor; its commands are queued inside it.
 *
 * A Cluster (`createCluster`) sends each command through a node client; a
 * MOVED/ASK redirect re-sends it to another node inside the same
 * `RedisCluster._execute`, which groups the attempts (AsyncLocalStorage): the
 * redirected attempt keeps the first attempt's span open and the last node
 * answers for it. The slot-table refresh (`RedisClusterSlots.connect` and
 * `rediscover`) runs untraced.
 *
 * The internal classes are not all exported (1.x and 5.x export no class),
 * so `patch` reaches them through the main file's directory (`internals`).
 */
import { createRequire } from 'module';
import { OPERATION_PREFIX, TAG } from '../constants';
import { activeCall, bindToCurrentContext, runInCall, suppressInstrumentation } from '../context';
import { startCall, type Call, type CallSpec } from '../call';
import type { Instrumentation } from '../instrumentation';
import type { NodeRedisClient, NodeRedisInternals, NodeRedisQueue, NodeRedisQueuedCommand } from '../internal-types';
import { logOnce } from '../logger';
import { optionsOf, type PatchOptions } from '../options';
import { withPromiseSeam } from '../promise-seam';
import { batchStatement, commandStatement, loggableRedisError, maxStatementLength, nameInfo, positionalFirstKey, type RedisStatementOptions } from '../redis-statement';
import { addPeerTags, type TagMap } from '../span';
import { truncate } from '../sql';
import { unwrapMethod, wrapMethod } from '../wrap';

/** What the `redis` request hook receives. */
export interface RedisRequest {
  /** The command name as sent (`'GET'`), or `'MULTI'` / `'PIPELINE'` for a batch. */
  command: string;
  /** The command's arguments after its name, as node-redis sends them (empty for a batch). */
  args: ReadonlyArray<unknown>;
  /** For a batch: its commands in order. */
  commands?: ReadonlyArray<{ command: string; args: ReadonlyArray<unknown> }>;
}

/** Options of the `redis` patch (node-redis 4, 5 and 6). */
export interface RedisOptions extends PatchOptions<RedisRequest, unknown>, RedisStatementOptions {
  /**
   * Builds `db.statement` from a command name (lower case) and its arguments,
   * for single commands and for each command of a batch. Never called for
   * `AUTH` and `HELLO`. A serializer that throws falls back to the default.
   * Default: the command name upper case, its first key, and a count of the
   * other arguments (`SET session:42 [1 other argument]`), as for ioredis.
   */
  statementSerializer?: ((command: string, args: ReadonlyArray<unknown>) => string) | null;
  /** Longest `db.statement` recorded, in characters; longer text is cut and ends with `…`. Default: 1024. */
  maxStatementLength?: number;
}

const PATCH = 'redis';
/** The client whose application call is queueing its command right now (synchronous stretch only). */
let entry: { client: NodeRedisClient; batch: boolean } | undefined;
/** Prototypes patched now: instance copies of wrapped methods (`subscribe = this.SUBSCRIBE`) check it. */
const live = new WeakSet<object>();
/** Listener -> its copy bound to the context it was registered in (one per listener, so unsubscribe finds it). */
const boundListeners = new WeakMap<object, unknown>();

/** A cluster command's attempts (RedisCluster._execute): a MOVED/ASK attempt hands its span to the next one. */
class RedirectGroup {
  call: Call | undefined;
  /** The node client of the latest attempt: its peer is tagged when the span finishes. */
  client: NodeRedisClient | undefined;
  /** What the grouping method returned (5.x/6.x: `_execute`'s promise, which node-redis awaits; 1.x: the application's). */
  result: unknown;
  private following = false;

  /**
   * An attempt was redirected and left the span open for the next one: if
   * the cluster gives up instead (too many redirects, a node it cannot
   * find), the span ends with the grouping method's promise. Followed only
   * from the first redirect on, so that a command that is never redirected
   * leaves that promise alone (in 1.x it is the one the application gets).
   */
  redirected(): void {
    if (this.following) return;
    this.following = true;
    const result = this.result;
    if (result instanceof Promise) {
      result.then(
        () => this.call?.finish(),
        (err: unknown) => this.call?.finish(err ?? new Error('redis command rejected')),
      ).catch(() => undefined);
    }
  }
}

const REDIRECT = /^(MOVED|ASK) /;
const PUBSUB = ['SUBSCRIBE', 'UNSUBSCRIBE', 'PSUBSCRIBE', 'PUNSUBSCRIBE', 'SSUBSCRIBE', 'SUNSUBSCRIBE'] as const;

/** Calls `original` on `target` with `args` as the entry of `client`'s application call (no closure made). */
function applyAsEntry(client: NodeRedisClient, original: (...a: unknown[]) => unknown, target: unknown, args: IArguments | unknown[]): unknown {
  const previous = entry;
  entry = { client, batch: false };
  try {
    return original.apply(target, args as unknown[]);
  } finally {
    entry = previous;
  }
}

function withEntry<T>(client: NodeRedisClient, batch: boolean, fn: () => T): T {
  const previous = entry;
  entry = { client, batch };
  try {
    return fn();
  } finally {
    entry = previous;
  }
}

function connectionTags(tags: TagMap, client: NodeRedisClient, peer = true): TagMap {
  const options = client.options ?? {};
  const socket = options.socket ?? {};
  tags[TAG.DB_INSTANCE] = String(typeof options.database === 'number' ? options.database : 0);
  if (!peer || typeof socket.path === 'string') return tags; // a Unix socket: no peer host
  const port = typeof socket.port === 'number' || typeof socket.port === 'string' ? socket.port : 6379;
  return addPeerTags(tags, typeof socket.host === 'string' ? socket.host : 'localhost', port);
}

function statementOf(args: ReadonlyArray<unknown>, options: RedisOptions, compact: boolean): string {
  return commandStatement(String(args[0]), args.slice(1), options, positionalFirstKey, compact, PATCH, logOnce);
}

/** The first error among a batch's replies (an EXEC reply holds the failed commands' errors). */
function batchError(reply: unknown): unknown {
  if (!Array.isArray(reply)) return undefined;
  for (const r of reply) {
    if (r instanceof Error) return r;
    if (Array.isArray(r)) for (const inner of r) if (inner instanceof Error) return inner;
  }
  return undefined;
}

/**
 * What ends `call` once its command or batch settles; a MOVED/ASK inside a
 * group leaves it to the next attempt. One object per call, its methods
 * called on it (the promise seam calls its observer's methods so).
 */
class Outcome {
  constructor(
    private readonly call: Call,
    private readonly group: RedirectGroup | undefined,
    private readonly batch: boolean,
  ) {}

  /** A cluster command: the node that answered last is the peer (tags set once: a tracer may keep duplicates). */
  private end(): void {
    const group = this.group;
    try {
      if (group?.client !== undefined && !this.call.finished) this.call.setTags(connectionTags({}, group.client));
    } catch (err) {
      logOnce('redis:tags', 'could not tag the node of a node-redis cluster command', err);
    }
  }

  resolved(reply: unknown): void {
    this.end();
    const failed = this.batch ? batchError(reply) : undefined;
    if (failed !== undefined) this.call.finish(failed);
    else this.call.finish(undefined, reply, true);
  }

  rejected(err: unknown): void {
    const message = (err as { message?: unknown } | null)?.message;
    if (this.group !== undefined && typeof message === 'string' && REDIRECT.test(message)) {
      this.group.redirected();
      return;
    }
    this.end();
    this.call.finish(err ?? new Error('redis command rejected'));
  }
}

/**
 * Finishes `call` when `result` settles, on a branch of its own. Only for a
 * promise node-redis itself awaits (a batch executor's, run inside `exec`):
 * one the application gets is followed through `queued` instead.
 */
function settle(call: Call, result: unknown, group?: RedirectGroup, batch = false): void {
  if (result === null || typeof result !== 'object' || typeof (result as Promise<unknown>).then !== 'function') {
    call.finish(undefined, result, true);
    return;
  }
  const outcome = new Outcome(call, group, batch);
  (result as Promise<unknown>).then(
    (reply) => outcome.resolved(reply),
    (err: unknown) => outcome.rejected(err),
  );
}

/**
 * What the span of one call is built from. A single command carries itself
 * (`command`, its name first), so that the spec is shared and nothing is made
 * per command for it; a batch or a pub/sub call brings its statement and request.
 */
interface Subject {
  readonly client: NodeRedisClient;
  /** The command name, upper case, or MULTI / PIPELINE. */
  readonly name: string;
  readonly command?: ReadonlyArray<unknown>;
  readonly statement?: () => string;
  readonly request?: () => RedisRequest;
  /** False for a cluster command: its node is tagged when it ends. */
  peer: boolean;
}

const SPEC: CallSpec<RedisRequest, Subject> = {
  operationName: (s) => nameInfo(s.name).operationName,
  tags: (tags, s) => {
    const options = optionsOf(PATCH);
    tags[TAG.DB_TYPE] = 'redis';
    tags[TAG.DB_STATEMENT] = truncate(s.command !== undefined ? statementOf(s.command, options, false) : s.statement!(), maxStatementLength(options));
    connectionTags(tags, s.client, s.peer);
  },
  request: (s) => (s.command !== undefined ? { command: s.name, args: s.command.slice(1) } : s.request!()),
  loggableError: (err) => loggableRedisError(err),
};

/** Starts (or, for a redirected cluster attempt, takes over) the span of one command or batch; runs `run`. */
function traced(subject: Subject, run: () => unknown, batch: boolean): unknown {
  const active = activeCall();
  const group = active instanceof RedirectGroup ? active : undefined;
  if (group !== undefined) group.client = subject.client;
  let call = group?.call !== undefined && !group.call.finished ? group.call : undefined;
  if (call === undefined) {
    subject.peer = group === undefined;
    call = startCall<RedisRequest, unknown, Subject>(PATCH, SPEC, subject);
    if (call === undefined) return run();
    if (group !== undefined) group.call = call;
  }
  let result: unknown;
  let seen = false;
  try {
    if (batch) result = run();
    else ({ result, seen } = withPromiseSeam('node-redis', run, new Outcome(call, group, false)));
  } catch (err) {
    call.finish(err);
    throw err;
  }
  if (seen) return result; // the queue's resolve/reject end the span
  try {
    if (batch || result === null || typeof result !== 'object' || typeof (result as Promise<unknown>).then !== 'function') settle(call, result, group, batch);
    else {
      // The application's promise, not built through the seam: never observed (that would mark its rejection handled).
      logOnce('redis:seam', 'a node-redis command did not build its promise through the queue seam; its span ends without its outcome');
      call.finish();
    }
  } catch (err) {
    logOnce('redis:settle', 'could not follow a node-redis command; its span is closed now', err);
    call.finish();
  }
  return result;
}

function tracedAddCommand(original: NodeRedisQueue['addCommand'], queue: NodeRedisQueue, args: IArguments): Promise<unknown> {
  const current = entry;
  const command = args[0] as ReadonlyArray<unknown>;
  if (current === undefined || current.batch || !Array.isArray(command) || command.length === 0) return original.apply(queue, args as never);
  const name = nameInfo(String(command[0])).upper;
  // A cluster's ASKING before the command an ASK redirects (1.x: `client.asking()`): protocol, not a call.
  if (name === 'ASKING') return original.apply(queue, args as never);
  entry = undefined; // one span per application call: whatever else it queues is its own business
  return traced({ client: current.client, name, command, peer: true }, () => original.apply(queue, args as never), false) as Promise<unknown>;
}

function tracedBatch(original: (...a: unknown[]) => unknown, client: NodeRedisClient, args: IArguments, multi: boolean): unknown {
  const commands = (Array.isArray(args[0]) ? args[0] : []) as NodeRedisQueuedCommand[];
  const run = (): unknown => withEntry(client, true, () => original.apply(client, args as never));
  return traced(
    {
      client,
      name: multi ? 'MULTI' : 'PIPELINE',
      statement: () => {
        const options = optionsOf(PATCH);
        return batchStatement(commands, (c) => statementOf(c.args, options, true), maxStatementLength(options));
      },
      request: () => ({
        command: multi ? 'MULTI' : 'PIPELINE',
        args: [],
        commands: commands.map((c) => ({ command: String(c.args[0]), args: c.args.slice(1) })),
      }),
      peer: true,
    },
    run,
    true,
  );
}

function tracedPubSub(original: (...a: unknown[]) => unknown, client: NodeRedisClient, args: IArguments, name: string): unknown {
  const list = Array.prototype.slice.call(args) as unknown[];
  const listener = list[1];
  if (typeof listener === 'function') {
    let bound = boundListeners.get(listener);
    if (bound === undefined && !name.includes('UNSUB')) {
      // Messages reach the listener from the socket's data events: run it where it was registered.
      bound = bindToCurrentContext(listener as (...a: never[]) => unknown);
      boundListeners.set(listener, bound);
    }
    if (bound !== undefined) list[1] = bound;
  }
  const channels = Array.isArray(list[0]) ? (list[0] as unknown[]) : list[0] === undefined ? [] : [list[0]];
  return traced(
    {
      client,
      name,
      statement: () => statementOf([name, ...channels], optionsOf(PATCH), false),
      request: () => ({ command: name, args: channels }),
      peer: true,
    },
    () => original.apply(client, list),
    false,
  );
}

function self(client: NodeRedisClient): NodeRedisClient {
  return client._self ?? client;
}

/** The internal modules, through the main file of `exports` (found in the require cache). */
function internals(exports: object): NodeRedisInternals | undefined {
  const main = Object.values(require.cache).find((m) => m?.exports === exports)?.filename;
  if (main === undefined) return undefined;
  const load = createRequire(main);
  const attempt = <T>(id: string, pick: (m: Record<string, unknown>) => unknown): T | undefined => {
    try {
      return pick(load(id) as Record<string, unknown>) as T | undefined;
    } catch {
      return undefined;
    }
  };
  const client = attempt<NodeRedisInternals['client']>('./lib/client', (m) => m.default);
  const queue = attempt<NodeRedisInternals['queue']>('./lib/client/commands-queue', (m) => m.default);
  if (client === undefined || queue === undefined) return undefined;
  const legacy = typeof client.prototype.multiExecutor === 'function';
  return {
    client,
    queue,
    commands: legacy ? attempt('./lib/client/commands', (m) => m.default) : undefined,
    pool: attempt('./lib/client/pool', (m) => m.RedisClientPool),
    cluster: attempt('./lib/cluster', (m) => m.default),
    slots: attempt('./lib/cluster/cluster-slots', (m) => m.default),
  };
}

type Wrapper = (original: (...a: unknown[]) => unknown, target: NodeRedisClient, args: IArguments) => unknown;

/** Wraps `proto[name]` with `wrapper`, inert once `proto` is unpatched (instances may keep a copy). */
function wrap(proto: object, name: string, wrapper: Wrapper): void {
  const target = proto as Record<string, unknown>;
  if (typeof target[name] !== 'function') return;
  wrapMethod(target, name, (original) =>
    function (this: NodeRedisClient) {
      if (!live.has(proto)) return (original as (...a: unknown[]) => unknown).apply(this, arguments as never);
      return wrapper(original as (...a: unknown[]) => unknown, this, arguments);
    } as never,
  );
}

/** Every (prototype, method) pair `patch` wraps, for unpatching and the tests. */
function targets(i: NodeRedisInternals): Array<[object, string, Wrapper]> {
  const client = i.client.prototype;
  const entryPoint: Wrapper = (original, c, args) => applyAsEntry(self(c), original, c, args);
  const list: Array<[object, string, Wrapper]> = [[client, 'sendCommand', entryPoint]];
  if (i.commands !== undefined) {
    // 1.x: commands call a private #sendCommand; their methods are the entry points.
    for (const name of Object.keys(i.commands)) list.push([client, name, entryPoint]);
    // Module, script and function commands: executors `attachExtensions` reads off the prototype at createClient.
    for (const name of ['commandsExecutor', 'executeScript', 'executeFunction', 'SELECT']) list.push([client, name, entryPoint]);
    list.push([client, 'multiExecutor', (o, c, a) => tracedBatch(o, c, a, a[2] !== undefined)]);
  } else {
    list.push([client, '_executeMulti', (o, c, a) => tracedBatch(o, self(c), a, true)]);
    list.push([client, '_executePipeline', (o, c, a) => tracedBatch(o, self(c), a, false)]);
  }
  for (const name of PUBSUB) list.push([client, name, (o, c, a) => tracedPubSub(o, self(c), a, name)]);
  if (i.pool !== undefined) list.push([i.pool.prototype, 'execute', bindFirst]);
  if (i.cluster !== undefined) {
    // 5.x/6.x: every attempt of a command runs inside `_execute`; 1.x: inside a private
    // `#execute`, reached from these public methods (MULTI reaches it directly: not grouped).
    const group: Wrapper = (o, c, a) => {
      const g = new RedirectGroup();
      g.result = runInCall(g, () => o.apply(c, a as never));
      return g.result;
    };
    const names = typeof i.cluster.prototype._execute === 'function' ? ['_execute'] : ['sendCommand', 'executeScript', 'executeFunction'];
    for (const name of names) list.push([i.cluster.prototype, name, group]);
  }
  if (i.slots !== undefined) {
    for (const name of ['connect', 'rediscover']) list.push([i.slots.prototype, name, (o, c, a) => suppressInstrumentation(() => o.apply(c, a as never))]);
  }
  return list;
}

/** Runs a queued task (pool, isolation pool) in the context of the call that queued it. */
const bindFirst: Wrapper = (original, target, args) => {
  const list = Array.prototype.slice.call(args) as unknown[];
  if (typeof list[0] === 'function') list[0] = bindToCurrentContext(list[0] as (...a: never[]) => unknown);
  return original.apply(target, list);
};

const patchedInternals = new WeakMap<object, NodeRedisInternals>();

export const redisClient: Instrumentation<object> = {
  name: PATCH,
  module: '@redis/client',
  patch(exports) {
    const i = patchedInternals.get(exports) ?? internals(exports);
    if (i === undefined) {
      logOnce('redis:internals', 'could not find the internals of @redis/client; left unpatched');
      return;
    }
    patchedInternals.set(exports, i);
    for (const [proto, name, wrapper] of targets(i)) wrap(proto, name, wrapper);
    wrapMethod(i.queue.prototype, 'addCommand', (original) =>
      function addCommand(this: NodeRedisQueue) {
        if (!live.has(i.queue.prototype)) return original.apply(this, arguments as never);
        return tracedAddCommand(original, this, arguments);
      },
    );
    for (const [proto] of targets(i)) live.add(proto);
    live.add(i.queue.prototype);
  },
  unpatch(exports) {
    const i = patchedInternals.get(exports);
    if (i === undefined) return;
    for (const [proto, name] of targets(i)) {
      live.delete(proto);
      unwrapMethod(proto as Record<string, unknown>, name);
    }
    live.delete(i.queue.prototype);
    unwrapMethod(i.queue.prototype, 'addCommand');
  },
};

/** For the tests: the methods `patch` wraps in this copy of `@redis/client`. */
export function wrappedMethods(exports: object): Array<readonly [object, string]> {
  const i = patchedInternals.get(exports) ?? internals(exports);
  if (i === undefined) return [];
  return [...targets(i).filter(([proto, name]) => typeof (proto as Record<string, unknown>)[name] === 'function').map(([p, n]) => [p, n] as const), [i.queue.prototype, 'addCommand'] as const];
}
