/* pki unit tests: the external CA (cfssl) request/response codec and certificate check, and
 * pki_http_post against small local servers (refused, silent, oversized, chunked, TLS). */
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

#include "common/cleanup.h"
#include "common/ids.h"
#include "common/json.h"
#include "helpers.h"
#include "test-cfssl-serve.h"
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

#define NODE_A "aaaaaaaaaaaaaaaaaaaaaaaaa"
#define CLUSTER_B "bbbbbbbbbbbbbbbbbbbbbbbbb"

/* ------------------------------------------------------------------ request */

static void test_request_golden(void **state)
{
    char err[256];
    char *json = NULL;
    struct pki_sign_request w = {NODE_A, CLUSTER_B, PKI_ROLE_WORKER, 0};
    assert_int_equal(
        pki_cfssl_sign_request("PEM\"q\\b\n\r\t\x01\x1f\x7f/<>", &w, NULL, &json, err, sizeof(err)),
        0);
    assert_string_equal(json,
                        "{\"certificate_request\":\"PEM\\\"q\\\\b\\n\\r\\t\\u0001\\u001f"
                        "\\u007f/<>\",\"hosts\":[\"swarm-worker\",\"" NODE_A
                        "\"],"
                        "\"subject\":{\"CN\":\"" NODE_A "\",\"names\":[{\"O\":\"" CLUSTER_B
                        "\",\"OU\":\"swarm-worker\"}]}}");
    free(json);
    json = NULL;
    struct pki_sign_request m = {NODE_A, CLUSTER_B, PKI_ROLE_MANAGER, 0};
    assert_int_equal(pki_cfssl_sign_request("x", &m, "node \"p\"", &json, err, sizeof(err)), 0);
    assert_string_equal(json,
                        "{\"certificate_request\":\"x\",\"hosts\":[\"swarm-manager\",\"" NODE_A
                        "\",\"swarm-ca\"],\"subject\":{\"CN\":\"" NODE_A
                        "\",\"names\":[{"
                        "\"O\":\"" CLUSTER_B
                        "\",\"OU\":\"swarm-manager\"}]},"
                        "\"profile\":\"node \\\"p\\\"\"}");
    free(json);
}

/* The real CSR survives the trip through our writer and the strict JSON reader. */
static void test_request_roundtrip(void **state)
{
    char err[256];
    char *json = NULL;
    struct pki_sign_request w = {node_id, cluster, PKI_ROLE_WORKER, 0};
    assert_int_equal(pki_cfssl_sign_request(csr, &w, "", &json, err, sizeof(err)), 0);
    sw_json *doc = NULL;
    assert_int_equal(sw_json_parse(json, strlen(json), NULL, &doc, err, sizeof(err)), 0);
    assert_string_equal(sw_json_get_string(sw_json_get(doc, "certificate_request"), NULL), csr);
    assert_null(sw_json_get(doc, "profile"));
    const sw_json *subj = sw_json_get(doc, "subject");
    assert_string_equal(sw_json_get_string(sw_json_get(subj, "CN"), NULL), node_id);
    const sw_json *names = sw_json_at(sw_json_get(subj, "names"), 0);
    assert_string_equal(sw_json_get_string(sw_json_get(names, "O"), NULL), cluster);
    assert_string_equal(sw_json_get_string(sw_json_get(names, "OU"), NULL), PKI_OU_WORKER);
    sw_json_free(doc);
    free(json);
}

static void test_request_rejects(void **state)
{
    char err[256];
    char *json = NULL;
    struct pki_sign_request bad_node = {"short", CLUSTER_B, PKI_ROLE_WORKER, 0};
    struct pki_sign_request bad_cluster = {NODE_A, "B", PKI_ROLE_WORKER, 0};
    struct pki_sign_request bad_role = {NODE_A, CLUSTER_B, (enum pki_role)7, 0};
    struct pki_sign_request ok = {NODE_A, CLUSTER_B, PKI_ROLE_WORKER, 0};
    assert_int_equal(pki_cfssl_sign_request("x", &bad_node, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "node ID"));
    assert_int_equal(pki_cfssl_sign_request("x", &bad_cluster, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "cluster ID"));
    assert_int_equal(pki_cfssl_sign_request("x", &bad_role, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_cfssl_sign_request("", &ok, NULL, &json, err, sizeof(err)), -EINVAL);
    assert_int_equal(pki_cfssl_sign_request("caf\xc3\xa9", &ok, NULL, &json, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_cfssl_sign_request("x", &ok, "a\nb", &json, err, sizeof(err)), -EINVAL);
    assert_int_equal(pki_cfssl_sign_request("x", NULL, NULL, &json, err, sizeof(err)), -EINVAL);
    assert_null(json);
}

/* ------------------------------------------------------------------ response */

static char *answer(const char *cert_pem)
{
    char *json = NULL;
    assert_int_equal(srv_cfssl_answer(cert_pem, &json), 0);
    return json;
}

static void test_parse_good(void **state)
{
    char err[256];
    char *cert = NULL;
    const char *pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    char *body = answer(pem);
    assert_int_equal(pki_cfssl_parse_response(body, strlen(body), &cert, err, sizeof(err)), 0);
    assert_string_equal(cert, pem);
    free(cert);
    free(body);
    /* cfssl's "bundle" and other keys are tolerated; messages may be absent. */
    const char *extra =
        "{\"success\":true,\"result\":{\"certificate\":\"-----BEGIN CERTIFICATE-----"
        "\\n\",\"bundle\":{\"x\":1}},\"errors\":[]}";
    cert = NULL;
    assert_int_equal(pki_cfssl_parse_response(extra, strlen(extra), &cert, err, sizeof(err)), 0);
    free(cert);
}

static void test_parse_refused(void **state)
{
    char err[256];
    char *cert = NULL;
    const char *b =
        "{\"success\":false,\"result\":null,\"errors\":[{\"code\":1003,"
        "\"message\":\"Failed to parse\\ninput\"}],\"messages\":[]}";
    assert_int_equal(pki_cfssl_parse_response(b, strlen(b), &cert, err, sizeof(err)), -EREMOTEIO);
    assert_string_equal(err,
                        "the external CA refused to sign: Failed to parse?input (cfssl code "
                        "1003)");
    const char *none = "{\"success\":false,\"result\":null,\"errors\":[],\"messages\":[]}";
    assert_int_equal(pki_cfssl_parse_response(none, strlen(none), &cert, err, sizeof(err)),
                     -EREMOTEIO);
    assert_non_null(strstr(err, "no error message"));
    assert_null(cert);
}

static void test_parse_truncated(void **state)
{
    char err[256];
    char *cert = NULL;
    char *body = answer("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    size_t len = strlen(body);
    for (size_t cut = 0; cut < len; cut += 7) {
        assert_int_equal(pki_cfssl_parse_response(body, cut, &cert, err, sizeof(err)), -EBADMSG);
        assert_non_null(strstr(err, "not JSON"));
    }
    assert_null(cert);
    free(body);
}

static void test_parse_huge(void **state)
{
    char err[256];
    char *cert = NULL;
    size_t n = PKI_CFSSL_MAX_RESPONSE + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    assert_int_equal(pki_cfssl_parse_response(big, n, &cert, err, sizeof(err)), -EFBIG);
    free(big);
    /* A certificate field over PKI_CFSSL_MAX_CERT inside a response under the cap. */
    size_t cl = PKI_CFSSL_MAX_CERT + 10;
    char *pem = malloc(cl + 1);
    assert_non_null(pem);
    memset(pem, 'A', cl);
    memcpy(pem, "-----BEGIN CERTIFICATE-----", 27);
    pem[cl] = '\0';
    char *body = answer(pem);
    assert_int_equal(pki_cfssl_parse_response(body, strlen(body), &cert, err, sizeof(err)), -EFBIG);
    assert_null(cert);
    free(body);
    free(pem);
}

static void test_parse_wrong_types(void **state)
{
    static const char *const bad[] = {
        "[]",
        "\"success\"",
        "{}",
        "{\"success\":\"true\",\"result\":{\"certificate\":\"-----BEGIN CERTIFICATE-----\"}}",
        "{\"success\":1,\"result\":{\"certificate\":\"-----BEGIN CERTIFICATE-----\"}}",
        "{\"success\":true}",
        "{\"success\":true,\"result\":null}",
        "{\"success\":true,\"result\":[\"-----BEGIN CERTIFICATE-----\"]}",
        "{\"success\":true,\"result\":{}}",
        "{\"success\":true,\"result\":{\"certificate\":42}}",
        "{\"success\":true,\"result\":{\"certificate\":\"not a pem\"}}",
        "{\"success\":true,\"result\":{\"certificate\":\"-----BEGIN CERTIFICATE-----\"},"
        "\"errors\":{}}",
        "{\"success\":true,\"result\":{\"certificate\":\"-----BEGIN CERTIFICATE-----\"},"
        "\"messages\":\"hi\"}",
        "{\"success\":true,\"result\":{\"certificate\":\"-----BEGIN CERTIFICATE-----\"},"
        "\"errors\":[{\"code\":1,\"message\":\"x\"}]}",
        "{\"success\":false,\"errors\":[\"oops\"]}",
        "{\"success\":true,\"success\":false}",
        "{\"success\":true,\"result\":{\"certificate\":\"-----BEGIN CERTIFICATE-----\"}} x",
    };
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *cert = NULL;
        int r = pki_cfssl_parse_response(bad[i], strlen(bad[i]), &cert, err, sizeof(err));
        if (r != -EBADMSG)
            fail_msg("case %zu: %d (%s)", i, r, err);
        assert_null(cert);
    }
}

/* ------------------------------------------------------------------ check */

static char *sign_with(const pki_ca *by, const char *with_csr, const char *cn, const char *o,
                       enum pki_role role)
{
    char err[256];
    char *cert = NULL;
    struct pki_sign_request req = {cn, o, role, 0};
    assert_int_equal(pki_ca_sign_csr(by, with_csr, strlen(with_csr), &req, &cert, err, sizeof(err)),
                     0);
    return cert;
}

static void expect_refused(const char *cert, const struct pki_sign_request *want,
                           const char *reason)
{
    char err[256] = "";
    assert_int_equal(pki_cfssl_check(cert, pki_ca_cert_pem(ca), csr, want, err, sizeof(err)),
                     -EPERM);
    if (!strstr(err, reason))
        fail_msg("want '%s' in '%s'", reason, err);
}

static void test_check(void **state)
{
    char err[256];
    char other_id[SW_ID_LEN + 1], other_cluster[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(other_id), 0);
    assert_int_equal(sw_id_generate(other_cluster), 0);
    struct pki_sign_request want = {node_id, cluster, PKI_ROLE_WORKER, 0};

    char *good = sign_with(ca, csr, node_id, cluster, PKI_ROLE_WORKER);
    assert_int_equal(pki_cfssl_check(good, pki_ca_cert_pem(ca), csr, &want, err, sizeof(err)), 0);
    assert_int_equal(pki_cfssl_check(good, pki_ca_cert_pem(ca), NULL, &want, err, sizeof(err)), 0);
    /* The declared root is other_ca's: refused. */
    assert_int_equal(pki_cfssl_check(good, pki_ca_cert_pem(other_ca), csr, &want, err, sizeof(err)),
                     -EPERM);
    assert_non_null(strstr(err, "does not chain"));
    free(good);

    char *c = sign_with(ca, csr, other_id, cluster, PKI_ROLE_WORKER);
    expect_refused(c, &want, "has CN");
    free(c);
    c = sign_with(ca, csr, node_id, cluster, PKI_ROLE_MANAGER);
    expect_refused(c, &want, "has OU swarm-manager, asked for swarm-worker");
    free(c);
    c = sign_with(ca, csr, node_id, other_cluster, PKI_ROLE_WORKER);
    expect_refused(c, &want, "has O");
    free(c);
    c = sign_with(other_ca, csr, node_id, cluster, PKI_ROLE_WORKER);
    expect_refused(c, &want, "does not chain to the declared root");
    free(c);
    /* The right subject for another key. */
    pki_key *k2 = NULL;
    char *csr2 = NULL;
    assert_int_equal(pki_key_generate(&k2), 0);
    assert_int_equal(pki_csr_create(k2, &csr2), 0);
    c = sign_with(ca, csr2, node_id, cluster, PKI_ROLE_WORKER);
    expect_refused(c, &want, "not for the CSR's key");
    free(c);
    free(csr2);
    pki_key_free(k2);
    /* The root itself, garbage. */
    expect_refused(pki_ca_cert_pem(ca), &want, "CA certificate");
    expect_refused("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &want,
                   "not PEM");
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
        int r = pki_http_post(bad[i], "{}", NULL, NULL, NULL, 1000, 4096, &status, &body, &len, err,
                              sizeof(err));
        if (r != -EINVAL || !strstr(err, "URL"))
            fail_msg("case %s: %d (%s)", bad[i], r, err);
    }
    /* https needs a bundle; http takes no TLS material. */
    assert_int_equal(pki_http_post("https://127.0.0.1:1/", "{}", NULL, NULL, NULL, 1000, 4096,
                                   &status, &body, &len, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_http_post("http://127.0.0.1:1/", "{}", pki_ca_cert_pem(ca), NULL, NULL,
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
    assert_int_equal(pki_http_post(u, "{}", NULL, NULL, NULL, 5000, 4096, &status, &body, &len, err,
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
        pki_http_post(u, "{}", NULL, NULL, NULL, 300, 4096, &status, &body, &len, err, sizeof(err));
    close(fd);
    assert_int_equal(r, -ETIMEDOUT);
    assert_non_null(strstr(err, "did not answer in time"));
    /* The same through TLS (stuck in the handshake). */
    fd = srv_listen(&port);
    assert_true(fd >= 0);
    _cleanup_free_ char *us = url_for("https", "127.0.0.1", port, "/");
    r = pki_http_post(us, "{}", pki_ca_cert_pem(ca), NULL, NULL, 300, 4096, &status, &body, &len,
                      err, sizeof(err));
    close(fd);
    assert_int_equal(r, -ETIMEDOUT);
}

static int post_to(struct srv *s, const char *scheme, const char *ca_pem, const struct node *client,
                   size_t max, int *status, char **body, size_t *len, char *err)
{
    assert_int_equal(srv_start(s), 0);
    _cleanup_free_ char *u = url_for(scheme, "127.0.0.1", s->port, "/x");
    int r = pki_http_post(u, "{\"a\":1}", ca_pem, client ? client->cert : NULL,
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
    assert_int_equal(pki_http_post(u, "{\"a\":1}", NULL, NULL, NULL, 10000, 4096, &status, &body,
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

/* The whole path through pki_cfssl_sign against a mini signer. */
static void test_sign_mini_signer(void **state)
{
    char err[256];
    char *cert = NULL;
    struct pki_sign_request req = {node_id, cluster, PKI_ROLE_MANAGER, 0};
    struct srv s = {.mode = SRV_SIGN, .ca = ca};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u = url_for("http", "127.0.0.1", s.port, "/");
    assert_int_equal(pki_cfssl_sign(u, NULL, NULL, NULL, NULL, 10000, csr, &req,
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
    assert_int_equal(pki_cfssl_sign(u2, NULL, NULL, NULL, NULL, 10000, csr, &req,
                                    pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -EPERM);
    srv_stop(&s);
    assert_non_null(strstr(err, "does not chain to the declared root"));

    /* A signer that refuses (HTTP 400, success false). */
    s = (struct srv){.mode = SRV_SIGN, .ca = ca};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *u3 = url_for("http", "127.0.0.1", s.port, "");
    assert_int_equal(pki_cfssl_sign(u3, NULL, NULL, NULL, NULL, 10000,
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
    assert_int_equal(pki_cfssl_sign(u4, NULL, NULL, NULL, NULL, 10000, csr, &req,
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
    r = pki_http_post(u, "{}", pki_ca_cert_pem(ca), NULL, NULL, 10000, 4096, &status, &body, &len,
                      err, sizeof(err));
    srv_stop(&s);
    assert_int_equal(r, -EPERM);
    assert_non_null(strstr(err, "mismatch"));
    assert_null(body);

    /* pki_cfssl_sign over mTLS against the mini signer: the bundle defaults to the root. */
    char *cert = NULL;
    struct pki_sign_request req = {node_id, cluster, PKI_ROLE_WORKER, 0};
    s = (struct srv){.mode = SRV_SIGN, .ca = ca, .tls = mtls};
    assert_int_equal(srv_start(&s), 0);
    _cleanup_free_ char *us = url_for("https", "127.0.0.1", s.port, "");
    r = pki_cfssl_sign(us, NULL, client.cert, client.key, "node", 10000, csr, &req,
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
        cmocka_unit_test(test_request_golden),
        cmocka_unit_test(test_request_roundtrip),
        cmocka_unit_test(test_request_rejects),
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_parse_truncated),
        cmocka_unit_test(test_parse_huge),
        cmocka_unit_test(test_parse_wrong_types),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_http_bad_urls),
        cmocka_unit_test(test_http_refused),
        cmocka_unit_test(test_http_silent),
        cmocka_unit_test(test_http_framing),
        cmocka_unit_test(test_http_oversized),
        cmocka_unit_test(test_sign_mini_signer),
        cmocka_unit_test(test_https),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
