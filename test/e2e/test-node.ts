/**
 * A Kubernetes node for end-to-end tests, made from real kernel parts instead of a kubelet: pods are
 * network namespaces wired to a bridge by veth pairs, with their own 10.244.x.y address, and cgroup
 * directories named exactly as kubelet and the container runtimes name them; containers are real
 * processes inside those cgroups and namespaces. An agent under test sees the same cgroup ids,
 * namespace inodes, pids and packets as on a real node.
 *
 *   const node = await TestNode.create();            // bridge <name>br, cgroup /periscope-e2e-<name>
 *   try {
 *     const pod = await node.addPod({ namespace: 'default', name: 'web', qos: 'burstable' });
 *     const p = await pod.runProcess('app', 'exec sleep 30');       // sh -c script, in cgroup + netns
 *     const c = await pod.runRunc('box', ['sleep', '30']);          // a runc container from busybox
 *     // p.hostPid, p.cgroupPath, p.cgroupId, pod.ip, pod.netnsInode ...
 *   } finally {
 *     await node.destroy();
 *   }
 *
 * API
 * - `TestNode.create({ name?, cgroupPrefix?, subnet? })`: `name` is 1-10 chars [a-z0-9] starting with
 *   a letter (default `psc` + 6 random chars); it names the bridge `<name>br`, the host side of pod n's
 *   veth `<name>h<n>`, its netns `<name>-p<n>`, and the state dir /run/periscope-e2e/<name> (runc
 *   root, bundles, the busybox rootfs, container logs). Every cgroup goes below `cgroupPrefix` (default
 *   `/periscope-e2e-<name>`), with the real kubelet shape below it. Pod n gets 10.244.<subnet>.<n+1>/24
 *   (subnet defaults to a byte hashed from the name). The bridge has no address and pods have no
 *   default route: the host takes no part at layer 3, pods reach each other only through the bridge,
 *   and nothing can leave the node's subnet. IPv6 is turned off on the host-side interfaces (bridge,
 *   veths) so the host sends nothing on them. Node fields: `name`, `cgroupPrefix`, `bridge`, `subnet`,
 *   `stateDir`, `runcRoot`.
 * - `node.addPod(spec)` → `TestPod` with `spec` (defaults filled in: random uid, qos besteffort,
 *   driver systemd, runtime containerd), `uid`, `ip`, `netns` (name), `netnsPath`, `netnsInode`,
 *   `hostVeth` (its bridge port), `cgroupPath` and `node`.
 * - `pod.runProcess(containerName, script, { containerId? })`: creates the container cgroup and runs
 *   `/bin/sh -c script` in it and in the pod netns (mount, pid, ... namespaces stay the host's). The
 *   shell joins the cgroup and then execs nsenter and the script's shell, so `hostPid` is the process
 *   running the script; runProcess returns once it is in the cgroup and the netns. `wait()` gives its
 *   exit code (null when killed by a signal). The child does not keep the test process alive unless
 *   someone is in wait(), so a forgotten destroy() does not hang a run (the next create cleans up).
 * - `pod.runRunc(containerName, args, { containerId? })`: a runc container (`runc create` + `start`,
 *   detached, no terminal, stdio to files) from a read-only busybox-static rootfs, with new pid, mount,
 *   ipc and uts namespaces, the pod's netns joined by path, and `linux.cgroupsPath` set to the
 *   container cgroup. runc 1.1 (cgroupfs driver) places the process in the v1 controllers and, on a
 *   hybrid host, in the v2 tree too; should it not, runRunc moves the created (not yet started) process
 *   into the v2 cgroup itself. `hostPid` is the container's pid 1; `wait()` resolves with null (the
 *   container is not our child, its exit code is not ours to read) once it has gone.
 * - `pod.exec(argv, { container?, input?, timeoutMs? })` → `{ code, signal, stdout, stderr }`: runs a
 *   command (no shell) in the pod netns and in a container cgroup: `container`'s when given (like
 *   `kubectl exec`, minus its mount and pid namespaces), else a new container cgroup removed once the
 *   command is done (with anything it left running). Killed after `timeoutMs` (default 20 s).
 * - `ContainerProcess`: `containerId`, `containerName`, `cgroupPath`, `cgroupId`, `hostPid`,
 *   `stdoutPath`, `stderrPath`, `output()`, `wait()`, `kill()` (kills everything in the container
 *   cgroup, deletes the runc container, removes the cgroup directory as a runtime would).
 * - `pod.remove()`, `node.destroy()`: kill, delete and remove everything made, in the v2 tree and in
 *   every v1 hierarchy, links, netns, runc state, and host nft tables named `periscope_e2e_<name>h<n>_*`
 *   (net-kit binds them to the node's veths). Leftovers of a crashed run are removed by the next
 *   `create` (its owner pid and start time are recorded in the state dir; cgroups under the default
 *   prefix without a state dir are removed too), and before a name is reused.
 * - Also exported: `podCgroupPath`, `containerCgroupName` (the naming rules), `cgroupV1Mounts`,
 *   `whyTestNodeCannotRun` (undefined when a node can be made: for a test's skip/fail gate).
 *
 * Container cgroup names: systemd driver `cri-containerd-<id>.scope`, `crio-<id>.scope`,
 * `docker-<id>.scope`; cgroupfs driver `<id>` for containerd and Docker, `crio-<id>` for CRI-O.
 * Processes started by runProcess are in the v2 tree only; runc also puts its own in v1 controllers.
 * Needs root, iproute2, nsenter, /usr/sbin/runc and /bin/busybox (see `whyTestNodeCannotRun`).
 * Bridged frames pass the host's iptables when br_netfilter is loaded with bridge-nf-call-iptables=1;
 * a FORWARD policy of DROP there (Docker hosts) would cut pods off from each other.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, readdir, readlink, rm, rmdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cgroupIdOf, cgroupPathOfPid, findCgroup2Mount } from '../../src/inventory/cgroups.js';

const execFileP = promisify(execFile);

export const RUNC = '/usr/sbin/runc';
export const BUSYBOX = '/bin/busybox';
export const NETNS_DIR = '/var/run/netns';
export const STATE_ROOT = '/run/periscope-e2e';
/** only for removing the nft tables a test bound to the node's veths (net-kit.ts), when installed */
const NFT = '/usr/sbin/nft';
/** short enough for `<name>h<n>` to stay within the 15 characters of an interface name */
const NODE_NAME = /^[a-z][a-z0-9]{0,9}$/;

export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';
export type CgroupDriver = 'systemd' | 'cgroupfs';
export type ContainerRuntime = 'containerd' | 'crio' | 'docker';

export interface PodSpec {
  namespace: string;
  name: string;
  uid?: string;
  qos?: QosClass;
  driver?: CgroupDriver;
  runtime?: ContainerRuntime;
}

export interface TestNodeOptions {
  /** 1-10 chars [a-z0-9], starting with a letter; default `psc` + 6 random chars */
  name?: string;
  /** where every cgroup of the node goes, relative to the cgroup2 root; default `/periscope-e2e-<name>` */
  cgroupPrefix?: string;
  /** third octet of the pods' 10.244.x.0/24; default hashed from the name */
  subnet?: number;
}

export interface ContainerProcess {
  readonly kind: 'process' | 'runc';
  readonly containerId: string;
  readonly containerName: string;
  /** relative to the cgroup2 root */
  readonly cgroupPath: string;
  /** inode of the cgroup2 directory: the id the kernel reports */
  readonly cgroupId: number;
  readonly hostPid: number;
  readonly stdoutPath: string;
  readonly stderrPath: string;
  output(): Promise<{ stdout: string; stderr: string }>;
  /** exit code of a process (null if a signal ended it); always null for a runc container */
  wait(): Promise<number | null>;
  /** kills every process in the container cgroup and removes the container (and its cgroup) */
  kill(): Promise<void>;
}

/** What `pod.exec` gives: exit code (null when a signal ended the command) and output. */
export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command with `input` on its stdin and collects its exit status and output; one still running
 * after `timeoutMs` (default 20 s) is killed. Does not throw on a failure exit.
 */
export function runCollecting(file: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Why a test node cannot be made here, or undefined when it can. */
export function whyTestNodeCannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const tool of ['ip', 'nsenter']) if (!onPath(tool)) return `${tool} is not installed`;
  if (!existsSync(RUNC)) return `${RUNC} is missing (apt-get install runc)`;
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (apt-get install busybox-static)`;
  try {
    findCgroup2Mount();
  } catch {
    return 'no cgroup2 mount';
  }
  return undefined;
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d !== '' && existsSync(join(d, tool)));
}

/** The pod's cgroup as kubelet names it, relative to the kubepods root (no prefix). */
export function podCgroupPath(spec: Required<PodSpec>): string {
  if (spec.driver === 'systemd') {
    const uid = spec.uid.replaceAll('-', '_');
    if (spec.qos === 'guaranteed') return `/kubepods.slice/kubepods-pod${uid}.slice`;
    return `/kubepods.slice/kubepods-${spec.qos}.slice/kubepods-${spec.qos}-pod${uid}.slice`;
  }
  if (spec.qos === 'guaranteed') return `/kubepods/pod${spec.uid}`;
  return `/kubepods/${spec.qos}/pod${spec.uid}`;
}

/** The last segment of a container's cgroup as the runtime names it. */
export function containerCgroupName(driver: CgroupDriver, runtime: ContainerRuntime, containerId: string): string {
  if (driver === 'systemd') {
    const scope = runtime === 'containerd' ? 'cri-containerd' : runtime;
    return `${scope}-${containerId}.scope`;
  }
  return runtime === 'crio' ? `crio-${containerId}` : containerId;
}

// --- small helpers ------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function errorCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

async function cmd(file: string, args: string[], timeoutMs = 20_000): Promise<string> {
  try {
    const { stdout } = await execFileP(file, args, { timeout: timeoutMs, encoding: 'utf8' });
    return stdout;
  } catch (e) {
    const stderr = typeof e === 'object' && e !== null && 'stderr' in e && typeof e.stderr === 'string' ? e.stderr.trim() : '';
    throw new Error(`${file} ${args.join(' ')}: ${stderr || (e instanceof Error ? e.message : String(e))}`, { cause: e });
  }
}

/** Runs a command whose failure is expected when there is nothing to do ("delete if exists"). */
async function quietly(file: string, args: string[]): Promise<void> {
  try {
    await cmd(file, args);
  } catch {
    // nothing there
  }
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** State (field 3) and start time (field 22) of a process; undefined when it is gone. */
async function procStat(pid: number): Promise<{ state: string; start: string } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', start: rest[19] ?? '' };
  } catch {
    return undefined;
  }
}

async function running(pid: number, start?: string): Promise<boolean> {
  const s = await procStat(pid);
  return s !== undefined && s.state !== 'Z' && s.state !== 'X' && (start === undefined || s.start === start);
}

/** Mount points of the cgroup v1 hierarchies (none on a unified host). */
export function cgroupV1Mounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0 || line.slice(sep + 3).split(' ')[0] !== 'cgroup') continue;
    const mountpoint = line.slice(0, sep).split(' ')[4];
    if (mountpoint) out.push(mountpoint.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

/** Kills every process in a cgroup2 directory and below, and waits until none is left. */
async function killCgroup(dir: string): Promise<void> {
  if (!existsSync(join(dir, 'cgroup.procs'))) return;
  try {
    await writeFile(join(dir, 'cgroup.kill'), '1');
  } catch {
    // kernels before 5.14: signal each process, recursively
    for (const pid of await cgroupPids(dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
  await waitFor(`the processes of ${dir} to exit`, 5_000, async () => {
    try {
      return /^populated 0$/m.test(await readFile(join(dir, 'cgroup.events'), 'utf8'));
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return true;
      throw e;
    }
  });
}

async function cgroupPids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  try {
    for (const line of (await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n')) if (line) pids.push(Number(line));
    for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) pids.push(...(await cgroupPids(join(dir, e.name))));
  } catch (e) {
    if (errorCode(e) !== 'ENOENT') throw e;
  }
  return pids;
}

/** Removes a cgroup directory and all below it (children first); fine when it does not exist. */
async function removeCgroupTree(dir: string): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return;
    throw e;
  }
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(join(dir, e.name));
  // a process that just died may take a moment to leave
  for (let i = 0; ; i++) {
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      if (errorCode(e) === 'ENOENT') return;
      if (i >= 100) throw new Error(`cannot remove cgroup ${dir}`, { cause: e });
      await sleep(20);
    }
  }
}

/** Turns off IPv6 on one of our host-side interfaces, so the host sends nothing on it. */
async function noIpv6(ifname: string): Promise<void> {
  try {
    await writeFile(`/proc/sys/net/ipv6/conf/${ifname}/disable_ipv6`, '1');
  } catch {
    // IPv6 is off in this kernel
  }
}

function v2Dir(cgroupPath: string): string {
  return join(findCgroup2Mount(), cgroupPath);
}

function randomHexId(): string {
  return randomBytes(32).toString('hex');
}

interface OwnerRecord {
  pid: number;
  start: string;
  cgroupPrefix: string;
}

/** The owner record in a node's state dir; undefined when it is missing or unreadable. */
async function readOwner(stateDir: string): Promise<OwnerRecord | undefined> {
  let v: unknown;
  try {
    v = JSON.parse(await readFile(join(stateDir, 'owner.json'), 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (typeof r.pid !== 'number' || typeof r.start !== 'string' || typeof r.cgroupPrefix !== 'string') return undefined;
  return { pid: r.pid, start: r.start, cgroupPrefix: r.cgroupPrefix };
}

/**
 * Removes everything a node of this name made (or may have made): runc containers, processes and
 * cgroups below the prefix (v2 and v1), its links and netns, its state dir. Collects errors and
 * throws them together at the end, after trying everything.
 */
async function cleanupNode(name: string, cgroupPrefix: string): Promise<void> {
  const errors: unknown[] = [];
  const step = async (f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  const stateDir = join(STATE_ROOT, name);
  const runcRoot = join(stateDir, 'runc');
  if (existsSync(runcRoot)) {
    await step(async () => {
      const ids = (await cmd(RUNC, ['--root', runcRoot, 'list', '-q'])).split('\n').filter(Boolean);
      for (const id of ids) await step(() => cmd(RUNC, ['--root', runcRoot, 'delete', '--force', id]).then(() => undefined));
    });
  }
  assertSafePrefix(cgroupPrefix);
  await step(() => killCgroup(v2Dir(cgroupPrefix)));
  await step(() => removeCgroupTree(v2Dir(cgroupPrefix)));
  for (const mount of cgroupV1Mounts()) await step(() => removeCgroupTree(join(mount, cgroupPrefix)));
  await step(async () => {
    const links = JSON.parse(await cmd('ip', ['-j', 'link', 'show'])) as unknown;
    const ours = new RegExp(`^${name}(?:br|h\\d+)$`);
    const names = Array.isArray(links) ? links.map((l: unknown) => (l as { ifname?: unknown }).ifname) : [];
    // pod veths first, the bridge last
    const mine = names.filter((n): n is string => typeof n === 'string' && ours.test(n)).sort((a, b) => Number(a.endsWith('br')) - Number(b.endsWith('br')));
    for (const link of mine) await step(() => cmd('ip', ['link', 'del', link]).then(() => undefined));
  });
  await step(async () => {
    const entries = existsSync(NETNS_DIR) ? await readdir(NETNS_DIR) : [];
    for (const ns of entries.filter((e) => e.startsWith(`${name}-`))) await step(() => cmd('ip', ['netns', 'del', ns]).then(() => undefined));
  });
  // nft tables bound to the node's host-side veths (net-kit's randomLoss); gone with nftables itself
  if (existsSync(NFT)) {
    await step(async () => {
      const ours = new RegExp(`^table netdev (periscope_e2e_${name}h\\d+_\\w+)$`);
      for (const line of (await cmd(NFT, ['list', 'tables', 'netdev'])).split('\n')) {
        const m = ours.exec(line.trim());
        if (m) await step(() => cmd(NFT, ['delete', 'table', 'netdev', m[1]!]).then(() => undefined));
      }
    });
  }
  await step(() => rm(stateDir, { recursive: true, force: true }));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `cleaning up test node ${name} failed ${errors.length} times`);
}

function assertSafePrefix(prefix: string): void {
  if (!/^(?:\/[A-Za-z0-9_.@-]+)+$/.test(prefix) || prefix.split('/').some((s) => s === '.' || s === '..')) {
    throw new Error(`cgroupPrefix must be an absolute path below the cgroup2 root, not ${JSON.stringify(prefix)}`);
  }
}

/**
 * Cleans up nodes of processes that are gone (a crashed or killed test run), and cgroups under the
 * default prefix whose state dir is gone (a node writes its state dir before any cgroup, and removes
 * it last).
 */
async function sweepStale(): Promise<void> {
  let names: string[];
  try {
    names = await readdir(STATE_ROOT);
  } catch {
    return;
  }
  const orphans = new Set<string>();
  for (const root of [findCgroup2Mount(), ...cgroupV1Mounts()]) {
    for (const entry of await readdir(root).catch(() => [] as string[])) {
      const m = /^periscope-e2e-([a-z0-9]+)$/.exec(entry);
      if (m && !NODE_NAME.test(m[1]!)) continue;
      if (m) orphans.add(m[1]!);
    }
  }
  for (const name of orphans) {
    // looked at after the cgroup dir was seen: a node being made now already has its state dir
    if (existsSync(join(STATE_ROOT, name))) continue;
    try {
      await cleanupNode(name, `/periscope-e2e-${name}`);
    } catch (e) {
      process.emitWarning(`orphaned cgroups of test node ${name} could not all be removed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  for (const name of names) {
    if (!NODE_NAME.test(name)) continue;
    const dir = join(STATE_ROOT, name);
    const owner = await readOwner(dir);
    if (owner && (await running(owner.pid, owner.start))) continue;
    // without a record: made a moment ago by a node still starting, or a crash before it was written
    if (!owner) {
      try {
        if (Date.now() - (await stat(dir)).mtimeMs < 60_000) continue;
      } catch {
        continue;
      }
    }
    try {
      await cleanupNode(name, owner?.cgroupPrefix ?? `/periscope-e2e-${name}`);
    } catch (e) {
      process.emitWarning(`leftovers of test node ${name} could not all be removed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

// --- the node -----------------------------------------------------------------------------------

export class TestNode {
  readonly name: string;
  /** relative to the cgroup2 root */
  readonly cgroupPrefix: string;
  readonly bridge: string;
  readonly subnet: string;
  /** /run/periscope-e2e/<name>: runc root, bundles, rootfs, container logs */
  readonly stateDir: string;
  /** runc's --root for this node's containers */
  readonly runcRoot: string;
  private readonly subnetByte: number;
  private readonly pods = new Set<TestPod>();
  private podCount = 0;
  private rootfsReady: Promise<string> | undefined;
  private destroyed = false;

  private constructor(name: string, cgroupPrefix: string, subnet: number) {
    this.name = name;
    this.cgroupPrefix = cgroupPrefix;
    this.bridge = `${name}br`;
    this.subnetByte = subnet;
    this.subnet = `10.244.${subnet}.0/24`;
    this.stateDir = join(STATE_ROOT, name);
    this.runcRoot = join(this.stateDir, 'runc');
  }

  static async create(opts: TestNodeOptions = {}): Promise<TestNode> {
    const why = whyTestNodeCannotRun();
    if (why) throw new Error(`a test node cannot be made here: ${why}`);
    const name = opts.name ?? `psc${randomBytes(4).readUInt32BE(0).toString(36).padStart(6, '0').slice(-6)}`;
    if (!NODE_NAME.test(name)) throw new Error(`test node name must be 1-10 chars [a-z0-9] starting with a letter, not ${JSON.stringify(name)}`);
    const cgroupPrefix = opts.cgroupPrefix ?? `/periscope-e2e-${name}`;
    assertSafePrefix(cgroupPrefix);
    const subnet = opts.subnet ?? createHash('sha256').update(name).digest().readUInt8(0);
    if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error(`subnet must be 0-255, not ${subnet}`);

    await mkdir(STATE_ROOT, { recursive: true });
    await sweepStale();
    const node = new TestNode(name, cgroupPrefix, subnet);
    // a name in use by a live process is refused; a dead one's leftovers are removed
    const previous = await readOwner(node.stateDir);
    if (previous && (await running(previous.pid, previous.start))) throw new Error(`test node ${name} is in use by pid ${previous.pid}`);
    if (previous && previous.cgroupPrefix !== cgroupPrefix) await cleanupNode(name, previous.cgroupPrefix);
    await cleanupNode(name, cgroupPrefix);

    try {
      await mkdir(node.stateDir, { recursive: true });
      const me = await procStat(process.pid);
      const owner: OwnerRecord = { pid: process.pid, start: me?.start ?? '', cgroupPrefix };
      await writeFile(join(node.stateDir, 'owner.json'), JSON.stringify(owner));
      await mkdir(join(node.stateDir, 'logs'));
      await mkdir(v2Dir(cgroupPrefix), { recursive: true });
      await cmd('ip', ['link', 'add', node.bridge, 'type', 'bridge']);
      await noIpv6(node.bridge);
      await cmd('ip', ['link', 'set', node.bridge, 'up']);
    } catch (e) {
      await cleanupNode(name, cgroupPrefix).catch(() => undefined);
      throw e;
    }
    return node;
  }

  /** The pod's address for the n-th pod (n from 1). */
  private podIp(n: number): string {
    return `10.244.${this.subnetByte}.${n + 1}`;
  }

  async addPod(spec: PodSpec): Promise<TestPod> {
    if (this.destroyed) throw new Error(`test node ${this.name} is destroyed`);
    if (!spec.namespace || !spec.name) throw new Error('a pod needs a namespace and a name');
    const full: Required<PodSpec> = {
      namespace: spec.namespace,
      name: spec.name,
      uid: spec.uid ?? randomUUID(),
      qos: spec.qos ?? 'besteffort',
      driver: spec.driver ?? 'systemd',
      runtime: spec.runtime ?? 'containerd',
    };
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(full.uid)) throw new Error(`pod uid must be a lower-case UUID, not ${full.uid}`);
    const n = ++this.podCount;
    if (n > 253) throw new Error('a test node has room for 253 pods');
    const pod = new TestPod(this, full, {
      ip: this.podIp(n),
      netns: `${this.name}-p${n}`,
      hostVeth: `${this.name}h${n}`,
      cgroupPath: `${this.cgroupPrefix}${podCgroupPath(full)}`,
    });
    this.pods.add(pod);
    try {
      await pod.setUp(this.bridge);
    } catch (e) {
      await pod.remove().catch(() => undefined);
      throw e;
    }
    return pod;
  }

  /** @internal */
  forget(pod: TestPod): void {
    this.pods.delete(pod);
  }

  /** @internal the busybox root file system all runc containers share (read-only) */
  rootfs(): Promise<string> {
    this.rootfsReady ??= (async () => {
      const root = join(this.stateDir, 'rootfs');
      for (const d of ['bin', 'dev', 'etc', 'proc', 'sys', 'tmp']) await mkdir(join(root, d), { recursive: true });
      await copyFile(BUSYBOX, join(root, 'bin/busybox'));
      const applets = (await cmd(BUSYBOX, ['--list'])).split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
      for (const a of applets) await symlink('busybox', join(root, 'bin', a));
      await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
      await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
      return root;
    })();
    return this.rootfsReady;
  }

  /** Removes every pod, process, runc container, cgroup, link, netns and state file of the node. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    const errors: unknown[] = [];
    for (const pod of [...this.pods]) await pod.remove().catch((e: unknown) => errors.push(e));
    await cleanupNode(this.name, this.cgroupPrefix).catch((e: unknown) => errors.push(e));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `destroying test node ${this.name} failed ${errors.length} times`);
  }
}

// --- pods ---------------------------------------------------------------------------------------

export class TestPod {
  readonly spec: Required<PodSpec>;
  readonly uid: string;
  readonly ip: string;
  /** name of the network namespace (in /var/run/netns) */
  readonly netns: string;
  private inode = 0;
  /** name of the host side of the pod's veth, a port of the node's bridge */
  readonly hostVeth: string;
  /** relative to the cgroup2 root */
  readonly cgroupPath: string;
  /** the node the pod is on */
  readonly node: TestNode;
  private readonly containers = new Set<ContainerProcess>();

  /** @internal made by TestNode.addPod */
  constructor(node: TestNode, spec: Required<PodSpec>, where: { ip: string; netns: string; hostVeth: string; cgroupPath: string }) {
    this.node = node;
    this.spec = spec;
    this.uid = spec.uid;
    this.ip = where.ip;
    this.netns = where.netns;
    this.hostVeth = where.hostVeth;
    this.cgroupPath = where.cgroupPath;
  }

  /** inode of the network namespace (of /var/run/netns/<name>): the id the kernel reports */
  get netnsInode(): number {
    return this.inode;
  }

  /** /var/run/netns/<name> */
  get netnsPath(): string {
    return join(NETNS_DIR, this.netns);
  }

  /** @internal */
  async setUp(bridge: string): Promise<void> {
    await mkdir(v2Dir(this.cgroupPath), { recursive: true });
    await quietly('ip', ['link', 'del', this.hostVeth]);
    await quietly('ip', ['netns', 'del', this.netns]);
    await cmd('ip', ['netns', 'add', this.netns]);
    this.inode = Number((await stat(this.netnsPath, { bigint: true })).ino);
    await cmd('ip', ['link', 'add', this.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.netns]);
    await noIpv6(this.hostVeth);
    await cmd('ip', ['link', 'set', this.hostVeth, 'master', bridge, 'up']);
    await cmd('ip', ['-n', this.netns, 'addr', 'add', `${this.ip}/24`, 'dev', 'eth0']);
    await cmd('ip', ['-n', this.netns, 'link', 'set', 'eth0', 'up']);
    await cmd('ip', ['-n', this.netns, 'link', 'set', 'lo', 'up']);
  }

  private containerPlace(containerId: string | undefined): { id: string; cgroupPath: string; dir: string; stdoutPath: string; stderrPath: string } {
    const id = containerId ?? randomHexId();
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) throw new Error(`bad container id ${JSON.stringify(id)}`);
    const cgroupPath = `${this.cgroupPath}/${containerCgroupName(this.spec.driver, this.spec.runtime, id)}`;
    const logs = join(this.node.stateDir, 'logs');
    return { id, cgroupPath, dir: v2Dir(cgroupPath), stdoutPath: join(logs, `${id}.out`), stderrPath: join(logs, `${id}.err`) };
  }

  /**
   * A container of this pod for a server of test/servers.ts: its cgroup made, and the argv prefix a
   * fixture's `wrap` takes (join the cgroup, then the pod's network namespace; each step execs, so
   * the pid the fixture signals is the server's). The cgroup goes with the pod.
   */
  async container(opts: { containerId?: string } = {}): Promise<{ id: string; cgroupPath: string; wrap: string[] }> {
    const place = this.containerPlace(opts.containerId);
    await mkdir(place.dir);
    const wrap = ['/bin/sh', '-c', 'echo $$ > "$0" || exit 97; ns=$1; shift; exec nsenter --net="$ns" -- "$@"', join(place.dir, 'cgroup.procs'), this.netnsPath];
    return { id: place.id, cgroupPath: place.cgroupPath, wrap };
  }

  async runProcess(containerName: string, script: string, opts: { containerId?: string } = {}): Promise<ContainerProcess> {
    const place = this.containerPlace(opts.containerId);
    await mkdir(place.dir);
    const out = await open(place.stdoutPath, 'w');
    const err = await open(place.stderrPath, 'w');
    let child: ChildProcess;
    try {
      // join the cgroup first, then the netns; every step execs, so the pid stays the script's
      child = spawn(
        '/bin/sh',
        ['-c', 'echo $$ > "$1" || exit 97; exec nsenter --net="$2" -- /bin/sh -c "$3"', 'container', join(place.dir, 'cgroup.procs'), this.netnsPath, script],
        { stdio: ['ignore', out.fd, err.fd] },
      );
    } finally {
      await out.close();
      await err.close();
    }
    const status: { exit?: { code: number | null; error?: Error } } = {};
    const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
      child.once('exit', (code) => resolve((status.exit = { code })));
      child.once('error', (error) => resolve((status.exit = { code: null, error })));
    });
    const pid = child.pid;
    if (pid === undefined) throw (await exited).error ?? new Error(`cannot start the process of ${containerName}`);
    // a forgotten destroy() must not hang the test run; wait() holds the child while it waits
    child.unref();
    const want = `net:[${this.netnsInode}]`;
    try {
      await waitFor(`process ${pid} to enter pod ${this.spec.name}`, 5_000, async () => {
        if (status.exit) return true;
        try {
          return (await readlink(`/proc/${pid}/ns/net`)) === want;
        } catch {
          return status.exit !== undefined;
        }
      });
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    if (status.exit?.code === 97) throw new Error(`the process of ${containerName} could not join ${place.cgroupPath}`);
    const cgroupId = cgroupIdOf(place.dir);
    let killed: Promise<void> | undefined;
    let waiters = 0;
    const proc: ContainerProcess = {
      kind: 'process',
      containerId: place.id,
      containerName,
      cgroupPath: place.cgroupPath,
      cgroupId,
      hostPid: pid,
      stdoutPath: place.stdoutPath,
      stderrPath: place.stderrPath,
      output: () => readOutput(place.stdoutPath, place.stderrPath),
      wait: async () => {
        // only a waiter keeps the test process alive for the child
        if (waiters++ === 0) child.ref();
        try {
          return (await exited).code;
        } finally {
          if (--waiters === 0) child.unref();
        }
      },
      kill: () => {
        killed ??= (async () => {
          await killCgroup(place.dir);
          // the script may have moved itself elsewhere: its first process is ours to kill anyway
          if (!status.exit) child.kill('SIGKILL');
          await waitFor(`process ${pid} to exit`, 5_000, () => status.exit !== undefined);
          await removeCgroupTree(place.dir);
          this.containers.delete(proc);
        })();
        return killed;
      },
    };
    this.containers.add(proc);
    return proc;
  }

  /**
   * Runs `argv` (no shell) in the pod netns and in a container cgroup — `container`'s (as `kubectl
   * exec` would, though its mount and pid namespaces are not joined), else a new one that is removed
   * once the command is done — and gives its exit code and output. A command still running after
   * `timeoutMs` (default 20 s) is killed (code null, signal SIGKILL). Does not throw on a failure exit.
   */
  async exec(argv: string[], opts: { container?: ContainerProcess; input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new Error('exec needs a command');
    const own = opts.container ? undefined : this.containerPlace(undefined);
    const dir = own ? own.dir : v2Dir(opts.container!.cgroupPath);
    if (own) await mkdir(own.dir);
    try {
      const r = await runCollecting('/bin/sh', ['-c', 'echo $$ > "$1" || exit 97; ns=$2; shift 2; exec nsenter --net="$ns" -- "$@"', 'exec', join(dir, 'cgroup.procs'), this.netnsPath, ...argv], opts);
      if (r.code === 97) throw new Error(`exec in pod ${this.spec.name} could not join ${dir}: ${r.stderr.trim()}`);
      return r;
    } finally {
      if (own) {
        // whatever the command left running goes with its cgroup
        await killCgroup(own.dir);
        await removeCgroupTree(own.dir);
      }
    }
  }

  async runRunc(containerName: string, args: string[], opts: { containerId?: string } = {}): Promise<ContainerProcess> {
    if (args.length === 0) throw new Error('runRunc needs a command');
    const place = this.containerPlace(opts.containerId);
    const rootfs = await this.node.rootfs();
    const bundle = join(this.node.stateDir, 'bundles', place.id);
    await mkdir(bundle, { recursive: true });
    await writeFile(join(bundle, 'config.json'), JSON.stringify(this.runcConfig(containerName, place.cgroupPath, rootfs, args), null, 2));
    const runc = (...a: string[]): Promise<string> => cmd(RUNC, ['--root', this.node.runcRoot, ...a]);
    const out = await open(place.stdoutPath, 'w');
    const err = await open(place.stderrPath, 'w');
    let created: Promise<number | null>;
    try {
      // detached, no terminal: the container keeps runc's stdio, our two files
      const child = spawn(RUNC, ['--root', this.node.runcRoot, 'create', '--bundle', bundle, '--pid-file', join(bundle, 'pid'), place.id], {
        stdio: ['ignore', out.fd, err.fd],
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      created = new Promise((resolve, reject) => {
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
        child.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    } finally {
      await out.close();
      await err.close();
    }
    const code = await created;
    if (code !== 0) {
      const why = (await readFile(place.stderrPath, 'utf8').catch(() => '')).trim();
      throw new Error(`runc create ${place.id} exited with ${code}: ${why}`);
    }
    const state = parseRuncState(await runc('state', place.id));
    const pid = state.pid;
    // runc 1.1 puts the process in the v2 tree on a hybrid host; if a runc does not, we do, before it starts
    if (cgroupPathOfPid(pid) !== place.cgroupPath) {
      await mkdir(place.dir, { recursive: true });
      await writeFile(join(place.dir, 'cgroup.procs'), String(pid));
    }
    await runc('start', place.id);
    const cgroupId = cgroupIdOf(place.dir);
    const start = (await procStat(pid))?.start;
    let gone: Promise<null> | undefined;
    const wait = (): Promise<null> => {
      gone ??= (async () => {
        while (await running(pid, start)) await sleep(50);
        return null;
      })();
      return gone;
    };
    let killed: Promise<void> | undefined;
    const proc: ContainerProcess = {
      kind: 'runc',
      containerId: place.id,
      containerName,
      cgroupPath: place.cgroupPath,
      cgroupId,
      hostPid: pid,
      stdoutPath: place.stdoutPath,
      stderrPath: place.stderrPath,
      output: () => readOutput(place.stdoutPath, place.stderrPath),
      wait,
      kill: () => {
        killed ??= (async () => {
          await runc('kill', place.id, 'KILL').catch(() => undefined);
          await killCgroup(place.dir);
          await runc('delete', '--force', place.id);
          await removeCgroupTree(place.dir);
          for (const mount of cgroupV1Mounts()) await removeCgroupTree(join(mount, place.cgroupPath));
          await rm(bundle, { recursive: true, force: true });
          this.containers.delete(proc);
        })();
        return killed;
      },
    };
    this.containers.add(proc);
    return proc;
  }

  private runcConfig(containerName: string, cgroupPath: string, rootfs: string, args: string[]): unknown {
    const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
    const hostname = this.spec.name.slice(0, 63);
    return {
      ociVersion: '1.0.2-dev',
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args,
        env: ['PATH=/bin', `HOSTNAME=${hostname}`],
        cwd: '/',
        capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
        noNewPrivileges: true,
      },
      root: { path: rootfs, readonly: true },
      hostname,
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
        { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=16m'] },
      ],
      // what containerd's CRI plugin writes, for whoever reads the bundle
      annotations: {
        'io.kubernetes.cri.container-type': 'container',
        'io.kubernetes.cri.container-name': containerName,
        'io.kubernetes.cri.sandbox-name': this.spec.name,
        'io.kubernetes.cri.sandbox-namespace': this.spec.namespace,
        'io.kubernetes.cri.sandbox-uid': this.uid,
      },
      linux: {
        cgroupsPath: cgroupPath,
        resources: { devices: [{ allow: false, access: 'rwm' }] },
        namespaces: [{ type: 'pid' }, { type: 'network', path: this.netnsPath }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
        maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
        readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      },
    };
  }

  /** Kills the pod's containers and processes, removes its cgroups (v2 and v1), veth and netns. */
  async remove(): Promise<void> {
    const errors: unknown[] = [];
    for (const c of [...this.containers]) await c.kill().catch((e: unknown) => errors.push(e));
    const dir = v2Dir(this.cgroupPath);
    await killCgroup(dir).catch((e: unknown) => errors.push(e));
    await removeCgroupTree(dir).catch((e: unknown) => errors.push(e));
    for (const mount of cgroupV1Mounts()) await removeCgroupTree(join(mount, this.cgroupPath)).catch((e: unknown) => errors.push(e));
    // deleting the veth takes both ends at once; a deleted netns goes away only when the kernel gets to it
    await quietly('ip', ['link', 'del', this.hostVeth]);
    await quietly('ip', ['netns', 'del', this.netns]);
    if (existsSync(this.netnsPath)) errors.push(new Error(`netns ${this.netns} is still there`));
    this.node.forget(this);
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `removing pod ${this.spec.namespace}/${this.spec.name} failed ${errors.length} times`);
  }
}

async function readOutput(stdoutPath: string, stderrPath: string): Promise<{ stdout: string; stderr: string }> {
  const read = (p: string): Promise<string> => readFile(p, 'utf8').catch(() => '');
  return { stdout: await read(stdoutPath), stderr: await read(stderrPath) };
}

function parseRuncState(text: string): { pid: number; status: string } {
  const v = JSON.parse(text) as unknown;
  const r = typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  if (typeof r.pid !== 'number' || r.pid <= 0 || typeof r.status !== 'string') throw new Error(`runc state gave no pid: ${text}`);
  return { pid: r.pid, status: r.status };
}
