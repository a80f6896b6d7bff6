/**
 * The symbolizer: raw kernel and user stack addresses → frame names (see symbolizer.ts). The parts
 * (ELF, kallsyms, perf maps, /proc/PID/maps) are exported for tests and tools.
 */
export { Symbolizer, type SymbolizerOptions, type SymbolizerStats } from './symbolizer.js';
export { SymbolTable, fileOffsetToVaddr, readElfInfo, readElfSymbols, type ElfInfo, type LoadSegment } from './elf.js';
export { KernelSymbols, parseKallsyms } from './kallsyms.js';
export { PerfMap } from './perf-map.js';
export { findMapping, nsPidOf, parseMaps, type Mapping } from './proc-maps.js';
