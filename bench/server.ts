/**
 * The benchmark's peer process: a keep-alive HTTP server (a tiny fixed body)
 * and a UDP sink standing in for the Jaeger agent (it counts datagrams and
 * bytes, and decodes nothing, so that the measured process pays nothing for
 * it). Runs in its own process, so the CPU time the measured process reports
 * is the client's alone.
 *
 * Prints one JSON line `{ httpPort, udpPort }` when ready; on a line `stats`
 * on stdin it answers `{ datagrams, bytes }`; exits when stdin closes.
 */
import * as dgram from 'dgram';
import * as http from 'http';
import type { AddressInfo } from 'net';

const body = Buffer.from('{"ok":true}');

const server = http.createServer((req, res) => {
  // Drain the request (GETs carry no body) and answer at once.
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;

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
  udp.close();
});

server.listen(0, '127.0.0.1', () => {
  udp.bind(0, '127.0.0.1', () => {
    const httpPort = (server.address() as AddressInfo).port;
    const udpPort = udp.address().port;
    process.stdout.write(`${JSON.stringify({ httpPort, udpPort })}\n`);
  });
});
