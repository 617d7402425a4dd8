/* Calls that must run on the raft leader (the control API, certificate issuance, joining
 * raft): on any other manager they are relayed to the leader over one mTLS connection with
 * this manager's certificate, and the leader's answer is relayed back. Any manager then
 * serves every request, and a reply always reflects the leader's state (a client reads its
 * own writes). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "manager/internal.h"

#define FORWARD_CONNECT_TIMEOUT_MS 3000u

struct mgr_method {
    struct mgr *m;
    net_handler_fn fn;
    struct mgr_method *next;
};

/* A call waiting for the connection to the leader. */
struct fwd_wait {
    struct fwd_wait *next;
    net_call *call;
    uint8_t *payload;
    size_t len;
};

static void fail_waiting(struct mgr *m, int status, const char *why)
{
    while (m->fwd_waiting) {
        struct fwd_wait *w = m->fwd_waiting;
        m->fwd_waiting = w->next;
        net_call_reply(w->call, status, why, NULL, 0);
        sw_erase(w->payload, w->len);
        free(w->payload);
        free(w);
    }
}

static void relay_reply(net_client *c, int status, const char *error, const uint8_t *payload,
                        size_t len, bool final, void *userdata)
{
    net_call *call = userdata;
    if (!final) {
        net_call_send(call, payload, len);
        return;
    }
    if (status == -ECANCELED || status == -EPIPE || status == -ECONNRESET) {
        /* the leader went away with the call: the caller may try again */
        net_call_reply(call, -EAGAIN, "the raft leader went away; try again", NULL, 0);
        return;
    }
    net_call_reply(call, status, error, payload, len);
}

static void drop_client(struct mgr *m)
{
    if (m->fwd_client)
        net_client_close(m->fwd_client);
    m->fwd_client = NULL;
    m->fwd_ready = false;
    m->fwd_leader = 0;
}

static void forward(struct mgr *m, net_call *call, const uint8_t *payload, size_t len);

static void send_one(struct mgr *m, net_call *call, const uint8_t *payload, size_t len)
{
    int r = net_client_call(m->fwd_client, net_call_method(call), payload, len, relay_reply, call,
                            NULL);
    if (r == -EPIPE || r == -ENOTCONN) {
        /* the connection to the leader broke since: a new one */
        drop_client(m);
        forward(m, call, payload, len);
    } else if (r < 0) {
        net_call_reply(call, -EAGAIN, "cannot reach the raft leader; try again", NULL, 0);
    }
}

static void on_leader_connected(net_client *c, int status, const char *error, void *userdata)
{
    struct mgr *m = userdata;
    if (c != m->fwd_client)
        return;
    if (status == 0) {
        const struct net_peer *peer = net_client_server_peer(c);
        if (mgr__raft_id_from_node_id(peer->id.node_id) != m->fwd_leader) {
            status = -EPERM;
            error = "the manager at the leader's address is another node";
        }
    }
    if (status < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot reach the raft leader: %s",
                 error ? error : strerror(-status));
        log_debug("forward: %s", why);
        drop_client(m);
        fail_waiting(m, -EAGAIN, why);
        return;
    }
    m->fwd_ready = true;
    while (m->fwd_waiting) {
        struct fwd_wait *w = m->fwd_waiting;
        m->fwd_waiting = w->next;
        send_one(m, w->call, w->payload, w->len);
        sw_erase(w->payload, w->len);
        free(w->payload);
        free(w);
    }
}

static void forward(struct mgr *m, net_call *call, const uint8_t *payload, size_t len)
{
    raft_id id = 0;
    const char *addr = NULL;
    struct sw_addr a;
    raft_leader(&m->raft, &id, &addr);
    if (!id || !addr || sw_addr_parse(addr, -1, 0, &a) < 0)
        return net_call_reply(call, -EAGAIN, "no raft leader is known yet; try again", NULL, 0);
    if (m->fwd_client && (m->fwd_leader != id || net_client_raw(m->fwd_client)))
        drop_client(m);
    if (m->fwd_client && m->fwd_ready)
        return send_one(m, call, payload, len);
    struct fwd_wait *w = calloc(1, sizeof(*w));
    if (!w || (len && !(w->payload = malloc(len)))) {
        free(w);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    if (len)
        memcpy(w->payload, payload, len);
    w->len = len;
    w->call = call;
    w->next = m->fwd_waiting;
    m->fwd_waiting = w;
    if (m->fwd_client)
        return; /* connecting */
    struct net_expect expect = {.cluster_id = m->st.cluster_id, .manager = true};
    m->fwd_leader = id;
    int r = net_client_connect_tcp_expect(m->loop, &a, m->client_ctx, &expect,
                                          FORWARD_CONNECT_TIMEOUT_MS, on_leader_connected, m,
                                          &m->fwd_client);
    if (r < 0) {
        m->fwd_client = NULL;
        m->fwd_leader = 0;
        fail_waiting(m, -EAGAIN, "cannot reach the raft leader; try again");
    }
}

/* The trampoline: here if this manager leads, else on the leader. */
static void h_leader_only(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr_method *mm = userdata;
    struct mgr *m = mm->m;
    if (!m->serving || m->stopping)
        return net_call_reply(call, -EAGAIN, "the manager is starting or stopping; try again", NULL,
                              0);
    if (mgr__is_leader(m))
        return mm->fn(call, payload, len, m);
    forward(m, call, payload, len);
}

int mgr__register_leader_only(struct mgr *m, const char *method, enum net_auth auth,
                              net_handler_fn fn)
{
    struct mgr_method *mm = calloc(1, sizeof(*mm));
    if (!mm)
        return -ENOMEM;
    mm->m = m;
    mm->fn = fn;
    int r = net_server_register(m->server, method, auth, h_leader_only, mm);
    if (r < 0) {
        free(mm);
        return r;
    }
    mm->next = m->methods;
    m->methods = mm;
    return 0;
}

void mgr__forward_call(struct mgr *m, net_call *call, const uint8_t *payload, size_t len)
{
    forward(m, call, payload, len);
}

void mgr__forward_check(struct mgr *m)
{
    /* calls relayed to a former leader would wait on a silent connection: end them (the
     * caller may try again) and reconnect at the next call */
    if (m->fwd_client && m->fwd_leader != mgr__leader_raft_id(m))
        drop_client(m);
}

void mgr__forward_stop(struct mgr *m)
{
    fail_waiting(m, -ECANCELED, "the manager is stopping");
    drop_client(m);
}

void mgr__forward_free(struct mgr *m)
{
    while (m->methods) {
        struct mgr_method *mm = m->methods;
        m->methods = mm->next;
        free(mm);
    }
}
