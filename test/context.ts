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

export function testContext(): CollectorContext & { events: PeriscopeEvent[]; tree: CgroupTree } {
  const tree = new CgroupTree({ minWalkIntervalMs: 0, lookup: (root, id) => native().cgroupPath(root, id) });
  const enricher = new Enricher(tree, new Attributor({ node: 'test-node' }));
  const events: PeriscopeEvent[] = [];
  return {
    events,
    tree,
    maxCgroups: 4096,
    wallTime: (ns) => new Date(ns / 1e6).toISOString(),
    emit: ({ type, time, subject, ...fields }: NewEvent) => {
      events.push({ seq: events.length + 1, type, time, node: 'test-node', ...enricher.eventNames(subject), ...fields });
    },
  };
}
