/* test_ring: the ring in private memory: format then open, every validation
 * of an open (a scribbled header is refused, never trusted), the writer's and
 * reader's index protocol (full ring, releases out of order, end, bad
 * descriptors), the identity sequence lock and the once-per-claim loss
 * count. */
#define _GNU_SOURCE
#include <string.h>

#include "../internal.h"
#include "check.h"

#define SLOTS 4
#define SLOT_SIZE 4096

static uint8_t *buf;
static uint64_t len;
static struct shmpc_ring r;

static void fresh(void) {
    memset(buf, 0x5A, len); /* format must not depend on zeros */
    struct shmpc_format_cfg cfg = {.name = "test.ring-1", .slots = SLOTS, .slot_size = SLOT_SIZE, .flags = 8,
                                   .owner_uid = 1234, .stream_items = 10, .stream_bytes = 40960};
    CHECK_RC(shmpc_ring_format(buf, len, &cfg, &r), 0);
}

/* open_fails scribbles with fn, checks that open refuses with want, and
 * formats again. */
static void open_fails(const char *what, void (*fn)(struct shmpc_header *), int want) {
    fresh();
    fn(r.h);
    struct shmpc_ring o;
    int rc = shmpc_ring_open(buf, len, &o);
    CHECK(rc == want, "%s: open returned %d (%s), want %d", what, rc, shmpc_last_error(), want);
}

static void s_magic0(struct shmpc_header *h) { atomic_store(&h->magic, 0); }
static void s_magic(struct shmpc_header *h) { atomic_store(&h->magic, 0x4141414141414141ull); }
static void s_version(struct shmpc_header *h) { atomic_store(&h->version, 2); }
static void s_hsize(struct shmpc_header *h) { atomic_store(&h->header_size, 512); }
static void s_slots(struct shmpc_header *h) { atomic_store(&h->slots, 0); }
static void s_many(struct shmpc_header *h) { atomic_store(&h->slots, (1u << 20) + 1); }
static void s_stride(struct shmpc_header *h) { atomic_store(&h->slot_stride, 8192); }
static void s_total(struct shmpc_header *h) { atomic_store(&h->slots, 1000); }
static void s_namelen(struct shmpc_header *h) { atomic_store(&h->name_len, 65); }
static void s_namepad(struct shmpc_header *h) { atomic_store(&h->name[7], 1ull << 56); }
static void s_head(struct shmpc_header *h) { atomic_store(&h->head, SLOTS + 1); }
static void s_tail(struct shmpc_header *h) { atomic_store(&h->tail, 1); }
static void s_end(struct shmpc_header *h) { atomic_store(&h->end, 3); }
static void s_endcount(struct shmpc_header *h) { atomic_store(&h->end, SHMPC_ENDED_BIT | 2); }
static void s_drained(struct shmpc_header *h) { atomic_store(&h->drained, 1); }
static void s_drained2(struct shmpc_header *h) { atomic_store(&h->drained, 2); }

static void test_open(void) {
    fresh();
    struct shmpc_ring o;
    CHECK_RC(shmpc_ring_open(buf, len, &o), 0);
    CHECK(strcmp(o.name, "test.ring-1") == 0, "name %s", o.name);
    CHECK(o.g.slots == SLOTS && o.g.slot_size == SLOT_SIZE && o.owner_uid == 1234 && o.flags == 8 &&
              o.stream_items == 10 && o.stream_bytes == 40960,
          "header fields");
    CHECK(memcmp(buf, "SHMPCRNG", 8) == 0, "magic bytes in memory order");
    CHECK(memcmp(buf + 128, "test.ring-1", 11) == 0 && buf[139] == 0, "name bytes at 128");
    CHECK_RC(shmpc_ring_open(buf, 100, &o), SHMPC_ECORRUPT);
    CHECK_RC(shmpc_ring_open(buf + 4, len - 8, &o), SHMPC_ECORRUPT);
    CHECK_RC(shmpc_ring_open(buf, r.g.total - 1, &o), SHMPC_ECORRUPT);
    open_fails("magic 0", s_magic0, SHMPC_ENORING);
    open_fails("foreign magic", s_magic, SHMPC_ECORRUPT);
    open_fails("version", s_version, SHMPC_ECORRUPT);
    open_fails("header size", s_hsize, SHMPC_ECORRUPT);
    open_fails("slots 0", s_slots, SHMPC_ECORRUPT);
    open_fails("slots > 2^20", s_many, SHMPC_ECORRUPT);
    open_fails("stride", s_stride, SHMPC_ECORRUPT);
    open_fails("total beyond the buffer", s_total, SHMPC_ECORRUPT);
    open_fails("name length", s_namelen, SHMPC_ECORRUPT);
    open_fails("name padding", s_namepad, SHMPC_ECORRUPT);
    open_fails("head beyond tail+slots", s_head, SHMPC_ECORRUPT);
    open_fails("tail beyond head", s_tail, SHMPC_ECORRUPT);
    open_fails("end without the ended bit", s_end, SHMPC_ECORRUPT);
    open_fails("end count differs from head", s_endcount, SHMPC_ECORRUPT);
    open_fails("drained, not ended", s_drained, SHMPC_ECORRUPT);
    open_fails("drained 2", s_drained2, SHMPC_ECORRUPT);
}

static void test_stream(void) {
    fresh();
    struct shmpc_writer w = {.r = &r, .head = 0};
    struct shmpc_reader rd;
    CHECK_RC(shmpc_reader_init(&rd, &r), 0);
    struct shmpc_slot s;
    uint64_t seq, n;
    uint32_t crc;
    CHECK_RC(shmpc_reader_peek(&rd, &seq, &n, &crc), SHMPC_EMPTY);
    for (uint64_t i = 0; i < SLOTS; i++) {
        CHECK_RC(shmpc_writer_reserve(&w, &s), 0);
        CHECK(s.seq == i && s.size == SLOT_SIZE && (uint8_t *)s.buf == buf + r.g.data_off + i * r.g.stride,
              "slot %llu", (unsigned long long)i);
        memset(s.buf, (int)i, i + 1);
        CHECK_RC(shmpc_writer_commit(&w, i + 1, shmpc_crc32c(0, s.buf, i + 1)), 0);
    }
    CHECK_RC(shmpc_writer_reserve(&w, &s), SHMPC_FULL);
    CHECK(atomic_load(&r.h->committed_bytes) == 1 + 2 + 3 + 4, "committed bytes %llu",
          (unsigned long long)atomic_load(&r.h->committed_bytes));
    for (uint64_t i = 0; i < SLOTS; i++) {
        CHECK_RC(shmpc_reader_peek(&rd, &seq, &n, &crc), 0);
        CHECK(seq == i && n == i + 1 && crc == shmpc_crc32c(0, shmpc_slot(&r, i), n), "item %llu",
              (unsigned long long)i);
        shmpc_reader_mark(&rd, seq, n);
    }
    CHECK_RC(shmpc_reader_peek(&rd, &seq, &n, &crc), SHMPC_EMPTY);
    /* Out of order: tail moves only over the run released at its front. */
    CHECK_RC(shmpc_reader_release(&rd, 2, &n), 0);
    CHECK(atomic_load(&r.h->tail) == 0, "tail moved past an unreleased item");
    CHECK_RC(shmpc_reader_release(&rd, 2, &n), SHMPC_ESTATE);
    CHECK_RC(shmpc_reader_release(&rd, 9, &n), SHMPC_ESTATE);
    CHECK_RC(shmpc_reader_release(&rd, 0, &n), 0);
    CHECK(atomic_load(&r.h->tail) == 1, "tail %llu, want 1", (unsigned long long)atomic_load(&r.h->tail));
    CHECK_RC(shmpc_reader_release(&rd, 1, &n), 0);
    CHECK(atomic_load(&r.h->tail) == 3, "tail %llu, want 3", (unsigned long long)atomic_load(&r.h->tail));
    CHECK(atomic_load(&r.h->items) == 3 && atomic_load(&r.h->bytes) == 1 + 2 + 3, "released counters");
    CHECK_RC(shmpc_writer_reserve(&w, &s), 0);
    CHECK(s.seq == SLOTS && s.buf == shmpc_slot(&r, 0), "slot 0 reused for item %d", SLOTS);
    CHECK_RC(shmpc_writer_commit(&w, 0, 0), 0);
    /* A second writer (head moved under it) is caught and changes nothing. */
    struct shmpc_writer stale = {.r = &r, .head = 2};
    CHECK_RC(shmpc_writer_reserve(&stale, &s), SHMPC_ECORRUPT);
    CHECK_RC(shmpc_writer_end(&stale), SHMPC_ECORRUPT);
    CHECK(atomic_load(&r.h->end) == 0, "a stale writer's End ended the stream");
    CHECK_RC(shmpc_writer_end(&w), 0);
    CHECK_RC(shmpc_writer_end(&w), 0); /* idempotent */
    CHECK_RC(shmpc_writer_reserve(&w, &s), SHMPC_EENDED);
    CHECK_RC(shmpc_reader_peek(&rd, &seq, &n, &crc), 0);
    CHECK(seq == SLOTS && n == 0, "the empty last item");
    shmpc_reader_mark(&rd, seq, n);
    CHECK_RC(shmpc_reader_peek(&rd, &seq, &n, &crc), SHMPC_EOF);
    CHECK_RC(shmpc_reader_release(&rd, 3, &n), 0);
    CHECK_RC(shmpc_reader_release(&rd, SLOTS, &n), 0);
    CHECK(rd.pending == 0 && atomic_load(&r.h->tail) == SLOTS + 1, "all released");
    shmpc_reader_free(&rd);
}

static void test_bad_descriptors(void) {
    struct {
        const char *what;
        int field; /* 0 seq, 1 length, 2 flags */
        uint64_t value;
    } cases[] = {{"sequence", 0, 7}, {"length", 1, SLOT_SIZE + 1}, {"flags", 2, 3}, {"flags 0", 2, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fresh();
        struct shmpc_writer w = {.r = &r, .head = 0};
        struct shmpc_slot s;
        CHECK_RC(shmpc_writer_reserve(&w, &s), 0);
        CHECK_RC(shmpc_writer_commit(&w, 10, shmpc_crc32c(0, s.buf, 10)), 0);
        struct shmpc_desc *d = shmpc_desc_of(&r, 0);
        if (cases[c].field == 0)
            atomic_store(&d->seq, cases[c].value);
        else if (cases[c].field == 1)
            atomic_store(&d->length, cases[c].value);
        else
            atomic_store(&d->flags, (uint32_t)cases[c].value);
        struct shmpc_reader rd;
        CHECK_RC(shmpc_reader_init(&rd, &r), 0);
        uint64_t seq, n;
        uint32_t crc;
        int rc = shmpc_reader_peek(&rd, &seq, &n, &crc);
        CHECK(rc == SHMPC_ECORRUPT, "bad %s: peek returned %d", cases[c].what, rc);
        shmpc_reader_free(&rd);
    }
    /* A head moved beyond tail + slots under a reader, and an end that
     * disagrees with head. */
    fresh();
    struct shmpc_reader rd;
    CHECK_RC(shmpc_reader_init(&rd, &r), 0);
    uint64_t seq, n;
    uint32_t crc;
    atomic_store(&r.h->head, SLOTS + 1);
    CHECK_RC(shmpc_reader_peek(&rd, &seq, &n, &crc), SHMPC_ECORRUPT);
    atomic_store(&r.h->head, 0);
    atomic_store(&r.h->end, SHMPC_ENDED_BIT | 1);
    CHECK_RC(shmpc_reader_peek(&rd, &seq, &n, &crc), SHMPC_ECORRUPT);
    shmpc_reader_free(&rd);
}

static void test_identity(void) {
    fresh();
    struct shmpc_ident id = {.pid = 42, .start = 777, .gen = 3};
    shmpc_ident_store(&r.h->producer, &id);
    struct shmpc_ident got = shmpc_ident_load(&r.h->producer);
    CHECK(got.pid == 42 && got.start == 777 && got.gen == 3, "identity round trip");
    CHECK(atomic_load(&r.h->producer.seq) == 2, "seq %llu after one write", (unsigned long long)atomic_load(&r.h->producer.seq));
    atomic_store(&r.h->producer.seq, 5); /* a writer died mid-write */
    got = shmpc_ident_load(&r.h->producer);
    CHECK(got.pid == 0 && got.start == 0 && got.gen == 0, "an odd seq reads as unknown");
    shmpc_ident_store(&r.h->producer, &id);
    CHECK(atomic_load(&r.h->producer.seq) == 8, "seq %llu: the next write skips the odd value",
          (unsigned long long)atomic_load(&r.h->producer.seq));
    /* Losses: once per claim generation of the peer. */
    shmpc_count_loss(&r.h->consumer, &r.h->producer_lost_gen, &r.h->producer_losses);
    shmpc_count_loss(&r.h->consumer, &r.h->producer_lost_gen, &r.h->producer_losses);
    CHECK(atomic_load(&r.h->producer_losses) == 1, "losses %llu for one claim",
          (unsigned long long)atomic_load(&r.h->producer_losses));
    struct shmpc_ident c = {.pid = 1, .start = 1, .gen = 1};
    shmpc_ident_store(&r.h->consumer, &c);
    shmpc_count_loss(&r.h->consumer, &r.h->producer_lost_gen, &r.h->producer_losses);
    CHECK(atomic_load(&r.h->producer_losses) == 2, "a new claim counts again");
}

int main(void) {
    struct shmpc_geometry g;
    CHECK_RC(shmpc_geometry(SLOTS, SLOT_SIZE, &g), 0);
    len = g.total + 4096;
    buf = aligned_alloc(4096, len);
    test_open();
    test_stream();
    test_bad_descriptors();
    test_identity();
    CHECK_RC(shmpc_geometry(1u << 20, 1ull << 62, &g), SHMPC_ECORRUPT); /* overflow */
    free(buf);
    return check_done("test_ring");
}
