/* network collector, kernel side.
 *
 * TCP: every socket the agent sees reach SYN_SENT (connect), LISTEN, or ESTABLISHED from SYN_RECV
 * (accept) gets socket storage: its owner (the cgroup the kernel charged the socket to when the
 * process created it, which stays right in softirq context where `current` is someone else), its
 * flow (peer, listening port, NAT target) and the counters at establishment. State changes come from
 * sock:inet_sock_set_state; at close the connection's payload bytes, retransmitted segments,
 * duration and smoothed RTT are added to its flow, and the storage goes with the socket. Open
 * connections are read live by an iterator over the socket storage (live_conns), so their bytes are
 * visible before they close, at no cost per packet. Where the kernel refuses iterators, live_conns is
 * not loaded: open connections count when they close, and opened - closed of a flow (both counted
 * here at the same state changes) is how many are open. Resets come from tcp:tcp_send_reset and
 * tcp:tcp_receive_reset.
 *
 * Payload bytes are the kernel's RFC 4898 counters less the sequence numbers that carry no data:
 * bytes_acked counts the SYN on the connecting side (taken as the base at establishment) and our FIN
 * once it is acknowledged (all of write_seq acknowledged after we sent one); bytes_received counts the
 * peer's FIN once it arrived in order (the states that follow a FIN say so, and at the close from
 * FIN_WAIT2 the SOCK_DONE flag that tcp_fin() sets).
 *
 * UDP and DNS: cgroup_skb programs on the root of the cgroup2 tree see every datagram with its
 * socket's cgroup: bytes and datagrams per flow, and DNS messages to and from port 53 copied to user
 * space, which parses them. The egress program also notes, once per TCP socket, where its first
 * packet really went after NAT (a ClusterIP DNATed to a backend, as kube-proxy does).
 *
 * Drops: skb:kfree_skb with the kernel's drop reason, per network namespace.
 */
#include "periscope.bpf.h"
#include <bpf/bpf_endian.h>
#include "network.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define DNS_PORT 53

#define ECONNRESET 104
#define ETIMEDOUT 110
#define ECONNREFUSED 111
#define EHOSTUNREACH 113
#define ENETUNREACH 101

/* TCP states (include/net/tcp_states.h) */
enum {
	ST_ESTABLISHED = 1,
	ST_SYN_SENT = 2,
	ST_SYN_RECV = 3,
	ST_FIN_WAIT1 = 4,
	ST_FIN_WAIT2 = 5,
	ST_TIME_WAIT = 6,
	ST_CLOSE = 7,
	ST_CLOSE_WAIT = 8,
	ST_LAST_ACK = 9,
	ST_LISTEN = 10,
	ST_CLOSING = 11,
};

/* sock_info.flags */
#define F_ESTABLISHED 1
#define F_FIN_IN 2
#define F_FIN_OUT 4
#define F_NAT_CHECKED 8
#define F_LISTEN 16


struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, struct tcp_flow);
} tcp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, struct udp_flow);
} udp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, __s64);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct drop_key);
	__type(value, __u64);
} drop_counts SEC(".maps");

/* 2 MiB: the budgeted events of a storm for over three seconds, while the storm's threads may starve
 * the agent's drain timer */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 << 20);
} net_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLASSES);
	__type(key, __u32);
	__type(value, struct event_budget);
} event_budget SEC(".maps");

/* Whether an event of this class may be sent now: a per-CPU budget per second (network.h). A storm of
 * 25,000 connections a second would otherwise be 100,000 events a second for user space to name. */
static __always_inline bool within_budget(__u32 class)
{
	struct event_budget *b = bpf_map_lookup_elem(&event_budget, &class);
	__u64 second = bpf_ktime_get_ns() / 1000000000;
	__u64 limit = class == CLASS_TCP ? 2000 : class == CLASS_TCP_FAIL ? 500 : 50;

	if (!b)
		return false;
	if (b->second != second) {
		b->second = second;
		b->used = 0;
	}
	if (b->used >= limit) {
		b->skipped++;
		return false;
	}
	b->used++;
	return true;
}

PERISCOPE_EXPORT(tcp_event);
PERISCOPE_EXPORT(dns_packet);
PERISCOPE_EXPORT(drop_event);
PERISCOPE_EXPORT(live_conn);
PERISCOPE_EXPORT_ENUM(tcp_result);
PERISCOPE_EXPORT_ENUM(tcp_event_kind);
PERISCOPE_EXPORT_ENUM(net_direction);
PERISCOPE_EXPORT_ENUM(event_class);

/* A ring record's first byte says what it is. */
enum net_record {
	REC_TCP = 1,
	REC_DNS = 2,
	REC_DROP = 3,
};
PERISCOPE_EXPORT_ENUM(net_record);

struct tcp_record {
	__u32 kind;
	__u32 pad;
	struct tcp_event e;
};
struct dns_record {
	__u32 kind;
	__u32 pad;
	struct dns_packet p;
	__u8 data[DNS_CAPTURE];
};
struct drop_record {
	__u32 kind;
	__u32 pad;
	struct drop_event e;
};

static const struct tcp_flow zero_tcp_flow;
static const struct udp_flow zero_udp_flow;

static __always_inline void v4_mapped(__u32 *out, __u32 v4)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = bpf_htonl(0xffff);
	out[3] = v4;
}

/* The socket's local and remote addresses, as IPv6 or IPv4-mapped. */
static __always_inline void sock_addrs(struct sock *sk, __u32 *local, __u32 *remote)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(local, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
		BPF_CORE_READ_INTO(remote, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr32);
	} else {
		v4_mapped(local, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped(remote, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	}
}

static __always_inline bool is_tcp(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return false;
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP;
}

static __always_inline struct sock_info *storage(struct sock *sk, bool create)
{
	struct sock_info *si = bpf_sk_storage_get(&socks, sk, 0, create ? BPF_SK_STORAGE_GET_F_CREATE : 0);

	/* a socket whose state could not be made (no memory) goes uncounted: count that */
	if (!si && create)
		count_drop(DROP_MAP_UPDATE);
	return si;
}

/* Fills a new socket's storage: owner, flow, start. */
static __always_inline void init_info(struct sock_info *si, struct sock *sk, __u8 direction, bool from_process)
{
	__u32 local[4], remote[4];

	sock_addrs(sk, local, remote);
	si->key.cgroup_id = sock_cgroup_id(sk);
	__builtin_memcpy(si->key.addr, remote, sizeof(remote));
	si->key.proto = IPPROTO_TCP;
	si->key.direction = direction;
	if (direction == DIR_OUTBOUND)
		si->key.port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	else
		si->key.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	si->start_ns = bpf_ktime_get_ns();
	if (from_process) {
		si->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(&si->comm, sizeof(si->comm));
	}
}

struct tcp_counts {
	__u64 sent;
	__u64 received;
	__u64 retransmits;
	__u32 srtt_us;
};

/* Payload bytes so far (see the header comment), retransmitted segments and smoothed RTT. */
static __always_inline void read_counts(struct sock *sk, struct sock_info *si, struct tcp_counts *c)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	__u32 snd_una = BPF_CORE_READ(tp, snd_una);
	__u32 write_seq = BPF_CORE_READ(tp, write_seq);

	acked -= si->base_acked;
	if ((si->flags & F_FIN_OUT) && snd_una == write_seq && acked > 0)
		acked -= 1;
	received -= si->base_received;
	if ((si->flags & F_FIN_IN) && received > 0)
		received -= 1;
	c->sent = acked;
	c->received = received;
	c->retransmits = BPF_CORE_READ(tp, total_retrans);
	c->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
}

static __always_inline __u8 failure(struct sock *sk)
{
	int err = BPF_CORE_READ(sk, sk_err);

	switch (err) {
	case 0:
		return RESULT_ABORTED;
	case ECONNREFUSED:
		return RESULT_REFUSED;
	case ETIMEDOUT:
		return RESULT_TIMEOUT;
	case ECONNRESET:
		return RESULT_RESET;
	case EHOSTUNREACH:
	case ENETUNREACH:
		return RESULT_UNREACHABLE;
	default:
		return RESULT_OTHER;
	}
}

static __always_inline void emit_tcp(struct sock *sk, struct sock_info *si, __u8 kind, __u8 result, struct tcp_counts *c, __u64 now)
{
	struct tcp_record *r;
	__u32 local[4], remote[4];

	if (!within_budget(kind == TCP_EV_FAIL ? CLASS_TCP_FAIL : CLASS_TCP))
		return;
	r = reserve_event(&net_events, sizeof(*r));
	if (!r)
		return;
	sock_addrs(sk, local, remote);
	r->kind = REC_TCP;
	r->pad = 0;
	r->e.time_ns = now;
	r->e.cgroup_id = si->key.cgroup_id;
	r->e.duration_ns = kind == TCP_EV_CLOSE ? now - si->established_ns : kind == TCP_EV_FAIL ? now - si->start_ns : 0;
	r->e.bytes_sent = c ? c->sent : 0;
	r->e.bytes_received = c ? c->received : 0;
	r->e.retransmits = c ? c->retransmits : 0;
	r->e.srtt_us = c ? c->srtt_us : 0;
	__builtin_memcpy(r->e.local_addr, local, sizeof(local));
	__builtin_memcpy(r->e.peer_addr, remote, sizeof(remote));
	__builtin_memcpy(r->e.nat_addr, si->key.nat_addr, sizeof(local));
	r->e.pid = si->pid;
	r->e.local_port = si->local_port ? si->local_port : BPF_CORE_READ(sk, __sk_common.skc_num);
	r->e.peer_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	r->e.nat_port = si->key.nat_port;
	r->e.kind = kind;
	r->e.direction = si->key.direction;
	r->e.result = result;
	__builtin_memset(r->e.pad, 0, sizeof(r->e.pad));
	__builtin_memcpy(r->e.comm, si->comm, sizeof(r->e.comm));
	submit_event(r);
}

/* A listening socket's key lives in its storage (addr: the local address, local_port: the port):
 * by the time it closes, the kernel has released the port. */
static __always_inline void listen_add(struct sock_info *si, __s64 delta)
{
	struct listen_key k = {};
	__s64 zero = 0, *n;

	k.cgroup_id = si->key.cgroup_id;
	__builtin_memcpy(k.addr, si->key.addr, sizeof(k.addr));
	k.port = si->key.local_port;
	n = map_entry(&listeners, &k, &zero);
	if (n)
		__sync_fetch_and_add(n, delta);
}

static __always_inline void on_established(struct sock *sk, int old)
{
	bool inbound = old == ST_SYN_RECV;
	struct sock_info *si = storage(sk, true);
	struct tcp_flow *f;

	if (!si)
		return;
	if (!si->start_ns) /* connected before the agent started, or accepted now */
		init_info(si, sk, inbound ? DIR_INBOUND : DIR_OUTBOUND, false);
	si->established_ns = bpf_ktime_get_ns();
	si->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	si->base_acked = BPF_CORE_READ((struct tcp_sock *)sk, bytes_acked);
	si->base_received = BPF_CORE_READ((struct tcp_sock *)sk, bytes_received);
	si->flags |= F_ESTABLISHED;
	f = map_entry(&tcp_flows, &si->key, &zero_tcp_flow);
	if (f)
		__sync_fetch_and_add(&f->opened, 1);
	emit_tcp(sk, si, TCP_EV_OPEN, RESULT_SUCCESS, 0, si->established_ns);
}

/* sk_flags before it moved into sock_common (skc_flags) */
struct sock___flags_in_sock {
	unsigned long sk_flags;
} __attribute__((preserve_access_index));

/* Whether the peer's FIN arrived in order: tcp_fin() sets SOCK_DONE, and nothing else on the way to
 * TCP_CLOSE does. An orphaned socket whose own FIN was acked leaves FIN_WAIT2 for a timewait socket
 * at once, before the peer's FIN comes: leaving FIN_WAIT2 alone does not say a FIN came in. */
static __always_inline bool fin_received(struct sock *sk)
{
	struct sock___flags_in_sock *old_sk = (void *)sk;
	unsigned long flags = 0;

	if (bpf_core_field_exists(sk->__sk_common.skc_flags))
		flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	else if (bpf_core_field_exists(old_sk->sk_flags))
		flags = BPF_CORE_READ(old_sk, sk_flags);
	return flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE));
}

static __always_inline void on_close(struct sock *sk, int old)
{
	struct sock_info *si = storage(sk, false);
	struct tcp_counts c;
	struct tcp_flow *f;
	__u64 now = bpf_ktime_get_ns();

	if (!si)
		return;
	if (si->flags & F_LISTEN) {
		listen_add(si, -1);
		bpf_sk_storage_delete(&socks, sk);
		return;
	}
	/* FIN_WAIT2 ends when the peer's FIN arrives, or (orphaned) when a timewait socket takes over */
	if (old == ST_FIN_WAIT2 && fin_received(sk))
		si->flags |= F_FIN_IN;
	read_counts(sk, si, &c);
	f = map_entry(&tcp_flows, &si->key, &zero_tcp_flow);
	if (si->flags & F_ESTABLISHED) {
		if (f) {
			__u64 ms = (now - si->established_ns) / 1000000;
			__u64 us = (now - si->established_ns) / 1000;

			__sync_fetch_and_add(&f->closed, 1);
			__sync_fetch_and_add(&f->bytes_sent, c.sent);
			__sync_fetch_and_add(&f->bytes_received, c.received);
			__sync_fetch_and_add(&f->retransmits, c.retransmits);
			__sync_fetch_and_add(&f->duration_slots[log2_slot(ms, DURATION_SLOTS - 1)], 1);
			__sync_fetch_and_add(&f->duration_sum_us, us);
			__sync_fetch_and_add(&f->rtt_slots[log2_slot(c.srtt_us, RTT_SLOTS - 1)], 1);
			__sync_fetch_and_add(&f->rtt_sum_us, c.srtt_us);
		}
		emit_tcp(sk, si, TCP_EV_CLOSE, RESULT_SUCCESS, &c, now);
	} else if (si->key.direction == DIR_OUTBOUND) {
		__u8 why = failure(sk);

		if (f) {
			if (why < RESULT_KINDS)
				__sync_fetch_and_add(&f->failed[why], 1);
			__sync_fetch_and_add(&f->retransmits, c.retransmits);
		}
		c.sent = 0;
		c.received = 0;
		emit_tcp(sk, si, TCP_EV_FAIL, why, &c, now);
	}
	bpf_sk_storage_delete(&socks, sk);
}

static __always_inline int on_state(struct sock *sk, int old, int new)
{
	struct sock_info *si;

	if (!is_tcp(sk))
		return 0;
	switch (new) {
	case ST_SYN_SENT:
		si = storage(sk, true);
		if (si && !si->start_ns)
			init_info(si, sk, DIR_OUTBOUND, true);
		return 0;
	case ST_LISTEN:
		si = storage(sk, true);
		if (si && !(si->flags & F_LISTEN)) {
			__u32 local[4], remote[4];

			sock_addrs(sk, local, remote);
			si->key.cgroup_id = sock_cgroup_id(sk);
			__builtin_memcpy(si->key.addr, local, sizeof(local));
			si->key.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
			si->start_ns = bpf_ktime_get_ns();
			si->flags |= F_LISTEN;
			listen_add(si, 1);
		}
		return 0;
	case ST_ESTABLISHED:
		if (old == ST_SYN_SENT || old == ST_SYN_RECV)
			on_established(sk, old);
		return 0;
	case ST_CLOSE_WAIT:
	case ST_CLOSING:
	case ST_TIME_WAIT:
		si = storage(sk, false);
		if (si)
			si->flags |= F_FIN_IN;
		return 0;
	case ST_FIN_WAIT1:
	case ST_LAST_ACK:
		si = storage(sk, false);
		if (si)
			si->flags |= F_FIN_OUT;
		return 0;
	case ST_CLOSE:
		on_close(sk, old);
		return 0;
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcp_state_btf, const struct sock *sk, int oldstate, int newstate)
{
	return on_state((struct sock *)sk, oldstate, newstate);
}

static __always_inline void count_reset(struct sock *sk, bool sent)
{
	struct sock_info *si;
	struct tcp_flow *f;

	if (!sk)
		return;
	si = storage(sk, false);
	if (!si || (si->flags & F_LISTEN))
		return;
	f = map_entry(&tcp_flows, &si->key, &zero_tcp_flow);
	if (!f)
		return;
	if (sent)
		__sync_fetch_and_add(&f->resets_sent, 1);
	else
		__sync_fetch_and_add(&f->resets_received, 1);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(tcp_reset_out_btf, const struct sock *sk, const struct sk_buff *skb)
{
	count_reset((struct sock *)sk, true);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(tcp_reset_in_btf, struct sock *sk)
{
	count_reset(sk, false);
	return 0;
}

/* Open connections, read at each scrape: their flow and counters so far. */
SEC("iter/bpf_sk_storage_map")
int live_conns(struct bpf_iter__bpf_sk_storage_map *ctx)
{
	struct sock *sk = ctx->sk;
	struct sock_info *si = ctx->value;
	struct live_conn out;
	struct tcp_counts c;

	if (!sk || !si || !(si->flags & F_ESTABLISHED))
		return 0;
	read_counts(sk, si, &c);
	__builtin_memcpy(&out.key, &si->key, sizeof(out.key));
	out.bytes_sent = c.sent;
	out.bytes_received = c.received;
	out.retransmits = c.retransmits;
	out.srtt_us = c.srtt_us;
	out.state = BPF_CORE_READ(sk, __sk_common.skc_state);
	bpf_seq_write(ctx->meta->seq, &out, sizeof(out));
	return 0;
}

/* ---- packets: UDP flows, DNS, NAT targets ------------------------------------------------------ */

struct packet {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u16 payload_off; /* offset of the L4 payload from the network header */
	__u16 payload_len;
	__u8 proto;
};

/* Parses the IP and TCP/UDP headers of a packet that starts at its network header. */
static __always_inline bool parse(struct __sk_buff *skb, struct packet *p)
{
	__u16 l4_off;

	if (skb->protocol == (__u32)bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return false;
		if (ip.frag_off & bpf_htons(0x1fff)) /* not the first fragment: no L4 header */
			return false;
		v4_mapped(p->saddr, ip.saddr);
		v4_mapped(p->daddr, ip.daddr);
		p->proto = ip.protocol;
		l4_off = ip.ihl * 4;
	} else if (skb->protocol == (__u32)bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return false;
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
		p->proto = ip6.nexthdr; /* extension headers are not followed */
		l4_off = sizeof(ip6);
	} else {
		return false;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr uh;

		if (bpf_skb_load_bytes(skb, l4_off, &uh, sizeof(uh)))
			return false;
		p->sport = bpf_ntohs(uh.source);
		p->dport = bpf_ntohs(uh.dest);
		p->payload_off = l4_off + sizeof(uh);
		__u16 ulen = bpf_ntohs(uh.len);

		p->payload_len = ulen > sizeof(uh) ? ulen - sizeof(uh) : 0;
		return true;
	}
	if (p->proto == IPPROTO_TCP) {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)))
			return false;
		p->sport = bpf_ntohs(ports[0]);
		p->dport = bpf_ntohs(ports[1]);
		p->payload_off = 0;
		p->payload_len = 0;
		return true;
	}
	return false;
}

static __always_inline void capture_dns(struct __sk_buff *skb, struct packet *p, bool egress, cgroup_id_t cg)
{
	struct dns_record *r;
	__u32 n = p->payload_len;

	if (n < 12) /* shorter than a DNS header */
		return;
	if (n > DNS_CAPTURE)
		n = DNS_CAPTURE;
	r = reserve_event(&net_events, sizeof(*r));
	if (!r)
		return;
	r->kind = REC_DNS;
	r->pad = 0;
	r->p.time_ns = bpf_ktime_get_ns();
	r->p.cgroup_id = cg;
	__builtin_memcpy(r->p.local_addr, egress ? p->saddr : p->daddr, 16);
	__builtin_memcpy(r->p.peer_addr, egress ? p->daddr : p->saddr, 16);
	r->p.local_port = egress ? p->sport : p->dport;
	r->p.peer_port = egress ? p->dport : p->sport;
	r->p.egress = egress;
	/* the same n, in a form whose range [1, DNS_CAPTURE] the verifier can follow */
	n = ((n - 1) & (DNS_CAPTURE - 1)) + 1;
	if (bpf_skb_load_bytes(skb, p->payload_off, r->data, n)) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return;
	}
	r->p.length = n;
	submit_event(r);
}

static __always_inline void on_udp(struct __sk_buff *skb, struct packet *p, bool egress)
{
	cgroup_id_t cg = bpf_skb_cgroup_id(skb);
	struct flow_key k = {};
	__u16 lport = egress ? p->sport : p->dport;
	__u16 rport = egress ? p->dport : p->sport;
	struct udp_flow *f;

	k.cgroup_id = cg;
	__builtin_memcpy(k.addr, egress ? p->daddr : p->saddr, 16);
	k.proto = IPPROTO_UDP;
	/* the lower port is taken for the listening one */
	if (rport < lport) {
		k.port = rport;
		k.direction = DIR_OUTBOUND;
	} else {
		k.local_port = lport;
		k.direction = DIR_INBOUND;
	}
	f = map_entry(&udp_flows, &k, &zero_udp_flow);
	if (f) {
		if (egress) {
			__sync_fetch_and_add(&f->bytes_sent, p->payload_len);
			__sync_fetch_and_add(&f->datagrams_sent, 1);
		} else {
			__sync_fetch_and_add(&f->bytes_received, p->payload_len);
			__sync_fetch_and_add(&f->datagrams_received, 1);
		}
	}
	/* the client's side of DNS: queries it sends, answers it gets */
	if ((egress && p->dport == DNS_PORT) || (!egress && p->sport == DNS_PORT))
		capture_dns(skb, p, egress, cg);
}

/* Where a TCP socket's first packet went after NAT, noted once per socket. */
static __always_inline void note_nat(struct __sk_buff *skb, struct packet *p)
{
	struct bpf_sock *bsk = skb->sk;
	struct sock_info *si;

	if (!bsk)
		return;
	bsk = bpf_sk_fullsock(bsk);
	if (!bsk)
		return;
	si = bpf_sk_storage_get(&socks, bsk, 0, 0);
	if (!si || (si->flags & (F_NAT_CHECKED | F_LISTEN)))
		return;
	si->flags |= F_NAT_CHECKED;
	if (si->key.direction != DIR_OUTBOUND)
		return;
	if (p->dport != si->key.port || p->daddr[0] != si->key.addr[0] || p->daddr[1] != si->key.addr[1] ||
	    p->daddr[2] != si->key.addr[2] || p->daddr[3] != si->key.addr[3]) {
		__builtin_memcpy(si->key.nat_addr, p->daddr, 16);
		si->key.nat_port = p->dport;
	}
}

/* Runs for every packet of the node: the socket's protocol and state (fields of the context, no
 * parsing) let all but UDP and the first packet of a connect go at once. */
static __always_inline int on_packet(struct __sk_buff *skb, bool egress)
{
	struct bpf_sock *sk = skb->sk;
	struct packet p = {};

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	if (sk->protocol == IPPROTO_UDP) {
		if (parse(skb, &p) && p.proto == IPPROTO_UDP)
			on_udp(skb, &p, egress);
	} else if (egress && sk->protocol == IPPROTO_TCP && sk->state == BPF_TCP_SYN_SENT) {
		if (parse(skb, &p) && p.proto == IPPROTO_TCP)
			note_nat(skb, &p);
	}
	return 1;
}

SEC("cgroup_skb/egress")
int packets_out(struct __sk_buff *skb)
{
	return on_packet(skb, true);
}

SEC("cgroup_skb/ingress")
int packets_in(struct __sk_buff *skb)
{
	return on_packet(skb, false);
}

/* ---- drops ------------------------------------------------------------------------------------- */

static __always_inline void on_drop(struct sk_buff *skb, __u32 reason)
{
	struct sock *sk = BPF_CORE_READ(skb, sk);
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct drop_key k = {};
	__u64 zero = 0, *n;

	k.netns = dev ? BPF_CORE_READ(dev, nd_net.net, ns.inum) : sk ? BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) : 0;
	k.reason = reason;
	n = map_entry(&drop_counts, &k, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	if (!within_budget(CLASS_DROP))
		return;

	struct drop_record *r = reserve_event(&net_events, sizeof(*r));
	if (!r)
		return;
	__builtin_memset(r, 0, sizeof(*r));
	r->kind = REC_DROP;
	r->e.time_ns = bpf_ktime_get_ns();
	r->e.cgroup_id = sk ? sock_cgroup_id(sk) : 0;
	r->e.netns = k.netns;
	r->e.reason = reason;

	/* the IP header, where the packet has one */
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (nh != (__u16)~0U && proto == ETH_P_IP) {
		struct iphdr ip;

		if (!bpf_probe_read_kernel(&ip, sizeof(ip), head + nh)) {
			v4_mapped(r->e.saddr, ip.saddr);
			v4_mapped(r->e.daddr, ip.daddr);
			r->e.proto = ip.protocol;
			if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
				__be16 ports[2];

				if (!bpf_probe_read_kernel(ports, sizeof(ports), head + nh + ip.ihl * 4)) {
					r->e.sport = bpf_ntohs(ports[0]);
					r->e.dport = bpf_ntohs(ports[1]);
				}
			}
		}
	} else if (nh != (__u16)~0U && proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;

		if (!bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh)) {
			__builtin_memcpy(r->e.saddr, &ip6.saddr, 16);
			__builtin_memcpy(r->e.daddr, &ip6.daddr, 16);
			r->e.proto = ip6.nexthdr;
		}
	}
	submit_event(r);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(drop_btf, struct sk_buff *skb, void *location)
{
	__u32 reason = kfree_skb_reason(ctx);

	if (reason == kfree_skb_consumed())
		return 0;
	on_drop(skb, reason);
	return 0;
}
