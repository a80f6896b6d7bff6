/**
 * process collector: execs, new processes and exits per cgroup (exact, counted in the kernel), and a
 * stream of exec events (filename, first arguments, pid, ppid, uid) and exit events (exit code or
 * signal, lifetime).
 */
import { constants } from 'node:os';
import { type ObjectSpec } from '../../kernel/bpf-object.js';
import { type TypedMap } from '../../kernel/maps.js';
import { type RingReader, type RawRecord } from '../../kernel/ring.js';
import * as gen from '../../kernel/generated/process.js';
import { type Collector, type CollectorContext } from '../types.js';
import { type Attribution, type ExitEvent } from '../../wire/events.js';
import { KernelCollector, loadAndAttach } from '../common.js';

export const PROCESS_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  alternatives: [
    { name: 'tp_btf', requires: ['btf', 'tp_btf', 'ringbuf'], programs: ['process_exec_btf', 'process_fork_btf', 'process_exit_btf'] },
    { name: 'raw_tp', requires: ['btf', 'raw_tp', 'ringbuf'], programs: ['process_exec_raw', 'process_fork_raw', 'process_exit_raw'] },
  ],
};

const utf8 = new TextDecoder();
const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

export interface ProcessCounts {
  execs: number;
  forks: number;
  exits: number;
}

/** Splits the kernel's NUL-separated argument area into arguments. */
export function splitArgs(raw: string): string[] {
  const parts = raw.split('\0');
  if (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export class ProcessCollector extends KernelCollector<gen.ProgramName> implements Collector {
  private readonly ctx: CollectorContext;
  private readonly stats: TypedMap<number, gen.ProcessStats>;
  private readonly ring: RingReader;

  /** eventRingBytes sizes the kernel ring buffer of events (a power of two, at least a page). */
  constructor(ctx: CollectorContext, opts: { eventRingBytes?: number } = {}) {
    const maxEntries: Record<string, number> = { process_stats: ctx.maxCgroups };
    if (opts.eventRingBytes) maxEntries.process_events = opts.eventRingBytes;
    const { obj, parts } = loadAndAttach(PROCESS_SPEC, { maxEntries }, (o) => ({
      stats: o.map(gen.maps.process_stats),
      drops: o.map(gen.maps.drops),
      ring: o.ring(gen.maps.process_events.name),
    }));
    super('process', obj, { map: parts.drops, kinds: gen.enums.periscope_drop }, [parts.stats]);
    this.ctx = ctx;
    this.stats = parts.stats;
    this.ring = parts.ring;
  }

  poll(): number {
    return this.ring.drain((r) => this.decode(r));
  }

  /** The fields exec and exit events share. */
  private common(e: gen.ExecEvent | gen.ExitEvent): Omit<ExitEvent, 'seq' | 'type' | 'exit_code' | 'signal' | 'signal_name' | 'core_dumped' | 'lifetime_seconds' | keyof Attribution> {
    const { ctx } = this;
    return {
      time: ctx.wallTime(e.time_ns),
      node: ctx.node,
      cgroup: ctx.cgroupPath(e.cgroup_id) ?? '',
      cgroup_id: e.cgroup_id,
      pid: e.pid,
      ns_pid: e.ns_pid,
      ppid: e.ppid,
      uid: e.uid,
      comm: e.comm,
    };
  }

  private decode(r: RawRecord): void {
    const kind = r.view.getUint32(r.offset, true);
    const { ctx } = this;
    if (kind === gen.enums.process_event_kind.PROCESS_EXEC && r.size >= gen.ExecEventCodec.size) {
      const e = gen.ExecEventCodec.decode(r.view, r.offset);
      const args = utf8.decode(new Uint8Array(r.view.buffer, r.view.byteOffset + r.offset + gen.ExecEventOffsets.args, e.args_size));
      ctx.emit({
        type: 'exec',
        ...this.common(e),
        filename: e.filename,
        args: splitArgs(args),
        args_truncated: e.args_truncated !== 0,
      });
    } else if (kind === gen.enums.process_event_kind.PROCESS_EXIT && r.size >= gen.ExitEventCodec.size) {
      const e = gen.ExitEventCodec.decode(r.view, r.offset);
      ctx.emit({
        type: 'exit',
        ...this.common(e),
        exit_code: e.exit_code,
        signal: e.signal,
        signal_name: e.signal ? (SIGNAL_NAMES.get(e.signal) ?? null) : null,
        core_dumped: e.core_dumped !== 0,
        lifetime_seconds: e.lifetime_ns / 1e9,
      });
    }
  }

  counts(): Map<number, ProcessCounts> {
    const out = new Map<number, ProcessCounts>();
    for (const [id, s] of this.stats.entries()) out.set(id, { execs: s.execs, forks: s.forks, exits: s.exits });
    return out;
  }
}
