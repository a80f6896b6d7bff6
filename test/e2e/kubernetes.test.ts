/**
 * End to end: the agent on a test node made of real kernel parts (pods as network namespaces and
 * kubelet-style cgroups, one real runc container), with pods defined in the fake API server. Every
 * series and event must name its namespace, pod, container, workload kind, workload and node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer } from './fake-apiserver.js';
import { cluster } from './cluster.js';
import { deploymentPod } from './objects.js';
import { eventually, needsKernel, sleep } from '../kernel.js';
import { sample, startAgent } from '../agent-process.js';
import { type ExecEvent } from '../../src/collectors/process/index.js';

const hexId = (): string => randomBytes(32).toString('hex');

async function metrics(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

test('series and events of a pod carry its namespace, pod, container, workload and node', async (t) => {
  if (!needsKernel(t)) return;
  let memcg = '';
  const { api, node, nodeName, agent } = await cluster(
    t,
    (nodeName, kubeconfig) => ['--kubeconfig', kubeconfig, '--node', nodeName, '--grace', '2', '--pod-labels', 'team'],
    () => {
      if (memcg && existsSync(memcg)) rmdirSync(memcg);
    },
  );
  memcg = join('/sys/fs/cgroup/memory', `periscope-e2e-oom-${node.name}`);

  const pod = await node.addPod({ namespace: 'shop', name: 'cart', qos: 'burstable' });
  const appId = hexId();
  const boxId = hexId();
  const hogId = hexId();
  const objects = deploymentPod({
    namespace: 'shop',
    deployment: 'cart',
    node: nodeName,
    podUid: pod.uid,
    labels: { team: 'payments' },
    containers: { app: `containerd://${appId}`, box: `containerd://${boxId}`, hog: `containerd://${hogId}` },
    ips: [pod.ip],
  });
  const podName = objects.pod.metadata.name;
  api.create(objects.deployment);
  api.create(objects.replicaSet);

  // the workload runs before the API knows the pod, as when the agent starts on a busy node
  const app = await pod.runProcess('app', "i=0; while [ $i -lt 20 ]; do /bin/true; i=$((i+1)); done; timeout 1 sh -c 'while :; do :; done'; sleep 60", { containerId: appId });
  const labels = { namespace: 'shop', pod: podName, container: 'app', workload_kind: 'Deployment', workload: 'cart', node: nodeName };

  const appeared = Date.now();
  api.create(objects.pod);
  const text = await eventually(async () => {
    const m = await metrics(agent.url);
    return (sample(m, 'periscope_process_execs_total', labels) ?? 0) >= 20 ? m : undefined;
  }, 5_000, 'execs of the pod under its names');
  t.diagnostic(`labelled ${Date.now() - appeared} ms after the pod appeared in the API`);
  assert.equal(sample(text, 'periscope_process_execs_total', { ...labels, cgroup: app.cgroupPath, label_team: 'payments' }) !== undefined, true, 'the cgroup and the allow-listed pod label stay on the series');
  await eventually(async () => ((sample(await metrics(agent.url), 'periscope_cpu_seconds_total', labels) ?? 0) > 0.5 ? true : undefined), 5_000, 'CPU time of the pod');

  // the API server goes away: the names stay, the errors are counted, and the watch comes back
  await api.stop();
  await eventually(async () => (sample(await metrics(agent.url), 'periscope_kubernetes_connected', {}) === 0 ? true : undefined), 10_000, 'the agent to see the API server gone');
  const offline = await metrics(agent.url);
  assert.ok(sample(offline, 'periscope_process_execs_total', labels) !== undefined, 'metadata is served while the API server is down');
  assert.ok((sample(offline, 'periscope_kubernetes_errors_total', { kind: 'watch_pods' }) ?? 0) >= 1);
  await api.start();
  await eventually(async () => (sample(await metrics(agent.url), 'periscope_kubernetes_connected', {}) === 1 ? true : undefined), 10_000, 'the watch to come back');

  // an OOM kill in the pod's container (memory limit in the v1 hierarchy, attribution by the v2 cgroup)
  mkdirSync(memcg);
  writeFileSync(join(memcg, 'memory.limit_in_bytes'), String(48 << 20));
  const hog = await pod.runProcess('hog', `echo $$ > ${memcg}/cgroup.procs && exec python3 -c 'b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1'`, { containerId: hogId });
  await hog.wait();
  await eventually(async () => (sample(await metrics(agent.url), 'periscope_oom_kills_total', { ...labels, container: 'hog' }) === 1 ? true : undefined), 5_000, 'the OOM kill under the pod');
  const ooms = (await (await fetch(`${agent.url}/api/v1/events?type=oom_kill&namespace=shop&pod=${podName}&container=hog`)).json()) as { events: { pod: string; container: string; workload: string; cgroup: string }[] };
  assert.equal(ooms.events.length, 1);
  assert.equal(ooms.events[0]?.cgroup, hog.cgroupPath);
  assert.equal(ooms.events[0]?.pod, podName);
  assert.equal(ooms.events[0]?.container, 'hog');
  assert.equal(ooms.events[0]?.workload, 'cart');

  // a real container: its first process is pid 1 in its own pid namespace and named as the box container
  const box = await pod.runRunc('box', ['sh', '-c', 'sleep 30'], { containerId: boxId });
  const exec = await eventually(async () => {
    const body = (await (await fetch(`${agent.url}/api/v1/events?type=exec&cgroup=${encodeURIComponent(box.cgroupPath)}`)).json()) as { events: ExecEvent[] };
    return body.events.find((e) => e.pid === box.hostPid);
  }, 5_000, 'the exec of the runc container');
  assert.equal(exec.ns_pid, 1, 'pid 1 inside the container');
  assert.notEqual(exec.pid, 1);
  assert.equal(exec.container, 'box');
  assert.equal(exec.pod, podName);
  assert.equal(exec.namespace, 'shop');

  // the pod's network namespace and IP, for the network collectors to come
  const pods = (await (await fetch(`${agent.url}/api/v1/pods`)).json()) as { pods: { uid: string; ips: string[]; netns_inode: number | null }[] };
  const seen = pods.pods.find((p) => p.uid === pod.uid);
  assert.deepEqual(seen?.ips, [pod.ip]);
  assert.equal(seen?.netns_inode, pod.netnsInode);

  // the pod goes away: after the grace period nothing is reported under its name
  await box.kill();
  await app.kill();
  await hog.kill();
  await pod.remove();
  api.delete('pods', 'shop', podName);
  await eventually(async () => (!(await metrics(agent.url)).includes(`pod="${podName}"`) ? true : undefined), 15_000, 'the series of the deleted pod to go');
});

test('pod churn: 50 pods come and go in the API, the agent forgets them and its memory stays flat', async (t) => {
  if (!needsKernel(t)) return;
  const api = await FakeApiServer.start();
  const kubeconfig = api.kubeconfig(join(mkdtempSync(join(tmpdir(), 'periscope-e2e-')), 'config'));
  const agent = await startAgent(['--kubeconfig', kubeconfig, '--node', 'churn-node', '--grace', '1']);
  t.after(async () => {
    await agent.stop();
    await api.stop();
  });
  const rss = async (): Promise<number> => sample(await metrics(agent.url), 'periscope_agent_resident_memory_bytes', {}) ?? 0;
  const pods = async (): Promise<number | undefined> => sample(await metrics(agent.url), 'periscope_kubernetes_pods', {});
  await eventually(async () => ((await pods()) === 0 ? true : undefined), 5_000, 'the inventory to start');
  // Round 0 warms up, then RSS is taken. In its first seconds the agent's RSS grows some 25 MiB
  // whether pods churn or not (measured with all four collectors, scraped every 50 ms: 169 MiB when
  // the inventory starts, 186 two seconds later, then 198 after 30 s more, the JavaScript heap within
  // 3 MiB): mostly one malloc arena of a background thread (23 MiB), nothing the churn keeps.
  let before = 0;
  for (let round = 0; round < 4; round++) {
    if (round === 1) before = await rss();
    const names: string[] = [];
    for (let i = 0; i < 50; i++) {
      const o = deploymentPod({ namespace: 'churn', deployment: `d${round}-${i}`, node: 'churn-node', containers: { app: `containerd://${hexId()}` } });
      api.create(o.pod);
      names.push(o.pod.metadata.name);
    }
    await eventually(async () => ((await pods()) === 50 ? true : undefined), 5_000, `50 pods of round ${round}`);
    for (const n of names) api.delete('pods', 'churn', n);
    // deleted pods are kept for the grace period, then forgotten by the next walk (every 5 s)
    await eventually(async () => ((await pods()) === 0 ? true : undefined), 15_000, `the pods of round ${round} to be forgotten`);
  }
  const after = await rss();
  t.diagnostic(`agent RSS ${(before / 2 ** 20).toFixed(1)} MiB before, ${(after / 2 ** 20).toFixed(1)} MiB after 150 pods of churn`);
  assert.ok(after - before < 30 * 2 ** 20, `RSS grew by ${((after - before) / 2 ** 20).toFixed(1)} MiB`);
});

test('a rollout under --aggregation workload: the workload\'s counters never go down while old pods expire', async (t) => {
  if (!needsKernel(t)) return;
  const { api, node, nodeName, agent } = await cluster(t, (nodeName, kubeconfig) => ['--kubeconfig', kubeconfig, '--node', nodeName, '--grace', '1', '--aggregation', 'workload']);
  const workload = { namespace: 'shop', workload_kind: 'Deployment', workload: 'cart', node: nodeName, cgroup: '', pod: '', container: '' };
  const series = { execs: 'periscope_process_execs_total', exits: 'periscope_process_exits_total', cpu: 'periscope_cpu_seconds_total', runq: 'periscope_runqueue_latency_seconds_count' } as const;
  const seen: Record<keyof typeof series, number[]> = { execs: [], exits: [], cpu: [], runq: [] };
  const scrape = async (): Promise<void> => {
    const m = await metrics(agent.url);
    for (const [k, name] of Object.entries(series) as [keyof typeof series, string][]) {
      const v = sample(m, name, workload);
      if (v !== undefined) seen[k].push(v);
    }
  };

  // the old ReplicaSet's pod works: 30 execs and some CPU
  const busy = "i=0; while [ $i -lt 30 ]; do /bin/true; i=$((i+1)); done; timeout 0.5 sh -c 'while :; do :; done'; exec sleep 60";
  const oldPod = await node.addPod({ namespace: 'shop', name: 'cart-old' });
  const oldId = hexId();
  const oldObjects = deploymentPod({ namespace: 'shop', deployment: 'cart', node: nodeName, podUid: oldPod.uid, hash: 'aaaaaaaaa', containers: { app: `containerd://${oldId}` } });
  api.create(oldObjects.deployment);
  api.create(oldObjects.replicaSet);
  api.create(oldObjects.pod);
  const oldApp = await oldPod.runProcess('app', busy, { containerId: oldId });
  await eventually(async () => {
    await scrape();
    return (seen.execs.at(-1) ?? 0) >= 30 ? true : undefined;
  }, 10_000, 'the old pod\'s execs under the workload');

  // the rollout: a new ReplicaSet's pod starts, the old pod is deleted, its cgroups go
  const newPod = await node.addPod({ namespace: 'shop', name: 'cart-new' });
  const newId = hexId();
  const newObjects = deploymentPod({ namespace: 'shop', deployment: 'cart', node: nodeName, podUid: newPod.uid, hash: 'bbbbbbbbb', deploymentUid: oldObjects.deployment.metadata.uid, containers: { app: `containerd://${newId}` } });
  api.create(newObjects.replicaSet);
  api.create(newObjects.pod);
  const newApp = await newPod.runProcess('app', busy, { containerId: newId });
  await scrape();
  await oldApp.kill();
  await oldPod.remove();
  api.delete('pods', 'shop', oldObjects.pod.metadata.name);
  // the old cgroups expire (grace 1 s, walked every 5 s) while the new pod works on
  const until = Date.now() + 9_000;
  while (Date.now() < until) {
    await scrape();
    await sleep(250);
  }
  t.after(() => newApp.kill());
  // the old container's cgroup (the pod's own may never have been walked: it ran nothing)
  await eventually(async () => ((sample(await metrics(agent.url), 'periscope_cgroups_expired_total', {}) ?? 0) >= 1 ? true : undefined), 10_000, 'the old pod\'s cgroup to expire');
  await scrape();
  for (const [k, values] of Object.entries(seen)) {
    assert.ok(values.length > 10, `${k} was scraped (${values.length})`);
    values.forEach((v, i) => assert.ok(i === 0 || v >= values[i - 1]!, `${k} went down: ${values[i - 1]} then ${v} (${values.join(' ')})`));
  }
  assert.ok(seen.execs.at(-1)! >= 60, `both pods' execs stay counted: ${seen.execs.at(-1)}`);
  t.diagnostic(`execs ${seen.execs[0]} → ${seen.execs.at(-1)}, cpu ${seen.cpu[0]?.toFixed(3)} → ${seen.cpu.at(-1)?.toFixed(3)} s over ${seen.execs.length} scrapes`);
});
