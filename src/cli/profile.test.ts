/**
 * `periscope profile` (bin/periscope, its own process) against a local server that answers
 * /api/v1/profiles as the agent and the hub do (the real query parser and sendProfile over a canned
 * profile) and records what it was asked: an agent is primed and then asked for the window after the
 * wait; the hub for the last N seconds at once; the selection reaches the server as given; -o writes the
 * pprof bytes; and every failure (no selection, bad --seconds, the server's 400, pprof to a terminal,
 * an answer that is not a profile) is one line and a fix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../../test/agent-process.js';
import { run } from '../../test/kernel.js';
import { ProfileBuilder, toFolded, type Profile } from '../profiles/model.js';
import { fromPprof } from '../profiles/pprof.js';
import { parseProfileQuery, sendProfile } from '../profiles/query.js';
import { HttpError } from '../server/http.js';

interface Ran {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** `periscope profile ARGS` with an environment of its own (no $PERISCOPE_* from outside). */
function profile(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PERISCOPE_')));
  const child = spawn(BIN, ['profile', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...clean, ...env } });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    }),
  );
}

/** The command failed with one line saying what is wrong and one with the fix; returns both. */
function oneError(r: Ran): { error: string; fix: string } {
  assert.equal(r.code, 1, r.stdout.toString() + r.stderr);
  assert.equal(r.stdout.length, 0, 'nothing on stdout');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `two lines, not:\n${r.stderr}`);
  assert.match(lines[0]!, /^periscope: /);
  assert.match(lines[1]!, /^ {2}fix: /);
  return { error: lines[0]!.replace(/^periscope: /, ''), fix: lines[1]!.replace(/^ {2}fix: /, '') };
}

const STACKS: [string[], number][] = [
  [['web', 'main', 'serve', 'burn_a'], 40],
  [['web', 'main', 'serve', 'read', 'vfs_read_[k]'], 7],
  [['web', 'main', 'libc.so.6+0x1a2b3'], 3],
];

function canned(from: number, to: number, stacks = STACKS): Profile {
  const b = new ProfileBuilder();
  for (const [frames, value] of stacks) b.add(frames, value);
  return b.build('cpu', from, to, 10_101_010);
}

interface Asked {
  /** when it arrived, ms since the epoch */
  at: number;
  params: URLSearchParams;
  authorization: string | undefined;
}

interface Stub {
  url: string;
  asked: Asked[];
  close(): Promise<void>;
}

/**
 * A server answering GET /api/v1/profiles as the agent and hub do: the real parser (a bad parameter is
 * a 400 with its error and hint) and sendProfile over `answer`'s profile.
 */
async function stub(answer: (q: ReturnType<typeof parseProfileQuery>) => Profile = (q) => canned(q.from, q.to), handle?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<Stub> {
  const asked: Asked[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    asked.push({ at: Date.now(), params: url.searchParams, authorization: req.headers.authorization });
    if (handle?.(req, res)) return;
    if (url.pathname !== '/api/v1/profiles') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    try {
      const q = parseProfileQuery(url.searchParams, Date.now());
      sendProfile(res, answer(q), q.format);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      res.writeHead(err.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message, hint: err.hint }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    asked,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const tmp = (): string => mkdtempSync(join(tmpdir(), 'periscope-profile-'));

test('from an agent: one priming query closes the window, then the next N seconds are fetched as folded text', async (t) => {
  const agent = await stub();
  t.after(() => agent.close());
  const r = await profile(['--agent', agent.url, '--pod', 'shop/web-1', '--seconds', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(agent.asked.length, 2);
  const [prime, last] = agent.asked as [Asked, Asked];

  assert.deepEqual(Object.fromEntries(prime.params), { type: 'cpu', pod: 'shop/web-1', from: '-1s', format: 'json', limit: '1' });

  const p = last.params;
  assert.deepEqual([p.get('type'), p.get('pod'), p.get('format'), p.get('limit')], ['cpu', 'shop/web-1', 'folded', null]);
  const from = Date.parse(p.get('from')!);
  const to = Date.parse(p.get('to')!);
  assert.match(p.get('from')!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.match(p.get('to')!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // the window begins after the priming answer and spans the second asked for
  assert.ok(from >= prime.at, `from ${p.get('from')} is after the priming query (${new Date(prime.at).toISOString()})`);
  assert.ok(to - from >= 1000 && to - from < 1800, `the window is ${to - from} ms`);
  assert.ok(last.at - prime.at >= 1000, `the second query came ${last.at - prime.at} ms after the first`);

  assert.equal(r.stdout.toString(), toFolded(canned(0, 1)));
  assert.match(r.stderr, /cpu profile of pod shop\/web-1 on the agent at http:\/\/127\.0\.0\.1:\d+ for 1 s/);
});

test('from the hub: the last N seconds at once, with no priming and no wait', async (t) => {
  const hub = await stub();
  t.after(() => hub.close());
  const started = Date.now();
  const r = await profile(['--hub', hub.url, '--workload', 'shop/checkout', '--container', 'app', '--type', 'offcpu', '--seconds', '1', '--output', 'json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(hub.asked.length, 1);
  assert.deepEqual(Object.fromEntries(hub.asked[0]!.params), { type: 'offcpu', workload: 'shop/checkout', container: 'app', from: '-1s', to: 'now', format: 'json' });
  assert.ok(Date.now() - started < 5000);
  const body = JSON.parse(r.stdout.toString()) as { stacks: { frames: string[]; value: number }[]; total: number };
  assert.equal(body.stacks.length, STACKS.length);
  assert.equal(body.total, 50);
});

test('the hub is asked for the last minute by default, and $PERISCOPE_HUB makes it the target', async (t) => {
  const hub = await stub();
  t.after(() => hub.close());
  const r = await profile(['--namespace', 'shop', '--cgroup', '/kubepods.slice', '--node', 'node-1', '--limit', '5'], { PERISCOPE_HUB: hub.url });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Object.fromEntries(hub.asked[0]!.params), {
    type: 'cpu',
    namespace: 'shop',
    cgroup: '/kubepods.slice',
    node: 'node-1',
    limit: '5',
    from: '-60s',
    to: 'now',
    format: 'folded',
  });
});

test('-o FILE.pb.gz writes the pprof the agent sent, with the token, and nothing to stdout', async (t) => {
  const agent = await stub();
  t.after(() => agent.close());
  const dir = tmp();
  const token = join(dir, 'token');
  writeFileSync(token, 'profile-test-token\n');
  const file = join(dir, 'cpu.pb.gz');
  const r = await profile(['--agent', agent.url, '--token-file', token, '--workload', 'checkout', '--namespace', 'shop', '--seconds', '1', '-o', file]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, 0);
  assert.equal(agent.asked.length, 2);
  for (const a of agent.asked) assert.equal(a.authorization, 'Bearer profile-test-token');
  assert.equal(agent.asked[1]!.params.get('format'), 'pprof', 'the file name implies pprof');
  assert.deepEqual([agent.asked[1]!.params.get('workload'), agent.asked[1]!.params.get('namespace')], ['checkout', 'shop']);

  const bytes = readFileSync(file);
  assert.deepEqual([...bytes.subarray(0, 2)], [0x1f, 0x8b]);
  const d = fromPprof(bytes);
  assert.deepEqual(
    d.stacks.map((s) => [s.frames, s.values[0]]),
    STACKS.map(([frames, value]) => [frames, value]),
  );
  assert.match(r.stderr, new RegExp(`wrote 3 stacks \\(pprof, ${bytes.length} bytes\\) to ${file.replace(/[.]/g, '\\.')}`));
});

test('pprof to stdout goes through a pipe, byte for byte', async (t) => {
  const hub = await stub();
  t.after(() => hub.close());
  const r = await profile(['--hub', hub.url, '--pod', 'web-1', '--output', 'pprof', '--seconds', '5']);
  assert.equal(r.code, 0, r.stderr);
  const d = fromPprof(r.stdout);
  assert.equal(d.stacks.length, STACKS.length);
  assert.deepEqual(d.sampleTypes.map((s) => s.unit), ['count', 'nanoseconds']);
});

test('pprof to a terminal without -o is refused before anything is asked', async (t) => {
  const hub = await stub();
  t.after(() => hub.close());
  // `script` gives the command a terminal for its stdout
  const r = await run('script', ['-qec', `${BIN} profile --hub ${hub.url} --pod web-1 --output pprof`, '/dev/null'], 30_000);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /periscope: pprof is binary and stdout is a terminal\r?\n {2}fix: write it to a file with -o, e\.g\. -o cpu\.pb\.gz/);
  assert.equal(hub.asked.length, 0);
});

test('without a selection it says what to give, and asks nothing', async (t) => {
  const agent = await stub();
  t.after(() => agent.close());
  for (const args of [[], ['--container', 'app'], ['--node', 'node-1']]) {
    const { error, fix } = oneError(await profile(['--agent', agent.url, ...args]));
    assert.equal(error, 'say what to profile: give --pod, --workload, --namespace or --cgroup');
    assert.match(fix, /periscope profile --pod NS\/NAME/);
  }
  assert.equal(agent.asked.length, 0);
});

test('--seconds must be a whole number from 1 to 3600, and the other flags are checked too', async (t) => {
  const agent = await stub();
  t.after(() => agent.close());
  const cases: [string[], RegExp][] = [
    [['--seconds', '0'], /--seconds must be between 1 and 3600, not 0/],
    [['--seconds', '3601'], /--seconds must be between 1 and 3600, not 3601/],
    [['--seconds', '-5'], /--seconds must be between 1 and 3600, not -5/],
    [['--seconds', 'ten'], /--seconds wants a whole number, not "ten"/],
    [['--type', 'memory'], /--type wants cpu, offcpu, runq, not "memory"/],
    [['--output', 'svg'], /--output wants folded, pprof or json, not "svg"/],
    [['--limit', '0'], /--limit must be between 1 and 100000/],
    [['-o', tmp()], /is a directory/],
    [['-o', '/nonexistent-dir/x.pb.gz'], /cannot write in \/nonexistent-dir \(ENOENT\)/],
  ];
  for (const [args, message] of cases) {
    const { error } = oneError(await profile(['--agent', agent.url, '--pod', 'web-1', ...args]));
    assert.match(error, message, args.join(' '));
  }
  assert.equal(agent.asked.length, 0);
});

test("the server's 400 comes through as its error and its hint", async (t) => {
  const agent = await stub();
  t.after(() => agent.close());
  const { error, fix } = oneError(await profile(['--agent', agent.url, '--pod', 'a/b/c']));
  assert.match(error, /^the agent at http:\/\/127\.0\.0\.1:\d+ refused the request \(400\): pod="a\/b\/c" is neither NAME nor NAMESPACE\/NAME$/);
  assert.equal(fix, 'give pod=NAME (with namespace=NS) or pod=NS/NAME');
  assert.equal(agent.asked.length, 1, 'it failed on the priming query, before waiting');
});

test('a 401 says to pass the token, a 404 that the server does not profile, a 500 passes its error', async (t) => {
  const answers: [number, string][] = [
    [401, '{"error":"missing bearer token"}'],
    [404, '{"error":"not found"}'],
    [500, '{"error":"the profile collector failed","hint":"see the agent log for its error"}'],
  ];
  let i = 0;
  const agent = await stub(undefined, (_req, res) => {
    const [status, body] = answers[i++]!;
    res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    return true;
  });
  t.after(() => agent.close());
  const args = ['--agent', agent.url, '--pod', 'web-1'];
  let e = oneError(await profile(args));
  assert.match(e.error, /refused the request \(401 Unauthorized\): missing bearer token/);
  assert.match(e.fix, /--token-file/);
  e = oneError(await profile(args));
  assert.match(e.error, /has no profiles API \(404\): not found/);
  assert.match(e.fix, /serves \/api\/v1\/profiles/);
  e = oneError(await profile(args));
  assert.match(e.error, /answered 500: the profile collector failed$/);
  assert.equal(e.fix, 'see the agent log for its error');
});

test('an answer that is not a profile is said as such, and -o then writes nothing', async (t) => {
  const hub = await stub(undefined, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('<html>hello</html>');
    return true;
  });
  t.after(() => hub.close());
  const file = join(tmp(), 'x.pb.gz');
  const { error, fix } = oneError(await profile(['--hub', hub.url, '--pod', 'web-1', '-o', file]));
  assert.match(error, /^the hub at http:\/\/127\.0\.0\.1:\d+ answered \/api\/v1\/profiles with a body that is not pprof: not a pprof profile/);
  assert.match(fix, /point --hub \(or \$PERISCOPE_HUB\) at a periscope hub/);
  assert.equal(existsSync(file), false);
});

test('an empty profile is written as it is, with a note on stderr', async (t) => {
  const hub = await stub((q) => canned(q.from, q.to, []));
  t.after(() => hub.close());
  const r = await profile(['--hub', hub.url, '--pod', 'web-1', '--type', 'runq', '--seconds', '30']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, 0);
  assert.match(r.stderr, /no stacks: nothing of pod web-1 was waiting for a CPU in the last 30 s the hub holds/);
});
