/**
 * Feature probes: does the running kernel let us load and attach each kind of program we may use?
 * Each answer is one of supported, unsupported (with the kernel's reason) or error (the probe itself
 * could not run, e.g. for lack of privilege). Program probes load one trivial program at a time from
 * probes.bpf.o and really attach it, because a kernel can accept a program type and still refuse the
 * attachment (kprobes compiled out, fentry without trampolines). Answers are cached per process.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { native, type LinkHandle, type ObjectHandle } from './native.js';
import { errnoName, isNativeError } from './errors.js';
import { objectPath } from './bpf-object.js';
import { programs as probePrograms, enums as probeEnums } from './probes.gen.js';
import { findCgroup2Mount } from '../inventory/cgroups.js';
import { canUseBpf } from './privilege.js';

export const FEATURES = [
  'btf',
  'tracepoint',
  'raw_tp',
  'tp_btf',
  'fentry',
  'kprobe',
  'perf_event',
  'uprobe',
  'cgroup_skb',
  'sock_ops',
  'sk_storage_tracing',
  'bpf_loop',
  'rdonly_cast',
  'iter_sk_storage',
  'ringbuf',
  'task_storage',
  'batch_map_ops',
  'mark_victim_task',
  'switch_prev_state',
  'exit_group_dead',
] as const;
export type Feature = (typeof FEATURES)[number];

export type Probe =
  | { status: 'supported' }
  | { status: 'unsupported'; reason: string }
  | { status: 'error'; reason: string };

/** errnos with which a kernel says "I do not do that", as opposed to "you may not" or "it broke". */
const NOT_SUPPORTED = new Set(['EOPNOTSUPP', 'ENOTSUPP', 'ENOENT', 'EINVAL', 'ENODEV', 'ESRCH', 'E2BIG', 'ENOSYS']);

const REFUSED = 'refused by the kernel although privileged';

function classify(err: unknown, what: string): Probe {
  const name = errnoName(err);
  const reason = `${what}: ${err instanceof Error ? err.message : String(err)}`;
  if (name && NOT_SUPPORTED.has(name)) return { status: 'unsupported', reason };
  // A privileged process refused with EPERM meets a kernel policy (lockdown, a disabled trampoline),
  // not a missing privilege of its own.
  if ((name === 'EPERM' || name === 'EACCES') && canUseBpf()) return { status: 'unsupported', reason: `${reason}; ${REFUSED}` };
  return { status: 'error', reason };
}

const TRACEFS = ['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events'];

type ProbeProgram = (typeof probePrograms)[number];

/** Probe programs that use the socket storage map: it is created for them only (it needs kernel BTF). */
const USES_SK_STORAGE: readonly string[] = ['probe_sk_storage_tracing', 'probe_iter_sk_storage'];

/** The probes object with only this program to load. */
function openProbes(program: ProbeProgram): ObjectHandle {
  const n = native();
  const obj = n.open(objectPath('probes.bpf.o'));
  for (const p of probePrograms) n.setAutoload(obj, p, p === program);
  n.setAutocreate(obj, 'probe_sk_storage', USES_SK_STORAGE.includes(program));
  return obj;
}

/** Loads one probe program alone, attaches it with `attach`, and takes it all down again. */
function probeProgram(program: ProbeProgram, attach: (obj: ObjectHandle) => LinkHandle): Probe {
  const n = native();
  let obj: ObjectHandle | undefined;
  try {
    obj = openProbes(program);
    try {
      n.load(obj);
    } catch (err) {
      return classify(err, 'load');
    }
    try {
      n.destroyLink(attach(obj));
    } catch (err) {
      return classify(err, 'attach');
    }
    return { status: 'supported' };
  } catch (err) {
    return { status: 'error', reason: err instanceof Error ? err.message : String(err) };
  } finally {
    if (obj) n.closeObject(obj);
  }
}

/** The C library this process runs on: a binary every machine has, for the uprobe probe. */
function libcPath(): string | undefined {
  const maps = readFileSync('/proc/self/maps', 'utf8');
  const m = /\s(\/\S*\/libc(?:-[\d.]+)?\.so(?:\.\d+)*)$/m.exec(maps);
  return m?.[1];
}

/** Runs fn with a fresh, empty cgroup2 directory, removed afterwards. */
function withScratchCgroup<T>(fn: (dir: string) => T): T {
  const dir = join(findCgroup2Mount(), `periscope-probe-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    return fn(dir);
  } finally {
    rmdirSync(dir);
  }
}

function probeMap(type: string, missing: string): Probe {
  try {
    return native().probeMapType(native().constants.mapTypes[type]!) === 1 ? { status: 'supported' } : { status: 'unsupported', reason: missing };
  } catch (err) {
    return classify(err, type);
  }
}

function probeBatchOps(): Probe {
  const n = native();
  let fd = -1;
  try {
    fd = n.createMap(n.constants.mapTypes.BPF_MAP_TYPE_HASH!, 8, 8, 16);
    n.mapLookupBatch(fd, 8, 8, 16, false);
    return { status: 'supported' };
  } catch (err) {
    return classify(err, 'batch lookup');
  } finally {
    if (fd >= 0) n.closeFd(fd);
  }
}

let layoutBits: number | undefined;

/**
 * One of the kernel layouts compat.bpf.h tells apart, as the running kernel's BTF has it: the bits
 * probe_layouts returns when run once. `what` says what its absence means.
 */
function probeLayout(bit: number, what: string): Probe {
  try {
    if (layoutBits === undefined) {
      const n = native();
      const obj = openProbes('probe_layouts');
      try {
        n.load(obj);
        layoutBits = n.progTestRun(obj, 'probe_layouts', Buffer.alloc(64));
      } finally {
        n.closeObject(obj);
      }
    }
    return layoutBits & bit ? { status: 'supported' } : { status: 'unsupported', reason: what };
  } catch (err) {
    return classify(err, 'layout probe');
  }
}

const LAYOUT = probeEnums.layout_bit;

/**
 * An unsupported probe's reason, led by what it means (the verifier's own words follow); not where the
 * kernel has it and refuses it to us (a policy), which the reason says alone.
 */
function saying(p: Probe, meaning: string): Probe {
  return p.status === 'unsupported' && !p.reason.endsWith(REFUSED) ? { status: 'unsupported', reason: `${meaning}; ${p.reason}` } : p;
}

const probes: Record<Feature, () => Probe> = {
  btf: () =>
    existsSync('/sys/kernel/btf/vmlinux')
      ? { status: 'supported' }
      : { status: 'unsupported', reason: '/sys/kernel/btf/vmlinux is missing (kernel built without CONFIG_DEBUG_INFO_BTF)' },
  tracepoint: () => {
    // libbpf finds a tracepoint's id in tracefs; without it every classic tracepoint attach fails
    if (!TRACEFS.some((d) => existsSync(d))) {
      return { status: 'unsupported', reason: 'tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)' };
    }
    return probeProgram('probe_tracepoint', (o) => native().attach(o, 'probe_tracepoint'));
  },
  raw_tp: () => probeProgram('probe_raw_tp', (o) => native().attach(o, 'probe_raw_tp')),
  tp_btf: () => probeProgram('probe_tp_btf', (o) => native().attach(o, 'probe_tp_btf')),
  fentry: () => probeProgram('probe_fentry', (o) => native().attach(o, 'probe_fentry')),
  kprobe: () => probeProgram('probe_kprobe', (o) => native().attach(o, 'probe_kprobe')),
  perf_event: () => probeProgram('probe_perf_event', (o) => native().attachPerfEvent(o, 'probe_perf_event', 0, 1)),
  uprobe: () => {
    const libc = libcPath();
    if (!libc) return { status: 'error', reason: 'no C library found in /proc/self/maps to probe' };
    return probeProgram('probe_uprobe', (o) => native().attachUprobe(o, 'probe_uprobe', libc, 'getpid', process.pid, false));
  },
  cgroup_skb: () => withScratchCgroup((dir) => probeProgram('probe_cgroup_skb', (o) => native().attachCgroup(o, 'probe_cgroup_skb', dir))),
  sock_ops: () => withScratchCgroup((dir) => probeProgram('probe_sock_ops', (o) => native().attachCgroup(o, 'probe_sock_ops', dir))),
  sk_storage_tracing: () =>
    saying(probeProgram('probe_sk_storage_tracing', (o) => native().attach(o, 'probe_sk_storage_tracing')), 'tracing programs cannot use socket storage (Linux 5.11+)'),
  bpf_loop: () => saying(probeProgram('probe_bpf_loop', (o) => native().attach(o, 'probe_bpf_loop')), 'no bpf_loop helper (Linux 5.17+)'),
  rdonly_cast: () => {
    // a kernel without the kfunc refuses the call with EACCES, which is no policy here: say what it lacks
    const p = probeProgram('probe_rdonly_cast', (o) => native().attach(o, 'probe_rdonly_cast'));
    const meaning = 'no bpf_rdonly_cast kfunc (Linux 6.2+): kernel memory is read field by field';
    return p.status === 'unsupported' ? { status: 'unsupported', reason: `${meaning}; ${p.reason.replace(`; ${REFUSED}`, '')}` } : p;
  },
  iter_sk_storage: () =>
    saying(
      probeProgram('probe_iter_sk_storage', (o) => native().attachIter(o, 'probe_iter_sk_storage', native().mapFd(o, 'probe_sk_storage'))),
      'no iterator over socket storage (Linux 5.9+)',
    ),
  ringbuf: () => probeMap('BPF_MAP_TYPE_RINGBUF', 'the kernel has no BPF ring buffer (Linux 5.8+)'),
  task_storage: () => probeMap('BPF_MAP_TYPE_TASK_STORAGE', 'the kernel has no BPF task local storage (Linux 5.11+)'),
  batch_map_ops: probeBatchOps,
  mark_victim_task: () => probeLayout(LAYOUT.LAYOUT_MARK_VICTIM_TASK, 'oom:mark_victim passes only a pid (Linux before 6.8): the victim task is found through SIGKILL'),
  switch_prev_state: () => probeLayout(LAYOUT.LAYOUT_SWITCH_PREV_STATE, 'sched_switch does not pass prev_state (Linux before 5.18): the state is re-read from the task'),
  exit_group_dead: () => probeLayout(LAYOUT.LAYOUT_EXIT_GROUP_DEAD, 'sched_process_exit does not pass group_dead: the last thread is found by signal->live'),
};

const cache = new Map<Feature, Probe>();

export function probe(feature: Feature): Probe {
  let p = cache.get(feature);
  if (!p) {
    try {
      p = probes[feature]();
    } catch (err) {
      p = { status: 'error', reason: isNativeError(err) || err instanceof Error ? err.message : String(err) };
    }
    cache.set(feature, p);
  }
  return p;
}

/**
 * For tests: answer `feature` with `answer` until the returned function is called, as if the kernel had
 * said so (to take the alternatives of a kernel without it on one with it).
 */
export function assumeProbe(feature: Feature, answer: Probe): () => void {
  const before = cache.get(feature);
  cache.set(feature, answer);
  return () => {
    if (before) cache.set(feature, before);
    else cache.delete(feature);
  };
}

export function probeAll(): Record<Feature, Probe> {
  const out = {} as Record<Feature, Probe>;
  for (const f of FEATURES) out[f] = probe(f);
  return out;
}

export function supported(feature: Feature): boolean {
  return probe(feature).status === 'supported';
}
