/**
 * Requests for the server-side tests: through Node's http client (which the
 * `http` patch may trace), or written byte by byte on a raw socket (never
 * traced, any header a hostile client could send), and a way to see what
 * reaches `process.on('uncaughtException')` without mocha taking it.
 */
import * as http from 'http';
import * as net from 'net';
import { readBody } from './servers';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request with Node's http client; resolves with the whole response. */
export function request(
  url: string,
  options: http.RequestOptions & { body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, options, (res) => {
      readBody(res).then((body) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }), reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface RawReply {
  /** Status of the first response, 0 when none came. */
  status: number;
  /** Everything the server wrote. */
  text: string;
  /** The client socket's local port (the server's peer.port). */
  localPort: number;
}

/**
 * Writes `head` (request line and headers, `\r\n` separated, without the
 * final blank line) and `body` on a fresh TCP connection, with
 * `Connection: close`, and reads until the server closes.
 */
export function rawRequest(port: number, head: string, body = ''): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    let localPort = 0;
    socket.setEncoding('latin1');
    socket.on('connect', () => {
      localPort = socket.localPort ?? 0;
      const length = body ? `\r\nContent-Length: ${Buffer.byteLength(body, 'latin1')}` : '';
      socket.write(Buffer.from(`${head}\r\nConnection: close${length}\r\n\r\n${body}`, 'latin1'));
    });
    socket.on('data', (d: string) => (text += d));
    socket.on('error', reject);
    socket.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 0, text, localPort });
    });
  });
}

/**
 * Sends `head` on a raw socket and destroys the socket once `until` resolves
 * (a client that goes away early). Resolves when the socket is closed.
 */
export function abandonRequest(port: number, head: string, until: Promise<unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => {
      socket.write(`${head}\r\n\r\n`);
      until.then(
        () => socket.destroy(),
        () => socket.destroy(),
      );
    });
    socket.on('data', () => undefined);
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
}

/**
 * Runs `fn` with mocha's `uncaughtException` listeners replaced by one that
 * records the errors, as an application's own handler would; puts mocha's back.
 */
export async function withUncaughtExceptions<T>(fn: (errors: unknown[]) => Promise<T>): Promise<T> {
  const saved = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  const errors: unknown[] = [];
  const record = (err: unknown): void => {
    errors.push(err);
  };
  process.on('uncaughtException', record);
  try {
    return await fn(errors);
  } finally {
    process.removeListener('uncaughtException', record);
    for (const listener of saved) process.on('uncaughtException', listener);
  }
}

/** A promise and its resolve function. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
