/**
 * The collector contract, from the outside: a collector the agent has never heard of — declared in
 * one definition, as a new folder would — gets its metrics named and exported, its events named,
 * masked and served, and its route answered, with no line of the agent changed. And the agent,
 * doctor, the event log and the wire keep no list of collectors or event types of their own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AddressInfo } from 'node:net';
import { Agent } from './agent.js';
import { Api } from './api.js';
import { COLLECTORS, EVENT_TYPES } from '../collectors/registry.js';
import { cgroupSubject, defineCollector, type CollectorContext, type CollectorInstance, type Readings } from '../collectors/contract.js';
import { cgroupIdOf, findCgroup2Mount } from '../inventory/cgroups.js';
import { needsKernel } from '../../test/kernel.js';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

class Ticker implements CollectorInstance {
  ticks = 0;
  constructor(private readonly ctx: CollectorContext) {}
  status() {
    return { name: 'ticker', alternative: 'none needed', passedOver: [], programsAttached: 0 };
  }
  poll(): number {
    this.ticks++;
    this.ctx.emit({ type: 'tick', time: new Date().toISOString(), subject: cgroupSubject(cgroupIdOf(findCgroup2Mount())), n: this.ticks, argv: ['tool', '--token=s3cret'] });
    return 1;
  }
  read(): Readings {
    const root = cgroupSubject(cgroupIdOf(findCgroup2Mount()));
    return new Map([
      ['periscope_ticks_total', [{ subject: root, value: this.ticks }]],
      ['periscope_tick_gap_seconds', [{ subject: root, value: { bounds: [0.1, 1], cumulative: [1, 2], count: 3, sum: 2.5 } }]],
    ]);
  }
  subjects() {
    return [];
  }
  forget(): void {}
  drops() {
    return { events: 0, aggregates: 0 };
  }
  close(): void {}
}

const ticker = defineCollector({
  name: 'ticker',
  help: 'a collector the agent was never told about',
  spec: { file: 'none', programs: [], alternatives: [], maps: {} },
  metrics: [
    { type: 'counter', name: 'periscope_ticks_total', subject: 'cgroup', help: 'Ticks.' },
    { type: 'histogram', name: 'periscope_tick_gap_seconds', subject: 'cgroup', buckets: [0.1, 1], help: 'Gaps between ticks.' },
  ],
  events: [{ type: 'tick', help: 'a tick', argv: ['argv'] }],
  routes: [{ path: 'ticker/count', help: 'how many ticks', handler: (t: Ticker, q: URLSearchParams) => ({ ticks: t.ticks, asked: q.get('x') }) }],
  start: (ctx) => new Ticker(ctx),
});

test('a collector declared in one definition is exported, named, masked and routed without agent changes', async (t) => {
  if (!needsKernel(t)) return;
  const agent = new Agent({ collectors: [ticker], node: 'contract-node', log: () => undefined });
  agent.start();
  const server = await new Api(agent).listen('127.0.0.1', 0);
  t.after(() => {
    agent.stop();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const metrics = await (await fetch(`${url}/metrics`)).text();
  assert.match(metrics, /^# TYPE periscope_ticks_total counter$/m);
  const ticks = /^periscope_ticks_total\{cgroup="\/",namespace="",pod="",container="",workload_kind="",workload="",node="contract-node"\} (\d+)$/m.exec(metrics);
  assert.ok(ticks && Number(ticks[1]) >= 1, metrics);
  assert.match(metrics, new RegExp(`^periscope_events_total\\{type="tick"\\} ${ticks[1]}$`, 'm'), 'every tick was an event');
  assert.match(metrics, /^periscope_tick_gap_seconds_bucket\{cgroup="\/".*,le="0.1"\} 1$/m);
  assert.match(metrics, /^periscope_collector_up\{collector="ticker",alternative="none needed"\} 1$/m);

  const body = (await (await fetch(`${url}/api/v1/events?type=tick`)).json()) as { events: Record<string, unknown>[] };
  assert.ok(body.events.length >= 1);
  assert.deepEqual(body.events[0], { ...body.events[0], type: 'tick', node: 'contract-node', cgroup: '/', n: 1, argv: ['tool', '--token=***'] });
  const other = await fetch(`${url}/api/v1/events?type=exec`);
  assert.equal(other.status, 400, 'only the running collectors\' event types are known');

  const routed = (await (await fetch(`${url}/api/v1/ticker/count?x=y`)).json()) as { ticks: number; asked: string };
  assert.equal(routed.asked, 'y');
  assert.ok(routed.ticks >= body.events.length);
});

/** The non-test TypeScript sources of a folder. */
const sources = (dir: string): string[] =>
  readdirSync(join(SRC, dir))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(SRC, dir, f));

test('the agent, doctor, the event log and the wire name no collector and no event type', () => {
  const files = [...sources('agent'), ...sources('cli'), ...sources('wire')];
  assert.ok(files.some((f) => f.endsWith('event-log.ts')) && files.some((f) => f.endsWith('doctor.ts')));
  for (const name of [...COLLECTORS.map((c) => c.name), ...EVENT_TYPES]) {
    // (a Node event name such as process.on('exit') is not one of ours)
    const quoted = new RegExp(`(?<!\\.(?:on|once|off)\\()['"\`]${name}['"\`]`);
    for (const f of files) assert.doesNotMatch(readFileSync(f, 'utf8'), quoted, `${f} names "${name}": read it from the registry`);
  }
});

test('every collector folder is in the registry, and names and metrics are declared once', () => {
  const folders = readdirSync(join(SRC, 'collectors'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(SRC, 'collectors', d.name, 'index.ts')))
    .map((d) => d.name)
    .sort();
  assert.deepEqual([...COLLECTORS.map((c) => c.name)].sort(), folders);
  const metrics = COLLECTORS.flatMap((c) => c.metrics.map((m) => m.name));
  assert.equal(new Set(metrics).size, metrics.length, 'a metric belongs to one collector');
  assert.equal(new Set(EVENT_TYPES).size, EVENT_TYPES.length, 'an event type belongs to one collector');
  for (const c of COLLECTORS) {
    assert.ok(existsSync(join(SRC, 'collectors', c.name, `${c.name}.bpf.c`)), `${c.name}: its kernel half sits beside it`);
    assert.ok(c.spec.alternatives.length > 0, `${c.name} declares its alternatives`);
    for (const m of c.metrics) assert.match(m.name, /^periscope_[a-z0-9_]+$/, m.name);
  }
});
