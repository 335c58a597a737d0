/* producer_open.c: how a producer takes its role and creates or resumes its
 * ring (docs/objects.md "Who creates what", docs/protocol.md "Creating a ring"
 * and "Resume"), and how a failed open undoes what it made. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define SEQ memory_order_seq_cst
#define DEFAULT_SLOTS 8
#define DEFAULT_SLOT_SIZE (UINT64_C(8) << 20)
#define DEFAULT_WAIT_NS (10 * INT64_C(1000000000))
#define MAX_SLOT_SIZE (UINT64_C(1) << 40)

static int check_opts(struct shmpc_producer_opts *o) {
    if (o->slots == 0)
        o->slots = DEFAULT_SLOTS;
    if (o->slot_size == 0)
        o->slot_size = DEFAULT_SLOT_SIZE;
    if (o->slots > SHMPC_MAX_SLOTS)
        return shmpc_seterr(SHMPC_EINVAL, "open producer: slots %llu: want 1 to %u", (unsigned long long)o->slots,
                            SHMPC_MAX_SLOTS);
    if (o->slot_size % 4096 != 0 || o->slot_size > MAX_SLOT_SIZE)
        return shmpc_seterr(SHMPC_EINVAL, "open producer: slot size %llu: want a positive multiple of 4096, at most 1 TiB",
                            (unsigned long long)o->slot_size);
    if (o->perm == 0)
        o->perm = 0600;
    if ((o->perm & ~0777u) != 0 || (o->perm & 0600) != 0600)
        return shmpc_seterr(SHMPC_EINVAL, "open producer: permission %#o: want bits within 0777 that include 0600",
                            o->perm);
    if (o->hugepages != SHMPC_AUTO && o->hugepages != SHMPC_ON && o->hugepages != SHMPC_OFF)
        return shmpc_seterr(SHMPC_EINVAL, "open producer: hugepages %d: want SHMPC_AUTO, SHMPC_ON or SHMPC_OFF",
                            o->hugepages);
    if (o->wait_ns == 0)
        o->wait_ns = DEFAULT_WAIT_NS;
    else if (o->wait_ns < 0)
        o->wait_ns = 0;
    if (o->peer_timeout_ns < 0 || o->stall_timeout_ns < 0 || o->timeout_ns < 0)
        return shmpc_seterr(SHMPC_EINVAL, "open producer: peer timeout, stall timeout and timeout must not be negative");
    return 0;
}

static int create_ring(shmpc_producer *p, uid_t uid) {
    struct shmpc_geometry g;
    int rc = shmpc_geometry(p->opt.slots, p->opt.slot_size, &g);
    if (rc != 0)
        return shmpc_seterr(SHMPC_EINVAL, "size ring %s: %s", p->names.ring, shmpc_last_error());
    p->new_ring = true;
    /* Semaphores first, segment last: a consumer that finds a formatted
     * segment finds the semaphores too. */
    if ((rc = shmpc_sems_open(&p->sems, &p->names, true, p->opt.perm, uid, true)) != 0)
        return rc;
    p->have_sems = true;
    char note[512];
    rc = shmpc_seg_create(&p->seg, p->names.key, g.total, p->opt.hugepages, p->opt.perm, !p->opt.pretouch_off, note,
                          sizeof note);
    if (rc != 0)
        return shmpc_seterr(rc, "create segment of %s: %s", p->names.ring, shmpc_last_error());
    p->have_seg = true;
    if (note[0])
        shmpc_logf(p->opt.log, p->opt.log_arg, "%s", note);
    uint32_t flags = SHMPC_FLAG_MADVISE;
    if (p->seg.huge)
        flags |= SHMPC_FLAG_HUGE;
    if (!p->opt.pretouch_off)
        flags |= SHMPC_FLAG_PRETOUCH;
    struct shmpc_format_cfg cfg = {
        .name = p->names.ring, .slots = p->opt.slots, .slot_size = p->opt.slot_size, .flags = flags,
        .owner_uid = (uint32_t)uid, .stream_items = p->opt.stream_items, .stream_bytes = p->opt.stream_bytes,
    };
    if ((rc = shmpc_ring_format(p->seg.mem, p->seg.size, &cfg, &p->ring)) != 0)
        return shmpc_seterr(rc, "format ring %s: %s", p->names.ring, shmpc_last_error());
    p->have_ring = true;
    return 0;
}

/* attach_or_create resumes the existing ring or creates a new one. The
 * producer role is held, so no other producer races this. */
static int attach_or_create(shmpc_producer *p, uid_t uid) {
    struct shmpc_seg_info info;
    int rc = shmpc_seg_lookup(p->names.key, &info);
    if (rc == SHMPC_ENORING)
        return create_ring(p, uid);
    if (rc != 0)
        return rc;
    const char *ring = p->names.ring;
    if (info.uid != uid || info.cuid != uid)
        return shmpc_seterr(SHMPC_EFOREIGN,
                            "segment key %#x of ring %s is owned by uid %u and was created by uid %u, not ours (uid %u); "
                            "it is not adopted: let its creator remove it, or use another -name",
                            p->names.key, ring, (unsigned)info.uid, (unsigned)info.cuid, (unsigned)uid);
    if ((info.mode & ~p->opt.perm) != 0)
        return shmpc_seterr(SHMPC_EFOREIGN,
                            "segment key %#x of ring %s has mode %#o, which grants %#o beyond %#o; remove it (shmpc gc "
                            "-name %s) or give -perm %#o",
                            p->names.key, ring, info.mode, info.mode & ~p->opt.perm, p->opt.perm, ring,
                            info.mode | p->opt.perm);
    if ((rc = shmpc_seg_attach(&p->seg, &info)) != 0)
        return shmpc_seterr(rc, "attach segment of %s: %s", ring, shmpc_last_error());
    p->have_seg = true;
    rc = shmpc_ring_open(p->seg.mem, p->seg.size, &p->ring);
    if (rc != 0)
        return shmpc_seterr(SHMPC_EFOREIGN,
                            "segment key %#x is not a usable shmpc ring (%s); if it is a leftover, run `shmpc gc`: object "
                            "is not this ring's",
                            p->names.key, shmpc_last_error());
    if (strcmp(p->ring.name, ring) != 0)
        return shmpc_seterr(SHMPC_EFOREIGN, "segment key %#x holds ring \"%s\", not \"%s\" (key collision)",
                            p->names.key, p->ring.name, ring);
    if (p->ring.owner_uid != uid)
        return shmpc_seterr(SHMPC_EFOREIGN, "ring %s is owned by uid %u: object is not this ring's", ring,
                            p->ring.owner_uid);
    if (p->opt.fresh) {
        if (shmpc_lock_held(&p->lock, SHMPC_ROLE_CONSUMER) == 1)
            return shmpc_seterr(SHMPC_EBUSY,
                                "ring %s has a live consumer; stop it before discarding the ring (-fresh): role held by "
                                "a live process",
                                ring);
        shmpc_seg_detach(&p->seg);
        p->have_seg = false;
        struct shmpc_segment old = p->seg;
        old.removed = false;
        if ((rc = shmpc_seg_remove(&old)) != 0)
            return rc;
        if ((rc = shmpc_sems_unlink(&p->names)) != 0)
            return rc;
        shmpc_logf(p->opt.log, p->opt.log_arg, "discarded the existing ring %s (-fresh)", ring);
        return create_ring(p, uid);
    }
    uint64_t head = atomic_load_explicit(&p->ring.h->head, SEQ);
    if (p->opt.no_resume)
        return shmpc_seterr(SHMPC_EEXISTS,
                            "ring %s exists (%llu items committed) and this stream cannot resume it; discard it with "
                            "-fresh: ring exists",
                            ring, (unsigned long long)head);
    if ((p->given_slots != 0 && p->given_slots != p->ring.g.slots) ||
        (p->given_size != 0 && p->given_size != p->ring.g.slot_size))
        return shmpc_seterr(SHMPC_EGEOMETRY,
                            "ring %s has %llu slots of %llu bytes, not %llu of %llu; leave the geometry out to resume it, "
                            "or discard it (-fresh): ring geometry differs",
                            ring, (unsigned long long)p->ring.g.slots, (unsigned long long)p->ring.g.slot_size,
                            (unsigned long long)p->opt.slots, (unsigned long long)p->opt.slot_size);
    if (p->opt.check_stream &&
        (p->ring.stream_items != p->opt.stream_items || p->ring.stream_bytes != p->opt.stream_bytes))
        return shmpc_seterr(SHMPC_EGEOMETRY,
                            "ring %s was started for %llu items (%llu bytes), not %llu (%llu bytes): leave the totals "
                            "(-count/-bytes) out to resume it, or discard it (-fresh): ring geometry differs",
                            ring, (unsigned long long)p->ring.stream_items, (unsigned long long)p->ring.stream_bytes,
                            (unsigned long long)p->opt.stream_items, (unsigned long long)p->opt.stream_bytes);
    p->opt.slots = p->ring.g.slots;
    p->opt.slot_size = p->ring.g.slot_size;
    if (!p->opt.pretouch_off)
        shmpc_seg_pretouch(&p->seg);
    if ((rc = shmpc_sems_open(&p->sems, &p->names, true, p->opt.perm, uid, true)) != 0)
        return rc;
    p->have_sems = true;
    p->have_ring = true;
    p->resumed = true;
    return 0;
}

/* abandon undoes a failed open: it removes what the open created and
 * nothing that existed before. */
static void abandon(shmpc_producer *p) {
    char msg[768];
    snprintf(msg, sizeof msg, "%s", shmpc_last_error());
    if (p->have_seg && p->new_ring)
        shmpc_seg_remove(&p->seg);
    if (p->have_seg)
        shmpc_seg_detach(&p->seg);
    if (p->have_sems) {
        shmpc_sems_close(&p->sems);
        if (p->new_ring)
            shmpc_sems_unlink(&p->names);
    }
    if (p->have_lock) {
        if (!p->resumed)
            shmpc_lock_leave(&p->lock, &p->names, SHMPC_ROLE_PRODUCER, p->lock.created, 0);
        shmpc_lock_close(&p->lock);
    }
    shmpc_seterr(SHMPC_OK, "%s", msg);
}

int shmpc_producer_open(const char *name, const struct shmpc_producer_opts *opts, shmpc_producer **out) {
    if (out == NULL)
        return shmpc_seterr(SHMPC_EINVAL, "open producer: no place for the result");
    *out = NULL;
    shmpc_producer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return shmpc_seterr(SHMPC_ESYS, "open producer: out of memory");
    if (opts != NULL)
        p->opt = *opts;
    p->given_slots = p->opt.slots;
    p->given_size = p->opt.slot_size;
    p->lock.fd = -1;
    p->seg.id = -1;
    p->started = shmpc_now();
    int rc = check_opts(&p->opt);
    if (rc == 0 && (rc = shmpc_names_for(name, &p->names)) != 0)
        shmpc_seterr(rc, "open producer: %s", shmpc_last_error());
    if (rc != 0) {
        free(p);
        return rc;
    }
    uid_t uid = geteuid();
    rc = shmpc_lock_claim(&p->lock, p->names.lock, SHMPC_ROLE_PRODUCER, true, p->opt.perm, (int)uid);
    if (rc == 1) {
        int pid = shmpc_holder_pid(&p->names, SHMPC_ROLE_PRODUCER);
        char who[32] = "";
        if (pid > 0)
            snprintf(who, sizeof who, " (pid %d)", pid);
        free(p);
        return shmpc_seterr(SHMPC_EBUSY, "ring %s already has a live producer%s: role held by a live process", name, who);
    }
    if (rc != 0) {
        free(p);
        return shmpc_seterr(rc, "open producer for %s: %s", name, shmpc_last_error());
    }
    p->have_lock = true;
    /* The file may have been made by gc or an earlier producer with narrower
     * bits: the owner of the ring sets its own. */
    if (fchmod(p->lock.fd, p->opt.perm) != 0)
        rc = shmpc_syserr(errno, "open producer for %s: chmod lock file", name);
    if (rc == 0)
        rc = attach_or_create(p, uid);
    if (rc != 0) {
        abandon(p);
        free(p);
        return rc;
    }
    struct shmpc_header *h = p->ring.h;
    struct shmpc_ident self = shmpc_self();
    self.gen = shmpc_ident_load(&h->producer).gen + 1;
    shmpc_ident_store(&h->producer, &self);
    /* A consumer that attached while this open ran counts as one that came:
     * a ring created here started at generation 0. */
    if (p->resumed)
        p->consumer_gen = shmpc_ident_load(&h->consumer).gen;
    p->tail_at_open = atomic_load_explicit(&h->tail, SEQ);
    p->w = (struct shmpc_writer){.r = &p->ring, .head = atomic_load_explicit(&h->head, SEQ)};
    p->flags = p->ring.flags;
    p->mon = (struct shmpc_monitor){.evfd = -1, .lock = &p->lock, .role = SHMPC_ROLE_CONSUMER, .peer_id = &h->consumer};
    p->to_consumer = (struct shmpc_bell){.waiting = &h->consumer_waiting, .sem = p->sems.s[SHMPC_SEM_FILLED],
                                         .counter = &h->producer_wakes};
    p->space = (struct shmpc_bell){.waiting = &h->producer_waiting, .sem = p->sems.s[SHMPC_SEM_EMPTY],
                                   .counter = &h->producer_sleeps};
    if ((rc = shmpc_sem_post(p->sems.s[SHMPC_SEM_READY])) != 0) {
        abandon(p);
        free(p);
        return rc;
    }
    if (p->resumed) {
        shmpc_logf(p->opt.log, p->opt.log_arg, "resuming ring %s at item %llu (%llu released)", name,
                   (unsigned long long)p->w.head, (unsigned long long)p->tail_at_open);
        uint64_t e = atomic_load_explicit(&h->end, SEQ);
        if (e & SHMPC_ENDED_BIT)
            shmpc_logf(p->opt.log, p->opt.log_arg,
                       "the stream of %s ended at item %llu: nothing left to send; End finishes it", name,
                       (unsigned long long)(e & ~SHMPC_ENDED_BIT));
    }
    *out = p;
    return 0;
}
