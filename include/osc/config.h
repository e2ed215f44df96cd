/*
 * config.h - the configuration: tables, the YAML loader and the structs.
 *
 * Each section is described by one table of struct osc_conf_key (name,
 * type, where it lives in the struct, default, bounds, flags, help). That
 * table is the single source of truth: it drives parsing, unknown-key and
 * type errors (with file:line:col), `check --print-config` (secrets shown as
 * ***), `help config` and the man page's CONFIGURATION section.
 *
 * Loading is all or nothing: a file is parsed into a fresh struct
 * osc_config, which the caller only sees when every key is valid. Scalars
 * may use ${ENV} or ${ENV:-default}; `$${` is a literal `${`. Secrets
 * (flag OSC_CONF_F_SECRET, and values read from *_file keys) are registered
 * with osc_log_secret_add() so no log line or error can print them.
 *
 * A loaded config can work: every URL is http(s) (plain http only to
 * loopback unless allow_insecure_http), no string is empty, ca_file is a
 * PEM file, status.listen is HOST:PORT, each destination sets only keys
 * its template uses, and the credentials its parts need are present (the
 * REST key only when a destination sends to OfficeSpace REST, the GraphQL
 * key and the Mapped token only with presence:). Reading is linear in the
 * file size: one YAML document, nesting of at most 64 levels, aliases that
 * stand for at most 100,000 nodes in all.
 */
#ifndef OSC_CONFIG_H
#define OSC_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "osc/err.h"

/* Every section struct starts with this: was it in the file, and where. */
struct osc_conf_meta {
    int present;
    unsigned line, col;
};

struct osc_strlist {
    char **v;
    size_t n;
};

/* Ordered string map (keeps the file's order, e.g. for headers). */
struct osc_strmap {
    char **keys;
    char **vals;
    size_t n;
};

/* A mapping of user-chosen names to sections of one kind (destinations). */
struct osc_conf_named {
    void *items; /* array of n structs, item_size bytes each */
    char **names;
    size_t n;
    size_t item_size;
    size_t *by_name; /* derived: the n indices ordered by name (lookups by binary search) */
};

struct osc_conf_officespace {
    struct osc_conf_meta meta;
    char *hostname;
    char *base_url;
    char *api_key;
    char *api_key_file;
    char *graphql_url;
    char *graphql_api_key;
    char *graphql_api_key_file;
    int64_t timeout_ms;
    int64_t connect_timeout_ms;
    int verify_tls;
    char *ca_file;
    int allow_insecure_http; /* plain http:// to a non-loopback host in base_url, graphql_url */
    /* derived: base_url, or https://{hostname}.officespacesoftware.com; no trailing '/' */
    char *rest_base;
};

struct osc_conf_mapped {
    struct osc_conf_meta meta;
    char *url;
    char *token;
    char *token_file;
    int64_t timeout_ms;
    int verify_tls;
    char *ca_file;
    int allow_insecure_http; /* plain http:// to a non-loopback host in url */
};

struct osc_conf_retry {
    struct osc_conf_meta meta;
    int64_t max_attempts;
    int64_t max_elapsed_ms;
    int64_t base_ms;
    int64_t cap_ms;
    /* status code ("409") or class ("4xx") -> "sent" | "retry" | "reject" */
    struct osc_strmap classes;
};

/* presence.coordination: share the buildings among instances through NATS KV leases. */
enum osc_conf_coord_type { OSC_CONF_COORD_NONE = 0, OSC_CONF_COORD_NATS };

struct osc_conf_coordination {
    struct osc_conf_meta meta;
    int type; /* enum osc_conf_coord_type */
    char *url;
    char *bucket;
    char *creds_file;
    char *token;
    char *ca_file;
    int verify_tls;
};

struct osc_conf_presence {
    struct osc_conf_meta meta;
    struct osc_strlist buildings;
    int64_t interval_ms;
    int64_t topology_refresh_ms;
    int64_t resend_after_ms;
    int64_t stale_after_ms;  /* 0 = off */
    int64_t expire_after_ms; /* 0 = off */
    int64_t mutations_per_request;
    char *state;
    int64_t max_response;
    struct osc_conf_retry retry;
    struct osc_conf_coordination coordination;
};

struct osc_conf_status {
    struct osc_conf_meta meta;
    char *listen;
    int enabled;
};

struct osc_conf_log {
    struct osc_conf_meta meta;
    int level;  /* enum osc_log_level */
    int format; /* enum osc_log_format */
};

enum osc_conf_template {
    OSC_CONF_TEMPLATE_MANUAL = 0,
    OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES,
    OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT
};
enum osc_conf_method {
    OSC_CONF_METHOD_POST = 0,
    OSC_CONF_METHOD_PUT,
    OSC_CONF_METHOD_PATCH,
    OSC_CONF_METHOD_DELETE
};
enum osc_conf_format { OSC_CONF_FORMAT_JSON = 0, OSC_CONF_FORMAT_FORM, OSC_CONF_FORMAT_NDJSON };
enum osc_conf_grouping {
    OSC_CONF_GROUPING_ARRAY = 0,
    OSC_CONF_GROUPING_PROPERTY,
    OSC_CONF_GROUPING_CODE
};

struct osc_conf_batch {
    struct osc_conf_meta meta;
    int enabled;
    int64_t size;
    int64_t max_bytes;
    int grouping; /* enum osc_conf_grouping */
    char *property_name;
    json_t *other_props;
    char *code;      /* inline Lua */
    char *code_file; /* Lua file */
};

/* A destination's source: where `osconnect run` takes its records from. */
enum osc_conf_source_type {
    OSC_CONF_SOURCE_NONE = 0,
    OSC_CONF_SOURCE_SPOOL,
    OSC_CONF_SOURCE_HTTP,
    OSC_CONF_SOURCE_NATS
};

struct osc_conf_source {
    struct osc_conf_meta meta;
    int type; /* enum osc_conf_source_type */
    /* spool */
    char *path;
    /* nats */
    char *url;
    char *stream;
    char *subject;
    char *durable; /* NULL: osconnect_<destination> */
    char *creds_file;
    char *token;
    int64_t ack_wait_ms;
    int64_t max_ack_pending;
    char *ca_file;
    int verify_tls;
    /* http */
    char *ingest_token;
    int64_t max_body;
    int64_t queue_max_bytes;
};

struct osc_conf_destination {
    struct osc_conf_meta meta;
    const char *name; /* borrowed from the named list */
    int template_;    /* enum osc_conf_template */
    int active;
    int method; /* enum osc_conf_method */
    int format; /* enum osc_conf_format */
    char *url;  /* NULL: the template's URL */
    struct osc_strmap headers;
    struct osc_strlist exclude;
    struct osc_strmap fields;
    char *source_name;
    int clear_staging;
    char *commit; /* name of a trigger destination run after every batch is accepted */
    struct osc_conf_batch batch;
    struct osc_conf_retry retry;
    int64_t max_retry_wait_ms;
    char *response_webhook;
    char *dead_letter;
    int64_t max_in_flight;       /* 0 = auto: the engine adapts, up to max_in_flight_limit */
    int64_t max_in_flight_limit; /* ceiling of auto */
    double min_staged_ratio;     /* upsert_employees: commit guard, 0..1 */
    int64_t max_errors;          /* malformed or unmappable records before a run stops */
    int64_t timeout_ms;
    int allow_insecure_http; /* plain http:// to a non-loopback host in url, response_webhook */
    struct osc_conf_source source;
    int64_t flush_interval_ms; /* `run`: a partial batch is sent once open this long */
};

struct osc_config {
    struct osc_conf_meta meta; /* first, like every section */
    char *path;
    struct osc_conf_officespace officespace;
    struct osc_conf_mapped mapped;
    struct osc_conf_presence presence;
    struct osc_conf_status status;
    struct osc_conf_log log;
    struct osc_conf_named destinations; /* of struct osc_conf_destination */
    /* derived: some destination sends officespace.api_key (to the REST base or an
     * officespacesoftware.com host), so api_key is required and `check` probes REST */
    int uses_rest;
};

/*
 * Load and validate path. On success *out is a new config the caller frees
 * with osc_config_free(). On failure *out is untouched and err says
 * "file:line:col: what is wrong". Returns 0, OSC_ENOINPUT or OSC_ECONFIG.
 */
int osc_config_load(const char *path, struct osc_config **out, struct osc_err *err);
/* Same from memory; name is used in messages. */
int osc_config_load_string(const char *text, size_t len, const char *name, struct osc_config **out,
                           struct osc_err *err);
void osc_config_free(struct osc_config *cfg);

/* Destination by name, or NULL (a binary search). Borrowed from cfg. */
const struct osc_conf_destination *osc_config_destination(const struct osc_config *cfg,
                                                          const char *name);

/* Write the effective configuration as YAML, secrets as "***". */
void osc_config_dump(const struct osc_config *cfg, FILE *out);
/* Reference of every key; man != 0 writes roff for the man page. */
void osc_config_describe(FILE *out, int man);

/* Names for the enum values (for previews and logs). */
const char *osc_conf_method_name(int method);
const char *osc_conf_format_name(int format);
const char *osc_conf_template_name(int template_);
const char *osc_conf_source_type_name(int type);

#endif
