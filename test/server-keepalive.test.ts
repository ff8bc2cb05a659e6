/**
 * A server span is current only while its request is handled: on a
 * keep-alive connection, what runs on the connection after the response
 * (a `clientError` listener for a malformed next request, a `dropRequest`
 * listener under `maxRequestsPerSocket`, a request after uninstall) never
 * sees the finished span of the request before.
 */
import assert from 'assert';
import * as http from 'http';
import * as net from 'net';
import type { Span } from 'opentracing';
import { getCurrentSpan, installPatches, uninstallAllPatches } from '../src';
import { createTestTracer, spanId, waitFor, type TestTracer } from './helpers/tracing';

/** A raw keep-alive connection: write bytes, wait for `n` responses' worth of text. */
async function connect(port: number): Promise<{ send(text: string, until: RegExp): Promise<string>; close(): void }> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (received += d));
  socket.on('error', () => undefined);
  return {
    async send(text, until) {
      const from = received.length;
      socket.write(text);
      await waitFor(() => until.test(received.slice(from)) || socket.destroyed, 3000, `reply to ${JSON.stringify(text.slice(0, 20))}`);
      return received.slice(from);
    },
    close: () => socket.destroy(),
  };
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
const REPLY = /HTTP\/1\.1 \d{3}[^]*?\r\n\r\n(ok|done)/;

describe('http-server: no span outlives its request on a keep-alive connection', () => {
  let t: TestTracer;
  let server: http.Server;
  let port: number;
  const inHandler: Array<Span | undefined> = [];
  const startedByHandler: Array<Span | undefined> = [];
  before(() => {
    t = createTestTracer();
  });
  beforeEach(async () => {
    installPatches(['http-server'], { tracer: t.tracer });
    inHandler.length = 0;
    startedByHandler.length = 0;
    server = http.createServer((req, res) => {
      inHandler.push(getCurrentSpan());
      setImmediate(() => {
        startedByHandler.push(getCurrentSpan());
        res.end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  afterEach(async () => {
    uninstallAllPatches();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('a clientError listener (malformed next request) sees no span', async () => {
    const seen: Array<Span | undefined | 'none'> = [];
    server.on('clientError', (err, socket: net.Socket) => {
      seen.push(getCurrentSpan() ?? 'none');
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    const c = await connect(port);
    try {
      await c.send(GET('/first'), REPLY);
      await c.send('BAD REQUEST LINE \x00\r\n\r\n', /400/);
    } finally {
      c.close();
    }
    assert.strictEqual(inHandler.length, 1);
    assert.ok(inHandler[0] !== undefined, 'the handler saw its span');
    assert.deepStrictEqual(seen, ['none']);
  });

  it('a dropRequest listener (maxRequestsPerSocket) sees no span', async () => {
    server.maxRequestsPerSocket = 1;
    const seen: Array<Span | undefined | 'none'> = [];
    server.on('dropRequest', () => seen.push(getCurrentSpan() ?? 'none'));
    const c = await connect(port);
    try {
      // Pipelined: the second request arrives on the socket that already served its one request.
      await c.send(GET('/first') + GET('/second'), /503/);
    } finally {
      c.close();
    }
    assert.strictEqual(inHandler.length, 1);
    assert.deepStrictEqual(seen, ['none']);
  });

  it('after uninstallAllPatches, the next request on the connection sees no span, and neither does what it starts', async () => {
    const c = await connect(port);
    try {
      await c.send(GET('/first'), REPLY);
      uninstallAllPatches();
      await c.send(GET('/second'), REPLY);
    } finally {
      c.close();
    }
    assert.strictEqual(inHandler.length, 2);
    assert.ok(inHandler[0] !== undefined);
    assert.strictEqual(inHandler[1], undefined, `saw span ${inHandler[1] && spanId(inHandler[1])}`);
    assert.ok(startedByHandler[0] === inHandler[0]);
    assert.strictEqual(startedByHandler[1], undefined);
  });

  it('a second traced request on the connection sees its own span, not the first one', async () => {
    const c = await connect(port);
    try {
      await c.send(GET('/first'), REPLY);
      await c.send(GET('/second'), REPLY);
    } finally {
      c.close();
    }
    assert.strictEqual(inHandler.length, 2);
    assert.ok(inHandler[0] && inHandler[1] && spanId(inHandler[0]) !== spanId(inHandler[1]));
  });
});
