/*
 * natsserver.c - nats-server processes for tests; see natsserver.h.
 */
#include "natsserver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define START_DEADLINE_MS   20000
#define CLUSTER_DEADLINE_MS 30000
#define STOP_DEADLINE_MS    10000

char *th_nats_log(const struct th_nats *n)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/log", n->dir);
    return th_read_file(path);
}

static void dump_log(const struct th_nats *n)
{
    char *log = th_nats_log(n);
    size_t len = log ? strlen(log) : 0;
    fprintf(stderr, "natsserver: %s did not start; end of its log:\n%s\n", n->name,
            log ? log + (len > 3000 ? len - 3000 : 0) : "(none)");
    free(log);
}

/* fork + exec nats-server with args; stdout/stderr to dir/log. */
static int spawn(struct th_nats *n, const char *const *args)
{
    char log[600];
    pid_t pid;

    snprintf(log, sizeof(log), "%s/log", n->dir);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp("nats-server", (char *const *)args);
        perror("execvp nats-server");
        _exit(127);
    }
    n->pid = pid;
    return 0;
}

static int launch(struct th_nats *n, const char *name, const char *const *extra, const char *routes,
                  int cluster_port)
{
    static int seq;
    char store[600], cluster[64];
    const char *av[64];
    size_t k = 0;

    memset(n, 0, sizeof(*n));
    n->cluster_port = cluster_port;
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->dir, sizeof(n->dir), "%s/nats-%s-%d", th_tmpdir(), name, ++seq);
    snprintf(store, sizeof(store), "%s/store", n->dir);
    if (mkdir(n->dir, 0700) || mkdir(store, 0700))
        return -1;
    av[k++] = "nats-server";
    av[k++] = "-js";
    av[k++] = "-a";
    av[k++] = "127.0.0.1";
    av[k++] = "-p";
    av[k++] = "-1";
    av[k++] = "-m";
    av[k++] = "-1";
    av[k++] = "-n";
    av[k++] = n->name;
    av[k++] = "-sd";
    av[k++] = store;
    av[k++] = "--ports_file_dir";
    av[k++] = n->dir;
    if (routes) {
        snprintf(cluster, sizeof(cluster), "nats://127.0.0.1:%d", n->cluster_port);
        av[k++] = "--cluster_name";
        av[k++] = "osc-test";
        av[k++] = "--cluster";
        av[k++] = cluster;
        av[k++] = "--routes";
        av[k++] = routes;
    }
    for (size_t i = 0; extra && extra[i] && k < 62; i++)
        av[k++] = extra[i];
    av[k] = NULL;
    return spawn(n, av);
}

/* Read the ports file nats-server writes once it listens. 1 when found. */
static int read_ports(struct th_nats *n)
{
    char path[900];
    DIR *d = opendir(n->dir);
    struct dirent *e;
    int found = 0;

    if (!d)
        return 0;
    while (!found && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char *text;
        json_t *j;
        if (len < 6 || strcmp(e->d_name + len - 6, ".ports") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", n->dir, e->d_name);
        text = th_read_file(path);
        j = text ? json_loads(text, 0, NULL) : NULL;
        free(text);
        if (j) {
            const char *c = json_string_value(json_array_get(json_object_get(j, "nats"), 0));
            const char *m = json_string_value(json_array_get(json_object_get(j, "monitoring"), 0));
            if (c && m) {
                snprintf(n->url, sizeof(n->url), "%s", c);
                snprintf(n->mon_url, sizeof(n->mon_url), "%s", m);
                found = 1;
            }
            json_decref(j);
        }
    }
    closedir(d);
    return found;
}

static int alive(struct th_nats *n)
{
    int status;
    if (n->pid <= 0)
        return 0;
    if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
        n->pid = 0;
        return 0;
    }
    return 1;
}

/* Wait for the ports file and a 200 from /healthz. */
static int wait_ready(struct th_nats *n, long deadline)
{
    char url[200];

    while (th_now_ms() < deadline) {
        if (!alive(n))
            return -1;
        if (n->url[0] || read_ports(n)) {
            snprintf(url, sizeof(url), "%s/healthz", n->mon_url);
            if (th_http("GET", url, NULL, NULL) == 200)
                return 0;
        }
        th_nap_ms(50);
    }
    return -1;
}

int th_nats_start(struct th_nats *n, const char *const *extra)
{
    if (launch(n, "single", extra, NULL, 0) || wait_ready(n, th_now_ms() + START_DEADLINE_MS)) {
        dump_log(n);
        th_nats_kill(n);
        return -1;
    }
    return 0;
}

int th_nats_stop(struct th_nats *n)
{
    long deadline = th_now_ms() + STOP_DEADLINE_MS;
    int status = 0;

    if (n->pid <= 0)
        return -1;
    kill(n->pid, SIGTERM);
    while (waitpid(n->pid, &status, WNOHANG) == 0) {
        if (th_now_ms() > deadline) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, &status, 0);
            break;
        }
        th_nap_ms(20);
    }
    n->pid = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status) == 1 ? 0 : WEXITSTATUS(status); /* 1: 2.9's exit on SIGTERM */
    return 128 + WTERMSIG(status);
}

void th_nats_kill(struct th_nats *n)
{
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    n->pid = 0;
}

/* Pick count distinct free TCP ports on 127.0.0.1 (held open together, then released). */
static int free_ports(int *ports, int count)
{
    int fds[TH_NATS_CLUSTER_NODES], rc = 0;

    for (int i = 0; i < count; i++)
        fds[i] = -1;
    for (int i = 0; i < count && rc == 0; i++) {
        struct sockaddr_in a = {0};
        socklen_t len = sizeof(a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) ||
            getsockname(fds[i], (struct sockaddr *)&a, &len))
            rc = -1;
        else
            ports[i] = ntohs(a.sin_port);
    }
    for (int i = 0; i < count; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}

int th_nats_cluster_index(const struct th_nats_cluster *c, const char *name)
{
    for (int i = 0; i < TH_NATS_CLUSTER_NODES; i++)
        if (name && strcmp(c->node[i].name, name) == 0)
            return i;
    return -1;
}

/* The meta leader node i reports, copied into out; 1 when it names a running node. */
static int leader_of(struct th_nats_cluster *c, int i, char *out, size_t cap)
{
    char url[200];
    json_t *j;
    const char *leader;
    int ok = 0, k;

    snprintf(url, sizeof(url), "%s/jsz", c->node[i].mon_url);
    j = th_get_json(url);
    leader = json_string_value(json_object_get(json_object_get(j, "meta_cluster"), "leader"));
    if (leader && (k = th_nats_cluster_index(c, leader)) >= 0 && alive(&c->node[k])) {
        snprintf(out, cap, "%s", leader);
        ok = 1;
    }
    json_decref(j);
    return ok;
}

int th_nats_cluster_wait_leader(struct th_nats_cluster *c, int timeout_ms)
{
    long deadline = th_now_ms() + timeout_ms;

    while (th_now_ms() < deadline) {
        char first[32] = "", leader[32];
        int agree = 1, running = 0;
        for (int i = 0; i < TH_NATS_CLUSTER_NODES && agree; i++) {
            if (!alive(&c->node[i]))
                continue;
            running++;
            if (!leader_of(c, i, leader, sizeof(leader)) || (first[0] && strcmp(first, leader)))
                agree = 0;
            else
                snprintf(first, sizeof(first), "%s", leader);
        }
        if (agree && running > 0)
            return 0;
        th_nap_ms(100);
    }
    return -1;
}

void th_nats_cluster_stop(struct th_nats_cluster *c)
{
    for (int i = 0; i < TH_NATS_CLUSTER_NODES; i++)
        if (c->node[i].pid > 0)
            th_nats_stop(&c->node[i]);
}

int th_nats_cluster_start(struct th_nats_cluster *c)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        int ports[TH_NATS_CLUSTER_NODES], ok = 1;
        long deadline = th_now_ms() + CLUSTER_DEADLINE_MS;

        memset(c, 0, sizeof(*c));
        if (free_ports(ports, TH_NATS_CLUSTER_NODES))
            return -1;
        for (int i = 0; i < TH_NATS_CLUSTER_NODES && ok; i++) {
            char routes[256] = "", name[8];
            for (int k = 0; k < TH_NATS_CLUSTER_NODES; k++) {
                size_t len = strlen(routes);
                if (k != i)
                    snprintf(routes + len, sizeof(routes) - len, "%snats://127.0.0.1:%d",
                             len ? "," : "", ports[k]);
            }
            snprintf(name, sizeof(name), "n%d", i + 1);
            ok = launch(&c->node[i], name, NULL, routes, ports[i]) == 0;
        }
        for (int i = 0; i < TH_NATS_CLUSTER_NODES && ok; i++)
            if (wait_ready(&c->node[i], deadline))
                ok = 0;
        if (ok && th_nats_cluster_wait_leader(c, (int)(deadline - th_now_ms())) == 0) {
            for (int i = 0; i < TH_NATS_CLUSTER_NODES; i++) {
                size_t len = strlen(c->urls);
                snprintf(c->urls + len, sizeof(c->urls) - len, "%s%s", i ? "," : "",
                         c->node[i].url);
            }
            return 0;
        }
        for (int i = 0; i < TH_NATS_CLUSTER_NODES; i++) {
            if (attempt == 2)
                dump_log(&c->node[i]);
            th_nats_kill(&c->node[i]);
        }
    }
    return -1;
}
