import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubernetesInventory } from './kubernetes.js';
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
  assert.equal(inv.size, 1, 'pods of other nodes are not watched');
  assert.ok(api.requests.some((r) => r.verb === 'watch' && r.query.fieldSelector === 'spec.nodeName=node-a'), 'the watch asks for this node only');
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
  assert.ok(inv.errors.watch >= 1, 'errors are counted');
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
  const errorsAtStop = inv.errors.watch;
  await new Promise((r) => setTimeout(r, 4_000));
  // 250, 500, 1000, 1000, 1000 ms: about five attempts in four seconds; without backoff, dozens
  const attempts = inv.errors.watch - errorsAtStop;
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
