/**
 * Tests of the test node: pods really are separate network namespaces that talk through the node's
 * bridge from kubelet-named cgroups, a runc container really has its own pid and mount namespaces in
 * the pod's netns and cgroup, and nothing is left behind — not by destroy(), nor by a run that died.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { cgroupIdOf, cgroupPathOfPid, findCgroup2Mount } from '../../src/inventory/cgroups.js';
import {
  NETNS_DIR,
  RUNC,
  TestNode,
  cgroupV1Mounts,
  containerCgroupName,
  podCgroupPath,
  whyTestNodeCannotRun,
  type PodSpec,
} from './test-node.js';

const execFileP = promisify(execFile);

/** True when a test node can be made. Skips otherwise — except under CI=true, where it fails. */
function canRun(t: TestContext): boolean {
  const why = whyTestNodeCannotRun();
  if (!why) return true;
  if (process.env.CI === 'true') assert.fail(`the test node cannot run under CI: ${why}`);
  t.skip(`needs a test node: ${why}`);
  return false;
}

async function nsInode(pid: number | 'self', ns: string): Promise<number> {
  return Number((await stat(`/proc/${pid}/ns/${ns}`, { bigint: true })).ino);
}

async function running(pid: number): Promise<boolean> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function counter(ifname: string, name: 'rx_bytes' | 'tx_bytes'): Promise<number> {
  return Number(await readFile(`/sys/class/net/${ifname}/statistics/${name}`, 'utf8'));
}

async function linkNames(): Promise<string[]> {
  const { stdout } = await execFileP('ip', ['-j', 'link', 'show'], { encoding: 'utf8' });
  const links = JSON.parse(stdout) as { ifname?: string }[];
  return links.map((l) => l.ifname ?? '');
}

/** A shell loop that connects to ip:port until it gets through (the server may still be starting), for at most ~5 s. */
function connect(ip: string, port: number, send: string): string {
  return [
    'end=$(( $(date +%s) + 5 ))',
    'while [ "$(date +%s)" -lt "$end" ]; do',
    `  if echo ${send} | /bin/busybox nc -w 1 ${ip} ${port}; then exit 0; fi`,
    '  sleep 0.1',
    'done',
    'exit 1',
  ].join('\n');
}

/** Fails a test that hangs instead of letting it hold the run. */
const LIMIT = { timeout: 20_000 };

const HEX64 = /^[0-9a-f]{64}$/;

test('pod and container cgroups are named the way kubelet and each runtime name them', () => {
  const uid = '6b5e0a8e-6f10-4a77-9a8c-0d6f7e3c2b11';
  const spec = (s: Partial<PodSpec>): Required<PodSpec> => ({ namespace: 'ns', name: 'p', uid, qos: 'besteffort', driver: 'systemd', runtime: 'containerd', ...s });
  assert.equal(podCgroupPath(spec({ qos: 'burstable' })), '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6b5e0a8e_6f10_4a77_9a8c_0d6f7e3c2b11.slice');
  assert.equal(podCgroupPath(spec({ qos: 'besteffort' })), '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6b5e0a8e_6f10_4a77_9a8c_0d6f7e3c2b11.slice');
  assert.equal(podCgroupPath(spec({ qos: 'guaranteed' })), '/kubepods.slice/kubepods-pod6b5e0a8e_6f10_4a77_9a8c_0d6f7e3c2b11.slice');
  assert.equal(podCgroupPath(spec({ driver: 'cgroupfs', qos: 'burstable' })), `/kubepods/burstable/pod${uid}`);
  assert.equal(podCgroupPath(spec({ driver: 'cgroupfs', qos: 'guaranteed' })), `/kubepods/pod${uid}`);
  const id = 'ab'.repeat(32);
  assert.equal(containerCgroupName('systemd', 'containerd', id), `cri-containerd-${id}.scope`);
  assert.equal(containerCgroupName('systemd', 'crio', id), `crio-${id}.scope`);
  assert.equal(containerCgroupName('systemd', 'docker', id), `docker-${id}.scope`);
  assert.equal(containerCgroupName('cgroupfs', 'containerd', id), id);
  assert.equal(containerCgroupName('cgroupfs', 'docker', id), id);
  assert.equal(containerCgroupName('cgroupfs', 'crio', id), `crio-${id}`);
});

test('two pods get their own addresses and talk over TCP through the bridge, each from its kubelet-style cgroup', LIMIT, async (t) => {
  if (!canRun(t)) return;
  const node = await TestNode.create();
  try {
    const server = await node.addPod({ namespace: 'shop', name: 'server', qos: 'burstable', driver: 'systemd', runtime: 'containerd' });
    const client = await node.addPod({ namespace: 'shop', name: 'client', qos: 'guaranteed', driver: 'cgroupfs', runtime: 'crio' });
    assert.match(server.ip, /^10\.244\.\d{1,3}\.\d{1,3}$/);
    assert.match(client.ip, /^10\.244\.\d{1,3}\.\d{1,3}$/);
    assert.notEqual(server.ip, client.ip);
    assert.notEqual(server.netnsInode, client.netnsInode);
    assert.notEqual(server.netnsInode, await nsInode('self', 'net'));
    assert.equal(server.cgroupPath, `${node.cgroupPrefix}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${server.uid.replaceAll('-', '_')}.slice`);
    assert.equal(client.cgroupPath, `${node.cgroupPrefix}/kubepods/pod${client.uid}`);
    for (const pod of [server, client]) {
      assert.equal(basename(await readlink(`/sys/class/net/${pod.hostVeth}/master`)), node.bridge, `${pod.hostVeth} is a port of the bridge`);
    }
    const before = { server: await counter(server.hostVeth, 'tx_bytes'), client: await counter(client.hostVeth, 'tx_bytes') };

    const listener = await server.runProcess('http', 'echo hello-from-server | /bin/busybox nc -l -p 8080');
    assert.match(listener.containerId, HEX64);
    assert.equal(listener.cgroupPath, `${server.cgroupPath}/cri-containerd-${listener.containerId}.scope`);
    assert.equal(cgroupPathOfPid(listener.hostPid), listener.cgroupPath, 'the listener runs in its container cgroup');
    assert.equal(listener.cgroupId, cgroupIdOf(join(findCgroup2Mount(), listener.cgroupPath)));
    assert.equal(await nsInode(listener.hostPid, 'net'), server.netnsInode, 'the listener runs in the server pod netns');

    const dialer = await client.runProcess('curl', `grep '^0::' /proc/$$/cgroup >&2; readlink /proc/$$/ns/net >&2\n${connect(server.ip, 8080, 'hello-from-client')}`);
    assert.equal(dialer.cgroupPath, `${client.cgroupPath}/crio-${dialer.containerId}`);
    assert.equal(await dialer.wait(), 0, `the client got through: ${(await dialer.output()).stderr}`);
    assert.equal(await listener.wait(), 0);
    const said = await dialer.output();
    assert.equal(said.stdout, 'hello-from-server\n');
    assert.equal((await listener.output()).stdout, 'hello-from-client\n');
    // the client saw itself in its own cgroup and netns
    const lines = said.stderr.split('\n');
    assert.ok(lines.includes(`0::${dialer.cgroupPath}`), said.stderr);
    assert.ok(lines.includes(`net:[${client.netnsInode}]`), said.stderr);
    // and the bytes went through the pods' bridge ports (what a pod sends, its host-side veth receives)
    assert.ok((await counter(server.hostVeth, 'tx_bytes')) > before.server, 'frames reached the server pod through the bridge');
    assert.ok((await counter(client.hostVeth, 'tx_bytes')) > before.client, 'frames reached the client pod through the bridge');
  } finally {
    await node.destroy();
  }
});

test('a runc container is pid 1 of its own pid namespace, has its own mount namespace, and lives in the pod netns and cgroup', LIMIT, async (t) => {
  if (!canRun(t)) return;
  const node = await TestNode.create();
  try {
    const web = await node.addPod({ namespace: 'shop', name: 'web', qos: 'besteffort', driver: 'systemd', runtime: 'containerd' });
    const peer = await node.addPod({ namespace: 'shop', name: 'peer', qos: 'burstable', driver: 'cgroupfs', runtime: 'docker' });
    const box = await web.runRunc('box', ['sh', '-c', 'echo pong-from-runc | nc -l -p 9090; exec sleep 60']);
    const pid = box.hostPid;
    assert.ok(pid > 1, `host pid ${pid}`);
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^NSpid:\\t${pid}\\t1$`, 'm'), 'pid 1 inside, another pid outside');
    assert.notEqual(await readlink(`/proc/${pid}/ns/mnt`), await readlink('/proc/self/ns/mnt'), 'own mount namespace');
    assert.notEqual(await readlink(`/proc/${pid}/ns/pid`), await readlink('/proc/self/ns/pid'), 'own pid namespace');
    assert.notEqual(await nsInode(pid, 'uts'), await nsInode('self', 'uts'), 'own uts namespace');
    assert.equal(await nsInode(pid, 'net'), web.netnsInode, "the pod's network namespace");
    assert.match(box.containerId, HEX64);
    assert.equal(box.cgroupPath, `${web.cgroupPath}/cri-containerd-${box.containerId}.scope`);
    assert.equal(cgroupPathOfPid(pid), box.cgroupPath, 'in the container cgroup of the v2 tree');
    // runc itself followed linux.cgroupsPath: the v1 controllers (on a hybrid host) say the same path
    const v1Lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('0::'));
    for (const l of v1Lines) assert.equal(l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1), box.cgroupPath, l);
    assert.equal(box.cgroupId, cgroupIdOf(join(findCgroup2Mount(), box.cgroupPath)));
    assert.ok(existsSync(`/proc/${pid}/root/bin/busybox`), 'its root is the busybox root file system');

    // the container answers on the pod's address
    const dialer = await peer.runProcess('probe', connect(web.ip, 9090, 'ping'));
    assert.equal(dialer.cgroupPath, `${peer.cgroupPath}/${dialer.containerId}`);
    assert.equal(peer.cgroupPath, `${node.cgroupPrefix}/kubepods/burstable/pod${peer.uid}`);
    assert.equal(await dialer.wait(), 0, (await dialer.output()).stderr);
    assert.equal((await dialer.output()).stdout, 'pong-from-runc\n');
    assert.equal((await box.output()).stdout, 'ping\n');

    await box.kill();
    assert.equal(await box.wait(), null);
    assert.equal(await running(pid), false, 'the container process is gone');
    assert.equal(existsSync(join(findCgroup2Mount(), box.cgroupPath)), false, 'its cgroup is gone');
    const { stdout } = await execFileP(RUNC, ['--root', node.runcRoot, 'list', '-q'], { encoding: 'utf8' });
    assert.equal(stdout.trim(), '', 'runc forgot it');
  } finally {
    await node.destroy();
  }
});

test('destroy leaves no cgroup, network namespace, link, runc container or process behind', LIMIT, async (t) => {
  if (!canRun(t)) return;
  const node = await TestNode.create();
  let destroyed = false;
  try {
    const a = await node.addPod({ namespace: 'shop', name: 'a', qos: 'guaranteed' });
    const b = await node.addPod({ namespace: 'shop', name: 'b', driver: 'cgroupfs', runtime: 'crio' });
    const proc = await a.runProcess('idle', 'exec sleep 60');
    const box = await b.runRunc('idle', ['sleep', '60']);
    const root = findCgroup2Mount();
    const v1 = cgroupV1Mounts();
    // everything is there before
    assert.ok(existsSync(join(root, a.cgroupPath)));
    for (const m of v1) assert.ok(existsSync(join(m, box.cgroupPath)), `runc made ${box.cgroupPath} in ${m}`);
    assert.ok((await readdir(NETNS_DIR)).includes(a.netns));
    assert.ok((await linkNames()).includes(node.bridge));
    assert.ok(await running(proc.hostPid));
    assert.ok(await running(box.hostPid));

    await node.destroy();
    destroyed = true;
    assert.equal(existsSync(join(root, node.cgroupPrefix)), false, 'no v2 cgroups');
    for (const m of v1) assert.equal(existsSync(join(m, node.cgroupPrefix)), false, `no cgroups in ${m}`);
    assert.deepEqual((await readdir(NETNS_DIR)).filter((n) => n.startsWith(`${node.name}-`)), [], 'no netns');
    assert.deepEqual((await linkNames()).filter((n) => n.startsWith(node.name)), [], 'no links');
    assert.equal(existsSync(node.runcRoot), false, 'no runc state');
    assert.equal(existsSync(node.stateDir), false, 'no state dir');
    assert.equal(await running(proc.hostPid), false, 'the process is gone');
    assert.equal(await running(box.hostPid), false, 'the container is gone');
    await node.destroy(); // twice is fine
  } finally {
    if (!destroyed) await node.destroy();
  }
});

test('the leftovers of a test run that was killed are removed by the next node', LIMIT, async (t) => {
  if (!canRun(t)) return;
  const name = `psc${Date.now().toString(36).slice(-6)}`;
  const script = [
    `import { TestNode } from ${JSON.stringify(new URL('./test-node.js', import.meta.url).href)};`,
    `const node = await TestNode.create({ name: ${JSON.stringify(name)} });`,
    "const pod = await node.addPod({ namespace: 'crash', name: 'victim' });",
    "const proc = await pod.runProcess('idle', 'exec sleep 60');",
    "const box = await pod.runRunc('idle', ['sleep', '60']);",
    'console.log(JSON.stringify({ pids: [proc.hostPid, box.hostPid], netns: pod.netns, hostVeth: pod.hostVeth, prefix: node.cgroupPrefix }));',
    'setInterval(() => {}, 1000);',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let line: string | undefined;
  for await (const l of createInterface({ input: child.stdout })) {
    line = l;
    break;
  }
  child.kill('SIGKILL');
  await exited;
  assert.ok(line, 'the doomed run reported its node');
  const left = JSON.parse(line) as { pids: number[]; netns: string; hostVeth: string; prefix: string };
  const root = findCgroup2Mount();
  assert.ok(existsSync(join(root, left.prefix)), 'the dead run left cgroups');
  assert.ok(existsSync(join(NETNS_DIR, left.netns)), 'the dead run left a netns');
  for (const pid of left.pids) assert.ok(await running(pid), `the dead run left process ${pid}`);

  const node = await TestNode.create();
  try {
    assert.equal(existsSync(join(root, left.prefix)), false, 'its cgroups are gone');
    for (const m of cgroupV1Mounts()) assert.equal(existsSync(join(m, left.prefix)), false, `its cgroups in ${m} are gone`);
    assert.equal(existsSync(join(NETNS_DIR, left.netns)), false, 'its netns is gone');
    const links = await linkNames();
    assert.equal(links.includes(left.hostVeth) || links.includes(`${name}br`), false, 'its links are gone');
    for (const pid of left.pids) assert.equal(await running(pid), false, `process ${pid} is gone`);
  } finally {
    await node.destroy();
  }
});

test('exec runs a command in the pod netns and a container cgroup (its own, removed after, or a given one)', LIMIT, async (t) => {
  if (!canRun(t)) return;
  const node = await TestNode.create();
  try {
    const pod = await node.addPod({ namespace: 'shop', name: 'web' });
    const probe = 'readlink /proc/self/ns/net; grep "^0::" /proc/self/cgroup; cat';
    const own = await pod.exec(['/bin/sh', '-c', probe], { input: 'from stdin\n' });
    assert.equal(own.code, 0, own.stderr);
    const [net, cg, echoed] = own.stdout.split('\n');
    assert.equal(net, `net:[${pod.netnsInode}]`);
    assert.match(cg ?? '', new RegExp(`^0::${pod.cgroupPath}/cri-containerd-[0-9a-f]{64}\\.scope$`));
    assert.equal(echoed, 'from stdin');
    assert.equal(existsSync(join(findCgroup2Mount(), (cg ?? '').slice(3))), false, 'its cgroup is gone after');

    const app = await pod.runProcess('app', 'exec sleep 30');
    const inApp = await pod.exec(['/bin/sh', '-c', probe], { container: app });
    assert.equal(inApp.stdout.split('\n')[1], `0::${app.cgroupPath}`, "in the given container's cgroup");
    const failed = await pod.exec(['/bin/sh', '-c', 'echo no >&2; exit 3']);
    assert.deepEqual([failed.code, failed.stderr], [3, 'no\n']);
    const slow = await pod.exec(['sleep', '30'], { timeoutMs: 200 });
    assert.deepEqual([slow.code, slow.signal], [null, 'SIGKILL']);
  } finally {
    await node.destroy();
  }
});
