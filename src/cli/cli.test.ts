import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, needsKernel } from '../../test/kernel.js';
import { BIN } from '../../test/agent-process.js';

test('bad flags get a clear error', async () => {
  const r = await run(BIN, ['agent', '--listen', 'nonsense']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--listen wants HOST:PORT, not "nonsense"/);
  const u = await run(BIN, ['frobnicate']);
  assert.equal(u.code, 1);
  assert.match(u.stderr, /unknown command "frobnicate"/);
  const h = await run(BIN, ['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^usage: periscope/);
});

/** The command failed with one line saying what is wrong and one with the fix; returns the first. */
function oneError(r: { code: number | null; stdout: string; stderr: string }): string {
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `two lines, not:\n${r.stderr}`);
  assert.match(lines[1]!, /^ {2}fix: /);
  return lines[0]!.replace(/^periscope: /, '');
}

test('--help on every subcommand prints its usage and exits 0; periscope --help lists the commands', async () => {
  for (const [args, usage] of [
    [['agent', '--help'], /^usage: periscope agent \[flags\]/],
    [['agent', '-h'], /^usage: periscope agent \[flags\]/],
    [['agent', '--grace', '5', '--help'], /^usage: periscope agent \[flags\]/],
    [['doctor', '--help'], /^usage: periscope doctor/],
    [['trace', '--help'], /^usage: periscope trace/],
    [['trace', 'exec', '--help'], /^usage: periscope trace/],
    [['version', '--help'], /^usage: periscope version/],
    [['--help'], /^usage: periscope <command>/],
    [['help'], /^usage: periscope <command>/],
    [[], /^usage: periscope <command>/],
  ] as const) {
    const r = await run(BIN, [...args]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stdout, usage, args.join(' '));
    assert.equal(r.stderr, '', args.join(' '));
  }
  const top = await run(BIN, ['--help']);
  for (const command of ['agent', 'doctor', 'trace', 'version']) assert.match(top.stdout, new RegExp(`^ {2}${command} `, 'm'));
  const agent = await run(BIN, ['agent', '--help']);
  for (const flag of ['--listen', '--node', '--grace', '--max-cgroups', '--max-series', '--token-file', '--metrics-open', '--tls-cert', '--tls-key', '--allow-unauthenticated', '--max-stream-clients', '--secret-keys', '--no-exec-args']) {
    assert.match(agent.stdout, new RegExp(`^ {2}${flag}\\b`, 'm'), flag);
  }
  const version = await run(BIN, ['version']);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('negative and malformed numbers get a clear error naming the flag, its range and the value', async () => {
  const cases: [string[], string][] = [
    [['--grace', '-5'], '--grace must be between 0 and 604800 seconds, not -5'],
    [['--grace=-5'], '--grace must be between 0 and 604800 seconds, not -5'],
    [['--grace', 'soon'], '--grace wants seconds, not "soon"'],
    [['--max-cgroups', '-1'], '--max-cgroups must be between 1 and 1048576, not -1'],
    [['--max-cgroups', '0x10'], '--max-cgroups wants a whole number, not "0x10"'],
    [['--max-cgroups', '1.5'], '--max-cgroups wants a whole number, not "1.5"'],
    [['--max-series', '-1'], '--max-series must be between 1 and 10000000, not -1'],
    [['--max-stream-clients', '-1'], '--max-stream-clients must be between 0 and 10000, not -1'],
    [['--listen', '127.0.0.1:99999'], '--listen: port 99999 is out of range (0-65535)'],
  ];
  for (const [args, message] of cases) assert.equal(oneError(await run(BIN, ['agent', ...args])), message, args.join(' '));
});

test('parse errors name the flag and say what is wrong, not how the parser works', async () => {
  const cases: [string[], string][] = [
    [['agent', '--node'], '--node needs a value'],
    [['agent', '--node', '--grace', '5'], '--node needs a value (to give one that begins with a dash, write --node=VALUE)'],
    [['agent', '--metrics-open=yes'], '--metrics-open takes no value'],
    [['agent', '--bogus'], 'unknown flag --bogus'],
    [['agent', 'extra'], 'unexpected argument "extra": this command takes only --flags'],
    [['doctor', '-o'], '--output needs a value'],
    [['version', 'now'], 'unexpected argument "now": this command takes only --flags'],
  ];
  for (const [args, message] of cases) assert.equal(oneError(await run(BIN, args)), message, args.join(' '));
});

test('an empty --node is refused with one line', async () => {
  for (const args of [['--node', ''], ['--node='], ['--node', '  ']]) {
    assert.equal(oneError(await run(BIN, ['agent', ...args])), '--node is empty: give the node name series carry', JSON.stringify(args));
  }
});

test('an oversized --max-cgroups is refused in one line before anything is loaded: libbpf says nothing', async (t) => {
  if (!needsKernel(t)) return;
  const r = await run(BIN, ['agent', '--listen', '127.0.0.1:0', '--max-cgroups', '100000000']);
  assert.equal(oneError(r), '--max-cgroups must be between 1 and 1048576, not 100000000');
  assert.doesNotMatch(r.stderr, /libbpf|collector|BPF/);
  assert.equal(r.stdout, '');
});
