/*
 * harness.c - process and HTTP helpers for integration tests; see harness.h.
 */
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];

static const char *bin(void)
{
    const char *b = getenv("OSC_BIN");
    return b ? b : "build/osconnect";
}

static int append(char **buf, size_t *len, const char *data, size_t n)
{
    char *p = realloc(*buf, *len + n + 1);
    if (!p)
        return -1;
    memcpy(p + *len, data, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
    return 0;
}

static void exec_bin(const char *const *argv, const char *first)
{
    size_t n = 0;
    const char **av;

    while (argv && argv[n])
        n++;
    av = calloc(n + 3, sizeof(*av));
    av[0] = bin();
    if (first)
        av[1] = first;
    for (size_t i = 0; i < n; i++)
        av[i + 1 + (first != NULL)] = argv[i];
    execv(bin(), (char *const *)av);
    perror("execv");
    _exit(127);
}

long th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void th_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* RLIMIT_FSIZE of the next child (0: none), set by th_run_fsize(). */
static long child_fsize;

int th_run_fsize(const char *const *argv, long max_file_bytes, int timeout_ms,
                 struct th_result *res)
{
    int rc;

    child_fsize = max_file_bytes;
    rc = th_run(argv, NULL, timeout_ms, res);
    child_fsize = 0;
    return rc;
}

int th_run(const char *const *argv, const char *stdin_data, int timeout_ms, struct th_result *res)
{
    int in[2], out[2], err[2], status = 0;
    size_t olen = 0, elen = 0, ilen = stdin_data ? strlen(stdin_data) : 0, ioff = 0;
    long deadline = th_now_ms() + timeout_ms;
    pid_t pid;

    memset(res, 0, sizeof(*res));
    if (pipe(in) || pipe(out) || pipe(err))
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(in[1]);
        close(out[0]);
        close(err[0]);
        if (child_fsize > 0) {
            /* a full disk, as the process sees it: writes past the limit fail with EFBIG */
            struct rlimit rl = {(rlim_t)child_fsize, (rlim_t)child_fsize};
            signal(SIGXFSZ, SIG_IGN);
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        exec_bin(argv, NULL);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    signal(SIGPIPE, SIG_IGN);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (ilen == 0) {
        close(in[1]);
        in[1] = -1;
    }
    res->out = calloc(1, 1);
    res->err = calloc(1, 1);
    while (out[0] >= 0 || err[0] >= 0) {
        struct pollfd p[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}};
        long left = deadline - th_now_ms();
        char buf[65536];
        if (left <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        if (poll(p, 3, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP))) {
                ssize_t n = read(p[i].fd, buf, sizeof(buf));
                if (n > 0)
                    append(i == 0 ? &res->out : &res->err, i == 0 ? &olen : &elen, buf, (size_t)n);
                else {
                    close(p[i].fd);
                    if (i == 0)
                        out[0] = -1;
                    else
                        err[0] = -1;
                }
            }
        }
        if (in[1] >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in[1], stdin_data + ioff, ilen - ioff);
            if (n > 0)
                ioff += (size_t)n;
            if (n < 0 || ioff == ilen) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    if (out[0] >= 0)
        close(out[0]);
    if (err[0] >= 0)
        close(err[0]);
    waitpid(pid, &status, 0);
    res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return 0;
}

void th_result_free(struct th_result *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}

int th_sim_start(struct th_sim *sim, const char *const *extra)
{
    const char *base[] = {"--mapped-port", "0", "--officespace-port", "0"};
    const char *av[64];
    size_t n = 0;
    int out[2];
    char buf[4096];
    size_t len = 0;
    long deadline = th_now_ms() + 15000;

    memset(sim, 0, sizeof(*sim));
    for (size_t i = 0; i < 4; i++)
        av[n++] = base[i];
    for (size_t i = 0; extra && extra[i] && n < 62; i++)
        av[n++] = extra[i];
    av[n] = NULL;
    if (pipe(out))
        return -1;
    sim->pid = fork();
    if (sim->pid < 0)
        return -1;
    if (sim->pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        exec_bin(av, "sim");
    }
    close(out[1]);
    sim->out_fd = out[0];
    while (!(sim->mapped_url[0] && sim->officespace_url[0])) {
        struct pollfd p = {sim->out_fd, POLLIN, 0};
        long left = deadline - th_now_ms();
        ssize_t r;
        char *nl;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            goto fail;
        r = read(sim->out_fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            goto fail;
        len += (size_t)r;
        buf[len] = '\0';
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            if (strncmp(buf, "mapped ", 7) == 0)
                snprintf(sim->mapped_url, sizeof(sim->mapped_url), "%s", buf + 7);
            else if (strncmp(buf, "officespace ", 12) == 0)
                snprintf(sim->officespace_url, sizeof(sim->officespace_url), "%s", buf + 12);
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len + 1);
        }
    }
    return 0;
fail:
    th_sim_stop(sim);
    return -1;
}

int th_sim_reset(const struct th_sim *sim)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/_sim/reset", sim->officespace_url);
    return th_http("POST", url, "", NULL) == 200 ? 0 : -1;
}

int th_sim_stop(struct th_sim *sim)
{
    int status = 0;
    long deadline = th_now_ms() + 10000;

    if (sim->pid <= 0)
        return -1;
    kill(sim->pid, SIGTERM);
    while (waitpid(sim->pid, &status, WNOHANG) == 0) {
        struct timespec ts = {0, 20000000L};
        if (th_now_ms() > deadline) {
            kill(sim->pid, SIGKILL);
            waitpid(sim->pid, &status, 0);
            break;
        }
        nanosleep(&ts, NULL);
    }
    if (sim->out_fd > 0)
        close(sim->out_fd);
    sim->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    struct {
        char *buf;
        size_t len;
    } *acc = ud;
    return append(&acc->buf, &acc->len, data, size * n) ? 0 : size * n;
}

long th_http(const char *method, const char *url, const char *body, char **resp_body)
{
    struct {
        char *buf;
        size_t len;
    } acc = {calloc(1, 1), 0};
    CURL *e = curl_easy_init();
    long status = 0;

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    if (body)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &acc);
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    if (resp_body)
        *resp_body = acc.buf;
    else
        free(acc.buf);
    return status;
}

json_t *th_get_json(const char *url)
{
    char *body = NULL;
    json_t *j = NULL;

    if (th_http("GET", url, NULL, &body) == 200)
        j = json_loads(body, 0, NULL);
    free(body);
    return j;
}

const char *th_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/osc-test-XXXXXX");
        if (!mkdtemp(tmpdir))
            tmpdir[0] = '\0';
    }
    return tmpdir;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void th_tmpdir_cleanup(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

char *th_write_file(const char *name, const char *content)
{
    char *path = NULL;
    FILE *f;

    if (asprintf(&path, "%s/%s", th_tmpdir(), name) < 0)
        return NULL;
    f = fopen(path, "wb");
    if (!f) {
        free(path);
        return NULL;
    }
    fputs(content, f);
    fclose(f);
    return path;
}

char *th_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1), chunk[65536];
    size_t len = 0, n;

    if (!f) {
        free(buf);
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        append(&buf, &len, chunk, n);
    fclose(f);
    return buf;
}

const char *th_fixture(const char *rel)
{
    static char path[1024];
    const char *dir = getenv("OSC_FIXTURES");
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/fixtures", rel);
    return path;
}

/* Run argv (argv[0] looked up in PATH) with stdout/stderr discarded; its exit status. */
static int run_quiet(char *const argv[])
{
    pid_t pid = fork();
    int st = 0;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int th_make_cert(char **cert_path, char **key_path)
{
    *cert_path = *key_path = NULL;
    if (asprintf(cert_path, "%s/cert.pem", th_tmpdir()) < 0 ||
        asprintf(key_path, "%s/key.pem", th_tmpdir()) < 0)
        return -1;
    {
        char *argv[] = {"openssl",
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        *key_path,
                        "-out",
                        *cert_path,
                        "-days",
                        "2",
                        "-subj",
                        "/CN=localhost",
                        "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        NULL};
        return run_quiet(argv) == 0 ? 0 : -1;
    }
}
