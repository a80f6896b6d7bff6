/**
 * The hub's query API from the browser: JSON over fetch with the bearer token when the hub needs one
 * (kept in this tab's sessionStorage, asked for on the first 401), and a hook that loads, refreshes
 * on the route's interval and keeps the last good answer while the next one loads.
 */
import { useEffect, useRef, useState } from 'preact/hooks';

const TOKEN_KEY = 'periscope.token';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint: string,
  ) {
    super(message);
  }
}

export function token(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

const tokenListeners = new Set<() => void>();
export function setToken(t: string): void {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // private mode: the token lives as long as the page
  }
  for (const l of tokenListeners) l();
}
/** Calls back when the token changes (to reload everything with it). */
export function onToken(l: () => void): () => void {
  tokenListeners.add(l);
  return () => tokenListeners.delete(l);
}

const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(l: () => void): () => void {
  unauthorizedListeners.add(l);
  return () => unauthorizedListeners.delete(l);
}

export function headers(): Record<string, string> {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

/** `/api/v1/<path>?<params>`; list values repeat the parameter. */
export function apiUrl(path: string, params: Record<string, string | number | readonly string[] | undefined> = {}): string {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === '') continue;
    if (Array.isArray(v)) for (const x of v as readonly string[]) s.append(k, x);
    else s.set(k, String(v));
  }
  const qs = s.toString();
  return `/api/v1/${path}${qs ? `?${qs}` : ''}`;
}

export async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  let r: Response;
  try {
    r = await fetch(url, { headers: headers(), ...(signal ? { signal } : {}) });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'the hub did not answer', 'check that `periscope hub` (or `periscope run`) is running and reachable, then retry');
  }
  if (r.ok) return (await r.json()) as T;
  let body: { error?: string; hint?: string } = {};
  try {
    body = (await r.json()) as typeof body;
  } catch {
    // not the hub's JSON error: a proxy in between, say
  }
  if (r.status === 401) for (const l of unauthorizedListeners) l();
  throw new ApiError(r.status, body.error ?? `the hub answered ${r.status} ${r.statusText}`, body.hint ?? (r.status === 401 ? 'give the token of the hub\'s --token-file' : 'retry in a moment'));
}

export interface Query<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  /** when the data shown was fetched (ms) */
  updated: number;
}

/**
 * Loads `url` now, again whenever it changes, every `refresh` seconds (0: never) and when the token
 * changes. Requests never overlap: a refresh waits for the one in flight. `url` undefined: nothing.
 */
export function useQuery<T>(url: string | undefined, refresh: number): Query<T> {
  const [state, setState] = useState<Query<T>>({ data: undefined, error: undefined, loading: url !== undefined, updated: 0 });
  const [tokenTick, setTokenTick] = useState(0);
  const last = useRef<string | undefined>(undefined);
  useEffect(() => onToken(() => setTokenTick((n) => n + 1)), []);
  useEffect(() => {
    if (url === undefined) {
      setState({ data: undefined, error: undefined, loading: false, updated: 0 });
      return;
    }
    // a new URL shows loading; a refresh of the same one keeps what is shown
    if (last.current !== url) setState((s) => ({ ...s, data: undefined, error: undefined, loading: true }));
    last.current = url;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ctl: AbortController | undefined;
    const load = async (): Promise<void> => {
      ctl = new AbortController();
      try {
        const data = await getJson<T>(url, ctl.signal);
        if (!stopped) setState({ data, error: undefined, loading: false, updated: Date.now() });
      } catch (err) {
        if (stopped || (err as Error).name === 'AbortError') return;
        setState((s) => ({ ...s, error: err instanceof ApiError ? err : new ApiError(0, (err as Error).message, 'retry in a moment'), loading: false }));
      }
      if (!stopped && refresh > 0) timer = setTimeout(() => void load(), refresh * 1000);
    };
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
      ctl?.abort();
    };
  }, [url, refresh, tokenTick]);
  return state;
}

/**
 * Server-sent events read with fetch (EventSource cannot send the bearer token): calls `onEvent`
 * with each event's JSON; reconnects after an error, resuming after the last id seen. Returns stop().
 */
export function streamEvents(url: string, onEvent: (e: unknown) => void, onState: (s: 'live' | 'reconnecting', why?: string) => void): () => void {
  let stopped = false;
  let lastId = '';
  let ctl: AbortController | undefined;
  const run = async (): Promise<void> => {
    while (!stopped) {
      ctl = new AbortController();
      try {
        const r = await fetch(url, { headers: { ...headers(), accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) }, signal: ctl.signal });
        if (r.status === 401) for (const l of unauthorizedListeners) l();
        if (!r.ok || !r.body) throw new ApiError(r.status, `the stream answered ${r.status}`, r.status === 401 ? 'give the hub\'s token' : 'retrying');
        onState('live');
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          // bounded: a frame longer than 1 MiB is not an event of ours
          if (buf.length > 1 << 20) buf = '';
          let end: number;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let data = '';
            for (const line of frame.split('\n')) {
              if (line.startsWith('data: ')) data += line.slice(6);
              else if (line.startsWith('id: ')) lastId = line.slice(4);
            }
            if (data) {
              try {
                onEvent(JSON.parse(data));
              } catch {
                // a frame that is not JSON is skipped
              }
            }
          }
        }
        if (!stopped) onState('reconnecting', 'the hub closed the stream');
      } catch (err) {
        if (stopped) return;
        onState('reconnecting', (err as Error).message);
      }
      if (!stopped) await new Promise((r) => setTimeout(r, 2000));
    }
  };
  void run();
  return () => {
    stopped = true;
    ctl?.abort();
  };
}
