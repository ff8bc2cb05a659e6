/**
 * `db.statement` of a Redis command, shared by the Redis hooks: the command
 * name upper case, its subcommand for container commands (`CONFIG GET`), its
 * first key, and a count of the other arguments, whose values stay hidden
 * (`SET session:42 [1 other argument]`). `AUTH` and `HELLO` never show an
 * argument, whatever the serializer. The node-redis hook locates keys by
 * position (`positionalFirstKey`); the ioredis hook asks its own command
 * table, through the Command it hands over (`Command.getKeys()`).
 */
import { OPERATION_PREFIX } from './constants';
import { redactErrorFields, redactValues } from './redact';
import { truncate } from './sql';

const DEFAULT_MAX_STATEMENT_LENGTH = 1024;
const MAX_KEY_LENGTH = 256;

/** Commands whose arguments are never recorded, whatever the serializer: they carry credentials. */
export const SECRET_COMMANDS: ReadonlySet<string> = new Set(['auth', 'hello']);

/** Container commands whose first argument is a subcommand worth showing (`CONFIG GET`, `CLIENT SETNAME`). */
const CONTAINER_COMMANDS = new Set([
  'acl', 'client', 'cluster', 'command', 'config', 'debug', 'function', 'latency', 'memory', 'module',
  'object', 'pubsub', 'script', 'slowlog', 'xgroup', 'xinfo',
]);

/** Commands without a key (or whose first arguments are not keys: channels, patterns, scripts). */
const KEYLESS = new Set([
  'asking', 'auth', 'bgrewriteaof', 'bgsave', 'dbsize', 'discard', 'echo', 'exec', 'failover', 'flushall', 'flushdb',
  'hello', 'info', 'keys', 'lastsave', 'lolwut', 'migrate', 'monitor', 'multi', 'ping', 'psubscribe', 'publish',
  'punsubscribe', 'quit', 'randomkey', 'readonly', 'readwrite', 'replicaof', 'reset', 'role', 'save', 'scan', 'select',
  'shutdown', 'slaveof', 'spublish', 'ssubscribe', 'subscribe', 'sunsubscribe', 'swapdb', 'sync', 'psync', 'time',
  'unsubscribe', 'unwatch', 'wait', 'waitaof',
]);

/** Commands whose keys follow a `numkeys` argument at this index of the arguments (after the name). */
const NUMKEYS_AT: Readonly<Record<string, number>> = {
  eval: 1, eval_ro: 1, evalsha: 1, evalsha_ro: 1, fcall: 1, fcall_ro: 1,
  lmpop: 0, zmpop: 0, sintercard: 0, zintercard: 0, zdiff: 0, zinter: 0, zunion: 0, blmpop: 1, bzmpop: 1,
};

/** What the statement options of a Redis patch hold. */
export interface RedisStatementOptions {
  statementSerializer?: ((command: string, args: ReadonlyArray<unknown>) => string) | null;
  maxStatementLength?: number;
}

/**
 * A key locator: the command's first key among `args` (arguments after the
 * name), if it has one. `command` is the client's own command object, when
 * the caller of `commandStatement` passed one (ioredis' Command knows its keys).
 */
export type FirstKey = (name: string, args: ReadonlyArray<unknown>, command: unknown) => unknown;

export function maxStatementLength(options: RedisStatementOptions): number {
  const max = options.maxStatementLength;
  return typeof max === 'number' && max > 0 ? Math.floor(max) : DEFAULT_MAX_STATEMENT_LENGTH;
}

/** A key or subcommand as text (cut at 256 characters); undefined for anything else. */
export function argText(arg: unknown): string | undefined {
  if (typeof arg === 'string') return truncate(arg, MAX_KEY_LENGTH);
  if (typeof arg === 'number') return String(arg);
  if (Buffer.isBuffer(arg)) return truncate(arg.toString('utf8', 0, MAX_KEY_LENGTH + 1), MAX_KEY_LENGTH);
  return undefined;
}

/**
 * The first key of a command sent as a plain RESP array, for clients with no
 * command table at hand (node-redis): the first argument, except for keyless
 * commands, container commands, `numkeys` commands and `XREAD`'s `STREAMS`.
 */
export function positionalFirstKey(name: string, args: ReadonlyArray<unknown>): unknown {
  const lower = name.toLowerCase();
  if (KEYLESS.has(lower) || CONTAINER_COMMANDS.has(lower) || args.length === 0) return undefined;
  const numkeysAt = NUMKEYS_AT[lower];
  if (numkeysAt !== undefined) return Number(args[numkeysAt]) > 0 ? args[numkeysAt + 1] : undefined;
  if (lower === 'xread' || lower === 'xreadgroup') {
    const at = args.findIndex((a) => typeof a === 'string' && a.toUpperCase() === 'STREAMS');
    return at >= 0 ? args[at + 1] : undefined;
  }
  if (lower === 'bitop') return args[1];
  return args[0];
}

function otherArguments(n: number): string {
  return n === 1 ? '[1 other argument]' : `[${n} other arguments]`;
}

/** What a statement needs to know of a command name, worked out once per name. */
interface NameInfo {
  /** The span's operation name: `redis:GET`. */
  readonly operationName: string;
  readonly lower: string;
  readonly upper: string;
  readonly secret: boolean;
  readonly container: boolean;
}

/**
 * Command names seen so far. The names a client sends are few (its command
 * table), so this stays small; a name beyond the bound (an application
 * sending made-up names through `call`) is worked out on each use.
 */
const NAMES = new Map<string, NameInfo>();
const MAX_NAMES = 1024;

/** The cased forms and kind of the command `name`, as a Redis hook sends it. */
export function nameInfo(name: string): NameInfo {
  let info = NAMES.get(name);
  if (info === undefined) {
    const lower = name.toLowerCase();
    const upper = name.toUpperCase();
    info = { operationName: OPERATION_PREFIX.REDIS + upper, lower, upper, secret: SECRET_COMMANDS.has(lower), container: CONTAINER_COMMANDS.has(lower) };
    if (NAMES.size < MAX_NAMES) NAMES.set(name, info);
  }
  return info;
}

/** The default statement: `SET session:42 [1 other argument]`; `CONFIG GET ...` when `compact`; `AUTH`. */
export function defaultStatement(name: string, args: ReadonlyArray<unknown>, firstKey: FirstKey, compact: boolean, command?: unknown): string {
  const info = nameInfo(name);
  if (info.secret) return info.upper;
  // Built by concatenation: this runs once per traced command.
  let text = info.upper;
  let shown = 0;
  if (info.container && args.length > 0) {
    const sub = argText(args[0]);
    if (sub !== undefined && /^[A-Za-z-]{1,32}$/.test(sub)) {
      text += ' ' + sub.toUpperCase();
      shown++;
    }
  }
  let key: string | undefined;
  try {
    key = argText(firstKey(name, args, command));
  } catch {
    key = undefined; // a command the locator does not know: its arguments stay hidden
  }
  if (key !== undefined) {
    text += ' ' + key;
    shown++;
  }
  const others = args.length - shown;
  if (others > 0) text += ' ' + (compact ? '...' : otherArguments(others));
  return text;
}

/** db.statement of one command: the user's serializer (never for AUTH/HELLO), else the default. */
export function commandStatement(
  name: string,
  args: ReadonlyArray<unknown>,
  options: RedisStatementOptions,
  firstKey: FirstKey,
  compact: boolean,
  patch: string,
  log: (key: string, message: string, err: unknown) => void,
  command?: unknown,
): string {
  const serializer = options.statementSerializer;
  if (typeof serializer === 'function') {
    const info = nameInfo(name);
    if (!info.secret) {
      try {
        const s = serializer(info.lower, args);
        if (typeof s === 'string') return s;
      } catch (err) {
        log(`${patch}:serializer`, `the ${patch} statementSerializer threw; using the default`, err);
      }
    }
  }
  return defaultStatement(name, args, firstKey, compact, command);
}

/**
 * A batch's statement, `SET k1 ...; GET k2`: the statements of its commands
 * (`statementOf` gives undefined for one left out, as MULTI/EXEC wrappers)
 * until `max` characters are passed, then `; [n more]` for the commands not
 * reached. The caller cuts the text at `max`.
 */
export function batchStatement<T>(commands: ReadonlyArray<T>, statementOf: (command: T) => string | undefined, max: number): string {
  const parts: string[] = [];
  let length = 0;
  let i = 0;
  for (; i < commands.length && length <= max; i++) {
    const s = statementOf(commands[i]);
    if (s === undefined) continue;
    parts.push(s);
    length += s.length + 2;
  }
  return parts.join('; ') + (i < commands.length ? `; [${commands.length - i} more]` : '');
}

/** Redis quotes the arguments of a command it does not know: `ERR unknown command 'x', with args beginning with: 'v'`. */
const QUOTED_ARGS = /, with args beginning with:[^\n]*/;

/**
 * A Redis error reply as logged on a span: the arguments Redis quotes in an
 * unknown-command message are dropped (they may be values or credentials).
 * `extra` adds fields to replace (ioredis' `command`).
 */
export function loggableRedisError(err: unknown, extra?: Record<string, unknown>): unknown {
  if (err === null || typeof err !== 'object') return err;
  const e = err as { message?: unknown; stack?: unknown };
  const fields: Record<string, unknown> = { ...extra };
  if (typeof e.message === 'string' && QUOTED_ARGS.test(e.message)) {
    fields.message = e.message.replace(QUOTED_ARGS, '');
    if (typeof e.stack === 'string') fields.stack = e.stack.replace(QUOTED_ARGS, '');
  }
  return Object.keys(fields).length > 0 ? redactErrorFields(err, fields) : err;
}

/** The texts of a command's arguments, as Redis may echo them in an error. */
function argumentTexts(args: unknown): string[] {
  const out: string[] = [];
  if (!Array.isArray(args)) return out;
  for (const arg of args.slice(0, 200)) {
    if (typeof arg === 'string') out.push(arg);
    else if (typeof arg === 'number' || typeof arg === 'bigint') out.push(String(arg));
    else if (Buffer.isBuffer(arg)) out.push(arg.toString('utf8'));
  }
  return out;
}

/** `text` without the arguments Redis echoes; in a stack, only in its head (the message). */
function withoutArguments(text: string, args: readonly string[]): string {
  const frames = text.indexOf('\n    at ');
  const head = frames === -1 ? text : text.slice(0, frames);
  const redacted = redactValues(head.replace(QUOTED_ARGS, ''), args);
  return frames === -1 ? redacted : redacted + text.slice(frames);
}

/**
 * An error that carries its command as `command: { name, args }` (ioredis
 * sets it on the errors of server replies, DataHandler.js: args that hold
 * values and, for AUTH/HELLO, credentials), as logged on a span: the command
 * keeps its name only, and the message drops the arguments Redis echoes:
 * quoted in an unknown command or subcommand, as the whole message of a
 * script's `redis.error_reply(ARGV[1])`, an ACL rule in `ACL SETUSER`'s.
 */
export function loggableCommandError(err: unknown): unknown {
  if (err === null || typeof err !== 'object') return err;
  const e = err as { command?: unknown; message?: unknown; stack?: unknown };
  const fields: Record<string, unknown> = {};
  let args: string[] = [];
  if (e.command !== null && typeof e.command === 'object') {
    fields.command = { name: (e.command as { name?: unknown }).name };
    args = argumentTexts((e.command as { args?: unknown }).args);
  }
  if (typeof e.message === 'string') {
    const message = withoutArguments(e.message, args);
    if (message !== e.message) {
      fields.message = message;
      if (typeof e.stack === 'string') fields.stack = withoutArguments(e.stack, args);
    }
  }
  return Object.keys(fields).length > 0 ? redactErrorFields(err, fields) : err;
}
