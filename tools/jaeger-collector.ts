/**
 * A stand-in for the Jaeger collector's HTTP endpoint (what `JAEGER_ENDPOINT`
 * points at, `POST /api/traces`): decodes the Thrift `Batch` that
 * jaeger-client's HTTP sender posts (binary protocol, with the jaeger.thrift
 * IDL that jaeger-client ships) and keeps the spans and the requests. Used by
 * the suppression tests: the tracer's own posts must never become spans.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { spansOfBatch, type ReceivedSpan, type ThriftBatch } from './jaeger-agent';

interface CollectorThrift {
  Batch: { rw: { readFrom(buffer: Buffer, offset: number): { err: Error | null; value: ThriftBatch } } };
}

function loadJaegerThrift(): CollectorThrift {
  const jaegerMain = require.resolve('jaeger-client');
  // thriftrw is jaeger-client's own dependency: resolve it from there.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Thrift } = require(require.resolve('thriftrw', { paths: [jaegerMain] })) as {
    Thrift: new (options: object) => CollectorThrift;
  };
  return new Thrift({
    source: fs.readFileSync(path.join(path.dirname(jaegerMain), 'jaeger-idl', 'thrift', 'jaeger.thrift'), 'ascii'),
    allowOptionalArguments: true,
  });
}

export interface CollectorRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** Spans in this request's batch. */
  spans: number;
}

export interface JaegerCollector {
  port: number;
  /** `http://127.0.0.1:PORT/api/traces`: the value for `JAEGER_ENDPOINT`. */
  endpoint: string;
  spans: ReceivedSpan[];
  requests: CollectorRequest[];
  /** Bodies that could not be decoded. */
  errors: Error[];
  waitForSpans(n: number, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

/** Starts a collector stand-in on a random port of 127.0.0.1. */
export function startJaegerCollector(): Promise<JaegerCollector> {
  const thrift = loadJaegerThrift();
  const spans: ReceivedSpan[] = [];
  const requests: CollectorRequest[] = [];
  const errors: Error[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const record: CollectorRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, spans: 0 };
      requests.push(record);
      if (req.method !== 'POST' || !(req.url ?? '').startsWith('/api/traces')) {
        res.statusCode = 404;
        res.end();
        return;
      }
      const { err, value } = thrift.Batch.rw.readFrom(Buffer.concat(chunks), 0);
      if (err) {
        errors.push(err);
        res.statusCode = 400;
        res.end();
        return;
      }
      const received = spansOfBatch(value);
      record.spans = received.length;
      spans.push(...received);
      res.statusCode = 202;
      res.end();
    });
  });
  const sockets = new Set<import('net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        endpoint: `http://127.0.0.1:${port}/api/traces`,
        spans,
        requests,
        errors,
        async waitForSpans(n, timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (spans.length < n) {
            if (Date.now() > deadline) throw new Error(`collector got ${spans.length} spans, expected ${n}`);
            await new Promise((r) => setTimeout(r, 10));
          }
          return spans;
        },
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
