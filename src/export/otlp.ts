/**
 * The `otlp` exporter: the spans jaeger-client's tracer records, sent as
 * OTLP over HTTP/protobuf by OpenTelemetry's own exporter
 * (`@opentelemetry/exporter-trace-otlp-proto`: encoding, endpoint and
 * header variables, retries with backoff as the OTLP specification says).
 *
 * `OtlpReporter` is a jaeger-client reporter (`report`, `setProcess`,
 * `close`, as jaeger's Tracer calls them, dist/src/tracer.js; `flush` as this
 * package's flushTracer does). `report()` only puts the finished span in a
 * bounded queue (full: the span is dropped and counted); batches are
 * converted and sent off the `finish()` path: by an unref'd timer, and on
 * the next turn of the loop once a batch is full. The conversion builds the
 * `ReadableSpan` shape the OTLP serializer reads (otlp-transformer
 * build/src/trace/protobuf/trace-serializer.js) straight from jaeger's span:
 *
 * - trace id: jaeger's 64- or 128-bit id, left-padded to 16 bytes; span ids 8 bytes;
 * - `span.kind` tag → SpanKind (client, server, producer, consumer; else internal);
 * - the first childOf reference → parentSpanId; followsFrom references (and
 *   further childOf ones) → links;
 * - logs → events named by their `event` field (else `log`), the other fields as attributes;
 * - `error=true` → status ERROR, its message from the error log;
 * - other tags → attributes (objects as JSON, as jaeger serializes them);
 * - resource: `service.name` (the tracer's service name), jaeger's tracer
 *   tags (hostname, ip, client-uuid, jaeger.version and the application's
 *   `JAEGER_TAGS`), and `OTEL_RESOURCE_ATTRIBUTES`.
 *
 * The exporter's own HTTP requests (and their retries) run under
 * `suppressInstrumentation`: never traced. A failed export prints one
 * warning per kind of failure (refused, unresolvable, timeout, an HTTP
 * status), never one per span, and never reaches the application.
 *
 * The OpenTelemetry packages are required on the first export only, so
 * choosing `otlp` adds nothing to the startup of `-r register`.
 */
import type { JaegerSpanInternals } from '../internal-types';
import { suppressInstrumentation } from '../context';
import { logOnce } from '../logger';
import { hexId, isError, isZeroId, plainValue, referencesOf, tagsOf, type TagValue } from './jaeger-span';
import { warnOnce } from '../logger';

export interface OtlpExporterOptions {
  /**
   * Where to send. Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
   * `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else `http://localhost:4318/v1/traces`.
   */
  url?: string;
  /** HTTP headers, added to those of `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS`. */
  headers?: Record<string, string>;
  /** Resource attributes beside `service.name`, jaeger's tracer tags and `OTEL_RESOURCE_ATTRIBUTES` (these win). */
  resourceAttributes?: Record<string, TagValue>;
  /** Spans waiting at most; more are dropped and counted. Default 2048 (OpenTelemetry's BatchSpanProcessor default). */
  maxQueueSize?: number;
  /** Spans per export request at most. Default 512. */
  maxExportBatchSize?: number;
  /** Milliseconds between two scheduled exports. Default 1000. */
  scheduledDelayMillis?: number;
  /** Milliseconds an export (its retries included) may take. Default: `OTEL_EXPORTER_OTLP_TIMEOUT`, else 10000. */
  timeoutMillis?: number;
}

/** The parts of `@opentelemetry/exporter-trace-otlp-proto`'s OTLPTraceExporter used here. */
interface SpanExporterLike {
  export(spans: unknown[], done: (result: { code: number; error?: Error }) => void): void;
  shutdown(): Promise<void>;
}

type Attributes = Record<string, TagValue>;
type HrTime = [number, number];

/** The fields of OpenTelemetry's `ReadableSpan` that the OTLP serializer reads. */
interface OtlpSpan {
  name: string;
  kind: number;
  spanContext(): { traceId: string; spanId: string; traceFlags: number };
  parentSpanContext?: { traceId: string; spanId: string; traceFlags: number; isRemote?: boolean };
  startTime: HrTime;
  endTime: HrTime;
  duration: HrTime;
  ended: boolean;
  status: { code: number; message?: string };
  attributes: Attributes;
  links: Array<{ context: { traceId: string; spanId: string; traceFlags: number }; attributes: Attributes }>;
  events: Array<{ name: string; time: HrTime; attributes: Attributes }>;
  resource: unknown;
  instrumentationScope: { name: string; version?: string };
  droppedAttributesCount: number;
  droppedEventsCount: number;
  droppedLinksCount: number;
}

// @opentelemetry/api SpanKind and SpanStatusCode values (the serializer adds 1 to the kind).
const KIND: Record<string, number> = { server: 1, client: 2, producer: 3, consumer: 4 };
const KIND_INTERNAL = 0;
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;
const EXPORT_SUCCESS = 0;

const SCOPE = { name: 'opentracing-instrumentation' };

/** The URL the OpenTelemetry exporter sends to with these options and this environment (for messages). */
export function otlpTracesUrl(options: OtlpExporterOptions = {}, env: NodeJS.ProcessEnv = process.env): string {
  if (options.url) return options.url;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
  return 'http://localhost:4318/v1/traces';
}

function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

interface SpanContextLike {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

/** A converted span: `ReadableSpan`'s fields, `spanContext()` on the prototype (no closure per span). */
class ConvertedSpan implements OtlpSpan {
  kind = KIND_INTERNAL;
  parentSpanContext: SpanContextLike | undefined = undefined;
  status: OtlpSpan['status'] = { code: STATUS_UNSET };
  links: OtlpSpan['links'] = [];
  events: OtlpSpan['events'] = [];
  ended = true;
  instrumentationScope = SCOPE;
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;
  startTime: HrTime;
  endTime: HrTime;
  duration: HrTime;

  constructor(
    public name: string,
    private readonly context: SpanContextLike,
    public attributes: Attributes,
    public resource: unknown,
    startMs: number,
    durationMs: number,
  ) {
    this.startTime = hrTime(startMs);
    this.endTime = hrTime(startMs + durationMs);
    this.duration = hrTime(durationMs);
  }

  spanContext(): SpanContextLike {
    return this.context;
  }
}

/** Converts one finished jaeger span. */
export function toOtlpSpan(span: JaegerSpanInternals, resource: unknown): OtlpSpan {
  const ctx = span._spanContext;
  const traceId = hexId(ctx.traceId, 32);
  const traceFlags = ctx.flags & 1;
  const attributes = tagsOf(span._tags);
  const out = new ConvertedSpan(
    String(span._operationName),
    { traceId, spanId: hexId(ctx.spanId, 16), traceFlags },
    attributes,
    resource,
    span._startTime,
    span._duration ?? 0,
  );
  const kindTag = attributes['span.kind'];
  if (kindTag !== undefined) {
    if (typeof kindTag === 'string' && KIND[kindTag] !== undefined) out.kind = KIND[kindTag];
    delete attributes['span.kind'];
  }

  let errorLog: Attributes | undefined;
  const logs = span._logs;
  if (logs !== undefined && logs.length > 0) {
    for (const log of logs) {
      const fields: Attributes = {};
      let name = 'log';
      for (const f of log.fields ?? []) {
        if (!f || typeof f.key !== 'string') continue;
        if (f.key === 'event') name = String(f.value);
        else fields[f.key] = plainValue(f.value);
      }
      if (name === 'error' && errorLog === undefined) errorLog = fields;
      out.events.push({ name, time: hrTime(log.timestamp), attributes: fields });
    }
  }
  if (isError(attributes)) {
    out.status.code = STATUS_ERROR;
    const message = errorLog?.message ?? errorLog?.['error.kind'];
    if (message !== undefined) out.status.message = String(message);
  }

  // The parent is the first childOf reference (jaeger also makes a lone
  // followsFrom its parentId; OTLP carries that as a link, as Jaeger's own
  // OTLP translation does); every other reference is a link.
  const refs = span._references;
  if (refs === undefined || refs.length === 0) {
    if (!isZeroId(ctx.parentId)) out.parentSpanContext = { traceId, spanId: hexId(ctx.parentId, 16), traceFlags };
  } else {
    const references = referencesOf(span);
    const parentRef = references.find((r) => r.type === 'child_of');
    if (parentRef !== undefined && !isZeroId(parentRef.spanId)) {
      out.parentSpanContext = { traceId, spanId: hexId(parentRef.spanId, 16), traceFlags };
    }
    for (const ref of references) {
      if (ref === parentRef) continue;
      out.links.push({
        context: { traceId: hexId(ref.traceId, 32), spanId: hexId(ref.spanId, 16), traceFlags },
        attributes: { 'opentracing.ref_type': ref.type },
      });
    }
  }
  return out;
}

/** The kind of a failed export, for one warning per kind. */
function failureKind(error: Error | undefined): { key: string; what: string } {
  const e = (error ?? {}) as { code?: unknown; message?: unknown; name?: unknown };
  const code = e.code;
  const message = typeof e.message === 'string' ? e.message : String(error);
  if (code === 'ECONNREFUSED') return { key: 'refused', what: 'connection refused' };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { key: 'unresolvable', what: `the host does not resolve (${String(code)})` };
  if (code === 'ETIMEDOUT' || /timed? ?out/i.test(message)) return { key: 'timeout', what: 'no answer in time' };
  if (typeof code === 'number') return { key: `http-${code}`, what: `the collector answered HTTP ${code}${message ? ` ${message}` : ''}` };
  if (/retryable status/i.test(message)) return { key: 'http-retryable', what: 'the collector kept answering with a retryable HTTP status (429, 502, 503 or 504)' };
  if (typeof code === 'string') return { key: `code-${code}`, what: `${code} ${message}` };
  return { key: `other-${message.slice(0, 40)}`, what: message };
}

export class OtlpReporter {
  private queue: JaegerSpanInternals[] = [];
  private readonly maxQueueSize: number;
  private readonly maxBatch: number;
  private readonly options: OtlpExporterOptions;
  private readonly url: string;
  private timer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private exporter: SpanExporterLike | null | undefined;
  private resource: unknown;
  private serviceName = 'unknown';
  private processAttributes: Attributes = {};
  private inFlight = 0;
  /** The exporter's sockets (its agent's), to let go of them at exit. */
  private readonly sockets = new Set<import('net').Socket>();
  private released = false;
  private waiters: Array<() => void> = [];
  private closed = false;
  /** Spans dropped because the queue was full. */
  dropped = 0;
  /** Spans whose export failed. */
  failed = 0;
  /** Spans exported. */
  exported = 0;

  constructor(options: OtlpExporterOptions = {}) {
    this.options = options;
    this.maxQueueSize = options.maxQueueSize ?? 2048;
    this.maxBatch = options.maxExportBatchSize ?? 512;
    this.url = otlpTracesUrl(options);
    this.timer = setInterval(() => this.flush(), options.scheduledDelayMillis ?? 1000);
    this.timer.unref();
  }

  name(): string {
    return 'OtlpReporter';
  }

  toString(): string {
    return `OtlpReporter(${this.url})`;
  }

  /** jaeger's Tracer: the service name and its tracer tags (`[{ key, value }]`). */
  setProcess(serviceName: string, tags?: Array<{ key: string; value: unknown }>): void {
    this.serviceName = serviceName;
    this.processAttributes = tagsOf(tags);
    this.resource = undefined;
  }

  report(span: JaegerSpanInternals): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueueSize) {
      if (this.dropped++ === 0) {
        warnOnce('otlp-queue-full', `otlp exporter: more than ${this.maxQueueSize} spans waiting for ${this.url}; spans are dropped until it catches up`);
      }
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.maxBatch && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      }).unref();
    }
  }

  /** Spans queued, not yet handed to the exporter. */
  pendingCount(): number {
    return this.queue.length;
  }

  private buildResource(): unknown {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { resourceFromAttributes, envDetector } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
    const fromEnv = envDetector.detect().attributes ?? {};
    const attributes: Record<string, unknown> = { ...this.processAttributes };
    if (typeof attributes.hostname === 'string' && attributes['host.name'] === undefined) attributes['host.name'] = attributes.hostname;
    Object.assign(attributes, this.options.resourceAttributes, fromEnv, { 'service.name': this.serviceName });
    return resourceFromAttributes(attributes as Attributes);
  }

  private getExporter(): SpanExporterLike | null {
    if (this.exporter !== undefined) return this.exporter;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto');
      const config: Record<string, unknown> = {};
      if (this.options.url) config.url = this.options.url;
      if (this.options.headers) config.headers = this.options.headers;
      if (this.options.timeoutMillis !== undefined) config.timeoutMillis = this.options.timeoutMillis;
      config.httpAgentOptions = (protocol: string) => this.agent(protocol);
      this.exporter = new OTLPTraceExporter(config) as unknown as SpanExporterLike;
    } catch (err) {
      warnOnce('otlp-load', `otlp exporter: could not load @opentelemetry/exporter-trace-otlp-proto (${(err as Error).message}); spans are dropped`);
      this.exporter = null;
    }
    return this.exporter;
  }

  /**
   * The exporter's HTTP agent (keep-alive, as OpenTelemetry's default), with
   * its sockets tracked so that `release()` can stop them from holding the
   * process open: a collector that accepts and never answers would
   * otherwise delay the exit by the whole export timeout (10 s by default).
   */
  private agent(protocol: string): import('http').Agent {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = (protocol === 'https:' ? require('https') : require('http')) as typeof import('http');
    const agent = new mod.Agent({ keepAlive: true });
    const create = agent.createConnection.bind(agent) as (...args: unknown[]) => import('net').Socket | undefined;
    (agent as unknown as { createConnection: (...args: unknown[]) => unknown }).createConnection = (...args: unknown[]) => {
      const socket = create(...args);
      if (socket && typeof socket.once === 'function') {
        if (this.released) socket.unref();
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
      }
      return socket;
    };
    return agent;
  }

  /** At exit, once the exit flush has had its time: exports still in flight no longer keep the process alive. */
  release(): void {
    this.released = true;
    if (this.inFlight > 0) {
      warnOnce('otlp-export-timeout', `otlp exporter: sending spans to ${this.url} failed: no answer in time (at exit); those spans are dropped`);
    }
    for (const socket of this.sockets) socket.unref();
  }

  /** Sends everything queued now; `callback` once those exports have ended (sent or failed). */
  flush(callback?: () => void): void {
    if (callback) this.waiters.push(callback);
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
        this.queue = batch === this.queue ? [] : this.queue.slice(this.maxBatch);
        this.send(batch);
      }
    } catch (err) {
      logOnce('otlp-flush', 'otlp exporter: a flush failed', err);
    }
    this.settle();
  }

  private send(batch: JaegerSpanInternals[]): void {
    const exporter = this.getExporter();
    if (exporter === null) {
      this.failed += batch.length;
      return;
    }
    if (this.resource === undefined) this.resource = this.buildResource();
    const spans: OtlpSpan[] = [];
    for (const span of batch) {
      try {
        spans.push(toOtlpSpan(span, this.resource));
      } catch (err) {
        this.failed++;
        logOnce('otlp-convert', 'otlp exporter: a span could not be converted; dropped', err);
      }
    }
    if (spans.length === 0) return;
    this.inFlight++;
    let ended = false;
    const done = (result: { code: number; error?: Error }): void => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      if (result.code === EXPORT_SUCCESS) {
        this.exported += spans.length;
      } else {
        this.failed += spans.length;
        const kind = failureKind(result.error);
        warnOnce(`otlp-export-${kind.key}`, `otlp exporter: sending spans to ${this.url} failed: ${kind.what}; those spans are dropped`);
      }
      this.settle();
    };
    try {
      // The exporter's requests, retries and timers inherit this context: never traced.
      suppressInstrumentation(() => exporter.export(spans, done));
    } catch (err) {
      done({ code: 1, error: err as Error });
    }
  }

  private settle(): void {
    if (this.inFlight > 0 || this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      try {
        w();
      } catch (err) {
        logOnce('otlp-flush-callback', 'otlp exporter: a flush callback threw', err);
      }
    }
  }

  /** jaeger's Tracer#close: sends what is queued, then shuts the exporter down. */
  close(callback?: () => void): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.flush(() => {
      this.closed = true;
      const exporter = this.exporter;
      if (!exporter) return callback?.();
      suppressInstrumentation(() => exporter.shutdown()).then(
        () => callback?.(),
        () => callback?.(),
      );
    });
  }
}
