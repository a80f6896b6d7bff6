/**
 * The flags collectors declare, generated from the registry: `--<collector>-select RULES` for one that
 * works only on selected workloads, `--<collector>-<setting> VALUE` for each of its settings. The
 * commands that start an agent add them to their own flags and their --help, check them (one line
 * naming the flag), and hand the values to the agent; no command names a collector.
 */
import { type CollectorDefinition } from '../collectors/contract.js';
import { parseSelection, SELECTOR_SYNTAX, SelectionError } from '../agent/selection.js';
import { bad, type FlagSpec } from './flags.js';

export interface CollectorFlag {
  readonly flag: string;
  readonly collector: string;
  /** the setting it gives; undefined for the selection */
  readonly setting?: string;
  readonly usage: string;
}

const wrap = (text: string, width: number, indent: string): string => {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.join(`\n${indent}`);
};

function usageLine(flag: string, value: string, help: string): string {
  const head = `  --${flag} ${value}`;
  const indent = ' '.repeat(28);
  return head.length < 27 ? `${head.padEnd(28)}${wrap(help, 72, indent)}` : `${head}\n${indent}${wrap(help, 72, indent)}`;
}

/** Every collector flag of these collectors. */
export function collectorFlags(defs: readonly CollectorDefinition[]): CollectorFlag[] {
  const out: CollectorFlag[] = [];
  for (const d of defs) {
    if (d.selection) {
      out.push({
        flag: `${d.name}-select`,
        collector: d.name,
        usage: usageLine(`${d.name}-select`, 'RULES', `${d.selection.help}; comma-separated ${SELECTOR_SYNTAX}. Without it ${d.name} does not run`),
      });
    }
    for (const s of d.settings ?? []) {
      out.push({ flag: `${d.name}-${s.name}`, collector: d.name, setting: s.name, usage: usageLine(`${d.name}-${s.name}`, s.value, `${s.help} (default ${s.default})`) });
    }
  }
  return out;
}

/** The flags' specs for parseFlags. */
export const collectorFlagSpec = (flags: readonly CollectorFlag[]): FlagSpec => Object.fromEntries(flags.map((f) => [f.flag, { type: 'string' as const }]));

/** The flags' --help section. */
export const collectorUsage = (flags: readonly CollectorFlag[]): string => (flags.length > 0 ? `collectors:\n${flags.map((f) => `${f.usage}\n`).join('')}` : '');

/** The flags given, back as argv (a command that starts the agent through its flags). */
export function collectorArgs(flags: readonly CollectorFlag[], values: Readonly<Record<string, unknown>>): string[] {
  return flags.flatMap((f) => (typeof values[f.flag] === 'string' ? [`--${f.flag}`, values[f.flag] as string] : []));
}

/** The flags given, checked: selections and settings by collector, as the agent takes them. */
export function readCollectorFlags(
  command: string,
  defs: readonly CollectorDefinition[],
  flags: readonly CollectorFlag[],
  values: Readonly<Record<string, unknown>>,
): { selections: Record<string, string>; settings: Record<string, Record<string, string>> } {
  const selections: Record<string, string> = {};
  const settings: Record<string, Record<string, string>> = {};
  for (const f of flags) {
    const v = values[f.flag];
    if (typeof v !== 'string') continue;
    if (f.setting === undefined) {
      try {
        parseSelection(v);
      } catch (err) {
        if (err instanceof SelectionError) bad(`--${f.flag}: ${err.message}`, command, `e.g. --${f.flag} namespace:shop,pod:db/postgres-0 (or cgroup:/system.slice/nginx.service without Kubernetes)`);
        throw err;
      }
      selections[f.collector] = v;
    } else {
      const setting = defs.find((d) => d.name === f.collector)?.settings?.find((s) => s.name === f.setting);
      const why = setting?.check(v);
      if (why) bad(`--${f.flag}: ${why}`, command);
      (settings[f.collector] ??= {})[f.setting] = v;
    }
  }
  return { selections, settings };
}
