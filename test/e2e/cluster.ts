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
import { TestNode, whyTestNodeCannotRun } from './test-node.js';
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
