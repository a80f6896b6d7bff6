/* memory collector, kernel side. oom/mark_victim fires once per OOM kill with the victim task, which
 * need not be the task that ran out of memory, so the cgroup is read from the victim itself. */
#include "periscope.bpf.h"
#include "memory.h"

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

PERISCOPE_EXPORT(oom_event);

static const struct oom_stats zero_stats;

static __always_inline void on_victim(struct task_struct *victim)
{
	cgroup_id_t cg = task_cgroup_id(victim);
	struct oom_stats *s = cgroup_entry(&oom_stats, &cg, &zero_stats);

	/* OOM kills are rare and may race on two CPUs: count atomically. */
	if (s)
		__sync_fetch_and_add(&s->kills, 1);

	struct oom_event *e = reserve_event(&oom_events, sizeof(*e));
	if (!e)
		return;
	e->pid = BPF_CORE_READ(victim, tgid);
	e->uid = task_uid(victim);
	e->time_ns = bpf_ktime_get_ns();
	e->cgroup_id = cg;
	BPF_CORE_READ_STR_INTO(&e->comm, victim, comm);
	e->total_vm_pages = BPF_CORE_READ(victim, mm, total_vm);
	bpf_ringbuf_submit(e, 0);
}

SEC("tp_btf/mark_victim")
int BPF_PROG(oom_victim_btf, struct task_struct *victim)
{
	on_victim(victim);
	return 0;
}

SEC("raw_tp/mark_victim")
int BPF_PROG(oom_victim_raw, struct task_struct *victim)
{
	on_victim(victim);
	return 0;
}
