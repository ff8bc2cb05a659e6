/**
 * The require hook (src/require-hook.ts) and the registry's lazy hook files
 * (src/hooks/index.ts): what `-r register` loads at startup, and that a
 * library required later is still patched.
 */
import assert from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import Module, { createRequire } from 'module';
import * as os from 'os';
import * as path from 'path';
import { instrumentations } from '../src/hooks';
import { hookRequire, type RequireHook } from '../src/require-hook';

const ROOT = path.join(__dirname, '..');

describe('require hook', () => {
  let hook: RequireHook | undefined;
  let seen: Array<{ name: string; exports: unknown }>;
  const originalRequire = Module.prototype.require;
  beforeEach(() => {
    seen = [];
  });
  afterEach(() => {
    hook?.unhook();
    hook = undefined;
    Module.prototype.require = originalRequire;
  });

  function watch(...names: string[]): void {
    hook = hookRequire(names, (exports, name) => seen.push({ name, exports }));
  }

  it('reports a watched package required by its name, with the exports the caller gets, before the caller gets them', () => {
    let seenFirst = false;
    hook = hookRequire(['pg'], (exports) => {
      seen.push({ name: 'pg', exports });
      seenFirst = true;
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pg = require('pg') as unknown;
    assert.ok(seenFirst);
    assert.deepStrictEqual(seen.map((s) => s.name), ['pg']);
    assert.strictEqual(seen[0].exports, pg);
  });

  /** A package tree in a temporary folder: `files` relative to its node_modules. Returns a require from its root. */
  function packages(files: Record<string, string>): { require: NodeJS.Require; dir: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-require-hook-'));
    for (const [file, text] of Object.entries(files)) {
      const full = path.join(dir, 'node_modules', file);
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.writeFileSync(full, text);
    }
    return { require: createRequire(path.join(dir, 'app.js')), dir };
  }

  it('a scoped package, and a path to the main file of a watched package; not its other files, not unwatched packages', () => {
    const tree = packages({
      'plain-lib/package.json': JSON.stringify({ name: 'plain-lib', main: 'lib/index.js' }),
      'plain-lib/lib/index.js': 'exports.main = true;\n',
      'plain-lib/lib/other.js': 'exports.other = true;\n',
      'other-lib/index.js': 'exports.other = true;\n',
      '@scope/lib/index.js': 'exports.scoped = true;\n',
    });
    try {
      watch('plain-lib', '@scope/lib');
      const main = tree.require('plain-lib') as unknown;
      const scoped = tree.require('@scope/lib') as unknown;
      const viaDir = tree.require('plain-lib/lib') as unknown;
      const viaFile = tree.require('plain-lib/lib/index.js') as unknown;
      tree.require('plain-lib/lib/other');
      tree.require('other-lib');
      tree.require(path.join(tree.dir, 'node_modules', 'plain-lib'));
      tree.require('path');
      assert.deepStrictEqual(seen.map((s) => s.name), ['plain-lib', '@scope/lib', 'plain-lib', 'plain-lib']);
      assert.strictEqual(viaDir, main);
      assert.strictEqual(viaFile, main);
      assert.deepStrictEqual(seen.map((s) => s.exports), [main, scoped, main, main]);
    } finally {
      fs.rmSync(tree.dir, { recursive: true, force: true });
    }
  });

  it('a package that requires itself while loading is reported once, complete', () => {
    const tree = packages({
      'circular-lib/index.js': "exports.first = 1; require('circular-lib'); exports.last = 2;\n",
    });
    try {
      watch('circular-lib');
      const exports = tree.require('circular-lib') as unknown;
      assert.strictEqual(seen.length, 1);
      assert.strictEqual(seen[0].exports, exports);
      assert.deepStrictEqual({ ...(exports as object) }, { first: 1, last: 2 });
    } finally {
      fs.rmSync(tree.dir, { recursive: true, force: true });
    }
  });

  it('a callback that throws is contained: the caller gets the module', () => {
    hook = hookRequire(['pg'], () => {
      throw new Error('boom');
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    assert.strictEqual(typeof (require('pg') as { Client?: unknown }).Client, 'function');
  });

  it('keeps the name and length of require; unhook restores the very same function', () => {
    watch('pg');
    assert.notStrictEqual(Module.prototype.require, originalRequire);
    assert.strictEqual(Module.prototype.require.name, originalRequire.name);
    assert.strictEqual(Module.prototype.require.length, originalRequire.length);
    hook!.unhook();
    assert.strictEqual(Module.prototype.require, originalRequire);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('pg');
    assert.strictEqual(seen.length, 0);
  });

  it('ES module imports: a watched CommonJS package\'s main file is reported before the namespace is built, not its other files', () => {
    const tree = packages({
      'cjs-lib/package.json': JSON.stringify({ name: 'cjs-lib', main: 'lib/main.js' }),
      'cjs-lib/lib/main.js': "exports.answer = 1; exports.Thing = class Thing {};",
      'cjs-lib/lib/other.js': 'exports.other = true;',
      'plain-lib/package.json': JSON.stringify({ name: 'plain-lib' }),
      'plain-lib/index.js': 'module.exports = { plain: true };',
    });
    // An ES module app, in a child: the hook is installed first (as -r would).
    const app =
      `import { createRequire } from 'node:module';` +
      `const { hookRequire } = createRequire(import.meta.url)(${JSON.stringify(path.join(ROOT, 'dist', 'require-hook.js'))});` +
      `const seen = [];` +
      `hookRequire(['cjs-lib', 'plain-nope'], (exports, name) => { exports.Thing.prototype.patched = true; seen.push([name, Object.keys(exports)]); });` +
      `const ns = await import('cjs-lib'); await import('cjs-lib/lib/other.js'); await import('plain-lib');` +
      `console.log(JSON.stringify({ seen, keys: Object.keys(ns), same: ns.default.Thing === ns.Thing, patched: new ns.Thing().patched === true }));`;
    try {
      fs.writeFileSync(path.join(tree.dir, 'app.mjs'), app);
      const out = JSON.parse(execFileSync(process.execPath, [path.join(tree.dir, 'app.mjs')], { encoding: 'utf8' })) as unknown;
      assert.deepStrictEqual(out, { seen: [['cjs-lib', ['answer', 'Thing']]], keys: ['Thing', 'answer', 'default'], same: true, patched: true });
    } finally {
      fs.rmSync(tree.dir, { recursive: true, force: true });
    }
  });

  it('unhook restores Module._load too', () => {
    const statics = Module as unknown as { _load: unknown };
    const original = statics._load;
    watch('pg');
    assert.notStrictEqual(statics._load, original);
    hook!.unhook();
    assert.strictEqual(statics._load, original);
  });

  it('unhook after someone else wrapped require: theirs stays, ours stops reporting', () => {
    watch('pg');
    const ours = Module.prototype.require;
    let theirs = 0;
    Module.prototype.require = function require(this: NodeJS.Module, id: string) {
      theirs++;
      return ours.call(this, id);
    } as typeof ours;
    hook!.unhook();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('pg');
    assert.strictEqual(theirs, 1);
    assert.strictEqual(seen.length, 0);
  });
});

describe('patch registry: hook files loaded on demand', () => {
  it('every entry loads the hook it names (same patch name, same module)', () => {
    for (const reg of instrumentations) {
      const inst = reg.load();
      assert.strictEqual(inst.name, reg.name, `${reg.name}/${reg.module}`);
      assert.strictEqual(inst.module, reg.module, `${reg.name}/${reg.module}`);
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

  it('node -r ./register: loads the hooks of builtins only, and neither require-in-the-middle nor debug', () => {
    const out = underRegister(
      `${LOADED} console.log(JSON.stringify({ hooks, ritm: loaded('/require-in-the-middle/index.js'), debug: loaded('/debug/src/index.js') }))`,
    );
    assert.deepStrictEqual(out, { hooks: ['http', 'http-server', 'fetch'], ritm: false, debug: false });
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
});
