/**
 * Where the real PostgreSQL and Redis servers are (the defaults match
 * docker-compose.yml and the CI machines; PGHOST/PGPORT/REDIS_HOST/REDIS_PORT
 * override them), and unique names for what a test creates.
 */
import assert from 'assert';
import { randomBytes } from 'crypto';
import { errorBehind } from './tracing';

export const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
};

/** MariaDB (or MySQL): user root with an empty password, database `test` (MYSQL_HOST/MYSQL_PORT/MYSQL_USER/MYSQL_DATABASE override). */
export const MYSQL = {
  host: process.env.MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.MYSQL_PORT ?? 3306),
  user: process.env.MYSQL_USER ?? 'root',
  database: process.env.MYSQL_DATABASE ?? 'test',
};

export const REDIS = {
  host: process.env.REDIS_HOST ?? '127.0.0.1',
  port: Number(process.env.REDIS_PORT ?? 6379),
};

/** A name no other run uses: `prefix_<pid>_<random>` (valid as an SQL identifier and a Redis key). */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** A TCP port on 127.0.0.1 with nothing listening (bound, then closed). */
export async function closedPort(): Promise<number> {
  const net = await import('net');
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * Runs `fn` with the process' unhandledRejection listeners (mocha's) set
 * aside, and returns the rejections nobody handled: each reason with the
 * promise Node reported it for.
 */
export async function unhandled(fn: () => void, settleMs = 300): Promise<Array<{ reason: unknown; promise: Promise<unknown> }>> {
  const saved = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  const seen: Array<{ reason: unknown; promise: Promise<unknown> }> = [];
  const listener = (reason: unknown, promise: Promise<unknown>): void => {
    seen.push({ reason, promise });
  };
  process.on('unhandledRejection', listener);
  try {
    fn();
    await new Promise((resolve) => setTimeout(resolve, settleMs));
  } finally {
    process.removeListener('unhandledRejection', listener);
    for (const l of saved) process.on('unhandledRejection', l);
  }
  return seen;
}

/** The reasons of the rejections nobody handled while `fn` ran (see `unhandled`). */
export async function unhandledRejections(fn: () => void, settleMs = 300): Promise<unknown[]> {
  return (await unhandled(fn, settleMs)).map((r) => r.reason);
}

/**
 * The span's error log holds the error the app got or, for an error that
 * carries its command (ioredis' reply errors), a copy without the command's
 * arguments: same prototype, message and stack, `command: { name }`.
 */
export function assertLoggedAs(field: unknown, err: unknown): void {
  // The log field reads through to what the patch logged (src/span.ts tagError).
  const logged = errorBehind(field);
  const e = err as { message: string; stack?: string; command?: { name: string; args: unknown[] } };
  if (e.command === undefined) {
    assert.strictEqual(logged, err);
    return;
  }
  assert.ok(Array.isArray(e.command.args), 'the app still gets the command with its arguments');
  const l = logged as typeof e;
  assert.notStrictEqual(l, e);
  assert.strictEqual(Object.getPrototypeOf(l), Object.getPrototypeOf(e));
  // Redis quotes the arguments of an unknown command in its message: the log leaves them out.
  const quoted = /, with args beginning with:[^\n]*/;
  assert.strictEqual(l.message, e.message.replace(quoted, ''));
  assert.strictEqual(l.stack, e.stack?.replace(quoted, ''));
  assert.deepStrictEqual(l.command, { name: e.command.name });
}
