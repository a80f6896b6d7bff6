/**
 * memory collector: OOM kills per cgroup (the victim's cgroup, not the allocating task's) and an event
 * for each kill with the victim's pid, command and size.
 */
import { type ObjectSpec } from '../../kernel/bpf-object.js';
import { type TypedMap } from '../../kernel/maps.js';
import { type RingReader } from '../../kernel/ring.js';
import * as gen from './memory.gen.js';
import { cgroupSubject, defineCollector, type CollectorContext, type CollectorInstance, type Readings } from '../contract.js';
import { TIME, WHO, num } from '../../wire/table.js';
import { KernelCollector, loadAndAttach, perCgroup } from '../kernel-collector.js';
import { type PeriscopeEvent } from '../../wire/events.js';

export type OomKillEvent = PeriscopeEvent<
  'oom_kill',
  {
    /** the victim's process id (its thread id where only that was known) */
    pid: number;
    uid: number;
    comm: string;
    total_vm_bytes: number;
    /** false where the kernel named the victim only by pid and the task could not be found: then
     * cgroup is empty, cgroup_id 0, and only pid is known */
    victim_found: boolean;
  }
>;

export const MEMORY_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  maps: gen.maps,
  cgroupMaps: ['oom_stats'],
  // Tracepoints first; where mark_victim passes only a pid, the same hook with the SIGKILL it follows.
  alternatives: [
    { name: 'tp_btf', requires: ['btf', 'tp_btf', 'ringbuf', 'mark_victim_task'], programs: ['oom_victim_btf'], skipMaps: ['sigkill_sent'] },
    { name: 'tp_btf_pid', requires: ['btf', 'tp_btf', 'ringbuf'], programs: ['oom_victim_btf', 'oom_signal_btf'] },
    { name: 'raw_tp', requires: ['btf', 'raw_tp', 'ringbuf', 'mark_victim_task'], programs: ['oom_victim_raw'], skipMaps: ['sigkill_sent'] },
    { name: 'raw_tp_pid', requires: ['btf', 'raw_tp', 'ringbuf'], programs: ['oom_victim_raw', 'oom_signal_raw'] },
    { name: 'fentry', requires: ['btf', 'fentry', 'ringbuf'], programs: ['oom_victim_fentry'], skipMaps: ['sigkill_sent'] },
    { name: 'kprobe', requires: ['btf', 'kprobe', 'ringbuf'], programs: ['oom_victim_kprobe'], skipMaps: ['sigkill_sent'] },
  ],
};

const PAGE_SIZE = 4096;

export class MemoryCollector extends KernelCollector<gen.ProgramName> implements CollectorInstance {
  private readonly ctx: CollectorContext;
  private readonly stats: TypedMap<number, gen.OomStats>;
  private readonly ring: RingReader;

  constructor(ctx: CollectorContext, opts: { alternative?: string } = {}) {
    const { obj, parts } = loadAndAttach(MEMORY_SPEC, ctx, opts, (o) => ({
      stats: o.map(gen.maps.oom_stats),
      ring: o.ring(gen.maps.oom_events.name),
    }));
    super('memory', obj, { map: gen.maps.drops, kinds: gen.enums.periscope_drop });
    this.ctx = ctx;
    this.stats = parts.stats;
    this.ring = parts.ring;
  }

  override poll(): number {
    const { ctx } = this;
    return this.ring.drain((r) => {
      if (r.size < gen.OomEventCodec.size) return;
      const e = gen.OomEventCodec.decode(r.view, r.offset);
      ctx.emit({
        type: 'oom_kill',
        time: ctx.wallTime(e.time_ns),
        subject: cgroupSubject(e.cgroup_id),
        pid: e.pid,
        uid: e.uid,
        comm: e.comm,
        total_vm_bytes: e.total_vm_pages * PAGE_SIZE,
        victim_found: e.victim_found !== 0,
      });
    });
  }

  oomKills(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [id, s] of this.stats.entries()) out.set(id, s.kills);
    return out;
  }

  read(): Readings {
    return new Map([['periscope_oom_kills_total', perCgroup(this.oomKills(), (n) => n)]]);
  }
}

export const memory = defineCollector({
  name: 'memory',
  help: 'OOM kills per cgroup (the victim\'s), and an event for each',
  spec: MEMORY_SPEC,
  metrics: [{ type: 'counter', name: 'periscope_oom_kills_total', subject: 'cgroup', help: 'Processes of the cgroup killed by the OOM killer.' }],
  events: [{ type: 'oom_kill', help: 'the OOM killer chose a victim: its pid, command, uid and size', trace: 'oom' }],
  traces: [
    {
      name: 'oom',
      help: 'processes the OOM killer chose',
      columns: [TIME, WHO, num('PID', 'pid'), num('UID', 'uid'), { header: 'SIZE', width: 7, right: true, show: [['bytes', 'total_vm_bytes']] }, { header: 'COMM', width: 16, show: [['text', 'comm']] }],
    },
  ],
  start: (ctx) => new MemoryCollector(ctx),
});
