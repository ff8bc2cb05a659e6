/**
 * Test tracer: a real jaeger-client tracer that samples everything and keeps
 * finished spans in memory, wrapped with span accounting (every started span
 * is counted, every finish is counted, a second finish of a span is flagged).
 * `useTracing()` installs the patches with it for a describe block and checks,
 * when the block ends, that every started span was finished exactly once.
 */
import assert from 'assert';
import * as jaeger from 'jaeger-client';
import type { Span, Tracer } from 'opentracing';
import { installPatches, uninstallAllPatches } from '../../src/patcher';
import { PATCH_NAMES, type InstrumentationOptions, type PatchName } from '../../src/options';
import { setCurrentSpanFunc, spanInContext } from '../../src/context';
import { scanForCanary } from './canary';

// jaeger-client's own class, untyped in @types/jaeger-client.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { InMemoryReporter } = require('jaeger-client') as {
  InMemoryReporter: new () => { spans: JaegerSpan[]; clear(): void };
};

/** The parts of a finished jaeger span that tests read. */
export interface JaegerSpan extends Span {
  operationName: string;
  _tags: Array<{ key: string; value: unknown }>;
  _logs: Array<{ timestamp: number; fields: Array<{ key: string; value: unknown }> }>;
  _references: Array<{ type(): string; referencedContext(): { spanIdStr?: string; toSpanId?: () => string } }>;
  context(): {
    traceIdStr: string;
    spanIdStr: string;
    parentIdStr: string | null;
    toTraceId(): string;
    toSpanId(): string;
    toParentId?(): string;
    isSampled(): boolean;
  };
}

export interface Accounting {
  started: number;
  finished: number;
  doubleFinished: number;
  /** Spans started and not (yet) finished. */
  open: Set<Span>;
}

export interface TestTracer {
  tracer: Tracer;
  /** The test file that created this tracer (from the call stack), for the per-file accounting check. */
  file: string | undefined;
  /** Finished spans, oldest first. */
  spans(): JaegerSpan[];
  clear(): void;
  accounting: Accounting;
  close(): void;
}

/** Every tracer made by `createTestTracer` with accounting checked (test/hooks.ts checks them per file). */
const accountedTracers: TestTracer[] = [];

export function allAccountedTracers(): readonly TestTracer[] {
  return accountedTracers;
}

/** The `*.test.ts` file in the current call stack, if any. */
function callingTestFile(): string | undefined {
  const stack = new Error().stack ?? '';
  const m = /\(?([^()\s]+\.test\.ts):\d+:\d+\)?/.exec(stack);
  return m ? m[1] : undefined;
}

export interface TestTracerOptions {
  sampled?: boolean;
  serviceName?: string;
  /**
   * Default true: the suite checks, when the creating test file ends, that
   * every span this tracer started was finished exactly once. Only a test
   * that breaks `span.finish` on purpose (so that nothing can be finished)
   * turns it off.
   */
  accounted?: boolean;
  /**
   * jaeger-client's header names (its `initTracer` options of the same
   * names): the trace context header (default `uber-trace-id`) and the
   * baggage header prefix (default `uberctx-`).
   */
  contextKey?: string;
  baggagePrefix?: string;
}

/** A sampling jaeger tracer with an in-memory reporter and span accounting. */
export function createTestTracer(options: TestTracerOptions = {}): TestTracer {
  const reporter = new InMemoryReporter();
  // Every finished span of the suite is scanned for the secret canary (test/helpers/canary.ts).
  const report = (reporter as unknown as { report(span: JaegerSpan): void }).report.bind(reporter);
  (reporter as unknown as { report(span: JaegerSpan): void }).report = (span) => {
    scanForCanary(span);
    report(span);
  };
  const tracer = jaeger.initTracer(
    { serviceName: options.serviceName ?? 'test', sampler: { type: 'const', param: options.sampled === false ? 0 : 1 } },
    {
      reporter: reporter as unknown as jaeger.Reporter,
      contextKey: options.contextKey,
      baggagePrefix: options.baggagePrefix,
    } as jaeger.TracingOptions,
  ) as unknown as Tracer;
  const accounting: Accounting = { started: 0, finished: 0, doubleFinished: 0, open: new Set() };
  const startSpan = tracer.startSpan.bind(tracer);
  tracer.startSpan = function (name: string, opts?: object) {
    const span = startSpan(name, opts);
    accounting.started++;
    accounting.open.add(span);
    const finish = span.finish.bind(span);
    let done = false;
    span.finish = function (time?: number) {
      if (done) {
        accounting.doubleFinished++;
        return;
      }
      done = true;
      accounting.finished++;
      accounting.open.delete(span);
      finish(time);
    };
    return span;
  } as Tracer['startSpan'];
  const t: TestTracer = {
    tracer,
    file: callingTestFile(),
    spans: () => reporter.spans,
    clear: () => reporter.clear(),
    accounting,
    close: () => (tracer as unknown as jaeger.JaegerTracer).close(),
  };
  if (options.accounted !== false) accountedTracers.push(t);
  return t;
}

/** The value of tag `key` of a finished span (undefined when absent). */
export function tag(span: JaegerSpan, key: string): unknown {
  const found = span._tags.find((t) => t.key === key);
  return found?.value;
}

/** All tags of a finished span as an object. */
export function tags(span: JaegerSpan): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const t of span._tags) out[t.key] = t.value;
  return out;
}

/** The fields of each log of a finished span, as objects. */
export function logs(span: JaegerSpan): Array<Record<string, unknown>> {
  return span._logs.map((l) => Object.fromEntries(l.fields.map((f) => [f.key, f.value])));
}

/** Hex id of the span's parent (child-of reference), or undefined for a root span. */
export function parentId(span: JaegerSpan): string | undefined {
  const ctx = span.context();
  const id = ctx.parentIdStr;
  return id ? id : undefined;
}

export function spanId(span: Span): string {
  return (span as JaegerSpan).context().spanIdStr;
}

export function traceId(span: Span): string {
  return (span as JaegerSpan).context().traceIdStr;
}

/** Waits until `predicate()` is true (polling), or fails after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Waits until `n` spans have finished. */
export function waitForSpans(t: TestTracer, n: number, timeoutMs = 3000): Promise<JaegerSpan[]> {
  return waitFor(() => t.spans().length >= n, timeoutMs, `${n} finished spans (have ${t.spans().length})`).then(() =>
    t.spans(),
  );
}

/** Asserts that every started span was finished exactly once. */
export async function assertAccountingClean(t: TestTracer, timeoutMs = 3000): Promise<void> {
  const a = t.accounting;
  await waitFor(() => a.open.size === 0, timeoutMs, `all spans finished (${a.open.size} open)`).catch(() => undefined);
  assert.strictEqual(a.doubleFinished, 0, `${a.doubleFinished} span(s) finished twice`);
  assert.strictEqual(a.finished, a.started, `started ${a.started} spans, finished ${a.finished}`);
}

/**
 * For a describe block: installs `patches` (default all) with a fresh test
 * tracer before the block, clears finished spans before each test, and on
 * the way out uninstalls and checks the span accounting.
 */
export function useTracing(
  patches: readonly PatchName[] = PATCH_NAMES,
  options: Omit<InstrumentationOptions, 'tracer'> = {},
  tracerOptions: TestTracerOptions = {},
): TestTracer {
  const t = createTestTracer(tracerOptions);
  before(() => {
    installPatches(patches, { ...options, tracer: t.tracer });
  });
  beforeEach(() => {
    t.clear();
    setCurrentSpanFunc(null);
  });
  after(async () => {
    uninstallAllPatches();
    setCurrentSpanFunc(null);
    try {
      await assertAccountingClean(t);
    } finally {
      // Even when the check fails: an open tracer keeps the process alive.
      t.close();
    }
  });
  return t;
}

/**
 * The error an `error.object` log field stands for: the field is an object
 * whose prototype is the very error the application got (with its message,
 * stack and serialization redacted, see `tagError` in src/span.ts).
 */
export function errorBehind(field: unknown): unknown {
  return field !== null && typeof field === 'object' ? Object.getPrototypeOf(field) : field;
}

/** A test tracer whose `method` (startSpan, inject, ...) throws. */
export function tracerWithBrokenMethod(method: 'startSpan' | 'inject' | 'extract'): TestTracer {
  const t = createTestTracer();
  (t.tracer as unknown as Record<string, unknown>)[method] = () => {
    throw new Error(`${method} broken`);
  };
  return t;
}

/**
 * A test tracer whose spans throw from setTag, log and finish. Not accounted:
 * span.finish is broken before it records anything.
 */
export function tracerWithBrokenSpans(): TestTracer {
  const t = createTestTracer({ accounted: false });
  const startSpan = t.tracer.startSpan.bind(t.tracer);
  t.tracer.startSpan = ((name: string, opts?: object) => {
    const span = startSpan(name, opts) as JaegerSpan;
    const broken = (): never => {
      throw new Error('span broken');
    };
    span.setTag = broken;
    span.log = broken;
    span.finish = broken;
    return span;
  }) as Tracer['startSpan'];
  return t;
}

/** Runs `fn` under a fresh parent span of `t`, finished afterwards; returns the parent and fn's result. */
export async function underParent<T>(t: TestTracer, fn: () => Promise<T>): Promise<{ parent: Span; result: T }> {
  const parent = t.tracer.startSpan('parent');
  try {
    const result = await spanInContext(parent, fn);
    return { parent, result };
  } finally {
    parent.finish();
  }
}
