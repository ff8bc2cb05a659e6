/**
 * Where trace context may go. Trace headers make the receiver record (the
 * sampled flag) and baggage carries data, so a user can restrict both to the
 * hosts they trust (`propagateTo`) and switch baggage off (`propagateBaggage`).
 */
import type { SpanContext } from 'opentracing';
import { BAGGAGE_HEADER_PREFIXES } from './constants';
import type { JaegerSpanContextBaggage } from './internal-types';

export interface PropagationRules {
  /** True when trace headers may be sent to `host`. */
  allows(host: string | undefined): boolean;
  readonly baggage: boolean;
}

const ALLOW_ALL = (): boolean => true;

/** A host name as it is compared: lower case, no trailing dot, no IPv6 brackets. */
export function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  while (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

function compileOne(pattern: string | RegExp): (host: string) => boolean {
  if (pattern instanceof RegExp) {
    // The whole host must match: anchor the user's pattern, and drop the
    // stateful flags so that `lastIndex` never makes a test depend on the last one.
    const anchored = new RegExp(`^(?:${pattern.source})$`, pattern.flags.replace(/[gy]/g, ''));
    return (host) => anchored.test(host);
  }
  if (typeof pattern !== 'string' || pattern.length === 0) {
    throw new TypeError('propagateTo entries must be non-empty strings or RegExps');
  }
  const p = normalizeHost(pattern);
  if (p.startsWith('*.')) {
    const suffix = p.slice(1); // '.corp.example'
    return (host) => host.length > suffix.length && host.endsWith(suffix);
  }
  if (p.includes('*')) throw new TypeError(`propagateTo: '*' is only allowed as a leading '*.': ${pattern}`);
  return (host) => host === p;
}

export function compilePropagationRules(
  patterns: ReadonlyArray<string | RegExp> | undefined,
  baggage: boolean,
): PropagationRules {
  if (patterns === undefined || patterns === null) return { allows: ALLOW_ALL, baggage };
  if (!Array.isArray(patterns)) throw new TypeError('options.propagateTo must be an array of host patterns');
  const tests = patterns.map(compileOne);
  return {
    baggage,
    allows(host) {
      if (host === undefined || host === '') return false;
      const h = normalizeHost(host);
      for (const t of tests) if (t(h)) return true;
      return false;
    },
  };
}

export function isBaggageHeader(name: string): boolean {
  const n = name.toLowerCase();
  return BAGGAGE_HEADER_PREFIXES.some((prefix) => n.startsWith(prefix));
}

/*
 * Baggage as the span context holds it, for `propagateBaggage: false` and
 * for the bounds on forwarded baggage (src/span.ts `injectHttpHeaders`). A
 * tracer may write baggage under any header name (jaeger-client's
 * `baggagePrefix` option, other tracers' own schemes), so header names alone
 * cannot tell it from the trace context. What can be known of a context:
 * - jaeger-client's: its baggage object, and a copy of the context without
 *   it can be injected instead (exact: the tracer writes its own context
 *   headers and nothing else), or as well, to tell which headers of the
 *   context's own carrier are its baggage;
 * - a context with `forEachBaggageItem` (basictracer, LightStep): its items,
 *   so that the headers carrying them can be recognised by their values;
 * - any other: nothing; only the header-name prefixes apply.
 */

/**
 * What is known of a span context's baggage: `some`; `none` (a jaeger-client
 * context without baggage, whose inject writes no baggage header: none of
 * its headers needs a look as baggage); or `unknown` (any other context
 * with no baggage it can list: its tracer may still write baggage headers
 * from elsewhere, so the header-name rules apply).
 */
export type BaggageState = 'none' | 'some' | 'unknown';

/** OpenTracing contexts that list their baggage (basictracer-javascript, lightstep-tracer). */
interface IterableBaggage {
  forEachBaggageItem?: unknown;
}

const hasOwn = Object.prototype.hasOwnProperty;

/** A jaeger-client context's baggage object, or undefined for a context of another kind. */
function jaegerBaggage(context: SpanContext): Record<string, unknown> | undefined {
  const c = context as JaegerSpanContextBaggage;
  const baggage = c._baggage;
  if (typeof baggage !== 'object' || baggage === null || typeof c.withBaggageItem !== 'function') return undefined;
  // The codecs read the `baggage` getter: it must be this very object.
  return c.baggage === baggage ? (baggage as Record<string, unknown>) : undefined;
}

// forEachBaggageItem's callback for `baggageState`: module-level, so that
// asking costs no allocation on the path every traced call takes.
let sawBaggage = false;
function markBaggage(): void {
  sawBaggage = true;
}

/** Whether `context` has baggage, without allocating. Throws what the context throws. */
export function baggageState(context: SpanContext): BaggageState {
  const jaeger = jaegerBaggage(context);
  if (jaeger !== undefined) {
    for (const key in jaeger) if (hasOwn.call(jaeger, key)) return 'some';
    return 'none';
  }
  const forEach = (context as IterableBaggage).forEachBaggageItem;
  if (typeof forEach !== 'function') return 'unknown';
  sawBaggage = false;
  forEach.call(context, markBaggage);
  return sawBaggage ? 'some' : 'unknown';
}

/** Shared by every copy: jaeger never writes into a context's baggage object. */
const NO_BAGGAGE: Readonly<Record<string, string>> = Object.freeze({});

/**
 * A copy of `context` with the same trace context and no baggage, to inject
 * in its place; undefined when the context is not one that can be copied so
 * (only jaeger-client's). `context` itself is left as it was.
 */
export function withoutBaggage(context: SpanContext): SpanContext | undefined {
  if (jaegerBaggage(context) === undefined) return undefined;
  // The same class and own fields (ids, debug id, the sampling state, which
  // inject only reads); only the baggage object differs.
  const copy = Object.assign(Object.create(Object.getPrototypeOf(context) as object) as object, context);
  (copy as JaegerSpanContextBaggage)._baggage = NO_BAGGAGE;
  return copy as SpanContext;
}

/** The baggage items of `context` as [key, value] pairs; empty when they cannot be read. */
export function baggageItems(context: SpanContext): Array<[string, string]> {
  const items: Array<[string, string]> = [];
  const jaeger = jaegerBaggage(context);
  if (jaeger !== undefined) {
    for (const key in jaeger) if (hasOwn.call(jaeger, key)) items.push([key, String(jaeger[key])]);
    return items;
  }
  const forEach = (context as IterableBaggage).forEachBaggageItem;
  if (typeof forEach === 'function') {
    forEach.call(context, (key: unknown, value: unknown) => items.push([String(key), String(value)]));
  }
  return items;
}

/** `encodeURIComponent`, or the text as is where it throws (a lone surrogate). */
function percentEncoded(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * A test for header values that carry one of `items`: the value itself, as
 * is or percent-encoded (one header per item), or `key=value` inside a list
 * (one header for all, as W3C `baggage` and `jaeger-baggage` write them).
 * Undefined when there are no items. Exact values are looked up in a set:
 * baggage comes from callers, and its size must not make each call cost
 * items x headers comparisons.
 */
export function baggageValueTest(items: ReadonlyArray<readonly [string, string]>): ((value: string) => boolean) | undefined {
  if (items.length === 0) return undefined;
  const forms = new Set<string>();
  const within: string[] = [];
  for (const [key, value] of items) {
    forms.add(value);
    forms.add(percentEncoded(value));
    if (key !== '') within.push(`${key}=${value}`, `${percentEncoded(key)}=${percentEncoded(value)}`);
  }
  // Every `within` entry has an '=': a value without one holds none of them.
  return (value) => forms.has(value) || (value.includes('=') && within.some((entry) => value.includes(entry)));
}

/**
 * Deletes from `carrier` every entry whose value carries one of `items`
 * (`baggageValueTest`). A trace header whose value happens to be the same
 * as a baggage value goes too: the option's promise comes first.
 */
export function deleteBaggageValues(carrier: Record<string, string>, items: ReadonlyArray<readonly [string, string]>): void {
  const carries = baggageValueTest(items);
  if (carries === undefined) return;
  for (const name of Object.keys(carrier)) {
    if (carries(String(carrier[name]))) delete carrier[name];
  }
}

/**
 * Which headers of an injected carrier carry baggage, as far as the context
 * tells (a carrier known to hold none has no `BaggageHeaders` at all):
 * - `names`: exactly these (jaeger-client: the headers that injecting the
 *   context without its baggage does not write, or writes with another value);
 * - `values`: those whose value carries a baggage item (`baggageValueTest`),
 *   and those named like baggage;
 * - `prefixes`: those named like baggage (`isBaggageHeader`) only.
 */
export type BaggageHeaders =
  | { readonly by: 'names'; readonly names: ReadonlySet<string> }
  | { readonly by: 'values'; readonly carries: (value: string) => boolean }
  | { readonly by: 'prefixes' };

export const BAGGAGE_BY_PREFIXES: BaggageHeaders = Object.freeze({ by: 'prefixes' });

/** The names of `full` that `plain` (the same context injected without its baggage) lacks or holds another value for. */
export function baggageNamesBetween(full: Readonly<Record<string, string>>, plain: Readonly<Record<string, string>>): BaggageHeaders {
  const names = new Set<string>();
  for (const name of Object.keys(full)) {
    if (!hasOwn.call(plain, name) || plain[name] !== full[name]) names.add(name);
  }
  return { by: 'names', names };
}

/** Whether the header `name: value` of a carrier described by `headers` carries baggage. */
export function isBaggageIn(headers: BaggageHeaders, name: string, value: string): boolean {
  switch (headers.by) {
    case 'names':
      return headers.names.has(name);
    case 'values':
      return headers.carries(value) || isBaggageHeader(name);
    default:
      return isBaggageHeader(name);
  }
}

/**
 * A valid Jaeger `uber-trace-id`: trace id (64 or 128 bit), span id, parent
 * id, flags, in hex. jaeger-client parses with `parseInt`, which accepts
 * junk after a hex prefix and ids of any length (text_map_codec.js,
 * span_context.js `fromString`); such a value is dropped here so that it
 * starts a new trace instead of continuing a nonsense one.
 */
const JAEGER_CONTEXT = /^[0-9a-f]{1,32}:[0-9a-f]{1,16}:[0-9a-f]{1,16}:[0-9a-f]{1,2}$/i;

export function jaegerContextIsWellFormed(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  let v = value;
  if (v.includes('%')) {
    try {
      v = decodeURIComponent(v);
    } catch {
      return false;
    }
  }
  return JAEGER_CONTEXT.test(v);
}
