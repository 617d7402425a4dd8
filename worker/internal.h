/* worker/ internals shared by join.c, agent.c and managers.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/* The managers a node may reach, one IP:PORT per line, in <state-dir>/managers. */
#define WRK_MANAGERS_FILE "managers"
#define WRK_MANAGERS_MAX 16

/* ms ± pct% (uniformly), at least 1. */
uint64_t wrk__jitter_ms(uint64_t ms, unsigned pct);
/* When to renew a certificate valid from not_before to not_after (unix ns): at 50% of the
 * validity plus rnd's share of another 30% (rnd uniform over uint32_t), i.e. between 50%
 * and 80%. */
uint64_t wrk__renew_at_ns(uint64_t not_before, uint64_t not_after, uint32_t rnd);
/* A worker holds no manager data: the data key, raft log and store go (after a demotion
 * that a crash interrupted). */
void wrk__drop_manager_data(const char *state_dir);
/* A manager that is not the raft leader says "... the leader is at IP:PORT": that address,
 * or -ENOENT. */
int wrk__leader_hint(const char *msg, struct sw_addr *ret);
/* Write the list atomically (0600). */
int wrk__managers_save(const char *dir, const struct sw_addr *list, size_t n, char *errmsg,
                       size_t size);
/* Read the list; lines that do not parse are skipped. -ENOENT if the file is missing or
 * holds no address. */
int wrk__managers_load(const char *dir, struct sw_addr *list, size_t max, size_t *ret_n,
                       char *errmsg, size_t size);

/* ------------------------------------------------------------------ executor.c */

#include <stdbool.h>
#include <uv.h>

#include "proto/frame.h"

/* Runs the tasks the manager assigns to this node with runtime/, holds the secrets they
 * need (in memory only), and queues the status updates the agent sends back. */
typedef struct wrk__exec wrk__exec;

/* Called (on the loop) whenever an update was queued. */
typedef void (*wrk__exec_notify_fn)(void *userdata);

struct wrk__exec_config {
    const char *run_dir;         /* runtime run dir */
    const char *cgroup_parent;   /* runtime cgroup parent */
    uint64_t stop_grace_ms;      /* SIGTERM, then SIGKILL after this */
    wrk__exec_notify_fn settled; /* optional: the runtime is up or known to be unusable */
};

/* Create the runtime and kill what a previous run left in its cgroups, on libuv's thread
 * pool (cgroup directories and the seccomp filter take tens of ms: the agent opens its
 * session meanwhile). Assignments applied before that are kept, in order, and applied
 * once it is settled; no task starts before the leftovers are gone. A runtime that cannot
 * be created is not fatal: the executor then rejects every task with the reason
 * (wrk__exec_runtime_error). Fails only for lack of memory. */
int wrk__exec_create(uv_loop_t *loop, const struct wrk__exec_config *cfg,
                     wrk__exec_notify_fn notify, void *userdata, wrk__exec **ret);
/* The runtime is up or known to be unusable (cfg->settled has run). */
bool wrk__exec_settled(const wrk__exec *x);
/* NULL when the runtime is up (or not settled yet), else why it is not. */
const char *wrk__exec_runtime_error(const wrk__exec *x);
/* How many processes the leftover sweep at creation killed (0 until settled). */
unsigned wrk__exec_leftovers_killed(const wrk__exec *x);
/* Apply a session message's assignments (m->full: the complete set). */
void wrk__exec_apply(wrk__exec *x, const Swarm__SessionMessage *m);
/* Stop every task (SIGKILL, reap, cleanup), wipe the secrets, close the handles; cb runs
 * (maybe before this returns) once x is freed. */
void wrk__exec_close(wrk__exec *x, void (*cb)(void *userdata), void *userdata);

/* Updates not yet sent (an update replaces an unsent one of the same task). */
size_t wrk__exec_updates_unsent(const wrk__exec *x);
/* Pack up to max unsent updates into an UpdateTaskStatusRequest and mark them in flight.
 * *ret_n = 0 (and no buffer) when nothing is unsent or a batch is already in flight. */
int wrk__exec_updates_pack(wrk__exec *x, const char *session_id, size_t max, uint8_t **ret_buf,
                           size_t *ret_len, size_t *ret_n);
/* The batch in flight was committed (drop it) or not (send it again later). */
void wrk__exec_updates_done(wrk__exec *x, bool committed);
