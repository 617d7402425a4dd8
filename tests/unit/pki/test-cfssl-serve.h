/* Test helpers for the external CA tests: a one-connection local HTTP(S) server in a thread
 * (a mini cfssl signer, a fixed answer, an endless one), TLS server certificates with an IP
 * SAN, cfssl answer JSON, and files. Header-only: included by tests/unit/pki/test-cfssl.c and
 * tests/unit/net/test-cfssl-*.c. */
#pragma once

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/json.h"
#include "pki/internal.h"
#include "pki/pki.h"

/* s as a JSON string into a malloc'd buffer (quotes included). */
static inline char *srv_json_string(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 6 + 3), *o = out;
    if (!out)
        return NULL;
    *o++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            o += snprintf(o, 7, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* cfssl's success answer for cert_pem. */
static inline int srv_cfssl_answer(const char *cert_pem, char **ret)
{
    char *q = srv_json_string(cert_pem);
    if (!q)
        return -ENOMEM;
    int n = asprintf(ret,
                     "{\"success\":true,\"result\":{\"certificate\":%s},\"errors\":[],"
                     "\"messages\":[]}",
                     q);
    free(q);
    return n < 0 ? -ENOMEM : 0;
}

/* A TLS server certificate for the signer: CN test-signer, SAN san (e.g. "IP:127.0.0.1"),
 * issued by ca, with a fresh P-256 key. */
static inline int srv_make_cert(const pki_ca *ca, const char *san, char **ret_cert,
                                EVP_PKEY **ret_key)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    int ok = pk && x && X509_set_version(x, 2) &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 4242) &&
             X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
             X509_gmtime_adj(X509_getm_notAfter(x), 86400) && X509_set_pubkey(x, pk) &&
             X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                        (const unsigned char *)"test-signer", -1, -1, 0) &&
             X509_set_issuer_name(x, X509_get_subject_name(ca->cert));
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, ca->cert, x, NULL, NULL, 0);
    const char *exts[][2] = {{"subjectAltName", san},
                             {"extendedKeyUsage", "serverAuth"},
                             {"basicConstraints", "critical,CA:FALSE"}};
    for (size_t i = 0; ok && i < 3; i++) {
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);
        ok = e && X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    ok = ok && X509_sign(x, ca->key->pkey, EVP_sha256()) > 0;
    char *pem = NULL;
    if (ok)
        ok = pki__x509_to_pem(x, &pem, NULL) == 0;
    X509_free(x);
    ERR_clear_error();
    if (!ok) {
        EVP_PKEY_free(pk);
        return -EINVAL;
    }
    *ret_cert = pem;
    *ret_key = pk;
    return 0;
}

/* A key as "EC PRIVATE KEY" PEM (what older cfssl reads). */
static inline char *srv_key_pem(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0, NULL, NULL))
        pki__bio_to_string(b, &out, NULL);
    BIO_free(b);
    return out;
}

static inline int srv_write_file(const char *dir, const char *name, const char *data)
{
    char path[512];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    size_t n = strlen(data);
    int ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -EIO;
}

enum srv_mode {
    SRV_SIGN,    /* a mini cfssl: sign the CSR with ca, subject from the request */
    SRV_FIXED,   /* answer the bytes in fixed */
    SRV_ENDLESS, /* 200 without a length, then data until the client goes away */
};

struct srv {
    enum srv_mode mode;
    const pki_ca *ca;  /* SRV_SIGN */
    const char *fixed; /* SRV_FIXED: the whole HTTP answer */
    SSL_CTX *tls;      /* NULL: plain HTTP */
    /* filled in */
    int lfd;
    int port;
    pthread_t thread;
    bool running;
    char *request; /* the request as received (headers and body) */
    bool client_had_cert;
};

struct srv_io {
    int fd;
    SSL *ssl;
};

static inline int srv_send(struct srv_io *io, const char *d, size_t n)
{
    while (n > 0) {
        int w = io->ssl ? SSL_write(io->ssl, d, (int)n) : (int)send(io->fd, d, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

static inline int srv_recv(struct srv_io *io, char *d, size_t n)
{
    return io->ssl ? SSL_read(io->ssl, d, (int)n) : (int)recv(io->fd, d, n, 0);
}

/* Read headers and a Content-Length body; NULL on error. */
static inline char *srv_read_request(struct srv_io *io, const char **ret_body)
{
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    while (buf && len < cap) {
        int n = srv_recv(io, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (end && cl && (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10) <= len) {
            *ret_body = end + 4;
            return buf;
        }
    }
    free(buf);
    return NULL;
}

static inline char *srv_sign_answer(struct srv *s, const char *body)
{
    sw_json *doc = NULL;
    char err[256] = "bad request JSON";
    char *cert = NULL, *out = NULL;
    if (sw_json_parse(body, strlen(body), NULL, &doc, err, sizeof(err)) == 0) {
        const char *csr = sw_json_get_string(sw_json_get(doc, "certificate_request"), NULL);
        const sw_json *subj = sw_json_get(doc, "subject");
        const sw_json *name = sw_json_at(sw_json_get(subj, "names"), 0);
        const char *ou = sw_json_get_string(sw_json_get(name, "OU"), NULL);
        struct pki_sign_request req = {
            sw_json_get_string(sw_json_get(subj, "CN"), NULL),
            sw_json_get_string(sw_json_get(name, "O"), NULL),
            ou && strcmp(ou, PKI_OU_MANAGER) == 0 ? PKI_ROLE_MANAGER : PKI_ROLE_WORKER, 0};
        if (csr)
            pki_ca_sign_csr(s->ca, csr, strlen(csr), &req, &cert, err, sizeof(err));
        sw_json_free(doc);
    }
    char *json = NULL;
    if (cert) {
        srv_cfssl_answer(cert, &json);
        free(cert);
    } else {
        char *q = srv_json_string(err);
        if (q && asprintf(&json,
                          "{\"success\":false,\"result\":null,\"errors\":[{\"code\":"
                          "9999,\"message\":%s}],\"messages\":[]}",
                          q) < 0)
            json = NULL;
        free(q);
    }
    if (json && asprintf(&out,
                         "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         cert || !json ? "200 OK" : "400 Bad Request", strlen(json), json) < 0)
        out = NULL;
    free(json);
    return out;
}

static inline void *srv_main(void *arg)
{
    struct srv *s = arg;
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    if (poll(&p, 1, 20000) != 1)
        return NULL;
    struct srv_io io = {accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC), NULL};
    if (io.fd < 0)
        return NULL;
    struct timeval tv = {20, 0};
    setsockopt(io.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(io.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (s->tls) {
        io.ssl = SSL_new(s->tls);
        if (!io.ssl || !SSL_set_fd(io.ssl, io.fd) || SSL_accept(io.ssl) != 1)
            goto out;
        X509 *peer = SSL_get1_peer_certificate(io.ssl);
        s->client_had_cert = peer != NULL;
        X509_free(peer);
    }
    const char *body = NULL;
    s->request = srv_read_request(&io, &body);
    if (!s->request)
        goto out;
    if (s->mode == SRV_FIXED) {
        srv_send(&io, s->fixed, strlen(s->fixed));
    } else if (s->mode == SRV_SIGN) {
        char *ans = srv_sign_answer(s, body);
        if (ans)
            srv_send(&io, ans, strlen(ans));
        free(ans);
    } else {
        static char junk[8192];
        memset(junk, 'x', sizeof(junk));
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
        if (srv_send(&io, h, strlen(h)) == 0)
            while (srv_send(&io, junk, sizeof(junk)) == 0)
                ;
    }
    if (io.ssl)
        SSL_shutdown(io.ssl);
out:
    ERR_clear_error();
    SSL_free(io.ssl);
    close(io.fd);
    return NULL;
}

/* Listen on 127.0.0.1 (a free port) without serving: connections queue, nothing answers. */
static inline int srv_listen(int *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *ret_port = ntohs(a.sin_port);
    return fd;
}

/* A port nothing listens on (bound, then closed). */
static inline int srv_free_port(void)
{
    int port = 0, fd = srv_listen(&port);
    if (fd < 0)
        return -1;
    close(fd);
    return port;
}

static inline int srv_start(struct srv *s)
{
    s->lfd = srv_listen(&s->port);
    if (s->lfd < 0)
        return -1;
    if (pthread_create(&s->thread, NULL, srv_main, s) != 0) {
        close(s->lfd);
        return -1;
    }
    s->running = true;
    return 0;
}

/* Wait for the connection to end (the server gives up after 20 s idle) and free. */
static inline void srv_stop(struct srv *s)
{
    if (s->running) {
        shutdown(s->lfd, SHUT_RDWR);
        pthread_join(s->thread, NULL);
        close(s->lfd);
    }
    s->running = false;
    free(s->request);
    s->request = NULL;
}

/* A TLS server context: cert/key, and client certificates required against client_ca. */
static inline SSL_CTX *srv_tls_ctx(const char *cert_pem, EVP_PKEY *key, const char *client_ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    X509 *x = NULL;
    if (!ctx || pki__x509_from_pem(cert_pem, strlen(cert_pem), &x) < 0 ||
        !SSL_CTX_use_certificate(ctx, x) || !SSL_CTX_use_PrivateKey(ctx, key))
        goto fail;
    X509_free(x);
    x = NULL;
    if (client_ca) {
        if (pki__store_add_bundle(SSL_CTX_get_cert_store(ctx), client_ca, strlen(client_ca)) < 0)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    X509_free(x);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}
