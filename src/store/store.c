/*
 * store.c - the presence state in SQLite; see store.h.
 *
 * Invariants: the prepared statements live as long as the connection and
 * are reset after every use; statements prepared for one call are
 * finalized at that function's exit label. Migrations run inside one
 * transaction each, so a crash leaves the old version or the new one.
 * A writable store holds the state file's process lock (lock.c) from before
 * SQLite opens the file until after it is closed.
 */
#include "osc/store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "osc/log.h"

struct osc_store {
    sqlite3 *db;
    sqlite3_stmt *put;
    int in_tx;
    int version; /* schema version of the file (read-only stores may be older) */
    struct osc_store_lock *lock;
};

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE presence_state ("
    " loc_type TEXT NOT NULL,"
    " loc_id INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " count INTEGER NOT NULL,"
    " detected_at_ms INTEGER NOT NULL,"
    " sent_at_ms INTEGER NOT NULL,"
    " PRIMARY KEY (loc_type, loc_id)) WITHOUT ROWID;",
    /* 1 -> 2: the last accepted push was an expiry (presence.expire_after) */
    "ALTER TABLE presence_state ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;",
};
#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

static int db_fail(struct osc_store *s, struct osc_err *err, const char *what)
{
    return osc_err_set(err, OSC_EDB, "state database: %s: %s", what,
                       s && s->db ? sqlite3_errmsg(s->db) : "cannot open");
}

static int exec(struct osc_store *s, const char *sql, struct osc_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK) {
        osc_err_set(err, OSC_EDB, "state database: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return OSC_EDB;
    }
    return 0;
}

static int user_version(struct osc_store *s, int *out, struct osc_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0;

    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(s, err, "reading the schema version");
        goto out;
    }
    *out = sqlite3_column_int(st, 0);
out:
    sqlite3_finalize(st);
    return rc;
}

static int migrate(struct osc_store *s, struct osc_err *err)
{
    char sql[64];
    int v, rc;

    if ((rc = user_version(s, &v, err)))
        return rc;
    if (v > (int)NMIGRATIONS)
        return osc_err_set(err, OSC_EDB,
                           "state database has schema version %d; this osconnect knows up to %d "
                           "(written by a newer version?)",
                           v, (int)NMIGRATIONS);
    for (; v < (int)NMIGRATIONS; v++) {
        if ((rc = exec(s, "BEGIN IMMEDIATE", err)))
            return rc;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if ((rc = exec(s, migrations[v], err)) || (rc = exec(s, sql, err))) {
            exec(s, "ROLLBACK", NULL);
            return rc;
        }
        if ((rc = exec(s, "COMMIT", err)))
            return rc;
        OSC_LOG_DEBUG("store", "state database migrated to schema version %d", v + 1);
    }
    return 0;
}

int osc_store_open(const char *path, int readonly, struct osc_store **out, struct osc_err *err)
{
    struct osc_store *s = calloc(1, sizeof(*s));
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    const char *file = path;
    struct stat st;
    int rc = 0;

    if (!s)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        rc = osc_err_set(err, OSC_EDB, "state database %s is not a regular file", path);
        goto out;
    }
    if (readonly) {
        if (access(path, F_OK) == 0)
            flags = SQLITE_OPEN_READONLY;
        else
            file = ":memory:";
    } else if ((rc = osc_store_lock(path, &s->lock, err))) {
        goto out;
    }
    if (sqlite3_open_v2(file, &s->db, flags, NULL) != SQLITE_OK) {
        rc = osc_err_set(err, OSC_EDB, "state database %s: %s", path,
                         s->db ? sqlite3_errmsg(s->db) : "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (flags != SQLITE_OPEN_READONLY) {
        if ((rc = exec(s, "PRAGMA journal_mode=WAL", err)) ||
            (rc = exec(s, "PRAGMA synchronous=NORMAL", err)) || (rc = migrate(s, err)))
            goto out;
        s->version = (int)NMIGRATIONS;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT OR REPLACE INTO presence_state (loc_type, loc_id, status,"
                               " count, detected_at_ms, sent_at_ms, expired)"
                               " VALUES (?,?,?,?,?,?,?)",
                               -1, &s->put, NULL) != SQLITE_OK) {
            rc = db_fail(s, err, "preparing the update");
            goto out;
        }
    } else {
        if ((rc = user_version(s, &s->version, err)))
            goto out;
        /* a dry run reads an older file as it is (nothing is written, so nothing migrates) */
        if (s->version < 1 || s->version > (int)NMIGRATIONS) {
            rc = osc_err_set(err, OSC_EDB,
                             "state database %s has schema version %d, expected 1 to %d", path,
                             s->version, (int)NMIGRATIONS);
            goto out;
        }
    }
out:
    if (rc) {
        osc_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void osc_store_close(struct osc_store *s)
{
    if (!s)
        return;
    osc_store_rollback(s);
    sqlite3_finalize(s->put);
    sqlite3_close(s->db);
    osc_store_unlock(s->lock); /* after the file is closed: no writer overlaps the next holder */
    free(s);
}

static int status_parse(const char *name, enum osc_presence_status *out)
{
    for (int st = OSC_PRESENCE_NO; st <= OSC_PRESENCE_YES; st++) {
        if (strcmp(name, osc_presence_status_name((enum osc_presence_status)st)) == 0) {
            *out = (enum osc_presence_status)st;
            return 0;
        }
    }
    return OSC_EINVAL;
}

int osc_store_each(struct osc_store *s, osc_store_row_fn fn, void *ud, struct osc_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, step;

    if (sqlite3_prepare_v2(s->db,
                           s->version >= 2 ? "SELECT loc_type, loc_id, status, count,"
                                             " detected_at_ms, sent_at_ms, expired"
                                             " FROM presence_state"
                                           : "SELECT loc_type, loc_id, status, count,"
                                             " detected_at_ms, sent_at_ms, 0 FROM presence_state",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s, err, "reading the state");
        goto out;
    }
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct osc_urn urn;
        struct osc_presence_last last = {0};
        const char *type = (const char *)sqlite3_column_text(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 2);

        urn.id = sqlite3_column_int64(st, 1);
        if (!type || !status || osc_urn_type_parse(type, &urn.type) ||
            status_parse(status, &last.status) || urn.id < 1) {
            OSC_LOG_WARN("store", "state database: skipping a malformed row");
            continue;
        }
        last.known = 1;
        last.count = sqlite3_column_int64(st, 3);
        last.at_ms = sqlite3_column_int64(st, 4);
        last.sent_ms = sqlite3_column_int64(st, 5);
        last.expired = sqlite3_column_int(st, 6) != 0;
        if ((rc = fn(ud, &urn, &last)))
            goto out;
    }
    if (step != SQLITE_DONE)
        rc = db_fail(s, err, "reading the state");
out:
    sqlite3_finalize(st);
    return rc;
}

int osc_store_begin(struct osc_store *s, struct osc_err *err)
{
    int rc;

    if (s->in_tx)
        return 0;
    if ((rc = exec(s, "BEGIN IMMEDIATE", err)))
        return rc;
    s->in_tx = 1;
    return 0;
}

int osc_store_commit(struct osc_store *s, struct osc_err *err)
{
    int rc;

    if (!s->in_tx)
        return 0;
    rc = exec(s, "COMMIT", err);
    if (rc)
        osc_store_rollback(s);
    s->in_tx = 0;
    return rc;
}

void osc_store_rollback(struct osc_store *s)
{
    if (s && s->in_tx) {
        exec(s, "ROLLBACK", NULL);
        s->in_tx = 0;
    }
}

int osc_store_put(struct osc_store *s, const struct osc_urn *urn,
                  const struct osc_presence_last *last, struct osc_err *err)
{
    sqlite3_stmt *st = s->put;
    int rc = 0;

    if (!st)
        return osc_err_set(err, OSC_EDB, "state database is read-only");
    sqlite3_bind_text(st, 1, osc_urn_type_name(urn->type), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, urn->id);
    sqlite3_bind_text(st, 3, osc_presence_status_name(last->status), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, last->count);
    sqlite3_bind_int64(st, 5, last->at_ms);
    sqlite3_bind_int64(st, 6, last->sent_ms);
    sqlite3_bind_int(st, 7, last->expired != 0);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_fail(s, err, "saving a location");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

long osc_store_count(struct osc_store *s)
{
    sqlite3_stmt *st = NULL;
    long n = OSC_EDB;

    if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM presence_state", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}
