/**
 * The version of a loaded copy of a package, and whether it is in a hook's
 * declared range.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import * as fs from 'fs';
import * as path from 'path';

const versions = new Map<string, string | undefined>();

/** The `version` of `basedir/package.json` (read once per folder), or undefined. */
export function versionAt(basedir: string): string | undefined {
  if (versions.has(basedir)) return versions.get(basedir);
  let version: string | undefined;
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(basedir, 'package.json'), 'utf8')) as { version?: unknown };
    if (typeof pkg.version === 'string') version = pkg.version;
  } catch {
    // no readable package.json: version unknown
  }
  versions.set(basedir, version);
  return version;
}

const PLAIN = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/;
const COMPARATOR = /^(>=|<=|>|<|=)?v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/;

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/**
 * The registry's own ranges (`>=8 <9`, `>=6 <8`: space-separated
 * comparators on release versions) decided without loading `semver`, whose
 * first load costs ~9 ms of CPU (it compiles its grammar of regular
 * expressions) in every traced process that loads a versioned package.
 * Alternatives of such sets joined by `||` (`>=1 <2 || >=5 <7`) too.
 * Undefined for anything else (`^`, `~`, `x`, hyphen ranges,
 * prereleases), which `satisfies` hands to semver.
 */
export function simpleSatisfies(version: string, range: string): boolean | undefined {
  const v = PLAIN.exec(version);
  if (v === null || v[3] === undefined) return undefined;
  const have = [Number(v[1]), Number(v[2]), Number(v[3])];
  let any = false;
  for (const alternative of range.split('||')) {
    const inSet = simpleSetSatisfies(have, alternative);
    if (inSet === undefined) return undefined;
    any ||= inSet;
  }
  return any;
}

/** One space-separated set of simple comparators; undefined when it is not simple. */
function simpleSetSatisfies(have: readonly number[], range: string): boolean | undefined {
  const parts = range.trim().split(/\s+/);
  if (parts[0] === '') return undefined;
  const comparators: Array<{ op: string; bound: number[] }> = [];
  // Every part first: one that is not a simple comparator (`||`, `^1`) makes the whole range semver's.
  for (const part of parts) {
    const c = COMPARATOR.exec(part);
    if (c === null) return undefined;
    const op = c[1] ?? '=';
    // A partial bound (`<9`, `>=1.2`) is only simple where zero-filling it is what semver does.
    if (c[4] === undefined && (op === '=' || op === '>' || op === '<=')) return undefined;
    comparators.push({ op, bound: [Number(c[2]), Number(c[3] ?? 0), Number(c[4] ?? 0)] });
  }
  return comparators.every(({ op, bound }) => {
    const d = compare(have, bound);
    return op === '>=' ? d >= 0 : op === '>' ? d > 0 : op === '<' ? d < 0 : op === '<=' ? d <= 0 : d === 0;
  });
}

/** Whether `version` is in `range` (semver rules, prereleases included). */
export function satisfies(version: string, range: string): boolean {
  const simple = simpleSatisfies(version, range);
  if (simple !== undefined) return simple;
  const semverSatisfies = require('semver/functions/satisfies') as (v: string, r: string, o?: object) => boolean;
  return semverSatisfies(version, range, { includePrerelease: true });
}
