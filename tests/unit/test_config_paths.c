/*
 * test_config_paths.c - relative paths in a config (src/config/paths.c):
 * files osconnect reads resolve against the config's folder, files it
 * writes against $STATE_DIRECTORY when set (else the config's folder),
 * absolute paths stay, a config without a folder keeps them as written,
 * and every key of `help config` that looks like a path is covered.
 *
 * Each test loads a real file from a fresh temp dir with the current
 * directory elsewhere (the temp dir's parent of the config folder), so a
 * path that was not resolved would not be found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "osc/config.h"
#include "osc/config_paths.h"
#include "osc/log.h"

#define OS_KEY     "paths-officespace-key-4711"
#define MAPPED_KEY "paths-mapped-token-4711"

static char old_cwd[PATH_MAX];

static int setup(void **state)
{
    (void)state;
    assert_non_null(getcwd(old_cwd, sizeof(old_cwd)));
    unsetenv("STATE_DIRECTORY");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(chdir(old_cwd), 0);
    unsetenv("STATE_DIRECTORY");
    th_tmpdir_cleanup();
    return 0;
}

/* tmp/conf/{keys/os.key, keys/m.key, osconnect.yaml}; returns the config's path (malloc'd). */
static char *write_tree(void)
{
    char *dir = NULL, *keys = NULL, *p = NULL, *cfg = NULL;
    FILE *f;

    assert_true(asprintf(&dir, "%s/conf", th_tmpdir()) > 0);
    assert_true(asprintf(&keys, "%s/keys", dir) > 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mkdir(keys, 0700), 0);
    assert_true(asprintf(&p, "%s/os.key", keys) > 0);
    assert_non_null(f = fopen(p, "w"));
    fputs(OS_KEY "\n", f);
    fclose(f);
    chmod(p, 0600);
    free(p);
    assert_true(asprintf(&p, "%s/m.key", keys) > 0);
    assert_non_null(f = fopen(p, "w"));
    fputs(MAPPED_KEY "\n", f);
    fclose(f);
    chmod(p, 0600);
    free(p);
    /* a CA bundle the loader accepts (it must be PEM): the system's, copied */
    assert_true(asprintf(&p, "%s/ca.pem", dir) > 0);
    {
        char *pem = th_read_file("/etc/ssl/certs/ca-certificates.crt");
        assert_non_null(pem);
        assert_non_null(f = fopen(p, "w"));
        fputs(pem, f);
        fclose(f);
        free(pem);
    }
    free(p);
    assert_true(asprintf(&cfg, "%s/osconnect.yaml", dir) > 0);
    assert_non_null(f = fopen(cfg, "w"));
    fputs("officespace:\n  hostname: acme\n  api_key_file: keys/os.key\n"
          "  ca_file: ca.pem\n"
          "mapped:\n  token_file: ./keys/m.key\n  ca_file: /etc/ssl/certs/ca-certificates.crt\n"
          "presence:\n  buildings: [B1]\n  state: presence.db\n"
          "  coordination: {type: nats, url: nats://127.0.0.1:4222, ca_file: ca.pem}\n"
          "destinations:\n"
          "  spooled:\n    url: /api/1/things\n    source: {type: spool, path: spool}\n"
          "  streamed:\n    url: /api/1/things\n"
          "    source: {type: nats, url: nats://127.0.0.1:4222, stream: S, ca_file: ca.pem}\n"
          "  lua:\n    url: /api/1/things\n"
          "    batch: {enabled: true, grouping: code, code_file: lua/batch.lua}\n"
          "    dead_letter: dead/lua.dead.jsonl\n"
          "  abs:\n    url: /api/1/things\n    dead_letter: /var/tmp/abs.dead.jsonl\n",
          f);
    fclose(f);
    free(keys);
    free(dir);
    /* the current directory is the temp dir: "keys/os.key" does not exist here */
    assert_int_equal(chdir(th_tmpdir()), 0);
    return cfg;
}

static struct osc_config *load_ok(const char *path)
{
    struct osc_config *cfg = NULL;
    struct osc_err err = {0};
    int rc = osc_config_load(path, &cfg, &err);
    if (rc)
        fail_msg("load %s: %s", path, err.msg);
    return cfg;
}

static const struct osc_conf_destination *dest(const struct osc_config *cfg, const char *name)
{
    const struct osc_conf_destination *d = osc_config_destination(cfg, name);
    assert_non_null(d);
    return d;
}

static void expect_in(const char *got, const char *dir, const char *rel)
{
    char want[PATH_MAX];
    snprintf(want, sizeof(want), "%s/%s", dir, rel);
    assert_non_null(got);
    assert_string_equal(got, want);
}

/* Reads and writes resolve against the config's folder; absolute paths stay. */
static void test_relative_to_config_folder(void **state)
{
    char *path = write_tree(), *conf = NULL;
    struct osc_config *cfg;
    (void)state;

    assert_true(asprintf(&conf, "%s/conf", th_tmpdir()) > 0);
    cfg = load_ok(path);
    /* the key files were read from the config's folder, not the current directory */
    assert_string_equal(cfg->officespace.api_key, OS_KEY);
    assert_string_equal(cfg->mapped.token, MAPPED_KEY);
    expect_in(cfg->officespace.api_key_file, conf, "keys/os.key");
    expect_in(cfg->mapped.token_file, conf, "./keys/m.key");
    expect_in(cfg->officespace.ca_file, conf, "ca.pem");
    assert_string_equal(cfg->mapped.ca_file, "/etc/ssl/certs/ca-certificates.crt");
    expect_in(cfg->presence.state, conf, "presence.db");
    expect_in(dest(cfg, "lua")->batch.code_file, conf, "lua/batch.lua");
    expect_in(dest(cfg, "lua")->dead_letter, conf, "dead/lua.dead.jsonl");
    assert_string_equal(dest(cfg, "abs")->dead_letter, "/var/tmp/abs.dead.jsonl");
    assert_null(dest(cfg, "abs")->batch.code_file);
    osc_config_free(cfg);
    free(conf);
    free(path);
}

/* Under systemd, files osconnect writes go to $STATE_DIRECTORY (its first entry). */
static void test_state_directory(void **state)
{
    char *path = write_tree(), *conf = NULL, *p;
    struct osc_config *cfg;
    (void)state;

    assert_true(asprintf(&conf, "%s/conf", th_tmpdir()) > 0);
    setenv("STATE_DIRECTORY", "/var/lib/osconnect:/var/lib/other", 1);
    cfg = load_ok(path);
    assert_string_equal(cfg->presence.state, "/var/lib/osconnect/presence.db");
    assert_string_equal(dest(cfg, "lua")->dead_letter, "/var/lib/osconnect/dead/lua.dead.jsonl");
    assert_string_equal(dest(cfg, "abs")->dead_letter, "/var/tmp/abs.dead.jsonl");
    assert_string_equal(dest(cfg, "spooled")->source.path, "/var/lib/osconnect/spool");
    /* what osconnect reads still comes from the config's folder */
    expect_in(cfg->officespace.ca_file, conf, "ca.pem");
    expect_in(dest(cfg, "streamed")->source.ca_file, conf, "ca.pem");
    expect_in(cfg->presence.coordination.ca_file, conf, "ca.pem");
    expect_in(dest(cfg, "lua")->batch.code_file, conf, "lua/batch.lua");
    assert_string_equal(cfg->officespace.api_key, OS_KEY);
    /* the defaults the delivery code computes (NAME.dead.jsonl, checkpoints) */
    p = osc_config_state_path(cfg, "employees.dead.jsonl");
    assert_string_equal(p, "/var/lib/osconnect/employees.dead.jsonl");
    free(p);
    p = osc_config_state_path(cfg, "/srv/x.db");
    assert_string_equal(p, "/srv/x.db");
    free(p);
    unsetenv("STATE_DIRECTORY");
    p = osc_config_state_path(cfg, "employees.dead.jsonl");
    expect_in(p, conf, "employees.dead.jsonl");
    free(p);
    osc_config_free(cfg);
    free(conf);
    free(path);
}

/* A config named without a folder: the current directory is its folder. */
static void test_config_without_folder(void **state)
{
    char *path = write_tree(), *conf = NULL, *p;
    struct osc_config *cfg;
    (void)state;

    assert_true(asprintf(&conf, "%s/conf", th_tmpdir()) > 0);
    assert_int_equal(chdir(conf), 0);
    cfg = load_ok("osconnect.yaml");
    assert_string_equal(cfg->officespace.api_key, OS_KEY);
    assert_string_equal(cfg->officespace.api_key_file, "keys/os.key");
    assert_string_equal(cfg->presence.state, "presence.db");
    assert_string_equal(dest(cfg, "lua")->dead_letter, "dead/lua.dead.jsonl");
    p = osc_config_state_path(cfg, "e.dead.jsonl");
    assert_string_equal(p, "e.dead.jsonl");
    free(p);
    osc_config_free(cfg);
    /* the join rules on their own */
    p = osc_config_path_in("/x.yaml", "k");
    assert_string_equal(p, "/k");
    free(p);
    p = osc_config_path_in("a/b/c.yaml", "../k");
    assert_string_equal(p, "a/b/../k");
    free(p);
    free(conf);
    free(path);
}

/* A missing key file is reported under the path that was tried. */
static void test_missing_key_file_names_resolved_path(void **state)
{
    char *path = write_tree(), *want = NULL;
    struct osc_config *cfg = NULL;
    struct osc_err err = {0};
    (void)state;

    assert_true(asprintf(&want, "cannot open %s/conf/keys/os.key", th_tmpdir()) > 0);
    {
        char *k = NULL;
        assert_true(asprintf(&k, "%s/conf/keys/os.key", th_tmpdir()) > 0);
        assert_int_equal(remove(k), 0);
        free(k);
    }
    assert_int_equal(osc_config_load(path, &cfg, &err), OSC_ECONFIG);
    assert_null(cfg);
    if (!strstr(err.msg, want))
        fail_msg("error '%s' does not contain '%s'", err.msg, want);
    assert_non_null(strstr(err.msg, "osconnect.yaml:3:"));
    free(want);
    free(path);
}

/* Every key that looks like a path is in paths.c's lists. */
static void test_every_path_key_is_resolved(void **state)
{
    static const char *const covered[] = {
        "officespace.api_key_file",
        "officespace.graphql_api_key_file",
        "officespace.ca_file",
        "mapped.token_file",
        "mapped.ca_file",
        "presence.state",
        "presence.coordination.creds_file",
        "presence.coordination.ca_file",
        "destinations.NAME.batch.code_file",
        "destinations.NAME.dead_letter",
        "destinations.NAME.source.path",
        "destinations.NAME.source.creds_file",
        "destinations.NAME.source.ca_file",
    };
    static const char *const suffixes[] = {"_file",  "_dir",         "_path",       "_db",
                                           ".state", ".dead_letter", ".checkpoint", ".path"};
    char *buf = NULL, *line, *save = NULL;
    size_t len = 0, seen = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)state;

    osc_config_describe(f, 0);
    fclose(f);
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[160];
        size_t klen;
        int pathlike = 0, known = 0;
        if (sscanf(line, " %159s", key) != 1 || line[0] != ' ')
            continue;
        klen = strlen(key);
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
            size_t sl = strlen(suffixes[i]);
            pathlike |= klen >= sl && strcmp(key + klen - sl, suffixes[i]) == 0;
        }
        for (size_t i = 0; i < sizeof(covered) / sizeof(covered[0]); i++)
            known |= strcmp(key, covered[i]) == 0;
        if (pathlike && !known)
            fail_msg("%s looks like a path: resolve it in src/config/paths.c and list it here",
                     key);
        seen += known;
    }
    assert_int_equal(seen, sizeof(covered) / sizeof(covered[0]));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relative_to_config_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_without_folder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_file_names_resolved_path, setup, teardown),
        cmocka_unit_test(test_every_path_key_is_resolved),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    osc_log_secret_clear();
    return rc;
}
