/* l7 collector, capture half: the records the kernel ships for request/response parsing in user space,
 * the per-connection state it keeps in socket storage, and its counters. Layouts shared with user
 * space through the object's BTF (src/kernel/codegen.ts). */
#ifndef PERISCOPE_L7_H
#define PERISCOPE_L7_H

#include "periscope.h"

/* Most payload bytes a record carries (the `capture_bytes` and `h2_capture_bytes` knobs say how many
 * of them). A power of two: the copy into the record is bounded by masks the verifier can follow. */
#define L7_MAX_CAPTURE 16384
/* Payload bytes a record carries by default, but on HTTP/2 connections */
#define L7_DEFAULT_CAPTURE 1024
/* iovecs of one readv/writev/recvmsg/sendmsg that are copied from, at most */
#define L7_MAX_IOV 64

/* What the kernel decided about a connection from the first bytes it saw. */
enum l7_verdict {
	VERDICT_UNCLASSIFIED = 0, /* no payload seen yet */
	VERDICT_CAPTURE = 1,      /* a supported protocol: every chunk is shipped */
	VERDICT_IGNORE = 2,       /* anything else, or user space asked: nothing more is shipped */
};

enum l7_protocol {
	PROTO_UNKNOWN = 0,
	PROTO_HTTP1 = 1,
	PROTO_HTTP2 = 2,
	PROTO_POSTGRES = 3,
	PROTO_REDIS = 4,
};

/* Which end of the connection this socket is, when the first bytes say it (a request leaving means
 * a client); UNKNOWN when they do not (an HTTP/2 SETTINGS frame is sent by both ends). */
enum l7_role {
	ROLE_UNKNOWN = 0,
	ROLE_CLIENT = 1,
	ROLE_SERVER = 2,
};

enum l7_direction {
	DIR_EGRESS = 0,  /* written by this process (write, writev, sendto, sendmsg, sendmmsg) */
	DIR_INGRESS = 1, /* read by this process (read, readv, recvfrom, recvmsg) */
};

/* The system call a chunk came from. */
enum l7_syscall {
	SYS_READ = 0,
	SYS_WRITE = 1,
	SYS_READV = 2,
	SYS_WRITEV = 3,
	SYS_RECVFROM = 4,
	SYS_SENDTO = 5,
	SYS_RECVMSG = 6,
	SYS_SENDMSG = 7,
	SYS_SENDMMSG = 8,
	SYS_SSL_READ = 9,   /* plaintext from OpenSSL's SSL_read or SSL_read_ex (their ret sites) */
	SYS_SSL_WRITE = 10, /* plaintext to SSL_write or SSL_write_ex */
	SYS_KINDS = 11,
};

enum l7_record_kind {
	REC_CHUNK = 0, /* a payload prefix: `captured` bytes follow the header */
	REC_CLOSE = 1, /* a captured connection reached TCP_CLOSE: its state in user space can go */
};

/* Counters of what the capture did, per CPU (index of the `stats` array). */
enum l7_stat {
	STAT_CONNECTIONS = 0,  /* connections given state (their first payload in an allowed cgroup) */
	STAT_CLASSIFIED = 1,   /* of which a supported protocol was recognised */
	STAT_IGNORED = 2,      /* of which nothing was recognised: ignored from then on */
	STAT_CHUNKS = 3,       /* chunk records shipped */
	STAT_READ_FAILED = 4,  /* a payload (or iovec, msghdr) could not be read from user memory */
	STAT_DROPPED_BY_USER = 5, /* connections user space asked to ignore (ignore_conns) */
	STAT_CLOSES = 6,       /* close records shipped */
	STAT_REUSED = 7,       /* state found at a socket's address was a freed socket's: replaced */
	STAT_TLS = 8,          /* connections found to carry an OpenSSL session: its plaintext is captured */
	STAT_TLS_NO_CONN = 9,  /* SSL calls that moved plaintext on no connection known (lost) */
	STAT_TLS_CALLS = 10,   /* SSL calls of allowed processes entered */
	STATS = 11,
};

/* The header of every ring record. A chunk is followed by `captured` payload bytes. Addresses are IPv6
 * or IPv4-mapped IPv6 (::ffff:a.b.c.d), 16 bytes in network order. */
struct l7_chunk {
	__u64 conn_id;          /* per socket, from a counter: a reused fd (a new socket) is a new id */
	cgroup_id_t cgroup_id;  /* the calling process's (close: the one that first moved payload) */
	ktime_ns_t time_ns;     /* when the system call returned */
	__u64 size;             /* bytes the system call moved (sendmmsg: its first message's) */
	__u64 egress_bytes;     /* bytes written on the connection before this chunk (close: in all) */
	__u64 ingress_bytes;    /* bytes read on it before this chunk (close: in all) */
	pid_nr_t tgid;          /* close: 0 (it may happen in softirq) */
	pid_nr_t pid;           /* the thread */
	__s32 fd;               /* close: -1 */
	__u32 local_addr[4];
	__u32 remote_addr[4];
	__u16 local_port;
	__u16 remote_port;
	__u16 family;           /* AF_INET or AF_INET6 of the socket */
	__u16 captured;         /* payload bytes that follow */
	__u8 kind;              /* enum l7_record_kind */
	__u8 direction;         /* enum l7_direction */
	__u8 protocol;          /* enum l7_protocol */
	__u8 role;              /* enum l7_role */
	__u8 syscall;           /* enum l7_syscall */
	__u8 pad[7];
};

/* A record is built here, then copied into the ring with its real length: the payload part is twice
 * the most that is copied, so that a copy at any offset below L7_MAX_CAPTURE of at most
 * L7_MAX_CAPTURE bytes is in bounds by construction (what the verifier can check). */
struct l7_scratch {
	struct l7_chunk hdr;
	__u8 data[2 * L7_MAX_CAPTURE];
};

/* The state of a TCP socket an allowed process moved payload on, keyed by the socket's address
 * (struct conn_key). The address of a freed socket is reused: the socket's inode number tells the
 * new socket from the old one. */
struct conn_key {
	__u64 sk;
};

struct l7_conn {
	__u64 id;
	__u64 ino;        /* inode number of the socket: a new socket at a reused address differs */
	cgroup_id_t cgroup_id;
	__u64 bytes[2];   /* by enum l7_direction */
	__u64 chunks;     /* records shipped */
	__u8 verdict;     /* enum l7_verdict */
	__u8 protocol;    /* enum l7_protocol */
	__u8 role;        /* enum l7_role */
	__u8 closed;
	__u16 local_port; /* kept: the kernel has released the port by the time the socket closes */
	__u8 tls;         /* an SSL call's nested system call was on it: only its plaintext is shipped */
	__u8 pad;
	/* HTTP/2: where each direction's frame walk stands at the end of its last call (l7.bpf.c,
	 * h2_step): its mode (enum h2_mode), the bytes left of the payload it is in, and a frame
	 * header cut by the call's end (h2_hdr_len of its bytes, little-endian in h2_hdr) */
	__u32 h2_left[2];
	__u8 h2_mode[2];
	__u8 h2_hdr_len[2];
	__u32 pad2;
	__u64 h2_hdr[2];
};

/* Where an HTTP/2 direction's frame walk stands between two calls. */
enum h2_mode {
	H2_START = 0,  /* the next byte starts a frame header, or the client's 24-byte preface */
	H2_HEADER = 1, /* in a frame header (h2_hdr_len of its 9 bytes seen) */
	H2_COPY = 2,   /* in the payload of a frame shipped whole (h2_left bytes of it to come) */
	H2_SKIP = 3,   /* in a DATA payload, not shipped (h2_left bytes of it to come) */
	H2_LOST = 4,   /* a byte was not walked (or a header made no sense): a prefix of each call */
	H2_UNSURE = 5, /* the other direction's first bytes were a frame, not the preface: the connection
			* may have been joined mid-stream, so this one is walked only if it starts with
			* the preface (grpcio's server sends SETTINGS before it reads the client's) */
};

/* Where a call's walk stands. In a map, not on the stack: the verifier follows a stack context's
 * values from step to step (fill 9264, 9273, ...) and never finds two steps alike; a map value's it
 * does not know. */
struct h2_walk {
	__u64 iov;       /* the call's iovec array; 0: one buffer, at seg_addr */
	__u64 iovcnt;
	__u64 seg_addr;  /* user address of the current segment's next byte */
	__u64 seg_left;  /* its bytes left (within the call's size) */
	__u64 done;      /* bytes of the call walked */
	__u64 size;      /* bytes the call moved */
	__u64 base;      /* the direction's stream offset at the call's start */
	__u64 rec_start; /* call offset of the record being built */
	__u8 hdr[24];    /* a frame header's bytes so far (hdr_len of them; 9 at most, the rest room) */
	__u32 seg_idx;   /* the next iovec to load */
	__u32 left;      /* payload bytes left of the current frame */
	__u32 fill;      /* bytes in the record being built */
	__u32 records;   /* records shipped */
	__u8 mode;       /* enum h2_mode */
	__u8 hdr_len;
	__u8 dir;
	__u8 ship;       /* 0: walk only (the call went as a prefix: the connection's first) */
};

/* An SSL_read/SSL_write (or _ex) in progress on a thread (key: pid_tgid), from its entry to a ret site. */
struct tls_call {
	__u64 ssl;      /* the SSL* */
	__u64 buf;      /* the plaintext buffer */
	__u64 size_out; /* _ex: where the bytes moved are written; 0 for SSL_read/SSL_write */
	__u64 sk;       /* the socket of the nested system call, once one was made (0: none yet) */
	__u64 ino;
	__u64 started;  /* the thread's start time: a reused thread id is not the caller */
	__s32 fd;
	__u8 egress;    /* SSL_write* */
	__u8 pad[3];
};

/* What is known of an SSL* (key: its address): the socket its last nested system call was on, or
 * the fd SSL_set_fd gave it. */
struct tls_session {
	__u64 sk;
	__u64 ino;
	__s32 fd;       /* -1: unknown */
	__u32 pad;
};

#endif
