/**
 * The bullmq patch against the real Redis (127.0.0.1:6379), BullMQ 6
 * (installed `bullmq`) and 5 (alias `bullmq5`): the client contract for the
 * producer side (`Queue#add`, `Queue#addBulk`, `FlowProducer#add`), then the
 * processing span of each attempt, following from the span that added the
 * job, wherever the job went (delayed, retried, a flow, a sandboxed
 * processor). Each run uses its own key prefix and obliterates its queues.
 */
import assert from 'assert';
import * as path from 'path';
import type { Span } from 'opentracing';
import { getCurrentSpan, installPatches, spanInContext } from '../src';
import { patchModuleAs } from '../src/patcher';
import { describeClientContract } from './helpers/contract';
import { REDIS, uniqueName, unhandled } from './helpers/db';
import { spanId, tag, tags, traceId, useTracing, waitFor, type JaegerSpan, type TestTracer } from './helpers/tracing';

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
const VERSIONS: Array<{ label: string; load: () => any }> = [
  { label: 'bullmq 6', load: () => require('bullmq') },
  { label: 'bullmq 5', load: () => require('bullmq5') },
];
/* eslint-enable @typescript-eslint/no-require-imports */

const connection = { host: REDIS.host, port: REDIS.port, maxRetriesPerRequest: null };

function named(t: TestTracer, op: string): JaegerSpan[] {
  return t.spans().filter((s) => s.operationName === op);
}

function refOf(span: JaegerSpan): { type: string; spanId: string } | undefined {
  const ref = span._references[0];
  if (ref === undefined) return undefined;
  return { type: ref.type(), spanId: (ref.referencedContext() as unknown as { toSpanId(): string }).toSpanId() };
}

for (const version of VERSIONS) {
  const bull = version.load();
  /** The alias is not found under node_modules/bullmq: the test hands it to the registry (a no-op unless the patch is enabled). */
  const repatch = (): void => patchModuleAs('bullmq', bull);
  const prefix = uniqueName('ot_bull');
  const queues: any[] = [];

  function queue(name = uniqueName('q')): any {
    const q = new bull.Queue(name, { connection, prefix });
    queues.push(q);
    return q;
  }

  describe(`bullmq patch (${version.label})`, function () {
    this.timeout(30000);
    let q: any;
    let flow: any;

    after(async () => {
      for (const each of queues) {
        await each.obliterate({ force: true });
        await each.close();
      }
    });

    describeClientContract({
      patch: 'bullmq',
      kind: 'producer',
      before: async () => {
        repatch();
        q = queue();
        flow = new bull.FlowProducer({ connection, prefix });
      },
      after: async () => {
        await flow.close();
      },
      wrapped: () => [
        [bull.Queue.prototype, 'add'],
        [bull.Queue.prototype, 'addBulk'],
        [bull.FlowProducer.prototype, 'add'],
        [bull.Worker.prototype, 'callProcessJob'],
      ],
      resolvedPath: { module: 'bullmq', probe: `(m) => [[m.Queue.prototype, 'add'], [m.Worker.prototype, 'callProcessJob']]` },
      callForms: [
        {
          name: 'queue.add(name, data, opts)',
          operationName: 'bullmq:add',
          run: (observe) => (repatch(), q.add('job', { n: 1 }, { removeOnComplete: true }).then(observe)),
        },
        {
          name: 'queue.addBulk(jobs)',
          operationName: 'bullmq:add',
          spans: 2,
          run: (observe) => (repatch(), q.addBulk([{ name: 'a', data: {} }, { name: 'b', data: {} }]).then(observe)),
        },
        {
          name: 'flowProducer.add(flow)',
          operationName: 'bullmq:add',
          spans: 2,
          run: (observe) => (repatch(), flow.add({ name: 'parent', queueName: q.name, data: {}, children: [{ name: 'child', queueName: q.name, data: {} }] }).then(observe)),
        },
      ],
    });

    describe('add and process', () => {
      const t = useTracing(['bullmq']);
      const workers: any[] = [];
      before(repatch);
      after(async () => {
        for (const w of workers) await w.close();
      });

      /** A worker on `name` running `processor`; resolves `settled` each time a job completes or fails for good. */
      function worker(name: string, processor: unknown, opts: Record<string, unknown> = {}): any {
        const w = new bull.Worker(name, processor, { connection, prefix, ...opts });
        workers.push(w);
        return w;
      }

      function addUnder(qq: any, name: string, data: unknown, opts?: unknown): Promise<{ parent: Span; job: any }> {
        const parent = t.tracer.startSpan('parent');
        return spanInContext(parent, () => qq.add(name, data, opts)).then((job: any) => {
          parent.finish();
          return { parent, job };
        });
      }

      function producerOf(jobId: string): JaegerSpan {
        const found = named(t, 'bullmq:add').filter((s) => tag(s, 'bullmq.job.id') === jobId);
        assert.strictEqual(found.length, 1, `one producer span for job ${jobId}`);
        return found[0];
      }

      it('add: contract tags; the context travels in opts.telemetry.metadata, data and the caller\'s options untouched; processing follows from it, current while the processor runs', async () => {
        const qq = queue();
        const data = { order: 42 };
        const opts = Object.freeze({ attempts: 1 });
        const { parent, job } = await addUnder(qq, 'send-mail', data, opts);
        assert.deepStrictEqual(opts, { attempts: 1 });
        assert.deepStrictEqual(job.data, { order: 42 });
        const producer = producerOf(String(job.id));
        assert.deepStrictEqual(tags(producer), {
          'span.kind': 'producer',
          component: 'bullmq',
          'message_bus.destination': qq.name,
          'bullmq.job.name': 'send-mail',
          'bullmq.job.id': String(job.id),
        });
        assert.strictEqual(traceId(producer), traceId(parent));
        const stored = await bull.Job.fromId(qq, job.id);
        assert.match(JSON.parse(stored.opts.telemetry.metadata)['uber-trace-id'], new RegExp(`^${traceId(parent)}:${spanId(producer)}:`));
        let inProcessor: Span | undefined;
        let afterAwait: Span | undefined;
        let seenData: unknown;
        const done = new Promise((resolve) => {
          const w = worker(qq.name, async (j: any) => {
            inProcessor = getCurrentSpan();
            seenData = j.data;
            await new Promise((r) => setTimeout(r, 5));
            afterAwait = getCurrentSpan();
            return 'ok';
          });
          w.on('completed', resolve);
        });
        await done;
        await waitFor(() => named(t, 'bullmq:process').length === 1);
        const [consumer] = named(t, 'bullmq:process');
        assert.deepStrictEqual(seenData, { order: 42 });
        assert.strictEqual(inProcessor, consumer as unknown as Span);
        assert.strictEqual(afterAwait, consumer as unknown as Span);
        assert.deepStrictEqual(refOf(consumer), { type: 'follows_from', spanId: spanId(producer) });
        assert.strictEqual(traceId(consumer), traceId(producer));
        assert.deepStrictEqual(tags(consumer), {
          'span.kind': 'consumer',
          component: 'bullmq',
          'message_bus.destination': qq.name,
          'bullmq.job.id': String(job.id),
          'bullmq.job.name': 'send-mail',
          'bullmq.job.attempts_made': 0,
        });
      });

      it('a failing job retried: one span per attempt, error tagged, attempts_made counted, each following from the producer', async () => {
        const qq = queue();
        const { job } = await addUnder(qq, 'flaky', {}, { attempts: 2 });
        const failure = new Error('processor failed');
        const done = new Promise<void>((resolve) => {
          const w = worker(qq.name, async () => {
            throw failure;
          });
          w.on('failed', (_j: unknown, _e: unknown) => {
            if (named(t, 'bullmq:process').length >= 2) resolve();
          });
        });
        await done;
        const producer = producerOf(String(job.id));
        const attempts = named(t, 'bullmq:process');
        assert.deepStrictEqual(attempts.map((s) => tag(s, 'bullmq.job.attempts_made')), [0, 1]);
        for (const s of attempts) {
          assert.strictEqual(tag(s, 'error'), true);
          assert.deepStrictEqual(refOf(s), { type: 'follows_from', spanId: spanId(producer) });
        }
      });

      it('a delayed job keeps the producer\'s context', async () => {
        const qq = queue();
        const { job } = await addUnder(qq, 'later', {}, { delay: 300 });
        await new Promise((resolve) => worker(qq.name, async () => 'ok').on('completed', resolve));
        const [consumer] = named(t, 'bullmq:process');
        assert.deepStrictEqual(refOf(consumer), { type: 'follows_from', spanId: spanId(producerOf(String(job.id))) });
      });

      it('add and addBulk that reject and nobody handles: still reported unhandled, for BullMQ\'s own promise and error', async () => {
        const qq = queue();
        const parent = t.tracer.startSpan('parent');
        let added: Promise<unknown> | undefined;
        let bulk: Promise<unknown> | undefined;
        const seen = await unhandled(() => {
          spanInContext(parent, () => {
            added = qq.add('bad', {}, { priority: 1.5 });
            bulk = qq.addBulk([{ name: 'ok', data: {} }, { name: 'bad', data: {}, opts: { priority: 1.5 } }]);
          });
        });
        parent.finish();
        assert.strictEqual(seen.length, 2);
        assert.ok(seen.some((s) => s.promise === added), 'the add promise');
        assert.ok(seen.some((s) => s.promise === bulk), 'the addBulk promise');
        for (const s of seen) assert.match((s.reason as Error).message, /Priority should not be float/);
        const spans = named(t, 'bullmq:add');
        assert.strictEqual(spans.length, 3);
        for (const span of spans) assert.strictEqual(tag(span, 'error'), true);
        assert.strictEqual(t.accounting.open.size, 0);
      });

      it('addBulk and a flow: each processing span follows from its own job\'s producer span', async () => {
        const qq = queue();
        const parent = t.tracer.startSpan('parent');
        const bulk = await spanInContext(parent, () => qq.addBulk([{ name: 'a', data: {} }, { name: 'b', data: {} }, { name: 'c', data: {} }]));
        const fp = new bull.FlowProducer({ connection, prefix });
        const tree = await spanInContext(parent, () => fp.add({ name: 'root', queueName: qq.name, data: {}, children: [{ name: 'leaf', queueName: qq.name, data: {} }] }));
        await fp.close();
        parent.finish();
        const ids = [...bulk.map((j: any) => String(j.id)), String(tree.job.id), String(tree.children[0].job.id)];
        let completed = 0;
        await new Promise<void>((resolve) => worker(qq.name, async () => 'ok').on('completed', () => ++completed === ids.length && resolve()));
        await waitFor(() => named(t, 'bullmq:process').length === ids.length);
        for (const id of ids) {
          const consumer = named(t, 'bullmq:process').find((s) => tag(s, 'bullmq.job.id') === id)!;
          assert.deepStrictEqual(refOf(consumer), { type: 'follows_from', spanId: spanId(producerOf(id)) }, `job ${id}`);
        }
      });

      it('a job added without a context (untraced producer, or telemetry.omitContext): a root processing span, the job untouched', async () => {
        const qq = queue();
        const { suppressInstrumentation } = await import('../src');
        await suppressInstrumentation(() => qq.add('plain', { a: 1 }));
        const { job } = await addUnder(qq, 'omitted', { b: 2 }, { telemetry: { omitContext: true } });
        assert.strictEqual(job.opts.telemetry.metadata, undefined);
        let completed = 0;
        await new Promise<void>((resolve) => worker(qq.name, async () => 'ok').on('completed', () => ++completed === 2 && resolve()));
        await waitFor(() => named(t, 'bullmq:process').length === 2);
        for (const s of named(t, 'bullmq:process')) assert.strictEqual(s._references.length, 0);
      });

      it('a queue with BullMQ\'s own telemetry: its metadata travels, ours is not written over it', async () => {
        const noop = (): undefined => undefined;
        const span = { setAttributes: noop, setAttribute: noop, addEvent: noop, recordException: noop, end: noop, setSpanOnContext: (c: unknown) => c };
        const telemetry = {
          tracer: { startSpan: () => span },
          contextManager: { with: (_c: unknown, fn: () => unknown) => fn(), active: () => ({}), getMetadata: () => '{"their-context":"1"}', fromMetadata: (c: unknown) => c },
        };
        const qq = new bull.Queue(uniqueName('q'), { connection, prefix, telemetry });
        queues.push(qq);
        // addBulk keeps a job's own metadata over BullMQ's: the case where writing ours would win.
        const parent = t.tracer.startSpan('parent');
        const [job] = await spanInContext(parent, () => qq.addBulk([{ name: 'theirs', data: {} }]));
        parent.finish();
        const stored = await bull.Job.fromId(qq, job.id);
        assert.strictEqual(stored.opts.telemetry.metadata, '{"their-context":"1"}');
        assert.strictEqual(named(t, 'bullmq:add').length, 1, 'the add is still traced');
      });

      describe('consumerReference: childOf', () => {
        before(() => {
          installPatches(['bullmq'], { tracer: t.tracer, bullmq: { consumerReference: 'childOf' } });
          repatch();
        });
        after(() => installPatches(['bullmq'], { tracer: t.tracer }));
        it('the processing span is a child of the producer span', async () => {
          const qq = queue();
          const { job } = await addUnder(qq, 'x', {});
          await new Promise((resolve) => worker(qq.name, async () => 'ok').on('completed', resolve));
          const [consumer] = named(t, 'bullmq:process');
          assert.deepStrictEqual(refOf(consumer), { type: 'child_of', spanId: spanId(producerOf(String(job.id))) });
        });
      });

      it('a sandboxed processor (a file run in a child process) works; its attempt gets a span', async function () {
        this.timeout(20000);
        const qq = queue();
        await addUnder(qq, 'boxed', { v: 1 });
        const file = path.join(__dirname, 'fixtures', 'messaging', 'bullmq-processor.js');
        const result = await new Promise((resolve) => worker(qq.name, file).on('completed', (_j: unknown, r: unknown) => resolve(r)));
        assert.deepStrictEqual(result, { echoed: { v: 1 }, name: 'boxed' });
        await waitFor(() => named(t, 'bullmq:process').length === 1);
      });
    });
  });
}
