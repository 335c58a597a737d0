/* lockfile.c: the role lock file /dev/shm/shmpc.NAME.lock (docs/objects.md,
 * "The lock file"): OFD write locks on byte 0 (producer) and byte 1
 * (consumer), byte 2 the gate that claimants take shared and cleaners
 * exclusively; the stale-file rule; claim, clean, remove and leave. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define CLEAN_WAIT_NS (5 * INT64_C(1000000000)) /* a claim waits this long for a cleaner */
#define LEAVE_GATE_WAIT_NS (2 * INT64_C(1000000000))
#define STALE_TRIES 1000

static const char *role_name(int role) {
    switch (role) {
    case SHMPC_ROLE_PRODUCER: return "producer";
    case SHMPC_ROLE_CONSUMER: return "consumer";
    }
    return "gate";
}

static int lf_open(struct shmpc_lockfile *l, const char *path, bool create, unsigned perm, int want_uid) {
    memset(l, 0, sizeof *l);
    l->fd = -1;
    snprintf(l->path, sizeof l->path, "%s", path);
    int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(path, flags);
    bool created = false;
    if (fd < 0 && errno == ENOENT && create) {
        fd = open(path, flags | O_CREAT | O_EXCL, perm & 0777);
        if (fd < 0 && errno == EEXIST)
            fd = open(path, flags);
        else if (fd >= 0)
            created = true;
    }
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return shmpc_seterr(SHMPC_ENORING, "open lock file %s: no such file", path);
        if (e == ELOOP)
            return shmpc_seterr(SHMPC_EFOREIGN, "open lock file %s: is a symbolic link: lock file is not ours", path);
        return shmpc_syserr(e, "open lock file %s", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return shmpc_syserr(e, "stat lock file %s", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return shmpc_seterr(SHMPC_EFOREIGN, "open lock file %s: not a regular file: lock file is not ours", path);
    }
    if (want_uid >= 0 && st.st_uid != (uid_t)want_uid) {
        close(fd);
        return shmpc_seterr(SHMPC_EFOREIGN,
                            "open lock file %s: owned by uid %u, not %d; remove it as its owner or root if it is a "
                            "squatter's: lock file is not ours",
                            path, (unsigned)st.st_uid, want_uid);
    }
    if (created) {
        /* A failure leaves the file: another process may have opened it
         * already, and only a holder of every lock on it may unlink it. */
        if (fchmod(fd, perm & 0777) != 0) {
            int e = errno;
            close(fd);
            return shmpc_syserr(e, "chmod lock file %s", path);
        }
    } else if (want_uid >= 0 && perm != 0 && (st.st_mode & 0777 & ~perm) != 0) {
        close(fd);
        return shmpc_seterr(SHMPC_EFOREIGN,
                            "open lock file %s: mode %#o grants %#o beyond %#o; remove it (shmpc gc) or widen -perm: "
                            "lock file is not ours",
                            path, (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0777 & ~perm), perm);
    }
    l->fd = fd;
    l->created = created;
    return 0;
}

/* setlk takes (or drops, F_UNLCK) a lock on byte b without waiting: 0 done,
 * 1 held by another open file description, <0 error. */
static int setlk(struct shmpc_lockfile *l, short type, int b) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = b, .l_len = 1, .l_pid = 0};
    int r;
    do
        r = fcntl(l->fd, F_OFD_SETLK, &fl);
    while (r != 0 && errno == EINTR);
    if (r != 0) {
        if (errno == EAGAIN || errno == EACCES)
            return 1;
        return shmpc_syserr(errno, "lock %s byte of %s", role_name(b), l->path);
    }
    l->mine[b] = type != F_UNLCK;
    return 0;
}

int shmpc_lock_try(struct shmpc_lockfile *l, int role) {
    int r = setlk(l, F_WRLCK, role);
    if (r == 1)
        return shmpc_seterr(SHMPC_EBUSY, "lock %s role of %s: role is held by a live process", role_name(role), l->path);
    return r;
}

int shmpc_lock_unlock(struct shmpc_lockfile *l, int role) { return setlk(l, F_UNLCK, role); }

int shmpc_lock_held(struct shmpc_lockfile *l, int role) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = role, .l_len = 1, .l_pid = 0};
    int r;
    do
        r = fcntl(l->fd, F_OFD_GETLK, &fl);
    while (r != 0 && errno == EINTR);
    if (r != 0)
        return shmpc_syserr(errno, "test %s role of %s", role_name(role), l->path);
    return fl.l_type != F_UNLCK;
}

int shmpc_lock_stale(struct shmpc_lockfile *l) {
    struct stat mine, there;
    if (fstat(l->fd, &mine) != 0)
        return shmpc_syserr(errno, "stat lock file %s", l->path);
    if (lstat(l->path, &there) != 0) {
        if (errno == ENOENT)
            return 1;
        return shmpc_syserr(errno, "stat lock file %s", l->path);
    }
    return mine.st_dev != there.st_dev || mine.st_ino != there.st_ino;
}

int shmpc_lock_owner(struct shmpc_lockfile *l, uid_t *uid) {
    struct stat st;
    if (fstat(l->fd, &st) != 0)
        return shmpc_syserr(errno, "stat lock file %s", l->path);
    *uid = st.st_uid;
    return 0;
}

void shmpc_lock_close(struct shmpc_lockfile *l) {
    if (l->fd >= 0)
        close(l->fd); /* drops every OFD lock of this description */
    l->fd = -1;
    memset(l->mine, 0, sizeof l->mine);
}

/* wait_gate takes the gate shared, waiting in short sleeps while a cleaner
 * holds it: 0 taken, 2 the file left the path, <0 error. */
static int wait_gate(struct shmpc_lockfile *l, int64_t deadline) {
    int64_t step = 200000;
    for (;;) {
        int r = setlk(l, F_RDLCK, SHMPC_GATE);
        if (r <= 0)
            return r;
        int st = shmpc_lock_stale(l);
        if (st < 0)
            return st;
        if (st == 1)
            return 2;
        if (shmpc_now() >= deadline)
            return shmpc_seterr(SHMPC_EBUSY,
                                "lock file %s: another process (shmpc gc, or a side removing the ring as it leaves) "
                                "held it longer than the wait; try again",
                                l->path);
        shmpc_sleep_ns(step);
        step = step * 2 < 10000000 ? step * 2 : 10000000;
    }
}

int shmpc_lock_claim(struct shmpc_lockfile *l, const char *path, int role, bool create, unsigned perm, int want_uid) {
    int64_t deadline = shmpc_now() + CLEAN_WAIT_NS;
    for (int tries = 0; tries < STALE_TRIES; tries++) {
        int rc = lf_open(l, path, create, perm, want_uid);
        if (rc != 0)
            return rc;
        rc = wait_gate(l, deadline);
        if (rc == 2) {
            shmpc_lock_close(l);
            continue;
        }
        if (rc != 0) {
            shmpc_lock_close(l);
            return rc;
        }
        rc = setlk(l, F_WRLCK, role);
        if (rc != 0) {
            shmpc_lock_close(l);
            return rc; /* 1: a live process holds the role */
        }
        int st = shmpc_lock_stale(l);
        if (st != 0) {
            /* Removed or replaced between our open and our locks: a role
             * on it excludes nobody. Start over. */
            shmpc_lock_close(l);
            if (st < 0)
                return st;
            continue;
        }
        if ((rc = setlk(l, F_UNLCK, SHMPC_GATE)) != 0) {
            shmpc_lock_close(l);
            return rc;
        }
        return 0;
    }
    return shmpc_seterr(SHMPC_EBUSY, "claim %s role of %s: the file was replaced %d times while it was being locked",
                        role_name(role), path, STALE_TRIES);
}

int shmpc_lock_all(struct shmpc_lockfile *l, bool before[2]) {
    before[0] = l->mine[0];
    before[1] = l->mine[1];
    int r = setlk(l, F_WRLCK, SHMPC_GATE);
    if (r != 0)
        return r; /* 1: the gate is held elsewhere */
    for (int role = 0; role < 2; role++) {
        r = setlk(l, F_WRLCK, role);
        if (r != 0) {
            shmpc_lock_undo_all(l, before);
            return r == 1 ? SHMPC_EBUSY : r;
        }
    }
    return 0;
}

void shmpc_lock_undo_all(struct shmpc_lockfile *l, const bool before[2]) {
    for (int role = 1; role >= 0; role--)
        if (!before[role] && l->mine[role])
            setlk(l, F_UNLCK, role);
    setlk(l, F_UNLCK, SHMPC_GATE);
}

int shmpc_lock_remove(struct shmpc_lockfile *l) {
    if (!(l->mine[0] && l->mine[1] && l->mine[2]))
        return shmpc_seterr(SHMPC_ESTATE, "remove lock file %s: not holding the gate and both roles", l->path);
    int st = shmpc_lock_stale(l);
    if (st != 0)
        return st < 0 ? st : 0;
    if (unlink(l->path) != 0) {
        if (errno == ENOENT)
            return 0;
        return shmpc_syserr(errno, "remove lock file %s", l->path);
    }
    return 1;
}

int shmpc_lock_leave(struct shmpc_lockfile *l, const struct shmpc_names *n, int role, bool force, int64_t wait_ns) {
    if (l->fd < 0)
        return 0;
    int rc = shmpc_lock_unlock(l, role);
    if (rc != 0)
        return rc;
    if (shmpc_lock_stale(l) == 1)
        return 0; /* removed already */
    int64_t start = shmpc_now(), step = 200000;
    bool before[2];
    for (;;) {
        int r = shmpc_lock_all(l, before);
        if (r == 0)
            break;
        if (r < 0 && r != SHMPC_EBUSY)
            return r;
        if (shmpc_lock_stale(l) == 1)
            return 0; /* removed by the other side */
        int64_t limit = wait_ns;
        if (r == 1 && limit < LEAVE_GATE_WAIT_NS)
            limit = LEAVE_GATE_WAIT_NS;
        if (shmpc_now() - start >= limit)
            return 0; /* a live owner (or a cleaner) has it */
        shmpc_sleep_ns(step);
        step = step * 2 < 10000000 ? step * 2 : 10000000;
    }
    rc = 0;
    if (!force) {
        struct shmpc_seg_info info;
        int r = shmpc_seg_lookup(n->key, &info);
        if (r != SHMPC_ENORING) {
            /* The ring's segment is there (or cannot be judged): its lock
             * file stays, for gc to judge the ring by. */
            shmpc_lock_undo_all(l, before);
            return 0;
        }
    }
    int r = shmpc_lock_remove(l);
    if (r < 0)
        rc = r;
    shmpc_lock_undo_all(l, before);
    return rc;
}
