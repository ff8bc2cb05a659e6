/**
 * Startup cost: `node -e` with nothing preloaded, with jaeger-client loaded
 * (what jaeger-client itself costs), with `-r ./register` (this library) and
 * with OpenTelemetry's `auto-instrumentations-node/register`; then an app
 * that requires pg, and an ES module app that imports pg (bench/startup-esm.mjs:
 * the ES module loader's cost), each without and with `-r ./register`. The
 * variants run alternated, several times; each figure is a median.
 *
 * Wall time is measured around the child process; CPU time is the child's
 * own `process.cpuUsage()` read at its exit, so it covers its whole life.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { ROOT } from './paths';
import { summarize, type Summary } from './stats';


export const STARTUP_VARIANTS = ['node', 'jaeger-client', 'register', 'otel', 'pg', 'register-pg', 'esm-pg', 'register-esm-pg'] as const;
export type StartupVariant = (typeof STARTUP_VARIANTS)[number];

export const STARTUP_LABELS: Record<StartupVariant, string> = {
  node: 'node -e 0',
  'jaeger-client': 'node -r jaeger-client -e 0',
  register: 'node -r ./register -e 0',
  otel: 'node -r @opentelemetry/auto-instrumentations-node/register -e 0',
  pg: "node -e \"require('pg')\"",
  'register-pg': "node -r ./register -e \"require('pg')\"",
  'esm-pg': 'node bench/startup-esm.mjs',
  'register-esm-pg': 'node -r ./register bench/startup-esm.mjs',
};

/** What each variant's "added" columns are measured against. */
export const STARTUP_BASELINE: Record<StartupVariant, StartupVariant> = {
  node: 'node',
  'jaeger-client': 'node',
  register: 'node',
  otel: 'node',
  pg: 'pg',
  'register-pg': 'pg',
  'esm-pg': 'esm-pg',
  'register-esm-pg': 'esm-pg',
};

const ESM_APP = 'bench/startup-esm.mjs';

// `-e 0`, plus reporting the process's CPU time when it exits.
const PROBE = "process.on('exit',()=>{const u=process.cpuUsage();process.stdout.write('CPU '+(u.user+u.system))})";

function argsOf(variant: StartupVariant): string[] {
  switch (variant) {
    case 'node':
      return ['-e', PROBE];
    case 'jaeger-client':
      return ['-r', 'jaeger-client', '-e', PROBE];
    case 'register':
      return ['-r', './register', '-e', PROBE];
    case 'otel':
      return ['-r', '@opentelemetry/auto-instrumentations-node/register', '-e', PROBE];
    case 'pg':
      return ['-e', `${PROBE};require('pg')`];
    case 'register-pg':
      return ['-r', './register', '-e', `${PROBE};require('pg')`];
    case 'esm-pg':
      return [ESM_APP];
    case 'register-esm-pg':
      return ['-r', './register', ESM_APP];
  }
}

function envOf(variant: StartupVariant): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
  if (variant === 'otel') {
    // No cloud detectors: they would probe metadata addresses off this machine.
    env.OTEL_NODE_RESOURCE_DETECTORS = 'env,host,os,process';
    env.OTEL_SERVICE_NAME = 'bench';
    // Traces keep their default exporter (OTLP), pointed at this machine; nothing is sent by `-e 0`.
    env.OTEL_EXPORTER_OTLP_ENDPOINT = 'http://127.0.0.1:4318';
    env.OTEL_METRICS_EXPORTER = 'none';
    env.OTEL_LOGS_EXPORTER = 'none';
  }
  if (variant.startsWith('register')) {
    // The agent address jaeger-client would use by default, stated: nothing is sent by `-e 0`.
    env.JAEGER_AGENT_HOST = '127.0.0.1';
    env.JAEGER_SERVICE_NAME = 'bench';
  }
  return env;
}

export interface StartupResult {
  runs: number;
  /** Milliseconds per variant. */
  wall: Record<StartupVariant, Summary>;
  cpu: Record<StartupVariant, Summary>;
}

function runOnce(variant: StartupVariant): { wallMs: number; cpuMs: number } {
  const t0 = process.hrtime.bigint();
  const child = spawnSync(process.execPath, argsOf(variant), { cwd: ROOT, env: envOf(variant), encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const match = /CPU (\d+)/.exec(child.stdout ?? '');
  if (child.status !== 0 || !match) {
    throw new Error(`startup run '${STARTUP_LABELS[variant]}' failed (status ${child.status}): ${child.stderr}`);
  }
  return { wallMs, cpuMs: Number(match[1]) / 1000 };
}

/** `runs` alternated rounds of every variant (the order rotates each round). */
export function measureStartup(runs: number, warm = true): StartupResult {
  const wall = Object.fromEntries(STARTUP_VARIANTS.map((v) => [v, [] as number[]])) as Record<StartupVariant, number[]>;
  const cpu = Object.fromEntries(STARTUP_VARIANTS.map((v) => [v, [] as number[]])) as Record<StartupVariant, number[]>;
  // One unmeasured round: the file system cache.
  if (warm) for (const v of STARTUP_VARIANTS) runOnce(v);
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < STARTUP_VARIANTS.length; i++) {
      const v = STARTUP_VARIANTS[(i + r) % STARTUP_VARIANTS.length];
      const { wallMs, cpuMs } = runOnce(v);
      wall[v].push(wallMs);
      cpu[v].push(cpuMs);
    }
  }
  const sum = (m: Record<StartupVariant, number[]>): Record<StartupVariant, Summary> =>
    Object.fromEntries(STARTUP_VARIANTS.map((v) => [v, summarize(m[v])])) as Record<StartupVariant, Summary>;
  return { runs, wall: sum(wall), cpu: sum(cpu) };
}
