/* leader-exits-first MILLISECONDS CODE: the main thread (the process's leader) ends at once with
 * pthread_exit; a second thread lives on for MILLISECONDS, then ends the process with exit(CODE). The
 * process has ended when its last thread has, not its first. A test helper of the process collector. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long ms;
static int code;

static void *worker(void *arg)
{
	(void)arg;
	struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	nanosleep(&t, NULL);
	exit(code);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s MILLISECONDS CODE\n", argv[0]);
		return 2;
	}
	ms = atol(argv[1]);
	code = atoi(argv[2]);
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) != 0) {
		perror("pthread_create");
		return 2;
	}
	pthread_exit(NULL);
}
