/**
 * What every kernel collector shares: loading its object and attaching it without leaking the object
 * when a step fails, the per-CPU `drops` array each BPF object carries, status, and dropping the
 * per-cgroup map entries of cgroups that are gone.
 */
import { BpfObject, type LoadOptions, type ObjectSpec } from '../kernel/bpf-object.js';
import { type TypedMap } from '../kernel/maps.js';
import { type CollectorStatus, type DropCounts } from './types.js';

/** enum periscope_drop values, as generated from a collector's BTF. */
export interface DropEnum {
  DROP_RINGBUF_FULL: number;
  DROP_MAP_FULL: number;
}

/**
 * Loads an object, lets `setup` take its maps and rings, then attaches; on any failure the object is
 * closed before the error goes on, so nothing stays in the kernel.
 */
export function loadAndAttach<P extends string, T>(spec: ObjectSpec<P>, opts: LoadOptions, setup: (obj: BpfObject<P>) => T): { obj: BpfObject<P>; parts: T } {
  const obj = BpfObject.load(spec, opts);
  try {
    const parts = setup(obj);
    obj.attach();
    return { obj, parts };
  } catch (err) {
    obj.close();
    throw err;
  }
}

export abstract class KernelCollector<P extends string> {
  readonly name: string;
  protected readonly obj: BpfObject<P>;
  private readonly dropMap: TypedMap<number, number>;
  private readonly dropKinds: DropEnum;
  private readonly perCgroup: readonly TypedMap<number, unknown>[];

  protected constructor(
    name: string,
    obj: BpfObject<P>,
    drops: { map: TypedMap<number, number>; kinds: DropEnum },
    perCgroup: readonly TypedMap<number, unknown>[],
  ) {
    this.name = name;
    this.obj = obj;
    this.dropMap = drops.map;
    this.dropKinds = drops.kinds;
    this.perCgroup = perCgroup;
  }

  status(): CollectorStatus {
    return { name: this.name, alternative: this.obj.choice.chosen, passedOver: this.obj.choice.passedOver, programsAttached: this.obj.attachedPrograms };
  }

  drops(): DropCounts {
    return {
      events: this.dropMap.lookup(this.dropKinds.DROP_RINGBUF_FULL) ?? 0,
      aggregates: this.dropMap.lookup(this.dropKinds.DROP_MAP_FULL) ?? 0,
    };
  }

  cgroupIds(): Iterable<number> {
    const ids = new Set<number>();
    for (const m of this.perCgroup) for (const id of m.keys()) ids.add(id);
    return ids;
  }

  forget(ids: readonly number[]): void {
    for (const id of ids) for (const m of this.perCgroup) m.delete(id);
  }

  close(): void {
    this.obj.close();
  }
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
