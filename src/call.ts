/**
 * The call lifecycle every client hook shares: start the span from the
 * current parent (or the stand-in for a sampled-out parent), set its tags,
 * run the request hook, inject, then finish exactly once (tag the error or
 * run the response hook, then `span.finish()`). A hook file says only where
 * a call starts and ends, its operation name and tags, and how its library
 * completes; the helpers at the end of this file cover the completion styles
 * (callback, emitter, promise).
 *
 * Messaging hooks use the same lifecycle with `kind: 'producer'` (inject into
 * the message's headers with `injectInto`) and `kind: 'consumer'` (a span that
 * follows from, or is a child of, the context extracted from the message).
 */
import { errorMonitor, type EventEmitter } from 'events';
import {
  followsFrom as followsFromRef,
  childOf as childOfRef,
  FORMAT_HTTP_HEADERS,
  type Reference,
  type Span,
  type SpanContext,
} from 'opentracing';
import { SERVER, TAG } from './constants';
import { currentSpanIn, currentStore } from './context';
import type { PatchName } from './hooks';
import { logOnce, safeCall } from './logger';
import { getTracer, optionsOf } from './options';
import { jaegerContextIsWellFormed } from './propagation';
import { finishSpan, injectHttpHeaders, isRecording, setTags, startSpanUnder, type TagMap } from './span';

/** `span.kind` of a call: an outbound call, a message sent, a message handled. */
export type CallKind = 'client' | 'producer' | 'consumer';

/**
 * What a call starts from. A hook whose calls differ only by their subject
 * (ioredis: the Command) keeps one spec and passes the subject to
 * `startCall`: its functions receive it, so no closure is made per call.
 */
export interface CallSpec<Request, Subject = undefined> {
  /** Operation name: `mysql:SELECT`; a function of the subject when it varies with it. */
  readonly operationName: string | ((subject: Subject) => string);
  /** `span.kind`. Default: `client`. */
  readonly kind?: CallKind;
  /** `component` tag. Default: the patch name. */
  readonly component?: string;
  /**
   * Adds the call's tags to `tags` (which already holds `span.kind` and
   * `component`). Only called when the span records, so work done here is
   * never paid for an unsampled call. May throw: the span keeps the base tags.
   */
  readonly tags?: (tags: TagMap, subject: Subject) => void;
  /** What the request hook receives; a function is called only when there is a hook. */
  readonly request?: Request | ((subject: Subject) => Request);
  /**
   * The parent span. Default: the current span (`getCurrentSpan()`, the
   * custom getter consulted now). For a consumer: ignored, see `remote`.
   */
  readonly parent?: Span | null;
  /**
   * Consumers: the producer's context extracted from the message (undefined:
   * the message carried none, the span starts a new trace), referenced as
   * `reference` (default `followsFrom`).
   */
  readonly remote?: SpanContext;
  readonly reference?: 'followsFrom' | 'childOf';
  /**
   * The error as logged on the span, when it must differ from what the
   * application receives (arguments a server echoes, credentials).
   */
  readonly loggableError?: (err: unknown) => unknown;
}

/** One traced call. `finish` may be called any number of times; only the first counts. */
export class Call<Response = unknown, State = unknown> {
  private done = false;

  /** The hook's own state of this call, when it needs one (ioredis: the cluster node to tag at the end). */
  state: State | undefined = undefined;

  constructor(
    readonly patch: PatchName,
    readonly span: Span,
    readonly recording: boolean,
    private readonly loggable: ((err: unknown) => unknown) | undefined,
  ) {}

  /** True once the span has been finished. */
  get finished(): boolean {
    return this.done;
  }

  /** Sets tags, only when the span records; a failing tracer is contained. */
  setTags(tags: TagMap): void {
    if (this.recording) setTags(this.span, tags);
  }

  /**
   * Writes the span's context into `carrier` as the tracer writes HTTP
   * headers (propagateTo judged against `host` when given), into a copy the
   * caller made: never the application's own object. Returns what was written.
   */
  injectInto(carrier: Record<string, unknown>, host?: string): Record<string, string> {
    return injectHttpHeaders(this.span, host, (name, value) => {
      carrier[name] = value;
    });
  }

  /**
   * Ends the call: with `err` (not undefined/null), the span is tagged as
   * failed; else, when `hasResponse`, the response hook sees `response`.
   * Then the span finishes. Only the first call counts.
   */
  finish(err?: unknown, response?: Response, hasResponse?: boolean): void {
    if (this.done) return;
    if (hasResponse === undefined) hasResponse = arguments.length >= 2;
    this.done = true;
    if (err !== undefined && err !== null) {
      let logged: unknown = err;
      if (this.loggable !== undefined) {
        try {
          logged = this.loggable(err);
        } catch (e) {
          logOnce(`${this.patch}:loggableError`, `could not redact an error of the ${this.patch} patch`, e);
        }
      }
      finishSpan(this.span, logged);
      return;
    }
    if (hasResponse) this.runResponseHook(response);
    finishSpan(this.span);
  }

  /**
   * Runs the response hook on `response` without finishing the call: for a
   * reply that still fails the call (a batch some of whose commands failed),
   * `finish(err)` follows. Does nothing once the call is finished.
   */
  respond(response: Response): void {
    if (!this.done) this.runResponseHook(response);
  }

  private runResponseHook(response: Response | undefined): void {
    const hook = optionsOf(this.patch).responseHook as ((r: unknown, s: Span) => unknown) | null | undefined;
    // The site's name is built only when there is a hook to run (most calls have none).
    if (typeof hook === 'function') safeCall(`${this.patch} responseHook`, hook, response, this.span);
  }

  /**
   * A node-style callback that finishes the call with its `(err, result)`
   * and then calls `callback` with its own `this` and arguments. `length` is kept.
   */
  callback<F extends (...args: never[]) => unknown>(callback: F): F {
    const call = this;
    const wrapped = function (this: unknown, err: unknown, result: unknown): unknown {
      call.finish(err, result as Response, true);
      return (callback as unknown as (...a: unknown[]) => unknown).apply(this, arguments as unknown as unknown[]);
    };
    Object.defineProperty(wrapped, 'length', { value: callback.length, configurable: true });
    return wrapped as unknown as F;
  }

  /**
   * Finishes the call when `emitter` emits `end` (with the response the
   * function gives, if any) or an error, observed through `errorMonitor` so
   * that who handles the error is unchanged; `close` without either ends it too.
   */
  emitter(emitter: EventEmitter, end = 'end', response?: () => Response): void {
    emitter.on(errorMonitor, (err: unknown) => this.finish(err));
    const onEnd = (): void => {
      if (response !== undefined) this.finish(undefined, response(), true);
      else this.finish();
    };
    emitter.once(end, onEnd);
    if (end !== 'close') emitter.once('close', () => this.finish());
  }
}

/** Options every patch shares, read live. */
interface SharedOptions {
  requestHook?: ((span: Span, request: unknown) => unknown) | null;
  responseHook?: ((response: unknown, span: Span) => unknown) | null;
  requireParentSpan?: boolean;
}

function startConsumerSpan<Subject>(patch: PatchName, operationName: string, spec: CallSpec<unknown, Subject>, tags: TagMap): Span | undefined {
  const options = optionsOf(patch) as SharedOptions;
  if (spec.remote === undefined && options.requireParentSpan === true) return undefined;
  try {
    const references: Reference[] = [];
    if (spec.remote !== undefined) references.push(spec.reference === 'childOf' ? childOfRef(spec.remote) : followsFromRef(spec.remote));
    return getTracer().startSpan(operationName, { references, tags: tags as Record<string, unknown> });
  } catch (err) {
    logOnce(`startSpan:${patch}`, `tracer.startSpan threw in the ${patch} patch; the message is handled untraced`, err);
    return undefined;
  }
}

/** True for an object that can stand for a span (a tracer may hand back null or anything). */
function isSpan(value: unknown): value is Span {
  return value !== null && typeof value === 'object' && typeof (value as Span).finish === 'function' && typeof (value as Span).context === 'function';
}

/**
 * Starts one traced call of `patch`, or returns undefined when it must not be
 * traced (suppressed, no parent under `requireParentSpan`, a tracer that
 * fails or hands back no span): the hook then calls the library as if
 * uninstrumented. Never throws.
 */
export function startCall<Request = unknown, Response = unknown, Subject = undefined, State = unknown>(
  patch: PatchName,
  spec: CallSpec<Request, Subject>,
  subject?: Subject,
): Call<Response, State> | undefined {
  // One read of the context for the whole start: suppression and the parent.
  const store = currentStore();
  if (store !== undefined && store.suppressed) return undefined;
  const kind = spec.kind ?? 'client';
  const base: TagMap = { [TAG.SPAN_KIND]: kind, [TAG.COMPONENT]: spec.component ?? patch };
  let span: Span | undefined;
  try {
    const operationName = typeof spec.operationName === 'function' ? spec.operationName(subject as Subject) : spec.operationName;
    span =
      kind === 'consumer'
        ? startConsumerSpan(patch, operationName, spec as CallSpec<unknown, Subject>, base)
        : startSpanUnder(patch, operationName, spec.parent === undefined ? currentSpanIn(store) : (spec.parent ?? undefined), base);
  } catch (err) {
    logOnce(`start:${patch}`, `could not start a ${patch} span; the call goes on untraced`, err);
    return undefined;
  }
  if (!isSpan(span)) return undefined;
  let recording: boolean;
  try {
    recording = isRecording(span);
  } catch {
    recording = true;
  }
  const call = new Call<Response, State>(patch, span, recording, spec.loggableError);
  if (recording && spec.tags !== undefined) {
    try {
      const tags: TagMap = {};
      spec.tags(tags, subject as Subject);
      setTags(span, tags);
    } catch (err) {
      logOnce(`tags:${patch}`, `could not build the tags of a ${patch} span`, err);
    }
  }
  const hook = (optionsOf(patch) as SharedOptions).requestHook;
  if (typeof hook === 'function') {
    let request: unknown;
    try {
      request = typeof spec.request === 'function' ? (spec.request as (subject: Subject) => Request)(subject as Subject) : spec.request;
    } catch (err) {
      logOnce(`request:${patch}`, `could not build the request the ${patch} request hook receives`, err);
    }
    safeCall(`${patch} requestHook`, hook, span, request);
  }
  return call;
}

/**
 * The context a message carries in `headers` (an object of header names to
 * string or Buffer values, as AMQP and job queues keep them), extracted with
 * the tracer's HTTP-headers codec; undefined when there is none or it is
 * malformed. Never throws: a message's headers come from whoever sent it.
 */
export function extractFrom(patch: PatchName, headers: unknown): SpanContext | undefined {
  if (headers === null || typeof headers !== 'object') return undefined;
  const carrier: Record<string, string> = {};
  try {
    let n = 0;
    for (const key of Object.keys(headers)) {
      if (++n > 256) break; // a hostile message with a huge header table: the trace context is among the first
      const value = (headers as Record<string, unknown>)[key];
      if (typeof value === 'string') carrier[key.toLowerCase()] = value;
      else if (Buffer.isBuffer(value) && value.length <= 8192) carrier[key.toLowerCase()] = value.toString('utf8');
    }
    const jaeger = carrier[SERVER.JAEGER_CONTEXT_HEADER];
    if (jaeger !== undefined && !jaegerContextIsWellFormed(jaeger)) delete carrier[SERVER.JAEGER_CONTEXT_HEADER];
    const context = getTracer().extract(FORMAT_HTTP_HEADERS, carrier);
    if (context === null || context === undefined) return undefined;
    // OpenTracing's no-op tracer extracts an empty context: no trace to follow.
    const ids = context as { toTraceId?: () => string };
    if (typeof ids.toTraceId === 'function' && !ids.toTraceId()) return undefined;
    return context;
  } catch (err) {
    logOnce(`extract:${patch}`, `could not extract a trace context from a ${patch} message; it starts a new trace`, err);
    return undefined;
  }
}
