/*
 * url.h - URLs read with libcurl's URL API (curl_url), the parser that sends.
 *
 * Deciding things about a URL (is it https, is it loopback, does it get the
 * OfficeSpace key) with the same parser that later sends the request means
 * the decision and the request can never disagree on the host: a string
 * comparison can be fooled by user info, case or an odd port, curl_url()
 * cannot, because it is what curl itself connects to.
 */
#ifndef OSC_URL_H
#define OSC_URL_H

#include "osc/err.h"

struct osc_url {
    char *scheme;     /* lower case: "https", "http", "ftp", ... */
    char *host;       /* as curl has it; an IPv6 address in brackets: "[::1]" */
    long port;        /* the URL's port, or the scheme's default (443 for https) */
    char *path;       /* at least "/" */
    int has_userinfo; /* user or password in the authority */
};

/*
 * Parse an absolute URL. Schemes are not restricted here (the caller
 * decides); a URL without a scheme or without a host is an error. On
 * success *out owns its strings (free with osc_url_free()); on failure *out
 * is zeroed and err says what curl objected to, without echoing the URL
 * (it may carry a password). Returns 0, OSC_EINVAL or OSC_ENOMEM.
 */
int osc_url_parse(const char *url, struct osc_url *out, struct osc_err *err);

/* Free the strings of u and zero it. Accepts NULL and a zeroed struct. */
void osc_url_free(struct osc_url *u);

/* 1 for the schemes osconnect sends with: http and https. */
int osc_url_is_http(const struct osc_url *u);

/* 1 when the host is loopback: 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) or localhost. */
int osc_url_is_loopback(const struct osc_url *u);

/*
 * 1 when the OfficeSpace REST key may be sent to u: u is under rest_base
 * (same scheme, host in any case, port, and a path that is the base's path
 * or below it at a '/'), or u's host is officespacesoftware.com or ends in
 * .officespacesoftware.com. A URL with user info never gets the key (it was
 * written for someone else's server). rest_base may be NULL.
 */
int osc_url_gets_officespace_key(const struct osc_url *u, const struct osc_url *rest_base);

#endif
