/* producer.c: the producer role once open: reserve, publish, end, the wait
 * for a consumer and the removal of the ring (docs/protocol.md "The producer"
 * and "End of stream"; docs/objects.md "Who removes what"). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hook.h"
#include "internal.h"

#define SEQ memory_order_seq_cst
#define RLX memory_order_relaxed
#define FIRST_CONSUMER_LOOK_NS (100 * INT64_C(1000000))
#define REMOVE_LOCK_WAIT_NS INT64_C(1000000000)

void (*shmpc_hook_producer_ended)(const char *ring);
void (*shmpc_hook_producer_drained)(const char *ring);

/* peer_lost is the error of a producer whose consumer is gone: what
 * happened, how many items were delivered and how many are lost. */
static int peer_lost(shmpc_producer *p, const char *what) {
    uint64_t head = atomic_load_explicit(&p->ring.h->head, SEQ);
    uint64_t tail = atomic_load_explicit(&p->ring.h->tail, SEQ);
    uint64_t lost = head - tail, total = p->ring.stream_items;
    char extra[96] = "";
    if (total > head)
        snprintf(extra, sizeof extra, " (%llu committed but not released) and %llu not sent", (unsigned long long)lost,
                 (unsigned long long)(total - head));
    return shmpc_seterr(SHMPC_EPEERLOST, "%s: %llu items delivered, %llu lost%s: peer lost", what,
                        (unsigned long long)tail, (unsigned long long)lost, extra);
}

static bool space_free(void *arg) {
    shmpc_producer *p = arg;
    uint64_t head = atomic_load_explicit(&p->ring.h->head, SEQ);
    uint64_t tail = atomic_load_explicit(&p->ring.h->tail, SEQ);
    return head - tail < p->ring.g.slots;
}

static bool drained(void *arg) {
    shmpc_producer *p = arg;
    return atomic_load_explicit(&p->ring.h->drained, SEQ) == 1;
}

static void count_loss(shmpc_producer *p) {
    shmpc_count_loss(&p->ring.h->consumer, &p->ring.h->producer_lost_gen, &p->ring.h->producer_losses);
}

/* wait_consumer sleeps until ready() holds, judging the consumer's presence
 * in between: while it is alive the wait has no bound; before any consumer
 * came, the bound is the wait from open; after it left, the peer timeout.
 * With space (the full-ring wait), a judgement that the consumer is present
 * returns at once with fast set, so the caller sleeps armed; the drain wait
 * (space false) sleeps on the shutdown semaphore. */
static int wait_consumer(shmpc_producer *p, struct shmpc_waiter *w, bool space) {
    shmpc_ready_fn ready = space ? space_free : drained;
    int64_t gone_since = 0, progress_at = shmpc_now();
    uint64_t progress = atomic_load_explicit(&p->ring.h->tail, SEQ);
    char d[32], what[160];
    while (!ready(p)) {
        /* The claim generation first, the lock second (docs/failures.md). */
        uint64_t gen = shmpc_ident_load(&p->ring.h->consumer).gen;
        bool present = shmpc_lock_held(&p->lock, SHMPC_ROLE_CONSUMER) == 1;
        if (present)
            p->seen = true;
        int64_t now = shmpc_now(), limit = 0;
        uint64_t t = atomic_load_explicit(&p->ring.h->tail, SEQ);
        if (t != progress) {
            progress = t;
            progress_at = now;
        }
        if (present) {
            gone_since = 0;
            if (p->opt.stall_timeout_ns > 0) {
                limit = progress_at + p->opt.stall_timeout_ns;
                if (now >= limit) {
                    count_loss(p);
                    shmpc_fmt_duration(d, sizeof d, p->opt.stall_timeout_ns);
                    snprintf(what, sizeof what, "consumer of %s made no progress for %s", p->names.ring, d);
                    return peer_lost(p, what);
                }
            } else {
                p->fast = true;
                if (space)
                    return 0;
            }
        } else if (!p->seen && gen == p->consumer_gen && t == p->tail_at_open) {
            if (now >= p->started + p->opt.wait_ns && !ready(p)) {
                shmpc_fmt_duration(d, sizeof d, p->opt.wait_ns);
                snprintf(what, sizeof what, "no consumer attached to %s within %s", p->names.ring, d);
                return peer_lost(p, what);
            }
            /* A first consumer can attach and die between two looks at its
             * lock: look again every 100 ms (its generation then tells). */
            limit = now + FIRST_CONSUMER_LOOK_NS;
            if (p->started + p->opt.wait_ns < limit)
                limit = p->started + p->opt.wait_ns;
        } else {
            if (gone_since == 0)
                gone_since = now;
            if (!ready(p))
                count_loss(p);
            limit = gone_since + p->opt.peer_timeout_ns;
            /* A consumer that drained the stream lets its role go at once:
             * look at the ring again after the lock said "gone". */
            if (now >= limit && !ready(p)) {
                count_loss(p);
                snprintf(what, sizeof what, "consumer of %s is gone", p->names.ring);
                return peer_lost(p, what);
            }
        }
        bool fired;
        int rc = shmpc_sleep(w, space ? &p->space : NULL, p->sems.s[SHMPC_SEM_SHUTDOWN], ready, p, limit, present,
                             &fired);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int shmpc_reserve(shmpc_producer *p, struct shmpc_slot *slot) {
    if (p == NULL || slot == NULL)
        return shmpc_seterr(SHMPC_EINVAL, "reserve: no producer or no slot");
    if (p->removed)
        return shmpc_seterr(SHMPC_ECLOSED, "reserve: producer is closed");
    /* The stop flag first, even with a slot free: a stopped stream sends
     * nothing more. */
    if (p->opt.stop != NULL && *p->opt.stop)
        return shmpc_seterr(SHMPC_ECANCELED, "reserve: stopped");
    if (p->reserved) {
        *slot = p->slot;
        return 0;
    }
    struct shmpc_waiter w = {.mon = &p->mon, .stop = p->opt.stop, .honor_stop = true,
                             .deadline = p->opt.timeout_ns > 0 ? shmpc_now() + p->opt.timeout_ns : 0};
    for (;;) {
        int rc = shmpc_writer_reserve(&p->w, slot);
        if (rc == 0) {
            p->slot = *slot;
            p->reserved = true;
            if (!p->first_res) {
                p->first_res = true;
                uint64_t zero = 0;
                atomic_compare_exchange_strong_explicit(&p->ring.h->app[0], &zero, (uint64_t)shmpc_unix_ns(), RLX, RLX);
            }
            return 0;
        }
        if (rc != SHMPC_FULL)
            return shmpc_seterr(rc, "reserve: %s", shmpc_last_error());
        if (p->fast) {
            bool fired;
            if ((rc = shmpc_sleep(&w, &p->space, NULL, space_free, p, 0, true, &fired)) != 0)
                return shmpc_seterr(rc, "reserve: %s", shmpc_last_error());
            if (fired)
                p->fast = false;
            continue;
        }
        if ((rc = wait_consumer(p, &w, true)) != 0)
            return shmpc_seterr(rc, "reserve: %s", shmpc_last_error());
    }
}

int shmpc_commit_crc(shmpc_producer *p, size_t n, uint32_t crc) {
    if (p == NULL)
        return shmpc_seterr(SHMPC_EINVAL, "commit: no producer");
    if (p->removed)
        return shmpc_seterr(SHMPC_ECLOSED, "commit: producer is closed");
    if (!p->reserved)
        return shmpc_seterr(SHMPC_ESTATE, "commit: no slot reserved (call shmpc_reserve first)");
    if (n > p->ring.g.slot_size)
        return shmpc_seterr(SHMPC_EINVAL, "commit: length %zu is not in 0..%llu", n,
                            (unsigned long long)p->ring.g.slot_size);
    p->reserved = false;
    int rc = shmpc_writer_commit(&p->w, n, crc);
    if (rc != 0)
        return shmpc_seterr(rc, "commit: %s", shmpc_last_error());
    return shmpc_bell_ring(&p->to_consumer);
}

int shmpc_commit(shmpc_producer *p, size_t n) {
    if (p != NULL && p->reserved && !p->removed && n <= p->ring.g.slot_size)
        return shmpc_commit_crc(p, n, shmpc_crc32c(0, p->slot.buf, n));
    return shmpc_commit_crc(p, n, 0); /* reports the misuse */
}

int shmpc_send(shmpc_producer *p, const void *data, size_t n) {
    if (p == NULL || (data == NULL && n > 0))
        return shmpc_seterr(SHMPC_EINVAL, "send: no producer or no data");
    if (!p->removed && n > p->ring.g.slot_size)
        return shmpc_seterr(SHMPC_EINVAL, "send %zu bytes: slot size is %llu: item too large", n,
                            (unsigned long long)p->ring.g.slot_size);
    struct shmpc_slot s;
    int rc = shmpc_reserve(p, &s);
    if (rc != 0)
        return rc;
    uint32_t crc = n > 0 ? shmpc_copy_crc32c(0, s.buf, data, n) : 0;
    return shmpc_commit_crc(p, n, crc);
}

/* remove deletes every object of the ring, segment first and lock file
 * last: the segment by the id it holds, the semaphores by name only while
 * the lock file it holds is still the NAME's, the lock file by the leaving
 * rule. */
static int remove_ring(shmpc_producer *p) {
    shmpc_monitor_stop(&p->mon);
    bool was_drained = false;
    int rc = 0, r;
    if (p->have_ring) {
        p->last_head = atomic_load_explicit(&p->ring.h->head, SEQ);
        was_drained = atomic_load_explicit(&p->ring.h->drained, SEQ) == 1;
        shmpc_ring_counters(&p->ring, &p->last_counters);
    }
    if (p->have_seg) {
        if ((r = shmpc_seg_remove(&p->seg)) != 0 && rc == 0)
            rc = r;
        if (p->have_ring && p->have_sems && !was_drained) {
            /* A consumer asleep on the ring must learn that its segment is
             * gone with the stream unfinished (docs/protocol.md, "Claim
             * identities"): give the claim up (pid 0, same gen), then ring. */
            struct shmpc_ident id = shmpc_ident_load(&p->ring.h->producer);
            if (id.pid == (uint32_t)getpid()) {
                struct shmpc_ident none = {.pid = 0, .start = 0, .gen = id.gen};
                shmpc_ident_store(&p->ring.h->producer, &none);
            }
            (void)shmpc_bell_ring(&p->to_consumer);
        }
        shmpc_seg_detach(&p->seg);
        p->have_seg = false;
    }
    p->have_ring = false;
    bool stale = true;
    if (p->have_lock)
        stale = shmpc_lock_stale(&p->lock) != 0;
    if (!stale && (r = shmpc_sems_unlink(&p->names)) != 0 && rc == 0)
        rc = r;
    if (p->have_sems) {
        shmpc_sems_close(&p->sems);
        p->have_sems = false;
    }
    if (p->have_lock) {
        /* After a drain the consumer is leaving too and lets its role go at
         * once: wait for that briefly, so that End leaves nothing behind. */
        r = shmpc_lock_leave(&p->lock, &p->names, SHMPC_ROLE_PRODUCER, false, was_drained ? REMOVE_LOCK_WAIT_NS : 0);
        if (r != 0 && rc == 0)
            rc = r;
        shmpc_lock_close(&p->lock);
        p->have_lock = false;
    }
    p->removed = true;
    return rc;
}

int shmpc_end(shmpc_producer *p) {
    if (p == NULL)
        return shmpc_seterr(SHMPC_EINVAL, "end: no producer");
    if (p->removed)
        return shmpc_seterr(SHMPC_ECLOSED, "end: producer is closed");
    p->reserved = false; /* a reserved, uncommitted slot is dropped */
    int rc = shmpc_writer_end(&p->w);
    if (rc != 0)
        return shmpc_seterr(rc, "end stream: %s", shmpc_last_error());
    if ((rc = shmpc_bell_ring(&p->to_consumer)) != 0)
        return rc;
    if (shmpc_hook_producer_ended != NULL)
        shmpc_hook_producer_ended(p->names.ring);
    /* The consumer posts `shutdown` once after it set drained; the word is
     * the truth, the post only wakes us. A stop does not cut this short. */
    struct shmpc_waiter w = {.mon = &p->mon, .stop = NULL, .honor_stop = false, .deadline = 0};
    if ((rc = wait_consumer(p, &w, false)) != 0)
        return shmpc_seterr(rc, "wait for the consumer to drain %s: %s", p->names.ring, shmpc_last_error());
    if (shmpc_hook_producer_drained != NULL)
        shmpc_hook_producer_drained(p->names.ring);
    return remove_ring(p);
}

int shmpc_producer_close(shmpc_producer *p) {
    if (p == NULL)
        return 0;
    int rc = 0;
    if (!p->removed)
        rc = remove_ring(p);
    free(p);
    return rc;
}

uint64_t shmpc_producer_next(const shmpc_producer *p) {
    return p->removed ? p->last_head : atomic_load_explicit(&p->ring.h->head, SEQ);
}
int shmpc_producer_resumed(const shmpc_producer *p) { return p->resumed; }
int shmpc_producer_ended(const shmpc_producer *p) {
    return p->removed || (atomic_load_explicit(&p->ring.h->end, SEQ) & SHMPC_ENDED_BIT) != 0;
}
int shmpc_producer_huge(const shmpc_producer *p) { return (p->flags & SHMPC_FLAG_HUGE) != 0; }
uint64_t shmpc_producer_slots(const shmpc_producer *p) { return p->ring.g.slots; }
uint64_t shmpc_producer_slot_size(const shmpc_producer *p) { return p->ring.g.slot_size; }
uint64_t shmpc_producer_stream_items(const shmpc_producer *p) { return p->ring.stream_items; }
uint64_t shmpc_producer_stream_bytes(const shmpc_producer *p) { return p->ring.stream_bytes; }

void shmpc_producer_counters(const shmpc_producer *p, struct shmpc_counters *c) {
    if (p->removed)
        *c = p->last_counters;
    else
        shmpc_ring_counters(&p->ring, c);
}
