/*
 * natsserver.h - run real nats-server processes (JetStream on) for tests.
 *
 * Every server listens on 127.0.0.1 only. Client and monitoring ports are
 * chosen by the server (-p -1 / -m -1) and read back from the ports file it
 * writes (--ports_file_dir); cluster ports cannot be -1 (each node must
 * name the others in --routes before they start), so they are picked by
 * binding port 0 and releasing it, and a start that loses that race is
 * retried with new ports. Each node keeps its store, ports file and log
 * (stdout+stderr) in its own folder under th_tmpdir(). A server dies with
 * the test process (PR_SET_PDEATHSIG), so a crashed test leaves none behind.
 */
#ifndef OSC_TH_NATSSERVER_H
#define OSC_TH_NATSSERVER_H

#include <sys/types.h>

struct th_nats {
    pid_t pid;         /* 0 when not running */
    char name[32];     /* server name (-n) */
    char dir[512];     /* store/, the ports file and log */
    char url[128];     /* nats://127.0.0.1:P */
    char mon_url[128]; /* http://127.0.0.1:P (monitoring: /healthz, /jsz) */
    int cluster_port;  /* 0 for a single server */
};

/*
 * Start `nats-server -js` with extra arguments (NULL-terminated, may be
 * NULL; e.g. {"--auth", TOKEN, NULL}) and wait (at most 20 s) until
 * /healthz answers 200. 0 on success; -1 (the log's tail on stderr, nothing
 * left running) on failure.
 */
int th_nats_start(struct th_nats *n, const char *const *extra);
/*
 * SIGTERM, then SIGKILL after 10 s; reaps. Returns 0 when the server
 * exited on its own (nats-server 2.9 exits with status 1 on SIGTERM: that
 * counts as clean), else its exit status or 128 + the signal.
 */
int th_nats_stop(struct th_nats *n);
/* SIGKILL now and reap (a crash). */
void th_nats_kill(struct th_nats *n);
/* The server's log (malloc'd, caller frees); NULL if unreadable. */
char *th_nats_log(const struct th_nats *n);

#define TH_NATS_CLUSTER_NODES 3

struct th_nats_cluster {
    struct th_nats node[TH_NATS_CLUSTER_NODES]; /* names n1, n2, n3 */
    char urls[512];                             /* every client URL, comma-separated */
};

/*
 * Start a 3-node JetStream cluster (cluster name "osc-test", full-mesh
 * routes) and wait (at most 30 s) until every node reports the same meta
 * leader. 0 on success; -1 with nothing left running.
 */
int th_nats_cluster_start(struct th_nats_cluster *c);
/*
 * Wait until every running node reports a meta leader that is itself
 * running (after a kill: a new election). 0, or -1 after timeout_ms.
 */
int th_nats_cluster_wait_leader(struct th_nats_cluster *c, int timeout_ms);
/* Index of the node named name ("n2"), or -1. */
int th_nats_cluster_index(const struct th_nats_cluster *c, const char *name);
/* Stop every running node. */
void th_nats_cluster_stop(struct th_nats_cluster *c);

#endif
