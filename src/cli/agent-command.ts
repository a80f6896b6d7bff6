/**
 * `periscope agent`: reads and checks its flags (every mistake is one line naming the flag and the
 * fix, before anything is loaded), builds the agent and its HTTP API, prints where to look, and
 * detaches everything on SIGINT/SIGTERM.
 */
import { hostname } from 'node:os';
import { type AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { Agent } from '../agent/agent.js';
import { Api } from '../agent/api.js';
import { VERSION } from '../agent/version.js';
import { DEFAULT_SECRET_KEYS } from '../agent/redact.js';
import { COLLECTORS, COLLECTOR_NAMES } from '../collectors/registry.js';
import { planMemory } from '../agent/memory-budget.js';
import { native } from '../kernel/native.js';
import { PeriscopeError } from '../kernel/errors.js';
import { AGGREGATION_LEVELS, type AggregationLevel } from '../inventory/attribution.js';
import { PEER_SCOPES, type PeerScope } from '../inventory/peers.js';
import { checkRequirements } from './doctor.js';
import { baseUrl, parseListen, readSecretFile, requireTokenBeyondLoopback, tlsFlags, tokenFile } from './serve-flags.js';
import { bad, bytesFlag, intFlag, listFlag, parseFlagsWith, secondsFlag } from './flags.js';
import { collectorFlags, collectorFlagSpec, collectorUsage, readCollectorFlags } from './collector-flags.js';
import { agentShipInput, DEFAULT_BUFFER_BYTES, DEFAULT_SPILL_MAX_BYTES, Shipper } from '../agent/shipper.js';

/** The flags the registered collectors declare (--<collector>-select, --<collector>-<setting>). */
export const COLLECTOR_FLAGS = collectorFlags(COLLECTORS);

export const AGENT_USAGE = `usage: periscope agent [flags]

Runs the node agent: the collectors the kernel supports, /metrics and the JSON API.

  --listen HOST:PORT        where to serve (default 127.0.0.1:9464; port 0 picks a free one)
  --node NAME               node name on every series (default $NODE_NAME or the host name)
  --grace SECONDS           how long series of a vanished cgroup stay (default 60)
  --max-cgroups N           size of each per-cgroup kernel map (default: what 64 MiB of kernel
                            memory holds on this node's CPUs, at most 16384; doctor shows it)
  --max-series N            most series per metric (default 10000)
  --max-peers N             network peers named per source series; the rest fold into peer="other" (default 100)
  --collectors LIST         comma-separated subset of ${COLLECTOR_NAMES.join(',')}
  --kubeconfig PATH         watch this node's pods with these credentials (in a pod the service
                            account is used without this flag)
  --no-kubernetes           do not talk to the Kubernetes API
  --peer-pods SCOPE         cluster | node: name peers by watching every pod of the cluster, or
                            only this node's (huge clusters) (default cluster)
  --aggregation LEVEL       series per ${AGGREGATION_LEVELS.join(' | ')} (default container)
  --pod-labels LIST         pod labels copied into series as label_<name>, comma-separated
  --cgroup-subtree PATH     only cgroups under PATH (below the cgroup2 root, e.g. /kubepods.slice):
                            rows and events of others are neither exported nor shipped, so several
                            agents on one machine (each with its --node) count each cgroup once
hub (ship metrics and events to a periscope hub):
  --hub URL                 the hub's base URL (http:// or https://); batches go to URL/api/v1/ingest
  --hub-token-file FILE     bearer token for the hub (default: the --token-file token, the usual
                            set-up being one token shared by the cluster's agents and hub)
  --hub-ca-file FILE        PEM CA certificate the hub's HTTPS certificate is checked against
                            (default: the system's CAs)
  --hub-interval SECONDS    one batch every SECONDS, 1-300 (default 10)
  --hub-buffer BYTES        most compressed batches held in memory while the hub is away (default 64Mi)
  --hub-spill-dir DIR       when memory is full, and at stop, batches go to files in DIR and are sent
                            first when the hub is back, by this run or the next (one DIR per agent)
  --hub-spill-max BYTES     most bytes in --hub-spill-dir (default 1Gi); beyond it the oldest batches
                            are dropped, their counter increases added into the next batch
security:
  --token-file FILE         every request but /healthz needs "Authorization: Bearer <token in FILE>"
  --metrics-open            serve /metrics without the token (for Prometheus)
  --tls-cert FILE           serve HTTPS with this PEM certificate ...
  --tls-key FILE            ... and this PEM key
  --allow-unauthenticated   serve a non-loopback address without --token-file
  --max-stream-clients N    live event streams at once (default 16)
  --secret-keys LIST        argument names whose values are masked in exec events
                            (default ${DEFAULT_SECRET_KEYS.join(',')})
  --no-exec-args            drop the arguments of exec events altogether
${collectorUsage(COLLECTOR_FLAGS)}`;

const FLAGS = {
  listen: { type: 'string' },
  node: { type: 'string' },
  grace: { type: 'string' },
  'max-cgroups': { type: 'string' },
  'max-series': { type: 'string' },
  'max-peers': { type: 'string' },
  collectors: { type: 'string' },
  kubeconfig: { type: 'string' },
  'no-kubernetes': { type: 'boolean' },
  'peer-pods': { type: 'string' },
  aggregation: { type: 'string' },
  'pod-labels': { type: 'string' },
  'cgroup-subtree': { type: 'string' },
  hub: { type: 'string' },
  'hub-token-file': { type: 'string' },
  'hub-ca-file': { type: 'string' },
  'hub-interval': { type: 'string' },
  'hub-buffer': { type: 'string' },
  'hub-spill-dir': { type: 'string' },
  'hub-spill-max': { type: 'string' },
  'token-file': { type: 'string' },
  'metrics-open': { type: 'boolean' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'allow-unauthenticated': { type: 'boolean' },
  'max-stream-clients': { type: 'string' },
  'secret-keys': { type: 'string' },
  'no-exec-args': { type: 'boolean' },
} as const;

const CMD = 'agent';

/**
 * Where to look, as `make run` shows it (README.md quotes it; a test holds the two together). The
 * URLs are usable as printed: the real port when port 0 was asked for, and this machine's loopback
 * address when the agent listens on every address.
 */
export function banner(agent: Agent, address: AddressInfo, opts: { tls: boolean; token: boolean; hub?: { url: string; intervalSeconds: number } }): string {
  const { base, wildcard } = baseUrl(address, opts.tls);
  const notes = [
    ...(wildcard ? [`listening on every address, port ${address.port}`] : []),
    ...(opts.token ? ['bearer token required'] : []),
  ];
  return (
    `periscope agent ${VERSION} on node ${agent.node}: ${agent.collectors.size} collectors running${notes.map((n) => `, ${n}`).join('')}\n` +
    `  metrics:      ${base}/metrics\n` +
    `  events:       ${base}/api/v1/events\n` +
    `  live events:  ${base}/api/v1/events/stream\n` +
    `  pods:         ${base}/api/v1/pods\n` +
    `  status:       ${base}/api/v1/status\n` +
    (opts.hub ? `  hub:          shipping to ${opts.hub.url} every ${opts.hub.intervalSeconds}s\n` : '')
  );
}

/** The --hub flags, checked: the shipper's options, or undefined without --hub. */
function parseHubFlags(f: { [k: string]: string | boolean | undefined }, agentToken: string | undefined): { options: Omit<ConstructorParameters<typeof Shipper>[0], 'node' | 'collect'>; intervalSeconds: number } | undefined {
  const str = (k: string): string | undefined => f[k] as string | undefined;
  const url = str('hub');
  if (url === undefined) {
    const stray = ['hub-token-file', 'hub-ca-file', 'hub-interval', 'hub-buffer', 'hub-spill-dir', 'hub-spill-max'].find((k) => f[k] !== undefined);
    if (stray) bad(`--${stray} is for shipping to a hub: give --hub URL too`, CMD);
    return undefined;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    bad(`--hub wants a URL like https://hub.example:9465, not "${url}"`, CMD);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') bad(`--hub wants an http:// or https:// URL, not "${url}"`, CMD);
  if (parsed.search || parsed.hash) bad(`--hub wants the hub's base URL, without ?query or #fragment: "${url}"`, CMD);
  const tokenFile = str('hub-token-file');
  const token = tokenFile === undefined ? agentToken : readSecretFile(CMD, 'hub-token-file', tokenFile).trim();
  if (tokenFile !== undefined && !token) bad(`--hub-token-file ${tokenFile} holds no token`, CMD);
  const caFile = str('hub-ca-file');
  const ca = caFile === undefined ? undefined : readSecretFile(CMD, 'hub-ca-file', caFile);
  if (ca !== undefined) {
    if (parsed.protocol !== 'https:') bad('--hub-ca-file is for an https:// --hub', CMD);
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) bad(`--hub-ca-file ${caFile} holds no PEM certificate`, CMD, 'give the PEM CA certificate that signed the hub\'s');
    try {
      createSecureContext({ ca });
    } catch (err) {
      bad(`--hub-ca-file ${caFile} cannot be used: ${(err as Error).message}`, CMD, 'give a PEM CA certificate');
    }
  }
  const intervalSeconds = secondsFlag(CMD, 'hub-interval', str('hub-interval') ?? '10', 1, 300);
  const bufferBytes = bytesFlag(CMD, 'hub-buffer', str('hub-buffer') ?? String(DEFAULT_BUFFER_BYTES), 1 << 20, 2 ** 40);
  const spillMaxBytes = bytesFlag(CMD, 'hub-spill-max', str('hub-spill-max') ?? String(DEFAULT_SPILL_MAX_BYTES), 1 << 20, 2 ** 50);
  if (str('hub-spill-max') !== undefined && str('hub-spill-dir') === undefined) bad('--hub-spill-max goes with --hub-spill-dir', CMD);
  const spillDir = str('hub-spill-dir');
  return {
    intervalSeconds,
    options: {
      hub: parsed.href.replace(/\/$/, ''),
      intervalMs: intervalSeconds * 1000,
      bufferBytes,
      spillMaxBytes,
      ...(token ? { token } : {}),
      ...(ca ? { ca } : {}),
      ...(spillDir ? { spillDir } : {}),
    },
  };
}

/** A running agent as the command started it: its API server, its shipper, and how to stop it. */
export interface StartedAgent {
  agent: Agent;
  banner: string;
  /** where its API is, as the banner prints it */
  base: string;
  /** ships the last batch (~2 s at most), detaches every program and closes the API */
  stop(): Promise<void>;
}

export async function agentCommand(args: string[]): Promise<void> {
  const started = await startAgentCommand(args);
  if (!started) return;
  process.stderr.write(started.banner);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`periscope agent: ${signal}, detaching\n`);
    void started.stop().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** Checks the flags of `periscope agent`, starts the agent, its shipper and its API; undefined after --help. */
export async function startAgentCommand(args: string[]): Promise<StartedAgent | undefined> {
  const parsed = parseFlagsWith(CMD, AGENT_USAGE, args, FLAGS, collectorFlagSpec(COLLECTOR_FLAGS));
  if (!parsed) return undefined;
  const f = parsed.flags;
  const { host, port } = parseListen(f.listen ?? '127.0.0.1:9464', CMD);
  const grace = secondsFlag(CMD, 'grace', f.grace ?? '60', 0, 7 * 86_400);
  const maxCgroupsFlag = f['max-cgroups'] === undefined ? undefined : intFlag(CMD, 'max-cgroups', f['max-cgroups'], 1, 1 << 20);
  const maxSeries = intFlag(CMD, 'max-series', f['max-series'] ?? '10000', 1, 10_000_000);
  const maxPeers = intFlag(CMD, 'max-peers', f['max-peers'] ?? '100', 1, 100_000);
  const maxStreamClients = intFlag(CMD, 'max-stream-clients', f['max-stream-clients'] ?? '16', 0, 10_000);
  const collectors = f.collectors === undefined ? undefined : listFlag(f.collectors);
  for (const c of collectors ?? []) if (!COLLECTOR_NAMES.includes(c)) bad(`--collectors: unknown collector "${c}"; known: ${COLLECTOR_NAMES.join(', ')}`, CMD);
  if (collectors?.length === 0) bad('--collectors names no collector', CMD);
  const aggregation = (f.aggregation ?? 'container') as AggregationLevel;
  if (!AGGREGATION_LEVELS.includes(aggregation)) bad(`--aggregation wants ${AGGREGATION_LEVELS.join(', ')}, not "${f.aggregation}"`, CMD);
  const peerScope = (f['peer-pods'] ?? 'cluster') as PeerScope;
  if (!PEER_SCOPES.includes(peerScope)) bad(`--peer-pods wants ${PEER_SCOPES.join(' or ')}, not "${f['peer-pods']}"`, CMD);
  const node = f.node ?? (process.env.NODE_NAME || hostname());
  if (!node.trim()) bad('--node is empty: give the node name series carry', CMD);

  const token = tokenFile(CMD, 'token-file', f['token-file']);
  requireTokenBeyondLoopback(CMD, host, token, f['allow-unauthenticated'], "read this node's processes");
  const tls = tlsFlags(CMD, f['tls-cert'], f['tls-key']);

  const subtree = f['cgroup-subtree'];
  if (subtree !== undefined && (!subtree.startsWith('/') || subtree.split('/').some((p) => p === '..' || p === '.'))) {
    bad(`--cgroup-subtree wants a path under the cgroup2 root that begins with "/", not "${subtree}"`, CMD, 'e.g. --cgroup-subtree /kubepods.slice');
  }
  const hub = parseHubFlags(f, token);
  const { selections, settings } = readCollectorFlags(CMD, COLLECTORS, COLLECTOR_FLAGS, parsed.extra);

  const problem = checkRequirements();
  if (problem) throw problem;

  const useKubernetes = !f['no-kubernetes'] && (f.kubeconfig !== undefined || process.env.KUBERNETES_SERVICE_HOST !== undefined);
  // the kernel maps for --max-cgroups must fit the agent's memory limit: say so now, not as an OOM kill
  // (a collector that works on selected workloads and has none does not run)
  const defs = COLLECTORS.filter((c) => (collectors ? collectors.includes(c.name) : true) && (!c.selection || selections[c.name] !== undefined));
  const { maxCgroups } = planMemory(defs, native().numPossibleCpus(), { ...(maxCgroupsFlag ? { maxCgroups: maxCgroupsFlag } : {}), kubernetes: useKubernetes });
  // loaded only when wanted: the client is the largest part of the agent's memory
  const kubernetes = useKubernetes
    ? new (await import('../inventory/kubernetes.js')).KubernetesInventory({ node, graceMs: grace * 1000, peerScope, ...(f.kubeconfig ? { kubeconfig: f.kubeconfig } : {}) })
    : undefined;
  await kubernetes?.check();

  const agent = new Agent({
    node,
    graceMs: grace * 1000,
    maxCgroups,
    maxSeries,
    maxPeers,
    aggregation,
    podLabels: listFlag(f['pod-labels']),
    redact: { dropArgs: f['no-exec-args'] ?? false, ...(f['secret-keys'] !== undefined ? { keys: listFlag(f['secret-keys']) } : {}) },
    ...(kubernetes ? { kubernetes } : {}),
    ...(collectors ? { collectors } : {}),
    ...(subtree !== undefined ? { cgroupSubtree: subtree } : {}),
    selections,
    settings,
  });
  agent.start();
  const shipper = hub ? new Shipper({ ...hub.options, node, cgroupSubtree: agent.cgroupSubtree, collect: agentShipInput(agent), events: agent.events }) : undefined;
  if (shipper) {
    agent.addSource(shipper.metrics());
    shipper.start();
  }
  const api = new Api(agent, { ...(token ? { token } : {}), metricsOpen: f['metrics-open'] ?? false, maxStreamClients });
  const server = await api.listen(host, port, tls).catch((err: NodeJS.ErrnoException) => {
    agent.stop();
    throw new PeriscopeError('BAD_ARGUMENT', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, 'choose another --listen HOST:PORT, or stop what uses this one');
  });
  return {
    agent,
    base: baseUrl(server.address() as AddressInfo, tls !== undefined).base,
    banner: banner(agent, server.address() as AddressInfo, { tls: tls !== undefined, token: token !== undefined, ...(hub ? { hub: { url: hub.options.hub, intervalSeconds: hub.intervalSeconds } } : {}) }),
    stop: async () => {
      // the last batch is read before the collectors go; the shipper then has ~2 s to send what is left
      const shipped = shipper ? shipper.stop() : Promise.resolve();
      agent.stop();
      server.closeAllConnections();
      const closed = new Promise<void>((r) => server.close(() => r()));
      await Promise.all([shipped, closed]);
    },
  };
}
