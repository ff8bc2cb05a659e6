/**
 * BullMQ 5 and 6 (the CommonJS build, dist/cjs; the ES module build waits
 * for the ESM loader): a producer span per job added (`Queue#add`,
 * `Queue#addBulk`, every node of `FlowProducer#add`) and a consumer span per
 * processing attempt (`Worker#callProcessJob`, which runs the processor,
 * sandboxed or not).
 *
 * Where the context travels: in the job's own telemetry field,
 * `opts.telemetry.metadata` (stored in Redis as the job's `tm` field), the
 * carrier BullMQ's built-in telemetry uses for exactly this, as the JSON of
 * the trace headers (the format of bullmq-otel's context manager). `data`
 * stays the application's. The caller's options are copied, never mutated.
 * When BullMQ's own telemetry is configured on the queue (it writes `tm`
 * itself), or the job sets `telemetry.omitContext`, nothing is injected.
 */
import { BULLMQ, MESSAGING } from '../constants';
import { extractFrom, startCall, type Call } from '../call';
import { spanInContext } from '../context';
import type { Instrumentation } from '../instrumentation';
import type { BullFlowJob, BullFlowProducer, BullJob, BullJobOpts, BullModule, BullQueue, BullWorker } from '../internal-types';
import { logOnce } from '../logger';
import { optionsOf, type PatchOptions } from '../options';
import { unwrapMethod, wrapMethod } from '../wrap';

/** What the bullmq request hook receives: the job being added (name, data, options as given), or the job about to be processed. */
export type BullmqRequest = { operation: 'add'; queue: string; name: string; data: unknown; opts: BullJobOpts | undefined } | { operation: 'process'; job: BullJob };

/** Options of the `bullmq` patch. */
export interface BullmqOptions extends PatchOptions<BullmqRequest, unknown> {
  /**
   * How a job's processing span refers to the span that added the job.
   * @default 'followsFrom'
   */
  consumerReference?: 'followsFrom' | 'childOf';
}

const PATCH = 'bullmq';
/** Longest `tm` read back (the trace headers of one context are well under it). */
const MAX_METADATA = 16384;

function startAdd(queue: string, name: unknown, data: unknown, opts: BullJobOpts | undefined): Call | undefined {
  return startCall<BullmqRequest>(PATCH, {
    operationName: BULLMQ.ADD,
    kind: MESSAGING.SPAN_KIND_PRODUCER,
    tags: (t) => {
      t[MESSAGING.DESTINATION] = queue;
      t[BULLMQ.JOB_NAME] = String(name);
    },
    request: () => ({ operation: 'add', queue, name: String(name), data, opts }),
  });
}

/** A copy of `opts` whose telemetry metadata carries `call`'s context (`opts` itself when it must not). */
function withContext(call: Call | undefined, opts: BullJobOpts | undefined, ownTelemetry: boolean): BullJobOpts | undefined {
  if (call === undefined || ownTelemetry || opts?.telemetry?.omitContext === true) return opts;
  try {
    let carrier: Record<string, unknown> = {};
    const given = opts?.telemetry?.metadata;
    if (typeof given === 'string' && given !== '') {
      const parsed = JSON.parse(given) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return opts; // someone else's format: left alone
      carrier = { ...(parsed as Record<string, unknown>) };
    }
    call.injectInto(carrier);
    return { ...opts, telemetry: { ...opts?.telemetry, metadata: JSON.stringify(carrier) } };
  } catch (err) {
    logOnce('bullmq:inject', 'could not add the trace context to a job', err);
    return opts;
  }
}

function finishAdd(call: Call | undefined, job: BullJob | undefined): void {
  if (call === undefined) return;
  if (job !== undefined && job !== null) call.setTags({ [BULLMQ.JOB_ID]: job.id === undefined ? undefined : String(job.id) });
  call.finish(undefined, job, true);
}

/** Follows `promise` beside its caller (who gets it unchanged): `done` with its value or `failed` with its reason. */
function observe<T>(promise: Promise<T>, done: (value: T) => void, failed: (err: unknown) => void): Promise<T> {
  promise.then(done, failed);
  return promise;
}

/**
 * The `add` / `addBulk` running its synchronous part now. Both are async
 * methods whose first statement is `return this.trace(kind, operation, ...)`
 * (QueueBase#trace): the promise `trace` returns is BullMQ's own inner
 * promise, which the method's own promise adopts. The span follows that
 * inner one; the promise the application gets is never touched, so a
 * rejection it ignores is still reported as unhandled, for that promise.
 */
let pendingAdd: { queue: object; operation: 'add' | 'addBulk'; settled: (err: unknown, value?: unknown) => void; seen: boolean } | undefined;

/** Runs `run` (the original add/addBulk) with `settled` waiting for its inner `trace` promise; false when BullMQ never called `trace`. */
function throughTrace(queue: object, operation: 'add' | 'addBulk', settled: (err: unknown, value?: unknown) => void, run: () => unknown): boolean {
  const previous = pendingAdd;
  const pending = { queue, operation, settled, seen: false };
  pendingAdd = pending;
  try {
    run();
  } finally {
    pendingAdd = previous;
  }
  return pending.seen;
}

function wrapTrace(original: (...args: unknown[]) => unknown): (...args: unknown[]) => unknown {
  return function trace(this: object) {
    const pending = pendingAdd;
    if (pending === undefined || pending.seen || pending.queue !== this || arguments[1] !== pending.operation) return original.apply(this, arguments as never);
    pending.seen = true;
    pendingAdd = undefined; // whatever else runs in this stretch is BullMQ's own business
    let inner: unknown;
    try {
      inner = original.apply(this, arguments as never);
    } catch (err) {
      pending.settled(err ?? new Error(String(err)));
      throw err;
    }
    if (inner instanceof Promise) {
      // BullMQ's inner promise: the method returns it from an async function, which handles it; this is a second reader.
      inner.then(
        (value: unknown) => pending.settled(undefined, value),
        (err: unknown) => pending.settled(err ?? new Error(String(err))),
      );
    } else pending.settled(undefined, inner);
    return inner;
  };
}

function wrapAdd(original: BullQueue['add']): BullQueue['add'] {
  return function add(this: BullQueue, name, data, opts) {
    const call = startAdd(String(this.name), name, data, opts);
    if (call === undefined) return original.apply(this, arguments as unknown as Parameters<BullQueue['add']>);
    let result: Promise<BullJob> | undefined;
    let followed: boolean;
    try {
      followed = throughTrace(
        this,
        'add',
        (err, job) => (err === undefined ? finishAdd(call, job as BullJob) : call.finish(err)),
        () => (result = original.call(this, name, data, withContext(call, opts, this.opts?.telemetry !== undefined))),
      );
    } catch (err) {
      call.finish(err);
      throw err;
    }
    if (!followed) {
      logOnce('bullmq:trace', 'Queue#add did not go through QueueBase#trace: its span ends without its outcome');
      call.finish();
    }
    return result as Promise<BullJob>;
  };
}

function wrapAddBulk(original: BullQueue['addBulk']): BullQueue['addBulk'] {
  return function addBulk(this: BullQueue, jobs) {
    if (!Array.isArray(jobs)) return original.apply(this, arguments as unknown as Parameters<BullQueue['addBulk']>);
    const own = this.opts?.telemetry !== undefined;
    const calls = jobs.map((job) => (job !== null && typeof job === 'object' ? startAdd(String(this.name), job.name, job.data, job.opts) : undefined));
    const traced = jobs.map((job, i) => (calls[i] === undefined ? job : { ...job, opts: withContext(calls[i], job.opts, own) }));
    const finish = (err: unknown, added?: BullJob[]): void => calls.forEach((call, i) => (err === undefined ? finishAdd(call, added?.[i]) : call?.finish(err)));
    let result: Promise<BullJob[]> | undefined;
    let followed: boolean;
    try {
      followed = throughTrace(
        this,
        'addBulk',
        (err, added) => finish(err, Array.isArray(added) ? (added as BullJob[]) : undefined),
        () => (result = original.call(this, traced)),
      );
    } catch (err) {
      finish(err);
      throw err;
    }
    if (!followed) {
      logOnce('bullmq:trace', 'Queue#addBulk did not go through QueueBase#trace: its spans end without their outcome');
      finish(undefined);
    }
    return result as Promise<BullJob[]>;
  };
}

/** A copy of a flow tree with a producer span per node; `calls` gets them in depth-first order. */
function traceFlow(node: BullFlowJob, calls: Array<Call | undefined>, own: boolean): BullFlowJob {
  if (node === null || typeof node !== 'object') return node;
  const call = startAdd(String(node.queueName), node.name, node.data, node.opts);
  calls.push(call);
  const children = Array.isArray(node.children) ? node.children.map((child) => traceFlow(child, calls, own)) : node.children;
  return { ...node, opts: withContext(call, node.opts, own), children };
}

/** The jobs of a flow result (`{ job, children }`), depth-first like `traceFlow`. */
function flowJobs(tree: { job?: BullJob; children?: unknown[] } | undefined, out: Array<BullJob | undefined>): Array<BullJob | undefined> {
  out.push(tree?.job);
  if (Array.isArray(tree?.children)) for (const child of tree.children) flowJobs(child as { job?: BullJob; children?: unknown[] }, out);
  return out;
}

function wrapFlowAdd(original: BullFlowProducer['add']): BullFlowProducer['add'] {
  return function add(this: BullFlowProducer, flow, opts) {
    const calls: Array<Call | undefined> = [];
    let traced: BullFlowJob;
    try {
      traced = traceFlow(flow, calls, this.telemetry !== undefined);
    } catch (err) {
      logOnce('bullmq:flow', 'could not trace a flow', err);
      for (const call of calls) call?.finish();
      return original.apply(this, arguments as unknown as Parameters<BullFlowProducer['add']>);
    }
    const finish = (err: unknown, tree?: { job?: BullJob; children?: unknown[] }): void => {
      const jobs = tree === undefined ? [] : flowJobs(tree, []);
      calls.forEach((call, i) => (err === undefined ? finishAdd(call, jobs[i]) : call?.finish(err)));
    };
    let result: Promise<unknown>;
    try {
      result = original.call(this, traced, opts);
    } catch (err) {
      finish(err);
      throw err;
    }
    return observe(result, (tree) => finish(undefined, tree as { job?: BullJob; children?: unknown[] }), (err) => finish(err ?? new Error(String(err))));
  };
}

/** The producer's context from a job's `tm`; undefined when there is none or it is not ours to read. */
function remoteOf(job: BullJob): ReturnType<typeof extractFrom> {
  const metadata = job.opts?.telemetry?.metadata;
  if (typeof metadata !== 'string' || metadata.length > MAX_METADATA || metadata[0] !== '{') return undefined;
  try {
    return extractFrom(PATCH, JSON.parse(metadata));
  } catch {
    return undefined;
  }
}

function wrapCallProcessJob(original: BullWorker['callProcessJob']): BullWorker['callProcessJob'] {
  return function callProcessJob(this: BullWorker, job) {
    const valid = job !== null && typeof job === 'object';
    const call = valid
      ? startCall<BullmqRequest>(PATCH, {
          operationName: BULLMQ.PROCESS,
          kind: MESSAGING.SPAN_KIND_CONSUMER,
          remote: remoteOf(job),
          reference: optionsOf(PATCH).consumerReference === 'childOf' ? 'childOf' : 'followsFrom',
          tags: (t) => {
            t[MESSAGING.DESTINATION] = String(job.queueName ?? this.name);
            t[BULLMQ.JOB_ID] = job.id === undefined ? undefined : String(job.id);
            t[BULLMQ.JOB_NAME] = String(job.name);
            t[BULLMQ.ATTEMPTS_MADE] = Number(job.attemptsMade ?? 0);
          },
          request: () => ({ operation: 'process', job }),
        })
      : undefined;
    if (call === undefined) return original.apply(this, arguments as unknown as Parameters<BullWorker['callProcessJob']>);
    let result: unknown;
    try {
      result = spanInContext(call.span, () => original.apply(this, arguments as unknown as Parameters<BullWorker['callProcessJob']>));
    } catch (err) {
      call.finish(err);
      throw err;
    }
    // The worker awaits the processor's promise and handles its rejection (Worker#processJob); this only follows it.
    if (result instanceof Promise) observe(result, (value) => call.finish(undefined, value, true), (err) => call.finish(err ?? new Error(String(err))));
    else call.finish(undefined, result, true);
    return result;
  };
}

/** The prototype that owns `trace` (QueueBase's) above Queue's. */
function traceOwner(exports: BullModule): Record<string, unknown> | undefined {
  for (let p: object | null = exports.Queue.prototype; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    if (Object.prototype.hasOwnProperty.call(p, 'trace')) return p as Record<string, unknown>;
  }
  return undefined;
}

function patch(exports: BullModule): void {
  const owner = traceOwner(exports);
  if (owner !== undefined) wrapMethod(owner, 'trace', (original) => wrapTrace(original as (...args: unknown[]) => unknown));
  wrapMethod(exports.Queue.prototype, 'add', wrapAdd);
  wrapMethod(exports.Queue.prototype, 'addBulk', wrapAddBulk);
  wrapMethod(exports.FlowProducer.prototype, 'add', wrapFlowAdd);
  wrapMethod(exports.Worker.prototype, 'callProcessJob', wrapCallProcessJob);
}

function unpatch(exports: BullModule): void {
  const owner = traceOwner(exports);
  if (owner !== undefined) unwrapMethod(owner, 'trace');
  unwrapMethod(exports.Queue.prototype, 'add');
  unwrapMethod(exports.Queue.prototype, 'addBulk');
  unwrapMethod(exports.FlowProducer.prototype, 'add');
  unwrapMethod(exports.Worker.prototype, 'callProcessJob');
}

export const bullmq: Instrumentation<BullModule> = { name: PATCH, module: 'bullmq', versions: '>=5 <7', patch, unpatch };
