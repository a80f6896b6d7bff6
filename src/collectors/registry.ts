/**
 * Every collector the agent knows, in the order they start. Adding a collector is one folder under
 * src/collectors/ and one line here: the agent, doctor, the event log, /metrics and the API read this
 * list and keep none of their own.
 */
import { type CollectorDefinition } from './contract.js';
import { processCollector } from './process/index.js';
import { cpu } from './cpu/index.js';
import { memory } from './memory/index.js';
import { network } from './network/index.js';

export const COLLECTORS: readonly CollectorDefinition[] = [
  processCollector,
  cpu,
  memory,
  network,
];

export const COLLECTOR_NAMES: readonly string[] = COLLECTORS.map((c) => c.name);

/** Every event type a registered collector declares. */
export const EVENT_TYPES: readonly string[] = COLLECTORS.flatMap((c) => c.events.map((e) => e.type));
