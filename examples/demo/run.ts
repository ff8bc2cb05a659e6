/**
 * `npm run demo`: what this library does, in one terminal.
 *
 * 1. Starts a Jaeger agent stand-in (tools/jaeger-agent.ts: it decodes the
 *    UDP Thrift batches that jaeger-client sends) behind a small UDP relay,
 *    which also forwards every batch to a real Jaeger agent when
 *    JAEGER_AGENT_HOST is set (`docker compose up -d jaeger`).
 * 2. Checks PostgreSQL, Redis and RabbitMQ; a service that is not reachable
 *    is skipped.
 * 3. Starts two services with no tracing code under `node -r ./register`:
 *    demo-frontend (plain http: Redis, PostgreSQL, then the backend over
 *    axios and fetch) and demo-backend (Express; its profile route publishes
 *    a message to a queue of its own for this run, which it consumes and
 *    counts in Redis: a message hop in the same trace).
 * 4. Sends the front service a few requests, stops both services (they flush
 *    their spans on exit) and prints each trace as an indented waterfall,
 *    with the renderer of the console exporter (src/export/waterfall.ts). The
 *    demo collects the spans of both services first: the console exporter
 *    itself prints one process' part of a trace, and the point here is the
 *    trace across the two services. The relay also reads the span references
 *    (the agent stand-in keeps only the parent id), so that a consumer span
 *    is marked as following from its producer.
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * REDIS_URL (default redis://127.0.0.1:6379), AMQP_URL (default
 * amqp://guest:guest@127.0.0.1:5672), JAEGER_AGENT_HOST /
 * JAEGER_AGENT_PORT (a real agent to copy the spans to), JAEGER_UI_URL
 * (default http://localhost:16686), NO_COLOR.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process';
import * as dgram from 'dgram';
import * as http from 'http';
import * as amqplib from 'amqplib';
import Redis from 'ioredis';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { Client } from 'pg';
import { startJaegerAgent, type JaegerAgent, type ReceivedSpan } from '../../tools/jaeger-agent';
import { groupByTrace, renderTrace } from '../../src/export/waterfall';

const root = path.join(__dirname, '..', '..');
const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
const bold = (s: string): string => (color ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string): string => (color ? `\x1b[2m${s}\x1b[0m` : s);
const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const AMQP_URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672';
const KEY_PREFIX = `oti-demo:${process.pid}:${Date.now()}:`;
const QUEUE = `oti-demo.${process.pid}.${Date.now()}`;

function reason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const text = typeof e?.message === 'string' && e.message ? e.message : String(err);
  return typeof e?.code === 'string' && !text.includes(e.code) ? `${e.code} ${text}` : text;
}

/** Undefined when PostgreSQL answers, else why not. */
async function checkPostgres(url: string): Promise<string | undefined> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return reason(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function redisClient(url: string, onError: (err: unknown) => void = () => undefined): Redis {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', onError);
  return client;
}

/** Undefined when Redis answers, else why not. */
async function checkRedis(url: string): Promise<string | undefined> {
  // ioredis rejects with "Connection is closed."; the cause comes as an 'error' event
  let cause: unknown;
  const client = redisClient(url, (err) => (cause ??= err));
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (err) {
    return reason(cause ?? err);
  } finally {
    client.disconnect();
  }
}

/** Removes the keys the front service cached. */
async function cleanRedis(url: string): Promise<void> {
  const client = redisClient(url);
  try {
    await client.connect();
    const keys = await client.keys(`${KEY_PREFIX}*`);
    if (keys.length > 0) await client.del(...keys);
  } catch {
    // the keys expire on their own within a minute
  } finally {
    client.disconnect();
  }
}

/** Undefined when RabbitMQ answers, else why not. */
async function checkRabbit(url: string): Promise<string | undefined> {
  try {
    const connection = await amqplib.connect(url, { timeout: 2000 });
    connection.on('error', () => undefined);
    await connection.close();
    return undefined;
  } catch (err) {
    return reason(err);
  }
}

/** Deletes the run's queue (it would expire a minute after its last use anyway). */
async function deleteQueue(url: string): Promise<void> {
  try {
    const connection = await amqplib.connect(url, { timeout: 2000 });
    connection.on('error', () => undefined);
    try {
      const channel = await connection.createChannel();
      await channel.deleteQueue(QUEUE);
    } finally {
      await connection.close();
    }
  } catch {
    // x-expires removes it
  }
}

interface ThriftRefs {
  Agent: {
    emitBatch: {
      argumentsMessageRW: {
        readFrom(
          buffer: Buffer,
          offset: number,
        ): { err: Error | null; value: { body: { batch: { spans: Array<{ spanId: Buffer; references?: Array<{ refType: string | number }> | null }> } } } };
      };
    };
  };
}

/**
 * The span ids with a followsFrom reference, from the Thrift batches as they
 * pass the relay (jaeger-client sets the parent id of such a span too; only
 * the reference tells it from a child).
 */
function followsFromReader(): { ids: Set<string>; read(msg: Buffer): void } {
  const jaegerMain = require.resolve('jaeger-client');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Thrift } = require(require.resolve('thriftrw', { paths: [jaegerMain] })) as { Thrift: new (options: object) => ThriftRefs };
  const thrift = new Thrift({
    entryPoint: path.join(path.dirname(jaegerMain), 'thriftrw-idl', 'agent.thrift'),
    allowOptionalArguments: true,
    allowFilesystemAccess: true,
  });
  const ids = new Set<string>();
  return {
    ids,
    read(msg) {
      const { err, value } = thrift.Agent.emitBatch.argumentsMessageRW.readFrom(msg, 0);
      if (err) return;
      for (const span of value.body.batch.spans) {
        if ((span.references ?? []).some((r) => r.refType === 'FOLLOWS_FROM' || r.refType === 1)) {
          ids.add(span.spanId.toString('hex').replace(/^0+/, '') || '0');
        }
      }
    },
  };
}

interface Relay {
  port: number;
  close(): Promise<void>;
}

/** A UDP relay: every datagram to the stand-in, and to the real agent when there is one. */
function startRelay(agent: JaegerAgent, forward: { host: string; port: number } | undefined, onBatch: (msg: Buffer) => void): Promise<Relay> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg) => {
    onBatch(msg);
    socket.send(msg, agent.port, '127.0.0.1');
    if (forward) socket.send(msg, forward.port, forward.host);
  });
  socket.on('error', (err) => say(dim(`relay: ${reason(err)}`)));
  return new Promise((resolve) => {
    socket.bind(0, '127.0.0.1', () =>
      resolve({
        port: (socket.address() as AddressInfo).port,
        close: () => new Promise<void>((done) => socket.close(() => done())),
      }),
    );
  });
}

interface Service {
  name: string;
  port: number;
  child: ChildProcessWithoutNullStreams;
  exited: Promise<number | null>;
  stderr(): string;
}

/** Starts `script` under `node -r ./register`; resolves once it listens. */
function startService(name: string, script: string, env: Record<string, string>): Promise<Service> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, JAEGER_SERVICE_NAME: name };
  // The demo sends to its own agent: no HTTP collector, every trace sampled, every patch on.
  for (const key of ['JAEGER_ENDPOINT', 'JAEGER_SAMPLER_TYPE', 'JAEGER_SAMPLER_PARAM', 'JAEGER_DISABLED', 'OPENTRACING_INSTRUMENTATION_DISABLE']) {
    delete childEnv[key];
  }
  const child = spawn(process.execPath, ['-r', path.join(root, 'register.js'), path.join(__dirname, script)], {
    cwd: root,
    env: childEnv,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not start in time.\n${stderr}`));
    }, 15000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      const line = stdout.split('\n')[0];
      if (!stdout.includes('\n')) return;
      clearTimeout(timer);
      try {
        const { port } = JSON.parse(line) as { port: number };
        resolve({ name, port, child, exited, stderr: () => stderr });
      } catch {
        reject(new Error(`${name} printed ${line}`));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening.\n${stderr}`));
    });
  });
}

/** Closes the service's stdin (it shuts down and flushes its spans), kills it if it lingers. */
async function stopService(service: Service): Promise<void> {
  service.child.stdin.end();
  const timer = setTimeout(() => service.child.kill('SIGKILL'), 10000);
  const code = await service.exited;
  clearTimeout(timer);
  if (code !== 0) say(dim(`${service.name} exited with ${code}: ${service.stderr().trim()}`));
}

function get(url: string): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started }));
      })
      .on('error', reject);
  });
}

/** Waits until no span has arrived for `quietMs` (at most `maxMs`). */
async function settle(agent: JaegerAgent, quietMs = 300, maxMs = 3000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let count = -1;
  while (Date.now() < deadline && count !== agent.spans.length) {
    count = agent.spans.length;
    await new Promise((r) => setTimeout(r, quietMs));
  }
}

async function main(): Promise<number> {
  say(bold('opentracing-instrumentation demo'));
  say();
  const agent = await startJaegerAgent();
  const forwardHost = process.env.JAEGER_AGENT_HOST;
  const forward = forwardHost ? { host: forwardHost, port: Number(process.env.JAEGER_AGENT_PORT || 6832) } : undefined;
  const followsFrom = followsFromReader();
  const relay = await startRelay(agent, forward, followsFrom.read);
  const services: Service[] = [];
  try {
    const [pgProblem, redisProblem, amqpProblem] = await Promise.all([checkPostgres(DATABASE_URL), checkRedis(REDIS_URL), checkRabbit(AMQP_URL)]);
    const status = (problem: string | undefined): string => (problem === undefined ? 'ok' : `skipped: ${problem}`);
    say(`  PostgreSQL  ${DATABASE_URL}  ${status(pgProblem)}`);
    say(`  Redis       ${REDIS_URL}  ${status(redisProblem)}`);
    say(`  RabbitMQ    ${AMQP_URL.replace(/\/\/[^@/]*@/, '//')}  ${status(amqpProblem)}`);
    say(
      `  Jaeger      ${
        forward
          ? `spans are shown here and copied to the agent at ${forward.host}:${forward.port}`
          : 'spans are shown here (set JAEGER_AGENT_HOST to also send them to a Jaeger agent)'
      }`,
    );
    say();

    const jaegerEnv = {
      JAEGER_AGENT_HOST: '127.0.0.1',
      JAEGER_AGENT_PORT: String(relay.port),
      JAEGER_REPORTER_FLUSH_INTERVAL: '200',
    };
    const backend = await startService('demo-backend', 'backend.js', {
      ...jaegerEnv,
      DEMO_AMQP_URL: amqpProblem === undefined ? AMQP_URL : '',
      DEMO_AMQP_QUEUE: QUEUE,
      DEMO_REDIS_URL: redisProblem === undefined ? REDIS_URL : '',
      DEMO_KEY_PREFIX: KEY_PREFIX,
    });
    services.push(backend);
    const frontend = await startService('demo-frontend', 'frontend.js', {
      ...jaegerEnv,
      BACKEND_URL: `http://127.0.0.1:${backend.port}`,
      DEMO_PG_URL: pgProblem === undefined ? DATABASE_URL : '',
      DEMO_REDIS_URL: redisProblem === undefined ? REDIS_URL : '',
      DEMO_KEY_PREFIX: KEY_PREFIX,
    });
    services.push(frontend);
    say(`Started demo-frontend (plain http, port ${frontend.port}) and demo-backend (Express, port ${backend.port}),`);
    say('both with no tracing code, under node -r ./register. Requests:');
    if (amqpProblem === undefined) say(dim(`  (each GET /profile/:id on the backend also sends a message through the queue ${QUEUE})`));
    const requests: Array<[string, string]> = [
      ['/users/1', redisProblem === undefined ? 'cache miss: Redis, PostgreSQL, backend' : 'backend over axios and fetch'],
      ['/users/1', redisProblem === undefined ? 'cache hit: Redis, backend' : 'the same again'],
      ['/users/7', 'the backend fails: errors in the trace'],
    ];
    for (const [p, what] of requests) {
      const reply = await get(`http://127.0.0.1:${frontend.port}${p}`);
      say(`  GET ${p.padEnd(10)} ${reply.status}  ${String(reply.ms).padStart(4)} ms  ${dim(what)}`);
    }
    say();

    await Promise.all(services.splice(0).map(stopService));
    await settle(agent);
    if (redisProblem === undefined) await cleanRedis(REDIS_URL);
    if (amqpProblem === undefined) await deleteQueue(AMQP_URL);
    const spans = agent.spans.map((s) => ({ ...s, followsFrom: followsFrom.ids.has(s.spanId) }));
    return report(spans, { pg: pgProblem === undefined, redis: redisProblem === undefined, amqp: amqpProblem === undefined }, forward !== undefined);
  } finally {
    for (const s of services) s.child.kill('SIGKILL');
    await relay.close();
    await agent.close();
  }
}

function report(spans: ReceivedSpan[], available: { pg: boolean; redis: boolean; amqp: boolean }, forwarded: boolean): number {
  if (spans.length === 0) {
    say('No spans arrived. Is dist/ built (npm run build)?');
    return 1;
  }
  const traces = groupByTrace(spans);
  traces.forEach((trace, i) => {
    const rootSpan = trace.find((s) => !trace.some((p) => p.spanId === s.parentSpanId)) ?? trace[0];
    const services = new Set(trace.map((s) => s.serviceName)).size;
    say(
      bold(`Trace ${i + 1}/${traces.length}  ${trace[0].traceId}`) +
        dim(`  ${rootSpan.operationName} ${rootSpan.tags['http.url'] ?? ''}  ·  ${trace.length} spans, ${services} service(s)`),
    );
    for (const line of renderTrace(trace, { color })) say(`  ${line}`);
    if (forwarded) {
      const ui = (process.env.JAEGER_UI_URL || 'http://localhost:16686').replace(/\/$/, '');
      say(dim(`  ${ui}/trace/${trace[0].traceId}`));
    }
    say();
  });
  const components = new Set(spans.map((s) => String(s.tags.component)));
  const expected: Array<[string, boolean, string[]]> = [
    ['pg', available.pg, ['pg']],
    ['ioredis', available.redis, ['ioredis']],
    ['axios', true, ['axios']],
    ['fetch', true, ['fetch', 'undici']],
    ['amqplib', available.amqp, ['amqplib']],
  ];
  const missing = expected.filter(([, wanted, names]) => wanted && !names.some((n) => components.has(n))).map(([name]) => name);
  const skipped = [!available.pg && 'PostgreSQL', !available.redis && 'Redis', !available.amqp && 'RabbitMQ (no message hop)'].filter(Boolean);
  say(dim('The same waterfall for your own app, one per process on stderr: OPENTRACING_INSTRUMENTATION_EXPORTER=console node -r ./register app.js'));
  say(
    `${spans.length} spans in ${traces.length} traces.` +
      (skipped.length > 0 ? ` Skipped (not reachable): ${skipped.join(', ')}.` : '') +
      (missing.length > 0 ? ` No spans from: ${missing.join(', ')} (patch not installed or not working).` : ''),
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  },
);
