/**
 * Build-time code generator: reads a compiled BPF object's own BTF (through `bpftool -j btf dump`)
 * and writes a TypeScript module with an interface and a codec for every struct that crosses the
 * kernel/user boundary — map keys and values, and the ring buffer records a collector exports with
 * PERISCOPE_EXPORT — plus the object's map specs, enums and program names. Nothing about a layout is
 * copied by hand: change a struct in bpf/<name>.h and the codec follows at the next build.
 *
 * Runs directly under Node 24 (type stripping), before the TypeScript build, so it imports nothing
 * from the project. Usage: node src/kernel/codegen.ts build/bpf/cpu.bpf.o src/collectors/cpu/cpu.gen.ts
 * (the module is written next to the object's C source; it imports the codec runtime relative to it).
 */
import { execFileSync } from 'node:child_process';
import { basename, dirname, join, relative } from 'node:path';
import { renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  bitfield_size?: number;
}

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  encoding?: string;
  nr_bits?: number;
  members?: BtfMember[];
  values?: { name: string; val: number }[];
  vars?: { type_id: number; offset: number; size: number }[];
  linkage?: string;
}

export class CodegenError extends Error {
  override readonly name = 'CodegenError';
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function pascal(name: string): string {
  const c = camel(name);
  return c.charAt(0).toUpperCase() + c.slice(1);
}

class Generator {
  private readonly types = new Map<number, BtfType>();
  private readonly structs = new Map<number, string>(); // struct id → TS type name, in emit order
  private readonly enums = new Set<BtfType>(); // enums that a generated field or map key uses
  private readonly out: string[] = [];
  private readonly objectFile: string;
  private readonly codecModule: string;
  private readonly elf: ElfSymbols;

  constructor(types: BtfType[], objectFile: string, codecModule: string, elf: ElfSymbols = { rodata: new Map(), subprograms: new Set() }) {
    this.objectFile = objectFile;
    this.codecModule = codecModule;
    this.elf = elf;
    for (const t of types) this.types.set(t.id, t);
  }

  private type(id: number): BtfType {
    const t = this.types.get(id);
    if (!t) throw new CodegenError(`BTF type ${id} missing in ${this.objectFile}`);
    return t;
  }

  /** Follows typedefs and qualifiers to the type that decides the layout. */
  private resolve(id: number): BtfType {
    let t = this.type(id);
    while (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(t.kind)) t = this.type(t.type_id!);
    return t;
  }

  private sizeOf(id: number): number {
    const t = this.resolve(id);
    switch (t.kind) {
      case 'INT':
      case 'ENUM':
      case 'ENUM64':
      case 'STRUCT':
      case 'UNION':
        return t.size!;
      case 'PTR':
        return 8;
      case 'ARRAY':
        return t.nr_elems! * this.sizeOf(t.type_id!);
      default:
        throw new CodegenError(`no size for BTF kind ${t.kind} (type ${id}) in ${this.objectFile}`);
    }
  }

  /** TS type and decode/encode expressions for a field of BTF type `id` at byte offset `off`. */
  private field(id: number, off: string, path: string): { ts: string; dec: string; enc: (v: string) => string } {
    const t = this.resolve(id);
    if (t.kind === 'ENUM' && t.name !== '(anon)') this.enums.add(t);
    if (t.kind === 'INT' || t.kind === 'ENUM' || t.kind === 'PTR' || t.kind === 'ENUM64') {
      const size = t.kind === 'PTR' ? 8 : t.size!;
      const signed = t.encoding === 'SIGNED';
      const fn = { 1: 'U8', 2: 'U16', 4: 'U32', 8: 'U64' }[size as 1 | 2 | 4 | 8];
      if (!fn) throw new CodegenError(`${path}: integer of ${size} bytes is not supported`);
      const kind = signed ? fn.replace('U', 'I') : fn;
      return { ts: 'number', dec: `read${kind}(v, ${off})`, enc: (x) => `write${kind}(v, ${off}, ${x})` };
    }
    if (t.kind === 'ARRAY') {
      const elem = this.resolve(t.type_id!);
      const n = t.nr_elems!;
      if (elem.kind === 'INT' && elem.size === 1 && /char/.test(elem.name)) {
        return { ts: 'string', dec: `readCString(v, ${off}, ${n})`, enc: (x) => `writeCString(v, ${off}, ${n}, ${x})` };
      }
      const esz = this.sizeOf(t.type_id!);
      const inner = this.field(t.type_id!, `${off} + i * ${esz}`, `${path}[]`);
      return {
        ts: `${inner.ts}[]`,
        dec: `Array.from({ length: ${n} }, (_x, i) => ${inner.dec})`,
        enc: (x) => `for (let i = 0; i < ${n}; i++) ${inner.enc(`${x}[i] ?? 0`)}`,
      };
    }
    if (t.kind === 'STRUCT') {
      const name = this.struct(t);
      return { ts: name, dec: `${camel(name)}Codec.decode(v, ${off})`, enc: (x) => `${camel(name)}Codec.encode(${x}, v, ${off})` };
    }
    throw new CodegenError(`${path}: BTF kind ${t.kind} cannot cross the kernel/user boundary; use plain structs`);
  }

  /** Registers a struct (and, first, the structs it contains); returns its TS name. */
  private struct(t: BtfType): string {
    const known = this.structs.get(t.id);
    if (known) return known;
    if (t.name === '(anon)' || !t.name) throw new CodegenError(`anonymous struct ${t.id} in ${this.objectFile}: name it`);
    const name = pascal(t.name);
    const lines: string[] = [];
    const fields = (t.members ?? []).map((m) => {
      if (m.bitfield_size) throw new CodegenError(`${t.name}.${m.name}: bitfields are not supported`);
      return { m, f: this.field(m.type_id, `o + ${m.bits_offset / 8}`, `${t.name}.${m.name}`) };
    });
    this.structs.set(t.id, name);
    lines.push(`/** struct ${t.name} (${t.size} bytes) */`);
    lines.push(`export interface ${name} {`);
    for (const { m, f } of fields) lines.push(`  ${m.name}: ${f.ts};`);
    lines.push('}');
    lines.push(`export const ${camel(name)}Codec: Codec<${name}> = {`);
    lines.push(`  name: '${t.name}',`);
    lines.push(`  size: ${t.size},`);
    lines.push(`  decode(v: DataView, o: number): ${name} {`);
    lines.push('    return {');
    for (const { m, f } of fields) lines.push(`      ${m.name}: ${f.dec},`);
    lines.push('    };');
    lines.push('  },');
    lines.push(`  encode(x: ${name}, v: DataView, o: number): void {`);
    for (const { m, f } of fields) lines.push(`    ${f.enc(`x.${m.name}`)};`);
    lines.push('  },');
    lines.push('};');
    const offsets = fields.map(({ m }) => `${m.name}: ${m.bits_offset / 8}`).join(', ');
    lines.push(`export const ${camel(name)}Offsets = { ${offsets} } as const;`);
    lines.push('');
    this.out.push(lines.join('\n'));
    return name;
  }

  /** The codec expression for a map key or value type. */
  private codecFor(id: number, path: string): string {
    const t = this.resolve(id);
    if (t.kind === 'STRUCT') return `${camel(this.struct(t))}Codec`;
    if (t.kind === 'ENUM' && t.name !== '(anon)') this.enums.add(t);
    if (t.kind === 'INT' || t.kind === 'ENUM') {
      const size = t.size!;
      const signed = t.encoding === 'SIGNED';
      const fn = { 1: 'u8', 2: 'u16', 4: 'u32', 8: 'u64' }[size as 1 | 2 | 4 | 8];
      if (!fn) throw new CodegenError(`${path}: integer of ${size} bytes is not supported`);
      return `${signed ? fn.replace('u', 'i') : fn}Codec`;
    }
    throw new CodegenError(`${path}: map keys and values must be integers or structs, not ${t.kind}`);
  }

  /** Value encoded by a `__uint(name, N)` member: a pointer to an array of N ints. */
  private uintMember(members: BtfMember[], name: string): number | undefined {
    const m = members.find((x) => x.name === name);
    if (!m) return undefined;
    const ptr = this.type(m.type_id);
    return this.type(ptr.type_id!).nr_elems;
  }

  generate(): string {
    const all = [...this.types.values()];
    const datasec = (name: string) => all.find((t) => t.kind === 'DATASEC' && t.name === name);
    const maps: string[] = [];
    for (const v of datasec('.maps')?.vars ?? []) {
      const variable = this.type(v.type_id);
      const def = this.resolve(variable.type_id!);
      const members = def.members ?? [];
      const mapType = this.uintMember(members, 'type');
      const maxEntries = this.uintMember(members, 'max_entries');
      const flags = this.uintMember(members, 'map_flags');
      const key = members.find((m) => m.name === 'key');
      const value = members.find((m) => m.name === 'value');
      const keyCodec = key ? this.codecFor(this.type(key.type_id).type_id!, `${variable.name}.key`) : 'undefined';
      const valueCodec = value ? this.codecFor(this.type(value.type_id).type_id!, `${variable.name}.value`) : 'undefined';
      maps.push(
        `  ${variable.name}: { name: '${variable.name}', type: ${mapType}, maxEntries: ${maxEntries ?? 0}, flags: ${flags ?? 0}, ` +
          `key: ${keyCodec}, value: ${valueCodec} },`,
      );
    }
    // Runtime knobs: global `const volatile` variables in .rodata, set before load.
    const config: string[] = [];
    for (const v of datasec('.rodata')?.vars ?? []) {
      const variable = this.type(v.type_id);
      if (variable.linkage !== 'global') continue;
      const codec = this.codecFor(variable.type_id!, `.rodata ${variable.name}`);
      // an object as clang writes it has every DATASEC offset at 0 (libbpf fills them in at open):
      // the symbol table has the real ones
      const offset = this.elf.rodata.get(variable.name) ?? v.offset;
      config.push(`  ${variable.name}: { section: '.rodata', offset: ${offset}, codec: ${codec} },`);
    }
    const exported: string[] = [];
    for (const t of all) {
      if (t.kind !== 'VAR' || !t.name.startsWith('__periscope_export_')) continue;
      const target = this.resolve(this.resolve(t.type_id!).type_id!);
      if (target.kind === 'ENUM') {
        this.enums.add(target); // an enum user space needs without a struct that carries it
        continue;
      }
      exported.push(`  ${target.name}: ${camel(this.struct(target))}Codec,`);
    }
    const enums: string[] = [];
    for (const t of this.enums) {
      const vals = (t.values ?? []).map((x) => `${x.name}: ${x.val}`).join(', ');
      enums.push(`  ${t.name}: { ${vals} },`);
    }
    const programs = all
      // a global function in .text is a subprogram (verified once, called by programs), not a program
      .filter((t) => t.kind === 'FUNC' && t.linkage === 'global' && !this.elf.subprograms.has(t.name))
      .map((t) => `'${t.name}'`)
      .sort();
    const head = [
      `// Generated by src/kernel/codegen.ts from the BTF of ${this.objectFile}. Do not edit: change the`,
      '// C header and rebuild.',
      "import {",
      '  type Codec,',
      '  readU8, readU16, readU32, readU64, readI8, readI16, readI32, readI64, readCString,',
      '  writeU8, writeU16, writeU32, writeU64, writeI8, writeI16, writeI32, writeI64, writeCString,',
      '  u8Codec, u16Codec, u32Codec, u64Codec, i8Codec, i16Codec, i32Codec, i64Codec,',
      `} from '${this.codecModule}';`,
      '',
      `export const OBJECT_FILE = '${this.objectFile}';`,
      '',
    ];
    const tail = [
      '/** The maps this object declares: BPF map type number, size, flags and the codecs of key and value. */',
      'export const maps = {',
      ...maps,
      '} as const;',
      '',
      '/** Knobs set before load: `const volatile` globals of .rodata. */',
      'export const config = {',
      ...config,
      '} as const;',
      'export type ConfigName = keyof typeof config;',
      '',
      '/** Ring buffer record types exported with PERISCOPE_EXPORT. */',
      'export const records = {',
      ...exported,
      '} as const;',
      '',
      'export const enums = {',
      ...enums,
      '} as const;',
      '',
      `export const programs = [${programs.join(', ')}] as const;`,
      'export type ProgramName = (typeof programs)[number];',
      '',
    ];
    return [...head, ...this.out, ...tail].join('\n');
  }
}

/** The TypeScript module for one object; codecModule is how it imports src/kernel/codec.ts. */
export function generate(objectPath: string, codecModule = './codec.js'): string {
  let json: string;
  try {
    json = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', objectPath], { encoding: 'utf8', maxBuffer: 256 << 20 });
  } catch (err) {
    throw new CodegenError(`bpftool could not dump the BTF of ${objectPath}: ${(err as Error).message}`);
  }
  const { types } = JSON.parse(json) as { types: BtfType[] };
  return new Generator(types, basename(objectPath), codecModule, elfSymbols(objectPath)).generate();
}

/** What the BTF of an unlinked object does not say, from its ELF symbol table. */
interface ElfSymbols {
  /** offsets of the .rodata variables: with more than one knob, BTF has them all at 0 */
  rodata: Map<string, number>;
  /** functions in .text: global subprograms, which BTF lists like programs */
  subprograms: Set<string>;
}

/** The object's symbols, as binutils' readelf (which reads BPF objects) lists them. */
function elfSymbols(objectPath: string): ElfSymbols {
  const out: ElfSymbols = { rodata: new Map(), subprograms: new Set() };
  let sections: string;
  let symbols: string;
  try {
    sections = execFileSync('readelf', ['-SW', objectPath], { encoding: 'utf8', maxBuffer: 64 << 20 });
    symbols = execFileSync('readelf', ['-sW', objectPath], { encoding: 'utf8', maxBuffer: 64 << 20 });
  } catch (err) {
    throw new CodegenError(`readelf could not read the symbols of ${objectPath}: ${(err as Error).message}`);
  }
  const rodata = /\[\s*(\d+)\]\s+\.rodata\s/.exec(sections)?.[1];
  const text = /\[\s*(\d+)\]\s+\.text\s/.exec(sections)?.[1];
  for (const line of symbols.split('\n')) {
    // Num: Value Size Type Bind Vis Ndx Name
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    if (f[3] === 'OBJECT' && f[6] === rodata) out.rodata.set(f[7]!, parseInt(f[1]!, 16));
    if (f[3] === 'FUNC' && f[6] === text) out.subprograms.add(f[7]!);
  }
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1]))) {
  const [object, output] = process.argv.slice(2);
  if (!object || !output) {
    process.stderr.write('usage: node src/kernel/codegen.ts OBJECT.bpf.o OUTPUT.gen.ts\n');
    process.exit(2);
  }
  try {
    const codec = relative(dirname(output), join(dirname(fileURLToPath(import.meta.url)), 'codec.js'));
    writeFileSync(`${output}.tmp`, generate(object, codec.startsWith('.') ? codec : `./${codec}`));
    renameSync(`${output}.tmp`, output);
  } catch (err) {
    process.stderr.write(`codegen: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
