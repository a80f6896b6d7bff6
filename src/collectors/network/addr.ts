/**
 * Addresses as the kernel side stores them — 16 bytes in network order, IPv4 as IPv4-mapped IPv6
 * (::ffff:a.b.c.d), read through the codec as four little-endian u32 words — in the text Node uses.
 */
const scratch = Buffer.alloc(16);

/** The bytes of an address held as four u32 words read little-endian. */
export function addrBytes(words: readonly number[], out: Buffer = Buffer.alloc(16)): Buffer {
  for (let i = 0; i < 4; i++) out.writeUInt32LE((words[i] ?? 0) >>> 0, i * 4);
  return out;
}

/** Text of a 16-byte address: dotted quad for IPv4-mapped, RFC 5952 IPv6 otherwise. */
export function formatAddr(b: Uint8Array): string {
  let mapped = true;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) mapped = false;
  if (mapped && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  // the longest run of two or more zero groups becomes "::" (the first such run on a tie)
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]): string => g.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

/** Text of an address held as four u32 words; '' for the all-zero address. */
export function wordsToAddr(words: readonly number[]): string {
  if (words.every((w) => w === 0)) return '';
  return formatAddr(addrBytes(words, scratch));
}
