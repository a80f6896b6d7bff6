// A node:test reporter that writes only the failed tests, each with its file and error, so that the
// end of a long run (all CI keeps of it) still says what failed. scripts/run-tests.sh prints its
// output last. Used as a second reporter beside spec: `--test-reporter=./dist/test/reporters/failures.js`.
import { inspect } from 'node:util';

interface FailEvent {
  type: string;
  data: { name: string; nesting: number; file?: string; details?: { error?: unknown } };
}

/** Error text of a failed test, its cause first when node:test wrapped it, cut to a few lines. */
function errorText(error: unknown): string {
  const inner = error instanceof Error && error.cause !== undefined ? error.cause : error;
  const text = inner instanceof Error ? (inner.stack ?? inner.message) : inspect(inner);
  // node:test's own frames say nothing about the failure.
  const lines = text.split('\n').filter((line) => !/\(node:|at node:/.test(line));
  return lines.slice(0, 12).join('\n') + (lines.length > 12 ? `\n… ${lines.length - 12} more lines` : '');
}

export default async function* failures(source: AsyncIterable<FailEvent>): AsyncGenerator<string> {
  for await (const event of source) {
    if (event.type !== 'test:fail') continue;
    const { name, nesting, file, details } = event.data;
    // A suite fails when one of its tests does; its own line adds nothing but the name.
    const error = details?.error;
    const where = file === undefined ? '' : ` (${file})`;
    yield `✖ ${'  '.repeat(nesting)}${name}${where}\n`;
    if (error instanceof Error && (error as { failureType?: string }).failureType === 'subtestsFailed') continue;
    yield errorText(error).replace(/^/gm, '    ' + '  '.repeat(nesting)) + '\n';
  }
}
