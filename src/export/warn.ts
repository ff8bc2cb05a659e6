/**
 * One warning line on stderr per problem, for failed exports.
 *
 * Stand-in until the package's levelled logger (src/logger.ts, `warn`) is
 * merged: route `warnOnce` through it then. Kept tiny and separate so that
 * the change is one import.
 */
const seen = new Set<string>();
const MAX_KEYS = 100;

/** Writes `opentracing-instrumentation: <message>` to stderr the first time `key` is seen. Never throws. */
export function warnOnce(key: string, message: string): void {
  if (seen.has(key)) return;
  if (seen.size < MAX_KEYS) seen.add(key);
  try {
    process.stderr.write(`opentracing-instrumentation: ${message}\n`);
  } catch {
    // a diagnostic must never break the application
  }
}

/** For tests: forget the warnings already written. */
export function resetWarnings(): void {
  seen.clear();
}
