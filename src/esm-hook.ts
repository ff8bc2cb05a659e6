/**
 * The main-thread side of esm-loader.ts: decides whether an application is
 * an ES module app, registers the loader hooks for it, and hands what the
 * appended code reports to the registry.
 *
 * A loader costs a thread started at registration (about 30 ms on the
 * machine of bench/RESULTS.md) and a round trip to it for every `import`
 * the application resolves and loads, so `register` registers it only for
 * an ES module entry point (`.mjs`, or `.js` under a package.json with
 * `"type": "module"`) that can reach a watched package which is an ES
 * module package (`"type": "module"`: axios). CommonJS packages, and those
 * with an ESM wrapper around their CommonJS main file (pg, pg-pool), need
 * no loader (require-hook.ts).
 */
import * as fs from 'fs';
import Module from 'module';
import * as path from 'path';
import { pathToFileURL } from 'url';
import { ESM_CALLBACK_KEY, type EsmLoaderData } from './esm-loader';
import { logOnce } from './logger';

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
  if (ext === '.mjs') return true;
  if (ext !== '.js' && ext !== '') return false;
  return packageType(path.dirname(file)) === 'module';
}

/**
 * The packages in `names` that a module in `dir` would find in a
 * `node_modules` folder (looked up as Node does, without `exports`) and
 * that are ES module packages.
 */
export function esmPackagesFrom(dir: string, names: readonly string[]): string[] {
  const found: string[] = [];
  for (const name of names) {
    for (let d = dir; ; d = path.dirname(d)) {
      let text: string | undefined;
      try {
        text = fs.readFileSync(path.join(d, 'node_modules', ...name.split('/'), 'package.json'), 'utf8');
      } catch {
        // not installed here: look further up
      }
      if (text !== undefined) {
        try {
          if ((JSON.parse(text) as { type?: unknown }).type === 'module') found.push(name);
        } catch {
          // unreadable package.json: Node would fail on it too
        }
        break;
      }
      if (path.dirname(d) === d) break;
    }
  }
  return found;
}

/**
 * Registers the loader hooks for the packages in `names`; `onLoaded` gets
 * each watched ES module package's default export as it loads. False when
 * this Node has no `module.register` (before 20.6) or it failed.
 */
export function hookEsmLoader(names: readonly string[], onLoaded: (name: string, exports: unknown) => void): boolean {
  const register = (Module as unknown as { register?: (specifier: string, options: { data: EsmLoaderData }) => void }).register;
  if (typeof register !== 'function' || names.length === 0) return false;
  (globalThis as Record<symbol, unknown>)[Symbol.for(ESM_CALLBACK_KEY)] = function esmLoaded(name: unknown, exports: unknown): void {
    try {
      if (typeof name === 'string') onLoaded(name, exports);
    } catch (err) {
      logOnce(`esm-hook:${String(name)}`, `could not instrument ${String(name)} on import`, err);
    }
  };
  try {
    register(pathToFileURL(path.join(__dirname, 'esm-loader.js')).href, { data: { names: [...names] } });
    return true;
  } catch (err) {
    logOnce('esm-hook:register', 'could not register the ESM loader hooks', err);
    return false;
  }
}
