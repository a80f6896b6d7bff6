/**
 * The service map: workloads, Services, nodes and external endpoints as a graph (Cytoscape.js,
 * loaded only here), edge width by bytes, colour by failed connections, retransmits or failed
 * requests, the request rate on edges the l7 collector saw requests on, a namespace filter, and a
 * click for an edge's numbers (its requests per protocol among them). The same edges as a table
 * below, for the keyboard.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Core, ElementDefinition } from 'cytoscape';
import { L7_PROTOCOLS, type EdgeEntry, type NetworkMapResponse } from '../../../wire/hub.js';
import { apiUrl, useQuery } from '../api.js';
import { Card, Loaded, Table, Updated, ViewLink } from '../components.js';
import { bytes, count, percent, rate, seconds } from '../format.js';
import { PROTOCOL_NAMES, errorRatio, requestTotals } from '../requests.js';
import { rangeQuery, type Route } from '../route.js';
import { endLabel } from '../names.js';
import { type Navigate } from '../app.js';

type End = EdgeEntry['source'] | EdgeEntry['target'];

/** One graph node per workload (else per named endpoint) and kind. */
export const endKey = (e: End): string => `${e.kind}:${e.namespace}/${e.workload || e.name}`;


/** How bad an edge is: failed connections or retransmits per connection, or failed requests per request, whichever is worse. */
export const badness = (x: Pick<EdgeEntry, 'connections' | 'failed' | 'retransmits' | 'requests'>): number =>
  Math.max(errorRatio(x), x.connections > 0 ? Math.max(x.failed / x.connections, Math.min(1, x.retransmits / x.connections / 10)) : x.failed > 0 ? 1 : 0);
const edgeColor = (b: number): string => (b >= 0.1 ? '#d9480f' : b >= 0.01 ? '#f08c00' : '#2b8a3e');

const port = (x: EdgeEntry): string => (x.target.port ? `:${x.target.port}` : '');

const CYTOSCAPE_STYLESHEET = '__________cytoscape_stylesheet';

const edgeKey = (x: EdgeEntry): string => `${endKey(x.source)}>${endKey(x.target)}:${x.target.port}`;

function Graph({ edges, onEdge, onWorkload }: { edges: EdgeEntry[]; onEdge: (k: string) => void; onWorkload: (e: End) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const cy = useRef<Core | undefined>(undefined);
  const [failed, setFailed] = useState<string | undefined>(undefined);
  const shape = edges.map(edgeKey).sort().join(' ');
  useEffect(() => {
    let gone = false;
    const ends = new Map<string, End>();
    for (const x of edges) {
      ends.set(endKey(x.source), x.source);
      ends.set(endKey(x.target), x.target);
    }
    const maxBytes = Math.max(1, ...edges.map((x) => x.bytes_sent + x.bytes_received));
    const text = getComputedStyle(document.body).color || '#222';
    const elements: ElementDefinition[] = [
      ...[...ends].map(([id, e]) => ({ data: { id, label: endLabel(e), kind: e.kind } })),
      ...edges.map((x) => ({
        data: {
          id: edgeKey(x),
          source: endKey(x.source),
          target: endKey(x.target),
          width: 1 + (7 * Math.log1p(x.bytes_sent + x.bytes_received)) / Math.log1p(maxBytes),
          color: edgeColor(badness(x)),
          // the request rate, on edges with requests
          ...(requestTotals(x).requests > 0 ? { label: rate(requestTotals(x).rate) } : {}),
        },
      })),
    ];
    import('cytoscape')
      .then(({ default: cytoscape }) => {
        if (gone || !box.current) return;
        // Cytoscape adds a <style> element for its container unless an element with this id exists;
        // the hub's Content-Security-Policy refuses inline styles, and styles.css has the rule
        if (!document.getElementById(CYTOSCAPE_STYLESHEET)) {
          const marker = document.createElement('meta');
          marker.id = CYTOSCAPE_STYLESHEET;
          document.head.append(marker);
        }
        cy.current = cytoscape({
          container: box.current,
          elements,
          minZoom: 0.2,
          maxZoom: 3,
          style: [
            { selector: 'node', style: { label: 'data(label)', 'font-size': 11, color: text, 'background-color': '#2f6fdf', width: 22, height: 22, 'text-valign': 'bottom', 'text-margin-y': 4 } },
            { selector: 'node[kind = "service"]', style: { shape: 'round-rectangle', 'background-color': '#7048e8' } },
            { selector: 'node[kind = "external"]', style: { shape: 'diamond', 'background-color': '#868e96' } },
            { selector: 'node[kind = "node"]', style: { shape: 'rectangle', 'background-color': '#495057' } },
            { selector: 'edge', style: { width: 'data(width)', 'line-color': 'data(color)', 'target-arrow-color': 'data(color)', 'target-arrow-shape': 'triangle', 'curve-style': 'bezier', opacity: 0.85 } },
            { selector: 'edge[label]', style: { label: 'data(label)', 'font-size': 10, color: text, 'text-rotation': 'autorotate', 'text-margin-y': -8 } },
            { selector: ':selected', style: { 'overlay-opacity': 0.2, 'overlay-color': '#2f6fdf' } },
          ],
          layout: ends.size <= 300 ? { name: 'cose', animate: false, nodeRepulsion: () => 8000, idealEdgeLength: () => 90 } : { name: 'concentric', animate: false },
        });
        cy.current.on('tap', 'edge', (ev) => onEdge((ev.target as { id(): string }).id()));
        cy.current.on('tap', 'node', (ev) => {
          const e = ends.get((ev.target as { id(): string }).id());
          if (e) onWorkload(e);
        });
        box.current.dataset.nodes = String(ends.size);
        box.current.dataset.edges = String(edges.length);
      })
      .catch((err: Error) => setFailed(err.message));
    return () => {
      gone = true;
      cy.current?.destroy();
      cy.current = undefined;
    };
  }, [shape]);
  if (failed) return <p class="state error">The graph could not be drawn ({failed}); the table below has every edge.</p>;
  return <div ref={box} class="graph" data-testid="graph" role="img" aria-label={`Service map: ${edges.length} edges; the table below lists them`} />;
}

/** An edge's requests per protocol (the l7 collector's), in the edge panel. */
function EdgeRequests({ edge }: { edge: EdgeEntry }) {
  const protocols = L7_PROTOCOLS.filter((p) => edge.requests[p]);
  if (!protocols.length) return <p class="note">No requests seen on this edge (the l7 collector follows the workloads given to --l7-select).</p>;
  return (
    <>
      {protocols.map((p) => {
        const r = edge.requests[p]!;
        return (
          <section key={p} class="edge-requests" data-testid={`edge-requests-${p}`} aria-label={`${PROTOCOL_NAMES[p]} requests`}>
            <h3>
              {PROTOCOL_NAMES[p]} <span class="kind">{r.side === 'client' ? 'as the client saw them' : 'as the server saw them'}</span>
            </h3>
            <dl class="facts">
              <dt>Requests</dt>
              <dd>
                {count(r.requests)} ({rate(r.rate)})
              </dd>
              <dt>Errors</dt>
              <dd class={r.errors > 0 ? 'bad' : undefined}>
                {count(r.errors)} ({percent(r.requests ? r.errors / r.requests : 0)})
              </dd>
              {p === 'http' || r.client_errors > 0 ? (
                <>
                  <dt>Client errors</dt>
                  <dd>{count(r.client_errors)}</dd>
                </>
              ) : null}
              <dt>p50 / p99</dt>
              <dd>
                {seconds(r.p50_seconds)} / {seconds(r.p99_seconds)}
              </dd>
            </dl>
          </section>
        );
      })}
    </>
  );
}

export function ServiceMap({ route, navigate }: { route: Route; navigate: Navigate }) {
  const ns = route.params.namespace ?? '';
  const map = useQuery<NetworkMapResponse>(apiUrl('network/map', { ...rangeQuery(route), limit: 500 }), route.refresh);
  const selected = route.params.edge ?? '';
  const all = map.data?.edges ?? [];
  const namespaces = [...new Set(all.flatMap((x) => [x.source.namespace, x.target.namespace]).filter(Boolean))].sort();
  const edges = ns ? all.filter((x) => x.source.namespace === ns || x.target.namespace === ns) : all;
  const pick = (k: string): void => navigate({ ...route, params: { ...route.params, edge: k } }, { replace: true });
  const chosen = edges.find((x) => edgeKey(x) === selected);
  return (
    <>
      <div class="title-row">
        <h1>Service map</h1>
        <label>
          Namespace{' '}
          <select value={ns} onChange={(e) => navigate({ ...route, params: { namespace: (e.target as HTMLSelectElement).value } })}>
            <option value="">all</option>
            {(namespaces.includes(ns) || !ns ? namespaces : [ns, ...namespaces]).map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <span class="legend" aria-hidden="true">
          <i class="sw-ok" /> healthy <i class="sw-warn" /> ≥1% failing <i class="sw-bad" /> ≥10% failing · width: bytes · label: requests/s
        </span>
        <Updated at={map.updated} />
      </div>
      <Loaded q={map} what="connections" isEmpty={() => edges.length === 0} empty="The network collector runs on each node: Nodes says whether it is up.">
        {() => (
          <div class="map">
            <Graph
              edges={edges}
              onEdge={pick}
              onWorkload={(e) => {
                if (e.workload) navigate({ ...route, view: 'workload', params: { level: 'workload', namespace: e.namespace, workload: e.workload } });
              }}
            />
            <aside class="edge-panel" aria-live="polite" data-testid="edge-panel">
              {chosen ? (
                <>
                  <h2>
                    {endLabel(chosen.source)} → {endLabel(chosen.target)}{port(chosen)}
                  </h2>
                  <dl class="facts">
                    <dt>Connections</dt>
                    <dd>{count(chosen.connections)}</dd>
                    <dt>Failed</dt>
                    <dd>
                      {count(chosen.failed)} ({percent(chosen.connections ? chosen.failed / chosen.connections : 0)})
                    </dd>
                    <dt>Sent</dt>
                    <dd>{bytes(chosen.bytes_sent)}</dd>
                    <dt>Received</dt>
                    <dd>{bytes(chosen.bytes_received)}</dd>
                    <dt>Retransmits</dt>
                    <dd>{count(chosen.retransmits)}</dd>
                    <dt>Seen by</dt>
                    <dd>{chosen.observed_by.join(', ')}</dd>
                  </dl>
                  <EdgeRequests edge={chosen} />
                  {chosen.source.workload ? (
                    <ViewLink route={route} view="workload" params={{ level: 'workload', namespace: chosen.source.namespace, workload: chosen.source.workload }}>
                      open the client
                    </ViewLink>
                  ) : null}
                </>
              ) : (
                <p>Click an edge (or pick one in the table) for its numbers; click a workload to open it.</p>
              )}
            </aside>
          </div>
        )}
      </Loaded>
      {edges.length ? (
        <Card title="Edges" wide>
          <Table
            rows={edges}
            rowKey={edgeKey}
            caption="Edges of the service map"
            testId="map-edges"
            initial="bytes"
            columns={[
              {
                key: 'edge',
                title: 'Client → server',
                cell: (x) => (
                  <button type="button" class="link" aria-pressed={edgeKey(x) === selected} onClick={() => pick(edgeKey(x))}>
                    {endLabel(x.source)} → {endLabel(x.target)}{port(x)}
                  </button>
                ),
              },
              { key: 'conns', title: 'Connections', numeric: true, cell: (x) => count(x.connections), sort: (x) => x.connections },
              { key: 'failed', title: 'Failed', numeric: true, cell: (x) => count(x.failed), sort: (x) => x.failed },
              { key: 'bytes', title: 'Bytes', numeric: true, cell: (x) => bytes(x.bytes_sent + x.bytes_received), sort: (x) => x.bytes_sent + x.bytes_received },
              { key: 'retx', title: 'Retransmits', numeric: true, cell: (x) => count(x.retransmits), sort: (x) => x.retransmits },
              { key: 'reqs', title: 'Requests/s', numeric: true, cell: (x) => (requestTotals(x).requests ? rate(requestTotals(x).rate) : '–'), sort: (x) => requestTotals(x).rate },
              { key: 'errs', title: 'Request errors', numeric: true, cell: (x) => (requestTotals(x).requests ? percent(errorRatio(x)) : '–'), sort: (x) => errorRatio(x) },
            ]}
          />
        </Card>
      ) : null}
    </>
  );
}
