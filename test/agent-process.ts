/** Starts `bin/periscope agent` as its own process for end-to-end tests, and stops it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { eventually } from './kernel.js';

export const BIN = fileURLToPath(new URL('../../bin/periscope', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface RunningAgent {
  /** the base URL the banner printed: http(s)://host:port */
  url: string;
  child: ChildProcess;
  /** the banner block the agent printed once it listened */
  banner: string;
  log: () => string;
  /** SIGTERM, then the exit code */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  /** --listen (default 127.0.0.1 on a free port) */
  listen?: string;
  env?: NodeJS.ProcessEnv;
  /** a command the agent is run through (its arguments follow), e.g. to start it in a namespace */
  wrap?: string[];
}

const BANNER = /^periscope agent .*\n(?: {2}\S.*\n)*? {2}status: +\S+\n/m;

/**
 * Starts the agent and waits for its banner, which says where it listens: the URL the tests use is
 * the one printed there, so every test that starts an agent also checks that the banner's URL works.
 */
export async function startAgent(args: string[] = [], opts: StartOptions = {}): Promise<RunningAgent> {
  const listen = opts.listen ?? `127.0.0.1:${await freePort()}`;
  const [cmd, ...rest] = [...(opts.wrap ?? []), BIN, 'agent', '--listen', listen, ...args] as [string, ...string[]];
  const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const banner = await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}: ${log}`);
      return BANNER.exec(log)?.[0];
    },
    20_000,
    'the agent to print where it listens',
  );
  const url = /^ {2}metrics: +(\S+)\/metrics$/m.exec(banner)?.[1];
  if (!url) throw new Error(`no metrics URL in the banner: ${banner}`);
  return {
    url,
    child,
    banner,
    log: () => log,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** The values of a metric's samples that have these labels (others ignored). */
function* values(text: string, name: string, labels: Record<string, string>): Generator<number> {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const p of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have.set(p[1]!, p[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) yield Number(m[3]);
  }
}

/** One sample of a metric with exactly these labels (others ignored), or undefined. */
export function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const v of values(text, name, labels)) return v;
  return undefined;
}

/** The sum of every sample of a metric with these labels (others ignored); 0 when there is none. */
export function sumOf(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const v of values(text, name, labels)) sum += v;
  return sum;
}

export interface Proc {
  child: ChildProcess;
  log: () => string;
  url: string;
  stop(): Promise<number | null>;
}

/** Starts a periscope command (hub, run) and waits for its banner's line `label: URL`. */
export async function startPeriscope(args: string[], label: string): Promise<Proc> {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await eventually(
    () => {
      if (child.exitCode !== null) throw new Error(`${args[0]} exited with ${child.exitCode}: ${log}`);
      return new RegExp(`^ {2}${label}: +(https?://[^/\\s]+)`, 'm').exec(log)?.[1];
    },
    30_000,
    `periscope ${args[0]} to print its URLs`,
  );
  return {
    child,
    log: () => log,
    url,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
