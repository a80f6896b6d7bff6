/**
 * The collector contract. A collector owns one vertical slice — its BPF object and alternatives, the
 * metrics and event types it declares, any extra API routes — and says so in one definition that the
 * registry lists. It produces rows keyed by a *subject* (a kernel id the enrichment stage knows how to
 * name: a cgroup id today; a network namespace, a pid or a socket next) and events about a subject.
 * It never formats Prometheus text, never looks up a pod and never knows the agent: attribution,
 * aggregation, cardinality limits, monotonic counters, /metrics, the event log and the API are done
 * once, for every collector, by the agent (src/agent).
 */
import { type ObjectSpec } from '../kernel/bpf-object.js';
import { type Column } from '../wire/table.js';
import { type ProfileType, type Stack } from '../profiles/model.js';

/**
 * A kernel id the enrichment stage can name: a cgroup (its id), or a network namespace (its inode),
 * which the agent names after the pod whose namespace it is.
 */
export type Subject = { readonly kind: 'cgroup'; readonly id: number } | { readonly kind: 'netns'; readonly id: number };
export type SubjectKind = Subject['kind'];

export const cgroupSubject = (id: number): Subject => ({ kind: 'cgroup', id });
export const netnsSubject = (inode: number): Subject => ({ kind: 'netns', id: inode });

/**
 * The other end of a flow: a network address (and a port where the peer listens). The agent names it
 * — a pod, a Service, a node, or an external host by the DNS name that resolved to it — so that a
 * row about a subject and a peer is an edge of the service map.
 */
export interface Peer {
  /** IPv4 dotted or IPv6 text, as Node prints addresses */
  readonly addr: string;
  /** the peer's listening port; absent when it is the side that connected (an ephemeral port) */
  readonly port?: number;
  /** where the traffic went after DNAT (a ClusterIP's backend), when it was translated */
  readonly nat?: { readonly addr: string; readonly port: number };
}

/** The labels a peer adds to each series of a metric declared with `peer: true`. */
export const PEER_LABELS = ['peer_kind', 'peer_namespace', 'peer_workload', 'peer', 'peer_port'] as const;
export const subjectKey = (s: Subject): string => `${s.kind}:${s.id}`;

interface MetricBase {
  /** full Prometheus name: periscope_ prefix, base units, _total for counters */
  readonly name: string;
  readonly help: string;
  /** labels of the collector's own beyond those the subject is named with (e.g. `kind`) */
  readonly labels?: readonly string[];
  /** what the rows are keyed by; absent for metrics about the agent itself */
  readonly subject?: SubjectKind;
  /** rows also carry a peer: the series get PEER_LABELS, and past --max-peers named peers per
   * subject series the rest fold into peer="other" */
  readonly peer?: boolean;
}

export interface CounterDef extends MetricBase {
  readonly type: 'counter';
}
export interface GaugeDef extends MetricBase {
  readonly type: 'gauge';
}
export interface HistogramDef extends MetricBase {
  readonly type: 'histogram';
  /** finite upper bounds, ascending; +Inf is implied */
  readonly buckets: readonly number[];
}
export type MetricDef = CounterDef | GaugeDef | HistogramDef;

/** A histogram as read: cumulative counts per finite bound (the bounds it was counted with), the sum and the count. */
export interface HistogramValue {
  readonly bounds: readonly number[];
  /** cumulative[i] = observations <= bounds[i] */
  readonly cumulative: readonly number[];
  readonly count: number;
  readonly sum: number;
}

/** One row: a value for a subject (or for the agent itself), with the collector's own labels. */
export interface Sample<V = number | HistogramValue> {
  readonly subject?: Subject;
  /** for metrics declared with `peer: true` */
  readonly peer?: Peer;
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: V;
}

/** What a read returns: rows per declared metric name. */
export type Readings = Map<string, Sample[]>;

/** An event type a collector declares. */
export interface EventDef {
  readonly type: string;
  readonly help: string;
  /** fields holding command lines (string arrays): the agent masks secrets in them before they leave */
  readonly argv?: readonly string[];
  /** the `periscope trace` kind that shows it (one the collector declares in `traces`) */
  readonly trace?: string;
}

/** A kind of `periscope trace`: its name, a line of help, and the columns of its table. */
export interface TraceDef {
  readonly name: string;
  readonly help: string;
  readonly columns: readonly Column[];
}

/**
 * An event as a collector makes it: its type, wall-clock time, the subject it is about and its own
 * fields. The agent adds the node, the cgroup path and id, the pod names and a sequence number; a
 * `peer` becomes peer_addr, peer_port, peer_kind, peer_namespace, peer_workload and peer (its name),
 * and its NAT target backend_addr, backend_port and backend (named the same way).
 */
export interface NewEvent {
  readonly type: string;
  readonly time: string;
  readonly subject: Subject;
  readonly peer?: Peer;
  readonly [field: string]: unknown;
}

/** How the agent names things, for a collector's routes: the labels of a subject and of a peer. */
export interface Names {
  subject(s: Subject): Record<string, string>;
  peer(p: Peer): Record<(typeof PEER_LABELS)[number], string>;
}

/** What a route handler throws for a query it cannot answer: the client gets 400 with the message and the hint. */
export class BadRequest extends Error {
  override readonly name = 'BadRequest';
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

/** An extra JSON route a collector serves under /api/v1/<path>. */
export interface RouteDef<I> {
  readonly path: string;
  readonly help: string;
  handler(instance: I, query: URLSearchParams, names: Names): unknown;
}

export interface CollectorContext {
  /** Wall-clock ISO time of a kernel monotonic timestamp (bpf_ktime_get_ns). */
  wallTime(monotonicNs: number): string;
  emit(event: NewEvent): void;
  /** max_entries of each per-cgroup kernel map: bounds kernel memory */
  maxCgroups: number;
  /** A name that resolved to an address (a DNS answer the collector saw): peers at that address are
   * named by it until the TTL runs out. */
  learnName(addr: string, name: string, ttlSeconds: number): void;
  /** the collector's settings (SettingDef), checked, every one present (its default where none was given) */
  settings?: Readonly<Record<string, string>>;
}

export interface CollectorStatus {
  name: string;
  /** the alternative the kernel took, e.g. "tp_btf" */
  alternative: string;
  passedOver: { name: string; reason: string }[];
  /** what the alternative does not do that the collector's first one does */
  note?: string;
  programsAttached: number;
}

export interface DropCounts {
  /** event records the ring buffer had no room for */
  events: number;
  /** kernel aggregate updates lost: a full per-cgroup map, or another failed map update */
  aggregates: number;
  /** events not sent on purpose: past a collector's budget per second (its counts stay exact) */
  sampled?: number;
}

/**
 * What a profiling collector counted since its previous drain: stacks (root first, symbolized; see
 * src/profiles/model.ts) per subject and profile type, over one window of wall time.
 */
export interface ProfileDrain {
  /** ms since the epoch: the window the stacks were counted in */
  readonly from: number;
  readonly to: number;
  /** what one unit of each type stands for (cpu: nanoseconds per sample) */
  readonly period: Readonly<Partial<Record<ProfileType, number>>>;
  readonly profiles: readonly { readonly subject: Subject; readonly type: ProfileType; readonly stacks: readonly Stack[] }[];
}

/** A running collector. */
export interface CollectorInstance {
  status(): CollectorStatus;
  /** Drains ready events into the context; returns how many. */
  poll(): number;
  /** Reads the kernel aggregates: rows for the declared metrics. */
  read(): Readings;
  /** The subjects it holds kernel state for. */
  subjects(): Iterable<Subject>;
  /** Drops the kernel state of subjects that are gone. */
  forget(subjects: readonly Subject[]): void;
  drops(): DropCounts;
  close(): void;
  /**
   * For a collector declared with `selection`: the cgroups the selection covers now, all of them,
   * each time that set changes (a pod came or went, a pod's names became known). Those not in the
   * list are no longer selected.
   */
  select?(selected: readonly Selected[]): void;
  /** For a collector declared with `profiles`: the stacks counted since the previous call. */
  profiles?(): ProfileDrain;
}

/** A cgroup a selection covers, and the workload it belongs to. */
export interface Selected {
  readonly subject: Subject;
  /**
   * the workload it is part of (`namespace/kind/name`, a pod's `namespace/name` while its workload
   * is unknown, a systemd unit, or the cgroup path): what a bound "per workload" is shared by
   */
  readonly group: string;
}

/**
 * A collector that works only on the workloads someone selected (its capture costs, or what it sees
 * is sensitive): the agent takes `--<collector>-select` (namespaces, pods, workloads, cgroup
 * subtrees), starts the collector only when it is given, and hands it the matching cgroups through
 * `select` whenever they change. Nothing is selected by default.
 */
export interface SelectionDef {
  /** what is done for the selected workloads, for --help */
  readonly help: string;
}

/** A knob of a collector's own, given to the agent as `--<collector>-<name> VALUE`. */
export interface SettingDef {
  /** kebab-case */
  readonly name: string;
  readonly help: string;
  /** what the value is, for --help (SECONDS, N, samples|shapes) */
  readonly value: string;
  readonly default: string;
  /** why a value is refused (one line), or undefined when it is taken */
  check(value: string): string | undefined;
}

export interface CollectorDefinition<I extends CollectorInstance = CollectorInstance> {
  readonly name: string;
  /** one line for --help and doctor */
  readonly help: string;
  /** its BPF object: doctor chooses an alternative from it without loading anything */
  readonly spec: ObjectSpec<string>;
  readonly metrics: readonly MetricDef[];
  readonly events: readonly EventDef[];
  readonly routes?: readonly RouteDef<I>[];
  /** kinds of `periscope trace` over its events (EventDef.trace says which event shows in which) */
  readonly traces?: readonly TraceDef[];
  /** it works only on selected workloads: started when a selection is given, told of it through `select` */
  readonly selection?: SelectionDef;
  /** knobs of its own (ctx.settings) */
  readonly settings?: readonly SettingDef[];
  /** the profile types it counts: the agent drains them (`profiles()`), keeps recent windows, serves
   * /api/v1/profiles and ships them to the hub */
  readonly profiles?: readonly ProfileType[];
  start(ctx: CollectorContext): I;
}

/** Declares a collector; the identity function that keeps the instance type of its routes. */
export function defineCollector<I extends CollectorInstance>(def: CollectorDefinition<I>): CollectorDefinition<I> {
  return def;
}
