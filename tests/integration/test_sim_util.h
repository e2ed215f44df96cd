/*
 * test_sim_util.h - hand-written HTTP for the simulator tests (included by
 * test_sim_*.c only): any method, any headers, the status, the curl result
 * code (to see resets and timeouts), a few response headers and the body.
 * The requests are written out in the tests, never produced by our client.
 * Functions are static inline so a test need not use all of them.
 */
#ifndef TEST_SIM_UTIL_H
#define TEST_SIM_UTIL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "harness.h"

#define MAPPED_AUTH      "Authorization: token " TH_SIM_MAPPED_TOKEN
#define REST_AUTH        "Authorization: Token token=" TH_SIM_OS_KEY
#define REST_AUTH_QUOTED "Authorization: Token token=\"" TH_SIM_OS_KEY "\""
#define GQL_AUTH         "apikey: " TH_SIM_OS_KEY

struct resp {
    long status; /* 0 when no response came */
    int curl_rc; /* CURLE_OK, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, ... */
    char *body;  /* malloc'd, NUL-terminated, never NULL after http() */
    size_t len;
    char retry_after[32];
    char www_auth[128];
    char ctype[96];
    long ms; /* how long the request took */
};

static inline size_t tsu_body(char *d, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    char *p = realloc(r->body, r->len + sz * n + 1);
    if (!p)
        return 0;
    memcpy(p + r->len, d, sz * n);
    r->len += sz * n;
    p[r->len] = '\0';
    r->body = p;
    return sz * n;
}

static inline void tsu_copy_header(const char *line, size_t n, const char *name, char *out,
                                   size_t cap)
{
    size_t k = strlen(name);
    if (n > k + 1 && strncasecmp(line, name, k) == 0 && line[k] == ':') {
        const char *v = line + k + 1;
        size_t m = n - k - 1;
        while (m && (*v == ' ' || *v == '\t'))
            v++, m--;
        while (m && (v[m - 1] == '\r' || v[m - 1] == '\n'))
            m--;
        snprintf(out, cap, "%.*s", (int)m, v);
    }
}

static inline size_t tsu_header(char *d, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    tsu_copy_header(d, sz * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    tsu_copy_header(d, sz * n, "WWW-Authenticate", r->www_auth, sizeof(r->www_auth));
    tsu_copy_header(d, sz * n, "Content-Type", r->ctype, sizeof(r->ctype));
    return sz * n;
}

static inline long tsu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* One request; headers NULL-terminated (may be NULL); timeout_ms 0 = 20 s. */
static inline int http(const char *method, const char *url, const char *const *headers,
                       const char *body, long timeout_ms, struct resp *r)
{
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    long t0 = tsu_now_ms();

    memset(r, 0, sizeof(*r));
    r->body = calloc(1, 1);
    if (!e || !r->body)
        return -1;
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 20000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, tsu_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, tsu_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    r->curl_rc = (int)curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    r->ms = tsu_now_ms() - t0;
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return 0;
}

static inline void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* The body as JSON (new reference) or NULL. */
static inline json_t *resp_json(const struct resp *r) { return json_loads(r->body, 0, NULL); }

/* POST {"query": q, "variables": vars} with one auth header; returns the parsed body. */
static inline json_t *gql(const char *url, const char *auth, const char *q, json_t *vars,
                          long *status)
{
    const char *hdrs[] = {"Content-Type: application/json", auth, NULL};
    json_t *req = json_pack("{s:s}", "query", q), *out;
    char *body;
    struct resp r;

    if (vars)
        json_object_set(req, "variables", vars);
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    http("POST", url, auth ? hdrs : hdrs + 1, body, 0, &r);
    free(body);
    if (status)
        *status = r.status;
    out = resp_json(&r);
    resp_free(&r);
    return out;
}

/* url = base + path (static buffer per call site is the caller's). */
static inline const char *url_of(char *buf, size_t cap, const char *base, const char *path)
{
    snprintf(buf, cap, "%s%s", base, path);
    return buf;
}

/* The JSON at a path like "data.buildings.0.name" (borrowed), or NULL. */
static inline json_t *jpath(json_t *j, const char *path)
{
    char key[128];
    const char *p = path;

    while (j && *p) {
        size_t n = strcspn(p, ".");
        char *end;
        long idx;
        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        idx = strtol(key, &end, 10);
        if (json_is_array(j) && *end == '\0' && end != key)
            j = json_array_get(j, (size_t)idx);
        else
            j = json_object_get(j, key);
        p += n;
        if (*p == '.')
            p++;
    }
    return j;
}

static inline const char *jstr_at(json_t *j, const char *path)
{
    return json_string_value(jpath(j, path));
}

static inline long long jint_at(json_t *j, const char *path)
{
    json_t *v = jpath(j, path);
    return json_is_integer(v) ? (long long)json_integer_value(v) : -999999;
}

#endif
