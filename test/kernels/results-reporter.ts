/**
 * A node:test reporter for the QEMU matrix: inside a guest it runs beside the spec reporter and writes
 * one JSON line per finished test and per finished test file (status, seconds, and the first lines of
 * the error of a failure) to the out share, so the host can name failing tests and time every file
 * without parsing the human-readable output. A file's own entry (named by the path given to
 * `node --test`) gives its wall time, process start included; tests are labelled with the file being
 * run (with source maps their own `file` is the .ts source), which is right with --test-concurrency=1.
 */
import type { TestEvent } from 'node:test/reporters';

export interface ResultLine {
  kind: 'test' | 'file';
  file: string;
  name: string;
  nesting: number;
  status: 'pass' | 'fail' | 'skip' | 'todo';
  seconds: number;
  error?: string;
}

function firstLines(e: unknown, n = 12): string {
  const inner = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  const text = inner instanceof Error ? `${inner.name}: ${inner.message}` : String(inner);
  return text.split('\n').slice(0, n).join('\n');
}

type Data = { name: string; nesting: number; file?: string };
const isFileEntry = (d: Data): boolean => d.nesting === 0 && d.file !== undefined && (d.file === d.name || d.file.endsWith(`/${d.name}`));

export default async function* results(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  let current = '';
  for await (const event of source) {
    if (event.type === 'test:dequeue' && isFileEntry(event.data)) current = event.data.file!;
    let failed: boolean;
    let error: unknown;
    if (event.type === 'test:complete' && isFileEntry(event.data)) {
      failed = !event.data.details.passed;
      error = event.data.details.error;
    } else if ((event.type === 'test:pass' || event.type === 'test:fail') && !isFileEntry(event.data)) {
      failed = event.type === 'test:fail';
      error = event.type === 'test:fail' ? event.data.details.error : undefined;
    } else {
      continue; // test:complete repeats each test's pass or fail
    }
    const d = event.data;
    const line: ResultLine = {
      kind: isFileEntry(d) ? 'file' : 'test',
      file: isFileEntry(d) ? d.file! : current || (d.file ?? ''),
      name: d.name,
      nesting: d.nesting,
      status: d.skip ? 'skip' : d.todo ? 'todo' : failed ? 'fail' : 'pass',
      seconds: Math.round(d.details.duration_ms) / 1000,
    };
    if (failed && error !== undefined) line.error = firstLines(error);
    yield `${JSON.stringify(line)}\n`;
  }
}
