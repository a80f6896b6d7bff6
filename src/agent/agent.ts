/**
 * The node agent's lifecycle: starts the registered collectors the kernel supports, names cgroup ids
 * by walking the cgroup2 tree, drains event rings into a bounded log on a timer, reads the kernel's
 * aggregates on each scrape, and stops everything. Cgroups that vanish keep their series for a grace
 * period, then their kernel state is dropped, so memory stays bounded on a node with churn.
 *
 * It knows collectors only through the registry (src/collectors/registry.ts) and the contract: the
 * metrics stage (exporter.ts), the enrichment of subjects (enrich.ts) and the HTTP API (api.ts) are
 * the same for every collector.
 */
import { hostname } from 'node:os';
import { CgroupTree } from '../inventory/cgroups.js';
import { native } from '../kernel/native.js';
import { COLLECTORS } from '../collectors/registry.js';
import {
  cgroupSubject,
  type CollectorDefinition,
  type CollectorInstance,
  type CollectorStatus,
  type MetricDef,
  type NewEvent,
  type Readings,
  type Subject,
  subjectKey,
} from '../collectors/contract.js';
import { EventLog } from './event-log.js';
import { Exporter, type MetricSource } from './exporter.js';
import { Enricher } from './enrich.js';
import { Redactor, type RedactOptions } from './redact.js';
import { VERSION } from './version.js';
import { PeriscopeError } from '../kernel/errors.js';
import { Attributor, type AggregationLevel } from '../inventory/attribution.js';
import { type KubernetesInventory } from '../inventory/kubernetes.js';
import { netnsInodeOfPid, podNetworkNamespaces } from '../inventory/namespaces.js';
import { PeerNamer } from './peers.js';
import { choose, inSubtree, parseSelection, type Selector } from './selection.js';
import { ProfileWindows, type WindowEntry } from './profile-windows.js';
import { type Profile } from '../profiles/model.js';
import { type ProfileQuery } from '../profiles/query.js';
import { type ProfileWire } from '../wire/profiles.js';

/** How often the profiling collectors are drained into a window (and at each profile query). */
export const PROFILE_DRAIN_MS = 5_000;
/** A query drains at most this often: a client asking in a loop cannot make the agent read the kernel maps in a loop. */
const MIN_QUERY_DRAIN_MS = 200;

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
  /** most series per metric */
  maxSeries?: number;
  /** most peers named per source series (the rest fold into peer="other") */
  maxPeers?: number;
  /** the collectors to run (default: every registered one); names or definitions */
  collectors?: readonly (string | CollectorDefinition)[];
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
  /** secrets in command lines */
  redact?: RedactOptions;
  /**
   * restrict the agent to this cgroup subtree (a path under the cgroup2 root, "/" for all): rows and
   * events of subjects outside it are neither exported nor logged, so several agents on one machine
   * (one per subtree) count each cgroup once
   */
  cgroupSubtree?: string;
  /**
   * what each collector declared with `selection` works on, by collector name: rules as
   * `--<collector>-select` takes them (selection.ts). One without a selection is not started.
   */
  selections?: Readonly<Record<string, string>>;
  /** collectors' own settings, by collector name and setting name (the defaults fill the rest) */
  settings?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export { inSubtree };

interface Running {
  def: CollectorDefinition;
  instance: CollectorInstance;
}

export class Agent {
  readonly node: string;
  readonly tree: CgroupTree;
  readonly events: EventLog;
  /** recent profile windows (src/agent/profile-windows.ts) */
  readonly profileWindows = new ProfileWindows();
  private lastProfileDrain = 0;
  readonly exporter: Exporter;
  readonly enricher: Enricher;
  /** the collectors running, by name */
  readonly collectors = new Map<string, Running>();
  /** collectors that could not start, and why: a named degradation, not a crash */
  readonly failed: { name: string; error: string; hint: string }[] = [];
  readonly kubernetes: KubernetesInventory | undefined;
  readonly attributor: Attributor;
  readonly peers: PeerNamer;
  private readonly definitions: readonly CollectorDefinition[];
  private readonly opts: Required<Pick<AgentOptions, 'graceMs' | 'pollIntervalMs' | 'idlePollMs' | 'walkIntervalMs' | 'maxCgroups'>>;
  private readonly log: (line: string) => void;
  private readonly redactor: Redactor;
  private readonly timers: NodeJS.Timeout[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly unresolvedSince = new Map<number, number>();
  private readonly clockOffsetNs: number;
  /** events a collector emitted with a type it did not declare */
  undeclaredEvents = 0;
  cgroupsExpired = 0;
  /** the cgroup subtree the agent is restricted to ("/" for all) */
  readonly cgroupSubtree: string;
  /** sources added after construction (the hub shipper's own metrics) */
  private readonly extraSources: MetricSource[] = [];
  /** the selections of the collectors that work on selected workloads, by name */
  private readonly selections = new Map<string, readonly Selector[]>();
  /** what each selective collector was last told it covers (a key of the set) */
  private readonly selectedKeys = new Map<string, string>();
  /** collectors that work on selected workloads and were given no selection: not started */
  readonly unselected: string[] = [];
  private readonly settings: Readonly<Record<string, Readonly<Record<string, string>>>>;

  constructor(opts: AgentOptions = {}) {
    this.node = opts.node ?? process.env.NODE_NAME ?? hostname();
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.cgroupSubtree = opts.cgroupSubtree && opts.cgroupSubtree !== '/' ? opts.cgroupSubtree.replace(/\/+$/, '') : '/';
    this.opts = {
      graceMs: opts.graceMs ?? 60_000,
      pollIntervalMs: opts.pollIntervalMs ?? 100,
      idlePollMs: opts.idlePollMs ?? 400,
      walkIntervalMs: opts.walkIntervalMs ?? 5_000,
      maxCgroups: opts.maxCgroups ?? 16_384,
    };
    const wanted = (opts.collectors ?? COLLECTORS).map((c) => {
      if (typeof c !== 'string') return c;
      const def = COLLECTORS.find((d) => d.name === c);
      if (!def) throw new PeriscopeError('BAD_ARGUMENT', `unknown collector "${c}"`, `choose from ${COLLECTORS.map((d) => d.name).join(', ')}`);
      return def;
    });
    for (const name of Object.keys(opts.selections ?? {})) {
      const def = wanted.find((d) => d.name === name);
      if (!def?.selection) throw new PeriscopeError('BAD_ARGUMENT', `a selection for "${name}", which ${def ? 'works on every workload' : 'is not one of the collectors to run'}`, 'select for a collector that takes a selection');
    }
    // a collector that works on selected workloads runs only where someone selected some
    this.definitions = wanted.filter((d) => {
      if (!d.selection) return true;
      const raw = opts.selections?.[d.name];
      if (raw === undefined) {
        this.unselected.push(d.name);
        return false;
      }
      try {
        this.selections.set(d.name, parseSelection(raw));
      } catch (err) {
        throw new PeriscopeError('BAD_ARGUMENT', `the selection of ${d.name}: ${(err as Error).message}`, `write --${d.name}-select RULES`);
      }
      return true;
    });
    this.settings = checkSettings(wanted, opts.settings ?? {});
    this.tree = new CgroupTree({
      graceMs: this.opts.graceMs,
      lookup: (root, id) => native().cgroupPath(root, id),
      ...(opts.cgroupRoot ? { root: opts.cgroupRoot } : {}),
    });
    this.events = new EventLog(opts.eventLogSize ?? 10_000, this.definitions.flatMap((d) => d.events.map((e) => e.type)));
    this.kubernetes = opts.kubernetes;
    this.attributor = new Attributor({
      node: this.node,
      level: opts.aggregation ?? 'container',
      podLabels: opts.podLabels ?? [],
      ...(this.kubernetes ? { kubernetes: this.kubernetes } : {}),
    });
    this.enricher = new Enricher(this.tree, this.attributor, (inode) => this.netnsPath(inode));
    this.peers = new PeerNamer(this.kubernetes ? { directory: this.kubernetes } : {});
    this.redactor = new Redactor(opts.redact);
    this.exporter = new Exporter({
      subjectLabels: (s) => this.enricher.seriesLabels(s),
      subjectLabelNames: this.attributor.labelNames,
      peerLabels: (p) => this.peers.labels(p),
      ...(opts.maxPeers ? { maxPeers: opts.maxPeers } : {}),
      graceMs: this.opts.graceMs,
      log: this.log,
      ...(opts.maxSeries ? { maxSeries: opts.maxSeries } : {}),
    });
    for (const d of this.definitions) this.exporter.declare(d.metrics);
    this.exporter.declare(SELF_METRICS);
    if (this.kubernetes) this.exporter.declare(this.kubernetes.metrics);
    this.clockOffsetNs = Date.now() * 1e6 - Number(native().monotonicNs());
  }

  private netnsPaths = new Map<number, string>();
  private netnsRefreshedAt = -Infinity;

  /**
   * The cgroup path that names a network namespace: its pod's cgroup, or "/" for the host's. Pods'
   * namespaces are found by reading one process of each pod (namespaces.ts): on a miss, at most once
   * every 5 s.
   */
  private netnsPath(inode: number): string | undefined {
    const known = this.netnsPaths.get(inode);
    if (known !== undefined || Date.now() - this.netnsRefreshedAt < 5_000) return known;
    this.netnsRefreshedAt = Date.now();
    const paths = new Map<number, string>();
    const host = netnsInodeOfPid(1);
    if (host !== undefined) paths.set(host, '/');
    for (const ns of podNetworkNamespaces(this.tree.root, this.tree.paths(), (path) => this.attributor.owner(path)).values()) {
      if (ns.inode === undefined) continue;
      // the pod's own directory is the shortest of its cgroups
      const pod = ns.cgroups.reduce((a, b) => (b.length < a.length ? b : a));
      paths.set(ns.inode, pod);
    }
    this.netnsPaths = paths;
    return paths.get(inode);
  }

  /** Names, masks and logs one event of a collector. */
  private emit(def: CollectorDefinition, e: NewEvent): void {
    const { type, time, subject, peer, ...rest } = e;
    const fields: Record<string, unknown> = peer ? { ...rest, ...this.peers.eventFields(peer) } : rest;
    const declared = def.events.find((d) => d.type === type);
    if (!declared) {
      this.undeclaredEvents++;
      return;
    }
    if (!this.owns(subject)) return;
    for (const f of declared.argv ?? []) {
      const v = fields[f];
      if (Array.isArray(v)) fields[f] = this.redactor.argv(v.map(String));
    }
    this.events.push({ type, time, node: this.node, ...this.enricher.eventNames(subject), ...fields });
  }

  /** Loads and attaches the collectors. One that the kernel refuses is reported and skipped. */
  start(): void {
    for (const def of this.definitions) {
      try {
        const instance = def.start({
          maxCgroups: this.opts.maxCgroups,
          wallTime: (ns) => new Date((ns + this.clockOffsetNs) / 1e6).toISOString(),
          emit: (e) => this.emit(def, e),
          learnName: (addr, name, ttl) => this.peers.learn(addr, name, ttl),
          ...(def.settings ? { settings: this.settings[def.name] ?? {} } : {}),
        });
        this.collectors.set(def.name, { def, instance });
        const { alternative, note } = instance.status();
        this.log(`collector ${def.name}: ${alternative}${note ? ` (${note})` : ''}`);
      } catch (err) {
        const e = err instanceof PeriscopeError ? err : undefined;
        this.failed.push({ name: def.name, error: (err as Error).message, hint: e?.hint ?? '' });
        this.log(`collector ${def.name} is not running: ${(err as Error).message}${e ? ` (${e.hint})` : ''}`);
      }
    }
    for (const name of this.unselected) this.log(`collector ${name}: not started, no workload selected (--${name}-select)`);
    if (this.collectors.size === 0 && this.failed.length === 0 && this.unselected.length > 0) {
      throw new PeriscopeError('BAD_ARGUMENT', `no collector to run: ${this.unselected.join(', ')} works only on selected workloads`, this.unselected.map((n) => `give --${n}-select RULES`).join(', '));
    }
    if (this.collectors.size === 0) {
      throw new PeriscopeError('NO_ALTERNATIVE', 'no collector could start', 'run `periscope doctor` to see what is missing');
    }
    this.applySelections();
    if (this.kubernetes) {
      this.kubernetes.start();
      this.log(`kubernetes: watching pods of node ${this.node} (peers named from ${this.kubernetes.peerScope === 'cluster' ? 'every pod of the cluster' : 'this node\'s pods'}, Services and nodes) at ${this.kubernetes.server}`);
    }
    this.schedulePoll(this.opts.pollIntervalMs);
    if (this.profiling()) this.timers.push(setInterval(() => this.drainProfiles(), PROFILE_DRAIN_MS));
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
    for (const { def, instance } of this.collectors.values()) {
      try {
        n += instance.poll();
      } catch (err) {
        this.log(`collector ${def.name}: poll failed: ${(err as Error).message}`);
      }
    }
    return n;
  }

  /**
   * Tells each collector that works on selected workloads which cgroups its selection covers now,
   * when that changed: cgroups of the agent's subtree, named as series are (a pod whose names are
   * not known yet is covered once they are).
   */
  applySelections(): void {
    for (const { def, instance } of this.collectors.values()) {
      const selection = this.selections.get(def.name);
      if (!selection || !instance.select) continue;
      const owned = [...this.tree.entries()].filter((c) => inSubtree(c.path, this.cgroupSubtree));
      const chosen = choose(selection, owned, (path) => this.attributor.attribute(path));
      const key = chosen.map((c) => `${c.subject.id}=${c.group}`).sort().join('\u0000');
      if (this.selectedKeys.get(def.name) === key) continue;
      this.selectedKeys.set(def.name, key);
      try {
        instance.select(chosen);
      } catch (err) {
        this.log(`collector ${def.name}: select failed: ${(err as Error).message}`);
      }
    }
  }

  /** Walks the cgroup tree; applies the selections to it; drops the kernel state of cgroups gone longer than the grace period. */
  janitor(): void {
    this.kubernetes?.expire();
    this.tree.walk();
    this.applySelections();
    const expired = new Set(this.tree.expire());
    const now = Date.now();
    // the collectors share most cgroups: each id is looked at once
    const ids = new Set<number>();
    for (const { instance } of this.collectors.values()) for (const s of instance.subjects()) if (s.kind === 'cgroup') ids.add(s.id);
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
    const gone: Subject[] = [...expired].map(cgroupSubject);
    for (const { instance } of this.collectors.values()) instance.forget(gone);
    for (const id of expired) this.unresolvedSince.delete(id);
    this.cgroupsExpired += gone.length;
  }

  /**
   * Whether a subject is inside the agent's cgroup subtree: a cgroup by its path, a network namespace
   * by the path the agent names it with (its pod's cgroup, "/" for the host's). One that cannot be
   * named yet is not claimed by a restricted agent.
   */
  owns(subject: Subject | undefined): boolean {
    if (this.cgroupSubtree === '/' || subject === undefined) return true;
    const path = subject.kind === 'netns' ? this.netnsPath(subject.id) : this.tree.resolve(subject.id)?.path;
    return path !== undefined && inSubtree(path, this.cgroupSubtree);
  }

  /** Rows of subjects outside the cgroup subtree left out; rows without a subject stay. */
  private restrict(readings: Readings): Readings {
    if (this.cgroupSubtree === '/') return readings;
    const owned = new Map<string, boolean>();
    const owns = (s: Subject): boolean => {
      const k = subjectKey(s);
      let o = owned.get(k);
      if (o === undefined) owned.set(k, (o = this.owns(s)));
      return o;
    };
    return new Map([...readings].map(([name, rows]) => [name, rows.filter((r) => r.subject === undefined || owns(r.subject))]));
  }

  /** Adds a source of metrics (declared now), read at every collection: the hub shipper's own. */
  addSource(source: MetricSource): void {
    this.exporter.declare(source.metrics);
    this.extraSources.push(source);
  }

  /** Every source of metrics: the running collectors, the agent itself, the Kubernetes inventory. */
  private sources(): MetricSource[] {
    const running = [...this.collectors.values()].map(({ def, instance }) => ({ name: def.name, metrics: def.metrics, read: () => this.restrict(instance.read()) }));
    const self: MetricSource = { name: 'agent', metrics: SELF_METRICS, read: () => this.selfReadings() };
    return [...running, self, ...this.extraSources, ...(this.kubernetes ? [this.kubernetes] : [])];
  }

  /** Drains the rings and reads every kernel aggregate once into the exporter's series. */
  collect(): void {
    this.poll();
    this.exporter.collect(this.sources());
  }

  /** Drains the rings, reads every kernel aggregate once, and returns the Prometheus text. */
  scrape(): string {
    this.collect();
    return this.exporter.text();
  }

  private selfReadings(): Readings {
    const running = [...this.collectors.values()];
    const row = (value: number, labels?: Record<string, string>): { value: number; labels?: Record<string, string> } => (labels ? { value, labels } : { value });
    const cpu = process.cpuUsage();
    return new Map([
      [
        'periscope_events_lost_total',
        [
          ...running.map(({ def, instance }) => row(instance.drops().events, { source: def.name })),
          row(this.events.subscriberDrops, { source: 'api_stream' }),
          row(this.undeclaredEvents, { source: 'undeclared' }),
        ],
      ],
      ['periscope_aggregates_dropped_total', running.map(({ def, instance }) => row(instance.drops().aggregates, { collector: def.name }))],
      ['periscope_events_sampled_out_total', running.map(({ def, instance }) => row(instance.drops().sampled ?? 0, { collector: def.name }))],
      ['periscope_events_total', [...this.events.counts].map(([type, n]) => row(n, { type }))],
      ['periscope_series_dropped', [...this.exporter.refused()].map(([metric, n]) => row(n, { metric }))],
      ['periscope_series_folded', [...this.exporter.folded()].map(([metric, n]) => row(n, { metric }))],
      ['periscope_peer_names', [row(this.peers.namesKnown)]],
      ['periscope_cgroups', [row(this.tree.size)]],
      ['periscope_cgroups_expired_total', [row(this.cgroupsExpired)]],
      [
        'periscope_collector_up',
        [
          ...running.map(({ def, instance }) => row(1, { collector: def.name, alternative: instance.status().alternative })),
          ...this.failed.map((f) => row(0, { collector: f.name, alternative: 'none' })),
        ],
      ],
      ['periscope_build_info', [row(1, { version: VERSION, node_version: process.version, libbpf_version: native().libbpfVersion })]],
      ['periscope_agent_cpu_seconds_total', [row((cpu.user + cpu.system) / 1e6)]],
      ['periscope_agent_resident_memory_bytes', [row(process.memoryUsage.rss())]],
      ['periscope_agent_heap_used_bytes', [row(process.memoryUsage().heapUsed)]],
    ]);
  }

  /** A collector's extra route at /api/v1/<path>, if one is declared by a running collector. */
  route(path: string): ((query: URLSearchParams) => unknown) | undefined {
    for (const { def, instance } of this.collectors.values()) {
      const r = def.routes?.find((x) => x.path === path);
      if (r) return (q) => r.handler(instance, q, { subject: (s) => this.enricher.seriesLabels(s), peer: (p) => this.peers.labels(p) });
    }
    return undefined;
  }

  private profiling(): boolean {
    return [...this.collectors.values()].some(({ def, instance }) => !!def.profiles && typeof instance.profiles === 'function');
  }

  /**
   * Drains the profiling collectors into one window: stacks of the cgroups this agent owns, named as
   * events are. A query drains too (at most every 200 ms), so that it sees up to its own moment.
   */
  drainProfiles(query = false): void {
    const now = Date.now();
    if (query && now - this.lastProfileDrain < MIN_QUERY_DRAIN_MS) return;
    this.lastProfileDrain = now;
    for (const { def, instance } of this.collectors.values()) {
      if (!def.profiles || !instance.profiles) continue;
      try {
        const d = instance.profiles();
        const entries: WindowEntry[] = [];
        for (const p of d.profiles) {
          if (!this.owns(p.subject)) continue;
          const { cgroup, namespace, pod, container, workload_kind, workload } = this.enricher.eventNames(p.subject);
          entries.push({ labels: { cgroup, namespace, pod, container, workload_kind, workload }, type: p.type, period: d.period[p.type] ?? 1, stacks: p.stacks });
        }
        this.profileWindows.add(d.from, d.to, entries);
      } catch (err) {
        this.log(`collector ${def.name}: profile drain failed: ${(err as Error).message}`);
      }
    }
  }

  /** The merged profile a query asks for (drains first). */
  profile(q: ProfileQuery): Profile {
    this.drainProfiles(true);
    return this.profileWindows.query(q, this.node);
  }

  /** Profile windows the shipper has not taken yet. */
  profilesToShip(): ProfileWire[] {
    return this.profileWindows.takeUnshipped();
  }

  /** Every declared event type of the running collectors. */
  get eventTypes(): string[] {
    return [...this.events.counts.keys()];
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

  status(): {
    node: string;
    version: string;
    collectors: CollectorStatus[];
    failed: Agent['failed'];
    cgroups: number;
    max_cgroups: number;
    events: number;
    kubernetes: ReturnType<KubernetesInventory['status']> | null;
  } {
    return {
      node: this.node,
      version: VERSION,
      collectors: [...this.collectors.values()].map(({ instance }) => instance.status()),
      failed: this.failed,
      cgroups: this.tree.size,
      max_cgroups: this.opts.maxCgroups,
      events: this.events.last,
      kubernetes: this.kubernetes?.status() ?? null,
    };
  }

  /** Detaches every program and frees every kernel object. Safe to call twice. */
  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    clearTimeout(this.pollTimer);
    for (const { instance } of this.collectors.values()) instance.close();
    this.collectors.clear();
    this.kubernetes?.stop();
  }
}

/** Every setting of each collector: the value given, checked, or its default. */
function checkSettings(defs: readonly CollectorDefinition[], given: Readonly<Record<string, Readonly<Record<string, string>>>>): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [name, values] of Object.entries(given)) {
    const def = defs.find((d) => d.name === name);
    if (!def) continue; // a collector not run: its settings do not matter
    for (const key of Object.keys(values)) {
      if (!def.settings?.some((s) => s.name === key)) throw new PeriscopeError('BAD_ARGUMENT', `"${name}" has no setting "${key}"`, 'see `periscope agent --help`');
    }
  }
  for (const d of defs) {
    if (!d.settings) continue;
    const values: Record<string, string> = {};
    for (const s of d.settings) {
      const v = given[d.name]?.[s.name] ?? s.default;
      const why = s.check(v);
      if (why) throw new PeriscopeError('BAD_ARGUMENT', `--${d.name}-${s.name}: ${why}`, `see \`periscope agent --help\``);
      values[s.name] = v;
    }
    out[d.name] = values;
  }
  return out;
}

/** The agent's own metrics: what it lost, what runs, what it costs. */
const SELF_METRICS: readonly MetricDef[] = [
  {
    type: 'counter',
    name: 'periscope_events_lost_total',
    labels: ['source'],
    help: 'Events not delivered, by source: a collector\'s kernel ring buffer was full, a live API subscriber fell behind, or a collector emitted a type it did not declare.',
  },
  {
    type: 'counter',
    name: 'periscope_aggregates_dropped_total',
    labels: ['collector'],
    help: 'Kernel aggregate updates lost: a per-cgroup map reached its size limit (raise --max-cgroups), or another map update failed.',
  },
  {
    type: 'counter',
    name: 'periscope_events_sampled_out_total',
    labels: ['collector'],
    help: 'Events a collector did not send on purpose, past its budget per second (its metrics stay exact): a storm of connections is counted, not streamed one by one.',
  },
  { type: 'counter', name: 'periscope_events_total', labels: ['type'], help: 'Events received from the kernel and kept in the agent log, by type.' },
  { type: 'gauge', name: 'periscope_series_dropped', labels: ['metric'], help: 'Rows not exported at the last scrape because their metric reached --max-series series.' },
  {
    type: 'gauge',
    name: 'periscope_series_folded',
    labels: ['metric'],
    help: 'Rows folded into peer="other" at the last scrape because their source already had --max-peers named peers.',
  },
  { type: 'gauge', name: 'periscope_peer_names', help: 'Addresses named by the DNS answers that gave them (kept until their TTL runs out).' },
  { type: 'gauge', name: 'periscope_cgroups', help: 'cgroups the agent can name, including vanished ones still in their grace period.' },
  { type: 'counter', name: 'periscope_cgroups_expired_total', help: 'Vanished cgroups whose series and kernel map entries were dropped after the grace period.' },
  {
    type: 'gauge',
    name: 'periscope_collector_up',
    labels: ['collector', 'alternative'],
    help: 'Whether a collector runs (1) or could not start (0), with the alternative the kernel took.',
  },
  { type: 'gauge', name: 'periscope_build_info', labels: ['version', 'node_version', 'libbpf_version'], help: 'Build and runtime versions of the agent; always 1.' },
  { type: 'counter', name: 'periscope_agent_cpu_seconds_total', help: 'CPU time used by the agent process (user and system).' },
  { type: 'gauge', name: 'periscope_agent_resident_memory_bytes', help: 'Resident memory of the agent process.' },
  { type: 'gauge', name: 'periscope_agent_heap_used_bytes', help: 'JavaScript heap in use by the agent.' },
];
