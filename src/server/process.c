/*
 * process.c - the standard Prometheus process metrics, read from /proc/self
 * at each scrape (as the official client libraries do): CPU time, resident
 * and virtual memory, open and maximum file descriptors, start time.
 *
 * Invariant: a value that cannot be read is left out (its family too), never
 * reported as 0; nothing is cached, so every scrape shows the process now.
 */
#include "osc/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The fields of /proc/self/stat this file uses. */
struct pstat {
    unsigned long long utime, stime; /* clock ticks */
    unsigned long long starttime;    /* clock ticks after boot */
    unsigned long long vsize;        /* bytes */
    long long rss;                   /* pages */
};

/* Read path (small) into buf; the length, or -1. */
static long slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return -1;
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

/* 0 when /proc/self/stat was read (proc(5): fields 14, 15, 22, 23, 24). */
static int read_stat(struct pstat *ps)
{
    char buf[2048], *p;

    if (slurp("/proc/self/stat", buf, sizeof(buf)) <= 0)
        return -1;
    /* the command name (field 2) may hold spaces and ')': the fields start after the last ')' */
    if (!(p = strrchr(buf, ')')))
        return -1;
    /* field 3 is the state; skip 3..13, then read 14 and 15, skip 16..21, read 22..24 */
    if (sscanf(p + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &ps->utime, &ps->stime, &ps->starttime, &ps->vsize, &ps->rss) != 5)
        return -1;
    return 0;
}

/* The boot time (Unix seconds) from /proc/stat's btime line; -1 when unknown. */
static long long boot_time(void)
{
    char buf[16384], *p;
    long long bt;

    if (slurp("/proc/stat", buf, sizeof(buf)) <= 0 || !(p = strstr(buf, "\nbtime ")) ||
        sscanf(p + 7, "%lld", &bt) != 1)
        return -1;
    return bt;
}

/* Entries of /proc/self/fd, less the one opendir() holds; -1 when unreadable. */
static long open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (!dir)
        return -1;
    while ((e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1;
}

static int family(struct osc_buf *b, const char *name, const char *type, const char *help,
                  const char *value)
{
    return osc_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name,
                          value);
}

int osc_metrics_render_process(struct osc_buf *b)
{
    struct pstat ps;
    struct rlimit rl;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE), fds = open_fds();
    long long bt = boot_time();
    char v[64];
    int rc = 0;

    if (read_stat(&ps) == 0 && tick > 0) {
        snprintf(v, sizeof(v), "%.2f", (double)(ps.utime + ps.stime) / (double)tick);
        rc = family(b, "process_cpu_seconds_total", "counter",
                    "Total user and system CPU time spent in seconds.", v);
        if (!rc && page > 0) {
            snprintf(v, sizeof(v), "%lld", ps.rss * (long long)page);
            rc = family(b, "process_resident_memory_bytes", "gauge",
                        "Resident memory size in bytes.", v);
        }
        if (!rc) {
            snprintf(v, sizeof(v), "%llu", ps.vsize);
            rc = family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                        v);
        }
        if (!rc && bt >= 0) {
            snprintf(v, sizeof(v), "%.2f", (double)bt + (double)ps.starttime / (double)tick);
            rc = family(b, "process_start_time_seconds", "gauge",
                        "Start time of the process since unix epoch in seconds.", v);
        }
    }
    if (!rc && fds >= 0) {
        snprintf(v, sizeof(v), "%ld", fds);
        rc = family(b, "process_open_fds", "gauge", "Number of open file descriptors.", v);
    }
    if (!rc && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        snprintf(v, sizeof(v), "%llu", (unsigned long long)rl.rlim_cur);
        rc = family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.", v);
    }
    return rc;
}
