/**
 * Kernel symbols from /proc/kallsyms: text symbols (t, T, w, W) of the kernel and of modules (BPF
 * programs and ftrace trampolines appear as modules too), sorted into one table. A symbol reaches
 * up to the next one; the last symbol before a module boundary reaches at most 64 KiB, so a module
 * loaded later into the gap is not taken for the previous one's tail.
 *
 * Read once, and again when a lookup misses (at most once in 10 s: a reread costs a fifth of a
 * second). As root the addresses are
 * real; without CAP_SYSLOG they read as zeros and every lookup answers undefined. It does not read
 * vmlinux or module files.
 */
import { readFileSync } from 'node:fs';
import { SymbolTable } from './elf.js';

/** Kernel addresses are above this; table addresses are kept relative to it, exact as Numbers. */
const KERNEL_BASE = 0xffff_0000_0000_0000n;
const MODULE_TAIL = 0x10000;
/** a reread costs ~0.2 s of CPU, so misses (stray addresses) trigger it at most this often */
const REFRESH_MS = 10_000;

export class KernelSymbols {
  private table: SymbolTable | undefined;
  private readAt = -Infinity;

  constructor(
    private readonly path = '/proc/kallsyms',
    private readonly now: () => number = Date.now,
  ) {}

  /** symbols held (0 before the first lookup) */
  get size(): number {
    return this.table?.size ?? 0;
  }

  /** The name covering a kernel address (a module symbol without its `[module]`), or undefined. */
  lookup(addr: bigint): string | undefined {
    if (addr < KERNEL_BASE) return undefined;
    const x = Number(addr - KERNEL_BASE);
    if (!this.table) this.load();
    const hit = this.table!.lookup(x);
    if (hit !== undefined || this.now() - this.readAt < REFRESH_MS) return hit;
    this.load();
    return this.table!.lookup(x);
  }

  private load(): void {
    this.readAt = this.now();
    let text = '';
    try {
      text = readFileSync(this.path, 'latin1');
    } catch {
      // unreadable (no /proc, a test's missing file): every address stays unknown until the next try
    }
    this.table = parseKallsyms(text);
  }
}

/** The text symbols of kallsyms text as a table of addresses relative to 0xffff000000000000. */
export function parseKallsyms(text: string): SymbolTable {
  const starts: number[] = [];
  const modules: string[] = [];
  const names: string[] = [];
  let at = 0;
  while (at < text.length) {
    let nl = text.indexOf('\n', at);
    if (nl < 0) nl = text.length;
    const line = text.slice(at, nl);
    at = nl + 1;
    // "ffffffff82267d90 T schedule" or "ffffffffc0201000 t name\t[module]"
    const sp1 = line.indexOf(' ');
    if (sp1 <= 0 || line.length < sp1 + 4) continue;
    const type = line[sp1 + 1];
    if (type !== 't' && type !== 'T' && type !== 'w' && type !== 'W') continue;
    const hex = line.slice(0, sp1);
    let x: number;
    if (hex.length === 16 && hex.startsWith('ffff')) x = parseInt(hex.slice(4), 16);
    else {
      const v = BigInt(`0x${hex}`);
      if (v < KERNEL_BASE) continue;
      x = Number(v - KERNEL_BASE);
    }
    if (x === 0 || Number.isNaN(x)) continue;
    const rest = line.slice(sp1 + 3);
    const tab = rest.indexOf('\t');
    names.push(tab < 0 ? rest : rest.slice(0, tab));
    modules.push(tab < 0 ? '' : rest.slice(tab).trim());
    starts.push(x);
  }
  // the end of a symbol is the next one's start within its module; across a boundary it is capped
  const order = Array.from(starts.keys()).sort((a, b) => starts[a]! - starts[b]!);
  const limits = new Array<number>(starts.length);
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    const next = order[k + 1];
    limits[i] = next !== undefined && modules[next] === modules[i] ? Infinity : starts[i]! + MODULE_TAIL;
  }
  return SymbolTable.build(starts, new Array<number>(starts.length).fill(0), limits, new Array<number>(starts.length).fill(0), names);
}
