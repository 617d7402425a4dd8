/* pki/ root rotation: the old root cross-signs the new one; a leaf the new key signs, sent
 * with the cross-signed certificate, is trusted by nodes that trust only the old root, only
 * the new root, or both; without it, only by nodes that have the new root. A node that
 * missed the rotation proves it is itself to join again (pki_rejoin_check). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "helpers.h"

struct fx {
    pki_ca *old_ca, *new_ca;
    char cluster[SW_ID_LEN + 1];
    char *cross;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    assert_int_equal(pki_ca_create(&f->old_ca), 0);
    assert_int_equal(pki_ca_create(&f->new_ca), 0);
    assert_int_equal(sw_id_generate(f->cluster), 0);
    assert_int_equal(
        pki_ca_cross_sign(f->old_ca, pki_ca_cert_pem(f->new_ca), &f->cross, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    pki_ca_free(f->old_ca);
    pki_ca_free(f->new_ca);
    free(f->cross);
    free(f);
    return 0;
}

static int verify(const char *bundle, const char *cert, struct pki_identity *id)
{
    char err[256];
    return pki_verify_cert(bundle, strlen(bundle), cert, strlen(cert), id, err, sizeof(err));
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    assert_non_null(s);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

static void test_leaf_chains_to_both_roots(void **state)
{
    struct fx *f = *state;
    struct node n = {0};
    struct pki_identity id;
    assert_int_equal(pki_ca_set_chain(f->new_ca, f->cross), 0);
    assert_int_equal(node_issue(f->new_ca, f->cluster, PKI_ROLE_WORKER, 0, &n), 0);
    /* the leaf goes out with the cross-signed root after it */
    assert_non_null(strstr(n.cert, f->cross));
    assert_true(pki_cert_matches_key(n.cert, strlen(n.cert), n.key));

    char *both = concat(pki_ca_cert_pem(f->old_ca), pki_ca_cert_pem(f->new_ca));
    assert_int_equal(verify(pki_ca_cert_pem(f->old_ca), n.cert, &id), 0); /* not yet moved */
    assert_string_equal(id.node_id, n.id);
    assert_int_equal(id.role, PKI_ROLE_WORKER);
    assert_int_equal(verify(pki_ca_cert_pem(f->new_ca), n.cert, NULL), 0); /* moved */
    assert_int_equal(verify(both, n.cert, NULL), 0);                       /* during */
    free(both);
    pki_key_free(n.key);
    free(n.cert);
}

static void test_without_cross_only_new_root(void **state)
{
    struct fx *f = *state;
    struct node n = {0};
    assert_int_equal(pki_ca_set_chain(f->new_ca, NULL), 0);
    assert_int_equal(node_issue(f->new_ca, f->cluster, PKI_ROLE_MANAGER, 0, &n), 0);
    assert_null(strstr(n.cert, f->cross));
    assert_int_equal(verify(pki_ca_cert_pem(f->old_ca), n.cert, NULL), -EPERM);
    assert_int_equal(verify(pki_ca_cert_pem(f->new_ca), n.cert, NULL), 0);
    pki_key_free(n.key);
    free(n.cert);
    /* and a leaf of the old root is not trusted by a node that has moved to the new root */
    assert_int_equal(node_issue(f->old_ca, f->cluster, PKI_ROLE_WORKER, 0, &n), 0);
    assert_int_equal(verify(pki_ca_cert_pem(f->new_ca), n.cert, NULL), -EPERM);
    pki_key_free(n.key);
    free(n.cert);
}

/* The cross-signed certificate is a CA for the chain, not a node certificate, and the
 * other direction does not hold: the new root does not vouch for the old one. */
static void test_cross_is_not_a_node(void **state)
{
    struct fx *f = *state;
    struct pki_identity id;
    assert_true(pki_identity_from_pem(f->cross, strlen(f->cross), &id) < 0);
    struct node n = {0};
    assert_int_equal(node_issue(f->old_ca, f->cluster, PKI_ROLE_WORKER, 0, &n), 0);
    char *with_cross = concat(n.cert, f->cross);
    assert_int_equal(verify(pki_ca_cert_pem(f->new_ca), with_cross, NULL), -EPERM);
    free(with_cross);
    /* only a CA certificate is cross-signed */
    char *out = NULL, err[256];
    assert_int_equal(pki_ca_cross_sign(f->old_ca, n.cert, &out, err, sizeof(err)), -EINVAL);
    assert_null(out);
    assert_non_null(strstr(err, "not a CA"));
    assert_int_equal(pki_ca_cross_sign(f->old_ca, "garbage", &out, err, sizeof(err)), -EINVAL);
    assert_int_equal(pki_ca_set_chain(f->new_ca, "garbage"), -EINVAL);
    pki_key_free(n.key);
    free(n.cert);
}

/* swarmd join --rejoin after a rotation: the CSR must be signed with the key of one of the
 * certificates the swarm recorded for the node (the last one, or the one before: a renewal
 * whose answer was lost); any chain after a leaf is ignored; another key, a broken CSR
 * signature or a malformed CSR are refused. */
static void test_rejoin_check(void **state)
{
    struct fx *f = *state;
    struct node n = {0}, other = {0};
    char err[256] = "", *csr = NULL, *csr_other = NULL;
    assert_int_equal(node_issue(f->old_ca, f->cluster, PKI_ROLE_WORKER, 0, &n), 0);
    assert_int_equal(node_issue(f->old_ca, f->cluster, PKI_ROLE_WORKER, 0, &other), 0);
    assert_int_equal(pki_csr_create(n.key, &csr), 0);
    assert_int_equal(pki_csr_create(other.key, &csr_other), 0);
    size_t cl = strlen(csr);
    char *with_chain = concat(n.cert, pki_ca_cert_pem(f->old_ca));
    const char *mine[] = {n.cert}, *chained[] = {with_chain}, *theirs[] = {other.cert};
    const char *renewed[] = {other.cert, n.cert}; /* the last one's answer never came */
    const char *none[] = {"", NULL};
    assert_int_equal(pki_rejoin_check(csr, cl, mine, 1, err, sizeof(err)), 0);
    assert_int_equal(pki_rejoin_check(csr, cl, chained, 1, err, sizeof(err)), 0);
    assert_int_equal(pki_rejoin_check(csr, cl, renewed, 2, err, sizeof(err)), 0);
    assert_int_equal(pki_rejoin_check(csr, cl, theirs, 1, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "not signed with the node's key"));
    assert_int_equal(pki_rejoin_check(csr_other, strlen(csr_other), mine, 1, err, sizeof(err)),
                     -EPERM);
    assert_int_equal(pki_rejoin_check(csr, cl, none, 2, err, sizeof(err)), -EPERM);
    assert_int_equal(pki_rejoin_check("junk", 4, mine, 1, err, sizeof(err)), -EINVAL);
    /* a CSR whose signature does not match its content */
    char *bad = strdup(csr);
    assert_non_null(bad);
    char *mid = bad + cl / 2;
    *mid = *mid == 'A' ? 'B' : 'A';
    assert_int_equal(pki_rejoin_check(bad, cl, mine, 1, err, sizeof(err)), -EINVAL);
    free(bad);
    free(with_chain);
    free(csr);
    free(csr_other);
    pki_key_free(n.key);
    pki_key_free(other.key);
    free(n.cert);
    free(other.cert);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leaf_chains_to_both_roots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_cross_only_new_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_is_not_a_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
