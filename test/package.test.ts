import assert from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startJaegerAgent } from '../tools/jaeger-agent';
import { plainApp, runAppWith } from './helpers/run-app';

const root = path.join(__dirname, '..');

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
});
