/**
 * `periscope run`: everything on this machine in one process — the hub with its embedded store under
 * --data-dir, and this node's agent shipping to it over loopback — with the URLs printed. `make run`
 * runs it. Started again with the same --data-dir, it finds its data (the store, and any batches the
 * agent had spilled while the hub was away).
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VERSION } from '../agent/version.js';
import { PeriscopeError } from '../kernel/errors.js';
import { COLLECTOR_FLAGS, startAgentCommand } from './agent-command.js';
import { bad, parseFlagsWith, secondsFlag } from './flags.js';
import { collectorArgs, collectorFlagSpec, collectorUsage } from './collector-flags.js';
import { retentionFlags, startHub, webLine } from './hub-command.js';
import { parseListen, requireTokenBeyondLoopback, tokenFile } from './serve-flags.js';

export const RUN_USAGE = `usage: periscope run [flags]

Runs the hub and this node's agent in one process: the embedded store under --data-dir, the query
API and the web UI on --listen, and the agent shipping to it. Prints the URLs.

  --listen HOST:PORT        the hub's API and UI (default 127.0.0.1:9464; port 0 picks a free one)
  --data-dir DIR            where the store and the agent's spill files live
                            (default /var/lib/periscope as root, else ~/.local/share/periscope)
  --node NAME               this node's name (default $NODE_NAME or the host name)
  --interval SECONDS        how often the agent ships (default 5)
  --raw-retention DURATION  raw samples and events (default 6h)
  --rollup-retention DURATION
                            1-minute rollups (default 7d)
  --collectors LIST         the collectors to run (default: all the kernel supports)
  --kubeconfig PATH         name pods from this cluster (without it, in a pod, the service account)
  --no-kubernetes           do not talk to the Kubernetes API
  --token-file FILE         the hub and the agent need "Authorization: Bearer <token in FILE>"
                            (required to listen beyond loopback)
${collectorUsage(COLLECTOR_FLAGS)}`;

const FLAGS = {
  listen: { type: 'string' },
  'data-dir': { type: 'string' },
  node: { type: 'string' },
  interval: { type: 'string' },
  'raw-retention': { type: 'string' },
  'rollup-retention': { type: 'string' },
  collectors: { type: 'string' },
  kubeconfig: { type: 'string' },
  'no-kubernetes': { type: 'boolean' },
  'token-file': { type: 'string' },
} as const;

const CMD = 'run';

export function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/periscope';
  return join(process.env.XDG_DATA_HOME ?? join(process.env.HOME ?? '.', '.local', 'share'), 'periscope');
}

export async function runCommand(args: string[]): Promise<void> {
  const parsed = parseFlagsWith(CMD, RUN_USAGE, args, FLAGS, collectorFlagSpec(COLLECTOR_FLAGS));
  if (!parsed) return;
  const f = parsed.flags;
  const { host, port } = parseListen(f.listen ?? '127.0.0.1:9464', CMD);
  const retention = retentionFlags(CMD, f['raw-retention'], f['rollup-retention']);
  const interval = String(secondsFlag(CMD, 'interval', f.interval ?? '5', 1, 300));
  const token = tokenFile(CMD, 'token-file', f['token-file']);
  requireTokenBeyondLoopback(CMD, host, token, false, 'read this node\'s processes and write into its data', 'pass --token-file FILE, or listen on 127.0.0.1');
  const dataDir = resolve(f['data-dir'] ?? defaultDataDir());
  try {
    mkdirSync(join(dataDir, 'spill'), { recursive: true, mode: 0o700 });
  } catch (err) {
    bad(`--data-dir ${dataDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, CMD, 'give a directory this user can write');
  }
  const hub = await startHub({ cmd: CMD, storeSpec: `duckdb:${join(dataDir, 'hub.duckdb')}`, retention, host, port, ...(token ? { token } : {}) });
  // the agent's own API stays on loopback: the hub's port is the one to use
  const hubUrl = hub.base;
  const agentArgs = [
    '--listen',
    '127.0.0.1:0',
    '--hub',
    hubUrl,
    '--hub-interval',
    interval,
    '--hub-spill-dir',
    join(dataDir, 'spill'),
    ...(f.node !== undefined ? ['--node', f.node] : []),
    ...(f.collectors !== undefined ? ['--collectors', f.collectors] : []),
    ...(f.kubeconfig !== undefined ? ['--kubeconfig', f.kubeconfig] : []),
    ...(f['no-kubernetes'] ? ['--no-kubernetes'] : []),
    ...(f['token-file'] !== undefined ? ['--token-file', f['token-file']] : []),
    ...collectorArgs(COLLECTOR_FLAGS, parsed.extra),
  ];
  let agent;
  try {
    agent = await startAgentCommand(agentArgs);
  } catch (err) {
    await hub.hub.stop();
    hub.server.close();
    // the agent's flag errors name `periscope agent`; they are this command's flags
    if (err instanceof PeriscopeError) throw new PeriscopeError(err.code, err.message, err.hint.replace('periscope agent --help', 'periscope run --help'));
    throw err;
  }
  if (!agent) return;
  const b = hub.base;
  process.stderr.write(
    `periscope ${VERSION} on node ${agent.agent.node}: hub and agent, ${agent.agent.collectors.size} collectors running, data in ${dataDir}\n` +
      `  ui:           ${webLine(hub.hub, b)}\n` +
      `  workloads:    ${b}/api/v1/workloads\n` +
      `  nodes:        ${b}/api/v1/nodes\n` +
      `  series:       ${b}/api/v1/series?metric=periscope_cpu_seconds_total\n` +
      `  events:       ${b}/api/v1/events\n` +
      `  live events:  ${b}/api/v1/events/stream\n` +
      `  service map:  ${b}/api/v1/network/map\n` +
      `  hub health:   ${b}/api/v1/health\n` +
      `  hub metrics:  ${b}/metrics\n` +
      `  agent:        ${agent.base}/metrics (this node, shipping to the hub every ${interval}s)\n` +
      `  top:          bin/periscope top --hub ${b}\n`,
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`periscope run: ${signal}, detaching and closing the store\n`);
    void agent
      .stop()
      .then(async () => {
        hub.server.closeAllConnections();
        hub.server.close();
        await hub.hub.stop();
      })
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
