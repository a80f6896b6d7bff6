/**
 * ELF64 little-endian (x86-64) reading for the symbolizer: the file's identity (GNU build-id), its
 * PT_LOAD segments (to turn a file offset into the file's own virtual address) and its function
 * symbols (.symtab, else .dynsym) as a sorted, binary-searched table.
 *
 * Reads only the headers and the sections it needs, at their offsets, through an open descriptor (a
 * file, or /proc/PID/mem for the vDSO: `base` is where the image starts); never a whole file, since
 * a binary may be hundreds of megabytes. It does not demangle, read DWARF, or handle 32-bit or
 * big-endian files (those answer null, and their frames stay `module+0xOFFSET`).
 */
import { readSync } from 'node:fs';

const PT_LOAD = 1;
const PT_NOTE = 4;
const SHT_SYMTAB = 2;
const SHT_NOTE = 7;
const SHT_NOBITS = 8;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const NT_GNU_BUILD_ID = 3;
const SYM_SIZE = 24;
/** symbols read per chunk, and the window of the string table held at once */
const SYM_CHUNK = 4096;
const STR_WINDOW = 1 << 20;
/** a section header table or note larger than this is not believed */
const MAX_HEADERS = 1 << 16;
const MAX_NOTE = 1 << 16;
/** the longest name kept; cleanFrame cuts at 512 anyway */
const MAX_NAME = 1024;

export interface LoadSegment {
  readonly offset: number;
  readonly filesz: number;
  readonly vaddr: number;
}

export interface ElfSection {
  readonly name: string;
  readonly type: number;
  readonly addr: number;
  readonly offset: number;
  readonly size: number;
  readonly link: number;
  readonly entsize: number;
}

export interface ElfInfo {
  readonly type: number;
  /** lowercase hex, or undefined when the file carries none */
  readonly buildId: string | undefined;
  readonly loads: readonly LoadSegment[];
  readonly sections: readonly ElfSection[];
}

/** A little-endian u64 as a Number: exact below 2^53, which every user-space vaddr and file offset is. */
function u64(b: Buffer, at: number): number {
  return b.readUInt32LE(at + 4) * 0x1_0000_0000 + b.readUInt32LE(at);
}

function readAt(fd: number, base: number, offset: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, base + offset + got);
    if (n <= 0) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** The index of the last of ascending `starts` at or before `addr`, or -1 when there is none. */
export function lastAtOrBefore(starts: ArrayLike<number>, addr: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  if (hi < 0 || addr < starts[0]!) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= addr) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Sorted address ranges with names; a lookup is a binary search. Addresses are Numbers relative to `base`. */
export class SymbolTable {
  constructor(
    /** ascending */
    readonly starts: Float64Array,
    /** exclusive; ends[i] > starts[i] */
    readonly ends: Float64Array,
    readonly names: readonly string[],
  ) {}

  get size(): number {
    return this.names.length;
  }

  /** The name of the symbol covering `addr`, or undefined. */
  lookup(addr: number): string | undefined {
    const lo = lastAtOrBefore(this.starts, addr);
    if (lo < 0) return undefined;
    // a small symbol nested in a larger one may end before addr while the outer one still covers it
    for (let i = lo; i >= 0 && i > lo - 4; i--) if (addr < this.ends[i]!) return this.names[i];
    return undefined;
  }

  /**
   * Builds a table from unsorted entries: `size` 0 means "up to the next symbol" (capped by `limit`,
   * the end of what contains it, when known). `rank` is 0 for a global symbol, 1 for a weak one, 2
   * for a local one. Of several symbols at one address a global or weak one is kept over a local one
   * (glibc's debug symbols hold local aliases like `__GI___getpid`), then the one with fewer leading
   * underscores (`getpid`, a weak alias, over `__getpid`: the name people call), then the lowest
   * rank, then the shorter name.
   */
  static build(
    starts: readonly number[],
    sizes: readonly number[],
    limits: readonly number[],
    ranks: readonly number[],
    names: readonly string[],
  ): SymbolTable {
    const order = Array.from(starts.keys()).sort((a, b) => starts[a]! - starts[b]! || better(a, b));
    function better(a: number, b: number): number {
      return (ranks[a] === 2 ? 1 : 0) - (ranks[b] === 2 ? 1 : 0) || underscores(names[a]!) - underscores(names[b]!) || ranks[a]! - ranks[b]! || names[a]!.length - names[b]!.length;
    }
    const kept: number[] = [];
    for (const i of order) if (!kept.length || starts[kept[kept.length - 1]!] !== starts[i]) kept.push(i);
    const n = kept.length;
    const st = new Float64Array(n);
    const en = new Float64Array(n);
    const nm: string[] = new Array<string>(n);
    for (let k = 0; k < n; k++) {
      const i = kept[k]!;
      const start = starts[i]!;
      const next = k + 1 < n ? starts[kept[k + 1]!]! : Infinity;
      let end = sizes[i]! > 0 ? start + sizes[i]! : Math.min(next, limits[i]!);
      if (!(end > start) || end === Infinity) end = start + 1;
      st[k] = start;
      en[k] = end;
      nm[k] = names[i]!;
    }
    return new SymbolTable(st, en, nm);
  }
}

function underscores(s: string): number {
  let i = 0;
  while (s.charCodeAt(i) === 95) i++;
  return i;
}

/** The headers of an ELF64 LE file (or image at `base` in `fd`), or null when it is not one. */
export function readElfInfo(fd: number, base = 0): ElfInfo | null {
  const eh = readAt(fd, base, 0, 64);
  if (eh.length < 64 || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return null;
  const type = eh.readUInt16LE(16);
  const phoff = u64(eh, 32);
  const shoff = u64(eh, 40);
  const phentsize = eh.readUInt16LE(54);
  const phnum = eh.readUInt16LE(56);
  const shentsize = eh.readUInt16LE(58);
  let shnum = eh.readUInt16LE(60);
  let shstrndx = eh.readUInt16LE(62);

  const loads: LoadSegment[] = [];
  const notes: { offset: number; size: number; align: number }[] = [];
  if (phoff && phnum && phentsize >= 56 && phnum < MAX_HEADERS) {
    const ph = readAt(fd, base, phoff, phnum * phentsize);
    for (let i = 0; (i + 1) * phentsize <= ph.length; i++) {
      const at = i * phentsize;
      const ptype = ph.readUInt32LE(at);
      if (ptype === PT_LOAD) loads.push({ offset: u64(ph, at + 8), vaddr: u64(ph, at + 16), filesz: u64(ph, at + 32) });
      else if (ptype === PT_NOTE) notes.push({ offset: u64(ph, at + 8), size: u64(ph, at + 32), align: u64(ph, at + 48) });
    }
  }

  const sections: ElfSection[] = [];
  if (shoff && shentsize >= 64) {
    // more than 0xff00 sections: the real count and string-table index live in section 0
    if (shnum === 0 || shstrndx === 0xffff) {
      const s0 = readAt(fd, base, shoff, 64);
      if (s0.length === 64) {
        if (shnum === 0) shnum = u64(s0, 32);
        if (shstrndx === 0xffff) shstrndx = s0.readUInt32LE(44);
      }
    }
    if (shnum > 0 && shnum < MAX_HEADERS) {
      const sh = readAt(fd, base, shoff, shnum * shentsize);
      const raw: Omit<ElfSection, 'name'>[] = [];
      const nameOffs: number[] = [];
      for (let i = 0; (i + 1) * shentsize <= sh.length; i++) {
        const at = i * shentsize;
        nameOffs.push(sh.readUInt32LE(at));
        raw.push({
          type: sh.readUInt32LE(at + 4),
          addr: u64(sh, at + 16),
          offset: u64(sh, at + 24),
          size: u64(sh, at + 32),
          link: sh.readUInt32LE(at + 40),
          entsize: u64(sh, at + 56),
        });
      }
      const strs = raw[shstrndx];
      const names = strs && strs.type !== SHT_NOBITS && strs.size < STR_WINDOW * 16 ? readAt(fd, base, strs.offset, strs.size) : Buffer.alloc(0);
      raw.forEach((s, i) => sections.push({ ...s, name: cString(names, nameOffs[i]!) }));
    }
  }
  if (!notes.length) {
    for (const s of sections) if (s.type === SHT_NOTE) notes.push({ offset: s.offset, size: s.size, align: 4 });
  }

  let buildId: string | undefined;
  for (const n of notes) {
    if (n.size > MAX_NOTE) continue;
    buildId = findBuildId(readAt(fd, base, n.offset, n.size), n.align === 8 ? 8 : 4);
    if (buildId) break;
  }
  return { type, buildId, loads, sections };
}

function cString(b: Buffer, at: number): string {
  if (at >= b.length) return '';
  let end = b.indexOf(0, at);
  if (end < 0) end = b.length;
  return b.toString('latin1', at, Math.min(end, at + MAX_NAME));
}

function findBuildId(b: Buffer, align: number): string | undefined {
  const pad = (n: number): number => (n + align - 1) & ~(align - 1);
  let at = 0;
  while (at + 12 <= b.length) {
    const namesz = b.readUInt32LE(at);
    const descsz = b.readUInt32LE(at + 4);
    const type = b.readUInt32LE(at + 8);
    const name = at + 12;
    const desc = name + pad(namesz);
    if (desc + descsz > b.length) break;
    if (type === NT_GNU_BUILD_ID && namesz === 4 && b.toString('latin1', name, name + 3) === 'GNU' && descsz > 0) {
      return b.toString('hex', desc, desc + descsz);
    }
    at = desc + pad(descsz);
  }
  return undefined;
}

/** Which symbol table a file has: 'symtab' (full), 'dynsym' (exported only) or undefined. */
export function symbolKind(info: ElfInfo): 'symtab' | 'dynsym' | undefined {
  if (info.sections.some((s) => s.type === SHT_SYMTAB && s.size > 0)) return 'symtab';
  if (info.sections.some((s) => s.type === SHT_DYNSYM && s.size > 0)) return 'dynsym';
  return undefined;
}

/**
 * The function symbols of the file: STT_FUNC and STT_GNU_IFUNC with a nonzero value, from .symtab
 * when there is one (or `only` says which), else .dynsym. Null when the file has neither.
 */
export function readElfSymbols(fd: number, info: ElfInfo, base = 0, only?: 'symtab' | 'dynsym'): SymbolTable | null {
  const want = only ?? symbolKind(info);
  if (!want) return null;
  const symtab = info.sections.find((s) => s.type === (want === 'symtab' ? SHT_SYMTAB : SHT_DYNSYM) && s.size > 0);
  if (!symtab) return null;
  const strtab = info.sections[symtab.link];
  if (!strtab || strtab.type === SHT_NOBITS) return null;
  const entsize = symtab.entsize >= SYM_SIZE ? symtab.entsize : SYM_SIZE;
  const count = Math.floor(symtab.size / entsize);

  const starts: number[] = [];
  const sizes: number[] = [];
  const limits: number[] = [];
  const ranks: number[] = [];
  const nameOffs: number[] = [];
  for (let first = 0; first < count; first += SYM_CHUNK) {
    const n = Math.min(SYM_CHUNK, count - first);
    const b = readAt(fd, base, symtab.offset + first * entsize, n * entsize);
    for (let i = 0; (i + 1) * entsize <= b.length; i++) {
      const at = i * entsize;
      const stInfo = b[at + 4]!;
      const stType = stInfo & 0xf;
      if (stType !== STT_FUNC && stType !== STT_GNU_IFUNC) continue;
      const value = u64(b, at + 8);
      const shndx = b.readUInt16LE(at + 6);
      if (value === 0 || shndx === 0) continue;
      const bind = stInfo >> 4;
      const sec = shndx < 0xff00 ? info.sections[shndx] : undefined;
      starts.push(value);
      sizes.push(u64(b, at + 16));
      // a symbol without a size reaches at most the end of its section
      limits.push(sec && sec.addr <= value && value < sec.addr + sec.size ? sec.addr + sec.size : Infinity);
      ranks.push(bind === STB_GLOBAL ? 0 : bind === STB_WEAK ? 1 : 2);
      nameOffs.push(b.readUInt32LE(at));
    }
  }
  return SymbolTable.build(starts, sizes, limits, ranks, readNames(fd, base, strtab, nameOffs));
}

/** Names at the given string-table offsets, reading the table through a bounded window in offset order. */
function readNames(fd: number, base: number, strtab: ElfSection, offs: readonly number[]): string[] {
  const names = new Array<string>(offs.length);
  const order = Array.from(offs.keys()).sort((a, b) => offs[a]! - offs[b]!);
  let win: Buffer = Buffer.alloc(0);
  let winStart = 0;
  for (const i of order) {
    const off = offs[i]!;
    if (off >= strtab.size) {
      names[i] = '';
      continue;
    }
    let rel = off - winStart;
    const inWindow = rel >= 0 && rel < win.length;
    let end = inWindow ? win.indexOf(0, rel) : -1;
    // outside the window, or running past its end (unless the window already reaches the table's
    // end): move the window to start at this name
    if (end < 0 && !(inWindow && winStart + win.length >= strtab.size)) {
      winStart = off;
      win = readAt(fd, base, strtab.offset + off, Math.min(STR_WINDOW, strtab.size - off));
      rel = 0;
      end = win.indexOf(0);
    }
    if (end < 0) end = win.length;
    names[i] = win.toString('utf8', rel, Math.min(end, rel + MAX_NAME));
  }
  return names;
}

/**
 * A file offset to the file's own virtual address, through the PT_LOAD segment that holds it
 * (vaddr = off - p_offset + p_vaddr): one rule for PIE, non-PIE and shared libraries. Outside every
 * segment the offset itself is returned.
 */
export function fileOffsetToVaddr(loads: readonly LoadSegment[], off: number): number {
  for (const l of loads) if (off >= l.offset && off < l.offset + l.filesz) return off - l.offset + l.vaddr;
  return off;
}
