/**
 * A recording TCP proxy on loopback for the L7 protocol tests: it forwards each client connection to
 * an upstream server and turns every read on either side into a `Chunk` as the kernel would capture
 * it from the client's side — `egress` the bytes the client wrote, `ingress` the bytes it read — each
 * connection with its own id, the chunk's time the moment the proxy read it, `size` its full length
 * and `data` at most `captureLimit` bytes of it (the kernel's prefix). Bytes the server sends after the
 * client has gone are forwarded nowhere and recorded nowhere: the client never read them.
 *
 * With `tls`, the proxy terminates TLS from the client (the test certificate) and opens TLS to the
 * upstream: the chunks are the plaintext, what a uprobe on the client's SSL_write/SSL_read would see.
 *
 *   const proxy = await startProxy(nginx, { onChunk: (c) => tracker.push(c), onClose: (id, t) => tracker.close(id, t) });
 *   await httpRequests(proxy, requests);   // a client of proxy.host:proxy.port
 *   await proxy.idle();                    // every connection closed and recorded
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { type Chunk, type ConnId } from '../src/collectors/l7/protocols/index.js';

export interface ProxyOptions {
  /** bytes of each read kept in `data` (the rest only counted in `size`); default all */
  captureLimit?: number;
  onChunk: (chunk: Chunk) => void;
  /** the connection is closed on both sides (after its last chunk) */
  onClose?: (conn: ConnId, time: bigint) => void;
  /** terminate TLS: the proxy's certificate for clients, and the CA (and name) to check the upstream's */
  tls?: { cert: string; key: string; ca: string; servername?: string; alpn?: string[] };
  /** the role the chunks say the traced process has (default 'client'; undefined: let the bytes say) */
  role?: 'client' | 'server' | undefined;
}

export interface RecordingProxy {
  host: string;
  port: number;
  /** connections accepted so far */
  readonly connections: number;
  /** resolves once every connection accepted so far has closed (and `onClose` was called for it) */
  idle(): Promise<void>;
  /** stops listening and destroys open connections */
  close(): Promise<void>;
}

/** The chunk as a capture of `limit` bytes would see it: data cut, size kept. */
export function truncate(chunk: Chunk, limit: number): Chunk {
  return chunk.data.length <= limit ? chunk : { ...chunk, data: chunk.data.subarray(0, limit) };
}

let serial = 0;

export async function startProxy(upstream: { host: string; port: number }, opts: ProxyOptions): Promise<RecordingProxy> {
  const open = new Set<Promise<void>>();
  const sockets = new Set<Socket>();
  let accepted = 0;
  const role = 'role' in opts ? opts.role : 'client';
  const limit = opts.captureLimit ?? Infinity;

  const record = (conn: ConnId, dir: Chunk['dir'], data: Buffer): void => {
    // a copy: the proxy's buffer goes on to the other side
    const kept = Uint8Array.prototype.slice.call(data, 0, Math.min(limit, data.length));
    const chunk: Chunk = { conn, dir, time: process.hrtime.bigint(), data: kept, size: data.length };
    if (role) chunk.role = role;
    opts.onChunk(chunk);
  };

  const handle = (client: Socket): void => {
    accepted++;
    const conn: ConnId = `proxy-${process.pid}-${++serial}`;
    const server: Socket = opts.tls
      ? tlsConnect({ host: upstream.host, port: upstream.port, ca: opts.tls.ca, servername: opts.tls.servername ?? 'localhost', ALPNProtocols: alpnOf(client) })
      : createConnection({ host: upstream.host, port: upstream.port });
    sockets.add(client);
    sockets.add(server);
    let clientGone = false;
    const done = new Promise<void>((resolve) => {
      let closed = 0;
      const one = (): void => {
        if (++closed < 2) return;
        sockets.delete(client);
        sockets.delete(server);
        opts.onClose?.(conn, process.hrtime.bigint());
        resolve();
      };
      client.once('close', one);
      server.once('close', one);
    });
    open.add(done);
    void done.then(() => open.delete(done));
    client.setNoDelay(true);
    server.setNoDelay(true);
    client.on('data', (d: Buffer) => {
      record(conn, 'egress', d);
      if (!server.write(d)) {
        client.pause();
        server.once('drain', () => client.resume());
      }
    });
    server.on('data', (d: Buffer) => {
      if (clientGone) return;
      record(conn, 'ingress', d);
      if (!client.write(d)) {
        server.pause();
        client.once('drain', () => server.resume());
      }
    });
    // a half-close goes through as one; an error or a reset ends both sides
    client.on('end', () => server.end());
    server.on('end', () => client.end());
    client.on('close', () => {
      clientGone = true;
      server.destroy();
    });
    server.on('close', () => client.destroy());
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
  };

  const listener: Server = opts.tls
    ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key, ...(opts.tls.alpn ? { ALPNProtocols: opts.tls.alpn } : {}) }, handle)
    : createServer(handle);
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', resolve);
  });
  const port = (listener.address() as { port: number }).port;
  return {
    host: '127.0.0.1',
    port,
    get connections() {
      return accepted;
    },
    idle: async () => {
      while (open.size > 0) await Promise.all([...open]);
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** The protocol the client chose with ALPN, offered alone to the upstream. */
function alpnOf(client: Socket): string[] | undefined {
  const p = (client as TLSSocket).alpnProtocol;
  return typeof p === 'string' ? [p] : undefined;
}
