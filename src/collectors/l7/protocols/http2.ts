/**
 * HTTP/2 (RFC 9113) and gRPC on one connection: frames reassembled per direction across calls (the
 * 9-byte header must be captured; a payload that need not be read — DATA — is skipped by its length
 * whether captured or not), header blocks gathered from HEADERS, PUSH_PROMISE and CONTINUATION
 * (PADDED and PRIORITY flags honoured) and decoded with one HPACK decoder per direction, and streams
 * matched: the request's HEADERS (`:method`, `:path`, `:authority`, `content-type`) with the
 * response's HEADERS (`:status`) and trailers (`grpc-status`, `grpc-message`). A stream ends with
 * the response's END_STREAM or with RST_STREAM from either side (recorded as `reset`, an error).
 *
 * A request whose content-type is `application/grpc` (or whose response carries `grpc-status`) is a
 * gRPC call: `:path` `/pkg.Service/Method` gives its service and method, `grpc-status` its outcome.
 *
 * A connection joined mid-stream (the client's first bytes are not the preface) is marked so on every
 * record; its decoders start empty and distrust their tables at the first reference they cannot
 * resolve, after which requests are still counted by stream with unknown names. A header block whose
 * bytes were not all captured distrusts its direction's table the same way, and a frame header that
 * fell in uncaptured bytes loses the frame boundaries: the direction resumes at the next call that
 * starts with a plausible frame header. Server-pushed streams (even ids) are decoded for the table's
 * sake and not recorded.
 */
import { isPrefixOf, startsWith, u32 } from './bytes.js';
import { HpackDecoder, type HeaderField } from './hpack.js';
import { sample } from './redact.js';
import { splitTarget, templatePath } from './route.js';
import { ByteStream } from './stream.js';
import { type Chunk, type ConnectionParser, type Direction, type GrpcRecord, type HttpRecord, type ParserContext, requestDirection } from './types.js';

export const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
const HEADER_LENGTH = 9;

export const GRPC_CODES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
] as const;

export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  stream: number;
}

export function readFrameHeader(b: Uint8Array, at = 0): FrameHeader {
  return { length: (b[at]! << 16) | (b[at + 1]! << 8) | b[at + 2]!, type: b[at + 3]!, flags: b[at + 4]!, stream: u32(b, at + 5) & 0x7fffffff };
}

/**
 * Is this a frame header a peer could send? Known types with the stream ids they require, and
 * lengths the type allows (a frame past the default 16 KiB maximum only for DATA, HEADERS and
 * CONTINUATION, whose maximum a peer may raise).
 */
export function plausibleFrame(h: FrameHeader): boolean {
  switch (h.type) {
    case FRAME.DATA:
    case FRAME.HEADERS:
    case FRAME.CONTINUATION:
      return h.stream !== 0;
    case FRAME.PRIORITY:
      return h.stream !== 0 && h.length === 5;
    case FRAME.RST_STREAM:
      return h.stream !== 0 && h.length === 4;
    case FRAME.SETTINGS:
      return h.stream === 0 && h.length % 6 === 0 && h.length <= 16384 && (h.flags & ~FLAG.ACK) === 0;
    case FRAME.PUSH_PROMISE:
      return h.stream !== 0 && h.length >= 4;
    case FRAME.PING:
      return h.stream === 0 && h.length === 8;
    case FRAME.GOAWAY:
      return h.stream === 0 && h.length >= 8 && h.length <= 16384;
    case FRAME.WINDOW_UPDATE:
      return h.length === 4;
    default:
      return false;
  }
}

/** Does `b` start with frames that all look plausible (the last may run past `b`)? At least one whole header is needed. */
export function looksLikeFrames(b: Uint8Array): boolean {
  if (b.length < HEADER_LENGTH) return false;
  let at = 0;
  let frames = 0;
  while (at + HEADER_LENGTH <= b.length && frames < 16) {
    const h = readFrameHeader(b, at);
    if (!plausibleFrame(h)) return false;
    at += HEADER_LENGTH + h.length;
    frames++;
  }
  return true;
}

interface H2Stream {
  id: number;
  /** the request's HEADERS were seen */
  requestSeen: boolean;
  start: bigint;
  method?: string;
  path?: string;
  authority?: string;
  contentType?: string;
  responseStart?: bigint;
  status?: number;
  grpcStatus?: number;
  grpcMessage?: string;
  responseGrpc: boolean;
  requestBytes: number;
  responseBytes: number;
  /** a header block of this stream could not be decoded, or referred to entries not known */
  namesLost: boolean;
}

/** A header block being gathered from HEADERS or PUSH_PROMISE and its CONTINUATIONs. */
interface Block {
  stream: number;
  push: boolean;
  endStream: boolean;
  time: bigint;
  parts: Uint8Array[];
  length: number;
  /** bytes of its frames on the wire */
  wire: number;
  /** part of it was not captured: it will not be decoded */
  lost: boolean;
}

interface Side {
  dir: Direction;
  client: boolean;
  stream: ByteStream;
  decoder: HpackDecoder;
  state: 'preface' | 'frames' | 'desync';
  block: Block | undefined;
}

export class Http2Parser implements ConnectionParser {
  private readonly sides: Record<Direction, Side>;
  private readonly streams = new Map<number, H2Stream>();
  private midStream = false;

  constructor(private readonly ctx: ParserContext) {
    const clientDir = requestDirection(ctx.role);
    const side = (dir: Direction): Side => ({
      dir,
      client: dir === clientDir,
      stream: new ByteStream(ctx.options.maxBuffer),
      decoder: new HpackDecoder(4096, 65536, ctx.options.maxBuffer),
      state: dir === clientDir ? 'preface' : 'frames',
      block: undefined,
    });
    this.sides = { egress: side('egress'), ingress: side('ingress') };
  }

  push(chunk: Chunk): void {
    const side = this.sides[chunk.dir];
    side.stream.push(chunk.data, chunk.size, chunk.time);
    this.drain(side);
  }

  buffered(): number {
    return this.sides.egress.stream.buffered + this.sides.ingress.stream.buffered;
  }

  close(time: bigint): void {
    for (const st of [...this.streams.values()]) {
      if (st.requestSeen && st.responseStart === undefined) this.ctx.stats.unansweredRequests++;
      this.finish(st, time, st.responseStart === undefined ? 'none' : undefined, true);
    }
  }

  private drain(side: Side): void {
    const s = side.stream;
    for (;;) {
      if (s.skipping > 0 || s.empty) return;
      if (side.state === 'preface') {
        const b = s.peek(PREFACE.length);
        if (b.length < PREFACE.length && !s.runEndsInGap() && isPrefixOf(b, PREFACE)) return;
        side.state = 'frames';
        if (b.length === PREFACE.length && startsWith(b, PREFACE)) s.skip(PREFACE.length);
        else this.joinedMidStream();
        continue;
      }
      if (side.state === 'desync') {
        if (s.atChunkStart() && looksLikeFrames(s.peekChunk())) {
          side.state = 'frames';
          continue;
        }
        this.ctx.stats.resyncSkippedBytes += s.dropChunk();
        continue;
      }
      if (!this.frame(side)) return;
    }
  }

  private joinedMidStream(): void {
    if (this.midStream) return;
    this.midStream = true;
    this.ctx.stats.midStreamConnections++;
  }

  private desync(side: Side): boolean {
    this.ctx.stats.desyncs++;
    side.state = 'desync';
    side.block = undefined;
    side.decoder.distrust();
    this.ctx.stats.resyncSkippedBytes += side.stream.dropChunk(); // the rest of this chunk is never read again as a start
    return true;
  }

  /** Reads one frame; false when it must wait for more bytes. */
  private frame(side: Side): boolean {
    const s = side.stream;
    if (s.atGap()) return this.desync(side);
    const b = s.peek();
    if (b.length < HEADER_LENGTH) return s.runEndsInGap() ? this.desync(side) : false;
    const h = readFrameHeader(b);
    if (!plausibleFrame(h) && h.type <= FRAME.CONTINUATION) return this.desync(side);
    if (side.block && (h.type !== FRAME.CONTINUATION || h.stream !== side.block.stream)) return this.desync(side);
    if (!side.block && h.type === FRAME.CONTINUATION) {
      // the rest of a block whose start was missed: it cannot be decoded, and what it inserted is unknown
      side.decoder.distrust();
      s.skip(HEADER_LENGTH + h.length);
      return true;
    }
    const total = HEADER_LENGTH + h.length;
    const needsPayload = h.type === FRAME.HEADERS || h.type === FRAME.CONTINUATION || h.type === FRAME.PUSH_PROMISE || h.type === FRAME.RST_STREAM;
    const whole = b.length >= total;
    if (needsPayload && !whole && !s.runEndsInGap()) {
      if (b.length < this.ctx.options.maxBuffer) return false;
    }
    const time = s.headTime();
    const payload = whole ? b.subarray(HEADER_LENGTH, total) : undefined;
    s.skip(total);
    this.onFrame(side, h, payload, time);
    return true;
  }

  private onFrame(side: Side, h: FrameHeader, payload: Uint8Array | undefined, time: bigint): void {
    const st = this.streams.get(h.stream);
    if (st && h.stream !== 0) {
      if (side.client) st.requestBytes += HEADER_LENGTH + h.length;
      else st.responseBytes += HEADER_LENGTH + h.length;
    }
    switch (h.type) {
      case FRAME.DATA:
        if (h.flags & FLAG.END_STREAM) this.endStream(side, h.stream, side.stream.lastTime);
        return;
      case FRAME.HEADERS:
      case FRAME.PUSH_PROMISE:
        side.block = { stream: h.stream, push: h.type === FRAME.PUSH_PROMISE, endStream: (h.flags & FLAG.END_STREAM) !== 0, time, parts: [], length: 0, wire: 0, lost: false };
        this.fragment(side, h, payload);
        return;
      case FRAME.CONTINUATION:
        this.fragment(side, h, payload);
        return;
      case FRAME.RST_STREAM: {
        const target = this.streams.get(h.stream);
        if (target) this.finish(target, time, 'reset', true);
        return;
      }
      default:
        return;
    }
  }

  private fragment(side: Side, h: FrameHeader, payload: Uint8Array | undefined): void {
    const block = side.block!;
    block.wire += HEADER_LENGTH + h.length;
    if (!payload) block.lost = true;
    else {
      let start = 0;
      let end = payload.length;
      if (h.type !== FRAME.CONTINUATION && h.flags & FLAG.PADDED) {
        end -= payload[0] ?? 0;
        start = 1;
      }
      if (h.type === FRAME.HEADERS && h.flags & FLAG.PRIORITY) start += 5;
      if (h.type === FRAME.PUSH_PROMISE) start += 4;
      if (start > end) block.lost = true;
      else if (block.length + end - start > this.ctx.options.maxBuffer) block.lost = true;
      else {
        block.parts.push(payload.slice(start, end));
        block.length += end - start;
      }
    }
    if (h.flags & FLAG.END_HEADERS) {
      side.block = undefined;
      this.headerBlock(side, block);
    }
  }

  private headerBlock(side: Side, block: Block): void {
    let fields: HeaderField[] = [];
    let namesLost = block.lost || !side.decoder.reliable;
    if (block.lost) {
      this.ctx.stats.headerBlockFailures++;
      side.decoder.distrust();
    } else {
      const bytes = new Uint8Array(block.length);
      let at = 0;
      for (const p of block.parts) {
        bytes.set(p, at);
        at += p.length;
      }
      const decoded = side.decoder.decode(bytes);
      if (decoded.failed) this.ctx.stats.headerBlockFailures++;
      namesLost ||= decoded.failed || decoded.unknown > 0;
      fields = decoded.fields;
    }
    if (block.push || block.stream % 2 === 0) return; // server push: decoded for the table only
    if (side.client) this.requestHeaders(block, fields, namesLost);
    else this.responseHeaders(block, fields, namesLost);
    if (block.endStream) this.endStream(side, block.stream, side.stream.lastTime);
  }

  private requestHeaders(block: Block, fields: HeaderField[], namesLost: boolean): void {
    const existing = this.streams.get(block.stream);
    if (existing) return; // trailers of the request
    if (this.streams.size >= this.ctx.options.maxPending) {
      const oldest = this.streams.keys().next().value!;
      this.streams.delete(oldest);
      this.ctx.stats.pendingOverflow++;
    }
    const st: H2Stream = { id: block.stream, requestSeen: true, start: block.time, responseGrpc: false, requestBytes: 0, responseBytes: 0, namesLost };
    st.requestBytes = block.wire; // its frames came before the stream existed
    for (const { name, value } of fields) {
      if (name === ':method') st.method = value;
      else if (name === ':path') st.path = value;
      else if (name === ':authority') st.authority = value;
      else if (name === 'content-type') st.contentType = value;
    }
    this.streams.set(block.stream, st);
  }

  private responseHeaders(block: Block, fields: HeaderField[], namesLost: boolean): void {
    let st = this.streams.get(block.stream);
    if (!st) {
      this.ctx.stats.unmatchedResponses++;
      st = { id: block.stream, requestSeen: false, start: block.time, responseGrpc: false, requestBytes: 0, responseBytes: block.wire, namesLost: true };
      this.streams.set(block.stream, st);
    }
    let status: number | undefined;
    for (const { name, value } of fields) {
      if (name === ':status') status = Number(value);
      else if (name === 'grpc-status') {
        st.grpcStatus = /^\d{1,2}$/.test(value) ? Number(value) : undefined;
        st.responseGrpc = true;
      } else if (name === 'grpc-message') st.grpcMessage = value;
      else if (name === 'content-type' && value.startsWith('application/grpc')) st.responseGrpc = true;
    }
    if (status !== undefined && status >= 100 && status < 200) return; // interim
    if (st.responseStart === undefined) {
      st.responseStart = block.time;
      st.status = status;
    }
    st.namesLost ||= namesLost && !st.requestSeen;
  }

  private endStream(side: Side, id: number, time: bigint): void {
    if (side.client) return; // the request is complete; the record waits for the response
    const st = this.streams.get(id);
    if (st) this.finish(st, time, undefined, false);
  }

  /** Emits a stream's record; `outcome` overrides the status for a reset or a missing response. */
  private finish(st: H2Stream, end: bigint, outcome: 'reset' | 'none' | undefined, partial: boolean): void {
    this.streams.delete(st.id);
    const { options } = this.ctx;
    const grpc = st.contentType?.startsWith('application/grpc') === true || st.responseGrpc;
    const base = {
      conn: this.ctx.conn,
      role: this.ctx.role,
      start: st.start,
      responseStart: st.responseStart,
      end,
      requestBytes: st.requestBytes,
      responseBytes: st.responseBytes,
      requestPartial: !st.requestSeen || st.namesLost,
      responsePartial: partial,
      midStream: this.midStream || !st.requestSeen,
      statusCode: st.status,
      stream: st.id,
    };
    const target = st.path !== undefined ? splitTarget(st.path).path : undefined;
    let record: GrpcRecord | HttpRecord;
    if (grpc) {
      const m = target !== undefined ? /^\/([^/]+)\/([^/]+)$/.exec(target) : null;
      const code = st.grpcStatus;
      const status = outcome ?? (code !== undefined ? (GRPC_CODES[code] ?? String(code)) : st.status !== undefined ? String(st.status) : 'unknown');
      record = {
        ...base,
        protocol: 'grpc',
        service: m?.[1],
        method: m?.[2],
        grpcStatus: code,
        status,
        error: outcome === 'reset' || (code !== undefined ? code !== 0 : st.status !== undefined && st.status !== 200),
      };
      const message = st.grpcMessage !== undefined ? sample(options, decodeGrpcMessage(st.grpcMessage)) : undefined;
      if (message !== undefined) record.errorMessage = message;
    } else {
      record = {
        ...base,
        protocol: 'http2',
        method: st.method,
        path: target !== undefined ? sample(options, target) : undefined,
        route: target !== undefined ? templatePath(target) : undefined,
        host: sample(options, st.authority),
        status: outcome ?? (st.status !== undefined ? String(st.status) : 'unknown'),
        error: outcome === 'reset' || (st.status !== undefined && st.status >= 500),
      };
    }
    this.ctx.stats.records++;
    this.ctx.emit(record);
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec); a bad escape leaves the text as it came. */
function decodeGrpcMessage(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
}
