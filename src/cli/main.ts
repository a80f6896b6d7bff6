/**
 * `periscope`, the command: dispatches to its subcommands. Each takes --help; errors print one line
 * with what went wrong and one with the fix, and exit non-zero.
 */
import { VERSION } from '../agent/version.js';
import { PeriscopeError } from '../kernel/errors.js';
import { agentCommand } from './agent-command.js';
import { doctorCommand } from './doctor.js';
import { parseFlags } from './flags.js';
import { topCommand } from './top.js';
import { hubCommand } from './hub-command.js';
import { profileCommand } from './profile.js';
import { runCommand } from './run-command.js';
import { traceCommand } from './trace.js';

const USAGE = `usage: periscope <command> [flags]

commands:
  run       the hub and this node's agent in one process, with the embedded store (make run)
  hub       the cluster's hub: agents ship to it; it stores and answers the query API
  agent     run the node agent: collectors, /metrics and the JSON API
  doctor    what the kernel supports and which alternative each collector takes
  top       workloads by CPU, run-queue latency, OOMs, switches, execs and TCP, refreshed live
  trace     stream live events from an agent or the hub: tcp, dns, drop, exec or oom
  profile   the CPU, off-CPU or run-queue stacks of a pod, workload, namespace or cgroup
  version   print the version

\`periscope <command> --help\` describes a command's flags.
`;

const VERSION_USAGE = 'usage: periscope version\n\nPrints the version of periscope.\n';

function fail(err: unknown): never {
  if (err instanceof PeriscopeError) {
    process.stderr.write(`periscope: ${err.message}\n  fix: ${err.hint}\n`);
  } else {
    process.stderr.write(`periscope: ${err instanceof Error ? err.message : String(err)}\n`);
  }
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'agent':
      return agentCommand(rest);
    case 'hub':
      return hubCommand(rest);
    case 'run':
      return runCommand(rest);
    case 'doctor':
      return doctorCommand(rest);
    case 'top':
      return topCommand(rest);
    case 'trace':
      return traceCommand(rest);
    case 'profile':
      return profileCommand(rest);
    case 'version':
    case '--version':
      if (parseFlags('version', VERSION_USAGE, rest, {})) process.stdout.write(`${VERSION}\n`);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      throw new PeriscopeError('BAD_ARGUMENT', `unknown command "${command}"`, 'see `periscope --help`');
  }
}

main(process.argv.slice(2)).catch(fail);
