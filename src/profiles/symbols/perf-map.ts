/**
 * A JIT's perf map (/tmp/perf-PID.map, written by Node --perf-basic-prof, Java agents, .NET, LuaJIT
 * and others): lines `START SIZE name`, hex without 0x, appended as code is generated.
 *
 * Read when first needed and again when the file's size or mtime changed (checked at most once a
 * second): a file that only grew is read from where the last read stopped, a replaced or truncated
 * one from the start. Of entries starting at the same address the later wins (the JIT reused the
 * memory). Bounded: past `maxEntries` the oldest entries are dropped. It does not read perf's jitdump
 * format.
 */
import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { lastAtOrBefore } from './elf.js';

const CHUNK = 1 << 20;
const CHECK_MS = 1000;

export class PerfMap {
  private starts = new Float64Array(0);
  private ends = new Float64Array(0);
  private seqs = new Float64Array(0);
  private names: string[] = [];
  private nextSeq = 0;
  /** bytes of the file already parsed (always after a newline), and the identity they came from */
  private parsed = 0;
  private ino = -1;
  private mtimeMs = -1;
  private size = -1;
  private checkedAt = -Infinity;

  constructor(
    readonly path: string,
    private readonly maxEntries = 1_000_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** entries held */
  get entries(): number {
    return this.names.length;
  }

  /** whether the file existed when last checked */
  get present(): boolean {
    return this.size >= 0;
  }

  /** The JIT name covering `addr`, or undefined. */
  lookup(addr: number): string | undefined {
    this.refresh();
    const lo = lastAtOrBefore(this.starts, addr);
    if (lo < 0) return undefined;
    // entries may overlap (code moved, or a stub inside a larger region): the newest covering one wins
    let best = -1;
    for (let i = lo; i >= 0 && i > lo - 8; i--) {
      if (addr < this.ends[i]! && (best < 0 || this.seqs[i]! > this.seqs[best]!)) best = i;
    }
    return best < 0 ? undefined : this.names[best];
  }

  /** Rereads the file if it changed, at most once per second. */
  refresh(force = false): void {
    const t = this.now();
    if (!force && t - this.checkedAt < CHECK_MS) return;
    this.checkedAt = t;
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      if (this.size >= 0) this.reset();
      this.size = -1;
      return;
    }
    try {
      const st = fstatSync(fd);
      if (st.size === this.size && st.mtimeMs === this.mtimeMs && st.ino === this.ino) return;
      // replaced or truncated: start over; grown: read on from where we stopped
      if (st.ino !== this.ino || st.size < this.parsed) this.reset();
      this.read(fd, st);
    } catch {
      // the file went away or could not be read: keep what we have
    } finally {
      closeSync(fd);
    }
  }

  private reset(): void {
    this.starts = new Float64Array(0);
    this.ends = new Float64Array(0);
    this.seqs = new Float64Array(0);
    this.names = [];
    this.parsed = 0;
  }

  private read(fd: number, st: Stats): void {
    const starts: number[] = [];
    const sizes: number[] = [];
    const names: string[] = [];
    const buf = Buffer.allocUnsafe(CHUNK);
    let carry = '';
    let pos = this.parsed;
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK, pos);
      if (n <= 0) break;
      pos += n;
      const text = carry + buf.toString('utf8', 0, n);
      const lastNl = text.lastIndexOf('\n');
      if (lastNl < 0) {
        carry = text;
        continue;
      }
      carry = text.slice(lastNl + 1);
      parseLines(text.slice(0, lastNl), starts, sizes, names);
      // a huge file: only the newest entries can be kept, so drop the older ones while reading
      if (names.length > 2 * this.maxEntries) {
        const cut = names.length - this.maxEntries;
        starts.splice(0, cut);
        sizes.splice(0, cut);
        names.splice(0, cut);
      }
    }
    // a line still being written is read next time
    this.parsed = pos - Buffer.byteLength(carry, 'utf8');
    this.ino = st.ino;
    this.size = st.size;
    this.mtimeMs = st.mtimeMs;
    this.merge(starts, sizes, names);
  }

  /** Merges new entries (in file order) into the sorted table, newest winning at equal starts. */
  private merge(starts: number[], sizes: number[], names: string[]): void {
    if (!names.length) return;
    const firstSeq = this.nextSeq;
    this.nextSeq += names.length;
    const order = Array.from(starts.keys()).sort((a, b) => starts[a]! - starts[b]! || b - a);
    const oldN = this.names.length;
    const total = oldN + order.length;
    const st = new Float64Array(total);
    const en = new Float64Array(total);
    const sq = new Float64Array(total);
    const nm = new Array<string>(total);
    let i = 0;
    let j = 0;
    let k = 0;
    let lastStart = NaN;
    const push = (s: number, e: number, q: number, name: string): void => {
      // equal starts: the first pushed is the newest (new entries go first, newest first)
      if (s === lastStart) return;
      lastStart = s;
      st[k] = s;
      en[k] = e;
      sq[k] = q;
      nm[k] = name;
      k++;
    };
    while (i < oldN || j < order.length) {
      const n = order[j];
      if (n !== undefined && (i >= oldN || starts[n]! <= this.starts[i]!)) {
        push(starts[n]!, starts[n]! + Math.max(sizes[n]!, 1), firstSeq + n, names[n]!);
        j++;
      } else {
        push(this.starts[i]!, this.ends[i]!, this.seqs[i]!, this.names[i]!);
        i++;
      }
    }
    this.starts = st.subarray(0, k);
    this.ends = en.subarray(0, k);
    this.seqs = sq.subarray(0, k);
    this.names = nm.slice(0, k);
    if (k > this.maxEntries) this.dropOldest(k - this.maxEntries);
  }

  private dropOldest(count: number): void {
    const sorted = Float64Array.from(this.seqs).sort();
    const cutoff = sorted[count - 1]!;
    const keep: number[] = [];
    for (let i = 0; i < this.names.length; i++) if (this.seqs[i]! > cutoff) keep.push(i);
    this.starts = Float64Array.from(keep, (i) => this.starts[i]!);
    this.ends = Float64Array.from(keep, (i) => this.ends[i]!);
    this.seqs = Float64Array.from(keep, (i) => this.seqs[i]!);
    this.names = keep.map((i) => this.names[i]!);
  }
}

/** `START SIZE name` lines (hex, optionally 0x-prefixed); malformed lines are skipped. */
export function parseLines(text: string, starts: number[], sizes: number[], names: string[]): void {
  let at = 0;
  while (at < text.length) {
    let nl = text.indexOf('\n', at);
    if (nl < 0) nl = text.length;
    const sp1 = text.indexOf(' ', at);
    const sp2 = sp1 < 0 || sp1 >= nl ? -1 : text.indexOf(' ', sp1 + 1);
    if (sp2 > 0 && sp2 < nl) {
      const start = parseInt(text.slice(at, sp1), 16);
      const size = parseInt(text.slice(sp1 + 1, sp2), 16);
      const name = text.slice(sp2 + 1, nl).trim();
      if (Number.isFinite(start) && Number.isFinite(size) && name) {
        starts.push(start);
        sizes.push(size);
        names.push(name);
      }
    }
    at = nl + 1;
  }
}
