/* process collector: exec, fork and exit per cgroup, and a stream of exec and exit events. */
#ifndef PERISCOPE_PROCESS_H
#define PERISCOPE_PROCESS_H

#include "periscope.h"

#define FILENAME_SIZE 256
#define ARGS_SIZE 256 /* the first arguments, NUL-separated as the kernel keeps them */

enum process_event_kind {
	PROCESS_EXEC = 1,
	PROCESS_EXIT = 2,
};

struct process_stats {
	__u64 execs;
	__u64 forks; /* new processes; new threads are not counted */
	__u64 exits; /* processes (thread group leaders) */
};

/* A process, unique over time: its pid and the start time of its leader (pids are reused). */
struct exit_key {
	pid_nr_t tgid;
	__u32 pad;
	ktime_ns_t leader_start_ns;
};

struct exec_event {
	enum process_event_kind kind;
	pid_nr_t pid;
	pid_nr_t ppid;
	__u32 uid;
	pid_nr_t ns_pid; /* the pid as the process's own pid namespace sees it (1 for a container's init) */
	__u32 pad;
	ktime_ns_t time_ns;
	cgroup_id_t cgroup_id;
	char comm[TASK_COMM_SIZE];
	char filename[FILENAME_SIZE];
	__u32 args_size; /* bytes of args that are valid */
	__u32 args_truncated;
	char args[ARGS_SIZE];
};

struct exit_event {
	enum process_event_kind kind;
	pid_nr_t pid;
	pid_nr_t ppid;
	__u32 uid;
	pid_nr_t ns_pid;
	__u32 pad0;
	ktime_ns_t time_ns;
	cgroup_id_t cgroup_id;
	char comm[TASK_COMM_SIZE];
	__u32 exit_code; /* status given to exit(), when not killed by a signal */
	__u32 signal;    /* the signal that killed it, or 0 */
	__u32 core_dumped;
	__u32 pad;
	ktime_ns_t lifetime_ns;
};

#endif
