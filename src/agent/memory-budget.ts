/**
 * How much memory the agent may take, and how many cgroups its kernel maps can hold within it. The
 * kernel part is computed from the collectors' map specs (src/kernel/memory.ts) for this node's
 * possible CPUs; the agent's own part is what BENCHMARKS.md measures. The default --max-cgroups is
 * what a fixed kernel budget holds at this CPU count, and a --max-cgroups that the agent's memory
 * limit (its cgroup's memory.max, or the v1 memory.limit_in_bytes) cannot hold is refused with one
 * line before anything is loaded — not found later as an OOM kill or 24 lines from libbpf.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chooseAlternative } from '../kernel/bpf-object.js';
import { objectBytes } from '../kernel/memory.js';
import { PeriscopeError } from '../kernel/errors.js';
import { type CollectorDefinition } from '../collectors/contract.js';
import { findCgroup2Mount } from '../inventory/cgroups.js';

export const MiB = 2 ** 20;
/** kernel memory the default --max-cgroups may take for per-cgroup maps */
export const KERNEL_BUDGET_BYTES = 64 * MiB;
/** most cgroups by default, however many CPUs: far more than a node runs */
export const MAX_DEFAULT_CGROUPS = 16_384;
/** the agent's own memory (RSS), with headroom over BENCHMARKS.md's measurements (77 MiB idle alone,
 * 131-151 MiB watching pods with @kubernetes/client-node) */
export const USER_RESERVE_BYTES = { kubernetes: 192 * MiB, alone: 128 * MiB };

export interface KernelMemory {
  /** bytes at this --max-cgroups */
  total: number;
  /** bytes each more cgroup costs */
  perCgroup: number;
  /** bytes whatever the cgroups */
  fixed: number;
  byCollector: { name: string; alternative: string; bytes: number }[];
}

/** Kernel memory of the collectors' maps, each as the alternative this kernel takes would load them. */
export function kernelMemory(defs: readonly CollectorDefinition[], maxCgroups: number, cpus: number): KernelMemory {
  const out: KernelMemory = { total: 0, perCgroup: 0, fixed: 0, byCollector: [] };
  for (const d of defs) {
    const alternative = chooseAlternative(d.spec).chosen;
    if (!alternative) continue;
    const b = objectBytes(d.spec, alternative, maxCgroups, cpus);
    out.total += b.total;
    out.perCgroup += b.perCgroup;
    out.byCollector.push({ name: d.name, alternative, bytes: b.total });
  }
  out.fixed = out.total - out.perCgroup * maxCgroups;
  return out;
}

/** The largest --max-cgroups in [min, max] for which ok() holds (ok is monotonic), or min - 1. */
function largest(min: number, max: number, ok: (n: number) => boolean): number {
  if (!ok(min)) return min - 1;
  let lo = min;
  let hi = max;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (ok(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The default --max-cgroups: the most whose per-cgroup maps KERNEL_BUDGET_BYTES holds at this CPU
 * count (hash buckets come in powers of two, so a cgroup's cost depends a little on how many there
 * are), at least 256 and at most MAX_DEFAULT_CGROUPS. */
export function defaultMaxCgroups(defs: readonly CollectorDefinition[], cpus: number): number {
  return Math.max(256, largest(256, MAX_DEFAULT_CGROUPS, (n) => kernelMemory(defs, n, cpus).perCgroup * n <= KERNEL_BUDGET_BYTES));
}

export interface MemoryLimit {
  bytes: number;
  /** where it was read */
  source: string;
}

const UNLIMITED = 2 ** 60;

function readLimit(file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (text === 'max') return undefined;
    const n = Number(text);
    return Number.isFinite(n) && n < UNLIMITED ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The tightest memory limit on a process's cgroup and its ancestors (v2 memory.max, or v1). */
export function memoryLimit(pid: number | 'self' = 'self', mountinfo = '/proc/self/mountinfo'): MemoryLimit | undefined {
  const procCgroup = `/proc/${pid}/cgroup`;
  let best: MemoryLimit | undefined;
  // the cgroup's own limit and every ancestor's, up to the hierarchy's root (which has none)
  const consider = (root: string, path: string, file: string): void => {
    const segments = path.split('/').filter(Boolean);
    for (let n = segments.length; n > 0; n--) {
      const f = join(root, ...segments.slice(0, n), file);
      const bytes = existsSync(f) ? readLimit(f) : undefined;
      if (bytes !== undefined && (!best || bytes < best.bytes)) best = { bytes, source: f };
    }
  };
  let lines: string[];
  try {
    lines = readFileSync(procCgroup, 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3);
  if (v2 !== undefined && !v2.startsWith('/..')) {
    try {
      consider(findCgroup2Mount(mountinfo), v2, 'memory.max');
    } catch {
      // no cgroup2 mount: only v1 can say
    }
  }
  const v1 = lines.map((l) => /^\d+:([^:]*):(.*)$/.exec(l)).find((m) => /(^|,)memory(,|$)/.test(m?.[1] ?? ''))?.[2];
  if (v1 !== undefined && !v1.startsWith('/..')) {
    const mount = readFileSync(mountinfo, 'utf8')
      .split('\n')
      .map((l) => l.split(' - '))
      .find(([, fs]) => fs?.startsWith('cgroup ') && /(^|,)memory(,|$)/.test(fs.split(' ')[2] ?? ''))?.[0]
      ?.split(' ')[4];
    if (mount) consider(mount, v1, 'memory.limit_in_bytes');
  }
  return best;
}

const mib = (b: number): string => `${(b / MiB).toFixed(b < 10 * MiB ? 1 : 0)} MiB`;

/**
 * Whether the kernel maps for maxCgroups, with the agent's own memory, fit the memory limit: an error
 * with the most that would fit, or undefined.
 */
export function checkBudget(defs: readonly CollectorDefinition[], maxCgroups: number, cpus: number, limit: MemoryLimit | undefined, reserve: number): PeriscopeError | undefined {
  const m = kernelMemory(defs, maxCgroups, cpus);
  if (!limit || m.total + reserve <= limit.bytes) return undefined;
  const fits = largest(1, maxCgroups, (n) => kernelMemory(defs, n, cpus).total + reserve <= limit.bytes);
  return new PeriscopeError(
    'BAD_ARGUMENT',
    `--max-cgroups ${maxCgroups} needs ${mib(m.total)} of kernel maps on ${cpus} CPUs (${Math.round(m.perCgroup)} bytes a cgroup), which with the agent's own ~${mib(reserve)} does not fit its memory limit of ${mib(limit.bytes)} (${limit.source})`,
    fits >= 64 ? `use --max-cgroups ${fits} or less, or raise the memory limit to ${mib(m.total + reserve)}` : `raise the memory limit to at least ${mib(m.total + reserve)}`,
  );
}

export interface MemoryPlan {
  maxCgroups: number;
  cpus: number;
  kernel: KernelMemory;
  limit: MemoryLimit | undefined;
}

/**
 * The --max-cgroups to use (the flag, or the default for this CPU count) and the kernel memory it
 * takes; throws the one-line error when the agent's memory limit cannot hold it.
 */
export function planMemory(defs: readonly CollectorDefinition[], cpus: number, opts: { maxCgroups?: number; kubernetes: boolean }): MemoryPlan {
  const maxCgroups = opts.maxCgroups ?? defaultMaxCgroups(defs, cpus);
  const kernel = kernelMemory(defs, maxCgroups, cpus);
  const limit = memoryLimit();
  const problem = checkBudget(defs, maxCgroups, cpus, limit, opts.kubernetes ? USER_RESERVE_BYTES.kubernetes : USER_RESERVE_BYTES.alone);
  if (problem) throw problem;
  return { maxCgroups, cpus, kernel, limit };
}
