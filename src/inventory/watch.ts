/**
 * One resource of the Kubernetes API followed through @kubernetes/client-node's list-then-watch
 * (ListWatch: resourceVersion, relist on 410 Gone), with what ListWatch does not do: restart after
 * errors (API server gone, watch dropped) with capped exponential backoff, count every error, remember
 * the last one, and say whether it is connected. The inventory runs one per resource it follows (pods,
 * services, endpointslices, nodes), all alike.
 */
import { type KubeConfig, type KubernetesListObject, type KubernetesObject, ListWatch, type V1ObjectMeta, Watch } from '@kubernetes/client-node';

const BASE_BACKOFF_MS = 250;

/**
 * One line for an error of the API client: fetch reports a refused or unreachable server as "fetch
 * failed" and keeps the reason (ECONNREFUSED, a TLS failure, ...) in its cause chain, and an exec
 * plugin's error is its stderr, which may span lines.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    const x = e as { message?: unknown; code?: unknown; cause?: unknown };
    const msg = (typeof x.message === 'string' ? x.message : typeof e === 'string' ? e : JSON.stringify(e)).replace(/\s*\n\s*/g, ' ').trim();
    const code = typeof x.code === 'string' && !msg.includes(x.code) ? ` (${x.code})` : '';
    if ((msg || code) && !parts.some((p) => p.includes(msg || code))) parts.push(`${msg}${code}`.trim());
    e = x.cause;
  }
  const line = parts.join(': ') || 'unknown error';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

export interface ResourceWatchOptions<T extends KubernetesObject> {
  /** the resource's plural (pods, services, ...): names its errors and its log lines */
  resource: string;
  /** the watch path, e.g. /api/v1/pods */
  path: string;
  kc: KubeConfig;
  /** one page of the list (with the same field selector as the watch) */
  list: (page: { limit: number; resourceVersion?: string; _continue?: string }) => Promise<KubernetesListObject<T>>;
  /**
   * what upsert needs of a listed object, taken page by page: a cluster's pods listed whole would
   * hold every pod's spec and status (and JSON) at once before the first is handled
   */
  project: (o: T) => T;
  /**
   * objects per page of a list (default 100: measured with 5000 pods of 9 kB, the agent's peak RSS
   * was 236 MiB with pages of 100, 314 MiB with 500, 376 MiB with 2000)
   */
  pageSize?: number;
  fieldSelector?: string;
  /**
   * every list, before its items are handed to upsert: objects missing from it were deleted while the
   * watch was away (a new ListWatch starts with an empty cache, so it cannot tell)
   */
  listed: (items: T[]) => void;
  upsert: (o: T) => void;
  /**
   * a deleted object: the whole object when the watch says so, or only metadata.name, namespace, uid
   * and resourceVersion when ListWatch finds it missing from a relist (see slim)
   */
  remove: (o: T) => void;
  maxBackoffMs: number;
  log: (line: string) => void;
  now: () => number;
  /** the API server, for log lines */
  server: string;
}

/**
 * What ListWatch keeps of an object once upsert has read it: only what its cache is keyed and
 * compared by (namespace, name, resourceVersion) and the uid. ListWatch caches the very object it
 * hands to the callbacks, and keeping every pod of a cluster whole (spec, status, managedFields: 10-20
 * kB each) would cost more than the rest of the agent; the inventory keeps what it needs on its own.
 */
function slim(o: KubernetesObject): void {
  const metadata = identity(o);
  for (const key of Object.keys(o)) delete (o as Record<string, unknown>)[key];
  o.metadata = metadata;
}

/** The identity of an object: what ListWatch's cache is keyed and compared by, and the uid. */
export function identity(o: KubernetesObject): V1ObjectMeta {
  const m = o.metadata ?? {};
  return { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion };
}

export class ResourceWatch<T extends KubernetesObject> {
  readonly resource: string;
  private informer: ListWatch<T> | undefined;
  private backoffMs = 0;
  private retry: NodeJS.Timeout | undefined;
  private stopped = true;
  /** list/watch failures and dropped connections */
  errors = 0;
  /** lists made (the first, and one per relist) */
  lists = 0;
  connected = false;
  /** the last error, and when (ms), until a list succeeds again */
  lastError: { message: string; at: number } | undefined;

  constructor(private readonly opts: ResourceWatchOptions<T>) {
    this.resource = opts.resource;
  }

  /**
   * A new list-then-watch. After an error the old one is dropped rather than restarted: client-node
   * would add its own growing delay (up to 30 s) before resuming, on top of ours, and a new one lists
   * afresh.
   */
  private makeInformer(): ListWatch<T> {
    const list = async (): Promise<KubernetesListObject<T>> => {
      this.lists++;
      const items: T[] = [];
      let resourceVersion: string | undefined;
      let next: string | undefined;
      do {
        // The first page asks for resourceVersion 0, as client-go's informers do: the API server answers
        // from its watch cache instead of reading etcd (a list of every pod of the cluster, or a field
        // selector etcd cannot index, from every agent at once after the API server restarts). The
        // pages of one list are one snapshot: the continue token carries its resourceVersion. (A
        // server that does not page from its cache ignores the limit and answers with one page.)
        const limit = this.opts.pageSize ?? 100;
        const page = await this.opts.list(next ? { limit, _continue: next } : { limit, resourceVersion: '0' });
        for (const o of page.items) items.push(this.opts.project(o));
        resourceVersion = page.metadata?.resourceVersion;
        next = page.metadata?._continue || undefined;
      } while (next);
      // the API answered: connected again, and the next failure backs off from the start
      this.connected = true;
      this.backoffMs = 0;
      this.lastError = undefined;
      this.opts.listed(items);
      return { items, metadata: { resourceVersion } };
    };
    const informer = new ListWatch<T>(this.opts.path, new Watch(this.opts.kc), list, false, undefined, this.opts.fieldSelector);
    const upsert = (o: T): void => {
      this.opts.upsert(o);
      slim(o);
    };
    informer.on('add', upsert);
    informer.on('update', upsert);
    informer.on('delete', (o) => this.opts.remove(o));
    informer.on('error', (err: unknown) => this.failed(err, informer));
    return informer;
  }

  start(): void {
    this.stopped = false;
    this.run();
  }

  private run(): void {
    const informer = this.makeInformer();
    this.informer = informer;
    // ListWatch reports a failed list or watch through 'error' (→ failed) and resolves anyway
    informer.start().catch((err: unknown) => this.failed(err, informer));
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.informer?.stop().catch(() => undefined);
  }

  /** An error ends an informer's loop: count it, keep what we know, start a new one later. */
  private failed(err: unknown, informer: ListWatch<T>): void {
    if (informer !== this.informer) return; // a late word from one already replaced
    this.errors++;
    this.connected = false;
    informer.stop().catch(() => undefined);
    if (this.stopped) return;
    this.backoffMs = Math.min(this.backoffMs ? this.backoffMs * 2 : BASE_BACKOFF_MS, this.opts.maxBackoffMs);
    this.lastError = { message: describeError(err), at: this.opts.now() };
    this.opts.log(`kubernetes: ${this.opts.server}: ${this.resource}: ${this.lastError.message}; retrying in ${this.backoffMs} ms`);
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (!this.stopped) this.run();
    }, this.backoffMs);
  }
}
