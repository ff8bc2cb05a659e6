/**
 * The span of one pg query or connect: its operation name and tags, the
 * connection tags of the client it runs on, how it ends (errors logged
 * without the values PostgreSQL echoes, src/pg-errors.ts) and the callback
 * that ends it. src/hooks/pg.ts says where these calls start.
 */
import { AsyncResource } from 'async_hooks';
import { startCall, type Call, type CallSpec } from './call';
import { OPERATION_PREFIX, TAG } from './constants';
import type { PgClientInternals, PgSubmittable } from './internal-types';
import { logOnce } from './logger';
import { optionsOf, type PgOptions, type PgQueryConfig, type PgQueryResult } from './options';
import { loggablePgError } from './pg-errors';
import { addPeerTags, type TagMap } from './span';
import { maskedStatement, maskSqlLiterals, memoByText, serializeSqlParameters, sqlVerb, statementMaxLength, truncate } from './sql';

const PATCH = 'pg';

export type Callback = (this: unknown, ...args: unknown[]) => unknown;
/** A traced query or connect; `state` is its PgQuery (a connect has none). */
export type PgCall = Call<PgQueryResult | PgQueryResult[], PgQuery>;

/**
 * One query: the subject of its `startCall` (the spec's functions are shared,
 * not made per query), then its call's state; for a `pool.query`, also what
 * the hand-off to the `client.query` pg-pool makes needs (one object per query).
 */
export class PgQuery {
  call: PgCall | undefined = undefined;
  /** pool.query: its connect callback was wrapped, the client.query took the span, the client's peer was tagged. */
  connecting = false;
  adopted = false;
  tagged = false;
  constructor(
    readonly config: unknown,
    /** The bound values: the `values` argument wins over `config.values`, as in pg's normalizeQueryConfig. */
    readonly values: unknown,
    readonly client: PgClientInternals | undefined,
    readonly options: PgOptions,
  ) {}
}

const verbOf = memoByText((text) => sqlVerb(text) ?? 'QUERY');
const masked = memoByText((text) => maskSqlLiterals(text, 'postgres'));

/** The statement text of any query form (a QueryStream keeps it on its cursor). */
function textOf(config: unknown): string | undefined {
  if (typeof config === 'string') return config;
  if (config === null || typeof config !== 'object') return undefined;
  const c = config as PgSubmittable;
  if (typeof c.text === 'string') return c.text;
  return typeof c.cursor?.text === 'string' ? c.cursor.text : undefined;
}

/** A client's connection tags, with the fields they were made from (kept per client: they rarely change). */
interface ClientTags {
  host: unknown;
  port: unknown;
  database: unknown;
  user: unknown;
  tags: TagMap;
}
const clientTags = new WeakMap<object, ClientTags>();

/** Adds `db.instance`, `db.user` and `peer.*` of `client`; a Unix socket directory is not a peer host name. */
function connectionTags(tags: TagMap, client: PgClientInternals): TagMap {
  const { host, port, database, user } = client;
  let known = clientTags.get(client);
  if (known === undefined || known.host !== host || known.port !== port || known.database !== database || known.user !== user) {
    const own: TagMap = {};
    if (typeof database === 'string') own[TAG.DB_INSTANCE] = database;
    if (typeof user === 'string') own[TAG.DB_USER] = user;
    addPeerTags(own, typeof host === 'string' && !host.startsWith('/') ? host : undefined, typeof port === 'number' || typeof port === 'string' ? port : undefined);
    clientTags.set(client, (known = { host, port, database, user, tags: own }));
  }
  return Object.assign(tags, known.tags);
}

const QUERY: CallSpec<PgQueryConfig, PgQuery> = {
  operationName: (q) => {
    const text = textOf(q.config);
    return OPERATION_PREFIX.PG + (text === undefined ? 'QUERY' : verbOf(text));
  },
  tags(tags, { config, values, client, options }) {
    tags[TAG.DB_TYPE] = 'sql';
    const max = statementMaxLength(options);
    const text = textOf(config);
    if (text !== undefined) tags[TAG.DB_STATEMENT] = options.recordRawStatement === true ? truncate(text, max) : maskedStatement(text, max, masked);
    if (options.captureParameters === true) tags[TAG.DB_PARAMETERS] = Array.isArray(values) ? serializeSqlParameters(values, max) : undefined;
    if (client !== undefined) connectionTags(tags, client);
  },
  // The caller's own object, or `{ text, values }` for the text form.
  request: ({ config, values }) => (config !== null && typeof config === 'object' ? (config as PgQueryConfig) : { text: textOf(config), values: Array.isArray(values) ? values : undefined }),
};

const CONNECT: CallSpec<undefined, PgClientInternals> = {
  operationName: `${OPERATION_PREFIX.PG}connect`,
  tags(tags, client) {
    tags[TAG.DB_TYPE] = 'sql';
    connectionTags(tags, client);
  },
};

/** Starts the span of a query on `client` (undefined: a pool.query, which learns its client later); undefined when untraced. */
export function startQuery(config: unknown, values: unknown, client: PgClientInternals | undefined): PgCall | undefined {
  if (!values || typeof values === 'function') values = config !== null && typeof config === 'object' ? ((config as PgSubmittable).values ?? (config as PgSubmittable).cursor?.values) : undefined;
  const query = new PgQuery(config, values, client, optionsOf(PATCH));
  const call = startCall<PgQueryConfig, PgQueryResult | PgQueryResult[], PgQuery, PgQuery>(PATCH, QUERY, query);
  if (call !== undefined) call.state = query;
  query.call = call;
  return call;
}

/** Starts a `pg:connect` span when the user asked for them. */
export function startConnect(client: PgClientInternals): PgCall | undefined {
  return optionsOf(PATCH).traceConnect === true ? (startCall(PATCH, CONNECT, client) as PgCall | undefined) : undefined;
}

/** Tags a pool.query's span with the peer of the client it runs on (once: a tracer may keep duplicate tags). */
export function tagConnection(query: PgQuery, client: PgClientInternals): void {
  const call = query.call;
  if (query.tagged || call === undefined || !call.recording) return;
  query.tagged = true;
  try {
    call.setTags(connectionTags({}, client));
  } catch (err) {
    logOnce('pg:tags', 'could not build the tags of a pg span', err);
  }
}

/** Ends a call: errors logged without echoed values, the response hook for a query's result (never for a connect). */
export function end(call: PgCall, err: unknown, result?: unknown): void {
  const query = call.state;
  if (err) call.finish(loggablePgError(err, query?.values, (query?.options ?? optionsOf(PATCH)).captureParameters === true));
  else if (query !== undefined && result !== undefined) call.finish(undefined, result as PgQueryResult, true);
  else call.finish();
}

/** `cb.apply(this, args)`, shared by the callbacks below (no closure per call for it). */
export function applyCallback(this: unknown, cb: Callback, args: IArguments): unknown {
  return cb.apply(this, args as unknown as unknown[]);
}

/** pg's callback for `cb`: ends the call, then runs `cb` in the caller's context. */
export function finishingCallback(call: PgCall, cb: Callback): Callback {
  const scope = new AsyncResource('opentracing-instrumentation.pg');
  return function (this: unknown, err: unknown, result: unknown) {
    end(call, err, result);
    return scope.runInAsyncScope(applyCallback, this, cb, arguments);
  };
}
