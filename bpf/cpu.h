/* cpu collector: on-CPU time, context switches and run-queue latency per cgroup. */
#ifndef PERISCOPE_CPU_H
#define PERISCOPE_CPU_H

#include "include/periscope.h"

/* log2 buckets of run-queue latency in microseconds: slot i counts [2^i, 2^(i+1)) us, slot 0 also
 * counts below 1 us; the last slot takes everything longer. */
#define RUNQ_SLOTS 27

struct cpu_stats {
	ktime_ns_t oncpu_ns;
	__u64 voluntary_switches;
	__u64 involuntary_switches;
};

struct runq_hist {
	__u64 slots[RUNQ_SLOTS];
	ktime_ns_t sum_ns;
};

/* What each CPU runs now, so user space can add the slice in progress when it reads. */
struct cpu_slice {
	ktime_ns_t start_ns;
	cgroup_id_t cgroup_id;
	pid_nr_t pid; /* 0: idle */
	__u32 pad;
};

#endif
