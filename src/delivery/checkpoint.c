/*
 * checkpoint.c - the `send` checkpoint file (see include/osc/checkpoint.h).
 *
 * Invariants: two tables, send_run (one row per run key) and import_job
 * (one row per source); statements are prepared once at open and finalized
 * at close; every write is one transaction (a row is either the old
 * position or the new one, never half of each), and a transaction that
 * touches a job is fsync'd before it returns.
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
    /* 1: positions only (kept so a v1 file migrates step by step) */
    "CREATE TABLE send_checkpoint ("
    " run TEXT PRIMARY KEY,"
    " input INTEGER NOT NULL, offset INTEGER NOT NULL, line INTEGER NOT NULL,"
    " staged INTEGER NOT NULL, failed INTEGER NOT NULL,"
    " sent INTEGER NOT NULL, dead INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL)",
    /* 2: runs belong to import jobs. A v1 row cannot say which staging it went to, so it
     * is dropped: that run starts over in a new job (its staging is cleared once more). */
    "DROP TABLE send_checkpoint;"
    "CREATE TABLE send_run ("
    " run TEXT PRIMARY KEY, job INTEGER NOT NULL,"
    " input INTEGER NOT NULL, offset INTEGER NOT NULL, line INTEGER NOT NULL,"
    " done INTEGER NOT NULL, sent INTEGER NOT NULL, refused INTEGER NOT NULL,"
    " resolved INTEGER NOT NULL, finished INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
    "CREATE TABLE import_job ("
    " source TEXT PRIMARY KEY, id INTEGER NOT NULL, state INTEGER NOT NULL,"
    " cleared INTEGER NOT NULL, staged INTEGER NOT NULL, unresolved INTEGER NOT NULL,"
    " incomplete INTEGER NOT NULL, started_at INTEGER NOT NULL, commit_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL)"};
#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

struct osc_checkpoint {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *get, *put, *upd, *del;
    sqlite3_stmt *job_get, *job_put, *job_del, *job_runs, *runs_del;
    /* the row last written: later saves of the same run update it in place (one page) */
    char *last_key;
    sqlite3_int64 last_rowid;
};

static int db_fail(struct osc_checkpoint *c, struct osc_err *err, const char *what)
{
    int code = c->db ? sqlite3_errcode(c->db) : SQLITE_CANTOPEN;

    return osc_err_set(err, OSC_EDB, "checkpoint file %s: %s: %s%s", c->path, what,
                       c->db ? sqlite3_errmsg(c->db) : "cannot open",
                       code == SQLITE_FULL ? " (is the disk full?)" : "");
}

static int exec(struct osc_checkpoint *c, const char *sql, struct osc_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        osc_err_set(err, OSC_EDB, "checkpoint file %s: %s%s", c->path,
                    msg ? msg : sqlite3_errstr(rc),
                    rc == SQLITE_BUSY ? " (is another osconnect using it?)" : "");
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
    sqlite3_finalize(st); /* a statement still open would lock the tables a migration drops */
    st = NULL;
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
    sqlite3_finalize(c->job_get);
    sqlite3_finalize(c->job_put);
    sqlite3_finalize(c->job_del);
    sqlite3_finalize(c->job_runs);
    sqlite3_finalize(c->runs_del);
    free(c->last_key);
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

const char *osc_checkpoint_path(const struct osc_checkpoint *c) { return c->path; }

static int prepare(struct osc_checkpoint *c, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(c->db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -1;
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
    /* exclusive: one process per checkpoint file at a time (a second would fight over the
     * rows), and no lock or shared-memory syscalls per save on the hot path */
    sqlite3_busy_timeout(c->db, 2000);
    /* small pages: a save rewrites one page of the WAL */
    if ((rc = exec(c, "PRAGMA page_size=1024", err)) ||
        (rc = exec(c, "PRAGMA locking_mode=EXCLUSIVE", err)) ||
        (rc = exec(c, "PRAGMA journal_mode=WAL", err)) ||
        (rc = exec(c, "PRAGMA synchronous=NORMAL", err)) || (rc = migrate(c, err)))
        goto out;
    if (prepare(c,
                "SELECT input, offset, line, done, sent, refused, resolved, job, finished"
                " FROM send_run WHERE run = ?",
                &c->get) ||
        prepare(c,
                "INSERT OR REPLACE INTO send_run (run, input, offset, line, done, sent,"
                " refused, resolved, job, updated_at, finished)"
                " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                &c->put) ||
        prepare(c,
                /* the job of a run never changes: not rewritten per save */
                "UPDATE send_run SET input = ?2, offset = ?3, line = ?4, done = ?5, sent = ?6,"
                " refused = ?7, resolved = ?8, updated_at = ?10, finished = ?11"
                " WHERE rowid = ?1 AND job = ?9",
                &c->upd) ||
        prepare(c, "DELETE FROM send_run WHERE run = ?", &c->del) ||
        prepare(c,
                "SELECT id, state, cleared, staged, unresolved, incomplete, started_at,"
                " commit_at FROM import_job WHERE source = ?",
                &c->job_get) ||
        prepare(c,
                "INSERT OR REPLACE INTO import_job (source, id, state, cleared, staged,"
                " unresolved, incomplete, started_at, commit_at, updated_at)"
                " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                &c->job_put) ||
        prepare(c, "DELETE FROM import_job WHERE source = ?", &c->job_del) ||
        prepare(c, "SELECT count(*) FROM send_run WHERE job = ? AND finished = 0", &c->job_runs) ||
        prepare(c, "DELETE FROM send_run WHERE job = ?", &c->runs_del)) {
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
        pos->done = (uint64_t)sqlite3_column_int64(c->get, 3);
        pos->sent = (uint64_t)sqlite3_column_int64(c->get, 4);
        pos->refused = (uint64_t)sqlite3_column_int64(c->get, 5);
        pos->resolved = (uint64_t)sqlite3_column_int64(c->get, 6);
        pos->job = sqlite3_column_int64(c->get, 7);
        pos->finished = sqlite3_column_int(c->get, 8);
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
    sqlite3_bind_int64(st, 5, (sqlite3_int64)pos->done);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)pos->sent);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)pos->refused);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)pos->resolved);
    sqlite3_bind_int64(st, 9, pos->job);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
    sqlite3_bind_int(st, 11, pos->finished);
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

static void forget_last(struct osc_checkpoint *c)
{
    free(c->last_key);
    c->last_key = NULL;
}

static int run_delete(struct osc_checkpoint *c, const char *key, struct osc_err *err)
{
    int rc = 0;

    if (c->last_key && strcmp(c->last_key, key) == 0)
        forget_last(c);
    sqlite3_reset(c->del);
    sqlite3_bind_text(c->del, 1, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(c->del) != SQLITE_DONE)
        rc = db_fail(c, err, "clearing the checkpoint");
    sqlite3_reset(c->del);
    return rc;
}

int osc_checkpoint_clear(struct osc_checkpoint *c, const char *key, struct osc_err *err)
{
    return run_delete(c, key, err);
}

/* ---- import jobs ------------------------------------------------------------ */

/*
 * Job writes must survive a power cut, not only a crash: "the commit was
 * sent" is what stops a second commit. WAL with synchronous=FULL syncs the
 * log at each commit; positions go back to NORMAL afterwards.
 */
static int durable_begin(struct osc_checkpoint *c, struct osc_err *err)
{
    int rc = exec(c, "PRAGMA synchronous=FULL", err);
    return rc ? rc : exec(c, "BEGIN IMMEDIATE", err);
}

static int durable_end(struct osc_checkpoint *c, int rc, struct osc_err *err)
{
    if (rc == 0)
        rc = exec(c, "COMMIT", err);
    if (rc)
        exec(c, "ROLLBACK", NULL);
    exec(c, "PRAGMA synchronous=NORMAL", NULL);
    return rc;
}

int osc_checkpoint_job_get(struct osc_checkpoint *c, const char *source,
                           struct osc_checkpoint_job *job, struct osc_err *err)
{
    sqlite3_stmt *st = c->job_get;
    int rc = 0, step;

    memset(job, 0, sizeof(*job));
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, source, -1, SQLITE_TRANSIENT);
    step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        job->id = sqlite3_column_int64(st, 0);
        job->state = sqlite3_column_int(st, 1);
        job->cleared = sqlite3_column_int(st, 2);
        job->staged = (uint64_t)sqlite3_column_int64(st, 3);
        job->unresolved = (uint64_t)sqlite3_column_int64(st, 4);
        job->incomplete = (uint64_t)sqlite3_column_int64(st, 5);
        job->started_at = sqlite3_column_int64(st, 6);
        job->commit_at = sqlite3_column_int64(st, 7);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = db_fail(c, err, "reading the import job");
    }
    sqlite3_reset(st);
    return rc;
}

static int job_write(struct osc_checkpoint *c, const char *source,
                     const struct osc_checkpoint_job *job, struct osc_err *err)
{
    sqlite3_stmt *st = c->job_put;
    int rc = 0;

    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, source, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, job->id);
    sqlite3_bind_int(st, 3, job->state);
    sqlite3_bind_int(st, 4, job->cleared);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)job->staged);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)job->unresolved);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)job->incomplete);
    sqlite3_bind_int64(st, 8, job->started_at);
    sqlite3_bind_int64(st, 9, job->commit_at);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(c, err, "writing the import job");
    sqlite3_reset(st);
    return rc;
}

static int step_id(struct osc_checkpoint *c, sqlite3_stmt *st, const char *text, int64_t id,
                   const char *what, struct osc_err *err)
{
    int rc = 0;

    sqlite3_reset(st);
    if (text)
        sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(c, err, what);
    sqlite3_reset(st);
    return rc;
}

int osc_checkpoint_job_put(struct osc_checkpoint *c, const char *source,
                           const struct osc_checkpoint_job *job, struct osc_err *err)
{
    int rc = durable_begin(c, err);

    if (rc == 0)
        rc = job_write(c, source, job, err);
    return durable_end(c, rc, err);
}

int osc_checkpoint_job_start(struct osc_checkpoint *c, const char *source,
                             struct osc_checkpoint_job *job, struct osc_err *err)
{
    struct osc_checkpoint_job old;
    int64_t id;
    int rc, had;

    if ((had = osc_checkpoint_job_get(c, source, &old, err)) < 0)
        return had;
    /* random ids: a run row of an ended job can never match a later job */
    do
        sqlite3_randomness(sizeof(id), &id);
    while (id <= 0 || (had && id == old.id));
    memset(job, 0, sizeof(*job));
    job->id = id;
    job->state = OSC_JOB_STAGING;
    job->started_at = (int64_t)time(NULL);
    forget_last(c);
    if ((rc = durable_begin(c, err)) == 0) {
        if (had)
            rc = step_id(c, c->runs_del, NULL, old.id, "clearing the old job's runs", err);
        if (rc == 0)
            rc = job_write(c, source, job, err);
    }
    return durable_end(c, rc, err);
}

int osc_checkpoint_job_end(struct osc_checkpoint *c, const char *source, struct osc_err *err)
{
    struct osc_checkpoint_job old;
    int rc, had;

    if ((had = osc_checkpoint_job_get(c, source, &old, err)) <= 0)
        return had;
    forget_last(c);
    if ((rc = durable_begin(c, err)) == 0 &&
        (rc = step_id(c, c->runs_del, NULL, old.id, "clearing the job's runs", err)) == 0)
        rc = step_id(c, c->job_del, source, 0, "ending the import job", err);
    return durable_end(c, rc, err);
}

int osc_checkpoint_job_runs(struct osc_checkpoint *c, int64_t id, uint64_t *n, struct osc_err *err)
{
    int rc = 0;

    *n = 0;
    sqlite3_reset(c->job_runs);
    sqlite3_bind_int64(c->job_runs, 1, id);
    if (sqlite3_step(c->job_runs) == SQLITE_ROW)
        *n = (uint64_t)sqlite3_column_int64(c->job_runs, 0);
    else
        rc = db_fail(c, err, "counting the job's runs");
    sqlite3_reset(c->job_runs);
    return rc;
}

int osc_checkpoint_run_finish(struct osc_checkpoint *c, const char *key,
                              const struct osc_checkpoint_pos *end, const char *source,
                              const struct osc_checkpoint_job *job, struct osc_err *err)
{
    int rc = durable_begin(c, err);

    if (rc == 0 && key)
        rc = end ? osc_checkpoint_save(c, key, end, err) : run_delete(c, key, err);
    if (rc == 0 && source && job)
        rc = job_write(c, source, job, err);
    else if (rc == 0 && source)
        rc = step_id(c, c->job_del, source, 0, "ending the import job", err);
    return durable_end(c, rc, err);
}

static int count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int n = -1;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

void osc_checkpoint_close_clean(struct osc_checkpoint *c)
{
    int empty;
    char *path, side[4096];

    if (!c)
        return;
    empty = count_rows(c->db, "SELECT count(*) FROM send_run") == 0 &&
            count_rows(c->db, "SELECT count(*) FROM import_job") == 0;
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
