/**
 * Smoke run of the benchmark harness (`npm run bench` with tiny counts), so
 * that it does not rot: it must run every mode, the memory and the startup
 * measurements, and print its table. No figure is asserted: machines are noisy.
 */
import assert from 'assert';
import { spawn } from 'child_process';
import * as path from 'path';
import { buildBench } from '../bench/build';
import { CLIENT_NAMES } from '../bench/clients';
import { MODE_IDS, MODE_LABELS } from '../bench/modes';

const root = path.join(__dirname, '..');

function runSmoke(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // As `npm run bench` does: the compiled harness (dist/ is built by `pretest`).
    const out = buildBench();
    const child = spawn(process.execPath, [path.join(out, 'run.js'), '--smoke'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npm run bench (smoke run, tiny counts)', function () {
  this.timeout(70000);

  it('runs every mode, memory and startup, and prints the table', async () => {
    const run = await runSmoke();
    assert.strictEqual(run.code, 0, run.stderr);
    const out = run.stdout;
    assert.match(out, /\| client \| in flight \| mode \| µs\/call \| added wall µs\/call/);
    const rows = out.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| client') && !l.startsWith('| ---'));
    for (const client of CLIENT_NAMES) {
      for (const inFlight of [1, 32]) {
        for (const mode of ['1', ...MODE_IDS] as const) {
          const row = rows.find((l) => l.startsWith(`| ${client} | ${inFlight} | ${mode} ${MODE_LABELS[mode]} |`));
          assert.ok(row, `a row for ${client}, ${inFlight} in flight, mode ${mode}`);
          // Each cell holds a figure or says n/a with its reason: never a broken run.
          if (mode !== '1') assert.match(row, /\| (-?\d+\.\d|n\/a) \|/, row);
        }
      }
      // OpenTelemetry instruments every client: its rows are always measured.
      const otel = rows.find((l) => l.startsWith(`| ${client} | 1 | 4 `))!;
      assert.match(otel, /^\| \S+ \| 1 \| 4 [^|]+\| -?\d+\.\d \| -?\d+\.\d \[/, otel);
    }
    // Our http patch exists from the start: its rows are measured too.
    assert.match(rows.find((l) => l.startsWith('| http | 1 | 2a '))!, /\| -?\d+\.\d \[[^\]]+\] \| (-?\d+\.\d+|OTel ≤ 0) \|$/);
    assert.match(out, /### Memory/);
    assert.match(out, /\| http \| 200 \| \d+ → \d+ \|/);
    assert.match(out, /### Startup/);
    for (const cmd of ['node -e 0', 'node -r ./register -e 0', 'auto-instrumentations-node/register']) {
      assert.ok(out.includes(cmd), cmd);
    }
    assert.match(out, /### Targets\n\n- (MET|MISSED|N\/A): /);
    assert.match(run.stderr, /UDP sink received [1-9]\d* datagrams/, 'mode 3 sent spans to the UDP sink');
  });
});
