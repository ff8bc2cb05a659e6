/**
 * Local servers started by the tests: plain http and https (with a
 * certificate the tests make with openssl), recording what they receive.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface TestServer {
  port: number;
  /** `http://127.0.0.1:PORT` (or https). */
  origin: string;
  received: Received[];
  server: http.Server | https.Server;
  close(): Promise<void>;
}

/** Default handler: `/status/NNN` answers NNN, `/slow/MS` waits, `/redirect/N` redirects N times, else 200 "ok". */
export const defaultHandler: Handler = (req, res) => {
  const url = req.url ?? '/';
  const status = /^\/status\/(\d{3})/.exec(url);
  if (status) {
    res.statusCode = Number(status[1]);
    res.end(`status ${status[1]}`);
    return;
  }
  const slow = /^\/slow\/(\d+)/.exec(url);
  if (slow) {
    const timer = setTimeout(() => res.end('slow'), Number(slow[1]));
    res.on('close', () => clearTimeout(timer));
    return;
  }
  const redirect = /^\/redirect\/(\d+)/.exec(url);
  if (redirect) {
    const n = Number(redirect[1]);
    res.statusCode = 302;
    res.setHeader('location', n > 1 ? `/redirect/${n - 1}` : '/');
    res.end();
    return;
  }
  if (url.startsWith('/destroy')) {
    req.socket.destroy();
    return;
  }
  if (url.startsWith('/partial')) {
    res.writeHead(200, { 'content-length': '100' });
    res.write('only part');
    setTimeout(() => req.socket.destroy(), 20);
    return;
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ ok: true, path: url }));
};

function listen(server: http.Server | https.Server, protocol: string, received: Received[]): Promise<TestServer> {
  const sockets = new Set<import('net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        port,
        origin: `${protocol}://127.0.0.1:${port}`,
        received,
        server,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

function recording(handler: Handler, received: Received[]): Handler {
  return (req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  };
}

export function startHttpServer(handler: Handler = defaultHandler): Promise<TestServer> {
  const received: Received[] = [];
  return listen(http.createServer(recording(handler, received)), 'http', received);
}

let cachedCert: { key: string; cert: string } | undefined;

/** A self-signed certificate for 127.0.0.1 / localhost, made once per run with openssl. */
export function testCertificate(): { key: string; cert: string } {
  if (cachedCert) return cachedCert;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oti-cert-'));
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    cachedCert = {
      key: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'),
      cert: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
    };
    return cachedCert;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function startHttpsServer(handler: Handler = defaultHandler): Promise<TestServer> {
  const received: Received[] = [];
  return listen(https.createServer(testCertificate(), recording(handler, received)), 'https', received);
}

/** Reads a whole response body. */
export function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => (body += c));
    res.on('end', () => resolve(body));
    res.on('error', reject);
  });
}
