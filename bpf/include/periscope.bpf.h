/* Helpers shared by the kernel side of every collector: the drop counters, per-cgroup aggregate
 * lookup, task accessors that work on tp_btf and raw_tp alike (CO-RE reads), and the export macro that
 * puts a type into the object's BTF so user space can generate its codec. */
#ifndef PERISCOPE_BPF_H
#define PERISCOPE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "periscope.h"
#include "compat.bpf.h"
#include "bits.bpf.h"

/* vmlinux.h carries no errno values. */
#ifndef E2BIG
#define E2BIG 7
#endif
#ifndef EEXIST
#define EEXIST 17
#endif

char LICENSE[] SEC("license") = "GPL";

/* A struct used only through a ring buffer record has no map that names it; a pointer global makes
 * clang emit its BTF, and the code generator follows globals named __periscope_export_*. */
#define PERISCOPE_EXPORT(name) const struct name *__periscope_export_##name __attribute__((unused))
/* The same for an enum that no exported struct uses. */
#define PERISCOPE_EXPORT_ENUM(name) const enum name *__periscope_export_##name __attribute__((unused))

/* Every collector counts what it could not keep, per CPU, by reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_KINDS);
	__type(key, enum periscope_drop);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void count_drop(enum periscope_drop why)
{
	__u32 key = why;
	__u64 *n = bpf_map_lookup_elem(&drops, &key);

	if (n)
		*n += 1;
}

/* The aggregate under a key (a cgroup, a flow ...), created zeroed on first use. A full map costs the
 * update, not the counter of the drop. */
static __always_inline void *map_entry(void *map, const void *key, const void *zero)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	long err = bpf_map_update_elem(map, key, zero, BPF_NOEXIST);

	/* EEXIST means another CPU created it between our lookup and update: fine. */
	if (err && err != -EEXIST) {
		count_drop(err == -E2BIG ? DROP_MAP_FULL : DROP_MAP_UPDATE);
		return 0;
	}
	return bpf_map_lookup_elem(map, key);
}

/* The aggregate of one cgroup. */
static __always_inline void *cgroup_entry(void *map, cgroup_id_t *id, const void *zero)
{
	return map_entry(map, id, zero);
}

/* Events are drained on a timer (every 100-400 ms), so nobody waits on the ring: submitting without a
 * wakeup spares the kernel the wakeup per event. Measured against an epoll reader woken per record
 * (BENCHMARKS.md): 1.0-1.5 us per exec instead of 13-15 us in the kernel, 3% of a core instead of
 * 11-13% in the agent. */
#define submit_event(e) bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP)

/* Reserve a ring buffer record or count why there is none. */
static __always_inline void *reserve_event(void *ring, __u64 size)
{
	void *e = bpf_ringbuf_reserve(ring, size, 0);

	if (!e)
		count_drop(DROP_RINGBUF_FULL);
	return e;
}

/* The cgroup v2 id of a task: the kernfs inode of its default-hierarchy cgroup. Works for any task,
 * not only current, which bpf_get_current_cgroup_id() is limited to. */
static __always_inline cgroup_id_t task_cgroup_id(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

static __always_inline pid_nr_t task_ppid(struct task_struct *t)
{
	return BPF_CORE_READ(t, real_parent, tgid);
}

/* The process id (tgid) in the task's own pid namespace: pid->numbers[pid->level].nr of its leader. */
static __always_inline pid_nr_t task_ns_tgid(struct task_struct *t)
{
	struct pid *pid = BPF_CORE_READ(t, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up;

	if (!pid)
		return 0;
	/* numbers[] is a flexible array: address its element by CO-RE offsets, level bounded for the verifier */
	if (bpf_probe_read_kernel(&up, sizeof(up),
				  (void *)pid + bpf_core_field_offset(struct pid, numbers) +
					  (level & 31) * bpf_core_type_size(struct upid)))
		return 0;
	return up.nr;
}

static __always_inline __u32 task_uid(struct task_struct *t)
{
	return BPF_CORE_READ(t, cred, uid.val);
}

#endif
