/**
 * Raw stack addresses → frame names, as src/profiles/model.ts names them: kernel addresses from
 * /proc/kallsyms (`schedule_[k]`); user addresses through the process's /proc/PID/maps to the
 * mapped ELF file's symbols (with the load bias: address → file offset → the file's own vaddr,
 * which serves PIE, non-PIE and shared libraries alike), then its perf map (JIT code), else
 * `module+0xVADDR` in a file or `[unknown]` outside one.
 *
 * Files are opened through /proc/PID/root (a container's binary is its own), deleted ones through
 * /proc/PID/map_files, and parsed once per GNU build-id (else per device, inode, size and mtime),
 * so the same binary on the host and in ten containers is read once; a debug file under
 * <debugDir>/.build-id/ (in the process's root or the host's) gives the symbols of stripped ones.
 * Everything is bounded: parsed files (count and total symbols), processes, and each perf map, with
 * LRU eviction counted in stats(). A process's maps are read again when an address falls outside
 * them (at most once a second) or when its name changes (an exec). Every name passes cleanFrame.
 *
 * It does not demangle, read DWARF (no inlined frames or line numbers), or unwind: the collector
 * hands it the stacks the kernel walked. Lookups are synchronous (small positioned reads).
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { cleanFrame } from '../model.js';
import { fileOffsetToVaddr, readElfInfo, readElfSymbols, symbolKind, type ElfInfo, type LoadSegment, type SymbolTable } from './elf.js';
import { KernelSymbols } from './kallsyms.js';
import { PerfMap } from './perf-map.js';
import { findMapping, isFileMapping, mapFilesPath, readMaps, readNsPid, rootPath, type Mapping } from './proc-maps.js';

export interface SymbolizerOptions {
  /** default '/proc' */
  procRoot?: string;
  /** default '/proc/kallsyms' */
  kallsymsPath?: string;
  /** default ['/usr/lib/debug'] */
  debugDirs?: string[];
  /** ELF symbol tables kept (LRU), default 256 */
  maxFiles?: number;
  /** total symbols held across cached files, default 2_000_000 (evict LRU files past it) */
  maxSymbols?: number;
  /** processes whose maps are kept (LRU), default 4096 */
  maxProcesses?: number;
  /** entries kept per perf map, default 1_000_000 */
  maxPerfMapEntries?: number;
  /** the clock (ms) for the once-a-second rereads; tests move it */
  now?: () => number;
}

export interface SymbolizerStats {
  /** parsed ELF files held */
  files: number;
  /** symbols held across those files */
  symbols: number;
  /** processes whose maps are held */
  processes: number;
  /** addresses looked up (kernel and user) */
  lookups: number;
  /** of those, answered `[unknown]`, `[unknown]_[k]` or `module+0x...` */
  unsymbolized: number;
  /** files and processes evicted from the caches */
  evictions: number;
  /** kernel symbols held */
  kernelSymbols: number;
  /** entries held across perf maps */
  perfMapEntries: number;
}

/** A parsed file: how its offsets become vaddrs, and its function symbols. */
interface ElfFile {
  readonly loads: readonly LoadSegment[];
  readonly symbols: SymbolTable | null;
  /** where the symbols came from; a later copy with a better source replaces them */
  readonly source: Source;
}

type Source = 'none' | 'dynsym' | 'symtab' | 'debug';
const SOURCE_RANK: Record<Source, number> = { none: 0, dynsym: 1, symtab: 2, debug: 2 };

/** What a mapping resolved to: a cache key, NOT_ELF (an unreadable or non-ELF file), or not yet tried. */
const NOT_ELF = '';

interface Proc {
  maps: Mapping[];
  /** per mapping: the ElfFile key once resolved */
  keys: (string | undefined)[];
  mapsReadAt: number;
  nsPid: number | undefined;
  perf: PerfMap | undefined;
  comm: string | undefined;
  commReadAt: number;
}

const REREAD_MS = 1000;
const UNKNOWN = '[unknown]';
const UNKNOWN_KERNEL = '[unknown]_[k]';

export class Symbolizer {
  private readonly procRoot: string;
  private readonly debugDirs: readonly string[];
  private readonly maxFiles: number;
  private readonly maxSymbols: number;
  private readonly maxProcesses: number;
  private readonly maxPerfMapEntries: number;
  private readonly now: () => number;
  private readonly kallsyms: KernelSymbols;
  /** LRU: Map order is use order, oldest first */
  private readonly files = new Map<string, ElfFile>();
  private readonly procs = new Map<number, Proc>();
  /** dev:inode:size:mtime → file key, so a file seen before is not read again to learn its build-id */
  private readonly identities = new Map<string, string>();
  private symbolCount = 0;
  private lookups = 0;
  private unsymbolized = 0;
  private evictions = 0;

  constructor(opts: SymbolizerOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.debugDirs = opts.debugDirs ?? ['/usr/lib/debug'];
    this.maxFiles = Math.max(1, opts.maxFiles ?? 256);
    this.maxSymbols = opts.maxSymbols ?? 2_000_000;
    this.maxProcesses = Math.max(1, opts.maxProcesses ?? 4096);
    this.maxPerfMapEntries = opts.maxPerfMapEntries ?? 1_000_000;
    this.now = opts.now ?? Date.now;
    this.kallsyms = new KernelSymbols(opts.kallsymsPath ?? '/proc/kallsyms', this.now);
  }

  /**
   * Kernel addresses (leaf first, as the stack map gives them) → names with the `_[k]` suffix
   * ("schedule_[k]"); an address no symbol covers → "[unknown]_[k]". As for user stacks, entries
   * after the first are return addresses and are looked up one byte earlier.
   */
  kernel(addrs: readonly bigint[]): string[] {
    return addrs.map((addr, i) => {
      this.lookups++;
      const name = this.kallsyms.lookup(i > 0 && addr > 0n ? addr - 1n : addr);
      if (name === undefined) {
        this.unsymbolized++;
        return UNKNOWN_KERNEL;
      }
      return cleanFrame(`${name}_[k]`);
    });
  }

  /**
   * A process's user addresses (leaf first: addrs[0] is the sampled IP, the others are return
   * addresses, looked up at addr-1 so a call that is the last instruction of a function names that
   * function) → names, same order.
   */
  user(pid: number, addrs: readonly bigint[]): string[] {
    const proc = this.proc(pid);
    return addrs.map((addr, i) => {
      this.lookups++;
      const a = Number(addr) - (i > 0 ? 1 : 0);
      const name = proc && a > 0 && a < 2 ** 53 ? this.lookupUser(pid, proc, a) : undefined;
      if (name !== undefined) return cleanFrame(name);
      this.unsymbolized++;
      return UNKNOWN;
    });
  }

  /**
   * The process's name for a stack's root frame (/proc/PID/comm, reread at most once a second), or
   * the name it last had once it has gone, or `pid N` when it was never seen.
   */
  processName(pid: number): string {
    const proc = this.proc(pid, false);
    const t = this.now();
    if (proc?.comm !== undefined && t - proc.commReadAt < REREAD_MS) return proc.comm;
    let comm: string | undefined;
    try {
      comm = cleanFrame(readFileSync(`${this.procRoot}/${pid}/comm`, 'utf8').replace(/\n$/, ''));
    } catch {
      // gone (or never there): keep the last name seen
    }
    if (proc && comm !== undefined) {
      // a new name is most likely an exec: the old mappings are not this program's
      if (proc.comm !== undefined && proc.comm !== comm) this.dropMaps(proc);
      proc.comm = comm;
      proc.commReadAt = t;
    }
    return comm ?? proc?.comm ?? `pid ${pid}`;
  }

  private dropMaps(proc: Proc): void {
    proc.maps = [];
    proc.keys = [];
    proc.mapsReadAt = -Infinity;
    proc.perf = undefined;
    proc.nsPid = undefined;
  }

  /** Drops cached state of processes that exited (call with the pids seen gone). */
  forget(pids: Iterable<number>): void {
    for (const pid of pids) this.procs.delete(pid);
  }

  stats(): SymbolizerStats {
    let perfMapEntries = 0;
    for (const p of this.procs.values()) perfMapEntries += p.perf?.entries ?? 0;
    return {
      files: this.files.size,
      symbols: this.symbolCount,
      processes: this.procs.size,
      lookups: this.lookups,
      unsymbolized: this.unsymbolized,
      evictions: this.evictions,
      kernelSymbols: this.kallsyms.size,
      perfMapEntries,
    };
  }

  /** The process's cached state (LRU), read on first use; undefined when its maps cannot be read. */
  private proc(pid: number, readMapsNow = true): Proc | undefined {
    let p = this.procs.get(pid);
    if (p) {
      this.procs.delete(pid);
      this.procs.set(pid, p);
      return p;
    }
    const maps = readMapsNow ? readMaps(this.procRoot, pid) : [];
    if (!maps) return undefined;
    p = { maps, keys: [], mapsReadAt: readMapsNow ? this.now() : -Infinity, nsPid: undefined, perf: undefined, comm: undefined, commReadAt: -Infinity };
    this.procs.set(pid, p);
    while (this.procs.size > this.maxProcesses) {
      this.procs.delete(this.procs.keys().next().value!);
      this.evictions++;
    }
    return p;
  }

  private lookupUser(pid: number, proc: Proc, addr: number): string | undefined {
    let idx = findMapping(proc.maps, addr);
    // an address outside every known mapping: the process mapped something since (dlopen, a new
    // JIT region, an exec), so read its maps again, at most once a second
    if (idx < 0 && this.now() - proc.mapsReadAt >= REREAD_MS) {
      const maps = readMaps(this.procRoot, pid);
      proc.mapsReadAt = this.now();
      if (maps) {
        proc.maps = maps;
        proc.keys = [];
        idx = findMapping(maps, addr);
      }
    }
    const m = idx < 0 ? undefined : proc.maps[idx]!;
    if (!m || (!isFileMapping(m) && m.path !== '[vdso]')) return this.perfLookup(pid, proc, addr);

    let key = proc.keys[idx];
    let file = key ? this.touchFile(key) : undefined;
    if (key === undefined || (key !== NOT_ELF && !file)) {
      key = m.path === '[vdso]' ? this.resolveVdso(pid, m) : this.resolveFile(pid, m);
      proc.keys[idx] = key;
      file = key ? this.files.get(key) : undefined;
    }
    const fileOffset = addr - m.start + m.offset;
    if (m.path === '[vdso]') {
      return file?.symbols?.lookup(fileOffsetToVaddr(file.loads, fileOffset));
    }
    const vaddr = file ? fileOffsetToVaddr(file.loads, fileOffset) : fileOffset;
    const name = file?.symbols?.lookup(vaddr);
    if (name !== undefined) return name;
    // a JIT may also name code inside a file: a memfd it double-maps, or builtins embedded in its binary
    const jit = this.perfLookup(pid, proc, addr);
    if (jit !== undefined) return jit;
    // no symbol: the module and the address in the file's own address space, stable across runs
    this.unsymbolized++;
    return `${basename(m.path)}+0x${vaddr.toString(16)}`;
  }

  private perfLookup(pid: number, proc: Proc, addr: number): string | undefined {
    if (!proc.perf) {
      proc.nsPid ??= readNsPid(this.procRoot, pid);
      proc.perf = new PerfMap(rootPath(this.procRoot, pid, `/tmp/perf-${proc.nsPid}.map`), this.maxPerfMapEntries, this.now);
    }
    return proc.perf.lookup(addr);
  }

  private touchFile(key: string): ElfFile | undefined {
    const f = this.files.get(key);
    if (f) {
      this.files.delete(key);
      this.files.set(key, f);
    }
    return f;
  }

  /** Opens the mapping's file and returns its cache key (parsing it if new), or NOT_ELF. */
  private resolveFile(pid: number, m: Mapping): string {
    // a deleted file is only reachable through map_files; otherwise map_files is the fallback (a
    // process root that cannot be entered)
    const root = rootPath(this.procRoot, pid, m.path);
    const mapped = mapFilesPath(this.procRoot, pid, m);
    for (const path of m.deleted ? [mapped, root] : [root, mapped]) {
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch {
        continue;
      }
      try {
        const st = fstatSync(fd);
        const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
        const known = this.identities.get(identity);
        if (known !== undefined && (known === NOT_ELF || this.touchFile(known))) return known;
        const info = readElfInfo(fd);
        const key = !info ? NOT_ELF : info.buildId ? `b:${info.buildId}` : `s:${identity}`;
        this.remember(identity, key);
        if (info) this.load(key, fd, info, pid);
        return key;
      } catch {
        continue;
      } finally {
        closeSync(fd);
      }
    }
    return NOT_ELF;
  }

  /** The vDSO is an ELF image in the process's memory: read it through /proc/PID/mem. */
  private resolveVdso(pid: number, m: Mapping): string {
    let fd: number;
    try {
      fd = openSync(`${this.procRoot}/${pid}/mem`, 'r');
    } catch {
      return NOT_ELF;
    }
    try {
      const info = readElfInfo(fd, m.start);
      if (!info) return NOT_ELF;
      const key = `vdso:${info.buildId ?? ''}`;
      if (this.touchFile(key)) return key;
      this.insert(key, { loads: info.loads, symbols: readElfSymbols(fd, info, m.start), source: 'dynsym' });
      return key;
    } catch {
      return NOT_ELF;
    } finally {
      closeSync(fd);
    }
  }

  private remember(identity: string, key: string): void {
    this.identities.delete(identity);
    this.identities.set(identity, key);
    if (this.identities.size > 4 * this.maxFiles + 64) this.identities.delete(this.identities.keys().next().value!);
  }

  /** Parses the file's symbols into the cache under `key`, unless a copy as good is already there. */
  private load(key: string, fd: number, info: ElfInfo, pid: number): void {
    const own = symbolKind(info) ?? 'none';
    const cached = this.touchFile(key);
    if (cached && SOURCE_RANK[cached.source] >= SOURCE_RANK[own]) return;
    const debug = info.buildId && own !== 'symtab' ? this.debugSymbols(info.buildId, pid) : undefined;
    if (debug) this.insert(key, { loads: info.loads, symbols: debug, source: 'debug' });
    else this.insert(key, { loads: info.loads, symbols: readElfSymbols(fd, info), source: own });
  }

  /** The .symtab of <debugDir>/.build-id/xx/rest.debug, under the process's root first, then the host's. */
  private debugSymbols(buildId: string, pid: number): SymbolTable | undefined {
    const rel = `/.build-id/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug`;
    for (const dir of this.debugDirs) {
      for (const path of [rootPath(this.procRoot, pid, dir + rel), dir + rel]) {
        let fd: number;
        try {
          fd = openSync(path, 'r');
        } catch {
          continue;
        }
        try {
          const info = readElfInfo(fd);
          if (info?.buildId !== buildId || symbolKind(info) !== 'symtab') continue;
          const symbols = readElfSymbols(fd, info, 0, 'symtab');
          if (symbols) return symbols;
        } catch {
          continue;
        } finally {
          closeSync(fd);
        }
      }
    }
    return undefined;
  }

  private insert(key: string, file: ElfFile): void {
    const old = this.files.get(key);
    if (old) {
      this.symbolCount -= old.symbols?.size ?? 0;
      this.files.delete(key);
    }
    this.files.set(key, file);
    this.symbolCount += file.symbols?.size ?? 0;
    // past either bound the least recently used files go, but never the one just parsed
    while (this.files.size > 1 && (this.files.size > this.maxFiles || this.symbolCount > this.maxSymbols)) {
      const [oldest, f] = this.files.entries().next().value!;
      this.files.delete(oldest);
      this.symbolCount -= f.symbols?.size ?? 0;
      this.evictions++;
    }
  }
}
