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
import * as http from 'http';
import type { AddressInfo } from 'net';
import { getCurrentSpan, installPatches } from '../../src';
import { BAGGAGE_LIMIT } from '../../src/constants';
import { createTestTracer } from '../helpers/tracing';

interface Stats {
  handled: number;
  trusted: number;
  untrusted: number;
  /** Untrusted requests that carried a sampled flag or a debug id: attempts to force sampling. */
  untrustedForcing: number;
  /** Untrusted requests that carried baggage. */
  untrustedBaggage: number;
  /** Requests whose handler saw no current span (the server span). */
  noServerSpan: number;
  handlerExceptions: number;
  uncaught: string[];
  downstreamErrors: string[];
  /** Untrusted requests whose server span was sampled, or whose downstream call was sampled, carried baggage, or continued the caller's trace. */
  untrustedViolations: string[];
  /** Downstream calls that carried more baggage than the bounds. */
  baggageOverBounds: string[];
  maxDownstreamBaggageBytes: number;
  maxDownstreamBaggageItems: number;
  heapBaseline?: number;
  heapEnd?: number;
  spansStarted: number;
  spansFinished: number;
  doubleFinished: number;
}

const stats: Stats = {
  handled: 0,
  trusted: 0,
  untrusted: 0,
  untrustedForcing: 0,
  untrustedBaggage: 0,
  noServerSpan: 0,
  handlerExceptions: 0,
  uncaught: [],
  downstreamErrors: [],
  untrustedViolations: [],
  baggageOverBounds: [],
  maxDownstreamBaggageBytes: 0,
  maxDownstreamBaggageItems: 0,
  spansStarted: 0,
  spansFinished: 0,
  doubleFinished: 0,
};

process.on('uncaughtException', (err) => stats.uncaught.push(String(err?.stack ?? err).slice(0, 500)));
process.on('unhandledRejection', (err) => stats.uncaught.push(`unhandled rejection: ${String(err)}`.slice(0, 500)));

const t = createTestTracer({ sampled: false, accounted: false, serviceName: 'fuzz' });
installPatches(['http', 'http-server'], {
  tracer: t.tracer,
  'http-server': { trustIncomingContext: (req) => req.headers['x-trusted'] === 'yes' },
});

const gc = (globalThis as { gc?: () => void }).gc;

function heapAfterGc(): number {
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}

/** What the sink received on one downstream call. */
interface SinkView {
  traceHeader?: string;
  baggageItems: number;
  baggageBytes: number;
}

const sink = http.createServer((req, res) => {
  let items = 0;
  let bytes = 0;
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('uberctx-')) {
      items++;
      bytes += name.length + String(value).length;
    }
  }
  const view: SinkView = { traceHeader: req.headers['uber-trace-id'] as string | undefined, baggageItems: items, baggageBytes: bytes };
  req.resume();
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(view));
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

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

const app = http.createServer((req, res) => {
  try {
    stats.handled++;
    if (stats.handled % 500 === 0) t.clear(); // the in-memory reporter would keep every sampled span
    const trusted = req.headers['x-trusted'] === 'yes';
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
    stats.spansStarted = t.accounting.started;
    stats.spansFinished = t.accounting.finished;
    stats.doubleFinished = t.accounting.doubleFinished;
    process.send!({ stats });
  } else if (msg === 'exit') {
    agent.destroy();
    app.closeAllConnections();
    app.close();
    sink.close();
    t.close();
    process.disconnect();
  }
});

sink.listen(0, '127.0.0.1', () => {
  app.listen(0, '127.0.0.1', () => {
    process.send!({ port: (app.address() as AddressInfo).port });
  });
});
