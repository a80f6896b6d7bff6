/**
 * What an agent ships to the hub: one batch every few seconds, gzip-compressed JSON, POSTed to
 * /api/v1/ingest with the agent's bearer token. The schema is versioned (`version`) and checked on
 * both sides with the same zod schema: the agent validates what it builds (a bug is found at the
 * source, not in the hub's store), the hub validates what it receives (a bad batch gets a 400 that
 * says which field, and stores nothing).
 *
 * Delivery is at least once; application is exactly once. Every batch carries the agent's identity —
 * its node and an `instance` id made at each start — and a sequence number that grows by one per batch
 * of that instance. The hub applies a batch whose seq is above the last one it applied for the
 * instance and acknowledges (without applying) any other, so a batch replayed after a lost reply or a
 * hub restart counts once. The agent sends one batch at a time, in order.
 *
 * Metrics travel as the series the agent exports on /metrics (same names, labels and cumulative
 * values) plus each counter's and histogram's `delta`: what it grew by since the previous batch of the
 * instance. A series seen for the first time in an instance carries delta = value, which is how
 * Prometheus reads a counter reset: an agent restart starts its counters from zero, the first batch
 * of the new instance counts what they reached, and nothing is counted twice or negatively. Summing
 * deltas over a time range is then exact, whatever the hub missed of the cumulative values.
 * Network edges travel as the series of metrics declared with `peer: true` (their peer_* labels name
 * the other end).
 */
import { z } from 'zod';
import { ProfileWireSchema } from './profiles.js';

export const WIRE_VERSION = 1;
/** Most bytes of a compressed batch the hub reads, and of the JSON it inflates to. */
export const MAX_BATCH_BYTES = 8 << 20;
export const MAX_BATCH_JSON_BYTES = 64 << 20;

const name = z.string().min(1).max(200);
const labelValue = z.string().max(4096);
const rfc3339 = z.iso.datetime({ offset: true });
const count = z.number().nonnegative().finite();

export const HistogramValueSchema = z.object({
  /** cumulative counts at each of the family's finite bucket bounds */
  cumulative: z.array(count).max(200),
  count,
  sum: z.number().finite(),
});
export type HistogramWire = z.infer<typeof HistogramValueSchema>;

export const SeriesSchema = z.object({
  /** label values, in the order of the family's `labels` */
  labels: z.array(labelValue).max(64),
  /** a counter's or gauge's value (cumulative for a counter) */
  value: z.number().finite().optional(),
  /** a histogram's cumulative value */
  hist: HistogramValueSchema.optional(),
  /** counters: increase since this instance's previous batch (= value the first time the series appears) */
  delta: count.optional(),
  /** histograms: the same, per bucket, count and sum */
  hist_delta: HistogramValueSchema.optional(),
});
export type SeriesWire = z.infer<typeof SeriesSchema>;

export const FamilySchema = z
  .object({
    name: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/).max(200),
    type: z.enum(['counter', 'gauge', 'histogram']),
    help: z.string().max(2000),
    labels: z.array(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/).max(200)).max(64),
    /** histograms: finite upper bounds, ascending */
    buckets: z.array(z.number().finite()).max(200).optional(),
    series: z.array(SeriesSchema).max(1_000_000),
  })
  .superRefine((f, ctx) => {
    if (f.type === 'histogram' && !f.buckets) ctx.addIssue({ code: 'custom', message: 'a histogram needs buckets' });
    f.series.forEach((s, i) => {
      if (s.labels.length !== f.labels.length) ctx.addIssue({ code: 'custom', path: ['series', i, 'labels'], message: `has ${s.labels.length} values for ${f.labels.length} labels` });
      if (f.type === 'histogram') {
        if (!s.hist || !s.hist_delta) ctx.addIssue({ code: 'custom', path: ['series', i], message: 'a histogram series needs hist and hist_delta' });
        else if (s.hist.cumulative.length !== f.buckets!.length || s.hist_delta.cumulative.length !== f.buckets!.length)
          ctx.addIssue({ code: 'custom', path: ['series', i, 'hist'], message: `needs one count per bucket (${f.buckets!.length})` });
      } else if (s.value === undefined) ctx.addIssue({ code: 'custom', path: ['series', i, 'value'], message: 'is missing' });
      else if (f.type === 'counter' && s.delta === undefined) ctx.addIssue({ code: 'custom', path: ['series', i, 'delta'], message: 'a counter series needs its delta' });
    });
  });
export type FamilyWire = z.infer<typeof FamilySchema>;

/** An event as the agent's log holds it: the envelope of src/wire/events.ts and the type's own fields. */
export const EventSchema = z.looseObject({
  seq: z.number().int().nonnegative(),
  type: name,
  time: rfc3339,
  node: z.string().max(253),
  cgroup: z.string().max(4096),
  cgroup_id: z.number().int().nonnegative(),
  namespace: z.string().max(253),
  pod: z.string().max(253),
  container: z.string().max(253),
  workload_kind: z.string().max(253),
  workload: z.string().max(253),
});

export const AgentIdentitySchema = z.object({
  node: z.string().min(1).max(253),
  /** made at each start of the agent process: a restart is a new instance */
  instance: z.string().regex(/^[A-Za-z0-9-]{8,64}$/),
  version: z.string().max(64),
  started: rfc3339,
  /** the cgroup subtree the agent is restricted to ("/" for all) */
  cgroup_subtree: z.string().max(4096),
});
export type AgentIdentity = z.infer<typeof AgentIdentitySchema>;

export const AgentStatusSchema = z.object({
  collectors: z.array(z.object({ name, alternative: z.string().max(100), up: z.boolean(), error: z.string().max(2000).optional() })).max(100),
  /** what the kernel supports: feature name → supported */
  capabilities: z.record(z.string().max(100), z.boolean()),
  kernel: z.string().max(200),
});
export type AgentStatus = z.infer<typeof AgentStatusSchema>;

export const BatchSchema = z.object({
  version: z.literal(WIRE_VERSION),
  agent: AgentIdentitySchema,
  seq: z.number().int().min(1),
  /** when the agent read the values */
  time: rfc3339,
  status: AgentStatusSchema,
  families: z.array(FamilySchema).max(1000),
  events: z.array(EventSchema).max(100_000),
  /** what the agent's shipper dropped since the instance started (cumulative): whole batches while
   * its buffer was full (their counter deltas were folded into the next batch, so counts stay exact),
   * and the events and gauge samples those batches held */
  dropped: z.object({ batches: count, events: count, samples: count }),
  /** profiles of the windows the agent drained since its previous batch (src/wire/profiles.ts);
   * absent from agents older than profiling */
  profiles: z.array(ProfileWireSchema).max(20_000).optional(),
});
export type Batch = z.infer<typeof BatchSchema>;

/** The hub's answer to a batch: applied, or a duplicate it had already applied (both are success). */
export interface IngestReply {
  applied: boolean;
  seq: number;
}

/**
 * Checks a parsed batch. A wrong or missing version is named first, so an agent newer or older than
 * the hub learns that rather than a list of field errors. Returns the batch or one line saying what is wrong.
 */
export function checkBatch(json: unknown): { ok: true; batch: Batch } | { ok: false; error: string } {
  const v = (json as { version?: unknown } | null)?.version;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return { ok: false, error: 'a batch is a JSON object' };
  if (v !== WIRE_VERSION) return { ok: false, error: `wire version ${JSON.stringify(v ?? null)} is not supported: this hub speaks version ${WIRE_VERSION}` };
  const r = BatchSchema.safeParse(json);
  if (r.success) return { ok: true, batch: r.data };
  const first = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(batch)'}: ${i.message}`);
  return { ok: false, error: `malformed batch: ${first.join('; ')}${r.error.issues.length > 3 ? ` (and ${r.error.issues.length - 3} more)` : ''}` };
}
