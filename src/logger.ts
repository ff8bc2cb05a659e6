/**
 * The library's own diagnostics: one logger with levels, everything on
 * stderr prefixed `opentracing-instrumentation:`, never on the application's
 * console. `OPENTRACING_INSTRUMENTATION_LOG_LEVEL` = `debug` | `info` |
 * `warn` (the default) | `error` | `silent`; `NODE_DEBUG=opentracing-instrumentation`
 * turns debug on as well. Each distinct problem is logged once: a broken hook
 * called a million times must not flood the log or cost a string format per call.
 */
import { debuglog } from 'util';
import { DEBUG_NAME } from './constants';

export const LOG_LEVEL_ENV = 'OPENTRACING_INSTRUMENTATION_LOG_LEVEL';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];
const DEFAULT_LEVEL: LogLevel = 'warn';

/** The rank of each level: a message is written when its rank is at least the threshold's. */
const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

let threshold: number | undefined;
/** The value of the level variable that was not understood (warned about by env-config.ts). */
let rejectedLevel: string | undefined;

/** Reads the level from the environment (again): for startup and for tests. */
export function refreshLogLevel(env: NodeJS.ProcessEnv = process.env): void {
  const raw = env[LOG_LEVEL_ENV];
  const wanted = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  rejectedLevel = undefined;
  let level: LogLevel = DEFAULT_LEVEL;
  if ((LOG_LEVELS as readonly string[]).includes(wanted)) level = wanted as LogLevel;
  else if (wanted !== '') rejectedLevel = raw;
  let rank = RANK[level];
  // NODE_DEBUG is read by Node once, at startup (util.debuglog caches it per name).
  if (env === process.env && debuglog(DEBUG_NAME).enabled) rank = RANK.debug;
  else if (env !== process.env && nodeDebugNames(env.NODE_DEBUG).includes(DEBUG_NAME)) rank = RANK.debug;
  threshold = rank;
}

function nodeDebugNames(value: string | undefined): string[] {
  return (value ?? '').split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
}

/** The level variable's value when it was not one of the levels (the default is used instead). */
export function rejectedLogLevel(): string | undefined {
  if (threshold === undefined) refreshLogLevel();
  return rejectedLevel;
}

/** Whether messages of `level` are written now. */
export function isLevelEnabled(level: Exclude<LogLevel, 'silent'>): boolean {
  if (threshold === undefined) refreshLogLevel();
  return RANK[level] >= threshold!;
}

function write(level: Exclude<LogLevel, 'silent'>, message: string, err?: unknown): void {
  if (!isLevelEnabled(level)) return;
  try {
    const tail = err === undefined ? '' : `: ${describe(err)}`;
    process.stderr.write(`${DEBUG_NAME}: ${level === 'warn' || level === 'info' ? '' : `${level}: `}${message}${tail}\n`);
  } catch {
    // a logger must never throw into the patched path
  }
}

export function debug(message: string, err?: unknown): void {
  write('debug', message, err);
}
export function info(message: string): void {
  write('info', message);
}
export function warn(message: string, err?: unknown): void {
  write('warn', message, err);
}
export function error(message: string, err?: unknown): void {
  write('error', message, err);
}

const seen = new Set<string>();
const MAX_KEYS = 1000;

/** True the first time `key` is seen (remembered for up to 1000 keys). */
function firstTime(key: string): boolean {
  if (seen.has(key)) return false;
  if (seen.size < MAX_KEYS) seen.add(key);
  return true;
}

/**
 * Logs `message` (and the error) the first time `key` is seen, at debug
 * level; keys of user hooks (`hook:...`, from `safeCall`) at warn level: a
 * user's hook that throws is the user's to know about.
 */
export function logOnce(key: string, message: string, err?: unknown): void {
  if (!firstTime(key)) return;
  write(key.startsWith('hook:') ? 'warn' : 'debug', message, err);
}

/** Logs `message` at warn level the first time `key` is seen. */
export function warnOnce(key: string, message: string, err?: unknown): void {
  if (firstTime(key)) write('warn', message, err);
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
 * jaeger-client's `logger` option (`{ info, error }`): its info lines at
 * info level; its errors (a send that failed, a sampling poll that failed)
 * as one warning per kind of failure, whatever ids, sizes or counts the
 * message holds. Spans logged by `JAEGER_REPORTER_LOG_SPANS=true` are
 * written whatever the level: the user asked for them.
 */
export const jaegerLogger = {
  info(msg: string): void {
    const text = String(msg);
    if (text.startsWith('Reporting span ')) {
      try {
        process.stderr.write(`${DEBUG_NAME}: jaeger-client: ${text}\n`);
      } catch {
        // never throw into the tracer
      }
      return;
    }
    info(`jaeger-client: ${text}`);
  },
  error(msg: string): void {
    const text = String(msg);
    // The reporter repeats the sender's error after its own prefix: one failure, one kind.
    const kind = text.replace(/^Failed to flush spans in reporter: /, '').replace(/[0-9a-f]{8,}|\d+/gi, '#').slice(0, 160);
    warnOnce(`jaeger:${kind}`, `jaeger-client: ${text} (logged once per kind of failure)`);
  },
};

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
