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
import { bindToCurrentContext } from '../context';
import { Handoff } from '../handoff';
import type { PgClientPrototype, PgModule, PgPoolClass, PgPoolInternals, PgSubmittable } from '../internal-types';
import type { Instrumentation } from '../instrumentation';
import { logOnce } from '../logger';
import { callThroughSeam, settleWith } from '../pg-promise';
import { applyCallback, end, finishingCallback, startConnect, startQuery, tagConnection, type Callback, type PgCall, type PgQuery } from '../pg-query';
import { unwrapMethod, wrapMethod } from '../wrap';

/** Marks a submittable we already observe, so that it is never traced twice. */
const OBSERVED = Symbol('opentracing-instrumentation.pg.observed');
/** The handlers pg's client calls on a submittable (pg/lib/client.js); each runs in the caller's context. */
const SUBMITTABLE_HANDLERS = ['handleRowDescription', 'handleDataRow', 'handlePortalSuspended', 'handleCommandComplete', 'handleEmptyQuery', 'handleCopyInResponse', 'handleCopyData', 'handleReadyForQuery', 'handleError'] as const;

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
let inProgress: PgQuery | undefined;
const handoff = new Handoff<PgQuery>();

function tracedClientQuery(original: Callback, client: PgClientPrototype, args: IArguments): unknown {
  const config = args[0];
  if (config === null || config === undefined) return original.apply(client, args as never);
  // pool.query calls client.query with the same config: one span, the pool's.
  const pending = handoff.current;
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
  const call = startConnect(client);
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
  inProgress = call.state;
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
    return handoff.run(pending, cb, this, arguments);
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
