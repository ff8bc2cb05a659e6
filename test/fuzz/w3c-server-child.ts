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
import * as http from 'http';
import type { AddressInfo } from 'net';
import { getCurrentSpan, installPatches, registerW3CCodec } from '../../src';
import { BAGGAGE_LIMIT } from '../../src/constants';
import { parseTraceParent } from '../../src/w3c';
import * as jaeger from 'jaeger-client';
import type { Tracer } from 'opentracing';

interface Stats {
  handled: number;
  untrusted: number;
  untrustedForcing: number;
  untrustedBaggage: number;
  /** Trusted requests with a valid traceparent, and how many of them the server span continued. */
  validParents: number;
  continued: number;
  noServerSpan: number;
  handlerExceptions: number;
  uncaught: string[];
  downstreamErrors: string[];
  untrustedViolations: string[];
  /** Downstream headers that break the W3C formats or the bounds. */
  badDownstream: string[];
  heapBaseline?: number;
  heapEnd?: number;
}

const stats: Stats = {
  handled: 0,
  untrusted: 0,
  untrustedForcing: 0,
  untrustedBaggage: 0,
  validParents: 0,
  continued: 0,
  noServerSpan: 0,
  handlerExceptions: 0,
  uncaught: [],
  downstreamErrors: [],
  untrustedViolations: [],
  badDownstream: [],
};

process.on('uncaughtException', (err) => stats.uncaught.push(String(err?.stack ?? err).slice(0, 500)));
process.on('unhandledRejection', (err) => stats.uncaught.push(`unhandled rejection: ${String(err)}`.slice(0, 500)));

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

const gc = (globalThis as { gc?: () => void }).gc;
function heapAfterGc(): number {
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}

interface SinkView {
  traceparent?: string;
  uberTraceId?: string;
  tracestate?: string;
  baggage?: string;
  uberctx: number;
}

const TRACEPARENT_OUT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

const sink = http.createServer((req, res) => {
  const h = req.headers;
  const view: SinkView = {
    traceparent: h.traceparent as string | undefined,
    uberTraceId: h['uber-trace-id'] as string | undefined,
    tracestate: h.tracestate as string | undefined,
    baggage: h.baggage as string | undefined,
    uberctx: Object.keys(h).filter((k) => k.startsWith('uberctx-')).length,
  };
  req.resume();
  res.end(JSON.stringify(view));
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

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

const app = http.createServer((req, res) => {
  try {
    stats.handled++;
    const trusted = req.headers['x-trusted'] === 'yes';
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
    req.resume();
    http
      .get(`http://127.0.0.1:${(sink.address() as AddressInfo).port}/down`, { agent }, (down) => {
        let body = '';
        down.setEncoding('utf8');
        down.on('data', (c: string) => (body += c));
        down.on('end', () => {
          try {
            checkDownstream(req, trusted, JSON.parse(body) as SinkView);
            res.end('ok');
          } catch (err) {
            stats.handlerExceptions++;
            res.statusCode = 500;
            res.end(String(err));
          }
        });
      })
      .on('error', (err) => {
        stats.downstreamErrors.push(String(err));
        res.statusCode = 502;
        res.end();
      });
  } catch (err) {
    stats.handlerExceptions++;
    res.statusCode = 500;
    res.end(String(err));
  }
});

process.on('message', (msg: string) => {
  if (msg === 'baseline') {
    stats.heapBaseline = heapAfterGc();
    process.send!({ baseline: stats.heapBaseline });
  } else if (msg === 'report') {
    stats.heapEnd = heapAfterGc();
    process.send!({ stats });
  } else if (msg === 'exit') {
    agent.destroy();
    app.closeAllConnections();
    app.close();
    sink.close();
    tracer.close();
    process.disconnect();
  }
});

sink.listen(0, '127.0.0.1', () => {
  app.listen(0, '127.0.0.1', () => {
    process.send!({ port: (app.address() as AddressInfo).port });
  });
});
