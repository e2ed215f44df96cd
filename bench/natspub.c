/*
 * natspub.c - bench helper: publish every line of a JSON Lines file as one
 * JetStream message (a record each), creating the stream when missing, and
 * wait for every publish ack. Prints "published N in S s".
 *
 * Usage: bench_natspub URL STREAM SUBJECT FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "osc/nats.h"

int main(int argc, char **argv)
{
    struct osc_nats_opts o;
    struct osc_nats *n = NULL;
    struct osc_err err = {0};
    struct timespec t0, t1;
    char *line = NULL;
    size_t cap = 0, count = 0;
    ssize_t len;
    FILE *f;
    int rc = 0;

    if (argc != 5) {
        fprintf(stderr, "usage: bench_natspub URL STREAM SUBJECT FILE\n");
        return 64;
    }
    if (!(f = fopen(argv[4], "r"))) {
        perror(argv[4]);
        return 66;
    }
    memset(&o, 0, sizeof(o));
    o.conn.url = argv[1];
    o.conn.request_timeout_ms = 30000;
    o.stream = argv[2];
    o.subject = argv[3];
    o.create_stream = 1;
    if (osc_nats_open(&o, &n, &err)) {
        fprintf(stderr, "bench_natspub: %s\n", err.msg);
        fclose(f);
        return 69;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while ((len = getline(&line, &cap, f)) > 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (!len)
            continue;
        if ((rc = osc_nats_publish_async(n, argv[3], line, (size_t)len, &err)))
            break;
        count++;
    }
    if (!rc)
        rc = osc_nats_publish_wait(n, 60000, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc)
        fprintf(stderr, "bench_natspub: %s\n", err.msg);
    else
        printf("published %zu in %.2f s\n", count,
               (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(line);
    fclose(f);
    osc_nats_close(n);
    return rc ? 70 : 0;
}
