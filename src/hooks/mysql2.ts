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
import { errorMonitor } from 'events';
import type { Call } from '../call';
import { bindToCurrentContext, isSuppressed } from '../context';
import type { Instrumentation } from '../instrumentation';
import type { Mysql2ConnectionInternals, Mysql2Module, Mysql2PoolInternals, Mysql2PreparedStatement } from '../internal-types';
import { logOnce } from '../logger';
import { ownerOf, poolConnectionCallback, runTraced, startStatement, tracedConnectionCall, tracedPoolCall, type Callback, type Driver, type Method } from '../mysql-common';
import { unwrapMethod, wrapMethod } from '../wrap';

const COMPONENT = 'mysql2';

/**
 * Calls in the emitter form, per connection. When a connection dies, mysql2
 * ends the commands that have a callback with the error and gives the others
 * no event at all (base/connection.js `_notifyError`; `_addCommandClosedState`
 * for a command added once closed): it emits the error on the connection,
 * where these calls are ended with it.
 */
const emitterCalls = new WeakMap<object, Set<Call>>();

const driver: Driver = {
  patch: COMPONENT,
  callbackKey: 'onResult',
  watch(connection, call) {
    const c = connection as Mysql2ConnectionInternals | undefined;
    if (c === undefined || c === null || typeof c.on !== 'function') return;
    let calls = emitterCalls.get(c);
    if (calls === undefined) {
      const open = (calls = new Set());
      emitterCalls.set(c, open);
      c.on(errorMonitor, (err: unknown) => {
        for (const pending of open) pending.finish(err);
        open.clear();
      });
    }
    calls.add(call);
  },
  unwatch(connection, call) {
    if (connection !== null && typeof connection === 'object') emitterCalls.get(connection)?.delete(call);
  },
};

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
      return runTraced(driver, call, original as Method, this, arguments, cbIndex, connection);
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
      const owner = ownerOf(connection, name);
      if (owner === undefined) continue;
      wrapMethod(owner, name, (original) =>
        name === 'prepare'
          ? function prepare(this: Mysql2ConnectionInternals) {
              return tracedPrepare(original, this, arguments);
            }
          : function (this: Mysql2ConnectionInternals) {
              return tracedConnectionCall(driver, original, this, arguments);
            },
      );
    }
    const pool = exports.Pool?.prototype;
    for (const name of POOL_METHODS) {
      const owner = ownerOf(pool, name);
      if (owner === undefined) continue;
      wrapMethod(owner, name, (original) =>
        name === 'getConnection'
          ? // A waiting caller is handed its connection from the releasing caller's context.
            function getConnection(this: unknown, cb?: unknown) {
              if (typeof cb !== 'function') return original.apply(this, arguments as never);
              // The pool's own call for a traced pool.query/execute: handed over, no context to carry.
              const handing = poolConnectionCallback(cb as Callback);
              return original.call(this, handing ?? bindToCurrentContext(cb as Callback));
            }
          : function (this: Mysql2PoolInternals) {
              return tracedPoolCall(driver, original, this, arguments, name === 'query', true);
            },
      );
    }
  },
  unpatch(exports) {
    for (const name of CONNECTION_METHODS) {
      const owner = ownerOf(exports.Connection?.prototype, name);
      if (owner !== undefined) unwrapMethod(owner, name);
    }
    for (const name of POOL_METHODS) {
      const owner = ownerOf(exports.Pool?.prototype, name);
      if (owner !== undefined) unwrapMethod(owner, name);
    }
    for (const proto of statementPrototypes) unwrapMethod(proto, 'execute');
    statementPrototypes.clear();
  },
};
