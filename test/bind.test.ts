import assert from 'assert';
import { AsyncLocalStorage } from 'async_hooks';
import type { Span } from 'opentracing';
import { getCurrentSpan, spanInContext } from '../src';
import { bindToCurrentContext } from '../src/context';

describe('#bindToCurrentContext(fn)', () => {
  it("runs fn in the binder's whole async context (our span and the application's own AsyncLocalStorage), wherever it is called from", async () => {
    const appStorage = new AsyncLocalStorage<string>();
    const span = { name: 'caller' } as unknown as Span;
    const bound = appStorage.run('request-1', () =>
      spanInContext(span, () => bindToCurrentContext(() => [getCurrentSpan(), appStorage.getStore()] as const)),
    );
    const fromElsewhere = await new Promise<readonly [Span | undefined, string | undefined]>((resolve) =>
      appStorage.run('request-2', () => setImmediate(() => resolve(bound()))),
    );
    assert.deepStrictEqual(fromElsewhere, [span, 'request-1']);
  });

  it('passes this and the arguments through, returns what fn returns, throws what fn throws, keeps length', () => {
    const bound = bindToCurrentContext(function (this: { k: number }, a: number, b: number) {
      if (a < 0) throw new RangeError('negative');
      return this.k + a + b;
    });
    assert.strictEqual(bound.call({ k: 1 }, 2, 3), 6);
    assert.strictEqual(bound.length, 2);
    assert.throws(() => bound.call({ k: 1 }, -1, 0), RangeError);
  });
});
