/**
 * Server spans: `beforeRequest` (the seed library's `before_request`), the
 * per-request bookkeeping shared by the `http-server` patch and the
 * middlewares, and the Express/connect and Koa middlewares.
 *
 * One incoming request gets at most one server span, whoever starts it: the
 * patch (it sees the request first) or a middleware. The span of a request is
 * kept in a WeakMap keyed by Node's `IncomingMessage`, never on the request
 * object itself, so the application sees the request it would see without us.
 */
import { errorMonitor } from 'events';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'http';
import { isIPv4 } from 'net';
import { FORMAT_HTTP_HEADERS, Tracer as NoopTracer, type Span, type SpanContext, type Tracer } from 'opentracing';
import { SERVER, SPAN_KIND_SERVER, TAG, LOG } from './constants';
import { isSuppressed, spanInContext } from './context';
import { logOnce, safeCall } from './logger';
import { getTracer, optionsOf, type HttpServerOptions } from './options';
import { jaegerContextIsWellFormed } from './propagation';
import { redactPath, redactUrl } from './redact';
import {
  addPeerTags,
  asSpan,
  finishSpan,
  isErrorStatusBy,
  isRecording,
  setTag,
  setTags,
  tagError,
  type TagMap,
} from './span';
import { tagErrorStatus } from './http-common';

/** What `beforeRequest` reads of a request: Node's `IncomingMessage`, or anything shaped like it. */
export interface IncomingRequestLike {
  method?: string;
  url?: string;
  headers: IncomingHttpHeaders;
  socket?: {
    remoteAddress?: string;
    remotePort?: number;
    localAddress?: string;
    localPort?: number;
    /** Set on TLS sockets. */
    encrypted?: boolean;
  } | null;
}

/** Options of `beforeRequest`. */
export interface BeforeRequestOptions {
  /** The tracer to start the span with. Default: the one given to `installPatches`, else the global tracer. */
  tracer?: Tracer;
  /** Default: the request method, upper case (`GET`). */
  operationName?: string;
  /** The `component` tag. Default: `http` (`https` on a TLS socket). */
  component?: string;
  /**
   * Whether to continue the caller's trace; when it says no, a new trace
   * starts and nothing the caller sent (sampling flag, debug id, baggage) is
   * used. A predicate that throws counts as false. Default: true.
   */
  trustIncomingContext?: boolean | ((req: IncomingRequestLike) => boolean);
  /** Request headers naming the calling service (first present wins) for `peer.service`. Default: none. */
  callerNameHeaders?: readonly string[];
}

/** The request part of a Koa context that the Koa middleware uses. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
}

/** A connect/Express middleware. */
export type ConnectMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** A Koa middleware. */
export type KoaMiddleware = (ctx: KoaContextLike, next: () => Promise<unknown>) => Promise<unknown>;

/** The bookkeeping of one traced request. */
export interface ServerSpanState {
  readonly span: Span;
  /** Upper-case method: the operation name, and its prefix once the route is known. */
  readonly method: string;
  readonly component: string;
  readonly options: HttpServerOptions;
  /** The span has been finished. */
  done: boolean;
  /** `error` is already tagged: later evidence (the status) adds no second error log. */
  errored: boolean;
  /** An error seen on the response stream, recorded when the span finishes. */
  failure?: unknown;
  /** The route template, when a middleware learnt it (Koa routers). */
  route?: string;
}

/** Per request: its state, or `null` when it was decided not to trace it. */
const states = new WeakMap<object, ServerSpanState | null>();

const noopTracer = new NoopTracer();

/** The carrier to extract from: the headers, minus a malformed Jaeger context header. */
function carrierOf(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const value = headers[SERVER.JAEGER_CONTEXT_HEADER];
  if (value === undefined || jaegerContextIsWellFormed(value)) return headers;
  const copy: IncomingHttpHeaders = { ...headers };
  delete copy[SERVER.JAEGER_CONTEXT_HEADER];
  return copy;
}

function trusts(trust: boolean | ((req: never) => boolean) | undefined, req: IncomingRequestLike): boolean {
  if (trust === undefined || trust === true) return true;
  if (typeof trust !== 'function') return false;
  try {
    return (trust as (r: IncomingRequestLike) => boolean)(req) === true;
  } catch (err) {
    logOnce('server:trust', 'trustIncomingContext threw; the caller is not trusted', err);
    return false;
  }
}

/** The caller's span context, when trusted and present; never throws. */
function extractParent(tracer: Tracer, req: IncomingRequestLike): SpanContext | undefined {
  const headers = req.headers;
  if (headers === null || typeof headers !== 'object') return undefined;
  try {
    return tracer.extract(FORMAT_HTTP_HEADERS, carrierOf(headers)) ?? undefined;
  } catch (err) {
    logOnce('server:extract', 'tracer.extract threw on incoming headers; the request starts a new trace', err);
    return undefined;
  }
}

/** True when `ctx` carries a trace to continue (jaeger-client returns an empty, invalid context when there is none). */
function continuesTrace(ctx: SpanContext | undefined): boolean {
  if (ctx === undefined) return false;
  return (ctx as { isValid?: unknown }).isValid !== false;
}

function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  const first = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' && first !== '' ? first : undefined;
}

function isAbsoluteUrl(url: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url);
}

/** `scheme://host/path?query` of an incoming request, redacted. */
function urlOf(req: IncomingRequestLike): string {
  const url = typeof req.url === 'string' ? req.url : '/';
  // Absolute form (a request to a proxy) carries its own scheme and authority, maybe credentials.
  if (isAbsoluteUrl(url)) return redactUrl(url);
  const socket = req.socket ?? undefined;
  const scheme = socket?.encrypted ? 'https' : 'http';
  let host = firstHeader(req.headers, 'host');
  if (host === undefined && socket?.localAddress) {
    const addr = socket.localAddress.includes(':') ? `[${socket.localAddress}]` : socket.localAddress;
    host = socket.localPort ? `${addr}:${socket.localPort}` : addr;
  }
  return `${scheme}://${host ?? 'localhost'}${redactPath(url)}`;
}

function methodOf(req: IncomingRequestLike): string {
  return typeof req.method === 'string' && req.method !== '' ? req.method.toUpperCase() : 'GET';
}

/** The tags of a server span beyond `span.kind` and `component`. */
function requestTags(req: IncomingRequestLike, method: string, callerNameHeaders: readonly string[] | undefined): TagMap {
  const tags: TagMap = { [TAG.HTTP_METHOD]: method, [TAG.HTTP_URL]: urlOf(req) };
  const socket = req.socket ?? undefined;
  let address = socket?.remoteAddress;
  // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6 addresses.
  if (address !== undefined && address.startsWith('::ffff:') && isIPv4(address.slice(7))) address = address.slice(7);
  addPeerTags(tags, address, socket?.remotePort);
  if (callerNameHeaders !== undefined && callerNameHeaders.length > 0) {
    for (const name of callerNameHeaders) {
      const value = typeof name === 'string' ? firstHeader(req.headers, name) : undefined;
      if (value !== undefined) {
        tags[TAG.PEER_SERVICE] = value.length > 256 ? value.slice(0, 256) : value;
        break;
      }
    }
  }
  return tags;
}

interface StartSettings {
  tracer: Tracer;
  component: string;
  operationName: string;
  method: string;
  trust: boolean | ((req: never) => boolean) | undefined;
  callerNameHeaders: readonly string[] | undefined;
  requireParent: boolean;
}

/** Starts the server span of `req`; undefined when it must not be traced or the tracer fails. */
function startServerSpan(req: IncomingRequestLike, s: StartSettings): Span | undefined {
  const parent = trusts(s.trust, req) ? extractParent(s.tracer, req) : undefined;
  if (s.requireParent && !continuesTrace(parent)) return undefined;
  let span: Span | undefined;
  try {
    // span.kind at start: jaeger-client treats RPC server spans specially (shared span ids, Zipkin style).
    span = asSpan(
      s.tracer.startSpan(s.operationName, {
        childOf: parent,
        tags: { [TAG.SPAN_KIND]: SPAN_KIND_SERVER, [TAG.COMPONENT]: s.component },
      }),
      s.component,
    );
    if (span === undefined) return undefined;
  } catch (err) {
    logOnce(`startSpan:${s.component}`, `tracer.startSpan threw for an incoming request (${s.component}); the request goes on untraced`, err);
    return undefined;
  }
  try {
    if (isRecording(span)) setTags(span, requestTags(req, s.method, s.callerNameHeaders));
  } catch (err) {
    logOnce('server:tags', 'could not read the tags of an incoming request', err);
  }
  return span;
}

/**
 * Starts a server span for an incoming request: the caller's context is
 * extracted from the headers (`tracer.extract(FORMAT_HTTP_HEADERS, headers)`;
 * a missing, malformed or untrusted one gives a new trace), and the span gets
 * `span.kind`=`server`, `component`, `http.method`, `http.url` (redacted),
 * `peer.ipv4`/`peer.ipv6`, `peer.port` and `peer.service`. The caller
 * finishes it. Never throws: if the tracer fails, a no-op span is returned.
 *
 * With the `http-server` patch or a middleware active, the request already
 * has its span: see `serverSpanOf(req)`.
 */
export function beforeRequest(req: IncomingRequestLike, options?: BeforeRequestOptions): Span {
  try {
    const opts = options ?? {};
    const method = methodOf(req);
    const span = startServerSpan(req, {
      tracer: opts.tracer ?? getTracer(),
      component: opts.component ?? (req.socket?.encrypted ? 'https' : 'http'),
      operationName: opts.operationName ?? method,
      method,
      trust: opts.trustIncomingContext,
      callerNameHeaders: opts.callerNameHeaders,
      requireParent: false,
    });
    if (span !== undefined) return span;
  } catch (err) {
    logOnce('beforeRequest', 'beforeRequest failed; returning a no-op span', err);
  }
  return noopTracer.startSpan('noop');
}

/** The server span of a request being handled (started by the `http-server` patch or a middleware). */
export function serverSpanOf(req: object): Span | undefined {
  return states.get(req)?.span ?? undefined;
}

function isIgnored(req: IncomingMessage, options: HttpServerOptions): boolean {
  const paths = options.ignorePaths;
  if (paths !== undefined && paths !== null && paths.length > 0) {
    const url = typeof req.url === 'string' ? req.url : '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    for (const p of paths) {
      // `search` ignores (and keeps) a global RegExp's lastIndex.
      if (typeof p === 'string' ? p === path : p instanceof RegExp && path.search(p) !== -1) return true;
    }
  }
  const ignore = options.ignore;
  if (typeof ignore === 'function') {
    try {
      return ignore(req) === true;
    } catch (err) {
      logOnce('server:ignore', 'the ignore predicate threw; the request is traced', err);
    }
  }
  return false;
}

function errorStatus(options: HttpServerOptions, status: number): boolean {
  return isErrorStatusBy('http-server', options.isErrorStatus, status);
}

function segments(path: string): number {
  let n = 0;
  for (const part of path.split('/')) if (part !== '') n++;
  return n;
}

/**
 * `baseUrl + route.path` of a request routed by Express (lib/router/index.js
 * and route.js set them). When a route of a mounted router fails, Express
 * leaves the router through `next(err)`, which restores `baseUrl` to the
 * parent's while `route` stays: the template then no longer spans the whole
 * path, and no route is better than a wrong one.
 */
function expressRoute(req: object): string | undefined {
  const r = req as { route?: { path?: unknown }; baseUrl?: unknown; originalUrl?: unknown; url?: unknown };
  const route = r.route;
  if (route === null || typeof route !== 'object' || route.path === undefined || route.path === null) return undefined;
  const base = typeof r.baseUrl === 'string' ? r.baseUrl : '';
  const template = base + String(route.path);
  if (typeof route.path === 'string' && !/[*?()]/.test(template)) {
    const url = typeof r.originalUrl === 'string' ? r.originalUrl : typeof r.url === 'string' ? r.url : '';
    const q = url.indexOf('?');
    if (segments(q === -1 ? url : url.slice(0, q)) !== segments(template)) return undefined;
  }
  return template;
}

/** Finishes the span of a request whose response finished (`closed` false) or whose connection closed. */
function complete(state: ServerSpanState, req: IncomingMessage, res: ServerResponse, closed: boolean): void {
  if (state.done) return;
  state.done = true;
  const span = state.span;
  try {
    const aborted = closed && !res.writableFinished;
    const status = res.headersSent ? res.statusCode : undefined;
    if (isRecording(span)) {
      if (status !== undefined) setTag(span, TAG.HTTP_STATUS_CODE, status);
      const route = state.route ?? expressRoute(req);
      if (route !== undefined && route !== '') span.setOperationName(`${state.method} ${route}`);
    }
    if (state.failure !== undefined && !state.errored) {
      state.errored = true;
      tagError(span, state.failure);
    }
    if (status !== undefined && !state.errored && errorStatus(state.options, status)) {
      state.errored = true;
      tagErrorStatus(span, status, res.statusMessage);
    }
    if (aborted && state.failure === undefined) {
      // The client went away (or the socket was destroyed) before the whole
      // response was written: worth seeing, but not in itself a server failure.
      span.log({ [LOG.EVENT]: SERVER.ABORTED_EVENT, [LOG.MESSAGE]: 'the connection closed before the response was complete' });
    }
  } catch (err) {
    logOnce('server:complete', 'could not tag the end of a request', err);
  }
  safeCall(`${state.component} responseHook`, state.options.responseHook, res, span);
  finishSpan(span);
}

/**
 * The span state of `req`, started now when the request has none: `null`
 * when it is not traced (suppressed, ignored, not trusted enough, tracer
 * failure). Never throws. `created` tells whether this call started it.
 */
export function trackRequest(
  req: IncomingMessage,
  res: ServerResponse,
  component: string,
  options: HttpServerOptions,
): { state: ServerSpanState | null; created: boolean } {
  const known = states.get(req);
  if (known !== undefined) return { state: known, created: false };
  let state: ServerSpanState | null = null;
  if (!isSuppressed()) {
    try {
      state = startTracking(req, res, component, options);
    } catch (err) {
      logOnce(`server:track:${component}`, 'could not trace an incoming request', err);
    }
  }
  states.set(req, state);
  return { state, created: state !== null };
}

function startTracking(req: IncomingMessage, res: ServerResponse, component: string, options: HttpServerOptions): ServerSpanState | null {
  if (isIgnored(req, options)) return null;
  const method = methodOf(req);
  const span = startServerSpan(req, {
    tracer: getTracer(),
    component,
    operationName: method,
    method,
    trust: options.trustIncomingContext,
    callerNameHeaders: options.callerNameHeaders,
    requireParent: options.requireParentSpan === true,
  });
  if (span === undefined) return null;
  const state: ServerSpanState = { span, method, component, options, done: false, errored: false };
  try {
    res.once('finish', () => complete(state, req, res, false));
    res.once('close', () => complete(state, req, res, true));
    res.on(errorMonitor, (err: unknown) => {
      if (state.failure === undefined) state.failure = err;
    });
  } catch (err) {
    logOnce('server:observe', 'could not follow a response; its span is closed now', err);
    state.done = true;
    finishSpan(span);
    return null;
  }
  safeCall(`${component} requestHook`, options.requestHook, span, req);
  return state;
}

/** Marks the request failed by `err` (once). */
function noteError(state: ServerSpanState, err: unknown): void {
  if (state.errored || state.done) return;
  state.errored = true;
  tagError(state.span, err);
}

/**
 * Runs `fn` (the application's handler). A throw marks the span failed and
 * goes on to the caller as the same object; the span still finishes with
 * the response.
 */
export function callHandler<T>(state: ServerSpanState, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    noteError(state, err);
    throw err;
  }
}

/** `callHandler` with the server span current for `fn` and the async work it starts. */
export function runInServerSpan<T>(state: ServerSpanState, fn: () => T): T {
  return spanInContext(state.span, () => callHandler(state, fn));
}

/**
 * A connect/Express middleware that starts the server span of each request,
 * when the `http-server` patch has not already done so (then it adds nothing).
 * Use it first: `app.use(expressMiddleware())`. Options: as the
 * `http-server` patch's; default: those given to `installPatches`, read per request.
 * The operation name becomes `METHOD /route/:param` when Express routed the request.
 */
export function expressMiddleware(options?: HttpServerOptions): ConnectMiddleware {
  return function openTracingMiddleware(req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void {
    const { state, created } = trackRequest(req, res, SERVER.COMPONENT_EXPRESS, options ?? optionsOf('http-server'));
    if (state === null || !created) return next();
    runInServerSpan(state, () => next());
  };
}

/** The route template a Koa router left on the context (`@koa/router`, `koa-router`: `ctx._matchedRoute`). */
function koaRoute(ctx: KoaContextLike): string | undefined {
  const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
  return typeof route === 'string' && route !== '' ? route : undefined;
}

function statusOfError(err: unknown): number {
  if (err !== null && typeof err === 'object') {
    const e = err as { status?: unknown; statusCode?: unknown };
    if (typeof e.status === 'number') return e.status;
    if (typeof e.statusCode === 'number') return e.statusCode;
  }
  return 500; // what Koa answers for an error without a status (lib/context.js onerror)
}

/**
 * A Koa middleware that starts the server span of each request (unless the
 * `http-server` patch did), and records the error a downstream middleware
 * throws when its status (`err.status`, else 500) is an error status. Use it
 * first: `app.use(koaMiddleware())`. Options: as the `http-server` patch's.
 */
export function koaMiddleware(options?: HttpServerOptions): KoaMiddleware {
  return function openTracingKoaMiddleware(ctx: KoaContextLike, next: () => Promise<unknown>): Promise<unknown> {
    const { state, created } = trackRequest(ctx.req, ctx.res, SERVER.COMPONENT_KOA, options ?? optionsOf('http-server'));
    if (state === null) return next();
    let result: Promise<unknown>;
    try {
      // Not runInServerSpan: whether a throw is a failure depends on its status, decided below.
      result = created ? spanInContext(state.span, next) : next();
    } catch (err) {
      result = Promise.reject(err);
    }
    return Promise.resolve(result).then(
      (value) => {
        state.route ??= koaRoute(ctx);
        return value;
      },
      (err: unknown) => {
        state.route ??= koaRoute(ctx);
        if (errorStatus(state.options, statusOfError(err))) noteError(state, err);
        throw err;
      },
    );
  };
}
