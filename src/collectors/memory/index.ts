/**
 * memory collector: OOM kills per cgroup (the victim's cgroup, not the allocating task's) and an event
 * for each kill with the victim's pid, command and size.
 */
import { type ObjectSpec } from '../../kernel/bpf-object.js';
import { type TypedMap } from '../../kernel/maps.js';
import { type RingReader } from '../../kernel/ring.js';
import * as gen from '../../kernel/generated/memory.js';
import { type Collector, type CollectorContext } from '../types.js';
import { KernelCollector, loadAndAttach } from '../common.js';

export const MEMORY_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  alternatives: [
    { name: 'tp_btf', requires: ['btf', 'tp_btf', 'ringbuf'], programs: ['oom_victim_btf'] },
    { name: 'raw_tp', requires: ['btf', 'raw_tp', 'ringbuf'], programs: ['oom_victim_raw'] },
  ],
};

const PAGE_SIZE = 4096;

export class MemoryCollector extends KernelCollector<gen.ProgramName> implements Collector {
  private readonly ctx: CollectorContext;
  private readonly stats: TypedMap<number, gen.OomStats>;
  private readonly ring: RingReader;

  constructor(ctx: CollectorContext) {
    const { obj, parts } = loadAndAttach(MEMORY_SPEC, { maxEntries: { oom_stats: ctx.maxCgroups } }, (o) => ({
      stats: o.map(gen.maps.oom_stats),
      drops: o.map(gen.maps.drops),
      ring: o.ring(gen.maps.oom_events.name),
    }));
    super('memory', obj, { map: parts.drops, kinds: gen.enums.periscope_drop }, [parts.stats]);
    this.ctx = ctx;
    this.stats = parts.stats;
    this.ring = parts.ring;
  }

  poll(): number {
    const { ctx } = this;
    return this.ring.drain((r) => {
      if (r.size < gen.OomEventCodec.size) return;
      const e = gen.OomEventCodec.decode(r.view, r.offset);
      ctx.emit({
        type: 'oom_kill',
        time: ctx.wallTime(e.time_ns),
        node: ctx.node,
        cgroup: ctx.cgroupPath(e.cgroup_id) ?? '',
        cgroup_id: e.cgroup_id,
        pid: e.pid,
        uid: e.uid,
        comm: e.comm,
        total_vm_bytes: e.total_vm_pages * PAGE_SIZE,
      });
    });
  }

  oomKills(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [id, s] of this.stats.entries()) out.set(id, s.kills);
    return out;
  }
}
