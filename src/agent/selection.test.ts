/**
 * Selections, the agent's side: rules read from `--<collector>-select` (and refused with a line that
 * says why), matched against cgroups named as series are, with Kubernetes and without; the flags
 * generated from the registry; and an agent telling a collector it has never heard of which cgroups
 * its selection covers as they come and go.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { choose, parseSelection, selects, workloadGroup } from './selection.js';
import { Attributor, type PodSource } from '../inventory/attribution.js';
import { type PodInfo } from '../inventory/kubernetes.js';
import { collectorFlags, collectorFlagSpec, collectorUsage, readCollectorFlags } from '../cli/collector-flags.js';
import { parseFlagsWith } from '../cli/flags.js';
import { defineCollector, type CollectorContext, type CollectorInstance, type Selected } from '../collectors/contract.js';
import { PeriscopeError } from '../kernel/errors.js';
import { needsKernel, TestCgroup } from '../../test/kernel.js';

const pod = (uid: string, namespace: string, name: string, workloadKind: string, workload: string): PodInfo => ({
  uid,
  namespace,
  name,
  node: 'n1',
  labels: {},
  workloadKind,
  workload,
  containers: new Map([['a'.repeat(64), 'app']]),
  ips: [],
  hostNetwork: false,
  phase: 'Running',
});
const WEB = '11111111-2222-3333-4444-555555555555';
const WEB2 = '11111111-2222-3333-4444-666666666666';
const PG = '99999999-8888-7777-6666-555555555555';
const PODS = new Map([
  [WEB, pod(WEB, 'shop', 'web-0', 'StatefulSet', 'web')],
  [WEB2, pod(WEB2, 'shop', 'web-1', 'StatefulSet', 'web')],
  [PG, pod(PG, 'db', 'pg-0', 'StatefulSet', 'pg')],
]);
const source: PodSource = { pod: (uid) => PODS.get(uid) };
const podPath = (uid: string): string => `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid.replaceAll('-', '_')}.slice`;
const CGROUPS = [
  { id: 1, path: podPath(WEB) },
  { id: 2, path: `${podPath(WEB)}/cri-containerd-${'a'.repeat(64)}.scope` },
  { id: 3, path: podPath(WEB2) },
  { id: 4, path: `${podPath(WEB2)}/cri-containerd-${'a'.repeat(64)}.scope` },
  { id: 5, path: podPath(PG) },
  { id: 6, path: `${podPath(PG)}/cri-containerd-${'a'.repeat(64)}.scope` },
  { id: 7, path: '/system.slice/nginx.service' },
  { id: 8, path: '/system.slice/nginx.service/worker' },
  { id: 9, path: '/system.slice/nginx-exporter.service' },
  { id: 10, path: '/' },
  // a pod the inventory does not know (yet)
  { id: 11, path: podPath('00000000-0000-0000-0000-000000000000') },
];

function chosen(rules: string, attributor = new Attributor({ node: 'n1', kubernetes: source })): Record<number, string> {
  return Object.fromEntries(choose(parseSelection(rules), CGROUPS, (p) => attributor.attribute(p)).map((s) => [s.subject.id, s.group]));
}

test('a selection reads namespaces, pods, workloads, cgroup subtrees and all, and refuses anything else with the reason', () => {
  assert.deepEqual(parseSelection('namespace:shop, pod:db/pg-0,workload:shop/web,cgroup:/system.slice/nginx.service/,all'), [
    { kind: 'namespace', namespace: 'shop' },
    { kind: 'pod', namespace: 'db', name: 'pg-0' },
    { kind: 'workload', namespace: 'shop', name: 'web' },
    { kind: 'cgroup', path: '/system.slice/nginx.service' },
    { kind: 'all' },
  ]);
  assert.deepEqual(parseSelection('cgroup:/'), [{ kind: 'cgroup', path: '/' }]);
  for (const [bad, why] of [
    ['', /selects nothing/],
    [' , ', /selects nothing/],
    ['shop', /"shop" is not a rule/],
    ['namespace:', /namespace "" is not a Kubernetes name/],
    ['namespace:Shop', /not a Kubernetes name/],
    ['pod:web-0', /write pod:NAMESPACE\/NAME/],
    ['pod:shop/web/0', /write pod:NAMESPACE\/NAME/],
    ['cgroup:system.slice', /begins with "\/"/],
    ['cgroup:/a/../b', /begins with "\/"/],
    ['label:app=web', /not a rule/],
  ] as const) {
    assert.throws(() => parseSelection(bad), why, bad);
  }
});

test('with Kubernetes, a namespace, pod or workload covers its pods\' cgroups and their containers\', each in its workload', () => {
  const web = 'shop/StatefulSet/web';
  assert.deepEqual(chosen('namespace:shop'), { 1: web, 2: web, 3: web, 4: web });
  assert.deepEqual(chosen('pod:shop/web-1'), { 3: web, 4: web });
  assert.deepEqual(chosen('workload:db/pg'), { 5: 'db/StatefulSet/pg', 6: 'db/StatefulSet/pg' });
  assert.deepEqual(chosen('pod:db/pg-0,pod:shop/web-0'), { 1: web, 2: web, 5: 'db/StatefulSet/pg', 6: 'db/StatefulSet/pg' });
  assert.deepEqual(chosen('namespace:kube-system'), {}, 'a namespace with no pod here covers nothing');
  // a pod the inventory does not name is covered by no Kubernetes rule until it is named
  assert.ok(!(11 in chosen('namespace:shop,namespace:db,namespace:default')));
  assert.equal(Object.keys(chosen('all')).length, CGROUPS.length);
});

test('without Kubernetes, a cgroup subtree covers the cgroup and those below it, not a sibling sharing its prefix', () => {
  const bare = new Attributor({ node: 'n1' });
  assert.deepEqual(chosen('cgroup:/system.slice/nginx.service', bare), { 7: 'nginx.service', 8: 'nginx.service' });
  assert.deepEqual(chosen('namespace:shop', bare), {}, 'no pod is named without the inventory');
  const pods = chosen(`cgroup:${podPath(WEB)}`, bare);
  assert.deepEqual(Object.keys(pods), ['1', '2']);
  assert.equal(pods[1], podPath(WEB), 'a pod nobody named is its own workload');
  assert.equal(workloadGroup('/user.slice/session-3.scope', { namespace: '', pod: '', container: '', workload_kind: 'SystemdUnit', workload: 'session-3.scope' }), 'session-3.scope');
  assert.equal(workloadGroup('/odd', { namespace: '', pod: '', container: '', workload_kind: '', workload: '' }), '/odd');
  assert.ok(!selects(parseSelection('workload:shop/nginx.service'), '/system.slice/nginx.service', { namespace: 'shop', pod: '', container: '', workload_kind: 'SystemdUnit', workload: 'nginx.service' }));
});

// --- the flags, from a registry of collectors the CLI has never heard of --------------------------

const nothing = (): never => {
  throw new Error('not started in this test');
};
const picky = defineCollector({
  name: 'picky',
  help: 'works on selected workloads',
  spec: { file: 'none', programs: [], alternatives: [], maps: {} },
  metrics: [],
  events: [],
  selection: { help: 'workloads it looks at' },
  settings: [
    { name: 'depth', value: 'N', default: '3', help: 'how deep', check: (v) => (/^\d+$/.test(v) ? undefined : `wants a number, not "${v}"`) },
    { name: 'mode', value: 'a|b', default: 'a', help: 'which way', check: (v) => (v === 'a' || v === 'b' ? undefined : 'wants a or b') },
  ],
  start: nothing,
});
const plain = defineCollector({ name: 'plain', help: 'works everywhere', spec: { file: 'none', programs: [], alternatives: [], maps: {} }, metrics: [], events: [], start: nothing });

test('the registry\'s collectors declare their flags: --<name>-select and --<name>-<setting>, checked with one line each', () => {
  const flags = collectorFlags([plain, picky]);
  assert.deepEqual(flags.map((f) => f.flag), ['picky-select', 'picky-depth', 'picky-mode']);
  const usage = collectorUsage(flags);
  assert.match(usage, /^collectors:\n {2}--picky-select RULES +workloads it looks at; comma-separated namespace:NS/);
  assert.match(usage, /--picky-depth N +how deep \(default 3\)/);
  const parse = (args: string[]): ReturnType<typeof readCollectorFlags> => {
    const p = parseFlagsWith('agent', 'usage', args, { listen: { type: 'string' } }, collectorFlagSpec(flags));
    assert.ok(p);
    return readCollectorFlags('agent', [plain, picky], flags, p.extra);
  };
  assert.deepEqual(parse(['--picky-select', 'namespace:shop,cgroup:/system.slice', '--picky-mode', 'b', '--listen', ':1']), {
    selections: { picky: 'namespace:shop,cgroup:/system.slice' },
    settings: { picky: { mode: 'b' } },
  });
  assert.deepEqual(parse([]), { selections: {}, settings: {} }, 'no flag, no selection: the collector does not run');
  const refused = (args: string[], message: RegExp): void => {
    assert.throws(() => parse(args), (e: unknown) => e instanceof PeriscopeError && e.code === 'BAD_ARGUMENT' && message.test(e.message) && !e.message.includes('\n'), args.join(' '));
  };
  refused(['--picky-select', 'shop'], /^--picky-select: "shop" is not a rule/);
  refused(['--picky-select', ''], /^--picky-select: selects nothing/);
  refused(['--picky-depth', 'deep'], /^--picky-depth: wants a number, not "deep"/);
  refused(['--plain-select', 'all'], /unknown flag --plain-select/);
});

// --- the agent, with the kernel --------------------------------------------------------------------

class Picky implements CollectorInstance {
  readonly calls: Selected[][] = [];
  constructor(readonly ctx: CollectorContext) {}
  status() {
    return { name: 'picky', alternative: 'none needed', passedOver: [], programsAttached: 0 };
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
  select(selected: readonly Selected[]): void {
    this.calls.push([...selected]);
  }
}

test('the agent starts a selective collector only with a selection, gives it its settings, and tells it the cgroups covered as they come and go', async (t) => {
  if (!needsKernel(t)) return;
  const { Agent } = await import('./agent.js');
  const made: Picky[] = [];
  const def = defineCollector({ ...picky, start: (ctx) => {
    const p = new Picky(ctx);
    made.push(p);
    return p;
  } });
  const lines: string[] = [];
  const idle = new Agent({ collectors: [def, defineCollector({ ...plain, start: (ctx) => new Picky(ctx) })], log: (l) => lines.push(l) });
  idle.start();
  idle.stop();
  assert.deepEqual(idle.unselected, ['picky']);
  assert.equal(made.length, 0, 'not started without a selection');
  assert.ok(lines.some((l) => l === 'collector picky: not started, no workload selected (--picky-select)'), lines.join('\n'));

  const top = new TestCgroup('select');
  const child = join(top.dir, 'worker');
  t.after(() => {
    try {
      rmdirSync(child);
    } catch {
      // gone already
    }
    top.remove();
  });
  assert.throws(() => new Agent({ collectors: [def], selections: { picky: 'nonsense' } }), /the selection of picky: "nonsense" is not a rule/);
  assert.throws(() => new Agent({ collectors: [def], selections: { picky: 'all' }, settings: { picky: { depth: 'x' } } }), /--picky-depth: wants a number/);
  const agent = new Agent({ collectors: [def], selections: { picky: `cgroup:${top.path}` }, settings: { picky: { mode: 'b' } }, log: () => undefined });
  agent.start();
  t.after(() => agent.stop());
  const instance = made[0];
  assert.ok(instance);
  assert.deepEqual(instance.ctx.settings, { depth: '3', mode: 'b' }, 'every setting, the default where none was given');
  const ids = (c: Selected[] | undefined): number[] => (c ?? []).map((s) => s.subject.id).sort((a, b) => a - b);
  assert.deepEqual(ids(instance.calls.at(-1)), [top.id], 'told at start');
  assert.equal(instance.calls.at(-1)![0]!.group, top.path, 'a cgroup outside pods is its own workload');
  const n = instance.calls.length;
  agent.janitor();
  assert.equal(instance.calls.length, n, 'told nothing while nothing changed');
  mkdirSync(child);
  agent.janitor();
  const { cgroupIdOf } = await import('../inventory/cgroups.js');
  assert.deepEqual(ids(instance.calls.at(-1)), [top.id, cgroupIdOf(child)].sort((a, b) => a - b), 'a new cgroup below the subtree is covered at the next walk');
  rmdirSync(child);
  agent.janitor();
  assert.deepEqual(ids(instance.calls.at(-1)), [top.id], 'and one gone is not');
});
