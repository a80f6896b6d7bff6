/* process collector, kernel side. Counts execs, new processes and process exits per cgroup (exact:
 * counted before any event is reserved), and streams exec and exit events through a ring buffer.
 * The exec arguments are read from the new image's own argument area (mm->arg_start), which the
 * kernel has filled by the time sched_process_exec fires. Entry points exist as tp_btf and raw_tp. */
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
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void on_fork(struct task_struct *parent, struct task_struct *child)
{
	/* A new thread shares its parent's tgid; only new processes count. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return;
	struct process_stats *s = stats_of(task_cgroup_id(parent));
	if (s)
		s->forks++;
}

static __always_inline void on_exit(struct task_struct *p)
{
	/* Threads exit too; a process has ended when its thread group leader does. */
	if (BPF_CORE_READ(p, pid) != BPF_CORE_READ(p, tgid))
		return;
	cgroup_id_t cg = task_cgroup_id(p);
	struct process_stats *s = stats_of(cg);
	if (s)
		s->exits++;

	struct exit_event *e = reserve_event(&process_events, sizeof(*e));
	if (!e)
		return;
	/* do_exit() stores the wait status before the tracepoint: exit code << 8, or the signal. */
	__u32 status = BPF_CORE_READ(p, exit_code);
	ktime_ns_t now = bpf_ktime_get_ns();
	ktime_ns_t started = BPF_CORE_READ(p, start_time);

	e->kind = PROCESS_EXIT;
	e->pid = BPF_CORE_READ(p, tgid);
	e->ns_pid = task_ns_tgid(p);
	e->pad0 = 0;
	e->ppid = task_ppid(p);
	e->uid = task_uid(p);
	e->time_ns = now;
	e->cgroup_id = cg;
	BPF_CORE_READ_STR_INTO(&e->comm, p, comm);
	e->exit_code = (status >> 8) & 0xff;
	e->signal = status & 0x7f;
	e->core_dumped = (status & 0x80) != 0;
	e->pad = 0;
	e->lifetime_ns = now > started ? now - started : 0;
	bpf_ringbuf_submit(e, 0);
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

SEC("tp_btf/sched_process_exit")
int BPF_PROG(process_exit_btf, struct task_struct *p)
{
	on_exit(p);
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
	on_exit(p);
	return 0;
}
