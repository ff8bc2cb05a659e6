/**
 * Where spans go: `OPENTRACING_INSTRUMENTATION_EXPORTER` (for `register` and
 * `initTracerFromEnv`) or the `exporter` option of `initTracer*`.
 *
 * - `jaeger` (default): jaeger-client's own reporting (UDP agent or HTTP
 *   collector per `JAEGER_*`); nothing is built here.
 * - `otlp`: OTLP over HTTP/protobuf (otlp.ts).
 * - `console`: a waterfall per trace on stderr (console.ts).
 * - `none`: spans are recorded by the tracer (so trace context still flows
 *   downstream) and dropped.
 *
 * The reporter modules are loaded only for the exporter chosen.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import type { ConsoleExporterOptions } from './console';
import type { OtlpExporterOptions } from './otlp';
import { warnOnce } from '../logger';

export type { ConsoleExporterOptions } from './console';
export type { OtlpExporterOptions } from './otlp';

export const EXPORTER_ENV = 'OPENTRACING_INSTRUMENTATION_EXPORTER';
export const EXPORTER_NAMES = ['jaeger', 'otlp', 'console', 'none'] as const;
export type ExporterName = (typeof EXPORTER_NAMES)[number];

/** An exporter by name, or with its options. */
export type ExporterOption =
  | ExporterName
  | ({ type: 'otlp' } & OtlpExporterOptions)
  | ({ type: 'console' } & ConsoleExporterOptions)
  | { type: 'jaeger' | 'none' };

/** What jaeger-client's Tracer calls on its reporter (dist/src/tracer.js), and `flush` (this package's flushTracer). */
export interface SpanReporter {
  name(): string;
  report(span: unknown): void;
  setProcess(serviceName: string, tags: Array<{ key: string; value: unknown }>): void;
  flush(callback?: () => void): void;
  close(callback?: () => void): void;
}

class DroppingReporter implements SpanReporter {
  name(): string {
    return 'DroppingReporter';
  }
  report(): void {}
  setProcess(): void {}
  flush(callback?: () => void): void {
    callback?.();
  }
  close(callback?: () => void): void {
    callback?.();
  }
}

/** The exporter name a value of the environment variable stands for (`undefined`: the default). */
export function exporterFromEnv(env: NodeJS.ProcessEnv = process.env): ExporterName | undefined {
  const raw = env[EXPORTER_ENV]?.trim().toLowerCase();
  if (!raw) return undefined;
  if ((EXPORTER_NAMES as readonly string[]).includes(raw)) return raw as ExporterName;
  warnOnce(`exporter-env:${raw}`, `${EXPORTER_ENV}=${env[EXPORTER_ENV]} is not one of ${EXPORTER_NAMES.join(', ')}; using jaeger`);
  return undefined;
}

/**
 * The reporter for `option` (a name or an object with `type`), or
 * `undefined` for jaeger-client's own (`jaeger`, nothing chosen, or an
 * unknown value, with a warning).
 */
export function reporterFor(option: ExporterOption | undefined): SpanReporter | undefined {
  if (option === undefined) return undefined;
  const type = typeof option === 'string' ? option : option?.type;
  switch (type) {
    case 'jaeger':
      return undefined;
    case 'none':
      return new DroppingReporter();
    case 'otlp': {
      const { OtlpReporter } = require('./otlp') as typeof import('./otlp');
      return new OtlpReporter(typeof option === 'object' ? (option as OtlpExporterOptions) : {}) as unknown as SpanReporter;
    }
    case 'console': {
      const { ConsoleReporter } = require('./console') as typeof import('./console');
      return new ConsoleReporter(typeof option === 'object' ? (option as ConsoleExporterOptions) : {}) as unknown as SpanReporter;
    }
    default:
      warnOnce(`exporter-option:${String(type)}`, `exporter option ${JSON.stringify(type)} is not one of ${EXPORTER_NAMES.join(', ')}; using jaeger`);
      return undefined;
  }
}
