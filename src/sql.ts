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
