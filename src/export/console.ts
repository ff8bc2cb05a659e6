/**
 * The `console` exporter: a waterfall per finished trace on stderr, for
 * local development (not for production: it keeps each trace's spans until
 * the trace is printed).
 *
 * A jaeger-client reporter (`report`, `setProcess`, `flush`, `close`, as
 * jaeger's Tracer calls them, dist/src/tracer.js). A trace is printed when
 * its root span (no parent) finishes, or, for a trace whose root is in
 * another process (a server span with a remote parent), once no span of it
 * has finished for `idleMs`. What is still buffered is printed by `flush`
 * (the package flushes at exit) and `close`.
 */
import type { JaegerSpanInternals } from '../internal-types';
import { hexId, isZeroId, plainValue, tagsOf, type TagValue } from './jaeger-span';
import { renderTrace, type WaterfallSpan } from './waterfall';

export interface ConsoleExporterOptions {
  /** Where to write. Default: `process.stderr`. */
  stream?: { write(text: string): unknown; isTTY?: boolean };
  /** ANSI colours. Default: when the stream is a terminal and `NO_COLOR` is not set. */
  color?: boolean;
  /** Milliseconds without a new span after which a trace whose root is elsewhere is printed. Default 500. */
  idleMs?: number;
  /** Spans kept at most across unprinted traces; the oldest trace is printed early beyond it. Default 10000. */
  maxSpans?: number;
}

interface PendingTrace {
  spans: WaterfallSpan[];
  timer: NodeJS.Timeout;
}

/** Jaeger's trace id as it prints it: hex without leading zeros. */
function shortHex(id: Buffer | null | undefined): string {
  const hex = id && id.length > 0 ? id.toString('hex').replace(/^0+/, '') : '';
  return hex || '0';
}

export function toWaterfallSpan(span: JaegerSpanInternals, serviceName: string): WaterfallSpan {
  const ctx = span._spanContext;
  return {
    serviceName,
    traceId: hexId(ctx.traceId, ctx.traceId && ctx.traceId.length > 8 ? 32 : 16),
    spanId: shortHex(ctx.spanId),
    parentSpanId: isZeroId(ctx.parentId) ? '0' : shortHex(ctx.parentId),
    operationName: String(span._operationName),
    startTime: Math.round(span._startTime * 1000),
    duration: Math.round((span._duration ?? 0) * 1000),
    tags: tagsOf(span._tags),
    logs: (span._logs ?? []).map((log) => {
      const fields: Record<string, TagValue> = {};
      for (const f of log.fields ?? []) fields[f.key] = plainValue(f.value);
      return fields;
    }),
  };
}

export class ConsoleReporter {
  private serviceName = 'unknown';
  private readonly pending = new Map<string, PendingTrace>();
  private buffered = 0;
  private readonly stream: NonNullable<ConsoleExporterOptions['stream']>;
  private readonly color: boolean;
  private readonly idleMs: number;
  private readonly maxSpans: number;

  constructor(options: ConsoleExporterOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.color = options.color ?? (this.stream.isTTY === true && !process.env.NO_COLOR);
    this.idleMs = options.idleMs ?? 500;
    this.maxSpans = options.maxSpans ?? 10000;
  }

  name(): string {
    return 'ConsoleReporter';
  }

  setProcess(serviceName: string): void {
    this.serviceName = serviceName;
  }

  report(span: JaegerSpanInternals): void {
    try {
      const s = toWaterfallSpan(span, this.serviceName);
      let trace = this.pending.get(s.traceId);
      if (trace === undefined) {
        const traceId = s.traceId;
        const timer = setTimeout(() => this.print(traceId), this.idleMs);
        timer.unref();
        trace = { spans: [], timer };
        this.pending.set(traceId, trace);
      } else {
        trace.timer.refresh();
      }
      trace.spans.push(s);
      this.buffered++;
      if (s.parentSpanId === '0') this.print(s.traceId);
      else if (this.buffered > this.maxSpans) this.print(this.pending.keys().next().value as string);
    } catch {
      // an exporter never breaks span.finish()
    }
  }

  /** Number of spans not printed yet. */
  pendingCount(): number {
    return this.buffered;
  }

  private print(traceId: string): void {
    const trace = this.pending.get(traceId);
    if (trace === undefined) return;
    this.pending.delete(traceId);
    clearTimeout(trace.timer);
    this.buffered -= trace.spans.length;
    try {
      const spans = trace.spans;
      const root = spans.find((s) => !spans.some((p) => p.spanId === s.parentSpanId)) ?? spans[0];
      const url = root.tags['http.url'];
      const header = `trace ${traceId}  ${root.operationName}${url !== undefined ? ` ${String(url)}` : ''}  ·  ${spans.length} span${spans.length === 1 ? '' : 's'}`;
      const lines = renderTrace(spans, { color: this.color });
      this.stream.write(`${this.color ? `\x1b[1m${header}\x1b[0m` : header}\n${lines.map((l) => `  ${l}`).join('\n')}\n\n`);
    } catch {
      // never into the application
    }
  }

  flush(callback?: () => void): void {
    for (const traceId of [...this.pending.keys()]) this.print(traceId);
    callback?.();
  }

  close(callback?: () => void): void {
    this.flush(callback);
  }
}
