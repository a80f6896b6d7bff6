/**
 * The web UI as the hub serves it: the files Vite builds from src/web into dist/web, read once into
 * memory when the hub starts. A request is looked up in that map of known paths and nothing else: no
 * file is opened per request, so no path a client sends (`..`, `%2e%2e`, backslashes, NUL) can reach
 * past it. Each file is answered with its type, an ETag (If-None-Match → 304), gzip when the client
 * takes it, caching (Vite's hashed /assets/ forever, the rest revalidated) and a strict
 * Content-Security-Policy: the UI is scripts and styles of its own origin talking to the hub's API.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { HttpError } from '../server/http.js';

/** dist/web of the repository: this file is dist/src/hub/web.js once compiled. */
export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

export const MAX_WEB_FILE_BYTES = 8 << 20;
export const MAX_WEB_FILES = 2_000;
/** all files together: the UI is a few hundred KiB; this bounds what a wrong directory can take */
export const MAX_WEB_TOTAL_BYTES = 64 << 20;
/** smaller files are sent as they are: gzip saves little on them */
const GZIP_MIN_BYTES = 1024;

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const TYPES: Readonly<Record<string, { type: string; compress?: boolean }>> = {
  html: { type: 'text/html; charset=utf-8', compress: true },
  js: { type: 'text/javascript; charset=utf-8', compress: true },
  mjs: { type: 'text/javascript; charset=utf-8', compress: true },
  css: { type: 'text/css; charset=utf-8', compress: true },
  svg: { type: 'image/svg+xml; charset=utf-8', compress: true },
  json: { type: 'application/json; charset=utf-8', compress: true },
  webmanifest: { type: 'application/manifest+json; charset=utf-8', compress: true },
  map: { type: 'application/json; charset=utf-8', compress: true },
  txt: { type: 'text/plain; charset=utf-8', compress: true },
  png: { type: 'image/png' },
  jpg: { type: 'image/jpeg' },
  jpeg: { type: 'image/jpeg' },
  gif: { type: 'image/gif' },
  webp: { type: 'image/webp' },
  avif: { type: 'image/avif' },
  ico: { type: 'image/x-icon' },
  woff: { type: 'font/woff' },
  woff2: { type: 'font/woff2' },
  ttf: { type: 'font/ttf' },
  wasm: { type: 'application/wasm' },
};
const OCTETS: { type: string; compress?: boolean } = { type: 'application/octet-stream' };

interface Variant {
  body: Buffer;
  etag: string;
}

interface Asset {
  type: string;
  cacheControl: string;
  identity: Variant;
  gzip?: Variant;
}

export interface WebLimits {
  /** bytes of one file (default 8 MiB) */
  maxFileBytes?: number;
  /** files (and directories) under the directory (default 2,000) */
  maxFiles?: number;
  /** bytes of all files (default 64 MiB) */
  maxTotalBytes?: number;
}

/** Does the client take gzip? `gzip`, `x-gzip` or `*`, unless with q=0. */
function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star: boolean | undefined;
  for (const part of header.split(',')) {
    const [coding = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    const ok = q === undefined || Number(q.slice(2)) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') return ok;
    if (coding === '*') star = ok;
  }
  return star ?? false;
}

/** Does If-None-Match name this ETag (weak comparison, as RFC 9110 has it for If-None-Match)? */
function matches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const tag = t.trim();
    return tag === '*' || tag.replace(/^W\//, '') === etag;
  });
}

/**
 * The built UI, in memory. `dir` defaults to dist/web. A directory that does not exist, or holds no
 * index.html, is a UI not built: `/` answers 503 and nothing else is served. A directory past the
 * limits throws, naming the file or the count.
 */
export class WebAssets {
  readonly dir: string;
  /** index.html is there */
  readonly built: boolean;
  private readonly files = new Map<string, Asset>();

  constructor(dir: string = DEFAULT_WEB_DIR, limits: WebLimits = {}) {
    this.dir = dir;
    const maxFileBytes = limits.maxFileBytes ?? MAX_WEB_FILE_BYTES;
    const maxFiles = limits.maxFiles ?? MAX_WEB_FILES;
    const maxTotalBytes = limits.maxTotalBytes ?? MAX_WEB_TOTAL_BYTES;
    let top;
    try {
      top = statSync(dir);
    } catch {
      this.built = false;
      return;
    }
    if (!top.isDirectory()) {
      this.built = false;
      return;
    }
    let entries = 0;
    let total = 0;
    // depth first, names sorted: the same directory reads the same way every time
    const walk = (abs: string, rel: string): void => {
      for (const name of readdirSync(abs).sort()) {
        if (++entries > maxFiles) throw new Error(`the web UI in ${dir} holds more than ${maxFiles} files: is this the directory Vite builds (dist/web)?`);
        // names a URL path cannot carry as they are (?, #, \, %, control characters) are not Vite's: left out
        if (/[?#\\%]/.test(name) || [...name].some((c) => c < ' ' || c === '\x7f')) continue;
        const path = join(abs, name);
        const st = lstatSync(path);
        const relPath = rel ? `${rel}/${name}` : name;
        if (st.isDirectory()) walk(path, relPath);
        // symbolic links, sockets and the like are not part of a build either
        else if (st.isFile()) {
          if (st.size > maxFileBytes) throw new Error(`the web UI's ${relPath} is ${st.size} bytes, more than the ${maxFileBytes} a file may take: rebuild the UI (make build)`);
          total += st.size;
          if (total > maxTotalBytes) throw new Error(`the web UI in ${dir} is more than ${maxTotalBytes} bytes: is this the directory Vite builds (dist/web)?`);
          this.add(relPath, readFileSync(path));
        }
      }
    };
    walk(dir, '');
    this.built = this.files.has('/index.html');
    if (!this.built) this.files.clear();
  }

  private add(rel: string, body: Buffer): void {
    // the key is the path as a request's URL is parsed (src/server/http.ts), so that lookups are exact
    const key = new URL(`/${rel}`, 'http://hub').pathname;
    const ext = /\.([^./]+)$/.exec(rel)?.[1]?.toLowerCase() ?? '';
    const kind = TYPES[ext] ?? OCTETS;
    const etag = (b: Buffer, suffix = ''): string => `"${createHash('sha256').update(b).digest('base64url').slice(0, 27)}${suffix}"`;
    const asset: Asset = {
      type: kind.type,
      // Vite names what is under assets/ by its content: it never changes under that name
      cacheControl: key.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
      identity: { body, etag: etag(body) },
    };
    if (kind.compress && body.length > GZIP_MIN_BYTES) {
      const gz = gzipSync(body, { level: 9 });
      // a strong ETag names one representation: the gzip one has its own
      if (gz.length < body.length) asset.gzip = { body: gz, etag: etag(body, '-gz') };
    }
    this.files.set(key, asset);
  }

  /** Paths served without the token: `/` and every file of the build. */
  knows(path: string): boolean {
    return path === '/' || this.files.has(path);
  }

  /** The paths of the build (`/index.html`, `/assets/index-abc123.js`, ...). */
  paths(): string[] {
    return [...this.files.keys()];
  }

  /**
   * Answers a GET or HEAD for a path of the UI and returns true, or returns false for a path that is
   * not one (the caller's 404). `/` without a build throws the 503 that says how to make one.
   */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path === '/' && !this.built) {
      throw new HttpError(503, 'the web UI is not built', 'run make build (it builds src/web into dist/web)', { ...SECURITY_HEADERS, 'retry-after': '60' });
    }
    const asset = this.files.get(path === '/' ? '/index.html' : path);
    if (!asset) return false;
    const variant = asset.gzip && acceptsGzip(req.headers['accept-encoding']) ? asset.gzip : asset.identity;
    const headers: Record<string, string | number> = {
      ...SECURITY_HEADERS,
      'cache-control': asset.cacheControl,
      etag: variant.etag,
      ...(asset.gzip ? { vary: 'accept-encoding' } : {}),
    };
    if (matches(req.headers['if-none-match'], variant.etag)) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    res.writeHead(200, {
      ...headers,
      'content-type': asset.type,
      'content-length': variant.body.length,
      ...(variant === asset.gzip ? { 'content-encoding': 'gzip' } : {}),
    });
    if (req.method === 'HEAD') res.end();
    else res.end(variant.body);
    return true;
  }
}
