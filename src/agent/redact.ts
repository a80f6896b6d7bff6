/**
 * Masks secrets in command lines before they leave the node. A value is masked when its name
 * contains one of the secret keys (case-insensitive): `--password=hunter2` and `DB_PASSWORD=x` keep
 * their name and lose their value, `--token abc` loses the argument that follows the flag, a header
 * such as `Authorization: Bearer abc` keeps only its name, a URL keeps its user but not its password
 * (`postgres://app:***@db`), and a query string loses its secret parameters (`?api_key=***`). The same
 * rules apply inside one argument that holds a whole command (`sh -c "PGPASSWORD=x psql ..."`).
 * What cannot be recognised (a bare positional secret, `-phunter2`, a token used as a URL's user
 * name) is not; `--no-exec-args` drops the arguments altogether.
 */

export const DEFAULT_SECRET_KEYS: readonly string[] = ['pass', 'pwd', 'token', 'secret', 'key', 'credential', 'auth'];
export const MASK = '***';

export interface RedactOptions {
  /** substrings of argument names whose values are secret (matched without regard to case) */
  keys?: readonly string[];
  /** drop every argument */
  dropArgs?: boolean;
}

const NAME = '[A-Za-z_][A-Za-z0-9_.-]*';
/** `--password=x`, `PGPASSWORD=x` as a whole argument: all after `=` is the value, spaces too */
const WHOLE_ASSIGNMENT = new RegExp(`^(-{0,2}${NAME})=`);
/** the same inside a longer argument (a shell command, a query string): the value ends at a space, & ; or a quote */
const ASSIGNMENT = new RegExp(`(^|[\\s?&;'"])(-{0,2}${NAME})=(?:"[^"]*"|'[^']*'|[^\\s&;'"]*)`, 'g');
/** `Authorization: Bearer abc`: the value runs to the end of the line or a closing quote */
const HEADER = new RegExp(`(^|[\\s'"])(${NAME}):[ \\t]+[^'"\\r\\n]*`, 'g');
/** `--password hunter2` inside a shell command (a value that is itself a --flag is left alone) */
const FLAG_VALUE = new RegExp(`(^|\\s)(-{1,2}${NAME})([ \\t]+)(?!--)(?:"[^"]*"|'[^']*'|[^\\s;&|'"]+)`, 'g');
/** a secret flag given alone: `--password` `hunter2` */
const FLAG = new RegExp(`^-{1,2}(${NAME})$`);
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/gi;

export class Redactor {
  private readonly keys: readonly string[];
  readonly dropArgs: boolean;

  constructor(opts: RedactOptions = {}) {
    this.keys = (opts.keys ?? DEFAULT_SECRET_KEYS).map((k) => k.trim().toLowerCase()).filter(Boolean);
    this.dropArgs = opts.dropArgs ?? false;
  }

  private secret(name: string): boolean {
    const n = name.toLowerCase();
    return this.keys.some((k) => n.includes(k));
  }

  /** One argument alone, which may hold a whole command line. */
  private one(arg: string): string {
    // every rule needs a secret key in a name, or a URL: most arguments have neither (the hot path)
    if (!this.secret(arg) && !arg.includes('://')) return arg;
    const whole = WHOLE_ASSIGNMENT.exec(arg);
    if (whole && this.secret(whole[1]!)) return `${whole[1]}=${MASK}`;
    return arg
      .replace(URL_CREDENTIALS, `$1:${MASK}@`)
      .replace(HEADER, (m, pre: string, name: string) => (this.secret(name) ? `${pre}${name}: ${MASK}` : m))
      .replace(ASSIGNMENT, (m, pre: string, name: string) => (this.secret(name) ? `${pre}${name}=${MASK}` : m))
      .replace(FLAG_VALUE, (m, pre: string, name: string, space: string) => (this.secret(name) ? `${pre}${name}${space}${MASK}` : m));
  }

  /** A command line with its secrets masked; the program (argv[0]) is kept as it is. */
  argv(args: readonly string[]): string[] {
    if (this.dropArgs) return [];
    const out: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const arg = args[i]!;
      out.push(i === 0 ? arg : this.one(arg));
      // `--password hunter2`: a secret flag without a value hides the next argument, unless that is a --flag
      const flag = FLAG.exec(arg);
      if (i > 0 && flag && this.secret(flag[1]!) && i + 1 < args.length && !args[i + 1]!.startsWith('--')) {
        out.push(MASK);
        i++;
      }
    }
    return out;
  }
}
