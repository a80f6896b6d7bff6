/**
 * DNS messages as the network collector captures them from packets (RFC 1035): the header, the first
 * question, and the answers' addresses and names. Input is untrusted bytes from the wire: every read
 * is bounds-checked, compression pointers may only point backwards and are followed a bounded number
 * of times, and a message that does not parse is reported as such, never thrown past the caller.
 */
import { formatAddr } from './addr.js';

export const QTYPES: Readonly<Record<number, string>> = {
  1: 'A',
  2: 'NS',
  5: 'CNAME',
  6: 'SOA',
  12: 'PTR',
  15: 'MX',
  16: 'TXT',
  28: 'AAAA',
  33: 'SRV',
  35: 'NAPTR',
  64: 'SVCB',
  65: 'HTTPS',
  255: 'ANY',
};

export const RCODES: Readonly<Record<number, string>> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
};

export const qtypeName = (t: number): string => QTYPES[t] ?? `TYPE${t}`;
export const rcodeName = (r: number): string => RCODES[r] ?? `RCODE${r}`;

export interface DnsAnswer {
  name: string;
  type: string;
  ttl: number;
  /** an address (A, AAAA) or a name (CNAME, PTR, NS), else '' */
  data: string;
}

export interface DnsMessage {
  id: number;
  response: boolean;
  rcode: string;
  qname: string;
  qtype: string;
  answers: DnsAnswer[];
  /** true when the message was cut short by the capture limit: answers may be missing */
  truncated: boolean;
}

const MAX_POINTERS = 16;
const MAX_ANSWERS = 32;

class Short extends Error {}

/** A domain name at `at`: the name and where the bytes after it start. */
function readName(b: Uint8Array, at: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = at;
  let next = -1;
  let jumps = 0;
  let length = 0;
  for (;;) {
    if (pos >= b.length) throw new Short();
    const len = b[pos]!;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= b.length) throw new Short();
      const target = ((len & 0x3f) << 8) | b[pos + 1]!;
      if (next < 0) next = pos + 2;
      if (target >= pos || ++jumps > MAX_POINTERS) throw new Error('bad compression pointer');
      pos = target;
      continue;
    }
    if (len & 0xc0) throw new Error('bad label type');
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if (pos + 1 + len > b.length) throw new Short();
    length += len + 1;
    if (length > 255) throw new Error('name too long');
    let label = '';
    for (let i = pos + 1; i <= pos + len; i++) {
      const c = b[i]!;
      label += c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c ? String.fromCharCode(c) : `\\${c.toString().padStart(3, '0')}`;
    }
    labels.push(label);
    pos += len + 1;
  }
  return { name: labels.length ? labels.join('.') : '.', next };
}

function formatRdata(b: Uint8Array, type: number, at: number, len: number): string {
  if (type === 1 && len === 4) return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
  if (type === 28 && len === 16) return formatAddr(b.subarray(at, at + 16));
  if (type === 5 || type === 12 || type === 2) return readName(b, at).name;
  return '';
}

/** Parses a DNS message, or says why it cannot. */
export function parseDns(b: Uint8Array): DnsMessage | { error: string } {
  if (b.length < 12) return { error: 'shorter than a DNS header' };
  const id = (b[0]! << 8) | b[1]!;
  const flags = (b[2]! << 8) | b[3]!;
  const qd = (b[4]! << 8) | b[5]!;
  const an = (b[6]! << 8) | b[7]!;
  const msg: DnsMessage = { id, response: (flags & 0x8000) !== 0, rcode: rcodeName(flags & 0xf), qname: '', qtype: '', answers: [], truncated: false };
  if (qd === 0) return msg;
  try {
    const q = readName(b, 12);
    if (q.next + 4 > b.length) throw new Short();
    msg.qname = q.name;
    msg.qtype = qtypeName((b[q.next]! << 8) | b[q.next + 1]!);
    let pos = q.next + 4;
    for (let i = 1; i < qd; i++) pos = readName(b, pos).next + 4; // further questions (rare): skipped
    for (let i = 0; i < Math.min(an, MAX_ANSWERS); i++) {
      const r = readName(b, pos);
      if (r.next + 10 > b.length) throw new Short();
      const v = new DataView(b.buffer, b.byteOffset + r.next, 10);
      const type = v.getUint16(0);
      const ttl = v.getUint32(4);
      const rdlen = v.getUint16(8);
      const rdata = r.next + 10;
      if (rdata + rdlen > b.length) throw new Short();
      msg.answers.push({ name: r.name, type: qtypeName(type), ttl, data: formatRdata(b, type, rdata, rdlen) });
      pos = rdata + rdlen;
    }
  } catch (err) {
    if (err instanceof Short) {
      msg.truncated = true;
      return msg.qname ? msg : { error: 'question cut short' };
    }
    return { error: (err as Error).message };
  }
  return msg;
}
