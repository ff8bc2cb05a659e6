/**
 * The instrumented modes, each able to switch its instrumentation on and off
 * inside one process, so that every block of instrumented calls is paired
 * with a block of the same calls uninstrumented (its own baseline).
 *
 *   0    control (A/A): "on" and "off" blocks both uninstrumented; shows the method's noise floor
 *   w    floor: the functions our patches wrap, wrapped by functions that only call the original
 *        (what any wrapper costs under this method: the lower bound for 2a and 3u)
 *   2a   this library, OpenTracing's no-op tracer (the instrumentation alone)
 *   2b   this library, jaeger-client with a reporter that drops spans
 *   3    this library, jaeger-client's UDP reporter to a local UDP sink (what a user pays)
 *   3o   this library, jaeger-client with this package's OTLP exporter (`exporter: 'otlp'`,
 *        OTLP/protobuf over HTTP) to a closed loopback port (every export fails at connect)
 *   3u   as 3, with the sampler off (every trace unsampled)
 *   4    OpenTelemetry's http (and https), undici, pg, ioredis, mysql2, mysql, redis, amqplib and
 *        aws-sdk instrumentations, SDK with a processor that drops spans (no bullmq: OpenTelemetry
 *        has no official instrumentation for it)
 *   4e   as 4, BatchSpanProcessor + exporter-trace-otlp-proto to the same closed loopback port
 *   4u   as 4, with the sampler off
 *
 * Calls run inside a parent span of the mode's tracer, as they would inside
 * a traced request handler (OpenTelemetry's ioredis instrumentation traces
 * nothing without one).
 */
import * as path from 'path';
import { ROOT } from './paths';
import type { ClientName } from './clients';

export const MODE_IDS = ['0', 'w', '2a', '2b', '3', '3o', '3u', '4', '4e', '4u'] as const;
export type ModeId = (typeof MODE_IDS)[number];

export const MODE_LABELS: Record<ModeId | '1', string> = {
  '1': 'no instrumentation',
  '0': 'control: A/A, nothing installed',
  w: 'floor: bare pass-through wrappers',
  '2a': 'ours, no-op tracer',
  '2b': 'ours, jaeger, spans dropped',
  '3': 'ours, jaeger UDP reporter',
  '3o': 'ours, OTLP exporter',
  '3u': 'ours, jaeger UDP, unsampled',
  '4': 'OTel SDK, spans dropped',
  '4e': 'OTel SDK, OTLP exporter',
  '4u': 'OTel SDK, unsampled',
};

/** Whose instrumentation a mode runs. */
export function isOurs(mode: ModeId): boolean {
  return mode !== '4' && mode !== '4e' && mode !== '4u' && mode !== '0' && mode !== 'w';
}

export interface ModeConfig {
  udpPort: number;
  /** A loopback port nothing listens on: the OTLP exporters of 3o and 4e send there. */
  closedPort: number;
  /** The flush task: room for all its spans in the OTLP exporter's queue. */
  otlpQueueSize?: number;
}

/** The flush task's longest wait for flushTracer() after the spans are finished, ms (bench/worker.ts). */
export const FLUSH_WINDOW_MS = 3000;

/** Where 3o and 4e export: nothing listens, so each export fails at connect (ECONNREFUSED) and is dropped. */
export function closedOtlpUrl(config: ModeConfig): string {
  return `http://127.0.0.1:${config.closedPort}/v1/traces`;
}

export interface Controller {
  /** Installs (enables) the instrumentation. Idempotent. */
  on(): void;
  /** Uninstalls (disables) it. Idempotent. */
  off(): void;
  /** Why this mode cannot measure `client`, or undefined when it can. */
  unsupported(client: ClientName): string | undefined;
  /** Runs `fn` with the mode's parent span current. */
  inParent<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}


/* eslint-disable @typescript-eslint/no-require-imports */

type OurApi = typeof import('../src/index');
type OurPatchName = import('../src/options').PatchName;

/** Our patch names per client. */
const OUR_PATCH: Record<ClientName, OurPatchName> = {
  http: 'http',
  axios: 'axios',
  fetch: 'fetch',
  pg: 'pg',
  ioredis: 'ioredis',
  mysql2: 'mysql2',
  https: 'https',
  mysql: 'mysql',
  redis: 'redis',
  amqplib: 'amqplib',
  bullmq: 'bullmq',
  'aws-sdk': 'aws-sdk',
};

function ours(mode: ModeId, config: ModeConfig): Controller {
  // The built package, as users load it.
  const lib = require(path.join(ROOT, 'dist', 'index.js')) as OurApi;
  const { instrumentations } = require(path.join(ROOT, 'dist', 'hooks', 'index.js')) as typeof import('../src/hooks/index');
  const available = new Set<string>(instrumentations.map((i) => i.name));
  const opentracing = require('opentracing') as typeof import('opentracing');

  let tracer: import('opentracing').Tracer;
  if (mode === '2a') {
    // Nothing registered: the global tracer hands out OpenTracing's no-op spans.
    tracer = opentracing.globalTracer();
  } else if (mode === '2b') {
    const dropping = { report() {}, close(cb?: () => void) { cb?.(); }, setProcess() {}, flush(cb?: () => void) { cb?.(); } };
    tracer = lib.initTracer(
      { serviceName: 'bench', sampler: { type: 'const', param: 1 } },
      { reporter: dropping as unknown as import('jaeger-client').Reporter },
    ) as unknown as import('opentracing').Tracer;
  } else if (mode === '3o') {
    tracer = lib.initTracer({
      serviceName: 'bench',
      sampler: { type: 'const', param: 1 },
      exporter: { type: 'otlp', url: closedOtlpUrl(config), ...(config.otlpQueueSize ? { maxQueueSize: config.otlpQueueSize } : {}) },
    }) as unknown as import('opentracing').Tracer;
  } else {
    tracer = lib.initTracer({
      serviceName: 'bench',
      sampler: { type: 'const', param: mode === '3u' ? 0 : 1 },
      reporter: { agentHost: '127.0.0.1', agentPort: config.udpPort },
    }) as unknown as import('opentracing').Tracer;
  }
  const parent = tracer.startSpan('bench-parent');
  const names = Object.values(OUR_PATCH);
  let installed = false;
  return {
    on() {
      if (installed) return;
      lib.installPatches(names);
      installed = true;
    },
    off() {
      if (!installed) return;
      lib.uninstallAllPatches();
      installed = false;
    },
    unsupported(client) {
      return available.has(OUR_PATCH[client]) ? undefined : `no ${OUR_PATCH[client]} patch in this build`;
    },
    inParent: (fn) => lib.spanInContext(parent, fn),
    async close() {
      lib.uninstallAllPatches();
      parent.finish();
      if (mode !== '2a') await lib.closeTracer();
    },
  };
}

/** Clients OpenTelemetry has no official instrumentation for. */
const OTEL_MISSING: Partial<Record<ClientName, string>> = { bullmq: 'no official OpenTelemetry bullmq instrumentation' };

function otel(mode: ModeId, config: ModeConfig): Controller {
  const api = require('@opentelemetry/api') as typeof import('@opentelemetry/api');
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const base = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation') as typeof import('@opentelemetry/instrumentation');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const { UndiciInstrumentation } = require('@opentelemetry/instrumentation-undici') as typeof import('@opentelemetry/instrumentation-undici');
  const { PgInstrumentation } = require('@opentelemetry/instrumentation-pg') as typeof import('@opentelemetry/instrumentation-pg');
  const { IORedisInstrumentation } = require('@opentelemetry/instrumentation-ioredis') as typeof import('@opentelemetry/instrumentation-ioredis');
  const { MySQL2Instrumentation } = require('@opentelemetry/instrumentation-mysql2') as typeof import('@opentelemetry/instrumentation-mysql2');
  const { MySQLInstrumentation } = require('@opentelemetry/instrumentation-mysql') as typeof import('@opentelemetry/instrumentation-mysql');
  const { RedisInstrumentation } = require('@opentelemetry/instrumentation-redis') as typeof import('@opentelemetry/instrumentation-redis');
  const { AmqplibInstrumentation } = require('@opentelemetry/instrumentation-amqplib') as typeof import('@opentelemetry/instrumentation-amqplib');
  const { AwsInstrumentation } = require('@opentelemetry/instrumentation-aws-sdk') as typeof import('@opentelemetry/instrumentation-aws-sdk');

  const sampler = mode === '4u' ? new base.AlwaysOffSampler() : new base.AlwaysOnSampler();
  let processor: import('@opentelemetry/sdk-trace-base').SpanProcessor = new base.NoopSpanProcessor();
  if (mode === '4e') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto');
    // The processor's defaults (queue 2048, batches of 512 every 5 s), as users get them.
    processor = new base.BatchSpanProcessor(new OTLPTraceExporter({ url: closedOtlpUrl(config) }));
  }
  const provider = new NodeTracerProvider({ sampler, spanProcessors: [processor] });
  // Registers the AsyncLocalStorage context manager and the W3C propagators, as the SDK does for users.
  provider.register();
  const instrumentations = [
    new HttpInstrumentation(),
    new UndiciInstrumentation(),
    new PgInstrumentation(),
    new IORedisInstrumentation(),
    new MySQL2Instrumentation(),
    new MySQLInstrumentation(),
    new RedisInstrumentation(),
    new AmqplibInstrumentation(),
    new AwsInstrumentation(),
  ];
  // Enables them (require hooks in place before the clients load).
  registerInstrumentations({ instrumentations, tracerProvider: provider });
  let enabled = true;
  const parent = provider.getTracer('bench').startSpan('bench-parent');
  const parentContext = api.trace.setSpan(api.context.active(), parent);
  return {
    on() {
      if (enabled) return;
      for (const i of instrumentations) i.enable();
      enabled = true;
    },
    off() {
      if (!enabled) return;
      for (const i of instrumentations) i.disable();
      enabled = false;
    },
    unsupported: (client) => OTEL_MISSING[client],
    inParent: (fn) => api.context.with(parentContext, fn),
    async close() {
      for (const i of instrumentations) i.disable();
      parent.end();
      // 4e: the final export to the closed port fails (and is retried); that is the point, not an error of the run.
      await provider.shutdown().catch(() => undefined);
    },
  };
}

/* eslint-enable @typescript-eslint/no-require-imports */

/** The A/A control: switching does nothing, so any "added" cost is the method's noise or bias. */
function control(): Controller {
  return {
    on() {},
    off() {},
    unsupported: () => undefined,
    inParent: (fn) => fn(),
    close: async () => undefined,
  };
}

/* eslint-disable @typescript-eslint/no-require-imports */

/** The clients whose wrapped functions the floor mode knows; the later ones have none listed there yet. */
const FLOOR_CLIENTS = new Set<ClientName>(['http', 'axios', 'fetch', 'pg', 'ioredis', 'mysql2']);

type AnyFn = (...args: unknown[]) => unknown;

/**
 * The floor of wrapping: the same functions our patches wrap (http.request
 * and get, Axios.prototype._request, pg's Client and pg-pool's Pool query
 * and connect, ioredis' sendCommand) replaced by functions that only call the
 * original, and for fetch a subscriber to undici's request:create that does
 * nothing. Whatever this adds is what any wrapper costs under this method.
 */
function floor(): Controller {
  const sites: Array<[Record<string, unknown>, string]> = [];
  const http = require('http') as Record<string, unknown>;
  sites.push([http, 'request'], [http, 'get']);
  const axios = require('axios') as { Axios: { prototype: Record<string, unknown> } };
  sites.push([axios.Axios.prototype, '_request']);
  const pg = require('pg') as { Client: { prototype: Record<string, unknown> } };
  const Pool = require('pg-pool') as { prototype: Record<string, unknown> };
  sites.push([pg.Client.prototype, 'query'], [pg.Client.prototype, 'connect'], [Pool.prototype, 'query'], [Pool.prototype, 'connect']);
  const Redis = require('ioredis') as { prototype: Record<string, unknown> };
  sites.push([Redis.prototype, 'sendCommand']);
  // mysql2 3.11.5+: the methods live on the base classes the exported ones extend.
  const mysql2 = require('mysql2') as { Connection: { prototype: object }; Pool: { prototype: object } };
  const connectionBase = Object.getPrototypeOf(mysql2.Connection.prototype) as Record<string, unknown>;
  const poolBase = Object.getPrototypeOf(mysql2.Pool.prototype) as Record<string, unknown>;
  sites.push([connectionBase, 'query'], [connectionBase, 'execute'], [poolBase, 'query'], [poolBase, 'execute'], [poolBase, 'getConnection']);
  const dc = require('diagnostics_channel') as typeof import('diagnostics_channel');
  const onCreate = (): void => undefined;
  const originals = sites.map(([target, name]) => target[name] as AnyFn);
  const wrappers = originals.map(
    (original) =>
      function wrapper(this: unknown) {
        return original.apply(this, arguments as unknown as unknown[]);
      },
  );
  let on = false;
  const off = (): void => {
    if (!on) return;
    sites.forEach(([target, name], i) => (target[name] = originals[i]));
    dc.unsubscribe('undici:request:create', onCreate);
    on = false;
  };
  return {
    on() {
      if (on) return;
      sites.forEach(([target, name], i) => (target[name] = wrappers[i]));
      dc.subscribe('undici:request:create', onCreate);
      on = true;
    },
    off,
    unsupported: (client) => (FLOOR_CLIENTS.has(client) ? undefined : 'no floor sites for this client'),
    inParent: (fn) => fn(),
    close: async () => off(),
  };
}

/* eslint-enable @typescript-eslint/no-require-imports */

/** Sets a mode up; call before any client library is required. Starts with the instrumentation on. */
export function setupMode(mode: ModeId, config: ModeConfig): Controller {
  const controller = mode === '0' ? control() : mode === 'w' ? floor() : isOurs(mode) ? ours(mode, config) : otel(mode, config);
  controller.on();
  return controller;
}
