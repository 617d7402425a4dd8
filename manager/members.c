/* Raft membership: a manager that just got its certificate with the manager token asks the
 * leader to join raft (Raft.Join). The leader adds it as a spare, answers with the cluster
 * data key (over mTLS only: the node proved its manager certificate), records its manager
 * status, and promotes it to voter once it has caught up. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

struct join_op {
    struct raft_change req;
    struct mgr *m;
    net_call *call;
    raft_id id;
    char node_id[SW_ID_LEN + 1];
    char addr[80];
};

/* The member of the current raft configuration with this id, or NULL. */
static const struct raft_server *member(struct mgr *m, raft_id id)
{
    for (unsigned i = 0; i < m->raft.configuration.n; i++)
        if (m->raft.configuration.servers[i].id == id)
            return &m->raft.configuration.servers[i];
    return NULL;
}

static void promoted(struct raft_change *req, int status)
{
    struct join_op *op = req->data;
    if (status != 0)
        log_warn("raft: manager %s (raft %llu) not made a voter: %s", op->node_id,
                 (unsigned long long)op->id, raft_strerror(status));
    else
        log_info("raft: manager %s is a voter", op->node_id);
    free(op);
}

static void promote(struct join_op *op)
{
    struct mgr *m = op->m;
    const struct raft_server *s = member(m, op->id);
    if (s && s->role == RAFT_VOTER) {
        free(op);
        return;
    }
    op->req.data = op;
    /* raft 0.15 catches a spare up before the change that makes it a voter */
    int r = raft_assign(&m->raft, &op->req, op->id, RAFT_VOTER, promoted);
    if (r != 0) {
        log_warn("raft: cannot make manager %s a voter: %s", op->node_id, raft_strerror(r));
        free(op);
    }
}

static int set_manager_status(struct mgr *m, Swarm__Node *n, void *userdata)
{
    struct join_op *op = userdata;
    if (!n->manager_status) {
        n->manager_status = calloc(1, sizeof(*n->manager_status));
        if (!n->manager_status)
            return -ENOMEM;
        swarm__manager_status__init(n->manager_status);
    }
    Swarm__ManagerStatus *ms = n->manager_status;
    n->role = SWARM__NODE_ROLE__ROLE_MANAGER; /* a promoted worker is one now */
    ms->raft_id = op->id;
    char *addr = strdup(op->addr);
    if (!addr)
        return -ENOMEM;
    if (ms->addr != protobuf_c_empty_string)
        free(ms->addr);
    ms->addr = addr;
    ms->reachability = SWARM__REACHABILITY__REACH_REACHABLE;
    return 0;
}

static void status_recorded(struct mgr *m, int status, void *userdata)
{
    struct join_op *op = userdata;
    if (status < 0)
        log_warn("cannot record manager %s's status: %s", op->node_id, strerror(-status));
    promote(op);
}

/* The answer: the data key, sealed only by the mTLS connection it travels on. */
static void answer(struct join_op *op)
{
    struct mgr *m = op->m;
    Swarm__RaftJoinResponse resp = SWARM__RAFT_JOIN_RESPONSE__INIT;
    struct pki_aead_key cur, old[STORE_OLD_KEYS_MAX];
    Swarm__DataKey keys[STORE_OLD_KEYS_MAX], *kp[STORE_OLD_KEYS_MAX];
    store_current_key(m->store, &cur);
    bool retired[STORE_OLD_KEYS_MAX];
    unsigned n_old = store_old_keys(m->store, old, retired, STORE_OLD_KEYS_MAX);
    resp.dek_id = cur.id;
    resp.dek.data = cur.key;
    resp.dek.len = sizeof(cur.key);
    for (unsigned i = 0; i < n_old && i < STORE_OLD_KEYS_MAX; i++) {
        swarm__data_key__init(&keys[i]);
        keys[i].id = old[i].id;
        keys[i].key.data = old[i].key;
        keys[i].key.len = sizeof(old[i].key);
        keys[i].retired = retired[i];
        kp[i] = &keys[i];
    }
    resp.n_old_keys = n_old;
    resp.old_keys = kp;
    resp.raft_id = op->id;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_pack(&resp.base, &buf, &len) < 0) {
        net_call_reply(op->call, -ENOMEM, "out of memory", NULL, 0);
    } else {
        net_call_reply(op->call, 0, NULL, buf, len);
        sw_erase(buf, len);
        free(buf);
    }
    op->call = NULL;
    pki_aead_key_clear(&cur);
    sw_erase(old, sizeof(old));
}

static void added(struct raft_change *req, int status)
{
    struct join_op *op = req->data;
    struct mgr *m = op->m;
    if (status != 0) {
        char err[160];
        snprintf(err, sizeof(err), "cannot add this manager to raft: %s", raft_strerror(status));
        net_call_reply(op->call, -EAGAIN, err, NULL, 0);
        free(op);
        return;
    }
    log_info("raft: manager %s (raft %llu at %s) added", op->node_id, (unsigned long long)op->id,
             op->addr);
    answer(op);
    if (mgr__node_update(m, op->node_id, set_manager_status, status_recorded, op) < 0)
        promote(op);
}

static void h_raft_join(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    char err[200];
    if (peer->kind != NET_PEER_NODE || peer->id.role != PKI_ROLE_MANAGER)
        return net_call_reply(call, -EPERM, "joining raft needs a manager certificate", NULL, 0);
    if (!m->serving || !mgr__is_leader(m)) {
        mgr__leader_hint(m, err, sizeof(err));
        return net_call_reply(call, -EAGAIN, err, NULL, 0);
    }
    Swarm__RaftJoinRequest *req = (Swarm__RaftJoinRequest *)mgr__request(
        call, &swarm__raft_join_request__descriptor, payload, len);
    if (!req)
        return;
    swarm__raft_join_request__free_unpacked(req, NULL);
    Swarm__Node *n = NULL;
    if (mgr__get_node(m, peer->id.node_id, &n) < 0)
        return net_call_reply(call, -EPERM, "this node has been removed from the swarm", NULL, 0);
    if (n->desired_role != SWARM__NODE_ROLE__ROLE_MANAGER) {
        swarm__node__free_unpacked(n, NULL);
        return net_call_reply(call, -EPERM, "this node is not a manager (it was demoted)", NULL, 0);
    }
    struct join_op *op = calloc(1, sizeof(*op));
    if (!op) {
        swarm__node__free_unpacked(n, NULL);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    op->m = m;
    op->call = call;
    op->id = mgr__raft_id_from_node_id(peer->id.node_id);
    memcpy(op->node_id, peer->id.node_id, sizeof(op->node_id));
    snprintf(op->addr, sizeof(op->addr), "%s", n->addr);
    swarm__node__free_unpacked(n, NULL);
    struct sw_addr a;
    if (!op->addr[0] || sw_addr_parse(op->addr, -1, 0, &a) < 0 || a.port == 0) {
        free(op);
        return net_call_reply(call, -EINVAL,
                              "this node has no address others can reach it at; join again with "
                              "--advertise-addr IP:PORT",
                              NULL, 0);
    }
    if (member(m, op->id)) {
        /* asked again (the first answer was lost): the same answer */
        answer(op);
        promote(op);
        return;
    }
    op->req.data = op;
    int r = raft_add(&m->raft, &op->req, op->id, op->addr, added);
    if (r != 0) {
        snprintf(err, sizeof(err), "cannot add this manager to raft: %s", raft_strerror(r));
        free(op);
        return net_call_reply(call, r == RAFT_CANTCHANGE ? -EAGAIN : -EIO, err, NULL, 0);
    }
}

/* ------------------------------------------------------------------ demotion */

struct demote_op {
    struct raft_change req;
    struct raft_transfer xfer;
    struct mgr *m;
    net_call *call;
    raft_id id;
    char node_id[SW_ID_LEN + 1];
};

static int set_worker(struct mgr *m, Swarm__Node *n, void *userdata)
{
    n->role = n->desired_role = SWARM__NODE_ROLE__ROLE_WORKER;
    if (n->manager_status) {
        swarm__manager_status__free_unpacked(n->manager_status, NULL);
        n->manager_status = NULL;
    }
    /* its next certificate says worker: it renews now */
    n->cert_rotate = (n->cert_rotate > n->cert_rotated ? n->cert_rotate : n->cert_rotated) + 1;
    return 0;
}

static void demoted(struct mgr *m, int status, void *userdata)
{
    struct demote_op *op = userdata;
    Swarm__Node *n = NULL;
    if (status < 0) {
        mgr__reply_errno(op->call, status, "left raft, but cannot record the demotion");
    } else if (mgr__get_node(m, op->node_id, &n) >= 0) {
        log_info("manager %s demoted to worker", op->node_id);
        Swarm__GetNodeResponse resp = SWARM__GET_NODE_RESPONSE__INIT;
        resp.node = n;
        mgr__reply_msg(op->call, &resp.base);
        swarm__node__free_unpacked(n, NULL);
    } else {
        net_call_reply(op->call, 0, NULL, NULL, 0);
    }
    free(op);
}

static void removed(struct raft_change *req, int status)
{
    struct demote_op *op = req->data;
    struct mgr *m = op->m;
    if (status != 0) {
        char err[160];
        snprintf(err, sizeof(err), "cannot remove the manager from raft: %s",
                 raft_strerror(status));
        net_call_reply(op->call, -EAGAIN, err, NULL, 0);
        free(op);
        return;
    }
    int r = mgr__node_update(m, op->node_id, set_worker, demoted, op);
    if (r < 0) {
        mgr__reply_errno(op->call, r, "left raft, but cannot record the demotion");
        free(op);
    }
}

struct self_demote {
    struct raft_transfer xfer;
    struct mgr *m;
    net_call *call;
    char node_id[SW_ID_LEN + 1];
};

/* The leader handed over (or could not): the demotion goes to whoever leads now. */
static void handed_over(struct raft_transfer *req)
{
    struct self_demote *sd = req->data;
    struct mgr *m = sd->m;
    Swarm__UpdateNodeRequest u = SWARM__UPDATE_NODE_REQUEST__INIT;
    u.id = sd->node_id;
    u.set_role = true;
    u.role = SWARM__NODE_ROLE__ROLE_WORKER;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (m->stopping || mgr__is_leader(m) || proto_pack(&u.base, &buf, &len) < 0)
        net_call_reply(sd->call, -EAGAIN,
                       "this node is the raft leader and could not hand leadership over; try "
                       "again in a moment",
                       NULL, 0);
    else
        mgr__forward_call(m, sd->call, buf, len);
    free(buf);
    free(sd);
}

/* Demote a manager: refused if it is the last one or if the managers left could not form
 * a quorum; the leader itself first hands leadership over. */
void mgr__demote(struct mgr *m, net_call *call, const Swarm__Node *n)
{
    char err[300];
    raft_id id = n->manager_status ? n->manager_status->raft_id : 0;
    const struct raft_server *target = id ? member(m, id) : NULL;
    if (!target)
        return net_call_reply(call, -EINVAL, "this node is not a raft member", NULL, 0);
    unsigned voters = 0, reachable = 0;
    uint64_t now = sw_now_monotonic_ns();
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *s = &m->raft.configuration.servers[i];
        if (s->role != RAFT_VOTER || s->id == id)
            continue;
        voters++;
        if (s->id == m->st.raft_id || now - mgr__raft_last_contact(m, s->id) < MGR_REACHABLE_NS)
            reachable++;
    }
    if (target->role == RAFT_VOTER && voters == 0)
        return net_call_reply(call, -EPERM, "the last manager cannot be demoted", NULL, 0);
    if (target->role == RAFT_VOTER && reachable < voters / 2 + 1) {
        snprintf(err, sizeof(err),
                 "demoting it would leave %u managers of which %u are reachable: the swarm "
                 "would lose its quorum; bring the others back first",
                 voters, reachable);
        return net_call_reply(call, -EPERM, err, NULL, 0);
    }
    if (id == m->st.raft_id) {
        /* the leader leaves raft only once another leads: hand over, then the new leader
         * does the demotion (the call goes there) */
        struct self_demote *sd = calloc(1, sizeof(*sd));
        if (!sd)
            return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
        sd->xfer.data = sd;
        sd->m = m;
        sd->call = call;
        snprintf(sd->node_id, sizeof(sd->node_id), "%s", n->id);
        if (raft_transfer(&m->raft, &sd->xfer, 0, handed_over) != 0) {
            free(sd);
            return net_call_reply(call, -EAGAIN,
                                  "this node is the raft leader and cannot hand leadership over "
                                  "now; try again in a moment",
                                  NULL, 0);
        }
        return;
    }
    struct demote_op *op = calloc(1, sizeof(*op));
    if (!op)
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    op->m = m;
    op->call = call;
    op->id = id;
    snprintf(op->node_id, sizeof(op->node_id), "%s", n->id);
    op->req.data = op;
    int r = raft_remove(&m->raft, &op->req, id, removed);
    if (r != 0) {
        snprintf(err, sizeof(err), "cannot remove the manager from raft: %s", raft_strerror(r));
        free(op);
        return net_call_reply(call, r == RAFT_CANTCHANGE ? -EAGAIN : -EIO, err, NULL, 0);
    }
}

void mgr__leader_hint(struct mgr *m, char *buf, size_t size)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (m->raft_inited)
        raft_leader(&m->raft, &id, &addr);
    if (addr && addr[0])
        snprintf(buf, size, "this manager is not the raft leader; the leader is at %s", addr);
    else
        snprintf(buf, size, "this manager is not the raft leader, and no leader is known yet");
}

int mgr__members_register(struct mgr *m)
{
    return net_server_register(m->server, "Raft.Join", NET_AUTH_MANAGER, h_raft_join, m);
}
