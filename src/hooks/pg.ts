/**
 * Client spans for node-postgres: `Client.prototype.query` in every form pg
 * accepts (text, text + values, config object, trailing callback,
 * `config.callback`, promise, submittable such as `Query`, pg-cursor and
 * pg-query-stream), `Pool.prototype.query` (one span per logical query, from
 * the call to the result, time waiting for a free client included), and
 * optional `pg:connect` spans for `Client.prototype.connect`.
 *
 * Promise form: the application gets pg's very own promise, settled when it
 * would be without instrumentation; the span follows it through the promise
 * class pg builds it with (see `PromiseSeam`).
 *
 * Context: pg runs a query's callbacks and events in the context of the
 * socket's owner, and pg-pool hands a waiting caller its client in the
 * context of whoever released one. The patch binds callbacks, pool waiters
 * and submittable handlers to the caller's context.
 */
import type { Span } from 'opentracing';
import { OPERATION_PREFIX, REDACTED, TAG } from '../constants';
import { activeOuterClient, bindToCurrentContext, isSuppressed, runWithOuterClient, type OuterClient } from '../context';
import type { PgClientInternals, PgClientPrototype, PgModule, PgPoolClass, PgPoolInternals, PgPromiseClass, PgPromiseExecutor, PgSubmittable } from '../internal-types';
import { logOnce, safeCall } from '../logger';
import { optionsOf, type PgOptions, type PgQueryConfig, type PgQueryResult } from '../options';
import type { Instrumentation } from '../instrumentation';
import { redactErrorFields, redactValues } from '../redact';
import { addPeerTags, clientTags, finishSpan, isRecording, setTags, startClientSpan, type TagMap } from '../span';
import { maskSqlLiterals, serializeSqlParameters, sqlVerb, truncate } from '../sql';
import { unwrapMethod, wrapMethod } from '../wrap';

const COMPONENT = 'pg';
const DB_TYPE_SQL = 'sql';
const DEFAULT_MAX_STATEMENT_LENGTH = 4096;
/** Operation name when the statement has no leading keyword (e.g. a prepared statement run by name only). */
const UNKNOWN_VERB = 'QUERY';
const CONNECT_OPERATION = `${OPERATION_PREFIX.PG}connect`;

/** Marks a submittable we already observe, so that it is never traced twice. */
const OBSERVED = Symbol('opentracing-instrumentation.pg.observed');

/**
 * The handlers pg's client calls on a submittable (pg/lib/client.js); each
 * runs in the caller's context so that rows, ends, errors and cursor reads
 * reach the application there.
 */
const SUBMITTABLE_HANDLERS = [
  'handleRowDescription',
  'handleDataRow',
  'handlePortalSuspended',
  'handleCommandComplete',
  'handleEmptyQuery',
  'handleCopyInResponse',
  'handleCopyData',
  'handleReadyForQuery',
  'handleError',
] as const;

type Callback = (this: unknown, ...args: unknown[]) => unknown;
type Finish = (err: unknown, result?: unknown) => void;

/** A `pool.query` in progress: the inner `client.query` adopts its span instead of starting one. */
interface PoolCall {
  readonly config: unknown;
  adopted: boolean;
  connectionTagged: boolean;
}

const poolCalls = new WeakMap<OuterClient, PoolCall>();

function maxLength(options: PgOptions): number {
  const max = options.maxStatementLength;
  return typeof max === 'number' && max > 0 ? Math.floor(max) : DEFAULT_MAX_STATEMENT_LENGTH;
}

function isSubmittable(config: unknown): config is PgSubmittable {
  return config !== null && typeof config === 'object' && typeof (config as PgSubmittable).submit === 'function';
}

/** The statement text of any query form. */
function textOf(config: unknown): string | undefined {
  if (typeof config === 'string') return config;
  if (config === null || typeof config !== 'object') return undefined;
  const c = config as PgSubmittable;
  if (typeof c.text === 'string') return c.text;
  if (typeof c.cursor?.text === 'string') return c.cursor.text; // pg-query-stream
  return undefined;
}

/** The bound values: the `values` argument wins over `config.values`, as in pg's normalizeQueryConfig. */
function valuesOf(config: unknown, values: unknown): unknown {
  if (values && typeof values !== 'function') return values;
  if (config === null || typeof config !== 'object') return undefined;
  const c = config as PgSubmittable;
  return c.values ?? c.cursor?.values;
}

function operationName(text: string | undefined): string {
  return OPERATION_PREFIX.PG + ((text !== undefined && sqlVerb(text)) || UNKNOWN_VERB);
}

function connectionTags(tags: TagMap, client: PgClientInternals): TagMap {
  if (typeof client.database === 'string') tags[TAG.DB_INSTANCE] = client.database;
  if (typeof client.user === 'string') tags[TAG.DB_USER] = client.user;
  // A Unix socket directory is not a peer host name.
  const host = typeof client.host === 'string' && !client.host.startsWith('/') ? client.host : undefined;
  const port = typeof client.port === 'number' || typeof client.port === 'string' ? client.port : undefined;
  return addPeerTags(tags, host, port);
}

/**
 * `text` with its literals masked, cut at `max`. A statement of megabytes (a
 * bulk INSERT) is masked only as far as the tag can show, four times `max`,
 * unless masking shrank that part below `max`; a cut inside a literal masks
 * the rest of it (an unterminated string is masked to its end).
 */
function maskedStatement(text: string, max: number): string {
  const window = max * 4;
  if (text.length > window) {
    const head = maskSqlLiterals(text.slice(0, window), 'postgres');
    if (head.length > max) return truncate(head, max);
  }
  return truncate(maskSqlLiterals(text, 'postgres'), max);
}

function queryTags(text: string | undefined, values: unknown, options: PgOptions): TagMap {
  const tags = clientTags(COMPONENT);
  tags[TAG.DB_TYPE] = DB_TYPE_SQL;
  const max = maxLength(options);
  if (text !== undefined) tags[TAG.DB_STATEMENT] = options.recordRawStatement === true ? truncate(text, max) : maskedStatement(text, max);
  if (options.captureParameters === true) tags[TAG.DB_PARAMETERS] = Array.isArray(values) ? serializeSqlParameters(values, max) : undefined;
  return tags;
}

/** The request hook's view of the query: the caller's own object, or `{ text, values }` for the text form. */
function requestView(config: unknown, values: unknown): PgQueryConfig {
  if (config !== null && typeof config === 'object') return config as PgQueryConfig;
  const v = valuesOf(config, values);
  return { text: textOf(config), values: Array.isArray(v) ? v : undefined };
}

/** At most this many texts are looked for in an error (a huge array parameter stays cheap). */
const MAX_ECHO_FORMS = 200;

/**
 * The texts under which PostgreSQL may echo a parameter value in an error:
 * the value as pg sends it (strings, numbers; an object as its JSON), each
 * element of an array (`= ANY($1::int[])` quotes the element it could not
 * read), the leaf strings of a JSON value, a Buffer as `\x...` hex and as text.
 */
function echoForms(value: unknown, out: string[], depth = 0): void {
  if (out.length >= MAX_ECHO_FORMS || value === null || value === undefined) return;
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'number' || typeof value === 'bigint') out.push(String(value));
  else if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    const buffer = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    out.push(`\\x${buffer.toString('hex')}`, buffer.toString('utf8'));
  } else if (Array.isArray(value)) {
    if (depth < 3) for (const item of value) echoForms(item, out, depth + 1);
  } else if (typeof value === 'object' && !(value instanceof Date)) {
    try {
      out.push(JSON.stringify(value));
    } catch {
      // a cycle or a BigInt inside: its leaves below
    }
    if (depth < 3) for (const item of Object.values(value as object)) echoForms(item, out, depth + 1);
  }
}

/** `JSON data, line 1: <the start of the value>...` in the `where` of a JSON input error. */
const JSON_CONTEXT = /(JSON data, line \d+: )[^\n]*/g;

/**
 * PostgreSQL echoes parameter values in some errors: quoted where it could
 * not use one (`invalid input syntax for type integer: "..."`, `value "..."
 * is out of range`), the whole text of a plpgsql `RAISE ... '%', $1`, the
 * start of a JSON value in `where`. Their occurrences in `message`, `stack`
 * and `where` replaced, and the literals of `internalQuery` masked.
 * Undefined when nothing changes.
 */
function withoutEchoedValues(err: unknown, values: unknown): Record<string, string> | undefined {
  const e = err as { message?: unknown; stack?: unknown; where?: unknown; internalQuery?: unknown };
  const forms: string[] = [];
  if (Array.isArray(values)) echoForms(values, forms);
  const fields: Record<string, string> = {};
  for (const key of ['message', 'stack', 'where'] as const) {
    const text = e[key];
    if (typeof text !== 'string') continue;
    // In a stack, only its head (the message): a value may also be a word of a file path.
    const frames = key === 'stack' ? text.indexOf('\n    at ') : -1;
    let redacted = frames === -1 ? redactValues(text, forms) : redactValues(text.slice(0, frames), forms) + text.slice(frames);
    if (key === 'where') redacted = redacted.replace(JSON_CONTEXT, `$1${REDACTED}`);
    if (redacted !== text) fields[key] = redacted;
  }
  if (typeof e.internalQuery === 'string') {
    const masked = maskSqlLiterals(e.internalQuery, 'postgres');
    if (masked !== e.internalQuery) fields.internalQuery = masked;
  }
  return Object.keys(fields).length > 0 ? fields : undefined;
}

/** Finishes `span` once: response hook on success, error tags on failure. */
function finisher(span: Span, options: PgOptions, onDone?: () => void, values?: unknown): Finish {
  let done = false;
  return (err, result) => {
    if (done) return;
    done = true;
    if (onDone) onDone();
    if (err) {
      if (options.captureParameters === true) {
        finishSpan(span, err);
        return;
      }
      // A DatabaseError's `detail` quotes row values ("Failing row contains (...)"),
      // its message sometimes a parameter value: logged only with captureParameters.
      let fields: Record<string, string> | undefined;
      try {
        fields = withoutEchoedValues(err, values);
      } catch (redactErr) {
        logOnce('pg:redact', 'could not check a pg error for quoted values', redactErr);
      }
      if (typeof (err as { detail?: unknown }).detail === 'string') fields = { ...fields, detail: REDACTED };
      finishSpan(span, fields !== undefined ? redactErrorFields(err, fields) : err);
      return;
    }
    if (result !== undefined) safeCall('pg responseHook', options.responseHook, result as PgQueryResult, span);
    finishSpan(span);
  };
}

/**
 * The fallback of the promise form when the seam (`PromiseSeam`) could not
 * be installed or pg did not build its promise through it (a frozen client,
 * a subclass whose `query()` makes a promise of its own), and the promise
 * form of a traced `connect()`: pg's promise continued so that the span ends
 * with it. Same
 * value, same rejection (an unhandled rejection stays unhandled), but a
 * different promise object, settled one microtask later.
 */
function settleWith(result: unknown, finish: Finish): unknown {
  const thenable = result as PromiseLike<unknown> | null | undefined;
  if (thenable === null || thenable === undefined || typeof thenable.then !== 'function') {
    finish(undefined);
    return result;
  }
  return thenable.then(
    (value) => {
      finish(undefined, value);
      return value;
    },
    (err: unknown) => {
      finish(err);
      throw err;
    },
  );
}

/** Where pg and pg-pool keep the promise class their `query()` builds its promise with. */
const CLIENT_PROMISE = '_Promise';
const POOL_PROMISE = 'Promise';
type PromiseHolder = { [K in typeof CLIENT_PROMISE | typeof POOL_PROMISE]?: unknown };

/** Runs `finish`, which never throws into pg's resolve/reject (the hook's part is already contained). */
function finishSafely(finish: Finish, err: unknown, result?: unknown): void {
  try {
    finish(err, result);
  } catch (finishErr) {
    logOnce('pg:finish', 'could not finish a pg span', finishErr);
  }
}

/**
 * The promise form without a promise of our own. pg's `query()` builds the
 * promise it returns with the promise class kept on the client
 * (`client._Promise`) or the pool (`pool.Promise`) and settles it only
 * through the `resolve`/`reject` it hands that class's executor, from the
 * query callback, the `query_timeout` timer, the `process.nextTick` failure
 * of a client that cannot take a query, or pg-pool's own callback (see
 * PgClientPrototype._Promise and PgPoolInternals.Promise in
 * src/internal-types.ts). For the synchronous run of the original `query()`,
 * and only until pg first uses it, that class is replaced by a "seam class"
 * that builds the same promise with the original class, handing pg's
 * executor a `resolve`/`reject` that finish the span first. So the app gets
 * pg's very own promise, settled in the same microtask turn, with nothing
 * attached to it (an unhandled rejection stays unhandled).
 *
 * On success the span finishes (response hook first) right before pg's
 * promise resolves. On failure it finishes one microtask later, once pg's
 * `.catch` has given the error the stack that leads back to the application
 * (`Error.captureStackTrace` in pg's query() and pg-pool's promisify), so
 * that the span logs the stack the app sees; that is still before any
 * reaction of the app, which pg's `.catch` puts one turn further.
 */
interface PromiseSeam {
  readonly holder: PromiseHolder;
  readonly key: keyof PromiseHolder;
  readonly original: PgPromiseClass;
  /** What stands in for `original` on the holder meanwhile. */
  readonly installed: PgPromiseClass;
  /** The class was the holder's own property (pg and pg-pool set it in their constructors), not inherited. */
  readonly own: boolean;
  readonly finish: Finish;
  /** pg built its promise through the seam. */
  used: boolean;
  restored: boolean;
}

/** The seam of the `query()` running now; one at a time (a nested traced query falls back to `settleWith`). */
let armedSeam: PromiseSeam | undefined;

/** One seam class per promise class (in practice: the global Promise), made once, so that a query allocates no function it calls with `new`. */
const seamClasses = new WeakMap<PgPromiseClass, PgPromiseClass>();

/** Puts the holder's promise class back, once, unless someone else has replaced it meanwhile. */
function restoreSeam(seam: PromiseSeam): void {
  if (seam.restored) return;
  seam.restored = true;
  if (armedSeam === seam) armedSeam = undefined;
  try {
    if (seam.holder[seam.key] !== seam.installed) return;
    if (seam.own) seam.holder[seam.key] = seam.original;
    else delete seam.holder[seam.key];
  } catch (err) {
    logOnce('pg:promise', 'could not put back the promise class of a pg client or pool', err);
  }
}

function seamClassOf(Original: PgPromiseClass): PgPromiseClass {
  let SeamClass = seamClasses.get(Original);
  if (SeamClass !== undefined) return SeamClass;
  SeamClass = function (this: unknown, executor: unknown): unknown {
    const seam = armedSeam;
    if (seam !== undefined) restoreSeam(seam);
    if (new.target === undefined) return Reflect.apply(Original, this, arguments);
    if (seam === undefined || seam.original !== Original || typeof executor !== 'function') return Reflect.construct(Original, arguments);
    seam.used = true;
    const finish = seam.finish;
    return new Original(function (resolve, reject) {
      return (executor as PgPromiseExecutor)(
        function (value) {
          finishSafely(finish, undefined, value);
          return resolve(value);
        },
        function (reason) {
          reject(reason);
          // Queued after pg's `.catch` reaction, which the rejection has just queued.
          queueMicrotask(() => finishSafely(finish, reason));
        },
      );
    });
  } as unknown as PgPromiseClass;
  // Statics (`resolve`, `reject`, ...) read through to the original class.
  Object.setPrototypeOf(SeamClass, Original);
  seamClasses.set(Original, SeamClass);
  return SeamClass;
}

/** Installs the seam on `holder`; undefined when there is no promise class to replace or it cannot be replaced. */
function armSeam(holder: PromiseHolder, key: keyof PromiseHolder, finish: Finish): PromiseSeam | undefined {
  if (armedSeam !== undefined) return undefined;
  const original = holder[key] as PgPromiseClass;
  if (typeof original !== 'function') return undefined;
  const installed = seamClassOf(original);
  const seam: PromiseSeam = { holder, key, original, installed, own: Object.prototype.hasOwnProperty.call(holder, key), finish, used: false, restored: false };
  holder[key] = installed; // throws for a frozen holder or a read-only class: the caller falls back
  armedSeam = seam;
  return seam;
}

/**
 * Calls `original` for a promise form query through the seam on `holder`;
 * falls back to continuing pg's promise (`settleWith`) when the seam could
 * not be installed or pg did not build its promise through it.
 */
function callWithPromiseSeam(holder: PromiseHolder, key: keyof PromiseHolder, finish: Finish, call: () => unknown): unknown {
  let seam: PromiseSeam | undefined;
  try {
    seam = armSeam(holder, key, finish);
  } catch (err) {
    logOnce('pg:promise', 'could not follow the promise of a pg query; it is continued instead', err);
  }
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    finish(err);
    throw err;
  } finally {
    if (seam !== undefined) restoreSeam(seam);
  }
  return seam?.used ? result : settleWith(result, finish);
}

/** `cb` bound to the caller's context, finishing the span before it runs. */
function finishingCallback(cb: Callback, finish: Finish): Callback {
  const bound = bindToCurrentContext(cb);
  return function (this: unknown, err: unknown, result: unknown) {
    finish(err, result);
    return bound.apply(this, arguments as unknown as unknown[]);
  };
}

/** Starts a span for one query and sets its tags and request hook. */
function startQuerySpan(options: PgOptions, config: unknown, values: unknown, client?: PgClientInternals): Span | undefined {
  let text: string | undefined;
  let operation: string;
  try {
    text = textOf(config);
    operation = operationName(text);
  } catch (err) {
    logOnce('pg:args', 'could not read a pg query; it goes on untraced', err);
    return undefined;
  }
  const span = startClientSpan(COMPONENT, operation);
  if (span === undefined) return undefined;
  try {
    if (isRecording(span)) {
      const tags = queryTags(text, valuesOf(config, values), options);
      if (client !== undefined) connectionTags(tags, client);
      setTags(span, tags);
    }
    if (typeof options.requestHook === 'function') safeCall('pg requestHook', options.requestHook, span, requestView(config, values));
  } catch (err) {
    logOnce('pg:tags', 'could not build the tags of a pg span', err);
  }
  return span;
}

/**
 * Follows a submittable to its end through the handlers pg's client calls,
 * which also run in the caller's context from now on. pg calls
 * `handleReadyForQuery` when the statement is over, including after an early
 * `cursor.close()` or a destroyed QueryStream (which closes its cursor), and
 * `handleError` on failure and when the connection dies (`_errorAllQueries`).
 */
function observeSubmittable(sub: PgSubmittable, finish: Finish): void {
  const inCaller = bindToCurrentContext(function (this: unknown, fn: Callback, args: IArguments) {
    return fn.apply(this, args as unknown as unknown[]);
  });
  for (const name of SUBMITTABLE_HANDLERS) {
    const original = sub[name];
    if (typeof original !== 'function') continue;
    let wrapper: (this: PgSubmittable, ...args: unknown[]) => unknown;
    if (name === 'handleReadyForQuery') {
      wrapper = function (this: PgSubmittable) {
        // A row that failed to parse turns this into an error, reported through handleError.
        if (!this._canceledDueToError) finish(undefined, this._results ?? this._result);
        return inCaller.call(this, original as Callback, arguments);
      };
    } else if (name === 'handleError') {
      wrapper = function (this: PgSubmittable, err: unknown) {
        finish(this._canceledDueToError || err); // pg's Query reports the parse error instead
        return inCaller.call(this, original as Callback, arguments);
      };
    } else {
      wrapper = function (this: PgSubmittable) {
        return inCaller.call(this, original as Callback, arguments);
      };
    }
    if (Object.prototype.hasOwnProperty.call(sub, name)) sub[name] = wrapper;
    else Object.defineProperty(sub, name, { value: wrapper, writable: true, configurable: true, enumerable: false });
  }
  Object.defineProperty(sub, OBSERVED, { value: true, configurable: true });
}

/** The pool call (of `outer`) whose span an inner `client.query` of that same query adopts. */
function poolCallFor(outer: OuterClient, config: unknown): PoolCall | undefined {
  if (outer.component !== COMPONENT) return undefined;
  const call = poolCalls.get(outer);
  if (call === undefined || call.adopted || call.config !== config) return undefined;
  return call;
}

function tagPoolConnection(call: PoolCall, span: Span, client: PgClientInternals): void {
  if (call.connectionTagged) return;
  call.connectionTagged = true;
  try {
    if (isRecording(span)) setTags(span, connectionTags({}, client));
  } catch (err) {
    logOnce('pg:tags', 'could not build the tags of a pg span', err);
  }
}

function tracedClientQuery(original: PgClientPrototype['query'], client: PgClientPrototype, args: IArguments): unknown {
  const config = args[0];
  if (config === null || config === undefined || isSuppressed()) return original.apply(client, args as never);

  // pool.query calls client.query with the same config: one span, the pool's.
  const outer = activeOuterClient();
  const call = outer === undefined ? undefined : poolCallFor(outer, config);
  if (call !== undefined && outer !== undefined) {
    call.adopted = true;
    tagPoolConnection(call, outer.span, client);
    return original.apply(client, args as never);
  }

  const options = optionsOf(COMPONENT);
  const values = args[1];

  if (isSubmittable(config)) {
    if ((config as { [OBSERVED]?: boolean })[OBSERVED]) return original.apply(client, args as never);
    const span = startQuerySpan(options, config, values, client);
    if (span === undefined) return original.apply(client, args as never);
    const finish = finisher(span, options, undefined, valuesOf(config, values));
    try {
      observeSubmittable(config, finish);
    } catch (err) {
      logOnce('pg:submittable', 'could not observe a pg submittable; its span is closed now', err);
      finish(undefined);
    }
    try {
      return original.apply(client, args as never);
    } catch (err) {
      finish(err);
      throw err;
    }
  }

  // pg's normalizeQueryConfig: a callback argument wins over a function in `values`, which wins over config.callback.
  const callback = args[2];
  let cb: unknown;
  if (callback) cb = callback;
  else if (typeof values === 'function') cb = values;
  else if (typeof config === 'object') cb = (config as { callback?: unknown }).callback;
  if (cb && typeof cb !== 'function') return original.apply(client, args as never); // pg throws its TypeError

  const span = startQuerySpan(options, config, values, client);
  if (span === undefined) return original.apply(client, args as never);
  const finish = finisher(span, options, undefined, valuesOf(config, values));
  let wrapped: Callback | undefined;
  if (typeof cb === 'function') {
    try {
      wrapped = finishingCallback(cb as Callback, finish);
    } catch (err) {
      logOnce('pg:callback', 'could not wrap a pg callback; the query goes on untraced', err);
      finish(undefined);
      return original.apply(client, args as never);
    }
  }
  if (wrapped === undefined) return callWithPromiseSeam(client, CLIENT_PROMISE, finish, () => original.apply(client, args as never));
  try {
    return original.call(client, config, values, wrapped);
  } catch (err) {
    finish(err);
    throw err;
  }
}

function tracedClientConnect(original: PgClientPrototype['connect'], client: PgClientPrototype, args: IArguments): unknown {
  const callback = args[0];
  if (isSuppressed()) return original.apply(client, args as never);

  // A pool creating a client for a pool.query: the query span gets this client's peer.
  const outer = activeOuterClient();
  if (outer !== undefined && outer.component === COMPONENT) {
    const call = poolCalls.get(outer);
    if (call !== undefined && !call.adopted) tagPoolConnection(call, outer.span, client);
  }

  const options = optionsOf(COMPONENT);
  let span: Span | undefined;
  if (options.traceConnect === true) {
    span = startClientSpan(COMPONENT, CONNECT_OPERATION);
    try {
      if (span !== undefined && isRecording(span)) {
        const tags = clientTags(COMPONENT);
        tags[TAG.DB_TYPE] = DB_TYPE_SQL;
        setTags(span, connectionTags(tags, client));
      }
    } catch (err) {
      logOnce('pg:tags', 'could not build the tags of a pg span', err);
    }
  }
  const finish: Finish = span === undefined ? () => undefined : finisher(span, options);
  const connectDone: Finish = (err) => finish(err); // no response hook for a connect
  let wrapped: Callback | undefined;
  if (typeof callback === 'function') {
    try {
      wrapped = span === undefined ? bindToCurrentContext(callback as Callback) : finishingCallback(callback as Callback, connectDone);
    } catch (err) {
      logOnce('pg:callback', 'could not wrap a pg connect callback', err);
      finish(undefined);
      return original.apply(client, args as never);
    }
  } else if (span === undefined) {
    return original.apply(client, args as never);
  }
  let result: unknown;
  try {
    result = wrapped !== undefined ? original.call(client, wrapped) : original.apply(client, args as never);
  } catch (err) {
    finish(err);
    throw err;
  }
  return wrapped !== undefined ? result : settleWith(result, connectDone);
}

function tracedPoolQuery(original: PgPoolClass['prototype']['query'], pool: PgPoolInternals, args: IArguments): unknown {
  const config = args[0];
  if (config === null || config === undefined || typeof config === 'function' || isSuppressed()) {
    return original.apply(pool, args as never);
  }
  // pg-pool: a function in `values` is the callback, and the third argument is then ignored.
  const cbIndex = typeof args[1] === 'function' ? 1 : 2;
  const cb = args[cbIndex];
  if (cb && typeof cb !== 'function') return original.apply(pool, args as never);

  const options = optionsOf(COMPONENT);
  const span = startQuerySpan(options, config, cbIndex === 1 ? undefined : args[1]);
  if (span === undefined) return original.apply(pool, args as never);

  const outer: OuterClient = { span, component: COMPONENT, done: false };
  poolCalls.set(outer, { config, adopted: false, connectionTagged: false });
  const finish = finisher(
    span,
    options,
    () => {
      outer.done = true;
    },
    valuesOf(config, cbIndex === 1 ? undefined : args[1]),
  );
  let list: unknown[] | undefined;
  if (typeof cb === 'function') {
    try {
      list = Array.prototype.slice.call(args) as unknown[];
      list[cbIndex] = finishingCallback(cb as Callback, finish);
    } catch (err) {
      logOnce('pg:callback', 'could not wrap a pg-pool callback; the query goes on untraced', err);
      finish(undefined);
      return original.apply(pool, args as never);
    }
  }
  if (list === undefined) {
    return callWithPromiseSeam(pool, POOL_PROMISE, finish, () => runWithOuterClient(outer, () => original.apply(pool, args as never)));
  }
  try {
    return runWithOuterClient(outer, () => original.apply(pool, list as never));
  } catch (err) {
    finish(err);
    throw err;
  }
}

/** `pg`: Client.prototype.query and .connect (pg's Pool inherits pg-pool's, patched below). */
export const pgClient: Instrumentation<PgModule> = {
  name: 'pg',
  module: 'pg',
  patch(exports) {
    // Read `Client` only: `exports.native` is a getter that loads pg-native.
    const proto = exports.Client?.prototype;
    if (proto === undefined) return;
    wrapMethod(proto, 'query', (original) =>
      function query(this: PgClientPrototype) {
        return tracedClientQuery(original, this, arguments);
      },
    );
    wrapMethod(proto, 'connect', (original) =>
      function connect(this: PgClientPrototype) {
        return tracedClientConnect(original, this, arguments);
      },
    );
  },
  unpatch(exports) {
    const proto = exports.Client?.prototype;
    if (proto === undefined) return;
    unwrapMethod(proto, 'query');
    unwrapMethod(proto, 'connect');
  },
};

/** `pg-pool`: Pool.prototype.query and .connect, the class pg's `Pool` extends. */
export const pgPool: Instrumentation<PgPoolClass> = {
  name: 'pg',
  module: 'pg-pool',
  patch(Pool) {
    const proto = Pool.prototype;
    wrapMethod(proto, 'query', (original) =>
      function query(this: PgPoolInternals) {
        return tracedPoolQuery(original, this, arguments);
      },
    );
    // A caller waiting for a free client is served in the releasing client's
    // context (pg-pool's _pulseQueue): bind its callback to its own context.
    wrapMethod(proto, 'connect', (original) =>
      function connect(this: unknown, cb?: unknown) {
        if (typeof cb !== 'function') return original.apply(this, arguments as never);
        return original.call(this, bindToCurrentContext(cb as Callback));
      },
    );
  },
  unpatch(Pool) {
    unwrapMethod(Pool.prototype, 'query');
    unwrapMethod(Pool.prototype, 'connect');
  },
};
