/**
 * Client spans for mysql 2.x (mysqljs): `connection.query` in every form
 * (SQL text, options object, values, callback; the `Query` emitter without a
 * callback; `.stream()`), and `pool.query` (one span per statement, from the
 * call to the result, time waiting for a free connection included). Pool
 * clusters run their statements through `connection.query` on a pooled
 * connection, and are traced there.
 *
 * Context: mysql runs a query's callback and events from the socket's data
 * handler, and its pool hands a waiting caller its connection from the
 * releasing caller's `release()` (lib/Pool.js `releaseConnection` calls
 * `getConnection` with the queued callback). The patch runs callbacks and
 * events of a traced query in the caller's context and binds
 * `pool.getConnection` callbacks to theirs. The pool's own `ping` of a free
 * connection before handing it out (lib/Pool.js `acquireConnection`) gets no
 * span.
 *
 * mysql's index.js loads its classes on first use (`loadClass`): the patch
 * loads lib/Connection.js and lib/Pool.js from the package folder of the
 * exports it is given, as mysql itself would.
 */
import * as path from 'path';
import { bindToCurrentContext } from '../context';
import type { Instrumentation } from '../instrumentation';
import type { MysqlConnectionInternals, MysqlPoolInternals } from '../internal-types';
import { tracedConnectionCall, tracedPoolCall, type Callback, type Driver, type Method } from '../mysql-common';
import { unwrapMethod, wrapMethod } from '../wrap';

const driver: Driver = { patch: 'mysql', callbackKey: '_callback' };

interface MysqlClasses {
  Connection?: { prototype: Record<string, Method> };
  Pool?: { prototype: Record<string, Method> };
}

/** Per exports object, the classes found for it. */
const classes = new WeakMap<object, MysqlClasses>();

/** The folder of the module whose exports are `exports` (the copy of mysql they come from). */
function packageDirOf(exports: object): string | undefined {
  for (const file of Object.keys(require.cache)) {
    if (require.cache[file]?.exports === exports) return path.dirname(file);
  }
  return undefined;
}

function classesOf(exports: object): MysqlClasses {
  let found = classes.get(exports);
  if (found !== undefined) return found;
  const dir = packageDirOf(exports);
  found = {};
  if (dir !== undefined) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    found.Connection = require(path.join(dir, 'lib', 'Connection.js')) as MysqlClasses['Connection'];
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    found.Pool = require(path.join(dir, 'lib', 'Pool.js')) as MysqlClasses['Pool'];
  }
  classes.set(exports, found);
  return found;
}

/** Callbacks already bound to their caller's context: a queued one that mysql hands to `getConnection` again keeps its binding. */
const bound = new WeakSet<Callback>();

export const mysql: Instrumentation<object> = {
  name: 'mysql',
  module: 'mysql',
  versions: '>=2 <3',
  patch(exports) {
    const { Connection, Pool } = classesOf(exports);
    if (Connection !== undefined) {
      wrapMethod(Connection.prototype, 'query', (original) =>
        function query(this: MysqlConnectionInternals) {
          return tracedConnectionCall(driver, original, this, arguments);
        },
      );
    }
    if (Pool !== undefined) {
      wrapMethod(Pool.prototype, 'query', (original) =>
        function query(this: MysqlPoolInternals) {
          return tracedPoolCall(driver, original, this, arguments, true, false);
        },
      );
      wrapMethod(Pool.prototype, 'getConnection', (original) =>
        function getConnection(this: unknown, cb?: unknown) {
          if (typeof cb !== 'function' || bound.has(cb as Callback)) return original.apply(this, arguments as never);
          const inContext = bindToCurrentContext(cb as Callback);
          bound.add(inContext);
          return original.call(this, inContext);
        },
      );
    }
  },
  unpatch(exports) {
    const { Connection, Pool } = classesOf(exports);
    if (Connection !== undefined) unwrapMethod(Connection.prototype, 'query');
    if (Pool !== undefined) {
      unwrapMethod(Pool.prototype, 'query');
      unwrapMethod(Pool.prototype, 'getConnection');
    }
  },
};
