/** Kubeconfig files for tests of what goes wrong: missing files, failing exec plugins, servers that are not there. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type KubeUser =
  | { token: string }
  | { clientCertificate: string; clientKey: string }
  | { exec: { command: string; args?: string[] } };

function userLines(user: KubeUser): string[] {
  if ('token' in user) return [`    token: ${JSON.stringify(user.token)}`];
  if ('clientCertificate' in user) return [`    client-certificate: ${JSON.stringify(user.clientCertificate)}`, `    client-key: ${JSON.stringify(user.clientKey)}`];
  return [
    '    exec:',
    '      apiVersion: client.authentication.k8s.io/v1',
    `      command: ${JSON.stringify(user.exec.command)}`,
    `      args: ${JSON.stringify(user.exec.args ?? [])}`,
    '      interactiveMode: Never',
  ];
}

/** Writes a kubeconfig for one cluster at `server` (TLS not verified) and one user; returns its path. */
export function writeKubeconfig(server: string, user: KubeUser): string {
  const path = join(mkdtempSync(join(tmpdir(), 'periscope-kubeconfig-')), 'config');
  const text = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: test',
    '  cluster:',
    `    server: ${JSON.stringify(server)}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: test-user',
    '  user:',
    ...userLines(user),
    'contexts:',
    '- name: test',
    '  context:',
    '    cluster: test',
    '    user: test-user',
    'current-context: test',
    '',
  ].join('\n');
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}
