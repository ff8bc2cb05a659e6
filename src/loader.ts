/**
 * Module loading: tells the patcher when a watched package is loaded, with
 * its exports and the folder it was loaded from, on the ecosystem's
 * libraries.
 *
 * - CommonJS: require-in-the-middle. ONE `Hook` for every watched package
 *   (each instance wraps `require` again and resolves every id once more:
 *   Kibana measured ~18% of its module loading time in one hook per module,
 *   elastic/kibana#178285).
 *   It decides by the resolved file name, so a package required by name, by
 *   its resolved path (`require(require.resolve('pg'))`), by a relative path
 *   from one of its own files (`mysql2/promise` before 3.11.5 loads
 *   `./index.js`) or from a nested `node_modules` (two copies) are all seen,
 *   main file only unless `internals` (the patcher has every internal file
 *   reported: hooks on one, `file`, and subpath entries, `mysql2/promise.js`).
 * - ES modules: import-in-the-middle's loader, limited to the watched
 *   packages (`include`), registered only for an ES module application
 *   (`register` for an ES module entry point, or `--import
 *   opentracing-instrumentation/register.mjs`). It hands over the namespace of
 *   an imported package, CommonJS (pg: its `default` is `module.exports`) or
 *   ES module (axios' `index.js`, BullMQ's and the AWS SDK's `dist-es`),
 *   and a subpath entry of a CommonJS package (`mysql2/promise`) when it is
 *   in `include` (`subpathSpecifiers`), by that specifier.
 *
 * Not here: builtins (the patcher patches their one exports object at install
 * and refreshes the ESM bindings with `syncBuiltinESMExports`), and packages
 * loaded before install (the patcher scans `require.cache`).
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import * as fs from 'fs';
import Module from 'module';
import * as path from 'path';
import { pathToFileURL } from 'url';
import { logOnce } from './logger';

/** Called with what was loaded: `name` is the package (`pg`) or `<package>/<file>` for an internal file. */
export type OnLoad = (exports: unknown, name: string, basedir: string | undefined) => void;

export interface LoadHook {
  /** Stops reporting; restores `require` if nobody wrapped it after us. */
  unhook(): void;
}

type RitmModule = typeof import('require-in-the-middle');

let ritm: RitmModule | undefined;

/**
 * require-in-the-middle, loaded once.
 *
 * Workaround (startup): require-in-the-middle@8 loads `debug` at its top
 * (index.js: `require('debug')('require-in-the-middle')`, added by
 * nodejs/require-in-the-middle#20) for lines that only print under
 * `DEBUG=require-in-the-middle`; loading `debug` (and the
 * `supports-color`/tty setup it does) measured ~7 ms of CPU of the ~10 ms
 * that loading the library costs on Node 20 (`node -e "require(...)"`, 40
 * alternated runs). Unless `DEBUG` is set, it is handed a no-op `debug` for
 * that one load: the stand-in sits in `require.cache` only while the library
 * loads, so the application's own `require('debug')` still gets the real one.
 */
function requireInTheMiddle(): RitmModule {
  if (ritm !== undefined) return ritm;
  let debugFile: string | undefined;
  let stub: NodeJS.Module | undefined;
  if (!process.env.DEBUG) {
    try {
      const from = path.dirname(require.resolve('require-in-the-middle'));
      debugFile = require.resolve('debug', { paths: [from] });
      if (require.cache[debugFile] === undefined) {
        stub = new Module(debugFile) as unknown as NodeJS.Module;
        const noop = Object.assign(() => undefined, { enabled: false });
        stub.exports = () => noop;
        stub.loaded = true;
        require.cache[debugFile] = stub;
      }
    } catch {
      // no `debug` where it would look: it loads whatever it finds
    }
  }
  try {
    ritm = require('require-in-the-middle') as RitmModule;
  } finally {
    if (stub !== undefined && debugFile !== undefined && require.cache[debugFile] === stub) delete require.cache[debugFile];
  }
  return ritm;
}

/**
 * Reports each package in `modules` loaded by CommonJS `require` from now on
 * (main file; also its other files when `internals`), after it has loaded
 * and before the caller gets it. `onLoad` must not throw (it is guarded here
 * anyway) and never replaces the exports.
 */
export function hookRequire(modules: readonly string[], internals: boolean, onLoad: OnLoad): LoadHook {
  const { Hook } = requireInTheMiddle();
  const hook = new Hook([...modules], { internals }, function onrequire<T>(exports: T, name: string, basedir?: string): T {
    try {
      onLoad(exports, name, basedir);
    } catch (err) {
      logOnce(`loader:require:${name}`, `could not instrument ${name} on require`, err);
    }
    return exports;
  });
  return { unhook: () => hook.unhook() };
}

/** The `"type"` of the package.json nearest above `dir` (Node's rule for `.js` files). */
function packageType(dir: string): unknown {
  for (let d = dir; ; d = path.dirname(d)) {
    let text: string | undefined;
    try {
      text = fs.readFileSync(path.join(d, 'package.json'), 'utf8');
    } catch {
      // none here: look further up
    }
    if (text !== undefined) {
      try {
        return (JSON.parse(text) as { type?: unknown }).type;
      } catch {
        return undefined;
      }
    }
    if (path.dirname(d) === d) return undefined;
  }
}

/** True when Node will load `script` (the entry point, `process.argv[1]`) as an ES module. */
export function isEsmEntry(script: string | undefined): boolean {
  if (!script) return false;
  const file = path.resolve(script);
  const ext = path.extname(file);
  // `.mts`/`.ts` for TypeScript runners (tsx) that run an ES module entry point as such.
  if (ext === '.mjs' || ext === '.mts') return true;
  if (ext !== '.js' && ext !== '' && ext !== '.ts') return false;
  return packageType(path.dirname(file)) === 'module';
}

/** True when a module in `dir` would find one of `names` in a `node_modules` folder (as Node looks, without `exports`). */
export function anyInstalledFrom(dir: string, names: readonly string[]): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    const nm = path.join(d, 'node_modules');
    if (fs.existsSync(nm)) {
      for (const name of names) if (fs.existsSync(path.join(nm, ...name.split('/'), 'package.json'))) return true;
    }
    if (path.dirname(d) === d) return false;
  }
}

/** What a package's package.json says about its entry points besides the main file. */
export interface PackageEntries {
  /** Its `"type"`. */
  readonly type: unknown;
  /**
   * The subpaths its `exports` maps to one CommonJS-or-script file, no
   * conditions (a dual package's `import` would get another copy), without
   * `./` (mysql2: `promise`, `promise.js`); no patterns (`*`), no JSON.
   */
  readonly subpaths: ReadonlySet<string>;
  /** The files every subpath maps to, relative to the package folder, without `./` (mysql2: `promise.js`). */
  readonly files: ReadonlySet<string>;
}

/** The entry points of the package in `pkgDir` besides its main file (read from its package.json; none if unreadable). */
export function packageEntries(pkgDir: string): PackageEntries {
  const subpaths = new Set<string>();
  const files = new Set<string>();
  let json: { type?: unknown; exports?: unknown } = {};
  try {
    json = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as typeof json;
  } catch {
    // no entries known
  }
  const relative = (p: string): string | undefined => {
    const rel = path.posix.normalize(p);
    return rel.includes('*') || rel.endsWith('.json') || rel === '.' || rel.startsWith('..') ? undefined : rel;
  };
  const addFiles = (value: unknown): void => {
    if (typeof value === 'string') {
      const rel = relative(value);
      if (rel !== undefined) files.add(rel);
    } else if (value !== null && typeof value === 'object') {
      for (const v of Object.values(value)) addFiles(v);
    }
  };
  const exported = json !== null && typeof json === 'object' ? json.exports : undefined;
  if (exported !== null && typeof exported === 'object' && !Array.isArray(exported)) {
    for (const [key, value] of Object.entries(exported)) {
      // keys without `./` are conditions of the main file alone
      const rel = key.startsWith('./') ? relative(key) : undefined;
      if (rel === undefined) continue;
      if (typeof value === 'string' && !value.endsWith('.mjs')) subpaths.add(rel);
      addFiles(value);
    }
  }
  return { type: json?.type, subpaths, files };
}

/**
 * The subpath specifiers (`mysql2/promise`, `mysql2/promise.js`) of the
 * CommonJS packages among `names` that a module in `dir` would find (as
 * Node looks, the nearest copy).
 */
export function subpathSpecifiers(dir: string, names: readonly string[]): string[] {
  const specifiers: string[] = [];
  for (const name of names) {
    for (let d = dir; ; d = path.dirname(d)) {
      const pkgDir = path.join(d, 'node_modules', ...name.split('/'));
      if (fs.existsSync(path.join(pkgDir, 'package.json'))) {
        const { type, subpaths } = packageEntries(pkgDir);
        if (type !== 'module') for (const sub of subpaths) specifiers.push(`${name}/${sub}`);
        break;
      }
      if (path.dirname(d) === d) break;
    }
  }
  return specifiers;
}

let esmLoader = false;
/** The specifiers the ES module loader watches (its `include` list). */
let esmInclude: readonly string[] = [];

/**
 * Registers import-in-the-middle's loader hooks, once, watching `modules`
 * (its `include` list: every other module loads untouched). In-thread
 * (`module.registerHooks`) where this Node supports it, else on the hooks
 * thread (`module.register`). Only imports resolved after this call are
 * seen: from `-r`/`--import`, the application's whole module graph. False
 * when this Node has neither API or registration failed (logged).
 */
export function registerEsmLoader(modules: readonly string[]): boolean {
  if (esmLoader) return true;
  if (modules.length === 0) return false;
  const include = [...modules];
  try {
    const { supportsSyncHooks } = require('import-in-the-middle/supports-sync-hooks.mjs') as { supportsSyncHooks(): boolean };
    if (supportsSyncHooks()) {
      try {
        const sync = require('import-in-the-middle/register-hooks.mjs') as { register(options: { include: string[] }): void };
        sync.register({ include });
        esmLoader = true;
        esmInclude = include;
        return true;
      } catch (err) {
        // e.g. no require(esm) on this Node: the hooks thread below
        logOnce('loader:esm:sync', 'could not register the in-thread ESM loader hooks; using module.register', err);
      }
    }
  } catch {
    // this Node cannot require an .mjs file (no require(esm)): the hooks thread below
  }
  const register = (Module as unknown as { register?: (specifier: string, parentURL: string, options: object) => void }).register;
  if (typeof register !== 'function') return false;
  try {
    register('import-in-the-middle/hook.mjs', pathToFileURL(__filename).href, { data: { include } });
    esmLoader = true;
    esmInclude = include;
  } catch (err) {
    logOnce('loader:esm:register', 'could not register the ESM loader hooks', err);
  }
  return esmLoader;
}

type IitmNamespace = Record<string, unknown>;
type IitmHookFn = (exported: IitmNamespace, name: string, baseDir: string | void, format?: string) => unknown;
interface IitmModule {
  Hook: new (modules: string[], options: { internals?: boolean }, hookFn: IitmHookFn) => { unhook(): void };
}

/**
 * What a hook's `patch` gets for an imported module: the CommonJS
 * `module.exports` (the namespace's `default`) for a CommonJS package or an
 * ES module whose default export is the library object (axios: the same
 * shape as its CommonJS build); else the namespace (BullMQ's and the AWS
 * SDK's `dist-es`: named exports only). Assigning to that namespace object
 * rebinds the named export (import-in-the-middle's wrapper), so a hook can
 * replace an exported function as it would on `module.exports`.
 */
function exportsOf(namespace: IitmNamespace, format: string | undefined): unknown {
  const value = namespace.default;
  if (format === 'commonjs') return value;
  return value !== null && (typeof value === 'object' || typeof value === 'function') ? value : namespace;
}

/** The packages reported on import whose hook got the default export: their wrapper namespace and that export. */
const cjsImports = new Map<IitmNamespace, Record<string, unknown>>();

/**
 * Rebinds the named exports of each CommonJS package imported so far to the
 * current properties of its `module.exports`. Node builds a CommonJS
 * package's named exports once, when it loads; import-in-the-middle's
 * wrapper holds them from then on, before `patch` ran. A hook that replaces
 * an exported function on `module.exports` (undici's `fetch`) would
 * otherwise leave `import { fetch } from 'undici'` unpatched, and after
 * uninstall the other way round.
 */
export function syncImportedExports(): void {
  for (const [namespace, exports] of cjsImports) syncNamespace(namespace, exports);
}

function syncNamespace(namespace: IitmNamespace, exports: Record<string, unknown>): void {
  for (const key of Object.keys(namespace)) {
    if (key === 'default' || !(key in exports)) continue;
    try {
      if (namespace[key] !== exports[key]) namespace[key] = exports[key];
    } catch {
      // a binding the wrapper does not let us set: left as Node built it
    }
  }
}

/**
 * Reports each package in `modules` an ES module imports (through the loader
 * of `registerEsmLoader`), with what its hook patches (`exportsOf`), before
 * the importing module runs. A no-op hook until the loader is registered.
 */
export function hookImports(modules: readonly string[], onLoad: OnLoad): LoadHook {
  if (!esmLoader || modules.length === 0) return { unhook: () => undefined };
  const { Hook } = require('import-in-the-middle') as IitmModule;
  // and the subpath entries of these packages the loader watches (`mysql2/promise`), reported by that specifier
  const subpaths = esmInclude.filter((s) => !modules.includes(s) && modules.some((m) => s.startsWith(`${m}/`)));
  const hook = new Hook([...modules, ...subpaths], {}, (exported, name, baseDir, format) => {
    try {
      const exports = exportsOf(exported, format);
      onLoad(exports, name, baseDir || undefined);
      // Handed `default` (module.exports, or axios' default object): its named exports follow it.
      if (exports !== exported && exports !== null && (typeof exports === 'object' || typeof exports === 'function')) {
        cjsImports.set(exported, exports as Record<string, unknown>);
        syncNamespace(exported, exports as Record<string, unknown>);
      }
    } catch (err) {
      logOnce(`loader:import:${name}`, `could not instrument ${name} on import`, err);
    }
    return undefined;
  });
  return { unhook: () => hook.unhook() };
}
