/* memory collector, kernel side. An OOM kill is counted once per victim, in the victim's cgroup (the
 * victim need not be the task that ran out of memory), and streamed as an event.
 *
 * The hook is oom:mark_victim where it passes the victim task. Where it passes only a pid (5.10,
 * 5.15; compat.bpf.h), the task is found another way: the OOM killer either marks itself (current),
 * or sends the victim SIGKILL just before marking it (__oom_kill_process), which signal_generate sees
 * with the task — so the last SIGKILL each task sent is remembered for that moment. A victim found
 * neither way is still counted, in cgroup 0, and its event says so: never silently. fentry and
 * kprobe on mark_oom_victim() are alternatives for kernels whose tracepoints cannot be used. */
#include "periscope.bpf.h"
#include "memory.h"

#define SIGKILL 9

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, cgroup_id_t);
	__type(value, struct oom_stats);
} oom_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} oom_events SEC(".maps");

/* The last task each task sent SIGKILL to (its address), by sender pid (old mark_victim layout only). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, pid_nr_t);
	__type(value, __u64);
} sigkill_sent SEC(".maps");

PERISCOPE_EXPORT(oom_event);

static const struct oom_stats zero_stats;

/* Counts one kill and streams it; victim may be null when only its pid is known. */
static __always_inline void count_kill(struct task_struct *victim, pid_nr_t pid)
{
	cgroup_id_t cg = victim ? task_cgroup_id(victim) : 0;
	struct oom_stats *s = cgroup_entry(&oom_stats, &cg, &zero_stats);

	/* OOM kills are rare and may race on two CPUs: count atomically. */
	if (s)
		__sync_fetch_and_add(&s->kills, 1);

	struct oom_event *e = reserve_event(&oom_events, sizeof(*e));
	if (!e)
		return;
	e->time_ns = bpf_ktime_get_ns();
	e->cgroup_id = cg;
	if (victim) {
		e->pid = BPF_CORE_READ(victim, tgid);
		e->uid = task_uid(victim);
		BPF_CORE_READ_STR_INTO(&e->comm, victim, comm);
		e->total_vm_pages = BPF_CORE_READ(victim, mm, total_vm);
		e->victim_found = 1;
	} else {
		e->pid = pid;
		e->uid = 0;
		e->comm[0] = 0;
		e->total_vm_pages = 0;
		e->victim_found = 0;
	}
	e->pad = 0;
	submit_event(e);
}

/* mark_victim with only a pid (the thread id of the victim): find its task. */
static __always_inline void on_victim_pid(pid_nr_t pid)
{
	struct task_struct *current = (struct task_struct *)bpf_get_current_task();
	pid_nr_t me = (pid_nr_t)bpf_get_current_pid_tgid();

	if (me == pid) {
		count_kill(current, pid);
		return;
	}
	__u64 *sent = bpf_map_lookup_elem(&sigkill_sent, &me);
	struct task_struct *victim = sent ? (struct task_struct *)*sent : 0;

	if (victim && (pid_nr_t)BPF_CORE_READ(victim, pid) == pid) {
		count_kill(victim, pid);
		bpf_map_delete_elem(&sigkill_sent, &me);
		return;
	}
	count_kill(0, pid);
}

/* The victim, whichever argument layout this kernel's mark_victim has. */
static __always_inline void on_mark_victim(unsigned long long *ctx)
{
	if (mark_victim_has_task())
		count_kill((struct task_struct *)ctx[0], 0);
	else
		on_victim_pid((pid_nr_t)ctx[0]);
}

/* Remembers the target of a SIGKILL, where mark_victim will need it. */
static __always_inline void on_signal(int sig, struct task_struct *target)
{
	if (mark_victim_has_task() || sig != SIGKILL)
		return;
	pid_nr_t me = (pid_nr_t)bpf_get_current_pid_tgid();
	__u64 addr = (__u64)target;

	bpf_map_update_elem(&sigkill_sent, &me, &addr, BPF_ANY);
}

SEC("tp_btf/mark_victim")
int BPF_PROG(oom_victim_btf)
{
	on_mark_victim(ctx);
	return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(oom_signal_btf, int sig, struct kernel_siginfo *info, struct task_struct *task)
{
	on_signal(sig, task);
	return 0;
}

SEC("raw_tp/mark_victim")
int BPF_PROG(oom_victim_raw)
{
	on_mark_victim(ctx);
	return 0;
}

SEC("raw_tp/signal_generate")
int BPF_PROG(oom_signal_raw, int sig, struct kernel_siginfo *info, struct task_struct *task)
{
	on_signal(sig, task);
	return 0;
}

SEC("fentry/mark_oom_victim")
int BPF_PROG(oom_victim_fentry, struct task_struct *victim)
{
	count_kill(victim, 0);
	return 0;
}

SEC("kprobe/mark_oom_victim")
int BPF_KPROBE(oom_victim_kprobe, struct task_struct *victim)
{
	count_kill(victim, 0);
	return 0;
}
