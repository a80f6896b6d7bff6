/**
 * Typed BPF maps. A TypedMap pairs a map's fd with the codecs generated from the object's BTF, reads
 * the whole map in kernel batches (or key by key where the kernel lacks batch operations), and sums
 * per-CPU values into one total per key.
 */
import { type Codec, encode, sumValues } from './codec.js';
import { native, mapType } from './native.js';
import { PeriscopeError, isNativeError } from './errors.js';

export interface MapSpec<K, V> {
  readonly name: string;
  readonly type: number;
  readonly maxEntries: number;
  /** map_flags (BPF_F_NO_PREALLOC, ...) */
  readonly flags: number;
  readonly key: Codec<K> | undefined;
  readonly value: Codec<V> | undefined;
}

const round8 = (n: number): number => (n + 7) & ~7;

export class TypedMap<K, V> {
  readonly name: string;
  readonly perCpu: boolean;
  private readonly fd: number;
  private readonly key: Codec<K>;
  private readonly value: Codec<V>;
  private readonly cpus: number;
  private readonly entrySize: number; // one value as the kernel copies it out
  private readonly capacity: number;
  private readonly batch: boolean;

  constructor(spec: MapSpec<K, V>, fd: number, maxEntries: number, batch: boolean) {
    if (!spec.key || !spec.value) throw new Error(`map ${spec.name} has no key/value types`);
    const n = native();
    this.name = spec.name;
    this.fd = fd;
    this.key = spec.key;
    this.value = spec.value;
    this.perCpu = [mapType('BPF_MAP_TYPE_PERCPU_HASH'), mapType('BPF_MAP_TYPE_PERCPU_ARRAY'), mapType('BPF_MAP_TYPE_LRU_PERCPU_HASH')].includes(spec.type);
    this.cpus = this.perCpu ? n.numPossibleCpus() : 1;
    this.entrySize = this.perCpu ? round8(spec.value.size) * this.cpus : spec.value.size;
    this.capacity = maxEntries;
    this.batch = batch;
  }

  /** Per-CPU values of one entry, as they are (length = possible CPUs; 1 for other maps). */
  private decodeValues(buf: Buffer, offset: number): V[] {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (!this.perCpu) return [this.value.decode(view, offset)];
    const stride = round8(this.value.size);
    return Array.from({ length: this.cpus }, (_x, cpu) => this.value.decode(view, offset + cpu * stride));
  }

  private total(values: V[]): V {
    return values.reduce((a, b) => sumValues(a, b));
  }

  lookupPerCpu(key: K): V[] | undefined {
    const buf = native().mapLookup(this.fd, encode(this.key, key), this.entrySize);
    return buf ? this.decodeValues(buf, 0) : undefined;
  }

  /** One entry, summed over CPUs. */
  lookup(key: K): V | undefined {
    const v = this.lookupPerCpu(key);
    return v ? this.total(v) : undefined;
  }

  update(key: K, value: V): void {
    if (this.perCpu) throw new Error(`update of per-CPU map ${this.name} is not supported`);
    native().mapUpdate(this.fd, encode(this.key, key), encode(this.value, value), native().constants.BPF_ANY);
  }

  delete(key: K): boolean {
    return native().mapDelete(this.fd, encode(this.key, key));
  }

  /** Every key: what the janitor needs, without decoding and summing the values. */
  keys(): K[] {
    if (this.batch) {
      const { keys, count } = this.readBatch(false);
      const view = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
      return Array.from({ length: count }, (_x, i) => this.key.decode(view, i * this.key.size));
    }
    return [...this.rawKeys(false)].map((k) => this.key.decode(new DataView(k.buffer, k.byteOffset, k.byteLength), 0));
  }

  /** Keys one get_next_key call at a time, where batch operations are missing. Draining, the consumer
   * deletes each key it is given, so the walk starts over from the first key each time. */
  private *rawKeys(drain: boolean): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (let i = 0; i <= this.capacity; i++) {
      const next: Buffer | null = native().mapNextKey(this.fd, drain ? null : prev, this.key.size);
      if (!next) return;
      yield next;
      prev = next;
    }
  }

  /** Every entry, values summed over CPUs. With drain, entries are removed as they are read. */
  entries(drain = false): Map<K, V> {
    const out = new Map<K, V>();
    if (this.batch) {
      const { keys, values, count } = this.readBatch(drain);
      const kview = new DataView(keys.buffer, keys.byteOffset, keys.byteLength);
      for (let i = 0; i < count; i++) {
        out.set(this.key.decode(kview, i * this.key.size), this.total(this.decodeValues(values, i * this.entrySize)));
      }
      return out;
    }
    const n = native();
    for (const k of this.rawKeys(drain)) {
      const val = n.mapLookup(this.fd, k, this.entrySize);
      if (val) out.set(this.key.decode(new DataView(k.buffer, k.byteOffset, k.byteLength), 0), this.total(this.decodeValues(val, 0)));
      if (drain) n.mapDelete(this.fd, k);
    }
    return out;
  }

  private readBatch(drain: boolean): { keys: Buffer; values: Buffer; count: number } {
    try {
      return native().mapLookupBatch(this.fd, this.key.size, this.entrySize, this.capacity, drain);
    } catch (err) {
      if (isNativeError(err)) {
        throw new PeriscopeError('BPF_MAP', `reading map ${this.name}: ${err.message}`, 'report this with `periscope doctor` output', { cause: err });
      }
      throw err;
    }
  }
}
