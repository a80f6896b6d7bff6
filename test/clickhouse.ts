/**
 * A real clickhouse-server for the store's tests and benchmarks: a plain child process with a
 * temporary directory of its own (config.xml, users.xml, data, logs), listening on free ports of
 * 127.0.0.1 only. start() waits until GET /ping answers; stop() kills it and removes the directory;
 * restart() stops and starts the same server on the same data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './servers.js';

export const CLICKHOUSE_SERVER = process.env.CLICKHOUSE_SERVER ?? '/usr/sbin/clickhouse-server';

const USERS = `<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`;

function config(dir: string, httpPort: number, tcpPort: number): string {
  return `<yandex>
  <logger><level>information</level><log>${dir}/log/server.log</log><errorlog>${dir}/log/error.log</errorlog><console>0</console></logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
</yandex>
`;
}

export class ClickHouseServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly httpPort: number,
  ) {}

  /** the server's process id (while it runs) */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** http://127.0.0.1:PORT */
  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  static async start(timeoutMs = 30_000): Promise<ClickHouseServer> {
    if (!existsSync(CLICKHOUSE_SERVER)) throw new Error(`${CLICKHOUSE_SERVER} is not installed (scripts/install-deps.sh installs it)`);
    const dir = mkdtempSync(join(tmpdir(), 'periscope-clickhouse-'));
    for (const d of ['log', 'data', 'tmp', 'user_files', 'format_schemas']) mkdirSync(join(dir, d));
    const [httpPort, tcpPort] = [await freePort(), await freePort()];
    writeFileSync(join(dir, 'users.xml'), USERS);
    writeFileSync(join(dir, 'config.xml'), config(dir, httpPort, tcpPort));
    const server = new ClickHouseServer(dir, httpPort);
    try {
      await server.launch(timeoutMs);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  private async launch(timeoutMs: number): Promise<void> {
    const child = spawn(CLICKHOUSE_SERVER, [`--config-file=${join(this.dir, 'config.xml')}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
    this.child = child;
    let gone = false;
    this.exited = new Promise((resolve) => child.once('exit', () => ((gone = true), resolve())));
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (gone) throw new Error(`clickhouse-server exited at start: ${stderr.trim() || this.errorLog()}`);
      try {
        if ((await fetch(`${this.url}/ping`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`clickhouse-server did not answer /ping in ${timeoutMs} ms: ${this.errorLog()}`);
  }

  private errorLog(): string {
    try {
      return readFileSync(join(this.dir, 'log', 'error.log'), 'utf8').split('\n').slice(-10).join('\n');
    } catch {
      return '(no error log)';
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after 15 s) and keeps its data. */
  async halt(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** The same server again, on the same data and ports. */
  async restart(timeoutMs = 30_000): Promise<void> {
    await this.halt();
    await this.launch(timeoutMs);
  }

  async stop(): Promise<void> {
    await this.halt();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
