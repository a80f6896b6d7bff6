/**
 * Benchmarks of the agent against the real kernel (root). Not a test: it prints measurements, and
 * BENCHMARKS.md records them with the command and the machine. Scenarios:
 *   idle        the agent alone, scraped every 15 s: its CPU share and RSS
 *   idle-k8s    the same, watching 30 pods of its node in the fake API server (test/e2e)
 *   exec        an exec storm in a cgroup: execs/s, events received and lost, agent CPU and RSS, and the
 *               exec and exit programs' cost per run (kernel.bpf_stats_enabled)
 *   ctxsw       a context-switch storm (two processes ping-ponging over pipes): switches/s counted by
 *               the kernel and by Periscope, the storm's rate with and without the agent attached,
 *               and the BPF programs' own cost per run (kernel.bpf_stats_enabled)
 *   memory      the kernel memory of the maps at 2, 16, 64 and 128 possible CPUs (computed from the map
 *               specs), and here: the kernel's own account of a running agent's maps (fdinfo memlock)
 *               beside the computation, and the agent's RSS
 * Usage: node dist/bench/run.js [idle|idle-k8s|exec|ctxsw|memory ...] [--seconds N] [--idle-seconds N]
 */
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { COLLECTORS } from '../src/collectors/registry.js';
import { defaultMaxCgroups, kernelMemory } from '../src/agent/memory-budget.js';
import { native } from '../src/kernel/native.js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { FakeApiServer } from '../test/e2e/fake-apiserver.js';
import { deploymentPod } from '../test/e2e/objects.js';
import { parseArgs } from 'node:util';
import { cpus, totalmem } from 'node:os';
import { TestCgroup, run, sleep } from '../test/kernel.js';
import { sample, startAgent, type RunningAgent } from '../test/agent-process.js';

const TICK = 100; // USER_HZ: /proc/PID/stat times are in 1/100 s on Linux

interface ProcSample {
  cpuSeconds: number;
  rssBytes: number;
  at: number;
}

function procSample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / TICK;
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuSeconds, rssBytes: Number(rss?.[1] ?? 0) * 1024, at: Date.now() };
}

async function scrape(agent: RunningAgent): Promise<string> {
  return (await fetch(`${agent.url}/metrics`)).text();
}

const sum = (text: string, name: string, labels: Record<string, string> = {}): number => {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const v = sample(line, name, labels);
    if (v !== undefined) total += v;
  }
  return total;
};

interface Result {
  scenario: string;
  [k: string]: string | number;
}

/** The agent alone, or with a fake API server holding `pods` pods of its node. */
async function idle(seconds: number, pods?: number): Promise<Result> {
  let api: FakeApiServer | undefined;
  const args: string[] = [];
  if (pods !== undefined) {
    api = await FakeApiServer.start();
    args.push('--kubeconfig', api.kubeconfig(join(mkdtempSync(join(tmpdir(), 'periscope-bench-')), 'config')), '--node', 'bench-node');
    for (let i = 0; i < pods; i++) {
      const o = deploymentPod({ namespace: 'bench', deployment: `d${i}`, node: 'bench-node', containers: { app: `containerd://${randomBytes(32).toString('hex')}` } });
      api.create(o.deployment);
      api.create(o.replicaSet);
      api.create(o.pod);
    }
  }
  const agent = await startAgent(args);
  try {
    await sleep(2_000); // start-up is not idle
    const a = procSample(agent.child.pid!);
    let peakRss = a.rssBytes;
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      await scrape(agent); // what a Prometheus scraping every 15 s costs
      await sleep(Math.min(15_000, end - Date.now()));
      peakRss = Math.max(peakRss, procSample(agent.child.pid!).rssBytes);
    }
    const b = procSample(agent.child.pid!);
    return {
      scenario: pods === undefined ? 'idle' : `idle, watching ${pods} pods in a (fake) API server`,
      seconds: (b.at - a.at) / 1000,
      agent_cpu_percent_of_one_core: (100 * (b.cpuSeconds - a.cpuSeconds)) / ((b.at - a.at) / 1000),
      agent_rss_mib: b.rssBytes / 2 ** 20,
      agent_peak_rss_mib: peakRss / 2 ** 20,
    };
  } finally {
    await agent.stop();
    await api?.stop();
  }
}

/** An exec storm against an agent started with these flags; withStats turns on the kernel's
 * per-program statistics for the run (they cost a few ns per run themselves). */
async function execStorm(seconds: number, flags: string[] = [], withStats = false): Promise<Result> {
  const agent = await startAgent(flags);
  const cg = new TestCgroup('bench-exec');
  if (withStats) writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  try {
    const stats0 = withStats ? await bpfStats() : undefined;
    const before = await scrape(agent);
    const a = procSample(agent.child.pid!);
    let peakRss = a.rssBytes;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, procSample(agent.child.pid!).rssBytes)), 500);
    // two loops, one per core, each exec'ing /bin/true as fast as fork+exec allows
    const loop = `end=$(( $(date +%s) + ${seconds} )); while [ $(date +%s) -lt $end ]; do for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; done`;
    const t0 = Date.now();
    await cg.run(`(${loop}) & (${loop}) & wait`, (seconds + 30) * 1000);
    const elapsed = (Date.now() - t0) / 1000;
    await sleep(500);
    clearInterval(sampler);
    const b = procSample(agent.child.pid!);
    const after = await scrape(agent);
    const execs = sample(after, 'periscope_process_execs_total', { cgroup: cg.path }) ?? 0;
    const events = sum(after, 'periscope_events_total', { type: 'exec' }) - sum(before, 'periscope_events_total', { type: 'exec' });
    const lost = sum(after, 'periscope_events_lost_total') - sum(before, 'periscope_events_lost_total');
    const allExecs = sum(after, 'periscope_process_execs_total') - sum(before, 'periscope_process_execs_total');
    const perRun: Record<string, number> = {};
    if (stats0) {
      const stats1 = await bpfStats();
      for (const name of ['process_exec_btf', 'process_exit_btf']) {
        const x = stats1.get(name) ?? { runs: 0, ns: 0 };
        const y = stats0.get(name) ?? { runs: 0, ns: 0 };
        perRun[`${name}_ns_per_run`] = (x.ns - y.ns) / Math.max(1, x.runs - y.runs);
      }
    }
    return {
      scenario: `exec storm${flags.length ? ` (${flags.join(' ')})` : ''}`,
      seconds: elapsed,
      execs_in_cgroup: execs,
      execs_per_second: execs / elapsed,
      exec_events_received: events,
      execs_counted_on_node: allExecs,
      events_lost: lost,
      agent_cpu_percent_of_one_core: (100 * (b.cpuSeconds - a.cpuSeconds)) / elapsed,
      agent_peak_rss_mib: peakRss / 2 ** 20,
      ...perRun,
    };
  } finally {
    if (withStats) writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
    await agent.stop();
    cg.remove();
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

async function pingpong(cg: TestCgroup, seconds: number): Promise<number> {
  writeFileSync('/tmp/periscope-pingpong.py', PINGPONG);
  // both on CPU 0, so every bounce is a real switch on one run queue
  const r = await cg.run(`exec taskset -c 0 python3 /tmp/periscope-pingpong.py ${seconds}`, (seconds + 30) * 1000);
  if (r.code !== 0) throw new Error(`ping-pong failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

async function bpfStats(): Promise<Map<string, { runs: number; ns: number }>> {
  const r = await run('bpftool', ['-j', 'prog', 'show']);
  const out = new Map<string, { runs: number; ns: number }>();
  for (const p of JSON.parse(r.stdout) as { name?: string; run_cnt?: number; run_time_ns?: number }[]) {
    if (p.name && p.run_cnt) out.set(p.name, { runs: p.run_cnt, ns: p.run_time_ns ?? 0 });
  }
  return out;
}

async function ctxswStorm(seconds: number): Promise<Result> {
  const baseCg = new TestCgroup('bench-ctxsw-base');
  const cg = new TestCgroup('bench-ctxsw');
  const statsCg = new TestCgroup('bench-ctxsw-stats');
  try {
    const baseline = await pingpong(baseCg, seconds); // without the agent
    const agent = await startAgent();
    try {
      const before = await scrape(agent);
      const a = procSample(agent.child.pid!);
      const rate = await pingpong(cg, seconds); // with the agent attached, bpf_stats off as in production
      const b = procSample(agent.child.pid!);
      const after = await scrape(agent);
      // a third, short run with the kernel's per-program statistics on, for the cost of one run
      writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
      let perRun: Record<string, number> = {};
      try {
        const stats0 = await bpfStats();
        await pingpong(statsCg, Math.min(seconds, 3));
        const stats1 = await bpfStats();
        perRun = Object.fromEntries(
          ['cpu_switch_btf', 'cpu_wakeup_btf'].map((name) => {
            const x = stats1.get(name) ?? { runs: 0, ns: 0 };
            const y = stats0.get(name) ?? { runs: 0, ns: 0 };
            return [`${name}_ns_per_run`, (x.ns - y.ns) / Math.max(1, x.runs - y.runs)];
          }),
        );
      } finally {
        writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
      }
      const switches = (sample(after, 'periscope_context_switches_total', { cgroup: cg.path, kind: 'voluntary' }) ?? 0) +
        (sample(after, 'periscope_context_switches_total', { cgroup: cg.path, kind: 'involuntary' }) ?? 0);
      const nodeSwitches = sum(after, 'periscope_context_switches_total') - sum(before, 'periscope_context_switches_total');
      return {
        scenario: 'context-switch storm',
        seconds,
        bounces_per_second_without_agent: baseline,
        bounces_per_second_with_agent: rate,
        storm_rate_ratio_with_vs_without: rate / baseline,
        switches_counted_in_cgroup: switches,
        switches_per_second_counted_on_node: nodeSwitches / seconds,
        ...perRun,
        events_lost: sum(after, 'periscope_events_lost_total') - sum(before, 'periscope_events_lost_total'),
        agent_cpu_percent_of_one_core: (100 * (b.cpuSeconds - a.cpuSeconds)) / ((b.at - a.at) / 1000),
        agent_rss_mib: b.rssBytes / 2 ** 20,
      };
    } finally {
      await agent.stop();
    }
  } finally {
    baseCg.remove();
    cg.remove();
    statsCg.remove();
  }
}

/** Kernel memory of the maps at several CPU counts, and what the kernel accounts for a running agent. */
async function memory(): Promise<Result[]> {
  const out: Result[] = [];
  const mib = (b: number): number => b / 2 ** 20;
  for (const cpus of [2, 16, 64, 128]) {
    const dflt = defaultMaxCgroups(COLLECTORS, cpus);
    const atDefault = kernelMemory(COLLECTORS, dflt, cpus);
    const at16k = kernelMemory(COLLECTORS, 16_384, cpus);
    out.push({
      scenario: `kernel maps at ${cpus} possible CPUs (computed)`,
      bytes_per_cgroup: atDefault.perCgroup,
      default_max_cgroups: dflt,
      kernel_mib_at_default: mib(atDefault.total),
      kernel_mib_at_16384_cgroups: mib(at16k.total),
      ...Object.fromEntries(atDefault.byCollector.map((c) => [`${c.name}_${c.alternative}_mib_at_default`, mib(c.bytes)])),
    });
  }
  // a running agent: the kernel's own account of its maps, beside the computation for this machine
  const agent = await startAgent();
  try {
    await sleep(2_000);
    await scrape(agent);
    const pid = agent.child.pid!;
    let memlock = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target !== 'anon_inode:bpf-map') continue;
      memlock += Number(/^memlock:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? 0);
    }
    const cpus = native().numPossibleCpus();
    const dflt = defaultMaxCgroups(COLLECTORS, cpus);
    out.push({
      scenario: `a running agent here (${cpus} possible CPUs, --max-cgroups ${dflt})`,
      kernel_mib_computed: mib(kernelMemory(COLLECTORS, dflt, cpus).total),
      kernel_mib_fdinfo_memlock: mib(memlock),
      agent_rss_mib: procSample(pid).rssBytes / 2 ** 20,
    });
  } finally {
    await agent.stop();
  }
  return out;
}

function format(r: Result): string {
  const rows = Object.entries(r)
    .filter(([k]) => k !== 'scenario')
    .map(([k, v]) => `| ${k} | ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(3)) : v} |`);
  return [`### ${r.scenario}`, '', '| measure | value |', '| --- | --- |', ...rows, ''].join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { seconds: { type: 'string', default: '10' }, 'idle-seconds': { type: 'string', default: '60' } } });
  const seconds = Number(values.seconds);
  const which = positionals.length ? positionals : ['idle', 'idle-k8s', 'exec', 'ctxsw'];
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  process.stdout.write(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${kernel}, Node ${process.version}\n\n`);
  for (const w of which) {
    const r =
      w === 'idle'
        ? await idle(Number(values['idle-seconds']))
        : w === 'idle-k8s'
          ? await idle(Number(values['idle-seconds']), 30)
          : w === 'exec'
            ? await execStorm(seconds, [], true)
            : w === 'ctxsw'
              ? await ctxswStorm(seconds)
              : w === 'memory'
                ? await memory()
                : undefined;
    if (!r) throw new Error(`unknown scenario ${w}; use idle, idle-k8s, exec, ctxsw or memory`);
    for (const x of [r].flat()) process.stdout.write(`${format(x)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
