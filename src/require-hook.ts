/**
 * The require hook: tells the registry when a watched package is required
 * by its name, with its exports, before the caller gets them.
 *
 * It replaces require-in-the-middle, which cost about a third of what
 * `-r ./register` adds at startup (it loads `debug`, which loads
 * `supports-color` and sets up `process.stderr`), and resolves the file
 * name of every `require` the application makes from then on. This hook
 * looks only at the id: a bare package name (or `name/sub/path`) in the
 * watched set; every other `require` costs a string scan and a Set lookup.
 *
 * ES modules: Node's ESM loader loads a CommonJS package an `import`
 * names without `Module.prototype.require`: its `commonjs` translator
 * (lib/internal/modules/esm/translators.js) calls `Module._load(filename,
 * undefined)` with the resolved file name and no parent, then builds the
 * namespace (default and named exports) from `module.exports`. So `_load`
 * is wrapped too, and looks only at those parent-less loads (a `require`
 * always has a parent: its cost there is one comparison): a file in
 * `node_modules/<watched name>/` that is the package's main file is
 * reported before the namespace is built. Packages that are ES modules
 * themselves (axios) are the ESM loader hook's business (esm-loader.ts).
 *
 * Not needed here, so not done: builtins (the registry patches their single
 * exports object at install, and ESM imports of them never pass through
 * `require`), and packages required by a relative or absolute path (the
 * registry finds such a copy in `require.cache` at the next install).
 */
import Module from 'module';
import * as path from 'path';
import { logOnce } from './logger';

/** The parts of Node's CommonJS `Module` used here (lib/internal/modules/cjs/loader.js). */
interface ModuleInternals {
  require(this: unknown, id: string): unknown;
}
type ResolveFilename = (request: string, parent: unknown) => string;
/** `Module._load(request, parent, isMain)` (same file). */
type Load = (this: unknown, request: string, parent: unknown, isMain: boolean) => unknown;
interface ModuleStatics {
  _load?: Load;
}

export interface RequireHook {
  /** Stops calling back; restores `Module.prototype.require` if nobody wrapped it after us. */
  unhook(): void;
}

/** The package an id names (`pg` for `pg/lib/client`, `@scope/pkg` for `@scope/pkg/x`), or undefined for a path. */
function packageOf(id: string): string | undefined {
  const first = id.charCodeAt(0);
  // '.', '/': a relative or absolute path.
  if (first === 46 || first === 47) return undefined;
  let slash = id.indexOf('/');
  if (slash === -1) return id;
  // '@': a scoped name keeps its first segment.
  if (first === 64) {
    slash = id.indexOf('/', slash + 1);
    if (slash === -1) return id;
  }
  return id.slice(0, slash);
}

const NODE_MODULES = `${path.sep}node_modules${path.sep}`;

/** The package an absolute file name is in (`pg` for `/app/node_modules/pg/lib/index.js`), from its last `node_modules`. */
function packageOfFile(filename: string): string | undefined {
  const at = filename.lastIndexOf(NODE_MODULES);
  if (at === -1) return undefined;
  const start = at + NODE_MODULES.length;
  let end = filename.indexOf(path.sep, start);
  if (end !== -1 && filename.charCodeAt(start) === 64) end = filename.indexOf(path.sep, end + 1);
  if (end === -1) return undefined;
  const name = filename.slice(start, end);
  return path.sep === '/' ? name : name.split(path.sep).join('/');
}

/** True when `filename` is the main file of package `name` (the copy whose folder holds it). */
function isPackageMain(filename: string, name: string): boolean {
  const root = filename.slice(0, filename.lastIndexOf(NODE_MODULES) + NODE_MODULES.length) + name.split('/').join(path.sep);
  try {
    return require.resolve(root) === filename;
  } catch {
    return false;
  }
}

/** True when `id` (a path inside package `name`, e.g. `pg/lib`) is the package's main file itself. */
function isMainFile(parent: unknown, id: string, name: string): boolean {
  const resolve = (Module as unknown as { _resolveFilename?: ResolveFilename })._resolveFilename;
  if (typeof resolve !== 'function') return false;
  try {
    return resolve(id, parent) === resolve(name, parent);
  } catch {
    return false;
  }
}

/**
 * Calls `onRequire(exports, name)` each time a package in `names` is
 * required by its name (or by a path to its main file) from CommonJS, or
 * its main file is loaded for an ES module's `import`, after
 * it has loaded and before the caller receives it. Not for a circular
 * require made while the same package is still loading: its exports are
 * not complete yet, the outer require reports them once they are.
 */
export function hookRequire(names: readonly string[], onRequire: (exports: unknown, name: string) => void): RequireHook {
  const watched = new Set(names);
  const proto = Module.prototype as unknown as ModuleInternals;
  const original = proto.require;
  const loading = new Set<string>();
  let active = true;

  const hooked = function require(this: unknown, id: string): unknown {
    const name = active && typeof id === 'string' ? packageOf(id) : undefined;
    if (name === undefined || !watched.has(name) || loading.has(name)) {
      return original.apply(this, arguments as unknown as [string]);
    }
    loading.add(name);
    let exports: unknown;
    try {
      exports = original.apply(this, arguments as unknown as [string]);
    } finally {
      loading.delete(name);
    }
    try {
      if (id === name || isMainFile(this, id, name)) onRequire(exports, name);
    } catch (err) {
      logOnce(`require-hook:${name}`, `could not instrument ${name} on require`, err);
    }
    return exports;
  };
  Object.defineProperty(hooked, 'name', { value: original.name, configurable: true });
  proto.require = hooked;

  const statics = Module as unknown as ModuleStatics;
  const originalLoad = statics._load;
  let hookedLoad: Load | undefined;
  if (typeof originalLoad === 'function') {
    hookedLoad = function (this: unknown, request: string, parent: unknown, isMain: boolean): unknown {
      // A `require` has a parent; the ESM loader's load of a CommonJS file has none.
      if (parent != null || !active || isMain || typeof request !== 'string') {
        return originalLoad.apply(this, arguments as unknown as [string, unknown, boolean]);
      }
      const name = packageOfFile(request);
      if (name === undefined || !watched.has(name) || loading.has(name)) {
        return originalLoad.apply(this, arguments as unknown as [string, unknown, boolean]);
      }
      loading.add(name);
      let exports: unknown;
      try {
        exports = originalLoad.apply(this, arguments as unknown as [string, unknown, boolean]);
      } finally {
        loading.delete(name);
      }
      try {
        if (isPackageMain(request, name)) onRequire(exports, name);
      } catch (err) {
        logOnce(`require-hook:${name}`, `could not instrument ${name} on import`, err);
      }
      return exports;
    };
    Object.defineProperty(hookedLoad, 'name', { value: originalLoad.name, configurable: true });
    Object.defineProperty(hookedLoad, 'length', { value: originalLoad.length, configurable: true });
    statics._load = hookedLoad;
  }

  return {
    unhook() {
      active = false;
      // Someone wrapped require after us: taking ours out would drop theirs; ours stays, inert.
      if (proto.require === hooked) proto.require = original;
      if (hookedLoad !== undefined && statics._load === hookedLoad) statics._load = originalLoad;
    },
  };
}
