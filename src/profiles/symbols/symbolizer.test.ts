/** The symbolizer against live processes: C programs built here (PIE, non-PIE, static, a shared
 * library, stripped, with a debug file, deleted, in a chroot and a pid namespace) and Node with
 * --perf-basic-prof, each printing where its functions are, read through their real /proc/PID. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, openSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Symbolizer } from './symbolizer.js';
import { readElfInfo } from './elf.js';

const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/profile/', import.meta.url));
const CFLAGS = ['-O0', '-fno-omit-frame-pointer', '-Wl,--build-id'];
const NODE = process.execPath;

let dir = '';
const children: ChildProcess[] = [];
const extraPids: number[] = [];
const cleanups: string[] = [];

function cc(out: string, ...args: string[]): string {
  const path = join(dir, out);
  execFileSync('cc', [...CFLAGS, ...args, '-o', path]);
  return path;
}

/** The value nm gives a symbol of a file (its vaddr in the file's own address space). */
function nmValue(file: string, name: string, dynamic = false): number {
  const out = execFileSync('nm', [...(dynamic ? ['-D'] : []), '--defined-only', file], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const [v, , n] = line.split(' ');
    if (n?.replace(/@.*/, '') === name) return parseInt(v!, 16);
  }
  throw new Error(`nm: no ${name} in ${file}`);
}

interface Running {
  pid: number;
  at: Map<string, bigint>;
}

/** Starts a program and waits for its `name 0xADDR` lines. */
function run(cmd: string, args: readonly string[], keys: readonly string[], env?: NodeJS.ProcessEnv): Promise<Running> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env: env ? { ...process.env, ...env } : process.env });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} printed only ${JSON.stringify(out)}`)), 10_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const at = new Map<string, bigint>();
      for (const line of out.split('\n')) {
        const m = /^(\w+) (0x[0-9a-f]+)$/.exec(line);
        if (m) at.set(m[1]!, BigInt(m[2]!));
      }
      if (keys.every((k) => at.has(k))) {
        clearTimeout(timer);
        resolve({ pid: child.pid!, at });
      }
    });
    child.on('error', reject);
  });
}

const addr = (r: Running, key: string): bigint => r.at.get(key)!;

/** burn.c built -static, to run where no libc is (a chroot) */
function staticBin(): string {
  const path = join(dir, 'burn-static');
  return existsSync(path) ? path : cc('burn-static', '-static', join(FIXTURES, 'burn.c'));
}

let pie = '';
let nopie = '';
let pieRun: Running;
let nopieRun: Running;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'periscope-symbols-'));
  pie = cc('burn-pie', '-fpie', '-pie', join(FIXTURES, 'burn.c'));
  nopie = cc('burn-nopie', '-no-pie', join(FIXTURES, 'burn.c'));
  pieRun = await run(pie, [], ['burn_a', 'jit']);
  nopieRun = await run(nopie, [], ['burn_a', 'jit']);
});

after(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const pid of extraPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const f of cleanups) rmSync(f, { force: true });
  rmSync(dir, { recursive: true, force: true });
});

test('names the functions of a PIE program at their first byte and inside them', () => {
  const s = new Symbolizer();
  for (const name of ['burn_a', 'burn_b', 'main']) {
    assert.deepEqual(s.user(pieRun.pid, [addr(pieRun, name)]), [name]);
    assert.deepEqual(s.user(pieRun.pid, [addr(pieRun, name) + 10n]), [name]);
  }
  // a PIE is loaded far from its link address: the load bias was really applied
  assert.ok(addr(pieRun, 'burn_a') > 0x10000000n);
});

test('names the functions of a non-PIE program the same way', () => {
  const s = new Symbolizer();
  assert.equal(Number(addr(nopieRun, 'burn_a')), nmValue(nopie, 'burn_a'));
  for (const name of ['burn_a', 'burn_b', 'main']) assert.deepEqual(s.user(nopieRun.pid, [addr(nopieRun, name) + 10n]), [name]);
});

test('looks return addresses up one byte earlier, so a call ending a function names that function', () => {
  const s = new Symbolizer();
  const b = addr(pieRun, 'burn_b');
  // as the leaf, burn_b's first byte is burn_b; as a return address it is the end of burn_a
  assert.deepEqual(s.user(pieRun.pid, [b, b]), ['burn_b', 'burn_a']);
});

test('names libc functions with the shared library load bias, from its debug file or its .dynsym', () => {
  // Debian's libc6-dbg puts libc's full symbol table under /usr/lib/debug/.build-id
  assert.deepEqual(new Symbolizer().user(pieRun.pid, [addr(pieRun, 'getpid') + 2n]), ['getpid']);
  assert.deepEqual(new Symbolizer({ debugDirs: [] }).user(pieRun.pid, [addr(pieRun, 'getpid') + 2n]), ['getpid']);
});

test('names the exported and local functions of a shared library, and the local one as lib+0xOFFSET once stripped', async () => {
  const libDir = join(dir, 'lib');
  const strippedDir = join(dir, 'lib-stripped');
  mkdirSync(libDir);
  mkdirSync(strippedDir);
  const lib = join(libDir, 'libsym.so');
  execFileSync('cc', [...CFLAGS, '-shared', '-fPIC', '-o', lib, join(FIXTURES, 'lib.c')]);
  copyFileSync(lib, join(strippedDir, 'libsym.so'));
  execFileSync('strip', ['--strip-unneeded', join(strippedDir, 'libsym.so')]);
  const prog = cc('uselib', '-fpie', '-pie', join(FIXTURES, 'uselib.c'), `-L${libDir}`, '-lsym');

  const full = await run(prog, [], ['lib_burn', 'lib_helper'], { LD_LIBRARY_PATH: libDir });
  const s = new Symbolizer();
  assert.deepEqual(s.user(full.pid, [addr(full, 'lib_burn') + 4n]), ['lib_burn']);
  assert.deepEqual(s.user(full.pid, [addr(full, 'lib_helper') + 4n]), ['lib_helper']);

  const stripped = await run(prog, [], ['lib_burn', 'lib_helper'], { LD_LIBRARY_PATH: strippedDir });
  const t = new Symbolizer();
  assert.deepEqual(t.user(stripped.pid, [addr(stripped, 'lib_burn') + 4n]), ['lib_burn']);
  const helper = nmValue(lib, 'lib_helper');
  assert.deepEqual(t.user(stripped.pid, [addr(stripped, 'lib_helper') + 4n]), [`libsym.so+0x${(helper + 4).toString(16)}`]);
  assert.equal(t.stats().unsymbolized, 1);
});

test('names the functions of a stripped program basename+0xVADDR, in the file\'s own address space (PIE and non-PIE)', async () => {
  for (const [src, flags] of [
    [pie, ['-fpie', '-pie']],
    [nopie, ['-no-pie']],
  ] as const) {
    const bin = cc(`${src.split('/').pop()}-stripped`, ...flags, join(FIXTURES, 'burn.c'));
    execFileSync('strip', [bin]);
    const r = await run(bin, [], ['burn_a']);
    const s = new Symbolizer();
    const base = nmValue(src, 'burn_a');
    const name = bin.split('/').pop()!;
    assert.deepEqual(s.user(r.pid, [addr(r, 'burn_a'), addr(r, 'burn_a') + 10n]), [`${name}+0x${base.toString(16)}`, `${name}+0x${(base + 9).toString(16)}`]);
  }
});

test('finds the symbols of a stripped program in a debug file under .build-id', async () => {
  const bin = cc('burn-debuglinked', '-fpie', '-pie', join(FIXTURES, 'burn.c'));
  const fd = openSync(bin, 'r');
  const buildId = readElfInfo(fd)!.buildId!;
  closeSync(fd);
  assert.equal(buildId, /Build ID: ([0-9a-f]+)/.exec(execFileSync('readelf', ['-n', bin], { encoding: 'utf8' }))![1]);
  const debugDir = join(dir, 'debug');
  mkdirSync(join(debugDir, '.build-id', buildId.slice(0, 2)), { recursive: true });
  execFileSync('objcopy', ['--only-keep-debug', bin, join(debugDir, '.build-id', buildId.slice(0, 2), `${buildId.slice(2)}.debug`)]);
  execFileSync('strip', [bin]);
  const r = await run(bin, [], ['burn_a']);

  assert.match(new Symbolizer({ debugDirs: [] }).user(r.pid, [addr(r, 'burn_a')])[0]!, /^burn-debuglinked\+0x/);
  const s = new Symbolizer({ debugDirs: [join(dir, 'nothing-here'), debugDir] });
  assert.deepEqual(s.user(r.pid, [addr(r, 'burn_a') + 10n, addr(r, 'burn_b') + 10n]), ['burn_a', 'burn_b']);
});

test('reads a deleted program through /proc/PID/map_files', async () => {
  const bin = cc('burn-deleted', '-fpie', '-pie', join(FIXTURES, 'burn.c'));
  const r = await run(bin, [], ['burn_a']);
  unlinkSync(bin);
  assert.match(readFileSync(`/proc/${r.pid}/maps`, 'utf8'), /burn-deleted \(deleted\)/);
  assert.deepEqual(new Symbolizer().user(r.pid, [addr(r, 'burn_b') + 10n]), ['burn_b']);
});

/**
 * Runs `prog` as a container does: in its own mount namespace whose root is `root` (pivot_root, so
 * the kernel names its files by their paths inside), optionally in its own pid namespace too.
 */
function containerRun(root: string, prog: string, keys: readonly string[], pidns: boolean): Promise<Running> {
  mkdirSync(join(root, 'old'), { recursive: true });
  const script = `mount --bind ${root} ${root} && cd ${root} && pivot_root . old && exec ${prog}`;
  return run('unshare', [...(pidns ? ['--pid', '--kill-child'] : []), '--mount', 'sh', '-c', script], keys);
}

/** The host pid of the process unshare started in its new pid namespace. */
function childOf(pid: number): number {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
  assert.equal(kids.length, 1);
  const kid = Number(kids[0]);
  extraPids.push(kid);
  return kid;
}

test('reads the program of a container through /proc/PID/root and parses a binary shared with the host once', async () => {
  const bin = staticBin();
  const root = join(dir, 'container');
  mkdirSync(root);
  const inside = `/periscope-burn-${process.pid}`;
  copyFileSync(bin, join(root, inside));
  execFileSync('chmod', ['755', join(root, inside)]);
  assert.ok(!existsSync(inside), 'the container path must not exist on the host');

  const c = await containerRun(root, inside, ['burn_a'], false);
  assert.match(readFileSync(`/proc/${c.pid}/maps`, 'utf8'), new RegExp(` ${inside}\n`));
  const host = await run(bin, [], ['burn_a']);
  const s = new Symbolizer();
  assert.deepEqual(s.user(c.pid, [addr(c, 'burn_a') + 10n]), ['burn_a']);
  assert.deepEqual(s.user(host.pid, [addr(host, 'burn_b') + 10n]), ['burn_b']);
  // two inodes, one build-id: one parsed file
  assert.equal(s.stats().files, 1);
});

test('names JIT code from the perf map inside the container, named by the pid in its namespace', async () => {
  const root = join(dir, 'pidns');
  mkdirSync(join(root, 'tmp'), { recursive: true });
  copyFileSync(staticBin(), join(root, 'burn'));
  const u = await containerRun(root, '/burn', ['jit'], true);
  const pid = childOf(u.pid);
  assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m);
  const jit = addr(u, 'jit');
  writeFileSync(join(root, 'tmp', 'perf-1.map'), `${jit.toString(16)} 40 LazyCompile:*hot /app/x.js:1\n${(jit + 0x40n).toString(16)} 20 Stub:CEntry\n`);
  const s = new Symbolizer();
  assert.deepEqual(s.user(pid, [jit + 0x10n, jit + 0x41n, jit + 0x200n]), ['LazyCompile:*hot /app/x.js:1', 'Stub:CEntry', '[unknown]']);
  assert.deepEqual(s.user(pid, [addr(u, 'main') + 4n]), ['main']);
});

test('rereads a perf map that grew, once a second', () => {
  let now = 1_000_000;
  const s = new Symbolizer({ now: () => now });
  const path = `/tmp/perf-${pieRun.pid}.map`;
  cleanups.push(path);
  const jit = addr(pieRun, 'jit');
  writeFileSync(path, `${jit.toString(16)} 100 first\n`);
  assert.deepEqual(s.user(pieRun.pid, [jit + 4n, jit + 0x104n]), ['first', '[unknown]']);
  appendFileSync(path, `${(jit + 0x100n).toString(16)} 100 second\n${(jit + 0x200n).toString(16)} 10 par`);
  assert.deepEqual(s.user(pieRun.pid, [jit + 0x104n]), ['[unknown]']);
  now += 1000;
  assert.deepEqual(s.user(pieRun.pid, [jit + 0x104n, jit + 0x204n]), ['second', '[unknown]']);
  // the half-written line is read once it is whole
  appendFileSync(path, `tial\n`);
  now += 1000;
  assert.deepEqual(s.user(pieRun.pid, [jit + 0x204n]), ['partial']);
  assert.equal(s.stats().perfMapEntries, 3);
});

test('names a Node function from its --perf-basic-prof map', async () => {
  const js = 'function periscopeHotLoop(n){let s=0;for(let i=0;i<n;i++)s+=i*i%7;return s}setInterval(()=>{for(let i=0;i<50;i++)periscopeHotLoop(2e4)},2)';
  const child = spawn(NODE, ['--perf-basic-prof', '-e', js], { stdio: 'ignore' });
  const path = `/tmp/perf-${child.pid}.map`;
  try {
    let line: string | undefined;
    for (let i = 0; i < 150 && !line; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if (existsSync(path)) line = readFileSync(path, 'utf8').split('\n').find((l) => l.includes('periscopeHotLoop'));
    }
    assert.ok(line, 'node wrote periscopeHotLoop to its perf map');
    const [start, size] = line.split(' ').map((h) => parseInt(h, 16));
    const name = new Symbolizer().user(child.pid!, [BigInt(start! + Math.floor(size! / 2))])[0]!;
    assert.match(name, /periscopeHotLoop/);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    rmSync(path, { force: true });
  }
});

test('rereads the maps when an address falls outside them, at most once a second', () => {
  // a /proc whose maps first lack libc, as if it were loaded later
  const fake = join(dir, 'proc');
  const pid = pieRun.pid;
  mkdirSync(join(fake, String(pid)), { recursive: true });
  symlinkSync(`/proc/${pid}/root`, join(fake, String(pid), 'root'));
  const real = readFileSync(`/proc/${pid}/maps`, 'utf8');
  writeFileSync(join(fake, String(pid), 'maps'), real.split('\n').filter((l) => !l.includes('libc')).join('\n'));
  let now = 5_000;
  const s = new Symbolizer({ procRoot: fake, now: () => now });
  const getpid = addr(pieRun, 'getpid') + 2n;
  assert.deepEqual(s.user(pid, [addr(pieRun, 'burn_a'), getpid]), ['burn_a', '[unknown]']);
  writeFileSync(join(fake, String(pid), 'maps'), real);
  now += 500;
  assert.deepEqual(s.user(pid, [getpid]), ['[unknown]']);
  now += 500;
  assert.deepEqual(s.user(pid, [getpid]), ['getpid']);
});

test('names vDSO functions from the image in the memory of the process', () => {
  const line = readFileSync(`/proc/${pieRun.pid}/maps`, 'utf8').split('\n').find((l) => l.endsWith('[vdso]'))!;
  const [start, end] = line.split(' ')[0]!.split('-').map((h) => BigInt(`0x${h}`));
  const addrs: bigint[] = [];
  for (let a = start!; a < end!; a += 16n) addrs.push(a);
  const s = new Symbolizer();
  const names = new Set(addrs.map((a) => s.user(pieRun.pid, [a])[0]));
  assert.ok([...names].some((n) => n?.includes('clock_gettime')), [...names].join(' '));
});

test('keeps at most maxFiles parsed files, counting evictions, with the same answers', () => {
  const s = new Symbolizer({ maxFiles: 1 });
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(s.user(pieRun.pid, [addr(pieRun, 'burn_a') + 3n]), ['burn_a']);
    assert.deepEqual(s.user(pieRun.pid, [addr(pieRun, 'getpid') + 2n]), ['getpid']);
  }
  const st = s.stats();
  assert.equal(st.files, 1);
  assert.equal(st.evictions, 5);
});

test('keeps at most maxSymbols symbols and maxProcesses processes', () => {
  const s = new Symbolizer({ maxSymbols: 50, maxProcesses: 1 });
  assert.deepEqual(s.user(pieRun.pid, [addr(pieRun, 'burn_a') + 3n, addr(pieRun, 'getpid') + 2n]), ['burn_a', 'getpid']);
  // libc alone holds more than 50 symbols: the program's table went, the last one parsed stays
  assert.equal(s.stats().files, 1);
  assert.ok(s.stats().symbols > 50);
  assert.deepEqual(s.user(nopieRun.pid, [addr(nopieRun, 'main') + 3n]), ['main']);
  assert.deepEqual(s.user(pieRun.pid, [addr(pieRun, 'main') + 3n]), ['main']);
  const st = s.stats();
  assert.equal(st.processes, 1);
  assert.ok(st.evictions >= 4, JSON.stringify(st));
});

test('names processes by comm, the last name once they are gone, and `pid N` when never seen', async () => {
  const bin = cc('short-lived', '-fpie', '-pie', join(FIXTURES, 'burn.c'));
  const r = await run(bin, [], ['burn_a']);
  let now = 0;
  const s = new Symbolizer({ now: () => now });
  assert.equal(s.processName(r.pid), 'short-lived');
  assert.equal(s.processName(pieRun.pid), 'burn-pie');
  const child = children.find((c) => c.pid === r.pid)!;
  const exited = new Promise((res) => child.once('exit', res));
  child.kill('SIGKILL');
  await exited;
  now += 2000;
  assert.equal(s.processName(r.pid), 'short-lived');
  s.forget([r.pid]);
  assert.equal(s.processName(r.pid), `pid ${r.pid}`);
  assert.deepEqual(s.user(r.pid, [addr(r, 'burn_a')]), ['[unknown]']);
  assert.equal(s.processName(2 ** 22 + 1), `pid ${2 ** 22 + 1}`);
});

test('names kernel addresses from /proc/kallsyms with the _[k] suffix', () => {
  const line = readFileSync('/proc/kallsyms', 'utf8').split('\n').find((l) => l.endsWith(' T schedule'))!;
  const at = BigInt(`0x${line.split(' ')[0]}`);
  const s = new Symbolizer();
  assert.deepEqual(s.kernel([at, at + 4n, 0x1234n]), ['schedule_[k]', 'schedule_[k]', '[unknown]_[k]']);
  assert.equal(s.stats().unsymbolized, 1);
});

test('symbolizes 10,000 libc addresses of a live process in well under a second', (t) => {
  const libc = /\s(\/\S*libc\.so\.6)$/m.exec(readFileSync(`/proc/${pieRun.pid}/maps`, 'utf8'))![1]!;
  const bias = addr(pieRun, 'getpid') - BigInt(nmValue(libc, 'getpid', true));
  // every address of an exported function of 8 bytes or more, with all the names it has
  const byValue = new Map<number, Set<string>>();
  const big = new Set<number>();
  for (const l of execFileSync('nm', ['-D', '-S', '--defined-only', libc], { encoding: 'utf8' }).split('\n')) {
    const [v, size, type, name] = l.split(' ');
    if (!name || !'TtWi'.includes(type!)) continue;
    const value = parseInt(v!, 16);
    if (!byValue.has(value)) byValue.set(value, new Set());
    byValue.get(value)!.add(name.replace(/@.*/, ''));
    if (parseInt(size!, 16) >= 8) big.add(value);
  }
  const values = [...big];
  assert.ok(values.length > 1000);
  const addrs = Array.from({ length: 10_000 }, (_, i) => bias + BigInt(values[i % values.length]!) + 4n);
  const s = new Symbolizer();
  const t0 = performance.now();
  const names = s.user(pieRun.pid, addrs);
  const first = performance.now() - t0;
  const t1 = performance.now();
  s.user(pieRun.pid, addrs);
  const again = performance.now() - t1;
  t.diagnostic(`10,000 libc addresses: ${first.toFixed(1)} ms cold (parsing libc), ${again.toFixed(1)} ms warm`);
  names.forEach((n, i) => assert.ok(byValue.get(values[i % values.length]!)!.has(n.replace(/@.*/, '')), `${n} at ${values[i % values.length]!.toString(16)}`));
  assert.ok(first < 2000 && again < 1000, `${first} ms, ${again} ms`);
});
