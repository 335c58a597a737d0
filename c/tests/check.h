/* check.h: the C unit tests' harness. Each test is a program run from the
 * repository root by `make c-test`: exit 0 pass, 77 skip (naming what is
 * missing), anything else fail. CHECK reports a failure and goes on. */
#ifndef SHMPC_CHECK_H
#define SHMPC_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            check_failures++;                                              \
        }                                                                  \
    } while (0)

/* CHECK_RC checks that call returned want, naming the library's message. */
#define CHECK_RC(call, want)                                                               \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        CHECK(rc_ == (want), "%s returned %d (%s), want %d: %s", #call, rc_, shmpc_strerror(rc_), (want), \
              shmpc_last_error());                                                         \
    } while (0)

static inline int check_done(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d checks failed\n", name, check_failures);
        return 1;
    }
    printf("ok %s\n", name);
    return 0;
}

#endif
