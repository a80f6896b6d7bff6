/**
 * End to end: the network collector in the agent, on a test node whose pods are network namespaces
 * on a bridge, with the pods, a Service and its EndpointSlice in the fake API server. Real servers
 * (dnsmasq, Python TCP servers), real packet loss (nftables), a kube-proxy style DNAT for the
 * ClusterIP. Each number is held to what the applications did or what the kernel of that network
 * namespace counted itself. Where the kernel refuses BPF iterators, the collector runs on
 * tp_btf-no-iter and an open connection's bytes are held to what that promises: none until it closes.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cluster, type Cluster } from './cluster.js';
import { type TestPod } from './test-node.js';
import { deploymentPod, endpointSlice, service } from './objects.js';
import { blackHole, clusterIp, connectRefused, connectTimesOut, dnsQuery, exactExchange, outsideWorld, randomLoss, snmp, startDnsmasq, startExactClient, whyNetKitCannotRun } from './net-kit.js';
import { eventually, needsKernel, run } from '../kernel.js';
import { BIN, sumOf, type RunningAgent } from '../agent-process.js';
import { ALT_LIVE, ALT_NO_ITER } from '../../src/collectors/network/index.js';
import { supported } from '../../src/kernel/features.js';

/** The lines of a metric that mention this value: for assertion messages. */
const lines = (text: string, name: string, value: string): string =>
  text
    .split('\n')
    .filter((l) => l.startsWith(name) && l.includes(`"${value}"`))
    .join('\n');

interface Setup extends Cluster {
  /** registers a test pod in the API as the one pod of a Deployment; returns its API name */
  register: (pod: TestPod, deployment: string) => string;
}

async function setup(t: TestContext): Promise<Setup> {
  const why = whyNetKitCannotRun();
  if (why) assert.fail(`the network fixtures cannot run: ${why}`);
  const c = await cluster(t, (nodeName, kubeconfig) => ['--kubeconfig', kubeconfig, '--node', nodeName, '--aggregation', 'pod']);
  const register = (pod: TestPod, deployment: string): string => {
    const o = deploymentPod({ namespace: pod.spec.namespace, deployment, node: c.nodeName, podUid: pod.uid, containers: {}, ips: [pod.ip] });
    c.api.create(o.deployment);
    c.api.create(o.replicaSet);
    c.api.create(o.pod);
    return o.pod.metadata.name;
  };
  return { ...c, register };
}

const metrics = async (a: RunningAgent): Promise<string> => (await fetch(`${a.url}/metrics`)).text();

/** The alternative the agent's network collector took, as its status says. */
async function networkAlternative(a: RunningAgent): Promise<string> {
  const status = (await (await fetch(`${a.url}/api/v1/status`)).json()) as { collectors: { name: string; alternative: string }[] };
  const network = status.collectors.find((c) => c.name === 'network');
  assert.ok(network, `the network collector runs: ${JSON.stringify(status.collectors)}`);
  assert.ok([ALT_LIVE, ALT_NO_ITER].includes(network.alternative), `an alternative of the network collector: ${network.alternative}`);
  assert.equal(network.alternative, supported('iter_sk_storage') ? ALT_LIVE : ALT_NO_ITER, 'the iterator used wherever the kernel has it');
  return network.alternative;
}

test('client and server pods: exact bytes on both ends while open (where the kernel has the socket-storage iterator) and after close, refused and timed-out connects, retransmits under loss as the kernel counts them', async (t) => {
  if (!needsKernel(t)) return;
  const { node, agent, register } = await setup(t);
  const server = await node.addPod({ namespace: 'shop', name: 'api' });
  const client = await node.addPod({ namespace: 'shop', name: 'web' });
  const serverName = register(server, 'api');
  const clientName = register(client, 'web');
  // a long-lived process, as a pod's pause container is: what ties its network namespace to it
  const pause = await client.runProcess('pause', 'exec sleep 600');
  const N = 2_000_017;
  const M = 123_457;

  const x = await exactExchange(server, client, { port: 8080, request: N, response: M });
  const toServer = { namespace: 'shop', pod: clientName, workload: 'web', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'api', peer: serverName, peer_port: '8080' };
  const fromClient = { namespace: 'shop', pod: serverName, workload: 'api', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'web', peer: clientName, peer_port: '' };
  const bytes = (m: string): number[] => [sumOf(m, 'periscope_tcp_bytes_sent_total', toServer), sumOf(m, 'periscope_tcp_bytes_received_total', toServer), sumOf(m, 'periscope_tcp_bytes_sent_total', fromClient), sumOf(m, 'periscope_tcp_bytes_received_total', fromClient)];
  const alternative = await networkAlternative(agent);
  t.diagnostic(`the network collector runs on ${alternative}`);
  let open: string;
  if (alternative === ALT_LIVE) {
    open = await eventually(async () => {
      const m = await metrics(agent);
      return bytes(m).join() === [N, M, M, N].join() ? m : undefined;
    }, 10_000, `N=${N} up and M=${M} down on both ends, named by pod, while the connection is open`);
  } else {
    open = await eventually(async () => {
      const m = await metrics(agent);
      return sumOf(m, 'periscope_tcp_active_connections', toServer) === 1 && sumOf(m, 'periscope_tcp_active_connections', fromClient) === 1 ? m : undefined;
    }, 10_000, 'the open connection active on both ends, named by pod');
    assert.deepEqual(bytes(open), [0, 0, 0, 0], `${alternative}: the open connection's bytes are not counted until it closes`);
  }
  assert.equal(sumOf(open, 'periscope_tcp_active_connections', toServer), 1);
  assert.equal(sumOf(open, 'periscope_tcp_active_connections', fromClient), 1);
  assert.equal(sumOf(open, 'periscope_tcp_listening_sockets', { pod: serverName, port: '8080' }), 0, 'the server stopped listening once it accepted');

  await x.close();
  const closed = await eventually(async () => {
    const m = await metrics(agent);
    return sumOf(m, 'periscope_tcp_active_connections', toServer) === 0 && sumOf(m, 'periscope_tcp_active_connections', fromClient) === 0 ? m : undefined;
  }, 5_000, 'the connection to close on both ends');
  assert.equal(sumOf(closed, 'periscope_tcp_bytes_sent_total', toServer), N, 'after close: exact still');
  assert.equal(sumOf(closed, 'periscope_tcp_bytes_received_total', toServer), M);
  assert.equal(sumOf(closed, 'periscope_tcp_bytes_sent_total', fromClient), M);
  assert.equal(sumOf(closed, 'periscope_tcp_bytes_received_total', fromClient), N);
  assert.equal(sumOf(closed, 'periscope_tcp_connections_total', { ...toServer, direction: 'outbound', result: 'success' }), 1);
  assert.equal(sumOf(closed, 'periscope_tcp_connections_total', { ...fromClient, direction: 'inbound', result: 'success' }), 1);

  // the events name both ends
  const events = (await (await fetch(`${agent.url}/api/v1/events?type=tcp_close&namespace=shop&pod=${clientName}`)).json()) as { events: Record<string, unknown>[] };
  const close = events.events.find((e) => e.peer_port === 8080);
  assert.ok(close, 'a close event of the client');
  assert.equal(close.peer, serverName);
  assert.equal(close.peer_workload, 'api');
  assert.equal(close.bytes_sent, N);
  assert.equal(close.bytes_received, M);

  // refused, and timed out against a black hole (an address of a namespace of ours that drops all)
  const refused = await connectRefused(client, server.ip, 9, { container: pause });
  assert.equal(refused.code, 'ECONNREFUSED');
  const hole = await blackHole(node);
  const timeout = await connectTimesOut(client, hole.ip, 80, { container: pause });
  assert.equal(timeout.code, 'ETIMEDOUT');
  const failed = await eventually(async () => {
    const m = await metrics(agent);
    return sumOf(m, 'periscope_tcp_connections_total', { pod: clientName, result: 'timeout' }) === 1 ? m : undefined;
  }, 5_000, 'the timed-out connect');
  assert.equal(sumOf(failed, 'periscope_tcp_connections_total', { pod: clientName, result: 'refused', peer: serverName, peer_port: '9' }), 1, lines(failed, 'periscope_tcp_connections_total', clientName));
  assert.equal(sumOf(failed, 'periscope_tcp_connections_total', { pod: clientName, result: 'timeout', peer: hole.ip, peer_port: '80' }), 1, 'an unknown address is named by itself');

  // random loss on the client's wire: its retransmits match the kernel's RetransSegs of its namespace
  const before = await snmp(client);
  const retransBefore = sumOf(await metrics(agent), 'periscope_tcp_retransmits_total', { pod: clientName });
  const loss = await randomLoss(client, 5, { direction: 'both' });
  const lossy = await exactExchange(server, client, { port: 8081, request: 4_000_000, response: 1_000_000 });
  await lossy.close();
  const lost = await loss.dropped();
  await loss.remove();
  const after = await snmp(client);
  const kernel = (after.Tcp?.RetransSegs ?? 0) - (before.Tcp?.RetransSegs ?? 0);
  assert.ok(kernel > 20, `the loss made the client retransmit (${kernel} segments)`);
  const ours = await eventually(async () => {
    const v = sumOf(await metrics(agent), 'periscope_tcp_retransmits_total', { pod: clientName }) - retransBefore;
    return Math.abs(v - kernel) <= 0.05 * kernel ? v : undefined;
  }, 5_000, `the client's retransmits within 5% of the kernel's ${kernel}`);
  t.diagnostic(`retransmits: kernel RetransSegs +${kernel}, periscope +${ours}; ${JSON.stringify(lost)} dropped by the loss rules`);
  // the namespace is named after the pod whose processes are in it: found within a cgroup walk or two
  const dropped = await eventually(async () => {
    const text = await metrics(agent);
    return sumOf(text, 'periscope_packet_drops_total', { pod: clientName }) > 0 ? text : undefined;
  }, 12_000, 'the dropped packets counted for the client pod');
  assert.ok(sumOf(dropped, 'periscope_packet_drops_total', { pod: clientName, reason: 'netfilter_drop' }) > 0, lines(dropped, 'periscope_packet_drops_total', clientName));
});

test('DNS from the packets: qtype, rcode, NXDOMAIN, latency and timeouts per pod; the service map names pods, a Service behind its DNAT, and an external host by its DNS name', async (t) => {
  if (!needsKernel(t)) return;
  const { api, node, agent, register } = await setup(t);
  const dnsPod = await node.addPod({ namespace: 'kube-system', name: 'dns' });
  const backend = await node.addPod({ namespace: 'shop', name: 'api' });
  const client = await node.addPod({ namespace: 'shop', name: 'web' });
  register(dnsPod, 'coredns');
  const backendName = register(backend, 'api');
  const clientName = register(client, 'web');
  // the client's queries come from a long-lived container, as a real pod's do
  const pause = await client.runProcess('pause', 'exec sleep 600');
  const outside = await outsideWorld(node);
  await outside.routeFrom(client);
  await startDnsmasq(dnsPod, { hosts: { [outside.hostname]: outside.address } });

  const results = await dnsQuery(client, dnsPod.ip, [`${outside.hostname}:A`, 'nothing-here.test:A', `${outside.hostname}:A`, `${outside.hostname}:TXT`], { container: pause });
  assert.deepEqual(results.map((r) => r.rcodeName ?? r.event), ['NOERROR', 'NXDOMAIN', 'NOERROR', 'NOERROR']);
  const hole = await blackHole(node);
  const silent = await dnsQuery(client, hole.ip, ['anything.test:A'], { timeoutS: 1, container: pause });
  assert.equal(silent[0]?.event, 'timeout', 'nothing answers DNS at the black hole');
  const dns = { pod: clientName, peer_kind: 'pod', peer_namespace: 'kube-system', peer_workload: 'coredns' };
  const m = await eventually(async () => {
    const text = await metrics(agent);
    return sumOf(text, 'periscope_dns_requests_total', { pod: clientName, rcode: 'TIMEOUT' }) === 1 ? text : undefined;
  }, 10_000, 'the unanswered query counted as a timeout');
  const dnsState = await (await fetch(`${agent.url}/api/v1/network/dns`)).text();
  const dnsEvents = await (await fetch(`${agent.url}/api/v1/events?type=dns`)).text();
  assert.equal(sumOf(m, 'periscope_dns_requests_total', { ...dns, qtype: 'A', rcode: 'NOERROR' }), 2, `${lines(m, 'periscope_dns_requests_total', 'NOERROR')}\n${dnsState}\n${dnsEvents}`);
  assert.equal(sumOf(m, 'periscope_dns_requests_total', { ...dns, qtype: 'A', rcode: 'NXDOMAIN' }), 1);
  assert.equal(sumOf(m, 'periscope_dns_requests_total', { ...dns, qtype: 'TXT', rcode: 'NOERROR' }), 1);
  assert.equal(sumOf(m, 'periscope_dns_latency_seconds_count', dns), 4, 'a latency for every answer');
  assert.equal(sumOf(m, 'periscope_dns_requests_total', { pod: clientName, rcode: 'TIMEOUT', peer_kind: 'external', peer: hole.ip }), 1, 'the silent server, by its address');
  const failing = (await (await fetch(`${agent.url}/api/v1/network/dns`)).json()) as { failures: { pod: string; qname: string; rcode: string }[] };
  assert.ok(failing.failures.some((f) => f.pod === clientName && f.qname === 'nothing-here.test' && f.rcode === 'NXDOMAIN'), 'the failing name per pod');

  // a Service: ClusterIP DNATed in the client's namespace to the backend, as kube-proxy does
  const vip = '10.96.0.50';
  api.create(service({ namespace: 'shop', name: 'api', clusterIPs: [vip], ports: [80] }));
  api.create(endpointSlice({ namespace: 'shop', service: 'api', addresses: [backend.ip], port: 8080, pods: { [backend.ip]: backendName } }));
  await clusterIp(client, { clusterIp: vip, port: 80, backendIp: backend.ip, backendPort: 8080 });
  const viaService = await exactExchange(backend, client, { port: 8080, request: 10_000, response: 20_000, connectTo: { ip: vip, port: 80 } });
  await viaService.close();
  const direct = await exactExchange(backend, client, { port: 8080, request: 30_000, response: 40_000 });
  await direct.close();
  const ext = await startExactClient(client, { ip: outside.address, port: outside.port, send: 64, read: 512 });
  await ext.waitFor('exchanged');
  ext.signal();
  await ext.waitFor('closed');

  type Edge = { source: { pod: string }; destination: { kind: string; name: string; workload: string; port: number | null }; backend: { kind: string; name: string } | null; direction: string; protocol: string; connections: number; bytes_sent: number; bytes_received: number };
  const edges = await eventually(async () => {
    const body = (await (await fetch(`${agent.url}/api/v1/network/edges?window=5m`)).json()) as { edges: Edge[] };
    const mine = body.edges.filter((e) => e.source.pod === clientName && e.protocol === 'tcp' && e.direction === 'outbound');
    return mine.length >= 3 ? mine : undefined;
  }, 5_000, 'three outbound edges of the client');
  const find = (kind: string, name: string): Edge | undefined => edges.find((e) => e.destination.kind === kind && e.destination.name === name);
  const svc = find('service', 'api');
  assert.ok(svc, `client → Service api: ${JSON.stringify(edges)}`);
  assert.equal(svc.destination.port, 80);
  assert.deepEqual([svc.backend?.kind, svc.backend?.name], ['pod', backendName], 'after DNAT, the pod behind the Service');
  assert.deepEqual([svc.bytes_sent, svc.bytes_received], [10_000, 20_000]);
  const pod = find('pod', backendName);
  assert.ok(pod, 'client → backend pod directly');
  assert.deepEqual([pod.bytes_sent, pod.bytes_received, pod.destination.workload], [30_000, 40_000, 'api']);
  const external = find('external', outside.hostname);
  assert.ok(external, `client → ${outside.hostname}, named by the DNS answer that gave its address`);
  assert.deepEqual([external.bytes_sent, external.bytes_received], [64, 512]);
  const text = await metrics(agent);
  assert.equal(sumOf(text, 'periscope_tcp_bytes_sent_total', { pod: clientName, peer_kind: 'service', peer: 'api', peer_port: '80' }), 10_000, 'the Service edge as metrics');
  for (const family of ['tcp_connections_total', 'tcp_rtt_seconds', 'udp_bytes_total', 'dns_requests_total', 'dns_latency_seconds', 'packet_drops_total']) {
    assert.match(text, new RegExp(`^# TYPE periscope_${family} `, 'm'));
  }
  const file = join(mkdtempSync(join(tmpdir(), 'periscope-e2e-')), 'metrics.txt');
  writeFileSync(file, text);
  const lint = await run('sh', ['-c', `promtool check metrics < ${file}`]);
  assert.equal(lint.code, 0, `promtool finds nothing to say: ${lint.stdout}${lint.stderr}`);

  // the CLI: the DNS events of the pod, from the agent
  const trace = await run(BIN, ['trace', 'dns', '--agent', agent.url, '--namespace', 'shop', '--pod', clientName, '--last', '10', '--count', '5', '--output', 'json', '--timeout', '10']);
  assert.equal(trace.code, 0, trace.stderr);
  const traced = trace.stdout.trim().split('\n').map((l) => JSON.parse(l) as { qname: string; rcode: string; peer: string });
  assert.deepEqual(traced.map((e) => e.rcode).sort(), ['NOERROR', 'NOERROR', 'NOERROR', 'NXDOMAIN', 'TIMEOUT']);
  const table = await run(BIN, ['trace', 'tcp', '--agent', agent.url, '--pod', clientName, '--last', '3', '--count', '3', '--timeout', '10']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^TIME\s+NAMESPACE\/POD/m, 'a table with its header');
  assert.ok(table.stdout.includes(outside.hostname), `the external peer by its DNS name in the table:\n${table.stdout}`);
});
