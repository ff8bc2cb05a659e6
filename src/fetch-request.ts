/**
 * What the fetch patch reads from and writes to undici's own objects: the
 * request published on `undici:request:create` (lib/core/request.js), the
 * response head of `undici:request:headers`, and the `redirect` setting of a
 * `fetch()` call. None of it knows about spans beyond writing trace headers.
 */
import { Span as NoopSpan, type Span } from 'opentracing';
import { isProxy } from 'util/types';
import { REDIRECT } from './constants';
import type { UndiciRequest, UndiciResponseHead } from './internal-types';
import type { FetchResponseLike } from './options';
import { redactParsedUrl, redactUrl } from './redact';
import { injectHttpHeaders } from './span';

/** The whole URL of a request. */
export function urlOf(request: UndiciRequest): string {
  const path = String(request.path);
  // Through an HTTP proxy the path is the whole target URL.
  if (path.startsWith('http://') || path.startsWith('https://')) return path;
  return `${String(request.origin)}${path}`;
}

export function parsedUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

/** `url` for a tag or log, secrets redacted (parsed once already when it parses). */
export function redactedUrl(url: string, parsed: URL | undefined): string {
  return parsed !== undefined ? redactParsedUrl(parsed) : redactUrl(url);
}

/**
 * Sets a trace header on the request. A header of the same name that the
 * application set itself is replaced, as `setHeader` does in the http patch,
 * so the receiver never gets two (undici 6 and 7 keep `headers` as a flat
 * `[name, value, ...]` array; elsewhere the header is only added).
 */
function setRequestHeader(request: UndiciRequest, name: string, value: string): void {
  const headers = request.headers;
  if (Array.isArray(headers)) {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      const existing: unknown = headers[i];
      if (typeof existing === 'string' && existing.toLowerCase() === name) headers.splice(i, 2);
    }
  }
  request.addHeader(name, value);
}

/** Writes `span`'s context into the request's headers (propagateTo judged by its host). */
export function injectInto(span: Span, request: UndiciRequest, url: URL | undefined): void {
  injectHttpHeaders(span, url?.hostname, (name, value) => setRequestHeader(request, name.toLowerCase(), value));
}

/** As `injectInto`, for a span that records nothing: a no-op tracer's span has no context to give. */
export function injectUnrecorded(span: Span, request: UndiciRequest, url: URL | undefined): void {
  if (span.constructor !== NoopSpan) injectInto(span, request, url);
}

/** A response head as the fetch response hook sees it. */
export function responseOf(response: UndiciResponseHead, url: string): FetchResponseLike {
  return { status: response.statusCode, statusText: response.statusText ?? '', headers: headerObject(response.headers), url };
}

/** Lower-case names, repeated headers joined with `, `. */
function headerObject(raw: UndiciResponseHead['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(raw)) return out;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = String(raw[i]).toLowerCase();
    const value = raw[i + 1];
    const text = Array.isArray(value) ? value.map(String).join(', ') : String(value);
    out[name] = name in out ? `${out[name]}, ${text}` : text;
  }
  return out;
}

/** The `location` of a raw response head, if any. */
export function locationOf(raw: UndiciResponseHead['headers']): string | undefined {
  if (!Array.isArray(raw)) return undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (String(raw[i]).toLowerCase() === 'location') return String(raw[i + 1]);
  }
  return undefined;
}

/** The application stopped reading a response it had (`res.body.cancel()`, an abort after the headers). */
export function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e !== null && typeof e === 'object' && (e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED');
}

/** `redirect` of a fetch call; `unknown` when it could not be read without the application noticing. */
export type RedirectMode = 'follow' | 'error' | 'manual' | 'unknown';

/**
 * The call's `redirect` setting. fetch reads `init.redirect` itself (once, as
 * WebIDL does), so here it is only read where that cannot be noticed: an own
 * data property of a plain init object, or the getter of a `Request` of the
 * same fetch. Anything else is `unknown`.
 */
export function redirectModeOf(input: unknown, init: unknown, requestClassOf: () => unknown): RedirectMode {
  if (init !== null && init !== undefined) {
    if (typeof init !== 'object' || isProxy(init)) return 'unknown';
    const own = Object.getOwnPropertyDescriptor(init, 'redirect');
    if (own !== undefined && !('value' in own)) return 'unknown';
    if (own !== undefined && own.value !== undefined) return modeOf(own.value);
    const proto: unknown = Object.getPrototypeOf(init);
    if (own === undefined && proto !== Object.prototype && proto !== null) return 'unknown';
  }
  if (input !== null && typeof input === 'object' && !(input instanceof URL)) {
    const requestClass = requestClassOf();
    if (typeof requestClass === 'function' && input instanceof requestClass) return modeOf((input as { redirect?: unknown }).redirect);
    return 'unknown'; // a Request of another fetch, say
  }
  return 'follow';
}

function modeOf(value: unknown): RedirectMode {
  if (value === undefined) return 'follow'; // a Request made without one
  return value === 'follow' || value === 'error' || value === 'manual' ? value : 'unknown';
}

/**
 * Why fetch did not follow a redirect to `location` it was expected to
 * (WHATWG fetch, HTTP-redirect fetch steps 3-11), after `hops` requests.
 */
export function redirectFailure(location: string, url: string, hops: number): string {
  let target: URL;
  try {
    target = new URL(location, url);
  } catch {
    return 'the Location of the redirect is not a valid URL';
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return 'the redirect leads to a URL that is not HTTP(S)';
  return hops > REDIRECT.FETCH_MAX ? `more than ${REDIRECT.FETCH_MAX} redirects` : 'fetch did not follow the redirect';
}
