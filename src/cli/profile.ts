/**
 * `periscope profile`: the stacks of a selection of tasks (a pod, a workload, a namespace or a cgroup
 * subtree) as folded text, pprof or JSON, from GET /api/v1/profiles (src/profiles/query.ts).
 *
 * From an agent it profiles the NEXT --seconds: the agent drains its kernel maps on every profile
 * query, so a first small query closes its current window; the command then waits and asks for what
 * was counted from that moment to now. From the hub it answers at once with the LAST --seconds, which
 * the hub holds (agents ship with a delay, so its newest seconds may still be missing).
 *
 * It does not draw flame graphs or symbolize: the agent does that, and folded text or pprof go to the
 * tools that draw. Failures are one line and a fix, as for the other remote commands (remote.ts).
 */
import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { type IncomingMessage } from 'node:http';
import { PeriscopeError } from '../kernel/errors.js';
import { PROFILE_TYPES, isProfileType, parseFolded, type ProfileType } from '../profiles/model.js';
import { fromPprof } from '../profiles/pprof.js';
import { DEFAULT_PROFILE_LIMIT, MAX_PROFILE_LIMIT, PROFILE_FORMATS, type ProfileFormat } from '../profiles/query.js';
import { bad, intFlag, parseFlags, type FlagSpec } from './flags.js';
import { MAX_ERROR_BODY, TARGET_FLAGS, errorBody, get, pointAt, readBody, target, unauthorized, type Target } from './remote.js';

const CMD = 'profile';

/** Default window: the next 10 s of an agent; the last minute of the hub, whose newest seconds may not have been shipped yet. */
const DEFAULT_SECONDS = { agent: 10, hub: 60 } as const;
const MAX_SECONDS = 3600;

export const PROFILE_USAGE = `usage: periscope profile (--pod P | --workload W | --namespace NS | --cgroup PATH) [flags]

The stacks of the selected tasks: where they run on a CPU (cpu), where they block (offcpu), or where
they then wait on a run queue for a CPU (runq). From an agent (the default) it profiles the NEXT
--seconds: it marks the start, waits (printing nothing), then fetches what was counted since. From the
hub (--hub) it answers at once with the LAST --seconds the hub holds: agents ship every --hub-interval
(10 s), so the newest seconds may not be there yet.

selection (at least one of the first four; they combine):
  --pod NAME|NS/NAME        the tasks of this pod
  --workload NAME|NS/NAME   the pods of this workload (Deployment, StatefulSet, DaemonSet, ...)
  --namespace NS            the pods of this namespace
  --cgroup PATH             the tasks of cgroups under this path, e.g. /system.slice/nginx.service
  --container NAME          only this container of the selected pods
  --node NAME               only this node (useful with --hub)
profile:
  --type cpu|offcpu|runq    on-CPU samples (default), time blocked, or time waiting for a CPU
  --seconds N               how long, 1 to ${MAX_SECONDS}: the next N s of an agent (default ${DEFAULT_SECONDS.agent}),
                            the last N s of the hub (default ${DEFAULT_SECONDS.hub})
  --limit N                 the N largest stacks (default ${DEFAULT_PROFILE_LIMIT}, at most ${MAX_PROFILE_LIMIT})
output:
  --output folded|pprof|json
                            folded stacks, one "frame;frame;leaf value" line each, as flame-graph
                            tools read them (default); gzip'd pprof protobuf (go tool pprof,
                            Pyroscope); or the API's JSON
  -o, --output-file FILE    write to FILE instead of stdout (pprof, being binary, is not written to a
                            terminal); a FILE ending in .pb.gz or .pprof means --output pprof, .json json
connection:
  --agent URL               the agent (default $PERISCOPE_AGENT, else http://127.0.0.1:9464)
  --hub URL                 the hub instead (default $PERISCOPE_HUB)
  --token-file FILE         its bearer token (default $PERISCOPE_TOKEN_FILE)
  --ca-file FILE            trust this PEM CA for an https:// agent or hub (default $PERISCOPE_CA_FILE)

examples:
  periscope profile --pod shop/checkout-7d9c5 --seconds 30 > checkout.folded
  periscope profile --workload shop/checkout --type offcpu -o offcpu.pb.gz && go tool pprof -top offcpu.pb.gz
  periscope profile --hub https://hub:9465 --namespace shop --seconds 300 --output json
`;

const FLAGS = {
  ...TARGET_FLAGS,
  pod: { type: 'string' },
  workload: { type: 'string' },
  namespace: { type: 'string' },
  cgroup: { type: 'string' },
  container: { type: 'string' },
  node: { type: 'string' },
  type: { type: 'string' },
  seconds: { type: 'string' },
  limit: { type: 'string' },
  output: { type: 'string' },
  'output-file': { type: 'string', short: 'o' },
} as const satisfies FlagSpec;

/** The flags that select tasks on their own; --container and --node only narrow a selection. */
const SELECTORS = ['pod', 'workload', 'namespace', 'cgroup'] as const;
/** Every flag passed through as the query parameter of the same name. */
const FILTERS = [...SELECTORS, 'container', 'node'] as const;

/** What each output is, as the API answers it. */
const CONTENT_TYPES: Record<ProfileFormat, string> = { json: 'application/json', folded: 'text/plain', pprof: 'application/octet-stream' };

/** Largest answer read: 100,000 stacks of deep frames as JSON. */
const MAX_BODY = 512 << 20;

/** The --output a file's name implies, if any. */
function formatOfFile(file: string): ProfileFormat | undefined {
  if (/\.(pb\.gz|pprof)$/i.test(file)) return 'pprof';
  if (/\.json$/i.test(file)) return 'json';
  return undefined;
}

/** The whole body as bytes, rejecting past `limit`. */
function readBytes(res: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (d: Buffer) => {
      size += d.length;
      if (size > limit) {
        res.destroy();
        reject(new Error(`the answer is longer than ${limit} bytes`));
        return;
      }
      chunks.push(d);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the answer was cut short')));
  });
}

/** A body that is not what a periscope agent or hub sends. */
const notOurs = (t: Target, why: string): PeriscopeError =>
  new PeriscopeError('AGENT_REFUSED', `the ${t.role} at ${t.base} answered /api/v1/profiles with ${why}`, `point ${pointAt(t.role)} at a periscope ${t.role} (the URL its banner prints)`);

/** What a non-200 answer means, said as one line and a fix: the server's own error and hint where it gave them. */
async function expectOk(res: IncomingMessage, t: Target): Promise<void> {
  if (res.statusCode === 200) return;
  const { error, hint } = errorBody(await readBody(res, MAX_ERROR_BODY).catch(() => ''));
  const at = `the ${t.role} at ${t.base}`;
  const said = error ? `: ${error}` : '';
  const status = res.statusCode ?? 0;
  if (status === 401) throw unauthorized(t, said);
  if (status === 404) {
    throw new PeriscopeError('AGENT_REFUSED', `${at} has no profiles API (404)${said}`, hint || `point ${pointAt(t.role)} at a periscope ${t.role} that profiles (one that serves /api/v1/profiles)`);
  }
  if (status === 400) throw new PeriscopeError('AGENT_REFUSED', `${at} refused the request (400)${said}`, hint || `see \`periscope ${CMD} --help\``);
  throw new PeriscopeError('AGENT_REFUSED', `${at} answered ${status}${said}`, hint || `see the ${t.role} log`);
}

/** One GET /api/v1/profiles: the body, once it is 200 and of the asked format. */
async function fetchProfile(t: Target, query: URLSearchParams, format: ProfileFormat): Promise<Buffer> {
  const { response } = get(t, '/api/v1/profiles', query, { accept: CONTENT_TYPES[format] });
  const res = await response;
  await expectOk(res, t);
  const type = String(res.headers['content-type'] ?? '');
  if (!type.startsWith(CONTENT_TYPES[format])) throw notOurs(t, `${type || 'no content type'}, not ${CONTENT_TYPES[format]}`);
  try {
    return await readBytes(res, MAX_BODY);
  } catch (err) {
    throw new PeriscopeError('AGENT_REFUSED', `the ${t.role} at ${t.base} sent a profile that could not be read: ${(err as Error).message}`, `check that ${pointAt(t.role)} points at a periscope ${t.role}, and retry`);
  }
}

/** How many stacks a body holds, reading it as its format says (which also checks that it is one). */
function countStacks(t: Target, body: Buffer, format: ProfileFormat): number {
  try {
    if (format === 'pprof') return fromPprof(body).stacks.length;
    if (format === 'folded') return parseFolded(body.toString('utf8')).length;
    const parsed = JSON.parse(body.toString('utf8')) as { stacks?: unknown } | null;
    if (!Array.isArray(parsed?.stacks)) throw new Error('it has no "stacks" array');
    return parsed.stacks.length;
  } catch (err) {
    throw notOurs(t, `a body that is not ${format}: ${(err as Error).message.split('\n')[0]!.slice(0, 160)}`);
  }
}

/** What a stack of each type counts, for the message of an empty profile. */
const DOING: Record<ProfileType, string> = { cpu: 'on a CPU', offcpu: 'blocked', runq: 'waiting for a CPU' };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** "pod shop/web-1, container app": the selection, for the line on stderr. */
const describe = (q: URLSearchParams): string =>
  FILTERS.filter((k) => q.has(k))
    .map((k) => `${k} ${q.get(k)!}`)
    .join(', ');

/** A file the output can be written to, checked before profiling so that a long wait does not end in an error. */
function checkWritable(file: string): void {
  const path = resolve(file);
  let isDir = false;
  try {
    isDir = statSync(path).isDirectory();
  } catch {
    // not there yet: its directory must take it
  }
  if (isDir) bad(`-o ${file} is a directory`, CMD, 'give a file name, e.g. -o cpu.pb.gz');
  try {
    accessSync(dirname(path), constants.W_OK);
  } catch (err) {
    bad(`-o ${file}: cannot write in ${dirname(path)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, CMD, 'give a file in a directory that exists and that you can write');
  }
}

export async function profileCommand(args: string[]): Promise<void> {
  const f = parseFlags(CMD, PROFILE_USAGE, args, FLAGS);
  if (!f) return;
  const type = f.type ?? PROFILE_TYPES[0];
  if (!isProfileType(type)) bad(`--type wants ${PROFILE_TYPES.join(', ')}, not "${type}"`, CMD);
  const file = f['output-file'];
  if (file !== undefined && file.trim() === '') bad('-o wants a file name', CMD);
  const output = f.output ?? (file !== undefined ? formatOfFile(file) : undefined) ?? 'folded';
  if (!(PROFILE_FORMATS as readonly string[]).includes(output)) bad(`--output wants folded, pprof or json, not "${output}"`, CMD);
  const format = output as ProfileFormat;
  const limit = f.limit === undefined ? undefined : intFlag(CMD, 'limit', f.limit, 1, MAX_PROFILE_LIMIT);

  const selection = new URLSearchParams();
  for (const k of FILTERS) {
    const v = f[k];
    if (v === undefined) continue;
    if (v.trim() === '') bad(`--${k} wants a value`, CMD);
    selection.set(k, v);
  }
  if (!SELECTORS.some((k) => selection.has(k))) {
    bad('say what to profile: give --pod, --workload, --namespace or --cgroup', CMD, `e.g. \`periscope ${CMD} --pod NS/NAME\`; see \`periscope ${CMD} --help\``);
  }
  if (format === 'pprof' && file === undefined && process.stdout.isTTY === true) {
    bad('pprof is binary and stdout is a terminal', CMD, `write it to a file with -o, e.g. -o ${type}.pb.gz (or pipe it)`);
  }
  const t = target(CMD, f, ['agent', 'hub']);
  const seconds = f.seconds === undefined ? DEFAULT_SECONDS[t.role] : intFlag(CMD, 'seconds', f.seconds, 1, MAX_SECONDS);
  if (file !== undefined) checkWritable(file);

  const query = new URLSearchParams({ type, ...Object.fromEntries(selection) });
  if (limit !== undefined) query.set('limit', String(limit));
  const what = `${type} profile of ${describe(selection)}`;
  let body: Buffer;
  if (t.role === 'agent') {
    // the agent drains its kernel maps on every profile query: this one closes its current window, so
    // what the last query counts begins here
    const prime = new URLSearchParams(query);
    prime.set('from', '-1s');
    prime.set('format', 'json');
    prime.set('limit', '1');
    await fetchProfile(t, prime, 'json');
    const from = Date.now();
    process.stderr.write(`periscope ${CMD}: ${what} on the agent at ${t.base} for ${seconds} s ...\n`);
    await sleep(seconds * 1000 - (Date.now() - from));
    const q = new URLSearchParams(query);
    q.set('from', new Date(from).toISOString());
    q.set('to', new Date().toISOString());
    q.set('format', format);
    body = await fetchProfile(t, q, format);
  } else {
    const q = new URLSearchParams(query);
    q.set('from', `-${seconds}s`);
    q.set('to', 'now');
    q.set('format', format);
    body = await fetchProfile(t, q, format);
  }

  const stacks = countStacks(t, body, format);
  if (stacks === 0) {
    process.stderr.write(
      `periscope ${CMD}: no stacks: nothing of ${describe(selection)} was ${DOING[type]} in the ${t.role === 'agent' ? `${seconds} s profiled` : `last ${seconds} s the hub holds`} (check the selection, and that the profiler collector runs)\n`,
    );
  }
  if (file !== undefined) {
    try {
      writeFileSync(file, body);
    } catch (err) {
      throw new PeriscopeError('BAD_ARGUMENT', `cannot write -o ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'give a file in a directory that exists and that you can write');
    }
    process.stderr.write(`periscope ${CMD}: wrote ${stacks} stack${stacks === 1 ? '' : 's'} (${format}, ${body.length} bytes) to ${file}\n`);
    return;
  }
  // `| head`: the reader went away, which is how such a pipe ends, not an error
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    process.stderr.write(`periscope: cannot write the output: ${err.message}\n`);
    process.exit(1);
  });
  process.stdout.write(body);
}
