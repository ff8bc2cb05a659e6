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
 * `diagnostics_channel`: `patch` subscribes, `unpatch` unsubscribes, and a
 * copy of undici loaded later needs nothing more.
 *
 * One `fetch()` call is one span, redirects included. undici makes each hop
 * of a redirect its own request (lib/web/fetch/index.js, httpRedirectFetch
 * runs main fetch again), so the channels alone would give a span per hop.
 * `globalThis.fetch` and the package's `fetch` are therefore wrapped, only to
 * run the call inside a `FetchCall` (AsyncLocalStorage, `runInCall`): every
 * request undici creates inside that call is a hop of it. The span starts at
 * the first hop (a call rejected before anything is sent gets none) with the
 * parent current when `fetch()` was called, each hop carries its context,
 * and it ends with the hop that answers the call. The wrapper returns
 * fetch's own promise, untouched: its settlement is never observed (a
 * reaction would mark a rejection handled or delay it). Other undici APIs
 * (`request`, `stream`) stay one span per request. Inside an axios call (its
 * `fetch` adapter) the axios span is the call's: no span here, its context on
 * every hop.
 */
import type * as diagnosticsChannel from 'diagnostics_channel';
import { Span as NoopSpan } from 'opentracing';
import type { Span } from 'opentracing';
import { isProxy } from 'util/types';
import { REDIRECT, TAG } from '../constants';
import {
  activeCall,
  activeOuterClient,
  bindToCurrentContext,
  currentStore,
  getCurrentSpan,
  isSuppressed,
  runInCall,
  runInStore,
  type ContextStore,
  type OuterClient,
} from '../context';
import type { UndiciRequest, UndiciResponseHead } from '../internal-types';
import { logOnce, safeCall } from '../logger';
import { optionsOf, type FetchRequestLike, type FetchResponseLike } from '../options';
import type { Instrumentation } from '../instrumentation';
import { redactParsedUrl, redactUrl } from '../redact';
import { unwrapMethod, wrapMethod } from '../wrap';
import {
  addUrlPeerTags,
  clientTags,
  finishSpan,
  injectHttpHeaders,
  isErrorStatusBy,
  isRecording,
  logRedirect,
  outerHopRedirect,
  setTag,
  setTags,
  startClientSpan,
  startClientSpanWithParent,
  tagError,
  tagErrorMessage,
  type TagMap,
} from '../span';

const COMPONENT = 'fetch';

type DiagnosticsChannel = Pick<typeof diagnosticsChannel, 'subscribe' | 'unsubscribe'>;

type RunInCaller = (fn: () => void) => void;

/** A request undici runs on its own (not a hop of a traced `fetch()` call): its span. */
interface Traced {
  readonly span: Span;
  /** Runs a function in the caller's async context (only made when a response hook is set). */
  runInCaller: RunInCaller | undefined;
  readonly url: string;
  responded: boolean;
  finished: boolean;
}

/** Request → its span. Weak: a request we never hear of again is collected with it. */
const traced = new WeakMap<object, Traced>();

/** `redirect` of a fetch call; `unknown` when it could not be read without the application noticing. */
type RedirectMode = 'follow' | 'error' | 'manual' | 'unknown';

/** One `fetch()` call, from its first hop to the hop that answers it. */
interface FetchCall {
  readonly parent: Span | undefined;
  readonly redirectMode: RedirectMode;
  /** Started at the first hop; undefined before it, or when the call is not traced. */
  span: Span | undefined;
  /** The span is finished (or there is none): later hops only get trace context, if any. */
  done: boolean;
  /** Requests created for the call so far. */
  hops: number;
  /** Hops dispatched but not created yet (a full pool queues them before creating the request). */
  pending: number;
  /** The latest hop's request. */
  current: object | undefined;
  /** Its URL (the URL the response hook sees). */
  url: string;
  /** The latest hop's response headers have arrived. */
  responded: boolean;
  /** The latest hop answered with a redirect fetch is expected to follow: its response head. */
  redirect: { response: UndiciResponseHead; location: string } | undefined;
  runInCaller: RunInCaller | undefined;
}

/** A hop's request → its call. */
const hopCall = new WeakMap<object, FetchCall>();

/** A request made for an outer client's call (axios' fetch adapter) → that call. */
const outerOfHop = new WeakMap<object, OuterClient>();

function urlOf(request: UndiciRequest): string {
  const path = String(request.path);
  // Through an HTTP proxy the path is the whole target URL.
  if (path.startsWith('http://') || path.startsWith('https://')) return path;
  return `${String(request.origin)}${path}`;
}

/** `url` for a tag or log, secrets redacted (parsed once already when it parses). */
function redactedUrl(url: string, parsed: URL | undefined): string {
  return parsed !== undefined ? redactParsedUrl(parsed) : redactUrl(url);
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

/** Trace context for a request whose span records nothing: a no-op span has none to give. */
function injectUnrecorded(span: Span, request: UndiciRequest, url: URL | undefined): void {
  if (span.constructor !== NoopSpan) inject(span, request, url);
}

function runFn(fn: () => void): void {
  fn();
}

function isFetchCall(value: unknown): value is FetchCall {
  return value !== undefined && (value as Partial<FetchCall>).redirectMode !== undefined;
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
 *
 * The first dispatch of a hop of a traced `fetch()` call (the outermost one:
 * an Agent dispatches again to its pool, undici 7 with handlers of its own)
 * is counted as pending until its request is created, so that a hop waiting
 * in a pool queue is not taken for a redirect fetch gave up on.
 */
const callerOfHandler = new WeakMap<object, ContextStore | undefined>();
const wrappedDispatchers = new Set<object>();
type Dispatching = { dispatch: (opts: unknown, handler: unknown) => unknown };
let dispatchDepth = 0;

function keepCallerContext(proto: object): void {
  if (wrappedDispatchers.has(proto)) return;
  const wrapped = wrapMethod(proto as Dispatching, 'dispatch', (original) =>
    function dispatch(this: unknown, opts: unknown, handler: unknown) {
      let callerStore: ContextStore | undefined;
      let other = false;
      if (handler !== null && typeof handler === 'object') {
        if (!callerOfHandler.has(handler)) {
          const store = currentStore();
          callerOfHandler.set(handler, store);
          if (dispatchDepth === 0 && isFetchCall(store?.call) && !store.call.done) watchPendingHop(store.call, handler);
        } else {
          callerStore = callerOfHandler.get(handler);
          other = callerStore !== currentStore();
        }
      }
      dispatchDepth++;
      try {
        if (other) return runInStore(callerStore, () => original.call(this, opts, handler));
        return original.apply(this, arguments as unknown as [unknown, unknown]);
      } finally {
        dispatchDepth--;
      }
    },
  );
  if (wrapped) wrappedDispatchers.add(proto);
}

/**
 * Counts a hop dispatched but not created yet. A dispatcher that refuses it
 * (destroyed, closed) calls the handler's `onError` and never creates the
 * request (lib/dispatcher/dispatcher-base.js): the call has failed there, so
 * the handler's `onError` (fetch's own object, never the application's) is
 * watched for that.
 */
function watchPendingHop(call: FetchCall, handler: object): void {
  call.pending++;
  const h = handler as { onError?: unknown };
  const onError = h.onError;
  if (typeof onError !== 'function') return;
  try {
    h.onError = function (this: unknown, err: unknown) {
      if (call.pending > 0 && !call.done) endCall(call, err);
      return (onError as (e: unknown) => unknown).apply(this, arguments as unknown as [unknown]);
    };
  } catch {
    // a handler that cannot be changed: a refused hop then only shows as the missing next hop
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

// ---------------------------------------------------------------------------
// fetch() calls

type FetchFunction = (input: unknown, init?: unknown) => unknown;

/**
 * The call's `redirect` setting. fetch reads `init.redirect` itself (once, as
 * WebIDL does), so here it is only read where that cannot be noticed: an own
 * data property of a plain init object, or the getter of a `Request` of the
 * same fetch. Anything else is `unknown`.
 */
function redirectModeOf(input: unknown, init: unknown, requestClass: unknown): RedirectMode {
  if (init !== null && init !== undefined) {
    if (typeof init !== 'object' || isProxy(init)) return 'unknown';
    const own = Object.getOwnPropertyDescriptor(init, 'redirect');
    if (own !== undefined && !('value' in own)) return 'unknown';
    if (own !== undefined && own.value !== undefined) return modeOf(own.value);
    const proto: unknown = Object.getPrototypeOf(init);
    if (own === undefined && proto !== Object.prototype && proto !== null) return 'unknown';
  }
  if (input !== null && typeof input === 'object' && !(input instanceof URL)) {
    if (typeof requestClass === 'function' && input instanceof requestClass) return modeOf((input as { redirect?: unknown }).redirect);
    return 'unknown'; // a Request of another fetch, say
  }
  return 'follow';
}

function modeOf(value: unknown): RedirectMode {
  if (value === undefined) return 'follow'; // a Request made without one
  return value === 'follow' || value === 'error' || value === 'manual' ? value : 'unknown';
}

/**
 * Wraps a `fetch` so that each call runs inside its own `FetchCall`. The
 * promise fetch returns is returned as it is.
 */
function tracedFetch(original: FetchFunction, requestClass: unknown): FetchFunction {
  return function fetch(this: unknown, input: unknown, init?: unknown) {
    // Under axios' fetch adapter the axios span is the call; a suppressed chain is not traced.
    if (isSuppressed() || activeOuterClient() !== undefined) return original.apply(this, arguments as unknown as [unknown]);
    let call: FetchCall;
    try {
      call = {
        parent: getCurrentSpan(),
        redirectMode: redirectModeOf(input, init, requestClass),
        span: undefined,
        done: false,
        hops: 0,
        pending: 0,
        current: undefined,
        url: '',
        responded: false,
        redirect: undefined,
        runInCaller: undefined,
      };
    } catch (err) {
      logOnce('fetch:call', 'could not prepare a fetch call; its requests are traced one by one', err);
      return original.apply(this, arguments as unknown as [unknown]);
    }
    const self = this;
    const args = arguments as unknown as [unknown];
    return runInCall(call, () => original.apply(self, args));
  };
}

/** A request created inside a traced `fetch()` call. */
function onHop(call: FetchCall, request: UndiciRequest, url: string, parsed: URL | undefined): void {
  const span = call.span;
  if (call.done) {
    // The span records nothing (or there is none): each hop only carries its context.
    if (span !== undefined) injectUnrecorded(span, request, parsed);
    return;
  }
  const previous = call.redirect;
  call.hops++;
  call.pending = 0;
  call.current = request;
  call.url = url;
  call.responded = false;
  call.redirect = undefined;
  hopCall.set(request, call);
  if (span !== undefined) {
    // A later hop: a redirect fetch followed.
    logRedirect(span, previous?.response.statusCode, redactedUrl(url, parsed));
    inject(span, request, parsed);
    return;
  }
  const method = String(request.method).toUpperCase();
  const started = startClientSpanWithParent(COMPONENT, method, call.parent);
  if (started === undefined) {
    call.done = true;
    return;
  }
  call.span = started;
  const runInCaller = beginSpan(started, request, method, url, parsed);
  // Unfollowed: later hops only carry its context.
  if (runInCaller === UNFOLLOWED) call.done = true;
  else {
    call.runInCaller = runInCaller;
    followed++;
  }
}

/** What `beginSpan` returns for a span it has already finished. */
const UNFOLLOWED = Symbol('unfollowed');

/**
 * The start of a request's (or a fetch call's) span, at its first request:
 * tags, request hook, trace headers. When nothing will be recorded (a no-op
 * tracer, an unsampled trace whose sampling is final) and no hook will see
 * it, the context is propagated and the span finished at once: the response
 * is not followed (`UNFOLLOWED`). Else returns what runs the response hook in
 * the caller's context (undici publishes the response from the socket's
 * context), when there is a response hook.
 */
function beginSpan(
  span: Span,
  request: UndiciRequest,
  method: string,
  url: string,
  parsed: URL | undefined,
): RunInCaller | undefined | typeof UNFOLLOWED {
  const options = optionsOf(COMPONENT);
  const recording = isRecording(span);
  if (!recording && !options.requestHook && !options.responseHook) {
    injectUnrecorded(span, request, parsed);
    finishSpan(span);
    return UNFOLLOWED;
  }
  const runInCaller = typeof options.responseHook === 'function' ? bindToCurrentContext(runFn) : undefined;
  if (recording) setTags(span, requestTags(method, url, parsed));
  safeCall('fetch requestHook', options.requestHook, span, request as FetchRequestLike);
  inject(span, request, parsed);
  return runInCaller;
}

function requestTags(method: string, url: string, parsed: URL | undefined): TagMap {
  const tags = clientTags(COMPONENT);
  tags[TAG.HTTP_METHOD] = method;
  tags[TAG.HTTP_URL] = redactedUrl(url, parsed);
  if (parsed !== undefined) addUrlPeerTags(tags, parsed);
  return tags;
}

/** Finishes the call's span (once), tagging `err` when given. */
function endCall(call: FetchCall, err?: unknown): void {
  if (call.done) return;
  call.done = true;
  if (call.span === undefined) return;
  finishSpan(call.span, err);
  unfollow();
}

/** Why fetch did not follow a redirect it was expected to (WHATWG fetch, HTTP-redirect fetch steps 3-11). */
function redirectFailure(call: FetchCall): string {
  const location = call.redirect?.location;
  let target: URL | undefined;
  try {
    target = location !== undefined ? new URL(location, call.url) : undefined;
  } catch {
    return 'the Location of the redirect is not a valid URL';
  }
  if (target !== undefined && target.protocol !== 'http:' && target.protocol !== 'https:') return 'the redirect leads to a URL that is not HTTP(S)';
  if (call.hops > REDIRECT.FETCH_MAX) return `more than ${REDIRECT.FETCH_MAX} redirects`;
  return 'fetch did not follow the redirect';
}

/**
 * The latest hop has ended with a redirect fetch follows: the next hop's
 * request is created in the microtasks that follow. When none is, by the
 * time the event loop has moved on, and none waits in a pool queue, fetch
 * failed the call there (too many redirects, a Location it refuses, an abort
 * in between): the call ends.
 */
function awaitNextHop(call: FetchCall): void {
  const hops = call.hops;
  setImmediate(() => {
    if (call.done || call.hops !== hops || call.pending > 0) return;
    const redirect = call.redirect;
    try {
      if (call.span !== undefined && redirect !== undefined) {
        if (call.redirectMode === 'follow') {
          setTag(call.span, TAG.HTTP_STATUS_CODE, redirect.response.statusCode);
          tagErrorMessage(call.span, REDIRECT.ERROR_KIND, redirectFailure(call));
        } else {
          // `unknown`: the call may have asked for the redirect itself (`manual`); it answered the call.
          recordResponse(call.span, redirect.response, call.url, call.runInCaller);
        }
      }
    } catch (err) {
      logOnce('fetch:redirect', 'could not record a redirect failure', err);
    }
    endCall(call);
  });
}

// ---------------------------------------------------------------------------
// diagnostics_channel subscribers

function onCreate(message: unknown): void {
  // A subscriber that throws would surface as an uncaught exception: never.
  try {
    if (!installed) {
      // Uninstalled, still subscribed until the spans in flight end: only a
      // redirect hop of a fetch() call whose span is in flight is followed.
      const call = activeCall();
      if (!isFetchCall(call) || call.done || call.span === undefined) return;
    }
    if (installed) keepCallerContextOfGlobalDispatcher();
    if (isSuppressed()) return;
    const request = (message as { request?: UndiciRequest } | null)?.request;
    if (request === undefined || request === null || typeof request.addHeader !== 'function') return;
    // The tunnel a ProxyAgent opens is not the application's request, and the proxy is no destination for trace context.
    if (request.method === 'CONNECT') return;
    const url = urlOf(request);
    const parsed = parsedUrl(url);
    const outer = installed ? activeOuterClient() : undefined;
    if (outer !== undefined) {
      const redirected = outerHopRedirect(outer);
      if (redirected !== undefined) logRedirect(outer.span, redirected, redactedUrl(url, parsed));
      outerOfHop.set(request, outer);
      inject(outer.span, request, parsed);
      return;
    }
    const call = activeCall();
    if (isFetchCall(call)) {
      onHop(call, request, url, parsed);
      return;
    }
    const method = String(request.method).toUpperCase();
    const span = startClientSpan(COMPONENT, method);
    if (span === undefined) return;
    // Known before the request hook and the injection run, as the span's request.
    const state: Traced = { span, runInCaller: undefined, url, responded: false, finished: false };
    traced.set(request, state);
    const runInCaller = beginSpan(span, request, method, url, parsed);
    if (runInCaller === UNFOLLOWED) traced.delete(request);
    else {
      state.runInCaller = runInCaller;
      followed++;
    }
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

/** The `location` of a raw response head, if any. */
function locationOf(raw: UndiciResponseHead['headers']): string | undefined {
  if (!Array.isArray(raw)) return undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (String(raw[i]).toLowerCase() === 'location') return String(raw[i + 1]);
  }
  return undefined;
}

/** Status, error status and the response hook of the response that answers a call or a request. */
function recordResponse(span: Span, response: UndiciResponseHead, url: string, runInCaller: RunInCaller | undefined): void {
  const status = response.statusCode;
  const options = optionsOf(COMPONENT);
  setTag(span, TAG.HTTP_STATUS_CODE, status);
  if (isErrorStatusBy(COMPONENT, options.isErrorStatus, status)) {
    tagErrorMessage(span, 'http_status', `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}`);
  }
  const hook = options.responseHook;
  if (typeof hook === 'function') {
    const info: FetchResponseLike = {
      status,
      statusText: response.statusText ?? '',
      headers: headerObject(response.headers),
      url,
    };
    const call = (): void => safeCall('fetch responseHook', hook, info, span);
    if (runInCaller !== undefined) runInCaller(call);
    else call();
  }
}

function onHopHeaders(call: FetchCall, request: object, response: UndiciResponseHead): void {
  if (call.current !== request || call.done || call.responded || call.span === undefined) return;
  call.responded = true;
  const status = response.statusCode;
  if (REDIRECT.STATUSES.has(status) && call.redirectMode !== 'manual') {
    // WHATWG fetch, HTTP fetch step 8: `error` fails the call on any redirect status.
    if (call.redirectMode === 'error') {
      setTag(call.span, TAG.HTTP_STATUS_CODE, status);
      tagErrorMessage(call.span, REDIRECT.ERROR_KIND, `HTTP ${status}: a redirect, and the call has redirect: 'error'`);
      return;
    }
    // Followed when it says where to (HTTP-redirect fetch step 4): this hop does not answer the call.
    const location = locationOf(response.headers);
    if (location !== undefined) {
      call.redirect = { response, location };
      return;
    }
  }
  recordResponse(call.span, response, call.url, call.runInCaller);
}

function onHeaders(message: unknown): void {
  try {
    const { request, response } = message as { request: object; response: UndiciResponseHead };
    const outer = outerOfHop.get(request);
    if (outer !== undefined) {
      outer.lastStatus = response.statusCode;
      return;
    }
    const call = hopCall.get(request);
    if (call !== undefined) {
      onHopHeaders(call, request, response);
      return;
    }
    const state = traced.get(request);
    if (state === undefined || state.finished || state.responded) return;
    state.responded = true;
    recordResponse(state.span, response, state.url, state.runInCaller);
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
  unfollow();
}

/** The application stopped reading a response it had (`res.body.cancel()`, an abort after the headers). */
function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e !== null && typeof e === 'object' && (e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED');
}

/**
 * A hop has ended (`err`: it failed). Only the latest hop speaks for the
 * call; a redirect fetch follows hands over to the next hop (fetch drops
 * its body and aborts it, which is no failure of the call).
 */
function onHopEnd(call: FetchCall, request: object, failed: boolean, err?: unknown): void {
  hopCall.delete(request);
  if (call.current !== request || call.done) return;
  if (call.redirect !== undefined) {
    awaitNextHop(call);
    return;
  }
  // Before a response, any failure (abort included) is the call's failure.
  // After one, an abort is the application being done with the body.
  endCall(call, failed && !(call.responded && isAbort(err)) ? err : undefined);
}

function onTrailers(message: unknown): void {
  try {
    const request = (message as { request: object }).request;
    const call = hopCall.get(request);
    if (call !== undefined) onHopEnd(call, request, false);
    else finish(request);
  } catch (err) {
    logOnce('fetch:trailers', 'could not finish a fetch span', err);
  }
}

function onError(message: unknown): void {
  try {
    const { request, error } = message as { request: object; error: unknown };
    const call = hopCall.get(request);
    if (call !== undefined) {
      onHopEnd(call, request, true, error);
      return;
    }
    const state = traced.get(request);
    if (state === undefined || state.finished) return;
    // As in onHopEnd: an abort after the response is not a failure.
    finish(request, state.responded && isAbort(error) ? undefined : error);
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
/** Whether the patch is installed; while not, the subscriptions only serve the spans in flight. */
let installed = false;
/** Spans whose response or end is followed through the channels and has not come yet. */
let followed = 0;
/** The diagnostics_channel module subscribed to. */
let channels: DiagnosticsChannel | undefined;

function subscribe(dc: DiagnosticsChannel): void {
  // There is one diagnostics_channel per process; subscribing twice would trace every request twice.
  if (subscribed) return;
  subscribed = true;
  channels = dc;
  for (const [channel, handler] of SUBSCRIPTIONS) dc.subscribe(channel, handler);
}

function unsubscribe(): void {
  // Also after a partial patch: unsubscribing what is not subscribed is a no-op.
  if (channels !== undefined) for (const [channel, handler] of SUBSCRIPTIONS) channels.unsubscribe(channel, handler);
  subscribed = false;
}

/**
 * A followed span has ended. The last one to end after an uninstall takes
 * the subscriptions away, on the next turn: not from inside a publish.
 */
function unfollow(): void {
  if (followed > 0) followed--;
  if (followed === 0 && !installed && subscribed) {
    setImmediate(() => {
      if (followed === 0 && !installed) unsubscribe();
    });
  }
}

/** Node's global `fetch` and `Request` (absent with `--no-experimental-fetch`). */
const globalFetch = globalThis as unknown as { fetch?: FetchFunction; Request?: unknown };

export const fetchClient: Instrumentation<DiagnosticsChannel> = {
  name: COMPONENT,
  module: 'diagnostics_channel',
  patch(dc) {
    installed = true;
    subscribe(dc);
    keepCallerContextOfGlobalDispatcher();
    if (typeof globalFetch.fetch === 'function') {
      const requestClass = globalFetch.Request;
      wrapMethod(globalFetch as { fetch: FetchFunction }, 'fetch', (original) => tracedFetch(original, requestClass));
    }
  },
  unpatch(dc) {
    installed = false;
    // Every span already started finishes once: undici publishes its response
    // and its end on the channels, so they stay subscribed until the last one.
    if (followed === 0) unsubscribe();
    else channels ??= dc;
    if (typeof globalFetch.fetch === 'function') unwrapMethod(globalFetch as { fetch: FetchFunction }, 'fetch');
    for (const proto of wrappedDispatchers) unwrapMethod(proto as Dispatching, 'dispatch');
    wrappedDispatchers.clear();
    lastGlobalDispatcher = undefined;
  },
};

interface UndiciExports {
  Agent?: { prototype?: object };
  fetch?: FetchFunction;
  Request?: unknown;
}

/**
 * The `undici` package: its `fetch` is one span per call, as the global one,
 * and its dispatchers keep the caller's context for queued requests (see `keepCallerContext`).
 */
export const undiciDispatchers: Instrumentation<UndiciExports> = {
  name: COMPONENT,
  module: 'undici',
  patch(undici) {
    const proto = dispatcherBaseOf(undici.Agent?.prototype);
    if (proto !== undefined) keepCallerContext(proto);
    if (typeof undici.fetch === 'function') {
      const requestClass = undici.Request;
      wrapMethod(undici as { fetch: FetchFunction }, 'fetch', (original) => tracedFetch(original, requestClass));
    }
  },
  unpatch(undici) {
    if (typeof undici.fetch === 'function') unwrapMethod(undici as { fetch: FetchFunction }, 'fetch');
    const proto = dispatcherBaseOf(undici.Agent?.prototype);
    if (proto === undefined) return;
    unwrapMethod(proto as Dispatching, 'dispatch');
    wrappedDispatchers.delete(proto);
  },
};
