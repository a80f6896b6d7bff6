/**
 * Reads one enum from the running kernel's BTF (/sys/kernel/btf/vmlinux, raw BTF: a header, the type
 * section, the string section). For values that differ between kernels and have no stable ABI, such
 * as enum skb_drop_reason: the kernel side reports numbers, user space names them from the kernel it
 * runs on. Only what it takes to walk the type section is decoded.
 */
import { readFileSync } from 'node:fs';

const BTF_MAGIC = 0xeb9f;
const KIND_ENUM = 6;
const KIND_ENUM64 = 19;

/** Bytes each kind carries after its 12-byte common header, given vlen. */
function extraBytes(kind: number, vlen: number): number {
  switch (kind) {
    case 1: // INT
    case 14: // VAR
    case 17: // DECL_TAG
      return 4;
    case 3: // ARRAY
      return 12;
    case 4: // STRUCT
    case 5: // UNION
    case 15: // DATASEC
    case 19: // ENUM64
      return vlen * 12;
    case 6: // ENUM
    case 13: // FUNC_PROTO
      return vlen * 8;
    default: // PTR FWD TYPEDEF VOLATILE CONST RESTRICT FUNC FLOAT TYPE_TAG
      return 0;
  }
}

/** The values of a named enum in a raw BTF blob, value → name; undefined when it has none. */
export function btfEnum(blob: Buffer, name: string): Map<number, string> | undefined {
  if (blob.length < 24 || blob.readUInt16LE(0) !== BTF_MAGIC) throw new Error('not raw BTF (bad magic)');
  const hdrLen = blob.readUInt32LE(4);
  const typeOff = hdrLen + blob.readUInt32LE(8);
  const typeLen = blob.readUInt32LE(12);
  const strOff = hdrLen + blob.readUInt32LE(16);
  const strLen = blob.readUInt32LE(20);
  if (typeOff + typeLen > blob.length || strOff + strLen > blob.length) throw new Error('BTF sections out of bounds');
  const str = (off: number): string => {
    const start = strOff + off;
    const end = blob.indexOf(0, start);
    return blob.toString('latin1', start, end < 0 || end > strOff + strLen ? strOff + strLen : end);
  };
  for (let pos = typeOff; pos + 12 <= typeOff + typeLen; ) {
    const nameOff = blob.readUInt32LE(pos);
    const info = blob.readUInt32LE(pos + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const body = pos + 12;
    if ((kind === KIND_ENUM || kind === KIND_ENUM64) && str(nameOff) === name) {
      const out = new Map<number, string>();
      const step = kind === KIND_ENUM ? 8 : 12;
      for (let i = 0; i < vlen; i++) {
        const at = body + i * step;
        const v = kind === KIND_ENUM ? blob.readInt32LE(at + 4) : blob.readUInt32LE(at + 4);
        out.set(v, str(blob.readUInt32LE(at)));
      }
      return out;
    }
    pos = body + extraBytes(kind, vlen);
  }
  return undefined;
}

let cached: Map<string, Map<number, string> | undefined> | undefined;

/** An enum of the running kernel, or undefined when the kernel has no BTF or no such enum. */
export function kernelEnum(name: string, path = '/sys/kernel/btf/vmlinux'): Map<number, string> | undefined {
  cached ??= new Map();
  if (!cached.has(name)) {
    let values: Map<number, string> | undefined;
    try {
      values = btfEnum(readFileSync(path), name);
    } catch {
      values = undefined;
    }
    cached.set(name, values);
  }
  return cached.get(name);
}
