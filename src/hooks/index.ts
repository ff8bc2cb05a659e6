/**
 * The registry of instrumented modules. Adding a library means adding its
 * file in this folder and its entries here.
 */
import type { Instrumentation } from '../patcher';
import { axiosClient } from './axios';
import { fetchClient, undiciDispatchers } from './fetch';
import { httpClient, httpsClient } from './http';
import { httpServer, httpsServer } from './http-server';
import { ioredis } from './ioredis';
import { pgClient, pgPool } from './pg';

export const instrumentations: ReadonlyArray<Instrumentation<never>> = [
  httpClient,
  httpsClient,
  httpServer,
  httpsServer,
  axiosClient,
  fetchClient,
  undiciDispatchers,
  pgClient,
  pgPool,
  ioredis,
] as ReadonlyArray<Instrumentation<never>>;
