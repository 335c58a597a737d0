/* objects.c: the ring's four glibc named semaphores and its System V segment
 * (docs/objects.md, "Semaphores" and "The segment"). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifndef SHM_HUGE_SHIFT
#define SHM_HUGE_SHIFT 26
#endif
#ifndef SHM_HUGE_2MB
#define SHM_HUGE_2MB (21 << SHM_HUGE_SHIFT)
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define SEM_SIZE 32
#define SEM_PRIVATE_SHARED 0x80u
#define SEM_VALUE_MAX_ 0x7fffffffu

/* ---- semaphores ---- */

static void sem_path(const char *name, char *buf, size_t n) {
    while (*name == '/')
        name++;
    snprintf(buf, n, "/dev/shm/sem.%s", name);
}

/* sem_image is glibc's new process-shared semaphore with value 0: data 0,
 * private 0x80, the rest zero. */
static void sem_image(uint8_t img[SEM_SIZE]) {
    memset(img, 0, SEM_SIZE);
    uint32_t priv = SEM_PRIVATE_SHARED;
    memcpy(img + 8, &priv, 4);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* sem_create makes the semaphore file name with value 0 and mode exactly
 * perm: the complete image in an unnamed file linked to the name (where
 * O_TMPFILE and /proc work), else a temporary sem.XXXXXX linked and removed,
 * as glibc does; no process sees a partial file. 0 created, 1 it existed,
 * <0 error. */
static int sem_create(const char *name, unsigned perm) {
    char path[128];
    sem_path(name, path, sizeof path);
    uint8_t img[SEM_SIZE];
    sem_image(img);
    int fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, perm & 0777);
    if (fd >= 0) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (fchmod(fd, perm & 0777) != 0 || write_all(fd, img, SEM_SIZE) != 0) {
            int e = errno;
            close(fd);
            return shmpc_syserr(e, "create semaphore %s", name);
        }
        int r = linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
        int e = errno;
        close(fd);
        if (r == 0)
            return 0;
        if (e == EEXIST)
            return 1;
        if (e != ENOENT && e != EXDEV && e != EPERM && e != EACCES)
            return shmpc_syserr(e, "create semaphore %s: link", name);
        /* no /proc: the named temporary file below */
    }
    char tmp[] = "/dev/shm/sem.XXXXXX";
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return shmpc_syserr(errno, "create semaphore %s: temporary file", name);
    int rc = 0;
    if (fchmod(fd, perm & 0777) != 0 || write_all(fd, img, SEM_SIZE) != 0)
        rc = shmpc_syserr(errno, "create semaphore %s", name);
    else if (link(tmp, path) != 0)
        rc = errno == EEXIST ? 1 : shmpc_syserr(errno, "create semaphore %s: link", name);
    close(fd);
    unlink(tmp);
    return rc;
}

int shmpc_sem_open_checked(const char *name, long uid, sem_t **out) {
    return shmpc_sem_open_mode(name, uid, -1, out);
}

/* shmpc_sem_open_mode opens an existing semaphore: a look at the file's owner
 * before anything is mapped, then the file itself (regular, at least 32
 * bytes, owner uid when uid >= 0, mode within perm when perm >= 0, private
 * word 0x80, value at most SEM_VALUE_MAX: a file glibc would fault on or
 * misuse is refused), then sem_open, then a check that the name still
 * names the file that was checked. */
int shmpc_sem_open_mode(const char *name, long uid, long perm, sem_t **out) {
    char path[128];
    sem_path(name, path, sizeof path);
    for (int attempt = 0; attempt < 3; attempt++) {
        struct stat st;
        if (lstat(path, &st) != 0) {
            if (errno == ENOENT)
                return shmpc_seterr(SHMPC_ENORING, "open semaphore %s: no such semaphore", name);
            return shmpc_syserr(errno, "open semaphore %s", name);
        }
        if (uid >= 0 && st.st_uid != (uid_t)uid)
            return shmpc_seterr(SHMPC_EFOREIGN,
                                "semaphore %s is owned by uid %u, not %ld; it is not adopted: let its owner remove it, "
                                "or use another -name",
                                name, (unsigned)st.st_uid, uid);
        int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == ENOENT)
                return shmpc_seterr(SHMPC_ENORING, "open semaphore %s: no such semaphore", name);
            if (e == ELOOP)
                return shmpc_seterr(SHMPC_EFOREIGN, "open semaphore %s: %s is a symbolic link", name, path);
            return shmpc_syserr(e, "open semaphore %s", name);
        }
        int rc = 0;
        uint8_t img[SEM_SIZE];
        if (fstat(fd, &st) != 0)
            rc = shmpc_syserr(errno, "open semaphore %s: fstat", name);
        else if (!S_ISREG(st.st_mode))
            rc = shmpc_seterr(SHMPC_EFOREIGN, "open semaphore %s: %s is not a regular file", name, path);
        else if (st.st_size < SEM_SIZE)
            rc = shmpc_seterr(SHMPC_ECORRUPT, "open semaphore %s: %s is %lld bytes, a semaphore needs %d", name, path,
                              (long long)st.st_size, SEM_SIZE);
        else if (uid >= 0 && st.st_uid != (uid_t)uid)
            rc = shmpc_seterr(SHMPC_EFOREIGN, "semaphore %s is owned by uid %u, want uid %ld", name,
                              (unsigned)st.st_uid, uid);
        else if (perm >= 0 && (st.st_mode & 0777 & ~(unsigned long)perm) != 0)
            rc = shmpc_seterr(SHMPC_EFOREIGN, "semaphore %s has permission %#o, which grants %#o beyond the requested %#lo",
                              name, (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0777 & ~(unsigned long)perm),
                              (unsigned long)perm);
        else if (pread(fd, img, SEM_SIZE, 0) != SEM_SIZE)
            rc = shmpc_syserr(errno ? errno : EIO, "open semaphore %s: read", name);
        else {
            uint32_t value, priv;
            memcpy(&value, img, 4);
            memcpy(&priv, img + 8, 4);
            if (priv != SEM_PRIVATE_SHARED)
                rc = shmpc_seterr(SHMPC_ECORRUPT, "open semaphore %s: private word %#x is not 0x80 (process-shared)",
                                  name, priv);
            else if (value > SEM_VALUE_MAX_)
                rc = shmpc_seterr(SHMPC_ECORRUPT, "open semaphore %s: value %u exceeds SEM_VALUE_MAX", name, value);
        }
        if (rc != 0) {
            close(fd);
            return rc;
        }
        sem_t *s = sem_open(name, 0);
        if (s == SEM_FAILED) {
            int e = errno;
            close(fd);
            if (e == ENOENT)
                return shmpc_seterr(SHMPC_ENORING, "open semaphore %s: no such semaphore", name);
            return shmpc_syserr(e, "open semaphore %s: sem_open", name);
        }
        struct stat now;
        bool same = stat(path, &now) == 0 && now.st_dev == st.st_dev && now.st_ino == st.st_ino;
        close(fd);
        if (same) {
            *out = s;
            return 0;
        }
        sem_close(s); /* replaced between the checks and sem_open: look again */
    }
    return shmpc_seterr(SHMPC_EFOREIGN, "open semaphore %s: the file was replaced while it was being opened", name);
}

int shmpc_sems_open(struct shmpc_sems *s, const struct shmpc_names *n, bool create, unsigned perm, uid_t uid,
                    bool check_mode) {
    bool created[4] = {false, false, false, false};
    memset(s, 0, sizeof *s);
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (create) {
            rc = sem_create(n->sem[i], perm);
            if (rc == 0)
                created[i] = true;
            else if (rc == 1)
                rc = 0;
            if (rc != 0)
                break;
        }
        rc = shmpc_sem_open_mode(n->sem[i], (long)uid, check_mode ? (long)perm : -1, &s->s[i]);
    }
    if (rc != 0) {
        shmpc_sems_close(s);
        for (int i = 0; i < 4; i++)
            if (created[i])
                sem_unlink(n->sem[i]);
    }
    return rc;
}

void shmpc_sems_close(struct shmpc_sems *s) {
    for (int i = 0; i < 4; i++) {
        if (s->s[i] != NULL)
            sem_close(s->s[i]);
        s->s[i] = NULL;
    }
}

int shmpc_sems_unlink(const struct shmpc_names *n) {
    int rc = 0;
    for (int i = 0; i < 4; i++)
        if (sem_unlink(n->sem[i]) != 0 && errno != ENOENT && rc == 0)
            rc = shmpc_syserr(errno, "unlink semaphore %s", n->sem[i]);
    return rc;
}

int shmpc_sem_post(sem_t *s) {
    if (sem_post(s) != 0)
        return shmpc_syserr(errno, "post semaphore");
    return 0;
}

int shmpc_sem_wait_until(sem_t *s, int64_t abs_mono) {
    struct timespec ts = {.tv_sec = abs_mono / 1000000000, .tv_nsec = abs_mono % 1000000000};
    if (sem_clockwait(s, CLOCK_MONOTONIC, &ts) == 0)
        return 0;
    if (errno == ETIMEDOUT || errno == EINTR || errno == EAGAIN)
        return 1;
    return shmpc_syserr(errno, "wait on semaphore");
}

/* ---- the segment ---- */

static void fill_info(struct shmpc_seg_info *in, int id, const struct shmid_ds *ds) {
    in->id = id;
    in->uid = ds->shm_perm.uid;
    in->cuid = ds->shm_perm.cuid;
    in->mode = ds->shm_perm.mode & 0777;
    in->size = ds->shm_segsz;
    in->cpid = ds->shm_cpid;
    in->key = ds->shm_perm.__key;
}

int shmpc_seg_lookup(int key, struct shmpc_seg_info *info) {
    int id = shmget(key, 0, 0);
    if (id < 0) {
        if (errno == ENOENT)
            return shmpc_seterr(SHMPC_ENORING, "no segment with key %#x", key);
        return shmpc_syserr(errno, "look up segment key %#x", key);
    }
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0) {
        if (errno == EINVAL || errno == EIDRM)
            return shmpc_seterr(SHMPC_ENORING, "no segment with key %#x", key);
        if (errno == EACCES)
            return shmpc_seterr(SHMPC_EFOREIGN,
                                "segment key %#x (shmid %d) cannot be read by this user: it is not ours; let its creator "
                                "remove it, or use another -name",
                                key, id);
        return shmpc_syserr(errno, "stat segment key %#x", key);
    }
    fill_info(info, id, &ds);
    return 0;
}

/* huge_why explains a refused huge-page segment of size bytes. */
static void huge_why(char *buf, size_t n, uint64_t size, int err) {
    uint64_t need = size / SHMPC_HUGE_PAGE;
    long total = -1, free_ = -1;
    FILE *f = fopen("/proc/meminfo", "re");
    if (f != NULL) {
        char line[128];
        while (fgets(line, sizeof line, f) != NULL) {
            sscanf(line, "HugePages_Total: %ld", &total);
            sscanf(line, "HugePages_Free: %ld", &free_);
        }
        fclose(f);
    }
    if (err == ENOMEM && total >= 0 && free_ >= 0 && (uint64_t)free_ < need)
        snprintf(buf, n, "huge pages: pool has %ld free 2 MiB pages, need %llu; run: sysctl -w vm.nr_hugepages=%llu: %s",
                 free_, (unsigned long long)need, (unsigned long long)((uint64_t)total + need - (uint64_t)free_),
                 strerror(err));
    else if (err == EPERM)
        snprintf(buf, n,
                 "huge pages: SHM_HUGETLB needs CAP_IPC_LOCK or membership of group vm.hugetlb_shm_group; run: sysctl "
                 "-w vm.hugetlb_shm_group=%u: %s",
                 (unsigned)getegid(), strerror(err));
    else
        snprintf(buf, n, "huge pages: need %llu pages of 2 MiB: %s", (unsigned long long)need, strerror(err));
}

static int attach_id(struct shmpc_segment *s, int id) {
    void *mem = shmat(id, NULL, 0);
    if (mem == (void *)-1) {
        if (errno == EINVAL || errno == EIDRM)
            return shmpc_seterr(SHMPC_ENORING, "attach segment id %d: removed", id);
        if (errno == EACCES)
            return shmpc_seterr(SHMPC_EFOREIGN, "attach segment id %d: permission denied: not a segment this user may use",
                                id);
        return shmpc_syserr(errno, "attach segment id %d", id);
    }
    s->mem = mem;
    return 0;
}

void shmpc_seg_pretouch(struct shmpc_segment *s) {
    /* MADV_POPULATE_WRITE faults every page in without changing the data
     * (Linux 5.14); older kernels fault the pages in as they are used. */
    madvise(s->mem, s->size, MADV_POPULATE_WRITE);
}

int shmpc_seg_create(struct shmpc_segment *s, int key, uint64_t size, int huge_policy, unsigned perm, bool pretouch,
                     char *note, size_t note_len) {
    memset(s, 0, sizeof *s);
    s->id = -1;
    s->key = key;
    if (note_len > 0)
        note[0] = 0;
    int flags = IPC_CREAT | IPC_EXCL | (int)(perm & 0777);
    int id = -1;
    if (huge_policy != SHMPC_OFF) {
        uint64_t hsize = (size + SHMPC_HUGE_PAGE - 1) / SHMPC_HUGE_PAGE * SHMPC_HUGE_PAGE;
        id = shmget(key, hsize, flags | SHM_HUGETLB | SHM_HUGE_2MB);
        if (id >= 0) {
            s->huge = true;
            size = hsize;
        } else {
            int e = errno;
            if (e == EEXIST)
                return shmpc_seterr(SHMPC_EFOREIGN, "create segment key %#x: a segment has the key already", key);
            char why[384];
            huge_why(why, sizeof why, hsize, e);
            if (huge_policy == SHMPC_ON)
                return shmpc_seterr(SHMPC_ESYS, "create segment key %#x: %s", key, why);
            snprintf(note, note_len, "using normal pages: %s", why);
        }
    }
    if (id < 0) {
        id = shmget(key, size, flags);
        if (id < 0) {
            if (errno == EEXIST)
                return shmpc_seterr(SHMPC_EFOREIGN, "create segment key %#x: a segment has the key already", key);
            return shmpc_syserr(errno, "create segment key %#x of %llu bytes", key, (unsigned long long)size);
        }
    }
    s->id = id;
    s->size = size;
    int rc = attach_id(s, id);
    struct shmid_ds ds;
    if (rc == 0 && shmctl(id, IPC_STAT, &ds) != 0)
        rc = shmpc_syserr(errno, "stat segment id %d", id);
    if (rc != 0) {
        if (s->mem != NULL)
            shmdt(s->mem);
        shmctl(id, IPC_RMID, NULL);
        s->mem = NULL;
        return rc;
    }
    s->cpid = ds.shm_cpid;
    madvise(s->mem, s->size, MADV_WILLNEED);
    if (pretouch)
        shmpc_seg_pretouch(s);
    return 0;
}

int shmpc_seg_attach(struct shmpc_segment *s, const struct shmpc_seg_info *info) {
    memset(s, 0, sizeof *s);
    s->id = info->id;
    s->key = info->key;
    s->cpid = info->cpid;
    s->size = info->size;
    return attach_id(s, info->id);
}

int shmpc_seg_remove(struct shmpc_segment *s) {
    if (s->removed || s->id < 0)
        return 0;
    struct shmid_ds ds;
    if (shmctl(s->id, IPC_STAT, &ds) == 0) {
        /* An id is reused only after its sequence number wraps, but never
         * remove a stranger's segment even then. */
        if (ds.shm_cpid != s->cpid || (ds.shm_perm.__key != 0 && ds.shm_perm.__key != s->key))
            return 0;
    } else if (errno == EINVAL || errno == EIDRM) {
        s->removed = true;
        return 0;
    }
    if (shmctl(s->id, IPC_RMID, NULL) != 0 && errno != EINVAL && errno != EIDRM)
        return shmpc_syserr(errno, "remove segment id %d", s->id);
    s->removed = true;
    return 0;
}

bool shmpc_seg_marked_removed(const struct shmpc_segment *s) {
    struct shmid_ds ds;
    if (s->id < 0 || shmctl(s->id, IPC_STAT, &ds) != 0)
        return false;
    return (ds.shm_perm.mode & SHM_DEST) != 0;
}

void shmpc_seg_detach(struct shmpc_segment *s) {
    if (s->mem != NULL)
        shmdt(s->mem);
    s->mem = NULL;
}
