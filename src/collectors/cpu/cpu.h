/* cpu collector: on-CPU time, context switches and run-queue latency per cgroup. */
#ifndef PERISCOPE_CPU_H
#define PERISCOPE_CPU_H

#include "periscope.h"

/* log2 buckets of run-queue latency in microseconds: slot i counts [2^i, 2^(i+1)) us, slot 0 also
 * counts below 1 us; the last slot takes everything longer. */
#define RUNQ_SLOTS 27

/* Everything the scheduler hooks aggregate for one cgroup: one map entry, so one lookup per switch. */
struct cgroup_cpu {
	ktime_ns_t oncpu_ns;
	__u64 voluntary_switches;
	__u64 involuntary_switches;
	ktime_ns_t runq_sum_ns;
	__u64 runq_slots[RUNQ_SLOTS];
};

/* What each CPU runs now, so user space can add the slice in progress when it reads. */
struct cpu_slice {
	ktime_ns_t start_ns;
	ktime_ns_t pending_wait_ns; /* run-queue wait of the running task, charged when it leaves */
	cgroup_id_t cgroup_id;      /* the running task's cgroup: the slice in progress is charged to it */
	pid_nr_t pid;               /* 0: idle */
	__u32 has_wait;
};

#endif
