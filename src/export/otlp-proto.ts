/**
 * OTLP/protobuf encoding of finished jaeger-client spans, straight from
 * jaeger's span objects: an `ExportTraceServiceRequest`
 * (opentelemetry-proto, collector/trace/v1/trace_service.proto and
 * trace/v1/trace.proto field numbers) with one ResourceSpans and one
 * ScopeSpans holding the batch.
 *
 * Why by hand: OpenTelemetry's serializer reads its own `ReadableSpan`
 * shape, so the spans of a jaeger tracer had first to be rebuilt as
 * OpenTelemetry spans (hex ids, attribute maps, hrtime pairs, event and link
 * objects) and then walked again by that serializer: about 7 µs of CPU per
 * span, more than everything else the instrumentation does for a call (the
 * OTLP column of bench/RESULTS.md). No library encodes another tracer's
 * spans. This writer reads jaeger's fields once and writes the bytes; the
 * transport around it (HTTP, retries, timeouts, headers, the `OTEL_*`
 * variables) stays OpenTelemetry's own (./otlp.ts).
 *
 * Mapping (the same as Jaeger's own OTLP translation where it has one):
 * - trace id: jaeger's 64- or 128-bit id, left-padded with zeros to 16 bytes; span ids 8 bytes;
 * - the `span.kind` tag → SpanKind (server, client, producer, consumer; else internal), not an attribute;
 * - the first childOf reference → parent_span_id; followsFrom and further childOf references → links
 *   with `opentracing.ref_type`; a span without references: jaeger's parentId;
 * - logs → events named by their `event` field (else `log`), the other fields as attributes;
 * - `error=true` (or `'true'`) → status ERROR, its message from the first error log's `message` (else `error.kind`);
 * - other tags → attributes: strings and booleans as they are, integers as int64, other numbers as
 *   doubles, anything else as JSON (as jaeger serializes it); a key given twice keeps its last value;
 * - flags: the sampled bit of the span's context.
 */
import { REFERENCE_CHILD_OF, REFERENCE_FOLLOWS_FROM, Tags } from 'opentracing';
import type { JaegerSpanInternals, RawTag } from '../internal-types';
import { GrowableBuffer } from '../growable-buffer';
import { logOnce } from '../logger';
import { plainValue, type TagValue } from './jaeger-span';

// Wire types.
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

// SpanKind (trace.proto): UNSPECIFIED 0, INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5.
const KIND: Record<string, number> = { server: 2, client: 3, producer: 4, consumer: 5 };
const KIND_INTERNAL = 1;
const STATUS_ERROR = 2;

const TWO_16 = 0x10000;
const TWO_32 = 0x100000000;
const INT64_MIN = -(2 ** 63);
const INT64_MAX_EXCLUSIVE = 2 ** 63;

/** A growable buffer with the protobuf writers this encoding needs. */
export class ProtoWriter extends GrowableBuffer {
  constructor(size = 64 * 1024) {
    super(size);
  }

  /** An unsigned varint of a non-negative integer below 2^53. */
  varint(n: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (n >= 0x80) {
      // `% 0x80` and a division, not bit operators: `n` may exceed 32 bits.
      buf[pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  /** int64 as protobuf writes it: negative values and values past 2^53 in two's complement, 10 bytes at most. */
  int64(n: number): void {
    if (n >= 0 && n <= Number.MAX_SAFE_INTEGER) return this.varint(n);
    let v = BigInt.asUintN(64, BigInt(n));
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  fixed32(n: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(n >>> 0, this.pos);
    this.pos += 4;
  }

  fixed64(lo: number, hi: number): void {
    this.ensure(8);
    this.buf.writeUInt32LE(lo >>> 0, this.pos);
    this.buf.writeUInt32LE(hi >>> 0, this.pos + 4);
    this.pos += 8;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** Milliseconds since the epoch (fractional, as jaeger keeps them) as fixed64 nanoseconds, without losing precision past 2^53. */
  epochNanos(ms: number): void {
    const whole = Math.floor(ms);
    const sub = Math.round((ms - whole) * 1e6); // nanoseconds below the millisecond
    // whole * 1e6 + sub overflows 2^53; split whole = q * 2^16 + r.
    const q = Math.floor(whole / TWO_16);
    const r = whole - q * TWO_16;
    const x = q * 1e6; // < 2^53 for any date before the year 285,000
    const xLow = x % TWO_16;
    // x * 2^16 = floor(x / 2^16) * 2^32 + xLow * 2^16; then add r * 1e6 + sub.
    let lo = xLow * TWO_16 + r * 1e6 + sub;
    const hi = Math.floor(x / TWO_16) + Math.floor(lo / TWO_32);
    lo %= TWO_32;
    this.fixed64(lo, hi);
  }

  /** A length-delimited field's tag and a one-byte length slot; `end` fills the slot. */
  begin(field: number): number {
    this.tag(field, LEN);
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the field `begin` opened: writes its length, moving the body when the length needs more than one byte. */
  end(slot: number): void {
    const len = this.pos - slot - 1;
    if (len < 0x80) {
      this.buf[slot] = len;
      return;
    }
    let extra = 1;
    while (len >= 2 ** (7 * (extra + 1))) extra++;
    this.ensure(extra);
    this.buf.copyWithin(slot + 1 + extra, slot + 1, this.pos);
    const end = this.pos + extra;
    this.pos = slot;
    this.varint(len);
    this.pos = end;
  }

  string(field: number, s: string): void {
    this.tag(field, LEN);
    const n = s.length;
    // Room for the longest encoding (3 bytes per UTF-16 unit) and a 5-byte length.
    this.ensure(n * 3 + 5);
    const buf = this.buf;
    if (n < 0x80) {
      // Short strings, most of a span's: ASCII copied in JS (a native
      // Buffer#write costs more than the copy itself at these lengths).
      const start = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
      if (i === n) {
        buf[this.pos] = n;
        this.pos = start + n;
        return;
      }
    }
    const slot = this.pos;
    const written = buf.write(s, slot + 1, 'utf8');
    this.pos = slot + 1 + written;
    this.end(slot);
  }

  /** An id buffer as `size` bytes: left-padded with zeros, or its last `size` bytes. */
  id(field: number, id: Buffer | null | undefined, size: number): void {
    this.tag(field, LEN);
    this.varint(size);
    this.ensure(size);
    const n = id ? Math.min(id.length, size) : 0;
    this.buf.fill(0, this.pos, this.pos + size - n);
    if (n > 0) id!.copy(this.buf, this.pos + size - n, id!.length - n);
    this.pos += size;
  }

  /** The encoded bytes (a copy: the writer's buffer is reused). */
  bytes(): Uint8Array {
    return Uint8Array.prototype.slice.call(this.buf, 0, this.pos);
  }
}

/** AnyValue (common.proto). */
function anyValue(w: ProtoWriter, value: TagValue): void {
  if (typeof value === 'string') {
    w.string(1, value);
  } else if (typeof value === 'boolean') {
    w.tag(2, VARINT);
    w.varint(value ? 1 : 0);
  } else if (Number.isInteger(value) && value >= INT64_MIN && value < INT64_MAX_EXCLUSIVE) {
    w.tag(3, VARINT);
    w.int64(value);
  } else {
    w.tag(4, FIXED64);
    w.double(value);
  }
}

/** One KeyValue in field `field`. */
function keyValue(w: ProtoWriter, field: number, key: string, value: unknown): void {
  const kv = w.begin(field);
  w.string(1, key);
  const v = w.begin(2);
  anyValue(w, plainValue(value));
  w.end(v);
  w.end(kv);
}

/** True when a later entry of `list` has the same key (the last value of a key wins, as in a map). */
function shadowed(list: readonly RawTag[], i: number, key: string): boolean {
  for (let j = i + 1; j < list.length; j++) if (list[j]?.key === key) return true;
  return false;
}

/** The body of a `Resource` message with these attributes, encoded once per reporter and copied into each request. */
export function encodeResource(attributes: Record<string, unknown>): Uint8Array {
  const w = new ProtoWriter(1024);
  for (const key of Object.keys(attributes)) keyValue(w, 1, key, attributes[key]);
  return w.bytes();
}

/** One jaeger span as a `Span` message (field 2 of ScopeSpans). */
function writeSpan(w: ProtoWriter, span: JaegerSpanInternals): void {
  const ctx = span._spanContext;
  const s = w.begin(2);
  w.id(1, ctx.traceId, 16);
  w.id(2, ctx.spanId, 8);

  // References: the first childOf is the parent, the others are links.
  const refs = span._references;
  let links: Array<{ type: string; traceId: Buffer | null; spanId: Buffer | null }> | undefined;
  let parent: Buffer | null | undefined;
  if (refs === undefined || refs.length === 0) {
    parent = ctx.parentId;
  } else {
    for (const ref of refs) {
      let type: string;
      let referenced: { traceId: Buffer | null; spanId: Buffer | null };
      try {
        type = ref.type();
        if (type !== REFERENCE_CHILD_OF && type !== REFERENCE_FOLLOWS_FROM) continue;
        referenced = ref.referencedContext();
      } catch {
        continue; // a reference we cannot read is left out
      }
      if (type === REFERENCE_CHILD_OF && parent === undefined) parent = referenced.spanId;
      else (links ??= []).push({ type, traceId: referenced.traceId, spanId: referenced.spanId });
    }
  }
  if (parent && !isZero(parent)) w.id(4, parent, 8);
  w.string(5, String(span._operationName));

  // Tags: span.kind and error are read here, the rest are attributes.
  const tags = span._tags ?? [];
  let kind = KIND_INTERNAL;
  let error = false;
  const attrsAt: number[] = [];
  for (let i = 0; i < tags.length; i++) {
    const t = tags[i];
    if (!t || typeof t.key !== 'string' || shadowed(tags, i, t.key)) continue;
    if (t.key === Tags.SPAN_KIND) {
      kind = (typeof t.value === 'string' && KIND[t.value]) || KIND_INTERNAL;
      continue;
    }
    if (t.key === Tags.ERROR) error = t.value === true || t.value === 'true';
    attrsAt.push(i);
  }
  w.tag(6, VARINT);
  w.varint(kind);
  w.tag(7, FIXED64);
  w.epochNanos(span._startTime);
  w.tag(8, FIXED64);
  w.epochNanos(span._startTime + (span._duration ?? 0));
  for (const i of attrsAt) keyValue(w, 9, tags[i].key, tags[i].value);

  // Logs → events.
  let errorMessage: unknown;
  let errorLogSeen = false;
  for (const log of span._logs ?? []) {
    const fields = log.fields ?? [];
    let name = 'log';
    for (const f of fields) if (f && f.key === 'event') name = String(f.value);
    const e = w.begin(11);
    w.tag(1, FIXED64);
    w.epochNanos(log.timestamp);
    w.string(2, name);
    let message: unknown;
    let kindOfError: unknown;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (!f || typeof f.key !== 'string' || f.key === 'event' || shadowed(fields, i, f.key)) continue;
      if (f.key === 'message') message = f.value;
      else if (f.key === 'error.kind') kindOfError = f.value;
      keyValue(w, 3, f.key, f.value);
    }
    w.end(e);
    if (name === 'error' && !errorLogSeen) {
      errorLogSeen = true;
      errorMessage = message ?? kindOfError;
    }
  }

  if (links !== undefined) {
    for (const link of links) {
      const l = w.begin(13);
      w.id(1, link.traceId, 16);
      w.id(2, link.spanId, 8);
      keyValue(w, 4, 'opentracing.ref_type', link.type);
      w.tag(6, FIXED32);
      w.fixed32(ctx.flags & 1);
      w.end(l);
    }
  }

  if (error) {
    const st = w.begin(15);
    if (errorMessage !== undefined) w.string(2, String(plainValue(errorMessage)));
    w.tag(3, VARINT);
    w.varint(STATUS_ERROR);
    w.end(st);
  }
  w.tag(16, FIXED32);
  w.fixed32(ctx.flags & 1);
  w.end(s);
}

function isZero(id: Buffer): boolean {
  for (let i = 0; i < id.length; i++) if (id[i] !== 0) return false;
  return true;
}

export interface EncodedBatch {
  bytes: Uint8Array;
  /** Spans encoded. */
  spans: number;
  /** Spans left out because they could not be read. */
  failed: number;
}

/**
 * An `ExportTraceServiceRequest` of `spans`, with the resource already
 * encoded (`resource`: a Resource message's body, from `encodeResource`).
 */
export function encodeTraceRequest(spans: readonly JaegerSpanInternals[], resource: Uint8Array, scopeName: string, w: ProtoWriter = new ProtoWriter()): EncodedBatch {
  w.pos = 0;
  let failed = 0;
  const rs = w.begin(1); // ResourceSpans
  w.tag(1, LEN);
  w.varint(resource.length);
  w.ensure(resource.length);
  w.buf.set(resource, w.pos);
  w.pos += resource.length;
  const ss = w.begin(2); // ScopeSpans
  const scope = w.begin(1);
  w.string(1, scopeName);
  w.end(scope);
  for (const span of spans) {
    const at = w.pos;
    try {
      writeSpan(w, span);
    } catch (err) {
      w.pos = at;
      failed++;
      logOnce('otlp-encode', 'otlp exporter: a span could not be encoded; dropped', err);
    }
  }
  w.end(ss);
  w.end(rs);
  return { bytes: w.bytes(), spans: spans.length - failed, failed };
}
