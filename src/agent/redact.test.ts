import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SECRET_KEYS, Redactor } from './redact.js';

const r = new Redactor();
const mask = (...args: string[]): string[] => r.argv(args);

test('masks the value of a secret flag given as --name=value, keeping the name', () => {
  assert.deepEqual(mask('psql', '--password=hunter2'), ['psql', '--password=***']);
  assert.deepEqual(mask('app', '--api-key=AKIA0123', '--db-token=t', '-secret=s'), ['app', '--api-key=***', '--db-token=***', '-secret=***']);
  assert.deepEqual(mask('app', '--password=with spaces and = signs'), ['app', '--password=***'], 'all after = is the value');
  assert.deepEqual(mask('app', '--PassWord=x'), ['app', '--PassWord=***'], 'names match without regard to case');
});

test('masks the argument after a secret flag given alone, unless it is another --flag', () => {
  assert.deepEqual(mask('psql', '--password', 'hunter2', '-h', 'db'), ['psql', '--password', '***', '-h', 'db']);
  assert.deepEqual(mask('redis-cli', '--pass', '-starts-with-a-dash'), ['redis-cli', '--pass', '***'], 'a value may begin with a dash');
  assert.deepEqual(mask('psql', '--password', '--verbose'), ['psql', '--password', '--verbose']);
  assert.deepEqual(mask('psql', '--password'), ['psql', '--password'], 'nothing follows');
});

test('masks environment-style assignments', () => {
  assert.deepEqual(mask('env', 'PGPASSWORD=x', 'MYSQL_PWD=y', 'AWS_SECRET_ACCESS_KEY=z', 'HOME=/root'), ['env', 'PGPASSWORD=***', 'MYSQL_PWD=***', 'AWS_SECRET_ACCESS_KEY=***', 'HOME=/root']);
});

test('masks a header value, keeping the header name', () => {
  assert.deepEqual(mask('curl', '-H', 'Authorization: Bearer abc', '-H', 'Accept: text/plain'), ['curl', '-H', 'Authorization: ***', '-H', 'Accept: text/plain']);
  assert.deepEqual(mask('curl', '-H', 'X-Api-Key: k'), ['curl', '-H', 'X-Api-Key: ***']);
});

test('masks the password of a URL and secret query parameters, keeping the rest', () => {
  assert.deepEqual(mask('psql', 'postgres://app:pw@db/x'), ['psql', 'postgres://app:***@db/x']);
  assert.deepEqual(mask('redis-cli', '-u', 'redis://:pw@cache:6379'), ['redis-cli', '-u', 'redis://:***@cache:6379']);
  assert.deepEqual(mask('curl', 'https://api.example/v1?user=me&access_token=abc&page=2'), ['curl', 'https://api.example/v1?user=me&access_token=***&page=2']);
  assert.deepEqual(mask('curl', 'https://example.com/a:b@c'), ['curl', 'https://example.com/a:b@c'], 'a colon in the path is no password');
});

test('applies the same rules inside an argument that holds a whole shell command', () => {
  assert.deepEqual(mask('sh', '-c', 'cd / && PGPASSWORD=hunter2 psql -h db'), ['sh', '-c', 'cd / && PGPASSWORD=*** psql -h db']);
  assert.deepEqual(mask('sh', '-c', 'PGPASSWORD=hunter2 psql -h db'), ['sh', '-c', 'PGPASSWORD=***'], 'an argument that begins with the assignment loses all after =: a value may hold spaces');
  assert.deepEqual(mask('sh', '-c', 'cd /app && exec app --password=hunter2 --port 80'), ['sh', '-c', 'cd /app && exec app --password=*** --port 80']);
  assert.deepEqual(mask('sh', '-c', 'mysql --password hunter2 -h db'), ['sh', '-c', 'mysql --password *** -h db']);
  assert.deepEqual(mask('sh', '-c', "curl -H 'Authorization: Bearer abc' https://x/"), ['sh', '-c', "curl -H 'Authorization: ***' https://x/"]);
  assert.deepEqual(mask('sh', '-c', 'echo $$ > /sys/fs/cgroup/x/cgroup.procs\n/bin/echo --password=hunter2 go'), ['sh', '-c', 'echo $$ > /sys/fs/cgroup/x/cgroup.procs\n/bin/echo --password=*** go']);
});

test('leaves harmless arguments and the program alone', () => {
  assert.deepEqual(mask('ls', '--verbose', '-la', '/tmp', 'a=b', 'x: y'), ['ls', '--verbose', '-la', '/tmp', 'a=b', 'x: y']);
  assert.deepEqual(mask('/usr/bin/ssh-keygen', '-t', 'ed25519'), ['/usr/bin/ssh-keygen', '-t', 'ed25519'], 'argv[0] is never masked');
  assert.deepEqual(mask('--password=not-a-secret-here'), ['--password=not-a-secret-here'], 'not even when it looks like a flag');
  assert.deepEqual(mask(), []);
});

test('the key list is configurable and replaces the default one', () => {
  const pin = new Redactor({ keys: ['pin'] });
  assert.deepEqual(pin.argv(['app', '--pin=1234', '--password=hunter2', 'SIM_PIN=1']), ['app', '--pin=***', '--password=hunter2', 'SIM_PIN=***']);
  assert.ok(DEFAULT_SECRET_KEYS.includes('token'));
  const none = new Redactor({ keys: [] });
  assert.deepEqual(none.argv(['app', '--password=hunter2']), ['app', '--password=hunter2'], 'an empty list masks nothing but URL passwords');
});

test('dropArgs drops every argument', () => {
  const drop = new Redactor({ dropArgs: true });
  assert.deepEqual(drop.argv(['/bin/echo', '--password=hunter2', 'x']), []);
  assert.equal(drop.dropArgs, true);
});
