/**
 * The metrics stage, the same for every collector: reads each source's rows, names each subject (a
 * cgroup id becomes cgroup, namespace, pod, container, workload_kind, workload and node labels at the
 * configured aggregation level), sums rows that land on the same series, caps the series per metric,
 * and writes the Prometheus text format.
 *
 * Counters stay counters. Each series remembers its members (a subject and the collector's own labels)
 * and their last values; a member that leaves its series — its cgroup expired after a rollout, or its
 * labels changed when the pod became known — leaves its last value behind in the series, so a sum over
 * cgroups never goes down while the agent lives. A member's own counter never goes down either (an
 * estimate of work in progress may not be undone). A series with no live member keeps its last value
 * for the grace period, then goes, as a container-level series does. Histograms are summed by bucket
 * bound, not by position.
 */
import { PEER_LABELS, subjectKey, type HistogramValue, type MetricDef, type Peer, type Readings, type Sample, type Subject } from '../collectors/contract.js';
import { formatFamily, labelBody } from './exposition.js';
import { OTHER_PEER, PeerFolder, type PeerLabels } from './peers.js';

/** Anything that declares metrics and reads rows for them: a collector, the agent, the inventory. */
export interface MetricSource {
  readonly name: string;
  readonly metrics: readonly MetricDef[];
  read(): Readings;
}

export interface ExporterOptions {
  /** the labels of a subject at the configured aggregation level */
  subjectLabels(subject: Subject): Record<string, string>;
  /** their names, in order */
  subjectLabelNames: readonly string[];
  /** most series per metric; rows beyond are not exported (and counted) */
  maxSeries?: number;
  /** how long a series without live members keeps its last value (ms) */
  graceMs?: number;
  /** the labels of a peer (metrics declared with `peer: true`) */
  peerLabels?: (peer: Peer) => PeerLabels;
  /** most peers named per subject series; the rest fold into peer="other" */
  maxPeers?: number;
  now?: () => number;
  log?: (line: string) => void;
}

export interface Hist {
  cumulative: number[];
  count: number;
  sum: number;
}
type Value = number | Hist;

/** One metric family as exported: see Exporter.snapshot(). */
export interface FamilySnapshot {
  def: MetricDef;
  labelNames: readonly string[];
  series: { labels: string[]; value: number | Hist }[];
}

const isHist = (v: Value | undefined): v is Hist => typeof v === 'object';

function add(a: Value | undefined, b: Value): Value {
  if (a === undefined) return isHist(b) ? { cumulative: [...b.cumulative], count: b.count, sum: b.sum } : b;
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (isHist(a) && isHist(b)) return { cumulative: a.cumulative.map((n, i) => n + (b.cumulative[i] ?? 0)), count: a.count + b.count, sum: a.sum + b.sum };
  throw new Error('cannot add a number and a histogram');
}

/**
 * A histogram read with some bounds, re-expressed on the metric's declared bounds: the cumulative count
 * at a bound is the count at the greatest bound read that does not exceed it (exact where they agree).
 */
export function onBounds(h: HistogramValue, bounds: readonly number[]): Hist {
  const same = h.bounds === bounds || (h.bounds.length === bounds.length && h.bounds.every((b, i) => b === bounds[i]));
  if (same) return { cumulative: bounds.map((_b, i) => h.cumulative[i] ?? h.count), count: h.count, sum: h.sum };
  const cumulative = bounds.map((le) => {
    let at = 0;
    h.bounds.forEach((b, i) => {
      if (b <= le) at = h.cumulative[i] ?? at;
    });
    return at;
  });
  return { cumulative, count: h.count, sum: h.sum };
}

interface Member {
  series: string;
  value: Value;
}

interface SeriesState {
  labels: Record<string, string>;
  /** the labels as the text exposition writes them, escaped once when the series is made */
  body: string;
  /** what members that left the series had counted */
  retired: Value | undefined;
  /** when it last had a live member (ms) */
  lastLive: number;
}

class Family {
  readonly def: MetricDef;
  readonly labelNames: readonly string[];
  private readonly members = new Map<string, Member>();
  private readonly series = new Map<string, SeriesState>();
  /** rows not exported at the last update because the metric reached its series limit */
  refused = 0;

  private readonly subjectLabelNames: readonly string[];
  /** rows folded into peer="other" at the last update */
  folded = 0;

  constructor(def: MetricDef, subjectLabelNames: readonly string[]) {
    this.def = def;
    this.subjectLabelNames = def.subject ? subjectLabelNames : [];
    this.labelNames = [...this.subjectLabelNames, ...(def.peer ? PEER_LABELS : []), ...(def.labels ?? [])];
  }

  /** The peer labels of a row, folded into "other" past the source's share. */
  private peerLabels(s: Sample, subjectLabels: Record<string, string>, peers: PeerContext, now: number): PeerLabels | undefined {
    if (!this.def.peer || !s.peer) return undefined;
    const l = peers.labels(s.peer);
    const source = this.subjectLabelNames.map((n) => subjectLabels[n] ?? '').join('\u0000');
    if (peers.folder.named(source, `${l.peer_kind}\u0000${l.peer_namespace}\u0000${l.peer}\u0000${l.peer_port}`, now)) return l;
    this.folded++;
    return OTHER_PEER;
  }

  private retire(m: Member): void {
    const s = this.series.get(m.series);
    if (s && this.def.type !== 'gauge') s.retired = add(s.retired, m.value);
  }

  update(samples: readonly Sample[], name: (s: Subject) => Record<string, string>, peers: PeerContext, maxSeries: number, graceMs: number, now: number): void {
    const seen = new Set<string>();
    const own = this.def.labels ?? [];
    this.refused = 0;
    this.folded = 0;
    for (const s of samples) {
      const subjectLabels = s.subject ? name(s.subject) : {};
      const labels: Record<string, string> = { ...subjectLabels, ...this.peerLabels(s, subjectLabels, peers, now), ...s.labels };
      const key = this.labelNames.map((n) => labels[n] ?? '').join('\u0000');
      const peer = s.peer ? `${s.peer.addr}|${s.peer.port ?? ''}|${s.peer.nat?.addr ?? ''}|${s.peer.nat?.port ?? ''}` : '';
      const memberKey = `${s.subject ? subjectKey(s.subject) : ''}\u0001${peer}\u0001${own.map((n) => s.labels?.[n] ?? '').join('\u0000')}`;
      let state = this.series.get(key);
      if (!state) {
        if (this.series.size >= maxSeries) {
          this.refused++;
          continue;
        }
        const values = Object.fromEntries(this.labelNames.map((n) => [n, labels[n] ?? '']));
        state = { labels: values, body: labelBody(this.labelNames, values), retired: undefined, lastLive: now };
        this.series.set(key, state);
      }
      state.lastLive = now;
      let value: Value = typeof s.value === 'number' ? s.value : this.def.type === 'histogram' ? onBounds(s.value, this.def.buckets) : NaN;
      const prev = this.members.get(memberKey);
      if (prev && prev.series !== key) this.retire(prev);
      else if (prev && this.def.type === 'counter' && typeof prev.value === 'number' && typeof value === 'number') value = Math.max(prev.value, value);
      this.members.set(memberKey, { series: key, value });
      seen.add(memberKey);
    }
    for (const [k, m] of this.members) {
      if (seen.has(k)) continue;
      this.retire(m);
      this.members.delete(k);
    }
    for (const [k, s] of this.series) {
      const idle = s.lastLive < now;
      if (idle && (this.def.type === 'gauge' || now - s.lastLive >= graceMs)) this.series.delete(k);
    }
  }

  /** The series as exported now: what retired members counted plus the live members, per series. */
  current(): { labels: Record<string, string>; labelBody: string; value: Value }[] {
    const live = new Map<string, Value>();
    for (const m of this.members.values()) live.set(m.series, add(live.get(m.series), m.value));
    const out: { labels: Record<string, string>; labelBody: string; value: Value }[] = [];
    for (const [k, s] of this.series) {
      let v = s.retired === undefined ? undefined : add(undefined, s.retired);
      const l = live.get(k);
      if (l !== undefined) v = add(v, l);
      if (v !== undefined) out.push({ labels: s.labels, labelBody: s.body, value: v });
    }
    return out;
  }

  text(): string {
    return formatFamily(this.def, this.labelNames, this.current());
  }

  get size(): number {
    return this.series.size;
  }
}

interface PeerContext {
  labels(p: Peer): PeerLabels;
  folder: PeerFolder;
}

export class Exporter {
  private readonly families = new Map<string, Family>();
  private readonly folder: PeerFolder;
  private readonly opts: Required<Omit<ExporterOptions, 'subjectLabels' | 'subjectLabelNames'>> & Pick<ExporterOptions, 'subjectLabels' | 'subjectLabelNames'>;


  constructor(opts: ExporterOptions) {
    this.opts = {
      maxSeries: 10_000,
      graceMs: 60_000,
      now: Date.now,
      log: () => undefined,
      maxPeers: 100,
      peerLabels: (p) => ({ peer_kind: 'external', peer_namespace: '', peer_workload: '', peer: p.addr, peer_port: p.port ? String(p.port) : '' }),
      ...opts,
    };
    this.folder = new PeerFolder(this.opts.maxPeers, this.opts.graceMs);
  }

  /** Declares the metrics of a source; a name declared twice is a programming error. */
  declare(metrics: readonly MetricDef[]): void {
    for (const def of metrics) {
      if (this.families.has(def.name)) throw new Error(`metric ${def.name} is declared twice`);
      this.families.set(def.name, new Family(def, this.opts.subjectLabelNames));
    }
  }

  /**
   * Reads every source and folds its rows into the series. A source whose read fails keeps its last
   * values (logged), so a passing failure costs freshness, not counts.
   */
  collect(sources: Iterable<MetricSource>): void {
    const now = this.opts.now();
    const peerNames = new Map<string, PeerLabels>();
    const peers: PeerContext = {
      folder: this.folder,
      labels: (p) => {
        const k = `${p.addr}|${p.port ?? ''}`;
        let l = peerNames.get(k);
        if (!l) peerNames.set(k, (l = this.opts.peerLabels(p)));
        return l;
      },
    };
    const names = new Map<string, Record<string, string>>();
    const name = (s: Subject): Record<string, string> => {
      const k = subjectKey(s);
      let l = names.get(k);
      if (!l) names.set(k, (l = this.opts.subjectLabels(s)));
      return l;
    };
    for (const source of sources) {
      let readings: Readings;
      try {
        readings = source.read();
      } catch (err) {
        this.opts.log(`${source.name}: reading metrics failed: ${(err as Error).message}`);
        continue;
      }
      for (const def of source.metrics) {
        const family = this.families.get(def.name);
        if (!family) throw new Error(`metric ${def.name} of ${source.name} was not declared`);
        family.update(readings.get(def.name) ?? [], name, peers, this.opts.maxSeries, this.opts.graceMs, now);
      }
    }
    this.folder.expire(now);
  }

  /** Rows folded into peer="other" at the last collection because their source had --max-peers named peers, by metric. */
  folded(): Map<string, number> {
    return new Map([...this.families].filter(([, f]) => f.folded > 0).map(([n, f]) => [n, f.folded]));
  }

  /** The text exposition of everything collected so far. */
  text(): string {
    return [...this.families.values()].map((f) => f.text()).join('');
  }

  /**
   * The same series as text() exposes, structured (what the shipper sends to the hub): per family,
   * its definition, label names, and each series' label values in that order with its value.
   */
  snapshot(): FamilySnapshot[] {
    return [...this.families.values()].map((f) => ({
      def: f.def,
      labelNames: f.labelNames,
      series: f.current().map((s) => ({ labels: f.labelNames.map((n) => s.labels[n] ?? ''), value: s.value })),
    }));
  }

  /** Rows refused at the last collection because their metric had --max-series series, by metric. */
  refused(): Map<string, number> {
    return new Map([...this.families].filter(([, f]) => f.refused > 0).map(([n, f]) => [n, f.refused]));
  }

  /** Series exported now, by metric. */
  seriesCount(name: string): number {
    return this.families.get(name)?.size ?? 0;
  }
}
