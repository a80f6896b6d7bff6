/**
 * Masks secrets in command lines before they leave the node. An argument is masked when its name
 * contains one of the secret keys (case-insensitive): `--password=hunter2` and `DB_PASSWORD=x` keep
 * their name and lose their value, `--token abc` loses the argument that follows the flag, a header
 * such as `Authorization: Bearer abc` keeps only its name, and a URL keeps its user but not its
 * password (`postgres://app:***@db`). What cannot be recognised (a bare positional secret) is not;
 * `--no-exec-args` drops the arguments altogether.
 */

export const DEFAULT_SECRET_KEYS: readonly string[] = ['password', 'passwd', 'token', 'secret', 'key', 'credential', 'authorization'];
export const MASK = '***';

export interface RedactOptions {
  /** substrings of argument names whose values are secret (matched without regard to case) */
  keys?: readonly string[];
  /** drop every argument */
  dropArgs?: boolean;
}

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/gi;

export class Redactor {
  private readonly keys: readonly string[];
  readonly dropArgs: boolean;

  constructor(opts: RedactOptions = {}) {
    this.keys = (opts.keys ?? DEFAULT_SECRET_KEYS).map((k) => k.toLowerCase()).filter(Boolean);
    this.dropArgs = opts.dropArgs ?? false;
  }

  private secret(name: string): boolean {
    const n = name.toLowerCase();
    return this.keys.some((k) => n.includes(k));
  }

  /** One argument alone: name=value, Name: value, or a URL with a password. */
  private one(arg: string): string {
    const eq = /^(-{0,2}[A-Za-z0-9_.-]+)=/.exec(arg);
    if (eq && this.secret(eq[1]!)) return `${eq[1]}=${MASK}`;
    const header = /^([A-Za-z0-9_-]+):\s/.exec(arg);
    if (header && this.secret(header[1]!)) return `${header[1]}: ${MASK}`;
    return arg.replace(URL_CREDENTIALS, `$1:${MASK}@`);
  }

  /** A command line with its secrets masked; the program (argv[0]) is kept as it is. */
  argv(args: readonly string[]): string[] {
    if (this.dropArgs) return [];
    const out: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const arg = args[i]!;
      out.push(i === 0 ? arg : this.one(arg));
      // `--password hunter2`: a flag without a value whose name is secret hides the next argument
      const flag = /^-{1,2}([A-Za-z0-9_.-]+)$/.exec(arg);
      if (i > 0 && flag && this.secret(flag[1]!) && i + 1 < args.length && !args[i + 1]!.startsWith('-')) {
        out.push(MASK);
        i++;
      }
    }
    return out;
  }
}
