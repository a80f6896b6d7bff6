/**
 * How an event shows as a row of a table (`periscope trace`): columns of fixed width, each filled by
 * the first of its ways that finds its fields in the event. Collectors declare the columns of the
 * kinds of events they make; the CLI only draws them.
 */

/** How a cell shows event fields. */
export type Format = 'text' | 'time' | 'pod' | 'endpoint' | 'bytes' | 'ms' | 'us' | 'list' | 'argv' | 'flag';

/** One way to fill a cell: a format over these event fields. */
export type Show = readonly [Format, ...string[]];

export interface Column {
  header: string;
  /** the cell's width; longer values are cut with an ellipsis */
  width: number;
  right?: boolean;
  /** cut from the start, keeping the end (a cgroup path's last component names it) */
  keepEnd?: boolean;
  /** tried in order; the first that finds its fields fills the cell, else '-' */
  show: readonly Show[];
}

/** The columns every kind starts with: when, and whose. */
export const TIME: Column = { header: 'TIME', width: 12, show: [['time', 'time']] };
export const WHO: Column = { header: 'NAMESPACE/POD', width: 40, keepEnd: true, show: [['pod', 'namespace', 'pod'], ['text', 'cgroup']] };
export const num = (header: string, field: string, width = 7): Column => ({ header, width, right: true, show: [['text', field]] });
