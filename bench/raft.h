/* bench-raft internals: the write load generators (raft-load.c) and the 3-manager swarmd
 * cluster the benchmark drives (raft-cluster.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/swarm.pb-c.h"

#define RAFT_MANAGERS 3

/* ------------------------------------------------------------------ load (raft-load.c) */

struct load_result {
    uint64_t ok;     /* acknowledged writes */
    uint64_t errors; /* writes answered with an error (or lost with their connection) */
    double secs;     /* from the first call until the last answer */
    double p50_ms, p99_ms;
    char first_error[160];
};

/* clients connections to the control socket sock, each with one Control.CreateSecret in
 * flight (name PREFIX-CLIENT-SEQ, payload bytes of data) for secs seconds, or until max_ok
 * writes were acknowledged (0: no limit). */
int load_swarmd(const char *sock, unsigned clients, double secs, uint64_t max_ok, size_t payload,
                const char *prefix, struct load_result *ret, char *errmsg, size_t errmsg_size);
/* The same against etcd's gRPC-JSON gateway (POST /v3/kv/put over HTTP/1.1 keep-alive) at
 * 127.0.0.1:port: clients connections, one put in flight each, key PREFIX/CLIENT/SEQ. */
int load_etcd(unsigned port, unsigned clients, double secs, size_t payload, const char *prefix,
              struct load_result *ret, char *errmsg, size_t errmsg_size);

/* ------------------------------------------------------------------ cluster (raft-cluster.c) */

struct mgr_proc {
    pid_t pid;
    char state[160]; /* state dir */
    char sock[200];  /* its control socket */
    char log[200];
    char hostname[16];
};

struct cluster {
    char dir[64]; /* temp dir holding every state dir and log */
    const char *swarmd;
    const char *log_level;
    struct mgr_proc m[RAFT_MANAGERS];
};

/* Every process we started, for the exit paths (signal handler included). */
void cluster_register_pid(pid_t pid);
void cluster_forget_pid(pid_t pid);
void cluster_kill_all(void);

/* Fresh temp dir, `swarmd init` + 2 x `swarmd join` with the manager token, until every
 * manager lists 3 Ready managers with one leader. */
int cluster_start(struct cluster *c, char *errmsg, size_t errmsg_size);
/* SIGTERM (then SIGKILL) every manager; remove the temp dir unless keep. */
void cluster_stop(struct cluster *c, bool keep);
/* (Re)start manager i from its state dir (`swarmd --state-dir DIR`). */
int cluster_restart(struct cluster *c, int i);
void cluster_kill(struct cluster *c, int i, int sig);
/* Index of the leader as manager i sees it (ListNodes through its socket); -1 if none. */
int cluster_leader(struct cluster *c, int via);
/* Manager via lists n Ready managers, exactly one the leader, all reachable. */
bool cluster_ready(struct cluster *c, int via, int n);
/* One Control.CreateSecret through sock (sync client, timeout_ms per connect and call):
 * 0 when acknowledged, else <0 with the reason in err. */
int secret_create_sync(const char *sock, const char *name, size_t payload, uint64_t timeout_ms,
                       char *err, size_t err_size);
/* Whether sock answers Control.ListNodes. */
bool control_answers(const char *sock, uint64_t timeout_ms);
/* Print every node as manager via lists it (state, leader, reachability) to stderr. */
void cluster_describe(struct cluster *c, int via);
/* Print the last lines of manager i's log to stderr. */
void cluster_show_log(struct cluster *c, int i);

/* ------------------------------------------------------------------ helpers */

void sleep_ms(unsigned ms);
double ms_since(uint64_t t0_ns);
int cmp_u64(const void *a, const void *b);
int cmp_double(const void *a, const void *b);
