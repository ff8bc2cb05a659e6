/**
 * What the http/https client patch reads of Node's request arguments and of
 * the `ClientRequest` Node builds from them: the call form, whether Node
 * renders the header block early, the destination (through a proxy too),
 * the port and the redacted URL. Kept apart from the patch so that
 * `src/hooks/http.ts` says only where a call starts and ends.
 */
import type { ClientRequest, RequestOptions } from 'http';
import { redactPath, redactUrl } from './redact';

/** The `headers` and `method` the caller passed, whatever the call form. */
export function callerOptions(args: ArrayLike<unknown>): RequestOptions | undefined {
  const first = args[0];
  if (typeof first === 'string' || first instanceof URL) {
    const second = args[1];
    return second !== null && typeof second === 'object' ? (second as RequestOptions) : undefined;
  }
  return first !== null && typeof first === 'object' ? (first as RequestOptions) : undefined;
}

/**
 * Node renders the header block inside the `ClientRequest` constructor when
 * the headers are given as a raw array or include `Expect`
 * (lib/_http_client.js); `setHeader` is impossible afterwards, so for those
 * calls the trace headers go into a copy of the arguments instead.
 */
export function headersRenderedEarly(options: RequestOptions | undefined): boolean {
  const headers = options?.headers;
  if (headers === undefined || headers === null) return false;
  if (Array.isArray(headers)) return true;
  for (const key of Object.keys(headers)) if (key.length === 6 && key.toLowerCase() === 'expect') return true;
  return false;
}

/** The arguments with `extra` headers added to a copy of the caller's options and headers. */
export function argsWithHeaders(args: ArrayLike<unknown>, options: RequestOptions | undefined, extra: Record<string, string>): unknown[] {
  const list = Array.prototype.slice.call(args) as unknown[];
  const headers = options?.headers;
  let merged: RequestOptions['headers'];
  if (Array.isArray(headers)) {
    const raw: string[] = [...(headers as readonly string[])];
    for (const name of Object.keys(extra)) raw.push(name, extra[name]);
    merged = raw;
  } else {
    merged = { ...(headers as Record<string, unknown>), ...extra } as RequestOptions['headers'];
  }
  const copy = { ...options, headers: merged };
  const first = list[0];
  if (typeof first === 'string' || first instanceof URL) {
    if (options !== undefined) list[1] = copy;
    else list.splice(1, 0, copy);
  } else {
    list[0] = copy;
  }
  return list;
}

/**
 * The URL of an absolute-form request target (RFC 9112, 3.2.2): a request
 * sent to an HTTP proxy names its real destination there (axios' `proxy`
 * option, HTTP_PROXY, hand-made proxy requests).
 */
function absoluteTarget(path: string | null | undefined): URL | undefined {
  if (typeof path !== 'string' || !/^https?:\/\//i.test(path)) return undefined;
  try {
    return new URL(path);
  } catch {
    return undefined;
  }
}

/** The host the request is for, for propagation rules: through a proxy, the destination, not the proxy. */
export function destinationHost(req: ClientRequest): string {
  return absoluteTarget(req.path)?.hostname ?? req.host;
}

/** The destination host for propagation rules, before the request exists. */
export function hostOf(args: ArrayLike<unknown>, options: RequestOptions | undefined): string | undefined {
  const first = args[0];
  const target = absoluteTarget(options?.path);
  if (target !== undefined) return target.hostname;
  if (options?.hostname) return options.hostname;
  if (options?.host) return options.host;
  if (first instanceof URL) return first.hostname;
  if (typeof first === 'string') {
    try {
      return new URL(first).hostname;
    } catch {
      return undefined;
    }
  }
  return 'localhost';
}

export function portOf(req: ClientRequest): number | undefined {
  const hostHeader = req.getHeader('host');
  if (typeof hostHeader === 'string') {
    const colon = hostHeader.lastIndexOf(':');
    if (colon !== -1 && colon > hostHeader.lastIndexOf(']')) return Number(hostHeader.slice(colon + 1));
  }
  const agent = (req as { agent?: { defaultPort?: number } }).agent;
  if (agent && typeof agent.defaultPort === 'number') return agent.defaultPort;
  return req.protocol === 'https:' ? 443 : 80;
}

export function urlOf(req: ClientRequest): string {
  if (absoluteTarget(req.path) !== undefined) return redactUrl(req.path);
  const hostHeader = req.getHeader('host');
  const authority = typeof hostHeader === 'string' ? hostHeader : req.host;
  return `${req.protocol}//${authority}${redactPath(req.path)}`;
}
