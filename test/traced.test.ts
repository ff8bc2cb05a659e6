import assert from 'assert';
import type { Span } from 'opentracing';
import * as ts from 'typescript';
import * as lib from '../src';
import { getCurrentSpan, installPatches, spanInContext, traced } from '../src';
import { request } from './helpers/requests';
import { startHttpServer, type TestServer } from './helpers/servers';
import { createTestTracer, errorBehind, logs, parentId, spanId, tag, traceId, useTracing, waitForSpans, type JaegerSpan } from './helpers/tracing';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function byName(spans: JaegerSpan[], name: string): JaegerSpan {
  const found = spans.filter((s) => s.operationName === name);
  assert.strictEqual(found.length, 1, `spans named ${name}: ${found.length}`);
  return found[0];
}

// TC39 standard decorators: the project's tsconfig has no experimentalDecorators.
class Inventory {
  constructor(private readonly prefix: string) {}

  @traced()
  async load(id: number): Promise<string> {
    await sleep(5);
    return `${this.prefix}${id}`;
  }

  @traced({ name: 'inventory.count', onStart: (span, a) => span.setTag('count.of', a as string) })
  count(item: string, extra: number): string {
    return `${this.prefix}${item}:${extra}`;
  }

  @traced
  current(): Span | undefined {
    return getCurrentSpan();
  }
}

describe('traced', () => {
  const t = useTracing(['http']);
  let server: TestServer;
  before(async () => {
    server = await startHttpServer();
  });
  after(async () => {
    await server.close();
  });

  describe('#traced(fn, options)', () => {
    it('gives a span per call, child of the current span, named after fn; this, arguments and result pass through', () => {
      const self = { factor: 3 };
      const multiply = traced(function multiply(this: typeof self, a: number, b: number) {
        return this.factor * a * b;
      });
      assert.strictEqual(multiply.name, 'multiply');
      assert.strictEqual(multiply.length, 2);
      const parent = t.tracer.startSpan('parent');
      const result = spanInContext(parent, () => multiply.call(self, 2, 5));
      parent.finish();
      assert.strictEqual(result, 30);
      const span = byName(t.spans(), 'multiply');
      assert.strictEqual(parentId(span), spanId(parent));
      assert.strictEqual(traceId(span), traceId(parent));
      assert.strictEqual(t.spans().length, 2);
    });

    it('is the current span while fn runs: nested traced calls and outbound calls become its children', async () => {
      let inside: Span | undefined;
      const inner = traced(async function inner() {
        inside = getCurrentSpan();
        await request(`${server.origin}/from-inner`);
      });
      const outer = traced(async () => {
        await sleep(1);
        await inner();
        return getCurrentSpan();
      }, { name: 'outer' });
      const seenInOuter = await outer();
      assert.strictEqual(getCurrentSpan(), undefined, 'restored after the call');
      const spans = await waitForSpans(t, 3);
      const o = byName(spans, 'outer');
      const i = byName(spans, 'inner');
      const get = byName(spans, 'GET');
      assert.strictEqual(spanId(seenInOuter!), spanId(o));
      assert.strictEqual(spanId(inside!), spanId(i));
      assert.strictEqual(parentId(o), undefined, 'no current span: a new trace');
      assert.strictEqual(parentId(i), spanId(o));
      assert.strictEqual(parentId(get), spanId(i));
    });

    it('finishes the span of an async function when its promise settles, with the same value', async () => {
      const slow = traced(async function slow(ms: number) {
        await sleep(ms);
        return { waited: ms };
      });
      const value = await slow(30);
      assert.deepStrictEqual(value, { waited: 30 });
      const span = byName(t.spans(), 'slow') as JaegerSpan & { _duration: number };
      assert.ok(span._duration >= 25, `duration ${span._duration} ms`);
    });

    it('a throw: the same error object reaches the caller; error tags; finished once', () => {
      const boom = new TypeError('bad input');
      const fails = traced(function fails(): never {
        throw boom;
      });
      assert.throws(() => fails(), (err) => err === boom);
      const span = byName(t.spans(), 'fails');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(errorBehind(logs(span)[0]['error.object']), boom);
      assert.strictEqual(logs(span)[0]['error.kind'], 'TypeError');
    });

    it('a rejection: the same reason reaches the caller; error tags', async () => {
      const reason = new Error('no luck');
      const rejects = traced(async function rejects() {
        await sleep(1);
        throw reason;
      });
      await assert.rejects(rejects(), (err) => err === reason);
      const span = byName(t.spans(), 'rejects');
      assert.strictEqual(tag(span, 'error'), true);
      assert.strictEqual(logs(span)[0].message, 'no luck');
    });

    it('onStart(span, ...args) runs before fn with its arguments; one that throws is contained', () => {
      const order: string[] = [];
      const tagged = traced(
        function tagged(id: number, kind: string) {
          order.push('fn');
          return `${kind}-${id}`;
        },
        {
          onStart: (span, id, kind) => {
            order.push('onStart');
            span.setTag('item.id', id);
            span.setTag('item.kind', kind);
          },
        },
      );
      assert.strictEqual(tagged(7, 'book'), 'book-7');
      assert.deepStrictEqual(order, ['onStart', 'fn']);
      const span = byName(t.spans(), 'tagged');
      assert.strictEqual(tag(span, 'item.id'), 7);
      assert.strictEqual(tag(span, 'item.kind'), 'book');

      const broken = traced((x: number) => x + 1, {
        name: 'broken-hook',
        onStart: () => {
          throw new Error('hook bug');
        },
      });
      assert.strictEqual(broken(1), 2);
      assert.ok(byName(t.spans(), 'broken-hook'));
    });

    it('requireActiveTrace: no span without a current span; a child span with one', () => {
      const maybe = traced((x: number) => x * 2, { name: 'maybe', requireActiveTrace: true });
      assert.strictEqual(maybe(2), 4);
      assert.strictEqual(t.spans().length, 0);
      const parent = t.tracer.startSpan('parent');
      assert.strictEqual(
        spanInContext(parent, () => maybe(3)),
        6,
      );
      parent.finish();
      assert.strictEqual(parentId(byName(t.spans(), 'maybe')), spanId(parent));
    });

    it('returns a non-promise thenable as it is, without calling its then; the span ends at return', () => {
      let thenCalls = 0;
      const lazy = { then: () => thenCalls++ };
      const build = traced(() => lazy, { name: 'build' });
      assert.strictEqual(build(), lazy);
      assert.strictEqual(thenCalls, 0);
      assert.ok(byName(t.spans(), 'build'));
    });

    it('construct calls go through untraced', () => {
      const Point = traced(function Point(this: { x: number }, x: number) {
        this.x = x;
      } as unknown as (x: number) => void);
      const p = new (Point as unknown as new (x: number) => { x: number })(4);
      assert.strictEqual(p.x, 4);
      assert.strictEqual(t.spans().length, 0);
    });

    it('a tracer that throws: fn runs unchanged, untraced', () => {
      const bad = createTestTracer();
      bad.tracer.startSpan = () => {
        throw new Error('tracer down');
      };
      installPatches(['http'], { tracer: bad.tracer });
      try {
        assert.strictEqual(traced((a: number) => a + 1)(1), 2);
      } finally {
        installPatches(['http'], { tracer: t.tracer });
        bad.close();
      }
    });

    it('rejects bad options with a TypeError', () => {
      assert.throws(() => traced(() => 1, { name: 3 as unknown as string }), TypeError);
      assert.throws(() => traced(() => 1, { onStart: 'x' as never }), TypeError);
      assert.throws(() => traced('x' as never), TypeError);
    });
  });

  describe('@traced (TC39 standard decorators)', () => {
    it('gives a span per method call named after the method (or options.name), keeping this, name and length', async () => {
      const inv = new Inventory('sku-');
      assert.strictEqual(Inventory.prototype.count.name, 'count');
      assert.strictEqual(Inventory.prototype.count.length, 2);
      const parent = t.tracer.startSpan('parent');
      const [loaded, counted, current] = await spanInContext(parent, async () => [
        await inv.load(1),
        inv.count('cup', 2),
        inv.current(),
      ]);
      parent.finish();
      assert.deepStrictEqual([loaded, counted], ['sku-1', 'sku-cup:2']);
      const spans = t.spans();
      const load = byName(spans, 'load');
      const count = byName(spans, 'inventory.count');
      const bare = byName(spans, 'current');
      for (const s of [load, count, bare]) assert.strictEqual(parentId(s), spanId(parent));
      assert.strictEqual(tag(count, 'count.of'), 'cup');
      assert.strictEqual(spanId(current!), spanId(bare), 'the method runs in its own span');
    });

    it('refuses to decorate anything but a method', () => {
      assert.throws(() => {
        class Bad {
          @(traced() as unknown as (v: unknown, c: ClassGetterDecoratorContext) => void)
          get value(): number {
            return 1;
          }
        }
        return Bad;
      }, /decorates methods only/);
    });
  });

  describe('@traced (legacy experimentalDecorators)', () => {
    it('decorates methods as TypeScript compiles them with experimentalDecorators', async () => {
      const source = `
        import { traced } from 'opentracing-instrumentation';
        export class Repo {
          constructor(private readonly table: string) {}
          @traced()
          async find(id: number, _opts?: object) { return this.table + ':' + id; }
          @traced({ name: 'repo.save' })
          save(row: string) { return 'saved ' + row + ' in ' + this.table; }
          @traced
          static create(table: string) { return new Repo(table); }
        }`;
      const out = ts.transpileModule(source, {
        compilerOptions: {
          experimentalDecorators: true,
          target: ts.ScriptTarget.ES2022,
          module: ts.ModuleKind.CommonJS,
        },
      }).outputText;
      assert.match(out, /__decorate\(/, 'legacy decorator emit');
      const mod = { exports: {} as { Repo: new (table: string) => { find(id: number): Promise<string>; save(row: string): string } } };
      // eslint-disable-next-line @typescript-eslint/no-implied-eval
      new Function('require', 'module', 'exports', out)(
        (name: string) => (name === 'opentracing-instrumentation' ? lib : require(name)),
        mod,
        mod.exports,
      );
      const Repo = mod.exports.Repo as unknown as {
        new (table: string): { find(id: number): Promise<string>; save(row: string): string };
        create(table: string): { find(id: number): Promise<string>; save(row: string): string };
        prototype: { find: { name: string; length: number } };
      };
      assert.strictEqual(Repo.prototype.find.name, 'find');
      assert.strictEqual(Repo.prototype.find.length, 2);
      const parent = t.tracer.startSpan('parent');
      const results = await spanInContext(parent, async () => {
        const repo = Repo.create('users');
        return [await repo.find(5), repo.save('ada')];
      });
      parent.finish();
      assert.deepStrictEqual(results, ['users:5', 'saved ada in users']);
      const spans = t.spans();
      for (const name of ['create', 'find', 'repo.save']) assert.strictEqual(parentId(byName(spans, name)), spanId(parent));
    });
  });
});
