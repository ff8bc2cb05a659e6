/**
 * The settle point of a promise a library builds with the global `Promise`
 * and hands to the application, for libraries that keep no promise class of
 * their own to hook (node-redis' commands queue, amqplib's promise API; pg
 * has one: see its PromiseSeam in src/hooks/pg.ts).
 *
 * For the synchronous part of one library call only, the global is a Proxy
 * of `Promise` whose first construction builds the very same native promise,
 * its executor handed a `resolve` and a `reject` that report the outcome and
 * then settle it. Nothing is attached to the promise the application gets:
 * a rejection it ignores is still reported unhandled, for that promise, and
 * its continuations run when they would (the report and the settle happen in
 * the same synchronous step). Only library code runs in that stretch; every
 * other construction goes to `Promise` itself, and the global is put back
 * before the call returns.
 */
import { logOnce } from './logger';

export interface SettleObserver {
  resolved?(value: unknown): void;
  rejected?(reason: unknown): void;
}

/**
 * Runs `run` with the seam in place. `seen`: the promise was built through
 * the seam (its settlement will be reported); false when `run` built none,
 * or the global could not be replaced (then `run` ran as it is).
 */
export function withPromiseSeam<T>(site: string, run: () => T, observer: SettleObserver): { result: T; seen: boolean } {
  const global = globalThis as { Promise: PromiseConstructor };
  const Original = global.Promise;
  let seen = false;
  const report = (fn: ((v: unknown) => void) | undefined, v: unknown): void => {
    if (fn === undefined) return;
    try {
      fn.call(observer, v);
    } catch (err) {
      logOnce(`promise-seam:${site}`, `could not follow a promise of ${site}`, err);
    }
  };
  const seam: PromiseConstructor = new Proxy(Original, {
    construct(target, args: unknown[], newTarget) {
      const executor = args[0];
      if (seen || newTarget !== seam || typeof executor !== 'function') {
        return Reflect.construct(target, args, newTarget === seam ? target : newTarget) as object;
      }
      seen = true;
      const executorOf = executor as (res: (value: unknown) => void, rej: (reason: unknown) => void) => unknown;
      return Reflect.construct(
        target,
        [
          function (this: unknown, resolve: (value: unknown) => void, reject: (reason: unknown) => void) {
            return executorOf.call(
              this,
              (value: unknown) => {
                report(observer.resolved, value);
                resolve(value);
              },
              (reason: unknown) => {
                report(observer.rejected, reason);
                reject(reason);
              },
            );
          },
        ],
        target,
      ) as object;
    },
  });
  try {
    global.Promise = seam;
  } catch {
    return { result: run(), seen: false };
  }
  try {
    const result = run();
    return { result, seen };
  } finally {
    if (global.Promise === seam) global.Promise = Original;
  }
}
