/**
 * The typed error of the kernel layer and everything above it: a stable code, what happened, what to
 * do about it, and the cause (for a libbpf failure: errno, its name and libbpf's own log). The CLI
 * prints `message` and `hint` on one line each; the HTTP API returns them as JSON.
 */
export type ErrorCode =
  | 'NOT_PRIVILEGED'
  | 'NO_BTF'
  | 'NO_CGROUP2'
  | 'NATIVE_MISSING'
  | 'BPF_OPEN'
  | 'BPF_LOAD'
  | 'BPF_ATTACH'
  | 'BPF_MAP'
  | 'NO_ALTERNATIVE'
  | 'AGENT_UNREACHABLE'
  | 'AGENT_REFUSED'
  | 'AGENT_STREAM_ENDED'
  | 'BAD_ARGUMENT';

export class PeriscopeError extends Error {
  override readonly name = 'PeriscopeError';
  readonly code: ErrorCode;
  readonly hint: string;

  constructor(code: ErrorCode, message: string, hint: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.hint = hint;
  }
}

/** A libbpf failure as the native binding reports it. */
export interface NativeError extends Error {
  code: string;
  errno: number;
  libbpfLog: string;
}

export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).errno === 'number';
}

/** errno name of a native failure, or undefined. */
export function errnoName(e: unknown): string | undefined {
  return isNativeError(e) ? e.code : undefined;
}

/** The last lines of libbpf's log, where the verifier says why it refused a program. */
export function logTail(e: unknown, lines = 12): string {
  if (!isNativeError(e) || !e.libbpfLog) return '';
  return e.libbpfLog.trimEnd().split('\n').slice(-lines).join('\n');
}
