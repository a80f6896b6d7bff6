/**
 * What every collector gives the agent. A collector owns one BPF object: it loads the alternative the
 * kernel supports, attaches it, drains its event ring into the agent's log, and reads its per-cgroup
 * aggregates when the agent asks. It knows cgroups only by id; the context names them.
 */
import { type NewEvent } from '../wire/events.js';

export interface CollectorContext {
  /** The path of a cgroup id below the cgroup2 root, or undefined when it cannot be named yet. */
  cgroupPath(id: number): string | undefined;
  /** Wall-clock ISO time of a kernel monotonic timestamp (bpf_ktime_get_ns). */
  wallTime(monotonicNs: number): string;
  emit(event: NewEvent): void;
  node: string;
  /** max_entries of each per-cgroup map: bounds kernel memory */
  maxCgroups: number;
}

export interface CollectorStatus {
  name: string;
  /** the alternative the kernel took, e.g. "tp_btf" */
  alternative: string;
  passedOver: { name: string; reason: string }[];
  programsAttached: number;
}

export interface DropCounts {
  /** event records the ring buffer had no room for */
  events: number;
  /** per-cgroup aggregates not created because the map was full */
  aggregates: number;
}

export interface Collector {
  readonly name: string;
  status(): CollectorStatus;
  /** Drains ready events into the context; returns how many. */
  poll(): number;
  /** The cgroup ids this collector holds aggregates for. */
  cgroupIds(): Iterable<number>;
  /** Drops the aggregates of cgroups that are gone. */
  forget(ids: readonly number[]): void;
  drops(): DropCounts;
  close(): void;
}
