/**
 * Helpers for tests that run against the real kernel: the gate that decides whether such a test can
 * run (root, BPF, BTF, cgroup2; under CI=true a missing one fails the test instead of skipping it),
 * throwaway cgroups in the real cgroup2 hierarchy, and running commands inside them.
 */
import { type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canUseBpf } from '../src/kernel/privilege.js';
import { NATIVE_PATH } from '../src/kernel/native.js';
import { cgroupIdOf, findCgroup2Mount } from '../src/inventory/cgroups.js';
import { supportedAlternatives, type ObjectSpec } from '../src/kernel/bpf-object.js';
import { release } from 'node:os';

function missing(): string | undefined {
  if (process.getuid?.() !== 0 && !canUseBpf()) return 'not root and no CAP_BPF/CAP_PERFMON';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel has no BTF';
  if (!existsSync(NATIVE_PATH)) return 'native binding not built (make build)';
  try {
    findCgroup2Mount();
  } catch {
    return 'no cgroup2 mount';
  }
  return undefined;
}

/** True when the test may use the kernel. Skips otherwise — except under CI=true, where it fails. */
export function needsKernel(t: TestContext): boolean {
  const why = missing();
  if (!why) return true;
  if (process.env.CI === 'true') assert.fail(`kernel test cannot run under CI: ${why}`);
  t.skip(`needs the kernel: ${why}`);
  return false;
}

let serial = 0;

/** A cgroup made for one test in the real cgroup2 hierarchy (and, on request, in cgroup v1 memory). */
export class TestCgroup {
  readonly path: string; // relative to the cgroup2 root
  readonly dir: string;
  readonly id: number;
  readonly memoryV1Dir: string | undefined;

  constructor(name: string, opts: { memoryLimitBytes?: number } = {}) {
    const root = findCgroup2Mount();
    this.path = `/periscope-test-${process.pid}-${++serial}-${name}`;
    this.dir = join(root, this.path);
    mkdirSync(this.dir);
    this.id = cgroupIdOf(this.dir);
    if (opts.memoryLimitBytes !== undefined) {
      this.memoryV1Dir = memoryLimitDir(this.path, opts.memoryLimitBytes, this.dir);
    }
  }

  /** Shell prelude that moves the shell into this cgroup (and its v1 memory twin). */
  get enter(): string {
    const files = [join(this.dir, 'cgroup.procs')];
    if (this.memoryV1Dir) files.push(join(this.memoryV1Dir, 'cgroup.procs'));
    return files.map((f) => `echo $$ > ${f}`).join(' && ');
  }

  /** Runs `script` with sh inside the cgroup: sh joins first, so its own exec is not counted there. */
  run(script: string, timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
    return run('sh', ['-c', `${this.enter} || exit 97\n${script}`], timeoutMs);
  }

  cpuStatUsageSeconds(): number {
    const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(this.dir, 'cpu.stat'), 'utf8'));
    assert.ok(m, 'cpu.stat has usage_usec');
    return Number(m[1]) / 1e6;
  }

  remove(): void {
    for (const dir of [this.dir, this.memoryV1Dir]) {
      if (!dir || !existsSync(dir)) continue;
      // processes may take a moment to leave after they exited
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    }
  }
}

/**
 * Where a memory limit can be set for a test: the cgroup2 directory itself when v2 has the memory
 * controller, else a twin directory in the v1 memory hierarchy (hybrid hosts like this one).
 */
function memoryLimitDir(path: string, bytes: number, v2dir: string): string | undefined {
  if (existsSync(join(v2dir, 'memory.max'))) {
    writeFileSync(join(v2dir, 'memory.max'), String(bytes));
    if (existsSync(join(v2dir, 'memory.swap.max'))) writeFileSync(join(v2dir, 'memory.swap.max'), '0');
    return undefined;
  }
  const v1 = '/sys/fs/cgroup/memory';
  assert.ok(existsSync(join(v1, 'memory.limit_in_bytes')), 'a memory controller (v2 or v1) is needed to cause an OOM kill');
  const dir = join(v1, path);
  mkdirSync(dir);
  writeFileSync(join(dir, 'memory.limit_in_bytes'), String(bytes));
  if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(bytes));
  return dir;
}

export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * `n` scaled to the kernel the test runs on: PERISCOPE_KERNEL_SCALE is 1 (or unset) on the host and
 * smaller in the QEMU matrix's guests (emulated CPUs are many times slower), so a test sizes its loops
 * and counts with `scaled(1000)` instead of a fixed 1000. Never less than `min`.
 */
export function scaled(n: number, min = 1): number {
  return Math.max(min, Math.round(n * Number(process.env.PERISCOPE_KERNEL_SCALE ?? 1)));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A C test helper built by `make build` (test/helpers/<name>.c). */
export function helper(name: string): string {
  const path = fileURLToPath(new URL(`../../build/test-helpers/${name}`, import.meta.url));
  assert.ok(existsSync(path), `${path} is built by make build`);
  return path;
}

/** Polls `fn` until it returns a value (not undefined) or the time is up. */
export async function eventually<T>(fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 5_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Whether the running kernel is at least major.minor. */
export function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = release().split('.').map(Number) as [number, number];
  return a > major || (a === major && b >= minor);
}

/**
 * Every alternative of a collector this kernel supports: tests run each, not only the one the agent
 * would take. Where the kernel cannot be probed, the first; the test's kernel gate says why.
 */
export function alternativesHere(spec: ObjectSpec<string>): string[] {
  try {
    return supportedAlternatives(spec);
  } catch {
    return [spec.alternatives[0]!.name];
  }
}
