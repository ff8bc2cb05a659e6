/** The node-redis copies the tests run on: `redis` 6 and the npm aliases `redis5`, `redis4`. */
/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
import assert from 'assert';
import { unhandled } from './db';
import { tag, type JaegerSpan, type TestTracer } from './tracing';

export interface NodeRedisVersion {
  label: string;
  /** The `redis` package (its createClient adds the modules). */
  redis: () => any;
  /** The `@redis/client` copy that package uses: what the hook patches. */
  core: () => object;
  major: number;
}

export const VERSIONS: NodeRedisVersion[] = [
  { label: 'redis 6', redis: () => require('redis'), core: () => require('@redis/client'), major: 6 },
  { label: 'redis 5', redis: () => require('redis5'), core: () => require('redis5/node_modules/@redis/client'), major: 5 },
  { label: 'redis 4', redis: () => require('redis4'), core: () => require('redis4/node_modules/@redis/client'), major: 4 },
];

/** The spans of the node-redis patch. */
export function redisSpans(t: TestTracer): JaegerSpan[] {
  return t.spans().filter((s) => tag(s, 'component') === 'redis');
}

/**
 * `send()` makes a `NOPE` command nobody handles: its rejection must stay
 * unhandled and be reported for node-redis' own promise, and the command
 * must get one failed span.
 */
export async function assertUnhandledNope(t: TestTracer, send: () => Promise<unknown>): Promise<void> {
  let got: Promise<unknown> | undefined;
  const seen = await unhandled(() => {
    got = send();
  });
  assert.strictEqual(seen.length, 1);
  assert.strictEqual(seen[0].promise, got);
  assert.match((seen[0].reason as Error).message, /unknown command/i);
  const spans = redisSpans(t);
  assert.deepStrictEqual(spans.map((s) => s.operationName), ['redis:NOPE']);
  assert.strictEqual(tag(spans[0], 'error'), true);
}
