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
#define RUNTIME_ERROR_MAX 512

struct mgr_session {
    struct mgr *m;
    char node_id[SW_ID_LEN + 1];
    char session_id[SW_ID_LEN + 1];
    net_call *call;          /* the open stream; NULL once replied */
    uint64_t last_seen_ns;   /* monotonic */
    uint64_t period_sent_ns; /* the period the node was last told */
    uint64_t period_prev_ns; /* and the one before (its timer may still run on that) */
    bool ready;              /* the first message went out */
    char runtime_error[RUNTIME_ERROR_MAX + 1]; /* what the node last said of its runtime */
    Swarm__NodeDescription *desc;
    struct pki_identity cert;       /* the certificate the node opened the session with */
    char (*secrets)[SW_ID_LEN + 1]; /* secret ids this node holds (sent, not removed) */
    size_t n_secrets;
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
    free(s->secrets);
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
    struct pki_identity cert; /* READY: the certificate the node presents */
    bool has_cert;
};

/* The node opened its session with another certificate than the one recorded: a renewal
 * committed whose answer never reached it. When it is the previous one (the usual case) that
 * becomes the record again; otherwise what it presents is recorded, without its PEM. Either
 * way a root rotation does not count it as moved, and it is asked to renew again. */
static int reconcile_cert(Swarm__Node *n, const struct pki_identity *id)
{
    Swarm__NodeCertificate *c = n->certificate;
    if (!c || !c->serial || strcmp(c->serial, id->serial) == 0)
        return 0;
    log_debug("node %s presents certificate %s, not %s (recorded): asking it to renew", n->id,
              id->serial, c->serial);
    struct pki_identity prev;
    bool is_prev =
        n->previous_cert_pem && n->previous_cert_pem[0] &&
        pki_identity_from_pem(n->previous_cert_pem, strlen(n->previous_cert_pem), &prev) >= 0 &&
        strcmp(prev.serial, id->serial) == 0;
    /* (a failed copy fails the update, which then writes nothing) */
    if (mgr__set_str(&c->cert_pem, is_prev ? n->previous_cert_pem : "") < 0 ||
        mgr__set_str(&c->issuer, id->issuer) < 0 || mgr__set_str(&c->serial, id->serial) < 0 ||
        mgr__set_str(&c->authority_key_id, id->authority_key_id) < 0)
        return -ENOMEM;
    c->not_before = id->not_before_ns;
    c->not_after = id->not_after_ns;
    n->cert_rotate = SW_MAX(n->cert_rotate, n->cert_rotated) + 1;
    return 0;
}

static int set_status(struct mgr *m, Swarm__Node *n, void *userdata)
{
    struct status_change *c = userdata;
    n->state = c->state;
    if (c->state == SWARM__NODE_STATE__NODE_READY)
        n->rejoin_allowed = false; /* back in session: it joined again (or never needed to) */
    if (c->has_cert) {
        int r = reconcile_cert(n, &c->cert);
        if (r < 0)
            return r;
    }
    if (mgr__set_str(&n->state_message, c->message) < 0)
        return -ENOMEM;
    if (c->desc) {
        const Swarm__NodeDescription *d = c->desc;
        if ((d->hostname[0] && mgr__set_str(&n->hostname, d->hostname) < 0) ||
            (d->addr[0] && mgr__set_str(&n->addr, d->addr) < 0) ||
            (d->os[0] && mgr__set_str(&n->os, d->os) < 0) ||
            (d->arch[0] && mgr__set_str(&n->arch, d->arch) < 0) ||
            mgr__set_str(&n->runtime_error, d->runtime_error) < 0)
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

/* ------------------------------------------------------------------ assignments */

struct assign_list {
    Swarm__Assignment **v;
    size_t n, cap;
    struct mgr_objs owned_tasks;
    ProtobufCMessage **owned;
    size_t n_owned;
};

static int assign_add(struct assign_list *l, Swarm__AssignmentAction action, Swarm__Task *task,
                      Swarm__Secret *secret)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        Swarm__Assignment **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    Swarm__Assignment *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    swarm__assignment__init(a);
    a->action = action;
    a->task = task;
    a->secret = secret;
    l->v[l->n++] = a;
    return 0;
}

static void assign_free(struct assign_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i]->secret) {
            sw_erase(l->v[i]->secret->data.data, l->v[i]->secret->data.len);
            swarm__secret__free_unpacked(l->v[i]->secret, NULL);
        }
        free(l->v[i]);
    }
    free(l->v);
    mgr__objs_free(&l->owned_tasks);
}

/* The scheduler put the task on its node: a global task is bound to its node from the
 * start but waits, pending, until the node can take it (reservations). */
static bool placed(const Swarm__Task *t)
{
    return t->state >= SWARM__TASK_STATE__TASK_ASSIGNED &&
           t->state < SWARM__TASK_STATE__TASK_COMPLETE;
}

static bool holds_secret(const struct mgr_session *s, const char *id)
{
    for (size_t i = 0; i < s->n_secrets; i++)
        if (strcmp(s->secrets[i], id) == 0)
            return true;
    return false;
}

/* Secrets the node's live tasks need: send the missing ones, remove the unneeded. */
static int sync_secrets(struct mgr *m, struct mgr_session *s, const struct mgr_objs *tasks,
                        struct assign_list *l)
{
    /* needed ids */
    size_t cap = 0, n = 0;
    char(*need)[SW_ID_LEN + 1] = NULL;
    for (size_t i = 0; i < tasks->n; i++) {
        const Swarm__Task *t = (const Swarm__Task *)tasks->v[i];
        if (!placed(t) || t->desired_state > SWARM__TASK_STATE__TASK_RUNNING ||
            t->state >= SWARM__TASK_STATE__TASK_COMPLETE || !t->spec)
            continue;
        for (size_t j = 0; j < t->spec->n_secrets; j++) {
            const char *id = t->spec->secrets[j]->secret_id;
            bool dup = false;
            for (size_t k = 0; k < n && !dup; k++)
                dup = strcmp(need[k], id) == 0;
            if (dup || !sw_id_valid(id))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                char(*v)[SW_ID_LEN + 1] = realloc(need, cap * sizeof(*v));
                if (!v) {
                    free(need);
                    return -ENOMEM;
                }
                need = v;
            }
            memcpy(need[n++], id, SW_ID_LEN + 1);
        }
    }
    int r = 0;
    for (size_t k = 0; k < n && r >= 0; k++) {
        if (holds_secret(s, need[k]))
            continue;
        store_txn *txn;
        uint8_t *val = NULL;
        size_t len = 0;
        if (store_read_begin(m->store, &txn) < 0)
            continue;
        int g = store_get(txn, STORE_SECRETS, need[k], &val, &len);
        store_read_end(txn);
        if (g < 0)
            continue; /* gone: the task will be rejected by the node */
        Swarm__Secret *sec = swarm__secret__unpack(NULL, len, val);
        sw_erase(val, len);
        free(val);
        if (sec)
            r = assign_add(l, SWARM__ASSIGNMENT_ACTION__ASSIGN_UPDATE, NULL, sec);
    }
    for (size_t i = 0; i < s->n_secrets && r >= 0; i++) {
        bool needed = false;
        for (size_t k = 0; k < n && !needed; k++)
            needed = strcmp(need[k], s->secrets[i]) == 0;
        if (needed)
            continue;
        Swarm__Secret *gone = calloc(1, sizeof(*gone));
        if (!gone) {
            r = -ENOMEM;
            break;
        }
        swarm__secret__init(gone);
        gone->id = strdup(s->secrets[i]);
        r = gone->id ? assign_add(l, SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE, NULL, gone) : -ENOMEM;
        if (r < 0)
            swarm__secret__free_unpacked(gone, NULL);
    }
    if (r >= 0) {
        free(s->secrets);
        s->secrets = need;
        s->n_secrets = n;
    } else {
        free(need);
    }
    return r;
}

static int send_assignments(struct mgr_session *s, bool full, struct assign_list *l, bool renew)
{
    struct mgr *m = s->m;
    char addr[80];
    mgr_advertise_addr(m, addr, sizeof(addr));
    /* every manager, this one (the leader) first: the node fails over to the others */
    Swarm__ManagerPeer pv[MGR_PEERS_MAX], *peers[MGR_PEERS_MAX];
    size_t np = 0;
    swarm__manager_peer__init(&pv[0]);
    pv[0].node_id = m->st.node_id;
    pv[0].addr = addr;
    peers[np++] = &pv[0];
    for (size_t i = 0; i < m->n_peers && np < MGR_PEERS_MAX; i++) {
        if (strcmp(m->peers[i].node_id, m->st.node_id) == 0)
            continue;
        swarm__manager_peer__init(&pv[np]);
        pv[np].node_id = m->peers[i].node_id;
        pv[np].addr = m->peers[i].addr;
        peers[np] = &pv[np];
        np++;
    }
    Swarm__SessionMessage msg = SWARM__SESSION_MESSAGE__INIT;
    msg.session_id = s->session_id;
    msg.heartbeat_period_ns = period_ns(m);
    s->period_sent_ns = msg.heartbeat_period_ns;
    msg.managers = peers;
    msg.n_managers = np;
    msg.full = full;
    msg.assignments = l->v;
    msg.n_assignments = l->n;
    msg.renew_certificate = renew;
    uint8_t *buf;
    size_t len;
    int r = proto_pack(&msg.base, &buf, &len);
    if (r < 0)
        return r;
    r = net_call_send(s->call, buf, len);
    sw_erase(buf, len);
    free(buf);
    return r;
}

/* The operator asked this node to renew its certificate and it has not yet. */
static bool node_renew_asked(const Swarm__Node *n)
{
    return n && n->cert_rotate > n->cert_rotated;
}

static bool renew_asked(struct mgr *m, const char *node_id)
{
    Swarm__Node *n = NULL;
    if (mgr__get_node(m, node_id, &n) < 0)
        return false;
    bool asked = node_renew_asked(n);
    swarm__node__free_unpacked(n, NULL);
    return asked;
}

static void send_first(struct mgr_session *s)
{
    struct mgr *m = s->m;
    if (!s->call)
        return; /* the stream went away while the node was being recorded */
    struct assign_list l = {0};
    int r = mgr__list_index(m, STORE_TASKS_BY_NODE, s->node_id, &l.owned_tasks);
    for (size_t i = 0; r >= 0 && i < l.owned_tasks.n; i++) {
        Swarm__Task *t = (Swarm__Task *)l.owned_tasks.v[i];
        /* not yet placed, or finished (history): nothing for the node to run */
        if (placed(t) && t->state < SWARM__TASK_STATE__TASK_COMPLETE)
            r = assign_add(&l, SWARM__ASSIGNMENT_ACTION__ASSIGN_UPDATE, t, NULL);
    }
    free(s->secrets);
    s->secrets = NULL;
    s->n_secrets = 0;
    if (r >= 0)
        r = sync_secrets(m, s, &l.owned_tasks, &l);
    if (r >= 0)
        r = send_assignments(s, true, &l, renew_asked(m, s->node_id));
    assign_free(&l);
    if (r < 0) {
        session_end(s, r, "cannot send the node its assignments");
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
        if (state == SWARM__NODE_STATE__NODE_READY) {
            c->cert = s->cert;
            c->has_cert = s->cert.serial[0] != '\0';
        }
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
    if (strlen(d->runtime_error) > RUNTIME_ERROR_MAX) {
        snprintf(err, size, "runtime error too long");
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
    if (!m->leading) {
        mgr__leader_hint(m, err, sizeof(err));
        return net_call_reply(call, -EAGAIN, err, NULL, 0);
    }
    Swarm__SessionRequest *req = (Swarm__SessionRequest *)mgr__request(
        call, &swarm__session_request__descriptor, payload, len);
    if (!req)
        return;
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
    s->cert = peer->id;
    sw_id_generate(s->session_id);
    s->last_seen_ns = sw_now_monotonic_ns();
    snprintf(s->runtime_error, sizeof(s->runtime_error), "%s", req->description->runtime_error);
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

static int set_runtime_error(struct mgr *m, Swarm__Node *n, void *userdata)
{
    return mgr__set_str(&n->runtime_error, userdata);
}

static void runtime_error_done(struct mgr *m, int status, void *userdata)
{
    if (status < 0)
        log_debug("cannot record a node's runtime state: %s", strerror(-status));
    free(userdata);
}

static void h_heartbeat(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    if (peer->kind != NET_PEER_NODE)
        return net_call_reply(call, -EPERM, "a heartbeat needs a node certificate", NULL, 0);
    Swarm__HeartbeatRequest *req = (Swarm__HeartbeatRequest *)mgr__request(
        call, &swarm__heartbeat_request__descriptor, payload, len);
    if (!req)
        return;
    struct mgr_session **slot = find_slot(m, peer->id.node_id);
    bool ok = slot && (*slot)->ready && strcmp((*slot)->session_id, req->session_id) == 0;
    if (ok && strlen(req->runtime_error) > RUNTIME_ERROR_MAX) {
        swarm__heartbeat_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "runtime error too long", NULL, 0);
    }
    if (ok && strcmp((*slot)->runtime_error, req->runtime_error) != 0) {
        /* the node's runtime broke (or came back) since its session opened */
        struct mgr_session *s = *slot;
        snprintf(s->runtime_error, sizeof(s->runtime_error), "%s", req->runtime_error);
        char *copy = strdup(s->runtime_error);
        int r = copy ? mgr__node_update(m, s->node_id, set_runtime_error, runtime_error_done, copy)
                     : -ENOMEM;
        if (r < 0) {
            free(copy);
            s->runtime_error[0] = '\1'; /* differs from anything: try again next time */
        }
    }
    swarm__heartbeat_request__free_unpacked(req, NULL);
    if (!ok)
        return net_call_reply(call, -ENOENT, "no such session; open a new one", NULL, 0);
    (*slot)->last_seen_ns = sw_now_monotonic_ns();
    (*slot)->period_prev_ns = (*slot)->period_sent_ns;
    (*slot)->period_sent_ns = period_ns(m);
    Swarm__HeartbeatResponse resp = SWARM__HEARTBEAT_RESPONSE__INIT;
    resp.period_ns = period_ns(m);
    uint8_t *buf;
    size_t n;
    if (proto_pack(&resp.base, &buf, &n) < 0)
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    net_call_reply(call, 0, NULL, buf, n);
    free(buf);
}

static bool task_changed_for_node(const Swarm__Task *old, const Swarm__Task *t)
{
    return !old || old->desired_state != t->desired_state || old->spec_version != t->spec_version ||
           strcmp(old->node_id, t->node_id) != 0 || placed(old) != placed(t);
}

static void notify_node(struct mgr *m, const char *node_id, Swarm__Task *task, bool removed)
{
    struct mgr_session **slot = node_id[0] ? find_slot(m, node_id) : NULL;
    if (!slot || !(*slot)->ready || !(*slot)->call)
        return;
    struct mgr_session *s = *slot;
    /* a task not placed here (yet), or ended here, is nothing for the node to run; what
     * changed may still free a secret */
    bool send = removed || placed(task);
    struct assign_list l = {0};
    int r = send ? assign_add(&l,
                              removed ? SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE
                                      : SWARM__ASSIGNMENT_ACTION__ASSIGN_UPDATE,
                              task, NULL)
                 : 0;
    if (r >= 0)
        r = mgr__list_index(m, STORE_TASKS_BY_NODE, node_id, &l.owned_tasks);
    if (r >= 0)
        r = sync_secrets(m, s, &l.owned_tasks, &l);
    if (r >= 0 && l.n > 0)
        r = send_assignments(s, false, &l, false);
    if (send && l.n > 0)
        l.v[0]->task = NULL; /* borrowed */
    assign_free(&l);
    if (r < 0)
        session_end(s, r, "cannot send the node its assignments");
}

/* The managers' addresses, for session messages. */
static void peers_refresh(struct mgr *m)
{
    struct mgr_objs nodes;
    if (mgr__list(m, STORE_NODES, &swarm__node__descriptor, &nodes) < 0)
        return;
    m->n_peers = 0;
    for (size_t i = 0; i < nodes.n && m->n_peers < MGR_PEERS_MAX; i++) {
        const Swarm__Node *n = (const Swarm__Node *)nodes.v[i];
        if (n->role != SWARM__NODE_ROLE__ROLE_MANAGER || !n->manager_status ||
            !n->manager_status->addr[0])
            continue;
        struct mgr_peer *p = &m->peers[m->n_peers++];
        snprintf(p->node_id, sizeof(p->node_id), "%s", n->id);
        snprintf(p->addr, sizeof(p->addr), "%s", n->manager_status->addr);
    }
    mgr__objs_free(&nodes);
}

static bool is_manager(const Swarm__Node *n)
{
    return n && (n->role == SWARM__NODE_ROLE__ROLE_MANAGER || n->manager_status);
}

/* A node object changed: a newly asked certificate renewal goes to the node at once; a
 * manager's change updates the managers named to nodes. */
static void node_event(struct mgr *m, const struct store_event *ev)
{
    Swarm__Node *old = ev->old_value ? swarm__node__unpack(NULL, ev->old_len, ev->old_value) : NULL;
    Swarm__Node *n = ev->value ? swarm__node__unpack(NULL, ev->len, ev->value) : NULL;
    if (is_manager(old) || is_manager(n))
        peers_refresh(m);
    if (node_renew_asked(n) && (!old || old->cert_rotate != n->cert_rotate)) {
        struct mgr_session **slot = find_slot(m, n->id);
        if (slot && (*slot)->ready && (*slot)->call) {
            struct assign_list l = {0};
            if (send_assignments(*slot, false, &l, true) < 0)
                session_end(*slot, -EPIPE, "cannot send the node a message");
        }
    }
    if (old)
        swarm__node__free_unpacked(old, NULL);
    if (n)
        swarm__node__free_unpacked(n, NULL);
}

void mgr__dispatcher_store_event(struct mgr *m, const struct store_event *ev)
{
    if (ev->table == STORE_NODES) {
        node_event(m, ev);
        return;
    }
    if (!m->sessions)
        return;
    if (ev->table != STORE_TASKS)
        return;
    Swarm__Task *old = ev->old_value ? swarm__task__unpack(NULL, ev->old_len, ev->old_value) : NULL;
    Swarm__Task *t = ev->value ? swarm__task__unpack(NULL, ev->len, ev->value) : NULL;
    if (t && !task_changed_for_node(old, t)) {
        /* a status the node itself reported: nothing new for it */
    } else if (t) {
        if (old && old->node_id[0] && strcmp(old->node_id, t->node_id) != 0)
            notify_node(m, old->node_id, old, true);
        notify_node(m, t->node_id, t, false);
    } else if (old) {
        notify_node(m, old->node_id, old, true);
    }
    if (old)
        swarm__task__free_unpacked(old, NULL);
    if (t)
        swarm__task__free_unpacked(t, NULL);
}

/* ------------------------------------------------------------------ task status */

struct status_batch {
    net_call *call;
    char node_id[SW_ID_LEN + 1];
    Swarm__UpdateTaskStatusRequest *req;
};

static void set_field(char **f, const char *v)
{
    (void)mgr__set_str(f, v); /* a failed copy leaves the old message */
}

static int build_status(struct mgr *m, struct mgr_batch *b, void *userdata)
{
    struct status_batch *sb = userdata;
    for (size_t i = 0; i < sb->req->n_updates; i++) {
        const Swarm__TaskStatusUpdate *u = sb->req->updates[i];
        Swarm__Task *t = NULL;
        store_txn *txn;
        uint8_t *val = NULL;
        size_t len = 0;
        if (!sw_id_valid(u->task_id) || store_read_begin(m->store, &txn) < 0)
            continue;
        int r = store_get(txn, STORE_TASKS, u->task_id, &val, &len);
        store_read_end(txn);
        if (r < 0)
            continue; /* removed meanwhile */
        t = swarm__task__unpack(NULL, len, val);
        free(val);
        if (!t)
            continue;
        /* only this node's tasks, and a state never moves backwards */
        if (strcmp(t->node_id, sb->node_id) == 0 && u->state >= t->state &&
            u->state <= SWARM__TASK_STATE__TASK_REJECTED &&
            (u->state != t->state || u->pid != t->pid || u->exit_code != t->exit_code)) {
            t->state = u->state;
            t->state_at = sw_now_realtime_ns();
            t->pid = u->state == SWARM__TASK_STATE__TASK_RUNNING ? u->pid : 0;
            t->exit_code = u->exit_code;
            set_field(&t->message, u->message);
            set_field(&t->err, u->err);
            if (t->meta)
                t->meta->updated_at = t->state_at;
            r = mgr__batch_add(b, STORE_PUT, STORE_TASKS, t->id, &t->base);
        }
        swarm__task__free_unpacked(t, NULL);
        if (r < 0)
            return r;
    }
    return 0;
}

static void status_done(struct mgr *m, int status, void *userdata)
{
    struct status_batch *sb = userdata;
    if (status < 0)
        mgr__reply_errno(sb->call, status, "cannot record task status");
    else
        net_call_reply(sb->call, 0, NULL, NULL, 0);
    swarm__update_task_status_request__free_unpacked(sb->req, NULL);
    free(sb);
}

static void h_update_task_status(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    if (peer->kind != NET_PEER_NODE)
        return net_call_reply(call, -EPERM, "task status needs a node certificate", NULL, 0);
    Swarm__UpdateTaskStatusRequest *req = (Swarm__UpdateTaskStatusRequest *)mgr__request(
        call, &swarm__update_task_status_request__descriptor, payload, len);
    if (!req)
        return;
    struct mgr_session **slot = find_slot(m, peer->id.node_id);
    if (!slot || strcmp((*slot)->session_id, req->session_id) != 0) {
        swarm__update_task_status_request__free_unpacked(req, NULL);
        return net_call_reply(call, -ENOENT, "no such session; open a new one", NULL, 0);
    }
    if (req->n_updates > 4096) {
        swarm__update_task_status_request__free_unpacked(req, NULL);
        return net_call_reply(call, -EINVAL, "at most 4096 updates at once", NULL, 0);
    }
    struct status_batch *sb = calloc(1, sizeof(*sb));
    if (!sb) {
        swarm__update_task_status_request__free_unpacked(req, NULL);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    sb->call = call;
    sb->req = req;
    memcpy(sb->node_id, peer->id.node_id, SW_ID_LEN + 1);
    int r = mgr__batch_update(m, build_status, status_done, sb);
    if (r < 0) {
        swarm__update_task_status_request__free_unpacked(req, NULL);
        free(sb);
        mgr__reply_errno(call, r, "cannot record task status");
    }
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
        /* a node told an older, longer period keeps it until its next answer */
        uint64_t own =
            MISSED_HEARTBEATS * SW_MAX(period_ns(m), SW_MAX(s->period_sent_ns, s->period_prev_ns));
        if (now - s->last_seen_ns > own) {
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

void mgr__dispatcher_end_session(struct mgr *m, const char *node_id)
{
    struct mgr_session **slot = find_slot(m, node_id);
    if (slot)
        session_end(*slot, -EPERM, "this node was removed from the cluster");
}

bool mgr__dispatcher_has_session(struct mgr *m, const char *node_id)
{
    struct mgr_session **slot = find_slot(m, node_id);
    return slot && (*slot)->ready && (*slot)->call;
}

/* ------------------------------------------------------------------ lifecycle */

int mgr__dispatcher_register(struct mgr *m)
{
    int r = net_server_register(m->server, "Dispatcher.Session", NET_AUTH_NODE, h_session, m);
    if (r >= 0)
        r = net_server_register(m->server, "Dispatcher.Heartbeat", NET_AUTH_NODE, h_heartbeat, m);
    if (r >= 0)
        r = net_server_register(m->server, "Dispatcher.UpdateTaskStatus", NET_AUTH_NODE,
                                h_update_task_status, m);
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
    peers_refresh(m);
    uv_timer_start(&m->dispatcher_timer, check_timer_cb, CHECK_INTERVAL_MS, CHECK_INTERVAL_MS);
}

void mgr__dispatcher_stop(struct mgr *m)
{
    uv_timer_stop(&m->dispatcher_timer);
    while (m->sessions)
        session_end(m->sessions, -ECANCELED, "the manager is stopping");
}
