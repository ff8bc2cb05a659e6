/**
 * The library's own diagnostics. Everything goes to Node's debug logger
 * (`NODE_DEBUG=opentracing-instrumentation`), never to the application's
 * console, and each distinct problem is logged once: a broken hook called a
 * million times must not flood the log or cost a string format per call.
 */
import { debuglog } from 'util';
import { DEBUG_NAME } from './constants';

const debug = debuglog(DEBUG_NAME);
const seen = new Set<string>();
const MAX_KEYS = 1000;

/** Logs `message` (and the error) the first time `key` is seen. */
export function logOnce(key: string, message: string, err?: unknown): void {
  if (seen.has(key)) return;
  if (seen.size < MAX_KEYS) seen.add(key);
  try {
    debug('%s%s', message, err === undefined ? '' : `: ${describe(err)}`);
  } catch {
    // a logger must never throw into the patched path
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.stack || `${err.name}: ${err.message}`;
  try {
    return String(err);
  } catch {
    return '[unprintable]';
  }
}

/**
 * Runs a user hook; a hook that throws, or returns a promise that rejects, is
 * contained and logged once per site.
 * Returns nothing: hooks only observe.
 */
export function safeCall<A extends unknown[]>(
  site: string,
  fn: ((...args: A) => unknown) | null | undefined,
  ...args: A
): void {
  if (typeof fn !== 'function') return;
  try {
    const result = fn(...args) as unknown;
    // An async hook: its rejection is contained too (no unhandled rejection reaches the process).
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(undefined, (err: unknown) => logOnce(`hook:${site}`, `${site} rejected; the call goes on`, err));
    }
  } catch (err) {
    logOnce(`hook:${site}`, `${site} threw; the call goes on`, err);
  }
}

/** For tests: forget which problems were already logged. */
export function resetLogOnce(): void {
  seen.clear();
}
