/**
 * The Kubernetes inventory: the pods of this node, for attribution, and the names of every peer a
 * network flow can have, for the network collectors — pods cluster-wide by IP, Services by ClusterIP,
 * the Service of each EndpointSlice address, Nodes by address. Each resource is followed with
 * @kubernetes/client-node's list-then-watch, restarted after errors with capped backoff (watch.ts);
 * what is known is served while the API server is away. This module names each pod's owning workload
 * (ReplicaSet → Deployment, Job → CronJob, StatefulSet, DaemonSet) and keeps a deleted pod of this
 * node for a grace period so its last series keep their names.
 *
 * Memory: of a pod on another node only its names and IPs are kept (no containers, no labels), and
 * only while it can be a peer (an IP of its own, not finished); the client's cache keeps only each
 * object's identity (watch.ts, slim). Owners of pods on other nodes are never looked up (a cluster's
 * first list would otherwise GET every ReplicaSet at once): a name already looked up for a pod of this
 * node is reused, and otherwise a ReplicaSet named <deployment>-<pod-template-hash> names its
 * Deployment; any other owner (a Job, say) is named as it is.
 */
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  DiscoveryV1Api,
  KubeConfig,
  type KubernetesObject,
  type V1ContainerStatus,
  type V1EndpointSlice,
  type V1Node,
  type V1OwnerReference,
  type V1Pod,
  type V1PodSpec,
  type V1Service,
} from '@kubernetes/client-node';
import { parseContainerId } from './containers.js';
import { IpIndex } from './ip-index.js';
import { type PeerName, type PeerScope, type PeerSource } from './peers.js';
import { ResourceWatch, describeError, identity } from './watch.js';
import { PeriscopeError } from '../kernel/errors.js';
import { type MetricDef, type Readings, type Sample } from '../collectors/contract.js';

export { describeError };
export { PEER_SCOPES, type PeerKind, type PeerName, type PeerScope, type PeerSource } from './peers.js';

/** The resources the inventory follows, each with its own watch (and error kind watch_<resource>). */
export const WATCHED = ['pods', 'services', 'endpointslices', 'nodes'] as const;
export type WatchedResource = (typeof WATCHED)[number];

/** What the inventory exports about itself. */
const KUBERNETES_METRICS: readonly MetricDef[] = [
  {
    type: 'counter',
    name: 'periscope_kubernetes_errors_total',
    labels: ['kind'],
    help: 'Errors talking to the Kubernetes API, by kind (watch_pods, watch_services, watch_endpointslices, watch_nodes: list/watch failures and dropped connections of that watch; owner: workload lookups).',
  },
  {
    type: 'counter',
    name: 'periscope_kubernetes_lists_total',
    labels: ['resource'],
    help: 'Full lists of a watched resource: the first, and one per relist after an expired watch or a reconnect.',
  },
  { type: 'gauge', name: 'periscope_kubernetes_connected', help: 'Whether every watch is connected (1) or the agent serves the last known objects of one at least (0).' },
  { type: 'gauge', name: 'periscope_kubernetes_pods', help: 'Pods of this node known to the agent, deleted ones in their grace period included.' },
  { type: 'gauge', name: 'periscope_kubernetes_peer_pods', help: 'Pods known for naming peers by IP, cluster-wide (or of this node with --peer-pods node): running or pending, with an IP of their own.' },
  { type: 'gauge', name: 'periscope_kubernetes_services', help: 'Services known with a ClusterIP (headless ones name no address).' },
  { type: 'gauge', name: 'periscope_kubernetes_endpoint_addresses', help: 'Distinct endpoint addresses known from EndpointSlices, each tied to its Service.' },
  { type: 'gauge', name: 'periscope_kubernetes_nodes', help: 'Nodes known with an InternalIP or ExternalIP address.' },
];

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

/** What naming a peer pod needs; a pod of this node is its PodInfo, one of another node only this. */
type PeerPod = Pick<PodInfo, 'namespace' | 'name' | 'node' | 'workloadKind' | 'workload'>;

export interface KubernetesOptions {
  node: string;
  /** kubeconfig file; without it, the in-cluster service account */
  kubeconfig?: string;
  /** how long a deleted pod keeps its metadata (ms) */
  graceMs?: number;
  /** longest wait between reconnection attempts (ms) */
  maxBackoffMs?: number;
  /** pods named by IP: cluster-wide (default), or this node's only (huge clusters) */
  peerScope?: PeerScope;
  log?: (line: string) => void;
  now?: () => number;
}

/** Errors by kind, as periscope_kubernetes_errors_total and the status show them. */
export type KubernetesErrors = Record<`watch_${WatchedResource}` | 'owner', number>;

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

/** A ReplicaSet named <deployment>-<pod-template-hash>, as a Deployment names its ReplicaSets. */
function deploymentByHash(pod: V1Pod, owner: V1OwnerReference): [string, string] | undefined {
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) return ['Deployment', owner.name.slice(0, -hash.length - 1)];
  return undefined;
}

function podIps(pod: V1Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((x) => x.ip).filter((x): x is string => !!x);
  if (ips.length === 0 && pod.status?.podIP) ips.push(pod.status.podIP);
  return ips;
}

/**
 * Whether a pod's IPs name it: a pod on the host network shares its node's, and a finished one
 * (Succeeded, Failed) keeps its IPs in its status after they were handed to another pod.
 */
function namesPeer(hostNetwork: boolean, phase: string): boolean {
  return !hostNetwork && phase !== 'Succeeded' && phase !== 'Failed';
}

/* What the handlers read of each listed object (upsertService and friends), and nothing more. */
function projectService(s: V1Service): V1Service {
  return { metadata: identity(s), spec: { clusterIP: s.spec?.clusterIP, clusterIPs: s.spec?.clusterIPs } };
}

function projectEndpointSlice(e: V1EndpointSlice): V1EndpointSlice {
  const service = e.metadata?.labels?.['kubernetes.io/service-name'];
  return {
    metadata: { ...identity(e), ...(service ? { labels: { 'kubernetes.io/service-name': service } } : {}) },
    addressType: e.addressType,
    endpoints: (e.endpoints ?? []).map((ep) => ({ addresses: ep.addresses })),
  };
}

function projectNode(n: V1Node): V1Node {
  return { metadata: identity(n), status: { addresses: n.status?.addresses ?? [] } };
}

const keyOf = (o: KubernetesObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class KubernetesInventory implements PeerSource {
  readonly node: string;
  readonly peerScope: PeerScope;
  private readonly kubeconfig: string | undefined;
  private readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;
  private readonly batch: BatchV1Api;
  private readonly discovery: DiscoveryV1Api;
  private readonly watches: Record<WatchedResource, ResourceWatch<KubernetesObject>>;
  /** this node's pods by uid, deleted ones in their grace period included */
  private readonly pods = new Map<string, PodInfo>();
  /** pod uid → what names it, for every pod that can be a peer (this node's included, as their PodInfo) */
  private readonly podIps = new IpIndex<PeerPod>();
  /** "namespace/name" of a Service → its ClusterIPs */
  private readonly serviceIps = new IpIndex<{ namespace: string; name: string }>();
  /** "namespace/name" of an EndpointSlice → its endpoints' addresses, valued with its Service */
  private readonly endpointIps = new IpIndex<{ namespace: string; name: string }>();
  /** node name → its InternalIP and ExternalIP addresses */
  private readonly nodeIps = new IpIndex<string>();
  /** "kind/namespace/name" → [workloadKind, workload] of owners looked up */
  private readonly owners = new Map<string, [string, string]>();
  /** owner lookups in flight, so the pods of one ReplicaSet cost one GET */
  private readonly ownerLookups = new Map<string, Promise<[string, string] | undefined>>();
  private readonly graceMs: number;
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private ownerErrors = 0;
  readonly name = 'kubernetes';
  readonly metrics = KUBERNETES_METRICS;

  constructor(opts: KubernetesOptions) {
    this.node = opts.node;
    this.peerScope = opts.peerScope ?? 'cluster';
    this.graceMs = opts.graceMs ?? 60_000;
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.now = opts.now ?? Date.now;
    this.kubeconfig = opts.kubeconfig;
    this.kc = loadKubeConfig(opts.kubeconfig);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.apps = this.kc.makeApiClient(AppsV1Api);
    this.batch = this.kc.makeApiClient(BatchV1Api);
    this.discovery = this.kc.makeApiClient(DiscoveryV1Api);
    const common = { kc: this.kc, maxBackoffMs: opts.maxBackoffMs ?? 30_000, log: this.log, now: this.now, server: this.server };
    const podSelector = this.peerScope === 'node' ? `spec.nodeName=${this.node}` : undefined;
    // the generic type of each watch is its own resource's; the record holds them as KubernetesObject
    const watch = <T extends KubernetesObject>(w: ResourceWatch<T>): ResourceWatch<KubernetesObject> => w as unknown as ResourceWatch<KubernetesObject>;
    this.watches = {
      pods: watch(
        new ResourceWatch<V1Pod>({
          ...common,
          resource: 'pods',
          path: '/api/v1/pods',
          ...(podSelector ? { fieldSelector: podSelector } : {}),
          list: (page) => this.core.listPodForAllNamespaces(podSelector ? { ...page, fieldSelector: podSelector } : page),
          project: (p) => this.projectPod(p),
          listed: (items) => this.listedPods(items),
          upsert: (p) => this.upsertPod(p),
          remove: (p) => this.removePod(p),
        }),
      ),
      services: watch(
        new ResourceWatch<V1Service>({
          ...common,
          resource: 'services',
          path: '/api/v1/services',
          list: (page) => this.core.listServiceForAllNamespaces(page),
          project: projectService,
          listed: (items) => this.serviceIps.retain(new Set(items.map(keyOf))),
          upsert: (s) => this.upsertService(s),
          remove: (s) => this.serviceIps.delete(keyOf(s)),
        }),
      ),
      endpointslices: watch(
        new ResourceWatch<V1EndpointSlice>({
          ...common,
          resource: 'endpointslices',
          path: '/apis/discovery.k8s.io/v1/endpointslices',
          list: (page) => this.discovery.listEndpointSliceForAllNamespaces(page),
          project: projectEndpointSlice,
          listed: (items) => this.endpointIps.retain(new Set(items.map(keyOf))),
          upsert: (e) => this.upsertEndpointSlice(e),
          remove: (e) => this.endpointIps.delete(keyOf(e)),
        }),
      ),
      nodes: watch(
        new ResourceWatch<V1Node>({
          ...common,
          resource: 'nodes',
          path: '/api/v1/nodes',
          list: (page) => this.core.listNode(page),
          project: projectNode,
          listed: (items) => this.nodeIps.retain(new Set(items.map((n) => n.metadata?.name ?? ''))),
          upsert: (n) => this.upsertNode(n),
          remove: (n) => this.nodeIps.delete(n.metadata?.name ?? ''),
        }),
      ),
    };
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
    for (const w of Object.values(this.watches)) w.start();
  }

  stop(): void {
    for (const w of Object.values(this.watches)) w.stop();
  }

  /** Whether every watch is connected. */
  get connected(): boolean {
    return Object.values(this.watches).every((w) => w.connected);
  }

  /** Lists made by every watch (the first of each, and one per relist). */
  get lists(): number {
    return Object.values(this.watches).reduce((n, w) => n + w.lists, 0);
  }

  get errors(): KubernetesErrors {
    const w = this.watches;
    return {
      watch_pods: w.pods.errors,
      watch_services: w.services.errors,
      watch_endpointslices: w.endpointslices.errors,
      watch_nodes: w.nodes.errors,
      owner: this.ownerErrors,
    };
  }

  /** The latest error of a watch that has not listed since, and when (ms). */
  get lastError(): { message: string; at: number } | undefined {
    let last: { message: string; at: number } | undefined;
    for (const w of Object.values(this.watches)) if (w.lastError && (!last || w.lastError.at >= last.at)) last = { ...w.lastError, message: `${w.resource}: ${w.lastError.message}` };
    return last;
  }

  // --- pods -----------------------------------------------------------------------------------------

  /** Whether a pod runs on this node (in node scope the watch asks for no other). */
  private isLocal(pod: V1Pod): boolean {
    return this.peerScope === 'node' || pod.spec?.nodeName === this.node;
  }

  /**
   * What upsertPod reads of a listed pod: of this node's, its labels and its containers' ids too; of
   * another node's, only what names it (the pod-template-hash label for its Deployment).
   */
  private projectPod(p: V1Pod): V1Pod {
    const local = this.isLocal(p);
    const hash = p.metadata?.labels?.['pod-template-hash'];
    const labels = local ? p.metadata?.labels : hash ? { 'pod-template-hash': hash } : undefined;
    const status = p.status ?? {};
    const containers = (list: V1ContainerStatus[] | undefined): V1ContainerStatus[] | undefined =>
      local ? list?.map((c) => ({ name: c.name, containerID: c.containerID }) as V1ContainerStatus) : undefined;
    return {
      metadata: { ...identity(p), ...(labels ? { labels } : {}), ...(p.metadata?.ownerReferences ? { ownerReferences: p.metadata.ownerReferences } : {}) },
      spec: { nodeName: p.spec?.nodeName, hostNetwork: p.spec?.hostNetwork } as V1PodSpec,
      status: {
        phase: status.phase,
        podIP: status.podIP,
        podIPs: status.podIPs,
        containerStatuses: containers(status.containerStatuses),
        initContainerStatuses: containers(status.initContainerStatuses),
        ephemeralContainerStatuses: containers(status.ephemeralContainerStatuses),
      },
    };
  }

  /** A full list reconciles: pods missing from it were deleted while the watch was away. */
  private listedPods(items: V1Pod[]): void {
    const present = new Set(items.map((p) => p.metadata?.uid ?? ''));
    for (const p of this.pods.values()) if (!present.has(p.uid) && p.deletedAt === undefined) p.deletedAt = this.now();
    this.podIps.retain(present);
  }

  private upsertPod(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    if (this.isLocal(pod)) this.upsertLocalPod(pod, uid);
    else this.upsertPeerPod(pod, uid);
  }

  /** A pod of another node: only what names it, and only while its IPs do. */
  private upsertPeerPod(pod: V1Pod, uid: string): void {
    const ips = podIps(pod);
    if (!namesPeer(pod.spec?.hostNetwork ?? false, pod.status?.phase ?? '') || ips.length === 0) {
      this.podIps.delete(uid);
      return;
    }
    const [workloadKind, workload] = this.ownerOf(pod);
    this.podIps.set(uid, ips, { namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '', node: pod.spec?.nodeName ?? '', workloadKind, workload });
  }

  /** Names a pod of another node from the pod and the owners already looked up, without asking the API. */
  private ownerOf(pod: V1Pod): [string, string] {
    const owner = directOwner(pod);
    if (!owner) return ['Pod', pod.metadata?.name ?? ''];
    return this.owners.get(`${owner.kind}/${pod.metadata?.namespace ?? ''}/${owner.name}`) ?? deploymentByHash(pod, owner) ?? [owner.kind, owner.name];
  }

  private upsertLocalPod(pod: V1Pod, uid: string): void {
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
      ips: podIps(pod),
      hostNetwork: pod.spec?.hostNetwork ?? false,
      phase: pod.status?.phase ?? '',
    };
    this.pods.set(uid, info);
    if (namesPeer(info.hostNetwork, info.phase)) this.podIps.set(uid, info.ips, info);
    else this.podIps.delete(uid);
    if (!known) void this.nameWorkload(pod, uid);
  }

  private removePod(pod: V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid) return;
    this.podIps.delete(uid);
    const info = this.pods.get(uid);
    if (info) info.deletedAt = this.now();
  }

  /** Follows a pod of this node's controller up to the workload a person would name. */
  private async nameWorkload(pod: V1Pod, uid: string): Promise<void> {
    const owner = directOwner(pod);
    if (!owner) return;
    const namespace = pod.metadata?.namespace ?? '';
    let named: [string, string] | undefined = [owner.kind, owner.name];
    if (owner.kind === 'ReplicaSet' || owner.kind === 'Job') {
      const key = `${owner.kind}/${namespace}/${owner.name}`;
      named = this.owners.get(key);
      if (!named) {
        this.setWorkload(uid, [owner.kind, owner.name]); // until the lookup answers
        let lookup = this.ownerLookups.get(key);
        if (!lookup) {
          const what = { namespace, pod: pod.metadata?.name ?? '', fallback: deploymentByHash(pod, owner) };
          lookup = this.lookUpOwner(owner, key, what).finally(() => this.ownerLookups.delete(key));
          this.ownerLookups.set(key, lookup);
        }
        named = await lookup;
        if (!named) return;
      }
    }
    this.setWorkload(uid, named);
  }

  /** Names the pod as it is now (an update since the lookup began replaced its PodInfo). */
  private setWorkload(uid: string, [kind, name]: [string, string]): void {
    const info = this.pods.get(uid);
    if (!info) return;
    info.workloadKind = kind;
    info.workload = name;
  }

  /**
   * Reads a pod's owner for the owner of its own. Takes what it needs of the pod before its first
   * await: once the handler returns, the watch keeps only the pod's identity (watch.ts, slim).
   */
  private async lookUpOwner(
    owner: V1OwnerReference,
    key: string,
    { namespace, pod, fallback }: { namespace: string; pod: string; fallback: [string, string] | undefined },
  ): Promise<[string, string] | undefined> {
    let named: [string, string] | undefined;
    try {
      const parent =
        owner.kind === 'ReplicaSet'
          ? await this.apps.readNamespacedReplicaSet({ name: owner.name, namespace })
          : await this.batch.readNamespacedJob({ name: owner.name, namespace });
      const up = (parent.metadata?.ownerReferences ?? []).find((r) => r.controller);
      named = up ? [up.kind, up.name] : [owner.kind, owner.name];
    } catch (err) {
      this.ownerErrors++;
      // the API is away: a ReplicaSet named <deployment>-<pod-template-hash> is the usual case
      named = fallback;
      this.log(`kubernetes: owner of ${namespace}/${pod}: ${describeError(err)}`);
      if (!named) return undefined;
    }
    if (this.owners.size >= 10_000) this.owners.clear(); // bounded; refilled on demand
    this.owners.set(key, named);
    return named;
  }

  // --- services, endpoint slices, nodes ------------------------------------------------------------------

  private upsertService(s: V1Service): void {
    const ips = (s.spec?.clusterIPs ?? (s.spec?.clusterIP ? [s.spec.clusterIP] : [])).filter((ip) => ip && ip !== 'None');
    this.serviceIps.set(keyOf(s), ips, { namespace: s.metadata?.namespace ?? '', name: s.metadata?.name ?? '' });
  }

  private upsertEndpointSlice(e: V1EndpointSlice): void {
    const service = e.metadata?.labels?.['kubernetes.io/service-name'];
    // FQDN slices (deprecated) hold names, not addresses; a slice of no Service ties nothing
    const ips = service && (e.addressType === 'IPv4' || e.addressType === 'IPv6') ? (e.endpoints ?? []).flatMap((ep) => ep.addresses) : [];
    this.endpointIps.set(keyOf(e), ips, { namespace: e.metadata?.namespace ?? '', name: service ?? '' });
  }

  private upsertNode(n: V1Node): void {
    const name = n.metadata?.name ?? '';
    const ips = (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address);
    this.nodeIps.set(name, ips, name);
  }

  // --- lookups --------------------------------------------------------------------------------------

  pod(uid: string): PodInfo | undefined {
    return this.pods.get(uid);
  }

  /** The live pod of this node with this IP (host-network pods share the node's IPs and are not returned). */
  podByIp(ip: string): PodInfo | undefined {
    for (const p of this.pods.values()) if (p.deletedAt === undefined && p.ips.includes(ip) && !p.hostNetwork) return p;
    return undefined;
  }

  /**
   * Names a peer address (IPv4, or IPv6 as Node prints it; an IPv4-mapped IPv6 address is its IPv4
   * address): a pod first (not on the host network, not finished; cluster-wide, or of this node in
   * node scope), then a Service's ClusterIP, then a Node's InternalIP or ExternalIP.
   */
  peer(ip: string): PeerName | undefined {
    const pod = this.podIps.get(ip);
    if (pod) return { kind: 'pod', namespace: pod.namespace, name: pod.name, workload_kind: pod.workloadKind, workload: pod.workload, node: pod.node };
    const service = this.serviceIps.get(ip);
    if (service) return { kind: 'service', namespace: service.namespace, name: service.name, workload_kind: 'Service', workload: service.name, node: '' };
    const node = this.nodeIps.get(ip);
    if (node !== undefined) return { kind: 'node', namespace: '', name: node, workload_kind: 'Node', workload: node, node };
    return undefined;
  }

  /**
   * The Service whose EndpointSlices list this address (a backend pod's IP): the latest one listed
   * when several Services select the same pod.
   */
  serviceOfEndpoint(ip: string): { namespace: string; name: string } | undefined {
    const s = this.endpointIps.get(ip);
    return s ? { namespace: s.namespace, name: s.name } : undefined;
  }

  /** Every pod of this node known, deleted ones in their grace period included. */
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

  /** Pods of this node known, deleted ones in their grace period included. */
  get size(): number {
    return this.pods.size;
  }

  /** What is known for naming peers. */
  get peers(): { scope: PeerScope; pods: number; services: number; endpoint_addresses: number; nodes: number } {
    return {
      scope: this.peerScope,
      pods: this.podIps.size,
      services: this.serviceIps.size,
      endpoint_addresses: this.endpointIps.addresses,
      nodes: this.nodeIps.size,
    };
  }

  read(): Readings {
    const peers = this.peers;
    return new Map<string, Sample[]>([
      ['periscope_kubernetes_errors_total', Object.entries(this.errors).map(([kind, value]) => ({ labels: { kind }, value }))],
      ['periscope_kubernetes_lists_total', WATCHED.map((resource) => ({ labels: { resource }, value: this.watches[resource].lists }))],
      ['periscope_kubernetes_connected', [{ value: this.connected ? 1 : 0 }]],
      ['periscope_kubernetes_pods', [{ value: this.size }]],
      ['periscope_kubernetes_peer_pods', [{ value: peers.pods }]],
      ['periscope_kubernetes_services', [{ value: peers.services }]],
      ['periscope_kubernetes_endpoint_addresses', [{ value: peers.endpoint_addresses }]],
      ['periscope_kubernetes_nodes', [{ value: peers.nodes }]],
    ]);
  }

  /** The connection as /api/v1/status shows it. */
  status(): {
    server: string;
    node: string;
    connected: boolean;
    pods: number;
    lists: number;
    errors: KubernetesErrors;
    last_error: string | null;
    last_error_time: string | null;
    peers: KubernetesInventory['peers'];
  } {
    const lastError = this.lastError;
    return {
      server: this.server,
      node: this.node,
      connected: this.connected,
      pods: this.size,
      lists: this.lists,
      errors: this.errors,
      last_error: lastError?.message ?? null,
      last_error_time: lastError ? new Date(lastError.at).toISOString() : null,
      peers: this.peers,
    };
  }
}
