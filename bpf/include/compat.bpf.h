/* Kernel differences, all in one place: one check per difference, each on the running kernel's own
 * BTF (CO-RE), each naming the kernel version or commit that made it. Collectors call these helpers
 * and never test a kernel version themselves. Needs clang 15+ for bpf_core_type_matches. */
#ifndef PERISCOPE_COMPAT_BPF_H
#define PERISCOPE_COMPAT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/* task_struct.state was renamed __state in Linux 5.14 (commit 2f064a59a11f). */
struct task_struct___pre514 {
	volatile long state;
} __attribute__((preserve_access_index));

static __always_inline long task_state(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)t, state);
}

/*
 * sched_switch passes the state the task switched out was in as a 4th argument since Linux 5.18
 * (commit fa2c3254d7cf, "sched/tracing: Don't re-read p->state when emitting sched_switch event"):
 * re-reading prev->__state at the tracepoint races with a wakeup that has already made the task
 * runnable again, and counts a blocked task as preempted. Older kernels have only the re-read.
 */
typedef void (*btf_trace_sched_switch___prev_state)(void *, bool, struct task_struct *, struct task_struct *, unsigned int);

static __always_inline bool sched_switch_has_prev_state(void)
{
	return bpf_core_type_matches(btf_trace_sched_switch___prev_state);
}

static __always_inline long switch_prev_state(unsigned long long *ctx, struct task_struct *prev)
{
	/* the branch not taken is removed by the verifier: ctx[3] is never touched where it does not exist */
	if (sched_switch_has_prev_state())
		return (long)(unsigned int)ctx[3];
	return task_state(prev);
}

/*
 * sched_process_exit passes group_dead (the last thread of the process is exiting) as a 2nd argument
 * in newer kernels (6.18 has it; Debian's 6.12 does not). Before, the last thread is the one
 * that finds signal->live at zero — but two threads exiting together can both find it so, and the
 * caller must count the process once (see process.bpf.c).
 */
typedef void (*btf_trace_sched_process_exit___group_dead)(void *, struct task_struct *, bool);

static __always_inline bool sched_process_exit_has_group_dead(void)
{
	return bpf_core_type_matches(btf_trace_sched_process_exit___group_dead);
}

/*
 * oom:mark_victim passes the victim task and its uid in newer kernels (6.8 upstream; Debian's 6.1.y
 * and 6.12 have it too, as their BTF shows) and only the victim's pid before (5.10, 5.15). The
 * record layout changed in the same commit ("mm: update mark_victim tracepoints fields"):
 * trace_event_raw_mark_victim gained total_vm, which is what the check looks for.
 */
struct trace_event_raw_mark_victim___task {
	unsigned long total_vm;
} __attribute__((preserve_access_index));

static __always_inline bool mark_victim_has_task(void)
{
	return bpf_core_field_exists(struct trace_event_raw_mark_victim___task, total_vm);
}

/*
 * The cgroup a socket is charged to (set when the process created it; an accepted socket inherits its
 * listener's). sock_cgroup_data became a plain struct with a cgroup pointer in Linux 5.15 (commit
 * 8520e224f547); before, it was a union whose value is the cgroup pointer unless its low bit says it
 * holds net_cls/net_prio ids instead (cgroup v1 network controllers in use: then there is no v2 id).
 */
struct sock_cgroup_data___old {
	__u64 val;
} __attribute__((preserve_access_index));
struct sock___old {
	struct sock_cgroup_data___old sk_cgrp_data;
} __attribute__((preserve_access_index));

static __always_inline __u64 sock_cgroup_id(struct sock *sk)
{
	if (bpf_core_field_exists(struct sock_cgroup_data, cgroup))
		return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	__u64 v = BPF_CORE_READ((struct sock___old *)sk, sk_cgrp_data.val);
	if (!v || (v & 1))
		return 0;
	return BPF_CORE_READ((struct cgroup *)v, kn, id);
}

/*
 * skb:kfree_skb passes the drop reason as a 3rd argument since Linux 5.17 (commit c504e5c2f964,
 * "net: skb: introduce kfree_skb_reason()"), together with enum skb_drop_reason, whose values differ
 * between kernels (user space names them from the running kernel's BTF). Older kernels give no
 * reason: 0. SKB_CONSUMED (6.0) marks a packet that was used, not dropped.
 */
static __always_inline __u32 kfree_skb_reason(unsigned long long *ctx)
{
	if (bpf_core_type_exists(enum skb_drop_reason))
		return (__u32)ctx[2];
	return 0;
}

static __always_inline __u32 kfree_skb_consumed(void)
{
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED))
		return bpf_core_enum_value(enum skb_drop_reason, SKB_CONSUMED);
	return ~0U;
}

#endif
