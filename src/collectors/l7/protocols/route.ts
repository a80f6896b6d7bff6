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

/**
 * Is one path segment an identifier rather than a name? One pass over its characters counts their
 * kinds, and the kinds decide what the patterns of the header say (a number `-?\d+`, a UUID, hex of
 * 8 or more with a digit, a token of 16 or more of `[\w\-=.~%]` with a digit and a letter): no
 * regex and no substring per segment of every request's path.
 */
export function isIdSegment(seg: string): boolean {
  return isIdSpan(seg, 0, seg.length);
}

/** isIdSegment of `s.slice(from, end)`, without the slice. */
function isIdSpan(s: string, from: number, end: number): boolean {
  const n = end - from;
  if (n > 64) return true;
  let digits = 0;
  let hexLetters = 0;
  let letters = 0;
  /** characters outside `[\w\-=.~%]` */
  let others = 0;
  for (let i = from; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x30 && c <= 0x39) digits++;
    else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) {
      letters++;
      if ((c | 0x20) <= 0x66) hexLetters++;
    } else if (c !== 0x5f && c !== 0x2d && c !== 0x3d && c !== 0x2e && c !== 0x7e && c !== 0x25) others++;
  }
  if (n === 36 && digits + hexLetters === 32 && isUuidDashes(s, from)) return true;
  if (digits === 0) return false; // every other pattern wants a digit
  if (digits === n || (digits === n - 1 && s.charCodeAt(from) === 0x2d)) return true; // a number
  if (digits + hexLetters === n) return n >= 8; // hexadecimal
  return n >= 16 && letters > 0 && others === 0; // a token
}

/** Are the characters 8, 13, 18 and 23 from `from` dashes (with 32 hex digits in 36: a UUID)? */
function isUuidDashes(s: string, from: number): boolean {
  return s.charCodeAt(from + 8) === 0x2d && s.charCodeAt(from + 13) === 0x2d && s.charCodeAt(from + 18) === 0x2d && s.charCodeAt(from + 23) === 0x2d;
}

/**
 * The route template of a path (already without its query string): ids replaced by `{id}`, at most
 * `maxSegments` segments. A path without ids is its own template (no string made).
 */
export function templatePath(path: string, maxSegments = 16): string {
  if (!path.startsWith('/')) return path === '*' ? '*' : OTHER_ROUTE; // `*` (OPTIONS), an absolute URI went through splitTarget
  /** the template of the segments before `from`, once one of them was an id (until then: the path's own text) */
  let out: string | undefined;
  let from = 0;
  for (let i = 0; ; i++) {
    const slash = path.indexOf('/', from);
    const end = slash < 0 ? path.length : slash;
    if (i > maxSegments) return `${out ?? path.slice(0, from - 1)}/…`;
    const id = end > from && isIdSpan(path, from, end);
    if (id && out === undefined) out = path.slice(0, from - 1);
    if (out !== undefined) out += `/${id ? ID : path.slice(from, end)}`;
    if (slash < 0) return out ?? path;
    from = slash + 1;
  }
}

/**
 * Splits a request target into its path (no query string, no fragment) and, for an absolute URI
 * (`http://host/path`, what proxies receive), its authority.
 */
export function splitTarget(target: string): { path: string; authority?: string } {
  if (target.charCodeAt(0) === 0x2f) {
    // origin form, what nearly every request has: no scheme to look for
    for (let i = 1; i < target.length; i++) {
      const c = target.charCodeAt(i);
      if (c === 0x3f || c === 0x23) return { path: target.slice(0, i) };
    }
    return { path: target };
  }
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
