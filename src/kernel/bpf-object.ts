/**
 * Loading a collector's BPF object. The *spec* is what the ELF declares (the generated module: maps,
 * programs, codecs), the same on every machine; the *object* is what this kernel accepted. A collector
 * declares alternatives — sets of entry points, each needing some kernel features — and loadObject
 * takes the first one the kernel supports, loads only its programs, attaches them, and reports which
 * alternative it took and why the others were passed over.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { native, type LinkHandle, type ObjectHandle } from './native.js';
import { type Codec, encode } from './codec.js';
import { PeriscopeError, isNativeError, logTail } from './errors.js';
import { TypedMap, type MapSpec } from './maps.js';
import { RingReader } from './ring.js';
import { probe, supported, type Feature } from './features.js';
import { findCgroup2Mount } from '../inventory/cgroups.js';

const OBJECT_DIR = fileURLToPath(new URL('../../../build/bpf/', import.meta.url));

export function objectPath(file: string): string {
  return join(OBJECT_DIR, file);
}

export interface Alternative<P extends string> {
  /** short name shown by doctor and /metrics, e.g. "tp_btf" */
  readonly name: string;
  readonly requires: readonly Feature[];
  readonly programs: readonly P[];
  /** .rodata knobs this alternative sets before load */
  readonly config?: Readonly<Record<string, number | boolean>>;
  /** maps only other alternatives use: not created, so a kernel without their type still loads */
  readonly skipMaps?: readonly string[];
  /** what this alternative does not do that the first one does, as doctor and the status say it */
  readonly note?: string;
}

/** A .rodata knob as the generated module describes it. */
export interface ConfigSpec {
  readonly section: string;
  readonly offset: number;
  readonly codec: Codec<number>;
}

/**
 * Entries a CPU-indexed array needs: the highest possible CPU's number plus one. Not the count of
 * possible CPUs (libbpf's), which is less where the possible mask has holes ("0-3,8-11": 8 CPUs,
 * numbered up to 11).
 */
export function cpuSlots(possible = '/sys/devices/system/cpu/possible'): number {
  try {
    return highestInCpuList(readFileSync(possible, 'utf8')) + 1;
  } catch {
    return native().numPossibleCpus();
  }
}

/** Every number of a kernel CPU list ("0-2,5" → 0, 1, 2, 5); throws on anything else. */
export function cpusInList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a CPU list: "${list.trim()}"`);
    for (let c = Number(m[1]); c <= Number(m[2] ?? m[1]); c++) out.push(c);
  }
  return out;
}

/** The highest number in a kernel CPU list ("0-3,8-11" → 11); throws on anything else. */
export function highestInCpuList(list: string): number {
  let top = -1;
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`not a CPU list: "${list.trim()}"`);
    top = Math.max(top, Number(m[2] ?? m[1]));
  }
  return top;
}

export interface ObjectSpec<P extends string> {
  readonly file: string;
  readonly programs: readonly P[];
  readonly alternatives: readonly Alternative<P>[];
  readonly config?: Readonly<Record<string, ConfigSpec>>;
  /** every map the object declares (from the generated module): types, sizes, codecs */
  readonly maps: Readonly<Record<string, MapSpec<unknown, unknown>>>;
  /** maps keyed by cgroup id: sized by --max-cgroups, and cleaned when a cgroup is gone */
  readonly cgroupMaps?: readonly string[];
  /** arrays of an entry per possible CPU (indexed by bpf_get_smp_processor_id()): a per-CPU array's
   * value is at most 32 KiB, these may be larger. Sized to the possible CPUs at load. */
  readonly cpuMaps?: readonly string[];
  /** programs that do not attach by their section alone (default: by section) */
  readonly attach?: Readonly<Partial<Record<P, AttachKind>>>;
}

/**
 * How a program attaches when its section does not say it all: to the root of the cgroup2 tree
 * (cgroup_skb, sock_ops ...: every socket of the node), or as an iterator over one of the object's
 * maps, run on demand with iterRead().
 */
export type AttachKind = { readonly kind: 'cgroup' } | { readonly kind: 'iter'; readonly map: string } | { readonly kind: 'uprobe' } | { readonly kind: 'perf' };

export interface LoadOptions {
  /** map name → max_entries, set before load (bounds the kernel memory of per-cgroup maps) */
  maxEntries?: Record<string, number>;
  /** take this alternative or none (tests run every alternative the kernel supports) */
  alternative?: string;
}

export interface Choice {
  chosen: string;
  passedOver: { name: string; reason: string }[];
  /** the chosen alternative's note, if it has one */
  note?: string;
}

/** Why the kernel cannot run an alternative, from the feature probes; undefined when it can. */
function lacking(alt: Alternative<string>): string | undefined {
  const missing = alt.requires.filter((f) => !supported(f));
  if (missing.length === 0) return undefined;
  return `kernel lacks ${missing.map((f) => `${f} (${(probe(f) as { reason?: string }).reason ?? 'not supported'})`).join(', ')}`;
}

/** Which alternative the kernel supports, without loading anything but the probes. */
export function chooseAlternative<P extends string>(spec: ObjectSpec<P>): Choice {
  const passedOver: Choice['passedOver'] = [];
  for (const alt of spec.alternatives) {
    const why = lacking(alt);
    if (!why) return { chosen: alt.name, passedOver, ...(alt.note ? { note: alt.note } : {}) };
    passedOver.push({ name: alt.name, reason: why });
  }
  return { chosen: '', passedOver };
}

/** The alternatives whose kernel features the probes find, in order: what tests run every one of. */
export function supportedAlternatives(spec: ObjectSpec<string>): string[] {
  return spec.alternatives.filter((a) => lacking(a) === undefined).map((a) => a.name);
}

export class BpfObject<P extends string> {
  readonly spec: ObjectSpec<P>;
  readonly choice: Choice;
  private handle: ObjectHandle | undefined;
  private readonly programs: readonly P[];
  private readonly links: LinkHandle[] = [];
  private readonly uprobes: LinkHandle[] = [];
  private readonly perfLinks: LinkHandle[] = [];
  private readonly maxEntries: Record<string, number>;
  private readonly rings: RingReader[] = [];
  private readonly iterators = new Map<string, LinkHandle>();

  private constructor(spec: ObjectSpec<P>, handle: ObjectHandle, programs: readonly P[], choice: Choice, maxEntries: Record<string, number>) {
    this.spec = spec;
    this.handle = handle;
    this.programs = programs;
    this.choice = choice;
    this.maxEntries = maxEntries;
  }

  /**
   * Opens and loads the object with the first alternative that both the probes allow and the
   * verifier accepts. Throws NO_ALTERNATIVE, with every reason, when none does.
   */
  static load<P extends string>(spec: ObjectSpec<P>, opts: LoadOptions = {}): BpfObject<P> {
    const n = native();
    const passedOver: Choice['passedOver'] = [];
    if (opts.alternative !== undefined && !spec.alternatives.some((a) => a.name === opts.alternative)) {
      throw new Error(`${spec.file} has no alternative ${opts.alternative}`);
    }
    for (const alt of spec.alternatives) {
      if (opts.alternative !== undefined && alt.name !== opts.alternative) {
        passedOver.push({ name: alt.name, reason: `not asked for (only ${opts.alternative})` });
        continue;
      }
      const why = lacking(alt);
      if (why) {
        passedOver.push({ name: alt.name, reason: why });
        continue;
      }
      let handle: ObjectHandle;
      try {
        handle = n.open(objectPath(spec.file));
      } catch (err) {
        throw new PeriscopeError('BPF_OPEN', `cannot open ${spec.file}: ${(err as Error).message}`, 'run `make build`', { cause: err });
      }
      try {
        for (const p of spec.programs) n.setAutoload(handle, p, alt.programs.includes(p));
        for (const m of alt.skipMaps ?? []) n.setAutocreate(handle, m, false);
        for (const [name, value] of Object.entries(alt.config ?? {})) {
          const knob = spec.config?.[name];
          if (!knob) throw new Error(`${spec.file} has no knob ${name}`);
          n.writeInitialValue(handle, knob.section, knob.offset, encode(knob.codec, Number(value)));
        }
        for (const map of spec.cpuMaps ?? []) n.setMaxEntries(handle, map, cpuSlots());
        for (const [map, max] of Object.entries(opts.maxEntries ?? {})) n.setMaxEntries(handle, map, max);
        n.load(handle);
      } catch (err) {
        n.closeObject(handle);
        const why = isNativeError(err) ? `${err.message}\n${logTail(err)}` : String(err);
        passedOver.push({ name: alt.name, reason: `load failed: ${why}` });
        continue;
      }
      const maxEntries: Record<string, number> = {};
      for (const m of n.describe(handle).maps) maxEntries[m.name] = m.maxEntries;
      return new BpfObject(spec, handle, alt.programs, { chosen: alt.name, passedOver, ...(alt.note ? { note: alt.note } : {}) }, maxEntries);
    }
    throw new PeriscopeError(
      'NO_ALTERNATIVE',
      `${spec.file}: no alternative works on this kernel (${passedOver.map((p) => `${p.name}: ${p.reason}`).join(' | ')})`,
      'run `periscope doctor` to see what the kernel supports',
    );
  }

  private get obj(): ObjectHandle {
    if (!this.handle) throw new Error(`${this.spec.file} is closed`);
    return this.handle;
  }

  /** Attaches every program of the chosen alternative; on failure detaches what it attached. */
  attach(): void {
    const n = native();
    for (const p of this.programs) {
      try {
        const how = this.spec.attach?.[p];
        // uprobes and perf events are attached by their collector (a binary's offsets; each CPU at a rate)
        if (how?.kind === 'uprobe' || how?.kind === 'perf') continue;
        if (how?.kind === 'cgroup') this.links.push(n.attachCgroup(this.obj, p, findCgroup2Mount()));
        else if (how?.kind === 'iter') {
          const link = n.attachIter(this.obj, p, n.mapFd(this.obj, how.map));
          this.links.push(link);
          this.iterators.set(p, link);
        } else this.links.push(n.attach(this.obj, p));
      } catch (err) {
        this.detach();
        throw new PeriscopeError('BPF_ATTACH', `${this.spec.file}: attaching ${p} failed: ${(err as Error).message}`, 'run `periscope doctor`', {
          cause: err,
        });
      }
    }
  }

  /** Attaches one of the loaded programs as a uprobe at a file offset of a binary; detached with the rest. */
  attachUprobeAt(program: P, binary: string, fileOffset: number, pid = -1): void {
    if (!this.programs.includes(program)) throw new Error(`${this.spec.file}: ${program} is not loaded`);
    this.uprobes.push(native().attachUprobeAt(this.obj, program, binary, fileOffset, pid));
  }

  /** Attaches a perf_event program to the software CPU clock of one CPU at `hz` samples a second. */
  attachPerfEvent(program: P, cpu: number, hz: number): void {
    if (!this.programs.includes(program)) throw new Error(`${this.spec.file}: ${program} is not loaded`);
    this.perfLinks.push(native().attachPerfEvent(this.obj, program, cpu, hz));
  }

  /** uprobes attached by attachUprobeAt (not counted in attachedPrograms: one program may have many). */
  get uprobesAttached(): number {
    return this.uprobes.length;
  }

  /** Whether a program was loaded (its alternative has it). */
  loaded(program: P): boolean {
    return this.programs.includes(program);
  }

  detach(): void {
    const n = native();
    this.iterators.clear();
    while (this.links.length > 0) n.destroyLink(this.links.pop()!);
    while (this.uprobes.length > 0) n.destroyLink(this.uprobes.pop()!);
    while (this.perfLinks.length > 0) n.destroyLink(this.perfLinks.pop()!);
  }

  get attachedPrograms(): number {
    return this.links.length;
  }

  /** A typed view of one of the object's maps; batch operations are used where the kernel has them
   * unless `batch` says otherwise. */
  map<K, V>(spec: MapSpec<K, V>, batch = supported('batch_map_ops')): TypedMap<K, V> {
    return new TypedMap(spec, native().mapFd(this.obj, spec.name), this.maxEntries[spec.name] ?? spec.maxEntries, batch);
  }

  /** The fd of one of the object's maps (its fdinfo has the kernel's own account of it). */
  mapFd(name: string): number {
    return native().mapFd(this.obj, name);
  }

  /** max_entries of each map as loaded. */
  get mapSizes(): Readonly<Record<string, number>> {
    return this.maxEntries;
  }

  /** Runs an attached iterator program once: the records it wrote, at most maxBytes. */
  iterRead(program: P, maxBytes: number): Buffer {
    const link = this.iterators.get(program);
    if (!link) throw new Error(`${this.spec.file}: iterator ${program} is not attached`);
    return native().iterRead(link, maxBytes);
  }

  ring(name: string): RingReader {
    const r = new RingReader(name, native().mapFd(this.obj, name));
    this.rings.push(r);
    return r;
  }

  /** Detaches, frees the rings and the object: nothing stays in the kernel after this. */
  close(): void {
    if (!this.handle) return;
    this.detach();
    for (const r of this.rings) r.close();
    native().closeObject(this.handle);
    this.handle = undefined;
  }
}
