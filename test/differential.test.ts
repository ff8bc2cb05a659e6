/**
 * Differential equivalence and tracer faults, per client: each scenario runs
 * without instrumentation, with it, and with the tracer failing in each way
 * (startSpan, inject, extract, finish, log, setTag throwing, one at a time);
 * the application must observe exactly the same thing every time.
 */
import assert from 'assert';
import { assertEquivalent, FAULTS, withFaults, type DifferentialSetup, type Fault, type Scenario } from './helpers/differential';
import { record } from './helpers/reliability';
import { startHttpServer, startHttpsServer, testCertificate } from './helpers/servers';
import { createTestTracer } from './helpers/tracing';
import { freePort, type ScenarioEnv } from './scenarios/env';
import { axiosScenarios } from './scenarios/axios';
import { fetchScenarios } from './scenarios/fetch';
import { httpScenarios } from './scenarios/http';
import { ioredisScenarios } from './scenarios/ioredis';
import { pgScenarios } from './scenarios/pg';
import { serverScenarios } from './scenarios/server';
import type { PatchName } from '../src/options';

/** The patches every instrumented run installs: all the patches. */
const CLIENT_PATCHES: readonly PatchName[] = ['http', 'https', 'axios', 'fetch', 'pg', 'ioredis', 'http-server'];

/** Faults a client patch can meet (`extract` is only called by the server patch). */
const CLIENT_FAULTS: readonly Fault[] = FAULTS.filter((f) => f !== 'extract');
/** Faults a database patch can meet (it injects nothing either). */
const DB_FAULTS: readonly Fault[] = CLIENT_FAULTS.filter((f) => f !== 'inject');

describe('differential equivalence: the application sees the same with and without instrumentation', () => {
  const env = {} as ScenarioEnv;
  const t = createTestTracer();
  const setup: DifferentialSetup = { patches: CLIENT_PATCHES, t, faulty: withFaults(t) };
  before(async () => {
    env.http = await startHttpServer();
    env.https = await startHttpsServer();
    env.ca = testCertificate().cert;
    env.closedPort = await freePort();
  });
  after(async () => {
    await env.http.close();
    await env.https.close();
    t.close();
  });

  /** One `it` per scenario; the faults of `faults` each get a run of their own in it. */
  function suite(client: string, scenarios: () => Scenario[], faults: readonly Fault[] = CLIENT_FAULTS): void {
    describe(client, () => {
      const hitsBefore = { ...setup.faulty.hits };
      // Scenario names are only known once the env exists; the list is built from a placeholder env.
      for (const scenario of scenarios()) {
        it(scenario.name, async function () {
          this.timeout(30000);
          const real = scenarios().find((s) => s.name === scenario.name)!;
          const { runs, spans } = await assertEquivalent(setup, real, faults);
          record(`differential.${client}`, {
            area: 'Differential equivalence',
            what: `${client}: ${scenarios().length} scenarios (success, error reply, network error, timeout, abort, invalid arguments...), each run without instrumentation, with it, and with each tracer fault`,
            unit: 'runs compared',
            lostMeans: 'a run where the app saw a different result, error, event order or `this`',
            tried: runs,
            lost: 0,
          });
          record(`faults.${client}`, {
            area: 'Faults',
            what: `${client}: tracer ${faults.join(', ')} throwing, one at a time, over every scenario`,
            unit: 'faulty runs',
            lostMeans: 'an application call that failed or changed; a span unfinished or finished twice',
            tried: runs - 2,
            lost: 0,
          });
          void spans;
        });
      }
      it('every fault was actually hit by some scenario', () => {
        for (const fault of faults) {
          assert.ok(setup.faulty.hits[fault] > hitsBefore[fault], `tracer.${fault} was never called by the ${client} scenarios`);
        }
      });
    });
  }

  suite('http', () => httpScenarios(env, 'http'));
  suite('https', () => httpScenarios(env, 'https'));
  suite('axios', () => [...axiosScenarios(env, 'http'), ...axiosScenarios(env, 'fetch')]);
  suite('fetch', () => [...fetchScenarios(env, 'global fetch'), ...fetchScenarios(env, 'undici.fetch')]);
  suite('pg', () => pgScenarios(env), DB_FAULTS);
  suite('ioredis', () => ioredisScenarios(env), DB_FAULTS);
  suite('http-server', () => serverScenarios(env), FAULTS);

  // Hooks may be async: every patch's request and response hooks reject, over
  // every scenario; the app must see the same, and no unhandled rejection may
  // reach the process.
  describe('with async hooks that reject', () => {
    let calls = 0;
    const rejecting = async (): Promise<void> => {
      calls++;
      throw new Error('async hook failed on purpose');
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    before(() => process.on('unhandledRejection', onUnhandled));
    after(() => {
      process.removeListener('unhandledRejection', onUnhandled);
      assert.ok(calls > 0, 'the hooks were called');
    });
    const hooks = { requestHook: rejecting, responseHook: rejecting };
    const options = Object.fromEntries(CLIENT_PATCHES.map((name) => [name, hooks]));
    const hooked: DifferentialSetup = { patches: CLIENT_PATCHES, options, t, faulty: setup.faulty };
    const all: Array<[string, () => Scenario[]]> = [
      ['http', () => httpScenarios(env, 'http')],
      ['axios', () => axiosScenarios(env, 'http')],
      ['fetch', () => fetchScenarios(env, 'global fetch')],
      ['pg', () => pgScenarios(env)],
      ['ioredis', () => ioredisScenarios(env)],
      ['http-server', () => serverScenarios(env)],
    ];
    for (const [client, scenarios] of all) {
      for (const scenario of scenarios()) {
        it(scenario.name.startsWith(client) ? scenario.name : `${client}: ${scenario.name}`, async function () {
          this.timeout(30000);
          const real = scenarios().find((s) => s.name === scenario.name)!;
          const { runs } = await assertEquivalent(hooked, real);
          await new Promise((resolve) => setImmediate(resolve));
          assert.deepStrictEqual(unhandled.splice(0), [], 'unhandled rejections');
          record(`differential.async-hooks.${client}`, {
            area: 'Differential equivalence',
            what: `${client}: every scenario with request and response hooks that are async and reject, against the plain run`,
            unit: 'runs compared',
            lostMeans: 'a run where the app saw a different result, error or event order, or an unhandled rejection',
            tried: runs,
            lost: 0,
          });
        });
      }
    }
  });
});
