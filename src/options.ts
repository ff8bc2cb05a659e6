/**
 * What a user can configure, and the live configuration the patches read on
 * every call (so `setResponseHook` and a tracer registered after install take
 * effect at once).
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'http';
import { globalTracer, type Span, type Tracer } from 'opentracing';
import { compilePropagationRules, type PropagationRules } from './propagation';

import { PATCH_NAMES, type OptionsByPatch, type PatchName } from './hooks';

export { PATCH_NAMES };
export type { OptionsByPatch, PatchName };

/** Options every patch accepts. */
export interface PatchOptions<Request = unknown, Response = unknown> {
  /**
   * Called once per call with what the library hands back, before the span
   * finishes. A hook may be async; one that throws or returns a promise that
   * rejects is contained and logged once, and the call never waits for it.
   * Default: none.
   */
  responseHook?: ((response: Response, span: Span) => void) | null;
  /**
   * Called after the span is started and before the trace headers are
   * injected, so it can set tags or baggage. Contained like the response hook.
   * Default: none.
   */
  requestHook?: ((span: Span, request: Request) => void) | null;
  /**
   * When true, a call made with no current span is not traced at all.
   * Default: false (the call starts a new trace).
   */
  requireParentSpan?: boolean;
}

/** Options of the `http` and `https` client patches. */
export interface HttpClientOptions extends PatchOptions<ClientRequest, IncomingMessage> {
  /** Which response statuses mark the span as an error. Default: `status >= 500`. */
  isErrorStatus?: (status: number) => boolean;
}

/**
 * The axios request config as the axios hooks receive it: the final config
 * of the request (after interceptors and `transformRequest`). Structural, so
 * that this package's types do not depend on axios; axios' own
 * `InternalAxiosRequestConfig` has these fields and more.
 */
export interface AxiosRequestConfigLike {
  url?: string;
  baseURL?: string;
  method?: string;
  headers?: unknown;
  params?: unknown;
  data?: unknown;
}

/** The axios response as the response hook receives it (axios' `AxiosResponse`, structurally). */
export interface AxiosResponseLike {
  /** The body, after axios' `transformResponse` (parsed JSON by default). */
  data: unknown;
  status: number;
  statusText: string;
  headers: unknown;
  config: AxiosRequestConfigLike;
  request?: unknown;
}

/** Options of the `axios` patch. */
export interface AxiosOptions extends PatchOptions<AxiosRequestConfigLike, AxiosResponseLike> {
  /** Which response statuses mark the span as an error. Default: `status >= 500`. */
  isErrorStatus?: (status: number) => boolean;
}

/**
 * One request of fetch or undici as the fetch request hook receives it:
 * undici's own request object, as published on `diagnostics_channel`
 * (undici's lib/core/request.js); for a `fetch()` call, its first request.
 * `addHeader` adds a header to what is sent.
 */
export interface FetchRequestLike {
  /** Upper case for fetch; as given for undici's own `request()`. */
  readonly method: string;
  /** `http://host:port` */
  readonly origin: string;
  /** Path and query. */
  readonly path: string;
  addHeader(name: string, value: string): unknown;
}

/**
 * The response as the fetch response hook receives it, when its headers
 * arrive (the body may still be on its way): for a `fetch()` call, the
 * response that answers the call (after the redirects it followed); for
 * undici's `request()` and the other APIs, the response of that request.
 */
export interface FetchResponseLike {
  status: number;
  statusText: string;
  /** Lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** The URL that answered (after redirects: the last one). */
  url: string;
}

/** Options of the `fetch` patch (global fetch and the `undici` package). */
export interface FetchOptions extends PatchOptions<FetchRequestLike, FetchResponseLike> {
  /** Which response statuses mark the span as an error. Default: `status >= 500`. */
  isErrorStatus?: (status: number) => boolean;
}

/**
 * What the `pg` request hook receives: the query as the application gave it
 * (its config object or submittable, or `{ text, values }` for the text form).
 */
export interface PgQueryConfig {
  text?: string;
  values?: unknown[];
  name?: string;
}

/** What the `pg` response hook receives: pg's `QueryResult` (an array of them for a multi-statement query). */
export interface PgQueryResult {
  command: string;
  rowCount: number | null;
  rows: unknown[];
  fields?: unknown[];
}

/** Options of the `pg` patch (`pg` and `pg-pool`). */
export interface PgOptions extends PatchOptions<PgQueryConfig, PgQueryResult | PgQueryResult[]> {
  /**
   * Longest `db.statement` (and `db.parameters`) recorded, in characters;
   * longer text is cut there and ends with `…`. Default: 4096.
   */
  maxStatementLength?: number;
  /**
   * Records the bound parameter values as the `db.parameters` tag (JSON).
   * They may hold personal data or secrets: opt in knowingly. Default: false.
   */
  captureParameters?: boolean;
  /** Adds a `pg:connect` span for each `client.connect()` (pools included). Default: false. */
  traceConnect?: boolean;
  /**
   * Records the statement text as written in `db.statement`. By default its
   * literal values (strings, numbers, dollar-quoted bodies) are replaced with
   * `?` and its comments removed, because they can hold passwords, tokens or
   * personal data (`ALTER ROLE … PASSWORD '…'`, `WHERE token = '…'`);
   * placeholders such as `$1` stay.
   * @default false
   */
  recordRawStatement?: boolean;
}

/**
 * What the `mysql2` and `mysql` request hooks receive: the statement as the
 * application wrote it (before the driver inlines `values` into it) and the
 * values given with it.
 */
export interface MysqlQuery {
  sql: string | undefined;
  values?: unknown;
}

/**
 * Options of the `mysql2` and `mysql` patches. The response hook receives
 * what the driver hands the callback (or the promise API resolves with) as
 * its results: rows, a `ResultSetHeader`/`OkPacket`, or an array of them for
 * a multi-statement query; `undefined` for the emitter and stream forms,
 * whose rows went to the application's listeners.
 */
export interface MysqlOptions extends PatchOptions<MysqlQuery, unknown> {
  /**
   * Longest `db.statement` (and `db.parameters`) recorded, in characters;
   * longer text is cut there and ends with `…`. Default: 4096.
   */
  maxStatementLength?: number;
  /**
   * Records the values given with a statement (`query(sql, values)`,
   * `execute(sql, values)`, `statement.execute(values)`) as the
   * `db.parameters` tag (JSON), and leaves them in logged errors. They may
   * hold personal data or secrets: opt in knowingly. Default: false.
   */
  captureParameters?: boolean;
  /**
   * Records the statement text as written in `db.statement`. By default its
   * literal values (strings, numbers) are replaced with `?` and its comments
   * removed; placeholders (`?`, `:name`) stay. Default: false.
   */
  recordRawStatement?: boolean;
}

/** What the `ioredis` request hook receives. */
export interface IoredisRequest {
  /** The command name as sent, lower case (`'get'`), or `'pipeline'` / `'multi'` for a batch. */
  command: string;
  /** The command's arguments, as ioredis will send them (empty for a batch). */
  args: ReadonlyArray<unknown>;
  /** For a batch: its commands in order (for MULTI, the MULTI and EXEC wrappers included). */
  commands?: ReadonlyArray<{ command: string; args: ReadonlyArray<unknown> }>;
}

/** Options of the `ioredis` patch. */
export interface IoredisOptions extends PatchOptions<IoredisRequest, unknown> {
  /**
   * Builds `db.statement` from a command name (lower case) and its arguments,
   * for single commands and for each command of a batch. Never called for
   * `AUTH` and `HELLO`, whose arguments are never recorded. A serializer that
   * throws falls back to the default. Default: the command name upper case,
   * its first key, and a count of the other arguments
   * (`SET session:42 [1 other argument]`).
   */
  statementSerializer?: ((command: string, args: ReadonlyArray<unknown>) => string) | null;
  /** Longest `db.statement` recorded, in characters; longer text is cut and ends with `…`. Default: 1024. */
  maxStatementLength?: number;
}

/**
 * Options of the `http-server` patch (server spans for incoming requests of
 * `http` and `https` servers), also taken by `expressMiddleware` and
 * `koaMiddleware`. `requestHook(span, req)` runs when the server span has
 * started, before the application's handler; `responseHook(res, span)` when
 * the response has finished (or the connection closed), before the span finishes.
 */
export interface HttpServerOptions extends PatchOptions<IncomingMessage, ServerResponse> {
  /**
   * When true, only requests that carry a trusted trace context get a server
   * span; the others are not traced at all (nor the calls they make, unless
   * those patches start traces of their own). Default: false (such a request
   * starts a new trace).
   */
  requireParentSpan?: boolean;
  /**
   * Requests that get no span at all (health checks, metrics scrapes): an
   * exact path (`'/healthz'`) or a RegExp, matched against the request path
   * without its query string. Default: none.
   */
  ignorePaths?: ReadonlyArray<string | RegExp>;
  /**
   * Requests that get no span at all, as a predicate; one that throws counts
   * as false. Default: none.
   */
  ignore?: ((req: IncomingMessage) => boolean) | null;
  /**
   * Whether to continue the trace of the caller (its `uber-trace-id`,
   * `jaeger-debug-id`, baggage). When it says no, the request starts a new
   * trace and nothing the caller sent (sampling flag, debug id, baggage)
   * reaches the span or the calls made under it. A predicate that throws
   * counts as false. Default: true (every caller is trusted).
   */
  trustIncomingContext?: boolean | ((req: IncomingMessage) => boolean);
  /**
   * Request headers that name the calling service, first one present wins;
   * its value becomes `peer.service`. Default: none (`[]`).
   */
  callerNameHeaders?: readonly string[];
  /** Which response statuses mark the server span as an error. Default: `status >= 500`. */
  isErrorStatus?: (status: number) => boolean;
}

/** One options object per patch, keyed by its patch name (derived from the registry). */
export type OptionsPerPatch = { [P in PatchName]?: OptionsByPatch[P] };

/** Options of `installAllPatches` / `installPatches`. */
export interface InstrumentationOptions extends OptionsPerPatch {
  /**
   * The tracer spans are started with. Default: the OpenTracing global tracer,
   * looked up at each call, so a tracer registered after install is used.
   */
  tracer?: Tracer;
  /**
   * Host names that may receive trace headers and baggage: exact names
   * (`'api.internal'`), wildcards for subdomains (`'*.corp.example'`) or
   * RegExps that must match the whole host name. Calls to other hosts are
   * still traced, but carry no trace context. Default: undefined (every host).
   */
  propagateTo?: ReadonlyArray<string | RegExp>;
  /** When false, baggage is never sent downstream. Default: true. */
  propagateBaggage?: boolean;
}

/** The response hook of patch `P`. */
export type ResponseHookOf<P extends PatchName> = OptionsByPatch[P] extends { responseHook?: infer H } ? NonNullable<H> : never;

interface LiveConfig {
  tracer: Tracer | undefined;
  propagation: PropagationRules;
  patches: { [P in PatchName]: OptionsByPatch[P] };
}

function emptyPatches(): LiveConfig['patches'] {
  const patches = {} as Record<PatchName, object>;
  for (const name of PATCH_NAMES) patches[name] = {};
  return patches as LiveConfig['patches'];
}

const live: LiveConfig = {
  tracer: undefined,
  propagation: compilePropagationRules(undefined, true),
  patches: emptyPatches(),
};

/** Validates and applies `options`; throws a clear TypeError on bad input, before anything changes. */
export function configure(options: InstrumentationOptions | undefined): void {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw new TypeError('instrumentation options must be an object');
  const { tracer, propagateTo, propagateBaggage } = options;
  if (tracer !== undefined && (tracer === null || typeof tracer.startSpan !== 'function')) {
    throw new TypeError('options.tracer must be an OpenTracing Tracer');
  }
  if (propagateBaggage !== undefined && typeof propagateBaggage !== 'boolean') {
    throw new TypeError('options.propagateBaggage must be a boolean');
  }
  const propagation = compilePropagationRules(propagateTo, propagateBaggage ?? true);
  const patches = emptyPatches();
  for (const name of PATCH_NAMES) {
    const given = options[name];
    if (given === undefined) continue;
    if (given === null || typeof given !== 'object') throw new TypeError(`options.${name} must be an object`);
    for (const key of ['responseHook', 'requestHook'] as const) {
      const hook = given[key];
      if (hook !== undefined && hook !== null && typeof hook !== 'function') {
        throw new TypeError(`options.${name}.${key} must be a function`);
      }
    }
    (patches as Record<PatchName, object>)[name] = { ...given };
  }
  live.tracer = tracer;
  live.propagation = propagation;
  live.patches = patches;
}

/** The tracer for this call: the configured one, else the global tracer as it is now. */
export function getTracer(): Tracer {
  return live.tracer ?? globalTracer();
}

/** The live options of one patch (read them at call time, not at patch time). */
export function optionsOf<P extends PatchName>(name: P): OptionsByPatch[P] {
  return live.patches[name];
}

export function propagationRules(): PropagationRules {
  return live.propagation;
}

/** Replaces one patch's response hook at run time; `null` removes it. */
export function setResponseHook<P extends PatchName>(patch: P, hook: ResponseHookOf<P> | null): void {
  if (!PATCH_NAMES.includes(patch)) throw new TypeError(`unknown patch name: ${String(patch)}`);
  if (hook !== null && typeof hook !== 'function') throw new TypeError('a response hook must be a function or null');
  live.patches[patch] = { ...(live.patches[patch] as object), responseHook: hook } as OptionsByPatch[P];
}
