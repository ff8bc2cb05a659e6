/**
 * Client spans for fetch: Node's global `fetch` (the undici bundled in Node)
 * and the `undici` package (its `fetch`, `request`, `stream`, ...), through
 * the events undici publishes on `diagnostics_channel`
 * (lib/core/request.js, lib/core/diagnostics.js):
 *
 * - `undici:request:create`: the request exists and nothing is sent yet. It
 *   is published synchronously inside the caller's `fetch()` chain, so the
 *   current span is the caller's: start the span, add the trace headers with
 *   `request.addHeader`.
 * - `undici:request:headers`: the status.
 * - `undici:request:trailers`: the body has been received: finish.
 * - `undici:request:error`: the request failed or was aborted: finish.
 *
 * Both undici copies publish on the same channel names, and each request is
 * published by the copy that runs it, so one subscription traces both and
 * neither twice. Hence the module this instrumentation hooks is the builtin
 * `diagnostics_channel`: `patch` subscribes, `unpatch` unsubscribes; nothing
 * of undici is wrapped, and a copy of undici loaded later needs nothing more.
 *
 * Each undici request is one span: when fetch follows a redirect, each hop
 * is its own request, so its own span (status 3xx, then the final one), each
 * carrying its own trace headers. Inside an axios call (its `fetch` adapter)
 * the axios span is the span of the call: no span here, its context on every hop.
 */
import type * as diagnosticsChannel from 'diagnostics_channel';
import { Span as NoopSpan } from 'opentracing';
import type { Span } from 'opentracing';
import { TAG } from '../constants';
import { activeOuterClient, bindToCurrentContext, currentStore, isSuppressed, runInStore, type ContextStore } from '../context';
import type { UndiciRequest, UndiciResponseHead } from '../internal-types';
import { logOnce, safeCall } from '../logger';
import { optionsOf, type FetchRequestLike, type FetchResponseLike } from '../options';
import type { Instrumentation } from '../patcher';
import { redactParsedUrl, redactUrl } from '../redact';
import { unwrapMethod, wrapMethod } from '../wrap';
import {
  addUrlPeerTags,
  clientTags,
  finishSpan,
  injectHttpHeaders,
  isErrorStatusBy,
  isRecording,
  setTag,
  setTags,
  startClientSpan,
  tagError,
  tagErrorMessage,
} from '../span';

const COMPONENT = 'fetch';

type DiagnosticsChannel = Pick<typeof diagnosticsChannel, 'subscribe' | 'unsubscribe'>;

type RunInCaller = (fn: () => void) => void;

interface Traced {
  readonly span: Span;
  /** Runs a function in the caller's async context (only made when a response hook is set). */
  readonly runInCaller: RunInCaller | undefined;
  readonly url: string;
  responded: boolean;
  finished: boolean;
}

/** Request → its span. Weak: a request we never hear of again is collected with it. */
const traced = new WeakMap<object, Traced>();

function urlOf(request: UndiciRequest): string {
  const path = String(request.path);
  // Through an HTTP proxy the path is the whole target URL.
  if (path.startsWith('http://') || path.startsWith('https://')) return path;
  return `${String(request.origin)}${path}`;
}

function parsedUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/**
 * Sets a trace header on the request. A header of the same name that the
 * application set itself is replaced, as `setHeader` does in the http patch,
 * so the receiver never gets two (undici 6 and 7 keep `headers` as a flat
 * `[name, value, ...]` array; elsewhere the header is only added).
 */
function setRequestHeader(request: UndiciRequest, name: string, value: string): void {
  const headers = request.headers;
  if (Array.isArray(headers)) {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      const existing: unknown = headers[i];
      if (typeof existing === 'string' && existing.toLowerCase() === name) headers.splice(i, 2);
    }
  }
  request.addHeader(name, value);
}

function inject(span: Span, request: UndiciRequest, url: URL | undefined): void {
  injectHttpHeaders(span, url?.hostname, (name, value) => setRequestHeader(request, name.toLowerCase(), value));
}

function runFn(fn: () => void): void {
  fn();
}

/**
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
const callerOfHandler = new WeakMap<object, ContextStore | undefined>();
const wrappedDispatchers = new Set<object>();
type Dispatching = { dispatch: (opts: unknown, handler: unknown) => unknown };

function keepCallerContext(proto: object): void {
  if (wrappedDispatchers.has(proto)) return;
  const wrapped = wrapMethod(proto as Dispatching, 'dispatch', (original) =>
    function dispatch(this: unknown, opts: unknown, handler: unknown) {
      if (handler !== null && typeof handler === 'object') {
        if (!callerOfHandler.has(handler)) {
          callerOfHandler.set(handler, currentStore());
        } else {
          const store = callerOfHandler.get(handler);
          if (store !== currentStore()) return runInStore(store, () => original.call(this, opts, handler));
        }
      }
      return original.apply(this, arguments as unknown as [unknown, unknown]);
    },
  );
  if (wrapped) wrappedDispatchers.add(proto);
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
let lastGlobalDispatcher: unknown;

function keepCallerContextOfGlobalDispatcher(): void {
  const current = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER];
  if (current === lastGlobalDispatcher) return;
  lastGlobalDispatcher = current;
  const proto = dispatcherBaseOf(current);
  if (proto !== undefined) keepCallerContext(proto);
}

function onCreate(message: unknown): void {
  // A subscriber that throws would surface as an uncaught exception: never.
  try {
    keepCallerContextOfGlobalDispatcher();
    if (isSuppressed()) return;
    const request = (message as { request?: UndiciRequest } | null)?.request;
    if (request === undefined || request === null || typeof request.addHeader !== 'function') return;
    // The tunnel a ProxyAgent opens is not the application's request, and the proxy is no destination for trace context.
    if (request.method === 'CONNECT') return;
    const url = urlOf(request);
    const parsed = parsedUrl(url);
    const outer = activeOuterClient();
    if (outer !== undefined) {
      inject(outer.span, request, parsed);
      return;
    }
    const method = String(request.method).toUpperCase();
    const span = startClientSpan(COMPONENT, method);
    if (span === undefined) return;
    const options = optionsOf(COMPONENT);
    // Nothing will be recorded on this span (a no-op tracer, or an unsampled
    // trace whose sampling is final) and no hook will see it: propagate its
    // context and finish it now; the response is not followed.
    if (!isRecording(span) && !options.requestHook && !options.responseHook) {
      if (span.constructor !== NoopSpan) inject(span, request, parsed);
      finishSpan(span);
      return;
    }
    // undici publishes the response from the socket's context, not the caller's: the hook gets the caller's back.
    const runInCaller = typeof options.responseHook === 'function' ? bindToCurrentContext(runFn) : undefined;
    traced.set(request, { span, runInCaller, url, responded: false, finished: false });
    if (isRecording(span)) {
      const tags = clientTags(COMPONENT);
      tags[TAG.HTTP_METHOD] = method;
      tags[TAG.HTTP_URL] = parsed !== undefined ? redactParsedUrl(parsed) : redactUrl(url);
      if (parsed !== undefined) addUrlPeerTags(tags, parsed);
      setTags(span, tags);
    }
    safeCall('fetch requestHook', options.requestHook, span, request as FetchRequestLike);
    inject(span, request, parsed);
  } catch (err) {
    logOnce('fetch:create', 'could not instrument a fetch/undici request', err);
  }
}

function headerObject(raw: UndiciResponseHead['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(raw)) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = String(raw[i]).toLowerCase();
    const value = raw[i + 1];
    const text = Array.isArray(value) ? value.map(String).join(', ') : String(value);
    out[name] = name in out ? `${out[name]}, ${text}` : text;
  }
  return out;
}

function onHeaders(message: unknown): void {
  try {
    const { request, response } = message as { request: object; response: UndiciResponseHead };
    const state = traced.get(request);
    if (state === undefined || state.finished || state.responded) return;
    state.responded = true;
    const status = response.statusCode;
    const options = optionsOf(COMPONENT);
    setTag(state.span, TAG.HTTP_STATUS_CODE, status);
    if (isErrorStatusBy(COMPONENT, options.isErrorStatus, status)) {
      tagErrorMessage(state.span, 'http_status', `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}`);
    }
    const hook = options.responseHook;
    if (typeof hook === 'function') {
      const info: FetchResponseLike = {
        status,
        statusText: response.statusText ?? '',
        headers: headerObject(response.headers),
        url: state.url,
      };
      const call = (): void => safeCall('fetch responseHook', hook, info, state.span);
      if (state.runInCaller !== undefined) state.runInCaller(call);
      else call();
    }
  } catch (err) {
    logOnce('fetch:headers', 'could not record a fetch response', err);
  }
}

function finish(request: object, err?: unknown): void {
  const state = traced.get(request);
  if (state === undefined || state.finished) return;
  state.finished = true;
  traced.delete(request);
  finishSpan(state.span, err);
}

function onTrailers(message: unknown): void {
  try {
    finish((message as { request: object }).request);
  } catch (err) {
    logOnce('fetch:trailers', 'could not finish a fetch span', err);
  }
}

/** The application stopped reading a response it had (`res.body.cancel()`, an abort after the headers). */
function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e !== null && typeof e === 'object' && (e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED');
}

function onError(message: unknown): void {
  try {
    const { request, error } = message as { request: object; error: unknown };
    const state = traced.get(request);
    if (state === undefined || state.finished) return;
    // Before a response, any failure (abort included) is the call's failure.
    // After one, an abort is the application being done with the body.
    if (state.responded && isAbort(error)) {
      finish(request);
    } else {
      tagError(state.span, error);
      finish(request);
    }
  } catch (err) {
    logOnce('fetch:error', 'could not finish a failed fetch span', err);
  }
}

const SUBSCRIPTIONS: ReadonlyArray<readonly [string, (message: unknown) => void]> = [
  ['undici:request:create', onCreate],
  ['undici:request:headers', onHeaders],
  ['undici:request:trailers', onTrailers],
  ['undici:request:error', onError],
];

let subscribed = false;

export const fetchClient: Instrumentation<DiagnosticsChannel> = {
  name: COMPONENT,
  module: 'diagnostics_channel',
  patch(dc) {
    // There is one diagnostics_channel per process; subscribing twice would trace every request twice.
    if (subscribed) return;
    subscribed = true;
    for (const [channel, handler] of SUBSCRIPTIONS) dc.subscribe(channel, handler);
    keepCallerContextOfGlobalDispatcher();
  },
  unpatch(dc) {
    // Also after a partial patch: unsubscribing what is not subscribed is a no-op.
    for (const [channel, handler] of SUBSCRIPTIONS) dc.unsubscribe(channel, handler);
    subscribed = false;
    for (const proto of wrappedDispatchers) unwrapMethod(proto as Dispatching, 'dispatch');
    wrappedDispatchers.clear();
    lastGlobalDispatcher = undefined;
  },
};

/** The `undici` package: its dispatchers keep the caller's context for queued requests (see `keepCallerContext`). */
export const undiciDispatchers: Instrumentation<{ Agent?: { prototype?: object } }> = {
  name: COMPONENT,
  module: 'undici',
  patch(undici) {
    const proto = dispatcherBaseOf(undici.Agent?.prototype);
    if (proto !== undefined) keepCallerContext(proto);
  },
  unpatch(undici) {
    const proto = dispatcherBaseOf(undici.Agent?.prototype);
    if (proto === undefined) return;
    unwrapMethod(proto as Dispatching, 'dispatch');
    wrappedDispatchers.delete(proto);
  },
};
