import assert from 'assert';
import * as jaeger from 'jaeger-client';
import { REFERENCE_FOLLOWS_FROM, Reference, type Span } from 'opentracing';
import { closeTracer, flushTracer, initTracer, initTracerFromEnv } from '../src/tracer';
import { encodeBatches, encodeProcess, FLUSH_AT, QueuedUdpSender, queuedSpans, withQueuedUdpSender } from '../src/reporter';
import type { JaegerProcess, JaegerSpanInternals } from '../src/internal-types';
import { startJaegerAgent, type JaegerAgent } from '../tools/jaeger-agent';

/* eslint-disable @typescript-eslint/no-require-imports */
const udpSenderModule = require('jaeger-client/dist/src/reporters/udp_sender') as { default: new (o: object) => UdpSender };
const UDPSender = udpSenderModule.default;
const ThriftUtils = (require('jaeger-client/dist/src/thrift') as { default: ThriftUtilsT }).default;
const { InMemoryReporter } = require('jaeger-client') as { InMemoryReporter: new () => { spans: Span[] } };
/* eslint-enable @typescript-eslint/no-require-imports */

interface UdpSender {
  _client: { send: (...args: unknown[]) => void; close(): void };
  _maxPacketSize: number;
  setProcess(p: JaegerProcess): void;
  append(span: unknown, cb?: (n: number, err?: string) => void): void;
  flush(cb?: () => void): void;
  close(): void;
}
interface ThriftUtilsT {
  spanToThrift(span: unknown): unknown;
  getThriftTags(tags: Array<{ key: string; value: unknown }>): JaegerProcess['tags'];
}

const PROCESS_TAGS = [
  { key: 'hostname', value: 'bench-host' },
  { key: 'ip', value: '10.1.2.3' },
  { key: 'client-uuid', value: '4f8c1d2e' },
  { key: 'jaeger.version', value: 'Node-3.19.0' },
  { key: 'pid', value: 4242 },
  { key: 'canary', value: true },
];

/** Finished spans of every shape jaeger-client can report, from a real tracer. */
function sampleSpans(traceId128bit: boolean): JaegerSpanInternals[] {
  const reporter = new InMemoryReporter();
  const tracer = jaeger.initTracer(
    { serviceName: 'enc', sampler: { type: 'const', param: 1 } },
    { reporter: reporter as unknown as jaeger.Reporter, traceId128bit } as jaeger.TracingOptions,
  );
  const root = tracer.startSpan('root');
  root.setTag('string', 'héllo wörld ✓');
  root.setTag('int', 42);
  root.setTag('float', 3.25);
  root.setTag('negative', -7);
  root.setTag('bool', false);
  root.setTag('object', { a: [1, 'x'] });
  root.setTag('null', null);
  root.setTag('undefined', undefined);
  root.setTag('buffer', Buffer.from([1, 2, 3]));
  root.log({ event: 'error', 'error.object': new Error('boom'), message: 'boom', stack: 'at x' });
  const child = tracer.startSpan('GET', { childOf: root, tags: { 'span.kind': 'client', 'http.status_code': 200 } });
  child.finish();
  const follower = tracer.startSpan('later', { references: [new Reference(REFERENCE_FOLLOWS_FROM, root.context())] });
  follower.finish(Date.now() + 1.5);
  root.finish();
  tracer.close();
  return reporter.spans as unknown as JaegerSpanInternals[];
}

/** What jaeger-client's own UDP sender puts on the wire for `spans`. */
function jaegerPackets(process: JaegerProcess, spans: JaegerSpanInternals[], maxPacketSize?: number): Buffer[] {
  const sender = new UDPSender({ host: '127.0.0.1', port: 9, maxPacketSize });
  const sent: Buffer[] = [];
  sender._client.close();
  sender._client = {
    send: (buf: unknown, offset: unknown, length: unknown) => {
      sent.push(Buffer.from((buf as Buffer).subarray(offset as number, (offset as number) + (length as number))));
    },
    close() {},
  };
  sender.setProcess(process);
  for (const span of spans) sender.append(ThriftUtils.spanToThrift(span));
  sender.flush();
  return sent;
}

describe('queued UDP reporter (src/reporter.ts)', () => {
  const proc: JaegerProcess = { serviceName: 'enc-service', tags: [] };
  before(() => {
    proc.tags = ThriftUtils.getThriftTags(PROCESS_TAGS);
  });

  describe('#encodeBatches(process, spans, maxPacketSize)', () => {
    for (const traceId128bit of [false, true]) {
      it(`writes the very bytes jaeger-client's UDP sender writes (${traceId128bit ? 128 : 64}-bit trace ids)`, () => {
        const spans = sampleSpans(traceId128bit);
        assert.strictEqual(spans.length, 3);
        const theirs = jaegerPackets(proc, spans);
        const ours = encodeBatches(encodeProcess(proc), spans, 65000);
        assert.strictEqual(ours.dropped, 0);
        assert.strictEqual(theirs.length, 1);
        assert.strictEqual(ours.packets.length, 1);
        assert.strictEqual(ours.packets[0].spans, 3);
        assert.strictEqual(ours.packets[0].buffer.toString('hex'), theirs[0].toString('hex'));
      });
    }

    it('splits a large batch into packets no larger than maxPacketSize, each as jaeger-client would send it', () => {
      const spans: JaegerSpanInternals[] = [];
      for (let i = 0; i < 12; i++) spans.push(...sampleSpans(false));
      const max = 2000;
      const ours = encodeBatches(encodeProcess(proc), spans, max);
      assert.ok(ours.packets.length > 3, `${ours.packets.length} packets`);
      assert.strictEqual(ours.packets.reduce((n, p) => n + p.spans, 0), spans.length);
      for (const p of ours.packets) assert.ok(p.buffer.length <= max, `packet of ${p.buffer.length} bytes`);
      // Each packet is byte for byte what jaeger-client sends for the same spans.
      let at = 0;
      for (const p of ours.packets) {
        const theirs = jaegerPackets(proc, spans.slice(at, at + p.spans), 65000);
        assert.strictEqual(p.buffer.toString('hex'), theirs[0].toString('hex'));
        at += p.spans;
      }
    });

    it('drops (and counts) a span that cannot be encoded or alone exceeds a packet, keeping the others', () => {
      const [a, b, c] = sampleSpans(false);
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      const bad = { ...b, _tags: [{ key: 'circular', value: circular }] } as JaegerSpanInternals;
      const huge = { ...c, _tags: [{ key: 'big', value: 'x'.repeat(5000) }] } as JaegerSpanInternals;
      const ours = encodeBatches(encodeProcess(proc), [a, bad, huge], 3000);
      assert.strictEqual(ours.dropped, 2);
      assert.strictEqual(ours.packets.length, 1);
      assert.strictEqual(ours.packets[0].buffer.toString('hex'), jaegerPackets(proc, [a])[0].toString('hex'));
    });
  });

  describe('initTracer with the UDP reporter', () => {
    let agent: JaegerAgent;
    beforeEach(async () => {
      agent = await startJaegerAgent();
    });
    afterEach(async () => {
      await closeTracer();
      await agent.close();
    });

    function tracerToAgent(): jaeger.JaegerTracer {
      return initTracer({
        serviceName: 'queued',
        sampler: { type: 'const', param: 1 },
        reporter: { agentHost: '127.0.0.1', agentPort: agent.port, flushIntervalMs: 60_000 },
      });
    }

    it('span.finish() only queues: nothing is encoded or sent until the flush', async () => {
      const tracer = tracerToAgent();
      const reporter = (tracer as unknown as { _reporter: object })._reporter;
      const span = tracer.startSpan('one');
      span.finish();
      assert.strictEqual(queuedSpans(reporter), 1);
      await new Promise((r) => setTimeout(r, 50));
      assert.strictEqual(agent.spans.length, 0, 'sent before the flush');
      await flushTracer();
      assert.strictEqual(queuedSpans(reporter), 0);
      const [got] = await agent.waitForSpans(1);
      assert.strictEqual(got.operationName, 'one');
      assert.strictEqual(got.serviceName, 'queued');
    });

    it(`delivers every span, intact, to the agent; ${FLUSH_AT} waiting spans are flushed without waiting for the timer`, async () => {
      const tracer = tracerToAgent();
      const parent = tracer.startSpan('parent');
      const n = FLUSH_AT * 3;
      for (let i = 0; i < n; i++) {
        const span = tracer.startSpan(`op-${i}`, { childOf: parent, tags: { 'span.kind': 'client', i, ok: i % 2 === 0 } });
        if (i === 7) span.log({ event: 'error', message: 'seven' });
        span.finish();
      }
      // No flush called and the interval is a minute: the queue flushes itself.
      const spans = await agent.waitForSpans(n, 5000);
      assert.strictEqual(agent.errors.length, 0);
      assert.strictEqual(spans.length, n);
      const parentId = (parent.context() as unknown as { spanIdStr: string }).spanIdStr;
      const byName = new Map(spans.map((s) => [s.operationName, s]));
      for (let i = 0; i < n; i++) {
        const s = byName.get(`op-${i}`);
        assert.ok(s, `op-${i} received`);
        assert.strictEqual(s.parentSpanId, parentId);
        assert.deepStrictEqual(
          { kind: s.tags['span.kind'], i: s.tags.i, ok: s.tags.ok },
          { kind: 'client', i, ok: i % 2 === 0 },
        );
        assert.strictEqual(s.flags & 1, 1);
      }
      assert.deepStrictEqual(byName.get('op-7')!.logs, [{ event: 'error', message: 'seven' }]);
      parent.finish();
    });

    it('jaeger builds the reporter with QueuedUdpSender, from the JAEGER_* environment, and gets its own class back after', async () => {
      const saved = { ...process.env };
      process.env.JAEGER_AGENT_HOST = '127.0.0.1';
      process.env.JAEGER_AGENT_PORT = String(agent.port);
      let tracer: jaeger.JaegerTracer;
      try {
        tracer = initTracerFromEnv({ serviceName: 'from-env' });
      } finally {
        process.env = saved;
      }
      const sender = (tracer as unknown as { _reporter: { _sender: QueuedUdpSender } })._reporter._sender;
      assert.ok(sender instanceof QueuedUdpSender);
      assert.strictEqual(sender._host, '127.0.0.1');
      assert.strictEqual(sender._port, agent.port);
      assert.strictEqual(UDPSender, udpSenderModule.default, "jaeger's own sender class is back");
      tracer.startSpan('env-span').finish();
      await flushTracer();
      const [got] = await agent.waitForSpans(1);
      assert.strictEqual(got.operationName, 'env-span');
      assert.strictEqual(got.serviceName, 'from-env');
    });

    it("withQueuedUdpSender restores jaeger's sender class when the construction throws", () => {
      assert.throws(
        () =>
          withQueuedUdpSender(() => {
            throw new Error('bad config');
          }),
        /bad config/,
      );
      assert.strictEqual(udpSenderModule.default, UDPSender);
    });

    it('closeTracer() sends what is queued before closing the socket', async () => {
      const tracer = tracerToAgent();
      for (let i = 0; i < 5; i++) tracer.startSpan(`close-${i}`).finish();
      await closeTracer();
      const spans = await agent.waitForSpans(5);
      assert.deepStrictEqual(spans.map((s) => s.operationName).sort(), ['close-0', 'close-1', 'close-2', 'close-3', 'close-4']);
    });
  });
});
