/**
 * Small readers over captured bytes shared by the parsers: text out of bytes (control characters
 * replaced, length bounded), line ends, and decimal and hexadecimal numbers with the bounds a wire
 * protocol can declare. Every reader is total: out-of-range input gives undefined, never an exception.
 */

const CR = 0x0d;
const LF = 0x0a;

/** Bytes `[start, end)` as text, one character per byte, control characters as `?`, at most `max` characters. */
export function text(b: Uint8Array, start = 0, end = b.length, max = Infinity): string {
  const stop = Math.min(end, b.length, start + max);
  let s = '';
  for (let i = start; i < stop; i++) {
    const c = b[i]!;
    s += c >= 0x20 && c !== 0x7f ? String.fromCharCode(c) : '?';
  }
  return s;
}

/** The index of the next CRLF at or after `from`, or -1 within the first `limit` bytes. */
export function indexOfCrlf(b: Uint8Array, from = 0, limit = b.length): number {
  const stop = Math.min(b.length - 1, from + limit);
  for (let i = from; i < stop; i++) if (b[i] === CR && b[i + 1] === LF) return i;
  return -1;
}

/** The index of the next `\r\n\r\n` at or after `from`, or -1. */
export function indexOfBlankLine(b: Uint8Array, from = 0): number {
  for (let i = from; i + 3 < b.length; i++) {
    if (b[i] === CR && b[i + 1] === LF && b[i + 2] === CR && b[i + 3] === LF) return i;
  }
  return -1;
}

/** A non-negative decimal integer written in `[start, end)`, at most 15 digits; undefined if not one. */
export function decimal(b: Uint8Array, start: number, end: number): number | undefined {
  if (end <= start || end - start > 15) return undefined;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) return undefined;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/** A signed decimal integer (a leading `-` allowed); undefined if not one. */
export function signedDecimal(b: Uint8Array, start: number, end: number): number | undefined {
  if (b[start] === 0x2d) {
    const n = decimal(b, start + 1, end);
    return n === undefined ? undefined : -n;
  }
  return decimal(b, start, end);
}

/** A hexadecimal integer in `[start, end)`, at most 12 digits; undefined if not one. */
export function hex(b: Uint8Array, start: number, end: number): number | undefined {
  if (end <= start || end - start > 12) return undefined;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = b[i]! | 0x20;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x61 + 10 : -1;
    if (d < 0) return undefined;
    n = n * 16 + d;
  }
  return n;
}

/** Does `b` start with the ASCII `prefix` at `at`? */
export function startsWith(b: Uint8Array, prefix: string, at = 0): boolean {
  if (b.length - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[at + i] !== prefix.charCodeAt(i)) return false;
  return true;
}

/** A big-endian unsigned 32-bit integer at `at` (the caller checked the bounds). */
export const u32 = (b: Uint8Array, at: number): number => ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;

/** Keeps the first `max` characters of `s`, marking a cut with `…`. */
export const clip = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max)}…` : s);

/** Are the bytes of `b` the start of the ASCII `s` (all of `b`, as far as `s` goes)? */
export function isPrefixOf(b: Uint8Array, s: string): boolean {
  const n = Math.min(b.length, s.length);
  for (let i = 0; i < n; i++) if (b[i] !== s.charCodeAt(i)) return false;
  return true;
}
