/**
 * The enrichment stage: turns the kernel ids collectors key their rows and events by (subjects) into
 * names, once for every collector. A cgroup id becomes its path below the cgroup2 mount and, through
 * the cgroup path and the Kubernetes inventory, its namespace, pod, container and workload. A network
 * namespace is named after the pod whose namespace it is (its pod cgroup; the host's namespace is the
 * node's), or `netns:<inode>` while no pod is known to have it. The next subject kinds (pid, socket)
 * get their namer here.
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
    /** the cgroup path of the pod (or "/" for the host) whose network namespace has this inode */
    private readonly netns: (inode: number) => string | undefined = () => undefined,
  ) {}

  /** The cgroup's path, or `unresolved:<id>` while it cannot be named. */
  cgroupLabel(id: number): string {
    return this.tree.resolve(id)?.path ?? `unresolved:${id}`;
  }

  /** The cgroup path a subject is named by ('' when unknown) and the label to use while unknown. */
  private path(s: Subject): { path: string | undefined; unknown: string } {
    if (s.kind === 'netns') return { path: this.netns(s.id), unknown: `netns:${s.id}` };
    return { path: this.tree.resolve(s.id)?.path, unknown: `unresolved:${s.id}` };
  }

  /** Series labels of a subject at the configured aggregation level. */
  seriesLabels(s: Subject): Record<string, string> {
    const { path, unknown } = this.path(s);
    return this.attributor.seriesLabels(path ?? unknown);
  }

  /** The names an event about this subject carries. */
  eventNames(s: Subject): EventNames {
    const path = this.path(s).path ?? '';
    return { cgroup: path, cgroup_id: s.kind === 'cgroup' ? s.id : 0, ...this.attributor.attribute(path) };
  }
}
