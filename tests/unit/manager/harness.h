/* Test harness for manager/: one uv loop and temp state dir per test, the manager run
 * in-process, calls over its control socket with net/'s async client, bounded waits. */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "manager/internal.h"
#include "manager/manager.h"
#include "net/rpc.h"
#include "proto/frame.h"

/* Every wait in a test is bounded by this (raft elects itself within ~1-2 s). */
#define MT_WAIT_MS 15000

struct mt {
    uv_loop_t loop;
    char dir[128];
    char sock[192];
    struct mgr_config cfg;
    mgr *m;
    net_client *c;
};

/* An answer to one call; payload is malloc'd (freed by mt_reply_clear). */
struct mt_reply {
    bool done;
    int status;
    char error[512];
    uint8_t *payload;
    size_t len;
};

/* cmocka setup/teardown: loop, temp dir, default config (127.0.0.1:0, advertise
 * 127.0.0.1, hostname "mt-host"). Teardown stops the manager, closes every handle and
 * removes the dir, also after a failed assertion. */
int mt_setup(void **state);
int mt_teardown(void **state);

/* Run the loop until *flag or ms pass (a uv timer is the watchdog); returns *flag. */
bool mt_run_until(struct mt *t, const bool *flag, uint64_t ms);
void mt_run_for(struct mt *t, uint64_t ms);

/* Start (init or resume) and wait for ready. Returns the status of mgr_start or of the
 * ready callback; errmsg gets the message. On failure t->m is NULL and the loop has
 * finished the manager's closes. */
int mt_start(struct mt *t, bool init, char *errmsg, size_t size);
/* mt_start that must succeed. */
void mt_start_ok(struct mt *t, bool init);
/* Close the client and stop the manager, waiting for the stop callback. */
void mt_stop(struct mt *t);

/* Send a call (connecting the client first if needed); the reply lands in *r. */
void mt_call_async(struct mt *t, const char *method, const ProtobufCMessage *req,
                   struct mt_reply *r);
/* Send and wait; returns r->status. */
int mt_call(struct mt *t, const char *method, const ProtobufCMessage *req, struct mt_reply *r);
void mt_reply_clear(struct mt_reply *r);

/* Typed helpers (assert success). Free results with the matching free_unpacked. */
Swarm__ListNodesResponse *mt_list_nodes(struct mt *t);
Swarm__GetClusterResponse *mt_get_cluster(struct mt *t);
/* GetJoinToken; role 0 worker, 1 manager; buf >= PKI_TOKEN_LEN + 1. */
void mt_join_token(struct mt *t, int role, bool rotate, char *buf, size_t size);

/* A CSR for a fresh key (free with free()). */
char *mt_csr(void);

/* Visit every regular file under dir (recursively): fn(path, data, len, ud). */
void mt_foreach_file(const char *dir,
                     void (*fn)(const char *path, const uint8_t *data, size_t len, void *ud),
                     void *ud);
/* A call with a raw payload; returns r->status. */
int mt_call_raw(struct mt *t, const char *method, const uint8_t *buf, size_t len,
                struct mt_reply *r);

/* ------------------------------------------------------------------ fake nodes */

/* A worker node as the dispatcher sees it: a certificate issued with the worker token (the
 * node object exists from then on, state Unknown), a TLS connection to the manager and a
 * Dispatcher.Session stream whose messages are kept. With auto_run it behaves as an agent
 * does: an assigned task wanted running is reported running, a task wanted shut down is
 * reported shut down. Heartbeats go out every second while the session lives. */
struct mt_node {
    struct mt *t;
    char id[SW_ID_LEN + 1];
    char hostname[64];
    char *cert;
    pki_key *key;
    net_client *c;
    char session_id[SW_ID_LEN + 1];
    bool ended; /* the session stream got its final answer */
    int end_status;
    Swarm__SessionMessage **msgs; /* every message of every session, in order */
    size_t n_msgs, cap_msgs;
    size_t session_start; /* index of the first message of the current session */
    bool auto_run;
    const char *runtime_error; /* said in the session description and every heartbeat */
    unsigned in_flight;        /* status reports and heartbeats not yet answered */
    uv_timer_t hb;
    bool hb_inited, hb_closed;
    struct mt_node *next;
};

/* Issue a worker certificate for hostname (the node appears in the store). Every node is
 * freed by mt_nodes_close (also called by mt_node_teardown). */
struct mt_node *mt_node_add(struct mt *t, const char *hostname);
/* Connect and open a session describing these resources; waits for the first message. */
void mt_node_connect(struct mt_node *n, int64_t nano_cpus, int64_t memory_bytes);
/* Close the connection: the session ends (the node stays Ready until heartbeats are missed,
 * but takes no new task). */
void mt_node_disconnect(struct mt_node *n);
/* Report one task's state over Dispatcher.UpdateTaskStatus and wait for the answer. */
int mt_node_report(struct mt_node *n, const char *task_id, Swarm__TaskState state,
                   int32_t exit_code);
/* Report several tasks in one call (one commit). */
int mt_node_report_many(struct mt_node *n, const char *const *task_ids, size_t count,
                        const Swarm__TaskState *states, const int32_t *exit_codes);
/* Send one heartbeat now (with n->runtime_error) and wait for the answer. */
void mt_node_heartbeat(struct mt_node *n);
void mt_nodes_close(struct mt *t);
/* cmocka teardown: mt_nodes_close, then mt_teardown. */
int mt_node_teardown(void **state);

/* Run the loop until pred(t, ud) holds (checked after every loop iteration) or ms pass. */
bool mt_wait_for(struct mt *t, bool (*pred)(struct mt *t, void *ud), void *ud, uint64_t ms);

/* Store reads (in-process). */
void mt_service_tasks(struct mt *t, const char *service_id, struct mgr_objs *ret);
Swarm__Node *mt_store_node(struct mt *t, const char *node_id);
/* Write a node's state straight into the store (e.g. Down, as a missed heartbeat would). */
void mt_set_node_state(struct mt *t, const char *node_id, Swarm__NodeState state);

/* Control calls that must succeed. */
void mt_service_create(struct mt *t, Swarm__CreateServiceRequest *req, char *ret_id);
void mt_service_update(struct mt *t, Swarm__UpdateServiceRequest *req);
void mt_service_remove(struct mt *t, const char *id);
void mt_node_update(struct mt *t, Swarm__UpdateNodeRequest *req);
void mt_node_availability(struct mt *t, const char *node_id, Swarm__NodeAvailability a);
void mt_secret_create(struct mt *t, const char *name, const char *data, char *ret_id);

/* A service spec in a few fields (command /bin/true); NULL-terminated lists. */
struct mt_svc {
    const char *name;
    uint64_t replicas;
    bool global;
    const char *constraints[4];
    const char *secrets[4]; /* secret names */
    const char *env;
    int64_t reserve_memory, reserve_nano_cpus;
    const char *restart; /* any|on-failure|none, NULL: default */
    uint64_t max_attempts;
};
void mt_svc_create(struct mt *t, const struct mt_svc *s, char *ret_id);
/* The task spec of s (for UpdateService); free with mt_svc_spec_free. */
Swarm__TaskSpec *mt_svc_spec(const struct mt_svc *s);
void mt_svc_spec_free(Swarm__TaskSpec *spec);

/* A service's tasks right now: live = wanted running and not finished. */
struct mt_count {
    size_t total, live, running, pending, assigned;
};
void mt_count_tasks(struct mt *t, const char *service_id, struct mt_count *ret);
/* Wait until the service has exactly n live tasks, all running. */
bool mt_wait_running(struct mt *t, const char *service_id, size_t n);
