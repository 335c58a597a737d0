/* ring.c: the ring inside the segment (docs/protocol.md): geometry, format,
 * validation at open, identities, counters, and the writer's and reader's
 * index protocol. Every shared word goes through <stdatomic.h>; the orders
 * are those of the protocol's memory-ordering table (seq_cst where a doorbell
 * needs a store-then-load order). */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define RLX memory_order_relaxed
#define ACQ memory_order_acquire
#define REL memory_order_release
#define SEQ memory_order_seq_cst

static uint64_t round_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

int shmpc_geometry(uint64_t slots, uint64_t slot_size, struct shmpc_geometry *g) {
    if (slots < 1 || slots > SHMPC_MAX_SLOTS)
        return shmpc_seterr(SHMPC_ECORRUPT, "ring geometry: slots %llu is not in 1..%u", (unsigned long long)slots,
                            SHMPC_MAX_SLOTS);
    if (slot_size < 1 || slot_size > SHMPC_MAX_SLOT_SIZE)
        return shmpc_seterr(SHMPC_ECORRUPT, "ring geometry: slot size %llu is not in 1..%llu",
                            (unsigned long long)slot_size, (unsigned long long)SHMPC_MAX_SLOT_SIZE);
    g->slots = slots;
    g->slot_size = slot_size;
    g->align = slot_size % SHMPC_HUGE_PAGE == 0 ? SHMPC_HUGE_PAGE : SHMPC_PAGE;
    g->stride = round_up(slot_size, g->align);
    g->desc_off = SHMPC_HEADER_SIZE;
    g->data_off = round_up(g->desc_off + slots * SHMPC_DESC_SIZE, g->align);
    uint64_t data, total;
    if (__builtin_mul_overflow(slots, g->stride, &data) || __builtin_add_overflow(g->data_off, data, &total) ||
        total > (uint64_t)INT64_MAX)
        return shmpc_seterr(SHMPC_ECORRUPT, "ring geometry: %llu slots of %llu bytes overflow the address space",
                            (unsigned long long)slots, (unsigned long long)slot_size);
    g->total = total;
    return 0;
}

static void zero_identity(struct shmpc_identity *id) {
    atomic_store_explicit(&id->seq, 0, RLX);
    atomic_store_explicit(&id->pid, 0, RLX);
    atomic_store_explicit(&id->rsv0, 0, RLX);
    atomic_store_explicit(&id->start, 0, RLX);
    atomic_store_explicit(&id->gen, 0, RLX);
    for (int i = 0; i < 4; i++)
        atomic_store_explicit(&id->rsv1[i], 0, RLX);
}

#define ZERO(f) atomic_store_explicit(&h->f, 0, RLX)
#define ZERO_ARR(f)                                                    \
    for (size_t i_ = 0; i_ < sizeof h->f / sizeof h->f[0]; i_++) \
    atomic_store_explicit(&h->f[i_], 0, RLX)

/* zero_header stores 0 into every word of the header after the magic. */
static void zero_header(struct shmpc_header *h) {
    ZERO(version), ZERO(header_size), ZERO(slots), ZERO(slot_size), ZERO(slot_stride), ZERO(slot_align);
    ZERO(desc_offset), ZERO(data_offset), ZERO(total_size), ZERO(flags), ZERO(owner_uid);
    ZERO(stream_items), ZERO(stream_bytes), ZERO(name_len);
    ZERO_ARR(rsv104);
    ZERO_ARR(name);
    ZERO(end), ZERO(drained);
    ZERO_ARR(rsv208);
    zero_identity(&h->producer);
    zero_identity(&h->consumer);
    ZERO(items), ZERO(bytes), ZERO(integrity);
    ZERO_ARR(rsv408);
    ZERO_ARR(app);
    ZERO(head), ZERO(committed_bytes), ZERO(producer_sleeps), ZERO(producer_wakes), ZERO(producer_losses);
    ZERO(producer_lost_gen);
    ZERO_ARR(rsv560);
    ZERO(tail), ZERO(consumer_sleeps), ZERO(consumer_wakes), ZERO(consumer_losses), ZERO(consumer_lost_gen);
    ZERO_ARR(rsv616);
    ZERO(consumer_waiting);
    ZERO_ARR(rsv644);
    ZERO(producer_waiting);
    ZERO_ARR(rsv708);
}

static int check_buffer(const void *buf, uint64_t len, uint64_t need) {
    if (len < SHMPC_HEADER_SIZE || len < need)
        return shmpc_seterr(SHMPC_ECORRUPT, "ring buffer: %llu bytes is shorter than the %llu the ring needs",
                            (unsigned long long)len,
                            (unsigned long long)(need > SHMPC_HEADER_SIZE ? need : SHMPC_HEADER_SIZE));
    if ((uintptr_t)buf % 8 != 0)
        return shmpc_seterr(SHMPC_ECORRUPT, "ring buffer: address is not 8-byte aligned");
    return 0;
}

static void fill_view(struct shmpc_ring *r, void *buf, uint64_t len, const struct shmpc_geometry *g) {
    r->base = (uint8_t *)buf;
    r->len = len;
    r->h = (struct shmpc_header *)buf;
    r->descs = (struct shmpc_desc *)(r->base + g->desc_off);
    r->g = *g;
}

int shmpc_ring_format(void *buf, uint64_t len, const struct shmpc_format_cfg *cfg, struct shmpc_ring *r) {
    size_t nl = strlen(cfg->name);
    if (nl < 1 || nl > SHMPC_MAX_NAME)
        return shmpc_seterr(SHMPC_EINVAL, "format ring: name: %zu bytes is not in 1..%d", nl, SHMPC_MAX_NAME);
    struct shmpc_geometry g;
    int rc = shmpc_geometry(cfg->slots, cfg->slot_size, &g);
    if (rc != 0)
        return rc;
    if ((rc = check_buffer(buf, len, g.total)) != 0)
        return rc;
    struct shmpc_header *h = (struct shmpc_header *)buf;
    struct shmpc_desc *d = (struct shmpc_desc *)((uint8_t *)buf + g.desc_off);
    atomic_store_explicit(&h->magic, 0, SEQ);
    zero_header(h);
    for (uint64_t i = 0; i < g.slots; i++) {
        atomic_store_explicit(&d[i].seq, 0, RLX);
        atomic_store_explicit(&d[i].length, 0, RLX);
        atomic_store_explicit(&d[i].crc, 0, RLX);
        atomic_store_explicit(&d[i].flags, 0, RLX);
    }
    atomic_store_explicit(&h->version, SHMPC_VERSION, RLX);
    atomic_store_explicit(&h->header_size, SHMPC_HEADER_SIZE, RLX);
    atomic_store_explicit(&h->slots, g.slots, RLX);
    atomic_store_explicit(&h->slot_size, g.slot_size, RLX);
    atomic_store_explicit(&h->slot_stride, g.stride, RLX);
    atomic_store_explicit(&h->slot_align, g.align, RLX);
    atomic_store_explicit(&h->desc_offset, g.desc_off, RLX);
    atomic_store_explicit(&h->data_offset, g.data_off, RLX);
    atomic_store_explicit(&h->total_size, g.total, RLX);
    atomic_store_explicit(&h->flags, cfg->flags, RLX);
    atomic_store_explicit(&h->owner_uid, cfg->owner_uid, RLX);
    atomic_store_explicit(&h->stream_items, cfg->stream_items, RLX);
    atomic_store_explicit(&h->stream_bytes, cfg->stream_bytes, RLX);
    uint8_t name[SHMPC_MAX_NAME] = {0};
    memcpy(name, cfg->name, nl);
    for (int i = 0; i < 8; i++) {
        uint64_t w;
        memcpy(&w, name + 8 * i, 8); /* little-endian: byte i at offset 128 + i */
        atomic_store_explicit(&h->name[i], w, RLX);
    }
    atomic_store_explicit(&h->name_len, nl, RLX);
    atomic_store_explicit(&h->magic, SHMPC_MAGIC, REL); /* publishes everything above */
    fill_view(r, buf, len, &g);
    memcpy(r->name, cfg->name, nl + 1);
    r->flags = cfg->flags;
    r->owner_uid = cfg->owner_uid;
    r->stream_items = cfg->stream_items;
    r->stream_bytes = cfg->stream_bytes;
    return 0;
}

/* check_indices validates head, tail, end and drained, read in the reverse
 * of their write order (drained, end, tail, head, tail again). */
static int check_indices(struct shmpc_header *h, uint64_t slots) {
    uint64_t drained = atomic_load_explicit(&h->drained, ACQ);
    uint64_t end = atomic_load_explicit(&h->end, ACQ);
    uint64_t t1 = atomic_load_explicit(&h->tail, ACQ);
    uint64_t head = atomic_load_explicit(&h->head, ACQ);
    uint64_t t2 = atomic_load_explicit(&h->tail, ACQ);
    if (t2 < t1)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: tail went back from %llu to %llu", (unsigned long long)t1,
                            (unsigned long long)t2);
    if (head < t1 || (head > t2 && head - t2 > slots))
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: head %llu, tail %llu: head-tail is not in 0..%llu",
                            (unsigned long long)head, (unsigned long long)t1, (unsigned long long)slots);
    bool ended = (end & SHMPC_ENDED_BIT) != 0;
    uint64_t final = end & ~SHMPC_ENDED_BIT;
    if (!ended && end != 0)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: end word %#llx has a count but no ended bit",
                            (unsigned long long)end);
    if (ended && final != head)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: stream ended at %llu, but head is %llu",
                            (unsigned long long)final, (unsigned long long)head);
    if (drained > 1)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: drained word is %llu, not 0 or 1", (unsigned long long)drained);
    if (drained == 1 && !ended)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: drained, but the stream has not ended");
    if (drained == 1 && t1 != final)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: drained, but tail %llu is not the final count %llu",
                            (unsigned long long)t1, (unsigned long long)final);
    return 0;
}

int shmpc_ring_open(void *buf, uint64_t len, struct shmpc_ring *r) {
    int rc = check_buffer(buf, len, 0);
    if (rc != 0)
        return rc;
    struct shmpc_header *h = (struct shmpc_header *)buf;
    uint64_t m = atomic_load_explicit(&h->magic, ACQ);
    if (m == 0)
        return shmpc_seterr(SHMPC_ENORING, "open ring: magic: first word is zero (not formatted yet)");
    if (m != SHMPC_MAGIC) {
        char b[9] = {0};
        memcpy(b, &m, 8);
        for (int i = 0; i < 8; i++)
            if (b[i] < 0x20 || b[i] > 0x7e)
                b[i] = '?';
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: magic: \"%s\" is not \"SHMPCRNG\"", b);
    }
    uint32_t v = atomic_load_explicit(&h->version, ACQ);
    if (v != SHMPC_VERSION)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: version: layout version %u, this build reads %u", v,
                            SHMPC_VERSION);
    uint32_t hs = atomic_load_explicit(&h->header_size, ACQ);
    if (hs != SHMPC_HEADER_SIZE)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: header size: %u, want %u", hs, SHMPC_HEADER_SIZE);
    struct shmpc_geometry g;
    if ((rc = shmpc_geometry(atomic_load_explicit(&h->slots, ACQ), atomic_load_explicit(&h->slot_size, ACQ), &g)) != 0)
        return rc;
    const struct {
        const char *name;
        uint64_t stored, want;
    } cmp[] = {
        {"slot stride", atomic_load_explicit(&h->slot_stride, ACQ), g.stride},
        {"slot alignment", atomic_load_explicit(&h->slot_align, ACQ), g.align},
        {"descriptor offset", atomic_load_explicit(&h->desc_offset, ACQ), g.desc_off},
        {"data offset", atomic_load_explicit(&h->data_offset, ACQ), g.data_off},
        {"total size", atomic_load_explicit(&h->total_size, ACQ), g.total},
    };
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++)
        if (cmp[i].stored != cmp[i].want)
            return shmpc_seterr(SHMPC_ECORRUPT, "open ring: %s: %llu, but %llu slots of %llu bytes need %llu",
                                cmp[i].name, (unsigned long long)cmp[i].stored, (unsigned long long)g.slots,
                                (unsigned long long)g.slot_size, (unsigned long long)cmp[i].want);
    if (g.total > len)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: total size: %llu bytes, but the segment has %llu",
                            (unsigned long long)g.total, (unsigned long long)len);
    uint64_t nl = atomic_load_explicit(&h->name_len, ACQ);
    if (nl < 1 || nl > SHMPC_MAX_NAME)
        return shmpc_seterr(SHMPC_ECORRUPT, "open ring: name: length %llu is not in 1..%d", (unsigned long long)nl,
                            SHMPC_MAX_NAME);
    uint8_t name[SHMPC_MAX_NAME];
    for (int i = 0; i < 8; i++) {
        uint64_t w = atomic_load_explicit(&h->name[i], ACQ);
        memcpy(name + 8 * i, &w, 8);
    }
    for (uint64_t i = nl; i < SHMPC_MAX_NAME; i++)
        if (name[i] != 0)
            return shmpc_seterr(SHMPC_ECORRUPT, "open ring: name: byte %llu after the %llu-byte name is not zero",
                                (unsigned long long)i, (unsigned long long)nl);
    if ((rc = check_indices(h, g.slots)) != 0)
        return rc;
    fill_view(r, buf, len, &g);
    memcpy(r->name, name, nl);
    r->name[nl] = 0;
    r->flags = atomic_load_explicit(&h->flags, ACQ);
    r->owner_uid = atomic_load_explicit(&h->owner_uid, ACQ);
    r->stream_items = atomic_load_explicit(&h->stream_items, ACQ);
    r->stream_bytes = atomic_load_explicit(&h->stream_bytes, ACQ);
    return 0;
}

/* ---- identities (sequence lock) and counters ---- */

void shmpc_ident_store(struct shmpc_identity *w, const struct shmpc_ident *id) {
    uint64_t s = atomic_load_explicit(&w->seq, SEQ);
    s += 1 + (s & 1); /* the next odd value, also after a writer that died mid-write */
    atomic_store_explicit(&w->seq, s, SEQ);
    atomic_store_explicit(&w->pid, id->pid, SEQ);
    atomic_store_explicit(&w->start, id->start, SEQ);
    atomic_store_explicit(&w->gen, id->gen, SEQ);
    atomic_store_explicit(&w->seq, s + 1, SEQ);
}

struct shmpc_ident shmpc_ident_load(struct shmpc_identity *w) {
    for (int i = 0; i < 64; i++) {
        uint64_t s = atomic_load_explicit(&w->seq, SEQ);
        if ((s & 1) == 0) {
            struct shmpc_ident id = {
                .pid = atomic_load_explicit(&w->pid, SEQ),
                .start = atomic_load_explicit(&w->start, SEQ),
                .gen = atomic_load_explicit(&w->gen, SEQ),
            };
            if (atomic_load_explicit(&w->seq, SEQ) == s)
                return id;
        }
        sched_yield();
    }
    return (struct shmpc_ident){0, 0, 0};
}

void shmpc_count_loss(struct shmpc_identity *peer, _Atomic uint64_t *mark, _Atomic uint64_t *losses) {
    uint64_t m = shmpc_ident_load(peer).gen + 1;
    uint64_t old = atomic_load_explicit(mark, RLX);
    if (old == m || !atomic_compare_exchange_strong_explicit(mark, &old, m, RLX, RLX))
        return; /* counted already */
    atomic_fetch_add_explicit(losses, 1, RLX);
}

void shmpc_ring_counters(const struct shmpc_ring *r, struct shmpc_counters *c) {
    struct shmpc_header *h = r->h;
    c->items_committed = atomic_load_explicit(&h->head, ACQ); /* head first: committed_bytes covers it */
    c->bytes_committed = atomic_load_explicit(&h->committed_bytes, RLX);
    c->items_released = atomic_load_explicit(&h->items, RLX);
    c->bytes_released = atomic_load_explicit(&h->bytes, RLX);
    c->integrity_errors = atomic_load_explicit(&h->integrity, RLX);
    c->producer_sleeps = atomic_load_explicit(&h->producer_sleeps, RLX);
    c->producer_wakes = atomic_load_explicit(&h->producer_wakes, RLX);
    c->producer_peer_losses = atomic_load_explicit(&h->producer_losses, RLX);
    c->consumer_sleeps = atomic_load_explicit(&h->consumer_sleeps, RLX);
    c->consumer_wakes = atomic_load_explicit(&h->consumer_wakes, RLX);
    c->consumer_peer_losses = atomic_load_explicit(&h->consumer_losses, RLX);
}

/* ---- the writer: reserve, publish, end ---- */

int shmpc_writer_reserve(struct shmpc_writer *w, struct shmpc_slot *s) {
    struct shmpc_ring *r = w->r;
    uint64_t e = atomic_load_explicit(&r->h->end, ACQ);
    if (e & SHMPC_ENDED_BIT)
        return shmpc_seterr(SHMPC_EENDED, "reserve slot: the stream ended at %llu",
                            (unsigned long long)(e & ~SHMPC_ENDED_BIT));
    uint64_t head = atomic_load_explicit(&r->h->head, SEQ);
    if (head != w->head)
        return shmpc_seterr(SHMPC_ECORRUPT, "reserve slot: head is %llu, this writer is at %llu: another producer?",
                            (unsigned long long)head, (unsigned long long)w->head);
    uint64_t t = atomic_load_explicit(&r->h->tail, SEQ); /* acquire: the consumer is done with the slots below t */
    if (t > w->head || w->head - t > r->g.slots)
        return shmpc_seterr(SHMPC_ECORRUPT, "reserve slot: head %llu, tail %llu: head-tail is not in 0..%llu",
                            (unsigned long long)w->head, (unsigned long long)t, (unsigned long long)r->g.slots);
    if (w->head - t == r->g.slots)
        return SHMPC_FULL;
    w->reserved = true;
    s->seq = w->head;
    s->buf = shmpc_slot(r, w->head);
    s->size = (size_t)r->g.slot_size;
    return 0;
}

int shmpc_writer_commit(struct shmpc_writer *w, uint64_t n, uint32_t crc) {
    struct shmpc_ring *r = w->r;
    struct shmpc_desc *d = shmpc_desc_of(r, w->head);
    atomic_store_explicit(&d->seq, w->head, RLX);
    atomic_store_explicit(&d->length, n, RLX);
    atomic_store_explicit(&d->crc, crc, RLX);
    atomic_store_explicit(&d->flags, SHMPC_DESC_COMMITTED, RLX);
    uint64_t e = atomic_load_explicit(&r->h->end, ACQ);
    if (e & SHMPC_ENDED_BIT) { /* ended by another writer meanwhile */
        w->reserved = false;
        return shmpc_seterr(SHMPC_EENDED, "commit slot: the stream ended at %llu",
                            (unsigned long long)(e & ~SHMPC_ENDED_BIT));
    }
    atomic_fetch_add_explicit(&r->h->committed_bytes, n, SEQ);
    uint64_t expect = w->head;
    /* The publication: one compare-and-swap of head, after everything the
     * consumer reads about the item (seq_cst: a doorbell load follows). */
    if (!atomic_compare_exchange_strong_explicit(&r->h->head, &expect, w->head + 1, SEQ, SEQ)) {
        atomic_fetch_sub_explicit(&r->h->committed_bytes, n, SEQ);
        w->reserved = false;
        return shmpc_seterr(SHMPC_ECORRUPT, "commit slot: head moved away from %llu under this writer: another producer?",
                            (unsigned long long)w->head);
    }
    w->head++;
    w->reserved = false;
    return 0;
}

int shmpc_writer_end(struct shmpc_writer *w) {
    struct shmpc_header *h = w->r->h;
    uint64_t e = atomic_load_explicit(&h->end, ACQ);
    uint64_t head = atomic_load_explicit(&h->head, ACQ);
    if (e & SHMPC_ENDED_BIT) {
        if ((e & ~SHMPC_ENDED_BIT) != head)
            return shmpc_seterr(SHMPC_ECORRUPT, "end stream: the stream ended at %llu, but head is %llu",
                                (unsigned long long)(e & ~SHMPC_ENDED_BIT), (unsigned long long)head);
        w->reserved = false;
        return 0;
    }
    if (head != w->head)
        return shmpc_seterr(SHMPC_ECORRUPT, "end stream: head is %llu, this writer is at %llu: another producer?",
                            (unsigned long long)head, (unsigned long long)w->head);
    if (head & SHMPC_ENDED_BIT)
        return shmpc_seterr(SHMPC_ECORRUPT, "end stream: head %llu does not fit the end-of-stream word",
                            (unsigned long long)head);
    atomic_store_explicit(&h->end, SHMPC_ENDED_BIT | head, SEQ); /* after the last head store */
    w->reserved = false;
    return 0;
}

/* ---- the reader: acquire, release ---- */

int shmpc_reader_init(struct shmpc_reader *rd, struct shmpc_ring *r) {
    rd->r = r;
    rd->tail = rd->next = atomic_load_explicit(&r->h->tail, ACQ);
    rd->pending = 0;
    rd->st = calloc(r->g.slots, sizeof *rd->st);
    if (rd->st == NULL)
        return shmpc_seterr(SHMPC_ESYS, "attach ring: cannot allocate the state of %llu slots",
                            (unsigned long long)r->g.slots);
    return 0;
}

void shmpc_reader_free(struct shmpc_reader *rd) {
    free(rd->st);
    rd->st = NULL;
}

int shmpc_reader_peek(struct shmpc_reader *rd, uint64_t *seq, uint64_t *length, uint32_t *crc) {
    struct shmpc_header *h = rd->r->h;
    const struct shmpc_geometry *g = &rd->r->g;
    uint64_t end = atomic_load_explicit(&h->end, SEQ); /* end before head: the final head precedes the end */
    uint64_t head = atomic_load_explicit(&h->head, SEQ);
    if (head < rd->next || head - rd->tail > g->slots)
        return shmpc_seterr(SHMPC_ECORRUPT,
                            "acquire item: head %llu, tail %llu, next %llu: want next <= head <= tail+%llu",
                            (unsigned long long)head, (unsigned long long)rd->tail, (unsigned long long)rd->next,
                            (unsigned long long)g->slots);
    bool ended = (end & SHMPC_ENDED_BIT) != 0;
    if (ended && (end & ~SHMPC_ENDED_BIT) != head)
        return shmpc_seterr(SHMPC_ECORRUPT, "acquire item: the stream ended at %llu, but head is %llu",
                            (unsigned long long)(end & ~SHMPC_ENDED_BIT), (unsigned long long)head);
    if (head == rd->next)
        return ended ? SHMPC_EOF : SHMPC_EMPTY;
    uint64_t s = rd->next;
    struct shmpc_desc *d = shmpc_desc_of(rd->r, s);
    uint64_t dseq = atomic_load_explicit(&d->seq, RLX);
    uint64_t len = atomic_load_explicit(&d->length, RLX);
    uint32_t c = atomic_load_explicit(&d->crc, RLX);
    uint32_t flags = atomic_load_explicit(&d->flags, RLX);
    if (dseq != s)
        return shmpc_seterr(SHMPC_ECORRUPT, "acquire item: descriptor: item %llu: descriptor says %llu",
                            (unsigned long long)s, (unsigned long long)dseq);
    if (len > g->slot_size)
        return shmpc_seterr(SHMPC_ECORRUPT, "acquire item: descriptor: item %llu: length %llu exceeds the slot size %llu",
                            (unsigned long long)s, (unsigned long long)len, (unsigned long long)g->slot_size);
    if (flags != SHMPC_DESC_COMMITTED)
        return shmpc_seterr(SHMPC_ECORRUPT, "acquire item: descriptor: item %llu: flags %#x", (unsigned long long)s,
                            flags);
    *seq = s;
    *length = len;
    *crc = c;
    return 0;
}

void shmpc_reader_mark(struct shmpc_reader *rd, uint64_t seq, uint64_t length) {
    rd->st[seq % rd->r->g.slots] = (struct shmpc_reader_slot){.seq = seq, .length = length, .state = 1};
    rd->next++;
    rd->pending++;
}

int shmpc_reader_release(struct shmpc_reader *rd, uint64_t seq, uint64_t *length) {
    uint64_t n = rd->r->g.slots;
    if (seq < rd->tail || seq >= rd->next)
        return shmpc_seterr(SHMPC_ESTATE, "release item: item %llu is not in the acquired range %llu..%llu",
                            (unsigned long long)seq, (unsigned long long)rd->tail, (unsigned long long)rd->next);
    struct shmpc_reader_slot *s = &rd->st[seq % n];
    if (s->state != 1 || s->seq != seq)
        return shmpc_seterr(SHMPC_ESTATE, "release item: item %llu was already released", (unsigned long long)seq);
    s->state = 2;
    rd->pending--;
    *length = s->length;
    struct shmpc_header *h = rd->r->h;
    atomic_fetch_add_explicit(&h->items, 1, SEQ);
    atomic_fetch_add_explicit(&h->bytes, s->length, SEQ);
    uint64_t tail = rd->tail;
    while (tail < rd->next) {
        struct shmpc_reader_slot *t = &rd->st[tail % n];
        if (t->state != 2 || t->seq != tail)
            break;
        t->state = 0;
        tail++;
    }
    if (tail != rd->tail) {
        rd->tail = tail;
        atomic_store_explicit(&h->tail, tail, SEQ); /* release: our reads of the slots happen before their reuse */
    }
    return 0;
}
