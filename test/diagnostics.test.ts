/**
 * Diagnostics (src/logger.ts) and the checks of the environment
 * (src/env-config.ts): each bad setting gives one warning naming the
 * variable and what is done instead, and the application runs, under
 * `node -r ./register` against an agent stand-in. Needs `npm run build`.
 */
import assert from 'assert';
import { startJaegerAgent, type JaegerAgent, type ReceivedSpan } from '../tools/jaeger-agent';
import { runApp, type Run } from './helpers/run-app';
import { parseJaegerTags } from '../src/env-config';
import { installPatches, uninstallAllPatches } from '../src';
import { jaegerLogger, logOnce, refreshLogLevel, resetLogOnce, warnOnce } from '../src/logger';
import { createTestTracer, type TestTracer } from './helpers/tracing';
import { startHttpServer, type TestServer } from './helpers/servers';
import * as http from 'http';

const PREFIX = 'opentracing-instrumentation: ';

function lines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '');
}

/** The trace headers the fixture's server saw (`{ seen: [...] }` on stdout). */
function seen(run: Run): string[] {
  return (JSON.parse(run.stdout) as { seen: string[] }).seen;
}

interface Case {
  env: Record<string, string>;
  /** The one warning expected (after the prefix). */
  warning: RegExp;
  /** What the app's run shows of what was done instead. */
  check(run: Run, agent: JaegerAgent): Promise<void> | void;
}

async function fourSampledSpans(agent: JaegerAgent): Promise<ReceivedSpan[]> {
  const spans = await agent.waitForSpans(4);
  assert.deepStrictEqual(spans.map((s) => s.flags & 1), [1, 1, 1, 1]);
  return spans;
}

const CASES: Record<string, Case> = {
  'JAEGER_SAMPLER_TYPE=always_on (unknown)': {
    env: { JAEGER_SAMPLER_TYPE: 'always_on' },
    warning: /^JAEGER_SAMPLER_TYPE="always_on" is not one of const, probabilistic, ratelimiting, remote; every trace is sampled \(const 1\)$/,
    check: async (run, agent) => void (await fourSampledSpans(agent)),
  },
  'JAEGER_SAMPLER_PARAM=0 alone': {
    env: { JAEGER_SAMPLER_PARAM: '0' },
    warning: /^JAEGER_SAMPLER_PARAM="0" is set without JAEGER_SAMPLER_TYPE; read as JAEGER_SAMPLER_TYPE=probabilistic \(sampling probability 0\)$/,
    check: (run) => assert.deepStrictEqual(seen(run).map((h) => h.split(':')[3]), ['0', '0']),
  },
  'JAEGER_SAMPLER_TYPE=probabilistic without a param': {
    env: { JAEGER_SAMPLER_TYPE: 'probabilistic', JAEGER_SAMPLER_PARAM: 'half' },
    warning: /^JAEGER_SAMPLER_PARAM="half" is not a number; the param 1 is used \(JAEGER_SAMPLER_TYPE=probabilistic\)$/,
    check: async (run, agent) => void (await fourSampledSpans(agent)),
  },
  'JAEGER_TAGS=novalue,=x,team=a': {
    env: { JAEGER_TAGS: 'novalue,=x,team=a' },
    warning: /^JAEGER_TAGS="novalue,=x,team=a" has entries that are not name=value \("novalue", "=x"\); those are ignored, the other tags are kept$/,
    check: async (run, agent) => void (await fourSampledSpans(agent)),
  },
  'JAEGER_AGENT_PORT=abc': {
    env: { JAEGER_AGENT_PORT: 'abc' },
    warning: /^JAEGER_AGENT_PORT="abc" is not a port \(1-65535\); the default agent port 6832 is used$/,
    check: (run) => assert.strictEqual(seen(run).filter((h) => h.endsWith(':1')).length, 2, 'still traced'),
  },
  'JAEGER_AGENT_PORT=70000': {
    env: { JAEGER_AGENT_PORT: '70000' },
    warning: /^JAEGER_AGENT_PORT="70000" is not a port \(1-65535\); the default agent port 6832 is used$/,
    check: (run) => assert.strictEqual(seen(run).filter((h) => h.endsWith(':1')).length, 2, 'still traced'),
  },
  'JAEGER_ENDPOINT=not-a-url': {
    env: { JAEGER_ENDPOINT: 'not-a-url' },
    warning: /^JAEGER_ENDPOINT="not-a-url" is not an http\(s\) URL; spans go to the agent \(JAEGER_AGENT_HOST:JAEGER_AGENT_PORT\) instead$/,
    check: async (run, agent) => void (await fourSampledSpans(agent)),
  },
  'JAEGER_DISABLED=1': {
    env: { JAEGER_DISABLED: '1' },
    warning: /^JAEGER_DISABLED="1" is not 'true' or 'false'; read as true: tracing is disabled$/,
    check: (run) => assert.deepStrictEqual(seen(run), ['', '']),
  },
  'JAEGER_DISABLED=maybe': {
    env: { JAEGER_DISABLED: 'maybe' },
    warning: /^JAEGER_DISABLED="maybe" is not 'true' or 'false'; ignored: tracing stays on$/,
    check: async (run, agent) => void (await fourSampledSpans(agent)),
  },
  'OPENTRACING_INSTRUMENTATION_PROPAGATION=jaeger,b3': {
    env: { OPENTRACING_INSTRUMENTATION_PROPAGATION: 'jaeger,b3' },
    warning: /^OPENTRACING_INSTRUMENTATION_PROPAGATION="jaeger,b3" names unknown formats \(b3; known: jaeger, w3c\); using jaeger$/,
    check: async (run, agent) => void (await fourSampledSpans(agent)),
  },
  'OPENTRACING_INSTRUMENTATION_LOG_LEVEL=loud': {
    env: { OPENTRACING_INSTRUMENTATION_LOG_LEVEL: 'loud' },
    warning: /^OPENTRACING_INSTRUMENTATION_LOG_LEVEL="loud" is not one of debug, info, warn, error, silent; warn is used$/,
    check: async (run, agent) => void (await fourSampledSpans(agent)),
  },
  'JAEGER_REPORTER_LOG_SPANS=yes': {
    env: { JAEGER_REPORTER_LOG_SPANS: 'yes' },
    warning: /^JAEGER_REPORTER_LOG_SPANS="yes" is not 'true' or 'false'; read as true$/,
    // Printed whatever the log level: the user asked for them.
    check: (run) => assert.strictEqual(lines(run.stderr).filter((l) => l.includes('jaeger-client: Reporting span ')).length, 4, run.stderr),
  },
};

describe('diagnostics: bad settings under node -r ./register', function () {
  this.timeout(30000);
  let agent: JaegerAgent;
  beforeEach(async () => {
    agent = await startJaegerAgent();
  });
  afterEach(async () => {
    await agent.close();
  });
  const agentEnv = (extra: Record<string, string>): Record<string, string> => ({
    JAEGER_AGENT_HOST: '127.0.0.1',
    JAEGER_AGENT_PORT: String(agent.port),
    ...extra,
  });

  for (const [name, c] of Object.entries(CASES)) {
    it(`${name}: one warning naming it, and the app runs`, async () => {
      const run = await runApp(agentEnv(c.env));
      assert.strictEqual(run.code, 0, run.stderr);
      const mine = lines(run.stderr).filter((l) => l.startsWith(PREFIX) && !l.includes('Reporting span'));
      assert.strictEqual(mine.length, 1, run.stderr);
      assert.match(mine[0]!.slice(PREFIX.length), c.warning);
      await c.check(run, agent);
    });
  }

  it('good settings: nothing on stderr at the default level', async () => {
    const run = await runApp(agentEnv({ JAEGER_SAMPLER_TYPE: 'const', JAEGER_SAMPLER_PARAM: '1', JAEGER_TAGS: 'a=b' }));
    assert.strictEqual(run.code, 0, run.stderr);
    assert.strictEqual(run.stderr, '');
    await fourSampledSpans(agent);
  });

  it('OPENTRACING_INSTRUMENTATION_LOG_LEVEL=silent: a bad setting prints nothing', async () => {
    const run = await runApp(agentEnv({ OPENTRACING_INSTRUMENTATION_LOG_LEVEL: 'silent', JAEGER_SAMPLER_TYPE: 'nope' }));
    assert.strictEqual(run.code, 0, run.stderr);
    assert.strictEqual(run.stderr, '');
  });

  it('OPENTRACING_INSTRUMENTATION_LOG_LEVEL=info: one startup line (service, exporter and target, sampler, patches)', async () => {
    const run = await runApp(agentEnv({ OPENTRACING_INSTRUMENTATION_LOG_LEVEL: 'info' }));
    assert.strictEqual(run.code, 0, run.stderr);
    const started = lines(run.stderr).filter((l) => l.startsWith(`${PREFIX}started: `));
    assert.strictEqual(started.length, 1, run.stderr);
    assert.match(
      started[0]!,
      new RegExp(
        `^${PREFIX}started: service fixture-plain-app, exporter jaeger \\(jaeger agent udp 127\\.0\\.0\\.1:${agent.port}\\), ` +
          'sampler const 1, propagation jaeger; patches: http, https, .*http-server',
      ),
    );
  });

  it('NODE_DEBUG=opentracing-instrumentation turns debug (and info) lines on', async () => {
    const run = await runApp(agentEnv({ NODE_DEBUG: 'opentracing-instrumentation' }));
    assert.strictEqual(run.code, 0, run.stderr);
    assert.match(run.stderr, /^opentracing-instrumentation: started: /m);
    assert.match(run.stderr, /^opentracing-instrumentation: jaeger-client: Initializing Jaeger Tracer/m);
  });

  it('a collector that refuses connections: one warning, not one per batch', async () => {
    const run = await runApp({ JAEGER_ENDPOINT: 'http://127.0.0.1:1/api/traces' });
    assert.strictEqual(run.code, 0, run.stderr);
    const mine = lines(run.stderr).filter((l) => l.startsWith(PREFIX));
    assert.strictEqual(mine.length, 1, run.stderr);
    assert.match(mine[0]!, /jaeger-client: error sending spans over HTTP: Error: connect ECONNREFUSED/);
  });
});

describe('JAEGER_TAGS parsing', () => {
  it('keeps name=value entries and ${VAR:default} values; reports the rest', () => {
    const { tags, rejected } = parseJaegerTags(' a = 1 ,novalue,=x,b=${OTI_TEST_VAR:dflt},c=${OTI_SET_VAR},,d=x=y', {
      OTI_SET_VAR: 'from-env',
    });
    assert.deepStrictEqual(tags, { a: '1', b: 'dflt', c: 'from-env', d: 'x=y' });
    assert.deepStrictEqual(rejected, ['novalue', '=x']);
  });
});

describe('the logger, in process', () => {
  let written: string[];
  let write: typeof process.stderr.write;
  const saved = process.env.OPENTRACING_INSTRUMENTATION_LOG_LEVEL;
  beforeEach(() => {
    written = [];
    write = process.stderr.write;
    process.stderr.write = ((chunk: string) => {
      written.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    resetLogOnce();
  });
  afterEach(() => {
    process.stderr.write = write;
    if (saved === undefined) delete process.env.OPENTRACING_INSTRUMENTATION_LOG_LEVEL;
    else process.env.OPENTRACING_INSTRUMENTATION_LOG_LEVEL = saved;
    refreshLogLevel();
    resetLogOnce();
  });

  it('warn by default: warnOnce once per key, debug-level logOnce not shown', () => {
    delete process.env.OPENTRACING_INSTRUMENTATION_LOG_LEVEL;
    refreshLogLevel({});
    warnOnce('k', 'first');
    warnOnce('k', 'again');
    logOnce('internal', 'a debug line');
    assert.deepStrictEqual(written, ['opentracing-instrumentation: first\n']);
  });

  it('jaeger-client errors: one warning per kind of failure, whatever the numbers in it', () => {
    refreshLogLevel({});
    jaegerLogger.error('error sending spans over HTTP: Error: connect ECONNREFUSED 127.0.0.1:14268');
    jaegerLogger.error('Failed to flush spans in reporter: error sending spans over HTTP: Error: connect ECONNREFUSED 127.0.0.1:14268');
    jaegerLogger.error('error sending spans over HTTP: Error: connect ECONNREFUSED 127.0.0.1:14269');
    jaegerLogger.error('error sending spans over UDP: Error: getaddrinfo ENOTFOUND nope, packet size: 512, bytes sent: undefined');
    jaegerLogger.info('Initializing Jaeger Tracer with RemoteReporter');
    assert.strictEqual(written.length, 2, written.join(''));
  });

  describe('a user hook that throws', () => {
    let tt: TestTracer;
    let server: TestServer;
    before(async () => {
      tt = createTestTracer();
      server = await startHttpServer();
    });
    after(async () => {
      uninstallAllPatches();
      tt.close();
      await server.close();
    });

    it('is logged once at warn level (the default), and the calls go on', async () => {
      refreshLogLevel({});
      installPatches(['http'], {
        tracer: tt.tracer,
        http: {
          requestHook: () => {
            throw new Error('hook boom');
          },
        },
      });
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve, reject) => {
          http.get(`${server.origin}/x`, (res) => res.resume().on('end', resolve)).on('error', reject);
        });
      }
      const mine = written.filter((l) => l.includes('hook boom'));
      assert.strictEqual(mine.length, 1, written.join(''));
      assert.match(mine[0]!, /^opentracing-instrumentation: http requestHook threw; the call goes on: Error: hook boom/);
      assert.strictEqual(tt.spans().length, 3);
    });
  });
});
