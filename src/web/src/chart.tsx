/** Time-series charts with uPlot: one chart per metric, lines aligned on one time axis, units on the axis. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { FORMAT, type Unit } from './format.js';

export interface Line {
  label: string;
  /** [unix seconds, value] */
  points: [number, number | null][];
}

const COLORS = ['#2f6fdf', '#e8590c', '#2b8a3e', '#ae3ec9', '#c92a2a', '#0b7285', '#5f3dc4', '#a61e4d'];

/** The lines on one shared, sorted time axis (uPlot's layout); a line without a point there has null. */
export function align(lines: readonly Line[]): uPlot.AlignedData {
  const xs = [...new Set(lines.flatMap((l) => l.points.map((p) => p[0])))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = lines.map((l) => {
    const y: (number | null)[] = new Array<number | null>(xs.length).fill(null);
    for (const [x, v] of l.points) y[at.get(x)!] = v;
    return y;
  });
  return [xs, ...ys];
}

export function Chart({ title, lines, unit, testId, range }: { title: string; lines: readonly Line[]; unit: Unit; testId?: string; range?: [number, number] }) {
  const box = useRef<HTMLDivElement>(null);
  // the x axis spans the time range asked for, not just the points there are (one point is not a year)
  const span = useRef(range);
  span.current = range;
  const plot = useRef<uPlot | undefined>(undefined);
  const shape = lines.map((l) => l.label).join('\u0000');
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fmt = FORMAT[unit];
    // the theme's colours as the page resolved them (light or dark)
    const axisStroke = getComputedStyle(document.body).color;
    const grid = { stroke: getComputedStyle(el.parentElement ?? el).borderTopColor || axisStroke, width: 1 };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 180,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: (_u, min, max) => span.current ?? [min, max] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: axisStroke, grid },
        { stroke: axisStroke, grid, size: 70, values: (_u, ticks) => ticks.map((t) => fmt(t)) },
      ],
      series: [{}, ...lines.map((l, i) => ({ label: l.label, stroke: COLORS[i % COLORS.length]!, width: 1.5, spanGaps: false, value: (_u: uPlot, v: number | null) => (v === null ? '–' : fmt(v)) }))],
    };
    plot.current = new uPlot(opts, align(lines), el);
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height: 180 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = undefined;
    };
    // a new set of lines builds a new chart; new points of the same lines only update the data
  }, [shape, unit]);
  useEffect(() => {
    plot.current?.setData(align(lines));
  }, [lines, range?.[0], range?.[1]]);
  const points = lines.reduce((n, l) => n + l.points.filter((p) => p[1] !== null).length, 0);
  return (
    <figure class="chart" data-testid={testId} data-points={points}>
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${lines.length} line${lines.length === 1 ? '' : 's'}, ${points} points`} />
    </figure>
  );
}
