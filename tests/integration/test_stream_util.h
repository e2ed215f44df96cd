/*
 * test_stream_util.h - running `osconnect run` instances in the background
 * for the continuous-delivery tests (included by test_stream_*.c only):
 * spawn with their own $STATE_DIRECTORY, stdout and stderr in files, wait
 * for a line, the status URL, kill, and the bookkeeping of which are
 * running (so a failed test leaves none behind). Functions are static inline so a
 * test need not use all of them.
 */
#ifndef TEST_STREAM_UTIL_H
#define TEST_STREAM_UTIL_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define TSU_MAX_PROCS 8

struct proc {
    pid_t pid; /* 0: not running */
    char *out_path, *err_path;
    char *state_dir;
};

static pid_t tsu_running[TSU_MAX_PROCS];

static inline long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline char *slurp(const char *path)
{
    char *s = th_read_file(path);
    if (!s)
        s = strdup(""); /* the child has not written it yet */
    assert_non_null(s);
    return s;
}

static inline void track(pid_t pid, pid_t replace)
{
    for (int i = 0; i < TSU_MAX_PROCS; i++)
        if (tsu_running[i] == replace) {
            tsu_running[i] = pid;
            return;
        }
}

/* Kill every instance a failed test left running. */
static inline void kill_all(void)
{
    for (int i = 0; i < TSU_MAX_PROCS; i++)
        if (tsu_running[i] > 0) {
            kill(tsu_running[i], SIGKILL);
            waitpid(tsu_running[i], NULL, 0);
            tsu_running[i] = 0;
        }
}

/*
 * Start `$OSC_BIN run -c config` in the background with $STATE_DIRECTORY set to
 * state_dir (created; NULL: unset), stdout and stderr in files under th_tmpdir().
 */
static inline void spawn_run(struct proc *pr, const char *config, const char *state_dir)
{
    static int seq;
    const char *bin = getenv("OSC_BIN");

    assert_non_null(bin);
    if (!pr->out_path) {
        assert_true(asprintf(&pr->out_path, "%s/out-%d.txt", th_tmpdir(), seq) > 0);
        assert_true(asprintf(&pr->err_path, "%s/err-%d.txt", th_tmpdir(), seq++) > 0);
    }
    if (state_dir && !pr->state_dir) {
        assert_non_null(pr->state_dir = strdup(state_dir));
        mkdir(state_dir, 0700);
    }
    pr->pid = fork();
    assert_true(pr->pid >= 0);
    if (pr->pid == 0) {
        /* append: a restarted instance keeps its earlier output for the test to read */
        FILE *o = fopen(pr->out_path, "a"), *e = fopen(pr->err_path, "a");
        if (!o || !e)
            _exit(127);
        dup2(fileno(o), 1);
        dup2(fileno(e), 2);
        if (pr->state_dir)
            setenv("STATE_DIRECTORY", pr->state_dir, 1);
        else
            unsetenv("STATE_DIRECTORY");
        execl(bin, bin, "run", "-c", config, (char *)NULL);
        _exit(127);
    }
    track(pr->pid, 0);
}

/* Signal and wait (at most ms, then SIGKILL and fail). The exit status, or 128 + signal. */
static inline int stop_within(struct proc *pr, int sig, long ms)
{
    int status = 0;
    long deadline = now_ms() + ms;

    kill(pr->pid, sig);
    while (waitpid(pr->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pr->pid, SIGKILL);
            waitpid(pr->pid, &status, 0);
            track(0, pr->pid);
            pr->pid = 0;
            fail_msg("osconnect was still running %ld ms after signal %d", ms, sig);
        }
        nap_ms(10);
    }
    track(0, pr->pid);
    pr->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Wait (at most ms, then SIGKILL and fail) for pr to exit on its own. Its exit status. */
static inline int wait_exit(struct proc *pr, long ms)
{
    int status = 0;
    long deadline = now_ms() + ms;

    while (waitpid(pr->pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pr->pid, SIGKILL);
            waitpid(pr->pid, &status, 0);
            track(0, pr->pid);
            pr->pid = 0;
            fail_msg("osconnect was still running after %ld ms", ms);
        }
        nap_ms(10);
    }
    track(0, pr->pid);
    pr->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static inline void proc_free(struct proc *pr)
{
    free(pr->out_path);
    free(pr->err_path);
    free(pr->state_dir);
    memset(pr, 0, sizeof(*pr));
}

/* How often the file at path holds what. */
static inline int count_text(const char *path, const char *what)
{
    char *t = slurp(path), *p = t;
    int n = 0;

    while ((p = strstr(p, what)) != NULL) {
        n++;
        p += strlen(what);
    }
    free(t);
    return n;
}

/* Wait (at most ms) until the file at path holds what n times. */
static inline void wait_text_n(const char *path, const char *what, int n, long ms)
{
    long deadline = now_ms() + ms;
    while (count_text(path, what) < n) {
        if (now_ms() > deadline) {
            char *t = slurp(path);
            fail_msg("%s never said \"%s\" (%d times); it holds:\n%s", path, what, n, t);
        }
        nap_ms(20);
    }
}

static inline void wait_text(const char *path, const char *what, long ms)
{
    wait_text_n(path, what, 1, ms);
}

/* The status URL (http://127.0.0.1:PORT) the n-th start of pr printed (1-based). */
static inline void status_url_n(const struct proc *pr, int n, char *out, size_t cap)
{
    char *text, *s, *nl;

    wait_text_n(pr->out_path, "status http://", n, 20000);
    for (;;) {
        text = slurp(pr->out_path);
        s = text;
        for (int i = 0; i < n; i++)
            s = strstr(i ? s + 1 : s, "status http://");
        if ((nl = strchr(s, '\n')) != NULL)
            break;
        free(text);
        nap_ms(10);
    }
    *nl = '\0';
    snprintf(out, cap, "%s", s + 7);
    free(text);
}

/* Write text to path, then rename it to final (how a file enters a spool folder). */
static inline void write_rename(const char *dir, const char *name, const char *text)
{
    char tmp[1024], final[1024];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/.%s.part", dir, name);
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    assert_non_null(f = fopen(tmp, "w"));
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, final), 0);
}

static inline int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Wait (at most ms) until path exists. */
static inline void wait_file(const char *path, long ms)
{
    long deadline = now_ms() + ms;
    while (!file_exists(path)) {
        if (now_ms() > deadline)
            fail_msg("%s never appeared", path);
        nap_ms(20);
    }
}

#endif
