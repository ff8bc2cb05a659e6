/**
 * Client spans for Node's `http` and `https`: `request` and `get`, in every
 * call form Node accepts (URL string, `URL`, options object, `(url, options,
 * cb)`).
 *
 * The request is created by Node from the caller's own arguments; the span's
 * tags are read back from the `ClientRequest` (Node has parsed the URL once
 * already), and the trace headers are set on the request with `setHeader`,
 * so the caller's headers object is never touched.
 */
import { errorMonitor } from 'events';
import type * as http from 'http';
import type { ClientRequest, IncomingMessage, RequestOptions } from 'http';
import { Span as NoopSpan } from 'opentracing';
import type { Span } from 'opentracing';
import { TAG } from '../constants';
import { activeOuterClient, isSuppressed, type OuterClient } from '../context';
import { logOnce, safeCall } from '../logger';
import { optionsOf, type HttpClientOptions } from '../options';
import type { DumpableResponse } from '../internal-types';
import type { Instrumentation } from '../instrumentation';
import { redactPath, redactUrl } from '../redact';
import {
  addPeerTags,
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
  tagErrorMessage,
} from '../span';
import { wrapMethod, unwrapMethod } from '../wrap';

type Component = 'http' | 'https';
type RequestFn = typeof http.request;
type HttpModule = Pick<typeof http, 'request' | 'get'>;


/** The `headers` and `method` the caller passed, whatever the call form. */
function callerOptions(args: ArrayLike<unknown>): RequestOptions | undefined {
  const first = args[0];
  if (typeof first === 'string' || first instanceof URL) {
    const second = args[1];
    return second !== null && typeof second === 'object' ? (second as RequestOptions) : undefined;
  }
  return first !== null && typeof first === 'object' ? (first as RequestOptions) : undefined;
}

/**
 * Node renders the header block inside the `ClientRequest` constructor when
 * the headers are given as a raw array or include `Expect`
 * (lib/_http_client.js); `setHeader` is impossible afterwards, so for those
 * calls the trace headers go into a copy of the arguments instead.
 */
function headersRenderedEarly(options: RequestOptions | undefined): boolean {
  const headers = options?.headers;
  if (headers === undefined || headers === null) return false;
  if (Array.isArray(headers)) return true;
  for (const key of Object.keys(headers)) if (key.length === 6 && key.toLowerCase() === 'expect') return true;
  return false;
}

/** The arguments with `extra` headers added to a copy of the caller's options and headers. */
function argsWithHeaders(args: ArrayLike<unknown>, options: RequestOptions | undefined, extra: Record<string, string>): unknown[] {
  const list = Array.prototype.slice.call(args) as unknown[];
  const headers = options?.headers;
  let merged: RequestOptions['headers'];
  if (Array.isArray(headers)) {
    const raw: string[] = [...(headers as readonly string[])];
    for (const name of Object.keys(extra)) raw.push(name, extra[name]);
    merged = raw;
  } else {
    merged = { ...(headers as Record<string, unknown>), ...extra } as RequestOptions['headers'];
  }
  const copy = { ...options, headers: merged };
  const first = list[0];
  if (typeof first === 'string' || first instanceof URL) {
    if (options !== undefined) list[1] = copy;
    else list.splice(1, 0, copy);
  } else {
    list[0] = copy;
  }
  return list;
}

/**
 * The URL of an absolute-form request target (RFC 9112, 3.2.2): a request
 * sent to an HTTP proxy names its real destination there (axios' `proxy`
 * option, HTTP_PROXY, hand-made proxy requests).
 */
function absoluteTarget(path: string | null | undefined): URL | undefined {
  if (typeof path !== 'string' || !/^https?:\/\//i.test(path)) return undefined;
  try {
    return new URL(path);
  } catch {
    return undefined;
  }
}

/** The host the request is for, for propagation rules: through a proxy, the destination, not the proxy. */
function destinationHost(req: ClientRequest): string {
  return absoluteTarget(req.path)?.hostname ?? req.host;
}

/** The destination host for propagation rules, before the request exists. */
function hostOf(args: ArrayLike<unknown>, options: RequestOptions | undefined): string | undefined {
  const first = args[0];
  const target = absoluteTarget(options?.path);
  if (target !== undefined) return target.hostname;
  if (options?.hostname) return options.hostname;
  if (options?.host) return options.host;
  if (first instanceof URL) return first.hostname;
  if (typeof first === 'string') {
    try {
      return new URL(first).hostname;
    } catch {
      return undefined;
    }
  }
  return 'localhost';
}

function portOf(req: ClientRequest): number | undefined {
  const hostHeader = req.getHeader('host');
  if (typeof hostHeader === 'string') {
    const colon = hostHeader.lastIndexOf(':');
    if (colon !== -1 && colon > hostHeader.lastIndexOf(']')) return Number(hostHeader.slice(colon + 1));
  }
  const agent = (req as { agent?: { defaultPort?: number } }).agent;
  if (agent && typeof agent.defaultPort === 'number') return agent.defaultPort;
  return req.protocol === 'https:' ? 443 : 80;
}

function urlOf(req: ClientRequest): string {
  if (absoluteTarget(req.path) !== undefined) return redactUrl(req.path);
  const hostHeader = req.getHeader('host');
  const authority = typeof hostHeader === 'string' ? hostHeader : req.host;
  return `${req.protocol}//${authority}${redactPath(req.path)}`;
}

/**
 * Follows one request to the end of its response. The span finishes exactly
 * once: when the response closes (complete or not), or when the request
 * errors or closes without a response.
 */
function observe(component: Component, span: Span, req: ClientRequest, options: HttpClientOptions): void {
  let finished = false;
  let response: IncomingMessage | undefined;
  let failure: unknown;
  const finish = (err?: unknown): void => {
    if (finished) return;
    finished = true;
    finishSpan(span, err);
  };

  req.on(errorMonitor, (err: unknown) => {
    if (response === undefined) finish(err);
    else failure = err;
  });
  req.once('close', () => {
    if (response !== undefined) return;
    // An 'upgrade' or 'connect' response is handed to the app without a
    // 'response' event; Node sets `req.res` and closes the request.
    const upgraded = (req as ClientRequest & { res?: IncomingMessage | null }).res;
    if (upgraded && failure === undefined) {
      setTag(span, TAG.HTTP_STATUS_CODE, upgraded.statusCode ?? 0);
      finish();
      return;
    }
    finish(failure ?? new Error('request closed before a response'));
  });
  req.prependListener('response', (res: IncomingMessage & DumpableResponse) => {
    response = res;
    const status = res.statusCode ?? 0;
    setTag(span, TAG.HTTP_STATUS_CODE, status);
    const socket = res.socket;
    if (socket && typeof socket.remotePort === 'number') setTag(span, TAG.PEER_PORT, socket.remotePort);
    if (isErrorStatusBy(component, options.isErrorStatus, status)) tagErrorMessage(span, 'http_status', `HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}`);
    safeCall(`${component} responseHook`, options.responseHook, res, span);
    res.on(errorMonitor, (err: unknown) => {
      failure = err;
    });
    // 'end' when the body was read to its end (the span ends before the app's
    // own 'end' handlers run, so a tracer closed there still gets it); 'close'
    // for every other ending.
    res.once('end', () => finish());
    res.once('close', () => {
      finish(res.complete ? undefined : (failure ?? new Error('response aborted before its end')));
    });
    // We are a 'response' listener now, so Node will not discard a response
    // that nobody else listens to (ClientRequest: `if (!req.emit('response',
    // res)) res._dump()`). Do what Node would have done, or the socket stays pinned.
    if (req.listenerCount('response') === 1 && typeof res._dump === 'function') res._dump();
  });
}

/** The application's call as it asked for it. */
function callOriginal(original: RequestFn, self: unknown, args: IArguments, end: boolean): ClientRequest {
  const req = original.apply(self, args as unknown as Parameters<RequestFn>);
  if (end) req.end();
  return req;
}

/**
 * Creates the request. When Node renders its headers inside the constructor
 * (`early`), `span`'s trace headers go into a copy of the arguments first;
 * otherwise `injectLate` sets them on the request afterwards.
 */
function createRequest(
  original: RequestFn,
  self: unknown,
  args: IArguments,
  callerOpts: RequestOptions | undefined,
  early: boolean,
  span: Span | undefined,
): ClientRequest {
  if (early && span !== undefined) {
    const extra = injectHttpHeaders(span, hostOf(args, callerOpts), () => undefined);
    return original.apply(self, argsWithHeaders(args, callerOpts, extra) as Parameters<RequestFn>);
  }
  return original.apply(self, args as unknown as Parameters<RequestFn>);
}

/** Sets `span`'s trace headers on a request whose headers are not rendered yet. */
function injectLate(req: ClientRequest, span: Span): void {
  injectHttpHeaders(span, destinationHost(req), (name, value) => req.setHeader(name, value));
}

/**
 * A request made for an outer client's call (axios over http: follow-redirects
 * makes one per hop): noted on the outer span, with the status of its
 * response for the next hop's redirect log. Only looked at when the request
 * already has a 'response' listener (the library's), so that adding one
 * changes nothing (without any, Node would discard the response itself).
 */
function followOuterHop(outer: OuterClient, req: ClientRequest): void {
  try {
    const redirected = outerHopRedirect(outer);
    if (redirected !== undefined) logRedirect(outer.span, redirected, urlOf(req));
    if (req.listenerCount('response') > 0) {
      // First: the library's own listener makes the next hop's request at once.
      req.prependOnceListener('response', (res: IncomingMessage) => {
        outer.lastStatus = res.statusCode;
      });
    }
  } catch (err) {
    logOnce('http:outer-hop', 'could not follow a request of an outer client call', err);
  }
}

function tracedRequest(component: Component, original: RequestFn, self: unknown, args: IArguments, end: boolean): ClientRequest {
  if (isSuppressed()) return callOriginal(original, self, args, end);

  // Argument parsing that fails hands the call to Node untouched: Node throws
  // its own error (ERR_INVALID_ARG_TYPE for `{ method: 5 }`) or copes.
  let callerOpts: RequestOptions | undefined;
  let early = false;
  let method: string;
  try {
    callerOpts = callerOptions(args);
    early = headersRenderedEarly(callerOpts);
    const given: unknown = callerOpts?.method;
    // Node's rule (lib/_http_client.js): null/undefined/'' is GET, a string is upper-cased, anything else throws.
    if (given !== undefined && given !== null && typeof given !== 'string') return callOriginal(original, self, args, end);
    method = given ? given.toUpperCase() : 'GET';
  } catch (err) {
    logOnce(`${component}:args`, 'could not read the request arguments; untraced', err);
    return callOriginal(original, self, args, end);
  }

  // A higher layer (axios) owns the span: propagate its context on every hop, add no span.
  const outer = activeOuterClient();
  if (outer !== undefined) {
    const req = createRequest(original, self, args, callerOpts, early, outer.span);
    if (!early) injectLate(req, outer.span);
    followOuterHop(outer, req);
    if (end) req.end();
    return req;
  }

  const options = optionsOf(component);
  const span = startClientSpan(component, method);
  if (span === undefined) return callOriginal(original, self, args, end);

  // Nothing will be recorded on this span (a no-op tracer, or an unsampled
  // trace whose sampling is final) and no hook will see it: propagate its
  // context and finish it now, without following the request.
  if (!isRecording(span) && !options.requestHook && !options.responseHook) {
    return untracedRequest(component, original, self, args, end, span, callerOpts, early);
  }

  let req: ClientRequest;
  try {
    req = createRequest(original, self, args, callerOpts, early, span);
  } catch (err) {
    // Invalid arguments: Node throws before any I/O. Same error to the caller.
    finishSpan(span, err);
    throw err;
  }

  try {
    if (isRecording(span)) {
      const tags = clientTags(component);
      tags[TAG.HTTP_METHOD] = req.method;
      tags[TAG.HTTP_URL] = urlOf(req);
      addPeerTags(tags, req.host, portOf(req));
      setTags(span, tags);
    }
    safeCall(`${component} requestHook`, options.requestHook, span, req);
    if (!early) injectLate(req, span);
    observe(component, span, req, options);
  } catch (err) {
    logOnce(`${component}:observe`, 'could not instrument a request; its span is closed now', err);
    finishSpan(span);
  }
  if (end) req.end();
  return req;
}

/** The request of a span that records nothing: trace headers only, the span finished at once. */
function untracedRequest(
  component: Component,
  original: RequestFn,
  self: unknown,
  args: IArguments,
  end: boolean,
  span: Span,
  callerOpts: RequestOptions | undefined,
  early: boolean,
): ClientRequest {
  // OpenTracing's no-op span has no context to propagate.
  const propagate = span.constructor !== NoopSpan;
  let req: ClientRequest;
  try {
    req = createRequest(original, self, args, callerOpts, early, propagate ? span : undefined);
  } catch (err) {
    finishSpan(span, err);
    throw err;
  }
  try {
    if (propagate && !early) injectLate(req, span);
  } catch (err) {
    logOnce(`${component}:inject`, 'could not propagate the trace context of a request', err);
  }
  finishSpan(span);
  if (end) req.end();
  return req;
}

function makeInstrumentation(component: Component): Instrumentation<HttpModule> {
  return {
    name: component,
    module: component,
    patch(exports) {
      // Both are wrapped: `get` calls the module's own `request` binding, not
      // `exports.request` (lib/http.js, lib/https.js), so wrapping `request`
      // alone would miss it. Our `get` is `request` + `end()`, as Node's is.
      const originalRequest = exports.request;
      wrapMethod(exports, 'request', (original) =>
        function request(this: unknown) {
          return tracedRequest(component, original, this, arguments, false);
        },
      );
      wrapMethod(exports, 'get', () =>
        function get(this: unknown) {
          return tracedRequest(component, originalRequest, this, arguments, true);
        },
      );
    },
    unpatch(exports) {
      unwrapMethod(exports, 'request');
      unwrapMethod(exports, 'get');
    },
  };
}

export const httpClient = makeInstrumentation('http');
export const httpsClient = makeInstrumentation('https');
