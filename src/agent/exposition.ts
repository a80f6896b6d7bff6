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
  /** labelBody(labelNames, labels), where the caller keeps it from one exposition to the next */
  labelBody?: string;
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

/** A series' labels between the braces, escaped: `a="x",b="y"` ('' without labels). */
export function labelBody(names: readonly string[], labels: Readonly<Record<string, string>>): string {
  return names.map((n) => `${n}="${escapeValue(labels[n] ?? '')}"`).join(',');
}

/**
 * One metric family: its header and every series, label names in the order given. A series' labels
 * are escaped once, not once per line: a histogram writes them on every bucket, and a scrape of
 * per-flow histograms would otherwise make a megabyte of garbage strings.
 */
export function formatFamily(def: MetricDef, labelNames: readonly string[], series: Iterable<Series>): string {
  const out = [`# HELP ${def.name} ${escapeHelp(def.help)}`, `# TYPE ${def.name} ${def.type}`];
  const les = def.type === 'histogram' ? [...def.buckets.map((le) => `le="${formatNumber(le)}"`), 'le="+Inf"'] : [];
  for (const s of series) {
    const body = s.labelBody ?? labelBody(labelNames, s.labels);
    const braced = body ? `{${body}}` : '';
    if (typeof s.value === 'number') {
      out.push(`${def.name}${braced} ${formatNumber(s.value)}`);
      continue;
    }
    if (def.type !== 'histogram') throw new Error(`${def.name} is a ${def.type}, not a histogram`);
    const h = s.value;
    const bucket = `${def.name}_bucket{${body}${body ? ',' : ''}`;
    les.forEach((le, i) => out.push(`${bucket}${le}} ${formatNumber(i < def.buckets.length ? (h.cumulative[i] ?? h.count) : h.count)}`));
    out.push(`${def.name}_sum${braced} ${formatNumber(h.sum)}`);
    out.push(`${def.name}_count${braced} ${formatNumber(h.count)}`);
  }
  return `${out.join('\n')}\n`;
}
