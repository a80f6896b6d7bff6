/* cpu collector, kernel side. On every scheduler switch: the slice that ends is charged to the cgroup
 * of the task leaving the CPU, the switch is counted as voluntary (the task blocked) or involuntary
 * (it was preempted while runnable), and the task entering the CPU closes its run-queue wait, which
 * started at its wakeup or at its own preemption. Entry points exist as tp_btf and raw_tp; user space
 * loads one set. */
#include "include/periscope.bpf.h"
#include "cpu.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, cgroup_id_t);
	__type(value, struct cpu_stats);
} cpu_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, cgroup_id_t);
	__type(value, struct runq_hist);
} runq_latency SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_slice);
} current_slice SEC(".maps");

/* Tasks waiting on a run queue, by pid. LRU: a task that never runs again ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, pid_nr_t);
	__type(value, ktime_ns_t);
} enqueued_at SEC(".maps");

static const struct cpu_stats zero_stats;
static const struct runq_hist zero_hist;

static __always_inline void enqueue(struct task_struct *t, ktime_ns_t now)
{
	pid_nr_t pid = BPF_CORE_READ(t, pid);

	if (pid)
		bpf_map_update_elem(&enqueued_at, &pid, &now, BPF_ANY);
}

static __always_inline __u32 log2_slot(__u64 us)
{
	__u32 slot = 0;

	/* bounded loop: at most RUNQ_SLOTS - 1 steps */
	for (int i = 0; i < RUNQ_SLOTS - 1; i++) {
		if (us < 2)
			break;
		us >>= 1;
		slot++;
	}
	return slot;
}

static __always_inline void on_wakeup(struct task_struct *t)
{
	enqueue(t, bpf_ktime_get_ns());
}

static __always_inline void on_switch(bool preempt, struct task_struct *prev, struct task_struct *next)
{
	ktime_ns_t now = bpf_ktime_get_ns();
	__u32 zero = 0;
	struct cpu_slice *slice = bpf_map_lookup_elem(&current_slice, &zero);

	if (!slice)
		return;

	if (slice->pid) {
		/* sched_switch runs with prev as current, so its cgroup is the current one. */
		cgroup_id_t cg = bpf_get_current_cgroup_id();
		struct cpu_stats *s = cgroup_entry(&cpu_stats, &cg, &zero_stats);
		/* The kernel's own rule (__schedule): voluntary when not preempted and not runnable. */
		bool voluntary = !preempt && task_state(prev) != 0;

		if (s) {
			if (slice->start_ns)
				s->oncpu_ns += now - slice->start_ns;
			if (voluntary)
				s->voluntary_switches++;
			else
				s->involuntary_switches++;
		}
		/* Preempted tasks stay runnable: their wait for the CPU starts now. */
		if (!voluntary)
			enqueue(prev, now);
	}

	pid_nr_t next_pid = BPF_CORE_READ(next, pid);
	slice->start_ns = now;
	slice->pid = next_pid;
	slice->cgroup_id = next_pid ? task_cgroup_id(next) : 0;
	if (!next_pid)
		return;

	ktime_ns_t *queued = bpf_map_lookup_elem(&enqueued_at, &next_pid);
	if (!queued)
		return;
	ktime_ns_t waited = now > *queued ? now - *queued : 0;
	bpf_map_delete_elem(&enqueued_at, &next_pid);

	cgroup_id_t cg = slice->cgroup_id;
	struct runq_hist *h = cgroup_entry(&runq_latency, &cg, &zero_hist);
	if (!h)
		return;
	__u32 slot = log2_slot(waited / 1000);
	if (slot < RUNQ_SLOTS)
		h->slots[slot]++;
	h->sum_ns += waited;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(cpu_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(preempt, prev, next);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(cpu_wakeup_btf, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(cpu_wakeup_new_btf, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(cpu_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(preempt, prev, next);
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(cpu_wakeup_raw, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(cpu_wakeup_new_raw, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}
