/* clone-into-cgroup CGROUP_DIR PROGRAM [ARG...]: starts PROGRAM as a new process created directly in
 * the cgroup CGROUP_DIR (clone3 with CLONE_INTO_CGROUP, Linux 5.7+), while this process stays where it
 * is; exits with the child's exit code. A test helper of the process collector. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s CGROUP_DIR PROGRAM [ARG...]\n", argv[0]);
		return 2;
	}
	int cgroup = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgroup < 0) {
		perror(argv[1]);
		return 2;
	}
	struct clone_args args;
	memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)cgroup;
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0) {
		perror("clone3");
		return 2;
	}
	if (pid == 0) {
		execv(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	int status;
	if (waitpid((pid_t)pid, &status, 0) < 0) {
		perror("waitpid");
		return 2;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
