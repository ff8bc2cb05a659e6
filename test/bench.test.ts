/**
 * Smoke run of the benchmark harness (`npm run bench` with tiny counts), so
 * that it does not rot: it must run every mode for every client, the memory,
 * event-loop and startup measurements, and print its tables (issue 18's
 * comparison table among them). No figure is asserted: machines are noisy.
 */
import assert from 'assert';
import { spawn } from 'child_process';
import * as path from 'path';
import { buildBench } from '../bench/build';
import { CLIENT_NAMES, concurrencyFor } from '../bench/clients';
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
    // About 20 s on a quiet 2-core machine; the bound is for a busy one.
    const killer = setTimeout(() => child.kill('SIGKILL'), 150000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('npm run bench (smoke run, tiny counts)', function () {
  this.timeout(160000);

  it('runs every mode, memory and startup, and prints the table', async () => {
    const run = await runSmoke();
    assert.strictEqual(run.code, 0, run.stderr);
    const out = run.stdout;
    assert.match(out, /\| client \| in flight \| mode \| µs\/call \| added wall µs\/call/);
    const rows = out.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| client') && !l.startsWith('| ---'));
    for (const client of CLIENT_NAMES) {
      for (const inFlight of concurrencyFor(client, [1, 32])) {
        for (const mode of ['1', ...MODE_IDS] as const) {
          const row = rows.find((l) => l.startsWith(`| ${client} | ${inFlight} | ${mode} ${MODE_LABELS[mode]} |`));
          assert.ok(row, `a row for ${client}, ${inFlight} in flight, mode ${mode}`);
          // Each cell holds a figure or says n/a with its reason: never a broken run.
          if (mode !== '1') assert.match(row, /\| (-?\d+\.\d|n\/a) \|/, row);
        }
      }
      // OpenTelemetry instruments every client but bullmq: its rows are measured.
      const otel = rows.find((l) => l.startsWith(`| ${client} | 1 | 4 `))!;
      if (client === 'bullmq') assert.match(otel, /n\/a \(no official OpenTelemetry bullmq instrumentation\)/, otel);
      else assert.match(otel, /^\| \S+ \| 1 \| 4 [^|]+\| -?\d+\.\d \| -?\d+\.\d \[/, otel);
    }
    // Issue 18's table: one row per client and concurrency, both comparisons, the no-op column, the control and its verdict.
    const issue = out.slice(out.indexOf('### Issue 18 table'), out.indexOf('### Per call, every mode'));
    assert.match(issue, /\| ours, spans dropped \(2b\) \| OTel, spans dropped \(4\) \| ratio 2b\/4 \| ours, UDP reporter \(3\) \| ours, OTLP exporter \(3o\) \|/);
    for (const client of CLIENT_NAMES) {
      for (const inFlight of concurrencyFor(client, [1, 32])) {
        const row = issue.split('\n').find((l) => l.startsWith(`| ${client} | ${inFlight} | `));
        assert.ok(row, `an issue-table row for ${client}, ${inFlight} in flight`);
        assert.match(row, /\| (yes|NO)[:(]/, row);
      }
    }
    assert.match(out, /### Event loop during a flush of \d+ spans/);
    assert.match(out, /\| this package's UDP reporter to the local sink \(3\) \| \d+ \| \d+\.\d \| \d+\.\d \|/);
    assert.match(out, /\| this package's OTLP exporter, closed loopback port \(3o\) \| \d+ \| \d+\.\d \| \d+\.\d \|/);
    // Our http patch exists from the start: its rows are measured too.
    assert.match(rows.find((l) => l.startsWith('| http | 1 | 2a '))!, /\| -?\d+\.\d \[[^\]]+\] \| (-?\d+\.\d+|OTel ≤ 0) \| \d+ \|$/);
    assert.match(out, /### Memory/);
    assert.match(out, /\| http \| 200 \| \d+ → \d+ \|/);
    assert.match(out, /### Startup/);
    for (const cmd of ['node -e 0', 'node -r jaeger-client -e 0', 'node -r ./register -e 0', 'auto-instrumentations-node/register', 'startup-esm.mjs']) {
      assert.ok(out.includes(cmd), cmd);
    }
    assert.match(out, /### Targets\n\n- (MET|MISSED|N\/A): /);
    assert.match(run.stderr, /UDP sink received [1-9]\d* datagrams/, 'mode 3 sent spans to the UDP sink');
  });
});
