/**
 * A fake Kubernetes API server for tests, good enough for real clients (kubectl, @kubernetes/client-node)
 * to list and watch against it: plain HTTP on 127.0.0.1, an in-memory store with one etcd-like increasing
 * resourceVersion, lists with field/label selectors and limit/continue chunking, chunked watches with
 * history replay, bookmarks and the 410 "too old resource version" error, legacy discovery, and a minimal
 * server-side Table for kubectl's human output. Tests write objects through the class API (create, update,
 * delete) and inject failures (dropWatches, expireHistory, stop/start on the same port) to prove a client
 * recovers; every request is logged so a test can count relists. It is not a real API server: there is no
 * admission, no validation beyond names and kinds, no PATCH, no OpenAPI (kubectl create needs
 * --validate=false), and any dotted field path is a valid field selector.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';

// --- objects ----------------------------------------------------------------------------------------

/** What callers hand in: any object with a kind; metadata.name (or generateName) is required. */
export interface KubeObjectInput {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
}

export interface StoredMeta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
  [key: string]: unknown;
}

/** An object as the store holds it and the server returns it (always a copy). */
export interface StoredObject {
  apiVersion: string;
  kind: string;
  metadata: StoredMeta;
  [key: string]: unknown;
}

export interface ResourceDef {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
}

const RESOURCES: readonly ResourceDef[] = [
  { group: '', version: 'v1', plural: 'pods', singular: 'pod', kind: 'Pod', namespaced: true, shortNames: ['po'], categories: ['all'] },
  { group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false, shortNames: ['ns'], categories: [] },
  { group: '', version: 'v1', plural: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no'], categories: [] },
  { group: '', version: 'v1', plural: 'services', singular: 'service', kind: 'Service', namespaced: true, shortNames: ['svc'], categories: ['all'] },
  { group: 'apps', version: 'v1', plural: 'replicasets', singular: 'replicaset', kind: 'ReplicaSet', namespaced: true, shortNames: ['rs'], categories: ['all'] },
  { group: 'apps', version: 'v1', plural: 'deployments', singular: 'deployment', kind: 'Deployment', namespaced: true, shortNames: ['deploy'], categories: ['all'] },
  { group: 'apps', version: 'v1', plural: 'statefulsets', singular: 'statefulset', kind: 'StatefulSet', namespaced: true, shortNames: ['sts'], categories: ['all'] },
  { group: 'apps', version: 'v1', plural: 'daemonsets', singular: 'daemonset', kind: 'DaemonSet', namespaced: true, shortNames: ['ds'], categories: ['all'] },
  { group: 'batch', version: 'v1', plural: 'jobs', singular: 'job', kind: 'Job', namespaced: true, shortNames: [], categories: ['all'] },
  { group: 'batch', version: 'v1', plural: 'cronjobs', singular: 'cronjob', kind: 'CronJob', namespaced: true, shortNames: ['cj'], categories: ['all'] },
  { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', namespaced: true, shortNames: [], categories: [] },
];

const VERBS = ['create', 'delete', 'get', 'list', 'update', 'watch'];
/** the API groups, as /apis lists them: every group of RESOURCES */
const GROUPS = [...new Set(RESOURCES.map((r) => r.group).filter((g) => g !== ''))];

function groupVersion(def: ResourceDef): string {
  return def.group === '' ? def.version : `${def.group}/${def.version}`;
}

function resourceByPlural(plural: string): ResourceDef {
  const def = RESOURCES.find((r) => r.plural === plural);
  if (!def) throw new Error(`fake-apiserver: unknown resource "${plural}" (known: ${RESOURCES.map((r) => r.plural).join(', ')})`);
  return def;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A deep copy with wire semantics (Dates become strings, undefined disappears). */
function jsonCopy(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v)) as unknown;
}

function copyStored(o: StoredObject): StoredObject {
  return jsonCopy(o) as StoredObject;
}

function storeKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

// --- Status errors ----------------------------------------------------------------------------------

export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string };
  code: number;
}

function statusObject(code: number, reason: string, message: string, details?: StatusObject['details']): StatusObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

/** Thrown by the class API, and turned into a Status response over HTTP. */
export class ApiError extends Error {
  constructor(readonly status: StatusObject) {
    super(status.message);
    this.name = 'ApiError';
  }
}

function badRequest(message: string): ApiError {
  return new ApiError(statusObject(400, 'BadRequest', message));
}

function notFound(def: ResourceDef, name: string): ApiError {
  const what = def.group === '' ? def.plural : `${def.plural}.${def.group}`;
  return new ApiError(statusObject(404, 'NotFound', `${what} "${name}" not found`, { name, group: def.group, kind: def.plural }));
}

// --- selectors --------------------------------------------------------------------------------------

type Matcher = (o: StoredObject) => boolean;

/** Splits on commas that are neither backslash-escaped nor inside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1]!;
      i++;
    } else if (c === '(') {
      depth++;
      cur += c;
    } else if (c === ')') {
      depth--;
      cur += c;
    } else if (c === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function unescapeField(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

function fieldValue(o: StoredObject, path: string): string {
  let cur: unknown = o;
  for (const part of path.split('.')) {
    if (!isRecord(cur)) return '';
    cur = cur[part];
  }
  return typeof cur === 'string' || typeof cur === 'number' || typeof cur === 'boolean' ? String(cur) : '';
}

/** `a=b`, `a==b`, `a!=b`, comma-separated AND; any dotted path of the object is a field. */
export function parseFieldSelector(selector: string): Matcher {
  const reqs: { field: string; negate: boolean; value: string }[] = [];
  for (const term of splitTerms(selector)) {
    let i = 0;
    let opAt = -1;
    let opLen = 0;
    let negate = false;
    while (i < term.length) {
      const c = term[i];
      if (c === '\\') {
        i += 2;
        continue;
      }
      if (c === '!' && term[i + 1] === '=') [opAt, opLen, negate] = [i, 2, true];
      else if (c === '=') [opAt, opLen] = [i, term[i + 1] === '=' ? 2 : 1];
      if (opAt >= 0) break;
      i++;
    }
    if (opAt <= 0) throw badRequest(`invalid field selector: "${term}": expected an operator (=, ==, !=)`);
    const field = term.slice(0, opAt).trim();
    const value = unescapeField(term.slice(opAt + opLen).trim());
    reqs.push({ field, negate, value });
  }
  return (o) => reqs.every((r) => (fieldValue(o, r.field) === r.value) !== r.negate);
}

const LABEL_KEY = String.raw`[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const LABEL_VALUE = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const RE_EXISTS = new RegExp(`^(${LABEL_KEY})$`);
const RE_NOT_EXISTS = new RegExp(`^!\\s*(${LABEL_KEY})$`);
const RE_EQUALITY = new RegExp(`^(${LABEL_KEY})\\s*(==|=|!=)\\s*(${LABEL_VALUE})$`);
const RE_SET = new RegExp(`^(${LABEL_KEY})\\s+(in|notin)\\s+\\(([^)]*)\\)$`);

/** Equality (`a=b`, `a==b`, `a!=b`), set (`a in (x,y)`, `a notin (x)`) and existence (`a`, `!a`), comma-separated AND. */
export function parseLabelSelector(selector: string): Matcher {
  const reqs: ((labels: Record<string, string>) => boolean)[] = [];
  for (const term of splitTerms(selector)) {
    let m: RegExpExecArray | null;
    if ((m = RE_EXISTS.exec(term))) {
      const key = m[1]!;
      reqs.push((l) => Object.hasOwn(l, key));
    } else if ((m = RE_NOT_EXISTS.exec(term))) {
      const key = m[1]!;
      reqs.push((l) => !Object.hasOwn(l, key));
    } else if ((m = RE_EQUALITY.exec(term))) {
      const [key, op, value] = [m[1]!, m[2]!, m[3]!];
      const negate = op === '!=';
      reqs.push((l) => (Object.hasOwn(l, key) && l[key] === value) !== negate);
    } else if ((m = RE_SET.exec(term))) {
      const [key, op] = [m[1]!, m[2]!];
      const values = m[3]!.split(',').map((v) => v.trim());
      if (values.some((v) => !new RegExp(`^${LABEL_VALUE}$`).test(v))) throw badRequest(`invalid label selector: "${term}"`);
      const negate = op === 'notin';
      reqs.push((l) => (Object.hasOwn(l, key) && values.includes(l[key]!)) !== negate);
    } else throw badRequest(`unable to parse requirement: invalid label selector "${term}"`);
  }
  return (o) => {
    const labels = o.metadata.labels ?? {};
    return reqs.every((r) => r(labels));
  };
}

// --- Table (kubectl's human output) -----------------------------------------------------------------

interface TableColumn {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

type IncludeObject = 'None' | 'Metadata' | 'Object';

function column(name: string, priority = 0, format = ''): TableColumn {
  return { name, type: 'string', format, description: name, priority };
}

/** kubectl's short ages: 45s, 5m10s, 3h, 2d5h, 30d. */
function humanAge(createdIso: string, now = Date.now()): string {
  const t = Date.parse(createdIso);
  if (Number.isNaN(t)) return '<unknown>';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const d = Math.floor(h / 24);
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 192) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  return `${d}d`;
}

function podCells(o: StoredObject): string[] {
  const spec = isRecord(o['spec']) ? o['spec'] : {};
  const status = isRecord(o['status']) ? o['status'] : {};
  const containers = Array.isArray(spec['containers']) ? spec['containers'] : [];
  const statuses = (Array.isArray(status['containerStatuses']) ? status['containerStatuses'] : []).filter(isRecord);
  const ready = statuses.filter((c) => c['ready'] === true).length;
  const restarts = statuses.reduce((n, c) => n + (typeof c['restartCount'] === 'number' ? c['restartCount'] : 0), 0);
  let reason = typeof status['phase'] === 'string' ? status['phase'] : 'Pending';
  if (typeof status['reason'] === 'string') reason = status['reason'];
  for (const c of statuses) {
    const state = isRecord(c['state']) ? c['state'] : {};
    const waiting = isRecord(state['waiting']) ? state['waiting'] : undefined;
    if (waiting && typeof waiting['reason'] === 'string') reason = waiting['reason'];
  }
  if (o.metadata.deletionTimestamp) reason = 'Terminating';
  const ip = typeof status['podIP'] === 'string' ? status['podIP'] : '<none>';
  const node = typeof spec['nodeName'] === 'string' ? spec['nodeName'] : '<none>';
  return [o.metadata.name, `${ready}/${containers.length}`, reason, String(restarts), humanAge(o.metadata.creationTimestamp), ip, node];
}

/** The real server's service columns: NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE. */
function serviceCells(o: StoredObject): string[] {
  const spec = isRecord(o['spec']) ? o['spec'] : {};
  const type = typeof spec['type'] === 'string' ? spec['type'] : 'ClusterIP';
  const clusterIp = typeof spec['clusterIP'] === 'string' && spec['clusterIP'] !== '' ? spec['clusterIP'] : '<none>';
  const external = Array.isArray(spec['externalIPs']) && spec['externalIPs'].length > 0 ? spec['externalIPs'].join(',') : '<none>';
  const ports = (Array.isArray(spec['ports']) ? spec['ports'] : [])
    .filter(isRecord)
    .map((p) => `${String(p['port'])}/${typeof p['protocol'] === 'string' ? p['protocol'] : 'TCP'}`)
    .join(',');
  return [o.metadata.name, type, clusterIp, external, ports || '<none>', humanAge(o.metadata.creationTimestamp)];
}

function tableFor(def: ResourceDef, items: StoredObject[], include: IncludeObject, meta: Record<string, string>): unknown {
  const cellsOf: (o: StoredObject) => string[] =
    def.plural === 'pods' ? podCells : def.plural === 'services' ? serviceCells : (o) => [o.metadata.name, humanAge(o.metadata.creationTimestamp)];
  const columnDefinitions =
    def.plural === 'pods'
      ? [column('Name', 0, 'name'), column('Ready'), column('Status'), column('Restarts'), column('Age'), column('IP', 1), column('Node', 1)]
      : def.plural === 'services'
        ? [column('Name', 0, 'name'), column('Type'), column('Cluster-IP'), column('External-IP'), column('Port(s)'), column('Age')]
        : [column('Name', 0, 'name'), column('Age')];
  const rows = items.map((o) => {
    const cells = cellsOf(o);
    const object =
      include === 'Object' ? o : include === 'None' ? undefined : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
    return object === undefined ? { cells } : { cells, object };
  });
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: meta, columnDefinitions, rows };
}

/** kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` when it prints a table. */
function wantsTable(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((mt) => {
    const params = mt.split(';').map((p) => p.trim());
    return params.includes('as=Table') && params.includes('g=meta.k8s.io');
  });
}

// --- the server -------------------------------------------------------------------------------------

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface HistoryEvent {
  rv: number;
  type: WatchEventType;
  def: ResourceDef;
  object: StoredObject;
  /**
   * the object before a MODIFIED or DELETED: a watcher sees it stop (or start) matching its selectors, and a
   * paged list rebuilds the state at its first page's version by undoing newer changes
   */
  prev?: StoredObject;
}

interface WireEvent {
  type: WatchEventType | 'BOOKMARK' | 'ERROR';
  object: StoredObject | StatusObject | { kind: string; apiVersion: string; metadata: Record<string, unknown> };
}

interface Watcher {
  def: ResourceDef;
  namespace: string | undefined;
  matches: Matcher;
  res: ServerResponse;
  table: IncludeObject | undefined;
  timers: NodeJS.Timeout[];
  closed: boolean;
  /**
   * events not yet handed to the socket, oldest at `head`: they reference the store's immutable objects, and
   * are serialized only as the socket drains, so Node's own buffer stays near its high-water mark
   */
  queue: (WireEvent | undefined)[];
  head: number;
  flushScheduled: boolean;
  awaitingDrain: boolean;
}

export interface RequestRecord {
  method: string;
  /** path without the query */
  path: string;
  query: Record<string, string>;
  /** list, watch, get, create, update, delete, discovery or other */
  verb: string;
  /** the resource plural for resource requests */
  resource?: string;
  userAgent: string;
  /** whether the request carried `Authorization: Bearer <token>` with this server's token */
  authenticated: boolean;
  time: number;
}

export interface FakeApiServerOptions {
  /** fixed port; default a random free one chosen at the first start() */
  port?: number;
  /** how many changes the watch history keeps (default 1000) */
  historyLimit?: number;
  /** BOOKMARK period for watches with allowWatchBookmarks=true (default 1000 ms) */
  bookmarkIntervalMs?: number;
  /**
   * a watcher whose socket does not drain is dropped once this many live events wait for it (default
   * 10000); the initial ADDED events and the replayed history do not count against it
   */
  maxWatchBacklog?: number;
  /** server-side watch timeout when the client sends no timeoutSeconds (default 1800 s) */
  defaultWatchTimeoutSeconds?: number;
  /** the bearer token the kubeconfig gives its user (default 'fake-token') */
  token?: string;
  /**
   * answer 401 to resource and discovery requests without `Authorization: Bearer <token>` (default false).
   * kubectl never sends credentials to a plain-http server, so kubectl cannot work with this on.
   */
  requireToken?: boolean;
  /** requests kept in the log (default 10000) */
  requestLogLimit?: number;
}

export interface ListOptions {
  namespace?: string;
  fieldSelector?: string;
  labelSelector?: string;
}

const MAX_BODY_BYTES = 3 * 1024 * 1024;

export class FakeApiServer {
  private readonly store = new Map<string, Map<string, StoredObject>>();
  private rev = 1;
  private history: HistoryEvent[] = [];
  /** the oldest resourceVersion a watch may resume from; anything older gets 410 Expired */
  private compactedRv = 1;
  private readonly watchers = new Set<Watcher>();
  private readonly log: RequestRecord[] = [];
  private server: Server | undefined;
  private boundPort: number | undefined;
  private everStarted = false;
  private readonly historyLimit: number;
  private readonly bookmarkIntervalMs: number;
  private readonly maxWatchBacklog: number;
  private readonly defaultWatchTimeoutSeconds: number;
  private readonly requestLogLimit: number;
  readonly token: string;
  private readonly requireToken: boolean;

  constructor(opts: FakeApiServerOptions = {}) {
    this.boundPort = opts.port;
    this.historyLimit = opts.historyLimit ?? 1000;
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
    this.maxWatchBacklog = opts.maxWatchBacklog ?? 10_000;
    this.defaultWatchTimeoutSeconds = opts.defaultWatchTimeoutSeconds ?? 1800;
    this.requestLogLimit = opts.requestLogLimit ?? 10_000;
    this.token = opts.token ?? 'fake-token';
    this.requireToken = opts.requireToken ?? false;
    for (const def of RESOURCES) this.store.set(def.plural, new Map());
  }

  /** Constructs and starts a server. */
  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    await s.start();
    return s;
  }

  // --- lifecycle ------------------------------------------------------------------------------------

  /**
   * Listens on 127.0.0.1 (the same port as before after a stop()). Like a real API server whose watch
   * cache is rebuilt on restart, a restart forgets the event history: a client resuming from an older
   * resourceVersion gets 410 and relists, one that is up to date resumes.
   */
  async start(): Promise<void> {
    if (this.server) return;
    if (this.everStarted) this.forgetHistory();
    const server = createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 30_000;
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.boundPort ?? 0, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.server = undefined;
      throw err;
    }
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('fake-apiserver: no TCP address');
    this.boundPort = addr.port;
    this.everStarted = true;
  }

  /** Closes the listener and every connection, watches included; the store is kept. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of [...this.watchers]) this.closeWatcher(w, true);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  get port(): number {
    if (this.boundPort === undefined) throw new Error('fake-apiserver: not started');
    return this.boundPort;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.rev);
  }

  /** Writes a kubeconfig for kubectl and @kubernetes/client-node; returns the path. */
  kubeconfig(path: string, namespace = 'default'): string {
    const text = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${JSON.stringify(this.url)}`,
      // client-node 2.x refuses an http:// server unless this is set; kubectl ignores it for http
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: fake-user',
      '  user:',
      `    token: ${JSON.stringify(this.token)}`,
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: fake-user',
      `    namespace: ${JSON.stringify(namespace)}`,
      'current-context: fake',
      '',
    ].join('\n');
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  }

  // --- failure injection ----------------------------------------------------------------------------

  /** Abruptly destroys every open watch connection (mode 'end' closes them cleanly instead). */
  dropWatches(mode: 'destroy' | 'end' = 'destroy'): number {
    const open = [...this.watchers];
    for (const w of open) this.closeWatcher(w, mode === 'destroy');
    return open.length;
  }

  /**
   * Forgets the event history, as a compaction would, and moves the resourceVersion on by one so every
   * version a client has seen is now too old: the next watch resuming from one gets the 410 ERROR event.
   * Open watches are not affected.
   */
  expireHistory(): void {
    this.rev++;
    this.forgetHistory();
  }

  private forgetHistory(): void {
    this.history = [];
    this.compactedRv = this.rev;
  }

  /** The request log, oldest first (bounded). */
  get requests(): readonly RequestRecord[] {
    return this.log;
  }

  /** How many requests matched, e.g. count({verb: 'list', resource: 'pods'}) to see relists. */
  count(filter: Partial<Pick<RequestRecord, 'verb' | 'resource' | 'path' | 'method'>> = {}): number {
    return this.log.filter(
      (r) =>
        (filter.verb === undefined || r.verb === filter.verb) &&
        (filter.resource === undefined || r.resource === filter.resource) &&
        (filter.path === undefined || r.path === filter.path) &&
        (filter.method === undefined || r.method === filter.method),
    ).length;
  }

  /** Open watch connections, optionally of one resource. */
  openWatches(resource?: string): number {
    let n = 0;
    for (const w of this.watchers) if (resource === undefined || w.def.plural === resource) n++;
    return n;
  }

  // --- the class API --------------------------------------------------------------------------------

  create<T extends KubeObjectInput>(input: T): StoredObject {
    const { def, obj } = this.normalize(input);
    const key = storeKey(obj.metadata.namespace, obj.metadata.name);
    const bucket = this.bucket(def);
    if (bucket.has(key)) {
      const what = def.group === '' ? def.plural : `${def.plural}.${def.group}`;
      throw new ApiError(
        statusObject(409, 'AlreadyExists', `${what} "${obj.metadata.name}" already exists`, { name: obj.metadata.name, group: def.group, kind: def.plural }),
      );
    }
    obj.metadata.uid = typeof obj.metadata.uid === 'string' && obj.metadata.uid !== '' ? obj.metadata.uid : randomUUID();
    if (typeof obj.metadata.creationTimestamp !== 'string' || obj.metadata.creationTimestamp === '') {
      obj.metadata.creationTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    this.commit('ADDED', def, obj, undefined);
    bucket.set(key, obj);
    return copyStored(obj);
  }

  /** Replaces an object; a resourceVersion in the input must match the stored one (optimistic concurrency). */
  update<T extends KubeObjectInput>(input: T): StoredObject {
    const { def, obj } = this.normalize(input);
    const key = storeKey(obj.metadata.namespace, obj.metadata.name);
    const bucket = this.bucket(def);
    const prev = bucket.get(key);
    if (!prev) throw notFound(def, obj.metadata.name);
    const givenRv = input.metadata?.resourceVersion;
    if (givenRv !== undefined && givenRv !== '' && givenRv !== prev.metadata.resourceVersion) {
      throw new ApiError(
        statusObject(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${def.plural} "${obj.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
          { name: obj.metadata.name, group: def.group, kind: def.plural },
        ),
      );
    }
    obj.metadata.uid = prev.metadata.uid;
    obj.metadata.creationTimestamp = prev.metadata.creationTimestamp;
    this.commit('MODIFIED', def, obj, prev);
    bucket.set(key, obj);
    return copyStored(obj);
  }

  /** Deletes an object at once (no finalizers, no grace period); returns it, or undefined if absent. */
  delete(resource: string, namespace: string | undefined, name: string): StoredObject | undefined {
    const def = resourceByPlural(resource);
    const bucket = this.bucket(def);
    const key = storeKey(def.namespaced ? namespace : undefined, name);
    const prev = bucket.get(key);
    if (!prev) return undefined;
    bucket.delete(key);
    const gone = copyStored(prev);
    this.commit('DELETED', def, gone, prev);
    return copyStored(gone);
  }

  get(resource: string, namespace: string | undefined, name: string): StoredObject | undefined {
    const def = resourceByPlural(resource);
    const o = this.bucket(def).get(storeKey(def.namespaced ? namespace : undefined, name));
    return o ? copyStored(o) : undefined;
  }

  /** Current objects sorted by namespace and name, as etcd orders them. */
  list(resource: string, opts: ListOptions = {}): StoredObject[] {
    const def = resourceByPlural(resource);
    return this.select(def, opts.namespace, this.matcher(opts.fieldSelector, opts.labelSelector)).map(copyStored);
  }

  private bucket(def: ResourceDef): Map<string, StoredObject> {
    return this.store.get(def.plural)!;
  }

  private normalize(input: KubeObjectInput): { def: ResourceDef; obj: StoredObject } {
    const raw = jsonCopy(input);
    if (!isRecord(raw)) throw badRequest('object must be a JSON object');
    const kind = raw['kind'];
    const def = RESOURCES.find((r) => r.kind === kind);
    if (!def) throw badRequest(`fake-apiserver: unsupported kind ${JSON.stringify(kind)}`);
    const apiVersion = raw['apiVersion'] ?? groupVersion(def);
    if (apiVersion !== groupVersion(def)) throw badRequest(`${def.kind} is served as ${groupVersion(def)}, not ${JSON.stringify(apiVersion)}`);
    const meta = isRecord(raw['metadata']) ? raw['metadata'] : {};
    let name = meta['name'];
    if ((typeof name !== 'string' || name === '') && typeof meta['generateName'] === 'string' && meta['generateName'] !== '') {
      name = meta['generateName'] + randomUUID().replace(/-/g, '').slice(0, 5);
    }
    if (typeof name !== 'string' || name === '') throw badRequest(`${def.kind}: metadata.name: Required value`);
    const namespace = meta['namespace'];
    if (def.namespaced) {
      if (typeof namespace !== 'string' || namespace === '') throw badRequest(`${def.kind} "${name}": metadata.namespace: Required value`);
    } else delete meta['namespace'];
    const obj = { ...raw, apiVersion: groupVersion(def), kind: def.kind, metadata: { ...meta, name } } as StoredObject;
    return { def, obj };
  }

  /** Gives the object the next resourceVersion, records the change and tells every watcher. */
  private commit(type: WatchEventType, def: ResourceDef, obj: StoredObject, prev: StoredObject | undefined): void {
    this.rev++;
    obj.metadata.resourceVersion = String(this.rev);
    const ev: HistoryEvent = prev ? { rv: this.rev, type, def, object: obj, prev } : { rv: this.rev, type, def, object: obj };
    this.history.push(ev);
    while (this.history.length > this.historyLimit) {
      const old = this.history.shift()!;
      this.compactedRv = old.rv;
    }
    for (const w of [...this.watchers]) if (w.def === def) this.deliver(w, ev, true);
  }

  private matcher(fieldSelector: string | undefined, labelSelector: string | undefined): Matcher {
    const f = fieldSelector ? parseFieldSelector(fieldSelector) : undefined;
    const l = labelSelector ? parseLabelSelector(labelSelector) : undefined;
    return (o) => (f === undefined || f(o)) && (l === undefined || l(o));
  }

  /** Matching objects as of resourceVersion atRv (default now), which must not be older than the history. */
  private select(def: ResourceDef, namespace: string | undefined, matches: Matcher, atRv = this.rev): StoredObject[] {
    const out: StoredObject[] = [];
    for (const o of this.snapshot(def, atRv).values()) {
      if (namespace !== undefined && def.namespaced && o.metadata.namespace !== namespace) continue;
      if (matches(o)) out.push(o);
    }
    return out.sort((a, b) => {
      const ka = storeKey(a.metadata.namespace, a.metadata.name);
      const kb = storeKey(b.metadata.namespace, b.metadata.name);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }

  private snapshot(def: ResourceDef, atRv: number): Map<string, StoredObject> {
    const current = this.bucket(def);
    if (atRv >= this.rev) return current;
    const state = new Map(current);
    for (let i = this.history.length - 1; i >= 0; i--) {
      const ev = this.history[i]!;
      if (ev.rv <= atRv) break;
      if (ev.def !== def) continue;
      const key = storeKey(ev.object.metadata.namespace, ev.object.metadata.name);
      if (ev.type === 'ADDED' || !ev.prev) state.delete(key);
      else state.set(key, ev.prev);
    }
    return state;
  }

  // --- HTTP -----------------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      verb: 'other',
      userAgent: req.headers['user-agent'] ?? '',
      authenticated: req.headers.authorization === `Bearer ${this.token}`,
      time: Date.now(),
    };
    this.log.push(record);
    if (this.log.length > this.requestLogLimit) this.log.splice(0, this.log.length - this.requestLogLimit);
    this.route(req, res, url, record).catch((err: unknown) => {
      if (err instanceof ApiError) this.sendJson(res, err.status.code, err.status);
      else this.sendJson(res, 500, statusObject(500, 'InternalError', err instanceof Error ? err.message : String(err)));
    });
  }

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
    res.end(text);
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, record: RequestRecord): Promise<void> {
    const segs = url.pathname
      .split('/')
      .filter((s) => s !== '')
      .map((s) => decodeURIComponent(s));
    const method = record.method;
    const first = segs[0];

    if (segs.length === 1 && (first === 'healthz' || first === 'livez' || first === 'readyz')) {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (segs.length === 1 && first === 'version') {
      record.verb = 'discovery';
      this.sendJson(res, 200, {
        major: '1',
        minor: '32',
        gitVersion: 'v1.32.0-fake',
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2025-01-01T00:00:00Z',
        goVersion: 'go1.23.0',
        compiler: 'gc',
        platform: 'linux/amd64',
      });
      return;
    }

    if (this.requireToken && req.headers.authorization !== `Bearer ${this.token}`) {
      this.sendJson(res, 401, statusObject(401, 'Unauthorized', 'Unauthorized'));
      return;
    }

    let group: string;
    let version: string;
    let rest: string[];
    if (first === 'api') {
      if (segs.length === 1) {
        record.verb = 'discovery';
        // plain JSON even when aggregated discovery is asked for: clients fall back to these legacy documents
        this.sendJson(res, 200, {
          kind: 'APIVersions',
          versions: ['v1'],
          serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }],
        });
        return;
      }
      [group, version, rest] = ['', segs[1]!, segs.slice(2)];
    } else if (first === 'apis') {
      if (segs.length === 1) {
        record.verb = 'discovery';
        this.sendJson(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: GROUPS.map((g) => apiGroup(g)) });
        return;
      }
      if (segs.length === 2 && GROUPS.includes(segs[1]!)) {
        record.verb = 'discovery';
        this.sendJson(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(segs[1]!) });
        return;
      }
      if (segs.length < 3) throw this.pathNotFound(url);
      [group, version, rest] = [segs[1]!, segs[2]!, segs.slice(3)];
    } else throw this.pathNotFound(url);

    const defs = RESOURCES.filter((r) => r.group === group && r.version === version);
    if (defs.length === 0) throw this.pathNotFound(url);
    if (rest.length === 0) {
      record.verb = 'discovery';
      this.sendJson(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group === '' ? version : `${group}/${version}`,
        resources: defs.map((d) => ({
          name: d.plural,
          singularName: d.singular,
          namespaced: d.namespaced,
          kind: d.kind,
          verbs: VERBS,
          ...(d.shortNames.length > 0 ? { shortNames: d.shortNames } : {}),
          ...(d.categories.length > 0 ? { categories: d.categories } : {}),
        })),
      });
      return;
    }

    // [plural] | [plural, name] | [namespaces, ns, plural] | [namespaces, ns, plural, name]
    let def: ResourceDef | undefined;
    let namespace: string | undefined;
    let name: string | undefined;
    if (rest.length <= 2) {
      def = defs.find((d) => d.plural === rest[0]);
      name = rest[1];
      if (def && name !== undefined && def.namespaced) def = undefined;
    } else if (rest.length <= 4 && rest[0] === 'namespaces') {
      def = defs.find((d) => d.plural === rest[2] && d.namespaced);
      namespace = rest[1];
      name = rest[3];
    }
    if (!def) throw this.pathNotFound(url);
    record.resource = def.plural;
    const q = url.searchParams;
    const watch = q.get('watch') === 'true' || q.get('watch') === '1';

    if (method === 'GET' && (watch || name === undefined)) {
      record.verb = watch ? 'watch' : 'list';
      let matches = this.matcher(q.get('fieldSelector') ?? undefined, q.get('labelSelector') ?? undefined);
      if (name !== undefined) {
        const only = name;
        const base = matches;
        matches = (o) => o.metadata.name === only && base(o);
      }
      if (watch) this.serveWatch(req, res, def, namespace, matches);
      else this.serveList(req, res, def, namespace, matches);
      return;
    }
    if (method === 'GET' && name !== undefined) {
      record.verb = 'get';
      const o = this.bucket(def).get(storeKey(namespace, name));
      if (!o) throw notFound(def, name);
      this.sendJson(res, 200, o);
      return;
    }
    if (method === 'POST' && name === undefined) {
      record.verb = 'create';
      const body = await readBody(req);
      const meta = isRecord(body['metadata']) ? body['metadata'] : {};
      if (def.namespaced) {
        if (namespace === undefined) throw new ApiError(statusObject(405, 'MethodNotAllowed', 'create needs a namespaced path'));
        if (meta['namespace'] !== undefined && meta['namespace'] !== namespace) {
          throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
        }
        meta['namespace'] = namespace;
      }
      body['metadata'] = meta;
      body['kind'] ??= def.kind;
      this.sendJson(res, 201, this.create(body));
      return;
    }
    if (method === 'PUT' && name !== undefined) {
      record.verb = 'update';
      const body = await readBody(req);
      const meta = isRecord(body['metadata']) ? body['metadata'] : {};
      if (meta['name'] !== name || (def.namespaced && (meta['namespace'] ?? namespace) !== namespace)) {
        throw badRequest('the name or namespace of the object does not match the request path');
      }
      if (def.namespaced) meta['namespace'] = namespace;
      body['metadata'] = meta;
      body['kind'] ??= def.kind;
      this.sendJson(res, 200, this.update(body));
      return;
    }
    if (method === 'DELETE' && name !== undefined) {
      record.verb = 'delete';
      const gone = this.delete(def.plural, namespace, name);
      if (!gone) throw notFound(def, name);
      this.sendJson(res, 200, gone);
      return;
    }
    throw new ApiError(statusObject(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`));
  }

  private pathNotFound(url: URL): ApiError {
    return new ApiError(statusObject(404, 'NotFound', `the server could not find the requested resource (${url.pathname})`));
  }

  private serveList(req: IncomingMessage, res: ServerResponse, def: ResourceDef, namespace: string | undefined, matches: Matcher): void {
    const q = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
    const limitParam = q.get('limit');
    const limit = limitParam === null || limitParam === '' ? 0 : Number(limitParam);
    if (!Number.isInteger(limit) || limit < 0) throw badRequest(`invalid limit ${JSON.stringify(limitParam)}`);
    let listRv = this.rev;
    let after: string | undefined;
    const cont = q.get('continue');
    if (cont) {
      const token = decodeContinue(cont);
      if (token.rv < this.compactedRv) {
        throw new ApiError(
          statusObject(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.'),
        );
      }
      [listRv, after] = [token.rv, token.after];
    } else if (q.get('resourceVersionMatch') === 'Exact') {
      const rv = Number(q.get('resourceVersion'));
      if (!Number.isInteger(rv) || rv <= 0) throw badRequest('resourceVersionMatch=Exact needs a resourceVersion');
      if (rv < this.compactedRv) throw new ApiError(statusObject(410, 'Expired', `too old resource version: ${rv} (${this.compactedRv})`));
      listRv = Math.min(rv, this.rev);
    }
    // a continued list is served as of its first page's version, like etcd's consistent snapshot
    let items = this.select(def, namespace, matches, listRv);
    if (after !== undefined) {
      const from = after;
      items = items.filter((o) => storeKey(o.metadata.namespace, o.metadata.name) > from);
    }
    const meta: Record<string, string> = { resourceVersion: String(listRv) };
    let remaining = 0;
    if (limit > 0 && items.length > limit) {
      remaining = items.length - limit;
      items = items.slice(0, limit);
      const last = items[items.length - 1]!;
      meta['continue'] = encodeContinue(listRv, storeKey(last.metadata.namespace, last.metadata.name));
    }
    const table = wantsTable(req.headers.accept);
    if (table) {
      this.sendJson(res, 200, tableFor(def, items, includeObject(q.get('includeObject')), meta));
      return;
    }
    this.sendJson(res, 200, {
      kind: `${def.kind}List`,
      apiVersion: groupVersion(def),
      metadata: remaining > 0 ? { ...meta, remainingItemCount: remaining } : meta,
      items,
    });
  }

  private serveWatch(req: IncomingMessage, res: ServerResponse, def: ResourceDef, namespace: string | undefined, matches: Matcher): void {
    const q = new URL(req.url ?? '/', 'http://127.0.0.1').searchParams;
    const rvParam = q.get('resourceVersion') ?? '';
    const sendInitial = q.get('sendInitialEvents') === 'true';
    const bookmarks = q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1';
    const timeoutParam = q.get('timeoutSeconds');
    const timeoutSeconds = timeoutParam === null || timeoutParam === '' ? this.defaultWatchTimeoutSeconds : Number(timeoutParam);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) throw badRequest(`invalid timeoutSeconds ${JSON.stringify(timeoutParam)}`);
    const fromNow = rvParam === '' || rvParam === '0';
    const fromRv = fromNow ? this.rev : Number(rvParam);
    if (!Number.isInteger(fromRv) || fromRv < 0) throw badRequest(`invalid resource version: ${JSON.stringify(rvParam)}`);

    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    if (!fromNow && fromRv < this.compactedRv) {
      // like the watch cache: a 200, one ERROR event with the 410 Status, and the end of the stream
      const expired: WireEvent = { type: 'ERROR', object: statusObject(410, 'Expired', `too old resource version: ${fromRv} (${this.compactedRv})`) };
      res.end(JSON.stringify(expired) + '\n');
      return;
    }
    const w: Watcher = {
      def,
      namespace: def.namespaced ? namespace : undefined,
      matches,
      res,
      table: wantsTable(req.headers.accept) ? includeObject(q.get('includeObject')) : undefined,
      timers: [],
      closed: false,
      queue: [],
      head: 0,
      flushScheduled: false,
      awaitingDrain: false,
    };
    this.watchers.add(w);
    res.on('close', () => this.closeWatcher(w, false));

    if (fromNow || sendInitial) {
      for (const o of this.select(def, w.namespace, matches)) this.send(w, 'ADDED', o, false);
    }
    if (!fromNow) {
      for (const ev of this.history) if (ev.rv > fromRv && ev.def === def) this.deliver(w, ev, false);
    }
    if (sendInitial && bookmarks) this.sendBookmark(w, { 'k8s.io/initial-events-end': 'true' });
    if (bookmarks) w.timers.push(setInterval(() => this.sendBookmark(w), this.bookmarkIntervalMs));
    if (timeoutSeconds > 0) w.timers.push(setTimeout(() => this.closeWatcher(w, false), timeoutSeconds * 1000));
  }

  /** Sends one history event to a watcher, turned into what its selectors make of it. */
  private deliver(w: Watcher, ev: HistoryEvent, live: boolean): void {
    const o = ev.object;
    if (w.namespace !== undefined && o.metadata.namespace !== w.namespace) return;
    const now = w.matches(o);
    if (ev.type !== 'MODIFIED') {
      if (now) this.send(w, ev.type, o, live);
      return;
    }
    const before = ev.prev !== undefined && w.matches(ev.prev);
    if (now) this.send(w, before ? 'MODIFIED' : 'ADDED', o, live);
    else if (before && ev.prev) {
      // it left the selection: the watcher sees its last matching state go, at this change's version
      this.send(w, 'DELETED', { ...ev.prev, metadata: { ...ev.prev.metadata, resourceVersion: o.metadata.resourceVersion } }, live);
    }
  }

  private sendBookmark(w: Watcher, annotations?: Record<string, string>): void {
    // queued behind every event already delivered, so its version never runs ahead of them
    if (!annotations && w.queue.length > w.head) return;
    const metadata = annotations ? { resourceVersion: String(this.rev), annotations } : { resourceVersion: String(this.rev) };
    this.enqueue(w, { type: 'BOOKMARK', object: { kind: w.def.kind, apiVersion: groupVersion(w.def), metadata } }, false);
  }

  private send(w: Watcher, type: WatchEventType, object: StoredObject, bounded: boolean): void {
    this.enqueue(w, { type, object }, bounded);
  }

  private enqueue(w: Watcher, event: WireEvent, bounded: boolean): void {
    if (w.closed) return;
    if (bounded && w.queue.length - w.head >= this.maxWatchBacklog) {
      // a client that does not read must not make us hold its events without bound
      this.closeWatcher(w, true);
      return;
    }
    w.queue.push(event);
    if (w.flushScheduled || w.awaitingDrain) return;
    w.flushScheduled = true;
    setImmediate(() => {
      w.flushScheduled = false;
      this.flush(w);
    });
  }

  private flush(w: Watcher): void {
    while (!w.closed && w.head < w.queue.length) {
      const ev = w.queue[w.head]!;
      w.queue[w.head++] = undefined; // let the object go once written
      const wire =
        w.table !== undefined && (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED')
          ? { type: ev.type, object: tableFor(w.def, [ev.object as StoredObject], w.table, { resourceVersion: (ev.object as StoredObject).metadata.resourceVersion }) }
          : ev;
      if (!w.res.write(JSON.stringify(wire) + '\n')) {
        w.awaitingDrain = true;
        w.res.once('drain', () => {
          w.awaitingDrain = false;
          this.flush(w);
        });
        break;
      }
    }
    if (w.head === w.queue.length || w.head > 4096) {
      w.queue = w.queue.slice(w.head);
      w.head = 0;
    }
  }

  private closeWatcher(w: Watcher, abrupt: boolean): void {
    if (w.closed) return;
    w.closed = true;
    this.watchers.delete(w);
    w.queue = [];
    w.head = 0;
    for (const t of w.timers) clearTimeout(t);
    if (abrupt) w.res.destroy();
    else if (!w.res.destroyed && !w.res.writableEnded) w.res.end();
  }
}

function apiGroup(name: string): { name: string; versions: { groupVersion: string; version: string }[]; preferredVersion: { groupVersion: string; version: string } } {
  const gv = { groupVersion: `${name}/v1`, version: 'v1' };
  return { name, versions: [gv], preferredVersion: gv };
}

function includeObject(v: string | null): IncludeObject {
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}

function encodeContinue(rv: number, after: string): string {
  return Buffer.from(JSON.stringify({ rv, after })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; after: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (!isRecord(parsed) || typeof parsed['rv'] !== 'number' || typeof parsed['after'] !== 'string') {
    throw badRequest('invalid continue token');
  }
  return { rv: parsed['rv'], after: parsed['after'] };
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(statusObject(413, 'RequestEntityTooLarge', 'request entity too large'));
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('the request body is not JSON');
  }
  if (!isRecord(body)) throw badRequest('the request body must be a JSON object');
  return body;
}
