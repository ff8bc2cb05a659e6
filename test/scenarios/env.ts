/**
 * What the differential scenarios run against: local servers started by the
 * test, a port where nothing listens, and (as the clients land) the real
 * PostgreSQL and Redis.
 */
import * as net from 'net';
import type { TestServer } from '../helpers/servers';

export interface ScenarioEnv {
  http: TestServer;
  https: TestServer;
  /** The CA (the self-signed certificate) of the https server. */
  ca: string;
  /** A loopback port nobody listens on. */
  closedPort: number;
}

/** A loopback port that was free a moment ago (bound, then closed). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
