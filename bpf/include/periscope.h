/* Types shared by every Periscope BPF program and, through the compiled object's BTF, by user space.
 * Types and constants only: no code. User space never includes this file; it reads the layouts from
 * BTF (see src/kernel/codegen.ts), so names here become names in TypeScript. */
#ifndef PERISCOPE_H
#define PERISCOPE_H

/* Semantic typedefs: every id and time says what it is. */
typedef __u64 cgroup_id_t; /* inode number of the cgroup2 directory */
typedef __u64 ktime_ns_t;  /* CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) */
typedef __u32 pid_nr_t;    /* a pid as the initial pid namespace sees it */

#define TASK_COMM_SIZE 16

/* Why a record was not kept. Index of the per-CPU `drops` array every collector carries. */
enum periscope_drop {
	DROP_RINGBUF_FULL = 0, /* an event stream record: the ring buffer had no room */
	DROP_MAP_FULL = 1,     /* a per-cgroup aggregate: the map reached max_entries */
	DROP_MAP_UPDATE = 2,   /* any other failed map update (ENOMEM, ...): the update is lost */
	DROP_KINDS = 3,
};

#endif
