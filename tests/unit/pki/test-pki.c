/* pki unit tests: keys, the CA, node certificate issuance and verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/ids.h"
#include "pki/pki.h"

static void test_smoke(void **state)
{
    pki_ca *ca = NULL;
    assert_int_equal(pki_ca_create(&ca), 0);
    pki_key *key = NULL;
    assert_int_equal(pki_key_generate(&key), 0);
    char *csr = NULL;
    assert_int_equal(pki_csr_create(key, &csr), 0);
    char node[SW_ID_LEN + 1], cluster[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(node), 0);
    assert_int_equal(sw_id_generate(cluster), 0);
    struct pki_sign_request req = {node, cluster, PKI_ROLE_MANAGER, 0};
    char *cert = NULL;
    char err[256] = "";
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &req, &cert, err, sizeof(err)), 0);
    const char *bundle = pki_ca_cert_pem(ca);
    struct pki_identity id;
    assert_int_equal(
        pki_verify_cert(bundle, strlen(bundle), cert, strlen(cert), &id, err, sizeof(err)), 0);
    assert_string_equal(id.node_id, node);
    assert_string_equal(id.cluster_id, cluster);
    assert_int_equal(id.role, PKI_ROLE_MANAGER);
    assert_true(pki_cert_matches_key(cert, strlen(cert), key));
    assert_false(pki_cert_matches_key(cert, strlen(cert), pki_ca_key(ca)));

    struct pki_aead_key k;
    assert_int_equal(pki_aead_key_generate(&k), 0);
    uint8_t *sealed = NULL, *opened = NULL;
    size_t sl = 0, ol = 0;
    assert_int_equal(pki_seal(&k, "t", 1, "hello", 5, &sealed, &sl), 0);
    assert_int_equal(sl, 5 + PKI_SEAL_OVERHEAD);
    assert_int_equal(pki_open(&k, "t", 1, sealed, sl, &opened, &ol), 0);
    assert_memory_equal(opened, "hello", 5);
    free(sealed);
    free(opened);
    pki_aead_key_clear(&k);

    SSL_CTX *s = NULL, *c = NULL;
    assert_int_equal(
        pki_tls_server_ctx(bundle, strlen(bundle), cert, strlen(cert), key, &s, err, sizeof(err)),
        0);
    assert_int_equal(
        pki_tls_client_ctx(bundle, strlen(bundle), NULL, 0, NULL, &c, err, sizeof(err)), 0);
    pki_tls_ctx_free(s);
    pki_tls_ctx_free(c);
    free(cert);
    free(csr);
    pki_key_free(key);
    pki_ca_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_smoke),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
