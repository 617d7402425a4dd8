/* manager/ internals shared across its files. */
#pragma once

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/ids.h"
#include "manager/manager.h"
#include "net/rpc.h"
#include "pki/pki.h"
#include "proto/swarm.pb-c.h"
#include "store/store.h"

#define MGR_STATE_FILE PKI_NODE_STATE_FILE
#define MGR_CERT_DIR PKI_NODE_CERT_DIR
#define MGR_ROOT_CA_FILE PKI_NODE_ROOT_CA_FILE
#define MGR_NODE_CERT_FILE PKI_NODE_CERT_FILE
#define MGR_NODE_KEY_FILE PKI_NODE_KEY_FILE
#define MGR_KEYS_DIR PKI_NODE_KEYS_DIR
#define MGR_KEK_FILE PKI_NODE_KEK_FILE
#define MGR_DEK_FILE PKI_NODE_DEK_FILE
#define MGR_RAFT_DIR "raft"
#define MGR_STORE_DIR "store"
#define MGR_SOCKET_FILE "swarmd.sock"

#define MGR_HEARTBEAT_DEFAULT_NS (5ULL * 1000000000ULL)
#define MGR_SNAPSHOT_INTERVAL_DEFAULT 50000
#define MGR_TASK_HISTORY_DEFAULT 5
/* restart_max_attempts at most this: the runs it counts stay in the history */
#define MGR_RESTART_ATTEMPTS_MAX 1000

typedef void (*mgr_commit_fn)(struct mgr *m, int status, void *userdata);

/* A queued read-modify-write of the cluster object or a node. mutate edits the object in
 * place and returns 0, or <0 to abort (then cb gets that status). One queue for both, so
 * concurrent edits never overwrite each other. */
typedef int (*mgr_cluster_mutate_fn)(struct mgr *m, Swarm__Cluster *c, void *userdata);
typedef int (*mgr_node_mutate_fn)(struct mgr *m, Swarm__Node *n, void *userdata);
/* A batch of store actions built from fresh reads when its turn comes. */
struct mgr_batch {
    struct store_action *a;
    size_t n, cap;
};
typedef int (*mgr_batch_fn)(struct mgr *m, struct mgr_batch *b, void *userdata);
/* Add an action (obj packed and copied; NULL for DELETE). */
int mgr__batch_add(struct mgr_batch *b, enum store_action_kind kind, enum store_table table,
                   const char *id, const ProtobufCMessage *obj);
void mgr__batch_free(struct mgr_batch *b);

struct mgr_cluster_op {
    mgr_cluster_mutate_fn mutate;   /* the cluster, or */
    mgr_node_mutate_fn node_mutate; /* this node, or */
    mgr_batch_fn batch;             /* whatever this builds */
    char node_id[SW_ID_LEN + 1];
    mgr_commit_fn cb;
    void *userdata;
    struct mgr_cluster_op *next;
};

/* names.c: a table's names, a hash set (the leader's uniqueness checks) */
struct mgr_names {
    char **v;            /* cap slots: NULL empty, a name, or names.c's deleted mark */
    size_t n, used, cap; /* names; slots not empty; slots (a power of two) */
    bool built;
};

#define MGR_PEERS_MAX 16
struct mgr_peer {
    char node_id[SW_ID_LEN + 1];
    char addr[80];
};

struct mgr {
    uv_loop_t *loop;
    char *state_dir;
    int lock_fd;
    bool init;
    bool force_new_cluster;
    bool conf_changed;          /* resume with new addresses or hostname: rewrite node.conf */
    uint64_t cert_expiry_ns;    /* init only */
    uint64_t init_heartbeat_ns; /* init only */
    bool init_autolock;         /* init only */
    char init_unlock_key[PKI_UNLOCK_KEY_LEN + 1]; /* init --autolock: shown once */
    unsigned snapshot_threshold, snapshot_trailing;
    struct pki_node_state st;

    store *store;
    pki_ca *ca; /* signing root, from the cluster object */

    struct raft raft;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft_uv_transport transport;
    bool raft_io_inited, raft_inited;
    void (*uv_io_close)(struct raft_io *io, raft_io_close_cb cb); /* raft_uv's own */
    raft_io_close_cb raft_io_close_cb;                            /* raft's, called once */
    bool io_close_fired;
    struct mgr *grave_next;
    uv_timer_t leader_timer;
    uv_timer_t raft_done;        /* never started: its close callback frees m after raft closed */
    uv_timer_t transport_handle; /* never started: closed to call the transport's close cb */
    raft_uv_transport_close_cb transport_close_cb;
    uv_work_t files_work; /* init: writing the key and certificate files */
    int files_status;     /* 1 while in flight, then 0 or a negative errno (loop thread) */
    int files_result;     /* written by the worker thread only; read in files_done */
    bool init_committed;
    char files_err[256];
    uint64_t leader_wait_start;

    net_server *server;
    SSL_CTX *server_ctx;
    SSL_CTX *client_ctx; /* this node's certificate, for connections to other managers */

    bool leading;     /* running the dispatcher and orchestrator as the raft leader */
    bool taking_over; /* became leader: recording itself before it leads */
    uv_timer_t role_timer;
    unsigned role_ticks;
    uint64_t seen_snapshot_interval; /* the cluster setting last seen */
    bool snapshot_threshold_explicit;

    bool rootca_finishing;    /* rootca.c: the end of a rotation is being committed */
    unsigned rootca_renewed;  /* renewals since the last batch was asked (the leader's) */
    bool rootca_asking;       /* a batch is being asked */
    bool raft_peer_untrusted; /* transport.c: a manager's certificate did not verify here (the
                                 root rotated while this one was down) */
    char *external_ca_url;    /* signer.c: certificates come from this cfssl signer (ca NULL) */
    char *external_ca_chain;  /* ...with this after each leaf (a rotation's cross-signed root) */
    char ca_digest[PKI_TOKEN_DIGEST_LEN + 1]; /* the root bundle m->ca was loaded for */
    /* autolock.c */
    bool autolock_check; /* the cluster object changed: is the KEK sealed as it wants? */
    store_watch *autolock_watch;

    /* datakey.c */
    bool datakey_check;            /* the cluster object changed: which key seals? */
    bool datakey_reseal;           /* re-seal the store under the current key */
    bool datakey_resealed;         /* done; older keys go after a snapshot past the switch */
    uint64_t datakey_switch_index; /* applied index when the current key took over */
    uint64_t datakey_switch_ns;    /* and when (monotonic) */
    bool datakey_dirty;            /* keys/dek could not be written: again at the next tick */
    unsigned datakey_reseal_fails;
    struct rotation *rotation; /* the leader's rotation under way */
    store_watch *datakey_watch;

    /* names.c */
    struct mgr_names secret_names, service_names;

    /* forward.c */
    struct mgr_method *methods;
    net_client *fwd_client;
    bool fwd_ready;
    uint64_t fwd_leader;
    struct fwd_wait *fwd_waiting;

    /* transport.c: raft between managers */
    struct {
        uint64_t id, at_ns;
    } contacts[MGR_PEERS_MAX]; /* when each raft member last sent us anything */
    raft_uv_accept_cb raft_accept;
    struct raft_link *raft_links;
    bool raft_closing;
    struct sw_addr bound_addr;

    /* orchestrator.c */
    bool reconcile_queued;
    uv_timer_t kick_timer, tick_timer;
    store_watch *watch;

    /* dispatcher.c */
    struct mgr_session *sessions;
    struct mgr_peer peers[MGR_PEERS_MAX]; /* the managers, named in session messages */
    size_t n_peers;
    uint64_t heartbeat_period_ns;
    uv_timer_t dispatcher_timer;
    uint64_t dispatcher_start_ns;
    bool orphans_checked;

    struct mgr_cluster_op *cluster_ops_head, *cluster_ops_tail;
    bool cluster_op_running;

    mgr_ready_fn ready;
    void *ready_userdata;
    bool serving;
    mgr_fatal_fn fatal;
    void *fatal_userdata;
    int fatal_status;
    uv_timer_t fatal_timer;
    bool stopping;
    void (*stop_cb)(void *userdata);
    void *stop_userdata;
    unsigned pending_closes;

    uint64_t next_request_id;
    char errmsg[1024];
};

/* objects.c */
uint64_t mgr__raft_id_from_node_id(const char *node_id);

/* forward.c: methods that run on the raft leader; any other manager relays them there
 * (not for calls whose meaning depends on the caller's certificate: they are refused with
 * the leader's address instead). */
int mgr__register_leader_only(struct mgr *m, const char *method, enum net_auth auth,
                              net_handler_fn fn);
void mgr__forward_stop(struct mgr *m);
/* Relay call (with this payload) to the leader now. */
void mgr__forward_call(struct mgr *m, net_call *call, const uint8_t *payload, size_t len);
/* The leader changed: calls relayed to the former one end with -EAGAIN. */
void mgr__forward_check(struct mgr *m);
void mgr__forward_free(struct mgr *m);

/* names.c: hold name for a create in table (secrets, services): -EEXIST if taken (by an
 * object or another create in flight); released if the create fails. The store's events
 * keep the names; cleared when leadership ends. */
int mgr__name_reserve(struct mgr *m, enum store_table t, const char *name);
void mgr__name_release(struct mgr *m, enum store_table t, const char *name);
void mgr__names_event(struct mgr *m, const struct store_event *ev);
void mgr__names_clear(struct mgr *m);

#define MGR_TOMBSTONES_MAX 1000                     /* removed node IDs the cluster object keeps */
#define MGR_DATAKEY_DROP_NS (10ULL * 1000000000ULL) /* retired keys kept at least this long */

/* signer.c: a node certificate from the root key (at once) or the external CA (on the thread
 * pool); done gets 0 and the PEM (its own: free it) or an error with a one-line reason. */
typedef void (*mgr_signed_fn)(struct mgr *m, int status, char *cert_pem, const char *err,
                              void *userdata);
void mgr__sign(struct mgr *m, const char *csr_pem, const char *node_id, enum pki_role role,
               mgr_signed_fn done, void *userdata);
/* A certificate is signed somewhere: the root key or the external CA is known. */
bool mgr__can_sign(const struct mgr *m);

/* rootca.c: root CA rotation */
int mgr__rootca_register(struct mgr *m);
/* The cluster's trust bundle (malloc'd), NULL when the store has no cluster yet. */
char *mgr__trust_bundle(struct mgr *m);
/* While a rotation runs (returns 1): how many nodes hold a leaf of the new root, of all. */
int mgr__rootca_progress(struct mgr *m, const Swarm__Cluster *c, unsigned *ret_done,
                         unsigned *ret_total);
/* Leader, from the role timer: every node moved over? then the old root goes. */
void mgr__rootca_tick(struct mgr *m);
/* A node's renewal committed: a rotation asks the next nodes once half a batch moved (not
 * only at the next tick). */
void mgr__rootca_renewed(struct mgr *m);

/* autolock.c */
int mgr__autolock_register(struct mgr *m);
/* Turn autolock on (a new unlock key, formatted into ret_key; "" if it was on already) or
 * off (the key is dropped) in the cluster object c. */
int mgr__autolock_edit(Swarm__Cluster *c, bool on, char ret_key[PKI_UNLOCK_KEY_LEN + 1]);
/* Watch the cluster object; seal this manager's KEK as it says (from the role timer). */
int mgr__autolock_start(struct mgr *m);
void mgr__autolock_check(struct mgr *m);
void mgr__autolock_stop(struct mgr *m);

/* datakey.c */
typedef void (*mgr_datakey_fn)(struct mgr *m, int status, const char *err, void *userdata);
int mgr__datakey_register(struct mgr *m);
/* After the store opened: the older keys of keys/dek into the store. */
int mgr__datakey_load(struct mgr *m);
int mgr__datakey_start(struct mgr *m);
void mgr__datakey_stop(struct mgr *m);
/* From the role timer: take up the key the cluster names, re-seal, drop older keys. */
void mgr__datakey_tick(struct mgr *m);
/* Leader: a new data key to every manager, then named in the cluster object; done gets the
 * outcome (and a one-line error). <0 with errmsg if it cannot start (a manager is
 * unreachable, too many older keys). */
int mgr__datakey_rotate(struct mgr *m, mgr_datakey_fn done, void *userdata, char *errmsg,
                        size_t size);

/* members.c */
int mgr__members_register(struct mgr *m);
/* Demote manager n (replies to call): refused for the last manager or when the rest could
 * not form a quorum; the leader itself hands leadership over first, then the call goes to
 * the new leader. */
void mgr__demote(struct mgr *m, net_call *call, const Swarm__Node *n);
/* "not the leader; the leader is at ADDR" for an error message. */
void mgr__leader_hint(struct mgr *m, char *buf, size_t size);

/* transport.c */
void mgr__transport_setup(struct mgr *m);
/* Raft traffic from member id arrived / when it last did (monotonic ns, 0: never). */
void mgr__raft_contact(struct mgr *m, uint64_t id);
uint64_t mgr__raft_last_contact(struct mgr *m, uint64_t id);
#define MGR_REACHABLE_NS (3ULL * 1000000000ULL)
int mgr__transport_register(struct mgr *m);

/* raft.c */
int mgr__raft_start(struct mgr *m, bool bootstrap, char *errmsg, size_t size);
/* Starts closing raft; mgr__close_done runs when it is closed. */
void mgr__raft_close(struct mgr *m);
bool mgr__is_leader(struct mgr *m);
/* free_mgr: true if m must stay allocated (raft_uv may still call back): it is released at
 * exit. */
bool mgr__raft_keep(struct mgr *m);
uint64_t mgr__leader_raft_id(struct mgr *m);
/* Seal and submit a batch; cb gets 0 once committed and applied, or a negative errno
 * (-EEXIST/-ENOENT from the store, -ENOTCONN when not leader, -EIO otherwise). */
int mgr__propose(struct mgr *m, const struct store_action *actions, size_t n, mgr_commit_fn cb,
                 void *userdata);
/* Queue a read-modify-write of the cluster object (serialised, so concurrent edits
 * do not overwrite each other). */
int mgr__cluster_update(struct mgr *m, mgr_cluster_mutate_fn mutate, mgr_commit_fn cb,
                        void *userdata);
/* Queue a batch built when its turn comes (an empty batch commits nothing: cb gets 0). */
int mgr__batch_update(struct mgr *m, mgr_batch_fn fn, mgr_commit_fn cb, void *userdata);
/* The same for a node object (-ENOENT to cb if it is gone). */
int mgr__node_update(struct mgr *m, const char *node_id, mgr_node_mutate_fn mutate,
                     mgr_commit_fn cb, void *userdata);

/* manager.c */
/* Report a fatal error from inside a raft callback; the handler runs on the next loop
 * iteration (never inside raft). */
void mgr__fatal(struct mgr *m, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One asynchronous close finished (pending_closes--); frees m after the last one. */
void mgr__close_done(struct mgr *m);

/* objects.c: typed reads */
/* The cluster object; free with mgr__cluster_free (wipes the CA key and tokens). */
int mgr__get_cluster(struct mgr *m, Swarm__Cluster **ret);
void mgr__cluster_free(Swarm__Cluster *c);
int mgr__get_node(struct mgr *m, const char *id, Swarm__Node **ret);
/* A node as the local machine sees itself (for init and resume). */
int mgr__self_node(struct mgr *m, Swarm__Node **ret);
/* Fill c (strdup'd fields) from a certificate PEM. */
void mgr__fill_cert_info(Swarm__NodeCertificate *c, const char *cert_pem);
/* Set a string field of a message to a copy of v (NULL: ""), freeing the old one (never
 * protobuf-c's shared empty string). -ENOMEM leaves the field as it was. */
int mgr__set_str(char **slot, const char *v);

/* objects.c: RPC helpers */
/* false (and the call answered -EAGAIN) while the manager is not serving */
bool mgr__serving(struct mgr *m, net_call *call);
void mgr__reply_msg(net_call *call, const ProtobufCMessage *msg);
/* The same for an answer that carries a key: the packed copy is wiped. */
void mgr__reply_msg_secret(net_call *call, const ProtobufCMessage *msg);
void mgr__reply_errno(net_call *call, int r, const char *what);
/* strerror, with what a raft outcome means for the caller. */
const char *mgr__strerror(int r);
/* Decode a request strictly (no unknown fields anywhere); NULL after answering -EINVAL. */
ProtobufCMessage *mgr__request(net_call *call, const ProtobufCMessageDescriptor *desc,
                               const uint8_t *payload, size_t len);

/* objects.c: every object of a table, unpacked */
struct mgr_objs {
    ProtobufCMessage **v;
    size_t n, cap;
    const ProtobufCMessageDescriptor *desc;
};
int mgr__list(struct mgr *m, enum store_table table, const ProtobufCMessageDescriptor *desc,
              struct mgr_objs *ret);
/* the tasks of a service or a node */
int mgr__list_index(struct mgr *m, enum store_index index, const char *key, struct mgr_objs *ret);
void mgr__objs_free(struct mgr_objs *o);
/* take v[i] out (the caller frees it with protobuf_c_message_free_unpacked) */
ProtobufCMessage *mgr__objs_take(struct mgr_objs *o, size_t i);
typedef void (*mgr_name_fn)(const ProtobufCMessage *msg, const char **ret_id,
                            const char **ret_name);
/* By full id, unique id prefix or name: the index, or -ENOENT/-EINVAL with err set. */
ssize_t mgr__objs_find(struct mgr_objs *o, const char *ref, mgr_name_fn name_of, char *err,
                       size_t size, const char *what);

/* control.c / ca.c: RPC handlers */
int mgr__control_register(struct mgr *m);
int mgr__ca_register(struct mgr *m);
int mgr__ca_reload(struct mgr *m);

/* services.c: the control API for services, tasks, secrets, node updates */
int mgr__services_register(struct mgr *m);
bool mgr__valid_constraint(const char *c);

/* nodes.c: Control.RemoveNode and Control.UpdateCluster */
int mgr__nodes_register(struct mgr *m);

/* dispatcher.c: node sessions and heartbeats */
struct mgr_session;
int mgr__dispatcher_register(struct mgr *m);
/* Once serving: read the heartbeat period, start expiring missed heartbeats. */
void mgr__dispatcher_start(struct mgr *m);
/* End every session (their streams get an answer) and stop the timer. */
void mgr__dispatcher_stop(struct mgr *m);
/* End a node's session now (node rm): no Down mark follows for it. */
void mgr__dispatcher_end_session(struct mgr *m, const char *node_id);
/* True while the node has an open session (an agent that can run tasks). */
bool mgr__dispatcher_has_session(struct mgr *m, const char *node_id);
/* A committed change: send the affected node its assignment changes. */
void mgr__dispatcher_store_event(struct mgr *m, const struct store_event *ev);

/* orchestrator.c: reconciliation (orchestrator + scheduler) while serving */
int mgr__orchestrator_start(struct mgr *m);
void mgr__orchestrator_stop(struct mgr *m);

/* orchestrator.c: exposed for unit tests */
/* Does node n meet one placement constraint (node.id|node.hostname|node.role|node.labels.K,
 * == or !=, a value)? A missing label equals nothing; without an operator it never holds. */
bool mgr__constraint_ok(const Swarm__Node *n, const char *c);
