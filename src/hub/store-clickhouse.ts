/**
 * The hub's store past one machine: ClickHouse, which several hubs may share (they keep no state of
 * their own but caches). Written for the oldest server we meet, Debian's clickhouse-server 18.16: the
 * MergeTree family, JSONEachRow over HTTP, PARTITION BY an expression, ALTER TABLE ... DROP PARTITION;
 * no TTL, no Map or JSON types, no query parameters.
 *
 * Tables (times are Int64 ms since the epoch, series ids Int64):
 *   series           ReplacingMergeTree ORDER BY id: a series written twice (two hubs, or a retry)
 *                    collapses at merge time; queries join it with ANY, so a duplicate never counts twice
 *   samples          MergeTree PARTITION BY hour, ORDER BY (series, ts)
 *   rollups_1m       MergeTree PARTITION BY day, ORDER BY (series, minute)
 *   workload_keys    ReplacingMergeTree ORDER BY key: what each workload key stands for (store.ts)
 *   workload_samples MergeTree PARTITION BY hour, ORDER BY ts: a batch's counters summed per workload
 *                    key, and its PRESENCE_METRIC series (keyed by series id, delta null: store-sql.ts)
 *   workload_1m      MergeTree PARTITION BY day, ORDER BY (minute, key): the same per minute over every node
 *   events, reports  MergeTree PARTITION BY hour
 *   profile_stacks   MergeTree PARTITION BY hour, ORDER BY (type, ts): a row per stack of a shipped
 *                    profile (store.ts), kept as long as raw samples (no rollup)
 *   applied          ReplacingMergeTree(seq) ORDER BY instance: the last seq of each agent instance
 *   rollup_progress  ReplacingMergeTree(minute): the first minute not rolled up yet
 * Retention drops whole partitions: raw data (profile stacks too) goes when its hour is past rawRetentionMs, rollups when
 * their day is past rollupRetentionMs (so data lives up to an hour, or a day, longer than asked).
 *
 * Exactly-once is best effort here: there is no transaction across tables. apply() checks the last
 * seq (cached in memory; read from `applied` on a miss), writes series, samples, events and the
 * report, and only then the seq marker. Two windows remain: a hub that fails between the data and
 * the marker leaves data that a replay writes again (the agent retries: counted twice), and two hubs
 * given the same batch at the same moment both pass the check. Agents send one batch at a time to one
 * hub, so both need a failure or a reconnection at exactly that moment.
 *
 * maintain() should run on one hub at a time: two rolling up the same minutes at once write them twice.
 * A batch late for minutes already rolled up also goes into the rollups (lateRollups), by the
 * watermark this hub last read: a batch applied by one hub while another rolls up its minute can be
 * missed by the rollups (raw reads still see it).
 *
 * Values in SQL: 18.16 has no query parameters (the client's `query_params` become `param_*`
 * settings, which it refuses with "Unknown setting param_a"), so values are written as literals by
 * `lit` — strings quoted with every backslash and quote escaped, numbers checked finite — and
 * column names come only from COLUMNS. Rows go in as JSONEachRow, which 18.16 reads; Int64 values
 * come back from it as strings (converted with Number/BigInt here). The client's defaults otherwise
 * work with 18.16 (it sends enable_http_compression=1 for gzip responses, which 18.16 knows).
 */
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
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
  type ProfileRow,
  type ProfileStacks,
  type ProfileStacksQuery,
  type Range,
  type SeriesLine,
  type SeriesQuery,
  type Store,
  type StoreOptions,
  PRESENCE_METRIC,
  type PlacementRow,
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
} from './store-sql.js';
import { PeriscopeError } from '../kernel/errors.js';

const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const EVENT_COLUMNS = ['node', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'cgroup'];

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS series (id Int64, node String, metric String, type String, labels String, ${INDEXED_LABELS.map((l) => `${l} String`).join(', ')}, first_seen Int64)
   ENGINE = ReplacingMergeTree ORDER BY id`,
  'CREATE TABLE IF NOT EXISTS samples (ts Int64, series Int64, value Float64, delta Nullable(Float64)) ENGINE = MergeTree PARTITION BY intDiv(ts, 3600000) ORDER BY (series, ts)',
  `CREATE TABLE IF NOT EXISTS rollups_1m (minute Int64, series Int64, delta_sum Float64, value_sum Float64, value_count UInt64, value_last Float64, value_min Float64, value_max Float64)
   ENGINE = MergeTree PARTITION BY intDiv(minute, 86400000) ORDER BY (series, minute)`,
  'CREATE TABLE IF NOT EXISTS workload_keys (key Int64, metric String, namespace String, workload_kind String, workload String, le String) ENGINE = ReplacingMergeTree ORDER BY key',
  'CREATE TABLE IF NOT EXISTS workload_samples (ts Int64, key Int64, delta Nullable(Float64)) ENGINE = MergeTree PARTITION BY intDiv(ts, 3600000) ORDER BY ts',
  'CREATE TABLE IF NOT EXISTS workload_1m (minute Int64, key Int64, delta_sum Nullable(Float64)) ENGINE = MergeTree PARTITION BY intDiv(minute, 86400000) ORDER BY (minute, key)',
  `CREATE TABLE IF NOT EXISTS events (ts Int64, node String, type String, namespace String, pod String, container String, workload_kind String, workload String, cgroup String, body String)
   ENGINE = MergeTree PARTITION BY intDiv(ts, 3600000) ORDER BY ts`,
  // new with profiling: a store made before it gets the table when it opens (nothing else changed)
  `CREATE TABLE IF NOT EXISTS profile_stacks (ts Int64, node String, type String, namespace String, pod String, container String, workload_kind String, workload String, cgroup String,
     stack String, value Float64, period Float64)
   ENGINE = MergeTree PARTITION BY intDiv(ts, 3600000) ORDER BY (type, ts)`,
  `CREATE TABLE IF NOT EXISTS reports (node String, instance String, seq Int64, version String, started Int64, received Int64, cgroup_subtree String, status String)
   ENGINE = MergeTree PARTITION BY intDiv(received, 3600000) ORDER BY (node, received)`,
  'CREATE TABLE IF NOT EXISTS applied (instance String, seq Int64) ENGINE = ReplacingMergeTree(seq) ORDER BY instance',
  'CREATE TABLE IF NOT EXISTS rollup_progress (id UInt8, minute Int64) ENGINE = ReplacingMergeTree(minute) ORDER BY id',
];

/** A value as a ClickHouse literal (18.16 has no query parameters). */
export function lit(v: string | number | bigint): string {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new PeriscopeError('BAD_ARGUMENT', `not a finite number: ${v}`, 'pass a finite number');
    return String(v);
  }
  return `'${v.replace(/[\\']/g, (m) => `\\${m}`)}'`;
}

/** A prefix test without LIKE's wildcards (startsWith came after 18.16). */
const prefix = (column: string, p: string): string => `substring(${column}, 1, ${Buffer.byteLength(p)}) = ${lit(p)}`;

export interface ClickHouseTarget {
  /** http(s)://host:port */
  url: string;
  username: string;
  password: string;
  database: string;
}

export class ClickHouseStore implements Store {
  readonly kind = 'clickhouse' as const;
  readonly location: string;
  private client: ClickHouseClient | undefined;
  private readonly seqs = new Map<string, number>();
  private readonly known = new Set<bigint>();
  private readonly knownKeys = new Set<bigint>();

  constructor(
    private readonly target: ClickHouseTarget,
    private readonly opts: StoreOptions,
  ) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(target.database))
      throw new PeriscopeError('BAD_ARGUMENT', `bad ClickHouse database name "${target.database}"`, 'use letters, digits and _ (it is created if missing)');
    const u = new URL(target.url);
    const user = target.username ? `${target.username}${target.password ? ':***' : ''}@` : '';
    this.location = `clickhouse:${u.protocol}//${user}${u.host}/${target.database}`;
  }

  private make(database: string): ClickHouseClient {
    return createClient({
      url: this.target.url,
      username: this.target.username || 'default',
      password: this.target.password,
      database,
      log: { level: ClickHouseLogLevel.OFF },
      request_timeout: 120_000,
    });
  }

  async open(): Promise<void> {
    const boot = this.make('default');
    try {
      await boot.command({ query: `CREATE DATABASE IF NOT EXISTS ${this.target.database}` });
    } finally {
      await boot.close();
    }
    this.client = this.make(this.target.database);
    for (const query of SCHEMA) await this.client.command({ query });
    await this.migrate();
    await this.watermark();
  }

  /**
   * A store made before LATER_LABELS gets them as columns whose default is read from the series'
   * labels JSON: parts written before are not rewritten, their rows compute it when read (18.16 has
   * visitParamExtractString; JSON.stringify writes the flat object it parses).
   */
  private async migrate(): Promise<void> {
    const have = new Set((await this.rows("SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'series'")).map((r) => r.name as string));
    for (const l of LATER_LABELS) if (!have.has(l)) await this.ch().command({ query: `ALTER TABLE series ADD COLUMN ${l} String DEFAULT visitParamExtractString(labels, ${lit(l)})` });
  }

  async close(): Promise<void> {
    await this.client?.close();
    this.client = undefined;
  }

  private ch(): ClickHouseClient {
    if (!this.client) throw new Error('the ClickHouse store is not open');
    return this.client;
  }

  private async rows(query: string): Promise<Record<string, unknown>[]> {
    const r = await this.ch().query({ query, format: 'JSONEachRow' });
    return r.json<Record<string, unknown>>();
  }

  private async insert(table: string, values: readonly Record<string, unknown>[]): Promise<void> {
    if (values.length) await this.ch().insert({ table, values: values as Record<string, unknown>[], format: 'JSONEachRow' });
  }

  /** apply() calls, one at a time in call order (the seq check and the marker must not interleave) */
  private applying: Promise<unknown> = Promise.resolve();

  apply(b: BatchRows): Promise<boolean> {
    const next = this.applying.then(() => this.applyOne(b));
    this.applying = next.catch(() => undefined);
    return next;
  }

  private async applyOne(b: BatchRows): Promise<boolean> {
    const { instance, seq } = b.report;
    if ((await this.lastSeq(instance)) >= seq) return false;
    const fresh = new Map<bigint, BatchRows['series'][number]>();
    for (const s of b.series) if (!this.known.has(s.id)) fresh.set(s.id, s);
    await this.insert(
      'series',
      [...fresh.values()].map((s) => ({
        id: s.id.toString(),
        node: s.node,
        metric: s.metric,
        type: s.type,
        labels: JSON.stringify(s.labels),
        ...Object.fromEntries(INDEXED_LABELS.map((l) => [l, s.labels[l] ?? ''])),
        first_seen: b.report.received,
      })),
    );
    await this.insert(
      'samples',
      b.samples.map((s) => ({ ts: s.ts, series: s.series.toString(), value: s.value, delta: s.delta })),
    );
    const { sums, keys, presence } = batchSums(b);
    const newKeys = keys.filter((k) => !this.knownKeys.has(k.key));
    await this.insert('workload_keys', newKeys.map((k) => ({ ...k, key: k.key.toString() })));
    const rows = workloadTableRows(sums, presence);
    await this.insert('workload_samples', rows.map((r) => ({ ...r, key: r.key.toString() })));
    // samples of minutes already rolled up go into the rollups too (by the last watermark this hub read)
    await this.insert(
      'rollups_1m',
      lateRollups(b.samples, this.lastWatermark).map((x) => ({ ...x, series: x.series.toString() })),
    );
    await this.insert('workload_1m', lateWorkloadRows(rows, this.lastWatermark).map((r) => ({ ...r, key: r.key.toString() })));
    await this.insert('events', b.events as unknown as Record<string, unknown>[]);
    await this.insertProfiles(b.profiles ?? []);
    const r = b.report;
    await this.insert('reports', [{ node: r.node, instance, seq, version: r.version, started: r.started, received: r.received, cgroup_subtree: r.cgroupSubtree, status: r.status }]);
    // the marker last: a batch whose data is not all written is not applied
    await this.insert('applied', [{ instance, seq }]);
    for (const id of fresh.keys()) this.known.add(id);
    for (const k of newKeys) this.knownKeys.add(k.key);
    this.seqs.set(instance, seq);
    return true;
  }

  /** Writes profile stacks (in applyOne(): before the batch's seq marker, like the rest of it). */
  private async insertProfiles(rows: readonly ProfileRow[]): Promise<void> {
    await this.insert('profile_stacks', rows as unknown as Record<string, unknown>[]);
  }

  async lastSeq(instance: string): Promise<number> {
    const cached = this.seqs.get(instance);
    if (cached !== undefined) return cached;
    const seq = Number((await this.rows(`SELECT max(seq) AS s FROM applied WHERE instance = ${lit(instance)}`))[0]?.s ?? 0);
    if (seq > 0) this.seqs.set(instance, seq);
    return seq;
  }

  async nodes(since?: number): Promise<AgentReport[]> {
    const rows = await this.rows(`SELECT * FROM reports WHERE received >= ${lit(since ?? 0)} ORDER BY node, received DESC, seq DESC LIMIT 1 BY node`);
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

  /** the rollup watermark as this hub last read it (another hub's maintain() may have moved it since) */
  private lastWatermark = 0;

  private async watermark(): Promise<number> {
    this.lastWatermark = Number((await this.rows('SELECT max(minute) AS m FROM rollup_progress'))[0]?.m ?? 0);
    return this.lastWatermark;
  }

  /** The rows of a range as (series, ts, d, v, n, l), from raw samples and rollups (see store-duckdb.ts). */
  private async facts(range: Range, ids: string): Promise<string> {
    const { rollup, raw } = plan(range.from, range.to, Date.now(), this.opts.rawRetentionMs, await this.watermark());
    const parts: string[] = [];
    // one part for the raw ranges (partitions are pruned by the OR): each part evaluates the ids' subquery again
    if (raw.length) {
      const when = raw.map(([a, b]) => `(ts >= ${lit(a)} AND ts < ${lit(b)})`).join(' OR ');
      parts.push(`SELECT series, ts, toFloat64(ifNull(delta, 0)) AS d, value AS v, toUInt64(1) AS n, value AS l FROM samples WHERE (${when}) AND series IN (${ids})`);
    }
    if (rollup)
      parts.push(
        `SELECT series, minute AS ts, delta_sum AS d, value_sum AS v, value_count AS n, value_last AS l FROM rollups_1m WHERE minute >= ${lit(rollup[0])} AND minute < ${lit(rollup[1])} AND series IN (${ids})`,
      );
    return parts.join(' UNION ALL ');
  }

  private where(metrics: readonly string[] | undefined, filters: Filters | undefined): string {
    const w = [...(metrics ? [inList('metric', metrics, lit)] : []), ...filterSql(filters, lit, prefix)];
    return w.length ? w.join(' AND ') : '1';
  }

  async distinct(column: Column, range: Range, filters?: Filters): Promise<string[]> {
    const c = checkColumn(column);
    const ids = `SELECT id FROM series WHERE ${this.where(undefined, filters)}`;
    const rows = await this.rows(`SELECT DISTINCT ${c} AS v FROM series WHERE ${c} != '' AND id IN (SELECT series FROM (${await this.facts(range, ids)})) ORDER BY v`);
    return rows.map((r) => r.v as string);
  }

  async aggregate(q: AggregateQuery): Promise<AggregateRow[]> {
    const groups = [...new Set(q.groupBy.map(checkColumn))];
    const where = this.where(q.metrics, q.filters);
    const g = groups.map((x) => `, ${x}`).join('');
    const rows = await this.rows(`SELECT metric, type${g}, sum(d) AS d, sum(a) AS a, sum(l) AS l, count() AS n
      FROM (SELECT series, sum(d) AS d, sum(v) / sum(n) AS a, argMax(l, ts) AS l FROM (${await this.facts(q, `SELECT id FROM series WHERE ${where}`)}) GROUP BY series)
      ANY INNER JOIN (SELECT id AS series, metric, type${g} FROM series WHERE ${where}) USING series
      GROUP BY metric, type${g}`);
    return rows.map((r) => aggregateRow(r, groups));
  }

  async series(q: SeriesQuery): Promise<SeriesLine[]> {
    const groups = [...new Set((q.groupBy ?? []).map(checkColumn))];
    const where = this.where([q.metric], q.filters);
    const g = groups.map((x) => `${x}, `).join('');
    const bucket = `${lit(q.from)} + floor((ts - ${lit(q.from)}) / ${lit(q.stepMs)}) * ${lit(q.stepMs)}`;
    const rows = await this.rows(`SELECT ${g}any(type) AS type, b, sum(d) AS d, sum(a) AS a
      FROM (SELECT series, ${bucket} AS b, sum(d) AS d, sum(v) / sum(n) AS a FROM (${await this.facts(q, `SELECT id FROM series WHERE ${where}`)}) GROUP BY series, b)
      ANY INNER JOIN (SELECT id AS series, ${g}type FROM series WHERE ${where}) USING series
      GROUP BY ${g}b`);
    return toLines(
      rows.map((r) => ({ group: Object.fromEntries(groups.map((x) => [x, r[x] as string])), bucket: Number(r.b), value: Number(r.type === 'counter' ? r.d : r.a) })),
      q.limit,
    );
  }

  /** A range's rows from a raw table and its minute rollup (store-sql.ts: rangeParts). */
  private async split(range: Range, raw: TablePart, rollup: TablePart): Promise<string> {
    return rangeParts(range, Date.now(), this.opts.rawRetentionMs, await this.watermark(), lit, raw, rollup);
  }

  async workloadSums(q: WorkloadSumsQuery): Promise<WorkloadSumRow[]> {
    const keys = `SELECT key, metric, namespace, workload_kind, workload, le FROM workload_keys WHERE ${[inList('metric', q.metrics, lit), ...filterSql(q.filters, lit, prefix)].join(' AND ')}`;
    const known = `key IN (SELECT key FROM (${keys}))`;
    const facts = await this.split(q, { from: 'workload_samples', select: 'key, toFloat64(delta) AS d', where: known }, { from: 'workload_1m', select: 'key, toFloat64(delta_sum) AS d', where: known });
    const rows = await this.rows(`SELECT metric, namespace, workload_kind, workload, le, d FROM (SELECT key, sum(d) AS d FROM (${facts}) GROUP BY key) ANY INNER JOIN (${keys}) USING key`);
    return rows.map(workloadSumRow);
  }

  async placement(q: Range & { filters?: WorkloadSumFilters }): Promise<PlacementRow[]> {
    const where = [`metric = ${lit(PRESENCE_METRIC)}`, "workload != ''", ...filterSql(q.filters, lit, prefix)].join(' AND ');
    // presence rows: the key is a series id, the delta null
    const seen = await this.split(q, { from: 'workload_samples', select: 'key', where: 'isNull(delta)' }, { from: 'workload_1m', select: 'key', where: 'isNull(delta_sum)' });
    // a series row written twice (two hubs) comes back twice: the same place, which the overview's sets fold
    const rows = await this.rows(`SELECT node, namespace, workload_kind, workload, cgroup, pod, container FROM series WHERE ${where} AND id IN (SELECT key FROM (${seen}))`);
    return rows.map(placementRow);
  }

  async events(q: EventQuery): Promise<EventRow[]> {
    const where = [`ts >= ${lit(q.from)}`, `ts < ${lit(q.to)}`, ...filterSql(q.filters, lit, prefix, EVENT_COLUMNS)];
    if (q.types?.length) where.push(inList('type', q.types, lit));
    const rows = await this.rows(`SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY ts DESC LIMIT ${lit(Math.max(0, Math.floor(q.limit)))}`);
    return rows.map((r) => ({ ...(r as unknown as EventRow), ts: Number(r.ts) }));
  }

  async profile(q: ProfileStacksQuery): Promise<ProfileStacks> {
    const where = profileWhere(q, lit, prefix);
    const limit = profileLimit(q.limit);
    // two passes (18.16 has no window functions): the largest stacks, and the count and sums of all
    const [top, all] = await Promise.all([
      limit === 0 ? [] : this.rows(`SELECT stack, sum(value) AS v FROM profile_stacks WHERE ${where} GROUP BY stack ORDER BY v DESC, stack LIMIT ${lit(limit)}`),
      this.rows(`SELECT uniqExact(stack) AS n, sum(value) AS total, max(period) AS period FROM profile_stacks WHERE ${where}`),
    ]);
    const t = all[0] ?? {};
    return profileStacks(top, Number(t.n ?? 0), Number(t.total ?? 0), Number(t.period ?? 0));
  }

  async maintain(now: number): Promise<MaintainResult> {
    const closed = Math.floor((now - ROLLUP_GRACE_MS) / MINUTE) * MINUTE;
    const watermark = await this.watermark();
    let minutesRolledUp = 0;
    if (closed > watermark) {
      const oldest = Number((await this.rows(`SELECT min(ts) AS m, count() AS c FROM samples WHERE ts >= ${lit(watermark)}`))[0]?.m ?? 0);
      const start = Math.max(watermark, Math.floor(oldest / MINUTE) * MINUTE);
      const range = `ts >= ${lit(start)} AND ts < ${lit(closed)}`;
      minutesRolledUp = Number((await this.rows(`SELECT uniqExact(intDiv(ts, 60000)) AS n FROM samples WHERE ${range}`))[0]?.n ?? 0);
      await this.ch().command({
        query: `INSERT INTO rollups_1m SELECT intDiv(ts, 60000) * 60000 AS minute, series, sum(ifNull(delta, 0)), sum(value), count(), argMax(value, ts), min(value), max(value)
                FROM samples WHERE ${range} GROUP BY minute, series`,
      });
      await this.ch().command({ query: `INSERT INTO workload_1m SELECT intDiv(ts, 60000) * 60000 AS minute, key, sum(delta) FROM workload_samples WHERE ${range} GROUP BY minute, key` });
      await this.insert('rollup_progress', [{ id: 1, minute: closed }]);
      this.lastWatermark = closed;
    }
    const droppedParts = (await this.dropBefore(['samples', 'workload_samples', 'events', 'profile_stacks', 'reports'], HOUR, now - this.opts.rawRetentionMs)) + (await this.dropBefore(['rollups_1m', 'workload_1m'], DAY, now - this.opts.rollupRetentionMs, false));
    return { minutesRolledUp, droppedParts };
  }

  /** Drops the partitions (of `width` ms) that end at or before `before`; returns the rows dropped (of samples, when `count`). */
  private async dropBefore(tables: string[], width: number, before: number, count = true): Promise<number> {
    let rows = 0;
    for (const table of tables) {
      const parts = await this.rows(
        `SELECT partition, sum(rows) AS rows FROM system.parts WHERE database = currentDatabase() AND table = ${lit(table)} AND active GROUP BY partition`,
      );
      for (const p of parts) {
        const id = String(p.partition);
        if (!/^-?\d+$/.test(id) || (Number(id) + 1) * width > before) continue;
        await this.ch().command({ query: `ALTER TABLE ${table} DROP PARTITION ${id}` });
        if (count && table === 'samples') rows += Number(p.rows);
      }
    }
    return rows;
  }

  async size(): Promise<number> {
    const r = await this.rows('SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = currentDatabase() AND active');
    return Number(r[0]?.b ?? 0);
  }
}
