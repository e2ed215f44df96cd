/*
 * ingest.c - bench helper: POST generated employee records to an `osconnect
 * run` http source (POST /ingest/NAME) as fast as it takes them, with a
 * number of connections in parallel (libcurl multi), and report what the
 * 202s cost. A 429 is retried after a short pause (the queue was full).
 *
 * Usage: bench_ingest URL TOKEN BODIES RECORDS_PER_BODY CONNECTIONS
 * Prints: "posted B bodies (R records) in S s: X bodies/s, Y records/s;
 *          202 x A, 429 x Q, other x O"
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct conn {
    CURL *e;
    char *body;
    long id;
    int busy;
};

static size_t discard(char *d, size_t sz, size_t n, void *ud)
{
    (void)d;
    (void)ud;
    return sz * n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Body number id: per records JSON Lines of employees with unique ids. */
static char *make_body(long id, long per)
{
    size_t cap = (size_t)per * 200 + 1, len = 0;
    char *b = malloc(cap);

    if (!b)
        return NULL;
    for (long r = 0; r < per; r++)
        len += (size_t)snprintf(b + len, cap - len,
                                "{\"EmployeeId\":\"I%ld-%ld\",\"FirstName\":\"Ada\",\"LastName\":"
                                "\"Lovelace\",\"Email\":\"i%ld-%ld@example.com\",\"Title\":"
                                "\"Engineer\"}\n",
                                id, r, id, r);
    return b;
}

int main(int argc, char **argv)
{
    CURLM *m;
    struct conn *c;
    struct curl_slist *h = NULL;
    char auth[512];
    long bodies, per, nconn, next = 0, done = 0, n202 = 0, n429 = 0, other = 0;
    double t0;

    if (argc != 6 || (bodies = atol(argv[3])) <= 0 || (per = atol(argv[4])) <= 0 ||
        (nconn = atol(argv[5])) <= 0) {
        fprintf(stderr, "usage: bench_ingest URL TOKEN BODIES RECORDS_PER_BODY CONNECTIONS\n");
        return 64;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", argv[2]);
    h = curl_slist_append(h, auth);
    h = curl_slist_append(h, "Content-Type: application/x-ndjson");
    h = curl_slist_append(h, "Expect:");
    m = curl_multi_init();
    c = calloc((size_t)nconn, sizeof(*c));
    if (!m || !c)
        return 71;
    t0 = now_s();
    while (done < bodies) {
        CURLMsg *msg;
        int running, left;
        for (long i = 0; i < nconn && next < bodies; i++) {
            if (c[i].busy)
                continue;
            if (!c[i].e)
                c[i].e = curl_easy_init();
            free(c[i].body);
            c[i].id = next++;
            c[i].body = make_body(c[i].id, per);
            curl_easy_setopt(c[i].e, CURLOPT_URL, argv[1]);
            curl_easy_setopt(c[i].e, CURLOPT_HTTPHEADER, h);
            curl_easy_setopt(c[i].e, CURLOPT_POSTFIELDS, c[i].body);
            curl_easy_setopt(c[i].e, CURLOPT_WRITEFUNCTION, discard);
            curl_easy_setopt(c[i].e, CURLOPT_PRIVATE, &c[i]);
            curl_multi_add_handle(m, c[i].e);
            c[i].busy = 1;
        }
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            struct conn *k;
            long status = 0;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&k);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(m, msg->easy_handle);
            if (status == 429) {
                /* the queue is full: the same body again after a pause */
                struct timespec ts = {0, 50 * 1000000L};
                n429++;
                nanosleep(&ts, NULL);
                curl_multi_add_handle(m, k->e);
                continue;
            }
            if (status == 202)
                n202++;
            else
                other++;
            k->busy = 0;
            done++;
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    {
        double s = now_s() - t0;
        printf(
            "posted %ld bodies (%ld records) in %.2f s: %.0f bodies/s, %.0f records/s; 202 x %ld, "
            "429 x %ld, other x %ld\n",
            bodies, bodies * per, s, (double)bodies / s, (double)(bodies * per) / s, n202, n429,
            other);
    }
    for (long i = 0; i < nconn; i++) {
        if (c[i].e)
            curl_easy_cleanup(c[i].e);
        free(c[i].body);
    }
    free(c);
    curl_multi_cleanup(m);
    curl_slist_free_all(h);
    curl_global_cleanup();
    return other ? 70 : 0;
}
