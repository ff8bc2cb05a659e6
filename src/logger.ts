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
 * Runs a user hook; a hook that throws is contained and logged once per site.
 * A hook may be async (TypeScript lets an async function stand where the
 * type says `=> void`): a promise it returns gets a rejection handler, so a
 * rejection is logged once per site the same way and never reaches the
 * process as an unhandled rejection. Returns nothing, and never waits for
 * the hook: hooks only observe.
 */
export function safeCall<A extends unknown[]>(
  site: string,
  fn: ((...args: A) => unknown) | null | undefined,
  ...args: A
): void {
  if (typeof fn !== 'function') return;
  try {
    const result = fn(...args);
    // Native promises only, as in traced.ts: calling `then` on another thenable may
    // start work (lazy query builders run on `then`), and only a native promise's
    // rejection ends the process. Promise.prototype.then: the promise's own `then` may be replaced.
    if (result instanceof Promise) {
      Promise.prototype.then.call(result, undefined, (err: unknown) => logOnce(`hook:${site}`, `${site} rejected; the call goes on`, err));
    }
  } catch (err) {
    logOnce(`hook:${site}`, `${site} threw; the call goes on`, err);
  }
}

/** For tests: forget which problems were already logged. */
export function resetLogOnce(): void {
  seen.clear();
}
