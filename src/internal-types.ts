/**
 * Narrow interfaces for the private parts of third-party libraries that the
 * patches touch. Each block names the upstream file it mirrors, so that a
 * change upstream is easy to check against.
 */

/** Node's `IncomingMessage._dump()` (lib/_http_incoming.js): discards a response nobody reads. */
export interface DumpableResponse {
  _dump?: () => void;
}

/*
 * jaeger-client 3.x internals read by the queued UDP reporter (src/reporter.ts).
 */

/** A tag or log field as jaeger's `Span` keeps it (dist/src/span.js `_tags`, `_logs[].fields`). */
export interface RawTag {
  key: string;
  value: unknown;
}

/** A finished span (dist/src/span.js) with its context (dist/src/span_context.js). */
export interface JaegerSpanInternals {
  _spanContext: { traceId: Buffer | null; spanId: Buffer | null; parentId: Buffer | null; flags: number };
  _operationName: string;
  _references: Array<{ type(): string; referencedContext(): { traceId: Buffer | null; spanId: Buffer | null } }>;
  /** Milliseconds since the epoch (fractional). */
  _startTime: number;
  /** Milliseconds (fractional). */
  _duration: number;
  _tags: RawTag[];
  _logs: Array<{ timestamp: number; fields: RawTag[] }>;
}

/** The process a reporter sends with each batch, tags already in thrift form (dist/src/reporters/remote_reporter.js `setProcess`). */
export interface JaegerProcess {
  serviceName: string;
  tags: Array<{
    key: string;
    vType: string | number;
    vStr?: string | null;
    vDouble?: number | null;
    vBool?: boolean | null;
    vLong?: Buffer | null;
    vBinary?: Buffer | null;
  }>;
}

/** dist/src/reporters/udp_sender.js */
export interface JaegerUdpSender {
  _client: { send(buf: Buffer, offset: number, length: number, port: number, host: string, cb: (err: Error | null) => void): void };
  _host: string;
  _port: number;
  _maxPacketSize: number;
  flush(callback?: (numSpans: number, err?: string) => void): void;
}

/**
 * jaeger-client's `SpanContext` (dist/src/span_context.js), the parts that
 * hold baggage: the plain object `_baggage`, read through the `baggage`
 * getter by the text-map and B3 codecs (dist/src/propagators/*.js
 * `inject`). It is never changed in place: `withBaggageItem` returns a new
 * context with a copy, and child contexts share their parent's object.
 */
export interface JaegerSpanContextBaggage {
  _baggage?: unknown;
  readonly baggage?: unknown;
  withBaggageItem?: unknown;
}

/** dist/src/reporters/remote_reporter.js */
export interface JaegerReporterInternals {
  _sender?: unknown;
  _process?: JaegerProcess;
  _metrics?: Partial<Record<'reporterSuccess' | 'reporterDropped' | 'reporterFailure', { increment(n: number): void }>>;
  report(span: JaegerSpanInternals): void;
  flush(callback?: () => void): void;
}

/**
 * axios 1.x, the parts the axios patch touches: `Axios.prototype._request`
 * and `getUri` (lib/core/Axios.js), the config that reaches the adapter
 * (lib/core/dispatchRequest.js), `axios.getAdapter` and `axios.defaults`
 * (lib/axios.js, lib/adapters/adapters.js).
 */
export interface AxiosConfig {
  adapter?: unknown;
  method?: string;
  [key: string]: unknown;
}
export type AxiosAdapter = (this: unknown, config: AxiosConfig) => unknown;
/** The `this` of `_request`: an `Axios` instance. */
export interface AxiosContext {
  defaults?: { adapter?: unknown };
}
export interface AxiosPrototype {
  _request(this: AxiosContext, configOrUrl?: unknown, config?: unknown): unknown;
  getUri(this: AxiosContext, config?: unknown): string;
}
export interface AxiosExports {
  Axios?: { prototype: AxiosPrototype };
  getAdapter?: (adapters: unknown, config?: unknown) => AxiosAdapter;
  defaults?: { adapter?: unknown };
}

/**
 * undici's core `Request` as published on diagnostics_channel
 * (`undici:request:*`, lib/core/request.js; undici 5 to 7, and the copy
 * bundled in Node). `headers` is a flat `[name, value, ...]` array in
 * undici 6 and 7 (a string in 5).
 */
export interface UndiciRequest {
  method: string;
  origin: string | URL;
  path: string;
  headers: unknown;
  addHeader(name: string, value: string): unknown;
}
/** The `response` of `undici:request:headers`: raw header names and values, alternating. */
export interface UndiciResponseHead {
  statusCode: number;
  statusText?: string;
  headers?: ReadonlyArray<Buffer | string | ReadonlyArray<Buffer | string>>;
}

// ---------------------------------------------------------------------------
// pg (node-postgres 8) and pg-pool 3

/** The connection fields of pg's `Client` (pg/lib/client.js, constructor: copied from ConnectionParameters). */
export interface PgClientInternals {
  host?: unknown;
  port?: unknown;
  database?: unknown;
  user?: unknown;
}

/** What `Client.prototype.query` and `.connect` look like (pg/lib/client.js). */
export interface PgClientPrototype extends PgClientInternals {
  query(config: unknown, values?: unknown, callback?: unknown): unknown;
  connect(callback?: unknown): unknown;
  /**
   * The promise class of a client (constructor: `c.Promise || global.Promise`).
   * `query()` without a callback builds its promise with
   * `new this._Promise((resolve, reject) => { query.callback = ... })` and
   * returns that promise's `.catch(...)`; the query callback, the
   * `query_timeout` timer and the `process.nextTick` failures of a client that
   * cannot take the query all settle it through those `resolve`/`reject`.
   */
  _Promise?: unknown;
}

/** pg's exports (pg/lib/index.js); `native` is a lazy getter that must not be touched. */
export interface PgModule {
  Client?: { prototype: PgClientPrototype };
}

/**
 * A pg-pool `Pool` (pg-pool/index.js). `Promise` is its promise class
 * (constructor: `options.Promise || global.Promise`); `query()` without a
 * callback first calls `promisify(this.Promise, cb)`, which builds
 * `new Promise((resolve, reject) => ...)`, keeps `resolve`/`reject` for the
 * callback that every outcome of the query goes through, and returns that
 * promise's `.catch(...)`.
 */
export interface PgPoolInternals {
  query(text: unknown, values?: unknown, cb?: unknown): unknown;
  connect(cb?: unknown): unknown;
  Promise?: unknown;
}

/** pg-pool's `Pool` class (pg-pool/index.js); pg's `Pool` extends it. */
export interface PgPoolClass {
  prototype: PgPoolInternals;
}

/** The executor pg and pg-pool hand their promise class. */
export type PgPromiseExecutor = (resolve: (value: unknown) => void, reject: (reason: unknown) => void) => void;
/** A promise class as pg and pg-pool call it: with `new` and an executor. */
export type PgPromiseClass = new (executor: PgPromiseExecutor) => unknown;

/**
 * A submittable as pg's client drives it (pg/lib/query.js, pg-cursor/index.js,
 * pg-query-stream/dist/index.js): the client calls `handleReadyForQuery` when
 * the statement is over (a cursor also after an early `close()`) and
 * `handleError` when it fails or the connection dies. A QueryStream keeps its
 * text on its `cursor`.
 */
export interface PgSubmittable {
  submit(connection: unknown): unknown;
  text?: unknown;
  values?: unknown;
  name?: unknown;
  cursor?: { text?: unknown; values?: unknown };
  /** pg's Query: a row-parsing error that replaces the error (or success) reported next. */
  _canceledDueToError?: unknown;
  /** pg's Query: the result (an array for a multi-statement query). */
  _results?: unknown;
  /** pg-cursor and pg-query-stream: the result. */
  _result?: unknown;
  [handler: string]: unknown;
}

// ---------------------------------------------------------------------------
// ioredis 4, 5 and 6

/**
 * ioredis' `Command` (ioredis/built/Command.js; ioredis 4: built/command.js).
 * `resolve` and `reject` are per-instance functions set by `initPromise()`;
 * the connection, the offline-queue flush, timeouts and Cluster's redirection
 * all settle a command through them.
 */
export interface IoredisCommand {
  name: string;
  args: unknown[];
  resolve(value: unknown): unknown;
  reject(err: unknown): unknown;
  getKeys?(): unknown[];
  /** Turns the parser's reply (Buffers) into what the application gets; called by `resolve`. */
  transformReply?(reply: unknown): unknown;
  [key: symbol]: unknown;
}

/** The parts of a `Redis` connection the patch reads (ioredis/built/Redis.js). */
export interface IoredisClient {
  options?: { host?: unknown; port?: unknown; path?: unknown; db?: unknown; sentinels?: unknown };
  /** The selected db once connected. */
  condition?: { select?: unknown } | null;
  stream?: { remoteAddress?: unknown; remotePort?: unknown } | null;
  /** Pending auto-pipelines (ioredis/built/autoPipelining.js), by slot key. */
  _autoPipelines?: Map<unknown, unknown>;
  isCluster?: boolean;
  /** `wait`, `connecting`, `connect` (handshake in progress), `ready`, `reconnecting`, `close`, `end`. */
  status?: unknown;
  /**
   * Commands written before a connection closed while ready, resent on the
   * next ready (event_handler.js closeHandler/readyHandler); never settled
   * when the client ends instead (flushQueue leaves them).
   */
  prevCommandQueue?: { toArray?(): Array<{ command?: unknown }> } | null; // a Denque
  /** Commands written and not answered yet (a Denque). */
  commandQueue?: { toArray?(): Array<{ command?: unknown }> } | null;
  /** The pending reconnection, when one is scheduled. */
  reconnectTimeout?: unknown;
  /** Set by `disconnect()`, cleared when the close it asked for is handled. */
  manuallyClosing?: boolean;
  disconnect?(reconnect?: boolean): unknown;
  /** Sets `status` and emits it on the next tick (Redis.js). */
  setStatus?(status: unknown, arg?: unknown): unknown;
  sendCommand(command: IoredisCommand, stream?: unknown, node?: unknown): unknown;
}

/** ioredis' `Pipeline` (ioredis/built/Pipeline.js; ioredis 4: built/pipeline.js). */
export interface IoredisPipeline {
  redis: IoredisClient;
  isCluster?: boolean;
  _queue: IoredisCommand[];
  /** MULTI blocks opened by `.multi()` whose EXEC is not queued yet. */
  _transactions: number;
  resolve(results: unknown): unknown;
  reject(err: unknown): unknown;
  exec(callback?: unknown): unknown;
  sendCommand(command: IoredisCommand): unknown;
  [key: symbol]: unknown;
}

/** ioredis' `Cluster` (ioredis/built/cluster/index.js): its own slot refresh and ready check. */
export interface IoredisClusterPrototype extends IoredisClient {
  getInfoFromNode?(redis: unknown, callback: unknown): unknown;
  readyCheck?(callback: unknown): unknown;
}

/** The module exports: the Redis class itself, with `Cluster` and `Pipeline` (ioredis/built/index.js). */
export interface IoredisModule {
  prototype: IoredisClient;
  Cluster?: { prototype: IoredisClusterPrototype };
  Pipeline?: { prototype: IoredisPipeline };
  /** Connects through Redis Sentinel; `connectToSentinel` makes its own clients to the sentinels (connectors/SentinelConnector). */
  SentinelConnector?: { prototype: { connectToSentinel?(...args: unknown[]): unknown } };
}

// ---------------------------------------------------------------------------
// mysql2 3.x and mysql 2.x

/**
 * The connection settings both drivers keep on a connection (`config`: mysql2's
 * lib/connection_config.js, mysql's lib/ConnectionConfig.js) and on a pool
 * (`config.connectionConfig`).
 */
export interface MysqlConnectionConfig {
  host?: unknown;
  port?: unknown;
  socketPath?: unknown;
  user?: unknown;
  database?: unknown;
}

/**
 * A command of either driver, what `query()`/`execute()` return: an
 * EventEmitter (`fields`, `result`, `end`, `error`) with its callback
 * (mysql2's lib/commands/command.js `onResult`, mysql's
 * lib/protocol/sequences/Sequence.js `_callback`) and its statement text.
 */
export interface MysqlCommand {
  sql?: unknown;
  values?: unknown;
  onResult?: unknown;
  _callback?: unknown;
  emit(event: string | symbol, ...args: unknown[]): boolean;
  on(event: string | symbol, listener: (...args: unknown[]) => void): unknown;
  once(event: string | symbol, listener: (...args: unknown[]) => void): unknown;
}

/** mysql2's `Connection` (lib/base/connection.js since 3.11.5, lib/connection.js before). */
export interface Mysql2ConnectionInternals {
  config?: MysqlConnectionConfig;
  addCommand?: unknown;
  /** What `addCommand` becomes once the connection is closed (same files). */
  _addCommandClosedState?: unknown;
  on(event: string | symbol, listener: (...args: unknown[]) => void): unknown;
  removeListener(event: string | symbol, listener: (...args: unknown[]) => void): unknown;
}

/** mysql2's `Pool` (lib/base/pool.js since 3.11.5, lib/pool.js before). */
export interface Mysql2PoolInternals {
  config?: { connectionConfig?: MysqlConnectionConfig };
}

/** mysql2's `PreparedStatementInfo` (lib/commands/prepare.js), what `prepare()` hands back. */
export interface Mysql2PreparedStatement {
  query?: unknown;
  _connection?: Mysql2ConnectionInternals;
  execute(this: Mysql2PreparedStatement, ...args: unknown[]): unknown;
}

/** mysql2's exports (index.js). */
export interface Mysql2Module {
  Connection?: { prototype: object };
  Pool?: { prototype: object };
}

/** mysql's `Connection` (lib/Connection.js). */
export interface MysqlConnectionInternals {
  config?: MysqlConnectionConfig;
  state?: unknown;
  on(event: string | symbol, listener: (...args: unknown[]) => void): unknown;
  removeListener(event: string | symbol, listener: (...args: unknown[]) => void): unknown;
}

/** mysql's `Pool` (lib/Pool.js). */
export interface MysqlPoolInternals {
  config?: { connectionConfig?: MysqlConnectionConfig };
}

/**
 * The Smithy client base class every `@aws-sdk/client-*` v3 client extends:
 * `Client` of `@smithy/core/client` (smithy-typescript
 * packages/core/src/submodules/client/client.ts, @smithy/core >= 3.24), of
 * `@smithy/smithy-client` before (packages/smithy-client/src/client.ts) and
 * of `@aws-sdk/smithy-client` before the SDK's 3.363 rename.
 */
export interface SmithyClient {
  /** The resolved config (the service's `resolveRuntimeConfig` and `resolve*Config` steps). */
  config?: {
    /** `S3`, `DynamoDB`, `SQS` (runtimeConfig.shared.ts of each client). */
    serviceId?: unknown;
    /** A provider after resolveRegionConfig: `() => Promise<string>`. */
    region?: unknown;
    /** Set for a custom endpoint only (resolveEndpointConfig): `() => Promise<{ hostname, port, protocol, path }>`. */
    endpoint?: unknown;
  };
  send(command: unknown, optionsOrCb?: unknown, cb?: unknown): unknown;
}

/** What a module holding the base class exports (`Client` of the files above). */
export interface SmithyClientModule {
  Client?: { prototype: SmithyClient };
}

/** A command (`new PutObjectCommand(input)`): smithy's `Command` (packages/core/src/submodules/client/command.ts). */
export interface SmithyCommand {
  input?: Record<string, unknown>;
  constructor?: { name?: unknown };
}

/** `$metadata` of an output or a service error (@smithy/types ResponseMetadata). */
export interface SmithyResponseMetadata {
  httpStatusCode?: unknown;
  requestId?: unknown;
  attempts?: unknown;
}

// ---------------------------------------------------------------------------
// node-redis (`@redis/client` 1.x for redis 4, 5.x, 6.x)

/** A command as a batch holds it (@redis/client dist/lib/multi-command.js: `{ args, transformReply }`). */
export interface NodeRedisQueuedCommand {
  args: ReadonlyArray<unknown>;
}

/** The options a client keeps (dist/lib/client/index.js `get options()`), after its URL is parsed. */
export interface NodeRedisClientOptions {
  socket?: { host?: unknown; port?: unknown; path?: unknown };
  database?: unknown;
}

/**
 * `RedisClient` (dist/lib/client/index.js). 5.x/6.x: `sendCommand`,
 * `_executeMulti`, `_executePipeline`; 1.x: `sendCommand`, `multiExecutor`,
 * `executeIsolated`, and one method per command attached by
 * dist/lib/commander.js `attachCommands`. Commands are often called on a
 * proxy (`Object.create(client)`); `_self` is the client itself (5.x/6.x).
 */
export interface NodeRedisClient {
  readonly options?: NodeRedisClientOptions;
  _self?: NodeRedisClient;
  [method: string]: unknown;
}

/** `RedisCommandsQueue` (dist/lib/client/commands-queue.js): every command reaches the wire through `addCommand`. */
export interface NodeRedisQueue {
  addCommand(args: ReadonlyArray<unknown>, options?: unknown): Promise<unknown>;
}

/** The internal modules of `@redis/client` the hook reaches through its main file's directory. */
export interface NodeRedisInternals {
  client: { prototype: NodeRedisClient };
  queue: { prototype: NodeRedisQueue };
  /** 1.x: the command table (dist/lib/client/commands.js) whose names `attachCommands` put on the prototype. */
  commands?: Record<string, unknown>;
  /** 5.x/6.x: `RedisClientPool` (dist/lib/client/pool.js). */
  pool?: { prototype: { execute(fn: unknown): unknown } };
  /** `RedisCluster` (dist/lib/cluster/index.js). */
  cluster?: { prototype: Record<string, unknown> };
  /** `RedisClusterSlots` (dist/lib/cluster/cluster-slots.js): the slot-table refresh. */
  slots?: { prototype: Record<string, unknown> };
}

/*
 * amqplib 0.10 and 2.x internals (src/hooks/amqplib.ts). Both APIs
 * (`amqplib` and `amqplib/callback_api`) build their channels on lib/channel.js.
 */

/** A message as amqplib hands it to a consumer (lib/channel.js `acceptMessage`). */
export interface AmqpMessage {
  fields: { deliveryTag?: number; redelivered?: boolean; exchange?: string; routingKey?: string; consumerTag?: string };
  properties: { headers?: Record<string, unknown> | null; [key: string]: unknown };
  content: unknown;
}

/** What `publish` hands to `sendMessage`: lib/api_args.js `Args.publish` (fields and properties in one object). */
export interface AmqpPublishFields {
  exchange?: string;
  routingKey?: string;
  headers?: Record<string, unknown> | null;
  [key: string]: unknown;
}

/** lib/channel.js `Channel` (the methods the patch wraps or reads). */
export interface AmqpChannel {
  connection?: { stream?: { remoteAddress?: string; remotePort?: number; servername?: string; _host?: string } };
  /** Only on confirm channels (lib/channel_model.js, lib/callback_model.js `ConfirmChannel`). */
  waitForConfirms?: unknown;
  sendMessage(fields: AmqpPublishFields, properties: AmqpPublishFields, content: unknown): boolean;
  pushConfirmCallback(cb: unknown): void;
  sendImmediately(method: number, fields: { deliveryTag?: number; multiple?: boolean; requeue?: boolean }): unknown;
  toClosed(...args: unknown[]): unknown;
}

/** `Channel.prototype` of lib/channel_model.js (promise API) and lib/callback_model.js. */
export interface AmqpModelChannel {
  consume(queue: string, callback: (message: AmqpMessage | null) => unknown, options?: { noAck?: boolean }, ...rest: unknown[]): unknown;
  get(queue: string, options?: { noAck?: boolean }, cb?: (err: unknown, message: AmqpMessage | false) => unknown): unknown;
}

/** The AMQP method ids of lib/defs.js the patch recognizes. */
export interface AmqpDefs {
  BasicAck: number;
  BasicNack: number;
  BasicReject: number;
}

/*
 * BullMQ 5 and 6 (dist/cjs/classes/*.js), the parts src/hooks/bullmq.ts reads or wraps.
 */

/** Job options (interfaces/base-job-options.ts); `telemetry` is BullMQ's context carrier, stored as the job's `tm` field. */
export interface BullJobOpts {
  telemetry?: { metadata?: string; omitContext?: boolean };
  [key: string]: unknown;
}

/** classes/job.js `Job`. */
export interface BullJob {
  id?: string | number;
  name: string;
  queueName?: string;
  attemptsMade?: number;
  opts?: BullJobOpts;
}

/** classes/queue.js `Queue`; `opts.telemetry` is set when BullMQ's own telemetry is on. */
export interface BullQueue {
  name: string;
  opts?: { telemetry?: unknown };
  add(name: string, data: unknown, opts?: BullJobOpts): Promise<BullJob>;
  addBulk(jobs: Array<{ name: string; data: unknown; opts?: BullJobOpts }>): Promise<BullJob[]>;
}

/** A node of a flow (interfaces/flow-job.ts). */
export interface BullFlowJob {
  name: string;
  queueName: string;
  data?: unknown;
  opts?: BullJobOpts;
  children?: BullFlowJob[];
}

/** classes/flow-producer.js `FlowProducer`. */
export interface BullFlowProducer {
  telemetry?: unknown;
  add(flow: BullFlowJob, opts?: unknown): Promise<unknown>;
}

/** classes/worker.js `Worker`: `callProcessJob` runs the processor (in process or sandboxed) for one attempt. */
export interface BullWorker {
  name: string;
  callProcessJob(job: BullJob, token: unknown, signal?: unknown): unknown;
}

/** What the hook reads from the package's (CommonJS) exports. */
export interface BullModule {
  Queue: { prototype: BullQueue };
  Worker: { prototype: BullWorker };
  FlowProducer: { prototype: BullFlowProducer };
}
