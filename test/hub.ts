/** A Hub on 127.0.0.1 over a throwaway DuckDB store, for the hub's tests; taken down after the test. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AddressInfo } from 'node:net';
import { Hub, type HubOptions } from '../src/hub/hub.js';
import { openStore } from '../src/hub/stores.js';

export async function startTestHub(t: { after: (fn: () => unknown) => void }, opts: Omit<HubOptions, 'store'>): Promise<{ hub: Hub; base: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-hub-'));
  const store = openStore(`duckdb:${join(dir, 'hub.duckdb')}`, { rawRetentionMs: 6 * 3_600_000, rollupRetentionMs: 7 * 86_400_000 });
  await store.open();
  const hub = new Hub({ log: () => undefined, ...opts, store });
  const server = await hub.listen('127.0.0.1', 0);
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await hub.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { hub, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
