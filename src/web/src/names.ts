/** How a workload entry is named and linked: workload, else pod, else the node's cgroup. */
import { type EdgeEntry, type WorkloadEntry } from '../../wire/hub.js';

export type Level = 'workload' | 'pod' | 'container';

/** The workload page's parameters for an entry: the most specific name it has. */
export function entryParams(e: Pick<WorkloadEntry, 'namespace' | 'workload_kind' | 'workload' | 'pod' | 'node' | 'cgroup'>, level?: Level): Record<string, string> {
  if ((level === undefined || level === 'workload') && e.workload) return { level: 'workload', namespace: e.namespace, kind: e.workload_kind, workload: e.workload };
  if ((level === undefined || level !== 'container') && e.pod) return { level: 'pod', namespace: e.namespace, pod: e.pod };
  return { level: 'container', node: e.node, cgroup: e.cgroup };
}

export function entryName(e: Pick<WorkloadEntry, 'namespace' | 'workload' | 'pod' | 'node' | 'cgroup'>, level?: Level): string {
  const p = entryParams({ ...e, workload_kind: '' }, level);
  if (p.level === 'workload') return `${e.namespace}/${e.workload}`;
  if (p.level === 'pod') return `${e.namespace}/${e.pod}`;
  return `${e.node}:${e.cgroup || '/'}`;
}

/** The hub's filters for the workload page's parameters (series, events, workloads). */
export function pageFilters(p: Record<string, string>): Record<string, string> {
  switch (p.level) {
    case 'pod':
      return { namespace: p.namespace ?? '', pod: p.pod ?? '' };
    case 'container':
      return { node: p.node ?? '', cgroup: p.cgroup ?? '' };
    default:
      return { namespace: p.namespace ?? '', workload_kind: p.kind ?? '', workload: p.workload ?? '' };
  }
}

/** A page's title from its parameters. */
export function pageTitle(p: Record<string, string>): string {
  switch (p.level) {
    case 'pod':
      return `pod ${p.namespace}/${p.pod}`;
    case 'container':
      return `cgroup ${p.cgroup} on ${p.node}`;
    default:
      return `${(p.kind ?? '').toLowerCase() || 'workload'} ${p.namespace}/${p.workload}`;
  }
}

/** One end of a service-map edge as people name it: ns/workload, svc ns/name, a host, cgroup /x. */
export const endLabel = (e: EdgeEntry['source'] | EdgeEntry['target']): string => {
  const name = e.workload || e.name || e.kind;
  if (e.kind === 'service') return `svc ${e.namespace}/${name}`;
  if (e.kind === 'cgroup' || e.kind === 'local') return `${e.kind} ${name}`;
  if (e.kind === 'external' || e.kind === 'node' || !e.namespace) return name;
  return `${e.namespace}/${name}`;
};
