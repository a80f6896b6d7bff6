/**
 * What the benchmarks of bench/run.ts and bench/l7-load.ts share: a process's CPU and RSS from /proc,
 * the agent's metrics, the machine's busy time, and nginx (one worker on CPU 0) with wrk (CPU 1) in a
 * network namespace of their own.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { TestCgroup, eventually, run } from '../test/kernel.js';
import { sample, type RunningAgent } from '../test/agent-process.js';
import { inCgroup } from '../test/servers.js';

const TICK = 100; // USER_HZ: /proc/PID/stat times are in 1/100 s on Linux

export interface ProcSample {
  cpuSeconds: number;
  rssBytes: number;
  at: number;
}

export function procSample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / TICK;
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds, rssBytes: Number(rss?.[1] ?? 0) * 1024, at: Date.now() };
}

/** A process's CPU between two samples, in percent of one core. */
export const cpuPercent = (a: ProcSample, b: ProcSample): number => (100 * (b.cpuSeconds - a.cpuSeconds)) / ((b.at - a.at) / 1000);

export async function scrape(agent: RunningAgent): Promise<string> {
  return (await fetch(`${agent.url}/metrics`)).text();
}

/** The sum of a metric's samples that have these labels (others ignored). */
export const sum = (text: string, name: string, labels: Record<string, string> = {}): number => {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const v = sample(line, name, labels);
    if (v !== undefined) total += v;
  }
  return total;
};

export const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / Math.max(1, xs.length);
/** max − min in percent of the mean */
export const spread = (xs: number[]): number => (100 * (Math.max(...xs) - Math.min(...xs))) / mean(xs);

/** Busy seconds since boot (user, nice, system, irq, softirq, steal) of all CPUs together, or of
 * CPU `cpu`. */
export function machineBusySeconds(cpu?: number): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(cpu === undefined ? 'cpu ' : `cpu${cpu} `))!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / TICK;
}

/** A single-threaded process's CPU seconds, exact (the scheduler's sum_exec_runtime): /proc/PID/stat
 * counts whole ticks (4 ms at HZ=250), which at 25% busy over 10 s is ±6%. */
export function threadCpuSeconds(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
}

export interface Nginx {
  ns: string;
  dir: string;
  port: number;
  master: number;
  worker: number;
}

/**
 * A network namespace made for the run with nginx's master and its one worker in it (CPU 0, in
 * `cgroup` when given), listening on 127.0.0.1:8080 (the namespace is new: nothing else listens in
 * it); `fn` runs against it, then everything goes.
 */
export async function withNginx<T>(fn: (nginx: Nginx) => Promise<T>, cgroup?: TestCgroup): Promise<T> {
  const ns = `periscope-bench-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'periscope-bench-nginx-'));
  const port = 8080;
  await run('ip', ['netns', 'add', ns]);
  try {
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const nginx = await startNginx(ns, dir, port, cgroup);
    try {
      return await fn({ ns, dir, port, master: nginx.master, worker: nginx.worker });
    } finally {
      await nginx.stop();
    }
  } finally {
    await run('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function startNginx(ns: string, dir: string, port: number, cgroup?: TestCgroup): Promise<{ master: number; worker: number; stop: () => Promise<void> }> {
  chmodSync(dir, 0o755); // the worker runs as nobody
  mkdirSync(join(dir, 'www'));
  writeFileSync(join(dir, 'www', 'index.html'), `<html><body>${'periscope '.repeat(60)}</body></html>\n`); // ~640 bytes
  mkdirSync(join(dir, 'tmp'));
  writeFileSync(join(dir, 'close.lua'), 'wrk.headers["Connection"] = "close"\n');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
worker_cpu_affinity 01;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server { listen 127.0.0.1:${port}; root ${dir}/www; }
}
`,
  );
  const argv = [...(cgroup ? inCgroup(cgroup) : []), 'ip', 'netns', 'exec', ns, 'taskset', '-c', '0', 'nginx', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const master = child.pid!; // sh, ip and taskset exec: this is nginx's master
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  try {
    const worker = await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr}`);
        const listening = readFileSync(`/proc/${master}/net/tcp`, 'utf8').split('\n').some((l) => l.includes(portHex) && / 0A /.test(l));
        if (!listening) return undefined;
        for (const pid of readdirSync('/proc')) {
          if (!/^\d+$/.test(pid)) continue;
          try {
            const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
            if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === master) return Number(pid);
          } catch {
            // gone meanwhile
          }
        }
        return undefined;
      },
      10_000,
      'nginx to listen',
    );
    return {
      master,
      worker,
      stop: async () => {
        if (child.exitCode === null) child.kill('SIGQUIT');
        await exited;
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

/**
 * wrk (`-t1 -c50`, CPU 1, in `cg` or a cgroup of its own) against nginx for `seconds`: requests,
 * and requests per CPU-second of the nginx worker and of the worker and wrk together. On loopback the
 * sender's context also runs the receiver's side of each packet (softirq), so part of the server's
 * TCP work is charged to wrk: both are given, the worker's alone first (the measure asked for).
 */
export async function wrk(nginx: Nginx, mode: 'keep-alive' | 'close', seconds: number, cg?: TestCgroup): Promise<Record<string, number>> {
  const own = cg ? undefined : new TestCgroup('bench-wrk');
  const group = (cg ?? own)!;
  try {
    const a = threadCpuSeconds(nginx.worker);
    const cpu0 = machineBusySeconds(0);
    const wrk0 = group.cpuStatUsageSeconds();
    const t0 = Date.now();
    const script = mode === 'close' ? `-s ${join(nginx.dir, 'close.lua')}` : '';
    const r = await group.run(`exec ip netns exec ${nginx.ns} taskset -c 1 wrk -t1 -c50 -d${seconds}s ${script} http://127.0.0.1:${nginx.port}/index.html`, (seconds + 60) * 1000);
    const elapsed = (Date.now() - t0) / 1000;
    const cpuSeconds = threadCpuSeconds(nginx.worker) - a;
    const others0 = machineBusySeconds(0) - cpu0 - cpuSeconds;
    const requests = /(\d+) requests in/.exec(r.stdout);
    if (r.code !== 0 || !requests) throw new Error(`wrk failed (${r.code ?? r.signal}): ${r.stdout}${r.stderr}`);
    const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(r.stdout);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(r.stdout);
    const n = Number(requests[1]);
    const wrkCpu = group.cpuStatUsageSeconds() - wrk0;
    return {
      requests: n,
      requests_per_second: n / elapsed,
      nginx_worker_cpu_seconds: cpuSeconds,
      nginx_worker_cpu_percent: (100 * cpuSeconds) / elapsed,
      others_on_cpu0_percent: (100 * Math.max(0, others0)) / elapsed,
      requests_per_nginx_cpu_second: n / cpuSeconds,
      wrk_cpu_seconds: wrkCpu,
      requests_per_nginx_and_wrk_cpu_second: n / (cpuSeconds + wrkCpu),
      wrk_socket_errors: errors ? errors.slice(1).reduce((x, y) => x + Number(y), 0) : 0,
      non_2xx_responses: non2xx ? Number(non2xx[1]) : 0,
    };
  } finally {
    own?.remove();
  }
}

/** Two python processes bounce one byte over a pair of pipes: every bounce is two voluntary switches. */
const PINGPONG = `
import os, sys, time
r1, w1 = os.pipe(); r2, w2 = os.pipe()
seconds = float(sys.argv[1])
pid = os.fork()
if pid == 0:
    os.close(w1); os.close(r2)
    while os.read(r1, 1): os.write(w2, b'x')
    os._exit(0)
os.close(r1); os.close(w2)
end = time.monotonic() + seconds; n = 0
while time.monotonic() < end:
    for _ in range(1000):
        os.write(w1, b'x'); os.read(r2, 1)
    n += 1000
os.close(w1); os.waitpid(pid, 0)
print(n / seconds)
`;

export async function pingpong(cg: TestCgroup, seconds: number): Promise<number> {
  writeFileSync('/tmp/periscope-pingpong.py', PINGPONG);
  // both on CPU 0, so every bounce is a real switch on one run queue
  const r = await cg.run(`exec taskset -c 0 python3 /tmp/periscope-pingpong.py ${seconds}`, (seconds + 30) * 1000);
  if (r.code !== 0) throw new Error(`ping-pong failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** The kernel's run count and run time of every loaded program (kernel.bpf_stats_enabled must be on). */
export async function bpfStats(): Promise<BpfStats> {
  const r = await run('bpftool', ['-j', 'prog', 'show']);
  const out = new Map<string, { runs: number; ns: number }>();
  for (const p of JSON.parse(r.stdout) as { name?: string; run_cnt?: number; run_time_ns?: number }[]) {
    if (p.name && p.run_cnt) out.set(p.name, { runs: p.run_cnt, ns: p.run_time_ns ?? 0 });
  }
  return out;
}

export type BpfStats = Map<string, { runs: number; ns: number }>;

/** What each of these programs ran between two samples of the kernel's statistics: runs and ns per run. */
export function perRun(before: BpfStats, after: BpfStats, names: readonly string[]): Record<string, { runs: number; nsPerRun: number }> {
  return Object.fromEntries(
    names.map((name) => {
      const x = after.get(name) ?? { runs: 0, ns: 0 };
      const y = before.get(name) ?? { runs: 0, ns: 0 };
      return [name, { runs: x.runs - y.runs, nsPerRun: (x.ns - y.ns) / Math.max(1, x.runs - y.runs) }];
    }),
  );
}
