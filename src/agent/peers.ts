/**
 * Names the other end of a flow, once for every collector: an address becomes a pod (of this node or
 * another), a Service (its ClusterIP), a node, or an external host — by the DNS name whose answer
 * gave the address when a collector saw one (`api.stripe.com`), else by the address itself. Loopback
 * addresses are the subject's own host or pod ("local").
 *
 * Names learned from DNS are kept in a bounded table (oldest out first) until their TTL (at least a
 * minute, at most a day) runs out, so a name stays while connections made from its answer go on.
 */
import { isIP } from 'node:net';
import { PEER_LABELS, type Peer } from '../collectors/contract.js';

export type PeerLabels = Record<(typeof PEER_LABELS)[number], string>;

/** What the Kubernetes inventory knows of an address. */
export interface PeerDirectory {
  peer(ip: string): { kind: 'pod' | 'service' | 'node'; namespace: string; name: string; workload: string } | undefined;
}

export interface PeerNamerOptions {
  directory?: PeerDirectory;
  /** most names learned from DNS answers kept */
  maxNames?: number;
  now?: () => number;
}

const MIN_TTL_S = 60;
const MAX_TTL_S = 86_400;

/** The address without an IPv4-mapped IPv6 prefix, so ::ffff:10.0.0.1 and 10.0.0.1 are one peer. */
export function plainAddr(addr: string): string {
  return addr.startsWith('::ffff:') && isIP(addr.slice(7)) === 4 ? addr.slice(7) : addr;
}

export function isLoopback(addr: string): boolean {
  const a = plainAddr(addr);
  return a === '::1' || a.startsWith('127.');
}

export class PeerNamer {
  private readonly directory: PeerDirectory | undefined;
  private readonly learned = new Map<string, { name: string; expires: number }>();
  private readonly maxNames: number;
  private readonly now: () => number;
  /** names forgotten because the table was full */
  evicted = 0;

  constructor(opts: PeerNamerOptions = {}) {
    this.directory = opts.directory;
    this.maxNames = opts.maxNames ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** A DNS answer: `addr` is `name` for ttl seconds. */
  learn(addr: string, name: string, ttlSeconds: number): void {
    const a = plainAddr(addr);
    if (!isIP(a) || !name) return;
    const ttl = Math.min(Math.max(Number.isFinite(ttlSeconds) ? ttlSeconds : 0, MIN_TTL_S), MAX_TTL_S);
    this.learned.delete(a); // re-insert: the newest answer is the last to go
    this.learned.set(a, { name: name.slice(0, 253), expires: this.now() + ttl * 1000 });
    while (this.learned.size > this.maxNames) {
      this.learned.delete(this.learned.keys().next().value!);
      this.evicted++;
    }
  }

  /** The DNS name an address was learned under, if it is still fresh. */
  dnsName(addr: string): string | undefined {
    const a = plainAddr(addr);
    const e = this.learned.get(a);
    if (!e) return undefined;
    if (e.expires < this.now()) {
      this.learned.delete(a);
      return undefined;
    }
    return e.name;
  }

  get namesKnown(): number {
    return this.learned.size;
  }

  /** The labels of a peer. */
  labels(p: Peer): PeerLabels {
    const addr = plainAddr(p.addr);
    const port = p.port ? String(p.port) : '';
    if (isLoopback(addr)) return { peer_kind: 'local', peer_namespace: '', peer_workload: '', peer: addr, peer_port: port };
    const known = this.directory?.peer(addr);
    if (known) return { peer_kind: known.kind, peer_namespace: known.namespace, peer_workload: known.workload, peer: known.name, peer_port: port };
    return { peer_kind: 'external', peer_namespace: '', peer_workload: '', peer: this.dnsName(addr) ?? addr, peer_port: port };
  }

  /** The fields an event about a peer carries. */
  eventFields(p: Peer): Record<string, unknown> {
    const l = this.labels(p);
    const out: Record<string, unknown> = {
      peer_addr: plainAddr(p.addr),
      peer_port: p.port ?? null,
      peer_kind: l.peer_kind,
      peer_namespace: l.peer_namespace,
      peer_workload: l.peer_workload,
      peer: l.peer,
    };
    if (p.nat) {
      const b = this.labels({ addr: p.nat.addr, port: p.nat.port });
      Object.assign(out, { backend_addr: plainAddr(p.nat.addr), backend_port: p.nat.port, backend_kind: b.peer_kind, backend_namespace: b.peer_namespace, backend: b.peer });
    }
    return out;
  }
}

/**
 * Bounds the peers named per source series: the first `max` peers a source is seen with keep their
 * names, the rest fold into peer="other". A peer not seen for `idleMs` frees its place.
 */
export class PeerFolder {
  private readonly sources = new Map<string, Map<string, number>>();
  /** rows folded at the last fold pass, by metric */
  readonly folded = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly idleMs: number,
  ) {}

  /** Whether this peer of this source keeps its name (and marks it seen now). */
  named(source: string, peer: string, now: number): boolean {
    let peers = this.sources.get(source);
    if (!peers) this.sources.set(source, (peers = new Map<string, number>()));
    if (peers.has(peer) || peers.size < this.max) {
      peers.set(peer, now);
      return true;
    }
    return false;
  }

  /** Frees the places of peers not seen for idleMs, and of sources with none left. */
  expire(now: number): void {
    for (const [source, peers] of this.sources) {
      for (const [peer, seen] of peers) if (now - seen >= this.idleMs) peers.delete(peer);
      if (peers.size === 0) this.sources.delete(source);
    }
  }
}

export const OTHER_PEER: PeerLabels = { peer_kind: 'other', peer_namespace: '', peer_workload: '', peer: 'other', peer_port: '' };
