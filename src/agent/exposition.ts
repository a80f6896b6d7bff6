/**
 * The Prometheus text exposition format (version 0.0.4), written directly: HELP and TYPE lines, label
 * values escaped, histograms as cumulative `_bucket` series with `le`, then `_sum` and `_count`.
 * Writing it here rather than through a client library is deliberate: the values are aggregates the
 * kernel already made (histogram buckets included), which client libraries can only observe one by
 * one. `promtool check metrics` is run on the output in the tests.
 */
import { type MetricDef } from '../collectors/contract.js';

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface Series {
  labels: Readonly<Record<string, string>>;
  value: number | { cumulative: readonly number[]; count: number; sum: number };
}

const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeValue = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** A sample value as Prometheus parses it. */
export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function labelText(names: readonly string[], labels: Readonly<Record<string, string>>, extra?: [string, string]): string {
  const parts = names.map((n) => `${n}="${escapeValue(labels[n] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeValue(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

/** One metric family: its header and every series, label names in the order given. */
export function formatFamily(def: MetricDef, labelNames: readonly string[], series: Iterable<Series>): string {
  const out = [`# HELP ${def.name} ${escapeHelp(def.help)}`, `# TYPE ${def.name} ${def.type}`];
  for (const s of series) {
    if (typeof s.value === 'number') {
      out.push(`${def.name}${labelText(labelNames, s.labels)} ${formatNumber(s.value)}`);
      continue;
    }
    if (def.type !== 'histogram') throw new Error(`${def.name} is a ${def.type}, not a histogram`);
    const h = s.value;
    def.buckets.forEach((le, i) => out.push(`${def.name}_bucket${labelText(labelNames, s.labels, ['le', formatNumber(le)])} ${formatNumber(h.cumulative[i] ?? h.count)}`));
    out.push(`${def.name}_bucket${labelText(labelNames, s.labels, ['le', '+Inf'])} ${formatNumber(h.count)}`);
    out.push(`${def.name}_sum${labelText(labelNames, s.labels)} ${formatNumber(h.sum)}`);
    out.push(`${def.name}_count${labelText(labelNames, s.labels)} ${formatNumber(h.count)}`);
  }
  return `${out.join('\n')}\n`;
}
