/* process collector, kernel side. Counts execs, new processes and process exits per cgroup (exact:
 * counted before any event is reserved), and streams exec and exit events through a ring buffer.
 * The exec arguments are read from the new image's own argument area (mm->arg_start), which the
 * kernel has filled by the time sched_process_exec fires. A new process is charged to the cgroup it
 * starts in (clone3 with CLONE_INTO_CGROUP puts it elsewhere than its parent); a process has exited
 * when its last thread has, not its first. Entry points exist as tp_btf and raw_tp. */
#include "periscope.bpf.h"
#include "process.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, cgroup_id_t);
	__type(value, struct process_stats);
} process_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} process_events SEC(".maps");

/* Processes whose exit was counted: where the kernel does not say which thread ends the process, two
 * threads exiting together may both find no thread left, and the second must not count it again.
 * Entries are only needed for that moment; LRU drops them later. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct exit_key);
	__type(value, __u8);
} exits_counted SEC(".maps");

PERISCOPE_EXPORT(exec_event);
PERISCOPE_EXPORT(exit_event);

static const struct process_stats zero_stats;

static __always_inline struct process_stats *stats_of(cgroup_id_t cg)
{
	return cgroup_entry(&process_stats, &cg, &zero_stats);
}

static __always_inline void on_exec(struct task_struct *p, struct linux_binprm *bprm)
{
	cgroup_id_t cg = task_cgroup_id(p);
	struct process_stats *s = stats_of(cg);

	if (s)
		s->execs++;

	struct exec_event *e = reserve_event(&process_events, sizeof(*e));
	if (!e)
		return;
	e->kind = PROCESS_EXEC;
	e->pid = BPF_CORE_READ(p, tgid);
	e->ns_pid = task_ns_tgid(p);
	e->pad = 0;
	e->ppid = task_ppid(p);
	e->uid = task_uid(p);
	e->time_ns = bpf_ktime_get_ns();
	e->cgroup_id = cg;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));

	unsigned long start = BPF_CORE_READ(p, mm, arg_start);
	unsigned long end = BPF_CORE_READ(p, mm, arg_end);
	__u64 size = end > start ? end - start : 0;
	e->args_truncated = size > ARGS_SIZE;
	if (size > ARGS_SIZE)
		size = ARGS_SIZE;
	e->args_size = 0;
	/* bpf_probe_read_user needs a size the verifier can bound: 1..ARGS_SIZE here. */
	if (size > 0 && bpf_probe_read_user(e->args, size, (void *)start) == 0)
		e->args_size = size;
	submit_event(e);
}

static __always_inline void on_fork(struct task_struct *parent, struct task_struct *child)
{
	/* A new thread shares its parent's tgid; only new processes count. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return;
	/* the child's own cgroup: with CLONE_INTO_CGROUP it is not the parent's */
	struct process_stats *s = stats_of(task_cgroup_id(child));
	if (s)
		s->forks++;
}

/*
 * Whether p is the last thread of its process to exit. group_dead comes from the tracepoint where
 * the kernel passes it (< 0: it does not); else the thread that finds signal->live at zero is the
 * last — and when two find it so, the first to record the process wins.
 */
static __always_inline bool process_ended(struct task_struct *p, int group_dead)
{
	if (group_dead >= 0)
		return group_dead;
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return false;
	struct exit_key key = {
		.tgid = BPF_CORE_READ(p, tgid),
		.leader_start_ns = BPF_CORE_READ(p, group_leader, start_time),
	};
	__u8 one = 1;
	return bpf_map_update_elem(&exits_counted, &key, &one, BPF_NOEXIST) == 0;
}

static __always_inline void on_exit(struct task_struct *p, int group_dead)
{
	/* Threads exit too; a process has ended when its last thread does, which need not be its leader. */
	if (!process_ended(p, group_dead))
		return;
	cgroup_id_t cg = task_cgroup_id(p);
	struct process_stats *s = stats_of(cg);
	if (s)
		s->exits++;

	struct exit_event *e = reserve_event(&process_events, sizeof(*e));
	if (!e)
		return;
	/* do_exit() stores the wait status before the tracepoint: exit code << 8, or the signal; a group
	 * exit gives every thread the same. The process started with its leader. */
	__u32 status = BPF_CORE_READ(p, exit_code);
	ktime_ns_t now = bpf_ktime_get_ns();
	ktime_ns_t started = BPF_CORE_READ(p, group_leader, start_time);

	e->kind = PROCESS_EXIT;
	e->pid = BPF_CORE_READ(p, tgid);
	e->ns_pid = task_ns_tgid(p);
	e->pad0 = 0;
	e->ppid = task_ppid(p);
	e->uid = task_uid(p);
	e->time_ns = now;
	e->cgroup_id = cg;
	BPF_CORE_READ_STR_INTO(&e->comm, p, group_leader, comm);
	e->exit_code = (status >> 8) & 0xff;
	e->signal = status & 0x7f;
	e->core_dumped = (status & 0x80) != 0;
	e->pad = 0;
	e->lifetime_ns = now > started ? now - started : 0;
	submit_event(e);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(process_exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	on_exec(p, bprm);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(process_fork_btf, struct task_struct *parent, struct task_struct *child)
{
	on_fork(parent, child);
	return 0;
}

/* group_dead where the tracepoint passes it (compat.bpf.h), else -1 */
static __always_inline int exit_group_dead(unsigned long long *ctx)
{
	if (sched_process_exit_has_group_dead())
		return (bool)ctx[1];
	return -1;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit_btf, struct task_struct *p)
{
	on_exit(p, exit_group_dead(ctx));
	return 0;
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(process_exec_raw, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	on_exec(p, bprm);
	return 0;
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(process_fork_raw, struct task_struct *parent, struct task_struct *child)
{
	on_fork(parent, child);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(process_exit_raw, struct task_struct *p)
{
	on_exit(p, exit_group_dead(ctx));
	return 0;
}
