/**
 * The current span, carried across callbacks, promises, timers and event
 * emitters by AsyncLocalStorage.
 *
 * The store also carries two flags the patches need and the application never
 * sees: `suppressed` (nothing inside is traced: the tracer's own reporting) and
 * `outer` (a higher-level client span, e.g. axios, that the http or fetch
 * patch underneath must not duplicate but must propagate on every hop).
 */
import { AsyncLocalStorage, AsyncResource } from 'async_hooks';
import type { Span } from 'opentracing';
import { logOnce } from './logger';

/** A client span owned by a higher layer; lower layers propagate it instead of starting their own. */
export interface OuterClient {
  readonly span: Span;
  readonly component: string;
  /** Set when the outer call has completed: later calls in the same async chain are their own calls. */
  done: boolean;
  /** Requests the lower layer has made for the call so far (a redirect followed makes another). */
  hops?: number;
  /** Status of the latest of them, once its response has arrived. */
  lastStatus?: number;
}

export interface ContextStore {
  readonly span: Span | null | undefined;
  readonly suppressed: boolean;
  readonly outer?: OuterClient;
  /**
   * A call of a patch whose lower requests belong together (fetch: every
   * redirect hop of one `fetch()` call). Opaque here; the patch that set it
   * reads it back.
   */
  readonly call?: object;
}

const storage = new AsyncLocalStorage<ContextStore>();

type SpanGetter = () => Span | null | undefined;
let customGetter: SpanGetter | null = null;

/**
 * The span current at this point of the program: the custom getter's answer
 * when one is set (consulted on every call), else the span of the innermost
 * `spanInContext`.
 */
export function getCurrentSpan(): Span | undefined {
  return customGetter !== null ? fromGetter(customGetter) : (storage.getStore()?.span ?? undefined);
}

/**
 * Internal: `getCurrentSpan()` for a caller that has read the store already
 * (`currentStore()`), so that a traced call reads AsyncLocalStorage once:
 * the custom getter, when set, is still consulted now.
 */
export function currentSpanIn(store: ContextStore | undefined): Span | undefined {
  return customGetter !== null ? fromGetter(customGetter) : (store?.span ?? undefined);
}

function fromGetter(getter: SpanGetter): Span | undefined {
  try {
    return getter() ?? undefined;
  } catch (err) {
    logOnce('getter', 'the current-span getter threw; treating as no current span', err);
    return undefined;
  }
}

/**
 * Replaces how the current span is found (e.g. by a framework's own request
 * context). `null` restores the default (the span set by `spanInContext`).
 */
export function setCurrentSpanFunc(fn: SpanGetter | null): void {
  if (fn !== null && typeof fn !== 'function') {
    throw new TypeError('setCurrentSpanFunc expects a function or null');
  }
  customGetter = fn;
}

/** Runs `fn` with `span` as the current span, for `fn` and all the async work it starts. */
export function spanInContext<T>(span: Span | null | undefined, fn: () => T): T {
  const parent = storage.getStore();
  return storage.run({ span, suppressed: parent?.suppressed ?? false }, fn);
}

/**
 * Runs `fn` with instrumentation switched off for it and all the async work
 * it starts: no spans, no injected headers.
 */
export function suppressInstrumentation<T>(fn: () => T): T {
  const parent = storage.getStore();
  if (parent?.suppressed) return fn();
  return storage.run({ span: parent?.span, suppressed: true }, fn);
}

/** Internal: the raw store, for the patches' fast checks. */
export function currentStore(): ContextStore | undefined {
  return storage.getStore();
}

/** Internal: true when the current async chain must not be traced. */
export function isSuppressed(): boolean {
  return storage.getStore()?.suppressed === true;
}

/**
 * Internal: runs `fn` (a library call) so that lower patches see `outer` as
 * the client span of the call in progress. The current span the application
 * sees inside is unchanged.
 */
export function runWithOuterClient<T>(outer: OuterClient, fn: () => T): T {
  const parent = storage.getStore();
  return storage.run({ span: parent?.span, suppressed: parent?.suppressed ?? false, outer }, fn);
}

/**
 * Internal: runs `fn` (a library call) with `call` as its grouping call:
 * the requests it makes, wherever the library makes them from inside the
 * call, find `call` with `activeCall()`. The current span is unchanged.
 */
export function runInCall<T>(call: object, fn: () => T): T {
  const parent = storage.getStore();
  return storage.run({ span: parent?.span, suppressed: parent?.suppressed ?? false, outer: parent?.outer, call }, fn);
}

/** Internal: the grouping call in progress (see `runInCall`), if any. */
export function activeCall(): object | undefined {
  return storage.getStore()?.call;
}

/** Internal: the outer client span in progress, if any. */
export function activeOuterClient(): OuterClient | undefined {
  const outer = storage.getStore()?.outer;
  return outer !== undefined && !outer.done ? outer : undefined;
}

/**
 * Internal: binds `fn` to the current async context, so that a callback queued
 * inside a library (a pool waiting for a free client) runs in the caller's
 * context, not in the context of whoever happened to dequeue it.
 */
export function bindToCurrentContext<F extends (...args: never[]) => unknown>(fn: F): F {
  // What AsyncLocalStorage.bind does (the whole async context, every
  // AsyncLocalStorage of the process, and the bound function keeps its
  // length), without its cost: on Node 20 each AsyncResource#bind makes two
  // deprecation wrappers for the `asyncResource` accessor of the bound
  // function (lib/async_hooks.js, DEP0172), about 18 us per bind against 1 us here.
  const resource = new AsyncResource(fn.name || 'bound-anonymous-fn');
  const bound = function (this: unknown, ...args: unknown[]): unknown {
    return resource.runInAsyncScope(fn as unknown as (...a: unknown[]) => unknown, this, ...args);
  };
  Object.defineProperty(bound, 'length', { value: fn.length, configurable: true });
  return bound as unknown as F;
}

/**
 * Internal: runs `fn` in a context captured earlier with `currentStore()`
 * (`undefined`: outside any), for work a library queued and runs later from
 * someone else's context.
 */
export function runInStore<T>(store: ContextStore | undefined, fn: () => T): T {
  return store === undefined ? storage.exit(fn) : storage.run(store, fn);
}
