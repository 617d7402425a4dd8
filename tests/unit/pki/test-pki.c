/* pki unit tests: keys, the CA, node certificate issuance, identity and verification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/ids.h"
#include "helpers.h"
#include "pki/pki.h"

#define NS 1000000000ULL

static pki_ca *ca;
static char cluster[SW_ID_LEN + 1];

static int setup(void **state)
{
    if (pki_ca_create(&ca) < 0 || sw_id_generate(cluster) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    pki_ca_free(ca);
    return 0;
}

static X509 *parse(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    assert_non_null(b);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static void name_field(X509 *x, int nid, char *buf, size_t size)
{
    assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), nid, buf, (int)size) > 0);
}

static int64_t asn1_to_unix(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    assert_true(ASN1_TIME_to_tm(t, &tm));
    return (int64_t)timegm(&tm);
}

static bool has_dns_san(X509 *x, const char *dns)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool found = false;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_DNS)
            continue;
        const char *s = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
        if ((size_t)ASN1_STRING_length(g->d.dNSName) == strlen(dns) &&
            memcmp(s, dns, strlen(dns)) == 0)
            found = true;
    }
    GENERAL_NAMES_free(names);
    return found;
}

static int san_count(X509 *x)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = names ? sk_GENERAL_NAME_num(names) : 0;
    GENERAL_NAMES_free(names);
    return n;
}

static void test_key_pem_roundtrip(void **state)
{
    pki_key *k = NULL, *k2 = NULL;
    assert_int_equal(pki_key_generate(&k), 0);
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(pki_key_to_pem(k, &pem, &len), 0);
    assert_int_equal(strlen(pem), len);
    assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(pki_key_from_pem(pem, len, &k2), 0);
    char *pem2 = NULL;
    size_t len2 = 0;
    assert_int_equal(pki_key_to_pem(k2, &pem2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(pem, pem2, len);
    assert_int_equal(pki_key_from_pem("garbage", 7, &k2), -EINVAL);
    free(pem);
    free(pem2);
    pki_key_free(k);
    pki_key_free(k2);
}

static void test_key_pem_encrypted(void **state)
{
    pki_key *k = NULL, *k2 = NULL;
    assert_int_equal(pki_key_generate(&k), 0);
    uint8_t kek[32], wrong[32];
    for (size_t i = 0; i < sizeof(kek); i++) {
        kek[i] = (uint8_t)i; /* includes a NUL byte: the passphrase is binary */
        wrong[i] = (uint8_t)i;
    }
    wrong[31] ^= 1;
    char *pem = NULL;
    size_t len = 0;
    assert_int_equal(pki_key_to_pem_encrypted(k, kek, sizeof(kek), &pem, &len), 0);
    assert_non_null(strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    assert_int_not_equal(pki_key_from_pem_encrypted(pem, len, wrong, sizeof(wrong), &k2), 0);
    assert_null(k2);
    /* A plain key where an encrypted one is expected is refused. */
    assert_int_not_equal(pki_key_from_pem(pem, len, &k2), 0);
    assert_null(k2);
    assert_int_equal(pki_key_from_pem_encrypted(pem, len, kek, sizeof(kek), &k2), 0);

    /* Same key: a certificate for k matches k2. */
    struct node n = {0};
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_WORKER, 0, &n), 0);
    assert_false(pki_cert_matches_key(n.cert, strlen(n.cert), k2));
    assert_true(pki_cert_matches_key(n.cert, strlen(n.cert), n.key));
    char *plain = NULL;
    size_t plen = 0;
    assert_int_equal(pki_key_to_pem(k, &plain, &plen), 0);
    char *plain2 = NULL;
    size_t plen2 = 0;
    assert_int_equal(pki_key_to_pem(k2, &plain2, &plen2), 0);
    assert_int_equal(plen, plen2);
    assert_memory_equal(plain, plain2, plen);
    pki_key *k3 = NULL;
    assert_int_not_equal(pki_key_from_pem_encrypted(plain, plen, kek, sizeof(kek), &k3), 0);

    /* A plaintext key put in front of the encrypted block is refused, not loaded (OpenSSL
     * reads the first key block); so is any other text before it. Whitespace is fine. */
    pki_key *evil = NULL;
    assert_int_equal(pki_key_generate(&evil), 0);
    char *evil_pem = NULL;
    size_t evil_len = 0;
    assert_int_equal(pki_key_to_pem(evil, &evil_pem, &evil_len), 0);
    size_t cap = evil_len + len + 16;
    char *mixed = malloc(cap);
    assert_non_null(mixed);
    int m = snprintf(mixed, cap, "%s%s", evil_pem, pem);
    assert_true(m > 0 && (size_t)m < cap);
    assert_int_equal(pki_key_from_pem_encrypted(mixed, (size_t)m, kek, sizeof(kek), &k3), -EINVAL);
    assert_null(k3);
    m = snprintf(mixed, cap, "junk\n%s", pem);
    assert_int_equal(pki_key_from_pem_encrypted(mixed, (size_t)m, kek, sizeof(kek), &k3), -EINVAL);
    m = snprintf(mixed, cap, " \r\n\t%s", pem);
    assert_int_equal(pki_key_from_pem_encrypted(mixed, (size_t)m, kek, sizeof(kek), &k3), 0);
    char *again = NULL;
    size_t again_len = 0;
    assert_int_equal(pki_key_to_pem(k3, &again, &again_len), 0);
    assert_int_equal(again_len, plen);
    assert_memory_equal(again, plain, plen); /* the encrypted key, not the other one */
    free(again);
    pki_key_free(k3);
    free(mixed);
    free(evil_pem);
    pki_key_free(evil);
    free(plain);
    free(plain2);
    free(pem);
    node_finish(&n);
    pki_key_free(k);
    pki_key_free(k2);
}

static void test_ca_cert_fields(void **state)
{
    X509 *x = parse(pki_ca_cert_pem(ca));
    char buf[128];
    name_field(x, NID_commonName, buf, sizeof(buf));
    assert_string_equal(buf, PKI_CA_CN);
    assert_int_equal(X509_check_ca(x), 1);
    uint32_t flags = X509_get_extension_flags(x);
    assert_true(flags & EXFLAG_CA);
    assert_true(flags & EXFLAG_SS);
    int crit = 0;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    uint32_t ku = X509_get_key_usage(x);
    assert_true(ku & KU_KEY_CERT_SIGN);
    assert_true(ku & KU_CRL_SIGN);
    EVP_PKEY *pub = X509_get0_pubkey(x);
    assert_true(EVP_PKEY_is_a(pub, "EC"));
    char group[64];
    size_t gl;
    assert_true(EVP_PKEY_get_group_name(pub, group, sizeof(group), &gl));
    assert_string_equal(group, "prime256v1");
    int64_t now = time(NULL);
    int64_t nb = asn1_to_unix(X509_get0_notBefore(x));
    int64_t na = asn1_to_unix(X509_get0_notAfter(x));
    assert_true(nb >= now - 3600 - 60 && nb <= now - 3600 + 60);
    assert_true(na >= now + (int64_t)(PKI_CA_VALIDITY_NS / NS) - 60 &&
                na <= now + (int64_t)(PKI_CA_VALIDITY_NS / NS) + 60);
    assert_int_equal(X509_verify(x, pub), 1);
    X509_free(x);
}

static void check_leaf(enum pki_role role)
{
    struct node n = {0};
    assert_int_equal(node_issue(ca, cluster, role, 0, &n), 0);
    X509 *x = parse(n.cert);
    X509 *cax = parse(pki_ca_cert_pem(ca));
    char buf[128];
    name_field(x, NID_commonName, buf, sizeof(buf));
    assert_string_equal(buf, n.id);
    name_field(x, NID_organizationName, buf, sizeof(buf));
    assert_string_equal(buf, cluster);
    name_field(x, NID_organizationalUnitName, buf, sizeof(buf));
    assert_string_equal(buf, role == PKI_ROLE_MANAGER ? PKI_OU_MANAGER : PKI_OU_WORKER);

    assert_true(has_dns_san(x, n.id));
    assert_true(has_dns_san(x, role == PKI_ROLE_MANAGER ? PKI_OU_MANAGER : PKI_OU_WORKER));
    assert_int_equal(has_dns_san(x, PKI_CA_CN), role == PKI_ROLE_MANAGER);
    assert_int_equal(san_count(x), role == PKI_ROLE_MANAGER ? 3 : 2);

    uint32_t flags = X509_get_extension_flags(x);
    assert_true(flags & EXFLAG_XKUSAGE);
    uint32_t xku = X509_get_extended_key_usage(x);
    assert_true(xku & XKU_SSL_SERVER);
    assert_true(xku & XKU_SSL_CLIENT);
    assert_false(flags & EXFLAG_CA);
    assert_int_equal(X509_check_ca(x), 0);
    int crit = 0;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    uint32_t ku = X509_get_key_usage(x);
    assert_true(ku & KU_DIGITAL_SIGNATURE);
    assert_false(ku & KU_KEY_CERT_SIGN);

    int64_t now = time(NULL);
    int64_t nb = asn1_to_unix(X509_get0_notBefore(x));
    int64_t na = asn1_to_unix(X509_get0_notAfter(x));
    assert_true(nb >= now - 3600 - 60 && nb <= now - 3600 + 60);
    int64_t want = now + (int64_t)(PKI_CERT_VALIDITY_DEFAULT_NS / NS);
    assert_true(na >= want - 60 && na <= want + 60);

    assert_int_equal(X509_check_issued(cax, x), X509_V_OK);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(cax)), 1);
    assert_true(ASN1_STRING_length(X509_get0_serialNumber(x)) >= 15);

    struct pki_identity id;
    assert_int_equal(pki_identity_from_pem(n.cert, strlen(n.cert), &id), 0);
    assert_string_equal(id.node_id, n.id);
    assert_string_equal(id.cluster_id, cluster);
    assert_int_equal(id.role, role);
    assert_int_equal(id.not_before_ns, (uint64_t)nb * NS);
    assert_int_equal(id.not_after_ns, (uint64_t)na * NS);
    assert_string_equal(id.issuer, "CN=" PKI_CA_CN);
    assert_true(strlen(id.serial) >= 30);
    uint64_t not_after = 0;
    assert_int_equal(pki_cert_not_after(n.cert, strlen(n.cert), &not_after), 0);
    assert_int_equal(not_after, id.not_after_ns);

    X509_free(x);
    X509_free(cax);
    node_finish(&n);
}

static void test_leaf_worker(void **state)
{
    check_leaf(PKI_ROLE_WORKER);
}

static void test_leaf_manager(void **state)
{
    check_leaf(PKI_ROLE_MANAGER);
}

static void test_validity(void **state)
{
    struct node n = {0};
    struct pki_identity id;
    int64_t now = time(NULL);
    /* Floor: one second becomes one hour. */
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_WORKER, 1 * NS, &n), 0);
    assert_int_equal(pki_identity_from_pem(n.cert, strlen(n.cert), &id), 0);
    int64_t na = (int64_t)(id.not_after_ns / NS);
    assert_true(na >= now + 3600 - 60 && na <= now + 3600 + 60);
    node_finish(&n);
    /* An explicit 30 days. */
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_WORKER, 30ULL * 86400 * NS, &n), 0);
    assert_int_equal(pki_identity_from_pem(n.cert, strlen(n.cert), &id), 0);
    na = (int64_t)(id.not_after_ns / NS);
    assert_true(na >= now + 30 * 86400 - 60 && na <= now + 30 * 86400 + 60);
    node_finish(&n);
}

static void test_serials_differ(void **state)
{
    struct node a = {0}, b = {0};
    struct pki_identity ia, ib;
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_WORKER, 0, &a), 0);
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_WORKER, 0, &b), 0);
    assert_int_equal(pki_identity_from_pem(a.cert, strlen(a.cert), &ia), 0);
    assert_int_equal(pki_identity_from_pem(b.cert, strlen(b.cert), &ib), 0);
    assert_string_not_equal(ia.serial, ib.serial);
    node_finish(&a);
    node_finish(&b);
}

static char *csr_pem_of(X509_REQ *req)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_X509_REQ(b, req));
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static char *csr_for_pkey(EVP_PKEY *pkey, const char *cn)
{
    X509_REQ *req = X509_REQ_new();
    assert_true(X509_REQ_set_pubkey(req, pkey));
    if (cn)
        assert_true(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                                               (const unsigned char *)cn, -1, -1, 0));
    assert_true(X509_REQ_sign(req, pkey, EVP_sha256()));
    char *s = csr_pem_of(req);
    X509_REQ_free(req);
    return s;
}

static void expect_reject(const char *csr, const char *needle)
{
    char node[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(node), 0);
    struct pki_sign_request req = {node, cluster, PKI_ROLE_WORKER, 0};
    char *cert = NULL;
    char err[256] = "";
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &req, &cert, err, sizeof(err)), -EINVAL);
    assert_null(cert);
    if (!strstr(err, needle))
        fail_msg("errmsg \"%s\" lacks \"%s\"", err, needle);
}

static void test_csr_rejects(void **state)
{
    /* Bad signature. */
    pki_key *k = NULL;
    assert_int_equal(pki_key_generate(&k), 0);
    char *csr = NULL;
    assert_int_equal(pki_csr_create(k, &csr), 0);
    BIO *b = BIO_new_mem_buf(csr, -1);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(req);
    const ASN1_BIT_STRING *sig = NULL;
    X509_REQ_get0_signature(req, &sig, NULL);
    unsigned char *d = (unsigned char *)ASN1_STRING_get0_data(sig);
    d[ASN1_STRING_length(sig) - 3] ^= 0x01;
    char *bad = csr_pem_of(req);
    X509_REQ_free(req);
    expect_reject(bad, "signature");
    free(bad);
    free(csr);
    pki_key_free(k);

    /* RSA and P-384 keys. */
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(rsa);
    csr = csr_for_pkey(rsa, NULL);
    expect_reject(csr, "P-256");
    free(csr);
    EVP_PKEY_free(rsa);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(p384);
    csr = csr_for_pkey(p384, NULL);
    expect_reject(csr, "P-256");
    free(csr);
    EVP_PKEY_free(p384);

    /* Garbage, and a certificate instead of a CSR. */
    expect_reject("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                  "CSR");
    expect_reject("hello", "CSR");
    expect_reject(pki_ca_cert_pem(ca), "CSR");
}

static void test_subject_from_request(void **state)
{
    EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *csr = csr_for_pkey(p, "evil-admin");
    char node[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(node), 0);
    struct pki_sign_request req = {node, cluster, PKI_ROLE_WORKER, 0};
    char *cert = NULL;
    char err[256];
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &req, &cert, err, sizeof(err)), 0);
    X509 *x = parse(cert);
    char buf[128];
    name_field(x, NID_commonName, buf, sizeof(buf));
    assert_string_equal(buf, node);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 3);
    X509_free(x);
    free(cert);

    /* Bad request fields. */
    req.node_id = "short";
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &req, &cert, err, sizeof(err)), -EINVAL);
    req.node_id = node;
    req.cluster_id = "UPPERCASEUPPERCASEUPPERCA";
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &req, &cert, err, sizeof(err)), -EINVAL);
    req.cluster_id = cluster;
    req.role = (enum pki_role)7;
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &req, &cert, err, sizeof(err)), -EINVAL);
    free(csr);
    EVP_PKEY_free(p);
}

static void test_verify(void **state)
{
    pki_ca *other = NULL;
    assert_int_equal(pki_ca_create(&other), 0);
    struct node n = {0};
    assert_int_equal(node_issue(ca, cluster, PKI_ROLE_MANAGER, 0, &n), 0);
    const char *root = pki_ca_cert_pem(ca);
    const char *wrong = pki_ca_cert_pem(other);
    struct pki_identity id;
    char err[256] = "";
    assert_int_equal(
        pki_verify_cert(root, strlen(root), n.cert, strlen(n.cert), &id, err, sizeof(err)), 0);
    assert_string_equal(id.node_id, n.id);
    assert_int_equal(
        pki_verify_cert(wrong, strlen(wrong), n.cert, strlen(n.cert), &id, err, sizeof(err)),
        -EPERM);
    assert_true(strlen(err) > 0);
    /* A bundle with both roots verifies certificates from either. */
    size_t bl = strlen(root) + strlen(wrong);
    char *bundle = malloc(bl + 1);
    memcpy(bundle, wrong, strlen(wrong));
    memcpy(bundle + strlen(wrong), root, strlen(root) + 1);
    assert_int_equal(pki_verify_cert(bundle, bl, n.cert, strlen(n.cert), &id, err, sizeof(err)), 0);
    free(bundle);
    /* The root itself is not a node. */
    assert_int_equal(pki_verify_cert(root, strlen(root), root, strlen(root), &id, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(pki_verify_cert(root, strlen(root), "junk", 4, &id, err, sizeof(err)),
                     -EINVAL);
    node_finish(&n);
    pki_ca_free(other);
}

/* A self-signed certificate with the given subject fields (NULL = absent). */
static char *selfsigned(const char *cn, const char *ou, const char *o)
{
    EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *nm = X509_get_subject_name(x);
    if (o)
        X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8, (const unsigned char *)o, -1, -1, 0);
    if (ou)
        X509_NAME_add_entry_by_txt(nm, "OU", MBSTRING_UTF8, (const unsigned char *)ou, -1, -1, 0);
    if (cn)
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, nm);
    X509_set_pubkey(x, p);
    assert_true(X509_sign(x, p, EVP_sha256()));
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(p);
    return s;
}

static void test_identity_rejects(void **state)
{
    char id[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(id), 0);
    struct pki_identity out;
    const char *cases[][3] = {
        {id, PKI_OU_WORKER, cluster},                /* the one valid shape */
        {id, "swarm-admin", cluster},                /* unknown role */
        {"www.example.com", PKI_OU_WORKER, cluster}, /* CN not an ID */
        {id, PKI_OU_MANAGER, "Example Corp"},        /* O not an ID */
        {id, NULL, cluster},                         /* no OU */
        {NULL, PKI_OU_WORKER, cluster},              /* no CN */
        {id, PKI_OU_WORKER, NULL},                   /* no O */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *pem = selfsigned(cases[i][0], cases[i][1], cases[i][2]);
        int r = pki_identity_from_pem(pem, strlen(pem), &out);
        if (i == 0) {
            assert_int_equal(r, 0);
            assert_string_equal(out.node_id, id);
            assert_int_equal(out.role, PKI_ROLE_WORKER);
        } else {
            assert_int_equal(r, -EINVAL);
        }
        free(pem);
    }
    const char *root = pki_ca_cert_pem(ca);
    assert_int_equal(pki_identity_from_pem(root, strlen(root), &out), -EINVAL);
    assert_int_equal(pki_identity_from_pem("nope", 4, &out), -EINVAL);
}

static void test_ca_load(void **state)
{
    char *key = NULL;
    size_t kl = 0;
    assert_int_equal(pki_key_to_pem(pki_ca_key(ca), &key, &kl), 0);
    const char *cert = pki_ca_cert_pem(ca);
    pki_ca *loaded = NULL;
    assert_int_equal(pki_ca_load(cert, strlen(cert), key, kl, &loaded), 0);
    assert_string_equal(pki_ca_cert_pem(loaded), cert);
    struct node n = {0};
    assert_int_equal(node_issue(loaded, cluster, PKI_ROLE_WORKER, 0, &n), 0);
    char err[256];
    assert_int_equal(
        pki_verify_cert(cert, strlen(cert), n.cert, strlen(n.cert), NULL, err, sizeof(err)), 0);
    pki_ca_free(loaded);
    loaded = NULL;
    /* A key that does not match the certificate. */
    char *other = NULL;
    size_t ol = 0;
    assert_int_equal(pki_key_to_pem(n.key, &other, &ol), 0);
    assert_int_equal(pki_ca_load(cert, strlen(cert), other, ol, &loaded), -EINVAL);
    assert_null(loaded);
    /* A leaf certificate is not a CA even with its own key. */
    assert_int_equal(pki_ca_load(n.cert, strlen(n.cert), other, ol, &loaded), -EINVAL);
    assert_null(loaded);
    free(other);
    free(key);
    node_finish(&n);
}

static void test_sha256_hex(void **state)
{
    char hex[65];
    pki_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_pem_roundtrip),    cmocka_unit_test(test_key_pem_encrypted),
        cmocka_unit_test(test_ca_cert_fields),       cmocka_unit_test(test_leaf_worker),
        cmocka_unit_test(test_leaf_manager),         cmocka_unit_test(test_validity),
        cmocka_unit_test(test_serials_differ),       cmocka_unit_test(test_csr_rejects),
        cmocka_unit_test(test_subject_from_request), cmocka_unit_test(test_verify),
        cmocka_unit_test(test_identity_rejects),     cmocka_unit_test(test_ca_load),
        cmocka_unit_test(test_sha256_hex),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
