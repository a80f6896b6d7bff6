import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { ALT_LIVE, ALT_NO_ITER, NETWORK_SPEC, NetworkCollector } from './index.js';
import { alternativesHere, eventually, helper, needsKernel, scaled, TestCgroup } from '../../../test/kernel.js';
import { testContext } from '../../../test/context.js';
import { Exchange } from '../../../test/exchange.js';
import { assumeProbe, supported } from '../../kernel/features.js';
import { BpfObject, chooseAlternative } from '../../kernel/bpf-object.js';
import { type Sample } from '../contract.js';

/** The rows of a metric for one cgroup (and, if given, a peer port), summed. */
function total(rows: Sample[] | undefined, cgroup: number, match: (r: Sample) => boolean = () => true): number {
  return (rows ?? []).filter((r) => r.subject?.id === cgroup && match(r)).reduce((a, r) => a + (r.value as number), 0);
}

for (const alt of alternativesHere(NETWORK_SPEC)) {
  test(`a connection's payload bytes are exact on both ends while it is open and after it closes, each end charged to its own cgroup (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const ctx = testContext();
    const collector = new NetworkCollector(ctx, { alternative: alt });
    const server = new TestCgroup('net-server');
    const client = new TestCgroup('net-client');
    const N = 1_000_003;
    const M = 77_777;
    const procs: Exchange[] = [];
    t.after(() => {
      for (const p of procs) p.kill();
      collector.close();
      server.remove();
      client.remove();
    });
    const srv = Exchange.listen({ enter: server.enter }, '127.0.0.1', 0, N, M);
    procs.push(srv);
    const port = Number(await srv.line('ready'));
    // the fixture stops listening once it has accepted
    const listening = collector.read().get('periscope_tcp_listening_sockets') ?? [];
    assert.ok(
      listening.some((r) => r.subject?.id === server.id && r.labels?.port === String(port) && r.labels.address === '127.0.0.1'),
      `the server's listening socket (${JSON.stringify(listening.filter((r) => r.subject?.id === server.id))})`,
    );

    const cli = Exchange.connect({ enter: client.enter }, '127.0.0.1', port, N, M);
    procs.push(cli);
    await cli.line('done');
    await srv.line('done');
    const isPeer = (r: Sample): boolean => r.peer?.port === port || r.peer?.port === undefined;
    const activeNow = (m: Map<string, Sample[]>): number => total(m.get('periscope_tcp_active_connections'), client.id) + total(m.get('periscope_tcp_active_connections'), server.id);
    const bytesNow = (m: Map<string, Sample[]>): Record<string, number> => ({
      clientSent: total(m.get('periscope_tcp_bytes_sent_total'), client.id, isPeer),
      clientReceived: total(m.get('periscope_tcp_bytes_received_total'), client.id, isPeer),
      serverSent: total(m.get('periscope_tcp_bytes_sent_total'), server.id),
      serverReceived: total(m.get('periscope_tcp_bytes_received_total'), server.id),
    });
    if (alt === ALT_LIVE) {
      // open: the iterator reads the counters of the live sockets
      const live = await eventually(() => {
        const m = collector.read();
        const v: Record<string, number> = { ...bytesNow(m), active: activeNow(m) };
        return v.clientSent === N && v.serverReceived === N && v.clientReceived === M && v.serverSent === M ? v : undefined;
      }, 5_000, `exact bytes while open (client sent ${N} and got ${M})`);
      assert.equal(live.active, 2, 'one active connection on each end');
    } else {
      // open, without the iterator: counted as active on each end, its bytes not yet
      const m = await eventually(() => {
        const r = collector.read();
        return activeNow(r) === 2 ? r : undefined;
      }, 5_000, 'one active connection on each end');
      assert.equal(total(m.get('periscope_tcp_active_connections'), client.id, isPeer), 1, 'the client: one active connection to the listening port');
      assert.equal(total(m.get('periscope_tcp_active_connections'), server.id), 1, 'the server: one active connection');
      assert.deepEqual(bytesNow(m), { clientSent: 0, clientReceived: 0, serverSent: 0, serverReceived: 0 }, `${alt}: an open connection's bytes are not counted until it closes`);
      assert.equal(collector.liveConnections(), null, `${alt} has no iterator to read`);
    }
    // the client shuts down first; the server answers its FIN with its own
    await Promise.all([cli.close(), srv.close()]);
    const m = await eventually(() => {
      const r = collector.read();
      return activeNow(r) === 0 ? r : undefined;
    }, 5_000, 'both ends closed');
    assert.equal(total(m.get('periscope_tcp_bytes_sent_total'), client.id), N, 'client bytes sent after close: the FIN is not payload');
    assert.equal(total(m.get('periscope_tcp_bytes_received_total'), client.id), M);
    assert.equal(total(m.get('periscope_tcp_bytes_sent_total'), server.id), M);
    assert.equal(total(m.get('periscope_tcp_bytes_received_total'), server.id), N);
    assert.equal(total(m.get('periscope_tcp_active_connections'), client.id), 0);
    const conns = m.get('periscope_tcp_connections_total') ?? [];
    assert.equal(total(conns, client.id, (r) => r.labels?.direction === 'outbound' && r.labels.result === 'success' && r.peer?.port === port), 1, 'client: one outbound to the listening port');
    assert.equal(total(conns, server.id, (r) => r.labels?.direction === 'inbound' && r.labels.result === 'success' && r.peer?.port === undefined), 1, 'server: one inbound, no ephemeral port');
    const durations = (m.get('periscope_tcp_connection_duration_seconds') ?? []).filter((r) => r.subject?.id === client.id);
    assert.equal(durations.reduce((a, r) => a + (r.value as { count: number }).count, 0), 1, 'one duration observed');
    assert.equal(total(m.get('periscope_tcp_listening_sockets'), server.id), 0, 'the listener closed');

    collector.poll();
    const closes = ctx.events.filter((e) => e.type === 'tcp_close' && (e.cgroup === client.path || e.cgroup === server.path));
    assert.deepEqual(
      closes.map((e) => [e.cgroup === client.path ? 'client' : 'server', e.direction, e.bytes_sent, e.bytes_received]).sort(),
      [['client', 'outbound', N, M], ['server', 'inbound', M, N]],
    );
    const opens = ctx.events.filter((e) => e.type === 'tcp_open' && e.cgroup === client.path);
    assert.equal(opens.length, 1);
    assert.equal(opens[0]!.comm, 'python3');
    assert.equal(opens[0]!.peer_port, port);
    assert.ok(closes.every((e) => typeof e.local_port === 'number' && e.local_port > 0), 'close events keep the local port');
  });

  test(`a client that closes and is gone before the server's FIN comes is charged no FIN as payload (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const collector = new NetworkCollector(testContext(), { alternative: alt });
    const server = new TestCgroup('net-fin-server');
    const client = new TestCgroup('net-fin-client');
    const [N, M] = [30_011, 4_099];
    const procs: Exchange[] = [];
    t.after(() => {
      for (const p of procs) p.kill();
      collector.close();
      server.remove();
      client.remove();
    });
    const srv = Exchange.listen({ enter: server.enter }, '127.0.0.1', 0, N, M);
    procs.push(srv);
    const port = Number(await srv.line('ready'));
    const cli = Exchange.connect({ enter: client.enter }, '127.0.0.1', port, N, M);
    procs.push(cli);
    await cli.line('done');
    await srv.line('done');
    // The client's socket, orphaned once its process exits, leaves FIN_WAIT2 for a timewait socket as
    // soon as its FIN is acked: it closes in the kernel's eyes before the server's FIN arrives.
    await cli.leave();
    await new Promise((r) => setTimeout(r, 300));
    await srv.close();
    const m = await eventually(() => {
      const r = collector.read();
      return total(r.get('periscope_tcp_active_connections'), client.id) + total(r.get('periscope_tcp_active_connections'), server.id) === 0 ? r : undefined;
    }, 5_000, 'both ends closed');
    assert.deepEqual(
      ['sent', 'received'].flatMap((d) => [client, server].map((cg) => total(m.get(`periscope_tcp_bytes_${d}_total`), cg.id))),
      [N, M, M, N],
      'client sent, server sent, client received, server received',
    );
  });

  test(`a connect to a closed port is refused, counted by reason, with the reset it got (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const ctx = testContext();
    const collector = new NetworkCollector(ctx, { alternative: alt });
    const cg = new TestCgroup('net-refused');
    t.after(() => {
      collector.close();
      cg.remove();
    });
    // a port nobody listens on: bind one, keep it unbound for listening
    const r = await cg.run(`exec /usr/bin/python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
c = socket.socket()
try:
    c.connect(("127.0.0.1", port)); print("connected")
except ConnectionRefusedError:
    print("refused", port)
'`);
    const port = Number(/^refused (\d+)$/m.exec(r.stdout)?.[1]);
    assert.ok(port > 0, `the connect was refused: ${r.stdout}${r.stderr}`);
    const m = collector.read();
    const conns = m.get('periscope_tcp_connections_total') ?? [];
    assert.equal(total(conns, cg.id, (x) => x.labels?.result === 'refused' && x.peer?.port === port), 1);
    assert.equal(total(conns, cg.id, (x) => x.labels?.result === 'success'), 0);
    assert.equal(total(m.get('periscope_tcp_resets_total'), cg.id, (x) => x.labels?.direction === 'received'), 1);
    collector.poll();
    const fails = ctx.events.filter((e) => e.type === 'tcp_fail' && e.cgroup === cg.path);
    assert.deepEqual(fails.map((e) => [e.reason, e.peer_port, e.comm]), [['refused', port, 'python3']]);
  });

  test(`UDP payload bytes and datagrams are counted exactly per peer, and a datagram to a closed port is a drop with the kernel's reason (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const ctx = testContext();
    const collector = new NetworkCollector(ctx, { alternative: alt });
    const cg = new TestCgroup('net-udp');
    const sink = createSocket('udp4');
    t.after(() => {
      sink.close();
      collector.close();
      cg.remove();
    });
    let got = 0;
    sink.on('message', (msg) => (got += msg.length));
    // below the ephemeral range: the lower port of a UDP flow is taken for the listening one
    await new Promise<void>((r) => sink.bind(20_000 + Math.floor(Math.random() * 10_000), '127.0.0.1', r));
    const port = sink.address().port;
    const count = 25;
    const size = 1000;
    const r = await cg.run(`exec /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(${count}): s.sendto(b"u" * ${size}, ("127.0.0.1", ${port}))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.bind(("127.0.0.1", 0)); closed = c.getsockname()[1]; c.close()
s.sendto(b"lost", ("127.0.0.1", closed))
'`);
    assert.equal(r.code, 0, r.stderr);
    await eventually(() => (got === count * size ? true : undefined), 5_000, 'the sink to receive every datagram');
    const m = collector.read();
    const sent = (m.get('periscope_udp_bytes_total') ?? []).filter((x) => x.subject?.id === cg.id && x.labels?.direction === 'sent' && x.peer?.port === port);
    assert.deepEqual(sent.map((x) => x.value), [count * size], 'payload bytes to the sink');
    const dgrams = (m.get('periscope_udp_datagrams_total') ?? []).filter((x) => x.subject?.id === cg.id && x.labels?.direction === 'sent' && x.peer?.port === port);
    assert.deepEqual(dgrams.map((x) => x.value), [count]);
    const drops = m.get('periscope_packet_drops_total') ?? [];
    assert.ok(drops.length > 0, 'the datagram to a closed port was dropped and counted');
    assert.ok(drops.every((d) => d.subject?.kind === 'netns'), 'drops are counted per network namespace');
    if (collector.dropReason(1) !== 'unknown') {
      assert.ok(drops.some((d) => d.labels?.reason === 'udp_no_port' || d.labels?.reason === 'no_socket'), `named by the kernel's reason: ${JSON.stringify(drops.map((d) => d.labels))}`);
    }
  });

  test(`a storm of 100,000 short connections is counted exactly and leaves no socket state behind, in the kernel or here (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const ctx = testContext();
    const collector = new NetworkCollector(ctx, { alternative: alt });
    const cg = new TestCgroup('net-storm');
    t.after(() => {
      collector.close();
      cg.remove();
    });
    // in a network namespace of its own: its TIME_WAIT table is not the host's
    // (a guest under TCG makes some 350 connections a second: 5,000 there, a quarter of its scale)
    const n = process.env.PERISCOPE_GUEST === '1' ? 5_000 : scaled(100_000, 2_000);
    // drained as the agent drains it, every 100 ms
    const drain = setInterval(() => collector.poll(), 100);
    t.after(() => clearInterval(drain));
    const r = await cg.run(`exec unshare -n sh -c 'ip link set lo up && exec ${helper('tcp-storm')} --count ${n} --bytes 2 --clients 4 --acceptors 2'`, 300_000);
    assert.equal(r.code, 0, r.stderr);
    const storm = JSON.parse(r.stdout) as { connections: number; failed: number; per_second: number };
    assert.equal(storm.failed, 0, r.stdout);
    clearInterval(drain);
    let polls = 0;
    while (collector.poll() > 0 && polls < 100) polls++;
    const m = collector.read();
    const conns = m.get('periscope_tcp_connections_total') ?? [];
    const byResult = JSON.stringify(conns.filter((x) => x.subject?.id === cg.id).map((x) => [x.labels?.direction, x.labels?.result, x.value]));
    assert.equal(total(conns, cg.id, (x) => x.labels?.direction === 'outbound' && x.labels.result === 'success'), storm.connections, `every connect counted (${byResult}; drops ${JSON.stringify(collector.drops())})`);
    assert.equal(total(conns, cg.id, (x) => x.labels?.direction === 'inbound' && x.labels.result === 'success'), storm.connections, 'every accept counted');
    assert.equal(total(m.get('periscope_tcp_bytes_sent_total'), cg.id), 4 * storm.connections, 'two bytes each way on each connection');
    assert.equal(total(m.get('periscope_tcp_bytes_received_total'), cg.id), 4 * storm.connections);
    assert.equal(total(m.get('periscope_tcp_active_connections'), cg.id), 0, 'none left open');
    const live = collector.liveConnections();
    if (live) assert.equal(live.filter((c) => c.key.cgroup_id === cg.id).length, 0, 'no socket storage of ours left');
    assert.equal(collector.drops().aggregates, 0, 'no aggregate lost');
    assert.equal(collector.drops().events, 0, 'no event lost: past the budget they are counted, not sent');
    collector.forget([{ kind: 'cgroup', id: cg.id }]);
    assert.ok(![...collector.subjects()].some((s) => s.id === cg.id), 'forget drops every flow of the cgroup');
    t.diagnostic(`${storm.connections} connections at ${Math.round(storm.per_second)}/s; events sampled out ${collector.drops().sampled}; ${polls} polls`);
  });
}

test('where the kernel lacks socket storage for tracing programs, the collector says so and loads nothing', (t) => {
  if (!needsKernel(t)) return;
  if (supported('sk_storage_tracing')) {
    t.diagnostic('this kernel has it: the collector runs (see the tests above)');
    assert.ok(alternativesHere(NETWORK_SPEC).length > 0, 'an alternative is taken where the features are there');
    return;
  }
  assert.throws(() => BpfObject.load(NETWORK_SPEC), /no alternative works on this kernel.*sk_storage_tracing/s);
});

test(`where the kernel refuses the socket-storage iterator, the collector takes ${ALT_NO_ITER}, says what it passed over, and runs without the iterator`, async (t) => {
  if (!needsKernel(t)) return;
  if (!supported('sk_storage_tracing')) {
    t.diagnostic('no socket storage in tracing programs: no alternative runs here (see the test above)');
    return;
  }
  // on a kernel that has the iterator, as if it did not
  const faked = supported('iter_sk_storage');
  const restore = faked ? assumeProbe('iter_sk_storage', { status: 'unsupported', reason: 'load: Operation not permitted (EPERM); assumed by the test' }) : () => undefined;
  t.after(restore);
  t.diagnostic(faked ? 'the iterator works here: its probe answers unsupported for this test' : 'this kernel refuses the iterator');
  assert.equal(chooseAlternative(NETWORK_SPEC).chosen, ALT_NO_ITER);
  const ctx = testContext();
  const collector = new NetworkCollector(ctx);
  const cg = new TestCgroup('net-no-iter');
  t.after(() => {
    collector.close();
    cg.remove();
  });
  const status = collector.status();
  assert.equal(status.alternative, ALT_NO_ITER);
  assert.deepEqual(status.passedOver.map((p) => p.name), [ALT_LIVE]);
  assert.match(status.passedOver[0]!.reason, /kernel lacks iter_sk_storage/);
  assert.match(status.note ?? '', /counted when they close/, 'the status says what the alternative does not do');
  assert.equal(status.programsAttached, NETWORK_SPEC.programs.length - 1, 'every program but the iterator');
  assert.equal(collector.readsOpenConnections, false);
  assert.equal(collector.liveConnections(), null, 'the iterator is not run');

  // a connection held open, then closed, both ends in one cgroup: active while open, its bytes at close
  const N = 50_001;
  const M = 7_007;
  const srv = Exchange.listen({ enter: cg.enter }, '127.0.0.1', 0, N, M);
  t.after(() => srv.kill());
  const port = Number(await srv.line('ready'));
  const cli = Exchange.connect({ enter: cg.enter }, '127.0.0.1', port, N, M);
  t.after(() => cli.kill());
  await cli.line('done');
  await srv.line('done');
  const sent = (m: Map<string, Sample[]>): number => total(m.get('periscope_tcp_bytes_sent_total'), cg.id);
  const active = (m: Map<string, Sample[]>): number => total(m.get('periscope_tcp_active_connections'), cg.id);
  const open = await eventually(() => {
    const m = collector.read();
    return active(m) === 2 ? m : undefined;
  }, 5_000, 'both ends of the connection active');
  assert.equal(sent(open), 0, `${ALT_NO_ITER}: an open connection's bytes are not counted until it closes`);
  await Promise.all([cli.close(), srv.close()]);
  const closed = await eventually(() => {
    const m = collector.read();
    return active(m) === 0 ? m : undefined;
  }, 5_000, 'both ends closed');
  assert.equal(sent(closed), N + M, 'after close: the bytes of both ends, exact');
  assert.equal(total(closed.get('periscope_tcp_bytes_received_total'), cg.id), N + M);
});
