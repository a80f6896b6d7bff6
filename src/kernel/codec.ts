/**
 * Runtime half of the generated codecs: little-endian readers and writers for the integer and string
 * fields of kernel structs, scalar codecs for map keys, and the per-CPU sum. The generated modules in
 * ./generated call these; nothing here knows any struct.
 *
 * 64-bit integers decode to `number`: exact up to 2^53 (ids, counts, and nanosecond totals up to 104
 * days), beyond which only the lowest bits round.
 */

export interface Codec<T> {
  readonly name: string;
  readonly size: number;
  decode(v: DataView, o: number): T;
  encode(x: T, v: DataView, o: number): void;
}

const TWO_32 = 2 ** 32;

export const readU8 = (v: DataView, o: number): number => v.getUint8(o);
export const readU16 = (v: DataView, o: number): number => v.getUint16(o, true);
export const readU32 = (v: DataView, o: number): number => v.getUint32(o, true);
export const readU64 = (v: DataView, o: number): number => v.getUint32(o, true) + v.getUint32(o + 4, true) * TWO_32;
export const readI8 = (v: DataView, o: number): number => v.getInt8(o);
export const readI16 = (v: DataView, o: number): number => v.getInt16(o, true);
export const readI32 = (v: DataView, o: number): number => v.getInt32(o, true);
export const readI64 = (v: DataView, o: number): number => v.getUint32(o, true) + v.getInt32(o + 4, true) * TWO_32;

export const writeU8 = (v: DataView, o: number, x: number): void => v.setUint8(o, x);
export const writeU16 = (v: DataView, o: number, x: number): void => v.setUint16(o, x, true);
export const writeU32 = (v: DataView, o: number, x: number): void => v.setUint32(o, x, true);
export const writeU64 = (v: DataView, o: number, x: number): void => v.setBigUint64(o, BigInt(Math.trunc(x)), true);
export const writeI8 = (v: DataView, o: number, x: number): void => v.setInt8(o, x);
export const writeI16 = (v: DataView, o: number, x: number): void => v.setInt16(o, x, true);
export const writeI32 = (v: DataView, o: number, x: number): void => v.setInt32(o, x, true);
export const writeI64 = (v: DataView, o: number, x: number): void => v.setBigInt64(o, BigInt(Math.trunc(x)), true);

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** A NUL-terminated string in a fixed-size char array. */
export function readCString(v: DataView, o: number, size: number): string {
  const bytes = new Uint8Array(v.buffer, v.byteOffset + o, size);
  const end = bytes.indexOf(0);
  return utf8.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

export function writeCString(v: DataView, o: number, size: number, x: string): void {
  const bytes = new Uint8Array(v.buffer, v.byteOffset + o, size);
  bytes.fill(0);
  bytes.set(new TextEncoder().encode(x).subarray(0, size - 1));
}

function scalar(name: string, size: number, read: typeof readU8, write: typeof writeU8): Codec<number> {
  return { name, size, decode: read, encode: (x, v, o) => write(v, o, x) };
}

export const u8Codec = scalar('u8', 1, readU8, writeU8);
export const u16Codec = scalar('u16', 2, readU16, writeU16);
export const u32Codec = scalar('u32', 4, readU32, writeU32);
export const u64Codec = scalar('u64', 8, readU64, writeU64);
export const i8Codec = scalar('i8', 1, readI8, writeI8);
export const i16Codec = scalar('i16', 2, readI16, writeI16);
export const i32Codec = scalar('i32', 4, readI32, writeI32);
export const i64Codec = scalar('i64', 8, readI64, writeI64);

export function encode<T>(codec: Codec<T>, x: T): Buffer {
  const buf = Buffer.alloc(codec.size);
  codec.encode(x, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), 0);
  return buf;
}

export function decode<T>(codec: Codec<T>, buf: Uint8Array, offset = 0): T {
  return codec.decode(new DataView(buf.buffer, buf.byteOffset, buf.byteLength), offset);
}

/**
 * Adds two decoded values field by field (numbers add, arrays and nested structs recurse, strings keep
 * the first): how the per-CPU copies of one per-CPU map entry become one total.
 */
export function sumValues<T>(a: T, b: T): T {
  if (typeof a === 'number' && typeof b === 'number') return (a + b) as T;
  if (Array.isArray(a) && Array.isArray(b)) return a.map((x: unknown, i) => sumValues(x, b[i] as unknown)) as T;
  if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(a)) out[k] = sumValues(x, (b as Record<string, unknown>)[k]);
    return out as T;
  }
  return a;
}
