/**
 * `periscope trace <kind>`: the live events of a running agent, as they happen. Each collector declares
 * its kinds (exec, oom, tcp, dns, drop), the event types each shows and their columns. It reads the
 * agent's server-sent event stream (/api/v1/events/stream) with the filters passed through, so the
 * agent does the filtering and only matching events cross the network, and prints either a table (a
 * header, then one row per event in fixed-width columns: a stream cannot know how wide the rows to come
 * will be) or JSON lines (each event exactly as the agent sent it). What each kind shows is data
 * (src/wire/table.ts columns) over a few shared cell formats. With --hub it reads the hub instead,
 * which serves the same routes and stream over the events of every node; messages then name the hub.
 *
 * Failures are one line and a fix: the agent cannot be reached, wants a token, serves no more streams,
 * does not serve the kind, or ends the stream (with the --since-seq that resumes it). --count and
 * --timeout end it with 0; Ctrl-C ends it as the signal does; a closed pipe (`| head`) ends it with 0.
 */
import { type IncomingMessage } from 'node:http';
import { PeriscopeError } from '../kernel/errors.js';
import { MAX_ERROR_BODY, TARGET_FLAGS, errorBody, get, readBody, target, unauthorized, type Target } from './remote.js';
import { bad, intFlag, parseFlags, secondsFlag, type FlagSpec } from './flags.js';
import { TRACE_KINDS, type TraceKind as Kind } from '../collectors/registry.js';
import { type Column, type Format } from '../wire/table.js';

const CMD = 'trace';

// ---------------------------------------------------------------------------------------------------
// What each kind shows

/** What `periscope trace <kind>` streams: each collector declares its kinds and their columns
 * (src/wire/table.ts), and which of its event types each kind shows. */
export const KINDS: Readonly<Record<string, Kind>> = Object.fromEntries(TRACE_KINDS.map((k) => [k.name, k]));

export const KIND_NAMES = Object.keys(KINDS);

// ---------------------------------------------------------------------------------------------------
// Cells

type Event = Record<string, unknown>;

const absent = (v: unknown): boolean => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);

const text = (v: unknown): string => (typeof v === 'string' ? v : (JSON.stringify(v) ?? ''));

const pad2 = (n: number, w = 2): string => String(n).padStart(w, '0');

/** A duration in seconds, short: 250us, 1.25ms, 12.5ms, 250ms, 1.52s, 2m05s, 3h07m. */
export function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return String(s);
  const dec = (v: number, unit: string): string => `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)}${unit}`;
  if (s < 1e-3) return `${Math.round(s * 1e6)}us`;
  if (s < 1) return dec(s * 1e3, 'ms').replace(/^1000ms$/, '1.00s');
  if (s < 60) return dec(s, 's').replace(/^60\.0s$/, '1m00s');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad2(Math.floor(s % 60))}s`;
  return `${Math.floor(s / 3600)}h${pad2(Math.floor((s % 3600) / 60))}m`;
}

/** A byte count, short and binary: 512, 9.5Ki, 512Ki, 1023Mi. */
export function bytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return String(n);
  const units = ['Ki', 'Mi', 'Gi', 'Ti', 'Pi'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.floor(v)}${units[i]}`;
}

const FORMATS: Record<Format, (e: Event, fields: readonly string[]) => string | undefined> = {
  text: (e, [f]) => (absent(e[f!]) ? undefined : text(e[f!])),
  time: (e, [f]) => {
    if (absent(e[f!])) return undefined;
    const d = new Date(text(e[f!]));
    if (Number.isNaN(d.getTime())) return text(e[f!]);
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${pad2(d.getMilliseconds(), 3)}`;
  },
  pod: (e, [ns, pod]) => (absent(e[pod!]) ? undefined : absent(e[ns!]) ? text(e[pod!]) : `${text(e[ns!])}/${text(e[pod!])}`),
  endpoint: (e, [addr, port]) => {
    if (absent(e[addr!])) return undefined;
    const a = text(e[addr!]);
    if (absent(e[port!])) return a;
    return `${a.includes(':') ? `[${a}]` : a}:${text(e[port!])}`;
  },
  bytes: (e, [f]) => (typeof e[f!] === 'number' ? bytes(e[f!] as number) : FORMATS.text(e, [f!])),
  ms: (e, [f]) => (typeof e[f!] === 'number' ? duration((e[f!] as number) / 1e3) : FORMATS.text(e, [f!])),
  us: (e, [f]) => (typeof e[f!] === 'number' ? duration((e[f!] as number) / 1e6) : FORMATS.text(e, [f!])),
  list: (e, [f]) => (Array.isArray(e[f!]) ? (absent(e[f!]) ? undefined : (e[f!] as unknown[]).map(text).join(',')) : FORMATS.text(e, [f!])),
  argv: (e, [f]) => (Array.isArray(e[f!]) ? (absent(e[f!]) ? undefined : (e[f!] as unknown[]).map(text).join(' ')) : FORMATS.text(e, [f!])),
  flag: (e, [f]) => (e[f!] === true ? f : undefined),
};

/** Control characters (a process names itself; an escape sequence must not reach the terminal) as '?'. */
export const clean = (s: string): string => s.replace(/\p{Cc}/gu, '?');

/** How a column lays out (what fit and line read of it). */
export type Layout = Pick<Column, 'width' | 'right' | 'keepEnd'>;

function fit(value: string, col: Layout, last: boolean): string {
  let chars = [...value];
  if (chars.length > col.width) chars = col.keepEnd ? ['…', ...chars.slice(chars.length - col.width + 1)] : [...chars.slice(0, col.width - 1), '…'];
  const s = chars.join('');
  if (last) return s;
  const padding = ' '.repeat(col.width - chars.length);
  return col.right ? padding + s : s + padding;
}

/** Cells in fixed-width columns two spaces apart, each cut or padded to its width (the last not padded). */
export function line(cells: string[], columns: readonly Layout[]): string {
  return cells.map((c, i) => fit(c, columns[i]!, i === cells.length - 1)).join('  ').trimEnd();
}

/** The header row of a kind's table. */
export const headerRow = (kind: Kind): string => line(kind.columns.map((c) => c.header), kind.columns);

/** One event as a row of its kind's table: absent fields as '-'. */
export function tableRow(kind: Kind, e: Event): string {
  const cells = kind.columns.map((col) => {
    for (const [format, ...fields] of col.show) {
      const v = FORMATS[format](e, fields);
      if (v !== undefined) return clean(v);
    }
    return '-';
  });
  return line(cells, kind.columns);
}

// ---------------------------------------------------------------------------------------------------
// Server-sent events

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/** Longest line accepted: an event is one line of JSON, far below this. */
const MAX_LINE = 16 << 20;

/** Parses a text/event-stream as it arrives, chunk by chunk (the subset the agent speaks: \n or \r\n lines). */
export class SseParser {
  private buf = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  constructor(private readonly onMessage: (m: SseMessage) => void) {}

  feed(chunk: string): void {
    this.buf += chunk;
    let start = 0;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n', start)) {
      const end = nl > start && this.buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      const text = this.buf.slice(start, end);
      start = nl + 1;
      this.line(text);
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length > MAX_LINE) throw new Error(`a line of the stream is longer than ${MAX_LINE} bytes`);
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.onMessage({ id: this.id, event: this.event || 'message', data: this.data.join('\n') });
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}

// ---------------------------------------------------------------------------------------------------
// The agent or hub

/** How long the agent or hub may stay silent on a stream (it sends a keep-alive every 15 s). */
const SILENCE_MS = 45_000;

/** "point --agent at a periscope agent (the URL its banner prints)", or the same of a hub. */
const pointAtOne = (t: Target): string => `point --${t.role} at a periscope ${t.role} (the URL its banner prints)`;

/** What a non-200 answer means, said as the one line and fix of this command. */
function refusal(status: number, headers: IncomingMessage['headers'], body: string, t: Target, kind: string): PeriscopeError {
  const { error, hint } = errorBody(body);
  const at = `the ${t.role} at ${t.base}`;
  const said = error ? `: ${error}` : '';
  switch (status) {
    case 401:
      return unauthorized(t, said);
    case 503: {
      const after = headers['retry-after'];
      return new PeriscopeError('AGENT_REFUSED', `${at} serves no more live streams (503)${said}`, `retry later${after ? ` (in ${after} s or more)` : ''}, or raise the ${t.role}'s --max-stream-clients`);
    }
    case 429:
      return new PeriscopeError('AGENT_REFUSED', `${at} refused the connection (429)${said}`, `retry later: this address holds too many connections to the ${t.role}`);
    case 404:
      return new PeriscopeError('AGENT_REFUSED', `${at} has no event stream (404)${said}`, pointAtOne(t));
    case 400:
      if (/unknown event type/.test(error)) {
        return new PeriscopeError(
          'AGENT_REFUSED',
          `${at} does not serve ${kind} events (${KINDS[kind]!.types.join(', ')})${said}`,
          t.role === 'agent'
            ? "the collector that makes them is not running there: see the agent's /api/v1/status and --collectors, and `periscope doctor` on its node"
            : "no agent sends them: see the hub's /api/v1/nodes for the collectors each node runs",
        );
      }
      return new PeriscopeError('AGENT_REFUSED', `${at} refused the request (400)${said}`, hint || `see \`periscope ${CMD} --help\``);
    default:
      return new PeriscopeError('AGENT_REFUSED', `${at} answered ${status}${said}`, hint || `see the ${t.role} log`);
  }
}

/** The answer's status, mapped to this command's errors when it is not 200. */
async function expectOk(res: IncomingMessage, t: Target, kind: string): Promise<void> {
  if (res.statusCode === 200) return;
  const body = await readBody(res, MAX_ERROR_BODY).catch(() => '');
  throw refusal(res.statusCode ?? 0, res.headers, body, t, kind);
}

// ---------------------------------------------------------------------------------------------------
// The command

export const TRACE_USAGE = `usage: periscope trace ${KIND_NAMES.join('|')} [flags]

Streams live events from a running agent (or the hub: every node's), one line each, until stopped (Ctrl-C), --count events
have come or --timeout seconds have passed:
${KIND_NAMES.map((k) => `  ${k.padEnd(6)}${KINDS[k]!.help} (${KINDS[k]!.types.join(', ')})`).join('\n')}

  --agent URL               the agent (default $PERISCOPE_AGENT, else http://127.0.0.1:9464)
  --hub URL                 the hub instead: events of every node (default $PERISCOPE_HUB)
  --token-file FILE         its bearer token (default $PERISCOPE_TOKEN_FILE)
  --ca-file FILE            trust this PEM CA for an https:// agent or hub (default $PERISCOPE_CA_FILE)
filters (exact matches, done by the agent or hub):
  --namespace NS            events of pods in this namespace
  --pod NAME                events of this pod
  --container NAME          events of this container
  --workload NAME           events of this workload (Deployment, StatefulSet, DaemonSet, ...)
  --cgroup PATH             events of cgroups under this path (prefix), e.g. /system.slice
output:
  -o, --output table|json   a table (default), or JSON lines: each event as the agent sends it
  --count N                 exit after N events
  --timeout SECONDS         exit (with 0) after this long
  --since-seq N             first replay the events kept after seq N (at most 1000), then go live;
                            the seq of each event is in its JSON, and a stream that ends says its own
  --last N                  first replay the N newest events kept (at most 1000), then go live
`;

const FLAGS = {
  ...TARGET_FLAGS,
  namespace: { type: 'string' },
  pod: { type: 'string' },
  container: { type: 'string' },
  workload: { type: 'string' },
  cgroup: { type: 'string' },
  output: { type: 'string', short: 'o' },
  count: { type: 'string' },
  timeout: { type: 'string' },
  'since-seq': { type: 'string' },
  last: { type: 'string' },
} as const satisfies FlagSpec;

/** Most events the agent's stream replays (api.ts MAX_REPLAY). */
const MAX_REPLAY = 1000;

const FILTERS = ['namespace', 'pod', 'container', 'workload', 'cgroup'] as const;

/** The kind (the one word that is no flag nor a flag's value) and the flags around it. */
export function splitKind(args: string[], spec: FlagSpec = FLAGS): { kind: string | undefined; rest: string[] } {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return { kind: args[i + 1], rest: [...args.slice(0, i), ...args.slice(i + 2)] };
    if (!a.startsWith('-') || a === '-') return { kind: a, rest: [...args.slice(0, i), ...args.slice(i + 1)] };
    const long = /^--([^=]+)$/.exec(a)?.[1];
    const short = /^-([a-zA-Z])$/.exec(a)?.[1];
    const name = long ?? Object.keys(spec).find((k) => spec[k]!.short !== undefined && spec[k]!.short === short);
    if (name !== undefined && spec[name]?.type === 'string') i++; // its value
  }
  return { kind: undefined, rest: args };
}

/** Writes to stdout, pausing the stream while stdout is full: then the agent's bounded buffer drops (and counts) instead of this process growing. */
class Output {
  constructor(private readonly res: () => IncomingMessage | undefined) {}

  write(text: string): void {
    if (!process.stdout.write(text)) {
      const res = this.res();
      if (!res || res.isPaused()) return;
      res.pause();
      process.stdout.once('drain', () => res.resume());
    }
  }
}

export async function traceCommand(args: string[]): Promise<void> {
  const { kind: kindName, rest } = splitKind(args);
  const f = parseFlags(CMD, TRACE_USAGE, rest, FLAGS);
  if (!f) return;
  if (kindName === undefined) bad(`say what to trace: ${KIND_NAMES.join(', ')}`, CMD, `e.g. \`periscope ${CMD} exec\`; see \`periscope ${CMD} --help\``);
  const kind = Object.hasOwn(KINDS, kindName) ? KINDS[kindName] : undefined;
  if (!kind) bad(`cannot trace "${kindName}": choose one of ${KIND_NAMES.join(', ')}`, CMD);
  const output = f.output ?? 'table';
  if (output !== 'table' && output !== 'json') bad(`--output wants table or json, not "${output}"`, CMD);
  const count = f.count === undefined ? undefined : intFlag(CMD, 'count', f.count, 1);
  const timeout = f.timeout === undefined ? undefined : secondsFlag(CMD, 'timeout', f.timeout, 0.001, 365 * 86_400);
  const sinceSeq = f['since-seq'] === undefined ? undefined : intFlag(CMD, 'since-seq', f['since-seq'], 0);
  const last = f.last === undefined ? undefined : intFlag(CMD, 'last', f.last, 1, MAX_REPLAY);
  if (sinceSeq !== undefined && last !== undefined) bad('--since-seq and --last both say where to start: give one', CMD);
  const t = target(CMD, f, ['agent', 'hub']);

  const query = new URLSearchParams({ type: kind.types.join(',') });
  for (const name of FILTERS) if (f[name] !== undefined) query.set(name, f[name]);

  // `| head`: the reader went away, which is how such a pipe ends, not an error
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    process.stderr.write(`periscope: cannot write the output: ${err.message}\n`);
    process.exit(1);
  });

  let stream: IncomingMessage | undefined;
  const out = new Output(() => stream);
  let seen = 0;
  let lastSeq: number | undefined;
  /** Prints one event; true once --count events have been printed. */
  const print = (raw: string, e: Event): boolean => {
    if (typeof e.seq === 'number') lastSeq = e.seq;
    out.write(output === 'json' ? `${raw}\n` : `${tableRow(kind, e)}\n`);
    seen++;
    return count !== undefined && seen >= count;
  };

  let deadline: NodeJS.Timeout | undefined;
  let timedOut = false;
  let onDeadline: () => void = () => undefined;
  if (timeout !== undefined) {
    deadline = setTimeout(() => {
      timedOut = true;
      onDeadline();
    }, timeout * 1000);
  }
  try {
    // --last: find where the newest N kept begin, and let the stream replay them: one path for every
    // event, no gap and no repeat between the replay and what comes live
    let resume = sinceSeq;
    if (last !== undefined) {
      const q = new URLSearchParams(query);
      q.set('limit', String(last));
      const { req, response } = get(t, '/api/v1/events', q, { accept: 'application/json' });
      onDeadline = () => req.destroy();
      let body: { events: Event[]; last: number };
      try {
        const res = await response;
        await expectOk(res, t, kindName);
        body = JSON.parse(await readBody(res, 64 << 20)) as { events: Event[]; last: number };
      } catch (err) {
        if (timedOut) return;
        throw err;
      }
      const first = body.events[0]?.seq;
      resume = typeof first === 'number' ? first - 1 : body.last;
    }
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const { req, response } = get(t, '/api/v1/events/stream', query, { accept: 'text/event-stream', ...(resume !== undefined ? { 'last-event-id': String(resume) } : {}) });
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        req.destroy();
        if (err === undefined) resolve();
        else reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
      };
      onDeadline = () => {
        if (stream) finish();
        else finish(new PeriscopeError('AGENT_UNREACHABLE', `the ${t.role} at ${t.base} did not answer within --timeout ${timeout} s`, `check that --${t.role} points at a running ${t.role}, or give a longer --timeout`));
      };
      if (timedOut) onDeadline();
      const ended = (why: string): void => {
        if (done) return;
        const again = lastSeq !== undefined ? `run it again with --since-seq ${lastSeq} to go on after the last event shown` : 'run it again';
        finish(
          new PeriscopeError(
            'AGENT_STREAM_ENDED',
            `the ${t.role} at ${t.base} ${why}${seen ? ` after ${seen} event${seen === 1 ? '' : 's'}` : ''}`,
            `the ${t.role} stopped or restarted, or dropped this client for not keeping up: ${again}`,
          ),
        );
      };
      response.then(
        async (res) => {
          await expectOk(res, t, kindName);
          const type = String(res.headers['content-type'] ?? '');
          if (!type.startsWith('text/event-stream')) {
            throw new PeriscopeError('AGENT_REFUSED', `the ${t.role} at ${t.base} answered with ${type || 'no content type'}, not an event stream`, pointAtOne(t));
          }
          stream = res;
          req.setTimeout(SILENCE_MS, () => ended(`sent nothing for ${SILENCE_MS / 1000} s, not even a keep-alive`));
          if (output === 'table') out.write(`${headerRow(kind)}\n`);
          const parser = new SseParser((m) => {
            if (done) return;
            let e: Event;
            try {
              e = JSON.parse(m.data) as Event;
            } catch {
              finish(new PeriscopeError('AGENT_REFUSED', `the ${t.role} at ${t.base} sent an event that is not JSON: ${m.data.slice(0, 80)}`, pointAtOne(t)));
              return;
            }
            if (print(m.data, e)) finish();
          });
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            try {
              parser.feed(chunk);
            } catch (err) {
              finish(err);
            }
          });
          res.on('end', () => ended('ended the stream'));
          res.on('close', () => ended('ended the stream'));
          res.on('error', (err: NodeJS.ErrnoException) => ended(`ended the stream (${err.code ?? err.message})`));
        },
      ).catch(finish);
    });
  } finally {
    clearTimeout(deadline);
  }
}
