/* Node certificates: reading the swarm identity, chain verification against the roots. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/cleanup.h"
#include "common/ids.h"
#include "pki/internal.h"

int pki__asn1_time_to_ns(const ASN1_TIME *t, uint64_t *ret_ns)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        ERR_clear_error();
        return -EINVAL;
    }
    time_t s = timegm(&tm);
    if (s == (time_t)-1)
        return -EINVAL;
    *ret_ns = s < 0 ? 0 : (uint64_t)s * 1000000000ULL;
    return 0;
}

/* The single entry nid of name as a NUL-terminated string of [0-9a-z-] (no embedded NULs).
 * -EINVAL if absent, repeated, or too long. */
static int name_get(const X509_NAME *name, int nid, char *buf, size_t size)
{
    int i = X509_NAME_get_index_by_NID(name, nid, -1);
    if (i < 0 || X509_NAME_get_index_by_NID(name, nid, i) >= 0)
        return -EINVAL;
    const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    if (!s)
        return -EINVAL;
    int len = ASN1_STRING_length(s);
    const unsigned char *d = ASN1_STRING_get0_data(s);
    if (len <= 0 || (size_t)len >= size || !d)
        return -EINVAL;
    for (int k = 0; k < len; k++) {
        unsigned char c = d[k];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-'))
            return -EINVAL;
    }
    memcpy(buf, d, (size_t)len);
    buf[len] = '\0';
    return 0;
}

static void key_id_hex(const ASN1_OCTET_STRING *k, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    int n = ASN1_STRING_length(k);
    const unsigned char *d = ASN1_STRING_get0_data(k);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < 65; i++) {
        out[o++] = hex[d[i] >> 4];
        out[o++] = hex[d[i] & 15];
    }
    out[o] = '\0';
}

int pki_cert_key_id(const char *pem, size_t len, char ret[65])
{
    X509 *x = NULL;
    int r = pki__x509_from_pem(pem, len, &x);
    if (r < 0)
        return r;
    const ASN1_OCTET_STRING *k = X509_get0_subject_key_id(x);
    if (k)
        key_id_hex(k, ret);
    X509_free(x);
    return k ? 0 : -ENOENT;
}

int pki_identity_from_x509(X509 *cert, struct pki_identity *ret)
{
    if (!cert || !ret)
        return -EINVAL;
    struct pki_identity id;
    memset(&id, 0, sizeof(id));
    const X509_NAME *subj = X509_get_subject_name(cert);
    char ou[32];
    if (!subj || name_get(subj, NID_commonName, id.node_id, sizeof(id.node_id)) < 0 ||
        name_get(subj, NID_organizationName, id.cluster_id, sizeof(id.cluster_id)) < 0 ||
        name_get(subj, NID_organizationalUnitName, ou, sizeof(ou)) < 0)
        return -EINVAL;
    if (!sw_id_valid(id.node_id) || !sw_id_valid(id.cluster_id))
        return -EINVAL;
    if (strcmp(ou, PKI_OU_WORKER) == 0)
        id.role = PKI_ROLE_WORKER;
    else if (strcmp(ou, PKI_OU_MANAGER) == 0)
        id.role = PKI_ROLE_MANAGER;
    else
        return -EINVAL;
    if (pki__asn1_time_to_ns(X509_get0_notBefore(cert), &id.not_before_ns) < 0 ||
        pki__asn1_time_to_ns(X509_get0_notAfter(cert), &id.not_after_ns) < 0)
        return -EINVAL;

    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    if (!bn) {
        ERR_clear_error();
        return -EINVAL;
    }
    char *hex = BN_bn2hex(bn);
    BN_free(bn);
    if (!hex) {
        ERR_clear_error();
        return -ENOMEM;
    }
    size_t hl = strlen(hex);
    if (hl >= sizeof(id.serial)) {
        OPENSSL_free(hex);
        return -EINVAL;
    }
    for (size_t k = 0; k < hl; k++)
        id.serial[k] = (hex[k] >= 'A' && hex[k] <= 'F') ? (char)(hex[k] - 'A' + 'a') : hex[k];
    OPENSSL_free(hex);

    _cleanup_bio_ BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return -ENOMEM;
    if (X509_NAME_print_ex(bio, X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253) < 0) {
        ERR_clear_error();
        return -EINVAL;
    }
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0)
        return -EIO;
    size_t cp = SW_MIN((size_t)n, sizeof(id.issuer) - 1);
    if (cp)
        memcpy(id.issuer, data, cp);
    id.issuer[cp] = '\0';
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(cert);
    if (akid)
        key_id_hex(akid, id.authority_key_id);

    *ret = id;
    return 0;
}

int pki_identity_from_pem(const char *cert_pem, size_t len, struct pki_identity *ret)
{
    _cleanup_x509_ X509 *x = NULL;
    int r = pki__x509_from_pem(cert_pem, len, &x);
    if (r < 0)
        return r;
    return pki_identity_from_x509(x, ret);
}

int pki__store_add_bundle(X509_STORE *store, const char *bundle_pem, size_t bundle_len)
{
    if (!bundle_pem || bundle_len == 0 || bundle_len > INT_MAX)
        return -EINVAL;
    _cleanup_bio_ BIO *bio = BIO_new_mem_buf(bundle_pem, (int)bundle_len);
    if (!bio)
        return -ENOMEM;
    int count = 0;
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!x)
            break;
        int ok = X509_STORE_add_cert(store, x);
        X509_free(x);
        if (!ok) {
            ERR_clear_error();
            return -EIO;
        }
        count++;
    }
    ERR_clear_error(); /* the end of the bundle reads as "no start line" */
    return count > 0 ? count : -EINVAL;
}

int pki_verify_cert(const char *bundle_pem, size_t bundle_len, const char *cert_pem,
                    size_t cert_len, struct pki_identity *ret, char *errmsg, size_t errmsg_size)
{
    _cleanup_x509_ X509 *x = NULL;
    int r = pki__x509_from_pem(cert_pem, cert_len, &x);
    if (r < 0) {
        pki__errmsg(errmsg, errmsg_size, "certificate is not PEM");
        return -EINVAL;
    }
    X509_STORE *store = X509_STORE_new();
    if (!store)
        return -ENOMEM;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *chain = NULL;
    r = pki__store_add_bundle(store, bundle_pem, bundle_len);
    if (r < 0) {
        pki__errmsg(errmsg, errmsg_size, "the root CA bundle holds no certificate");
        r = -EINVAL;
        goto out;
    }
    /* Certificates after the first in cert_pem are untrusted intermediates. */
    chain = sk_X509_new_null();
    ctx = X509_STORE_CTX_new();
    if (!chain || !ctx) {
        r = -ENOMEM;
        goto out;
    }
    {
        _cleanup_bio_ BIO *bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
        if (!bio) {
            r = -ENOMEM;
            goto out;
        }
        X509 *skip = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        X509_free(skip);
        X509 *extra;
        while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
            if (!sk_X509_push(chain, extra)) {
                X509_free(extra);
                r = -ENOMEM;
                goto out;
            }
        }
        ERR_clear_error();
    }
    if (!X509_STORE_CTX_init(ctx, store, x, chain)) {
        r = -ENOMEM;
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        pki__errmsg(errmsg, errmsg_size, "certificate does not verify against the root CA: %s",
                    X509_verify_cert_error_string(e));
        r = -EPERM;
        goto out;
    }
    if (ret) {
        r = pki_identity_from_x509(x, ret);
        if (r < 0) {
            pki__errmsg(errmsg, errmsg_size, "certificate is not a swarm node certificate");
            goto out;
        }
    }
    r = 0;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(chain, X509_free);
    X509_STORE_free(store);
    return r;
}

int pki_cert_not_after(const char *pem, size_t len, uint64_t *ret_ns)
{
    _cleanup_x509_ X509 *x = NULL;
    int r = pki__x509_from_pem(pem, len, &x);
    if (r < 0)
        return r;
    return pki__asn1_time_to_ns(X509_get0_notAfter(x), ret_ns);
}

bool pki_cert_matches_key(const char *cert_pem, size_t len, const pki_key *key)
{
    if (!key || !key->pkey)
        return false;
    _cleanup_x509_ X509 *x = NULL;
    if (pki__x509_from_pem(cert_pem, len, &x) < 0)
        return false;
    bool ok = X509_check_private_key(x, key->pkey) == 1;
    ERR_clear_error();
    return ok;
}

int pki_rejoin_check(const char *csr_pem, size_t csr_len, const char *const *certs, size_t n_certs,
                     char *errmsg, size_t errmsg_size)
{
    X509_REQ *csr = NULL;
    int r = pki__csr_read(csr_pem, csr_len, &csr, errmsg, errmsg_size);
    if (r < 0)
        return r;
    EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
    r = -EPERM;
    for (size_t i = 0; r < 0 && i < n_certs; i++) {
        _cleanup_x509_ X509 *x = NULL;
        if (certs[i] && certs[i][0] && pki__x509_from_pem(certs[i], strlen(certs[i]), &x) >= 0 &&
            EVP_PKEY_eq(pub, X509_get0_pubkey(x)) == 1)
            r = 0;
    }
    if (r < 0)
        pki__errmsg(errmsg, errmsg_size,
                    "the certificate request is not signed with the node's key");
    X509_REQ_free(csr);
    ERR_clear_error();
    return r;
}
