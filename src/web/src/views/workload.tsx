/**
 * One workload, pod or container (`level`): its numbers over the range, its time series (CPU,
 * run-queue latency, context switches, OOM kills, process events, connections, bytes, retransmits,
 * DNS), its requests by route, gRPC method, SQL shape and Redis command as server and as client
 * (the l7 collector's), its profile (flame graph, icicle or table: profile.tsx), its edges in and
 * out, its pods and containers, and its recent events.
 */
import { type EdgeEntry, type NetworkMapResponse, type RequestRow, type RequestsResponse, type SeriesResponse, type WorkloadEntry, type WorkloadsResponse } from '../../../wire/hub.js';
import { type PeriscopeEvent } from '../../../wire/events.js';
import { apiUrl, useQuery, type Query } from '../api.js';
import { Chart, type Line } from '../chart.js';
import { Card, ErrorBox, Loaded, Loading, Table, Updated, ViewLink, type Column } from '../components.js';
import { bytes, clock, cores, count, percent, rate, seconds, type Unit } from '../format.js';
import { PROTOCOL_NAMES } from '../requests.js';
import { quantileSeries } from '../histogram.js';
import { entryName, entryParams, pageFilters, pageTitle, type Level } from '../names.js';
import { rangeQuery, type Route } from '../route.js';
import { type Navigate } from '../app.js';
import { eventDetails } from './events.js';
import { ProfilePanel } from './profile.js';

const toLines = (r: SeriesResponse | undefined, label: (l: Record<string, string>) => string, scale = 1): Line[] =>
  (r?.lines ?? []).map((l) => ({ label: label(l.labels), points: l.points.map(([t, v]) => [Date.parse(t) / 1000, v * scale] as [number, number]) }));

/** A chart of one or more series queries; shows loading, the hub's error or "no data" in place. */
function SeriesChart({ title, unit, queries, build, testId }: { title: string; unit: Unit; queries: Query<SeriesResponse>[]; build: (d: (SeriesResponse | undefined)[]) => Line[]; testId: string }) {
  const failed = queries.find((q) => q.error && !q.data);
  if (failed?.error) return <ErrorBox error={failed.error} what={title} />;
  if (queries.some((q) => q.loading && !q.data))
    return (
      <figure class="chart">
        <figcaption>{title}</figcaption>
        <Loading what={title} />
      </figure>
    );
  const lines = build(queries.map((q) => q.data));
  if (lines.every((l) => l.points.length === 0))
    return (
      <figure class="chart" data-testid={testId} data-points={0}>
        <figcaption>{title}</figcaption>
        <p class="state empty">No data in this range.</p>
      </figure>
    );
  const d = queries.find((q) => q.data)?.data;
  const range: [number, number] | undefined = d ? [Date.parse(d.from) / 1000, Date.parse(d.to) / 1000] : undefined;
  return <Chart title={title} unit={unit} lines={lines} testId={testId} {...(range ? { range } : {})} />;
}

/** The label that splits a page's lines: pods of a workload, containers of a pod. */
const SPLIT: Record<Level, string | undefined> = { workload: 'pod', pod: 'container', container: undefined };

export function Workload({ route, navigate }: { route: Route; navigate: Navigate }) {
  const p = route.params;
  const level: Level = p.level === 'pod' || p.level === 'container' ? p.level : 'workload';
  const filters = pageFilters({ ...p, level });
  const range = rangeQuery(route);
  const refresh = route.refresh;
  const split = SPLIT[level];
  const series = (metric: string, extra: Record<string, string | number> = {}): string => apiUrl('series', { metric, ...range, ...filters, ...extra });
  const group = level === 'workload' ? 'workload' : level === 'pod' ? 'pod' : 'container';
  const summary = useQuery<WorkloadsResponse>(apiUrl('workloads', { ...range, ...filters, group, limit: 1 }), refresh);
  const cpu = useQuery<SeriesResponse>(series('periscope_cpu_seconds_total', split ? { by: split, limit: 8 } : {}), refresh);
  const runq = useQuery<SeriesResponse>(series('periscope_runqueue_latency_seconds_bucket', { by: 'le', limit: 100 }), refresh);
  const ctx = useQuery<SeriesResponse>(series('periscope_context_switches_total'), refresh);
  const oom = useQuery<SeriesResponse>(series('periscope_oom_kills_total'), refresh);
  const execs = useQuery<SeriesResponse>(series('periscope_process_execs_total'), refresh);
  const exits = useQuery<SeriesResponse>(series('periscope_process_exits_total'), refresh);
  const conns = useQuery<SeriesResponse>(series('periscope_tcp_connections_total', { by: 'result', limit: 8 }), refresh);
  const sent = useQuery<SeriesResponse>(series('periscope_tcp_bytes_sent_total'), refresh);
  const recv = useQuery<SeriesResponse>(series('periscope_tcp_bytes_received_total'), refresh);
  const retx = useQuery<SeriesResponse>(series('periscope_tcp_retransmits_total'), refresh);
  const dns = useQuery<SeriesResponse>(series('periscope_dns_requests_total'), refresh);
  const pods = useQuery<WorkloadsResponse>(level === 'workload' ? apiUrl('workloads', { ...range, ...filters, group: 'pod', limit: 200 }) : undefined, refresh);
  const containers = useQuery<WorkloadsResponse>(level !== 'container' ? apiUrl('workloads', { ...range, ...filters, group: 'container', limit: 200 }) : undefined, refresh);
  const map = useQuery<NetworkMapResponse>(apiUrl('network/map', { ...range, limit: 500 }), refresh);
  const requests = useQuery<RequestsResponse>(level === 'workload' && p.namespace && p.workload ? apiUrl('requests', { ...range, namespace: p.namespace, workload: p.workload, limit: 200 }) : undefined, refresh);
  const events = useQuery<{ events: PeriscopeEvent[] }>(apiUrl('events', { ...range, ...filters, limit: 50 }), refresh);
  const e = summary.data?.workloads[0];

  const mine = (s: EdgeEntry['source'] | EdgeEntry['target']): boolean =>
    level === 'workload' ? s.namespace === p.namespace && s.workload === p.workload : level === 'pod' ? s.namespace === p.namespace && s.name === p.pod : false;
  const edgeCols = (side: 'source' | 'target'): Column<EdgeEntry>[] => [
    {
      key: 'peer',
      title: side === 'source' ? 'Client' : 'Server',
      cell: (x) => {
        const end = x[side];
        const label = `${end.kind === 'external' || end.kind === 'node' ? '' : end.namespace ? `${end.namespace}/` : ''}${end.workload || end.name}${side === 'target' && x.target.port ? `:${x.target.port}` : ''}`;
        return end.workload ? (
          <ViewLink route={route} view="workload" params={{ level: 'workload', namespace: end.namespace, workload: end.workload }}>
            {label}
          </ViewLink>
        ) : (
          <span>
            {label} <span class="kind">{end.kind}</span>
          </span>
        );
      },
    },
    { key: 'conns', title: 'Connections', numeric: true, cell: (x) => count(x.connections), sort: (x) => x.connections },
    { key: 'failed', title: 'Failed', numeric: true, cell: (x) => count(x.failed), sort: (x) => x.failed },
    { key: 'sent', title: 'Sent', numeric: true, cell: (x) => bytes(x.bytes_sent), sort: (x) => x.bytes_sent },
    { key: 'recv', title: 'Received', numeric: true, cell: (x) => bytes(x.bytes_received), sort: (x) => x.bytes_received },
    { key: 'retx', title: 'Retransmits', numeric: true, cell: (x) => count(x.retransmits), sort: (x) => x.retransmits },
  ];
  const requestCols: Column<RequestRow>[] = [
    { key: 'side', title: 'As', cell: (r) => r.side, sort: (r) => r.side },
    { key: 'protocol', title: 'Protocol', cell: (r) => PROTOCOL_NAMES[r.protocol], sort: (r) => r.protocol },
    { key: 'name', title: 'Route / method / query / command', cell: (r) => <span class="name-cell">{r.operation ? `${r.operation} ${r.name}` : r.name}</span>, sort: (r) => r.name },
    { key: 'rate', title: 'Rate', numeric: true, cell: (r) => rate(r.rate), sort: (r) => r.rate },
    { key: 'errors', title: 'Errors', numeric: true, cell: (r) => <span class={r.errors > 0 ? 'bad' : undefined}>{percent(r.error_ratio)}</span>, sort: (r) => r.error_ratio },
    { key: 'p50', title: 'p50', numeric: true, cell: (r) => seconds(r.p50_seconds), sort: (r) => r.p50_seconds },
    { key: 'p99', title: 'p99', numeric: true, cell: (r) => seconds(r.p99_seconds), sort: (r) => r.p99_seconds },
    { key: 'requests', title: 'Requests', numeric: true, cell: (r) => count(r.requests), sort: (r) => r.requests },
  ];
  const memberCols = (lvl: Level): Column<WorkloadEntry>[] => [
    {
      key: 'name',
      title: lvl === 'pod' ? 'Pod' : 'Container (cgroup)',
      cell: (w) => (
        <ViewLink label={lvl === 'pod' ? undefined : w.cgroup} route={route} view="workload" params={entryParams(w, lvl)}>
          {lvl === 'pod' ? w.pod : w.container || w.cgroup.split('/').filter(Boolean).at(-1) || '/'}
        </ViewLink>
      ),
    },
    { key: 'node', title: 'Node', cell: (w) => w.node },
    { key: 'cpu', title: 'CPU (avg)', numeric: true, cell: (w) => cores(w.cpu_cores), sort: (w) => w.cpu_cores },
    { key: 'p99', title: 'Run-queue p99', numeric: true, cell: (w) => seconds(w.runqueue_latency_p99_seconds), sort: (w) => w.runqueue_latency_p99_seconds },
    { key: 'oom', title: 'OOM kills', numeric: true, cell: (w) => count(w.oom_kills), sort: (w) => w.oom_kills },
    { key: 'execs', title: 'Execs', numeric: true, cell: (w) => count(w.execs), sort: (w) => w.execs },
  ];
  const crumbs = [
    p.namespace ? (
      <ViewLink key="ns" route={route} view="overview" params={{ namespace: p.namespace }}>
        {p.namespace}
      </ViewLink>
    ) : null,
    e && level !== 'workload' && e.workload ? (
      <ViewLink key="w" route={route} view="workload" params={entryParams(e, 'workload')}>
        {e.workload}
      </ViewLink>
    ) : null,
    e && level === 'container' && e.pod ? (
      <ViewLink key="p" route={route} view="workload" params={entryParams(e, 'pod')}>
        {e.pod}
      </ViewLink>
    ) : null,
  ].filter(Boolean);
  return (
    <>
      <div class="title-row">
        <h1>{pageTitle({ ...p, level })}</h1>
        {crumbs.length ? <nav class="crumbs" aria-label="Up">{crumbs}</nav> : null}
        <Updated at={summary.updated} />
      </div>
      <Loaded q={summary} what="this workload" isEmpty={(d) => d.workloads.length === 0} empty="Widen the range, or check on Nodes that its node's agent is up.">
        {() => (
          <div class="stats" data-testid="summary">
            {(
              [
                ['CPU (avg)', cores(e!.cpu_cores)],
                ['CPU time', seconds(e!.cpu_seconds)],
                ['Run-queue p50 / p99', `${seconds(e!.runqueue_latency_p50_seconds)} / ${seconds(e!.runqueue_latency_p99_seconds)}`],
                ['Context switches', count(e!.context_switches)],
                ['Execs / exits', `${count(e!.execs)} / ${count(e!.exits)}`],
                ['OOM kills', count(e!.oom_kills)],
                ['TCP connections', count(e!.tcp_connections)],
                ['Sent / received', `${bytes(e!.tcp_bytes_sent)} / ${bytes(e!.tcp_bytes_received)}`],
                ['Retransmits', count(e!.tcp_retransmits)],
                ['Nodes', e!.nodes.join(', ') || '–'],
              ] as const
            ).map(([label, value]) => (
              <div class="stat" key={label}>
                <span class="label">{label}</span>
                <span class="value">{value}</span>
              </div>
            ))}
          </div>
        )}
      </Loaded>
      <div class="charts">
        <SeriesChart title="CPU" unit="cores" testId="chart-cpu" queries={[cpu]} build={([d]) => toLines(d, (l) => (split ? l[split] || 'other' : 'cores'))} />
        <SeriesChart
          title="Run-queue latency"
          unit="seconds"
          testId="chart-runq"
          queries={[runq]}
          build={([d]) => {
            const buckets = (d?.lines ?? []).map((l) => ({ le: l.labels.le ?? '', points: l.points.map(([t, v]) => [Date.parse(t) / 1000, v] as [number, number]) }));
            return [
              { label: 'p50', points: quantileSeries(0.5, buckets) },
              { label: 'p99', points: quantileSeries(0.99, buckets) },
            ];
          }}
        />
        <SeriesChart title="Context switches" unit="rate" testId="chart-ctx" queries={[ctx]} build={([d]) => toLines(d, () => 'switches/s')} />
        <SeriesChart title="OOM kills" unit="rate" testId="chart-oom" queries={[oom]} build={([d]) => toLines(d, () => 'OOM kills/s')} />
        <SeriesChart title="Process events" unit="rate" testId="chart-proc" queries={[execs, exits]} build={([a, b]) => [...toLines(a, () => 'execs/s'), ...toLines(b, () => 'exits/s')]} />
        <SeriesChart title="TCP connections" unit="rate" testId="chart-conns" queries={[conns]} build={([d]) => toLines(d, (l) => l.result || 'all')} />
        <SeriesChart title="TCP bytes" unit="byte_rate" testId="chart-bytes" queries={[sent, recv]} build={([a, b]) => [...toLines(a, () => 'sent'), ...toLines(b, () => 'received')]} />
        <SeriesChart title="TCP retransmits" unit="rate" testId="chart-retx" queries={[retx]} build={([d]) => toLines(d, () => 'retransmits/s')} />
        <SeriesChart title="DNS queries" unit="rate" testId="chart-dns" queries={[dns]} build={([d]) => toLines(d, () => 'queries/s')} />
      </div>
      <ProfilePanel route={route} navigate={navigate} filters={filters} />
      <div class="grid">
        {level === 'workload' ? (
          <Card title="Requests" id="requests" wide>
            <Loaded q={requests} what="requests" isEmpty={(d) => d.rows.length === 0} empty="The l7 collector counts requests of the workloads given to --l7-select (HTTP, gRPC, PostgreSQL, Redis).">
              {(d) => (
                <Table
                  rows={d.rows}
                  columns={requestCols}
                  rowKey={(r) => `${r.side}|${r.protocol}|${r.operation}|${r.name}`}
                  initial="requests"
                  caption="Requests by route, method, query and command, as server and as client"
                  testId="requests"
                />
              )}
            </Loaded>
          </Card>
        ) : null}
        <Card title="Edges out (this workload is the client)" id="edges-out">
          <Loaded q={map} what="outbound connections" isEmpty={(d) => !d.edges.some((x) => mine(x.source))} empty="It connected to nothing.">
            {(d) => <Table rows={d.edges.filter((x) => mine(x.source))} columns={edgeCols('target')} rowKey={(x) => JSON.stringify([x.target, x.source])} initial="conns" caption="Outbound edges" testId="edges-out" />}
          </Loaded>
        </Card>
        <Card title="Edges in (this workload is the server)" id="edges-in">
          <Loaded q={map} what="inbound connections" isEmpty={(d) => !d.edges.some((x) => mine(x.target))} empty="Nothing connected to it.">
            {(d) => <Table rows={d.edges.filter((x) => mine(x.target))} columns={edgeCols('source')} rowKey={(x) => JSON.stringify([x.source, x.target])} initial="conns" caption="Inbound edges" testId="edges-in" />}
          </Loaded>
        </Card>
        {level === 'workload' ? (
          <Card title="Pods" id="pods">
            <Loaded q={pods} what="pods" isEmpty={(d) => d.workloads.length === 0} empty="Widen the range.">
              {(d) => <Table rows={d.workloads} columns={memberCols('pod')} rowKey={(w) => entryName(w, 'pod')} initial="cpu" caption="Pods" testId="pods" />}
            </Loaded>
          </Card>
        ) : null}
        {level !== 'container' ? (
          <Card title="Containers" id="containers">
            <Loaded q={containers} what="containers" isEmpty={(d) => d.workloads.length === 0} empty="Widen the range.">
              {(d) => <Table rows={d.workloads} columns={memberCols('container')} rowKey={(w) => entryName(w, 'container')} initial="cpu" caption="Containers" testId="containers" />}
            </Loaded>
          </Card>
        ) : null}
        <Card title="Recent events" id="recent-events" wide>
          <Loaded q={events} what="events" isEmpty={(d) => d.events.length === 0} empty="Events lists the whole cluster's.">
            {(d) => (
              <Table
                rows={d.events}
                rowKey={(x) => `${x.node}:${x.seq}:${x.type}`}
                caption="Recent events"
                testId="recent-events"
                columns={[
                  { key: 'time', title: 'Time', cell: (x) => <time dateTime={x.time}>{clock(x.time)}</time> },
                  { key: 'type', title: 'Type', cell: (x) => <span class={`tag t-${x.type}`}>{x.type}</span> },
                  { key: 'where', title: 'Pod / cgroup', cell: (x) => (x.pod ? `${x.pod}${x.container ? ` / ${x.container}` : ''}` : x.cgroup) },
                  { key: 'details', title: 'Details', cell: (x) => <span class="details">{eventDetails(x)}</span> },
                ]}
              />
            )}
          </Loaded>
        </Card>
      </div>
      <p class="note">Charts show rates per second over each step of the range (CPU in cores); the numbers at the top cover the whole range.</p>
    </>
  );
}
