/**
 * Client spans for fetch: Node's global `fetch` (the undici bundled in Node)
 * and the `undici` package (its `fetch`, `request`, `stream`, ...), through
 * the events undici publishes on `diagnostics_channel`
 * (lib/core/request.js, lib/core/diagnostics.js): `undici:request:create`
 * (published synchronously inside the caller's `fetch()` chain, nothing sent
 * yet: the call starts, trace headers go in with `request.addHeader`),
 * `undici:request:headers` (the status), `undici:request:trailers` (the body
 * has been received: the end) and `undici:request:error` (failed or aborted).
 *
 * Both undici copies publish on the same channel names, each request from the
 * copy that runs it, so one subscription traces both and neither twice: the
 * module hooked is the builtin `diagnostics_channel`, and a copy of undici
 * loaded later needs nothing more (see ../fetch-channels.ts for uninstall).
 *
 * One `fetch()` call is one span, redirects included. undici makes each hop
 * of a redirect its own request (lib/web/fetch/index.js, httpRedirectFetch
 * runs main fetch again), so `globalThis.fetch` and the package's `fetch`
 * are wrapped, only to run the call inside its `FetchCall` (`runInCall`):
 * every request created inside it is a hop of it. The span starts at the
 * first hop (a call rejected before anything is sent gets none) with the
 * parent current when `fetch()` was called, each hop carries its context,
 * and it ends with the hop that answers the call. fetch's own promise is
 * returned untouched, its settlement never observed (a reaction would mark a
 * rejection handled or delay it). Other undici APIs (`request`, `stream`)
 * are one span per request: a call of one hop. Inside an axios call (its
 * `fetch` adapter) the axios span is the call's: its context on every hop.
 *
 * Every request has one record, its owner in `ownerOf`. The owners' span
 * lifecycle is ../call.ts; only undici's event model is here.
 */
import type { Span } from 'opentracing';
import { startCall, type Call, type CallSpec } from '../call';
import { REDIRECT, TAG } from '../constants';
import { activeCall, activeOuterClient, bindToCurrentContext, getCurrentSpan, isSuppressed, runInCall, type OuterClient } from '../context';
import { LingeringSubscriptions, type DiagnosticsChannel } from '../fetch-channels';
import { CallerContextKeeper } from '../fetch-dispatch';
import { headerObject, injectInto, injectUnrecorded, isAbort, locationOf, parsedUrl, redactedUrl, redirectModeOf, urlOf, type RedirectMode } from '../fetch-request';
import type { Instrumentation } from '../instrumentation';
import type { UndiciRequest, UndiciResponseHead } from '../internal-types';
import { logOnce } from '../logger';
import { optionsOf, type FetchRequestLike, type FetchResponseLike } from '../options';
import { addUrlPeerTags, isErrorStatusBy, logRedirect, outerHopRedirect, tagErrorMessage } from '../span';
import { unwrapMethod, wrapMethod } from '../wrap';

const PATCH = 'fetch';

/** One `fetch()` call, from its first hop to the hop that answers it; or one request undici runs on its own. */
class FetchCall {
  /** Started at the first hop; undefined before it, or when the call is not traced. */
  call: Call<FetchResponseLike> | undefined = undefined;
  /** The span is finished (or there is none): later hops only get trace context, if any. */
  done = false;
  /** Requests created for the call so far, and those dispatched but not created yet (queued in a full pool). */
  hops = 0;
  pending = 0;
  /** The latest hop: its request, its URL (what the response hook sees), whether its response head has come. */
  current: UndiciRequest | undefined = undefined;
  url = '';
  parsed: URL | undefined = undefined;
  responded = false;
  /** The latest hop answered with a redirect fetch is expected to follow: its response head. */
  redirect: { response: UndiciResponseHead; location: string } | undefined = undefined;
  /** Runs the response hook in the caller's context (undici publishes the response from the socket's). */
  runInCaller: ((fn: () => void) => void) | undefined = undefined;

  /** `redirect`: `manual` for a request undici runs on its own (a redirect is its answer). */
  constructor(
    readonly parent: Span | undefined,
    readonly redirectMode: RedirectMode,
  ) {}
}

/** A request → the call it is a hop of, or the outer client's call (axios) it serves. Weak: dropped with the request. */
const ownerOf = new WeakMap<object, FetchCall | OuterClient>();

/** The spec of every call; `parent` is the starting call's, set only around its synchronous `startCall`. */
interface HopSpec extends CallSpec<FetchRequestLike, FetchCall> {
  parent: Span | null;
}
const HOP: HopSpec = {
  operationName: (c) => String(c.current!.method).toUpperCase(),
  tags: (tags, c) => {
    tags[TAG.HTTP_METHOD] = String(c.current!.method).toUpperCase();
    tags[TAG.HTTP_URL] = redactedUrl(c.url, c.parsed);
    if (c.parsed !== undefined) addUrlPeerTags(tags, c.parsed);
  },
  request: (c) => c.current as FetchRequestLike,
  parent: null,
};

function runFn(fn: () => void): void {
  fn();
}

/** A request created for call `c`: its first hop starts the span, a later one is a redirect fetch followed. */
function onHop(c: FetchCall, request: UndiciRequest, url: string, parsed: URL | undefined): void {
  if (c.done) {
    if (c.call !== undefined) injectUnrecorded(c.call.span, request, parsed);
    return;
  }
  const previous = c.redirect;
  c.hops++;
  c.pending = 0;
  c.current = request;
  c.url = url;
  c.parsed = parsed;
  c.responded = false;
  c.redirect = undefined;
  ownerOf.set(request, c);
  if (c.call !== undefined) {
    logRedirect(c.call.span, previous?.response.statusCode, redactedUrl(url, parsed));
    injectInto(c.call.span, request, parsed);
    return;
  }
  HOP.parent = c.parent ?? null;
  const call = (c.call = startCall<FetchRequestLike, FetchResponseLike, FetchCall>(PATCH, HOP, c));
  HOP.parent = null;
  const options = optionsOf(PATCH);
  if (call === undefined || (!call.recording && !options.requestHook && !options.responseHook)) {
    // Nothing to record and no hook to see it: the context goes on every hop, the response is not followed.
    if (call !== undefined) injectUnrecorded(call.span, request, parsed);
    call?.finish();
    c.done = true;
    return;
  }
  if (typeof options.responseHook === 'function') c.runInCaller = bindToCurrentContext(runFn);
  injectInto(call.span, request, parsed);
  subscriptions.follow();
}

/** Finishes the call's span once, with `err` when given. */
function end(c: FetchCall, err?: unknown): void {
  if (c.done) return;
  c.done = true;
  if (c.call === undefined) return;
  c.call.finish(err);
  subscriptions.unfollow();
}

/** Status, error status and the response hook of the response that answers a call. */
function respond(c: FetchCall, call: Call<FetchResponseLike>, response: UndiciResponseHead): void {
  const status = response.statusCode;
  const options = optionsOf(PATCH);
  call.setTags({ [TAG.HTTP_STATUS_CODE]: status });
  if (isErrorStatusBy(PATCH, options.isErrorStatus, status)) {
    tagErrorMessage(call.span, 'http_status', `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}`);
  }
  if (typeof options.responseHook !== 'function') return;
  const info: FetchResponseLike = { status, statusText: response.statusText ?? '', headers: headerObject(response.headers), url: c.url };
  const run = (): void => call.respond(info);
  if (c.runInCaller !== undefined) c.runInCaller(run);
  else run();
}

/** Why fetch did not follow a redirect it was expected to (WHATWG fetch, HTTP-redirect fetch steps 3-11). */
function redirectFailure(c: FetchCall, location: string): string {
  let target: URL;
  try {
    target = new URL(location, c.url);
  } catch {
    return 'the Location of the redirect is not a valid URL';
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return 'the redirect leads to a URL that is not HTTP(S)';
  return c.hops > REDIRECT.FETCH_MAX ? `more than ${REDIRECT.FETCH_MAX} redirects` : 'fetch did not follow the redirect';
}

/**
 * The latest hop has ended with a redirect fetch follows: the next hop's
 * request is created in the microtasks that follow. When none is by the time
 * the event loop has moved on, and none waits in a pool queue, fetch failed
 * the call there (too many redirects, a Location it refuses, an abort in
 * between): the call ends.
 */
function awaitNextHop(c: FetchCall): void {
  const hops = c.hops;
  setImmediate(() => {
    if (c.done || c.hops !== hops || c.pending > 0) return;
    const { call, redirect } = c;
    try {
      if (call === undefined || redirect === undefined) {
        // nothing to record
      } else if (c.redirectMode === 'follow') {
        call.setTags({ [TAG.HTTP_STATUS_CODE]: redirect.response.statusCode });
        tagErrorMessage(call.span, REDIRECT.ERROR_KIND, redirectFailure(c, redirect.location));
      } else {
        // `unknown`: the call may have asked for the redirect itself (`manual`); it answered the call.
        respond(c, call, redirect.response);
      }
    } catch (err) {
      logOnce('fetch:redirect', 'could not record a redirect failure', err);
    }
    end(c);
  });
}

/** A request ends (`failed`: with `err`). Only the latest hop speaks for its call; a redirect hands over to the next. */
function onEnd(request: object, failed: boolean, err?: unknown): void {
  const c = ownerOf.get(request);
  ownerOf.delete(request);
  if (!(c instanceof FetchCall) || c.current !== request || c.done) return;
  if (c.redirect !== undefined) awaitNextHop(c);
  // Before a response any failure (abort included) is the call's; after one, an abort is the application done with the body.
  else end(c, failed && !(c.responded && isAbort(err)) ? err : undefined);
}

// diagnostics_channel subscribers: one that throws would surface as an uncaught exception, so never.
function onCreate(message: unknown): void {
  try {
    if (subscriptions.installed) keeper.keepGlobal();
    else {
      // Uninstalled, still subscribed until the spans in flight end: only hops of a call in flight are followed.
      const c = activeCall();
      if (!(c instanceof FetchCall) || c.done || c.call === undefined) return;
    }
    const request = (message as { request?: UndiciRequest } | null)?.request;
    if (isSuppressed() || request === undefined || request === null || typeof request.addHeader !== 'function') return;
    // The tunnel a ProxyAgent opens is not the application's request, and the proxy is no destination for trace context.
    if (request.method === 'CONNECT') return;
    const url = urlOf(request);
    const parsed = parsedUrl(url);
    const outer = subscriptions.installed ? activeOuterClient() : undefined;
    if (outer !== undefined) {
      const redirected = outerHopRedirect(outer);
      if (redirected !== undefined) logRedirect(outer.span, redirected, redactedUrl(url, parsed));
      ownerOf.set(request, outer);
      injectInto(outer.span, request, parsed);
      return;
    }
    const c = activeCall();
    onHop(c instanceof FetchCall ? c : new FetchCall(getCurrentSpan(), 'manual'), request, url, parsed);
  } catch (err) {
    logOnce('fetch:create', 'could not instrument a fetch/undici request', err);
  }
}

function onHeaders(message: unknown): void {
  try {
    const { request, response } = message as { request: object; response: UndiciResponseHead };
    const c = ownerOf.get(request);
    if (c !== undefined && !(c instanceof FetchCall)) c.lastStatus = response.statusCode;
    if (!(c instanceof FetchCall) || c.current !== request || c.done || c.responded || c.call === undefined) return;
    c.responded = true;
    const status = response.statusCode;
    if (REDIRECT.STATUSES.has(status) && c.redirectMode !== 'manual') {
      // WHATWG fetch, HTTP fetch step 8: `error` fails the call on any redirect status.
      if (c.redirectMode === 'error') {
        c.call.setTags({ [TAG.HTTP_STATUS_CODE]: status });
        tagErrorMessage(c.call.span, REDIRECT.ERROR_KIND, `HTTP ${status}: a redirect, and the call has redirect: 'error'`);
        return;
      }
      // Followed when it says where to (HTTP-redirect fetch step 4): this hop does not answer the call.
      const location = locationOf(response.headers);
      if (location !== undefined) return void (c.redirect = { response, location });
    }
    respond(c, c.call, response);
  } catch (err) {
    logOnce('fetch:headers', 'could not record a fetch response', err);
  }
}

function onTrailers(message: unknown): void {
  try {
    onEnd((message as { request: object }).request, false);
  } catch (err) {
    logOnce('fetch:trailers', 'could not finish a fetch span', err);
  }
}

function onError(message: unknown): void {
  try {
    const { request, error } = message as { request: object; error: unknown };
    onEnd(request, true, error);
  } catch (err) {
    logOnce('fetch:error', 'could not finish a failed fetch span', err);
  }
}

const subscriptions = new LingeringSubscriptions([
  ['undici:request:create', onCreate],
  ['undici:request:headers', onHeaders],
  ['undici:request:trailers', onTrailers],
  ['undici:request:error', onError],
]);

/** A hop of a call dispatched, not created yet: pending, and a dispatcher refusing it (closed) fails the call. */
const keeper = new CallerContextKeeper((store) => {
  const c = store?.call;
  if (!(c instanceof FetchCall) || c.done) return undefined;
  c.pending++;
  return (err) => {
    if (c.pending > 0 && !c.done) end(c, err);
  };
});

type FetchFunction = (input: unknown, init?: unknown) => unknown;

/** Wraps a `fetch` so that each call runs inside its own `FetchCall`; its promise is returned as it is. */
function tracedFetch(original: FetchFunction, requestClass: unknown): FetchFunction {
  return function fetch(this: unknown, input: unknown, init?: unknown) {
    // Under axios' fetch adapter the axios span is the call; a suppressed chain is not traced.
    if (isSuppressed() || activeOuterClient() !== undefined) return original.apply(this, arguments as unknown as [unknown]);
    let c: FetchCall;
    try {
      c = new FetchCall(getCurrentSpan(), redirectModeOf(input, init, requestClass));
    } catch (err) {
      logOnce('fetch:call', 'could not prepare a fetch call; its requests are traced one by one', err);
      return original.apply(this, arguments as unknown as [unknown]);
    }
    const self = this;
    const args = arguments as unknown as [unknown];
    return runInCall(c, () => original.apply(self, args));
  };
}

/** Node's global `fetch` and `Request` (absent with `--no-experimental-fetch`). */
const globalFetch = globalThis as unknown as { fetch?: FetchFunction; Request?: unknown };

export const fetchClient: Instrumentation<DiagnosticsChannel> = {
  name: PATCH,
  module: 'diagnostics_channel',
  patch(dc) {
    subscriptions.install(dc);
    keeper.keepGlobal();
    if (typeof globalFetch.fetch === 'function') {
      const requestClass = globalFetch.Request;
      wrapMethod(globalFetch as { fetch: FetchFunction }, 'fetch', (original) => tracedFetch(original, requestClass));
    }
  },
  unpatch(dc) {
    // Every span already started finishes once: the channels stay subscribed until the last one.
    subscriptions.uninstall(dc);
    if (typeof globalFetch.fetch === 'function') unwrapMethod(globalFetch as { fetch: FetchFunction }, 'fetch');
    keeper.release();
  },
};

interface UndiciExports {
  Agent?: { prototype?: object };
  fetch?: FetchFunction;
  Request?: unknown;
}

/** The `undici` package: its `fetch` is one span per call, and its dispatchers keep the caller's context. */
export const undiciDispatchers: Instrumentation<UndiciExports> = {
  name: PATCH,
  module: 'undici',
  patch(undici) {
    keeper.keep(undici.Agent?.prototype);
    if (typeof undici.fetch === 'function') {
      const requestClass = undici.Request;
      wrapMethod(undici as { fetch: FetchFunction }, 'fetch', (original) => tracedFetch(original, requestClass));
    }
  },
  unpatch(undici) {
    if (typeof undici.fetch === 'function') unwrapMethod(undici as { fetch: FetchFunction }, 'fetch');
    if (undici.Agent?.prototype !== undefined) keeper.release(undici.Agent.prototype);
  },
};
