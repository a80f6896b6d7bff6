/**
 * Holds the fake API server to real clients: kubectl lists and watches through it, @kubernetes/client-node's
 * informer machinery (ListWatch, makeInformer) lists, watches and recovers from dropped watches, expired
 * history and a server restart, and raw HTTP checks pin selectors, chunking, 410 Expired and bookmarks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawn, execFile } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import { CoreV1Api, KubeConfig, ListWatch, Watch, makeInformer, type Informer, type V1Pod } from '@kubernetes/client-node';
import { FakeApiServer, type FakeApiServerOptions, type StoredObject } from './fake-apiserver.js';
import { endpointSlice, service } from './objects.js';

const KUBECTL = '/usr/bin/kubectl';

interface Harness {
  fake: FakeApiServer;
  kubeconfig: string;
  dir: string;
}

async function withFake(opts: FakeApiServerOptions, body: (h: Harness) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fake-apiserver-'));
  const fake = await FakeApiServer.start(opts);
  try {
    await body({ fake, kubeconfig: fake.kubeconfig(join(dir, 'kubeconfig')), dir });
  } finally {
    await fake.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function eventually<T>(fn: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** The promise's value, or a failure after timeoutMs (so a hung stream fails the test and cleanup still runs). */
async function within<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function pod(name: string, namespace: string, node: string, labels: Record<string, string> = {}): StoredObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels } as StoredObject['metadata'],
    spec: { nodeName: node, containers: [{ name: 'main', image: 'busybox' }] },
    status: { phase: 'Running', containerStatuses: [{ name: 'main', ready: true, restartCount: 0 }] },
  };
}

function kubectl(h: Harness, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(KUBECTL, ['--kubeconfig', h.kubeconfig, '--cache-dir', join(h.dir, 'cache'), ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kubectl ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

interface WatchEvent {
  type: string;
  object: {
    kind?: string;
    apiVersion?: string;
    code?: number;
    reason?: string;
    message?: string;
    status?: string;
    metadata?: { name?: string; resourceVersion?: string; annotations?: Record<string, string> };
  };
}

/** Splits a stream of concatenated (possibly pretty-printed) JSON objects. */
class JsonObjects {
  private buf = '';
  private pos = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;

  push(text: string): unknown[] {
    const out: unknown[] = [];
    this.buf += text;
    for (; this.pos < this.buf.length; this.pos++) {
      const c = this.buf[this.pos];
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === '{') this.depth++;
      else if (c === '}' && --this.depth === 0) {
        const start = this.buf.indexOf('{');
        out.push(JSON.parse(this.buf.slice(start, this.pos + 1)));
        this.buf = this.buf.slice(this.pos + 1);
        this.pos = -1;
      }
    }
    return out;
  }
}

interface RawWatch {
  events: WatchEvent[];
  headers: Headers;
  /** resolves when the server ends the stream (or close() was called) */
  ended: Promise<void>;
  close(): void;
}

async function openWatch(url: string): Promise<RawWatch> {
  const ac = new AbortController();
  const res = await fetch(url, { signal: ac.signal });
  assert.equal(res.status, 200, `watch ${url} answered ${res.status}`);
  const events: WatchEvent[] = [];
  const body = res.body;
  assert.ok(body);
  const ended = (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() !== '') events.push(JSON.parse(line) as WatchEvent);
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return { events, headers: res.headers, ended, close: () => ac.abort() };
}

async function getJson(url: string): Promise<{ metadata: { resourceVersion: string; continue?: string }; items: StoredObject[]; kind: string }> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url} answered ${res.status}: ${await res.clone().text()}`);
  return (await res.json()) as { metadata: { resourceVersion: string; continue?: string }; items: StoredObject[]; kind: string };
}

const names = (items: readonly { metadata?: { name?: string } }[]): string[] => items.map((o) => o.metadata?.name ?? '?').sort();

test('kubectl lists the pods created through the class API, as JSON and as its table', { timeout: 15_000 }, async () => {
  await withFake({}, async (h) => {
    h.fake.create({ kind: 'Namespace', metadata: { name: 'team-a' } });
    h.fake.create(pod('p1', 'team-a', 'node-a'));
    h.fake.create(pod('p2', 'team-a', 'node-b'));
    h.fake.create(pod('p3', 'team-b', 'node-a'));

    const all = JSON.parse(await kubectl(h, ['get', 'pods', '-A', '-o', 'json'])) as { kind: string; items: StoredObject[] };
    assert.equal(all.kind, 'List');
    assert.deepEqual(names(all.items), ['p1', 'p2', 'p3']);
    const p1 = all.items.find((o) => o.metadata.name === 'p1');
    assert.equal(p1?.metadata.namespace, 'team-a');
    assert.match(p1?.metadata.uid ?? '', /^[0-9a-f-]{36}$/);
    assert.match(p1?.metadata.resourceVersion ?? '', /^\d+$/);

    const table = await kubectl(h, ['get', 'pods', '-n', 'team-a']);
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
    assert.match(table, /^p1\s+1\/1\s+Running\s+0\s+\d+s$/m);
    assert.match(table, /^p2\s+1\/1\s+Running\s+0\s+\d+s$/m);
    assert.doesNotMatch(table, /p3/);
    assert.equal(lines.length, 3);

    const ns = await kubectl(h, ['get', 'ns', '-o', 'name']);
    assert.equal(ns.trim(), 'namespace/team-a');
  });
});

test('kubectl lists Services (as its table) and EndpointSlices (discovery.k8s.io, found through group discovery)', { timeout: 15_000 }, async () => {
  await withFake({}, async (h) => {
    h.fake.create(service({ namespace: 'shop', name: 'cart', clusterIPs: ['10.96.0.10'], ports: [80, 443] }));
    h.fake.create(service({ namespace: 'shop', name: 'cart-headless', clusterIPs: ['None'] }));
    h.fake.create(service({ namespace: 'other', name: 'elsewhere', clusterIPs: ['10.96.0.11'] }));
    h.fake.create(endpointSlice({ namespace: 'shop', service: 'cart', addresses: ['10.244.1.7'], name: 'cart-abcde' }));

    const table = await kubectl(h, ['get', 'svc', '-n', 'shop']);
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$/);
    assert.match(table, /^cart\s+ClusterIP\s+10\.96\.0\.10\s+<none>\s+80\/TCP,443\/TCP\s+\d+s$/m);
    assert.match(table, /^cart-headless\s+ClusterIP\s+None\s+/m);
    assert.equal(lines.length, 3, 'the other namespace is not listed');

    const slices = JSON.parse(await kubectl(h, ['get', 'endpointslices.discovery.k8s.io', '-A', '-o', 'json'])) as { items: StoredObject[] };
    assert.deepEqual(names(slices.items), ['cart-abcde']);
    assert.equal(slices.items[0]?.apiVersion, 'discovery.k8s.io/v1');
    assert.equal((await kubectl(h, ['get', 'endpointslices', '-n', 'shop', '-o', 'name'])).trim(), 'endpointslice.discovery.k8s.io/cart-abcde');
    const groups = (await kubectl(h, ['api-resources', '--api-group', 'discovery.k8s.io', '-o', 'name'])).trim();
    assert.equal(groups, 'endpointslices.discovery.k8s.io');
  });
});

test('kubectl get --watch sees existing pods, then pods created and deleted after it started', { timeout: 15_000 }, async () => {
  await withFake({}, async (h) => {
    h.fake.create(pod('early', 'team-a', 'node-a'));
    h.fake.create(pod('elsewhere', 'team-b', 'node-a'));
    const child = spawn(
      KUBECTL,
      ['--kubeconfig', h.kubeconfig, '--cache-dir', join(h.dir, 'cache'), 'get', 'pods', '-n', 'team-a', '--watch', '--output-watch-events', '-o', 'json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const events: WatchEvent[] = [];
    const splitter = new JsonObjects();
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => events.push(...(splitter.push(d) as WatchEvent[])));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const seen = (type: string, name: string) => () => events.find((e) => e.type === type && e.object.metadata?.name === name);
    try {
      await eventually(seen('ADDED', 'early'), 10_000, `kubectl to print ADDED early (stderr: ${stderr})`);
      // the list is printed first, then kubectl opens its watch: wait for it so "late" is a watch event
      await eventually(() => (h.fake.openWatches('pods') > 0 ? true : undefined), 10_000, 'kubectl to open its watch');
      h.fake.create(pod('late', 'team-a', 'node-a'));
      await eventually(seen('ADDED', 'late'), 5_000, 'ADDED late');
      h.fake.delete('pods', 'team-a', 'late');
      const deleted = await eventually(seen('DELETED', 'late'), 5_000, 'DELETED late');
      assert.ok(Number(deleted.object.metadata?.resourceVersion) > 0);
      assert.equal(events.filter((e) => e.object.metadata?.name === 'elsewhere').length, 0, 'another namespace leaked into the watch');
      assert.ok(h.fake.count({ verb: 'watch', resource: 'pods' }) >= 1);
    } finally {
      child.kill('SIGTERM');
      await within(exited, 5000, 'kubectl to exit');
    }
  });
});

test('lists filter by field and label selectors, and chunk with limit and continue', { timeout: 15_000 }, async () => {
  await withFake({}, async ({ fake }) => {
    fake.create(pod('a1', 'ns1', 'node-a', { app: 'web', tier: 'front' }));
    fake.create(pod('a2', 'ns2', 'node-a', { app: 'db' }));
    fake.create(pod('a3', 'ns1', 'node-a'));
    fake.create(pod('b1', 'ns1', 'node-b', { app: 'web' }));
    fake.create(pod('b2', 'ns2', 'node-b'));
    const base = `${fake.url}/api/v1/pods`;
    const q = (params: Record<string, string>) => `${base}?${new URLSearchParams(params).toString()}`;

    const onA = await getJson(q({ fieldSelector: 'spec.nodeName=node-a' }));
    assert.equal(onA.kind, 'PodList');
    assert.deepEqual(names(onA.items), ['a1', 'a2', 'a3']);
    assert.equal(onA.metadata.resourceVersion, fake.resourceVersion);
    assert.deepEqual(names((await getJson(q({ fieldSelector: 'spec.nodeName!=node-a' }))).items), ['b1', 'b2']);
    assert.deepEqual(names((await getJson(q({ fieldSelector: 'spec.nodeName=node-a,metadata.namespace=ns1' }))).items), ['a1', 'a3']);
    assert.deepEqual(names((await getJson(q({ fieldSelector: 'metadata.name=b2' }))).items), ['b2']);
    assert.deepEqual(names((await getJson(`${fake.url}/api/v1/namespaces/ns2/pods?fieldSelector=spec.nodeName%3Dnode-b`)).items), ['b2']);
    assert.deepEqual(names((await getJson(q({ labelSelector: 'app=web' }))).items), ['a1', 'b1']);
    assert.deepEqual(names((await getJson(q({ labelSelector: 'app!=web' }))).items), ['a2', 'a3', 'b2']);
    assert.deepEqual(names((await getJson(q({ labelSelector: 'tier' }))).items), ['a1']);
    assert.deepEqual(names((await getJson(q({ labelSelector: 'app,!tier' }))).items), ['a2', 'b1']);
    assert.deepEqual(names((await getJson(q({ labelSelector: 'app in (db,web)', fieldSelector: 'spec.nodeName=node-b' }))).items), ['b1']);
    assert.equal((await fetch(q({ labelSelector: 'a b c' }))).status, 400);

    const single = (await (await fetch(`${fake.url}/api/v1/namespaces/ns1/pods/a1`)).json()) as StoredObject;
    assert.equal(single.metadata.name, 'a1');
    const missing = (await (await fetch(`${fake.url}/api/v1/namespaces/ns1/pods/zz`)).json()) as { kind: string; code: number; reason: string };
    assert.deepEqual([missing.kind, missing.code, missing.reason], ['Status', 404, 'NotFound']);
    assert.equal((await fetch(`${fake.url}/api/v1/widgets`)).status, 404);

    // chunks of 2 walk all five pods in namespace/name order, each page pinned to the first page's version
    const pages: string[][] = [];
    let cont: string | undefined;
    let firstRv: string | undefined;
    do {
      const page = await getJson(q(cont === undefined ? { limit: '2' } : { limit: '2', continue: cont }));
      pages.push(page.items.map((o) => o.metadata.name));
      firstRv ??= page.metadata.resourceVersion;
      assert.equal(page.metadata.resourceVersion, firstRv);
      cont = page.metadata.continue;
      if (pages.length === 1) {
        // writes between pages do not show: the walk is a snapshot at the first page's version
        fake.create(pod('zz', 'ns9', 'node-c'));
        fake.delete('pods', 'ns2', 'b2');
      }
    } while (cont !== undefined && pages.length < 10);
    assert.deepEqual(pages, [['a1', 'a3'], ['b1', 'a2'], ['b2']]);
    assert.deepEqual(names(fake.list('pods')), ['a1', 'a2', 'a3', 'b1', 'zz']);
  });
});

test('watches replay history, apply selectors, answer an expired version with 410, and send bookmarks when asked', { timeout: 15_000 }, async () => {
  await withFake({ historyLimit: 3, bookmarkIntervalMs: 100 }, async ({ fake }) => {
    const base = `${fake.url}/api/v1/pods`;
    const first = fake.create(pod('w0', 'ns', 'node-a', { app: 'web' }));

    // from "0": ADDED for what exists, then live events; only node-a's pods
    const live = await openWatch(`${base}?watch=1&resourceVersion=0&fieldSelector=spec.nodeName%3Dnode-a`);
    assert.match(live.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(live.headers.get('transfer-encoding'), 'chunked');
    await eventually(() => live.events.find((e) => e.type === 'ADDED' && e.object.metadata?.name === 'w0'), 3000, 'initial ADDED');
    fake.create(pod('other', 'ns', 'node-b'));
    const w1 = fake.create(pod('w1', 'ns', 'node-a', { app: 'web' }));
    await eventually(() => live.events.find((e) => e.type === 'ADDED' && e.object.metadata?.name === 'w1'), 3000, 'ADDED w1');

    // a label watch sees a pod leave its selection as DELETED
    const labelled = await openWatch(`${base}?watch=true&resourceVersion=${fake.resourceVersion}&labelSelector=app%3Dweb`);
    fake.update({ ...w1, metadata: { ...w1.metadata, labels: { app: 'db' } } });
    const left = await eventually(() => labelled.events.find((e) => e.type === 'DELETED'), 3000, 'DELETED on leaving the selection');
    assert.equal(left.object.metadata?.name, 'w1');
    assert.equal(left.object.metadata?.resourceVersion, fake.resourceVersion);
    await eventually(() => live.events.find((e) => e.type === 'MODIFIED' && e.object.metadata?.name === 'w1'), 3000, 'MODIFIED w1');
    assert.equal(live.events.filter((e) => e.object.metadata?.name === 'other').length, 0, 'node-b pod leaked into a node-a watch');
    assert.equal(live.events.filter((e) => e.type === 'BOOKMARK').length, 0, 'bookmarks were not asked for');
    live.close();
    labelled.close();

    // resuming from a version still in history replays exactly what came after it
    const resumeFrom = fake.resourceVersion;
    fake.delete('pods', 'ns', 'other');
    const resumed = await openWatch(`${base}?watch=true&resourceVersion=${resumeFrom}`);
    await eventually(() => resumed.events.find((e) => e.type === 'DELETED'), 3000, 'replayed DELETED');
    assert.deepEqual(
      resumed.events.map((e) => [e.type, e.object.metadata?.name]),
      [['DELETED', 'other']],
    );
    resumed.close();

    // w0's version has fallen out of the 3-change history
    const expired = await openWatch(`${base}?watch=true&resourceVersion=${first.metadata.resourceVersion}`);
    await within(expired.ended, 3000, 'the server to end an expired watch');
    assert.equal(expired.events.length, 1);
    const err = expired.events[0]!;
    assert.equal(err.type, 'ERROR');
    assert.equal(err.object.kind, 'Status');
    assert.equal(err.object.status, 'Failure');
    assert.equal(err.object.code, 410);
    assert.equal(err.object.reason, 'Expired');
    assert.match(err.object.message ?? '', new RegExp(`^too old resource version: ${first.metadata.resourceVersion} \\(\\d+\\)$`));

    // expireHistory() makes even the latest version a client has seen too old
    const latest = fake.resourceVersion;
    fake.expireHistory();
    const afterExpire = await openWatch(`${base}?watch=true&resourceVersion=${latest}`);
    await within(afterExpire.ended, 3000, 'the server to end an expired watch');
    assert.equal(afterExpire.events[0]?.object.code, 410);

    // bookmarks carry the current version and arrive periodically; timeoutSeconds ends the stream
    const started = Date.now();
    const bm = await openWatch(`${base}?watch=true&resourceVersion=${fake.resourceVersion}&allowWatchBookmarks=true&timeoutSeconds=1`);
    await eventually(() => (bm.events.filter((e) => e.type === 'BOOKMARK').length >= 2 ? true : undefined), 3000, 'two bookmarks');
    const mark = bm.events.find((e) => e.type === 'BOOKMARK')!;
    assert.deepEqual([mark.object.kind, mark.object.apiVersion, mark.object.metadata?.resourceVersion], ['Pod', 'v1', fake.resourceVersion]);
    await within(bm.ended, 3000, 'timeoutSeconds to end the watch');
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 3000, `timeoutSeconds=1 ended the watch after ${took} ms`);
  });
});

test('a client-node informer follows changes and recovers from dropped watches, expired history and a restart', { timeout: 15_000 }, async () => {
  await withFake({}, async ({ fake, kubeconfig }) => {
    fake.create(pod('a0', 'ns', 'node-a', { app: 'web' }));
    fake.create(pod('b0', 'ns', 'node-b', { app: 'web' }));
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const fieldSelector = 'spec.nodeName=node-a';
    // client-node 2.0.1's makeInformer takes a *label* selector as its fourth argument; a field selector
    // needs ListWatch itself (makeInformer is `new ListWatch(path, new Watch(kc), list, false, labels)`)
    const byNode = new ListWatch<V1Pod>('/api/v1/pods', new Watch(kc), () => core.listPodForAllNamespaces({ fieldSelector }), false, undefined, fieldSelector);
    const byLabel = makeInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces({ labelSelector: 'app=web' }), 'app=web');
    const seen: string[] = [];
    const labelSeen: string[] = [];
    let stopping = false;
    let errors = 0;
    const informers: [Informer<V1Pod>, string[]][] = [
      [byNode, seen],
      [byLabel, labelSeen],
    ];
    for (const [inf, log] of informers) {
      inf.on('add', (p) => log.push(`add:${p.metadata?.name}`));
      inf.on('update', (p) => log.push(`update:${p.metadata?.name}`));
      inf.on('delete', (p) => log.push(`delete:${p.metadata?.name}`));
      // client-node stops on a watch error; restarting from the error callback is its documented pattern
      inf.on('error', () => {
        errors++;
        setTimeout(() => {
          if (!stopping) inf.start().catch(() => undefined);
        }, 100);
      });
    }
    const saw = (entry: string, log = seen) => eventually(() => (log.includes(entry) ? true : undefined), 8000, `${entry} (saw ${log.join(' ')})`);
    const watchesOpen = (n: number) => eventually(() => (fake.openWatches('pods') >= n ? true : undefined), 8000, `${n} open pod watches`);
    try {
      await byNode.start();
      await byLabel.start();
      await saw('add:a0');
      await saw('add:b0', labelSeen);
      await watchesOpen(2);
      const nodeWatch = fake.requests.find((r) => r.verb === 'watch' && r.query['fieldSelector'] === fieldSelector);
      assert.ok(nodeWatch, 'the informer did not pass its field selector to the watch');
      assert.ok(nodeWatch.authenticated, 'client-node did not send the kubeconfig token');

      const a1 = fake.create(pod('a1', 'ns', 'node-a'));
      fake.create(pod('b1', 'ns', 'node-b'));
      await saw('add:a1');
      fake.update({ ...a1, metadata: { ...a1.metadata, labels: { app: 'web' } } });
      await saw('update:a1');
      await saw('add:a1', labelSeen);
      fake.delete('pods', 'ns', 'a1');
      await saw('delete:a1');
      await saw('delete:a1', labelSeen);

      // abruptly dropped watches: the informers come back and see later changes
      const watchesBefore = fake.count({ verb: 'watch', resource: 'pods' });
      assert.equal(fake.dropWatches(), 2);
      fake.create(pod('a2', 'ns', 'node-a'));
      await saw('add:a2');
      await watchesOpen(2);
      assert.ok(fake.count({ verb: 'watch', resource: 'pods' }) >= watchesBefore + 2);

      // history expired while disconnected: 410, then a relist that finds the new pod
      const listsBefore = fake.count({ verb: 'list', resource: 'pods' });
      fake.expireHistory();
      fake.dropWatches();
      fake.create(pod('a3', 'ns', 'node-a'));
      await saw('add:a3');
      assert.ok(fake.count({ verb: 'list', resource: 'pods' }) > listsBefore, 'no relist after 410');
      await watchesOpen(2);

      // the API server restarts (same port, same store); changes made while it was down show up after
      await fake.stop();
      fake.create(pod('a4', 'ns', 'node-a', { app: 'web' }));
      fake.delete('pods', 'ns', 'a2');
      await sleep(300);
      await fake.start();
      await saw('add:a4');
      await saw('delete:a2');
      await saw('add:a4', labelSeen);
      await watchesOpen(2);
      fake.create(pod('a5', 'ns', 'node-a'));
      await saw('add:a5');

      assert.deepEqual(names(byNode.list()), names(fake.list('pods', { fieldSelector })));
      assert.deepEqual(names(byLabel.list()), names(fake.list('pods', { labelSelector: 'app=web' })));
      assert.ok(!seen.some((e) => e.endsWith(':b0') || e.endsWith(':b1')), `node-b pods reached the node-a informer: ${seen.join(' ')}`);
      assert.ok(errors >= 2, 'the dropped watches and the restart were not reported as errors');
    } finally {
      stopping = true;
      await byNode.stop();
      await byLabel.stop();
    }
  });
});

test('a watcher that stops reading is dropped once its backlog passes the bound, and a reading one is not', { timeout: 15_000 }, async () => {
  await withFake({ maxWatchBacklog: 50 }, async ({ fake }) => {
    const stalled = connect(fake.port, '127.0.0.1');
    await within(new Promise<void>((resolve) => stalled.once('connect', () => resolve())), 3000, 'a connection');
    stalled.pause(); // never reads: the kernel buffers fill, then the server's backlog
    stalled.write('GET /api/v1/pods?watch=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const healthy = await openWatch(`${fake.url}/api/v1/pods?watch=true&resourceVersion=${fake.resourceVersion}`);
    try {
      await eventually(() => (fake.openWatches('pods') === 2 ? true : undefined), 3000, 'both watches to open');
      const big = 'x'.repeat(64 * 1024);
      let created = 0;
      while (fake.openWatches('pods') === 2 && created < 1000) {
        fake.create({ kind: 'Pod', metadata: { name: `big-${created}`, namespace: 'ns', annotations: { big } } });
        created++;
        await yieldToLoop();
      }
      assert.ok(created < 1000, 'the stalled watcher was never dropped');
      assert.equal(fake.openWatches('pods'), 1);
      await eventually(() => (healthy.events.length === created ? true : undefined), 5000, `all ${created} events at the reading watcher`);
    } finally {
      stalled.destroy();
      healthy.close();
    }
  });
});
