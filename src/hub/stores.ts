/**
 * The store named on the hub's command line: `duckdb:PATH` (a file, made if missing, or
 * `duckdb::memory:`) or `clickhouse:URL` (http[s]://[user[:password]@]host:port[/database]; the
 * database defaults to `periscope` and is created if missing). The password never leaves here: the
 * store's `location` masks it.
 */
import { ClickHouseStore } from './store-clickhouse.js';
import { DuckDbStore } from './store-duckdb.js';
import type { Store, StoreOptions } from './store.js';
import { PeriscopeError } from '../kernel/errors.js';

const FORMS = 'duckdb:PATH (e.g. duckdb:/var/lib/periscope/hub.duckdb) or clickhouse:http://USER:PASSWORD@HOST:8123/DATABASE';

/** A spec with its password (if any) masked, safe to print. */
export function maskSpec(spec: string): string {
  return spec.replace(/^(clickhouse:[a-z]+:\/\/[^:@/]*:)[^@/]*@/i, '$1***@');
}

export function openStore(spec: string, opts: StoreOptions): Store {
  const bad = (why: string): PeriscopeError => new PeriscopeError('BAD_ARGUMENT', `bad store "${maskSpec(spec)}": ${why}`, `use ${FORMS}`);
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const rest = colon < 0 ? '' : spec.slice(colon + 1);
  if (kind === 'duckdb') {
    if (!rest) throw bad('no path');
    return new DuckDbStore(rest, opts);
  }
  if (kind === 'clickhouse') {
    let u: URL;
    try {
      u = new URL(rest);
    } catch {
      throw bad('not a URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad(`the protocol is ${u.protocol} (http: or https:)`);
    if (u.search || u.hash) throw bad('no query or fragment');
    const database = decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, '')) || 'periscope';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(database)) throw bad(`the database "${database}" is not a plain name (letters, digits, _)`);
    return new ClickHouseStore(
      { url: `${u.protocol}//${u.host}`, username: decodeURIComponent(u.username) || 'default', password: decodeURIComponent(u.password), database },
      opts,
    );
  }
  throw bad(`unknown kind "${kind}"`);
}
