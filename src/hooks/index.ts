/**
 * The registry of instrumented modules. Adding a library means adding its
 * file in this folder and its entries here.
 */
import type { Instrumentation } from '../patcher';
import { httpClient, httpsClient } from './http';
import { httpServer, httpsServer } from './http-server';

export const instrumentations: ReadonlyArray<Instrumentation<never>> = [
  httpClient,
  httpsClient,
  httpServer,
  httpsServer,
] as ReadonlyArray<Instrumentation<never>>;
