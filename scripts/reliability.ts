/**
 * `npm run reliability`: runs the whole test suite with `RELIABILITY_OUT`
 * set, so that the tests write what they tried and what was lost
 * (test/helpers/reliability.ts), and turns those counts into
 * docs/RELIABILITY.md. The document is only written when the run passed:
 * its figures are always those of a real, green run.
 */
import { execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

interface Row {
  area: string;
  what: string;
  unit: string;
  lostMeans: string;
  tried: number;
  lost: number;
  notes?: string[];
}
interface Report {
  rows: Record<string, Row>;
  counts: Record<string, { tried: number; lost: number }>;
}

const root = path.join(__dirname, '..');
const AREAS = ['Differential equivalence', 'Faults', 'Load and context isolation', 'Hostile input', 'Secrets'];

function runSuite(out: string): Promise<{ code: number; passing: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [require.resolve('mocha/bin/mocha.js')], {
      cwd: root,
      env: { ...process.env, RELIABILITY_OUT: out },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      process.stdout.write(d);
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const passing = Number(/(\d+) passing/.exec(stdout)?.[1] ?? 0);
      resolve({ code: code ?? 1, passing, ms: Date.now() - started });
    });
  });
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function commit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'test'], { cwd: root, encoding: 'utf8' }).trim();
    return dirty ? `${sha} (with uncommitted changes)` : sha;
  } catch {
    return 'unknown';
  }
}

function render(report: Report, run: { passing: number; ms: number }): string {
  const rows = Object.values(report.rows);
  const spans = report.counts['suite.spans'];
  const canary = report.counts['suite.canary'];
  const lines: string[] = [];
  lines.push('# Reliability');
  lines.push('');
  lines.push('What the test suite tried against the instrumentation, how many times, and what was lost. Every figure is');
  lines.push('counted by the tests themselves during one real run (`npm run reliability`, which runs the whole suite');
  lines.push('and writes this file only when every test passed; scripts/reliability.ts). A loss fails its test, so a');
  lines.push('green run can only show zeros: the counts say how much was tried.');
  lines.push('');
  lines.push(
    `Run of ${new Date().toISOString().slice(0, 10)}: commit ${commit()}, Node ${process.version}, ${os.platform()} ${os.arch()}, ` +
      `${os.cpus().length} CPU(s) (${os.cpus()[0]?.model.trim() ?? 'unknown'}); ${run.passing} tests passed in ${(run.ms / 1000).toFixed(0)} s.`,
  );
  lines.push('');
  lines.push('| area | what was tried | how many times | what was lost |');
  lines.push('| --- | --- | ---: | --- |');
  const notes: string[] = [];
  for (const area of AREAS) {
    for (const row of rows.filter((r) => r.area === area)) {
      let what = row.what;
      if (row.notes && row.notes.length > 0) {
        notes.push(row.notes.join('; '));
        what += ` (note ${notes.length})`;
      }
      lines.push(`| ${area} | ${cell(what)} | ${row.tried.toLocaleString('en-US')} ${row.unit} | **${row.lost}** (${cell(row.lostMeans)}) |`);
    }
  }
  if (spans) {
    lines.push(
      `| Whole suite | every span started by a test tracer, in every test file (span accounting, checked at the end of each file) | ${spans.tried.toLocaleString('en-US')} spans | **${spans.lost}** (unfinished or finished twice) |`,
    );
  }
  if (canary) {
    lines.push(
      `| Whole suite | every finished span scanned for the secret canary (operation name, tag values, log fields, and the JSON a Jaeger reporter sends) | ${canary.tried.toLocaleString('en-US')} spans | **${canary.lost}** (a field holding the canary) |`,
    );
  }
  const unknown = rows.filter((r) => !AREAS.includes(r.area));
  for (const row of unknown) lines.push(`| ${row.area} | ${cell(row.what)} | ${row.tried} ${row.unit} | **${row.lost}** (${cell(row.lostMeans)}) |`);
  if (notes.length > 0) {
    lines.push('');
    lines.push('Notes:');
    lines.push('');
    notes.forEach((n, i) => lines.push(`${i + 1}. ${n}`));
  }
  lines.push('');
  lines.push('How each part works is described in docs/readme/safety.md (the test files: test/differential.test.ts,');
  lines.push('test/load.test.ts, test/db-faults.test.ts, test/fuzz.test.ts, test/hostile-input.test.ts, test/propagate-to.test.ts,');
  lines.push('test/secrets.test.ts, test/backend-faults.test.ts).');
  lines.push('');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const out = path.join(os.tmpdir(), `oti-reliability-${process.pid}.json`);
  const run = await runSuite(out);
  if (run.code !== 0) {
    console.error(`reliability: the suite failed (exit ${run.code}); docs/RELIABILITY.md left as it is`);
    process.exit(1);
  }
  const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report;
  fs.rmSync(out, { force: true });
  const losses = Object.values(report.rows).filter((r) => r.lost > 0);
  if (losses.length > 0) {
    console.error(`reliability: losses recorded in a green run: ${losses.map((r) => r.what).join('; ')}`);
    process.exit(1);
  }
  const doc = path.join(root, 'docs', 'RELIABILITY.md');
  fs.mkdirSync(path.dirname(doc), { recursive: true });
  fs.writeFileSync(doc, render(report, run));
  console.log(`reliability: wrote ${path.relative(root, doc)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
