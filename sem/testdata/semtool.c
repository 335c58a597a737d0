/* semtool: drives glibc's POSIX named semaphores for the interop tests of
 * package sem. Every command prints one result line per event on stdout:
 * "ok ...", or "err ENAME" with the errno's symbolic name.
 *
 *   semtool libc -                                "ok GLIBC_VERSION"
 *   semtool create NAME VALUE MODE excl|noexcl   sem_open(O_CREAT[|O_EXCL])
 *   semtool open NAME                             sem_open(0)
 *   semtool unlink NAME                           sem_unlink
 *   semtool post NAME COUNT                       COUNT x sem_post
 *   semtool getvalue NAME                         "ok VALUE"
 *   semtool trywait NAME                          sem_trywait
 *   semtool wait NAME                             "ready", sem_wait, "ok"
 *   semtool timedwait NAME MS                     "ready", sem_timedwait, "ok|err E ELAPSED_US"
 */
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *errname(int e) {
	switch (e) {
	case EINVAL: return "EINVAL";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EAGAIN: return "EAGAIN";
	case EOVERFLOW: return "EOVERFLOW";
	case ELOOP: return "ELOOP";
	case EINTR: return "EINTR";
	default: return "EOTHER";
	}
}

static int fail(const char *what) {
	int e = errno;
	printf("err %s %s\n", errname(e), what);
	fflush(stdout);
	return 1;
}

static sem_t *must_open(const char *name) {
	sem_t *s = sem_open(name, 0);
	if (s == SEM_FAILED) {
		fail("sem_open");
		exit(1);
	}
	return s;
}

static long long now_ns(clockid_t c) {
	struct timespec ts;
	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: semtool COMMAND NAME ...\n");
		return 2;
	}
	const char *cmd = argv[1], *name = argv[2];
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (!strcmp(cmd, "libc")) {
		printf("ok %s\n", gnu_get_libc_version());
		return 0;
	}
	if (!strcmp(cmd, "create") && argc == 6) {
		int flags = O_CREAT | (strcmp(argv[5], "excl") ? 0 : O_EXCL);
		unsigned value = (unsigned)strtoul(argv[3], NULL, 0);
		mode_t mode = (mode_t)strtoul(argv[4], NULL, 8);
		sem_t *s = sem_open(name, flags, mode, value);
		if (s == SEM_FAILED)
			return fail("sem_open");
		printf("ok\n");
		return sem_close(s) ? fail("sem_close") : 0;
	}
	if (!strcmp(cmd, "open") && argc == 3) {
		sem_t *s = sem_open(name, 0);
		if (s == SEM_FAILED)
			return fail("sem_open");
		printf("ok\n");
		return sem_close(s) ? fail("sem_close") : 0;
	}
	if (!strcmp(cmd, "unlink") && argc == 3) {
		if (sem_unlink(name))
			return fail("sem_unlink");
		printf("ok\n");
		return 0;
	}
	if (!strcmp(cmd, "post") && argc == 4) {
		sem_t *s = must_open(name);
		long n = strtol(argv[3], NULL, 10);
		for (long i = 0; i < n; i++)
			if (sem_post(s))
				return fail("sem_post");
		printf("ok\n");
		return 0;
	}
	if (!strcmp(cmd, "getvalue") && argc == 3) {
		sem_t *s = must_open(name);
		int v;
		if (sem_getvalue(s, &v))
			return fail("sem_getvalue");
		printf("ok %d\n", v);
		return 0;
	}
	if (!strcmp(cmd, "trywait") && argc == 3) {
		sem_t *s = must_open(name);
		if (sem_trywait(s))
			return fail("sem_trywait");
		printf("ok\n");
		return 0;
	}
	if (!strcmp(cmd, "wait") && argc == 3) {
		sem_t *s = must_open(name);
		printf("ready\n");
		if (sem_wait(s))
			return fail("sem_wait");
		printf("ok\n");
		return 0;
	}
	if (!strcmp(cmd, "timedwait") && argc == 4) {
		sem_t *s = must_open(name);
		long ms = strtol(argv[3], NULL, 10);
		long long t0 = now_ns(CLOCK_MONOTONIC);
		struct timespec abs;
		clock_gettime(CLOCK_REALTIME, &abs);
		abs.tv_sec += ms / 1000;
		abs.tv_nsec += (ms % 1000) * 1000000L;
		if (abs.tv_nsec >= 1000000000L) {
			abs.tv_sec++;
			abs.tv_nsec -= 1000000000L;
		}
		printf("ready\n");
		int r = sem_timedwait(s, &abs);
		int e = errno;
		long long us = (now_ns(CLOCK_MONOTONIC) - t0) / 1000;
		if (r) {
			printf("err %s %lld\n", errname(e), us);
			return 1;
		}
		printf("ok %lld\n", us);
		return 0;
	}
	fprintf(stderr, "semtool: bad command or arguments\n");
	return 2;
}
