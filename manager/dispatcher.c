/* The dispatcher: one session per node (a server stream the node keeps open), heartbeats,
 * and the node's Ready/Down status in the store. A node is Down after three missed
 * heartbeat periods; when it opens a new session it is Ready again, without rejoining. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

#define MISSED_HEARTBEATS 3
#define CHECK_INTERVAL_MS 250

struct mgr_session {
    struct mgr *m;
    char node_id[SW_ID_LEN + 1];
    char session_id[SW_ID_LEN + 1];
    net_call *call;        /* the open stream; NULL once replied */
    uint64_t last_seen_ns; /* monotonic */
    bool ready;            /* the first message went out */
    Swarm__NodeDescription *desc;
    struct mgr_session *next;
};

static uint64_t period_ns(struct mgr *m)
{
    return m->heartbeat_period_ns ? m->heartbeat_period_ns : MGR_HEARTBEAT_DEFAULT_NS;
}

static struct mgr_session **find_slot(struct mgr *m, const char *node_id)
{
    for (struct mgr_session **p = &m->sessions; *p; p = &(*p)->next)
        if (strcmp((*p)->node_id, node_id) == 0)
            return p;
    return NULL;
}

/* End a session: its stream gets a final answer, it leaves the list, it is freed. */
static void session_end(struct mgr_session *s, int status, const char *why)
{
    struct mgr *m = s->m;
    for (struct mgr_session **p = &m->sessions; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    if (s->call)
        net_call_reply(s->call, status, why, NULL, 0);
    if (s->desc)
        swarm__node_description__free_unpacked(s->desc, NULL);
    free(s);
}

static void session_gone(net_call *call, void *userdata)
{
    struct mgr_session *s = userdata;
    /* the node's stream went away: the node stays Ready until its heartbeats are missed
     * (it may be reconnecting); the entry stays to time it out, but heartbeats on it are
     * refused so the node opens a new session */
    s->call = NULL;
    s->ready = false;
    net_call_reply(call, -ECANCELED, "gone", NULL, 0);
}

/* ------------------------------------------------------------------ node status */

struct status_change {
    Swarm__NodeState state;
    char message[128];
    Swarm__NodeDescription *desc; /* owned (READY only) */
    struct mgr_session *session;  /* READY: answered after the commit, if still open */
    char session_id[SW_ID_LEN + 1];
    char node_id[SW_ID_LEN + 1];
};

static char *dup_str(const char *s)
{
    return strdup(s ? s : "");
}

static int set_status(struct mgr *m, Swarm__Node *n, void *userdata)
{
    struct status_change *c = userdata;
    n->state = c->state;
    free(n->state_message != protobuf_c_empty_string ? n->state_message : NULL);
    n->state_message = dup_str(c->message);
    if (!n->state_message)
        return -ENOMEM;
    if (c->desc) {
        const Swarm__NodeDescription *d = c->desc;
        if (d->hostname[0]) {
            free(n->hostname != protobuf_c_empty_string ? n->hostname : NULL);
            n->hostname = dup_str(d->hostname);
        }
        if (d->addr[0]) {
            free(n->addr != protobuf_c_empty_string ? n->addr : NULL);
            n->addr = dup_str(d->addr);
        }
        if (d->os[0]) {
            free(n->os != protobuf_c_empty_string ? n->os : NULL);
            n->os = dup_str(d->os);
        }
        if (d->arch[0]) {
            free(n->arch != protobuf_c_empty_string ? n->arch : NULL);
            n->arch = dup_str(d->arch);
        }
        if (!n->hostname || !n->addr || !n->os || !n->arch)
            return -ENOMEM;
        if (d->resources) {
            if (!n->resources) {
                n->resources = calloc(1, sizeof(*n->resources));
                if (!n->resources)
                    return -ENOMEM;
                swarm__resources__init(n->resources);
            }
            n->resources->nano_cpus = d->resources->nano_cpus;
            n->resources->memory_bytes = d->resources->memory_bytes;
        }
    }
    return 0;
}

static void send_first(struct mgr_session *s)
{
    struct mgr *m = s->m;
    if (!s->call)
        return; /* the stream went away while the node was being recorded */
    char addr[80];
    mgr_advertise_addr(m, addr, sizeof(addr));
    Swarm__ManagerPeer self = SWARM__MANAGER_PEER__INIT;
    self.node_id = m->st.node_id;
    self.addr = addr;
    Swarm__ManagerPeer *peers[] = {&self};
    Swarm__SessionMessage msg = SWARM__SESSION_MESSAGE__INIT;
    msg.session_id = s->session_id;
    msg.heartbeat_period_ns = period_ns(m);
    msg.managers = peers;
    msg.n_managers = 1;
    uint8_t *buf;
    size_t len;
    if (proto_pack(&msg.base, &buf, &len) < 0) {
        session_end(s, -ENOMEM, "out of memory");
        return;
    }
    int r = net_call_send(s->call, buf, len);
    free(buf);
    if (r < 0) {
        session_end(s, r, "cannot send");
        return;
    }
    s->ready = true;
    s->last_seen_ns = sw_now_monotonic_ns();
}

static void status_committed(struct mgr *m, int status, void *userdata)
{
    struct status_change *c = userdata;
    struct mgr_session **slot = c->session ? find_slot(m, c->node_id) : NULL;
    struct mgr_session *s = slot && strcmp((*slot)->session_id, c->session_id) == 0 ? *slot : NULL;
    if (status < 0)
        log_warn("node %s: cannot record it as %s: %s", c->node_id,
                 c->state == SWARM__NODE_STATE__NODE_READY ? "ready" : "down", strerror(-status));
    else
        log_info("node %s is %s%s%s", c->node_id,
                 c->state == SWARM__NODE_STATE__NODE_READY ? "ready" : "down",
                 c->message[0] ? ": " : "", c->message);
    if (s) {
        if (status < 0)
            session_end(s, status, "cannot record the node as ready; try again");
        else
            send_first(s);
    }
    if (c->desc)
        swarm__node_description__free_unpacked(c->desc, NULL);
    free(c);
}

static int change_status(struct mgr *m, const char *node_id, Swarm__NodeState state,
                         const char *message, struct mgr_session *s)
{
    struct status_change *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->state = state;
    snprintf(c->message, sizeof(c->message), "%s", message ? message : "");
    snprintf(c->node_id, sizeof(c->node_id), "%s", node_id);
    c->session = s;
    if (s) {
        memcpy(c->session_id, s->session_id, sizeof(c->session_id));
        c->desc = s->desc; /* the session has no further use for it */
        s->desc = NULL;
    }
    int r = mgr__node_update(m, node_id, set_status, status_committed, c);
    if (r < 0) {
        if (c->desc)
            swarm__node_description__free_unpacked(c->desc, NULL);
        free(c);
    }
    return r;
}

/* ------------------------------------------------------------------ RPCs */

static bool valid_description(const Swarm__NodeDescription *d, char *err, size_t size)
{
    struct sw_addr a;
    if (!d) {
        snprintf(err, size, "a node description is required");
        return false;
    }
    if (d->hostname[0] && !sw_hostname_valid(d->hostname)) {
        snprintf(err, size, "invalid hostname");
        return false;
    }
    if (d->addr[0] && sw_addr_parse(d->addr, -1, 1, &a) < 0) {
        snprintf(err, size, "invalid node address %.64s", d->addr);
        return false;
    }
    if (strlen(d->os) > 32 || strlen(d->arch) > 32) {
        snprintf(err, size, "os/arch too long");
        return false;
    }
    if (d->resources && (d->resources->nano_cpus < 0 || d->resources->memory_bytes < 0)) {
        snprintf(err, size, "resources must not be negative");
        return false;
    }
    return true;
}

static void h_session(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    char err[160];

    if (!m->serving)
        return net_call_reply(call, -EAGAIN, "the manager is starting; try again", NULL, 0);
    if (peer->kind != NET_PEER_NODE)
        return net_call_reply(call, -EPERM, "a session needs a node certificate", NULL, 0);
    Swarm__SessionRequest *req = swarm__session_request__unpack(NULL, len, payload);
    if (!req)
        return net_call_reply(call, -EINVAL, "malformed SessionRequest", NULL, 0);
    if (!valid_description(req->description, err, sizeof(err))) {
        swarm__session_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, err, NULL, 0);
    }
    struct mgr_session **old = find_slot(m, peer->id.node_id);
    if (old)
        session_end(*old, -ECANCELED, "replaced by a newer session of this node");

    struct mgr_session *s = calloc(1, sizeof(*s));
    if (!s) {
        swarm__session_request__free_unpacked(req, NULL);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    s->m = m;
    s->call = call;
    memcpy(s->node_id, peer->id.node_id, SW_ID_LEN + 1);
    sw_id_generate(s->session_id);
    s->last_seen_ns = sw_now_monotonic_ns();
    s->desc = req->description;
    req->description = NULL;
    swarm__session_request__free_unpacked(req, NULL);
    s->next = m->sessions;
    m->sessions = s;
    net_call_on_gone(call, session_gone, s);

    int r = change_status(m, s->node_id, SWARM__NODE_STATE__NODE_READY, "", s);
    if (r < 0) {
        snprintf(err, sizeof(err), "cannot record the node as ready: %s", strerror(-r));
        session_end(s, r, err);
    }
}

static void h_heartbeat(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    if (peer->kind != NET_PEER_NODE)
        return net_call_reply(call, -EPERM, "a heartbeat needs a node certificate", NULL, 0);
    Swarm__HeartbeatRequest *req = swarm__heartbeat_request__unpack(NULL, len, payload);
    if (!req)
        return net_call_reply(call, -EINVAL, "malformed HeartbeatRequest", NULL, 0);
    struct mgr_session **slot = find_slot(m, peer->id.node_id);
    bool ok = slot && (*slot)->ready && strcmp((*slot)->session_id, req->session_id) == 0;
    swarm__heartbeat_request__free_unpacked(req, NULL);
    if (!ok)
        return net_call_reply(call, -ENOENT, "no such session; open a new one", NULL, 0);
    (*slot)->last_seen_ns = sw_now_monotonic_ns();
    Swarm__HeartbeatResponse resp = SWARM__HEARTBEAT_RESPONSE__INIT;
    resp.period_ns = period_ns(m);
    uint8_t *buf;
    size_t n;
    if (proto_pack(&resp.base, &buf, &n) < 0)
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    net_call_reply(call, 0, NULL, buf, n);
    free(buf);
}

/* ------------------------------------------------------------------ expiry */

struct down_scan {
    struct mgr *m;
    char ids[64][SW_ID_LEN + 1];
    size_t n;
};

/* Ready workers and managers other than this one, without a session. */
static int collect_orphans(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    struct down_scan *d = userdata;
    if (strcmp(id, d->m->st.node_id) == 0 || find_slot(d->m, id))
        return 0;
    Swarm__Node *n = swarm__node__unpack(NULL, len, value);
    if (!n)
        return 0;
    bool ready = n->state == SWARM__NODE_STATE__NODE_READY;
    swarm__node__free_unpacked(n, NULL);
    if (ready && d->n < sizeof(d->ids) / sizeof(d->ids[0]))
        memcpy(d->ids[d->n++], id, SW_ID_LEN + 1);
    return 0;
}

static void check_timer_cb(uv_timer_t *t)
{
    struct mgr *m = t->data;
    if (!m->serving || !mgr__is_leader(m))
        return;
    uint64_t now = sw_now_monotonic_ns(), limit = MISSED_HEARTBEATS * period_ns(m);

    for (struct mgr_session *s = m->sessions, *next; s; s = next) {
        next = s->next;
        if (now - s->last_seen_ns > limit) {
            char id[SW_ID_LEN + 1];
            memcpy(id, s->node_id, sizeof(id));
            session_end(s, -ETIMEDOUT, "heartbeat failure");
            change_status(m, id, SWARM__NODE_STATE__NODE_DOWN, "heartbeat failure", NULL);
        }
    }
    /* after a start, nodes that were Ready get the same grace to come back */
    if (!m->orphans_checked && now - m->dispatcher_start_ns > limit) {
        struct down_scan d = {.m = m};
        store_txn *txn;
        if (store_read_begin(m->store, &txn) >= 0) {
            store_foreach(txn, STORE_NODES, collect_orphans, &d);
            store_read_end(txn);
        }
        for (size_t i = 0; i < d.n; i++)
            change_status(m, d.ids[i], SWARM__NODE_STATE__NODE_DOWN, "heartbeat failure", NULL);
        m->orphans_checked = d.n < sizeof(d.ids) / sizeof(d.ids[0]);
    }
}

/* ------------------------------------------------------------------ lifecycle */

int mgr__dispatcher_register(struct mgr *m)
{
    int r = net_server_register(m->server, "Dispatcher.Session", NET_AUTH_NODE, h_session, m);
    if (r >= 0)
        r = net_server_register(m->server, "Dispatcher.Heartbeat", NET_AUTH_NODE, h_heartbeat, m);
    return r;
}

void mgr__dispatcher_start(struct mgr *m)
{
    Swarm__Cluster *c = NULL;
    if (mgr__get_cluster(m, &c) >= 0) {
        m->heartbeat_period_ns = c->spec->heartbeat_period_ns;
        mgr__cluster_free(c);
    }
    m->dispatcher_start_ns = sw_now_monotonic_ns();
    m->orphans_checked = false;
    uv_timer_start(&m->dispatcher_timer, check_timer_cb, CHECK_INTERVAL_MS, CHECK_INTERVAL_MS);
}

void mgr__dispatcher_stop(struct mgr *m)
{
    uv_timer_stop(&m->dispatcher_timer);
    while (m->sessions)
        session_end(m->sessions, -ECANCELED, "the manager is stopping");
}
