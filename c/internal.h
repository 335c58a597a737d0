/* internal.h: what the library's files share. Not installed; the layout
 * structs use _Atomic and are C only. */
#ifndef SHMPC_INTERNAL_H
#define SHMPC_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmpc.h"

/* ---- layout (docs/protocol.md, ring/testdata/layout.golden) ---- */

#define SHMPC_VERSION 1u
#define SHMPC_HEADER_SIZE 768u
#define SHMPC_DESC_SIZE 64u
#define SHMPC_MAX_SLOTS (1u << 20)
#define SHMPC_MAX_SLOT_SIZE ((UINT64_C(1) << 62) - 1)
#define SHMPC_PAGE 4096u
#define SHMPC_HUGE_PAGE 2097152u
#define SHMPC_MAX_NAME 64
#define SHMPC_ENDED_BIT (UINT64_C(1) << 63)
#define SHMPC_DESC_COMMITTED 1u
/* "SHMPCRNG" in memory order, as a little-endian word. */
#define SHMPC_MAGIC UINT64_C(0x474E5243504D4853)

/* Header flags: how the producer set up the memory (informational). */
#define SHMPC_FLAG_HUGE 1u
#define SHMPC_FLAG_LOCKED 2u
#define SHMPC_FLAG_MADVISE 4u
#define SHMPC_FLAG_PRETOUCH 8u

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free (address-free across processes)");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the semaphores' layout needs a little-endian target");
_Static_assert(sizeof(void *) == 8, "glibc's 64-bit sem_t layout needs a 64-bit target");

/* An identity block (64 bytes): who holds a role, under a sequence lock. */
struct shmpc_identity {
    _Atomic uint64_t seq;   /* +0: odd while a write is in progress */
    _Atomic uint32_t pid;   /* +8 */
    _Atomic uint32_t rsv0;  /* +12 */
    _Atomic uint64_t start; /* +16: field 22 of /proc/PID/stat */
    _Atomic uint64_t gen;   /* +24: claim generation */
    _Atomic uint64_t rsv1[4];
};

/* The header: every field an atomic of its own size, reserved words too, so
 * format can zero them with atomic stores. */
struct shmpc_header {
    _Atomic uint64_t magic;        /* 0 */
    _Atomic uint32_t version;      /* 8 */
    _Atomic uint32_t header_size;  /* 12 */
    _Atomic uint64_t slots;        /* 16 */
    _Atomic uint64_t slot_size;    /* 24 */
    _Atomic uint64_t slot_stride;  /* 32 */
    _Atomic uint64_t slot_align;   /* 40 */
    _Atomic uint64_t desc_offset;  /* 48 */
    _Atomic uint64_t data_offset;  /* 56 */
    _Atomic uint64_t total_size;   /* 64 */
    _Atomic uint32_t flags;        /* 72 */
    _Atomic uint32_t owner_uid;    /* 76 */
    _Atomic uint64_t stream_items; /* 80 */
    _Atomic uint64_t stream_bytes; /* 88 */
    _Atomic uint64_t name_len;     /* 96 */
    _Atomic uint64_t rsv104[3];    /* 104 */
    _Atomic uint64_t name[8];      /* 128 */
    _Atomic uint64_t end;          /* 192 */
    _Atomic uint64_t drained;      /* 200 */
    _Atomic uint64_t rsv208[6];    /* 208 */
    struct shmpc_identity producer; /* 256 */
    struct shmpc_identity consumer; /* 320 */
    _Atomic uint64_t items;        /* 384 */
    _Atomic uint64_t bytes;        /* 392 */
    _Atomic uint64_t integrity;    /* 400 */
    _Atomic uint64_t rsv408[5];    /* 408 */
    _Atomic uint64_t app[8];       /* 448 */
    _Atomic uint64_t head;         /* 512 */
    _Atomic uint64_t committed_bytes;   /* 520 */
    _Atomic uint64_t producer_sleeps;   /* 528 */
    _Atomic uint64_t producer_wakes;    /* 536 */
    _Atomic uint64_t producer_losses;   /* 544 */
    _Atomic uint64_t producer_lost_gen; /* 552 */
    _Atomic uint64_t rsv560[2];    /* 560 */
    _Atomic uint64_t tail;         /* 576 */
    _Atomic uint64_t consumer_sleeps;   /* 584 */
    _Atomic uint64_t consumer_wakes;    /* 592 */
    _Atomic uint64_t consumer_losses;   /* 600 */
    _Atomic uint64_t consumer_lost_gen; /* 608 */
    _Atomic uint64_t rsv616[3];    /* 616 */
    _Atomic uint32_t consumer_waiting;  /* 640 */
    _Atomic uint32_t rsv644[15];
    _Atomic uint32_t producer_waiting;  /* 704 */
    _Atomic uint32_t rsv708[15];
};

/* A slot descriptor (64 bytes). Only the producer writes it. */
struct shmpc_desc {
    _Atomic uint64_t seq;    /* 0 */
    _Atomic uint64_t length; /* 8 */
    _Atomic uint32_t crc;    /* 16 */
    _Atomic uint32_t flags;  /* 20 */
    _Atomic uint64_t rsv[5]; /* 24 */
};

_Static_assert(sizeof(struct shmpc_header) == SHMPC_HEADER_SIZE, "header must be 768 bytes");
_Static_assert(sizeof(struct shmpc_desc) == SHMPC_DESC_SIZE, "descriptor must be 64 bytes");
_Static_assert(sizeof(struct shmpc_identity) == 64, "identity must be 64 bytes");
_Static_assert(offsetof(struct shmpc_header, head) % 64 == 0, "head on its own line");
_Static_assert(offsetof(struct shmpc_header, tail) % 64 == 0, "tail on its own line");
_Static_assert(offsetof(struct shmpc_header, consumer_waiting) == 640, "consumer_waiting at 640");
_Static_assert(offsetof(struct shmpc_header, producer_waiting) == 704, "producer_waiting at 704");

/* The geometry derived from (slots, slot_size). */
struct shmpc_geometry {
    uint64_t slots, slot_size, stride, align, desc_off, data_off, total;
};

/* A view of a validated ring: private copies of everything a bound or an
 * offset is taken from. */
struct shmpc_ring {
    uint8_t *base;
    uint64_t len; /* bytes of the mapping */
    struct shmpc_header *h;
    struct shmpc_desc *descs;
    struct shmpc_geometry g;
    char name[SHMPC_MAX_NAME + 1];
    uint32_t flags, owner_uid;
    uint64_t stream_items, stream_bytes;
};

struct shmpc_format_cfg {
    const char *name;
    uint64_t slots, slot_size;
    uint32_t flags, owner_uid;
    uint64_t stream_items, stream_bytes;
};

struct shmpc_ident {
    uint32_t pid;
    uint64_t start, gen;
};

/* ring.c */
int shmpc_geometry(uint64_t slots, uint64_t slot_size, struct shmpc_geometry *g);
int shmpc_ring_format(void *buf, uint64_t len, const struct shmpc_format_cfg *cfg, struct shmpc_ring *r);
/* shmpc_ring_open validates buf; SHMPC_ENORING (with message) when the magic
 * is 0 (not formatted yet), SHMPC_ECORRUPT otherwise. */
int shmpc_ring_open(void *buf, uint64_t len, struct shmpc_ring *r);
void shmpc_ident_store(struct shmpc_identity *w, const struct shmpc_ident *id);
struct shmpc_ident shmpc_ident_load(struct shmpc_identity *w);
void shmpc_count_loss(struct shmpc_identity *peer, _Atomic uint64_t *mark, _Atomic uint64_t *losses);
void shmpc_ring_counters(const struct shmpc_ring *r, struct shmpc_counters *c);
static inline uint8_t *shmpc_slot(const struct shmpc_ring *r, uint64_t seq) {
    return r->base + r->g.data_off + (seq % r->g.slots) * r->g.stride;
}
static inline struct shmpc_desc *shmpc_desc_of(const struct shmpc_ring *r, uint64_t seq) {
    return &r->descs[seq % r->g.slots];
}

/* Writer (producer side of the ring). */
struct shmpc_writer {
    struct shmpc_ring *r;
    uint64_t head;
    bool reserved;
};
#define SHMPC_FULL 1 /* shmpc_writer_reserve: the ring is full (not an error) */
int shmpc_writer_reserve(struct shmpc_writer *w, struct shmpc_slot *s);
int shmpc_writer_commit(struct shmpc_writer *w, uint64_t n, uint32_t crc);
int shmpc_writer_end(struct shmpc_writer *w);

/* Reader (consumer side of the ring). */
struct shmpc_reader_slot {
    uint64_t seq, length;
    uint8_t state; /* 0 free, 1 acquired, 2 released */
};
struct shmpc_reader {
    struct shmpc_ring *r;
    uint64_t tail, next, pending;
    struct shmpc_reader_slot *st;
};
#define SHMPC_EMPTY 1 /* shmpc_reader_peek: nothing published yet */
#define SHMPC_EOF 2   /* shmpc_reader_peek: the stream ended and every item was acquired */
int shmpc_reader_init(struct shmpc_reader *rd, struct shmpc_ring *r);
void shmpc_reader_free(struct shmpc_reader *rd);
int shmpc_reader_peek(struct shmpc_reader *rd, uint64_t *seq, uint64_t *length, uint32_t *crc);
void shmpc_reader_mark(struct shmpc_reader *rd, uint64_t seq, uint64_t length);
int shmpc_reader_release(struct shmpc_reader *rd, uint64_t seq, uint64_t *length);

/* payload.c: a named fill ("scalar", "sse42"), NULL where the CPU lacks it */
uint32_t (*shmpc_payload_fill_kernel(const char *name))(void *, size_t, uint64_t);

/* crc32c.c */
uint32_t shmpc_crc32c_raw(uint32_t reg, const uint8_t *p, size_t n); /* no inversions */
uint32_t shmpc_crc32c_shift_8k(uint32_t reg); /* reg * x^(8*8192) mod P */
uint32_t shmpc_copy_crc32c_dst(uint32_t crc, void *dst, const void *src, size_t n);
uint32_t (*shmpc_crc32c_kernel_fn(const char *name))(uint32_t, const uint8_t *, size_t);

/* shmpc.c: errors, time, logging */
int shmpc_seterr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int shmpc_syserr(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t shmpc_now(void);      /* CLOCK_MONOTONIC, ns */
int64_t shmpc_unix_ns(void);  /* CLOCK_REALTIME, ns */
void shmpc_sleep_ns(int64_t ns);
void shmpc_logf(shmpc_log_fn log, void *arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void shmpc_fmt_duration(char *buf, size_t n, int64_t ns); /* Go's time.Duration String */

/* objects.c: names, lock file, semaphores, segment (docs/objects.md) */
struct shmpc_names {
    char ring[SHMPC_MAX_NAME + 1];
    int key;
    char sem[4][SHMPC_MAX_NAME + 24]; /* "/shmpc.NAME.filled", empty, ready, shutdown */
    char lock[SHMPC_MAX_NAME + 32];   /* "/dev/shm/shmpc.NAME.lock" */
};
enum { SHMPC_SEM_FILLED = 0, SHMPC_SEM_EMPTY = 1, SHMPC_SEM_READY = 2, SHMPC_SEM_SHUTDOWN = 3 };
int shmpc_names_for(const char *name, struct shmpc_names *n);
/* the pid the ring's header names for role, for messages; 0 when unknown */
int shmpc_holder_pid(const struct shmpc_names *n, int role);
int shmpc_key_for(const char *name);

enum { SHMPC_ROLE_PRODUCER = 0, SHMPC_ROLE_CONSUMER = 1, SHMPC_GATE = 2 };
struct shmpc_lockfile {
    int fd;
    bool created;
    bool mine[3];
    char path[SHMPC_MAX_NAME + 32];
};
/* Claim role R by the rule of docs/objects.md. want_uid < 0: any owner. */
int shmpc_lock_claim(struct shmpc_lockfile *l, const char *path, int role, bool create, unsigned perm, int want_uid);
int shmpc_lock_held(struct shmpc_lockfile *l, int role); /* 1 held elsewhere, 0 free, <0 error */
int shmpc_lock_stale(struct shmpc_lockfile *l);          /* 1 stale, 0 at the path, <0 error */
int shmpc_lock_try(struct shmpc_lockfile *l, int role);  /* 0, SHMPC_EBUSY when held elsewhere */
int shmpc_lock_unlock(struct shmpc_lockfile *l, int role);
int shmpc_lock_all(struct shmpc_lockfile *l, bool before[2]); /* SHMPC_EBUSY: a role; 1: the gate */
void shmpc_lock_undo_all(struct shmpc_lockfile *l, const bool before[2]);
int shmpc_lock_remove(struct shmpc_lockfile *l);         /* 1 removed, 0 not, <0 error */
int shmpc_lock_leave(struct shmpc_lockfile *l, const struct shmpc_names *n, int role, bool force, int64_t wait_ns);
void shmpc_lock_close(struct shmpc_lockfile *l);
int shmpc_lock_owner(struct shmpc_lockfile *l, uid_t *uid);

struct shmpc_sems {
    sem_t *s[4];
};
/* Open the ring's four semaphores; create those missing (mode exactly perm)
 * when create is set. Each must be owned by uid; with check_mode its mode
 * must be within perm. On failure nothing stays open and the ones this call
 * created are unlinked. Missing (without create): SHMPC_ENORING. */
int shmpc_sems_open(struct shmpc_sems *s, const struct shmpc_names *n, bool create, unsigned perm, uid_t uid, bool check_mode);
void shmpc_sems_close(struct shmpc_sems *s);
int shmpc_sems_unlink(const struct shmpc_names *n);
/* Open one existing semaphore after the file checks: owner uid (any when
 * uid < 0), mode within perm (any when perm < 0). */
int shmpc_sem_open_mode(const char *name, long uid, long perm, sem_t **out);
int shmpc_sem_open_checked(const char *name, long uid, sem_t **out);
int shmpc_sem_post(sem_t *s);
/* Wait until abs_mono (CLOCK_MONOTONIC ns). 0 taken, 1 timed out or
 * interrupted, <0 error. */
int shmpc_sem_wait_until(sem_t *s, int64_t abs_mono);

struct shmpc_seg_info {
    int id;
    uid_t uid, cuid;
    unsigned mode;
    uint64_t size;
    pid_t cpid;
    int key;
};
struct shmpc_segment {
    int id;
    int key;
    pid_t cpid;
    void *mem;
    uint64_t size;
    bool huge;
    bool removed;
};
/* 0 found, SHMPC_ENORING when no segment has key, <0 error. */
int shmpc_seg_lookup(int key, struct shmpc_seg_info *info);
int shmpc_seg_create(struct shmpc_segment *s, int key, uint64_t size, int huge_policy, unsigned perm, bool pretouch,
                     char *note, size_t note_len);
/* SHMPC_ENORING when the id vanished in between. */
int shmpc_seg_attach(struct shmpc_segment *s, const struct shmpc_seg_info *info);
int shmpc_seg_remove(struct shmpc_segment *s);
/* shmpc_seg_marked_removed reports whether s (attached, by its id) is marked
 * for removal (SHM_DEST in IPC_STAT): its producer removed the ring. A
 * failed look says no: the other checks go on. */
bool shmpc_seg_marked_removed(const struct shmpc_segment *s);
void shmpc_seg_detach(struct shmpc_segment *s);
void shmpc_seg_pretouch(struct shmpc_segment *s);

/* peer.c: identities, liveness monitor, doorbells */
uint64_t shmpc_start_time(pid_t pid); /* 0 when unknown */
bool shmpc_proc_alive(pid_t pid, uint64_t start);
struct shmpc_ident shmpc_self(void);

struct shmpc_monitor {
    bool running;
    pthread_t th;
    int evfd;
    struct shmpc_lockfile *lock;
    int role;                       /* the peer's byte */
    struct shmpc_identity *peer_id; /* the peer's identity in the header */
    _Atomic int expect;             /* 0 none, 1 present, 2 absent */
    _Atomic(sem_t *) kick;
    _Atomic uint64_t fired;
};
int shmpc_monitor_start(struct shmpc_monitor *m);
void shmpc_monitor_stop(struct shmpc_monitor *m);
uint64_t shmpc_monitor_arm(struct shmpc_monitor *m, bool want_present, sem_t *kick);
void shmpc_monitor_disarm(struct shmpc_monitor *m);

struct shmpc_bell {
    _Atomic uint32_t *waiting;
    sem_t *sem;
    _Atomic uint64_t *counter; /* sleeps of the sleeper, or wakes of the ringer */
};
int shmpc_bell_ring(const struct shmpc_bell *b);

/* The wait engine both sides share (wait.c). */
typedef bool (*shmpc_ready_fn)(void *arg);
struct shmpc_waiter {
    struct shmpc_monitor *mon;
    volatile sig_atomic_t *stop;
    bool honor_stop;
    int64_t deadline; /* the call's own timeout (CLOCK_MONOTONIC ns), 0: none */
};
/* Sleep until ready, the monitor fired, abs deadline limit (0: none), the
 * stop flag or the call's deadline. bell non-NULL: the doorbell protocol on
 * bell->sem; else plain waits on sem. want_present is what the monitor
 * expects. Returns 0 (look again), SHMPC_ECANCELED, SHMPC_ETIMEOUT, or <0. */
int shmpc_sleep(struct shmpc_waiter *w, const struct shmpc_bell *bell, sem_t *sem, shmpc_ready_fn ready, void *arg,
                int64_t limit, bool want_present, bool *fired);

/* ---- the two roles (producer.c, producer_open.c, consumer.c, consumer_open.c) ---- */

/* A producer: the objects it holds and its private state. */
struct shmpc_producer {
    struct shmpc_producer_opts opt;
    uint64_t given_slots, given_size; /* as given (0: left out), checked against a resumed ring */
    struct shmpc_names names;
    struct shmpc_lockfile lock;
    struct shmpc_sems sems;
    struct shmpc_segment seg;
    struct shmpc_ring ring;
    struct shmpc_writer w;
    struct shmpc_monitor mon;
    struct shmpc_bell to_consumer; /* rings the consumer: items published, stream ended */
    struct shmpc_bell space;       /* our sleep: slots released */
    struct shmpc_slot slot;
    bool have_lock, have_sems, have_seg, have_ring;
    bool reserved, resumed, first_res, removed;
    bool new_ring; /* this open is creating the ring: a failure removes what it made */
    bool seen; /* the consumer's role was held at some look */
    bool fast; /* the consumer was present at the last judgement */
    int64_t started;
    uint64_t consumer_gen; /* the consumer's claim generation at open */
    uint64_t tail_at_open;
    uint64_t last_head;
    uint32_t flags;
    struct shmpc_counters last_counters;
};

/* A consumer: the objects it holds and its private state. */
struct shmpc_consumer {
    struct shmpc_consumer_opts opt;
    struct shmpc_names names;
    struct shmpc_lockfile lock;
    struct shmpc_segment seg;
    struct shmpc_sems sems;
    struct shmpc_ring ring;
    struct shmpc_reader rd;
    struct shmpc_monitor mon;
    struct shmpc_bell space; /* rings the producer: slots released */
    struct shmpc_bell items; /* our sleep: items published */
    bool have_lock, have_seg, have_sems, have_ring;
    int64_t opened;
    uint64_t producer_gen; /* the producer's claim generation at attach */
    bool seen;             /* the producer's role was held at some look */
    bool fast;             /* the producer was present at the last judgement */
    struct shmpc_ident judged; /* the producer's identity read at that judgement */
    bool eof, drained;
    int err;               /* sticky: the error that stopped the stream */
    char errmsg[768];
    uint8_t **bufs;        /* copy buffers, one per slot, made when first needed */
};

void shmpc_consumer_release_all(shmpc_consumer *c);

#endif /* SHMPC_INTERNAL_H */
