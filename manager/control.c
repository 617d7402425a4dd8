/* The control API on the local socket (and, for manager certificates, over mTLS):
 * nodes, the cluster, join tokens. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

/* Observed manager status, filled from raft at read time. */
static void fill_live(struct mgr *m, Swarm__Node *n)
{
    if (!n->manager_status)
        return;
    uint64_t leader = mgr__leader_raft_id(m);
    uint64_t id = n->manager_status->raft_id;
    n->manager_status->leader = leader != 0 && leader == id;
    /* raft traffic flows at least every heartbeat (100 ms) between the leader and each
     * member: one that has said nothing for REACHABLE_NS is unreachable */
    bool reachable = id == m->st.raft_id || n->manager_status->leader ||
                     sw_now_monotonic_ns() - mgr__raft_last_contact(m, id) < MGR_REACHABLE_NS;
    n->manager_status->reachability =
        reachable ? SWARM__REACHABILITY__REACH_REACHABLE : SWARM__REACHABILITY__REACH_UNREACHABLE;
}

/* ------------------------------------------------------------------ nodes */

struct node_list {
    Swarm__Node **v;
    size_t n, cap;
};

static void node_list_free(struct node_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        swarm__node__free_unpacked(l->v[i], NULL);
    free(l->v);
}

static int collect_node(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    struct node_list *l = userdata;
    Swarm__Node *n = swarm__node__unpack(NULL, len, value);
    if (!n)
        return -EBADMSG;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        Swarm__Node **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            swarm__node__free_unpacked(n, NULL);
            return -ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
    return 0;
}

static int list_nodes(struct mgr *m, struct node_list *l)
{
    store_txn *t;
    int r = store_read_begin(m->store, &t);
    if (r < 0)
        return r;
    r = store_foreach(t, STORE_NODES, collect_node, l);
    store_read_end(t);
    return r;
}

static void h_list_nodes(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    struct node_list l = {0};
    if (!mgr__serving(m, call))
        return;
    int r = list_nodes(m, &l);
    if (r < 0) {
        node_list_free(&l);
        return mgr__reply_errno(call, r, "cannot list nodes");
    }
    for (size_t i = 0; i < l.n; i++)
        fill_live(m, l.v[i]);
    Swarm__ListNodesResponse resp = SWARM__LIST_NODES_RESPONSE__INIT;
    resp.nodes = l.v;
    resp.n_nodes = l.n;
    mgr__reply_msg(call, &resp.base);
    node_list_free(&l);
}

/* Find a node by full ID, unique ID prefix, or hostname. */
static int find_node(struct mgr *m, const char *ref, Swarm__Node **ret, char *err, size_t size)
{
    struct node_list l = {0};
    int r = list_nodes(m, &l);
    if (r < 0) {
        node_list_free(&l);
        snprintf(err, size, "cannot list nodes: %s", strerror(-r));
        return r;
    }
    size_t ref_len = strlen(ref);
    ssize_t exact = -1, match = -1;
    size_t matches = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.v[i]->id, ref) == 0) {
            exact = (ssize_t)i;
            break;
        }
        if ((ref_len > 0 && strncmp(l.v[i]->id, ref, ref_len) == 0) ||
            strcmp(l.v[i]->hostname, ref) == 0) {
            match = (ssize_t)i;
            matches++;
        }
    }
    if (exact < 0 && matches == 1)
        exact = match;
    if (exact < 0) {
        node_list_free(&l);
        if (matches > 1) {
            snprintf(err, size, "node %s is ambiguous (%zu matches); use the full ID", ref,
                     matches);
            return -EINVAL;
        }
        snprintf(err, size, "no such node: %s", ref);
        return -ENOENT;
    }
    *ret = l.v[exact];
    l.v[exact] = l.v[--l.n];
    node_list_free(&l);
    return 0;
}

static void h_get_node(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    char err[256];
    Swarm__Node *n = NULL;
    if (!mgr__serving(m, call))
        return;
    Swarm__GetNodeRequest *req = (Swarm__GetNodeRequest *)mgr__request(
        call, &swarm__get_node_request__descriptor, payload, len);
    if (!req)
        return;
    if (req->id[0] == '\0' || strlen(req->id) > 253) {
        swarm__get_node_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "a node ID or hostname is required", NULL, 0);
    }
    int r = find_node(m, req->id, &n, err, sizeof(err));
    swarm__get_node_request__free_unpacked(req, NULL);
    if (r < 0)
        return net_call_reply(call, r, err, NULL, 0);
    fill_live(m, n);
    Swarm__GetNodeResponse resp = SWARM__GET_NODE_RESPONSE__INIT;
    resp.node = n;
    mgr__reply_msg(call, &resp.base);
    swarm__node__free_unpacked(n, NULL);
}

/* ------------------------------------------------------------------ cluster */

static void wipe_string(char *s)
{
    if (s && s != protobuf_c_empty_string) {
        sw_erase(s, strlen(s));
        s[0] = '\0';
    }
}

static void h_get_cluster(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    Swarm__Cluster *c = NULL;
    char wd[65], md[65];
    if (!mgr__serving(m, call))
        return;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot read the cluster object");
    Swarm__GetClusterResponse resp = SWARM__GET_CLUSTER_RESPONSE__INIT;
    pki_sha256_hex(c->join_tokens->worker, strlen(c->join_tokens->worker), wd);
    pki_sha256_hex(c->join_tokens->manager, strlen(c->join_tokens->manager), md);
    resp.worker_token_digest = wd;
    resp.manager_token_digest = md;
    uint64_t not_after = 0;
    if (pki_cert_not_after(c->root_ca->ca_cert_pem, strlen(c->root_ca->ca_cert_pem), &not_after) >=
        0)
        resp.ca_cert_not_after = not_after;
    /* never hand out the CA key or token secrets */
    unsigned done = 0, total = 0;
    if (mgr__rootca_progress(m, c, &done, &total) > 0) {
        resp.root_rotation = true;
        resp.rotation_nodes_done = done;
        resp.rotation_nodes_total = total;
    }
    sw_erase(c->root_ca->ca_key_pem.data, c->root_ca->ca_key_pem.len);
    c->root_ca->ca_key_pem.len = 0;
    sw_erase(c->root_ca->rotation_old_key_pem.data, c->root_ca->rotation_old_key_pem.len);
    c->root_ca->rotation_old_key_pem.len = 0;
    wipe_string(c->join_tokens->worker);
    wipe_string(c->join_tokens->manager);
    if (c->unlock_key.data)
        sw_erase(c->unlock_key.data, c->unlock_key.len);
    c->unlock_key.len = 0;
    resp.cluster = c;
    mgr__reply_msg(call, &resp.base);
    mgr__cluster_free(c);
}

/* ------------------------------------------------------------------ join tokens */

struct token_call {
    net_call *call;
    int role;
};

static void reply_token(struct mgr *m, net_call *call, int role)
{
    char token[PKI_TOKEN_LEN + 1], addr[80];
    int r = mgr_join_token(m, role, token, sizeof(token));
    if (r < 0)
        return mgr__reply_errno(call, r, "cannot read the join tokens");
    mgr_advertise_addr(m, addr, sizeof(addr));
    Swarm__GetJoinTokenResponse resp = SWARM__GET_JOIN_TOKEN_RESPONSE__INIT;
    resp.token = token;
    resp.manager_addr = addr;
    mgr__reply_msg(call, &resp.base);
    sw_erase(token, sizeof(token));
}

static int rotate_mutate(struct mgr *m, Swarm__Cluster *c, void *userdata)
{
    struct token_call *tc = userdata;
    char token[PKI_TOKEN_LEN + 1];
    int r = pki_token_generate(c->root_ca->ca_cert_pem, strlen(c->root_ca->ca_cert_pem), token);
    if (r < 0)
        return r;
    char **slot = tc->role ? &c->join_tokens->manager : &c->join_tokens->worker;
    char *fresh = strdup(token);
    sw_erase(token, sizeof(token));
    if (!fresh)
        return -ENOMEM;
    if (*slot && *slot != protobuf_c_empty_string) {
        sw_erase(*slot, strlen(*slot));
        free(*slot);
    }
    *slot = fresh;
    return 0;
}

static void rotate_committed(struct mgr *m, int status, void *userdata)
{
    struct token_call *tc = userdata;
    if (status < 0)
        mgr__reply_errno(tc->call, status, "cannot rotate the join token");
    else {
        log_info("rotated the %s join token", tc->role ? "manager" : "worker");
        reply_token(m, tc->call, tc->role);
    }
    free(tc);
}

static void h_get_join_token(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    if (!mgr__serving(m, call))
        return;
    Swarm__GetJoinTokenRequest *req = (Swarm__GetJoinTokenRequest *)mgr__request(
        call, &swarm__get_join_token_request__descriptor, payload, len);
    if (!req)
        return;
    int role = req->role == SWARM__NODE_ROLE__ROLE_MANAGER ? 1 : 0;
    bool valid =
        req->role == SWARM__NODE_ROLE__ROLE_MANAGER || req->role == SWARM__NODE_ROLE__ROLE_WORKER;
    bool rotate = req->rotate;
    swarm__get_join_token_request__free_unpacked(req, NULL);
    if (!valid)
        return net_call_reply(call, -EINVAL, "role must be worker or manager", NULL, 0);
    if (!rotate)
        return reply_token(m, call, role);
    struct token_call *tc = calloc(1, sizeof(*tc));
    if (!tc)
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    tc->call = call;
    tc->role = role;
    int r = mgr__cluster_update(m, rotate_mutate, rotate_committed, tc);
    if (r < 0) {
        free(tc);
        mgr__reply_errno(call, r, "cannot rotate the join token");
    }
}

int mgr__control_register(struct mgr *m)
{
    static const struct {
        const char *method;
        net_handler_fn fn;
    } methods[] = {
        {"Control.ListNodes", h_list_nodes},
        {"Control.GetNode", h_get_node},
        {"Control.GetCluster", h_get_cluster},
        {"Control.GetJoinToken", h_get_join_token},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        int r = mgr__register_leader_only(m, methods[i].method, NET_AUTH_MANAGER, methods[i].fn);
        if (r < 0)
            return r;
    }
    return 0;
}
