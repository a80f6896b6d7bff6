/**
 * The flags every serving command shares (agent, hub, run): where to listen, the bearer token and TLS.
 * Each mistake is one line that names the flag and the fix, found before anything is loaded.
 */
import { readFileSync } from 'node:fs';
import { isIP, type AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { bad } from './flags.js';

export function parseListen(s: string, cmd = 'agent'): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) bad(`--listen wants HOST:PORT, not "${s}"`, cmd);
  const port = Number(m[2]);
  if (port > 65535) bad(`--listen: port ${port} is out of range (0-65535)`, cmd);
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port };
}

export const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

export function readSecretFile(cmd: string, flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    bad(`--${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, cmd);
  }
}

/** The token of a token file: at least 16 characters. */
export function tokenFile(cmd: string, flag: string, path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const token = readSecretFile(cmd, flag, path).trim();
  if (token.length < 16) bad(`--${flag} ${path} holds ${token.length ? 'a token shorter than 16 characters' : 'no token'}: write a long random one (openssl rand -hex 32)`, cmd);
  return token;
}

/** Refuses to serve beyond this machine without a token, unless told to. */
export function requireTokenBeyondLoopback(cmd: string, host: string, token: string | undefined, allowUnauthenticated: boolean | undefined, what: string, hint = 'pass --token-file FILE (and --tls-cert/--tls-key), listen on 127.0.0.1, or pass --allow-unauthenticated'): void {
  if (token || isLoopback(host) || allowUnauthenticated) return;
  bad(`listening on ${host} without --token-file would let anyone who reaches it ${what}`, cmd, hint);
}

/** --tls-cert and --tls-key, checked now (a bad pair is one line, not a failure after start). */
export function tlsFlags(cmd: string, cert: string | undefined, key: string | undefined): { cert: string; key: string } | undefined {
  if ((cert === undefined) !== (key === undefined)) bad('--tls-cert and --tls-key go together', cmd);
  if (cert === undefined || key === undefined) return undefined;
  const tls = { cert: readSecretFile(cmd, 'tls-cert', cert), key: readSecretFile(cmd, 'tls-key', key) };
  try {
    createSecureContext(tls);
  } catch (err) {
    bad(`--tls-cert ${cert} and --tls-key ${key} cannot be used: ${(err as Error).message}`, cmd, 'give a PEM certificate and the PEM private key that belongs to it');
  }
  return tls;
}

/** The base URL to print for a listening server: the real port, and loopback when it listens everywhere. */
export function baseUrl(address: AddressInfo, tls: boolean): { base: string; wildcard: boolean } {
  const wildcard = address.address === '0.0.0.0' || address.address === '::';
  const host = wildcard ? (address.family === 'IPv6' ? '::1' : '127.0.0.1') : address.address;
  return { base: `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${address.port}`, wildcard };
}
