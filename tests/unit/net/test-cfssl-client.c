/* net unit tests: net_http_post against small local servers (refused, silent, oversized,
 * chunked, TLS) and net_cfssl_sign, the whole external CA exchange, against a mini signer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../pki/helpers.h"
#include "../pki/test-cfssl-serve.h"
#include "common/cleanup.h"
#include "common/ids.h"
#include "net/cfssl-client.h"
#include "net/http.h"
#include "pki/cfssl.h"
#include "pki/pki.h"

static pki_ca *ca, *other_ca;
static char cluster[SW_ID_LEN + 1], node_id[SW_ID_LEN + 1];
static pki_key *key;
static char *csr;

static int setup(void **state)
{
    if (pki_ca_create(&ca) < 0 || pki_ca_create(&other_ca) < 0 || sw_id_generate(cluster) < 0 ||
        sw_id_generate(node_id) < 0 || pki_key_generate(&key) < 0 || pki_csr_create(key, &csr) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    pki_ca_free(ca);
    pki_ca_free(other_ca);
    pki_key_free(key);
    free(csr);
    return 0;
}

/* ------------------------------------------------------------------ HTTP */

static char *url_for(const char *scheme, const char *host, int port, const char *path)
{
    char *u = NULL;
    assert_true(asprintf(&u, "%s://%s:%d%s", scheme, host, port, path) > 0);
    return u;
}

static void test_http_bad_urls(void **state)
{
    static const char *const bad[] = {
        "ftp://127.0.0.1/", "127.0.0.1:8888",    "http://",        "http://:80/",  "http://h:0/",
        "http://h:65536/",  "http://h:80x/",     "http://user@h/", "http://[::1/", "http://h x/",
        "http://h/p#frag",  "http://h\xc3\xa9/", "http://h?x",     "HTTP://h/",
    };
    char err[256];
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int r = net_http_post(bad[i], "{}", NULL, NULL, NULL, 1000, 4096, &status, &body, &len, err,
                              sizeof(err));
        if (r != -EINVAL || !strstr(err, "URL"))
            fail_msg("case %s: %d (%s)", bad[i], r, err);
    }
    /* https needs a bundle; http takes no TLS material. */
    assert_int_equal(net_http_post("https://127.0.0.1:1/", "{}", NULL, NULL, NULL, 1000, 4096,
                                   &status, &body, &len, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(net_http_post("http://127.0.0.1:1/", "{}", pki_ca_cert_pem(ca), NULL, NULL,
                                   1000, 4096, &status, &body, &len, err, sizeof(err)),
                     -EINVAL);
    assert_null(body);
}

static void test_http_refused(void **state)
{
    char err[256];
    int port = srv_free_port();
    assert_true(port > 0);
    _cleanup_free_ char *u = url_for("http", "127.0.0.1", port, "/");
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(net_http_post(u, "{}", NULL, NULL, NULL, 5000, 4096, &status, &body, &len, err,
                                   sizeof(err)),
                     -ECONNREFUSED);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d: Connection refused", port);
    if (!strstr(err, want))
        fail_msg("%s", err);
    assert_null(body);
}

/* A signer that accepts and never answers: the call ends with -ETIMEDOUT. */
static void test_http_silent(void **state)
{
    char err[256];
    int port = 0, fd = srv_listen(&port);
    assert_true(fd >= 0);
    _cleanup_free_ char *u = url_for("http", "127.0.0.1", port, PKI_CFSSL_SIGN_PATH);
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    int r =
        net_http_post(u, "{}", NULL, NULL, NULL, 300, 4096, &status, &body, &len, err, sizeof(err));
    close(fd);
    assert_int_equal(r, -ETIMEDOUT);
    assert_non_null(strstr(err, "did not answer in time"));
    /* The same through TLS (stuck in the handshake). */
    fd = srv_listen(&port);
    assert_true(fd >= 0);
    _cleanup_free_ char *us = url_for("https", "127.0.0.1", port, "/");
    r = net_http_post(us, "{}", pki_ca_cert_pem(ca), NULL, NULL, 300, 4096, &status, &body, &len,
                      err, sizeof(err));
    close(fd);
    assert_int_equal(r, -ETIMEDOUT);
}

static int post_to(struct srv *s, const char *scheme, const char *ca_pem, const struct node *client,
                   size_t max, int *status, char **body, size_t *len, char *err)
{
    assert_int_equal(srv_start(s), 0);
    _cleanup_free_ char *u = url_for(scheme, "127.0.0.1", s->port, "/x");
    int r = net_http_post(u, "{\"a\":1}", ca_pem, client ? client->cert : NULL,
                          client ? client->key : NULL, 10000, max, status, body, len, err, 256);
    srv_stop(s);
    return r;
}

static void test_http_framing(void **state)
{
    char err[256];
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    /* Content-Length, and the request as sent. */
    struct srv s = {.mode = SRV_FIXED,
                    .fixed = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello"};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u = url_for("http", "127.0.0.1", s.port, "/api/v1/cfssl/sign");
    assert_int_equal(net_http_post(u, "{\"a\":1}", NULL, NULL, NULL, 10000, 4096, &status, &body,
                                   &len, err, sizeof(err)),
                     0);
    assert_non_null(s.request);
    assert_non_null(strstr(s.request, "POST /api/v1/cfssl/sign HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.request, host));
    assert_non_null(strstr(s.request, "\r\nContent-Length: 7\r\n"));
    assert_non_null(strstr(s.request, "\r\nConnection: close\r\n\r\n{\"a\":1}"));
    srv_stop(&s);
    assert_int_equal(status, 201);
    assert_int_equal(len, 5);
    assert_string_equal(body, "hello");
    free(body);
    body = NULL;
    /* Chunked, with an extension and a trailer, after a 100 Continue. */
    s = (struct srv){.mode = SRV_FIXED,
                     .fixed =
                         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\nA\r\n0123456789"
                         "\r\n0\r\nX-T: 1\r\n\r\n"};
    assert_int_equal(post_to(&s, "http", NULL, NULL, 4096, &status, &body, &len, err), 0);
    assert_int_equal(status, 400);
    assert_string_equal(body, "abc0123456789");
    free(body);
    body = NULL;
    /* No length: until close. */
    s = (struct srv){.mode = SRV_FIXED, .fixed = "HTTP/1.0 200 OK\r\n\r\nuntil close"};
    assert_int_equal(post_to(&s, "http", NULL, NULL, 4096, &status, &body, &len, err), 0);
    assert_string_equal(body, "until close");
    free(body);
    body = NULL;
    /* Broken answers. */
    static const char *const broken[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        s = (struct srv){.mode = SRV_FIXED, .fixed = broken[i]};
        int r = post_to(&s, "http", NULL, NULL, 4096, &status, &body, &len, err);
        if (r != -EPROTO)
            fail_msg("case %zu: %d (%s)", i, r, err);
        assert_null(body);
    }
}

static void test_http_oversized(void **state)
{
    char err[256];
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    struct srv s = {.mode = SRV_FIXED,
                    .fixed = "HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\nxx"};
    assert_int_equal(post_to(&s, "http", NULL, NULL, 1 << 20, &status, &body, &len, err), -EFBIG);
    assert_non_null(strstr(err, "more than the 1048576 allowed"));
    s = (struct srv){.mode = SRV_ENDLESS};
    assert_int_equal(post_to(&s, "http", NULL, NULL, 100000, &status, &body, &len, err), -EFBIG);
    s = (struct srv){.mode = SRV_FIXED,
                     .fixed =
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "FFFFFF\r\nabc"};
    assert_int_equal(post_to(&s, "http", NULL, NULL, 100000, &status, &body, &len, err), -EFBIG);
    assert_null(body);
}

/* The whole path through net_cfssl_sign against a mini signer. */
static void test_sign_mini_signer(void **state)
{
    char err[256];
    char *cert = NULL;
    struct pki_sign_request req = {node_id, cluster, PKI_ROLE_MANAGER, 0};
    struct srv s = {.mode = SRV_SIGN, .ca = ca};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u = url_for("http", "127.0.0.1", s.port, "/");
    assert_int_equal(net_cfssl_sign(u, NULL, NULL, NULL, NULL, 10000, csr, &req,
                                    pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     0);
    assert_non_null(strstr(s.request, "POST " PKI_CFSSL_SIGN_PATH " HTTP/1.1"));
    srv_stop(&s);
    struct pki_identity id;
    assert_int_equal(pki_identity_from_pem(cert, strlen(cert), &id), 0);
    assert_string_equal(id.node_id, node_id);
    assert_int_equal(id.role, PKI_ROLE_MANAGER);
    free(cert);
    cert = NULL;

    /* A signer with another CA: refused by the check. */
    s = (struct srv){.mode = SRV_SIGN, .ca = other_ca};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u2 = url_for("http", "127.0.0.1", s.port, PKI_CFSSL_SIGN_PATH);
    assert_int_equal(net_cfssl_sign(u2, NULL, NULL, NULL, NULL, 10000, csr, &req,
                                    pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -EPERM);
    srv_stop(&s);
    assert_non_null(strstr(err, "does not chain to the declared root"));

    /* A signer that refuses (HTTP 400, success false). */
    s = (struct srv){.mode = SRV_SIGN, .ca = ca};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u3 = url_for("http", "127.0.0.1", s.port, "");
    assert_int_equal(net_cfssl_sign(u3, NULL, NULL, NULL, NULL, 10000,
                                    "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END "
                                    "CERTIFICATE REQUEST-----\n",
                                    &req, pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -EREMOTEIO);
    srv_stop(&s);
    assert_non_null(strstr(err, "refused to sign"));
    assert_non_null(strstr(err, "cfssl code 9999"));

    /* A web server that is no signer. */
    s = (struct srv){.mode = SRV_FIXED,
                     .fixed = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u4 = url_for("http", "127.0.0.1", s.port, "/");
    assert_int_equal(net_cfssl_sign(u4, NULL, NULL, NULL, NULL, 10000, csr, &req,
                                    pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -EREMOTEIO);
    srv_stop(&s);
    assert_non_null(strstr(err, "HTTP 404"));
    assert_null(cert);
}

static void test_https(void **state)
{
    char err[256];
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    char *scert = NULL;
    EVP_PKEY *skey = NULL;
    assert_int_equal(srv_make_cert(ca, "IP:127.0.0.1", &scert, &skey), 0);
    struct node client;
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_MANAGER, 0, &client), 0);
    SSL_CTX *mtls = srv_tls_ctx(scert, skey, pki_ca_cert_pem(ca));
    SSL_CTX *plain = srv_tls_ctx(scert, skey, NULL);
    assert_non_null(mtls);
    assert_non_null(plain);
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /* Verified server, client certificate asked for and presented. */
    struct srv s = {.mode = SRV_FIXED, .fixed = ok, .tls = mtls};
    assert_int_equal(
        post_to(&s, "https", pki_ca_cert_pem(ca), &client, 4096, &status, &body, &len, err), 0);
    assert_true(s.client_had_cert);
    assert_string_equal(body, "ok");
    free(body);
    body = NULL;
    /* The signer wants a client certificate, none given. */
    s = (struct srv){.mode = SRV_FIXED, .fixed = ok, .tls = mtls};
    /* TLS 1.3: the server's refusal comes after the client's Finished, as an alert or a reset. */
    int r = post_to(&s, "https", pki_ca_cert_pem(ca), NULL, 4096, &status, &body, &len, err);
    if (r != -EPROTO && r != -ECONNRESET && r != -EPIPE)
        fail_msg("%d: %s", r, err);
    /* Server certificate not from the bundle. */
    s = (struct srv){.mode = SRV_FIXED, .fixed = ok, .tls = plain};
    assert_int_equal(
        post_to(&s, "https", pki_ca_cert_pem(other_ca), NULL, 4096, &status, &body, &len, err),
        -EPERM);
    assert_non_null(strstr(err, "not trusted"));
    /* Right CA, wrong name (the certificate is for 127.0.0.1 only). */
    s = (struct srv){.mode = SRV_FIXED, .fixed = ok, .tls = plain};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u = url_for("https", "localhost", s.port, "/");
    r = net_http_post(u, "{}", pki_ca_cert_pem(ca), NULL, NULL, 10000, 4096, &status, &body, &len,
                      err, sizeof(err));
    srv_stop(&s);
    assert_int_equal(r, -EPERM);
    assert_non_null(strstr(err, "mismatch"));
    assert_null(body);

    /* net_cfssl_sign over mTLS against the mini signer: the bundle defaults to the root. */
    char *cert = NULL;
    struct pki_sign_request req = {node_id, cluster, PKI_ROLE_WORKER, 0};
    s = (struct srv){.mode = SRV_SIGN, .ca = ca, .tls = mtls};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *us = url_for("https", "127.0.0.1", s.port, "");
    r = net_cfssl_sign(us, NULL, client.cert, client.key, "node", 10000, csr, &req,
                       pki_ca_cert_pem(ca), &cert, err, sizeof(err));
    srv_stop(&s);
    if (r != 0)
        fail_msg("%d: %s", r, err);
    assert_true(s.client_had_cert);
    free(cert);

    SSL_CTX_free(mtls);
    SSL_CTX_free(plain);
    EVP_PKEY_free(skey);
    free(scert);
    node_finish(&client);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_bad_urls),  cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_silent),    cmocka_unit_test(test_http_framing),
        cmocka_unit_test(test_http_oversized), cmocka_unit_test(test_sign_mini_signer),
        cmocka_unit_test(test_https),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
