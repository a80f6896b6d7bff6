/**
 * The workload page's Profile panel in a real browser (Debian's Chromium through playwright-core)
 * against a hub on loopback that was fed profiles the way agents ship them (ingest batches with a
 * `profiles` field, src/wire/profiles.ts) and answers GET /api/v1/profiles from its store. The stacks
 * are chosen so every number on the page is known: the flame graph names the frames and sets kernel
 * frames apart, the tooltip gives a frame's samples with their time and share, a click zooms, search
 * highlights and gives the matched share, the table lists self and total per function and sorts by
 * either, comparing with the range just before colours a frame that grew red and adds a delta column,
 * switching the type refetches with type=offcpu, a type without samples says so, the hub's error is
 * shown as its message, and 10,000 stacks draw quickly. Screenshots go to build/artifacts/ui/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page } from 'playwright-core';
import { launch, watch } from '../browser.js';
import { startTestHub } from '../hub.js';
import { WIRE_VERSION, type Batch } from '../../src/wire/ingest.js';
import { toWire, type ProfileLabels, type ProfileWire } from '../../src/wire/profiles.js';
import { parseFolded, type ProfileType, type Stack } from '../../src/profiles/model.js';

const ARTIFACTS = fileURLToPath(new URL('../../../build/artifacts/ui/', import.meta.url));
/** 100 Hz: a sample stands for 10 ms of CPU */
const PERIOD = 10_000_000;

const labels = (workload: string): ProfileLabels => ({ cgroup: `/kubepods/shop/${workload}-1/app`, namespace: 'shop', pod: `${workload}-1`, container: 'app', workload_kind: 'Deployment', workload });

/** One window's profile, ending `endAgo` ms before `now`. */
function window(type: ProfileType, stacks: Stack[], now: number, endAgo: number, workload = 'web'): ProfileWire {
  let total = 0;
  for (const s of stacks) total += s.value;
  return toWire({ type, from: now - endAgo - 60_000, to: now - endAgo, period: type === 'cpu' ? PERIOD : 1, total, stacks }, labels(workload));
}

function batch(seq: number, now: number, profiles: ProfileWire[]): Batch {
  return {
    version: WIRE_VERSION,
    agent: { node: 'node-a', instance: 'ui-profile-test', version: '0.1.0', started: new Date(now - 3_600_000).toISOString(), cgroup_subtree: '/' },
    seq,
    time: new Date(now).toISOString(),
    status: { collectors: [{ name: 'profile', alternative: 'test', up: true }], capabilities: {}, kernel: 'test' },
    families: [],
    events: [],
    dropped: { batches: 0, events: 0, samples: 0 },
    profiles,
  };
}

/** Now (the last 10 minutes): 1,000 samples, compute 60% of them. */
const NOW_CPU = parseFolded(`web;main;work;compute 600
web;main;work;write;vfs_write_[k] 200
web;main;idle 150
web;main 50
`);
/** The 10 minutes before: compute was 20%, idle 55%. */
const BEFORE_CPU = parseFolded(`web;main;work;compute 100
web;main;work;write;vfs_write_[k] 100
web;main;idle 275
web;main 25
`);
/** Off-CPU nanoseconds: 1.5 s blocked in a futex, 0.5 s in a read. */
const NOW_OFFCPU = parseFolded(`web;main;lock;futex_wait_[k] 1500000000
web;main;read_input;vfs_read_[k] 500000000
`);

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

test('the Profile panel in Chromium: flame, icicle and table of the hub\'s profiles, with zoom, search, a diff with the range before, the types and the hub\'s errors', async (t) => {
  const { base } = await startTestHub(t, {});
  const now = Date.now();
  const big: Stack[] = Array.from({ length: 10_000 }, (_, i) => ({
    frames: ['big', 'main', `mod${i % 40}`, `fn${i % 400}`, `leaf${i}`, ...(i % 3 === 0 ? ['sys_read_[k]', 'vfs_read_[k]'] : [])],
    value: 1 + (i % 5),
  }));
  const batches = [
    batch(1, now, [window('cpu', BEFORE_CPU, now, 12 * 60_000), window('cpu', NOW_CPU, now, 2 * 60_000), window('offcpu', NOW_OFFCPU, now, 2 * 60_000)]),
    batch(2, now, [window('cpu', big, now, 2 * 60_000, 'big')]),
  ];
  for (const b of batches) {
    const r = await fetch(`${base}/api/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
    assert.equal(r.status, 200, await r.text());
  }
  // the hub answers as the page will ask
  const direct = (await (await fetch(`${base}/api/v1/profiles?type=cpu&from=-10m&namespace=shop&workload=web&format=json`)).json()) as { total: number };
  assert.equal(direct.total, 1000, 'the hub holds the current window\'s 1,000 samples');

  const up: { browser?: Browser } = {};
  t.after(() => up.browser?.close());
  const browser = (up.browser = await launch());
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const problems = watch(page);
  const asked: string[] = [];
  page.on('request', (r) => {
    if (r.url().includes('/api/v1/profiles')) asked.push(r.url());
  });

  await page.goto(`${base}/#/workload?level=workload&namespace=shop&kind=Deployment&workload=web&from=-10m&refresh=0`);
  const panel = page.getByTestId('profile');
  const flame = panel.getByTestId('flame');
  const frame = (name: string) => flame.locator(`[data-name="${name}"]`);

  // 1. the flame graph names the frames; root at the bottom; kernel frames apart
  await flame.getByText('compute', { exact: true }).waitFor({ timeout: 10_000 });
  for (const name of ['all', 'web', 'main', 'work', 'idle', 'write', 'vfs_write_[k]']) assert.equal(await frame(name).count(), 1, `the frame ${name}`);
  const firstAsk = new URL(asked[0]!);
  assert.equal(firstAsk.searchParams.get('type'), 'cpu');
  assert.equal(firstAsk.searchParams.get('workload'), 'web');
  assert.equal(firstAsk.searchParams.get('from'), '-10m', 'the page\'s range');
  // what the script set on a frame (its position and colour), as its style attribute shows it
  const style = async (name: string, prop: string): Promise<string> => new RegExp(`(?:^|; )${prop}: ([^;]+)`).exec((await frame(name).getAttribute('style')) ?? '')?.[1] ?? '';
  const top = async (name: string): Promise<number> => parseFloat(await style(name, 'top'));
  assert.ok((await top('all')) > (await top('compute')), 'flame: the root below its leaves');
  assert.match((await frame('vfs_write_[k]').getAttribute('class')) ?? '', /\bkernel\b/);
  const bg = (name: string): Promise<string> => style(name, 'background');
  const hue = (rgb: string): number => {
    const [r, g, b] = (rgb.match(/\d+/g) ?? []).map(Number) as [number, number, number];
    return b > r && g > r ? 180 : r >= g && r >= b ? 0 : 90;
  };
  assert.equal(hue(await bg('vfs_write_[k]')), 180, `kernel frames teal, not ${await bg('vfs_write_[k]')}`);
  assert.equal(hue(await bg('compute')), 0, `user frames warm, not ${await bg('compute')}`);
  // widths are the values' shares
  const widthOf = async (name: string): Promise<number> => (await frame(name).boundingBox())?.width ?? NaN;
  const ratio = (await widthOf('compute')) / (await widthOf('all'));
  assert.ok(Math.abs(ratio - 0.6) < 0.01, `compute is 60% of the width, not ${ratio}`);
  assert.match((await panel.getByTestId('profile-facts').textContent()) ?? '', /^1 k samples \(10 s\) from/);

  // 2. the tooltip: full name, samples with their time, share
  await frame('compute').hover();
  const tip = page.getByTestId('flame-tip');
  await tip.waitFor();
  assert.match((await tip.textContent()) ?? '', /^compute600 samples \(6 s\) · 60% of all/);
  await shot(page, 'profile-flame');

  // 3. click to zoom into work, then reset
  await frame('work').click();
  await panel.getByRole('button', { name: 'Reset zoom' }).waitFor();
  assert.equal(await frame('idle').count(), 0, 'zoomed into work: its sibling idle is gone');
  assert.ok(Math.abs((await widthOf('work')) / (await widthOf('all')) - 1) < 0.01, 'work spans the width');
  assert.ok(Math.abs((await widthOf('compute')) / (await widthOf('all')) - 0.75) < 0.01, 'compute is 600 of work\'s 800');
  await panel.getByRole('button', { name: 'Reset zoom' }).click();
  await frame('idle').waitFor();

  // 4. icicle: the root on top
  await panel.getByRole('group', { name: 'Profile view' }).getByRole('button', { name: 'Icicle' }).click();
  await panel.getByRole('group', { name: 'Icicle graph' }).waitFor();
  assert.equal(await top('all'), 0);
  assert.ok((await top('compute')) > 0);

  // 5. search: matching frames highlighted, the matched share said
  await panel.getByRole('searchbox').fill('WRITE');
  await panel.getByTestId('profile-matched').getByText('20% of samples match').waitFor();
  assert.deepEqual(await Promise.all((await flame.locator('[data-match="true"]').all()).map((l) => l.getAttribute('data-name'))), ['write', 'vfs_write_[k]']);
  assert.notEqual(await bg('write'), await bg('compute'));
  await shot(page, 'profile-search');
  await panel.getByRole('searchbox').fill('');
  await flame.locator('[data-match="true"]').first().waitFor({ state: 'detached' });

  // 6. the table: self and total per function with shares, sortable by either
  await panel.getByRole('button', { name: 'Table' }).click();
  const table = panel.getByTestId('profile-table');
  await table.waitFor();
  const rows = async (): Promise<string[][]> => {
    const trs = table.locator('tbody tr');
    const out: string[][] = [];
    for (let i = 0; i < (await trs.count()); i++) out.push(await trs.nth(i).locator('td').allTextContents());
    return out;
  };
  assert.deepEqual((await rows()).slice(0, 4), [
    ['main', '500 ms', '5%', '10 s', '100%'],
    ['web', '0 s', '0%', '10 s', '100%'],
    ['work', '0 s', '0%', '8 s', '80%'],
    ['compute', '6 s', '60%', '6 s', '60%'],
  ]);
  await table.getByRole('button', { name: 'Self', exact: true }).click();
  assert.deepEqual((await rows()).map((r) => r[0]).slice(0, 4), ['compute', 'vfs_write_[k]', 'idle', 'main'], 'sorted by self, largest first');
  assert.equal(await table.getByRole('columnheader', { name: 'Self', exact: true }).getAttribute('aria-sort'), 'descending');

  // 7. diff with the same length just before: the delta column, and in the flame graph compute (20% → 60%) red, idle (55% → 15%) blue
  await panel.getByLabel('Compare with', { exact: true }).selectOption('prev');
  await table.getByRole('columnheader', { name: 'Δ share' }).waitFor({ timeout: 10_000 });
  const baseAsk = new URL(asked.at(-1)!);
  assert.deepEqual([baseAsk.searchParams.get('from'), baseAsk.searchParams.get('to')], ['-20m', '-10m'], 'the 10 minutes before');
  const computeRow = table.locator('tbody tr').filter({ has: page.getByRole('cell', { name: 'compute', exact: true }) });
  assert.equal(await computeRow.locator('td').last().textContent(), '+40 pts');
  assert.match((await computeRow.locator('td').last().locator('span').getAttribute('class')) ?? '', /grew/);
  await panel.getByRole('button', { name: 'Flame' }).click();
  await frame('compute').waitFor();
  assert.equal(await frame('compute').getAttribute('data-diff'), 'grew');
  assert.equal(await frame('idle').getAttribute('data-diff'), 'shrank');
  assert.equal(await frame('main').getAttribute('data-diff'), 'same');
  const [r, g, b] = ((await bg('compute')).match(/\d+/g) ?? []).map(Number) as [number, number, number];
  assert.ok(r > 200 && g < 150 && b < 150, `compute is red: rgb(${r}, ${g}, ${b})`);
  const [r2, , b2] = ((await bg('idle')).match(/\d+/g) ?? []).map(Number) as [number, number, number];
  assert.ok(b2 > r2 + 50, `idle is blue: ${await bg('idle')}`);
  assert.match((await panel.getByTestId('profile-compare').textContent()) ?? '', /Compared with .* \(500 samples \(5 s\)\)/);
  await frame('compute').hover();
  assert.match((await tip.textContent()) ?? '', /share 20% → 60% \(\+40 pts\)/);
  await shot(page, 'profile-diff');
  // the type, view and comparison are in the URL: a reload keeps them
  assert.match(page.url(), /pcmp=prev/);
  await page.getByLabel('Compare with', { exact: true }).selectOption('');

  // 8. Off-CPU refetches with type=offcpu and shows nanoseconds as time
  const offAsk = page.waitForRequest((req) => req.url().includes('/api/v1/profiles') && new URL(req.url()).searchParams.get('type') === 'offcpu');
  await panel.getByRole('button', { name: 'Off-CPU' }).click();
  await offAsk;
  await frame('futex_wait_[k]').waitFor({ timeout: 10_000 });
  assert.equal(await frame('compute').count(), 0);
  await frame('futex_wait_[k]').hover();
  assert.match((await tip.textContent()) ?? '', /^futex_wait_\[k\]1\.5 s · 75% of all/);
  await panel.getByRole('searchbox').fill('futex');
  await panel.getByTestId('profile-matched').getByText('75% of off-CPU time matches').waitFor();
  await panel.getByRole('searchbox').fill('');

  // 9. run queue: nothing was shipped, and the panel says so
  await panel.getByRole('button', { name: 'Run queue' }).click();
  await panel.getByText('No samples in this range.').waitFor({ timeout: 10_000 });
  assert.equal(new URL(asked.at(-1)!).searchParams.get('type'), 'runq');

  // 10. the hub's error, as its message: a range to compare with that ends before it starts
  await panel.getByRole('button', { name: 'CPU', exact: true }).click();
  await frame('compute').waitFor();
  await panel.getByLabel('Compare with', { exact: true }).selectOption('range');
  const form = panel.getByRole('form', { name: 'Range to compare with' });
  await form.getByLabel('from').fill('-1m');
  await form.getByLabel('to').fill('-2m');
  await form.getByRole('button', { name: 'Compare' }).click();
  await panel.getByRole('alert').getByText(/Could not load the range to compare with: from \(.*\) is not before to/).waitFor({ timeout: 10_000 });
  assert.deepEqual(
    // Chromium logs a refused request as a console error too, without its URL
    problems.filter((p) => !/HTTP 400: .*\/api\/v1\/profiles\?.*from=-1m/.test(p) && p !== 'console: Failed to load resource: the server responded with a status of 400 (Bad Request)'),
    [],
    'no console error, exception or failed request but the refused comparison',
  );

  // 11. 10,000 stacks: drawn fast, frames under a pixel left out
  const started = Date.now();
  await page.goto(`${base}/#/workload?level=workload&namespace=shop&kind=Deployment&workload=big&from=-10m&refresh=0`);
  await page.getByTestId('flame').locator('[data-name="big"]').waitFor({ timeout: 10_000 });
  const shown = Date.now() - started;
  const frames = Number(await page.getByTestId('flame').getAttribute('data-frames'));
  t.diagnostic(`10,000 stacks: ${frames} frames drawn, the page and its graph in ${shown} ms`);
  assert.ok(frames > 300 && frames < 5000, `${frames} frames: the ones at least a pixel wide`);
  const switchStarted = Date.now();
  await page.getByTestId('profile').getByRole('button', { name: 'Icicle' }).click();
  await page.getByRole('group', { name: 'Icicle graph' }).waitFor();
  const switched = Date.now() - switchStarted;
  t.diagnostic(`flame → icicle of 10,000 stacks in ${switched} ms`);
  assert.ok(switched < 1500, `redrawn in ${switched} ms`);
  await page.getByTestId('profile').getByRole('searchbox').fill('vfs_read');
  await page.getByTestId('profile-matched').waitFor();
  assert.match((await page.getByTestId('profile-matched').textContent()) ?? '', /% of samples match/);
  await shot(page, 'profile-big');
});
