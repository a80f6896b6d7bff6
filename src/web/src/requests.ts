/**
 * The l7 collector's requests as the UI shows them: an edge's totals over its protocols, and how
 * bad they are. Pure functions (no DOM): test/web/units.test.ts holds them to examples.
 */
import { L7_PROTOCOLS, type EdgeEntry, type L7Protocol } from '../../wire/hub.js';

export const PROTOCOL_NAMES: Record<L7Protocol, string> = { http: 'HTTP', grpc: 'gRPC', sql: 'SQL', redis: 'Redis' };

/** An edge's requests over every protocol: how many, per second, and the failed ones. */
export function requestTotals(x: Pick<EdgeEntry, 'requests'>): { requests: number; rate: number; errors: number } {
  let requests = 0;
  let rate = 0;
  let errors = 0;
  for (const p of L7_PROTOCOLS) {
    const r = x.requests[p];
    if (!r) continue;
    requests += r.requests;
    rate += r.rate;
    errors += r.errors;
  }
  return { requests, rate, errors };
}

/** The share of an edge's requests that failed (0 without requests). */
export const errorRatio = (x: Pick<EdgeEntry, 'requests'>): number => {
  const t = requestTotals(x);
  return t.requests > 0 ? t.errors / t.requests : 0;
};
