/* A workload with a known profile, for the profile collector's end-to-end tests (built by the test
 * with the system compiler, frame pointers on).
 *
 *   workload cpu [SECONDS] burns CPU in burn_a and burn_b, 3:1, alternating every few milliseconds;
 *                         given SECONDS, stops then and prints how many rounds (burn_a + burn_b) a
 *                         second it did (the benchmarks' CPU-bound load)
 *   workload pingpong     two processes bounce a byte over two pipes, forever: a storm of waits far
 *                         shorter than a millisecond
 *   workload sleep FILE   sleeps 20 ms in sleep_here, then burns ~5 ms in burn_b, forever; keeps
 *                         "<ns slept in sleep_here> <ns since start>" at the start of FILE, so a test
 *                         knows the time blocked there in any interval it reads the file twice */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

static unsigned long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

/* the same loop in both, so that their CPU time is in the ratio of their units */
__attribute__((noinline)) static void spin(unsigned long units)
{
	for (unsigned long i = 0; i < units * 100000ul; i++)
		sink += i;
}

__attribute__((noinline)) void burn_a(void)
{
	spin(3);
}

__attribute__((noinline)) void burn_b(void)
{
	spin(1);
}

/* Called between sleep_here and libc, and never seen in a stack: Debian's libc is built without frame
 * pointers, so a walk from inside nanosleep reads the frame of the function that called into libc
 * (this one) as the leaf's and goes on from its return address. The caller of a library function
 * that keeps no frame pointer is hidden; its caller shows. DWARF unwinding would show both. */
__attribute__((noinline)) static void nap(void)
{
	struct timespec t = { 0, 20 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

__attribute__((noinline)) void sleep_here(void)
{
	nap();
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "cpu") == 0) {
		unsigned long long start = now_ns(), rounds = 0;
		double seconds = argc >= 3 ? atof(argv[2]) : 0;

		for (;;) {
			burn_a();
			burn_b();
			rounds++;
			if (seconds > 0 && now_ns() - start >= (unsigned long long)(seconds * 1e9)) {
				printf("%.3f\n", (double)rounds / ((double)(now_ns() - start) / 1e9));
				return 0;
			}
		}
	}
	if (argc >= 2 && strcmp(argv[1], "pingpong") == 0) {
		int there[2], back[2];
		char c = 'x';

		if (pipe(there) || pipe(back))
			return 2;
		if (fork() == 0) {
			while (read(there[0], &c, 1) == 1)
				if (write(back[1], &c, 1) != 1)
					return 3;
			return 0;
		}
		for (;;)
			if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1)
				return 3;
	}
	if (argc >= 3 && strcmp(argv[1], "sleep") == 0) {
		int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		unsigned long long start = now_ns(), slept = 0;
		char line[64];

		if (fd < 0)
			return 2;
		for (;;) {
			unsigned long long t0 = now_ns();

			sleep_here();
			slept += now_ns() - t0;
			unsigned long long until = now_ns() + 5 * 1000 * 1000;
			while (now_ns() < until)
				burn_b();
			int n = snprintf(line, sizeof(line), "%llu %llu\n", slept, now_ns() - start);
			if (pwrite(fd, line, (size_t)n, 0) != n)
				return 3;
		}
	}
	fprintf(stderr, "usage: workload cpu [SECONDS] | workload pingpong | workload sleep FILE\n");
	return 2;
}
