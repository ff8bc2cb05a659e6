/**
 * W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage
 * (`baggage`) for jaeger-client, beside Jaeger's own `uber-trace-id` and
 * `uberctx-*` headers: a codec for `tracer.registerInjector` /
 * `registerExtractor` (jaeger-client dist/src/tracer.js keeps one codec per
 * format, so this one wraps jaeger's TextMapCodec and does both).
 *
 * Extract: a valid `traceparent` comes first; a valid `uber-trace-id` is used
 * when there is no valid `traceparent`. When both are valid and name different
 * traces, `traceparent` wins and `uber-trace-id` is ignored: a hop that
 * rewrote `traceparent` and passed `uber-trace-id` through untouched (a proxy,
 * a service on OpenTelemetry without the Jaeger propagator) is nearer to us
 * than the hop that wrote `uber-trace-id`. Baggage is read from both
 * (`uberctx-*` wins a key present in both). Anything malformed is ignored as
 * the W3C specifications say, never thrown.
 *
 * Inject: Jaeger's headers as before, plus `traceparent` (trace id padded to
 * 128 bits), the `tracestate` received with the trace (bounded), and `baggage`
 * (bounded as W3C Baggage says: 64 entries, 8192 bytes).
 *
 * Trust is not decided here: the server side does not call `extract` at all
 * for a caller it does not trust (src/server.ts), whatever the format.
 */
import * as jaeger from 'jaeger-client';
import { FORMAT_HTTP_HEADERS, FORMAT_TEXT_MAP, type SpanContext } from 'opentracing';
import { BAGGAGE_LIMIT } from './constants';
import { logOnce } from './logger';

/** The propagation formats: Jaeger's headers are always read and written; `w3c` adds the W3C ones. */
export type PropagationFormat = 'jaeger' | 'w3c';
export const PROPAGATION_FORMATS: readonly PropagationFormat[] = ['jaeger', 'w3c'];

export const W3C_HEADER = {
  TRACEPARENT: 'traceparent',
  TRACESTATE: 'tracestate',
  BAGGAGE: 'baggage',
} as const;

/** W3C Trace Context: at most 32 `tracestate` members; we forward at most 512 characters of them. */
const TRACESTATE_MAX_MEMBERS = 32;
const TRACESTATE_MAX_LENGTH = 512;
const TRACESTATE_LONG_MEMBER = 128;
/** Longer header values are not even parsed (Node's whole header block is 16 KB by default). */
const MAX_PARSED_LENGTH = 16384;

/** Options of the codec: those of jaeger-client's own text map codec it wraps. */
export interface W3CCodecOptions {
  /** Percent-encode baggage values in Jaeger's `uberctx-*` headers (jaeger does for HTTP headers). Default: true. */
  urlEncoding?: boolean;
  /** jaeger-client's `contextKey` option. Default: `uber-trace-id`. */
  contextKey?: string;
  /** jaeger-client's `baggagePrefix` option. Default: `uberctx-`. */
  baggagePrefix?: string;
}

/** The parts of jaeger-client's SpanContext the codec reads and writes (dist/src/span_context.js). */
interface JaegerContext {
  readonly isValid: boolean;
  readonly traceIdStr?: string | null;
  readonly spanIdStr?: string | null;
  baggage: Record<string, string>;
  debugId: string;
  flags: number;
  isSampled(): boolean;
  isDebug(): boolean;
  _samplingState?: object;
}

interface JaegerContextClass {
  withStringIds(traceId: string, spanId: string, parentId: string | null, flags: number, baggage?: Record<string, string>, debugId?: string): JaegerContext;
}

const { SpanContext: JaegerSpanContext } = jaeger as unknown as { SpanContext: JaegerContextClass };

/**
 * The `tracestate` received with a trace, by the sampling state that every
 * span context of that trace in this process shares (jaeger-client's
 * `_makeChildContext` and `withBaggageItem` hand it on), so that the server
 * span's children forward it without it being copied into each context.
 */
const traceStates = new WeakMap<object, string>();

interface TraceParent {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const HEX_ID = /^[0-9a-f]+$/;
const ALL_ZERO = /^0+$/;
/** version-traceid-parentid-flags, lower-case hex only (W3C Trace Context, section 3.2). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/;

/** `traceparent` as the W3C spec parses it, or undefined when it must be ignored. */
export function parseTraceParent(value: unknown): TraceParent | undefined {
  if (typeof value !== 'string' || value.length > MAX_PARSED_LENGTH) return undefined;
  const v = value.trim();
  const m = TRACEPARENT.exec(v);
  if (m === null) return undefined;
  const [, version, traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  if (version === 'ff') return undefined;
  // Version 00 has exactly these four fields; a later version may append
  // fields after a '-' (checked by the regex), which we do not read.
  if (version === '00' && v.length !== 55) return undefined;
  if (ALL_ZERO.test(traceId) || ALL_ZERO.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

const TRACESTATE_KEY = /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})$/;
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * The valid members of `tracestate`, bounded: malformed members and repeated
 * keys dropped, at most 32 members and 512 characters (members over 128
 * characters go first, as W3C Trace Context section 3.3.1.5 suggests).
 * Undefined when nothing is left.
 */
export function boundTraceState(value: unknown): string | undefined {
  const text = headerList(value);
  if (text === undefined) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of text.split(',')) {
    const member = raw.trim();
    if (member === '') continue;
    const eq = member.indexOf('=');
    if (eq <= 0) continue;
    const key = member.slice(0, eq);
    const val = member.slice(eq + 1);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(val) || keys.has(key)) continue;
    keys.add(key);
    members.push(member);
    if (members.length === TRACESTATE_MAX_MEMBERS) break;
  }
  let kept = members;
  if (joinedLength(kept) > TRACESTATE_MAX_LENGTH) kept = kept.filter((m) => m.length <= TRACESTATE_LONG_MEMBER);
  while (kept.length > 0 && joinedLength(kept) > TRACESTATE_MAX_LENGTH) kept = kept.slice(0, -1);
  return kept.length > 0 ? kept.join(',') : undefined;
}

function joinedLength(members: readonly string[]): number {
  let n = Math.max(0, members.length - 1);
  for (const m of members) n += m.length;
  return n;
}

/** A header that may come as a list (several headers joined with ','), as one string; undefined if absent or too long. */
function headerList(value: unknown): string | undefined {
  let text: unknown = value;
  if (Array.isArray(value)) text = value.filter((v) => typeof v === 'string').join(',');
  if (typeof text !== 'string' || text === '' || text.length > MAX_PARSED_LENGTH) return undefined;
  return text;
}

/** An RFC 7230 token: what W3C Baggage allows as a key (and what an HTTP header name may be). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function percentDecoded(text: string): string | undefined {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * The entries of a W3C `baggage` header, bounded (64 entries, 8192 bytes of
 * keys and values); malformed entries are dropped, properties ignored.
 */
export function parseBaggage(value: unknown): Array<[string, string]> {
  const text = headerList(value);
  const entries: Array<[string, string]> = [];
  if (text === undefined) return entries;
  let bytes = 0;
  for (const raw of text.split(',')) {
    const semi = raw.indexOf(';');
    const member = semi === -1 ? raw : raw.slice(0, semi);
    const eq = member.indexOf('=');
    if (eq <= 0) continue;
    const key = member.slice(0, eq).trim();
    const val = percentDecoded(member.slice(eq + 1).trim());
    if (!TOKEN.test(key) || val === undefined) continue;
    bytes += key.length + val.length;
    if (bytes > BAGGAGE_LIMIT.MAX_BYTES) break;
    entries.push([key, val]);
    if (entries.length === BAGGAGE_LIMIT.MAX_ITEMS) break;
  }
  return entries;
}

/** The `baggage` header for `items`, bounded as `parseBaggage`; undefined when empty. */
export function formatBaggage(items: Readonly<Record<string, string>>): string | undefined {
  const parts: string[] = [];
  let bytes = 0;
  for (const key of Object.keys(items)) {
    if (!TOKEN.test(key)) continue;
    const value = encodeOrUndefined(String(items[key]));
    if (value === undefined) continue;
    bytes += key.length + value.length;
    if (bytes > BAGGAGE_LIMIT.MAX_BYTES) break;
    parts.push(`${key}=${value}`);
    if (parts.length === BAGGAGE_LIMIT.MAX_ITEMS) break;
  }
  return parts.length > 0 ? parts.join(',') : undefined;
}

function encodeOrUndefined(text: string): string | undefined {
  try {
    return encodeURIComponent(text);
  } catch {
    return undefined; // a lone surrogate
  }
}

function stripLeadingZeros(hex: string): string {
  let i = 0;
  while (i < hex.length - 1 && hex.charCodeAt(i) === 48) i++;
  return hex.slice(i);
}

function asJaeger(context: SpanContext | null | undefined): JaegerContext | undefined {
  const c = context as unknown as JaegerContext | null | undefined;
  return c !== null && c !== undefined && typeof c === 'object' && typeof c.isSampled === 'function' ? c : undefined;
}

/** A jaeger id string as fixed-length lower-case hex, or undefined when it is not one. */
function paddedHex(id: string | null | undefined, length: number): string | undefined {
  if (typeof id !== 'string' || id === '' || id.length > length) return undefined;
  const lower = id.toLowerCase();
  if (!HEX_ID.test(lower) || ALL_ZERO.test(lower)) return undefined;
  return lower.padStart(length, '0');
}

/**
 * jaeger-client's HTTP-header codec plus W3C Trace Context and Baggage (see
 * the file comment). Register it on a jaeger tracer with `registerW3CCodec`,
 * or by hand: `tracer.registerInjector(FORMAT_HTTP_HEADERS, codec)` and
 * `tracer.registerExtractor(FORMAT_HTTP_HEADERS, codec)`.
 */
export class W3CTraceContextCodec {
  private readonly jaegerCodec: jaeger.TextMapCodec;

  constructor(options: W3CCodecOptions = {}) {
    this.jaegerCodec = new jaeger.TextMapCodec({
      urlEncoding: options.urlEncoding ?? true,
      contextKey: options.contextKey,
      baggagePrefix: options.baggagePrefix,
    });
  }

  inject(spanContext: SpanContext, carrier: Record<string, unknown>): void {
    this.jaegerCodec.inject(spanContext, carrier);
    try {
      const ctx = asJaeger(spanContext);
      if (ctx === undefined) return;
      const traceId = paddedHex(ctx.traceIdStr, 32);
      const spanId = paddedHex(ctx.spanIdStr, 16);
      if (traceId === undefined || spanId === undefined) return;
      carrier[W3C_HEADER.TRACEPARENT] = `00-${traceId}-${spanId}-${ctx.isSampled() ? '01' : '00'}`;
      const state = ctx._samplingState !== undefined ? traceStates.get(ctx._samplingState) : undefined;
      if (state !== undefined) carrier[W3C_HEADER.TRACESTATE] = state;
      const baggage = ctx.baggage !== null && typeof ctx.baggage === 'object' ? formatBaggage(ctx.baggage) : undefined;
      if (baggage !== undefined) carrier[W3C_HEADER.BAGGAGE] = baggage;
    } catch (err) {
      logOnce('w3c:inject', 'could not write the W3C trace context headers; only the Jaeger ones are sent', err);
    }
  }

  extract(carrier: Record<string, unknown>): SpanContext | null {
    const fromJaeger = this.jaegerCodec.extract(carrier);
    try {
      return this.withW3C(asJaeger(fromJaeger), carrier) ?? fromJaeger;
    } catch (err) {
      logOnce('w3c:extract', 'could not read the W3C trace context headers; only the Jaeger ones are used', err);
      return fromJaeger;
    }
  }

  /** The context `carrier`'s W3C headers give, merged with jaeger's `ctx`; undefined when they change nothing. */
  private withW3C(ctx: JaegerContext | undefined, carrier: Record<string, unknown>): SpanContext | undefined {
    if (carrier === null || typeof carrier !== 'object') return undefined;
    let traceparent: unknown;
    let tracestate: unknown;
    let baggageHeader: unknown;
    let seenParents = 0;
    for (const key of Object.keys(carrier)) {
      const lower = key.length <= 11 ? key.toLowerCase() : '';
      if (lower === W3C_HEADER.TRACEPARENT) {
        traceparent = carrier[key];
        seenParents++;
      } else if (lower === W3C_HEADER.TRACESTATE) tracestate = carrier[key];
      else if (lower === W3C_HEADER.BAGGAGE) baggageHeader = carrier[key];
    }
    // Several traceparent headers (as separate carrier keys or an array) are invalid.
    const parent = seenParents === 1 && !Array.isArray(traceparent) ? parseTraceParent(traceparent) : undefined;
    const w3cBaggage = parseBaggage(baggageHeader);
    if (parent === undefined && w3cBaggage.length === 0) return undefined;

    const baggage: Record<string, string> = {};
    for (const [key, value] of w3cBaggage) baggage[key] = value;
    if (ctx !== undefined && ctx.baggage !== null && typeof ctx.baggage === 'object') Object.assign(baggage, ctx.baggage);
    const debugId = ctx !== undefined && typeof ctx.debugId === 'string' ? ctx.debugId : '';

    if (parent === undefined) {
      if (ctx === undefined) return undefined;
      ctx.baggage = baggage; // the jaeger context (valid or not) with the W3C baggage added
      return ctx as unknown as SpanContext;
    }
    const traceId = stripLeadingZeros(parent.traceId);
    const spanId = stripLeadingZeros(parent.spanId);
    let flags = parent.sampled ? 1 : 0;
    // Jaeger's debug flag (2) survives only from the very same hop: same trace, same span.
    if (ctx !== undefined && ctx.isValid && ctx.isDebug() && ctx.traceIdStr === traceId && ctx.spanIdStr === spanId) flags |= 2;
    if (ctx !== undefined && ctx.isValid && ctx.traceIdStr !== traceId) {
      logOnce('w3c:disagree', 'traceparent and uber-trace-id name different traces; traceparent is followed');
    }
    const result = JaegerSpanContext.withStringIds(traceId, spanId, null, flags, baggage, debugId);
    const state = boundTraceState(tracestate);
    if (state !== undefined && result._samplingState !== undefined) traceStates.set(result._samplingState, state);
    return result as unknown as SpanContext;
  }
}

/** What `registerW3CCodec` needs of a tracer: jaeger-client's `registerInjector` / `registerExtractor`. */
export interface CodecRegistry {
  registerInjector?(format: string, injector: { inject(context: SpanContext, carrier: unknown): void }): void;
  registerExtractor?(format: string, extractor: { extract(carrier: unknown): SpanContext | null }): void;
}

/**
 * Makes a jaeger-client tracer read and write W3C Trace Context and Baggage
 * beside its Jaeger headers, for HTTP headers and text maps. Pass the
 * `contextKey` / `baggagePrefix` you gave jaeger's `initTracer`, if any. Use
 * it with jaeger's `traceId128bit: true` option. Returns false (and changes
 * nothing) for a tracer that has no codec registry (not jaeger-client's).
 */
export function registerW3CCodec(tracer: CodecRegistry, options: Omit<W3CCodecOptions, 'urlEncoding'> = {}): boolean {
  if (typeof tracer?.registerInjector !== 'function' || typeof tracer.registerExtractor !== 'function') return false;
  const http = new W3CTraceContextCodec({ ...options, urlEncoding: true });
  const text = new W3CTraceContextCodec({ ...options, urlEncoding: false });
  tracer.registerInjector(FORMAT_HTTP_HEADERS, http as never);
  tracer.registerExtractor(FORMAT_HTTP_HEADERS, http as never);
  tracer.registerInjector(FORMAT_TEXT_MAP, text as never);
  tracer.registerExtractor(FORMAT_TEXT_MAP, text as never);
  return true;
}

/**
 * The formats named in `value` (a comma list like `jaeger,w3c`, or an array),
 * with the names it does not know. Jaeger's headers are always included.
 */
export function parsePropagation(value: string | readonly string[] | undefined): { formats: PropagationFormat[]; unknown: string[] } {
  const names = (typeof value === 'string' ? value.split(',') : value ?? []).map((s) => String(s).trim().toLowerCase()).filter(Boolean);
  const formats = new Set<PropagationFormat>(['jaeger']);
  const unknown: string[] = [];
  for (const name of names) {
    if ((PROPAGATION_FORMATS as readonly string[]).includes(name)) formats.add(name as PropagationFormat);
    else unknown.push(name);
  }
  return { formats: [...formats], unknown };
}
