/**
 * Differential equivalence: a scenario (one application-level use of a
 * client library) is run without instrumentation, then with it, then with a
 * tracer that fails in one way at a time, in the same test; what the
 * application observed (results, error class/message/code, the order of
 * events, `this`) must be identical every time.
 *
 * A scenario records what the application sees through a `Recorder`; it
 * records only what is stable from run to run (no ports of ephemeral
 * sockets, no timestamps).
 */
import assert from 'assert';
import type { Span, SpanContext, Tracer } from 'opentracing';
import { spanInContext } from '../../src/context';
import { installPatches, uninstallAllPatches } from '../../src/patcher';
import type { InstrumentationOptions, PatchName } from '../../src/options';
import { parentId, spanId, waitFor, type JaegerSpan, type TestTracer } from './tracing';

/** One kind of tracer failure at a time. */
export type Fault = 'startSpan' | 'inject' | 'extract' | 'finish' | 'log' | 'setTag';
export const FAULTS: readonly Fault[] = ['startSpan', 'inject', 'extract', 'finish', 'log', 'setTag'];

/**
 * A test tracer whose methods throw when `fault` names them. `span.finish`
 * records the finish first and then throws (so that the span accounting still
 * sees each span finished exactly once, and a patch that retried a failed
 * finish would show up as a double finish). `hits` counts the throws.
 */
export interface FaultyTracer {
  tracer: Tracer;
  fault: Fault | null;
  hits: Record<Fault, number>;
}

export class InjectedFault extends Error {
  constructor(what: Fault) {
    super(`injected fault: ${what}`);
    this.name = 'InjectedFault';
  }
}

export function withFaults(t: TestTracer): FaultyTracer {
  const state: FaultyTracer = {
    tracer: t.tracer,
    fault: null,
    hits: { startSpan: 0, inject: 0, extract: 0, finish: 0, log: 0, setTag: 0 },
  };
  const fail = (what: Fault): void => {
    if (state.fault === what) {
      state.hits[what]++;
      throw new InjectedFault(what);
    }
  };
  const tracer = t.tracer;
  const startSpan = tracer.startSpan.bind(tracer);
  const inject = tracer.inject.bind(tracer);
  const extract = tracer.extract.bind(tracer);
  tracer.startSpan = function (name: string, options?: object) {
    fail('startSpan');
    const span = startSpan(name, options);
    const finish = span.finish.bind(span);
    const log = span.log.bind(span);
    const setTag = span.setTag.bind(span);
    span.finish = function (time?: number) {
      finish(time);
      fail('finish');
    };
    span.log = function (fields: Record<string, unknown>, time?: number) {
      fail('log');
      return log(fields, time);
    };
    span.setTag = function (key: string, value: unknown) {
      fail('setTag');
      return setTag(key, value);
    };
    return span;
  } as Tracer['startSpan'];
  tracer.inject = function (ctx: SpanContext | Span, format: string, carrier: unknown) {
    fail('inject');
    return inject(ctx, format, carrier);
  } as Tracer['inject'];
  tracer.extract = function (format: string, carrier: unknown) {
    fail('extract');
    return extract(format, carrier);
  } as Tracer['extract'];
  return state;
}

/** What the application saw of an error: everything but its stack. */
export interface ErrorShape {
  class: string;
  name?: unknown;
  message?: unknown;
  code?: unknown;
  errno?: unknown;
  syscall?: unknown;
  status?: unknown;
  keys: string[];
  cause?: ErrorShape | string;
}

export function describeError(err: unknown, depth = 0): ErrorShape | string {
  if (err === null || typeof err !== 'object') return `${typeof err}:${String(err)}`;
  const e = err as Record<string, unknown> & { constructor?: { name?: string }; response?: { status?: unknown } };
  const shape: ErrorShape = {
    class: e.constructor?.name ?? 'Object',
    name: e.name,
    message: e.message,
    code: e.code,
    errno: e.errno,
    syscall: e.syscall,
    status: e.status ?? e.response?.status,
    keys: Object.keys(e).sort(),
  };
  if (e.cause !== undefined && depth < 3) shape.cause = describeError(e.cause, depth + 1);
  return shape;
}

/**
 * Counts microtask turns from now on, up to `cap`: `ticks()` says how many
 * have run. A promise that settles without I/O settles after an exact,
 * reproducible number of turns, so an extra `.then` or `await` added by the
 * instrumentation shows up as a different count. Anything that waits for I/O
 * settles after all `cap` turns (microtasks always run before I/O callbacks),
 * so it reads `cap` every time.
 */
export function microtaskClock(cap = 64): () => number {
  let n = 0;
  const tick = (): void => {
    n++;
    if (n < cap) queueMicrotask(tick);
  };
  queueMicrotask(tick);
  return () => n;
}

/** What the application observed, in order. */
export class Recorder {
  readonly events: unknown[] = [];

  /** An event, with what the app would read from it. */
  event(name: string, detail?: unknown): void {
    this.events.push(detail === undefined ? name : [name, detail]);
  }

  /** An error the app got (thrown, rejected, emitted or passed to a callback). */
  error(where: string, err: unknown): void {
    this.events.push([where, describeError(err)]);
  }

  /** Runs `fn` and records its synchronous throw, if any; returns its result. */
  sync<T>(where: string, fn: () => T): T | undefined {
    try {
      const value = fn();
      this.event(`${where}:returned`);
      return value;
    } catch (err) {
      this.error(`${where}:threw`, err);
      return undefined;
    }
  }

  /** Awaits `promise`, recording its outcome (`detail` maps a result to what is compared). */
  async settle<T>(where: string, promise: Promise<T>, detail?: (value: T) => unknown): Promise<T | undefined> {
    const ticks = microtaskClock();
    return promise.then(
      (value) => {
        this.event(`${where}:resolved`, { ticks: ticks(), value: detail ? detail(value) : undefined });
        return value;
      },
      (err: unknown) => {
        this.error(`${where}:rejected`, err);
        this.event(`${where}:rejected after`, { ticks: ticks() });
        return undefined;
      },
    );
  }
}

export interface Scenario {
  /** e.g. 'GET 200, callback form'. */
  name: string;
  /** Runs once per mode; resolves when everything the app would observe has happened. */
  run(rec: Recorder): Promise<void>;
  /**
   * Client spans the instrumented run must produce under the scenario's
   * parent (default 1; 0 for calls that fail before any I/O).
   */
  spans?: number;
  /**
   * Which of the spans finished during the instrumented run are the
   * scenario's (default: the children of the scenario's parent span; a server
   * scenario counts its server spans).
   */
  spansOf?(finished: JaegerSpan[]): JaegerSpan[];
}

export interface DifferentialSetup {
  /** The patches to install in the instrumented runs. */
  patches: readonly PatchName[];
  options?: Omit<InstrumentationOptions, 'tracer'>;
  t: TestTracer;
  faulty: FaultyTracer;
}

/** Lets pending I/O callbacks of a finished scenario run (late events are recorded too). */
export function settleIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

export interface ModeResult {
  events: unknown[];
  /** Client spans finished under the scenario's parent (instrumented modes). */
  children: JaegerSpan[];
}

/** One run of `scenario`: without instrumentation (`fault` undefined: off), or with it and `fault`. */
export async function runMode(setup: DifferentialSetup, scenario: Scenario, mode: 'off' | 'on' | Fault): Promise<ModeResult> {
  const rec = new Recorder();
  if (mode === 'off') {
    uninstallAllPatches();
    await scenario.run(rec);
    await settleIo();
    return { events: rec.events, children: [] };
  }
  const { t, faulty } = setup;
  installPatches(setup.patches, { ...setup.options, tracer: faulty.tracer });
  const parent = t.tracer.startSpan(`parent of ${scenario.name}`);
  const before = t.spans().length;
  faulty.fault = mode === 'on' ? null : mode;
  try {
    await spanInContext(parent, () => scenario.run(rec));
    await settleIo();
  } finally {
    faulty.fault = null;
    uninstallAllPatches();
    parent.finish();
  }
  // The client spans end with the call (at the latest when its socket closes).
  await waitFor(() => t.accounting.open.size === 0, 3000, `spans of "${scenario.name}" to finish`).catch(() => undefined);
  const finished = t.spans().slice(before);
  const children = scenario.spansOf ? scenario.spansOf(finished) : finished.filter((s) => parentId(s) === spanId(parent));
  return { events: rec.events, children };
}

/**
 * Runs `scenario` without instrumentation, with it, and with each of
 * `faults`, and asserts that the application observed the same thing in
 * every run. Returns the number of runs compared.
 */
export async function assertEquivalent(
  setup: DifferentialSetup,
  scenario: Scenario,
  faults: readonly Fault[] = [],
): Promise<{ runs: number; spans: number }> {
  const off = await runMode(setup, scenario, 'off');
  assert.ok(off.events.length > 0, 'the scenario recorded nothing');
  const on = await runMode(setup, scenario, 'on');
  assert.deepStrictEqual(on.events, off.events, `"${scenario.name}": instrumented run differs from the plain run`);
  const expected = scenario.spans ?? 1;
  assert.strictEqual(on.children.length, expected, `"${scenario.name}": ${on.children.length} client span(s), expected ${expected}`);
  let spans = on.children.length;
  for (const fault of faults) {
    const faulted = await runMode(setup, scenario, fault);
    assert.deepStrictEqual(faulted.events, off.events, `"${scenario.name}" with tracer.${fault} throwing differs from the plain run`);
    spans += faulted.children.length;
  }
  assert.strictEqual(setup.t.accounting.doubleFinished, 0, 'a span was finished twice');
  return { runs: 2 + faults.length, spans };
}
