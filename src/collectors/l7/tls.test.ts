/**
 * TLS plaintext through OpenSSL's probes: nginx from Debian with a certificate made now, and Python's
 * http.client (its ssl linked to OpenSSL 3) over keep-alive, counted per method, route and status
 * class on both ends exactly as nginx's access log has them, with nothing parsed from ciphertext. And
 * the library scan on its own: one library per file, whatever the path, and a library without the
 * functions skipped with its reason.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { L7Collector } from './index.js';
import { L7_SPEC, L7Capture, type CaptureRecord, type Chunk } from './capture.js';
import { RESCAN_EVERY, TlsProbes, type TlsProgram } from './tls.js';
import { templatePath } from './protocols/index.js';
import { rng, shuffle } from './protocols/test-util.js';
import { cgroupSubject, type Sample } from '../contract.js';
import { alternativesHere, eventually, needsKernel, run, TestCgroup } from '../../../test/kernel.js';
import { testContext } from '../../../test/context.js';
import { httpRequests, inCgroup, startNginx, whyServersCannotRun } from '../../../test/servers.js';
import { supported } from '../../kernel/features.js';
import { makeCertificates } from '../../../test/tls.js';

const LIBSSL3 = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const LIBCRYPTO3 = '/usr/lib/x86_64-linux-gnu/libcrypto.so.3';

function countBy<T>(items: readonly T[], key: (x: T) => string, n: (x: T) => number = () => 1): Record<string, number> {
  const m = new Map<string, number>();
  for (const x of items) m.set(key(x), (m.get(key(x)) ?? 0) + n(x));
  return Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const value = (r: Sample): number => (typeof r.value === 'number' ? r.value : r.value.count);

/** Whether Debian's libssl3 is here to scan (with CI=true its absence fails the test). */
function haveLibssl(t: TestContext): boolean {
  if (existsSync(LIBSSL3) && existsSync(LIBCRYPTO3)) return true;
  if (process.env.CI === 'true') assert.fail(`${LIBSSL3} or ${LIBCRYPTO3} is missing (libssl3)`);
  t.skip('no libssl3');
  return false;
}

test('the scan: a libssl mapped by two processes under two paths is probed once, rets before entries; a file without SSL_read is skipped and says why', (t) => {
  if (!haveLibssl(t)) return;
  const root = mkdtempSync(join(tmpdir(), 'periscope-tls-scan-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // a fake /proc: pids 10 and 11 map the same file (11 through a symlinked directory), 12 a "libssl" that is libcrypto
  const lib = (pid: number, rel: string): string => join(root, String(pid), 'root', rel);
  for (const pid of [10, 11, 12]) mkdirSync(join(root, String(pid), 'root', 'lib'), { recursive: true });
  copyFileSync(LIBSSL3, lib(10, 'lib/libssl.so.3'));
  symlinkSync(join(root, '10', 'root', 'lib'), join(root, '11', 'root', 'opt'));
  copyFileSync(LIBCRYPTO3, lib(12, 'lib/libssl.so.1.1'));
  const line = (path: string): string => `7f0000000000-7f0000001000 r-xp 00000000 08:01 1234   ${path}\n`;
  writeFileSync(join(root, '10', 'maps'), line('/lib/libssl.so.3') + line('/lib/libssl.so.3') + '7f0000002000-7f0000003000 rw-p 00000000 00:00 0 \n');
  writeFileSync(join(root, '11', 'maps'), line('/opt/libssl.so.3'));
  writeFileSync(join(root, '12', 'maps'), line('/lib/libssl.so.1.1') + line('/lib/libc.so.6'));
  const attached: { program: TlsProgram; path: string; offset: number }[] = [];
  const probes = new TlsProbes({ attach: (program, path, offset) => void attached.push({ program, path, offset }) }, root);
  probes.scan('all');
  probes.scan('all');
  const libs = probes.list();
  assert.equal(libs.length, 2, JSON.stringify(libs));
  const ssl = libs.find((l) => l.attached)!;
  assert.equal(ssl.path, '/lib/libssl.so.3');
  assert.deepEqual(ssl.functions, ['SSL_read', 'SSL_read_ex', 'SSL_write', 'SSL_write_ex']);
  assert.ok(attached.every((a) => a.path === lib(10, 'lib/libssl.so.3')), 'opened through the process\'s root');
  const programs = attached.map((a) => a.program);
  assert.deepEqual(countBy(programs, (p) => p), { l7_ssl_read: 1, l7_ssl_read_ex: 1, l7_ssl_ret: 4, l7_ssl_set_fd: 1, l7_ssl_write: 1, l7_ssl_write_ex: 1 });
  assert.ok(programs.lastIndexOf('l7_ssl_ret') < programs.findIndex((p) => p !== 'l7_ssl_ret'), 'every ret probe before any entry probe');
  const skipped = libs.find((l) => !l.attached)!;
  assert.match(skipped.reason!, /^no symbols:/);
  assert.deepEqual(probes.stats().skipped, { 'no symbols': 1 });
  assert.equal(probes.stats().attached, 1);
  assert.equal(probes.stats().probes, 9);
});

test('the scan is incremental: a process newly met is looked at by three scans, then only every RESCAN_EVERY; a new selection looks at every one again', (t) => {
  if (!haveLibssl(t)) return;
  const root = mkdtempSync(join(tmpdir(), 'periscope-tls-rescan-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const line = (path: string): string => `7f0000000000-7f0000001000 r-xp 00000000 08:01 1234   ${path}\n`;
  const proc = (pid: number, maps: string): void => {
    mkdirSync(join(root, String(pid), 'root', 'lib'), { recursive: true });
    writeFileSync(join(root, String(pid), 'maps'), maps);
  };
  proc(20, line('/lib/libc.so.6'));
  const probes = new TlsProbes({ attach: () => undefined }, root);
  for (let i = 0; i < 5; i++) probes.scan('all');
  assert.equal(probes.stats().processesScanned, 3, 'three looks at a process newly met, then none until RESCAN_EVERY');
  // a process started now is looked at by the next scan
  proc(21, line('/lib/libssl.so.3'));
  copyFileSync(LIBSSL3, join(root, '21', 'root', 'lib', 'libssl.so.3'));
  probes.scan('all');
  assert.equal(probes.stats().attached, 1);
  // a library the old process loads late waits for its next look
  copyFileSync(LIBCRYPTO3, join(root, '20', 'root', 'lib', 'libssl.so.1.1'));
  proc(20, line('/lib/libc.so.6') + line('/lib/libssl.so.1.1'));
  probes.scan('all');
  assert.equal(probes.list().length, 1, 'not looked at again yet');
  for (let i = 0; i < RESCAN_EVERY && probes.list().length === 1; i++) probes.scan('all');
  assert.equal(probes.list().length, 2, 'looked at again within RESCAN_EVERY scans');
  // another selection: every process is looked at again at once
  const before = probes.stats().processesScanned;
  probes.scan(new Set([-5])); // no cgroup: nothing read
  probes.scan('all');
  assert.equal(probes.stats().processesScanned, before + 2, 'both processes looked at again after the selection changed');
});

/** The l7 capture's alternative here, or a skip where the kernel has none (l7.test.ts holds what l7 says then). */
function l7Here(t: TestContext): string | undefined {
  const alt = alternativesHere(L7_SPEC)[0];
  if (!alt) t.skip('this kernel has no alternative for the l7 capture');
  return alt;
}

test('without the TLS probes (turned off here, as on a kernel that cannot have them) the capture loads and says so', (t) => {
  if (!needsKernel(t)) return;
  const alt = l7Here(t);
  if (!alt) return;
  const cap = new L7Capture({ alternative: alt, tls: false });
  t.after(() => cap.close());
  assert.equal(cap.choice.chosen, alt);
  assert.match(cap.choice.note ?? '', /TLS plaintext not captured/);
  assert.equal(cap.scanTls(), false);
  assert.equal(cap.tlsStats(), undefined);
});

/**
 * Python's ssl (SSL_read_ex, SSL_write_ex) at both ends of one connection, in one process: the client
 * writes N requests, each in one SSL_write_ex; the server takes them 7 bytes a read, so that most of
 * its SSL_read_ex calls are answered from OpenSSL's buffer with no system call under them. It waits
 * for a line on stdin (the probes are attached then) after libssl is loaded.
 */
const PAIR_PY = String.raw`
import socket, ssl, sys, threading
cert, key, ca, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
print(srv.getsockname()[1], flush=True)
sys.stdin.readline()
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain(cert, key)
got = bytearray()
def serve():
    conn = sctx.wrap_socket(srv.accept()[0], server_side=True)
    done = 0
    while done < n:
        b = conn.recv(7)
        if not b: break
        got.extend(b)
        while got.count(b"\r\n\r\n") > done:
            done += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn.close()
t = threading.Thread(target=serve); t.start()
cctx = ssl.create_default_context(cafile=ca)
c = cctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.getsockname()[1])), server_hostname="localhost")
for i in range(n):
    c.sendall(("GET /items/%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i).encode())
    resp = b""
    while not resp.endswith(b"ok"): resp += c.recv(4096)
t.join(); c.close()
print(len(got), flush=True)
`;

test('SSL_read_ex and SSL_write_ex (Python\'s ssl at both ends): every byte of plaintext, also the reads OpenSSL answered from its buffer without a system call', async (t) => {
  if (!needsKernel(t)) return;
  if (!supported('uprobe')) {
    if (process.env.CI === 'true') assert.fail('this kernel cannot attach uprobes');
    t.skip('no uprobes');
    return;
  }
  const alt = l7Here(t);
  if (!alt) return;
  const cg = new TestCgroup('tls-pair');
  const cap = new L7Capture({ alternative: alt });
  const certs = await makeCertificates();
  const script = join(certs.dir, 'pair.py');
  writeFileSync(script, PAIR_PY);
  t.after(() => {
    cap.close();
    cg.remove();
    rmSync(certs.dir, { recursive: true, force: true });
  });
  assert.doesNotMatch(cap.choice.note ?? '', /TLS/, 'the TLS probes loaded with the capture');
  cap.addCgroup(cg.id);
  const n = 20;
  const child = spawn('/bin/sh', ['-c', `${cg.enter} && exec /usr/bin/python3 ${script} ${certs.certFile} ${certs.keyFile} ${certs.caFile} ${n}`], { stdio: 'pipe' });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const port = Number(await eventually(() => (out.includes('\n') ? out.split('\n')[0] : undefined), 30_000, 'the pair\'s port').catch(() => assert.fail(`the pair did not start: ${err}`)));
  assert.equal(cap.scanTls(), true);
  assert.equal(cap.tlsStats()!.attached, 1, JSON.stringify(cap.tlsLibraries()));
  child.stdin.end('go\n');
  const records: CaptureRecord[] = [];
  const timer = setInterval(() => cap.drain((r) => records.push(r)), 20);
  t.after(() => clearInterval(timer));
  assert.equal(await exited, 0, err);
  const requests = Array.from({ length: n }, (_x, i) => `GET /items/${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`).join('');
  assert.equal(Number(out.trim().split('\n').at(-1)), requests.length);
  const mine = (): Chunk[] => records.filter((r): r is Chunk => r.kind === 'chunk' && (r.local.port === port || r.remote.port === port));
  const serverIn = (): Chunk[] => mine().filter((c) => c.local.port === port && c.dir === 'ingress');
  await eventually(() => (serverIn().reduce((a, c) => a + c.size, 0) >= requests.length ? true : undefined), 5_000, 'the server\'s plaintext').catch(() => undefined);
  const text = (cs: Chunk[]): string => cs.map((c) => Buffer.from(c.data).toString('latin1')).join('');
  assert.equal(text(serverIn()), requests, 'the server read every byte, in order, as plaintext');
  assert.ok(serverIn().length >= requests.length / 7, `one chunk per 7-byte read (${serverIn().length})`);
  assert.ok(serverIn().every((c) => c.syscall === 'ssl_read' && c.role === 'server' && c.protocol === 'http1'));
  const clientOut = mine().filter((c) => c.remote.port === port && c.dir === 'egress');
  assert.equal(clientOut.length, n, 'one chunk per SSL_write_ex');
  assert.equal(text(clientOut), requests);
  assert.ok(mine().every((c) => c.syscall === 'ssl_read' || c.syscall === 'ssl_write'), 'no ciphertext shipped');
  const k = cap.stats();
  assert.equal(k.tlsNoConnection, 0);
  assert.equal(k.tlsConnections, 2, 'both ends');
  // far fewer system calls than 7-byte reads: the rest came from OpenSSL's buffer
  t.diagnostic(`server: ${serverIn().length} SSL_read_ex chunks for ${requests.length} bytes; SSL calls ${k.tlsCalls}`);
});

/** Where the kernel test or the servers cannot run; fails under CI=true. */
function gate(t: TestContext): string | undefined {
  if (!needsKernel(t)) return undefined;
  const alt = alternativesHere(L7_SPEC)[0];
  const why = !alt || !supported('sk_storage_tracing') ? 'this kernel has no alternative for the l7 capture' : !supported('uprobe') ? 'this kernel cannot attach uprobes' : whyServersCannotRun();
  if (process.env.PERISCOPE_GUEST === '1') {
    t.skip('real servers are the host\'s test; the guests run the capture\'s tests');
    return undefined;
  }
  if (why) {
    if (process.env.CI === 'true') assert.fail(why);
    t.skip(why);
    return undefined;
  }
  return alt;
}

/**
 * A server's cgroup and a client's, both selected by a collector and captured by a raw capture beside
 * it (the same traffic, record by record), drained every 50 ms; all gone when the test ends.
 */
function watchBoth(t: TestContext, alt: string, name: string): { web: TestCgroup; clients: TestCgroup; collector: L7Collector; raw: L7Capture; records: CaptureRecord[] } {
  const web = new TestCgroup(`${name}-web`);
  const clients = new TestCgroup(`${name}-clients`);
  const collector = new L7Collector(testContext(), { alternative: alt });
  const raw = new L7Capture({ alternative: alt });
  const records: CaptureRecord[] = [];
  const timer = setInterval(() => {
    collector.poll();
    raw.drain((r) => records.push(r));
  }, 50);
  t.after(() => {
    clearInterval(timer);
    collector.close();
    raw.close();
    web.remove();
    clients.remove();
  });
  collector.select([web, clients].map((cg) => ({ subject: cgroupSubject(cg.id), group: cg.path })));
  raw.addCgroup(web.id);
  raw.addCgroup(clients.id);
  return { web, clients, collector, raw, records };
}

test('nginx over TLS, Python\'s http.client on OpenSSL 3: requests per method, route and status class as the access log has them on both ends, nothing parsed from ciphertext', async (t) => {
  const alt = gate(t);
  if (!alt) return;
  const { web, clients, collector, raw, records } = watchBoth(t, alt, 'tls');

  const nginx = await startNginx(t, { tls: true, wrap: inCgroup(web) });
  // nginx's libssl is the client's too (one file): probed once it is found in the selected server
  assert.equal(collector.capture.scanTls(), true);
  assert.equal(raw.scanTls(), true);
  const found = collector.capture.tlsLibraries();
  assert.ok(found.some((l) => l.attached && /libssl\.so\.3$/.test(l.path)), JSON.stringify(found));
  assert.equal(collector.capture.tlsStats()!.attached, 1);
  t.diagnostic(`probed: ${JSON.stringify(found)}`);

  const random = rng(21);
  const plan: [string, string, number][] = [];
  for (let i = 0; i < 100; i++) plan.push(['GET', `/users/${1 + Math.floor(random() * 1e6)}?size=${Math.floor(random() * 3000)}`, 0]);
  for (let i = 0; i < 25; i++) plan.push(['POST', '/status/404', 100 + Math.floor(random() * 1500)]);
  for (let i = 0; i < 15; i++) plan.push(['GET', '/status/500', 0]);
  for (let i = 0; i < 10; i++) plan.push(['PUT', '/status/201', 10]);
  for (let i = 0; i < 10; i++) plan.push(['DELETE', '/status/503', 0]);
  for (let i = 0; i < 20; i++) plan.push(['GET', '/health', 0]);
  shuffle(plan, random);
  const client = await httpRequests(nginx, plan, { conns: 4, perConn: 40, tls: { caFile: nginx.certificates!.caFile }, wrap: inCgroup(clients) });
  assert.equal(client.responses.length, plan.length);
  const log = nginx.accessLog();
  assert.equal(log.length, plan.length, 'nginx logged every request');
  const served = countBy(log, (e) => `${e.method} ${templatePath(e.path)} ${Math.floor(e.status / 100)}xx`);

  const counted = (side: 'client' | 'server'): Record<string, number> =>
    countBy(
      (collector.read().get('periscope_http_requests_total') ?? []).filter(
        (r) => r.subject?.id === (side === 'client' ? clients.id : web.id) && r.labels?.side === side && (side === 'server' || r.peer?.port === nginx.port),
      ),
      (r) => `${r.labels!.method} ${r.labels!.route} ${r.labels!.status_class}`,
      value,
    );
  await eventually(() => (JSON.stringify(counted('client')) === JSON.stringify(served) && JSON.stringify(counted('server')) === JSON.stringify(served) ? true : undefined), 5_000, 'both sides').catch(() => undefined);
  assert.deepEqual(counted('client'), served, 'the client side, per method, route and status class');
  assert.deepEqual(counted('server'), served, 'the server side');
  t.diagnostic(`${plan.length} requests on ${client.connections} connections: ${JSON.stringify(served)}`);

  // record by record: every chunk of these connections is plaintext from the SSL probes
  const mine = records.filter((r): r is Chunk => r.kind === 'chunk' && (r.local.port === nginx.port || r.remote.port === nginx.port));
  assert.ok(mine.length > 0);
  assert.deepEqual(countBy(mine, (c) => c.syscall), countBy(mine.filter((c) => c.syscall === 'ssl_read' || c.syscall === 'ssl_write'), (c) => c.syscall), 'no chunk from a plain read or write');
  assert.ok(mine.every((c) => c.protocol === 'http1'), 'each connection classified from its plaintext as HTTP/1');
  const requestLines = (side: 'client' | 'server'): number =>
    mine.filter((c) => c.role === side && c.dir === (side === 'client' ? 'egress' : 'ingress') && /^[A-Z]+ \/\S* HTTP\/1\.1\r\n/.test(Buffer.from(c.data).toString('latin1'))).length;
  assert.equal(requestLines('client'), plan.length, 'the client wrote each request line through SSL_write*');
  assert.equal(requestLines('server'), plan.length, 'nginx read each request line through SSL_read');
  const conns = new Set(mine.map((c) => c.conn));
  assert.equal(conns.size, 2 * client.connections, 'each connection once per end');

  const k = collector.capture.stats();
  assert.ok(k.tlsConnections >= 2 * client.connections, `TLS connections: ${k.tlsConnections}`);
  assert.equal(k.tlsNoConnection, 0, 'every SSL call found its connection');
  const parser = collector.tracker.stats;
  assert.equal(parser.desyncs, 0, 'no parser lost its place');
  assert.equal(parser.unknownConnections, 0, 'no connection of unknown protocol reached the parsers');
  assert.equal(parser.unmatchedResponses, 0);
  const events: Record<string, number> = Object.fromEntries((collector.read().get('periscope_l7_capture_events_total') ?? []).map((r): [string, number] => [r.labels!.event!, value(r)]));
  assert.equal(events.tls_libraries_attached, 1);
  assert.match(collector.status().note ?? '', /TLS: 1 OpenSSL library probed/);
});

test('HTTP/2 over TLS, nginx and curl (both on OpenSSL 3), 200 kB responses multiplexed on one connection: every request per route and status on both ends, its frames walked through SSL_read and SSL_write', async (t) => {
  const alt = gate(t);
  if (!alt) return;
  const { web, clients, collector, raw, records } = watchBoth(t, alt, 'tls-h2');
  const nginx = await startNginx(t, { tls: true, http2: true, wrap: inCgroup(web) });
  assert.equal(collector.capture.scanTls(), true);
  assert.equal(raw.scanTls(), true);
  const random = rng(33);
  const urls: string[] = [];
  for (let i = 0; i < 20; i++) urls.push(`/users/${1 + Math.floor(random() * 1e6)}?size=200000`);
  for (let i = 0; i < 10; i++) urls.push('/status/404');
  shuffle(urls, random);
  // one curl: its URLs multiplexed on one HTTP/2 connection, up to 10 at a time
  const argv = ['--http2', '--parallel', '--parallel-max', '10', '--cacert', nginx.certificates!.caFile, '-s', '-w', '%{http_version} %{response_code}\n'];
  for (const u of urls) argv.push('-o', '/dev/null', `https://localhost:${nginx.port}${u}`);
  const r = await run('sh', ['-c', `echo $$ > ${clients.dir}/cgroup.procs && exec curl "$@"`, 'sh', ...argv], 120_000);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(countBy(r.stdout.trim().split('\n'), (l) => l), { '2 200': 20, '2 404': 10 }, 'curl spoke HTTP/2 and got every answer');
  const log = nginx.accessLog();
  assert.equal(log.length, urls.length);
  assert.equal(new Set(log.map((e) => e.connection)).size, 1, 'one connection');
  const served = countBy(log, (e) => `${e.method} ${templatePath(e.path)} ${Math.floor(e.status / 100)}xx`);
  const counted = (side: 'client' | 'server'): Record<string, number> =>
    countBy(
      (collector.read().get('periscope_http_requests_total') ?? []).filter((x) => x.subject?.id === (side === 'client' ? clients.id : web.id) && x.labels?.side === side),
      (x) => `${x.labels!.method} ${x.labels!.route} ${x.labels!.status_class}`,
      value,
    );
  await eventually(() => (JSON.stringify(counted('client')) === JSON.stringify(served) && JSON.stringify(counted('server')) === JSON.stringify(served) ? true : undefined), 5_000, 'both ends').catch(() => undefined);
  t.diagnostic(`served ${JSON.stringify(served)}; parser ${JSON.stringify(collector.tracker.stats)}; capture ${JSON.stringify(collector.capture.stats())}`);
  assert.deepEqual(counted('client'), served, 'curl\'s end');
  assert.deepEqual(counted('server'), served, 'nginx\'s end');
  assert.equal(collector.tracker.stats.headerBlockFailures, 0, 'every header block decoded');
  // DATA is walked past, not shipped: what the records carry is the frames around it
  raw.drain((r) => records.push(r));
  const mine = records.filter((r): r is Chunk => r.kind === 'chunk' && (r.local.port === nginx.port || r.remote.port === nginx.port));
  assert.ok(mine.every((c) => c.protocol === 'http2' && (c.syscall === 'ssl_read' || c.syscall === 'ssl_write')), 'HTTP/2 plaintext from the SSL probes');
  // a stream's length is where its last record ends (a DATA payload a call starts in is in no record)
  const ends = new Map<string, number>();
  for (const c of mine) ends.set(`${c.conn} ${c.dir}`, Math.max(ends.get(`${c.conn} ${c.dir}`) ?? 0, c.offset + c.size));
  const moved = [...ends.values()].reduce((n, x) => n + x, 0);
  const shipped = mine.reduce((n, c) => n + c.data.length, 0);
  t.diagnostic(`${mine.length} records, ${shipped} bytes shipped of ${moved} moved`);
  assert.ok(moved >= 2 * 20 * 200_000, `both ends moved the responses (${moved} bytes)`);
  assert.ok(shipped < moved / 20, `DATA payloads skipped: ${shipped} bytes shipped of ${moved}`);
});
