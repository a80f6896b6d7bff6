/**
 * Every collector the agent knows, in the order they start. Adding a collector is one folder under
 * src/collectors/ and one line here: the agent, doctor, the event log, /metrics and the API read this
 * list and keep none of their own.
 */
import { type CollectorDefinition, type TraceDef } from './contract.js';
import { processCollector } from './process/index.js';
import { cpu } from './cpu/index.js';
import { memory } from './memory/index.js';
import { network } from './network/index.js';
import { l7 } from './l7/index.js';
import { profiler } from './profiler/index.js';

export const COLLECTORS: readonly CollectorDefinition[] = [
  processCollector,
  cpu,
  memory,
  network,
  l7,
  profiler,
];

export const COLLECTOR_NAMES: readonly string[] = COLLECTORS.map((c) => c.name);

/** Every event type a registered collector declares. */
export const EVENT_TYPES: readonly string[] = COLLECTORS.flatMap((c) => c.events.map((e) => e.type));

/** A kind of `periscope trace`, with the event types it shows. */
export interface TraceKind extends TraceDef {
  readonly types: readonly string[];
}

/** Every kind of `periscope trace` the registered collectors declare. */
export const TRACE_KINDS: readonly TraceKind[] = COLLECTORS.flatMap((c) =>
  (c.traces ?? []).map((t) => ({ ...t, types: c.events.filter((e) => e.trace === t.name).map((e) => e.type) })),
);
