/**
 * `periscope top`: workloads by CPU as the kernel sees them, refreshed in place: cores, run-queue
 * latency p99, OOM kills, context switches, execs, TCP connections and bytes, per workload, pod or
 * container cgroup.
 *
 * Against the hub (--hub) it asks /api/v1/workloads for the last --interval seconds. Against an agent
 * (--agent, the default) it reads /metrics every --interval seconds, takes each series' increase
 * since the previous read (a counter that went down restarted: its value is the increase) and folds
 * the increases with the hub's own function (src/hub/workloads.ts), so both show the same columns
 * computed the same way. The first table comes one interval after the start, when there are two
 * reads to compare.
 *
 * In a terminal the table is redrawn in place and fits its height; otherwise each refresh is printed
 * as a table of its own after a blank line. --output json prints one snapshot (a WorkloadsResponse)
 * and exits. Failures are one line and a fix; a closed pipe ends it with 0.
 */
import { type IncomingMessage } from 'node:http';
import { PeriscopeError } from '../kernel/errors.js';
import { bad, intFlag, parseFlags, secondsFlag, type FlagSpec } from './flags.js';
import { MAX_ERROR_BODY, TARGET_FLAGS, errorBody, get, pointAt, readBody, target, unauthorized, type Target } from './remote.js';
import { bytes, clean, duration, line, type Layout } from './trace.js';
import { RUNQ_BUCKET_METRIC, WORKLOAD_GROUP_BY, WORKLOAD_METRICS, summarizeWorkloads } from '../hub/workloads.js';
import { type AggregateRow } from '../hub/store.js';
import { WORKLOAD_GROUPS, WORKLOAD_SORT_KEYS, type WorkloadEntry, type WorkloadGroup, type WorkloadSortKey, type WorkloadsResponse } from '../wire/hub.js';

const CMD = 'top';

// ---------------------------------------------------------------------------------------------------
// The Prometheus text format, as the agent writes it (src/agent/exposition.ts)

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class ExpositionError extends Error {
  constructor(
    readonly lineNumber: number,
    message: string,
  ) {
    super(`line ${lineNumber}: ${message}`);
  }
}

export interface ExpositionLimits {
  /** most samples read */
  maxSamples: number;
  /** longest line (characters) */
  maxLine: number;
  /** most labels on one sample */
  maxLabels: number;
}

const LIMITS: ExpositionLimits = { maxSamples: 2_000_000, maxLine: 1 << 20, maxLabels: 64 };

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const NUMBER = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf)$|^NaN$/;
const TIMESTAMP = /^-?\d+$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A sample value: a decimal float, +Inf, -Inf or NaN. */
function number(raw: string, n: number): number {
  if (!NUMBER.test(raw)) throw new ExpositionError(n, `"${raw.slice(0, 40)}" is not a number`);
  if (/^[+]?[Ii]nf$/.test(raw)) return Infinity;
  if (/^-[Ii]nf$/.test(raw)) return -Infinity;
  return Number(raw);
}

/** One sample line: name, labels in braces (values quoted, with \\, \" and \n escaped), value, and maybe a timestamp. */
function sampleLine(text: string, n: number, limits: ExpositionLimits): PromSample {
  const name = METRIC_NAME.exec(text)?.[0];
  if (!name) throw new ExpositionError(n, `expected a metric name, not "${text.slice(0, 40)}"`);
  let i = name.length;
  const entries: [string, string][] = [];
  if (text[i] === '{') {
    i++;
    const seen = new Set<string>();
    while (text[i] !== '}') {
      const label = LABEL_NAME.exec(text.slice(i, i + 1024))?.[0];
      if (!label) throw new ExpositionError(n, `expected a label name at column ${i + 1}`);
      if (seen.has(label)) throw new ExpositionError(n, `label ${label} appears twice`);
      seen.add(label);
      if (seen.size > limits.maxLabels) throw new ExpositionError(n, `more than ${limits.maxLabels} labels`);
      i += label.length;
      if (text[i] !== '=' || text[i + 1] !== '"') throw new ExpositionError(n, `expected ="value" after label ${label}`);
      i += 2;
      let value = '';
      for (;;) {
        const c = text[i];
        if (c === undefined) throw new ExpositionError(n, `the value of label ${label} is not closed`);
        i++;
        if (c === '"') break;
        if (c !== '\\') {
          value += c;
          continue;
        }
        const e = text[i++];
        if (e === '\\' || e === '"') value += e;
        else if (e === 'n') value += '\n';
        else throw new ExpositionError(n, `unknown escape \\${e ?? ''} in the value of label ${label}`);
      }
      entries.push([label, value]);
      if (text[i] === ',') i++;
      else if (text[i] !== '}') throw new ExpositionError(n, `expected , or } after the value of label ${label}`);
    }
    i++;
  }
  const rest = text.slice(i);
  if (!/^[ \t]/.test(rest)) throw new ExpositionError(n, `expected a space and the value after ${name}${entries.length ? '{...}' : ''}`);
  const fields = rest.trim().split(/[ \t]+/);
  if (fields.length > 2 || fields[0] === '') throw new ExpositionError(n, 'expected a value and at most a timestamp');
  const value = number(fields[0]!, n);
  if (fields[1] !== undefined && !TIMESTAMP.test(fields[1])) throw new ExpositionError(n, `"${fields[1].slice(0, 40)}" is not a timestamp`);
  // fromEntries defines each label as an own property, "__proto__" included
  return { name, labels: Object.fromEntries(entries), value };
}

/**
 * Parses the text exposition format (0.0.4): `# HELP name text` and `# TYPE name type` lines (checked),
 * other comments, blank lines, and samples. Anything else is an ExpositionError naming the line, as is
 * text past the limits.
 */
export function parseExposition(text: string, limits: ExpositionLimits = LIMITS): PromSample[] {
  const out: PromSample[] = [];
  let n = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    n++;
    if (end - start > limits.maxLine) throw new ExpositionError(n, `longer than ${limits.maxLine} characters`);
    let l = text.slice(start, end);
    start = end + 1;
    if (l.endsWith('\r')) l = l.slice(0, -1);
    if (l.trim() === '') continue;
    if (l.startsWith('#')) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(l);
      if (!m) continue; // a comment
      if (!METRIC_NAME.test(m[2]!) || METRIC_NAME.exec(m[2]!)![0] !== m[2]) throw new ExpositionError(n, `"${m[2]!.slice(0, 40)}" is not a metric name`);
      if (m[1] === 'TYPE' && !TYPES.has((m[3] ?? '').trim())) throw new ExpositionError(n, `unknown metric type "${(m[3] ?? '').slice(0, 40)}"`);
      continue;
    }
    if (out.length >= limits.maxSamples) throw new ExpositionError(n, `more than ${limits.maxSamples} samples`);
    out.push(sampleLine(l, n, limits));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// From two reads of /metrics to the hub's rows

/** A series' identity: its name and its labels, sorted. */
export function seriesKey(s: Pick<PromSample, 'name' | 'labels'>): string {
  return [s.name, ...Object.keys(s.labels).sort().map((k) => `${k}=${s.labels[k]}`)].join('\u0000');
}

export interface Scrape {
  /** when it was read (ms since the epoch) */
  at: number;
  /** the workload metrics' samples by seriesKey */
  series: Map<string, PromSample>;
}

/** A read of /metrics, keeping the workload metrics; a series twice is an error (the agent writes each once). */
export function scrape(samples: readonly PromSample[], at: number): Scrape {
  const wanted = new Set(WORKLOAD_METRICS);
  const series = new Map<string, PromSample>();
  for (const s of samples) {
    if (!wanted.has(s.name)) continue;
    const key = seriesKey(s);
    if (series.has(key)) throw new Error(`the series ${s.name}${JSON.stringify(s.labels)} appears twice`);
    series.set(key, s);
  }
  return { at, series };
}

export interface RowFilters {
  namespace?: string | undefined;
  node?: string | undefined;
}

/**
 * What each workload series grew by from `prev` to `cur` (a counter that went down restarted: its value
 * is the increase; a series new in `cur` counts from 0, as the hub counts an instance's first sample),
 * summed by the columns the hub groups by: the rows Store.aggregate() would give over the same range.
 * Values that are not finite are skipped.
 */
export function increaseRows(prev: Scrape, cur: Scrape, filters: RowFilters = {}): AggregateRow[] {
  const rows = new Map<string, AggregateRow>();
  for (const [key, s] of cur.series) {
    if (filters.namespace !== undefined && (s.labels.namespace ?? '') !== filters.namespace) continue;
    if (filters.node !== undefined && (s.labels.node ?? '') !== filters.node) continue;
    const before = prev.series.get(key)?.value ?? 0;
    if (!Number.isFinite(s.value) || !Number.isFinite(before)) continue;
    const delta = s.value >= before ? s.value - before : s.value;
    const group = Object.fromEntries(WORKLOAD_GROUP_BY.map((c) => [c, Object.hasOwn(s.labels, c) ? s.labels[c]! : '']));
    if (s.name !== RUNQ_BUCKET_METRIC) group.le = '';
    const rowKey = [s.name, ...WORKLOAD_GROUP_BY.map((c) => group[c])].join('\u0000');
    const row = rows.get(rowKey);
    if (row) {
      row.delta += delta;
      row.series++;
    } else rows.set(rowKey, { metric: s.name, group, delta, avg: 0, last: 0, series: 1 });
  }
  return [...rows.values()];
}

// ---------------------------------------------------------------------------------------------------
// Flags

/** Short names for --sort, besides the keys themselves. */
export const SORT_ALIASES: Readonly<Record<string, WorkloadSortKey>> = {
  cpu: 'cpu_seconds',
  cores: 'cpu_seconds',
  rq: 'runqueue_latency_p99_seconds',
  runq: 'runqueue_latency_p99_seconds',
  latency: 'runqueue_latency_p99_seconds',
  p99: 'runqueue_latency_p99_seconds',
  ctx: 'context_switches',
  ctxsw: 'context_switches',
  exec: 'execs',
  exit: 'exits',
  oom: 'oom_kills',
  ooms: 'oom_kills',
  conns: 'tcp_connections',
  connections: 'tcp_connections',
  sent: 'tcp_bytes_sent',
  tx: 'tcp_bytes_sent',
  recv: 'tcp_bytes_received',
  rx: 'tcp_bytes_received',
  retrans: 'tcp_retransmits',
  retransmits: 'tcp_retransmits',
};

/** A --sort value as a sort key, or undefined. */
export function sortKey(raw: string): WorkloadSortKey | undefined {
  const s = raw.trim().toLowerCase();
  if ((WORKLOAD_SORT_KEYS as readonly string[]).includes(s)) return s as WorkloadSortKey;
  return Object.hasOwn(SORT_ALIASES, s) ? SORT_ALIASES[s] : undefined;
}

export const TOP_USAGE = `usage: periscope top [flags]

Workloads by CPU as the kernel sees them, refreshed every --interval seconds: cores, run-queue
latency p99, OOM kills, context switches, execs, TCP connections and bytes. From the hub (every
node), or from one agent's /metrics (two reads, --interval apart).

  --hub URL                 the hub (default $PERISCOPE_HUB)
  --agent URL               an agent instead (default $PERISCOPE_AGENT, else http://127.0.0.1:9464)
  --token-file FILE         the bearer token (default $PERISCOPE_TOKEN_FILE)
  --ca-file FILE            trust this PEM CA for https:// (default $PERISCOPE_CA_FILE)
  --namespace NS            only this namespace
  --node NAME               only this node
  --group workload|pod|container
                            one row per workload (default; pods without one by pod, the rest by
                            cgroup), per pod, or per container cgroup
  --sort KEY                cpu (default), rq (run-queue p99), ctx, execs, exits, oom, conns, sent,
                            recv, retrans, name, or a key of the API (${WORKLOAD_SORT_KEYS.slice(0, 2).join(', ')}, ...)
  --interval SECONDS        refresh every this long, the window rates are over (default 2)
  --limit N                 rows (default: as many as the terminal fits, else 20)
  -o, --output table|json   a table (default), or one snapshot as JSON (GET /api/v1/workloads's shape)
  --count N                 exit after N refreshes
`;

const FLAGS = {
  ...TARGET_FLAGS,
  namespace: { type: 'string' },
  node: { type: 'string' },
  group: { type: 'string' },
  sort: { type: 'string' },
  interval: { type: 'string' },
  limit: { type: 'string' },
  output: { type: 'string', short: 'o' },
  count: { type: 'string' },
} as const satisfies FlagSpec;

// ---------------------------------------------------------------------------------------------------
// Reading the hub's answer

const STRING_FIELDS = ['node', 'namespace', 'workload_kind', 'workload', 'pod', 'container', 'cgroup'] as const;
const NUMBER_FIELDS = ['cpu_seconds', 'cpu_cores', 'context_switches', 'execs', 'exits', 'oom_kills', 'tcp_connections', 'tcp_bytes_sent', 'tcp_bytes_received', 'tcp_retransmits'] as const;
const NULLABLE_FIELDS = ['runqueue_latency_p50_seconds', 'runqueue_latency_p99_seconds'] as const;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The hub's answer, checked field by field; throws naming the first field that is not as documented. */
export function checkWorkloadsResponse(body: unknown): WorkloadsResponse {
  if (!isObject(body)) throw new Error('the answer is not a JSON object');
  for (const f of ['from', 'to'] as const) if (typeof body[f] !== 'string') throw new Error(`"${f}" is not a string`);
  if (!(WORKLOAD_GROUPS as readonly unknown[]).includes(body.group)) throw new Error(`"group" is not one of ${WORKLOAD_GROUPS.join(', ')}`);
  if (!(WORKLOAD_SORT_KEYS as readonly unknown[]).includes(body.sort)) throw new Error('"sort" is not a sort key');
  if (!Array.isArray(body.workloads)) throw new Error('"workloads" is not an array');
  body.workloads.forEach((e: unknown, i) => {
    const at = `workloads[${i}]`;
    if (!isObject(e)) throw new Error(`${at} is not an object`);
    for (const f of STRING_FIELDS) if (typeof e[f] !== 'string') throw new Error(`${at}.${f} is not a string`);
    for (const f of NUMBER_FIELDS) if (typeof e[f] !== 'number' || !Number.isFinite(e[f])) throw new Error(`${at}.${f} is not a number`);
    for (const f of NULLABLE_FIELDS) if (e[f] !== null && (typeof e[f] !== 'number' || !Number.isFinite(e[f]))) throw new Error(`${at}.${f} is neither a number nor null`);
    if (!Array.isArray(e.nodes) || !e.nodes.every((n) => typeof n === 'string')) throw new Error(`${at}.nodes is not a list of strings`);
  });
  return body as unknown as WorkloadsResponse;
}

// ---------------------------------------------------------------------------------------------------
// The table

/** A rate, short: 0, 0.5, 12, 340, 1.2k, 56k, 1.2M. */
export function rate(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n === 0) return '0';
  if (n < 10) return n.toFixed(1);
  if (n < 1000) return String(Math.round(n));
  const units = ['k', 'M', 'G', 'T'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

interface TopColumn extends Layout {
  header: string;
  cell: (e: WorkloadEntry, seconds: number) => string;
}

const NAME_HEADER: Record<WorkloadGroup, string> = { workload: 'WORKLOAD', pod: 'POD', container: 'CONTAINER' };

/** What names an entry: its workload, pod or container, else its cgroup. */
function entryName(e: WorkloadEntry, group: WorkloadGroup): string {
  if (group === 'workload' && e.workload) return e.workload_kind ? `${e.workload_kind.toLowerCase()}/${e.workload}` : e.workload;
  if (group === 'container' && e.pod) return e.container ? `${e.pod}/${e.container}` : e.pod;
  if (group !== 'container' && e.pod) return e.pod;
  return e.cgroup || '-';
}

function columns(group: WorkloadGroup): TopColumn[] {
  const per = (f: (e: WorkloadEntry) => number) => (e: WorkloadEntry, s: number): string => rate(f(e) / s);
  return [
    { header: 'NAMESPACE', width: 16, cell: (e) => e.namespace || '-' },
    { header: NAME_HEADER[group], width: 40, keepEnd: true, cell: (e) => entryName(e, group) },
    { header: 'NODE', width: 16, cell: (e) => (e.nodes.length > 1 ? `${e.node}+${e.nodes.length - 1}` : e.node || '-') },
    { header: 'CPU', width: 6, right: true, cell: (e) => e.cpu_cores.toFixed(2) },
    { header: 'RQ P99', width: 7, right: true, cell: (e) => (e.runqueue_latency_p99_seconds === null ? '-' : duration(e.runqueue_latency_p99_seconds)) },
    { header: 'OOM', width: 4, right: true, cell: (e) => String(e.oom_kills) },
    { header: 'CTXSW/s', width: 7, right: true, cell: per((e) => e.context_switches) },
    { header: 'EXECS/s', width: 7, right: true, cell: per((e) => e.execs) },
    { header: 'CONNS/s', width: 7, right: true, cell: per((e) => e.tcp_connections) },
    { header: 'SENT/s', width: 7, right: true, cell: (e, s) => bytes(Math.round(e.tcp_bytes_sent / s)) },
    { header: 'RECV/s', width: 7, right: true, cell: (e, s) => bytes(Math.round(e.tcp_bytes_received / s)) },
  ];
}

const hms = (iso: string): string => (/T(\d\d:\d\d:\d\d)/.exec(iso)?.[1] ?? iso);

/** Lines the table takes besides its rows: the summary line, a blank one and the column headers. */
const TABLE_CHROME = 3;

/** A row; the last column is padded too (an empty one follows), so that it lines up on the right. */
const row = (cells: string[], cols: readonly Layout[]): string => line([...cells, ''], [...cols, { width: 0 }]);

/** The table of one snapshot: a line saying where from, over what and how sorted, then the columns. */
export function renderTable(r: WorkloadsResponse, source: string): string {
  const seconds = Math.max(1e-3, (Date.parse(r.to) - Date.parse(r.from)) / 1000) || 1;
  const cols = columns(r.group);
  const out = [
    `${source}  ${hms(r.from)}–${hms(r.to)} UTC (${seconds.toFixed(1)} s)  by ${r.group}, sorted by ${r.sort}  ${r.workloads.length} row${r.workloads.length === 1 ? '' : 's'}`,
    '',
    row(cols.map((c) => c.header), cols),
    ...r.workloads.map((e) => row(cols.map((c) => clean(c.cell(e, seconds))), cols)),
  ];
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------
// The command

interface Options {
  group: WorkloadGroup;
  sort: WorkloadSortKey;
  interval: number;
  limit: number | undefined;
  namespace: string | undefined;
  node: string | undefined;
}

/** What a non-200 answer means. */
async function expectOk(res: IncomingMessage, t: Target, what: string): Promise<void> {
  if (res.statusCode === 200) return;
  const { error, hint } = errorBody(await readBody(res, MAX_ERROR_BODY).catch(() => ''));
  const at = `the ${t.role} at ${t.base}`;
  const said = error ? `: ${error}` : '';
  const status = res.statusCode ?? 0;
  if (status === 401) throw unauthorized(t, said);
  if (status === 404) throw new PeriscopeError('AGENT_REFUSED', `${at} has no ${what} (404)${said}`, `point ${pointAt(t.role)} at a periscope ${t.role} (the URL its banner prints)`);
  if (status === 400) throw new PeriscopeError('AGENT_REFUSED', `${at} refused the request (400)${said}`, hint || `see \`periscope ${CMD} --help\``);
  throw new PeriscopeError('AGENT_REFUSED', `${at} answered ${status}${said}`, hint || `see the ${t.role} log`);
}

/** A body that is not what a periscope agent or hub sends. */
const notOurs = (t: Target, what: string, why: string): PeriscopeError =>
  new PeriscopeError('AGENT_REFUSED', `the ${t.role} at ${t.base} answered with ${what}: ${why}`, `point ${pointAt(t.role)} at a periscope ${t.role} (the URL its banner prints)`);

const MAX_BODY = 64 << 20;

async function fetchText(t: Target, path: string, query: URLSearchParams, accept: string, what: string): Promise<{ body: string; type: string }> {
  const { response } = get(t, path, query, { accept });
  const res = await response;
  await expectOk(res, t, what);
  try {
    return { body: await readBody(res, MAX_BODY), type: String(res.headers['content-type'] ?? '') };
  } catch (err) {
    throw new PeriscopeError('AGENT_REFUSED', `the ${t.role} at ${t.base} sent ${what} that could not be read: ${(err as Error).message}`, `check that ${pointAt(t.role)} points at a periscope ${t.role}, and retry`);
  }
}

/** One read of the agent's /metrics. */
async function readAgent(t: Target): Promise<Scrape> {
  // when it was asked for: both reads wait as long for their answers, the first also for a connection
  const at = Date.now();
  const { body, type } = await fetchText(t, '/metrics', new URLSearchParams(), 'text/plain', '/metrics');
  if (!type.startsWith('text/plain')) throw notOurs(t, `${type || 'no content type'} on /metrics`, 'not the Prometheus text format');
  try {
    return scrape(parseExposition(body), at);
  } catch (err) {
    throw notOurs(t, '/metrics that is not the Prometheus text format', (err as Error).message);
  }
}

/** The hub's workloads over the last interval. */
async function readHub(t: Target, o: Options, limit: number): Promise<WorkloadsResponse> {
  const query = new URLSearchParams({ from: `-${Math.ceil(o.interval)}s`, group: o.group, sort: o.sort, limit: String(limit) });
  if (o.namespace !== undefined) query.set('namespace', o.namespace);
  if (o.node !== undefined) query.set('node', o.node);
  const { body } = await fetchText(t, '/api/v1/workloads', query, 'application/json', 'workloads API');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw notOurs(t, 'something that is not JSON', body.trim().split('\n')[0]!.slice(0, 80));
  }
  try {
    return checkWorkloadsResponse(parsed);
  } catch (err) {
    throw notOurs(t, 'JSON that is not a workloads answer', (err as Error).message);
  }
}

/** The snapshot of the agent between two reads, as the hub would answer. */
export function agentSnapshot(prev: Scrape, cur: Scrape, o: Pick<Options, 'group' | 'sort' | 'namespace' | 'node'>, limit: number): WorkloadsResponse {
  const rows = increaseRows(prev, cur, { namespace: o.namespace, node: o.node });
  const ms = Math.max(1, cur.at - prev.at);
  const seconds = ms / 1000;
  return {
    from: new Date(prev.at).toISOString(),
    to: new Date(prev.at + ms).toISOString(),
    group: o.group,
    sort: o.sort,
    workloads: summarizeWorkloads(rows, { group: o.group, seconds, sort: o.sort, limit }),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

const DEFAULT_LIMIT = 20;

export async function topCommand(args: string[]): Promise<void> {
  const f = parseFlags(CMD, TOP_USAGE, args, FLAGS);
  if (!f) return;
  const output = f.output ?? 'table';
  if (output !== 'table' && output !== 'json') bad(`--output wants table or json, not "${output}"`, CMD);
  const group = (f.group ?? 'workload').trim().toLowerCase();
  if (!(WORKLOAD_GROUPS as readonly string[]).includes(group)) bad(`--group wants ${WORKLOAD_GROUPS.join(', ')}, not "${f.group}"`, CMD);
  const sort = sortKey(f.sort ?? 'cpu_seconds');
  if (sort === undefined) bad(`--sort wants one of cpu, rq, ctx, execs, exits, oom, conns, sent, recv, retrans, name (or ${WORKLOAD_SORT_KEYS.join(', ')}), not "${f.sort}"`, CMD);
  const o: Options = {
    group: group as WorkloadGroup,
    sort,
    interval: f.interval === undefined ? 2 : secondsFlag(CMD, 'interval', f.interval, 0.1, 3600),
    limit: f.limit === undefined ? undefined : intFlag(CMD, 'limit', f.limit, 1, 100_000),
    namespace: f.namespace,
    node: f.node,
  };
  const count = f.count === undefined ? undefined : intFlag(CMD, 'count', f.count, 1);
  const t = target(CMD, f, ['agent', 'hub']);
  const tty = output === 'table' && process.stdout.isTTY === true;
  /** rows to show now: --limit, else what the terminal fits */
  const limit = (): number => o.limit ?? (tty && process.stdout.rows > TABLE_CHROME + 1 ? process.stdout.rows - TABLE_CHROME - 1 : DEFAULT_LIMIT);

  // `| head`: the reader went away, which is how such a pipe ends, not an error
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    process.stderr.write(`periscope: cannot write the output: ${err.message}\n`);
    process.exit(1);
  });
  if (tty) {
    process.stdout.write('\x1b[?25l');
    const restore = (): void => void process.stdout.write('\x1b[?25h');
    process.on('exit', restore);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        restore();
        process.kill(process.pid, signal);
      });
    }
  }

  const source = `${t.role} ${t.base}`;
  let shown = 0;
  const show = (r: WorkloadsResponse): boolean => {
    if (output === 'json') {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return true;
    }
    const table = renderTable(r, source);
    process.stdout.write(tty ? `\x1b[H\x1b[2J${table}` : `${shown > 0 ? '\n' : ''}${table}`);
    shown++;
    return count !== undefined && shown >= count;
  };

  const started = Date.now();
  const intervalMs = o.interval * 1000;
  let prev = t.role === 'agent' ? await readAgent(t) : undefined;
  for (let k = t.role === 'agent' ? 1 : 0; ; k++) {
    await sleep(started + k * intervalMs - Date.now());
    let r: WorkloadsResponse;
    if (prev) {
      const cur = await readAgent(t);
      r = agentSnapshot(prev, cur, o, limit());
      prev = cur;
    } else r = await readHub(t, o, limit());
    if (show(r)) return;
  }
}
