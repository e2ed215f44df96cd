/*
 * sink.c - bench helper: an HTTP sink on 127.0.0.1 (libmicrohttpd, epoll,
 * a thread pool). Every request is read whole and answered 200 "{}", at
 * once or after a fixed delay; optionally a concurrency limit answers 429
 * to requests beyond it. Prints "sink http://127.0.0.1:PORT" when ready;
 * on SIGTERM or SIGINT prints
 *   requests N bytes B
 *   max_in_flight M answered_200 A answered_429 L
 * and exits.
 *
 * Usage: bench_sink [--delay-ms D] [--limit N] [--retry-after S] [THREADS]
 *
 * A request is in flight from the moment it has been read whole until its
 * answer is queued. Delays do not hold a thread: the connection is
 * suspended (MHD_suspend_connection) and one timer thread resumes each one
 * when its time has come, so thousands can wait at once (up to CONN_LIMIT
 * connections). All delays are equal, so the timer queue is a FIFO.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CONN_LIMIT 4000u

static atomic_ullong requests, bytes, answered_200, answered_429;
static atomic_long in_flight, max_in_flight;
static long delay_ms, limit, retry_after = -1;

/* One request; also its node in the timer queue while suspended. */
struct rq {
    struct rq *next;
    struct MHD_Connection *conn;
    struct timespec due;
    int admitted; /* counted in in_flight, not answered yet */
    int resumed;  /* the next call comes after the delay */
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv;
static struct rq *q_head, *q_tail;
static int q_stop;

static int due_now(const struct timespec *due)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > due->tv_sec || (now.tv_sec == due->tv_sec && now.tv_nsec >= due->tv_nsec);
}

/* Resume every suspended connection whose delay is over; at stop, all of them. */
static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q_mu);
    for (;;) {
        struct rq *r = q_head;
        if (!r) {
            if (q_stop)
                break;
            pthread_cond_wait(&q_cv, &q_mu);
            continue;
        }
        if (!q_stop && !due_now(&r->due)) {
            pthread_cond_timedwait(&q_cv, &q_mu, &r->due);
            continue;
        }
        struct MHD_Connection *c = r->conn; /* r may be freed once c is resumed */
        q_head = r->next;
        if (!q_head)
            q_tail = NULL;
        pthread_mutex_unlock(&q_mu);
        MHD_resume_connection(c);
        pthread_mutex_lock(&q_mu);
    }
    pthread_mutex_unlock(&q_mu);
    return NULL;
}

static void enqueue(struct rq *r, struct MHD_Connection *c)
{
    clock_gettime(CLOCK_MONOTONIC, &r->due);
    r->due.tv_sec += delay_ms / 1000;
    r->due.tv_nsec += (delay_ms % 1000) * 1000000L;
    if (r->due.tv_nsec >= 1000000000L) {
        r->due.tv_sec++;
        r->due.tv_nsec -= 1000000000L;
    }
    r->conn = c;
    r->next = NULL;
    pthread_mutex_lock(&q_mu);
    if (q_tail)
        q_tail->next = r;
    else
        q_head = r;
    q_tail = r;
    pthread_cond_signal(&q_cv);
    pthread_mutex_unlock(&q_mu);
}

/* Take a place in flight; 0 when the limit is reached. */
static int admit(void)
{
    long cur = atomic_load(&in_flight), max;

    do {
        if (limit > 0 && cur >= limit)
            return 0;
    } while (!atomic_compare_exchange_weak(&in_flight, &cur, cur + 1));
    max = atomic_load(&max_in_flight);
    while (cur + 1 > max && !atomic_compare_exchange_weak(&max_in_flight, &max, cur + 1))
        ;
    return 1;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status)
{
    static const char ok[] = "{}", busy[] = "{\"error\":\"too many requests in flight\"}";
    char retry_hdr[24];
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = status == 200
               ? MHD_create_response_from_buffer(sizeof(ok) - 1, (void *)ok, MHD_RESPMEM_PERSISTENT)
               : MHD_create_response_from_buffer(sizeof(busy) - 1, (void *)busy,
                                                 MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (status == 429 && retry_after >= 0) {
        snprintf(retry_hdr, sizeof(retry_hdr), "%ld", retry_after);
        MHD_add_response_header(resp, "Retry-After", retry_hdr);
    }
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    atomic_fetch_add(status == 200 ? &answered_200 : &answered_429, 1);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    struct rq *r = *state;

    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r))))
            return MHD_NO;
        *state = r;
        return MHD_YES;
    }
    if (*upload_size) {
        atomic_fetch_add(&bytes, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (!r->resumed) {
        atomic_fetch_add(&requests, 1);
        if (!admit())
            return answer(c, 429);
        r->admitted = 1;
        if (delay_ms > 0) {
            r->resumed = 1;
            MHD_suspend_connection(c);
            enqueue(r, c);
            return MHD_YES;
        }
    }
    r->admitted = 0;
    atomic_fetch_sub(&in_flight, 1);
    return answer(c, 200);
}

static void completed(void *cls, struct MHD_Connection *c, void **state,
                      enum MHD_RequestTerminationCode toe)
{
    struct rq *r = *state;

    (void)cls, (void)c, (void)toe;
    if (r && r->admitted) /* the client left before its answer */
        atomic_fetch_sub(&in_flight, 1);
    free(r);
    *state = NULL;
}

static int opt_num(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || n < lo || n > hi) {
        fprintf(stderr, "bench_sink: %s needs a number from %ld to %ld\n", name, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

int main(int argc, char **argv)
{
    long threads = 2;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in addr;
    struct rlimit rl;
    pthread_condattr_t ca;
    pthread_t timer;
    sigset_t sigs;
    int sig;

    for (int i = 1; i < argc; i++) {
        int rc = 0;
        if (strcmp(argv[i], "--delay-ms") == 0)
            rc = opt_num("--delay-ms", argv[++i], 0, 3600000, &delay_ms);
        else if (strcmp(argv[i], "--limit") == 0)
            rc = opt_num("--limit", argv[++i], 0, 1000000, &limit);
        else if (strcmp(argv[i], "--retry-after") == 0)
            rc = opt_num("--retry-after", argv[++i], 0, 86400, &retry_after);
        else
            rc = opt_num("THREADS", argv[i], 1, 64, &threads);
        if (rc) {
            fprintf(stderr,
                    "usage: bench_sink [--delay-ms D] [--limit N] [--retry-after S] [THREADS]\n");
            return 64;
        }
    }
    /* room for CONN_LIMIT connections */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < CONN_LIMIT + 64) {
        rl.rlim_cur = rl.rlim_max < CONN_LIMIT + 64 ? rl.rlim_max : CONN_LIMIT + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q_cv, &ca);
    pthread_condattr_destroy(&ca);

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* blocked in every thread (they inherit the mask); main takes them with sigwait */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (pthread_create(&timer, NULL, timer_main, NULL)) {
        fprintf(stderr, "bench_sink: cannot start the timer thread\n");
        return 71;
    }
    /* a pool of one is no pool: MHD warns about it */
    {
        struct MHD_OptionItem pool[] = {
            {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
            {MHD_OPTION_END, 0, NULL}};
        d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                                 MHD_USE_ERROR_LOG,
                             0, NULL, NULL, handle, NULL, MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
                             MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_SOCK_ADDR,
                             &addr, MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
    }
    if (!d) {
        fprintf(stderr, "bench_sink: cannot start\n");
        return 69;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("sink http://127.0.0.1:%u\n", info ? info->port : 0);
    fflush(stdout);
    while (sigwait(&sigs, &sig) != 0)
        ;
    /* MHD must not stop with suspended connections: resume them all first */
    pthread_mutex_lock(&q_mu);
    q_stop = 1;
    pthread_cond_signal(&q_cv);
    pthread_mutex_unlock(&q_mu);
    pthread_join(timer, NULL);
    MHD_stop_daemon(d);
    printf("requests %llu bytes %llu\n", (unsigned long long)requests, (unsigned long long)bytes);
    printf("max_in_flight %ld answered_200 %llu answered_429 %llu\n", (long)max_in_flight,
           (unsigned long long)answered_200, (unsigned long long)answered_429);
    return 0;
}
