/**
 * The cgroup2 hierarchy as user space sees it: where it is mounted (from /proc/self/mountinfo, so a
 * unified host at /sys/fs/cgroup and a hybrid one at /sys/fs/cgroup/unified both work), and a map
 * from cgroup id (the inode number of a cgroup2 directory, what the kernel side emits) to the path
 * below that mount. The map is refreshed by walking the tree: on a timer, and at once (rate-limited)
 * when an id nobody knows shows up. Ids that disappear are remembered as gone for a grace period so
 * their last values can still be reported and then dropped.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PeriscopeError } from '../kernel/errors.js';

/** Finds the cgroup2 mount point in a mountinfo text; undefined when there is none. */
export function parseCgroup2Mount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields...] - fstype source superopts
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    if (fstype !== 'cgroup2') continue;
    const mountpoint = line.slice(0, sep).split(' ')[4];
    if (mountpoint) return mountpoint.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

export function findCgroup2Mount(mountinfoPath = '/proc/self/mountinfo'): string {
  const mount = parseCgroup2Mount(readFileSync(mountinfoPath, 'utf8'));
  if (!mount) {
    throw new PeriscopeError(
      'NO_CGROUP2',
      'no cgroup2 file system is mounted',
      'mount it (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd.unified_cgroup_hierarchy',
    );
  }
  return mount;
}

/** The cgroup id of a directory in the cgroup2 mount: its inode number. */
export function cgroupIdOf(dir: string): number {
  return Number(statSync(dir, { bigint: true }).ino);
}

/** The v2 cgroup path of a process, relative to the cgroup2 root ("0::/path" in /proc/PID/cgroup). */
export function cgroupPathOfPid(pid: number | 'self'): string | undefined {
  const text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  for (const line of text.split('\n')) if (line.startsWith('0::')) return line.slice(3);
  return undefined;
}

export interface CgroupInfo {
  id: number;
  path: string; // relative to the cgroup2 mount, "/" for the root
  goneSince?: number; // ms timestamp when a walk first missed it
}

export interface CgroupTreeOptions {
  root?: string;
  /** how long a vanished cgroup keeps its name (and its series) */
  graceMs?: number;
  /** the soonest a walk may follow the previous one when an unknown id asks for it */
  minWalkIntervalMs?: number;
  /** the most cgroups remembered; the walk stops adding beyond it and counts the rest */
  maxCgroups?: number;
  now?: () => number;
  /**
   * Finds the absolute path of one id without a walk (the agent passes open_by_handle_at through the
   * native binding); undefined or null when it cannot. Without it, unknown ids wait for a walk.
   */
  lookup?: (root: string, id: number) => string | null | undefined;
}

export class CgroupTree {
  readonly root: string;
  private readonly graceMs: number;
  private readonly minWalkIntervalMs: number;
  private readonly maxCgroups: number;
  private readonly now: () => number;
  private readonly lookup: CgroupTreeOptions['lookup'];
  private readonly byId = new Map<number, CgroupInfo>();
  private lastWalk = 0;
  walks = 0;
  /** cgroups not remembered because maxCgroups was reached, in the last walk */
  overflow = 0;

  constructor(opts: CgroupTreeOptions = {}) {
    this.root = opts.root ?? findCgroup2Mount();
    this.graceMs = opts.graceMs ?? 60_000;
    this.minWalkIntervalMs = opts.minWalkIntervalMs ?? 1_000;
    this.maxCgroups = opts.maxCgroups ?? 100_000;
    this.now = opts.now ?? Date.now;
    this.lookup = opts.lookup;
    this.walk();
  }

  /** Re-reads the whole tree. New cgroups get names; vanished ones start their grace period. */
  walk(): void {
    const now = this.now();
    const seen = new Set<number>();
    const stack: string[] = ['/'];
    this.overflow = 0;
    while (stack.length > 0) {
      const rel = stack.pop()!;
      const abs = rel === '/' ? this.root : join(this.root, rel);
      let id: number;
      try {
        id = cgroupIdOf(abs);
      } catch {
        continue; // removed while we walked
      }
      if (seen.size >= this.maxCgroups) {
        this.overflow++;
        continue;
      }
      seen.add(id);
      const known = this.byId.get(id);
      if (known && known.path === rel) delete known.goneSince;
      else this.byId.set(id, { id, path: rel });
      let entries;
      try {
        entries = readdirSync(abs, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) if (e.isDirectory()) stack.push(rel === '/' ? `/${e.name}` : `${rel}/${e.name}`);
    }
    for (const info of this.byId.values()) {
      if (!seen.has(info.id) && info.goneSince === undefined) info.goneSince = now;
    }
    this.lastWalk = now;
    this.walks++;
  }

  /** The path of an id; looks it up, or walks again (rate-limited), when the id is new to us. */
  resolve(id: number): CgroupInfo | undefined {
    const hit = this.byId.get(id);
    if (hit) return hit;
    const abs = this.lookup?.(this.root, id);
    if (abs && (abs === this.root || abs.startsWith(`${this.root}/`)) && this.byId.size < this.maxCgroups) {
      const info = { id, path: abs.slice(this.root.length) || '/' };
      this.byId.set(id, info);
      return info;
    }
    if (this.now() - this.lastWalk >= this.minWalkIntervalMs) {
      this.walk();
      return this.byId.get(id);
    }
    return undefined;
  }

  /** Forgets cgroups whose grace period has ended and returns their ids, so callers drop their data. */
  expire(): number[] {
    const now = this.now();
    const out: number[] = [];
    for (const [id, info] of this.byId) {
      if (info.goneSince !== undefined && now - info.goneSince >= this.graceMs) {
        this.byId.delete(id);
        out.push(id);
      }
    }
    return out;
  }

  /** The cgroups that exist now (not those in their grace period), with their ids. */
  *entries(): Iterable<{ id: number; path: string }> {
    for (const info of this.byId.values()) if (info.goneSince === undefined) yield { id: info.id, path: info.path };
  }

  /** Paths of the cgroups that exist now (not those in their grace period). */
  *paths(): Iterable<string> {
    for (const info of this.byId.values()) if (info.goneSince === undefined) yield info.path;
  }

  get size(): number {
    return this.byId.size;
  }
}
