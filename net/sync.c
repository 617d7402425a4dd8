/* net blocking client for CLIs and tests: one connection, one unary call at a time,
 * non-blocking socket driven with poll() so every step honours the timeout. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "net/internal.h"

#define SYNC_TIMEOUT_DEFAULT_MS 30000u

struct net_sync {
    int fd;
    SSL *ssl;
    uint64_t timeout_ms;
    uint64_t next_id;
    char target[128];
    struct proto_frame_decoder dec;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait for events on fd until deadline; -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)SW_MIN(deadline - now, (uint64_t)INT32_MAX));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

void net_sync_close(net_sync *c)
{
    if (!c)
        return;
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    proto_frame_decoder_finish(&c->dec);
    free(c);
}
SW_DEFINE_FREEP(net_sync, net_sync_close)

static net_sync *sync_new(uint64_t timeout_ms, const char *target)
{
    net_sync *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = -1;
    c->timeout_ms = timeout_ms ? timeout_ms : SYNC_TIMEOUT_DEFAULT_MS;
    c->next_id = 1;
    snprintf(c->target, sizeof(c->target), "%s", target);
    proto_frame_decoder_init(&c->dec, 0);
    return c;
}

static int connect_fd(int fd, const struct sockaddr *sa, socklen_t len, uint64_t deadline)
{
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return -errno;
    int r = wait_fd(fd, POLLOUT, deadline);
    if (r < 0)
        return r;
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return -errno;
    return err ? -err : 0;
}

static int sync_write(net_sync *c, const uint8_t *buf, size_t len, uint64_t deadline)
{
    size_t off = 0;
    while (off < len) {
        if (c->ssl) {
            size_t n = 0;
            ERR_clear_error();
            int ok = SSL_write_ex(c->ssl, buf + off, len - off, &n);
            if (ok) {
                off += n;
                continue;
            }
            int e = SSL_get_error(c->ssl, 0);
            int r;
            if (e == SSL_ERROR_WANT_WRITE)
                r = wait_fd(c->fd, POLLOUT, deadline);
            else if (e == SSL_ERROR_WANT_READ)
                r = wait_fd(c->fd, POLLIN, deadline);
            else
                return -EPIPE;
            if (r < 0)
                return r;
        } else {
            ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
            if (n >= 0) {
                off += (size_t)n;
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            int r = wait_fd(c->fd, POLLOUT, deadline);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* Read some bytes into the decoder. 0 on EOF is reported as -ECONNRESET. */
static int sync_read_some(net_sync *c, uint64_t deadline, char *errmsg, size_t errmsg_size)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n;
        if (c->ssl) {
            size_t got = 0;
            ERR_clear_error();
            if (SSL_read_ex(c->ssl, buf, sizeof(buf), &got)) {
                n = (ssize_t)got;
            } else {
                int e = SSL_get_error(c->ssl, 0);
                int r;
                if (e == SSL_ERROR_WANT_READ) {
                    r = wait_fd(c->fd, POLLIN, deadline);
                } else if (e == SSL_ERROR_WANT_WRITE) {
                    r = wait_fd(c->fd, POLLOUT, deadline);
                } else if (e == SSL_ERROR_ZERO_RETURN) {
                    n = 0;
                    goto got;
                } else {
                    char ossl[200];
                    pki_openssl_error(ossl, sizeof(ossl));
                    if (ossl[0]) {
                        snprintf(errmsg, errmsg_size, "%s: TLS error: %s", c->target, ossl);
                        return -EPROTO;
                    }
                    n = 0; /* plain EOF without close_notify */
                    goto got;
                }
                if (r < 0)
                    goto timeout_or_error;
                continue;
            }
        } else {
            n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN) {
                    int r = -errno;
                    snprintf(errmsg, errmsg_size, "%s: read failed: %s", c->target,
                             strerror(errno));
                    return r;
                }
                int r = wait_fd(c->fd, POLLIN, deadline);
                if (r < 0)
                    goto timeout_or_error;
                continue;
            }
        }
    got:
        if (n == 0) {
            snprintf(errmsg, errmsg_size, "%s: connection closed by the server", c->target);
            return -ECONNRESET;
        }
        if (proto_frame_decoder_feed(&c->dec, buf, (size_t)n) < 0) {
            snprintf(errmsg, errmsg_size, "out of memory");
            return -ENOMEM;
        }
        return 0;
    }
timeout_or_error:
    snprintf(errmsg, errmsg_size, "%s: no answer within %llu ms", c->target,
             (unsigned long long)c->timeout_ms);
    return -ETIMEDOUT;
}

/* Next frame, waiting until deadline. Connection-level errors (RESPONSE id 0 with a
 * negative status) become transport errors. */
static int sync_next_frame(net_sync *c, uint64_t deadline, Swarm__Frame **ret, char *errmsg,
                           size_t errmsg_size)
{
    for (;;) {
        Swarm__Frame *f = NULL;
        int r = proto_frame_decoder_next(&c->dec, &f);
        if (r < 0) {
            snprintf(errmsg, errmsg_size, "%s: %s", c->target,
                     r == -EMSGSIZE ? "frame from the server is too large"
                                    : "frame from the server does not decode");
            return r;
        }
        if (r == 1) {
            if (f->kind == SWARM__FRAME_KIND__FRAME_RESPONSE && f->id == 0 && f->status < 0) {
                snprintf(errmsg, errmsg_size, "%s: server: %s", c->target,
                         f->error && *f->error ? f->error : strerror(-f->status));
                r = f->status;
                swarm__frame__free_unpacked(f, NULL);
                return r;
            }
            *ret = f;
            return 0;
        }
        r = sync_read_some(c, deadline, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
}

static int sync_greeting(net_sync *c, uint64_t deadline, char *errmsg, size_t errmsg_size)
{
    Swarm__Frame *f = NULL;
    int r = sync_next_frame(c, deadline, &f, errmsg, errmsg_size);
    if (r < 0)
        return r;
    bool ok = f->kind == SWARM__FRAME_KIND__FRAME_RESPONSE && f->id == 0;
    swarm__frame__free_unpacked(f, NULL);
    if (!ok) {
        snprintf(errmsg, errmsg_size, "%s: unexpected first frame from the server", c->target);
        return -EPROTO;
    }
    return 0;
}

int net_sync_connect_unix(const char *path, uint64_t timeout_ms, net_sync **ret, char *errmsg,
                          size_t errmsg_size)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_(net_sync_closep) net_sync *c = NULL;
    int r;

    if (!path || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(errmsg, errmsg_size, "socket path too long: %s", path ? path : "(null)");
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    c = sync_new(timeout_ms, path);
    if (!c)
        return -ENOMEM;
    uint64_t deadline = now_ms() + c->timeout_ms;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "socket: %s", strerror(errno));
        return r;
    }
    r = connect_fd(c->fd, (struct sockaddr *)&sa, sizeof(sa), deadline);
    if (r < 0) {
        if (r == -ENOENT || r == -ECONNREFUSED)
            snprintf(errmsg, errmsg_size, "cannot connect to %s: %s — is swarmd running?", path,
                     strerror(-r));
        else if (r == -EACCES)
            snprintf(errmsg, errmsg_size, "cannot connect to %s: %s — run as root", path,
                     strerror(-r));
        else
            snprintf(errmsg, errmsg_size, "cannot connect to %s: %s", path, strerror(-r));
        return r;
    }
    r = sync_greeting(c, deadline, errmsg, errmsg_size);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(c);
    return 0;
}

int net_sync_connect_tcp(const struct sw_addr *addr, SSL_CTX *ctx, uint64_t timeout_ms,
                         net_sync **ret, char *errmsg, size_t errmsg_size)
{
    return net_sync_connect_tcp_expect(addr, ctx, NULL, timeout_ms, ret, errmsg, errmsg_size);
}

int net_sync_connect_tcp_expect(const struct sw_addr *addr, SSL_CTX *ctx,
                                const struct net_expect *expect, uint64_t timeout_ms,
                                net_sync **ret, char *errmsg, size_t errmsg_size)
{
    _cleanup_(net_sync_closep) net_sync *c = NULL;
    struct sockaddr_storage ss;
    char name[80];
    int r;

    sw_addr_format(addr, name, sizeof(name));
    if (!ctx || sw_addr_sockaddr(addr, &ss, NULL) < 0) {
        snprintf(errmsg, errmsg_size, "cannot connect to %s: bad address or no TLS context", name);
        return -EINVAL;
    }
    c = sync_new(timeout_ms, name);
    if (!c)
        return -ENOMEM;
    uint64_t deadline = now_ms() + c->timeout_ms;
    c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "socket: %s", strerror(errno));
        return r;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    r = connect_fd(
        c->fd, (struct sockaddr *)&ss,
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
        deadline);
    if (r < 0) {
        if (r == -ETIMEDOUT)
            snprintf(errmsg, errmsg_size, "cannot connect to %s: timed out after %llu ms", name,
                     (unsigned long long)c->timeout_ms);
        else
            snprintf(errmsg, errmsg_size, "cannot connect to %s: %s", name, strerror(-r));
        return r;
    }
    ERR_clear_error();
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        snprintf(errmsg, errmsg_size, "TLS setup failed");
        return -ENOMEM;
    }
    for (;;) {
        ERR_clear_error();
        int h = SSL_connect(c->ssl);
        if (h == 1)
            break;
        int e = SSL_get_error(c->ssl, h);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            r = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
            if (r < 0) {
                snprintf(errmsg, errmsg_size, "TLS handshake with %s: timed out", name);
                return r;
            }
            continue;
        }
        char ossl[200];
        pki_openssl_error(ossl, sizeof(ossl));
        snprintf(errmsg, errmsg_size, "TLS handshake with %s failed: %s", name,
                 ossl[0] ? ossl : "connection closed");
        return -EPROTO;
    }
    if (expect) {
        struct net_peer server = {0};
        char why[160];
        if (net__peer_from_ssl(c->ssl, &server) < 0)
            server.kind = NET_PEER_ANONYMOUS;
        r = net__server_expected(&server, expect, why, sizeof(why));
        if (r < 0) {
            snprintf(errmsg, errmsg_size, "%s: %s", name, why);
            return r;
        }
    }
    r = sync_greeting(c, deadline, errmsg, errmsg_size);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(c);
    return 0;
}

int net_sync_call(net_sync *c, const char *method, const uint8_t *payload, size_t len,
                  int *ret_status, char *ret_error, size_t error_size, uint8_t **ret_payload,
                  size_t *ret_len)
{
    uint64_t deadline = now_ms() + c->timeout_ms;
    uint64_t id = c->next_id++;
    struct proto_frame f = {.id = id,
                            .kind = SWARM__FRAME_KIND__FRAME_REQUEST,
                            .method = method,
                            .payload = payload,
                            .payload_len = len};
    _cleanup_free_ uint8_t *buf = NULL;
    size_t blen = 0;
    int r;

    r = proto_frame_encode(&f, PROTO_FRAME_MAX_DEFAULT, &buf, &blen);
    if (r < 0) {
        snprintf(ret_error, error_size, "request too large");
        return r;
    }
    r = sync_write(c, buf, blen, deadline);
    if (r < 0) {
        snprintf(ret_error, error_size, "%s: %s", c->target,
                 r == -ETIMEDOUT ? "write timed out" : "connection lost while sending");
        return r;
    }
    for (;;) {
        Swarm__Frame *in = NULL;
        r = sync_next_frame(c, deadline, &in, ret_error, error_size);
        if (r < 0)
            return r;
        if (in->kind != SWARM__FRAME_KIND__FRAME_RESPONSE || in->id != id) {
            swarm__frame__free_unpacked(in, NULL);
            continue; /* stream messages and stale frames are not for a unary call */
        }
        uint8_t *out = NULL;
        if (in->payload.len > 0) {
            out = malloc(in->payload.len);
            if (!out) {
                swarm__frame__free_unpacked(in, NULL);
                snprintf(ret_error, error_size, "out of memory");
                return -ENOMEM;
            }
            memcpy(out, in->payload.data, in->payload.len);
        }
        *ret_status = in->status > 0 ? -EPROTO : in->status;
        snprintf(ret_error, error_size, "%s", in->error ? in->error : "");
        if (ret_payload)
            *ret_payload = out;
        else
            free(out);
        if (ret_len)
            *ret_len = in->payload.len;
        swarm__frame__free_unpacked(in, NULL);
        return 0;
    }
}
