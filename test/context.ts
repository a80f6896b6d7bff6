/**
 * A collector context for tests: events are named the way the agent names them (cgroup path and id
 * from a real tree walk, no Kubernetes) and kept in an array.
 */
import { CgroupTree } from '../src/inventory/cgroups.js';
import { native } from '../src/kernel/native.js';
import { type CollectorContext, type NewEvent } from '../src/collectors/contract.js';
import { Enricher } from '../src/agent/enrich.js';
import { Attributor } from '../src/inventory/attribution.js';
import { type PeriscopeEvent } from '../src/wire/events.js';

export function testContext(): CollectorContext & { events: PeriscopeEvent[]; tree: CgroupTree; names: Map<string, string> } {
  const tree = new CgroupTree({ minWalkIntervalMs: 0, lookup: (root, id) => native().cgroupPath(root, id) });
  const enricher = new Enricher(tree, new Attributor({ node: 'test-node' }));
  const events: PeriscopeEvent[] = [];
  const names = new Map<string, string>();
  return {
    events,
    tree,
    names,
    learnName: (addr, name) => void names.set(addr, name),
    maxCgroups: 4096,
    wallTime: (ns) => new Date(ns / 1e6).toISOString(),
    emit: ({ type, time, subject, peer, ...fields }: NewEvent) => {
      events.push({ seq: events.length + 1, type, time, node: 'test-node', ...enricher.eventNames(subject), ...fields, ...(peer ? { peer_addr: peer.addr, peer_port: peer.port ?? null, ...(peer.nat ? { backend_addr: peer.nat.addr, backend_port: peer.nat.port } : {}) } : {}) });
    },
  };
}
