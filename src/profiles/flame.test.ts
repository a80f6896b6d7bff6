import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTree, diffFunctions, diffTrees, functionTable, isKernelFrame, layout, matchedValue, nodeAt, parseSearch, previousRange, shareDelta, type FlameNode } from './flame.js';
import { parseFolded } from './model.js';

const STACKS = parseFolded(`app;main;work;compute 60
app;main;work;write;vfs_write_[k] 20
app;main;idle 10
app;main 5
other;main 5
`);

/** A tree as nested [name, total, self, children] for readable expectations. */
type Shape = [string, number, number, Shape[]];
const shape = (n: FlameNode): Shape => [n.name, n.total, n.self, n.children.map(shape)];

test('stacks that share a prefix merge into one path, with total and self per node', () => {
  assert.deepEqual(shape(buildTree(STACKS)), [
    'all',
    100,
    0,
    [
      [
        'app',
        95,
        0,
        [
          [
            'main',
            95,
            5,
            [
              ['idle', 10, 10, []],
              [
                'work',
                80,
                0,
                [
                  ['compute', 60, 60, []],
                  ['write', 20, 0, [['vfs_write_[k]', 20, 20, []]]],
                ],
              ],
            ],
          ],
        ],
      ],
      ['other', 5, 0, [['main', 5, 5, []]]],
    ],
  ]);
});

test('equal stacks given twice add up, and stacks without frames or value are skipped', () => {
  const t = buildTree([
    { frames: ['a', 'b'], value: 2 },
    { frames: ['a', 'b'], value: 3 },
    { frames: [], value: 7 },
    { frames: ['a'], value: 0 },
  ]);
  assert.deepEqual(shape(t), ['all', 5, 0, [['a', 5, 0, [['b', 5, 5, []]]]]]);
});

test('a 300-frame stack builds without recursion trouble and lays out to its full depth', () => {
  const frames = Array.from({ length: 300 }, (_, i) => `f${i}`);
  const t = buildTree([{ frames, value: 1 }]);
  assert.equal(nodeAt(t, frames).node.name, 'f299');
  assert.equal(layout(t, [], 0.001).depth, 301);
});

test('self and total per function: total counts a recursive function once per stack', () => {
  const rows = functionTable([...STACKS, { frames: ['app', 'rec', 'rec', 'rec'], value: 4 }]);
  const by = new Map(rows.map((r) => [r.name, r]));
  assert.deepEqual(by.get('main'), { name: 'main', self: 10, total: 100 });
  assert.deepEqual(by.get('rec'), { name: 'rec', self: 4, total: 4 });
  assert.deepEqual(by.get('compute'), { name: 'compute', self: 60, total: 60 });
  assert.deepEqual(by.get('work'), { name: 'work', self: 0, total: 80 });
  assert.equal(rows[0]!.name, 'main', 'largest total first');
  assert.equal(rows[1]!.name, 'app');
});

test('the layout puts children side by side by value and leaves out frames narrower than a pixel', () => {
  const l = layout(buildTree(STACKS), [], 0.06);
  const at = new Map(l.rects.map((r) => [r.key, r]));
  assert.deepEqual([...at.keys()], ['', 'app', 'app;main', 'app;main;idle', 'app;main;work', 'app;main;work;compute', 'app;main;work;write', 'app;main;work;write;vfs_write_[k]']);
  assert.equal(at.get('app;main;work')!.x, 0.1, 'after idle (10 of 100)');
  assert.equal(at.get('app;main;work')!.width, 0.8);
  assert.equal(at.get('app;main;work;write')!.x, 0.1 + 0.6, 'after compute');
  assert.equal(at.get('app;main;work;write;vfs_write_[k]')!.depth, 5);
  assert.ok(!at.has('other'), 'other is 5% wide: under the 6% minimum, with its children');
  assert.equal(l.depth, 6);
});

test('zooming into a frame makes it full width, keeps its ancestors and drops its siblings', () => {
  const l = layout(buildTree(STACKS), ['app', 'main', 'work'], 0.001);
  assert.deepEqual(l.zoom, ['app', 'main', 'work']);
  assert.equal(l.focus.name, 'work');
  const at = new Map(l.rects.map((r) => [r.key, r]));
  assert.deepEqual({ x: at.get('app;main;work')!.x, width: at.get('app;main;work')!.width, ancestor: at.get('app;main;work')!.ancestor }, { x: 0, width: 1, ancestor: false });
  assert.equal(at.get('app;main')!.ancestor, true);
  assert.equal(at.get('')!.ancestor, true);
  assert.equal(at.get('app;main;work;compute')!.width, 0.75, '60 of work\'s 80');
  assert.ok(!at.has('app;main;idle') && !at.has('other'));
  // a zoom path that no longer exists (the profile changed) stops at the deepest frame that does
  assert.deepEqual(layout(buildTree(STACKS), ['app', 'gone', 'x'], 0.001).zoom, ['app']);
});

test('a diff gives each frame the baseline total at its path and the change of its share', () => {
  const before = buildTree(parseFolded('app;main;work;compute 30\napp;main;idle 70\n'));
  const d = diffTrees(buildTree(STACKS), before);
  const work = nodeAt(d, ['app', 'main', 'work']).node;
  assert.equal(work.before, 30);
  assert.ok(Math.abs(shareDelta(work, 100, 100) - 0.5) < 1e-12, 'work went from 30% to 80%');
  const idle = nodeAt(d, ['app', 'main', 'idle']).node;
  assert.ok(Math.abs(shareDelta(idle, 100, 100) + 0.6) < 1e-12, 'idle went from 70% to 10%');
  assert.equal(nodeAt(d, ['other']).node.before, 0, 'not in the baseline');
  // shares, not values: the baseline is twice as long and counts twice as much
  const twice = diffTrees(buildTree(STACKS), buildTree(STACKS.map((s) => ({ ...s, value: s.value * 2 }))));
  assert.equal(shareDelta(nodeAt(twice, ['app', 'main', 'work']).node, 100, 200), 0);
});

test('a function diff lists functions of both sides with the change of their total share', () => {
  const cur = functionTable(STACKS);
  const base = functionTable(parseFolded('app;main;work;compute 30\napp;main;gone 70\n'));
  const rows = new Map(diffFunctions(cur, 100, base, 100).map((r) => [r.name, r]));
  assert.ok(Math.abs(rows.get('compute')!.delta - 0.3) < 1e-12);
  assert.equal(rows.get('compute')!.beforeTotal, 30);
  assert.deepEqual({ ...rows.get('gone')! }, { name: 'gone', self: 0, total: 0, beforeSelf: 70, beforeTotal: 70, delta: -0.7 });
  assert.equal(rows.get('main')!.delta, 0);
});

test('search matches a substring without regard to case, or a regular expression between slashes', () => {
  const t = buildTree(STACKS);
  const s = parseSearch('WRITE');
  assert.ok(s && 'test' in s);
  assert.equal(matchedValue(t, s.test), 20);
  const k = parseSearch('/_\\[k\\]$/');
  assert.ok(k && 'test' in k);
  assert.equal(matchedValue(t, k.test), 20);
  // main is in every stack; a stack matched twice (main, then main's children) counts once
  const m = parseSearch('main');
  assert.ok(m && 'test' in m);
  assert.equal(matchedValue(t, m.test), 100);
  const ido = parseSearch('i');
  assert.ok(ido && 'test' in ido);
  assert.equal(matchedValue(t, ido.test), 100, 'main holds an i: every stack');
  assert.equal(parseSearch('  '), undefined);
  const bad = parseSearch('/(/');
  assert.ok(bad && 'error' in bad);
  assert.match(bad.error, /not a regular expression/);
  const none = parseSearch('nothing-like-it');
  assert.ok(none && 'test' in none);
  assert.equal(matchedValue(t, none.test), 0);
});

test('kernel frames are told apart by their _[k] suffix', () => {
  assert.equal(isKernelFrame('vfs_write_[k]'), true);
  assert.equal(isKernelFrame('vfs_write'), false);
  assert.equal(isKernelFrame('[unknown]'), false);
});

test('the range to compare with is the same length just before: relative stays relative', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  assert.deepEqual(previousRange('-15m', '', now), { from: '-30m', to: '-15m' });
  assert.deepEqual(previousRange('-1h', 'now', now), { from: '-2h', to: '-1h' });
  assert.deepEqual(previousRange('2026-01-01T10:00:00Z', '2026-01-01T11:00:00Z', now), { from: '2026-01-01T09:00:00.000Z', to: '2026-01-01T10:00:00.000Z' });
  assert.deepEqual(previousRange('-2h', '2026-01-01T11:00:00Z', now), { from: '2026-01-01T09:00:00.000Z', to: '2026-01-01T10:00:00.000Z' });
});

test('10,000 stacks build, lay out at a pixel of 1,400 and search in well under a second', () => {
  const stacks = Array.from({ length: 10_000 }, (_, i) => ({
    frames: ['app', 'main', `mod${i % 50}`, `fn${i % 500}`, `leaf${i}`, ...(i % 3 === 0 ? ['sys_read_[k]', 'vfs_read_[k]'] : [])],
    value: 1 + (i % 7),
  }));
  const t0 = performance.now();
  const tree = buildTree(stacks);
  const l = layout(tree, [], 1 / 1400);
  const rows = functionTable(stacks);
  const s = parseSearch('vfs_read');
  assert.ok(s && 'test' in s);
  const matched = matchedValue(tree, s.test);
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `took ${ms} ms`);
  assert.ok(l.rects.length < 3000, `${l.rects.length} rectangles: frames under a pixel are left out`);
  assert.equal(rows.length, 2 + 50 + 500 + 10_000 + 2);
  assert.ok(matched > 0 && matched < tree.total);
});
