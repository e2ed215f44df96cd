/*
 * test_store.c - the SQLite state on a real file in a temporary directory:
 * migration on first open (user_version, WAL), rows surviving a reopen,
 * replace semantics, transactions and rollback, read-only opens (existing
 * and missing files), refusal of a newer schema, the migration of a schema 1
 * file, and the one-process lock (shared in-process, refused across
 * processes with the holder's pid, dropped on SIGKILL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "osc/log.h"
#include "osc/store.h"

struct seen {
    size_t n;
    struct osc_urn urn[8];
    struct osc_presence_last last[8];
};

static int collect(void *ud, const struct osc_urn *u, const struct osc_presence_last *l)
{
    struct seen *s = ud;
    if (s->n < 8) {
        s->urn[s->n] = *u;
        s->last[s->n] = *l;
    }
    s->n++;
    return 0;
}

static char *db_path(const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", th_tmpdir(), name) > 0);
    return p;
}

static int pragma_int(const char *path, const char *sql, char *text, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
        if (text)
            snprintf(text, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_roundtrip(void **state)
{
    char *path = db_path("state.db");
    struct osc_store *s = NULL;
    struct osc_err err = {0};
    struct osc_urn room = {OSC_URN_ROOM, 100}, desk = {OSC_URN_DESK, 5};
    struct osc_presence_last a = {1, OSC_PRESENCE_YES, 3, 1000, 2000, 0};
    struct osc_presence_last b = {1, OSC_PRESENCE_PASSIVE, 1, 3000, 4000, 0};
    struct seen seen = {0};
    char mode[32];

    (void)state;
    assert_int_equal(osc_store_open(path, 0, &s, &err), 0);
    assert_int_equal(osc_store_count(s), 0);
    assert_int_equal(osc_store_begin(s, &err), 0);
    assert_int_equal(osc_store_put(s, &room, &a, &err), 0);
    assert_int_equal(osc_store_put(s, &desk, &b, &err), 0);
    assert_int_equal(osc_store_commit(s, &err), 0);
    /* replace */
    a.status = OSC_PRESENCE_NO;
    a.count = 0;
    a.sent_ms = 9000;
    a.expired = 1;
    assert_int_equal(osc_store_put(s, &room, &a, &err), 0);
    /* a rolled-back transaction leaves nothing */
    assert_int_equal(osc_store_begin(s, &err), 0);
    {
        struct osc_urn tmp = {OSC_URN_SITE, 1};
        assert_int_equal(osc_store_put(s, &tmp, &a, &err), 0);
    }
    osc_store_rollback(s);
    assert_int_equal(osc_store_count(s), 2);
    osc_store_close(s);

    assert_int_equal(pragma_int(path, "PRAGMA user_version", NULL, 0), OSC_STORE_SCHEMA_VERSION);
    pragma_int(path, "PRAGMA journal_mode", mode, sizeof(mode));
    assert_string_equal(mode, "wal");

    /* reopen: the rows are there, exactly */
    s = NULL;
    assert_int_equal(osc_store_open(path, 0, &s, &err), 0);
    assert_int_equal(osc_store_each(s, collect, &seen, &err), 0);
    assert_int_equal(seen.n, 2);
    for (size_t i = 0; i < 2; i++) {
        const struct osc_presence_last *l = &seen.last[i];
        assert_true(l->known);
        if (seen.urn[i].type == OSC_URN_ROOM) {
            assert_true(seen.urn[i].id == 100);
            assert_int_equal(l->status, OSC_PRESENCE_NO);
            assert_true(l->count == 0 && l->at_ms == 1000 && l->sent_ms == 9000);
            assert_true(l->expired); /* an expiry survives a restart */
        } else {
            assert_int_equal(seen.urn[i].type, OSC_URN_DESK);
            assert_int_equal(l->status, OSC_PRESENCE_PASSIVE);
            assert_true(l->count == 1 && l->at_ms == 3000 && l->sent_ms == 4000);
            assert_false(l->expired);
        }
    }
    osc_store_close(s);

    /* read-only: reads, refuses writes */
    s = NULL;
    assert_int_equal(osc_store_open(path, 1, &s, &err), 0);
    assert_int_equal(osc_store_count(s), 2);
    assert_int_equal(osc_store_put(s, &room, &a, &err), OSC_EDB);
    osc_store_close(s);
    free(path);
}

static void test_readonly_missing(void **state)
{
    char *path = db_path("absent.db");
    struct osc_store *s = NULL;
    struct osc_err err = {0};

    (void)state;
    assert_int_equal(osc_store_open(path, 1, &s, &err), 0);
    assert_int_equal(osc_store_count(s), 0);
    osc_store_close(s);
    assert_int_equal(access(path, F_OK), -1); /* a dry run leaves no file */
    free(path);
}

static void test_newer_schema_refused(void **state)
{
    char *path = db_path("newer.db");
    struct osc_store *s = NULL;
    struct osc_err err = {0};
    sqlite3 *db = NULL;

    (void)state;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(osc_store_open(path, 0, &s, &err), OSC_EDB);
    assert_null(s);
    assert_non_null(strstr(err.msg, "schema version 99"));
    /* a directory is not a database */
    assert_int_equal(osc_store_open(th_tmpdir(), 0, &s, &err), OSC_EDB);
    osc_store_close(NULL);
    free(path);
}

static void test_malformed_rows_skipped(void **state)
{
    char *path = db_path("odd.db");
    struct osc_store *s = NULL;
    struct osc_err err = {0};
    struct seen seen = {0};
    sqlite3 *db = NULL;

    (void)state;
    assert_int_equal(osc_store_open(path, 0, &s, &err), 0);
    osc_store_close(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO presence_state VALUES ('seat', 1, 'PRESENCE', 1, 0, 0, 0);"
                     "INSERT INTO presence_state VALUES ('room', 2, 'MAYBE', 1, 0, 0, 0);"
                     "INSERT INTO presence_state VALUES ('room', 3, 'PRESENCE', 1, 0, 0, 0);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    s = NULL;
    assert_int_equal(osc_store_open(path, 0, &s, &err), 0);
    assert_int_equal(osc_store_each(s, collect, &seen, &err), 0);
    assert_int_equal(seen.n, 1);
    assert_true(seen.urn[0].id == 3);
    osc_store_close(s);
    free(path);
}

/* A file written by osconnect before expire_after (schema 1): read as is, migrated on write. */
static void test_schema1_migrates(void **state)
{
    char *path = db_path("v1.db");
    struct osc_store *s = NULL;
    struct osc_err err = {0};
    struct seen seen = {0};
    sqlite3 *db = NULL;

    (void)state;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE presence_state (loc_type TEXT NOT NULL, loc_id "
                                  "INTEGER NOT NULL, status TEXT NOT NULL, count INTEGER NOT "
                                  "NULL, detected_at_ms INTEGER NOT NULL, sent_at_ms INTEGER NOT "
                                  "NULL, PRIMARY KEY (loc_type, loc_id)) WITHOUT ROWID;"
                                  "INSERT INTO presence_state VALUES ('room', 7, 'PRESENCE', 5, "
                                  "10, 20);"
                                  "PRAGMA user_version = 1;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    /* a dry run reads it without migrating */
    assert_int_equal(osc_store_open(path, 1, &s, &err), 0);
    assert_int_equal(osc_store_each(s, collect, &seen, &err), 0);
    assert_int_equal(seen.n, 1);
    assert_true(seen.last[0].count == 5 && !seen.last[0].expired);
    osc_store_close(s);
    assert_int_equal(pragma_int(path, "PRAGMA user_version", NULL, 0), 1);
    /* a writable open migrates, keeping the row */
    s = NULL;
    seen.n = 0;
    assert_int_equal(osc_store_open(path, 0, &s, &err), 0);
    assert_int_equal(osc_store_each(s, collect, &seen, &err), 0);
    assert_int_equal(seen.n, 1);
    assert_true(seen.urn[0].id == 7 && seen.last[0].status == OSC_PRESENCE_YES);
    assert_false(seen.last[0].expired);
    osc_store_close(s);
    assert_int_equal(pragma_int(path, "PRAGMA user_version", NULL, 0), 2);
    free(path);
}

/* One process per state file: another process's lock is refused with its pid, and dropped
 * with that process even on SIGKILL; this process shares its own lock (reloads). */
static void test_lock(void **state)
{
    char *path = db_path("locked.db"), *lpath = NULL, *text, want[64];
    struct osc_store *s = NULL, *s2 = NULL, *ro = NULL;
    struct osc_err err = {0};
    int ready[2], status;
    pid_t pid;
    char c;

    (void)state;
    assert_true(asprintf(&lpath, "%s.lock", path) > 0);
    /* the same process: shared, and still held after one of the two closes */
    assert_int_equal(osc_store_open(path, 0, &s, &err), 0);
    assert_int_equal(osc_store_open(path, 0, &s2, &err), 0);
    osc_store_close(s);
    text = th_read_file(lpath);
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    assert_string_equal(text, want);
    free(text);
    osc_store_close(s2);

    /* another process holds it */
    assert_int_equal(pipe(ready), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct osc_store *cs = NULL;
        close(ready[0]);
        if (osc_store_open(path, 0, &cs, NULL) != 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    s = NULL;
    assert_int_equal(osc_store_open(path, 0, &s, &err), OSC_EBUSY);
    assert_null(s);
    snprintf(want, sizeof(want), "(pid %ld holds %s)", (long)pid, lpath);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, path));
    /* a dry run needs no lock */
    assert_int_equal(osc_store_open(path, 1, &ro, &err), 0);
    osc_store_close(ro);
    /* kill -9: the kernel drops the lock */
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(osc_store_open(path, 0, &s, &err), 0);
    osc_store_close(s);
    free(lpath);
    free(path);
}

static int teardown(void **state)
{
    (void)state;
    th_tmpdir_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_readonly_missing),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_malformed_rows_skipped),
        cmocka_unit_test(test_schema1_migrates),
        cmocka_unit_test(test_lock),
    };
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    return cmocka_run_group_tests(tests, NULL, teardown);
}
