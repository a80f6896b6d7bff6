/**
 * The pure half of the UI's profile panel: stacks (root first) merged into a call tree, the tree laid
 * out as flame-graph rectangles (zoomed, with frames too narrow to see left out), self and total per
 * function, the change of each frame's share between two profiles, and search. No DOM and no
 * formatting: the Preact view (src/web/src/views/profile.tsx) draws what this computes, and the
 * Node tests (flame.test.ts) hold it to examples. It does not fetch profiles nor change them.
 */
import { type Stack } from './model.js';

/** The root's name: every stack goes through it. */
export const ROOT_NAME = 'all';

export interface FlameNode {
  readonly name: string;
  /** the value of every stack through this frame at this place in the tree */
  total: number;
  /** the value of the stacks that end here (this frame is their leaf) */
  self: number;
  /** by name, so that positions stay put between refreshes and between the two sides of a diff */
  readonly children: FlameNode[];
  /** diffTrees: the baseline's total at the same path (0 when the baseline never went there) */
  before?: number;
}

interface Building {
  node: FlameNode;
  kids: Map<string, Building>;
}

/** Merges stacks that share a prefix into one tree under ROOT_NAME; stacks without frames or value are skipped. */
export function buildTree(stacks: readonly Stack[]): FlameNode {
  const root: Building = { node: { name: ROOT_NAME, total: 0, self: 0, children: [] }, kids: new Map() };
  for (const s of stacks) {
    if (!(s.value > 0) || s.frames.length === 0) continue;
    let at = root;
    at.node.total += s.value;
    for (const name of s.frames) {
      let next = at.kids.get(name);
      if (!next) {
        next = { node: { name, total: 0, self: 0, children: [] }, kids: new Map() };
        at.kids.set(name, next);
      }
      next.node.total += s.value;
      at = next;
    }
    at.node.self += s.value;
  }
  // children in name order, built without recursion: a stack may be hundreds of frames deep
  const todo: Building[] = [root];
  for (let b = todo.pop(); b; b = todo.pop()) {
    const names = [...b.kids.keys()].sort();
    for (const n of names) {
      const k = b.kids.get(n)!;
      b.node.children.push(k.node);
      todo.push(k);
    }
  }
  return root.node;
}

/** The node at a path of names below the root, or the deepest one of the path that exists. */
export function nodeAt(root: FlameNode, path: readonly string[]): { node: FlameNode; path: string[] } {
  let node = root;
  const found: string[] = [];
  for (const name of path) {
    const next = node.children.find((c) => c.name === name);
    if (!next) break;
    node = next;
    found.push(name);
  }
  return { node, path: found };
}

export interface FlameRect {
  readonly node: FlameNode;
  /** the names from below the root to this frame, joined by ';' (a frame name never holds one); '' is the root */
  readonly key: string;
  /** 0 is the root */
  readonly depth: number;
  /** left edge and width as fractions of the graph's width */
  readonly x: number;
  readonly width: number;
  /** an ancestor of the zoomed frame (drawn full width, dimmed) */
  readonly ancestor: boolean;
}

/**
 * The rectangles of a tree zoomed into the frame at `zoom` (the root when empty): the zoomed frame
 * and its ancestors span the whole width, its descendants their share of it. A frame narrower than
 * `minWidth` (a fraction: one pixel of the graph) is left out with everything above it, which keeps
 * the count of rectangles near the graph's pixels, not the profile's stacks.
 */
export function layout(root: FlameNode, zoom: readonly string[], minWidth: number): { rects: FlameRect[]; depth: number; focus: FlameNode; zoom: string[] } {
  const at = nodeAt(root, zoom);
  const rects: FlameRect[] = [];
  // the path down to the zoomed frame
  let node = root;
  let key = '';
  rects.push({ node, key, depth: 0, x: 0, width: 1, ancestor: at.path.length > 0 });
  at.path.forEach((name, i) => {
    node = node.children.find((c) => c.name === name)!;
    key = key ? `${key};${name}` : name;
    rects.push({ node, key, depth: i + 1, x: 0, width: 1, ancestor: i + 1 < at.path.length });
  });
  let depth = at.path.length + 1;
  const focus = at.node;
  if (focus.total > 0) {
    const stack: { node: FlameNode; key: string; depth: number; x: number }[] = [{ node: focus, key, depth: at.path.length, x: 0 }];
    for (let p = stack.pop(); p; p = stack.pop()) {
      let x = p.x;
      for (const c of p.node.children) {
        const width = c.total / focus.total;
        if (width >= minWidth) {
          const k = p.key ? `${p.key};${c.name}` : c.name;
          rects.push({ node: c, key: k, depth: p.depth + 1, x, width, ancestor: false });
          depth = Math.max(depth, p.depth + 2);
          stack.push({ node: c, key: k, depth: p.depth + 1, x });
        }
        x += width;
      }
    }
  }
  return { rects, depth, focus, zoom: at.path };
}

export interface FunctionRow {
  readonly name: string;
  /** the value of the stacks this function is the leaf of */
  self: number;
  /** the value of the stacks it is anywhere in (once per stack, however deep it recurses) */
  total: number;
}

/** Self and total per function name, largest total first. */
export function functionTable(stacks: readonly Stack[]): FunctionRow[] {
  const rows = new Map<string, FunctionRow>();
  const row = (name: string): FunctionRow => {
    let r = rows.get(name);
    if (!r) rows.set(name, (r = { name, self: 0, total: 0 }));
    return r;
  };
  for (const s of stacks) {
    if (!(s.value > 0) || s.frames.length === 0) continue;
    for (const name of new Set(s.frames)) row(name).total += s.value;
    row(s.frames.at(-1)!).self += s.value;
  }
  return [...rows.values()].sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A copy of `current` where each node knows the baseline's total at the same path (`before`). */
export function diffTrees(current: FlameNode, baseline: FlameNode): FlameNode {
  const copy = (c: FlameNode, b: FlameNode | undefined): FlameNode => {
    const byName = new Map(b?.children.map((k) => [k.name, k]));
    return { name: c.name, total: c.total, self: c.self, before: b?.total ?? 0, children: c.children.map((k) => copy(k, byName.get(k.name))) };
  };
  // recursion as deep as the deepest stack (the wire caps stacks at 300 frames)
  return copy(current, baseline);
}

/** How a frame's share of the whole changed: its share now minus its share in the baseline (-1 to 1). */
export function shareDelta(node: Pick<FlameNode, 'total' | 'before'>, currentTotal: number, baselineTotal: number): number {
  const now = currentTotal > 0 ? node.total / currentTotal : 0;
  const then = baselineTotal > 0 ? (node.before ?? 0) / baselineTotal : 0;
  return now - then;
}

export interface FunctionDiffRow extends FunctionRow {
  /** the baseline's self and total of the function */
  readonly beforeSelf: number;
  readonly beforeTotal: number;
  /** its share of the total now minus its share in the baseline */
  readonly delta: number;
}

/** Functions of both profiles (one only in the baseline has self and total 0), with the change of their total share. */
export function diffFunctions(current: readonly FunctionRow[], currentTotal: number, baseline: readonly FunctionRow[], baselineTotal: number): FunctionDiffRow[] {
  const before = new Map(baseline.map((r) => [r.name, r]));
  const out: FunctionDiffRow[] = current.map((r) => {
    const b = before.get(r.name);
    return { name: r.name, self: r.self, total: r.total, beforeSelf: b?.self ?? 0, beforeTotal: b?.total ?? 0, delta: shareDelta({ total: r.total, before: b?.total ?? 0 }, currentTotal, baselineTotal) };
  });
  const seen = new Set(current.map((r) => r.name));
  for (const b of baseline) if (!seen.has(b.name)) out.push({ name: b.name, self: 0, total: 0, beforeSelf: b.self, beforeTotal: b.total, delta: shareDelta({ total: 0, before: b.total }, currentTotal, baselineTotal) });
  return out;
}

export type FrameTest = (name: string) => boolean;

/**
 * A search box's text as a test of frame names: a case-insensitive substring, or a regular
 * expression between slashes (`/^tcp_/`). Undefined for an empty box; an error for a bad expression.
 */
export function parseSearch(text: string): { test: FrameTest } | { error: string } | undefined {
  const q = text.trim();
  if (q === '') return undefined;
  const re = /^\/(.+)\/([a-z]*)$/.exec(q);
  if (re) {
    try {
      const r = new RegExp(re[1]!, re[2]!.includes('i') ? 'i' : '');
      return { test: (name) => r.test(name) };
    } catch (err) {
      return { error: `${q} is not a regular expression: ${(err as Error).message}` };
    }
  }
  const lower = q.toLowerCase();
  return { test: (name) => name.toLowerCase().includes(lower) };
}

/** The value of the stacks that hold at least one matching frame (the root's name is not a frame). */
export function matchedValue(root: FlameNode, test: FrameTest): number {
  let sum = 0;
  const todo = [...root.children];
  for (let n = todo.pop(); n; n = todo.pop()) {
    // a match counts its whole subtree once: frames above it are in the same stacks
    if (test(n.name)) sum += n.total;
    else todo.push(...n.children);
  }
  return sum;
}

/** Kernel frames end in `_[k]` (model.ts); the rest are the process and its user-space functions. */
export const isKernelFrame = (name: string): boolean => name.endsWith('_[k]');

const UNITS: Record<string, number> = { s: 1e3, m: 60e3, h: 3600e3, d: 86_400e3, w: 604_800e3 };

/**
 * The range of the same length just before `from`..`to` (the UI's range strings: `-15m`, RFC 3339,
 * `''` or `now` for now). A relative range stays relative (`-15m` → `-30m`..`-15m`) so that it moves
 * with the page's refresh; anything else is resolved against `now` into RFC 3339 times.
 */
export function previousRange(from: string, to: string, now: number): { from: string; to: string } {
  const rel = /^-(\d+)([smhdw])$/;
  const f = rel.exec(from);
  if (f && (to === '' || to === 'now')) return { from: `-${Number(f[1]) * 2}${f[2]}`, to: from };
  const at = (v: string): number => {
    if (v === '' || v === 'now') return now;
    const m = rel.exec(v);
    return m ? now - Number(m[1]) * UNITS[m[2]!]! : Date.parse(v);
  };
  const a = at(from);
  const b = at(to);
  return { from: new Date(a - (b - a)).toISOString(), to: new Date(a).toISOString() };
}
