/**
 * Nodes: each node's agent (version, kernel, when last heard from), its collectors (up, or the error
 * and the alternative it runs), its kernel's capability table (what `periscope doctor` prints) and
 * what its shipper dropped; and the hub's own health.
 */
import { type HubHealth, type NodeEntry, type NodesResponse } from '../../../wire/hub.js';
import { apiUrl, useQuery } from '../api.js';
import { Card, Loaded, Updated } from '../components.js';
import { ago, bytes, count } from '../format.js';
import { type Route } from '../route.js';

function NodeCard({ n }: { n: NodeEntry }) {
  const caps = Object.entries(n.capabilities).sort(([a], [b]) => (a < b ? -1 : 1));
  const lost = n.dropped.batches + n.dropped.events + n.dropped.samples;
  return (
    <Card title={n.node} wide>
      <dl class="facts" data-testid={`node-${n.node}`}>
        <dt>State</dt>
        <dd>
          <span class={n.connected ? 'tag ok' : 'tag bad'}>{n.connected ? 'connected' : 'silent'}</span> last report {ago(n.last_seen)}
        </dd>
        <dt>Agent</dt>
        <dd>
          {n.version} (instance {n.instance.slice(0, 8)}, started {ago(n.started)})
        </dd>
        <dt>Kernel</dt>
        <dd>{n.kernel || '–'}</dd>
        <dt>Cgroups</dt>
        <dd>{n.cgroup_subtree || '/'}</dd>
        <dt>Lost</dt>
        <dd class={lost ? 'warn' : undefined}>
          {lost ? `${count(n.dropped.batches)} batches, ${count(n.dropped.events)} events, ${count(n.dropped.samples)} samples dropped by its shipper` : 'nothing dropped'}
        </dd>
      </dl>
      <div class="two">
        <table aria-label={`Collectors of ${n.node}`}>
          <thead>
            <tr>
              <th scope="col">Collector</th>
              <th scope="col">Running as</th>
              <th scope="col">State</th>
            </tr>
          </thead>
          <tbody>
            {n.collectors.map((c) => (
              <tr key={c.name}>
                <td>{c.name}</td>
                <td>{c.alternative || '–'}</td>
                <td>{c.up ? <span class="tag ok">up</span> : <span class="tag bad" title={c.error}>down{c.error ? `: ${c.error}` : ''}</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <table aria-label={`Kernel capabilities of ${n.node}`}>
          <thead>
            <tr>
              <th scope="col">Kernel feature</th>
              <th scope="col">Supported</th>
            </tr>
          </thead>
          <tbody>
            {caps.map(([k, v]) => (
              <tr key={k}>
                <td>{k}</td>
                <td>{v ? <span class="tag ok">yes</span> : <span class="tag bad">no</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Card>
  );
}

export function Nodes({ route }: { route: Route }) {
  const nodes = useQuery<NodesResponse>(apiUrl('nodes'), route.refresh);
  const health = useQuery<HubHealth>(apiUrl('health'), route.refresh);
  return (
    <>
      <div class="title-row">
        <h1>Nodes</h1>
        <Updated at={nodes.updated} />
      </div>
      <Card title="Hub" wide>
        <Loaded q={health} what="the hub's health" isEmpty={() => false} empty="">
          {(h) => (
            <dl class="facts" data-testid="hub-health">
              <dt>Status</dt>
              <dd>
                <span class={h.status === 'ok' ? 'tag ok' : 'tag bad'}>{h.status}</span> version {h.version}
              </dd>
              <dt>Store</dt>
              <dd>
                {h.store.kind} at {h.store.location}, {bytes(h.store.bytes)}
                {h.store.error ? <span class="warn"> — {h.store.error}</span> : null}
              </dd>
              <dt>Ingest</dt>
              <dd>
                {count(h.batches_applied)} batches applied, {count(h.batches_duplicate)} duplicates, {count(h.batches_rejected)} rejected; {count(h.samples_ingested)} samples
              </dd>
              <dt>Agents</dt>
              <dd>{h.agents_connected} connected</dd>
            </dl>
          )}
        </Loaded>
      </Card>
      <Loaded q={nodes} what="nodes" isEmpty={(d) => d.nodes.length === 0} empty="No agent has reported yet: start `periscope agent --hub URL --token-file F` on each node.">
        {(d) => (
          <div class="nodes">
            {d.nodes.map((n) => (
              <NodeCard key={n.node} n={n} />
            ))}
          </div>
        )}
      </Loaded>
    </>
  );
}
