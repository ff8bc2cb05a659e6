/**
 * The promise form of pg and pg-pool without a promise of our own.
 *
 * pg's `query()` builds the promise it returns with the promise class kept on
 * the client (`client._Promise`) or the pool (`pool.Promise`) and settles it
 * only through the `resolve`/`reject` it hands that class's executor (see
 * PgClientPrototype._Promise and PgPoolInternals.Promise in
 * src/internal-types.ts). For the synchronous run of the original `query()`,
 * and only until pg first uses it, that class is replaced by a seam class
 * that builds the same promise with the original class, handing pg's
 * executor a `resolve`/`reject` that end the call first. So the application
 * gets pg's very own promise, settled in the same microtask turn, with
 * nothing attached to it (an unhandled rejection stays unhandled).
 *
 * Why not src/promise-seam.ts: that seam replaces the global `Promise`, for
 * libraries that keep no class of their own; pg does keep one, per client or
 * pool (an application's `Promise` option included), and replacing it there
 * touches nothing global. pg also wants its failure reported one microtask
 * later: pg's `.catch` gives the error the stack that leads back to the
 * application (`Error.captureStackTrace` in pg's query() and pg-pool's
 * promisify), and that is the stack the span must log; still before any
 * reaction of the application, which pg's `.catch` puts one turn further.
 */
import type { PgPromiseClass, PgPromiseExecutor } from './internal-types';
import { logOnce } from './logger';

/** Ends `target` with the query's outcome; must not throw. */
export type Settle<T> = (target: T, err: unknown, value?: unknown) => void;

type Holder = Record<string, unknown>;

interface Seam {
  holder: Holder;
  key: string;
  original: PgPromiseClass;
  installed: PgPromiseClass;
  /** The class was the holder's own property (pg and pg-pool set it in their constructors), not inherited. */
  own: boolean;
  settle: Settle<unknown>;
  target: unknown;
  /** pg built its promise through the seam. */
  used: boolean;
  restored: boolean;
}

/** The seam of the `query()` running now; one at a time (a nested traced query falls back to `settleWith`). */
let armed: Seam | undefined;

/** One seam class per promise class (in practice: the global Promise), made once. */
const seamClasses = new WeakMap<PgPromiseClass, PgPromiseClass>();

function settleSafely(seam: Seam, err: unknown, value?: unknown): void {
  try {
    seam.settle(seam.target, err, value);
  } catch (settleErr) {
    logOnce('pg:finish', 'could not finish a pg span', settleErr);
  }
}

/** Puts the holder's promise class back, once, unless someone else has replaced it meanwhile. */
function restore(seam: Seam): void {
  if (seam.restored) return;
  seam.restored = true;
  if (armed === seam) armed = undefined;
  try {
    if (seam.holder[seam.key] !== seam.installed) return;
    if (seam.own) seam.holder[seam.key] = seam.original;
    else delete seam.holder[seam.key];
  } catch (err) {
    logOnce('pg:promise', 'could not put back the promise class of a pg client or pool', err);
  }
}

function seamClassOf(Original: PgPromiseClass): PgPromiseClass {
  let SeamClass = seamClasses.get(Original);
  if (SeamClass !== undefined) return SeamClass;
  SeamClass = function (this: unknown, executor: unknown): unknown {
    const seam = armed;
    if (seam !== undefined) restore(seam);
    if (new.target === undefined) return Reflect.apply(Original, this, arguments);
    if (seam === undefined || seam.original !== Original || typeof executor !== 'function') return Reflect.construct(Original, arguments);
    seam.used = true;
    return new Original(function (resolve, reject) {
      return (executor as PgPromiseExecutor)(
        function (value) {
          settleSafely(seam, undefined, value);
          return resolve(value);
        },
        function (reason) {
          reject(reason);
          // Queued after pg's `.catch` reaction, which the rejection has just queued.
          queueMicrotask(() => settleSafely(seam, reason));
        },
      );
    });
  } as unknown as PgPromiseClass;
  // Statics (`resolve`, `reject`, ...) read through to the original class.
  Object.setPrototypeOf(SeamClass, Original);
  seamClasses.set(Original, SeamClass);
  return SeamClass;
}

function arm(holder: Holder, key: string, settle: Settle<unknown>, target: unknown): Seam | undefined {
  if (armed !== undefined) return undefined;
  const original = holder[key] as PgPromiseClass;
  if (typeof original !== 'function') return undefined;
  const installed = seamClassOf(original);
  const seam: Seam = { holder, key, original, installed, own: Object.prototype.hasOwnProperty.call(holder, key), settle, target, used: false, restored: false };
  holder[key] = installed; // throws for a frozen holder or a read-only class: the caller falls back
  armed = seam;
  return seam;
}

/**
 * pg's promise continued so that `target` ends with it: the fallback when the
 * seam could not be used (a frozen client, a subclass whose `query()` makes a
 * promise of its own), and the promise form of a traced `connect()`. Same
 * value, same rejection (an unhandled rejection stays unhandled), but a
 * different promise object, settled one microtask later.
 */
export function settleWith<T>(result: unknown, settle: Settle<T>, target: T): unknown {
  const thenable = result as PromiseLike<unknown> | null | undefined;
  if (thenable === null || thenable === undefined || typeof thenable.then !== 'function') {
    settle(target, undefined);
    return result;
  }
  return thenable.then(
    (value) => {
      settle(target, undefined, value);
      return value;
    },
    (err: unknown) => {
      settle(target, err);
      throw err;
    },
  );
}

/**
 * `original.apply(self, args)`, a promise form `query()`, through the seam on
 * `holder[key]`; `settle(target, err, value)` runs when pg settles its promise.
 */
export function callThroughSeam<T>(holder: object, key: string, settle: Settle<T>, target: T, original: Function, self: unknown, args: ArrayLike<unknown>): unknown {
  let seam: Seam | undefined;
  try {
    seam = arm(holder as Holder, key, settle as Settle<unknown>, target);
  } catch (err) {
    logOnce('pg:promise', 'could not follow the promise of a pg query; it is continued instead', err);
  }
  let result: unknown;
  try {
    result = original.apply(self, args);
  } catch (err) {
    settle(target, err);
    throw err;
  } finally {
    if (seam !== undefined) restore(seam);
  }
  return seam?.used ? result : settleWith(result, settle, target);
}
