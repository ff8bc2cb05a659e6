/**
 * Root hooks for the whole mocha run: at the very end, fail the run if any
 * span finished by a test tracer carried the secret canary.
 */
import assert from 'assert';
import { canaryReport } from './helpers/canary';

export const mochaHooks = {
  afterAll(): void {
    const { scanned, leaks } = canaryReport();
    assert.deepStrictEqual(leaks, [], `the secret canary reached ${leaks.length} span field(s) out of ${scanned} spans scanned`);
  },
};
