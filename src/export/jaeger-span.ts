/**
 * Reading a finished jaeger-client span (dist/src/span.js, span_context.js)
 * for the exporters of this folder: ids as hex, times, tags and logs as
 * plain values. Shapes in ../internal-types.ts.
 */
import type { JaegerSpanInternals, RawTag } from '../internal-types';

export type TagValue = string | number | boolean;

/** Lower-case hex of an id buffer, left-padded with zeros to `chars` (the last `chars` if longer). */
export function hexId(id: Buffer | null | undefined, chars: number): string {
  if (!id || id.length === 0) return '0'.repeat(chars);
  const hex = id.toString('hex');
  return hex.length >= chars ? hex.slice(hex.length - chars) : hex.padStart(chars, '0');
}

/** True for an absent or all-zero id. */
export function isZeroId(id: Buffer | null | undefined): boolean {
  if (!id) return true;
  for (let i = 0; i < id.length; i++) if (id[i] !== 0) return false;
  return true;
}

/** A tag or log value as an attribute: strings, numbers, booleans as they are; anything else as JSON (as jaeger serializes it). */
export function plainValue(value: unknown): TagValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value.toString();
    case 'undefined':
      return 'undefined';
    default:
      try {
        return JSON.stringify(value) ?? String(value);
      } catch {
        try {
          return String(value);
        } catch {
          return '[unserializable]';
        }
      }
  }
}

export function tagsOf(raw: readonly RawTag[] | undefined): Record<string, TagValue> {
  const out: Record<string, TagValue> = {};
  if (!raw) return out;
  for (const t of raw) if (t && typeof t.key === 'string') out[t.key] = plainValue(t.value);
  return out;
}
