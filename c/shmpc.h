/* shmpc.h: a C11 library for both roles of a shmpc ring.
 *
 * A shmpc ring moves items (blocks of bytes) from one producer process to one
 * consumer process through a ring of fixed-size slots in a System V
 * shared-memory segment, with four glibc named semaphores as doorbells and a
 * lock file whose OFD locks say who holds each role. This library speaks the
 * protocol of docs/protocol.md and docs/objects.md byte for byte, so a C or
 * C++ program can produce into a ring a Go program consumes, and the other
 * way round.
 *
 * Errors: every function that can fail returns 0 (or a count) on success and
 * a negative SHMPC_E... code on failure. The codes have the meanings of the
 * Go packages' sentinel errors; shmpc_strerror names a code, and
 * shmpc_last_error returns the one-line message (what happened and what to
 * do) of the last failure on the calling thread.
 *
 * Handles: a shmpc_producer or shmpc_consumer is used by one thread at a
 * time. A wait (ring full, ring empty, drain) is interrupted by the caller's
 * stop flag (the options' stop), which a signal handler or another thread may
 * set; a signal delivered to a thread asleep in the library ends the sleep at
 * once when its handler was installed without SA_RESTART.
 *
 * Depends on libc and pthreads only (glibc's sem_open, sem_post,
 * sem_clockwait; shmget, shmat; fcntl OFD locks; pidfd_open where the kernel
 * has it). Link with -pthread.
 */
#ifndef SHMPC_H
#define SHMPC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative). Their meanings match the Go side's sentinels. */
enum shmpc_error {
    SHMPC_OK = 0,
    SHMPC_EPEERLOST = -1,   /* the peer died or left and none came back in time (exit 3) */
    SHMPC_EBUSY = -2,       /* the role is held by a live process (or a cleaner held the ring too long) */
    SHMPC_EFOREIGN = -3,    /* an object of the NAME is not this ring's (another uid, NAME, layout) */
    SHMPC_EINTEGRITY = -4,  /* an item failed its CRC32C check; it was not delivered (exit 4) */
    SHMPC_EENDED = -5,      /* the stream ended: no more items to reserve, or none left to acquire */
    SHMPC_ETIMEOUT = -6,    /* the call's own timeout (options' timeout_ns) expired */
    SHMPC_ENORING = -7,     /* no producer created the ring within the wait */
    SHMPC_ECLOSED = -8,     /* the handle was closed, or the ring was removed by End */
    SHMPC_ECANCELED = -9,   /* the caller's stop flag was set while the call waited */
    SHMPC_EINVAL = -10,     /* an invalid argument or option (a usage error, exit 2) */
    SHMPC_EGEOMETRY = -11,  /* geometry or stream totals differ from the ring being resumed (exit 2) */
    SHMPC_EEXISTS = -12,    /* the ring exists and this stream cannot resume it (exit 2) */
    SHMPC_ECORRUPT = -13,   /* shared memory holds inconsistent indices, descriptors or header */
    SHMPC_ESYS = -14,       /* a system call failed (the message names it and the errno) */
    SHMPC_ESTATE = -15      /* misuse: commit without reserve, release of an item not acquired */
};

/* Memory policies for huge pages. */
enum shmpc_policy { SHMPC_AUTO = 0, SHMPC_ON = 1, SHMPC_OFF = 2 };

/* shmpc_log receives notes worth telling a user (a fallback taken, a resumed
 * ring); msg is one line without a newline. */
typedef void (*shmpc_log_fn)(void *arg, const char *msg);

/* Options of a producer. The zero value means: 8 slots of 8 MiB, huge pages
 * where available, 0600, resume an existing ring, wait 10 s for a first
 * consumer, peer timeout 0, no stall timeout. */
struct shmpc_producer_opts {
    uint64_t slots;            /* 1 to 2^20; 0: 8, or the ring's when resuming */
    uint64_t slot_size;        /* a positive multiple of 4096; 0: 8 MiB, or the ring's */
    int hugepages;             /* SHMPC_AUTO, SHMPC_ON or SHMPC_OFF */
    int pretouch_off;          /* non-zero: do not fault the ring's pages in at creation */
    unsigned perm;             /* permission bits of every object, within 0777 and with 0600; 0: 0600 */
    uint64_t stream_items;     /* the stream's intended totals, recorded in the header (0: unknown) */
    uint64_t stream_bytes;
    int check_stream;          /* resuming: require stream_items/bytes to equal the ring's */
    int fresh;                 /* discard an existing ring (its producer gone, no live consumer) */
    int no_resume;             /* refuse to resume an existing ring (SHMPC_EEXISTS) */
    int64_t wait_ns;           /* bound on a first consumer; 0: 10 s; negative: none at all */
    int64_t peer_timeout_ns;   /* how long to keep the ring for a new consumer after one left */
    int64_t stall_timeout_ns;  /* a live consumer releasing nothing this long counts as lost; 0: off */
    int64_t timeout_ns;        /* bound on one shmpc_reserve/shmpc_send wait (SHMPC_ETIMEOUT); 0: none */
    volatile sig_atomic_t *stop; /* when set non-zero, waits in reserve/send return SHMPC_ECANCELED */
    shmpc_log_fn log;          /* notes; NULL discards them */
    void *log_arg;
};

/* Options of a consumer. The zero value means: wait 10 s for the ring, peer
 * timeout 0, no stall timeout, items verified and delivered in place. */
struct shmpc_consumer_opts {
    int copy;                  /* deliver a verified private copy of each item (not a view of the slot) */
    int64_t wait_ns;           /* bound on the ring appearing, and on a first producer; 0: 10 s; negative: none */
    int64_t peer_timeout_ns;   /* how long to wait for a new producer after the producer died */
    int64_t stall_timeout_ns;  /* a live producer publishing nothing this long counts as lost; 0: off */
    int64_t timeout_ns;        /* bound on one shmpc_acquire wait (SHMPC_ETIMEOUT); 0: none */
    volatile sig_atomic_t *stop; /* when set non-zero, open and acquire waits return SHMPC_ECANCELED */
    shmpc_log_fn log;
    void *log_arg;
};

typedef struct shmpc_producer shmpc_producer;
typedef struct shmpc_consumer shmpc_consumer;

/* A reserved slot: write the item into buf (size bytes, the slot size), then
 * commit. buf belongs to the producer until the commit. */
struct shmpc_slot {
    uint64_t seq;
    void *buf;
    size_t size;
};

/* An acquired, verified item. data is valid until shmpc_release (a view of
 * the slot, or with the copy option the consumer's private copy). */
struct shmpc_item {
    uint64_t seq;
    const void *data;
    size_t len;
    uint32_t crc;
};

/* Counters kept in the ring's header by both sides (docs/protocol.md,
 * "Counters"). Shared memory: only as right as the processes that write it. */
struct shmpc_counters {
    uint64_t items_committed, bytes_committed;
    uint64_t items_released, bytes_released, integrity_errors;
    uint64_t producer_sleeps, producer_wakes, producer_peer_losses;
    uint64_t consumer_sleeps, consumer_wakes, consumer_peer_losses;
};

/* shmpc_strerror names an error code ("peer lost", "role held by a live
 * process", ...). It never returns NULL. */
const char *shmpc_strerror(int code);

/* shmpc_last_error returns the one-line message of the last failure of a
 * shmpc call on the calling thread ("" if none). */
const char *shmpc_last_error(void);

/* shmpc_valid_name returns 0 when name is a valid ring NAME (1 to 64 of
 * [A-Za-z0-9_.-], not starting with '.'), else SHMPC_EINVAL. */
int shmpc_valid_name(const char *name);

/* CRC32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF) of n bytes,
 * continuing crc (start from 0): shmpc_crc32c(0, "123456789", 9) is
 * 0xE3069283. */
uint32_t shmpc_crc32c(uint32_t crc, const void *p, size_t n);

/* shmpc_copy_crc32c copies n bytes from src to dst and returns the CRC32C of
 * src continuing crc, in one pass over the data. */
uint32_t shmpc_copy_crc32c(uint32_t crc, void *dst, const void *src, size_t n);

/* shmpc_crc32c_kernel names the CRC32C implementation this CPU runs:
 * "sse42" (three interleaved crc32 instruction chains) or "table". */
const char *shmpc_crc32c_kernel(void);

/* ---- producer ---- */

/* shmpc_producer_open creates the ring name, or resumes it when it exists and
 * its producer is gone (unless opts->fresh), takes the producer role and posts
 * ready. opts may be NULL (defaults). On success *out holds the producer. */
int shmpc_producer_open(const char *name, const struct shmpc_producer_opts *opts, shmpc_producer **out);

/* shmpc_reserve returns the next free slot, waiting while the ring is full.
 * Reserving again without a commit returns the same slot. Errors:
 * SHMPC_EENDED once the stream ended, SHMPC_EPEERLOST, SHMPC_ECANCELED,
 * SHMPC_ETIMEOUT, SHMPC_ECORRUPT. */
int shmpc_reserve(shmpc_producer *p, struct shmpc_slot *slot);

/* shmpc_commit publishes the reserved slot's first n bytes with the CRC32C of
 * the slot as it is now (read back from shared memory: anything another
 * process scribbled there before the commit is checksummed with the rest).
 * shmpc_commit_crc with a checksum taken from the source avoids that. */
int shmpc_commit(shmpc_producer *p, size_t n);

/* shmpc_commit_crc publishes the reserved slot's first n bytes with crc, the
 * CRC32C the caller computed from its own data. */
int shmpc_commit_crc(shmpc_producer *p, size_t n, uint32_t crc);

/* shmpc_send copies n bytes (at most the slot size) into the next slot and
 * commits them, checksumming data (not the slot) in the same pass. */
int shmpc_send(shmpc_producer *p, const void *data, size_t n);

/* shmpc_end ends the stream at the items committed so far, waits until the
 * consumer drained it, and removes the ring. It does not look at the stop
 * flag (a stop means "end here"); its wait is bounded by the consumer's
 * liveness, the peer timeout and, without any consumer, the wait. */
int shmpc_end(shmpc_producer *p);

/* shmpc_producer_close removes whatever of the ring End did not remove and
 * frees p. A consumer still attached treats the producer as gone. */
int shmpc_producer_close(shmpc_producer *p);

uint64_t shmpc_producer_next(const shmpc_producer *p);   /* the sequence number of the next item */
int shmpc_producer_resumed(const shmpc_producer *p);     /* 1 when open resumed an existing ring */
int shmpc_producer_ended(const shmpc_producer *p);       /* 1 once the ring's stream ended */
int shmpc_producer_huge(const shmpc_producer *p);        /* 1 when the ring is on huge pages */
uint64_t shmpc_producer_slots(const shmpc_producer *p);
uint64_t shmpc_producer_slot_size(const shmpc_producer *p);
uint64_t shmpc_producer_stream_items(const shmpc_producer *p); /* the ring's recorded totals */
uint64_t shmpc_producer_stream_bytes(const shmpc_producer *p);
void shmpc_producer_counters(const shmpc_producer *p, struct shmpc_counters *c);

/* ---- consumer ---- */

/* shmpc_consumer_open attaches to ring name and takes the consumer role,
 * waiting up to the options' wait for a producer to create it
 * (SHMPC_ENORING). Another live consumer is refused with SHMPC_EBUSY. */
int shmpc_consumer_open(const char *name, const struct shmpc_consumer_opts *opts, shmpc_consumer **out);

/* shmpc_acquire returns the next item of the stream in sequence order, its
 * CRC32C verified, waiting while the ring is empty. It returns SHMPC_EENDED
 * once the stream ended and every item was acquired (after the last release
 * the ring is marked drained and the producer told). An item that fails its
 * check is never returned: SHMPC_EINTEGRITY, and the consumer stops there
 * (every later call returns the same error; the item stays unreleased).
 * Errors: SHMPC_EPEERLOST, SHMPC_ECANCELED, SHMPC_ETIMEOUT, SHMPC_ECORRUPT. */
int shmpc_acquire(shmpc_consumer *c, struct shmpc_item *item);

/* shmpc_release gives an acquired item's slot back to the producer. Items may
 * be released in any order, each once. */
int shmpc_release(shmpc_consumer *c, uint64_t seq);

/* shmpc_consumer_close gives up the consumer role and detaches; items
 * acquired and not released are delivered again to the next consumer. It
 * frees c. */
int shmpc_consumer_close(shmpc_consumer *c);

int shmpc_consumer_huge(const shmpc_consumer *c);
uint64_t shmpc_consumer_slot_size(const shmpc_consumer *c);
uint64_t shmpc_consumer_stream_items(const shmpc_consumer *c);
uint64_t shmpc_consumer_first_reserve_ns(const shmpc_consumer *c); /* app[0]: the producer's first reserve, Unix ns */
void shmpc_consumer_counters(const shmpc_consumer *c, struct shmpc_counters *cnt);

#ifdef __cplusplus
}
#endif

#endif /* SHMPC_H */
