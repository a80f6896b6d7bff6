/**
 * Events as the agent serves them (/api/v1/events) and, later, ships them to the hub. Every event names
 * its cgroup (path under the cgroup2 root) and node; times are wall-clock ISO 8601 strings converted
 * from the kernel's monotonic clock.
 */
/** Who an event belongs to, from the cgroup and the Kubernetes API ("" where it does not apply). */
export interface Attribution {
  namespace: string;
  pod: string;
  container: string;
  workload_kind: string;
  workload: string;
}

export interface EventBase extends Attribution {
  /** position in the agent's event log, increasing by one per event kept */
  seq: number;
  time: string;
  node: string;
  cgroup: string;
  cgroup_id: number;
  /** process id on the host (the initial pid namespace) */
  pid: number;
  comm: string;
}

export interface ExecEvent extends EventBase {
  type: 'exec';
  /** process id in the process's own pid namespace (1 for a container's first process) */
  ns_pid: number;
  ppid: number;
  uid: number;
  filename: string;
  args: string[];
  args_truncated: boolean;
}

export interface ExitEvent extends EventBase {
  type: 'exit';
  ns_pid: number;
  ppid: number;
  uid: number;
  exit_code: number;
  signal: number;
  signal_name: string | null;
  core_dumped: boolean;
  lifetime_seconds: number;
}

export interface OomKillEvent extends EventBase {
  type: 'oom_kill';
  uid: number;
  total_vm_bytes: number;
}

export type PeriscopeEvent = ExecEvent | ExitEvent | OomKillEvent;
export type EventType = PeriscopeEvent['type'];
export const EVENT_TYPES: readonly EventType[] = ['exec', 'exit', 'oom_kill'];

/** An event as a collector makes it: before the agent attributes it and its log numbers it. */
export type NewEvent = PeriscopeEvent extends infer E ? (E extends PeriscopeEvent ? Omit<E, 'seq' | keyof Attribution> : never) : never;

/** An attributed event before the agent's log numbers it. */
export type UnnumberedEvent = PeriscopeEvent extends infer E ? (E extends PeriscopeEvent ? Omit<E, 'seq'> : never) : never;
