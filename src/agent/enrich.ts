/**
 * The enrichment stage: turns the kernel ids collectors key their rows and events by (subjects) into
 * names, once for every collector. A cgroup id becomes its path below the cgroup2 mount and, through
 * the cgroup path and the Kubernetes inventory, its namespace, pod, container and workload. The next
 * subject kinds (network namespace, pid, socket) get their namer here.
 */
import { type Subject } from '../collectors/contract.js';
import { type CgroupTree } from '../inventory/cgroups.js';
import { type Attributor } from '../inventory/attribution.js';
import { type Attribution } from '../wire/events.js';

export interface EventNames extends Attribution {
  cgroup: string;
  cgroup_id: number;
}

export class Enricher {
  constructor(
    private readonly tree: Pick<CgroupTree, 'resolve'>,
    private readonly attributor: Attributor,
  ) {}

  /** The cgroup's path, or `unresolved:<id>` while it cannot be named. */
  cgroupLabel(id: number): string {
    return this.tree.resolve(id)?.path ?? `unresolved:${id}`;
  }

  /** Series labels of a subject at the configured aggregation level. */
  seriesLabels(s: Subject): Record<string, string> {
    return this.attributor.seriesLabels(this.cgroupLabel(s.id));
  }

  /** The names an event about this subject carries. */
  eventNames(s: Subject): EventNames {
    const path = this.tree.resolve(s.id)?.path ?? '';
    return { cgroup: path, cgroup_id: s.id, ...this.attributor.attribute(path) };
  }
}
