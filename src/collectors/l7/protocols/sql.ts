/**
 * SQL text for records: the query's shape (literals as `?`, `IN` lists and multi-row `VALUES`
 * collapsed, comments dropped, whitespace collapsed, length bounded), which is what metrics are keyed
 * by, and a sample with only its string literals masked (`'***'`), which is what an event may show:
 * passwords sit in string literals (`ALTER ROLE app PASSWORD '...'`), numbers rarely matter.
 *
 * One scanner does both. It knows standard strings with `''` escapes, `E'...'` strings with backslash
 * escapes, dollar-quoted strings (`$tag$...$tag$`), quoted identifiers (kept), `--` and `/* *\/`
 * comments (nested, as PostgreSQL allows), numbers (with decimals, exponents and a sign where the sign
 * cannot be an operator) and `$1` parameters (kept). Unterminated literals run to the end of the text.
 */
import { clip } from './bytes.js';

const MASKED_STRING = "'***'";

type Mode = 'shape' | 'mask';

const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isWord = (c: string): boolean => /[A-Za-z0-9_$]/.test(c);

/** Where the string literal opening at `i` (a quote) ends: the index after its closing quote. */
function endOfString(q: string, i: number, backslashes: boolean): number {
  let j = i + 1;
  while (j < q.length) {
    const c = q[j]!;
    if (backslashes && c === '\\') j += 2;
    else if (c === "'") {
      if (q[j + 1] === "'") j += 2;
      else return j + 1;
    } else j++;
  }
  return q.length;
}

/** A dollar quote's tag opening at `i` (`$$` or `$tag$`), or undefined if `$` starts something else. */
function dollarTag(q: string, i: number): string | undefined {
  const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(q.slice(i, i + 66));
  return m ? m[0] : undefined;
}

function scan(q: string, mode: Mode, max: number): string {
  let out = '';
  let i = 0;
  let space = false;
  /** the last significant character written: decides whether a `-` is a sign */
  let last = '';
  const put = (s: string): void => {
    if (space && out.length > 0) out += ' ';
    space = false;
    out += s;
    last = s[s.length - 1]!;
  };
  while (i < q.length && out.length <= max) {
    const c = q[i]!;
    const next = q[i + 1] ?? '';
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f') {
      space = true;
      i++;
    } else if (c === '-' && next === '-') {
      const nl = q.indexOf('\n', i);
      i = nl < 0 ? q.length : nl + 1;
      space = true;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      let j = i + 2;
      while (j < q.length && depth > 0) {
        if (q[j] === '/' && q[j + 1] === '*') {
          depth++;
          j += 2;
        } else if (q[j] === '*' && q[j + 1] === '/') {
          depth--;
          j += 2;
        } else j++;
      }
      i = j;
      space = true;
    } else if (c === "'" || ((c === 'E' || c === 'e') && next === "'" && !isWord(last))) {
      const open = c === "'" ? i : i + 1;
      i = endOfString(q, open, c !== "'");
      put(mode === 'shape' ? '?' : MASKED_STRING);
    } else if (c === '"') {
      const end = q.indexOf('"', i + 1);
      const stop = end < 0 ? q.length : end + 1;
      put(q.slice(i, stop));
      i = stop;
    } else if (c === '$' && isDigit(next)) {
      let j = i + 1;
      while (j < q.length && isDigit(q[j]!)) j++;
      put(q.slice(i, j));
      i = j;
    } else if (c === '$' && dollarTag(q, i) !== undefined) {
      const tag = dollarTag(q, i)!;
      const end = q.indexOf(tag, i + tag.length);
      i = end < 0 ? q.length : end + tag.length;
      put(mode === 'shape' ? '?' : MASKED_STRING);
    } else if ((isDigit(c) || (c === '.' && isDigit(next)) || (c === '-' && (isDigit(next) || next === '.') && !/[\w)\]"'?]/.test(last))) && !isWord(q[i - 1] ?? ' ')) {
      let j = c === '-' ? i + 1 : i;
      while (j < q.length && (isDigit(q[j]!) || q[j] === '.' || q[j] === '_')) j++;
      if ((q[j] === 'e' || q[j] === 'E') && /[-+\d]/.test(q[j + 1] ?? '')) {
        j += 2;
        while (j < q.length && isDigit(q[j]!)) j++;
      }
      put(mode === 'shape' ? '?' : q.slice(i, j));
      i = j;
    } else if (isWord(c)) {
      let j = i;
      while (j < q.length && isWord(q[j]!)) j++;
      put(q.slice(i, j));
      i = j;
    } else {
      put(c);
      i++;
    }
  }
  return out;
}

const IN_LIST = /\bIN\s*\(\s*(?:\?|\$\d+)(?:\s*,\s*(?:\?|\$\d+))*\s*\)/gi;
const VALUES_ROWS = /\bVALUES\s*(\((?:\s*(?:\?|\$\d+|DEFAULT|NULL)\s*,?)*\))(?:\s*,\s*\((?:\s*(?:\?|\$\d+|DEFAULT|NULL)\s*,?)*\))+/gi;

/** The query's shape: literals as `?`, lists collapsed, comments and extra whitespace gone, at most `max` characters. */
export function normalizeSql(query: string, max = 1024): string {
  const shape = scan(query, 'shape', max * 2)
    .replace(IN_LIST, 'IN (?)')
    .replace(VALUES_ROWS, 'VALUES $1');
  return clip(shape, max);
}

/** The query with its string literals masked and whitespace collapsed, at most `max` characters. */
export function maskSql(query: string, max = 1024): string {
  return clip(scan(query, 'mask', max), max);
}

/** The statement's verb (`SELECT`, `INSERT`, `WITH`), uppercased; undefined for an empty query. */
export function sqlVerb(query: string): string | undefined {
  const m = /^[\s(]*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)[\s(]*)*([A-Za-z]+)/.exec(query);
  return m ? m[1]!.toUpperCase() : undefined;
}

/** The verb of a CommandComplete tag (`SELECT 3` → `SELECT`, `CREATE TABLE` → `CREATE TABLE`). */
export function tagVerb(tag: string): string {
  return tag.replace(/(\s+\d+)+$/, '');
}
