/* Feature probes: one trivial program per program and attach type. User space loads and attaches
 * them one at a time (a kernel that refuses one must not hide the others) and reports the answer. */
#include "periscope.bpf.h"

SEC("tracepoint/sched/sched_process_exec")
int probe_tracepoint(void *ctx) { return 0; }

SEC("tp_btf/sched_process_exec")
int BPF_PROG(probe_tp_btf) { return 0; }

SEC("raw_tp/sched_process_exec")
int BPF_PROG(probe_raw_tp) { return 0; }

SEC("fentry/do_nanosleep")
int BPF_PROG(probe_fentry) { return 0; }

SEC("kprobe/do_nanosleep")
int BPF_KPROBE(probe_kprobe) { return 0; }

SEC("perf_event")
int probe_perf_event(void *ctx) { return 0; }

SEC("uprobe")
int BPF_KPROBE(probe_uprobe) { return 0; }

SEC("cgroup_skb/ingress")
int probe_cgroup_skb(struct __sk_buff *skb) { return 1; }

SEC("sockops")
int probe_sock_ops(struct bpf_sock_ops *ops) { return 1; }

/* Socket storage, created only for the two probes that use it (it needs kernel BTF). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} probe_sk_storage SEC(".maps");

/* Tracing programs may use socket storage since Linux 5.11 (commit 8e4597c627fb). */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(probe_sk_storage_tracing, const struct sock *sk, int oldstate, int newstate)
{
	bpf_sk_storage_get(&probe_sk_storage, (void *)sk, 0, 0);
	return 0;
}

static long probe_loop_step(__u32 i, void *ctx)
{
	return 0;
}

/* bpf_loop, a loop whose body is verified once, since Linux 5.17. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(probe_bpf_loop, const struct sock *sk, int oldstate, int newstate)
{
	bpf_loop(1, probe_loop_step, 0, 0);
	return 0;
}

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* The bpf_rdonly_cast kfunc, an address as a read-only BTF pointer (plain loads), since Linux 6.2.
 * Unresolved on an older kernel (it is weak): the call stays and the verifier refuses it. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(probe_rdonly_cast, const struct sock *sk, int oldstate, int newstate)
{
	struct sock *s = bpf_rdonly_cast((const void *)sk, bpf_core_type_id_kernel(struct sock));

	return s->__sk_common.skc_family == 0;
}

/* Iterators over socket storage since Linux 5.9 (commit 5ce6e77c7edf). */
SEC("iter/bpf_sk_storage_map")
int probe_iter_sk_storage(struct bpf_iter__bpf_sk_storage_map *ctx) { return 0; }

/* Kernel layouts, as the CO-RE checks of compat.bpf.h resolve them on this kernel: run once with
 * BPF_PROG_TEST_RUN (socket filters can be run on any kernel), it returns one bit per difference. */
enum layout_bit {
	LAYOUT_MARK_VICTIM_TASK = 1,
	LAYOUT_SWITCH_PREV_STATE = 2,
	LAYOUT_EXIT_GROUP_DEAD = 4,
};
PERISCOPE_EXPORT_ENUM(layout_bit);

SEC("socket")
int probe_layouts(struct __sk_buff *skb)
{
	int bits = 0;

	if (mark_victim_has_task())
		bits |= LAYOUT_MARK_VICTIM_TASK;
	if (sched_switch_has_prev_state())
		bits |= LAYOUT_SWITCH_PREV_STATE;
	if (sched_process_exit_has_group_dead())
		bits |= LAYOUT_EXIT_GROUP_DEAD;
	return bits;
}
