/**
 * Tests of the network fixtures (net-kit.ts), with the kernel's own facts only — what the
 * applications read, `ss -ti`, /proc/net/snmp, nft rule counters, dnsmasq's log — never the collector
 * the fixtures are made for. Every packet goes between network namespaces of a test node.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { TestNode } from './test-node.js';
import {
  blackHole,
  clusterIp,
  connectOnce,
  connectRefused,
  connectTimesOut,
  dnsQuery,
  exactExchange,
  getSysctl,
  outsideWorld,
  parseSnmp,
  parseSs,
  randomLoss,
  setSysctl,
  snmp,
  startDnsmasq,
  startExactClient,
  tcpSockets,
  whyNetKitCannotRun,
  type Snmp,
} from './net-kit.js';

const execFileP = promisify(execFile);

/** True when the kit can run. Skips otherwise — except under CI=true, where it fails. */
function canRun(t: TestContext): boolean {
  const why = whyNetKitCannotRun();
  if (!why) return true;
  if (process.env.CI === 'true') assert.fail(`the net kit cannot run under CI: ${why}`);
  t.skip(`needs the net kit: ${why}`);
  return false;
}

/** Fails a test that hangs instead of letting it hold the run. */
const LIMIT = { timeout: 30_000 };

const delta = (before: Snmp, after: Snmp, group: string, name: string): number => (after[group]?.[name] ?? NaN) - (before[group]?.[name] ?? NaN);

async function withNode(fn: (node: TestNode) => Promise<void>): Promise<void> {
  const node = await TestNode.create();
  try {
    await fn(node);
  } finally {
    await node.destroy();
  }
}

test('parsers: /proc/net/snmp pairs and ss -tin output', () => {
  const s = parseSnmp('Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm RetransSegs OutSegs\nTcp: 1 7 42\n');
  assert.deepEqual(s, { Ip: { Forwarding: 2, DefaultTTL: 64 }, Tcp: { RtoAlgorithm: 1, RetransSegs: 7, OutSegs: 42 } });
  const socks = parseSs(
    [
      'ESTAB 0      0      10.244.1.2:40736 10.244.1.3:8080',
      '\t cubic wscale:10,10 rto:204 rtt:0.081/0.046 mss:1448 bytes_sent:1000 bytes_acked:1001 bytes_received:5000 segs_out:4',
      'LISTEN 0 128 10.244.1.3:8080 0.0.0.0:*',
      '\t cubic cwnd:10',
      'TIME-WAIT 0 0 10.244.1.2:40737 10.244.1.3:8080',
      '\t',
    ].join('\n'),
  );
  assert.equal(socks.length, 3);
  assert.deepEqual([socks[0]!.state, socks[0]!.localPort, socks[0]!.peerPort, socks[0]!.bytesSent, socks[0]!.bytesAcked, socks[0]!.bytesReceived], ['ESTAB', 40736, 8080, 1000, 1001, 5000]);
  assert.equal(socks[0]!.info.wscale, '10,10');
  assert.equal(socks[1]!.bytesAcked, undefined);
  assert.equal(socks[2]!.bytesReceived, undefined);
});

test('an exact exchange moves exactly N bytes up and M down, holds the connection open, and ss shows the counts', LIMIT, async (t) => {
  if (!canRun(t)) return;
  await withNode(async (node) => {
    const srv = await node.addPod({ namespace: 'shop', name: 'api' });
    const cli = await node.addPod({ namespace: 'shop', name: 'web' });
    const N = 12_345;
    const M = 678_901;
    const x = await exactExchange(srv, cli, { port: 8080, request: N, response: M });
    assert.equal(x.serverDone.read, N);
    assert.equal(x.serverDone.wrote, M);
    assert.equal(x.clientDone.sent, N);
    assert.equal(x.clientDone.read, M);
    assert.equal(x.clientDone.peer, `${srv.ip}:8080`);
    assert.equal(x.serverDone.peer, x.clientDone.local, 'both ends name the same connection');
    assert.equal(typeof x.clientDone.cookie, 'number');
    // the applications run in their own container cgroups of their pods
    assert.ok(x.client.proc.cgroupPath.startsWith(cli.cgroupPath));
    assert.ok(x.server.proc.cgroupPath.startsWith(srv.cgroupPath));

    // open: the active opener's bytes_acked counts its SYN, the passive one's does not
    const [c] = await tcpSockets(cli, { peerPort: 8080 });
    const [s] = await tcpSockets(srv, { localPort: 8080, state: 'ESTAB' });
    assert.ok(c && s, 'both sockets are there');
    assert.equal(c.state, 'ESTAB');
    assert.deepEqual([c.bytesSent, c.bytesAcked, c.bytesReceived], [N, N + 1, M], 'client: sent N, acked N+1 (the SYN), received M');
    assert.deepEqual([s.bytesSent, s.bytesAcked, s.bytesReceived], [M, M, N], 'server: sent M, acked M, received N');

    // the client closes: its socket becomes an orphan in FIN-WAIT-2 (ss has no tcp_info for it) and
    // the server's receive count takes in the FIN
    x.client.signal();
    await x.client.waitFor('closed');
    const cs = await eventuallySocket(() => tcpSockets(srv, { localPort: 8080, state: 'CLOSE-WAIT' }));
    assert.deepEqual([cs.bytesSent, cs.bytesAcked, cs.bytesReceived], [M, M, N + 1], 'server in CLOSE-WAIT: received N+1 (the FIN)');
    assert.equal(cs.recvQ, 1, 'the FIN sits in the receive queue as one unread byte');
    // the server ACKs the FIN after a delayed-ACK timer (the kernel expects it to close soon): FIN-WAIT-1 until then
    const fw = await eventuallySocket(() => tcpSockets(cli, { peerPort: 8080, state: 'FIN-WAIT-2' }));
    assert.equal(fw.bytesAcked, undefined, 'no tcp_info for a closed (orphaned) socket');
    await x.close('server'); // the client is already gone
    const tw = await eventuallySocket(() => tcpSockets(cli, { peerPort: 8080, state: 'TIME-WAIT' }));
    assert.equal(tw.bytesAcked, undefined, 'the client that closed first waits in TIME-WAIT, without tcp_info');
    assert.equal((await tcpSockets(cli, { peerPort: 8080 })).length, 1);
    assert.deepEqual(await tcpSockets(srv, { localPort: 8080, state: 'ESTAB' }), []);
  });
});

/** Waits (5 s at most) until the pod's sockets on a local port retransmit nothing more: each listening or in TIME-WAIT. */
async function quiet(pod: Parameters<typeof tcpSockets>[0], port: number): Promise<void> {
  const end = Date.now() + 5_000;
  for (;;) {
    const busy = (await tcpSockets(pod, { localPort: port })).filter((s) => s.state !== 'LISTEN' && s.state !== 'TIME-WAIT');
    if (busy.length === 0) return;
    if (Date.now() > end) assert.fail(`sockets on port ${port} still closing: ${busy.map((s) => s.state).join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function eventuallySocket(fn: () => Promise<Awaited<ReturnType<typeof tcpSockets>>>): Promise<Awaited<ReturnType<typeof tcpSockets>>[number]> {
  const end = Date.now() + 5_000;
  for (;;) {
    const [s] = await fn();
    if (s) return s;
    if (Date.now() > end) assert.fail('the socket did not show up');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a half-close shows each FIN in the counters of both ends while the sockets are still open', LIMIT, async (t) => {
  if (!canRun(t)) return;
  await withNode(async (node) => {
    const srv = await node.addPod({ namespace: 'shop', name: 'api' });
    const cli = await node.addPod({ namespace: 'shop', name: 'web' });
    const N = 1000;
    const M = 5000;
    const x = await exactExchange(srv, cli, { port: 8080, request: N, response: M, onSignal: 'shutdown' });
    x.client.signal(); // shutdown(SHUT_WR): the client's FIN
    await x.client.waitFor('shutdown');
    const c1 = await eventuallySocket(() => tcpSockets(cli, { peerPort: 8080, state: 'FIN-WAIT-2' }));
    const s1 = await eventuallySocket(() => tcpSockets(srv, { localPort: 8080, state: 'CLOSE-WAIT' }));
    assert.deepEqual([c1.bytesSent, c1.bytesAcked, c1.bytesReceived], [N, N + 2, M], 'client FIN-WAIT-2: acked N+2 (SYN and FIN)');
    assert.deepEqual([s1.bytesSent, s1.bytesAcked, s1.bytesReceived], [M, M, N + 1], 'server CLOSE-WAIT: received N+1');
    x.server.signal(); // the server's FIN: the client's socket goes to TIME-WAIT, the server's to LAST-ACK, then CLOSED
    await x.server.waitFor('eof');
    await x.client.waitFor('eof');
    const s2 = await tcpSockets(srv, { localPort: 8080 });
    assert.ok(s2.every((s) => s.state !== 'ESTAB' && s.state !== 'CLOSE-WAIT'), JSON.stringify(s2));
    await x.close();
  });
});

async function hostLossTables(): Promise<string[]> {
  const { stdout } = await execFileP('/usr/sbin/nft', ['list', 'tables', 'netdev'], { encoding: 'utf8' });
  return stdout.split('\n').filter((l) => l.includes('periscope_e2e_'));
}

test('randomLoss loses packets like a wire: the sender retransmits (RetransSegs), the bytes still arrive exactly; remove() and destroy() end it', LIMIT, async (t) => {
  if (!canRun(t)) return;
  const node = await TestNode.create();
  try {
    const srv = await node.addPod({ namespace: 'shop', name: 'api' });
    const cli = await node.addPod({ namespace: 'shop', name: 'web' });
    // the server's own packets are lost after they left it: it retransmits
    const before = await snmp(srv);
    const loss = await randomLoss(srv, 10, { direction: 'output' });
    assert.equal((await hostLossTables()).filter((l) => l.includes(srv.hostVeth)).length, 1, 'bound to the host side of its veth');
    const M = 2_000_000;
    const x = await exactExchange(srv, cli, { port: 8080, request: 100, response: M });
    assert.equal(x.clientDone.read, M);
    const dropped = await loss.dropped();
    const after = await snmp(srv);
    assert.ok(dropped.output > 0, `the rule dropped ${dropped.output} packets`);
    assert.equal(dropped.input, 0, 'output only');
    const retrans = delta(before, after, 'Tcp', 'RetransSegs');
    assert.ok(retrans > 0, `RetransSegs grew by ${retrans}`);
    const [s] = await tcpSockets(srv, { localPort: 8080, state: 'ESTAB' });
    assert.ok(s, 'the server socket is open');
    assert.equal(s.bytesAcked, M, 'every byte was acked in the end');
    assert.ok(Number(s.info.bytes_retrans) > 0 && s.bytesSent === M + Number(s.info.bytes_retrans), `ss: bytes_sent ${s.bytesSent} = ${M} + bytes_retrans ${s.info.bytes_retrans}`);
    await x.close();
    await loss.remove();
    assert.deepEqual(await hostLossTables(), [], 'remove() took the host table away');
    // the lossy connection's close may still be retransmitting a FIN the rule dropped: count from when
    // it is done (listening or in TIME-WAIT only), or its retransmission counts as the next one's
    await quiet(srv, 8080);
    const b2 = await snmp(srv);
    const y = await exactExchange(srv, cli, { port: 8081, request: 100, response: 200_000 });
    await y.close();
    assert.equal(delta(b2, await snmp(srv), 'Tcp', 'RetransSegs'), 0, 'no loss, no retransmissions after remove()');

    // the client loses what comes in: the server retransmits again
    const b3 = await snmp(srv);
    const inLoss = await randomLoss(cli, 10, { direction: 'input' });
    const z = await exactExchange(srv, cli, { port: 8082, request: 100, response: M });
    assert.ok((await inLoss.dropped()).input > 0);
    assert.ok(delta(b3, await snmp(srv), 'Tcp', 'RetransSegs') > 0, 'the server retransmitted what the client lost');
    await z.close();
    await randomLoss(cli, 5); // left for destroy() to take away
    assert.equal((await hostLossTables()).length, 1);
  } finally {
    await node.destroy();
  }
  assert.deepEqual(await hostLossTables(), [], 'destroy() took the host table away');
});

test('connect to a closed port is refused at once; to a black hole it ends in the kernel ETIMEDOUT (tcp_syn_retries=1)', LIMIT, async (t) => {
  if (!canRun(t)) return;
  await withNode(async (node) => {
    const srv = await node.addPod({ namespace: 'shop', name: 'api' });
    const cli = await node.addPod({ namespace: 'shop', name: 'web' });
    const hole = await blackHole(node);
    const hostRetries = await readFile('/proc/sys/net/ipv4/tcp_syn_retries', 'utf8');

    const [c0, s0, h0] = [await snmp(cli), await snmp(srv), await snmp(hole)];
    const refused = await connectRefused(cli, srv.ip, 9);
    assert.ok(refused.ms < 1000, `refused in ${refused.ms} ms`);
    const timedOut = await connectTimesOut(cli, hole.ip, 80);
    assert.equal(await getSysctl(cli, 'net.ipv4.tcp_syn_retries'), '1');
    assert.equal(await readFile('/proc/sys/net/ipv4/tcp_syn_retries', 'utf8'), hostRetries, "the host's own value is untouched");
    // SYN at 0 s, one retry at 1 s, given up at 3 s
    assert.ok(timedOut.ms >= 2_500 && timedOut.ms < 6_000, `timed out after ${timedOut.ms} ms`);
    const [c1, s1, h1] = [await snmp(cli), await snmp(srv), await snmp(hole)];
    assert.equal(delta(c0, c1, 'Tcp', 'ActiveOpens'), 2);
    assert.equal(delta(c0, c1, 'Tcp', 'AttemptFails'), 2, 'both attempts failed');
    // how many SYNs go out in those 3 s depends on the kernel: 6.x (tcp_syn_linear_timeouts) retries at 1 s and 2 s
    const synRetrans = delta(c0, c1, 'Tcp', 'RetransSegs');
    assert.ok(synRetrans >= 1, `${synRetrans} SYNs retransmitted`);
    assert.equal(delta(s0, s1, 'Tcp', 'OutRsts'), 1, 'the closed port answered with a RST');
    // (>=: the pods' own IGMP reports also reach every netns on the bridge)
    assert.ok(delta(h0, h1, 'Ip', 'InReceives') >= 1 + synRetrans, 'every SYN reached the black hole');
    assert.equal(delta(h0, h1, 'Tcp', 'InSegs'), 0, 'and TCP never saw them');

    // the application's own timeout, shorter than the kernel's
    await setSysctl(cli, 'net.ipv4.tcp_syn_retries', 6);
    const appTimeout = await connectOnce(cli, hole.ip, 80, { timeoutS: 0.3 });
    assert.equal(appTimeout.code, 'TIMEOUT');
  });
});

test('clusterIp DNATs a virtual service address to the backend pod; without its route connect() is unreachable', LIMIT, async (t) => {
  if (!canRun(t)) return;
  await withNode(async (node) => {
    const backend = await node.addPod({ namespace: 'shop', name: 'api' });
    const cli = await node.addPod({ namespace: 'shop', name: 'web' });
    const unrouted = await connectOnce(cli, '10.96.0.50', 80);
    assert.equal(unrouted.code, 'ENETUNREACH', 'no route: connect() fails before any packet or netfilter hook');

    const svc = await clusterIp(cli, { clusterIp: '10.96.0.50', port: 80, backendIp: backend.ip, backendPort: 8080 });
    const x = await exactExchange(backend, cli, { port: 8080, request: 300, response: 4000, connectTo: { ip: '10.96.0.50', port: 80 } });
    assert.equal(x.clientDone.peer, '10.96.0.50:80', 'the client socket is connected to the ClusterIP');
    assert.equal(x.serverDone.peer, x.clientDone.local, 'the backend sees the client pod itself');
    assert.equal(x.serverDone.local, `${backend.ip}:8080`);
    const [c] = await tcpSockets(cli, { peerPort: 80 });
    assert.equal(c?.peer, '10.96.0.50:80', 'ss in the client netns shows the ClusterIP too');
    assert.deepEqual([c.bytesSent, c.bytesReceived], [300, 4000]);
    await x.close();

    await svc.remove();
    const gone = await connectOnce(cli, '10.96.0.50', 80, { timeoutS: 0.5 });
    assert.equal(gone.code, 'TIMEOUT', 'without the DNAT nobody owns the ClusterIP (ARP goes unanswered on the bridge)');
  });
});

test('dnsmasq answers A, TXT, NODATA AAAA and NXDOMAIN over UDP and TCP; a silent server times out, a closed port is refused', LIMIT, async (t) => {
  if (!canRun(t)) return;
  await withNode(async (node) => {
    const dnsPod = await node.addPod({ namespace: 'kube-system', name: 'coredns' });
    const cli = await node.addPod({ namespace: 'shop', name: 'web' });
    const empty = await node.addPod({ namespace: 'shop', name: 'no-dns' });
    const hole = await blackHole(node);
    const world = await outsideWorld(node);
    const dns = await startDnsmasq(dnsPod, { hosts: { [world.hostname]: world.address }, txt: { [world.hostname]: 'hello from net-kit' } });

    const [c0, d0] = [await snmp(cli), await snmp(dnsPod)];
    const results = await dnsQuery(cli, dns, [`${world.hostname}:A`, `${world.hostname}:AAAA`, `${world.hostname}:TXT`, 'missing.example.test:A'], { count: 3 });
    assert.equal(results.length, 12);
    const by = (name: string, type: string): typeof results => results.filter((r) => r.name === name && r.type === type);
    for (const r of by(world.hostname, 'A')) {
      assert.equal(r.event, 'answer');
      assert.equal(r.rcodeName, 'NOERROR');
      assert.deepEqual(r.answers, [{ name: world.hostname, type: 'A', ttl: 30, data: world.address }]);
    }
    for (const r of by(world.hostname, 'AAAA')) assert.deepEqual([r.rcodeName, r.answers], ['NOERROR', []]);
    for (const r of by(world.hostname, 'TXT')) assert.equal(r.answers?.[0]?.data, 'hello from net-kit');
    for (const r of by('missing.example.test', 'A')) assert.deepEqual([r.rcodeName, r.answers], ['NXDOMAIN', []]);
    assert.equal(new Set(results.map((r) => r.local)).size, 12, 'each query from its own socket');
    const [c1, d1] = [await snmp(cli), await snmp(dnsPod)];
    assert.equal(delta(c0, c1, 'Udp', 'OutDatagrams'), 12);
    assert.equal(delta(c0, c1, 'Udp', 'InDatagrams'), 12);
    assert.equal(delta(d0, d1, 'Udp', 'InDatagrams'), 12);
    const log = await dns.log();
    assert.equal(log.match(/query\[A\] missing\.example\.test from /g)?.length, 3, log);

    const [overTcp] = await dnsQuery(cli, dns, [`${world.hostname}:A`], { tcp: true });
    assert.deepEqual([overTcp?.transport, overTcp?.rcodeName, overTcp?.answers?.[0]?.data], ['tcp', 'NOERROR', world.address]);

    const [silent] = await dnsQuery(cli, hole.ip, ['api.example.test:A'], { timeoutS: 1 });
    assert.equal(silent?.event, 'timeout');
    assert.ok(silent.ms >= 1000, `${silent.ms} ms`);
    const [refused] = await dnsQuery(cli, empty.ip, ['api.example.test:A'], { timeoutS: 1 });
    assert.deepEqual([refused?.event, refused?.code], ['error', 'ECONNREFUSED'], 'ICMP port unreachable on a connected UDP socket');

    // the outside world: resolve its name, then talk to the address the DNS server gave
    await world.routeFrom(cli);
    const addr = results[0]!.answers![0]!.data;
    const app = await startExactClient(cli, { ip: addr, port: world.port, send: 64, read: 512 });
    const done = await app.waitFor('exchanged');
    assert.deepEqual([done.sent, done.read, done.peer], [64, 512, `${world.address}:443`]);
    const served = await world.server.waitFor('exchanged');
    assert.equal(served.peer, done.local);
    assert.equal(served.local, `${world.address}:443`);
    app.signal();
    assert.equal(await app.exited(), 0);
    await world.server.waitFor('closed');
  });
});
