/*
 * lock.c - one process per state file; see store.h.
 *
 * The lock is an exclusive flock(2) on STATE.lock, a side file that holds
 * the owner's pid in decimal (for the message a second process prints).
 * The kernel drops a flock when its holder dies, even by SIGKILL, so a
 * leftover file never blocks anyone; the file is never unlinked (unlinking
 * would let two processes lock two different inodes of the same name).
 *
 * flock belongs to an open file description, so a second open of the same
 * file in this process would conflict with the first: a configuration
 * reload opens the new store before closing the old one. Hence the
 * registry: one descriptor per lock file (by device and inode) per
 * process, shared by reference count. Used from one thread, like the store.
 */
#include "osc/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "osc/log.h"

struct osc_store_lock {
    struct osc_store_lock *next;
    dev_t dev;
    ino_t ino;
    int fd;
    unsigned refs;
};

static struct osc_store_lock *held; /* the registry */

/* The pid written in the lock file, or 0 if it cannot be read. */
static long holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    char *end;
    long pid;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

int osc_store_lock(const char *path, struct osc_store_lock **out, struct osc_err *err)
{
    struct osc_store_lock *l;
    struct stat st;
    char *lpath = NULL, pid[32];
    int fd = -1, rc = 0, n;

    if (asprintf(&lpath, "%s.lock", path) < 0)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = osc_err_set(err, OSC_EDB, "state database %s: cannot open the lock file %s: %s", path,
                         lpath, strerror(errno));
        goto out;
    }
    for (l = held; l; l = l->next) {
        if (l->dev == st.st_dev && l->ino == st.st_ino) {
            l->refs++;
            *out = l;
            goto out; /* this process holds it already (a reload): share it */
        }
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            long other = holder_pid(fd);
            if (other)
                snprintf(pid, sizeof(pid), "pid %ld", other);
            else
                snprintf(pid, sizeof(pid), "pid unknown");
            rc = osc_err_set(err, OSC_EBUSY,
                             "state database %s is in use by another osconnect (%s holds %s); "
                             "stop it, or give this one its own presence.state",
                             path, pid, lpath);
        } else {
            rc = osc_err_set(err, OSC_EDB, "state database %s: cannot lock %s: %s", path, lpath,
                             strerror(errno));
        }
        goto out;
    }
    /* ours now: say who holds it (a failed write only makes the message vaguer) */
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        OSC_LOG_DEBUG("store", "cannot write the pid into %s: %s", lpath, strerror(errno));
    if (!(l = calloc(1, sizeof(*l)))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out; /* closing fd drops the lock */
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->fd = fd;
    l->refs = 1;
    l->next = held;
    held = l;
    fd = -1;
    *out = l;
out:
    if (fd >= 0)
        close(fd);
    free(lpath);
    return rc;
}

void osc_store_unlock(struct osc_store_lock *l)
{
    if (!l || --l->refs > 0)
        return;
    for (struct osc_store_lock **pp = &held; *pp; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    close(l->fd); /* drops the flock; the file stays (see above) */
    free(l);
}
