/**
 * DNS as its clients see it, from the messages the kernel side captured: a query a cgroup sends waits
 * for the answer with the same id, port and server; the pair gives the latency, the rcode and the
 * answers (whose addresses then name the peers they lead to). A query with no answer within the
 * timeout counts as TIMEOUT. Every table is bounded: pending queries, counters, and the failing names
 * kept for the API; what does not fit is counted.
 */
import { cgroupSubject, type CollectorContext, type Names, type Sample } from '../contract.js';
import { wordsToAddr } from './addr.js';
import { parseDns } from './dns.js';
import { type DnsPacket } from './network.gen.js';

export const DNS_LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

interface Pending {
  timeNs: number;
  cgroup: number;
  server: string;
  serverPort: number;
  qname: string;
  qtype: string;
}

interface Count {
  cgroup: number;
  server: string;
  qtype: string;
  rcode: string;
  n: number;
}

interface Latency {
  cgroup: number;
  server: string;
  cumulative: number[];
  count: number;
  sum: number;
}

interface Failure {
  cgroup: number;
  qname: string;
  qtype: string;
  rcode: string;
  count: number;
  last: string;
}

export interface DnsTrackerOptions {
  timeoutMs: number;
  maxPending?: number;
  maxSeries?: number;
  maxFailures?: number;
}

export class DnsTracker {
  private readonly pending = new Map<string, Pending>();
  private readonly counts = new Map<string, Count>();
  private readonly latency = new Map<string, Latency>();
  private readonly failing = new Map<string, Failure>();
  private readonly timeoutNs: number;
  private readonly maxPending: number;
  private readonly maxSeries: number;
  private readonly maxFailures: number;
  /** what could not be kept or used: queries beyond maxPending, answers to no query we saw,
   * messages that do not parse, rows beyond maxSeries */
  readonly lost = { pending: 0, unmatched: 0, malformed: 0, series: 0 };

  constructor(
    private readonly ctx: Pick<CollectorContext, 'emit' | 'wallTime' | 'learnName'>,
    opts: DnsTrackerOptions,
  ) {
    this.timeoutNs = opts.timeoutMs * 1e6;
    this.maxPending = opts.maxPending ?? 10_000;
    this.maxSeries = opts.maxSeries ?? 10_000;
    this.maxFailures = opts.maxFailures ?? 1_000;
  }

  /** One captured message: a query leaving (egress) or an answer arriving. */
  packet(p: DnsPacket, bytes: Uint8Array): void {
    const msg = parseDns(bytes);
    if ('error' in msg) {
      this.lost.malformed++;
      return;
    }
    const local = wordsToAddr(p.local_addr);
    const server = wordsToAddr(p.peer_addr);
    const key = `${p.cgroup_id}|${local}|${p.local_port}|${server}|${p.peer_port}|${msg.id}`;
    if (p.egress && !msg.response) {
      if (this.pending.has(key)) return; // a retry with the same id: latency from the first
      if (this.pending.size >= this.maxPending) {
        this.lost.pending++;
        return;
      }
      this.pending.set(key, { timeNs: p.time_ns, cgroup: p.cgroup_id, server, serverPort: p.peer_port, qname: msg.qname, qtype: msg.qtype });
      return;
    }
    if (p.egress || !msg.response) return;
    const q = this.pending.get(key);
    if (!q) {
      this.lost.unmatched++;
      return;
    }
    this.pending.delete(key);
    const seconds = Math.max(0, (p.time_ns - q.timeNs) / 1e9);
    this.count(q, msg.rcode, seconds);
    for (const a of msg.answers) if ((a.type === 'A' || a.type === 'AAAA') && a.data) this.ctx.learnName(a.data, q.qname, a.ttl);
    this.ctx.emit({
      type: 'dns',
      time: this.ctx.wallTime(p.time_ns),
      subject: cgroupSubject(q.cgroup),
      peer: { addr: server, port: q.serverPort },
      qname: q.qname,
      qtype: q.qtype,
      rcode: msg.rcode,
      answers: msg.answers.map((a) => a.data || a.type),
      latency_ms: seconds * 1000,
      timeout: false,
    });
  }

  /** Queries older than the timeout are answered by nobody: TIMEOUT. */
  expire(nowNs: number): void {
    for (const [key, q] of this.pending) {
      if (nowNs - q.timeNs < this.timeoutNs) continue;
      this.pending.delete(key);
      this.count(q, 'TIMEOUT', undefined);
      this.ctx.emit({
        type: 'dns',
        time: this.ctx.wallTime(q.timeNs),
        subject: cgroupSubject(q.cgroup),
        peer: { addr: q.server, port: q.serverPort },
        qname: q.qname,
        qtype: q.qtype,
        rcode: 'TIMEOUT',
        answers: [],
        latency_ms: null,
        timeout: true,
      });
    }
  }

  private count(q: Pending, rcode: string, seconds: number | undefined): void {
    const ck = `${q.cgroup}|${q.server}|${q.qtype}|${rcode}`;
    const c = this.counts.get(ck);
    if (c) c.n++;
    else if (this.counts.size < this.maxSeries) this.counts.set(ck, { cgroup: q.cgroup, server: q.server, qtype: q.qtype, rcode, n: 1 });
    else this.lost.series++;
    if (seconds !== undefined) {
      const lk = `${q.cgroup}|${q.server}`;
      let l = this.latency.get(lk);
      if (!l && this.latency.size < this.maxSeries) this.latency.set(lk, (l = { cgroup: q.cgroup, server: q.server, cumulative: DNS_LATENCY_BUCKETS.map(() => 0), count: 0, sum: 0 }));
      if (l) {
        DNS_LATENCY_BUCKETS.forEach((b, i) => {
          if (seconds <= b) l.cumulative[i]!++;
        });
        l.count++;
        l.sum += seconds;
      } else this.lost.series++;
    }
    if (rcode !== 'NOERROR') {
      const fk = `${q.cgroup}|${q.qname}|${q.qtype}|${rcode}`;
      const f = this.failing.get(fk) ?? { cgroup: q.cgroup, qname: q.qname, qtype: q.qtype, rcode, count: 0, last: '' };
      f.count++;
      f.last = new Date().toISOString();
      this.failing.delete(fk); // most recent last
      this.failing.set(fk, f);
      if (this.failing.size > this.maxFailures) this.failing.delete(this.failing.keys().next().value!);
    }
  }

  requestRows(): Sample[] {
    return [...this.counts.values()].map((c) => ({ subject: cgroupSubject(c.cgroup), peer: { addr: c.server, port: 53 }, labels: { qtype: c.qtype, rcode: c.rcode }, value: c.n }));
  }

  latencyRows(): Sample[] {
    return [...this.latency.values()].map((l) => ({
      subject: cgroupSubject(l.cgroup),
      peer: { addr: l.server, port: 53 },
      value: { bounds: DNS_LATENCY_BUCKETS, cumulative: [...l.cumulative], count: l.count, sum: l.sum },
    }));
  }

  /** Failing names, most recent first, named by pod. */
  failures(names: Names): unknown {
    return {
      failures: [...this.failing.values()].reverse().map((f) => {
        const s = names.subject(cgroupSubject(f.cgroup));
        return { namespace: s.namespace ?? '', pod: s.pod ?? '', workload: s.workload ?? '', cgroup: s.cgroup ?? '', qname: f.qname, qtype: f.qtype, rcode: f.rcode, count: f.count, last: f.last };
      }),
      pending: this.pending.size,
      lost: this.lost,
    };
  }

  cgroups(): Iterable<number> {
    const ids = new Set<number>();
    for (const c of this.counts.values()) ids.add(c.cgroup);
    for (const l of this.latency.values()) ids.add(l.cgroup);
    return ids;
  }

  forget(gone: ReadonlySet<number>): void {
    for (const m of [this.counts, this.latency, this.failing, this.pending] as Map<string, { cgroup: number }>[]) {
      for (const [k, v] of m) if (gone.has(v.cgroup)) m.delete(k);
    }
  }
}
