/**
 * Live streams cost bounded memory: 100 clients open the event stream and never read while 5,000
 * execs run. Only --max-stream-clients of them get a stream (the rest 503), each holds a bounded
 * backlog (the rest of its events are dropped and counted), and the agent's RSS stays bounded and
 * comes back down once the clients are gone. Before the caps, this took the agent from 106 to 454 MB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { TestCgroup, eventually, needsKernel, sleep } from '../kernel.js';
import { sample, startAgent } from '../agent-process.js';
import { request } from '../raw-http.js';

const MiB = 1 << 20;
const CLIENTS = 100;
const EXECS = 5_000;

/** A field of /proc/PID/status in bytes (VmRSS, VmHWM). */
function procStatus(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, field);
  return Number(m[1]) * 1024;
}

const mib = (bytes: number): string => (bytes / MiB).toFixed(1);

/** A client, from its own loopback address, that asks for the stream and then never reads. */
function silentSubscriber(port: number, i: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: `127.0.1.${i + 1}` }, () => {
      socket.pause();
      socket.write(request('/api/v1/events/stream'));
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** The status line the server sent first: read only now, after the storm. */
function firstStatus(socket: Socket): Promise<number> {
  return new Promise((resolve) => {
    socket.once('data', (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 0)));
    socket.once('close', () => resolve(0));
    socket.resume();
  });
}

test('100 clients that never read and 5,000 execs: 503 past the cap, drops counted, RSS bounded and returned', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent();
  const cg = new TestCgroup('stream-storm');
  const sockets: Socket[] = [];
  t.after(async () => {
    sockets.forEach((s) => s.destroy());
    await agent.stop();
    cg.remove();
  });
  const pid = agent.child.pid!;
  const port = Number(new URL(agent.url).port);
  const metrics = async (): Promise<string> => (await fetch(`${agent.url}/metrics`)).text();

  // the baseline: the agent up, scraped once, settled — past the profiler's first drain, which reads
  // kallsyms and the symbol tables once (~30 MiB, BENCHMARKS.md: idle)
  await eventually(async () => (/^periscope_profile_events_total\{event="drains"\} [1-9]/m.test(await metrics()) ? true : undefined), 15_000, 'the profiler\'s first drain');
  await sleep(2_000);
  const baseline = procStatus(pid, 'VmRSS');
  writeFileSync(`/proc/${pid}/clear_refs`, '5'); // resets VmHWM, the peak RSS, to now

  for (let i = 0; i < CLIENTS; i++) sockets.push(await silentSubscriber(port, i));
  const status = await eventually(async () => {
    const s = (await (await fetch(`${agent.url}/api/v1/status`)).json()) as { api: { streams: number; refused: { streams: number } } };
    return s.api.streams + s.api.refused.streams === CLIENTS ? s.api : undefined;
  }, 10_000, 'every client to be answered');
  assert.equal(status.streams, 16, 'the default --max-stream-clients');
  assert.equal(status.refused.streams, CLIENTS - 16);

  let sampledPeak = 0;
  const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, procStatus(pid, 'VmRSS'))), 100);
  const started = Date.now();
  // each exec carries a 250-byte argument: ~5 MB of events per subscriber, more than the ~4 MB the
  // kernel's socket buffers take from a client that does not read, so the agent's own backlog fills
  const storm = await cg.run(`arg=$(printf '%0250d' 0); i=0; while [ $i -lt ${EXECS} ]; do /bin/true $arg; i=$((i+1)); done`, 300_000);
  assert.equal(storm.code, 0, storm.stderr);
  const stormMs = Date.now() - started;
  const text = await eventually(async () => {
    const m = await metrics();
    return sample(m, 'periscope_process_execs_total', { cgroup: cg.path }) === EXECS ? m : undefined;
  }, 10_000, `the ${EXECS} execs counted`);
  clearInterval(sampler);
  const peak = Math.max(sampledPeak, procStatus(pid, 'VmHWM'));
  const lost = sample(text, 'periscope_events_lost_total', { source: 'api_stream' }) ?? 0;
  assert.ok(lost > 0, 'the subscribers that did not read lost events, and the loss is counted');

  // only now do the clients look at what they got
  const statuses = await Promise.all(sockets.map(firstStatus));
  assert.equal(statuses.filter((s) => s === 200).length, 16, statuses.join(','));
  assert.equal(statuses.filter((s) => s === 503).length, CLIENTS - 16, statuses.join(','));
  sockets.forEach((s) => s.destroy());
  await eventually(async () => {
    const s = (await (await fetch(`${agent.url}/api/v1/status`)).json()) as { api: { streams: number } };
    return s.api.streams === 0 ? true : undefined;
  }, 5_000, 'the streams to close');
  await sleep(5_000);
  const after = procStatus(pid, 'VmRSS');

  t.diagnostic(
    `${EXECS} execs in ${stormMs} ms; ${lost} stream events dropped; RSS baseline ${mib(baseline)} MiB, peak ${mib(peak)} MiB (+${mib(peak - baseline)}), ` +
      `5 s after the clients left ${mib(after)} MiB (+${mib(after - baseline)})`,
  );
  assert.ok(peak - baseline < 50 * MiB, `peak RSS ${mib(peak)} MiB is within 50 MiB of the baseline ${mib(baseline)} MiB`);
  assert.ok(after - baseline < 30 * MiB, `RSS ${mib(after)} MiB after the clients left is within 30 MiB of the baseline ${mib(baseline)} MiB`);
  assert.equal(agent.child.exitCode, null);
});
