/**
 * Real network fixtures for the network collector's end-to-end tests, on a test node (test-node.ts):
 * nftables rules inside pod netns (a black hole, random loss, a kube-proxy style ClusterIP), per-netns
 * sysctls, the kernel's own counters (/proc/net/snmp, /proc/net/netstat, `ss -ti`), TCP peers that move
 * an exact number of bytes and hold the connection open until told, refused and timed-out connects,
 * dnsmasq with a hand-made DNS client, and an "outside world" host. Nothing here sends a packet
 * anywhere but to a netns of the node (or loopback): pods have no default route, and the only routes
 * added are on-link routes over the pod's own veth, into the node's private bridge.
 *
 *   const node = await TestNode.create();
 *   try {
 *     const [a, b] = [await node.addPod({ namespace: 'shop', name: 'api' }), await node.addPod({ namespace: 'shop', name: 'web' })];
 *     const x = await exactExchange(a, b, { port: 8080, request: 1000, response: 5000 });
 *     // both apps have read everything and the connection is still open: look at the kernel now
 *     const [mine] = await tcpSockets(b, { peerPort: 8080 });     // mine.bytesReceived === 5000
 *     await x.close();                                           // client closes first, then the server
 *   } finally {
 *     await node.destroy();
 *   }
 *
 * API (a `TestPod` is the place of every command; `pod` below is a TestPod)
 * - Admin commands run in the pod netns only, in the test's own cgroup (so a collector does not
 *   count them for the pod): `inNetns(pod, argv, { input? })`, `nft(pod | netnsName, ruleset)` (an
 *   `nft -f -` of the text), `setSysctl(pod, key, value)` / `getSysctl(pod, key)` (per-netns keys such
 *   as net.ipv4.tcp_syn_retries), `snmp(pod)` (the /proc/net/snmp and /proc/net/netstat counters, by
 *   group: `s.Tcp.RetransSegs`, `s.TcpExt.TCPTimeouts`), `tcpSockets(pod, filter?)` (`ss -tin state
 *   all`, parsed: state, queues, ends, bytesSent/bytesAcked/bytesReceived and every other info field).
 * - `blackHole(node, { name? })` → a pod whose netns drops every inbound packet (nft input, policy
 *   drop; ARP still works, so a SYN is sent and never answered). `randomLoss(pod, percent, { direction?
 *   })` → drops that share of the pod's IPv4 packets (`numgen random mod 100 < N`) the way a lossy
 *   wire would, on input (netdev ingress of the pod's eth0), output (netdev ingress of its host-side
 *   veth, a table in the host netns bound to that device: the pod's TCP retransmits) or both
 *   (default); `.dropped()` reads the rule counters, `.remove()` deletes the tables (so does destroy).
 *   `clusterIp(clientPod, { clusterIp, port, backendIp, backendPort, protocols?, serviceCidr? })`: a
 *   nat output DNAT in the client's netns, plus the on-link route for the service CIDR (default
 *   10.96.0.0/12 dev eth0) that connect() needs before the output hook ever runs; `.remove()`.
 * - Workloads (test/helpers/net_kit.py, run by /usr/bin/python3 in the pod netns and a new container
 *   cgroup, like a container of the pod): `startExactServer(pod, { port, read, write, hold?, onSignal?,
 *   connections? })` and `startExactClient(pod, { ip, port, send, read, onSignal? })` give a `NetApp`
 *   (its `proc` is the ContainerProcess: cgroupId, hostPid ...; `waitFor(event)`, `signal()`,
 *   `exited()`); `exactExchange(serverPod, clientPod, { port, request, response, connectTo? })` starts
 *   both and returns once each app has read all it was owed, the connection still open; `.close()`
 *   then tells the client and the server to close (in that order, or `'server'` first) and waits for
 *   both to exit. `connectOnce(pod, ip, port, { timeoutS?, container? })` → `{ code, ms }` with `code`
 *   'connected' or the errno name; `connectRefused(pod, ip, port)` expects ECONNREFUSED;
 *   `connectTimesOut(pod, ip, port, { synRetries? })` sets net.ipv4.tcp_syn_retries (default 1: the
 *   kernel gives up after ~3 s) in the pod and expects the kernel's own ETIMEDOUT.
 * - DNS: `startDnsmasq(pod, { hosts?, txt?, localDomains?, ttl? })` → `DnsServer` (dnsmasq from
 *   Debian, in the foreground, on pod.ip:53 UDP and TCP, with its pid file and query log in the node
 *   state dir; names below `localDomains` (default `test`) it does not know are NXDOMAIN, any other
 *   name is REFUSED, a known name without a record of the type is NOERROR with no answer).
 *   `dnsQuery(pod, server, queries, { tcp?, timeoutS?, count?, intervalS?, container? })` → one
 *   `DnsResult` per query sent (`event` 'answer' with rcode and answers, 'timeout', or 'error'),
 *   each query from a new socket with a random id; a server that drops the query ends in 'timeout'
 *   after `timeoutS` (default 2), a pod with nothing on port 53 in 'error' ECONNREFUSED (ICMP).
 * - `outsideWorld(node, { hostname?, address?, port?, request?, response? })` → an external host: a
 *   pod (namespace `outside-world`) that also owns `address` (default 203.0.113.10, TEST-NET-3) and
 *   serves TCP on it (read `request`, write `response`, close after the peer does, any number of
 *   connections). `routeFrom(pod)` adds the on-link /32 route a client pod needs; give `hostname`
 *   (default api.example.test) and `address` to startDnsmasq's `hosts`.
 * - `whyNetKitCannotRun()`: undefined when all of it can run here (root, nft, dnsmasq, ss, python).
 *
 * Kernel facts the tests pin down (kernel 6.18; net-kit.test.ts), for whoever compares counters:
 * - tcp_info after the client sent N and read M, connection open: client bytes_sent N, bytes_acked
 *   N+1 (the SYN counts on the side that connected), bytes_received M; server bytes_sent M,
 *   bytes_acked M, bytes_received N. Each FIN counts one more: the server in CLOSE-WAIT shows
 *   bytes_received N+1 (and Recv-Q 1); a client that only shut down writing shows bytes_acked N+2. A
 *   close()d socket (orphaned FIN-WAIT-2, TIME-WAIT) has no tcp_info for ss at all. bytes_sent
 *   includes retransmissions (bytes_sent = payload + bytes_retrans).
 * - The FIN is ACKed after the delayed-ACK timer (the closer sits in FIN-WAIT-1 for up to ~40 ms).
 * - A ClusterIP connect: the client's socket (getpeername, ss) names the ClusterIP; only the packets
 *   carry the backend's address; the backend sees the client pod's own address and port.
 * - Pods' own IGMP/MLD reports reach every netns on the bridge: count TCP, not all IP packets.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCollecting, whyTestNodeCannotRun, type ContainerProcess, type TestNode, type TestPod } from './test-node.js';

export const PYTHON = '/usr/bin/python3';
export const NFT = '/usr/sbin/nft';
export const DNSMASQ = '/usr/sbin/dnsmasq';
export const SS = '/usr/bin/ss';
export const NET_KIT_PY = fileURLToPath(new URL('../../../test/helpers/net_kit.py', import.meta.url));

/** Why the net kit cannot run here, or undefined when it can. */
export function whyNetKitCannotRun(): string | undefined {
  const why = whyTestNodeCannotRun();
  if (why) return why;
  for (const [path, pkg] of [
    [NFT, 'nftables'],
    [DNSMASQ, 'dnsmasq-base'],
    [SS, 'iproute2'],
    [PYTHON, 'python3'],
  ] as const) {
    if (!existsSync(path)) return `${path} is missing (apt-get install ${pkg})`;
  }
  if (!existsSync(NET_KIT_PY)) return `${NET_KIT_PY} is missing`;
  return undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function netnsPathOf(pod: TestPod | string): string {
  return typeof pod === 'string' ? join('/var/run/netns', pod) : pod.netnsPath;
}

function podName(pod: TestPod | string): string {
  return typeof pod === 'string' ? pod : `${pod.spec.namespace}/${pod.spec.name}`;
}

/** A shell word for `s`. */
function quote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

// --- admin commands in a pod's netns ------------------------------------------------------------

/** Runs `argv` in the pod's netns only (the test's cgroup, the host's other namespaces); throws on failure. */
export async function inNetns(pod: TestPod | string, argv: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  return run('nsenter', [`--net=${netnsPathOf(pod)}`, '--', ...argv], `in netns of ${podName(pod)}: ${argv.join(' ')}`, opts);
}

async function run(file: string, args: string[], what: string, opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await runCollecting(file, args, opts);
  if (r.code !== 0) throw new Error(`${what} ended with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Loads an nftables ruleset (the text `nft -f` reads) into the pod's netns. */
export async function nft(pod: TestPod | string, ruleset: string): Promise<void> {
  await inNetns(pod, [NFT, '-f', '-'], { input: ruleset });
}

function sysctlPath(key: string): string {
  if (!/^net\.[\w.-]+$/.test(key) || key.includes('..')) throw new Error(`not a per-netns sysctl: ${key}`);
  return join('/proc/sys', key.replaceAll('.', '/'));
}

/** Sets a per-netns sysctl (net.*) in the pod's netns. */
export async function setSysctl(pod: TestPod | string, key: string, value: string | number): Promise<void> {
  // /proc/sys/net is the netns of whoever opens it
  await inNetns(pod, ['/bin/sh', '-c', 'echo "$1" > "$2"', 'sysctl', String(value), sysctlPath(key)]);
}

export async function getSysctl(pod: TestPod | string, key: string): Promise<string> {
  return (await inNetns(pod, ['/bin/cat', sysctlPath(key)])).trim();
}

/** Counters by group, e.g. `Tcp.RetransSegs`, `Tcp.OutSegs`, `Udp.InDatagrams`, `TcpExt.TCPTimeouts`. */
export type Snmp = Record<string, Record<string, number>>;

/** Parses the header/value line pairs of /proc/net/snmp and /proc/net/netstat. */
export function parseSnmp(text: string, into: Snmp = {}): Snmp {
  const lines = text.split('\n').filter((l) => l.includes(':'));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [group, names] = [lines[i]!.slice(0, lines[i]!.indexOf(':')), lines[i]!.slice(lines[i]!.indexOf(':') + 1).trim().split(/\s+/)];
    const values = lines[i + 1]!.slice(lines[i + 1]!.indexOf(':') + 1).trim().split(/\s+/);
    const g = (into[group] ??= {});
    names.forEach((n, j) => (g[n] = Number(values[j])));
  }
  return into;
}

/** The kernel's protocol counters of the pod's netns (/proc/net/snmp and /proc/net/netstat). */
export async function snmp(pod: TestPod | string): Promise<Snmp> {
  const out = parseSnmp(await inNetns(pod, ['/bin/cat', '/proc/net/snmp']));
  return parseSnmp(await inNetns(pod, ['/bin/cat', '/proc/net/netstat']), out);
}

export interface TcpSocket {
  /** as ss says it: ESTAB, LISTEN, CLOSE-WAIT, FIN-WAIT-2, TIME-WAIT ... */
  state: string;
  recvQ: number;
  sendQ: number;
  local: string;
  peer: string;
  localPort: number;
  peerPort: number;
  /** every `key:value` of the info line (and bare words as key ''), as text */
  info: Record<string, string>;
  /** tcpi_bytes_sent, _acked, _received; undefined when ss shows no info (time-wait and orphaned sockets) */
  bytesSent: number | undefined;
  bytesAcked: number | undefined;
  bytesReceived: number | undefined;
}

function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

/** Parses `ss -tinH state all` output. */
export function parseSs(text: string): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      const [state = '', recvQ = '0', sendQ = '0', local = '', peer = ''] = line.trim().split(/\s+/);
      out.push({ state, recvQ: Number(recvQ), sendQ: Number(sendQ), local, peer, localPort: portOf(local), peerPort: portOf(peer), info: {}, bytesSent: undefined, bytesAcked: undefined, bytesReceived: undefined });
      continue;
    }
    const s = out[out.length - 1];
    if (!s) continue;
    for (const token of line.trim().split(/\s+/)) {
      const colon = token.indexOf(':');
      if (colon > 0) s.info[token.slice(0, colon)] ??= token.slice(colon + 1);
      else s.info[''] = s.info[''] ? `${s.info['']} ${token}` : token;
    }
    const n = (k: string): number | undefined => (s.info[k] === undefined ? undefined : Number(s.info[k]));
    // a socket that has sent nothing has no bytes_sent/bytes_acked field at all
    const hasInfo = s.info.rto !== undefined || s.info.mss !== undefined;
    s.bytesSent = n('bytes_sent') ?? (hasInfo ? 0 : undefined);
    s.bytesAcked = n('bytes_acked') ?? (hasInfo ? 0 : undefined);
    s.bytesReceived = n('bytes_received') ?? (hasInfo ? 0 : undefined);
  }
  return out;
}

/** The pod's TCP sockets in every state, with their tcp_info as ss shows it; filtered on ports. */
export async function tcpSockets(pod: TestPod | string, filter: { localPort?: number; peerPort?: number; state?: string } = {}): Promise<TcpSocket[]> {
  const all = parseSs(await inNetns(pod, [SS, '-tinH', 'state', 'all']));
  return all.filter(
    (s) =>
      (filter.localPort === undefined || s.localPort === filter.localPort) &&
      (filter.peerPort === undefined || s.peerPort === filter.peerPort) &&
      (filter.state === undefined || s.state === filter.state),
  );
}

async function listening(pod: TestPod, proto: 'tcp' | 'udp', ip: string, port: number): Promise<boolean> {
  const out = await inNetns(pod, [SS, proto === 'tcp' ? '-Hltn' : '-Hlun']);
  return out.split('\n').some((l) => l.trim().split(/\s+/)[3] === `${ip}:${port}`);
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// --- nftables fixtures --------------------------------------------------------------------------

/** Something a fixture added that a test can take away again. */
export interface Removable {
  remove(): Promise<void>;
}

/** A pod whose address silently drops every inbound packet: a connect to it times out. */
export async function blackHole(node: TestNode, opts: { name?: string; namespace?: string } = {}): Promise<TestPod> {
  const pod = await node.addPod({ namespace: opts.namespace ?? 'net-kit', name: opts.name ?? 'black-hole' });
  await nft(pod, 'table inet periscope_black_hole {\n  chain input { type filter hook input priority 0; policy drop; }\n}\n');
  return pod;
}

export interface RandomLoss extends Removable {
  /** packets the loss rules dropped so far, by direction (a GSO super-packet of many segments counts once) */
  dropped(): Promise<{ input: number; output: number }>;
}

let lossSerial = 0;

/**
 * Drops `percent` % of the pod's IPv4 packets at random, as a lossy wire would (ARP is left alone), on
 * input, output or both (default). Input: the netdev ingress hook of the pod's eth0, in its netns: the
 * packet never reaches the pod's stack, its sender retransmits. Output: the netdev ingress hook of
 * the pod's host-side veth (a table `periscope_e2e_<hostVeth>_loss<n>` in the host netns, bound to
 * that device only): the pod's stack has sent the packet and retransmits it (RetransSegs in the pod's
 * netns). A drop anywhere inside the sending stack (inet output, even netdev egress) would not do:
 * the sender's TCP sees the error at once and sends the segment again as if for the first time
 * (bytes_sent grows, RetransSegs does not).
 */
export async function randomLoss(pod: TestPod, percent: number, opts: { direction?: 'input' | 'output' | 'both' } = {}): Promise<RandomLoss> {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) throw new Error(`loss percent must be an integer 0-100, not ${percent}`);
  const direction = opts.direction ?? 'both';
  const n = ++lossSerial;
  const rule = `meta protocol ip numgen random mod 100 < ${percent} counter drop;`;
  const table = (name: string, chain: string, device: string): string =>
    `table netdev ${name} {\n  chain ${chain} { type filter hook ingress device "${device}" priority 0; policy accept; ${rule} }\n}\n`;
  // where each table lives: in the pod's netns, or in the host's (undefined)
  const tables: { name: string; netns: TestPod | undefined }[] = [];
  const nftIn = (where: TestPod | undefined, argv: string[], input?: string): Promise<string> =>
    where ? inNetns(where, [NFT, ...argv], { input }) : run(NFT, argv, `nft ${argv.join(' ')}`, { input });
  if (direction !== 'output') {
    const name = `periscope_loss${n}_in`;
    await nftIn(pod, ['-f', '-'], table(name, 'input', 'eth0'));
    tables.push({ name, netns: pod });
  }
  if (direction !== 'input') {
    const name = `periscope_e2e_${pod.hostVeth}_loss${n}`;
    await nftIn(undefined, ['-f', '-'], table(name, 'output', pod.hostVeth));
    tables.push({ name, netns: undefined });
  }
  return {
    dropped: async () => {
      const out = { input: 0, output: 0 };
      for (const t of tables) {
        const listed = JSON.parse(await nftIn(t.netns, ['-j', 'list', 'table', 'netdev', t.name])) as { nftables?: { rule?: { chain?: string; expr?: unknown[] } }[] };
        for (const item of listed.nftables ?? []) {
          const r = item.rule;
          if (!r || (r.chain !== 'input' && r.chain !== 'output')) continue;
          for (const e of r.expr ?? []) {
            const c = (e as { counter?: { packets?: number } }).counter;
            if (c?.packets !== undefined) out[r.chain] += c.packets;
          }
        }
      }
      return out;
    },
    remove: async () => {
      for (const t of tables.splice(0)) await nftIn(t.netns, ['delete', 'table', 'netdev', t.name]);
    },
  };
}

export interface ClusterIpSpec {
  clusterIp: string;
  port: number;
  backendIp: string;
  backendPort: number;
  /** default ['tcp'] */
  protocols?: ('tcp' | 'udp')[];
  /** routed on-link over the pod's eth0 so connect() finds a route; default 10.96.0.0/12 */
  serviceCidr?: string;
}

/**
 * A kube-proxy style Service in the client pod's netns: nat output DNAT of clusterIp:port to the
 * backend (remove() deletes the DNAT and leaves the route). A local connect() looks up a route before any netfilter hook, so without one for the
 * service CIDR it fails with ENETUNREACH (the pods have no default route); the on-link route over
 * eth0 is enough, as the DNAT re-routes the packet to the backend before it leaves.
 */
export async function clusterIp(client: TestPod, spec: ClusterIpSpec): Promise<Removable> {
  const cidr = spec.serviceCidr ?? '10.96.0.0/12';
  const table = `periscope_svc_${spec.clusterIp.replaceAll('.', '_')}_${spec.port}`;
  const rules = (spec.protocols ?? ['tcp']).map((p) => `    ip daddr ${spec.clusterIp} ${p} dport ${spec.port} counter dnat to ${spec.backendIp}:${spec.backendPort}\n`).join('');
  await inNetns(client, ['ip', 'route', 'replace', cidr, 'dev', 'eth0']);
  await nft(client, `table ip ${table} {\n  chain output {\n    type nat hook output priority -100; policy accept;\n${rules}  }\n}\n`);
  return { remove: () => inNetns(client, [NFT, 'delete', 'table', 'ip', table]).then(() => undefined) };
}

// --- workloads ----------------------------------------------------------------------------------

/** One line of net_kit.py's output. */
export interface NetEvent {
  event: string;
  [field: string]: unknown;
}

async function processRunning(pid: number): Promise<boolean> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** A net_kit.py program running in a pod (its own container cgroup). */
export class NetApp {
  readonly pod: TestPod;
  readonly proc: ContainerProcess;

  constructor(pod: TestPod, proc: ContainerProcess) {
    this.pod = pod;
    this.proc = proc;
  }

  /** Everything it has said so far. */
  async events(): Promise<NetEvent[]> {
    const { stdout } = await this.proc.output();
    return stdout
      .split('\n')
      .filter((l) => l.startsWith('{') && l.endsWith('}'))
      .map((l) => JSON.parse(l) as NetEvent);
  }

  /** The `nth` (from 1) event named `event`; throws if it exits first, or says 'error' instead. */
  async waitFor(event: string, opts: { nth?: number; timeoutMs?: number } = {}): Promise<NetEvent> {
    const end = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      const alive = await processRunning(this.proc.hostPid);
      const events = await this.events();
      const found = events.filter((e) => e.event === event)[(opts.nth ?? 1) - 1];
      if (found) return found;
      const failed = event !== 'error' ? events.find((e) => e.event === 'error') : undefined;
      if (failed || !alive || Date.now() > end) {
        const { stderr } = await this.proc.output();
        const why = failed ? `it failed: ${JSON.stringify(failed)}` : !alive ? 'it exited' : 'timed out';
        throw new Error(`${this.proc.containerName} in ${podName(this.pod)} did not say "${event}": ${why}${stderr ? `; stderr: ${stderr.trim()}` : ''}`);
      }
      await sleep(20);
    }
  }

  /** Sends SIGUSR1: "end the connection now" (see net_kit.py's --on-signal). */
  signal(): void {
    process.kill(this.proc.hostPid, 'SIGUSR1');
  }

  /** Exit code, once it has exited. */
  exited(): Promise<number | null> {
    return this.proc.wait();
  }

  kill(): Promise<void> {
    return this.proc.kill();
  }
}

async function startApp(pod: TestPod, containerName: string, args: (string | number)[]): Promise<NetApp> {
  const script = `exec ${[PYTHON, '-u', NET_KIT_PY, ...args.map(String)].map(quote).join(' ')}`;
  return new NetApp(pod, await pod.runProcess(containerName, script));
}

export interface ExactServerSpec {
  port: number;
  /** bytes to read from each connection, exactly */
  read: number;
  /** bytes to write back after reading, exactly */
  write: number;
  /** 'signal' (default): hold the one connection until signal(); 'eof': close after the peer does */
  hold?: 'signal' | 'eof';
  /** signal() closes (default), or shuts down writing, waits for the peer's EOF and closes on a second signal() */
  onSignal?: 'close' | 'shutdown';
  /** connections to serve (with hold 'eof'); 0 is forever; default 1 */
  connections?: number;
  /** address to bind; default the pod's */
  bind?: string;
}

/** Starts the exact-bytes TCP server; returns once it listens. Events: listening, accepted, exchanged, (shutdown, eof), closed. */
export async function startExactServer(pod: TestPod, spec: ExactServerSpec): Promise<NetApp> {
  const app = await startApp(pod, 'tcp-server', [
    'server', '--bind', spec.bind ?? pod.ip, '--port', spec.port, '--read', spec.read, '--write', spec.write,
    '--hold', spec.hold ?? 'signal', '--connections', spec.connections ?? 1, '--on-signal', spec.onSignal ?? 'close',
  ]);
  await app.waitFor('listening');
  return app;
}

export interface ExactClientSpec {
  ip: string;
  port: number;
  send: number;
  read: number;
  onSignal?: 'close' | 'shutdown';
}

/** Starts the exact-bytes TCP client; returns once it is connected. Events: connected, exchanged, (shutdown, eof), closed. */
export async function startExactClient(pod: TestPod, spec: ExactClientSpec): Promise<NetApp> {
  const app = await startApp(pod, 'tcp-client', ['client', '--connect', spec.ip, '--port', spec.port, '--send', spec.send, '--read', spec.read, '--on-signal', spec.onSignal ?? 'close']);
  await app.waitFor('connected');
  return app;
}

export interface Exchange {
  server: NetApp;
  client: NetApp;
  /** the server's "exchanged": read, wrote, local, peer, cookie (SO_COOKIE of its socket) */
  serverDone: NetEvent;
  /** the client's "exchanged": sent, read, local, peer, cookie */
  clientDone: NetEvent;
  /** tells both to close (client first unless 'server') and waits until both have exited with 0 */
  close(first?: 'client' | 'server'): Promise<void>;
}

/**
 * A TCP connection from clientPod to serverPod:port (or to `connectTo`, e.g. a ClusterIP) that moves
 * exactly `request` bytes up and `response` down; returns once both applications have read all of
 * theirs, with the connection still open.
 */
export async function exactExchange(
  serverPod: TestPod,
  clientPod: TestPod,
  spec: { port: number; request: number; response: number; connectTo?: { ip: string; port: number }; onSignal?: 'close' | 'shutdown' },
): Promise<Exchange> {
  const server = await startExactServer(serverPod, { port: spec.port, read: spec.request, write: spec.response, onSignal: spec.onSignal });
  let client: NetApp | undefined;
  try {
    client = await startExactClient(clientPod, { ip: spec.connectTo?.ip ?? serverPod.ip, port: spec.connectTo?.port ?? spec.port, send: spec.request, read: spec.response, onSignal: spec.onSignal });
    const timeoutMs = 10_000 + (spec.request + spec.response) / 10_000;
    const serverDone = await server.waitFor('exchanged', { timeoutMs });
    const clientDone = await client.waitFor('exchanged', { timeoutMs });
    if (serverDone.read !== spec.request || clientDone.read !== spec.response) {
      throw new Error(`short exchange: server read ${String(serverDone.read)} of ${spec.request}, client read ${String(clientDone.read)} of ${spec.response}`);
    }
    const c = client;
    // from wherever the two are: a test may have signalled one of them itself
    const close = async (first: 'client' | 'server' = 'client'): Promise<void> => {
      const order = first === 'client' ? [c, server] : [server, c];
      const said = async (app: NetApp, event: string): Promise<boolean> => (await app.events()).some((e) => e.event === event);
      if (spec.onSignal === 'shutdown') {
        for (const app of order) {
          if (await said(app, 'shutdown')) continue;
          app.signal();
          await app.waitFor('shutdown');
        }
        for (const app of order) await app.waitFor('eof');
      }
      for (const app of order) {
        if (await said(app, 'closed')) continue;
        app.signal();
        await app.waitFor('closed');
      }
      for (const app of order) {
        const code = await app.exited();
        if (code !== 0) throw new Error(`${app.proc.containerName} exited with ${code}: ${(await app.proc.output()).stderr.trim()}`);
      }
    };
    return { server, client, serverDone, clientDone, close };
  } catch (e) {
    await server.kill().catch(() => undefined);
    await client?.kill().catch(() => undefined);
    throw e;
  }
}

export interface ConnectOutcome {
  /** 'connected', or the errno name: ECONNREFUSED, ETIMEDOUT, ENETUNREACH, EHOSTUNREACH ...; 'TIMEOUT' for timeoutS */
  code: string;
  /** how long connect() took */
  ms: number;
  local?: string;
  peer?: string;
}

function lastEvent(stdout: string): NetEvent | undefined {
  const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
  const last = lines[lines.length - 1];
  return last ? (JSON.parse(last) as NetEvent) : undefined;
}

/**
 * One blocking connect() from the pod (in `container`'s cgroup, else a new one), closed at once if it
 * succeeds. Without `timeoutS` the kernel alone decides when to give up (tcp_syn_retries).
 */
export async function connectOnce(pod: TestPod, ip: string, port: number, opts: { timeoutS?: number; container?: ContainerProcess } = {}): Promise<ConnectOutcome> {
  const argv = [PYTHON, '-u', NET_KIT_PY, 'connect', '--connect', ip, '--port', String(port)];
  if (opts.timeoutS !== undefined) argv.push('--timeout', String(opts.timeoutS));
  const r = await pod.exec(argv, { container: opts.container, timeoutMs: 200_000 });
  const e = lastEvent(r.stdout);
  if (r.code !== 0 || !e) throw new Error(`connect from ${podName(pod)} to ${ip}:${port} failed to run (${r.code ?? r.signal}): ${r.stderr.trim()}`);
  return {
    code: e.event === 'connected' ? 'connected' : String(e.code),
    ms: Number(e.ms),
    ...(typeof e.local === 'string' ? { local: e.local } : {}),
    ...(typeof e.peer === 'string' ? { peer: e.peer } : {}),
  };
}

/** A connect to a port nobody listens on: the peer's kernel answers RST, connect() fails ECONNREFUSED. */
export async function connectRefused(pod: TestPod, ip: string, port: number, opts: { container?: ContainerProcess } = {}): Promise<ConnectOutcome> {
  const out = await connectOnce(pod, ip, port, opts);
  if (out.code !== 'ECONNREFUSED') throw new Error(`connect to ${ip}:${port} gave ${out.code}, not ECONNREFUSED`);
  return out;
}

/**
 * A connect to an address that never answers (a blackHole pod): with net.ipv4.tcp_syn_retries set to
 * `synRetries` (default 1) in the pod's netns, the kernel gives up after about 3 s and connect() fails
 * with its own ETIMEDOUT. (Kernels with net.ipv4.tcp_syn_linear_timeouts, 6.x, send the retries at 1 s
 * intervals: with 1 retry that is still 3 SYNs in 3 s here; older kernels send 2.)
 */
export async function connectTimesOut(pod: TestPod, ip: string, port: number, opts: { synRetries?: number; container?: ContainerProcess } = {}): Promise<ConnectOutcome> {
  await setSysctl(pod, 'net.ipv4.tcp_syn_retries', opts.synRetries ?? 1);
  const out = await connectOnce(pod, ip, port, { container: opts.container });
  if (out.code !== 'ETIMEDOUT') throw new Error(`connect to ${ip}:${port} gave ${out.code}, not ETIMEDOUT`);
  return out;
}

// --- DNS ----------------------------------------------------------------------------------------

export interface DnsServer {
  pod: TestPod;
  ip: string;
  port: number;
  proc: ContainerProcess;
  pidPath: string;
  /** dnsmasq's log, with --log-queries: one "query[A] name from ip" line per query */
  logPath: string;
  log(): Promise<string>;
  stop(): Promise<void>;
}

let dnsSerial = 0;

/**
 * dnsmasq on pod.ip:53 (UDP and TCP), answering only from its command line: `hosts` (name → one or
 * more IPv4/IPv6 addresses, as --host-record), `txt` (name → text); unknown names below
 * `localDomains` (default ['test']) are NXDOMAIN, others REFUSED. Returns once both sockets listen.
 */
export async function startDnsmasq(
  pod: TestPod,
  opts: { hosts?: Record<string, string | string[]>; txt?: Record<string, string>; localDomains?: string[]; ttl?: number; port?: number } = {},
): Promise<DnsServer> {
  const port = opts.port ?? 53;
  const base = join(pod.node.stateDir, `dnsmasq-${++dnsSerial}`);
  const pidPath = `${base}.pid`;
  const logPath = `${base}.log`;
  const args = [
    DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll',
    `--port=${port}`, `--listen-address=${pod.ip}`, '--bind-interfaces', '--user=root', '--group=root',
    `--pid-file=${pidPath}`, `--log-facility=${logPath}`, '--log-queries', `--local-ttl=${opts.ttl ?? 30}`,
  ];
  for (const d of opts.localDomains ?? ['test']) args.push(`--local=/${d}/`);
  for (const [name, addrs] of Object.entries(opts.hosts ?? {})) args.push(`--host-record=${[name, ...(Array.isArray(addrs) ? addrs : [addrs])].join(',')}`);
  // on the command line a comma starts the record's next string; quotes would be taken literally
  for (const [name, text] of Object.entries(opts.txt ?? {})) args.push(`--txt-record=${name},${text}`);
  const proc = await pod.runProcess('dnsmasq', `exec ${args.map(quote).join(' ')}`);
  try {
    await until(`dnsmasq in ${podName(pod)} to listen on ${pod.ip}:${port}`, 5_000, async () => {
      if (!(await processRunning(proc.hostPid))) throw new Error(`dnsmasq exited: ${(await proc.output()).stderr.trim()}`);
      return (await listening(pod, 'udp', pod.ip, port)) && (await listening(pod, 'tcp', pod.ip, port));
    });
  } catch (e) {
    await proc.kill().catch(() => undefined);
    throw e;
  }
  return { pod, ip: pod.ip, port, proc, pidPath, logPath, log: () => readFile(logPath, 'utf8').catch(() => ''), stop: () => proc.kill() };
}

export interface DnsAnswer {
  name: string;
  type: string;
  ttl: number;
  /** address, text, name or hex, by type */
  data: string;
}

export interface DnsResult {
  event: 'answer' | 'timeout' | 'error';
  name: string;
  type: string;
  id: number;
  round: number;
  transport: 'udp' | 'tcp';
  /** local ip:port the query went from */
  local?: string;
  rcode?: number;
  rcodeName?: string;
  aa?: boolean;
  tc?: boolean;
  answers?: DnsAnswer[];
  /** errno name for 'error' */
  code?: string;
  ms: number;
}

/**
 * Sends `queries` ('name:TYPE', e.g. 'api.example.test:A') to the server, `count` rounds, one query at
 * a time, each from a new socket; from the pod (in `container`'s cgroup, else a new one).
 */
export async function dnsQuery(
  pod: TestPod,
  server: string | { ip: string; port: number },
  queries: string[],
  opts: { tcp?: boolean; timeoutS?: number; count?: number; intervalS?: number; container?: ContainerProcess } = {},
): Promise<DnsResult[]> {
  const ip = typeof server === 'string' ? server : server.ip;
  const port = typeof server === 'string' ? 53 : server.port;
  const count = opts.count ?? 1;
  const timeoutS = opts.timeoutS ?? 2;
  const argv = [PYTHON, '-u', NET_KIT_PY, 'dns', '--server', ip, '--port', String(port), '--timeout', String(timeoutS), '--count', String(count), '--interval', String(opts.intervalS ?? 0)];
  if (opts.tcp) argv.push('--tcp');
  argv.push(...queries);
  const budget = 20_000 + count * queries.length * ((timeoutS + (opts.intervalS ?? 0)) * 1000 + 100);
  const r = await pod.exec(argv, { container: opts.container, timeoutMs: budget });
  if (r.code !== 0) throw new Error(`dns client in ${podName(pod)} ended with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as DnsResult);
}

// --- the outside world --------------------------------------------------------------------------

export interface OutsideWorld {
  pod: TestPod;
  hostname: string;
  /** the external address (also on the pod's eth0) */
  address: string;
  port: number;
  server: NetApp;
  /** adds the on-link route to `address` in a client pod (it has no default route) */
  routeFrom(pod: TestPod): Promise<void>;
}

/**
 * A host outside the cluster: a pod (namespace outside-world) that also owns `address` and serves
 * TCP on address:port, reading `request` bytes and writing `response` per connection, closing after
 * its peer does; serves any number of connections.
 */
export async function outsideWorld(
  node: TestNode,
  opts: { hostname?: string; address?: string; port?: number; request?: number; response?: number } = {},
): Promise<OutsideWorld> {
  const address = opts.address ?? '203.0.113.10';
  const port = opts.port ?? 443;
  const pod = await node.addPod({ namespace: 'outside-world', name: 'external-host' });
  await inNetns(pod, ['ip', 'addr', 'add', `${address}/32`, 'dev', 'eth0']);
  const server = await startExactServer(pod, { port, read: opts.request ?? 64, write: opts.response ?? 512, hold: 'eof', connections: 0, bind: address });
  return {
    pod,
    hostname: opts.hostname ?? 'api.example.test',
    address,
    port,
    server,
    routeFrom: (client) => inNetns(client, ['ip', 'route', 'replace', `${address}/32`, 'dev', 'eth0']).then(() => undefined),
  };
}
