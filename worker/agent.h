/* worker: the agent every node runs — joining a swarm, the session with a manager,
 * heartbeats, and the tasks the manager assigns (run with runtime/). */
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
    bool rejoin; /* state_dir holds a node (a worker, or a manager the swarm demoted): join
                    again as a worker keeping its node ID and key (a manager allowed it: node
                    update --allow-rejoin); its addresses and hostname stay */
};

/* Join: refuse a state dir that already holds a node; GetRootCA without trusting anyone,
 * refuse unless base36(SHA-256(bundle)) equals the token's digest; then, verifying the
 * manager against that bundle (a manager certificate), send a CSR with the token
 * (CA.IssueNodeCertificate) and write the node's state dir (pki_node_state_*: node.conf
 * last). Retries with backoff while the manager is unreachable. Blocking (run before the
 * loop). On success *ret_role says what the token granted. Errors say which check failed
 * and what to do. */
/* With req->rejoin the state dir must hold a worker node: the CSR is made with its key and
 * carries its node ID and certificate; the new certificate and root bundle replace the old
 * ones (the certificate first: a crash between the two is mended by running it again). */
int wrk_join(const struct wrk_join_request *req, char ret_node_id[SW_ID_LEN + 1],
             enum pki_role *ret_role, char *errmsg, size_t errmsg_size);

typedef struct wrk_agent wrk_agent;

/* The node's certificate was renewed and is on disk; key and cert_pem are borrowed (for a
 * manager node to present the new certificate on its listener: pki_key_dup to keep it). */
typedef void (*wrk_renewed_fn)(wrk_agent *a, const char *cert_pem, const pki_key *key,
                               void *userdata);

struct wrk_config {
    const char *state_dir;
    const char *hostname;   /* NULL: as recorded */
    struct sw_addr manager; /* the manager to reach; port 0: from the state dir */
    bool manager_set;
    const char *run_dir;       /* the tasks' run dir; NULL: /run/swarmd/<node id> */
    const char *cgroup_parent; /* NULL: swarmd-<first 12 characters of the node id> */
    uint64_t stop_grace_ms;    /* a stopped task gets SIGTERM, SIGKILL after this; 0: 10 s */
    bool allow_manager;        /* a manager's state dir too: a manager node runs its tasks
                                  through an agent connected to itself (manager = its own
                                  address) */
    bool keep_trying;          /* never give up reconnecting (ready may still report a first
                                  failure): a manager's own agent */
    wrk_renewed_fn renewed;    /* optional: after each certificate renewal */
    /* optional: a renewal brought a certificate for another role (promotion or demotion);
     * without it such a renewal is refused */
    void (*role_changed)(wrk_agent *a, enum pki_role role, void *userdata);
    void *renewed_userdata;
};

/* status 0: the first session message arrived (the node is Ready) and the runtime is set
 * up (wrk_agent_runtime_error says if it is unusable); <0: gave up. */
typedef void (*wrk_ready_fn)(wrk_agent *a, int status, const char *errmsg, void *userdata);

/* Load the node from the state dir, kill what a previous run of this node left in its
 * task cgroups, keep a session with a manager (reconnecting with backoff, failing over to
 * the managers the session names), heartbeat at the period the manager asks for
 * (jittered), run the tasks the session assigns and report their status
 * (Dispatcher.UpdateTaskStatus, batched, resent after a reconnect until committed).
 * Secrets are held in memory only. A runtime that cannot be set up (not root, no cgroups)
 * does not stop the agent: every task is then rejected with the reason
 * (wrk_agent_runtime_error). Returns <0 with errmsg if it cannot begin. */
int wrk_agent_start(uv_loop_t *loop, const struct wrk_config *cfg, wrk_ready_fn ready,
                    void *userdata, wrk_agent **ret, char *errmsg, size_t errmsg_size);
/* A node promoted to manager (it holds a manager certificate now): ask the leader to add
 * it to raft (Raft.Join, following the leader's address if a follower answers), then
 * record the data key and its raft ID; node.conf says manager from then on. Blocking. */
int wrk_become_manager(const char *state_dir, uint64_t timeout_ms, char *errmsg,
                       size_t errmsg_size);
/* A manager demoted to worker (it left raft): node.conf says worker, the data key, raft
 * log and store go, and the managers file names the leader. */
int wrk_become_worker(const char *state_dir, const struct sw_addr *leader, char *errmsg,
                      size_t errmsg_size);

/* Certificates: the agent renews the node's certificate at a random point between 50% and
 * 80% of its validity (CA.RenewNodeCertificate over the session's mTLS connection, a new
 * key, no token), writes it to the state dir (pki_node_state_replace_cert), uses it for
 * the next connection and calls cfg->renewed. A failed renewal is retried with backoff
 * (1 s doubling to 10 min). This asks for a renewal now (once a session is up): for tests
 * and a forced rotation. */
void wrk_agent_renew_now(wrk_agent *a);
/* NotAfter of the certificate the agent presents (unix ns), and how many renewals
 * succeeded since start. */
uint64_t wrk_agent_cert_not_after(const wrk_agent *a);
unsigned wrk_agent_renewals(const wrk_agent *a);

/* Stop: every task is killed (SIGKILL), reaped and its cgroup removed before cb runs;
 * secrets are wiped. */
void wrk_agent_stop(wrk_agent *a, void (*cb)(void *userdata), void *userdata);
const char *wrk_agent_node_id(const wrk_agent *a);
/* NULL when tasks can run, else why not (for the daemon to log once). */
const char *wrk_agent_runtime_error(const wrk_agent *a);
/* How many processes left by a previous run were killed at start. */
unsigned wrk_agent_leftovers_killed(const wrk_agent *a);
