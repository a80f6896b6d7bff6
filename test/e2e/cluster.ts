/**
 * A cluster for end-to-end tests: a test node of real kernel parts, the fake API server with a
 * kubeconfig for it, and an agent on both; all taken down after the test.
 */
import { type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer } from './fake-apiserver.js';
import { TestNode, whyTestNodeCannotRun, type TestPod } from './test-node.js';
import { deploymentPod } from './objects.js';
import { startAgent, type RunningAgent } from '../agent-process.js';

export interface Cluster {
  api: FakeApiServer;
  node: TestNode;
  nodeName: string;
  agent: RunningAgent;
}

export async function cluster(t: TestContext, agentArgs: (nodeName: string, kubeconfig: string) => string[], cleanup?: () => void): Promise<Cluster> {
  const why = whyTestNodeCannotRun();
  if (why) assert.fail(`the test node cannot run: ${why}`);
  const api = await FakeApiServer.start();
  const kubeconfig = api.kubeconfig(join(mkdtempSync(join(tmpdir(), 'periscope-e2e-')), 'config'));
  const node = await TestNode.create();
  const nodeName = `node-${node.name}`;
  const running: RunningAgent[] = [];
  t.after(async () => {
    for (const a of running) await a.stop();
    await node.destroy();
    await api.stop();
    cleanup?.();
  });
  const agent = await startAgent(agentArgs(nodeName, kubeconfig));
  running.push(agent);
  return { api, node, nodeName, agent };
}

/** A pod of one container, the one pod of a Deployment in the API: where a test runs a workload. */
export interface Place {
  pod: TestPod;
  /** the pod's name in the API */
  name: string;
  /** argv prefix: in the pod's container (cgroup and network namespace) */
  wrap: string[];
}

export async function place(c: Cluster, namespace: string, deployment: string): Promise<Place> {
  const pod = await c.node.addPod({ namespace, name: deployment });
  const container = await pod.container();
  const o = deploymentPod({ namespace, deployment, node: c.nodeName, podUid: pod.uid, containers: { main: `containerd://${container.id}` }, ips: [pod.ip] });
  c.api.create(o.deployment);
  c.api.create(o.replicaSet);
  c.api.create(o.pod);
  return { pod, name: o.pod.metadata.name, wrap: container.wrap };
}
