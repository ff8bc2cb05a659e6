/**
 * The patch registry at work: finds each supported library whether it was
 * loaded before or after install, by `require` or `import` (src/loader.ts),
 * patches each loaded copy in its hook's version range once, and undoes
 * everything on uninstall.
 */
import { builtinModules, syncBuiltinESMExports } from 'module';
import * as path from 'path';
import { instrumentations, type Registration } from './hooks';
import { logOnce, warnOnce } from './logger';
import { configure, PATCH_NAMES, type InstrumentationOptions, type PatchName } from './options';
import { anyInstalledFrom, hookImports, hookRequire, packageEntries, registerEsmLoader, subpathSpecifiers, syncImportedExports, type LoadHook, type PackageEntries } from './loader';
import { satisfies, versionAt } from './versions';
import type { Instrumentation } from './instrumentation';
import { guardLoadedJaegerClients } from './export/jaeger-guard';

export type { Instrumentation } from './instrumentation';

type AnyInstrumentation = Instrumentation<never>;

const builtins = new Set(builtinModules);
const JAEGER_CLIENT = 'jaeger-client';
const enabled = new Set<PatchName>();
/** Per registry entry, the exports objects it has patched (several copies of a package may be loaded). */
const patched = new Map<Registration, Set<unknown>>();
/** The hooks loaded so far (a hook file is loaded when its module is first seen). */
const loaded = new Map<Registration, AnyInstrumentation | null>();
let requireHook: LoadHook | null = null;
let importHook: LoadHook | null = null;

/** What the loader reports for an entry: its package name, or `<package>/<file>` for a hook on an internal file. */
function loadNameOf(reg: Registration): string {
  return reg.file === undefined ? reg.module : `${reg.module}/${path.posix.normalize(reg.file)}`;
}

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

/**
 * False (and one diagnostic line per package version) when the copy in
 * `basedir` is outside the entry's `versions`; true when it is inside, or
 * its version cannot be read (an unknown version is not known to be outside).
 */
function inRange(reg: Registration, basedir: string | undefined): boolean {
  if (reg.versions === undefined || basedir === undefined) return true;
  const version = versionAt(basedir);
  if (version === undefined) return true;
  let ok: boolean;
  try {
    ok = satisfies(version, reg.versions);
  } catch (err) {
    logOnce(`range:${reg.name}:${reg.module}`, `bad version range '${reg.versions}' for ${reg.module}`, err);
    return true;
  }
  if (!ok) {
    // The contract's "patch skipped for its version": one warning per library and version.
    warnOnce(
      `version:${reg.name}:${reg.module}@${version}`,
      `${reg.module}@${version} is outside the versions the ${reg.name} patch supports (${reg.versions}); left unpatched`,
    );
  }
  return ok;
}

function patchExports(reg: Registration, exports: unknown, basedir: string | undefined): void {
  if (exports === null || (typeof exports !== 'object' && typeof exports !== 'function')) return;
  let done = patched.get(reg);
  if (done === undefined) patched.set(reg, (done = new Set()));
  if (done.has(exports)) return;
  if (!inRange(reg, basedir)) return;
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

/** Every copy of `reg`'s module (or internal file) already in the require cache: its exports and package folder. */
function loadedCopies(reg: Registration): Array<{ exports: unknown; basedir?: string }> {
  if (builtins.has(reg.module)) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return [{ exports: require(reg.module) }];
  }
  const marker = `${path.sep}node_modules${path.sep}${reg.module.split('/').join(path.sep)}${path.sep}`;
  const roots = new Set<string>();
  for (const file of Object.keys(require.cache)) {
    const at = file.lastIndexOf(marker);
    if (at !== -1) roots.add(file.slice(0, at + marker.length - 1));
  }
  const copies: Array<{ exports: unknown; basedir?: string }> = [];
  for (const root of roots) {
    try {
      const file = reg.file === undefined ? require.resolve(root) : require.resolve(path.join(root, reg.file));
      const cached = require.cache[file];
      if (cached !== undefined && cached.loaded) copies.push({ exports: cached.exports, basedir: root });
    } catch {
      // a package folder without a resolvable main: not a copy we can patch
    }
  }
  return copies;
}

function activeInstrumentations(): Registration[] {
  return instrumentations.filter((reg) => enabled.has(reg.name));
}

/** The packages the loader watches: every non-builtin module of an enabled patch. */
function watchedPackages(): string[] {
  return [...new Set(activeInstrumentations().map((reg) => reg.module))].filter((m) => !builtins.has(m));
}

function onLoad(exports: unknown, name: string, basedir: string | undefined): void {
  const file = path.sep === '/' ? name : name.split(path.sep).join('/');
  let matched = false;
  for (const reg of activeInstrumentations()) {
    if (loadNameOf(reg) === file) {
      matched = true;
      patchExports(reg, exports, basedir);
    }
  }
  if (basedir === undefined) return;
  if (!matched) patchMainOfEntry(file, basedir);
  else mainWaiting.delete(basedir);
  // A main file that waited for this copy's files to finish loading (see `copyIsLoading`).
  const waiting = mainWaiting.get(basedir);
  if (waiting !== undefined && waiting !== file) {
    mainWaiting.delete(basedir);
    patchMainOfEntry(waiting, basedir);
  }
}

/** Per package folder, an entry whose main file is to be loaded once no file of that copy is loading. */
const mainWaiting = new Map<string, string>();

/**
 * True while a file of the package copy in `basedir` is still loading: the
 * entry that just loaded is part of a require cycle inside the package
 * (@smithy/core/transport loads while @smithy/core/protocols is loading).
 * Its main file must not be required then: it would require the loading
 * file back and get its unfinished exports (Node's "Accessing non-existent
 * property ... inside circular dependency" warning, and `undefined` in the
 * main file's own bindings and exports, e.g. `@smithy/core`'s
 * `requestBuilder`).
 */
function copyIsLoading(basedir: string): boolean {
  const prefix = basedir + path.sep;
  for (const [file, mod] of Object.entries(require.cache)) {
    if (mod !== undefined && !mod.loaded && file.startsWith(prefix) && !file.slice(prefix.length).includes(`node_modules${path.sep}`)) return true;
  }
  return false;
}

/** Per package folder, its entry points besides the main file (package.json read once). */
const entriesOf = new Map<string, PackageEntries>();

/** The package a loaded name belongs to: `mysql2` for `mysql2/promise.js`, `@smithy/core` for `@smithy/core/protocols`. */
function packageOfName(name: string): string {
  const parts = name.split('/');
  return parts.slice(0, name.startsWith('@') ? 2 : 1).join('/');
}

/**
 * Workaround: a package used only through a subpath entry point never loads
 * its main file, so the hook of its main file never runs. mysql2 >= 3.11.5
 * ("fix: circular dependencies", sidorares/node-mysql2#3081): `promise.js`
 * builds on `lib/` directly and no longer does `require('./index.js')`, so
 * `require('mysql2/promise')` or `import mysql from 'mysql2/promise'` alone
 * created connections whose `query` was never wrapped (no spans), under
 * CommonJS as under ES modules. Not a Node loader behaviour: Node runs only
 * what the package requires.
 *
 * When such an entry (`name` is `<package>/<subpath or file>` that its
 * package.json `exports` maps; reported by require-in-the-middle as an
 * internal file, by import-in-the-middle by its specifier) has loaded and
 * the CommonJS main file of that copy is not loaded nor loading, the main
 * file is required from the copy's folder and patched: it exports the same
 * classes (mysql2's `Connection`, `Pool`) the entry builds on.
 */
function patchMainOfEntry(name: string, basedir: string): void {
  const pkg = packageOfName(name);
  if (pkg === name) return;
  const regs = activeInstrumentations().filter((reg) => reg.module === pkg && reg.file === undefined);
  if (regs.length === 0) return;
  let entries = entriesOf.get(basedir);
  if (entries === undefined) entriesOf.set(basedir, (entries = packageEntries(basedir)));
  const sub = name.slice(pkg.length + 1);
  if (entries.type === 'module' || !(entries.subpaths.has(sub) || entries.files.has(sub))) return;
  let main: unknown;
  try {
    const file = require.resolve(basedir);
    if (file.endsWith('.mjs')) return;
    const cached = require.cache[file];
    // Loading (it requires the entry itself): reported once it has loaded.
    if (cached !== undefined && !cached.loaded) return;
    if (cached === undefined && copyIsLoading(basedir)) {
      mainWaiting.set(basedir, name);
      return;
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    main = cached !== undefined ? cached.exports : require(file);
  } catch (err) {
    logOnce(`main:${pkg}:${basedir}`, `could not load the main file of ${pkg} (used through ${name}); left unpatched`, err);
    return;
  }
  for (const reg of regs) patchExports(reg, main, basedir);
}

function unhookAll(): void {
  requireHook?.unhook();
  importHook?.unhook();
  requireHook = importHook = null;
}

function rehook(): void {
  unhookAll();
  // Builtins need no hook: their one exports object is patched at install.
  const modules = watchedPackages();
  if (modules.length === 0 && enabled.size === 0) return;
  // jaeger-client too, whatever is enabled: a tracer the application builds
  // later must not trace its own reports and polls (export/jaeger-guard.ts).
  // Internal files too: hooks on one (`file`), and subpath entry points (`mysql2/promise.js`: patchMainOfEntry).
  requireHook = hookRequire([...modules, JAEGER_CLIENT], true, (exports, name, basedir) => {
    if (name === JAEGER_CLIENT) guardLoadedJaegerClients();
    else onLoad(exports, name, basedir);
  });
  if (modules.length > 0) importHook = hookImports(modules, onLoad);
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
  guardLoadedJaegerClients();
  for (const reg of activeInstrumentations()) {
    for (const copy of loadedCopies(reg)) patchExports(reg, copy.exports, copy.basedir);
  }
  rehook();
  syncEsm();
}

/**
 * ES modules that did `import { request } from 'node:http'` before install
 * hold their own bindings of the builtin's exports; Node refreshes them from
 * the CommonJS object only when asked. Without this they would keep calling
 * the unpatched functions (or, after uninstall, our wrappers). Cheaper than
 * having import-in-the-middle wrap builtins, and it also serves an ES module
 * app that installs in code after its imports.
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

/** Restores every original function and stops hooking later `require`s and `import`s. */
export function uninstallAllPatches(): void {
  enabled.clear();
  unhookAll();
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
  syncImportedExports();
}

/** The package folder of the module in `require.cache` whose exports are `exports`, if any. */
function basedirOf(exports: unknown): string | undefined {
  const nm = `${path.sep}node_modules${path.sep}`;
  for (const [file, mod] of Object.entries(require.cache)) {
    if (mod === undefined || mod.exports !== exports) continue;
    const at = file.lastIndexOf(nm);
    if (at === -1) return undefined;
    const rest = file.slice(at + nm.length).split(path.sep);
    const depth = rest[0].startsWith('@') ? 2 : 1;
    return file.slice(0, at + nm.length) + rest.slice(0, depth).join(path.sep);
  }
  return undefined;
}

/**
 * Internal (tests): patches `exports` as if it had been loaded as
 * `moduleName`, through the registry (so uninstall restores it, and the
 * version range applies: the copy's version is read from the package folder
 * it was required from), for the patches enabled now. For copies installed
 * under another name, e.g. `ioredis6` (npm alias of ioredis@6).
 */
export function patchModuleAs(moduleName: string, exports: unknown, basedir: string | undefined = basedirOf(exports)): void {
  for (const reg of activeInstrumentations()) {
    if (reg.module === moduleName && reg.file === undefined) patchExports(reg, exports, basedir);
  }
}

/**
 * Internal (`register`, `register.mjs`): registers the ES module loader
 * (import-in-the-middle), once, for every supported package (what it
 * reports is patched only while its patch is enabled), when one of them is
 * installed where the application in `appDir` would find it (or always,
 * without `appDir`). True when the loader is registered.
 */
export function hookEsmImports(appDir?: string): boolean {
  const all = [...new Set(instrumentations.map((reg) => reg.module))].filter((m) => !builtins.has(m));
  if (appDir !== undefined && !anyInstalledFrom(appDir, all)) return false;
  // and their subpath entries (`mysql2/promise`: patchMainOfEntry), as installed for the app
  const script = process.argv[1];
  const from = appDir ?? (script ? path.dirname(path.resolve(script)) : process.cwd());
  if (!registerEsmLoader([...all, ...subpathSpecifiers(from, all)])) return false;
  // The import hook of installPatches was a no-op until the loader existed.
  if (enabled.size > 0) rehook();
  return true;
}

/** Internal (tests, benchmarks): the names currently enabled. */
export function enabledPatches(): PatchName[] {
  return [...enabled];
}
