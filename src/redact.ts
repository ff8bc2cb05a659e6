/**
 * Keeps secrets out of span tags: URL credentials and query values whose
 * names look secret (tokens, signatures, passwords, API keys).
 */
import { REDACTED } from './constants';

/** Query (and path) parameter names whose values are never recorded. */
export const SECRET_QUERY_KEY = new RegExp(
  [
    'token|secret|passw|pwd|^pw$|^pass$|credential|^auth|bearer|jwt|assertion|saml|ticket|^otp$',
    'session|sessid|^sid$|^sig$|signature|hmac',
    'api[-_]?key|access[-_]?key|private[-_]?key|license[-_]?key|app[-_]?key|subscription[-_]?key|^key$|^code$',
  ].join('|'),
  'i',
);

function decodeQueryPart(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw; // a malformed escape: the raw text
  }
}

/**
 * A parameter value that is itself a URL (`?next=https://bob:pw@host/?token=x`,
 * raw or percent-encoded) with its credentials and secret query values
 * redacted; undefined when there is nothing to redact in it.
 */
function redactNestedUrl(rawValue: string): string | undefined {
  if (!/@|%40|=|%3d/i.test(rawValue)) return undefined;
  const decoded = decodeQueryPart(rawValue);
  const redacted = redactText(decoded);
  if (redacted === decoded) return undefined;
  return decoded === rawValue ? redacted : encodeURIComponent(redacted);
}

/**
 * Replaces the values of secret-looking query parameters in a `?query`
 * string (with or without the `?`), pairs separated by `&` or `;`, and the
 * credentials and secrets of a URL given as a parameter's value.
 */
export function redactQuery(query: string): string {
  if (query.length === 0) return query;
  const lead = query[0] === '?' ? '?' : '';
  const body = lead ? query.slice(1) : query;
  let changed = false;
  // Separators at the odd indexes.
  const parts = body.split(/([&;])/);
  for (let i = 0; i < parts.length; i += 2) {
    const pair = parts[i];
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    const rawKey = pair.slice(0, eq);
    if (SECRET_QUERY_KEY.test(decodeQueryPart(rawKey))) {
      parts[i] = `${rawKey}=${REDACTED}`;
      changed = true;
      continue;
    }
    const nested = redactNestedUrl(pair.slice(eq + 1));
    if (nested !== undefined) {
      parts[i] = `${rawKey}=${nested}`;
      changed = true;
    }
  }
  return changed ? lead + parts.join('') : query;
}

/** Path parameters (`/cart;jsessionid=x/items`): secret-looking values redacted. */
const PATH_PARAM = /;([^;=/?#]+)=([^;/?#]*)/g;

function redactPathParams(pathname: string): string {
  if (!pathname.includes(';')) return pathname;
  return pathname.replace(PATH_PARAM, (param: string, rawKey: string) =>
    SECRET_QUERY_KEY.test(decodeQueryPart(rawKey)) ? `;${rawKey}=${REDACTED}` : param,
  );
}

/** Redacts the query and path parameters of a request path (`/a?token=x` becomes `/a?token=REDACTED`). */
export function redactPath(path: string): string {
  const q = path.indexOf('?');
  if (q === -1) return redactPathParams(path);
  const hash = path.indexOf('#', q);
  const query = hash === -1 ? path.slice(q) : path.slice(q, hash);
  return redactPathParams(path.slice(0, q)) + redactQuery(query);
}

/**
 * A full URL with its credentials replaced and its secret query values
 * redacted; the fragment is dropped (it is never sent). Unparseable input
 * gives its path-and-query part redacted the same way, without credentials.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return redactPath(url.replace(/\/\/[^/?#]*@/, `//${REDACTED}@`).split('#')[0]);
  }
  return redactParsedUrl(parsed);
}

/** `redactUrl` of a URL parsed already (a caller that needs the `URL` too parses once). */
export function redactParsedUrl(parsed: URL): string {
  const auth = parsed.username || parsed.password ? `${REDACTED}@` : '';
  return `${parsed.protocol}//${auth}${parsed.host}${redactPathParams(parsed.pathname)}${redactQuery(parsed.search)}`;
}

/** True when a (raw, possibly percent-encoded) query parameter name looks secret. */
function isSecretQueryKey(rawKey: string): boolean {
  return SECRET_QUERY_KEY.test(decodeQueryPart(rawKey));
}

/** `scheme://userinfo@` inside free text. */
const USERINFO_IN_TEXT = /(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>`]*@/gi;
/** `?name=value` / `&name=value` inside free text. */
const QUERY_PAIR_IN_TEXT = /([?&;])([^=&\s#?"'<>`]+)=([^&\s#"'<>`]*)/g;

/**
 * Free text (an error message or stack) with URL credentials and the values
 * of secret-looking query parameters replaced, wherever they appear; the rest
 * is left as it is. Some errors quote the URL they failed on ("Failed to
 * parse URL from https://user:secret@host/?token=..."), valid or not.
 */
export function redactText(text: string): string {
  if (!text.includes('@') && !text.includes('=')) return text;
  return text
    .replace(USERINFO_IN_TEXT, `$1${REDACTED}@`)
    .replace(QUERY_PAIR_IN_TEXT, (pair: string, sep: string, key: string) => (isSecretQueryKey(key) ? `${sep}${key}=${REDACTED}` : pair));
}

/** Shorter values are only looked for quoted: bare, they would match ordinary words of a message. */
const MIN_BARE_VALUE = 4;

/**
 * `text` (an error message or stack) with every occurrence of the given
 * values (a call's arguments, which a server may echo in its error)
 * replaced: quoted ones ('v', "v") whatever their length, bare ones from
 * four characters on. Longest values first, so that no part of one is left.
 */
export function redactValues(text: string, values: readonly string[]): string {
  if (values.length === 0 || text.length === 0) return text;
  const sorted = values.filter((v) => v.length > 0 && v !== REDACTED).sort((a, b) => b.length - a.length);
  let out = text;
  for (const value of sorted) {
    if (!out.includes(value)) continue;
    if (value.length >= MIN_BARE_VALUE) {
      out = out.split(value).join(REDACTED);
    } else {
      for (const q of ["'", '"']) out = out.split(q + value + q).join(q + REDACTED + q);
    }
  }
  return out;
}

/**
 * What a span may log as `error.object` for `err`: `err` itself, or, when it
 * has any of the own properties in `fields`, a copy (same prototype, same
 * other own properties, so name, message, stack and code are unchanged) in
 * which each of them is replaced by the given value, or left out when that
 * value is undefined. The application keeps the original. Jaeger serializes
 * the logged object with JSON.stringify, own properties included, so a
 * library error that carries its request (ioredis' `command.args`, pg's
 * `detail` with row values) must not be logged as it is.
 */
export function redactErrorFields(err: unknown, fields: Readonly<Record<string, unknown>>): unknown {
  if (err === null || typeof err !== 'object') return err;
  const names = Object.keys(fields);
  if (!names.some((name) => Object.prototype.hasOwnProperty.call(err, name))) return err;
  try {
    const copy = Object.create(Object.getPrototypeOf(err) as object | null) as Record<string, unknown>;
    for (const key of Object.getOwnPropertyNames(err)) {
      if (names.includes(key)) continue;
      const descriptor = Object.getOwnPropertyDescriptor(err, key);
      if (descriptor === undefined) continue;
      // Since V8 12 (Node 22) an error's own `stack` is an accessor that reads the
      // stack of the object it is called on: copied as is, it reads `undefined` on the
      // copy. An accessor's value is read from the error and kept as a plain value.
      if (descriptor.get !== undefined) {
        Object.defineProperty(copy, key, { value: (err as Record<string, unknown>)[key], writable: true, enumerable: descriptor.enumerable, configurable: true });
      } else {
        Object.defineProperty(copy, key, descriptor);
      }
    }
    for (const name of names) {
      if (fields[name] !== undefined && Object.prototype.hasOwnProperty.call(err, name)) copy[name] = fields[name];
    }
    return copy;
  } catch {
    return { message: (err as { message?: unknown }).message };
  }
}
