/**
 * Profiles as every part of Periscope holds them: the profiler collector's drains, the agent's recent
 * windows, the hub's store, `periscope profile` and the UI all speak in stacks of frame names, root
 * first, each with a value.
 *
 * Frame names:
 *   - the first frame is the process (its command name, as `ps` shows it);
 *   - user frames are function names (`main`, `burn_a`, a JIT's name from a perf map), or
 *     `module+0xOFFSET` when no symbol covers the address (the offset is the file offset's view:
 *     address minus the mapping's load bias), or `[unknown]` when no mapping does;
 *   - kernel frames end in `_[k]` (as flame-graph tools mark them: `schedule_[k]`).
 * A name never holds `;` or a line break (cleanFrame), so a stack is also its folded text.
 *
 * Types: `cpu` counts on-CPU samples (each one stands for `period` nanoseconds: 1e9 / the sampling
 * rate); `offcpu` is the time in nanoseconds a task was blocked (asleep until a wakeup: locks, I/O,
 * sleeps), at the stack where it blocked; `runq` is the time in nanoseconds it then waited on a run
 * queue to get a CPU back (woken or preempted), at the same stack — shown apart from blocking.
 */

export const PROFILE_TYPES = ['cpu', 'offcpu', 'runq'] as const;
export type ProfileType = (typeof PROFILE_TYPES)[number];

export const isProfileType = (s: string): s is ProfileType => (PROFILE_TYPES as readonly string[]).includes(s);

/** What a value counts, per type, as pprof names its sample types. */
export const PROFILE_UNITS: Readonly<Record<ProfileType, { readonly sampleType: string; readonly unit: string }>> = {
  cpu: { sampleType: 'samples', unit: 'count' },
  offcpu: { sampleType: 'offcpu', unit: 'nanoseconds' },
  runq: { sampleType: 'runqueue', unit: 'nanoseconds' },
};

/** Whether a type's values count samples (each standing for `period` ns) rather than nanoseconds. */
export const countsSamples = (t: ProfileType): boolean => PROFILE_UNITS[t].unit === 'count';

export interface Stack {
  /** root first: the process, then its outermost function, ..., the leaf */
  readonly frames: readonly string[];
  readonly value: number;
}

/** A profile: stacks over a time range, for whatever selection asked for it. */
export interface Profile {
  readonly type: ProfileType;
  /** ms since the epoch: the range the stacks were counted in */
  readonly from: number;
  readonly to: number;
  /** cpu: nanoseconds each sample stands for (1e9 / Hz); offcpu and runq: 1 (values are nanoseconds) */
  readonly period: number;
  /** the sum of the values */
  readonly total: number;
  /** at most the builder's limit, largest first; what did not fit is summed in `dropped` */
  readonly stacks: readonly Stack[];
  /** stacks left out past the limit, and the value they held */
  readonly dropped?: { readonly stacks: number; readonly value: number };
}

/** The agent's and the hub's JSON answer to GET /api/v1/profiles (format=json). */
export type ProfileJson = Profile & { readonly unit: string; readonly sample_type: string };

/** A frame name as it may appear in a stack: no separator, no line break, bounded. */
export function cleanFrame(name: string): string {
  const s = name.replace(/[;\r\n]/g, '_').trim();
  return s.length > 512 ? s.slice(0, 512) : s || '[unknown]';
}

/** Sums stacks by their frames. Bounded: past `maxStacks` distinct stacks the rest are counted as dropped. */
export class ProfileBuilder {
  private readonly byKey = new Map<string, { frames: readonly string[]; value: number }>();
  private droppedStacks = 0;
  private droppedValue = 0;

  constructor(private readonly maxStacks = 100_000) {}

  add(frames: readonly string[], value: number): void {
    if (!(value > 0)) return;
    const key = frames.join(';');
    const s = this.byKey.get(key);
    if (s) s.value += value;
    else if (this.byKey.size < this.maxStacks) this.byKey.set(key, { frames, value });
    else {
      this.droppedStacks++;
      this.droppedValue += value;
    }
  }

  get size(): number {
    return this.byKey.size;
  }

  /** The profile, largest stacks first, at most `limit` of them (the rest in `dropped`). */
  build(type: ProfileType, from: number, to: number, period: number, limit = Infinity): Profile {
    const all = [...this.byKey.values()].sort((a, b) => b.value - a.value || (a.frames.join(';') < b.frames.join(';') ? -1 : 1));
    let total = 0;
    for (const s of all) total += s.value;
    total += this.droppedValue;
    const kept = all.slice(0, limit);
    let cutValue = this.droppedValue;
    for (const s of all.slice(kept.length)) cutValue += s.value;
    const cutStacks = this.droppedStacks + (all.length - kept.length);
    return {
      type,
      from,
      to,
      period,
      total,
      stacks: kept.map((s) => ({ frames: s.frames, value: s.value })),
      ...(cutStacks ? { dropped: { stacks: cutStacks, value: cutValue } } : {}),
    };
  }
}

/** Folded text: one `frame;frame;leaf value` line per stack, root first, as flame-graph tools read it. */
export function toFolded(p: Pick<Profile, 'stacks'>): string {
  let out = '';
  for (const s of p.stacks) out += `${s.frames.join(';')} ${s.value}\n`;
  return out;
}

/** Reads folded text back (for tests and diffs); a line that is not `stack value` is an error naming it. */
export function parseFolded(text: string): Stack[] {
  const out: Stack[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const m = /^(.*) (\d+(?:\.\d+)?)$/.exec(line);
    if (!m) throw new Error(`folded line ${i + 1} is not "frame;frame;... count": ${JSON.stringify(line.slice(0, 80))}`);
    out.push({ frames: m[1]!.split(';'), value: Number(m[2]) });
  });
  return out;
}

/** The JSON body the agent and hub answer with. */
export function profileJson(p: Profile): ProfileJson {
  const u = PROFILE_UNITS[p.type];
  return { ...p, unit: u.unit, sample_type: u.sampleType };
}
