/* network collector: TCP connections, UDP flows, DNS packets and packet drops. Layouts shared with
 * user space through the object's BTF (src/kernel/codegen.ts). */
#ifndef PERISCOPE_NETWORK_H
#define PERISCOPE_NETWORK_H

#include "periscope.h"

/* log2 slots: connection duration in milliseconds, smoothed RTT in microseconds */
#define DURATION_SLOTS 24
#define RTT_SLOTS 24
/* bytes of a DNS message copied to user space (a UDP DNS message without EDNS fits in 512) */
#define DNS_CAPTURE 512

enum net_direction {
	DIR_OUTBOUND = 0, /* we connected, or sent the first datagram to a listening port */
	DIR_INBOUND = 1,  /* the peer connected to a port we listen on */
};

/* How a connection attempt ended. RESULT_ABORTED: closed by its own process before an answer. */
enum tcp_result {
	RESULT_SUCCESS = 0,
	RESULT_REFUSED = 1,
	RESULT_TIMEOUT = 2,
	RESULT_RESET = 3,
	RESULT_UNREACHABLE = 4,
	RESULT_ABORTED = 5,
	RESULT_OTHER = 6,
	RESULT_KINDS = 7,
};

enum tcp_event_kind {
	TCP_EV_OPEN = 0,
	TCP_EV_CLOSE = 1,
	TCP_EV_FAIL = 2,
};

/* Who a socket talks to, from its owner's side. Addresses are IPv6 or IPv4-mapped IPv6
 * (::ffff:a.b.c.d), as 16 bytes in network order. Only a listening port is kept: the other side's
 * ephemeral port would make every connection its own flow. */
struct flow_key {
	cgroup_id_t cgroup_id; /* the socket's owner (the cgroup of the process that created it) */
	__u32 addr[4];         /* the peer the socket names */
	__u32 nat_addr[4];     /* where its packets went after DNAT (a ClusterIP's backend); 0 if none */
	__u16 port;            /* the peer's port when the peer listens (outbound), else 0 */
	__u16 local_port;      /* our port when we listen (inbound), else 0 */
	__u16 nat_port;
	__u8 proto;            /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 direction;        /* enum net_direction */
};

/* TCP totals per flow, from connections that ended (open ones are read live, see struct live_conn;
 * without the iterator, opened - closed is how many are open). */
struct tcp_flow {
	__u64 opened;
	__u64 failed[RESULT_KINDS]; /* by enum tcp_result; [RESULT_SUCCESS] unused */
	__u64 closed;
	__u64 bytes_sent; /* payload the application wrote and the peer acknowledged */
	__u64 bytes_received; /* payload that arrived in order for the application */
	__u64 retransmits; /* segments, as the kernel's RetransSegs counts them */
	__u64 resets_sent;
	__u64 resets_received;
	__u64 duration_slots[DURATION_SLOTS]; /* slot i: [2^i, 2^(i+1)) ms; slot 0 also < 1 ms */
	__u64 duration_sum_us;
	__u64 rtt_slots[RTT_SLOTS]; /* slot i: [2^i, 2^(i+1)) us of smoothed RTT at close */
	__u64 rtt_sum_us;
};

struct udp_flow {
	__u64 bytes_sent; /* UDP payload */
	__u64 bytes_received;
	__u64 datagrams_sent;
	__u64 datagrams_received;
};

/* An open connection as the iterator reads it: its flow and its counters so far. */
struct live_conn {
	struct flow_key key;
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 retransmits;
	__u32 srtt_us;
	__u32 state;
};

/* A listening socket: its address and port, per owner. Value: how many sockets listen there. */
struct listen_key {
	cgroup_id_t cgroup_id;
	__u32 addr[4];
	__u16 port;
	__u16 pad1;
	__u32 pad2;
};

/* Packets the kernel dropped, per network namespace (inode) and reason (enum skb_drop_reason of the
 * running kernel; 0 where the kernel does not say). */
struct drop_key {
	__u32 netns;
	__u32 reason;
};

struct tcp_event {
	ktime_ns_t time_ns;
	cgroup_id_t cgroup_id;
	__u64 duration_ns; /* close: since the connection was established */
	__u64 bytes_sent;
	__u64 bytes_received;
	__u64 retransmits;
	__u32 local_addr[4];
	__u32 peer_addr[4];
	__u32 nat_addr[4];
	__u32 srtt_us;
	pid_nr_t pid; /* outbound: the process that connected; inbound: 0 (the kernel accepts in softirq) */
	__u16 local_port;
	__u16 peer_port;
	__u16 nat_port;
	__u8 kind;      /* enum tcp_event_kind */
	__u8 direction; /* enum net_direction */
	__u8 result;    /* enum tcp_result */
	__u8 pad[7];
	char comm[TASK_COMM_SIZE];
};

/* A DNS message seen by its client: a query it sent (egress to port 53) or an answer it received
 * (ingress from port 53). DNS_CAPTURE bytes of the message follow the header in the record. */
struct dns_packet {
	ktime_ns_t time_ns;
	cgroup_id_t cgroup_id;
	__u32 local_addr[4];
	__u32 peer_addr[4];
	__u16 local_port;
	__u16 peer_port;
	__u16 length;   /* bytes of the message copied */
	__u16 egress;   /* 1: a query leaving, 0: an answer arriving */
};

struct drop_event {
	ktime_ns_t time_ns;
	cgroup_id_t cgroup_id; /* the owner of the packet's socket, 0 if it had none */
	__u32 netns;
	__u32 reason;
	__u32 saddr[4]; /* from the packet's IP header, when it had one */
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* Socket storage of a TCP socket the collector follows (flags: see network.bpf.c). */
struct sock_info {
	struct flow_key key;
	ktime_ns_t start_ns;       /* connect, or establishment for an accepted connection */
	ktime_ns_t established_ns;
	__u64 base_acked;          /* bytes_acked at establishment: the SYN, on the connecting side */
	__u64 base_received;
	pid_nr_t pid;
	__u16 flags;
	__u16 local_port; /* kept: the kernel has released the port by the time the socket closes */
	char comm[TASK_COMM_SIZE];
};

/* Events are for what is rare: each class has a budget per CPU per second, past which its events are
 * not sent but counted (`skipped`). The metrics stay exact whatever the rate. */
enum event_class {
	CLASS_TCP = 0,      /* tcp_open, tcp_close: 2000 per CPU per second */
	CLASS_TCP_FAIL = 1, /* tcp_fail: 500 */
	CLASS_DROP = 2,     /* packet_drop: 50 */
	CLASSES = 3,
};

struct event_budget {
	__u64 second;
	__u64 used;
	__u64 skipped;
};

#endif
