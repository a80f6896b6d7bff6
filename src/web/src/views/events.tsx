/**
 * Events: a filterable feed of what the agents logged (exec, exit, OOM kills, connection failures,
 * DNS, ...: whatever types the collectors declare). Live: the hub's event stream appends new events
 * on top (a bounded list); paused or a fixed range: the stored events of the range.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { type PeriscopeEvent } from '../../../wire/events.js';
import { apiUrl, streamEvents, useQuery } from '../api.js';
import { Card, Loaded, Table, Updated } from '../components.js';
import { clock } from '../format.js';
import { entryParams, entryName } from '../names.js';
import { formatHash, go, rangeQuery, type Route } from '../route.js';
import { type Navigate } from '../app.js';

const ENVELOPE = new Set(['seq', 'type', 'time', 'node', 'cgroup', 'cgroup_id', 'namespace', 'pod', 'container', 'workload_kind', 'workload']);
const MAX_SHOWN = 500;

/** An event's own fields (not the envelope) as `key=value`, arrays joined, long values cut. */
export function eventDetails(e: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (ENVELOPE.has(k) || v === null || v === undefined || v === '') continue;
    const text = Array.isArray(v) ? v.map(String).join(' ') : typeof v === 'string' ? v : JSON.stringify(v);
    parts.push(`${k}=${text.length > 120 ? `${text.slice(0, 119)}…` : text}`);
  }
  return parts.join('  ');
}

const FILTERS = ['type', 'namespace', 'pod', 'node'] as const;

export function Events({ route, navigate }: { route: Route; navigate: Navigate }) {
  const p = route.params;
  const filters = Object.fromEntries(FILTERS.filter((k) => p[k]).map((k) => [k, p[k]!]));
  const live = route.to === '' && p.live !== 'off';
  const stored = useQuery<{ events: PeriscopeEvent[] }>(apiUrl('events', { ...rangeQuery(route), ...filters, limit: 200 }), live ? 0 : route.refresh);
  const [streamed, setStreamed] = useState<PeriscopeEvent[]>([]);
  const [streamState, setStreamState] = useState<string>('');
  const seen = useRef(new Set<string>());
  const [types, setTypes] = useState<string[]>(p.type ? [p.type] : []);
  const filterKey = JSON.stringify(filters);
  useEffect(() => {
    setStreamed([]);
    if (!live) return;
    return streamEvents(
      apiUrl('events/stream', filters),
      (e) => setStreamed((list) => [e as PeriscopeEvent, ...list].slice(0, MAX_SHOWN)),
      (s, why) => setStreamState(s === 'live' ? 'live' : `reconnecting (${why ?? 'stream ended'})`),
    );
  }, [live, filterKey]);
  const all = [...streamed, ...(stored.data?.events ?? [])];
  // the stream and the stored list overlap at the seam: one row per event
  const rows: PeriscopeEvent[] = [];
  const keys = new Set<string>();
  for (const e of all) {
    const k = `${e.node}\u0000${e.time}\u0000${e.type}\u0000${e.cgroup_id}\u0000${JSON.stringify(e)}`;
    if (keys.has(k)) continue;
    keys.add(k);
    rows.push(e);
    if (rows.length >= MAX_SHOWN) break;
  }
  useEffect(() => {
    let grew = false;
    for (const e of rows) {
      if (seen.current.has(e.type)) continue;
      seen.current.add(e.type);
      grew = true;
    }
    if (grew) setTypes([...seen.current].sort());
  });
  const set = (k: string, v: string): void => navigate({ ...route, params: { ...p, [k]: v } }, { replace: true });
  return (
    <>
      <div class="title-row">
        <h1>Events</h1>
        <span class="live" data-testid="live-state" aria-live="polite">
          {live ? `stream: ${streamState || 'connecting'}` : 'stream off'}
        </span>
        <Updated at={stored.updated} />
      </div>
      <form class="filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Type{' '}
          <select value={p.type ?? ''} onChange={(e) => set('type', (e.target as HTMLSelectElement).value)}>
            <option value="">all</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        {(['namespace', 'pod', 'node'] as const).map((k) => (
          <label key={k}>
            {k[0]!.toUpperCase() + k.slice(1)} <input value={p[k] ?? ''} size={16} onChange={(e) => set(k, (e.target as HTMLInputElement).value.trim())} placeholder="any" />
          </label>
        ))}
        <label>
          <input type="checkbox" checked={live} disabled={route.to !== ''} onChange={(e) => set('live', (e.target as HTMLInputElement).checked ? '' : 'off')} /> live
        </label>
      </form>
      <Card title="Feed" wide>
        <Loaded q={stored} what="events" isEmpty={() => rows.length === 0} empty="Widen the range or clear a filter; live events appear here as they arrive.">
          {() => (
            <Table
              rows={rows}
              rowKey={(e) => `${e.node}:${e.seq}:${e.type}:${e.time}`}
              caption="Events"
              testId="events"
              columns={[
                { key: 'time', title: 'Time', cell: (e) => <time dateTime={e.time}>{clock(e.time)}</time> },
                { key: 'type', title: 'Type', cell: (e) => <span class={`tag t-${e.type}`}>{e.type}</span> },
                { key: 'node', title: 'Node', cell: (e) => e.node },
                {
                  key: 'who',
                  title: 'Workload / pod',
                  cell: (e) => {
                    const name = entryName({ ...e, node: e.node });
                    return <a href={formatHash(go(route, 'workload', entryParams({ ...e, node: e.node })))}>{name}</a>;
                  },
                },
                { key: 'details', title: 'Details', cell: (e) => <span class="details">{eventDetails(e)}</span> },
              ]}
            />
          )}
        </Loaded>
      </Card>
    </>
  );
}
