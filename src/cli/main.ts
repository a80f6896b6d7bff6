/**
 * `periscope`, the command. Subcommands:
 *   agent   --listen HOST:PORT [--node NAME] [--grace SECONDS] [--max-cgroups N] [--collectors a,b]
 *   doctor  [--output table|json]
 *   version
 * Errors print one line with what went wrong and one with the fix, and exit non-zero.
 */
import { parseArgs } from 'node:util';
import { hostname } from 'node:os';
import { Agent, COLLECTOR_NAMES, type CollectorName } from '../agent/agent.js';
import { listen } from '../agent/server.js';
import { VERSION } from '../agent/version.js';
import { PeriscopeError } from '../kernel/errors.js';
import { checkRequirements, doctorReport, formatDoctor } from './doctor.js';
import { AGGREGATION_LEVELS, type AggregationLevel } from '../inventory/attribution.js';

const USAGE = `usage: periscope <command> [flags]

commands:
  agent    run the node agent: collectors, /metrics and the JSON API
           --listen HOST:PORT     where to serve (default 127.0.0.1:9464)
           --node NAME            node name on every series (default $NODE_NAME or the host name)
           --grace SECONDS        how long series of a vanished cgroup stay (default 60)
           --max-cgroups N        size of each per-cgroup kernel map (default 16384)
           --collectors LIST      comma-separated subset of ${COLLECTOR_NAMES.join(',')}
           --kubeconfig PATH      watch this node's pods with these credentials (in a pod: the
                                  service account is used without this flag)
           --no-kubernetes        do not talk to the Kubernetes API
           --aggregation LEVEL    series per ${AGGREGATION_LEVELS.join(' | ')} (default container)
           --pod-labels LIST      pod labels copied into series as label_<name>, comma-separated
  doctor   what the kernel supports and which alternative each collector takes
           --output table|json
  version  print the version
`;

function fail(err: unknown): never {
  if (err instanceof PeriscopeError) {
    process.stderr.write(`periscope: ${err.message}\n  fix: ${err.hint}\n`);
  } else {
    process.stderr.write(`periscope: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
}

function bad(message: string): never {
  throw new PeriscopeError('BAD_ARGUMENT', message, 'see `periscope --help`');
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) bad(`--listen wants HOST:PORT, not "${s}"`);
  const port = Number(m[2]);
  if (port > 65535) bad(`--listen: port ${port} is out of range`);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port };
}

async function agent(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      listen: { type: 'string', default: '127.0.0.1:9464' },
      node: { type: 'string' },
      grace: { type: 'string', default: '60' },
      'max-cgroups': { type: 'string', default: '16384' },
      collectors: { type: 'string' },
      kubeconfig: { type: 'string' },
      'no-kubernetes': { type: 'boolean', default: false },
      aggregation: { type: 'string', default: 'container' },
      'pod-labels': { type: 'string', default: '' },
    },
  });
  const { host, port } = parseListen(values.listen);
  const grace = Number(values.grace);
  if (!(grace >= 0)) bad(`--grace wants seconds, not "${values.grace}"`);
  const maxCgroups = Number(values['max-cgroups']);
  if (!Number.isInteger(maxCgroups) || maxCgroups < 1) bad(`--max-cgroups wants a positive integer, not "${values['max-cgroups']}"`);
  const collectors = values.collectors?.split(',').map((c) => {
    if (!COLLECTOR_NAMES.includes(c as CollectorName)) bad(`unknown collector "${c}"; known: ${COLLECTOR_NAMES.join(', ')}`);
    return c as CollectorName;
  });
  const aggregation = values.aggregation as AggregationLevel;
  if (!AGGREGATION_LEVELS.includes(aggregation)) bad(`--aggregation wants ${AGGREGATION_LEVELS.join(', ')}, not "${values.aggregation}"`);
  const podLabels = values['pod-labels'].split(',').filter(Boolean);
  const useKubernetes = !values['no-kubernetes'] && (values.kubeconfig !== undefined || process.env.KUBERNETES_SERVICE_HOST !== undefined);
  const problem = checkRequirements();
  if (problem) throw problem;

  const node = values.node ?? process.env.NODE_NAME ?? hostname();
  // loaded only when wanted: the client is the largest part of the agent's memory
  const kubernetes = useKubernetes
    ? new (await import('../inventory/kubernetes.js')).KubernetesInventory({
        node,
        graceMs: grace * 1000,
        ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
      })
    : undefined;
  const a = new Agent({
    node,
    graceMs: grace * 1000,
    maxCgroups,
    ...(kubernetes ? { kubernetes } : {}),
    aggregation,
    podLabels,
    ...(collectors ? { collectors } : {}),
  });
  a.start();
  const server = await listen(a, host, port).catch((err: NodeJS.ErrnoException) => {
    a.stop();
    throw new PeriscopeError('BAD_ARGUMENT', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, 'choose another --listen HOST:PORT, or stop what uses this one');
  });
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  process.stderr.write(
    `periscope agent ${VERSION} on node ${a.node}: ${a.collectors.size} collectors running\n` +
      `  metrics:      ${base}/metrics\n` +
      `  events:       ${base}/api/v1/events\n` +
      `  live events:  ${base}/api/v1/events/stream\n` +
      `  pods:         ${base}/api/v1/pods\n` +
      `  status:       ${base}/api/v1/status\n`,
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`periscope agent: ${signal}, detaching\n`);
    a.stop();
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

function doctor(args: string[]): void {
  const { values } = parseArgs({ args, options: { output: { type: 'string', short: 'o', default: 'table' } } });
  if (values.output !== 'table' && values.output !== 'json') bad(`--output wants table or json, not "${values.output}"`);
  const problem = checkRequirements();
  if (problem) {
    if (values.output === 'json') process.stdout.write(`${JSON.stringify({ ok: false, error: problem.message, code: problem.code, hint: problem.hint })}\n`);
    throw problem;
  }
  const report = doctorReport();
  process.stdout.write(values.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
  if (!report.ok) process.exitCode = 1;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return agent(rest);
    case 'doctor':
      return doctor(rest);
    case 'version':
    case '--version':
      process.stdout.write(`${VERSION}\n`);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      bad(`unknown command "${command}"`);
  }
}

main(process.argv.slice(2)).catch(fail);
