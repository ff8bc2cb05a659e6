/**
 * The application under the W3C fuzz (test/w3c-fuzz.test.ts), a child
 * process run with `--expose-gc`: an http server under the `http` and
 * `http-server` patches, with a jaeger tracer that reads and writes W3C
 * trace context (src/w3c.ts) and never samples by itself (const 0). Its
 * handler makes one downstream call to a sink in this process, which checks
 * the trace headers it receives.
 *
 * Trust: a request is trusted when it carries `x-trusted: yes`.
 */
import type * as http from 'http';
import { getCurrentSpan, installPatches, registerW3CCodec } from '../../src';
import { BAGGAGE_LIMIT } from '../../src/constants';
import { parseTraceParent } from '../../src/w3c';
import * as jaeger from 'jaeger-client';
import type { Tracer } from 'opentracing';
import { initialStats, runFuzzApp, type W3CFuzzStats } from '../helpers/fuzz-app';

const stats: W3CFuzzStats = { ...initialStats(), validParents: 0, continued: 0, badDownstream: [] };

/** Spans are dropped as they finish: the heap measures the instrumentation, not a span store. */
const dropping = { report(): void {}, close(cb?: () => void): void { cb?.(); }, setProcess(): void {} };
const tracer = jaeger.initTracer(
  { serviceName: 'w3c-fuzz', sampler: { type: 'const', param: 0 } },
  { reporter: dropping as unknown as jaeger.Reporter, traceId128bit: true } as jaeger.TracingOptions,
);
registerW3CCodec(tracer);
installPatches(['http', 'http-server'], {
  tracer: tracer as unknown as Tracer,
  'http-server': { trustIncomingContext: (req) => req.headers['x-trusted'] === 'yes' },
});

interface SinkView {
  traceparent?: string;
  uberTraceId?: string;
  tracestate?: string;
  baggage?: string;
  uberctx: number;
}

const TRACEPARENT_OUT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

function sinkView(req: http.IncomingMessage): SinkView {
  const h = req.headers;
  return {
    traceparent: h.traceparent as string | undefined,
    uberTraceId: h['uber-trace-id'] as string | undefined,
    tracestate: h.tracestate as string | undefined,
    baggage: h.baggage as string | undefined,
    uberctx: Object.keys(h).filter((k) => k.startsWith('uberctx-')).length,
  };
}

function checkDownstream(req: http.IncomingMessage, trusted: boolean, v: SinkView): void {
  const bad: string[] = [];
  if (v.traceparent === undefined || !TRACEPARENT_OUT.test(v.traceparent)) bad.push(`traceparent ${String(v.traceparent)}`);
  if (v.uberTraceId === undefined) bad.push('no uber-trace-id');
  else if (v.traceparent !== undefined && v.traceparent.slice(3, 35).replace(/^0+/, '') !== v.uberTraceId.split(':')[0]?.replace(/^0+/, '')) {
    bad.push(`traceparent ${v.traceparent} and uber-trace-id ${v.uberTraceId} disagree`);
  }
  if (v.tracestate !== undefined && (v.tracestate.length > 512 || v.tracestate.split(',').length > 32)) bad.push(`tracestate of ${v.tracestate.length} chars`);
  if (v.baggage !== undefined && (v.baggage.length > BAGGAGE_LIMIT.MAX_BYTES + 64 * 2 || v.baggage.split(',').length > BAGGAGE_LIMIT.MAX_ITEMS)) {
    bad.push(`baggage of ${v.baggage.length} chars`);
  }
  if (bad.length > 0) stats.badDownstream.push(bad.join('; '));
  if (trusted) return;
  const problems: string[] = [];
  if (v.baggage !== undefined || v.uberctx > 0) problems.push('baggage downstream');
  if (v.traceparent?.endsWith('-01')) problems.push('downstream call sampled');
  if (v.tracestate !== undefined) problems.push('tracestate forwarded');
  const incoming = parseTraceParent(req.headers.traceparent);
  if (incoming !== undefined && v.traceparent?.slice(3, 35) === incoming.traceId) problems.push("continued the caller's trace");
  if (problems.length > 0) stats.untrustedViolations.push(problems.join('; '));
}

function onRequest(req: http.IncomingMessage, trusted: boolean): void {
  const incoming = typeof req.headers.traceparent === 'string' ? parseTraceParent(req.headers.traceparent) : undefined;
  const span = getCurrentSpan();
  const ctx = span?.context() as { traceIdStr?: string; isSampled?: () => boolean; baggage?: object } | undefined;
  if (span === undefined) stats.noServerSpan++;
  if (!trusted) {
    stats.untrusted++;
    if (incoming?.sampled || req.headers['jaeger-debug-id'] !== undefined) stats.untrustedForcing++;
    if (req.headers.baggage !== undefined) stats.untrustedBaggage++;
    if (ctx?.isSampled?.()) stats.untrustedViolations.push('server span sampled');
    if (ctx?.baggage && Object.keys(ctx.baggage).length > 0) stats.untrustedViolations.push('server span has the caller baggage');
  } else if (incoming !== undefined && req.headers['uber-trace-id'] === undefined) {
    stats.validParents++;
    if (ctx?.traceIdStr?.padStart(32, '0') === incoming.traceId) stats.continued++;
  }
}

runFuzzApp({ stats, sinkView, onRequest, checkDownstream, close: () => tracer.close() });
