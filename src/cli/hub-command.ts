/**
 * `periscope hub`: the cluster's hub. Agents ship to it (`periscope agent --hub URL`); it stores
 * what they send (DuckDB in a file by default, ClickHouse past one machine) and answers the query API,
 * its own /metrics and the web UI (dist/web, built by make build), on one port.
 */
import { type AddressInfo } from 'node:net';
import { type Server } from 'node:http';
import { VERSION } from '../agent/version.js';
import { Hub } from '../hub/hub.js';
import { openStore } from '../hub/stores.js';
import { type StoreOptions } from '../hub/store.js';
import { PeriscopeError } from '../kernel/errors.js';
import { bad, intFlag, parseFlags } from './flags.js';
import { baseUrl, parseListen, requireTokenBeyondLoopback, tlsFlags, tokenFile } from './serve-flags.js';

export const HUB_USAGE = `usage: periscope hub [flags]

Runs the hub: agents ship to it, it stores what they send and answers the query API and the web UI.

  --listen HOST:PORT        where to serve ingest, the API, /metrics and the UI (default 127.0.0.1:9465)
  --store SPEC              duckdb:PATH (default duckdb:periscope-hub.duckdb, a file; no set-up) or
                            clickhouse:http://USER:PASSWORD@HOST:8123/DATABASE (several hubs may share one)
  --raw-retention DURATION  how long raw samples and events are kept (default 6h)
  --rollup-retention DURATION
                            how long 1-minute rollups are kept (default 7d)
  --no-maintenance          do not make rollups or drop old data here: for every hub but one when
                            several share a ClickHouse (two rolling up the same minute count it twice)
security:
  --token-file FILE         ingest and every API route but /healthz need "Authorization: Bearer <token in FILE>"
                            (the UI's files are served without it; the UI asks for the token)
                            (give agents the same file: periscope agent --hub URL --token-file FILE)
  --tls-cert FILE           serve HTTPS with this PEM certificate ...
  --tls-key FILE            ... and this PEM key
  --allow-unauthenticated   serve a non-loopback address without --token-file
  --max-stream-clients N    live event streams at once (default 16)

Durations: 90s, 30m, 6h, 7d.
`;

const FLAGS = {
  listen: { type: 'string' },
  store: { type: 'string' },
  'raw-retention': { type: 'string' },
  'rollup-retention': { type: 'string' },
  'no-maintenance': { type: 'boolean' },
  'token-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'allow-unauthenticated': { type: 'boolean' },
  'max-stream-clients': { type: 'string' },
} as const;

const CMD = 'hub';
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration flag: a number and a unit (s, m, h, d), within [minMs, maxMs]. */
export function durationFlag(cmd: string, flag: string, raw: string, minMs: number, maxMs: number): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(raw.trim());
  if (!m) bad(`--${flag} wants a duration such as 30m, 6h or 7d, not "${raw}"`, cmd);
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  if (ms < minMs || ms > maxMs) bad(`--${flag} must be between ${minMs / 60_000} minutes and ${maxMs / 86_400_000} days, not ${raw}`, cmd);
  return ms;
}

export function retentionFlags(cmd: string, raw: string | undefined, rollup: string | undefined): StoreOptions {
  const rawRetentionMs = durationFlag(cmd, 'raw-retention', raw ?? '6h', 10 * 60_000, 30 * 86_400_000);
  const rollupRetentionMs = durationFlag(cmd, 'rollup-retention', rollup ?? '7d', 60 * 60_000, 400 * 86_400_000);
  if (rollupRetentionMs < rawRetentionMs) bad('--rollup-retention is shorter than --raw-retention', cmd, 'keep the rollups at least as long as the raw samples');
  return { rawRetentionMs, rollupRetentionMs };
}

/** Opens the store and starts the hub listening; resolves once it serves. */
export async function startHub(opts: {
  cmd: string;
  storeSpec: string;
  retention: StoreOptions;
  host: string;
  port: number;
  token?: string;
  tls?: { cert: string; key: string };
  maxStreamClients?: number;
  maintenance?: boolean;
}): Promise<{ hub: Hub; server: Server; base: string; wildcard: boolean }> {
  const store = openStore(opts.storeSpec, opts.retention);
  await store.open();
  let hub: Hub;
  try {
    hub = new Hub({ store, ...(opts.token ? { token: opts.token } : {}), ...(opts.maxStreamClients !== undefined ? { maxStreamClients: opts.maxStreamClients } : {}) });
  } catch (err) {
    // the web UI's files could not be read (web.ts): the store is closed again
    await store.close();
    throw new PeriscopeError('BAD_ARGUMENT', `cannot serve the web UI: ${(err as Error).message}`, 'rebuild it (make build), or remove dist/web to run without it');
  }
  if (opts.maintenance ?? true) await hub.start();
  const server = await hub.listen(opts.host, opts.port, opts.tls).catch(async (err: NodeJS.ErrnoException) => {
    await hub.stop();
    throw new PeriscopeError('BAD_ARGUMENT', `cannot listen on ${opts.host}:${opts.port}: ${err.code ?? err.message}`, 'choose another --listen HOST:PORT, or stop what uses this one');
  });
  return { hub, server, ...baseUrl(server.address() as AddressInfo, opts.tls !== undefined) };
}

/** Where the banner says the web UI is, or that it is not built. */
export function webLine(hub: Hub, base: string): string {
  return hub.web.built ? `${base}/` : `not built (${hub.web.dir}): run make build`;
}

export async function hubCommand(args: string[]): Promise<void> {
  const f = parseFlags(CMD, HUB_USAGE, args, FLAGS);
  if (!f) return;
  const { host, port } = parseListen(f.listen ?? '127.0.0.1:9465', CMD);
  const retention = retentionFlags(CMD, f['raw-retention'], f['rollup-retention']);
  const token = tokenFile(CMD, 'token-file', f['token-file']);
  requireTokenBeyondLoopback(CMD, host, token, f['allow-unauthenticated'], 'write into this cluster\'s data and read it');
  const tls = tlsFlags(CMD, f['tls-cert'], f['tls-key']);
  const maxStreamClients = intFlag(CMD, 'max-stream-clients', f['max-stream-clients'] ?? '16', 0, 10_000);
  const { hub, server, base, wildcard } = await startHub({
    cmd: CMD,
    storeSpec: f.store ?? 'duckdb:periscope-hub.duckdb',
    retention,
    host,
    port,
    ...(token ? { token } : {}),
    ...(tls ? { tls } : {}),
    maxStreamClients,
    maintenance: !f['no-maintenance'],
  });
  const notes = [...(wildcard ? [`listening on every address, port ${(server.address() as AddressInfo).port}`] : []), ...(token ? ['bearer token required'] : [])];
  process.stderr.write(
    `periscope hub ${VERSION}: store ${hub.store.kind} at ${hub.store.location}${notes.map((n) => `, ${n}`).join('')}\n` +
      `  ui:           ${webLine(hub, base)}\n` +
      `  ingest:       ${base}/api/v1/ingest   (periscope agent --hub ${base})\n` +
      `  workloads:    ${base}/api/v1/workloads\n` +
      `  nodes:        ${base}/api/v1/nodes\n` +
      `  metrics:      ${base}/metrics\n`,
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`periscope hub: ${signal}, closing the store\n`);
    server.closeAllConnections();
    server.close();
    void hub.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
