/**
 * What protocol a connection speaks, decided once from the first captured bytes seen in either
 * direction, and which side is the client where the bytes say so. Checked in order, strongest
 * evidence first: the HTTP/2 preface; an HTTP/1 request line (known method) or status line; a
 * PostgreSQL startup-phase message (startup, SSLRequest, GSSENCRequest, CancelRequest) or typed
 * messages only one side sends; a Redis command (`*N\r\n$`, or a known inline command) or a reply of
 * an unmistakable form; and last HTTP/2 frames without the preface (a connection joined
 * mid-stream), whose first HEADERS block, decoded with an empty table, may say which side sent it
 * (`:method` or `:status`). Anything else — TLS included — is `unknown`, and the caller stops
 * capturing the connection.
 */
import { looksLikeRequest, looksLikeResponse } from './http1.js';
import { FLAG, FRAME, looksLikeFrames, PREFACE, readFrameHeader } from './http2.js';
import { HpackDecoder } from './hpack.js';
import { isPrefixOf, startsWith } from './bytes.js';
import { postgresSender } from './postgres.js';
import { looksLikeCommand, looksLikeReply } from './redis.js';
import type { ConnProtocol, Direction, Role } from './types.js';
import { opposite } from './types.js';

export interface Classification {
  protocol: ConnProtocol | 'unknown';
  /** the side that sent the classified bytes, when they say so */
  sender?: Role;
}

/** Redis replies plain enough to name the protocol on their own (a bare `+text` could be POP3). */
const REDIS_REPLY_WORDS = ['+OK\r\n', '+PONG\r\n', '+QUEUED\r\n', '-ERR ', '-WRONGTYPE ', '-NOAUTH ', '-NOPERM ', '-MOVED ', '-ASK ', '-LOADING ', '-READONLY '];

function redisReply(b: Uint8Array): boolean {
  if (REDIS_REPLY_WORDS.some((w) => startsWith(b, w))) return true;
  const c = b[0];
  // typed replies with a length or count ($ * % ~ >, RESP3's map is HELLO's answer), or a lone integer
  return (c === 0x24 || c === 0x2a || c === 0x25 || c === 0x7e || c === 0x3e || c === 0x3a) && looksLikeReply(b);
}

/** Which side sent HTTP/2 frames, from the first header block they hold (or a PUSH_PROMISE, only servers send). */
function h2Sender(b: Uint8Array): Role | undefined {
  for (let at = 0; at + 9 <= b.length; ) {
    const h = readFrameHeader(b, at);
    // a connection's first bytes a SETTINGS frame (not an ACK), no preface before it: the server's own
    // preface, which a server may send before it has read the client's (grpcio does)
    if (at === 0 && h.type === FRAME.SETTINGS && !(h.flags & FLAG.ACK)) return 'server';
    if (h.type === FRAME.PUSH_PROMISE) return 'server';
    if (h.type === FRAME.HEADERS && at + 9 + h.length <= b.length) {
      let start = at + 9;
      let end = start + h.length;
      if (h.flags & FLAG.PADDED) end -= b[start++] ?? 0;
      if (h.flags & FLAG.PRIORITY) start += 5;
      if (start > end) return undefined;
      const fields = new HpackDecoder().decode(b.subarray(start, end)).fields;
      if (fields.some((f) => f.name === ':method')) return 'client';
      if (fields.some((f) => f.name === ':status')) return 'server';
      return undefined;
    }
    at += 9 + h.length;
  }
  return undefined;
}

export function classify(b: Uint8Array): Classification {
  if (b.length === 0) return { protocol: 'unknown' };
  if (b.length >= 14 && isPrefixOf(b, PREFACE)) return { protocol: 'http2', sender: 'client' };
  if (looksLikeRequest(b)) return { protocol: 'http1', sender: 'client' };
  if (looksLikeResponse(b)) return { protocol: 'http1', sender: 'server' };
  const pg = postgresSender(b);
  if (pg) return { protocol: 'postgres', sender: pg };
  if (looksLikeCommand(b)) return { protocol: 'redis', sender: 'client' };
  if (redisReply(b)) return { protocol: 'redis', sender: 'server' };
  if (looksLikeFrames(b)) {
    const sender = h2Sender(b);
    return sender ? { protocol: 'http2', sender } : { protocol: 'http2' };
  }
  return { protocol: 'unknown' };
}

/** The traced process's role, from bytes it sent (`egress`) or received (`ingress`) classified as sent by `sender`. */
export function roleFrom(dir: Direction, sender: Role): Role {
  const senderDir = dir;
  const clientDir = sender === 'client' ? senderDir : opposite(senderDir);
  return clientDir === 'egress' ? 'client' : 'server';
}
