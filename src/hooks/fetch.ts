/**
 * Client spans for fetch: Node's global `fetch` (the undici bundled in Node)
 * and the `undici` package (its `fetch`, `request`, `stream`, ...), from the
 * events undici publishes on `diagnostics_channel` (lib/core/request.js,
 * lib/core/diagnostics.js): `undici:request:create` (inside the caller's
 * chain, nothing sent yet: the call starts, trace headers go in with
 * `request.addHeader`), `:headers` (the status), `:trailers` (the body is
 * received: the end), `:error` (failed or aborted). Both undici copies
 * publish there, each request from the copy that runs it: one subscription
 * (../fetch-channels.ts) traces both, neither twice.
 *
 * One `fetch()` call is one span, redirects included, though undici makes
 * each hop its own request (lib/web/fetch/index.js, httpRedirectFetch runs
 * main fetch again): `globalThis.fetch` and the package's `fetch` are wrapped
 * only to run the call inside its `FetchCall` (`runInCall`), so every request
 * created inside it is a hop of it. The span starts at the first hop (a call
 * rejected before anything is sent gets none) under the parent current at
 * `fetch()`, each hop carries its context, and it ends with the hop that
 * answers the call. fetch's promise is returned untouched, its settlement
 * never observed (a reaction would mark a rejection handled or delay it).
 * `request`, `stream` and the like are calls of one hop. Inside an axios call
 * (its `fetch` adapter) the axios span is the call's: its context on every hop.
 *
 * Each request has one record, its owner in `ownerOf`; the span's lifecycle
 * is ../call.ts.
 */
import { activeCall, activeOuterClient, getCurrentSpan, isSuppressed, runInCall, type OuterClient } from '../context';
import { FetchCall } from '../fetch-call';
import { LingeringSubscriptions, type DiagnosticsChannel } from '../fetch-channels';
import { CallerContextKeeper } from '../fetch-dispatch';
import { injectInto, parsedUrl, redactedUrl, redirectModeOf, urlOf } from '../fetch-request';
import type { Instrumentation } from '../instrumentation';
import type { UndiciRequest, UndiciResponseHead } from '../internal-types';
import { logOnce } from '../logger';
import { logRedirect, outerHopRedirect } from '../span';
import { unwrapMethod, wrapMethod } from '../wrap';

const PATCH = 'fetch';

/** A request → the call it is a hop of, or the outer client's call (axios) it serves. Weak: dropped with the request. */
const ownerOf = new WeakMap<object, FetchCall | OuterClient>();

// diagnostics_channel subscribers (contained by LingeringSubscriptions)
function onCreate(message: unknown): void {
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
  const active = activeCall();
  const c = active instanceof FetchCall ? active : new FetchCall(getCurrentSpan(), 'manual');
  ownerOf.set(request, c);
  c.hop(request, url, parsed);
}

/** A request has ended; its call decides what that means. */
function onEnd(message: { request: object; error?: unknown }, failed: boolean): void {
  const owner = ownerOf.get(message.request);
  ownerOf.delete(message.request);
  if (owner instanceof FetchCall) owner.ended(message.request, failed, message.error);
}

function onHeaders(message: unknown): void {
  const { request, response } = message as { request: object; response: UndiciResponseHead };
  const owner = ownerOf.get(request);
  if (owner instanceof FetchCall) owner.headers(request, response);
  else if (owner !== undefined) owner.lastStatus = response.statusCode;
}

const subscriptions = new LingeringSubscriptions([
  ['undici:request:create', onCreate, 'could not instrument a fetch/undici request'],
  ['undici:request:headers', onHeaders, 'could not record a fetch response'],
  ['undici:request:trailers', (m) => onEnd(m as { request: object }, false), 'could not finish a fetch span'],
  ['undici:request:error', (m) => onEnd(m as { request: object; error: unknown }, true), 'could not finish a failed fetch span'],
]);
FetchCall.inFlight = subscriptions;

/** A hop of a call dispatched, not created yet: pending, and a dispatcher refusing it (closed) fails the call. */
const keeper = new CallerContextKeeper((store) => {
  const c = store?.call;
  if (!(c instanceof FetchCall) || c.done) return undefined;
  c.pending++;
  return (err) => {
    if (c.pending > 0 && !c.done) c.end(err);
  };
});

type FetchFunction = (input: unknown, init?: unknown) => unknown;

/** Wraps a `fetch` so that each call runs inside its own `FetchCall`; its promise is returned as it is. */
function tracedFetch(original: FetchFunction, requestClass: () => unknown): FetchFunction {
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
      // `Request` is read when a call needs it, not now: Node defines it as a
      // lazy getter that loads its bundled undici (tens of milliseconds of
      // every process's startup, for applications that may never fetch).
      let requestClass: unknown;
      let read = false;
      const requestClassOf = (): unknown => {
        if (!read) {
          read = true;
          requestClass = globalFetch.Request;
        }
        return requestClass;
      };
      wrapMethod(globalFetch as { fetch: FetchFunction }, 'fetch', (original) => tracedFetch(original, requestClassOf));
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
      wrapMethod(undici as { fetch: FetchFunction }, 'fetch', (original) => tracedFetch(original, () => requestClass));
    }
  },
  unpatch(undici) {
    if (typeof undici.fetch === 'function') unwrapMethod(undici as { fetch: FetchFunction }, 'fetch');
    if (undici.Agent?.prototype !== undefined) keeper.release(undici.Agent.prototype);
  },
};
