import assert from 'assert';
import { EventEmitter } from 'events';
import { getCurrentSpan, setCurrentSpanFunc, spanInContext, suppressInstrumentation } from '../src';
import { isSuppressed } from '../src/context';
import { createTestTracer } from './helpers/tracing';

describe('context', () => {
  const t = createTestTracer();
  after(() => t.close());
  afterEach(() => setCurrentSpanFunc(null));

  describe('#spanInContext(span, fn)', () => {
    it('makes span current inside fn only, and returns what fn returns', () => {
      const span = t.tracer.startSpan('a');
      assert.strictEqual(getCurrentSpan(), undefined);
      const out = spanInContext(span, () => {
        assert.strictEqual(getCurrentSpan(), span);
        return 42;
      });
      assert.strictEqual(out, 42);
      assert.strictEqual(getCurrentSpan(), undefined);
      span.finish();
    });

    it('survives callbacks, promises, timers and event emitters', async () => {
      const span = t.tracer.startSpan('a');
      const seen: Array<unknown> = [];
      const emitter = new EventEmitter();
      await spanInContext(span, async () => {
        await new Promise<void>((r) => setTimeout(() => (seen.push(getCurrentSpan()), r()), 1));
        await new Promise<void>((r) => setImmediate(() => (seen.push(getCurrentSpan()), r())));
        await new Promise<void>((r) => process.nextTick(() => (seen.push(getCurrentSpan()), r())));
        await Promise.resolve().then(() => seen.push(getCurrentSpan()));
        emitter.on('x', () => seen.push(getCurrentSpan()));
      });
      // an emitter fires synchronously in the context of whoever emits
      spanInContext(span, () => emitter.emit('x'));
      assert.strictEqual(seen.length, 5);
      for (const s of seen) assert.strictEqual(s, span);
      span.finish();
    });

    it('nests and restores the outer span', () => {
      const outer = t.tracer.startSpan('outer');
      const inner = t.tracer.startSpan('inner');
      spanInContext(outer, () => {
        spanInContext(inner, () => assert.strictEqual(getCurrentSpan(), inner));
        assert.strictEqual(getCurrentSpan(), outer);
      });
      outer.finish();
      inner.finish();
    });

    it('keeps concurrent async chains apart', async () => {
      const spans = Array.from({ length: 20 }, (_, i) => t.tracer.startSpan(`p${i}`));
      const results = await Promise.all(
        spans.map((span, i) =>
          spanInContext(span, async () => {
            await new Promise((r) => setTimeout(r, (i * 7) % 5));
            return getCurrentSpan() === span;
          }),
        ),
      );
      assert.deepStrictEqual(results, spans.map(() => true));
      spans.forEach((s) => s.finish());
    });
  });

  describe('#setCurrentSpanFunc(fn)', () => {
    it('is consulted on every call, and null restores the default', () => {
      const a = t.tracer.startSpan('a');
      const b = t.tracer.startSpan('b');
      let current = a;
      setCurrentSpanFunc(() => current);
      assert.strictEqual(getCurrentSpan(), a);
      current = b;
      assert.strictEqual(getCurrentSpan(), b);
      setCurrentSpanFunc(null);
      assert.strictEqual(getCurrentSpan(), undefined);
      spanInContext(a, () => assert.strictEqual(getCurrentSpan(), a));
      a.finish();
      b.finish();
    });

    it('a getter that throws or returns null gives no current span', () => {
      setCurrentSpanFunc(() => {
        throw new Error('broken getter');
      });
      assert.strictEqual(getCurrentSpan(), undefined);
      setCurrentSpanFunc(() => null);
      assert.strictEqual(getCurrentSpan(), undefined);
    });

    it('rejects a non-function', () => {
      assert.throws(() => setCurrentSpanFunc(42 as never), TypeError);
    });
  });

  describe('#suppressInstrumentation(fn)', () => {
    it('marks fn and its async continuations as suppressed, keeping the current span', async () => {
      const span = t.tracer.startSpan('a');
      await spanInContext(span, () =>
        suppressInstrumentation(async () => {
          assert.strictEqual(isSuppressed(), true);
          await new Promise((r) => setTimeout(r, 1));
          assert.strictEqual(isSuppressed(), true);
          assert.strictEqual(getCurrentSpan(), span);
          // a span set inside stays suppressed
          spanInContext(span, () => assert.strictEqual(isSuppressed(), true));
        }),
      );
      assert.strictEqual(isSuppressed(), false);
      span.finish();
    });
  });
});
