/* peer.c: process identities, the liveness monitor, the doorbells and the
 * sleep both sides share (docs/failures.md "Liveness", docs/protocol.md
 * "Doorbells").
 *
 * The authority on a peer's life is its role lock. While a side sleeps, a
 * monitor thread watches the peer: with a pidfd of the pid the header names
 * (opened only when that pid's start time matches), it wakes the moment the
 * process exits and also looks at the lock every 200 ms; without one it
 * looks every 50 ms. When the peer's presence differs from what the sleeper
 * expects, it posts the sleeper's own semaphore (a "kick"). The thread runs
 * with every signal blocked, so signals reach the thread that sleeps. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define INTERVAL_MS 50       /* a look at the lock without a pidfd */
#define SLOW_INTERVAL_MS 200 /* with a pidfd, as a safety net */
#define RECHECK_NS INT64_C(1000000000) /* every sleep is bounded by this */

/* read_stat returns the state letter and start time (field 22) of pid from
 * /proc/PID/stat; false when it cannot be read. */
static bool read_stat(pid_t pid, char *state, uint64_t *start) {
    if (pid <= 0)
        return false;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    /* comm (field 2) may hold spaces and parentheses: fields after it
     * start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    p++;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 3)
            *state = tok[0];
        if (field == 22) {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(tok, &end, 10);
            if (errno != 0 || end == tok)
                return false;
            *start = v;
            return true;
        }
    }
    return false;
}

uint64_t shmpc_start_time(pid_t pid) {
    char st;
    uint64_t start = 0;
    return read_stat(pid, &st, &start) ? start : 0;
}

bool shmpc_proc_alive(pid_t pid, uint64_t start) {
    char st;
    uint64_t s;
    if (!read_stat(pid, &st, &s))
        return false;
    return s == start && st != 'Z' && st != 'X';
}

struct shmpc_ident shmpc_self(void) {
    pid_t pid = getpid();
    return (struct shmpc_ident){.pid = (uint32_t)pid, .start = shmpc_start_time(pid), .gen = 0};
}

/* open_pidfd returns a pidfd of id's process, or -1 when id names no live
 * process with that start time (checked after the pidfd pins the pid, so a
 * reused pid is never watched) or the kernel has no pidfd_open. */
static int open_pidfd(struct shmpc_ident id) {
#ifdef SYS_pidfd_open
    if (id.pid == 0 || id.pid > INT32_MAX)
        return -1;
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)id.pid, 0);
    if (fd < 0)
        return -1;
    if (!shmpc_proc_alive((pid_t)id.pid, id.start)) {
        close(fd);
        return -1;
    }
    return fd;
#else
    (void)id;
    return -1;
#endif
}

static void *monitor_main(void *arg) {
    struct shmpc_monitor *m = arg;
    int pidfd = -1;
    bool have_id = false;
    struct shmpc_ident pf_id = {0, 0, 0};
    for (;;) {
        /* A new identity (a new peer, or the first look) gets a pidfd. */
        struct shmpc_ident id = shmpc_ident_load(m->peer_id);
        if (!have_id || id.pid != pf_id.pid || id.start != pf_id.start) {
            if (pidfd >= 0)
                close(pidfd);
            pf_id = id;
            have_id = true;
            pidfd = open_pidfd(id);
        }
        struct pollfd fds[2] = {{.fd = m->evfd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        int nfds = pidfd >= 0 ? 2 : 1;
        int r = poll(fds, (nfds_t)nfds, pidfd >= 0 ? SLOW_INTERVAL_MS : INTERVAL_MS);
        if (r > 0 && fds[0].revents != 0)
            break; /* stop */
        if (r > 0 && nfds == 2 && fds[1].revents != 0) {
            close(pidfd); /* exited: the kernel dropped its locks first */
            pidfd = -1;
        }
        int e = atomic_load(&m->expect);
        if (e == 0)
            continue;
        bool present = shmpc_lock_held(m->lock, m->role) == 1; /* an error counts as absent */
        if (present != (e == 1)) {
            atomic_fetch_add(&m->fired, 1);
            sem_t *k = atomic_load(&m->kick);
            if (k != NULL)
                sem_post(k);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return NULL;
}

int shmpc_monitor_start(struct shmpc_monitor *m) {
    if (m->running)
        return 0;
    m->evfd = eventfd(0, EFD_CLOEXEC);
    if (m->evfd < 0)
        return shmpc_syserr(errno, "start peer monitor: eventfd");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&m->th, NULL, monitor_main, m);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        close(m->evfd);
        m->evfd = -1;
        return shmpc_syserr(e, "start peer monitor");
    }
    m->running = true;
    return 0;
}

void shmpc_monitor_stop(struct shmpc_monitor *m) {
    if (!m->running)
        return;
    uint64_t one = 1;
    ssize_t w;
    do
        w = write(m->evfd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
    pthread_join(m->th, NULL);
    close(m->evfd);
    m->evfd = -1;
    m->running = false;
}

uint64_t shmpc_monitor_arm(struct shmpc_monitor *m, bool want_present, sem_t *kick) {
    atomic_store(&m->kick, kick);
    atomic_store(&m->expect, want_present ? 1 : 2);
    return atomic_load(&m->fired);
}

void shmpc_monitor_disarm(struct shmpc_monitor *m) { atomic_store(&m->expect, 0); }

int shmpc_bell_ring(const struct shmpc_bell *b) {
    /* Any non-zero value counts as "asleep": a scribbled word costs one
     * spare post, never a lost wake-up. */
    if (atomic_load_explicit(b->waiting, memory_order_seq_cst) != 0 &&
        atomic_exchange_explicit(b->waiting, 0, memory_order_seq_cst) != 0) {
        int rc = shmpc_sem_post(b->sem);
        if (rc != 0)
            return rc;
        if (b->counter != NULL)
            atomic_fetch_add_explicit(b->counter, 1, memory_order_relaxed);
    }
    return 0;
}

int shmpc_sleep(struct shmpc_waiter *w, const struct shmpc_bell *bell, sem_t *sem, shmpc_ready_fn ready, void *arg,
                int64_t limit, bool want_present, bool *fired) {
    struct shmpc_monitor *m = w->mon;
    if (!m->running)
        shmpc_monitor_start(m); /* without it, the sleeps below look every 50 ms */
    if (bell != NULL)
        sem = bell->sem;
    uint64_t f = shmpc_monitor_arm(m, want_present, sem);
    *fired = false;
    int rc = 0;
    while (!ready(arg)) {
        if (atomic_load(&m->fired) != f) {
            *fired = true;
            break;
        }
        if (w->honor_stop && w->stop != NULL && *w->stop) {
            rc = shmpc_seterr(SHMPC_ECANCELED, "stopped");
            break;
        }
        int64_t now = shmpc_now();
        if (w->deadline != 0 && now >= w->deadline) {
            rc = shmpc_seterr(SHMPC_ETIMEOUT, "timed out");
            break;
        }
        if (limit != 0 && now >= limit)
            break;
        int64_t until = now + (m->running ? RECHECK_NS : INTERVAL_MS * INT64_C(1000000));
        if (limit != 0 && limit < until)
            until = limit;
        if (w->deadline != 0 && w->deadline < until)
            until = w->deadline;
        int r;
        if (bell != NULL) {
            /* The doorbell: raise the word, look again (a seq_cst store
             * then load: a ringer's index store and its load of the word
             * cannot both miss ours), then sleep. */
            atomic_store_explicit(bell->waiting, 1, memory_order_seq_cst);
            if (ready(arg)) {
                atomic_store_explicit(bell->waiting, 0, memory_order_seq_cst);
                break;
            }
            if (bell->counter != NULL)
                atomic_fetch_add_explicit(bell->counter, 1, memory_order_relaxed);
            r = shmpc_sem_wait_until(sem, until);
            atomic_store_explicit(bell->waiting, 0, memory_order_seq_cst);
        } else {
            r = shmpc_sem_wait_until(sem, until);
        }
        if (r < 0) {
            rc = r;
            break;
        }
        if (!m->running) {
            /* Nobody watches the peer: every 50 ms slice ends the sleep as
             * a change of presence would, so the caller judges the peer. */
            *fired = true;
            break;
        }
    }
    shmpc_monitor_disarm(m);
    return rc;
}
