import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubernetesInventory, describeError } from './kubernetes.js';
import { type PeriscopeError } from '../kernel/errors.js';
import { writeKubeconfig } from '../../test/kubeconfig.js';
import { freePort } from '../../test/agent-process.js';
import { FakeApiServer } from '../../test/e2e/fake-apiserver.js';
import { deploymentPod } from '../../test/e2e/objects.js';
import { eventually } from '../../test/kernel.js';

async function setUp(t: { after: (fn: () => Promise<void> | void) => void }, opts: { graceMs?: number } = {}): Promise<{ api: FakeApiServer; inv: KubernetesInventory }> {
  const api = await FakeApiServer.start();
  const kubeconfig = api.kubeconfig(join(mkdtempSync(join(tmpdir(), 'periscope-kube-')), 'config'));
  const inv = new KubernetesInventory({ node: 'node-a', kubeconfig, graceMs: opts.graceMs ?? 60_000, maxBackoffMs: 500, log: () => undefined });
  t.after(async () => {
    inv.stop();
    await api.stop();
  });
  return { api, inv };
}

function addDeployment(api: FakeApiServer, name: string, node = 'node-a'): string {
  const o = deploymentPod({ namespace: 'shop', deployment: name, node, containers: { app: `containerd://${'c'.repeat(64)}` }, ips: ['10.244.0.9'] });
  api.create(o.deployment);
  api.create(o.replicaSet);
  api.create(o.pod);
  return o.pod.metadata.uid;
}

test('knows the pods of its node with their containers, IPs and owning Deployment', async (t) => {
  const { api, inv } = await setUp(t);
  const uid = addDeployment(api, 'cart');
  addDeployment(api, 'elsewhere', 'node-b');
  inv.start();
  const pod = await eventually(() => {
    const p = inv.pod(uid);
    return p?.workloadKind === 'Deployment' ? p : undefined;
  }, 5_000, 'the pod and its Deployment');
  assert.equal(pod.workload, 'cart');
  assert.equal(pod.namespace, 'shop');
  assert.equal(pod.containers.get('c'.repeat(64)), 'app');
  assert.deepEqual(pod.ips, ['10.244.0.9']);
  assert.equal(inv.podByIp('10.244.0.9')?.uid, uid, 'pod IP → pod, for the network collectors');
  assert.equal(inv.podByIp('10.244.0.10'), undefined);
  assert.equal(inv.size, 1, "pods of other nodes are not this node's (attribution, all())");
  assert.deepEqual(
    inv.all().map((p) => p.uid),
    [uid],
  );
  assert.ok(
    api.requests.some((r) => r.verb === 'watch' && r.resource === 'pods' && r.query.fieldSelector === undefined),
    'in cluster scope (the default) the pod watch asks for every pod, to name peers',
  );
});

test('follows a dropped watch, an expired resourceVersion (410) and an API server restart', async (t) => {
  const { api, inv } = await setUp(t);
  inv.start();
  const first = addDeployment(api, 'a');
  await eventually(() => inv.pod(first), 5_000, 'the first pod');

  api.dropWatches();
  const second = addDeployment(api, 'b');
  await eventually(() => inv.pod(second), 5_000, 'a pod created after the watch was dropped');

  const listsBefore = inv.lists;
  api.expireHistory();
  api.dropWatches();
  const third = addDeployment(api, 'c');
  await eventually(() => inv.pod(third), 5_000, 'a pod created after the history expired');
  assert.ok(inv.lists > listsBefore, 'a 410 makes the informer list again');

  await api.stop();
  await eventually(() => (inv.connected ? undefined : true), 5_000, 'the inventory to notice the API server is gone');
  assert.ok(inv.pod(first), 'the last known pods are still served while the API server is down');
  api.delete('pods', 'shop', inv.pod(second)!.name);
  const fourth = addDeployment(api, 'd');
  await api.start();
  await eventually(() => (inv.pod(fourth) && inv.pod(second)?.deletedAt !== undefined ? true : undefined), 10_000, 'the inventory after the restart');
  assert.ok(inv.errors.watch_pods >= 1, 'errors are counted');
});

test('backs off while the API server is away, doubling the wait up to the cap', async (t) => {
  const api = await FakeApiServer.start();
  const kubeconfig = api.kubeconfig(join(mkdtempSync(join(tmpdir(), 'periscope-kube-')), 'config'));
  const inv = new KubernetesInventory({ node: 'node-a', kubeconfig, maxBackoffMs: 1_000, log: () => undefined });
  t.after(async () => {
    inv.stop();
    await api.stop();
  });
  inv.start();
  await eventually(() => (inv.connected ? true : undefined), 5_000, 'the first list');
  await api.stop();
  const errorsAtStop = inv.errors.watch_pods;
  await new Promise((r) => setTimeout(r, 4_000));
  // 250, 500, 1000, 1000, 1000 ms: about five attempts in four seconds; without backoff, dozens
  const attempts = inv.errors.watch_pods - errorsAtStop;
  assert.ok(attempts >= 3 && attempts <= 7, `${attempts} attempts in 4 s`);
  assert.equal(inv.connected, false);
  await api.start();
  await eventually(() => (inv.connected ? true : undefined), 3_000, 'the inventory to reconnect within the cap');
});

test('forgets deleted pods after the grace period, so 50 pods of churn leave nothing behind', async (t) => {
  let now = 0;
  const api = await FakeApiServer.start();
  const kubeconfig = api.kubeconfig(join(mkdtempSync(join(tmpdir(), 'periscope-kube-')), 'config'));
  const inv = new KubernetesInventory({ node: 'node-a', kubeconfig, graceMs: 1_000, log: () => undefined, now: () => now });
  t.after(async () => {
    inv.stop();
    await api.stop();
  });
  inv.start();
  const uids = Array.from({ length: 50 }, (_x, i) => addDeployment(api, `w${i}`));
  await eventually(() => (uids.every((u) => inv.pod(u)) ? true : undefined), 10_000, '50 pods');
  for (const p of api.list('pods')) api.delete('pods', p.metadata.namespace, p.metadata.name);
  await eventually(() => (uids.every((u) => inv.pod(u)?.deletedAt !== undefined) ? true : undefined), 10_000, '50 deletions');
  assert.equal(inv.size, 50, 'deleted pods keep their names during the grace period');
  now += 1_000;
  assert.equal(inv.expire().length, 50);
  assert.equal(inv.size, 0);
});

test('describeError follows the cause chain and says it on one line', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
  assert.equal(describeError(new TypeError('fetch failed', { cause: refused })), 'fetch failed: connect ECONNREFUSED 127.0.0.1:6443');
  const reset = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
  assert.equal(describeError(new Error('fetch failed', { cause: reset })), 'fetch failed: other side closed (UND_ERR_SOCKET)');
  assert.equal(describeError(new Error('error: you must be logged in\n  run login first\n')), 'error: you must be logged in run login first');
  assert.equal(describeError(new Error('')), 'unknown error');
  assert.equal(describeError('a string'), 'a string');
  assert.ok(describeError(new Error('x'.repeat(1000))).length <= 300);
});

test('check() refuses credentials whose client certificate file is missing, naming the file', async () => {
  const kubeconfig = writeKubeconfig('https://127.0.0.1:6443', { clientCertificate: '/nonexistent/client.crt', clientKey: '/nonexistent/client.key' });
  const inv = new KubernetesInventory({ node: 'node-a', kubeconfig, log: () => undefined });
  await assert.rejects(inv.check(), (err: PeriscopeError) => {
    assert.match(err.message, /^the Kubernetes credentials of .* cannot be used: ENOENT: no such file or directory, open '\/nonexistent\/client\.crt'$/);
    assert.match(err.hint, /--no-kubernetes/);
    return true;
  });
});

test('check() refuses credentials whose exec plugin fails, with what the plugin said', async () => {
  const silent = new KubernetesInventory({ node: 'node-a', kubeconfig: writeKubeconfig('https://127.0.0.1:6443', { exec: { command: '/bin/false' } }), log: () => undefined });
  await assert.rejects(silent.check(), /cannot be used: exec plugin \/bin\/false: it failed and printed nothing$/);
  const talking = new KubernetesInventory({
    node: 'node-a',
    kubeconfig: writeKubeconfig('https://127.0.0.1:6443', { exec: { command: 'sh', args: ['-c', 'echo "error: not logged in" >&2; echo "run: login" >&2; exit 1'] } }),
    log: () => undefined,
  });
  await assert.rejects(talking.check(), /cannot be used: exec plugin sh: error: not logged in run: login$/);
  const missing = new KubernetesInventory({ node: 'node-a', kubeconfig: writeKubeconfig('https://127.0.0.1:6443', { exec: { command: '/nonexistent/plugin' } }), log: () => undefined });
  await assert.rejects(missing.check(), /exec plugin \/nonexistent\/plugin: spawn \/nonexistent\/plugin ENOENT$/);
  const hanging = new KubernetesInventory({ node: 'node-a', kubeconfig: writeKubeconfig('https://127.0.0.1:6443', { exec: { command: 'sleep', args: ['5'] } }), log: () => undefined });
  await assert.rejects(hanging.check(200), /exec plugin sleep: no answer within 0.2 s$/);
});

test('an API server that is not there is logged and shown with the reason, not just "fetch failed"', async (t) => {
  const port = await freePort();
  const lines: string[] = [];
  const inv = new KubernetesInventory({ node: 'node-a', kubeconfig: writeKubeconfig(`https://127.0.0.1:${port}`, { token: 't' }), maxBackoffMs: 200, log: (l) => lines.push(l) });
  t.after(() => inv.stop());
  await inv.check();
  inv.start();
  await eventually(() => (inv.lastError ? true : undefined), 5_000, 'the first failure');
  assert.match(lines[0]!, new RegExp(`^kubernetes: https://127\\.0\\.0\\.1:${port}: (pods|services|endpointslices|nodes): fetch failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}; retrying in \\d+ ms$`));
  const status = inv.status();
  assert.equal(status.server, `https://127.0.0.1:${port}`);
  assert.equal(status.connected, false);
  assert.match(status.last_error ?? '', /ECONNREFUSED/);
  assert.ok(status.last_error_time && Date.parse(status.last_error_time) > 0);
  assert.ok(status.errors.watch_pods >= 1);
});
