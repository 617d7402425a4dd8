/* Raft between managers over mutual TLS: our raft_uv_transport. A raft connection is an
 * mTLS connection to the peer's listener (a manager certificate of this cluster on both
 * sides, the node ID in each certificate giving the raft ID the side claims), opened with
 * Raft.Connect and then switched to raw bytes (net_raw). raft_uv gets one end of a
 * socketpair as its uv_stream_t; the other end is pumped to and from the connection. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/swtime.h"
#include "config.h"
#include "manager/internal.h"
#include "proto/frame.h"

#define CONNECT_TIMEOUT_MS 2000u
#define READ_CHUNK 65536u
/* Backpressure: raft's bytes stop being read while this much waits for the peer (a large
 * snapshot on a slow link), and resume below the low mark. */
#define QUEUE_HIGH (8u << 20)
#define QUEUE_LOW (2u << 20)
#define DRAIN_CHECK_MS 10u

struct raft_link {
    struct mgr *m;
    struct raft_link *next;
    uv_pipe_t pipe; /* our end of the socketpair */
    bool pipe_open;
    uv_timer_t drain; /* while raft's side is paused: is the peer's queue short again? */
    bool drain_init;
    int handles;        /* pipe and drain still open */
    net_client *client; /* outgoing connections */
    net_raw *raw;
    struct raft_uv_connect *req; /* outgoing, until raft has its stream */
    raft_uv_connect_cb cb;
    raft_id id;
    char address[80];
    bool closing;
};

struct link_write {
    uv_write_t req;
    size_t len;
    uint8_t data[];
};

static struct mgr *mgr_of(struct raft_uv_transport *t)
{
    /* t->data belongs to raft_uv (it sets it): find m from the embedded struct */
    return (struct mgr *)((char *)t - offsetof(struct mgr, transport));
}

static void transport_closed(uv_handle_t *h)
{
    struct mgr *m = h->data;
    if (m->transport_close_cb)
        m->transport_close_cb(&m->transport);
}

static void maybe_closed(struct mgr *m)
{
    if (m->raft_closing && !m->raft_links && !uv_is_closing((uv_handle_t *)&m->transport_handle))
        uv_close((uv_handle_t *)&m->transport_handle, transport_closed);
}

static void link_unlink_free(struct raft_link *l)
{
    struct mgr *m = l->m;
    for (struct raft_link **p = &m->raft_links; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    free(l);
    maybe_closed(m);
}

static void handle_closed(uv_handle_t *h)
{
    struct raft_link *l = h->data;
    if (--l->handles == 0)
        link_unlink_free(l);
}

/* End a link: raft's side sees EOF (its stream is its own to close), the connection goes. A
 * connect still pending is answered with status. */
static void link_close(struct raft_link *l, int status)
{
    if (l->closing)
        return;
    l->closing = true;
    if (l->req) {
        struct raft_uv_connect *req = l->req;
        l->req = NULL;
        l->cb(req, NULL, status);
    }
    net_raw *raw = l->raw;
    l->raw = NULL;
    if (l->client)
        net_client_close(l->client); /* its raw stream with it */
    else if (raw)
        net_raw_close(raw);
    l->client = NULL;
    l->handles = 0;
    if (l->pipe_open)
        l->handles++;
    if (l->drain_init)
        l->handles++;
    if (l->pipe_open)
        uv_close((uv_handle_t *)&l->pipe, handle_closed);
    if (l->drain_init)
        uv_close((uv_handle_t *)&l->drain, handle_closed);
    if (l->handles == 0)
        link_unlink_free(l);
}

static struct raft_link *link_new(struct mgr *m, raft_id id, const char *address)
{
    struct raft_link *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->m = m;
    l->id = id;
    snprintf(l->address, sizeof(l->address), "%s", address);
    l->pipe.data = l;
    l->next = m->raft_links;
    m->raft_links = l;
    return l;
}

/* ------------------------------------------------------------------ the byte pump */

static void write_done(uv_write_t *req, int status)
{
    struct link_write *w = (struct link_write *)req;
    free(w);
}

/* From the peer: into raft's stream. */
static void on_raw(net_raw *r, int status, const char *error, const uint8_t *data, size_t len,
                   void *userdata)
{
    struct raft_link *l = userdata;
    if (status < 0) {
        log_debug("raft: connection with %llu (%s) ended: %s", (unsigned long long)l->id,
                  l->address, error ? error : "closed");
        l->raw = NULL; /* gone with the connection (an outgoing client is still closed) */
        link_close(l, RAFT_NOCONNECTION);
        return;
    }
    if (l->closing || !l->pipe_open || len == 0)
        return;
    mgr__raft_contact(l->m, l->id);
    struct link_write *w = malloc(sizeof(*w) + len);
    if (!w) {
        link_close(l, RAFT_NOMEM);
        return;
    }
    memcpy(w->data, data, len);
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&l->pipe, &b, 1, write_done) < 0) {
        free(w);
        link_close(l, RAFT_IOERR);
    }
}

static void pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    char *p = malloc(READ_CHUNK);
    *buf = uv_buf_init(p, p ? READ_CHUNK : 0);
}

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void drain_check(uv_timer_t *t)
{
    struct raft_link *l = t->data;
    if (l->closing || !l->raw || net_raw_queued(l->raw) > QUEUE_LOW)
        return;
    uv_timer_stop(&l->drain);
    if (uv_read_start((uv_stream_t *)&l->pipe, pipe_alloc, pipe_read) < 0)
        link_close(l, RAFT_NOCONNECTION);
}

/* From raft: to the peer. EOF means raft closed its stream. */
static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct raft_link *l = s->data;
    if (n > 0 && l->raw && net_raw_write(l->raw, (const uint8_t *)buf->base, (size_t)n) < 0)
        n = UV_EPIPE;
    free(buf->base);
    if (n < 0) {
        link_close(l, RAFT_NOCONNECTION);
        return;
    }
    if (l->raw && net_raw_queued(l->raw) > QUEUE_HIGH) {
        /* the peer is slower than raft: let raft's side wait */
        uv_read_stop((uv_stream_t *)&l->pipe);
        if (!l->drain_init) {
            uv_timer_init(l->m->loop, &l->drain);
            l->drain.data = l;
            l->drain_init = true;
        }
        uv_timer_start(&l->drain, drain_check, DRAIN_CHECK_MS, DRAIN_CHECK_MS);
    }
}

/* A socketpair: one end for raft (allocated with raft_malloc, as raft frees it), the other
 * pumped here. */
static int link_bridge(struct raft_link *l, struct uv_stream_s **ret)
{
    struct mgr *m = l->m;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
        return -errno;
    uv_pipe_t *theirs = raft_malloc(sizeof(*theirs));
    if (!theirs) {
        close(fds[0]);
        close(fds[1]);
        return -ENOMEM;
    }
    int r = uv_pipe_init(m->loop, theirs, 0);
    if (r == 0 && (r = uv_pipe_open(theirs, fds[0])) < 0) {
        uv_close((uv_handle_t *)theirs, (uv_close_cb)raft_free);
        close(fds[0]);
        close(fds[1]);
        return r;
    }
    if (r < 0) {
        raft_free(theirs);
        close(fds[0]);
        close(fds[1]);
        return r;
    }
    r = uv_pipe_init(m->loop, &l->pipe, 0);
    if (r == 0) {
        l->pipe.data = l;
        l->pipe_open = true;
        r = uv_pipe_open(&l->pipe, fds[1]);
        if (r == 0)
            r = uv_read_start((uv_stream_t *)&l->pipe, pipe_alloc, pipe_read);
    } else {
        close(fds[1]);
    }
    if (r < 0) {
        uv_close((uv_handle_t *)theirs, (uv_close_cb)raft_free);
        return r;
    }
    *ret = (struct uv_stream_s *)theirs;
    return 0;
}

/* ------------------------------------------------------------------ outgoing */

static void on_joined(net_client *c, int status, const char *error, const uint8_t *payload,
                      size_t len, bool final, void *userdata)
{
    struct raft_link *l = userdata;
    if (!final || l->closing)
        return;
    if (status < 0) {
        log_debug("raft: %llu at %s refused the connection: %s", (unsigned long long)l->id,
                  l->address, error ? error : "");
        link_close(l, RAFT_NOCONNECTION);
        return;
    }
    l->raw = net_client_raw(c);
    struct uv_stream_s *stream = NULL;
    int r = link_bridge(l, &stream);
    if (r < 0) {
        link_close(l, RAFT_NOCONNECTION);
        return;
    }
    struct raft_uv_connect *req = l->req;
    l->req = NULL;
    l->cb(req, stream, 0);
}

static void on_connected(net_client *c, int status, const char *error, void *userdata)
{
    struct raft_link *l = userdata;
    struct mgr *m = l->m;
    if (l->closing)
        return;
    if (status < 0) {
        log_debug("raft: cannot connect to %llu at %s: %s", (unsigned long long)l->id, l->address,
                  error ? error : "");
        if (status == -EKEYREJECTED)
            m->raft_peer_untrusted = true;
        link_close(l, RAFT_NOCONNECTION);
        return;
    }
    m->raft_peer_untrusted = false; /* a manager of this root answered */
    /* the manager at that address must be the raft member we mean */
    const struct net_peer *peer = net_client_server_peer(c);
    if (mgr__raft_id_from_node_id(peer->id.node_id) != l->id) {
        log_warn("raft: %s is node %s, not raft member %llu: not connecting", l->address,
                 peer->id.node_id, (unsigned long long)l->id);
        link_close(l, RAFT_NOCONNECTION);
        return;
    }
    char self[80];
    mgr_advertise_addr(m, self, sizeof(self));
    Swarm__RaftConnectRequest req = SWARM__RAFT_CONNECT_REQUEST__INIT;
    req.raft_id = m->st.raft_id;
    req.address = self;
    req.target_raft_id = l->id;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(&req.base, &buf, &len);
    if (r >= 0)
        r = net_client_call_raw(c, "Raft.Connect", buf, len, on_joined, l, on_raw, l);
    free(buf);
    if (r < 0)
        link_close(l, RAFT_NOCONNECTION);
}

static int transport_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                             const char *address, raft_uv_connect_cb cb)
{
    struct mgr *m = mgr_of(t);
    struct sw_addr addr;
    if (m->raft_closing)
        return RAFT_CANCELED;
    if (!m->client_ctx || sw_addr_parse(address, -1, 0, &addr) < 0) {
        snprintf(t->errmsg, sizeof(t->errmsg), "cannot reach raft member at %s", address);
        return RAFT_NOCONNECTION;
    }
    struct raft_link *l = link_new(m, id, address);
    if (!l)
        return RAFT_NOMEM;
    l->req = req;
    l->cb = cb;
    struct net_expect expect = {.cluster_id = m->st.cluster_id, .manager = true};
    int r = net_client_connect_tcp_expect(m->loop, &addr, m->client_ctx, &expect,
                                          CONNECT_TIMEOUT_MS, on_connected, l, &l->client);
    if (r < 0) {
        l->req = NULL; /* the error goes back through the return value */
        l->client = NULL;
        link_close(l, RAFT_NOCONNECTION);
        snprintf(t->errmsg, sizeof(t->errmsg), "cannot connect to %s: %s", address, strerror(-r));
        return RAFT_NOCONNECTION;
    }
    return 0;
}

/* ------------------------------------------------------------------ incoming */

static void h_raft_connect(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    char err[200];
    Swarm__RaftConnectRequest *req = (Swarm__RaftConnectRequest *)mgr__request(
        call, &swarm__raft_connect_request__descriptor, payload, len);
    if (!req)
        return;
    if (peer->kind != NET_PEER_NODE || peer->id.role != PKI_ROLE_MANAGER || !m->raft_accept ||
        m->raft_closing) {
        swarm__raft_connect_request__free_unpacked(req, NULL);
        if (peer->kind != NET_PEER_NODE || peer->id.role != PKI_ROLE_MANAGER)
            return net_call_reply(call, -EPERM, "raft needs a manager certificate", NULL, 0);
        return net_call_reply(call, -EAGAIN, "raft is not running here", NULL, 0);
    }
    struct sw_addr addr;
    int r = 0;
    if (req->target_raft_id != m->st.raft_id) {
        snprintf(err, sizeof(err), "this is raft member %llu, not %llu",
                 (unsigned long long)m->st.raft_id, (unsigned long long)req->target_raft_id);
        r = -ENOENT;
    } else if (req->raft_id != mgr__raft_id_from_node_id(peer->id.node_id)) {
        snprintf(err, sizeof(err), "raft member %llu is not node %s",
                 (unsigned long long)req->raft_id, peer->id.node_id);
        r = -EPERM;
    } else if (sw_addr_parse(req->address, -1, 0, &addr) < 0) {
        snprintf(err, sizeof(err), "invalid raft address %.64s", req->address);
        r = -EINVAL;
    }
    struct raft_link *l = r < 0 ? NULL : link_new(m, req->raft_id, req->address);
    swarm__raft_connect_request__free_unpacked(req, NULL);
    if (r < 0) {
        log_warn("raft: refused a connection from %s (node %s): %s", peer->addr, peer->id.node_id,
                 err);
        return net_call_reply(call, r, err, NULL, 0);
    }
    if (!l)
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    if (net_call_reply_raw(call, NULL, 0, on_raw, l, &l->raw) < 0) {
        l->raw = NULL;
        link_close(l, 0);
        return;
    }
    struct uv_stream_s *stream = NULL;
    r = link_bridge(l, &stream);
    if (r < 0) {
        link_close(l, 0);
        return;
    }
    m->raft_accept(&m->transport, l->id, l->address, stream);
}

/* ------------------------------------------------------------------ raft_uv_transport */

static int transport_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    return 0;
}

static int transport_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    mgr_of(t)->raft_accept = cb;
    return 0;
}

/* The callback comes later, as from any real transport: raft_uv goes on using its state
 * after close() returns (a callback from inside close() let ioCloseCb run on freed memory). */
static void transport_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct mgr *m = mgr_of(t);
    m->transport_close_cb = cb;
    m->raft_closing = true;
    m->raft_accept = NULL;
    for (struct raft_link *l = m->raft_links, *next; l; l = next) {
        next = l->next;
        link_close(l, RAFT_CANCELED);
    }
    maybe_closed(m);
}

void mgr__transport_setup(struct mgr *m)
{
    m->transport = (struct raft_uv_transport){0};
#if HAVE_RAFT_UV_TRANSPORT_VERSION
    m->transport.version = 1; /* raft 0.17+ and cowsql/raft check it */
#endif
    m->transport.data = m;
    m->transport.init = transport_init;
    m->transport.listen = transport_listen;
    m->transport.connect = transport_connect;
    m->transport.close = transport_close;
}

int mgr__transport_register(struct mgr *m)
{
    return net_server_register(m->server, "Raft.Connect", NET_AUTH_MANAGER, h_raft_connect, m);
}

void mgr__raft_contact(struct mgr *m, uint64_t id)
{
    size_t free_slot = MGR_PEERS_MAX, oldest = 0;
    uint64_t now = sw_now_monotonic_ns();
    for (size_t i = 0; i < MGR_PEERS_MAX; i++) {
        if (m->contacts[i].id == id) {
            m->contacts[i].at_ns = now;
            return;
        }
        if (!m->contacts[i].id && free_slot == MGR_PEERS_MAX)
            free_slot = i;
        if (m->contacts[i].at_ns < m->contacts[oldest].at_ns)
            oldest = i;
    }
    size_t k = free_slot < MGR_PEERS_MAX ? free_slot : oldest;
    m->contacts[k].id = id;
    m->contacts[k].at_ns = now;
}

uint64_t mgr__raft_last_contact(struct mgr *m, uint64_t id)
{
    for (size_t i = 0; i < MGR_PEERS_MAX; i++)
        if (m->contacts[i].id == id)
            return m->contacts[i].at_ns;
    return 0;
}
