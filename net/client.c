/* net async client: connect (TCP+TLS or Unix) with a timeout, wait for the server's
 * greeting, then calls with ids, stream messages and final replies. */
#include <errno.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/log.h"
#include "net/internal.h"

enum client_state {
    CLIENT_CONNECTING = 0,
    CLIENT_HANDSHAKE,
    CLIENT_GREETING, /* TLS done (or Unix connected), waiting for RESPONSE id 0 */
    CLIENT_READY,
    CLIENT_CLOSED,
};

struct pending {
    struct pending *next;
    uint64_t id;
    net_reply_fn cb;
    void *userdata;
    net_raw_fn raw_cb; /* a successful reply switches the connection to raw bytes */
    void *raw_userdata;
};

struct net_client {
    struct net_transport t;
    uv_connect_t connect_req;
    SSL_CTX *ctx;
    enum client_state state;
    char target[128];
    net_connect_fn connect_cb;
    void *connect_userdata;
    struct net_peer server_peer;
    bool has_expect;
    struct net_expect expect; /* cluster_id points to expect_cluster */
    char expect_cluster[SW_ID_LEN + 1];
    char *server_cert_pem;
    struct pending *pending;
    uint64_t next_id;
    bool user_closed;
    bool handles_closed;
    struct net_raw *raw;
};

static void client_free(net_client *c)
{
    free(c->raw);
    if (c->ctx)
        SSL_CTX_free(c->ctx);
    free(c->server_cert_pem);
    free(c);
}

static void client_connected(net_client *c, int status, const char *error)
{
    net_connect_fn cb = c->connect_cb;
    c->connect_cb = NULL;
    if (cb)
        cb(c, status, error, c->connect_userdata);
}

static void client_on_closing(struct net_transport *t)
{
    net_client *c = net__container_of(t, net_client, t);
    int err = t->err ? t->err : -ECANCELED;
    char msg[400];

    if (t->err)
        snprintf(msg, sizeof(msg), "%s: %s", c->target, t->errmsg);
    else
        snprintf(msg, sizeof(msg), "connection to %s closed", c->target);
    bool was_ready = c->state == CLIENT_READY;
    c->state = CLIENT_CLOSED;
    if (c->raw) {
        net__raw_end(c->raw, err, msg);
        return;
    }
    if (!was_ready) {
        client_connected(c, err, msg);
        return;
    }
    struct pending *list = c->pending;
    c->pending = NULL;
    while (list) {
        struct pending *p = list;
        list = p->next;
        p->cb(c, err, msg, NULL, 0, true, p->userdata);
        free(p);
    }
}

static void client_on_closed(struct net_transport *t)
{
    net_client *c = net__container_of(t, net_client, t);
    c->handles_closed = true;
    if (c->user_closed)
        client_free(c);
}

static char *chain_to_pem(SSL *ssl)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (!b)
        return NULL;
    if (chain) {
        for (int i = 0; i < sk_X509_num(chain); i++)
            PEM_write_bio_X509(b, sk_X509_value(chain, i));
    }
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    out = malloc((size_t)n + 1);
    if (out) {
        if (n > 0)
            memcpy(out, data, (size_t)n);
        out[n] = '\0';
    }
    BIO_free(b);
    return out;
}

static void client_on_handshake(struct net_transport *t)
{
    net_client *c = net__container_of(t, net_client, t);
    if (net__peer_from_ssl(t->ssl, &c->server_peer) < 0)
        c->server_peer.kind = NET_PEER_ANONYMOUS;
    char why[160];
    if (c->has_expect && net__server_expected(&c->server_peer, &c->expect, why, sizeof(why)) < 0) {
        net__transport_close(t, -EPERM, "%s", why);
        return;
    }
    c->server_cert_pem = chain_to_pem(t->ssl);
    if (!c->server_cert_pem) {
        net__transport_close(t, -ENOMEM, "out of memory");
        return;
    }
    c->state = CLIENT_GREETING;
}

static struct pending *pending_take(net_client *c, uint64_t id, bool remove)
{
    for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            struct pending *p = *pp;
            if (remove)
                *pp = p->next;
            return p;
        }
    }
    return NULL;
}

static void client_raw_read(struct net_transport *t, const uint8_t *data, size_t len)
{
    net_client *c = net__container_of(t, net_client, t);
    struct net_raw *r = c->raw;
    if (r && !r->user_closed)
        r->cb(r, 0, NULL, data, len, r->userdata);
}

/* The reply to p succeeded: from here on the connection carries raw bytes. */
static int go_raw(net_client *c, struct pending *p)
{
    struct net_raw *r = calloc(1, sizeof(*r));
    if (!r) {
        net__transport_close(&c->t, -ENOMEM, "out of memory");
        return -ENOMEM;
    }
    r->t = &c->t;
    r->cb = p->raw_cb;
    r->userdata = p->raw_userdata;
    r->client = c;
    c->raw = r;
    /* the other calls will never be answered */
    while (c->pending) {
        struct pending *o = c->pending;
        c->pending = o->next;
        o->cb(c, -ECANCELED, "the connection carries raw bytes now", NULL, 0, true, o->userdata);
        free(o);
    }
    net__transport_go_raw(&c->t, client_raw_read);
    return 0;
}

static void client_on_frame(struct net_transport *t, Swarm__Frame *f)
{
    net_client *c = net__container_of(t, net_client, t);
    const char *err = f->error && *f->error ? f->error : NULL;

    if (f->kind == SWARM__FRAME_KIND__FRAME_RESPONSE && f->id == 0) {
        if (f->status < 0) {
            /* the server says why it is closing the connection */
            net__transport_close(t, f->status, "server: %s", err ? err : strerror(-f->status));
            return;
        }
        if (c->state == CLIENT_GREETING) {
            c->state = CLIENT_READY;
            uv_timer_stop(&t->timer);
            client_connected(c, 0, NULL);
        }
        return;
    }
    if (c->state != CLIENT_READY) {
        net__transport_close(t, -EPROTO, "frame before the server's greeting");
        return;
    }
    if (f->kind == SWARM__FRAME_KIND__FRAME_RESPONSE) {
        struct pending *p = pending_take(c, f->id, true);
        if (!p)
            return; /* cancelled */
        int status = f->status > 0 ? -EPROTO : f->status;
        if (p->raw_cb && status == 0 && go_raw(c, p) < 0) {
            free(p);
            return;
        }
        p->cb(c, status, status < 0 ? (err ? err : strerror(-status)) : NULL, f->payload.data,
              f->payload.len, true, p->userdata);
        free(p);
    } else if (f->kind == SWARM__FRAME_KIND__FRAME_STREAM_MSG) {
        struct pending *p = pending_take(c, f->id, false);
        if (p)
            p->cb(c, 0, NULL, f->payload.data, f->payload.len, false, p->userdata);
    } else {
        net__transport_close(t, -EPROTO, "unexpected frame kind from the server");
    }
}

static const struct net_transport_ops client_ops = {
    .on_handshake = client_on_handshake,
    .on_frame = client_on_frame,
    .on_closing = client_on_closing,
    .on_closed = client_on_closed,
};

static void connect_timeout(uv_timer_t *timer)
{
    net_client *c = net__container_of(timer, net_client, t.timer);
    net__transport_close(&c->t, -ETIMEDOUT, "timed out connecting");
}

static void on_connect(uv_connect_t *req, int status)
{
    net_client *c = req->data;
    int r;

    if (c->t.closing)
        return;
    if (status < 0) {
        net__transport_close(&c->t, status, "cannot connect: %s", uv_strerror(status));
        return;
    }
    if (c->t.is_tcp) {
        uv_tcp_nodelay(&c->t.h.tcp, 1);
        c->state = CLIENT_HANDSHAKE;
        r = net__transport_start_tls(&c->t, c->ctx, false);
        if (r < 0) {
            net__transport_close(&c->t, r, "%s", c->t.errmsg[0] ? c->t.errmsg : "TLS setup");
            return;
        }
    } else {
        c->state = CLIENT_GREETING;
        c->server_peer.kind = NET_PEER_LOCAL;
        snprintf(c->server_peer.addr, sizeof(c->server_peer.addr), "unix");
    }
    r = net__transport_start_read(&c->t);
    if (r < 0)
        net__transport_close(&c->t, r, "read: %s", uv_strerror(r));
}

static int client_new(uv_loop_t *loop, bool tcp, uint64_t timeout_ms, net_connect_fn cb,
                      void *userdata, net_client **ret)
{
    net_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int r = net__transport_init(&c->t, loop, tcp, 0, &client_ops);
    if (r < 0) {
        free(c);
        return r;
    }
    c->connect_cb = cb;
    c->connect_userdata = userdata;
    c->next_id = 1;
    c->connect_req.data = c;
    if (timeout_ms)
        uv_timer_start(&c->t.timer, connect_timeout, timeout_ms, 0);
    *ret = c;
    return 0;
}

int net_client_connect_tcp(uv_loop_t *loop, const struct sw_addr *addr, SSL_CTX *ctx,
                           uint64_t timeout_ms, net_connect_fn cb, void *userdata, net_client **ret)
{
    return net_client_connect_tcp_expect(loop, addr, ctx, NULL, timeout_ms, cb, userdata, ret);
}

int net_client_connect_tcp_expect(uv_loop_t *loop, const struct sw_addr *addr, SSL_CTX *ctx,
                                  const struct net_expect *expect, uint64_t timeout_ms,
                                  net_connect_fn cb, void *userdata, net_client **ret)
{
    struct sockaddr_storage ss;
    net_client *c;
    int r;

    if (!ctx || !cb)
        return -EINVAL;
    if (expect && expect->cluster_id && strlen(expect->cluster_id) > SW_ID_LEN)
        return -EINVAL;
    r = sw_addr_sockaddr(addr, &ss, NULL);
    if (r < 0)
        return -EINVAL;
    r = client_new(loop, true, timeout_ms, cb, userdata, &c);
    if (r < 0)
        return r;
    if (expect) {
        c->has_expect = true;
        c->expect.manager = expect->manager;
        if (expect->cluster_id) {
            snprintf(c->expect_cluster, sizeof(c->expect_cluster), "%s", expect->cluster_id);
            c->expect.cluster_id = c->expect_cluster;
        }
    }
    SSL_CTX_up_ref(ctx);
    c->ctx = ctx;
    sw_addr_format(addr, c->target, sizeof(c->target));
    sw_addr_format(addr, c->server_peer.addr, sizeof(c->server_peer.addr));
    r = uv_tcp_connect(&c->connect_req, &c->t.h.tcp, (const struct sockaddr *)&ss, on_connect);
    if (r < 0) {
        /* no callback for a call that returns an error */
        c->connect_cb = NULL;
        c->user_closed = true;
        net__transport_close(&c->t, r, NULL);
        return r;
    }
    *ret = c;
    return 0;
}

int net_client_connect_unix(uv_loop_t *loop, const char *path, uint64_t timeout_ms,
                            net_connect_fn cb, void *userdata, net_client **ret)
{
    struct sockaddr_un sa;
    net_client *c;
    int r;

    if (!path || !cb)
        return -EINVAL;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    r = client_new(loop, false, timeout_ms, cb, userdata, &c);
    if (r < 0)
        return r;
    snprintf(c->target, sizeof(c->target), "%s", path);
    uv_pipe_connect(&c->connect_req, &c->t.h.pipe, path, on_connect);
    *ret = c;
    return 0;
}

const struct net_peer *net_client_server_peer(const net_client *c)
{
    return &c->server_peer;
}

const char *net_client_server_cert_pem(const net_client *c)
{
    return c->server_cert_pem;
}

static int call_impl(net_client *c, const char *method, const uint8_t *payload, size_t len,
                     net_reply_fn cb, void *userdata, net_raw_fn raw_cb, void *raw_userdata,
                     uint64_t *ret_id)
{
    if (!method || !cb)
        return -EINVAL;
    if (c->state != CLIENT_READY || c->raw)
        return c->state == CLIENT_CLOSED || c->raw ? -EPIPE : -ENOTCONN;
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    uint64_t id = c->next_id++;
    struct proto_frame f = {.id = id,
                            .kind = SWARM__FRAME_KIND__FRAME_REQUEST,
                            .method = method,
                            .payload = payload,
                            .payload_len = len};
    int r = net__transport_send(&c->t, &f);
    if (r < 0) {
        free(p);
        return r;
    }
    p->id = id;
    p->cb = cb;
    p->userdata = userdata;
    p->raw_cb = raw_cb;
    p->raw_userdata = raw_userdata;
    p->next = c->pending;
    c->pending = p;
    if (ret_id)
        *ret_id = id;
    return 0;
}

int net_client_call(net_client *c, const char *method, const uint8_t *payload, size_t len,
                    net_reply_fn cb, void *userdata, uint64_t *ret_id)
{
    return call_impl(c, method, payload, len, cb, userdata, NULL, NULL, ret_id);
}

int net_client_call_raw(net_client *c, const char *method, const uint8_t *payload, size_t len,
                        net_reply_fn cb, void *userdata, net_raw_fn raw_cb, void *raw_userdata)
{
    if (!raw_cb)
        return -EINVAL;
    return call_impl(c, method, payload, len, cb, userdata, raw_cb, raw_userdata, NULL);
}

int net_client_cancel(net_client *c, uint64_t id)
{
    struct pending *p = pending_take(c, id, true);
    if (!p)
        return -ENOENT;
    free(p);
    struct proto_frame f = {.id = id, .kind = SWARM__FRAME_KIND__FRAME_CANCEL};
    net__transport_send(&c->t, &f);
    return 0;
}

void net_client_close(net_client *c)
{
    if (!c || c->user_closed)
        return;
    c->user_closed = true;
    if (c->raw)
        c->raw->user_closed = true; /* no callback after the user closed it */
    if (c->handles_closed) {
        client_free(c);
        return;
    }
    net__transport_close(&c->t, -ECANCELED, "connection closed by the client");
}

/* ------------------------------------------------------------------ raw byte streams */

void net__raw_end(struct net_raw *r, int status, const char *error)
{
    if (r->ended || r->user_closed)
        return;
    r->ended = true;
    r->cb(r, status < 0 ? status : -ECONNRESET, error, NULL, 0, r->userdata);
}

net_raw *net_client_raw(net_client *c)
{
    return c->raw;
}

int net_raw_write(net_raw *r, const uint8_t *data, size_t len)
{
    if (r->ended || r->user_closed)
        return -EPIPE;
    return net__transport_send_bytes(r->t, data, len);
}

size_t net_raw_queued(const net_raw *r)
{
    return r->ended || r->user_closed ? 0 : uv_stream_get_write_queue_size(&r->t->h.stream);
}

void net_raw_close(net_raw *r)
{
    if (!r || r->user_closed)
        return;
    r->user_closed = true;
    if (r->client)
        net_client_close(r->client);
    else
        net__transport_close(r->t, -ECANCELED, "closed");
}
