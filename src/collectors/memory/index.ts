/**
 * memory collector: OOM kills per cgroup (the victim's cgroup, not the allocating task's) and an event
 * for each kill with the victim's pid, command and size.
 */
import { BpfObject, type ObjectSpec } from '../../kernel/bpf-object.js';
import { type TypedMap } from '../../kernel/maps.js';
import { type RingReader } from '../../kernel/ring.js';
import * as gen from '../../kernel/generated/memory.js';
import { type Collector, type CollectorContext, type CollectorStatus, type DropCounts } from '../types.js';
import { forgetIn, readDrops } from '../common.js';

export const MEMORY_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  alternatives: [
    { name: 'tp_btf', requires: ['btf', 'tp_btf', 'ringbuf'], programs: ['oom_victim_btf'] },
    { name: 'raw_tp', requires: ['btf', 'raw_tp', 'ringbuf'], programs: ['oom_victim_raw'] },
  ],
};

const PAGE_SIZE = 4096;

export class MemoryCollector implements Collector {
  readonly name = 'memory';
  private readonly ctx: CollectorContext;
  private readonly obj: BpfObject<gen.ProgramName>;
  private readonly stats: TypedMap<number, gen.OomStats>;
  private readonly dropMap: TypedMap<number, number>;
  private readonly ring: RingReader;

  constructor(ctx: CollectorContext) {
    this.ctx = ctx;
    this.obj = BpfObject.load(MEMORY_SPEC, { maxEntries: { oom_stats: ctx.maxCgroups } });
    try {
      this.stats = this.obj.map(gen.maps.oom_stats);
      this.dropMap = this.obj.map(gen.maps.drops);
      this.ring = this.obj.ring(gen.maps.oom_events.name);
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

  cgroupIds(): Iterable<number> {
    return this.stats.entries().keys();
  }

  forget(ids: readonly number[]): void {
    forgetIn([this.stats], ids);
  }

  drops(): DropCounts {
    return readDrops(this.dropMap, gen.enums.periscope_drop);
  }

  close(): void {
    this.obj.close();
  }
}
