/**
 * The OTLP/protobuf encoder of the `otlp` exporter (src/export/otlp-proto.ts)
 * on what the end-to-end test of test/otlp-export.test.ts does not reach:
 * lengths that need 2-, 3- and 4-byte varints (strings and whole batches),
 * every kind of tag value (negative and past-2^53 integers, doubles, NaN,
 * objects, bigint, Unicode), a key given twice, nanosecond precision of
 * fractional-millisecond times, and spans that cannot be read. Spans come
 * from a real jaeger tracer; the bytes are decoded by protobufjs with
 * OpenTelemetry's message definitions (test/helpers/otlp-receiver.ts).
 */
import assert from 'assert';
import { childOf, followsFrom } from 'opentracing';
import * as jaeger from 'jaeger-client';
import { encodeResource, encodeTraceRequest, ProtoWriter } from '../src/export/otlp-proto';
import type { JaegerSpanInternals } from '../src/internal-types';
import { decodeOtlpRequest } from './helpers/otlp-receiver';

function recordingTracer(): { tracer: jaeger.JaegerTracer; spans: JaegerSpanInternals[] } {
  const spans: JaegerSpanInternals[] = [];
  const reporter = { report: (s: unknown) => spans.push(s as JaegerSpanInternals), close: (cb?: () => void) => cb?.(), setProcess() {} };
  const tracer = jaeger.initTracer({ serviceName: 'proto-test', sampler: { type: 'const', param: 1 } }, { reporter: reporter as never, logger: { info() {}, error() {} } });
  return { tracer, spans };
}

const RESOURCE = encodeResource({ 'service.name': 'proto-test', 'host.name': 'h', pid: 42 });

function roundTrip(spans: JaegerSpanInternals[]): ReturnType<typeof decodeOtlpRequest> {
  const { bytes, failed } = encodeTraceRequest(spans, RESOURCE, 'scope-x');
  assert.strictEqual(failed, 0);
  return decodeOtlpRequest(Buffer.from(bytes));
}

describe('otlp encoder: jaeger spans to OTLP/protobuf', () => {
  it('every kind of tag value, and strings whose lengths need 1 to 3 length bytes', () => {
    const { tracer, spans } = recordingTracer();
    const long = (n: number): string => 'x'.repeat(n);
    const span = tracer.startSpan('values', {
      tags: {
        empty: '',
        s127: long(127),
        s128: long(128),
        s16383: long(16383),
        s16384: long(16384),
        s70000: long(70000),
        unicode: 'é 漢字 😀',
        zero: 0,
        minusOne: -1,
        int32min: -(2 ** 31),
        big: 2 ** 40 + 3,
        pastSafe: 2 ** 60,
        negativeBig: -(2 ** 60),
        ratio: 1.5,
        negativeRatio: -0.25,
        nan: NaN,
        inf: Infinity,
        yes: true,
        no: false,
        obj: { a: [1, 'b'] },
        bigint: BigInt('12345678901234567890') as unknown as number,
        dup: 'first',
      },
    });
    span.setTag('dup', 'last');
    span.setTag('undef', undefined);
    span.finish();
    const [s] = roundTrip(spans);
    const a = s.attributes;
    for (const n of [127, 128, 16383, 16384, 70000]) assert.strictEqual(a[`s${n}`], long(n), `s${n}`);
    assert.deepStrictEqual(
      [a.empty, a.unicode, a.zero, a.minusOne, a.int32min, a.big, a.ratio, a.negativeRatio, a.nan, a.inf, a.yes, a.no, a.obj, a.bigint, a.dup, a.undef],
      ['', 'é 漢字 😀', 0, -1, -(2 ** 31), 2 ** 40 + 3, 1.5, -0.25, 'NaN', 'Infinity', true, false, '{"a":[1,"b"]}', '12345678901234567890', 'last', 'undefined'],
    );
    assert.strictEqual(a.pastSafe, 2 ** 60);
    assert.strictEqual(a.negativeBig, -(2 ** 60));
    assert.deepStrictEqual(s.attributeKeys.filter((k) => k === 'dup'), ['dup'], 'a key given twice is sent once');
    assert.strictEqual(s.resource['service.name'], 'proto-test');
    assert.strictEqual(s.resource.pid, 42);
    assert.strictEqual(s.scope, 'scope-x');
  });

  it('times to the nanosecond from fractional milliseconds, past 2^53 nanoseconds', () => {
    const { tracer, spans } = recordingTracer();
    const start = 1764633600123.456;
    const span = tracer.startSpan('timed', { startTime: start });
    span.log({ event: 'tick' }, start + 0.5);
    span.finish(start + 2.25);
    const [s] = roundTrip(spans);
    const nanos = (ms: number): bigint => BigInt(Math.floor(ms)) * 1000000n + BigInt(Math.round((ms - Math.floor(ms)) * 1e6));
    assert.strictEqual(s.startTimeUnixNano, nanos(start));
    assert.strictEqual(s.events[0].timeUnixNano, nanos(start + 0.5));
    // jaeger keeps the duration, the end is start + duration
    assert.strictEqual(s.endTimeUnixNano, nanos(start + (spans[0]._duration as number)));
    assert.ok(s.endTimeUnixNano - s.startTimeUnixNano > 2249000n && s.endTimeUnixNano - s.startTimeUnixNano < 2251000n);
  });

  it('a batch of 3,000 spans (4 MB: 4-byte lengths) decodes whole and in order', () => {
    const { tracer, spans } = recordingTracer();
    const root = tracer.startSpan('root');
    for (let i = 0; i < 3000; i++) tracer.startSpan(`op-${i}`, { childOf: root, tags: { 'span.kind': 'client', payload: String(i).padEnd(1300, '.') } }).finish();
    const decoded = roundTrip(spans);
    assert.strictEqual(decoded.length, 3000);
    const rootId = (root.context() as unknown as { toSpanId(): string }).toSpanId().padStart(16, '0');
    decoded.forEach((s, i) => {
      assert.strictEqual(s.name, `op-${i}`);
      assert.strictEqual(s.kind, 3);
      assert.strictEqual(s.parentSpanId, rootId);
      assert.strictEqual(String(s.attributes.payload).length, 1300);
    });
  });

  it('references: first childOf is the parent; followsFrom and a second childOf are links; the kind tag given twice keeps the last', () => {
    const { tracer, spans } = recordingTracer();
    const a = tracer.startSpan('a');
    const b = tracer.startSpan('b');
    const c = tracer.startSpan('c');
    const span = tracer.startSpan('multi', { references: [followsFrom(a.context()), childOf(b.context()), childOf(c.context())], tags: { 'span.kind': 'client' } });
    span.setTag('span.kind', 'consumer');
    span.finish();
    const [s] = roundTrip(spans);
    const idOf = (x: typeof a): string => (x.context() as unknown as { toSpanId(): string }).toSpanId().padStart(16, '0');
    assert.strictEqual(s.parentSpanId, idOf(b));
    assert.deepStrictEqual(
      s.links.map((l) => [l.spanId, l.attributes['opentracing.ref_type']]),
      [
        [idOf(a), 'follows_from'],
        [idOf(c), 'child_of'],
      ],
    );
    assert.strictEqual(s.kind, 5);
    assert.strictEqual(s.attributes['span.kind'], undefined);
  });

  it('a span that cannot be read is left out and counted; the others are sent; an unreadable reference is left out', () => {
    const { tracer, spans } = recordingTracer();
    tracer.startSpan('good-1').finish();
    tracer.startSpan('bad').finish();
    tracer.startSpan('good-2', { references: [followsFrom(tracer.startSpan('x').context())] }).finish();
    Object.defineProperty(spans[1], '_tags', { get: () => { throw new Error('unreadable'); } });
    (spans[2]._references[0] as { type: () => string }).type = () => { throw new Error('unreadable ref'); };
    const { bytes, failed, spans: sent } = encodeTraceRequest(spans, RESOURCE, 'scope-x', new ProtoWriter(16));
    assert.deepStrictEqual([failed, sent], [1, 2]);
    const decoded = decodeOtlpRequest(Buffer.from(bytes));
    assert.deepStrictEqual(decoded.map((s) => [s.name, s.links.length]), [['good-1', 0], ['good-2', 0]]);
  });
});
