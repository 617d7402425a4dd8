/* net HTTP client: a small blocking HTTP/1.1 POST for the external CA — URL parsing, connect
 * and total deadline, optional TLS (OpenSSL over memory BIOs, so no SIGPIPE and one poll
 * loop; the context comes from pki_cfssl_tls_ctx), Content-Length, chunked or
 * read-until-close bodies with a size cap. No global state. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "net/http.h"
#include "pki/cfssl.h"

#define HTTP_MAX_HEADERS (16 * 1024)
#define HTTP_IO_CHUNK (16 * 1024)

/* ------------------------------------------------------------------ messages */

/* errmsg: sw_errmsg, and pki_errmsg_ssl with the OpenSSL error queue */
#define http_err sw_errmsg
#define http_err_ssl pki_errmsg_ssl

/* ------------------------------------------------------------------ URL */

struct url {
    bool https;
    bool ipv6;
    char host[256];
    char port[6];
    const char *path; /* points into the URL; "" means "/" */
};

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.';
}

static int url_parse(const char *s, struct url *u, char *errmsg, size_t size)
{
    memset(u, 0, sizeof(*u));
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            http_err(errmsg, size, "external CA URL holds a space or a non-ASCII byte");
            return -EINVAL;
        }
    const char *p;
    if (strncmp(s, "http://", 7) == 0) {
        p = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        u->https = true;
        p = s + 8;
    } else {
        http_err(errmsg, size, "external CA URL must start with http:// or https://");
        return -EINVAL;
    }
    const char *h = p, *he;
    if (*p == '[') {
        h = ++p;
        while (*p && *p != ']')
            p++;
        if (*p != ']' || p == h) {
            http_err(errmsg, size, "external CA URL has an unterminated [IPv6] host");
            return -EINVAL;
        }
        he = p++;
        for (const char *q = h; q < he; q++)
            if (!(is_name_char(*q) || *q == ':') || *q == '-') {
                http_err(errmsg, size, "external CA URL has a bad [IPv6] host");
                return -EINVAL;
            }
        u->ipv6 = true;
    } else {
        while (*p && is_name_char(*p))
            p++;
        he = p;
        if (*p == '@') {
            http_err(errmsg, size, "external CA URL must not carry user info");
            return -EINVAL;
        }
    }
    if (he == h || (size_t)(he - h) >= sizeof(u->host)) {
        http_err(errmsg, size, "external CA URL has no host or a host too long");
        return -EINVAL;
    }
    memcpy(u->host, h, (size_t)(he - h));
    u->host[he - h] = '\0';
    if (*p == ':') {
        const char *ps = ++p;
        unsigned long port = 0;
        while (*p >= '0' && *p <= '9' && p - ps < 6)
            port = port * 10 + (unsigned long)(*p++ - '0');
        if (p == ps || port == 0 || port > 65535 || (*p >= '0' && *p <= '9')) {
            http_err(errmsg, size, "external CA URL has a bad port (1-65535)");
            return -EINVAL;
        }
        snprintf(u->port, sizeof(u->port), "%lu", port);
    } else {
        memcpy(u->port, u->https ? "443" : "80", u->https ? 4 : 3);
    }
    if (*p && *p != '/') {
        http_err(errmsg, size, "external CA URL: unexpected '%c' after the host", *p);
        return -EINVAL;
    }
    if (strchr(p, '#')) {
        http_err(errmsg, size, "external CA URL must not carry a #fragment");
        return -EINVAL;
    }
    u->path = p;
    return 0;
}

/* ------------------------------------------------------------------ socket with a deadline */

struct conn {
    int fd;
    SSL *ssl;
    BIO *net; /* TLS: the network side of a BIO pair (ssl owns the other side) */
    bool eof;
    uint64_t deadline_ms;
    const char *who; /* host:port for messages */
    char *errmsg;
    size_t size;
    bool cert_requested; /* the server asked for a client certificate we do not have */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline. */
static int wait_fd(struct conn *c, short events)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= c->deadline_ms)
            goto timeout;
        uint64_t left = c->deadline_ms - now;
        struct pollfd pfd = {.fd = c->fd, .events = events};
        int n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR) {
            int e = errno;
            http_err(c->errmsg, c->size, "poll on %s: %s", c->who, strerror(e));
            return -e;
        }
    }
timeout:
    http_err(c->errmsg, c->size, "external CA %s did not answer in time", c->who);
    return -ETIMEDOUT;
}

static int send_all(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(c, POLLOUT);
            if (r < 0)
                return r;
            continue;
        }
        int e = n < 0 ? errno : EPIPE;
        http_err(c->errmsg, c->size, "sending to external CA %s: %s", c->who, strerror(e));
        return -e;
    }
    return 0;
}

/* Up to len bytes; 0 at end of stream. */
static int recv_some(struct conn *c, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int r = wait_fd(c, POLLIN);
            if (r < 0)
                return r;
            continue;
        }
        int e = errno;
        http_err(c->errmsg, c->size, "reading from external CA %s: %s", c->who, strerror(e));
        return -e;
    }
}

static int conn_open(struct conn *c, const struct url *u)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (u->ipv6 ? AI_NUMERICHOST : 0);
    struct addrinfo *res = NULL;
    int g = getaddrinfo(u->host, u->port, &hints, &res);
    if (g != 0) {
        http_err(c->errmsg, c->size, "cannot resolve external CA host %s: %s", u->host,
                 gai_strerror(g));
        return g == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
    }
    int r = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        c->fd = fd;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            r = 0;
            break;
        }
        if (errno == EINPROGRESS) {
            r = wait_fd(c, POLLOUT);
            if (r == 0) {
                int err = 0;
                socklen_t el = sizeof(err);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                    err = errno;
                if (err == 0)
                    break;
                r = -err;
            }
        } else {
            r = -errno;
        }
        close(fd);
        c->fd = -1;
        if (r == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (r == -ETIMEDOUT)
        http_err(c->errmsg, c->size, "cannot connect to external CA %s: timed out", c->who);
    else if (r < 0)
        http_err(c->errmsg, c->size, "cannot connect to external CA %s: %s", c->who, strerror(-r));
    return r;
}

/* ------------------------------------------------------------------ TLS over a BIO pair */

/* Send whatever TLS has queued for the network. */
static int tls_flush(struct conn *c)
{
    char tmp[HTTP_IO_CHUNK];
    int n;
    while ((n = BIO_read(c->net, tmp, sizeof(tmp))) > 0) {
        int r = send_all(c, tmp, (size_t)n);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Move bytes from the network into TLS (or signal the end of stream). */
static int tls_feed(struct conn *c)
{
    char tmp[HTTP_IO_CHUNK];
    size_t room = BIO_ctrl_get_write_guarantee(c->net);
    if (room == 0)
        return 0;
    int n = recv_some(c, tmp, SW_MIN(room, sizeof(tmp)));
    if (n < 0)
        return n;
    if (n == 0) {
        c->eof = true;
        BIO_shutdown_wr(c->net);
        return 0;
    }
    if (BIO_write(c->net, tmp, n) != n)
        return -EIO;
    return 0;
}

enum tls_op { TLS_CONNECT, TLS_WRITE, TLS_READ };

/* Run one TLS operation to completion: > 0 bytes (or 1 for connect), 0 at a clean end. */
static int tls_run(struct conn *c, enum tls_op op, void *buf, int len)
{
    for (;;) {
        ERR_clear_error();
        int n = op == TLS_CONNECT ? SSL_connect(c->ssl)
                : op == TLS_WRITE ? SSL_write(c->ssl, buf, len)
                                  : SSL_read(c->ssl, buf, len);
        int e = SSL_get_error(c->ssl, n);
        int r = tls_flush(c);
        if (r < 0)
            return r;
        if (n > 0)
            return n;
        if (e == SSL_ERROR_WANT_READ && !c->eof) {
            r = tls_feed(c);
            if (r < 0)
                return r;
            continue;
        }
        if (e == SSL_ERROR_WANT_WRITE)
            continue;
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (op == TLS_CONNECT && SSL_get_verify_result(c->ssl) != X509_V_OK) {
            long v = SSL_get_verify_result(c->ssl);
            ERR_clear_error();
            http_err(c->errmsg, c->size,
                     "external CA %s presented a certificate that is not trusted: %s", c->who,
                     X509_verify_cert_error_string(v));
            return -EPERM;
        }
        if (c->eof)
            http_err(c->errmsg, c->size, "external CA %s closed the TLS connection early", c->who);
        else
            http_err_ssl(c->errmsg, c->size, "TLS with external CA %s failed", c->who);
        ERR_clear_error();
        return -EPROTO;
    }
}

SW_DEFINE_FREEP(SSL_CTX, SSL_CTX_free)

/* Without a client certificate: note that the server asked for one, and go on without. */
static int cert_requested(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    struct conn *c = SSL_get_app_data(ssl);
    if (c)
        c->cert_requested = true;
    return 0;
}

static int tls_start(struct conn *c, SSL_CTX *ctx, const struct url *u)
{
    c->ssl = SSL_new(ctx);
    if (!c->ssl)
        return -ENOMEM;
    SSL_set_app_data(c->ssl, c);
    BIO *inner = NULL;
    if (!BIO_new_bio_pair(&inner, 64 * 1024, &c->net, 64 * 1024))
        return -ENOMEM;
    SSL_set_bio(c->ssl, inner, inner);
    X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    bool ip = u->ipv6 || X509_VERIFY_PARAM_set1_ip_asc(param, u->host) == 1;
    if (!ip) {
        ERR_clear_error();
        if (!SSL_set1_host(c->ssl, u->host) || !SSL_set_tlsext_host_name(c->ssl, u->host))
            return -ENOMEM;
    } else if (u->ipv6 && X509_VERIFY_PARAM_set1_ip_asc(param, u->host) != 1) {
        http_err(c->errmsg, c->size, "external CA URL has a bad IPv6 address");
        return -EINVAL;
    }
    SSL_set_connect_state(c->ssl);
    int r = tls_run(c, TLS_CONNECT, NULL, 0);
    return r < 0 ? r : 0;
}

static int conn_write(struct conn *c, const char *data, size_t len)
{
    if (!c->ssl)
        return send_all(c, data, len);
    while (len > 0) {
        int n = tls_run(c, TLS_WRITE, (void *)data, (int)SW_MIN(len, (size_t)HTTP_IO_CHUNK));
        if (n <= 0)
            return n < 0 ? n : -EPIPE;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int conn_read(struct conn *c, char *buf, size_t len)
{
    if (!c->ssl)
        return recv_some(c, buf, len);
    return tls_run(c, TLS_READ, buf, (int)SW_MIN(len, (size_t)INT_MAX));
}

static void conn_close(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    if (c->net)
        BIO_free(c->net);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->net = NULL;
    c->fd = -1;
}

/* ------------------------------------------------------------------ HTTP response */

struct head {
    int status;
    size_t len; /* bytes of the status line and headers, blank line included */
    bool chunked;
    bool has_length;
    size_t content_length;
};

static bool token_eq(const char *a, size_t alen, const char *b)
{
    return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

/* Parse a complete header block raw[0..end). -EPROTO/-EFBIG with errmsg. */
static int head_parse(const char *raw, size_t end, size_t max_body, struct head *h, const char *who,
                      char *errmsg, size_t size)
{
    memset(h, 0, sizeof(*h));
    h->len = end;
    const char *p = raw, *stop = raw + end - 2; /* at the final CRLF */
    const char *eol = memchr(p, '\r', (size_t)(stop - p) + 1);
    if (!eol || eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' ||
        p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (eol - p > 12 && p[12] != ' ')) {
        http_err(errmsg, size, "external CA %s did not answer HTTP/1.x", who);
        return -EPROTO;
    }
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    p = eol + 2;
    while (p < stop) {
        eol = memchr(p, '\r', (size_t)(stop - p) + 1);
        if (!eol || eol[1] != '\n')
            goto bad;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            goto bad;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (token_eq(p, (size_t)(colon - p), "content-length")) {
            size_t n = 0;
            if (v == ve)
                goto bad;
            for (const char *q = v; q < ve; q++) {
                if (*q < '0' || *q > '9' || n > (SIZE_MAX - 9) / 10)
                    goto bad;
                n = n * 10 + (size_t)(*q - '0');
            }
            if (h->has_length && n != h->content_length)
                goto bad;
            h->has_length = true;
            h->content_length = n;
        } else if (token_eq(p, (size_t)(colon - p), "transfer-encoding")) {
            if (!token_eq(v, (size_t)(ve - v), "chunked") || h->chunked) {
                http_err(errmsg, size, "external CA %s used a transfer encoding other than chunked",
                         who);
                return -EPROTO;
            }
            h->chunked = true;
        }
        p = eol + 2;
    }
    if (h->chunked && h->has_length)
        goto bad;
    if (h->has_length && h->content_length > max_body) {
        http_err(errmsg, size, "external CA %s answered %zu bytes, more than the %zu allowed", who,
                 h->content_length, max_body);
        return -EFBIG;
    }
    return 0;
bad:
    http_err(errmsg, size, "external CA %s sent malformed HTTP headers", who);
    return -EPROTO;
}

/* Decode a chunked body in in[0..len). Returns 1 when complete (out/out_len set when out
 * is not NULL: out holds at least len+1 bytes), 0 if more is needed, -EPROTO, -EFBIG. */
static int dechunk(const char *in, size_t len, size_t max_body, char *out, size_t *out_len)
{
    size_t i = 0, total = 0;
    for (;;) {
        size_t n = 0, digits = 0;
        while (i < len && ((in[i] >= '0' && in[i] <= '9') || (in[i] >= 'a' && in[i] <= 'f') ||
                           (in[i] >= 'A' && in[i] <= 'F'))) {
            if (++digits > 8)
                return -EPROTO;
            char ch = in[i++];
            n = n * 16 + (size_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
        }
        if (i == len)
            return 0;
        if (digits == 0)
            return -EPROTO;
        const char *nl = memchr(in + i, '\n', len - i); /* skip chunk extensions */
        if (!nl)
            return 0;
        if (nl == in + i || nl[-1] != '\r')
            return -EPROTO;
        i = (size_t)(nl - in) + 1;
        if (n == 0)
            break;
        if (n > max_body - total)
            return -EFBIG;
        if (len - i < n + 2)
            return 0;
        if (in[i + n] != '\r' || in[i + n + 1] != '\n')
            return -EPROTO;
        if (out)
            memcpy(out + total, in + i, n);
        total += n;
        i += n + 2;
    }
    /* Trailers, then a blank line. */
    for (;;) {
        const char *nl = memchr(in + i, '\n', len - i);
        if (!nl)
            return 0;
        if (nl == in + i || nl[-1] != '\r')
            return -EPROTO;
        bool blank = nl == in + i + 1;
        i = (size_t)(nl - in) + 1;
        if (blank)
            break;
    }
    if (out) {
        out[total] = '\0';
        *out_len = total;
    }
    return 1;
}

static const char *find_blank_line(const char *raw, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (raw[i] == '\r' && raw[i + 1] == '\n' && raw[i + 2] == '\r' && raw[i + 3] == '\n')
            return raw + i;
    return NULL;
}

/* Read the answer: *ret_body is malloc'd and NUL-terminated. */
static int read_response(struct conn *c, size_t max_body, int *ret_status, char **ret_body,
                         size_t *ret_len)
{
    size_t cap = max_body + HTTP_MAX_HEADERS + 64 * 1024; /* raw bytes: headers, framing */
    _cleanup_free_ char *raw = NULL;
    size_t len = 0, alloc = 0;
    struct head h;
    bool have_head = false;
    for (;;) {
        if (alloc - len < HTTP_IO_CHUNK + 1 && alloc < cap + 1) {
            size_t na = SW_MIN(cap + 1, alloc ? alloc * 2 : 32 * 1024);
            char *p = realloc(raw, na);
            if (!p)
                return -ENOMEM;
            raw = p;
            alloc = na;
        }
        if (len >= cap) {
            http_err(c->errmsg, c->size, "external CA %s answered more than %zu bytes", c->who,
                     max_body);
            return -EFBIG;
        }
        int n = conn_read(c, raw + len, SW_MIN(alloc - 1 - len, (size_t)HTTP_IO_CHUNK));
        if (n < 0)
            return n;
        len += (size_t)n;
        /* Headers: skip interim 1xx answers. */
        while (!have_head) {
            const char *blank = find_blank_line(raw, len);
            if (!blank) {
                if (len > HTTP_MAX_HEADERS) {
                    http_err(c->errmsg, c->size, "external CA %s sent headers over %d bytes",
                             c->who, HTTP_MAX_HEADERS);
                    return -EPROTO;
                }
                break;
            }
            int r = head_parse(raw, (size_t)(blank - raw) + 4, max_body, &h, c->who, c->errmsg,
                               c->size);
            if (r < 0)
                return r;
            if (h.status >= 200) {
                have_head = true;
                break;
            }
            memmove(raw, raw + h.len, len - h.len);
            len -= h.len;
        }
        if (have_head) {
            const char *b = raw + h.len;
            size_t blen = len - h.len;
            size_t want = 0;
            bool done = false;
            if (h.status == 204 || h.status == 304) {
                done = true;
            } else if (h.has_length) {
                want = h.content_length;
                done = blen >= want;
            } else if (h.chunked) {
                int r = dechunk(b, blen, max_body, NULL, NULL);
                if (r == -EFBIG) {
                    http_err(c->errmsg, c->size, "external CA %s answered more than %zu bytes",
                             c->who, max_body);
                    return r;
                }
                if (r < 0) {
                    http_err(c->errmsg, c->size, "external CA %s sent a bad chunked body", c->who);
                    return r;
                }
                if (r == 1) {
                    char *out = malloc(blen + 1);
                    if (!out)
                        return -ENOMEM;
                    dechunk(b, blen, max_body, out, ret_len);
                    *ret_status = h.status;
                    *ret_body = out;
                    return 0;
                }
            } else if (n == 0) {
                want = blen;
                done = true;
            } else if (blen > max_body) {
                http_err(c->errmsg, c->size, "external CA %s answered more than %zu bytes", c->who,
                         max_body);
                return -EFBIG;
            }
            if (done) {
                char *out = malloc(want + 1);
                if (!out)
                    return -ENOMEM;
                if (want)
                    memcpy(out, b, want);
                out[want] = '\0';
                *ret_status = h.status;
                *ret_body = out;
                *ret_len = want;
                return 0;
            }
        }
        if (n == 0) {
            http_err(c->errmsg, c->size, "external CA %s closed the connection mid-answer", c->who);
            return -EPROTO;
        }
    }
}

/* ------------------------------------------------------------------ POST */

int net_http_post(const char *url, const char *body, const char *ca_pem,
                  const char *client_cert_pem, const pki_key *client_key, uint64_t timeout_ms,
                  size_t max_response, int *ret_status, char **ret_body, size_t *ret_len,
                  char *errmsg, size_t size)
{
    if (!url || !body || !ret_status || !ret_body || !ret_len || max_response == 0 ||
        max_response > SIZE_MAX / 4) {
        http_err(errmsg, size, "internal error: bad HTTP request arguments");
        return -EINVAL;
    }
    struct url u;
    int r = url_parse(url, &u, errmsg, size);
    if (r < 0)
        return r;
    if (u.https && !ca_pem) {
        http_err(errmsg, size, "https external CA needs a CA bundle to verify it");
        return -EINVAL;
    }
    if (!u.https && (ca_pem || client_cert_pem || client_key)) {
        http_err(errmsg, size, "TLS material given for an http:// external CA: use https://");
        return -EINVAL;
    }
    if ((client_cert_pem != NULL) != (client_key != NULL)) {
        http_err(errmsg, size, "client certificate and key must be given together");
        return -EINVAL;
    }
    char who[sizeof(u.host) + 10];
    int wn = snprintf(who, sizeof(who), u.ipv6 ? "[%s]:%s" : "%s:%s", u.host, u.port);
    if (wn < 0 || (size_t)wn >= sizeof(who))
        return -EINVAL;
    bool default_port = strcmp(u.port, u.https ? "443" : "80") == 0;
    size_t body_len = strlen(body);
    _cleanup_free_ char *req = NULL;
    int rn = asprintf(&req,
                      "POST %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUser-Agent: swarmd\r\n"
                      "Accept: application/json\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      *u.path ? u.path : "/", u.ipv6 ? "[" : "", u.host, u.ipv6 ? "]" : "",
                      default_port ? "" : ":", default_port ? "" : u.port, body_len);
    if (rn < 0) {
        req = NULL;
        return -ENOMEM;
    }
    _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
    if (u.https) {
        r = pki_cfssl_tls_ctx(ca_pem, client_cert_pem, client_key, &ctx, errmsg, size);
        if (r < 0)
            return r;
        if (!client_cert_pem)
            SSL_CTX_set_client_cert_cb(ctx, cert_requested);
    }
    if (timeout_ms == 0)
        timeout_ms = NET_HTTP_TIMEOUT_MS_DEFAULT;
    struct conn c = {.fd = -1, .who = who, .errmsg = errmsg, .size = size};
    c.deadline_ms = now_ms() + SW_MIN(timeout_ms, (uint64_t)UINT32_MAX * 1000);
    r = conn_open(&c, &u);
    if (r >= 0 && ctx)
        r = tls_start(&c, ctx, &u);
    if (r >= 0)
        r = conn_write(&c, req, (size_t)rn);
    if (r >= 0)
        r = conn_write(&c, body, body_len);
    int status = 0;
    char *resp = NULL;
    size_t resp_len = 0;
    if (r >= 0)
        r = read_response(&c, max_response, &status, &resp, &resp_len);
    conn_close(&c);
    ERR_clear_error();
    if (r < 0 && c.cert_requested && errmsg && size) {
        char first[256];
        snprintf(first, sizeof(first), "%s", errmsg);
        http_err(errmsg, size,
                 "%s (it asked for a client certificate, mutual TLS, and none was given: a "
                 "first manager has none before the CA signs one; let the signer take that "
                 "request without)",
                 first);
    }
    if (r < 0)
        return r;
    *ret_status = status;
    *ret_body = resp;
    *ret_len = resp_len;
    return 0;
}
