/** The events of the process collector as the agent serves them (the envelope comes from src/wire). */
import { type PeriscopeEvent } from '../../wire/events.js';

type ProcessFields = {
  /** process id on the host (the initial pid namespace) */
  pid: number;
  /** process id in the process's own pid namespace (1 for a container's first process) */
  ns_pid: number;
  ppid: number;
  uid: number;
  comm: string;
};

export type ExecEvent = PeriscopeEvent<
  'exec',
  ProcessFields & {
    filename: string;
    /** the first arguments (256 bytes), secrets masked */
    args: string[];
    args_truncated: boolean;
  }
>;

export type ExitEvent = PeriscopeEvent<
  'exit',
  ProcessFields & {
    exit_code: number;
    signal: number;
    signal_name: string | null;
    core_dumped: boolean;
    lifetime_seconds: number;
  }
>;
