/**
 * Profiles in the hub: what a batch's profiles (src/wire/profiles.ts) must pass beyond the wire schema
 * before anything of the batch is stored, the store's rows they become (a row per stack: store.ts,
 * ProfileRow), and the Profile (src/profiles/model.ts) GET /api/v1/profiles answers with from what
 * the store summed. It does not read the store or speak HTTP (hub.ts does).
 */
import { type Profile } from '../profiles/model.js';
import { type ProfileQuery } from '../profiles/query.js';
import { type Batch } from '../wire/ingest.js';
import { type ProfileWire } from '../wire/profiles.js';
import { type ProfileRow, type ProfileStacks } from './store.js';

/**
 * Most stacks (rows of profile_stacks) one batch may hold, over all its profiles. The schema allows
 * 20,000 profiles of 100,000 stacks: a store must not take that in one write. An agent ships its
 * profiles every few seconds, a few thousand stacks at most; a batch past this is refused.
 */
export const MAX_BATCH_PROFILE_STACKS = 200_000;
/**
 * Most characters of folded stack text one batch may come to. Frames are indices on the wire (a few
 * bytes each) and names in the store (up to 512 characters each): without a bound a 64 MiB batch
 * could become gigabytes of rows.
 */
export const MAX_BATCH_PROFILE_TEXT = 128 << 20;

export interface ProfileRefusal {
  /** the reason as periscope_hub_batches_rejected_total counts it */
  reason: 'profile_stacks' | 'malformed';
  message: string;
  hint: string;
}

/**
 * The checks of a batch's profiles that the schema does not make: the stack rows and text a batch
 * may add to the store, a window that ends before it starts, and frame names that would break the
 * folded text (a ';' or a line break). Returns the first refusal, or undefined when the batch passes.
 */
export function checkProfiles(profiles: readonly ProfileWire[] | undefined): ProfileRefusal | undefined {
  if (!profiles?.length) return undefined;
  let stacks = 0;
  for (const p of profiles) stacks += p.stacks.length;
  if (stacks > MAX_BATCH_PROFILE_STACKS)
    return {
      reason: 'profile_stacks',
      message: `the batch holds ${stacks} profile stacks, more than the ${MAX_BATCH_PROFILE_STACKS} a batch may`,
      hint: 'ship profiles in smaller batches (a shorter --hub-interval) or keep fewer stacks per profile',
    };
  let text = 0;
  for (const [i, p] of profiles.entries()) {
    if (Date.parse(p.to) < Date.parse(p.from)) return malformed(`profiles.${i}.to: ${p.to} is before from (${p.from})`);
    const bad = p.frames.findIndex((f) => /[;\r\n]/.test(f));
    if (bad >= 0) return malformed(`profiles.${i}.frames.${bad}: a frame name holds ';' or a line break (${JSON.stringify(p.frames[bad]!.slice(0, 60))})`);
    const lengths = p.frames.map((f) => f.length);
    for (const s of p.stacks) {
      text += s.f.length;
      for (const f of s.f) text += lengths[f]!;
    }
  }
  if (text > MAX_BATCH_PROFILE_TEXT)
    return {
      reason: 'profile_stacks',
      message: `the batch's profile stacks come to ${text} characters of folded text, more than the ${MAX_BATCH_PROFILE_TEXT} a batch may`,
      hint: 'ship profiles in smaller batches (a shorter --hub-interval) or keep fewer stacks per profile',
    };
  return undefined;
}

const malformed = (message: string): ProfileRefusal => ({ reason: 'malformed', message: `malformed batch: ${message}`, hint: 'this is a bug in the agent that sent it: report it with the message' });

/** The rows of a (checked) batch's profiles: one per stack, at the window's end, on the batch's node. */
export function profileRows(batch: Batch): ProfileRow[] {
  const out: ProfileRow[] = [];
  const node = batch.agent.node;
  for (const p of batch.profiles ?? []) {
    const ts = Date.parse(p.to);
    const { namespace, pod, container, workload_kind, workload, cgroup } = p.labels;
    for (const s of p.stacks) {
      out.push({ ts, node, type: p.type, namespace, pod, container, workload_kind, workload, cgroup, stack: s.f.map((i) => p.frames[i]!).join(';'), value: s.v, period: p.period });
    }
  }
  return out;
}

/**
 * The answer of GET /api/v1/profiles from the store's sums. The period is the rows' (an agent's cpu
 * profiles all have the period of its sampling rate: the largest of them if agents differ); offcpu and
 * runq count nanoseconds (1).
 */
export function toProfile(q: Pick<ProfileQuery, 'type' | 'from' | 'to'>, r: ProfileStacks): Profile {
  return {
    type: q.type,
    from: q.from,
    to: q.to,
    period: q.type === 'cpu' && r.period > 0 ? r.period : 1,
    total: r.total,
    stacks: r.stacks.map((s) => ({ frames: s.stack.split(';'), value: s.value })),
    ...(r.droppedStacks > 0 ? { dropped: { stacks: r.droppedStacks, value: r.droppedValue } } : {}),
  };
}
