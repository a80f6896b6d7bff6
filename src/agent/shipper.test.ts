import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { writeFileSync } from 'node:fs';
import { type AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { foldDeltas, Shipper, agentShipInput, type ShipInput, type ShipperOptions } from './shipper.js';
import { type FamilySnapshot } from './exporter.js';
import { type MetricDef } from '../collectors/contract.js';
import { checkBatch, type Batch } from '../wire/ingest.js';
import { Agent } from './agent.js';
import { EventLog } from './event-log.js';
import { eventually, needsKernel, sleep } from '../../test/kernel.js';
import { makeCertificates } from '../../test/tls.js';
import { startAgent } from '../../test/agent-process.js';

const COUNTER: MetricDef = { type: 'counter', name: 'periscope_things_total', labels: ['kind'], help: 'Things.' };
const GAUGE: MetricDef = { type: 'gauge', name: 'periscope_open_things', help: 'Open things.' };
const HIST: MetricDef = { type: 'histogram', name: 'periscope_wait_seconds', buckets: [1, 2], help: 'Waits.' };
const STATUS = { collectors: [{ name: 'fake', alternative: 'none', up: true }], capabilities: { btf: true }, kernel: '6.1.0' };

/** A source whose counters the test moves: `a` and `b` things, and a histogram of `n` waits of 1.5 s. */
class FakeSource {
  a = 0;
  b = 0;
  n = 0;
  open = 3;
  bump(): void {
    this.a += 3;
    this.b += 1;
    this.n += 2;
  }
  collect = (): ShipInput => {
    const families: FamilySnapshot[] = [
      {
        def: COUNTER,
        labelNames: ['kind'],
        series: [
          { labels: ['a'], value: this.a },
          { labels: ['b'], value: this.b },
        ],
      },
      { def: GAUGE, labelNames: [], series: [{ labels: [], value: this.open }] },
      { def: HIST, labelNames: [], series: [{ labels: [], value: { cumulative: [0, this.n], count: this.n, sum: this.n * 1.5 } }] },
    ];
    return { families, status: STATUS };
  };
}

type Mode = 'ok' | '503' | '401' | '400' | 'stall';

/** A stand-in hub: checks every batch with the wire schema, applies each (instance, seq) once, in order. */
class FakeHub {
  server: Server;
  port = 0;
  mode: Mode = 'ok';
  /** modes for the next requests, before `mode` applies */
  next: Mode[] = [];
  applied: Batch[] = [];
  requests: IncomingMessage['headers'][] = [];
  private last = new Map<string, number>();

  constructor(private readonly tls?: { cert: string; key: string }) {
    this.server = this.make();
  }

  private make(): Server {
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.handle(req, res);
    return this.tls ? createTlsServer(this.tls, handler) : createServer(handler);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.requests.push(req.headers);
      const mode = this.next.shift() ?? this.mode;
      const reply = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (mode === 'stall') return; // never answers
      if (mode === '503') return reply(503, { error: 'the store is away' });
      if (mode === '401' || req.headers.authorization !== 'Bearer hub-token-0123456789') return reply(401, { error: 'bad token' });
      if (mode === '400') return reply(400, { error: 'malformed batch: seq: too big', hint: 'upgrade' });
      assert.equal(req.url, '/api/v1/ingest');
      assert.equal(req.headers['content-encoding'], 'gzip');
      assert.equal(req.headers['content-type'], 'application/json');
      const check = checkBatch(JSON.parse(gunzipSync(Buffer.concat(chunks)).toString('utf8')));
      if (!check.ok) return reply(400, { error: check.error });
      const b = check.batch;
      const applied = b.seq > (this.last.get(b.agent.instance) ?? 0);
      if (applied) {
        this.last.set(b.agent.instance, b.seq);
        this.applied.push(b);
      }
      reply(200, { applied, seq: b.seq });
    });
  }

  async listen(port = 0): Promise<void> {
    this.server = this.make();
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** Sum of the deltas of a counter series (or of a histogram's count) over the applied batches. */
  sum(name: string, labels: string[] = [], instance?: string): number {
    let n = 0;
    for (const b of this.applied) {
      if (instance && b.agent.instance !== instance) continue;
      const s = b.families.find((f) => f.name === name)?.series.find((x) => x.labels.join() === labels.join());
      n += s?.delta ?? s?.hist_delta?.count ?? 0;
    }
    return n;
  }
}

async function setup(t: TestContext, opts: Partial<ShipperOptions> = {}): Promise<{ hub: FakeHub; src: FakeSource; shipper: Shipper; logs: string[] }> {
  const hub = new FakeHub();
  await hub.listen();
  const src = new FakeSource();
  const logs: string[] = [];
  const shipper = new Shipper({
    hub: hub.url,
    node: 'node-1',
    collect: src.collect,
    token: 'hub-token-0123456789',
    intervalMs: 3_600_000,
    backoffMinMs: 10,
    backoffMaxMs: 50,
    timeoutMs: 2_000,
    flushMs: 200,
    log: (l) => logs.push(l),
    ...opts,
  });
  t.after(async () => {
    await shipper.stop({ final: false });
    await hub.close().catch(() => undefined);
  });
  return { hub, src, shipper, logs };
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, sleep(ms).then(() => assert.fail(`${what} within ${ms} ms`))]);

test('batches arrive in order, seq 1, 2, 3, gzip-compressed with the bearer token, and pass the wire schema', async (t) => {
  const { hub, src, shipper } = await setup(t);
  shipper.start();
  for (let i = 0; i < 3; i++) {
    src.bump();
    shipper.tick();
  }
  await within(shipper.idle(), 5_000, 'every batch sent');
  assert.deepEqual(
    hub.applied.map((b) => b.seq),
    [1, 2, 3],
  );
  assert.ok(hub.requests.every((h) => h['content-encoding'] === 'gzip' && h.authorization === 'Bearer hub-token-0123456789'));
  const [first, second] = hub.applied;
  assert.equal(first!.agent.node, 'node-1');
  assert.equal(first!.agent.cgroup_subtree, '/');
  assert.equal(first!.agent.instance, shipper.instance);
  const things = (b: Batch): unknown => b.families.find((f) => f.name === 'periscope_things_total')!.series[0];
  assert.deepEqual(things(first!), { labels: ['a'], value: 3, delta: 3 }, 'first sight: delta = value');
  assert.deepEqual(things(second!), { labels: ['a'], value: 6, delta: 3 });
  assert.deepEqual(second!.families.find((f) => f.name === 'periscope_wait_seconds')!.series[0]!.hist_delta, { cumulative: [0, 2], count: 2, sum: 3 });
  assert.deepEqual(second!.families.find((f) => f.name === 'periscope_open_things')!.series[0], { labels: [], value: 3 });
  assert.equal(hub.sum('periscope_things_total', ['a']), src.a);
  assert.equal(shipper.counts.sent, 3);
});

test('the timer ships a batch every interval', async (t) => {
  const { hub, shipper } = await setup(t, { intervalMs: 40 });
  shipper.start();
  await sleep(300);
  assert.ok(hub.applied.length >= 3, `${hub.applied.length} batches`);
  assert.deepEqual(
    hub.applied.map((b) => b.seq),
    hub.applied.map((_b, i) => i + 1),
  );
});

test('a counter that goes down is read as a reset: its delta is the value, never negative', async (t) => {
  const { src, shipper } = await setup(t);
  src.a = 10;
  shipper.build(src.collect());
  src.a = 4;
  src.n = 0;
  const b = shipper.build(src.collect());
  assert.equal(b.families.find((f) => f.name === 'periscope_things_total')!.series[0]!.delta, 4);
  assert.ok(checkBatch(b).ok);
});

test('while the hub is down every batch is kept, then all are replayed in order and the deltas add up', async (t) => {
  const { hub, src, shipper, logs } = await setup(t);
  const port = hub.port;
  await hub.close();
  shipper.start();
  for (let i = 0; i < 6; i++) {
    src.bump();
    shipper.tick();
    await sleep(30);
  }
  assert.equal(shipper.waiting.length, 6);
  assert.ok((shipper.counts.errors.get('connection') ?? 0) > 0);
  assert.ok(logs.some((l) => /cannot reach/.test(l)), logs.join('\n'));
  await hub.listen(port);
  await within(shipper.idle(), 5_000, 'the backlog replayed');
  assert.deepEqual(
    hub.applied.map((b) => b.seq),
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal(hub.sum('periscope_things_total', ['a']), src.a);
  assert.equal(hub.sum('periscope_wait_seconds'), src.n);
});

test('503, 401 and a stalled hub are retried with the batches kept; 401 says the token was refused', async (t) => {
  const { hub, src, shipper, logs } = await setup(t, { timeoutMs: 150 });
  hub.next = ['503', '503', '401', 'stall'];
  shipper.start();
  src.bump();
  shipper.tick();
  src.bump();
  shipper.tick();
  await within(shipper.idle(), 5_000, 'the batches sent after the failures');
  assert.deepEqual(
    hub.applied.map((b) => b.seq),
    [1, 2],
  );
  assert.equal(shipper.counts.errors.get('unavailable'), 2);
  assert.equal(shipper.counts.errors.get('unauthorized'), 1);
  assert.equal(shipper.counts.errors.get('timeout'), 1);
  assert.ok(logs.some((l) => /the hub answered HTTP 503: the store is away/.test(l)), logs.join('\n'));
  hub.mode = '401';
  shipper.tick();
  await sleep(100);
  assert.ok(logs.some((l) => /the hub refused the token/.test(l)), logs.join('\n'));
  assert.equal(shipper.waiting.length, 1, 'a refused batch is kept');
  hub.mode = 'ok';
  await within(shipper.idle(), 5_000, 'the batch sent once the token is taken');
  assert.equal(hub.sum('periscope_things_total', ['a']), src.a);
});

test('a batch the hub rejects with 400 is dropped, counted and logged once, and the next one goes', async (t) => {
  const { hub, src, shipper, logs } = await setup(t);
  hub.next = ['400'];
  shipper.start();
  src.bump();
  shipper.tick();
  src.bump();
  shipper.tick();
  await within(shipper.idle(), 5_000, 'both batches answered');
  assert.deepEqual(
    hub.applied.map((b) => b.seq),
    [2],
  );
  assert.equal(shipper.counts.droppedBatches.get('rejected'), 1);
  const line = logs.filter((l) => /rejected/.test(l));
  assert.equal(line.length, 1);
  assert.match(line[0]!, /batch 1 of instance .* was rejected and dropped \(HTTP 400\): malformed batch: seq: too big \(upgrade\)/);
  const metrics = shipper.metrics().read();
  assert.deepEqual(metrics.get('periscope_hub_batches_dropped_total')!.find((r) => r.labels?.reason === 'rejected')!.value, 1);
});

test('a buffer too small drops the oldest batches but folds their counts into the next: totals stay exact', async (t) => {
  const { hub, src, shipper } = await setup(t, { bufferBytes: 1 });
  const port = hub.port;
  await hub.close();
  shipper.start();
  for (let i = 0; i < 8; i++) {
    src.bump();
    shipper.tick();
  }
  assert.ok(shipper.waiting.length <= 2, `${shipper.waiting.length} batches kept`);
  assert.ok(shipper.dropped.batches > 0);
  await hub.listen(port);
  await within(shipper.idle(), 5_000, 'what is left sent');
  assert.equal(hub.sum('periscope_things_total', ['a']), src.a, 'counter a');
  assert.equal(hub.sum('periscope_things_total', ['b']), src.b, 'counter b');
  assert.equal(hub.sum('periscope_wait_seconds'), src.n, 'histogram count');
  const last = hub.applied.at(-1)!;
  assert.ok(last.dropped.batches > 0 && last.dropped.samples > 0, JSON.stringify(last.dropped));
  const metrics = shipper.metrics().read();
  assert.ok((metrics.get('periscope_hub_batches_dropped_total')!.find((r) => r.labels?.reason === 'buffer_full')!.value as number) > 0);
});

test('spilled batches survive a restart and are sent before the new instance\'s', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-spill-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { hub, src, shipper } = await setup(t, { bufferBytes: 1, spillDir: dir });
  const port = hub.port;
  await hub.close();
  shipper.start();
  for (let i = 0; i < 4; i++) {
    src.bump();
    shipper.tick();
  }
  assert.ok(shipper.waiting.some((w) => w.onDisk), 'memory full: the oldest went to disk');
  await shipper.stop(); // one last batch, the hub is away: everything goes to disk
  const files = readdirSync(dir).sort();
  assert.equal(files.length, 5, files.join());
  const before = { a: src.a, instance: shipper.instance };

  // the next run: counters start again from zero in a new instance
  await hub.listen(port);
  const src2 = new FakeSource();
  src2.bump();
  const next = new Shipper({ hub: hub.url, node: 'node-1', collect: src2.collect, token: 'hub-token-0123456789', intervalMs: 3_600_000, backoffMinMs: 10, log: () => undefined, spillDir: dir });
  t.after(() => next.stop({ final: false }));
  next.start();
  next.tick();
  await within(next.idle(), 5_000, 'the spilled batches and the new one sent');
  assert.deepEqual(
    hub.applied.map((b) => [b.agent.instance === before.instance ? 'old' : 'new', b.seq]),
    [['old', 1], ['old', 2], ['old', 3], ['old', 4], ['old', 5], ['new', 1]],
  );
  assert.equal(hub.sum('periscope_things_total', ['a'], before.instance), before.a);
  assert.equal(readdirSync(dir).length, 0, 'sent files are removed');
});

test('a full spill directory drops its oldest batch, folded into the next', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-spill-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { hub, src, shipper } = await setup(t, { bufferBytes: 1, spillDir: dir, spillMaxBytes: 1500 });
  const port = hub.port;
  await hub.close();
  shipper.start();
  for (let i = 0; i < 10; i++) {
    src.bump();
    shipper.tick();
  }
  assert.ok(shipper.dropped.batches > 0);
  assert.ok(shipper.waiting.filter((w) => w.onDisk).reduce((n, w) => n + w.bytes, 0) <= 1500);
  await hub.listen(port);
  await within(shipper.idle(), 5_000, 'what is left sent');
  assert.equal(hub.sum('periscope_things_total', ['a']), src.a);
});

test('folding: deltas add per series, a series only in the dropped batch is carried', () => {
  const batch = (series: { labels: string[]; value: number; delta: number }[]): Batch => ({
    version: 1,
    agent: { node: 'n', instance: 'abcdefgh-1', version: '0', started: new Date(0).toISOString(), cgroup_subtree: '/' },
    seq: 1,
    time: new Date(0).toISOString(),
    status: STATUS,
    families: [{ name: 'x_total', type: 'counter', help: '', labels: ['k'], series }],
    events: [],
    dropped: { batches: 0, events: 0, samples: 0 },
  });
  const into = batch([{ labels: ['a'], value: 5, delta: 2 }]);
  foldDeltas(
    into,
    batch([
      { labels: ['a'], value: 3, delta: 3 },
      { labels: ['b'], value: 7, delta: 7 },
    ]),
  );
  assert.deepEqual(into.families[0]!.series, [
    { labels: ['a'], value: 5, delta: 5 },
    { labels: ['b'], value: 7, delta: 7 },
  ]);
});

test('a real agent\'s batch carries its series, status and events, and passes the wire schema', async (t) => {
  if (!needsKernel(t)) return;
  const agent = new Agent({ collectors: ['process'], node: 'ship-node', log: () => undefined });
  agent.start();
  t.after(() => agent.stop());
  const hub = new FakeHub();
  await hub.listen();
  const shipper = new Shipper({ hub: hub.url, node: agent.node, collect: agentShipInput(agent), events: agent.events, token: 'hub-token-0123456789', intervalMs: 3_600_000, log: () => undefined });
  agent.addSource(shipper.metrics());
  shipper.start();
  t.after(async () => {
    await shipper.stop({ final: false });
    await hub.close();
  });
  shipper.tick();
  const { run } = await import('../../test/kernel.js');
  await run('sh', ['-c', '/bin/true; /bin/true']);
  await sleep(200);
  shipper.tick();
  await within(shipper.idle(), 5_000, 'two batches sent');
  assert.deepEqual(
    hub.applied.map((b) => b.seq),
    [1, 2],
  );
  const [, second] = hub.applied;
  assert.ok(second!.status.collectors.some((c) => c.up && c.alternative.length > 0));
  assert.ok(Object.keys(second!.status.capabilities).length > 0);
  assert.ok(second!.events.some((e) => e.type === 'exec'), 'exec events since the first batch');
  const names = new Set(second!.families.map((f) => f.name));
  for (const n of ['periscope_process_execs_total', 'periscope_collector_up', 'periscope_hub_batches_sent_total']) assert.ok(names.has(n), n);
  const sent = second!.families.find((f) => f.name === 'periscope_hub_batches_sent_total')!.series[0]!;
  assert.equal(sent.value, 1, 'the first batch was acknowledged when the second was read');
});

test('HTTPS: the hub\'s certificate is checked against the CA given; without it the send fails and is retried', async (t) => {
  const certs = await makeCertificates();
  t.after(() => rmSync(certs.dir, { recursive: true, force: true }));
  const hub = new FakeHub({ cert: certs.cert, key: certs.key });
  await hub.listen();
  t.after(() => hub.close());
  const src = new FakeSource();
  const make = (ca?: string): Shipper =>
    new Shipper({ hub: hub.url, node: 'n', collect: src.collect, token: 'hub-token-0123456789', intervalMs: 3_600_000, backoffMinMs: 10, backoffMaxMs: 20, flushMs: 100, log: () => undefined, ...(ca ? { ca } : {}) });
  const untrusting = make();
  untrusting.start();
  untrusting.tick();
  await eventually(() => ((untrusting.counts.errors.get('tls') ?? 0) > 0 ? true : undefined), 5_000, 'the unknown CA refused');
  await untrusting.stop({ final: false });
  assert.equal(hub.applied.length, 0);
  const trusting = make(certs.ca);
  trusting.start();
  trusting.tick();
  await within(trusting.idle(), 5_000, 'the batch sent over HTTPS');
  t.after(() => trusting.stop({ final: false }));
  assert.equal(hub.applied.length, 1);
});

test('periscope agent --hub: the banner says where batches go, and SIGTERM ships a last batch before exiting', async (t) => {
  if (!needsKernel(t)) return;
  const hub = new FakeHub();
  await hub.listen();
  t.after(() => hub.close());
  const dir = mkdtempSync(join(tmpdir(), 'periscope-ship-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // one token for the agent's API and the hub: --hub-token-file defaults to --token-file
  writeFileSync(join(dir, 'token'), 'hub-token-0123456789\n');
  const agent = await startAgent(['--token-file', join(dir, 'token'), '--hub', hub.url, '--hub-interval', '300', '--no-kubernetes']);
  t.after(() => agent.stop());
  assert.match(agent.log(), new RegExp(`shipping to ${hub.url} every 300s`));
  assert.equal(hub.applied.length, 0, 'the first batch is due in 300 s');
  assert.equal(await agent.stop(), 0, agent.log());
  assert.deepEqual(
    hub.applied.map((b) => b.seq),
    [1],
    agent.log(),
  );
  const [batch] = hub.applied;
  assert.ok(batch!.families.some((f) => f.name === 'periscope_collector_up'));
  assert.ok(batch!.families.some((f) => f.name === 'periscope_hub_buffer_bytes'), 'the shipper\'s own metrics are the agent\'s');
});

test('each batch carries the events logged since the previous one; more than maxPendingEvents are dropped and counted', async (t) => {
  const log = new EventLog(100, ['tick']);
  const { src, shipper } = await setup(t, { events: log, maxPendingEvents: 3 });
  shipper.start();
  const push = (n: number): void => {
    for (let i = 0; i < n; i++) {
      log.push({ type: 'tick', time: new Date().toISOString(), node: 'n', cgroup: '/', cgroup_id: 1, namespace: '', pod: '', container: '', workload_kind: '', workload: '' });
    }
  };
  push(2);
  const first = shipper.build(src.collect());
  assert.deepEqual(
    first.events.map((e) => e.seq),
    [1, 2],
  );
  push(5);
  const second = shipper.build(src.collect());
  assert.deepEqual(
    second.events.map((e) => e.seq),
    [3, 4, 5],
  );
  assert.equal(second.dropped.events, 2);
  assert.equal(log.subscriberDrops, 0, 'the live API streams\' drop count is not the shipper\'s');
  assert.ok(checkBatch(second).ok);
  assert.equal(shipper.metrics().read().get('periscope_hub_events_dropped_total')![0]!.value, 2);
});
