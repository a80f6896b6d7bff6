/**
 * Ring buffer reader. One native call drains every record that is ready into one buffer; the records
 * are then split and decoded here. Records the kernel could not reserve are counted by the BPF side in
 * the collector's `drops` map, not here: a full ring never blocks the kernel.
 */
import { native, type RingHandle } from './native.js';

export interface RawRecord {
  view: DataView;
  offset: number;
  size: number;
}

export class RingReader {
  readonly name: string;
  private ring: RingHandle | undefined;
  private readonly maxBytes: number;

  constructor(name: string, mapFd: number, maxBytesPerDrain = 4 << 20) {
    this.name = name;
    this.ring = native().ringOpen(mapFd);
    this.maxBytes = maxBytesPerDrain;
  }

  /** Drains what is ready (up to a few batches) and calls onRecord for each record, in order. */
  drain(onRecord: (r: RawRecord) => void, maxBatches = 8): number {
    if (!this.ring) return 0;
    let total = 0;
    for (let batch = 0; batch < maxBatches; batch++) {
      const { buffer, count, more } = native().ringDrain(this.ring, this.maxBytes);
      const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
      let off = 0;
      for (let i = 0; i < count; i++) {
        const size = view.getUint32(off, true);
        onRecord({ view, offset: off + 8, size });
        off += 8 + ((size + 7) & ~7);
      }
      total += count;
      if (!more) break;
    }
    return total;
  }

  /**
   * Calls onReady once, on the main loop, when the kernel says records are waiting (it says so when a
   * record lands in a ring the reader had emptied). Drain, then watch again: one call per drain.
   */
  watch(onReady: () => void): void {
    if (this.ring) native().ringWatch(this.ring, onReady);
  }

  close(): void {
    if (this.ring) native().ringClose(this.ring);
    this.ring = undefined;
  }
}
