/**
 * The shell: header with the views, the time-range picker, live refresh and the theme; the view the
 * URL names below it. Every piece of state a link should carry is in the URL (route.ts).
 */
import { type ComponentType } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onUnauthorized, setToken, token } from './api.js';
import { Loading } from './components.js';
import { formatHash, parseHash, RANGES, rangeLabel, REFRESHES, validTime, type Route, type View } from './route.js';
import { Overview } from './views/overview.js';

/**
 * A view loaded when it is first shown: the first page (the overview) loads neither the charts
 * (uPlot) nor the graph (Cytoscape.js) nor the other views.
 */
function lazyView<P extends object>(load: () => Promise<ComponentType<P>>, what: string): ComponentType<P> {
  let loaded: ComponentType<P> | undefined;
  return function Lazy(props: P) {
    const [, setReady] = useState(0);
    const [failed, setFailed] = useState<string | undefined>(undefined);
    useEffect(() => {
      if (loaded) return;
      load().then(
        (c) => {
          loaded = c;
          setReady((n) => n + 1);
        },
        (err: Error) => setFailed(err.message),
      );
    }, []);
    if (failed) return <p class="state error">Could not load the {what} page ({failed}): reload to retry.</p>;
    if (!loaded) return <Loading what={`the ${what} page`} />;
    const View = loaded;
    return <View {...props} />;
  };
}

const Workload = lazyView(() => import('./views/workload.js').then((m) => m.Workload), 'workload');
const ServiceMap = lazyView(() => import('./views/map.js').then((m) => m.ServiceMap), 'service map');
const Events = lazyView(() => import('./views/events.js').then((m) => m.Events), 'events');
const Nodes = lazyView(() => import('./views/nodes.js').then((m) => m.Nodes), 'nodes');

const NAV: [View, string][] = [
  ['overview', 'Overview'],
  ['map', 'Service map'],
  ['events', 'Events'],
  ['nodes', 'Nodes'],
];

export type Navigate = (r: Route, opts?: { replace?: boolean }) => void;

function useRoute(): [Route, Navigate] {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = (): void => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  const navigate: Navigate = (r, opts) => {
    const hash = formatHash(r);
    if (opts?.replace) history.replaceState(null, '', hash);
    else if (location.hash !== hash) history.pushState(null, '', hash);
    setRoute(parseHash(hash));
  };
  return [route, navigate];
}

type Theme = 'auto' | 'light' | 'dark';
function useTheme(): [Theme, (t: Theme) => void] {
  const [theme, set] = useState<Theme>(() => {
    try {
      const t = localStorage.getItem('periscope.theme');
      return t === 'light' || t === 'dark' ? t : 'auto';
    } catch {
      return 'auto';
    }
  });
  useEffect(() => {
    if (theme === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    try {
      localStorage.setItem('periscope.theme', theme);
    } catch {
      // private mode
    }
  }, [theme]);
  return [theme, set];
}

function RangePicker({ route, navigate }: { route: Route; navigate: Navigate }) {
  const custom = !(RANGES as readonly string[]).includes(route.from) || route.to !== '';
  const [from, setFrom] = useState(route.from);
  const [to, setTo] = useState(route.to);
  const [editing, setEditing] = useState(false);
  useEffect(() => {
    setFrom(route.from);
    setTo(route.to);
  }, [route.from, route.to]);
  const ok = validTime(from) && (to === '' || validTime(to));
  return (
    <div class="range" role="group" aria-label="Time range">
      <label>
        <span class="sr-only">Time range</span>
        <select
          value={custom || editing ? 'custom' : route.from}
          onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            if (v === 'custom') setEditing(true);
            else {
              setEditing(false);
              navigate({ ...route, from: v, to: '', refresh: route.refresh || 10 });
            }
          }}
        >
          {RANGES.map((r) => (
            <option key={r} value={r}>
              {rangeLabel(r)}
            </option>
          ))}
          <option value="custom">custom…</option>
        </select>
      </label>
      {custom || editing ? (
        <form
          class="custom"
          onSubmit={(e) => {
            e.preventDefault();
            if (ok) navigate({ ...route, from, to: to === 'now' ? '' : to });
          }}
        >
          <label>
            from <input value={from} size={22} onInput={(e) => setFrom((e.target as HTMLInputElement).value.trim())} aria-invalid={!validTime(from)} placeholder="-2h or 2026-12-01T10:00:00Z" />
          </label>
          <label>
            to <input value={to} size={22} onInput={(e) => setTo((e.target as HTMLInputElement).value.trim())} aria-invalid={!(to === '' || validTime(to))} placeholder="now" />
          </label>
          <button type="submit" disabled={!ok}>
            Apply
          </button>
        </form>
      ) : null}
      <label>
        <span class="sr-only">Refresh</span>
        <select
          value={String(route.refresh)}
          disabled={route.to !== ''}
          title={route.to !== '' ? 'a fixed range does not refresh' : 'refresh interval'}
          onChange={(e) => navigate({ ...route, refresh: Number((e.target as HTMLSelectElement).value) }, { replace: true })}
        >
          {REFRESHES.map((s) => (
            <option key={s} value={String(s)}>
              {s === 0 ? 'no refresh' : `refresh ${s < 60 ? `${s} s` : `${s / 60} min`}`}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}

function TokenPrompt({ onDone }: { onDone: () => void }) {
  const [value, setValue] = useState('');
  return (
    <div class="modal" role="dialog" aria-modal="true" aria-labelledby="token-title">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setToken(value.trim());
          onDone();
        }}
      >
        <h2 id="token-title">This hub needs its token</h2>
        <p>
          Paste the token of the hub&apos;s <code>--token-file</code>. It is kept in this tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.
        </p>
        <label>
          Token <input type="password" autoFocus value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} autoComplete="off" />
        </label>
        <button type="submit" disabled={value.trim() === ''}>
          Use token
        </button>
      </form>
    </div>
  );
}

export function App() {
  const [route, navigate] = useRoute();
  const [theme, setTheme] = useTheme();
  const [askToken, setAskToken] = useState(false);
  useEffect(() => onUnauthorized(() => setAskToken(true)), []);
  let view;
  switch (route.view) {
    case 'workload':
      view = <Workload route={route} navigate={navigate} />;
      break;
    case 'map':
      view = <ServiceMap route={route} navigate={navigate} />;
      break;
    case 'events':
      view = <Events route={route} navigate={navigate} />;
      break;
    case 'nodes':
      view = <Nodes route={route} />;
      break;
    default:
      view = <Overview route={route} navigate={navigate} />;
  }
  const nextTheme: Record<Theme, Theme> = { auto: 'light', light: 'dark', dark: 'auto' };
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header>
        <a class="brand" href={formatHash({ ...route, view: 'overview', params: {} })}>
          <img src="/favicon.svg" alt="" width={20} height={20} /> Periscope
        </a>
        <nav aria-label="Views">
          {NAV.map(([v, label]) => (
            <a key={v} href={formatHash({ ...route, view: v, params: {} })} aria-current={route.view === v || (v === 'overview' && route.view === 'workload') ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <RangePicker route={route} navigate={navigate} />
        <button type="button" class="theme" onClick={() => setTheme(nextTheme[theme])} title="light, dark or as the system">
          theme: {theme}
        </button>
        {token() ? (
          <button type="button" class="theme" onClick={() => (setToken(''), setAskToken(true))}>
            change token
          </button>
        ) : null}
      </header>
      <main id="main" tabIndex={-1}>
        {view}
      </main>
      {askToken ? <TokenPrompt onDone={() => setAskToken(false)} /> : null}
    </>
  );
}
