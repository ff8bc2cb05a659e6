/**
 * The `otlp` exporter: the spans jaeger-client's tracer records, sent as
 * OTLP over HTTP/protobuf by OpenTelemetry's own HTTP export machinery
 * (`@opentelemetry/otlp-exporter-base`, as `exporter-trace-otlp-proto`
 * builds it: endpoint and header variables, timeouts, retries with backoff
 * as the OTLP specification says), with the spans encoded by ./otlp-proto.ts
 * straight from jaeger's span objects.
 *
 * `OtlpReporter` is a jaeger-client reporter (`report`, `setProcess`,
 * `close`, as jaeger's Tracer calls them, dist/src/tracer.js; `flush` as this
 * package's flushTracer does). `report()` only puts the finished span in a
 * bounded queue (full: the span is dropped and counted); batches are
 * converted and sent off the `finish()` path: by an unref'd timer, and on
 * the next turn of the loop once a batch is full. The mapping of jaeger's
 * span to OTLP is described in ./otlp-proto.ts. The resource:
 * `service.name` (the tracer's service name), jaeger's tracer tags
 * (hostname, ip, client-uuid, jaeger.version and the application's
 * `JAEGER_TAGS`), and `OTEL_RESOURCE_ATTRIBUTES`.
 *
 * The exporter's own HTTP requests (and their retries) run under
 * `suppressInstrumentation`: never traced. A failed export prints one
 * warning per kind of failure (refused, unresolvable, timeout, an HTTP
 * status), never one per span, and never reaches the application.
 *
 * The OpenTelemetry packages are required on the turn of the event loop
 * after the reporter is made, not while the application's main module runs
 * (so `-r register` starts as fast with `otlp` as without) and not at the
 * first export (loading them takes tens of milliseconds, which would stall
 * the application's event loop in the middle of its traffic).
 */
import type { JaegerSpanInternals } from '../internal-types';
import { suppressInstrumentation } from '../context';
import { logOnce } from '../logger';
import { tagsOf, type TagValue } from './jaeger-span';
import { warnOnce } from '../logger';
import { encodeResource, encodeTraceRequest, ProtoWriter } from './otlp-proto';

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

/** The parts of `@opentelemetry/otlp-exporter-base`'s OTLPExporterBase used here; its items are jaeger spans. */
interface SpanExporterLike {
  export(spans: JaegerSpanInternals[], done: (result: { code: number; error?: Error }) => void): void;
  shutdown(): Promise<void>;
}

type Attributes = Record<string, TagValue>;

/** What is used of `@opentelemetry/otlp-exporter-base/node-http` (0.2xx). */
interface NodeHttpExport {
  convertLegacyHttpOptions(config: object, signal: string, path: string, headers: Record<string, string>): object;
  createOtlpHttpExportDelegate(options: object, serializer: never, componentType: string, metricsHelper: never): never;
}

const EXPORT_SUCCESS = 0;
const SCOPE_NAME = 'opentracing-instrumentation';

/** The URL the OpenTelemetry exporter sends to with these options and this environment (for messages). */
export function otlpTracesUrl(options: OtlpExporterOptions = {}, env: NodeJS.ProcessEnv = process.env): string {
  if (options.url) return options.url;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (base) return `${base.endsWith('/') ? base : `${base}/`}v1/traces`;
  return 'http://localhost:4318/v1/traces';
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
  // OpenTelemetry's delegate refuses an export while 30 of its exports are still in flight (retrying a slow or unreachable collector).
  if (/concurrent export limit/i.test(message)) return { key: 'busy', what: 'too many exports still in flight (the collector is slow to answer or unreachable)' };
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
  private resource: Uint8Array | undefined;
  /** The encoder's buffer, reused from batch to batch. */
  private readonly writer = new ProtoWriter();
  /** Spans the last serialization left out. */
  private encodeFailed = 0;
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
    setImmediate(() => {
      if (!this.closed) this.getExporter();
    }).unref();
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

  /** The resource's attributes, encoded once (the tracer's process may change it: `setProcess`). */
  private resourceBytes(): Uint8Array {
    if (this.resource !== undefined) return this.resource;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { envDetector } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
    const fromEnv = envDetector.detect().attributes ?? {};
    const attributes: Record<string, unknown> = { ...this.processAttributes };
    if (typeof attributes.hostname === 'string' && attributes['host.name'] === undefined) attributes['host.name'] = attributes.hostname;
    Object.assign(attributes, this.options.resourceAttributes, fromEnv, { 'service.name': this.serviceName });
    this.resource = encodeResource(attributes);
    return this.resource;
  }

  /**
   * OpenTelemetry's OTLP/HTTP export (what `exporter-trace-otlp-proto`'s
   * OTLPTraceExporter is made of, through the packages' public entry points)
   * with this file's serializer: the items it is given are jaeger spans.
   */
  private getExporter(): SpanExporterLike | null {
    if (this.exporter !== undefined) return this.exporter;
    try {
      /* eslint-disable @typescript-eslint/no-require-imports */
      const { OTLPExporterBase } = require('@opentelemetry/otlp-exporter-base') as typeof import('@opentelemetry/otlp-exporter-base');
      // A subpath export: typed by hand (this package's tsconfig resolves with `node`, which does not read `exports`).
      const nodeHttp = require('@opentelemetry/otlp-exporter-base/node-http') as NodeHttpExport;
      const { ProtobufTraceSerializer, TraceExporterMetricsHelper } = require('@opentelemetry/otlp-transformer') as typeof import('@opentelemetry/otlp-transformer');
      /* eslint-enable @typescript-eslint/no-require-imports */
      const config: Record<string, unknown> = {};
      if (this.options.url) config.url = this.options.url;
      if (this.options.headers) config.headers = this.options.headers;
      if (this.options.timeoutMillis !== undefined) config.timeoutMillis = this.options.timeoutMillis;
      config.httpAgentOptions = (protocol: string) => this.agent(protocol);
      const serializer = {
        serializeRequest: (spans: JaegerSpanInternals[]): Uint8Array => {
          const encoded = encodeTraceRequest(spans, this.resourceBytes(), SCOPE_NAME, this.writer);
          this.encodeFailed = encoded.failed;
          return encoded.bytes;
        },
        // The collector's answer (partial success) is OpenTelemetry's to read.
        deserializeResponse: (data: Uint8Array) => ProtobufTraceSerializer.deserializeResponse(data),
      };
      const delegate = nodeHttp.createOtlpHttpExportDelegate(
        nodeHttp.convertLegacyHttpOptions(config, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
        serializer as never,
        'otlp_http_span_exporter',
        TraceExporterMetricsHelper as never,
      );
      this.exporter = new OTLPExporterBase(delegate) as unknown as SpanExporterLike;
    } catch (err) {
      warnOnce('otlp-load', `otlp exporter: could not load OpenTelemetry's OTLP exporter packages (${(err as Error).message}); spans are dropped`);
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
    const spans = batch;
    this.inFlight++;
    let ended = false;
    let failedToEncode = 0;
    const done = (result: { code: number; error?: Error }): void => {
      if (ended) return;
      ended = true;
      this.inFlight--;
      if (result.code === EXPORT_SUCCESS) {
        // Spans that could not be encoded (serialized synchronously in export()) were never sent.
        this.exported += spans.length - failedToEncode;
        this.failed += failedToEncode;
      } else {
        this.failed += spans.length;
        const kind = failureKind(result.error);
        warnOnce(`otlp-export-${kind.key}`, `otlp exporter: sending spans to ${this.url} failed: ${kind.what}; those spans are dropped`);
      }
      this.settle();
    };
    this.encodeFailed = 0;
    try {
      // The exporter's requests, retries and timers inherit this context: never traced.
      suppressInstrumentation(() => exporter.export(spans, done));
      failedToEncode = this.encodeFailed;
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
