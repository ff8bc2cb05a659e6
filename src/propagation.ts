/**
 * Where trace context may go. Trace headers make the receiver record (the
 * sampled flag) and baggage carries data, so a user can restrict both to the
 * hosts they trust (`propagateTo`) and switch baggage off (`propagateBaggage`).
 */
import { BAGGAGE_HEADER_PREFIXES } from './constants';

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
