/**
 * Overview: the cluster at a glance. Nodes, namespaces, and the top workloads by CPU, run-queue
 * latency, OOM kills, process churn, network bytes and network failures; a click opens the workload.
 * One overview query (the hub ranks every list from one pass over its per-workload sums), the nodes
 * and the service map (for failures by client).
 */
import { type NetworkMapResponse, type NodesResponse, type OverviewResponse, type WorkloadEntry } from '../../../wire/hub.js';
import { useEffect } from 'preact/hooks';
import { apiUrl, useQuery } from '../api.js';
import { Card, Loaded, Table, Updated, ViewLink, type Column } from '../components.js';
import { bytes, cores, count, seconds } from '../format.js';
import { endLabel, entryName, entryParams } from '../names.js';
import { rangeQuery, type Route } from '../route.js';
import { type Navigate } from '../app.js';

function nameColumn(route: Route): Column<WorkloadEntry> {
  return {
    key: 'name',
    title: 'Workload',
    cell: (e) => (
      <ViewLink route={route} view="workload" params={entryParams(e)}>
        {entryName(e)}
      </ViewLink>
    ),
  };
}

const num = (key: string, title: string, get: (e: WorkloadEntry) => number | null, fmt: (v: number | null) => string): Column<WorkloadEntry> => ({
  key,
  title,
  numeric: true,
  cell: (e) => fmt(get(e)),
  sort: get,
});

interface Failing {
  key: string;
  namespace: string;
  workload: string;
  name: string;
  failed: number;
  connections: number;
  retransmits: number;
}

/** Failed connections and retransmits summed per client, from the service map's edges. */
function failingClients(map: NetworkMapResponse): Failing[] {
  const by = new Map<string, Failing>();
  for (const e of map.edges) {
    const s = e.source;
    const key = `${s.kind}\u0000${s.namespace}\u0000${s.workload || s.name}`;
    let f = by.get(key);
    if (!f) by.set(key, (f = { key, namespace: s.namespace, workload: s.workload, name: endLabel(s), failed: 0, connections: 0, retransmits: 0 }));
    f.failed += e.failed;
    f.connections += e.connections;
    f.retransmits += e.retransmits;
  }
  return [...by.values()].filter((f) => f.failed > 0 || f.retransmits > 0).sort((a, b) => b.failed - a.failed || b.retransmits - a.retransmits).slice(0, 10);
}

export function Overview({ route, navigate }: { route: Route; navigate: Navigate }) {
  const ns = route.params.namespace ?? '';
  const filter = ns ? { namespace: ns } : {};
  const overview = useQuery<OverviewResponse>(apiUrl('overview', { ...rangeQuery(route), ...filter, limit: 10 }), route.refresh);
  const nodes = useQuery<NodesResponse>(apiUrl('nodes'), route.refresh);
  // the map reads every connection series, the overview only per-workload sums: the map waits for
  // the overview so that the top lists (what the page is for) are not slowed by it
  const map = useQuery<NetworkMapResponse>(overview.data || overview.error ? apiUrl('network/map', { ...rangeQuery(route), ...filter, limit: 500 }) : undefined, route.refresh);
  // marks for the first-page benchmark (bench/ui.ts): when the top lists, then the failures, first show data
  useEffect(() => {
    if (overview.data && performance.getEntriesByName('periscope:overview-shown').length === 0) performance.mark('periscope:overview-shown');
  }, [overview.data]);
  useEffect(() => {
    if (map.data && performance.getEntriesByName('periscope:failures-shown').length === 0) performance.mark('periscope:failures-shown');
  }, [map.data]);
  const name = nameColumn(route);
  const top = (key: keyof OverviewResponse['top'], title: string, columns: Column<WorkloadEntry>[], hint: string, id: string, what = title.toLowerCase()) => (
    <Card title={title} id={id}>
      <Loaded q={overview} what={what} isEmpty={(d) => d.top[key].length === 0} empty={hint}>
        {(d) => <Table rows={d.top[key]} columns={[name, ...columns]} rowKey={(e) => entryName(e)} caption={title} testId={id} />}
      </Loaded>
    </Card>
  );
  const connected = nodes.data?.nodes.filter((n) => n.connected).length ?? 0;
  return (
    <>
      <div class="title-row">
        <h1>Overview</h1>
        <label>
          Namespace{' '}
          <select value={ns} onChange={(e) => navigate({ ...route, params: { ...route.params, namespace: (e.target as HTMLSelectElement).value } })}>
            <option value="">all</option>
            {(overview.data?.namespaces ?? (ns ? [ns] : [])).map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <Updated at={overview.updated} />
      </div>
      <div class="stats" data-testid="stats">
        <div class="stat">
          <span class="label">Nodes</span>
          <ViewLink route={route} view="nodes">
            <span class="value">{nodes.data ? `${connected} / ${nodes.data.nodes.length}` : '…'}</span>
          </ViewLink>
          <span class="sub">connected</span>
        </div>
        <div class="stat">
          <span class="label">Namespaces</span>
          <span class="value">{overview.data ? overview.data.namespaces.length : '…'}</span>
        </div>
        <div class="stat">
          <span class="label">Workloads</span>
          <span class="value">{overview.data ? count(overview.data.workloads) : '…'}</span>
          <span class="sub">with samples in range</span>
        </div>
      </div>
      <div class="grid">
        {top('cpu_seconds', 'Top CPU', [num('cores', 'CPU (avg)', (e) => e.cpu_cores, cores), num('cpu', 'CPU time', (e) => e.cpu_seconds, seconds)], 'Workloads appear once an agent ships their CPU time.', 'top-cpu')}
        {top(
          'runqueue_latency_p99_seconds',
          'Run-queue latency p99',
          [num('p99', 'p99', (e) => e.runqueue_latency_p99_seconds, seconds), num('p50', 'p50', (e) => e.runqueue_latency_p50_seconds, seconds)],
          'Nothing waited for a CPU.',
          'top-runq',
          'run-queue latency',
        )}
        {top('oom_kills', 'OOM kills', [num('oom', 'OOM kills', (e) => e.oom_kills, count)], 'No process was killed for memory.', 'top-oom', 'OOM kills')}
        {top(
          'execs',
          'Process churn (execs, exits)',
          [num('execs', 'Execs', (e) => e.execs, count), num('exits', 'Exits', (e) => e.exits, count)],
          'No process started or ended.',
          'top-churn',
        )}
        {top(
          'tcp_bytes_sent',
          'Network bytes',
          [num('sent', 'Sent', (e) => e.tcp_bytes_sent, bytes), num('recv', 'Received', (e) => e.tcp_bytes_received, bytes), num('conns', 'Connections', (e) => e.tcp_connections, count)],
          'The network collector may be off on some nodes: see Nodes.',
          'top-net',
        )}
        <Card title="Network failures" id="top-fail">
          <Loaded q={map} what="network failures" isEmpty={(d) => failingClients(d).length === 0} empty="Every connection succeeded without a retransmit.">
            {(d) => (
              <Table
                rows={failingClients(d)}
                rowKey={(f) => f.key}
                caption="Network failures by client"
                testId="top-fail"
                columns={[
                  {
                    key: 'name',
                    title: 'Client',
                    cell: (f) =>
                      f.workload ? (
                        <ViewLink route={route} view="workload" params={{ level: 'workload', namespace: f.namespace, workload: f.workload }}>
                          {f.namespace}/{f.workload}
                        </ViewLink>
                      ) : (
                        f.name
                      ),
                  },
                  { key: 'failed', title: 'Failed', numeric: true, cell: (f) => count(f.failed), sort: (f) => f.failed },
                  { key: 'conns', title: 'Connections', numeric: true, cell: (f) => count(f.connections), sort: (f) => f.connections },
                  { key: 'retx', title: 'Retransmits', numeric: true, cell: (f) => count(f.retransmits), sort: (f) => f.retransmits },
                ]}
              />
            )}
          </Loaded>
        </Card>
      </div>
    </>
  );
}
