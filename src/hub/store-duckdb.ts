/**
 * The hub's embedded store: DuckDB in the hub process, in one file (or ':memory:'). The tables are
 * those of store.ts's model: `series` (one row per series id, its indexed labels as columns),
 * `samples` (ts in ms, series, value, delta), `rollups_1m`, the workload tables (`workload_keys`,
 * `workload_samples`, `workload_1m`: store.ts), `events`, `profile_stacks`, `reports` (a row per applied batch: the
 * last seq of each agent instance is its newest report's, which maintain() keeps) and
 * `rollup_progress` (the first minute not rolled up yet).
 *
 * A batch is applied in one transaction on the writing connection (with the batches that arrived
 * while the previous transaction was written: group commit), its seq checked and recorded,
 * new series go through a staging table (INSERT ... ON CONFLICT DO NOTHING), samples, events and
 * profile stacks go in through the Appender (DuckDB's bulk path: no SQL per row). Each table a transaction appends to costs
 * about 0.7 ms on the bench machine whatever the rows, so a batch touches few: samples,
 * workload_samples (with the presence rows) and reports. Writes are serialised in the process;
 * queries run on a second connection and see committed data only.
 */
import { statSync } from 'node:fs';
import { BIGINT, DOUBLE, VARCHAR, DuckDBConnection, DuckDBDataChunk, DuckDBInstance, type DuckDBAppender, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';
import {
  INDEXED_LABELS,
  LATER_LABELS,
  type AgentReport,
  type AggregateQuery,
  type AggregateRow,
  type BatchRows,
  type Column,
  type EventQuery,
  type EventRow,
  type Filters,
  type MaintainResult,
  PROFILE_COLUMNS,
  type ProfileRow,
  type ProfileStacks,
  type ProfileStacksQuery,
  type Range,
  type SampleRow,
  type SeriesLine,
  type SeriesQuery,
  type Store,
  type StoreOptions,
  PRESENCE_METRIC,
  type PlacementRow,
  type WorkloadKeyRow,
  type WorkloadSumFilters,
  type WorkloadSumRow,
  type WorkloadSumsQuery,
} from './store.js';
import {
  MINUTE,
  ROLLUP_GRACE_MS,
  aggregateRow,
  checkColumn,
  lateRollups,
  lateWorkloadRows,
  filterSql,
  inList,
  likePrefix,
  plan,
  toLines,
  batchSums,
  placementRow,
  workloadTableRows,
  workloadSumRow,
  rangeParts,
  profileLimit,
  profileStacks,
  profileWhere,
  type TablePart,
  type Bind,
} from './store-sql.js';

const LABEL_COLUMNS = INDEXED_LABELS.map((l) => `${l} VARCHAR NOT NULL`).join(', ');
/** Rows per data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;
const SAMPLE_TYPES = [BIGINT, BIGINT, DOUBLE, DOUBLE];
const WORKLOAD_TYPES = [BIGINT, BIGINT, DOUBLE];
/** profile_stacks: ts, then the text columns, then value and period (PROFILE_COLUMNS) */
const PROFILE_TYPES = PROFILE_COLUMNS.map((c) => (c === 'ts' ? BIGINT : c === 'value' || c === 'period' ? DOUBLE : VARCHAR));
/** Most rows (samples and profile stacks) one transaction of apply() writes (the batches waiting beyond it go in the next). */
const GROUP_MAX_SAMPLES = 200_000;
/** The rows a batch writes, as GROUP_MAX_SAMPLES counts them. */
const weight = (b: BatchRows): number => b.samples.length + (b.profiles?.length ?? 0);
const EVENT_COLUMNS = ['node', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'cgroup'];

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS series (id BIGINT PRIMARY KEY, node VARCHAR NOT NULL, metric VARCHAR NOT NULL, type VARCHAR NOT NULL, labels VARCHAR NOT NULL, ${LABEL_COLUMNS}, first_seen BIGINT NOT NULL)`,
  'CREATE TABLE IF NOT EXISTS samples (ts BIGINT NOT NULL, series BIGINT NOT NULL, value DOUBLE NOT NULL, delta DOUBLE)',
  'CREATE TABLE IF NOT EXISTS rollups_1m (minute BIGINT NOT NULL, series BIGINT NOT NULL, delta_sum DOUBLE NOT NULL, value_sum DOUBLE NOT NULL, value_count BIGINT NOT NULL, value_last DOUBLE NOT NULL, value_min DOUBLE NOT NULL, value_max DOUBLE NOT NULL)',
  'CREATE TABLE IF NOT EXISTS workload_keys (key BIGINT PRIMARY KEY, metric VARCHAR NOT NULL, namespace VARCHAR NOT NULL, workload_kind VARCHAR NOT NULL, workload VARCHAR NOT NULL, le VARCHAR NOT NULL)',
  'CREATE TABLE IF NOT EXISTS workload_samples (ts BIGINT NOT NULL, key BIGINT NOT NULL, delta DOUBLE)',
  'CREATE TABLE IF NOT EXISTS workload_1m (minute BIGINT NOT NULL, key BIGINT NOT NULL, delta_sum DOUBLE)',
  'CREATE TABLE IF NOT EXISTS events (ts BIGINT NOT NULL, node VARCHAR NOT NULL, type VARCHAR NOT NULL, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL, container VARCHAR NOT NULL, workload_kind VARCHAR NOT NULL, workload VARCHAR NOT NULL, cgroup VARCHAR NOT NULL, body VARCHAR NOT NULL)',
  // a table of its own, new with profiling: a store made before it gets it here, as an empty table
  `CREATE TABLE IF NOT EXISTS profile_stacks (ts BIGINT NOT NULL, node VARCHAR NOT NULL, type VARCHAR NOT NULL, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL, container VARCHAR NOT NULL,
     workload_kind VARCHAR NOT NULL, workload VARCHAR NOT NULL, cgroup VARCHAR NOT NULL, stack VARCHAR NOT NULL, value DOUBLE NOT NULL, period DOUBLE NOT NULL)`,
  'CREATE TABLE IF NOT EXISTS reports (node VARCHAR NOT NULL, instance VARCHAR NOT NULL, seq BIGINT NOT NULL, version VARCHAR NOT NULL, started BIGINT NOT NULL, received BIGINT NOT NULL, cgroup_subtree VARCHAR NOT NULL, status VARCHAR NOT NULL)',
  'CREATE TABLE IF NOT EXISTS rollup_progress (id INTEGER PRIMARY KEY, minute BIGINT NOT NULL)',
];
/** the staging table of new series (per connection, never on disk), made after migrate(): the same columns as `series` */
const STAGING = 'CREATE TEMP TABLE IF NOT EXISTS series_new AS SELECT * FROM series LIMIT 0';

/** The named placeholders of one statement ($p0, $p1 ...) and the values they stand for. */
class Params {
  readonly values: Record<string, DuckDBValue> = {};
  private n = 0;
  readonly bind: Bind = (v) => {
    const name = `p${this.n++}`;
    this.values[name] = v;
    return `$${name}`;
  };
}

const like = (p: Params) => (column: string, prefix: string) => `${column} LIKE ${p.bind(likePrefix(prefix))} ESCAPE '\\'`;

export class DuckDbStore implements Store {
  readonly kind = 'duckdb' as const;
  readonly location: string;
  private instance: DuckDBInstance | undefined;
  private writer: DuckDBConnection | undefined;
  private reader: DuckDBConnection | undefined;
  /** series ids known to be in `series` (committed) */
  private readonly known = new Set<bigint>();
  /** workload keys known to be in `workload_keys` (committed) */
  private readonly knownKeys = new Set<bigint>();
  /** the last seq applied per instance (a cache of `applied`) */
  private readonly seqs = new Map<string, number>();
  /** the first minute not rolled up yet (a cache of rollup_progress) */
  private watermark = 0;
  /** writes, one at a time */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly opts: StoreOptions,
  ) {
    this.location = path === ':memory:' ? 'duckdb (in memory)' : `duckdb:${path}`;
  }

  async open(): Promise<void> {
    this.instance = await DuckDBInstance.create(this.path);
    this.writer = await this.instance.connect();
    this.reader = await this.instance.connect();
    for (const sql of SCHEMA) await this.writer.run(sql);
    await this.migrate(this.writer);
    await this.writer.run(STAGING);
    await this.writer.run('INSERT INTO rollup_progress VALUES (1, 0) ON CONFLICT DO NOTHING');
    this.watermark = Number((await this.rows(this.writer, 'SELECT minute FROM rollup_progress WHERE id = 1'))[0]?.minute ?? 0);
  }

  /** the columns of `series` in table order (a migrated table has LATER_LABELS after first_seen) */
  private seriesColumns: string[] = [];

  /**
   * A store made before LATER_LABELS gets them as columns (DuckDB adds a column with a default but
   * not with NOT NULL), filled from each series' labels JSON in the same transaction.
   */
  private async migrate(conn: DuckDBConnection): Promise<void> {
    const columns = async (): Promise<string[]> =>
      (await this.rows(conn, "SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'series' AND table_schema = 'main' ORDER BY ordinal_position")).map((r) => r.c as string);
    const have = new Set(await columns());
    const add = LATER_LABELS.filter((l) => !have.has(l));
    if (add.length) {
      await conn.run('BEGIN TRANSACTION');
      try {
        for (const l of add) await conn.run(`ALTER TABLE series ADD COLUMN ${l} VARCHAR DEFAULT ''`);
        await conn.run(`UPDATE series SET ${add.map((l) => `${l} = coalesce(json_extract_string(labels, '$.${l}'), '')`).join(', ')}`);
        await conn.run('COMMIT');
      } catch (err) {
        await conn.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
    this.seriesColumns = await columns();
  }

  async close(): Promise<void> {
    // batches given before close() are written first (a group may schedule the next)
    while (this.draining) await this.queue;
    await this.queue;
    this.reader?.closeSync();
    this.writer?.closeSync();
    this.instance?.closeSync();
    this.reader = this.writer = this.instance = undefined;
  }

  private db(): { writer: DuckDBConnection; reader: DuckDBConnection } {
    if (!this.writer || !this.reader) throw new Error('the DuckDB store is not open');
    return { writer: this.writer, reader: this.reader };
  }

  private async rows(conn: DuckDBConnection, sql: string, values: DuckDBValue[] | Record<string, DuckDBValue> = []): Promise<Record<string, unknown>[]> {
    const r = await conn.runAndReadAll(sql, values);
    // column by column, then objects: a third of the time getRowObjectsJS takes on 100,000 rows
    const names = r.columnNames();
    const columns = r.getColumnsJS();
    const out = new Array<Record<string, unknown>>(r.currentRowCount);
    for (let i = 0; i < out.length; i++) {
      const o: Record<string, unknown> = {};
      for (let k = 0; k < names.length; k++) o[names[k]!] = columns[k]![i];
      out[i] = o;
    }
    return out;
  }

  /** Runs a write after the ones before it. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Batches wait here while a transaction is being written; the next transaction takes all of them
   * (up to GROUP_MAX_SAMPLES). A commit costs a few milliseconds whatever it holds (the WAL is
   * synced), so under load batches share it: group commit, as databases do for their clients.
   */
  private pending: { rows: BatchRows; resolve: (applied: boolean) => void; reject: (err: unknown) => void }[] = [];
  private draining = false;

  apply(b: BatchRows): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.pending.push({ rows: b, resolve, reject });
      if (!this.draining) this.drain();
    });
  }

  /** Writes the next group of pending batches, in its turn among writes (maintain() may come between groups). */
  private drain(): void {
    this.draining = true;
    void this.serial(async () => {
      let n = 0;
      let samples = 0;
      while (n < this.pending.length && (n === 0 || samples + weight(this.pending[n]!.rows) <= GROUP_MAX_SAMPLES)) samples += weight(this.pending[n++]!.rows);
      const group = this.pending.splice(0, n);
      try {
        const applied = await this.applyGroup(group.map((g) => g.rows));
        group.forEach((g, i) => g.resolve(applied[i]!));
      } catch (err) {
        // a batch that cannot be written must not fail the others: each alone, in order
        if (group.length === 1) group[0]!.reject(err);
        else
          for (const g of group) {
            try {
              g.resolve((await this.applyGroup([g.rows]))[0]!);
            } catch (e) {
              g.reject(e);
            }
          }
      }
      if (this.pending.length) this.drain();
      else this.draining = false;
    });
  }

  /** Applies batches in one transaction: each unless its instance already has its seq or a higher one. */
  private async applyGroup(batches: readonly BatchRows[]): Promise<boolean[]> {
    const { writer } = this.db();
    const seqs = new Map<string, number>();
    const accepted: BatchRows[] = [];
    const applied: boolean[] = [];
    for (const b of batches) {
      const { instance, seq } = b.report;
      const last = seqs.get(instance) ?? (await this.lastSeqOf(writer, instance));
      applied.push(seq > last);
      if (seq > last) {
        seqs.set(instance, seq);
        accepted.push(b);
      }
    }
    if (!accepted.length) return applied;
    const fresh = new Map<bigint, { row: BatchRows['series'][number]; received: number }>();
    for (const b of accepted) for (const s of b.series) if (!this.known.has(s.id) && !fresh.has(s.id)) fresh.set(s.id, { row: s, received: b.report.received });
    const sums = accepted.map((b) => batchSums(b));
    const newKeys = new Map<bigint, WorkloadKeyRow>();
    for (const x of sums) for (const k of x.keys) if (!this.knownKeys.has(k.key)) newKeys.set(k.key, k);
    const rows = sums.flatMap((x) => workloadTableRows(x.sums, x.presence));
    const samples = accepted.length === 1 ? accepted[0]!.samples : accepted.flatMap((b) => b.samples);
    const events = accepted.flatMap((b) => b.events);
    const profiles = accepted.flatMap((b) => b.profiles ?? []);
    await writer.run('BEGIN TRANSACTION');
    try {
      if (fresh.size) {
        const a = await writer.createAppender('series_new', 'main', 'temp');
        for (const { row: s, received } of fresh.values()) {
          // in the table's order of columns (a migrated store has the later labels last)
          for (const c of this.seriesColumns) {
            if (c === 'id') a.appendBigInt(s.id);
            else if (c === 'first_seen') a.appendBigInt(BigInt(received));
            else if (c === 'node') a.appendVarchar(s.node);
            else if (c === 'metric') a.appendVarchar(s.metric);
            else if (c === 'type') a.appendVarchar(s.type);
            else if (c === 'labels') a.appendVarchar(JSON.stringify(s.labels));
            else a.appendVarchar(s.labels[c] ?? '');
          }
          a.endRow();
        }
        a.closeSync();
        await writer.run('INSERT INTO series SELECT * FROM series_new ON CONFLICT DO NOTHING');
        await writer.run('DELETE FROM series_new');
      }
      if (samples.length) await this.appendSamples(await writer.createAppender('samples'), samples);
      if (newKeys.size) {
        const p = new Params();
        const values = [...newKeys.values()].map((k) => `(${[k.key, k.metric, k.namespace, k.workload_kind, k.workload, k.le].map((v) => p.bind(v)).join(', ')})`);
        await writer.run(`INSERT INTO workload_keys VALUES ${values.join(', ')} ON CONFLICT DO NOTHING`, p.values);
      }
      await this.appendColumns(writer, 'workload_samples', WORKLOAD_TYPES, [rows.map((r) => BigInt(r.ts)), rows.map((r) => r.key), rows.map((r) => r.delta)]);
      const late = lateWorkloadRows(rows, this.watermark);
      await this.appendColumns(writer, 'workload_1m', WORKLOAD_TYPES, [late.map((r) => BigInt(r.minute)), late.map((r) => r.key), late.map((r) => r.delta_sum)]);
      const lateSamples = lateRollups(samples, this.watermark);
      if (lateSamples.length) {
        const a = await writer.createAppender('rollups_1m');
        for (const r of lateSamples) {
          a.appendBigInt(BigInt(r.minute));
          a.appendBigInt(r.series);
          for (const v of [r.delta_sum, r.value_sum]) a.appendDouble(v);
          a.appendBigInt(1n);
          for (const v of [r.value_last, r.value_min, r.value_max]) a.appendDouble(v);
          a.endRow();
        }
        a.closeSync();
      }
      if (events.length) await this.appendEvents(await writer.createAppender('events'), events);
      await this.insertProfiles(writer, profiles);
      // a row per batch, through an appender too: an INSERT costs a round trip and its planning (~1 ms)
      const ra = await writer.createAppender('reports');
      for (const { report: r } of accepted) {
        for (const v of [r.node, r.instance, BigInt(r.seq), r.version, BigInt(r.started), BigInt(r.received), r.cgroupSubtree, r.status]) {
          if (typeof v === 'bigint') ra.appendBigInt(v);
          else ra.appendVarchar(v);
        }
        ra.endRow();
      }
      ra.closeSync();
      await writer.run('COMMIT');
    } catch (err) {
      await writer.run('ROLLBACK').catch(() => undefined);
      await writer.run('DELETE FROM series_new').catch(() => undefined);
      throw err;
    }
    for (const id of fresh.keys()) this.known.add(id);
    for (const k of newKeys.keys()) this.knownKeys.add(k);
    for (const [instance, seq] of seqs) this.seqs.set(instance, seq);
    return applied;
  }

  /**
   * Samples go in as data chunks of whole columns: with a file, twice the rate of appending value by
   * value (about 1 M rows/s against 0.5 M on the bench machine).
   */
  private async appendSamples(a: DuckDBAppender, samples: readonly SampleRow[]): Promise<void> {
    for (let off = 0; off < samples.length; off += CHUNK_ROWS) {
      const n = Math.min(CHUNK_ROWS, samples.length - off);
      const ts = new Array<bigint>(n);
      const series = new Array<bigint>(n);
      const value = new Array<number>(n);
      const delta = new Array<number | null>(n);
      for (let i = 0; i < n; i++) {
        const s = samples[off + i]!;
        ts[i] = BigInt(s.ts);
        series[i] = s.series;
        value[i] = s.value;
        delta[i] = s.delta;
      }
      const chunk = DuckDBDataChunk.create(SAMPLE_TYPES, n);
      chunk.setColumns([ts, series, value, delta]);
      a.appendDataChunk(chunk);
    }
    a.closeSync();
    await Promise.resolve();
  }

  /** Appends whole columns to a table (rows: the columns' length), in chunks of CHUNK_ROWS. */
  private async appendColumns(conn: DuckDBConnection, table: string, types: readonly DuckDBType[], columns: DuckDBValue[][]): Promise<void> {
    const n = columns[0]!.length;
    if (n === 0) return;
    const a = await conn.createAppender(table);
    for (let off = 0; off < n; off += CHUNK_ROWS) {
      const chunk = DuckDBDataChunk.create(types, Math.min(CHUNK_ROWS, n - off));
      chunk.setColumns(columns.map((c) => (off === 0 && n <= CHUNK_ROWS ? c : c.slice(off, off + CHUNK_ROWS))));
      a.appendDataChunk(chunk);
    }
    a.closeSync();
  }

  private async appendEvents(a: DuckDBAppender, events: readonly EventRow[]): Promise<void> {
    for (const e of events) {
      a.appendBigInt(BigInt(e.ts));
      for (const v of [e.node, e.type, e.namespace, e.pod, e.container, e.workload_kind, e.workload, e.cgroup, e.body]) a.appendVarchar(v);
      a.endRow();
    }
    a.closeSync();
    await Promise.resolve();
  }

  /** Appends profile stacks (in apply()'s transaction: a batch's stacks go in with the rest of it, once). */
  private async insertProfiles(conn: DuckDBConnection, rows: readonly ProfileRow[]): Promise<void> {
    await this.appendColumns(
      conn,
      'profile_stacks',
      PROFILE_TYPES,
      PROFILE_COLUMNS.map((c) => (c === 'ts' ? rows.map((r) => BigInt(r.ts)) : rows.map((r) => r[c]))),
    );
  }

  private async lastSeqOf(conn: DuckDBConnection, instance: string): Promise<number> {
    const cached = this.seqs.get(instance);
    if (cached !== undefined) return cached;
    const seq = Number((await this.rows(conn, 'SELECT max(seq) AS seq FROM reports WHERE instance = ?', [instance]))[0]?.seq ?? 0);
    this.seqs.set(instance, seq);
    return seq;
  }

  async lastSeq(instance: string): Promise<number> {
    return this.lastSeqOf(this.db().reader, instance);
  }

  async nodes(since?: number, now = Date.now()): Promise<AgentReport[]> {
    const rows = await this.rows(
      this.db().reader,
      'SELECT * FROM reports WHERE received >= ? QUALIFY row_number() OVER (PARTITION BY node ORDER BY received DESC, seq DESC) = 1 ORDER BY node',
      // an instance's last report outlives raw retention (it holds the instance's last seq), not in this list
      [Math.max(since ?? 0, now - this.opts.rawRetentionMs)],
    );
    return rows.map((r) => ({
      node: r.node as string,
      instance: r.instance as string,
      seq: Number(r.seq),
      version: r.version as string,
      started: Number(r.started),
      received: Number(r.received),
      cgroupSubtree: r.cgroup_subtree as string,
      status: r.status as string,
    }));
  }

  /**
   * The rows of a range as (series, ts, d, v, n, l): a raw sample is (delta, value, 1, value), a
   * rollup is (delta_sum, value_sum, value_count, value_last), so one aggregation reads either.
   * `ids` is the subquery of the matching series.
   */
  private facts(range: Range, ids: string, p: Params): string {
    const { rollup, raw } = plan(range.from, range.to, Date.now(), this.opts.rawRetentionMs, this.watermark);
    const parts: string[] = [];
    // a part per raw range: an OR of ranges would scan the whole table (no zone maps)
    for (const [a, b] of raw) parts.push(`SELECT series, ts, coalesce(delta, 0) AS d, value AS v, 1 AS n, value AS l FROM samples WHERE ts >= ${p.bind(a)} AND ts < ${p.bind(b)} AND series IN (${ids})`);
    if (rollup)
      parts.push(
        `SELECT series, minute AS ts, delta_sum AS d, value_sum AS v, value_count AS n, value_last AS l FROM rollups_1m WHERE minute >= ${p.bind(rollup[0])} AND minute < ${p.bind(rollup[1])} AND series IN (${ids})`,
      );
    return parts.join(' UNION ALL ');
  }

  /** The subquery of the ids of the series of these metrics (all: undefined) that pass the filters. */
  private ids(metrics: readonly string[] | undefined, filters: Filters | undefined, p: Params): string {
    const where = [...(metrics ? [inList('metric', metrics, p.bind)] : []), ...filterSql(filters, p.bind, like(p))];
    return `SELECT id FROM series WHERE ${where.length ? where.join(' AND ') : 'TRUE'}`;
  }

  async distinct(column: Column, range: Range, filters?: Filters): Promise<string[]> {
    const c = checkColumn(column);
    const p = new Params();
    const ids = this.ids(undefined, filters, p);
    const sql = `SELECT DISTINCT ${c} AS v FROM series WHERE ${c} <> '' AND id IN (SELECT series FROM (${this.facts(range, ids, p)})) ORDER BY v`;
    return (await this.rows(this.db().reader, sql, p.values)).map((r) => r.v as string);
  }

  async aggregate(q: AggregateQuery): Promise<AggregateRow[]> {
    const groups = [...new Set(q.groupBy.map(checkColumn))];
    const p = new Params();
    const sel = groups.map((g) => `, s.${g} AS ${g}`).join('');
    const sql = `SELECT s.metric AS metric, s.type AS type${sel}, sum(f.d) AS d, sum(f.a) AS a, sum(f.l) AS l, count(*) AS n
      FROM (SELECT series, sum(d) AS d, sum(v) / sum(n) AS a, arg_max(l, ts) AS l
            FROM (${this.facts(q, this.ids(q.metrics, q.filters, p), p)}) GROUP BY series) f
      JOIN series s ON s.id = f.series
      GROUP BY ALL`;
    const rows = await this.rows(this.db().reader, sql, p.values);
    return rows.map((r) => aggregateRow(r, groups));
  }

  async series(q: SeriesQuery): Promise<SeriesLine[]> {
    const groups = [...new Set((q.groupBy ?? []).map(checkColumn))];
    const p = new Params();
    const sel = groups.map((g) => `s.${g} AS ${g}, `).join('');
    const bucket = `${p.bind(q.from)} + floor((ts - ${p.bind(q.from)}) / ${p.bind(q.stepMs)}) * ${p.bind(q.stepMs)}`;
    const sql = `SELECT ${sel}any_value(s.type) AS type, f.b AS b, sum(f.d) AS d, sum(f.a) AS a
      FROM (SELECT series, ${bucket} AS b, sum(d) AS d, sum(v) / sum(n) AS a
            FROM (${this.facts(q, this.ids([q.metric], q.filters, p), p)}) GROUP BY series, b) f
      JOIN series s ON s.id = f.series
      GROUP BY ${groups.map((g) => `s.${g}, `).join('')}f.b`;
    const rows = await this.rows(this.db().reader, sql, p.values);
    return toLines(
      rows.map((r) => ({ group: Object.fromEntries(groups.map((g) => [g, r[g] as string])), bucket: Number(r.b), value: Number(r.type === 'counter' ? r.d : r.a) })),
      q.limit,
    );
  }

  /** A range's rows from a raw table and its minute rollup (store-sql.ts: rangeParts). */
  private split(range: Range, p: Params, raw: TablePart, rollup: TablePart): string {
    return rangeParts(range, Date.now(), this.opts.rawRetentionMs, this.watermark, p.bind, raw, rollup);
  }

  async workloadSums(q: WorkloadSumsQuery): Promise<WorkloadSumRow[]> {
    const p = new Params();
    const keys = `key IN (SELECT key FROM workload_keys WHERE ${[inList('metric', q.metrics, p.bind), ...filterSql(q.filters, p.bind, like(p))].join(' AND ')})`;
    const facts = this.split(q, p, { from: 'workload_samples', select: 'key, delta AS d', where: keys }, { from: 'workload_1m', select: 'key, delta_sum AS d', where: keys });
    const sql = `SELECT k.metric AS metric, k.namespace AS namespace, k.workload_kind AS workload_kind, k.workload AS workload, k.le AS le, f.d AS d
      FROM (SELECT key, sum(d) AS d FROM (${facts}) GROUP BY key) f JOIN workload_keys k ON k.key = f.key`;
    return (await this.rows(this.db().reader, sql, p.values)).map(workloadSumRow);
  }

  async placement(q: Range & { filters?: WorkloadSumFilters }): Promise<PlacementRow[]> {
    const p = new Params();
    const where = [`metric = ${p.bind(PRESENCE_METRIC)}`, "workload <> ''", ...filterSql(q.filters, p.bind, like(p))].join(' AND ');
    // presence rows: the key is a series id, the delta null
    const seen = this.split(q, p, { from: 'workload_samples', select: 'key', where: 'delta IS NULL' }, { from: 'workload_1m', select: 'key', where: 'delta_sum IS NULL' });
    const sql = `SELECT node, namespace, workload_kind, workload, cgroup, pod, container FROM series WHERE ${where} AND id IN (${seen})`;
    return (await this.rows(this.db().reader, sql, p.values)).map(placementRow);
  }

  async events(q: EventQuery): Promise<EventRow[]> {
    const p = new Params();
    const where = [`ts >= ${p.bind(q.from)}`, `ts < ${p.bind(q.to)}`, ...filterSql(q.filters, p.bind, like(p), EVENT_COLUMNS)];
    if (q.types?.length) where.push(inList('type', q.types, p.bind));
    const sql = `SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY ts DESC LIMIT ${p.bind(Math.max(0, Math.floor(q.limit)))}`;
    return (await this.rows(this.db().reader, sql, p.values)).map((r) => ({
      ts: Number(r.ts),
      node: r.node as string,
      type: r.type as string,
      namespace: r.namespace as string,
      pod: r.pod as string,
      container: r.container as string,
      workload_kind: r.workload_kind as string,
      workload: r.workload as string,
      cgroup: r.cgroup as string,
      body: r.body as string,
    }));
  }

  async profile(q: ProfileStacksQuery): Promise<ProfileStacks> {
    const p = new Params();
    const limit = profileLimit(q.limit);
    // one pass: the window functions count every stack before LIMIT keeps the largest (at least one
    // row, so the totals come back whenever a stack matched)
    const sql = `SELECT stack, v, count(*) OVER () AS n, sum(v) OVER () AS total, max(p) OVER () AS period
      FROM (SELECT stack, sum(value) AS v, max(period) AS p FROM profile_stacks WHERE ${profileWhere(q, p.bind, like(p))} GROUP BY stack)
      ORDER BY v DESC, stack LIMIT ${p.bind(Math.max(1, limit))}`;
    const rows = await this.rows(this.db().reader, sql, p.values);
    const first = rows[0];
    return profileStacks(rows.slice(0, limit), Number(first?.n ?? 0), Number(first?.total ?? 0), Number(first?.period ?? 0));
  }

  maintain(now: number): Promise<MaintainResult> {
    return this.serial(async () => {
      const { writer } = this.db();
      // minutes that closed a grace period ago: a batch a little late still lands in its minute
      const closed = Math.floor((now - ROLLUP_GRACE_MS) / MINUTE) * MINUTE;
      let minutesRolledUp = 0;
      let droppedParts = 0;
      await writer.run('BEGIN TRANSACTION');
      try {
        if (closed > this.watermark) {
          // start at the oldest raw sample when the watermark is behind it (a new store, or a long pause)
          const start = Math.max(this.watermark, Math.floor(Number((await this.rows(writer, 'SELECT coalesce(min(ts), 0) AS m FROM samples WHERE ts >= $w', { w: this.watermark }))[0]!.m) / MINUTE) * MINUTE);
          const range = { from: start, to: closed };
          await writer.run(
            `INSERT INTO rollups_1m
             SELECT ts // 60000 * 60000 AS minute, series, sum(coalesce(delta, 0)), sum(value), count(*), arg_max(value, ts), min(value), max(value)
             FROM samples WHERE ts >= $from AND ts < $to GROUP BY ALL`,
            range,
          );
          await writer.run('INSERT INTO workload_1m SELECT ts // 60000 * 60000 AS minute, key, sum(delta) FROM workload_samples WHERE ts >= $from AND ts < $to GROUP BY ALL', range);
          minutesRolledUp = Number((await this.rows(writer, 'SELECT count(DISTINCT ts // 60000) AS n FROM samples WHERE ts >= $from AND ts < $to', range))[0]!.n);
          await writer.run('UPDATE rollup_progress SET minute = $m WHERE id = 1', { m: closed });
        }
        const rawBefore = now - this.opts.rawRetentionMs;
        droppedParts = (await writer.run('DELETE FROM samples WHERE ts < $t', { t: rawBefore })).rowsChanged;
        await writer.run('DELETE FROM events WHERE ts < $t', { t: rawBefore });
        // profile stacks have no rollup: they live as long as raw samples (store.ts)
        await writer.run('DELETE FROM profile_stacks WHERE ts < $t', { t: rawBefore });
        await writer.run('DELETE FROM workload_samples WHERE ts < $t', { t: rawBefore });
        // each instance's last report stays: it is the instance's last seq
        await writer.run('DELETE FROM reports WHERE received < $t AND (instance, seq) NOT IN (SELECT instance, max(seq) FROM reports GROUP BY instance)', { t: rawBefore });
        await writer.run('DELETE FROM rollups_1m WHERE minute < $t', { t: now - this.opts.rollupRetentionMs });
        await writer.run('DELETE FROM workload_1m WHERE minute < $t', { t: now - this.opts.rollupRetentionMs });
        await writer.run('COMMIT');
      } catch (err) {
        await writer.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
      if (closed > this.watermark) this.watermark = closed;
      return { minutesRolledUp, droppedParts };
    });
  }

  async size(): Promise<number> {
    if (this.path === ':memory:') {
      const r = await this.rows(this.db().reader, 'SELECT sum(memory_usage_bytes) AS b FROM duckdb_memory()');
      return Number(r[0]?.b ?? 0);
    }
    let bytes = 0;
    for (const f of [this.path, `${this.path}.wal`]) {
      try {
        bytes += statSync(f).size;
      } catch {
        // no WAL right after a checkpoint
      }
    }
    return bytes;
  }
}
