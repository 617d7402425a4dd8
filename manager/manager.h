/* manager: one manager node — raft (canonical/raft) over the sealed store, the control API
 * on the local socket, the CA server, and the node's own identity under the state dir. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/addr.h"
#include "pki/pki.h"

struct mgr_config {
    const char *state_dir;
    struct sw_addr listen_addr;
    bool listen_addr_set; /* given on the command line (resume keeps the stored one otherwise) */
    struct sw_addr advertise_addr;
    bool advertise_addr_set;
    const char *hostname;         /* NULL: the machine's */
    uint64_t cert_expiry_ns;      /* init only; 0: 90 days */
    uint64_t heartbeat_period_ns; /* init only; 0: 5 s */
    unsigned snapshot_threshold;  /* raft entries between snapshots; 0: 50000 (tests lower it) */
    unsigned snapshot_trailing;   /* entries kept behind a snapshot; 0: 500 */
    bool force_new_cluster;       /* resume only: raft is recovered with this manager as its
                                     only voter (quorum lost), all data kept */
    bool autolock;                /* init only: lock the managers' keys under an unlock key */
    const char *external_ca_url;  /* init only: certificates come from this cfssl signer */
    const char *external_ca_cert_pem; /* ...and chain to this root (PEM) */
};

typedef struct mgr mgr;

/* Outcome of mgr_start: status 0 once the manager serves (raft leader, control socket and
 * TCP listener up), else a negative errno with a one-line errmsg. */
typedef void (*mgr_ready_fn)(mgr *m, int status, const char *errmsg, void *userdata);

/* The manager cannot go on (a committed raft entry could not be applied to the store:
 * disk full, I/O error, or an entry that does not open). The caller should stop it and
 * exit non-zero; errmsg says what happened and what to do. */
typedef void (*mgr_fatal_fn)(mgr *m, int status, const char *errmsg, void *userdata);
void mgr_set_fatal_handler(mgr *m, mgr_fatal_fn fn, void *userdata);

/* What the state dir holds. */
enum mgr_state_kind {
    MGR_STATE_EMPTY = 0,   /* no node yet */
    MGR_STATE_NODE = 1,    /* a node: resume it */
    MGR_STATE_DAMAGED = 2, /* node.conf is there but the node does not load */
};
int mgr_state_probe(const char *state_dir, enum mgr_state_kind *ret, char *node_id,
                    char *cluster_id);

/* Create a new cluster (init=true) or resume the node in state_dir (init=false).
 * Returns <0 with errmsg if it cannot even begin; otherwise ready is called once. */
int mgr_start(uv_loop_t *loop, const struct mgr_config *cfg, bool init, mgr_ready_fn ready,
              void *userdata, mgr **ret, char *errmsg, size_t errmsg_size);
/* Stop serving, close raft and the store; cb runs when everything is closed and m freed. */
void mgr_stop(mgr *m, void (*cb)(void *userdata), void *userdata);

const char *mgr_node_id(const mgr *m);
/* This manager is the raft leader right now. */
bool mgr_is_leader(mgr *m);
/* The raft leader's address (IP:PORT); -ENOENT when none is known. */
int mgr_leader_addr(mgr *m, char *buf, size_t size);
const char *mgr_cluster_id(const mgr *m);
/* The bound TCP address (real port when 0 was asked) and the advertised one. */
void mgr_listen_addr(const mgr *m, char *buf, unsigned size);
void mgr_advertise_addr(const mgr *m, char *buf, unsigned size);
/* Present a renewed node certificate (already on disk, written by the node's agent) on
 * the listener from the next connection on; open connections keep theirs. */
int mgr_set_certificate(mgr *m, const char *cert_pem, const pki_key *key, char *errmsg,
                        size_t size);
/* init --autolock: the unlock key, once (it is wiped after); -ENOENT otherwise. */
int mgr_init_unlock_key(mgr *m, char *buf, size_t size);
/* Current join token for a role (0 worker, 1 manager); -ENOENT before ready. */
int mgr_join_token(mgr *m, int role, char *buf, unsigned size);
