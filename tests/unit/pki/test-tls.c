/* pki unit tests: in-memory TLS 1.3 handshakes between pki's server and client contexts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/ids.h"
#include "helpers.h"
#include "pki/pki.h"

static pki_ca *ca, *other_ca;
static char cluster[SW_ID_LEN + 1];
static struct node server_node, client_node, stranger;

static int setup(void **state)
{
    if (pki_ca_create(&ca) < 0 || pki_ca_create(&other_ca) < 0 || sw_id_generate(cluster) < 0)
        return -1;
    if (node_issue(ca, cluster, PKI_ROLE_MANAGER, 0, &server_node) < 0 ||
        node_issue(ca, cluster, PKI_ROLE_WORKER, 0, &client_node) < 0 ||
        node_issue(other_ca, cluster, PKI_ROLE_WORKER, 0, &stranger) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    node_finish(&server_node);
    node_finish(&client_node);
    node_finish(&stranger);
    pki_ca_free(ca);
    pki_ca_free(other_ca);
    return 0;
}

struct result {
    int server; /* 1 done, -1 failed */
    int client;
    bool server_saw_cert;
    struct pki_identity peer;
};

/* Drive both ends over a BIO pair until each has finished or failed. */
static struct result handshake(SSL_CTX *sctx, SSL_CTX *cctx)
{
    struct result res;
    memset(&res, 0, sizeof(res));
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    assert_non_null(s);
    assert_non_null(c);
    BIO *sb = NULL, *cb = NULL;
    assert_true(BIO_new_bio_pair(&sb, 0, &cb, 0));
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    for (int i = 0; i < 50 && (res.server == 0 || res.client == 0); i++) {
        if (res.client == 0) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                res.client = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                res.client = -1;
        }
        if (res.server == 0) {
            int r = SSL_do_handshake(s);
            if (r == 1)
                res.server = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                res.server = -1;
        }
        /* In TLS 1.3 the client finishes first; a server rejection reaches it as an alert
         * on its first read. */
        if (res.client == 1 && res.server != 0) {
            char buf[16];
            int r = SSL_read(c, buf, sizeof(buf));
            if (r <= 0 && SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                res.client = -1;
            break;
        }
    }
    if (res.server == 1) {
        assert_int_equal(SSL_version(s), TLS1_3_VERSION);
        X509 *peer = SSL_get1_peer_certificate(s);
        if (peer) {
            res.server_saw_cert = true;
            assert_int_equal(SSL_get_verify_result(s), X509_V_OK);
            assert_int_equal(pki_identity_from_x509(peer, &res.peer), 0);
            X509_free(peer);
        }
    }
    ERR_clear_error();
    SSL_free(s);
    SSL_free(c);
    return res;
}

static SSL_CTX *server_ctx(const pki_ca *root, const struct node *n)
{
    SSL_CTX *ctx = NULL;
    char err[256] = "";
    const char *b = pki_ca_cert_pem(root);
    int r =
        pki_tls_server_ctx(b, strlen(b), n->cert, strlen(n->cert), n->key, &ctx, err, sizeof(err));
    if (r < 0)
        fail_msg("server ctx: %s", err);
    return ctx;
}

static SSL_CTX *client_ctx(const pki_ca *root, const struct node *n)
{
    SSL_CTX *ctx = NULL;
    char err[256] = "";
    const char *b = root ? pki_ca_cert_pem(root) : NULL;
    int r = pki_tls_client_ctx(b, b ? strlen(b) : 0, n ? n->cert : NULL, n ? strlen(n->cert) : 0,
                               n ? n->key : NULL, &ctx, err, sizeof(err));
    if (r < 0)
        fail_msg("client ctx: %s", err);
    return ctx;
}

static void test_mutual(void **state)
{
    SSL_CTX *s = server_ctx(ca, &server_node), *c = client_ctx(ca, &client_node);
    struct result r = handshake(s, c);
    assert_int_equal(r.server, 1);
    assert_int_equal(r.client, 1);
    assert_true(r.server_saw_cert);
    assert_string_equal(r.peer.node_id, client_node.id);
    assert_int_equal(r.peer.role, PKI_ROLE_WORKER);
    pki_tls_ctx_free(s);
    pki_tls_ctx_free(c);
}

static void test_no_client_cert(void **state)
{
    SSL_CTX *s = server_ctx(ca, &server_node), *c = client_ctx(ca, NULL);
    struct result r = handshake(s, c);
    assert_int_equal(r.server, 1);
    assert_int_equal(r.client, 1);
    assert_false(r.server_saw_cert);
    pki_tls_ctx_free(c);
    /* A joining node does not know the root yet: no verification of the server. */
    c = client_ctx(NULL, NULL);
    r = handshake(s, c);
    assert_int_equal(r.server, 1);
    assert_int_equal(r.client, 1);
    pki_tls_ctx_free(s);
    pki_tls_ctx_free(c);
}

static void test_client_from_other_ca(void **state)
{
    SSL_CTX *s = server_ctx(ca, &server_node), *c = client_ctx(ca, &stranger);
    struct result r = handshake(s, c);
    assert_int_equal(r.server, -1);
    assert_int_equal(r.client, -1);
    pki_tls_ctx_free(s);
    pki_tls_ctx_free(c);
}

static void test_server_from_other_ca(void **state)
{
    SSL_CTX *s = server_ctx(other_ca, &stranger), *c = client_ctx(ca, &client_node);
    struct result r = handshake(s, c);
    assert_int_equal(r.client, -1);
    assert_int_not_equal(r.server, 1);
    pki_tls_ctx_free(s);
    pki_tls_ctx_free(c);
}

static void test_tls12_refused(void **state)
{
    SSL_CTX *s = server_ctx(ca, &server_node);
    SSL_CTX *old = SSL_CTX_new(TLS_client_method());
    assert_non_null(old);
    assert_true(SSL_CTX_set_max_proto_version(old, TLS1_2_VERSION));
    SSL_CTX_set_verify(old, SSL_VERIFY_NONE, NULL);
    struct result r = handshake(s, old);
    assert_int_equal(r.server, -1);
    assert_int_equal(r.client, -1);
    SSL_CTX_free(old);

    /* And our client refuses a TLS 1.2-only server. */
    SSL_CTX *olds = SSL_CTX_new(TLS_server_method());
    assert_non_null(olds);
    assert_true(SSL_CTX_set_max_proto_version(olds, TLS1_2_VERSION));
    SSL_CTX *c = client_ctx(ca, &client_node);
    r = handshake(olds, c);
    assert_int_equal(r.client, -1);
    SSL_CTX_free(olds);
    pki_tls_ctx_free(c);
    pki_tls_ctx_free(s);
}

static void test_ctx_errors(void **state)
{
    SSL_CTX *ctx = NULL;
    char err[256] = "";
    const char *b = pki_ca_cert_pem(ca);
    /* Key that does not match the certificate. */
    assert_int_equal(pki_tls_server_ctx(b, strlen(b), server_node.cert, strlen(server_node.cert),
                                        client_node.key, &ctx, err, sizeof(err)),
                     -EINVAL);
    assert_null(ctx);
    assert_true(strlen(err) > 0);
    /* A bundle without certificates. */
    assert_int_equal(pki_tls_client_ctx("junk", 4, NULL, 0, NULL, &ctx, err, sizeof(err)), -EINVAL);
    assert_null(ctx);
}

/* No session resumption: every connection presents (and has verified, against the current
 * roots and clock) a certificate. A resumed TLS 1.3 session would carry the identity of a
 * certificate that has since expired or whose root was rotated out. */
static void test_no_session_tickets(void **state)
{
    SSL_CTX *sctx = server_ctx(ca, &server_node), *cctx = client_ctx(ca, &client_node);
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    assert_non_null(s);
    assert_non_null(c);
    BIO *sb = NULL, *cb = NULL;
    assert_true(BIO_new_bio_pair(&sb, 0, &cb, 0));
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    bool sdone = false, cdone = false;
    for (int i = 0; i < 50 && !(sdone && cdone); i++) {
        if (!cdone)
            cdone = SSL_do_handshake(c) == 1;
        if (!sdone)
            sdone = SSL_do_handshake(s) == 1;
    }
    assert_true(sdone && cdone);
    /* the server writes after its handshake (tickets, if any, go first); the client reads */
    size_t n = 0;
    assert_true(SSL_write_ex(s, "x", 1, &n));
    char buf[8];
    assert_true(SSL_read_ex(c, buf, sizeof(buf), &n));
    assert_int_equal(n, 1);
    SSL_SESSION *sess = SSL_get1_session(c);
    assert_non_null(sess);
    assert_false(SSL_SESSION_is_resumable(sess));
    SSL_SESSION_free(sess);
    ERR_clear_error();
    SSL_free(s);
    SSL_free(c);
    pki_tls_ctx_free(sctx);
    pki_tls_ctx_free(cctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual),
        cmocka_unit_test(test_no_client_cert),
        cmocka_unit_test(test_client_from_other_ca),
        cmocka_unit_test(test_server_from_other_ca),
        cmocka_unit_test(test_tls12_refused),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_no_session_tickets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
