/**
 * cpu collector: on-CPU time, voluntary and involuntary context switches, and run-queue latency
 * (wakeup or preemption → back on a CPU) per cgroup, all aggregated in the kernel from scheduler
 * tracepoints. Reading adds the slice each CPU is running now, so a task that has not been switched
 * out for seconds is still counted up to the moment of the read.
 */
import { BpfObject, type ObjectSpec } from '../../kernel/bpf-object.js';
import { native } from '../../kernel/native.js';
import { type TypedMap } from '../../kernel/maps.js';
import * as gen from '../../kernel/generated/cpu.js';
import { type Collector, type CollectorContext, type CollectorStatus, type DropCounts } from '../types.js';
import { Monotonic, forgetIn, readDrops } from '../common.js';

export const CPU_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  alternatives: [
    { name: 'tp_btf', requires: ['btf', 'tp_btf'], programs: ['cpu_switch_btf', 'cpu_wakeup_btf', 'cpu_wakeup_new_btf'] },
    { name: 'raw_tp', requires: ['btf', 'raw_tp'], programs: ['cpu_switch_raw', 'cpu_wakeup_raw', 'cpu_wakeup_new_raw'] },
  ],
};

/** Upper bounds, in seconds, of the kernel's log2 run-queue slots: slot i ends at 2^(i+1) µs. The last
 * slot is open-ended and only reaches +Inf. */
const RUNQ_SLOTS = gen.RunqHistCodec.decode(new DataView(new ArrayBuffer(gen.RunqHistCodec.size)), 0).slots.length;
export const RUNQ_BUCKETS: readonly number[] = Array.from({ length: RUNQ_SLOTS - 1 }, (_x, i) => 2 ** (i + 1) / 1e6);

export interface CpuUsage {
  cpuSeconds: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
}

export interface RunqLatency {
  /** cumulative counts for RUNQ_BUCKETS, then +Inf */
  cumulative: number[];
  count: number;
  sumSeconds: number;
}

export class CpuCollector implements Collector {
  readonly name = 'cpu';
  private readonly obj: BpfObject<gen.ProgramName>;
  private readonly stats: TypedMap<number, gen.CpuStats>;
  private readonly runq: TypedMap<number, gen.RunqHist>;
  private readonly slices: TypedMap<number, gen.CpuSlice>;
  private readonly dropMap: TypedMap<number, number>;
  private readonly monotonic = new Monotonic();

  constructor(ctx: Pick<CollectorContext, 'maxCgroups'>) {
    this.obj = BpfObject.load(CPU_SPEC, { maxEntries: { cpu_stats: ctx.maxCgroups, runq_latency: ctx.maxCgroups } });
    try {
      this.stats = this.obj.map(gen.maps.cpu_stats);
      this.runq = this.obj.map(gen.maps.runq_latency);
      this.slices = this.obj.map(gen.maps.current_slice);
      this.dropMap = this.obj.map(gen.maps.drops);
      this.obj.attach();
    } catch (err) {
      this.obj.close();
      throw err;
    }
  }

  status(): CollectorStatus {
    return { name: this.name, alternative: this.obj.choice.chosen, passedOver: this.obj.choice.passedOver, programsAttached: this.obj.attachedPrograms };
  }

  poll(): number {
    return 0; // aggregates only: nothing streams
  }

  /** CPU time and switches per cgroup id, including the slices running now. */
  usage(): Map<number, CpuUsage> {
    const now = Number(native().monotonicNs());
    const running = this.slices.lookupPerCpu(0) ?? [];
    const out = new Map<number, CpuUsage>();
    for (const [id, s] of this.stats.entries()) {
      out.set(id, { cpuSeconds: s.oncpu_ns / 1e9, voluntarySwitches: s.voluntary_switches, involuntarySwitches: s.involuntary_switches });
    }
    for (const slice of running) {
      if (!slice.pid || !slice.start_ns || now <= slice.start_ns) continue;
      const u = out.get(slice.cgroup_id) ?? { cpuSeconds: 0, voluntarySwitches: 0, involuntarySwitches: 0 };
      u.cpuSeconds += (now - slice.start_ns) / 1e9;
      out.set(slice.cgroup_id, u);
    }
    for (const [id, u] of out) u.cpuSeconds = this.monotonic.next(id, u.cpuSeconds);
    return out;
  }

  runqLatency(): Map<number, RunqLatency> {
    const out = new Map<number, RunqLatency>();
    for (const [id, h] of this.runq.entries()) {
      const cumulative: number[] = [];
      let acc = 0;
      for (const n of h.slots) {
        acc += n;
        cumulative.push(acc);
      }
      // slots.length - 1 finite buckets, then +Inf (= all)
      cumulative.splice(h.slots.length - 1, 1, acc);
      out.set(id, { cumulative, count: acc, sumSeconds: h.sum_ns / 1e9 });
    }
    return out;
  }

  cgroupIds(): Iterable<number> {
    return new Set([...this.stats.entries().keys(), ...this.runq.entries().keys()]);
  }

  forget(ids: readonly number[]): void {
    forgetIn([this.stats, this.runq], ids);
    for (const id of ids) this.monotonic.forget(id);
  }

  drops(): DropCounts {
    return readDrops(this.dropMap, gen.enums.periscope_drop);
  }

  close(): void {
    this.obj.close();
  }
}
