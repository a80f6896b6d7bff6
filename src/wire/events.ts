/**
 * Events as the agent serves them (/api/v1/events) and, later, ships them to the hub. The envelope is
 * the same for every event type: a sequence number, the type, a wall-clock ISO 8601 time (converted
 * from the kernel's monotonic clock), the node, the cgroup (path under the cgroup2 root, and its id)
 * and who it belongs to. The fields of each type are declared by the collector that makes it
 * (src/collectors/<name>/); the registry lists them all.
 */

/** Who an event belongs to, from the cgroup and the Kubernetes API ("" where it does not apply). */
export type Attribution = {
  namespace: string;
  pod: string;
  container: string;
  workload_kind: string;
  workload: string;
};

export type EventEnvelope = Attribution & {
  /** position in the agent's event log, increasing by one per event kept */
  seq: number;
  type: string;
  time: string;
  node: string;
  cgroup: string;
  cgroup_id: number;
};

/** An event of type T with its own fields F (type aliases, not interfaces, so that every event is a
 * PeriscopeEvent too). */
export type PeriscopeEvent<T extends string = string, F extends object = Record<string, unknown>> = EventEnvelope & { type: T } & F;

/** An attributed event before the agent's log numbers it. */
export type UnnumberedEvent = Omit<PeriscopeEvent, 'seq'>;
