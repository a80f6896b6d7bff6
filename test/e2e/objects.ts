/** Kubernetes objects for end-to-end tests: a Deployment → ReplicaSet → Pod chain as the controllers
 * would leave it, with the pod bound to a node and its containers' runtime ids in its status. */
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
