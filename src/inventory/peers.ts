/**
 * How the Kubernetes inventory names a network peer, apart from the inventory itself: importing these
 * does not load @kubernetes/client-node (the largest part of the agent's memory, loaded only when the
 * agent talks to an API server).
 */

/** Which pods name peers: every pod of the cluster (one watch of every pod), or this node's only. */
export const PEER_SCOPES = ['cluster', 'node'] as const;
export type PeerScope = (typeof PEER_SCOPES)[number];

export type PeerKind = 'pod' | 'service' | 'node';

/** A peer address named: a pod, a Service (workload_kind "Service"), or a Node (workload_kind "Node"). */
export interface PeerName {
  kind: PeerKind;
  /** the pod's or Service's namespace; "" for a Node */
  namespace: string;
  name: string;
  /** the pod's workload kind (Deployment, StatefulSet, ..., "Pod" for a bare pod), "Service" or "Node" */
  workload_kind: string;
  workload: string;
  /** the pod's node, the node itself, or "" for a Service */
  node: string;
}

/** Where peers are named: the Kubernetes inventory, or a table in tests. */
export interface PeerSource {
  peer(ip: string): PeerName | undefined;
  serviceOfEndpoint(ip: string): { namespace: string; name: string } | undefined;
}
