import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BpfObject, chooseAlternative } from './bpf-object.js';
import { mapBytes } from './memory.js';
import { native } from './native.js';
import { COLLECTORS } from '../collectors/registry.js';
import { kernelAtLeast, needsKernel } from '../../test/kernel.js';


test('the kernel memory computed for every collector\'s maps is what the kernel itself accounts', (t) => {
  if (!needsKernel(t)) return;
  const cpus = native().numPossibleCpus();
  const exact = kernelAtLeast(6, 4); // fdinfo memlock is the real usage since Linux 6.4, an estimate before
  for (const def of COLLECTORS) {
    const alternative = chooseAlternative(def.spec).chosen;
    if (!alternative) {
      t.diagnostic(`${def.name}: no alternative runs on this kernel`);
      continue;
    }
    const maxEntries = Object.fromEntries((def.spec.cgroupMaps ?? []).map((m) => [m, 4096]));
    const obj = BpfObject.load(def.spec, { maxEntries, alternative });
    try {
      const skipped = new Set(def.spec.alternatives.find((a) => a.name === alternative)?.skipMaps ?? []);
      for (const m of Object.values(def.spec.maps)) {
        if (skipped.has(m.name)) continue;
        const info = readFileSync(`/proc/self/fdinfo/${obj.mapFd(m.name)}`, 'utf8');
        const kernel = Number(/^memlock:\s+(\d+)$/m.exec(info)?.[1]);
        const ours = mapBytes(m, obj.mapSizes[m.name] ?? m.maxEntries, cpus);
        t.diagnostic(`${def.name}.${m.name}: computed ${ours} B, kernel ${kernel} B`);
        // a map allocated as it fills is charged for what it holds: ours is its most
        const grows = (m.flags & native().constants.BPF_F_NO_PREALLOC) !== 0;
        if (exact && grows && ours > 0) assert.ok(ours >= kernel, `${def.name}.${m.name}: computed ${ours}, below the kernel's ${kernel}`);
        else if (exact) assert.ok(Math.abs(ours - kernel) <= Math.max(16 << 10, 0.02 * kernel), `${def.name}.${m.name}: computed ${ours}, the kernel says ${kernel}`);
      }
    } finally {
      obj.close();
    }
  }
});
