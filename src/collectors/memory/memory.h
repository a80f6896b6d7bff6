/* memory collector: OOM kills per cgroup, and an event for each. */
#ifndef PERISCOPE_MEMORY_H
#define PERISCOPE_MEMORY_H

#include "periscope.h"

struct oom_stats {
	__u64 kills;
};

struct oom_event {
	pid_nr_t pid; /* the victim's process (its thread id, where only that is known) */
	__u32 uid;
	ktime_ns_t time_ns;
	cgroup_id_t cgroup_id; /* the victim's cgroup v2 id; 0 when the victim could not be found */
	char comm[TASK_COMM_SIZE];
	__u64 total_vm_pages;
	__u32 victim_found; /* 0: only the pid was known (old mark_victim layout, victim not found) */
	__u32 pad;
};

#endif
