/* l7 collector, kernel side: the capture of request and response payloads for the protocol parsers in
 * user space.
 *
 * One hook, at the exit of the read/write family of system calls (read, readv, recvfrom, recvmsg,
 * write, writev, sendto, sendmsg, sendmmsg): the data has moved by then (a read's buffer is filled,
 * the return value says how much), and the system call's arguments are still in the registers it was
 * entered with, so no state has to be carried from the entry. Two ways to get there, the same code
 * behind them: tp_btf on the raw sys_exit tracepoint (every system call runs the program, which
 * returns after a compare on the syscall number; needs no tracefs), or the classic
 * syscalls:sys_exit_* tracepoints (only these nine run it; libbpf needs tracefs to attach them).
 *
 * The common path is cheap on purpose: a system call that moved nothing, or that came from a cgroup
 * not on the allow-list (`allowed_cgroups`, set by user space), returns after one hash lookup. Then
 * the fd is followed to its socket (task->files->fdt->fd[fd], the inode says socket, private_data is
 * the struct socket): TCP over IPv4 or IPv6 only. From Linux 6.2 that walk is plain loads through
 * bpf_rdonly_cast (l7_sys_exit); before, a bpf_probe_read_kernel call per field (l7_sys_exit_read),
 * which made a captured call cost half as much again. The connection's state is kept by socket (see
 * `conns`) and goes at TCP_CLOSE, so a reused fd (a new socket) is a new connection with a new id. The
 * protocol is decided once, from the first payload in either direction (HTTP/1, HTTP/2, PostgreSQL,
 * Redis); a connection that is none of them is ignored from then on, at the cost of the walk to its
 * socket and one storage lookup per system call. A captured connection ships one record per system
 * call: a header and the first `capture_bytes` bytes of the payload (readv, writev, recvmsg, sendmsg:
 * from the first L7_MAX_IOV iovecs; sendmmsg: its first message only). A full ring costs the record
 * and is counted in `drops`. When a captured connection reaches TCP_CLOSE a close record tells user
 * space it may forget it.
 *
 * x86-64 system call numbers and registers; 32-bit (ia32) system calls are not told apart.
 */
#include "periscope.bpf.h"
#include <bpf/bpf_endian.h>
#include "l7.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define TCP_CLOSE 7

/* x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl) */
#define NR_READ 0
#define NR_WRITE 1
#define NR_READV 19
#define NR_WRITEV 20
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define NR_SENDMMSG 307
#define SYSCALL_NR(regs) ((regs)->orig_ax)

/* Payload bytes per record, at most L7_MAX_CAPTURE. */
const volatile __u32 capture_bytes = L7_DEFAULT_CAPTURE;
/* ... on an HTTP/2 connection, and of any connection's first payload (before its protocol is known),
 * when more: a call of an HTTP/2 server carries many streams' frames, and a header block missed
 * costs HPACK's table, so the names of the connection's later calls. */
const volatile __u32 h2_capture_bytes = L7_MAX_CAPTURE;
/* Capture in every cgroup, the allow-list notwithstanding (tests, and a node-wide debug mode). */
const volatile bool capture_all = false;

/* Ring bytes waiting past which the reader is woken at once (user space sets a quarter of the ring):
 * below it the agent drains on its timer and records wake nobody; a burst from idle is drained
 * within milliseconds instead of filling the ring before the timer comes round. 0: never. */
const volatile __u64 wake_bytes = 0;

/* Connection ids: the first is 1. */
__u64 next_conn_id = 0;

/* Set at the first SSL call entered in an allowed process: until then no system call can be under
 * one, and the per-call lookup in tls_calls is skipped. */
__u8 tls_seen = 0;

/*
 * bpf_rdonly_cast (Linux 6.2+) makes a plain kernel address a read-only BTF pointer, whose fields are
 * then read with plain loads (the JIT guards each against a fault) instead of a bpf_probe_read_kernel
 * call per field: the walk from an fd to its socket and the socket's addresses are some twenty reads
 * a captured call. Weak: on an older kernel it is unresolved and only the programs that call it (the
 * `direct` ones) fail to load; the others read field by field as before.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
#define CAST(ptr, type) ((type *)bpf_rdonly_cast((const void *)(ptr), bpf_core_type_id_kernel(type)))

/* User-space layouts of the system calls' arguments (the x86-64 ABI; not kernel structs, so no CO-RE). */
struct u_iovec {
	__u64 base;
	__u64 len;
};
struct u_msghdr {
	__u64 name;
	__s32 namelen;
	__s32 pad;
	__u64 iov;
	__u64 iovlen;
	__u64 control;
	__u64 controllen;
	__u32 flags;
	__u32 pad2;
};
struct u_mmsghdr {
	struct u_msghdr hdr;
	__u32 len;
	__u32 pad;
};

/* The cgroups whose processes are captured (value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, cgroup_id_t);
	__type(value, __u8);
} allowed_cgroups SEC(".maps");

/*
 * Connection state. Not socket storage: bpf_sk_storage_get needs the socket as a BTF pointer, and the
 * walk from an fd gives a plain address (fdtable.fd is an array of pointers, which BTF does not type;
 * bpf_rdonly_cast is 6.2+ and its pointer is untrusted, which the helper refuses). So a hash by the
 * socket's address, with its inode number to tell a new socket at a reused address, emptied at
 * TCP_CLOSE (sock:inet_sock_set_state, which has the socket) and bounded by LRU for what never closes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct conn_key);
	__type(value, struct l7_conn);
} conns SEC(".maps");

/* Connections user space wants no more of (its parser gave up on them): the next chunk of one marks
 * it ignored in its storage and deletes it here. Only captured connections look. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} ignore_conns SEC(".maps");

/* SSL calls in progress, by thread (struct tls_call): made at an SSL_read/SSL_write entry of an
 * allowed process, taken at the function's ret site. LRU: a thread that died inside one leaves it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct tls_call);
} tls_calls SEC(".maps");

/* SSL* -> its socket or fd (struct tls_session), for an SSL_read answered from OpenSSL's own buffer,
 * with no system call under it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tls_session);
} tls_sessions SEC(".maps");

/* Where a record is built (struct l7_scratch, l7.h): an entry per possible CPU (user space sizes it),
 * indexed by the CPU's number: a per-CPU array's value may not pass 32 KiB. A program runs on one
 * CPU from start to end (migration disabled), so this is shared exactly as a per-CPU array would be. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct l7_scratch);
} scratch SEC(".maps");

/* This CPU's scratch record. */
static __always_inline struct l7_scratch *scratch_here(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&scratch, &cpu);
}

/* 16 MiB by default (--l7-ring-mib): a burst of 40,000 pipelined Redis commands from idle ships ~6 MB
 * with both ends captured, which 4 MiB held only if the agent, sharing the CPUs with the load, drained
 * during the burst. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} l7_events SEC(".maps");

/* The record of `len` bytes about to go in wakes the reader if it takes the ring past wake_bytes:
 * once per crossing, not on every record past it (a wakeup is an IPI, a VM exit on a virtual
 * machine: forced on every record it cost nginx 13-17% of its requests per CPU-second). */
static __always_inline __u64 ring_flags(__u64 len)
{
	if (!wake_bytes)
		return BPF_RB_NO_WAKEUP;
	__u64 avail = bpf_ringbuf_query(&l7_events, BPF_RB_AVAIL_DATA);
	return avail < wake_bytes && avail + len >= wake_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Whether a record of `len` bytes cannot fit in the ring now: a captured connection's chunk is then
 * dropped before its payload is copied (under overload most of a captured call's cost is the copy,
 * and the copy would be refused). Conservative: the reservation's own 8-byte header and rounding. */
static __always_inline bool ring_full_for(__u64 len)
{
	__u64 used = bpf_ringbuf_query(&l7_events, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&l7_events, BPF_RB_RING_SIZE);

	return used + len + 16 > size;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STATS);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

PERISCOPE_EXPORT(l7_chunk);
PERISCOPE_EXPORT_ENUM(l7_verdict);
PERISCOPE_EXPORT_ENUM(l7_protocol);
PERISCOPE_EXPORT_ENUM(l7_role);
PERISCOPE_EXPORT_ENUM(l7_direction);
PERISCOPE_EXPORT_ENUM(l7_syscall);
PERISCOPE_EXPORT_ENUM(l7_record_kind);
PERISCOPE_EXPORT_ENUM(l7_stat);

static __always_inline void count(enum l7_stat what)
{
	__u32 key = what;
	__u64 *n = bpf_map_lookup_elem(&stats, &key);

	if (n)
		*n += 1;
}

/* The system call behind a syscall number, or -1 for any other. */
static __always_inline int syscall_kind(long nr)
{
	switch (nr) {
	case NR_READ: return SYS_READ;
	case NR_WRITE: return SYS_WRITE;
	case NR_READV: return SYS_READV;
	case NR_WRITEV: return SYS_WRITEV;
	case NR_RECVFROM: return SYS_RECVFROM;
	case NR_SENDTO: return SYS_SENDTO;
	case NR_RECVMSG: return SYS_RECVMSG;
	case NR_SENDMSG: return SYS_SENDMSG;
	case NR_SENDMMSG: return SYS_SENDMMSG;
	default: return -1;
	}
}

static __always_inline bool is_egress(int kind)
{
	return kind == SYS_WRITE || kind == SYS_WRITEV || kind == SYS_SENDTO || kind == SYS_SENDMSG || kind == SYS_SENDMMSG;
}

/* The TCP socket behind a file descriptor of the current process (and its inode number), or NULL.
 * direct: with plain loads through bpf_rdonly_cast (a constant: each program is built for one way). */
static __always_inline struct sock *tcp_sock_of_fd(int fd, __u64 *ino, const bool direct)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *file = 0;

	if (direct) {
		/* the task is a BTF pointer already: files, fdtable, max_fds and the array are plain loads */
		struct fdtable *fdt = task->files->fdt;
		struct file **fds = fdt->fd;

		if (fd < 0 || (unsigned int)fd >= fdt->max_fds)
			return 0;
		/* an array of pointers, which BTF does not type: the one read that needs the helper */
		if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
			return 0;
		struct file *f = CAST(file, struct file);
		struct inode *inode = f->f_inode;
		if ((inode->i_mode & S_IFMT) != S_IFSOCK)
			return 0;
		*ino = inode->i_ino;
		struct socket *sock = CAST(f->private_data, struct socket);
		if (sock->type != SOCK_STREAM)
			return 0;
		struct sock *sk = sock->sk;
		__u16 family = sk->__sk_common.skc_family;
		if (family != AF_INET && family != AF_INET6)
			return 0;
		/* a plain u16 since 5.6; this path is 6.2+ */
		if (sk->sk_protocol != IPPROTO_TCP)
			return 0;
		return sk;
	}

	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);

	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	/* a socket's inode says so; only then is private_data its struct socket */
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	*ino = BPF_CORE_READ(inode, i_ino);
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	return sk;
}

static __always_inline void v4_mapped(__u32 *out, __u32 v4)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = bpf_htonl(0xffff);
	out[3] = v4;
}

static __always_inline void fill_addrs(struct l7_chunk *h, struct sock *sk, const bool direct)
{
	if (direct) {
		struct sock_common *c = &sk->__sk_common;
		__u16 family = c->skc_family;

		h->family = family;
		if (family == AF_INET6) {
			for (int i = 0; i < 4; i++) {
				h->local_addr[i] = c->skc_v6_rcv_saddr.in6_u.u6_addr32[i];
				h->remote_addr[i] = c->skc_v6_daddr.in6_u.u6_addr32[i];
			}
		} else {
			v4_mapped(h->local_addr, c->skc_rcv_saddr);
			v4_mapped(h->remote_addr, c->skc_daddr);
		}
		h->local_port = c->skc_num;
		h->remote_port = bpf_ntohs(c->skc_dport);
		return;
	}
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	h->family = family;
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&h->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(&h->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
	} else {
		v4_mapped(h->local_addr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped(h->remote_addr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	}
	h->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	h->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* Copies n bytes of user memory to data[off], both bounded for the verifier (off < L7_MAX_CAPTURE,
 * n <= L7_MAX_CAPTURE: data has room for twice that). */
static __always_inline long copy_user(__u8 *data, __u32 off, __u64 src, __u64 n)
{
	/* the compiler may know both bounds already and drop these checks, or apply them to a copy it then
	 * reloads from the stack, where an older verifier (6.1) loses them: make it forget, check here */
	barrier_var(off);
	barrier_var(n);
	off &= L7_MAX_CAPTURE - 1;
	if (n > L7_MAX_CAPTURE)
		n = L7_MAX_CAPTURE;
	return bpf_probe_read_user(data + off, n, (const void *)src);
}

/* Where a walk of iovecs stands (a bpf_loop's context, on the caller's stack). */
struct iov_walk {
	__u64 iov;
	__u64 iovcnt;
	__u32 want;
	__u32 off;
};

/* One iovec into the scratch record; 1 stops the loop. The loop's body is verified once, for any
 * count: an unrolled loop of sixteen ran the caller's verification past a million instructions. */
static long iov_step(__u32 i, void *ctx)
{
	struct iov_walk *w = ctx;
	struct l7_scratch *s = scratch_here();
	struct u_iovec v;

	if (!s || i >= w->iovcnt || w->off >= w->want)
		return 1;
	if (bpf_probe_read_user(&v, sizeof(v), (const void *)(w->iov + i * sizeof(v)))) {
		count(STAT_READ_FAILED);
		return 1;
	}
	__u64 n = v.len;
	if (n > w->want - w->off)
		n = w->want - w->off;
	if (n == 0)
		return 0;
	if (copy_user(s->data, w->off, v.base, n)) {
		count(STAT_READ_FAILED);
		return 1;
	}
	w->off += n;
	return 0;
}

/* Copies up to `want` bytes from the first L7_MAX_IOV iovecs into the scratch record; how many. */
static __always_inline __u32 copy_iovecs(__u64 iov, __u64 iovcnt, __u32 want)
{
	struct iov_walk w = { .iov = iov, .iovcnt = iovcnt, .want = want };

	bpf_loop(iovcnt < L7_MAX_IOV ? iovcnt : L7_MAX_IOV, iov_step, &w, 0);
	return w.off < want ? w.off : want;
}

/* How many payload bytes a connection's records carry. */
static __always_inline __u32 capture_size(const struct l7_conn *c)
{
	__u32 n = capture_bytes;

	if ((c->verdict == VERDICT_UNCLASSIFIED || c->protocol == PROTO_HTTP2) && h2_capture_bytes > n)
		n = h2_capture_bytes;
	return n < L7_MAX_CAPTURE ? n : L7_MAX_CAPTURE;
}

/* Bytes as little-endian words, to compare the start of a payload with a constant. */
#define W4(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)
#define W8(a, b, c, d, e, f, g, h) ((__u64)W4(a, b, c, d) | (__u64)W4(e, f, g, h) << 32)
#define LOW(w, n) ((w) & ((1ULL << (8 * (n))) - 1))

static __always_inline bool is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

/* RESP: an integer ("*3", "$5", ":-1") ending in CRLF within the first 16 bytes; where the CRLF ends. */
static __always_inline int resp_number_end(const __u8 *d, __u32 len)
{
	__u32 i = 1;

	if (len > 1 && d[1] == '-')
		i = 2;
	if (len <= i || !is_digit(d[i]))
		return 0;
	for (__u32 j = 0; j < 12; j++) {
		__u32 k = i + 1 + j;
		if (k + 1 >= len || k + 1 >= 16)
			return 0;
		if (d[k] == '\r')
			return d[k + 1] == '\n' ? k + 2 : 0;
		if (!is_digit(d[k]))
			return 0;
	}
	return 0;
}

/* RESP simple strings and errors ("+OK\r\n", "-ERR ..."): printable up to CRLF or the 16th byte. */
static __always_inline bool resp_line(const __u8 *d, __u32 len)
{
	if (len < 3)
		return false;
	for (__u32 k = 1; k < 16; k++) {
		if (k >= len)
			return true;
		if (d[k] == '\r')
			return k > 1 && k + 1 < len && d[k + 1] == '\n';
		if (d[k] < 0x20 || d[k] > 0x7e)
			return false;
	}
	return true;
}

static __always_inline __u32 be32(const __u8 *d)
{
	return (__u32)d[0] << 24 | (__u32)d[1] << 16 | (__u32)d[2] << 8 | d[3];
}

/* An HTTP/2 frame header a connection may start with when it is seen from its middle (or a server's
 * first frame, SETTINGS): a known type, a sane length, the flags and stream its type allows. */
static __always_inline bool h2_frame(const __u8 *d, __u32 len, __u64 size)
{
	if (len < 9 || d[0] != 0 || (d[5] & 0x80))
		return false;
	__u32 flen = (__u32)d[1] << 8 | d[2];
	__u8 type = d[3], flags = d[4];
	__u32 stream = be32(d + 5);

	if (flen > 16384 || 9 + flen > size)
		return false;
	switch (type) {
	case 0: /* DATA */
		return stream != 0 && !(flags & ~0x09);
	case 1: /* HEADERS */
		return stream != 0 && !(flags & ~0x2d);
	case 4: /* SETTINGS */
		return stream == 0 && flen % 6 == 0 && flags <= 1 && (flags == 0 || flen == 0);
	case 6: /* PING */
		return stream == 0 && flen == 8 && flags <= 1;
	case 8: /* WINDOW_UPDATE */
		return flen == 4 && flags == 0;
	default:
		return false;
	}
}

/*
 * The protocol of a connection from the first bytes of its first payload (d: `len` of them, the rest of
 * the first 16 zeroed; `size`: what the system call moved), and which end this socket is. PROTO_UNKNOWN
 * when none fits.
 */
static __always_inline __u8 classify(const __u8 *d, __u32 len, __u64 size, bool egress, __u8 *role)
{
	__u64 w = *(const __u64 *)d;
	__u64 w2 = *(const __u64 *)(d + 8);
	__u8 req = egress ? ROLE_CLIENT : ROLE_SERVER;
	__u8 resp = egress ? ROLE_SERVER : ROLE_CLIENT;

	*role = ROLE_UNKNOWN;
	if (len < 4)
		return PROTO_UNKNOWN;
	/* HTTP/2 with prior knowledge, or after an upgrade: the client's preface */
	if (w == W8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T') && w2 == W8('T', 'P', '/', '2', '.', '0', '\r', '\n')) {
		*role = req;
		return PROTO_HTTP2;
	}
	/* HTTP/1 request lines and status lines */
	if (LOW(w, 4) == W4('G', 'E', 'T', ' ') || LOW(w, 4) == W4('P', 'U', 'T', ' ') ||
	    LOW(w, 5) == LOW(W8('P', 'O', 'S', 'T', ' ', 0, 0, 0), 5) || LOW(w, 5) == LOW(W8('H', 'E', 'A', 'D', ' ', 0, 0, 0), 5) ||
	    LOW(w, 6) == LOW(W8('P', 'A', 'T', 'C', 'H', ' ', 0, 0), 6) || LOW(w, 6) == LOW(W8('T', 'R', 'A', 'C', 'E', ' ', 0, 0), 6) ||
	    LOW(w, 7) == LOW(W8('D', 'E', 'L', 'E', 'T', 'E', ' ', 0), 7) ||
	    w == W8('O', 'P', 'T', 'I', 'O', 'N', 'S', ' ') || w == W8('C', 'O', 'N', 'N', 'E', 'C', 'T', ' ')) {
		*role = req;
		return PROTO_HTTP1;
	}
	if (LOW(w, 7) == LOW(W8('H', 'T', 'T', 'P', '/', '1', '.', 0), 7)) {
		*role = resp;
		return PROTO_HTTP1;
	}
	/* PostgreSQL: a startup message (protocol 3.x), an SSLRequest, GSSENCRequest or CancelRequest */
	if (len >= 8) {
		__u32 mlen = be32(d), code = be32(d + 4);
		if ((code >> 16 == 3 && mlen >= 8 && mlen <= 10000) ||
		    ((code == 80877103 || code == 80877104) && mlen == 8) || (code == 80877102 && mlen == 16)) {
			*role = req;
			return PROTO_POSTGRES;
		}
	}
	/* Redis (RESP): commands are arrays of bulk strings; replies any type */
	switch (d[0]) {
	case '*': {
		int end = resp_number_end(d, len);
		if (end && ((__u32)end >= len || (end < 16 && (d[end] == '$' || d[end] == '*')))) {
			*role = req;
			return PROTO_REDIS;
		}
		break;
	}
	case '$':
	case ':':
		if (resp_number_end(d, len)) {
			*role = resp;
			return PROTO_REDIS;
		}
		break;
	case '+':
	case '-':
		if (resp_line(d, len)) {
			*role = resp;
			return PROTO_REDIS;
		}
		break;
	}
	if (h2_frame(d, len, size))
		return PROTO_HTTP2;
	return PROTO_UNKNOWN;
}

/* classify() as a function of its own, verified once rather than on every path of the caller:
 * the protocol in the low byte, the role in the next. */
__noinline int l7_classify(struct l7_scratch *s, __u32 len, __u64 size, int egress)
{
	__u8 role = ROLE_UNKNOWN;

	if (!s)
		return PROTO_UNKNOWN;
	__u8 proto = classify(s->data, len < 16 ? len : 16, size, egress, &role);
	return proto | role << 8;
}

/* The connection state of a socket, made (with a new id) on its first payload. */
static __always_inline struct l7_conn *conn_of(struct sock *sk, __u64 ino, const bool direct)
{
	struct conn_key key = { .sk = (__u64)sk };
	struct l7_conn *c = bpf_map_lookup_elem(&conns, &key);

	if (c && c->ino == ino)
		return c;
	/* none, or a freed socket's that never reached TCP_CLOSE here: a new connection */
	if (c)
		count(STAT_REUSED);
	struct l7_conn init = {
		.id = __sync_fetch_and_add(&next_conn_id, 1) + 1,
		.ino = ino,
		.cgroup_id = bpf_get_current_cgroup_id(),
		.local_port = direct ? sk->__sk_common.skc_num : BPF_CORE_READ(sk, __sk_common.skc_num),
	};
	long err = bpf_map_update_elem(&conns, &key, &init, c ? BPF_ANY : BPF_NOEXIST);
	/* EEXIST: another CPU made it between the lookup and the update; it is there now */
	if (err && err != -EEXIST) {
		count_drop(DROP_MAP_UPDATE);
		return 0;
	}
	c = bpf_map_lookup_elem(&conns, &key);
	if (c && c->id == init.id)
		count(STAT_CONNECTIONS);
	return c;
}

/* When the current thread started: with its id, who it is (ids are reused). */
static __always_inline __u64 thread_started(void)
{
	return BPF_CORE_READ(bpf_get_current_task_btf(), start_time);
}

/* Whether a connection's payload is still wanted: not ignored, by the kernel or by user space. User
 * space's list is looked at every 8th chunk of a connection, not on every call (a hash lookup each):
 * what it gave up on costs at most 7 more chunks, which it drops. */
static __always_inline bool wanted(struct l7_conn *c)
{
	if (c->verdict == VERDICT_IGNORE)
		return false;
	if (c->verdict == VERDICT_CAPTURE && (c->chunks & 7) == 0 && bpf_map_lookup_elem(&ignore_conns, &c->id)) {
		c->verdict = VERDICT_IGNORE;
		bpf_map_delete_elem(&ignore_conns, &c->id);
		count(STAT_DROPPED_BY_USER);
		return false;
	}
	return true;
}

/*
 * A connection an SSL call's nested system call was on: the call is on it, and so is its SSL*. The
 * first time, the connection starts over as a TLS one: a new id, no protocol, its stream offsets
 * counting plaintext (what the handshake's ciphertext made of it, an ignored unknown, is forgotten).
 */
static __always_inline void claim_tls(struct tls_call *call, struct l7_conn *c, struct sock *sk, __u64 ino, int fd)
{
	call->sk = (__u64)sk;
	call->ino = ino;
	call->fd = fd;
	struct tls_session sess = { .sk = (__u64)sk, .ino = ino, .fd = fd };
	bpf_map_update_elem(&tls_sessions, &call->ssl, &sess, BPF_ANY);
	if (c->tls)
		return;
	c->tls = 1;
	c->id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
	c->verdict = VERDICT_UNCLASSIFIED;
	c->protocol = PROTO_UNKNOWN;
	c->role = ROLE_UNKNOWN;
	c->bytes[DIR_EGRESS] = 0;
	c->bytes[DIR_INGRESS] = 0;
	c->chunks = 0;
	c->h2_mode[DIR_EGRESS] = H2_START;
	c->h2_mode[DIR_INGRESS] = H2_START;
	c->h2_hdr_len[DIR_EGRESS] = 0;
	c->h2_hdr_len[DIR_INGRESS] = 0;
	count(STAT_TLS);
}

/* A chunk's header but for its size and what it captured. */
static __always_inline void fill_header(struct l7_chunk *h, struct l7_conn *c, struct sock *sk, __u8 dir, int kind, int fd,
					cgroup_id_t cgroup, const bool direct)
{
	h->conn_id = c->id;
	h->cgroup_id = cgroup;
	h->time_ns = bpf_ktime_get_ns();
	h->egress_bytes = c->bytes[DIR_EGRESS];
	h->ingress_bytes = c->bytes[DIR_INGRESS];
	__u64 id = bpf_get_current_pid_tgid();
	h->tgid = id >> 32;
	h->pid = (__u32)id;
	h->fd = fd;
	fill_addrs(h, sk, direct);
	h->kind = REC_CHUNK;
	h->direction = dir;
	h->protocol = c->protocol;
	h->role = c->role;
	h->syscall = kind;
}

/* The record of `captured` bytes (in s->data) of a system call (or SSL call) that moved `size` on a
 * connection: classifies the connection on its first payload, then ships header and bytes. */
static __always_inline int ship(struct l7_conn *c, struct sock *sk, struct l7_scratch *s, __u32 captured, __u64 size, bool egress,
				int kind, int fd, cgroup_id_t cgroup, const bool direct)
{
	__u8 dir = egress ? DIR_EGRESS : DIR_INGRESS;
	if (c->verdict == VERDICT_UNCLASSIFIED) {
		int verdict = l7_classify(s, captured, size, egress);
		__u8 proto = verdict & 0xff, role = verdict >> 8;

		if (proto == PROTO_UNKNOWN) {
			c->verdict = VERDICT_IGNORE;
			count(STAT_IGNORED);
			return 0;
		}
		c->verdict = VERDICT_CAPTURE;
		c->protocol = proto;
		c->role = role;
		count(STAT_CLASSIFIED);
	}

	fill_header(&s->hdr, c, sk, dir, kind, fd, cgroup, direct);
	s->hdr.size = size;
	s->hdr.captured = captured;
	/* the stream offsets count every byte, shipped or not, so user space sees what it missed */
	c->bytes[dir & 1] += size;

	__u64 len = sizeof(struct l7_chunk) + (captured & (2 * L7_MAX_CAPTURE - 1));
	barrier_var(len); /* the check below is redundant to the compiler, not to 6.1's verifier */
	if (len > sizeof(struct l7_scratch))
		return 0;
	if (bpf_ringbuf_output(&l7_events, s, len, ring_flags(len))) {
		count_drop(DROP_RINGBUF_FULL);
		return 0;
	}
	c->chunks++;
	count(STAT_CHUNKS);
	return 0;
}

/* --- HTTP/2: frames walked, DATA payloads skipped ----------------------------------------------
 *
 * A prefix of a call cannot hold what a large message pushes past it (the trailers after 200 kB of
 * DATA, the next call's HEADERS). On an HTTP/2 connection each call's frames are walked instead:
 * every frame but DATA is shipped whole, DATA by its 9-byte header, one record per run of frames up
 * to a DATA payload, which is the record's uncaptured tail (user space skips DATA by its length
 * anyway). The walk goes on across calls from where the last one left it (the connection's h2_*
 * fields); a call not walked, or a header that makes no sense, makes the direction H2_LOST: a prefix
 * of each call from then on, as before. One bpf_loop step either loads the next iovec or reads part
 * of one frame, so iovecs need no loop of their own. */

#define H2_MAX_STEPS 8192
#define H2_PREFACE_LEN 24
#define H2_DATA 0

/* the walk's state (struct h2_walk, l7.h), one per CPU */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct h2_walk);
} h2_walks SEC(".maps");

static __always_inline struct h2_walk *h2_walk_here(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&h2_walks, &zero);
}

/* The record built so far goes, covering the stream up to call offset `end` (what it did not
 * capture is its uncaptured tail); the next starts there. */
static __always_inline void h2_flush(struct h2_walk *w, struct l7_scratch *s, __u64 end)
{
	if (!w->ship || end <= w->rec_start)
		return;
	struct l7_chunk *h = &s->hdr;
	__u64 offset = w->base + w->rec_start;
	if (w->dir == DIR_EGRESS)
		h->egress_bytes = offset;
	else
		h->ingress_bytes = offset;
	h->size = end - w->rec_start;
	h->captured = w->fill;
	__u64 len = sizeof(struct l7_chunk) + (w->fill & (2 * L7_MAX_CAPTURE - 1));
	barrier_var(len);
	if (len <= sizeof(struct l7_scratch)) {
		if (bpf_ringbuf_output(&l7_events, s, len, ring_flags(len))) {
			count_drop(DROP_RINGBUF_FULL);
		} else {
			w->records++;
			count(STAT_CHUNKS);
		}
	}
	w->rec_start = end;
	w->fill = 0;
}

/* Past n bytes of the current segment. */
static __always_inline void h2_advance(struct h2_walk *w, __u64 n)
{
	w->seg_addr += n;
	w->seg_left -= n;
	w->done += n;
}

/* n bytes of the current segment into the record being built (room made first). */
static __always_inline bool h2_copy(struct h2_walk *w, struct l7_scratch *s, __u64 n)
{
	if (!w->ship)
		return true;
	if (copy_user(s->data, w->fill, w->seg_addr, n)) {
		count(STAT_READ_FAILED);
		return false;
	}
	w->fill += n;
	return true;
}

/* One step of the walk; 1 ends it (the call walked, or the walk lost). */
static long h2_step(__u32 i, void *ctx)
{
	struct h2_walk *w = h2_walk_here();
	struct l7_scratch *s = scratch_here();

	if (!w || !s || w->mode == H2_LOST || w->done >= w->size)
		return 1;
	if (w->seg_left == 0) {
		struct u_iovec v;

		if (!w->iov || w->seg_idx >= w->iovcnt || w->seg_idx >= L7_MAX_IOV ||
		    bpf_probe_read_user(&v, sizeof(v), (const void *)(w->iov + w->seg_idx * sizeof(v)))) {
			w->mode = H2_LOST;
			return 1;
		}
		w->seg_idx++;
		w->seg_addr = v.base;
		w->seg_left = v.len < w->size - w->done ? v.len : w->size - w->done;
		return 0;
	}
	__u64 n;
	switch (w->mode) {
	case H2_START:
	case H2_UNSURE: {
		/* the client's preface first, on the stream that has one (then frames) */
		__u64 head = 0;
		if (w->seg_left >= 8 && bpf_probe_read_user(&head, sizeof(head), (const void *)w->seg_addr) == 0 &&
		    head == W8('P', 'R', 'I', ' ', '*', ' ', 'H', 'T')) {
			w->mode = H2_COPY;
			w->left = H2_PREFACE_LEN;
		} else if (w->mode == H2_START) {
			w->mode = H2_HEADER;
			w->hdr_len = 0;
		} else {
			w->mode = H2_LOST;
			return 1;
		}
		return 0;
	}
	case H2_HEADER: {
		__u32 have = w->hdr_len;

		if (have > 8) {
			w->mode = H2_LOST;
			return 1;
		}
		/* a header is never split between two records */
		if (w->ship && have == 0 && w->fill + 9 > L7_MAX_CAPTURE)
			h2_flush(w, s, w->done);
		n = 9 - have;
		if (n > w->seg_left)
			n = w->seg_left;
		barrier_var(n); /* checked here, next to its use: 6.1's verifier loses bounds kept on the stack */
		if (n > 9 || n == 0)
			return 1;
		if (bpf_probe_read_user(w->hdr + (have & 15), n, (const void *)w->seg_addr) || !h2_copy(w, s, n)) {
			w->mode = H2_LOST;
			return 1;
		}
		h2_advance(w, n);
		w->hdr_len = have + n;
		if (w->hdr_len < 9)
			return 0;
		__u32 len = (__u32)w->hdr[0] << 16 | (__u32)w->hdr[1] << 8 | w->hdr[2];
		/* a type past the known extensions, or the stream id's reserved bit: not a frame header */
		if (w->hdr[3] > 0x10 || (w->hdr[5] & 0x80)) {
			w->mode = H2_LOST;
			return 1;
		}
		__u8 type = w->hdr[3];
		w->hdr_len = 0;
		w->left = len;
		if (len == 0) {
			w->mode = H2_HEADER;
		} else if (type == H2_DATA) {
			/* the record ends with this header; the payload is its uncaptured tail */
			__u64 end = w->done + len;
			h2_flush(w, s, end < w->size ? end : w->size);
			w->mode = H2_SKIP;
		} else {
			w->mode = H2_COPY;
		}
		return 0;
	}
	case H2_COPY:
		n = w->left < w->seg_left ? w->left : w->seg_left;
		if (w->ship) {
			if (w->fill >= L7_MAX_CAPTURE)
				h2_flush(w, s, w->done);
			__u64 room = L7_MAX_CAPTURE - w->fill;
			if (n > room)
				n = room;
		}
		if (!h2_copy(w, s, n)) {
			w->mode = H2_LOST;
			return 1;
		}
		h2_advance(w, n);
		w->left -= n;
		if (w->left == 0)
			w->mode = H2_HEADER;
		return 0;
	case H2_SKIP:
		n = w->left < w->seg_left ? w->left : w->seg_left;
		h2_advance(w, n);
		w->left -= n;
		if (w->left == 0)
			w->mode = H2_HEADER;
		return 0;
	}
	w->mode = H2_LOST;
	return 1;
}

/* A connection just found to be HTTP/2 by its first call, in direction `dir`: by the client's preface
 * (a role known), the other direction starts at its beginning too; by a frame, it may be joined
 * mid-stream, and the other direction is walked only if it starts with the preface. */
static __always_inline void h2_classified(struct l7_conn *c, __u8 dir)
{
	c->h2_mode[(dir ^ 1) & 1] = c->role == ROLE_UNKNOWN ? H2_UNSURE : H2_START;
}

/*
 * Walks one call of an HTTP/2 connection's direction (a buffer at `buf`, or `iovcnt` iovecs at
 * `iov`) from where the last call left it, shipping its frames when `ship` (the scratch record's
 * header is filled but for offsets and sizes); the connection's walk state and byte count follow.
 */
static __always_inline bool h2_walk_call(struct l7_conn *c, __u8 dir, __u64 buf, __u64 iov, __u64 iovcnt, __u64 size, bool ship)
{
	struct h2_walk *w = h2_walk_here();
	if (!w)
		return false;
	dir &= 1;
	w->iov = iov;
	w->iovcnt = iovcnt;
	w->seg_addr = buf;
	w->seg_left = iov ? 0 : size;
	w->done = 0;
	w->size = size;
	w->base = c->bytes[dir];
	w->rec_start = 0;
	*(__u64 *)w->hdr = c->h2_hdr[dir];
	w->seg_idx = 0;
	w->left = c->h2_left[dir];
	w->fill = 0;
	w->records = 0;
	w->mode = c->h2_mode[dir];
	w->hdr_len = c->h2_hdr_len[dir];
	w->dir = dir;
	w->ship = ship;
	/* a call that starts inside a DATA payload: its first bytes are in no record */
	if (w->mode == H2_SKIP)
		w->rec_start = w->left < size ? w->left : size;
	bpf_loop(H2_MAX_STEPS, h2_step, 0, 0);
	if (w->done < w->size)
		w->mode = H2_LOST;
	/* lost before it shipped anything (no preface where one had to be, a header that cannot be
	 * one): the call goes as a prefix, not at all */
	if (w->mode == H2_LOST && w->records == 0) {
		c->h2_mode[dir] = H2_LOST;
		return false;
	}
	struct l7_scratch *s = scratch_here();
	if (s && w->mode != H2_LOST)
		h2_flush(w, s, size);
	c->h2_mode[dir] = w->mode;
	c->h2_left[dir] = w->left;
	c->h2_hdr_len[dir] = w->hdr_len;
	c->h2_hdr[dir] = *(__u64 *)w->hdr;
	if (ship) {
		c->bytes[dir] += size;
		c->chunks += w->records;
	}
	return true;
}

/* Ships a call of a classified HTTP/2 connection frame by frame; false: it goes as a prefix (the
 * direction's walk is lost, or is lost now). sendmmsg's other messages would not be walked. */
static __always_inline bool h2_ship(struct l7_conn *c, struct sock *sk, __u8 dir, int kind, int fd, cgroup_id_t cgroup,
				   const bool direct, __u64 buf, __u64 iov, __u64 iovcnt, __u64 size)
{
	dir &= 1;
	if (c->verdict != VERDICT_CAPTURE || c->protocol != PROTO_HTTP2 || c->h2_mode[dir] == H2_LOST)
		return false;
	if (kind == SYS_SENDMMSG) {
		c->h2_mode[dir] = H2_LOST;
		return false;
	}
	struct l7_scratch *s = scratch_here();
	if (!s)
		return false;
	fill_header(&s->hdr, c, sk, dir, kind, fd, cgroup, direct);
	return h2_walk_call(c, dir, buf, iov, iovcnt, size, true);
}

/* A connection's first call went as a prefix, classifying it: if HTTP/2, the walk starts past it. */
static __always_inline void h2_after_first(struct l7_conn *c, __u8 dir, int kind, __u64 buf, __u64 iov, __u64 iovcnt, __u64 size)
{
	dir &= 1;
	if (c->verdict != VERDICT_CAPTURE || c->protocol != PROTO_HTTP2)
		return;
	h2_classified(c, dir);
	if (kind == SYS_SENDMMSG)
		c->h2_mode[dir] = H2_LOST;
	else
		h2_walk_call(c, dir, buf, iov, iovcnt, size, false);
}

static __always_inline int capture(struct pt_regs *regs, int kind, long ret, const bool direct)
{
	cgroup_id_t cgroup = bpf_get_current_cgroup_id();

	if (!capture_all && !bpf_map_lookup_elem(&allowed_cgroups, &cgroup))
		return 0;

	int fd = (int)PT_REGS_PARM1_SYSCALL(regs);
	__u64 arg2 = PT_REGS_PARM2_SYSCALL(regs);
	__u64 arg3 = PT_REGS_PARM3_SYSCALL(regs);
	/* a peek is read again later: capture it then */
	if ((kind == SYS_RECVFROM && (PT_REGS_PARM4_SYSCALL(regs) & MSG_PEEK)) || (kind == SYS_RECVMSG && (arg3 & MSG_PEEK)))
		return 0;

	__u64 ino = 0;
	struct sock *sk = tcp_sock_of_fd(fd, &ino, direct);
	if (!sk)
		return 0;
	struct l7_conn *c = conn_of(sk, ino, direct);
	if (!c)
		return 0;
	/* under an SSL call the bytes are ciphertext: they only say which connection the call is on */
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *call = tls_seen ? bpf_map_lookup_elem(&tls_calls, &id) : 0;
	if (call && call->started != thread_started()) {
		/* left by a thread that died inside an SSL call, whose id is now another's */
		bpf_map_delete_elem(&tls_calls, &id);
		call = 0;
	}
	if (call) {
		claim_tls(call, c, sk, ino, fd);
		return 0;
	}
	if (c->tls || !wanted(c))
		return 0;

	__u64 size = ret;
	__u8 dir = is_egress(kind) ? DIR_EGRESS : DIR_INGRESS;
	/* where the payload is: one buffer, or iovecs */
	__u64 buf = 0, iov = 0, iovcnt = 0;
	switch (kind) {
	case SYS_READ:
	case SYS_WRITE:
	case SYS_RECVFROM:
	case SYS_SENDTO:
		buf = arg2;
		break;
	case SYS_READV:
	case SYS_WRITEV:
		iov = arg2;
		iovcnt = arg3;
		break;
	case SYS_RECVMSG:
	case SYS_SENDMSG:
	case SYS_SENDMMSG: {
		/* sendmmsg returns how many messages went: its first message stands for it */
		struct u_mmsghdr m;
		__u64 len = kind == SYS_SENDMMSG ? sizeof(struct u_mmsghdr) : sizeof(struct u_msghdr);

		if (bpf_probe_read_user(&m, len, (const void *)arg2)) {
			count(STAT_READ_FAILED);
			return 0;
		}
		if (kind == SYS_SENDMMSG)
			size = m.len;
		iov = m.hdr.iov;
		iovcnt = m.hdr.iovlen;
		break;
	}
	default:
		return 0;
	}

	if (h2_ship(c, sk, dir, kind, fd, cgroup, direct, buf, iov, iovcnt, size))
		return 0;

	__u32 want = capture_size(c);
	/* a classified connection's chunk that the ring cannot take now is dropped before the copy; its
	 * bytes still count in the stream offset, so user space sees the gap as for any lost record (an
	 * unclassified one is copied: its first bytes decide the protocol) */
	if (c->verdict == VERDICT_CAPTURE && ring_full_for(sizeof(struct l7_chunk) + (size < want ? size : want))) {
		c->bytes[dir & 1] += size;
		count_drop(DROP_RINGBUF_FULL);
		return 0;
	}

	struct l7_scratch *s = scratch_here();
	if (!s)
		return 0;
	__u32 captured = 0;
	/* what classification reads past a short payload must be zeros, not the last record's bytes */
	*(__u64 *)s->data = 0;
	*(__u64 *)(s->data + 8) = 0;
	if (iov) {
		captured = copy_iovecs(iov, iovcnt, size < want ? size : want);
	} else {
		captured = size < want ? size : want;
		if (copy_user(s->data, 0, buf, captured)) {
			count(STAT_READ_FAILED);
			return 0;
		}
	}

	bool first = c->verdict == VERDICT_UNCLASSIFIED;
	ship(c, sk, s, captured, size, dir == DIR_EGRESS, kind, fd, cgroup, direct);
	if (first)
		h2_after_first(c, dir, kind, buf, iov, iovcnt, size);
	return 0;
}

/* Every system call's exit: the nine of the family pass, the rest return at the first compare. */
static __always_inline int sys_exit(struct pt_regs *regs, long ret, const bool direct)
{
	if (ret <= 0)
		return 0;
	int kind = syscall_kind(SYSCALL_NR(regs));
	if (kind < 0)
		return 0;
	return capture(regs, kind, ret, direct);
}

/* Linux 6.2+: the socket and its addresses read with plain loads. */
SEC("tp_btf/sys_exit")
int BPF_PROG(l7_sys_exit, struct pt_regs *regs, long ret)
{
	return sys_exit(regs, ret, true);
}

/* Before 6.2 (no bpf_rdonly_cast): read field by field with bpf_probe_read_kernel. */
SEC("tp_btf/sys_exit")
int BPF_PROG(l7_sys_exit_read, struct pt_regs *regs, long ret)
{
	return sys_exit(regs, ret, false);
}

/* The classic syscall tracepoints: only the nine run. The registers are the task's saved user ones. */
#define SYS_EXIT_TP(name, kind)                                                        \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                    \
	int l7_exit_##name(struct trace_event_raw_sys_exit *ctx)                      \
	{                                                                             \
		long ret = ctx->ret;                                                  \
		if (ret <= 0)                                                         \
			return 0;                                                     \
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf()); \
		return capture(regs, kind, ret, false);                               \
	}

SYS_EXIT_TP(read, SYS_READ)
SYS_EXIT_TP(write, SYS_WRITE)
SYS_EXIT_TP(readv, SYS_READV)
SYS_EXIT_TP(writev, SYS_WRITEV)
SYS_EXIT_TP(recvfrom, SYS_RECVFROM)
SYS_EXIT_TP(sendto, SYS_SENDTO)
SYS_EXIT_TP(recvmsg, SYS_RECVMSG)
SYS_EXIT_TP(sendmsg, SYS_SENDMSG)
SYS_EXIT_TP(sendmmsg, SYS_SENDMMSG)

/* A connection closes: its state goes, and a captured one's close is shipped so user space can
 * forget it too. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(l7_sock_state, const struct sock *sk, int oldstate, int newstate)
{
	if (newstate != TCP_CLOSE)
		return 0;
	struct conn_key key = { .sk = (__u64)sk };
	struct l7_conn *c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return 0;
	if (c->verdict != VERDICT_CAPTURE || c->closed) {
		bpf_map_delete_elem(&conns, &key);
		return 0;
	}
	c->closed = 1;
	struct l7_chunk *h = reserve_event(&l7_events, sizeof(*h));
	if (!h) {
		bpf_map_delete_elem(&conns, &key);
		return 0;
	}
	__builtin_memset(h, 0, sizeof(*h));
	h->conn_id = c->id;
	h->cgroup_id = c->cgroup_id;
	h->time_ns = bpf_ktime_get_ns();
	h->egress_bytes = c->bytes[DIR_EGRESS];
	h->ingress_bytes = c->bytes[DIR_INGRESS];
	h->fd = -1;
	/* the tracepoint's socket is a BTF pointer on every kernel: plain loads */
	fill_addrs(h, (struct sock *)sk, true);
	h->local_port = c->local_port;
	h->kind = REC_CLOSE;
	h->protocol = c->protocol;
	h->role = c->role;
	bpf_ringbuf_submit(h, ring_flags(sizeof(*h)));
	count(STAT_CLOSES);
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

/*
 * TLS plaintext from OpenSSL (libssl 1.1 and 3), attached by user space to each libssl it finds
 * (tls.ts), once per library file. No uretprobes: each of SSL_read, SSL_read_ex, SSL_write and
 * SSL_write_ex gets an entry probe, which notes the call and its buffer per thread, and a plain uprobe
 * at each of its `ret` instructions (found by decoding the library's code, elf.ts), where rax holds
 * the return value and the buffer holds the plaintext. Which connection the call is on comes from the
 * system call it makes underneath (capture() sees the call and gives it the socket instead of
 * shipping ciphertext); a read answered from OpenSSL's buffer makes none, so the SSL*'s last socket
 * (or the fd SSL_set_fd gave it) stands in.
 */
static __always_inline int ssl_enter(struct pt_regs *ctx, bool egress, bool ex)
{
	cgroup_id_t cgroup = bpf_get_current_cgroup_id();

	if (!capture_all && !bpf_map_lookup_elem(&allowed_cgroups, &cgroup))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call call = {
		.ssl = PT_REGS_PARM1(ctx),
		.buf = PT_REGS_PARM2(ctx),
		.size_out = ex ? PT_REGS_PARM4(ctx) : 0,
		.started = thread_started(),
		.fd = -1,
		.egress = egress,
	};
	bpf_map_update_elem(&tls_calls, &id, &call, BPF_ANY);
	if (!tls_seen)
		tls_seen = 1;
	count(STAT_TLS_CALLS);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(l7_ssl_read) { return ssl_enter(ctx, false, false); }
SEC("uprobe")
int BPF_KPROBE(l7_ssl_read_ex) { return ssl_enter(ctx, false, true); }
SEC("uprobe")
int BPF_KPROBE(l7_ssl_write) { return ssl_enter(ctx, true, false); }
SEC("uprobe")
int BPF_KPROBE(l7_ssl_write_ex) { return ssl_enter(ctx, true, true); }

/* SSL_set_fd(ssl, fd): the fd of an SSL* before any system call under it says so. */
SEC("uprobe")
int BPF_KPROBE(l7_ssl_set_fd, __u64 ssl, int fd)
{
	cgroup_id_t cgroup = bpf_get_current_cgroup_id();

	if (!capture_all && !bpf_map_lookup_elem(&allowed_cgroups, &cgroup))
		return 0;
	struct tls_session sess = { .fd = fd };
	bpf_map_update_elem(&tls_sessions, &ssl, &sess, BPF_ANY);
	return 0;
}

/* At a ret of one of the four: the call's plaintext, shipped as a chunk of its connection. */
SEC("uprobe")
int BPF_KPROBE(l7_ssl_ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *found = bpf_map_lookup_elem(&tls_calls, &id);
	if (!found)
		return 0;
	struct tls_call call = *found;
	bpf_map_delete_elem(&tls_calls, &id);
	if (call.started != thread_started())
		return 0;

	long rc = PT_REGS_RC(ctx);
	__u64 size = 0;
	if (call.size_out) {
		if (rc != 1 || bpf_probe_read_user(&size, sizeof(size), (const void *)call.size_out)) {
			if (rc == 1)
				count(STAT_READ_FAILED);
			return 0;
		}
	} else if ((int)rc > 0) {
		size = (__u32)(int)rc;
	}
	if (size == 0)
		return 0;

	/* the connection: the nested system call's, else the SSL*'s last one, else its fd's */
	struct sock *sk = (struct sock *)call.sk;
	__u64 ino = call.ino;
	int fd = call.fd;
	if (!sk) {
		struct tls_session *sess = bpf_map_lookup_elem(&tls_sessions, &call.ssl);
		if (!sess) {
			count(STAT_TLS_NO_CONN);
			return 0;
		}
		sk = (struct sock *)sess->sk;
		ino = sess->ino;
		fd = sess->fd;
	}
	struct l7_conn *c = 0;
	if (sk) {
		/* a socket seen before: its state must still be that socket's */
		struct conn_key key = { .sk = (__u64)sk };
		c = bpf_map_lookup_elem(&conns, &key);
		if (c && c->ino != ino)
			c = 0;
	} else if (fd >= 0) {
		sk = tcp_sock_of_fd(fd, &ino, false);
		if (sk)
			c = conn_of(sk, ino, false);
	}
	if (!c) {
		count(STAT_TLS_NO_CONN);
		return 0;
	}
	if (!c->tls) {
		claim_tls(&call, c, sk, ino, fd);
	}
	if (!wanted(c))
		return 0;

	struct l7_scratch *s = scratch_here();
	if (!s)
		return 0;
	__u8 dir = call.egress ? DIR_EGRESS : DIR_INGRESS;
	int kind = call.egress ? SYS_SSL_WRITE : SYS_SSL_READ;
	cgroup_id_t cgroup = bpf_get_current_cgroup_id();
	if (h2_ship(c, sk, dir, kind, fd, cgroup, false, call.buf, 0, 0, size))
		return 0;
	__u32 want = capture_size(c);
	__u32 captured = size < want ? size : want;
	*(__u64 *)s->data = 0;
	*(__u64 *)(s->data + 8) = 0;
	if (copy_user(s->data, 0, call.buf, captured)) {
		count(STAT_READ_FAILED);
		return 0;
	}
	bool first = c->verdict == VERDICT_UNCLASSIFIED;
	ship(c, sk, s, captured, size, call.egress, kind, fd, cgroup, false);
	if (first)
		h2_after_first(c, dir, kind, call.buf, 0, 0, size);
	return 0;
}
