/* pki unit tests: the external CA (cfssl) request/response codec, the certificate check and
 * the TLS context for an https signer (the HTTP exchange is tested in tests/unit/net). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

/* ------------------------------------------------------------------ TLS context */

static void test_tls_ctx(void **state)
{
    char err[256];
    SSL_CTX *ctx = NULL;
    struct node client = {0}, other = {0};
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_MANAGER, 0, &client), 0);
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_MANAGER, 0, &other), 0);
    assert_int_equal(pki_cfssl_tls_ctx(pki_ca_cert_pem(ca), NULL, NULL, &ctx, err, sizeof(err)), 0);
    pki_tls_ctx_free(ctx);
    ctx = NULL;
    assert_int_equal(
        pki_cfssl_tls_ctx(pki_ca_cert_pem(ca), client.cert, client.key, &ctx, err, sizeof(err)), 0);
    pki_tls_ctx_free(ctx);
    ctx = NULL;
    /* A bundle without a certificate, a certificate without its key, someone else's key. */
    assert_int_equal(pki_cfssl_tls_ctx("not a bundle", NULL, NULL, &ctx, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "trust bundle holds no certificate"));
    assert_int_equal(
        pki_cfssl_tls_ctx(pki_ca_cert_pem(ca), client.cert, NULL, &ctx, err, sizeof(err)), -EINVAL);
    assert_int_equal(
        pki_cfssl_tls_ctx(pki_ca_cert_pem(ca), client.cert, other.key, &ctx, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "does not match"));
    assert_null(ctx);
    node_finish(&client);
    node_finish(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_golden),  cmocka_unit_test(test_request_roundtrip),
        cmocka_unit_test(test_request_rejects), cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_refused),   cmocka_unit_test(test_parse_truncated),
        cmocka_unit_test(test_parse_huge),      cmocka_unit_test(test_parse_wrong_types),
        cmocka_unit_test(test_check),           cmocka_unit_test(test_tls_ctx),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
