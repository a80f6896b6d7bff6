/**
 * cpu collector: on-CPU time, voluntary and involuntary context switches, and run-queue latency
 * (wakeup or preemption → back on a CPU) per cgroup, all aggregated in the kernel from scheduler
 * tracepoints. Reading adds the slice each CPU is running now, so a task that has not been switched
 * out for seconds is still counted up to the moment of the read.
 */
import { type ObjectSpec } from '../../kernel/bpf-object.js';
import { native } from '../../kernel/native.js';
import { type TypedMap } from '../../kernel/maps.js';
import * as gen from './cpu.gen.js';
import { cgroupSubject, defineCollector, type CollectorContext, type CollectorInstance, type HistogramValue, type Readings } from '../contract.js';
import { KernelCollector, loadAndAttach, perCgroup } from '../kernel-collector.js';

export const CPU_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  config: gen.config,
  maps: gen.maps,
  cgroupMaps: ['cgroup_cpu'],
  alternatives: [
    {
      name: 'tp_btf',
      requires: ['btf', 'tp_btf', 'task_storage'],
      programs: ['cpu_switch_btf', 'cpu_wakeup_btf', 'cpu_wakeup_new_btf'],
      config: { use_task_storage: true },
      skipMaps: ['enqueued_at'],
    },
    {
      name: 'raw_tp',
      requires: ['btf', 'raw_tp'],
      programs: ['cpu_switch_raw', 'cpu_wakeup_raw', 'cpu_wakeup_new_raw'],
      skipMaps: ['queued_since'],
    },
  ],
};

/** Upper bounds, in seconds, of the kernel's log2 run-queue slots: slot i ends at 2^(i+1) µs. The last
 * slot is open-ended and only reaches +Inf. */
const RUNQ_SLOTS = gen.CgroupCpuCodec.decode(new DataView(new ArrayBuffer(gen.CgroupCpuCodec.size)), 0).runq_slots.length;
export const RUNQ_BUCKETS: readonly number[] = Array.from({ length: RUNQ_SLOTS - 1 }, (_x, i) => 2 ** (i + 1) / 1e6);

export interface CpuReading {
  cpuSeconds: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
  runq: HistogramValue;
}

/** The kernel's per-slot counts as a histogram over RUNQ_BUCKETS (the last slot only reaches +Inf). */
function runqOf(slots: readonly number[], sumNs: number): HistogramValue {
  const cumulative: number[] = [];
  let acc = 0;
  for (const n of slots) {
    acc += n;
    cumulative.push(acc);
  }
  return { bounds: RUNQ_BUCKETS, cumulative: cumulative.slice(0, RUNQ_BUCKETS.length), count: acc, sum: sumNs / 1e9 };
}

export class CpuCollector extends KernelCollector<gen.ProgramName> implements CollectorInstance {
  private readonly stats: TypedMap<number, gen.CgroupCpu>;
  private readonly slices: TypedMap<number, gen.CpuSlice>;

  constructor(ctx: Pick<CollectorContext, 'maxCgroups'>, opts: { alternative?: string } = {}) {
    const { obj, parts } = loadAndAttach(CPU_SPEC, ctx, opts, (o) => ({
      stats: o.map(gen.maps.cgroup_cpu),
      slices: o.map(gen.maps.current_slice),
    }));
    super('cpu', obj, { map: gen.maps.drops, kinds: gen.enums.periscope_drop });
    this.stats = parts.stats;
    this.slices = parts.slices;
  }

  /** CPU time, switches and run-queue latency per cgroup id, CPU time including the slices running now. */
  usage(): Map<number, CpuReading> {
    const out = new Map<number, CpuReading>();
    for (const [id, s] of this.stats.entries()) {
      out.set(id, {
        cpuSeconds: s.oncpu_ns / 1e9,
        voluntarySwitches: s.voluntary_switches,
        involuntarySwitches: s.involuntary_switches,
        runq: runqOf(s.runq_slots, s.runq_sum_ns),
      });
    }
    // The running slices are read after the totals, never before: a slice that ends between the two
    // reads is then missing for one read (the exporter keeps the counter from going down, and the next
    // read has it), where the other order would count it twice — in the totals and as running.
    const running = this.slices.lookupPerCpu(0) ?? [];
    const now = Number(native().monotonicNs());
    for (const slice of running) {
      if (!slice.pid || !slice.start_ns || !slice.cgroup_id || now <= slice.start_ns) continue;
      const r = out.get(slice.cgroup_id) ?? { cpuSeconds: 0, voluntarySwitches: 0, involuntarySwitches: 0, runq: runqOf([], 0) };
      r.cpuSeconds += (now - slice.start_ns) / 1e9;
      out.set(slice.cgroup_id, r);
    }
    return out;
  }

  read(): Readings {
    const u = this.usage();
    return new Map([
      ['periscope_cpu_seconds_total', perCgroup(u, (r) => r.cpuSeconds)],
      [
        'periscope_context_switches_total',
        [...perCgroup(u, (r) => r.voluntarySwitches, { kind: 'voluntary' }), ...perCgroup(u, (r) => r.involuntarySwitches, { kind: 'involuntary' })],
      ],
      ['periscope_runqueue_latency_seconds', [...u].map(([id, r]) => ({ subject: cgroupSubject(id), value: r.runq }))],
    ]);
  }
}

export const cpu = defineCollector({
  name: 'cpu',
  help: 'on-CPU time, context switches and run-queue latency per cgroup, from scheduler switches',
  spec: CPU_SPEC,
  metrics: [
    {
      type: 'counter',
      name: 'periscope_cpu_seconds_total',
      subject: 'cgroup',
      help: 'CPU time spent on a CPU by tasks of the cgroup, from scheduler switches (includes slices running at read time).',
    },
    {
      type: 'counter',
      name: 'periscope_context_switches_total',
      subject: 'cgroup',
      labels: ['kind'],
      help: 'Context switches away from tasks of the cgroup: voluntary (the task blocked) or involuntary (it was preempted).',
    },
    {
      type: 'histogram',
      name: 'periscope_runqueue_latency_seconds',
      subject: 'cgroup',
      buckets: RUNQ_BUCKETS,
      help: 'Time tasks of the cgroup waited on a run queue, from wakeup or preemption until they ran (log2 buckets).',
    },
  ],
  events: [],
  start: (ctx) => new CpuCollector(ctx),
});
