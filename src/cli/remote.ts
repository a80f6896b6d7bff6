/**
 * What the commands that talk to an agent or a hub share: where it is (--agent or --hub, a token
 * file, a CA file, or their $PERISCOPE_* variables), a GET with the token and the CA, bodies read
 * with a limit, and why a connection failed said as one line and a fix naming the agent or the hub.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { PeriscopeError } from '../kernel/errors.js';
import { bad } from './flags.js';

export type Role = 'agent' | 'hub';

export interface Target {
  /** an agent or a hub, for messages */
  role: Role;
  /** the base URL, without a trailing slash */
  base: string;
  /** where the base came from, for messages */
  source: string;
  token: string | undefined;
  tokenSource: string | undefined;
  ca: string | undefined;
}

/** How long an agent or hub may take to answer. */
export const ANSWER_MS = 10_000;

export const DEFAULT_AGENT = 'http://127.0.0.1:9464';

const VARIABLE: Record<Role, string> = { agent: 'PERISCOPE_AGENT', hub: 'PERISCOPE_HUB' };

const TLS_TRUST = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** "point --agent (or $PERISCOPE_AGENT)": the flag and variable that say where the target is. */
export const pointAt = (role: Role): string => `--${role} (or $${VARIABLE[role]})`;

/** How to start what is not there. */
const startIt = (role: Role): string => (role === 'agent' ? 'start it (periscope agent)' : 'start the hub');

export function unreachable(err: NodeJS.ErrnoException, t: Target): PeriscopeError {
  const at = `the ${t.role} at ${t.base}`;
  const where = `${startIt(t.role)}, or point ${pointAt(t.role)} at where it listens`;
  const code = err.code ?? '';
  const cause = { cause: err };
  if (code === 'ECONNREFUSED') return new PeriscopeError('AGENT_UNREACHABLE', `cannot reach ${at}: connection refused`, where, cause);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new PeriscopeError('AGENT_UNREACHABLE', `cannot reach ${at}: its host name does not resolve (${code})`, `check the host name in ${pointAt(t.role)}`, cause);
  if (TLS_TRUST.has(code)) {
    return new PeriscopeError('AGENT_UNREACHABLE', `${at} has a certificate this command does not trust: ${err.message.split(';')[0]}`, `pass --ca-file with the CA that signed the ${t.role}'s --tls-cert`, cause);
  }
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_')) {
    return new PeriscopeError('AGENT_UNREACHABLE', `${at} does not speak TLS (${code})`, `if the ${t.role} serves plain HTTP, use an http:// URL`, cause);
  }
  if (code === 'ECONNRESET' && t.base.startsWith('http:')) {
    return new PeriscopeError('AGENT_UNREACHABLE', `${at} closed the connection without an answer`, `if the ${t.role} serves HTTPS (--tls-cert), use an https:// URL`, cause);
  }
  return new PeriscopeError('AGENT_UNREACHABLE', `cannot reach ${at}: ${code ? `${code}: ` : ''}${err.message.replace(new RegExp(`^${code}:?\\s*`), '')}`, where, cause);
}

/** A GET; resolves with the response once its headers arrive, or rejects with the reason it cannot. */
export function get(t: Target, path: string, query: URLSearchParams, headers: Record<string, string>): { req: ClientRequest; response: Promise<IncomingMessage> } {
  const q = query.toString();
  const url = new URL(`${t.base}${path}${q ? `?${q}` : ''}`);
  const options: RequestOptions & { ca?: string } = {
    headers: { ...headers, ...(t.token !== undefined ? { authorization: `Bearer ${t.token}` } : {}) },
    ...(t.ca !== undefined ? { ca: t.ca } : {}),
  };
  const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options);
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    const silent = (): void => {
      req.destroy(
        new PeriscopeError('AGENT_UNREACHABLE', `the ${t.role} at ${t.base} did not answer within ${ANSWER_MS / 1000} s`, `check that --${t.role} points at a running ${t.role} and that the network lets you reach it`),
      );
    };
    req.setTimeout(ANSWER_MS, silent);
    req.on('error', (err) => reject(err instanceof PeriscopeError ? err : unreachable(err, t)));
    req.on('response', (res) => {
      // the caller watches the answer from here on
      req.off('timeout', silent);
      resolve(res);
    });
  });
  req.end();
  return { req, response };
}

export const MAX_ERROR_BODY = 64 << 10;

/** The whole body as text, rejecting past `limit` characters. */
export function readBody(res: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      body += d;
      if (body.length > limit) {
        res.destroy();
        reject(new Error(`the answer is longer than ${limit} bytes`));
      }
    });
    res.on('end', () => resolve(body));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the answer was cut short')));
  });
}

/** The `error` and `hint` of a JSON error body, else its first line as the error. */
export function errorBody(body: string): { error: string; hint: string } {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; hint?: unknown } | null;
    return { error: typeof parsed?.error === 'string' ? parsed.error : '', hint: typeof parsed?.hint === 'string' ? parsed.hint : '' };
  } catch {
    return { error: body.trim().split('\n')[0]!.slice(0, 200), hint: '' };
  }
}

/** What a 401 means: no token given, or not the right one. */
export function unauthorized(t: Target, said: string): PeriscopeError {
  return new PeriscopeError(
    'AGENT_REFUSED',
    `the ${t.role} at ${t.base} refused the request (401 Unauthorized)${said}`,
    t.token === undefined
      ? `pass --token-file FILE with the ${t.role}'s token (or set $PERISCOPE_TOKEN_FILE)`
      : `the token in ${t.tokenSource} is not the ${t.role}'s: pass --token-file with the file the ${t.role} was given`,
  );
}

function readFile(command: string, flag: string, source: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    bad(`${source === flag ? flag : `${flag} (from ${source})`} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, command);
  }
}

/** The flags that say where a command connects and how: the part of its flag spec `target()` reads. */
export const TARGET_FLAGS = {
  agent: { type: 'string' },
  hub: { type: 'string' },
  'token-file': { type: 'string' },
  'ca-file': { type: 'string' },
} as const;

export interface TargetFlags {
  agent?: string | undefined;
  hub?: string | undefined;
  'token-file'?: string | undefined;
  'ca-file'?: string | undefined;
}

/**
 * Where to connect and how, from the flags and then the environment: --hub (or $PERISCOPE_HUB) where
 * the command takes one and it is given, else --agent (or $PERISCOPE_AGENT, else the local agent).
 * Giving both flags is a mistake; a flag beats the other's variable.
 */
export function target(command: string, f: TargetFlags, roles: readonly Role[] = ['agent']): Target {
  const env = process.env;
  const pick = (flag: string, value: string | undefined, variable: string): [string | undefined, string] =>
    value !== undefined ? [value, `--${flag}`] : env[variable] ? [env[variable], `$${variable}`] : [undefined, `--${flag}`];

  const hubs = roles.includes('hub');
  if (hubs && f.agent !== undefined && f.hub !== undefined) bad('--agent and --hub both say where to connect: give one', command);
  let role: Role = 'agent';
  let [raw0, source] = pick('agent', f.agent, 'PERISCOPE_AGENT');
  if (hubs && f.agent === undefined) {
    const [hub, hubSource] = pick('hub', f.hub, 'PERISCOPE_HUB');
    // an agent from the environment gives way to a hub from a flag or from the environment
    if (hub !== undefined) [role, raw0, source] = ['hub', hub, hubSource];
  }
  const raw = (raw0 ?? DEFAULT_AGENT).trim();
  let url: URL | undefined;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname || url.search || url.hash || url.username) {
    const example = role === 'agent' ? 'http://127.0.0.1:9464 or https://node-1:9464' : 'http://periscope-hub:9465 or https://hub.example:9465';
    bad(`${source} wants the ${role}'s URL, such as ${example}, not "${raw}"`, command);
  }

  const given = `give the file the ${role} was started with (its --token-file)`;
  const [tokenFile, tokenSource] = pick('token-file', f['token-file'], 'PERISCOPE_TOKEN_FILE');
  const token = tokenFile === undefined ? undefined : readFile(command, '--token-file', tokenSource, tokenFile).trim();
  if (token === '') bad(`${tokenSource} ${tokenFile} holds no token`, command, given);
  if (token !== undefined && /\s/.test(token)) bad(`${tokenSource} ${tokenFile} holds more than one word; a token is one`, command, given);

  const [caFile, caSource] = pick('ca-file', f['ca-file'], 'PERISCOPE_CA_FILE');
  const ca = caFile === undefined ? undefined : readFile(command, '--ca-file', caSource, caFile);
  if (ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch {
      bad(`${caSource} ${caFile} holds no PEM certificate`, command, `give the CA certificate (-----BEGIN CERTIFICATE-----) that signed the ${role}'s --tls-cert`);
    }
    if (url.protocol !== 'https:' && caSource === '--ca-file') bad(`--ca-file is for an https:// ${role}, and ${url.origin} is not one`, command);
  }
  return {
    role,
    base: `${url.origin}${url.pathname.replace(/\/+$/, '')}`,
    source,
    token,
    tokenSource: tokenFile === undefined ? undefined : `${tokenSource} ${tokenFile}`,
    ca,
  };
}
