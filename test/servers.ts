/**
 * Real servers from Debian for the L7 tests, each a child process with a temporary directory of its
 * own, on a free port of 127.0.0.1, run as the user its package runs it as, stopped (and its directory
 * removed) when the test ends. Every number a test compares is the server's own: Redis's INFO
 * commandstats, PostgreSQL's statement log (`log_min_duration_statement = 0`), nginx's access log
 * (`$status`, `$request_time`), the gRPC client's status codes.
 *
 *   const redis = await startRedis(t);                       // redis.port, await redis.commandstats()
 *   const pg = await startPostgres(t);                       // await pg.psql('SELECT 1'), pg.statements()
 *   const web = await startNginx(t, { tls: true });          // web.certificates.caFile, await web.accessLog()
 *   const rpc = await startGrpc(t);                          // await grpcCalls(rpc, { Say: 40, Missing: 10 })
 *
 * Where a server runs: `wrap` is an argv prefix every server process is started under (`inNetns(path)`
 * for a pod's network namespace, `inCgroup(dir)` for a test cgroup, or both one after the other); it
 * must exec, so the process the fixture signals is the server. `exec` is the prefix of the fixture's
 * own commands (redis-cli, psql), by default none: for a server in a network namespace it is that
 * namespace's `inNetns`, without the workload's cgroup, so an agent does not count them for the pod.
 * Client drivers (`httpRequests`, `grpcCalls`, `pg.pgbench`, `redis.benchmark`) take their own `wrap`,
 * and a `port` to go through something else than the server (a proxy).
 *
 * nginx's routes (no file is served; the echo module sleeps and writes):
 *   /users/<digits>?delay=S&size=N   200 after S seconds, N bytes of body (default 0 s, 64 bytes; chunked)
 *   /status/<code>?delay=S           that status (200 201 400 404 500 503) after S seconds, a short body
 *   /health                          200 "ok\n" at once (`return`: Content-Length)
 * Any method; a request body is read and thrown away. Keep-alive for 10000 requests per connection.
 */
import { type TestContext } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCertificates, type TestCertificates } from './tls.js';

export const PYTHON = '/usr/bin/python3';
export const L7_KIT_PY = fileURLToPath(new URL('../../test/helpers/l7_kit.py', import.meta.url));
const PG_BIN = '/usr/lib/postgresql/15/bin';
const NGINX_ECHO = '/usr/share/nginx/modules/ngx_http_echo_module.so';

const NEEDED: [string, string][] = [
  ['/usr/bin/redis-server', 'redis-server'],
  ['/usr/bin/redis-cli', 'redis-tools'],
  ['/usr/bin/redis-benchmark', 'redis-tools'],
  [join(PG_BIN, 'postgres'), 'postgresql-15'],
  [join(PG_BIN, 'pgbench'), 'postgresql-15'],
  ['/usr/bin/psql', 'postgresql-client-15'],
  ['/usr/sbin/nginx', 'nginx-light'],
  [NGINX_ECHO, 'libnginx-mod-http-echo'],
  ['/usr/bin/openssl', 'openssl'],
  ['/usr/bin/setpriv', 'util-linux'],
  [PYTHON, 'python3'],
];

/** Why the servers cannot run here (a missing package, not root), or undefined when they can. */
export function whyServersCannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: the servers run as their own users';
  for (const [path, pkg] of NEEDED) if (!existsSync(path)) return `${path} is missing (scripts/install-deps.sh installs ${pkg})`;
  if (spawnSync(PYTHON, ['-c', 'import grpc'], { stdio: 'ignore' }).status !== 0) return `${PYTHON} cannot import grpc (scripts/install-deps.sh installs python3-grpcio)`;
  return undefined;
}

// --- where servers and clients run ---------------------------------------------------------------

/** Where a server runs. */
export interface Place {
  /** argv prefix each server process starts under; it must exec (default none) */
  wrap?: string[];
  /** argv prefix of the fixture's own commands: redis-cli, psql (default none) */
  exec?: string[];
  /** address to listen on (default 127.0.0.1) */
  host?: string;
  /** port to listen on (default a free port of this host's loopback) */
  port?: number;
}

/** The prefix that runs a command in a network namespace (a path like /var/run/netns/NAME). */
export const inNetns = (netnsPath: string): string[] => ['nsenter', `--net=${netnsPath}`, '--'];

/** The prefix that runs a command in a cgroup (its cgroup2 directory, or a TestCgroup): sh joins, then execs. */
export const inCgroup = (cgroup: string | { dir: string }): string[] => [
  '/bin/sh',
  '-c',
  'echo $$ > "$0/cgroup.procs" || exit 97; exec "$@"',
  typeof cgroup === 'string' ? cgroup : cgroup.dir,
];

/** A server's address, for clients. */
export interface Target {
  host: string;
  port: number;
}

export interface Server extends Target {
  dir: string;
  /** the server's process id (its master) */
  pid: number;
  /** stops the server (its fast shutdown, then SIGKILL after 5 s) and removes its directory; idempotent */
  stop(): Promise<void>;
}

export interface Output {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs argv (after `wrap`) with `input` on stdin; one still running after `timeoutMs` is killed. Does not throw on a failure exit. */
export function runCommand(argv: string[], opts: { wrap?: string[]; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Output> {
  const [cmd, ...args] = [...(opts.wrap ?? []), ...argv];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // a command that exits without reading its input
    child.stdin.end(opts.input ?? '');
  });
}

async function mustRun(what: string, argv: string[], opts: Parameters<typeof runCommand>[1] = {}): Promise<string> {
  const r = await runCommand(argv, opts);
  if (r.code !== 0) throw new Error(`${what} (${argv.join(' ')}) ended with ${r.code ?? r.signal}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** A port nobody listens on now on 127.0.0.1 (the kernel's choice). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** uid and gid of a system user, from /etc/passwd. */
function account(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`no user ${user} (its package creates it)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Runs as `user` (the argv that follows): setpriv execs. */
const asUser = (user: string): string[] => ['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', '--'];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Child {
  pid: number;
  exitCode(): number | null | undefined;
  exited: Promise<void>;
  stderrPath: string;
  stdoutPath: string;
}

/** Starts argv (after `wrap`) with stdout and stderr to files of `dir`. */
function startChild(name: string, dir: string, argv: string[], wrap: string[] = []): Child {
  const stdoutPath = join(dir, `${name}.out`);
  const stderrPath = join(dir, `${name}.err`);
  const out = openSync(stdoutPath, 'w');
  const err = openSync(stderrPath, 'w');
  const [cmd, ...args] = [...wrap, ...argv];
  let child;
  try {
    child = spawn(cmd!, args, { stdio: ['ignore', out, err] });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const state: { code?: number | null } = {};
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      state.code = code ?? (signal ? -1 : null);
      resolve();
    });
    child.once('error', () => {
      state.code = -1;
      resolve();
    });
  });
  if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
  return { pid: child.pid, exitCode: () => state.code, exited, stdoutPath, stderrPath };
}

const tail = (path: string): string => {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '';
  }
};

/** Waits until `ready()` or the child exits (an error with its stderr) or the time is up. */
async function untilReady(what: string, child: Child, ready: () => boolean, timeoutMs = 20_000, logPath?: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (ready()) return;
    if (child.exitCode() !== undefined) throw new Error(`${what} exited (${child.exitCode()}): ${tail(child.stderrPath)} ${logPath ? tail(logPath) : ''}`);
    if (Date.now() > end) throw new Error(`${what} not ready after ${timeoutMs} ms: ${tail(child.stderrPath)} ${logPath ? tail(logPath) : ''}`);
    await sleep(25);
  }
}

/** The stop of a server: `signal` (its fast shutdown), SIGKILL after 5 s, then its directory removed; once. */
function stopper(child: Child, dir: string, signal: NodeJS.Signals): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      if (child.exitCode() === undefined) {
        try {
          process.kill(child.pid, signal);
        } catch {
          // already gone
        }
        const timer = setTimeout(() => process.kill(child.pid, 'SIGKILL'), 5_000);
        await child.exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })());
}

interface Prepared {
  dir: string;
  host: string;
  port: number;
  wrap: string[];
  exec: string[];
}

async function prepare(name: string, place: Place, owner?: string): Promise<Prepared> {
  const dir = mkdtempSync(join(tmpdir(), `periscope-${name}-`));
  chmodSync(dir, 0o755);
  if (owner) {
    const { uid, gid } = account(owner);
    chownSync(dir, uid, gid);
  }
  return { dir, host: place.host ?? '127.0.0.1', port: place.port ?? (await freePort()), wrap: place.wrap ?? [], exec: place.exec ?? [] };
}

/** Registers the stop with the test, and stops at once if the start failed. */
async function started<T extends Server>(t: TestContext | undefined, stop: () => Promise<void>, make: () => Promise<T>): Promise<T> {
  t?.after(stop);
  try {
    return await make();
  } catch (e) {
    await stop();
    throw e;
  }
}

// --- Redis ---------------------------------------------------------------------------------------

export interface CommandStat {
  calls: number;
  usec: number;
  rejectedCalls: number;
  failedCalls: number;
}

export interface RedisServer extends Server {
  /** redis-cli against this server (or `port`), raw output; throws on a failure exit */
  cli(args: string[], opts?: { port?: number; wrap?: string[]; input?: string }): Promise<string>;
  /** INFO `section` as key → value */
  info(section?: string): Promise<Record<string, string>>;
  /** INFO commandstats by lowercase command (`set`, `config|get`) */
  commandstats(): Promise<Record<string, CommandStat>>;
  /** redis-benchmark against this server (or `port`, a proxy); its stdout */
  benchmark(args: string[], opts?: { port?: number; wrap?: string[] }): Promise<string>;
}

/** redis-server as the redis user: no persistence, no unix socket, DEBUG allowed from local clients (DEBUG SLEEP gives known latencies). */
export async function startRedis(t: TestContext | undefined, place: Place = {}): Promise<RedisServer> {
  const p = await prepare('redis', place, 'redis');
  const conf = join(p.dir, 'redis.conf');
  const log = join(p.dir, 'redis.log');
  writeFileSync(
    conf,
    [
      `bind ${p.host}`,
      `port ${p.port}`,
      'protected-mode no',
      'daemonize no',
      'save ""',
      'appendonly no',
      `dir ${p.dir}`,
      `logfile ${log}`,
      'databases 2',
      'enable-debug-command local',
      '',
    ].join('\n'),
  );
  const child = startChild('redis', p.dir, [...asUser('redis'), '/usr/bin/redis-server', conf], p.wrap);
  const stop = stopper(child, p.dir, 'SIGTERM');
  return started(t, stop, async () => {
    await untilReady('redis-server', child, () => existsSync(log) && readFileSync(log, 'utf8').includes('Ready to accept connections'), 20_000, log);
    const cli = (args: string[], opts: { port?: number; wrap?: string[]; input?: string } = {}): Promise<string> =>
      mustRun('redis-cli', ['/usr/bin/redis-cli', '-h', p.host, '-p', String(opts.port ?? p.port), ...args], { wrap: opts.wrap ?? p.exec, input: opts.input });
    const info = async (section?: string): Promise<Record<string, string>> => {
      const out = await cli(section ? ['INFO', section] : ['INFO']);
      const res: Record<string, string> = {};
      for (const line of out.split(/\r?\n/)) {
        const at = line.indexOf(':');
        if (at > 0 && !line.startsWith('#')) res[line.slice(0, at)] = line.slice(at + 1);
      }
      return res;
    };
    return {
      host: p.host,
      port: p.port,
      dir: p.dir,
      pid: child.pid,
      stop,
      cli,
      info,
      commandstats: async () => {
        const res: Record<string, CommandStat> = {};
        for (const [k, v] of Object.entries(await info('commandstats'))) {
          if (!k.startsWith('cmdstat_')) continue;
          const f = Object.fromEntries(v.split(',').map((kv) => kv.split('=') as [string, string]));
          res[k.slice('cmdstat_'.length)] = { calls: Number(f.calls ?? 0), usec: Number(f.usec ?? 0), rejectedCalls: Number(f.rejected_calls ?? 0), failedCalls: Number(f.failed_calls ?? 0) };
        }
        return res;
      },
      benchmark: (args, opts = {}) => mustRun('redis-benchmark', ['/usr/bin/redis-benchmark', '-h', p.host, '-p', String(opts.port ?? p.port), ...args], { wrap: opts.wrap ?? [], timeoutMs: 120_000 }),
    };
  });
}

// --- PostgreSQL ----------------------------------------------------------------------------------

/** One line of the statement log: a simple query (`statement`) or an extended-protocol step. */
export interface PgLogEntry {
  pid: number;
  kind: 'statement' | 'parse' | 'bind' | 'execute';
  /** the prepared statement's name for parse/bind/execute (`<unnamed>` for the unnamed one) */
  name?: string;
  ms: number;
  /** the SQL text (continuation lines joined with \n) */
  text: string;
}

export interface PgLogError {
  pid: number;
  sqlstate: string;
  message: string;
}

export interface PostgresServer extends Server {
  /** the directory of the unix socket */
  socketDir: string;
  user: string;
  database: string;
  /** psql -X -v ON_ERROR_STOP=0 over TCP to this server (or `port`); throws only when psql cannot connect */
  psql(sql: string, opts?: { port?: number; wrap?: string[]; env?: NodeJS.ProcessEnv }): Promise<Output>;
  /** pgbench (no vacuum unless asked) over TCP; its stdout; throws on a failure exit */
  pgbench(args: string[], opts?: { port?: number; wrap?: string[]; script?: string }): Promise<string>;
  /** the server's log */
  log(): string;
  /** every statement the log has a duration for, in order */
  statements(): PgLogEntry[];
  /** every ERROR the log has, with its SQLSTATE */
  errors(): PgLogError[];
}

const PG_LINE = /^\S+ \S+ \S+ \[(\d+)\] (\S*) (LOG|ERROR|FATAL|STATEMENT|DETAIL|HINT|WARNING|NOTICE|PANIC):\s+(.*)$/;
const PG_DURATION = /^duration: ([\d.]+) ms {2}(statement|parse|bind|execute) ?([^:]*?): (.*)$/s;

/** Parses a log written with log_line_prefix '%m [%p] %e ' (continuation lines start with a tab). */
export function parsePgLog(text: string): { statements: PgLogEntry[]; errors: PgLogError[] } {
  const entries: { pid: number; sqlstate: string; level: string; text: string }[] = [];
  for (const line of text.split('\n')) {
    const m = PG_LINE.exec(line);
    if (m) entries.push({ pid: Number(m[1]), sqlstate: m[2]!, level: m[3]!, text: m[4]! });
    else if (line.startsWith('\t') && entries.length > 0) entries[entries.length - 1]!.text += `\n${line.slice(1)}`;
  }
  const statements: PgLogEntry[] = [];
  const errors: PgLogError[] = [];
  for (const e of entries) {
    if (e.level === 'ERROR') errors.push({ pid: e.pid, sqlstate: e.sqlstate, message: e.text });
    if (e.level !== 'LOG') continue;
    const d = PG_DURATION.exec(e.text);
    if (!d) continue;
    const kind = d[2] as PgLogEntry['kind'];
    statements.push({ pid: e.pid, kind, ...(kind === 'statement' ? {} : { name: d[3] }), ms: Number(d[1]), text: d[4]! });
  }
  return { statements, errors };
}

/**
 * PostgreSQL 15 as the postgres user: initdb into the temporary directory (trust auth, C locale),
 * fsync off and small buffers for a fast start, listening on host:port and a unix socket in the
 * directory, every statement logged with its duration to a file.
 */
export async function startPostgres(t: TestContext | undefined, place: Place = {}): Promise<PostgresServer> {
  const p = await prepare('postgres', place, 'postgres');
  const data = join(p.dir, 'data');
  const log = join(p.dir, 'postgres.log');
  const user = 'postgres';
  const { uid, gid } = account(user);
  writeFileSync(log, '');
  chownSync(log, uid, gid);
  await mustRun('initdb', [...asUser(user), join(PG_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', user, '--locale=C', '-E', 'UTF8', '--no-sync', '--no-instructions'], { timeoutMs: 60_000 });
  const settings = {
    listen_addresses: p.host,
    port: p.port,
    unix_socket_directories: p.dir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '16MB',
    max_connections: 40,
    ssl: 'off',
    lc_messages: 'C',
    log_destination: 'stderr',
    logging_collector: 'off',
    log_min_duration_statement: 0,
    log_line_prefix: '%m [%p] %e ',
    log_min_messages: 'warning',
  };
  const args = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  // the log goes to the server's stderr: the child's stderr file is the log
  const child = startChild('postgres', p.dir, [...asUser(user), join(PG_BIN, 'postgres'), '-D', data, ...args], p.wrap);
  const stop = stopper(child, p.dir, 'SIGINT');
  return started(t, stop, async () => {
    await untilReady('postgres', child, () => readFileSync(child.stderrPath, 'utf8').includes('database system is ready to accept connections'));
    const conn = (port?: number): string[] => ['-h', p.host, '-p', String(port ?? p.port), '-U', user];
    const logText = (): string => readFileSync(child.stderrPath, 'utf8');
    return {
      host: p.host,
      port: p.port,
      dir: p.dir,
      pid: child.pid,
      stop,
      socketDir: p.dir,
      user,
      database: 'postgres',
      psql: async (sql, opts = {}) => {
        const r = await runCommand(['/usr/bin/psql', ...conn(opts.port), '-X', '-q', '-v', 'ON_ERROR_STOP=0', '-d', 'postgres', '-f', '-'], { wrap: opts.wrap ?? p.exec, input: sql, env: opts.env });
        if (r.code === 2) throw new Error(`psql could not connect: ${r.stderr.trim()}`);
        return r;
      },
      pgbench: async (argv, opts = {}) => {
        const extra: string[] = [];
        if (opts.script !== undefined) {
          const file = join(p.dir, `pgbench-${Date.now()}.sql`);
          writeFileSync(file, opts.script);
          extra.push('-f', file);
        }
        return mustRun('pgbench', [join(PG_BIN, 'pgbench'), ...conn(opts.port), ...argv, ...extra, 'postgres'], { wrap: opts.wrap ?? [], timeoutMs: 120_000 });
      },
      log: logText,
      statements: () => parsePgLog(logText()).statements,
      errors: () => parsePgLog(logText()).errors,
    };
  });
}

// --- nginx ---------------------------------------------------------------------------------------

/** One line of nginx's access log. */
export interface AccessEntry {
  method: string;
  /** the request target as sent ($request_uri) */
  target: string;
  /** the target without its query string */
  path: string;
  status: number;
  /** $request_time: first byte read to the log write, in seconds (ms resolution) */
  seconds: number;
  /** $body_bytes_sent */
  bodyBytes: number;
  /** $connection: the connection's serial number */
  connection: number;
  /** $connection_requests: the request's number on its connection */
  connectionRequests: number;
}

export interface NginxServer extends Server {
  tls: boolean;
  /** the test CA and server certificate (for localhost and 127.0.0.1), with tls */
  certificates: TestCertificates | undefined;
  url(path: string): string;
  /** the access log, parsed; nginx writes each line when its request is done */
  accessLog(): AccessEntry[];
}

const STATUSES = [200, 201, 400, 404, 500, 503];

function nginxConfig(dir: string, host: string, port: number, opts: { tls?: TestCertificates; http2?: boolean }): string {
  const listen = `${host}:${port}${opts.tls ? ' ssl' : ''}${opts.http2 ? ' http2' : ''}`;
  const tls = opts.tls ? `    ssl_certificate ${opts.tls.certFile};\n    ssl_certificate_key ${opts.tls.keyFile};\n    ssl_protocols TLSv1.2 TLSv1.3;\n` : '';
  const statuses = STATUSES.map((s) => `    location = /status/${s} { echo_status ${s}; echo_sleep $delay; echo "status ${s}"; }`).join('\n');
  return `load_module ${NGINX_ECHO};
worker_processes 1;
daemon off;
user nobody nogroup;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  log_format periscope '$request_method $request_uri $status $request_time $body_bytes_sent $connection $connection_requests';
  access_log ${dir}/access.log periscope;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_requests 10000;
  keepalive_timeout 60s;
  default_type text/plain;
  map $arg_delay $delay { "" 0; default $arg_delay; }
  map $arg_size $size { "" 64; default $arg_size; }
  server {
    listen ${listen};
${tls}    location ~ ^/users/\\d+$ { echo_sleep $delay; echo_duplicate $size "x"; }
${statuses}
    location = /health { return 200 "ok\\n"; }
  }
}
`;
}

/** nginx (master as root, worker as nobody) serving the routes above, over TLS with a test certificate when asked, HTTP/2 when asked. */
export async function startNginx(t: TestContext | undefined, opts: Place & { tls?: boolean; http2?: boolean } = {}): Promise<NginxServer> {
  const p = await prepare('nginx', opts);
  const certificates = opts.tls ? await makeCertificates() : undefined;
  mkdirSync(join(p.dir, 'tmp'));
  const nobody = account('nobody');
  chownSync(join(p.dir, 'tmp'), nobody.uid, nobody.gid);
  const conf = join(p.dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(p.dir, p.host, p.port, { tls: certificates, http2: opts.http2 }));
  const child = startChild('nginx', p.dir, ['/usr/sbin/nginx', '-p', p.dir, '-c', conf, '-e', join(p.dir, 'error.log')], p.wrap);
  const stopNginx = stopper(child, p.dir, 'SIGTERM');
  const stop = async (): Promise<void> => {
    await stopNginx();
    if (certificates) rmSync(certificates.dir, { recursive: true, force: true });
  };
  return started(t, stop, async () => {
    // nginx writes its pid file after it has opened its listening sockets
    await untilReady('nginx', child, () => existsSync(join(p.dir, 'nginx.pid')), 20_000, join(p.dir, 'error.log'));
    const scheme = opts.tls ? 'https' : 'http';
    return {
      host: p.host,
      port: p.port,
      dir: p.dir,
      pid: child.pid,
      stop,
      tls: opts.tls === true,
      certificates,
      url: (path) => `${scheme}://${p.host}:${p.port}${path}`,
      accessLog: () => parseAccessLog(existsSync(join(p.dir, 'access.log')) ? readFileSync(join(p.dir, 'access.log'), 'utf8') : ''),
    };
  });
}

export function parseAccessLog(text: string): AccessEntry[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [method, target, status, seconds, bodyBytes, connection, connectionRequests] = l.split(' ') as [string, string, string, string, string, string, string];
      const q = target.indexOf('?');
      return {
        method,
        target,
        path: q >= 0 ? target.slice(0, q) : target,
        status: Number(status),
        seconds: Number(seconds),
        bodyBytes: Number(bodyBytes),
        connection: Number(connection),
        connectionRequests: Number(connectionRequests),
      };
    });
}

export interface HttpResponse {
  method: string;
  target: string;
  status: number;
  /** as the client measured it: request written to response read */
  ms: number;
}

/**
 * Requests from Python's http.client (Debian's python3, its ssl linked to OpenSSL 3): `conns`
 * keep-alive connections take the requests in turn, each closed and opened anew after `perConn`
 * requests (0: never). `tls` needs the CA that signed the server's certificate (for `sni`, default localhost).
 */
export async function httpRequests(
  target: Target,
  requests: readonly (readonly [method: string, target: string, bodyBytes: number])[],
  opts: { conns?: number; perConn?: number; tls?: { caFile: string; sni?: string }; wrap?: string[]; timeoutMs?: number } = {},
): Promise<{ responses: HttpResponse[]; connections: number }> {
  const argv = [PYTHON, '-u', L7_KIT_PY, 'http', '--host', target.host, '--port', String(target.port), '--conns', String(opts.conns ?? 1), '--per-conn', String(opts.perConn ?? 0)];
  if (opts.tls) argv.push('--tls', '--ca', opts.tls.caFile, '--sni', opts.tls.sni ?? 'localhost');
  const out = await mustRun('the HTTP client', argv, { wrap: opts.wrap, input: requests.map((r) => JSON.stringify(r)).join('\n') + '\n', timeoutMs: opts.timeoutMs ?? 120_000 });
  const events = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string } & HttpResponse & { connections: number });
  const done = events.find((e) => e.event === 'done');
  if (!done) throw new Error(`the HTTP client did not finish: ${out}`);
  return { responses: events.filter((e) => e.event === 'response').map(({ method, target: t, status, ms }) => ({ method, target: t, status, ms })), connections: done.connections };
}

// --- gRPC ----------------------------------------------------------------------------------------

export const GRPC_SERVICE = 'periscope.test.Echo';

export interface GrpcServer extends Server {
  tls: boolean;
  certificates: TestCertificates | undefined;
}

/**
 * A gRPC server of the test's own (Python grpcio, generic handlers on raw bytes): `Say` answers OK
 * with the request's bytes, `Missing` fails with NOT_FOUND (5). Over TLS with a test certificate when asked.
 */
export async function startGrpc(t: TestContext | undefined, opts: Place & { tls?: boolean } = {}): Promise<GrpcServer> {
  const p = await prepare('grpc', opts);
  const certificates = opts.tls ? await makeCertificates() : undefined;
  const argv = [PYTHON, '-u', L7_KIT_PY, 'grpc-server', '--host', p.host, '--port', String(p.port)];
  if (certificates) argv.push('--cert', certificates.certFile, '--key', certificates.keyFile);
  const child = startChild('grpc', p.dir, argv, p.wrap);
  const stopGrpc = stopper(child, p.dir, 'SIGTERM');
  const stop = async (): Promise<void> => {
    await stopGrpc();
    if (certificates) rmSync(certificates.dir, { recursive: true, force: true });
  };
  return started(t, stop, async () => {
    await untilReady('the gRPC server', child, () => readFileSync(child.stdoutPath, 'utf8').includes('"listening"'));
    return { host: p.host, port: p.port, dir: p.dir, pid: child.pid, stop, tls: opts.tls === true, certificates };
  });
}

/**
 * Unary calls from Python's grpcio on one channel, `plan` giving the number of calls per method
 * (`{ Say: 40, Missing: 10 }`) in a seeded random order, one at a time. Returns the count per
 * "method status" as the client saw them (`{ 'Say OK': 40, 'Missing NOT_FOUND': 10 }`).
 */
export async function grpcCalls(
  target: Target,
  plan: Record<string, number>,
  opts: { seed?: number; size?: number; tls?: { caFile: string; authority?: string }; wrap?: string[]; timeoutMs?: number } = {},
): Promise<Record<string, number>> {
  const argv = [PYTHON, '-u', L7_KIT_PY, 'grpc-client', '--target', `${target.host}:${target.port}`, '--plan', Object.entries(plan).map(([m, n]) => `${m}:${n}`).join(','), '--seed', String(opts.seed ?? 1)];
  if (opts.size) argv.push('--size', String(opts.size));
  if (opts.tls) argv.push('--ca', opts.tls.caFile, '--authority', opts.tls.authority ?? 'localhost');
  const out = await mustRun('the gRPC client', argv, { wrap: opts.wrap, timeoutMs: opts.timeoutMs ?? 120_000 });
  const done = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; counts?: Record<string, number> })
    .find((e) => e.event === 'done');
  if (!done?.counts) throw new Error(`the gRPC client did not finish: ${out}`);
  return done.counts;
}
