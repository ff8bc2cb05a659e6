/**
 * Counts for docs/RELIABILITY.md. Tests record what they tried and what was
 * lost (always 0 when they pass: a loss fails the test first); when
 * `RELIABILITY_OUT` names a file, the root hook writes the counts there as
 * JSON at the end of the run, and `npm run reliability` turns them into the
 * table. Without the variable, recording costs nothing and writes nothing.
 */
import * as fs from 'fs';

export interface Count {
  /** How many things were tried (calls, requests, spans...). */
  tried: number;
  /** How many of them went wrong (must be 0). */
  lost: number;
}

export interface Row extends Count {
  /** Section of the report: 'Differential equivalence', 'Load', 'Faults', 'Hostile input', 'Secrets'. */
  area: string;
  /** What was tried, one line. */
  what: string;
  /** The unit of `tried` (calls, requests, spans). */
  unit: string;
  /** What counts as lost, one line. */
  lostMeans: string;
  /** Extra figures (heap growth, durations), shown in a note. */
  notes?: string[];
}

const rows = new Map<string, Row>();
const counts = new Map<string, Count>();

/** Adds to the row `key` (rows with the same key sum up). */
export function record(key: string, row: Row): void {
  const prev = rows.get(key);
  if (prev === undefined) {
    rows.set(key, { ...row, notes: row.notes ? [...row.notes] : undefined });
    return;
  }
  prev.tried += row.tried;
  prev.lost += row.lost;
  if (row.notes) prev.notes = [...(prev.notes ?? []), ...row.notes];
}

/** Counts the suite hooks keep (total spans, canary scans); described by the report script. */
export function recordCount(key: string, count: Count): void {
  counts.set(key, { ...count });
}

/** Writes everything recorded to `$RELIABILITY_OUT` (JSON), when set. */
export function writeReliabilityReport(): void {
  const out = process.env.RELIABILITY_OUT;
  if (!out) return;
  const data = { rows: Object.fromEntries(rows), counts: Object.fromEntries(counts) };
  fs.writeFileSync(out, JSON.stringify(data, null, 2));
}
