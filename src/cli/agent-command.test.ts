/**
 * `periscope agent` as a new user meets it: the banner (and the README that quotes it), refusals of
 * unsafe or broken setups in one line before anything is attached, and the Kubernetes connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, needsKernel, run } from '../../test/kernel.js';
import { BIN, freePort, startAgent } from '../../test/agent-process.js';
import { makeCertificates } from '../../test/tls.js';
import { bytesFlag } from './flags.js';
import { writeKubeconfig } from '../../test/kubeconfig.js';

const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

/** The agent refused to start with one line saying why and one with the fix, and attached nothing. */
function refused(r: { code: number | null; stdout: string; stderr: string }): string {
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `two lines, not:\n${r.stderr}`);
  assert.match(lines[1]!, /^ {2}fix: /);
  return lines[0]!.replace(/^periscope: /, '');
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'periscope-cli-'));

test('--listen 127.0.0.1:0 prints the port it got, and the printed URLs work', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent(['--node', 'banner-node'], { listen: '127.0.0.1:0' });
  t.after(() => agent.stop());
  const port = Number(/^ {2}metrics: +http:\/\/127\.0\.0\.1:(\d+)\/metrics$/m.exec(agent.banner)?.[1]);
  assert.ok(port > 0, agent.banner);
  for (const url of agent.banner.matchAll(/(http:\/\/\S+)$/gm)) {
    const res = await fetch(url[1]!, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200, url[1]);
    await res.body?.cancel();
  }
});

test("the README's sample output of periscope agent is the agent's banner", async (t) => {
  if (!needsKernel(t)) return;
  const readme = readFileSync(README, 'utf8');
  const block = /`bin\/periscope agent` prints where to look:\n\n```\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'the README shows the banner');
  const agent = await startAgent(['--node', 'vm'], { listen: '127.0.0.1:0' });
  t.after(() => agent.stop());
  const normal = (s: string): string => s.replace(/:\d+\//g, ':PORT/');
  assert.equal(normal(agent.banner), normal(block));
});

test('listening beyond loopback needs a token file, or --allow-unauthenticated', async (t) => {
  const r = await run(BIN, ['agent', '--listen', '0.0.0.0:0']);
  assert.equal(refused(r), "listening on 0.0.0.0 without --token-file would let anyone who reaches it read this node's processes");
  assert.match(r.stderr, /fix: pass --token-file FILE .* or pass --allow-unauthenticated/);
  assert.match(refused(await run(BIN, ['agent', '--listen', ':0'])), /^listening on 0\.0\.0\.0 without --token-file/);
  assert.match(refused(await run(BIN, ['agent', '--listen', '[::]:0'])), /^listening on :: without --token-file/);
  if (!needsKernel(t)) return;
  const open = await startAgent(['--allow-unauthenticated'], { listen: '0.0.0.0:0' });
  t.after(() => open.stop());
  assert.match(open.banner, /collectors running, listening on every address, port \d+\n/);
  assert.match(open.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'the banner shows a URL one can use, not 0.0.0.0');
  assert.equal((await fetch(`${open.url}/api/v1/status`)).status, 200);

  const dir = tmp();
  writeFileSync(join(dir, 'token'), `${'t'.repeat(32)}\n`);
  const guarded = await startAgent(['--token-file', join(dir, 'token')], { listen: '0.0.0.0:0' });
  t.after(() => guarded.stop());
  assert.match(guarded.banner, /, bearer token required\n/);
  assert.equal((await fetch(`${guarded.url}/api/v1/status`)).status, 401);
  assert.equal((await fetch(`${guarded.url}/api/v1/status`, { headers: { authorization: `Bearer ${'t'.repeat(32)}` } })).status, 200, 'the token is read without its newline');
});

test('a token file or TLS files that cannot be used are refused in one line before anything is attached', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'short'), 'abc\n');
  writeFileSync(join(dir, 'empty'), '\n');
  writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
  const certs = await makeCertificates();
  const other = await makeCertificates();
  const cases: [string[], RegExp][] = [
    [['--token-file', join(dir, 'missing')], /^--token-file .*\/missing: ENOENT$/],
    [['--token-file', join(dir, 'short')], /holds a token shorter than 16 characters: write a long random one \(openssl rand -hex 32\)$/],
    [['--token-file', join(dir, 'empty')], /holds no token/],
    [['--tls-cert', certs.certFile], /^--tls-cert and --tls-key go together$/],
    [['--tls-cert', join(dir, 'garbage.pem'), '--tls-key', certs.keyFile], /^--tls-cert .* and --tls-key .* cannot be used: /],
    [['--tls-cert', certs.certFile, '--tls-key', other.keyFile], /cannot be used: .*key values mismatch/],
  ];
  for (const [args, message] of cases) {
    const r = await run(BIN, ['agent', '--listen', '127.0.0.1:0', ...args]);
    assert.match(refused(r), message, args.join(' '));
    assert.doesNotMatch(r.stderr, /collector/, 'nothing was attached');
  }
});

test('the --hub flags are checked in one line before anything is attached', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
  writeFileSync(join(dir, 'empty'), '\n');
  const cases: [string[], RegExp][] = [
    [['--hub', 'ftp://hub:1'], /^--hub wants an http:\/\/ or https:\/\/ URL, not "ftp:\/\/hub:1"$/],
    [['--hub', 'hub:9465'], /^--hub wants an http:\/\/ or https:\/\/ URL/],
    [['--hub', 'not a url'], /^--hub wants a URL like https:\/\/hub.example:9465/],
    [['--hub-interval', '5'], /^--hub-interval is for shipping to a hub: give --hub URL too$/],
    [['--hub', 'http://hub:1', '--hub-interval', '0'], /^--hub-interval must be between 1 and 300 seconds, not 0$/],
    [['--hub', 'http://hub:1', '--hub-interval', '301'], /must be between 1 and 300 seconds/],
    [['--hub', 'http://hub:1', '--hub-buffer', '12Q'], /^--hub-buffer wants a size in bytes like 64Mi or 1G, not "12Q"$/],
    [['--hub', 'http://hub:1', '--hub-buffer', '1k'], /^--hub-buffer must be between 1048576 and \d+ bytes, not 1000$/],
    [['--hub', 'http://hub:1', '--hub-spill-max', '2Gi'], /^--hub-spill-max goes with --hub-spill-dir$/],
    [['--hub', 'http://hub:1', '--hub-token-file', join(dir, 'missing')], /^--hub-token-file .*\/missing: ENOENT$/],
    [['--hub', 'http://hub:1', '--hub-token-file', join(dir, 'empty')], /^--hub-token-file .* holds no token$/],
    [['--hub', 'http://hub:1', '--hub-ca-file', join(dir, 'garbage.pem')], /^--hub-ca-file is for an https:\/\/ --hub$/],
    [['--hub', 'https://hub:1', '--hub-ca-file', join(dir, 'garbage.pem')], /^--hub-ca-file .* holds no PEM certificate$/],
    [['--cgroup-subtree', 'kubepods'], /^--cgroup-subtree wants a path under the cgroup2 root that begins with "\/"/],
    [['--cgroup-subtree', '/a/../b'], /^--cgroup-subtree wants a path/],
  ];
  for (const [args, message] of cases) {
    const r = await run(BIN, ['agent', '--listen', '127.0.0.1:0', ...args]);
    assert.match(refused(r), message, args.join(' '));
    assert.doesNotMatch(r.stderr, /collector/, 'nothing was attached');
  }
});

test('--hub-buffer and --hub-spill-max take sizes with units', () => {
  assert.equal(bytesFlag('agent', 'hub-buffer', '64Mi', 1), 64 * 1024 * 1024);
  assert.equal(bytesFlag('agent', 'hub-buffer', '64MiB', 1), 64 * 1024 * 1024);
  assert.equal(bytesFlag('agent', 'hub-buffer', '1G', 1), 1e9);
  assert.equal(bytesFlag('agent', 'hub-buffer', '2gi', 1), 2 * 1024 ** 3);
  assert.equal(bytesFlag('agent', 'hub-buffer', '4096', 1), 4096);
  assert.throws(() => bytesFlag('agent', 'hub-buffer', '-1', 1), /wants a size in bytes/);
  assert.throws(() => bytesFlag('agent', 'hub-buffer', '1.5G', 1), /wants a size in bytes/);
});

test('a kubeconfig whose client certificate is missing or whose exec plugin fails stops the agent at start, with the cause in one line', async (t) => {
  if (!needsKernel(t)) return;
  const cases: [string, RegExp][] = [
    [writeKubeconfig('https://127.0.0.1:6443', { clientCertificate: '/nonexistent/client.crt', clientKey: '/nonexistent/client.key' }), /cannot be used: ENOENT: no such file or directory, open '\/nonexistent\/client\.crt'$/],
    [writeKubeconfig('https://127.0.0.1:6443', { exec: { command: '/bin/false' } }), /cannot be used: exec plugin \/bin\/false: it failed and printed nothing$/],
  ];
  for (const [kubeconfig, message] of cases) {
    const r = await run(BIN, ['agent', '--listen', '127.0.0.1:0', '--kubeconfig', kubeconfig]);
    const line = refused(r);
    assert.match(line, /^the Kubernetes credentials of .* cannot be used: /);
    assert.match(line, message);
    assert.doesNotMatch(r.stderr, /collector/, 'nothing was attached');
  }
});

test('an unreachable API server is logged with its reason, and /api/v1/status shows the connection', async (t) => {
  if (!needsKernel(t)) return;
  const port = await freePort();
  const server = `https://127.0.0.1:${port}`;
  const agent = await startAgent(['--kubeconfig', writeKubeconfig(server, { token: 'x' })]);
  t.after(() => agent.stop());
  await eventually(() => (agent.log().includes('ECONNREFUSED') ? true : undefined), 10_000, 'the failure in the log');
  assert.match(agent.log(), new RegExp(`^kubernetes: ${server}: pods: fetch failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}; retrying in \\d+ ms$`, 'm'));
  const status = (await (await fetch(`${agent.url}/api/v1/status`)).json()) as { kubernetes: { server: string; connected: boolean; last_error: string | null; errors: { watch_pods: number } } };
  assert.equal(status.kubernetes.server, server);
  assert.equal(status.kubernetes.connected, false);
  assert.match(status.kubernetes.last_error ?? '', /ECONNREFUSED/);
  assert.ok(status.kubernetes.errors.watch_pods >= 1);
});

test('--peer-pods takes cluster or node, and the inventory gets it', async (t) => {
  assert.equal(refused(await run(BIN, ['agent', '--peer-pods', 'all'])), '--peer-pods wants cluster or node, not "all"');
  if (!needsKernel(t)) return;
  const server = `https://127.0.0.1:${await freePort()}`;
  for (const [args, scope] of [[[], 'cluster'], [['--peer-pods', 'node'], 'node']] as const) {
    const agent = await startAgent(['--kubeconfig', writeKubeconfig(server, { token: 'x' }), ...args]);
    t.after(() => agent.stop());
    const status = (await (await fetch(`${agent.url}/api/v1/status`)).json()) as { kubernetes: { peers: { scope: string } } };
    assert.equal(status.kubernetes.peers.scope, scope, args.join(' ') || 'the default');
  }
});
