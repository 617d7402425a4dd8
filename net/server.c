/* net server: TLS and Unix listeners, per-connection peer identity, limits, method
 * dispatch with per-method authorization, and calls (unary and server streams). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "net/internal.h"

#define HANDSHAKE_TIMEOUT_DEFAULT_MS 10000u
#define IDLE_TIMEOUT_DEFAULT_MS (5u * 60u * 1000u)
#define MAX_CONNECTIONS_DEFAULT 1024u
#define MAX_CALLS_PER_CONNECTION_DEFAULT 256u

struct net_method {
    char *name;
    enum net_auth auth;
    net_handler_fn fn;
    void *userdata;
};

struct net_listener {
    union net__stream h;
    net_server *s;
    bool is_tcp;
    char *unix_path; /* unlinked on close */
    struct net_listener *next;
    /* Accepts and closes a connection when there is no memory for a reject handle: libuv
     * stops polling a listener until its pending connection is accepted. */
    union net__stream spare;
    bool spare_busy;     /* spare is closing; it is free again in spare_closed */
    bool reject_pending; /* a connection waits for the spare */
    bool closed;         /* h went through its close callback: free once spare is idle */
};

/* A connection over the limit: accepted, then closed at once. */
struct net_reject {
    union net__stream h;
    net_server *s;
};

struct net_conn {
    struct net_transport t;
    net_server *s;
    struct net_conn *prev, *next;
    struct net_peer peer;
    enum pki_role cert_role; /* the certificate's own role (authorize may lower peer's) */
    bool ready;              /* peer accepted: frames are served */
    net_call *calls;
    unsigned ncalls;
    struct net_raw *raw; /* the connection carries raw bytes */
};

struct net_call {
    struct net_conn *conn; /* NULL once gone */
    net_call *prev, *next;
    uint64_t id;
    char *method;
    struct net_peer peer;
    bool gone;
    void (*on_gone)(net_call *call, void *userdata);
    void *gone_userdata;
};

struct net_server {
    uv_loop_t *loop;
    size_t max_frame;
    uint64_t handshake_timeout_ms;
    uint64_t idle_timeout_ms;
    unsigned max_connections;
    unsigned max_calls; /* in flight on one connection */
    char *cluster_id;
    SSL_CTX *ctx;
    struct net_method *methods;
    size_t n_methods;
    struct net_method fallback; /* fn NULL: unknown methods get -ENOSYS */
    net_authorize_fn authorize;
    void *authorize_userdata;
    struct net_listener *listeners;
    struct net_conn *conns;
    unsigned n_conns;       /* open, not closing */
    unsigned n_tcp_conns;   /* of which TCP: TCP and Unix peers have separate budgets */
    unsigned n_handles;     /* everything not yet through its close callback */
    uv_timer_t close_timer; /* makes net_server_close complete asynchronously */
    bool closing;
    void (*close_cb)(void *userdata);
    void *close_userdata;
};

static void server_maybe_done(net_server *s)
{
    if (!s->closing || s->n_handles > 0)
        return;
    void (*cb)(void *) = s->close_cb;
    void *ud = s->close_userdata;
    for (size_t i = 0; i < s->n_methods; i++)
        free(s->methods[i].name);
    free(s->methods);
    free(s->cluster_id);
    if (s->ctx)
        SSL_CTX_free(s->ctx);
    free(s);
    if (cb)
        cb(ud);
}

int net_server_create(uv_loop_t *loop, const struct net_server_config *cfg, net_server **ret)
{
    net_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->max_frame = cfg && cfg->max_frame ? cfg->max_frame : PROTO_FRAME_MAX_DEFAULT;
    s->handshake_timeout_ms =
        cfg && cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : HANDSHAKE_TIMEOUT_DEFAULT_MS;
    s->idle_timeout_ms =
        cfg && cfg->idle_timeout_ms ? cfg->idle_timeout_ms : IDLE_TIMEOUT_DEFAULT_MS;
    s->max_connections =
        cfg && cfg->max_connections ? cfg->max_connections : MAX_CONNECTIONS_DEFAULT;
    s->max_calls = cfg && cfg->max_calls_per_connection ? cfg->max_calls_per_connection
                                                        : MAX_CALLS_PER_CONNECTION_DEFAULT;
    if (cfg && cfg->cluster_id) {
        s->cluster_id = strdup(cfg->cluster_id);
        if (!s->cluster_id) {
            free(s);
            return -ENOMEM;
        }
    }
    uv_timer_init(loop, &s->close_timer);
    s->close_timer.data = s;
    s->n_handles = 1;
    *ret = s;
    return 0;
}

int net_server_register(net_server *s, const char *method, enum net_auth auth, net_handler_fn fn,
                        void *userdata)
{
    if (!method || !*method || !fn)
        return -EINVAL;
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].name, method) == 0)
            return -EEXIST;
    struct net_method *m = realloc(s->methods, (s->n_methods + 1) * sizeof(*m));
    if (!m)
        return -ENOMEM;
    s->methods = m;
    char *name = strdup(method);
    if (!name)
        return -ENOMEM;
    s->methods[s->n_methods++] =
        (struct net_method){.name = name, .auth = auth, .fn = fn, .userdata = userdata};
    return 0;
}

void net_server_set_authorize(net_server *s, net_authorize_fn fn, void *userdata)
{
    s->authorize = fn;
    s->authorize_userdata = userdata;
}

void net_server_set_fallback(net_server *s, enum net_auth auth, net_handler_fn fn, void *userdata)
{
    s->fallback = (struct net_method){.name = NULL, .auth = auth, .fn = fn, .userdata = userdata};
}

void net_server_set_tls_ctx(net_server *s, SSL_CTX *ctx)
{
    if (ctx)
        SSL_CTX_up_ref(ctx);
    if (s->ctx)
        SSL_CTX_free(s->ctx);
    s->ctx = ctx;
}

unsigned net_server_connections(const net_server *s)
{
    return s->n_conns;
}

/* ------------------------------------------------------------------ calls */

static void call_free(net_call *call)
{
    free(call->method);
    free(call);
}

static void call_unlink(net_call *call)
{
    struct net_conn *c = call->conn;
    if (!c)
        return;
    if (call->prev)
        call->prev->next = call->next;
    else
        c->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
    c->ncalls--;
    call->conn = NULL;
}

/* Detach the call from its connection and tell the handler. */
static void call_mark_gone(net_call *call)
{
    call_unlink(call);
    if (call->gone)
        return;
    call->gone = true;
    if (call->on_gone) {
        void (*cb)(net_call *, void *) = call->on_gone;
        call->on_gone = NULL;
        cb(call, call->gone_userdata);
    }
}

const struct net_peer *net_call_peer(const net_call *call)
{
    return &call->peer;
}

const char *net_call_method(const net_call *call)
{
    return call->method;
}

bool net_call_gone(const net_call *call)
{
    return call->gone;
}

void net_call_on_gone(net_call *call, void (*cb)(net_call *call, void *userdata), void *userdata)
{
    call->on_gone = cb;
    call->gone_userdata = userdata;
}

int net_call_send(net_call *call, const uint8_t *payload, size_t len)
{
    if (call->gone || !call->conn)
        return -EPIPE;
    struct proto_frame f = {.id = call->id,
                            .kind = SWARM__FRAME_KIND__FRAME_STREAM_MSG,
                            .payload = payload,
                            .payload_len = len};
    return net__transport_send(&call->conn->t, &f);
}

static void send_response(struct net_conn *c, uint64_t id, int status, const char *error,
                          const uint8_t *payload, size_t len)
{
    struct proto_frame f = {.id = id,
                            .kind = SWARM__FRAME_KIND__FRAME_RESPONSE,
                            .status = status,
                            .error = error,
                            .payload = payload,
                            .payload_len = len};
    int r = net__transport_send(&c->t, &f);
    if (r == -EMSGSIZE) {
        struct proto_frame e = {.id = id,
                                .kind = SWARM__FRAME_KIND__FRAME_RESPONSE,
                                .status = -EMSGSIZE,
                                .error = "reply larger than the frame limit"};
        net__transport_send(&c->t, &e);
    }
}

void net_call_reply(net_call *call, int status, const char *error, const uint8_t *payload,
                    size_t len)
{
    if (!call)
        return;
    if (!call->gone && call->conn) {
        struct net_conn *c = call->conn;
        call_unlink(call);
        send_response(c, call->id, status > 0 ? 0 : status, status < 0 ? error : NULL, payload,
                      len);
    }
    call_free(call);
}

static void conn_raw_read(struct net_transport *t, const uint8_t *data, size_t len)
{
    struct net_conn *c = net__container_of(t, struct net_conn, t);
    struct net_raw *r = c->raw;
    if (r && !r->user_closed)
        r->cb(r, 0, NULL, data, len, r->userdata);
}

int net_call_reply_raw(net_call *call, const uint8_t *payload, size_t len, net_raw_fn cb,
                       void *userdata, net_raw **ret)
{
    if (!call || call->gone || !call->conn) {
        net_call_reply(call, -EPIPE, "gone", NULL, 0);
        return -EPIPE;
    }
    struct net_conn *c = call->conn;
    struct net_raw *r = calloc(1, sizeof(*r));
    if (!r) {
        net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
        return -ENOMEM;
    }
    r->t = &c->t;
    r->cb = cb;
    r->userdata = userdata;
    net_call_reply(call, 0, NULL, payload, len);
    if (c->t.closing) {
        free(r);
        return -EPIPE;
    }
    /* no more calls on this connection: the others end now */
    while (c->calls)
        call_mark_gone(c->calls);
    c->raw = r;
    uv_timer_stop(&c->t.timer); /* raw peers keep their own time (raft heartbeats) */
    *ret = r;
    net__transport_go_raw(&c->t, conn_raw_read);
    return 0;
}

/* ------------------------------------------------------------------ connections */

static void conn_idle_timeout(uv_timer_t *timer);

static void conn_arm_idle(struct net_conn *c)
{
    uv_timer_start(&c->t.timer, conn_idle_timeout, c->s->idle_timeout_ms, 0);
}

static void conn_idle_timeout(uv_timer_t *timer)
{
    struct net_conn *c = net__container_of(timer, struct net_conn, t.timer);
    if (c->ncalls > 0) {
        conn_arm_idle(c); /* open calls and streams are not idle */
        return;
    }
    log_debug("net: %s idle for %llu ms, closing", c->peer.addr,
              (unsigned long long)c->s->idle_timeout_ms);
    net__transport_close(&c->t, -ETIMEDOUT, "idle timeout");
}

static void conn_handshake_timeout(uv_timer_t *timer)
{
    struct net_conn *c = net__container_of(timer, struct net_conn, t.timer);
    log_debug("net: %s: no handshake within %llu ms, closing", c->peer.addr,
              (unsigned long long)c->s->handshake_timeout_ms);
    net__transport_close(&c->t, -ETIMEDOUT, "handshake timeout");
}

/* Send a connection-level error (RESPONSE id 0), then close once it is written. */
static void conn_fail(struct net_conn *c, int err, const char *msg)
{
    log_debug("net: closing %s: %s", c->peer.addr, msg);
    struct proto_frame f = {
        .id = 0, .kind = SWARM__FRAME_KIND__FRAME_RESPONSE, .status = err, .error = msg};
    net__transport_send(&c->t, &f);
    net__transport_close_flush(&c->t, err, "%s", msg);
}

/* The peer is known: run the authorize hook, greet, start serving. */
static void conn_accept_peer(struct net_conn *c)
{
    net_server *s = c->s;
    c->cert_role = c->peer.id.role;
    int r = c->peer.kind == NET_PEER_NODE && s->authorize
                ? s->authorize(&c->peer, s->authorize_userdata)
                : 0;
    if (r == -EAGAIN) {
        conn_fail(c, -EAGAIN, "this manager does not know the node yet; try again");
        return;
    }
    if (r < 0) {
        conn_fail(c, -EPERM, "node certificate refused by this cluster");
        return;
    }
    /* greeting: RESPONSE id 0 status 0 tells the client the peer was accepted */
    struct proto_frame f = {.id = 0, .kind = SWARM__FRAME_KIND__FRAME_RESPONSE};
    if (net__transport_send(&c->t, &f) < 0)
        return;
    c->ready = true;
    conn_arm_idle(c);
}

static void conn_on_handshake(struct net_transport *t)
{
    struct net_conn *c = net__container_of(t, struct net_conn, t);
    net_server *s = c->s;

    if (SSL_get0_peer_certificate(t->ssl) && SSL_get_verify_result(t->ssl) != X509_V_OK) {
        conn_fail(c, -EPERM, "client certificate does not verify");
        return;
    }
    if (net__peer_from_ssl(t->ssl, &c->peer) < 0) {
        conn_fail(c, -EPERM, "client certificate is not a swarm node certificate");
        return;
    }
    if (c->peer.kind == NET_PEER_ANONYMOUS && t->dec.max_frame > NET_ANONYMOUS_MAX_FRAME)
        t->dec.max_frame = NET_ANONYMOUS_MAX_FRAME; /* before any frame is decoded */
    if (c->peer.kind == NET_PEER_NODE && s->cluster_id &&
        strcmp(c->peer.id.cluster_id, s->cluster_id) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "client certificate belongs to cluster %s, not %s",
                 c->peer.id.cluster_id, s->cluster_id);
        conn_fail(c, -EPERM, msg);
        return;
    }
    conn_accept_peer(c);
}

static const struct net_method *find_method(net_server *s, const char *name)
{
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].name, name) == 0)
            return &s->methods[i];
    return NULL;
}

/* NULL if allowed, else why not. */
static const char *auth_denied(const struct net_peer *p, enum net_auth auth)
{
    switch (auth) {
        case NET_AUTH_ANY:
            return NULL;
        case NET_AUTH_NODE:
            if (p->kind == NET_PEER_LOCAL || p->kind == NET_PEER_NODE)
                return NULL;
            return "a node certificate";
        case NET_AUTH_MANAGER:
            if (p->kind == NET_PEER_LOCAL ||
                (p->kind == NET_PEER_NODE && p->id.role == PKI_ROLE_MANAGER))
                return NULL;
            return "a manager certificate";
        case NET_AUTH_LOCAL:
            if (p->kind == NET_PEER_LOCAL)
                return NULL;
            return "the local control socket";
    }
    return "an unknown authorization";
}

static void conn_request(struct net_conn *c, Swarm__Frame *f)
{
    net_server *s = c->s;
    const char *method = f->method ? f->method : "";

    if (f->id == 0) {
        conn_fail(c, -EPROTO, "request with call id 0");
        return;
    }
    for (net_call *k = c->calls; k; k = k->next) {
        if (k->id == f->id) {
            char msg[96];
            snprintf(msg, sizeof(msg), "call id %llu is already in flight",
                     (unsigned long long)f->id);
            conn_fail(c, -EPROTO, msg);
            return;
        }
    }
    const struct net_method *m = find_method(s, method);
    char msg[200];
    if (!m && s->fallback.fn)
        m = &s->fallback;
    if (!m) {
        snprintf(msg, sizeof(msg), "unknown method %.120s", method);
        send_response(c, f->id, -ENOSYS, msg, NULL, 0);
        return;
    }
    /* a node's standing can change while its connection is open (node rm, demotion): the
     * authorize hook decides again for every call, from the certificate's own role */
    struct net_peer peer = c->peer;
    if (peer.kind == NET_PEER_NODE && s->authorize) {
        peer.id.role = c->cert_role;
        int ar = s->authorize(&peer, s->authorize_userdata);
        if (ar == -EAGAIN) {
            send_response(c, f->id, -EAGAIN, "this manager does not know the node yet; try again",
                          NULL, 0);
            return;
        }
        if (ar < 0) {
            conn_fail(c, -EPERM, "this node was removed from the cluster");
            return;
        }
    }
    const char *need = auth_denied(&peer, m->auth);
    if (need) {
        snprintf(msg, sizeof(msg), "%s requires %s", m->name ? m->name : method, need);
        send_response(c, f->id, -EPERM, msg, NULL, 0);
        return;
    }
    if (c->ncalls >= s->max_calls) {
        /* a peer may not pile up unbounded calls (and their deferred state) */
        send_response(c, f->id, -EBUSY, "too many calls in flight on this connection", NULL, 0);
        return;
    }
    net_call *call = calloc(1, sizeof(*call));
    if (call)
        call->method = strdup(m == &s->fallback ? method : m->name);
    if (!call || !call->method) {
        free(call);
        send_response(c, f->id, -ENOMEM, "out of memory", NULL, 0);
        return;
    }
    call->id = f->id;
    call->peer = peer;
    call->conn = c;
    call->next = c->calls;
    if (c->calls)
        c->calls->prev = call;
    c->calls = call;
    c->ncalls++;
    m->fn(call, f->payload.data, f->payload.len, m->userdata);
}

static void conn_on_frame(struct net_transport *t, Swarm__Frame *f)
{
    struct net_conn *c = net__container_of(t, struct net_conn, t);
    if (!c->ready)
        return; /* cannot happen: frames only flow after the handshake */
    conn_arm_idle(c);
    switch (f->kind) {
        case SWARM__FRAME_KIND__FRAME_REQUEST:
            conn_request(c, f);
            break;
        case SWARM__FRAME_KIND__FRAME_CANCEL:
            for (net_call *k = c->calls; k; k = k->next) {
                if (k->id == f->id) {
                    call_mark_gone(k);
                    break;
                }
            }
            break;
        default:
            conn_fail(c, -EPROTO, "unexpected frame kind from a client");
            break;
    }
}

static void conn_on_closing(struct net_transport *t)
{
    struct net_conn *c = net__container_of(t, struct net_conn, t);
    if (t->err && t->err != -ECONNRESET)
        log_debug("net: connection %s closed: %s", c->peer.addr, t->errmsg);
    c->s->n_conns--;
    if (t->is_tcp)
        c->s->n_tcp_conns--;
    c->ready = false;
    /* detach every open call first: on_gone may reply (and free) any of them */
    while (c->calls)
        call_mark_gone(c->calls);
    if (c->raw)
        net__raw_end(c->raw, t->err ? t->err : -ECONNRESET,
                     t->errmsg[0] ? t->errmsg : "connection closed");
}

static void conn_on_closed(struct net_transport *t)
{
    struct net_conn *c = net__container_of(t, struct net_conn, t);
    net_server *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->raw);
    free(c);
    s->n_handles--;
    server_maybe_done(s);
}

static const struct net_transport_ops conn_ops = {
    .on_handshake = conn_on_handshake,
    .on_frame = conn_on_frame,
    .on_closing = conn_on_closing,
    .on_closed = conn_on_closed,
};

static void reject_closed(uv_handle_t *h)
{
    struct net_reject *rj = h->data;
    net_server *s = rj->s;
    free(rj);
    s->n_handles--;
    server_maybe_done(s);
}

static void listener_free(struct net_listener *l)
{
    free(l->unix_path);
    free(l);
}

static void reject_with_spare(struct net_listener *l);

static void spare_closed(uv_handle_t *h)
{
    struct net_listener *l = h->data;
    net_server *s = l->s;
    l->spare_busy = false;
    s->n_handles--;
    if (l->closed) {
        listener_free(l); /* closing the listener closed its pending connection too */
    } else if (l->reject_pending && !uv_is_closing(&l->h.handle)) {
        l->reject_pending = false;
        reject_with_spare(l);
    }
    server_maybe_done(s);
}

/* Accept into the listener's own spare handle and close it: needs no memory. */
static void reject_with_spare(struct net_listener *l)
{
    net_server *s = l->s;
    if (l->spare_busy) {
        l->reject_pending = true; /* libuv holds the connection until spare_closed */
        return;
    }
    /* neither init creates a socket, so neither can fail */
    (void)(l->is_tcp ? uv_tcp_init(s->loop, &l->spare.tcp)
                     : uv_pipe_init(s->loop, &l->spare.pipe, 0));
    l->spare.handle.data = l;
    l->spare_busy = true;
    s->n_handles++;
    uv_accept(&l->h.stream, &l->spare.stream);
    uv_close(&l->spare.handle, spare_closed);
}

/* Accept the pending connection and close it at once. Always consumes it: a connection
 * left unaccepted would stop libuv from polling the listener. */
static void reject_one(struct net_listener *l)
{
    net_server *s = l->s;
    log_debug("net: more than %u connections or no memory, refusing one", s->max_connections);
    struct net_reject *rj = calloc(1, sizeof(*rj));
    if (!rj) {
        reject_with_spare(l);
        return;
    }
    rj->s = s;
    int r = l->is_tcp ? uv_tcp_init(s->loop, &rj->h.tcp) : uv_pipe_init(s->loop, &rj->h.pipe, 0);
    if (r < 0) {
        free(rj);
        reject_with_spare(l);
        return;
    }
    rj->h.handle.data = rj;
    s->n_handles++;
    uv_accept(&l->h.stream, &rj->h.stream);
    uv_close(&rj->h.handle, reject_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct net_listener *l = server->data;
    net_server *s = l->s;
    int r;

    if (status < 0 || s->closing) {
        log_debug("net: accept failed: %s", uv_strerror(status));
        return;
    }
    /* max_connections applies to TCP and to Unix peers separately, so that anonymous
     * network peers cannot lock the operator out of the local control socket */
    unsigned used = l->is_tcp ? s->n_tcp_conns : s->n_conns - s->n_tcp_conns;
    if (used >= s->max_connections || (l->is_tcp && !s->ctx)) {
        reject_one(l);
        return;
    }
    struct net_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        reject_one(l);
        return;
    }
    r = net__transport_init(&c->t, s->loop, l->is_tcp, s->max_frame, &conn_ops);
    if (r < 0) {
        free(c);
        reject_one(l);
        return;
    }
    c->s = s;
    c->t.error_frames = true;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (l->is_tcp)
        s->n_tcp_conns++;
    s->n_handles++;

    r = uv_accept(server, &c->t.h.stream);
    if (r < 0) {
        net__transport_close(&c->t, r, "accept: %s", uv_strerror(r));
        return;
    }
    if (l->is_tcp) {
        uv_tcp_nodelay(&c->t.h.tcp, 1);
        net__tcp_peer_addr(&c->t.h.tcp, c->peer.addr, sizeof(c->peer.addr));
        r = net__transport_start_tls(&c->t, s->ctx, true);
        if (r < 0) {
            net__transport_close(&c->t, r, "TLS setup failed");
            return;
        }
        uv_timer_start(&c->t.timer, conn_handshake_timeout, s->handshake_timeout_ms, 0);
    } else {
        snprintf(c->peer.addr, sizeof(c->peer.addr), "unix");
        c->peer.kind = NET_PEER_LOCAL;
        uv_os_fd_t fd;
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        if (uv_fileno(&c->t.h.handle, &fd) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
            net__transport_close(&c->t, -errno, "SO_PEERCRED failed");
            return;
        }
        c->peer.uid = cred.uid;
    }
    r = net__transport_start_read(&c->t);
    if (r < 0) {
        net__transport_close(&c->t, r, "read: %s", uv_strerror(r));
        return;
    }
    if (!l->is_tcp)
        conn_accept_peer(c);
}

/* ------------------------------------------------------------------ listeners */

static void listener_closed(uv_handle_t *h)
{
    struct net_listener *l = h->data;
    net_server *s = l->s;
    l->closed = true;
    if (!l->spare_busy)
        listener_free(l);
    s->n_handles--;
    server_maybe_done(s);
}

static void listener_add(net_server *s, struct net_listener *l)
{
    l->next = s->listeners;
    s->listeners = l;
    s->n_handles++;
}

int net_server_listen_tcp(net_server *s, const struct sw_addr *addr, SSL_CTX *ctx,
                          struct sw_addr *ret_bound, char *errmsg, size_t errmsg_size)
{
    struct sockaddr_storage ss;
    char name[80];
    int r;

    sw_addr_format(addr, name, sizeof(name));
    if (!ctx) {
        snprintf(errmsg, errmsg_size, "listen on %s: no TLS context", name);
        return -EINVAL;
    }
    r = sw_addr_sockaddr(addr, &ss, NULL);
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "listen on %s: bad address", name);
        return -EINVAL;
    }
    struct net_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->s = s;
    l->is_tcp = true;
    r = uv_tcp_init_ex(s->loop, &l->h.tcp, ss.ss_family);
    if (r < 0) {
        free(l);
        snprintf(errmsg, errmsg_size, "listen on %s: %s", name, uv_strerror(r));
        return r;
    }
    l->h.handle.data = l;
    listener_add(s, l);
    r = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen(&l->h.stream, 128, on_connection);
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "cannot listen on %s: %s", name, uv_strerror(r));
        goto fail;
    }
    uv_tcp_nodelay(&l->h.tcp, 1);
    if (ret_bound) {
        struct sockaddr_storage b;
        int blen = sizeof(b);
        struct sw_addr out = *addr;
        r = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&b, &blen);
        if (r < 0) {
            snprintf(errmsg, errmsg_size, "getsockname on %s: %s", name, uv_strerror(r));
            goto fail;
        }
        if (b.ss_family == AF_INET6)
            out.port = ntohs(((struct sockaddr_in6 *)&b)->sin6_port);
        else
            out.port = ntohs(((struct sockaddr_in *)&b)->sin_port);
        *ret_bound = out;
    }
    if (ctx != s->ctx)
        net_server_set_tls_ctx(s, ctx);
    return 0;
fail:
    s->listeners = l->next;
    uv_close(&l->h.handle, listener_closed);
    return r;
}

int net_server_listen_unix(net_server *s, const char *path, unsigned mode, char *errmsg,
                           size_t errmsg_size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_close_ int fd = -1;
    struct stat st;
    int r;

    if (!path || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(errmsg, errmsg_size, "socket path too long: %s", path ? path : "(null)");
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "socket: %s", strerror(errno));
        return r;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(errmsg, errmsg_size, "cannot listen on %s: exists and is not a socket", path);
            return -EEXIST;
        }
        /* a live server answers: do not steal its socket */
        _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            snprintf(errmsg, errmsg_size, "cannot listen on %s: another server is listening", path);
            return -EADDRINUSE;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            r = -errno;
            snprintf(errmsg, errmsg_size, "cannot remove stale socket %s: %s", path,
                     strerror(errno));
            return r;
        }
    }
    /* the socket inode's mode (minus umask) becomes the file's mode at bind: no window */
    if (fchmod(fd, mode & 07777) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        chmod(path, mode & 07777) < 0) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "cannot listen on %s: %s", path, strerror(errno));
        return r;
    }
    struct net_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        unlink(path);
        return -ENOMEM;
    }
    l->s = s;
    l->unix_path = strdup(path);
    r = uv_pipe_init(s->loop, &l->h.pipe, 0);
    if (r < 0 || !l->unix_path) {
        free(l->unix_path);
        free(l);
        unlink(path);
        return r < 0 ? r : -ENOMEM;
    }
    l->h.handle.data = l;
    listener_add(s, l);
    r = uv_pipe_open(&l->h.pipe, fd);
    if (r == 0) {
        TAKE_FD(fd);
        r = uv_listen(&l->h.stream, 128, on_connection);
    }
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "cannot listen on %s: %s", path, uv_strerror(r));
        unlink(path);
        s->listeners = l->next;
        free(l->unix_path);
        l->unix_path = NULL;
        uv_close(&l->h.handle, listener_closed);
        return r;
    }
    return 0;
}

static void close_timer_closed(uv_handle_t *h)
{
    net_server *s = h->data;
    s->n_handles--;
    server_maybe_done(s);
}

void net_server_close(net_server *s, void (*cb)(void *userdata), void *userdata)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_userdata = userdata;
    while (s->listeners) {
        struct net_listener *l = s->listeners;
        s->listeners = l->next;
        if (l->unix_path)
            unlink(l->unix_path);
        uv_close(&l->h.handle, listener_closed);
    }
    for (struct net_conn *c = s->conns; c; c = c->next)
        net__transport_close(&c->t, 0, NULL);
    uv_close((uv_handle_t *)&s->close_timer, close_timer_closed);
}

unsigned net_server_close_peer(net_server *s, const char *node_id)
{
    unsigned n = 0;
    if (!s || !node_id)
        return 0;
    /* conns leave the list only in their close callback, so walking on is safe */
    for (struct net_conn *c = s->conns; c; c = c->next) {
        if (c->t.closing || c->peer.kind != NET_PEER_NODE ||
            strcmp(c->peer.id.node_id, node_id) != 0)
            continue;
        conn_fail(c, -EPERM, "this node was removed from the cluster");
        n++;
    }
    return n;
}
