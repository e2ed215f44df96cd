/*
 * sections.c - the configuration tables: every key osconnect understands.
 *
 * To add a key: add the field to the struct in include/osc/config.h and one
 * row here. Parsing, errors, the dump, `help config` and the man page
 * follow from the row.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_table.h"
#include "osc/config_paths.h"
#include "osc/buf.h"
#include "osc/log.h"
#include "osc/parse.h"
#include "osc/url.h"

#define OFF(type, field) offsetof(struct type, field)
#define N(a)             (sizeof(a) / sizeof((a)[0]))
#define DAY_MS           (86400LL * 1000)
#define MAX_CA_BYTES     (16 * 1024 * 1024)

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

static const char *const source_types[] = {"none", "spool", "http", "nats", NULL};
static const char *const coord_types[] = {"none", "nats", NULL};

const char *osc_conf_source_type_name(int t) { return t >= 0 && t < 4 ? source_types[t] : "?"; }

/* ---- shared checks ---------------------------------------------------- */

#define SCHEME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-."

/* Length of url's scheme ("https" in "HTTPS://x"), 0 when it has none (a relative path). */
static size_t scheme_len(const char *url)
{
    size_t n = strspn(url, SCHEME_CHARS);
    return n > 0 && url[n] == ':' && ((url[0] | 0x20) >= 'a' && (url[0] | 0x20) <= 'z') ? n : 0;
}

/* Lower-case the scheme of url in place: HTTPS://x is https://x for every prefix test. */
static void lower_scheme(char *url)
{
    for (size_t i = 0, n = scheme_len(url); i < n; i++)
        if (url[i] >= 'A' && url[i] <= 'Z')
            url[i] = (char)(url[i] - 'A' + 'a');
}

/*
 * url (the value of key, after {placeholders} are filled) must be an absolute
 * http(s) URL with a host, read by curl_url(); plain http only to a loopback
 * host unless the section sets allow_insecure_http. out (may be NULL) gets
 * the parts; the caller frees them with osc_url_free().
 */
static int check_url(const struct conf_ctx *ctx, const char *key, const char *url, int allow_http,
                     struct osc_url *out, struct osc_err *err)
{
    struct osc_url u;
    struct osc_err uerr = {0};
    int rc;

    if ((rc = osc_url_parse(url, &u, &uerr)))
        return rc == OSC_ENOMEM
                   ? rc
                   : conf_fail(ctx, key, err, "%s; expected an http:// or https:// URL", uerr.msg);
    if (!osc_url_is_http(&u))
        rc = conf_fail(ctx, key, err, "expected an http:// or https:// URL, not %s://", u.scheme);
    else if (!u.host[0])
        rc = conf_fail(ctx, key, err, "the URL has no host");
    else if (strcmp(u.scheme, "http") == 0 && !allow_http && !osc_url_is_loopback(&u))
        rc = conf_fail(ctx, key, err,
                       "plain http:// is allowed only to a loopback host (127.0.0.0/8, ::1, "
                       "localhost), not %s: use https://, or set %s.allow_insecure_http: true",
                       u.host, ctx->path);
    if (rc || !out)
        osc_url_free(&u);
    else
        *out = u;
    return rc;
}

/* A CA bundle curl can use: a readable regular file with a PEM certificate in it. */
static int check_ca_file(const struct conf_ctx *ctx, const char *key, const char *path,
                         struct osc_err *err)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    struct stat st;
    char *buf = NULL, *b;
    /* relative to the config's folder, as osc_config_resolve_paths() will store it */
    char *resolved = osc_config_path_in(ctx->file, path);
    ssize_t n;
    size_t len = 0;
    int fd = -1, rc = 0;

    if (!resolved)
        return OSC_ENOMEM;
    path = resolved;
    /* O_NONBLOCK: a FIFO must not hang `check` */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        rc = conf_fail(ctx, key, err, "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = conf_fail(ctx, key, err, "%s is not a regular file", path);
        goto out;
    }
    if (st.st_size > MAX_CA_BYTES) {
        rc = conf_fail(ctx, key, err, "%s is larger than 16 MiB: not a CA bundle", path);
        goto out;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = OSC_ENOMEM;
        goto out;
    }
    while (len < (size_t)st.st_size && (n = read(fd, buf + len, (size_t)st.st_size - len)) > 0)
        len += (size_t)n;
    if (len < (size_t)st.st_size) {
        rc = conf_fail(ctx, key, err, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    b = memmem(buf, len, begin, sizeof(begin) - 1);
    if (!b || !memmem(b, len - (size_t)(b - buf), end, sizeof(end) - 1))
        rc = conf_fail(ctx, key, err,
                       "%s holds no PEM certificate (-----BEGIN CERTIFICATE-----); a DER file "
                       "converts with: openssl x509 -inform der -in FILE -out FILE.pem",
                       path);
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    free(resolved);
    return rc;
}

/* ---- officespace ------------------------------------------------------ */

/* Credentials are required in root_check, which knows what the config uses. */
static int officespace_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_officespace *o = obj;
    struct osc_url u = {0};
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
    if (o->graphql_api_key && o->graphql_api_key_file)
        return conf_fail(ctx, "graphql_api_key_file", err,
                         "set graphql_api_key or graphql_api_key_file, not both");
    if (o->graphql_api_key_file &&
        (rc = conf_read_secret_file(ctx, "graphql_api_key_file", o->graphql_api_key_file,
                                    &o->graphql_api_key, err)))
        return rc;
    if (!o->graphql_api_key && o->api_key && !(o->graphql_api_key = strdup(o->api_key)))
        return OSC_ENOMEM;
    if (o->base_url) {
        size_t n;
        if ((rc = check_url(ctx, "base_url", o->base_url, o->allow_insecure_http, NULL, err)))
            return rc;
        lower_scheme(o->base_url);
        n = strlen(o->base_url);
        while (n > 0 && o->base_url[n - 1] == '/')
            n--;
        o->rest_base = strndup(o->base_url, n);
    } else if (asprintf(&o->rest_base, "https://%s.officespacesoftware.com", o->hostname) < 0) {
        o->rest_base = NULL;
    }
    if (!o->rest_base)
        return OSC_ENOMEM;
    if (!o->base_url) {
        /* a hostname with '@', '#' or '?' would move the host; the parser says where it is */
        char want[300];
        snprintf(want, sizeof(want), "%s.officespacesoftware.com", o->hostname);
        rc = osc_url_parse(o->rest_base, &u, NULL);
        if (rc == OSC_ENOMEM)
            return rc;
        if (rc || strcasecmp(u.host, want) != 0 || strcmp(u.path, "/") != 0)
            rc = conf_fail(ctx, "hostname", err, "'%s' is not a valid subdomain", o->hostname);
        osc_url_free(&u);
        if (rc)
            return rc;
    }
    if ((rc = check_url(ctx, "graphql_url", o->graphql_url, o->allow_insecure_http, NULL, err)))
        return rc;
    lower_scheme(o->graphql_url);
    if (o->ca_file && (rc = check_ca_file(ctx, "ca_file", o->ca_file, err)))
        return rc;
    return 0;
}

static const struct conf_key officespace_keys[] = {
    {"hostname", CONF_STR, OFF(osc_conf_officespace, hostname), NULL, 0, 0, 0, NULL, NULL,
     "Tenant subdomain: acme means https://acme.officespacesoftware.com."},
    {"base_url", CONF_STR, OFF(osc_conf_officespace, base_url), NULL, 0, 0, 0, NULL, NULL,
     "REST base URL (http or https); overrides the one built from hostname (simulator, proxies)."},
    {"api_key", CONF_STR, OFF(osc_conf_officespace, api_key), NULL, 0, 0, CONF_F_SECRET, NULL, NULL,
     "REST API key, sent as Authorization: Token token=KEY; required when a destination sends to "
     "OfficeSpace."},
    {"api_key_file", CONF_STR, OFF(osc_conf_officespace, api_key_file), NULL, 0, 0, 0, NULL, NULL,
     "File holding the REST API key (mode 0600 or stricter)."},
    {"graphql_url", CONF_STR, OFF(osc_conf_officespace, graphql_url),
     "https://api.officespacesoftware.com/graphql", 0, 0, 0, NULL, NULL,
     "OfficeSpace GraphQL endpoint (presence writes, credential test)."},
    {"graphql_api_key", CONF_STR, OFF(osc_conf_officespace, graphql_api_key), NULL, 0, 0,
     CONF_F_SECRET, NULL, NULL,
     "GraphQL key, sent as apikey: KEY; defaults to api_key; required with presence."},
    {"graphql_api_key_file", CONF_STR, OFF(osc_conf_officespace, graphql_api_key_file), NULL, 0, 0,
     0, NULL, NULL, "File holding the GraphQL key (mode 0600 or stricter)."},
    {"timeout", CONF_DURATION, OFF(osc_conf_officespace, timeout_ms), "30s", 100, DAY_MS, 0, NULL,
     NULL, "Whole-request timeout."},
    {"connect_timeout", CONF_DURATION, OFF(osc_conf_officespace, connect_timeout_ms), "10s", 100,
     DAY_MS, 0, NULL, NULL, "TCP and TLS connect timeout."},
    {"verify_tls", CONF_BOOL, OFF(osc_conf_officespace, verify_tls), "true", 0, 0, 0, NULL, NULL,
     "Verify the server's TLS certificate and host name."},
    {"ca_file", CONF_STR, OFF(osc_conf_officespace, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "PEM CA bundle to verify the server with, instead of the system's."},
    {"allow_insecure_http", CONF_BOOL, OFF(osc_conf_officespace, allow_insecure_http), "false", 0,
     0, 0, NULL, NULL,
     "Allow plain http:// to a host that is not loopback in base_url and graphql_url."},
};

static const struct conf_section officespace_section = {
    "officespace", officespace_keys, N(officespace_keys), sizeof(struct osc_conf_officespace),
    officespace_check};

/* ---- mapped ----------------------------------------------------------- */

/* The token is required in root_check, only when presence is configured. */
static int mapped_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_mapped *m = obj;
    int rc;

    if (m->token && m->token_file)
        return conf_fail(ctx, "token_file", err, "set token or token_file, not both");
    if (m->token_file &&
        (rc = conf_read_secret_file(ctx, "token_file", m->token_file, &m->token, err)))
        return rc;
    if ((rc = check_url(ctx, "url", m->url, m->allow_insecure_http, NULL, err)))
        return rc;
    lower_scheme(m->url);
    if (m->ca_file && (rc = check_ca_file(ctx, "ca_file", m->ca_file, err)))
        return rc;
    return 0;
}

static const struct conf_key mapped_keys[] = {
    {"url", CONF_STR, OFF(osc_conf_mapped, url), "https://api.mapped.com/graphql", 0, 0, 0, NULL,
     NULL, "Mapped GraphQL endpoint."},
    {"token", CONF_STR, OFF(osc_conf_mapped, token), NULL, 0, 0, CONF_F_SECRET, NULL, NULL,
     "Mapped personal access token, sent as Authorization: token PAT; required with presence."},
    {"token_file", CONF_STR, OFF(osc_conf_mapped, token_file), NULL, 0, 0, 0, NULL, NULL,
     "File holding the Mapped token (mode 0600 or stricter)."},
    {"timeout", CONF_DURATION, OFF(osc_conf_mapped, timeout_ms), "60s", 100, DAY_MS, 0, NULL, NULL,
     "Whole-request timeout for Mapped queries."},
    {"verify_tls", CONF_BOOL, OFF(osc_conf_mapped, verify_tls), "true", 0, 0, 0, NULL, NULL,
     "Verify Mapped's TLS certificate."},
    {"ca_file", CONF_STR, OFF(osc_conf_mapped, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "PEM CA bundle for Mapped."},
    {"allow_insecure_http", CONF_BOOL, OFF(osc_conf_mapped, allow_insecure_http), "false", 0, 0, 0,
     NULL, NULL, "Allow plain http:// to a host that is not loopback in url."},
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

/* ---- NATS (presence.coordination, destinations.*.source) -------------- */

/* A NATS server list: comma-separated nats:// or tls:// URLs, each with a host. */
static int check_nats_url(const struct conf_ctx *ctx, const char *key, const char *url,
                          struct osc_err *err)
{
    const char *p = url;

    while (*p) {
        size_t n = strcspn(p, ","), sl = 0;
        const char *host;
        if (n >= 7 && strncasecmp(p, "nats://", 7) == 0)
            sl = 7;
        else if (n >= 6 && strncasecmp(p, "tls://", 6) == 0)
            sl = 6;
        host = p + sl;
        if (!sl || n == sl || *host == ':' || *host == '/' || memchr(p, ' ', n))
            return conf_fail(ctx, key, err,
                             "expected nats://HOST:PORT or tls://HOST:PORT (several separated by "
                             "commas), got '%s'",
                             url);
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* A JetStream stream, consumer or bucket name: no dots, wildcards, slashes or blanks. */
static int check_js_name(const struct conf_ctx *ctx, const char *key, const char *v, int strict,
                         struct osc_err *err)
{
    for (const char *c = v; *c; c++) {
        int ok = strict ? ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z') || (*c >= '0' && *c <= '9') ||
                              *c == '_' || *c == '-'
                        : !strchr(".*> \t/\\", *c) && (unsigned char)*c >= 0x20;
        if (!ok)
            return conf_fail(ctx, key, err,
                             strict ? "'%s': use only letters, digits, '_' and '-'"
                                    : "'%s': no '.', '*', '>', '/', '\\' or blanks",
                             v);
    }
    if (strlen(v) > 255)
        return conf_fail(ctx, key, err, "longer than 255 characters");
    return 0;
}

static int coordination_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_coordination *c = obj;
    int rc;

    if (!c->meta.present)
        return 0;
    if (c->type != OSC_CONF_COORD_NATS)
        return conf_fail(ctx, "type", err, "set type: nats (the only coordination there is)");
    if (!c->url)
        return conf_fail(ctx, "url", err,
                         "required: the NATS server(s), e.g. nats://127.0.0.1:4222");
    if ((rc = check_nats_url(ctx, "url", c->url, err)) ||
        (rc = check_js_name(ctx, "bucket", c->bucket, 1, err)))
        return rc;
    if (c->ca_file && (rc = check_ca_file(ctx, "ca_file", c->ca_file, err)))
        return rc;
    return 0;
}

static const struct conf_key coordination_keys[] = {
    {"type", CONF_ENUM, OFF(osc_conf_coordination, type), "none", 0, 0, 0, coord_types, NULL,
     "nats: instances with the same config share the buildings through JetStream KV leases."},
    {"url", CONF_STR, OFF(osc_conf_coordination, url), NULL, 0, 0, 0, NULL, NULL,
     "NATS server URL(s), nats:// or tls://, comma-separated."},
    {"bucket", CONF_STR, OFF(osc_conf_coordination, bucket), "osconnect_presence", 0, 0, 0, NULL,
     NULL, "JetStream KV bucket holding the leases (created when missing)."},
    {"creds_file", CONF_STR, OFF(osc_conf_coordination, creds_file), NULL, 0, 0, 0, NULL, NULL,
     "NATS credentials file (JWT and NKey seed)."},
    {"token", CONF_STR, OFF(osc_conf_coordination, token), NULL, 0, 0, CONF_F_SECRET, NULL, NULL,
     "NATS authorization token."},
    {"ca_file", CONF_STR, OFF(osc_conf_coordination, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "PEM CA bundle to verify the NATS server with (turns TLS on)."},
    {"verify_tls", CONF_BOOL, OFF(osc_conf_coordination, verify_tls), "true", 0, 0, 0, NULL, NULL,
     "Verify the NATS server's TLS certificate."},
};

static const struct conf_section coordination_section = {
    "coordination", coordination_keys, N(coordination_keys), sizeof(struct osc_conf_coordination),
    coordination_check};

/* ---- presence --------------------------------------------------------- */

static int presence_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_presence *p = obj;

    if (p->meta.present && p->buildings.n == 0)
        return conf_fail(ctx, "buildings", err, "list at least one Mapped building id");
    for (size_t i = 0; p->coordination.meta.present && i < p->buildings.n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->buildings.v[i], p->buildings.v[j]) == 0)
                return conf_fail(ctx, "buildings", err,
                                 "%s is listed twice (each building is leased once)",
                                 p->buildings.v[i]);
    /* a lease lives one interval; the KV store's smallest age is a second */
    if (p->coordination.meta.present && p->interval_ms < 1000)
        return conf_fail(ctx, "interval", err,
                         "with coordination the interval must be at least 1s (it is the lease "
                         "lifetime), got %lldms",
                         (long long)p->interval_ms);
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
    {"coordination", CONF_SECTION, OFF(osc_conf_presence, coordination), NULL, 0, 0, 0, NULL,
     &coordination_section,
     "Share the buildings among several `osconnect run` with this config: each building is "
     "polled by one live instance."},
};

static const struct conf_section presence_section = {
    "presence", presence_keys, N(presence_keys), sizeof(struct osc_conf_presence), presence_check};

/* ---- status, log ------------------------------------------------------ */

/* A host name: labels of letters, digits and '-', 1 to 63 each, 253 in all. */
static int is_host_name(const char *h, size_t n)
{
    size_t label = 0;

    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return 0;
            label = 0;
        } else if (((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') || c == '-') {
            if (label == 0 && c == '-')
                return 0;
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return h[n - 1] != '-';
}

/* HOST:PORT with an IPv4 address, [IPv6] or a host name, and a port from 0 to 65535. */
static int status_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    const char *l = ((struct osc_conf_status *)obj)->listen, *colon;
    char host[256];
    size_t hl;
    int64_t port;
    int ok = 0;
    unsigned char addr[16];

    if (l[0] == '[') {
        const char *close = strchr(l, ']');
        hl = close ? (size_t)(close - l - 1) : 0;
        colon = close && close[1] == ':' ? close + 1 : NULL;
        if (colon && hl > 0 && hl < sizeof(host)) {
            memcpy(host, l + 1, hl);
            host[hl] = '\0';
            ok = inet_pton(AF_INET6, host, addr) == 1;
        }
    } else if ((colon = strchr(l, ':')) != NULL) {
        hl = (size_t)(colon - l);
        ok = hl > 0 && hl < sizeof(host);
        if (ok) {
            memcpy(host, l, hl);
            host[hl] = '\0';
            /* all digits and dots: it has to be an IPv4 address, not a "name" */
            ok = strspn(host, "0123456789.") == hl ? inet_pton(AF_INET, host, addr) == 1
                                                   : is_host_name(host, hl);
        }
    }
    if (!ok || !colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
        osc_parse_int(colon + 1, 0, 65535, &port))
        return conf_fail(ctx, "listen", err,
                         "expected HOST:PORT with an IPv4 address, [IPv6] or a host name and a "
                         "port from 0 to 65535 (such as 127.0.0.1:9464), got '%s'",
                         l);
    return 0;
}

static const struct conf_key status_keys[] = {
    {"listen", CONF_STR, OFF(osc_conf_status, listen), "127.0.0.1:9464", 0, 0, 0, NULL, NULL,
     "HOST:PORT of /healthz and /metrics for `run`: IPv4, [IPv6] or a name; port 0 picks one."},
    {"enabled", CONF_BOOL, OFF(osc_conf_status, enabled), "true", 0, 0, 0, NULL, NULL,
     "Serve the status endpoint."},
};

static const struct conf_section status_section = {"status", status_keys, N(status_keys),
                                                   sizeof(struct osc_conf_status), status_check};

static const struct conf_key log_keys[] = {
    {"level", CONF_ENUM, OFF(osc_conf_log, level), "info", 0, 0, 0, log_levels, NULL,
     "error, warn, info or debug."},
    {"format", CONF_ENUM, OFF(osc_conf_log, format), "text", 0, 0, 0, log_formats, NULL,
     "text, or json for log shippers."},
};

static const struct conf_section log_section = {"log", log_keys, N(log_keys),
                                                sizeof(struct osc_conf_log), NULL};

/* ---- destinations ----------------------------------------------------- */

#define T_M   CONF_T_MANUAL
#define T_U   CONF_T_UPSERT
#define T_T   CONF_T_TRIGGER
#define T_ALL CONF_T_ALL

/* Why a template ignores a key it does not use, indexed by enum osc_conf_template. */
static const char *const template_why[] = {
    "it sends the records as they are: no field mapping, staging area or source",
    "it always sends a JSON array of employee records",
    "it sends one POST Source=<source_name> with no records and no extra headers",
};

/* The T_* row flags say which templates use a key; destination_check refuses the rest. */
static const struct conf_key batch_keys[] = {
    {"enabled", CONF_BOOL, OFF(osc_conf_batch, enabled), "false", 0, 0, T_M, NULL, NULL,
     "Send several records per request; false (the default) sends each record as the body."},
    {"size", CONF_INT, OFF(osc_conf_batch, size), "100", 1, 100000, T_M | T_U, NULL, NULL,
     "Records per request."},
    {"max_bytes", CONF_SIZE, OFF(osc_conf_batch, max_bytes), "5MiB", 256, 1024LL * 1024 * 1024,
     T_M | T_U, NULL, NULL, "Largest request body; a batch is cut before it grows past this."},
    {"grouping", CONF_ENUM, OFF(osc_conf_batch, grouping), "array", 0, 0, T_M, groupings, NULL,
     "array (JSON array body), property (records under property_name) or code (Lua)."},
    {"property_name", CONF_STR, OFF(osc_conf_batch, property_name), NULL, 0, 0, T_M, NULL, NULL,
     "grouping: property: the body property that holds the records."},
    {"other_props", CONF_JSON, OFF(osc_conf_batch, other_props), NULL, 0, 0, T_M, NULL, NULL,
     "grouping: property: more properties merged into the body."},
    {"code", CONF_STR, OFF(osc_conf_batch, code), NULL, 0, 0, T_M, NULL, NULL,
     "grouping: code: inline Lua 5.4 defining batch(records) -> body, content_type."},
    {"code_file", CONF_STR, OFF(osc_conf_batch, code_file), NULL, 0, 0, T_M, NULL, NULL,
     "grouping: code: a Lua file defining batch(records)."},
};

static const struct conf_section batch_section = {"batch", batch_keys, N(batch_keys),
                                                  sizeof(struct osc_conf_batch), NULL};

/* ---- destination source (osconnect run) ------------------------------- */

/* Which source type uses each key of the source section; 0: every type. */
static const struct {
    const char *key;
    int type;
} source_key_types[] = {
    {"path", OSC_CONF_SOURCE_SPOOL},           {"url", OSC_CONF_SOURCE_NATS},
    {"stream", OSC_CONF_SOURCE_NATS},          {"subject", OSC_CONF_SOURCE_NATS},
    {"durable", OSC_CONF_SOURCE_NATS},         {"creds_file", OSC_CONF_SOURCE_NATS},
    {"token", OSC_CONF_SOURCE_NATS},           {"ack_wait", OSC_CONF_SOURCE_NATS},
    {"max_ack_pending", OSC_CONF_SOURCE_NATS}, {"ca_file", OSC_CONF_SOURCE_NATS},
    {"verify_tls", OSC_CONF_SOURCE_NATS},      {"ingest_token", OSC_CONF_SOURCE_HTTP},
    {"max_body", OSC_CONF_SOURCE_HTTP},        {"queue_max_bytes", OSC_CONF_SOURCE_HTTP},
};

static int source_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_source *s = obj;
    int rc;

    if (!s->meta.present)
        return 0;
    if (s->type == OSC_CONF_SOURCE_NONE) {
        /* type: none (or no type) with settings is a source half written */
        for (size_t i = 0; i < N(source_key_types); i++)
            if (conf_map_get(ctx->doc, ctx->node, source_key_types[i].key, NULL))
                return conf_fail(ctx, "type", err, "required: spool, http or nats");
        return 0;
    }
    for (size_t i = 0; i < N(source_key_types); i++)
        if (source_key_types[i].type != s->type &&
            conf_map_get(ctx->doc, ctx->node, source_key_types[i].key, NULL))
            return conf_fail(ctx, source_key_types[i].key, err, "used only with type: %s",
                             source_types[source_key_types[i].type]);
    switch (s->type) {
    case OSC_CONF_SOURCE_SPOOL:
        if (!s->path)
            return conf_fail(ctx, "path", err,
                             "required: the folder files are renamed into for delivery");
        break;
    case OSC_CONF_SOURCE_HTTP:
        if (!s->ingest_token)
            return conf_fail(ctx, "ingest_token", err,
                             "required: the bearer token POST /ingest/... must present (e.g. "
                             "${OSCONNECT_INGEST_TOKEN})");
        if (s->max_body > s->queue_max_bytes)
            return conf_fail(ctx, "max_body", err,
                             "max_body (%lld bytes) is larger than queue_max_bytes (%lld bytes)",
                             (long long)s->max_body, (long long)s->queue_max_bytes);
        break;
    case OSC_CONF_SOURCE_NATS:
        if (!s->url)
            return conf_fail(ctx, "url", err,
                             "required: the NATS server(s), e.g. nats://127.0.0.1:4222");
        if (!s->stream)
            return conf_fail(ctx, "stream", err, "required: the JetStream stream to consume");
        if ((rc = check_nats_url(ctx, "url", s->url, err)) ||
            (rc = check_js_name(ctx, "stream", s->stream, 0, err)) ||
            (s->durable && (rc = check_js_name(ctx, "durable", s->durable, 0, err))))
            return rc;
        if (s->ca_file && (rc = check_ca_file(ctx, "ca_file", s->ca_file, err)))
            return rc;
        break;
    }
    return 0;
}

static const struct conf_key source_keys[] = {
    {"type", CONF_ENUM, OFF(osc_conf_source, type), "none", 0, 0, 0, source_types, NULL,
     "spool (a folder), http (POST /ingest/NAME on status.listen) or nats (JetStream)."},
    {"path", CONF_STR, OFF(osc_conf_source, path), NULL, 0, 0, 0, NULL, NULL,
     "spool: the folder; a file renamed into it is delivered, then moved to done/ or failed/."},
    {"url", CONF_STR, OFF(osc_conf_source, url), NULL, 0, 0, 0, NULL, NULL,
     "nats: server URL(s), nats:// or tls://, comma-separated."},
    {"stream", CONF_STR, OFF(osc_conf_source, stream), NULL, 0, 0, 0, NULL, NULL,
     "nats: the JetStream stream (created with subject when missing)."},
    {"subject", CONF_STR, OFF(osc_conf_source, subject), NULL, 0, 0, 0, NULL, NULL,
     "nats: the consumer's filter subject; default every subject of the stream."},
    {"durable", CONF_STR, OFF(osc_conf_source, durable), NULL, 0, 0, 0, NULL, NULL,
     "nats: durable consumer name shared by every instance (default osconnect_NAME)."},
    {"creds_file", CONF_STR, OFF(osc_conf_source, creds_file), NULL, 0, 0, 0, NULL, NULL,
     "nats: credentials file (JWT and NKey seed)."},
    {"token", CONF_STR, OFF(osc_conf_source, token), NULL, 0, 0, CONF_F_SECRET, NULL, NULL,
     "nats: authorization token."},
    {"ack_wait", CONF_DURATION, OFF(osc_conf_source, ack_wait_ms), "30s", 1000, DAY_MS, 0, NULL,
     NULL, "nats: an unacknowledged message is redelivered (to any instance) after this long."},
    {"max_ack_pending", CONF_INT, OFF(osc_conf_source, max_ack_pending), "1000", 1, 1000000, 0,
     NULL, NULL, "nats: messages delivered and not yet acknowledged, per consumer."},
    {"ca_file", CONF_STR, OFF(osc_conf_source, ca_file), NULL, 0, 0, 0, NULL, NULL,
     "nats: PEM CA bundle to verify the server with (turns TLS on)."},
    {"verify_tls", CONF_BOOL, OFF(osc_conf_source, verify_tls), "true", 0, 0, 0, NULL, NULL,
     "nats: verify the server's TLS certificate."},
    {"ingest_token", CONF_STR, OFF(osc_conf_source, ingest_token), NULL, 0, 0, CONF_F_SECRET, NULL,
     NULL, "http: the token clients send as Authorization: Bearer TOKEN."},
    {"max_body", CONF_SIZE, OFF(osc_conf_source, max_body), "16MiB", 1024, 1024LL * 1024 * 1024, 0,
     NULL, NULL, "http: largest request body (413 beyond it)."},
    {"queue_max_bytes", CONF_SIZE, OFF(osc_conf_source, queue_max_bytes), "1GiB", 1024,
     1024LL * 1024 * 1024 * 1024, 0, NULL, NULL,
     "http: bodies waiting for delivery on disk (429 with Retry-After beyond it)."},
};

static const struct conf_section source_section = {"source", source_keys, N(source_keys),
                                                   sizeof(struct osc_conf_source), source_check};

static const struct conf_section destination_section;

/* Manual batching: the grouping keys need batch.enabled, and form sends one record anyway. */
static int manual_batch_check(const struct osc_conf_destination *d, const struct conf_ctx *ctx,
                              struct osc_err *err)
{
    static const char *const need_enabled[] = {"size",        "grouping", "property_name",
                                               "other_props", "code",     "code_file"};
    const struct osc_conf_batch *b = &d->batch;
    char path[256];
    struct conf_ctx bctx = {ctx->file, ctx->doc, conf_map_get(ctx->doc, ctx->node, "batch", NULL),
                            path};

    snprintf(path, sizeof(path), "%s.batch", ctx->path);
    if (!b->enabled) {
        for (size_t i = 0; i < N(need_enabled); i++)
            if (conf_map_get(ctx->doc, bctx.node, need_enabled[i], NULL))
                return conf_fail(&bctx, need_enabled[i], err,
                                 "set batch.enabled: true to use it (a manual destination sends "
                                 "one record per request unless batching is enabled)");
        return 0;
    }
    if (d->format == OSC_CONF_FORMAT_FORM)
        return conf_fail(&bctx, "enabled", err,
                         "format form sends one record per request; batching needs format json "
                         "or ndjson");
    if (b->grouping == OSC_CONF_GROUPING_PROPERTY && !b->property_name)
        return conf_fail(&bctx, "property_name", err, "grouping: property needs property_name");
    if (b->grouping != OSC_CONF_GROUPING_PROPERTY &&
        (conf_map_get(ctx->doc, bctx.node, "property_name", NULL) ||
         conf_map_get(ctx->doc, bctx.node, "other_props", NULL)))
        return conf_fail(&bctx, b->property_name ? "property_name" : "other_props", err,
                         "used only with grouping: property");
    if (b->other_props && !json_is_object(b->other_props))
        return conf_fail(&bctx, "other_props", err, "expected a mapping of extra body properties");
    if (b->grouping == OSC_CONF_GROUPING_CODE && !b->code == !b->code_file)
        return conf_fail(&bctx, "code", err,
                         "grouping: code needs exactly one of code or code_file");
    if (b->grouping != OSC_CONF_GROUPING_CODE && (b->code || b->code_file))
        return conf_fail(&bctx, b->code ? "code" : "code_file", err,
                         "used only with grouping: code");
    return 0;
}

static int destination_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_conf_destination *d = obj;
    int rc;

    if ((rc = conf_check_template_keys(ctx, &destination_section, CONF_T_BIT(d->template_),
                                       osc_conf_template_name(d->template_),
                                       template_why[d->template_], err)))
        return rc;
    if (d->template_ == OSC_CONF_TEMPLATE_MANUAL && !d->url)
        return conf_fail(ctx, NULL, err, "a manual destination needs url (or set template)");
    for (size_t i = 0; i < d->headers.n; i++)
        if (strcasecmp(d->headers.keys[i], "authorization") == 0 ||
            strcasecmp(d->headers.keys[i], "apikey") == 0)
            return conf_fail(ctx, "headers", err,
                             "%s is set from officespace.api_key and cannot be overridden here",
                             d->headers.keys[i]);
    if (d->max_in_flight && conf_map_get(ctx->doc, ctx->node, "max_in_flight_limit", NULL))
        return conf_fail(ctx, "max_in_flight_limit", err,
                         "used only with max_in_flight: auto (max_in_flight is %lld)",
                         (long long)d->max_in_flight);
    if (d->template_ == OSC_CONF_TEMPLATE_MANUAL && (rc = manual_batch_check(d, ctx, err)))
        return rc;
    return 0;
}

static const struct conf_key destination_keys[] = {
    {"template", CONF_ENUM, OFF(osc_conf_destination, template_), "manual", 0, 0, T_ALL, templates,
     NULL, "upsert_employees, trigger_directory_import, or manual."},
    {"active", CONF_BOOL, OFF(osc_conf_destination, active), "true", 0, 0, T_ALL, NULL, NULL,
     "Inactive destinations are refused by send and skipped by run."},
    {"method", CONF_ENUM, OFF(osc_conf_destination, method), "POST", 0, 0, T_M, methods, NULL,
     "POST, PUT, PATCH or DELETE."},
    {"format", CONF_ENUM, OFF(osc_conf_destination, format), "json", 0, 0, T_M, formats, NULL,
     "Body encoding: json, form or ndjson."},
    {"url", CONF_STR, OFF(osc_conf_destination, url), NULL, 0, 0, T_ALL, NULL, NULL,
     "http(s) URL (may use {hostname}) or a path under the REST base; {field} is filled per "
     "record. Required for manual; overrides the template's path otherwise."},
    {"headers", CONF_MAP, OFF(osc_conf_destination, headers), NULL, 0, 0, CONF_F_MAPSTR | T_M | T_U,
     NULL, NULL, "Extra headers: a mapping or \"name:value,name2:value2\"."},
    {"exclude", CONF_LIST, OFF(osc_conf_destination, exclude), NULL, 0, 0, T_M | T_U, NULL, NULL,
     "Attributes removed before encoding: top-level names or dotted paths."},
    {"fields", CONF_MAP, OFF(osc_conf_destination, fields), NULL, 0, 0, T_U, NULL, NULL,
     "Input column -> OfficeSpace key, overriding the built-in mapping."},
    {"source_name", CONF_STR, OFF(osc_conf_destination, source_name), "osconnect", 0, 0, T_U | T_T,
     NULL, NULL, "Directory import source; tags every record and names the staging area."},
    {"clear_staging", CONF_BOOL, OFF(osc_conf_destination, clear_staging), "true", 0, 0, T_U, NULL,
     NULL, "Clear the source's staging area once before the first batch."},
    {"commit", CONF_STR, OFF(osc_conf_destination, commit), NULL, 0, 0, T_M | T_U, NULL, NULL,
     "A trigger_directory_import destination to run once every batch was accepted."},
    {"min_staged_ratio", CONF_RATIO, OFF(osc_conf_destination, min_staged_ratio), "0.6", 0, 0, T_U,
     NULL, NULL,
     "Commit guard: the import is not triggered when the run staged less than this share of the "
     "source's live employees."},
    {"batch", CONF_SECTION, OFF(osc_conf_destination, batch), NULL, 0, 0, T_M | T_U, NULL,
     &batch_section, "Batching and grouping."},
    {"retry", CONF_SECTION, OFF(osc_conf_destination, retry), NULL, 0, 0, T_ALL, NULL,
     &retry_section, "Retry policy."},
    {"max_retry_wait", CONF_DURATION, OFF(osc_conf_destination, max_retry_wait_ms), "5m", 0, DAY_MS,
     T_ALL, NULL, NULL, "Longest Retry-After honoured; longer waits dead-letter the batch."},
    {"response_webhook", CONF_STR, OFF(osc_conf_destination, response_webhook), NULL, 0, 0, T_ALL,
     NULL, NULL, "http(s) URL that receives a JSON report of every API call."},
    {"dead_letter", CONF_STR, OFF(osc_conf_destination, dead_letter), NULL, 0, 0, T_M | T_U, NULL,
     NULL, "JSON Lines file for rejected records (default: NAME.dead.jsonl)."},
    {"max_in_flight", CONF_INT, OFF(osc_conf_destination, max_in_flight), "auto", 1, 1024,
     CONF_F_AUTO | T_M | T_U, NULL, NULL,
     "Requests in flight at once, or auto: adapted to the server, up to max_in_flight_limit."},
    {"max_in_flight_limit", CONF_INT, OFF(osc_conf_destination, max_in_flight_limit), "64", 1, 1024,
     T_M | T_U, NULL, NULL, "Ceiling of max_in_flight: auto."},
    {"max_errors", CONF_INT, OFF(osc_conf_destination, max_errors), "1000", 0, 1000000000,
     T_M | T_U, NULL, NULL,
     "Malformed or unmappable records a run tolerates; one more stops it (exit 65)."},
    {"timeout", CONF_DURATION, OFF(osc_conf_destination, timeout_ms), "30s", 100, DAY_MS, T_ALL,
     NULL, NULL, "Whole-request timeout."},
    {"allow_insecure_http", CONF_BOOL, OFF(osc_conf_destination, allow_insecure_http), "false", 0,
     0, T_ALL, NULL, NULL,
     "Allow plain http:// to a host that is not loopback in url and response_webhook."},
    {"flush_interval", CONF_DURATION, OFF(osc_conf_destination, flush_interval_ms), "5s", 10,
     DAY_MS, T_M | T_U, NULL, NULL,
     "With a source: a batch that is not full is sent once it has been open this long."},
    {"source", CONF_SECTION, OFF(osc_conf_destination, source), NULL, 0, 0, T_M | T_U, NULL,
     &source_section, "Where `osconnect run` takes this destination's records from, continuously."},
};

static const struct conf_section destination_section = {
    "destination", destination_keys, N(destination_keys), sizeof(struct osc_conf_destination),
    destination_check};

/*
 * The destination's URLs, checked once the REST base is known: {hostname}
 * filled from the config, each {field} by a stand-in, then read by
 * curl_url(). A path goes under the REST base. *gets_key says whether the
 * OfficeSpace key is sent there (the REST base or an officespacesoftware.com
 * host), which is what makes api_key required.
 */
static int destination_urls(struct osc_config *c, struct osc_conf_destination *d,
                            const struct conf_ctx *ctx, const struct osc_url *base, int *gets_key,
                            struct osc_err *err)
{
    struct osc_buf b;
    struct osc_url u = {0};
    const char *p = d->url;
    int rc = 0, field_in_host = 0;

    *gets_key = 1; /* the templates' own paths are under the base */
    if (d->response_webhook) {
        if ((rc = check_url(ctx, "response_webhook", d->response_webhook, d->allow_insecure_http,
                            NULL, err)))
            return rc;
        lower_scheme(d->response_webhook);
    }
    if (!d->url)
        return 0;
    lower_scheme(d->url);
    osc_buf_init(&b, 64 * 1024);
    if (!scheme_len(d->url))
        rc = osc_buf_printf(&b, "%s%s", c->officespace.rest_base, d->url[0] == '/' ? "" : "/");
    while (rc == 0 && *p) {
        const char *open = strchr(p, '{'), *close = open ? strchr(open, '}') : NULL;
        if (!open) {
            rc = osc_buf_adds(&b, p);
            break;
        }
        if (!close || close == open + 1 || memchr(open + 1, '{', (size_t)(close - open - 1))) {
            rc = conf_fail(ctx, "url", err, "unbalanced or empty {} in the URL");
            goto out;
        }
        if ((rc = osc_buf_add(&b, p, (size_t)(open - p))))
            break;
        if (close - open == 9 && strncmp(open, "{hostname}", 10) == 0) {
            if (!c->officespace.hostname) {
                rc = conf_fail(ctx, "url", err,
                               "uses {hostname} but officespace.hostname is not set");
                goto out;
            }
            rc = osc_buf_adds(&b, c->officespace.hostname);
        } else {
            /* as the engine decides: a field before the host is complete could move it,
             * so that URL never gets the key */
            const char *sep = strstr(osc_buf_str(&b), "://");
            if (sep && !sep[3 + strcspn(sep + 3, "/?#")])
                field_in_host = 1;
            rc = osc_buf_adds(&b, "x"); /* a field's value, only known per record */
        }
        p = close + 1;
    }
    if (rc) {
        rc = rc == OSC_ETOOBIG ? conf_fail(ctx, "url", err, "longer than 64 KiB") : OSC_ENOMEM;
        goto out;
    }
    if (!scheme_len(d->url)) {
        struct osc_err uerr = {0};
        if ((rc = osc_url_parse(osc_buf_str(&b), &u, &uerr)))
            rc = rc == OSC_ENOMEM
                     ? rc
                     : conf_fail(ctx, "url", err, "not a path under the REST base: %s", uerr.msg);
        goto out;
    }
    if ((rc = check_url(ctx, "url", osc_buf_str(&b), d->allow_insecure_http, &u, err)))
        goto out;
    *gets_key = !field_in_host && osc_url_gets_officespace_key(&u, base);
out:
    osc_url_free(&u);
    osc_buf_free(&b);
    return rc;
}

/* ---- root ------------------------------------------------------------- */

/* A destination's commit must name a trigger for the source it stages. */
static int commit_check(const struct osc_config *c, const struct osc_conf_destination *d,
                        const struct conf_ctx *ctx, struct osc_err *err)
{
    const struct osc_conf_destination *t = osc_config_destination(c, d->commit);

    if (!t)
        return conf_fail(ctx, "commit", err, "names unknown destination '%s'", d->commit);
    if (t->template_ != OSC_CONF_TEMPLATE_TRIGGER_DIRECTORY_IMPORT)
        return conf_fail(ctx, "commit", err,
                         "destination %s has template %s; a commit must be "
                         "trigger_directory_import",
                         d->commit, osc_conf_template_name(t->template_));
    if (d->template_ == OSC_CONF_TEMPLATE_UPSERT_EMPLOYEES &&
        strcmp(t->source_name, d->source_name) != 0)
        return conf_fail(ctx, "commit", err,
                         "this destination stages source '%s' but %s triggers source '%s'; set "
                         "the same source_name on both",
                         d->source_name, d->commit, t->source_name);
    return 0;
}

/*
 * What the whole file needs, once every section is read: the destinations'
 * URLs and commits, and the credentials of the parts that are used (the
 * REST key only when a destination sends to OfficeSpace REST, the GraphQL
 * key and the Mapped token only with presence).
 */
static int root_check(void *obj, const struct conf_ctx *ctx, struct osc_err *err)
{
    struct osc_config *c = obj;
    struct osc_conf_destination *d = c->destinations.items;
    yaml_node_t *dests = conf_map_get(ctx->doc, ctx->node, "destinations", NULL);
    struct conf_ctx os = {ctx->file, ctx->doc,
                          conf_map_get(ctx->doc, ctx->node, "officespace", NULL), "officespace"};
    struct conf_ctx mp = {ctx->file, ctx->doc, conf_map_get(ctx->doc, ctx->node, "mapped", NULL),
                          "mapped"};
    struct osc_url base = {0};
    const char *rest_user = NULL;
    int rc;

    if (!c->officespace.meta.present)
        return conf_fail(ctx, NULL, err, "the officespace: section is required");
    if (c->presence.meta.present && !c->mapped.meta.present)
        return conf_fail(ctx, "presence", err, "presence needs a mapped: section");
    if ((rc = osc_url_parse(c->officespace.rest_base, &base, NULL)))
        return rc == OSC_ENOMEM ? rc : conf_fail(&os, NULL, err, "internal: REST base not a URL");
    for (size_t i = 0; i < c->destinations.n && rc == 0; i++) {
        char path[300];
        struct conf_ctx dctx = {
            ctx->file, ctx->doc,
            yaml_document_get_node(ctx->doc, dests->data.mapping.pairs.start[i].value), path};
        int gets_key = 0;
        snprintf(path, sizeof(path), "destinations.%s", c->destinations.names[i]);
        d[i].name = c->destinations.names[i];
        if (d[i].commit && (rc = commit_check(c, &d[i], &dctx, err)))
            break;
        if ((rc = destination_urls(c, &d[i], &dctx, &base, &gets_key, err)))
            break;
        if (gets_key && !rest_user)
            rest_user = d[i].name;
    }
    osc_url_free(&base);
    if (rc)
        return rc;
    c->uses_rest = rest_user != NULL;
    if (rest_user && !c->officespace.api_key)
        return conf_fail(&os, NULL, err,
                         "set api_key (e.g. ${OFFICESPACE_API_KEY}) or api_key_file: destination "
                         "%s sends to the OfficeSpace REST API",
                         rest_user);
    if (c->presence.meta.present && !c->officespace.graphql_api_key)
        return conf_fail(&os, NULL, err,
                         "set graphql_api_key (or api_key): presence pushes go to OfficeSpace "
                         "GraphQL");
    if (c->presence.meta.present && !c->mapped.token)
        return conf_fail(&mp, NULL, err,
                         "set token (e.g. ${MAPPED_API_TOKEN}) or token_file: presence reads "
                         "Mapped");
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
