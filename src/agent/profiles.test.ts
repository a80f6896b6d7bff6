/**
 * The agent's side of profiles, from the outside: a profiling collector the agent has never heard of
 * (it declares `profiles` and answers `profiles()`) has its stacks named like events, kept in
 * windows, merged by GET /api/v1/profiles as JSON, folded text and pprof, filtered by workload, pod
 * and cgroup, drained at each query (at most every 200 ms), and taken once by the shipper. Malformed
 * and hostile queries get a 400 that names the parameter, never a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type AddressInfo } from 'node:net';
import { Agent } from './agent.js';
import { Api } from './api.js';
import { cgroupSubject, defineCollector, type CollectorInstance, type ProfileDrain } from '../collectors/contract.js';
import { cgroupIdOf, findCgroup2Mount } from '../inventory/cgroups.js';
import { parseFolded, type ProfileJson } from '../profiles/model.js';
import { fromPprof } from '../profiles/pprof.js';
import { ProfileWireSchema } from '../wire/profiles.js';
import { needsKernel } from '../../test/kernel.js';

class Sampler implements CollectorInstance {
  drains = 0;
  private last = Date.now();
  status() {
    return { name: 'sampler', alternative: 'none needed', passedOver: [], programsAttached: 0 };
  }
  poll(): number {
    return 0;
  }
  read() {
    return new Map();
  }
  subjects() {
    return [];
  }
  forget(): void {}
  drops() {
    return { events: 0, aggregates: 0 };
  }
  close(): void {}
  profiles(): ProfileDrain {
    this.drains++;
    const from = this.last;
    this.last = Date.now() + 1;
    const root = cgroupSubject(cgroupIdOf(findCgroup2Mount()));
    return {
      from,
      to: this.last,
      period: { cpu: 1e9 / 19, offcpu: 1 },
      profiles: [
        { subject: root, type: 'cpu', stacks: [{ frames: ['app', 'main', 'work'], value: 3 }, { frames: ['app', 'main', 'idle'], value: 1 }] },
        { subject: root, type: 'offcpu', stacks: [{ frames: ['app', 'main', 'read', 'schedule_[k]'], value: 5e6 }] },
      ],
    };
  }
}

let instance: Sampler | undefined;
const sampler = defineCollector({
  name: 'sampler',
  help: 'a profiling collector the agent was never told about',
  spec: { file: 'none', programs: [], alternatives: [], maps: {} },
  metrics: [],
  events: [],
  profiles: ['cpu', 'offcpu'],
  start: () => (instance = new Sampler()),
});

test('an unknown profiling collector is drained, named, merged and served as JSON, folded and pprof, and shipped once', async (t) => {
  if (!needsKernel(t)) return;
  const agent = new Agent({ collectors: [sampler], node: 'profile-node', log: () => undefined });
  agent.start();
  const server = await new Api(agent).listen('127.0.0.1', 0);
  t.after(() => {
    agent.stop();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/profiles`;
  const get = async (q: string): Promise<Response> => fetch(`${url}?${q}`);

  const first = (await (await get('from=-1m')).json()) as ProfileJson;
  assert.equal(instance!.drains, 1, 'a query drains');
  assert.equal(first.type, 'cpu');
  assert.equal(first.unit, 'count');
  assert.equal(first.total, 4);
  assert.deepEqual(first.stacks[0], { frames: ['app', 'main', 'work'], value: 3 });
  assert.ok(Math.abs(first.period - 1e9 / 19) < 1e-6);

  await get('from=-1m');
  assert.equal(instance!.drains, 1, 'a second query within 200 ms does not drain again');
  await new Promise((r) => setTimeout(r, 250));
  const merged = (await (await get('from=-1m')).json()) as ProfileJson;
  assert.equal(instance!.drains, 2);
  assert.equal(merged.total, 8, 'two windows merged');

  const offcpu = (await (await get('type=offcpu&cgroup=/&from=-1m')).json()) as ProfileJson;
  assert.equal(offcpu.unit, 'nanoseconds');
  assert.equal(offcpu.total, 1e7);
  const none = (await (await get('workload=shop/cart&from=-1m')).json()) as ProfileJson;
  assert.equal(none.total, 0, 'the root cgroup is no workload of shop');
  assert.deepEqual(none.stacks, []);

  const folded = parseFolded(await (await get('from=-1m&format=folded')).text());
  assert.deepEqual(folded, [{ frames: ['app', 'main', 'work'], value: 6 }, { frames: ['app', 'main', 'idle'], value: 2 }]);
  const pprof = fromPprof(Buffer.from(await (await get('from=-1m&format=pprof')).arrayBuffer()));
  assert.equal(pprof.stacks.reduce((n, s) => n + s.values[0]!, 0), 8);
  const limited = (await (await get('from=-1m&limit=1')).json()) as ProfileJson;
  assert.deepEqual(limited.dropped, { stacks: 1, value: 2 });

  const shipped = agent.profilesToShip();
  assert.ok(shipped.length >= 4, 'each window, per type');
  for (const w of shipped) assert.ok(ProfileWireSchema.safeParse(w).success, 'what is shipped passes the wire schema');
  assert.ok(shipped.every((w) => w.labels.cgroup === '/'));
  assert.deepEqual(agent.profilesToShip(), [], 'a window is shipped once');

  // hostile and malformed queries: a 400 naming the parameter, and the agent goes on
  for (const [q, says] of [
    ['type=heap', /type/],
    ['format=svg', /format/],
    ['from=yesterday', /from/],
    ['from=-1m&to=-2m', /before/],
    ['limit=0', /limit/],
    ['limit=1e309', /limit/],
    ['workload=a/b/c', /workload/],
    ['cgroup=relative', /cgroup/],
    ['bogus=1', /bogus/],
  ] as const) {
    const r = await get(q);
    assert.equal(r.status, 400, q.slice(0, 40));
    const body = (await r.json()) as { error: string };
    assert.match(body.error, says, q.slice(0, 40));
  }
  const long = (await (await get(`from=-1m&namespace=${'x'.repeat(8000)}`)).json()) as ProfileJson;
  assert.equal(long.total, 0, 'a long value matches nothing');
  assert.equal((await get('from=-1m')).status, 200, 'still serving');
});
