/**
 * Names a cgroup with the labels every per-workload series and event carries: namespace, pod,
 * container, workload_kind, workload and node (plus allow-listed pod labels as label_<name>). The
 * cgroup path gives the pod UID and container id (containers.ts); the Kubernetes inventory turns them
 * into names. Processes outside pods belong to the node, and to their systemd unit where there is one
 * (workload_kind "SystemdUnit"). The aggregation level decides how fine series are: per container
 * cgroup (the default), per pod, or per workload.
 */
import { parseCgroupPath, type CgroupOwner } from './containers.js';
import { type PodInfo } from './kubernetes.js';
import { type Attribution } from '../wire/events.js';

export const AGGREGATION_LEVELS = ['container', 'pod', 'workload'] as const;
export type AggregationLevel = (typeof AGGREGATION_LEVELS)[number];

export const WORKLOAD_LABELS = ['cgroup', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'node'] as const;
export type WorkloadLabel = (typeof WORKLOAD_LABELS)[number];

/** A Kubernetes label name as a Prometheus label name: label_<name with non-word characters as _>. */
export function promLabelName(k8sLabel: string): string {
  return `label_${k8sLabel.replace(/[^a-zA-Z0-9_]/g, '_')}`;
}

/** Where pods are looked up by UID: the Kubernetes inventory, or a table in tests. */
export interface PodSource {
  pod(uid: string): PodInfo | undefined;
}

export interface AttributorOptions {
  node: string;
  kubernetes?: PodSource;
  level?: AggregationLevel;
  /** Kubernetes pod labels copied into series (the allow-list) */
  podLabels?: readonly string[];
}

export class Attributor {
  readonly node: string;
  readonly level: AggregationLevel;
  readonly podLabels: readonly string[];
  /** label names of every per-workload series, in order */
  readonly labelNames: readonly string[];
  private readonly kubernetes: PodSource | undefined;
  private readonly parsed = new Map<string, CgroupOwner>();

  constructor(opts: AttributorOptions) {
    this.node = opts.node;
    this.level = opts.level ?? 'container';
    this.podLabels = opts.podLabels ?? [];
    this.kubernetes = opts.kubernetes;
    this.labelNames = [...WORKLOAD_LABELS, ...this.podLabels.map(promLabelName)];
  }

  owner(cgroupPath: string): CgroupOwner {
    let o = this.parsed.get(cgroupPath);
    if (!o) {
      o = parseCgroupPath(cgroupPath);
      if (this.parsed.size >= 50_000) this.parsed.clear(); // bounded; paths are re-parsed on demand
      this.parsed.set(cgroupPath, o);
    }
    return o;
  }

  /** The attribution of an event in this cgroup. */
  attribute(cgroupPath: string): Attribution {
    const o = this.owner(cgroupPath);
    if (o.kind === 'host') {
      return { namespace: '', pod: '', container: '', workload_kind: o.unit ? 'SystemdUnit' : '', workload: o.unit ?? '' };
    }
    const pod = this.kubernetes?.pod(o.podUid);
    const container = o.kind === 'container' ? (pod?.containers.get(o.containerId) ?? '') : '';
    return {
      namespace: pod?.namespace ?? '',
      pod: pod?.name ?? '',
      container,
      workload_kind: pod?.workloadKind ?? '',
      workload: pod?.workload ?? '',
    };
  }

  /**
   * The labels of a series for this cgroup at the configured aggregation level: per pod, a pod's
   * containers share the pod's cgroup (its own directory); per workload, the cgroup, pod and
   * container are left empty so a workload's pods add up.
   */
  seriesLabels(cgroupPath: string): Record<string, string> {
    const a = this.attribute(cgroupPath);
    const o = this.owner(cgroupPath);
    let cgroup = cgroupPath;
    if (o.kind !== 'host' && this.level === 'pod') {
      const segments = cgroupPath.split('/');
      const at = segments.findIndex((s) => s.includes(`pod${o.podUid}`) || s.includes(`pod${o.podUid.replaceAll('-', '_')}`));
      cgroup = segments.slice(0, at + 1).join('/');
    }
    const labels: Record<string, string> = { cgroup, ...a, node: this.node };
    if (this.level !== 'container') labels.container = '';
    if (this.level === 'workload') {
      labels.cgroup = '';
      labels.pod = '';
    }
    const pod = o.kind !== 'host' ? this.kubernetes?.pod(o.podUid) : undefined;
    for (const l of this.podLabels) labels[promLabelName(l)] = pod?.labels[l] ?? '';
    return labels;
  }
}

/** Sums rows whose labels are equal: how finer series add up to a coarser aggregation level. */
export function aggregate<R extends { labels: Record<string, string> }>(rows: Iterable<R>, merge: (into: R, from: R) => void): R[] {
  const out = new Map<string, R>();
  for (const r of rows) {
    const key = JSON.stringify(r.labels);
    const have = out.get(key);
    if (have) merge(have, r);
    else out.set(key, r);
  }
  return [...out.values()];
}
