/**
 * A throw-away local Redis Cluster: three `redis-server --cluster-enabled yes`
 * processes on free loopback ports (each also needs port + 10000 free for the
 * cluster bus), joined with `redis-cli --cluster create`, with their files in
 * a temporary folder. `stop()` ends the processes it started and removes the
 * folder.
 */
import { execFile, spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

export interface LocalCluster {
  ports: number[];
  nodes: Array<{ host: string; port: number }>;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 25000);
    if (taken.has(port) || taken.has(port + 10000)) continue;
    if ((await portFree(port)) && (await portFree(port + 10000))) return port;
  }
  throw new Error('no free port pair for a Redis Cluster node');
}

function run(file: string, args: string[], timeoutMs = 15000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startCluster(size = 3): Promise<LocalCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ot-redis-cluster-'));
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  const taken = new Set<number>();
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < size; i++) {
      const port = await freeClusterPort(taken);
      taken.add(port);
      taken.add(port + 10000);
      ports.push(port);
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--bind', HOST,
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout', '5000',
          '--save', '',
          '--appendonly', 'no',
          '--dir', dir,
          '--logfile', path.join(dir, `${port}.log`),
        ],
        { stdio: 'ignore' },
      );
      children.push(child);
    }
    for (const port of ports) {
      await waitUntil(async () => (await run('redis-cli', ['-h', HOST, '-p', String(port), 'ping'])).trim() === 'PONG', 10000, `node ${port}`);
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const port of ports) {
      await waitUntil(
        async () => (await run('redis-cli', ['-h', HOST, '-p', String(port), 'cluster', 'info'])).includes('cluster_state:ok'),
        15000,
        `cluster_state:ok on ${port}`,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { ports, nodes: ports.map((port) => ({ host: HOST, port })), stop };
}

/**
 * For a describe block: starts a local cluster of `size` nodes before it and
 * stops it after; `cluster()` gives it to the block's tests and hooks.
 */
export function useLocalCluster(size = 3): () => LocalCluster {
  let local: LocalCluster | undefined;
  before(async function () {
    this.timeout(60000);
    local = await startCluster(size);
  });
  after(async () => {
    if (local) await local.stop();
  });
  return () => {
    if (local === undefined) throw new Error('the local cluster is not started');
    return local;
  };
}
