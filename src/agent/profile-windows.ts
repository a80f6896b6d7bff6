/**
 * The agent's recent profiles: each drain of the profiling collectors is a window (its time range,
 * and stacks per cgroup and type, named like events), kept for `keepMs` and at most `maxStacks`
 * stacks in all (the oldest windows go first, counted). /api/v1/profiles merges the windows of a time
 * range; the shipper takes each window once for the hub.
 *
 * A window counts in a range when its middle is in it: the windows are a few seconds long, and a
 * `periscope profile --seconds N` run drains once at its start, so the window before ends there.
 */
import { ProfileBuilder, countsSamples, type Profile, type ProfileType, type Stack } from '../profiles/model.js';
import { matchesFilters, type ProfileQuery } from '../profiles/query.js';
import { toWire, type ProfileLabels, type ProfileWire } from '../wire/profiles.js';

export interface WindowEntry {
  readonly labels: ProfileLabels;
  readonly type: ProfileType;
  readonly period: number;
  readonly stacks: readonly Stack[];
}

interface Window {
  readonly from: number;
  readonly to: number;
  readonly entries: readonly WindowEntry[];
  readonly stacks: number;
  readonly seq: number;
}

export interface ProfileWindowsOptions {
  /** how long windows are kept (ms) */
  keepMs?: number;
  /** most stacks held in all windows */
  maxStacks?: number;
  /** most windows waiting for the shipper; older ones are dropped (counted) */
  maxUnshipped?: number;
}

export class ProfileWindows {
  private readonly windows: Window[] = [];
  private held = 0;
  private seq = 0;
  private shippedSeq = 0;
  private readonly keepMs: number;
  private readonly maxStacks: number;
  private readonly maxUnshipped: number;
  /** windows (and their stacks) dropped before their time: memory was full */
  readonly evicted = { windows: 0, stacks: 0 };
  /** windows the shipper never took (it fell behind by more than maxUnshipped) */
  unshippedDropped = 0;

  constructor(opts: ProfileWindowsOptions = {}) {
    this.keepMs = opts.keepMs ?? 15 * 60_000;
    this.maxStacks = opts.maxStacks ?? 100_000;
    this.maxUnshipped = opts.maxUnshipped ?? 60;
  }

  add(from: number, to: number, entries: readonly WindowEntry[]): void {
    const stacks = entries.reduce((n, e) => n + e.stacks.length, 0);
    this.windows.push({ from, to, entries, stacks, seq: ++this.seq });
    this.held += stacks;
    this.expire(to);
  }

  private expire(now: number): void {
    while (this.windows.length > 0) {
      const w = this.windows[0]!;
      const old = w.to < now - this.keepMs;
      const full = this.held > this.maxStacks && this.windows.length > 1;
      if (!old && !full) break;
      this.windows.shift();
      this.held -= w.stacks;
      if (!old) {
        this.evicted.windows++;
        this.evicted.stacks += w.stacks;
      }
    }
  }

  get stacksHeld(): number {
    return this.held;
  }

  /** The stacks of the windows in the query's range whose labels pass its filters, merged. */
  query(q: ProfileQuery, node: string): Profile {
    const b = new ProfileBuilder(q.limit * 4);
    // samples stand for the period they were taken at; nanoseconds for themselves
    const sampled = countsSamples(q.type);
    let period = sampled ? 0 : 1;
    for (const w of this.windows) {
      const mid = (w.from + w.to) / 2;
      if (mid < q.from || mid >= q.to) continue;
      for (const e of w.entries) {
        if (e.type !== q.type || !matchesFilters({ ...e.labels, node }, q.filters)) continue;
        if (sampled) period = Math.max(period, e.period);
        for (const s of e.stacks) b.add(s.frames, s.value);
      }
    }
    return b.build(q.type, q.from, q.to, period || 1, q.limit);
  }

  /** Windows not shipped yet, as the wire carries them (one entry per cgroup and type); each once. */
  takeUnshipped(): ProfileWire[] {
    const out: ProfileWire[] = [];
    const waiting = this.windows.filter((w) => w.seq > this.shippedSeq);
    const lost = Math.max(0, this.seq - this.shippedSeq - waiting.length) + Math.max(0, waiting.length - this.maxUnshipped);
    this.unshippedDropped += lost;
    for (const w of waiting.slice(-this.maxUnshipped)) {
      for (const e of w.entries) {
        if (e.stacks.length === 0) continue;
        out.push(toWire({ type: e.type, from: w.from, to: w.to, period: e.period, total: 0, stacks: e.stacks }, e.labels));
      }
    }
    this.shippedSeq = this.seq;
    return out;
  }
}
