/* shmpc-c: the C command over the library, with the Go CLI's core flags and
 * contract (docs/cli.md): the same payload for -count and -bytes, the same
 * manifest lines, the same exit codes and one-line errors.
 *
 *   shmpc-c produce -name NAME [-count N | -bytes SIZE | -stdin] [-slots N]
 *           [-slot-size SIZE] [-wait D] [-peer-timeout D] [-stall-timeout D]
 *           [-hugepages auto|on|off] [-perm MODE] [-fresh]
 *   shmpc-c consume -name NAME [-stdout] [-manifest FILE] [-wait D]
 *           [-peer-timeout D] [-stall-timeout D]
 *
 * Exit status: 0 ok, 1 error, 2 usage, 3 peer lost, 4 integrity error.
 *
 * SHMPC_FAULT, as the Go command's (cmd/shmpc/fault.go), stops the process
 * at a point for a test to kill it there: "POINT" or "POINT:N" prints
 * "shmpc-c: fault POINT N" on stderr and hangs until killed, or misbehaves:
 *   produce-in-slot:N     half of item N written into its slot, not committed
 *   produce-after:N       N items committed, before item N is reserved
 *   produce-corrupt:N     flip a byte of item N in its slot after its CRC
 *   produce-ended         the end of the stream marked, before the drain
 *   produce-before-cleanup  the stream drained, before the ring is removed
 *   consume-in-handler:N  item N acquired, before its manifest line and release */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "hook.h"
#include "payload.h"
#include "shmpc.h"

#define EXIT_USAGE 2
#define PIECE (256 << 10) /* -stdin reads into a cached buffer of this size */
#define READ_FAILED (-1000) /* produce_stdin: a read error, printed already */

static volatile sig_atomic_t stop_flag;
static const char *cmd_name = "";

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* catch_signals makes SIGINT and SIGTERM set the stop flag. No SA_RESTART:
 * a read or a semaphore wait in progress returns EINTR at once. */
static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The fault-injection point of SHMPC_FAULT (see the top of this file). */
static struct {
    bool on;
    char point[48];
    uint64_t n;
} fault;

static void fault_from_env(void) {
    const char *v = getenv("SHMPC_FAULT");
    if (v == NULL || v[0] == 0)
        return;
    const char *colon = strchr(v, ':');
    size_t len = colon != NULL ? (size_t)(colon - v) : strlen(v);
    if (len >= sizeof fault.point)
        return; /* no such point */
    memcpy(fault.point, v, len);
    fault.point[len] = 0;
    fault.n = colon != NULL ? strtoull(colon + 1, NULL, 10) : 0;
    fault.on = true;
}

/* fault_at reports whether the hook is set for point at item seq. */
static bool fault_at(const char *point, uint64_t seq) {
    return fault.on && fault.n == seq && strcmp(fault.point, point) == 0;
}

/* fault_hang announces the point on stderr and blocks until the process is
 * killed (a caught signal only ends one pause). */
static void fault_hang(void) {
    fprintf(stderr, "shmpc-c: fault %s %" PRIu64 "\n", fault.point, fault.n);
    for (;;)
        pause();
}

static void fault_hook(const char *ring) {
    (void)ring;
    fault_hang();
}

static void note(void *arg, const char *msg) {
    (void)arg;
    fprintf(stderr, "shmpc-c %s: %s\n", cmd_name, msg);
}

/* fail prints the one-line error and returns the exit status of code. */
static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ';';
    fprintf(stderr, "shmpc-c %s: %s\n", cmd_name, msg);
    switch (code) {
    case SHMPC_EINTEGRITY: return 4;
    case SHMPC_EPEERLOST: return 3;
    case SHMPC_EINVAL:
    case SHMPC_EGEOMETRY:
    case SHMPC_EEXISTS: return EXIT_USAGE;
    }
    return 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail(SHMPC_EINVAL, "%s", msg);
}

/* parse_flags parses a command's flags and checks its -name (*name, set by
 * the parse): it returns true, with the exit status in *status, when the
 * command is to end here (0 after -h, 2 after a usage error). */
static bool parse_flags(struct cli_flag *flags, int argc, char **argv, const char *cmd, const char *const *name,
                        int *status) {
    char err[1024];
    int r = cli_parse(flags, argc, argv, cmd, err, sizeof err);
    if (r == 1) {
        *status = 0;
        return true;
    }
    if (r != 0) {
        *status = usage_error("%s", err);
        return true;
    }
    if ((*name)[0] == 0) {
        *status = usage_error("-name is required");
        return true;
    }
    if (shmpc_valid_name(*name) != 0) {
        *status = usage_error("-name: %s", shmpc_last_error());
        return true;
    }
    return false;
}

static double since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void warn_rmid_forced(void) {
    FILE *f = fopen("/proc/sys/kernel/shm_rmid_forced", "re");
    if (f == NULL)
        return;
    int v = 0;
    if (fscanf(f, "%d", &v) == 1 && v == 1)
        fprintf(stderr,
                "shmpc-c produce: warning: kernel.shm_rmid_forced=1 destroys a ring's segment when no process has it "
                "attached, so a ring cannot be resumed after both sides died; run: sysctl -w kernel.shm_rmid_forced=0\n");
    fclose(f);
}

/* ring_exists reports whether a segment has ring name's key (a failed look
 * counts as yes: the open then gives the real error). */
static bool ring_exists(const char *name) {
    uint32_t h = 2166136261u;
    for (const char *p = "shmpc:"; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    int key = (int)(h & 0x7fffffffu);
    if (key == 0)
        key = 1;
    return shmget(key, 0, 0) >= 0 || errno != ENOENT;
}

static int no_source(const char *name, bool fresh) {
    if (fresh)
        return usage_error("nothing to send: -fresh starts a new stream, give -count N, -bytes SIZE or -stdin");
    return usage_error("nothing to send: give -count N, -bytes SIZE or -stdin (without one, produce resumes an existing "
                       "ring, and %s has none)",
                       name);
}

/* produce_pattern sends items [next, items) of the benchmark payload: full
 * slots, and a shorter last one when total is not a multiple. */
static int produce_pattern(shmpc_producer *p, uint64_t items, uint64_t total, uint64_t slot_size, uint64_t *sent,
                           uint64_t *bytes) {
    if (shmpc_producer_ended(p))
        return 0; /* a resumed ring whose stream ended: End waits for the drain */
    for (uint64_t seq = shmpc_producer_next(p); seq < items; seq++) {
        if (fault_at("produce-after", seq))
            fault_hang();
        uint64_t n = slot_size;
        if (seq == items - 1 && total % slot_size != 0)
            n = total % slot_size;
        struct shmpc_slot s;
        int rc = shmpc_reserve(p, &s);
        if (rc != 0)
            return rc;
        if (fault_at("produce-in-slot", seq)) {
            shmpc_payload_fill(s.buf, n / 2, seq);
            fault_hang();
        }
        uint32_t crc = shmpc_payload_fill(s.buf, n, seq); /* checksums the generated data, not the slot */
        if (fault_at("produce-corrupt", seq))
            ((uint8_t *)s.buf)[n / 2] ^= 0x40;
        if ((rc = shmpc_commit_crc(p, n, crc)) != 0)
            return rc;
        (*sent)++;
        *bytes += n;
    }
    return 0;
}

/* produce_stdin sends standard input: each item is what it had ready, up to
 * the slot size, read into a cached buffer and copied on into the slot with
 * its checksum in one pass; a short read or a full slot ends the item. */
static int produce_stdin(shmpc_producer *p, uint64_t *sent, uint64_t *bytes) {
    static uint8_t piece[PIECE];
    for (;;) {
        struct shmpc_slot s;
        int rc = shmpc_reserve(p, &s);
        if (rc != 0)
            return rc;
        size_t off = 0;
        uint32_t crc = 0;
        bool eof = false, stopped = false;
        while (off < s.size) {
            size_t want = s.size - off < PIECE ? s.size - off : PIECE;
            ssize_t n = read(0, piece, want);
            if (n < 0) {
                if (errno == EINTR && stop_flag) {
                    stopped = true;
                    break;
                }
                if (errno == EINTR)
                    continue;
                fail(SHMPC_ESYS, "read standard input: %s", strerror(errno));
                return READ_FAILED;
            }
            if (n == 0) {
                eof = true;
                break;
            }
            crc = shmpc_copy_crc32c(crc, (uint8_t *)s.buf + off, piece, (size_t)n);
            off += (size_t)n;
            if ((size_t)n < want)
                break;
        }
        if (off > 0) {
            if ((rc = shmpc_commit_crc(p, off, crc)) != 0)
                return rc;
            (*sent)++;
            *bytes += off;
        }
        if (eof)
            return 0;
        if (stopped)
            return SHMPC_ECANCELED;
    }
}

static int cmd_produce(int argc, char **argv) {
    const char *name = "";
    bool use_stdin = false, fresh = false;
    int64_t count = 0, bytes = 0, slots = 8, slot_size = 8 << 20, wait = 10000000000LL, peer_timeout = 0, stall = 0,
            perm = 0600;
    int hugepages = SHMPC_AUTO;
    struct cli_flag flags[] = {
        {"name", CLI_STRING, &name, "the ring's NAME (1 to 64 of [A-Za-z0-9_.-], not starting with '.')", false},
        {"count", CLI_COUNT, &count, "send N items of exactly the slot size", false},
        {"bytes", CLI_SIZE, &bytes, "send SIZE bytes: full items and one shorter last item", false},
        {"stdin", CLI_BOOL, &use_stdin, "send standard input: each item is what it had ready, up to the slot size", false},
        {"slots", CLI_INT, &slots, "number of slots in the ring (default 8)", false},
        {"slot-size", CLI_SIZE, &slot_size, "bytes per slot, a multiple of 4096 (default 8MiB)", false},
        {"wait", CLI_DURATION, &wait, "how long to wait for a first consumer when one is needed (default 10s)", false},
        {"peer-timeout", CLI_DURATION, &peer_timeout, "how long to keep the ring for a new consumer (default 0s)", false},
        {"stall-timeout", CLI_DURATION, &stall, "treat a live consumer that released nothing this long as lost (0: off)",
         false},
        {"hugepages", CLI_POLICY, &hugepages, "back the ring with 2 MiB huge pages: auto, on or off (default auto)", false},
        {"perm", CLI_PERM, &perm, "permission bits of the ring's objects (default 0600)", false},
        {"fresh", CLI_BOOL, &fresh, "discard an existing ring of this NAME instead of resuming it", false},
        {NULL, CLI_BOOL, NULL, NULL, false},
    };
    int r;
    if (parse_flags(flags, argc, argv, "produce", &name, &r))
        return r;
    char sz[32];
    cli_format_size(sz, sizeof sz, slot_size);
    if (slots < 1 || slots > 1 << 20)
        return usage_error("-slots %" PRId64 ": want 1 to 1048576", slots);
    if (slot_size <= 0 || slot_size % 4096 != 0)
        return usage_error("-slot-size %s: want a positive multiple of 4096 (e.g. 4096, 64KiB, 8MiB)", sz);
    if (slot_size > 1LL << 40)
        return usage_error("-slot-size %s: too large", sz);
    bool count_set = flags[1].set, bytes_set = flags[2].set;
    if (count_set + bytes_set + use_stdin > 1)
        return usage_error("-count, -bytes and -stdin exclude each other: give one");
    if (count_set && count > INT64_MAX / slot_size)
        return usage_error("-count %" PRId64 " of -slot-size %s is more than %" PRId64
                           " bytes: give fewer items or smaller slots",
                           count, sz, INT64_MAX);
    if (wait <= 0)
        return usage_error("-wait: want a positive duration");
    if (peer_timeout < 0 || stall < 0)
        return usage_error("-peer-timeout and -stall-timeout must not be negative");
    uint64_t items = 0, total = 0;
    if (count_set) {
        items = (uint64_t)count;
        total = (uint64_t)count * (uint64_t)slot_size;
    } else if (bytes_set) {
        total = (uint64_t)bytes;
        items = (total + (uint64_t)slot_size - 1) / (uint64_t)slot_size;
    } else if (!use_stdin && !ring_exists(name)) {
        return no_source(name, fresh);
    }
    bool explicit_total = count_set || bytes_set, resume_only = !explicit_total && !use_stdin;

    catch_signals();
    warn_rmid_forced();
    fault_from_env();
    if (fault_at("produce-ended", 0))
        shmpc_hook_producer_ended = fault_hook;
    if (fault_at("produce-before-cleanup", 0))
        shmpc_hook_producer_drained = fault_hook;
    struct shmpc_producer_opts opt = {
        .slots = flags[4].set ? (uint64_t)slots : 0,
        .slot_size = flags[5].set ? (uint64_t)slot_size : 0,
        .hugepages = hugepages,
        .perm = (unsigned)perm,
        .stream_items = items,
        .stream_bytes = total,
        .check_stream = explicit_total,
        .fresh = fresh,
        .no_resume = use_stdin,
        .wait_ns = wait,
        .peer_timeout_ns = peer_timeout,
        .stall_timeout_ns = stall,
        .stop = &stop_flag,
        .log = note,
    };
    shmpc_producer *p;
    int rc = shmpc_producer_open(name, &opt, &p);
    if (rc != 0)
        return fail(rc, "%s", shmpc_last_error());
    if (resume_only && !shmpc_producer_resumed(p)) {
        /* The ring went away after the look above, or -fresh discarded it. */
        shmpc_producer_close(p);
        return no_source(name, fresh);
    }
    uint64_t ss = (uint64_t)slot_size;
    if (shmpc_producer_resumed(p)) {
        items = shmpc_producer_stream_items(p);
        total = shmpc_producer_stream_bytes(p);
        ss = shmpc_producer_slot_size(p);
    }
    if (shmpc_producer_huge(p))
        note(NULL, "ring uses huge pages");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t sent = 0, sent_bytes = 0;
    rc = use_stdin ? produce_stdin(p, &sent, &sent_bytes) : produce_pattern(p, items, total, ss, &sent, &sent_bytes);
    char msg[1024];
    if (rc == READ_FAILED) { /* printed already */
        shmpc_producer_close(p);
        return 1;
    }
    if (rc == SHMPC_ECANCELED && stop_flag)
        rc = 0; /* SIGINT/SIGTERM: end the stream where it stands */
    if (rc == 0)
        rc = shmpc_end(p); /* ends and waits for the drain; a further signal does not cut it short */
    snprintf(msg, sizeof msg, "%s", shmpc_last_error());
    bool huge = shmpc_producer_huge(p);
    int crc = shmpc_producer_close(p);
    if (rc == 0 && crc != 0) {
        rc = crc;
        snprintf(msg, sizeof msg, "%s", shmpc_last_error());
    }
    double secs = since(&t0);
    if (rc != 0)
        return fail(rc, "%s", msg);
    char b[32], rate[32];
    cli_format_bytes(b, sizeof b, sent_bytes);
    cli_format_rate(rate, sizeof rate, sent_bytes, secs);
    fprintf(stderr, "shmpc-c produce: %" PRIu64 " items, %s in %.3f s (%s), pages %s\n", sent, b, secs, rate,
            huge ? "huge" : "normal");
    return 0;
}

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int cmd_consume(int argc, char **argv) {
    const char *name = "", *manifest_path = NULL;
    bool to_stdout = false;
    int64_t wait = 10000000000LL, peer_timeout = 0, stall = 0, workers = 0;
    struct cli_flag flags[] = {
        {"name", CLI_STRING, &name, "the ring's NAME", false},
        {"stdout", CLI_BOOL, &to_stdout, "write the items to standard output, in order, as verified private copies",
         false},
        {"manifest", CLI_FILE, &manifest_path, "append one JSON line per delivered item to FILE, before it is released",
         false},
        {"wait", CLI_DURATION, &wait, "how long to wait for the ring and for a first producer (default 10s)", false},
        {"peer-timeout", CLI_DURATION, &peer_timeout, "how long to wait for a restarted producer (default 0s)", false},
        {"stall-timeout", CLI_DURATION, &stall, "treat a live producer that published nothing this long as lost (0: off)",
         false},
        {"workers", CLI_INT, &workers, "accepted for the Go CLI's sake: shmpc-c verifies on one thread", false},
        {NULL, CLI_BOOL, NULL, NULL, false},
    };
    int r;
    if (parse_flags(flags, argc, argv, "consume", &name, &r))
        return r;
    if (workers < 0 || workers > 1024)
        return usage_error("-workers %" PRId64 ": want 1 to 1024 (0 or left out: one per CPU)", workers);
    if (wait <= 0)
        return usage_error("-wait: want a positive duration");
    if (peer_timeout < 0 || stall < 0)
        return usage_error("-peer-timeout and -stall-timeout must not be negative");
    int manifest = -1;
    if (manifest_path != NULL) {
        manifest = open(manifest_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (manifest < 0)
            return fail(SHMPC_ESYS, "open manifest: %s: %s", manifest_path, strerror(errno));
    }
    if (to_stdout)
        signal(SIGPIPE, SIG_IGN); /* a reader that goes away ends us quietly (EPIPE) */
    catch_signals();
    struct shmpc_consumer_opts opt = {
        .copy = to_stdout || manifest >= 0,
        .wait_ns = wait,
        .peer_timeout_ns = peer_timeout,
        .stall_timeout_ns = stall,
        .stop = &stop_flag,
        .log = note,
    };
    shmpc_consumer *c;
    int rc = shmpc_consumer_open(name, &opt, &c);
    if (rc != 0) {
        if (manifest >= 0)
            close(manifest);
        if (rc == SHMPC_ECANCELED)
            return 0; /* interrupted while waiting for the producer */
        return fail(rc, "%s", shmpc_last_error());
    }
    uint64_t items = 0, nbytes = 0;
    int64_t last_release = 0;
    char msg[1024] = "";
    fault_from_env();
    for (;;) {
        struct shmpc_item it;
        rc = shmpc_acquire(c, &it);
        if (rc == SHMPC_EENDED || rc == SHMPC_ECANCELED) {
            rc = 0; /* the end of the stream, or a graceful stop */
            break;
        }
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s", shmpc_last_error());
            break;
        }
        if (fault_at("consume-in-handler", it.seq))
            fault_hang();
        if (manifest >= 0) {
            char line[128];
            int n = snprintf(line, sizeof line, "{\"seq\":%" PRIu64 ",\"len\":%zu,\"crc32c\":%" PRIu32 "}\n", it.seq,
                             it.len, it.crc);
            if (write_all(manifest, line, (size_t)n) != 0) {
                rc = SHMPC_ESYS;
                snprintf(msg, sizeof msg, "write manifest: %s", strerror(errno));
                break;
            }
        }
        if (to_stdout && write_all(1, it.data, it.len) != 0) {
            if (errno == EPIPE)
                break; /* the reader has what it wanted; the item stays unreleased */
            rc = SHMPC_ESYS;
            snprintf(msg, sizeof msg, "write standard output: %s", strerror(errno));
            break;
        }
        if ((rc = shmpc_release(c, it.seq)) != 0) {
            snprintf(msg, sizeof msg, "%s", shmpc_last_error());
            break;
        }
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        last_release = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
        items++;
        nbytes += it.len;
        if (rc != 0)
            break;
    }
    int64_t first = (int64_t)shmpc_consumer_first_reserve_ns(c);
    struct shmpc_counters cnt;
    shmpc_consumer_counters(c, &cnt);
    bool huge = shmpc_consumer_huge(c);
    shmpc_consumer_close(c);
    if (manifest >= 0)
        close(manifest);
    if (rc != 0)
        return fail(rc, "%s", msg);
    double secs = first > 0 && last_release > first ? (double)(last_release - first) / 1e9 : 0;
    char b[32], rate[32];
    cli_format_bytes(b, sizeof b, nbytes);
    cli_format_rate(rate, sizeof rate, nbytes, secs);
    fprintf(stderr, "shmpc-c consume: %" PRIu64 " items, %s in %.3f s (%s), %" PRIu64 " integrity errors, pages %s\n",
            items, b, secs, rate, cnt.integrity_errors, huge ? "huge" : "normal");
    return 0;
}

static const char usage[] = "usage: shmpc-c <command> [flags]\n\n"
                            "commands:\n"
                            "  produce   write items into the ring NAME\n"
                            "  consume   read, verify and process items from the ring NAME\n"
                            "  version   the CRC32C kernel and payload fill in use\n\n"
                            "Run 'shmpc-c <command> -h' for a command's flags.\n"
                            "Exit status: 0 ok, 1 error, 2 usage, 3 peer lost, 4 integrity error.\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    cmd_name = argv[1];
    if (!strcmp(argv[1], "produce"))
        return cmd_produce(argc - 2, argv + 2);
    if (!strcmp(argv[1], "consume"))
        return cmd_consume(argc - 2, argv + 2);
    if (!strcmp(argv[1], "version")) {
        printf("shmpc-c: crc32c %s, payload fill %s\n", shmpc_crc32c_kernel(), shmpc_payload_fill_name());
        return 0;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "-help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return 0;
    }
    fprintf(stderr, "shmpc-c: unknown command \"%s\"\n%s", argv[1], usage);
    return EXIT_USAGE;
}
