/**
 * Profiles on the wire (agent → hub, inside an ingest batch): one entry per profile type and cgroup
 * per window the agent drained, its frames given once in a table and each stack as indices into it.
 * Checked with the same schema on both sides, like the rest of the batch (src/wire/ingest.ts).
 */
import { z } from 'zod';
import { PROFILE_TYPES, type Profile, type Stack } from '../profiles/model.js';
import { type Attribution } from './events.js';

/** Most frames in a stack (the kernel's 127 of each half, the process and room to spare). */
export const MAX_STACK_DEPTH = 300;

export const ProfileLabelsSchema = z.object({
  cgroup: z.string().max(4096),
  namespace: z.string().max(253),
  pod: z.string().max(253),
  container: z.string().max(253),
  workload_kind: z.string().max(253),
  workload: z.string().max(253),
});
export type ProfileLabels = z.infer<typeof ProfileLabelsSchema> & Attribution;

export const ProfileWireSchema = z
  .object({
    type: z.enum(PROFILE_TYPES),
    from: z.iso.datetime({ offset: true }),
    to: z.iso.datetime({ offset: true }),
    period: z.number().positive().finite(),
    labels: ProfileLabelsSchema,
    frames: z.array(z.string().min(1).max(512)).max(200_000),
    stacks: z.array(z.object({ f: z.array(z.number().int().nonnegative()).min(1).max(MAX_STACK_DEPTH), v: z.number().positive().finite() })).max(100_000),
  })
  .superRefine((p, ctx) => {
    p.stacks.forEach((s, i) => {
      if (s.f.some((x) => x >= p.frames.length)) ctx.addIssue({ code: 'custom', path: ['stacks', i, 'f'], message: `a frame index is past the ${p.frames.length} frames` });
    });
  });
export type ProfileWire = z.infer<typeof ProfileWireSchema>;

/** A profile of one cgroup as the agent ships it. */
export function toWire(p: Profile, labels: ProfileLabels): ProfileWire {
  const index = new Map<string, number>();
  const frames: string[] = [];
  const stacks = p.stacks.map((s) => ({
    f: s.frames.slice(0, MAX_STACK_DEPTH).map((name) => {
      let i = index.get(name);
      if (i === undefined) {
        i = frames.length;
        frames.push(name);
        index.set(name, i);
      }
      return i;
    }),
    v: s.value,
  }));
  return { type: p.type, from: new Date(p.from).toISOString(), to: new Date(p.to).toISOString(), period: p.period, labels, frames, stacks };
}

/** The stacks of a shipped profile, frames resolved. */
export function stacksOf(w: ProfileWire): Stack[] {
  return w.stacks.map((s) => ({ frames: s.f.map((i) => w.frames[i]!), value: s.v }));
}
