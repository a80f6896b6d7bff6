/**
 * HPACK (RFC 7541): the decoder for one direction of one HTTP/2 connection. It keeps that
 * direction's dynamic table (insertions, evictions by size, size updates) and decodes header blocks
 * into fields, Huffman-coded strings included.
 *
 * A decoder that may have missed part of the connection — joined mid-stream, or a header block that
 * could not be decoded because its bytes were not captured — cannot trust its dynamic table. A
 * reference to an index it never saw makes the field unknown and the table `reliable = false`; a
 * block that fails to parse does the same. From then on every dynamic-table reference gives an
 * unknown field, never a guess; static-table entries (`:status 200` is index 8) and literal values
 * still decode, because they need no earlier state. Until then, a table that began empty on a
 * connection joined mid-stream is right for the entries it did see: new entries take the lowest
 * indices, so ones it inserted are where the encoder put them.
 */
import { huffmanDecode } from './huffman.js';
import { text } from './bytes.js';

export interface HeaderField {
  name: string;
  value: string;
}

/** RFC 7541 Appendix A. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

const STATIC_COUNT = STATIC_TABLE.length; // 61
/** RFC 7541 4.1: an entry's size is its name and value lengths in octets plus 32 */
const ENTRY_OVERHEAD = 32;

export interface DecodedBlock {
  fields: HeaderField[];
  /** fields that referenced dynamic entries this decoder does not have (or no longer trusts) */
  unknown: number;
  /** the block was cut or malformed: fields after the failure are missing */
  failed: boolean;
}

class Malformed extends Error {}

/** An HPACK integer with an `n`-bit prefix at `at` (RFC 7541 5.1), and where it ends; bounded to 2^28. */
export function readInteger(b: Uint8Array, at: number, n: number): { value: number; next: number } {
  if (at >= b.length) throw new Malformed('integer past the block');
  const mask = (1 << n) - 1;
  let value = b[at]! & mask;
  let i = at + 1;
  if (value < mask) return { value, next: i };
  let shift = 0;
  for (;;) {
    if (i >= b.length) throw new Malformed('integer past the block');
    const byte = b[i++]!;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (value > 2 ** 28) throw new Malformed('integer too large');
    if ((byte & 0x80) === 0) return { value, next: i };
  }
}

interface Entry {
  name: string;
  value: string;
  size: number;
}

export class HpackDecoder {
  private entries: Entry[] = [];
  private size = 0;
  private max: number;
  /** false once a reference or a block could not be decoded: dynamic entries are no longer used */
  reliable = true;

  /**
   * @param maxTableSize the table size the encoder starts from (SETTINGS_HEADER_TABLE_SIZE, 4096 by default)
   * @param memoryLimit the most this decoder will hold whatever a peer announces; past it, entries are
   *   evicted early, and a later reference to one makes the table unreliable rather than using memory
   * @param maxString the longest string decoded
   */
  constructor(
    maxTableSize = 4096,
    private readonly memoryLimit = 65536,
    private readonly maxString = 16384,
  ) {
    this.max = Math.min(maxTableSize, memoryLimit);
  }

  get dynamicSize(): number {
    return this.size;
  }

  get dynamicCount(): number {
    return this.entries.length;
  }

  /** The connection lost part of this direction (a block skipped unread): distrust the table from here. */
  distrust(): void {
    this.reliable = false;
    this.entries = [];
    this.size = 0;
  }

  decode(block: Uint8Array): DecodedBlock {
    const out: DecodedBlock = { fields: [], unknown: 0, failed: false };
    let at = 0;
    try {
      while (at < block.length) at = this.field(block, at, out);
    } catch (err) {
      if (!(err instanceof Malformed)) throw err;
      out.failed = true;
      this.distrust();
    }
    return out;
  }

  /** Decodes one field representation at `at`; returns where the next starts. */
  private field(b: Uint8Array, at: number, out: DecodedBlock): number {
    const first = b[at]!;
    if (first & 0x80) {
      const { value: index, next } = readInteger(b, at, 7);
      if (index === 0) throw new Malformed('index 0');
      const e = this.lookup(index);
      if (e) out.fields.push({ name: e.name, value: e.value });
      else out.unknown++;
      return next;
    }
    if ((first & 0xe0) === 0x20) {
      const { value, next } = readInteger(b, at, 5);
      this.max = Math.min(value, this.memoryLimit);
      this.evict(0);
      return next;
    }
    // literals: 01 incremental indexing (6-bit index), 0000 without indexing and 0001 never indexed (4-bit)
    const indexing = (first & 0xc0) === 0x40;
    const { value: index, next } = readInteger(b, at, indexing ? 6 : 4);
    let name: string | undefined;
    let pos = next;
    if (index === 0) {
      const s = this.string(b, pos);
      name = s.value;
      pos = s.next;
    } else {
      name = this.lookup(index)?.name;
    }
    const v = this.string(b, pos);
    if (name === undefined) out.unknown++;
    else out.fields.push({ name, value: v.value });
    if (indexing) {
      if (name === undefined) this.distrust(); // an entry we cannot name shifts every index after it
      else this.insert(name, v.value, v.octets);
    }
    return v.next;
  }

  /** The entry at `index`, undefined for one this decoder does not have or trust (and then the table is not trusted). */
  private lookup(index: number): { name: string; value: string } | undefined {
    if (index <= STATIC_COUNT) {
      const [name, value] = STATIC_TABLE[index - 1]!;
      return { name, value };
    }
    const e = this.reliable ? this.entries[index - STATIC_COUNT - 1] : undefined;
    if (!e) this.reliable = false;
    return e;
  }

  private string(b: Uint8Array, at: number): { value: string; octets: number; next: number } {
    if (at >= b.length) throw new Malformed('string past the block');
    const huffman = (b[at]! & 0x80) !== 0;
    const { value: length, next } = readInteger(b, at, 7);
    if (next + length > b.length) throw new Malformed('string past the block');
    if (length > this.maxString) throw new Malformed('string too long');
    const raw = b.subarray(next, next + length);
    const bytes = huffman ? huffmanDecode(raw, this.maxString * 2) : raw;
    if (!bytes) throw new Malformed('bad Huffman string');
    return { value: text(bytes), octets: bytes.length, next: next + length };
  }

  private insert(name: string, value: string, valueOctets: number): void {
    if (!this.reliable) return;
    const size = name.length + valueOctets + ENTRY_OVERHEAD;
    this.evict(size);
    if (size > this.max) return; // RFC 7541 4.4: an entry larger than the table empties it
    this.entries.unshift({ name, value, size });
    this.size += size;
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.entries.length > 0 && this.size + room > this.max) this.size -= this.entries.pop()!.size;
  }
}
