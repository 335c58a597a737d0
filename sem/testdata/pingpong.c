/* pingpong: the C-C side of package sem's cross-process ping-pong benchmark.
 * Two processes, two glibc named semaphores (created beforehand):
 *
 *   pingpong serve A B N          N x { sem_wait(A); sem_post(B) }, then "ok"
 *   pingpong drive A B WARMUP N   WARMUP+N x { sem_post(A); sem_wait(B) },
 *                                 timing the last N: "ok NS_PER_ROUNDTRIP"
 */
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static sem_t *must_open(const char *name) {
	sem_t *s = sem_open(name, 0);
	if (s == SEM_FAILED) {
		printf("err %s sem_open %s\n", strerror(errno), name);
		exit(1);
	}
	return s;
}

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "serve")) {
		sem_t *a = must_open(argv[2]), *b = must_open(argv[3]);
		long n = strtol(argv[4], NULL, 10);
		for (long i = 0; i < n; i++) {
			if (sem_wait(a) || sem_post(b)) {
				printf("err %s\n", strerror(errno));
				return 1;
			}
		}
		printf("ok\n");
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "drive")) {
		sem_t *a = must_open(argv[2]), *b = must_open(argv[3]);
		long warm = strtol(argv[4], NULL, 10), n = strtol(argv[5], NULL, 10);
		long long t0 = now_ns();
		for (long i = 0; i < warm + n; i++) {
			if (i == warm)
				t0 = now_ns();
			if (sem_post(a) || sem_wait(b)) {
				printf("err %s\n", strerror(errno));
				return 1;
			}
		}
		long long ns = now_ns() - t0;
		printf("ok %.1f\n", n > 0 ? (double)ns / (double)n : 0.0);
		return 0;
	}
	fprintf(stderr, "usage: pingpong serve A B N | pingpong drive A B WARMUP N\n");
	return 2;
}
