/**
 * The skeleton of a fuzzed application (test/fuzz/*-child.ts), run as a child
 * process with `--expose-gc`: an http server whose handler makes one
 * downstream http call to a sink in the same process and checks what the sink
 * received, with the figures sent to the test process over IPC (`baseline`,
 * `report`, `exit`; see test/helpers/fuzz.ts for the other side).
 */
import * as http from 'http';
import type { AddressInfo } from 'net';

/** What every fuzzed application counts. */
export interface FuzzAppStats {
  handled: number;
  untrusted: number;
  /** Untrusted requests that tried to force sampling. */
  untrustedForcing: number;
  /** Untrusted requests that carried baggage. */
  untrustedBaggage: number;
  /** Requests whose handler saw no current span (the server span). */
  noServerSpan: number;
  handlerExceptions: number;
  uncaught: string[];
  downstreamErrors: string[];
  /** Untrusted requests that forced sampling, planted baggage or continued the caller's trace. */
  untrustedViolations: string[];
  heapBaseline?: number;
  heapEnd?: number;
}

/** The `uber-trace-id` fuzz (test/fuzz.test.ts, test/fuzz/server-child.ts). */
export interface JaegerFuzzStats extends FuzzAppStats {
  trusted: number;
  /** Downstream calls that carried more baggage than the bounds. */
  baggageOverBounds: string[];
  maxDownstreamBaggageBytes: number;
  maxDownstreamBaggageItems: number;
  spansStarted: number;
  spansFinished: number;
  doubleFinished: number;
}

/** The W3C fuzz (test/w3c-fuzz.test.ts, test/fuzz/w3c-server-child.ts). */
export interface W3CFuzzStats extends FuzzAppStats {
  /** Trusted requests with a valid traceparent, and how many of them the server span continued. */
  validParents: number;
  continued: number;
  /** Downstream headers that break the W3C formats or the bounds. */
  badDownstream: string[];
}

/** The counters every application starts from. */
export function initialStats(): FuzzAppStats {
  return {
    handled: 0,
    untrusted: 0,
    untrustedForcing: 0,
    untrustedBaggage: 0,
    noServerSpan: 0,
    handlerExceptions: 0,
    uncaught: [],
    downstreamErrors: [],
    untrustedViolations: [],
  };
}

export interface FuzzApp<S extends FuzzAppStats, V> {
  stats: S;
  /** What the sink tells the application about one downstream call it received. */
  sinkView(req: http.IncomingMessage): V;
  /** The application's own checks on one request, before its downstream call. */
  onRequest(req: http.IncomingMessage, trusted: boolean): void;
  /** The checks on what the sink received. */
  checkDownstream(req: http.IncomingMessage, trusted: boolean, view: V): void;
  /** Adds the last figures to `stats` before they are sent. */
  beforeReport?(): void;
  /** Closes the tracer. */
  close(): void;
}

const gc = (globalThis as { gc?: () => void }).gc;

function heapAfterGc(): number {
  if (!gc) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
}

/** Starts the application and the sink, and sends the test process `{ port }`. */
export function runFuzzApp<S extends FuzzAppStats, V>(fuzzed: FuzzApp<S, V>): void {
  const { stats } = fuzzed;
  process.on('uncaughtException', (err) => stats.uncaught.push(String(err?.stack ?? err).slice(0, 500)));
  process.on('unhandledRejection', (err) => stats.uncaught.push(`unhandled rejection: ${String(err)}`.slice(0, 500)));

  const sink = http.createServer((req, res) => {
    const view = fuzzed.sinkView(req);
    req.resume();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(view));
  });

  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

  const app = http.createServer((req, res) => {
    try {
      stats.handled++;
      const trusted = req.headers['x-trusted'] === 'yes';
      fuzzed.onRequest(req, trusted);
      req.resume();
      http
        .get(`http://127.0.0.1:${(sink.address() as AddressInfo).port}/down`, { agent }, (down) => {
          let body = '';
          down.setEncoding('utf8');
          down.on('data', (c: string) => (body += c));
          down.on('end', () => {
            try {
              fuzzed.checkDownstream(req, trusted, JSON.parse(body) as V);
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
      fuzzed.beforeReport?.();
      process.send!({ stats });
    } else if (msg === 'exit') {
      agent.destroy();
      app.closeAllConnections();
      app.close();
      sink.close();
      fuzzed.close();
      process.disconnect();
    }
  });

  sink.listen(0, '127.0.0.1', () => {
    app.listen(0, '127.0.0.1', () => {
      process.send!({ port: (app.address() as AddressInfo).port });
    });
  });
}
