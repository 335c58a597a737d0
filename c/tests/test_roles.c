/* test_roles: both roles of the library against each other, in two
 * processes: a stream through a small ring (full and empty waits on both
 * sides), busy roles, a ring that never comes, an integrity error, a
 * producer that dies (the consumer delivers what was published, then gives
 * up and removes the ring), a producer that never gets a consumer, a resumed
 * stream, the stop flag and the call timeout. Every ring has a NAME unique to
 * the run; after each case nothing of it may be left. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "../payload.h"
#include "check.h"

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)

static char base[48];

static void ring_name(char *out, size_t n, const char *what) { snprintf(out, n, "%s-%s", base, what); }

/* leftovers counts what is left of ring name: files in /dev/shm whose name
 * holds "shmpc.NAME." and a segment at its key. */
static int leftovers(const char *name) {
    char pat[96];
    snprintf(pat, sizeof pat, "shmpc.%s.", name);
    int n = 0;
    DIR *d = opendir("/dev/shm");
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, pat) != NULL)
            n++;
    if (d != NULL)
        closedir(d);
    if (shmget(shmpc_key_for(name), 0, 0) >= 0)
        n++;
    return n;
}

static void clean(const char *name) {
    struct shmpc_names nm;
    shmpc_names_for(name, &nm);
    shmpc_sems_unlink(&nm);
    unlink(nm.lock);
    int id = shmget(nm.key, 0, 0);
    if (id >= 0)
        shmctl(id, IPC_RMID, NULL);
}

static void check_clean(const char *name) {
    int n = leftovers(name);
    CHECK(n == 0, "ring %s left %d objects behind", name, n);
    clean(name);
}

/* consume_child reads ring name in a child process and exits 0 when it got
 * items 0..count-1 in order, each the payload of its seq with length len. */
static pid_t consume_child(const char *name, uint64_t count, size_t len) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    alarm(30);
    struct shmpc_consumer_opts o = {.wait_ns = 5 * SEC, .copy = 1};
    shmpc_consumer *c;
    if (shmpc_consumer_open(name, &o, &c) != 0) {
        fprintf(stderr, "child: %s\n", shmpc_last_error());
        _exit(10);
    }
    uint8_t *want = malloc(len ? len : 1);
    uint64_t got = 0;
    int code = 0;
    for (;;) {
        struct shmpc_item it;
        int rc = shmpc_acquire(c, &it);
        if (rc == SHMPC_EENDED)
            break;
        if (rc != 0) {
            fprintf(stderr, "child: acquire: %s\n", shmpc_last_error());
            code = 11;
            break;
        }
        uint32_t crc = shmpc_payload_fill(want, len, it.seq);
        if (it.seq != got || it.len != len || it.crc != crc || memcmp(it.data, want, len) != 0) {
            fprintf(stderr, "child: item %llu differs\n", (unsigned long long)it.seq);
            code = 12;
            break;
        }
        got++;
        if (shmpc_release(c, it.seq) != 0) {
            code = 13;
            break;
        }
    }
    if (code == 0 && got != count)
        code = 14;
    shmpc_consumer_close(c);
    free(want);
    exit(code);
}

static int wait_child(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_stream(void) {
    char name[64];
    ring_name(name, sizeof name, "stream");
    const uint64_t count = 60;
    const size_t len = 3 * 4096 + 5;
    pid_t child = consume_child(name, count, len);
    struct shmpc_producer_opts o = {.slots = 2, .slot_size = 4 * 4096, .stream_items = count, .wait_ns = 10 * SEC};
    shmpc_producer *p;
    CHECK_RC(shmpc_producer_open(name, &o, &p), 0);
    uint8_t *buf = malloc(len);
    for (uint64_t i = 0; i < count && p != NULL; i++) {
        shmpc_payload_fill(buf, len, i);
        if (i % 2 == 0) {
            CHECK_RC(shmpc_send(p, buf, len), 0);
        } else {
            struct shmpc_slot s;
            CHECK_RC(shmpc_reserve(p, &s), 0);
            CHECK(s.seq == i, "slot for item %llu", (unsigned long long)s.seq);
            CHECK_RC(shmpc_commit_crc(p, len, shmpc_payload_fill(s.buf, len, i)), 0);
        }
    }
    free(buf);
    if (p != NULL) {
        CHECK_RC(shmpc_end(p), 0);
        struct shmpc_counters c;
        shmpc_producer_counters(p, &c);
        CHECK(c.items_committed == count && c.items_released == count && c.bytes_committed == count * len &&
                  c.bytes_released == count * len,
              "counters: committed %llu/%llu released %llu/%llu", (unsigned long long)c.items_committed,
              (unsigned long long)c.bytes_committed, (unsigned long long)c.items_released,
              (unsigned long long)c.bytes_released);
        CHECK(c.producer_sleeps > 0, "a 2-slot ring never made the producer wait");
        CHECK_RC(shmpc_producer_close(p), 0);
    }
    CHECK(wait_child(child) == 0, "consumer child failed");
    check_clean(name);
}

static void test_busy_and_missing(void) {
    char name[64];
    ring_name(name, sizeof name, "busy");
    struct shmpc_producer_opts o = {.slots = 1, .slot_size = 4096, .wait_ns = -1};
    shmpc_producer *p, *p2;
    CHECK_RC(shmpc_producer_open(name, &o, &p), 0);
    CHECK_RC(shmpc_producer_open(name, &o, &p2), SHMPC_EBUSY);
    CHECK(strstr(shmpc_last_error(), "already has a live producer") != NULL, "message: %s", shmpc_last_error());
    shmpc_consumer *c, *c2;
    struct shmpc_consumer_opts co = {.wait_ns = SEC};
    CHECK_RC(shmpc_consumer_open(name, &co, &c), 0);
    CHECK_RC(shmpc_consumer_open(name, &co, &c2), SHMPC_EBUSY);
    shmpc_consumer_close(c);
    shmpc_producer_close(p);
    check_clean(name);

    ring_name(name, sizeof name, "missing");
    int64_t t0 = shmpc_now();
    co.wait_ns = 100 * MS;
    CHECK_RC(shmpc_consumer_open(name, &co, &c), SHMPC_ENORING);
    int64_t took = shmpc_now() - t0;
    CHECK(took >= 90 * MS && took < 2 * SEC, "no ring: gave up after %lld ms", (long long)(took / MS));
    check_clean(name);
}

static void test_integrity(void) {
    char name[64];
    ring_name(name, sizeof name, "integrity");
    struct shmpc_producer_opts o = {.slots = 4, .slot_size = 4096, .wait_ns = SEC};
    shmpc_producer *p;
    CHECK_RC(shmpc_producer_open(name, &o, &p), 0);
    struct shmpc_slot s;
    CHECK_RC(shmpc_send(p, "good", 4), 0);
    CHECK_RC(shmpc_reserve(p, &s), 0);
    memcpy(s.buf, "evil", 4);
    CHECK_RC(shmpc_commit_crc(p, 4, shmpc_crc32c(0, "good", 4)), 0); /* as if scribbled after the checksum */
    CHECK_RC(shmpc_send(p, "after", 5), 0);
    shmpc_consumer *c;
    struct shmpc_consumer_opts co = {.wait_ns = SEC};
    CHECK_RC(shmpc_consumer_open(name, &co, &c), 0);
    struct shmpc_item it;
    CHECK_RC(shmpc_acquire(c, &it), 0);
    CHECK(it.seq == 0 && it.len == 4 && memcmp(it.data, "good", 4) == 0, "item 0");
    CHECK_RC(shmpc_release(c, 0), 0);
    CHECK_RC(shmpc_acquire(c, &it), SHMPC_EINTEGRITY);
    CHECK(strstr(shmpc_last_error(), "item 1") != NULL, "message names the item: %s", shmpc_last_error());
    CHECK_RC(shmpc_acquire(c, &it), SHMPC_EINTEGRITY); /* the consumer stops at the item */
    struct shmpc_counters cnt;
    shmpc_consumer_counters(c, &cnt);
    CHECK(cnt.integrity_errors == 1 && cnt.items_released == 1, "integrity %llu released %llu",
          (unsigned long long)cnt.integrity_errors, (unsigned long long)cnt.items_released);
    shmpc_consumer_close(c);
    shmpc_producer_close(p);
    check_clean(name);
}

static void test_producer_dies(void) {
    char name[64];
    ring_name(name, sizeof name, "dies");
    int go[2];
    CHECK(pipe(go) == 0, "pipe");
    pid_t child = fork();
    if (child == 0) {
        close(go[0]);
        struct shmpc_producer_opts o = {.slots = 8, .slot_size = 4096, .stream_items = 5, .wait_ns = 10 * SEC};
        shmpc_producer *p;
        if (shmpc_producer_open(name, &o, &p) != 0)
            _exit(10);
        for (int i = 0; i < 3; i++)
            if (shmpc_send(p, "x", 1) != 0)
                _exit(11);
        if (write(go[1], "r", 1) != 1)
            _exit(12);
        pause(); /* killed here, without closing anything */
        _exit(13);
    }
    close(go[1]);
    char b;
    CHECK(read(go[0], &b, 1) == 1, "the producer child did not get ready");
    close(go[0]);
    shmpc_consumer *c;
    struct shmpc_consumer_opts co = {.wait_ns = 5 * SEC, .peer_timeout_ns = 0};
    CHECK_RC(shmpc_consumer_open(name, &co, &c), 0);
    struct shmpc_item it;
    for (uint64_t i = 0; i < 3 && c != NULL; i++) {
        CHECK_RC(shmpc_acquire(c, &it), 0);
        CHECK_RC(shmpc_release(c, it.seq), 0);
    }
    kill(child, SIGKILL);
    int64_t t0 = shmpc_now();
    if (c != NULL) {
        CHECK_RC(shmpc_acquire(c, &it), SHMPC_EPEERLOST); /* asleep on an empty ring when the producer dies */
        int64_t took = shmpc_now() - t0;
        CHECK(took < 500 * MS, "noticed the death after %lld ms", (long long)(took / MS));
        CHECK(strstr(shmpc_last_error(), "3 items delivered, 2 lost") != NULL, "message: %s", shmpc_last_error());
        shmpc_consumer_close(c);
    }
    wait_child(child);
    check_clean(name); /* the survivor removed everything */
}

static void test_no_consumer(void) {
    char name[64];
    ring_name(name, sizeof name, "lonely");
    struct shmpc_producer_opts o = {.slots = 1, .slot_size = 4096, .wait_ns = 150 * MS};
    shmpc_producer *p;
    CHECK_RC(shmpc_producer_open(name, &o, &p), 0);
    CHECK_RC(shmpc_send(p, "a", 1), 0);
    int64_t t0 = shmpc_now();
    CHECK_RC(shmpc_send(p, "b", 1), SHMPC_EPEERLOST);
    CHECK(strstr(shmpc_last_error(), "no consumer attached") != NULL, "message: %s", shmpc_last_error());
    CHECK(shmpc_now() - t0 < 2 * SEC, "waited too long");
    CHECK_RC(shmpc_producer_close(p), 0);
    check_clean(name);
}

static void test_resume(void) {
    char name[64];
    ring_name(name, sizeof name, "resume");
    const size_t len = 100;
    struct shmpc_producer_opts o = {.slots = 8, .slot_size = 4096, .stream_items = 5, .stream_bytes = 500,
                                    .check_stream = 1, .wait_ns = 10 * SEC};
    pid_t first = fork();
    if (first == 0) {
        shmpc_producer *p;
        uint8_t buf[100];
        if (shmpc_producer_open(name, &o, &p) != 0)
            _exit(10);
        for (uint64_t i = 0; i < 2; i++) {
            shmpc_payload_fill(buf, len, i);
            if (shmpc_send(p, buf, len) != 0)
                _exit(11);
        }
        struct shmpc_slot s; /* dies holding a half-written, unpublished slot */
        if (shmpc_reserve(p, &s) != 0)
            _exit(12);
        memset(s.buf, 0xEE, 50);
        _exit(0);
    }
    CHECK(wait_child(first) == 0, "first producer");
    struct shmpc_producer_opts bad = o;
    bad.stream_items = 6;
    shmpc_producer *p;
    CHECK_RC(shmpc_producer_open(name, &bad, &p), SHMPC_EGEOMETRY);
    bad = o;
    bad.no_resume = 1;
    CHECK_RC(shmpc_producer_open(name, &bad, &p), SHMPC_EEXISTS);
    CHECK_RC(shmpc_producer_open(name, &o, &p), 0);
    if (p != NULL) {
        CHECK(shmpc_producer_resumed(p) && shmpc_producer_next(p) == 2, "resumed at %llu",
              (unsigned long long)shmpc_producer_next(p));
        pid_t child = consume_child(name, 5, len);
        uint8_t buf[100];
        for (uint64_t i = shmpc_producer_next(p); i < 5; i++) {
            shmpc_payload_fill(buf, len, i);
            CHECK_RC(shmpc_send(p, buf, len), 0);
        }
        CHECK_RC(shmpc_end(p), 0);
        shmpc_producer_close(p);
        CHECK(wait_child(child) == 0, "the consumer did not get items 0..4 exactly once");
    }
    check_clean(name);
}

static volatile sig_atomic_t stop;

static void test_stop_and_timeout(void) {
    char name[64];
    ring_name(name, sizeof name, "stop");
    struct shmpc_producer_opts o = {.slots = 2, .slot_size = 4096, .wait_ns = 10 * SEC};
    shmpc_producer *p;
    CHECK_RC(shmpc_producer_open(name, &o, &p), 0);
    shmpc_consumer *c;
    struct shmpc_consumer_opts co = {.wait_ns = SEC, .timeout_ns = 100 * MS, .stop = &stop};
    CHECK_RC(shmpc_consumer_open(name, &co, &c), 0);
    struct shmpc_item it;
    int64_t t0 = shmpc_now();
    CHECK_RC(shmpc_acquire(c, &it), SHMPC_ETIMEOUT);
    int64_t took = shmpc_now() - t0;
    CHECK(took >= 90 * MS && took < SEC, "timeout after %lld ms", (long long)(took / MS));
    stop = 1;
    CHECK_RC(shmpc_acquire(c, &it), SHMPC_ECANCELED);
    stop = 0;
    CHECK_RC(shmpc_send(p, "x", 1), 0);
    CHECK_RC(shmpc_acquire(c, &it), 0);
    CHECK_RC(shmpc_release(c, it.seq), 0);
    shmpc_consumer_close(c); /* a consumer that left: the producer ends without it */
    CHECK_RC(shmpc_end(p), SHMPC_EPEERLOST);
    CHECK(strstr(shmpc_last_error(), "is gone") != NULL, "message: %s", shmpc_last_error());
    shmpc_producer_close(p);
    check_clean(name);
}

int main(void) {
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(base, sizeof base, "ctest%d-%04x", (int)getpid(), rand() & 0xffff);
    test_stream();
    test_busy_and_missing();
    test_integrity();
    test_producer_dies();
    test_no_consumer();
    test_resume();
    test_stop_and_timeout();
    return check_done("test_roles");
}
