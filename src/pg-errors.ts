/**
 * A pg error as a span logs it. PostgreSQL echoes parameter values in some
 * errors and row values in `detail`: the copy logged has them replaced,
 * unless the user records the parameters anyway. The application always gets
 * the original error.
 */
import { REDACTED } from './constants';
import { logOnce } from './logger';
import { redactErrorFields, redactValues } from './redact';
import { maskSqlLiterals } from './sql';

/** At most this many texts are looked for in an error (a huge array parameter stays cheap). */
const MAX_ECHO_FORMS = 200;

/**
 * The texts under which PostgreSQL may echo a parameter value in an error:
 * the value as pg sends it (strings, numbers; an object as its JSON), each
 * element of an array (`= ANY($1::int[])` quotes the element it could not
 * read), the leaf strings of a JSON value, a Buffer as `\x...` hex and as text.
 */
function echoForms(value: unknown, out: string[], depth = 0): void {
  if (out.length >= MAX_ECHO_FORMS || value === null || value === undefined) return;
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'number' || typeof value === 'bigint') out.push(String(value));
  else if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    const buffer = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    out.push(`\\x${buffer.toString('hex')}`, buffer.toString('utf8'));
  } else if (Array.isArray(value)) {
    if (depth < 3) for (const item of value) echoForms(item, out, depth + 1);
  } else if (typeof value === 'object' && !(value instanceof Date)) {
    try {
      out.push(JSON.stringify(value));
    } catch {
      // a cycle or a BigInt inside: its leaves below
    }
    if (depth < 3) for (const item of Object.values(value as object)) echoForms(item, out, depth + 1);
  }
}

/** `JSON data, line 1: <the start of the value>...` in the `where` of a JSON input error. */
const JSON_CONTEXT = /(JSON data, line \d+: )[^\n]*/g;

/**
 * PostgreSQL echoes parameter values in some errors: quoted where it could
 * not use one (`invalid input syntax for type integer: "..."`, `value "..."
 * is out of range`), the whole text of a plpgsql `RAISE ... '%', $1`, the
 * start of a JSON value in `where`. Their occurrences in `message`, `stack`
 * and `where` replaced, and the literals of `internalQuery` masked.
 * Undefined when nothing changes.
 */
function withoutEchoedValues(err: unknown, values: unknown): Record<string, string> | undefined {
  const e = err as { message?: unknown; stack?: unknown; where?: unknown; internalQuery?: unknown };
  const forms: string[] = [];
  if (Array.isArray(values)) echoForms(values, forms);
  const fields: Record<string, string> = {};
  for (const key of ['message', 'stack', 'where'] as const) {
    const text = e[key];
    if (typeof text !== 'string') continue;
    // In a stack, only its head (the message): a value may also be a word of a file path.
    const frames = key === 'stack' ? text.indexOf('\n    at ') : -1;
    let redacted = frames === -1 ? redactValues(text, forms) : redactValues(text.slice(0, frames), forms) + text.slice(frames);
    if (key === 'where') redacted = redacted.replace(JSON_CONTEXT, `$1${REDACTED}`);
    if (redacted !== text) fields[key] = redacted;
  }
  if (typeof e.internalQuery === 'string') {
    const masked = maskSqlLiterals(e.internalQuery, 'postgres');
    if (masked !== e.internalQuery) fields.internalQuery = masked;
  }
  return Object.keys(fields).length > 0 ? fields : undefined;
}

/**
 * The error a pg span logs for `err`, raised by a query with bound `values`.
 * A DatabaseError's `detail` quotes row values ("Failing row contains
 * (...)"), its message sometimes a parameter value: both kept only with
 * `captureParameters`.
 */
export function loggablePgError(err: unknown, values: unknown, captureParameters: boolean): unknown {
  if (captureParameters) return err;
  let fields: Record<string, string> | undefined;
  try {
    fields = withoutEchoedValues(err, values);
  } catch (redactErr) {
    logOnce('pg:redact', 'could not check a pg error for quoted values', redactErr);
  }
  if (typeof (err as { detail?: unknown }).detail === 'string') fields = { ...fields, detail: REDACTED };
  return fields !== undefined ? redactErrorFields(err, fields) : err;
}
