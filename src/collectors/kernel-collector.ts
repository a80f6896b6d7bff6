/**
 * What every kernel collector shares: loading its object and attaching it without leaking the object
 * when a step fails, sizing its per-cgroup maps, the per-CPU `drops` array each BPF object carries,
 * status, the subjects it holds kernel state for, and dropping the state of cgroups that are gone.
 */
import { BpfObject, type LoadOptions, type ObjectSpec } from '../kernel/bpf-object.js';
import { type MapSpec, type TypedMap } from '../kernel/maps.js';
import { cgroupSubject, type CollectorContext, type CollectorStatus, type DropCounts, type Readings, type Sample, type Subject } from './contract.js';

/** enum periscope_drop values, as generated from a collector's BTF. */
export interface DropEnum {
  DROP_RINGBUF_FULL: number;
  DROP_MAP_FULL: number;
  DROP_MAP_UPDATE: number;
}

export interface KernelParts {
  drops: TypedMap<number, number>;
  kinds: DropEnum;
}

/**
 * Loads an object (per-cgroup maps sized to ctx.maxCgroups, other sizes from opts), lets `setup` take
 * its maps and rings, then attaches; on any failure the object is closed before the error goes on, so
 * nothing stays in the kernel.
 */
export function loadAndAttach<P extends string, T>(
  spec: ObjectSpec<P>,
  ctx: Pick<CollectorContext, 'maxCgroups'>,
  opts: LoadOptions,
  setup: (obj: BpfObject<P>) => T,
): { obj: BpfObject<P>; parts: T } {
  const maxEntries = { ...Object.fromEntries((spec.cgroupMaps ?? []).map((m) => [m, ctx.maxCgroups])), ...opts.maxEntries };
  const obj = BpfObject.load(spec, { ...opts, maxEntries });
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

  protected constructor(name: string, obj: BpfObject<P>, drops: { map: MapSpec<number, number>; kinds: DropEnum }) {
    this.name = name;
    this.obj = obj;
    this.dropMap = obj.map(drops.map);
    this.dropKinds = drops.kinds;
    this.perCgroup = (obj.spec.cgroupMaps ?? []).map((name) => {
      const m = obj.spec.maps[name];
      if (!m) throw new Error(`${obj.spec.file}: cgroup map ${name} is not in the spec's maps`);
      return obj.map(m as MapSpec<number, unknown>);
    });
  }

  status(): CollectorStatus {
    const { chosen, passedOver, note } = this.obj.choice;
    return { name: this.name, alternative: chosen, passedOver, ...(note ? { note } : {}), programsAttached: this.obj.attachedPrograms };
  }

  drops(): DropCounts {
    const n = (k: number): number => this.dropMap.lookup(k) ?? 0;
    return {
      events: n(this.dropKinds.DROP_RINGBUF_FULL),
      aggregates: n(this.dropKinds.DROP_MAP_FULL) + n(this.dropKinds.DROP_MAP_UPDATE),
    };
  }

  /** Collectors that stream nothing have nothing to drain. */
  poll(): number {
    return 0;
  }

  abstract read(): Readings;

  subjects(): Iterable<Subject> {
    const ids = new Set<number>();
    for (const m of this.perCgroup) for (const id of m.keys()) ids.add(id);
    return [...ids].map(cgroupSubject);
  }

  forget(subjects: readonly Subject[]): void {
    for (const s of subjects) if (s.kind === 'cgroup') for (const m of this.perCgroup) m.delete(s.id);
  }

  close(): void {
    this.obj.close();
  }
}

/** Rows of one counter per cgroup from a map of per-cgroup values. */
export function perCgroup<T>(values: Map<number, T>, value: (x: T) => number, labels?: Record<string, string>): Sample[] {
  return [...values].map(([id, x]) => ({ subject: cgroupSubject(id), value: value(x), ...(labels ? { labels } : {}) }));
}
