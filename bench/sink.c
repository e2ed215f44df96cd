/*
 * sink.c - bench helper: an instant HTTP sink on 127.0.0.1 (libmicrohttpd,
 * epoll, a thread pool). Every request is read whole and answered 200 "{}"
 * at once. Prints "sink http://127.0.0.1:PORT" when ready; on SIGTERM or
 * SIGINT prints "requests N bytes B" and exits.
 *
 * Usage: bench_sink [THREADS]
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ullong requests, bytes;
static volatile sig_atomic_t done;

static void on_signal(int sig)
{
    (void)sig;
    done = 1;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    static int marker;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    (void)cls, (void)url, (void)method, (void)version, (void)upload;
    if (!*state) {
        *state = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        atomic_fetch_add(&bytes, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    atomic_fetch_add(&requests, 1);
    resp = MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

int main(int argc, char **argv)
{
    unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in addr;

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (threads > 1)
        d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                             handle, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
                             MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_SOCK_ADDR, &addr,
                             MHD_OPTION_END);
    else
        d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                             handle, NULL, MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_SOCK_ADDR,
                             &addr, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bench_sink: cannot start\n");
        return 69;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("sink http://127.0.0.1:%u\n", info ? info->port : 0);
    fflush(stdout);
    while (!done)
        pause();
    MHD_stop_daemon(d);
    printf("requests %llu bytes %llu\n", (unsigned long long)requests, (unsigned long long)bytes);
    return 0;
}
