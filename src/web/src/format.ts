/**
 * Numbers with their units, as people read them: `1.2 s`, `340 MiB`, `12 k/s`. Pure functions (no
 * DOM): the Node tests hold them to examples (test/web/format.test.ts).
 */

/** Three significant figures at most, without trailing zeros: 1.23, 12.3, 123, 0.0123. */
export function sig(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(a)));
  return String(Number(v.toFixed(digits)));
}

const COUNT_UNITS: [number, string][] = [
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

/** A count: 950, 1.2 k, 3.4 M. */
export function count(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  for (const [f, u] of COUNT_UNITS) if (a >= f * 0.9995) return `${sig(v / f)} ${u}`;
  return sig(v);
}

/** A rate per second: 0.5/s, 12 k/s. */
export function rate(v: number | null | undefined): string {
  const c = count(v);
  return c === '–' ? c : `${c}/s`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Bytes in binary units: 512 B, 340 MiB, 1.5 GiB. */
export function bytes(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  let i = 0;
  let x = Math.abs(v);
  while (x >= 1023.5 && i < BYTE_UNITS.length - 1) {
    x /= 1024;
    i++;
  }
  return `${v < 0 ? '-' : ''}${i === 0 ? String(Math.round(x)) : sig(x)} ${BYTE_UNITS[i]}`;
}

/** Bytes per second: 1.2 MiB/s. */
export function byteRate(v: number | null | undefined): string {
  const b = bytes(v);
  return b === '–' ? b : `${b}/s`;
}

/** A duration in seconds: 12 ns, 340 µs, 1.2 ms, 3.4 s, 2.5 min, 3.1 h, 2 d. */
export function seconds(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a === 0) return '0 s';
  if (a < 1e-6) return `${sig(v * 1e9)} ns`;
  if (a < 1e-3) return `${sig(v * 1e6)} µs`;
  if (a < 1) return `${sig(v * 1e3)} ms`;
  if (a < 120) return `${sig(v)} s`;
  if (a < 7200) return `${sig(v / 60)} min`;
  if (a < 172_800) return `${sig(v / 3600)} h`;
  return `${sig(v / 86_400)} d`;
}

/** CPU as cores: 0.42 cores, 1 core, 1.5 cores; tiny shares in millicores: 12 m. */
export function cores(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (v !== 0 && Math.abs(v) < 0.1) return `${sig(v * 1000)} m`;
  return `${sig(v)} ${v === 1 ? 'core' : 'cores'}`;
}

/** A share: 12%, 0.5%. */
export function percent(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  return `${sig(v * 100)}%`;
}

/** How long ago a time was, from now: 5 s ago, 3 min ago. */
export function ago(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '–';
  const s = Math.max(0, (now - t) / 1000);
  if (s < 1) return 'just now';
  return `${seconds(Math.round(s))} ago`;
}

/** A time of day (local), with the date when it is not today. */
export function clock(iso: string, now = new Date()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '–';
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() && d.getDate() === now.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** The formatter for a unit name used by charts and tables. */
export type Unit = 'cores' | 'seconds' | 'bytes' | 'byte_rate' | 'rate' | 'count' | 'percent';
export const FORMAT: Record<Unit, (v: number | null | undefined) => string> = {
  cores,
  seconds,
  bytes,
  byte_rate: byteRate,
  rate,
  count,
  percent,
};
