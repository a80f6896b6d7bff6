/**
 * The kernel memory a collector's maps take, computed from their specs the way the kernel allocates
 * them (and, since Linux 5.11, charges them to the agent's memory cgroup). A preallocated per-CPU hash
 * map holds every entry on every possible CPU whether it is used or not, so `--max-cgroups` times the
 * CPU count decides most of it: a per-cgroup CPU entry is 248 bytes on each CPU, 31 KiB per cgroup on
 * a 128-CPU node. The figures follow the kernel's own accounting (the `memlock` line of a map's
 * fdinfo, Linux 6.4+), which a test holds them to.
 */
import { mapType, native } from './native.js';
import { type ObjectSpec } from './bpf-object.js';
import { type MapSpec } from './maps.js';

const round8 = (n: number): number => (n + 7) & ~7;
const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
const PAGE = 4096;
/** struct htab_elem before its key, and struct bucket */
const HTAB_ELEM = 48;
const BUCKET = 16;

export interface MapBytes {
  name: string;
  /** bytes whatever the number of cgroups */
  fixed: number;
  /** bytes per entry of a per-cgroup map (times --max-cgroups) */
  perEntry: number;
}

/** Kernel bytes of one map with maxEntries entries on a machine with `cpus` possible CPUs. */
export function mapBytes(spec: MapSpec<unknown, unknown>, maxEntries: number, cpus: number): number {
  const m = mapCost(spec, cpus);
  return m.fixed + m.perEntry * maxEntries;
}

/** The cost of one map split into what does and does not grow with its entries. */
export function mapCost(spec: MapSpec<unknown, unknown>, cpus: number): MapBytes {
  const t = spec.type;
  const key = round8(spec.key?.size ?? 0);
  const value = round8(spec.value?.size ?? 0);
  const percpu = t === mapType('BPF_MAP_TYPE_PERCPU_HASH') || t === mapType('BPF_MAP_TYPE_LRU_PERCPU_HASH') || t === mapType('BPF_MAP_TYPE_PERCPU_ARRAY');
  const noPrealloc = (spec.flags & native().constants.BPF_F_NO_PREALLOC) !== 0;
  if (t === mapType('BPF_MAP_TYPE_HASH') || t === mapType('BPF_MAP_TYPE_PERCPU_HASH') || t === mapType('BPF_MAP_TYPE_LRU_HASH') || t === mapType('BPF_MAP_TYPE_LRU_PERCPU_HASH')) {
    const elem = HTAB_ELEM + key + (percpu ? 8 : value);
    // buckets are a power of two; a plain preallocated hash keeps a spare element per CPU
    const lru = t === mapType('BPF_MAP_TYPE_LRU_HASH') || t === mapType('BPF_MAP_TYPE_LRU_PERCPU_HASH');
    const spare = !percpu && !lru && !noPrealloc ? cpus * elem : 0;
    return { name: spec.name, fixed: spare, perEntry: elem + (percpu ? value * cpus : 0) + BUCKET * (pow2(spec.maxEntries) / Math.max(spec.maxEntries, 1)) };
  }
  if (t === mapType('BPF_MAP_TYPE_ARRAY') || t === mapType('BPF_MAP_TYPE_PERCPU_ARRAY')) {
    return { name: spec.name, fixed: 0, perEntry: percpu ? value * cpus + 8 : value };
  }
  if (t === mapType('BPF_MAP_TYPE_STACK_TRACE')) {
    // preallocated buckets (a header of a free-list link, the hash and the depth, then the frames)
    // and a pointer per bucket, the buckets a power of two (stackmap.c: stack_map_mem_usage)
    return { name: spec.name, fixed: 0, perEntry: 16 + value + 8 * (pow2(spec.maxEntries) / Math.max(spec.maxEntries, 1)) };
  }
  if (t === mapType('BPF_MAP_TYPE_RINGBUF')) {
    // the data pages, and the pages of the consumer and producer positions
    return { name: spec.name, fixed: 2 * PAGE, perEntry: 1 };
  }
  // task storage and the like grow with the tasks that use them, not with a size set here
  return { name: spec.name, fixed: 0, perEntry: 0 };
}

export interface ObjectBytes {
  total: number;
  /** what each more --max-cgroups costs */
  perCgroup: number;
  maps: { name: string; bytes: number }[];
}

/**
 * Kernel bytes of one object's maps as an alternative of it loads them (maps it skips are not
 * created), with its per-cgroup maps sized to maxCgroups.
 */
export function objectBytes(spec: ObjectSpec<string>, alternative: string | undefined, maxCgroups: number, cpus: number): ObjectBytes {
  const skip = new Set(spec.alternatives.find((a) => a.name === alternative)?.skipMaps ?? []);
  const perCgroupMaps = new Set(spec.cgroupMaps ?? []);
  const perCpuMaps = new Set(spec.cpuMaps ?? []);
  const out: ObjectBytes = { total: 0, perCgroup: 0, maps: [] };
  for (const m of Object.values(spec.maps)) {
    if (skip.has(m.name)) continue;
    const entries = perCgroupMaps.has(m.name) ? maxCgroups : perCpuMaps.has(m.name) ? cpus : m.maxEntries;
    const cost = mapCost({ ...m, maxEntries: entries }, cpus);
    const bytes = cost.fixed + cost.perEntry * entries;
    if (perCgroupMaps.has(m.name)) out.perCgroup += cost.perEntry;
    out.total += bytes;
    out.maps.push({ name: m.name, bytes });
  }
  return out;
}
