/**
 * The secret canary. Tests use CANARY wherever an application would put a
 * secret (passwords, tokens, parameter values, Authorization headers...).
 * Every span finished by a test tracer is scanned (operation name, tag values,
 * log fields); a root hook fails the run if the canary was ever found. Tests
 * that opt into capturing values on purpose use another value, not CANARY.
 */
import { inspect } from 'util';

export const CANARY = 'Canary-5ecret-9f27c1';

export interface Leak {
  operationName: string;
  where: string;
}

const leaks: Leak[] = [];
let scanned = 0;

interface ScannableSpan {
  operationName?: string;
  _tags?: Array<{ key: string; value: unknown }>;
  _logs?: Array<{ fields: Array<{ key: string; value: unknown }> }>;
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') {
    let out = '';
    // What a reader in the process sees, and what jaeger-client sends (thrift.js: JSON.stringify of object fields).
    for (const render of [() => inspect(value, { depth: 4, breakLength: Infinity }), () => String(value), () => JSON.stringify(value)]) {
      try {
        out += render() ?? '';
      } catch {
        // an unprintable value cannot carry the canary that way
      }
    }
    return out;
  }
  return String(value);
}

/** The places in `span` where `secret` occurs. */
export function findSecret(span: ScannableSpan, secret: string = CANARY): string[] {
  const found: string[] = [];
  if (text(span.operationName).includes(secret)) found.push('operationName');
  for (const t of span._tags ?? []) if (text(t.value).includes(secret)) found.push(`tag ${t.key}`);
  (span._logs ?? []).forEach((log, i) => {
    for (const f of log.fields) if (text(f.value).includes(secret)) found.push(`log[${i}] ${f.key}`);
  });
  return found;
}

/** Called for every span a test tracer reports. */
export function scanForCanary(span: ScannableSpan): void {
  scanned++;
  for (const where of findSecret(span)) leaks.push({ operationName: String(span.operationName), where });
}

export function canaryReport(): { scanned: number; leaks: Leak[] } {
  return { scanned, leaks: [...leaks] };
}
