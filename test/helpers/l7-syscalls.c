/* The workload of bench/l7-capture.ts (`run.js l7`): a tight loop of system calls, timed.
 *   l7-syscalls sock http|binary|h2 N   N rounds of write(64 bytes) on one end of a loopback TCP
 *                                   connection and read(64 bytes) on the other: 2N system calls
 *                                   (h2: the client preface and a frame, then a 64-byte HEADERS
 *                                   frame each round)
 *   l7-syscalls getppid N           N getppid() calls (a system call the capture does not want)
 * Prints the mean nanoseconds per system call. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long n = atol(argv[argc - 1]);
	if (!strcmp(argv[1], "getppid")) {
		double t0 = now_ns();
		for (long i = 0; i < n; i++)
			getppid();
		printf("%.1f\n", (now_ns() - t0) / n);
		return 0;
	}
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len))
		return 1;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&a, sizeof(a)))
		return 1;
	int s = accept(l, 0, 0);
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char buf[64], in[64], first[64];
	if (!strcmp(argv[2], "http")) {
		memset(buf, 'a', sizeof(buf));
		memcpy(buf, "GET / HTTP/1.1\r\n", 16);
	} else if (!strcmp(argv[2], "h2")) {
		/* a frame header: 24-bit length, type, flags, stream id */
		static const unsigned char settings[9] = { 0, 0, 31, 4, 0, 0, 0, 0, 0 };
		static const unsigned char headers[9] = { 0, 0, 55, 1, 4, 0, 0, 0, 1 };
		memset(first, 0, sizeof(first));
		memcpy(first, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
		memcpy(first + 24, settings, sizeof(settings));
		memset(buf, 'a', sizeof(buf));
		memcpy(buf, headers, sizeof(headers));
	} else {
		memset(buf, 0xff, sizeof(buf));
	}
	int h2 = !strcmp(argv[2], "h2");
	double t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (write(c, h2 && i == 0 ? first : buf, sizeof(buf)) != sizeof(buf))
			return 1;
		size_t got = 0;
		while (got < sizeof(in)) {
			ssize_t r = read(s, in + got, sizeof(in) - got);
			if (r <= 0)
				return 1;
			got += r;
		}
	}
	printf("%.1f\n", (now_ns() - t0) / (2.0 * n));
	return 0;
}
