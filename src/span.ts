/**
 * Span helpers shared by every patch: start a client span from the current
 * span, tag it, record an error, inject its context, finish it. Each of them
 * contains a failing tracer: the application's call never sees its errors.
 */
import { isIP } from 'net';
import { FORMAT_HTTP_HEADERS, Span as NoopSpan, type Span, type SpanContext, type Tracer } from 'opentracing';
import { BAGGAGE_LIMIT, LOG, REDIRECT, SPAN_KIND_CLIENT, TAG } from './constants';
import { getCurrentSpan, isSuppressed, type OuterClient } from './context';
import { logOnce, warnOnce } from './logger';
import { redactText } from './redact';
import { getTracer, optionsOf, propagationRules, type PatchName } from './options';
import {
  BAGGAGE_BY_PREFIXES,
  baggageItems,
  baggageNamesBetween,
  baggageState,
  baggageValueTest,
  deleteBaggageValues,
  isBaggageIn,
  withoutBaggage,
  type BaggageHeaders,
  type BaggageState,
} from './propagation';

export type TagValue = string | number | boolean | undefined;
export type TagMap = Record<string, TagValue>;

/**
 * Starts the client span of one call, child of the current span. Returns
 * undefined when the call must not be traced (suppressed, or no parent while
 * `requireParentSpan` is set) or when the tracer fails.
 */
export function startClientSpan(patch: PatchName, operationName: string, tags?: TagMap): Span | undefined {
  if (isSuppressed()) return undefined;
  return startClientSpanWithParent(patch, operationName, getCurrentSpan(), tags);
}

/**
 * Like `startClientSpan`, with the parent looked up earlier: when the call
 * was made, for a library that starts the I/O later (axios after its
 * interceptors).
 *
 * Under a parent whose trace is not sampled, with its sampling final, and
 * when the patch has no request or response hook, no client span is started:
 * whatever it recorded would be dropped and no hook would see it. The call
 * gets a stand-in that records nothing and whose context is the parent's, so
 * the patch follows the call as usual (callbacks keep the caller's context)
 * at no tracer cost, and downstream services receive the parent's own
 * context (sampled=0, the parent's trace id, the parent as their parent).
 */
export function startClientSpanWithParent(
  patch: PatchName,
  operationName: string,
  parent: Span | undefined,
  tags?: TagMap,
): Span | undefined {
  if (isSuppressed()) return undefined;
  return startSpanUnder(patch, operationName, parent, tags);
}

/**
 * `startClientSpanWithParent` for a caller that has checked suppression
 * itself (the call lifecycle reads the context once per call).
 */
export function startSpanUnder(patch: PatchName, operationName: string, parent: Span | undefined, tags?: TagMap): Span | undefined {
  if (parent === undefined && optionsOf(patch).requireParentSpan === true) return undefined;
  try {
    if (parent !== undefined && isFinalUnsampled(parent) && !hasHooks(patch)) return new UnsampledCallSpan(parent);
    // A no-op parent carries no context; as a reference it only costs
    // (OpenTracing's Tracer.startSpan turns childOf into a Reference and deletes the key).
    const childOf = parent !== undefined && parent.constructor !== NoopSpan ? parent : undefined;
    return asSpan(getTracer().startSpan(operationName, { childOf, tags: tags as Record<string, unknown> | undefined }), patch);
  } catch (err) {
    logOnce(`startSpan:${patch}`, `tracer.startSpan threw in the ${patch} patch; the call goes on untraced`, err);
    return undefined;
  }
}

/**
 * What a tracer's `startSpan` returned, when it can be used as a span;
 * undefined (logged once per `site`) for anything else, which means "do not
 * trace this call": a tracer may return null or a stub (startSpan is typed
 * to return a Span, but nothing enforces it in JavaScript).
 */
export function asSpan(value: unknown, site: string): Span | undefined {
  if (value !== null && typeof value === 'object') {
    const s = value as Partial<Record<keyof Span, unknown>>;
    if (typeof s.finish === 'function' && typeof s.context === 'function' && typeof s.setTag === 'function' && typeof s.log === 'function') {
      return value as Span;
    }
  }
  logOnce(`startSpan-result:${site}`, `tracer.startSpan returned ${value === null ? 'null' : typeof value}, not a span, in ${site}; the call goes on untraced`);
  return undefined;
}

interface SamplingContext {
  isSampled?: () => boolean;
  isDebug?: () => boolean;
  samplingFinalized?: boolean;
}

/**
 * The span of a call made under an unsampled parent, in place of a client
 * span (see `startClientSpanWithParent`): OpenTracing's no-op span (it
 * records nothing, `finish` does nothing, nothing is reported), whose
 * context is the parent's own. Injected, it sends the parent's context
 * downstream; `isRecording` is false for it.
 */
class UnsampledCallSpan extends NoopSpan {
  constructor(private readonly parent: Span) {
    super();
  }

  protected override _context(): SpanContext {
    return this.parent.context();
  }
}

/**
 * True for a Jaeger span whose trace is not sampled (nor debug) and whose
 * sampling is final (jaeger-client's SpanContext: `isSampled()`, `isDebug()`,
 * `samplingFinalized`): no span of that trace will ever be recorded.
 */
function isFinalUnsampled(span: Span): boolean {
  if (span.constructor === NoopSpan) return false;
  try {
    const ctx = span.context() as SamplingContext;
    return (
      ctx.samplingFinalized === true &&
      typeof ctx.isSampled === 'function' &&
      !ctx.isSampled() &&
      !(typeof ctx.isDebug === 'function' && ctx.isDebug())
    );
  } catch {
    return false;
  }
}

function injected(tracer: Tracer, context: SpanContext): Record<string, string> {
  const carrier: Record<string, string> = {};
  tracer.inject(context, FORMAT_HTTP_HEADERS, carrier);
  return carrier;
}

/**
 * What the tracer injects for a context, and which of those headers carry
 * its baggage (undefined: none of them).
 */
interface Injected {
  readonly carrier: Readonly<Record<string, string>>;
  readonly baggage: BaggageHeaders | undefined;
}

/** Which headers carry the baggage of `context` by their values, else by their names. */
function baggageByValues(context: SpanContext): BaggageHeaders {
  try {
    const carries = baggageValueTest(baggageItems(context));
    if (carries !== undefined) return { by: 'values', carries };
  } catch (err) {
    logOnce('inject-baggage-values', 'could not read the baggage of the span context; baggage headers are told by name only', err);
  }
  return BAGGAGE_BY_PREFIXES;
}

/**
 * What the tracer injects for `context`, with none of its baggage: a copy of
 * the context without baggage is injected when the tracer's contexts can be
 * copied so (jaeger-client's), whatever names the tracer gives its headers.
 * Otherwise (or when that fails) the context itself is injected and every
 * header that carries one of its baggage items is deleted by its value; what
 * is left is told by the header-name prefixes (`injectHttpHeaders`). Throws
 * what the tracer's inject of `context` throws.
 */
function injectedWithoutBaggage(tracer: Tracer, context: SpanContext): Injected {
  try {
    const copy = withoutBaggage(context);
    if (copy !== undefined) return { carrier: injected(tracer, copy), baggage: undefined };
  } catch (err) {
    logOnce('inject-no-baggage', 'could not inject the span context without its baggage; baggage headers are dropped by value', err);
  }
  const carrier = injected(tracer, context);
  try {
    deleteBaggageValues(carrier, baggageItems(context));
  } catch (err) {
    logOnce('inject-baggage-values', 'could not read the baggage of the span context; baggage headers are dropped by name only', err);
  }
  return { carrier, baggage: BAGGAGE_BY_PREFIXES };
}

/**
 * What the tracer injects for `context` (which has baggage), with its
 * baggage headers told apart for the bounds: exactly, by injecting a copy
 * without baggage as well, when the context can be copied so (whatever
 * names the tracer gives its headers); else by the baggage values; else by
 * the header-name prefixes. Throws what the tracer's inject of `context` throws.
 */
function injectedWithBaggage(tracer: Tracer, context: SpanContext): Injected {
  const carrier = injected(tracer, context);
  try {
    const copy = withoutBaggage(context);
    if (copy !== undefined) return { carrier, baggage: baggageNamesBetween(carrier, injected(tracer, copy)) };
  } catch (err) {
    logOnce('inject-baggage-names', 'could not inject the span context without its baggage; baggage headers are told by value', err);
  }
  return { carrier, baggage: baggageByValues(context) };
}

/**
 * What the tracer injects for `context` (whose baggage is `state`, not
 * `none`), without baggage when `dropBaggage`.
 */
function injectedFor(tracer: Tracer, context: SpanContext, state: BaggageState, dropBaggage: boolean): Injected {
  if (state === 'unknown') return { carrier: injected(tracer, context), baggage: BAGGAGE_BY_PREFIXES };
  return dropBaggage ? injectedWithoutBaggage(tracer, context) : injectedWithBaggage(tracer, context);
}

/** `baggageState`, contained: a context that throws counts as unknown (only the header-name rules apply). */
function safeBaggageState(context: SpanContext): BaggageState {
  try {
    return baggageState(context);
  } catch (err) {
    logOnce('baggage-state', 'could not tell whether the span context has baggage; baggage headers are dropped by name only', err);
    return 'unknown';
  }
}

/**
 * What the tracer injects for the unsampled parent of a stand-in: the same
 * headers for every call made under that parent, so worked out once per
 * parent context, tracer and `propagateBaggage` (jaeger gives a span a new
 * context object when its baggage changes; a final unsampled context changes
 * nothing else). jaeger's inject is about half of what such a call costs otherwise.
 */
const parentCarriers = new WeakMap<object, Injected & { tracer: Tracer; dropBaggage: boolean }>();

function parentHeaders(span: UnsampledCallSpan, dropBaggage: boolean): Injected {
  const tracer = getTracer();
  const context = span.context();
  const memo = parentCarriers.get(context);
  if (memo !== undefined && memo.tracer === tracer && memo.dropBaggage === dropBaggage) return memo;
  const state = safeBaggageState(context);
  const { carrier, baggage } =
    state === 'none' ? { carrier: injected(tracer, context), baggage: undefined } : injectedFor(tracer, context, state, dropBaggage);
  const entry = { tracer, dropBaggage, carrier, baggage };
  parentCarriers.set(context, entry);
  return entry;
}

function hasHooks(patch: PatchName): boolean {
  const options = optionsOf(patch);
  return typeof options.requestHook === 'function' || typeof options.responseHook === 'function';
}

/**
 * False when tags set on `span` would be thrown away (a no-op span, or a
 * Jaeger span that is not sampled and whose sampling is final), so that the
 * patches skip building them.
 */
export function isRecording(span: Span): boolean {
  if (span.constructor === NoopSpan) return false;
  try {
    const ctx = span.context() as SamplingContext;
    if (typeof ctx.isSampled !== 'function') return true;
    if (ctx.isSampled()) return true;
    if (typeof ctx.isDebug === 'function' && ctx.isDebug()) return true;
    return ctx.samplingFinalized === false;
  } catch {
    return true;
  }
}

/** The tags every client span has. */
export function clientTags(component: string): TagMap {
  return { [TAG.SPAN_KIND]: SPAN_KIND_CLIENT, [TAG.COMPONENT]: component };
}

/**
 * The peer tag of each host seen: a process talks to few hosts, again and
 * again, and telling an address from a name (`isIP`) costs a regular
 * expression per call otherwise. Bounded: hosts beyond it are worked out each time.
 */
const PEERS = new Map<string, { key: string; host: string }>();
const MAX_PEERS = 256;

/** `peer.hostname` or `peer.ipv4`/`peer.ipv6` for `host`, and `peer.port`. */
export function addPeerTags(tags: TagMap, host: string | undefined, port: number | string | undefined): TagMap {
  if (host) {
    let peer = PEERS.get(host);
    if (peer === undefined) {
      let h = host;
      if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
      const family = isIP(h);
      peer = { key: family === 4 ? TAG.PEER_HOST_IPV4 : family === 6 ? TAG.PEER_HOST_IPV6 : TAG.PEER_HOSTNAME, host: h };
      if (PEERS.size < MAX_PEERS) PEERS.set(host, peer);
    }
    tags[peer.key] = peer.host;
  }
  if (port !== undefined && port !== null && port !== '') {
    const n = typeof port === 'number' ? port : Number(port);
    if (Number.isInteger(n) && n > 0) tags[TAG.PEER_PORT] = n;
  }
  return tags;
}

/** `peer.*` for the host of `url`, with its port or the scheme's default one. */
export function addUrlPeerTags(tags: TagMap, url: URL): TagMap {
  const port = url.port || (url.protocol === 'https:' ? 443 : url.protocol === 'http:' ? 80 : undefined);
  return addPeerTags(tags, url.hostname, port);
}

/** Sets several tags; a failing tracer is contained. */
export function setTags(span: Span, tags: TagMap): void {
  try {
    for (const key of Object.keys(tags)) {
      const value = tags[key];
      if (value !== undefined) span.setTag(key, value);
    }
  } catch (err) {
    logOnce('setTag', 'span.setTag threw; tags dropped', err);
  }
}

/** Sets one tag; a failing tracer is contained. */
export function setTag(span: Span, key: string, value: TagValue): void {
  if (value === undefined) return;
  try {
    span.setTag(key, value);
  } catch (err) {
    logOnce('setTag', 'span.setTag threw; tags dropped', err);
  }
}

function errorKind(err: unknown): string {
  if (err !== null && typeof err === 'object') {
    const e = err as { code?: unknown; name?: unknown; constructor?: { name?: unknown } };
    if (typeof e.code === 'string' && e.code) return e.code;
    if (typeof e.name === 'string' && e.name) return e.name;
    if (typeof e.constructor?.name === 'string') return e.constructor.name;
  }
  return typeof err;
}

/** Marks `span` as failed: `error`=`true` and the error log of the OpenTracing conventions. */
/**
 * The `error.object` field: the error for whoever reads it in the process
 * (an object whose prototype is the error: `instanceof`, `code`, `response`
 * read through), but with its message and stack redacted and serialized as
 * `{ name, message, code, stack }` only. Tracers serialize object fields with
 * `JSON.stringify` (jaeger-client's thrift.js): the error's own fields would
 * reach the backend, and they hold secrets (an AxiosError's `config` has the
 * URL and the Authorization header; Node's ERR_INVALID_URL has `input`).
 */
function errorObjectField(err: unknown, message: string, stack: string | undefined, depth = 0): unknown {
  if (err === null || (typeof err !== 'object' && typeof err !== 'function')) return typeof err === 'string' ? message : err;
  const e = err as { name?: unknown; code?: unknown; cause?: unknown };
  const summary = {
    name: typeof e.name === 'string' ? e.name : undefined,
    message,
    code: typeof e.code === 'string' || typeof e.code === 'number' ? e.code : undefined,
    stack,
  };
  const field = Object.create(err as object) as object;
  // Own values for what readers ask most: some errors' accessors (DOMException's
  // `name`, `code`) refuse any `this` but the error itself.
  Object.defineProperties(field, {
    name: { value: summary.name, configurable: true },
    code: { value: summary.code, configurable: true },
    message: { value: message, configurable: true },
    stack: { value: stack, configurable: true },
    toJSON: { value: () => summary, configurable: true },
  });
  // util.inspect shows an error's `cause` (found through the prototype): the same treatment for it.
  if ('cause' in (err as object)) {
    const cause = e.cause as { message?: unknown; stack?: unknown } | null | undefined;
    const causeMessage = redactText(typeof cause?.message === 'string' ? cause.message : String(cause));
    const causeStack = typeof cause?.stack === 'string' ? redactText(cause.stack) : undefined;
    Object.defineProperty(field, 'cause', {
      value: depth < 3 ? errorObjectField(cause, causeMessage, causeStack, depth + 1) : causeMessage,
      configurable: true,
    });
  }
  return field;
}

export function tagError(span: Span, err: unknown): void {
  try {
    span.setTag(TAG.ERROR, true);
    const e = err as { message?: unknown; stack?: unknown } | null | undefined;
    const message = redactText(typeof e?.message === 'string' ? e.message : String(err));
    const stack = typeof e?.stack === 'string' ? redactText(e.stack) : undefined;
    span.log({
      [LOG.EVENT]: LOG.ERROR_EVENT,
      [LOG.ERROR_KIND]: errorKind(err),
      [LOG.ERROR_OBJECT]: errorObjectField(err, message, stack),
      [LOG.MESSAGE]: message,
      [LOG.STACK]: stack,
    });
  } catch (logErr) {
    logOnce('tagError', 'could not tag an error on a span', logErr);
  }
}

/** Marks `span` as failed without an error object (e.g. an HTTP 503). */
export function tagErrorMessage(span: Span, kind: string, message: string): void {
  try {
    span.setTag(TAG.ERROR, true);
    span.log({ [LOG.EVENT]: LOG.ERROR_EVENT, [LOG.ERROR_KIND]: kind, [LOG.MESSAGE]: message });
  } catch (logErr) {
    logOnce('tagError', 'could not tag an error on a span', logErr);
  }
}

/**
 * Logs a redirect followed within one call (one span): the status that
 * redirected and the (redacted) URL it led to. Nothing for a span that
 * records nothing.
 */
export function logRedirect(span: Span, status: number | undefined, url: string): void {
  if (!isRecording(span)) return;
  const fields: Record<string, unknown> = { [LOG.EVENT]: REDIRECT.EVENT };
  if (status !== undefined) fields[TAG.HTTP_STATUS_CODE] = status;
  fields[TAG.HTTP_URL] = url;
  logFields(span, fields);
}

/**
 * Counts a request a lower layer makes for an outer client's call (see
 * `OuterClient`). Returns the redirect status when this request follows a
 * redirect response of the call (the caller logs it with `logRedirect`),
 * else undefined: nothing to build for the first request.
 */
export function outerHopRedirect(outer: OuterClient): number | undefined {
  const hops = (outer.hops ?? 0) + 1;
  outer.hops = hops;
  const status = outer.lastStatus;
  outer.lastStatus = undefined;
  return hops > 1 && status !== undefined && REDIRECT.STATUSES.has(status) ? status : undefined;
}

/** Adds a log record to `span`; a failing tracer is contained. */
export function logFields(span: Span, fields: Record<string, unknown>): void {
  try {
    span.log(fields);
  } catch (err) {
    logOnce('log', 'span.log threw; log record dropped', err);
  }
}

/** Finishes `span`, tagging `err` first when given. The caller guarantees once-ness. */
export function finishSpan(span: Span, err?: unknown): void {
  if (err !== undefined) tagError(span, err);
  try {
    span.finish();
  } catch (finishErr) {
    logOnce('finish', 'span.finish threw', finishErr);
  }
}

/** Default `isErrorStatus`: 5xx. */
export function isServerErrorStatus(status: number): boolean {
  return status >= 500;
}

/**
 * `isErrorStatus(status)` of a patch's options (default 5xx), for every
 * client and server patch alike: only `true` marks an error. A predicate
 * that throws counts as false; one that returns anything but a boolean (a
 * promise from an async predicate is truthy, yet not an answer) counts as
 * false too, with one diagnostic, and a promise it returns that rejects is
 * contained, never an unhandled rejection.
 */
export function isErrorStatusBy(
  patch: string,
  isErrorStatus: ((status: number) => unknown) | undefined,
  status: number,
): boolean {
  try {
    const answer = (isErrorStatus ?? isServerErrorStatus)(status);
    if (typeof answer === 'boolean') return answer;
    // A warning: the user's predicate silently never marks an error otherwise.
    warnOnce(
      `${patch}:isErrorStatus-type`,
      `isErrorStatus of the ${patch} patch returned ${answer === null ? 'null' : typeof answer}, not a boolean; only true marks an error`,
    );
    if (answer instanceof Promise) {
      Promise.prototype.then.call(answer, undefined, (err: unknown) => logOnce(`${patch}:isErrorStatus`, 'isErrorStatus rejected', err));
    }
  } catch (err) {
    logOnce(`${patch}:isErrorStatus`, 'isErrorStatus threw', err);
  }
  return false;
}

/** An HTTP header name (RFC 9110 token) and a value Node accepts (lib/_http_common.js). */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * Injects `span`'s context as HTTP headers for a call to `host`, through
 * `set(name, value)`, when `propagateTo` allows that host; with
 * `propagateBaggage` false, no header that carries baggage is written,
 * whatever the tracer names it (see `injectedWithoutBaggage`). Returns what
 * was written. Never throws: a failing tracer or setter is logged once.
 *
 * Baggage comes from callers, so it is treated as hostile: a header that
 * Node would refuse (a baggage key from a `jaeger-baggage` header may hold
 * any character) is dropped rather than failing the application's request,
 * and baggage beyond `BAGGAGE_LIMIT` (entries, bytes) is not forwarded. The
 * baggage headers are told apart as `propagateBaggage: false` tells them
 * (exactly for jaeger-client, whatever its `baggagePrefix`; see
 * `injectedWithBaggage`). When the context is known to have no baggage (the
 * common case), no header is looked at as baggage, and the tracer injects once.
 */
export function injectHttpHeaders(
  span: Span,
  host: string | undefined,
  set: (name: string, value: string) => void,
): Record<string, string> {
  const rules = propagationRules();
  if (!rules.allows(host)) return {};
  const dropBaggage = !rules.baggage;
  let carrier: Record<string, string>;
  // Which headers carry baggage; undefined when none does.
  let baggage: BaggageHeaders | undefined;
  try {
    if (span instanceof UnsampledCallSpan) {
      const memo = parentHeaders(span, dropBaggage);
      carrier = { ...memo.carrier };
      baggage = memo.baggage;
    } else {
      const context = span.context();
      const tracer = getTracer();
      const state = safeBaggageState(context);
      // The common case, a context known to have no baggage: one inject, no header looked at as baggage.
      if (state === 'none') carrier = injected(tracer, context);
      else ({ carrier, baggage } = injectedFor(tracer, context, state, dropBaggage));
    }
  } catch (err) {
    logOnce('inject', 'tracer.inject threw; the call goes on without trace headers', err);
    return {};
  }
  let forwardedItems = 0;
  let forwardedBytes = 0;
  for (const name of Object.keys(carrier)) {
    const value = String(carrier[name]);
    const isBaggage = baggage !== undefined && isBaggageIn(baggage, name, value);
    if (isBaggage && dropBaggage) {
      delete carrier[name];
      continue;
    }
    if (!HEADER_NAME.test(name) || INVALID_HEADER_VALUE.test(value)) {
      logOnce('inject-invalid', `dropped trace header ${JSON.stringify(name.slice(0, 64))}: not a valid HTTP header`);
      delete carrier[name];
      continue;
    }
    if (isBaggage) {
      const size = name.length + value.length;
      if (forwardedItems >= BAGGAGE_LIMIT.MAX_ITEMS || forwardedBytes + size > BAGGAGE_LIMIT.MAX_BYTES) {
        logOnce('inject-baggage-limit', `baggage beyond ${BAGGAGE_LIMIT.MAX_ITEMS} entries or ${BAGGAGE_LIMIT.MAX_BYTES} bytes is not forwarded`);
        delete carrier[name];
        continue;
      }
      forwardedItems++;
      forwardedBytes += size;
    }
    try {
      set(name, value);
    } catch (err) {
      logOnce(`inject-set:${name}`, `could not set trace header ${name}`, err);
    }
  }
  return carrier;
}
