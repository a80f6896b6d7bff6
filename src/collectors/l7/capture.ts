/**
 * The capture half of the l7 collector: loads l7.bpf.o, keeps its cgroup allow-list, and drains its
 * ring into typed chunks (a payload prefix of one system call on one TCP connection, with the
 * connection's id, who moved it and which way) and close notices, for the protocol parsers. The kernel
 * decides the protocol once per connection from its first bytes and ships nothing of a connection
 * that is none it knows, nor of a process whose cgroup is not on the list. What the kernel could not
 * ship is counted (`drops()`), and each chunk carries its stream offset, so a parser sees a gap.
 *
 * The l7 collector (index.ts) wires this to the parsers and the registry.
 */
import { PeriscopeError } from '../../kernel/errors.js';
import { type Alternative, type Choice, type ObjectSpec } from '../../kernel/bpf-object.js';
import { type BpfObject } from '../../kernel/bpf-object.js';
import { type TypedMap } from '../../kernel/maps.js';
import { readU64 } from '../../kernel/codec.js';
import { type RawRecord, type RingReader } from '../../kernel/ring.js';
import { loadAndAttach } from '../kernel-collector.js';
import { wordsToAddr } from '../network/addr.js';
import * as gen from './l7.gen.js';
import { TlsProbes, type TlsLibrary, type TlsProgram, type TlsStats } from './tls.js';

/** tp_btf on the raw sys_exit tracepoint: every system call runs a compare; no tracefs needed. */
export const ALT_SYS_EXIT = 'tp_btf';
/** The same before Linux 6.2 (no bpf_rdonly_cast): the socket read with a helper call per field. */
export const ALT_SYS_EXIT_READ = 'tp_btf_read';
/** The classic syscalls:sys_exit_* tracepoints of the nine system calls (libbpf needs tracefs). */
export const ALT_TRACEPOINTS = 'tracepoint';

const TRACEPOINT_PROGRAMS = gen.programs.filter((p) => p.startsWith('l7_exit_'));
/** The uprobes on OpenSSL (tls.ts attaches them where it finds a libssl). */
export const TLS_PROGRAMS: readonly TlsProgram[] = ['l7_ssl_read', 'l7_ssl_read_ex', 'l7_ssl_write', 'l7_ssl_write_ex', 'l7_ssl_set_fd', 'l7_ssl_ret'];

export const L7_SPEC: ObjectSpec<gen.ProgramName> = {
  file: gen.OBJECT_FILE,
  programs: gen.programs,
  maps: gen.maps,
  cpuMaps: ['scratch'],
  attach: Object.fromEntries(TLS_PROGRAMS.map((p) => [p, { kind: 'uprobe' }])),
  // Both take closes from sock:inet_sock_set_state and differ in how they reach the system calls'
  // exits. Neither uses socket storage: sk_storage_tracing stands for "5.11 or later", which keeps 5.10
  // out by name; what they need past it (a fetch-and-add that returns, 5.12; bpf_task_pt_regs for the
  // tracepoints, 5.15) the verifier checks at load. A probe of their own would name those too.
  alternatives: [
    {
      name: ALT_SYS_EXIT,
      requires: ['btf', 'tp_btf', 'ringbuf', 'sk_storage_tracing', 'bpf_loop', 'rdonly_cast'],
      programs: ['l7_sys_exit', 'l7_sock_state'],
    },
    {
      name: ALT_SYS_EXIT_READ,
      requires: ['btf', 'tp_btf', 'ringbuf', 'sk_storage_tracing', 'bpf_loop'],
      programs: ['l7_sys_exit_read', 'l7_sock_state'],
      note: 'kernel memory read with a helper call per field (no bpf_rdonly_cast before Linux 6.2): a captured system call costs more',
    },
    {
      name: ALT_TRACEPOINTS,
      requires: ['btf', 'tracepoint', 'tp_btf', 'ringbuf', 'sk_storage_tracing', 'bpf_loop'],
      programs: [...TRACEPOINT_PROGRAMS, 'l7_sock_state'],
    },
  ],
};

/** Most payload bytes a chunk carries (L7_MAX_CAPTURE in l7.h): what HTTP/2 connections' chunks carry. */
export const MAX_CAPTURE_BYTES = gen.L7ScratchCodec.size - gen.L7ChunkCodec.size >> 1;
/** Payload bytes the other connections' chunks carry by default (L7_DEFAULT_CAPTURE in l7.h). */
export const DEFAULT_CAPTURE_BYTES = 1024;
/** The capture ring's size unless told (the map's own, l7.bpf.c). */
export const DEFAULT_RING_BYTES: number = gen.maps.l7_events.maxEntries;

export type L7Protocol = 'unknown' | 'http1' | 'http2' | 'postgres' | 'redis';
export type L7Role = 'unknown' | 'client' | 'server';
/** the system call a chunk came from; ssl_read and ssl_write: OpenSSL's plaintext (SSL_read/SSL_write and their _ex) */
export type L7Syscall = 'read' | 'write' | 'readv' | 'writev' | 'recvfrom' | 'sendto' | 'recvmsg' | 'sendmsg' | 'sendmmsg' | 'ssl_read' | 'ssl_write';

const PROTOCOLS: readonly L7Protocol[] = ['unknown', 'http1', 'http2', 'postgres', 'redis'];
const ROLES: readonly L7Role[] = ['unknown', 'client', 'server'];
const SYSCALLS: readonly L7Syscall[] = ['read', 'write', 'readv', 'writev', 'recvfrom', 'sendto', 'recvmsg', 'sendmsg', 'sendmmsg', 'ssl_read', 'ssl_write'];

export interface Endpoint {
  /** dotted quad for IPv4 (IPv4-mapped in the kernel), RFC 5952 for IPv6 */
  addr: string;
  port: number;
}

/** The first bytes of what one system call moved on a captured connection. */
export interface Chunk {
  kind: 'chunk';
  /** the connection (one socket): a new id for a new socket, even on a reused fd */
  conn: bigint;
  tgid: number;
  pid: number;
  fd: number;
  cgroup: bigint;
  dir: 'egress' | 'ingress';
  /** CLOCK_MONOTONIC ns when the system call returned */
  time: bigint;
  /** bytes the system call moved (sendmmsg: its first message's) */
  size: number;
  /** bytes moved in this direction before this chunk, shipped or not: a jump says what was missed */
  offset: number;
  /** the first bytes of it (at most the capture size) */
  data: Uint8Array;
  protocol: L7Protocol;
  /** which end this socket is, as the first bytes said */
  role: L7Role;
  syscall: L7Syscall;
  family: 'ipv4' | 'ipv6';
  local: Endpoint;
  remote: Endpoint;
}

/** A captured connection reached TCP_CLOSE: its state can go. */
export interface ConnClose {
  kind: 'close';
  conn: bigint;
  /** the cgroup of the process that first moved payload on it */
  cgroup: bigint;
  time: bigint;
  protocol: L7Protocol;
  role: L7Role;
  egressBytes: number;
  ingressBytes: number;
  local: Endpoint;
  remote: Endpoint;
}

export type CaptureRecord = Chunk | ConnClose;

export interface CaptureOptions {
  /** take this alternative or none (tests run each) */
  alternative?: string;
  /** bytes of the ring buffer: a power of two, at least a page (default 4 MiB) */
  ringBytes?: number;
  /** payload bytes per chunk, 1..MAX_CAPTURE_BYTES (default DEFAULT_CAPTURE_BYTES; HTTP/2 connections' chunks and a connection's first carry MAX_CAPTURE_BYTES) */
  captureBytes?: number;
  /** capture every cgroup, the allow-list notwithstanding (tests, node-wide debugging) */
  allCgroups?: boolean;
  /** entries of the allow-list (default 4096) */
  maxCgroups?: number;
  /** capture TLS plaintext from OpenSSL where scanTls() finds it (default true) */
  tls?: boolean;
}

export interface CaptureDrops {
  /** records the kernel could not put in the ring: it was full */
  ringFull: number;
  /** connections whose state could not be made (socket storage refused), so nothing was captured */
  noState: number;
  /** payloads (or their iovecs, msghdr) the kernel could not read from the process's memory */
  unreadable: number;
  /** ring records that did not decode */
  malformed: number;
}

export interface CaptureStats {
  connections: number;
  classified: number;
  ignored: number;
  chunks: number;
  ignoredByUser: number;
  closes: number;
  /** connections whose plaintext came through OpenSSL's probes */
  tlsConnections: number;
  /** SSL calls of allowed processes */
  tlsCalls: number;
  /** SSL calls that moved plaintext on no connection known (lost) */
  tlsNoConnection: number;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function endpoint(words: readonly number[], port: number): Endpoint {
  return { addr: wordsToAddr(words) || '0.0.0.0', port };
}

const ENDPOINT_WORDS = 9; // local_addr, remote_addr (four u32 each), local_port and remote_port (one u32)

/**
 * Each connection's endpoints as last decoded, with the bytes they were decoded from: a record
 * whose address and port bytes are the same gets the same two objects, not two addresses formatted
 * again (the costliest part of a record's decoding). Forgotten at the connection's close; emptied
 * whole past a bound, as a close the ring lost would leave its entry.
 */
export class EndpointCache {
  private readonly conns = new Map<bigint, { raw: Uint32Array; local: Endpoint; remote: Endpoint }>();

  constructor(private readonly max = 65536) {}

  /** The endpoints of the record at `at` (a chunk's or a close's header) of connection `conn`. */
  of(v: DataView, at: number, conn: bigint): { local: Endpoint; remote: Endpoint } {
    const O = gen.L7ChunkOffsets;
    const from = at + O.local_addr;
    const known = this.conns.get(conn);
    if (known && sameWords(v, from, known.raw)) return known;
    const raw = new Uint32Array(ENDPOINT_WORDS);
    for (let i = 0; i < ENDPOINT_WORDS; i++) raw[i] = v.getUint32(from + i * 4, true);
    // the words as read: both addresses, then local_port and remote_port (little-endian) in one
    const e = { raw, local: endpoint([...raw.subarray(0, 4)], raw[8]! & 0xffff), remote: endpoint([...raw.subarray(4, 8)], raw[8]! >>> 16) };
    if (this.conns.size >= this.max) this.conns.clear();
    this.conns.set(conn, e);
    return e;
  }

  forget(conn: bigint): void {
    this.conns.delete(conn);
  }

  get size(): number {
    return this.conns.size;
  }
}

function sameWords(v: DataView, from: number, raw: Uint32Array): boolean {
  for (let i = 0; i < ENDPOINT_WORDS; i++) if (v.getUint32(from + i * 4, true) !== raw[i]) return false;
  return true;
}

/**
 * One ring record as a chunk or a close, undefined when it is malformed. The fields are read where
 * the header has them (gen.L7ChunkOffsets), not through the codec's whole decode (which builds the
 * address arrays and the padding's string), and the endpoints come from `endpoints`.
 */
export function decodeRecord(r: RawRecord, endpoints: EndpointCache): CaptureRecord | undefined {
  const H = gen.L7ChunkCodec;
  const O = gen.L7ChunkOffsets;
  if (r.size < H.size) return undefined;
  const v = r.view;
  const at = r.offset;
  const u8 = (o: number): number => v.getUint8(at + o);
  // 64-bit ids and times exactly, not through a double
  const conn = v.getBigUint64(at + O.conn_id, true);
  const cgroup = v.getBigUint64(at + O.cgroup_id, true);
  const time = v.getBigUint64(at + O.time_ns, true);
  const protocol = PROTOCOLS[u8(O.protocol)] ?? 'unknown';
  const role = ROLES[u8(O.role)] ?? 'unknown';
  const K = gen.enums.l7_record_kind;
  const kind = u8(O.kind);
  const egressBytes = readU64(v, at + O.egress_bytes);
  const ingressBytes = readU64(v, at + O.ingress_bytes);
  if (kind === K.REC_CLOSE) {
    const { local, remote } = endpoints.of(v, at, conn);
    endpoints.forget(conn);
    return { kind: 'close', conn, cgroup, time, protocol, role, egressBytes, ingressBytes, local, remote };
  }
  const captured = v.getUint16(at + O.captured, true);
  if (kind !== K.REC_CHUNK || captured > r.size - H.size) return undefined;
  const syscall = SYSCALLS[u8(O.syscall)];
  if (!syscall) return undefined;
  const egress = u8(O.direction) === gen.enums.l7_direction.DIR_EGRESS;
  // a copy: the drained buffer is the native layer's, and a parser may hold a chunk
  const data = new Uint8Array(v.buffer.slice(v.byteOffset + at + H.size, v.byteOffset + at + H.size + captured));
  const { local, remote } = endpoints.of(v, at, conn);
  return {
    kind: 'chunk',
    conn,
    tgid: v.getUint32(at + O.tgid, true),
    pid: v.getUint32(at + O.pid, true),
    fd: v.getInt32(at + O.fd, true),
    cgroup,
    dir: egress ? 'egress' : 'ingress',
    time,
    size: readU64(v, at + O.size),
    offset: egress ? egressBytes : ingressBytes,
    data,
    protocol,
    role,
    syscall,
    family: v.getUint16(at + O.family, true) === 10 ? 'ipv6' : 'ipv4',
    local,
    remote,
  };
}

export class L7Capture {
  private readonly obj: BpfObject<gen.ProgramName>;
  private readonly ring: RingReader;
  private readonly allowed: TypedMap<number, number>;
  private readonly ignoreMap: TypedMap<number, number>;
  private readonly dropMap: TypedMap<number, number>;
  private readonly statMap: TypedMap<number, number>;
  private readonly allowList = new Set<bigint>();
  private malformed = 0;
  private closed = false;
  private readonly allCgroups: boolean;
  /** OpenSSL's probes, when the kernel took them */
  private readonly tls: TlsProbes | undefined;
  private readonly allowCapacity: number;
  private readonly endpoints = new EndpointCache();

  constructor(opts: CaptureOptions = {}) {
    const captureBytes = opts.captureBytes ?? DEFAULT_CAPTURE_BYTES;
    if (!Number.isInteger(captureBytes) || captureBytes < 1 || captureBytes > MAX_CAPTURE_BYTES) {
      throw new PeriscopeError('BAD_ARGUMENT', `capture size ${captureBytes} is not in 1..${MAX_CAPTURE_BYTES}`, `give 1..${MAX_CAPTURE_BYTES} bytes`);
    }
    const ringBytes = opts.ringBytes ?? DEFAULT_RING_BYTES;
    if (!isPowerOfTwo(ringBytes) || ringBytes < 4096) {
      throw new PeriscopeError('BAD_ARGUMENT', `ring size ${ringBytes} is not a power of two of at least 4096`, 'give a power of two, e.g. 4194304');
    }
    // the knobs are per load, so every alternative carries them
    const knobs = { capture_bytes: captureBytes, capture_all: opts.allCgroups ?? false, wake_bytes: ringBytes / 4 };
    // each alternative with the TLS uprobes first, then without them: a kernel that cannot have them
    // still captures plaintext traffic, and says why it has no TLS
    const noting = (a: Alternative<gen.ProgramName>, why: string): Alternative<gen.ProgramName> => ({ ...a, note: a.note ? `${a.note}; ${why}` : why });
    const withTls = (a: Alternative<gen.ProgramName>): Alternative<gen.ProgramName>[] =>
      opts.tls === false
        ? [noting(a, 'TLS plaintext not captured: turned off')]
        : [
            { ...a, requires: [...a.requires, 'uprobe'], programs: [...a.programs, ...TLS_PROGRAMS] },
            noting(a, 'TLS plaintext not captured: the OpenSSL uprobes cannot load here (see passed over)'),
          ];
    const spec: ObjectSpec<gen.ProgramName> = {
      ...L7_SPEC,
      config: gen.config,
      alternatives: L7_SPEC.alternatives.flatMap(withTls).map((a): Alternative<gen.ProgramName> => ({ ...a, config: { ...a.config, ...knobs } })),
    };
    const maxEntries: Record<string, number> = { l7_events: ringBytes };
    if (opts.maxCgroups !== undefined) maxEntries.allowed_cgroups = opts.maxCgroups;
    this.allowCapacity = opts.maxCgroups ?? gen.maps.allowed_cgroups.maxEntries;
    const { obj, parts } = loadAndAttach(spec, { maxCgroups: 0 }, { ...(opts.alternative ? { alternative: opts.alternative } : {}), maxEntries }, (o) => ({
      ring: o.ring(gen.maps.l7_events.name),
      allowed: o.map(gen.maps.allowed_cgroups),
      ignoreMap: o.map(gen.maps.ignore_conns),
      dropMap: o.map(gen.maps.drops),
      statMap: o.map(gen.maps.stats),
    }));
    this.obj = obj;
    this.allCgroups = opts.allCgroups ?? false;
    if (obj.loaded('l7_ssl_ret')) this.tls = new TlsProbes({ attach: (program, path, offset) => obj.attachUprobeAt(program, path, offset, -1) });
    this.ring = parts.ring;
    this.allowed = parts.allowed;
    this.ignoreMap = parts.ignoreMap;
    this.dropMap = parts.dropMap;
    this.statMap = parts.statMap;
  }

  /** Which alternative the kernel took, and why it passed over the others. */
  get choice(): Choice {
    return this.obj.choice;
  }

  /** Programs attached now. */
  get programsAttached(): number {
    return this.closed ? 0 : this.obj.attachedPrograms;
  }

  /**
   * Looks through the allowed cgroups' processes for OpenSSL libraries not probed yet and probes them
   * (tls.ts); false when the kernel took no TLS probes (the choice's note says why).
   */
  scanTls(): boolean {
    if (!this.tls || this.closed) return false;
    this.tls.scan(this.allCgroups ? 'all' : new Set([...this.allowList].map(Number)));
    return true;
  }

  /** What scanTls() found and probed; undefined without TLS probes. */
  tlsStats(): TlsStats | undefined {
    return this.tls?.stats();
  }

  /** The OpenSSL library files scanTls() looked at, probed or not. */
  tlsLibraries(): TlsLibrary[] {
    return this.tls?.list() ?? [];
  }

  /** Most cgroups the allow-list holds. */
  get maxCgroups(): number {
    return this.allowCapacity;
  }

  /** Captures the processes of this cgroup (by its cgroup2 id) from now on. */
  addCgroup(id: number | bigint): void {
    const key = BigInt(id);
    this.allowed.update(Number(key), 1);
    this.allowList.add(key);
  }

  /** Stops capturing this cgroup. Its connections keep their ids; nothing more of them is shipped. */
  removeCgroup(id: number | bigint): void {
    const key = BigInt(id);
    this.allowed.delete(Number(key));
    this.allowList.delete(key);
  }

  /** The allow-list as user space set it. */
  cgroups(): bigint[] {
    return [...this.allowList];
  }

  /** Asks the kernel to ship nothing more of a connection (one of its next 8 chunks marks it ignored). */
  ignore(conn: bigint): void {
    this.ignoreMap.update(Number(conn), 1);
  }

  /** Drains what the ring holds, in order; how many records it read. */
  drain(onRecord: (r: CaptureRecord) => void, maxBatches = 8): number {
    if (this.closed) return 0;
    return this.ring.drain((r) => {
      const rec = this.decode(r);
      if (rec) onRecord(rec);
      else this.malformed++;
    }, maxBatches);
  }

  /** Calls onReady once when records wait in the ring (RingReader.watch); drain, then watch again. */
  watch(onReady: () => void): void {
    if (!this.closed) this.ring.watch(onReady);
  }

  /** Everything the ring holds now, as a list (tests and tools). */
  drainAll(): CaptureRecord[] {
    const out: CaptureRecord[] = [];
    while (this.drain((r) => out.push(r)) > 0);
    return out;
  }

  private decode(r: RawRecord): CaptureRecord | undefined {
    return decodeRecord(r, this.endpoints);
  }

  /** What the kernel (and the decoder) could not keep, since load. */
  drops(): CaptureDrops {
    const D = gen.enums.periscope_drop;
    const S = gen.enums.l7_stat;
    return {
      ringFull: this.dropMap.lookup(D.DROP_RINGBUF_FULL) ?? 0,
      noState: (this.dropMap.lookup(D.DROP_MAP_UPDATE) ?? 0) + (this.dropMap.lookup(D.DROP_MAP_FULL) ?? 0),
      unreadable: this.statMap.lookup(S.STAT_READ_FAILED) ?? 0,
      malformed: this.malformed,
    };
  }

  /** What the kernel did, since load. */
  stats(): CaptureStats {
    const S = gen.enums.l7_stat;
    const n = (k: number): number => this.statMap.lookup(k) ?? 0;
    return {
      connections: n(S.STAT_CONNECTIONS),
      classified: n(S.STAT_CLASSIFIED),
      ignored: n(S.STAT_IGNORED),
      chunks: n(S.STAT_CHUNKS),
      ignoredByUser: n(S.STAT_DROPPED_BY_USER),
      closes: n(S.STAT_CLOSES),
      tlsConnections: n(S.STAT_TLS),
      tlsCalls: n(S.STAT_TLS_CALLS),
      tlsNoConnection: n(S.STAT_TLS_NO_CONN),
    };
  }

  /** Detaches and frees everything in the kernel; safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.obj.close();
  }
}
