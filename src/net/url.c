/*
 * url.c - URL facts from curl_url(), the parser libcurl sends with.
 *
 * Invariant: every answer about a URL (scheme, host, loopback, gets the
 * key) is computed from the parts curl_url() extracted, never from the
 * text, so it holds for the host curl will actually connect to.
 */
#include "osc/url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OS_DOMAIN "officespacesoftware.com"

void osc_url_free(struct osc_url *u)
{
    if (!u)
        return;
    free(u->scheme);
    free(u->host);
    free(u->path);
    memset(u, 0, sizeof(*u));
}

/* A part curl has, copied into malloc'd memory; "" when curl has none. */
static int get_part(CURLU *h, CURLUPart what, unsigned flags, char **out)
{
    char *v = NULL;
    CURLUcode uc = curl_url_get(h, what, &v, flags);

    if (uc == CURLUE_OUT_OF_MEMORY)
        return OSC_ENOMEM;
    *out = strdup(uc == CURLUE_OK && v ? v : "");
    curl_free(v);
    return *out ? 0 : OSC_ENOMEM;
}

int osc_url_parse(const char *url, struct osc_url *out, struct osc_err *err)
{
    CURLU *h = curl_url();
    CURLUcode uc;
    char *port = NULL, *user = NULL, *password = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!h)
        return osc_err_set(err, OSC_ENOMEM, "out of memory");
    /* NON_SUPPORT_SCHEME: ftp:// or file:// parse, so the caller can name the scheme */
    uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc == CURLUE_OUT_OF_MEMORY) {
        rc = osc_err_set(err, OSC_ENOMEM, "out of memory");
        goto out;
    }
    if (uc != CURLUE_OK) {
        rc = osc_err_set(err, OSC_EINVAL, "not a URL (%s)", curl_url_strerror(uc));
        goto out;
    }
    if ((rc = get_part(h, CURLUPART_SCHEME, 0, &out->scheme)) ||
        (rc = get_part(h, CURLUPART_HOST, 0, &out->host)) ||
        (rc = get_part(h, CURLUPART_PORT, CURLU_DEFAULT_PORT, &port)) ||
        (rc = get_part(h, CURLUPART_PATH, 0, &out->path)) ||
        (rc = get_part(h, CURLUPART_USER, 0, &user)) ||
        (rc = get_part(h, CURLUPART_PASSWORD, 0, &password))) {
        osc_err_set(err, rc, "out of memory");
        goto out;
    }
    for (char *s = out->scheme; *s; s++)
        *s = (char)tolower((unsigned char)*s);
    out->port = port[0] ? strtol(port, NULL, 10) : 0;
    out->has_userinfo = user[0] || password[0];
out:
    free(port);
    free(user);
    free(password);
    curl_url_cleanup(h);
    if (rc)
        osc_url_free(out);
    return rc;
}

int osc_url_is_http(const struct osc_url *u)
{
    return u->scheme && (strcmp(u->scheme, "https") == 0 || strcmp(u->scheme, "http") == 0);
}

int osc_url_is_loopback(const struct osc_url *u)
{
    char addr[64];
    size_t n;
    struct in_addr a4;
    struct in6_addr a6;

    if (!u->host)
        return 0;
    if (strcasecmp(u->host, "localhost") == 0 || strcasecmp(u->host, "localhost.") == 0)
        return 1;
    if (inet_pton(AF_INET, u->host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    n = strlen(u->host);
    if (n < 3 || n - 2 >= sizeof(addr) || u->host[0] != '[' || u->host[n - 1] != ']')
        return 0;
    memcpy(addr, u->host + 1, n - 2);
    addr[n - 2] = '\0';
    if (inet_pton(AF_INET6, addr, &a6) != 1)
        return 0; /* a zone id ("[fe80::1%eth0]") is not loopback either */
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

/* path is base_path, or below it at a '/' ("/api" covers "/api" and "/api/x", not "/apix"). */
static int path_under(const char *path, const char *base_path)
{
    size_t n = strlen(base_path);

    while (n > 0 && base_path[n - 1] == '/')
        n--;
    return strncmp(path, base_path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int osc_url_gets_officespace_key(const struct osc_url *u, const struct osc_url *rest_base)
{
    size_t hl, dl = strlen(OS_DOMAIN);

    if (!u->host || u->has_userinfo)
        return 0;
    if (rest_base && rest_base->host && !rest_base->has_userinfo &&
        strcmp(u->scheme, rest_base->scheme) == 0 && strcasecmp(u->host, rest_base->host) == 0 &&
        u->port == rest_base->port && path_under(u->path, rest_base->path))
        return 1;
    hl = strlen(u->host);
    if (hl == dl)
        return strcasecmp(u->host, OS_DOMAIN) == 0;
    return hl > dl + 1 && u->host[hl - dl - 1] == '.' &&
           strcasecmp(u->host + hl - dl, OS_DOMAIN) == 0;
}
