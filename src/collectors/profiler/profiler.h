/* profiler collector: on-CPU samples and off-CPU time per (cgroup, process, user stack, kernel stack). */
#ifndef PERISCOPE_PROFILER_H
#define PERISCOPE_PROFILER_H

#include "periscope.h"

/* PERF_MAX_STACK_DEPTH: the most frames the kernel walks by default */
#define PROFILE_STACK_DEPTH 127

/* A stack's addresses, innermost first, zeros after the last. */
struct stack_trace {
	__u64 ips[PROFILE_STACK_DEPTH];
};

/* A stack is named by a hash of its addresses: 52 bits, with bit 52 set, so that a JavaScript number
 * holds it exactly; the two values below are not stacks: nothing to walk (a kernel thread's user
 * half, a user-mode sample's kernel half), or a stack that was lost (its map full, an error, a map
 * recycled while a wait kept its name). */
#define STACK_NONE 0
#define STACK_LOST 1
#define STACK_HASH_MASK ((1ULL << 52) - 1)
#define STACK_HASH_BIT (1ULL << 52)

enum profile_kind {
	PROFILE_CPU = 0,    /* an on-CPU sample */
	PROFILE_OFFCPU = 1, /* blocked: from switching out asleep until the wakeup */
	PROFILE_RUNQ = 2,   /* runnable, waiting for a CPU: from the wakeup (or a preemption) until it ran */
};

/* What the programs did and could not do: per-CPU counters, read and exported by user space. */
enum profile_stat {
	STAT_SAMPLES = 0,        /* on-CPU samples of a task (idle not counted) */
	STAT_IDLE = 1,           /* samples that found the CPU idle */
	STAT_STACKS_FULL = 2,    /* a new stack found its stack map full: the stack is lost */
	STAT_STACK_ERROR = 3,    /* a stack could not be walked or stored (-ENOMEM ...) */
	STAT_COUNTS_FULL = 4,    /* the counts map was full: the sample or the time is lost */
	STAT_SWITCHES = 5,       /* tasks switched out (a stack taken) */
	STAT_SHORT = 6,          /* waits shorter than min_block_ns, not counted on purpose */
	STAT_EXPIRED = 7,        /* waits whose stacks were recycled while they waited: counted without stacks */
	STAT_PENDING_FULL = 8,   /* a switched-out task could not be remembered: its wait is lost */
	STAT_STACKS_ADDED_0 = 9, /* stacks added to stacks_0, _1, _2: how full each is, without a walk */
	STAT_STACKS_ADDED_1 = 10,
	STAT_STACKS_ADDED_2 = 11,
	STAT_STACKS_TAKEN = 12,  /* switches whose stacks were taken (every one after a long wait, else sampled) */
	STAT_UNSAMPLED = 13,     /* long waits not counted: their stacks were not taken (the sampled ones count for them) */
	STAT_KINDS = 14,
};

/* What user space sets between drains (one entry of the `control` array). */
struct profile_control {
	__u64 min_block_ns;  /* waits (blocked or queued) shorter than this are not counted */
	__u64 stack_epoch;   /* increases each time user space recycles a stack map: the map is epoch % 3 */
	__u32 counts_gen;    /* which counts map the programs add to (0 or 1); user space drains the other */
	__u32 offcpu;        /* 0: count no waits (the scheduler programs return at once) */
	__u32 offcpu_sample; /* a thread whose last wait was short has its stacks taken at 1 switch in this */
	__u32 pad;
};

/* A stack and who it belongs to: the key of the counts maps. */
struct stack_key {
	cgroup_id_t cgroup_id;
	pid_nr_t pid;         /* the process (tgid), as the initial pid namespace sees it */
	__u32 kind;           /* enum profile_kind */
	__u32 stack_map;      /* which stack map the stacks are in (0, 1 or 2) */
	__u64 user_stack;     /* the hash naming it in stacks_<stack_map>, or STACK_NONE or STACK_LOST */
	__u64 kernel_stack;   /* the same for the kernel stack */
};

struct stack_count {
	__u64 count; /* samples (cpu) or waits (offcpu, runq) */
	__u64 ns;    /* the time waited (offcpu, runq) */
};

/* A thread that left its CPU and has not run since (since != 0): where it was, and since when; or,
 * while it runs (since == 0), whether its last wait was long. */
struct pending_wait {
	ktime_ns_t since;
	__u64 stack_epoch;
	cgroup_id_t cgroup_id;
	pid_nr_t pid;
	__u32 queued;    /* 0: blocked, waiting for a wakeup; 1: runnable, waiting for a CPU */
	__u32 weight;    /* how many waits this one counts for: 1, offcpu_sample (sampled), 0 (no stacks) */
	__u32 long_wait; /* its last blocked wait (or a run-queue wait since) was long enough to count */
	__u64 user_stack;
	__u64 kernel_stack;
};

#endif
