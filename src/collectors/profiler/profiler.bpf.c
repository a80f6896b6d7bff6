/* profiler collector, kernel side: counts stacks in the kernel instead of exporting samples.
 *
 * On-CPU: a perf_event program on the software CPU clock of every CPU (user space attaches it at
 * --profiler-hz) takes the interrupted task's kernel and user stacks (bpf_get_stack: the kernel's
 * unwinder for kernel stacks, frame pointers for user stacks; stored by their hash, take_stack) and
 * adds one to the count of (cgroup, process, user stack, kernel stack).
 *
 * Off-CPU: at each scheduler switch the task leaving the CPU has its stacks taken and is remembered
 * with the time (in `pending`, by thread id). A task that blocked is waiting for a wakeup: at
 * sched_wakeup the time it was blocked is counted against its stacks (PROFILE_OFFCPU) and it starts
 * waiting for a CPU; a preempted task waits for a CPU from the switch. When it is switched in again,
 * the run-queue wait is counted (PROFILE_RUNQ). Waits shorter than min_block_ns are not counted. How
 * long a wait will be is known only at its end, so the stacks are taken at the switch: at every one
 * for a thread whose last wait counted, at one in offcpu_sample for the others (on_switch).
 *
 * Draining without losing counts: there are two counts maps; programs add to the one control says,
 * user space switches them and reads the other once nothing adds to it. Stack ids point into one of
 * three stack maps (stack_epoch % 3). A wait may span several drains, so stack maps are not emptied at
 * each drain: when the current one fills, user space empties the map of two epochs ago and moves the
 * epoch on, after the drain has read its counts. Nothing can point into that map any more: a wait
 * that began two epochs ago is counted without stacks (its ids would name other stacks once the map
 * refills), and every count that pointed there was made before the previous epoch change, so it was
 * in this drain or an earlier one.
 */
#include "periscope.bpf.h"
#include "profiler.h"

#ifndef EFAULT
#define EFAULT 14
#endif

/* task_struct->flags */
#define PF_EXITING 0x00000004
#define PF_KTHREAD 0x00200000

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct profile_control);
} control SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} profile_stats SEC(".maps");

/* On-CPU samples counted into each counts map: read with the map it belongs to, so a drain can
 * show that it took every sample the programs added (the key of the entry is the counts map). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} samples_by_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stack_key);
	__type(value, struct stack_count);
} counts_0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct stack_key);
	__type(value, struct stack_count);
} counts_1 SEC(".maps");

/* Stacks by the hash of their addresses (take_stack). A stack map proper (BPF_MAP_TYPE_STACK_TRACE)
 * names a stack by its hash bucket: a hot stack whose bucket another stack took first is lost on every
 * sample (measured: 9% of a simple workload's samples with 300 stacks in 8,192 buckets). Here a
 * stack is lost only when its map is full. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct stack_trace);
} stacks_0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct stack_trace);
} stacks_1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct stack_trace);
} stacks_2 SEC(".maps");

/* Where a stack is walked into, per CPU: 1 KiB does not fit on the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_trace);
} stack_scratch SEC(".maps");

/* Tasks off their CPU, by thread id. LRU: a task that never runs again (it exited) ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, pid_nr_t);
	__type(value, struct pending_wait);
} pending SEC(".maps");

static const struct stack_count zero_count;

PERISCOPE_EXPORT_ENUM(profile_kind);
PERISCOPE_EXPORT_ENUM(profile_stat);

static __always_inline void count_stat(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&profile_stats, &what);

	if (n)
		*n += 1;
}

static __always_inline struct profile_control *control_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&control, &zero);
}

static __always_inline void *stack_map(__u32 map)
{
	if (map == 0)
		return &stacks_0;
	if (map == 1)
		return &stacks_1;
	return &stacks_2;
}

/*
 * The current task's kernel or user stack, stored in stack map `map` under the hash of its addresses
 * (FNV-1a, 52 bits), and that hash; or STACK_NONE (nothing to walk) or STACK_LOST (counted why).
 */
static __always_inline __u64 take_stack(void *ctx, __u32 map, __u64 flags)
{
	__u32 zero = 0;
	struct stack_trace *t = bpf_map_lookup_elem(&stack_scratch, &zero);

	if (!t)
		return STACK_LOST;
	long n = bpf_get_stack(ctx, t->ips, sizeof(t->ips), flags);

	/* -EFAULT or nothing: no stack to walk (a sample in user mode has no kernel stack) */
	if (n == -EFAULT || n == 0)
		return STACK_NONE;
	if (n < 0) {
		count_stat(STAT_STACK_ERROR);
		return STACK_LOST;
	}
	__u32 frames = n / sizeof(__u64);
	__u64 h = 0xcbf29ce484222325ULL;

	/* the scratch holds the previous stack past this one's end: zero it, the map keeps all of it */
	for (__u32 i = 0; i < PROFILE_STACK_DEPTH; i++) {
		if (i >= frames)
			t->ips[i] = 0;
		else
			h = (h ^ t->ips[i]) * 0x100000001b3ULL;
	}
	h = (h & STACK_HASH_MASK) | STACK_HASH_BIT;

	void *m = stack_map(map);
	if (bpf_map_lookup_elem(m, &h))
		return h;
	long err = bpf_map_update_elem(m, &h, t, BPF_NOEXIST);

	if (!err) {
		count_stat(STAT_STACKS_ADDED_0 + map);
		return h;
	}
	/* -EEXIST: another CPU stored the same stack first */
	if (err == -EEXIST)
		return h;
	count_stat(err == -E2BIG ? STAT_STACKS_FULL : STAT_STACK_ERROR);
	return STACK_LOST;
}

static __always_inline bool is_kthread(struct task_struct *t)
{
	return BPF_CORE_READ(t, flags) & PF_KTHREAD;
}

/* Adds `n` to a stack's count (and `ns` to its time) in the counts map the programs use now. */
static __always_inline void add(struct stack_key *key, __u64 ns, __u64 n, __u32 gen)
{
	struct stack_count *c = gen ? map_entry(&counts_1, key, &zero_count) : map_entry(&counts_0, key, &zero_count);

	if (!c)
		return;
	__sync_fetch_and_add(&c->count, n);
	if (ns)
		__sync_fetch_and_add(&c->ns, ns);
}

SEC("perf_event")
int profile_sample(struct bpf_perf_event_data *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct profile_control *c = control_get();
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (!c)
		return 0;
	/* the idle task: the CPU had nothing to run */
	if ((__u32)pid_tgid == 0) {
		count_stat(STAT_IDLE);
		return 0;
	}
	count_stat(STAT_SAMPLES);

	__u32 map = c->stack_epoch % 3;
	struct stack_key key = {
		.cgroup_id = bpf_get_current_cgroup_id(),
		.pid = pid_tgid >> 32,
		.kind = PROFILE_CPU,
		.stack_map = map,
	};
	key.kernel_stack = take_stack(ctx, map, 0);
	key.user_stack = is_kthread(task) ? STACK_NONE : take_stack(ctx, map, BPF_F_USER_STACK);
	__u32 gen = c->counts_gen;
	__u64 *n = bpf_map_lookup_elem(&samples_by_gen, &gen);

	if (n)
		*n += 1;
	add(&key, 0, 1, gen);
	return 0;
}

/* Counts a wait that ends now against the stacks it began with, `weight` times (see on_switch). */
static __always_inline void credit(struct pending_wait *w, __u32 kind, ktime_ns_t now, struct profile_control *c)
{
	if (now <= w->since)
		return;
	__u64 ns = now - w->since;

	/* Whether the thread's next waits have their stacks taken: a blocked wait decides it; a run-queue
	 * wait only when long (a thread that sleeps long and is preempted in between stays exact). */
	if (kind == PROFILE_OFFCPU || ns >= c->min_block_ns)
		w->long_wait = ns >= c->min_block_ns;
	if (ns < c->min_block_ns) {
		count_stat(STAT_SHORT);
		return;
	}
	if (!w->weight) {
		count_stat(STAT_UNSAMPLED);
		return;
	}
	struct stack_key key = {
		.cgroup_id = w->cgroup_id,
		.pid = w->pid,
		.kind = kind,
		.user_stack = w->user_stack,
		.kernel_stack = w->kernel_stack,
		.stack_map = w->stack_epoch % 3,
	};
	/* The map the stacks were in has been emptied and refilled since: the ids name other stacks now. */
	if (c->stack_epoch - w->stack_epoch > 1) {
		key.user_stack = STACK_LOST;
		key.kernel_stack = STACK_LOST;
		count_stat(STAT_EXPIRED);
	}
	add(&key, ns * w->weight, w->weight, c->counts_gen);
}

/*
 * prev_state: the state prev left the CPU in (0: runnable, it was preempted). prev is current.
 *
 * Taking the two stacks is most of the cost of a switch (~3 us here, as for libbpf-tools'
 * offcputime), and most waits are too short to count. So a thread's stacks are taken at every switch
 * once its last wait was long enough to count (sleepers, I/O and lock waiters: their waits count
 * exactly), and otherwise at one switch in `offcpu_sample` (chosen at random), whose wait, if it turns
 * out long, counts `offcpu_sample` times: an unbiased estimate for threads whose waits are mostly
 * short, at a fraction of the cost (a context-switch storm pays for one switch in `offcpu_sample`).
 */
static __always_inline void on_switch(void *ctx, struct task_struct *prev, struct task_struct *next, long prev_state)
{
	struct profile_control *c = control_get();

	if (!c || !c->offcpu)
		return;
	ktime_ns_t now = bpf_ktime_get_ns();
	pid_nr_t prev_tid = BPF_CORE_READ(prev, pid);

	/* An exiting task will not run again: nothing to wait for. Kernel threads are left out: their
	 * waits (workers idling) belong to no workload, and their stacks would fill the stack maps. */
	if (prev_tid && !(BPF_CORE_READ(prev, flags) & (PF_EXITING | PF_KTHREAD))) {
		__u32 map = c->stack_epoch % 3;
		struct pending_wait *last = bpf_map_lookup_elem(&pending, &prev_tid);
		__u32 sample = c->offcpu_sample > 1 ? c->offcpu_sample : 1;
		__u32 weight = 1;

		if (!(last && last->long_wait) && sample > 1)
			weight = bpf_get_prandom_u32() % sample == 0 ? sample : 0;
		struct pending_wait w = {
			.since = now,
			.stack_epoch = c->stack_epoch,
			.cgroup_id = bpf_get_current_cgroup_id(),
			.pid = BPF_CORE_READ(prev, tgid),
			.queued = prev_state == 0,
			.weight = weight,
			.long_wait = last ? last->long_wait : 0,
			.user_stack = STACK_NONE,
			.kernel_stack = STACK_NONE,
		};

		count_stat(STAT_SWITCHES);
		if (weight) {
			count_stat(STAT_STACKS_TAKEN);
			w.kernel_stack = take_stack(ctx, map, 0);
			w.user_stack = take_stack(ctx, map, BPF_F_USER_STACK);
		}
		if (bpf_map_update_elem(&pending, &prev_tid, &w, BPF_ANY))
			count_stat(STAT_PENDING_FULL);
	}

	pid_nr_t next_tid = BPF_CORE_READ(next, pid);
	if (!next_tid)
		return;
	struct pending_wait *w = bpf_map_lookup_elem(&pending, &next_tid);
	if (!w || !w->since)
		return;
	/* not queued: no wakeup was seen (the agent started while it slept): all of it was blocked */
	credit(w, w->queued ? PROFILE_RUNQ : PROFILE_OFFCPU, now, c);
	/* running: the entry stays, for whether its waits are long (the next switch-out reads it) */
	w->since = 0;
}

static __always_inline void on_wakeup(struct task_struct *p)
{
	struct profile_control *c = control_get();

	if (!c || !c->offcpu)
		return;
	pid_nr_t tid = BPF_CORE_READ(p, pid);
	struct pending_wait *w = bpf_map_lookup_elem(&pending, &tid);

	if (!w || !w->since || w->queued)
		return;
	ktime_ns_t now = bpf_ktime_get_ns();

	credit(w, PROFILE_OFFCPU, now, c);
	/* from now it waits for a CPU */
	w->since = now;
	w->queued = 1;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(offcpu_switch_btf, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(ctx, prev, next, switch_prev_state(ctx, prev));
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(offcpu_wakeup_btf, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}

SEC("raw_tp/sched_switch")
int BPF_PROG(offcpu_switch_raw, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	on_switch(ctx, prev, next, switch_prev_state(ctx, prev));
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(offcpu_wakeup_raw, struct task_struct *p)
{
	on_wakeup(p);
	return 0;
}
