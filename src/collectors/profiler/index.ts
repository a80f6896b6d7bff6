/**
 * profiler collector: where every cgroup spends its CPU and its waiting, always on. On-CPU samples
 * (the software CPU clock of every CPU at --profiler-hz) and off-CPU time (blocked, and waiting on a
 * run queue, from scheduler switches and wakeups) are counted in the kernel per (cgroup, process,
 * user stack, kernel stack); the agent drains them every few seconds (`profiles()`), and this module
 * turns stack ids into frame names (src/profiles/symbols) and hands back stacks per cgroup.
 *
 * Stacks are unwound by frame pointers (user) and by the kernel's unwinder (kernel): code built
 * without frame pointers shows its callers cut short; ARCHITECTURE.md says what DWARF unwinding would
 * add. Waits shorter than --profiler-offcpu-min-us are not counted, and the stacks of a thread whose
 * last wait was that short are taken at one switch in --profiler-offcpu-sample (profiler.bpf.c:
 * on_switch): what bounds the cost of a context-switch storm.
 */
import { readFileSync } from 'node:fs';
import { cpusInList, type ObjectSpec } from '../../kernel/bpf-object.js';
import { type Codec } from '../../kernel/codec.js';
import { PeriscopeError } from '../../kernel/errors.js';
import { type TypedMap } from '../../kernel/maps.js';
import { ProfileBuilder, type ProfileType, type Stack } from '../../profiles/model.js';
import { Symbolizer } from '../../profiles/symbols/index.js';
import { cgroupSubject, defineCollector, type CollectorContext, type CollectorInstance, type ProfileDrain, type Readings, type Sample, type SettingDef } from '../contract.js';
import { KernelCollector, loadAndAttach } from '../kernel-collector.js';
import * as gen from './profiler.gen.js';

/** frames the kernel walks (PROFILE_STACK_DEPTH in profiler.h) */
export const STACK_DEPTH = 127;
/** a stack name that is not a stack (profiler.h): the stack was lost (its map full, an error, a map
 * recycled while a wait kept its name); STACK_NONE (0) is nothing to walk (a kernel thread's user
 * half). Stacks are named by 52-bit hashes with bit 52 set: past both, and exact as numbers. */
const STACK_LOST = 1;
const isStack = (name: number): boolean => name > STACK_LOST;

/** Leaf kernel frames of the profiler itself: a tracepoint program's stack starts inside its own call. */
const PROFILER_FRAME = /^(bpf_prog_[0-9a-f]+_\w+|bpf_trace_run\d+|__bpf_trace_\w+)_\[k\]$/;

/** A stack map's value: the addresses, leaf first, up to the first zero (as bigints: kernel
 * addresses are past what a number holds exactly). */
const stackCodec: Codec<bigint[]> = {
  name: 'stack',
  size: STACK_DEPTH * 8,
  decode(v, o) {
    const out: bigint[] = [];
    for (let i = 0; i < STACK_DEPTH; i++) {
      const ip = v.getBigUint64(o + i * 8, true);
      if (ip === 0n) break;
      out.push(ip);
    }
    return out;
  },
  encode() {
    throw new Error('stack maps are written by the kernel only');
  },
};

const STACK_MAPS = ['stacks_0', 'stacks_1', 'stacks_2'] as const;
/** stacks whose names are kept between drains */
const MAX_CACHED_STACKS = 50_000;

export const PROFILE_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  config: gen.config,
  // a stack's addresses are read as bigints
  maps: { ...gen.maps, ...Object.fromEntries(STACK_MAPS.map((m) => [m, { ...gen.maps[m], value: stackCodec }])) },
  alternatives: [
    { name: 'tp_btf', requires: ['btf', 'perf_event', 'tp_btf'], programs: ['profile_sample', 'offcpu_switch_btf', 'offcpu_wakeup_btf'] },
    { name: 'raw_tp', requires: ['btf', 'perf_event', 'raw_tp'], programs: ['profile_sample', 'offcpu_switch_raw', 'offcpu_wakeup_raw'] },
  ],
  attach: { profile_sample: { kind: 'perf' } },
};

// --- settings --------------------------------------------------------------------------------------

const wholeIn = (v: string, min: number, max: number): string | undefined =>
  /^\s*\d+\s*$/.test(v) && Number(v) >= min && Number(v) <= max ? undefined : `wants a whole number from ${min} to ${max}, not "${v}"`;

export const DEFAULT_HZ = 19;
export const DEFAULT_MIN_BLOCK_US = 1000;
export const DEFAULT_STACK_ENTRIES = 8192;
export const DEFAULT_OFFCPU_SAMPLE = 16;

export const SETTINGS: readonly SettingDef[] = [
  { name: 'hz', value: 'N', default: String(DEFAULT_HZ), help: 'on-CPU samples a second on each CPU (a prime rate does not run in lockstep with periodic work)', check: (v) => wholeIn(v, 1, 1000) },
  {
    name: 'offcpu',
    value: 'on|off',
    default: 'on',
    help: 'count off-CPU time (blocked, and waiting for a CPU) from scheduler switches',
    check: (v) => (v === 'on' || v === 'off' ? undefined : `wants on or off, not "${v}"`),
  },
  { name: 'offcpu-min-us', value: 'MICROSECONDS', default: String(DEFAULT_MIN_BLOCK_US), help: 'waits shorter than this are not counted', check: (v) => wholeIn(v, 0, 10_000_000) },
  {
    name: 'offcpu-sample',
    value: 'N',
    default: String(DEFAULT_OFFCPU_SAMPLE),
    help: 'a thread whose last wait was shorter than the minimum has its stacks taken at 1 switch in N, and a long wait among those counts N times (1: every switch, exact, at ~3 us a switch)',
    check: (v) => wholeIn(v, 1, 1024),
  },
  {
    name: 'stack-entries',
    value: 'N',
    default: String(DEFAULT_STACK_ENTRIES),
    help: 'distinct stacks each of the three kernel stack maps holds (~1 KiB each); a map is recycled when half full, and a new stack that finds it full is lost (counted)',
    check: (v) => wholeIn(v, 256, 1 << 20),
  },
];

export interface ProfileOptions {
  alternative?: string;
  hz?: number;
  offcpu?: boolean;
  minBlockUs?: number;
  /** 1 in how many switches of a thread whose last wait was short has its stacks taken */
  offcpuSample?: number;
  stackEntries?: number;
  /** the symbolizer (tests give one over another /proc) */
  symbolizer?: Symbolizer;
}

export function optionsFrom(settings: Readonly<Record<string, string>> | undefined): ProfileOptions {
  const s = settings ?? {};
  return {
    ...(s.hz !== undefined ? { hz: Number(s.hz) } : {}),
    ...(s.offcpu !== undefined ? { offcpu: s.offcpu === 'on' } : {}),
    ...(s['offcpu-min-us'] !== undefined ? { minBlockUs: Number(s['offcpu-min-us']) } : {}),
    ...(s['stack-entries'] !== undefined ? { stackEntries: Number(s['stack-entries']) } : {}),
    ...(s['offcpu-sample'] !== undefined ? { offcpuSample: Number(s['offcpu-sample']) } : {}),
  };
}

const KINDS: Record<number, ProfileType> = { [gen.enums.profile_kind.PROFILE_CPU]: 'cpu', [gen.enums.profile_kind.PROFILE_OFFCPU]: 'offcpu', [gen.enums.profile_kind.PROFILE_RUNQ]: 'runq' };

/** The kernel's counters (enum profile_stat) by the names /metrics gives them. */
const STAT_NAMES: Record<string, number> = {
  samples: gen.enums.profile_stat.STAT_SAMPLES,
  idle: gen.enums.profile_stat.STAT_IDLE,
  stacks_full: gen.enums.profile_stat.STAT_STACKS_FULL,
  stack_error: gen.enums.profile_stat.STAT_STACK_ERROR,
  switches: gen.enums.profile_stat.STAT_SWITCHES,
  wait_short: gen.enums.profile_stat.STAT_SHORT,
  wait_stack_expired: gen.enums.profile_stat.STAT_EXPIRED,
  wait_untracked: gen.enums.profile_stat.STAT_PENDING_FULL,
  switch_stacks_taken: gen.enums.profile_stat.STAT_STACKS_TAKEN,
  wait_unsampled: gen.enums.profile_stat.STAT_UNSAMPLED,
};

/** Blocks the thread for a few milliseconds (Atomics.wait on a private buffer: nothing wakes it early). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class ProfileCollector extends KernelCollector<gen.ProgramName> implements CollectorInstance {
  readonly hz: number;
  private readonly control: TypedMap<number, gen.ProfileControl>;
  private readonly stats: TypedMap<number, number>;
  private readonly samplesByGen: TypedMap<number, number>;
  /** samples_by_gen of each counts map at its previous drain */
  private readonly samplesAtDrain = [0, 0];
  private readonly counts: readonly TypedMap<gen.StackKey, gen.StackCount>[];
  private readonly stacks: readonly TypedMap<number, bigint[]>[];
  private readonly symbols: Symbolizer;
  private readonly stackEntries: number;
  private ctl: gen.ProfileControl;
  private lastDrain = Date.now();
  /** the names of stacks already resolved, root first (named()) */
  private readonly nameCache = new Map<string, string[]>();
  /** stacks added to each stack map when it was last emptied */
  private readonly addedAtClear = [0, 0, 0];
  private readonly user = { drains: 0, stacks: 0, rotations: 0, lookupsLost: 0, samplesCounted: 0, samplesDrained: 0 };

  constructor(ctx: Pick<CollectorContext, 'maxCgroups' | 'settings'>, opts: ProfileOptions = {}) {
    const o = { ...optionsFrom(ctx.settings), ...opts };
    const stackEntries = o.stackEntries ?? DEFAULT_STACK_ENTRIES;
    const { obj, parts } = loadAndAttach(
      PROFILE_SPEC,
      ctx,
      { ...(o.alternative ? { alternative: o.alternative } : {}), maxEntries: Object.fromEntries(STACK_MAPS.map((m) => [m, stackEntries])) },
      (ob) => ({
        control: ob.map(gen.maps.control),
        stats: ob.map(gen.maps.profile_stats),
        samplesByGen: ob.map(gen.maps.samples_by_gen),
        counts: [ob.map(gen.maps.counts_0), ob.map(gen.maps.counts_1)],
        stacks: STACK_MAPS.map((m) => ob.map(PROFILE_SPEC.maps[m] as typeof gen.maps.stacks_0 & { value: Codec<bigint[]> })),
      }),
    );
    super('profiler', obj, { map: gen.maps.drops, kinds: gen.enums.periscope_drop });
    this.control = parts.control;
    this.stats = parts.stats;
    this.samplesByGen = parts.samplesByGen;
    this.counts = parts.counts;
    this.stacks = parts.stacks;
    this.stackEntries = stackEntries;
    this.hz = o.hz ?? DEFAULT_HZ;
    this.symbols = o.symbolizer ?? new Symbolizer();
    this.ctl = {
      min_block_ns: (o.minBlockUs ?? DEFAULT_MIN_BLOCK_US) * 1000,
      stack_epoch: 0,
      counts_gen: 0,
      offcpu: o.offcpu === false ? 0 : 1,
      offcpu_sample: o.offcpuSample ?? DEFAULT_OFFCPU_SAMPLE,
      pad: 0,
    };
    try {
      this.control.update(0, this.ctl);
      // perf_event_open takes online CPUs only
      for (const cpu of cpusInList(readFileSync('/sys/devices/system/cpu/online', 'utf8'))) this.obj.attachPerfEvent('profile_sample', cpu, this.hz);
    } catch (err) {
      this.obj.close();
      throw new PeriscopeError('BPF_ATTACH', `profiler: sampling the CPU clock failed: ${(err as Error).message}`, 'the agent needs CAP_PERFMON (or CAP_SYS_ADMIN) and perf_event_paranoid ≤ 2; run `periscope doctor`', { cause: err });
    }
  }

  private stackAdded(map: number): number {
    return this.stats.lookup(gen.enums.profile_stat.STAT_STACKS_ADDED_0 + map) ?? 0;
  }

  /** How many stacks a stack map holds: what was added since it was emptied (no walk of its keys). */
  private stackFill(map: number): number {
    return this.stackAdded(map) - this.addedAtClear[map]!;
  }

  private statsNow(): Record<string, number> {
    return Object.fromEntries(Object.entries(STAT_NAMES).map(([name, k]) => [name, this.stats.lookup(k) ?? 0]));
  }

  read(): Readings {
    const s = this.statsNow();
    const rows: Sample[] = Object.entries(s).map(([event, value]) => ({ labels: { event }, value }));
    rows.push(
      { labels: { event: 'drains' }, value: this.user.drains },
      { labels: { event: 'stacks' }, value: this.user.stacks },
      { labels: { event: 'stack_map_recycled' }, value: this.user.rotations },
      { labels: { event: 'stack_lookup_lost' }, value: this.user.lookupsLost },
      // equal unless a counts map was full (aggregates dropped): every sample counted is drained once
      { labels: { event: 'samples_counted_at_drain' }, value: this.user.samplesCounted },
      { labels: { event: 'samples_drained' }, value: this.user.samplesDrained },
    );
    const sym = this.symbols.stats();
    return new Map<string, Sample[]>([
      ['periscope_profile_events_total', rows],
      [
        'periscope_profile_symbols',
        [
          { labels: { kind: 'files' }, value: sym.files },
          { labels: { kind: 'symbols' }, value: sym.symbols },
          { labels: { kind: 'processes' }, value: sym.processes },
        ],
      ],
      ['periscope_profile_frames_total', [
        { labels: { result: 'looked_up' }, value: sym.lookups },
        { labels: { result: 'unsymbolized' }, value: sym.unsymbolized },
      ]],
    ]);
  }

  /**
   * The stacks counted since the previous drain. The programs are switched to the other counts map
   * first; the one they left is read (and emptied) once every program that had already looked at the
   * switch has finished — they run for microseconds; 2 ms is a wide margin.
   */
  profiles(): ProfileDrain {
    const from = this.lastDrain;
    const to = Date.now();
    this.lastDrain = to;
    const old = this.ctl.counts_gen;
    this.ctl = { ...this.ctl, counts_gen: old ? 0 : 1 };
    this.control.update(0, this.ctl);
    pause(2);
    // the samples the programs counted into this map since its previous drain: what the drain must hold
    const counted = this.samplesByGen.lookup(old) ?? 0;
    this.user.samplesCounted += counted - this.samplesAtDrain[old]!;
    this.samplesAtDrain[old] = counted;
    const entries = this.counts[old]!.entries(true);
    this.user.drains++;

    const builders = new Map<string, { cgroup: number; type: ProfileType; b: ProfileBuilder }>();
    for (const [key, value] of entries) {
      const type = KINDS[key.kind];
      if (!type) continue;
      const frames: string[] = [this.symbols.processName(key.pid)];
      if (isStack(key.user_stack)) {
        frames.push(...this.named(`${key.pid}:${key.user_stack}`, key.stack_map, key.user_stack, (ips) => this.symbols.user(key.pid, ips)));
      } else if (key.user_stack === STACK_LOST) frames.push('[stack lost]');
      if (isStack(key.kernel_stack)) {
        frames.push(
          ...this.named(`k:${key.kernel_stack}`, key.stack_map, key.kernel_stack, (ips) => {
            const names = this.symbols.kernel(ips);
            let leaf = 0;
            while (leaf < names.length - 1 && PROFILER_FRAME.test(names[leaf]!)) leaf++;
            return names.slice(leaf);
          }),
        );
      } else if (key.kernel_stack === STACK_LOST && key.user_stack !== STACK_LOST) frames.push('[stack lost]_[k]');
      if (frames.length === 1) frames.push('[no stack]');
      const bk = `${key.cgroup_id}:${type}`;
      let b = builders.get(bk);
      if (!b) builders.set(bk, (b = { cgroup: key.cgroup_id, type, b: new ProfileBuilder() }));
      const sampled = key.kind === gen.enums.profile_kind.PROFILE_CPU;
      if (sampled) this.user.samplesDrained += value.count;
      b.b.add(frames, sampled ? value.count : value.ns);
    }
    this.user.stacks += entries.size;
    this.maybeRecycle();
    return {
      from,
      to,
      period: { cpu: 1e9 / this.hz, offcpu: 1, runq: 1 },
      profiles: [...builders.values()].map(({ cgroup, type, b }) => ({ subject: cgroupSubject(cgroup), type, stacks: b.build(type, from, to, 1).stacks as Stack[] })),
    };
  }

  /**
   * The names of one stack, root first, or a marker when its map no longer holds it. Kept across
   * drains (a node's stacks repeat: an idle one's are the same every drain): a stack's name is the
   * hash of its addresses, so what it names does not change while its process lives (a process that
   * reuses a pid and the same addresses would be shown the old names until the cache is emptied, at
   * each recycle of a stack map or past 50,000 stacks).
   */
  private named(cacheKey: string, map: number, hash: number, names: (ips: bigint[]) => string[]): string[] {
    const known = this.nameCache.get(cacheKey);
    if (known) return known;
    const ips = this.stacks[map]?.lookup(hash);
    if (!ips || ips.length === 0) {
      this.user.lookupsLost++;
      return ['[stack lost]'];
    }
    const rootFirst = names(ips).reverse();
    if (this.nameCache.size >= MAX_CACHED_STACKS) this.nameCache.clear();
    this.nameCache.set(cacheKey, rootFirst);
    return rootFirst;
  }

  /**
   * Empties the stack map of two epochs ago and moves the epoch on, when the current map is half full
   * (a full map loses every new stack until the next drain). Done after the drain has read its
   * counts: what points into that map was counted before the previous epoch change (samples, and
   * waits that began in the epoch before it), so it was in this drain or an earlier one; a wait that
   * began two epochs ago is counted without stacks from the previous change on (profiler.bpf.c).
   */
  private maybeRecycle(): void {
    const map = this.ctl.stack_epoch % 3;
    const fill = this.stackFill(map);
    if (fill < this.stackEntries / 2) return;
    const next = (this.ctl.stack_epoch + 1) % 3;
    const m = this.stacks[next]!;
    m.entries(true);
    this.addedAtClear[next] = this.stackAdded(next);
    this.ctl = { ...this.ctl, stack_epoch: this.ctl.stack_epoch + 1 };
    this.nameCache.clear();
    this.control.update(0, this.ctl);
    this.user.rotations++;
  }

}

export const profiler = defineCollector({
  name: 'profiler',
  help: 'on-CPU samples and off-CPU time (blocked, and waiting for a CPU) per cgroup and stack, counted in the kernel; symbolized stacks at /api/v1/profiles',
  spec: PROFILE_SPEC,
  metrics: [
    {
      type: 'counter',
      name: 'periscope_profile_events_total',
      labels: ['event'],
      help: 'What the profiler did and lost: samples taken (idle CPUs apart), scheduler switches whose stacks were taken, waits too short to count, new stacks lost to a full stack map or an error, waits whose stacks had been recycled, drains, stacks drained, stack maps recycled, stacks gone before they were read, samples counted into the drained maps and drained.',
    },
    { type: 'gauge', name: 'periscope_profile_symbols', labels: ['kind'], help: 'What the symbolizer holds: ELF files, symbols, processes (its caches are bounded).' },
    { type: 'counter', name: 'periscope_profile_frames_total', labels: ['result'], help: 'Frames the symbolizer looked up, and those it could not name (kept as module+0xOFFSET or [unknown]).' },
  ],
  events: [],
  settings: SETTINGS,
  profiles: ['cpu', 'offcpu', 'runq'],
  start: (ctx) => new ProfileCollector(ctx),
});
