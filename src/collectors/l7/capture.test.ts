import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ALT_SYS_EXIT, decodeRecord, MAX_CAPTURE_BYTES, EndpointCache, L7_SPEC, L7Capture, type CaptureRecord, type Chunk, type ConnClose, type Endpoint } from './capture.js';
import * as gen from './l7.gen.js';
import { wordsToAddr } from '../network/addr.js';
import { alternativesHere, eventually, needsKernel, TestCgroup } from '../../../test/kernel.js';

const FIXTURE = fileURLToPath(new URL('../../../../test/fixtures/l7-capture.py', import.meta.url));

/** A long-running fixture (a server) in a cgroup: its first line is its port. */
class Server {
  private readonly child: ChildProcessWithoutNullStreams;
  readonly port: Promise<number>;

  constructor(cg: TestCgroup, mode: string) {
    this.child = spawn('/bin/sh', ['-c', `${cg.enter} && exec /usr/bin/python3 ${FIXTURE} ${mode}`], { stdio: 'pipe' });
    let out = '';
    let err = '';
    this.child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    this.port = new Promise((resolve, reject) => {
      this.child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n')[0];
        if (out.includes('\n') && line) resolve((JSON.parse(line) as { port: number }).port);
      });
      this.child.on('close', (code) => reject(new Error(`${mode} exited (${code}): ${err}`)));
    });
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** Runs a client mode of the fixture in a cgroup; its one line of output. */
async function client<T>(cg: TestCgroup, args: string): Promise<T> {
  const r = await cg.run(`exec /usr/bin/python3 ${FIXTURE} ${args}`, 30_000);
  assert.equal(r.code, 0, `fixture ${args}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as T;
}

const chunksOf = (recs: CaptureRecord[], pred: (c: Chunk) => boolean): Chunk[] => recs.filter((r): r is Chunk => r.kind === 'chunk' && pred(r));
const sum = (cs: Chunk[], dir: 'egress' | 'ingress'): number => cs.filter((c) => c.dir === dir).reduce((a, c) => a + c.size, 0);
const text = (d: Uint8Array): string => Buffer.from(d).toString('latin1');
/** The fixture's request i, as it writes it. */
const request = (i: number): string => `GET /size/${100 + i * 37} HTTP/1.1\r\nHost: test\r\nX-Seq: ${i}\r\n\r\n`;

/** Drains the capture into `seen` until `done` says what it waits for is there. */
async function until<T>(cap: L7Capture, seen: CaptureRecord[], done: () => T | undefined, what: string): Promise<T> {
  return eventually(() => {
    cap.drain((r) => seen.push(r));
    return done();
  }, 5_000, what);
}

for (const alt of alternativesHere(L7_SPEC)) {
  test(`the capture ships what allowed processes move on HTTP connections and nothing else (${alt})`, async (t: TestContext) => {
    if (!needsKernel(t)) return;
    const server = new TestCgroup('l7-server');
    const clients = new TestCgroup('l7-client');
    const outsider = new TestCgroup('l7-outsider');
    const cap = new L7Capture({ alternative: alt });
    const servers: Server[] = [];
    t.after(() => {
      for (const s of servers) s.kill();
      cap.close();
      server.remove();
      clients.remove();
      outsider.remove();
    });
    assert.equal(cap.choice.chosen, alt);
    cap.addCgroup(server.id);
    cap.addCgroup(clients.id);
    assert.deepEqual(cap.cgroups().sort(), [BigInt(server.id), BigInt(clients.id)].sort());
    const http = new Server(server, 'http-server');
    const echo = new Server(server, 'echo-server');
    servers.push(http, echo);
    const httpPort = await http.port;
    const echoPort = await echo.port;
    const seen: CaptureRecord[] = [];

    await t.test('every request and response of a keep-alive connection is shipped once, with its exact size, direction and one id per end', async () => {
      const N = 20;
      const r = await client<{ fd: number; port: number; sent: number; received: number; requests: number[]; pid: number }>(clients, `keepalive ${httpPort} ${N}`);
      const mine = (c: Chunk): boolean => c.tgid === r.pid;
      const theirs = (c: Chunk): boolean => c.remote.port === r.port && c.local.port === httpPort;
      await until(cap, seen, () => {
        const c = chunksOf(seen, mine);
        const s = chunksOf(seen, theirs);
        return sum(c, 'egress') === r.sent && sum(c, 'ingress') === r.received && sum(s, 'ingress') === r.sent && sum(s, 'egress') === r.received ? true : undefined;
      }, `${r.sent} bytes each way on both ends`);
      const c = chunksOf(seen, mine);
      const s = chunksOf(seen, theirs);
      const ids = new Set(c.map((x) => x.conn));
      assert.equal(ids.size, 1, 'one connection id for the client end');
      assert.equal(new Set(s.map((x) => x.conn)).size, 1, 'one connection id for the server end');
      assert.notEqual(s[0]!.conn, c[0]!.conn, 'each end is a socket of its own');
      const requests = c.filter((x) => x.dir === 'egress');
      assert.deepEqual(requests.map((x) => x.size), r.requests, 'one chunk per request, of its size');
      requests.forEach((x, i) => {
        assert.equal(text(x.data), request(i), `request ${i} in full`);
        assert.equal(x.syscall, 'sendto');
      });
      for (const x of c) {
        assert.equal(x.fd, r.fd);
        assert.equal(x.cgroup, BigInt(clients.id));
        assert.equal(x.protocol, 'http1');
        assert.equal(x.role, 'client');
        assert.deepEqual(x.local, { addr: '127.0.0.1', port: r.port });
        assert.deepEqual(x.remote, { addr: '127.0.0.1', port: httpPort });
        assert.equal(x.data.length, Math.min(x.size, x === c[0] ? MAX_CAPTURE_BYTES : 1024), 'the prefix is the capture size (a connection\'s first: 16 KiB) or all of it');
      }
      for (const x of s) assert.equal(x.role, 'server');
      assert.ok(s.filter((x) => x.dir === 'egress').every((x) => text(x.data).startsWith('HTTP/1.0 200') || text(x.data).startsWith('HTTP/1.1 200') || x.offset > 0));
      // stream offsets count what came before in the same direction
      for (const dir of ['egress', 'ingress'] as const) {
        let at = 0;
        for (const x of c.filter((y) => y.dir === dir)) {
          assert.equal(x.offset, at, `${dir} offset`);
          at += x.size;
        }
      }
      const closes = await until(cap, seen, () => {
        const cl = seen.filter((x): x is ConnClose => x.kind === 'close' && (x.conn === c[0]!.conn || x.conn === s[0]!.conn));
        return cl.length === 2 ? cl : undefined;
      }, 'both ends closed');
      const mineClosed = closes.find((x) => x.conn === c[0]!.conn)!;
      assert.deepEqual([mineClosed.egressBytes, mineClosed.ingressBytes], [r.sent, r.received], 'the close says how much went each way');
      assert.equal(mineClosed.local.port, r.port);
    });

    await t.test('two connections one after the other on the same fd number are two connections', async () => {
      const r = await client<{ conns: { fd: number; port: number }[]; pid: number }>(clients, `reuse ${httpPort}`);
      assert.equal(r.conns[0]!.fd, r.conns[1]!.fd, 'the fixture reused the fd number');
      const ids = await until(cap, seen, () => {
        const c = chunksOf(seen, (x) => x.tgid === r.pid);
        const per = r.conns.map((k) => c.filter((x) => x.local.port === k.port));
        // a response may come in more than one read: a request and some response on each
        const both = per.every((p) => p.some((x) => x.dir === 'egress') && p.some((x) => x.dir === 'ingress'));
        const byPort = per.map((p) => new Set(p.map((x) => x.conn)));
        return both && byPort.every((s) => s.size === 1) ? byPort.map((s) => [...s][0]!) : undefined;
      }, 'a request and a response on each connection');
      assert.deepEqual(new Set(chunksOf(seen, (x) => x.tgid === r.pid).map((x) => x.fd)), new Set([r.conns[0]!.fd]));
      assert.notEqual(ids[0], ids[1]);
    });

    await t.test('a connection of bytes no parser knows is ignored and ships nothing', async () => {
      const before = cap.stats();
      const r = await client<{ fd: number; port: number; pid: number }>(clients, `binary ${echoPort} 5`);
      await until(cap, seen, () => (cap.stats().ignored >= before.ignored + 2 ? true : undefined), 'both ends ignored');
      assert.equal(cap.stats().connections - before.connections, cap.stats().ignored - before.ignored, 'every new connection was ignored');
      assert.deepEqual(chunksOf(seen, (x) => x.tgid === r.pid || x.local.port === r.port || x.remote.port === r.port), []);
      assert.equal(seen.filter((x) => x.kind === 'close' && (x.local.port === r.port || x.remote.port === r.port)).length, 0, 'nor a close');
    });

    await t.test('a process in a cgroup not on the allow-list ships nothing, its allowed peer does', async () => {
      const r = await client<{ port: number; sent: number; received: number; pid: number }>(outsider, `keepalive ${httpPort} 3`);
      await until(cap, seen, () => {
        const s = chunksOf(seen, (x) => x.remote.port === r.port);
        return sum(s, 'ingress') === r.sent && sum(s, 'egress') === r.received ? true : undefined;
      }, "the server's end");
      assert.deepEqual(chunksOf(seen, (x) => x.tgid === r.pid || x.cgroup === BigInt(outsider.id)), []);
      // and once removed, the client cgroup is not captured either
      cap.removeCgroup(clients.id);
      const q = await client<{ port: number; sent: number; pid: number }>(clients, `keepalive ${httpPort} 2`);
      await until(cap, seen, () => (sum(chunksOf(seen, (x) => x.remote.port === q.port), 'ingress') === q.sent ? true : undefined), "the server's end");
      assert.deepEqual(chunksOf(seen, (x) => x.tgid === q.pid), []);
      cap.addCgroup(clients.id);
    });

    await t.test('readv, writev, sendmsg and recvmsg are captured across their buffers', async () => {
      const r = await client<{ port: number; pid: number; calls: { syscall: string; dir: string; bytes: number; data: string }[] }>(clients, `vectored ${httpPort}`);
      const got = await until(cap, seen, () => {
        const c = chunksOf(seen, (x) => x.tgid === r.pid);
        return c.length === r.calls.length ? c : undefined;
      }, `${r.calls.length} chunks`);
      assert.deepEqual(
        got.map((x) => ({ syscall: x.syscall, dir: x.dir, bytes: x.size, data: Buffer.from(x.data).toString('hex') })),
        r.calls,
      );
      assert.deepEqual(new Set(got.map((x) => x.syscall)), new Set(['writev', 'readv', 'sendmsg', 'recvmsg']));
      assert.ok(got.some((x) => x.dir === 'ingress' && x.data.length > 16), 'a read that filled more than its first buffer');
    });

    await t.test('an HTTP/2 connection\'s frames are walked: DATA shipped by its header, its payload a gap of known length; other connections\' calls by their first 1 KiB', async () => {
      const r = await client<{ h2: number; h1: number; pid: number }>(clients, `big ${echoPort} 15000`);
      const egress = (port: number, n: number): Promise<Chunk[]> =>
        until(cap, seen, () => {
          const c = chunksOf(seen, (x) => x.tgid === r.pid && x.local.port === port && x.dir === 'egress');
          return c.length === n ? c : undefined;
        }, `${n} records of the writes from port ${port}`);
      // the preface and SETTINGS (33 bytes) go as the connection's first call; then 15,000 bytes of
      // DATA frames of 1,000 bytes: a record per frame, its 9-byte header captured, the rest not
      const h2 = await egress(r.h2, 16);
      assert.deepEqual(h2.slice(0, 1).map((x) => [x.protocol, x.offset, x.size, x.data.length]), [['http2', 0, 33, 33]]);
      const frames = h2.slice(1);
      assert.deepEqual(frames.map((x) => x.offset), frames.map((_x, i) => 33 + i * 1009), 'each at its frame\'s place in the stream');
      assert.deepEqual(frames.map((x) => x.size), [...Array.from({ length: 14 }, () => 1009), 15000 - 14 * 1009], 'each to the end of its payload, the last to the end of the call');
      for (const x of frames) assert.equal(Buffer.from(x.data).toString('hex'), '0003e8000000000001', 'the DATA frame\'s header alone');
      const h1 = await egress(r.h1, 2);
      assert.deepEqual(h1.map((x) => [x.protocol, x.size, x.data.length]), [['http1', 30, 30], ['http1', 15000, 1024]]);
    });

    await t.test('a malformed HTTP/2 frame header ends the walk: that call and the ones after go whole as prefixes, nothing dropped', async () => {
      const r = await client<{ port: number; pid: number }>(clients, `h2bad ${echoPort} 3000`);
      const c = await until(cap, seen, () => {
        const x = chunksOf(seen, (y) => y.tgid === r.pid && y.local.port === r.port && y.dir === 'egress');
        return x.length === 3 ? x : undefined;
      }, 'three writes');
      assert.deepEqual(c.map((x) => [x.protocol, x.offset, x.size, x.data.length]), [['http2', 0, 33, 33], ['http2', 33, 109, 109], ['http2', 142, 3000, 3000]]);
      assert.equal(Buffer.from(c[1]!.data.subarray(0, 9)).toString('hex'), '000064ff0000000001', 'the bad header as written');
    });

    await t.test('a full ring costs records, and they are counted', async () => {
      const small = new L7Capture({ alternative: alt, ringBytes: 4096 });
      try {
        small.addCgroup(clients.id);
        await client(clients, `flood ${httpPort} 50`);
        const d = small.drops();
        assert.ok(d.ringFull > 0, `records lost to a full ring are counted (${JSON.stringify(d)})`);
        const kept = small.drainAll().filter((x) => x.kind === 'chunk');
        assert.ok(kept.length > 0 && kept.length < 100, `the ring kept a few (${kept.length})`);
        assert.equal(kept.length, small.stats().chunks, 'what went into the ring is what was read from it');
        assert.ok(d.ringFull + kept.length >= 100, 'at least a request and a response each were due');
      } finally {
        small.close();
      }
    });

    await t.test('a ring a quarter full wakes its reader: a flood the timer would lose is drained whole, and without the watch the same flood loses records', async () => {
      const run = async (watched: boolean): Promise<{ ringFull: number; chunks: number; wakes: number }> => {
        const ring = new L7Capture({ alternative: alt, ringBytes: 1 << 20 });
        let chunks = 0;
        let wakes = 0;
        const arm = (): void =>
          ring.watch(() => {
            wakes++;
            setImmediate(() => {
              ring.drain((r) => (chunks += r.kind === 'chunk' ? 1 : 0));
              arm();
            });
          });
        try {
          ring.addCgroup(clients.id);
          if (watched) arm();
          // ~2.2 kB of capture a round on the client's end: 8.8 MB, eight rings, no timer
          await client(clients, `burst ${echoPort} 4000`);
          await new Promise((r) => setTimeout(r, 50));
          ring.drain((r) => (chunks += r.kind === 'chunk' ? 1 : 0));
          return { ringFull: ring.drops().ringFull, chunks, wakes };
        } finally {
          ring.close();
        }
      };
      // the test's own capture sits this out: nobody drains it meanwhile
      cap.removeCgroup(server.id);
      cap.removeCgroup(clients.id);
      let unwatched, watched;
      try {
        unwatched = await run(false);
        watched = await run(true);
      } finally {
        cap.addCgroup(server.id);
        cap.addCgroup(clients.id);
      }
      assert.ok(unwatched.ringFull > 0, `undrained, the ring overflows (${JSON.stringify(unwatched)})`);
      assert.equal(watched.ringFull, 0, `drained on wakeup, nothing lost (${JSON.stringify(watched)})`);
      assert.ok(watched.chunks >= 8000, `a request and a response each (${JSON.stringify(watched)})`);
      assert.ok(watched.wakes > 0 && watched.wakes < watched.chunks / 10, `woken per quarter ring, not per record (${JSON.stringify(watched)})`);
    });

    assert.deepEqual(cap.drops(), { ringFull: 0, noState: 0, unreadable: 0, malformed: 0 });
  });
}

test('the capture refuses a ring that is not a power of two and a capture size past its maximum', () => {
  assert.throws(() => new L7Capture({ ringBytes: 5000 }), /power of two/);
  assert.throws(() => new L7Capture({ captureBytes: 32768 }), /capture size/);
  assert.ok(ALT_SYS_EXIT);
});

/** A record as the codec's whole decode read it (what decodeRecord did before it read fields in place). */
function codecDecode(view: DataView, at: number, size: number): CaptureRecord | undefined {
  const H = gen.L7ChunkCodec;
  if (size < H.size) return undefined;
  const h = H.decode(view, at);
  const endpoint = (words: readonly number[], port: number): Endpoint => ({ addr: wordsToAddr(words) || '0.0.0.0', port });
  const conn = view.getBigUint64(at, true);
  const cgroup = view.getBigUint64(at + 8, true);
  const time = view.getBigUint64(at + 16, true);
  const local = endpoint(h.local_addr, h.local_port);
  const remote = endpoint(h.remote_addr, h.remote_port);
  const protocol = (['unknown', 'http1', 'http2', 'postgres', 'redis'] as const)[h.protocol] ?? 'unknown';
  const role = (['unknown', 'client', 'server'] as const)[h.role] ?? 'unknown';
  if (h.kind === gen.enums.l7_record_kind.REC_CLOSE) return { kind: 'close', conn, cgroup, time, protocol, role, egressBytes: h.egress_bytes, ingressBytes: h.ingress_bytes, local, remote };
  if (h.kind !== gen.enums.l7_record_kind.REC_CHUNK || h.captured > size - H.size) return undefined;
  const syscall = (['read', 'write', 'readv', 'writev', 'recvfrom', 'sendto', 'recvmsg', 'sendmsg', 'sendmmsg', 'ssl_read', 'ssl_write'] as const)[h.syscall];
  if (!syscall) return undefined;
  const egress = h.direction === gen.enums.l7_direction.DIR_EGRESS;
  const data = new Uint8Array(view.buffer.slice(view.byteOffset + at + H.size, view.byteOffset + at + H.size + h.captured));
  return { kind: 'chunk', conn, tgid: h.tgid, pid: h.pid, fd: h.fd, cgroup, dir: egress ? 'egress' : 'ingress', time, size: h.size, offset: egress ? h.egress_bytes : h.ingress_bytes, data, protocol, role, syscall, family: h.family === 10 ? 'ipv6' : 'ipv4', local, remote };
}

test('records decode field by field as the codec decodes them whole; endpoints are kept per connection only while their bytes stay', () => {
  const H = gen.L7ChunkCodec;
  const buf = new ArrayBuffer(1 << 16);
  const view = new DataView(buf, 8);
  const cache = new EndpointCache(4);
  let seed = 1;
  const random = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const addrs = [[0, 0, 0xffff0000, 0x0100007f], [0, 0, 0xffff0000, 0x0a00000a], [0x20010db8, 0, 0, 1], [0, 0, 0, 0]];
  for (let i = 0; i < 3000; i++) {
    const at = random(64) * 8;
    const captured = random(300);
    const size = H.size + captured + (random(4) === 0 ? -random(10) : 0);
    const kinds = [gen.enums.l7_record_kind.REC_CHUNK, gen.enums.l7_record_kind.REC_CLOSE, 7];
    H.encode(
      {
        conn_id: 1 + random(6), cgroup_id: 2 ** 40 + random(3), time_ns: 1e15 + i, size: captured + random(5000), egress_bytes: random(2 ** 30) * 2 ** 10, ingress_bytes: random(1e6),
        tgid: random(1e6), pid: random(1e6), fd: random(100) - 1, local_addr: addrs[random(4)]!, remote_addr: addrs[random(4)]!, local_port: random(65536), remote_port: random(3) + 8080,
        family: random(2) ? 10 : 2, captured, kind: kinds[random(3)]!, direction: random(3), protocol: random(6), role: random(4), syscall: random(12), pad: '',
      },
      view,
      at,
    );
    for (let j = 0; j < captured; j++) view.setUint8(at + H.size + j, random(256));
    assert.deepEqual(decodeRecord({ view, offset: at, size }, cache), codecDecode(view, at, size), `record ${i}`);
  }
  assert.ok(cache.size <= 4);
});
