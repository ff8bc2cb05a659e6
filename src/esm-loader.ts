/**
 * ESM loader hooks (Node's `module.register`, run on Node's hooks thread):
 * lets the registry see a watched package whose `import` entry is an ES
 * module itself (axios: `import axios from 'axios'` loads `axios/index.js`,
 * a copy with its own `Axios` class, never `require`d). CommonJS packages
 * imported from ESM need no loader: require-hook.ts sees them in `Module._load`.
 *
 * `resolve` notes the URL a watched package's bare name resolves to; `load`
 * appends to that module's source a self-import and a call, on the main
 * thread, of the registry's callback with its default export. The appended
 * code runs at the end of the package's body, before any module importing
 * it runs, so the application only ever sees the patched prototypes. The
 * namespace is unchanged (nothing is exported), and line numbers too (the
 * code goes after the last line). Kept free of imports: this file is loaded
 * on the hooks thread, at startup.
 */
import type { InitializeHook, LoadHook, ResolveHook } from 'module';

/** The global the appended code calls on the main thread (set by esm-hook.ts): `(packageName, defaultExport) => void`. */
export const ESM_CALLBACK_KEY = 'opentracing-instrumentation.esm-loaded';

export interface EsmLoaderData {
  /** The package names to watch (the registry's non-builtin modules). */
  names: string[];
}

let watched = new Set<string>();
/** The URL each watched package's name resolved to: the module to append to. */
const entries = new Map<string, string>();

export const initialize: InitializeHook<EsmLoaderData> = (data) => {
  if (data !== null && typeof data === 'object' && Array.isArray(data.names)) watched = new Set(data.names);
};

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  const result = await nextResolve(specifier, context);
  if (watched.has(specifier) && typeof result.url === 'string') entries.set(result.url, specifier);
  return result;
};

/** Code appended to the module at `url`, the entry of package `name`. */
function epilogue(url: string, name: string): string {
  const self = '__opentracingInstrumentationSelf';
  return (
    `\n;import * as ${self} from ${JSON.stringify(url)};` +
    `try { const f = globalThis[Symbol.for(${JSON.stringify(ESM_CALLBACK_KEY)})];` +
    ` if (typeof f === 'function') f(${JSON.stringify(name)}, ${self}.default); } catch {}\n`
  );
}

export const load: LoadHook = async (url, context, nextLoad) => {
  const result = await nextLoad(url, context);
  const name = entries.get(url);
  if (name === undefined || result.format !== 'module' || result.source == null) return result;
  try {
    const source = result.source;
    const text = typeof source === 'string' ? source : new TextDecoder().decode(source as Uint8Array);
    return { ...result, source: text + epilogue(url, name) };
  } catch {
    // fail open: the module as it was
    return result;
  }
};
