import assert from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startJaegerAgent } from '../tools/jaeger-agent';
import { plainApp, runAppWith } from './helpers/run-app';

const root = path.join(__dirname, '..');

interface Snippet {
  lang: 'ts' | 'js';
  code: string;
  /** Marked `<!-- readme-test: run -->` in the README: runs on its own. */
  run: boolean;
  line: number;
}

/** The ```ts and ```js code blocks of the README. */
function readmeSnippets(): Snippet[] {
  const text = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const snippets: Snippet[] = [];
  const block = /(<!-- readme-test: run -->\n)?^```(ts|js)\n([\s\S]*?)^```$/gm;
  for (let m = block.exec(text); m !== null; m = block.exec(text)) {
    snippets.push({ lang: m[2] as 'ts' | 'js', code: m[3]!, run: m[1] !== undefined, line: text.slice(0, m.index).split('\n').length });
  }
  return snippets;
}

/**
 * What the README's TypeScript snippets take from the application around
 * them (a request, its span, a function of the app's own).
 */
const SNIPPET_GLOBALS = `
declare const serverSpan: import('opentracing').Span;
declare const request: unknown;
declare function handle(request: unknown): void;
declare function currentTenant(): string;
declare const myRequestContext: { get(): { span?: import('opentracing').Span } | undefined };
declare function pollHealth(): Promise<void>;
`;

/** Compiled with the snippets: the public types are real types, not \`any\`. */
const TYPES_ARE_CHECKED = `
import { initTracer, installAllPatches, setResponseHook } from 'opentracing-instrumentation';
// @ts-expect-error a misspelt option must not compile
initTracer({ servicename: 'typo' });
// @ts-expect-error an unknown patch name must not compile
setResponseHook('no-such-patch', () => undefined);
installAllPatches({ http: { responseHook: (res, span) => span.setTag('status', res.statusCode) } });
`;

describe('the published package (npm pack, installed into an app)', function () {
  this.timeout(180000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-pkg-'));
    const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root, encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop()!;
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'packed-app', private: true }));
    execFileSync(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', path.join(dir, tarball)],
      { cwd: dir, stdio: 'ignore' },
    );
    fs.copyFileSync(plainApp, path.join(dir, 'app.js'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('ships dist/ with type declarations and only what users need', () => {
    const pkg = path.join(dir, 'node_modules', 'opentracing-instrumentation');
    assert.ok(fs.existsSync(path.join(pkg, 'LICENSE')));
    assert.match(fs.readFileSync(path.join(pkg, 'LICENSE'), 'utf8'), /^MIT License/);
    assert.ok(fs.existsSync(path.join(pkg, 'dist', 'index.js')));
    assert.ok(fs.existsSync(path.join(pkg, 'dist', 'index.d.ts')));
    assert.ok(fs.existsSync(path.join(pkg, 'register.js')));
    assert.ok(!fs.existsSync(path.join(pkg, 'src')));
    assert.ok(!fs.existsSync(path.join(pkg, 'test')));
  });

  it("require('opentracing-instrumentation') gives the public API", () => {
    const out = execFileSync(
      process.execPath,
      ['-e', "console.log(Object.keys(require('opentracing-instrumentation')).sort().join(','))"],
      { cwd: dir, encoding: 'utf8' },
    ).trim();
    for (const name of ['installAllPatches', 'installPatches', 'uninstallAllPatches', 'getCurrentSpan', 'setCurrentSpanFunc', 'spanInContext', 'setResponseHook']) {
      assert.ok(out.split(',').includes(name), `${name} missing from ${out}`);
    }
  });

  it('node -r opentracing-instrumentation/register app.js traces the app', async () => {
    const agent = await startJaegerAgent();
    try {
      const run = await runAppWith(['-r', 'opentracing-instrumentation/register', path.join(dir, 'app.js')], dir, {
        JAEGER_AGENT_HOST: '127.0.0.1',
        JAEGER_AGENT_PORT: String(agent.port),
      });
      assert.strictEqual(run.code, 0, run.stderr);
      const spans = await agent.waitForSpans(4);
      assert.deepStrictEqual([...new Set(spans.map((s) => s.serviceName))], ['packed-app']);
      assert.deepStrictEqual(spans.map((s) => s.operationName), ['GET', 'GET', 'GET', 'GET']);
      // a client span per call, and a server span (http-server) for each request the app's own server took
      assert.deepStrictEqual(spans.map((s) => s.tags['span.kind']).sort(), ['client', 'client', 'server', 'server']);
    } finally {
      await agent.close();
    }
  });

  describe("the README's snippets, in an app that has only this package installed", () => {
    const snippets = readmeSnippets();
    const tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');

    it('finds the snippets', () => {
      assert.ok(snippets.filter((s) => s.lang === 'ts').length >= 8, 'TypeScript snippets');
      assert.ok(snippets.filter((s) => s.run).length >= 3, 'runnable JavaScript snippets');
    });

    for (const [name, compilerOptions] of [
      ['moduleResolution node', { module: 'commonjs', moduleResolution: 'node' }],
      ['moduleResolution node16 (package exports)', { module: 'node16', moduleResolution: 'node16' }],
    ] as const) {
      it(`the TypeScript snippets compile under tsc --strict (${name})`, () => {
        const src = fs.mkdtempSync(path.join(dir, 'ts-'));
        for (const s of snippets) {
          if (s.lang === 'ts') fs.writeFileSync(path.join(src, `readme-line-${s.line}.ts`), `${s.code}\nexport {};\n`);
        }
        fs.writeFileSync(path.join(src, 'globals.d.ts'), SNIPPET_GLOBALS);
        fs.writeFileSync(path.join(src, 'types-are-checked.ts'), TYPES_ARE_CHECKED);
        fs.writeFileSync(
          path.join(src, 'tsconfig.json'),
          JSON.stringify({
            compilerOptions: { ...compilerOptions, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, esModuleInterop: true },
            include: ['*.ts'],
          }),
        );
        try {
          execFileSync(process.execPath, [tsc, '-p', src], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
        } catch (err) {
          const e = err as { stdout?: string; stderr?: string };
          assert.fail(`tsc --strict failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
        }
      });
    }

    it('the JavaScript snippets parse, and the self-contained ones run under -r register', async () => {
      const ran: number[] = [];
      for (const s of snippets.filter((x) => x.lang === 'js')) {
        const file = path.join(dir, `readme-line-${s.line}.js`);
        fs.writeFileSync(file, s.code);
        execFileSync(process.execPath, ['--check', file], { cwd: dir, stdio: 'pipe' });
        if (!s.run) continue;
        const run = await runAppWith(['-r', 'opentracing-instrumentation/register', file], dir, {
          JAEGER_AGENT_HOST: '127.0.0.1',
          JAEGER_AGENT_PORT: '9', // discard: nothing listens, and UDP sends do not fail
        });
        assert.strictEqual(run.code, 0, `README line ${s.line}: ${run.stderr}`);
        assert.strictEqual(run.stderr, '', `README line ${s.line}`);
        ran.push(s.line);
      }
      assert.ok(ran.length >= 3, `ran ${ran.join(', ')}`);
    });
  });
});
