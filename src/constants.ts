/**
 * Tag keys, operation-name prefixes and component names used by the patches.
 * Keys that OpenTracing's `Tags` defines come from there; the rest live here,
 * so that no hook scatters its own string literals for them.
 */
import { Tags } from 'opentracing';

export const TAG = {
  SPAN_KIND: Tags.SPAN_KIND,
  COMPONENT: Tags.COMPONENT,
  ERROR: Tags.ERROR,
  HTTP_METHOD: Tags.HTTP_METHOD,
  HTTP_URL: Tags.HTTP_URL,
  HTTP_STATUS_CODE: Tags.HTTP_STATUS_CODE,
  PEER_HOSTNAME: Tags.PEER_HOSTNAME,
  PEER_HOST_IPV4: Tags.PEER_HOST_IPV4,
  PEER_HOST_IPV6: Tags.PEER_HOST_IPV6,
  PEER_PORT: Tags.PEER_PORT,
  PEER_SERVICE: Tags.PEER_SERVICE,
  DB_TYPE: Tags.DB_TYPE,
  DB_INSTANCE: Tags.DB_INSTANCE,
  DB_USER: Tags.DB_USER,
  DB_STATEMENT: Tags.DB_STATEMENT,
  /** Not in OpenTracing's Tags: the bound parameter values, only when the user opts in. */
  DB_PARAMETERS: 'db.parameters',
} as const;

export const SPAN_KIND_CLIENT = Tags.SPAN_KIND_RPC_CLIENT; // 'client'
export const SPAN_KIND_SERVER = Tags.SPAN_KIND_RPC_SERVER; // 'server'

/** Fields of the error log, per the OpenTracing semantic conventions. */
export const LOG = {
  EVENT: 'event',
  ERROR_EVENT: 'error',
  ERROR_KIND: 'error.kind',
  ERROR_OBJECT: 'error.object',
  MESSAGE: 'message',
  STACK: 'stack',
} as const;

/** Client calls that follow redirects as one span (fetch; axios logs its redirects the same way). */
export const REDIRECT = {
  /** Log event of each redirect a call followed: the status that redirected, the URL it led to. */
  EVENT: 'redirect',
  /** `error.kind` of a call that failed on a redirect (fetch with `redirect: 'error'`, or one fetch would not follow). */
  ERROR_KIND: 'redirect',
  /** The statuses fetch follows (WHATWG fetch, "redirect status"). */
  STATUSES: new Set([301, 302, 303, 307, 308]),
  /** The redirects fetch follows before it fails the call (WHATWG fetch, HTTP-redirect fetch step 7). */
  FETCH_MAX: 20,
} as const;

export const OPERATION_PREFIX = {
  PG: 'pg:',
  REDIS: 'redis:',
  /** mysql2 and mysql: `mysql:SELECT`. */
  MYSQL: 'mysql:',
} as const;

/** What replaces a secret in a tag value (URL credentials, secret query values). */
export const REDACTED = 'REDACTED';

/** Name of the debug logger: `NODE_DEBUG=opentracing-instrumentation`. */
export const DEBUG_NAME = 'opentracing-instrumentation';

/**
 * Header-name prefixes that carry baggage rather than the span context itself:
 * Jaeger's `uberctx-`, OpenTracing's basic tracers' `ot-baggage-`, W3C `baggage`.
 * Used when `propagateBaggage` is false.
 */
export const BAGGAGE_HEADER_PREFIXES = ['uberctx-', 'ot-baggage-', 'baggage'] as const;

/**
 * Bounds on the baggage sent downstream with each call. Baggage arrives from
 * callers (a trusted caller can send up to Node's header size limit of it)
 * and is forwarded on every hop: without a bound, a caller could make every
 * downstream request too large to be accepted (HTTP 431). The figures are
 * those of the W3C Baggage limits: 64 entries, 8192 bytes (names and values).
 */
export const BAGGAGE_LIMIT = {
  MAX_ITEMS: 64,
  MAX_BYTES: 8192,
} as const;

/** Server spans (src/server.ts, src/hooks/http-server.ts). */
export const SERVER = {
  /** `error.kind` of a span marked failed by its HTTP status (as the http client patch logs it). */
  HTTP_STATUS_ERROR_KIND: 'http_status',
  /** Log event of a request whose connection closed before the response was complete. */
  ABORTED_EVENT: 'aborted',
  /** `component` of the spans the middlewares start. */
  COMPONENT_EXPRESS: 'express',
  COMPONENT_KOA: 'koa',
  /** The Jaeger trace-context header, checked for well-formedness before extraction. */
  JAEGER_CONTEXT_HEADER: 'uber-trace-id',
} as const;

/** The `aws-sdk` patch (AWS SDK for JavaScript v3, src/hooks/aws-sdk.ts). */
export const AWS = {
  /** Operation names: `aws:S3.PutObject`. */
  OPERATION_PREFIX: 'aws:',
  SERVICE: 'aws.service',
  OPERATION: 'aws.operation',
  REGION: 'aws.region',
  REQUEST_ID: 'aws.request_id',
  /** Attempts the SDK made for one `send` (its retries), only when more than one. */
  ATTEMPTS: 'aws.attempts',
  S3_BUCKET: 'aws.s3.bucket',
  DYNAMODB_TABLE_NAME: 'aws.dynamodb.table_name',
  SQS_QUEUE_URL: 'aws.sqs.queue_url',
} as const;

/** Messaging patches (amqplib, bullmq): span kinds, tag keys and operation names beyond `TAG`. */
export const MESSAGING = {
  SPAN_KIND_PRODUCER: Tags.SPAN_KIND_MESSAGING_PRODUCER, // 'producer'
  SPAN_KIND_CONSUMER: Tags.SPAN_KIND_MESSAGING_CONSUMER, // 'consumer'
  /** The exchange (or queue) a message goes to, the queue it comes from. */
  DESTINATION: Tags.MESSAGE_BUS_DESTINATION,
} as const;

/** The amqplib patch (src/hooks/amqplib.ts). */
export const AMQP = {
  PUBLISH: 'amqp:publish',
  CONSUME: 'amqp:consume',
  ROUTING_KEY: 'amqp.routing_key',
  REDELIVERED: 'amqp.redelivered',
  /** How a consumed message's span ended: `ack`, `nack`, `reject`, `noAck`, `closed`, `timeout`. */
  SETTLEMENT: 'amqp.settlement',
  /** Log event of a consumer span finished because its message was not settled in time. */
  TIMEOUT_EVENT: 'settle_timeout',
  /** Log event of a consumer span finished because its channel closed first. */
  CLOSED_EVENT: 'channel_closed',
  /** Default of the `settleTimeout` option, in milliseconds. */
  DEFAULT_SETTLE_TIMEOUT_MS: 60_000,
} as const;

/** The bullmq patch (src/hooks/bullmq.ts). */
export const BULLMQ = {
  ADD: 'bullmq:add',
  PROCESS: 'bullmq:process',
  JOB_ID: 'bullmq.job.id',
  JOB_NAME: 'bullmq.job.name',
  ATTEMPTS_MADE: 'bullmq.job.attempts_made',
} as const;
