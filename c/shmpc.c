/* shmpc.c: error codes and messages, clocks, notes, names. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* The message of the last failure, per thread: a failing open has no handle
 * to keep it in. */
static _Thread_local char last_error[768];

const char *shmpc_strerror(int code) {
    switch (code) {
    case SHMPC_OK: return "ok";
    case SHMPC_EPEERLOST: return "peer lost";
    case SHMPC_EBUSY: return "role held by a live process";
    case SHMPC_EFOREIGN: return "object is not this ring's";
    case SHMPC_EINTEGRITY: return "integrity error: CRC32C mismatch";
    case SHMPC_EENDED: return "stream ended";
    case SHMPC_ETIMEOUT: return "timed out";
    case SHMPC_ENORING: return "ring not found";
    case SHMPC_ECLOSED: return "closed";
    case SHMPC_ECANCELED: return "stopped";
    case SHMPC_EINVAL: return "invalid argument";
    case SHMPC_EGEOMETRY: return "ring geometry differs";
    case SHMPC_EEXISTS: return "ring exists";
    case SHMPC_ECORRUPT: return "shared memory is inconsistent";
    case SHMPC_ESYS: return "system call failed";
    case SHMPC_ESTATE: return "call out of order";
    }
    return "unknown error";
}

const char *shmpc_last_error(void) { return last_error; }

/* shmpc_seterr records the message of a failure and returns code. The
 * message is made one line (newlines become "; "). */
int shmpc_seterr(int code, const char *fmt, ...) {
    char buf[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ';';
    memcpy(last_error, buf, sizeof buf);
    return code;
}

/* shmpc_syserr records "MESSAGE: strerror(err)" and returns SHMPC_ESYS. */
int shmpc_syserr(int err, const char *fmt, ...) {
    char buf[sizeof last_error - 80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return shmpc_seterr(SHMPC_ESYS, "%s: %s", buf, strerror(err));
}

int64_t shmpc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t shmpc_unix_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void shmpc_sleep_ns(int64_t ns) {
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    nanosleep(&ts, NULL); /* an early wake-up (a signal) only shortens a poll step */
}

void shmpc_logf(shmpc_log_fn log, void *arg, const char *fmt, ...) {
    if (log == NULL)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log(arg, buf);
}

/* fmt_frac writes v/unit with up to the digits of unit, trailing zeros cut,
 * followed by suffix (Go's time.Duration String for one unit). */
static void fmt_frac(char *buf, size_t n, uint64_t v, uint64_t unit, const char *suffix) {
    uint64_t whole = v / unit, frac = v % unit;
    if (frac == 0) {
        snprintf(buf, n, "%llu%s", (unsigned long long)whole, suffix);
        return;
    }
    int digits = 0;
    for (uint64_t u = unit; u > 1; u /= 10)
        digits++;
    char f[24];
    for (int i = digits - 1; i >= 0; i--) {
        f[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    f[digits] = 0;
    for (int i = (int)strlen(f) - 1; i > 0 && f[i] == '0'; i--)
        f[i] = 0;
    snprintf(buf, n, "%llu.%s%s", (unsigned long long)whole, f, suffix);
}

/* shmpc_fmt_duration formats ns as Go's time.Duration does ("10s", "1m30s",
 * "200ms", "1.5µs"), so messages read the same from both sides. */
void shmpc_fmt_duration(char *buf, size_t n, int64_t ns) {
    if (ns == 0) {
        snprintf(buf, n, "0s");
        return;
    }
    const char *neg = ns < 0 ? "-" : "";
    uint64_t u = ns < 0 ? (uint64_t)(-(ns + 1)) + 1 : (uint64_t)ns;
    char tmp[64];
    if (u < 1000) {
        snprintf(tmp, sizeof tmp, "%lluns", (unsigned long long)u);
    } else if (u < 1000000) {
        fmt_frac(tmp, sizeof tmp, u, 1000, "µs");
    } else if (u < 1000000000) {
        fmt_frac(tmp, sizeof tmp, u, 1000000, "ms");
    } else {
        uint64_t h = u / 3600000000000ULL, rem = u % 3600000000000ULL;
        uint64_t m = rem / 60000000000ULL;
        char sec[40];
        fmt_frac(sec, sizeof sec, rem % 60000000000ULL, 1000000000, "s");
        if (h > 0)
            snprintf(tmp, sizeof tmp, "%lluh%llum%s", (unsigned long long)h, (unsigned long long)m, sec);
        else if (m > 0)
            snprintf(tmp, sizeof tmp, "%llum%s", (unsigned long long)m, sec);
        else
            snprintf(tmp, sizeof tmp, "%s", sec);
    }
    snprintf(buf, n, "%s%s", neg, tmp);
}

static bool name_byte(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
}

#define NAME_RULE "a ring NAME is 1 to 64 characters of [A-Za-z0-9_.-], not starting with '.'"

int shmpc_valid_name(const char *name) {
    if (name == NULL || name[0] == 0)
        return shmpc_seterr(SHMPC_EINVAL, "check name: empty name: %s", NAME_RULE);
    size_t n = strlen(name);
    if (n > SHMPC_MAX_NAME)
        return shmpc_seterr(SHMPC_EINVAL, "check name %.20s...: %zu characters: %s", name, n, NAME_RULE);
    if (name[0] == '.')
        return shmpc_seterr(SHMPC_EINVAL, "check name %s: starts with '.': %s", name, NAME_RULE);
    for (size_t i = 0; i < n; i++)
        if (!name_byte(name[i]))
            return shmpc_seterr(SHMPC_EINVAL, "check name: byte %#02x at offset %zu: %s", (unsigned char)name[i], i,
                                NAME_RULE);
    return 0;
}

int shmpc_key_for(const char *name) {
    uint32_t h = 2166136261u;
    const char *prefix = "shmpc:";
    for (const char *p = prefix; *p; p++) {
        h ^= (uint8_t)*p;
        h *= 16777619u;
    }
    for (const char *p = name; *p; p++) {
        h ^= (uint8_t)*p;
        h *= 16777619u;
    }
    int k = (int)(h & 0x7fffffffu);
    return k == 0 ? 1 : k;
}

int shmpc_names_for(const char *name, struct shmpc_names *n) {
    int rc = shmpc_valid_name(name);
    if (rc != 0)
        return rc;
    memset(n, 0, sizeof *n);
    snprintf(n->ring, sizeof n->ring, "%s", name);
    n->key = shmpc_key_for(name);
    static const char *const which[4] = {"filled", "empty", "ready", "shutdown"};
    for (int i = 0; i < 4; i++)
        snprintf(n->sem[i], sizeof n->sem[i], "/shmpc.%s.%s", name, which[i]);
    snprintf(n->lock, sizeof n->lock, "/dev/shm/shmpc.%s.lock", name);
    return 0;
}
