/**
 * The UI's first page (scenario `ui` of bench/run.ts): a DuckDB store with `nodes` × `pods` pods of
 * synthetic data (bench/hub-store.ts' cluster, `minutes` of it ending now, loaded as agents' batches
 * through the store), the hub serving it and the built UI, and Debian's Chromium opening the overview
 * `repeat` times in a fresh browser context each (empty cache, as a first visit). Measured per load:
 * first contentful paint (the browser's own Paint Timing) and "usable": the top lists rendered with the
 * store's data (the UI's own performance mark), from navigation start; the hub runs as its own process; and the bundle: every file of dist/web, raw and gzip'd, the
 * initial load (index.html, its scripts and styles) apart from the chunks loaded later (the service
 * map's graph library).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { DuckDbStore } from '../src/hub/store-duckdb.js';
import { spawn } from 'node:child_process';
import { BIN } from '../test/agent-process.js';
import { eventually } from '../test/kernel.js';
import { batches, INTERVAL, nodeSeries, percentile, type Result } from './hub-store.js';
import { CHROMIUM, CHROMIUM_ARGS } from '../test/browser.js';

export interface UiOptions {
  nodes: number;
  pods: number;
  minutes: number;
  repeat: number;
}

const WEB = fileURLToPath(new URL('../../dist/web/', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : [join(dir, d.name)]));
}

/** dist/web's files, raw and gzip'd (level 9 as the hub serves them), initial load apart. */
export function bundle(): Result[] {
  const index = readFileSync(join(WEB, 'index.html'), 'utf8');
  const initial = new Set(['index.html', ...[...index.matchAll(/(?:src|href)="\/([^"]+)"/g)].map((m) => m[1]!)]);
  const out: Result[] = [];
  let raw = 0;
  let gz = 0;
  let rawAll = 0;
  let gzAll = 0;
  for (const f of files(WEB)) {
    const name = relative(WEB, f);
    const data = readFileSync(f);
    const z = gzipSync(data, { level: 9 }).length;
    rawAll += statSync(f).size;
    gzAll += z;
    if (initial.has(name)) {
      raw += data.length;
      gz += z;
    }
    out.push({ scenario: `ui bundle: ${name}`, loaded: initial.has(name) ? 'first page' : 'later (on demand)', bytes: data.length, gzip_bytes: z });
  }
  out.push({ scenario: 'ui bundle: first page (index.html and what it loads)', bytes: raw, gzip_bytes: gz });
  out.push({ scenario: 'ui bundle: everything', bytes: rawAll, gzip_bytes: gzAll });
  return out;
}

/**
 * Opens the overview in a page and reads the browser's timings (ms from navigation start): first
 * contentful paint; usable, the UI's mark when the top lists first show data (the failures card may
 * still be loading the map); when the overview query was asked and how long it took; complete, the
 * failures card filled too, so that the next load starts on an idle hub, as a first visit does.
 */
async function loadOverview(page: Page, base: string): Promise<{ fcp: number; usable: number; apiStart: number; api: number; complete: number }> {
  await page.goto(`${base}/#/overview`, { waitUntil: 'commit' });
  await page.locator('[data-testid="top-cpu"] tbody tr').first().waitFor({ timeout: 30_000 });
  await page.locator('#top-fail .state.loading').waitFor({ state: 'detached', timeout: 60_000 });
  return page.evaluate(`(() => {
    const at = (name) => performance.getEntriesByName(name)[0]?.startTime ?? NaN;
    const overview = performance.getEntriesByType('resource').find((r) => r.name.includes('/api/v1/overview'));
    return {
      fcp: at('first-contentful-paint'),
      usable: at('periscope:overview-shown'),
      apiStart: overview ? overview.startTime : NaN,
      api: overview ? overview.duration : NaN,
      complete: at('periscope:failures-shown'),
    };
  })()`);
}

export async function uiFirstPage(o: UiOptions): Promise<Result[]> {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-bench-ui-'));
  const store = new DuckDbStore(join(dir, 'hub.duckdb'), { rawRetentionMs: 6 * 3_600_000, rollupRetentionMs: 7 * 86_400_000 });
  const out: Result[] = [...bundle()];
  try {
    await store.open();
    const series = Array.from({ length: o.nodes }, (_, n) => nodeSeries(n, o.pods));
    const intervals = Math.round((o.minutes * 60_000) / INTERVAL);
    const start = Date.now() - intervals * INTERVAL;
    let samples = 0;
    const inflight = new Set<Promise<void>>();
    for (const b of batches(series, start, intervals)) {
      const p: Promise<void> = store.apply(b).then(() => void inflight.delete(p));
      inflight.add(p);
      samples += b.samples.length;
      if (inflight.size >= 8) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    await store.close();
    // the hub as its own process, as in a cluster (the browser's driver is not on its event loop);
    // it runs maintain() at start, as a live hub has: closed minutes rolled up
    const hub = spawn(BIN, ['hub', '--listen', '127.0.0.1:0', '--store', `duckdb:${join(dir, 'hub.duckdb')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    hub.stderr.on('data', (d: Buffer) => (log += d.toString()));
    hub.stdout.on('data', (d: Buffer) => (log += d.toString()));
    const base = await eventually(
      () => {
        if (hub.exitCode !== null) throw new Error(`the hub exited: ${log}`);
        return /^ {2}workloads: +(http:\/\/[^/\s]+)/m.exec(log)?.[1];
      },
      120_000,
      'the hub to start',
    );
    // each API call the first page makes, alone (warm, 10 times each)
    const alone: Result = { scenario: 'ui: the first page\'s API calls, each alone (ms, p50 / p95 of 10)' };
    for (const path of ['overview?from=-15m&limit=10', 'nodes', 'network/map?from=-15m&limit=500']) {
      const ms: number[] = [];
      for (let i = 0; i <= 10; i++) {
        const t0 = performance.now();
        const r = await fetch(`${base}/api/v1/${path}`);
        if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
        await r.arrayBuffer();
        if (i > 0) ms.push(performance.now() - t0);
      }
      alone[path.split('?')[0]!] = `${percentile(ms, 50).toFixed(0)} / ${percentile(ms, 95).toFixed(0)}`;
    }
    out.push(alone);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    try {
      const fcp: number[] = [];
      const usable: number[] = [];
      const api: number[] = [];
      const complete: number[] = [];
      const apiStart: number[] = [];
      for (let i = 0; i <= o.repeat; i++) {
        const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
        const t = await loadOverview(await context.newPage(), base);
        await context.close();
        if (i === 0) continue; // the first load warms the hub's and the store's caches
        fcp.push(t.fcp);
        usable.push(t.usable);
        api.push(t.api);
        apiStart.push(t.apiStart);
        complete.push(t.complete);
      }
      // the hub's own account of the overview queries the pages made (its query-latency histogram)
      const m = await (await fetch(`${base}/metrics`)).text();
      const hsum = Number(/^periscope_hub_query_duration_seconds_sum\{route="\/api\/v1\/overview"\} (\S+)$/m.exec(m)?.[1]);
      const hcount = Number(/^periscope_hub_query_duration_seconds_count\{route="\/api\/v1\/overview"\} (\S+)$/m.exec(m)?.[1]);
      out.push({ scenario: 'ui: the hub\'s own time per overview query, all of them (mean)', mean_ms: (hsum / hcount) * 1000, queries: hcount });
      // a return visit: the same browser context (its cache holds the hashed assets), a new page each time
      const warm = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      const warmUsable: number[] = [];
      const warmAsked: number[] = [];
      for (let i = 0; i <= o.repeat; i++) {
        const page = await warm.newPage();
        const t = await loadOverview(page, base);
        await page.close();
        if (i === 0) continue;
        warmUsable.push(t.usable);
        warmAsked.push(t.apiStart);
      }
      await warm.close();
      out.push({
        scenario: 'ui: overview, return visit (assets in the browser cache, a new page each time)',
        usable_p50_ms: percentile(warmUsable, 50),
        usable_p95_ms: percentile(warmUsable, 95),
        overview_api_asked_at_p50_ms: percentile(warmAsked, 50),
        loads: warmUsable.length,
      });
      out.push({
        scenario: `ui: overview first page, cold browser cache (${o.nodes} nodes × ${o.pods} pods, ${o.minutes} min = ${samples} samples in DuckDB, range: last 15 min)`,
        first_contentful_paint_p50_ms: percentile(fcp, 50),
        first_contentful_paint_p95_ms: percentile(fcp, 95),
        usable_p50_ms: percentile(usable, 50),
        usable_p95_ms: percentile(usable, 95),
        overview_api_asked_at_p50_ms: percentile(apiStart, 50),
        overview_api_p50_ms: percentile(api, 50),
        overview_api_p95_ms: percentile(api, 95),
        complete_with_failures_card_p50_ms: percentile(complete, 50),
        complete_with_failures_card_p95_ms: percentile(complete, 95),
        loads: fcp.length,
      });
    } finally {
      await browser.close();
      hub.kill('SIGTERM');
      await new Promise((r) => hub.once('exit', r));
    }
  } finally {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
