/*
 * conf_table.h - the table types shared by the loader (config.c) and the
 * section tables (sections.c). Private to src/config.
 */
#ifndef OSC_CONF_TABLE_H
#define OSC_CONF_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "osc/config.h"

enum conf_type {
    CONF_STR,
    CONF_INT,
    CONF_BOOL,
    CONF_DURATION, /* int64_t milliseconds */
    CONF_SIZE,     /* int64_t bytes */
    CONF_RATIO,    /* double from 0 to 1 */
    CONF_ENUM,     /* int index into choices */
    CONF_LIST,     /* struct osc_strlist; a scalar is a one-item list */
    CONF_MAP,      /* struct osc_strmap; with CONF_F_MAPSTR also "a:b,c:d" */
    CONF_JSON,     /* json_t *, any YAML value */
    CONF_SECTION,  /* embedded struct starting with struct osc_conf_meta */
    CONF_NAMED     /* struct osc_conf_named of sub sections */
};

#define CONF_F_SECRET   0x1u /* redacted in dumps, registered with the logger */
#define CONF_F_REQUIRED 0x2u /* must be present (checked when the section is) */
#define CONF_F_MAPSTR   0x4u /* CONF_MAP also accepts "name:value,name2:value2" */
#define CONF_F_AUTO     0x8u /* CONF_INT also accepts the word auto, stored as 0 */

/* Flags of a destination key: the templates that use it (none set outside destinations). */
#define CONF_T_BIT(t)  (0x100u << (t)) /* t: enum osc_conf_template */
#define CONF_T_MANUAL  CONF_T_BIT(OSC_CONF_TEMPLATE_MANUAL)
#define CONF_T_UPSERT  CONF_T_BIT(OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES)
#define CONF_T_TRIGGER CONF_T_BIT(OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT)
#define CONF_T_ALL     (CONF_T_MANUAL | CONF_T_UPSERT | CONF_T_TRIGGER)

/* Limits of the composer (compose.c). */
#define CONF_MAX_DEPTH       64
#define CONF_MAX_ALIAS_NODES 100000

struct conf_section;

struct conf_key {
    const char *name;
    enum conf_type type;
    size_t offset;
    const char *def; /* default, parsed like file input; NULL = none */
    int64_t min, max;
    unsigned flags;
    const char *const *choices; /* CONF_ENUM: NULL-terminated */
    const struct conf_section *sub;
    const char *help;
};

/* Passed to a section's check hook: where the section is, for messages. */
struct conf_ctx {
    const char *file;
    yaml_document_t *doc;
    yaml_node_t *node; /* the section's mapping node, NULL if absent */
    const char *path;  /* "officespace", "destinations.employees" */
};

struct conf_section {
    const char *name;
    const struct conf_key *keys;
    size_t nkeys;
    size_t size;
    /* cross-key validation and derived fields; 0 or OSC_ECONFIG with err set */
    int (*check)(void *obj, const struct conf_ctx *ctx, struct osc_err *err);
};

/* Position of key in the section (or of the section itself) for messages. */
void conf_pos(const struct conf_ctx *ctx, const char *key, unsigned *line, unsigned *col);
/* Set err to "file:line:col: path.key: message". Returns OSC_ECONFIG. */
int conf_fail(const struct conf_ctx *ctx, const char *key, struct osc_err *err, const char *fmt,
              ...) __attribute__((format(printf, 4, 5)));
/* Read a secret from a file that only its owner may read; trailing newline trimmed. */
int conf_read_secret_file(const struct conf_ctx *ctx, const char *key, const char *path, char **out,
                          struct osc_err *err);

/* Value of key in a mapping node, or NULL (key_node, if not NULL, gets the key). */
yaml_node_t *conf_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key,
                          yaml_node_t **key_node);

/*
 * Refuse every key of section s present in ctx->node (recursing into
 * sub-sections) that has CONF_T_* flags without tbit (a CONF_T_BIT()):
 * "PATH.KEY: template NAME does not use KEY (why)". 0 or OSC_ECONFIG.
 */
int conf_check_template_keys(const struct conf_ctx *ctx, const struct conf_section *s,
                             unsigned tbit, const char *tname, const char *why,
                             struct osc_err *err);

/*
 * Read text into *doc with the limits in compose.c: one document, nesting
 * of at most CONF_MAX_DEPTH, aliases standing for at most
 * CONF_MAX_ALIAS_NODES nodes. On success *doc is initialised (no root node
 * when the text is empty) and the caller deletes it with
 * yaml_document_delete(); on failure *doc is not initialised and err says
 * "file:line:col: path: what is wrong". Returns 0, OSC_ECONFIG or OSC_ENOMEM.
 */
int conf_compose(const char *text, size_t len, const char *file, yaml_document_t *doc,
                 struct osc_err *err);

extern const struct conf_section conf_root;

#endif
