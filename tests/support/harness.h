/*
 * harness.h - run the real osconnect binary (and the simulator) from tests.
 *
 * The binary is $OSC_BIN (set by ctest). The simulator is started as
 * `osconnect sim --mapped-port 0 --officespace-port 0 ...` and found through
 * the two URL lines it prints; nothing uses a fixed port or a bare sleep.
 */
#ifndef OSC_HARNESS_H
#define OSC_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

/* The simulator's default credentials (see docs/simulator.md). */
#define TH_SIM_OS_KEY       "sim-officespace-key-0123456789abcdef"
#define TH_SIM_MAPPED_TOKEN "sim-mapped-token-0123456789abcdef"

struct th_result {
    int status; /* exit code, or 128 + signal */
    char *out;  /* captured stdout (NUL-terminated) */
    char *err;  /* captured stderr */
};

/*
 * Run $OSC_BIN with argv (NULL-terminated, without the program name), feeding
 * stdin_data (may be NULL) and waiting at most timeout_ms (then SIGKILL).
 * Returns 0 when it ran; free the result with th_result_free().
 */
int th_run(const char *const *argv, const char *stdin_data, int timeout_ms, struct th_result *res);
void th_result_free(struct th_result *res);
/* th_run() with no stdin and every file the child writes capped at max_file_bytes (a full
 * disk as the process sees it: EFBIG, SIGXFSZ ignored). */
int th_run_fsize(const char *const *argv, long max_file_bytes, int timeout_ms,
                 struct th_result *res);

struct th_sim {
    pid_t pid;
    int out_fd;
    char mapped_url[128];      /* http://127.0.0.1:P/graphql */
    char officespace_url[128]; /* http://127.0.0.1:P */
};

/* Start the simulator with extra arguments (NULL-terminated, may be NULL). 0 on success. */
int th_sim_start(struct th_sim *sim, const char *const *extra);
/* SIGTERM, wait; returns the exit status (0 on a clean stop). */
int th_sim_stop(struct th_sim *sim);
/* POST /_sim/reset: 0 when the simulator is back at its start state, else -1. */
int th_sim_reset(const struct th_sim *sim);

/*
 * HTTP to a test endpoint (e.g. the simulator's /_sim/...). Returns the
 * status (0 on transport failure); *body (may be NULL) receives a malloc'd
 * copy of the response body.
 */
long th_http(const char *method, const char *url, const char *body, char **resp_body);
/* GET url and parse the JSON body; NULL on failure. Caller decrefs. */
json_t *th_get_json(const char *url);

/* Monotonic milliseconds, and a sleep between polls of a condition with a deadline. */
long th_now_ms(void);
void th_nap_ms(long ms);

/* A fresh temporary directory (removed by th_tmpdir_cleanup). */
const char *th_tmpdir(void);
void th_tmpdir_cleanup(void);
/* Write content to dir/name; returns the malloc'd path. */
char *th_write_file(const char *name, const char *content);
/* Slurp a file; NULL if it cannot be read. */
char *th_read_file(const char *path);

/* A self-signed certificate for 127.0.0.1 and localhost (openssl CLI) in th_tmpdir(): PEM
 * paths in *cert_path and *key_path (caller frees). 0, or -1 when openssl failed. */
int th_make_cert(char **cert_path, char **key_path);

/* Path of a fixture under tests/fixtures (static buffer). */
const char *th_fixture(const char *rel);

#endif
