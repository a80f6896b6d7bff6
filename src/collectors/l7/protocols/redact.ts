/**
 * What of a payload a record may keep. Credentials never: the values of `Authorization`,
 * `Proxy-Authorization`, `Cookie` and `Set-Cookie` are not even read into strings, the arguments of
 * Redis `AUTH` (and of `HELLO ... AUTH`, `MIGRATE ... AUTH/AUTH2`, `CONFIG SET requirepass`,
 * `ACL SETUSER`) are masked, and SQL string literals are masked (`sql.ts`). In shapes-only mode
 * (`payload: 'shapes'`) no payload text is kept at all: only the method, route, command and query
 * shape, which are what metrics are keyed by.
 */
import type { ParserOptions } from './types.js';

export const MASK = '***';

const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** Is this header's value a credential (name lowercased)? */
export const isSecretHeader = (name: string): boolean => SECRET_HEADERS.has(name);

/** `text` where payload text may be kept, else undefined. */
export const sample = <T>(options: ParserOptions, value: T): T | undefined => (options.payload === 'samples' ? value : undefined);

/**
 * A Redis command's arguments with secrets masked: everything after `AUTH` (in `AUTH`, `HELLO`,
 * `MIGRATE`), every argument of `ACL SETUSER` after the user name, and the value of
 * `CONFIG SET` for a parameter that holds a password.
 */
export function maskRedisArgs(command: string, args: readonly string[]): string[] {
  const out = [...args];
  if (command === 'AUTH') return out.map(() => MASK);
  if (command === 'HELLO' || command === 'MIGRATE') {
    const at = out.findIndex((a) => /^auth2?$/i.test(a));
    if (at >= 0) for (let i = at + 1; i < out.length; i++) out[i] = MASK;
    return out;
  }
  if (command === 'ACL SETUSER') return out.map((a, i) => (i === 0 ? a : MASK));
  if (command === 'CONFIG SET') {
    for (let i = 0; i + 1 < out.length; i += 2) if (/pass|auth|secret|key/i.test(out[i]!)) out[i + 1] = MASK;
    return out;
  }
  return out;
}
