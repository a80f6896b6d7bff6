/* tcp-storm [--seconds S | --count N] [--clients N] [--acceptors N] [--bytes B] [--sources K]
 *           [--port P]
 * A loopback connection storm: acceptor threads accept on 127.0.0.1:PORT (0: a free port) and close,
 * client threads connect, and close once the server has. With --bytes B the client first writes B
 * bytes and the server reads them and writes B back, so each connection carries data both ways. It
 * runs for S seconds (default 5) or until N connections are done, then prints one JSON line: the
 * connections completed and failed, the elapsed seconds, the rate, and the slowest and fastest whole
 * second (a stall shows there).
 *
 * Every close is a normal FIN exchange, never an RST: the server closes first, so TIME_WAIT is held
 * by the server's sockets and each client socket goes CLOSE_WAIT -> LAST_ACK -> CLOSE, which frees its
 * port at once. Clients bind (with IP_BIND_ADDRESS_NO_PORT, the port still chosen at connect) to K
 * source addresses 127.0.1.1 .. 127.0.1.K (default 64; 0: the kernel's choice, 127.0.0.1), so a
 * 4-tuple comes back only after K x 28,000 connections — longer than the 60 s the server's TIME_WAIT
 * lasts at 20,000/s — and a SYN never lands on a TIME_WAIT socket of an earlier connection.
 * Traffic stays on the loopback interface. A helper of bench/run.ts (the storm scenario). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static double seconds = 5;
static long count = 0; /* 0: run for `seconds` */
static int clients = 4, acceptors = 1, sources = 64, port = 0;
static size_t bytes = 0;

static int lfd;
static atomic_bool stop;
static atomic_long started, done, failed, server_failed;
static atomic_int last_errno;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* reads exactly n bytes (n > 0), or to EOF when n is 0: true when that is what came */
static int read_all(int fd, char *buf, size_t n)
{
	size_t got = 0;
	for (;;) {
		ssize_t r = read(fd, buf + (n ? got : 0), n ? n - got : 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return 0;
		if (r == 0)
			return n == 0;
		got += r;
		if (n && got == n)
			return 1;
	}
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 0;
		buf += w;
		n -= w;
	}
	return 1;
}

static void *acceptor(void *arg)
{
	(void)arg;
	char *buf = malloc(bytes + 1);
	for (;;) {
		int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* the listener was shut down: the run is over */
		}
		/* FIN first, but the socket is closed only after the client's FIN: an orphaned FIN_WAIT2
		 * socket becomes a timewait mini-socket, and when TIME_WAIT overflows (the storm fills
		 * tcp_max_tw_buckets in seconds) that one is dropped at once, so the client's FIN would be
		 * answered with an RST */
		if ((bytes && !(read_all(c, buf, bytes) && write_all(c, buf, bytes))) || shutdown(c, SHUT_WR) < 0 ||
		    !read_all(c, buf, 0))
			atomic_fetch_add(&server_failed, 1);
		close(c);
	}
	free(buf);
	return NULL;
}

static void *client(void *arg)
{
	long id = (long)arg;
	char *buf = calloc(1, bytes + 1);
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	long n = id;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (count && atomic_fetch_add(&started, 1) >= count)
			break;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
		if (sources) {
			int one = 1;
			/* 127.0.1.1 .. 127.0.1.K, each client thread stepping through them from its own start */
			src.sin_addr.s_addr = htonl((127u << 24) | (1u << 8) | (unsigned)(1 + n++ % sources));
			if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
			    bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
				goto fail_fd;
		}
		if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
			goto fail_fd;
		if (bytes && !(write_all(fd, buf, bytes) && read_all(fd, buf, bytes)))
			goto fail_fd;
		if (!read_all(fd, buf, 0)) /* the server's FIN */
			goto fail_fd;
		close(fd);
		atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
		continue;
	fail_fd:
		atomic_store(&last_errno, errno);
		close(fd);
		atomic_fetch_add(&failed, 1);
		continue;
	fail:
		atomic_store(&last_errno, errno);
		atomic_fetch_add(&failed, 1);
		usleep(1000);
	}
	free(buf);
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--seconds S | --count N] [--clients N] [--acceptors N] [--bytes B] [--sources K] [--port P]\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			usage(argv[0]);
		const char *v = argv[++i];
		if (!strcmp(argv[i - 1], "--seconds"))
			seconds = atof(v);
		else if (!strcmp(argv[i - 1], "--count"))
			count = atol(v);
		else if (!strcmp(argv[i - 1], "--clients"))
			clients = atoi(v);
		else if (!strcmp(argv[i - 1], "--acceptors"))
			acceptors = atoi(v);
		else if (!strcmp(argv[i - 1], "--bytes"))
			bytes = (size_t)atol(v);
		else if (!strcmp(argv[i - 1], "--sources"))
			sources = atoi(v);
		else if (!strcmp(argv[i - 1], "--port"))
			port = atoi(v);
		else
			usage(argv[0]);
	}
	if (clients < 1 || acceptors < 1 || sources < 0 || sources > 254 || (count <= 0 && seconds <= 0))
		usage(argv[0]);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	/* a backlog above the client count: a full accept queue would drop SYNs and stall a client 1 s */
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len) < 0) {
		perror("tcp-storm: listen on 127.0.0.1");
		return 1;
	}
	port = ntohs(addr.sin_port);

	pthread_t *at = calloc(acceptors, sizeof(pthread_t)), *ct = calloc(clients, sizeof(pthread_t));
	for (int i = 0; i < acceptors; i++)
		pthread_create(&at[i], NULL, acceptor, NULL);
	double t0 = now();
	for (long i = 0; i < clients; i++)
		pthread_create(&ct[i], NULL, client, (void *)i);

	/* whole seconds' rates, for the slowest and fastest */
	double slowest = -1, fastest = 0, mark = t0;
	long at_mark = 0;
	for (;;) {
		usleep(20000);
		double t = now();
		long d = atomic_load(&done) + atomic_load(&failed);
		if (t - mark >= 1) {
			double r = (d - at_mark) / (t - mark);
			if (slowest < 0 || r < slowest)
				slowest = r;
			if (r > fastest)
				fastest = r;
			mark = t;
			at_mark = d;
		}
		if (count ? d >= count : t - t0 >= seconds)
			break;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < clients; i++)
		pthread_join(ct[i], NULL);
	double elapsed = now() - t0;
	shutdown(lfd, SHUT_RDWR);
	for (int i = 0; i < acceptors; i++)
		pthread_join(at[i], NULL);
	close(lfd);

	long n = atomic_load(&done);
	printf("{\"connections\":%ld,\"failed\":%ld,\"server_failed\":%ld,\"last_errno\":%d,\"seconds\":%.3f,"
	       "\"per_second\":%.1f,\"slowest_second\":%.1f,\"fastest_second\":%.1f,\"port\":%d,\"clients\":%d,"
	       "\"acceptors\":%d,\"bytes\":%zu,\"sources\":%d}\n",
	       n, atomic_load(&failed), atomic_load(&server_failed), atomic_load(&last_errno), elapsed, n / elapsed,
	       slowest < 0 ? n / elapsed : slowest, slowest < 0 ? n / elapsed : fastest, port, clients, acceptors,
	       bytes, sources);
	return atomic_load(&failed) || atomic_load(&server_failed) ? 1 : 0;
}
