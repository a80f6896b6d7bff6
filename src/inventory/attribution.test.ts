import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Attributor, aggregate, promLabelName, type PodSource } from './attribution.js';
import { type PodInfo } from './kubernetes.js';

const UID = '6b5e0a8e-6f10-4a77-9a8c-0d6f7e3c2b11';
const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);
const POD_PATH = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replaceAll('-', '_')}.slice`;

const pods: PodSource = {
  pod: (uid) =>
    uid === UID
      ? ({
          uid,
          namespace: 'shop',
          name: 'cart-7d9f-x2x',
          node: 'n1',
          labels: { app: 'cart', 'app.kubernetes.io/version': '1.2' },
          workloadKind: 'Deployment',
          workload: 'cart',
          containers: new Map([
            [ID_A, 'app'],
            [ID_B, 'sidecar'],
          ]),
          ips: ['10.244.1.5'],
          hostNetwork: false,
          phase: 'Running',
        } satisfies PodInfo)
      : undefined,
};

test('names a container cgroup with its pod, container and workload', () => {
  const a = new Attributor({ node: 'n1', kubernetes: pods });
  assert.deepEqual(a.attribute(`${POD_PATH}/cri-containerd-${ID_A}.scope`), {
    namespace: 'shop',
    pod: 'cart-7d9f-x2x',
    container: 'app',
    workload_kind: 'Deployment',
    workload: 'cart',
  });
  assert.deepEqual(a.seriesLabels(`${POD_PATH}/cri-containerd-${ID_B}.scope`), {
    cgroup: `${POD_PATH}/cri-containerd-${ID_B}.scope`,
    namespace: 'shop',
    pod: 'cart-7d9f-x2x',
    container: 'sidecar',
    workload_kind: 'Deployment',
    workload: 'cart',
    node: 'n1',
  });
});

test('attributes host processes to the node and their systemd unit', () => {
  const a = new Attributor({ node: 'n1', kubernetes: pods });
  assert.deepEqual(a.seriesLabels('/system.slice/nginx.service'), {
    cgroup: '/system.slice/nginx.service',
    namespace: '',
    pod: '',
    container: '',
    workload_kind: 'SystemdUnit',
    workload: 'nginx.service',
    node: 'n1',
  });
});

test('a pod the API does not know yet keeps its cgroup and gets its names later', () => {
  const a = new Attributor({ node: 'n1' });
  const l = a.seriesLabels(`${POD_PATH}/cri-containerd-${ID_A}.scope`);
  assert.equal(l.pod, '');
  assert.equal(l.cgroup, `${POD_PATH}/cri-containerd-${ID_A}.scope`);
});

test('pod and workload aggregation fold finer series together', () => {
  const rows = (level: 'pod' | 'workload'): { labels: Record<string, string>; value: number }[] => {
    const a = new Attributor({ node: 'n1', kubernetes: pods, level, podLabels: ['app'] });
    return aggregate(
      [
        { labels: a.seriesLabels(`${POD_PATH}/cri-containerd-${ID_A}.scope`), value: 2 },
        { labels: a.seriesLabels(`${POD_PATH}/cri-containerd-${ID_B}.scope`), value: 3 },
        { labels: a.seriesLabels('/system.slice/nginx.service'), value: 7 },
      ],
      (into, from) => (into.value += from.value),
    );
  };
  const byPod = rows('pod');
  assert.equal(byPod.length, 2);
  assert.deepEqual(byPod[0], {
    labels: { cgroup: POD_PATH, namespace: 'shop', pod: 'cart-7d9f-x2x', container: '', workload_kind: 'Deployment', workload: 'cart', node: 'n1', label_app: 'cart' },
    value: 5,
  });
  const byWorkload = rows('workload');
  assert.equal(byWorkload[0]?.labels.pod, '');
  assert.equal(byWorkload[0]?.labels.cgroup, '');
  assert.equal(byWorkload[0]?.value, 5);
  assert.equal(byWorkload[1]?.labels.workload, 'nginx.service');
});

test('pod label names become Prometheus label names', () => {
  assert.equal(promLabelName('app.kubernetes.io/version'), 'label_app_kubernetes_io_version');
});
