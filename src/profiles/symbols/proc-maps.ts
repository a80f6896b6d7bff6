/**
 * A process's memory map as the symbolizer needs it: its executable mappings (/proc/PID/maps), the
 * pid it has inside its own pid namespace (the last NSpid of /proc/PID/status, which names its perf
 * map), and the paths through which its files are opened (/proc/PID/root for container binaries,
 * /proc/PID/map_files for deleted ones).
 *
 * Parsing only; when to reread is the symbolizer's business. Addresses are Numbers: user space ends
 * below 2^47, well inside their exact range.
 */
import { readFileSync } from 'node:fs';

export interface Mapping {
  readonly start: number;
  readonly end: number;
  /** file offset of `start` */
  readonly offset: number;
  readonly perms: string;
  /** major:minor as maps prints it */
  readonly dev: string;
  readonly inode: number;
  /** as maps prints it, without a trailing " (deleted)"; '' for anonymous memory */
  readonly path: string;
  readonly deleted: boolean;
  /** the start-end text of /proc/PID/map_files */
  readonly range: string;
}

/** Whether the mapping is backed by a file (as opposed to anonymous memory, [heap], [stack], [vdso]...). */
export function isFileMapping(m: Mapping): boolean {
  return m.path.startsWith('/') && m.inode !== 0;
}

/** The mappings of maps text, executable ones only (return addresses point at code), ascending. */
export function parseMaps(text: string, all = false): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    // 55d0c5a00000-55d0c5a01000 r-xp 00001000 fe:01 1234   /usr/bin/prog (deleted)
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) (\S+) (\d+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const perms = m[3]!;
    if (!all && perms[2] !== 'x') continue;
    let path = m[7]!;
    const deleted = path.endsWith(' (deleted)');
    if (deleted) path = path.slice(0, -' (deleted)'.length);
    out.push({
      start: parseInt(m[1]!, 16),
      end: parseInt(m[2]!, 16),
      offset: parseInt(m[4]!, 16),
      perms,
      dev: m[5]!,
      inode: Number(m[6]),
      path,
      deleted,
      range: `${m[1]}-${m[2]}`,
    });
  }
  return out.sort((a, b) => a.start - b.start);
}

/** The index of the mapping containing `addr` (binary search over ascending, non-overlapping mappings), or -1. */
export function findMapping(maps: readonly Mapping[], addr: number): number {
  let lo = 0;
  let hi = maps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const m = maps[mid]!;
    if (addr < m.start) hi = mid - 1;
    else if (addr >= m.end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** The pid inside the innermost pid namespace, from /proc/PID/status text (the pid itself when no NSpid line). */
export function nsPidOf(status: string, pid: number): number {
  const m = /^NSpid:\s*(.*)$/m.exec(status);
  const last = m?.[1]!.trim().split(/\s+/).pop();
  const n = Number(last);
  return last && Number.isInteger(n) && n > 0 ? n : pid;
}

export function readMaps(procRoot: string, pid: number): Mapping[] | undefined {
  try {
    return parseMaps(readFileSync(`${procRoot}/${pid}/maps`, 'latin1'));
  } catch {
    return undefined;
  }
}

export function readNsPid(procRoot: string, pid: number): number {
  try {
    return nsPidOf(readFileSync(`${procRoot}/${pid}/status`, 'latin1'), pid);
  } catch {
    return pid;
  }
}

/** Where the process's file is opened: through its own root, so a container's binary is its own. */
export function rootPath(procRoot: string, pid: number, path: string): string {
  return `${procRoot}/${pid}/root${path}`;
}

export function mapFilesPath(procRoot: string, pid: number, m: Mapping): string {
  return `${procRoot}/${pid}/map_files/${m.range}`;
}
