/**
 * The settings a user gives in the environment, checked before jaeger-client
 * reads them (dist/src/configuration_env.js), so that a bad one never
 * silently drops spans or the whole tracer: each is reported once, on
 * stderr, naming the variable and what is done instead.
 *
 * Also the tracer-level options of this package: the propagation formats
 * (`OPENTRACING_INSTRUMENTATION_PROPAGATION`, option `propagation`) and
 * jaeger-client's logger, wired to ours (src/logger.ts).
 */
import { jaegerLogger, LOG_LEVEL_ENV, LOG_LEVELS, logOnce, rejectedLogLevel, warnOnce } from './logger';
import { parsePropagation, registerW3CCodec, type CodecRegistry, type PropagationFormat } from './w3c';
import type * as jaeger from 'jaeger-client';

export const PROPAGATION_ENV = 'OPENTRACING_INSTRUMENTATION_PROPAGATION';

/** Options of `initTracer` / `initTracerFromEnv` that belong to this package, beside jaeger-client's own. */
export interface InstrumentationTracerOptions {
  /**
   * Trace context formats to read and write: `['jaeger']` (the default) or
   * `['jaeger', 'w3c']` (also `traceparent`, `tracestate`, `baggage`; trace
   * ids become 128-bit). A comma list is accepted too. Default: for
   * `initTracerFromEnv`, `OPENTRACING_INSTRUMENTATION_PROPAGATION`, else `jaeger`.
   */
  propagation?: readonly PropagationFormat[] | string;
}

type Config = jaeger.TracingConfig & { sampler?: jaeger.SamplerConfig & Record<string, unknown>; reporter?: jaeger.ReporterConfig & Record<string, unknown> };
type Options = jaeger.TracingOptions & InstrumentationTracerOptions & Record<string, unknown>;

/** What a tracer was made with, for the startup line of `register`. */
export interface TracerSetup {
  serviceName?: string;
  sampler: string;
  target: string;
  propagation: PropagationFormat[];
  disabled: boolean;
}

let lastSetup: TracerSetup | undefined;

/** What the last tracer made by initTracer/initTracerFromEnv was made with. */
export function tracerSetup(): TracerSetup | undefined {
  return lastSetup;
}

function reject(variable: string, value: string, problem: string, instead: string): void {
  const shown = value.length > 80 ? `${value.slice(0, 80)}...` : value;
  warnOnce(`env:${variable}:${value}`, `${variable}=${JSON.stringify(shown)} ${problem}; ${instead}`);
}

const SAMPLER_TYPES = ['const', 'probabilistic', 'ratelimiting', 'remote'];
const TRUE = ['true', '1', 'yes', 'on'];
const FALSE = ['false', '0', 'no', 'off'];

function setIfAbsent<T extends object>(obj: T, key: string, value: unknown): void {
  if (!(key in obj)) (obj as Record<string, unknown>)[key] = value;
}

function isPort(text: string): boolean {
  return /^\d{1,5}$/.test(text) && Number(text) >= 1 && Number(text) <= 65535;
}

function isPositiveInt(text: string): boolean {
  return /^\d+$/.test(text.trim()) && Number(text) > 0;
}

/** The first of several variables that is set (jaeger reads `A || B`). */
function firstSet(env: NodeJS.ProcessEnv, ...names: string[]): [string, string] | undefined {
  for (const name of names) {
    const v = env[name];
    if (v) return [name, v];
  }
  return undefined;
}

/**
 * `JAEGER_TAGS` (`k=v,k2=${ENV_VAR:default}`) parsed as jaeger-client means
 * it, without its crash on an entry with no `=`: valid entries kept, the
 * others reported.
 */
export function parseJaegerTags(text: string, env: NodeJS.ProcessEnv = process.env): { tags: Record<string, string>; rejected: string[] } {
  const tags: Record<string, string> = {};
  const rejected: string[] = [];
  for (const entry of text.split(',')) {
    if (entry.trim() === '') continue;
    const eq = entry.indexOf('=');
    const key = eq === -1 ? '' : entry.slice(0, eq).trim();
    if (key === '') {
      rejected.push(entry);
      continue;
    }
    let value = entry.slice(eq + 1).trim();
    if (value.startsWith('${') && value.endsWith('}')) {
      const inner = value.slice(2, -1);
      const colon = inner.indexOf(':');
      const name = colon === -1 ? inner : inner.slice(0, colon);
      value = env[name] || (colon === -1 ? '' : inner.slice(colon + 1));
    }
    tags[key] = value;
  }
  return { tags, rejected };
}

/**
 * Checks the `JAEGER_*` and `OPENTRACING_INSTRUMENTATION_*` variables and
 * returns `config` and `options` adjusted so that jaeger-client builds a
 * working tracer from them (values given in code win over the environment,
 * as in jaeger-client). Warns once per rejected setting. Never throws.
 */
export function checkEnvironment(config: jaeger.TracingConfig, options: Options, env: NodeJS.ProcessEnv = process.env): { config: jaeger.TracingConfig; options: Options } {
  const cfg: Config = { ...config } as Config;
  const opts: Options = { ...options };
  try {
    const level = rejectedLogLevel();
    if (level !== undefined) reject(LOG_LEVEL_ENV, level, `is not one of ${LOG_LEVELS.join(', ')}`, 'warn is used');

    const disabled = firstSet(env, 'JAEGER_DISABLED', 'JAEGER_DISABLE');
    if (disabled !== undefined && disabled[1] !== 'true' && disabled[1] !== 'false') {
      const v = disabled[1].trim().toLowerCase();
      if (TRUE.includes(v)) {
        reject(disabled[0], disabled[1], "is not 'true' or 'false'", 'read as true: tracing is disabled');
        setIfAbsent(cfg, 'disable', true);
      } else if (FALSE.includes(v)) {
        reject(disabled[0], disabled[1], "is not 'true' or 'false'", 'read as false: tracing stays on');
      } else {
        reject(disabled[0], disabled[1], "is not 'true' or 'false'", 'ignored: tracing stays on');
      }
    }

    checkSampler(cfg, env);
    checkReporter(cfg, env);

    if (opts.tags === undefined && env.JAEGER_TAGS) {
      const { tags, rejected } = parseJaegerTags(env.JAEGER_TAGS, env);
      if (rejected.length > 0) {
        const list = rejected.map((entry) => JSON.stringify(entry)).join(', ');
        reject('JAEGER_TAGS', env.JAEGER_TAGS, `has entries that are not name=value (${list})`, 'those are ignored, the other tags are kept');
      }
      opts.tags = tags;
    }
  } catch (err) {
    warnOnce('env:check', 'could not check the JAEGER_* settings; they are passed to jaeger-client as they are', err);
  }
  return { config: cfg, options: opts };
}

function checkSampler(cfg: Config, env: NodeJS.ProcessEnv): void {
  const sampler: Record<string, unknown> = { ...(cfg.sampler ?? {}) };
  const type = 'type' in sampler ? undefined : env.JAEGER_SAMPLER_TYPE;
  const rawParam = 'param' in sampler ? undefined : env.JAEGER_SAMPLER_PARAM;
  let param: number | undefined;
  let badParam = false;
  if (rawParam !== undefined) {
    param = rawParam.trim() === '' ? NaN : Number(rawParam);
    if (!Number.isFinite(param)) {
      badParam = true;
      sampler.param = undefined;
      param = undefined;
    }
  }
  if (type !== undefined && type !== '') {
    if (!SAMPLER_TYPES.includes(type)) {
      reject('JAEGER_SAMPLER_TYPE', type, `is not one of ${SAMPLER_TYPES.join(', ')}`, 'every trace is sampled (const 1)');
      sampler.type = 'const';
      sampler.param = 1;
    } else if (param === undefined && !('param' in (cfg.sampler ?? {}))) {
      // jaeger-client throws on a sampler without a number param, and the tracer is lost.
      if (badParam) reject('JAEGER_SAMPLER_PARAM', rawParam!, 'is not a number', `the param 1 is used (JAEGER_SAMPLER_TYPE=${type})`);
      else warnOnce(`env:JAEGER_SAMPLER_PARAM:missing:${type}`, `JAEGER_SAMPLER_TYPE=${type} is set without JAEGER_SAMPLER_PARAM; the param 1 is used`);
      sampler.param = 1;
    } else if (param !== undefined) {
      checkParam(type, param, rawParam!, sampler);
    }
  } else if (badParam) {
    reject('JAEGER_SAMPLER_PARAM', rawParam!, 'is not a number', 'ignored');
  } else if (param !== undefined && !('type' in sampler)) {
    if (param >= 0 && param <= 1) {
      // Jaeger's other clients default to a remote sampler whose initial
      // strategy is probabilistic with this param: the same reading, without a sampling server.
      reject('JAEGER_SAMPLER_PARAM', rawParam!, 'is set without JAEGER_SAMPLER_TYPE', `read as JAEGER_SAMPLER_TYPE=probabilistic (sampling probability ${param})`);
      sampler.type = 'probabilistic';
      sampler.param = param;
    } else {
      reject('JAEGER_SAMPLER_PARAM', rawParam!, 'is set without JAEGER_SAMPLER_TYPE and is not a probability', 'ignored: every trace is sampled');
      sampler.type = 'const';
      sampler.param = 1;
    }
  }
  for (const name of ['JAEGER_SAMPLER_REFRESH_INTERVAL']) {
    const v = env[name];
    if (v && !isPositiveInt(v) && !('refreshIntervalMs' in sampler)) {
      reject(name, v, 'is not a positive number of milliseconds', "jaeger-client's default is used");
      sampler.refreshIntervalMs = undefined;
    }
  }
  const port = env.JAEGER_SAMPLER_PORT;
  if (port && !isPort(port) && !('port' in sampler)) {
    reject('JAEGER_SAMPLER_PORT', port, 'is not a port (1-65535)', "jaeger-client's default is used");
    sampler.port = undefined;
  }
  const hostPort = env.JAEGER_SAMPLER_MANAGER_HOST_PORT;
  if (hostPort && !('hostPort' in sampler)) {
    const m = /^(.+):(\d+)$/.exec(hostPort);
    if (m === null || !isPort(m[2]!)) {
      reject('JAEGER_SAMPLER_MANAGER_HOST_PORT', hostPort, 'is not host:port', "jaeger-client's default is used");
      sampler.hostPort = undefined;
    }
  }
  // A sampler object without a type would make jaeger-client throw (no param) or sample nothing.
  const typed = cfg.sampler !== undefined || sampler.type !== undefined || Boolean(env.JAEGER_SAMPLER_TYPE);
  if (Object.keys(sampler).length > 0 && typed) cfg.sampler = sampler as unknown as Config['sampler'];
}

function checkParam(type: string, param: number, raw: string, sampler: Record<string, unknown>): void {
  if (type === 'const' && param !== 0 && param !== 1) {
    reject('JAEGER_SAMPLER_PARAM', raw, 'is not 0 or 1 for the const sampler', param > 0 ? 'read as 1: every trace is sampled' : 'read as 0: no trace is sampled');
    sampler.param = param > 0 ? 1 : 0;
  } else if ((type === 'probabilistic' || type === 'remote') && (param < 0 || param > 1)) {
    const clamped = param < 0 ? 0 : 1;
    reject('JAEGER_SAMPLER_PARAM', raw, `is not a probability (0 to 1) for the ${type} sampler`, `read as ${clamped}`);
    sampler.param = clamped;
  } else if (type === 'ratelimiting' && param < 0) {
    reject('JAEGER_SAMPLER_PARAM', raw, 'is negative for the ratelimiting sampler', 'read as 0: no trace is sampled');
    sampler.param = 0;
  }
}

function checkReporter(cfg: Config, env: NodeJS.ProcessEnv): void {
  const reporter: Record<string, unknown> = { ...(cfg.reporter ?? {}) };
  const has = (key: string): boolean => key in reporter;
  const endpoint = firstSet(env, 'JAEGER_ENDPOINT', 'JAEGER_REPORTER_ENDPOINT');
  if (endpoint !== undefined && !has('collectorEndpoint')) {
    let ok = false;
    try {
      const url = new URL(endpoint[1]);
      ok = (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
    } catch {
      ok = false;
    }
    if (!ok) {
      reject(endpoint[0], endpoint[1], 'is not an http(s) URL', 'spans go to the agent (JAEGER_AGENT_HOST:JAEGER_AGENT_PORT) instead');
      reporter.collectorEndpoint = undefined;
    }
  }
  const port = firstSet(env, 'JAEGER_AGENT_PORT', 'JAEGER_REPORTER_AGENT_PORT');
  if (port !== undefined && !has('agentPort') && !isPort(port[1].trim())) {
    reject(port[0], port[1], 'is not a port (1-65535)', 'the default agent port 6832 is used');
    reporter.agentPort = undefined;
  }
  const socketType = env.JAEGER_AGENT_SOCKET_TYPE;
  if (socketType && !has('agentSocketType') && socketType !== 'udp4' && socketType !== 'udp6') {
    reject('JAEGER_AGENT_SOCKET_TYPE', socketType, "is not 'udp4' or 'udp6'", 'udp4 is used');
    reporter.agentSocketType = undefined;
  }
  for (const [name, key] of [
    ['JAEGER_REPORTER_FLUSH_INTERVAL', 'flushIntervalMs'],
    ['JAEGER_REPORTER_TIMEOUT', 'timeoutMs'],
  ] as const) {
    const v = env[name];
    if (v && !has(key) && !isPositiveInt(v)) {
      reject(name, v, 'is not a positive number of milliseconds', "jaeger-client's default is used");
      reporter[key] = undefined;
    }
  }
  const logSpans = env.JAEGER_REPORTER_LOG_SPANS;
  if (logSpans && !has('logSpans') && logSpans !== 'true') {
    // jaeger-client reads any non-empty value as true (Boolean('false')).
    const on = TRUE.includes(logSpans.trim().toLowerCase());
    if (logSpans !== 'false') reject('JAEGER_REPORTER_LOG_SPANS', logSpans, "is not 'true' or 'false'", on ? 'read as true' : 'read as false');
    reporter.logSpans = on;
  }
  if (Object.keys(reporter).length > 0) cfg.reporter = reporter as Config['reporter'];
}

/** The propagation formats asked for: the option, else (from env) the variable, else `jaeger`. */
export function propagationOf(options: InstrumentationTracerOptions | undefined, fromEnv: boolean, env: NodeJS.ProcessEnv = process.env): PropagationFormat[] {
  const given = options?.propagation;
  const source = given !== undefined ? 'propagation option' : fromEnv ? PROPAGATION_ENV : undefined;
  const value = given !== undefined ? given : fromEnv ? env[PROPAGATION_ENV] : undefined;
  const { formats, unknown } = parsePropagation(value);
  if (unknown.length > 0 && source !== undefined) {
    const text = Array.isArray(value) ? value.join(',') : String(value);
    reject(source, text, `names unknown formats (${unknown.join(', ')}; known: jaeger, w3c)`, `using ${formats.join(',')}`);
  }
  return formats;
}

/**
 * jaeger-client options with this package's additions: our logger unless
 * the user gave one, 128-bit trace ids when W3C is on. The result holds no
 * key of ours (jaeger passes options on).
 */
export function jaegerOptionsFor(options: Options, formats: readonly PropagationFormat[]): Options {
  const out: Options = { ...options };
  delete out.propagation;
  if (out.logger === undefined) out.logger = jaegerLogger;
  if (formats.includes('w3c') && out.traceId128bit === undefined) out.traceId128bit = true;
  return out;
}

/** Registers the codecs of `formats` on a fresh tracer (the jaeger ones are its own). */
export function applyPropagation(tracer: unknown, formats: readonly PropagationFormat[], options: Options): void {
  if (!formats.includes('w3c')) return;
  const contextKey = typeof options.contextKey === 'string' ? options.contextKey : undefined;
  const baggagePrefix = typeof options.baggagePrefix === 'string' ? options.baggagePrefix : undefined;
  try {
    if (!registerW3CCodec(tracer as CodecRegistry, { contextKey, baggagePrefix })) {
      logOnce('w3c:no-registry', 'W3C propagation is on, but the tracer has no codec registry (JAEGER_DISABLED?); nothing is propagated');
    }
  } catch (err) {
    warnOnce('w3c:register', 'could not register the W3C trace context codec; only Jaeger headers are used', err);
  }
}

function describeSampler(cfg: Config): string {
  const s = cfg.sampler;
  if (!s) return 'remote (jaeger-client default)';
  return `${String(s.type)} ${String(s.param)}`;
}

function describeTarget(cfg: Config, options: Options, env: NodeJS.ProcessEnv): string {
  if (options.reporter !== undefined) return 'the reporter given in code';
  const r = cfg.reporter ?? {};
  const endpoint = 'collectorEndpoint' in r ? r.collectorEndpoint : env.JAEGER_ENDPOINT || env.JAEGER_REPORTER_ENDPOINT;
  if (endpoint) return `jaeger collector ${String(endpoint)}`;
  const host = ('agentHost' in r ? r.agentHost : env.JAEGER_AGENT_HOST || env.JAEGER_REPORTER_AGENT_HOST) || 'localhost';
  const port = ('agentPort' in r ? r.agentPort : env.JAEGER_AGENT_PORT || env.JAEGER_REPORTER_AGENT_PORT) || 6832;
  return `jaeger agent udp ${String(host)}:${String(port)}`;
}

/** Remembers what a tracer is made with (after `withDefaults`), for `tracerSetup()`. */
export function noteSetup(config: jaeger.TracingConfig, options: Options, formats: PropagationFormat[], fromEnv: boolean, env: NodeJS.ProcessEnv = process.env): void {
  try {
    const cfg = config as Config;
    const disabled = cfg.disable === true || (fromEnv && (env.JAEGER_DISABLED === 'true' || env.JAEGER_DISABLE === 'true'));
    const sampler = fromEnv && !cfg.sampler && env.JAEGER_SAMPLER_TYPE ? `${env.JAEGER_SAMPLER_TYPE} ${env.JAEGER_SAMPLER_PARAM ?? ''}`.trim() : describeSampler(cfg);
    lastSetup = {
      serviceName: cfg.serviceName || (fromEnv ? env.JAEGER_SERVICE_NAME : undefined),
      sampler,
      target: describeTarget(cfg, options, fromEnv ? env : {}),
      propagation: formats,
      disabled,
    };
  } catch {
    lastSetup = undefined;
  }
}

/** What `initTracer` / `initTracerFromEnv` (src/tracer.ts) do before and after jaeger-client builds the tracer. */
export interface PreparedTracer {
  config: jaeger.TracingConfig;
  options: jaeger.TracingOptions;
  /** Registers the W3C codec when asked for, and remembers the setup (`config` as finally given to jaeger). */
  finish(tracer: unknown, config: jaeger.TracingConfig): void;
}

/**
 * Checks the environment (when `fromEnv`), picks the propagation formats,
 * and gives jaeger-client our logger and 128-bit ids where W3C is on.
 */
export function prepareTracer(
  config: jaeger.TracingConfig | undefined,
  options: (jaeger.TracingOptions & InstrumentationTracerOptions) | undefined,
  fromEnv: boolean,
): PreparedTracer {
  const given = (options ?? {}) as Options;
  const formats = propagationOf(given, fromEnv);
  const checked = fromEnv ? checkEnvironment(config ?? {}, given) : { config: { ...config }, options: given };
  const jaegerOptions = jaegerOptionsFor(checked.options, formats);
  return {
    config: checked.config,
    options: jaegerOptions,
    finish(tracer, finalConfig) {
      applyPropagation(tracer, formats, jaegerOptions);
      noteSetup(finalConfig, jaegerOptions, formats, fromEnv);
    },
  };
}
