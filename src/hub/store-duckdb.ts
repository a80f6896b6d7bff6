/**
 * The hub's embedded store: DuckDB in the hub process, in one file (or ':memory:'). The tables are
 * those of store.ts's model: `series` (one row per series id, its indexed labels as columns),
 * `samples` (ts in ms, series, value, delta), `rollups_1m`, `events`, `reports`, `applied` (the last
 * seq of each agent instance) and `rollup_progress` (the first minute not rolled up yet).
 *
 * A batch is applied in one transaction on the writing connection: its seq is checked and recorded,
 * new series go through a staging table (INSERT ... ON CONFLICT DO NOTHING), samples and events go in
 * through the Appender (DuckDB's bulk path: no SQL per row). Writes are serialised in the process;
 * queries run on a second connection and see committed data only.
 */
import { statSync } from 'node:fs';
import { BIGINT, DOUBLE, DuckDBConnection, DuckDBDataChunk, DuckDBInstance, type DuckDBAppender, type DuckDBValue } from '@duckdb/node-api';
import {
  INDEXED_LABELS,
  type AgentReport,
  type AggregateQuery,
  type AggregateRow,
  type BatchRows,
  type Column,
  type EventQuery,
  type EventRow,
  type Filters,
  type MaintainResult,
  type Range,
  type SampleRow,
  type SeriesLine,
  type SeriesQuery,
  type Store,
  type StoreOptions,
} from './store.js';
import { MINUTE, ROLLUP_GRACE_MS, aggregateRow, checkColumn, lateRollups, filterSql, inList, likePrefix, plan, toLines, type Bind } from './store-sql.js';

const LABEL_COLUMNS = INDEXED_LABELS.map((l) => `${l} VARCHAR NOT NULL`).join(', ');
/** Rows per data chunk (DuckDB's vector size). */
const CHUNK_ROWS = 2048;
const SAMPLE_TYPES = [BIGINT, BIGINT, DOUBLE, DOUBLE];
const EVENT_COLUMNS = ['node', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'cgroup'];

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS series (id BIGINT PRIMARY KEY, node VARCHAR NOT NULL, metric VARCHAR NOT NULL, type VARCHAR NOT NULL, labels VARCHAR NOT NULL, ${LABEL_COLUMNS}, first_seen BIGINT NOT NULL)`,
  'CREATE TABLE IF NOT EXISTS samples (ts BIGINT NOT NULL, series BIGINT NOT NULL, value DOUBLE NOT NULL, delta DOUBLE)',
  'CREATE TABLE IF NOT EXISTS rollups_1m (minute BIGINT NOT NULL, series BIGINT NOT NULL, delta_sum DOUBLE NOT NULL, value_sum DOUBLE NOT NULL, value_count BIGINT NOT NULL, value_last DOUBLE NOT NULL, value_min DOUBLE NOT NULL, value_max DOUBLE NOT NULL)',
  'CREATE TABLE IF NOT EXISTS events (ts BIGINT NOT NULL, node VARCHAR NOT NULL, type VARCHAR NOT NULL, namespace VARCHAR NOT NULL, pod VARCHAR NOT NULL, container VARCHAR NOT NULL, workload_kind VARCHAR NOT NULL, workload VARCHAR NOT NULL, cgroup VARCHAR NOT NULL, body VARCHAR NOT NULL)',
  'CREATE TABLE IF NOT EXISTS reports (node VARCHAR NOT NULL, instance VARCHAR NOT NULL, seq BIGINT NOT NULL, version VARCHAR NOT NULL, started BIGINT NOT NULL, received BIGINT NOT NULL, cgroup_subtree VARCHAR NOT NULL, status VARCHAR NOT NULL)',
  // a row per applied batch (appended: cheaper than an upsert); maintain() keeps the last of each instance
  'CREATE TABLE IF NOT EXISTS applied (instance VARCHAR NOT NULL, seq BIGINT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS rollup_progress (id INTEGER PRIMARY KEY, minute BIGINT NOT NULL)',
  // the staging table of new series (per connection, never on disk)
  'CREATE TEMP TABLE IF NOT EXISTS series_new AS SELECT * FROM series LIMIT 0',
];

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
    await this.writer.run('INSERT INTO rollup_progress VALUES (1, 0) ON CONFLICT DO NOTHING');
    this.watermark = Number((await this.rows(this.writer, 'SELECT minute FROM rollup_progress WHERE id = 1'))[0]?.minute ?? 0);
  }

  async close(): Promise<void> {
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

  apply(b: BatchRows): Promise<boolean> {
    return this.serial(async () => {
      const { writer } = this.db();
      const { instance, seq } = b.report;
      if ((await this.lastSeqOf(writer, instance)) >= seq) return false;
      const fresh = new Map<bigint, BatchRows['series'][number]>();
      for (const s of b.series) if (!this.known.has(s.id)) fresh.set(s.id, s);
      await writer.run('BEGIN TRANSACTION');
      try {
        if (fresh.size) {
          const a = await writer.createAppender('series_new', 'main', 'temp');
          for (const s of fresh.values()) {
            a.appendBigInt(s.id);
            a.appendVarchar(s.node);
            a.appendVarchar(s.metric);
            a.appendVarchar(s.type);
            a.appendVarchar(JSON.stringify(s.labels));
            for (const l of INDEXED_LABELS) a.appendVarchar(s.labels[l] ?? '');
            a.appendBigInt(BigInt(b.report.received));
            a.endRow();
          }
          a.closeSync();
          await writer.run('INSERT INTO series SELECT * FROM series_new ON CONFLICT DO NOTHING');
          await writer.run('DELETE FROM series_new');
        }
        if (b.samples.length) await this.appendSamples(await writer.createAppender('samples'), b.samples);
        const late = lateRollups(b.samples, this.watermark);
        if (late.length) {
          const a = await writer.createAppender('rollups_1m');
          for (const r of late) {
            a.appendBigInt(BigInt(r.minute));
            a.appendBigInt(r.series);
            for (const v of [r.delta_sum, r.value_sum]) a.appendDouble(v);
            a.appendBigInt(1n);
            for (const v of [r.value_last, r.value_min, r.value_max]) a.appendDouble(v);
            a.endRow();
          }
          a.closeSync();
        }
        if (b.events.length) await this.appendEvents(await writer.createAppender('events'), b.events);
        const r = b.report;
        // one row each, through appenders too: an INSERT costs a round trip and its planning (~1 ms)
        const ra = await writer.createAppender('reports');
        for (const v of [r.node, r.instance, BigInt(r.seq), r.version, BigInt(r.started), BigInt(r.received), r.cgroupSubtree, r.status]) {
          if (typeof v === 'bigint') ra.appendBigInt(v);
          else ra.appendVarchar(v);
        }
        ra.endRow();
        ra.closeSync();
        const aa = await writer.createAppender('applied');
        aa.appendVarchar(instance);
        aa.appendBigInt(BigInt(seq));
        aa.endRow();
        aa.closeSync();
        await writer.run('COMMIT');
      } catch (err) {
        await writer.run('ROLLBACK').catch(() => undefined);
        await writer.run('DELETE FROM series_new').catch(() => undefined);
        throw err;
      }
      for (const id of fresh.keys()) this.known.add(id);
      this.seqs.set(instance, seq);
      return true;
    });
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

  private async appendEvents(a: DuckDBAppender, events: readonly EventRow[]): Promise<void> {
    for (const e of events) {
      a.appendBigInt(BigInt(e.ts));
      for (const v of [e.node, e.type, e.namespace, e.pod, e.container, e.workload_kind, e.workload, e.cgroup, e.body]) a.appendVarchar(v);
      a.endRow();
    }
    a.closeSync();
    await Promise.resolve();
  }

  private async lastSeqOf(conn: DuckDBConnection, instance: string): Promise<number> {
    const cached = this.seqs.get(instance);
    if (cached !== undefined) return cached;
    const seq = Number((await this.rows(conn, 'SELECT max(seq) AS seq FROM applied WHERE instance = ?', [instance]))[0]?.seq ?? 0);
    this.seqs.set(instance, seq);
    return seq;
  }

  async lastSeq(instance: string): Promise<number> {
    return this.lastSeqOf(this.db().reader, instance);
  }

  async nodes(since?: number): Promise<AgentReport[]> {
    const rows = await this.rows(
      this.db().reader,
      'SELECT * FROM reports WHERE received >= ? QUALIFY row_number() OVER (PARTITION BY node ORDER BY received DESC, seq DESC) = 1 ORDER BY node',
      [since ?? 0],
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
    if (raw.length) {
      const when = raw.map(([a, b]) => `(ts >= ${p.bind(a)} AND ts < ${p.bind(b)})`).join(' OR ');
      parts.push(`SELECT series, ts, coalesce(delta, 0) AS d, value AS v, 1 AS n, value AS l FROM samples WHERE (${when}) AND series IN (${ids})`);
    }
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

  async events(q: EventQuery): Promise<EventRow[]> {
    const p = new Params();
    const where = [`ts >= ${p.bind(q.from)}`, `ts < ${p.bind(q.to)}`, ...filterSql(q.filters, p.bind, like(p), EVENT_COLUMNS)];
    if (q.types) where.push(inList('type', q.types, p.bind));
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
          minutesRolledUp = Number((await this.rows(writer, 'SELECT count(DISTINCT ts // 60000) AS n FROM samples WHERE ts >= $from AND ts < $to', range))[0]!.n);
          await writer.run('UPDATE rollup_progress SET minute = $m WHERE id = 1', { m: closed });
        }
        const rawBefore = now - this.opts.rawRetentionMs;
        droppedParts = (await writer.run('DELETE FROM samples WHERE ts < $t', { t: rawBefore })).rowsChanged;
        await writer.run('DELETE FROM events WHERE ts < $t', { t: rawBefore });
        await writer.run('DELETE FROM applied WHERE (instance, seq) NOT IN (SELECT instance, max(seq) FROM applied GROUP BY instance)');
        await writer.run('DELETE FROM reports WHERE received < $t', { t: rawBefore });
        await writer.run('DELETE FROM rollups_1m WHERE minute < $t', { t: now - this.opts.rollupRetentionMs });
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
