/**
 * Finding OpenSSL in the selected workloads and probing it, for the capture's TLS plaintext
 * (l7.bpf.c, its uprobes). The processes of the allowed cgroups are looked through (/proc/PID/maps)
 * for a mapped libssl.so*, which is opened through /proc/PID/root, so a container's own copy is the
 * one probed. A library file is probed once, by (st_dev, st_ino), for every process that maps it
 * (pid -1): entry probes on SSL_read, SSL_read_ex, SSL_write, SSL_write_ex and SSL_set_fd, and a plain
 * uprobe at each ret instruction of the first four (elf.ts finds them; no uretprobes, whose return
 * trampoline costs more and breaks stack unwinders in the workload). A library whose code the decoder
 * cannot walk with confidence gets no probe at all, and is reported with the reason.
 *
 * The work is bounded: a scan reads at most MAX_PIDS_PER_SCAN processes' maps, and at most
 * MAX_LIBRARIES library files are looked at in all. And it is incremental: a process is looked at
 * (its cgroup, then its maps) by the first YOUNG_LOOKS scans that meet it (a program loads its
 * libraries as it starts), then every RESCAN_EVERY scans (a library it loads later, or a pid reused
 * meanwhile, waits until then), so that a steady node
 * costs a directory listing of /proc per scan rather than every selected process's maps. A change of
 * the selection looks at every process again.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupIdOf, cgroupPathOfPid, findCgroup2Mount } from '../../inventory/cgroups.js';
import { functionSites, readElf } from './elf.js';

/** The functions whose plaintext is captured, each with an entry probe and probes at its rets. */
export const TLS_FUNCTIONS = ['SSL_read', 'SSL_read_ex', 'SSL_write', 'SSL_write_ex'] as const;
export type TlsFunction = (typeof TLS_FUNCTIONS)[number];

/** processes whose maps one scan reads, at most */
export const MAX_PIDS_PER_SCAN = 4096;
/** scans between two looks at a process already looked at YOUNG_LOOKS times */
export const RESCAN_EVERY = 12;
/** scans in a row that look at a process newly met */
const YOUNG_LOOKS = 3;
/** library files looked at (probed or not), at most */
export const MAX_LIBRARIES = 64;
/** ret sites probed in one library, at most (a function with more is not what we expect) */
const MAX_RET_SITES = 64;
/** bytes of a library file read, at most */
const MAX_LIBRARY_BYTES = 64 << 20;

/** A mapped libssl, as /proc/PID/maps names it. */
const LIBSSL = /\/libssl\.so[.\d]*$/;

/** What attaching needs of the capture's object: an entry and ret program, by kind. */
export interface UprobeTarget {
  /** attaches `program` at a file offset of `path` for every process */
  attach(program: TlsProgram, path: string, fileOffset: number): void;
}

export type TlsProgram = 'l7_ssl_read' | 'l7_ssl_read_ex' | 'l7_ssl_write' | 'l7_ssl_write_ex' | 'l7_ssl_set_fd' | 'l7_ssl_ret';

const ENTRY: Readonly<Record<TlsFunction, TlsProgram>> = {
  SSL_read: 'l7_ssl_read',
  SSL_read_ex: 'l7_ssl_read_ex',
  SSL_write: 'l7_ssl_write',
  SSL_write_ex: 'l7_ssl_write_ex',
};

export interface TlsLibrary {
  /** the path as the process that showed it sees it */
  path: string;
  /** the first process it was seen in */
  pid: number;
  /** "dev:ino" of the file */
  key: string;
  /** probed, or why not */
  attached: boolean;
  reason?: string;
  /** uprobes attached on it */
  probes: number;
  /** the functions it has (SSL_read_ex and SSL_write_ex are OpenSSL 1.1.1 and later) */
  functions: string[];
}

export interface TlsStats {
  /** library files probed */
  attached: number;
  /** library files not probed, by reason */
  skipped: Record<string, number>;
  /** uprobes attached in all */
  probes: number;
  /** scans done */
  scans: number;
  /** processes whose maps were read, in all */
  processesScanned: number;
  /** processes left out of a scan by MAX_PIDS_PER_SCAN */
  processesPassedOver: number;
  /** library files met past MAX_LIBRARIES (each time a scan met one) */
  librariesPassedOver: number;
}

interface Look {
  at: number;
  looks: number;
}

function sameCgroups(a: ReadonlySet<number> | 'all', b: ReadonlySet<number> | 'all' | undefined): boolean {
  if (a === 'all' || b === 'all' || b === undefined) return a === b;
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** The reason class a skip is counted under (the text after the colon is for the status only). */
const reasonClass = (reason: string): string => reason.replace(/:.*$/, '');

export class TlsProbes {
  private readonly libraries = new Map<string, TlsLibrary>();
  private scans = 0;
  private processesScanned = 0;
  private processesPassedOver = 0;
  private probes = 0;
  private librariesPassedOver = 0;
  private mount: string | undefined;
  /** cgroup2 path -> id, for the paths seen in the last scan */
  private ids = new Map<string, number>();
  /** pid -> the scan that last looked at it and how many have (pids of the last listing of /proc only) */
  private looked = new Map<number, Look>();
  /** the cgroups the last scan was for */
  private lastCgroups: ReadonlySet<number> | 'all' | undefined;

  constructor(
    private readonly target: UprobeTarget,
    private readonly procRoot = '/proc',
  ) {}

  /** Looks through the processes of these cgroups (all of them: 'all') for libssl files not seen yet. */
  scan(cgroups: ReadonlySet<number> | 'all'): void {
    this.scans++;
    if (cgroups !== 'all' && cgroups.size === 0) return;
    let pids: number[];
    try {
      pids = readdirSync(this.procRoot).filter((d) => /^\d+$/.test(d)).map(Number);
    } catch {
      return;
    }
    const self = process.pid;
    const ids = new Map<string, number>(this.ids);
    const same = sameCgroups(cgroups, this.lastCgroups);
    const looked = new Map<number, Look>();
    let read = 0;
    for (const pid of pids) {
      if (pid === self) continue;
      const last = same ? this.looked.get(pid) : undefined;
      if (last && last.looks >= YOUNG_LOOKS && this.scans - last.at < RESCAN_EVERY) {
        looked.set(pid, last);
        continue;
      }
      const look = { at: this.scans, looks: (last?.looks ?? 0) + 1 };
      if (cgroups !== 'all' && !cgroups.has(this.cgroupOf(pid, ids) ?? -1)) {
        looked.set(pid, look);
        continue;
      }
      if (read >= MAX_PIDS_PER_SCAN) {
        this.processesPassedOver++; // not marked: the next scan tries it first-hand
        continue;
      }
      read++;
      looked.set(pid, look);
      this.scanProcess(pid);
    }
    this.processesScanned += read;
    this.looked = looked;
    this.lastCgroups = cgroups === 'all' ? 'all' : new Set(cgroups);
    // the paths of cgroups that still have processes, at most as many as processes
    if (ids.size > pids.length) ids.clear();
    this.ids = ids;
  }

  private cgroupOf(pid: number, ids: Map<string, number>): number | undefined {
    try {
      const path = cgroupPathOfPid(pid);
      if (path === undefined) return undefined;
      let id = ids.get(path) ?? this.ids.get(path);
      if (id === undefined) {
        this.mount ??= findCgroup2Mount();
        id = cgroupIdOf(join(this.mount, path));
      }
      ids.set(path, id);
      return id;
    } catch {
      return undefined; // gone, or not in the cgroup2 tree
    }
  }

  private scanProcess(pid: number): void {
    let maps: string;
    try {
      maps = readFileSync(join(this.procRoot, String(pid), 'maps'), 'utf8');
    } catch {
      return; // it exited
    }
    if (!maps.includes('libssl')) return;
    const seen = new Set<string>();
    for (const line of maps.split('\n')) {
      // address perms offset dev inode path
      const m = /^\S+ \S+ \S+ \S+ (\d+)\s+(\/.*)$/.exec(line);
      if (!m || m[1] === '0' || !LIBSSL.test(m[2]!) || seen.has(m[2]!)) continue;
      seen.add(m[2]!);
      this.library(pid, m[2]!);
    }
  }

  private library(pid: number, path: string): void {
    const inRoot = join(this.procRoot, String(pid), 'root', path);
    let key: string;
    try {
      const st = statSync(inRoot, { bigint: true });
      key = `${st.dev}:${st.ino}`;
    } catch {
      return; // replaced since it was mapped, or the process exited: the next scan sees the rest
    }
    if (this.libraries.has(key)) return;
    const lib: TlsLibrary = { path, pid, key, attached: false, probes: 0, functions: [] };
    if (this.libraries.size >= MAX_LIBRARIES) {
      this.librariesPassedOver++; // each time a scan meets one, since none is kept
      return;
    }
    this.libraries.set(key, lib);
    try {
      const size = statSync(inRoot).size;
      if (size > MAX_LIBRARY_BYTES) throw new Error(`unreadable: ${size} bytes`);
      const image = readElf(readFileSync(inRoot));
      const plan: { program: TlsProgram; offset: number }[] = [];
      for (const fn of TLS_FUNCTIONS) {
        if (!image.functions.has(fn)) continue; // _ex is 1.1.1 and later
        const sites = functionSites(image, fn);
        if ('missing' in sites) throw new Error(`undecodable: ${sites.missing}`);
        plan.push({ program: ENTRY[fn], offset: sites.entry });
        for (const r of sites.rets) plan.push({ program: 'l7_ssl_ret', offset: r });
        lib.functions.push(fn);
      }
      if (!lib.functions.includes('SSL_read') || !lib.functions.includes('SSL_write')) throw new Error('no symbols: SSL_read and SSL_write are not exported');
      if (plan.length > MAX_RET_SITES + 2 * TLS_FUNCTIONS.length) throw new Error(`undecodable: ${plan.length} probes would be needed`);
      const setFd = image.functions.get('SSL_set_fd');
      if (setFd) plan.push({ program: 'l7_ssl_set_fd', offset: setFd.fileOffset });
      // rets first: an entry probe without its rets would leave state behind
      plan.sort((a, b) => Number(b.program === 'l7_ssl_ret') - Number(a.program === 'l7_ssl_ret'));
      for (const p of plan) {
        try {
          this.target.attach(p.program, inRoot, p.offset);
        } catch (err) {
          throw new Error(`attach failed: ${(err as Error).message}`);
        }
        lib.probes++;
        this.probes++;
      }
      lib.attached = true;
    } catch (err) {
      const msg = (err as Error).message;
      lib.reason = /^(unreadable|undecodable|no symbols|attach failed):/.test(msg) ? msg : `unreadable: ${msg}`;
    }
  }

  /** The library files looked at, probed or not. */
  list(): TlsLibrary[] {
    return [...this.libraries.values()];
  }

  stats(): TlsStats {
    const skipped: Record<string, number> = {};
    let attached = 0;
    for (const l of this.libraries.values()) {
      if (l.attached) attached++;
      else if (l.reason) skipped[reasonClass(l.reason)] = (skipped[reasonClass(l.reason)] ?? 0) + 1;
    }
    return { attached, skipped, probes: this.probes, scans: this.scans, processesScanned: this.processesScanned, processesPassedOver: this.processesPassedOver, librariesPassedOver: this.librariesPassedOver };
  }
}
