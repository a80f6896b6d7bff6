/**
 * The web UI in a real browser: Debian's Chromium driven by playwright-core, against `periscope run`
 * (the hub and this node's agent, the README's main job) with a test node whose pods are named by the
 * fake API server: a pod burning CPU, and a client pod talking to a server pod. Every view loads
 * without console errors or failed requests; the overview names the burner among the top workloads
 * and its CPU chart has data within 10 s; the service map shows the client → server edge; a copied
 * URL reopens the same view; the token prompt works; requests of the l7 collector (batches with
 * known counts, posted as an agent would) show on the edge's panel and on the client's Requests card
 * with the hub's numbers. Screenshots go to build/artifacts/ui/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { launch, watch } from '../browser.js';
import { startPeriscope, type Proc } from '../agent-process.js';
import { eventually, needsKernel } from '../kernel.js';
import { FakeApiServer } from './fake-apiserver.js';
import { TestNode, type TestPod } from './test-node.js';
import { deploymentPod } from './objects.js';
import { exactExchange, whyNetKitCannotRun } from './net-kit.js';
import { l7ClientBatch, l7ServerBatch } from '../l7-batch.js';

export const ARTIFACTS = fileURLToPath(new URL('../../../build/artifacts/ui/', import.meta.url));
const TOKEN = 'ui-e2e-token-0123456789abcdef0123';
const SEED_TOKEN = `sessionStorage.setItem('periscope.token', ${JSON.stringify(TOKEN)})`;

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

test('the UI in Chromium: every view without errors, the CPU burner on top with its chart within 10 s, the edge between two pods, a shared URL, the token prompt', async (t) => {
  if (!needsKernel(t)) return;
  const why = whyNetKitCannotRun();
  if (why) assert.fail(`the network fixtures cannot run: ${why}`);
  const dir = mkdtempSync(join(tmpdir(), 'periscope-ui-e2e-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
  const api = await FakeApiServer.start();
  const kubeconfig = api.kubeconfig(join(dir, 'kubeconfig'));
  const node = await TestNode.create();
  const nodeName = `node-${node.name}`;
  const up: { run?: Proc; browser?: Browser } = {};
  t.after(async () => {
    await up.browser?.close();
    await up.run?.stop();
    await node.destroy();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const register = (pod: TestPod, deployment: string): string => {
    const o = deploymentPod({ namespace: pod.spec.namespace, deployment, node: nodeName, podUid: pod.uid, containers: {}, ips: [pod.ip] });
    api.create(o.deployment);
    api.create(o.replicaSet);
    api.create(o.pod);
    return o.pod.metadata.name;
  };
  const burner = await node.addPod({ namespace: 'shop', name: 'burner' });
  const server = await node.addPod({ namespace: 'shop', name: 'api' });
  const client = await node.addPod({ namespace: 'shop', name: 'web' });
  register(burner, 'burner');
  register(server, 'api');
  register(client, 'web');
  const run = (up.run = await startPeriscope(['run', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--kubeconfig', kubeconfig, '--node', nodeName, '--interval', '1', '--token-file', tokenFile], 'workloads'));
  const base = run.url;
  const pause = await client.runProcess('pause', 'exec sleep 600');
  t.after(() => pause.kill());

  const browser = (up.browser = await launch());
  const context: BrowserContext = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  // the token as the prompt would have stored it (the prompt itself is checked at the end)
  await context.addInitScript({ content: SEED_TOKEN });
  const page = await context.newPage();
  const problems = watch(page);

  // 1. the overview names the burner among the top workloads within 10 s of it starting to burn
  const burning = await burner.runProcess('burn', 'exec sh -c "while :; do :; done"');
  t.after(() => burning.kill());
  const started = Date.now();
  await page.goto(`${base}/#/overview?from=-5m&refresh=2`);
  const topCpu = page.getByTestId('top-cpu');
  await topCpu.getByRole('link', { name: 'shop/burner' }).waitFor({ timeout: 10_000 });
  const onTop = Date.now() - started;
  t.diagnostic(`the burner on the overview after ${onTop} ms`);
  assert.ok(onTop < 10_000);
  await page.getByTestId('stats').getByText('1 / 1').waitFor({ timeout: 5_000 });
  await shot(page, 'overview');

  // 2. its page: the CPU chart has data within 10 s
  await topCpu.getByRole('link', { name: 'shop/burner' }).click();
  await page.getByRole('heading', { name: 'deployment shop/burner' }).waitFor({ timeout: 5_000 });
  await page.locator('[data-testid="chart-cpu"][data-points]:not([data-points="0"])').waitFor({ timeout: 10_000 });
  assert.ok(Date.now() - started < 20_000, 'the chart within 10 s of the workload page opening');
  await page.getByTestId('pods').getByRole('link').first().waitFor({ timeout: 5_000 });
  // the burner's start, on its own page
  await page
    .getByTestId('recent-events')
    .getByRole('cell', { name: 'exec' })
    .first()
    .waitFor({ timeout: 10_000 })
    .catch(async (err: Error) => {
      const body = await (await fetch(`${base}/api/v1/events?from=-5m&namespace=shop&workload=burner`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
      throw new Error(`${err.message}: the hub's events of shop/burner: ${body.slice(0, 2000)}`);
    });
  await shot(page, 'workload');
  const shared = page.url();

  // 3. events: the burner's exec among them
  await page.getByRole('link', { name: 'Events' }).click();
  await page.getByTestId('events').getByRole('cell', { name: 'exec' }).first().waitFor({ timeout: 10_000 });
  await page.getByTestId('live-state').getByText('stream: live').waitFor({ timeout: 10_000 });
  await shot(page, 'events');

  // 4. nodes: this node, its collectors and capability table
  await page.getByRole('link', { name: 'Nodes' }).click();
  const card = page.getByTestId(`node-${nodeName}`);
  await card.getByText('connected').waitFor({ timeout: 10_000 });
  await page.getByRole('table', { name: `Kernel capabilities of ${nodeName}` }).getByRole('cell').first().waitFor();
  await page.getByRole('table', { name: `Collectors of ${nodeName}` }).getByRole('cell', { name: 'cpu' }).waitFor();
  await shot(page, 'nodes');

  // 5. dark, and the keyboard: Tab reaches the views' links
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${base}/#/overview?from=-5m`);
  await topCpu.getByRole('link', { name: 'shop/burner' }).waitFor({ timeout: 10_000 });
  const bg = await page.evaluate<string>('getComputedStyle(document.body).backgroundColor');
  assert.notEqual(bg, 'rgb(247, 248, 250)', 'dark: the background follows the system');
  await shot(page, 'overview-dark');
  // from a fresh load: the skip link, the brand, then the views, each reached and followed by the keyboard
  await page.reload();
  await topCpu.getByRole('link', { name: 'shop/burner' }).waitFor({ timeout: 10_000 });
  const focused = async (): Promise<string> => page.evaluate<string>("document.activeElement?.textContent?.trim() ?? ''");
  const order: string[] = [];
  for (let i = 0; i < 4; i++) {
    await page.keyboard.press('Tab');
    order.push(await focused());
  }
  assert.deepEqual(order, ['Skip to content', 'Periscope', 'Overview', 'Service map'], 'Tab moves through the header in order');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Service map' }).waitFor({ timeout: 5_000 });
  await page.goBack();
  await topCpu.getByRole('link', { name: 'shop/burner' }).waitFor({ timeout: 10_000 });
  assert.deepEqual(problems, [], 'no console error, exception or failed request in any view');

  // 6. the shared URL reopens the same view, range and all, in a new tab of another session
  const other = await browser.newContext();
  await other.addInitScript({ content: SEED_TOKEN });
  const reopened = await other.newPage();
  const reopenedProblems = watch(reopened);
  await reopened.goto(shared);
  await reopened.getByRole('heading', { name: 'deployment shop/burner' }).waitFor({ timeout: 10_000 });
  assert.equal(await reopened.getByRole('group', { name: 'Time range' }).locator('select').first().inputValue(), '-5m');
  await reopened.locator('[data-testid="chart-cpu"][data-points]:not([data-points="0"])').waitFor({ timeout: 10_000 });
  assert.deepEqual(reopenedProblems, []);
  await other.close();

  // 7. without the token: the prompt, then the data
  const bare = await browser.newContext();
  const fresh = await bare.newPage();
  await fresh.goto(`${base}/#/nodes`);
  const dialog = fresh.getByRole('dialog', { name: 'This hub needs its token' });
  await dialog.waitFor({ timeout: 10_000 });
  await dialog.getByLabel('Token').fill(TOKEN);
  await dialog.getByRole('button', { name: 'Use token' }).click();
  await fresh.getByTestId(`node-${nodeName}`).waitFor({ timeout: 10_000 });
  await bare.close();
  // 8. the service map: the edge between the two test pods (its own page watched like the others)
  const x = await exactExchange(server, client, { port: 8080, request: 50_000, response: 70_000 });
  await x.close();
  await page.goto(`${base}/#/overview?from=-5m`);
  await page.getByRole('link', { name: 'Service map' }).click();
  const edge = page.getByTestId('map-edges').getByRole('button', { name: 'shop/web → shop/api:8080' });
  await eventually(
    async () => {
      if (await edge.count()) return true;
      // the map refreshes on its own; a reload gets there sooner
      await page.reload();
      await page.getByRole('heading', { name: 'Service map' }).waitFor();
      await page.waitForTimeout(1000);
      return undefined;
    },
    20_000,
    'the web → api edge on the service map',
  ).catch(async (err: Error) => {
    await shot(page, 'service-map-failed');
    const body = await (await fetch(`${base}/api/v1/network/map?from=-5m`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    const tcp = await (await fetch(`${base}/api/v1/series?from=-5m&metric=periscope_tcp_connections_total&by=pod,peer,peer_kind`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    const nodes = await (await fetch(`${base}/api/v1/nodes`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    throw new Error(`${tcp.slice(0, 2000)} ${nodes.slice(0, 1500)} ${err.message}: the page shows ${await page.locator('main').textContent()}; the hub has ${body.slice(0, 3000)}`);
  });
  await page.locator('[data-testid="graph"][data-edges]').waitFor({ timeout: 10_000 });
  assert.ok(Number(await page.getByTestId('graph').getAttribute('data-edges')) >= 1);
  await edge.click();
  await page.getByTestId('edge-panel').getByText('shop/web → shop/api:8080').waitFor();
  assert.match((await page.getByTestId('edge-panel').textContent()) ?? '', /Sent48\.8 KiB/, 'the edge\'s bytes as the client sent them');
  await shot(page, 'service-map');

  // 9. requests: the l7 collector's series of web → api (and db, cache), posted as two agents would
  // ship them, on the same edge and on web's page (test/l7-batch.ts has the numbers)
  for (const b of [l7ClientBatch(Date.now(), { node: 'l7-client' }), l7ServerBatch(Date.now(), { node: 'l7-server' })]) {
    const r = await fetch(`${base}/api/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(b) });
    assert.equal(r.status, 200, await r.text());
  }
  await page.reload();
  await edge.click();
  const http = page.getByTestId('edge-requests-http');
  await http.waitFor({ timeout: 10_000 });
  // 100 requests in the 5 minutes of the range, 6 5xx, 4 4xx, p50 10 ms, p99 98.2 ms: the client's count
  assert.equal(await http.textContent(), 'HTTP as the client saw themRequests100 (0.333/s)Errors6 (6%)Client errors4p50 / p9910 ms / 98.2 ms');
  assert.equal(await page.getByTestId('edge-requests-grpc').textContent(), 'gRPC as the client saw themRequests10 (0.0333/s)Errors2 (20%)p50 / p99550 ms / 991 ms');
  assert.match((await page.getByTestId('map-edges').getByRole('row').filter({ hasText: 'shop/web → shop/api:8080' }).textContent()) ?? '', /0\.367\/s7\.27%$/, 'the table: HTTP and gRPC requests per second, 8 of 110 failed');
  await shot(page, 'service-map-requests');
  await page.getByTestId('edge-panel').getByRole('link', { name: 'open the client' }).click();
  await page.getByRole('heading', { name: 'workload shop/web' }).waitFor({ timeout: 5_000 });
  const trs = page.getByTestId('requests').locator('tbody tr');
  await trs.nth(5).waitFor({ timeout: 10_000 });
  const rows: string[][] = [];
  for (let i = 0; i < (await trs.count()); i++) rows.push(await trs.nth(i).locator('td').allTextContents());
  assert.deepEqual(rows, [
    ['client', 'HTTP', 'GET /users/{id}', '0.333/s', '6%', '10 ms', '98.2 ms', '100'],
    ['client', 'Redis', 'GET', '0.1/s', '0%', '500 µs', '990 µs', '30'],
    ['client', 'SQL', 'SELECT SELECT * FROM users WHERE id = ?', '0.0667/s', '0%', '500 µs', '990 µs', '20'],
    ['client', 'gRPC', 'shop.Cart/Add', '0.0333/s', '20%', '550 ms', '991 ms', '10'],
    ['client', 'Redis', 'SET', '0.01/s', '100%', '500 µs', '990 µs', '3'],
    ['client', 'SQL', 'INSERT INSERT INTO users VALUES (?, ?)', '0.00333/s', '100%', '500 µs', '990 µs', '1'],
  ]);
  await shot(page, 'workload-requests');

  assert.deepEqual(problems, [], 'no console error, exception or failed request on the service map');
});
