/* consumer.c: the consumer role once attached: acquire, verify, release,
 * the wait for items and for a lost producer, the drain and the survivor's
 * cleanup (docs/protocol.md "The consumer", docs/failures.md "Waiting for a
 * peer", docs/objects.md "Who removes what"). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define SEQ memory_order_seq_cst
#define RLX memory_order_relaxed
#define FIRST_PEER_LOOK_NS (100 * INT64_C(1000000))
#define CLEANUP_WAIT_NS (5 * INT64_C(1000000000))

/* fail makes code the consumer's sticky error, with the current message. */
static int fail(shmpc_consumer *c, int code) {
    c->err = code;
    snprintf(c->errmsg, sizeof c->errmsg, "%s", shmpc_last_error());
    return code;
}

/* remove_if_producer_gone removes every object of the ring when no producer
 * holds its role and the ring is ours to remove (the survivor's cleanup),
 * holding the gate and both roles. It reports whether the ring is gone. */
static bool remove_if_producer_gone(shmpc_consumer *c) {
    if (!c->have_lock)
        return false;
    if (shmpc_lock_stale(&c->lock) == 1)
        return true;
    bool before[2];
    if (shmpc_lock_all(&c->lock, before) != 0)
        return false;
    int st = shmpc_lock_stale(&c->lock);
    if (st != 0) {
        shmpc_lock_undo_all(&c->lock, before);
        return st == 1;
    }
    if (c->ring.owner_uid != geteuid() && geteuid() != 0) {
        shmpc_logf(c->opt.log, c->opt.log_arg, "ring %s belongs to uid %u: leaving its objects for its owner (shmpc gc)",
                   c->names.ring, c->ring.owner_uid);
        shmpc_lock_undo_all(&c->lock, before);
        return true;
    }
    shmpc_seg_remove(&c->seg);
    shmpc_sems_unlink(&c->names);
    shmpc_lock_remove(&c->lock);
    shmpc_lock_undo_all(&c->lock, before);
    return true;
}

/* finish marks the ring drained, tells the producer, lets the role go and
 * waits (up to 5 s) for the producer to remove the ring, removing it itself
 * once the producer's role is free. */
static int finish(shmpc_consumer *c) {
    if (c->drained)
        return 0;
    atomic_store_explicit(&c->ring.h->drained, 1, SEQ);
    c->drained = true;
    int rc = shmpc_sem_post(c->sems.s[SHMPC_SEM_SHUTDOWN]);
    shmpc_monitor_stop(&c->mon);
    shmpc_lock_unlock(&c->lock, SHMPC_ROLE_CONSUMER);
    int64_t deadline = shmpc_now() + CLEANUP_WAIT_NS, step = 500000;
    for (;;) {
        if (shmpc_lock_stale(&c->lock) != 0)
            break; /* the producer removed the ring */
        if (remove_if_producer_gone(c))
            break;
        if (shmpc_now() >= deadline) {
            shmpc_logf(c->opt.log, c->opt.log_arg,
                       "the producer of %s did not remove the ring within 5s after the stream was drained; leaving it "
                       "to the producer (or shmpc gc)",
                       c->names.ring);
            break;
        }
        shmpc_sleep_ns(step);
        step = step * 2 < 20000000 ? step * 2 : 20000000;
    }
    return rc;
}

static int producer_gone(shmpc_consumer *c, const char *what) {
    shmpc_count_loss(&c->ring.h->producer, &c->ring.h->consumer_lost_gen, &c->ring.h->consumer_losses);
    uint64_t delivered = atomic_load_explicit(&c->ring.h->items, RLX);
    uint64_t total = c->ring.stream_items;
    char report[160];
    if (total > 0) {
        uint64_t lost = total > c->rd.next ? total - c->rd.next : 0;
        snprintf(report, sizeof report, "%llu items delivered, %llu lost", (unsigned long long)delivered,
                 (unsigned long long)lost);
    } else {
        snprintf(report, sizeof report,
                 "%llu items delivered, the number lost is unknown (the stream's length was not given)",
                 (unsigned long long)delivered);
    }
    shmpc_seterr(SHMPC_EPEERLOST, "producer of %s %s: %s: peer lost", c->names.ring, what, report);
    char msg[768];
    snprintf(msg, sizeof msg, "%s", shmpc_last_error());
    remove_if_producer_gone(c);
    shmpc_seterr(SHMPC_EPEERLOST, "%s", msg);
    return fail(c, SHMPC_EPEERLOST);
}

static bool items_ready(void *arg) {
    shmpc_consumer *c = arg;
    if (atomic_load_explicit(&c->ring.h->head, SEQ) != c->rd.next)
        return true;
    return (atomic_load_explicit(&c->ring.h->end, SEQ) & SHMPC_ENDED_BIT) != 0;
}

/* producer_changed reports whether the producer's identity in the header
 * differs from the one read when the producer was last judged present. */
static bool producer_changed(shmpc_consumer *c) {
    struct shmpc_ident id = shmpc_ident_load(&c->ring.h->producer);
    return id.pid != c->judged.pid || id.start != c->judged.start || id.gen != c->judged.gen;
}

/* items_or_change is the armed sleep's condition: an item, the end, or a
 * change of the producer's claim (a producer that removes the ring gives
 * its claim up, then rings: docs/protocol.md "Claim identities"). */
static bool items_or_change(void *arg) {
    shmpc_consumer *c = arg;
    return items_ready(c) || producer_changed(c);
}

/* wait_items sleeps until an item is published or the stream ends. While
 * the producer is present the wait has no bound; once it is gone, a new
 * producer has the peer timeout to come (docs/failures.md). */
static int wait_items(shmpc_consumer *c, struct shmpc_waiter *w) {
    int64_t gone_since = 0, stall_since = shmpc_now();
    bool fired;
    char d[32];
    while (!items_ready(c)) {
        int rc;
        if (c->fast) {
            if ((rc = shmpc_sleep(w, &c->items, NULL, items_or_change, c, 0, true, &fired)) != 0)
                return rc;
            if (fired || producer_changed(c))
                c->fast = false; /* judge the change (after looking at the ring) */
            continue;
        }
        /* The claim generation before the lock: a producer attaching between
         * the two looks is not taken for one that came and left. */
        uint64_t gen = shmpc_ident_load(&c->ring.h->producer).gen;
        bool present = shmpc_lock_held(&c->lock, SHMPC_ROLE_PRODUCER) == 1;
        if (present)
            c->seen = true;
        int64_t now = shmpc_now(), limit = 0;
        if (!present && !c->seen && gen == c->producer_gen) {
            /* We attached to a ring whose producer was gone: wait for a new
             * one as a consumer started first does. */
            if (now >= c->opened + c->opt.wait_ns) {
                shmpc_fmt_duration(d, sizeof d, c->opt.wait_ns);
                char what[96];
                snprintf(what, sizeof what, "is gone and no new producer came within %s", d);
                return producer_gone(c, what);
            }
            limit = now + FIRST_PEER_LOOK_NS;
            if (c->opened + c->opt.wait_ns < limit)
                limit = c->opened + c->opt.wait_ns;
        } else if (!present) {
            if (gone_since == 0)
                gone_since = now;
            shmpc_count_loss(&c->ring.h->producer, &c->ring.h->consumer_lost_gen, &c->ring.h->consumer_losses);
            limit = gone_since + c->opt.peer_timeout_ns;
            if (now >= limit)
                return producer_gone(c, "is gone");
        } else {
            gone_since = 0;
            /* The identity before the segment: a producer removes the
             * segment before it gives its claim up, so a claim given up after
             * this read is seen by the armed sleep, and one given up before
             * it comes with the segment's removal, seen here. */
            c->judged = shmpc_ident_load(&c->ring.h->producer);
            /* A live producer role on a ring whose segment was removed is a
             * new producer's, on a new segment we never see (ours closed
             * without ending the stream): waiting for it would wait for
             * ever, and it for us. */
            if (shmpc_seg_marked_removed(&c->seg))
                return producer_gone(c, "removed the ring without ending its stream");
            if (c->opt.stall_timeout_ns > 0) {
                limit = stall_since + c->opt.stall_timeout_ns;
                if (now >= limit) {
                    shmpc_fmt_duration(d, sizeof d, c->opt.stall_timeout_ns);
                    char what[96];
                    snprintf(what, sizeof what, "published nothing for %s", d);
                    return producer_gone(c, what);
                }
            } else {
                c->fast = true;
                continue;
            }
        }
        if ((rc = shmpc_sleep(w, &c->items, NULL, items_ready, c, limit, present, &fired)) != 0)
            return rc;
    }
    return 0;
}

static uint8_t *copy_buf(shmpc_consumer *c, uint64_t seq) {
    if (c->bufs == NULL && (c->bufs = calloc(c->ring.g.slots, sizeof *c->bufs)) == NULL)
        return NULL;
    uint64_t i = seq % c->ring.g.slots;
    if (c->bufs[i] == NULL)
        c->bufs[i] = malloc(c->ring.g.slot_size ? c->ring.g.slot_size : 1);
    return c->bufs[i];
}

int shmpc_acquire(shmpc_consumer *c, struct shmpc_item *item) {
    if (c == NULL || item == NULL)
        return shmpc_seterr(SHMPC_EINVAL, "acquire: no consumer or no item");
    if (c->err != 0)
        return shmpc_seterr(c->err, "%s", c->errmsg);
    if (!c->have_ring)
        return shmpc_seterr(SHMPC_ECLOSED, "acquire: consumer is closed");
    struct shmpc_waiter w = {.mon = &c->mon, .stop = c->opt.stop, .honor_stop = true,
                             .deadline = c->opt.timeout_ns > 0 ? shmpc_now() + c->opt.timeout_ns : 0};
    uint64_t seq, len;
    uint32_t crc;
    for (;;) {
        if (w.stop != NULL && *w.stop)
            return shmpc_seterr(SHMPC_ECANCELED, "acquire from %s: stopped", c->names.ring);
        int r = shmpc_reader_peek(&c->rd, &seq, &len, &crc);
        if (r == 0)
            break;
        if (r < 0) {
            shmpc_seterr(r, "acquire from %s: %s", c->names.ring, shmpc_last_error());
            return fail(c, r);
        }
        if (r == SHMPC_EOF) {
            c->eof = true;
            if (c->rd.pending == 0 && !c->drained) {
                int rc = finish(c);
                if (rc != 0)
                    return rc;
            }
            return shmpc_seterr(SHMPC_EENDED, "the stream of %s ended: every item was acquired", c->names.ring);
        }
        if ((r = wait_items(c, &w)) != 0)
            return r;
    }
    shmpc_reader_mark(&c->rd, seq, len);
    const uint8_t *slot = shmpc_slot(&c->ring, seq);
    const uint8_t *data = slot;
    uint32_t got;
    if (c->opt.copy) {
        uint8_t *buf = copy_buf(c, seq);
        if (buf == NULL) {
            shmpc_seterr(SHMPC_ESYS, "acquire from %s: cannot allocate a copy buffer of %llu bytes", c->names.ring,
                         (unsigned long long)c->ring.g.slot_size);
            return fail(c, SHMPC_ESYS);
        }
        got = shmpc_copy_crc32c_dst(0, buf, slot, len); /* the checksum of the copy */
        data = buf;
    } else {
        got = shmpc_crc32c(0, slot, len);
    }
    if (got != crc) {
        atomic_fetch_add_explicit(&c->ring.h->integrity, 1, RLX);
        shmpc_seterr(SHMPC_EINTEGRITY,
                     "item %llu of %s: verify item: crc32c: item %llu (%llu bytes): computed %#010x, descriptor says "
                     "%#010x: integrity error; the item was not delivered",
                     (unsigned long long)seq, c->names.ring, (unsigned long long)seq, (unsigned long long)len, got, crc);
        return fail(c, SHMPC_EINTEGRITY);
    }
    item->seq = seq;
    item->data = data;
    item->len = (size_t)len;
    item->crc = crc;
    return 0;
}

int shmpc_release(shmpc_consumer *c, uint64_t seq) {
    if (c == NULL)
        return shmpc_seterr(SHMPC_EINVAL, "release: no consumer");
    if (!c->have_ring)
        return shmpc_seterr(SHMPC_ECLOSED, "release item %llu: consumer is closed", (unsigned long long)seq);
    uint64_t len;
    int rc = shmpc_reader_release(&c->rd, seq, &len);
    if (rc != 0)
        return rc;
    atomic_store_explicit(&c->ring.h->app[1], (uint64_t)shmpc_unix_ns(), RLX);
    if ((rc = shmpc_bell_ring(&c->space)) != 0)
        return rc;
    if (c->eof && c->rd.pending == 0 && !c->drained)
        return finish(c);
    return 0;
}

int shmpc_consumer_huge(const shmpc_consumer *c) { return (c->ring.flags & SHMPC_FLAG_HUGE) != 0; }
uint64_t shmpc_consumer_slot_size(const shmpc_consumer *c) { return c->ring.g.slot_size; }
uint64_t shmpc_consumer_stream_items(const shmpc_consumer *c) { return c->ring.stream_items; }

uint64_t shmpc_consumer_first_reserve_ns(const shmpc_consumer *c) {
    if (!c->have_ring)
        return 0;
    return atomic_load_explicit(&c->ring.h->app[0], RLX);
}

void shmpc_consumer_counters(const shmpc_consumer *c, struct shmpc_counters *cnt) {
    memset(cnt, 0, sizeof *cnt);
    if (c->have_ring)
        shmpc_ring_counters(&c->ring, cnt);
}
