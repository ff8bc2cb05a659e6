/**
 * The verb of an SQL statement, for operation names (`pg:SELECT`): the first
 * keyword after leading whitespace, comments and parentheses, and for a
 * `WITH` statement the verb of its main statement (`pg:INSERT` for
 * `WITH x AS (...) INSERT ...`). PostgreSQL lexical rules: `--` and nested
 * `/* *\/` comments, '...' and E'...' strings, "..." identifiers, $tag$...$tag$
 * bodies.
 */

/** Verbs that can end a `WITH` clause as its main statement. */
const MAIN_VERBS = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'MERGE', 'VALUES', 'TABLE']);

function isWordStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95; // A-Z a-z _
}

function isWordPart(c: number): boolean {
  return isWordStart(c) || (c >= 48 && c <= 57) || c === 36; // 0-9 $
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** Index after the whitespace and comments at `i`. */
function skipBlank(s: string, i: number): number {
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (isSpace(c)) {
      i++;
    } else if (c === 45 && s.charCodeAt(i + 1) === 45) {
      // -- to end of line
      const nl = s.indexOf('\n', i + 2);
      i = nl === -1 ? n : nl + 1;
    } else if (c === 47 && s.charCodeAt(i + 1) === 42) {
      // /* ... */, nested as PostgreSQL allows
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (s.charCodeAt(i) === 47 && s.charCodeAt(i + 1) === 42) {
          depth++;
          i += 2;
        } else if (s.charCodeAt(i) === 42 && s.charCodeAt(i + 1) === 47) {
          depth--;
          i += 2;
        } else {
          i++;
        }
      }
    } else {
      break;
    }
  }
  return i;
}

/** Index after the quoted token starting at `i` (quote char `q`); `backslash` for E'' strings. */
function skipQuoted(s: string, i: number, q: number, backslash: boolean): number {
  const n = s.length;
  i++;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (backslash && c === 92) {
      i += 2;
    } else if (c === q) {
      if (s.charCodeAt(i + 1) === q) i += 2; // doubled quote: an escaped quote
      else return i + 1;
    } else {
      i++;
    }
  }
  return n;
}

function readWord(s: string, i: number): number {
  while (i < s.length && isWordPart(s.charCodeAt(i))) i++;
  return i;
}

/** The main verb of a WITH statement whose body starts at `i`, or undefined. */
function verbAfterWith(s: string, i: number): string | undefined {
  const n = s.length;
  let depth = 0;
  let closedGroup = false;
  while (i < n) {
    i = skipBlank(s, i);
    if (i >= n) break;
    const c = s.charCodeAt(i);
    if (c === 40) {
      depth++;
      i++;
    } else if (c === 41) {
      if (depth > 0) depth--;
      if (depth === 0) closedGroup = true;
      i++;
    } else if (c === 39) {
      const e = i > 0 && (s.charCodeAt(i - 1) === 69 || s.charCodeAt(i - 1) === 101);
      i = skipQuoted(s, i, 39, e);
    } else if (c === 34) {
      i = skipQuoted(s, i, 34, false);
    } else if (c === 36) {
      const m = /\$([A-Za-z_][A-Za-z0-9_]*)?\$/y;
      m.lastIndex = i;
      const tag = m.exec(s);
      if (tag === null) {
        i++;
      } else {
        const end = s.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? n : end + tag[0].length;
      }
    } else if (isWordStart(c)) {
      const end = readWord(s, i);
      if (depth === 0 && closedGroup) {
        const word = s.slice(i, end).toUpperCase();
        if (MAIN_VERBS.has(word)) {
          // `WITH a AS (...), update AS (...)`: a CTE named like a verb is followed by AS or a column list.
          const next = skipBlank(s, end);
          const after = s.slice(next, next + 2).toUpperCase();
          const named = s.charCodeAt(next) === 40 || (after === 'AS' && !isWordPart(s.charCodeAt(next + 2)));
          if (!named) return word;
        }
      }
      i = end;
    } else {
      i++;
    }
  }
  return undefined;
}

/**
 * The statement's verb, upper case: `SELECT`, `INSERT`, ...; for `WITH`, the
 * main statement's verb when it can be found, else `WITH`. Undefined when the
 * text starts with no keyword.
 */
export function sqlVerb(text: string): string | undefined {
  let i = skipBlank(text, 0);
  while (text.charCodeAt(i) === 40) i = skipBlank(text, i + 1); // (SELECT ...) UNION ...
  if (i >= text.length || !isWordStart(text.charCodeAt(i))) return undefined;
  const end = readWord(text, i);
  const word = text.slice(i, end).toUpperCase();
  if (word !== 'WITH') return word;
  return verbAfterWith(text, end) ?? word;
}

/** `text` cut at `max` characters, marked with `…` when cut. */
export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Characters of an identifier after its first: A-Z a-z 0-9 _ $ and anything beyond ASCII (1 in this table). */
const WORD_PART = new Uint8Array(65536);
for (let c = 0; c < 65536; c++) WORD_PART[c] = c >= 128 || isWordPart(c) ? 1 : 0;

/** Which SQL lexical rules `maskSqlLiterals` follows. */
export type SqlDialect = 'postgres' | 'mysql';

/** What a literal is replaced with: the placeholder of both dialects. */
const MASK = '?';

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHexDigit(c: number): boolean {
  return isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/**
 * Index after the string literal whose opening quote `q` is at `i`. A doubled
 * quote is a quote inside it (both dialects); `backslash` makes `\` escape the
 * next character (MySQL strings, PostgreSQL E'' strings). Unterminated: the
 * end of the text.
 */
function endOfString(s: string, i: number, q: number, backslash: boolean): number {
  const n = s.length;
  i++;
  while (i < n) {
    const j = backslash ? indexOfEither(s, q, 92, i) : s.indexOf(q === 39 ? "'" : q === 34 ? '"' : '`', i);
    if (j === -1) return n;
    if (s.charCodeAt(j) === 92) {
      i = j + 2;
    } else if (s.charCodeAt(j + 1) === q) {
      i = j + 2;
    } else {
      return j + 1;
    }
  }
  return n;
}

function indexOfEither(s: string, a: number, b: number, i: number): number {
  for (const n = s.length; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === a || c === b) return i;
  }
  return -1;
}

/** Index after the numeric literal at `i` (a digit, or `.` and a digit): decimal, exponent, 0x/0o/0b, `_` separators. */
function endOfNumber(s: string, i: number): number {
  const n = s.length;
  const c1 = s.charCodeAt(i + 1) | 0x20;
  if (s.charCodeAt(i) === 48 && (c1 === 120 || c1 === 111 || c1 === 98) && isHexDigit(s.charCodeAt(i + 2))) {
    i += 2; // 0x1F, 0o17, 0b101: hex digits cover all three
    while (i < n && (isHexDigit(s.charCodeAt(i)) || s.charCodeAt(i) === 95)) i++;
    return i;
  }
  while (i < n && (isDigit(s.charCodeAt(i)) || s.charCodeAt(i) === 95)) i++;
  if (s.charCodeAt(i) === 46) {
    i++;
    while (i < n && (isDigit(s.charCodeAt(i)) || s.charCodeAt(i) === 95)) i++;
  }
  if ((s.charCodeAt(i) | 0x20) === 101) {
    let j = i + 1;
    if (s.charCodeAt(j) === 43 || s.charCodeAt(j) === 45) j++;
    if (isDigit(s.charCodeAt(j))) {
      i = j;
      while (i < n && isDigit(s.charCodeAt(i))) i++;
    }
  }
  return i;
}

/** Index after the block comment at `i`; PostgreSQL nests them, MySQL does not. Unterminated: the end. */
function endOfBlockComment(s: string, i: number, nested: boolean): number {
  const n = s.length;
  if (!nested) {
    const end = s.indexOf('*/', i + 2);
    return end === -1 ? n : end + 2;
  }
  let depth = 1;
  i += 2;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 42 && s.charCodeAt(i + 1) === 47) {
      i += 2;
      if (--depth === 0) return i;
    } else if (c === 47 && s.charCodeAt(i + 1) === 42) {
      depth++;
      i += 2;
    } else {
      i++;
    }
  }
  return n;
}

/** Words that make the string right after them one literal: E'..', X'..', B'..', N'..' (and MySQL's `_charset'..'`). */
function isStringPrefix(s: string, start: number, end: number, dialect: SqlDialect): boolean {
  if (end - start === 1) {
    const c = s.charCodeAt(start) | 0x20;
    return c === 101 || c === 120 || c === 98 || c === 110; // e x b n
  }
  return dialect === 'mysql' && s.charCodeAt(start) === 95; // _utf8mb4'...'
}

/**
 * `text` with its literal values replaced by `?`, for `db.statement`: string
 * literals ('..', E'..', X'..', B'..', N'..', MySQL "..", PostgreSQL
 * $tag$..$tag$ bodies), numbers (decimal, exponent, hex, binary; never the
 * digits of an identifier such as `t1`), and comments (removed: they can hold
 * anything). Placeholders (`$1`, `?`, `:name`), identifiers (PostgreSQL
 * "..", MySQL `..`), keywords and operators stay. `dialect` chooses the
 * lexical rules: in MySQL ".." is a string and `\` escapes inside strings,
 * `#` starts a comment, and block comments do not nest.
 *
 * One pass, no regular expression, no allocation beyond the result: it runs
 * on every query. Never throws for a string.
 */
export function maskSqlLiterals(text: string, dialect: SqlDialect = 'postgres'): string {
  const mysql = dialect === 'mysql';
  const n = text.length;
  let out = '';
  let from = 0; // text[from, i) is still to be copied to `out`
  let i = 0;
  let removedComment = false;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isWordStart(c) || c >= 128 || (mysql && c === 36)) {
      // A keyword or identifier, whole: its digits are not numbers (t1, col_2, a$1).
      const start = i;
      i++;
      while (i < n && WORD_PART[text.charCodeAt(i)] === 1) i++;
      const q = text.charCodeAt(i);
      if ((q === 39 || (mysql && q === 34)) && isStringPrefix(text, start, i, dialect)) {
        const backslash = mysql || (text.charCodeAt(start) | 0x20) === 101;
        out += text.slice(from, start) + MASK;
        i = endOfString(text, i, q, backslash);
        from = i;
      }
    } else if (isDigit(c) || (c === 46 && isDigit(text.charCodeAt(i + 1)))) {
      const start = i;
      i = endOfNumber(text, i);
      const next = text.charCodeAt(i);
      if (isWordStart(next) || (mysql && isWordPart(next))) {
        // MySQL identifiers may start with digits (1table); PostgreSQL rejects `1abc`: kept as written.
        while (i < n && isWordPart(text.charCodeAt(i))) i++;
      } else {
        out += text.slice(from, start) + MASK;
        from = i;
      }
    } else if (c === 39 || (mysql && c === 34)) {
      out += text.slice(from, i) + MASK;
      i = endOfString(text, i, c, mysql);
      from = i;
    } else if (c === 34 || c === 96) {
      i = endOfString(text, i, c, false); // a quoted identifier: kept
    } else if (c === 36) {
      const next = text.charCodeAt(i + 1);
      if (isDigit(next)) {
        i += 2; // $1: a placeholder
        while (i < n && isDigit(text.charCodeAt(i))) i++;
        continue;
      }
      // $tag$ ... $tag$ (PostgreSQL): the tag is a word without `$`, or empty.
      let j = i + 1;
      if (isWordStart(next)) {
        j++;
        while (j < n && isWordPart(text.charCodeAt(j)) && text.charCodeAt(j) !== 36) j++;
      }
      if (text.charCodeAt(j) === 36) {
        const tag = text.slice(i, j + 1);
        const end = text.indexOf(tag, j + 1);
        out += text.slice(from, i) + MASK;
        i = end === -1 ? n : end + tag.length;
        from = i;
      } else {
        i++;
      }
    } else if (
      (c === 45 && text.charCodeAt(i + 1) === 45 && (!mysql || i + 2 >= n || isSpace(text.charCodeAt(i + 2)))) ||
      (mysql && c === 35)
    ) {
      // -- or # to the end of the line (MySQL wants a blank after --): removed, the line break kept.
      const nl = text.indexOf('\n', i);
      out += text.slice(from, i);
      i = nl === -1 ? n : nl;
      from = i;
      removedComment = true;
    } else if (c === 47 && text.charCodeAt(i + 1) === 42) {
      const start = i;
      i = endOfBlockComment(text, i, !mysql);
      // Removed; a blank keeps the tokens on either side apart (SELECT/**/1).
      const before = start > 0 ? text.charCodeAt(start - 1) : 32;
      const after = i < n ? text.charCodeAt(i) : 32;
      out += text.slice(from, start) + (isSpace(before) || isSpace(after) ? '' : ' ');
      from = i;
      removedComment = true;
    } else {
      i++;
    }
  }
  if (from === 0) return text;
  out += text.slice(from);
  // A comment removed at either end leaves the blank beside it.
  return removedComment ? out.trim() : out;
}

/**
 * The `db.parameters` tag of the SQL patches (only when the user opts in):
 * JSON of the values given with a statement (an array, or an object of named
 * placeholders), Buffers shown by their size, BigInts as strings, cut at
 * `max` characters. Never throws.
 */
export function serializeSqlParameters(values: unknown, max: number): string | undefined {
  if (values === null || typeof values !== 'object') return undefined;
  try {
    const json = JSON.stringify(values, function (this: Record<string, unknown>, key: string, value: unknown) {
      const raw = this[key];
      if (Buffer.isBuffer(raw) || raw instanceof Uint8Array) return `<${raw.length} bytes>`;
      if (typeof value === 'bigint') return value.toString();
      return value;
    });
    return truncate(json, max);
  } catch {
    return '[unserializable]';
  }
}

/**
 * `compute` remembered per statement text: applications send the same few
 * texts over and over, and masking or finding the verb is a scan of the
 * whole text on every call. Bounded: at most `size` texts (the memo is
 * cleared when full), and only texts up to `maxText` characters (a bulk
 * statement is computed each time, never kept).
 */
export function memoByText<T>(compute: (text: string) => T, size = 512, maxText = 2048): (text: string) => T {
  const memo = new Map<string, T>();
  return (text) => {
    if (text.length > maxText) return compute(text);
    let out = memo.get(text);
    if (out === undefined) {
      out = compute(text);
      if (memo.size >= size) memo.clear();
      memo.set(text, out);
    }
    return out;
  };
}

/**
 * `db.statement` of `text`: its literals masked by `mask`, cut at `max`. A
 * statement of megabytes (a bulk INSERT) is masked only as far as the tag can
 * show, four times `max`, unless masking shrank that part below `max`; a cut
 * inside a literal masks the rest of it (an unterminated string is masked to
 * its end).
 */
export function maskedStatement(text: string, max: number, mask: (text: string) => string): string {
  const window = max * 4;
  if (text.length > window) {
    const head = mask(text.slice(0, window));
    if (head.length > max) return truncate(head, max);
  }
  return truncate(mask(text), max);
}

/** Default longest `db.statement` of the SQL patches, in characters. */
export const DEFAULT_MAX_STATEMENT_LENGTH = 4096;

/** `maxStatementLength` of an SQL patch's options when it is a positive number, else the default. */
export function statementMaxLength(options: { maxStatementLength?: unknown }): number {
  const max = options.maxStatementLength;
  return typeof max === 'number' && max > 0 ? Math.floor(max) : DEFAULT_MAX_STATEMENT_LENGTH;
}
