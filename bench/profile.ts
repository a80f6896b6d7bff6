/**
 * What profiling costs (bench/run.ts `profile` and `profile-offcpu`).
 *
 * profile: a CPU-bound load (test/helpers/profile-workload cpu, pinned to CPU 0) with nothing
 * attached, and with an agent running only the profiler collector (off-CPU off) at 19 Hz and at 99 Hz,
 * and at 19 Hz with off-CPU on (the default), interleaved --pairs times: the load's rounds per second
 * in each state and its loss against the runs without the agent; the agent's CPU from after its first
 * drain (which reads kallsyms and the symbol tables once). Then the kernel's side alone
 * (kernel.bpf_stats_enabled): ns per run of the sampling program, and what that is of a core at each
 * rate. Then the agent's user space per 1,000 samples a second: both CPUs busy, sampled at 997 Hz.
 *
 * profile-offcpu: the context-switch storm of `ctxsw` (two processes ping-ponging over pipes on one
 * CPU) with nothing attached, with the agent's profile collector (on-CPU at 19 Hz and off-CPU with
 * its default 1 ms minimum), and with libbpf-tools' offcputime at the same minimum (-m 1000),
 * interleaved --pairs times: bounces per second in each state; then each program's cost per run.
 */
import { TestCgroup, eventually, helper, sleep } from '../test/kernel.js';
import { startAgent, type RunningAgent } from '../test/agent-process.js';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { bpfStats, mean, perRun, pingpong, procSample, scrape, spread, sum } from './shared.js';

interface Result {
  scenario: string;
  [k: string]: string | number;
}

/** The CPU-bound load on CPU 0 for `seconds`: its rounds a second. */
async function load(cg: TestCgroup, seconds: number): Promise<number> {
  const r = await cg.run(`exec taskset -c 0 ${helper('profile-workload')} cpu ${seconds}`, (seconds + 30) * 1000);
  if (r.code !== 0) throw new Error(`the load failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** An agent running the profiler alone, past its first drain: the symbol tables it reads once
 * (kallsyms, the libraries' symbols) are not what a node pays all the time. */
async function profiler(args: string[]): Promise<RunningAgent> {
  const agent = await startAgent(['--no-kubernetes', '--collectors', 'profiler', ...args]);
  await eventually(async () => (sum(await scrape(agent), 'periscope_profile_events_total', { event: 'drains' }) >= 1 ? true : undefined), 15_000, 'the first drain');
  await sleep(500);
  return agent;
}

async function withBpfStats<T>(fn: () => Promise<T>): Promise<T> {
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  try {
    return await fn();
  } finally {
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '0');
  }
}

export async function profileCpu(seconds: number, pairs: number): Promise<Result[]> {
  const cg = new TestCgroup('bench-profile');
  const states: { name: string; args?: string[] }[] = [
    { name: 'off' },
    { name: 'cpu 19 Hz', args: ['--profiler-hz', '19', '--profiler-offcpu', 'off'] },
    { name: 'cpu 99 Hz', args: ['--profiler-hz', '99', '--profiler-offcpu', 'off'] },
    { name: 'cpu 19 Hz + off-CPU (default)', args: [] },
  ];
  const rates = new Map<string, number[]>(states.map((s) => [s.name, []]));
  const agentCpu = new Map<string, number[]>(states.map((s) => [s.name, []]));
  try {
    for (let p = 0; p < pairs; p++) {
      for (const s of p % 2 ? [...states].reverse() : states) {
        const agent = s.args ? await profiler(s.args) : undefined;
        try {
          const a = agent ? procSample(agent.child.pid!) : undefined;
          rates.get(s.name)!.push(await load(cg, seconds));
          if (agent && a) agentCpu.get(s.name)!.push((100 * (procSample(agent.child.pid!).cpuSeconds - a.cpuSeconds)) / ((Date.now() - a.at) / 1000));
        } finally {
          await agent?.stop();
        }
      }
    }
    const base = mean(rates.get('off')!);
    const out: Result[] = states.map((s) => ({
      scenario: `profile: CPU-bound load, ${s.name}`,
      seconds,
      pairs,
      rounds_per_second: mean(rates.get(s.name)!),
      spread_percent: spread(rates.get(s.name)!),
      loss_percent_vs_off: s.args ? 100 * (1 - mean(rates.get(s.name)!) / base) : 0,
      ...(s.args ? { agent_cpu_percent_of_one_core: mean(agentCpu.get(s.name)!) } : {}),
    }));

    // the kernel's side alone: the sampling program's cost per run
    for (const hz of [19, 99]) {
      const agent = await profiler(['--profiler-hz', String(hz), '--profiler-offcpu', 'off']);
      try {
        const c = await withBpfStats(async () => {
          const s0 = await bpfStats();
          await load(cg, Math.min(seconds, 5));
          return perRun(s0, await bpfStats(), ['profile_sample']).profile_sample!;
        });
        out.push({
          scenario: `profile: the sampling program at ${hz} Hz (bpf_stats)`,
          runs_per_second_both_cpus: c.runs / Math.min(seconds, 5),
          ns_per_run: c.nsPerRun,
          kernel_percent_of_one_core: (100 * c.nsPerRun * hz) / 1e9,
        });
      } finally {
        await agent.stop();
      }
    }

    // the agent's user space per 1,000 samples/s: both CPUs busy at 997 Hz
    const agent = await profiler(['--profiler-hz', '997', '--profiler-offcpu', 'off']);
    const cg2 = new TestCgroup('bench-profile-2');
    try {
      const before = await scrape(agent);
      const a = procSample(agent.child.pid!);
      const busy = Math.max(seconds, 10);
      await Promise.all([cg.run(`exec taskset -c 0 ${helper('profile-workload')} cpu ${busy}`, (busy + 30) * 1000), cg2.run(`exec taskset -c 1 ${helper('profile-workload')} cpu ${busy}`, (busy + 30) * 1000)]);
      const b = procSample(agent.child.pid!);
      const after = await scrape(agent);
      const samples = sum(after, 'periscope_profile_events_total', { event: 'samples' }) - sum(before, 'periscope_profile_events_total', { event: 'samples' });
      const perSecond = samples / ((b.at - a.at) / 1000);
      const cpu = (100 * (b.cpuSeconds - a.cpuSeconds)) / ((b.at - a.at) / 1000);
      out.push({
        scenario: 'profile: agent user space at 997 Hz, both CPUs busy',
        samples_per_second: perSecond,
        agent_cpu_percent_of_one_core: cpu,
        agent_cpu_percent_per_1000_samples_per_second: (cpu * 1000) / perSecond,
        stacks_lost_to_a_full_map: sum(after, 'periscope_profile_events_total', { event: 'stacks_full' }),
        samples_drained: sum(after, 'periscope_profile_events_total', { event: 'samples_drained' }) - sum(before, 'periscope_profile_events_total', { event: 'samples_drained' }),
        agent_rss_mib: b.rssBytes / 2 ** 20,
      });
    } finally {
      await agent.stop();
      cg2.remove();
    }
    return out;
  } finally {
    cg.remove();
  }
}

/** libbpf-tools' offcputime for `seconds` (its output is the folded report, discarded). */
function offcputime(seconds: number): { stop: () => Promise<void> } {
  const child = spawn('offcputime', ['-m', '1000', String(seconds + 5)], { stdio: ['ignore', 'ignore', 'pipe'] });
  return {
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

export async function profileOffcpu(seconds: number, pairs: number): Promise<Result[]> {
  const cg = new TestCgroup('bench-profile-offcpu');
  const states = ['off', 'periscope profile (19 Hz, off-CPU ≥ 1 ms)', 'offcputime -m 1000'] as const;
  const rates = new Map<string, number[]>(states.map((s) => [s, []]));
  try {
    const start = async (s: (typeof states)[number]): Promise<(() => Promise<unknown>) | undefined> => {
      if (s === 'off') return undefined;
      if (s === 'offcputime -m 1000') {
        const t = offcputime(seconds);
        await sleep(1_500); // it loads and attaches
        return () => t.stop();
      }
      const a = await profiler([]);
      return () => a.stop();
    };
    for (let p = 0; p < pairs; p++) {
      for (const s of p % 2 ? [...states].reverse() : states) {
        const stop = await start(s);
        try {
          rates.get(s)!.push(await pingpong(cg, seconds));
        } finally {
          await stop?.();
        }
      }
    }
    const base = mean(rates.get('off')!);
    const out: Result[] = states.map((s) => ({
      scenario: `profile-offcpu: context-switch storm, ${s}`,
      seconds,
      pairs,
      bounces_per_second: mean(rates.get(s)!),
      spread_percent: spread(rates.get(s)!),
      loss_percent_vs_off: s === 'off' ? 0 : 100 * (1 - mean(rates.get(s)!) / base),
    }));
    // each program's cost per run, one tool at a time
    for (const s of states.slice(1)) {
      const stop = await start(s);
      try {
        const c = await withBpfStats(async () => {
          const s0 = await bpfStats();
          await pingpong(cg, Math.min(seconds, 3));
          return perRun(s0, await bpfStats(), s === 'offcputime -m 1000' ? ['sched_switch'] : ['offcpu_switch_btf', 'offcpu_wakeup_btf']);
        });
        out.push({ scenario: `profile-offcpu: ${s}, cost per run (bpf_stats)`, ...Object.fromEntries(Object.entries(c).flatMap(([n, v]) => [[`${n}_runs`, v.runs], [`${n}_ns_per_run`, v.nsPerRun]])) });
      } finally {
        await stop?.();
      }
    }
    return out;
  } finally {
    cg.remove();
  }
}
