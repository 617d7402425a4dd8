/* Control.RemoveNode (a node leaves the cluster: its certificate is refused from then on)
 * and Control.UpdateCluster (certificate expiry, heartbeat period). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

#define CERT_EXPIRY_MIN_NS PKI_CERT_VALIDITY_MIN_NS
#define CERT_EXPIRY_MAX_NS PKI_CA_VALIDITY_NS
#define HEARTBEAT_MIN_NS (100ULL * SW_NSEC_PER_MSEC)
#define HEARTBEAT_MAX_NS (24ULL * 3600 * SW_NSEC_PER_SEC)

/* ------------------------------------------------------------------ node rm */

struct node_removal {
    net_call *call;
    char id[SW_ID_LEN + 1];
    bool force;
    char err[256];
};

static void node_names(const ProtobufCMessage *msg, const char **id, const char **name)
{
    const Swarm__Node *n = (const Swarm__Node *)msg;
    *id = n->id;
    *name = n->hostname;
}

/* Checked again when its turn comes: the node may have changed since the request. */
/* The removed node's ID goes into the cluster object, so that every manager (a follower
 * whose replica has no such node cannot tell "removed" from "not here yet") refuses it. */
static int add_tombstone(struct mgr *m, struct mgr_batch *b, const char *id)
{
    Swarm__Cluster *c = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return r;
    size_t n = c->n_removed_nodes;
    char **v = realloc(c->removed_nodes, (n + 1) * sizeof(*v));
    char *dup = strdup(id);
    if (!v || !dup) {
        free(dup);
        if (v)
            c->removed_nodes = v;
        mgr__cluster_free(c);
        return -ENOMEM;
    }
    c->removed_nodes = v;
    v[n++] = dup;
    if (n > MGR_TOMBSTONES_MAX) { /* the oldest go */
        size_t drop = n - MGR_TOMBSTONES_MAX;
        for (size_t i = 0; i < drop; i++)
            free(v[i]);
        memmove(v, v + drop, MGR_TOMBSTONES_MAX * sizeof(*v));
        n = MGR_TOMBSTONES_MAX;
    }
    c->n_removed_nodes = n;
    if (c->meta)
        c->meta->updated_at = sw_now_realtime_ns();
    r = mgr__batch_add(b, STORE_UPDATE, STORE_CLUSTER, c->id, &c->base);
    mgr__cluster_free(c);
    return r;
}

static int build_removal(struct mgr *m, struct mgr_batch *b, void *userdata)
{
    struct node_removal *nr = userdata;
    Swarm__Node *n = NULL;
    int r = mgr__get_node(m, nr->id, &n);
    if (r < 0) {
        snprintf(nr->err, sizeof(nr->err), "no such node: %s", nr->id);
        return r;
    }
    if (strcmp(nr->id, m->st.node_id) == 0) {
        snprintf(nr->err, sizeof(nr->err), "node %s is this manager: it cannot remove itself",
                 nr->id);
        r = -EPERM;
    } else if (n->manager_status || n->role == SWARM__NODE_ROLE__ROLE_MANAGER) {
        snprintf(nr->err, sizeof(nr->err),
                 "node %s is a cluster manager and a member of the raft cluster; demote it "
                 "first ('swarmctl node demote %s'), then remove it",
                 nr->id, nr->id);
        r = -EPERM;
    } else if (n->state == SWARM__NODE_STATE__NODE_READY && !nr->force) {
        snprintf(nr->err, sizeof(nr->err),
                 "node %s is not down and can't be removed; use --force to remove it anyway",
                 nr->id);
        r = -EBUSY;
    }
    swarm__node__free_unpacked(n, NULL);
    if (r < 0)
        return r;
    r = mgr__batch_add(b, STORE_DELETE, STORE_NODES, nr->id, NULL);
    if (r >= 0)
        r = add_tombstone(m, b, nr->id);
    return r;
}

static void removal_committed(struct mgr *m, int status, void *userdata)
{
    struct node_removal *nr = userdata;
    if (status < 0) {
        if (nr->err[0])
            net_call_reply(nr->call, status, nr->err, NULL, 0);
        else
            mgr__reply_errno(nr->call, status, "cannot remove the node");
        free(nr);
        return;
    }
    /* New handshakes with its certificate fail (authorize_peer finds no node); the
     * connections it has are closed now, which ends its dispatcher session. */
    mgr__dispatcher_end_session(m, nr->id);
    unsigned closed = m->server ? net_server_close_peer(m->server, nr->id) : 0;
    log_info("node %s removed%s (%u connection%s closed)", nr->id, nr->force ? " by force" : "",
             closed, closed == 1 ? "" : "s");
    Swarm__Empty resp = SWARM__EMPTY__INIT;
    mgr__reply_msg(nr->call, &resp.base);
    free(nr);
}

static void h_remove_node(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    if (!mgr__serving(m, call))
        return;
    Swarm__RemoveNodeRequest *req = (Swarm__RemoveNodeRequest *)mgr__request(
        call, &swarm__remove_node_request__descriptor, payload, len);
    if (!req)
        return;
    if (strlen(req->id) > 253) {
        swarm__remove_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "a node ID or hostname is required", NULL, 0);
    }
    struct mgr_objs nodes;
    int r = mgr__list(m, STORE_NODES, &swarm__node__descriptor, &nodes);
    if (r < 0) {
        swarm__remove_node_request__free_unpacked(req, NULL);
        return mgr__reply_errno(call, r, "cannot read nodes");
    }
    ssize_t i = mgr__objs_find(&nodes, req->id, node_names, err, sizeof(err), "node");
    bool force = req->force;
    swarm__remove_node_request__free_unpacked(req, NULL);
    if (i < 0) {
        mgr__objs_free(&nodes);
        return net_call_reply(call, (int)i, err, NULL, 0);
    }
    struct node_removal *nr = calloc(1, sizeof(*nr));
    if (!nr) {
        mgr__objs_free(&nodes);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    snprintf(nr->id, sizeof(nr->id), "%s", ((Swarm__Node *)nodes.v[i])->id);
    mgr__objs_free(&nodes);
    nr->call = call;
    nr->force = force;
    r = mgr__batch_update(m, build_removal, removal_committed, nr);
    if (r < 0) {
        free(nr);
        mgr__reply_errno(call, r, "cannot remove the node");
    }
}

/* ------------------------------------------------------------------ cluster update */

struct cluster_edit {
    net_call *call;
    struct {
        bool set_cert_expiry, set_heartbeat_period, set_snapshot_interval, set_autolock;
        bool autolock;
        uint64_t cert_expiry_ns, heartbeat_period_ns, snapshot_interval;
    } req;
    char unlock_key[PKI_UNLOCK_KEY_LEN + 1]; /* autolock just turned on: shown once */
};

static int edit_cluster(struct mgr *m, Swarm__Cluster *c, void *userdata)
{
    struct cluster_edit *e = userdata;
    if (!c->spec)
        return -EBADMSG;
    if (e->req.set_cert_expiry)
        c->spec->cert_expiry_ns = e->req.cert_expiry_ns;
    if (e->req.set_heartbeat_period)
        c->spec->heartbeat_period_ns = e->req.heartbeat_period_ns;
    if (e->req.set_snapshot_interval)
        c->spec->snapshot_interval = e->req.snapshot_interval;
    if (e->req.set_autolock) {
        int r = mgr__autolock_edit(c, e->req.autolock, e->unlock_key);
        if (r < 0)
            return r;
    }
    if (c->meta)
        c->meta->updated_at = sw_now_realtime_ns();
    return 0;
}

/* The cluster as it is now, never with the CA key, token secrets or the unlock key (but
 * for unlock_key: the one autolock was just turned on with, shown once). */
static void reply_cluster(struct mgr *m, net_call *call, const char *unlock_key)
{
    Swarm__Cluster *c = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot read the cluster object");
    Swarm__Cluster out = *c;
    out.root_ca = NULL;
    out.join_tokens = NULL;
    out.unlock_key.data = NULL;
    out.unlock_key.len = 0;
    Swarm__GetClusterResponse resp = SWARM__GET_CLUSTER_RESPONSE__INIT;
    resp.cluster = &out;
    if (unlock_key[0])
        resp.unlock_key = (char *)unlock_key;
    mgr__reply_msg_secret(call, &resp.base);
    mgr__cluster_free(c);
}

static void cluster_edited(struct mgr *m, int status, void *userdata)
{
    struct cluster_edit *e = userdata;
    net_call *call = e->call;
    bool hb = e->req.set_heartbeat_period;
    uint64_t period = e->req.heartbeat_period_ns;
    char key[PKI_UNLOCK_KEY_LEN + 1];
    memcpy(key, e->unlock_key, sizeof(key));
    sw_erase(e->unlock_key, sizeof(e->unlock_key));
    bool autolock = e->req.set_autolock;
    free(e);
    if (status < 0) {
        sw_erase(key, sizeof(key));
        return mgr__reply_errno(call, status, "cannot update the cluster");
    }
    if (autolock)
        mgr__autolock_check(m); /* this manager re-seals now; the others as they apply it */
    /* the next heartbeat answers carry the new period */
    if (hb)
        m->heartbeat_period_ns = period;
    log_info("cluster settings updated");
    reply_cluster(m, call, key);
    sw_erase(key, sizeof(key));
}

static void data_key_rotated(struct mgr *m, int status, const char *err, void *userdata)
{
    net_call *call = userdata;
    if (status < 0)
        return net_call_reply(call, status, err, NULL, 0);
    reply_cluster(m, call, "");
}

static void h_update_cluster(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    if (!mgr__serving(m, call))
        return;
    Swarm__UpdateClusterRequest *req = (Swarm__UpdateClusterRequest *)mgr__request(
        call, &swarm__update_cluster_request__descriptor, payload, len);
    if (!req)
        return;
    if (req->rotate_data_key) {
        bool alone = !req->set_cert_expiry && !req->set_heartbeat_period &&
                     !req->set_snapshot_interval && !req->set_autolock;
        swarm__update_cluster_request__free_unpacked(req, NULL);
        if (!alone)
            return net_call_reply(
                call, -EINVAL, "rotate the data key on its own, not with other settings", NULL, 0);
        char err[256];
        int r = mgr__datakey_rotate(m, data_key_rotated, call, err, sizeof(err));
        if (r < 0)
            net_call_reply(call, r, err, NULL, 0);
        return;
    }
    struct cluster_edit *e = calloc(1, sizeof(*e));
    if (!e) {
        swarm__update_cluster_request__free_unpacked(req, NULL);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    e->call = call;
    e->req.set_cert_expiry = req->set_cert_expiry;
    e->req.cert_expiry_ns = req->cert_expiry_ns;
    e->req.set_heartbeat_period = req->set_heartbeat_period;
    e->req.heartbeat_period_ns = req->heartbeat_period_ns;
    e->req.set_snapshot_interval = req->set_snapshot_interval;
    e->req.snapshot_interval = req->snapshot_interval;
    e->req.set_autolock = req->set_autolock;
    e->req.autolock = req->autolock;
    swarm__update_cluster_request__free_unpacked(req, NULL);
    const char *bad = NULL;
    if (!e->req.set_cert_expiry && !e->req.set_heartbeat_period && !e->req.set_snapshot_interval &&
        !e->req.set_autolock)
        bad =
            "nothing to update: set the certificate expiry, the heartbeat period, the "
            "snapshot interval or autolock";
    else if (e->req.set_snapshot_interval &&
             (e->req.snapshot_interval < 10 || e->req.snapshot_interval > 10000000))
        bad = "the snapshot interval must be from 10 to 10000000 raft entries";
    else if (e->req.set_cert_expiry && (e->req.cert_expiry_ns < CERT_EXPIRY_MIN_NS ||
                                        e->req.cert_expiry_ns > CERT_EXPIRY_MAX_NS))
        bad = "the certificate expiry must be from 1h to 175200h (the root CA's validity)";
    else if (e->req.set_heartbeat_period && (e->req.heartbeat_period_ns < HEARTBEAT_MIN_NS ||
                                             e->req.heartbeat_period_ns > HEARTBEAT_MAX_NS))
        bad = "the heartbeat period must be from 100ms to 24h";
    if (bad) {
        free(e);
        return net_call_reply(call, -EINVAL, bad, NULL, 0);
    }
    int r = mgr__cluster_update(m, edit_cluster, cluster_edited, e);
    if (r < 0) {
        free(e);
        mgr__reply_errno(call, r, "cannot update the cluster");
    }
}

int mgr__nodes_register(struct mgr *m)
{
    int r = mgr__register_leader_only(m, "Control.RemoveNode", NET_AUTH_MANAGER, h_remove_node);
    if (r >= 0)
        r = mgr__register_leader_only(m, "Control.UpdateCluster", NET_AUTH_MANAGER,
                                      h_update_cluster);
    return r;
}
