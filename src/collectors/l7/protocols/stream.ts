/**
 * One direction of a connection as the parsers read it: a queue of chunks, each a captured prefix
 * followed by a gap of uncaptured bytes (`size - data.length`). A parser looks at the captured bytes
 * from the head up to the first gap (`peek`), consumes what it parsed, and skips what it knows the
 * length of (`skip`) whether captured or not; a skip longer than what has arrived is owed and taken
 * from the next chunks. The queue is bounded: a parser that cannot finish a message within
 * `maxBuffer` captured bytes is told so (`overflowing`) and resynchronizes.
 */

interface Segment {
  data: Uint8Array;
  size: number;
  time: bigint;
  /** bytes of this chunk already consumed (captured or not) */
  pos: number;
}

export class ByteStream {
  private segs: Segment[] = [];
  private owed = 0;
  private capturedQueued = 0;
  /** time of the chunk that held the last byte consumed */
  lastTime = 0n;

  constructor(private readonly maxBuffer: number) {}

  /** Appends one call's data; an owed skip is taken from it first. */
  push(data: Uint8Array, size: number, time: bigint): void {
    const seg: Segment = { data, size: Math.max(size, data.length), time, pos: 0 };
    if (this.owed > 0) {
      const n = Math.min(this.owed, seg.size);
      seg.pos = n;
      this.owed -= n;
      this.lastTime = time;
      if (seg.pos >= seg.size) return;
    }
    this.segs.push(seg);
    this.capturedQueued += Math.max(0, data.length - seg.pos);
  }

  /** bytes still to skip that have not arrived yet */
  get skipping(): number {
    return this.owed;
  }

  /** captured bytes queued, not yet consumed */
  get buffered(): number {
    return this.capturedQueued;
  }

  get empty(): boolean {
    return this.segs.length === 0;
  }

  /** the captured bytes queued are past the buffer limit: a message that long will not be parsed */
  get overflowing(): boolean {
    return this.capturedQueued > this.maxBuffer;
  }

  /** time of the chunk holding the next byte, or of the last one consumed when nothing is queued */
  headTime(): bigint {
    return this.segs[0]?.time ?? this.lastTime;
  }

  /** the next byte is the first of a call */
  atChunkStart(): boolean {
    const s = this.segs[0];
    return s !== undefined && s.pos === 0;
  }

  /** the next byte was not captured */
  atGap(): boolean {
    const s = this.segs[0];
    return s !== undefined && s.pos >= s.data.length;
  }

  /** bytes of the head chunk not consumed yet, captured or not (0 when nothing is queued) */
  restOfChunk(): number {
    const s = this.segs[0];
    return s ? s.size - s.pos : 0;
  }

  /** the head chunk's captured bytes from the head (no copy; may stop before a following chunk's bytes) */
  peekChunk(): Uint8Array {
    const s = this.segs[0];
    return s ? s.data.subarray(Math.min(s.pos, s.data.length)) : new Uint8Array(0);
  }

  /**
   * The head chunk's data, whole (no view made): its captured bytes from `headPos()` are the next
   * ones. For a parser's fast path, which reads in place and then skips; undefined when nothing is queued.
   */
  headData(): Uint8Array | undefined {
    return this.segs[0]?.data;
  }

  /** where the next byte is in `headData()` (at or past its length: not captured) */
  headPos(): number {
    return this.segs[0]?.pos ?? 0;
  }

  /**
   * The captured bytes from the head up to the first gap, across chunks that were captured whole,
   * at most `max` of them. A view when one chunk holds them all, a copy otherwise.
   */
  peek(max = this.maxBuffer): Uint8Array {
    const first = this.segs[0];
    if (!first) return new Uint8Array(0);
    const head = first.data.subarray(Math.min(first.pos, first.data.length));
    if (head.length >= max) return head.length === max ? head : head.subarray(0, max);
    if (first.data.length < first.size || this.segs.length === 1) return head;
    const parts: Uint8Array[] = [head];
    let total = head.length;
    for (let i = 1; i < this.segs.length && total < max; i++) {
      const s = this.segs[i]!;
      parts.push(s.data);
      total += s.data.length;
      if (s.data.length < s.size) break;
    }
    const out = new Uint8Array(Math.min(total, max));
    let at = 0;
    for (const p of parts) {
      const n = Math.min(p.length, out.length - at);
      out.set(p.subarray(0, n), at);
      at += n;
      if (at >= out.length) break;
    }
    return out;
  }

  /** the captured run from the head (what `peek` returns, unbounded) ends in uncaptured bytes, not at the end of what has arrived */
  runEndsInGap(): boolean {
    for (const s of this.segs) if (s.data.length < s.size) return true;
    return false;
  }

  /** Consumes `n` bytes, captured or not; what has not arrived yet is owed. */
  skip(n: number): void {
    let left = n;
    while (left > 0 && this.segs.length > 0) {
      const s = this.segs[0]!;
      const take = Math.min(left, s.size - s.pos);
      this.capturedQueued -= Math.max(0, Math.min(s.pos + take, s.data.length) - Math.min(s.pos, s.data.length));
      s.pos += take;
      left -= take;
      this.lastTime = s.time;
      if (s.pos >= s.size) this.segs.shift();
    }
    this.owed += left;
  }

  /** Drops the rest of the head chunk; returns how many bytes that was. */
  dropChunk(): number {
    const s = this.segs.shift();
    if (!s) return 0;
    this.capturedQueued -= Math.max(0, s.data.length - s.pos);
    this.lastTime = s.time;
    return s.size - s.pos;
  }

  /** Drops everything queued and owed; returns the bytes queued. */
  clear(): number {
    let n = 0;
    while (this.segs.length > 0) n += this.dropChunk();
    this.owed = 0;
    return n;
  }
}
