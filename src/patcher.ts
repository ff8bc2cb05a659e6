/**
 * The patch registry and the require hook: finds each supported library
 * whether it was loaded before or after install, patches each loaded copy
 * once, and undoes everything on uninstall.
 */
import { builtinModules, syncBuiltinESMExports } from 'module';
import * as path from 'path';
import { instrumentations, type Registration } from './hooks';
import { logOnce } from './logger';
import { configure, PATCH_NAMES, type InstrumentationOptions, type PatchName } from './options';
import { hookRequire, type RequireHook } from './require-hook';
import { esmPackagesFrom, hookEsmLoader } from './esm-hook';
import type { Instrumentation } from './instrumentation';

export type { Instrumentation } from './instrumentation';

type AnyInstrumentation = Instrumentation<never>;

const builtins = new Set(builtinModules);
const enabled = new Set<PatchName>();
/** Per registry entry, the exports objects it has patched (several copies of a package may be loaded). */
const patched = new Map<Registration, Set<unknown>>();
/** The hooks loaded so far (a hook file is loaded when its module is first seen). */
const loaded = new Map<Registration, AnyInstrumentation | null>();
let hook: RequireHook | null = null;

/** The entry's hook, loading its file on first use; null (logged) if it cannot be loaded. */
function instrumentationOf(reg: Registration): AnyInstrumentation | null {
  let inst = loaded.get(reg);
  if (inst === undefined) {
    try {
      inst = reg.load();
    } catch (err) {
      logOnce(`load:${reg.name}:${reg.module}`, `could not load the ${reg.name} hook for ${reg.module}; left unpatched`, err);
      inst = null;
    }
    loaded.set(reg, inst);
  }
  return inst;
}

function patchExports(reg: Registration, exports: unknown): void {
  if (exports === null || (typeof exports !== 'object' && typeof exports !== 'function')) return;
  let done = patched.get(reg);
  if (done === undefined) patched.set(reg, (done = new Set()));
  if (done.has(exports)) return;
  const inst = instrumentationOf(reg);
  if (inst === null) return;
  try {
    inst.patch(exports as never);
    done.add(exports);
  } catch (err) {
    logOnce(`patch:${inst.name}:${inst.module}`, `could not patch ${inst.module} for ${inst.name}; left as it is`, err);
    try {
      inst.unpatch(exports as never);
    } catch {
      // half-patched and unpatch failed too: nothing more we can do safely
    }
  }
}

/** The exports of every copy of `moduleName` already in the require cache. */
function loadedCopies(moduleName: string): unknown[] {
  if (builtins.has(moduleName)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return [require(moduleName)];
  }
  const marker = `${path.sep}node_modules${path.sep}${moduleName.split('/').join(path.sep)}${path.sep}`;
  const roots = new Set<string>();
  for (const file of Object.keys(require.cache)) {
    const at = file.lastIndexOf(marker);
    if (at !== -1) roots.add(file.slice(0, at + marker.length - 1));
  }
  const copies: unknown[] = [];
  for (const root of roots) {
    try {
      const main = require.resolve(root);
      const cached = require.cache[main];
      if (cached !== undefined && cached.loaded) copies.push(cached.exports);
    } catch {
      // a package folder without a resolvable main: not a copy we can patch
    }
  }
  return copies;
}

function activeInstrumentations(): Registration[] {
  return instrumentations.filter((reg) => enabled.has(reg.name));
}

function rehook(): void {
  if (hook !== null) {
    hook.unhook();
    hook = null;
  }
  // Builtins need no hook: their one exports object is patched at install.
  const modules = [...new Set(activeInstrumentations().map((reg) => reg.module))].filter((m) => !builtins.has(m));
  if (modules.length === 0) return;
  hook = hookRequire(modules, (exports, name) => {
    for (const reg of activeInstrumentations()) {
      if (reg.module === name) patchExports(reg, exports);
    }
  });
}

function validateNames(names: readonly PatchName[]): void {
  if (!Array.isArray(names)) throw new TypeError('installPatches expects an array of patch names');
  for (const name of names) {
    if (!PATCH_NAMES.includes(name)) {
      throw new TypeError(`unknown patch name: ${String(name)} (known: ${PATCH_NAMES.join(', ')})`);
    }
  }
}

/**
 * Patches the named libraries (loaded now or later) with `options`. Calling
 * it again adds patches and replaces the options; nothing is wrapped twice.
 */
export function installPatches(names: readonly PatchName[], options?: InstrumentationOptions): void {
  validateNames(names);
  configure(options);
  for (const name of names) enabled.add(name);
  for (const reg of activeInstrumentations()) {
    for (const exports of loadedCopies(reg.module)) patchExports(reg, exports);
  }
  rehook();
  syncEsm();
}

/**
 * ES modules that did `import { request } from 'node:http'` before install
 * hold their own bindings of the builtin's exports; Node refreshes them from
 * the CommonJS object only when asked. Without this they would keep calling
 * the unpatched functions (or, after uninstall, our wrappers).
 */
function syncEsm(): void {
  try {
    syncBuiltinESMExports();
  } catch (err) {
    logOnce('syncBuiltinESMExports', 'could not refresh the ESM bindings of builtins', err);
  }
}

/** Patches every supported library that is installed (patch names listed in `PATCH_NAMES`). */
export function installAllPatches(options?: InstrumentationOptions): void {
  installPatches(PATCH_NAMES, options);
}

/** Restores every original function and stops hooking later `require`s. */
export function uninstallAllPatches(): void {
  enabled.clear();
  if (hook !== null) {
    hook.unhook();
    hook = null;
  }
  for (const [reg, copies] of patched) {
    // A copy is only in `patched` once its hook loaded.
    const inst = loaded.get(reg)!;
    for (const exports of copies) {
      try {
        inst.unpatch(exports as never);
      } catch (err) {
        logOnce(`unpatch:${reg.name}:${reg.module}`, `could not unpatch ${reg.module}`, err);
      }
    }
    copies.clear();
  }
  patched.clear();
  syncEsm();
}

/**
 * Internal (tests, the ESM loader): patches `exports` as if it had been
 * required as `moduleName`, through the registry (so uninstall restores it),
 * for the patches enabled now. For copies installed under another name, e.g.
 * `ioredis6` (npm alias of ioredis@6), and ES module copies (axios' `index.js`).
 */
export function patchModuleAs(moduleName: string, exports: unknown): void {
  for (const reg of activeInstrumentations()) {
    if (reg.module === moduleName) patchExports(reg, exports);
  }
}

let esmLoader = false;

/**
 * Internal (`register`, for an ES module entry point in `appDir`): registers
 * the ESM loader hooks, once, if an enabled patch's package reachable from
 * `appDir` is an ES module package (axios). They watch every supported
 * package; what they report is patched only while its patch is enabled.
 * True when the hooks are registered.
 */
export function hookEsmImports(appDir: string): boolean {
  if (esmLoader) return true;
  const modules = [...new Set(activeInstrumentations().map((reg) => reg.module))].filter((m) => !builtins.has(m));
  if (esmPackagesFrom(appDir, modules).length === 0) return false;
  const all = [...new Set(instrumentations.map((reg) => reg.module))].filter((m) => !builtins.has(m));
  esmLoader = hookEsmLoader(all, patchModuleAs);
  return esmLoader;
}

/** Internal (tests, benchmarks): the names currently enabled. */
export function enabledPatches(): PatchName[] {
  return [...enabled];
}
