/**
 * Namespaces of pods as the kernel sees them. A pod's containers share one network namespace; its
 * inode (the id the kernel reports for it, e.g. in /proc/PID/ns/net) is read from any process in any
 * of the pod's cgroups. Network collectors join traffic to pods through it and through pod IPs.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type CgroupOwner } from './containers.js';

export interface PodNamespaces {
  /** inode of the pod's network namespace, or undefined when no process of it runs now */
  inode: number | undefined;
  /** the pod's cgroups, relative to the cgroup2 root */
  cgroups: string[];
}

/** The network namespace inode of a process, or undefined when it is gone. */
export function netnsInodeOfPid(pid: number): number | undefined {
  try {
    return Number(statSync(`/proc/${pid}/ns/net`, { bigint: true }).ino);
  } catch {
    return undefined;
  }
}

function firstPid(cgroupDir: string): number | undefined {
  try {
    const first = readFileSync(join(cgroupDir, 'cgroup.procs'), 'utf8').split('\n')[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/** Groups cgroup paths by pod UID and finds each pod's network namespace. */
export function podNetworkNamespaces(root: string, paths: Iterable<string>, owner: (path: string) => CgroupOwner): Map<string, PodNamespaces> {
  const out = new Map<string, PodNamespaces>();
  for (const path of paths) {
    const o = owner(path);
    if (o.kind === 'host') continue;
    const entry = out.get(o.podUid) ?? { inode: undefined, cgroups: [] };
    entry.cgroups.push(path);
    if (entry.inode === undefined) {
      const pid = firstPid(join(root, path));
      if (pid !== undefined) entry.inode = netnsInodeOfPid(pid);
    }
    out.set(o.podUid, entry);
  }
  return out;
}
