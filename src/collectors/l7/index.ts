/**
 * l7 collector: HTTP/1, HTTP/2, gRPC, PostgreSQL and Redis requests of the selected workloads, as
 * RED metrics per edge of the service map and events for the slow and the failed ones. It works only
 * on the workloads someone selected (`--l7-select`): the kernel half (capture.ts) ships payload
 * prefixes of the allowed cgroups' connections, and nothing of any other.
 *
 * Each chunk's cgroup is the subject (the process that made the system call) and the connection's
 * remote endpoint the peer, so the agent names the destination exactly as the network collector's
 * flows are named. A record is counted on the side that captured it: `side="client"` for the process
 * that sent the request (its peer being the server, with the port it listens on), `side="server"` for
 * the one that served it (its peer the client, without its ephemeral port). Where both ends are
 * selected, each request counts once per side; the service map's edges are the client side's series.
 *
 * Label values are bounded: HTTP routes are templates (`/users/{id}`), SQL statements are shapes
 * (literals as `?`), and per workload and kind at most `--l7-max-names` routes, shapes, commands and
 * gRPC methods keep their own series; the rest fold into `other`, counted in periscope_l7_folded_total.
 * The collector's rows are held in user space (at most MAX_ROWS; the rest are counted as lost
 * aggregates) until the agent drops a cgroup that is gone. Secrets never leave: the parsers drop
 * Authorization and Cookie headers, Redis AUTH arguments and SQL string literals, and `--l7-payload
 * shapes` keeps no payload text at all (events then show routes, shapes and command names only).
 */
import {
  cgroupSubject,
  defineCollector,
  type CollectorContext,
  type CollectorInstance,
  type CollectorStatus,
  type DropCounts,
  type HistogramValue,
  type MetricDef,
  type Peer,
  type Readings,
  type Sample,
  type Selected,
  type SettingDef,
  type Subject,
} from '../contract.js';
import { TIME, WHO } from '../../wire/table.js';
import { DEFAULT_CAPTURE_BYTES, DEFAULT_RING_BYTES, isPowerOfTwo, L7_SPEC, L7Capture, MAX_CAPTURE_BYTES, type CaptureRecord, type Chunk as CaptureChunk, type Endpoint } from './capture.js';
import { GRPC_CODES, L7Tracker, OTHER_ROUTE, RouteSet, type Chunk as ParserChunk, type L7Record, type L7Stats, type PayloadMode } from './protocols/index.js';
import { LruMap } from './protocols/lru.js';
import { HTTP_METHODS } from './protocols/http1.js';
import { type TlsStats } from './tls.js';

/** Request durations: 0.5 ms to 10 s. */
export const DURATION_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** rows (subject, peer, labels) kept at most across the collector's metrics */
export const MAX_ROWS = 50_000;
/** connections followed at once (the parsers' state); the least recently used is closed past it */
export const MAX_CONNECTIONS = 4096;
/** events sent at most per second; past it they are counted (the metrics stay exact) */
export const EVENTS_PER_SECOND = 100;
/** how often the selected processes are looked through for OpenSSL libraries to probe */
export const TLS_SCAN_MS = 5_000;
/** a connection that moved nothing for this long is closed (its close record was lost) */
const IDLE_CONNECTION_NS = 10n * 60n * 1_000_000_000n;
/** characters of a label value kept (a query shape can be long) */
const MAX_LABEL = 256;
/**
 * After the kernel says records wait (a quarter of the ring), they gather this long before the drain.
 * The agent's timer alone (100 ms busy, 400 ms idle) let a burst from idle (redis-benchmark -P 16)
 * fill 4 MiB before the first drain. 1 ms, not 5: the kernel wakes once per crossing of a quarter
 * ring, so there are few wakeups to merge, and beside a busy client on the agent's CPU the paced
 * nginx load's lossless rate went from 25,000 to 30,000 requests/s (BENCHMARKS.md).
 */
const WAKE_DRAIN_MS = 1;
/** characters of an event's request sample and error message */
const MAX_SAMPLE = 1024;
const MAX_MESSAGE = 256;
/** distinct Redis error prefixes kept per workload */
const MAX_ERROR_NAMES = 20;

// --- settings --------------------------------------------------------------------------------------

const numberIn = (v: string, min: number, max: number, what: string): string | undefined => {
  const n = Number(v);
  return /^\s*(\d+\.?\d*|\.\d+)\s*$/.test(v) && n >= min && n <= max ? undefined : `wants ${what} from ${min} to ${max}, not "${v}"`;
};
const wholeIn = (v: string, min: number, max: number): string | undefined =>
  /^\s*\d+\s*$/.test(v) && Number(v) >= min && Number(v) <= max ? undefined : `wants a whole number from ${min} to ${max}, not "${v}"`;

export const SETTINGS: readonly SettingDef[] = [
  { name: 'slow', value: 'SECONDS', default: '0.5', help: 'a request that takes longer is an event', check: (v) => numberIn(v, 0.0001, 3600, 'seconds') },
  {
    name: 'payload',
    value: 'samples|shapes',
    default: 'samples',
    help: 'what events may show: samples of request lines, queries and commands with secrets masked, or shapes only (routes, query shapes, command names: no payload text)',
    check: (v) => (v === 'samples' || v === 'shapes' ? undefined : `wants samples or shapes, not "${v}"`),
  },
  {
    name: 'max-names',
    value: 'N',
    default: '100',
    help: 'routes, query shapes, Redis commands and gRPC methods that keep series of their own per workload; the rest fold into "other"',
    check: (v) => wholeIn(v, 1, 10_000),
  },
  { name: 'capture-bytes', value: 'N', default: String(DEFAULT_CAPTURE_BYTES), help: `payload bytes captured of each system call (HTTP/2 connections: ${MAX_CAPTURE_BYTES}, or N if more)`, check: (v) => wholeIn(v, 64, MAX_CAPTURE_BYTES) },
  {
    name: 'ring-mib',
    value: 'N',
    default: String(DEFAULT_RING_BYTES >> 20),
    help: 'MiB of kernel memory for captured payload waiting to be parsed (a power of two); what does not fit is lost and counted (ring_full)',
    check: (v) => (wholeIn(v, 1, 1024) === undefined && isPowerOfTwo(Number(v)) ? undefined : `wants a power of two from 1 to 1024 (1, 2, 4, ...), not "${v}"`),
  },
];

export interface L7Options {
  /** take this alternative or none (tests) */
  alternative?: string;
  slowSeconds?: number;
  payload?: PayloadMode;
  maxNames?: number;
  captureBytes?: number;
  /** capture ring bytes (--l7-ring-mib) */
  ringBytes?: number;
}

/** The options from the collector's settings (ctx.settings, checked by the agent). */
export function optionsFrom(settings: Readonly<Record<string, string>> | undefined): L7Options {
  const s = settings ?? {};
  return {
    ...(s.slow !== undefined ? { slowSeconds: Number(s.slow) } : {}),
    ...(s.payload === 'samples' || s.payload === 'shapes' ? { payload: s.payload } : {}),
    ...(s['max-names'] !== undefined ? { maxNames: Number(s['max-names']) } : {}),
    ...(s['capture-bytes'] !== undefined ? { captureBytes: Number(s['capture-bytes']) } : {}),
    ...(s['ring-mib'] !== undefined ? { ringBytes: Number(s['ring-mib']) * (1 << 20) } : {}),
  };
}

// --- labels ----------------------------------------------------------------------------------------

const clipLabel = (s: string): string => (s.length > MAX_LABEL ? `${s.slice(0, MAX_LABEL - 1)}…` : s);
const clipText = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/** 2xx, 4xx ...; none (no response before the connection ended), reset, unknown (a response whose status was not seen). */
export function statusClass(statusCode: number | undefined, status: string): string {
  if (statusCode !== undefined && statusCode >= 100 && statusCode < 600) return `${Math.floor(statusCode / 100)}xx`;
  return status === 'none' || status === 'reset' ? status : 'unknown';
}

const OUTCOMES = new Set(['none', 'reset', 'unknown']);
const GRPC_NAMES = new Set<string>(GRPC_CODES);

/** A gRPC outcome as a label: its code name, the HTTP status where no grpc-status came, none, reset or unknown. */
export function grpcStatusLabel(status: string): string {
  return GRPC_NAMES.has(status) || OUTCOMES.has(status) || /^\d{3}$/.test(status) ? status : 'other';
}

/** An SQL or Redis outcome as the `error` label: empty for success, the SQLSTATE or error prefix, none or unknown. */
const errorLabel = (status: string): string => (status === 'ok' ? '' : status);

// --- rows ------------------------------------------------------------------------------------------

interface Row {
  subject: Subject;
  peer?: Peer;
  labels: Record<string, string>;
  value: number;
}

interface HistRow {
  subject: Subject;
  peer: Peer;
  labels: Record<string, string>;
  /** observations per bucket, the last one past the largest bound */
  slots: number[];
  sum: number;
}

/** Observes `n` requests that took `seconds` each (a run of a pipeline is observed in one call). */
function observeIn(r: HistRow, seconds: number, n = 1): void {
  let i = 0;
  while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
  r.slots[i] = (r.slots[i] ?? 0) + n;
  r.sum += n === 1 ? seconds : seconds * n;
}

/**
 * The rows an edge's last record went to, and what decided them: a record of the same protocol,
 * names and outcome (the run of a pipeline, a keep-alive client's repeated request) goes to the same
 * rows without its labels made again. Valid while `gen` is the collector's (select and forget move it).
 */
interface LastRows {
  gen: number;
  protocol: string;
  a: unknown;
  b: unknown;
  c: unknown;
  d: unknown;
  count: Row;
  hist: HistRow | undefined;
}

/** What decides a record's rows, beside its edge: the names and outcome its labels are made of. */
function inputsOf(r: L7Record): [unknown, unknown, unknown, unknown] {
  switch (r.protocol) {
    case 'http1':
    case 'http2':
      return [r.method, r.route, r.statusCode, r.status];
    case 'grpc':
      return [r.service, r.method, r.status, undefined];
    case 'postgres':
      return [r.command, r.shape, r.status, undefined];
    case 'redis':
      return [r.command, r.error, r.status, undefined];
    default:
      return [undefined, undefined, undefined, undefined];
  }
}

/** Does the record have the names and outcome the edge's last one had (no allocation: a hot path)? */
function sameInputs(l: LastRows, r: L7Record): boolean {
  if (l.protocol !== r.protocol) return false;
  switch (r.protocol) {
    case 'http1':
    case 'http2':
      return l.a === r.method && l.b === r.route && l.c === r.statusCode && l.d === r.status;
    case 'grpc':
      return l.a === r.service && l.b === r.method && l.c === r.status;
    case 'postgres':
      return l.a === r.command && l.b === r.shape && l.c === r.status;
    case 'redis':
      return l.a === r.command && l.b === r.error && l.c === r.status;
    default:
      return false;
  }
}

/** What names a row's edge in its key: the subject and the peer. */
const edgeKey = (subject: Subject, p: Peer | undefined): string => `${subject.id}|${p ? `${p.addr}|${p.port ?? ''}` : ''}`;

/** Counters and histograms by metric, each row keyed by subject, peer and labels; MAX_ROWS in all. */
class Rows {
  private readonly counters = new Map<string, Map<string, Row>>();
  private readonly histograms = new Map<string, Map<string, HistRow>>();
  private size = 0;
  /** observations lost because MAX_ROWS rows were held */
  refused = 0;

  constructor(private readonly max: number) {}

  /** A row's key: the edge's (edgeKey, made once per connection) and the label values. */
  private key(edge: string, labels: Record<string, string>): string {
    let k = edge;
    for (const name in labels) k += `\u0000${labels[name]}`;
    return k;
  }

  /** Adds n to the row (made if there is room); the row, to add to again (undefined: refused). */
  count(metric: string, edge: string, subject: Subject, peer: Peer | undefined, labels: Record<string, string>, n = 1): Row | undefined {
    let m = this.counters.get(metric);
    if (!m) this.counters.set(metric, (m = new Map<string, Row>()));
    const k = this.key(edge, labels);
    let r = m.get(k);
    if (r) r.value += n;
    else if (this.size >= this.max) this.refused++;
    else {
      m.set(k, (r = { subject, ...(peer ? { peer } : {}), labels, value: n }));
      this.size++;
    }
    return r;
  }

  /** Observes seconds n times in the row (made if there is room); the row, to observe in again. */
  observe(metric: string, edge: string, subject: Subject, peer: Peer, labels: Record<string, string>, seconds: number, n = 1): HistRow | undefined {
    let m = this.histograms.get(metric);
    if (!m) this.histograms.set(metric, (m = new Map<string, HistRow>()));
    const k = this.key(edge, labels);
    let r = m.get(k);
    if (!r) {
      if (this.size >= this.max) {
        this.refused++;
        return undefined;
      }
      m.set(k, (r = { subject, peer, labels, slots: new Array<number>(DURATION_BUCKETS.length + 1).fill(0), sum: 0 }));
      this.size++;
    }
    observeIn(r, seconds, n);
    return r;
  }

  counterSamples(metric: string): Sample[] {
    return [...(this.counters.get(metric)?.values() ?? [])].map((r) => ({ subject: r.subject, ...(r.peer ? { peer: r.peer } : {}), labels: r.labels, value: r.value }));
  }

  histogramSamples(metric: string): Sample[] {
    return [...(this.histograms.get(metric)?.values() ?? [])].map((r) => {
      const cumulative: number[] = [];
      let acc = 0;
      for (let i = 0; i < DURATION_BUCKETS.length; i++) cumulative.push((acc += r.slots[i]!));
      const value: HistogramValue = { bounds: DURATION_BUCKETS, cumulative, count: acc + r.slots[DURATION_BUCKETS.length]!, sum: r.sum };
      return { subject: r.subject, peer: r.peer, labels: r.labels, value };
    });
  }

  cgroups(): Set<number> {
    const ids = new Set<number>();
    for (const m of [...this.counters.values(), ...this.histograms.values()]) for (const r of m.values()) ids.add(r.subject.id);
    return ids;
  }

  forget(gone: ReadonlySet<number>): void {
    for (const m of [...this.counters.values(), ...this.histograms.values()]) {
      for (const [k, r] of m) {
        if (!gone.has(r.subject.id)) continue;
        m.delete(k);
        this.size--;
      }
    }
  }
}

/**
 * The parsers' chunk of a captured one, with the connection's role where known: one literal of one
 * shape (no spread of an optional role per chunk, which made a fresh object shape to clone each time).
 */
const parserChunk = (c: CaptureChunk, data: Uint8Array, size: number, role: 'client' | 'server' | undefined): ParserChunk => ({ conn: c.conn, dir: c.dir, time: c.time, data, size, role });

/** What is known of a connection from its chunks. */
interface Conn {
  cgroup: number;
  tgid: number;
  remote: Endpoint;
  role: 'client' | 'server' | undefined;
  /** where the next chunk of each direction should start: a later one means chunks were lost */
  next: { egress: number; ingress: number };
  last: bigint;
  /** the subject, peer and row-key prefix of its records, per side (made at its first record) */
  edges?: Partial<Record<'client' | 'server', { subject: Subject; peer: Peer; key: string; last?: LastRows }>>;
  /** the kernel was asked to ship no more of it (it looks every 8th chunk: a few more may come) */
  ignored?: boolean;
}

type NameKind = 'route' | 'grpc_method' | 'shape' | 'command' | 'redis_error';

// --- the collector ---------------------------------------------------------------------------------

export class L7Collector implements CollectorInstance {
  readonly capture: L7Capture;
  readonly tracker: L7Tracker;
  private readonly ctx: CollectorContext;
  private readonly rows = new Rows(MAX_ROWS);
  private readonly conns = new LruMap<bigint, Conn>();
  /** the workload of each selected cgroup (select), which per-workload bounds are shared by */
  private groups = new Map<number, string>();
  private readonly names = new Map<string, RouteSet>();
  /** moves at every select and forget: the rows an edge remembers (LastRows) are found again */
  private rowsGen = 0;
  /** each cgroup's sets of `names` (its workload's), found once: emptied at every select */
  private readonly setsOf = new Map<number, Partial<Record<NameKind, RouteSet>>>();
  private readonly slowNs: bigint;
  private readonly payload: PayloadMode;
  private readonly maxNames: number;
  private latest = 0n;
  private lastSweep = 0n;
  /** when the selected processes were last looked through for OpenSSL (0: at the next poll) */
  private lastTlsScan = 0;
  private budget = { second: 0, left: EVENTS_PER_SECOND };
  /** records of a connection whose chunks were not followed (evicted before its records came) */
  unattributed = 0;
  /** events past EVENTS_PER_SECOND */
  sampledOut = 0;
  /** selected cgroups the kernel's allow-list had no room for */
  selectionOverflow = 0;
  /** connections closed for lack of room or of activity */
  connectionsDropped = 0;

  constructor(ctx: CollectorContext, opts: L7Options = {}) {
    const o = { ...optionsFrom(ctx.settings), ...opts };
    this.ctx = ctx;
    this.slowNs = BigInt(Math.round((o.slowSeconds ?? 0.5) * 1e9));
    this.payload = o.payload ?? 'samples';
    this.maxNames = o.maxNames ?? 100;
    this.capture = new L7Capture({
      ...(o.alternative ? { alternative: o.alternative } : {}),
      ...(o.captureBytes ? { captureBytes: o.captureBytes } : {}),
      ...(o.ringBytes ? { ringBytes: o.ringBytes } : {}),
    });
    // a Redis pipeline's commands alike come as one record with a count, unless they make events (errors, slow ones)
    this.tracker = new L7Tracker({ payload: this.payload, maxConnections: MAX_CONNECTIONS + 1, aggregateUnder: this.slowNs, onRecord: (r) => this.record(r) });
    this.watch();
  }

  private wakeTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /** Drains soon after the kernel's wakeup, not only on the agent's timer. */
  private watch(): void {
    this.capture.watch(() => {
      if (this.closed) return;
      this.wakeTimer = setTimeout(() => {
        this.wakeTimer = undefined;
        if (this.closed) return;
        try {
          this.poll();
        } catch {
          // the agent's own poll meets the same error and reports it
        } finally {
          this.watch();
        }
      }, WAKE_DRAIN_MS);
      this.wakeTimer.unref();
    });
  }

  status(): CollectorStatus {
    const { chosen, passedOver, note } = this.capture.choice;
    const tls = this.capture.tlsStats();
    const skipped = tls ? Object.entries(tls.skipped).map(([why, n]) => `${n} ${why}`).join(', ') : '';
    const tlsNote = tls ? `TLS: ${tls.attached} OpenSSL ${tls.attached === 1 ? 'library' : 'libraries'} probed${skipped ? `, skipped: ${skipped}` : ''}` : undefined;
    const notes = [note, tlsNote].filter((x) => x !== undefined).join('; ');
    return { name: 'l7', alternative: chosen, passedOver, ...(notes ? { note: notes } : {}), programsAttached: this.capture.programsAttached };
  }

  /** The selected cgroups are the kernel's allow-list; their workloads share the bounds on names. */
  select(selected: readonly Selected[]): void {
    const want = new Map<number, string>();
    for (const s of selected) if (s.subject.kind === 'cgroup') want.set(s.subject.id, s.group);
    for (const id of this.capture.cgroups()) if (!want.has(Number(id))) this.capture.removeCgroup(id);
    const have = new Set(this.capture.cgroups().map(Number));
    for (const id of want.keys()) {
      if (have.has(id)) continue;
      if (have.size >= this.capture.maxCgroups) {
        this.selectionOverflow++;
        continue;
      }
      this.capture.addCgroup(id);
      have.add(id);
    }
    this.groups = want;
    this.setsOf.clear();
    this.rowsGen++;
    this.lastTlsScan = 0; // new processes to look through for OpenSSL
    // the bounds of workloads no longer selected go with them (bounded by what is selected)
    const groups = new Set(want.values());
    for (const key of this.names.keys()) if (!groups.has(key.slice(0, key.lastIndexOf('\u0000')))) this.names.delete(key);
  }

  /** Probes the OpenSSL libraries of the selected processes that are not yet (every TLS_SCAN_MS). */
  private scanTls(): void {
    const now = Date.now();
    if (now - this.lastTlsScan < TLS_SCAN_MS) return;
    this.lastTlsScan = now;
    this.capture.scanTls();
  }

  poll(): number {
    this.scanTls();
    let n = 0;
    for (let i = 0; i < 8; i++) {
      const got = this.capture.drain((r) => this.take(r));
      n += got;
      if (got === 0) break;
    }
    if (this.latest - this.lastSweep > IDLE_CONNECTION_NS / 10n) {
      this.lastSweep = this.latest;
      for (const [id, c] of this.conns) if (this.latest - c.last > IDLE_CONNECTION_NS) this.closeConn(id, c.last);
    }
    return n;
  }

  private take(r: CaptureRecord): void {
    if (r.time > this.latest) this.latest = r.time;
    if (r.kind === 'close') {
      this.closeConn(r.conn, r.time);
      return;
    }
    this.chunk(r);
  }

  private closeConn(id: bigint, time: bigint): void {
    // the parser's outstanding records come out now, while the connection is still known
    this.tracker.close(id, time);
    this.conns.delete(id);
  }

  private chunk(c: CaptureChunk): void {
    // the most recently used now: the least recently used goes first
    let conn = this.conns.use(c.conn);
    if (!conn) {
      conn = { cgroup: Number(c.cgroup), tgid: c.tgid, remote: c.remote, role: c.role === 'unknown' ? undefined : c.role, next: { egress: 0, ingress: 0 }, last: c.time };
      while (this.conns.size >= MAX_CONNECTIONS) {
        const [oldest, o] = this.conns.oldest()!;
        this.closeConn(oldest, o.last);
        this.connectionsDropped++;
      }
      this.conns.set(c.conn, conn);
    }
    conn.last = c.time;
    // chunks the ring lost: a gap of known length, which the parsers skip or resynchronize after
    const expected = conn.next[c.dir];
    if (c.offset > expected) this.tracker.push(parserChunk(c, new Uint8Array(0), c.offset - expected, conn.role));
    conn.next[c.dir] = Math.max(expected, c.offset + c.size);
    if (!this.tracker.push(parserChunk(c, c.data, c.size, conn.role))) {
      // no parser for it: the kernel can stop shipping it (asked once: a map update is a system call)
      if (!conn.ignored) {
        this.capture.ignore(c.conn);
        conn.ignored = true;
      }
    }
  }

  /** A name kept apart for this workload, or `other` past its share (counted n times: the requests it names). */
  private admit(cgroup: number, kind: NameKind, value: string | undefined, n = 1): string {
    if (value === undefined) return 'unknown';
    let sets = this.setsOf.get(cgroup);
    if (!sets) this.setsOf.set(cgroup, (sets = {}));
    let set = sets[kind];
    if (!set) {
      const group = `${this.groups.get(cgroup) ?? `cgroup:${cgroup}`}\u0000${kind}`;
      set = this.names.get(group);
      if (!set) this.names.set(group, (set = new RouteSet(kind === 'redis_error' ? MAX_ERROR_NAMES : this.maxNames)));
      sets[kind] = set;
    }
    const admitted = set.admit(clipLabel(value));
    if (admitted === OTHER_ROUTE && value !== OTHER_ROUTE) {
      const subject = cgroupSubject(cgroup);
      this.rows.count('periscope_l7_folded_total', edgeKey(subject, undefined), subject, undefined, { kind }, n);
    }
    return admitted;
  }

  private record(r: L7Record): void {
    /** the requests it stands for: a Redis pipeline's run is one record (counted, observed and evented n times) */
    const n = r.protocol === 'redis' ? r.count : 1;
    const conn = this.conns.get(r.conn as bigint);
    if (!conn) {
      this.unattributed += n;
      return;
    }
    const side = r.role;
    const edges = (conn.edges ??= {});
    let edge = edges[side];
    if (!edge) {
      const subject = cgroupSubject(conn.cgroup);
      // the server's port names the edge; a client's port is ephemeral
      const peer: Peer = side === 'client' ? { addr: conn.remote.addr, port: conn.remote.port } : { addr: conn.remote.addr };
      edge = edges[side] = { subject, peer, key: edgeKey(subject, peer) };
    }
    const { subject, peer, key } = edge;
    const answered = r.status !== 'none';
    const seconds = Number(r.end - r.start) / 1e9;
    const slow = answered && r.end - r.start >= this.slowNs;
    const last = edge.last;
    if (!r.error && !slow && last && last.gen === this.rowsGen && sameInputs(last, r)) {
      // the rows the edge's last record went to: nothing to name again, no event due
      last.count.value += n;
      if (last.hist) observeIn(last.hist, seconds, n);
      return;
    }
    /** the rows this record went to, and whether a record like it may go straight there */
    let count: Row | undefined;
    let hist: HistRow | undefined;
    let folded = false;
    /** the event's own fields: made only for an event */
    let fields: () => Record<string, unknown>;
    switch (r.protocol) {
      case 'http1':
      case 'http2': {
        const method = r.method === undefined ? 'unknown' : HTTP_METHODS.has(r.method) ? r.method : 'other';
        const route = this.admit(conn.cgroup, 'route', r.route);
        const labels = { side, method, route, status_class: statusClass(r.statusCode, r.status) };
        count = this.rows.count('periscope_http_requests_total', key, subject, peer, labels);
        if (answered) hist = this.rows.observe('periscope_http_request_duration_seconds', key, subject, peer, labels, seconds);
        folded = route === OTHER_ROUTE;
        fields = () => {
          const target = this.payload === 'samples' && r.path !== undefined ? r.path : (r.route ?? '?');
          return { method: r.method ?? null, route, status_code: r.statusCode ?? null, request: clipText(`${r.method ?? '?'} ${target}`, MAX_SAMPLE), ...(this.payload === 'samples' && r.host ? { host: clipText(r.host, MAX_MESSAGE) } : {}) };
        };
        break;
      }
      case 'grpc': {
        const call = this.admit(conn.cgroup, 'grpc_method', r.service !== undefined && r.method !== undefined ? `${r.service}/${r.method}` : undefined);
        const named = call !== 'unknown' && call !== OTHER_ROUTE;
        const service = named ? call.slice(0, call.indexOf('/')) : call;
        const method = named ? call.slice(call.indexOf('/') + 1) : call;
        const grpcStatus = grpcStatusLabel(r.status);
        count = this.rows.count('periscope_grpc_requests_total', key, subject, peer, { side, grpc_service: service, grpc_method: method, grpc_status: grpcStatus });
        if (answered) hist = this.rows.observe('periscope_grpc_request_duration_seconds', key, subject, peer, { side, grpc_service: service, grpc_method: method }, seconds);
        folded = call === OTHER_ROUTE;
        fields = () => ({ grpc_service: r.service ?? null, grpc_method: r.method ?? null, grpc_status: grpcStatus, request: `/${r.service ?? '?'}/${r.method ?? '?'}` });
        break;
      }
      case 'postgres': {
        const operation = r.command !== undefined && /^[A-Z][A-Z ]{0,31}$/.test(r.command) ? r.command : r.command === undefined ? 'unknown' : 'other';
        const shape = this.admit(conn.cgroup, 'shape', r.shape);
        const error = errorLabel(r.status);
        count = this.rows.count('periscope_sql_queries_total', key, subject, peer, { side, operation, shape, error });
        if (answered) hist = this.rows.observe('periscope_sql_query_duration_seconds', key, subject, peer, { side, operation, shape }, seconds);
        folded = shape === OTHER_ROUTE;
        fields = () => {
          const text = this.payload === 'samples' && r.query !== undefined ? r.query : (r.shape ?? '?');
          return { operation, shape, sqlstate: r.error ? r.status : null, rows: r.rows, request: clipText(text, MAX_SAMPLE) };
        };
        break;
      }
      case 'redis': {
        const command = this.admit(conn.cgroup, 'command', r.command, n);
        const error = r.error ? this.admit(conn.cgroup, 'redis_error', r.status, n) : errorLabel(r.status);
        count = this.rows.count('periscope_redis_commands_total', key, subject, peer, { side, command, error }, n);
        if (answered) hist = this.rows.observe('periscope_redis_command_duration_seconds', key, subject, peer, { side, command }, seconds, n);
        folded = command === OTHER_ROUTE || error === OTHER_ROUTE;
        fields = () => {
          const args = this.payload === 'samples' && r.args !== undefined && r.args.length > 0 ? ` ${r.args.join(' ')}` : '';
          return { command: r.command ?? null, request: clipText(`${r.command ?? '?'}${args}`, MAX_SAMPLE) };
        };
        break;
      }
      default:
        return;
    }
    // a folded name counts in periscope_l7_folded_total at each record: those take this way each time
    if (count && (hist || !answered) && !folded) {
      const [a, b, c, d] = inputsOf(r);
      edge.last = { gen: this.rowsGen, protocol: r.protocol, a, b, c, d, count, hist };
    } else edge.last = undefined;
    if (!r.error && !slow) return;
    // one event per request: a run gives n alike (the parsers make no run of records that give events; this is for safety's sake)
    for (let i = 0; i < n; i++) {
      if (!this.spend()) continue;
      this.ctx.emit({
        type: EVENT_TYPES[r.protocol],
        time: this.ctx.wallTime(Number(r.start)),
        subject,
        peer,
        protocol: r.protocol,
        side,
        reason: r.error ? 'error' : 'slow',
        status: r.status,
        duration_ms: answered ? Number(r.end - r.start) / 1e6 : null,
        pid: conn.tgid || null,
        ...fields(),
        ...(this.payload === 'samples' && r.errorMessage ? { error_message: clipText(r.errorMessage, MAX_MESSAGE) } : {}),
        partial: r.requestPartial || r.responsePartial,
      });
    }
  }

  /** Whether an event may go this second (EVENTS_PER_SECOND); one that may not is counted. */
  private spend(): boolean {
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.budget.second) this.budget = { second, left: EVENTS_PER_SECOND };
    if (this.budget.left > 0) {
      this.budget.left--;
      return true;
    }
    this.sampledOut++;
    return false;
  }

  read(): Readings {
    const c = (m: string): [string, Sample[]] => [m, this.rows.counterSamples(m)];
    const h = (m: string): [string, Sample[]] => [m, this.rows.histogramSamples(m)];
    return new Map<string, Sample[]>([
      c('periscope_http_requests_total'),
      h('periscope_http_request_duration_seconds'),
      c('periscope_grpc_requests_total'),
      h('periscope_grpc_request_duration_seconds'),
      c('periscope_sql_queries_total'),
      h('periscope_sql_query_duration_seconds'),
      c('periscope_redis_commands_total'),
      h('periscope_redis_command_duration_seconds'),
      c('periscope_l7_folded_total'),
      ['periscope_l7_capture_events_total', this.captureEvents()],
    ]);
  }

  /** What the capture and the parsers did and lost, as counters without a subject. */
  private captureEvents(): Sample[] {
    const k = this.capture.stats();
    const d = this.capture.drops();
    const t: L7Stats = this.tracker.stats;
    const snake = (s: string): string => s.replace(/[A-Z]/g, (x) => `_${x.toLowerCase()}`);
    const values: Record<string, number> = {
      connections: k.connections,
      connections_classified: k.classified,
      connections_ignored: k.ignored + k.ignoredByUser,
      chunks: k.chunks,
      closes: k.closes,
      ring_full: d.ringFull,
      no_state: d.noState,
      unreadable: d.unreadable,
      malformed: d.malformed,
      tls_connections: k.tlsConnections,
      tls_calls: k.tlsCalls,
      tls_no_connection: k.tlsNoConnection,
      ...tlsLibraries(this.capture.tlsStats()),
      unattributed_records: this.unattributed,
      connections_dropped: this.connectionsDropped,
      ...Object.fromEntries(Object.entries(t).filter(([name]) => name !== 'chunks').map(([name, v]) => [`parser_${snake(name)}`, v])),
    };
    return Object.entries(values).map(([event, value]) => ({ labels: { event }, value }));
  }

  subjects(): Iterable<Subject> {
    const ids = this.rows.cgroups();
    for (const id of this.capture.cgroups()) ids.add(Number(id));
    return [...ids].map(cgroupSubject);
  }

  forget(subjects: readonly Subject[]): void {
    const gone = new Set(subjects.filter((s) => s.kind === 'cgroup').map((s) => s.id));
    if (gone.size === 0) return;
    this.rows.forget(gone);
    this.rowsGen++;
    for (const id of this.capture.cgroups()) if (gone.has(Number(id))) this.capture.removeCgroup(id);
    for (const id of gone) {
      this.groups.delete(id);
      this.setsOf.delete(id);
    }
  }

  drops(): DropCounts {
    const d = this.capture.drops();
    return {
      events: d.ringFull + d.malformed + this.unattributed,
      aggregates: d.noState + this.rows.refused + this.selectionOverflow,
      sampled: this.sampledOut,
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.wakeTimer);
    this.capture.close();
  }
}

/** The OpenSSL libraries probed and skipped, as capture events (skipped ones by reason). */
function tlsLibraries(t: TlsStats | undefined): Record<string, number> {
  if (!t) return {};
  const out: Record<string, number> = { tls_libraries_attached: t.attached, tls_probes: t.probes, tls_libraries_passed_over: t.librariesPassedOver };
  for (const [why, n] of Object.entries(t.skipped)) out[`tls_libraries_skipped_${why.replace(/\W+/g, '_')}`] = n;
  return out;
}

const EVENT_TYPES: Readonly<Record<L7Record['protocol'], string>> = {
  http1: 'http_request',
  http2: 'http_request',
  grpc: 'grpc_request',
  postgres: 'sql_query',
  redis: 'redis_command',
};

const peer = true;
const side = 'side: client (the subject sent the request; the peer is the server) or server (the subject served it; the peer is the client)';
const METRICS: readonly MetricDef[] = [
  {
    type: 'counter',
    name: 'periscope_http_requests_total',
    subject: 'cgroup',
    peer,
    labels: ['side', 'method', 'route', 'status_class'],
    help: `HTTP/1 and HTTP/2 requests by method, route (the path as a template, bounded per workload) and status class (2xx ...; none: no response; reset; unknown), ${side}.`,
  },
  {
    type: 'histogram',
    name: 'periscope_http_request_duration_seconds',
    subject: 'cgroup',
    peer,
    labels: ['side', 'method', 'route', 'status_class'],
    buckets: DURATION_BUCKETS,
    help: 'Time from an HTTP request\'s first byte to its response\'s last, as the side that captured it saw it.',
  },
  {
    type: 'counter',
    name: 'periscope_grpc_requests_total',
    subject: 'cgroup',
    peer,
    labels: ['side', 'grpc_service', 'grpc_method', 'grpc_status'],
    help: `gRPC calls by service, method (bounded per workload) and status code name (OK, NOT_FOUND ...), ${side}.`,
  },
  {
    type: 'histogram',
    name: 'periscope_grpc_request_duration_seconds',
    subject: 'cgroup',
    peer,
    labels: ['side', 'grpc_service', 'grpc_method'],
    buckets: DURATION_BUCKETS,
    help: 'Time from a gRPC call\'s first byte to its trailers.',
  },
  {
    type: 'counter',
    name: 'periscope_sql_queries_total',
    subject: 'cgroup',
    peer,
    labels: ['side', 'operation', 'shape', 'error'],
    help: `PostgreSQL statements by operation (SELECT, INSERT ...), shape (literals as ?, bounded per workload) and error (empty on success, the SQLSTATE on failure; unknown: the outcome was past the capture; none: no response), ${side}.`,
  },
  {
    type: 'histogram',
    name: 'periscope_sql_query_duration_seconds',
    subject: 'cgroup',
    peer,
    labels: ['side', 'operation', 'shape'],
    buckets: DURATION_BUCKETS,
    help: 'Time from a PostgreSQL statement\'s first byte to the last byte of its result.',
  },
  {
    type: 'counter',
    name: 'periscope_redis_commands_total',
    subject: 'cgroup',
    peer,
    labels: ['side', 'command', 'error'],
    help: `Redis commands by name (bounded per workload) and error (empty on success, the error's prefix such as WRONGTYPE; none: no reply), ${side}.`,
  },
  {
    type: 'histogram',
    name: 'periscope_redis_command_duration_seconds',
    subject: 'cgroup',
    peer,
    labels: ['side', 'command'],
    buckets: DURATION_BUCKETS,
    help: 'Time from a Redis command\'s first byte to its reply\'s last.',
  },
  {
    type: 'counter',
    name: 'periscope_l7_folded_total',
    subject: 'cgroup',
    labels: ['kind'],
    help: 'Requests whose route, query shape, command or gRPC method was counted as "other": their workload already had --l7-max-names of that kind.',
  },
  {
    type: 'counter',
    name: 'periscope_l7_capture_events_total',
    labels: ['event'],
    help: 'What the L7 capture and its parsers did and lost: connections seen, classified and ignored, chunks, records lost to a full ring, parser desyncs and guesses (parser_*), TLS connections and the OpenSSL libraries probed or skipped (tls_*).',
  },
];

export const l7 = defineCollector({
  name: 'l7',
  help: 'HTTP/1, HTTP/2, gRPC, PostgreSQL and Redis requests of the selected workloads from their system calls: RED metrics per edge, events for slow and failed requests',
  spec: L7_SPEC,
  metrics: METRICS,
  events: [
    { type: 'http_request', help: 'a slow (--l7-slow) or failed (5xx, reset) HTTP request, with its request line (its path; a route with --l7-payload shapes)', trace: 'l7' },
    { type: 'grpc_request', help: 'a slow or failed gRPC call, with its service, method and status', trace: 'l7' },
    { type: 'sql_query', help: 'a slow or failed PostgreSQL statement, with its text (string literals masked; its shape with --l7-payload shapes) and SQLSTATE', trace: 'l7' },
    { type: 'redis_command', help: 'a slow or failed Redis command, with its arguments (secrets masked; the name alone with --l7-payload shapes)', trace: 'l7' },
  ],
  traces: [
    {
      name: 'l7',
      help: 'slow and failed HTTP, gRPC, PostgreSQL and Redis requests of the selected workloads',
      columns: [
        TIME,
        WHO,
        { header: 'PROTOCOL', width: 8, show: [['text', 'protocol']] },
        { header: 'SIDE', width: 6, show: [['text', 'side']] },
        { header: 'PEER', width: 30, show: [['text', 'peer'], ['endpoint', 'peer_addr', 'peer_port']] },
        { header: 'REQUEST', width: 60, show: [['text', 'request']] },
        { header: 'STATUS', width: 16, show: [['text', 'status']] },
        { header: 'DURATION', width: 9, right: true, show: [['ms', 'duration_ms']] },
        { header: 'WHY', width: 5, show: [['text', 'reason']] },
      ],
    },
  ],
  selection: { help: 'workloads whose HTTP, gRPC, PostgreSQL and Redis requests are captured from their system calls' },
  settings: SETTINGS,
  start: (ctx) => new L7Collector(ctx),
});
