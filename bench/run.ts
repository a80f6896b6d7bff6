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
 *   storm       a loopback TCP connection storm (test/helpers/tcp-storm.c, in a network namespace of its
 *               own) with nothing attached, with the agent and with libbpf-tools' tcplife, alternating,
 *               --rounds times: connections/s, each tool's CPU (and per 10,000 connections/s), the
 *               agent's tcp_* events and its network losses, tcplife's lines and losses
 *   nginx       nginx (one worker, CPU 0) saturated by wrk (CPU 1, beside the agent), agent off and on
 *               interleaved --pairs times, with keep-alive and with a new connection per request:
 *               requests served per CPU-second of the nginx worker, and the loss with the agent
 *   hub-store   the hub's stores (DuckDB, ClickHouse) under a cluster's batches: ingest samples/s and the
 *               p95 of the hub's two most common queries over an hour of data (bench/hub-store.ts)
 *   hub-ingest  the hub's whole ingest path (HTTP, gunzip, schema check, flattening, DuckDB) with
 *               agents' batches, and the checks alone (bench/hub-ingest.ts)
 *   ui          the UI's first page in Chromium over a DuckDB store of --nodes × --pods pods
 *               (--minutes of data): first contentful paint and time to usable; the bundle's size
 *               (bench/ui.ts)
 *   l7          what the L7 capture adds to a system call: a loopback write/read loop and a getppid
 *               loop, object not loaded, loaded with the cgroup off the allow-list, on it with the
 *               protocol ignored, captured; --pairs interleaved runs of --l7-rounds rounds (bench/l7-capture.ts)
 *   l7-replay   the l7 collector's user space alone: Redis -P 16 and nginx traffic captured once, the
 *               records replayed --repeat times into a fresh collector, microseconds per chunk
 *   l7-nginx    nginx + wrk (keep-alive) as in nginx, in four states interleaved --pairs times: agent off,
 *               on with --collectors l7 selecting nothing, on capturing nginx and wrk (every request
 *               at both ends), the same at nice 19 (the DaemonSet's CPU share): requests per nginx CPU-second, the agent's CPU, its counts against
 *               wrk's and its losses; then the highest lossless rate of a paced client (bench/l7-load.ts)
 *   l7-redis    the same with redis-server and redis-benchmark -P 16 -c 4 -t set,get: ops/s, ops per
 *               redis CPU-second, the agent's counts against INFO commandstats, the lossless rate
 *   profile     a CPU-bound load (CPU 0) with nothing attached and with the profiler collector at 19 Hz,
 *               99 Hz and 19 Hz + off-CPU, interleaved --pairs times: the load's loss, the agent's CPU;
 *               the sampling program's ns per run; agent CPU per 1,000 samples/s (bench/profile.ts)
 *   profile-offcpu  the ctxsw storm with nothing, the profiler collector, and libbpf-tools' offcputime
 *               -m 1000, interleaved --pairs times; each one's BPF cost per run (bench/profile.ts)
 * Usage: node dist/bench/run.js [idle|idle-k8s|exec|ctxsw|memory|storm|nginx|hub-store|hub-ingest|ui|l7|l7-nginx|l7-redis|l7-replay|profile|profile-offcpu ...] [--seconds N]
 *        [--idle-seconds N] [--rounds N] [--pairs N] [--collectors LIST (passed to the agent)]
 *        hub-store: [--nodes 100] [--pods 100] [--minutes 60] [--repeat 20] [--stores duckdb,clickhouse] [--inflight 8]
 *        hub-ingest: [--nodes 100] [--pods 100] [--intervals 6] [--inflight 8]
 *        ui: [--nodes 100] [--pods 100] [--minutes 15 (give it: the default is hub-store's 60)] [--repeat 20]
 *        l7: [--l7-rounds 200000] [--pairs 5 (give it: the default is nginx's 3)]
 *        l7-replay: [--repeat 20 (passes over the recorded records)]
 *        l7-nginx, l7-redis: [--seconds 10 (each run)] [--pairs 3] [--l7-step-seconds 5 (each step of the lossless search)]
 *          [--l7-agent-cpu 1 (the load generator's CPU, as in nginx; 0: the server's)]
 */
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { COLLECTORS } from '../src/collectors/registry.js';
import { NETWORK_SPEC } from '../src/collectors/network/index.js';
import { defaultMaxCgroups, kernelMemory } from '../src/agent/memory-budget.js';
import { native } from '../src/kernel/native.js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { FakeApiServer } from '../test/e2e/fake-apiserver.js';
import { deploymentPod } from '../test/e2e/objects.js';
import { parseArgs } from 'node:util';
import { cpus, totalmem } from 'node:os';
import { TestCgroup, eventually, helper, run, sleep } from '../test/kernel.js';
import { sample, startAgent } from '../test/agent-process.js';
import { bpfStats, cpuPercent, machineBusySeconds, mean, perRun, pingpong, procSample, scrape, spread, sum, withNginx, wrk } from './shared.js';
import { hubStore } from './hub-store.js';
import { hubIngest } from './hub-ingest.js';
import { uiFirstPage } from './ui.js';
import { l7Replay } from './l7-replay.js';
import { l7Capture } from './l7-capture.js';
import { l7Nginx, l7Redis } from './l7-load.js';
import { profileCpu, profileOffcpu } from './profile.js';

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
    // start-up is not idle: nor is the profiler's first drain, which reads kallsyms and the symbol
    // tables of what runs once
    await sleep(2_000);
    await eventually(async () => {
      const text = await scrape(agent);
      return !text.includes('periscope_profile_events_total') || sum(text, 'periscope_profile_events_total', { event: 'drains' }) >= 1 ? true : undefined;
    }, 15_000, 'the profiler\'s first drain');
    await sleep(1_000);
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
    const costs = stats0 ? Object.entries(perRun(stats0, await bpfStats(), ['process_exec_btf', 'process_exit_btf'])) : [];
    const perRunNs = Object.fromEntries(costs.map(([name, c]) => [`${name}_ns_per_run`, c.nsPerRun]));
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
      ...perRunNs,
    };
  } finally {
    if (withStats) writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
    await agent.stop();
    cg.remove();
  }
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
      let perRunNs: Record<string, number> = {};
      try {
        const stats0 = await bpfStats();
        await pingpong(statsCg, Math.min(seconds, 3));
        const stats1 = await bpfStats();
        perRunNs = Object.fromEntries(Object.entries(perRun(stats0, stats1, ['cpu_switch_btf', 'cpu_wakeup_btf'])).map(([name, c]) => [`${name}_ns_per_run`, c.nsPerRun]));
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
        ...perRunNs,
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

/** The agent's event counts by type, for the types beginning with `prefix`. */
function eventsByType(text: string, prefix: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^periscope_events_total\{type="([^"]+)"\} (\S+)$/gm)) {
    if (m[1]!.startsWith(prefix)) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

interface StormResult {
  connections: number;
  failed: number;
  server_failed: number;
  seconds: number;
  per_second: number;
  slowest_second: number;
  port: number;
  /** the storm's own CPU (its cgroup's): the kernel's work for its connections, tracepoint programs
   * included, is charged there */
  cpu_seconds: number;
  /** every CPU's busy time over the run (/proc/stat), whoever used it */
  machine_busy_seconds: number;
}

/** The storm helper in a cgroup made for the run and a network namespace of its own: its TIME_WAIT
 * table (which the storm fills in seconds) and its ports are not the host's. */
async function tcpStorm(name: string, seconds: number): Promise<StormResult> {
  const cg = new TestCgroup(name);
  try {
    const storm = `${helper('tcp-storm')} --seconds ${seconds} --clients 8 --acceptors 4`;
    const busy = machineBusySeconds();
    const r = await cg.run(`exec unshare -n sh -c 'ip link set lo up && exec ${storm}'`, (seconds + 60) * 1000);
    if (r.code !== 0) throw new Error(`tcp-storm failed (${r.code ?? r.signal}): ${r.stdout}${r.stderr}`);
    return { ...(JSON.parse(r.stdout) as StormResult), cpu_seconds: cg.cpuStatUsageSeconds(), machine_busy_seconds: machineBusySeconds() - busy };
  } finally {
    cg.remove();
  }
}

const TCPLIFE = '/usr/sbin/tcplife';

/** Runs `storm` under tcplife, its output in a file: its CPU, its lines for the storm's port (each
 * connection is two sockets, a line each: server side LPORT = port, client side RPORT = port), and
 * the events it says it lost. */
async function underTcplife(storm: () => Promise<StormResult>): Promise<{ storm: StormResult; cpuSeconds: number; serverLines: number; clientLines: number; lines: number; lost: number }> {
  // tcplife attaches classic tracepoints (sock:inet_sock_set_state): they need tracefs
  await run('sh', ['-c', 'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing']);
  const dir = mkdtempSync(join(tmpdir(), 'periscope-bench-tcplife-'));
  const out = openSync(join(dir, 'out'), 'w');
  const child = spawn(TCPLIFE, [], { stdio: ['ignore', out, 'pipe'] });
  closeSync(out);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    // attached once its perf buffer is open (made after the tracepoint): a perf_event fd per CPU beyond
    // the tracepoint's; stdout to a file is block-buffered, so its header says nothing yet
    await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`tcplife exited with ${child.exitCode}: ${stderr}`);
        let perf = 0;
        for (const fd of readdirSync(`/proc/${child.pid}/fd`)) {
          try {
            if (readlinkSync(`/proc/${child.pid}/fd/${fd}`) === 'anon_inode:[perf_event]') perf++;
          } catch {
            // closed meanwhile
          }
        }
        return perf > cpus().length ? true : undefined;
      },
      20_000,
      'tcplife to attach',
    );
    await sleep(500);
    const a = procSample(child.pid!);
    const storm1 = await storm();
    await sleep(1_000); // what is in its perf buffers yet
    const b = procSample(child.pid!);
    child.kill('SIGINT'); // it flushes its output and exits
    await exited;
    let serverLines = 0;
    let clientLines = 0;
    let lines = 0;
    for (const line of readFileSync(join(dir, 'out'), 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 9) continue;
      lines++;
      if (Number(f[3]) === storm1.port) serverLines++;
      else if (Number(f[5]) === storm1.port) clientLines++;
    }
    const lost = [...stderr.matchAll(/lost (\d+) events/g)].reduce((n, m) => n + Number(m[1]), 0);
    return { storm: storm1, cpuSeconds: b.cpuSeconds - a.cpuSeconds, serverLines, clientLines, lines, lost };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The storm with nothing attached, under the agent, and under tcplife, alternating, `rounds` times. */
async function storm(seconds: number, rounds: number, agentArgs: string[]): Promise<Result[]> {
  const out: Result[] = [];
  // the storm's CPU per connection is what each tool costs in the kernel (and the storm itself);
  // what others used meanwhile says how much the rate could be trusted on a shared machine
  const stormRow = (s: StormResult, toolCpuSeconds = 0): Record<string, number> => ({
    connections: s.connections,
    connections_per_second: s.per_second,
    slowest_second: s.slowest_second,
    failed: s.failed + s.server_failed,
    storm_cpu_us_per_connection: (1e6 * s.cpu_seconds) / Math.max(1, s.connections),
    others_cpu_percent: (100 * Math.max(0, s.machine_busy_seconds - s.cpu_seconds - toolCpuSeconds)) / s.seconds,
  });
  const cpuRows = (cpuSeconds: number, s: StormResult): Record<string, number> => ({
    cpu_seconds: cpuSeconds,
    cpu_percent_of_one_core: (100 * cpuSeconds) / s.seconds,
    cpu_percent_of_one_core_per_10k_conn_per_s: (100 * cpuSeconds) / s.seconds / (s.per_second / 10_000),
  });
  const summary = new Map<string, { rate: number[]; cpu: number[]; usPerConn: number[] }>();
  const note = (tool: string, s: StormResult, cpuPer10k?: number): void => {
    const e = summary.get(tool) ?? { rate: [], cpu: [], usPerConn: [] };
    e.rate.push(s.per_second);
    e.usPerConn.push((1e6 * s.cpu_seconds) / Math.max(1, s.connections));
    if (cpuPer10k !== undefined) e.cpu.push(cpuPer10k);
    summary.set(tool, e);
  };
  const collectors = agentArgs.length ? agentArgs.join(' ') : `all: ${COLLECTORS.map((c) => c.name).join(',')}`;
  for (let round = 1; round <= rounds; round++) {
    const base = await tcpStorm('bench-storm-base', seconds);
    note('nothing attached', base);
    out.push({ scenario: `storm, round ${round}: nothing attached`, seconds: base.seconds, ...stormRow(base) });

    const agent = await startAgent(agentArgs);
    try {
      await sleep(2_000); // start-up is not the storm
      const before = await scrape(agent);
      const a = procSample(agent.child.pid!);
      const s = await tcpStorm('bench-storm-agent', seconds);
      await sleep(1_000); // the rings drain on a 100-400 ms timer
      const b = procSample(agent.child.pid!);
      const after = await scrape(agent);
      const types0 = eventsByType(before, 'tcp_');
      const types1 = eventsByType(after, 'tcp_');
      const byType = Object.fromEntries([...types1].map(([t, n]) => [`${t}_events`, n - (types0.get(t) ?? 0)]));
      const tcpEvents = Object.values(byType).reduce((x, y) => x + y, 0);
      const cpu = cpuRows(b.cpuSeconds - a.cpuSeconds, s);
      note('agent', s, cpu.cpu_percent_of_one_core_per_10k_conn_per_s);
      out.push({
        scenario: `storm, round ${round}: agent (${collectors})`,
        seconds: s.seconds,
        ...stormRow(s, b.cpuSeconds - a.cpuSeconds),
        rate_vs_nothing_attached: s.per_second / base.per_second,
        ...Object.fromEntries(Object.entries(cpu).map(([k, v]) => [`agent_${k}`, v])),
        tcp_events_received: tcpEvents,
        tcp_events_per_connection: tcpEvents / Math.max(1, s.connections),
        ...byType,
        events_lost_network: (sample(after, 'periscope_events_lost_total', { source: 'network' }) ?? 0) - (sample(before, 'periscope_events_lost_total', { source: 'network' }) ?? 0),
        // past the collector's budget per second: not sent on purpose (the metrics count every connection)
        events_sampled_out_network: (sample(after, 'periscope_events_sampled_out_total', { collector: 'network' }) ?? 0) - (sample(before, 'periscope_events_sampled_out_total', { collector: 'network' }) ?? 0),
        connections_counted: sum(after, 'periscope_tcp_connections_total') - sum(before, 'periscope_tcp_connections_total'),
        events_lost_all_sources: sum(after, 'periscope_events_lost_total') - sum(before, 'periscope_events_lost_total'),
        agent_rss_mib: b.rssBytes / 2 ** 20,
      });
    } finally {
      await agent.stop();
    }

    const t = await underTcplife(() => tcpStorm('bench-storm-tcplife', seconds));
    const cpu = cpuRows(t.cpuSeconds, t.storm);
    note('tcplife', t.storm, cpu.cpu_percent_of_one_core_per_10k_conn_per_s);
    out.push({
      scenario: `storm, round ${round}: tcplife`,
      seconds: t.storm.seconds,
      ...stormRow(t.storm, t.cpuSeconds),
      rate_vs_nothing_attached: t.storm.per_second / base.per_second,
      ...Object.fromEntries(Object.entries(cpu).map(([k, v]) => [`tcplife_${k}`, v])),
      tcplife_lines_server_side: t.serverLines,
      tcplife_lines_client_side: t.clientLines,
      tcplife_lines_other: t.lines - t.serverLines - t.clientLines,
      tcplife_lines_per_connection: (t.serverLines + t.clientLines) / Math.max(1, t.storm.connections),
      tcplife_events_lost: t.lost,
    });
  }
  const mean = (xs: number[]): number => xs.reduce((x, y) => x + y, 0) / Math.max(1, xs.length);
  const baseRate = mean(summary.get('nothing attached')?.rate ?? []);
  const baseUs = mean(summary.get('nothing attached')?.usPerConn ?? []);
  const means: Result = { scenario: `storm, mean of ${rounds} rounds` };
  for (const [tool, e] of summary) {
    means[`${tool}: connections_per_second`] = mean(e.rate);
    if (tool !== 'nothing attached') means[`${tool}: rate_vs_nothing_attached`] = mean(e.rate) / baseRate;
    means[`${tool}: storm_cpu_us_per_connection`] = mean(e.usPerConn);
    if (tool !== 'nothing attached') means[`${tool}: storm_cpu_us_per_connection_added`] = mean(e.usPerConn) - baseUs;
    if (e.cpu.length) means[`${tool}: cpu_percent_of_one_core_per_10k_conn_per_s`] = mean(e.cpu);
  }
  out.push(means);

  // one more, shorter storm under the agent with the kernel's per-program statistics on (they cost a
  // little themselves): what each network program costs per run, and per connection in all
  const agent = await startAgent(agentArgs);
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  try {
    await sleep(2_000);
    const stats0 = await bpfStats();
    const s = await tcpStorm('bench-storm-stats', Math.min(seconds, 5));
    const costs = perRun(stats0, await bpfStats(), NETWORK_SPEC.programs);
    const total = Object.values(costs).reduce((a, c) => a + c.runs * c.nsPerRun, 0);
    out.push({
      scenario: 'storm: the network programs\' cost (kernel.bpf_stats_enabled)',
      connections: s.connections,
      ...Object.fromEntries(Object.entries(costs).flatMap(([name, c]) => (c.runs ? [[`${name}_ns_per_run`, c.nsPerRun], [`${name}_runs_per_connection`, c.runs / Math.max(1, s.connections)]] : []))),
      ns_per_connection_all_network_programs: total / Math.max(1, s.connections),
    });
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
    await agent.stop();
  }
  return out;
}

/** nginx pinned to CPU 0, wrk to CPU 1 (with the agent when on), in a network namespace of their own;
 * agent off and on interleaved, `pairs` times, for keep-alive and for a new connection per request. */
async function nginxOverhead(seconds: number, pairs: number, agentArgs: string[]): Promise<Result[]> {
  const out: Result[] = [];
  await withNginx(async (nginx) => {
    for (const mode of ['keep-alive', 'close'] as const) {
      const per = { off: [] as number[], on: [] as number[], offBoth: [] as number[], onBoth: [] as number[] };
      await wrk(nginx, mode, seconds); // warm-up, not counted
      for (let pair = 1; pair <= pairs; pair++) {
        const off = await wrk(nginx, mode, seconds);
        per.off.push(off.requests_per_nginx_cpu_second!);
        per.offBoth.push(off.requests_per_nginx_and_wrk_cpu_second!);
        out.push({ scenario: `nginx + wrk (${mode}), pair ${pair}: agent off`, seconds, ...off });
        const agent = await startAgent(agentArgs, { wrap: ['taskset', '-c', '1'] });
        try {
          await sleep(2_000);
          const a = procSample(agent.child.pid!);
          const on = await wrk(nginx, mode, seconds);
          const b = procSample(agent.child.pid!);
          per.on.push(on.requests_per_nginx_cpu_second!);
          per.onBoth.push(on.requests_per_nginx_and_wrk_cpu_second!);
          out.push({
            scenario: `nginx + wrk (${mode}), pair ${pair}: agent on (${agentArgs.length ? agentArgs.join(' ') : 'all collectors'})`,
            seconds,
            ...on,
            agent_cpu_percent_of_one_core: cpuPercent(a, b),
          });
        } finally {
          await agent.stop();
        }
      }
      out.push({
        scenario: `nginx + wrk (${mode}): ${pairs} pairs`,
        requests_per_nginx_cpu_second_off: mean(per.off),
        requests_per_nginx_cpu_second_on: mean(per.on),
        loss_percent: 100 * (1 - mean(per.on) / mean(per.off)),
        spread_percent_between_off_runs: spread(per.off),
        spread_percent_between_on_runs: spread(per.on),
        requests_per_nginx_and_wrk_cpu_second_off: mean(per.offBoth),
        requests_per_nginx_and_wrk_cpu_second_on: mean(per.onBoth),
        loss_percent_nginx_and_wrk: 100 * (1 - mean(per.onBoth) / mean(per.offBoth)),
      });
    }
  });
  return out;
}

function format(r: Result): string {
  const rows = Object.entries(r)
    .filter(([k]) => k !== 'scenario')
    .map(([k, v]) => `| ${k} | ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(3)) : v} |`);
  return [`### ${r.scenario}`, '', '| measure | value |', '| --- | --- |', ...rows, ''].join('\n');
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      seconds: { type: 'string', default: '10' },
      'idle-seconds': { type: 'string', default: '60' },
      rounds: { type: 'string', default: '2' },
      pairs: { type: 'string', default: '3' },
      collectors: { type: 'string' },
      nodes: { type: 'string', default: '100' },
      pods: { type: 'string', default: '100' },
      minutes: { type: 'string', default: '60' },
      repeat: { type: 'string', default: '20' },
      inflight: { type: 'string', default: '8' },
      stores: { type: 'string', default: 'duckdb,clickhouse' },
      intervals: { type: 'string', default: '6' },
      'l7-rounds': { type: 'string', default: '200000' },
      'l7-step-seconds': { type: 'string', default: '5' },
      'l7-agent-cpu': { type: 'string', default: '1' },
    },
  });
  const l7Load = { seconds: Number(values.seconds), pairs: Number(values.pairs), stepSeconds: Number(values['l7-step-seconds']), agentCpu: Number(values['l7-agent-cpu']) };
  const seconds = Number(values.seconds);
  const agentArgs = values.collectors === undefined ? [] : ['--collectors', values.collectors];
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
                : w === 'storm'
                  ? await storm(seconds, Number(values.rounds), agentArgs)
                  : w === 'nginx'
                    ? await nginxOverhead(seconds, Number(values.pairs), agentArgs)
                    : w === 'hub-store'
                      ? await hubStore({
                          nodes: Number(values.nodes),
                          pods: Number(values.pods),
                          minutes: Number(values.minutes),
                          repeat: Number(values.repeat),
                          inflight: Number(values.inflight),
                          stores: values.stores.split(',') as ('duckdb' | 'clickhouse')[],
                        })
                      : w === 'hub-ingest'
                        ? await hubIngest({ nodes: Number(values.nodes), pods: Number(values.pods), intervals: Number(values.intervals), inflight: Number(values.inflight) })
                        : w === 'ui'
                          ? await uiFirstPage({ nodes: Number(values.nodes), pods: Number(values.pods), minutes: Number(values.minutes), repeat: Number(values.repeat) })
                          : w === 'l7'
                            ? await l7Capture(Number(values['l7-rounds']), Number(values.pairs))
                            : w === 'l7-nginx'
                              ? await l7Nginx(l7Load)
                              : w === 'l7-redis'
                                ? await l7Redis(l7Load)
                                : w === 'l7-replay'
                                  ? await l7Replay(Number(values.repeat))
                                  : w === 'profile'
                                    ? await profileCpu(seconds, Number(values.pairs))
                                    : w === 'profile-offcpu'
                                      ? await profileOffcpu(seconds, Number(values.pairs))
                                      : undefined;
    if (!r) throw new Error(`unknown scenario ${w}; use idle, idle-k8s, exec, ctxsw, memory, storm, nginx, hub-store, hub-ingest, ui, l7, l7-nginx, l7-redis, l7-replay, profile or profile-offcpu`);
    for (const x of [r].flat()) process.stdout.write(`${format(x)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
