/* worker: the agent every node runs — joining a swarm, the session with a manager, and
 * heartbeats (assignments and task supervision come with the orchestrator). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/addr.h"
#include "common/ids.h"
#include "pki/pki.h"

struct wrk_join_request {
    const char *state_dir;
    const char *token;             /* SWMTKN-1-… */
    struct sw_addr manager;        /* where to join */
    struct sw_addr listen_addr;    /* recorded in node.conf */
    struct sw_addr advertise_addr; /* port 0: the listen port */
    bool advertise_set;            /* else the address this node reached the manager from */
    const char *hostname;          /* NULL: the machine's */
    uint64_t timeout_ms;           /* total, retries included; 0: 30 s */
};

/* Join: refuse a state dir that already holds a node; GetRootCA without trusting anyone,
 * refuse unless base36(SHA-256(bundle)) equals the token's digest; then, verifying the
 * manager against that bundle (a manager certificate), send a CSR with the token
 * (CA.IssueNodeCertificate) and write the node's state dir (pki_node_state_*: node.conf
 * last). Retries with backoff while the manager is unreachable. Blocking (run before the
 * loop). On success *ret_role says what the token granted. Errors say which check failed
 * and what to do. */
int wrk_join(const struct wrk_join_request *req, char ret_node_id[SW_ID_LEN + 1],
             enum pki_role *ret_role, char *errmsg, size_t errmsg_size);

typedef struct wrk_agent wrk_agent;

struct wrk_config {
    const char *state_dir;
    const char *hostname;   /* NULL: as recorded */
    struct sw_addr manager; /* the manager to reach; port 0: from the state dir */
    bool manager_set;
};

/* status 0: the first session message arrived (the node is Ready); <0: gave up. */
typedef void (*wrk_ready_fn)(wrk_agent *a, int status, const char *errmsg, void *userdata);

/* Load the node from the state dir, keep a session with a manager (reconnecting with
 * backoff, failing over to the managers the session names), heartbeat at the period the
 * manager asks for (jittered). Returns <0 with errmsg if it cannot begin. */
int wrk_agent_start(uv_loop_t *loop, const struct wrk_config *cfg, wrk_ready_fn ready,
                    void *userdata, wrk_agent **ret, char *errmsg, size_t errmsg_size);
void wrk_agent_stop(wrk_agent *a, void (*cb)(void *userdata), void *userdata);
const char *wrk_agent_node_id(const wrk_agent *a);
