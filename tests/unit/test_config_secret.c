/*
 * test_config_secret.c - secrets are read only from regular files:
 * token_file, api_key_file and graphql_api_key_file that are a FIFO (which
 * used to hang the loader: open() waited for a writer), a directory or a
 * device are refused with the reason, naming the key and the file; a
 * regular 0600 file is read. An alarm fails the binary if a load ever
 * blocks again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "osc/config.h"
#include "osc/log.h"

/* Load a config whose `key` (under section) is file; the error text, or "" if it loaded. */
static int load(const char *section, const char *key, const char *file, char *msg, size_t cap)
{
    char *yaml = NULL, *path;
    struct osc_config *cfg = NULL;
    struct osc_err err = {0};
    int rc;

    if (strcmp(section, "mapped") == 0)
        assert_true(asprintf(&yaml,
                             "officespace:\n  base_url: http://127.0.0.1:1\n"
                             "  api_key: restkey-abcdef123\n"
                             "mapped:\n  url: http://127.0.0.1:1/graphql\n  %s: %s\n",
                             key, file) > 0);
    else
        assert_true(
            asprintf(&yaml, "officespace:\n  base_url: http://127.0.0.1:1\n%s  %s: %s\n",
                     strcmp(key, "api_key_file") == 0 ? "" : "  api_key: restkey-abcdef123\n", key,
                     file) > 0);
    path = th_write_file("secret.yaml", yaml);
    rc = osc_config_load(path, &cfg, &err);
    snprintf(msg, cap, "%s", rc ? err.msg : "");
    osc_config_free(cfg);
    free(path);
    free(yaml);
    return rc;
}

static void test_non_regular_refused(void **state)
{
    static const char *const keys[][2] = {
        {"mapped", "token_file"},
        {"officespace", "api_key_file"},
        {"officespace", "graphql_api_key_file"},
    };
    char *fifo = NULL, *dir = NULL, *good = NULL, msg[OSC_ERR_MSG_MAX];

    (void)state;
    assert_true(asprintf(&fifo, "%s/token.fifo", th_tmpdir()) > 0);
    assert_true(asprintf(&dir, "%s/token.d", th_tmpdir()) > 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    good = th_write_file("token.txt", "PATmapped12345\n");
    assert_int_equal(chmod(good, 0600), 0);

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        /* a FIFO nobody writes to: refused at once, not waited on */
        assert_int_equal(load(keys[i][0], keys[i][1], fifo, msg, sizeof(msg)), OSC_ECONFIG);
        assert_non_null(strstr(msg, keys[i][1]));
        assert_non_null(strstr(msg, fifo));
        assert_non_null(strstr(msg, "is a FIFO (named pipe); secrets are read only from regular "
                                    "files"));
        assert_int_equal(load(keys[i][0], keys[i][1], dir, msg, sizeof(msg)), OSC_ECONFIG);
        assert_non_null(strstr(msg, "is a directory"));
        assert_int_equal(load(keys[i][0], keys[i][1], "/dev/null", msg, sizeof(msg)), OSC_ECONFIG);
        assert_non_null(strstr(msg, "/dev/null is a character device"));
        /* a regular file is read */
        if (load(keys[i][0], keys[i][1], good, msg, sizeof(msg)) != 0)
            fail_msg("%s", msg);
    }
    free(fifo);
    free(dir);
    free(good);
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
        cmocka_unit_test(test_non_regular_refused),
    };
    osc_log_set_level(OSC_LOG_LEVEL_ERROR);
    alarm(60); /* a load that blocks (the FIFO bug) kills the test instead of hanging ctest */
    return cmocka_run_group_tests(tests, NULL, teardown);
}
