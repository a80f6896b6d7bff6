/**
 * The kernel matrix: for every kernel in PERISCOPE_KERNELS (default "5.10 6.1 6.12", fetched by
 * `make kernels`), boots it under QEMU (test/kernels/qemu.ts) and runs there `periscope doctor` and the
 * kernel-facing test files (GUEST_TEST_FILES), one at a time; two guests run at once
 * (PERISCOPE_MATRIX_JOBS). A test fails with the console tail and the names and errors of the guest's
 * failing tests; it reports the doctor table, the time to boot and each file's time. Doctor output,
 * the guest's output and per-test results are kept in build/kernels/NAME/.
 * Under CI=true a missing QEMU or kernel fails; inside a guest (PERISCOPE_GUEST=1) the file is skipped.
 */
import { describe, test } from 'node:test';
import { availableParallelism } from 'node:os';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootAndRun, cannotBoot, kernelDir, NODE_BIN, REPO, tail } from './qemu.js';
import type { ResultLine } from './results-reporter.js';

/** The compiled test files a guest runs, relative to the repository: every collector's tests included. */
export const GUEST_TEST_FILES: readonly string[] = [
  ...globSync('dist/src/kernel/*.test.js', { cwd: REPO }).sort(),
  // each collector's own tests (not its pure user-space parts in subfolders, such as l7/protocols)
  ...globSync('dist/src/collectors/*/*.test.js', { cwd: REPO }).sort(),
  'dist/src/agent/memory-budget.test.js',
  'dist/src/cli/doctor.test.js',
];

const KERNELS = (process.env.PERISCOPE_KERNELS ?? '5.10 6.1 6.12').split(/\s+/).filter(Boolean);
const GUEST_TIMEOUT_MS = 10 * 60_000; // a guest takes 2 to 5 minutes today, beside another
const IN_GUEST = process.env.PERISCOPE_GUEST === '1';

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The script the guest runs (in the repository, read-only; /run/periscope-out is the out share). */
function guestScript(): string {
  return [
    'out=/run/periscope-out',
    `export PATH=${quote(NODE_BIN)}:$PATH`,
    'status=0',
    // doctor exits 1 where a collector cannot run on the kernel (a report: doctor.test.js checks it
    // agrees with the probes); anything else is a failure
    'bin/periscope doctor >"$out/doctor.txt" 2>&1; rc=$?; [ $rc -le 1 ] || { status=1; echo "doctor failed ($rc):"; cat "$out/doctor.txt"; }',
    'bin/periscope doctor --output json >"$out/doctor.json" 2>"$out/doctor.err"; rc=$?; [ $rc -le 1 ] || { status=1; echo "doctor --output json failed ($rc):"; cat "$out/doctor.err"; }',
    'node --test --test-concurrency=1 --enable-source-maps \\',
    '  --test-reporter=spec --test-reporter-destination=stdout \\',
    '  --test-reporter=./dist/test/kernels/results-reporter.js --test-reporter-destination="$out/results.jsonl" \\',
    `  ${GUEST_TEST_FILES.map(quote).join(' ')} || status=1`,
    'exit $status',
    '',
  ].join('\n');
}

function readResults(outDir: string): ResultLine[] {
  const file = join(outDir, 'results.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ResultLine);
}

const rel = (file: string): string => (file.startsWith(`${REPO}/`) ? file.slice(REPO.length + 1) : file);

// Guests run side by side: TCG runs each on one host thread (thread=single), so two guests on two cores
// take the time of one, and each keeps its own core's pace
const JOBS = Math.max(1, Number(process.env.PERISCOPE_MATRIX_JOBS ?? Math.min(2, availableParallelism())));

describe('the kernel matrix', { concurrency: JOBS }, () => {
  for (const kernel of KERNELS) {
    test(`runs the kernel tests on Linux ${kernel}`, { skip: IN_GUEST && 'inside a guest', timeout: GUEST_TIMEOUT_MS + 60_000 }, async (t) => {
      const why = cannotBoot(kernel);
      if (why) {
        if (process.env.CI === 'true') assert.fail(`the kernel matrix cannot run under CI: ${why}`);
        t.skip(why);
        return;
      }
      const r = await bootAndRun({ kernel, script: guestScript(), timeoutMs: GUEST_TIMEOUT_MS });
      const dir = kernelDir(kernel);
      for (const [from, to] of [['doctor.txt', 'doctor.txt'], ['doctor.json', 'doctor.json'], ['output', 'output.txt'], ['results.jsonl', 'results.jsonl']] as const) {
        if (existsSync(join(r.outDir, from))) copyFileSync(join(r.outDir, from), join(dir, to));
      }
      const results = readResults(r.outDir);

      const boot = r.bootSeconds === null ? '?' : r.bootSeconds.toFixed(1);
      t.diagnostic(`Linux ${readFileSync(join(dir, 'version'), 'utf8').trim()}: command started ${boot} s after QEMU, all done in ${r.seconds.toFixed(1)} s`);
      if (existsSync(join(dir, 'doctor.txt'))) t.diagnostic(readFileSync(join(dir, 'doctor.txt'), 'utf8').trimEnd());
      for (const f of results.filter((l) => l.kind === 'file')) {
        const tests = results.filter((l) => l.kind === 'test' && l.file === f.file && l.nesting === 0);
        const count = (s: ResultLine['status']): number => tests.filter((l) => l.status === s).length;
        t.diagnostic(`${rel(f.file)}: ${f.seconds.toFixed(1)} s, ${count('pass')} passed, ${count('fail')} failed, ${count('skip')} skipped`);
      }

      if (r.rc !== 0) {
        const failures = results
          .filter((l) => l.status === 'fail' && !(l.kind === 'file' && results.some((x) => x.kind === 'test' && x.file === l.file && x.status === 'fail')))
          .map((l) => `  ${rel(l.file)} › ${l.name}\n${(l.error ?? '').split('\n').slice(0, 30).join('\n').replace(/^/gm, '      ')}`);
        const detail = failures.length > 0 ? `failing tests:\n${failures.join('\n')}` : `output:\n${tail(r.output)}`;
        // The failing tests' names come last: CI keeps only the end of a long failure
        const names = results.filter((l) => l.kind === 'test' && l.status === 'fail').map((l) => `${rel(l.file)} › ${l.name}`);
        assert.fail(
          `the guest exited with ${r.rc} on Linux ${kernel}\nlast console lines:\n${tail(r.console)}\n${detail}\n` +
            `failed on Linux ${kernel}: ${names.length > 0 ? names.join('; ') : 'no test failed; see the output above'}`,
        );
      }
    });
  }
});
