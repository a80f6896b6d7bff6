/**
 * Routes for HTTP metrics: a request path made into a template with its ids replaced by `{id}`
 * (`/users/123/orders/9f8e7d6c` → `/users/{id}/orders/{id}`), and a bounded set of routes per
 * workload so that a workload serving random paths cannot make unbounded series: past the set's
 * maximum, new routes fold into `other` and are counted.
 *
 * A segment is an id when it is a number, a UUID, hexadecimal of 8 or more characters with a digit,
 * a token of 16 or more URL-safe characters mixing letters and digits (base64 ids, hashes, JWTs), or
 * longer than 64 characters. Everything else is kept: `v2`, `api`, `healthz`, `user-profile`.
 */

export const ID = '{id}';
export const OTHER_ROUTE = 'other';

const NUMBER = /^-?\d+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^(?=.*\d)[0-9a-f]{8,}$/i;
const TOKEN = /^(?=.*\d)(?=.*[a-z])[\w\-=.~%]{16,}$/i;

/** Is one path segment an identifier rather than a name? */
export function isIdSegment(seg: string): boolean {
  return seg.length > 64 || NUMBER.test(seg) || UUID.test(seg) || HEX.test(seg) || TOKEN.test(seg);
}

/** The route template of a path (already without its query string): ids replaced by `{id}`, at most `maxSegments` segments. */
export function templatePath(path: string, maxSegments = 16): string {
  if (!path.startsWith('/')) return path === '*' ? '*' : OTHER_ROUTE; // `*` (OPTIONS), an absolute URI went through splitTarget
  const segs = path.split('/');
  const out: string[] = [];
  for (let i = 0; i < segs.length; i++) {
    if (i > maxSegments) {
      out.push('…');
      break;
    }
    const seg = segs[i]!;
    out.push(seg !== '' && isIdSegment(seg) ? ID : seg);
  }
  return out.join('/');
}

/**
 * Splits a request target into its path (no query string, no fragment) and, for an absolute URI
 * (`http://host/path`, what proxies receive), its authority.
 */
export function splitTarget(target: string): { path: string; authority?: string } {
  let t = target;
  let authority: string | undefined;
  const scheme = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(t);
  if (scheme) {
    authority = scheme[1];
    t = t.slice(scheme[0].length) || '/';
  }
  const cut = t.search(/[?#]/);
  const path = cut >= 0 ? t.slice(0, cut) : t;
  return authority === undefined ? { path } : { path, authority };
}

/**
 * The routes one workload has been seen serving, at most `max` of them. `admit` returns the route
 * itself while there is room or once it is known, and `other` for a new route past the maximum
 * (counted in `folded`).
 */
export class RouteSet {
  private readonly routes = new Set<string>();
  /** requests whose route was folded into `other` */
  folded = 0;

  constructor(readonly max = 100) {}

  admit(route: string): string {
    if (this.routes.has(route)) return route;
    if (this.routes.size < this.max) {
      this.routes.add(route);
      return route;
    }
    this.folded++;
    return OTHER_ROUTE;
  }

  get size(): number {
    return this.routes.size;
  }
}
