/**
 * Drives test/fixtures/tcp-exchange.py: one TCP connection with an exact exchange (the client writes N
 * bytes, the server M), held open until the test says close. `where.enter` is shell run first (e.g. a
 * TestCgroup's `enter`: join the cgroup), `where.wrap` a command the fixture runs under (e.g.
 * `nsenter --net=/var/run/netns/p1`).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Where {
  enter?: string;
  wrap?: string;
}

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/tcp-exchange.py', import.meta.url));

export class Exchange {
  private readonly child: ChildProcessWithoutNullStreams;
  private out = '';
  private readonly waiters: (() => void)[] = [];
  readonly exited: Promise<number | null>;

  private constructor(where: Where, args: string[]) {
    const script = `${where.enter ? `${where.enter} && ` : ''}exec ${where.wrap ?? ''} /usr/bin/python3 ${FIXTURE} ${args.join(' ')}`;
    this.child = spawn('/bin/sh', ['-c', script], { stdio: 'pipe' });
    this.child.stdout.on('data', (d: Buffer) => {
      this.out += d.toString();
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr.on('data', (d: Buffer) => {
      this.out += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.on('close', (code) => {
      for (const w of this.waiters.splice(0)) w();
      resolve(code);
    }));
  }

  static listen(where: Where, host: string, port: number, n: number, m: number): Exchange {
    return new Exchange(where, ['listen', host, String(port), String(n), String(m)]);
  }

  static connect(where: Where, host: string, port: number, n: number, m: number): Exchange {
    return new Exchange(where, ['connect', host, String(port), String(n), String(m)]);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get output(): string {
    return this.out;
  }

  /**
   * Resolves with the first complete output line starting with `word` (its rest), or rejects on exit or
   * timeout. Only whole lines: an unbuffered Python (PYTHONUNBUFFERED) writes print's parts one by one.
   */
  async line(word: string, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = new RegExp(`^${word}(?: (.*))?$`, 'm').exec(this.out.slice(0, this.out.lastIndexOf('\n') + 1));
      if (m) return m[1] ?? '';
      if (this.child.exitCode !== null || Date.now() > deadline) throw new Error(`no "${word}" from tcp-exchange (exit ${this.child.exitCode}): ${this.out.slice(-500)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Tells it to close the connection (both FINs), and waits for it to exit. */
  close(): Promise<void> {
    return this.end('close');
  }

  /** The client closes at once and exits, without waiting for the server's FIN. */
  leave(): Promise<void> {
    return this.end('leave');
  }

  private async end(line: string): Promise<void> {
    this.child.stdin.end(`${line}\n`);
    const code = await this.exited;
    if (code !== 0) throw new Error(`tcp-exchange exited ${code}: ${this.out.slice(-500)}`);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}
