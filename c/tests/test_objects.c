/* test_objects: names and keys, the lock file's rules (claim, held, gate,
 * stale, leave, ownership), the semaphore files (made exactly as glibc's,
 * refused when they would fault or misbehave) and the segment (lookup,
 * ownership, removal by id). Objects are made under a NAME unique to this
 * run and removed at the end, also after a failed check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "check.h"

static char name[64];
static struct shmpc_names names;

static void cleanup(void) {
    shmpc_sems_unlink(&names);
    unlink(names.lock);
    char p[128];
    snprintf(p, sizeof p, "/dev/shm/sem.shmpc.%s.bad", name);
    unlink(p);
    int id = shmget(names.key, 0, 0);
    if (id >= 0)
        shmctl(id, IPC_RMID, NULL);
}

static void test_names(void) {
    CHECK(shmpc_key_for("demo") == 0x6ead639, "key(demo) %#x", shmpc_key_for("demo"));
    CHECK(shmpc_key_for("x") == 0x4bc4524a, "key(x) %#x", shmpc_key_for("x"));
    CHECK(shmpc_key_for("run-1") == 0x7093ac95, "key(run-1) %#x", shmpc_key_for("run-1"));
    const char *bad[] = {"", ".hidden", "a/b", "a b", "0123456789012345678901234567890123456789012345678901234567890123x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_RC(shmpc_valid_name(bad[i]), SHMPC_EINVAL);
    CHECK_RC(shmpc_valid_name("a.b-c_D9"), 0);
    struct shmpc_names n;
    CHECK_RC(shmpc_names_for("demo", &n), 0);
    CHECK(strcmp(n.sem[SHMPC_SEM_FILLED], "/shmpc.demo.filled") == 0 && strcmp(n.sem[SHMPC_SEM_SHUTDOWN],
          "/shmpc.demo.shutdown") == 0 && strcmp(n.lock, "/dev/shm/shmpc.demo.lock") == 0, "object names");
}

static void test_lockfile(void) {
    struct shmpc_lockfile p, p2, c, x;
    CHECK_RC(shmpc_lock_claim(&p, names.lock, SHMPC_ROLE_PRODUCER, true, 0640, (int)geteuid()), 0);
    struct stat st;
    CHECK(stat(names.lock, &st) == 0 && (st.st_mode & 0777) == 0640, "lock file mode %#o, want exactly 0640",
          (unsigned)(st.st_mode & 0777));
    CHECK(p.created, "created");
    /* Another open file description, even in this process, is another
     * holder: the role is taken. */
    CHECK_RC(shmpc_lock_claim(&p2, names.lock, SHMPC_ROLE_PRODUCER, true, 0640, (int)geteuid()), 1);
    CHECK_RC(shmpc_lock_claim(&c, names.lock, SHMPC_ROLE_CONSUMER, false, 0, -1), 0);
    CHECK_RC(shmpc_lock_held(&c, SHMPC_ROLE_PRODUCER), 1);
    CHECK_RC(shmpc_lock_held(&p, SHMPC_ROLE_CONSUMER), 1);
    CHECK_RC(shmpc_lock_held(&p, SHMPC_ROLE_PRODUCER), 0); /* our own lock does not count */
    CHECK_RC(shmpc_lock_stale(&p), 0);
    /* A cleaner finds the roles held. */
    CHECK_RC(shmpc_lock_claim(&x, names.lock, SHMPC_ROLE_CONSUMER, false, 0, -1), 1);
    int fd = open(names.lock, O_RDWR);
    struct flock gate = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1};
    CHECK(fcntl(fd, F_OFD_SETLK, &gate) == 0, "a claimant's shared gate: %s", strerror(errno));
    bool before[2];
    CHECK_RC(shmpc_lock_all(&p, before), 1); /* the gate is held by a claimant */
    gate.l_type = F_UNLCK;
    fcntl(fd, F_OFD_SETLK, &gate);
    CHECK_RC(shmpc_lock_all(&p, before), SHMPC_EBUSY); /* the consumer's role is held */
    CHECK(p.mine[SHMPC_ROLE_PRODUCER] && !p.mine[SHMPC_GATE] && !p.mine[SHMPC_ROLE_CONSUMER],
          "a failed lock_all keeps what was held before and nothing else");
    /* The consumer leaves: the producer still holds its role, the file stays. */
    CHECK_RC(shmpc_lock_leave(&c, &names, SHMPC_ROLE_CONSUMER, false, 0), 0);
    shmpc_lock_close(&c);
    CHECK(access(names.lock, F_OK) == 0, "the file went while the producer holds its role");
    CHECK_RC(shmpc_lock_held(&p, SHMPC_ROLE_CONSUMER), 0);
    /* A claimant that waits for a cleaner: the producer cleans (all three). */
    CHECK_RC(shmpc_lock_all(&p, before), 0);
    int64_t t0 = shmpc_now();
    if (fork() == 0) {
        /* A child holds nothing: it cannot claim while the gate is held,
         * and gets the role once the cleaner lets go. */
        struct shmpc_lockfile cl;
        int r = shmpc_lock_claim(&cl, names.lock, SHMPC_ROLE_CONSUMER, false, 0, -1);
        _exit(r == 0 ? 0 : 1);
    }
    shmpc_sleep_ns(100000000);
    shmpc_lock_undo_all(&p, before);
    int status;
    wait(&status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a claimant waiting for a cleaner got the role after it");
    CHECK(shmpc_now() - t0 >= 90000000, "the claimant did not wait for the cleaner");
    /* The producer leaves with no segment and nobody else: file removed. */
    CHECK_RC(shmpc_lock_leave(&p, &names, SHMPC_ROLE_PRODUCER, false, 0), 0);
    shmpc_lock_close(&p);
    CHECK(access(names.lock, F_OK) != 0, "the lock file stayed after both roles left");
    close(fd);
    /* Stale: a file replaced after it was opened. */
    CHECK_RC(shmpc_lock_claim(&p, names.lock, SHMPC_ROLE_PRODUCER, true, 0600, (int)geteuid()), 0);
    unlink(names.lock);
    CHECK_RC(shmpc_lock_stale(&p), 1);
    CHECK_RC(shmpc_lock_claim(&c, names.lock, SHMPC_ROLE_PRODUCER, true, 0600, (int)geteuid()), 0);
    CHECK_RC(shmpc_lock_stale(&p), 1);
    CHECK_RC(shmpc_lock_remove(&p), SHMPC_ESTATE); /* not holding all three */
    shmpc_lock_close(&p);
    shmpc_lock_close(&c);
    /* Ownership: a file that grants more than the ring's bits is refused,
     * and so is a symbolic link. */
    chmod(names.lock, 0666);
    CHECK_RC(shmpc_lock_claim(&p, names.lock, SHMPC_ROLE_PRODUCER, true, 0600, (int)geteuid()), SHMPC_EFOREIGN);
    unlink(names.lock);
    CHECK(symlink("/dev/null", names.lock) == 0, "symlink: %s", strerror(errno));
    CHECK_RC(shmpc_lock_claim(&p, names.lock, SHMPC_ROLE_PRODUCER, true, 0600, (int)geteuid()), SHMPC_EFOREIGN);
    unlink(names.lock);
}

static void test_sems(void) {
    mode_t old = umask(077);
    struct shmpc_sems s;
    CHECK_RC(shmpc_sems_open(&s, &names, true, 0660, geteuid(), true), 0);
    umask(old);
    for (int i = 0; i < 4; i++) {
        char p[128];
        snprintf(p, sizeof p, "/dev/shm/sem.%s", names.sem[i] + 1);
        struct stat st;
        CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0660 && st.st_size == 32, "%s: mode %#o size %lld", p,
              (unsigned)(st.st_mode & 0777), (long long)st.st_size);
        uint8_t img[32];
        int fd = open(p, O_RDONLY);
        CHECK(fd >= 0 && read(fd, img, 32) == 32, "read %s", p);
        uint8_t want[32] = {0};
        want[8] = 0x80;
        CHECK(memcmp(img, want, 32) == 0, "%s is not glibc's new semaphore image", p);
        close(fd);
    }
    /* glibc's own sem_open and ours meet on the same semaphore. */
    sem_t *g = sem_open(names.sem[SHMPC_SEM_READY], 0);
    CHECK(g != SEM_FAILED, "sem_open: %s", strerror(errno));
    CHECK_RC(shmpc_sem_post(g), 0);
    CHECK_RC(shmpc_sem_wait_until(s.s[SHMPC_SEM_READY], shmpc_now() + 1000000000), 0);
    int64_t t0 = shmpc_now();
    CHECK_RC(shmpc_sem_wait_until(s.s[SHMPC_SEM_READY], t0 + 50000000), 1);
    CHECK(shmpc_now() - t0 >= 45000000, "a timed wait returned early");
    sem_close(g);
    shmpc_sems_close(&s);
    /* A second open finds them; a looser bound on the mode is fine, a
     * narrower one is not. */
    CHECK_RC(shmpc_sems_open(&s, &names, false, 0777, geteuid(), false), 0);
    shmpc_sems_close(&s);
    CHECK_RC(shmpc_sems_open(&s, &names, true, 0600, geteuid(), true), SHMPC_EFOREIGN);
    CHECK_RC(shmpc_sems_open(&s, &names, false, 0, 65534, false), SHMPC_EFOREIGN); /* another owner */
    CHECK_RC(shmpc_sems_unlink(&names), 0);
    CHECK_RC(shmpc_sems_open(&s, &names, false, 0, geteuid(), false), SHMPC_ENORING);
    /* Files glibc would fault on or misuse are refused. */
    char bad[80], path[128];
    snprintf(bad, sizeof bad, "/shmpc.%s.bad", name);
    snprintf(path, sizeof path, "/dev/shm/sem.shmpc.%s.bad", name);
    sem_t *x;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK_RC(shmpc_sem_open_checked(bad, -1, &x), SHMPC_ECORRUPT); /* 0 bytes: sem_post would SIGBUS */
    uint8_t img[32] = {0};
    CHECK(write(fd, img, 32) == 32, "write");
    CHECK_RC(shmpc_sem_open_checked(bad, -1, &x), SHMPC_ECORRUPT); /* private word 0 */
    img[8] = 0x80;
    img[3] = 0x80; /* value beyond SEM_VALUE_MAX */
    CHECK(pwrite(fd, img, 32, 0) == 32, "pwrite");
    CHECK_RC(shmpc_sem_open_checked(bad, -1, &x), SHMPC_ECORRUPT);
    img[3] = 0;
    CHECK(pwrite(fd, img, 32, 0) == 32, "pwrite");
    CHECK_RC(shmpc_sem_open_checked(bad, -1, &x), 0);
    if (x != NULL)
        sem_close(x);
    close(fd);
    unlink(path);
    CHECK(symlink("/dev/null", path) == 0, "symlink");
    CHECK_RC(shmpc_sem_open_checked(bad, -1, &x), SHMPC_EFOREIGN);
    unlink(path);
}

static void test_segment(void) {
    struct shmpc_seg_info info;
    CHECK_RC(shmpc_seg_lookup(names.key, &info), SHMPC_ENORING);
    struct shmpc_segment s;
    char note[256];
    CHECK_RC(shmpc_seg_create(&s, names.key, 8192, SHMPC_OFF, 0600, true, note, sizeof note), 0);
    CHECK(!s.huge && s.size == 8192, "a normal-page segment of 8192 bytes");
    CHECK_RC(shmpc_seg_lookup(names.key, &info), 0);
    CHECK(info.id == s.id && info.uid == geteuid() && info.cuid == geteuid() && info.mode == 0600 &&
              info.size == 8192 && info.cpid == getpid(),
          "lookup: id %d uid %u cuid %u mode %#o size %llu", info.id, (unsigned)info.uid, (unsigned)info.cuid,
          info.mode, (unsigned long long)info.size);
    struct shmpc_segment a;
    CHECK_RC(shmpc_seg_attach(&a, &info), 0);
    ((volatile uint8_t *)s.mem)[100] = 7;
    CHECK(((volatile uint8_t *)a.mem)[100] == 7, "two attachments share the memory");
    shmpc_seg_detach(&a);
    CHECK_RC(shmpc_seg_create(&a, names.key, 8192, SHMPC_OFF, 0600, false, note, sizeof note), SHMPC_EFOREIGN);
    /* A segment handed to another uid (IPC_SET) is not ours. */
    if (geteuid() == 0) {
        struct shmid_ds ds;
        shmctl(s.id, IPC_STAT, &ds);
        ds.shm_perm.uid = 65534;
        CHECK(shmctl(s.id, IPC_SET, &ds) == 0, "IPC_SET: %s", strerror(errno));
        shmpc_producer *p;
        struct shmpc_producer_opts o = {.slots = 1, .slot_size = 4096, .wait_ns = -1};
        CHECK_RC(shmpc_producer_open(name, &o, &p), SHMPC_EFOREIGN);
        CHECK(strstr(shmpc_last_error(), "owned by uid 65534") != NULL, "message: %s", shmpc_last_error());
        CHECK(shmget(names.key, 0, 0) == s.id, "the refused segment was touched");
        CHECK(access(names.lock, F_OK) != 0, "the refused open left its lock file");
    }
    CHECK(!shmpc_seg_marked_removed(&s), "a live segment reads as marked removed");
    CHECK_RC(shmpc_seg_remove(&s), 0);
    CHECK_RC(shmpc_seg_lookup(names.key, &info), SHMPC_ENORING);
    /* Still attached: the id answers IPC_STAT with SHM_DEST set. */
    CHECK(shmpc_seg_marked_removed(&s), "a removed segment still attached does not read as marked removed");
    shmpc_seg_detach(&s);
}

int main(void) {
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(name, sizeof name, "ctest%d-%04x-objects", (int)getpid(), rand() & 0xffff);
    CHECK_RC(shmpc_names_for(name, &names), 0);
    atexit(cleanup);
    test_names();
    test_lockfile();
    test_sems();
    test_segment();
    return check_done("test_objects");
}
