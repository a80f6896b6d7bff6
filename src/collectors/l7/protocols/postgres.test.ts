import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresParser, PROTOCOL_3, SSL_REQUEST } from './postgres.js';
import { bytes, chunks, inn, out, rng, run, splitChunks, type Call } from './test-util.js';
import type { ConnectionParser, ParserContext, PostgresRecord } from './types.js';

const postgres = (ctx: ParserContext): ConnectionParser => new PostgresParser(ctx);

const int32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
const int16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
const cstr = (s: string): string => `${s}\0`;
/** A typed message as libpq writes it: type, int32 length (itself included), body. */
const msg = (type: string, ...parts: (string | number[])[]): Uint8Array => {
  const body = bytes(...parts);
  return bytes(type, int32(body.length + 4), body);
};
const startup = (): Uint8Array => {
  const body = bytes(int32(PROTOCOL_3), cstr('user'), cstr('app'), cstr('database'), cstr('shop'), '\0');
  return bytes(int32(body.length + 4), body);
};
const ready = (state = 'I'): Uint8Array => msg('Z', state);
const rowDescription = (...cols: string[]): Uint8Array => msg('T', int16(cols.length), ...cols.flatMap((c) => [cstr(c), int32(0), int16(0), int32(25), int16(-1 & 0xffff), int32(-1), int16(0)]));
const dataRow = (...vals: string[]): Uint8Array => msg('D', int16(vals.length), ...vals.flatMap((v) => [int32(Buffer.byteLength(v)), v]));
const complete = (tag: string): Uint8Array => msg('C', cstr(tag));
const errorResponse = (code: string, message: string): Uint8Array =>
  msg('E', 'S', cstr('ERROR'), 'V', cstr('ERROR'), 'C', cstr(code), 'M', cstr(message), 'P', cstr('15'), 'F', cstr('parse_relation.c'), 'L', cstr('1392'), 'R', cstr('parserOpenTable'), '\0');
/** The server's answer to a startup message with trust authentication. */
const welcome = (): Uint8Array =>
  bytes(msg('R', int32(0)), msg('S', cstr('server_version'), cstr('16.4')), msg('S', cstr('client_encoding'), cstr('UTF8')), msg('K', int32(4242), int32(99)), ready());

const brief = (r: PostgresRecord): string => `${r.command} ${r.status} ${r.shape}`;

function simpleSession(): Call[] {
  return [
    out(startup()),
    inn(welcome()),
    out(msg('Q', cstr("SELECT id, name FROM users WHERE name = 'bob' AND id IN (1, 2, 3)"))),
    inn(rowDescription('id', 'name'), dataRow('1', 'bob'), dataRow('2', 'bob'), complete('SELECT 2'), ready()),
    out(msg('Q', cstr('SELECT * FROM missing_table'))),
    inn(errorResponse('42P01', 'relation "missing_table" does not exist'), ready()),
    out(msg('Q', cstr("ALTER ROLE app PASSWORD 'hunter2'"))),
    inn(complete('ALTER ROLE'), ready()),
    out(msg('X')),
  ];
}

test('simple queries: a result, an error with SQLSTATE 42P01, and a password never kept', () => {
  const { records, stats } = run(postgres, chunks(simpleSession()));
  const recs = records as PostgresRecord[];
  assert.deepEqual(recs.map(brief), [
    'SELECT ok SELECT id, name FROM users WHERE name = ? AND id IN (?)',
    'SELECT 42P01 SELECT * FROM missing_table',
    'ALTER ROLE ok ALTER ROLE app PASSWORD ?',
  ]);
  assert.equal(recs[0]!.rows, 2);
  assert.equal(recs[0]!.tag, 'SELECT 2');
  assert.equal(recs[0]!.query, "SELECT id, name FROM users WHERE name = '***' AND id IN (1, 2, 3)");
  assert.equal(recs[1]!.error, true);
  assert.equal(recs[1]!.errorMessage, 'relation "missing_table" does not exist');
  assert.equal(recs[2]!.query, "ALTER ROLE app PASSWORD '***'");
  assert.equal(recs[0]!.start, 3000n);
  assert.equal(recs[0]!.end, 4000n);
  assert.equal(recs[0]!.requestBytes, simpleSession()[2]!.data.length);
  assert.equal(recs[0]!.responseBytes, simpleSession()[3]!.data.length);
  assert.equal(stats.desyncs, 0);
  const shapes = run(postgres, chunks(simpleSession()), 'client', { payload: 'shapes' }).records as PostgresRecord[];
  assert.ok(shapes.every((r) => r.query === undefined && r.errorMessage === undefined && r.shape !== undefined));
});

/** Extended protocol: a named statement prepared once and executed twice, a pipelined batch, a failing insert. */
function extendedSession(): Call[] {
  const bind = (statement: string, ...params: string[]): Uint8Array =>
    msg('B', cstr(''), cstr(statement), int16(0), int16(params.length), ...params.flatMap((p) => [int32(Buffer.byteLength(p)), p]), int16(0));
  const execute = (): Uint8Array => msg('E', cstr(''), int32(0));
  const sync = (): Uint8Array => msg('S');
  return [
    out(startup()),
    inn(welcome()),
    out(msg('P', cstr('user_by_id'), cstr('SELECT name FROM users WHERE id = $1'), int16(1), int32(23)), msg('D', 'S', cstr('user_by_id')), sync()),
    inn(msg('1'), msg('t', int16(1), int32(23)), rowDescription('name'), ready()),
    out(bind('user_by_id', '7'), execute(), sync()),
    inn(msg('2'), dataRow('ann'), complete('SELECT 1'), ready()),
    out(bind('user_by_id', '8'), execute(), sync()),
    inn(msg('2'), complete('SELECT 0'), ready()),
    // a pgx-style batch: two unnamed statements, one Sync
    out(
      msg('P', cstr(''), cstr('UPDATE stock SET qty = qty - 1 WHERE sku = $1'), int16(0)), bind('', 'A-1'), msg('D', 'P', cstr('')), execute(),
      msg('P', cstr(''), cstr("INSERT INTO audit (what) VALUES ('sold')"), int16(0)), bind(''), msg('D', 'P', cstr('')), execute(),
      sync(),
    ),
    inn(msg('1'), msg('2'), msg('n'), complete('UPDATE 1'), msg('1'), msg('2'), msg('n'), complete('INSERT 0 1'), ready()),
    out(msg('P', cstr(''), cstr('INSERT INTO users (id, name) VALUES ($1, $2)'), int16(0)), bind('', '7', 'dup'), execute(), sync()),
    inn(msg('1'), msg('2'), errorResponse('23505', 'duplicate key value violates unique constraint "users_pkey"'), ready('I')),
  ];
}

test('extended protocol: a named statement reused, a pipelined batch and an error answered in order', () => {
  const { records } = run(postgres, chunks(extendedSession()));
  const recs = records as PostgresRecord[];
  assert.deepEqual(recs.map(brief), [
    'SELECT ok SELECT name FROM users WHERE id = $1',
    'SELECT ok SELECT name FROM users WHERE id = $1',
    'UPDATE ok UPDATE stock SET qty = qty - ? WHERE sku = $1',
    'INSERT ok INSERT INTO audit (what) VALUES (?)',
    'INSERT 23505 INSERT INTO users (id, name) VALUES ($1, $2)',
  ]);
  assert.deepEqual(recs.map((r) => r.statement), ['user_by_id', 'user_by_id', '', '', '']);
  assert.deepEqual(recs.map((r) => r.rows), [1, 0, 0, 0, 0]);
  assert.equal(recs[2]!.start, recs[3]!.start); // one write held the batch
  assert.equal(recs[4]!.error, true);
});

test('any split of the sessions gives the same records, and a 64-byte capture keeps the counts', () => {
  const random = rng(9);
  for (const session of [simpleSession, extendedSession]) {
    const whole = run(postgres, chunks(session())).records;
    for (let i = 0; i < 150; i++) assert.deepEqual(run(postgres, splitChunks(chunks(session()), random)).records, whole);
    const cut = run(postgres, chunks(session(), 64)).records as PostgresRecord[];
    assert.equal(cut.length, whole.length);
    // a status past the capture is unknown, never another's
    assert.ok(cut.every((r, i) => r.status === whole[i]!.status || r.status === 'unknown'), session.name);
  }
});

test('an SSLRequest answered N goes on in the clear; answered S stops parsing', () => {
  const ssl = bytes(int32(8), int32(SSL_REQUEST));
  const clear = [out(ssl), inn('N'), ...simpleSession()];
  assert.equal(run(postgres, chunks(clear)).records.length, 3);
  const tls = [out(ssl), inn('S'), out([0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5]), inn([0x16, 3, 3, 0, 1, 0])];
  assert.equal(run(postgres, chunks(tls)).records.length, 0);
});

test('a large result past the capture is recorded partial, and the next query is matched again', () => {
  const rows = Array.from({ length: 500 }, (_, i) => dataRow(String(i), `name-${i}`));
  const calls: Call[] = [
    inn(msg('Q', cstr('SELECT * FROM big'))),
    out(rowDescription('id', 'name'), ...rows, complete('SELECT 500'), ready()),
    inn(msg('Q', cstr('SELECT 1'))),
    out(rowDescription('?column?'), dataRow('1'), complete('SELECT 1'), ready()),
  ];
  const { records, stats } = run(postgres, chunks(calls, 256), 'server');
  const recs = records as PostgresRecord[];
  assert.deepEqual(recs.map((r) => `${r.command} ${r.status}${r.responsePartial ? ' partial' : ''}`), ['SELECT unknown partial', 'SELECT ok']);
  assert.equal(recs[1]!.shape, 'SELECT ?');
  assert.equal(stats.desyncs, 1);
  assert.equal(recs[0]!.midStream, false);
});

test('joined mid-stream: an execute of a statement prepared before is counted with an unknown query', () => {
  const calls: Call[] = [
    out(msg('B', cstr(''), cstr('stmt_3'), int16(0), int16(0), int16(0)), msg('E', cstr(''), int32(0)), msg('S')),
    inn(msg('2'), dataRow('x'), complete('SELECT 1'), ready()),
  ];
  const { records } = run(postgres, chunks(calls));
  const r = records[0] as PostgresRecord;
  assert.equal(r.command, 'SELECT');
  assert.equal(r.shape, undefined);
  assert.equal(r.statement, 'stmt_3');
  assert.equal(r.requestPartial, true);
});
