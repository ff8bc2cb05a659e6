/**
 * The benchmark's peer process: a keep-alive HTTP server (a tiny fixed body),
 * the same over TLS (a self-signed certificate for 127.0.0.1 made at start by
 * `openssl`), s3rver (S3 on loopback, a temporary directory, one bucket with
 * one small object), and a UDP sink standing in for the Jaeger agent (it counts datagrams and
 * bytes, and decodes nothing, so that the measured process pays nothing for
 * it). Runs in its own process, so the CPU time the measured process reports
 * is the client's alone.
 *
 * Prints one JSON line `{ httpPort, udpPort, httpsPort, httpsCa, s3Port, s3Bucket }` when ready; on a line `stats`
 * on stdin it answers `{ datagrams, bytes }`; exits when stdin closes.
 */
import { execFileSync } from 'child_process';
import * as dgram from 'dgram';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';

const body = Buffer.from('{"ok":true}');

const answer = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  // Drain the request (GETs carry no body) and answer at once.
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
};
const server = http.createServer(answer);
server.keepAliveTimeout = 60_000;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'otbench-'));
function selfSigned(): { key: string; cert: string } {
  const keyFile = path.join(tmp, 'key.pem');
  const certFile = path.join(tmp, 'cert.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-keyout', keyFile, '-out', certFile,
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  return { key: fs.readFileSync(keyFile, 'utf8'), cert: fs.readFileSync(certFile, 'utf8') };
}
const tls = selfSigned();
const secure = https.createServer(tls, answer);
secure.keepAliveTimeout = 60_000;

/* eslint-disable @typescript-eslint/no-require-imports */
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => { run(): Promise<AddressInfo>; close(): Promise<void> };
/* eslint-enable @typescript-eslint/no-require-imports */
const s3Bucket = 'otbench';
const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(tmp, 's3'), configureBuckets: [{ name: s3Bucket }] });

/** One small object for the GetObject calls (s3rver knows the access key id S3RVER and checks no signature). */
async function putObject(port: number): Promise<void> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { S3Client, PutObjectCommand } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const client = new S3Client({
    region: 'eu-west-3',
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await client.send(new PutObjectCommand({ Bucket: s3Bucket, Key: 'bench-object', Body: 'hello' }));
  client.destroy();
}

const udp = dgram.createSocket('udp4');
let datagrams = 0;
let bytes = 0;
udp.on('message', (msg) => {
  datagrams++;
  bytes += msg.length;
});

let lineBuffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  lineBuffer += chunk;
  let nl: number;
  while ((nl = lineBuffer.indexOf('\n')) !== -1) {
    const line = lineBuffer.slice(0, nl).trim();
    lineBuffer = lineBuffer.slice(nl + 1);
    if (line === 'stats') process.stdout.write(`${JSON.stringify({ datagrams, bytes })}\n`);
  }
});
process.stdin.on('end', () => {
  server.closeAllConnections();
  server.close();
  secure.closeAllConnections();
  secure.close();
  udp.close();
  void s3.close().finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
});

const listening = (s: http.Server | https.Server): Promise<number> =>
  new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));

async function start(): Promise<void> {
  const httpPort = await listening(server);
  const httpsPort = await listening(secure);
  const udpPort = await new Promise<number>((resolve) => udp.bind(0, '127.0.0.1', () => resolve(udp.address().port)));
  const { port: s3Port } = await s3.run();
  await putObject(s3Port);
  process.stdout.write(`${JSON.stringify({ httpPort, udpPort, httpsPort, httpsCa: tls.cert, s3Port, s3Bucket })}\n`);
}

start().catch((err: unknown) => {
  process.stderr.write(`bench peer failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
