/**
 * Client spans for mysql2 3.x: `connection.query` and `connection.execute`
 * in every form (SQL text, options object, values, callback; the command
 * emitter without a callback; `.stream()`), `statement.execute()` of a
 * `prepare()`d statement, and `pool.query`/`pool.execute` (one span per
 * statement, from the call to the result, time waiting for a free
 * connection included). The promise API (`mysql2/promise`) and pool
 * clusters are built on these methods and are traced through them.
 *
 * Context: mysql2 runs a command's callback and events from the socket's
 * data handler, and its pool hands a waiting caller its connection from the
 * releasing caller's `process.nextTick` (lib/base/pool.js
 * `_handleSuccessfulRelease`; lib/pool.js `releaseConnection` before
 * 3.11.5). The patch runs callbacks and events of a traced command in the
 * caller's context and binds `pool.getConnection` callbacks to theirs.
 *
 * The classes are patched where they define these methods: mysql2 3.11.5
 * moved them to `BaseConnection`/`BasePool` (lib/base/), which the exported
 * `Connection`/`Pool` extend.
 */
import type { AsyncResource } from 'async_hooks';
import { errorMonitor } from 'events';
import type { Call } from '../call';
import { activeOuterClient, bindToCurrentContext, isSuppressed, runWithOuterClient, type OuterClient } from '../context';
import type { Instrumentation } from '../instrumentation';
import type { MysqlCommand, Mysql2ConnectionInternals, Mysql2Module, Mysql2PoolInternals, Mysql2PreparedStatement } from '../internal-types';
import { logOnce } from '../logger';
import { callerScope, emitInScope, finishOnEnd, finishingCallback, startStatement, textOf, type Callback } from '../mysql-common';
import { unwrapMethod, wrapMethod } from '../wrap';

const COMPONENT = 'mysql2';

type Method = (this: unknown, ...args: unknown[]) => unknown;

/** A `pool.query`/`pool.execute` in progress: the connection call it makes adopts its span. */
interface PoolCall {
  readonly call: Call;
  readonly scope: AsyncResource;
  readonly hasCallback: boolean;
  /** The connection call has taken the span. */
  adopted: boolean;
  /** The span observes its command (its events run in the caller's context). */
  attached: boolean;
}

const poolCalls = new WeakMap<OuterClient, PoolCall>();

/**
 * Calls in the emitter form, per connection. When a connection dies, mysql2
 * ends the commands that have a callback with the error and gives the others
 * no event at all (base/connection.js `_notifyError`; `_addCommandClosedState`
 * for a command added once closed): it emits the error on the connection,
 * where these calls are ended with it.
 */
const emitterCalls = new WeakMap<object, Set<Call>>();

/** The object on `proto`'s chain that defines `name` itself. */
function ownerOf(proto: object | undefined, name: string): object | undefined {
  for (let o: object | null | undefined = proto; o !== null && o !== undefined && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    if (Object.prototype.hasOwnProperty.call(o, name)) return o;
  }
  return undefined;
}

function isCommand(value: unknown): value is MysqlCommand {
  return value !== null && typeof value === 'object' && typeof (value as MysqlCommand).emit === 'function' && typeof (value as MysqlCommand).on === 'function';
}

/** The values of `query(sql, values, cb)` and `execute(sql, values, cb)`, as mysql2 reads them. */
function valuesOf(sql: unknown, second: unknown): unknown {
  if (second !== undefined && typeof second !== 'function') return second;
  return sql !== null && typeof sql === 'object' ? (sql as { values?: unknown }).values : undefined;
}

/** Where the callback is: `(sql, cb)`, `(sql, values, cb)`; -1 for none. */
function callbackIndex(args: IArguments): number {
  if (typeof args[1] === 'function') return 1;
  if (typeof args[2] === 'function') return 2;
  return -1;
}

function watchConnection(connection: Mysql2ConnectionInternals | undefined, call: Call): void {
  if (connection === undefined || connection === null || typeof connection.on !== 'function') return;
  let calls = emitterCalls.get(connection);
  if (calls === undefined) {
    const open = (calls = new Set());
    emitterCalls.set(connection, open);
    connection.on(errorMonitor, (err: unknown) => {
      for (const c of open) c.finish(err);
      open.clear();
    });
  }
  calls.add(call);
}

function unwatch(connection: Mysql2ConnectionInternals | undefined, call: Call): void {
  if (connection !== undefined && connection !== null) emitterCalls.get(connection)?.delete(call);
}

/** Observes `command` for `call`: its events in the caller's context, and its end when there is no callback. */
function attach(call: Call, scope: AsyncResource, command: unknown, hasCallback: boolean, connection: Mysql2ConnectionInternals | undefined, onDone?: () => void): void {
  if (!isCommand(command)) {
    if (!hasCallback) call.finish(undefined, undefined, true); // nothing to wait for
    return;
  }
  emitInScope(command, scope);
  if (hasCallback) return;
  finishOnEnd(call, command);
  command.once('end', () => {
    unwatch(connection, call);
    if (onDone !== undefined) onDone();
  });
}

/**
 * Runs a connection or statement method for `call` (undefined: untraced):
 * the callback at `cbIndex` (or a command's own `onResult`) ends the span
 * and runs in the caller's context; without one, the command's `end` or
 * error does.
 */
function runTraced(
  call: Call | undefined,
  original: Method,
  self: unknown,
  args: IArguments,
  cbIndex: number,
  connection: Mysql2ConnectionInternals | undefined,
  command?: MysqlCommand,
): unknown {
  if (call === undefined) return original.apply(self, args as unknown as unknown[]);
  const scope = callerScope();
  let list: ArrayLike<unknown> = args;
  let hasCallback = false;
  try {
    if (command !== undefined) {
      if (typeof command.onResult === 'function') {
        command.onResult = finishingCallback(call, scope, command.onResult as Callback);
        hasCallback = true;
      }
    } else if (cbIndex >= 0) {
      const copy = Array.prototype.slice.call(args) as unknown[];
      copy[cbIndex] = finishingCallback(call, scope, args[cbIndex] as Callback);
      list = copy;
      hasCallback = true;
    }
    if (!hasCallback) watchConnection(connection, call);
  } catch (err) {
    logOnce('mysql2:callback', 'could not wrap a mysql2 callback; the statement goes on untraced', err);
    call.finish(undefined);
    return original.apply(self, args as unknown as unknown[]);
  }
  let result: unknown;
  try {
    result = original.apply(self, list as unknown[]);
  } catch (err) {
    call.finish(err);
    throw err;
  }
  try {
    attach(call, scope, result, hasCallback, connection);
  } catch (err) {
    logOnce('mysql2:attach', 'could not observe a mysql2 command', err);
  }
  return result;
}

/** A connection call made by a traced `pool.query`/`pool.execute`: it takes the pool call's span instead of starting one. */
function adopt(pending: PoolCall, original: Method, connection: Mysql2ConnectionInternals, args: IArguments): unknown {
  pending.adopted = true;
  if (!pending.hasCallback && !pending.attached) watchConnection(connection, pending.call);
  const command = original.apply(connection, args as unknown as unknown[]);
  if (!pending.attached) {
    pending.attached = true;
    try {
      attach(pending.call, pending.scope, command, pending.hasCallback, connection);
    } catch (err) {
      logOnce('mysql2:attach', 'could not observe a mysql2 command', err);
    }
  }
  return command;
}

function tracedConnectionCall(original: Method, connection: Mysql2ConnectionInternals, args: IArguments): unknown {
  const sql = args[0];
  if (sql === null || sql === undefined || isSuppressed()) return original.apply(connection, args as unknown as unknown[]);
  const outer = activeOuterClient();
  if (outer !== undefined && outer.component === COMPONENT) {
    const pending = poolCalls.get(outer);
    if (pending !== undefined && !pending.adopted) return adopt(pending, original, connection, args);
  }
  // `query(command)`: a Query made by pool.query, a PoolCluster or `mysql.createQuery`.
  if (isCommand(sql)) {
    const call = startStatement(COMPONENT, connection.config, textOf(sql), sql.values);
    return runTraced(call, original, connection, args, -1, connection, sql);
  }
  const cbIndex = callbackIndex(args);
  const call = startStatement(COMPONENT, connection.config, textOf(sql), valuesOf(sql, args[1]));
  return runTraced(call, original, connection, args, cbIndex, connection);
}

function tracedPoolCall(original: Method, pool: Mysql2PoolInternals, args: IArguments, returnsCommand: boolean): unknown {
  const sql = args[0];
  if (sql === null || sql === undefined || isSuppressed()) return original.apply(pool, args as unknown as unknown[]);
  const cbIndex = callbackIndex(args);
  const call = startStatement(COMPONENT, pool.config?.connectionConfig, textOf(sql), valuesOf(sql, args[1]));
  if (call === undefined) return original.apply(pool, args as unknown as unknown[]);
  const scope = callerScope();
  const outer: OuterClient = { span: call.span, component: COMPONENT, done: false };
  const pending: PoolCall = { call, scope, hasCallback: cbIndex >= 0, adopted: false, attached: false };
  const over = (): void => {
    outer.done = true;
  };
  let list: ArrayLike<unknown> = args;
  try {
    poolCalls.set(outer, pending);
    if (cbIndex >= 0) {
      const copy = Array.prototype.slice.call(args) as unknown[];
      copy[cbIndex] = finishingCallback(call, scope, args[cbIndex] as Callback, over);
      list = copy;
    }
  } catch (err) {
    logOnce('mysql2:callback', 'could not wrap a mysql2 pool callback; the statement goes on untraced', err);
    call.finish(undefined);
    return original.apply(pool, args as unknown as unknown[]);
  }
  let result: unknown;
  try {
    result = runWithOuterClient(outer, () => original.apply(pool, list as unknown[]));
  } catch (err) {
    over();
    call.finish(err);
    throw err;
  }
  // pool.query hands back its Query at once; the connection call that runs it comes later.
  if (returnsCommand && !pending.attached && isCommand(result)) {
    pending.attached = true;
    try {
      attach(call, scope, result, pending.hasCallback, undefined, over);
    } catch (err) {
      logOnce('mysql2:attach', 'could not observe a mysql2 command', err);
    }
  }
  return result;
}

/** Prototypes of `PreparedStatementInfo` patched so far (reached from the first statement a `prepare()` hands back). */
const statementPrototypes = new Set<Mysql2PreparedStatement>();

function patchStatement(statement: unknown): void {
  if (statement === null || typeof statement !== 'object') return;
  const proto = Object.getPrototypeOf(statement) as Mysql2PreparedStatement | null;
  if (proto === null || proto === Object.prototype || statementPrototypes.has(proto) || typeof proto.execute !== 'function') return;
  statementPrototypes.add(proto);
  wrapMethod(proto, 'execute', (original) =>
    function execute(this: Mysql2PreparedStatement) {
      if (isSuppressed()) return original.apply(this, arguments as never);
      // execute(values, cb) or execute(cb)
      const values = typeof arguments[0] === 'function' ? undefined : arguments[0];
      const cbIndex = typeof arguments[0] === 'function' ? 0 : typeof arguments[1] === 'function' ? 1 : -1;
      const connection = this._connection;
      const call = startStatement(COMPONENT, connection?.config, typeof this.query === 'string' ? this.query : undefined, values);
      return runTraced(call, original as Method, this, arguments, cbIndex, connection);
    },
  );
}

function tracedPrepare(original: Method, connection: Mysql2ConnectionInternals, args: IArguments): unknown {
  const cb = args[1];
  if (typeof cb !== 'function') return original.apply(connection, args as unknown as unknown[]);
  let wrapped: Callback;
  try {
    const seen = function (this: unknown, err: unknown, statement: unknown): unknown {
      if (!err) {
        try {
          patchStatement(statement);
        } catch (patchErr) {
          logOnce('mysql2:statement', 'could not patch mysql2 prepared statements', patchErr);
        }
      }
      return (cb as Callback).apply(this, arguments as unknown as unknown[]);
    };
    Object.defineProperty(seen, 'length', { value: cb.length, configurable: true });
    wrapped = bindToCurrentContext(seen);
  } catch (err) {
    logOnce('mysql2:callback', 'could not wrap a mysql2 prepare callback', err);
    return original.apply(connection, args as unknown as unknown[]);
  }
  return original.call(connection, args[0], wrapped);
}

const CONNECTION_METHODS = ['query', 'execute', 'prepare'] as const;
const POOL_METHODS = ['query', 'execute', 'getConnection'] as const;

export const mysql2: Instrumentation<Mysql2Module> = {
  name: 'mysql2',
  module: 'mysql2',
  versions: '>=3 <4',
  patch(exports) {
    const connection = exports.Connection?.prototype;
    for (const name of CONNECTION_METHODS) {
      const owner = ownerOf(connection, name) as Record<string, Method> | undefined;
      if (owner === undefined) continue;
      wrapMethod(owner, name, (original) =>
        name === 'prepare'
          ? function prepare(this: Mysql2ConnectionInternals) {
              return tracedPrepare(original, this, arguments);
            }
          : function (this: Mysql2ConnectionInternals) {
              return tracedConnectionCall(original, this, arguments);
            },
      );
    }
    const pool = exports.Pool?.prototype;
    for (const name of POOL_METHODS) {
      const owner = ownerOf(pool, name) as Record<string, Method> | undefined;
      if (owner === undefined) continue;
      wrapMethod(owner, name, (original) =>
        name === 'getConnection'
          ? // A waiting caller is handed its connection from the releasing caller's context.
            function getConnection(this: unknown, cb?: unknown) {
              if (typeof cb !== 'function') return original.apply(this, arguments as never);
              return original.call(this, bindToCurrentContext(cb as Callback));
            }
          : function (this: Mysql2PoolInternals) {
              return tracedPoolCall(original, this, arguments, name === 'query');
            },
      );
    }
  },
  unpatch(exports) {
    for (const name of CONNECTION_METHODS) {
      const owner = ownerOf(exports.Connection?.prototype, name) as Record<string, Method> | undefined;
      if (owner !== undefined) unwrapMethod(owner, name);
    }
    for (const name of POOL_METHODS) {
      const owner = ownerOf(exports.Pool?.prototype, name) as Record<string, Method> | undefined;
      if (owner !== undefined) unwrapMethod(owner, name);
    }
    for (const proto of statementPrototypes) unwrapMethod(proto, 'execute');
    statementPrototypes.clear();
  },
};
