/**
 * `periscope doctor`: can this machine run the agent, and how? First the hard requirements (privilege,
 * BTF, cgroup2, the native binding, one real BPF load); any that fails ends the command with one line
 * naming it and the fix. Then the capability table — every feature probe — and, per collector, the
 * alternative the agent will take and why the others were passed over.
 */
import { existsSync, readFileSync } from 'node:fs';
import { FEATURES, probe, probeAll, type Feature, type Probe } from '../kernel/features.js';
import { chooseAlternative } from '../kernel/bpf-object.js';
import { native, NATIVE_PATH } from '../kernel/native.js';
import { findCgroup2Mount } from '../inventory/cgroups.js';
import { PeriscopeError } from '../kernel/errors.js';
import { canUseBpf } from '../kernel/privilege.js';
import { COLLECTORS } from '../collectors/registry.js';
import { defaultMaxCgroups, kernelMemory, memoryLimit } from '../agent/memory-budget.js';
import { bad, parseFlags } from './flags.js';

/** The first hard requirement that fails, as a PeriscopeError; undefined when BPF can be used. */
export function checkRequirements(): PeriscopeError | undefined {
  if (!canUseBpf()) {
    return new PeriscopeError(
      'NOT_PRIVILEGED',
      `missing capability: BPF needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); this process runs as uid ${process.getuid?.()} without them`,
      'run as root (sudo bin/periscope ...) or grant CAP_BPF,CAP_PERFMON,CAP_SYS_RESOURCE (securityContext.capabilities.add in Kubernetes)',
    );
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    return new PeriscopeError(
      'NO_BTF',
      'the kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing)',
      'use a kernel built with CONFIG_DEBUG_INFO_BTF=y (every major distribution since 2020 ships one)',
    );
  }
  try {
    findCgroup2Mount();
  } catch (err) {
    return err as PeriscopeError;
  }
  if (!existsSync(NATIVE_PATH)) {
    return new PeriscopeError('NATIVE_MISSING', `the native binding is not built (${NATIVE_PATH})`, 'run `make build`');
  }
  const load = probe('raw_tp');
  if (load.status !== 'supported') {
    return new PeriscopeError(
      'BPF_LOAD',
      `the kernel refused a trivial BPF program: ${load.reason}`,
      'check `sysctl kernel.unprivileged_bpf_disabled`, lockdown mode (cat /sys/kernel/security/lockdown) and seccomp',
    );
  }
  return undefined;
}

export interface DoctorReport {
  ok: boolean;
  kernel: string;
  libbpf: string;
  /** what the agent's kernel maps take here with the default --max-cgroups */
  memory: { cpus: number; default_max_cgroups: number; kernel_bytes: number; bytes_per_cgroup: number; limit_bytes: number | null; limit_source: string | null };
  features: Record<Feature, Probe>;
  /** note: what the alternative taken does not do that the collector's first one does */
  collectors: { name: string; alternative: string | null; note: string | null; passedOver: { name: string; reason: string }[] }[];
}

export function doctorReport(): DoctorReport {
  const features = probeAll();
  const collectors = COLLECTORS.map(({ name, spec }) => {
    const c = chooseAlternative(spec);
    return { name, alternative: c.chosen || null, note: c.note ?? null, passedOver: c.passedOver };
  });
  const cpus = native().numPossibleCpus();
  const maxCgroups = defaultMaxCgroups(COLLECTORS, cpus);
  const kernel = kernelMemory(COLLECTORS, maxCgroups, cpus);
  const limit = memoryLimit();
  return {
    ok: collectors.every((c) => c.alternative !== null),
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    libbpf: native().libbpfVersion,
    memory: {
      cpus,
      default_max_cgroups: maxCgroups,
      kernel_bytes: kernel.total,
      bytes_per_cgroup: Math.round(kernel.perCgroup),
      limit_bytes: limit?.bytes ?? null,
      limit_source: limit?.source ?? null,
    },
    features,
    collectors,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_c, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function formatDoctor(r: DoctorReport): string {
  const oneLine = (s: string, max = 100): string => s.split('\n')[0]!.slice(0, max);
  const feats = [['FEATURE', 'STATUS', 'DETAIL'], ...FEATURES.map((f) => {
    const p = r.features[f];
    return [f, p.status, p.status === 'supported' ? '' : oneLine(p.reason)];
  })];
  const cols = [['COLLECTOR', 'USES', 'PASSED OVER'], ...r.collectors.map((c) => [
    c.name,
    c.alternative ?? 'NONE',
    c.passedOver.map((p) => `${p.name} (${oneLine(p.reason, 200)})`).join('; '),
  ])];
  const notes = r.collectors.filter((c) => c.note).map((c) => `${c.name} on ${c.alternative}: ${c.note}\n`).join('');
  const m = r.memory;
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
  const memory =
    `kernel maps: ${mib(m.kernel_bytes)} for --max-cgroups ${m.default_max_cgroups} (the default) on ${m.cpus} possible CPUs, ` +
    `${m.bytes_per_cgroup} bytes a cgroup; memory limit ${m.limit_bytes === null ? 'none found' : `${mib(m.limit_bytes)} (${m.limit_source})`}`;
  return `kernel ${r.kernel}, libbpf ${r.libbpf}\n\n${table(feats)}\n\n${table(cols)}\n${notes ? `\n${notes}` : ''}\n${memory}\n`;
}

export const DOCTOR_USAGE = `usage: periscope doctor [--output table|json]

Says whether this machine can run the agent: privileges, BTF, cgroup2, the native binding, one real
BPF load; then what the kernel supports (each feature probed by loading and attaching a program) and
which alternative each collector will take, and why the others were passed over. Exits 1 when a
requirement is missing or a collector has no alternative.

  -o, --output table|json   how to print (default table)
`;

export function doctorCommand(args: string[]): void {
  const f = parseFlags('doctor', DOCTOR_USAGE, args, { output: { type: 'string', short: 'o' } });
  if (!f) return;
  const output = f.output ?? 'table';
  if (output !== 'table' && output !== 'json') bad(`--output wants table or json, not "${output}"`, 'doctor');
  const problem = checkRequirements();
  if (problem) {
    if (output === 'json') process.stdout.write(`${JSON.stringify({ ok: false, error: problem.message, code: problem.code, hint: problem.hint })}\n`);
    throw problem;
  }
  const report = doctorReport();
  process.stdout.write(output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
  if (!report.ok) process.exitCode = 1;
}
