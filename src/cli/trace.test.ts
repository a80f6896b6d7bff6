/**
 * `periscope trace` against a real agent (its own process, the real kernel): execs caused in a test
 * cgroup come out as JSON lines exactly as the agent serves them and as table rows, the filters reach
 * the agent, replays start where asked, and every failure (unreachable, 401, 503, a kind the agent does
 * not serve, an untrusted certificate, a stream the agent ends) is one line and a fix. The table's
 * columns for the network kinds are checked on events shaped as the network collector makes them.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCgroup, eventually, needsKernel, run } from '../../test/kernel.js';
import { BIN, freePort, startAgent, type RunningAgent } from '../../test/agent-process.js';
import { makeCertificates } from '../../test/tls.js';
import { type ExecEvent } from '../collectors/process/index.js';
import { KINDS, SseParser, bytes, duration, headerRow, splitKind, tableRow, type SseMessage } from './trace.js';

const TOKEN = 'trace-test-token-0123456789abcdef';

interface Traced {
  child: ChildProcess;
  stdout: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** `periscope trace ARGS` in the background, with an environment of its own (no $PERISCOPE_* from outside). */
function trace(args: string[], env: Record<string, string> = {}): Traced {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PERISCOPE_')));
  const child = spawn(BIN, ['trace', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...clean, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return { child, stdout: () => stdout, done };
}

/** The command failed with one line saying what is wrong and one with the fix; returns both. */
function oneError(r: { code: number | null; stdout: string; stderr: string }): { error: string; fix: string } {
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `two lines, not:\n${r.stderr}`);
  assert.match(lines[0]!, /^periscope: /);
  assert.match(lines[1]!, /^ {2}fix: /);
  return { error: lines[0]!.replace(/^periscope: /, ''), fix: lines[1]!.replace(/^ {2}fix: /, '') };
}

const auth = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

/** GET a JSON document of the agent, over HTTPS trusting `ca` where given. */
function getJson<T>(url: string, token?: string, ca?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { headers: auth(token), ...(ca ? { ca } : {}), timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`${url}: ${res.statusCode} ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Waits until the agent serves `n` live streams: the traces started are subscribed. */
async function streams(agent: RunningAgent, n: number, token?: string, ca?: string): Promise<void> {
  await eventually(
    async () => {
      const s = await getJson<{ api: { streams: number } }>(`${agent.url}/api/v1/status`, token, ca);
      return s.api.streams === n ? true : undefined;
    },
    10_000,
    `${n} live streams`,
  );
}

/** seq of the agent's newest event: what a replay after "now" starts from. */
async function lastSeq(agent: RunningAgent, token?: string): Promise<number> {
  return ((await (await fetch(`${agent.url}/api/v1/events?limit=1`, { headers: auth(token) })).json()) as { last: number }).last;
}

/** The exec of /bin/echo MARKER in cg, as the agent's events API serves it. */
async function echoed(agent: RunningAgent, cg: TestCgroup, marker: string, token?: string): Promise<ExecEvent> {
  return eventually(
    async () => {
      const body = (await (await fetch(`${agent.url}/api/v1/events?type=exec&cgroup=${encodeURIComponent(cg.path)}`, { headers: auth(token) })).json()) as { events: ExecEvent[] };
      return body.events.find((e) => e.args.includes(marker));
    },
    10_000,
    `the exec of /bin/echo ${marker}`,
  );
}

function tokenFile(token = TOKEN): string {
  const path = join(mkdtempSync(join(tmpdir(), 'periscope-trace-')), 'token');
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return path;
}

/** One plain agent for the tests that need nothing special of it. */
let shared: RunningAgent | undefined;
after(async () => {
  await shared?.stop();
});
async function plainAgent(): Promise<RunningAgent> {
  shared ??= await startAgent();
  return shared;
}

function testCgroup(t: TestContext, name: string): TestCgroup {
  const cg = new TestCgroup(name);
  t.after(() => cg.remove());
  return cg;
}

// ----------------------------------------------------------------------------------------------
// Against a real agent

test('trace exec --output json --count 1 prints the exec caused in a test cgroup, exactly as the agent serves it, and exits 0', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await plainAgent();
  const cg = testCgroup(t, 'tjson');
  const tr = trace(['exec', '--agent', agent.url, '--output', 'json', '--count', '1', '--cgroup', cg.path, '--timeout', '30']);
  await streams(agent, 1);
  await cg.run('exec /bin/echo trace-json-marker >/dev/null');
  const r = await tr.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const lines = r.stdout.split('\n');
  assert.equal(lines.length, 2, `one line and its newline, not:\n${r.stdout}`);
  const e = JSON.parse(lines[0]!) as ExecEvent;
  assert.equal(e.type, 'exec');
  assert.equal(e.cgroup, cg.path);
  assert.deepEqual(e.args, ['/bin/echo', 'trace-json-marker']);
  const served = await echoed(agent, cg, 'trace-json-marker');
  assert.equal(lines[0], JSON.stringify(served), 'the event as the agent serves it');
});

test('the table has its header and a row with the pid and the command line; --since-seq replays what came before the trace started', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await plainAgent();
  const cg = testCgroup(t, 'ttable');
  const before = await lastSeq(agent);
  await cg.run('exec /bin/echo trace-table-marker >/dev/null');
  const exec = await echoed(agent, cg, 'trace-table-marker');
  // the exec happened before the trace began: only the replay can show it
  const r = await trace(['exec', '--agent', agent.url, '--since-seq', String(before), '--count', '2', '--cgroup', cg.path, '--timeout', '30']).done;
  assert.equal(r.code, 0, r.stderr);
  const [header, execRow, exitRow, rest] = r.stdout.split('\n');
  assert.match(header!, /^TIME +NAMESPACE\/POD +TYPE +PID +PPID +EXIT +COMM\/ARGV$/);
  assert.equal(rest, '', 'a header and two rows');
  assert.match(execRow!, new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ${cg.path} +exec +${exec.pid} +${exec.ppid}  - +/bin/echo trace-table-marker$`));
  assert.match(exitRow!, new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ${cg.path} +exit +${exec.pid} +${exec.ppid}  0 +echo$`));
  // the columns line up under the header
  assert.equal(execRow!.indexOf(`${exec.ppid}  -`) + String(exec.ppid).length, header!.indexOf('PPID') + 'PPID'.length);

  // --last: the newest kept, then live
  const last = await trace(['exec', '--agent', agent.url, '--last', '1', '--cgroup', cg.path, '--output', 'json', '--timeout', '3']).done;
  assert.equal(last.code, 0, last.stderr);
  const replayed = last.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { type: string; pid: number });
  assert.equal(replayed.length, 1, last.stdout);
  assert.equal(replayed[0]!.pid, exec.pid);
  assert.equal(replayed[0]!.type, 'exit', 'the newest of the two');
});

test('--namespace, --pod, --container and --workload reach the agent: an event they do not match is not shown', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await plainAgent();
  const cg = testCgroup(t, 'tfilter');
  const common = ['exec', '--agent', agent.url, '--cgroup', cg.path, '--output', 'json', '--timeout', '30'];
  const filtered = ['namespace', 'pod', 'container', 'workload'].map((f) => ({ flag: f, tr: trace([...common, `--${f}`, 'periscope-no-such-thing']) }));
  const unfiltered = trace([...common, '--count', '1']);
  await streams(agent, 5);
  await cg.run('exec /bin/echo trace-filter-marker >/dev/null');
  const seen = await unfiltered.done;
  assert.equal(seen.code, 0, seen.stderr);
  assert.match(seen.stdout, /trace-filter-marker/, 'the exec was streamed');
  await new Promise((r) => setTimeout(r, 500)); // the same event went to every subscriber at once
  for (const { flag, tr } of filtered) {
    tr.child.kill('SIGINT');
    const r = await tr.done;
    assert.equal(r.stdout, '', `--${flag}: nothing shown`);
    assert.equal(r.stderr, '', `--${flag}: Ctrl-C ends it quietly`);
    assert.equal(r.signal, 'SIGINT');
  }
});

test('a closed pipe (| head) ends the trace quietly with 0', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await plainAgent();
  const cg = testCgroup(t, 'tpipe');
  const piped = run('bash', ['-c', `${BIN} trace exec --agent ${agent.url} --cgroup ${cg.path} 2>&1 | head -2; echo "status \${PIPESTATUS[0]}"`]);
  await streams(agent, 1);
  // the header, then rows until the pipe is found closed
  const script = 'for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done';
  const r = await eventually(async () => {
    await cg.run(script);
    return Promise.race([piped, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 500))]);
  }, 20_000, 'the trace to end');
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 3, r.stdout);
  assert.match(lines[0]!, /^TIME +NAMESPACE\/POD/);
  assert.equal(lines[2], 'status 0', 'no EPIPE error, exit 0');
});

test('without the token, or with a wrong one, the agent says 401 and the trace says to pass --token-file; with it the events come', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent(['--token-file', tokenFile()]);
  t.after(() => agent.stop());
  const none = oneError(await trace(['exec', '--agent', agent.url, '--timeout', '10']).done);
  assert.equal(none.error, `the agent at ${agent.url} refused the request (401 Unauthorized): this agent needs a bearer token`);
  assert.match(none.fix, /^pass --token-file FILE with the agent's token \(or set \$PERISCOPE_TOKEN_FILE\)$/);
  const wrongFile = tokenFile('not-the-token-of-this-agent');
  const wrong = oneError(await trace(['exec', '--agent', agent.url, '--token-file', wrongFile, '--timeout', '10']).done);
  assert.equal(wrong.error, `the agent at ${agent.url} refused the request (401 Unauthorized): the bearer token is wrong`);
  assert.equal(wrong.fix, `the token in --token-file ${wrongFile} is not the agent's: pass --token-file with the file the agent was given`);
  const last = oneError(await trace(['exec', '--agent', agent.url, '--last', '5', '--timeout', '10']).done);
  assert.match(last.error, /refused the request \(401 Unauthorized\)/, '--last asks the events API first: the same message');

  // the agent and the token from the environment
  const cg = testCgroup(t, 'ttoken');
  const before = await lastSeq(agent, TOKEN);
  await cg.run('exec /bin/echo trace-token-marker >/dev/null');
  const exec = await echoed(agent, cg, 'trace-token-marker', TOKEN);
  const ok = await trace(['exec', '--since-seq', String(before), '--cgroup', cg.path, '--count', '1', '-o', 'json', '--timeout', '30'], {
    PERISCOPE_AGENT: agent.url,
    PERISCOPE_TOKEN_FILE: tokenFile(),
  }).done;
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal((JSON.parse(ok.stdout) as ExecEvent).pid, exec.pid);
});

test('an HTTPS agent: --ca-file trusts it; without it the certificate is not trusted, and http:// is refused with the fix', async (t) => {
  if (!needsKernel(t)) return;
  const certs = await makeCertificates();
  const agent = await startAgent(['--token-file', tokenFile(), '--tls-cert', certs.certFile, '--tls-key', certs.keyFile]);
  t.after(() => agent.stop());
  assert.match(agent.url, /^https:/);
  const cg = testCgroup(t, 'ttls');
  const tr = trace(['exec', '--agent', agent.url, '--ca-file', certs.caFile, '--token-file', tokenFile(), '--cgroup', cg.path, '--count', '1', '--timeout', '30']);
  await streams(agent, 1, TOKEN, certs.ca);
  await cg.run('exec /bin/echo trace-tls-marker >/dev/null');
  const r = await tr.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\n.* exec .*\/bin\/echo trace-tls-marker\n$/);

  const untrusted = oneError(await trace(['exec', '--agent', agent.url, '--token-file', tokenFile(), '--timeout', '10']).done);
  assert.equal(untrusted.error, `the agent at ${agent.url} has a certificate this command does not trust: unable to verify the first certificate`);
  assert.equal(untrusted.fix, "pass --ca-file with the CA that signed the agent's --tls-cert");
  const plain = oneError(await trace(['exec', '--agent', agent.url.replace('https:', 'http:'), '--timeout', '10']).done);
  assert.equal(plain.error, `the agent at ${agent.url.replace('https:', 'http:')} closed the connection without an answer`);
  assert.equal(plain.fix, 'if the agent serves HTTPS (--tls-cert), use an https:// URL');
});

test('an agent at its stream limit (503) says retry later; a kind the agent does not serve is named', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent(['--max-stream-clients', '0', '--collectors', 'process']);
  t.after(() => agent.stop());
  const full = oneError(await trace(['exec', '--agent', agent.url, '--timeout', '10']).done);
  assert.equal(full.error, `the agent at ${agent.url} serves no more live streams (503): 0 live streams are open, the most this agent serves`);
  assert.equal(full.fix, "retry later (in 10 s or more), or raise the agent's --max-stream-clients");
  const replay = await trace(['exec', '--agent', agent.url, '--last', '5', '--timeout', '10']).done;
  assert.equal(oneError(replay).error, full.error, '--last: refused before anything is printed');
  assert.equal(replay.stdout, '');
  for (const args of [['oom'], ['oom', '--last', '10']]) {
    const missing = oneError(await trace([...args, '--agent', agent.url, '--timeout', '10']).done);
    assert.match(missing.error, new RegExp(`^the agent at ${agent.url} does not serve oom events \\(oom_kill\\): unknown event type "oom_kill"`), args.join(' '));
    assert.match(missing.fix, /collector that makes them is not running there/);
  }
});

test('a stream the agent ends is an error that says how to go on without a gap', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent();
  t.after(() => agent.stop());
  const cg = testCgroup(t, 'tended');
  const tr = trace(['exec', '--agent', agent.url, '--cgroup', cg.path, '--output', 'json']);
  await streams(agent, 1);
  await cg.run('exec /bin/echo trace-ended-marker >/dev/null');
  const exec = await echoed(agent, cg, 'trace-ended-marker');
  await eventually(() => (tr.stdout().includes('trace-ended-marker') ? true : undefined), 10_000, 'the exec on the trace');
  const lastLine = await eventually(() => {
    const lines = tr.stdout().trimEnd().split('\n');
    return lines.length >= 2 ? lines[lines.length - 1] : undefined; // the exec and its exit
  }, 10_000, 'the exit');
  const seq = (JSON.parse(lastLine) as { seq: number; pid: number }).seq;
  assert.equal((JSON.parse(lastLine) as { pid: number }).pid, exec.pid);
  await agent.stop();
  const r = oneError(await tr.done);
  assert.match(r.error, new RegExp(`^the agent at ${agent.url} ended the stream( \\(\\w+\\))? after 2 events$`));
  assert.match(r.fix, new RegExp(`run it again with --since-seq ${seq} to go on after the last event shown$`));
});

// ----------------------------------------------------------------------------------------------
// Without an agent

test('an unreachable agent is one line naming it, and the fix', async () => {
  const port = await freePort(); // closed again: nothing listens there
  const r = oneError(await trace(['exec', '--agent', `http://127.0.0.1:${port}`, '--timeout', '10']).done);
  assert.equal(r.error, `cannot reach the agent at http://127.0.0.1:${port}: connection refused`);
  assert.equal(r.fix, 'start it (periscope agent), or point --agent (or $PERISCOPE_AGENT) at where it listens');
  const env = oneError(await trace(['exec', '--timeout', '10'], { PERISCOPE_AGENT: `127.0.0.1:${port}` }).done);
  assert.equal(env.error, `cannot reach the agent at http://127.0.0.1:${port}: connection refused`, '$PERISCOPE_AGENT, a bare HOST:PORT');
});

test('usage mistakes are one line: no kind, an unknown kind, --output, --count, --since-seq with --last, a URL, a token file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-trace-'));
  writeFileSync(join(dir, 'empty'), '\n');
  const cases: [string[], string][] = [
    [[], 'say what to trace: exec, oom, tcp, dns, drop, l7'],
    [['--output', 'json'], 'say what to trace: exec, oom, tcp, dns, drop, l7'],
    [['tcpdump'], 'cannot trace "tcpdump": choose one of exec, oom, tcp, dns, drop, l7'],
    [['constructor'], 'cannot trace "constructor": choose one of exec, oom, tcp, dns, drop, l7'],
    [['exec', '-o', 'yaml'], '--output wants table or json, not "yaml"'],
    [['exec', 'dns'], 'unexpected argument "dns": this command takes only --flags'],
    [['exec', '--count', '0'], '--count must be between 1 and 9007199254740991, not 0'],
    [['exec', '--timeout', 'soon'], '--timeout wants seconds, not "soon"'],
    [['exec', '--since-seq', '-1'], '--since-seq must be between 0 and 9007199254740991, not -1'],
    [['exec', '--since-seq', '5', '--last', '5'], '--since-seq and --last both say where to start: give one'],
    [['exec', '--agent', 'ftp://node-1'], '--agent wants the agent\'s URL, such as http://127.0.0.1:9464 or https://node-1:9464, not "ftp://node-1"'],
    [['exec', '--token-file', join(dir, 'missing')], `--token-file ${join(dir, 'missing')}: ENOENT`],
    [['exec', '--token-file', join(dir, 'empty')], `--token-file ${join(dir, 'empty')} holds no token`],
    [['exec', '--ca-file', join(dir, 'empty'), '--agent', 'https://127.0.0.1:1'], `--ca-file ${join(dir, 'empty')} holds no PEM certificate`],
  ];
  for (const [args, message] of cases) assert.equal(oneError(await trace(args).done).error, message, args.join(' '));
  const help = await trace(['--help']).done;
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: periscope trace exec\|oom\|tcp\|dns\|drop\|l7 \[flags\]/);
  for (const flag of ['--agent', '--hub', '--token-file', '--ca-file', '--namespace', '--pod', '--container', '--workload', '--output', '--count', '--timeout', '--since-seq']) {
    assert.match(help.stdout, new RegExp(`^ {2}(-o, )?${flag}\\b`, 'm'), flag);
  }
});

/** A stand-in for the hub: serves the stream route as the agent does, with `events` as its first messages. */
async function sseHub(t: TestContext, answer: (res: ServerResponse) => void): Promise<{ url: string; asked: URL[] }> {
  const asked: URL[] = [];
  const server = createServer((req, res) => {
    asked.push(new URL(req.url ?? '/', 'http://hub'));
    answer(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, asked };
}

const HUB_EVENT = { ...{ seq: 9, time: '2026-01-02T03:04:05.678Z', node: 'n2', cgroup: '/x', namespace: 'shop', pod: 'cart', type: 'exec' }, pid: 7, ppid: 1, args: ['/bin/true'] };

test('--hub: the stream is read from the hub (the same route and filters), from the flag or $PERISCOPE_HUB', async (t) => {
  const hub = await sseHub(t, (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`: keep-alive\n\nid: 9\nevent: exec\ndata: ${JSON.stringify(HUB_EVENT)}\n\n`);
  });
  const r = await trace(['exec', '--hub', hub.url, '--namespace', 'shop', '--count', '1', '-o', 'json', '--timeout', '10']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${JSON.stringify(HUB_EVENT)}\n`);
  assert.equal(hub.asked[0]!.pathname, '/api/v1/events/stream');
  assert.equal(hub.asked[0]!.searchParams.get('type'), KINDS.exec!.types.join(','));
  assert.equal(hub.asked[0]!.searchParams.get('namespace'), 'shop');
  const env = await trace(['exec', '--count', '1', '--timeout', '10'], { PERISCOPE_HUB: hub.url, PERISCOPE_AGENT: 'http://127.0.0.1:1' }).done;
  assert.equal(env.code, 0, env.stderr);
  assert.match(env.stdout, /^TIME +NAMESPACE\/POD .*\n.* shop\/cart +exec +7 +1 .*\/bin\/true\n$/);
  assert.equal(hub.asked.length, 2, '$PERISCOPE_HUB is taken over $PERISCOPE_AGENT');
});

test('--hub: its failures name the hub', async (t) => {
  const refusing = await sseHub(t, (res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"this hub needs a bearer token"}'));
  const denied = oneError(await trace(['exec', '--hub', refusing.url, '--timeout', '10']).done);
  assert.equal(denied.error, `the hub at ${refusing.url} refused the request (401 Unauthorized): this hub needs a bearer token`);
  assert.equal(denied.fix, "pass --token-file FILE with the hub's token (or set $PERISCOPE_TOKEN_FILE)");
  const ending = await sseHub(t, (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(`data: ${JSON.stringify(HUB_EVENT)}\n\n`);
  });
  const ended = oneError(await trace(['exec', '--hub', ending.url, '-o', 'json', '--timeout', '10']).done);
  assert.match(ended.error, new RegExp(`^the hub at ${ending.url} ended the stream( \\(\\w+\\))? after 1 event$`));
  assert.match(ended.fix, /^the hub stopped or restarted, or dropped this client for not keeping up: run it again with --since-seq 9 /);
  const port = await freePort();
  const gone = oneError(await trace(['exec', '--hub', `http://127.0.0.1:${port}`, '--timeout', '10']).done);
  assert.equal(gone.error, `cannot reach the hub at http://127.0.0.1:${port}: connection refused`);
  assert.equal(gone.fix, 'start the hub, or point --hub (or $PERISCOPE_HUB) at where it listens');
  const both = oneError(await trace(['exec', '--hub', 'http://a:1', '--agent', 'http://b:2']).done);
  assert.equal(both.error, '--agent and --hub both say where to connect: give one');
  const url = oneError(await trace(['exec', '--hub', 'ftp://hub']).done);
  assert.equal(url.error, '--hub wants the hub\'s URL, such as http://periscope-hub:9465 or https://hub.example:9465, not "ftp://hub"');
});

test('the kind is found wherever it stands among the flags', () => {
  assert.deepEqual(splitKind(['exec', '-o', 'json']), { kind: 'exec', rest: ['-o', 'json'] });
  assert.deepEqual(splitKind(['-o', 'json', 'exec']), { kind: 'exec', rest: ['-o', 'json'] });
  assert.deepEqual(splitKind(['--namespace', 'tcp', 'dns']), { kind: 'dns', rest: ['--namespace', 'tcp'] });
  assert.deepEqual(splitKind(['--namespace=tcp', 'dns', '--count', '3']), { kind: 'dns', rest: ['--namespace=tcp', '--count', '3'] });
  assert.deepEqual(splitKind(['--count', '3']), { kind: undefined, rest: ['--count', '3'] });
});

// ----------------------------------------------------------------------------------------------
// The table

const envelope = {
  seq: 7,
  time: '2026-01-02T03:04:05.678Z',
  node: 'n1',
  cgroup: '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-0123456789abcdef.scope',
  cgroup_id: 42,
  namespace: 'shop',
  pod: 'cart-7d9f5c6b8-x2x',
  container: 'app',
  workload_kind: 'Deployment',
  workload: 'cart',
};
const localTime = ((d: Date): string => `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:05.678`)(new Date(envelope.time));

/** The cells of a row, split on the two-space gaps between columns (no cell here holds two spaces). */
const cells = (row: string): string[] => row.trim().split(/ {2,}/);

test('tcp rows: the peer by name, else address and port; sizes, durations and rtt short; absent fields as -', () => {
  const tcp = KINDS.tcp!;
  assert.match(headerRow(tcp), /^TIME +NAMESPACE\/POD +TYPE +DIRECTION +PEER +SENT +RECV +DURATION +RTT +REASON$/);
  const close = { ...envelope, type: 'tcp_close', direction: 'outbound', local_addr: '10.0.0.5', local_port: 40112, peer_addr: '10.0.1.9', peer_port: 5432, peer_kind: 'pod', peer_namespace: 'db', peer_workload: 'postgres', peer: 'db/postgres', bytes_sent: 1536, bytes_received: 123, duration_ms: 1520.5, rtt_us: 250, retransmits: 0, reason: '' };
  assert.deepEqual(cells(tableRow(tcp, close)), [localTime, 'shop/cart-7d9f5c6b8-x2x', 'tcp_close', 'outbound', 'db/postgres', '1.5Ki', '123', '1.52s', '250us', '-']);
  const fail = { ...envelope, namespace: '', pod: '', type: 'tcp_fail', direction: 'outbound', peer_addr: 'fd00::1', peer_port: 443, reason: 'refused', rtt_us: null };
  assert.deepEqual(cells(tableRow(tcp, fail)), [localTime, '…kubepods-burstable-pod1234.slice/cri-containerd-0123456789abcdef.scope'.slice(-40).replace(/^./, '…'), 'tcp_fail', 'outbound', '[fd00::1]:443', '-', '-', '-', '-', 'refused']);
  // every row is as wide as the header up to the last column: columns line up
  const header = headerRow(tcp);
  for (const row of [tableRow(tcp, close), tableRow(tcp, fail)]) assert.equal(row.lastIndexOf('  ') + 2, header.indexOf('REASON'), row);
});

test('dns rows: the answers listed, a timeout in place of a latency', () => {
  const dns = KINDS.dns!;
  assert.match(headerRow(dns), /^TIME +NAMESPACE\/POD +QNAME +QTYPE +RCODE +LATENCY +ANSWERS$/);
  const answered = { ...envelope, type: 'dns', qname: 'db.shop.svc.cluster.local', qtype: 'A', rcode: 'NOERROR', answers: ['10.0.1.9', '10.0.1.10'], latency_ms: 0.42, timeout: false, peer_addr: '10.96.0.10' };
  assert.deepEqual(cells(tableRow(dns, answered)), [localTime, 'shop/cart-7d9f5c6b8-x2x', 'db.shop.svc.cluster.local', 'A', 'NOERROR', '420us', '10.0.1.9,10.0.1.10']);
  const timedOut = { ...answered, rcode: '', answers: [], latency_ms: null, timeout: true };
  assert.deepEqual(cells(tableRow(dns, timedOut)), [localTime, 'shop/cart-7d9f5c6b8-x2x', 'db.shop.svc.cluster.local', 'A', '-', 'timeout', '-']);
});

test('drop, exec and oom rows; long values cut with an ellipsis; control characters never reach the terminal', () => {
  const drop = { ...envelope, type: 'packet_drop', reason: 'netfilter_drop', protocol: 'tcp', src_addr: '10.0.1.9', src_port: 443, dst_addr: '10.0.1.7', dst_port: 51234 };
  assert.deepEqual(cells(tableRow(KINDS.drop!, drop)), [localTime, 'shop/cart-7d9f5c6b8-x2x', 'netfilter_drop', 'tcp', '10.0.1.9:443', '10.0.1.7:51234']);
  const oom = { ...envelope, type: 'oom_kill', pid: 4242, uid: 0, comm: 'hog', total_vm_bytes: 300 * 2 ** 20, victim_found: true };
  assert.deepEqual(cells(tableRow(KINDS.oom!, oom)), [localTime, 'shop/cart-7d9f5c6b8-x2x', '4242', '0', '300Mi', 'hog']);
  const exec = { ...envelope, type: 'exec', pid: 100, ns_pid: 1, ppid: 99, uid: 0, comm: 'sh', filename: '/bin/sh', args: ['sh', '-c', 'printf "\x1b[2J"', 'x'.repeat(300)], args_truncated: true };
  const row = tableRow(KINDS.exec!, exec);
  assert.doesNotMatch(row, /\p{Cc}/u);
  assert.match(row, /sh -c printf "\?\[2J" x+…$/);
  assert.equal(cells(row).at(-1)!.length, 160);
  const exit = { ...envelope, type: 'exit', pid: 100, ns_pid: 1, ppid: 99, uid: 0, comm: 'sh', exit_code: 0, signal: 9, signal_name: 'SIGKILL', core_dumped: false, lifetime_seconds: 2 };
  assert.deepEqual(cells(tableRow(KINDS.exec!, exit)), [localTime, 'shop/cart-7d9f5c6b8-x2x', 'exit', '100', '99', 'SIGKILL', 'sh']);
  assert.deepEqual(cells(tableRow(KINDS.exec!, { ...envelope, type: 'exec' })).slice(2), ['exec', '-', '-', '-', '-'], 'nothing known: -');
  assert.deepEqual(
    [0.0000004, 0.0025, 0.0125, 0.25, 0.9999, 1.52, 59.99, 125, 3 * 3600 + 7 * 60].map(duration),
    ['0us', '2.50ms', '12.5ms', '250ms', '1.00s', '1.52s', '1m00s', '2m05s', '3h07m'],
  );
  assert.deepEqual([0, 1023, 1024, 9.5 * 1024, 512 * 1024, 1023 * 2 ** 20, 5 * 2 ** 40].map(bytes), ['0', '1023', '1.0Ki', '9.5Ki', '512Ki', '1023Mi', '5.0Ti']);
});

test('the event stream parser takes events split anywhere, CRLF lines, comments and multi-line data', () => {
  const got: SseMessage[] = [];
  const p = new SseParser((m) => got.push(m));
  const text = 'retry: 2000\n\n: keep-alive\n\nid: 1\nevent: exec\ndata: {"a":1}\n\nid: 2\r\nevent: exit\r\ndata: {"b":\r\ndata: 2}\r\n\r\n';
  for (let i = 0; i < text.length; i += 3) p.feed(text.slice(i, i + 3));
  assert.deepEqual(got, [
    { id: '1', event: 'exec', data: '{"a":1}' },
    { id: '2', event: 'exit', data: '{"b":\n2}' },
  ]);
});
