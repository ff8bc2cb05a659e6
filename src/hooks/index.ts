/**
 * The registry of instrumented modules. Adding a library means adding its
 * file in this folder and its entries here.
 */
import type { Instrumentation } from '../patcher';
import { httpClient, httpsClient } from './http';
import { ioredis } from './ioredis';
import { pgClient, pgPool } from './pg';

export const instrumentations: ReadonlyArray<Instrumentation<never>> = [
  httpClient,
  httpsClient,
  pgClient,
  pgPool,
  ioredis,
] as ReadonlyArray<Instrumentation<never>>;
