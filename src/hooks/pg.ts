/**
 * Client spans for node-postgres: `Client.prototype.query` in every form pg
 * accepts (text, text + values, config object, trailing callback,
 * `config.callback`, promise, submittable such as `Query`, pg-cursor and
 * pg-query-stream), `Pool.prototype.query` (one span per logical query, from
 * the call to the result, time waiting for a free client included), and
 * optional `pg:connect` spans for `Client.prototype.connect`. The promise
 * form follows pg's own promise (src/pg-promise.ts); errors are logged
 * without the values PostgreSQL echoes (src/pg-errors.ts).
 *
 * Context: pg runs a query's callbacks and events in the context of the
 * socket's owner, and pg-pool hands a waiting caller its client in the
 * context of whoever released one. Callbacks, pool waiters and submittable
 * handlers run in the caller's context; promise continuations already do.
 */
import { AsyncResource } from 'async_hooks';
import { startCall, type Call, type CallSpec } from '../call';
import { OPERATION_PREFIX, TAG } from '../constants';
import { bindToCurrentContext } from '../context';
import type { PgClientInternals, PgClientPrototype, PgModule, PgPoolClass, PgPoolInternals, PgSubmittable } from '../internal-types';
import type { Instrumentation } from '../instrumentation';
import { logOnce } from '../logger';
import { optionsOf, type PgOptions, type PgQueryConfig, type PgQueryResult } from '../options';
import { loggablePgError } from '../pg-errors';
import { callThroughSeam, settleWith } from '../pg-promise';
import { addPeerTags, type TagMap } from '../span';
import { maskedStatement, maskSqlLiterals, memoByText, serializeSqlParameters, sqlVerb, truncate } from '../sql';
import { unwrapMethod, wrapMethod } from '../wrap';

const PATCH = 'pg';
const DEFAULT_MAX_STATEMENT_LENGTH = 4096;
/** Marks a submittable we already observe, so that it is never traced twice. */
const OBSERVED = Symbol('opentracing-instrumentation.pg.observed');
/** The handlers pg's client calls on a submittable (pg/lib/client.js); each runs in the caller's context. */
const SUBMITTABLE_HANDLERS = ['handleRowDescription', 'handleDataRow', 'handlePortalSuspended', 'handleCommandComplete', 'handleEmptyQuery', 'handleCopyInResponse', 'handleCopyData', 'handleReadyForQuery', 'handleError'] as const;

type Callback = (this: unknown, ...args: unknown[]) => unknown;
/** A query call; `state` is its Query (a connect call has none). */
type PgCall = Call<PgQueryResult | PgQueryResult[], Query>;

/** One query: the subject of its `startCall` (the spec's functions are shared, not made per query). */
interface Query {
  readonly config: unknown;
  /** The bound values: the `values` argument wins over `config.values`, as in pg's normalizeQueryConfig. */
  readonly values: unknown;
  readonly client: PgClientInternals | undefined;
  readonly options: PgOptions;
}

const verbOf = memoByText((text) => sqlVerb(text) ?? 'QUERY');
const masked = memoByText((text) => maskSqlLiterals(text, 'postgres'));

/** The statement text of any query form (a QueryStream keeps it on its cursor). */
function textOf(config: unknown): string | undefined {
  if (typeof config === 'string') return config;
  if (config === null || typeof config !== 'object') return undefined;
  const c = config as PgSubmittable;
  if (typeof c.text === 'string') return c.text;
  return typeof c.cursor?.text === 'string' ? c.cursor.text : undefined;
}

/** A client's connection tags, with the fields they were made from (kept per client: they rarely change). */
interface ClientTags {
  host: unknown;
  port: unknown;
  database: unknown;
  user: unknown;
  tags: TagMap;
}
const clientTags = new WeakMap<object, ClientTags>();

/** Adds `db.instance`, `db.user` and `peer.*` of `client`; a Unix socket directory is not a peer host name. */
function connectionTags(tags: TagMap, client: PgClientInternals): TagMap {
  const { host, port, database, user } = client;
  let known = clientTags.get(client);
  if (known === undefined || known.host !== host || known.port !== port || known.database !== database || known.user !== user) {
    const own: TagMap = {};
    if (typeof database === 'string') own[TAG.DB_INSTANCE] = database;
    if (typeof user === 'string') own[TAG.DB_USER] = user;
    addPeerTags(own, typeof host === 'string' && !host.startsWith('/') ? host : undefined, typeof port === 'number' || typeof port === 'string' ? port : undefined);
    clientTags.set(client, (known = { host, port, database, user, tags: own }));
  }
  return Object.assign(tags, known.tags);
}

const QUERY: CallSpec<PgQueryConfig, Query> = {
  operationName: (q) => {
    const text = textOf(q.config);
    return OPERATION_PREFIX.PG + (text === undefined ? 'QUERY' : verbOf(text));
  },
  tags(tags, { config, values, client, options }) {
    tags[TAG.DB_TYPE] = 'sql';
    const max = typeof options.maxStatementLength === 'number' && options.maxStatementLength > 0 ? Math.floor(options.maxStatementLength) : DEFAULT_MAX_STATEMENT_LENGTH;
    const text = textOf(config);
    if (text !== undefined) tags[TAG.DB_STATEMENT] = options.recordRawStatement === true ? truncate(text, max) : maskedStatement(text, max, masked);
    if (options.captureParameters === true) tags[TAG.DB_PARAMETERS] = Array.isArray(values) ? serializeSqlParameters(values, max) : undefined;
    if (client !== undefined) connectionTags(tags, client);
  },
  // The caller's own object, or `{ text, values }` for the text form.
  request: ({ config, values }) => (config !== null && typeof config === 'object' ? (config as PgQueryConfig) : { text: textOf(config), values: Array.isArray(values) ? values : undefined }),
};

const CONNECT: CallSpec<undefined, PgClientInternals> = {
  operationName: `${OPERATION_PREFIX.PG}connect`,
  tags: (tags, client) => connectionTags(tags, client)[TAG.DB_TYPE] = 'sql',
};

function startQuery(config: unknown, values: unknown, client: PgClientInternals | undefined): PgCall | undefined {
  if (values === undefined || typeof values === 'function' || !values) values = config !== null && typeof config === 'object' ? ((config as PgSubmittable).values ?? (config as PgSubmittable).cursor?.values) : undefined;
  const query: Query = { config, values, client, options: optionsOf(PATCH) };
  const call = startCall<PgQueryConfig, PgQueryResult | PgQueryResult[], Query, Query>(PATCH, QUERY, query);
  if (call !== undefined) call.state = query;
  return call;
}

/** Ends a call: errors logged without echoed values, the response hook for a query's result (never for a connect). */
function end(call: PgCall, err: unknown, result?: unknown): void {
  const query = call.state;
  if (err) call.finish(loggablePgError(err, query?.values, (query?.options ?? optionsOf(PATCH)).captureParameters === true));
  else if (query !== undefined && result !== undefined) call.finish(undefined, result as PgQueryResult, true);
  else call.finish();
}

function applyCallback(this: unknown, cb: Callback, args: IArguments): unknown {
  return cb.apply(this, args as unknown as unknown[]);
}

/** pg's callback for `cb`: ends the call, then runs `cb` in the caller's context. */
function finishingCallback(call: PgCall, cb: Callback): Callback {
  const scope = new AsyncResource('opentracing-instrumentation.pg');
  return function (this: unknown, err: unknown, result: unknown) {
    end(call, err, result);
    return scope.runInAsyncScope(applyCallback, this, cb, arguments);
  };
}

/**
 * Follows a submittable to its end through the handlers pg's client calls,
 * which also run in the caller's context from now on. pg calls
 * `handleReadyForQuery` when the statement is over, including after an early
 * `cursor.close()` or a destroyed QueryStream (which closes its cursor), and
 * `handleError` on failure and when the connection dies (`_errorAllQueries`).
 */
function observeSubmittable(sub: PgSubmittable, call: PgCall): void {
  const scope = new AsyncResource('opentracing-instrumentation.pg');
  for (const name of SUBMITTABLE_HANDLERS) {
    const original = sub[name] as Callback;
    if (typeof original !== 'function') continue;
    const wrapper = function (this: PgSubmittable, err?: unknown): unknown {
      // pg's Query reports a row that failed to parse through handleError, instead of what comes next.
      if (name === 'handleError') end(call, this._canceledDueToError || err);
      else if (name === 'handleReadyForQuery' && !this._canceledDueToError) end(call, undefined, this._results ?? this._result);
      return scope.runInAsyncScope(applyCallback, this, original, arguments);
    };
    if (Object.prototype.hasOwnProperty.call(sub, name)) sub[name] = wrapper;
    else Object.defineProperty(sub, name, { value: wrapper, writable: true, configurable: true, enumerable: false });
  }
  Object.defineProperty(sub, OBSERVED, { value: true, configurable: true });
}

/**
 * A `pool.query` in progress. pg-pool's `query()` asks the (patched)
 * `connect()` for a client synchronously, and makes its `client.query` from
 * that connect callback synchronously: the pool call is handed over through
 * these two variables (`inProgress` while `pool.query` runs, `handoff` while
 * its connect callback runs), with no async context of its own.
 */
interface PoolCall {
  readonly call: PgCall;
  readonly config: unknown;
  connecting: boolean;
  adopted: boolean;
  tagged: boolean;
}
let inProgress: PoolCall | undefined;
let handoff: PoolCall | undefined;

/** The pool call's span gets the peer of the client it runs on (once: a tracer may keep duplicate tags). */
function tagConnection(pending: PoolCall, client: PgClientInternals): void {
  if (pending.tagged || !pending.call.recording) return;
  pending.tagged = true;
  try {
    pending.call.setTags(connectionTags({}, client));
  } catch (err) {
    logOnce('pg:tags', 'could not build the tags of a pg span', err);
  }
}

function tracedClientQuery(original: Callback, client: PgClientPrototype, args: IArguments): unknown {
  const config = args[0];
  if (config === null || config === undefined) return original.apply(client, args as never);
  // pool.query calls client.query with the same config: one span, the pool's.
  const pending = handoff;
  if (pending !== undefined && !pending.adopted && pending.config === config) {
    pending.adopted = true;
    tagConnection(pending, client);
    return original.apply(client, args as never);
  }
  const values = args[1];
  if (typeof (config as PgSubmittable).submit === 'function') {
    if ((config as { [OBSERVED]?: boolean })[OBSERVED]) return original.apply(client, args as never);
    const call = startQuery(config, values, client);
    if (call === undefined) return original.apply(client, args as never);
    try {
      observeSubmittable(config as PgSubmittable, call);
    } catch (err) {
      logOnce('pg:submittable', 'could not observe a pg submittable; its span is closed now', err);
      call.finish();
    }
    try {
      return original.apply(client, args as never);
    } catch (err) {
      end(call, err);
      throw err;
    }
  }
  // pg's normalizeQueryConfig: a callback argument wins over a function in `values`, which wins over config.callback.
  let cb: unknown = args[2];
  if (!cb) cb = typeof values === 'function' ? values : typeof config === 'object' ? (config as { callback?: unknown }).callback : undefined;
  if (cb && typeof cb !== 'function') return original.apply(client, args as never); // pg throws its TypeError
  const call = startQuery(config, values, client);
  if (call === undefined) return original.apply(client, args as never);
  if (typeof cb !== 'function') return callThroughSeam(client, '_Promise', end, call, original, client, args);
  try {
    return original.call(client, config, values, finishingCallback(call, cb as Callback));
  } catch (err) {
    end(call, err);
    throw err;
  }
}

function tracedClientConnect(original: Callback, client: PgClientPrototype, args: IArguments): unknown {
  // A pool creating a client for a pool.query: the query span gets this client's peer.
  if (inProgress !== undefined && !inProgress.adopted) tagConnection(inProgress, client);
  const callback = args[0] as Callback | undefined;
  const call = optionsOf(PATCH).traceConnect === true ? (startCall(PATCH, CONNECT, client) as PgCall | undefined) : undefined;
  if (call === undefined) return typeof callback === 'function' ? original.call(client, bindToCurrentContext(callback)) : original.apply(client, args as never);
  if (typeof callback !== 'function') return settleWith(original.apply(client, args as never), end, call);
  try {
    return original.call(client, finishingCallback(call, callback));
  } catch (err) {
    end(call, err);
    throw err;
  }
}

function tracedPoolQuery(original: Callback, pool: PgPoolInternals, args: IArguments): unknown {
  const config = args[0];
  if (config === null || config === undefined || typeof config === 'function') return original.apply(pool, args as never);
  // pg-pool: a function in `values` is the callback, and the third argument is then ignored.
  const cbIndex = typeof args[1] === 'function' ? 1 : 2;
  const cb = args[cbIndex];
  if (cb && typeof cb !== 'function') return original.apply(pool, args as never);
  const call = startQuery(config, cbIndex === 1 ? undefined : args[1], undefined);
  if (call === undefined) return original.apply(pool, args as never);
  const previous = inProgress;
  inProgress = { call, config, connecting: false, adopted: false, tagged: false };
  try {
    if (typeof cb !== 'function') return callThroughSeam(pool, 'Promise', end, call, original, pool, args);
    const list = Array.prototype.slice.call(args) as unknown[];
    list[cbIndex] = finishingCallback(call, cb as Callback);
    return original.apply(pool, list);
  } catch (err) {
    end(call, err);
    throw err;
  } finally {
    inProgress = previous;
  }
}

/**
 * `pool.connect(cb)`: for the pool.query in progress, a callback that hands
 * its call to the client.query pg-pool makes from it; else `cb` in the
 * caller's context (pg-pool's _pulseQueue serves a waiting caller in the
 * releasing client's context).
 */
function tracedPoolConnect(original: Callback, pool: PgPoolInternals, args: IArguments): unknown {
  const cb = args[0] as Callback | undefined;
  if (typeof cb !== 'function') return original.apply(pool, args as never);
  const pending = inProgress;
  if (pending === undefined || pending.connecting) return original.call(pool, bindToCurrentContext(cb));
  pending.connecting = true;
  return original.call(pool, function (this: unknown) {
    const previous = handoff;
    handoff = pending;
    try {
      return cb.apply(this, arguments as unknown as unknown[]);
    } finally {
      handoff = previous;
    }
  });
}

/** Wraps `proto[name]` with `traced(original, this, arguments)`. */
function wrapWith<T extends object>(proto: T, name: 'query' | 'connect', traced: (original: Callback, self: never, args: IArguments) => unknown): void {
  wrapMethod(proto as Record<string, Callback>, name, (original) =>
    name === 'query'
      ? function query(this: never) {
          return traced(original, this, arguments);
        }
      : function connect(this: never) {
          return traced(original, this, arguments);
        },
  );
}

/** `pg`: Client.prototype.query and .connect (pg's Pool inherits pg-pool's, patched below). */
export const pgClient: Instrumentation<PgModule> = {
  name: 'pg',
  module: 'pg',
  patch(exports) {
    // Read `Client` only: `exports.native` is a getter that loads pg-native.
    const proto = exports.Client?.prototype;
    if (proto === undefined) return;
    wrapWith(proto, 'query', tracedClientQuery);
    wrapWith(proto, 'connect', tracedClientConnect);
  },
  unpatch(exports) {
    const proto = exports.Client?.prototype;
    if (proto === undefined) return;
    unwrapMethod(proto, 'query');
    unwrapMethod(proto, 'connect');
  },
};

/** `pg-pool`: Pool.prototype.query and .connect, the class pg's `Pool` extends. */
export const pgPool: Instrumentation<PgPoolClass> = {
  name: 'pg',
  module: 'pg-pool',
  patch(Pool) {
    wrapWith(Pool.prototype, 'query', tracedPoolQuery);
    wrapWith(Pool.prototype, 'connect', tracedPoolConnect);
  },
  unpatch(Pool) {
    unwrapMethod(Pool.prototype, 'query');
    unwrapMethod(Pool.prototype, 'connect');
  },
};
