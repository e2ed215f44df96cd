/*
 * queue.c - the durable ingest queue in SQLite; see queue.h.
 *
 * Invariants: q->bytes is the sum of length(body) over the table, read at
 * open and kept by append and delete under q->mu; claimed ids are in
 * q->claimed (memory only, so a restart forgets them); the prepared
 * statements live as long as the connection and are reset after each use.
 * The exclusive lock is taken at open by a write transaction and kept
 * until close (locking_mode=EXCLUSIVE).
 */
#include "osc/queue.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "osc/log.h"

struct osc_queue {
    sqlite3 *db;
    sqlite3_stmt *ins, *first_any, *first_dest, *del, *prog;
    pthread_mutex_t mu;
    uint64_t max_bytes;
    uint64_t bytes;
    int64_t *claimed;
    size_t nclaimed, capclaimed;
    char *path;
};

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE ingest_queue ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " dest TEXT NOT NULL,"
    " format TEXT NOT NULL,"
    " body BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " progress INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX ingest_queue_dest ON ingest_queue (dest, id);",
};
#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

static int db_fail(struct osc_queue *q, struct osc_err *err, const char *what)
{
    return osc_err_set(err, OSC_EDB, "ingest queue %s: %s: %s", q->path, what,
                       q->db ? sqlite3_errmsg(q->db) : "cannot open");
}

static int exec(struct osc_queue *q, const char *sql, struct osc_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            osc_err_set(err, OSC_EBUSY, "ingest queue %s is in use by another process", q->path);
        else
            osc_err_set(err, OSC_EDB, "ingest queue %s: %s", q->path,
                        msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? OSC_EBUSY : OSC_EDB;
    }
    return 0;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int int_query(struct osc_queue *q, const char *sql, int64_t *out, struct osc_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(q, err, "reading");
        goto out;
    }
    *out = sqlite3_column_int64(st, 0);
out:
    sqlite3_finalize(st);
    return rc;
}

static int migrate(struct osc_queue *q, struct osc_err *err)
{
    char sql[64];
    int64_t v;
    int rc;

    if ((rc = int_query(q, "PRAGMA user_version", &v, err)))
        return rc;
    if (v > (int64_t)NMIGRATIONS)
        return osc_err_set(err, OSC_EDB,
                           "ingest queue %s has schema version %lld; this osconnect knows up to %d "
                           "(written by a newer version?)",
                           q->path, (long long)v, (int)NMIGRATIONS);
    for (; v < (int64_t)NMIGRATIONS; v++) {
        if ((rc = exec(q, "BEGIN IMMEDIATE", err)))
            return rc;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)v + 1);
        if ((rc = exec(q, migrations[v], err)) || (rc = exec(q, sql, err))) {
            exec(q, "ROLLBACK", NULL);
            return rc;
        }
        if ((rc = exec(q, "COMMIT", err)))
            return rc;
    }
    return 0;
}

/* fsync the folder holding path, so a newly created file's name is durable too. */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    int fd;

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(fd);
        close(fd);
    }
}

int osc_queue_open(const char *path, uint64_t max_bytes, struct osc_queue **out,
                   struct osc_err *err)
{
    struct osc_queue *q = calloc(1, sizeof(*q));
    int existed = access(path, F_OK) == 0;
    int64_t bytes = 0;
    int rc = 0;

    if (!q || !(q->path = strdup(path))) {
        free(q);
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&q->mu, NULL);
    q->max_bytes = max_bytes;
    if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = db_fail(q, err, "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(q->db, 200);
    /* exclusive locking: one process per queue, and no shared-memory index to
     * maintain; FULL: every commit's WAL frames are fsync'd before it returns */
    if ((rc = exec(q, "PRAGMA locking_mode=EXCLUSIVE", err)) ||
        (rc = exec(q, "BEGIN EXCLUSIVE", err)) || (rc = exec(q, "COMMIT", err)) ||
        (rc = exec(q, "PRAGMA journal_mode=WAL", err)) ||
        (rc = exec(q, "PRAGMA synchronous=FULL", err)) || (rc = migrate(q, err)) ||
        (rc = int_query(q, "SELECT COALESCE(SUM(length(body)), 0) FROM ingest_queue", &bytes, err)))
        goto out;
    q->bytes = (uint64_t)bytes;
    if (sqlite3_prepare_v2(q->db,
                           "INSERT INTO ingest_queue (dest, format, body, created_ms)"
                           " VALUES (?1, ?2, ?3, ?4)",
                           -1, &q->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "SELECT id, dest, format, body, created_ms, progress FROM ingest_queue"
                           " WHERE id > ?1 ORDER BY id LIMIT 64",
                           -1, &q->first_any, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db,
                           "SELECT id, dest, format, body, created_ms, progress FROM ingest_queue"
                           " WHERE dest = ?2 AND id > ?1 ORDER BY id LIMIT 64",
                           -1, &q->first_dest, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "DELETE FROM ingest_queue WHERE id = ?1 RETURNING length(body)",
                           -1, &q->del, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(q->db, "UPDATE ingest_queue SET progress = ?2 WHERE id = ?1", -1,
                           &q->prog, NULL) != SQLITE_OK) {
        rc = db_fail(q, err, "preparing statements");
        goto out;
    }
    if (!existed)
        sync_dir(path);
out:
    if (rc) {
        osc_queue_close(q);
        return rc;
    }
    *out = q;
    return 0;
}

void osc_queue_close(struct osc_queue *q)
{
    if (!q)
        return;
    sqlite3_finalize(q->ins);
    sqlite3_finalize(q->first_any);
    sqlite3_finalize(q->first_dest);
    sqlite3_finalize(q->del);
    sqlite3_finalize(q->prog);
    sqlite3_close(q->db);
    pthread_mutex_destroy(&q->mu);
    free(q->claimed);
    free(q->path);
    free(q);
}

static int claimed_at(const struct osc_queue *q, int64_t id)
{
    for (size_t i = 0; i < q->nclaimed; i++)
        if (q->claimed[i] == id)
            return (int)i;
    return -1;
}

static void unclaim(struct osc_queue *q, int64_t id)
{
    int i = claimed_at(q, id);
    if (i >= 0)
        q->claimed[i] = q->claimed[--q->nclaimed];
}

int osc_queue_append(struct osc_queue *q, const char *dest, enum osc_records_format format,
                     const void *body, size_t len, int64_t *id, struct osc_err *err)
{
    int rc = 0;

    if (!dest || !*dest || strlen(dest) > OSC_QUEUE_DEST_MAX)
        return osc_err_set(err, OSC_EINVAL, "ingest queue: destination name empty or too long");
    if (format != OSC_RECORDS_JSON && format != OSC_RECORDS_JSONL && format != OSC_RECORDS_CSV)
        return osc_err_set(err, OSC_EINVAL, "ingest queue: format must be json, jsonl or csv");
    if (q->max_bytes && len > q->max_bytes)
        return osc_err_set(err, OSC_ETOOBIG, "body of %zu bytes exceeds queue_max_bytes (%llu)",
                           len, (unsigned long long)q->max_bytes);
    if (len > INT32_MAX)
        return osc_err_set(err, OSC_ETOOBIG, "body of %zu bytes is too large to queue", len);
    pthread_mutex_lock(&q->mu);
    if (q->max_bytes && q->bytes + len > q->max_bytes) {
        rc = osc_err_set(err, OSC_EFULL,
                         "ingest queue full: %llu of %llu bytes used, the body has %zu",
                         (unsigned long long)q->bytes, (unsigned long long)q->max_bytes, len);
        goto out;
    }
    sqlite3_bind_text(q->ins, 1, dest, -1, SQLITE_STATIC);
    sqlite3_bind_text(q->ins, 2, osc_records_format_name(format), -1, SQLITE_STATIC);
    /* a zero-length blob binds as an empty blob, not NULL, with a non-NULL pointer */
    sqlite3_bind_blob(q->ins, 3, len ? body : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(q->ins, 4, wall_ms());
    if (sqlite3_step(q->ins) != SQLITE_DONE) {
        rc = db_fail(q, err, "appending");
        goto out;
    }
    q->bytes += len;
    if (id)
        *id = sqlite3_last_insert_rowid(q->db);
out:
    sqlite3_reset(q->ins);
    sqlite3_clear_bindings(q->ins);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

static int load_item(sqlite3_stmt *st, struct osc_queue_item **out)
{
    struct osc_queue_item *it = calloc(1, sizeof(*it));
    const char *dest = (const char *)sqlite3_column_text(st, 1);
    const char *format = (const char *)sqlite3_column_text(st, 2);
    const void *body = sqlite3_column_blob(st, 3);
    int len = sqlite3_column_bytes(st, 3);

    if (!it || !dest || !(it->dest = strdup(dest)) || !(it->body = malloc((size_t)len + 1))) {
        osc_queue_item_free(it);
        return OSC_ENOMEM;
    }
    if (!format || osc_records_format_parse(format, &it->format))
        it->format = OSC_RECORDS_JSONL;
    if (len)
        memcpy(it->body, body, (size_t)len);
    it->body[len] = '\0';
    it->len = (size_t)len;
    it->id = sqlite3_column_int64(st, 0);
    it->created_ms = sqlite3_column_int64(st, 4);
    it->progress = (uint64_t)sqlite3_column_int64(st, 5);
    *out = it;
    return 0;
}

int osc_queue_claim(struct osc_queue *q, const char *dest, struct osc_queue_item **out,
                    struct osc_err *err)
{
    sqlite3_stmt *st = dest ? q->first_dest : q->first_any;
    int64_t after = 0;
    int rc = 0, step, more = 1;

    *out = NULL;
    pthread_mutex_lock(&q->mu);
    /* pages of 64 rows: skip the claimed ones (few: the bodies in flight) */
    while (more && !*out && !rc) {
        more = 0;
        sqlite3_bind_int64(st, 1, after);
        if (dest)
            sqlite3_bind_text(st, 2, dest, -1, SQLITE_STATIC);
        while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, 0);
            more = 1;
            after = id;
            if (claimed_at(q, id) >= 0)
                continue;
            if (q->nclaimed == q->capclaimed) {
                size_t cap = q->capclaimed ? q->capclaimed * 2 : 16;
                int64_t *p = realloc(q->claimed, cap * sizeof(*p));
                if (!p) {
                    rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
                    break;
                }
                q->claimed = p;
                q->capclaimed = cap;
            }
            if ((rc = load_item(st, out))) {
                osc_err_set(err, rc, "out of memory");
                break;
            }
            q->claimed[q->nclaimed++] = id;
            break;
        }
        if (!rc && step != SQLITE_ROW && step != SQLITE_DONE)
            rc = db_fail(q, err, "claiming");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void osc_queue_item_free(struct osc_queue_item *it)
{
    if (!it)
        return;
    free(it->dest);
    free(it->body);
    free(it);
}

int osc_queue_release(struct osc_queue *q, int64_t id)
{
    int i;

    pthread_mutex_lock(&q->mu);
    if ((i = claimed_at(q, id)) >= 0)
        q->claimed[i] = q->claimed[--q->nclaimed];
    pthread_mutex_unlock(&q->mu);
    return i >= 0 ? 0 : OSC_ENOTFOUND;
}

int osc_queue_set_progress(struct osc_queue *q, int64_t id, uint64_t progress, struct osc_err *err)
{
    int rc = 0;

    pthread_mutex_lock(&q->mu);
    sqlite3_bind_int64(q->prog, 1, id);
    sqlite3_bind_int64(q->prog, 2, (int64_t)progress);
    if (sqlite3_step(q->prog) != SQLITE_DONE)
        rc = db_fail(q, err, "saving progress");
    else if (sqlite3_changes(q->db) == 0)
        rc = osc_err_set(err, OSC_ENOTFOUND, "ingest queue: no body %lld", (long long)id);
    sqlite3_reset(q->prog);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int osc_queue_delete(struct osc_queue *q, int64_t id, struct osc_err *err)
{
    int rc = 0, step;

    pthread_mutex_lock(&q->mu);
    sqlite3_bind_int64(q->del, 1, id);
    step = sqlite3_step(q->del);
    if (step == SQLITE_ROW) {
        uint64_t len = (uint64_t)sqlite3_column_int64(q->del, 0);
        step = sqlite3_step(q->del); /* finish the statement: the commit happens here */
        if (step == SQLITE_DONE) {
            q->bytes -= len <= q->bytes ? len : q->bytes;
            unclaim(q, id);
        }
    } else if (step == SQLITE_DONE) {
        rc = osc_err_set(err, OSC_ENOTFOUND, "ingest queue: no body %lld", (long long)id);
    }
    if (!rc && step != SQLITE_DONE)
        rc = db_fail(q, err, "deleting");
    sqlite3_reset(q->del);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

uint64_t osc_queue_bytes(struct osc_queue *q)
{
    uint64_t b;

    pthread_mutex_lock(&q->mu);
    b = q->bytes;
    pthread_mutex_unlock(&q->mu);
    return b;
}

int64_t osc_queue_count(struct osc_queue *q, const char *dest)
{
    sqlite3_stmt *st = NULL;
    int64_t n = OSC_EDB;

    pthread_mutex_lock(&q->mu);
    if (sqlite3_prepare_v2(q->db,
                           dest ? "SELECT COUNT(*) FROM ingest_queue WHERE dest = ?1"
                                : "SELECT COUNT(*) FROM ingest_queue",
                           -1, &st, NULL) == SQLITE_OK) {
        if (dest)
            sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->mu);
    return n;
}
