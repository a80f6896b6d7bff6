/**
 * The typed face of the N-API binding (native/periscope.c). Handles are opaque; every function throws
 * a NativeError (errno, its name, libbpf's log) on failure. Loaded lazily so that commands which only
 * explain why BPF cannot run (doctor) still start when the addon is missing.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PeriscopeError } from './errors.js';

declare const handle: unique symbol;
export type ObjectHandle = { readonly [handle]: 'object' };
export type LinkHandle = { readonly [handle]: 'link' };
export type RingHandle = { readonly [handle]: 'ring' };

export interface ProgramInfo {
  name: string;
  section: string;
  type: number;
  autoload: boolean;
  fd: number;
}

export interface MapInfo {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  fd: number;
}

export interface Native {
  /** btfPath: relocate CO-RE accesses against this kernel BTF (a vmlinux) instead of the running kernel's */
  open(path: string, btfPath?: string): ObjectHandle;
  describe(obj: ObjectHandle): { programs: ProgramInfo[]; maps: MapInfo[] };
  setAutoload(obj: ObjectHandle, program: string, on: boolean): void;
  setMaxEntries(obj: ObjectHandle, map: string, n: number): void;
  setAutocreate(obj: ObjectHandle, map: string, on: boolean): void;
  writeInitialValue(obj: ObjectHandle, map: string, offset: number, bytes: Buffer): void;
  load(obj: ObjectHandle): void;
  closeObject(obj: ObjectHandle): void;
  mapFd(obj: ObjectHandle, map: string): number;
  attach(obj: ObjectHandle, program: string): LinkHandle;
  attachPerfEvent(obj: ObjectHandle, program: string, cpu: number, frequencyHz: number): LinkHandle;
  attachUprobe(obj: ObjectHandle, program: string, binary: string, func: string, pid: number, retprobe: boolean): LinkHandle;
  /** a uprobe at a file offset of `binary` (any instruction); pid -1: every process that maps it */
  attachUprobeAt(obj: ObjectHandle, program: string, binary: string, fileOffset: number, pid: number): LinkHandle;
  attachCgroup(obj: ObjectHandle, program: string, cgroupDir: string): LinkHandle;
  /** a BPF iterator program over a map's elements (mapFd < 0 for iterators that take no map) */
  attachIter(obj: ObjectHandle, program: string, mapFd: number): LinkHandle;
  /** runs an iterator once: what its program wrote, at most maxBytes */
  iterRead(link: LinkHandle, maxBytes: number): Buffer;
  destroyLink(link: LinkHandle): void;
  mapLookup(fd: number, key: Buffer, valueSize: number): Buffer | null;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapNextKey(fd: number, key: Buffer | null, keySize: number): Buffer | null;
  mapLookupBatch(fd: number, keySize: number, valueSize: number, capacity: number, deleteToo: boolean): {
    keys: Buffer;
    values: Buffer;
    count: number;
  };
  ringOpen(mapFd: number): RingHandle;
  ringDrain(ring: RingHandle, maxBytes: number): { buffer: Buffer; count: number; more: boolean };
  ringClose(ring: RingHandle): void;
  /** Calls back once when the ring has records (status: libuv's, 0 when all is well); call again to re-arm. */
  ringWatch(ring: RingHandle, callback: (status: number) => void): void;
  /** runs a loaded program once with this input (BPF_PROG_TEST_RUN); its return value */
  progTestRun(obj: ObjectHandle, program: string, data: Buffer): number;
  probeProgramType(type: number): number;
  probeMapType(type: number): number;
  createMap(type: number, keySize: number, valueSize: number, maxEntries: number): number;
  closeFd(fd: number): void;
  numPossibleCpus(): number;
  monotonicNs(): bigint;
  /** absolute path of the cgroup2 directory with this id, or null when there is none */
  cgroupPath(cgroup2Mount: string, id: number): string | null;
  constants: {
    progTypes: Record<string, number>;
    mapTypes: Record<string, number>;
    BPF_ANY: number;
    BPF_NOEXIST: number;
    BPF_EXIST: number;
    BPF_F_NO_PREALLOC: number;
  };
  libbpfVersion: string;
}

export const NATIVE_PATH = fileURLToPath(new URL('../../../native/build/Release/periscope.node', import.meta.url));

let cached: Native | undefined;

export function native(): Native {
  if (cached) return cached;
  if (!existsSync(NATIVE_PATH)) {
    throw new PeriscopeError('NATIVE_MISSING', `the native binding is not built (${NATIVE_PATH})`, 'run `make build`');
  }
  cached = createRequire(import.meta.url)(NATIVE_PATH) as Native;
  return cached;
}

/** A map constant by name, as the binding exports it from libbpf's headers. */
export function mapType(name: string): number {
  const t = native().constants.mapTypes[name];
  if (t === undefined) throw new Error(`unknown map type ${name}`);
  return t;
}
