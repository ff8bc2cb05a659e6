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
