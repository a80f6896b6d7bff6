/**
 * What the l7 capture costs a process per system call (test/helpers/l7-syscalls.c: a loopback TCP
 * write/read loop, and a getppid loop for system calls the capture does not want), in four states:
 * (a) the object not loaded, (b) loaded with the process's cgroup off the allow-list, (c) on it with
 * the connection's protocol ignored (binary bytes), (d) captured (HTTP/1: every write and read
 * shipped, 64 bytes each, the ring drained every 50 ms; and again with a 4 MiB ring instead of the
 * default 16), (e) captured HTTP/2 (a 64-byte HEADERS frame a call, walked frame by frame). Each alternative the kernel supports; the
 * median of `runs` runs. `node dist/bench/run.js l7 [--rounds 200000] [--pairs 5]` as root.
 *
 * The classic-tracepoint alternative needs tracefs: run it in a mount namespace of its own with
 * tracefs mounted (`unshare -m sh -c 'mount -t tracefs nodev /sys/kernel/tracing && node ...'`).
 */
import { L7_SPEC, L7Capture } from '../src/collectors/l7/capture.js';
import { supportedAlternatives } from '../src/kernel/bpf-object.js';
import { helper, TestCgroup } from '../test/kernel.js';
import { type Result } from './hub-store.js';

async function once(cg: TestCgroup, args: string, cap?: L7Capture): Promise<number> {
  const drain = cap ? setInterval(() => cap.drain(() => undefined), 50) : undefined;
  const r = await cg.run(`exec ${helper('l7-syscalls')} ${args}`, 300_000);
  if (drain) clearInterval(drain);
  if (r.code !== 0) throw new Error(`l7-syscalls ${args}: ${r.code} ${r.stderr}`);
  return Number(r.stdout.trim());
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The states are interleaved run by run (the object loaded and closed each time), so that the load of
 * a shared machine moves every state alike.
 */
export async function l7Capture(rounds: number, runs: number): Promise<Result[]> {
  const cg = new TestCgroup('l7-bench');
  const alts = supportedAlternatives(L7_SPEC);
  const t: Record<string, number[]> = {};
  const add = (k: string, v: number): void => void (t[k] ??= []).push(v);
  let lost = 0;
  let shipped = 0;
  try {
    for (let run = 0; run < runs; run++) {
      add('a sock', await once(cg, `sock http ${rounds}`));
      add('a getppid', await once(cg, `getppid ${2 * rounds}`));
      for (const alt of alts) {
        const cap = new L7Capture({ alternative: alt });
        try {
          add(`${alt} b sock`, await once(cg, `sock http ${rounds}`));
          add(`${alt} b getppid`, await once(cg, `getppid ${2 * rounds}`));
          cap.addCgroup(cg.id);
          add(`${alt} c sock`, await once(cg, `sock binary ${rounds}`));
          add(`${alt} c getppid`, await once(cg, `getppid ${2 * rounds}`));
          add(`${alt} d sock`, await once(cg, `sock http ${rounds}`, cap));
          // HTTP/2: each call's frames walked (a 64-byte HEADERS frame, shipped whole)
          add(`${alt} h2 sock`, await once(cg, `sock h2 ${rounds}`, cap));
          lost += cap.drops().ringFull;
          shipped += cap.stats().chunks;
        } finally {
          cap.close();
        }
        // the same with a 4 MiB ring (the default until 2026-12-03): what the ring's size costs a call
        const small = new L7Capture({ alternative: alt, ringBytes: 4 << 20 });
        try {
          small.addCgroup(cg.id);
          add(`${alt} d4 sock`, await once(cg, `sock http ${rounds}`, small));
          lost += small.drops().ringFull;
          shipped += small.stats().chunks;
        } finally {
          small.close();
        }
      }
    }
  } finally {
    cg.remove();
  }
  const m = (k: string): number => (t[k] ? Math.round(median(t[k])) : NaN);
  const out: Result[] = [];
  out.push({ scenario: `l7 capture: ns per system call, none loaded (median of ${runs} interleaved runs of ${2 * rounds} calls)`, 'write/read loop': m('a sock'), 'getppid loop': m('a getppid') });
  for (const alt of alts) {
    const plus = (k: string, base: string): string => `+${m(k) - m(base)}`;
    out.push({
      scenario: `l7 capture (${alt}): ns added per system call`,
      '(b) cgroup not allowed, write/read': plus(`${alt} b sock`, 'a sock'),
      '(b) cgroup not allowed, getppid': plus(`${alt} b getppid`, 'a getppid'),
      '(c) allowed, protocol ignored, write/read': plus(`${alt} c sock`, 'a sock'),
      '(c) allowed, protocol ignored, getppid': plus(`${alt} c getppid`, 'a getppid'),
      '(d) captured, write/read': plus(`${alt} d sock`, 'a sock'),
      '(d) captured, 4 MiB ring, write/read': plus(`${alt} d4 sock`, 'a sock'),
      '(e) captured HTTP/2, frames walked, write/read': plus(`${alt} h2 sock`, 'a sock'),
    });
  }
  out.push({ scenario: 'l7 capture: the captured runs', 'chunks shipped': shipped, 'lost to a full ring': lost });
  return out;
}
