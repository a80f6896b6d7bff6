/**
 * The agent half of the agent → hub transport. Every interval the shipper reads the agent's series
 * (the same ones /metrics exposes), adds each counter's and histogram's delta since its previous batch,
 * takes the events logged since then, and queues one gzip-compressed wire batch (src/wire/ingest.ts).
 * A sender POSTs the oldest batch to the hub, one at a time and in order, and retries with a capped,
 * jittered exponential backoff while the hub cannot be reached or answers 5xx/429/401/403.
 *
 * Memory is bounded (--hub-buffer, compressed bytes). When it is full the oldest batches go to files
 * in --hub-spill-dir (bounded by --hub-spill-max) and are sent first when the hub is back; an agent
 * that starts sends the files a previous run left before its own batches. When both are full, the
 * oldest batch is dropped but its counter and histogram deltas are added into the next batch, so the
 * totals the hub sums stay exact: only its events and gauge samples are lost, and counted.
 *
 * A batch the hub refuses with another 4xx (malformed, too big, a wire version it does not speak) is
 * a bug or a version skew, not a passing problem: it is logged once, dropped, counted, and the next
 * one goes.
 */
import { randomUUID } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { release } from 'node:os';
import { type MetricDef, type Readings, type Sample } from '../collectors/contract.js';
import { FEATURES, probeAll } from '../kernel/features.js';
import { type PeriscopeEvent } from '../wire/events.js';
import { checkBatch, MAX_BATCH_BYTES, WIRE_VERSION, type AgentStatus, type Batch, type FamilyWire, type HistogramWire, type SeriesWire } from '../wire/ingest.js';
import { type Agent } from './agent.js';
import { type ProfileWire } from '../wire/profiles.js';
import { type EventLog } from './event-log.js';
import { type FamilySnapshot, type Hist, type MetricSource } from './exporter.js';
import { VERSION } from './version.js';

/** What a batch is made of: the exported series and the agent's status. */
export interface ShipInput {
  families: FamilySnapshot[];
  status: AgentStatus;
  /** profile windows drained since the previous batch */
  profiles?: ProfileWire[];
}

export interface ShipperOptions {
  /** the hub's base URL (http or https) */
  hub: string;
  /** reads the series (and drains the rings) once per batch */
  collect: () => ShipInput;
  /** the event log whose new events each batch carries */
  events?: EventLog;
  node: string;
  /** the cgroup subtree the agent is restricted to ("/" for all) */
  cgroupSubtree?: string;
  token?: string;
  /** PEM CA certificate(s) the hub's certificate is checked against (default: the system's) */
  ca?: string;
  intervalMs?: number;
  /** most compressed bytes of batches kept in memory */
  bufferBytes?: number;
  /** where batches go when memory is full (and at stop); none: the oldest are dropped */
  spillDir?: string;
  spillMaxBytes?: number;
  /** events held between two batches; more are dropped and counted */
  maxPendingEvents?: number;
  /** one request's time limit */
  timeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** how long stop() tries to send what is queued */
  flushMs?: number;
  log?: (line: string) => void;
}

export const DEFAULT_BUFFER_BYTES = 64 << 20;
export const DEFAULT_SPILL_MAX_BYTES = 1 << 30;

/** A queued batch: compressed in memory, or in a spill file. */
interface Entry {
  instance: string;
  seq: number;
  /** the instance's start (ms), which orders spill files of different runs */
  startedMs: number;
  bytes: number;
  body?: Buffer;
  file?: string;
}

/** The shipper's own metrics, read into the agent's /metrics and into its batches. */
export const HUB_METRICS: readonly MetricDef[] = [
  { type: 'counter', name: 'periscope_hub_batches_sent_total', help: 'Batches the hub acknowledged.' },
  {
    type: 'counter',
    name: 'periscope_hub_batches_dropped_total',
    labels: ['reason'],
    help: 'Batches not delivered: buffer_full (memory and spill were full; their counter deltas went into the next batch), rejected (the hub answered 4xx: a bug or a version skew), invalid (the agent built a batch the wire schema refuses).',
  },
  { type: 'counter', name: 'periscope_hub_events_dropped_total', help: 'Events not shipped: held in dropped batches, or more than a batch may carry arrived between two batches.' },
  { type: 'gauge', name: 'periscope_hub_buffer_bytes', labels: ['where'], help: 'Compressed bytes of batches waiting to be sent, in memory and in the spill directory.' },
  { type: 'gauge', name: 'periscope_hub_buffer_batches', labels: ['where'], help: 'Batches waiting to be sent, in memory and in the spill directory.' },
  { type: 'counter', name: 'periscope_hub_send_errors_total', labels: ['kind'], help: 'Failed sends to the hub, by kind: connection (refused, reset, DNS), tls (the hub certificate is not trusted), timeout, unavailable (5xx), throttled (429), unauthorized (401/403), rejected (other 4xx).' },
  { type: 'gauge', name: 'periscope_hub_last_success_timestamp_seconds', help: 'When the hub last acknowledged a batch (Unix seconds; 0 before the first).' },
];

const SPILL_NAME = /^(\d{13})-([A-Za-z0-9-]{8,64})-(\d{10})\.json\.gz$/;

const spillName = (e: Pick<Entry, 'startedMs' | 'instance' | 'seq'>): string =>
  `${String(e.startedMs).padStart(13, '0')}-${e.instance}-${String(e.seq).padStart(10, '0')}.json.gz`;

const copyHist = (h: Hist | HistogramWire): HistogramWire => ({ cumulative: [...h.cumulative], count: h.count, sum: h.sum });

/** Whether a histogram went down anywhere since `prev`: a reset, read as Prometheus reads one. */
const histReset = (h: Hist, prev: Hist): boolean => h.count < prev.count || h.cumulative.some((n, i) => n < (prev.cumulative[i] ?? 0));

/** Adds the counter and histogram deltas of `from` into `into` (series matched by family name and label values). */
export function foldDeltas(into: Batch, from: Batch): void {
  const families = new Map(into.families.map((f) => [f.name, f]));
  for (const f of from.families) {
    if (f.type === 'gauge') continue;
    let target = families.get(f.name);
    if (!target) {
      target = { ...f, series: [] };
      into.families.push(target);
      families.set(f.name, target);
    }
    const series = new Map(target.series.map((s) => [s.labels.join('\u0000'), s]));
    for (const s of f.series) {
      const t = series.get(s.labels.join('\u0000'));
      if (!t) {
        target.series.push(s);
        continue;
      }
      if (s.delta !== undefined) t.delta = (t.delta ?? 0) + s.delta;
      if (s.hist_delta && t.hist_delta) {
        const a = t.hist_delta;
        const b = s.hist_delta;
        t.hist_delta = { cumulative: a.cumulative.map((n, i) => n + (b.cumulative[i] ?? 0)), count: a.count + b.count, sum: a.sum + b.sum };
      }
    }
  }
}

const decode = (body: Buffer): Batch => JSON.parse(gunzipSync(body).toString('utf8')) as Batch;
const encode = (batch: Batch): Buffer => gzipSync(JSON.stringify(batch));

export class Shipper {
  readonly instance = randomUUID();
  readonly started = new Date();
  private readonly url: URL;
  private readonly opts: Required<Omit<ShipperOptions, 'token' | 'ca' | 'spillDir' | 'events'>> & Pick<ShipperOptions, 'token' | 'ca' | 'spillDir' | 'events'>;
  private seq = 0;
  /** cumulative values of counters and histograms in the previous batch, by family and labels */
  private previous = new Map<string, number | Hist>();
  private pending: PeriscopeEvent[] = [];
  private unsubscribe: (() => void) | undefined;
  private readonly queue: Entry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private firstTick: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private inflight: Entry | undefined;
  private req: ClientRequest | undefined;
  private failures = 0;
  private lastFailure = '';
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  /** cumulative, as batches carry it */
  readonly dropped = { batches: 0, events: 0, samples: 0 };
  readonly counts = {
    sent: 0,
    droppedBatches: new Map<string, number>([
      ['buffer_full', 0],
      ['rejected', 0],
      ['invalid', 0],
    ]),
    eventsDropped: 0,
    errors: new Map<string, number>(),
    lastSuccessMs: 0,
  };

  constructor(opts: ShipperOptions) {
    this.opts = {
      intervalMs: 10_000,
      bufferBytes: DEFAULT_BUFFER_BYTES,
      spillMaxBytes: DEFAULT_SPILL_MAX_BYTES,
      maxPendingEvents: 10_000,
      timeoutMs: 10_000,
      backoffMinMs: 500,
      backoffMaxMs: 30_000,
      flushMs: 2_000,
      cgroupSubtree: '/',
      log: (line) => process.stderr.write(`${line}\n`),
      ...opts,
    };
    this.url = new URL('api/v1/ingest', opts.hub.endsWith('/') ? opts.hub : `${opts.hub}/`);
  }

  /** Replays what a previous run spilled, subscribes to events and starts the timer. */
  start(): void {
    if (this.opts.spillDir) this.loadSpilled(this.opts.spillDir);
    this.unsubscribe = this.opts.events?.subscribe({
      // the shipper counts its own losses: the log's subscriberDrops are the live API streams'
      send: (e) => {
        if (this.pending.length < this.opts.maxPendingEvents) this.pending.push(e);
        else {
          this.counts.eventsDropped++;
          this.dropped.events++;
        }
        return true;
      },
    });
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
    // a first batch soon after start: a new node shows up in the hub within a second or two
    this.firstTick = setTimeout(() => this.tick(), Math.min(1_000, this.opts.intervalMs));
    this.firstTick.unref();
    this.kick();
  }

  /** The shipper's metrics, to be added to the agent's (Agent.addSource). */
  metrics(): MetricSource {
    return {
      name: 'hub',
      metrics: HUB_METRICS,
      read: (): Readings => {
        // the keys are the values of the label `where`
        const places = Object.entries({ memory: this.queue.filter((e) => e.body), disk: this.queue.filter((e) => e.file) });
        const sum = (es: Entry[]): number => es.reduce((n, e) => n + e.bytes, 0);
        return new Map<string, Sample[]>([
          ['periscope_hub_batches_sent_total', [{ value: this.counts.sent }]],
          ['periscope_hub_batches_dropped_total', [...this.counts.droppedBatches].map(([reason, value]) => ({ value, labels: { reason } }))],
          ['periscope_hub_events_dropped_total', [{ value: this.counts.eventsDropped }]],
          ['periscope_hub_buffer_bytes', places.map(([where, es]) => ({ value: sum(es), labels: { where } }))],
          ['periscope_hub_buffer_batches', places.map(([where, es]) => ({ value: es.length, labels: { where } }))],
          ['periscope_hub_send_errors_total', [...this.counts.errors].map(([kind, value]) => ({ value, labels: { kind } }))],
          ['periscope_hub_last_success_timestamp_seconds', [{ value: this.counts.lastSuccessMs / 1000 }]],
        ]);
      },
    };
  }

  /** Batches waiting, oldest first (tests and status). */
  get waiting(): { instance: string; seq: number; onDisk: boolean; bytes: number }[] {
    return this.queue.map((e) => ({ instance: e.instance, seq: e.seq, onDisk: e.file !== undefined, bytes: e.bytes }));
  }

  /** Builds the next batch from `input`: the deltas since the previous batch, the events since then. */
  build(input: ShipInput, time = new Date()): Batch {
    const next = new Map<string, number | Hist>();
    const families: FamilyWire[] = [];
    for (const f of input.families) {
      if (f.series.length === 0) continue;
      const { def } = f;
      const series: SeriesWire[] = [];
      for (const s of f.series) {
        const key = `${def.name}\u0000${s.labels.join('\u0000')}`;
        const prev = this.previous.get(key);
        if (typeof s.value === 'number') {
          if (!Number.isFinite(s.value)) continue;
          if (def.type !== 'counter') {
            series.push({ labels: s.labels, value: s.value });
            continue;
          }
          const v = Math.max(0, s.value);
          next.set(key, v);
          // first sight, or the value went down (a reset): the delta is the value
          const delta = typeof prev !== 'number' || v < prev ? v : v - prev;
          series.push({ labels: s.labels, value: v, delta });
        } else {
          const h = s.value;
          if (!Number.isFinite(h.sum) || !Number.isFinite(h.count)) continue;
          next.set(key, h);
          const p = typeof prev === 'object' && !histReset(h, prev) ? prev : undefined;
          const hist_delta: HistogramWire = p
            ? { cumulative: h.cumulative.map((n, i) => n - (p.cumulative[i] ?? 0)), count: h.count - p.count, sum: h.sum - p.sum }
            : copyHist(h);
          series.push({ labels: s.labels, hist: copyHist(h), hist_delta });
        }
      }
      if (series.length === 0) continue;
      families.push({
        name: def.name,
        type: def.type,
        help: def.help,
        labels: [...f.labelNames],
        ...(def.type === 'histogram' ? { buckets: [...def.buckets] } : {}),
        series,
      });
    }
    this.previous = next;
    const events = this.pending;
    this.pending = [];
    return {
      version: WIRE_VERSION,
      agent: { node: this.opts.node, instance: this.instance, version: VERSION, started: this.started.toISOString(), cgroup_subtree: this.opts.cgroupSubtree },
      seq: ++this.seq,
      time: time.toISOString(),
      status: input.status,
      families,
      events,
      dropped: { ...this.dropped },
      ...(input.profiles?.length ? { profiles: input.profiles } : {}),
    };
  }

  /** Collects, builds, checks and queues one batch, and wakes the sender. */
  tick(): void {
    let batch: Batch;
    try {
      batch = this.build(this.opts.collect());
    } catch (err) {
      this.opts.log(`hub: collecting a batch failed: ${(err as Error).message}`);
      return;
    }
    const check = checkBatch(batch);
    if (!check.ok) {
      // a bug of the agent: say so once per batch, and keep going
      this.bump(this.counts.droppedBatches, 'invalid');
      this.opts.log(`hub: batch ${batch.seq} was not sent, it breaks the wire schema (a bug): ${check.error}`);
      return;
    }
    this.enqueue(batch);
    this.kick();
  }

  /** Queues an encoded batch and keeps memory and spill within their bounds. */
  enqueue(batch: Batch): void {
    const body = encode(batch);
    if (body.length > MAX_BATCH_BYTES) {
      this.opts.log(`hub: batch ${batch.seq} is ${body.length} bytes compressed, more than a hub takes (${MAX_BATCH_BYTES}): lower --max-series or --hub-interval`);
    }
    this.queue.push({ instance: batch.agent.instance, seq: batch.seq, startedMs: Date.parse(batch.agent.started), bytes: body.length, body });
    this.enforce();
  }

  /** Bytes of the batches queued in memory, or on disk. */
  private bytes(onDisk: boolean): number {
    return this.queue.reduce((n, e) => n + ((onDisk ? e.file : e.body) ? e.bytes : 0), 0);
  }

  /**
   * Over the memory bound: the oldest batch in memory goes to the spill directory while it has room;
   * otherwise (or over the spill bound) the oldest batch is dropped and folded into the next. The
   * batch being sent and the newest one are never touched.
   */
  private enforce(): void {
    for (;;) {
      const overDisk = this.bytes(true) > this.opts.spillMaxBytes;
      const overMemory = this.bytes(false) > this.opts.bufferBytes;
      if (!overDisk && !overMemory) return;
      const movable = this.queue.slice(0, -1).filter((e) => e !== this.inflight);
      const oldestInMemory = movable.find((e) => e.body);
      if (!overDisk && oldestInMemory && this.opts.spillDir && this.bytes(true) + oldestInMemory.bytes <= this.opts.spillMaxBytes) {
        if (this.spill(oldestInMemory)) continue;
      }
      // only the batch being sent and the newest are left in memory: they stay
      if (!overDisk && !oldestInMemory) return;
      const victim = overDisk ? movable.find((e) => e.file) : movable[0];
      if (!victim) return;
      this.dropAndFold(victim);
    }
  }

  /** Drops a queued batch (never the newest) and adds its counter and histogram deltas into the one after it. */
  private dropAndFold(victim: Entry): void {
    const i = this.queue.indexOf(victim);
    const next = this.queue[i + 1]!;
    let lost: Batch | undefined;
    try {
      lost = decode(this.read(victim));
    } catch (err) {
      this.opts.log(`hub: a buffered batch could not be read, its deltas are lost: ${(err as Error).message}`);
    }
    this.queue.splice(i, 1);
    this.remove(victim);
    this.bump(this.counts.droppedBatches, 'buffer_full');
    this.dropped.batches++;
    if (lost) {
      this.dropped.events += lost.events.length;
      this.counts.eventsDropped += lost.events.length;
      this.dropped.samples += lost.families.filter((f) => f.type === 'gauge').reduce((n, f) => n + f.series.length, 0);
      try {
        const into = decode(this.read(next));
        foldDeltas(into, lost);
        if (into.agent.instance === this.instance) into.dropped = { ...this.dropped };
        this.rewrite(next, encode(into));
      } catch (err) {
        this.opts.log(`hub: folding a dropped batch into the next failed, its deltas are lost: ${(err as Error).message}`);
      }
    }
    if (this.counts.droppedBatches.get('buffer_full') === 1) {
      this.opts.log(`hub: the buffer is full (${this.opts.bufferBytes} bytes in memory${this.opts.spillDir ? `, ${this.opts.spillMaxBytes} on disk` : ''}): dropping the oldest batches, their counts go into the next (events are lost)`);
    }
  }

  private read(e: Entry): Buffer {
    return e.body ?? readFileSync(e.file!);
  }

  private rewrite(e: Entry, body: Buffer): void {
    if (e.body) e.body = body;
    else writeAtomic(e.file!, body);
    e.bytes = body.length;
  }

  private remove(e: Entry): void {
    if (!e.file) return;
    try {
      unlinkSync(e.file);
    } catch {
      // already gone
    }
  }

  /** Moves a batch from memory to the spill directory; false (logged) when the write fails. */
  private spill(e: Entry): boolean {
    const dir = this.opts.spillDir!;
    const file = join(dir, spillName(e));
    try {
      mkdirSync(dir, { recursive: true });
      writeAtomic(file, e.body!);
    } catch (err) {
      this.opts.log(`hub: cannot spill to ${dir}: ${(err as Error).message}`);
      return false;
    }
    e.file = file;
    delete e.body;
    return true;
  }

  /** Queues the batches a previous run left in the spill directory, oldest first, before any of ours. */
  private loadSpilled(dir: string): void {
    let names: string[];
    try {
      mkdirSync(dir, { recursive: true });
      names = readdirSync(dir);
    } catch (err) {
      this.opts.log(`hub: cannot read the spill directory ${dir}: ${(err as Error).message}`);
      return;
    }
    const found: Entry[] = [];
    for (const name of names.sort()) {
      const m = SPILL_NAME.exec(name);
      const file = join(dir, name);
      if (!m) {
        // a write cut short by a crash
        if (name.endsWith('.tmp')) this.remove({ file } as Entry);
        continue;
      }
      found.push({ startedMs: Number(m[1]), instance: m[2]!, seq: Number(m[3]), bytes: statSync(file).size, file });
    }
    if (found.length === 0) return;
    this.queue.unshift(...found);
    this.opts.log(`hub: ${found.length} batches left in ${dir} by a previous run are sent first`);
    this.enforce();
  }

  private bump(m: Map<string, number>, k: string): void {
    m.set(k, (m.get(k) ?? 0) + 1);
  }

  /** Sends the oldest batch unless a send or a backoff is under way. */
  private kick(): void {
    if (this.inflight || this.retryTimer || this.stopped) return;
    const e = this.queue[0];
    if (!e) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    this.inflight = e;
    void this.send(e).then((outcome) => {
      if (this.inflight !== e) return; // stopped meanwhile
      this.inflight = undefined;
      if (outcome === 'retry') {
        const delay = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(this.failures - 1, 30));
        this.retryTimer = setTimeout(
          () => {
            this.retryTimer = undefined;
            this.kick();
          },
          delay * (0.5 + Math.random() / 2),
        );
        this.retryTimer.unref();
        return;
      }
      this.queue.splice(this.queue.indexOf(e), 1);
      this.remove(e);
      this.kick();
    });
  }

  /** Counts a failed send; logs the first of a run of failures, and each change of cause. */
  private failed(kind: string, line: string): 'retry' {
    this.bump(this.counts.errors, kind);
    this.failures++;
    if (this.failures === 1 || kind !== this.lastFailure) this.opts.log(`hub: ${line}; retrying with backoff (${this.queue.length} batches kept)`);
    this.lastFailure = kind;
    return 'retry';
  }

  /** One POST. 'sent' and 'rejected' dequeue the batch; 'retry' keeps it. */
  private async send(e: Entry): Promise<'sent' | 'rejected' | 'retry'> {
    let body: Buffer;
    try {
      body = this.read(e);
    } catch (err) {
      this.opts.log(`hub: spilled batch ${e.file} cannot be read, skipped: ${(err as Error).message}`);
      return 'rejected';
    }
    let res: { status: number; text: string };
    try {
      res = await this.post(body);
    } catch (err) {
      if (this.stopped) return 'retry'; // cut short by stop(): the batch is spilled, not a failure
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if ((err as Error).message === 'timeout') return this.failed('timeout', `${this.url.origin} did not answer within ${this.opts.timeoutMs} ms`);
      if (/CERT|SIGNATURE|TLS|SSL|ALTNAME/.test(code)) {
        return this.failed('tls', `the certificate of ${this.url.origin} cannot be trusted (${code}: ${(err as Error).message}): give its CA with --hub-ca-file`);
      }
      return this.failed('connection', `cannot reach ${this.url.origin}: ${code || (err as Error).message}`);
    }
    if (res.status >= 200 && res.status < 300) {
      if (this.failures > 0) this.opts.log(`hub: ${this.url.origin} takes batches again`);
      this.failures = 0;
      this.counts.sent++;
      this.counts.lastSuccessMs = Date.now();
      return 'sent';
    }
    if (res.status === 401 || res.status === 403) return this.failed('unauthorized', `the hub refused the token (HTTP ${res.status}): check --hub-token-file`);
    if (res.status === 429) return this.failed('throttled', 'the hub asks to slow down (HTTP 429)');
    if (res.status >= 500) return this.failed('unavailable', `the hub answered HTTP ${res.status}: ${hubError(res.text)}`);
    // any other 4xx: this batch will never be taken
    this.bump(this.counts.errors, 'rejected');
    this.bump(this.counts.droppedBatches, 'rejected');
    this.opts.log(`hub: batch ${e.seq} of instance ${e.instance} was rejected and dropped (HTTP ${res.status}): ${hubError(res.text)} (agent ${VERSION}, wire version ${WIRE_VERSION})`);
    this.failures = 0;
    return 'rejected';
  }

  private post(body: Buffer): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': body.length,
        ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
      };
      const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = request(this.url, { method: 'POST', headers, timeout: this.opts.timeoutMs, ...(this.opts.ca ? { ca: this.opts.ca } : {}) }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      this.req = req;
      req.end(body);
    });
  }

  /** Resolves once every queued batch was sent (or dropped). */
  idle(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Ships one last batch, tries for flushMs to send what is queued, then writes whatever is left to
   * the spill directory (if one is set) for the next run.
   */
  async stop(opts: { final?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    clearInterval(this.timer);
    clearTimeout(this.firstTick);
    this.unsubscribe?.();
    if (opts.final ?? true) this.tick();
    if (this.queue.length > 0) {
      // a hub that is away now is not waited for: backoff ends, one more try
      if (this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.kick();
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.idle(), new Promise<void>((r) => (timer = setTimeout(r, this.opts.flushMs)))]);
      clearTimeout(timer);
    }
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.inflight = undefined;
    this.req?.destroy();
    if (!this.opts.spillDir) {
      if (this.queue.length > 0) this.opts.log(`hub: ${this.queue.length} batches could not be sent before stopping and are lost (--hub-spill-dir keeps them)`);
      return;
    }
    const left = this.queue.filter((e) => e.body);
    let spilled = 0;
    for (const e of left) if (this.spill(e)) spilled++;
    if (spilled > 0) this.opts.log(`hub: ${spilled} unsent batches written to ${this.opts.spillDir} for the next start`);
  }
}

function writeAtomic(file: string, body: Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, body);
  renameSync(tmp, file);
}

/** The hub's `error` (and `hint`) from a JSON error body, else the body's first line. */
function hubError(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: unknown; hint?: unknown };
    if (typeof j.error === 'string') return typeof j.hint === 'string' && j.hint ? `${j.error} (${j.hint})` : j.error;
  } catch {
    // not JSON
  }
  return text.split('\n')[0]!.slice(0, 500) || '(no message)';
}

/**
 * What the shipper reads from an agent: its series after one collection, and its status (the
 * kernel's capabilities are probed once; they do not change while the agent runs).
 */
export function agentShipInput(agent: Agent): () => ShipInput {
  const probes = probeAll();
  const capabilities = Object.fromEntries(FEATURES.map((f) => [f, probes[f].status === 'supported']));
  const kernel = release();
  return () => {
    agent.collect();
    const s = agent.status();
    return {
      profiles: agent.profilesToShip(),
      families: agent.exporter.snapshot(),
      status: {
        collectors: [
          ...s.collectors.map((c) => ({ name: c.name, alternative: c.alternative, up: true })),
          ...s.failed.map((f) => ({ name: f.name, alternative: 'none', up: false, error: f.error.slice(0, 2000) })),
        ],
        capabilities,
        kernel,
      },
    };
  };
}
