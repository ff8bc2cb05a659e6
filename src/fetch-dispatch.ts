/**
 * Keeps the caller's async context for requests undici queues.
 *
 * A pool whose connections are all busy queues the request and dispatches it
 * later from the 'drain' of whichever connection frees up
 * (lib/dispatcher/pool-base.js, `kDispatch` and `kOnDrain`):
 * `undici:request:create` is then published in that connection's context,
 * which belongs to another caller. So `dispatch(opts, handler)` of undici's
 * `DispatcherBase` is wrapped: the first time a handler is dispatched
 * (synchronously inside the caller's call) the caller's context is kept; a
 * later dispatch of the same handler (from a queue, a redirect, a retry) runs
 * in it again. Handlers are per request; the map is weak.
 */
import { currentStore, runInStore, type ContextStore } from './context';
import { unwrapMethod, wrapMethod } from './wrap';

type Dispatching = { dispatch: (opts: unknown, handler: unknown) => unknown };

/**
 * Told of the outermost first dispatch of a handler (an Agent dispatches
 * again to its pool, undici 7 with handlers of its own), in the caller's
 * context. May return what is to run when the dispatcher refuses the
 * handler (destroyed, closed): it then calls the handler's `onError` and
 * never creates a request (lib/dispatcher/dispatcher-base.js).
 */
export type OnFirstDispatch = (store: ContextStore | undefined) => ((err: unknown) => void) | undefined;

/**
 * The undici bundled in Node cannot be required; it is loaded on the first
 * use of fetch (loading it ourselves would cost every application tens of
 * milliseconds at startup). Its global dispatcher exists from then on, and
 * its first request is created synchronously inside the first `dispatch`,
 * before any pool can queue: wrapping at the first `request:create` misses
 * nothing. Checked by identity on each request (the global dispatcher can be
 * replaced at run time).
 */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

export class CallerContextKeeper {
  private readonly callerOfHandler = new WeakMap<object, ContextStore | undefined>();
  private readonly wrapped = new Set<object>();
  private depth = 0;
  private lastGlobal: unknown;

  constructor(private readonly onFirstDispatch: OnFirstDispatch) {}

  /** Wraps the `DispatcherBase.prototype` above `dispatcher` (an Agent's prototype, the global dispatcher). */
  keep(dispatcher: unknown): void {
    const proto = dispatcherBaseOf(dispatcher);
    if (proto === undefined || this.wrapped.has(proto)) return;
    const keeper = this;
    const done = wrapMethod(proto as Dispatching, 'dispatch', (original) =>
      function dispatch(this: unknown, opts: unknown, handler: unknown) {
        let callerStore: ContextStore | undefined;
        let other = false;
        if (handler !== null && typeof handler === 'object') {
          if (!keeper.callerOfHandler.has(handler)) {
            const store = currentStore();
            keeper.callerOfHandler.set(handler, store);
            if (keeper.depth === 0) keeper.watch(store, handler);
          } else {
            callerStore = keeper.callerOfHandler.get(handler);
            other = callerStore !== currentStore();
          }
        }
        keeper.depth++;
        try {
          if (other) return runInStore(callerStore, () => original.call(this, opts, handler));
          return original.apply(this, arguments as unknown as [unknown, unknown]);
        } finally {
          keeper.depth--;
        }
      },
    );
    if (done) this.wrapped.add(proto);
  }

  /** `keep` for Node's global dispatcher, when it has changed since last seen. */
  keepGlobal(): void {
    const current = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER];
    if (current === this.lastGlobal) return;
    this.lastGlobal = current;
    this.keep(current);
  }

  /** Unwraps what `keep(dispatcher)` wrapped; every wrapped prototype when none is given. */
  release(dispatcher?: unknown): void {
    const protos = dispatcher === undefined ? [...this.wrapped] : [dispatcherBaseOf(dispatcher)];
    for (const proto of protos) {
      if (proto === undefined) continue;
      unwrapMethod(proto as Dispatching, 'dispatch');
      this.wrapped.delete(proto);
    }
    if (dispatcher === undefined) this.lastGlobal = undefined;
  }

  private watch(store: ContextStore | undefined, handler: object): void {
    const onRefused = this.onFirstDispatch(store);
    if (onRefused === undefined) return;
    // fetch's own handler object, never the application's.
    const h = handler as { onError?: unknown };
    const onError = h.onError;
    if (typeof onError !== 'function') return;
    try {
      h.onError = function (this: unknown, err: unknown) {
        onRefused(err);
        return (onError as (e: unknown) => unknown).apply(this, arguments as unknown as [unknown]);
      };
    } catch {
      // a handler that cannot be changed: a refused request then only shows as the missing one
    }
  }
}

/** undici's `DispatcherBase.prototype` above `obj` (an Agent, a Pool, the global dispatcher). */
function dispatcherBaseOf(obj: unknown): object | undefined {
  for (let p = obj; p !== null && p !== undefined && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    if (Object.prototype.hasOwnProperty.call(p, 'dispatch') && (p as { constructor?: { name?: string } }).constructor?.name === 'DispatcherBase') {
      return p as object;
    }
  }
  return undefined;
}
