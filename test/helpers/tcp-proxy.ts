/**
 * A small TCP proxy on loopback, put between a client and a real server
 * (PostgreSQL, Redis, an http server) so that a test can cut the connection
 * in the middle of a call: when the client has sent bytes matching a pattern
 * (the query), after a delay (the server is busy with it).
 */
import * as net from 'net';

export type CutMode = 'end' | 'reset';

export interface TcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Connections cut by the proxy so far. */
  readonly cut: number;
  /**
   * Arms a one-shot cut: once client-to-server bytes containing `marker` have
   * been forwarded, waits `delayMs` and cuts every open connection
   * (`'end'`: both sockets destroyed, the peers see the connection close;
   * `'reset'`: a TCP RST). Resolves when the cut happened.
   */
  cutOn(marker: string | Buffer, delayMs?: number, mode?: CutMode): Promise<void>;
  /** Cuts every open connection now. */
  cutAll(mode?: CutMode): void;
  /** Cuts everything and stops listening. */
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

function cutSocket(socket: net.Socket, mode: CutMode): void {
  if (mode === 'reset' && typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}

export function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let accepted = 0;
  let cut = 0;
  let armed: { marker: Buffer; delayMs: number; mode: CutMode; resolve: () => void; fired: boolean } | undefined;

  const cutAll = (mode: CutMode = 'end'): void => {
    for (const pair of pairs) {
      cut++;
      cutSocket(pair.client, mode);
      cutSocket(pair.upstream, mode);
    }
    pairs.clear();
  };

  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(targetPort, targetHost);
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const drop = (): void => {
      if (!pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      const a = armed;
      if (a !== undefined && !a.fired && chunk.includes(a.marker)) {
        a.fired = true;
        armed = undefined;
        setTimeout(() => {
          cutAll(a.mode);
          a.resolve();
        }, a.delayMs);
      }
    });
  });

  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        port,
        get accepted() {
          return accepted;
        },
        get open() {
          return pairs.size;
        },
        get cut() {
          return cut;
        },
        cutOn(marker, delayMs = 50, mode: CutMode = 'end') {
          return new Promise<void>((done) => {
            armed = { marker: Buffer.from(marker), delayMs, mode, resolve: done, fired: false };
          });
        },
        cutAll,
        close() {
          armed = undefined;
          return new Promise<void>((done) => {
            cutAll();
            server.close(() => done());
          });
        },
      });
    });
  });
}
