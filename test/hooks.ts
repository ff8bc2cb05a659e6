/**
 * Root hooks for the whole mocha run:
 * - at the end of each test file, every test tracer that file created has
 *   finished every span it started, exactly once (span accounting);
 * - at the very end, the same for every tracer of the run, and the run fails
 *   if any span finished by a test tracer carried the secret canary;
 * - the counts go to the reliability report (test/helpers/reliability.ts).
 */
import assert from 'assert';
import type { Context, Suite } from 'mocha';
import { canaryReport } from './helpers/canary';
import { recordCount, writeReliabilityReport } from './helpers/reliability';
import { allAccountedTracers, waitFor, type TestTracer } from './helpers/tracing';

/** Waits (briefly) for late finishes, then asserts started == finished and no double finish. */
async function checkTracers(tracers: readonly TestTracer[], where: string): Promise<void> {
  await waitFor(() => tracers.every((t) => t.accounting.open.size === 0), 3000, 'open spans').catch(() => undefined);
  for (const t of tracers) {
    const a = t.accounting;
    assert.strictEqual(a.doubleFinished, 0, `${where}: ${a.doubleFinished} span(s) finished twice`);
    assert.strictEqual(
      a.finished,
      a.started,
      `${where}: started ${a.started} spans, finished ${a.finished} (open: ${[...a.open].map((s) => (s as unknown as { operationName?: string }).operationName).join(', ')})`,
    );
  }
}

/** Adds a last `after` hook to the last top-level suite of each test file. */
function addPerFileChecks(root: Suite): void {
  const lastSuiteOfFile = new Map<string, Suite>();
  for (const suite of root.suites) if (suite.file) lastSuiteOfFile.set(suite.file, suite);
  for (const [file, suite] of lastSuiteOfFile) {
    suite.afterAll(`span accounting of ${file.replace(/^.*[\\/]test[\\/]/, 'test/')}`, async function () {
      this.timeout(10000);
      const mine = allAccountedTracers().filter((t) => t.file === file);
      await checkTracers(mine, file);
    });
  }
}

export const mochaHooks = {
  beforeAll(this: Context): void {
    const root = this.test?.parent;
    if (root) addPerFileChecks(root);
  },
  async afterAll(this: Context): Promise<void> {
    this.timeout(10000);
    const tracers = allAccountedTracers();
    await checkTracers(tracers, 'whole run');
    const started = tracers.reduce((n, t) => n + t.accounting.started, 0);
    const finished = tracers.reduce((n, t) => n + t.accounting.finished, 0);
    const twice = tracers.reduce((n, t) => n + t.accounting.doubleFinished, 0);
    recordCount('suite.spans', { tried: started, lost: started - finished + twice });
    const { scanned, leaks } = canaryReport();
    recordCount('suite.canary', { tried: scanned, lost: leaks.length });
    writeReliabilityReport();
    assert.deepStrictEqual(leaks, [], `the secret canary reached ${leaks.length} span field(s) out of ${scanned} spans scanned`);
  },
};
