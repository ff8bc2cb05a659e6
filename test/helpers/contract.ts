/**
 * The contract kit: what ../shared/contract.md asks of every client patch,
 * checked from one declaration of the patch's call forms. A hook's test file
 * calls `describeClientContract({...})` and keeps only what is specific to
 * its library.
 *
 * Checked per call form: one span, named as declared, a child of the current
 * span and of the custom getter's span, with `span.kind` and `component`;
 * the library's callback or continuation sees the caller's span; nothing
 * under `suppressInstrumentation`; `requireParentSpan`; a tracer whose
 * `startSpan` or `inject` throws, or whose `startSpan` returns null; request
 * and response hooks called once, and hooks that throw or reject (no
 * unhandled rejection); a sampled-out parent records nothing. Per patch:
 * uninstall (no spans, originals back) and double install (one span), the
 * wrapped methods' `name` and `length`, the module patched when required by
 * its resolved file path in a fresh process. Finish-once and the secret
 * canary are checked for every span of the suite by test/hooks.ts.
 */
import assert from 'assert';
import { execFile } from 'child_process';
import * as path from 'path';
import type { Span } from 'opentracing';
import { getCurrentSpan, setCurrentSpanFunc, spanInContext, suppressInstrumentation } from '../../src/context';
import { installPatches, uninstallAllPatches } from '../../src/patcher';
import type { PatchName } from '../../src/options';
import { isWrapped, originalOf } from '../../src/wrap';
import { unhandledRejections } from './db';
import { createTestTracer, parentId, spanId, tag, tracerWithBrokenMethod, waitFor, type JaegerSpan, type TestTracer } from './tracing';

/** One way of making a call with the library. */
export interface CallForm {
  /** `client.query(text, callback)` */
  readonly name: string;
  /**
   * Makes one logical call and resolves when the application has its result
   * (its callback ran, its promise settled). Calls `observe()` from inside the
   * library's callback, event or promise continuation, where the kit checks
   * the current span. May reject when `fails` is set.
   */
  run(observe: () => void): Promise<unknown>;
  /** The operation name of its span. */
  readonly operationName: string | RegExp;
  /** The call fails (the span gets `error`=`true`). Default: false. */
  readonly fails?: boolean;
  /** Spans this form gives. Default: 1. */
  readonly spans?: number;
}

export interface ClientContract {
  readonly patch: PatchName;
  /** `component` of its spans. Default: the patch name. */
  readonly component?: string;
  /** `span.kind`. Default: `client`. */
  readonly kind?: string;
  readonly callForms: readonly CallForm[];
  /** Runs once before the kit's tests (after install), e.g. to open connections. */
  readonly before?: () => Promise<void>;
  /** Runs once after them. */
  readonly after?: () => Promise<void>;
  /**
   * The methods the patch wraps, as [object, method name] pairs read from the
   * module as loaded by the test file: checked for `name`/`length` and restored on uninstall.
   */
  readonly wrapped: () => ReadonlyArray<readonly [object, string]>;
  /**
   * For the fresh-process check: the package name, and a JS function source
   * `(exports) => [[object, 'method'], ...]` naming methods that must be
   * wrapped once the package is required by its resolved file path.
   */
  readonly resolvedPath?: { readonly module: string; readonly probe: string };
}

const ROOT = path.join(__dirname, '..', '..');

async function spansAfter(t: TestTracer, form: CallForm, parent?: Span): Promise<JaegerSpan[]> {
  const expected = (form.spans ?? 1) + (parent ? 0 : 0);
  await waitFor(() => t.spans().length >= expected, 3000, `${expected} span(s) of ${form.name}`).catch(() => undefined);
  return t.spans();
}

async function runForm(form: CallForm, observe: () => void = () => undefined): Promise<void> {
  try {
    await form.run(observe);
  } catch (err) {
    if (!form.fails) throw err;
  }
}

function opMatches(form: CallForm, name: string): boolean {
  return typeof form.operationName === 'string' ? name === form.operationName : form.operationName.test(name);
}

export function describeClientContract(contract: ClientContract): void {
  const { patch } = contract;
  const component = contract.component ?? patch;
  const kind = contract.kind ?? 'client';

  describe(`the client contract of the ${patch} patch`, function () {
    this.timeout(30000);
    const t = createTestTracer();

    before(async () => {
      installPatches([patch], { tracer: t.tracer });
      if (contract.before) await contract.before();
    });
    beforeEach(() => {
      t.clear();
      setCurrentSpanFunc(null);
      installPatches([patch], { tracer: t.tracer });
    });
    after(async () => {
      if (contract.after) await contract.after();
      uninstallAllPatches();
      setCurrentSpanFunc(null);
      t.close();
    });

    it('keeps name and length of every wrapped method', () => {
      const wrapped = contract.wrapped();
      assert.ok(wrapped.length > 0, 'the contract names the wrapped methods');
      for (const [target, method] of wrapped) {
        const fn = (target as Record<string, unknown>)[method] as (...a: unknown[]) => unknown;
        assert.ok(isWrapped(fn), `${method} is wrapped`);
        const original = originalOf(fn);
        assert.strictEqual(fn.name, original.name, `${method}.name`);
        assert.strictEqual(fn.length, original.length, `${method}.length`);
      }
    });

    for (const form of contract.callForms) {
      describe(`#${form.name}`, () => {
        it('one span, child of the current span, with kind and component; the library calls back in the caller\'s context', async () => {
          const parent = t.tracer.startSpan('parent');
          const seen: Array<Span | undefined> = [];
          await spanInContext(parent, () => runForm(form, () => seen.push(getCurrentSpan())));
          parent.finish();
          const spans = (await spansAfter(t, form)).filter((s) => s !== (parent as unknown));
          const mine = spans.filter((s) => opMatches(form, s.operationName));
          assert.strictEqual(mine.length, form.spans ?? 1, `spans of ${form.name}: ${spans.map((s) => s.operationName).join(', ')}`);
          for (const span of mine) {
            assert.strictEqual(parentId(span), spanId(parent), `${span.operationName} is a child of the current span`);
            assert.strictEqual(tag(span, 'span.kind'), kind);
            assert.strictEqual(tag(span, 'component'), component);
            assert.strictEqual(tag(span, 'error') === true, form.fails === true, 'error tag');
          }
          assert.ok(seen.length > 0, 'the form observed its callback or continuation');
          for (const s of seen) assert.strictEqual(s, parent, 'the caller\'s span is current in the callback, not the client span');
        });

        it('the custom getter is consulted on every call', async () => {
          const a = t.tracer.startSpan('getter-a');
          const b = t.tracer.startSpan('getter-b');
          setCurrentSpanFunc(() => a);
          await runForm(form);
          setCurrentSpanFunc(() => b);
          await runForm(form);
          setCurrentSpanFunc(null);
          a.finish();
          b.finish();
          await waitFor(() => t.spans().filter((s) => opMatches(form, s.operationName)).length >= 2 * (form.spans ?? 1), 3000, 'spans').catch(() => undefined);
          const mine = t.spans().filter((s) => opMatches(form, s.operationName));
          const n = form.spans ?? 1;
          assert.strictEqual(mine.length, 2 * n);
          assert.deepStrictEqual(
            mine.map((s) => parentId(s)).sort(),
            [...Array(n).fill(spanId(a)), ...Array(n).fill(spanId(b))].sort(),
          );
        });

        it('no span under suppressInstrumentation', async () => {
          await suppressInstrumentation(() => runForm(form));
          await new Promise((r) => setTimeout(r, 20));
          assert.deepStrictEqual(t.spans().map((s) => s.operationName), []);
        });
      });
    }

    const first = contract.callForms[0];

    it('requireParentSpan: no span without a current span, a child with one', async () => {
      installPatches([patch], { tracer: t.tracer, [patch]: { requireParentSpan: true } });
      await runForm(first);
      await new Promise((r) => setTimeout(r, 20));
      assert.strictEqual(t.spans().length, 0, 'no span without a parent');
      const parent = t.tracer.startSpan('parent');
      await spanInContext(parent, () => runForm(first));
      parent.finish();
      await spansAfter(t, first, parent);
      assert.ok(t.spans().some((s) => opMatches(first, s.operationName) && parentId(s) === spanId(parent)));
    });

    it('no current span: the call starts a new trace', async () => {
      await runForm(first);
      const spans = await spansAfter(t, first);
      const mine = spans.filter((s) => opMatches(first, s.operationName));
      assert.strictEqual(mine.length, first.spans ?? 1);
      assert.strictEqual(parentId(mine[0]), undefined);
    });

    for (const method of ['startSpan', 'inject'] as const) {
      it(`a tracer whose ${method} throws: every call form works as without instrumentation`, async () => {
        const broken = tracerWithBrokenMethod(method);
        try {
          installPatches([patch], { tracer: broken.tracer });
          for (const form of contract.callForms) await runForm(form);
        } finally {
          installPatches([patch], { tracer: t.tracer });
          broken.close();
        }
      });
    }

    it('a tracer whose startSpan returns null: every call form works, untraced', async () => {
      const odd = createTestTracer({ accounted: false });
      (odd.tracer as unknown as { startSpan: () => null }).startSpan = () => null;
      try {
        installPatches([patch], { tracer: odd.tracer });
        for (const form of contract.callForms) await runForm(form);
      } finally {
        installPatches([patch], { tracer: t.tracer });
        odd.close();
      }
    });

    it('request and response hooks: called once each per call, with the span', async () => {
      const requests: Span[] = [];
      const responses: Span[] = [];
      installPatches([patch], {
        tracer: t.tracer,
        [patch]: { requestHook: (span: Span) => requests.push(span), responseHook: (_r: unknown, span: Span) => responses.push(span) },
      });
      const ok = contract.callForms.find((f) => !f.fails) ?? first;
      await runForm(ok);
      await spansAfter(t, ok);
      const mine = t.spans().filter((s) => opMatches(ok, s.operationName));
      assert.strictEqual(requests.length, ok.spans ?? 1, 'request hook calls');
      assert.strictEqual(responses.length, ok.spans ?? 1, 'response hook calls');
      assert.deepStrictEqual(new Set(requests), new Set(mine as unknown as Span[]));
    });

    for (const style of ['throw', 'reject'] as const) {
      it(`hooks that ${style}: every call form works, and no unhandled rejection escapes`, async () => {
        const bad = style === 'throw'
          ? () => {
              throw new Error('hook broken');
            }
          : async () => {
              throw new Error('hook broken');
            };
        installPatches([patch], { tracer: t.tracer, [patch]: { requestHook: bad, responseHook: bad } });
        const rejections = await unhandledRejections(() => {
          void (async () => {
            for (const form of contract.callForms) await runForm(form);
          })();
        }, 1500);
        assert.deepStrictEqual(rejections, []);
      });
    }

    it('a sampled-out parent: no span is recorded, the call works', async () => {
      const unsampled = createTestTracer({ sampled: false });
      try {
        installPatches([patch], { tracer: unsampled.tracer });
        const parent = unsampled.tracer.startSpan('unsampled-parent');
        await spanInContext(parent, () => runForm(first));
        parent.finish();
        await new Promise((r) => setTimeout(r, 20));
        assert.strictEqual(unsampled.spans().filter((s) => opMatches(first, s.operationName)).length, 0);
      } finally {
        installPatches([patch], { tracer: t.tracer });
        unsampled.close();
      }
    });

    it('uninstall: originals back, no span; install twice: one span per call', async () => {
      const wrapped = contract.wrapped().map(([target, method]) => [target, method, originalOf((target as Record<string, unknown>)[method])] as const);
      uninstallAllPatches();
      for (const [target, method, original] of wrapped) {
        assert.strictEqual((target as Record<string, unknown>)[method], original, `${method} restored`);
      }
      await runForm(first);
      await new Promise((r) => setTimeout(r, 20));
      assert.strictEqual(t.spans().length, 0, 'no span after uninstall');
      installPatches([patch], { tracer: t.tracer });
      installPatches([patch], { tracer: t.tracer });
      await runForm(first);
      await spansAfter(t, first);
      await new Promise((r) => setTimeout(r, 20));
      assert.strictEqual(t.spans().filter((s) => opMatches(first, s.operationName)).length, first.spans ?? 1);
    });

    if (contract.resolvedPath !== undefined) {
      const { module, probe } = contract.resolvedPath;
      it(`${module} required by its resolved file path in a fresh process is patched`, async () => {
        const script = `
          const { installAllPatches } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
          const { isWrapped } = require(${JSON.stringify(path.join(ROOT, 'dist', 'wrap.js'))});
          installAllPatches();
          const m = require(require.resolve(${JSON.stringify(module)}));
          const pairs = (${probe})(m);
          const bad = pairs.filter(([o, k]) => !isWrapped(o[k])).map(([, k]) => k);
          process.stdout.write(JSON.stringify({ n: pairs.length, bad }));`;
        const out = await new Promise<string>((resolve, reject) =>
          execFile(process.execPath, ['-e', script], { cwd: ROOT, timeout: 20000 }, (err, stdout, stderr) =>
            err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
          ),
        );
        const { n, bad } = JSON.parse(out) as { n: number; bad: string[] };
        assert.ok(n > 0, 'the probe names methods');
        assert.deepStrictEqual(bad, [], 'methods not wrapped');
      });
    }
  });
}
