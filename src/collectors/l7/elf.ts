/**
 * Where a shared library's functions return, for return probes without uretprobes: the ELF's dynamic
 * symbols give a function's address and size, its program headers the file offset of that address,
 * and a walk over its x86-64 machine code (instruction lengths, branch targets) the offsets of its
 * `ret` instructions. A uprobe on each of them sees the return value in rax.
 *
 * The walk is a linear sweep, which is sound only for code without data between the instructions and
 * without exits other than `ret`. So it refuses rather than guesses: an opcode it does not know, a
 * sweep that does not end exactly at the symbol's end, a direct branch into the middle of an
 * instruction or out of the function (a tail call, a cold part elsewhere), an indirect jump (a jump
 * table or a tail call through a pointer), a far return. Any of those and the function has no ret
 * sites (`reason` says why): a missed return would leave its entry probe's state behind.
 */

export interface FunctionSymbol {
  name: string;
  /** virtual address (the symbol's value) */
  address: number;
  size: number;
  /** where its first byte is in the file: what a uprobe is attached at */
  fileOffset: number;
}

export interface ElfImage {
  /** the file's bytes */
  data: Buffer;
  /** functions of .dynsym by name (the first definition of each) */
  functions: Map<string, FunctionSymbol>;
}

const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const PT_LOAD = 1;
const PF_X = 1;
const EM_X86_64 = 62;

/** Reads an ELF64 little-endian x86-64 shared object's defined function symbols; throws on anything else. */
export function readElf(data: Buffer): ElfImage {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (data[4] !== 2 || data[5] !== 1) throw new Error('not a 64-bit little-endian ELF');
  if (data.readUInt16LE(18) !== EM_X86_64) throw new Error('not x86-64 code');
  const u64 = (at: number): number => Number(data.readBigUInt64LE(at));
  const phoff = u64(32);
  const shoff = u64(40);
  const phentsize = data.readUInt16LE(54);
  const phnum = data.readUInt16LE(56);
  const shentsize = data.readUInt16LE(58);
  const shnum = data.readUInt16LE(60);
  const inFile = (at: number, n: number): boolean => at >= 0 && n >= 0 && at + n <= data.length;
  if (!inFile(phoff, phentsize * phnum) || !inFile(shoff, shentsize * shnum)) throw new Error('headers past the end of the file');

  // executable segments: vaddr -> file offset
  const segments: { vaddr: number; offset: number; size: number }[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (data.readUInt32LE(at) !== PT_LOAD || !(data.readUInt32LE(at + 4) & PF_X)) continue;
    segments.push({ offset: u64(at + 8), vaddr: u64(at + 16), size: u64(at + 32) });
  }
  const fileOffset = (vaddr: number, size: number): number | undefined => {
    const s = segments.find((g) => vaddr >= g.vaddr && vaddr + size <= g.vaddr + g.size);
    return s ? vaddr - s.vaddr + s.offset : undefined;
  };

  const functions = new Map<string, FunctionSymbol>();
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize;
    if (data.readUInt32LE(sh + 4) !== SHT_DYNSYM) continue;
    const symOff = u64(sh + 24);
    const symSize = u64(sh + 32);
    const entsize = u64(sh + 56) || 24;
    const strSh = shoff + data.readUInt32LE(sh + 40) * shentsize;
    if (!inFile(strSh, shentsize)) throw new Error('.dynsym names a string table past the end');
    const strOff = u64(strSh + 24);
    const strSize = u64(strSh + 32);
    if (!inFile(symOff, symSize) || !inFile(strOff, strSize)) throw new Error('.dynsym or .dynstr past the end of the file');
    for (let at = symOff; at + entsize <= symOff + symSize; at += entsize) {
      const info = data[at + 4]!;
      const shndx = data.readUInt16LE(at + 6);
      const address = u64(at + 8);
      const size = u64(at + 16);
      if ((info & 0xf) !== STT_FUNC || shndx === 0 || size === 0) continue;
      const nameAt = strOff + data.readUInt32LE(at);
      const end = data.indexOf(0, nameAt);
      if (end < 0 || end > strOff + strSize) continue;
      const name = data.toString('latin1', nameAt, end);
      const off = fileOffset(address, size);
      if (off === undefined || functions.has(name)) continue;
      functions.set(name, { name, address, size, fileOffset: off });
    }
  }
  return { data, functions };
}

// --- x86-64 instruction lengths --------------------------------------------------------------------

/** What the walk needs to know of one instruction. */
export interface Instruction {
  length: number;
  kind: 'ret' | 'jump' | 'branch' | 'indirect-jump' | 'other';
  /** a direct jump's or branch's target, relative to the instruction's start */
  target?: number;
}

// One-byte opcodes: M = has ModRM; then the immediate: b = 8 bits, z = 16/32, w = 16 bits,
// v = 16/32/64 (mov r, imm), wb = 16 + 8 (enter), a = a 64-bit address (moffs).
type Imm = 0 | 'b' | 'z' | 'w' | 'v' | 'wb' | 'a';
interface Op { modrm: boolean; imm: Imm; bad?: boolean }
const op = (modrm: boolean, imm: Imm = 0): Op => ({ modrm, imm });
const BAD: Op = { modrm: false, imm: 0, bad: true };

const ONE_BYTE: Op[] = (() => {
  const t: Op[] = new Array<Op>(256).fill(op(false));
  for (let row = 0; row < 4; row++) {
    for (const base of [row * 0x10, row * 0x10 + 8]) {
      for (let k = 0; k < 4; k++) t[base + k] = op(true); // add/or/adc/sbb/and/sub/xor/cmp r/m forms
      t[base + 4] = op(false, 'b');
      t[base + 5] = op(false, 'z');
    }
  }
  for (let b = 0x40; b <= 0x4f; b++) t[b] = BAD; // a second REX
  for (const b of [0x06, 0x07, 0x0e, 0x16, 0x17, 0x1e, 0x1f, 0x27, 0x2f, 0x37, 0x3f, 0x60, 0x61, 0x62, 0x82, 0x9a, 0xce, 0xd4, 0xd5, 0xd6, 0xea, 0xca, 0xcb]) t[b] = BAD;
  t[0x63] = op(true);
  t[0x68] = op(false, 'z');
  t[0x69] = op(true, 'z');
  t[0x6a] = op(false, 'b');
  t[0x6b] = op(true, 'b');
  t[0x80] = op(true, 'b');
  t[0x81] = op(true, 'z');
  t[0x83] = op(true, 'b');
  for (let b = 0x84; b <= 0x8f; b++) t[b] = op(true);
  for (let b = 0xa0; b <= 0xa3; b++) t[b] = op(false, 'a');
  t[0xa8] = op(false, 'b');
  t[0xa9] = op(false, 'z');
  for (let b = 0xb0; b <= 0xb7; b++) t[b] = op(false, 'b');
  for (let b = 0xb8; b <= 0xbf; b++) t[b] = op(false, 'v');
  t[0xc0] = op(true, 'b');
  t[0xc1] = op(true, 'b');
  t[0xc2] = op(false, 'w');
  t[0xc6] = op(true, 'b');
  t[0xc7] = op(true, 'z');
  t[0xc8] = op(false, 'wb');
  t[0xcd] = op(false, 'b');
  for (let b = 0xd0; b <= 0xd3; b++) t[b] = op(true);
  for (let b = 0xd8; b <= 0xdf; b++) t[b] = op(true);
  for (let b = 0xe4; b <= 0xe7; b++) t[b] = op(false, 'b');
  for (const b of [0xf6, 0xf7, 0xfe, 0xff]) t[b] = op(true);
  return t;
})();

// Two-byte opcodes (0F xx).
const TWO_BYTE: Op[] = (() => {
  const t: Op[] = new Array<Op>(256).fill(op(true));
  for (const b of [0x04, 0x0a, 0x0c, 0x0e, 0x0f, 0x24, 0x25, 0x26, 0x27, 0x36, 0x39, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x7a, 0x7b, 0xa6, 0xa7]) t[b] = BAD;
  for (const b of [0x05, 0x06, 0x07, 0x08, 0x09, 0x0b, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37, 0x77, 0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xaa]) t[b] = op(false);
  for (let b = 0xc8; b <= 0xcf; b++) t[b] = op(false);
  for (const b of [0x70, 0x71, 0x72, 0x73, 0xa4, 0xac, 0xba, 0xc2, 0xc4, 0xc5, 0xc6]) t[b] = op(true, 'b');
  return t;
})();

const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

/** Bytes of a ModRM byte and what follows it (SIB, displacement), from `at`; undefined past `end`. */
function modrmLength(code: Uint8Array, at: number, end: number): number | undefined {
  if (at >= end) return undefined;
  const modrm = code[at]!;
  const mod = modrm >> 6;
  const rm = modrm & 7;
  let n = 1;
  if (mod === 3) return n;
  if (rm === 4) {
    if (at + 1 >= end) return undefined;
    n++;
    if (mod === 0 && (code[at + 1]! & 7) === 5) n += 4;
  } else if (mod === 0 && rm === 5) n += 4; // rip-relative
  if (mod === 1) n += 1;
  else if (mod === 2) n += 4;
  return n;
}

/**
 * The instruction at `at` (code up to `end`): its length, and whether it returns, jumps or branches.
 * Undefined for an opcode this decoder does not know, or one cut off by `end`.
 */
export function decodeInstruction(code: Uint8Array, at: number, end = code.length): Instruction | undefined {
  let p = at;
  let opsize16 = false;
  while (p < end && PREFIXES.has(code[p]!)) {
    if (code[p] === 0x66) opsize16 = true;
    p++;
  }
  let rexW = false;
  if (p < end && (code[p]! & 0xf0) === 0x40) {
    rexW = (code[p]! & 8) !== 0;
    p++;
  }
  if (p >= end) return undefined;
  const b = code[p++]!;
  const done = (q: number, kind: Instruction['kind'] = 'other', target?: number): Instruction | undefined =>
    q > end ? undefined : { length: q - at, kind, ...(target !== undefined ? { target: target - at } : {}) };
  const rel8 = (q: number): number => q + 1 + ((code[q]! << 24) >> 24);
  const rel32 = (q: number): number => q + 4 + (code[q]! | code[q + 1]! << 8 | code[q + 2]! << 16 | code[q + 3]! << 24);

  // VEX (C4: three bytes, C5: two) and EVEX (62): always in 64-bit mode
  if (b === 0xc4 || b === 0xc5 || b === 0x62) {
    if (b === 0x62 && rexW) return undefined;
    const head = b === 0xc5 ? 1 : b === 0xc4 ? 2 : 3;
    if (p + head >= end) return undefined;
    const map = b === 0xc5 ? 1 : code[p]! & (b === 0x62 ? 7 : 0x1f);
    p += head;
    const opcode = code[p++]!;
    if (map < 1 || map > 3) return undefined;
    const m = modrmLength(code, p, end);
    if (m === undefined) return undefined;
    p += m;
    const imm8 = map === 3 || (map === 1 && ((opcode >= 0x70 && opcode <= 0x73) || opcode === 0xc2 || (opcode >= 0xc4 && opcode <= 0xc6)));
    return done(p + (imm8 ? 1 : 0));
  }

  if (b === 0x0f) {
    if (p >= end) return undefined;
    const b2 = code[p++]!;
    if (b2 === 0x38 || b2 === 0x3a) {
      if (p >= end) return undefined;
      p++; // the opcode
      const m = modrmLength(code, p, end);
      return m === undefined ? undefined : done(p + m + (b2 === 0x3a ? 1 : 0));
    }
    if (b2 >= 0x80 && b2 <= 0x8f) return p + 4 > end ? undefined : done(p + 4, 'branch', rel32(p));
    const t = TWO_BYTE[b2]!;
    if (t.bad) return undefined;
    let q = p;
    if (t.modrm) {
      const m = modrmLength(code, q, end);
      if (m === undefined) return undefined;
      q += m;
    }
    return done(q + (t.imm === 'b' ? 1 : 0));
  }

  if (b >= 0x70 && b <= 0x7f) return p + 1 > end ? undefined : done(p + 1, 'branch', rel8(p));
  if (b >= 0xe0 && b <= 0xe3) return p + 1 > end ? undefined : done(p + 1, 'branch', rel8(p));
  if (b === 0xeb) return p + 1 > end ? undefined : done(p + 1, 'jump', rel8(p));
  if (b === 0xe9) return p + 4 > end ? undefined : done(p + 4, 'jump', rel32(p));
  if (b === 0xe8) return done(p + 4);
  if (b === 0xc3) return done(p, 'ret');
  if (b === 0xc2) return done(p + 2, 'ret');

  const t = ONE_BYTE[b]!;
  if (t.bad) return undefined;
  let q = p;
  let reg = 0;
  if (t.modrm) {
    if (q >= end) return undefined;
    reg = (code[q]! >> 3) & 7;
    const m = modrmLength(code, q, end);
    if (m === undefined) return undefined;
    q += m;
  }
  const z = opsize16 ? 2 : 4;
  switch (t.imm) {
    case 'b': q += 1; break;
    case 'w': q += 2; break;
    case 'z': q += z; break;
    case 'v': q += rexW ? 8 : z; break;
    case 'wb': q += 3; break;
    case 'a': q += 8; break; // moffs: a 64-bit address (no 0x67 in compiled code)
  }
  // test r/m, imm is the only group with an immediate on some of its members
  if (b === 0xf6 && reg < 2) q += 1;
  if (b === 0xf7 && reg < 2) q += z;
  if (b === 0xff && (reg === 4 || reg === 5)) return done(q, 'indirect-jump');
  if (b === 0xff && reg === 7) return undefined;
  return done(q);
}

export type RetSites = { ok: true; offsets: number[] } | { ok: false; reason: string };

/**
 * The offsets (from the function's start) of every ret in `code`, the function's bytes, or why the
 * walk could not be trusted.
 */
export function retSites(code: Uint8Array): RetSites {
  const starts = new Set<number>();
  const targets: number[] = [];
  const rets: number[] = [];
  let at = 0;
  while (at < code.length) {
    const ins = decodeInstruction(code, at, code.length);
    if (!ins) return { ok: false, reason: `unknown instruction at +0x${at.toString(16)} (${Buffer.from(code.subarray(at, at + 4)).toString('hex')})` };
    starts.add(at);
    if (ins.kind === 'ret') rets.push(at);
    else if (ins.kind === 'indirect-jump') return { ok: false, reason: `an indirect jump at +0x${at.toString(16)} (a jump table or a tail call)` };
    else if (ins.target !== undefined) {
      const to = at + ins.target;
      if (to < 0 || to >= code.length) return { ok: false, reason: `a ${ins.kind} out of the function at +0x${at.toString(16)} (a tail call or a cold part)` };
      targets.push(to);
    }
    at += ins.length;
  }
  const stray = targets.find((t) => !starts.has(t));
  if (stray !== undefined) return { ok: false, reason: `a branch into the middle of an instruction (+0x${stray.toString(16)}): the walk went wrong` };
  if (rets.length === 0) return { ok: false, reason: 'no ret' };
  return { ok: true, offsets: rets };
}

/** A function's entry and ret sites as file offsets, or why it has none. */
export function functionSites(image: ElfImage, name: string): { entry: number; rets: number[] } | { missing: string } {
  const f = image.functions.get(name);
  if (!f) return { missing: `${name} is not exported` };
  if (f.fileOffset + f.size > image.data.length) return { missing: `${name} lies past the end of the file` };
  const r = retSites(image.data.subarray(f.fileOffset, f.fileOffset + f.size));
  if (!r.ok) return { missing: `${name}: ${r.reason}` };
  return { entry: f.fileOffset, rets: r.offsets.map((o) => f.fileOffset + o) };
}
