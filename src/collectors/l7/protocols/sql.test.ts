import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskSql, normalizeSql, sqlVerb, tagVerb } from './sql.js';

test('a query shape has literals as ?, lists collapsed, comments and extra whitespace gone', () => {
  const cases: [string, string][] = [
    ["SELECT * FROM t WHERE a = 'x' AND b = 42", 'SELECT * FROM t WHERE a = ? AND b = ?'],
    ['SELECT *\n  FROM t\tWHERE id IN (1, 2, 3,4)', 'SELECT * FROM t WHERE id IN (?)'],
    ["INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')", 'INSERT INTO t (a, b) VALUES (?, ?)'],
    ['SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)', 'SELECT a FROM t WHERE b = $1 AND c IN (?)'],
    ["SELECT 'it''s', E'a\\'b', $$dollar 'quoted'$$, $tag$x$tag$", 'SELECT ?, ?, ?, ?'],
    ['SELECT x - 1, -2.5e3, t1.c2 FROM t1 -- trailing\n/* block /* nested */ */ WHERE y > .5', 'SELECT x - ?, ?, t1.c2 FROM t1 WHERE y > ?'],
    ['SELECT "Weird Column" FROM "T"', 'SELECT "Weird Column" FROM "T"'],
    ["SELECT 'unterminated", 'SELECT ?'],
  ];
  for (const [q, shape] of cases) assert.equal(normalizeSql(q), shape, q);
  assert.equal(normalizeSql(`SELECT ${'a, '.repeat(1000)}b`, 50).length, 51);
});

test('a masked query keeps numbers and loses string literals, dollar-quoted ones too', () => {
  assert.equal(maskSql("ALTER ROLE app WITH PASSWORD 'hunter2'"), "ALTER ROLE app WITH PASSWORD '***'");
  assert.equal(maskSql("SELECT * FROM t WHERE id = 7 AND token = E'abc\\'def' OR x = $$s3cret$$"), "SELECT * FROM t WHERE id = 7 AND token = '***' OR x = '***'");
});

test('the verb comes from the text or the command tag', () => {
  assert.equal(sqlVerb('  /* hint */ (select 1)'), 'SELECT');
  assert.equal(sqlVerb('with x as (select 1) select * from x'), 'WITH');
  assert.equal(tagVerb('INSERT 0 1'), 'INSERT');
  assert.equal(tagVerb('CREATE TABLE'), 'CREATE TABLE');
});
