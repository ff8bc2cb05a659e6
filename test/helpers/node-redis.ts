/** The node-redis copies the tests run on: `redis` 6 and the npm aliases `redis5`, `redis4`. */
/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
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
