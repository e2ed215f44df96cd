/*
 * config_paths.h - where the relative paths of a configuration point.
 *
 * Rules (applied once, by the loader, after a successful parse):
 *   - an absolute path is kept as written;
 *   - a file osconnect reads (officespace.api_key_file, graphql_api_key_file,
 *     ca_file; mapped.token_file, ca_file; presence.coordination.creds_file,
 *     ca_file; destinations.*.batch.code_file, source.creds_file,
 *     source.ca_file) resolves against the config file's folder;
 *   - a file osconnect writes (presence.state, destinations.*.dead_letter,
 *     destinations.*.source.path: the spool folder) resolves against $STATE_DIRECTORY (set by
 * systemd's StateDirectory=; its first entry) when that is set, else the config file's folder. A
 * config named without a folder ("osconnect.yaml", or a name given to osc_config_load_string())
 * keeps relative paths as they are (the current directory is its folder). A new path key must be
 * added to paths.c.
 */
#ifndef OSC_CONFIG_PATHS_H
#define OSC_CONFIG_PATHS_H

#include "osc/config.h"
#include "osc/err.h"

/*
 * Resolve cfg's path keys in place by the rules above. Returns 0 or
 * OSC_ENOMEM (err set); after a failure some keys may be resolved and
 * others not, and the caller is expected to free cfg.
 */
int osc_config_resolve_paths(struct osc_config *cfg, struct osc_err *err);

/*
 * path as seen from the folder of config_path (a file osconnect reads).
 * Caller frees; NULL on ENOMEM.
 */
char *osc_config_path_in(const char *config_path, const char *path);

/*
 * Where a file osconnect writes goes when its key is unset or relative:
 * name (absolute: kept) under $STATE_DIRECTORY when set, else under the
 * folder of cfg->path. For the defaults computed outside the config
 * (NAME.dead.jsonl, checkpoints). Caller frees; NULL on ENOMEM.
 */
char *osc_config_state_path(const struct osc_config *cfg, const char *name);

#endif
