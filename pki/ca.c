/* The root CA: self-signed creation, loading, CSRs and signing of node certificates. */
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

#define NS_PER_S 1000000000ULL

static int set_random_serial(X509 *x)
{
    uint8_t raw[16];
    int r = sw_random_bytes(raw, sizeof(raw));
    if (r < 0)
        return r;
    raw[0] &= 0x7f; /* positive */
    raw[0] |= 0x01; /* never zero, always 16 bytes on the wire */
    BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
    sw_erase(raw, sizeof(raw));
    if (!bn)
        return -ENOMEM;
    ASN1_INTEGER *ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok ? 0 : -ENOMEM;
}

/* NotBefore = now - PKI_BACKDATE_NS, NotAfter = now + validity. */
static int set_validity(X509 *x, uint64_t validity_ns)
{
    time_t now = time(NULL);
    uint64_t secs = validity_ns / NS_PER_S;
    long days = (long)(secs / 86400);
    long rest = (long)(secs % 86400);
    if (!ASN1_TIME_adj(X509_getm_notBefore(x), now, 0, -(long)(PKI_BACKDATE_NS / NS_PER_S)))
        return -EIO;
    if (!ASN1_TIME_adj(X509_getm_notAfter(x), now, (int)days, rest))
        return -EIO;
    return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -EIO;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -EIO;
}

static int name_add(X509_NAME *n, const char *field, const char *value)
{
    if (!X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8, (const unsigned char *)value, -1, -1,
                                    0))
        return -EIO;
    return 0;
}

int pki__x509_to_pem(X509 *x, char **ret, size_t *ret_len)
{
    _cleanup_bio_ BIO *bio = BIO_new(BIO_s_mem());
    if (!bio)
        return -ENOMEM;
    if (!PEM_write_bio_X509(bio, x)) {
        ERR_clear_error();
        return -EIO;
    }
    return pki__bio_to_string(bio, ret, ret_len);
}

int pki__x509_from_pem(const char *pem, size_t len, X509 **ret)
{
    if (!pem || len == 0 || len > INT_MAX)
        return -EINVAL;
    _cleanup_bio_ BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return -ENOMEM;
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    ERR_clear_error();
    if (!x)
        return -EINVAL;
    *ret = x;
    return 0;
}

void pki_ca_free(pki_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    free(ca->cert_pem);
    free(ca->chain_pem);
    pki_key_free(ca->key);
    free(ca);
}
SW_DEFINE_FREEP(pki_ca, pki_ca_free)

int pki_ca_create(pki_ca **ret)
{
    _cleanup_(pki_ca_freep) pki_ca *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return -ENOMEM;
    int r = pki_key_generate(&ca->key);
    if (r < 0)
        return r;
    ca->cert = X509_new();
    if (!ca->cert)
        return -ENOMEM;
    X509 *x = ca->cert;
    if (!X509_set_version(x, X509_VERSION_3))
        goto fail;
    r = set_random_serial(x);
    if (r < 0)
        return r;
    if (set_validity(x, PKI_CA_VALIDITY_NS) < 0)
        goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    if (name_add(name, "CN", PKI_CA_CN) < 0 || !X509_set_issuer_name(x, name))
        goto fail;
    if (!X509_set_pubkey(x, ca->key->pkey))
        goto fail;
    if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") < 0 ||
        add_ext(x, x, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") < 0)
        goto fail;
    if (!X509_sign(x, ca->key->pkey, EVP_sha256()))
        goto fail;
    r = pki__x509_to_pem(x, &ca->cert_pem, NULL);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(ca);
    return 0;
fail:
    ERR_clear_error();
    return -EIO;
}

int pki_ca_load(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                pki_ca **ret)
{
    _cleanup_(pki_ca_freep) pki_ca *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return -ENOMEM;
    int r = pki__x509_from_pem(cert_pem, cert_len, &ca->cert);
    if (r < 0)
        return r;
    r = pki_key_from_pem(key_pem, key_len, &ca->key);
    if (r < 0)
        return r;
    if (X509_check_private_key(ca->cert, ca->key->pkey) != 1 || X509_check_ca(ca->cert) == 0) {
        ERR_clear_error();
        return -EINVAL;
    }
    r = pki__x509_to_pem(ca->cert, &ca->cert_pem, NULL);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(ca);
    return 0;
}

const char *pki_ca_cert_pem(const pki_ca *ca)
{
    return ca ? ca->cert_pem : NULL;
}

const pki_key *pki_ca_key(const pki_ca *ca)
{
    return ca ? ca->key : NULL;
}

int pki_csr_create(const pki_key *key, char **ret_csr_pem)
{
    if (!key || !key->pkey)
        return -EINVAL;
    X509_REQ *req = X509_REQ_new();
    if (!req)
        return -ENOMEM;
    int r = -EIO;
    _cleanup_bio_ BIO *bio = NULL;
    if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_pubkey(req, key->pkey) ||
        !X509_REQ_sign(req, key->pkey, EVP_sha256()))
        goto out;
    bio = BIO_new(BIO_s_mem());
    if (!bio) {
        r = -ENOMEM;
        goto out;
    }
    if (!PEM_write_bio_X509_REQ(bio, req))
        goto out;
    r = pki__bio_to_string(bio, ret_csr_pem, NULL);
out:
    ERR_clear_error();
    X509_REQ_free(req);
    return r;
}

static const char *role_ou(enum pki_role role)
{
    switch (role) {
        case PKI_ROLE_WORKER:
            return PKI_OU_WORKER;
        case PKI_ROLE_MANAGER:
            return PKI_OU_MANAGER;
    }
    return NULL;
}

/* Copy the CSR's SubjectPublicKeyInfo into x as it is: OpenSSL 3.0's X509_set_pubkey
 * re-encodes the key through the provider encoders, which costs more than the signature. */
static int copy_pubkey(X509 *x, X509_REQ *csr)
{
    X509_PUBKEY *from = X509_REQ_get_X509_PUBKEY(csr);
    X509_PUBKEY *to = X509_get_X509_PUBKEY(x);
    const ASN1_OBJECT *alg_obj = NULL;
    const unsigned char *pk = NULL;
    int pklen = 0;
    X509_ALGOR *alg = NULL;
    if (!from || !to || !X509_PUBKEY_get0_param(NULL, &pk, &pklen, &alg, from) || pklen <= 0)
        return -EINVAL;
    int ptype = V_ASN1_UNDEF;
    const void *pval = NULL;
    X509_ALGOR_get0(&alg_obj, &ptype, &pval, alg);
    /* P-256 was checked by the caller: named-curve parameters are an OID. */
    if (ptype != V_ASN1_OBJECT || !pval)
        return -EINVAL;
    ASN1_OBJECT *obj = OBJ_dup(alg_obj);
    ASN1_OBJECT *curve = OBJ_dup(pval);
    unsigned char *bits = OPENSSL_memdup(pk, (size_t)pklen);
    if (!obj || !curve || !bits ||
        !X509_PUBKEY_set0_param(to, obj, V_ASN1_OBJECT, curve, bits, pklen)) {
        ASN1_OBJECT_free(obj);
        ASN1_OBJECT_free(curve);
        OPENSSL_free(bits);
        return -ENOMEM;
    }
    return 0;
}

int pki__csr_read(const char *csr_pem, size_t csr_len, X509_REQ **ret, char *errmsg,
                  size_t errmsg_size)
{
    if (!csr_pem || csr_len == 0 || csr_len > 64 * 1024) {
        pki__errmsg(errmsg, errmsg_size, "certificate request is empty or too large");
        return -EINVAL;
    }
    _cleanup_bio_ BIO *in = BIO_new_mem_buf(csr_pem, (int)csr_len);
    if (!in)
        return -ENOMEM;
    X509_REQ *csr = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
    if (!csr) {
        pki__errmsg_ssl(errmsg, errmsg_size, "certificate request is not a PEM CSR");
        return -EINVAL;
    }
    EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
    if (!pub || X509_REQ_verify(csr, pub) != 1) {
        pki__errmsg_ssl(errmsg, errmsg_size, "certificate request signature does not verify");
        X509_REQ_free(csr);
        return -EINVAL;
    }
    *ret = csr;
    return 0;
}

int pki_ca_sign_csr(const pki_ca *ca, const char *csr_pem, size_t csr_len,
                    const struct pki_sign_request *req, char **ret_cert_pem, char *errmsg,
                    size_t errmsg_size)
{
    if (!ca || !ca->cert || !ca->key || !req || !ret_cert_pem) {
        pki__errmsg(errmsg, errmsg_size, "internal error: missing CA or request");
        return -EINVAL;
    }
    if (!req->node_id || !sw_id_valid(req->node_id)) {
        pki__errmsg(errmsg, errmsg_size, "node ID must be %d characters of [0-9a-z]", SW_ID_LEN);
        return -EINVAL;
    }
    if (!req->cluster_id || !sw_id_valid(req->cluster_id)) {
        pki__errmsg(errmsg, errmsg_size, "cluster ID must be %d characters of [0-9a-z]", SW_ID_LEN);
        return -EINVAL;
    }
    const char *ou = role_ou(req->role);
    if (!ou) {
        pki__errmsg(errmsg, errmsg_size, "unknown node role %d", (int)req->role);
        return -EINVAL;
    }
    uint64_t validity = req->validity_ns ? req->validity_ns : PKI_CERT_VALIDITY_DEFAULT_NS;
    if (validity < PKI_CERT_VALIDITY_MIN_NS)
        validity = PKI_CERT_VALIDITY_MIN_NS;
    if (validity > PKI_CA_VALIDITY_NS)
        validity = PKI_CA_VALIDITY_NS;

    X509_REQ *csr = NULL;
    int r = pki__csr_read(csr_pem, csr_len, &csr, errmsg, errmsg_size);
    if (r < 0)
        return r;
    X509 *x = NULL;
    EVP_PKEY *pub = X509_REQ_get0_pubkey(csr);
    if (!pki__pkey_is_p256(pub)) {
        r = -EINVAL;
        pki__errmsg(errmsg, errmsg_size, "certificate request key must be ECDSA P-256");
        goto out;
    }

    r = -EIO;
    x = X509_new();
    if (!x) {
        r = -ENOMEM;
        goto out;
    }
    if (!X509_set_version(x, X509_VERSION_3))
        goto fail;
    r = set_random_serial(x);
    if (r < 0)
        goto out;
    r = -EIO;
    if (set_validity(x, validity) < 0)
        goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    if (name_add(name, "O", req->cluster_id) < 0 || name_add(name, "OU", ou) < 0 ||
        name_add(name, "CN", req->node_id) < 0)
        goto fail;
    if (!X509_set_issuer_name(x, X509_get_subject_name(ca->cert)))
        goto fail;
    if (copy_pubkey(x, csr) < 0)
        goto fail;
    char san[160];
    int n = snprintf(san, sizeof(san), "DNS:%s,DNS:%s%s", ou, req->node_id,
                     req->role == PKI_ROLE_MANAGER ? ",DNS:" PKI_CA_CN : "");
    if (n < 0 || (size_t)n >= sizeof(san))
        goto fail;
    if (add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
        add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        add_ext(x, ca->cert, NID_subject_alt_name, san) < 0 ||
        add_ext(x, ca->cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") < 0)
        goto fail;
    if (!X509_sign(x, ca->key->pkey, EVP_sha256()))
        goto fail;
    r = pki__x509_to_pem(x, ret_cert_pem, NULL);
    if (r < 0) {
        pki__errmsg(errmsg, errmsg_size, "could not encode the certificate");
    } else if (ca->chain_pem) {
        size_t a = strlen(*ret_cert_pem), b = strlen(ca->chain_pem);
        char *both = realloc(*ret_cert_pem, a + b + 1);
        if (!both) {
            free(*ret_cert_pem);
            *ret_cert_pem = NULL;
            r = -ENOMEM;
        } else {
            memcpy(both + a, ca->chain_pem, b + 1);
            *ret_cert_pem = both;
        }
    }
    goto out;
fail:
    pki__errmsg_ssl(errmsg, errmsg_size, "could not build the certificate");
out:
    ERR_clear_error();
    X509_free(x);
    X509_REQ_free(csr);
    return r;
}

/* ------------------------------------------------------------------ root rotation */

int pki_ca_set_chain(pki_ca *ca, const char *chain_pem)
{
    char *copy = NULL;
    if (chain_pem && chain_pem[0]) {
        X509 *x = NULL;
        if (pki__x509_from_pem(chain_pem, strlen(chain_pem), &x) < 0)
            return -EINVAL;
        X509_free(x);
        if (!(copy = strdup(chain_pem)))
            return -ENOMEM;
    }
    free(ca->chain_pem);
    ca->chain_pem = copy;
    return 0;
}

int pki_ca_cross_sign(const pki_ca *signer, const char *root_pem, char **ret_pem, char *errmsg,
                      size_t errmsg_size)
{
    X509 *root = NULL, *x = NULL;
    int r;
    if (!signer || !signer->cert || !signer->key || !root_pem || !ret_pem)
        return -EINVAL;
    if ((r = pki__x509_from_pem(root_pem, strlen(root_pem), &root)) < 0) {
        pki__errmsg(errmsg, errmsg_size, "the root to cross-sign is not a PEM certificate");
        return r;
    }
    r = -EINVAL;
    if (X509_check_ca(root) == 0) {
        pki__errmsg(errmsg, errmsg_size, "the certificate to cross-sign is not a CA");
        goto out;
    }
    EVP_PKEY *pub = X509_get0_pubkey(root);
    if (!pub || !pki__pkey_is_p256(pub)) {
        pki__errmsg(errmsg, errmsg_size, "the root to cross-sign must have an ECDSA P-256 key");
        goto out;
    }
    r = -EIO;
    if (!(x = X509_new()) || !X509_set_version(x, X509_VERSION_3))
        goto fail;
    if ((r = set_random_serial(x)) < 0)
        goto out;
    r = -EIO;
    /* the new root's subject and key, vouched for by the signer: a chain leaf -> this ->
     * the signer's root reaches a node that trusts only the signer's root */
    if (!X509_set_subject_name(x, X509_get_subject_name(root)) ||
        !X509_set_issuer_name(x, X509_get_subject_name(signer->cert)) || !X509_set_pubkey(x, pub))
        goto fail;
    const ASN1_TIME *nb = X509_get0_notBefore(root), *na = X509_get0_notAfter(root);
    const ASN1_TIME *signer_na = X509_get0_notAfter(signer->cert);
    if (ASN1_TIME_compare(na, signer_na) > 0)
        na = signer_na; /* not past the signer's own end */
    if (!X509_set1_notBefore(x, nb) || !X509_set1_notAfter(x, na))
        goto fail;
    if (add_ext(x, signer->cert, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
        add_ext(x, signer->cert, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") <
            0 ||
        add_ext(x, signer->cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, signer->cert, NID_authority_key_identifier, "keyid:always") < 0)
        goto fail;
    if (!X509_sign(x, signer->key->pkey, EVP_sha256()))
        goto fail;
    r = pki__x509_to_pem(x, ret_pem, NULL);
    goto out;
fail:
    pki__errmsg_ssl(errmsg, errmsg_size, "could not build the cross-signed certificate");
out:
    ERR_clear_error();
    X509_free(x);
    X509_free(root);
    return r;
}
