/**
 * The UI's first page (scenario `ui` of bench/run.ts): a DuckDB store with `nodes` × `pods` pods of
 * synthetic data (bench/hub-store.ts' cluster, `minutes` of it ending now, loaded as agents' batches
 * through the store), the hub serving it and the built UI, and Debian's Chromium opening the overview
 * `repeat` times in a fresh browser context each (empty cache, as a first visit). Measured per load:
 * first contentful paint (the browser's own Paint Timing) and "usable": the top-CPU table filled with
 * the store's data, from navigation start; and the bundle: every file of dist/web, raw and gzip'd, the
 * initial load (index.html, its scripts and styles) apart from the chunks loaded later (the service
 * map's graph library).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import { DuckDbStore } from '../src/hub/store-duckdb.js';
import { Hub } from '../src/hub/hub.js';
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
    const hub = new Hub({ store, log: () => undefined });
    const server = await hub.listen('127.0.0.1', 0);
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    try {
      const fcp: number[] = [];
      const usable: number[] = [];
      const api: number[] = [];
      for (let i = 0; i <= o.repeat; i++) {
        const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
        const page = await context.newPage();
        await page.goto(`${base}/#/overview`, { waitUntil: 'commit' });
        await page.locator('[data-testid="top-cpu"] tbody tr').first().waitFor({ timeout: 30_000 });
        const t = await page.evaluate<{ fcp: number; usable: number; api: number }>(`(() => {
          const paint = performance.getEntriesByName('first-contentful-paint')[0];
          const overview = performance.getEntriesByType('resource').find((r) => r.name.includes('/api/v1/overview'));
          return { fcp: paint ? paint.startTime : NaN, usable: performance.now(), api: overview ? overview.duration : NaN };
        })()`);
        await context.close();
        if (i === 0) continue; // the first load warms the hub's and the store's caches
        fcp.push(t.fcp);
        usable.push(t.usable);
        api.push(t.api);
      }
      out.push({
        scenario: `ui: overview first page, cold browser cache (${o.nodes} nodes × ${o.pods} pods, ${o.minutes} min = ${samples} samples in DuckDB, range: last 15 min)`,
        first_contentful_paint_p50_ms: percentile(fcp, 50),
        first_contentful_paint_p95_ms: percentile(fcp, 95),
        usable_p50_ms: percentile(usable, 50),
        usable_p95_ms: percentile(usable, 95),
        overview_api_p50_ms: percentile(api, 50),
        overview_api_p95_ms: percentile(api, 95),
        loads: fcp.length,
      });
    } finally {
      await browser.close();
      server.closeAllConnections();
      server.close();
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
