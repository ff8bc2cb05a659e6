/**
 * What the `mysql2` and `mysql` hooks share: the span of one statement
 * (operation name, tags, the error as logged), and the caller's async
 * context carried into the driver's callbacks and events.
 *
 * Both drivers run a command's callback and events from the socket's data
 * handler, that is in the async context of whoever opened the connection (a
 * pooled connection: whichever caller made the pool open it), and a pool
 * hands a waiting caller its connection from the context of whoever released
 * one. So each traced command gets the caller's context (an AsyncResource
 * made at the call) for its callback and for every event it emits.
 */
import { AsyncResource } from 'async_hooks';
import type { EventEmitter } from 'events';
import { startCall, type Call } from './call';
import { Handoff } from './handoff';
import { activeOuterClient, isSuppressed, runWithOuterClient, type OuterClient } from './context';
import { logOnce } from './logger';
import { OPERATION_PREFIX, REDACTED, TAG } from './constants';
import type { MysqlCommand, MysqlConnectionConfig } from './internal-types';
import { optionsOf, type MysqlOptions, type MysqlQuery } from './options';
import { redactErrorFields } from './redact';
import { addPeerTags, type TagMap } from './span';
import { maskedStatement, maskSqlLiterals, memoByText, serializeSqlParameters, sqlVerb, statementMaxLength, truncate } from './sql';

export type MysqlPatch = 'mysql' | 'mysql2';

const DB_TYPE_SQL = 'sql';
/** Operation name when the statement has no leading keyword. */
const UNKNOWN_VERB = 'QUERY';

export type Callback = (this: unknown, ...args: unknown[]) => unknown;
export type Method = (this: unknown, ...args: unknown[]) => unknown;

/** Verbs and masked texts of recent statements, remembered per text (bounded: `memoByText`). */
const verbs = memoByText((text) => sqlVerb(text) || UNKNOWN_VERB);
const maskedTexts = memoByText((text) => maskSqlLiterals(text, 'mysql'));

function verbOf(text: string | undefined): string {
  return text === undefined ? UNKNOWN_VERB : verbs(text);
}

/** `db.statement`: the text with its literals masked, unless the user asked for the raw text; cut at `max`. */
function statementOf(text: string, options: MysqlOptions, max: number): string {
  return options.recordRawStatement === true ? truncate(text, max) : maskedStatement(text, max, maskedTexts);
}

/** The connection tags of a settings object, with the values they were made from (`changeUser` changes them). */
interface ConnectionTagsEntry {
  database: unknown;
  user: unknown;
  socketPath: unknown;
  host: unknown;
  port: unknown;
  tags: TagMap;
}

const connectionTagCache = new WeakMap<object, ConnectionTagsEntry>();

/** `db.instance`, `db.user` and `peer.*` from a connection's (or a pool's) settings; a Unix socket gives no peer. */
export function connectionTags(tags: TagMap, config: MysqlConnectionConfig | undefined): void {
  if (config === undefined || config === null) return;
  if (typeof config !== 'object') return computeConnectionTags(tags, config);
  const entry = connectionTagCache.get(config);
  if (entry !== undefined && entry.database === config.database && entry.user === config.user && entry.socketPath === config.socketPath && entry.host === config.host && entry.port === config.port) {
    Object.assign(tags, entry.tags);
    return;
  }
  const own: TagMap = {};
  computeConnectionTags(own, config);
  connectionTagCache.set(config, { database: config.database, user: config.user, socketPath: config.socketPath, host: config.host, port: config.port, tags: own });
  Object.assign(tags, own);
}

function computeConnectionTags(tags: TagMap, config: MysqlConnectionConfig): void {
  if (typeof config.database === 'string' && config.database) tags[TAG.DB_INSTANCE] = config.database;
  if (typeof config.user === 'string' && config.user) tags[TAG.DB_USER] = config.user;
  if (typeof config.socketPath === 'string' && config.socketPath) return;
  const host = typeof config.host === 'string' ? config.host : undefined;
  const port = typeof config.port === 'number' || typeof config.port === 'string' ? config.port : undefined;
  addPeerTags(tags, host, port);
}

/** The statement text of the forms both drivers accept: a string, `{ sql }`, or a command object. */
export function textOf(sql: unknown): string | undefined {
  if (typeof sql === 'string') return sql;
  if (sql !== null && typeof sql === 'object') {
    const text = (sql as { sql?: unknown }).sql;
    if (typeof text === 'string') return text;
  }
  return undefined;
}

/**
 * Starts the span of one statement, from the current span, or returns
 * undefined when it is not traced (see `startCall`).
 */
export function startStatement(patch: MysqlPatch, config: MysqlConnectionConfig | undefined, text: string | undefined, values: unknown): Call | undefined {
  const options = optionsOf(patch);
  const statement: Statement = { config, text, values, options };
  return startCall<MysqlQuery, unknown, Statement>(
    patch,
    {
      operationName: OPERATION_PREFIX.MYSQL + verbOf(text),
      tags: statementTags,
      request: statementRequest,
      loggableError: (err) => loggableError(err, text, values, options),
    },
    statement,
  );
}

/** What a statement's span is made from (the subject of its `startCall`: the spec's functions are shared, not made per call). */
interface Statement {
  readonly config: MysqlConnectionConfig | undefined;
  readonly text: string | undefined;
  readonly values: unknown;
  readonly options: MysqlOptions;
}

function statementTags(tags: TagMap, { config, text, values, options }: Statement): void {
  tags[TAG.DB_TYPE] = DB_TYPE_SQL;
  connectionTags(tags, config);
  const max = statementMaxLength(options);
  if (text !== undefined) tags[TAG.DB_STATEMENT] = statementOf(text, options, max);
  if (options.captureParameters === true) {
    const parameters = serializeSqlParameters(values, max);
    if (parameters !== undefined) tags[TAG.DB_PARAMETERS] = parameters;
  }
}

function statementRequest({ text, values }: Statement): MysqlQuery {
  return { sql: text, values };
}

/**
 * A callback that runs `cb` in `scope` (the caller's context), after ending
 * `call` with its `(err, results)`. `onDone` runs first (a pool call marks
 * itself over). Keeps `length`.
 */
export function finishingCallback(call: Call, scope: AsyncResource, cb: Callback, onDone?: () => void): Callback {
  // The usual arities are declared, not defined after (`defineProperty` on a fresh function is most of its cost).
  switch (cb.length) {
    case 2:
      return function (this: unknown, _err: unknown, _results: unknown): unknown {
        return scope.runInAsyncScope(finishThenCall, this, call, cb, onDone, arguments);
      };
    case 3:
      return function (this: unknown, _err: unknown, _results: unknown, _fields: unknown): unknown {
        return scope.runInAsyncScope(finishThenCall, this, call, cb, onDone, arguments);
      };
    case 1:
      return function (this: unknown, _err: unknown): unknown {
        return scope.runInAsyncScope(finishThenCall, this, call, cb, onDone, arguments);
      };
    case 0:
      return function (this: unknown): unknown {
        return scope.runInAsyncScope(finishThenCall, this, call, cb, onDone, arguments);
      };
  }
  const wrapped = function (this: unknown): unknown {
    return scope.runInAsyncScope(finishThenCall, this, call, cb, onDone, arguments);
  };
  Object.defineProperty(wrapped, 'length', { value: cb.length, configurable: true });
  return wrapped;
}

/** The body of a `finishingCallback`, shared (no closure per call): `args` are the callback's arguments. */
function finishThenCall(this: unknown, call: Call, cb: Callback, onDone: (() => void) | undefined, args: IArguments): unknown {
  if (onDone !== undefined) onDone();
  call.finish(args[0], args[1], true);
  return cb.apply(this, args as unknown as unknown[]);
}

/**
 * Makes every event `command` emits (`fields`, `result`, `end`, `error`, and
 * through them a `.stream()`'s data) run in `scope`: the command's own
 * `emit`, called in the caller's context. Non-enumerable, so the command
 * looks the same to whoever walks its fields.
 */
export function emitInScope(command: MysqlCommand, scope: AsyncResource): void {
  const original = command.emit;
  if (typeof original !== 'function') return;
  Object.defineProperty(command, 'emit', {
    value: function emit(this: unknown): boolean {
      return scope.runInAsyncScope(original, this, ...(arguments as unknown as unknown[])) as boolean;
    },
    configurable: true,
    writable: true,
    enumerable: false,
  });
}

/**
 * Ends `call` when a command used without a callback ends (`end`) or fails
 * (`error`, observed through `errorMonitor`); the response hook gets
 * undefined (the rows went to the application's listeners).
 */
export function finishOnEnd(call: Call, command: MysqlCommand): void {
  call.emitter(command as unknown as EventEmitter, 'end', () => undefined);
}

/** A new scope for the caller's context, to hand to `finishingCallback` and `emitInScope`. */
export function callerScope(): AsyncResource {
  return new AsyncResource('opentracing-instrumentation.mysql');
}

// ---------------------------------------------------------------------------
// Connection and pool calls

/** What differs between the two drivers for the calls below. */
export interface Driver {
  readonly patch: MysqlPatch;
  /** Where a command keeps its callback: mysql2's `onResult`, mysql's `_callback`. */
  readonly callbackKey: 'onResult' | '_callback';
  /**
   * A call in the emitter form is about to run on `connection`; `unwatch`
   * when its command has ended. For a driver that can leave such a command
   * without any event (mysql2 on a connection that dies).
   */
  watch?(connection: unknown, call: Call): void;
  unwatch?(connection: unknown, call: Call): void;
}

/** A `pool.query`/`pool.execute` in progress: the connection call it makes adopts its span. */
interface PoolCall {
  readonly driver: Driver;
  readonly call: Call;
  readonly scope: AsyncResource;
  readonly hasCallback: boolean;
  /** The connection call has taken the span. */
  adopted: boolean;
  /** The span observes its command (its events run in the caller's context). */
  attached: boolean;
}

const poolCalls = new WeakMap<OuterClient, PoolCall>();

export function isCommand(value: unknown): value is MysqlCommand {
  return value !== null && typeof value === 'object' && typeof (value as MysqlCommand).emit === 'function' && typeof (value as MysqlCommand).on === 'function';
}

/** The values of `query(sql, values, cb)`, as both drivers read them. */
export function valuesOf(sql: unknown, second: unknown): unknown {
  if (second !== undefined && typeof second !== 'function') return second;
  return sql !== null && typeof sql === 'object' ? (sql as { values?: unknown }).values : undefined;
}

/** Where the callback is: `(sql, cb)`, `(sql, values, cb)`; -1 for none. */
export function callbackIndex(args: IArguments): number {
  if (typeof args[1] === 'function') return 1;
  if (typeof args[2] === 'function') return 2;
  return -1;
}

/** Observes `command` for `call`: its events in the caller's context, and its end when there is no callback. */
function attach(driver: Driver, call: Call, scope: AsyncResource, command: unknown, hasCallback: boolean, connection: unknown, onDone?: () => void): void {
  if (!isCommand(command)) {
    if (!hasCallback) call.finish(undefined, undefined, true); // nothing to wait for
    return;
  }
  emitInScope(command, scope);
  if (hasCallback) return;
  finishOnEnd(call, command);
  command.once('end', () => {
    if (connection !== undefined) driver.unwatch?.(connection, call);
    if (onDone !== undefined) onDone();
  });
}

function safeAttach(driver: Driver, call: Call, scope: AsyncResource, command: unknown, hasCallback: boolean, connection: unknown, onDone?: () => void): void {
  try {
    attach(driver, call, scope, command, hasCallback, connection, onDone);
  } catch (err) {
    logOnce(`${driver.patch}:attach`, `could not observe a ${driver.patch} command`, err);
  }
}

/**
 * Runs a connection (or prepared statement) method for `call` (undefined:
 * untraced): the callback at `cbIndex` (or, for `command`, the command's own
 * callback) ends the span and runs in the caller's context; without one,
 * the command's `end` or error does.
 */
export function runTraced(
  driver: Driver,
  call: Call | undefined,
  original: Method,
  self: unknown,
  args: IArguments,
  cbIndex: number,
  connection: unknown,
  command?: MysqlCommand,
): unknown {
  if (call === undefined) return original.apply(self, args as unknown as unknown[]);
  const scope = callerScope();
  let list: ArrayLike<unknown> = args;
  let hasCallback = false;
  try {
    if (command !== undefined) {
      const cb = command[driver.callbackKey];
      if (typeof cb === 'function') {
        command[driver.callbackKey] = finishingCallback(call, scope, cb as Callback);
        hasCallback = true;
      }
    } else if (cbIndex >= 0) {
      const copy = Array.prototype.slice.call(args) as unknown[];
      copy[cbIndex] = finishingCallback(call, scope, args[cbIndex] as Callback);
      list = copy;
      hasCallback = true;
    }
    if (!hasCallback) driver.watch?.(connection, call);
  } catch (err) {
    logOnce(`${driver.patch}:callback`, `could not wrap a ${driver.patch} callback; the statement goes on untraced`, err);
    call.finish(undefined);
    return original.apply(self, args as unknown as unknown[]);
  }
  let result: unknown;
  try {
    result = original.apply(self, list as unknown[]);
  } catch (err) {
    call.finish(err);
    throw err;
  }
  safeAttach(driver, call, scope, result, hasCallback, connection);
  return result;
}

/** The connection call a pool call makes: it takes the pool call's span, and its command is observed for it. */
function adopt(driver: Driver, pending: PoolCall, original: Method, connection: { config?: MysqlConnectionConfig }, args: IArguments): unknown {
  pending.adopted = true;
  if (!pending.hasCallback && !pending.attached) driver.watch?.(connection, pending.call);
  const result = original.apply(connection, args as unknown as unknown[]);
  if (!pending.attached) {
    pending.attached = true;
    safeAttach(driver, pending.call, pending.scope, result, pending.hasCallback, connection);
  }
  return result;
}

/**
 * Pool calls by hand-off (mysql2): the pool call in progress (set while the
 * pool's own method runs, which is when it asks for a connection), and the
 * one whose connection callback is running (the pool makes its connection
 * call synchronously from there). No async context is carried for it: the
 * connection call finds its pool call here, whoever's context the pool runs
 * the callback in.
 */
let poolCallInProgress: PoolCall | undefined;
const handoff = new Handoff<PoolCall>();

/**
 * For `pool.getConnection(cb)`: when the pool asks for a connection for a
 * traced `pool.query`/`pool.execute` in progress, the callback that hands
 * that pool call to the connection call the pool makes from it; else
 * undefined (the caller binds `cb` to its context).
 */
export function poolConnectionCallback(cb: Callback): Callback | undefined {
  const pending = poolCallInProgress;
  if (pending === undefined) return undefined;
  poolCallInProgress = undefined; // one connection per pool call
  return function (this: unknown, err: unknown): unknown {
    if (err !== null && err !== undefined) return cb.apply(this, arguments as unknown as unknown[]);
    return handoff.run(pending, cb, this, arguments);
  };
}

/**
 * `pool.query`/`pool.execute`: one span from the call to the result, time
 * waiting for a free connection included; the connection call the pool makes
 * adopts it. `byHandoff` (mysql2, whose pool asks for its connection through
 * the patched `getConnection`): the pool call is handed to the connection call
 * in `poolCallInProgress` (see `poolConnectionCallback`), with no async
 * context of its own; otherwise (mysql) through an outer client in the async
 * context. `returnsCommand`: the pool hands back its command at once.
 */
export function tracedPoolCall(
  driver: Driver,
  original: Method,
  pool: { config?: { connectionConfig?: MysqlConnectionConfig } },
  args: IArguments,
  returnsCommand: boolean,
  byHandoff: boolean,
): unknown {
  const sql = args[0];
  if (sql === null || sql === undefined || typeof sql === 'function' || isSuppressed()) return original.apply(pool, args as unknown as unknown[]);
  const cbIndex = callbackIndex(args);
  const call = startStatement(driver.patch, pool.config?.connectionConfig, textOf(sql), valuesOf(sql, args[1]));
  if (call === undefined) return original.apply(pool, args as unknown as unknown[]);
  const scope = callerScope();
  const pending: PoolCall = { driver, call, scope, hasCallback: cbIndex >= 0, adopted: false, attached: false };
  const outer: OuterClient | undefined = byHandoff ? undefined : { span: call.span, component: driver.patch, done: false };
  const over =
    outer === undefined
      ? undefined
      : (): void => {
          outer.done = true;
        };
  let list: ArrayLike<unknown> = args;
  try {
    if (outer !== undefined) poolCalls.set(outer, pending);
    if (cbIndex >= 0) {
      const copy = Array.prototype.slice.call(args) as unknown[];
      copy[cbIndex] = finishingCallback(call, scope, args[cbIndex] as Callback, over);
      list = copy;
    }
  } catch (err) {
    logOnce(`${driver.patch}:callback`, `could not wrap a ${driver.patch} pool callback; the statement goes on untraced`, err);
    call.finish(undefined);
    return original.apply(pool, args as unknown as unknown[]);
  }
  let result: unknown;
  const previous = poolCallInProgress;
  try {
    if (outer === undefined) {
      poolCallInProgress = pending;
      result = original.apply(pool, list as unknown[]);
    } else {
      result = runWithOuterClient(outer, () => original.apply(pool, list as unknown[]));
    }
  } catch (err) {
    over?.();
    call.finish(err);
    throw err;
  } finally {
    poolCallInProgress = previous;
  }
  if (returnsCommand && !pending.attached && isCommand(result)) {
    pending.attached = true;
    safeAttach(driver, call, scope, result, pending.hasCallback, undefined, over);
  }
  return result;
}

/**
 * `connection.query`/`connection.execute`: one span, unless the call is the
 * one a traced pool call makes, which takes the pool call's span.
 */
export function tracedConnectionCall(driver: Driver, original: Method, connection: { config?: MysqlConnectionConfig }, args: IArguments): unknown {
  const sql = args[0];
  if (sql === null || sql === undefined || typeof sql === 'function' || isSuppressed()) return original.apply(connection, args as unknown as unknown[]);
  const handed = handoff.current;
  if (handed !== undefined && handed.driver === driver) {
    handoff.current = undefined;
    if (!handed.adopted) return adopt(driver, handed, original, connection, args);
  }
  const outer = activeOuterClient();
  if (outer !== undefined && outer.component === driver.patch) {
    const pending = poolCalls.get(outer);
    if (pending !== undefined && !pending.adopted) return adopt(driver, pending, original, connection, args);
  }
  // `query(command)`: a command made by pool.query, a pool cluster or `createQuery`.
  if (isCommand(sql)) {
    const call = startStatement(driver.patch, connection.config, textOf(sql), sql.values);
    return runTraced(driver, call, original, connection, args, -1, connection, sql);
  }
  const call = startStatement(driver.patch, connection.config, textOf(sql), valuesOf(sql, args[1]));
  return runTraced(driver, call, original, connection, args, callbackIndex(args), connection);
}

/** The object on `proto`'s chain that defines `name` itself (mysql2 3.11.5 moved its methods to base classes). */
export function ownerOf(proto: object | undefined, name: string): Record<string, Method> | undefined {
  for (let o: object | null | undefined = proto; o !== null && o !== undefined && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    if (Object.prototype.hasOwnProperty.call(o, name)) return o as Record<string, Method>;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Errors as logged

/**
 * The literal values of a MySQL statement (strings, unescaped and as written;
 * numbers), in the order they appear. MySQL lexical rules: '..' and ".."
 * strings with backslash escapes and doubled quotes, `..` identifiers,
 * `#`, `-- ` and block comments.
 */
export function mysqlLiterals(text: string): string[] {
  const out: string[] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 39 || c === 34) {
      let j = i + 1;
      let value = '';
      let from = j;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === 92) {
          value += text.slice(from, j) + text.charAt(j + 1);
          j += 2;
          from = j;
        } else if (d === c) {
          if (text.charCodeAt(j + 1) === c) {
            value += text.slice(from, j + 1);
            j += 2;
            from = j;
          } else {
            break;
          }
        } else {
          j++;
        }
      }
      value += text.slice(from, Math.min(j, n));
      out.push(value);
      const written = text.slice(i + 1, Math.min(j, n));
      if (written !== value) out.push(written);
      i = j + 1;
    } else if (c === 96) {
      const end = text.indexOf('`', i + 1);
      i = end === -1 ? n : end + 1;
    } else if (c === 35 || (c === 45 && text.charCodeAt(i + 1) === 45)) {
      const nl = text.indexOf('\n', i);
      i = nl === -1 ? n : nl + 1;
    } else if (c === 47 && text.charCodeAt(i + 1) === 42) {
      const end = text.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
    } else if (c >= 48 && c <= 57) {
      const prev = i > 0 ? text.charCodeAt(i - 1) : 32;
      let j = i;
      while (j < n && /[0-9A-Za-z_.$]/.test(text.charAt(j))) j++;
      // Not the digits of an identifier (t1, col_2).
      if (!/[A-Za-z0-9_$]/.test(String.fromCharCode(prev))) out.push(text.slice(i, j));
      i = j;
    } else {
      i++;
    }
  }
  return out;
}

/** The values given with a statement (an array, or an object for named placeholders) as text. */
function valueTexts(values: unknown): string[] {
  if (values === null || typeof values !== 'object') return [];
  const list = Array.isArray(values) ? values : Object.values(values as Record<string, unknown>);
  const out: string[] = [];
  for (const v of list) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') out.push(String(v));
    else if (Array.isArray(v)) out.push(...valueTexts(v)); // `IN (?)` with an array, bulk inserts
    else if (v instanceof Date) out.push(v.toISOString());
  }
  return out;
}

/** Shortest value replaced wherever it appears; shorter ones only where the message quotes them whole. */
const MIN_SUBSTRING = 4;

function withoutSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) {
    if (s.length === 0) continue;
    if (s.length >= MIN_SUBSTRING) {
      if (out.includes(s)) out = out.split(s).join(REDACTED);
    } else {
      out = out.split(`'${s}'`).join(`'${REDACTED}'`);
    }
  }
  return out;
}

/** MariaDB/MySQL ER_PARSE_ERROR: "... near '<the statement from there>' at line N". */
const PARSE_ERROR_NEAR = /near '([\s\S]*)' at line (\d+)/;

/**
 * The error as the span logs it. MariaDB and MySQL quote values in their
 * messages (`Duplicate entry 'x' for key`, `Incorrect integer value: 'x'`,
 * a syntax error quotes the statement from where it failed), and the drivers
 * attach the statement as sent (`sql`: with the values inlined by `query()`)
 * to the error. Unless the user records both the raw text and the
 * parameters, the copy logged has in `message`, `sqlMessage` and `stack` the
 * given values and the statement's literals replaced, and as `sql` the
 * statement as `db.statement` shows it. The application gets the original.
 */
function loggableError(err: unknown, text: string | undefined, values: unknown, options: MysqlOptions): unknown {
  if (err === null || typeof err !== 'object') return err;
  if (options.captureParameters === true && options.recordRawStatement === true) return err;
  const e = err as { message?: unknown; stack?: unknown; sqlMessage?: unknown; sql?: unknown };
  const secrets = new Set<string>(valueTexts(values));
  for (const source of [text, e.sql]) {
    if (typeof source === 'string') for (const literal of mysqlLiterals(source)) secrets.add(literal);
  }
  // Longest first, so that a value containing another is replaced whole.
  const ordered = [...secrets].sort((a, b) => b.length - a.length);
  const clean = (s: string): string => {
    const near = PARSE_ERROR_NEAR.exec(s);
    if (near !== null) s = s.replace(near[0], `near '${maskSqlLiterals(near[1], 'mysql')}' at line ${near[2]}`);
    return withoutSecrets(s, ordered);
  };
  const fields: Record<string, unknown> = {};
  if (typeof e.message === 'string') fields.message = clean(e.message);
  if (typeof e.stack === 'string') fields.stack = clean(e.stack);
  if (typeof e.sqlMessage === 'string') fields.sqlMessage = clean(e.sqlMessage);
  if (typeof e.sql === 'string') fields.sql = text === undefined ? REDACTED : options.recordRawStatement === true ? text : maskedTexts(text);
  return redactErrorFields(err, fields);
}
