/** Whether this process holds the capabilities BPF needs, read from /proc/self/status. */
import { readFileSync } from 'node:fs';

export const CAP_SYS_ADMIN = 21;
export const CAP_PERFMON = 38;
export const CAP_BPF = 39;

export function effectiveCaps(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export const hasCap = (caps: bigint, cap: number): boolean => (caps & (1n << BigInt(cap))) !== 0n;

/** CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON (Linux 5.8+). */
export function canUseBpf(caps = effectiveCaps()): boolean {
  return hasCap(caps, CAP_SYS_ADMIN) || (hasCap(caps, CAP_BPF) && hasCap(caps, CAP_PERFMON));
}
