/**
 * Pieces every collector shares: reading the per-CPU `drops` array that each BPF object carries, and
 * deleting gone cgroups from per-cgroup maps.
 */
import { type TypedMap } from '../kernel/maps.js';
import { type DropCounts } from './types.js';

/** enum periscope_drop values, as generated from a collector's BTF. */
export interface DropEnum {
  DROP_RINGBUF_FULL: number;
  DROP_MAP_FULL: number;
}

export function readDrops(map: TypedMap<number, number>, kinds: DropEnum): DropCounts {
  return {
    events: map.lookup(kinds.DROP_RINGBUF_FULL) ?? 0,
    aggregates: map.lookup(kinds.DROP_MAP_FULL) ?? 0,
  };
}

export function forgetIn(maps: readonly TypedMap<number, unknown>[], ids: readonly number[]): void {
  for (const id of ids) for (const m of maps) m.delete(id);
}

/** Cumulative values read from the kernel plus an estimate of work in progress must never go down:
 * keeps the highest value exported per key. */
export class Monotonic {
  private readonly last = new Map<number, number>();

  next(key: number, value: number): number {
    const prev = this.last.get(key) ?? 0;
    const v = Math.max(prev, value);
    this.last.set(key, v);
    return v;
  }

  forget(key: number): void {
    this.last.delete(key);
  }
}
