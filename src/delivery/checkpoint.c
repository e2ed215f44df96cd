/*
 * checkpoint.c - the `send` checkpoint file (see include/osc/checkpoint.h).
 *
 * Invariants: one table, one row per run key; statements are prepared once
 * at open and finalized at close; every write is its own transaction (a
 * row is either the old position or the new one, never half of each).
 */
#include "osc/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEAD_BYTES 4096

static const char *const migrations[] = {
    "CREATE TABLE send_checkpoint ("
    " run TEXT PRIMARY KEY,"
    " input INTEGER NOT NULL, offset INTEGER NOT NULL, line INTEGER NOT NULL,"
    " staged INTEGER NOT NULL, failed INTEGER NOT NULL,"
    " sent INTEGER NOT NULL, dead INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL)"};
#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

struct osc_checkpoint {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *get, *put, *upd, *del;
    /* the row last written: later saves of the same run update it in place (one page) */
    char *last_key;
    sqlite3_int64 last_rowid;
};

static int db_fail(struct osc_checkpoint *c, struct osc_err *err, const char *what)
{
    return osc_err_set(err, OSC_EDB, "checkpoint file %s: %s: %s", c->path, what,
                       c->db ? sqlite3_errmsg(c->db) : "cannot open");
}

static int exec(struct osc_checkpoint *c, const char *sql, struct osc_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        osc_err_set(err, OSC_EDB, "checkpoint file %s: %s%s", c->path,
                    msg ? msg : sqlite3_errstr(rc),
                    rc == SQLITE_BUSY ? " (is another osconnect send using it?)" : "");
        sqlite3_free(msg);
        return OSC_EDB;
    }
    return 0;
}

static int migrate(struct osc_checkpoint *c, struct osc_err *err)
{
    sqlite3_stmt *st = NULL;
    char sql[64];
    int v = 0, rc = 0;

    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(c, err, "reading the schema version");
        goto out;
    }
    v = sqlite3_column_int(st, 0);
    if (v > (int)NMIGRATIONS) {
        rc = osc_err_set(err, OSC_EDB,
                         "checkpoint file %s has schema version %d; this "
                         "osconnect knows up to %d",
                         c->path, v, (int)NMIGRATIONS);
        goto out;
    }
    for (; v < (int)NMIGRATIONS; v++) {
        if ((rc = exec(c, "BEGIN IMMEDIATE", err)))
            goto out;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if ((rc = exec(c, migrations[v], err)) || (rc = exec(c, sql, err))) {
            exec(c, "ROLLBACK", NULL);
            goto out;
        }
        if ((rc = exec(c, "COMMIT", err)))
            goto out;
    }
out:
    sqlite3_finalize(st);
    return rc;
}

void osc_checkpoint_close(struct osc_checkpoint *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->put);
    sqlite3_finalize(c->upd);
    sqlite3_finalize(c->del);
    free(c->last_key);
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

int osc_checkpoint_open(const char *path, struct osc_checkpoint **out, struct osc_err *err)
{
    struct osc_checkpoint *c = calloc(1, sizeof(*c));
    int rc = 0;

    if (!c || !(c->path = strdup(path))) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out;
    }
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = db_fail(c, err, "cannot open");
        goto out;
    }
    /* exclusive: one send per checkpoint file at a time (a second would fight over the
     * rows), and no lock or shared-memory syscalls per save on the hot path */
    sqlite3_busy_timeout(c->db, 2000);
    /* small pages: a save rewrites one page of the WAL */
    if ((rc = exec(c, "PRAGMA page_size=1024", err)) ||
        (rc = exec(c, "PRAGMA locking_mode=EXCLUSIVE", err)) ||
        (rc = exec(c, "PRAGMA journal_mode=WAL", err)) ||
        (rc = exec(c, "PRAGMA synchronous=NORMAL", err)) || (rc = migrate(c, err)))
        goto out;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT input, offset, line, staged, failed, sent, dead"
                           " FROM send_checkpoint WHERE run = ?",
                           -1, &c->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO send_checkpoint (run, input, offset, line,"
                           " staged, failed, sent, dead, updated_at)"
                           " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                           -1, &c->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "UPDATE send_checkpoint SET input = ?2, offset = ?3, line = ?4,"
                           " staged = ?5, failed = ?6, sent = ?7, dead = ?8, updated_at = ?9"
                           " WHERE rowid = ?1",
                           -1, &c->upd, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "DELETE FROM send_checkpoint WHERE run = ?", -1, &c->del, NULL) !=
            SQLITE_OK) {
        rc = db_fail(c, err, "preparing statements");
        goto out;
    }
out:
    if (rc)
        osc_checkpoint_close(c);
    else
        *out = c;
    return rc;
}

/* FNV-1a 64: a cheap fingerprint of the first block, not a security hash. */
static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int osc_checkpoint_input_id(const char *path, char *out, size_t cap, struct osc_err *err)
{
    unsigned char head[HEAD_BYTES];
    struct stat st;
    ssize_t n = 0, got;
    int fd = -1, rc = 0;

    if (!path || strcmp(path, "-") == 0)
        return osc_err_set(err, OSC_ENOINPUT, "stdin cannot be resumed");
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
        rc = osc_err_set(err, OSC_ENOINPUT, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = osc_err_set(err, OSC_ENOINPUT, "%s is not a regular file", path);
        goto out;
    }
    while (n < (ssize_t)sizeof(head) && ((got = read(fd, head + n, sizeof(head) - (size_t)n)) > 0 ||
                                         (got < 0 && errno == EINTR)))
        if (got > 0)
            n += got;
    {
        /* the path too (as resolved), so a different file that reuses the inode is new */
        char *real = realpath(path, NULL);
        const char *p = real ? real : path;
        snprintf(out, cap, "%016" PRIx64 ":%" PRIu64 ":%" PRIu64 ":%" PRId64 ":%016" PRIx64,
                 fnv1a((const unsigned char *)p, strlen(p)), (uint64_t)st.st_dev,
                 (uint64_t)st.st_ino, (int64_t)st.st_size, fnv1a(head, (size_t)n));
        free(real);
    }
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int osc_checkpoint_load(struct osc_checkpoint *c, const char *key, struct osc_checkpoint_pos *pos,
                        struct osc_err *err)
{
    int rc = 0, step;

    memset(pos, 0, sizeof(*pos));
    sqlite3_reset(c->get);
    sqlite3_bind_text(c->get, 1, key, -1, SQLITE_TRANSIENT);
    step = sqlite3_step(c->get);
    if (step == SQLITE_ROW) {
        pos->input = (uint32_t)sqlite3_column_int64(c->get, 0);
        pos->offset = (uint64_t)sqlite3_column_int64(c->get, 1);
        pos->line = (uint64_t)sqlite3_column_int64(c->get, 2);
        pos->staged = sqlite3_column_int(c->get, 3);
        pos->failed = sqlite3_column_int(c->get, 4);
        pos->sent = (uint64_t)sqlite3_column_int64(c->get, 5);
        pos->dead = (uint64_t)sqlite3_column_int64(c->get, 6);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = db_fail(c, err, "reading the checkpoint");
    }
    sqlite3_reset(c->get);
    return rc;
}

int osc_checkpoint_save(struct osc_checkpoint *c, const char *key,
                        const struct osc_checkpoint_pos *pos, struct osc_err *err)
{
    int same = c->last_key && strcmp(c->last_key, key) == 0;
    sqlite3_stmt *st = same ? c->upd : c->put;
    int rc = 0;

    sqlite3_reset(st);
    if (same)
        sqlite3_bind_int64(st, 1, c->last_rowid);
    else
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, pos->input);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)pos->offset);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)pos->line);
    sqlite3_bind_int(st, 5, pos->staged);
    sqlite3_bind_int(st, 6, pos->failed);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)pos->sent);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)pos->dead);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)time(NULL));
    if (sqlite3_step(st) != SQLITE_DONE || (same && sqlite3_changes(c->db) != 1)) {
        rc = db_fail(c, err, "writing the checkpoint");
    } else if (!same) {
        free(c->last_key);
        c->last_key = strdup(key);
        c->last_rowid = sqlite3_last_insert_rowid(c->db);
    }
    sqlite3_reset(st);
    return rc;
}

int osc_checkpoint_clear(struct osc_checkpoint *c, const char *key, struct osc_err *err)
{
    int rc = 0;

    if (c->last_key && strcmp(c->last_key, key) == 0) {
        free(c->last_key);
        c->last_key = NULL;
    }
    sqlite3_reset(c->del);
    sqlite3_bind_text(c->del, 1, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(c->del) != SQLITE_DONE)
        rc = db_fail(c, err, "clearing the checkpoint");
    sqlite3_reset(c->del);
    return rc;
}

void osc_checkpoint_close_clean(struct osc_checkpoint *c)
{
    sqlite3_stmt *st = NULL;
    int empty = 0;
    char *path, side[4096];

    if (!c)
        return;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM send_checkpoint", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        empty = sqlite3_column_int(st, 0) == 0;
    sqlite3_finalize(st);
    path = c->path;
    c->path = NULL;
    osc_checkpoint_close(c);
    if (empty && path) {
        unlink(path);
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
    }
    free(path);
}
