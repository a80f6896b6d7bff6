/** Kubernetes objects for end-to-end tests: a Deployment → ReplicaSet → Pod chain as the controllers
 * would leave it, with the pod bound to a node and its containers' runtime ids in its status; and the
 * objects peers are named by: Services, their EndpointSlices, Nodes with addresses. */
import { randomUUID } from 'node:crypto';
/** An object as tests hand it to the fake API server (which accepts any fields). */
export interface TestObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string; [k: string]: unknown };
  [k: string]: unknown;
}

export interface PodObjects {
  deployment: TestObject;
  replicaSet: TestObject;
  pod: TestObject;
}

export function deploymentPod(opts: {
  namespace: string;
  deployment: string;
  node: string;
  podUid?: string;
  podName?: string;
  labels?: Record<string, string>;
  /** container name → runtime id (e.g. containerd://<64 hex>) */
  containers?: Record<string, string>;
  ips?: string[];
  /** pod-template-hash: a new one is a new ReplicaSet of the Deployment (a rollout) */
  hash?: string;
  /** the Deployment's uid, to put a new ReplicaSet under an existing Deployment */
  deploymentUid?: string;
}): PodObjects {
  const hash = opts.hash ?? '7d9f5c6b8';
  const rsName = `${opts.deployment}-${hash}`;
  const deployUid = opts.deploymentUid ?? randomUUID();
  const rsUid = randomUUID();
  const labels = { app: opts.deployment, 'pod-template-hash': hash, ...opts.labels };
  const containers = Object.entries(opts.containers ?? {});
  return {
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: opts.deployment, namespace: opts.namespace, uid: deployUid, labels: { app: opts.deployment } },
      spec: { replicas: 1, selector: { matchLabels: { app: opts.deployment } } },
    },
    replicaSet: {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: rsName,
        namespace: opts.namespace,
        uid: rsUid,
        labels,
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: opts.deployment, uid: deployUid, controller: true }],
      },
    },
    pod: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: opts.podName ?? `${rsName}-${randomUUID().slice(0, 5)}`,
        namespace: opts.namespace,
        uid: opts.podUid ?? randomUUID(),
        labels,
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rsName, uid: rsUid, controller: true }],
      },
      spec: { nodeName: opts.node, containers: containers.map(([name]) => ({ name, image: 'busybox' })) },
      status: {
        phase: 'Running',
        podIP: opts.ips?.[0],
        podIPs: (opts.ips ?? []).map((ip) => ({ ip })),
        containerStatuses: containers.map(([name, containerID]) => ({ name, containerID, ready: true, restartCount: 0, image: 'busybox', imageID: '' })),
      },
    },
  };
}

/** A Service with ClusterIP(s) (the first is spec.clusterIP), or a headless one with clusterIP "None". */
export function service(opts: { namespace: string; name: string; clusterIPs: string[]; ports?: number[]; selector?: Record<string, string> }): TestObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: opts.name, namespace: opts.namespace, uid: randomUUID() },
    spec: {
      type: 'ClusterIP',
      clusterIP: opts.clusterIPs[0] ?? '',
      clusterIPs: opts.clusterIPs,
      ipFamilies: opts.clusterIPs.filter((ip) => ip !== 'None').map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4')),
      selector: opts.selector ?? { app: opts.name },
      ports: (opts.ports ?? [80]).map((port) => ({ name: `p${port}`, port, protocol: 'TCP', targetPort: port })),
    },
  };
}

/**
 * An EndpointSlice of a Service, as the EndpointSlice controller writes it: named <service>-<suffix>,
 * labelled kubernetes.io/service-name, one endpoint per address (optionally pointing at its pod).
 */
export function endpointSlice(opts: {
  namespace: string;
  service: string;
  addresses: string[];
  name?: string;
  addressType?: 'IPv4' | 'IPv6';
  /** address → pod name, for targetRef */
  pods?: Record<string, string>;
  port?: number;
}): TestObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: opts.name ?? `${opts.service}-${randomUUID().slice(0, 5)}`,
      namespace: opts.namespace,
      uid: randomUUID(),
      labels: { 'kubernetes.io/service-name': opts.service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: opts.service, uid: randomUUID(), controller: true }],
    },
    addressType: opts.addressType ?? (opts.addresses[0]?.includes(':') ? 'IPv6' : 'IPv4'),
    endpoints: opts.addresses.map((ip) => ({
      addresses: [ip],
      conditions: { ready: true, serving: true, terminating: false },
      ...(opts.pods?.[ip] ? { targetRef: { kind: 'Pod', namespace: opts.namespace, name: opts.pods[ip] } } : {}),
    })),
    ports: [{ name: 'http', port: opts.port ?? 80, protocol: 'TCP' }],
  };
}

/** A Node with its addresses in status (InternalIP, ExternalIP, Hostname), Ready. */
export function node(opts: { name: string; internalIPs?: string[]; externalIPs?: string[] }): TestObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: opts.name, namespace: '', uid: randomUUID(), labels: { 'kubernetes.io/hostname': opts.name } },
    spec: {},
    status: {
      addresses: [
        ...(opts.internalIPs ?? []).map((address) => ({ type: 'InternalIP', address })),
        ...(opts.externalIPs ?? []).map((address) => ({ type: 'ExternalIP', address })),
        { type: 'Hostname', address: opts.name },
      ],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}
