import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { connect } from 'node:net';
import { type Hub } from './hub.js';
import { startTestHub } from '../../test/hub.js';
import { DEFAULT_WEB_DIR, SECURITY_HEADERS, WebAssets } from './web.js';

const TOKEN = 'a-web-test-token-0123456789';
const INDEX = `<!doctype html><html><head><script type="module" src="/assets/index-abc123.js"></script></head><body>${'<div>periscope</div>'.repeat(100)}</body></html>`;
const SCRIPT = `console.log(${JSON.stringify('x'.repeat(4000))});`;
const ICON = '<svg xmlns="http://www.w3.org/2000/svg"/>';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function send(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A request line sent as it is, for paths a URL-parsing client would tidy up first. */
function raw(base: string, target: string): Promise<{ status: number; text: string }> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.end(`GET ${target} HTTP/1.1\r\nhost: hub\r\nconnection: close\r\n\r\n`));
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
    socket.on('error', reject);
  });
}

/** A build as Vite makes one: index.html, hashed assets, a favicon; and a package.json next to it that must stay out of reach. */
function writeBuild(root: string): string {
  const web = join(root, 'web');
  mkdirSync(join(web, 'assets'), { recursive: true });
  writeFileSync(join(web, 'index.html'), INDEX);
  writeFileSync(join(web, 'assets', 'index-abc123.js'), SCRIPT);
  writeFileSync(join(web, 'assets', 'logo-def456.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
  writeFileSync(join(web, 'favicon.svg'), ICON);
  writeFileSync(join(root, 'package.json'), '{"secret": true}');
  writeFileSync(join(root, 'outside.js'), 'secret');
  symlinkSync(join(root, 'outside.js'), join(web, 'assets', 'link.js'));
  return web;
}

const startHub = (t: { after: (fn: () => unknown) => void }, webDir: string): Promise<{ hub: Hub; base: string }> => startTestHub(t, { token: TOKEN, webDir });

function tempRoot(t: { after: (fn: () => unknown) => void }): string {
  const root = mkdtempSync(join(tmpdir(), 'periscope-web-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

const assertSecurity = (r: Reply, what: string): void => {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(r.headers[k], v, `${what}: ${k}`);
};

test('the default directory is dist/web of the repository', () => {
  assert.match(DEFAULT_WEB_DIR, /[/\\]dist[/\\]web[/\\]?$/);
});

test('index and assets are served without the token, with their types, caching, ETags and gzip; the API still needs the token', async (t) => {
  const root = tempRoot(t);
  const { hub, base } = await startHub(t, writeBuild(root));
  assert.equal(hub.web.built, true);
  assert.deepEqual(hub.web.paths().sort(), ['/assets/index-abc123.js', '/assets/logo-def456.png', '/favicon.svg', '/index.html'], 'the symbolic link is left out');

  const index = await send(`${base}/`);
  assert.equal(index.status, 200);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.equal(index.headers['content-encoding'], undefined, 'not asked for gzip');
  assert.equal(index.body.toString(), INDEX);
  assert.equal(Number(index.headers['content-length']), Buffer.byteLength(INDEX));
  assert.match(String(index.headers.etag), /^"[A-Za-z0-9_-]+"$/, 'a strong ETag');
  assert.equal(index.headers.vary, 'accept-encoding');
  assertSecurity(index, '/');
  assert.equal((await send(`${base}/index.html`)).body.toString(), INDEX);

  const js = await send(`${base}/assets/index-abc123.js`, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
  assert.equal(js.status, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(js.headers['content-encoding'], 'gzip');
  assert.equal(js.headers.vary, 'accept-encoding');
  assert.ok(js.body.length < Buffer.byteLength(SCRIPT));
  assert.equal(Number(js.headers['content-length']), js.body.length);
  assert.equal(gunzipSync(js.body).toString(), SCRIPT);
  assertSecurity(js, 'a script');
  const plain = await send(`${base}/assets/index-abc123.js`, { headers: { 'accept-encoding': 'gzip;q=0, identity' } });
  assert.equal(plain.headers['content-encoding'], undefined, 'gzip;q=0 is a refusal');
  assert.equal(plain.body.toString(), SCRIPT);
  assert.notEqual(plain.headers.etag, js.headers.etag, 'each representation has its own ETag');

  // If-None-Match: 304 without a body, for the representation the client holds
  const again = await send(`${base}/assets/index-abc123.js`, { headers: { 'accept-encoding': 'gzip', 'if-none-match': String(js.headers.etag) } });
  assert.equal(again.status, 304);
  assert.equal(again.body.length, 0);
  assert.equal(again.headers.etag, js.headers.etag);
  assertSecurity(again, '304');
  assert.equal((await send(`${base}/`, { headers: { 'if-none-match': `"other", W/${String(index.headers.etag)}` } })).status, 304);
  assert.equal((await send(`${base}/`, { headers: { 'if-none-match': '"other"' } })).status, 200);

  const icon = await send(`${base}/favicon.svg`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(icon.headers['content-type'], 'image/svg+xml; charset=utf-8');
  assert.equal(icon.headers['cache-control'], 'no-cache', 'not under /assets/: revalidated');
  assert.equal(icon.headers['content-encoding'], undefined, 'under 1 KiB: sent as it is');
  assert.equal(icon.headers.vary, undefined);
  assert.equal(icon.body.toString(), ICON);
  const png = await send(`${base}/assets/logo-def456.png`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(png.headers['content-type'], 'image/png');
  assert.equal(png.headers['content-encoding'], undefined);

  const head = await send(`${base}/`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(Number(head.headers['content-length']), Buffer.byteLength(INDEX));

  // the UI is open; the API and /metrics are not
  assert.equal((await send(`${base}/api/v1/nodes`)).status, 401);
  assert.equal((await send(`${base}/metrics`)).status, 401);
  assert.equal((await send(`${base}/api/v1/nodes`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.equal((await send(`${base}/healthz`)).status, 200);
  // a path that is not a file of the build is not open either
  assert.equal((await send(`${base}/assets/nope.js`)).status, 401);
  assert.equal((await send(`${base}/assets/nope.js`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
});

test('paths that try to leave the build answer 404 JSON, methods other than GET and HEAD 405, and the hub keeps serving', async (t) => {
  const root = tempRoot(t);
  const { base } = await startHub(t, writeBuild(root));
  const auth = `Bearer ${TOKEN}`;
  const hostile = [
    '/assets/../../package.json',
    '/assets/%2e%2e/%2e%2e/package.json',
    '/%2e%2e/package.json',
    '/assets/..%2f..%2fpackage.json',
    '/assets\\..\\..\\package.json',
    '/..\\package.json',
    '/assets/%5c..%5c..%5cpackage.json',
    '/index.html%00',
    '/%00',
    '/assets/index-abc123.js%00.png',
    '/outside.js',
    '/assets/link.js',
    '/web/index.html',
    '/./assets/./../../package.json',
    '/INDEX.HTML',
    `/${'a'.repeat(8_000)}`,
    `/assets/${'../'.repeat(500)}etc/passwd`,
  ];
  for (const path of hostile) {
    const r = await raw(base, path);
    // with the token: what is not the UI's is 404 (without it, the API's 401)
    const authed = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), '127.0.0.1', () => socket.end(`GET ${path} HTTP/1.1\r\nhost: hub\r\nauthorization: ${auth}\r\nconnection: close\r\n\r\n`));
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
      socket.on('error', reject);
    });
    assert.ok([401, 404].includes(r.status), `${path.slice(0, 60)}: ${r.text.slice(0, 200)}`);
    assert.equal(authed.status, 404, `${path.slice(0, 60)}: ${authed.text.slice(0, 300)}`);
    assert.match(authed.text, /content-type: application\/json/i);
    const body = JSON.parse(authed.text.slice(authed.text.indexOf('\r\n\r\n') + 4)) as { error: string; hint: string };
    assert.match(body.error, /^no such path/);
    assert.doesNotMatch(authed.text, /secret/);
  }
  // a NUL in the request line itself is refused by the HTTP parser
  assert.equal((await raw(base, '/index.html\u0000')).status, 400);
  const post = await send(`${base}/`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  assert.equal((await send(`${base}/assets/index-abc123.js`, { method: 'DELETE' })).status, 405);
  const still = await send(`${base}/`);
  assert.equal(still.status, 200);
  assert.equal(still.body.toString(), INDEX);
});

test('without a build, / answers 503 with the hint, and the API keeps working', async (t) => {
  const root = tempRoot(t);
  const { hub, base } = await startHub(t, join(root, 'not-there'));
  assert.equal(hub.web.built, false);
  const r = await send(`${base}/`);
  assert.equal(r.status, 503);
  assert.deepEqual(JSON.parse(r.body.toString()), { error: 'the web UI is not built', hint: 'run make build (it builds src/web into dist/web)' });
  assertSecurity(r, '503');
  assert.equal((await send(`${base}/index.html`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
  assert.equal((await send(`${base}/api/v1/health`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);

  // a directory without index.html is no build either: nothing of it is served
  const half = join(root, 'half');
  mkdirSync(half);
  writeFileSync(join(half, 'favicon.svg'), ICON);
  const assets = new WebAssets(half);
  assert.equal(assets.built, false);
  assert.deepEqual(assets.paths(), []);
});

test('a directory past the limits is refused with an error that says which', (t) => {
  const root = tempRoot(t);
  const web = writeBuild(root);
  assert.throws(() => new WebAssets(web, { maxFileBytes: 1_000 }), /index-abc123\.js is \d+ bytes, more than the 1000 a file may take/);
  assert.throws(() => new WebAssets(web, { maxFiles: 3 }), /holds more than 3 files/);
  assert.throws(() => new WebAssets(web, { maxTotalBytes: 5_000 }), /is more than 5000 bytes/);
  assert.equal(new WebAssets(web).built, true);
});
