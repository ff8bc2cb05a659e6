/**
 * The registry of instrumented modules. Adding a library means adding its
 * file in this folder and its entries here.
 */
import type { Instrumentation } from '../patcher';
import { httpClient, httpsClient } from './http';

export const instrumentations: ReadonlyArray<Instrumentation<never>> = [
  httpClient,
  httpsClient,
] as ReadonlyArray<Instrumentation<never>>;
