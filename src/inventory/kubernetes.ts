/**
 * Pods of this node from the Kubernetes API, through @kubernetes/client-node's list-then-watch
 * (ListWatch: resourceVersion, relist on 410 Gone). What the informer does not do, this module does:
 * restart after errors (API server gone, watch dropped) with capped exponential backoff, count every
 * error, keep serving the last known pods while disconnected, name each pod's owning workload
 * (ReplicaSet → Deployment, Job → CronJob, StatefulSet, DaemonSet; looked up once and cached), and
 * keep a deleted pod's metadata for a grace period so its last series keep their names.
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, KubeConfig, ListWatch, Watch, type V1OwnerReference, type V1Pod } from '@kubernetes/client-node';
import { parseContainerId } from './containers.js';
import { PeriscopeError } from '../kernel/errors.js';
import { type MetricDef, type Readings, type Sample } from '../collectors/contract.js';

/** What the pod watch exports about itself. */
const KUBERNETES_METRICS: readonly MetricDef[] = [
  {
    type: 'counter',
    name: 'periscope_kubernetes_errors_total',
    labels: ['kind'],
    help: 'Errors talking to the Kubernetes API, by kind (watch: list/watch failures and dropped connections; owner: workload lookups).',
  },
  { type: 'counter', name: 'periscope_kubernetes_lists_total', help: "Full lists of this node's pods: the first, and one per relist after an expired watch or a reconnect." },
  { type: 'gauge', name: 'periscope_kubernetes_connected', help: 'Whether the pod watch is connected (1) or the agent serves the last known pods (0).' },
  { type: 'gauge', name: 'periscope_kubernetes_pods', help: 'Pods of this node known to the agent, deleted ones in their grace period included.' },
];

/**
 * One line for an error of the API client: fetch reports a refused or unreachable server as "fetch
 * failed" and keeps the reason (ECONNREFUSED, a TLS failure, ...) in its cause chain, and an exec
 * plugin's error is its stderr, which may span lines.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    const x = e as { message?: unknown; code?: unknown; cause?: unknown };
    const msg = (typeof x.message === 'string' ? x.message : typeof e === 'string' ? e : JSON.stringify(e)).replace(/\s*\n\s*/g, ' ').trim();
    const code = typeof x.code === 'string' && !msg.includes(x.code) ? ` (${x.code})` : '';
    if ((msg || code) && !parts.some((p) => p.includes(msg || code))) parts.push(`${msg}${code}`.trim());
    e = x.cause;
  }
  const line = parts.join(': ') || 'unknown error';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

export interface PodInfo {
  uid: string;
  namespace: string;
  name: string;
  node: string;
  labels: Record<string, string>;
  /** Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet, ... or "Pod" for a bare pod */
  workloadKind: string;
  workload: string;
  /** container id (no runtime prefix) → container name, from status.containerStatuses and friends */
  containers: Map<string, string>;
  ips: string[];
  /** pods on the host network carry the node's IPs, which name no pod */
  hostNetwork: boolean;
  phase: string;
  /** ms timestamp of the API's delete, while the pod is kept for its grace period */
  deletedAt?: number;
}

export interface KubernetesOptions {
  node: string;
  /** kubeconfig file; without it, the in-cluster service account */
  kubeconfig?: string;
  /** how long a deleted pod keeps its metadata (ms) */
  graceMs?: number;
  /** longest wait between reconnection attempts (ms) */
  maxBackoffMs?: number;
  log?: (line: string) => void;
  now?: () => number;
}

const BASE_BACKOFF_MS = 250;

export function loadKubeConfig(kubeconfig: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else kc.loadFromCluster();
  } catch (err) {
    throw new PeriscopeError(
      'BAD_ARGUMENT',
      `cannot load Kubernetes credentials from ${kubeconfig ?? 'the in-cluster service account'}: ${(err as Error).message}`,
      kubeconfig ? 'check the --kubeconfig file' : 'run in a pod with a service account, or pass --kubeconfig PATH',
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new PeriscopeError('BAD_ARGUMENT', 'the Kubernetes configuration names no cluster', 'pass --kubeconfig PATH with a current context');
  }
  return kc;
}

/** The workload that owns a pod, from the pod alone where the chain stops at it. */
function directOwner(pod: V1Pod): V1OwnerReference | undefined {
  const refs = pod.metadata?.ownerReferences ?? [];
  return refs.find((r) => r.controller) ?? refs[0];
}

export class KubernetesInventory {
  readonly node: string;
  private readonly kubeconfig: string | undefined;
  private readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly batch: BatchV1Api;
  private informer: ListWatch<V1Pod> | undefined;
  private readonly pods = new Map<string, PodInfo>();
  /** "kind/namespace/name" → [workloadKind, workload] of owners looked up */
  private readonly owners = new Map<string, [string, string]>();
  private readonly graceMs: number;
  private readonly maxBackoffMs: number;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private backoffMs = 0;
  private retry: NodeJS.Timeout | undefined;
  private stopped = true;
  /** errors by kind: list/watch failures, owner lookups */
  readonly errors = { watch: 0, owner: 0 };
  connected = false;
  /** lists made (the first, and one per relist) */
  lists = 0;
  /** the last error talking to the API, and when (ms), until a list succeeds again */
  lastError: { message: string; at: number } | undefined;
  readonly name = 'kubernetes';
  readonly metrics = KUBERNETES_METRICS;

  constructor(opts: KubernetesOptions) {
    this.node = opts.node;
    this.graceMs = opts.graceMs ?? 60_000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.now = opts.now ?? Date.now;
    this.kubeconfig = opts.kubeconfig;
    this.kc = loadKubeConfig(opts.kubeconfig);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.apps = this.kc.makeApiClient(AppsV1Api);
    this.batch = this.kc.makeApiClient(BatchV1Api);
  }

  /**
   * A new list-then-watch. After an error the old one is dropped rather than restarted: client-node
   * would add its own growing delay (up to 30 s) before resuming, on top of ours, and a new one lists
   * afresh. The list reconciles: pods missing from it were deleted while we were away.
   */
  private makeInformer(): ListWatch<V1Pod> {
    const fieldSelector = `spec.nodeName=${this.node}`;
    const list = async (): Promise<{ items: V1Pod[]; metadata?: { resourceVersion?: string } }> => {
      this.lists++;
      const pods = await this.core.listPodForAllNamespaces({ fieldSelector });
      // the API answered: connected again, and the next failure backs off from the start
      this.connected = true;
      this.backoffMs = 0;
      this.lastError = undefined;
      const present = new Set(pods.items.map((p) => p.metadata?.uid));
      for (const p of this.pods.values()) if (!present.has(p.uid) && p.deletedAt === undefined) p.deletedAt = this.now();
      return pods;
    };
    const informer = new ListWatch<V1Pod>('/api/v1/pods', new Watch(this.kc), list, false, undefined, fieldSelector);
    informer.on('add', (p) => this.upsert(p));
    informer.on('update', (p) => this.upsert(p));
    informer.on('delete', (p) => this.remove(p));
    informer.on('error', (err: unknown) => this.failed(err, informer));
    return informer;
  }

  /**
   * Proves the credentials usable before the agent starts: reads the CA, client certificate and key
   * files the kubeconfig names and runs its exec plugin, so a missing file or a failing plugin stops
   * the agent with its cause instead of showing up later as watch errors.
   */
  async check(timeoutMs = 20_000): Promise<void> {
    const plugin = this.kc.getCurrentUser()?.exec as { command?: string } | undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      await Promise.race([this.kc.applyToHTTPSOptions({}), timeout]);
    } catch (err) {
      // client-node rejects a failed plugin with its stderr alone, which may be empty
      let why = describeError(err);
      if (plugin?.command) why = `exec plugin ${plugin.command}: ${why === 'unknown error' ? 'it failed and printed nothing' : why}`;
      throw new PeriscopeError(
        'BAD_ARGUMENT',
        `the Kubernetes credentials of ${this.kubeconfig ?? 'the in-cluster service account'} cannot be used: ${why}`,
        this.kubeconfig ? 'fix the files or the exec plugin the kubeconfig names, or pass --no-kubernetes' : "check the pod's service account token, or pass --no-kubernetes",
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '';
  }

  start(): void {
    this.stopped = false;
    this.run();
  }

  private run(): void {
    const informer = this.makeInformer();
    this.informer = informer;
    // ListWatch reports a failed list or watch through 'error' (→ failed) and resolves anyway
    informer.start().catch((err: unknown) => this.failed(err, informer));
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.informer?.stop().catch(() => undefined);
  }

  /** An error ends an informer's loop: count it, keep what we know, start a new one later. */
  private failed(err: unknown, informer: ListWatch<V1Pod>): void {
    if (informer !== this.informer) return; // a late word from one already replaced
    this.errors.watch++;
    this.connected = false;
    informer.stop().catch(() => undefined);
    if (this.stopped) return;
    this.backoffMs = Math.min(this.backoffMs ? this.backoffMs * 2 : BASE_BACKOFF_MS, this.maxBackoffMs);
    this.lastError = { message: describeError(err), at: this.now() };
    this.log(`kubernetes: ${this.server}: ${this.lastError.message}; retrying in ${this.backoffMs} ms`);
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (!this.stopped) this.run();
    }, this.backoffMs);
  }

  private upsert(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    const containers = new Map<string, string>();
    const statuses = [
      ...(pod.status?.containerStatuses ?? []),
      ...(pod.status?.initContainerStatuses ?? []),
      ...(pod.status?.ephemeralContainerStatuses ?? []),
    ];
    for (const s of statuses) {
      const id = s.containerID ? parseContainerId(s.containerID) : undefined;
      if (id) containers.set(id.id, s.name);
    }
    const known = this.pods.get(uid);
    const info: PodInfo = {
      uid,
      namespace: pod.metadata?.namespace ?? '',
      name: pod.metadata?.name ?? '',
      node: pod.spec?.nodeName ?? this.node,
      labels: pod.metadata?.labels ?? {},
      workloadKind: known?.workloadKind ?? 'Pod',
      workload: known?.workload ?? pod.metadata?.name ?? '',
      containers,
      ips: (pod.status?.podIPs ?? []).map((x) => x.ip).filter((x): x is string => !!x),
      hostNetwork: pod.spec?.hostNetwork ?? false,
      phase: pod.status?.phase ?? '',
    };
    if (info.ips.length === 0 && pod.status?.podIP) info.ips.push(pod.status.podIP);
    this.pods.set(uid, info);
    if (!known) void this.nameWorkload(pod, info);
  }

  private remove(pod: V1Pod): void {
    const info = pod.metadata?.uid ? this.pods.get(pod.metadata.uid) : undefined;
    if (info) info.deletedAt = this.now();
  }

  /** Follows the pod's controller up to the workload a person would name. */
  private async nameWorkload(pod: V1Pod, info: PodInfo): Promise<void> {
    const owner = directOwner(pod);
    if (!owner) return;
    info.workloadKind = owner.kind;
    info.workload = owner.name;
    if (owner.kind !== 'ReplicaSet' && owner.kind !== 'Job') return;
    const key = `${owner.kind}/${info.namespace}/${owner.name}`;
    let named = this.owners.get(key);
    if (!named) {
      try {
        const parent =
          owner.kind === 'ReplicaSet'
            ? await this.apps.readNamespacedReplicaSet({ name: owner.name, namespace: info.namespace })
            : await this.batch.readNamespacedJob({ name: owner.name, namespace: info.namespace });
        const up = (parent.metadata?.ownerReferences ?? []).find((r) => r.controller);
        named = up ? [up.kind, up.name] : [owner.kind, owner.name];
      } catch (err) {
        this.errors.owner++;
        // the API is away: a ReplicaSet named <deployment>-<pod-template-hash> is the usual case
        const hash = pod.metadata?.labels?.['pod-template-hash'];
        if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) named = ['Deployment', owner.name.slice(0, -hash.length - 1)];
        this.log(`kubernetes: owner of ${info.namespace}/${info.name}: ${describeError(err)}`);
        if (!named) return;
      }
      if (this.owners.size >= 10_000) this.owners.clear(); // bounded; refilled on demand
      this.owners.set(key, named);
    }
    [info.workloadKind, info.workload] = named;
  }

  pod(uid: string): PodInfo | undefined {
    return this.pods.get(uid);
  }

  /** The live pod with this IP (host-network pods share the node's IPs and are not returned). */
  podByIp(ip: string): PodInfo | undefined {
    for (const p of this.pods.values()) if (p.deletedAt === undefined && p.ips.includes(ip) && !p.hostNetwork) return p;
    return undefined;
  }

  /** Every pod known, deleted ones in their grace period included. */
  all(): PodInfo[] {
    return [...this.pods.values()];
  }

  /** Forgets pods deleted longer ago than the grace period. */
  expire(): string[] {
    const now = this.now();
    const gone: string[] = [];
    for (const [uid, p] of this.pods) {
      if (p.deletedAt !== undefined && now - p.deletedAt >= this.graceMs) {
        this.pods.delete(uid);
        gone.push(uid);
      }
    }
    return gone;
  }

  get size(): number {
    return this.pods.size;
  }

  read(): Readings {
    return new Map<string, Sample[]>([
      ['periscope_kubernetes_errors_total', Object.entries(this.errors).map(([kind, value]) => ({ labels: { kind }, value }))],
      ['periscope_kubernetes_lists_total', [{ value: this.lists }]],
      ['periscope_kubernetes_connected', [{ value: this.connected ? 1 : 0 }]],
      ['periscope_kubernetes_pods', [{ value: this.size }]],
    ]);
  }

  /** The connection as /api/v1/status shows it. */
  status(): { server: string; node: string; connected: boolean; pods: number; lists: number; errors: { watch: number; owner: number }; last_error: string | null; last_error_time: string | null } {
    return {
      server: this.server,
      node: this.node,
      connected: this.connected,
      pods: this.size,
      lists: this.lists,
      errors: { ...this.errors },
      last_error: this.lastError?.message ?? null,
      last_error_time: this.lastError ? new Date(this.lastError.at).toISOString() : null,
    };
  }
}
