/**
 * network collector: TCP connections (opened, failed by reason, closed, active, duration), their
 * payload bytes both ways, retransmitted segments, resets and smoothed RTT per flow (a socket's owner
 * and its peer); listening sockets; UDP bytes and datagrams per flow; DNS queries and answers parsed
 * from the packets (qtype, rcode, latency, timeouts); packet drops by the kernel's reason per network
 * namespace. Events for each connection opened, closed or failed, each DNS answer or timeout, and a
 * sample of drops. A route serves the service map: flows as edges over a time window.
 *
 * The kernel keeps the totals of connections that ended (tcp_flows) and socket storage for open ones,
 * which an iterator reads at each scrape: bytes of a long-lived connection are exact while it is still
 * open. Where the kernel refuses the iterator, the tp_btf-no-iter alternative counts an open
 * connection's bytes, retransmits and RTT when it closes, and its active connections from the flow's
 * opened and closed counts. The agent names both ends; this module only reports ids and addresses.
 */
import { type ObjectSpec } from '../../kernel/bpf-object.js';
import { type TypedMap } from '../../kernel/maps.js';
import { type RingReader } from '../../kernel/ring.js';
import { native } from '../../kernel/native.js';
import { kernelEnum } from '../../kernel/btf.js';
import * as gen from './network.gen.js';
import {
  BadRequest,
  cgroupSubject,
  defineCollector,
  netnsSubject,
  type CollectorContext,
  type CollectorInstance,
  type DropCounts,
  type HistogramValue,
  type MetricDef,
  type Names,
  type Peer,
  type Readings,
  type Sample,
  type Subject,
} from '../contract.js';
import { TIME, WHO } from '../../wire/table.js';
import { KernelCollector, loadAndAttach } from '../kernel-collector.js';
import { wordsToAddr } from './addr.js';
import { DnsTracker, DNS_LATENCY_BUCKETS } from './dns-tracker.js';

/** The alternative that reads open connections with the socket-storage iterator at each scrape. */
export const ALT_LIVE = 'tp_btf';
/** The one for kernels that refuse the iterator: open connections are counted when they close. */
export const ALT_NO_ITER = 'tp_btf-no-iter';

export const NETWORK_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  maps: gen.maps,
  attach: {
    packets_in: { kind: 'cgroup' },
    packets_out: { kind: 'cgroup' },
    live_conns: { kind: 'iter', map: 'socks' },
  },
  // Tracepoints with socket storage (Linux 5.11+), the iterator over it, and cgroup_skb on the cgroup2
  // root for UDP, DNS and NAT targets; without the iterator (a kernel that refuses iter programs), the
  // same programs but live_conns, and open connections' bytes counted when they close.
  alternatives: [
    {
      name: ALT_LIVE,
      requires: ['btf', 'tp_btf', 'ringbuf', 'cgroup_skb', 'sk_storage_tracing', 'iter_sk_storage'],
      programs: [...gen.programs],
    },
    {
      name: ALT_NO_ITER,
      requires: ['btf', 'tp_btf', 'ringbuf', 'cgroup_skb', 'sk_storage_tracing'],
      programs: gen.programs.filter((p) => p !== 'live_conns'),
      note: "open connections' bytes, retransmits and RTT are counted when they close",
    },
  ],
};

const R = gen.enums.tcp_result;
/** enum tcp_result as label values */
export const RESULTS: readonly string[] = ['success', 'refused', 'timeout', 'reset', 'unreachable', 'aborted', 'other'];
export const DIRECTIONS: readonly string[] = ['outbound', 'inbound'];
const DURATION_SLOTS = 24;
const RTT_SLOTS = 24;
/** slot i of the kernel's duration histogram ends at 2^(i+1) ms */
export const DURATION_BUCKETS: readonly number[] = Array.from({ length: DURATION_SLOTS - 1 }, (_x, i) => 2 ** (i + 1) / 1e3);
/** slot i of the kernel's RTT histogram ends at 2^(i+1) µs */
export const RTT_BUCKETS: readonly number[] = Array.from({ length: RTT_SLOTS - 1 }, (_x, i) => 2 ** (i + 1) / 1e6);
const PROTOCOLS: Readonly<Record<number, string>> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };
/** most bytes of open connections read per scrape (about 100 bytes each) */
const LIVE_READ_LIMIT = 64 << 20;
/** the service map keeps a snapshot of every flow's totals this often, this many times */
const EDGE_SNAPSHOT_MS = 60_000;
const EDGE_SNAPSHOTS = 16;


function histogram(slots: readonly number[], bounds: readonly number[], sum: number): HistogramValue {
  const cumulative: number[] = [];
  let acc = 0;
  for (let i = 0; i < bounds.length; i++) cumulative.push((acc += slots[i] ?? 0));
  for (let i = bounds.length; i < slots.length; i++) acc += slots[i] ?? 0;
  return { bounds, cumulative, count: acc, sum };
}

/** A flow's peer as the agent names it. */
function flowPeer(k: gen.FlowKey): Peer {
  const addr = wordsToAddr(k.addr) || '0.0.0.0';
  const nat = k.nat_port ? { addr: wordsToAddr(k.nat_addr), port: k.nat_port } : undefined;
  return { addr, ...(k.port ? { port: k.port } : {}), ...(nat ? { nat } : {}) };
}

/** Rows that land on the same (subject, peer, labels) add up: flows differ in what no label shows (our listening port). */
class Rows {
  private readonly rows = new Map<string, { subject: Subject; peer?: Peer; labels?: Record<string, string>; value: number }>();

  add(subject: Subject, peer: Peer | undefined, labels: Record<string, string> | undefined, value: number): void {
    const key = `${subject.kind}:${subject.id}|${peer ? `${peer.addr}|${peer.port ?? ''}|${peer.nat?.addr ?? ''}|${peer.nat?.port ?? ''}` : ''}|${labels ? Object.values(labels).join('|') : ''}`;
    const r = this.rows.get(key);
    if (r) r.value += value;
    else this.rows.set(key, { subject, ...(peer ? { peer } : {}), ...(labels ? { labels } : {}), value });
  }

  samples(): Sample[] {
    return [...this.rows.values()];
  }
}

class HistRows {
  private readonly rows = new Map<string, { subject: Subject; peer: Peer; slots: number[]; sum: number }>();

  add(subject: Subject, peer: Peer, slots: readonly number[], sum: number): void {
    const key = `${subject.id}|${peer.addr}|${peer.port ?? ''}|${peer.nat?.addr ?? ''}|${peer.nat?.port ?? ''}`;
    const r = this.rows.get(key);
    if (r) {
      slots.forEach((n, i) => (r.slots[i] = (r.slots[i] ?? 0) + n));
      r.sum += sum;
    } else this.rows.set(key, { subject, peer, slots: [...slots], sum });
  }

  samples(bounds: readonly number[]): Sample[] {
    return [...this.rows.values()].map((r) => ({ subject: r.subject, peer: r.peer, value: histogram(r.slots, bounds, r.sum) }));
  }
}

/** What an edge of the service map counts, in total since the agent started. */
export interface EdgeTotals {
  connections: number;
  failed: number;
  bytes_sent: number;
  bytes_received: number;
  retransmits: number;
  rtt_sum_us: number;
  rtt_count: number;
  active: number;
  datagrams: number;
}

interface Edge {
  cgroup: number;
  protocol: 'tcp' | 'udp';
  direction: string;
  peer: Peer;
  totals: EdgeTotals;
}

/**
 * A flow's connections established and not yet closed, without the iterator: the kernel counts both
 * at the same state changes (a flow that forget() dropped while a connection of it was open may see
 * its close alone).
 */
const openNow = (f: gen.TcpFlow): number => Math.max(0, f.opened - f.closed);

const zeroTotals = (): EdgeTotals => ({ connections: 0, failed: 0, bytes_sent: 0, bytes_received: 0, retransmits: 0, rtt_sum_us: 0, rtt_count: 0, active: 0, datagrams: 0 });

export class NetworkCollector extends KernelCollector<gen.ProgramName> implements CollectorInstance {
  private readonly ctx: CollectorContext;
  private readonly tcpFlows: TypedMap<gen.FlowKey, gen.TcpFlow>;
  private readonly udpFlows: TypedMap<gen.FlowKey, gen.UdpFlow>;
  private readonly listeners: TypedMap<gen.ListenKey, number>;
  private readonly dropCounts: TypedMap<gen.DropKey, number>;
  private readonly ring: RingReader;
  readonly dns: DnsTracker;
  private readonly dropReasons: Map<number, string> | undefined;
  private readonly snapshots: { at: number; edges: Map<string, Edge> }[] = [];
  /** ring records that did not decode */
  malformed = 0;
  private readonly budgets: TypedMap<number, gen.EventBudget>;

  constructor(ctx: CollectorContext, opts: { alternative?: string; dnsTimeoutMs?: number } = {}) {
    const { obj, parts } = loadAndAttach(NETWORK_SPEC, ctx, opts, (o) => ({
      tcpFlows: o.map(gen.maps.tcp_flows),
      udpFlows: o.map(gen.maps.udp_flows),
      listeners: o.map(gen.maps.listeners),
      dropCounts: o.map(gen.maps.drop_counts),
      ring: o.ring(gen.maps.net_events.name),
      budgets: o.map(gen.maps.event_budget),
    }));
    super('network', obj, { map: gen.maps.drops, kinds: gen.enums.periscope_drop });
    this.ctx = ctx;
    this.tcpFlows = parts.tcpFlows;
    this.udpFlows = parts.udpFlows;
    this.listeners = parts.listeners;
    this.dropCounts = parts.dropCounts;
    this.ring = parts.ring;
    this.budgets = parts.budgets;
    this.dns = new DnsTracker(ctx, { timeoutMs: opts.dnsTimeoutMs ?? 5_000 });
    this.dropReasons = kernelEnum('skb_drop_reason');
  }

  /** The kernel's name of a drop reason, as a label: "netfilter_drop", "no_socket" ...; "unknown" where the kernel gives none. */
  dropReason(n: number): string {
    if (!this.dropReasons) return 'unknown';
    const name = this.dropReasons.get(n);
    return name ? name.replace(/^SKB_DROP_REASON_/, '').toLowerCase() : `reason_${n}`;
  }

  override poll(): number {
    const n = this.ring.drain((r) => this.record(r.view, r.offset, r.size));
    this.dns.expire(Number(native().monotonicNs()));
    const now = Date.now();
    const last = this.snapshots.at(-1);
    if (!last || now - last.at >= EDGE_SNAPSHOT_MS) {
      this.snapshots.push({ at: now, edges: this.edges() });
      if (this.snapshots.length > EDGE_SNAPSHOTS) this.snapshots.shift();
    }
    return n;
  }

  private record(view: DataView, offset: number, size: number): void {
    const kind = view.getUint32(offset, true);
    const at = offset + 8;
    const rec = gen.enums.net_record;
    if (kind === rec.REC_TCP && size >= 8 + gen.TcpEventCodec.size) this.tcpEvent(gen.TcpEventCodec.decode(view, at));
    else if (kind === rec.REC_DNS && size >= 8 + gen.DnsPacketCodec.size) {
      const p = gen.DnsPacketCodec.decode(view, at);
      const start = view.byteOffset + at + gen.DnsPacketCodec.size;
      const length = Math.min(p.length, size - 8 - gen.DnsPacketCodec.size);
      this.dns.packet(p, new Uint8Array(view.buffer, start, length));
    } else if (kind === rec.REC_DROP && size >= 8 + gen.DropEventCodec.size) this.dropEvent(gen.DropEventCodec.decode(view, at));
    else this.malformed++;
  }

  private tcpEvent(e: gen.TcpEvent): void {
    const K = gen.enums.tcp_event_kind;
    const type = e.kind === K.TCP_EV_OPEN ? 'tcp_open' : e.kind === K.TCP_EV_CLOSE ? 'tcp_close' : 'tcp_fail';
    const nat = e.nat_port ? { addr: wordsToAddr(e.nat_addr), port: e.nat_port } : undefined;
    const fields: Record<string, unknown> = {
      direction: DIRECTIONS[e.direction] ?? 'outbound',
      pid: e.pid || null,
      comm: e.comm || null,
      local_addr: wordsToAddr(e.local_addr),
      local_port: e.local_port,
    };
    if (type === 'tcp_close') {
      Object.assign(fields, {
        bytes_sent: e.bytes_sent,
        bytes_received: e.bytes_received,
        retransmits: e.retransmits,
        rtt_us: e.srtt_us,
        duration_ms: e.duration_ns / 1e6,
      });
    } else if (type === 'tcp_fail') {
      Object.assign(fields, { reason: RESULTS[e.result] ?? 'other', retransmits: e.retransmits, duration_ms: e.duration_ns / 1e6 });
    }
    this.ctx.emit({
      type,
      time: this.ctx.wallTime(e.time_ns),
      subject: cgroupSubject(e.cgroup_id),
      peer: { addr: wordsToAddr(e.peer_addr), port: e.peer_port, ...(nat ? { nat } : {}) },
      ...fields,
    });
  }

  private dropEvent(e: gen.DropEvent): void {
    this.ctx.emit({
      type: 'packet_drop',
      time: this.ctx.wallTime(e.time_ns),
      subject: e.cgroup_id ? cgroupSubject(e.cgroup_id) : netnsSubject(e.netns),
      netns: e.netns,
      reason: this.dropReason(e.reason),
      protocol: PROTOCOLS[e.proto] ?? (e.proto ? String(e.proto) : null),
      src_addr: wordsToAddr(e.saddr) || null,
      src_port: e.sport || null,
      dst_addr: wordsToAddr(e.daddr) || null,
      dst_port: e.dport || null,
    });
  }

  /** Events not sent past their budget, and DNS queries that found no room to wait for an answer. */
  override drops(): DropCounts {
    const base = super.drops();
    let sampled = 0;
    for (const [, b] of this.budgets.entries()) sampled += b.skipped;
    return { events: base.events + this.dns.lost.pending + this.malformed, aggregates: base.aggregates + this.dns.lost.series, sampled };
  }

  /** Whether open connections are read live (the iterator is attached); else they count when they close. */
  get readsOpenConnections(): boolean {
    return this.obj.choice.chosen === ALT_LIVE;
  }

  /** Open connections as the iterator reads them now; null where the alternative has no iterator. */
  liveConnections(): gen.LiveConn[] | null {
    if (!this.readsOpenConnections) return null;
    const buf = this.obj.iterRead('live_conns', LIVE_READ_LIMIT);
    const size = gen.LiveConnCodec.size;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const out: gen.LiveConn[] = [];
    for (let off = 0; off + size <= buf.length; off += size) out.push(gen.LiveConnCodec.decode(view, off));
    return out;
  }

  read(): Readings {
    // totals of ended connections first, then the open ones: a connection that ends in between is
    // missed once rather than counted twice (a counter would keep an over-count)
    const flows = [...this.tcpFlows.entries()];
    const live = this.liveConnections();
    const conns = new Rows();
    const active = new Rows();
    const sent = new Rows();
    const received = new Rows();
    const retrans = new Rows();
    const resets = new Rows();
    const duration = new HistRows();
    const rtt = new HistRows();
    for (const [k, f] of flows) {
      const subject = cgroupSubject(k.cgroup_id);
      const peer = flowPeer(k);
      const direction = DIRECTIONS[k.direction] ?? 'outbound';
      conns.add(subject, peer, { direction, result: 'success' }, f.opened);
      f.failed.forEach((n, r) => {
        if (n > 0 && r !== R.RESULT_SUCCESS) conns.add(subject, peer, { direction, result: RESULTS[r] ?? 'other' }, n);
      });
      sent.add(subject, peer, undefined, f.bytes_sent);
      received.add(subject, peer, undefined, f.bytes_received);
      retrans.add(subject, peer, undefined, f.retransmits);
      resets.add(subject, peer, { direction: 'sent' }, f.resets_sent);
      resets.add(subject, peer, { direction: 'received' }, f.resets_received);
      duration.add(subject, peer, f.duration_slots, f.duration_sum_us / 1e6);
      rtt.add(subject, peer, f.rtt_slots, f.rtt_sum_us / 1e6);
      if (!live && openNow(f) > 0) active.add(subject, peer, undefined, openNow(f));
    }
    for (const c of live ?? []) {
      const subject = cgroupSubject(c.key.cgroup_id);
      const peer = flowPeer(c.key);
      sent.add(subject, peer, undefined, c.bytes_sent);
      received.add(subject, peer, undefined, c.bytes_received);
      retrans.add(subject, peer, undefined, c.retransmits);
      active.add(subject, peer, undefined, 1);
    }
    const udpBytes = new Rows();
    const udpDatagrams = new Rows();
    for (const [k, f] of this.udpFlows.entries()) {
      const subject = cgroupSubject(k.cgroup_id);
      const peer = flowPeer(k);
      udpBytes.add(subject, peer, { direction: 'sent' }, f.bytes_sent);
      udpBytes.add(subject, peer, { direction: 'received' }, f.bytes_received);
      udpDatagrams.add(subject, peer, { direction: 'sent' }, f.datagrams_sent);
      udpDatagrams.add(subject, peer, { direction: 'received' }, f.datagrams_received);
    }
    const listening = new Rows();
    for (const [k, n] of this.listeners.entries()) {
      if (n > 0) listening.add(cgroupSubject(k.cgroup_id), undefined, { address: wordsToAddr(k.addr) || '::', port: String(k.port) }, n);
    }
    const drops = new Rows();
    for (const [k, n] of this.dropCounts.entries()) drops.add(netnsSubject(k.netns), undefined, { reason: this.dropReason(k.reason) }, n);
    return new Map<string, Sample[]>([
      ['periscope_tcp_connections_total', conns.samples()],
      ['periscope_tcp_active_connections', active.samples()],
      ['periscope_tcp_connection_duration_seconds', duration.samples(DURATION_BUCKETS)],
      ['periscope_tcp_bytes_sent_total', sent.samples()],
      ['periscope_tcp_bytes_received_total', received.samples()],
      ['periscope_tcp_retransmits_total', retrans.samples()],
      ['periscope_tcp_resets_total', resets.samples()],
      ['periscope_tcp_rtt_seconds', rtt.samples(RTT_BUCKETS)],
      ['periscope_tcp_listening_sockets', listening.samples()],
      ['periscope_udp_bytes_total', udpBytes.samples()],
      ['periscope_udp_datagrams_total', udpDatagrams.samples()],
      ['periscope_packet_drops_total', drops.samples()],
      ['periscope_dns_requests_total', this.dns.requestRows()],
      ['periscope_dns_latency_seconds', this.dns.latencyRows()],
    ]);
  }

  /** Every flow's totals now, keyed by flow. */
  edges(): Map<string, Edge> {
    const out = new Map<string, Edge>();
    // ended connections first, then the open ones, as read() does
    const flows = [...this.tcpFlows.entries()];
    const live = this.liveConnections();
    const edge = (cgroup: number, protocol: 'tcp' | 'udp', direction: string, peer: Peer): EdgeTotals => {
      const key = `${cgroup}|${protocol}|${direction}|${peer.addr}|${peer.port ?? ''}|${peer.nat?.addr ?? ''}|${peer.nat?.port ?? ''}`;
      let e = out.get(key);
      if (!e) out.set(key, (e = { cgroup, protocol, direction, peer, totals: zeroTotals() }));
      return e.totals;
    };
    for (const [k, f] of flows) {
      const t = edge(k.cgroup_id, 'tcp', DIRECTIONS[k.direction] ?? 'outbound', flowPeer(k));
      t.connections += f.opened;
      t.failed += f.failed.reduce((a, b) => a + b, 0);
      t.bytes_sent += f.bytes_sent;
      t.bytes_received += f.bytes_received;
      t.retransmits += f.retransmits;
      t.rtt_sum_us += f.rtt_sum_us;
      t.rtt_count += f.closed;
      if (!live) t.active += openNow(f);
    }
    for (const c of live ?? []) {
      const t = edge(c.key.cgroup_id, 'tcp', DIRECTIONS[c.key.direction] ?? 'outbound', flowPeer(c.key));
      t.bytes_sent += c.bytes_sent;
      t.bytes_received += c.bytes_received;
      t.retransmits += c.retransmits;
      t.rtt_sum_us += c.srtt_us;
      t.rtt_count += 1;
      t.active += 1;
    }
    for (const [k, f] of this.udpFlows.entries()) {
      const t = edge(k.cgroup_id, 'udp', DIRECTIONS[k.direction] ?? 'outbound', flowPeer(k));
      t.bytes_sent += f.bytes_sent;
      t.bytes_received += f.bytes_received;
      t.datagrams += f.datagrams_sent + f.datagrams_received;
    }
    return out;
  }

  /**
   * The service map over the last `windowMs`: every edge (source workload → peer) with what flowed on
   * it in the window, both ends named. Totals since the agent started where it is younger than the
   * window; the window is at most EDGE_SNAPSHOTS snapshots long.
   */
  serviceMap(windowMs: number, names: Names, limit: number): unknown {
    const now = Date.now();
    const base = [...this.snapshots].reverse().find((s) => s.at <= now - windowMs) ?? undefined;
    const current = this.edges();
    const grouped = new Map<string, Record<string, unknown> & { totals: EdgeTotals }>();
    for (const [key, e] of current) {
      const before = base?.edges.get(key)?.totals;
      const d = zeroTotals();
      for (const f of Object.keys(d) as (keyof EdgeTotals)[]) d[f] = e.totals[f] - (f === 'active' ? 0 : (before?.[f] ?? 0));
      if (d.connections === 0 && d.failed === 0 && d.bytes_sent === 0 && d.bytes_received === 0 && d.active === 0 && d.datagrams === 0) continue;
      const s = names.subject(cgroupSubject(e.cgroup));
      const source = { namespace: s.namespace ?? '', pod: s.pod ?? '', workload_kind: s.workload_kind ?? '', workload: s.workload ?? '', node: s.node ?? '', cgroup: s.pod ? '' : (s.cgroup ?? '') };
      const p = names.peer(e.peer);
      const destination = { kind: p.peer_kind, namespace: p.peer_namespace, workload: p.peer_workload, name: p.peer, port: e.peer.port ?? null };
      const backend = e.peer.nat ? (({ peer_kind, peer_namespace, peer_workload, peer }) => ({ kind: peer_kind, namespace: peer_namespace, workload: peer_workload, name: peer, port: e.peer.nat?.port ?? 0 }))(names.peer(e.peer.nat)) : null;
      const gkey = JSON.stringify([source, destination, backend, e.protocol, e.direction]);
      const g = grouped.get(gkey) ?? { source, destination, backend, protocol: e.protocol, direction: e.direction, totals: zeroTotals() };
      for (const f of Object.keys(d) as (keyof EdgeTotals)[]) g.totals[f] += d[f];
      grouped.set(gkey, g);
    }
    const edges = [...grouped.values()]
      .map(({ totals, ...rest }) => ({
        ...rest,
        connections: totals.connections,
        failed: totals.failed,
        active: totals.active,
        bytes_sent: totals.bytes_sent,
        bytes_received: totals.bytes_received,
        retransmits: totals.retransmits,
        datagrams: totals.datagrams,
        rtt_seconds: totals.rtt_count ? totals.rtt_sum_us / totals.rtt_count / 1e6 : null,
      }))
      .sort((a, b) => b.bytes_sent + b.bytes_received - (a.bytes_sent + a.bytes_received));
    return {
      window_seconds: Math.round((base ? now - base.at : windowMs) / 1000),
      since: new Date(base ? base.at : now - windowMs).toISOString(),
      complete: base !== undefined,
      edges: edges.slice(0, limit),
      truncated: edges.length > limit,
    };
  }

  override subjects(): Iterable<Subject> {
    const ids = new Set<number>();
    for (const k of this.tcpFlows.keys()) ids.add(k.cgroup_id);
    for (const k of this.udpFlows.keys()) ids.add(k.cgroup_id);
    for (const k of this.listeners.keys()) ids.add(k.cgroup_id);
    for (const id of this.dns.cgroups()) ids.add(id);
    return [...ids].map(cgroupSubject);
  }

  override forget(subjects: readonly Subject[]): void {
    const gone = new Set(subjects.filter((s) => s.kind === 'cgroup').map((s) => s.id));
    if (gone.size === 0) return;
    for (const k of this.tcpFlows.keys()) if (gone.has(k.cgroup_id)) this.tcpFlows.delete(k);
    for (const k of this.udpFlows.keys()) if (gone.has(k.cgroup_id)) this.udpFlows.delete(k);
    for (const k of this.listeners.keys()) if (gone.has(k.cgroup_id)) this.listeners.delete(k);
    this.dns.forget(gone);
  }
}

const WINDOW = /^(\d{1,9})(s|m)?$/;

/** `5m`, `300s` or `300` (seconds) → ms, at most the snapshots kept. */
export function parseWindow(v: string | null): number {
  if (v === null || v === '') return 5 * 60_000;
  const m = WINDOW.exec(v);
  if (!m) throw new BadRequest(`window must be like 5m, 300s or 300, not ${JSON.stringify(v.slice(0, 40))}`, `at most ${(EDGE_SNAPSHOTS * EDGE_SNAPSHOT_MS) / 60_000}m`);
  const ms = Number(m[1]) * (m[2] === 'm' ? 60_000 : 1000);
  return Math.min(Math.max(ms, 1000), EDGE_SNAPSHOTS * EDGE_SNAPSHOT_MS);
}

const peer = true;
const METRICS: readonly MetricDef[] = [
  { type: 'counter', name: 'periscope_tcp_connections_total', subject: 'cgroup', peer, labels: ['direction', 'result'], help: 'TCP connections by direction (outbound: connected by the cgroup; inbound: accepted) and result (success, or why a connect failed: refused, timeout, reset, unreachable, aborted, other).' },
  { type: 'gauge', name: 'periscope_tcp_active_connections', subject: 'cgroup', peer, help: 'Established TCP connections open now.' },
  { type: 'histogram', name: 'periscope_tcp_connection_duration_seconds', subject: 'cgroup', peer, buckets: DURATION_BUCKETS, help: 'How long TCP connections were established, counted when they close (log2 buckets from 2 ms).' },
  { type: 'counter', name: 'periscope_tcp_bytes_sent_total', subject: 'cgroup', peer, help: 'TCP payload bytes the cgroup wrote that the peer acknowledged, open connections included (tp_btf-no-iter: counted when they close).' },
  { type: 'counter', name: 'periscope_tcp_bytes_received_total', subject: 'cgroup', peer, help: 'TCP payload bytes the cgroup received in order, open connections included (tp_btf-no-iter: counted when they close).' },
  { type: 'counter', name: 'periscope_tcp_retransmits_total', subject: 'cgroup', peer, help: 'TCP segments retransmitted (as the kernel counts RetransSegs), open connections included (tp_btf-no-iter: counted when they close).' },
  { type: 'counter', name: 'periscope_tcp_resets_total', subject: 'cgroup', peer, labels: ['direction'], help: 'TCP resets sent and received on the cgroup\'s connections.' },
  { type: 'histogram', name: 'periscope_tcp_rtt_seconds', subject: 'cgroup', peer, buckets: RTT_BUCKETS, help: 'Smoothed round-trip time of TCP connections, taken when they close (log2 buckets from 2 us).' },
  { type: 'gauge', name: 'periscope_tcp_listening_sockets', subject: 'cgroup', labels: ['address', 'port'], help: 'TCP sockets listening, by local address and port.' },
  { type: 'counter', name: 'periscope_udp_bytes_total', subject: 'cgroup', peer, labels: ['direction'], help: 'UDP payload bytes sent and received.' },
  { type: 'counter', name: 'periscope_udp_datagrams_total', subject: 'cgroup', peer, labels: ['direction'], help: 'UDP datagrams sent and received.' },
  { type: 'counter', name: 'periscope_packet_drops_total', subject: 'netns', labels: ['reason'], help: 'Packets the kernel dropped in the pod\'s network namespace, by the kernel\'s drop reason.' },
  { type: 'counter', name: 'periscope_dns_requests_total', subject: 'cgroup', peer, labels: ['qtype', 'rcode'], help: 'DNS queries the cgroup sent, by query type and response code (TIMEOUT: no answer in time), the peer being the server.' },
  { type: 'histogram', name: 'periscope_dns_latency_seconds', subject: 'cgroup', peer, buckets: DNS_LATENCY_BUCKETS, help: 'Time from a DNS query to its answer, seen from the querying cgroup.' },
];

export const network = defineCollector({
  name: 'network',
  help: "TCP connections, bytes, retransmits, resets and RTT per flow; UDP flows; DNS from packets; drops; the service map (on tp_btf-no-iter, for kernels that refuse BPF iterators, open connections' bytes, retransmits and RTT count when they close)",
  spec: NETWORK_SPEC,
  metrics: METRICS,
  events: [
    { type: 'tcp_open', help: 'a TCP connection was established (outbound: connected; inbound: accepted), with both ends (opens and closes: at most 2000 per CPU per second; the counts are exact)', trace: 'tcp' },
    { type: 'tcp_close', help: 'a TCP connection closed: bytes both ways, retransmits, RTT and duration', trace: 'tcp' },
    { type: 'tcp_fail', help: 'a TCP connect failed: refused, timeout, reset, unreachable, aborted or other (at most 500 per CPU per second)', trace: 'tcp' },
    { type: 'dns', help: 'a DNS answer (or a timeout) seen by the querying pod: name, type, rcode, answers, latency', trace: 'dns' },
    { type: 'packet_drop', help: 'a packet the kernel dropped, with its reason (at most 50 per CPU per second; the counts are exact)', trace: 'drop' },
  ],
  traces: [
    {
      name: 'tcp',
      help: 'TCP connections opened, closed and failed',
      columns: [
        TIME,
        WHO,
        { header: 'TYPE', width: 9, show: [['text', 'type']] },
        { header: 'DIRECTION', width: 9, show: [['text', 'direction']] },
        { header: 'PEER', width: 36, show: [['text', 'peer'], ['endpoint', 'peer_addr', 'peer_port']] },
        { header: 'SENT', width: 7, right: true, show: [['bytes', 'bytes_sent']] },
        { header: 'RECV', width: 7, right: true, show: [['bytes', 'bytes_received']] },
        { header: 'DURATION', width: 8, right: true, show: [['ms', 'duration_ms']] },
        { header: 'RTT', width: 8, right: true, show: [['us', 'rtt_us']] },
        { header: 'REASON', width: 12, show: [['text', 'reason']] },
      ],
    },
    {
      name: 'dns',
      help: 'DNS queries and their answers',
      columns: [
        TIME,
        WHO,
        { header: 'QNAME', width: 40, show: [['text', 'qname']] },
        { header: 'QTYPE', width: 6, show: [['text', 'qtype']] },
        { header: 'RCODE', width: 8, show: [['text', 'rcode']] },
        { header: 'LATENCY', width: 8, right: true, show: [['ms', 'latency_ms'], ['flag', 'timeout']] },
        { header: 'ANSWERS', width: 100, show: [['list', 'answers']] },
      ],
    },
    {
      name: 'drop',
      help: 'packets the kernel dropped, and why',
      columns: [
        TIME,
        WHO,
        { header: 'REASON', width: 28, show: [['text', 'reason']] },
        { header: 'PROTOCOL', width: 8, show: [['text', 'protocol']] },
        { header: 'SOURCE', width: 46, show: [['endpoint', 'src_addr', 'src_port']] },
        { header: 'DESTINATION', width: 46, show: [['endpoint', 'dst_addr', 'dst_port']] },
      ],
    },
  ],
  routes: [
    {
      path: 'network/edges',
      help: 'the service map: edges (source workload → pod, Service, node or external peer) with connections, bytes, retransmits and RTT over ?window= (default 5m, at most 16m; on tp_btf-no-iter, open connections count when they close); ?limit= edges (default 1000)',
      handler: (c: NetworkCollector, q, names) => {
        const limit = Math.min(Math.max(Number(q.get('limit') ?? 1000) || 1000, 1), 10_000);
        return c.serviceMap(parseWindow(q.get('window')), names, limit);
      },
    },
    {
      path: 'network/dns',
      help: 'DNS names that failed (NXDOMAIN, SERVFAIL, timeouts ...) per pod, most recent first',
      handler: (c: NetworkCollector, _q, names) => c.dns.failures(names),
    },
  ],
  start: (ctx) => new NetworkCollector(ctx),
});

