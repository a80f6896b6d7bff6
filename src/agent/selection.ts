/**
 * Selections: which workloads a collector declared with `selection` works on (the L7 capture, say,
 * where capturing costs and payloads are sensitive). A selection is a list of rules — a namespace, a
 * pod, a workload, a cgroup subtree, or all — read from `--<collector>-select`; the agent matches it
 * against every cgroup it knows, named the way series are named (the cgroup path and, through the
 * Kubernetes inventory, namespace, pod and workload), and hands the collector the cgroups it covers
 * with the workload each belongs to. Without Kubernetes, `cgroup:/system.slice/nginx.service` selects
 * by path. Pure functions: the agent supplies the cgroups and the naming.
 */
import { cgroupSubject, type Selected } from '../collectors/contract.js';
import { type Attribution } from '../wire/events.js';

export type Selector =
  | { readonly kind: 'all' }
  | { readonly kind: 'namespace'; readonly namespace: string }
  | { readonly kind: 'pod'; readonly namespace: string; readonly name: string }
  | { readonly kind: 'workload'; readonly namespace: string; readonly name: string }
  | { readonly kind: 'cgroup'; readonly path: string };

export const SELECTOR_SYNTAX = 'namespace:NS, pod:NS/NAME, workload:NS/NAME, cgroup:/PATH (it and the cgroups below it), or all';

/** A rule of a selection that cannot be read; the message says which and why. */
export class SelectionError extends Error {
  override readonly name = 'SelectionError';
}

/** A Kubernetes name (a namespace is a DNS label; pods and workloads may hold dots). */
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function name(what: string, v: string, rule: string): string {
  if (!NAME.test(v)) throw new SelectionError(`"${rule}": ${what} "${v}" is not a Kubernetes name`);
  return v;
}

/** Whether a cgroup path is `subtree` or below it ("/" holds every path). */
export function inSubtree(path: string, subtree: string): boolean {
  if (subtree === '/') return true;
  return path === subtree || path.startsWith(`${subtree}/`);
}

/** Reads a comma-separated selection: `namespace:shop,pod:db/pg-0,cgroup:/system.slice/nginx.service`. */
export function parseSelection(raw: string): Selector[] {
  const rules = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (rules.length === 0) throw new SelectionError('selects nothing');
  return rules.map((rule): Selector => {
    if (rule === 'all') return { kind: 'all' };
    const at = rule.indexOf(':');
    const kind = at < 0 ? rule : rule.slice(0, at);
    const value = at < 0 ? '' : rule.slice(at + 1);
    switch (kind) {
      case 'namespace':
        return { kind, namespace: name('namespace', value, rule) };
      case 'pod':
      case 'workload': {
        const [ns, n, ...more] = value.split('/');
        if (n === undefined || more.length > 0) throw new SelectionError(`"${rule}": write ${kind}:NAMESPACE/NAME`);
        return { kind, namespace: name('namespace', ns!, rule), name: name(kind, n, rule) };
      }
      case 'cgroup': {
        const path = value.length > 1 ? value.replace(/\/+$/, '') : value;
        if (!path.startsWith('/') || path.split('/').some((p) => p === '..' || p === '.')) {
          throw new SelectionError(`"${rule}": write cgroup:/PATH, a path under the cgroup2 root that begins with "/"`);
        }
        return { kind, path };
      }
      default:
        throw new SelectionError(`"${rule}" is not a rule: write ${SELECTOR_SYNTAX}`);
    }
  });
}

/** Whether a selection covers the cgroup at `path`, named `a`. */
export function selects(selection: readonly Selector[], path: string, a: Attribution): boolean {
  return selection.some((s) => {
    switch (s.kind) {
      case 'all':
        return true;
      case 'namespace':
        return a.namespace === s.namespace;
      case 'pod':
        return a.namespace === s.namespace && a.pod === s.name;
      case 'workload':
        return a.namespace === s.namespace && a.workload === s.name && a.workload_kind !== 'SystemdUnit';
      case 'cgroup':
        return inSubtree(path, s.path);
    }
  });
}

/** The workload a cgroup is part of, as a key: what per-workload bounds are shared by. */
export function workloadGroup(path: string, a: Attribution): string {
  if (a.namespace && a.workload) return `${a.namespace}/${a.workload_kind}/${a.workload}`;
  if (a.namespace && a.pod) return `${a.namespace}/${a.pod}`;
  if (a.workload_kind === 'SystemdUnit' && a.workload) return a.workload;
  return path;
}

/** The cgroups a selection covers, of those given, each with its workload. */
export function choose(selection: readonly Selector[], cgroups: Iterable<{ id: number; path: string }>, attribute: (path: string) => Attribution): Selected[] {
  const out: Selected[] = [];
  for (const { id, path } of cgroups) {
    const a = attribute(path);
    if (selects(selection, path, a)) out.push({ subject: cgroupSubject(id), group: workloadGroup(path, a) });
  }
  return out;
}
