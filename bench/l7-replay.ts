/**
 * What the l7 collector's user space costs per chunk, apart from the kernel and the scheduler: real
 * traffic (redis-benchmark -P 16 against Redis, keep-alive GETs against nginx) is captured once into
 * memory through a ring large enough to lose nothing, then the same records are handed to a fresh
 * collector `repeat` times (each pass with connection ids of its own) and timed. The minimum of the
 * passes is the figure: the machine is shared and noisy, and nothing in a pass waits.
 */
import { L7Collector } from '../src/collectors/l7/index.js';
import { type CaptureRecord } from '../src/collectors/l7/capture.js';
import { cgroupSubject } from '../src/collectors/contract.js';
import { TestCgroup } from '../test/kernel.js';
import { testContext } from '../test/context.js';
import { httpRequests, inCgroup, startNginx, startRedis } from '../test/servers.js';
import { type Result } from './hub-store.js';

type Load = 'redis' | 'nginx';

async function record(load: Load): Promise<CaptureRecord[]> {
  const afters: (() => unknown)[] = [];
  const t = { after: (f: () => unknown) => afters.push(f), diagnostic: () => undefined } as unknown as Parameters<typeof startRedis>[0];
  const server = new TestCgroup('bench-replay-server');
  const client = new TestCgroup('bench-replay-client');
  const rec = new L7Collector(testContext(), { ringBytes: 1 << 26 });
  const got: CaptureRecord[] = [];
  try {
    rec.select([server, client].map((cg) => ({ subject: cgroupSubject(cg.id), group: cg.path })));
    const drain = rec.capture.drain.bind(rec.capture);
    rec.capture.drain = (f, batches) => drain((r) => (got.push(r), f(r)), batches);
    const timer = setInterval(() => rec.poll(), 50);
    try {
      if (load === 'redis') {
        const redis = await startRedis(t, { wrap: inCgroup(server) });
        await redis.benchmark(['-P', '16', '-t', 'set,get', '-n', '20000', '-c', '4', '-q'], { wrap: inCgroup(client) });
      } else {
        const nginx = await startNginx(t, { wrap: inCgroup(server) });
        const plan: [string, string, number][] = [];
        for (let i = 0; i < 3000; i++) plan.push(['GET', `/users/${i}`, 0]);
        await httpRequests(nginx, plan, { conns: 4, perConn: 750, wrap: inCgroup(client) });
      }
      await new Promise((r) => setTimeout(r, 500));
      rec.poll();
    } finally {
      clearInterval(timer);
    }
    const lost = rec.capture.drops().ringFull;
    if (lost > 0) throw new Error(`the recording lost ${lost} records to a full ring: run it on a quieter machine`);
    return got;
  } finally {
    rec.close();
    for (const f of afters.reverse()) await f();
    server.remove();
    client.remove();
  }
}

export async function l7Replay(repeat: number): Promise<Result[]> {
  const out: Result[] = [];
  for (const load of ['redis', 'nginx'] as const) {
    const records = await record(load);
    const chunks = records.filter((r) => r.kind === 'chunk').length;
    const replay = new L7Collector(testContext(), {});
    try {
      const take = (replay as unknown as { take(r: CaptureRecord): void }).take.bind(replay);
      const perPass: number[] = [];
      for (let pass = 1; pass <= repeat; pass++) {
        const shift = BigInt(pass) << 40n;
        const start = process.hrtime.bigint();
        for (const r of records) take({ ...r, conn: r.conn + shift });
        perPass.push(Number(process.hrtime.bigint() - start) / 1000 / chunks);
      }
      const counted = (replay.read().get(load === 'redis' ? 'periscope_redis_commands_total' : 'periscope_http_requests_total') ?? []).reduce((a, s) => a + (typeof s.value === 'number' ? s.value : 0), 0);
      out.push({
        scenario: `l7 user space, ${load === 'redis' ? 'redis-benchmark -P 16 (20,000 SET and GET)' : 'nginx keep-alive GETs (3,000)'} replayed ${repeat} times`,
        records: records.length,
        chunks,
        requests_counted_per_pass: counted / repeat,
        microseconds_per_chunk_min: Math.min(...perPass),
        microseconds_per_chunk_median: perPass.sort((a, b) => a - b)[Math.floor(perPass.length / 2)]!,
      });
    } finally {
      replay.close();
    }
  }
  return out;
}
