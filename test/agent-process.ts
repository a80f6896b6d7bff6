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
  url: string;
  child: ChildProcess;
  log: () => string;
  /** SIGTERM, then the exit code */
  stop(): Promise<number | null>;
}

/** wrap: a command the agent is run through (its arguments follow), e.g. to start it in a namespace. */
export async function startAgent(args: string[] = [], opts: { wrap?: string[] } = {}): Promise<RunningAgent> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const argv = [BIN, 'agent', '--listen', `127.0.0.1:${port}`, ...args];
  const [cmd, ...rest] = [...(opts.wrap ?? []), ...argv] as [string, ...string[]];
  const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode}: ${log}`);
      try {
        return (await fetch(`${url}/healthz`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    },
    20_000,
    'the agent to listen',
  );
  return {
    url,
    child,
    log: () => log,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** One sample of a metric with exactly these labels (others ignored), or undefined. */
export function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const p of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) have.set(p[1]!, p[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}
