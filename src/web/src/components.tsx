/** Pieces every view uses: states that say what to do, sortable tables, cards, links. */
import { type ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { type ApiError, type Query } from './api.js';
import { formatHash, go, type Route, type View } from './route.js';
import { ago } from './format.js';

export function Loading({ what }: { what: string }) {
  return (
    <p class="state loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

export function Empty({ what, hint }: { what: string; hint: string }) {
  return (
    <div class="state empty" role="status">
      <strong>No {what} in this range.</strong> {hint}
    </div>
  );
}

export function ErrorBox({ error, what }: { error: ApiError; what: string }) {
  return (
    <div class="state error" role="alert">
      <strong>
        Could not load {what}: {error.message}
      </strong>
      {error.hint ? <span> — {error.hint}</span> : null}
    </div>
  );
}

/**
 * The four states of a query: loading (nothing yet), error (with the hub's hint; the last good
 * data stays under it), empty, and the data.
 */
export function Loaded<T>({ q, what, empty, isEmpty, children }: { q: Query<T>; what: string; empty: string; isEmpty: (d: T) => boolean; children: (d: T) => ComponentChildren }) {
  if (q.data === undefined) {
    if (q.error) return <ErrorBox error={q.error} what={what} />;
    return <Loading what={what} />;
  }
  return (
    <>
      {q.error ? <ErrorBox error={q.error} what={what} /> : null}
      {isEmpty(q.data) ? <Empty what={what} hint={empty} /> : children(q.data)}
    </>
  );
}

export function Card({ title, children, wide, id }: { title: string; children: ComponentChildren; wide?: boolean; id?: string }) {
  return (
    <section class={wide ? 'card wide' : 'card'} aria-label={title} id={id}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

/** A link to another view (a real href: opens in a new tab, works with the keyboard). */
export function ViewLink({ route, view, params, children, label }: { route: Route; view: View; params?: Record<string, string>; children: ComponentChildren; label?: string | undefined }) {
  return (
    <a href={formatHash(go(route, view, params))} title={label}>
      {children}
    </a>
  );
}

export interface Column<T> {
  key: string;
  title: string;
  /** the cell */
  cell: (row: T) => ComponentChildren;
  /** the value to sort by; without it the column does not sort */
  sort?: (row: T) => number | string | null;
  numeric?: boolean;
}

/**
 * A table whose headers sort it (buttons: Tab and Enter work); numbers right-aligned. `initial` is
 * the column sorted first (descending for numbers).
 */
export function Table<T>({ rows, columns, rowKey, initial, caption, testId }: { rows: readonly T[]; columns: Column<T>[]; rowKey: (row: T) => string; initial?: string; caption?: string; testId?: string }) {
  const [sort, setSort] = useState<{ key: string; desc: boolean } | undefined>(initial ? { key: initial, desc: columns.find((c) => c.key === initial)?.numeric ?? false } : undefined);
  const col = sort ? columns.find((c) => c.key === sort.key) : undefined;
  const sorted = col?.sort
    ? [...rows].sort((a, b) => {
        const va = col.sort!(a);
        const vb = col.sort!(b);
        if (va === vb) return 0;
        if (va === null) return 1;
        if (vb === null) return -1;
        const c = va < vb ? -1 : 1;
        return sort!.desc ? -c : c;
      })
    : rows;
  return (
    <div class="table-wrap">
      <table data-testid={testId}>
        {caption ? <caption class="sr-only">{caption}</caption> : null}
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.key} class={c.numeric ? 'num' : undefined} aria-sort={sort?.key === c.key ? (sort.desc ? 'descending' : 'ascending') : undefined} scope="col">
                {c.sort ? (
                  <button type="button" class="sort" onClick={() => setSort({ key: c.key, desc: sort?.key === c.key ? !sort.desc : (c.numeric ?? false) })}>
                    {c.title}
                    <span aria-hidden="true">{sort?.key === c.key ? (sort.desc ? ' ▾' : ' ▴') : ''}</span>
                  </button>
                ) : (
                  c.title
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {sorted.map((r) => (
            <tr key={rowKey(r)}>
              {columns.map((c) => (
                <td key={c.key} class={c.numeric ? 'num' : undefined}>
                  {c.cell(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** "updated 3 s ago", for a view that refreshes. */
export function Updated({ at }: { at: number }) {
  if (!at) return null;
  return <span class="updated">updated {ago(new Date(at).toISOString())}</span>;
}
