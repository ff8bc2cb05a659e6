/**
 * The module loader (src/loader.ts: require-in-the-middle for `require`,
 * import-in-the-middle for `import`) and the registry's lazy hook files
 * (src/hooks/index.ts): what `-r register` loads at startup, and that a
 * library loaded later, however it is loaded, is still patched.
 */
import assert from 'assert';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import Module, { createRequire } from 'module';
import * as os from 'os';
import * as path from 'path';
import { instrumentations } from '../src/hooks';
import { hookRequire, isEsmEntry, type LoadHook } from '../src/loader';

const ROOT = path.join(__dirname, '..');

/** A package tree in a temporary folder: `files` relative to the folder. Returns a require from its root. */
function packages(files: Record<string, string>): { require: NodeJS.Require; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-loader-'));
  for (const [file, text] of Object.entries(files)) {
    const full = path.join(dir, file);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, text);
  }
  return { require: createRequire(path.join(dir, 'app.js')), dir };
}

describe('loader: require (require-in-the-middle, one hook)', () => {
  let hook: LoadHook | undefined;
  let seen: Array<{ name: string; exports: unknown; basedir?: string }>;
  const originalRequire = Module.prototype.require;
  let tree: { require: NodeJS.Require; dir: string } | undefined;
  beforeEach(() => {
    seen = [];
  });
  afterEach(() => {
    hook?.unhook();
    hook = undefined;
    Module.prototype.require = originalRequire;
    if (tree !== undefined) fs.rmSync(tree.dir, { recursive: true, force: true });
    tree = undefined;
  });

  function watch(names: string[], internals = false): void {
    hook = hookRequire(names, internals, (exports, name, basedir) => seen.push({ name, exports, basedir }));
  }

  it('reports a watched package required by its name, with the exports the caller gets, before the caller gets them', () => {
    let seenFirst = false;
    hook = hookRequire(['pg'], false, (exports, name) => {
      seen.push({ name, exports });
      seenFirst = true;
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pg = require('pg') as unknown;
    assert.ok(seenFirst);
    assert.deepStrictEqual(seen.map((s) => s.name), ['pg']);
    assert.strictEqual(seen[0].exports, pg);
  });

  it('by name, by its resolved file path, by its folder, by a relative require from its own other entry; scoped; not other files nor unwatched packages', () => {
    tree = packages({
      'node_modules/plain-lib/package.json': JSON.stringify({ name: 'plain-lib', version: '1.2.3', main: 'lib/index.js' }),
      'node_modules/plain-lib/lib/index.js': 'exports.main = true;\n',
      'node_modules/plain-lib/lib/other.js': 'exports.other = true;\n',
      // like mysql2/promise.js: another entry of the package that loads the main file relatively
      'node_modules/plain-lib/promise.js': "module.exports = { core: require('./lib/index.js') };\n",
      'node_modules/other-lib/index.js': 'exports.other = true;\n',
      'node_modules/@scope/lib/index.js': 'exports.scoped = true;\n',
    });
    watch(['plain-lib', '@scope/lib']);
    const base = path.join(tree.dir, 'node_modules', 'plain-lib');
    const promise = tree.require('plain-lib/promise') as { core: unknown };
    assert.deepStrictEqual(seen.map((s) => [s.name, s.basedir]), [['plain-lib', base]], 'seen through the relative require');
    const main = tree.require('plain-lib') as unknown;
    assert.strictEqual(promise.core, main);
    const scoped = tree.require('@scope/lib') as unknown;
    tree.require('plain-lib/lib/other');
    tree.require('other-lib');
    tree.require('path');
    assert.strictEqual(tree.require(tree.require.resolve('plain-lib')), main);
    assert.strictEqual(tree.require(base), main);
    assert.deepStrictEqual(seen.map((s) => s.name), ['plain-lib', '@scope/lib']);
    assert.deepStrictEqual(seen.map((s) => s.exports), [main, scoped]);
  });

  it('a resolved file path and an absolute folder reach the hook on their first load (fresh copies each)', () => {
    tree = packages({
      'a/node_modules/one-lib/index.js': 'exports.n = 1;\n',
      'b/node_modules/one-lib/index.js': 'exports.n = 2;\n',
    });
    watch(['one-lib']);
    const viaFile = tree.require(path.join(tree.dir, 'a', 'node_modules', 'one-lib', 'index.js')) as unknown;
    const viaDir = tree.require(path.join(tree.dir, 'b', 'node_modules', 'one-lib')) as unknown;
    assert.deepStrictEqual(seen.map((s) => s.exports), [viaFile, viaDir]);
  });

  it('two copies of a package (a nested node_modules): each reported once, with its own folder', () => {
    tree = packages({
      'node_modules/dup-lib/package.json': JSON.stringify({ name: 'dup-lib', version: '2.0.0' }),
      'node_modules/dup-lib/index.js': 'exports.v = 2;\n',
      'node_modules/user-lib/index.js': "module.exports = require('dup-lib');\n",
      'node_modules/user-lib/node_modules/dup-lib/package.json': JSON.stringify({ name: 'dup-lib', version: '1.0.0' }),
      'node_modules/user-lib/node_modules/dup-lib/index.js': 'exports.v = 1;\n',
    });
    watch(['dup-lib']);
    const outer = tree.require('dup-lib') as { v: number };
    const inner = tree.require('user-lib') as { v: number };
    tree.require('dup-lib');
    assert.deepStrictEqual([outer.v, inner.v], [2, 1]);
    assert.deepStrictEqual(
      seen.map((s) => [s.exports, s.basedir]),
      [
        [outer, path.join(tree.dir, 'node_modules', 'dup-lib')],
        [inner, path.join(tree.dir, 'node_modules', 'user-lib', 'node_modules', 'dup-lib')],
      ],
    );
  });

  it('internals: a file inside the package is reported as <package>/<file>', () => {
    tree = packages({
      'node_modules/deep-lib/index.js': "exports.conn = require('./lib/connection.js');\n",
      'node_modules/deep-lib/lib/connection.js': 'exports.Connection = class Connection {};\n',
    });
    watch(['deep-lib'], true);
    tree.require('deep-lib');
    assert.deepStrictEqual(seen.map((s) => s.name.split(path.sep).join('/')), ['deep-lib/lib/connection.js', 'deep-lib']);
  });

  it('a package that requires itself while loading is reported once, complete', () => {
    tree = packages({
      'node_modules/circular-lib/index.js': "exports.first = 1; require('circular-lib'); exports.last = 2;\n",
    });
    watch(['circular-lib']);
    const exports = tree.require('circular-lib') as unknown;
    assert.strictEqual(seen.length, 1);
    assert.strictEqual(seen[0].exports, exports);
    assert.deepStrictEqual({ ...(exports as object) }, { first: 1, last: 2 });
  });

  it('a callback that throws is contained: the caller gets the module', () => {
    tree = packages({ 'node_modules/throw-lib/index.js': 'exports.ok = true;\n' });
    hook = hookRequire(['throw-lib'], false, () => {
      throw new Error('boom');
    });
    assert.deepStrictEqual(tree.require('throw-lib'), { ok: true });
  });

  it('unhook restores the very same require and stops reporting', () => {
    tree = packages({ 'node_modules/late-lib/index.js': 'exports.late = true;\n' });
    watch(['late-lib']);
    assert.notStrictEqual(Module.prototype.require, originalRequire);
    hook!.unhook();
    assert.strictEqual(Module.prototype.require, originalRequire);
    tree.require('late-lib');
    assert.strictEqual(seen.length, 0);
  });

  it('unhook after someone else wrapped require: theirs stays, ours stops reporting', () => {
    tree = packages({ 'node_modules/late-lib/index.js': 'exports.late = true;\n' });
    watch(['late-lib']);
    const ours = Module.prototype.require;
    let theirs = 0;
    Module.prototype.require = function require(this: NodeJS.Module, id: string) {
      theirs++;
      return ours.call(this, id);
    } as typeof ours;
    hook!.unhook();
    tree.require('late-lib');
    assert.ok(theirs >= 1);
    assert.strictEqual(seen.length, 0);
  });
});

describe('loader: which entry points are ES modules (register adds the ESM loader for them)', () => {
  it('.mjs and .mts always; .js, .ts and extensionless under "type": "module"; .cjs, .cts and .js elsewhere never', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-entry-'));
    try {
      fs.mkdirSync(path.join(dir, 'esm'));
      fs.writeFileSync(path.join(dir, 'esm', 'package.json'), JSON.stringify({ type: 'module' }));
      fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'cjs-app' }));
      const at = (f: string): boolean => isEsmEntry(path.join(dir, f));
      assert.deepStrictEqual(
        ['app.mjs', 'app.mts', 'esm/app.js', 'esm/app.ts', 'esm/app', 'app.js', 'app.ts', 'app.cjs', 'app.cts', 'esm/app.cjs'].map(at),
        [true, true, true, true, true, false, false, false, false, false],
      );
      assert.strictEqual(isEsmEntry(undefined), false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('loader: import (import-in-the-middle, in a child process)', () => {
  it('an ES-module-only package (named exports, no default: a dist-es build) and a CommonJS one, imported by an ES module app; named imports follow module.exports', () => {
    const tree = packages({
      'node_modules/esm-lib/package.json': JSON.stringify({ name: 'esm-lib', version: '1.0.0', type: 'module', exports: { import: './dist-es/index.js' } }),
      'node_modules/esm-lib/dist-es/index.js':
        "export class Client { send() { return 'sent'; } }\nexport function helper() { return 'original'; }\n",
      'node_modules/cjs-lib/package.json': JSON.stringify({ name: 'cjs-lib', version: '1.0.0', main: 'lib/main.js' }),
      'node_modules/cjs-lib/lib/main.js': "exports.answer = 1; exports.Thing = class Thing {}; exports.run = function run() { return 'original'; };",
      'node_modules/plain-lib/index.js': 'module.exports = { plain: true };',
      // The app: the loader is registered first (as --import would), then the app's graph loads.
      'app.mjs':
        `import { Client, helper } from 'esm-lib';\n` +
        `import cjs, { Thing, run } from 'cjs-lib';\n` +
        `import 'plain-lib';\n` +
        `const seen = globalThis.seen;\n` +
        `const ranPatched = run();\n` +
        // what uninstall does: the original back on module.exports, then the named exports follow it
        `cjs.run = globalThis.originalRun; globalThis.loader.syncImportedExports();\n` +
        `console.log(JSON.stringify({ seen, send: new Client().send(), helper: helper(), same: cjs.Thing === Thing, patched: new Thing().patched === true, ranPatched, ranAfter: run() }));\n`,
      'preload.mjs':
        `import { createRequire } from 'node:module';\n` +
        `const require = createRequire(import.meta.url);\n` +
        `const loader = require(${JSON.stringify(path.join(ROOT, 'dist', 'loader.js'))});\n` +
        `globalThis.seen = []; globalThis.loader = loader;\n` +
        `loader.registerEsmLoader(['esm-lib', 'cjs-lib']);\n` +
        `loader.hookImports(['esm-lib', 'cjs-lib'], (exports, name, basedir) => {\n` +
        `  globalThis.seen.push([name, Object.keys(exports).sort()]);\n` +
        `  if (name === 'esm-lib') { const send = exports.Client.prototype.send; exports.Client.prototype.send = function () { return 'wrapped ' + send.call(this); }; exports.helper = () => 'replaced'; }\n` +
        `  if (name === 'cjs-lib') { exports.Thing.prototype.patched = true; globalThis.originalRun = exports.run; exports.run = function run() { return 'wrapped'; }; }\n` +
        `});\n`,
    });
    try {
      const out = JSON.parse(
        execFileSync(process.execPath, ['--import', path.join(tree.dir, 'preload.mjs'), path.join(tree.dir, 'app.mjs')], { encoding: 'utf8', cwd: tree.dir }),
      ) as unknown;
      assert.deepStrictEqual(out, {
        seen: [
          ['esm-lib', ['Client', 'helper']],
          ['cjs-lib', ['Thing', 'answer', 'run']],
        ],
        send: 'wrapped sent',
        helper: 'replaced',
        same: true,
        patched: true,
        // a function replaced on module.exports: the named import follows it, and follows it back
        ranPatched: 'wrapped',
        ranAfter: 'original',
      });
    } finally {
      fs.rmSync(tree.dir, { recursive: true, force: true });
    }
  });
});

describe('patch registry: hook files loaded on demand', () => {
  it('every entry loads the hook it names (same patch name, same module)', () => {
    for (const reg of instrumentations) {
      const inst = reg.load();
      assert.strictEqual(inst.name, reg.name, `${reg.name}/${reg.module}`);
      assert.strictEqual(inst.module, reg.module, `${reg.name}/${reg.module}`);
      assert.strictEqual(inst.file, reg.file, `${reg.name}/${reg.module}: file`);
    }
  });

  /** What `node -r ./register -e <code>` reports on stdout (JSON). */
  function underRegister(code: string): Record<string, unknown> {
    const out = execFileSync(process.execPath, ['-r', './register', '-e', code], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', JAEGER_SERVICE_NAME: 'require-hook-test', JAEGER_AGENT_HOST: '127.0.0.1' },
      encoding: 'utf8',
    });
    return JSON.parse(out) as Record<string, unknown>;
  }

  const LOADED =
    "const loaded = (f) => Object.keys(require.cache).some((k) => k.endsWith(f));" +
    "const hooks = ['axios', 'pg', 'ioredis', 'http', 'http-server', 'fetch'].filter((h) => loaded('/dist/hooks/' + h + '.js'));";

  it('node -r ./register: loads the hooks of builtins only, require-in-the-middle without debug, no semver, no import-in-the-middle', () => {
    const out = underRegister(
      `${LOADED} console.log(JSON.stringify({ hooks, ritm: loaded('/require-in-the-middle/index.js'), debug: loaded('/debug/src/index.js'),` +
        ` semver: Object.keys(require.cache).some((k) => k.includes('/node_modules/semver/')), iitm: Object.keys(require.cache).some((k) => k.includes('/import-in-the-middle/')) }))`,
    );
    assert.deepStrictEqual(out, { hooks: ['http', 'http-server', 'fetch'], ritm: true, debug: false, semver: false, iitm: false });
  });

  it('node -r ./register: the application still gets the real debug module', () => {
    const out = underRegister(`const d = require('debug'); console.log(JSON.stringify({ fn: typeof d('x'), enable: typeof d.enable }))`);
    assert.deepStrictEqual(out, { fn: 'function', enable: 'function' });
  });

  it('node -r ./register: axios, pg and ioredis required later load their hooks and are patched', () => {
    const out = underRegister(
      `const axios = require('axios'); const pg = require('pg'); const Redis = require('ioredis');` +
        `const wrapped = (f) => typeof f === 'function' && Object.getOwnPropertySymbols(f).some((s) => String(s).includes('original'));` +
        `${LOADED} console.log(JSON.stringify({ hooks, axios: wrapped(axios.Axios.prototype._request),` +
        ` pg: wrapped(pg.Client.prototype.query), ioredis: wrapped(Redis.prototype.sendCommand) }))`,
    );
    assert.deepStrictEqual(out, { hooks: ['axios', 'pg', 'ioredis', 'http', 'http-server', 'fetch'], axios: true, pg: true, ioredis: true });
  });

  it('node -r ./register: pg by its resolved path, ioredis by its absolute folder; uninstall restores them exactly and stops hooking; a reinstall finds what loaded meanwhile', () => {
    const out = underRegister(
      `const { isWrapped } = require('./dist/wrap.js'); const { uninstallAllPatches, installAllPatches } = require('./dist/index.js');` +
        `const pg = require(require.resolve('pg')); const Redis = require(require('path').resolve('node_modules/ioredis'));` +
        `const q = pg.Client.prototype.query; const s = Redis.prototype.sendCommand;` +
        `const before = [isWrapped(q), isWrapped(s)];` +
        `uninstallAllPatches();` +
        `const restored = [isWrapped(pg.Client.prototype.query), isWrapped(Redis.prototype.sendCommand)];` +
        `const axios = require('axios'); const later = isWrapped(axios.Axios.prototype._request);` +
        `installAllPatches();` +
        `console.log(JSON.stringify({ before, restored, later, again: [isWrapped(pg.Client.prototype.query), isWrapped(axios.Axios.prototype._request)] }))`,
    );
    assert.deepStrictEqual(out, { before: [true, true], restored: [false, false], later: false, again: [true, true] });
  });

  it("node -r ./register: a subpath entry loaded inside a require cycle of its own package (@smithy/core/transport while /protocols loads): the main file waits until the cycle is done; same exports as without, no warning", () => {
    const code =
      "require('@aws-sdk/client-s3'); const core = require('@smithy/core'); const { isWrapped } = require('./dist/wrap.js');" +
      "console.log(JSON.stringify({ requestBuilder: typeof core.requestBuilder, getSmithyContext: typeof core.getSmithyContext, send: isWrapped(require('@smithy/core/client').Client.prototype.send) }))";
    const env = { PATH: process.env.PATH ?? '', JAEGER_SERVICE_NAME: 'require-hook-test', JAEGER_AGENT_HOST: '127.0.0.1' };
    const traced = spawnSync(process.execPath, ['-r', './register', '-e', code], { cwd: ROOT, env, encoding: 'utf8' });
    const plain = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, env, encoding: 'utf8' });
    assert.strictEqual(traced.stderr, '', 'nothing on stderr');
    assert.deepStrictEqual(JSON.parse(traced.stdout), { requestBuilder: 'function', getSmithyContext: 'function', send: true });
    assert.deepStrictEqual(JSON.parse(plain.stdout), { requestBuilder: 'function', getSmithyContext: 'function', send: false });
  });

  // mysql2 >= 3.11.5: promise.js builds on lib/ and never loads index.js, the main file the mysql2 hook patches.
  const MYSQL2_CORE =
    "const wrapped = (f) => typeof f === 'function' && Object.getOwnPropertySymbols(f).some((s) => String(s).includes('original'));" +
    "const lib = (f) => require.cache[require('path').join(require('fs').realpathSync(MYSQL2_DIR), 'lib', f)];" +
    'const pool = mysql.createPool({ host: "127.0.0.1", port: 1 });' +
    "const core = { connection: wrapped(lib('connection.js').exports.prototype.query), pool: wrapped(pool.pool.query) };" +
    'pool.end();';

  it('node -r ./register: mysql2/promise alone (its main file never required): the core Connection and Pool are patched', () => {
    const out = underRegister(
      `const MYSQL2_DIR = 'node_modules/mysql2'; const mysql = require('mysql2/promise'); ${MYSQL2_CORE}` +
        ` console.log(JSON.stringify(core))`,
    );
    assert.deepStrictEqual(out, { connection: true, pool: true });
  });

  it('node --import ./register.mjs app.mjs: an ES module app importing mysql2/promise alone: the core Connection and Pool are patched', () => {
    const tree = packages({
      'app.mjs':
        `import mysql from 'mysql2/promise';\n` +
        `import { createRequire } from 'node:module';\n` +
        `const require = createRequire(import.meta.url);\n` +
        `const MYSQL2_DIR = ${JSON.stringify(path.join(ROOT, 'node_modules', 'mysql2'))};\n` +
        `${MYSQL2_CORE}\n` +
        `console.log(JSON.stringify(core));\n`,
    });
    try {
      // the app's own node_modules: this checkout's
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tree.dir, 'node_modules'), 'dir');
      const out = execFileSync(process.execPath, ['--import', path.join(ROOT, 'register.mjs'), path.join(tree.dir, 'app.mjs')], {
        cwd: tree.dir,
        env: { PATH: process.env.PATH ?? '', JAEGER_SERVICE_NAME: 'require-hook-test', JAEGER_AGENT_HOST: '127.0.0.1' },
        encoding: 'utf8',
      });
      assert.deepStrictEqual(JSON.parse(out), { connection: true, pool: true });
    } finally {
      fs.rmSync(tree.dir, { recursive: true, force: true });
    }
  });
});
