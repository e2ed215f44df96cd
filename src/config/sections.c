/*
 * sections.c - the configuration tables: every key osconnect understands.
 *
 * To add a key: add the field to the struct in include/osc/config.h and one
 * row here. Parsing, errors, the dump, `help config` and the man page
 * follow from the row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_table.h"
#include "osc/log.h"

#define OFF(type, field) offsetof(struct type, field)
#define N(a)             (sizeof(a) / sizeof((a)[0]))
#define DAY_MS           (86400LL * 1000)

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const templates[] = {"manual", "upsert_employees", "trigger_directory_import",
                                        NULL};
static const char *const methods[] = {"POST", "PUT", "PATCH", "DELETE", NULL};
static const char *const formats[] = {"json", "form", "ndjson", NULL};
static const char *const groupings[] = {"array", "property", "code", NULL};

const char *osc_conf_method_name(int m) { return m >= 0 && m < 4 ? methods[m] : "?"; }
const char *osc_conf_format_name(int f) { return f >= 0 && f < 3 ? formats[f] : "?"; }
const char *osc_conf_template_name(int t) { return t >= 0 && t < 3 ? templates[t] : "?"; }

/* ---- officespace ------------------------------------------------------ */

static int officespace_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_officespace *o = obj;
    int rc;

    if (!o->hostname && !o->base_url)
        return conf_fail(ctx, NULL, err, "set hostname (your OfficeSpace subdomain) or base_url");
    if (o->hostname && strpbrk(o->hostname, "./: "))
        return conf_fail(ctx, "hostname", err,
                         "expected the subdomain only (\"acme\" for acme.officespacesoftware.com)");
    if (o->api_key && o->api_key_file)
        return conf_fail(ctx, "api_key_file", err, "set api_key or api_key_file, not both");
    if (o->api_key_file &&
        (rc = conf_read_secret_file(ctx, "api_key_file", o->api_key_file, &o->api_key, err)))
        return rc;
    if (!o->api_key)
        return conf_fail(ctx, NULL, err,
                         "set api_key (e.g. ${OFFICESPACE_API_KEY}) or api_key_file");
    if (o->graphql_api_key && o->graphql_api_key_file)
        return conf_fail(ctx, "graphql_api_key_file", err,
                         "set graphql_api_key or graphql_api_key_file, not both");
    if (o->graphql_api_key_file &&
        (rc = conf_read_secret_file(ctx, "graphql_api_key_file", o->graphql_api_key_file,
                                    &o->graphql_api_key, err)))
        return rc;
    if (!o->graphql_api_key && !(o->graphql_api_key = strdup(o->api_key)))
        return OSC_ENOMEM;
    if (o->base_url) {
        size_t n = strlen(o->base_url);
        while (n > 0 && o->base_url[n - 1] == '/')
            n--;
        o->rest_base = strndup(o->base_url, n);
    } else if (asprintf(&o->rest_base, "https://%s.officespacesoftware.com", o->hostname) < 0) {
        o->rest_base = NULL;
    }
    return o->rest_base ? 0 : OSC_ENOMEM;
}

static const struct conf_key officespace_keys[] = {
    {"hostname", CONF_STR, OFF(osc_conf_officespace, hostname), NULL, 0, 0, 0, NULL, NULL,
     "Tenant subdomain: acme means https://acme.officespacesoftware.com."},
    {"base_url", CONF_STR, OFF(osc_conf_officespace, base_url), NULL, 0, 0, 0, NULL, NULL,
     "REST base URL; overrides the one built from hostname (simulator, proxies)."},
    {"api_key", CONF_STR, OFF(osc_conf_officespace, api_key), NULL, 0, 0, CONF_F_SECRET, NULL, NULL,
     "REST API key, sent as Authorization: Token token=KEY."},
    {"api_key_file", CONF_STR, OFF(osc_conf_officespace, api_key_file), NULL, 0, 0, 0, NULL, NULL,
     "File holding the REST API key (mode 0600 or stricter)."},
    {"graphql_url", CONF_STR, OFF(osc_conf_officespace, graphql_url),
     "https://api.officespacesoftware.com/graphql", 0, 0, 0, NULL, NULL,
     "OfficeSpace GraphQL endpoint (presence writes, credential test)."},
    {"graphql_api_key", CONF_STR, OFF(osc_conf_officespace, graphql_api_key), NULL, 0, 0,
     CONF_F_SECRET, NULL, NULL, "GraphQL key, sent as apikey: KEY; defaults to api_key."},
    {"graphql_api_key_file", CONF_STR, OFF(osc_conf_officespace, graphql_api_key_file), NULL, 0, 0,
     0, NULL, NULL, "File holding the GraphQL key (mode 0600 or stricter)."},
    {"timeout", CONF_DURATION, OFF(osc_conf_officespace, timeout_ms), "30s", 100, DAY_MS, 0, NULL,
     NULL, "Whole-request timeout."},
    {"connect_timeout", CONF_DURATION, OFF(osc_conf_officespace, connect_timeout_ms), "10s", 100,
     DAY_MS, 0, NULL, NULL, "TCP and TLS connect timeout."},
    {"verify_tls", CONF_BOOL, OFF(osc_conf_officespace, verify_tls), "true", 0, 0, 0, NULL, NULL,
     "Verify the server's TLS certificate and host name."},
    {"ca_file", CONF_STR, OFF(osc_conf_officespace, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "CA bundle to verify the server with, instead of the system's."},
};

static const struct conf_section officespace_section = {
    "officespace", officespace_keys, N(officespace_keys), sizeof(struct osc_conf_officespace),
    officespace_check};

/* ---- mapped ----------------------------------------------------------- */

static int mapped_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_mapped *m = obj;

    if (m->token && m->token_file)
        return conf_fail(ctx, "token_file", err, "set token or token_file, not both");
    if (m->token_file)
        return conf_read_secret_file(ctx, "token_file", m->token_file, &m->token, err);
    if (!m->token)
        return conf_fail(ctx, NULL, err, "set token (e.g. ${MAPPED_API_TOKEN}) or token_file");
    return 0;
}

static const struct conf_key mapped_keys[] = {
    {"url", CONF_STR, OFF(osc_conf_mapped, url), "https://api.mapped.com/graphql", 0, 0, 0, NULL,
     NULL, "Mapped GraphQL endpoint."},
    {"token", CONF_STR, OFF(osc_conf_mapped, token), NULL, 0, 0, CONF_F_SECRET, NULL, NULL,
     "Mapped personal access token, sent as Authorization: token PAT."},
    {"token_file", CONF_STR, OFF(osc_conf_mapped, token_file), NULL, 0, 0, 0, NULL, NULL,
     "File holding the Mapped token (mode 0600 or stricter)."},
    {"timeout", CONF_DURATION, OFF(osc_conf_mapped, timeout_ms), "60s", 100, DAY_MS, 0, NULL, NULL,
     "Whole-request timeout for Mapped queries."},
    {"verify_tls", CONF_BOOL, OFF(osc_conf_mapped, verify_tls), "true", 0, 0, 0, NULL, NULL,
     "Verify Mapped's TLS certificate."},
    {"ca_file", CONF_STR, OFF(osc_conf_mapped, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "CA bundle for Mapped."},
};

static const struct conf_section mapped_section = {"mapped", mapped_keys, N(mapped_keys),
                                                   sizeof(struct osc_conf_mapped), mapped_check};

/* ---- retry (inside destinations and presence) ------------------------- */

static int retry_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_retry *r = obj;

    if (r->base_ms > r->cap_ms)
        return conf_fail(ctx, "base", err, "base (%lldms) is larger than cap (%lldms)",
                         (long long)r->base_ms, (long long)r->cap_ms);
    for (size_t i = 0; i < r->classes.n; i++) {
        const char *k = r->classes.keys[i], *v = r->classes.vals[i];
        int code_ok = strlen(k) == 3 && k[0] >= '1' && k[0] <= '5' &&
                      ((k[1] >= '0' && k[1] <= '9' && k[2] >= '0' && k[2] <= '9') ||
                       strcmp(k + 1, "xx") == 0);
        if (!code_ok)
            return conf_fail(ctx, "classes", err,
                             "'%s' is not a status code like 409 or a class like 4xx", k);
        if (strcmp(v, "sent") && strcmp(v, "retry") && strcmp(v, "reject"))
            return conf_fail(ctx, "classes", err, "%s: expected sent, retry or reject, got '%s'", k,
                             v);
    }
    return 0;
}

static const struct conf_key retry_keys[] = {
    {"max_attempts", CONF_INT, OFF(osc_conf_retry, max_attempts), "10", 1, 1000, 0, NULL, NULL,
     "Attempts per request before its records go to the dead-letter file."},
    {"max_elapsed", CONF_DURATION, OFF(osc_conf_retry, max_elapsed_ms), "15m", 1000, 7 * DAY_MS, 0,
     NULL, NULL, "Total time a request may spend retrying."},
    {"base", CONF_DURATION, OFF(osc_conf_retry, base_ms), "500ms", 1, DAY_MS, 0, NULL, NULL,
     "First backoff step; doubles per attempt, with full jitter."},
    {"cap", CONF_DURATION, OFF(osc_conf_retry, cap_ms), "30s", 1, DAY_MS, 0, NULL, NULL,
     "Largest backoff step."},
    {"classes", CONF_MAP, OFF(osc_conf_retry, classes), NULL, 0, 0, 0, NULL, NULL,
     "Override the outcome of a status: {\"409\": sent, \"5xx\": retry}."},
};

static const struct conf_section retry_section = {"retry", retry_keys, N(retry_keys),
                                                  sizeof(struct osc_conf_retry), retry_check};

/* ---- presence --------------------------------------------------------- */

static int presence_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_presence *p = obj;

    if (p->meta.present && p->buildings.n == 0)
        return conf_fail(ctx, "buildings", err, "list at least one Mapped building id");
    return 0;
}

static const struct conf_key presence_keys[] = {
    {"buildings", CONF_LIST, OFF(osc_conf_presence, buildings), NULL, 0, 0, 0, NULL, NULL,
     "Mapped building ids whose occupancy is synced."},
    {"interval", CONF_DURATION, OFF(osc_conf_presence, interval_ms), "60s", 100, DAY_MS, 0, NULL,
     NULL, "Time between the starts of two cycles."},
    {"topology_refresh", CONF_DURATION, OFF(osc_conf_presence, topology_refresh_ms), "15m", 100,
     7 * DAY_MS, 0, NULL, NULL, "How often locations and identities are rediscovered."},
    {"resend_after", CONF_DURATION, OFF(osc_conf_presence, resend_after_ms), "15m", 100, 7 * DAY_MS,
     0, NULL, NULL, "Push an unchanged location again after this long."},
    {"stale_after", CONF_DURATION, OFF(osc_conf_presence, stale_after_ms), "0", 0, 365 * DAY_MS, 0,
     NULL, NULL, "Ignore readings older than this; 0 turns it off."},
    {"expire_after", CONF_DURATION, OFF(osc_conf_presence, expire_after_ms), "15m", 0, 365 * DAY_MS,
     0, NULL, NULL,
     "Push NO_PRESENCE once for a location without a fresh reading this long; 0 turns it off."},
    {"mutations_per_request", CONF_INT, OFF(osc_conf_presence, mutations_per_request), "50", 1, 500,
     0, NULL, NULL, "createEmployeePresence mutations per GraphQL request (aliases)."},
    {"state", CONF_STR, OFF(osc_conf_presence, state), "osconnect-state.db", 0, 0, 0, NULL, NULL,
     "SQLite file with the last accepted presence per location."},
    {"max_response", CONF_SIZE, OFF(osc_conf_presence, max_response), "256MiB", 1024,
     4LL * 1024 * 1024 * 1024, 0, NULL, NULL, "Largest Mapped response accepted."},
    {"retry", CONF_SECTION, OFF(osc_conf_presence, retry), NULL, 0, 0, 0, NULL, &retry_section,
     "Retry policy for presence pushes within a cycle."},
};

static const struct conf_section presence_section = {
    "presence", presence_keys, N(presence_keys), sizeof(struct osc_conf_presence), presence_check};

/* ---- status, log ------------------------------------------------------ */

static const struct conf_key status_keys[] = {
    {"listen", CONF_STR, OFF(osc_conf_status, listen), "127.0.0.1:9464", 0, 0, 0, NULL, NULL,
     "Address of /healthz and /metrics for `run`."},
    {"enabled", CONF_BOOL, OFF(osc_conf_status, enabled), "true", 0, 0, 0, NULL, NULL,
     "Serve the status endpoint."},
};

static const struct conf_section status_section = {"status", status_keys, N(status_keys),
                                                   sizeof(struct osc_conf_status), NULL};

static const struct conf_key log_keys[] = {
    {"level", CONF_ENUM, OFF(osc_conf_log, level), "info", 0, 0, 0, log_levels, NULL,
     "error, warn, info or debug."},
    {"format", CONF_ENUM, OFF(osc_conf_log, format), "text", 0, 0, 0, log_formats, NULL,
     "text, or json for log shippers."},
};

static const struct conf_section log_section = {"log", log_keys, N(log_keys),
                                                sizeof(struct osc_conf_log), NULL};

/* ---- destinations ----------------------------------------------------- */

static int batch_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_batch *b = obj;

    if (b->grouping == OSC_CONF_GROUPING_PROPERTY && !b->property_name)
        return conf_fail(ctx, "property_name", err, "grouping: property needs property_name");
    if (b->other_props && !json_is_object(b->other_props))
        return conf_fail(ctx, "other_props", err, "expected a mapping of extra body properties");
    if (b->grouping == OSC_CONF_GROUPING_CODE && !b->code == !b->code_file)
        return conf_fail(ctx, "code", err, "grouping: code needs exactly one of code or code_file");
    return 0;
}

static const struct conf_key batch_keys[] = {
    {"enabled", CONF_BOOL, OFF(osc_conf_batch, enabled), "true", 0, 0, 0, NULL, NULL,
     "Send several records per request; false sends one record per request."},
    {"size", CONF_INT, OFF(osc_conf_batch, size), "100", 1, 100000, 0, NULL, NULL,
     "Records per request."},
    {"max_bytes", CONF_SIZE, OFF(osc_conf_batch, max_bytes), "5MiB", 256, 1024LL * 1024 * 1024, 0,
     NULL, NULL, "Largest request body; a batch is cut before it grows past this."},
    {"grouping", CONF_ENUM, OFF(osc_conf_batch, grouping), "array", 0, 0, 0, groupings, NULL,
     "array (JSON array body), property (records under property_name) or code (Lua)."},
    {"property_name", CONF_STR, OFF(osc_conf_batch, property_name), NULL, 0, 0, 0, NULL, NULL,
     "grouping: property: the body property that holds the records."},
    {"other_props", CONF_JSON, OFF(osc_conf_batch, other_props), NULL, 0, 0, 0, NULL, NULL,
     "grouping: property: more properties merged into the body."},
    {"code", CONF_STR, OFF(osc_conf_batch, code), NULL, 0, 0, 0, NULL, NULL,
     "grouping: code: inline Lua 5.4 defining batch(records) -> body, content_type."},
    {"code_file", CONF_STR, OFF(osc_conf_batch, code_file), NULL, 0, 0, 0, NULL, NULL,
     "grouping: code: a Lua file defining batch(records)."},
};

static const struct conf_section batch_section = {"batch", batch_keys, N(batch_keys),
                                                  sizeof(struct osc_conf_batch), batch_check};

static int destination_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_destination *d = obj;

    if (d->template_ == OSC_CONF_TEMPLATE_MANUAL && !d->url)
        return conf_fail(ctx, NULL, err, "a manual destination needs url (or set template)");
    if (d->source_name && !d->source_name[0])
        return conf_fail(ctx, "source_name", err, "must not be empty");
    for (size_t i = 0; i < d->headers.n; i++)
        if (strcasecmp(d->headers.keys[i], "authorization") == 0 ||
            strcasecmp(d->headers.keys[i], "apikey") == 0)
            return conf_fail(ctx, "headers", err,
                             "%s is set from officespace.api_key and cannot be overridden here",
                             d->headers.keys[i]);
    return 0;
}

static const struct conf_key destination_keys[] = {
    {"template", CONF_ENUM, OFF(osc_conf_destination, template_), "manual", 0, 0, 0, templates,
     NULL, "upsert_employees, trigger_directory_import, or manual."},
    {"active", CONF_BOOL, OFF(osc_conf_destination, active), "true", 0, 0, 0, NULL, NULL,
     "Inactive destinations are refused by send and skipped by run."},
    {"method", CONF_ENUM, OFF(osc_conf_destination, method), "POST", 0, 0, 0, methods, NULL,
     "POST, PUT, PATCH or DELETE."},
    {"format", CONF_ENUM, OFF(osc_conf_destination, format), "json", 0, 0, 0, formats, NULL,
     "Body encoding: json, form or ndjson."},
    {"url", CONF_STR, OFF(osc_conf_destination, url), NULL, 0, 0, 0, NULL, NULL,
     "Absolute (may use {hostname}) or relative to the REST base; {field} is filled per record."},
    {"headers", CONF_MAP, OFF(osc_conf_destination, headers), NULL, 0, 0, CONF_F_MAPSTR, NULL, NULL,
     "Extra headers: a mapping or \"name:value,name2:value2\"."},
    {"exclude", CONF_LIST, OFF(osc_conf_destination, exclude), NULL, 0, 0, 0, NULL, NULL,
     "Attributes removed before encoding: top-level names or dotted paths."},
    {"fields", CONF_MAP, OFF(osc_conf_destination, fields), NULL, 0, 0, 0, NULL, NULL,
     "upsert_employees: input column -> OfficeSpace key, overriding the built-in mapping."},
    {"source_name", CONF_STR, OFF(osc_conf_destination, source_name), "osconnect", 0, 0, 0, NULL,
     NULL, "Directory import source; tags every record and names the staging area."},
    {"clear_staging", CONF_BOOL, OFF(osc_conf_destination, clear_staging), "true", 0, 0, 0, NULL,
     NULL, "upsert_employees: clear the source's staging area once before the first batch."},
    {"commit", CONF_STR, OFF(osc_conf_destination, commit), NULL, 0, 0, 0, NULL, NULL,
     "Destination to run once every batch was accepted (e.g. a trigger_directory_import)."},
    {"batch", CONF_SECTION, OFF(osc_conf_destination, batch), NULL, 0, 0, 0, NULL, &batch_section,
     "Batching and grouping."},
    {"retry", CONF_SECTION, OFF(osc_conf_destination, retry), NULL, 0, 0, 0, NULL, &retry_section,
     "Retry policy."},
    {"max_retry_wait", CONF_DURATION, OFF(osc_conf_destination, max_retry_wait_ms), "5m", 0, DAY_MS,
     0, NULL, NULL, "Longest Retry-After honoured; longer waits dead-letter the batch."},
    {"response_webhook", CONF_STR, OFF(osc_conf_destination, response_webhook), NULL, 0, 0, 0, NULL,
     NULL, "URL that receives a JSON report of every API call."},
    {"dead_letter", CONF_STR, OFF(osc_conf_destination, dead_letter), NULL, 0, 0, 0, NULL, NULL,
     "JSON Lines file for rejected records (default: NAME.dead.jsonl)."},
    {"max_in_flight", CONF_INT, OFF(osc_conf_destination, max_in_flight), "4", 1, 64, 0, NULL, NULL,
     "Requests in flight at once."},
    {"timeout", CONF_DURATION, OFF(osc_conf_destination, timeout_ms), "30s", 100, DAY_MS, 0, NULL,
     NULL, "Whole-request timeout."},
};

static const struct conf_section destination_section = {
    "destination", destination_keys, N(destination_keys), sizeof(struct osc_conf_destination),
    destination_check};

/* ---- root ------------------------------------------------------------- */

static int root_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_config *c = obj;
    struct osc_conf_destination *d = c->destinations.items;

    if (!c->officespace.meta.present)
        return conf_fail(ctx, NULL, err, "the officespace: section is required");
    if (c->presence.meta.present && !c->mapped.meta.present)
        return conf_fail(ctx, "presence", err, "presence needs a mapped: section");
    for (size_t i = 0; i < c->destinations.n; i++) {
        d[i].name = c->destinations.names[i];
        if (d[i].commit && !osc_config_destination(c, d[i].commit))
            return conf_fail(ctx, "destinations", err,
                             "destination %s: commit names unknown destination '%s'", d[i].name,
                             d[i].commit);
    }
    return 0;
}

static const struct conf_key root_keys[] = {
    {"officespace", CONF_SECTION, OFF(osc_config, officespace), NULL, 0, 0, 0, NULL,
     &officespace_section, "The OfficeSpace tenant and its credentials."},
    {"mapped", CONF_SECTION, OFF(osc_config, mapped), NULL, 0, 0, 0, NULL, &mapped_section,
     "The Mapped graph (presence sync)."},
    {"presence", CONF_SECTION, OFF(osc_config, presence), NULL, 0, 0, 0, NULL, &presence_section,
     "Presence sync from Mapped to OfficeSpace."},
    {"status", CONF_SECTION, OFF(osc_config, status), NULL, 0, 0, 0, NULL, &status_section,
     "Health and metrics endpoint."},
    {"log", CONF_SECTION, OFF(osc_config, log), NULL, 0, 0, 0, NULL, &log_section, "Logging."},
    {"destinations", CONF_NAMED, OFF(osc_config, destinations), NULL, 0, 0, 0, NULL,
     &destination_section, "Record delivery destinations, by name."},
};

const struct conf_section conf_root = {"", root_keys, N(root_keys), sizeof(struct osc_config),
                                       root_check};
