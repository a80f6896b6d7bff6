/**
 * The agent as a process, safe to expose: bearer token and TLS from its flags, and secrets in the
 * command lines of real execs masked in everything it serves (events, the live stream, /metrics).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCgroup, eventually, needsKernel } from '../kernel.js';
import { startAgent, type RunningAgent } from '../agent-process.js';
import { makeCertificates } from '../tls.js';
import { type ExecEvent } from '../../src/collectors/process/index.js';

const TOKEN = 'e2e-token-0123456789abcdef0123456789';

function tokenFile(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'periscope-token-')), 'token');
  writeFileSync(path, `${TOKEN}\n`, { mode: 0o600 });
  return path;
}

function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, headers, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('with --token-file and TLS the agent answers HTTPS clients that trust its CA and carry the token, and nothing in plain text', async (t) => {
  if (!needsKernel(t)) return;
  const certs = await makeCertificates();
  const agent = await startAgent(['--token-file', tokenFile(), '--tls-cert', certs.certFile, '--tls-key', certs.keyFile]);
  t.after(() => agent.stop());
  assert.match(agent.url, /^https:\/\/127\.0\.0\.1:\d+$/, 'the banner prints an https URL');
  assert.match(agent.banner, /bearer token required/);

  assert.equal((await httpsGet(`${agent.url}/healthz`, certs.ca)).status, 200, '/healthz is always open');
  for (const path of ['/metrics', '/api/v1/status', '/api/v1/events', '/api/v1/events/stream']) {
    const anonymous = await httpsGet(`${agent.url}${path}`, certs.ca);
    assert.equal(anonymous.status, 401, path);
    assert.equal(anonymous.headers['www-authenticate'], 'Bearer realm="periscope"', path);
    const wrong = await httpsGet(`${agent.url}${path}`, certs.ca, { authorization: 'Bearer not-the-token-at-all' });
    assert.equal(wrong.status, 401, path);
    assert.match(String(wrong.headers['www-authenticate']), /^Bearer realm="periscope", error="invalid_token"$/);
  }
  const ok = await httpsGet(`${agent.url}/api/v1/status`, certs.ca, { authorization: `Bearer ${TOKEN}` });
  assert.equal(ok.status, 200);
  assert.ok((JSON.parse(ok.body) as { collectors: unknown[] }).collectors.length > 0);
  assert.equal((await httpsGet(`${agent.url}/metrics`, certs.ca, { authorization: `Bearer ${TOKEN}` })).status, 200);

  await assert.rejects(fetch(agent.url.replace('https:', 'http:') + '/healthz', { signal: AbortSignal.timeout(5_000) }), 'plain HTTP is refused');
  await assert.rejects(fetch(`${agent.url}/healthz`, { signal: AbortSignal.timeout(5_000) }), 'a client that does not trust the CA is refused');
  assert.equal(agent.child.exitCode, null, 'and the agent is still there');
});

test('--metrics-open leaves /metrics to Prometheus and nothing else', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent(['--token-file', tokenFile(), '--metrics-open']);
  t.after(() => agent.stop());
  assert.equal((await fetch(`${agent.url}/metrics`)).status, 200);
  assert.equal((await fetch(`${agent.url}/api/v1/events`)).status, 401);
  assert.equal((await fetch(`${agent.url}/healthz`)).status, 200);
});

/** Every byte the agent serves about events and metrics, for a search for what must not be there. */
async function everything(agent: RunningAgent): Promise<string> {
  const events = await (await fetch(`${agent.url}/api/v1/events?limit=10000`)).text();
  const metrics = await (await fetch(`${agent.url}/metrics`)).text();
  return events + metrics;
}

/** Subscribes to the live stream and collects it until stopped. */
function collectStream(agent: RunningAgent): { text: () => string; stop: () => void } {
  const ac = new AbortController();
  let text = '';
  void (async () => {
    try {
      const res = await fetch(`${agent.url}/api/v1/events/stream?type=exec`, { signal: ac.signal });
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString();
    } catch {
      // aborted
    }
  })();
  return { text: () => text, stop: () => ac.abort() };
}

async function echoExec(agent: RunningAgent, cg: TestCgroup, args: string): Promise<ExecEvent> {
  await cg.run(`/bin/echo ${args} >/dev/null`);
  return eventually(async () => {
    const body = (await (await fetch(`${agent.url}/api/v1/events?type=exec&cgroup=${encodeURIComponent(cg.path)}`)).json()) as { events: ExecEvent[] };
    return body.events.find((e) => e.filename === '/bin/echo');
  }, 5_000, 'the exec of /bin/echo');
}

test('exec arguments are served masked by default: in the events, the stream and /metrics, hunter2 appears nowhere', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent();
  const cg = new TestCgroup('masking');
  const stream = collectStream(agent);
  t.after(async () => {
    stream.stop();
    await agent.stop();
    cg.remove();
  });
  await new Promise((r) => setTimeout(r, 300)); // the subscription is in place
  const exec = await echoExec(agent, cg, '--password=hunter2 --api-key=hunter2 PGPASSWORD=hunter2 --token hunter2 --verbose postgres://app:hunter2@db/x');
  assert.deepEqual(exec.args, ['/bin/echo', '--password=***', '--api-key=***', 'PGPASSWORD=***', '--token', '***', '--verbose', 'postgres://app:***@db/x']);
  await eventually(() => (stream.text().includes('"/bin/echo","--password=***"') ? true : undefined), 5_000, 'the masked exec on the stream');
  assert.doesNotMatch(stream.text(), /hunter2/, 'not on the stream (the sh -c that ran echo included)');
  assert.doesNotMatch(await everything(agent), /hunter2/, 'not in the events API or /metrics');
});

test('--no-exec-args serves execs without arguments, and --secret-keys replaces the list of secret names', async (t) => {
  if (!needsKernel(t)) return;
  const cg = new TestCgroup('noargs');
  t.after(() => cg.remove());
  const bare = await startAgent(['--no-exec-args']);
  try {
    const exec = await echoExec(bare, cg, '--password=hunter2 visible-word');
    assert.deepEqual(exec.args, []);
    assert.equal(exec.filename, '/bin/echo', 'the program is still named');
    const all = await everything(bare);
    assert.doesNotMatch(all, /hunter2|visible-word/);
  } finally {
    await bare.stop();
  }

  const pin = await startAgent(['--secret-keys', 'pin']);
  try {
    const exec = await echoExec(pin, cg, '--pin=1234 --password=not-secret-here');
    assert.deepEqual(exec.args, ['/bin/echo', '--pin=***', '--password=not-secret-here']);
  } finally {
    await pin.stop();
  }
});
