/**
 * The workload page's Profile panel: the hub's profile of the page's selection over the page's time
 * range (GET /api/v1/profiles), as a flame graph (root at the bottom), an icicle (root at the top) or
 * a table of functions (self and total). Search highlights frames and says what share of the total
 * holds one; "compare with" fetches a second range and colours each frame by the change of its share
 * (red grew, blue shrank). The type, view and comparison live in the URL; search and zoom do not.
 * Tree building, layout, diff and search are pure (src/profiles/flame.ts); this only draws.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { type ProfileJson, type ProfileType } from '../../../profiles/model.js';
import { buildTree, diffFunctions, diffTrees, functionTable, isKernelFrame, layout, matchedValue, parseSearch, previousRange, shareDelta, type FlameNode, type FlameRect, type FrameTest, type FunctionDiffRow } from '../../../profiles/flame.js';
import { apiUrl, useQuery } from '../api.js';
import { Empty, ErrorBox, Loading, Table, type Column } from '../components.js';
import { clock, count, percent, seconds, sig } from '../format.js';
import { rangeQuery, validTime, type Route } from '../route.js';
import { type Navigate } from '../app.js';

const TYPES: [ProfileType, string][] = [
  ['cpu', 'CPU'],
  ['offcpu', 'Off-CPU'],
  ['runq', 'Run queue'],
];
const VIEWS = [
  ['flame', 'Flame'],
  ['icicle', 'Icicle'],
  ['table', 'Table'],
] as const;
type ViewName = (typeof VIEWS)[number][0];
type Compare = '' | 'prev' | 'range';

/** Height of one frame's row, in pixels. */
const ROW = 18;
/** A frame narrower than this (pixels) gets no label. */
const LABEL_MIN_PX = 28;
/** The table shows this many functions at most (the largest by total): the rest are a count. */
const MAX_TABLE_ROWS = 1000;
/** Share changes under this are "the same" (colours and data-diff). */
const SAME = 0.0005;

/** A value as people read it: cpu counts samples, each `period` ns of CPU; offcpu and runq are ns. */
function valueText(v: number, p: Pick<ProfileJson, 'type' | 'period'>): string {
  return p.type === 'cpu' ? `${count(v)} samples (${seconds((v * p.period) / 1e9)})` : seconds(v / 1e9);
}
const shortValue = (v: number, p: Pick<ProfileJson, 'type' | 'period'>): string => (p.type === 'cpu' ? seconds((v * p.period) / 1e9) : seconds(v / 1e9));
const points = (d: number): string => `${d > 0 ? '+' : d < 0 ? '−' : '±'}${sig(Math.abs(d) * 100)} pts`;
const whatOf = (t: ProfileType): string => (t === 'cpu' ? 'samples' : t === 'offcpu' ? 'off-CPU time' : 'run-queue time');

/** A stable small number per name: frames keep their colour between renders. */
function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) % 1000;
}

function frameColour(r: FlameRect, diff: number | undefined, scale: number, matched: boolean): string {
  if (matched) return 'hsl(292 75% 68%)';
  if (diff !== undefined) {
    if (Math.abs(diff) < SAME) return 'hsl(220 8% 82%)';
    const s = Math.min(1, Math.abs(diff) / scale);
    return diff > 0 ? `hsl(0 85% ${88 - 30 * s}%)` : `hsl(220 85% ${88 - 30 * s}%)`;
  }
  if (r.depth === 0) return 'hsl(220 8% 78%)';
  const h = hash(r.node.name);
  // kernel frames cool (teal), user frames warm (red to yellow), as flame-graph tools set them apart
  return isKernelFrame(r.node.name) ? `hsl(${165 + (h % 25)} 50% ${62 + (h % 10)}%)` : `hsl(${8 + (h % 42)} 85% ${60 + (h % 12)}%)`;
}

interface Tip {
  rect: FlameRect;
  x: number;
  y: number;
}

/** The hovered frame's full name, value and share; its own state, so hovering redraws only it. */
function Tooltip({ bind, profile, base }: { bind: { current: ((t: Tip | undefined) => void) | undefined }; profile: ProfileJson; base: ProfileJson | undefined }) {
  const [tip, setTip] = useState<Tip | undefined>(undefined);
  useEffect(() => {
    bind.current = setTip;
    return () => {
      bind.current = undefined;
    };
  }, [bind]);
  if (!tip) return null;
  const n = tip.rect.node;
  const left = Math.min(tip.x + 14, innerWidth - 380);
  return (
    <div class="flame-tip" role="tooltip" data-testid="flame-tip" style={{ left: `${Math.max(4, left)}px`, top: `${tip.y + 14}px` }}>
      <div class="name">{n.name}</div>
      <div>
        {valueText(n.total, profile)} · {percent(profile.total > 0 ? n.total / profile.total : 0)} of all
      </div>
      {n.self > 0 && n.children.length > 0 ? <div>self {valueText(n.self, profile)}</div> : null}
      {base ? (
        <div>
          share {percent(base.total > 0 ? (n.before ?? 0) / base.total : 0)} → {percent(profile.total > 0 ? n.total / profile.total : 0)} ({points(shareDelta(n, profile.total, base.total))})
        </div>
      ) : null}
      <div class="muted">{isKernelFrame(n.name) ? 'kernel frame' : tip.rect.depth === 1 ? 'process' : tip.rect.depth === 0 ? 'every stack' : 'user frame'} · click to zoom</div>
    </div>
  );
}

/** The flame graph (or icicle) of a tree: DOM rectangles, only those at least a pixel wide. */
function FlameGraph({ tree, profile, base, icicle, test, zoom, setZoom }: { tree: FlameNode; profile: ProfileJson; base: ProfileJson | undefined; icicle: boolean; test: FrameTest | undefined; zoom: string[]; setZoom: (z: string[]) => void }) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(1200);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    setWidth(el.clientWidth || 1200);
    const ro = new ResizeObserver(() => setWidth(el.clientWidth || 1200));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const l = useMemo(() => layout(tree, zoom, 1 / Math.max(1, width)), [tree, zoom, width]);
  const tip = useRef<((t: Tip | undefined) => void) | undefined>(undefined);
  const deltas = base ? l.rects.map((r) => shareDelta(r.node, profile.total, base.total)) : undefined;
  // the strongest change among the frames shown is the deepest colour (changes under 1 point stay pale)
  const scale = deltas ? Math.max(0.01, ...deltas.map(Math.abs)) : 1;
  const at = (e: Event): FlameRect | undefined => {
    const el = (e.target as HTMLElement | null)?.closest<HTMLElement>('[data-i]');
    return el ? l.rects[Number(el.dataset.i)] : undefined;
  };
  return (
    <>
      <div
        ref={box}
        class={`flame${icicle ? ' icicle' : ''}`}
        role="group"
        aria-label={icicle ? 'Icicle graph' : 'Flame graph'}
        data-testid="flame"
        data-frames={l.rects.length}
        style={{ height: `${l.depth * ROW}px` }}
        onMouseMove={(e) => {
          const r = at(e);
          tip.current?.(r ? { rect: r, x: e.clientX, y: e.clientY } : undefined);
        }}
        onMouseLeave={() => tip.current?.(undefined)}
        onClick={(e) => {
          const r = at(e);
          if (r) setZoom(r.key === '' ? [] : r.key.split(';'));
        }}
      >
        {l.rects.map((r, i) => {
          const matched = test !== undefined && r.depth > 0 && test(r.node.name);
          const d = deltas?.[i];
          const top = icicle ? r.depth * ROW : (l.depth - 1 - r.depth) * ROW;
          return (
            <div
              key={r.key}
              data-i={i}
              data-name={r.node.name}
              data-match={matched ? 'true' : undefined}
              data-diff={d === undefined ? undefined : d >= SAME ? 'grew' : d <= -SAME ? 'shrank' : 'same'}
              class={`fr${isKernelFrame(r.node.name) ? ' kernel' : ''}${r.ancestor ? ' ancestor' : ''}${matched ? ' match' : ''}`}
              style={{ left: `${r.x * 100}%`, width: `${r.width * 100}%`, top: `${top}px`, background: frameColour(r, d, scale, matched) }}
            >
              {r.width * width >= LABEL_MIN_PX ? r.node.name : ''}
            </div>
          );
        })}
      </div>
      <Tooltip bind={tip} profile={profile} base={base} />
    </>
  );
}

function FunctionTable({ profile, base, test }: { profile: ProfileJson; base: ProfileJson | undefined; test: FrameTest | undefined }) {
  const rows = useMemo(() => {
    const cur = functionTable(profile.stacks);
    return base ? diffFunctions(cur, profile.total, functionTable(base.stacks), base.total) : cur.map((r) => ({ ...r, beforeSelf: 0, beforeTotal: 0, delta: 0 }));
  }, [profile, base]);
  const shown = (test ? rows.filter((r) => test(r.name)) : rows).slice().sort((a, b) => b.total - a.total || b.beforeTotal - a.beforeTotal);
  const share = (v: number): string => percent(profile.total > 0 ? v / profile.total : 0);
  const columns: Column<FunctionDiffRow>[] = [
    { key: 'name', title: 'Function', cell: (r) => <span class={`name-cell${isKernelFrame(r.name) ? ' kernel' : ''}`}>{r.name}</span>, sort: (r) => r.name },
    { key: 'self', title: 'Self', numeric: true, cell: (r) => <span title={valueText(r.self, profile)}>{shortValue(r.self, profile)}</span>, sort: (r) => r.self },
    { key: 'selfp', title: 'Self %', numeric: true, cell: (r) => share(r.self), sort: (r) => r.self },
    { key: 'total', title: 'Total', numeric: true, cell: (r) => <span title={valueText(r.total, profile)}>{shortValue(r.total, profile)}</span>, sort: (r) => r.total },
    { key: 'totalp', title: 'Total %', numeric: true, cell: (r) => share(r.total), sort: (r) => r.total },
  ];
  if (base)
    columns.push({
      key: 'delta',
      title: 'Δ share',
      numeric: true,
      cell: (r) => <span class={r.delta >= SAME ? 'grew' : r.delta <= -SAME ? 'shrank' : undefined}>{points(r.delta)}</span>,
      sort: (r) => r.delta,
    });
  return (
    <>
      <Table rows={shown.slice(0, MAX_TABLE_ROWS)} columns={columns} rowKey={(r) => r.name} initial="total" caption="Functions by self and total" testId="profile-table" />
      {shown.length > MAX_TABLE_ROWS ? (
        <p class="note">
          The {count(MAX_TABLE_ROWS)} largest of {count(shown.length)} functions by total; search to find the others.
        </p>
      ) : null}
    </>
  );
}

/** Buttons of which one is chosen (aria-pressed), as a labelled group. */
function Choice<T extends string>({ label, options, value, set }: { label: string; options: readonly (readonly [T, string])[]; value: T; set: (v: T) => void }) {
  return (
    <div class="seg" role="group" aria-label={label}>
      {options.map(([v, text]) => (
        <button key={v} type="button" aria-pressed={v === value} onClick={() => set(v)}>
          {text}
        </button>
      ))}
    </div>
  );
}

export function ProfilePanel({ route, navigate, filters }: { route: Route; navigate: Navigate; filters: Record<string, string> }) {
  const p = route.params;
  const type: ProfileType = TYPES.some(([t]) => t === p.ptype) ? (p.ptype as ProfileType) : 'cpu';
  const view: ViewName = VIEWS.some(([v]) => v === p.pview) ? (p.pview as ViewName) : 'flame';
  const compare: Compare = p.pcmp === 'prev' || p.pcmp === 'range' ? p.pcmp : '';
  const set = (changes: Record<string, string>): void => {
    const params = { ...p, ...changes };
    for (const [k, v] of Object.entries(changes)) if (v === '') delete params[k];
    navigate({ ...route, params }, { replace: true });
  };
  const [search, setSearch] = useState('');
  const [zoom, setZoom] = useState<string[]>([]);
  const [cmpFrom, setCmpFrom] = useState(p.pcmp_from ?? '');
  const [cmpTo, setCmpTo] = useState(p.pcmp_to ?? '');
  useEffect(() => setZoom([]), [type]);

  // "just before" is worked out once per range: a relative range stays relative and moves with refresh
  const before = useMemo(() => previousRange(route.from, route.to, Date.now()), [route.from, route.to]);
  const baseRange =
    compare === 'prev' ? before : compare === 'range' && p.pcmp_from && validTime(p.pcmp_from) && (!p.pcmp_to || validTime(p.pcmp_to)) ? { from: p.pcmp_from, ...(p.pcmp_to ? { to: p.pcmp_to } : {}) } : undefined;
  const q = useQuery<ProfileJson>(apiUrl('profiles', { type, ...rangeQuery(route), ...filters, format: 'json' }), route.refresh);
  const bq = useQuery<ProfileJson>(baseRange ? apiUrl('profiles', { type, ...baseRange, ...filters, format: 'json' }) : undefined, route.refresh);
  const profile = q.data;
  const base = baseRange ? bq.data : undefined;

  const tree = useMemo(() => (profile ? buildTree(profile.stacks) : undefined), [profile]);
  const baseTree = useMemo(() => (base ? buildTree(base.stacks) : undefined), [base]);
  const shown = useMemo(() => (tree && baseTree ? diffTrees(tree, baseTree) : tree), [tree, baseTree]);
  const parsed = parseSearch(search);
  const test = parsed && 'test' in parsed ? parsed.test : undefined;
  const matched = useMemo(() => (tree && test ? matchedValue(tree, test) : 0), [tree, search]);

  const validCmp = validTime(cmpFrom) && (cmpTo === '' || validTime(cmpTo));
  return (
    <section class="card profile" aria-label="Profile" id="profile" data-testid="profile">
      <h2>Profile</h2>
      <div class="profile-bar">
        <Choice label="Profile type" options={TYPES} value={type} set={(t) => set({ ptype: t === 'cpu' ? '' : t })} />
        <Choice label="Profile view" options={VIEWS} value={view} set={(v) => set({ pview: v === 'flame' ? '' : v })} />
        <label>
          Search{' '}
          <input type="search" value={search} placeholder="function, or /regexp/" size={24} aria-invalid={parsed !== undefined && 'error' in parsed} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Compare with{' '}
          <select value={compare} aria-label="Compare with" onChange={(e) => set({ pcmp: (e.target as HTMLSelectElement).value })}>
            <option value="">nothing</option>
            <option value="prev">the same length just before</option>
            <option value="range">a chosen range…</option>
          </select>
        </label>
        {compare === 'range' ? (
          <form
            class="custom"
            aria-label="Range to compare with"
            onSubmit={(e) => {
              e.preventDefault();
              if (validCmp) set({ pcmp_from: cmpFrom, pcmp_to: cmpTo === 'now' ? '' : cmpTo });
            }}
          >
            <label>
              from <input value={cmpFrom} size={20} aria-invalid={!validTime(cmpFrom)} placeholder="-2h or 2026-12-01T10:00:00Z" onInput={(e) => setCmpFrom((e.target as HTMLInputElement).value.trim())} />
            </label>
            <label>
              to <input value={cmpTo} size={20} aria-invalid={!(cmpTo === '' || validTime(cmpTo))} placeholder="now" onInput={(e) => setCmpTo((e.target as HTMLInputElement).value.trim())} />
            </label>
            <button type="submit" disabled={!validCmp}>
              Compare
            </button>
          </form>
        ) : null}
        {zoom.length && view !== 'table' ? (
          <button type="button" onClick={() => setZoom([])}>
            Reset zoom
          </button>
        ) : null}
      </div>
      {profile === undefined ? (
        q.error ? (
          <ErrorBox error={q.error} what="the profile" />
        ) : (
          <Loading what="the profile" />
        )
      ) : (
        <>
          {q.error ? <ErrorBox error={q.error} what="the profile" /> : null}
          {profile.total === 0 || !shown ? (
            <Empty what="samples" hint="Widen the range, or check on Nodes that this node's agent runs the profiler collector." />
          ) : (
            <>
              <p class="profile-facts" data-testid="profile-facts">
                {valueText(profile.total, profile)} from {clock(new Date(profile.from).toISOString())} to {clock(new Date(profile.to).toISOString())}
                {profile.dropped ? ` · ${count(profile.dropped.stacks)} smaller stacks (${percent(profile.dropped.value / profile.total)}) left out` : ''}
                {parsed && 'error' in parsed ? <span class="warn"> · {parsed.error}</span> : null}
                {test ? (
                  <strong class="matched" data-testid="profile-matched">
                    {' '}
                    · {percent(matched / profile.total)} of {whatOf(type)} {type === 'cpu' ? 'match' : 'matches'}
                  </strong>
                ) : null}
              </p>
              {baseRange ? (
                <div class="profile-facts diff-legend" data-testid="profile-compare">
                  {bq.error && !bq.data ? (
                    <ErrorBox error={bq.error} what="the range to compare with" />
                  ) : !base ? (
                    'Loading the range to compare with…'
                  ) : (
                    <>
                      Compared with {clock(new Date(base.from).toISOString())} to {clock(new Date(base.to).toISOString())} ({valueText(base.total, base)}
                      {base.total === 0 ? ': no samples there, so everything grew' : ''}): <i class="sw-grew" /> share grew <i class="sw-shrank" /> share shrank
                    </>
                  )}
                </div>
              ) : null}
              {view === 'table' ? (
                <FunctionTable profile={profile} base={base} test={test} />
              ) : (
                <FlameGraph tree={shown} profile={profile} base={base} icicle={view === 'icicle'} test={test} zoom={zoom} setZoom={setZoom} />
              )}
            </>
          )}
        </>
      )}
    </section>
  );
}
