/**
 * What the l7 capture costs a process per system call (bench/l7-syscalls.c: a loopback TCP
 * write/read loop, and a getppid loop for system calls the capture does not want), in four states:
 * (a) the object not loaded, (b) loaded with the process's cgroup off the allow-list, (c) on it with
 * the connection's protocol ignored (binary bytes), (d) captured (HTTP/1: every write and read
 * shipped, 64 bytes each, the ring drained every 50 ms). Each alternative the kernel supports; the
 * median of `runs` runs. Run as root after `make build`:
 *
 *   cc -O2 bench/l7-syscalls.c -o build/bench/l7-syscalls
 *   node dist/bench/l7-capture.js [rounds] [runs]
 *
 * The classic-tracepoint alternative needs tracefs: run it in a mount namespace of its own with
 * tracefs mounted (`unshare -m sh -c 'mount -t tracefs nodev /sys/kernel/tracing && node ...'`).
 */
import { fileURLToPath } from 'node:url';
import { L7_SPEC, L7Capture } from '../src/collectors/l7/capture.js';
import { supportedAlternatives } from '../src/kernel/bpf-object.js';
import { TestCgroup } from '../test/kernel.js';

const BIN = fileURLToPath(new URL('../../build/bench/l7-syscalls', import.meta.url));

async function once(cg: TestCgroup, args: string, cap?: L7Capture): Promise<number> {
  const drain = cap ? setInterval(() => cap.drain(() => undefined), 50) : undefined;
  const r = await cg.run(`exec ${BIN} ${args}`, 300_000);
  if (drain) clearInterval(drain);
  if (r.code !== 0) throw new Error(`${BIN} ${args}: ${r.code} ${r.stderr}`);
  return Number(r.stdout.trim());
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The states are interleaved run by run (the object loaded and closed each time), so that the load of
 * a shared machine moves every state alike.
 */
async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 200_000);
  const runs = Number(process.argv[3] ?? 5);
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
          lost += cap.drops().ringFull;
          shipped += cap.stats().chunks;
        } finally {
          cap.close();
        }
      }
    }
  } finally {
    cg.remove();
  }
  const m = (k: string): string => (t[k] ? median(t[k]).toFixed(0) : '');
  const d = (k: string, base: string): string => (t[k] ? ` (+${(median(t[k]) - median(t[base]!)).toFixed(0)})` : '');
  console.log(`ns per system call, median of ${runs} interleaved runs of ${2 * rounds} system calls\n`);
  console.log('| alternative | state | write/read loop | getppid loop |\n| --- | --- | --- | --- |');
  console.log(`| none | (a) not loaded | ${m('a sock')} | ${m('a getppid')} |`);
  for (const alt of alts) {
    console.log(`| ${alt} | (b) cgroup not allowed | ${m(`${alt} b sock`)}${d(`${alt} b sock`, 'a sock')} | ${m(`${alt} b getppid`)}${d(`${alt} b getppid`, 'a getppid')} |`);
    console.log(`| ${alt} | (c) allowed, protocol ignored | ${m(`${alt} c sock`)}${d(`${alt} c sock`, 'a sock')} | ${m(`${alt} c getppid`)}${d(`${alt} c getppid`, 'a getppid')} |`);
    console.log(`| ${alt} | (d) captured | ${m(`${alt} d sock`)}${d(`${alt} d sock`, 'a sock')} | |`);
  }
  console.log(`\ncaptured runs: ${shipped} chunks shipped, ${lost} lost to a full ring`);
}

await main();
