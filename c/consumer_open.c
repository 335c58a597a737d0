/* consumer_open.c: how a consumer finds the ring (waiting for its producer
 * when started first), takes its role and checks every object (docs/objects.md
 * "Ownership and permissions"), and how it lets everything go. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_WAIT_NS (10 * INT64_C(1000000000))

/* holder_pid returns the pid the ring's header names for role, for messages
 * (0 when it cannot be read). Only a segment that is one uid's is read. */
int shmpc_holder_pid(const struct shmpc_names *n, int role) {
    struct shmpc_seg_info info;
    if (shmpc_seg_lookup(n->key, &info) != 0 || info.uid != info.cuid)
        return 0;
    struct shmpc_segment seg;
    if (shmpc_seg_attach(&seg, &info) != 0)
        return 0;
    struct shmpc_ring r;
    int pid = 0;
    if (shmpc_ring_open(seg.mem, seg.size, &r) == 0 && strcmp(r.name, n->ring) == 0)
        pid = (int)shmpc_ident_load(role == SHMPC_ROLE_PRODUCER ? &r.h->producer : &r.h->consumer).pid;
    shmpc_seg_detach(&seg);
    return pid;
}

/* try_attach makes one attempt to take the consumer role and attach the
 * ring: 1 attached, 0 not there yet, <0 error. */
static int try_attach(shmpc_consumer *c) {
    int rc;
    if (!c->have_lock) {
        rc = shmpc_lock_claim(&c->lock, c->names.lock, SHMPC_ROLE_CONSUMER, false, 0, -1);
        if (rc == SHMPC_ENORING)
            return 0;
        if (rc == 1) {
            int pid = shmpc_holder_pid(&c->names, SHMPC_ROLE_CONSUMER);
            char who[32] = "";
            if (pid > 0)
                snprintf(who, sizeof who, " (pid %d)", pid);
            return shmpc_seterr(SHMPC_EBUSY, "ring %s already has a live consumer%s: role held by a live process",
                                c->names.ring, who);
        }
        if (rc != 0)
            return shmpc_seterr(rc, "open consumer for %s: %s", c->names.ring, shmpc_last_error());
        c->have_lock = true;
    }
    /* Nobody removes a lock file while we hold a role on it, but a process
     * that does not keep the rule may have: start over with the path's. */
    rc = shmpc_lock_stale(&c->lock);
    if (rc != 0) {
        shmpc_lock_close(&c->lock);
        c->have_lock = false;
        return rc < 0 ? rc : 0;
    }
    struct shmpc_seg_info info;
    rc = shmpc_seg_lookup(c->names.key, &info);
    if (rc == SHMPC_ENORING)
        return 0;
    if (rc != 0)
        return rc;
    uid_t lock_uid;
    if ((rc = shmpc_lock_owner(&c->lock, &lock_uid)) != 0)
        return rc;
    if (info.uid != lock_uid || info.cuid != lock_uid)
        return shmpc_seterr(SHMPC_EFOREIGN,
                            "segment key %#x of ring %s is owned by uid %u and was created by uid %u, its lock file is "
                            "owned by uid %u; it is not this ring's: let its creator remove it, or use another -name",
                            c->names.key, c->names.ring, (unsigned)info.uid, (unsigned)info.cuid, (unsigned)lock_uid);
    rc = shmpc_seg_attach(&c->seg, &info);
    if (rc == SHMPC_ENORING)
        return 0; /* removed in between */
    if (rc != 0)
        return rc;
    rc = shmpc_ring_open(c->seg.mem, c->seg.size, &c->ring);
    if (rc == SHMPC_ENORING) {
        shmpc_seg_detach(&c->seg);
        return 0; /* the producer is formatting it */
    }
    if (rc != 0) {
        shmpc_seg_detach(&c->seg);
        return shmpc_seterr(SHMPC_EFOREIGN, "segment key %#x is not a usable shmpc ring: %s", c->names.key,
                            shmpc_last_error());
    }
    if (strcmp(c->ring.name, c->names.ring) != 0 || c->ring.owner_uid != lock_uid) {
        shmpc_seg_detach(&c->seg);
        return shmpc_seterr(SHMPC_EFOREIGN, "segment key %#x holds ring \"%s\" of uid %u, not \"%s\" of uid %u",
                            c->names.key, c->ring.name, c->ring.owner_uid, c->names.ring, (unsigned)lock_uid);
    }
    rc = shmpc_sems_open(&c->sems, &c->names, false, 0777, lock_uid, false);
    if (rc != 0) {
        shmpc_seg_detach(&c->seg);
        return rc == SHMPC_ENORING ? 0 : rc;
    }
    shmpc_seg_pretouch(&c->seg);
    c->have_seg = c->have_sems = c->have_ring = true;
    return 1;
}

void shmpc_consumer_release_all(shmpc_consumer *c) {
    if (c->have_ring && c->have_lock && !c->drained) {
        /* Give the claim up: the header no longer names us. */
        struct shmpc_ident id = shmpc_ident_load(&c->ring.h->consumer);
        if (id.pid == (uint32_t)getpid()) {
            struct shmpc_ident none = {.pid = 0, .start = 0, .gen = id.gen};
            shmpc_ident_store(&c->ring.h->consumer, &none);
        }
    }
    shmpc_monitor_stop(&c->mon); /* it reads the header and the lock file */
    if (c->have_sems)
        shmpc_sems_close(&c->sems);
    if (c->have_seg)
        shmpc_seg_detach(&c->seg);
    if (c->have_lock) {
        shmpc_lock_leave(&c->lock, &c->names, SHMPC_ROLE_CONSUMER, false, 0);
        shmpc_lock_close(&c->lock);
    }
    c->have_sems = c->have_seg = c->have_lock = c->have_ring = false;
    if (c->bufs != NULL) {
        for (uint64_t i = 0; i < c->ring.g.slots; i++)
            free(c->bufs[i]);
        free(c->bufs);
        c->bufs = NULL;
    }
    shmpc_reader_free(&c->rd);
}

int shmpc_consumer_open(const char *name, const struct shmpc_consumer_opts *opts, shmpc_consumer **out) {
    if (out == NULL)
        return shmpc_seterr(SHMPC_EINVAL, "open consumer: no place for the result");
    *out = NULL;
    shmpc_consumer *c = calloc(1, sizeof *c);
    if (c == NULL)
        return shmpc_seterr(SHMPC_ESYS, "open consumer: out of memory");
    if (opts != NULL)
        c->opt = *opts;
    if (c->opt.wait_ns == 0)
        c->opt.wait_ns = DEFAULT_WAIT_NS;
    else if (c->opt.wait_ns < 0)
        c->opt.wait_ns = 0;
    if (c->opt.peer_timeout_ns < 0 || c->opt.stall_timeout_ns < 0 || c->opt.timeout_ns < 0) {
        free(c);
        return shmpc_seterr(SHMPC_EINVAL, "open consumer: peer timeout, stall timeout and timeout must not be negative");
    }
    c->lock.fd = -1;
    c->seg.id = -1;
    int rc = shmpc_names_for(name, &c->names);
    if (rc != 0) {
        free(c);
        return shmpc_seterr(rc, "open consumer: %s", shmpc_last_error());
    }
    c->opened = shmpc_now();
    int64_t deadline = c->opened + c->opt.wait_ns;
    sem_t *ready = NULL;
    for (int attempt = 0;; attempt++) {
        rc = try_attach(c);
        if (rc != 0)
            break;
        int64_t now = shmpc_now();
        if (now >= deadline) {
            char d[32];
            shmpc_fmt_duration(d, sizeof d, c->opt.wait_ns);
            rc = shmpc_seterr(SHMPC_ENORING, "no producer created ring %s within %s: ring not found", name, d);
            break;
        }
        if (c->opt.stop != NULL && *c->opt.stop) {
            rc = shmpc_seterr(SHMPC_ECANCELED, "open consumer for %s: stopped while waiting for the ring", name);
            break;
        }
        /* Sleep on `ready` once it exists (the producer posts it when the
         * ring is formatted); a stale post only makes us look once more.
         * Before it exists, poll gently. */
        if (ready == NULL && shmpc_sem_open_checked(c->names.sem[SHMPC_SEM_READY], -1, &ready) != 0)
            ready = NULL;
        int64_t step = deadline - now < 100000000 ? deadline - now : 100000000;
        if (ready == NULL) {
            int64_t poll = (1 + (attempt < 20 ? attempt : 20)) * INT64_C(1000000);
            shmpc_sleep_ns(poll < step ? poll : step);
        } else if ((rc = shmpc_sem_wait_until(ready, now + step)) < 0) {
            break;
        }
        rc = 0;
    }
    if (ready != NULL)
        sem_close(ready);
    if (rc < 0) {
        char msg[768];
        snprintf(msg, sizeof msg, "%s", shmpc_last_error());
        shmpc_consumer_release_all(c);
        free(c);
        return shmpc_seterr(rc, "%s", msg);
    }
    struct shmpc_header *h = c->ring.h;
    struct shmpc_ident self = shmpc_self();
    self.gen = shmpc_ident_load(&h->consumer).gen + 1;
    shmpc_ident_store(&h->consumer, &self);
    if ((rc = shmpc_reader_init(&c->rd, &c->ring)) != 0) {
        shmpc_consumer_release_all(c);
        free(c);
        return rc;
    }
    c->producer_gen = shmpc_ident_load(&h->producer).gen;
    c->mon = (struct shmpc_monitor){.evfd = -1, .lock = &c->lock, .role = SHMPC_ROLE_PRODUCER, .peer_id = &h->producer};
    c->space = (struct shmpc_bell){.waiting = &h->producer_waiting, .sem = c->sems.s[SHMPC_SEM_EMPTY],
                                   .counter = &h->consumer_wakes};
    c->items = (struct shmpc_bell){.waiting = &h->consumer_waiting, .sem = c->sems.s[SHMPC_SEM_FILLED],
                                   .counter = &h->consumer_sleeps};
    /* Look once now: a producer alive at attach is one we have seen, so its
     * death later is a death (peer timeout), not a ring found orphaned. */
    if (shmpc_lock_held(&c->lock, SHMPC_ROLE_PRODUCER) == 1)
        c->seen = true;
    *out = c;
    return 0;
}

int shmpc_consumer_close(shmpc_consumer *c) {
    if (c == NULL)
        return 0;
    shmpc_consumer_release_all(c);
    free(c);
    return 0;
}
