/**
 * process collector: execs, new processes and exits per cgroup (exact, counted in the kernel), and a
 * stream of exec events (filename, first arguments, pid, ppid, uid) and exit events (exit code or
 * signal, lifetime).
 */
import { constants } from 'node:os';
import { type ObjectSpec } from '../../kernel/bpf-object.js';
import { type TypedMap } from '../../kernel/maps.js';
import { type RingReader, type RawRecord } from '../../kernel/ring.js';
import * as gen from './process.gen.js';
import { cgroupSubject, defineCollector, type CollectorContext, type CollectorInstance, type Readings } from '../contract.js';
import { TIME, WHO, num } from '../../wire/table.js';
import { KernelCollector, loadAndAttach, perCgroup } from '../kernel-collector.js';

export type { ExecEvent, ExitEvent } from './events.js';

export const PROCESS_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  maps: gen.maps,
  cgroupMaps: ['process_stats'],
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

export class ProcessCollector extends KernelCollector<gen.ProgramName> implements CollectorInstance {
  private readonly ctx: CollectorContext;
  private readonly stats: TypedMap<number, gen.ProcessStats>;
  private readonly ring: RingReader;

  /** eventRingBytes sizes the kernel ring buffer of events (a power of two, at least a page). */
  constructor(ctx: CollectorContext, opts: { eventRingBytes?: number; alternative?: string } = {}) {
    const maxEntries: Record<string, number> = opts.eventRingBytes ? { process_events: opts.eventRingBytes } : {};
    const { obj, parts } = loadAndAttach(PROCESS_SPEC, ctx, { maxEntries, ...(opts.alternative ? { alternative: opts.alternative } : {}) }, (o) => ({
      stats: o.map(gen.maps.process_stats),
      ring: o.ring(gen.maps.process_events.name),
    }));
    super('process', obj, { map: gen.maps.drops, kinds: gen.enums.periscope_drop });
    this.ctx = ctx;
    this.stats = parts.stats;
    this.ring = parts.ring;
  }

  override poll(): number {
    return this.ring.drain((r) => this.decode(r));
  }

  /** The fields exec and exit events share. */
  private common(e: gen.ExecEvent | gen.ExitEvent): { time: string; subject: ReturnType<typeof cgroupSubject>; pid: number; ns_pid: number; ppid: number; uid: number; comm: string } {
    return {
      time: this.ctx.wallTime(e.time_ns),
      subject: cgroupSubject(e.cgroup_id),
      pid: e.pid,
      ns_pid: e.ns_pid,
      ppid: e.ppid,
      uid: e.uid,
      comm: e.comm,
    };
  }

  private decode(r: RawRecord): void {
    const kind = r.view.getUint32(r.offset, true);
    if (kind === gen.enums.process_event_kind.PROCESS_EXEC && r.size >= gen.ExecEventCodec.size) {
      const e = gen.ExecEventCodec.decode(r.view, r.offset);
      const args = utf8.decode(new Uint8Array(r.view.buffer, r.view.byteOffset + r.offset + gen.ExecEventOffsets.args, e.args_size));
      this.ctx.emit({
        type: 'exec',
        ...this.common(e),
        filename: e.filename,
        args: splitArgs(args),
        args_truncated: e.args_truncated !== 0,
      });
    } else if (kind === gen.enums.process_event_kind.PROCESS_EXIT && r.size >= gen.ExitEventCodec.size) {
      const e = gen.ExitEventCodec.decode(r.view, r.offset);
      this.ctx.emit({
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

  read(): Readings {
    const c = this.counts();
    return new Map([
      ['periscope_process_execs_total', perCgroup(c, (p) => p.execs)],
      ['periscope_process_forks_total', perCgroup(c, (p) => p.forks)],
      ['periscope_process_exits_total', perCgroup(c, (p) => p.exits)],
    ]);
  }
}

export const processCollector = defineCollector({
  name: 'process',
  help: 'execs, new processes and exits per cgroup, and a stream of exec and exit events',
  spec: PROCESS_SPEC,
  metrics: [
    { type: 'counter', name: 'periscope_process_execs_total', subject: 'cgroup', help: 'Successful execve/execveat calls by processes of the cgroup.' },
    { type: 'counter', name: 'periscope_process_forks_total', subject: 'cgroup', help: 'New processes (not threads) created in the cgroup.' },
    { type: 'counter', name: 'periscope_process_exits_total', subject: 'cgroup', help: 'Processes of the cgroup that exited (their last thread ended), by any means.' },
  ],
  events: [
    { type: 'exec', help: 'a process ran a new program: filename, first arguments (secrets masked), pid, ppid, uid', argv: ['args'], trace: 'exec' },
    { type: 'exit', help: 'a process ended: exit code or signal, core dump, lifetime', trace: 'exec' },
  ],
  traces: [
    {
      name: 'exec',
      help: 'processes started and ended',
      columns: [
        TIME,
        WHO,
        { header: 'TYPE', width: 4, show: [['text', 'type']] },
        num('PID', 'pid'),
        num('PPID', 'ppid'),
        { header: 'EXIT', width: 7, show: [['text', 'signal_name'], ['text', 'exit_code']] },
        { header: 'COMM/ARGV', width: 160, show: [['argv', 'args'], ['text', 'comm']] },
      ],
    },
  ],
  start: (ctx) => new ProcessCollector(ctx),
});
