/**
 * Profiles as pprof, the gzip'd protobuf `go tool pprof`, Pyroscope, Parca and Grafana read: one
 * Function and one Location (with one Line) per distinct frame name, samples leaf first as pprof
 * orders them, and for cpu both the sample count and the time it stands for (count × period
 * nanoseconds). fromPprof reads such a file back as stacks root first (tests, and checking an export).
 *
 * It does not carry addresses, mappings or line numbers: Periscope symbolizes on the node and holds
 * frame names only. The encoding itself is pprof-format's (no protobuf schema compiler needed).
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { Function as PprofFunction, Line, Location, Profile as PprofProfile, Sample, StringTable, ValueType } from 'pprof-format';
import { PROFILE_UNITS, type Profile } from './model.js';

/** The suffix of kernel frame names (model.ts). */
const KERNEL_SUFFIX = '_[k]';

/** ms since the epoch as nanoseconds, exactly: the product passes 2^53, so it is a bigint. */
const nanos = (ms: number): bigint => BigInt(Math.round(ms)) * 1_000_000n;

/** pprof values are int64: a fractional value (none is expected) is rounded, not encoded wrongly. */
const int = (v: number): number => Math.max(0, Math.round(v));

/** A profile as gzip'd pprof protobuf. */
export function toPprof(p: Profile): Buffer {
  const strings = new StringTable();
  const unit = PROFILE_UNITS[p.type];
  const cpu = p.type === 'cpu';
  const sampleType = [new ValueType({ type: strings.dedup(unit.sampleType), unit: strings.dedup(unit.unit) })];
  // cpu: the count, and the time it stands for (what `go tool pprof` shows by default: the last type)
  const cpuTime = cpu ? new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') }) : undefined;
  if (cpuTime) sampleType.push(cpuTime);

  // one Function and one Location per distinct frame name, under the same id
  const ids = new Map<string, number>();
  const functions: PprofFunction[] = [];
  const locations: Location[] = [];
  const idOf = (name: string): number => {
    let id = ids.get(name);
    if (id !== undefined) return id;
    id = ids.size + 1;
    ids.set(name, id);
    const kernel = name.endsWith(KERNEL_SUFFIX) && name.length > KERNEL_SUFFIX.length;
    functions.push(
      new PprofFunction({
        id,
        name: strings.dedup(name),
        // the kernel's own symbol name, and a file that says where it runs
        ...(kernel ? { systemName: strings.dedup(name.slice(0, -KERNEL_SUFFIX.length)), filename: strings.dedup('[kernel]') } : {}),
      }),
    );
    locations.push(new Location({ id, line: [new Line({ functionId: id })] }));
    return id;
  };

  const samples = p.stacks.map((s) => {
    const locationId: number[] = [];
    // pprof lists a sample's locations leaf first
    for (let i = s.frames.length - 1; i >= 0; i--) locationId.push(idOf(s.frames[i]!));
    const value = int(s.value);
    return new Sample({ locationId, value: cpu ? [value, int(s.value * p.period)] : [value] });
  });

  const profile = new PprofProfile({
    sampleType,
    sample: samples,
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: nanos(p.from),
    durationNanos: nanos(Math.max(0, p.to - p.from)),
    ...(cpuTime ? { periodType: cpuTime, period: int(p.period) } : {}),
  });
  return gzipSync(profile.encode());
}

export interface DecodedPprof {
  sampleTypes: { type: string; unit: string }[];
  /** the period, in the period type's unit (0 when the file gives none) */
  period: number;
  /** root first, with one value per sample type */
  stacks: { frames: string[]; values: number[] }[];
}

/** Why a buffer is not a pprof profile. */
export class PprofError extends Error {
  override readonly name = 'PprofError';
}

const GZIP_MAGIC = [0x1f, 0x8b];

/** The top-level fields of a protobuf message, walked to check that each fits in the buffer (pprof-format's decoder does not). */
function checkWire(b: Uint8Array): void {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (let n = 0; n < 10; n++) {
      if (i >= b.length) throw new PprofError(`truncated at byte ${i}`);
      const byte = b[i++]!;
      v += (byte & 0x7f) * scale;
      scale *= 128;
      if (byte < 0x80) return v;
    }
    throw new PprofError(`a number at byte ${i} is longer than 10 bytes`);
  };
  while (i < b.length) {
    const at = i;
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    // profile.proto's fields are 1..15 (and 16, the later doc_url, in some writers), each a varint or length-delimited
    if (field < 1 || field > 16) throw new PprofError(`byte ${at} starts field ${field}, which a pprof Profile does not have`);
    if (wire === 0) varint();
    else if (wire === 2) {
      const len = varint();
      if (len > b.length - i) throw new PprofError(`field ${field} at byte ${at} claims ${len} bytes, but only ${b.length - i} remain`);
      i += len;
    } else throw new PprofError(`field ${field} at byte ${at} has wire type ${wire}, which a pprof Profile does not use`);
  }
}

/** Reads gzip'd (or plain) pprof protobuf back: its sample types, period and stacks root first. Throws PprofError when it is not one. */
export function fromPprof(buf: Uint8Array): DecodedPprof {
  let bytes = buf;
  if (buf.length >= 2 && buf[0] === GZIP_MAGIC[0] && buf[1] === GZIP_MAGIC[1]) {
    try {
      bytes = gunzipSync(buf);
    } catch (err) {
      throw new PprofError(`not a pprof profile: the gzip stream is broken (${(err as Error).message})`);
    }
  }
  let profile: PprofProfile;
  try {
    checkWire(bytes);
    profile = PprofProfile.decode(bytes);
  } catch (err) {
    throw new PprofError(`not a pprof profile: ${(err as Error).message}`);
  }

  const strings = profile.stringTable.strings;
  const str = (i: number | bigint, what: string): string => {
    const s = strings[Number(i)];
    if (s === undefined) throw new PprofError(`not a pprof profile: ${what} names string ${i}, past the ${strings.length} of the string table`);
    return s;
  };
  if (profile.sampleType.length === 0) throw new PprofError('not a pprof profile: it has no sample type');
  const sampleTypes = profile.sampleType.map((v, i) => ({ type: str(v.type, `sample type ${i}`), unit: str(v.unit, `sample type ${i}`) }));

  const functions = new Map<number, string>();
  for (const f of profile.function) functions.set(Number(f.id), str(f.name, `function ${f.id}`));
  const locations = new Map<number, string[]>();
  for (const l of profile.location) {
    // a location's lines are innermost first (inlined calls): leaf first, as the samples are
    const names = l.line.map((line) => {
      const name = functions.get(Number(line.functionId));
      if (name === undefined) throw new PprofError(`not a pprof profile: location ${l.id} names function ${line.functionId}, which it does not have`);
      return name;
    });
    locations.set(Number(l.id), names.length ? names : [`0x${l.address.toString(16)}`]);
  }

  const stacks = profile.sample.map((s, i) => {
    if (s.value.length !== sampleTypes.length) throw new PprofError(`not a pprof profile: sample ${i} has ${s.value.length} values for ${sampleTypes.length} sample types`);
    const leafFirst: string[] = [];
    for (const id of s.locationId) {
      const names = locations.get(Number(id));
      if (names === undefined) throw new PprofError(`not a pprof profile: sample ${i} names location ${id}, which it does not have`);
      leafFirst.push(...names);
    }
    return { frames: leafFirst.reverse(), values: s.value.map(Number) };
  });
  return { sampleTypes, period: Number(profile.period), stacks };
}
