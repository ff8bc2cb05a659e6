/**
 * `node -r opentracing-instrumentation/register app.js`: traces an unchanged
 * application. Builds a jaeger tracer from the `JAEGER_*` environment
 * (unless a global tracer is already registered), then installs every patch
 * except those named in `OPENTRACING_INSTRUMENTATION_DISABLE`. Never throws
 * into the application: a problem is reported on stderr and the app runs untraced.
 */
import * as fs from 'fs';
import * as path from 'path';
import { isEsmEntry } from './loader';
import { hookEsmImports, installPatches } from './patcher';
import { PATCH_NAMES, type PatchName } from './options';
import { initTracerFromEnv, isGlobalTracerRegistered } from './tracer';
import { info, isLevelEnabled, warn as logWarn } from './logger';
import { tracerSetup } from './env-config';

/** Comma-separated patch names that `register` leaves off, e.g. `pg,ioredis`. */
export const DISABLE_ENV = 'OPENTRACING_INSTRUMENTATION_DISABLE';

function warn(message: string): void {
  logWarn(message);
}

/** The name of the nearest package.json above `dir`, if any. */
function packageName(dir: string): string | undefined {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(d, 'package.json'), 'utf8')) as { name?: unknown };
      if (typeof pkg.name === 'string' && pkg.name) return pkg.name;
    } catch {
      // no (readable) package.json here: look further up
    }
    if (path.dirname(d) === d) return undefined;
  }
}

/** `JAEGER_SERVICE_NAME`, else the application's package.json name, else the script's name. */
export function defaultServiceName(): string {
  const fromEnv = process.env.JAEGER_SERVICE_NAME;
  if (fromEnv) return fromEnv;
  const script = process.argv[1];
  const fromPackage = packageName(script ? path.dirname(path.resolve(script)) : process.cwd());
  if (fromPackage) return fromPackage;
  return script ? path.basename(script, path.extname(script)) : 'node';
}

/** The patches to install: all, minus the ones the environment turns off. */
export function patchesFromEnv(env: NodeJS.ProcessEnv = process.env): PatchName[] {
  const off = new Set(
    (env[DISABLE_ENV] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const name of off) {
    if (!PATCH_NAMES.includes(name as PatchName)) warn(`${DISABLE_ENV}: unknown patch name '${name}' ignored`);
  }
  return PATCH_NAMES.filter((name) => !off.has(name));
}

/** At `info` level: one line saying what `register` set up (src/env-config.ts knows the tracer's setup). */
function startupLine(ownTracer: boolean, patches: readonly PatchName[]): void {
  if (!isLevelEnabled('info')) return;
  const setup = ownTracer ? tracerSetup() : undefined;
  const exporter = process.env.OPENTRACING_INSTRUMENTATION_EXPORTER || 'jaeger';
  const tracer =
    setup === undefined
      ? 'tracer: the global tracer already registered'
      : setup.disabled
        ? `service ${setup.serviceName ?? '?'}: tracing disabled (JAEGER_DISABLED)`
        : `service ${setup.serviceName ?? '?'}, exporter ${exporter}${exporter === 'jaeger' ? ` (${setup.target})` : ''}, sampler ${setup.sampler}, propagation ${setup.propagation.join(',')}`;
  info(`started: ${tracer}; patches: ${patches.join(', ') || 'none'}`);
}

export function register(): void {
  let ownTracer = false;
  try {
    if (!isGlobalTracerRegistered()) {
      initTracerFromEnv({ serviceName: defaultServiceName() });
      ownTracer = true;
    }
  } catch (err) {
    warn(`could not create the jaeger tracer (${(err as Error).message}); spans go to the no-op tracer`);
  }
  try {
    const patches = patchesFromEnv();
    installPatches(patches);
    startupLine(ownTracer, patches);
  } catch (err) {
    warn(`could not install the patches (${(err as Error).message}); the application runs untraced`);
  }
  try {
    // An ES module app: the import loader (src/loader.ts), registered before the app's module graph loads.
    const script = process.argv[1];
    if (isEsmEntry(script)) hookEsmImports(path.dirname(path.resolve(script!)));
  } catch (err) {
    warn(`could not hook ES module imports (${(err as Error).message}); packages imported by ES modules may be left untraced`);
  }
}

register();
