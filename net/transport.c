/* net transport: a libuv stream carrying length-prefixed frames, optionally through
 * TLS driven by OpenSSL memory BIOs (ciphertext in from uv reads, out to uv_write). */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "net/internal.h"

#define READ_CHUNK (64u * 1024u)
#define WRITE_QUEUE_SLACK (1u << 20)

struct wreq {
    uv_write_t req;
    struct net_transport *t;
    size_t len;
    uint8_t data[];
};

static void handle_closed(uv_handle_t *h)
{
    struct net_transport *t = h->data;
    if (--t->handles_open > 0)
        return;
    if (t->ssl) {
        SSL_free(t->ssl); /* frees both BIOs */
        t->ssl = NULL;
    }
    proto_frame_decoder_finish(&t->dec);
    t->ops->on_closed(t);
}

int net__transport_init(struct net_transport *t, uv_loop_t *loop, bool is_tcp, size_t max_frame,
                        const struct net_transport_ops *ops)
{
    int r;

    memset(t, 0, sizeof(*t));
    t->ops = ops;
    t->is_tcp = is_tcp;
    t->max_frame = max_frame ? max_frame : PROTO_FRAME_MAX_DEFAULT;
    proto_frame_decoder_init(&t->dec, t->max_frame);
    r = is_tcp ? uv_tcp_init(loop, &t->h.tcp) : uv_pipe_init(loop, &t->h.pipe, 0);
    if (r < 0)
        return r;
    r = uv_timer_init(loop, &t->timer);
    if (r < 0) {
        /* uv_timer_init cannot fail in practice; keep the contract anyway */
        return r;
    }
    t->h.handle.data = t;
    t->timer.data = t;
    t->handles_open = 2;
    return 0;
}

static void set_error_v(struct net_transport *t, int err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void set_error_v(struct net_transport *t, int err, const char *fmt, va_list ap)
{
    if (t->err || err == 0)
        return;
    t->err = err;
    if (fmt)
        vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
    else
        snprintf(t->errmsg, sizeof(t->errmsg), "%s", strerror(-err));
}

static void begin_close(struct net_transport *t)
{
    if (t->closing)
        return;
    t->closing = true;
    t->ops->on_closing(t);
}

static void close_handles(struct net_transport *t)
{
    if (!uv_is_closing(&t->h.handle))
        uv_close(&t->h.handle, handle_closed);
    if (!uv_is_closing((uv_handle_t *)&t->timer))
        uv_close((uv_handle_t *)&t->timer, handle_closed);
}

void net__transport_close(struct net_transport *t, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_v(t, err, fmt, ap);
    va_end(ap);
    begin_close(t);
    close_handles(t);
}

static void shutdown_done(uv_shutdown_t *req, int status)
{
    struct net_transport *t = req->data;
    close_handles(t);
}

static void flush_timeout(uv_timer_t *timer)
{
    close_handles(timer->data);
}

void net__transport_close_flush(struct net_transport *t, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_error_v(t, err, fmt, ap);
    va_end(ap);
    if (t->closing) {
        if (!t->shutting_down)
            close_handles(t);
        return;
    }
    begin_close(t);
    if (t->reading) {
        uv_read_stop(&t->h.stream);
        t->reading = false;
    }
    t->shutdown_req.data = t;
    if (uv_is_writable(&t->h.stream) &&
        uv_shutdown(&t->shutdown_req, &t->h.stream, shutdown_done) == 0) {
        t->shutting_down = true;
        /* a peer that never reads must not keep us open */
        uv_timer_stop(&t->timer);
        uv_timer_start(&t->timer, flush_timeout, 2000, 0);
        return;
    }
    close_handles(t);
}

static void write_done(uv_write_t *req, int status)
{
    struct wreq *w = net__container_of(req, struct wreq, req);
    struct net_transport *t = w->t;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !t->closing)
        net__transport_close(t, status, "write failed: %s", uv_strerror(status));
}

static int write_raw(struct net_transport *t, struct wreq *w)
{
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
    w->t = t;
    int r = uv_write(&w->req, &t->h.stream, &buf, 1, write_done);
    if (r < 0) {
        free(w);
        return r;
    }
    return 0;
}

/* Move whatever OpenSSL produced into one uv_write. */
static int flush_tls(struct net_transport *t)
{
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n == 0)
        return 0;
    struct wreq *w = malloc(sizeof(*w) + n);
    if (!w)
        return -ENOMEM;
    int got = BIO_read(t->wbio, w->data, (int)n);
    if (got <= 0) {
        free(w);
        return -EIO;
    }
    w->len = (size_t)got;
    return write_raw(t, w);
}

/* A handshake that failed because the peer's certificate does not verify (not of a root this
 * side trusts, expired, ...) closes with -EKEYREJECTED and says why; other failures -EPROTO. */
static void tls_fail(struct net_transport *t, const char *what)
{
    char e[200];
    pki_openssl_error(e, sizeof(e));
    flush_tls(t); /* let an alert reach the peer */
    /* (with SSL_VERIFY_NONE the result is never OK, and means nothing) */
    long v = t->tls_done || !(SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER)
                 ? X509_V_OK
                 : SSL_get_verify_result(t->ssl);
    bool clock = v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID;
    if (v != X509_V_OK)
        net__transport_close_flush(t, clock ? -EKEYEXPIRED : -EKEYREJECTED,
                                   "%s: the peer's certificate does not verify: %s%s", what,
                                   X509_verify_cert_error_string(v),
                                   clock ? " (is this machine's clock right?)" : "");
    else
        net__transport_close_flush(t, -EPROTO, "%s: %s", what, e[0] ? e : "protocol error");
}

int net__transport_start_tls(struct net_transport *t, SSL_CTX *ctx, bool server)
{
    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    if (!t->ssl)
        return -ENOMEM;
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        t->rbio = t->wbio = NULL;
        SSL_free(t->ssl);
        t->ssl = NULL;
        return -ENOMEM;
    }
    /* an empty memory BIO means "try again", not EOF */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (server) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    int r = SSL_do_handshake(t->ssl);
    if (r != 1 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) {
        char e[200];
        pki_openssl_error(e, sizeof(e));
        snprintf(t->errmsg, sizeof(t->errmsg), "TLS handshake: %s", e);
        return -EPROTO;
    }
    return flush_tls(t);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    char *p = malloc(READ_CHUNK);
    *buf = uv_buf_init(p, p ? READ_CHUNK : 0);
}

/* After the switch to raw mode: what the decoder still holds is raw already. */
static void flush_raw_leftover(struct net_transport *t)
{
    struct proto_frame_decoder *d = &t->dec;
    size_t n = d->len - d->off;
    if (n == 0 || t->closing)
        return;
    uint8_t *copy = malloc(n);
    if (!copy) {
        net__transport_close(t, -ENOMEM, "out of memory");
        return;
    }
    memcpy(copy, d->buf + d->off, n);
    d->off = d->len = 0;
    t->raw_cb(t, copy, n);
    free(copy);
}

void net__transport_go_raw(struct net_transport *t, net__raw_fn cb)
{
    t->raw_cb = cb;
    if (!t->dispatching)
        flush_raw_leftover(t);
}

static void dispatch_frames(struct net_transport *t)
{
    t->dispatching = true;
    while (!t->closing && !t->raw_cb) {
        Swarm__Frame *f = NULL;
        int r = proto_frame_decoder_next(&t->dec, &f);
        if (r == 0)
            break;
        if (r < 0) {
            char msg[96];
            if (r == -EMSGSIZE)
                snprintf(msg, sizeof(msg), "frame larger than %zu bytes", t->dec.max_frame);
            else
                snprintf(msg, sizeof(msg), "frame does not decode");
            if (t->error_frames) {
                /* tell the peer why, then close once that is written */
                struct proto_frame ef = {
                    .id = 0, .kind = SWARM__FRAME_KIND__FRAME_RESPONSE, .status = r, .error = msg};
                net__transport_send(t, &ef);
                net__transport_close_flush(t, r, "%s", msg);
            } else {
                net__transport_close(t, r, "%s", msg);
            }
            break;
        }
        t->ops->on_frame(t, f);
        swarm__frame__free_unpacked(f, NULL);
    }
    t->dispatching = false;
    if (t->raw_cb)
        flush_raw_leftover(t);
}

/* Push ciphertext through OpenSSL; plaintext lands in the frame decoder. */
static void feed_tls(struct net_transport *t, const uint8_t *data, size_t len)
{
    if (BIO_write(t->rbio, data, (int)len) != (int)len) {
        net__transport_close(t, -ENOMEM, "out of memory");
        return;
    }
    if (!t->tls_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (flush_tls(t) < 0)
                    net__transport_close(t, -EIO, "write failed");
                return;
            }
            tls_fail(t, "TLS handshake failed");
            return;
        }
        t->tls_done = true;
        flush_tls(t);
        t->ops->on_handshake(t);
        if (t->closing)
            return;
    }
    uint8_t buf[16384];
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(t->ssl, buf, sizeof(buf));
        if (r > 0 && t->raw_cb) {
            t->raw_cb(t, buf, (size_t)r);
            if (t->closing)
                return;
            continue;
        }
        if (r > 0) {
            if (proto_frame_decoder_feed(&t->dec, buf, (size_t)r) < 0) {
                net__transport_close(t, -ENOMEM, "out of memory");
                return;
            }
            /* check the size cap early: never buffer a huge announced frame */
            dispatch_frames(t);
            if (t->closing)
                return;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            net__transport_close(t, -ECONNRESET, "connection closed by peer");
            return;
        }
        tls_fail(t, "TLS error");
        return;
    }
    flush_tls(t);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct net_transport *t = stream->data;

    if (nread < 0) {
        free(buf->base);
        if (t->closing)
            return;
        if (nread == UV_EOF) {
            if (proto_frame_decoder_pending(&t->dec) > 0)
                net__transport_close(t, -EBADMSG, "connection closed inside a frame");
            else
                net__transport_close(t, -ECONNRESET, "connection closed by peer");
        } else {
            net__transport_close(t, (int)nread, "read failed: %s", uv_strerror((int)nread));
        }
        return;
    }
    if (nread == 0 || t->closing) {
        free(buf->base);
        return;
    }
    if (!buf->base) {
        net__transport_close(t, -ENOMEM, "out of memory");
        return;
    }
    if (t->ssl) {
        feed_tls(t, (const uint8_t *)buf->base, (size_t)nread);
    } else if (t->raw_cb) {
        t->raw_cb(t, (const uint8_t *)buf->base, (size_t)nread);
    } else if (proto_frame_decoder_feed(&t->dec, (const uint8_t *)buf->base, (size_t)nread) < 0) {
        net__transport_close(t, -ENOMEM, "out of memory");
    } else {
        dispatch_frames(t);
    }
    free(buf->base);
}

int net__transport_start_read(struct net_transport *t)
{
    int r = uv_read_start(&t->h.stream, alloc_cb, read_cb);
    if (r == 0)
        t->reading = true;
    return r;
}

int net__transport_send(struct net_transport *t, const struct proto_frame *f)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (t->closing)
        return -EPIPE;
    int r = proto_frame_encode(f, t->max_frame, &buf, &len);
    if (r < 0)
        return r;
    r = net__transport_send_bytes(t, buf, len);
    free(buf);
    return r;
}

int net__transport_send_bytes(struct net_transport *t, const uint8_t *buf, size_t len)
{
    int r;
    if (t->closing)
        return -EPIPE;
    /* a peer that stops reading must not make us buffer without bound */
    size_t queued = uv_stream_get_write_queue_size(&t->h.stream);
    if (queued > 4 * t->max_frame + WRITE_QUEUE_SLACK) {
        net__transport_close(t, -ENOBUFS, "peer is not reading (%zu bytes queued)", queued);
        return -EPIPE;
    }
    if (t->ssl) {
        ERR_clear_error();
        size_t written = 0;
        int ok = SSL_write_ex(t->ssl, buf, len, &written);
        if (!ok || written != len) {
            tls_fail(t, "TLS write failed");
            return -EPIPE;
        }
        r = flush_tls(t);
    } else {
        struct wreq *w = malloc(sizeof(*w) + len);
        if (!w)
            return -ENOMEM;
        memcpy(w->data, buf, len);
        w->len = len;
        r = write_raw(t, w);
    }
    if (r < 0) {
        net__transport_close(t, r, "write failed: %s", strerror(-r));
        return -EPIPE;
    }
    return 0;
}

/* ------------------------------------------------------------------ helpers */

int net__peer_from_ssl(SSL *ssl, struct net_peer *peer)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert) {
        peer->kind = NET_PEER_ANONYMOUS;
        memset(&peer->id, 0, sizeof(peer->id));
        return 0;
    }
    struct pki_identity id;
    int r = pki_identity_from_x509(cert, &id);
    if (r < 0)
        return -EINVAL;
    peer->kind = NET_PEER_NODE;
    peer->id = id;
    return 0;
}

int net__server_expected(const struct net_peer *server, const struct net_expect *e, char *msg,
                         size_t msg_size)
{
    if (server->kind != NET_PEER_NODE) {
        snprintf(msg, msg_size, "the server did not show a swarm node certificate");
        return -EPERM;
    }
    if (e->cluster_id && strcmp(server->id.cluster_id, e->cluster_id) != 0) {
        snprintf(msg, msg_size,
                 "the server's certificate is of another cluster (%s, expected %.64s)",
                 server->id.cluster_id, e->cluster_id);
        return -EPERM;
    }
    if (e->manager && server->id.role != PKI_ROLE_MANAGER) {
        snprintf(msg, msg_size,
                 "the server's certificate is a worker certificate, not a manager's");
        return -EPERM;
    }
    return 0;
}

void net__tcp_peer_addr(const uv_tcp_t *tcp, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";

    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(buf, size, "unknown");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, size, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, ntohs(s4->sin_port));
    }
}
