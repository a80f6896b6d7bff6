/**
 * Quantiles over time from a histogram's bucket series (`<name>_bucket` by `le`, each a rate per
 * step), as Prometheus's histogram_quantile computes them: cumulative buckets, linear interpolation
 * inside the bucket that holds the rank, the highest finite bound when the rank falls in +Inf.
 */
export interface BucketLine {
  le: string;
  points: [number, number | null][];
}

export function quantileAt(q: number, buckets: readonly { le: number; value: number }[]): number | null {
  const sorted = [...buckets].filter((b) => !Number.isNaN(b.le)).sort((a, b) => a.le - b.le);
  const total = sorted.at(-1)?.value ?? 0;
  if (!(total > 0) || sorted.at(-1)!.le !== Infinity) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of sorted) {
    if (b.value >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.value - prevCount;
      return inBucket > 0 ? prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket : b.le;
    }
    prevLe = b.le;
    prevCount = b.value;
  }
  return prevLe;
}

/** [time, quantile] for each time any bucket has a point. */
export function quantileSeries(q: number, lines: readonly BucketLine[]): [number, number | null][] {
  const byTime = new Map<number, { le: number; value: number }[]>();
  for (const l of lines) {
    const le = l.le === '+Inf' ? Infinity : Number(l.le);
    if (l.le.trim() === '' || Number.isNaN(le)) continue;
    for (const [t, v] of l.points) {
      if (v === null) continue;
      let list = byTime.get(t);
      if (!list) byTime.set(t, (list = []));
      list.push({ le, value: v });
    }
  }
  return [...byTime.keys()].sort((a, b) => a - b).map((t) => [t, quantileAt(q, byTime.get(t)!)]);
}
