/* cpu collector, kernel side. On every scheduler switch: the slice that ends is charged to the cgroup
 * of the task leaving the CPU, the switch is counted as voluntary (the task blocked) or involuntary
 * (it was preempted while runnable), and the task entering the CPU closes its run-queue wait, which
 * started at its wakeup or at its own preemption. The wait is charged to the task's cgroup when the
 * task leaves the CPU again: then it is current, and its cgroup costs one helper call instead of a
 * pointer chase, and every switch needs a single per-cgroup map lookup.
 *
 * Entry points exist as tp_btf and raw_tp; user space loads one set. Wait start times live in task
 * local storage where the kernel allows it (tp_btf, Linux 5.11+: freed with the task, no hashing),
 * else in an LRU hash by pid. */
#include "periscope.bpf.h"
#include "cpu.h"

/* Set by user space before load: keep wait start times in task storage rather than the LRU hash. */
const volatile bool use_task_storage = false;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, cgroup_id_t);
	__type(value, struct cgroup_cpu);
} cgroup_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_slice);
} current_slice SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, ktime_ns_t);
} queued_since SEC(".maps");

/* Tasks waiting on a run queue, by pid, where task storage is not used. LRU: a task that never runs
 * again ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, pid_nr_t);
	__type(value, ktime_ns_t);
} enqueued_at SEC(".maps");

static const struct cgroup_cpu zero_stats;

static __always_inline void enqueue(struct task_struct *t, ktime_ns_t now)
{
	if (use_task_storage) {
		ktime_ns_t *ts = bpf_task_storage_get(&queued_since, t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (ts)
			*ts = now;
		return;
	}
	pid_nr_t pid = BPF_CORE_READ(t, pid);
	if (pid)
		bpf_map_update_elem(&enqueued_at, &pid, &now, BPF_ANY);
}

/* When t started waiting, or 0 when it was not seen to; forgets it. */
static __always_inline ktime_ns_t dequeue(struct task_struct *t, pid_nr_t pid)
{
	ktime_ns_t since;

	if (use_task_storage) {
		ktime_ns_t *ts = bpf_task_storage_get(&queued_since, t, 0, 0);
		if (!ts)
			return 0;
		since = *ts;
		*ts = 0;
		return since;
	}
	ktime_ns_t *ts = bpf_map_lookup_elem(&enqueued_at, &pid);
	if (!ts)
		return 0;
	since = *ts;
	bpf_map_delete_elem(&enqueued_at, &pid);
	return since;
}

static __always_inline void on_wakeup(struct task_struct *t)
{
	enqueue(t, bpf_ktime_get_ns());
}

/*
 * prev_state is the state prev blocked in (0: still runnable, i.e. preempted), from the tracepoint
 * where the kernel passes it (compat.bpf.h). btf says the task pointers are BTF-typed (tp_btf): the
 * cgroup of the task switching in is then read with plain loads instead of four probe reads.
 */
static __always_inline void on_switch(bool preempt, struct task_struct *prev, struct task_struct *next, long prev_state, bool btf)
{
	ktime_ns_t now = bpf_ktime_get_ns();
	__u32 zero = 0;
	struct cpu_slice *slice = bpf_map_lookup_elem(&current_slice, &zero);

	if (!slice)
		return;

	if (slice->pid) {
		/* sched_switch runs with prev as current, so its cgroup is the current one. */
		cgroup_id_t cg = bpf_get_current_cgroup_id();
		struct cgroup_cpu *s = cgroup_entry(&cgroup_cpu, &cg, &zero_stats);
		/* The kernel's own rule (__schedule): voluntary when not preempted and not runnable. */
		bool voluntary = !preempt && prev_state != 0;

		if (s) {
			if (slice->start_ns)
				s->oncpu_ns += now - slice->start_ns;
			if (voluntary)
				s->voluntary_switches++;
			else
				s->involuntary_switches++;
			if (slice->has_wait) {
				__u32 slot = log2_slot(slice->pending_wait_ns / 1000, RUNQ_SLOTS - 1);

				/* the bound is for the verifier: log2_slot never passes RUNQ_SLOTS - 1 */
				if (slot < RUNQ_SLOTS)
					s->runq_slots[slot]++;
				s->runq_sum_ns += slice->pending_wait_ns;
			}
		}
		/* Preempted tasks stay runnable: their wait for the CPU starts now. */
		if (!voluntary)
			enqueue(prev, now);
	}

	pid_nr_t next_pid = BPF_CORE_READ(next, pid);
	slice->start_ns = now;
	slice->pid = next_pid;
	slice->has_wait = 0;
	if (!next_pid)
		return;
	/* user space charges the slice in progress to this cgroup, without a look in /proc (which a
	 * cgroup namespace would show relative to the agent's own) */
	slice->cgroup_id = btf ? next->cgroups->dfl_cgrp->kn->id : task_cgroup_id(next);
	ktime_ns_t since = dequeue(next, next_pid);
	if (since && now > since) {
		slice->pending_wait_ns = now - since;
		slice->has_wait = 1;
	}
}

SEC("tp_btf/sched_switch")
int BPF_PROG(cpu_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(preempt, prev, next, switch_prev_state(ctx, prev), true);
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
	on_switch(preempt, prev, next, switch_prev_state(ctx, prev), false);
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
