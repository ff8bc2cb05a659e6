/**
 * The application under fuzzing, run as a child process (`--expose-gc`, so
 * that its heap can be measured after full collections, apart from the test
 * runner's): an http server under the `http` and `http-server` patches whose
 * handler makes one downstream http call to a sink (in this process too) and
 * checks what the sink received. The test process sends it hostile trace
 * headers (test/fuzz.test.ts) and asks for the figures over IPC.
 *
 * Trust: a request is trusted when it carries `x-trusted: yes`. The tracer
 * never samples by itself (const 0), so a sampled span can only come from a
 * caller that forced it: allowed for trusted callers, never for the others.
 */
import type * as http from 'http';
import { getCurrentSpan, installPatches } from '../../src';
import { BAGGAGE_LIMIT } from '../../src/constants';
import { initialStats, runFuzzApp, type JaegerFuzzStats } from '../helpers/fuzz-app';
import { createTestTracer } from '../helpers/tracing';

const stats: JaegerFuzzStats = {
  ...initialStats(),
  trusted: 0,
  baggageOverBounds: [],
  maxDownstreamBaggageBytes: 0,
  maxDownstreamBaggageItems: 0,
  spansStarted: 0,
  spansFinished: 0,
  doubleFinished: 0,
};

const t = createTestTracer({ sampled: false, accounted: false, serviceName: 'fuzz' });
installPatches(['http', 'http-server'], {
  tracer: t.tracer,
  'http-server': { trustIncomingContext: (req) => req.headers['x-trusted'] === 'yes' },
});

/** What the sink received on one downstream call. */
interface SinkView {
  traceHeader?: string;
  baggageItems: number;
  baggageBytes: number;
}

function sinkView(req: http.IncomingMessage): SinkView {
  let items = 0;
  let bytes = 0;
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('uberctx-')) {
      items++;
      bytes += name.length + String(value).length;
    }
  }
  return { traceHeader: req.headers['uber-trace-id'] as string | undefined, baggageItems: items, baggageBytes: bytes };
}

/** The caller's trace id, when its `uber-trace-id` is well formed enough to be continued. */
function incomingTraceId(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^([0-9a-f]{1,32}):/i.exec(header);
  return m ? m[1].toLowerCase().replace(/^0+/, '') : undefined;
}

function forcing(req: http.IncomingMessage): boolean {
  const ctx = req.headers['uber-trace-id'];
  const flags = typeof ctx === 'string' ? ctx.split(':')[3] : undefined;
  const sampledFlag = flags !== undefined && (parseInt(flags, 16) & 1) === 1;
  return sampledFlag || req.headers['jaeger-debug-id'] !== undefined;
}

function checkDownstream(req: http.IncomingMessage, trusted: boolean, view: SinkView): void {
  stats.maxDownstreamBaggageBytes = Math.max(stats.maxDownstreamBaggageBytes, view.baggageBytes);
  stats.maxDownstreamBaggageItems = Math.max(stats.maxDownstreamBaggageItems, view.baggageItems);
  if (view.baggageBytes > BAGGAGE_LIMIT.MAX_BYTES || view.baggageItems > BAGGAGE_LIMIT.MAX_ITEMS) {
    stats.baggageOverBounds.push(`${view.baggageItems} items, ${view.baggageBytes} bytes`);
  }
  if (trusted) return;
  const problems: string[] = [];
  if (view.baggageItems > 0) problems.push(`${view.baggageItems} baggage items downstream`);
  const parts = (view.traceHeader ?? '').split(':');
  if (parts.length === 4 && (parseInt(parts[3], 16) & 1) === 1) problems.push(`downstream call sampled (${view.traceHeader})`);
  const callerTrace = incomingTraceId(req.headers['uber-trace-id']);
  if (callerTrace !== undefined && parts[0]?.replace(/^0+/, '') === callerTrace) problems.push("continued the caller's trace");
  if (problems.length > 0) stats.untrustedViolations.push(problems.join('; '));
}

function onRequest(req: http.IncomingMessage, trusted: boolean): void {
  if (stats.handled % 500 === 0) t.clear(); // the in-memory reporter would keep every sampled span
  if (trusted) stats.trusted++;
  else {
    stats.untrusted++;
    if (forcing(req)) stats.untrustedForcing++;
    if (Object.keys(req.headers).some((h) => h.startsWith('uberctx-') || h === 'jaeger-baggage')) stats.untrustedBaggage++;
  }
  const span = getCurrentSpan();
  if (span === undefined) stats.noServerSpan++;
  else if (!trusted) {
    const ctx = span.context() as { isSampled?: () => boolean; isDebug?: () => boolean; baggage?: object };
    if (ctx.isSampled?.() || ctx.isDebug?.()) stats.untrustedViolations.push('server span sampled or debug');
    if (ctx.baggage && Object.keys(ctx.baggage).length > 0) stats.untrustedViolations.push('server span has the caller baggage');
  }
}

runFuzzApp({
  stats,
  sinkView,
  onRequest,
  checkDownstream,
  beforeReport: () => {
    stats.spansStarted = t.accounting.started;
    stats.spansFinished = t.accounting.finished;
    stats.doubleFinished = t.accounting.doubleFinished;
  },
  close: () => t.close(),
});
