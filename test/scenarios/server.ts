/**
 * Differential scenarios for the server patch: the application is an http
 * server's handler, the caller a raw TCP client sending the very same bytes
 * in every run (trusted and hostile trace headers included). Compared: what
 * the handler sees (method, URL, headers, body events, `this`), the events of
 * its response, and the bytes the caller gets back (less the Date header).
 */
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as net from 'net';
import { TAG } from '../../src/constants';
import type { Recorder, Scenario } from '../helpers/differential';
import { tag, type JaegerSpan } from '../helpers/tracing';
import type { ScenarioEnv } from './env';

type Handler = (rec: Recorder, req: http.IncomingMessage, res: http.ServerResponse, env: ScenarioEnv) => void;

const TRUSTED_CONTEXT = ['uber-trace-id: 5e3a1b2c4d5e6f70:1a2b3c4d5e6f7081:0:1', 'uberctx-tenant: acme'];
const HOSTILE_CONTEXT = [
  'uber-trace-id: zz:%E2%82:-1:ffffffffffffffffffff',
  'jaeger-debug-id: \u00e9\u00e9',
  'jaeger-baggage: a b=1, k%0d%0aX: y=2',
  `uberctx-big: ${'x'.repeat(9000)}`,
];

/** A raw request: request line, headers, blank line, body. */
function rawRequest(method: string, path: string, headers: string[], body = ''): string {
  const all = ['host: 127.0.0.1', ...headers];
  if (body) all.push(`content-length: ${Buffer.byteLength(body)}`);
  return `${method} ${path} HTTP/1.1\r\n${all.join('\r\n')}\r\n\r\n${body}`;
}

/** The response bytes, without the Date header (the only part that differs from run to run). */
function stable(response: string): string {
  return response.replace(/^date: .*\r\n/gim, '');
}

/** What the handler sees, and the events of its request and response. */
function observeServerSide(rec: Recorder, req: http.IncomingMessage, res: http.ServerResponse, server: http.Server): void {
  rec.event('request', { method: req.method, url: req.url, headers: req.headers, httpVersion: req.httpVersion });
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => rec.event('req:end', body));
  req.on('aborted', () => rec.event('req:aborted'));
  req.on('error', (err) => rec.error('req:error', err));
  req.on('close', () => rec.event('req:close'));
  res.on('finish', () => rec.event('res:finish'));
  res.on('close', () => rec.event('res:close', { writableFinished: res.writableFinished }));
  void server;
}

interface RawExchange {
  /** Raw request chunks, written one after the other (a pause between them). */
  chunks: string[];
  /** Destroy the client socket this many ms after the last chunk (default: wait for the server to close or the response to end). */
  destroyAfterMs?: number;
  /** Close when the response looks complete (`Content-Length` read, or the last chunk of a chunked body). */
  responses?: number;
}

/** Runs one server for the scenario, sends `exchange`, records both sides; resolves when both are done. */
async function serve(rec: Recorder, env: ScenarioEnv, handler: Handler, exchange: RawExchange, onServer?: (server: http.Server) => void): Promise<void> {
  let handled = 0;
  let serverDone: () => void = () => undefined;
  const allClosed = new Promise<void>((resolve) => (serverDone = resolve));
  const expected = exchange.responses ?? 1;
  if (expected === 0) serverDone();
  const server = http.createServer(function (this: unknown, req, res) {
    rec.event('handler this is the server', this === server);
    observeServerSide(rec, req, res, server);
    res.on('close', () => {
      if (++handled === expected) serverDone();
    });
    handler(rec, req, res, env);
  });
  onServer?.(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const received = await new Promise<string>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    let lastData = Date.now();
    const finish = (): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(data);
    };
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      data += chunk;
      lastData = Date.now();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.on('connect', async () => {
      for (let i = 0; i < exchange.chunks.length; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 20));
        if (!done) socket.write(exchange.chunks[i]);
      }
      if (exchange.destroyAfterMs !== undefined) {
        setTimeout(finish, exchange.destroyAfterMs);
        return;
      }
      // Every response has been handed to the socket: read until the connection is quiet.
      await Promise.race([allClosed, new Promise((r) => setTimeout(r, 2000))]);
      lastData = Math.max(lastData, Date.now());
      while (!done && Date.now() - lastData < 30) await new Promise((r) => setTimeout(r, 10));
      finish();
    });
  });
  rec.event('client received', stable(received));
  await Promise.race([allClosed, new Promise((r) => setTimeout(r, 2000))]);
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

/** Spans of the server patch finished during the run. */
function serverSpans(finished: JaegerSpan[]): JaegerSpan[] {
  return finished.filter((s) => tag(s, TAG.SPAN_KIND) === 'server');
}

const jsonEcho: Handler = (_rec, req, res) => {
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('content-length', String(Buffer.byteLength(JSON.stringify({ url: req.url }))));
    res.end(JSON.stringify({ url: req.url }));
  });
};

export function serverScenarios(env: ScenarioEnv): Scenario[] {
  const scenarios: Array<Omit<Scenario, 'spansOf'>> = [
    {
      name: 'GET from a trusted caller with trace context and baggage',
      run: (rec) => serve(rec, env, jsonEcho, { chunks: [rawRequest('GET', '/users/1?x=1', TRUSTED_CONTEXT)] }),
    },
    {
      name: 'GET with hostile trace headers (malformed context, debug id, invalid baggage key, 9 KB of baggage)',
      run: (rec) => serve(rec, env, jsonEcho, { chunks: [rawRequest('GET', '/hostile', HOSTILE_CONTEXT)] }),
    },
    {
      name: 'POST whose body arrives in three chunks',
      run: (rec) => {
        const head = `POST /upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 15\r\n${TRUSTED_CONTEXT.join('\r\n')}\r\n\r\n`;
        return serve(rec, env, jsonEcho, { chunks: [head + 'hello', ' big ', 'world'] });
      },
    },
    {
      name: 'the handler answers 500 with a streamed, chunked body',
      run: (rec) =>
        serve(
          rec,
          env,
          (_rec, req, res) => {
            req.resume();
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.write('part one, ');
            setTimeout(() => res.end('part two'), 10);
          },
          { chunks: [rawRequest('GET', '/fails', TRUSTED_CONTEXT)] },
        ),
    },
    {
      name: 'HEAD request',
      run: (rec) => serve(rec, env, jsonEcho, { chunks: [rawRequest('HEAD', '/head', [])] }),
    },
    {
      name: 'two requests on one keep-alive connection',
      run: (rec) =>
        serve(rec, env, jsonEcho, { chunks: [rawRequest('GET', '/one', TRUSTED_CONTEXT), rawRequest('GET', '/two', HOSTILE_CONTEXT.slice(0, 2))], responses: 2 }),
    },
    {
      name: 'two pipelined requests in one packet, the second with a body',
      run: (rec) =>
        serve(rec, env, jsonEcho, {
          chunks: [rawRequest('GET', '/first', TRUSTED_CONTEXT) + rawRequest('POST', '/second', HOSTILE_CONTEXT.slice(0, 3), 'payload')],
          responses: 2,
        }),
    },
    {
      name: 'the caller goes away before the response',
      run: (rec) =>
        serve(
          rec,
          env,
          (_rec, req, res) => {
            req.resume();
            const timer = setTimeout(() => res.end('too late'), 300);
            res.on('close', () => clearTimeout(timer));
          },
          { chunks: [rawRequest('GET', '/slow', TRUSTED_CONTEXT)], destroyAfterMs: 40 },
        ),
    },
    {
      name: 'the caller goes away in the middle of the request body',
      run: (rec) =>
        serve(
          rec,
          env,
          (_rec, req, res) => {
            req.on('end', () => res.end('never'));
          },
          { chunks: [`PUT /body HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\nonly part`], destroyAfterMs: 40 },
        ),
    },
    {
      name: 'Expect: 100-continue',
      run: (rec) =>
        serve(rec, env, jsonEcho, {
          chunks: [`POST /expect HTTP/1.1\r\nhost: 127.0.0.1\r\nexpect: 100-continue\r\ncontent-length: 4\r\n${TRUSTED_CONTEXT[0]}\r\n\r\n`, 'body'],
        }),
    },
    {
      name: 'the handler calls a downstream service and answers with its status',
      run: (rec) =>
        serve(
          rec,
          env,
          (r, req, res) => {
            req.resume();
            http
              .get(`${env.http.origin}/status/503`, (down) => {
                r.event('downstream response', down.statusCode);
                down.resume();
                down.on('end', () => {
                  res.statusCode = down.statusCode ?? 0;
                  res.end('downstream said so');
                });
              })
              .on('error', (err) => {
                r.error('downstream error', err);
                res.statusCode = 502;
                res.end();
              });
          },
          { chunks: [rawRequest('GET', '/proxy', TRUSTED_CONTEXT)] },
        ),
    },
    {
      name: 'a malformed request (Node answers 400, no handler)',
      spans: 0,
      run: (rec) => serve(rec, env, jsonEcho, { chunks: ['GET /bad HTTP/1.1\r\nhost: 127.0.0.1\r\nbad header line\r\n\r\n'], responses: 0 }),
    },
  ];
  const counted: Record<string, number> = {
    'two requests on one keep-alive connection': 2,
    'two pipelined requests in one packet, the second with a body': 2,
    // the downstream test server is an http server too: its own server span
    'the handler calls a downstream service and answers with its status': 2,
  };
  return scenarios.map((s) => ({
    ...s,
    name: `http-server: ${s.name}`,
    spans: s.spans ?? counted[s.name] ?? 1,
    spansOf: serverSpans,
  }));
}
