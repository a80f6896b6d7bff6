/** The DaemonSet manifest agrees with what the agent needs: the API calls it makes, its node name,
 * its port and its privileges. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadAllYaml, type V1ClusterRole, type V1DaemonSet } from '@kubernetes/client-node';
import { COLLECTORS } from '../src/collectors/registry.js';
import { defaultMaxCgroups, MiB, USER_RESERVE_BYTES } from '../src/agent/memory-budget.js';
import { objectBytes } from '../src/kernel/memory.js';

const docs = loadAllYaml(readFileSync(fileURLToPath(new URL('../../deploy/kubernetes.yaml', import.meta.url)), 'utf8')) as { kind: string }[];

test('the DaemonSet gives the agent its node name, its port and the capabilities BPF needs', () => {
  const ds = docs.find((d) => d.kind === 'DaemonSet') as V1DaemonSet | undefined;
  assert.ok(ds, 'a DaemonSet');
  const pod = ds.spec!.template.spec!;
  assert.equal(pod.hostPID, true, 'host pids, so /proc names the processes the kernel reports');
  const c = pod.containers[0]!;
  const nodeName = c.env?.find((e) => e.name === 'NODE_NAME');
  assert.equal(nodeName?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');
  assert.deepEqual(c.args, ['agent', '--listen', '0.0.0.0:9464', '--token-file', '/etc/periscope/api/token', '--metrics-open']);
  // the agent refuses to listen beyond loopback without a token: the token file comes from a Secret
  const tokenFile = c.args[c.args.indexOf('--token-file') + 1]!;
  const mount = c.volumeMounts?.find((m) => tokenFile.startsWith(`${m.mountPath}/`));
  assert.ok(pod.volumes?.find((v) => v.name === mount?.name)?.secret?.secretName, 'the token file is in a mounted Secret');
  assert.equal(c.ports?.[0]?.containerPort, 9464);
  for (const cap of ['BPF', 'PERFMON', 'NET_ADMIN', 'DAC_READ_SEARCH']) assert.ok(c.securityContext?.capabilities?.add?.includes(cap), cap);
  assert.equal(c.readinessProbe?.httpGet?.path, '/healthz');
});

test('the DaemonSet\'s memory limit holds the agent and its kernel maps at the default --max-cgroups on any CPU count', () => {
  const ds = docs.find((d) => d.kind === 'DaemonSet') as V1DaemonSet;
  const resources = ds.spec!.template.spec!.containers[0]!.resources!;
  const mi = (q: string | undefined): number => Number(/^(\d+)Mi$/.exec(q ?? '')?.[1] ?? NaN) * MiB;
  const limit = mi(resources.limits?.memory);
  const request = mi(resources.requests?.memory);
  assert.ok(request <= limit);
  for (const cpus of [2, 8, 16, 64, 128, 256, 1024]) {
    const n = defaultMaxCgroups(COLLECTORS, cpus);
    // the worst case: every map of every alternative (task storage and its LRU stand-in alike)
    const kernel = COLLECTORS.reduce((sum, c) => sum + objectBytes(c.spec, undefined, n, cpus).total, 0);
    assert.ok(kernel + USER_RESERVE_BYTES.kubernetes <= limit, `${cpus} CPUs: ${(kernel / MiB).toFixed(1)} MiB of maps + the agent's own do not fit ${limit / MiB} MiB`);
  }
});

test('the ClusterRole allows exactly the API calls the inventory makes', () => {
  const role = docs.find((d) => d.kind === 'ClusterRole') as V1ClusterRole | undefined;
  assert.ok(role);
  const allowed = (group: string, resource: string, verb: string): boolean =>
    (role.rules ?? []).some((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource) && r.verbs.includes(verb));
  assert.ok(allowed('', 'pods', 'list') && allowed('', 'pods', 'watch'), 'list and watch pods');
  for (const [group, resource] of [['', 'services'], ['discovery.k8s.io', 'endpointslices'], ['', 'nodes']] as const) {
    assert.ok(allowed(group, resource, 'list') && allowed(group, resource, 'watch'), `list and watch ${resource}, to name peer addresses`);
  }
  assert.ok(allowed('apps', 'replicasets', 'get'), 'name Deployments through their ReplicaSets');
  assert.ok(allowed('batch', 'jobs', 'get'), 'name CronJobs through their Jobs');
  assert.ok(!allowed('', 'secrets', 'get'), 'nothing more');
  assert.ok(!allowed('', 'pods', 'get') && !allowed('', 'nodes', 'get'), 'no single-object reads the inventory does not make');
});
