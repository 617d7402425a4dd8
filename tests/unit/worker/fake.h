/* Test helpers for worker/: a worker's state dir made with pki/, a fake dispatcher built on
 * net_server (sessions, heartbeats, assignments pushed by the test, task status recorded),
 * and the agent run on the harness's loop. */
#pragma once

#include "../manager/harness.h"
#include "common/ids.h"
#include "common/swtime.h"
#include "pki/pki.h"
#include "worker/agent.h"

#define PERIOD_NS (200ULL * SW_NSEC_PER_MSEC)
#define MAX_HB 256
#define MAX_STATUS 1024

struct cluster {
    pki_ca *ca;
    char cluster_id[SW_ID_LEN + 1];
    char worker_id[SW_ID_LEN + 1];
    char dir[192];
};

/* One TaskStatusUpdate as the fake received it. */
struct wt_status {
    char task_id[72];
    Swarm__TaskState state;
    char err[256];
    int32_t exit_code;
    int32_t pid;
};

struct fake {
    struct mt *t;
    net_server *srv;
    SSL_CTX *ctx;
    struct sw_addr bound;
    net_call *open[8];
    net_call *last; /* the newest open session: wt_fake_send writes there */
    unsigned sessions;
    char session_id[32];
    char hostname[64], arch[32], os[16], addr[80];
    int64_t nano_cpus, memory;
    const char *extra_manager; /* a second manager named in the session message */
    unsigned heartbeats, bad_heartbeats;
    uint64_t hb_ms[MAX_HB];
    char hb_session[MAX_HB][32];
    /* the complete set sent with the first message of each session (full = true) */
    Swarm__Assignment **first;
    size_t n_first;
    /* Dispatcher.UpdateTaskStatus */
    unsigned status_calls, status_refused, bad_status;
    size_t max_batch;   /* the most updates in one call */
    bool refuse_status; /* answer with an error: nothing is committed */
    size_t n_status;
    struct wt_status status[MAX_STATUS];
};

struct agent_run {
    wrk_agent *a;
    unsigned ready_calls;
    bool ready;
    int status;
    char err[512];
};

char *wt_sign(struct cluster *c, const char *node_id, const char *cluster_id, enum pki_role role,
              pki_key **ret_key);
void wt_write_managers(const struct cluster *c, const struct sw_addr *manager, char *path,
                       size_t path_size, char *line, size_t line_size);
void wt_cluster_init(struct cluster *c, struct mt *t, enum pki_role role,
                     const struct sw_addr *manager);
void wt_cluster_finish(struct cluster *c);

void wt_fake_listen(struct fake *f, const struct sw_addr *addr);
void wt_fake_init(struct fake *f, struct mt *t, struct cluster *c, const char *cluster_id);
void wt_fake_close(struct fake *f);
void wt_fake_finish(struct fake *f);
/* Send a SessionMessage with assignments on the newest session. */
void wt_fake_send(struct fake *f, bool full, Swarm__Assignment **a, size_t n);
/* The newest status the fake recorded for a task, NULL if none. */
const struct wt_status *wt_fake_last(const struct fake *f, const char *task_id);
/* Run the loop until the task's newest status is state (or ms pass); returns it or NULL. */
const struct wt_status *wt_fake_wait(struct fake *f, const char *task_id, Swarm__TaskState state,
                                     uint64_t ms);

void wt_flag_cb(void *ud);
void wt_on_ready(wrk_agent *a, int status, const char *errmsg, void *ud);
/* Start the agent on dir; cfg may be NULL (then run dir and cgroup parent under the test's
 * temp dir and a unique parent). */
void wt_agent_start(struct agent_run *ar, struct mt *t, const char *dir);
void wt_agent_start_cfg(struct agent_run *ar, struct mt *t, const struct wrk_config *cfg);
void wt_agent_stop(struct agent_run *ar, struct mt *t);
