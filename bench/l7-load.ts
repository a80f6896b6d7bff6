/**
 * The l7 collector under load (issue 10's benchmark): a server pinned to CPU 0 and its load generator
 * pinned to CPU 1 (with the agent, when on), in four states interleaved run by run, their order
 * rotated each pair:
 *   off       no agent
 *   nothing   the agent with `--collectors l7` selecting no cgroup: the programs run on every system
 *             call, none is captured
 *   captured  the agent with `--collectors l7` selecting the server's and the client's cgroups: every
 *             request is captured at both ends and parsed
 *   yielding  the same at nice 19: the CPU share the DaemonSet's 20m request gives the agent beside
 *             busy pods; what it cannot keep up with is lost and counted
 * `l7-nginx`: nginx and wrk (keep-alive) as the `nginx` scenario runs them; requests per nginx
 * CPU-second. `l7-redis`: redis-server (Debian's) and `redis-benchmark -P 16 -c 4 -t set,get`;
 * ops/s and ops per redis CPU-second. In the captured runs the agent's counts are held to the
 * load's own (wrk's requests; INFO commandstats) and its losses are read from its metrics
 * (periscope_l7_capture_events_total); a run that captured nothing fails the benchmark, so a broken
 * selection cannot pass for no overhead.
 *
 * Then the lossless rate: one captured agent, a paced client (bench/paced-client.py, one request
 * outstanding per connection) stepping up its rate, `--l7-step-seconds` a step, until the agent's
 * counts at either end differ from the requests answered or it reports a loss.
 */
import { fileURLToPath } from 'node:url';
import { TestCgroup, sleep } from '../test/kernel.js';
import { sample, startAgent, type RunningAgent } from '../test/agent-process.js';
import { inCgroup, startRedis, type RedisServer } from '../test/servers.js';
import { type Result } from './hub-store.js';
import { mean, procSample, scrape, spread, sum, threadCpuSeconds, withNginx, wrk, type Nginx } from './shared.js';

const PACED = fileURLToPath(new URL('../../bench/paced-client.py', import.meta.url));

export interface L7LoadOptions {
  seconds: number;
  pairs: number;
  /** seconds of each step of the lossless search */
  stepSeconds: number;
  /** the CPU the agent is pinned to: 1, the load generator's (as the nginx scenario), or 0, the server's */
  agentCpu: number;
}

type State = 'off' | 'nothing' | 'captured' | 'yielding';
const STATES: readonly State[] = ['off', 'nothing', 'captured', 'yielding'];
const STATE_NAMES: Readonly<Record<State, string>> = {
  off: 'agent off',
  nothing: 'agent on, l7 selecting nothing',
  captured: 'agent on, l7 capturing both ends',
  yielding: 'agent on at nice 19, l7 capturing both ends',
};

/**
 * `yielding`: the agent at the CPU share its DaemonSet gives it beside busy workloads. Its pod asks
 * 20m of CPU, which the kubelet turns into cpu.weight 1 against a busy pod's 100 or more (cgroup v2;
 * cpu.shares 20 against 1024 on v1); nice 19 is a weight of 15 against 1024, the same ~1.5% here
 * without a cgroup controller of our own.
 */
const YIELDING = ['nice', '-n', '19'];

/** What counts as lost in periscope_l7_capture_events_total: records or requests the agent missed. */
const LOSSES = ['ring_full', 'no_state', 'unreadable', 'malformed', 'unattributed_records', 'connections_dropped', 'parser_desyncs', 'parser_pending_overflow', 'parser_unmatched_responses', 'parser_evicted_connections'];

function captureEvents(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^periscope_l7_capture_events_total\{[^}]*event="([^"]+)"[^}]*\} (\S+)$/gm)) out.set(m[1]!, Number(m[2]));
  return out;
}

/** The capture's events between two scrapes: each that moved, and the losses in all. */
function eventsBetween(before: string, after: string): { events: Record<string, number>; lost: number; chunks: number } {
  const a = captureEvents(before);
  const b = captureEvents(after);
  const events: Record<string, number> = {};
  for (const [k, v] of b) if (v - (a.get(k) ?? 0) !== 0) events[`l7_${k}`] = v - (a.get(k) ?? 0);
  const lost = LOSSES.reduce((n, k) => n + (events[`l7_${k}`] ?? 0), 0);
  return { events, lost, chunks: events.l7_chunks ?? 0 };
}

/**
 * The agent (on `cpu`) with the l7 collector alone, selecting `select`; checked to run and, given a
 * probe, to capture both ends of the probe's requests before `fn` (the selection is applied on the
 * agent's walk of the cgroup tree: a load begun before it is caught mid-stream).
 */
async function withAgent<T>(select: string, cpu: number, fn: (agent: RunningAgent) => Promise<T>, probe?: Paced, wrap: string[] = []): Promise<T> {
  const agent = await startAgent(['--no-kubernetes', '--collectors', 'l7', '--l7-select', select], { wrap: [...wrap, 'taskset', '-c', String(cpu)] });
  try {
    await sleep(2_000); // start-up
    if (sample(await scrape(agent), 'periscope_collector_up', { collector: 'l7' }) !== 1) throw new Error(`the l7 collector is not up: ${agent.log()}`);
    for (let i = 0; probe; i++) {
      const before = await scrape(agent);
      await probe.client(50, 0.4);
      const c = probe.counted(before, await settled(agent));
      if (c.server > 0 && c.client > 0) break;
      if (i === 20) throw new Error(`${probe.name}: the agent captured neither end of the probe's requests: the selection (${select}) is broken`);
    }
    return await fn(agent);
  } finally {
    await agent.stop();
  }
}

/** Waits until the agent's chunk count stops moving (its ring drained after the load), 15 s at most. */
async function settled(agent: RunningAgent): Promise<string> {
  let last = await scrape(agent);
  for (let i = 0; i < 50; i++) {
    await sleep(300);
    const now = await scrape(agent);
    if (captureEvents(now).get('chunks') === captureEvents(last).get('chunks')) return now;
    last = now;
  }
  return last;
}

const selecting = (cgs: TestCgroup[]): string => cgs.map((c) => `cgroup:${c.path}`).join(',');

interface Load {
  name: string;
  /** the server's and the client's cgroups */
  cgroups: TestCgroup[];
  run: () => Promise<Record<string, number>>;
  /** the measures compared between the states, the first being the one the issue asks for */
  measures: string[];
  /** the agent's counts of a captured run (metrics before and after), against the load's own */
  counted: (before: string, after: string, load: Record<string, number>) => Promise<Record<string, number>> | Record<string, number>;
  /** the paced client: the probe before a captured run, and the lossless search */
  paced: Paced;
}

/** A warm-up run, then the four states `pairs` times (the order rotated each pair), and their means. */
async function states(l: Load, o: L7LoadOptions): Promise<Result[]> {
  const out: Result[] = [];
  const per = new Map<string, number[]>();
  const agentCpu: number[] = [];
  await l.run();
  for (let pair = 1; pair <= o.pairs; pair++) {
    for (let i = 0; i < STATES.length; i++) {
      const state = STATES[(i + pair - 1) % STATES.length]!;
      let row: Record<string, number>;
      if (state === 'off') row = await l.run();
      else {
        const captured = state === 'captured' || state === 'yielding';
        row = await withAgent(captured ? selecting(l.cgroups) : 'cgroup:/periscope-bench-selects-nothing', o.agentCpu, async (agent) => {
          const before = await scrape(agent);
          const a = procSample(agent.child.pid!);
          const t0 = Date.now();
          const load = await l.run();
          const loadSeconds = (Date.now() - t0) / 1000;
          const after = await settled(agent);
          const b = procSample(agent.child.pid!);
          const { events, lost, chunks } = eventsBetween(before, after);
          const counted = captured ? await l.counted(before, after, load) : {};
          if (captured && (chunks === 0 || Object.values(counted).every((v) => !v))) {
            throw new Error(`${l.name}: the captured run captured nothing (${JSON.stringify(events)}): the selection (${selecting(l.cgroups)}) is broken`);
          }
          if (state === 'nothing' && chunks !== 0) throw new Error(`${l.name}: a run selecting nothing captured ${chunks} chunks`);
          agentCpu.push((100 * (b.cpuSeconds - a.cpuSeconds)) / loadSeconds);
          return {
            ...load,
            agent_cpu_percent_of_one_core: (100 * (b.cpuSeconds - a.cpuSeconds)) / loadSeconds,
            agent_rss_mib: b.rssBytes / 2 ** 20,
            ...counted,
            l7_lost: lost,
            l7_chunks_per_second: chunks / loadSeconds,
            ...events,
          };
        }, captured ? l.paced : undefined, state === 'yielding' ? YIELDING : []);
      }
      for (const m of l.measures) (per.get(`${state} ${m}`) ?? per.set(`${state} ${m}`, []).get(`${state} ${m}`)!).push(row[m]!);
      out.push({ scenario: `${l.name}, pair ${pair}: ${STATE_NAMES[state]}`, seconds: o.seconds, ...row });
    }
  }
  const summary: Result = { scenario: `${l.name}: ${o.pairs} pairs (means)` };
  for (const m of l.measures) {
    const off = mean(per.get(`off ${m}`)!);
    summary[`${m}_off`] = off;
    for (const s of ['nothing', 'captured', 'yielding'] as const) {
      summary[`${m}_${s}`] = mean(per.get(`${s} ${m}`)!);
      summary[`${m}_${s}_vs_off_percent`] = 100 * (mean(per.get(`${s} ${m}`)!) / off - 1);
    }
    for (const s of STATES) summary[`${m}_spread_percent_${s}`] = spread(per.get(`${s} ${m}`)!);
  }
  summary.agent_cpu_percent_mean_of_on_runs = mean(agentCpu);
  out.push(summary);
  return out;
}

interface Paced {
  name: string;
  cgroups: TestCgroup[];
  /** the client at `rate` requests a second for `seconds`: requests answered, rate reached, requests it fell behind */
  client: (rate: number, seconds: number) => Promise<{ answered: number; per_second: number; behind: number }>;
  /** before each step (Redis: CONFIG RESETSTAT) */
  reset?: () => Promise<void>;
  /** the server's own count of the step's requests, where it keeps one */
  truth?: () => Promise<number>;
  /** the agent's counts at the server's end and the client's, between two scrapes */
  counted: (before: string, after: string) => { server: number; client: number };
}

const RATES = [1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000, 12_500, 15_000, 20_000, 25_000, 30_000, 40_000];

/** Steps the paced client's rate up under one capturing agent until a step is not exact or loses. */
async function lossless(p: Paced, o: L7LoadOptions): Promise<Result[]> {
  return withAgent(selecting(p.cgroups), o.agentCpu, async (agent) => {
    const out: Result[] = [];
    let best: { rate: number; chunks: number } | undefined;
    let failed = '';
    for (const rate of RATES) {
      await p.reset?.();
      const before = await scrape(agent);
      const a = procSample(agent.child.pid!);
      const c = await p.client(rate, o.stepSeconds);
      const after = await settled(agent);
      const b = procSample(agent.child.pid!);
      const { events, lost, chunks } = eventsBetween(before, after);
      const counted = p.counted(before, after);
      const truth = p.truth ? await p.truth() : c.answered;
      const exact = counted.server === c.answered && counted.client === c.answered && truth === c.answered;
      const kept = c.behind <= rate * o.stepSeconds * 0.01;
      out.push({
        scenario: `${p.name}, lossless search: ${rate} requests/s`,
        requests_answered: c.answered,
        requests_per_second: c.per_second,
        client_behind: c.behind,
        ...(p.truth ? { server_own_count: truth } : {}),
        counted_server_side: counted.server,
        counted_client_side: counted.client,
        exact: exact ? 1 : 0,
        l7_lost: lost,
        chunks_per_second: chunks / o.stepSeconds,
        agent_cpu_percent_of_one_core: (100 * (b.cpuSeconds - a.cpuSeconds)) / o.stepSeconds,
        ...events,
      });
      if (!exact || lost > 0) {
        failed = `at ${rate} requests/s: ${exact ? '' : 'counts not exact, '}${lost} lost`;
        break;
      }
      // a step the client could not keep was lossless at the rate it reached: the capture's rate is at least that
      best = { rate: c.per_second, chunks: chunks / o.stepSeconds };
      if (!kept) {
        failed = `the client could not keep ${rate} requests/s: the lossless rate is at least this`;
        break;
      }
    }
    out.push({
      scenario: `${p.name}: the highest lossless rate found (steps of ${o.stepSeconds} s)`,
      lossless_requests_per_second: best?.rate ?? 0,
      lossless_chunks_per_second: best?.chunks ?? 0,
      stopped_because: failed || 'the last step was lossless (the rate is at least this)',
    });
    return out;
  }, p);
}

/** The paced client (CPU 1, in `cg`, after `prefix`) against host:port. */
async function paced(cg: TestCgroup, prefix: string, proto: 'http' | 'redis', host: string, port: number, rate: number, seconds: number): Promise<{ answered: number; per_second: number; behind: number }> {
  const r = await cg.run(`exec ${prefix} taskset -c 1 python3 ${PACED} ${proto} ${host} ${port} ${rate} ${seconds} 32`, (seconds + 60) * 1000);
  if (r.code !== 0) throw new Error(`paced client: ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout) as { answered: number; per_second: number; behind: number };
}

/** nginx + wrk (keep-alive) in the four states; then the lossless rate of HTTP/1. */
export async function l7Nginx(o: L7LoadOptions): Promise<Result[]> {
  const nginxCg = new TestCgroup('bench-l7-nginx');
  const wrkCg = new TestCgroup('bench-l7-wrk');
  try {
    return await withNginx(async (nginx: Nginx) => {
      const http = (text: string, cg: TestCgroup, side: string, more: Record<string, string> = {}): number => sum(text, 'periscope_http_requests_total', { cgroup: cg.path, side, ...more });
      const pacedHttp: Paced = {
        name: 'l7: nginx, HTTP/1 keep-alive',
        cgroups: [nginxCg, wrkCg],
        client: (rate, seconds) => paced(wrkCg, `ip netns exec ${nginx.ns}`, 'http', '127.0.0.1', nginx.port, rate, seconds),
        counted: (before, after) => ({
          server: http(after, nginxCg, 'server') - http(before, nginxCg, 'server'),
          client: http(after, wrkCg, 'client') - http(before, wrkCg, 'client'),
        }),
      };
      const out = await states(
        {
          name: 'l7: nginx + wrk (keep-alive)',
          cgroups: [nginxCg, wrkCg],
          run: () => wrk(nginx, 'keep-alive', o.seconds, wrkCg),
          measures: ['requests_per_nginx_cpu_second', 'requests_per_second', 'requests_per_nginx_and_wrk_cpu_second'],
          counted: (before, after, load) => {
            const server = http(after, nginxCg, 'server') - http(before, nginxCg, 'server');
            const client = http(after, wrkCg, 'client') - http(before, wrkCg, 'client');
            // wrk counts the responses it read by the end; up to its 50 connections' last requests
            // were sent and served but not counted by it
            return {
              counted_server_side: server,
              counted_server_side_2xx: http(after, nginxCg, 'server', { status_class: '2xx' }) - http(before, nginxCg, 'server', { status_class: '2xx' }),
              counted_client_side: client,
              counted_server_minus_wrk: server - load.requests!,
              counted_client_minus_wrk: client - load.requests!,
            };
          },
          paced: pacedHttp,
        },
        o,
      );
      out.push(...(await lossless(pacedHttp, o)));
      return out;
    }, nginxCg);
  } finally {
    nginxCg.remove();
    wrkCg.remove();
  }
}

/** INFO commandstats calls of these commands (lowercase, `config|get`). */
async function calls(redis: RedisServer, commands: string[]): Promise<number> {
  const s = await redis.commandstats();
  return commands.reduce((n, c) => n + (s[c]?.calls ?? 0), 0);
}

/** redis-server (CPU 0) + redis-benchmark -P 16 (CPU 1) in the four states; then the lossless rate of Redis. */
export async function l7Redis(o: L7LoadOptions): Promise<Result[]> {
  const serverCg = new TestCgroup('bench-l7-redis');
  const clientCg = new TestCgroup('bench-l7-redis-client');
  const redis = await startRedis(undefined, { wrap: [...inCgroup(serverCg), 'taskset', '-c', '0'] });
  try {
    const cmds = (text: string, cg: TestCgroup, side: string, command: string): number => sum(text, 'periscope_redis_commands_total', { cgroup: cg.path, side, command });
    let n = 200_000; // SETs and as many GETs a run; sized to --seconds by the warm-up below
    const bench = async (): Promise<Record<string, number>> => {
      await redis.cli(['CONFIG', 'RESETSTAT']);
      const cpu = threadCpuSeconds(redis.pid);
      const t0 = Date.now();
      const csv = await redis.benchmark(['-t', 'set,get', '-n', String(n), '-c', '4', '-P', '16', '--csv'], { wrap: [...inCgroup(clientCg), 'taskset', '-c', '1'] });
      const elapsed = (Date.now() - t0) / 1000;
      const redisCpu = threadCpuSeconds(redis.pid) - cpu;
      const rps = (test: string): number => Number(new RegExp(`^"${test}","([\\d.]+)"`, 'm').exec(csv)?.[1] ?? NaN);
      const stats = await redis.commandstats();
      const ops = (stats.set?.calls ?? 0) + (stats.get?.calls ?? 0);
      if (ops < 2 * n) throw new Error(`redis-benchmark: ${ops} SETs and GETs, fewer than ${2 * n}: ${csv}`);
      return {
        commands: ops,
        ops_per_second: (2 * n) / (n / rps('SET') + n / rps('GET')),
        set_per_second: rps('SET'),
        get_per_second: rps('GET'),
        redis_cpu_seconds: redisCpu,
        redis_cpu_percent: (100 * redisCpu) / elapsed,
        ops_per_redis_cpu_second: ops / redisCpu,
        commandstats_set: stats.set?.calls ?? 0,
        commandstats_get: stats.get?.calls ?? 0,
        'commandstats_config|get': stats['config|get']?.calls ?? 0,
      };
    };
    const warm = await bench();
    // a whole number of pipelines of each client (redis-benchmark sends past -n to finish them)
    n = Math.max(100_032, 64 * Math.round((warm.ops_per_second! * o.seconds) / 2 / 64));
    const pacedRedis: Paced = {
      name: 'l7: redis, SET with one command outstanding per connection',
      cgroups: [serverCg, clientCg],
      client: (rate, seconds) => paced(clientCg, '', 'redis', redis.host, redis.port, rate, seconds),
      reset: async () => void (await redis.cli(['CONFIG', 'RESETSTAT'])),
      truth: () => calls(redis, ['set']),
      counted: (before, after) => ({
        server: cmds(after, serverCg, 'server', 'SET') - cmds(before, serverCg, 'server', 'SET'),
        client: cmds(after, clientCg, 'client', 'SET') - cmds(before, clientCg, 'client', 'SET'),
      }),
    };
    const out = await states(
      {
        name: `l7: redis-server + redis-benchmark -P 16 -c 4 -t set,get -n ${n}`,
        cgroups: [serverCg, clientCg],
        run: bench,
        measures: ['ops_per_second', 'ops_per_redis_cpu_second'],
        counted: (before, after, load) => {
          const d = (cg: TestCgroup, side: string, c: string): number => cmds(after, cg, side, c) - cmds(before, cg, side, c);
          const server = { set: d(serverCg, 'server', 'SET'), get: d(serverCg, 'server', 'GET'), config: d(serverCg, 'server', 'CONFIG GET') };
          const client = { set: d(clientCg, 'client', 'SET'), get: d(clientCg, 'client', 'GET') };
          return {
            counted_server_set: server.set,
            counted_server_get: server.get,
            counted_server_config_get: server.config,
            counted_client_set: client.set,
            counted_client_get: client.get,
            exact_vs_commandstats:
              server.set === load.commandstats_set && server.get === load.commandstats_get && client.set === load.commandstats_set && client.get === load.commandstats_get ? 1 : 0,
          };
        },
        paced: pacedRedis,
      },
      o,
    );
    out.push(...(await lossless(pacedRedis, o)));
    return out;
  } finally {
    await redis.stop();
    serverCg.remove();
    clientCg.remove();
  }
}
