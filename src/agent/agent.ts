/**
 * The node agent: starts the collectors the kernel supports, names cgroup ids by walking the cgroup2
 * tree, drains event rings into a bounded log on a timer, and turns the kernel's aggregates into
 * Prometheus metrics on each scrape. Cgroups that vanish keep their series for a grace period, then
 * their kernel map entries are deleted, so memory stays bounded on a node with churn.
 */
import { hostname } from 'node:os';
import { Registry } from 'prom-client';
import { CgroupTree } from '../inventory/cgroups.js';
import { native } from '../kernel/native.js';
import { CpuCollector, RUNQ_BUCKETS, type CpuReading } from '../collectors/cpu/index.js';
import { ProcessCollector, type ProcessCounts } from '../collectors/process/index.js';
import { MemoryCollector } from '../collectors/memory/index.js';
import { type Collector, type CollectorContext, type CollectorStatus } from '../collectors/types.js';
import { EventLog } from './event-log.js';
import { SnapshotCounter, SnapshotGauge, SnapshotHistogram, type Row } from './metrics.js';
import { VERSION } from './version.js';
import { PeriscopeError } from '../kernel/errors.js';
import { Attributor, aggregate, type AggregationLevel } from '../inventory/attribution.js';
import { type KubernetesInventory } from '../inventory/kubernetes.js';
import { podNetworkNamespaces } from '../inventory/namespaces.js';

export const COLLECTOR_NAMES = ['process', 'cpu', 'memory'] as const;
export type CollectorName = (typeof COLLECTOR_NAMES)[number];

export interface AgentOptions {
  node?: string;
  cgroupRoot?: string;
  /** how long the series of a vanished cgroup stay (ms) */
  graceMs?: number;
  /** how often event rings are drained while events flow (ms); idle, the interval doubles up to idlePollMs */
  pollIntervalMs?: number;
  idlePollMs?: number;
  /** how often the cgroup tree is walked for removals (ms) */
  walkIntervalMs?: number;
  /** max_entries of each per-cgroup kernel map */
  maxCgroups?: number;
  eventLogSize?: number;
  collectors?: readonly CollectorName[];
  log?: (line: string) => void;
  /**
   * this node's pods from the Kubernetes API (started and stopped with the agent). The CLI loads the
   * client only when it is wanted: @kubernetes/client-node alone costs ~85 MiB of RSS.
   */
  kubernetes?: KubernetesInventory;
  /** series per container cgroup (default), per pod or per workload */
  aggregation?: AggregationLevel;
  /** Kubernetes pod labels copied into series as label_<name> */
  podLabels?: readonly string[];
}

interface Snapshot {
  /** series labels of every cgroup id read, computed once per scrape */
  labels: Map<number, Record<string, string>>;
  cpu: Map<number, CpuReading>;
  process: Map<number, ProcessCounts>;
  oom: Map<number, number>;
}

const emptySnapshot = (): Snapshot => ({ labels: new Map(), cpu: new Map(), process: new Map(), oom: new Map() });

export class Agent {
  readonly node: string;
  readonly tree: CgroupTree;
  readonly events: EventLog;
  readonly registry = new Registry();
  readonly collectors = new Map<CollectorName, Collector>();
  /** collectors that could not start, and why: a named degradation, not a crash */
  readonly failed: { name: CollectorName; error: string; hint: string }[] = [];
  readonly kubernetes: KubernetesInventory | undefined;
  readonly attributor: Attributor;
  private readonly opts: Required<Omit<AgentOptions, 'node' | 'cgroupRoot' | 'log' | 'kubernetes' | 'aggregation' | 'podLabels'>>;
  private readonly log: (line: string) => void;
  private readonly timers: NodeJS.Timeout[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly unresolvedSince = new Map<number, number>();
  private snapshot: Snapshot = emptySnapshot();
  private readonly clockOffsetNs: number;
  cgroupsExpired = 0;

  constructor(opts: AgentOptions = {}) {
    this.node = opts.node ?? process.env.NODE_NAME ?? hostname();
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.opts = {
      graceMs: opts.graceMs ?? 60_000,
      pollIntervalMs: opts.pollIntervalMs ?? 100,
      idlePollMs: opts.idlePollMs ?? 400,
      walkIntervalMs: opts.walkIntervalMs ?? 5_000,
      maxCgroups: opts.maxCgroups ?? 16_384,
      eventLogSize: opts.eventLogSize ?? 10_000,
      collectors: opts.collectors ?? COLLECTOR_NAMES,
    };
    this.tree = new CgroupTree({
      graceMs: this.opts.graceMs,
      lookup: (root, id) => native().cgroupPath(root, id),
      ...(opts.cgroupRoot ? { root: opts.cgroupRoot } : {}),
    });
    this.events = new EventLog(this.opts.eventLogSize);
    this.kubernetes = opts.kubernetes;
    this.attributor = new Attributor({
      node: this.node,
      level: opts.aggregation ?? 'container',
      podLabels: opts.podLabels ?? [],
      ...(this.kubernetes ? { kubernetes: this.kubernetes } : {}),
    });
    this.clockOffsetNs = Date.now() * 1e6 - Number(native().monotonicNs());
    this.registerMetrics();
  }

  private context(): CollectorContext {
    return {
      node: this.node,
      maxCgroups: this.opts.maxCgroups,
      cgroupPath: (id) => this.tree.resolve(id)?.path,
      wallTime: (ns) => new Date((ns + this.clockOffsetNs) / 1e6).toISOString(),
      emit: (e) => this.events.push({ ...e, ...this.attributor.attribute(e.cgroup) }),
    };
  }

  /** Loads and attaches the collectors. One that the kernel refuses is reported and skipped. */
  start(): void {
    const ctx = this.context();
    const makers: Record<CollectorName, () => Collector> = {
      process: () => new ProcessCollector(ctx),
      cpu: () => new CpuCollector(ctx),
      memory: () => new MemoryCollector(ctx),
    };
    for (const name of this.opts.collectors) {
      try {
        const c = makers[name]();
        this.collectors.set(name, c);
        this.log(`collector ${name}: ${c.status().alternative}`);
      } catch (err) {
        const e = err instanceof PeriscopeError ? err : undefined;
        this.failed.push({ name, error: (err as Error).message, hint: e?.hint ?? '' });
        this.log(`collector ${name} is not running: ${(err as Error).message}${e ? ` (${e.hint})` : ''}`);
      }
    }
    if (this.collectors.size === 0) {
      throw new PeriscopeError('NO_ALTERNATIVE', 'no collector could start', 'run `periscope doctor` to see what is missing');
    }
    if (this.kubernetes) {
      this.kubernetes.start();
      this.log(`kubernetes: watching pods of node ${this.node} at ${this.kubernetes.server}`);
    }
    this.schedulePoll(this.opts.pollIntervalMs);
    this.timers.push(
      setInterval(() => {
        try {
          this.janitor();
        } catch (err) {
          this.log(`cgroup janitor failed: ${(err as Error).message}`);
        }
      }, this.opts.walkIntervalMs),
    );
  }

  /**
   * Drains on a timer that slows down while nothing happens (up to idlePollMs) and speeds up as soon
   * as events flow: an idle node costs a few wakeups a second, a busy one is drained every
   * pollIntervalMs, and the kernel rings (1 MiB for process events) absorb the first burst.
   */
  private schedulePoll(delay: number): void {
    this.pollTimer = setTimeout(() => {
      const n = this.poll();
      this.schedulePoll(n > 0 ? this.opts.pollIntervalMs : Math.min(delay * 2, this.opts.idlePollMs));
    }, delay);
  }

  /** Drains every event ring. */
  poll(): number {
    let n = 0;
    for (const c of this.collectors.values()) {
      try {
        n += c.poll();
      } catch (err) {
        this.log(`collector ${c.name}: poll failed: ${(err as Error).message}`);
      }
    }
    return n;
  }

  /** Walks the cgroup tree; drops the data of cgroups gone longer than the grace period. */
  janitor(): void {
    this.kubernetes?.expire();
    this.tree.walk();
    const expired = new Set(this.tree.expire());
    const now = Date.now();
    // the collectors share most cgroups: each id is looked at once
    const ids = new Set<number>();
    for (const c of this.collectors.values()) for (const id of c.cgroupIds()) ids.add(id);
    for (const id of ids) {
      if (this.tree.resolve(id)) {
        this.unresolvedSince.delete(id);
        continue;
      }
      // an id no walk ever saw: a cgroup that lived between two walks
      const since = this.unresolvedSince.get(id) ?? now;
      this.unresolvedSince.set(id, since);
      if (now - since >= this.opts.graceMs) expired.add(id);
    }
    if (expired.size === 0) return;
    const gone = [...expired];
    for (const c of this.collectors.values()) c.forget(gone);
    for (const id of gone) this.unresolvedSince.delete(id);
    this.cgroupsExpired += gone.length;
  }

  /** Reads every kernel aggregate once; the next scrape reports this snapshot. */
  refresh(): void {
    this.poll();
    const s = emptySnapshot();
    const cpu = this.collectors.get('cpu') as CpuCollector | undefined;
    const proc = this.collectors.get('process') as ProcessCollector | undefined;
    const mem = this.collectors.get('memory') as MemoryCollector | undefined;
    if (cpu) s.cpu = cpu.read();
    if (proc) s.process = proc.counts();
    if (mem) s.oom = mem.oomKills();
    for (const m of [s.cpu, s.process, s.oom]) {
      for (const id of m.keys()) if (!s.labels.has(id)) s.labels.set(id, this.attributor.seriesLabels(this.cgroupLabel(id)));
    }
    this.snapshot = s;
  }

  cgroupLabel(id: number): string {
    return this.tree.resolve(id)?.path ?? `unresolved:${id}`;
  }

  /** Pods of this node with their IPs, network namespace and cgroups (what the network collectors join on). */
  podsView(): { uid: string; namespace: string; name: string; workload_kind: string; workload: string; ips: string[]; netns_inode: number | null; cgroups: string[]; deleted: boolean }[] {
    const netns = podNetworkNamespaces(this.tree.root, this.tree.paths(), (path) => this.attributor.owner(path));
    return (this.kubernetes?.all() ?? []).map((p) => ({
      uid: p.uid,
      namespace: p.namespace,
      name: p.name,
      workload_kind: p.workloadKind,
      workload: p.workload,
      ips: p.ips,
      netns_inode: netns.get(p.uid)?.inode ?? null,
      cgroups: netns.get(p.uid)?.cgroups ?? [],
      deleted: p.deletedAt !== undefined,
    }));
  }

  status(): { node: string; version: string; collectors: CollectorStatus[]; failed: Agent['failed']; cgroups: number; events: number } {
    return {
      node: this.node,
      version: VERSION,
      collectors: [...this.collectors.values()].map((c) => c.status()),
      failed: this.failed,
      cgroups: this.tree.size,
      events: this.events.last,
    };
  }

  /** One row per cgroup of a snapshot map, labelled and summed to the aggregation level. */
  private perCgroup<T>(m: Map<number, T>, value: (x: T) => number, extra: Record<string, string> = {}): Row<string>[] {
    const rows = [...m].map(([id, x]) => ({ labels: { ...this.snapshot.labels.get(id), ...extra }, value: value(x) }));
    return aggregate(rows, (into, from) => (into.value += from.value));
  }

  private registerMetrics(): void {
    const r = this.registry;
    const snap = (): Snapshot => this.snapshot;
    const workload = this.attributor.labelNames;
    const k8s = this.kubernetes;
    const kubernetesMetrics = k8s
      ? [
          new SnapshotCounter({
            name: 'periscope_kubernetes_errors_total',
            help: 'Errors talking to the Kubernetes API, by kind (watch: list/watch failures and dropped connections; owner: workload lookups).',
            labelNames: ['kind'],
            rows: () => Object.entries(k8s.errors).map(([kind, value]) => ({ labels: { kind }, value })),
          }),
          new SnapshotCounter({
            name: 'periscope_kubernetes_lists_total',
            help: 'Full lists of this node\'s pods: the first, and one per relist after an expired watch or a reconnect.',
            labelNames: [],
            rows: () => [{ labels: {}, value: k8s.lists }],
          }),
          new SnapshotGauge({
            name: 'periscope_kubernetes_connected',
            help: 'Whether the pod watch is connected (1) or the agent serves the last known pods (0).',
            labelNames: [],
            rows: () => [{ labels: {}, value: k8s.connected ? 1 : 0 }],
          }),
          new SnapshotGauge({
            name: 'periscope_kubernetes_pods',
            help: 'Pods of this node known to the agent, deleted ones in their grace period included.',
            labelNames: [],
            rows: () => [{ labels: {}, value: k8s.size }],
          }),
        ]
      : [];
    const metrics = [
      ...kubernetesMetrics,
      new SnapshotCounter({
        name: 'periscope_cpu_seconds_total',
        help: 'CPU time spent on a CPU by tasks of the cgroup, from scheduler switches (includes slices running at read time).',
        labelNames: workload,
        rows: () => this.perCgroup(snap().cpu, (u) => u.cpuSeconds),
      }),
      new SnapshotCounter({
        name: 'periscope_context_switches_total',
        help: 'Context switches away from tasks of the cgroup: voluntary (the task blocked) or involuntary (it was preempted).',
        labelNames: [...workload, 'kind'],
        rows: () => [
          ...this.perCgroup(snap().cpu, (u) => u.voluntarySwitches, { kind: 'voluntary' }),
          ...this.perCgroup(snap().cpu, (u) => u.involuntarySwitches, { kind: 'involuntary' }),
        ],
      }),
      new SnapshotHistogram({
        name: 'periscope_runqueue_latency_seconds',
        help: 'Time tasks of the cgroup waited on a run queue, from wakeup or preemption until they ran (log2 buckets).',
        labelNames: workload,
        buckets: RUNQ_BUCKETS,
        rows: () =>
          aggregate(
            [...snap().cpu].map(([id, { runq }]) => ({ labels: { ...snap().labels.get(id) }, cumulative: [...runq.cumulative], count: runq.count, sum: runq.sumSeconds })),
            (into, from) => {
              into.cumulative = into.cumulative.map((n, i) => n + (from.cumulative[i] ?? 0));
              into.count += from.count;
              into.sum += from.sum;
            },
          ),
      }),
      new SnapshotCounter({
        name: 'periscope_process_execs_total',
        help: 'Successful execve/execveat calls by processes of the cgroup.',
        labelNames: workload,
        rows: () => this.perCgroup(snap().process, (p) => p.execs),
      }),
      new SnapshotCounter({
        name: 'periscope_process_forks_total',
        help: 'New processes (not threads) created by processes of the cgroup.',
        labelNames: workload,
        rows: () => this.perCgroup(snap().process, (p) => p.forks),
      }),
      new SnapshotCounter({
        name: 'periscope_process_exits_total',
        help: 'Processes of the cgroup that exited, by any means.',
        labelNames: workload,
        rows: () => this.perCgroup(snap().process, (p) => p.exits),
      }),
      new SnapshotCounter({
        name: 'periscope_oom_kills_total',
        help: 'Processes of the cgroup killed by the OOM killer.',
        labelNames: workload,
        rows: () => this.perCgroup(snap().oom, (n) => n),
      }),
      new SnapshotCounter({
        name: 'periscope_events_lost_total',
        help: 'Events not delivered, by source: a kernel ring buffer was full, or a live API subscriber fell behind.',
        labelNames: ['source'],
        rows: () => [
          ...[...this.collectors.values()].map((c) => ({ labels: { source: c.name }, value: c.drops().events })),
          { labels: { source: 'api_stream' }, value: this.events.subscriberDrops },
        ],
      }),
      new SnapshotCounter({
        name: 'periscope_aggregates_dropped_total',
        help: 'Kernel updates lost because a per-cgroup map reached its size limit (raise --max-cgroups).',
        labelNames: ['collector'],
        rows: () => [...this.collectors.values()].map((c) => ({ labels: { collector: c.name }, value: c.drops().aggregates })),
      }),
      new SnapshotCounter({
        name: 'periscope_events_total',
        help: 'Events received from the kernel and kept in the agent log, by type.',
        labelNames: ['type'],
        rows: () => Object.entries(this.events.counts).map(([type, value]) => ({ labels: { type }, value })),
      }),
      new SnapshotGauge({
        name: 'periscope_cgroups',
        help: 'cgroups the agent can name, including vanished ones still in their grace period.',
        labelNames: [],
        rows: () => [{ labels: {}, value: this.tree.size }],
      }),
      new SnapshotCounter({
        name: 'periscope_cgroups_expired_total',
        help: 'Vanished cgroups whose series and kernel map entries were dropped after the grace period.',
        labelNames: [],
        rows: () => [{ labels: {}, value: this.cgroupsExpired }],
      }),
      new SnapshotGauge({
        name: 'periscope_collector_up',
        help: 'Whether a collector runs (1) or could not start (0), with the alternative the kernel took.',
        labelNames: ['collector', 'alternative'],
        rows: () => [
          ...[...this.collectors.values()].map((c) => ({ labels: { collector: c.name, alternative: c.status().alternative }, value: 1 })),
          ...this.failed.map((f) => ({ labels: { collector: f.name, alternative: 'none' }, value: 0 })),
        ],
      }),
      new SnapshotGauge({
        name: 'periscope_build_info',
        help: 'Build and runtime versions of the agent; always 1.',
        labelNames: ['version', 'node_version', 'libbpf_version'],
        rows: () => [{ labels: { version: VERSION, node_version: process.version, libbpf_version: native().libbpfVersion }, value: 1 }],
      }),
    ];
    // The agent's own cost, the numbers its overhead budget is held to.
    const self = [
      new SnapshotCounter({
        name: 'periscope_agent_cpu_seconds_total',
        help: 'CPU time used by the agent process (user and system).',
        labelNames: [],
        rows: () => {
          const u = process.cpuUsage();
          return [{ labels: {}, value: (u.user + u.system) / 1e6 }];
        },
      }),
      new SnapshotGauge({
        name: 'periscope_agent_resident_memory_bytes',
        help: 'Resident memory of the agent process.',
        labelNames: [],
        rows: () => [{ labels: {}, value: process.memoryUsage.rss() }],
      }),
      new SnapshotGauge({
        name: 'periscope_agent_heap_used_bytes',
        help: 'JavaScript heap in use by the agent.',
        labelNames: [],
        rows: () => [{ labels: {}, value: process.memoryUsage().heapUsed }],
      }),
    ];
    for (const m of [...metrics, ...self]) r.registerMetric(m);
  }

  /** Detaches every program and frees every kernel object. Safe to call twice. */
  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    clearTimeout(this.pollTimer);
    for (const c of this.collectors.values()) c.close();
    this.collectors.clear();
    this.kubernetes?.stop();
  }
}
