/**
 * Narrow interfaces for the private parts of third-party libraries that the
 * patches touch. Each block names the upstream file it mirrors, so that a
 * change upstream is easy to check against.
 */

/** Node's `IncomingMessage._dump()` (lib/_http_incoming.js): discards a response nobody reads. */
export interface DumpableResponse {
  _dump?: () => void;
}

/**
 * axios 1.x, the parts the axios patch touches: `Axios.prototype._request`
 * and `getUri` (lib/core/Axios.js), the config that reaches the adapter
 * (lib/core/dispatchRequest.js), `axios.getAdapter` and `axios.defaults`
 * (lib/axios.js, lib/adapters/adapters.js).
 */
export interface AxiosConfig {
  adapter?: unknown;
  method?: string;
  [key: string]: unknown;
}
export type AxiosAdapter = (this: unknown, config: AxiosConfig) => unknown;
/** The `this` of `_request`: an `Axios` instance. */
export interface AxiosContext {
  defaults?: { adapter?: unknown };
}
export interface AxiosPrototype {
  _request(this: AxiosContext, configOrUrl?: unknown, config?: unknown): unknown;
  getUri(this: AxiosContext, config?: unknown): string;
}
export interface AxiosExports {
  Axios?: { prototype: AxiosPrototype };
  getAdapter?: (adapters: unknown, config?: unknown) => AxiosAdapter;
  defaults?: { adapter?: unknown };
}

/**
 * undici's core `Request` as published on diagnostics_channel
 * (`undici:request:*`, lib/core/request.js; undici 5 to 7, and the copy
 * bundled in Node). `headers` is a flat `[name, value, ...]` array in
 * undici 6 and 7 (a string in 5).
 */
export interface UndiciRequest {
  method: string;
  origin: string | URL;
  path: string;
  headers: unknown;
  addHeader(name: string, value: string): unknown;
}
/** The `response` of `undici:request:headers`: raw header names and values, alternating. */
export interface UndiciResponseHead {
  statusCode: number;
  statusText?: string;
  headers?: ReadonlyArray<Buffer | string | ReadonlyArray<Buffer | string>>;
}
