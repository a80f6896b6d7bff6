/**
 * The HPACK Huffman code (RFC 7541 Appendix B) and its decoder. The code in the RFC is canonical:
 * codes of one length are consecutive in symbol order, and each length starts where the previous
 * one ended, shifted left by the difference in length. So the table is written here as the symbols
 * of each code length, in order, and the codes are computed from it (`huffmanCode` gives them back
 * for the tests to hold to the RFC's listing). Symbol 256 is EOS.
 */

/** The RFC's Appendix B, by code length: `[length, symbols in ascending code order]`. */
const BY_LENGTH: ReadonlyArray<readonly [number, readonly number[]]> = [
  [5, [48, 49, 50, 97, 99, 101, 105, 111, 115, 116]],
  [6, [32, 37, 45, 46, 47, 51, 52, 53, 54, 55, 56, 57, 61, 65, 95, 98, 100, 102, 103, 104, 108, 109, 110, 112, 114, 117]],
  [7, [58, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 89, 106, 107, 113, 118, 119, 120, 121, 122]],
  [8, [38, 42, 44, 59, 88, 90]],
  [10, [33, 34, 40, 41, 63]],
  [11, [39, 43, 124]],
  [12, [35, 62]],
  [13, [0, 36, 64, 91, 93, 126]],
  [14, [94, 125]],
  [15, [60, 96, 123]],
  [19, [92, 195, 208]],
  [20, [128, 130, 131, 162, 184, 194, 224, 226]],
  [21, [153, 161, 167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230]],
  [22, [129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173, 178, 181, 185, 186, 187, 189, 190, 196, 198, 228, 232, 233]],
  [23, [1, 135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165, 166, 168, 174, 175, 180, 182, 183, 188, 191, 197, 231, 239]],
  [24, [9, 142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237]],
  [25, [199, 207, 234, 235]],
  [26, [192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255]],
  [27, [203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252, 253, 254]],
  [28, [2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 127, 220, 249]],
  [30, [10, 13, 22, 256]],
];

export const EOS = 256;
const MAX_LENGTH = 30;

/** Per code length: its first code, and where its symbols start in `SYMBOLS`. */
const FIRST = new Array<number>(MAX_LENGTH + 1).fill(0);
const COUNT = new Array<number>(MAX_LENGTH + 1).fill(0);
const OFFSET = new Array<number>(MAX_LENGTH + 1).fill(0);
const SYMBOLS: number[] = [];
const CODES = new Map<number, { code: number; length: number }>();

{
  let code = 0;
  let prev = 0;
  for (const [length, symbols] of BY_LENGTH) {
    code *= 2 ** (length - prev);
    FIRST[length] = code;
    COUNT[length] = symbols.length;
    OFFSET[length] = SYMBOLS.length;
    for (const s of symbols) {
      CODES.set(s, { code, length });
      SYMBOLS.push(s);
      code++;
    }
    prev = length;
  }
}

/** A symbol's code and length (for tests and encoders in tests). */
export const huffmanCode = (symbol: number): { code: number; length: number } | undefined => CODES.get(symbol);

/**
 * Decodes a Huffman-coded string; undefined when it is not valid HPACK Huffman: EOS inside, padding
 * longer than 7 bits or not all ones (RFC 7541 5.2).
 */
export function huffmanDecode(b: Uint8Array, max = 65536): Uint8Array | undefined {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  for (let i = 0; i < b.length; i++) {
    const byte = b[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      length++;
      if (length > MAX_LENGTH) return undefined;
      const index = code - FIRST[length]!;
      if (COUNT[length]! > 0 && index >= 0 && index < COUNT[length]!) {
        const symbol = SYMBOLS[OFFSET[length]! + index]!;
        if (symbol === EOS || out.length >= max) return undefined;
        out.push(symbol);
        code = 0;
        length = 0;
      }
    }
  }
  // what is left must be a prefix of EOS: at most 7 bits, all ones
  if (length > 7 || code !== 2 ** length - 1) return undefined;
  return Uint8Array.from(out);
}

/** Encodes bytes with the Huffman code (for tests: how a client would). */
export function huffmanEncode(b: Uint8Array): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const byte of b) {
    const { code, length } = CODES.get(byte)!;
    for (let i = length - 1; i >= 0; i--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** i) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Uint8Array.from(out);
}
