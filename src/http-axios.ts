/**
 * What the axios patch mirrors of axios' own code (lib/core/Axios.js,
 * lib/core/mergeConfig.js, lib/core/dispatchRequest.js, lib/adapters/adapters.js):
 * the call's config, the adapter axios would pick, the URL it builds and the
 * shapes of its responses and errors. Kept apart from `src/hooks/axios.ts`,
 * which says only where an axios call starts and ends.
 */
import type { AxiosAdapter, AxiosConfig, AxiosContext, AxiosExports, AxiosPrototype } from './internal-types';
import type { AxiosResponseLike } from './options';

/** What the axios module gave the patch (captured at patch time, as axios' own code holds them). */
export interface AxiosModule {
  getAdapter: NonNullable<AxiosExports['getAdapter']>;
  /** axios' module-level defaults: dispatchRequest falls back to their `adapter`. */
  defaults: AxiosExports['defaults'];
  proto: AxiosPrototype;
}

/**
 * Marks our stand-in adapters with the adapter setting they stand for, so
 * that a config coming back (a retry of `error.config`) is unwrapped, never
 * wrapped twice.
 */
export const STANDS_FOR = Symbol('opentracing-instrumentation.axios.standsFor');

export function isObjectLike(value: unknown): value is Record<PropertyKey, unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function');
}

/** The response an axios error carries (`error.response`), if any. */
export function responseOf(value: unknown): AxiosResponseLike | undefined {
  if (!isObjectLike(value)) return undefined;
  const response = value.response;
  return isObjectLike(response) && typeof response.status === 'number' ? (response as unknown as AxiosResponseLike) : undefined;
}

export function looksLikeResponse(value: unknown): value is AxiosResponseLike {
  return isObjectLike(value) && typeof value.status === 'number' && 'config' in value;
}

/**
 * `_request`'s config as axios reads it, and the caller's own `adapter`
 * setting (unwrapped when it is one of our stand-ins); undefined when the
 * call is not one to follow.
 */
export function callerConfig(args: IArguments): { config: Record<PropertyKey, unknown>; adapter: unknown } | undefined {
  const first: unknown = args[0];
  let config: unknown;
  if (typeof first === 'string') {
    // lib/core/Axios.js: `config = config || {}; config.url = configOrUrl` on
    // the caller's object. Done here the same way (if it throws, axios will
    // throw the same on the untraced path).
    config = args[1] || {};
    (config as { url?: unknown }).url = first;
  } else {
    config = first || {};
  }
  if (!isObjectLike(config)) return undefined;
  // mergeConfig reads own enumerable keys only, as a spread copies them.
  let adapter: unknown = Object.prototype.hasOwnProperty.call(config, 'adapter') ? config.adapter : undefined;
  if (typeof adapter === 'function' && STANDS_FOR in adapter) adapter = (adapter as unknown as Record<symbol, unknown>)[STANDS_FOR];
  return { config, adapter };
}

/**
 * The adapter axios would have used for this call, put back into `config`
 * as axios would have it (so `response.config` and `error.config` look as
 * without us). Mirrors mergeConfig (the caller's `adapter`, else the
 * instance's; arrays copied) and dispatchRequest (`config.adapter ||
 * defaults.adapter`, resolved by `getAdapter`, which throws what axios throws).
 */
export function realAdapter(module: AxiosModule, self: AxiosContext, spec: unknown, config: AxiosConfig): AxiosAdapter {
  const merged = spec !== undefined ? spec : self?.defaults?.adapter;
  try {
    if (merged === undefined) delete config.adapter;
    else config.adapter = Array.isArray(merged) ? merged.slice() : merged;
  } catch {
    // a config axios cannot write either: leave it
  }
  return module.getAdapter(merged || module.defaults?.adapter, config);
}

/** A `this` for `getUri` without instance defaults: the config at dispatch is merged already. */
const NO_DEFAULTS: AxiosContext = Object.freeze({});

/**
 * The URL as axios builds it (baseURL, url, params, paramsSerializer), by
 * axios' own `getUri`. Given only the fields it reads: on the whole config
 * it would merge headers and all (about 4 times slower).
 */
export function fullUrl(module: AxiosModule, config: AxiosConfig): string | undefined {
  const { baseURL, url, allowAbsoluteUrls, params, paramsSerializer } = config;
  try {
    return module.proto.getUri.call(NO_DEFAULTS, { baseURL, url, allowAbsoluteUrls, params, paramsSerializer });
  } catch {
    // a URL axios rejects (it will say so to the caller): tag what was asked for
    return typeof url === 'string' ? url : undefined;
  }
}
