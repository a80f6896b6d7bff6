/**
 * Flag parsing for every subcommand, over node:util's parseArgs: `--help` anywhere prints the
 * command's usage, a negative number after a flag is read as its value (parseArgs alone calls
 * `--grace -5` ambiguous) so that the range check can say what is wrong, and every parse error is one
 * line naming the flag and pointing at the command's --help. Numbers are checked here too.
 */
import { parseArgs } from 'node:util';
import { PeriscopeError } from '../kernel/errors.js';

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
export type Flags<S extends FlagSpec> = { [K in keyof S]: (S[K]['type'] extends 'boolean' ? boolean : string) | undefined };

export function bad(message: string, command: string, hint = `see \`periscope ${command} --help\``): never {
  throw new PeriscopeError('BAD_ARGUMENT', message, hint);
}

/** node:util's parse errors, said the way this command's other errors are. */
function parseError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  const first = (e.message ?? String(err)).split('\n')[0]!.replace(/\.$/, '');
  // "Option '-o, --output <value>' argument missing": the long name is the one people type
  const flag = /'(?:-\w, )?(--?[^' ]+)/.exec(first)?.[1] ?? '';
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown flag ${flag}`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument "${/'(.*)'/.exec(first)?.[1] ?? first}": this command takes only --flags`;
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if (first.endsWith('argument missing')) return `${flag} needs a value`;
    if (first.includes('ambiguous')) return `${flag} needs a value (to give one that begins with a dash, write ${flag}=VALUE)`;
    if (first.includes('does not take an argument')) return `${flag} takes no value`;
  }
  return first;
}

/** Parses args for `command`; returns undefined when --help was asked for (and printed). */
export function parseFlags<S extends FlagSpec>(command: string, usage: string, args: string[], spec: S): Flags<S> | undefined {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage);
    return undefined;
  }
  // `--grace -5`: a value that looks like a negative number is the flag's value, not a flag
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i]!)?.[1];
    const next = args[i + 1];
    if (name && spec[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      joined.push(`--${name}=${next}`);
      i++;
    } else joined.push(args[i]!);
  }
  try {
    return parseArgs({ args: joined, options: spec, allowPositionals: false, strict: true }).values as unknown as Flags<S>;
  } catch (err) {
    bad(parseError(err), command);
  }
}

/** An integer flag within [min, max], written in decimal. */
export function intFlag(command: string, flag: string, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\s*-?\d+\s*$/.test(raw)) bad(`--${flag} wants a whole number, not "${raw}"`, command);
  const n = Number(raw);
  if (n < min || n > max) bad(`--${flag} must be between ${min} and ${max}, not ${n}`, command);
  return n;
}

/** A duration flag in seconds (fractions allowed), within [min, max]. */
export function secondsFlag(command: string, flag: string, raw: string, min: number, max: number): number {
  if (!/^\s*-?(\d+\.?\d*|\.\d+)\s*$/.test(raw)) bad(`--${flag} wants seconds, not "${raw}"`, command);
  const n = Number(raw);
  if (n < min || n > max) bad(`--${flag} must be between ${min} and ${max} seconds, not ${n}`, command);
  return n;
}

/** A comma-separated list flag, empty entries dropped. */
export const listFlag = (raw: string | undefined): string[] => (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const BYTE_UNITS: Record<string, number> = { '': 1, k: 1e3, ki: 1024, m: 1e6, mi: 1024 ** 2, g: 1e9, gi: 1024 ** 3, t: 1e12, ti: 1024 ** 4 };

/** A size flag in bytes: a whole number with an optional unit (k, M, G, T; Ki, Mi, Gi, Ti; a trailing B is allowed), within [min, max]. */
export function bytesFlag(command: string, flag: string, raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const m = /^\s*(\d+)\s*([kmgt]i?)?b?\s*$/i.exec(raw);
  if (!m) bad(`--${flag} wants a size in bytes like 64Mi or 1G, not "${raw}"`, command);
  const n = Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()]!;
  if (n < min || n > max) bad(`--${flag} must be between ${min} and ${max} bytes, not ${n}`, command);
  return n;
}

/**
 * Parses args for `command` with flags besides `spec` that are known only at run time (those the
 * registered collectors declare): their values come back in `extra`. Undefined after --help.
 */
export function parseFlagsWith<S extends FlagSpec>(
  command: string,
  usage: string,
  args: string[],
  spec: S,
  extraSpec: FlagSpec,
): { flags: Flags<S>; extra: Readonly<Record<string, unknown>> } | undefined {
  const clash = Object.keys(extraSpec).find((k) => k in spec);
  if (clash) throw new Error(`--${clash} is declared twice`);
  const all: FlagSpec = { ...extraSpec, ...spec };
  const values = parseFlags(command, usage, args, all);
  if (!values) return undefined;
  const extra = Object.fromEntries(Object.keys(extraSpec).map((k) => [k, values[k]]));
  return { flags: values as unknown as Flags<S>, extra };
}
