/*
 * paths.c - resolve the relative paths of a configuration; see
 * config_paths.h for the rules.
 *
 * The list of path keys lives here, next to the rule that applies to
 * each; tests/unit/test_config_paths.c fails when `help config` shows a
 * key that looks like a path and is missing from its list. Joining never
 * touches the file system: a path is resolved as written, not canonical.
 */
#include "osc/config_paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "$dir/path"; path itself when absolute or dir is empty. Caller frees. */
static char *join(const char *dir, size_t dirlen, const char *path)
{
    char *out = NULL;

    if (path[0] == '/' || dirlen == 0)
        return strdup(path);
    while (dirlen > 1 && dir[dirlen - 1] == '/')
        dirlen--;
    if (asprintf(&out, "%.*s%s%s", (int)dirlen, dir, dir[dirlen - 1] == '/' ? "" : "/", path) < 0)
        return NULL;
    return out;
}

/* Length of the folder part of file ("a/b.yaml" -> 1, "/x.yaml" -> 1, "x.yaml" -> 0). */
static size_t folder_len(const char *file)
{
    const char *slash = strrchr(file, '/');
    if (!slash)
        return 0;
    return slash == file ? 1 : (size_t)(slash - file);
}

/* The first entry of $STATE_DIRECTORY, or NULL; *len gets its length. */
static const char *state_directory(size_t *len)
{
    const char *s = getenv("STATE_DIRECTORY");
    if (!s || !*s)
        return NULL;
    *len = strcspn(s, ":");
    return *len ? s : NULL;
}

char *osc_config_path_in(const char *config_path, const char *path)
{
    return join(config_path, folder_len(config_path), path);
}

char *osc_config_state_path(const struct osc_config *cfg, const char *name)
{
    size_t len;
    const char *sd = state_directory(&len);
    return sd ? join(sd, len, name) : osc_config_path_in(cfg->path, name);
}

/* Replace *field (if set) by its resolved form; 0 or OSC_ENOMEM. */
static int resolve(const struct osc_config *cfg, char **field, int writes)
{
    char *r;

    if (!*field)
        return 0;
    r = writes ? osc_config_state_path(cfg, *field) : osc_config_path_in(cfg->path, *field);
    if (!r)
        return OSC_ENOMEM;
    free(*field);
    *field = r;
    return 0;
}

int osc_config_resolve_paths(struct osc_config *cfg, struct osc_err *err)
{
    struct osc_conf_destination *d = cfg->destinations.items;
    int rc = 0; /* every failure is OSC_ENOMEM, so or-ing them keeps it */

    rc |= resolve(cfg, &cfg->officespace.api_key_file, 0);
    rc |= resolve(cfg, &cfg->officespace.graphql_api_key_file, 0);
    rc |= resolve(cfg, &cfg->officespace.ca_file, 0);
    rc |= resolve(cfg, &cfg->mapped.token_file, 0);
    rc |= resolve(cfg, &cfg->mapped.ca_file, 0);
    rc |= resolve(cfg, &cfg->presence.state, 1);
    rc |= resolve(cfg, &cfg->presence.coordination.creds_file, 0);
    rc |= resolve(cfg, &cfg->presence.coordination.ca_file, 0);
    for (size_t i = 0; i < cfg->destinations.n; i++) {
        rc |= resolve(cfg, &d[i].batch.code_file, 0);
        rc |= resolve(cfg, &d[i].dead_letter, 1);
        /* the spool folder is written too (done/, failed/): it lives with the state */
        rc |= resolve(cfg, &d[i].source.path, 1);
        rc |= resolve(cfg, &d[i].source.creds_file, 0);
        rc |= resolve(cfg, &d[i].source.ca_file, 0);
    }
    if (rc)
        return osc_err_set(err, OSC_ENOMEM, "out of memory resolving the paths of %s", cfg->path);
    return 0;
}
