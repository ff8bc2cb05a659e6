/**
 * A small wrapper over jaeger-client's `initTracer` / `initTracerFromEnv`
 * that makes its tracer fit to run inside any application:
 *
 * - it becomes the OpenTracing global tracer;
 * - with no sampler configured, every trace is sampled (jaeger-client's own
 *   default is a remote sampler polling an agent that may not be there);
 * - its timers and its UDP socket do not keep the process alive;
 * - its UDP reporter queues finished spans and encodes them in its flush
 *   (src/reporter.ts), not inside `span.finish()`;
 * - its own traffic (HTTP collector, sampling and throttling polls) is never traced;
 * - buffered spans are flushed when the process ends (the loop empties,
 *   SIGINT, SIGTERM), without delaying the exit by more than the flush.
 */
import * as jaeger from 'jaeger-client';
import { globalTracer, initGlobalTracer, Span as NoopSpan, type Tracer } from 'opentracing';
import { suppressInstrumentation } from './context';
import { logOnce } from './logger';
import { prepareTracer, type InstrumentationTracerOptions } from './env-config';
import type { JaegerReporterInternals } from './internal-types';
import { QueuedUdpSender, queuedSpans, queueReports, withQueuedUdpSender } from './reporter';

export type JaegerConfig = jaeger.TracingConfig;
export type JaegerOptions = jaeger.TracingOptions;
export type JaegerTracer = jaeger.JaegerTracer;

/** Internal shapes of jaeger-client 3.x (dist/src/tracer.js, reporters/*, samplers/remote_sampler.js). */
interface TimerOwner {
  _intervalHandle?: NodeJS.Timeout;
  _initialDelayTimeoutHandle?: NodeJS.Timeout;
  _refreshIntervalHandle?: NodeJS.Timeout;
}
interface JaegerSender {
  _client?: { unref?: () => void };
  /** HTTPSender (reporters/http_sender.js): keep-alive agent and request timeout. */
  _httpAgent?: { createConnection?: (...args: unknown[]) => unknown };
  _timeoutMs?: number;
  _batch?: { spans?: unknown[] };
  flush?: (callback?: (numSpans: number, err?: string) => void) => void;
}
interface JaegerReporter extends TimerOwner {
  _sender?: JaegerSender;
  _reporters?: JaegerReporter[];
  flush?: (callback?: () => void) => void;
}
interface JaegerTracerInternals {
  _reporter?: JaegerReporter;
  _sampler?: TimerOwner & { _sampler?: TimerOwner };
  _debugThrottler?: TimerOwner;
}

const TIMER_FIELDS = ['_intervalHandle', '_initialDelayTimeoutHandle', '_refreshIntervalHandle'] as const;

/** Unrefs the timers an object holds now, and those it will store in the same fields later. */
function unrefTimers(owner: TimerOwner | undefined): void {
  if (!owner || typeof owner !== 'object') return;
  for (const field of TIMER_FIELDS) {
    let current = owner[field];
    current?.unref?.();
    try {
      Object.defineProperty(owner, field, {
        configurable: true,
        enumerable: true,
        get: () => current,
        set: (value: NodeJS.Timeout | undefined) => {
          value?.unref?.();
          current = value;
        },
      });
    } catch {
      // a frozen object: the timers already set are unref'd, that is what we can do
    }
  }
}

/**
 * jaeger-client's HTTP sender passes `timeout` to http.request but never acts
 * on the 'timeout' event, so a collector that accepts and never answers keeps
 * the request, its socket and the process alive forever. Destroy such a
 * socket when its timeout fires (the sender then reports the error and drops
 * the batch, as for any failed send).
 */
function boundCollectorRequests(sender: JaegerSender): void {
  const agent = sender._httpAgent;
  const create = agent?.createConnection;
  if (!agent || typeof create !== 'function') return;
  const timeoutMs = sender._timeoutMs ?? 5000;
  agent.createConnection = function (this: unknown, ...args: unknown[]) {
    const socket = create.apply(this, args) as import('net').Socket | undefined;
    if (socket && typeof socket.setTimeout === 'function') {
      socket.setTimeout(timeoutMs);
      socket.on('timeout', () => socket.destroy(new Error(`the collector did not answer within ${timeoutMs} ms`)));
    }
    return socket;
  };
}

function reportersOf(reporter: JaegerReporter | undefined): JaegerReporter[] {
  if (!reporter) return [];
  return [reporter, ...(reporter._reporters ?? []).flatMap(reportersOf)];
}

/** Makes a fresh jaeger tracer process-friendly (see the file comment). */
function tame(tracer: JaegerTracer): JaegerTracer {
  const t = tracer as unknown as JaegerTracerInternals;
  try {
    for (const reporter of reportersOf(t._reporter)) {
      unrefTimers(reporter);
      const sender = reporter._sender;
      if (sender) {
        if (sender instanceof QueuedUdpSender) sender.unref();
        else sender._client?.unref?.();
        boundCollectorRequests(sender);
        const flush = sender.flush;
        if (typeof flush === 'function') {
          // A full buffer flushes inside span.finish(), in the application's context.
          sender.flush = function (this: JaegerSender, ...args) {
            return suppressInstrumentation(() => flush.apply(this, args));
          };
        }
        // Spans are queued by report() and encoded in the flush, off the application's path.
        queueReports(reporter as unknown as JaegerReporterInternals);
      }
    }
    unrefTimers(t._sampler);
    unrefTimers(t._sampler?._sampler);
    unrefTimers(t._debugThrottler);
  } catch (err) {
    logOnce('tame', 'could not adjust the jaeger tracer (timers may keep the process alive)', err);
  }
  return tracer;
}

function withDefaults(config: JaegerConfig | undefined, fromEnv: boolean): JaegerConfig {
  const cfg: JaegerConfig = { ...config };
  const envSampler = fromEnv && process.env.JAEGER_SAMPLER_TYPE;
  if (!cfg.sampler && !envSampler) cfg.sampler = { type: 'const', param: 1 };
  return cfg;
}

let current: JaegerTracer | undefined;
let exitHandlersInstalled = false;

/**
 * Creates a jaeger tracer from `config` (jaeger-client's `TracingConfig`),
 * registers it as the OpenTracing global tracer and returns it.
 */
export function initTracer(config: JaegerConfig, options?: JaegerOptions & InstrumentationTracerOptions): JaegerTracer {
  const prepared = prepareTracer(config, options, false); // src/env-config.ts: propagation, logger
  const cfg = withDefaults(prepared.config, false);
  const tracer = suppressInstrumentation(() =>
    withQueuedUdpSender(() => jaeger.initTracer(cfg, prepared.options)),
  );
  prepared.finish(tracer, cfg);
  return adopt(tame(tracer));
}

/**
 * Like `initTracer`, with the `JAEGER_*` environment variables taking part
 * as in jaeger-client's `initTracerFromEnv` (`JAEGER_SERVICE_NAME`,
 * `JAEGER_AGENT_HOST`, `JAEGER_ENDPOINT`, `JAEGER_SAMPLER_TYPE`, ...).
 */
export function initTracerFromEnv(config?: JaegerConfig, options?: JaegerOptions & InstrumentationTracerOptions): JaegerTracer {
  const prepared = prepareTracer(config, options, true); // src/env-config.ts: checks the environment, propagation, logger
  const cfg = withDefaults(prepared.config, true);
  const tracer = suppressInstrumentation(() =>
    withQueuedUdpSender(() => jaeger.initTracerFromEnv(cfg, prepared.options)),
  );
  prepared.finish(tracer, cfg);
  return adopt(tame(tracer));
}

function adopt(tracer: JaegerTracer): JaegerTracer {
  current = tracer;
  initGlobalTracer(tracer as unknown as Tracer);
  installExitHandlers();
  return tracer;
}

/** True when some tracer other than OpenTracing's no-op one is the global tracer. */
export function isGlobalTracerRegistered(): boolean {
  try {
    // The global tracer is a delegate; with nothing registered it hands out no-op spans.
    return globalTracer().startSpan('opentracing-instrumentation.probe').constructor !== NoopSpan;
  } catch {
    return true;
  }
}

function pendingSpans(tracer: JaegerTracer): number {
  let n = 0;
  for (const reporter of reportersOf((tracer as unknown as JaegerTracerInternals)._reporter)) {
    n += (reporter._sender?._batch?.spans?.length ?? 0) + queuedSpans(reporter);
  }
  return n;
}

/** Sends the spans buffered by the tracer made here; resolves when sent (or failed). */
export function flushTracer(timeoutMs = 2000): Promise<void> {
  const tracer = current;
  if (!tracer) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    try {
      const reporter = (tracer as unknown as JaegerTracerInternals)._reporter;
      if (!reporter || typeof reporter.flush !== 'function') return done();
      suppressInstrumentation(() => reporter.flush!(done));
    } catch (err) {
      logOnce('flush', 'flushing the tracer failed', err);
      done();
    }
  });
}

/** Flushes and closes the tracer made here. */
export function closeTracer(): Promise<void> {
  const tracer = current;
  if (!tracer) return Promise.resolve();
  current = undefined;
  return new Promise<void>((resolve) => {
    try {
      suppressInstrumentation(() => tracer.close(() => resolve()));
    } catch (err) {
      logOnce('close', 'closing the tracer failed', err);
      resolve();
    }
  });
}

function installExitHandlers(): void {
  if (exitHandlersInstalled) return;
  exitHandlersInstalled = true;
  // The loop is empty: flush what is buffered, once per batch (the flush
  // itself adds work, after which beforeExit fires again with nothing to send).
  process.on('beforeExit', () => {
    const tracer = current;
    if (tracer && pendingSpans(tracer) > 0) void flushTracer();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      void flushTracer(1000).then(() => {
        // If the application handles the signal itself, it decides what happens.
        // Otherwise do what Node would have done without us: die by the signal.
        if (process.listenerCount(signal) === 1) {
          process.removeListener(signal, onSignal);
          process.kill(process.pid, signal);
        }
      });
    };
    process.on(signal, onSignal);
  }
}
