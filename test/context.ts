/** A collector context for tests: events go to an array, cgroups are named by a real tree walk. */
import { CgroupTree } from '../src/inventory/cgroups.js';
import { native } from '../src/kernel/native.js';
import { type CollectorContext } from '../src/collectors/types.js';
import { type PeriscopeEvent, type NewEvent } from '../src/wire/events.js';

export function testContext(): CollectorContext & { events: PeriscopeEvent[]; tree: CgroupTree } {
  const tree = new CgroupTree({ minWalkIntervalMs: 0, lookup: (root, id) => native().cgroupPath(root, id) });
  const events: PeriscopeEvent[] = [];
  return {
    events,
    tree,
    node: 'test-node',
    maxCgroups: 4096,
    cgroupPath: (id) => tree.resolve(id)?.path,
    wallTime: (ns) => new Date(ns / 1e6).toISOString(),
    emit: (e: NewEvent) => {
      events.push({ seq: events.length + 1, namespace: '', pod: '', container: '', workload_kind: '', workload: '', ...e });
    },
  };
}
