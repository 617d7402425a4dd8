/* OpenSSL 3 TLS 1.3 contexts for the cluster port: P-256, mutual auth against the roots. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "common/cleanup.h"
#include "pki/internal.h"

/* Leaf first, then any chain certificates (cross-signed roots during rotation). */
static int use_cert_chain(SSL_CTX *ctx, const char *cert_pem, size_t cert_len, char *errmsg,
                          size_t errmsg_size)
{
    if (!cert_pem || cert_len == 0 || cert_len > INT_MAX) {
        pki__errmsg(errmsg, errmsg_size, "TLS certificate is empty");
        return -EINVAL;
    }
    _cleanup_bio_ BIO *bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
    if (!bio)
        return -ENOMEM;
    X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (!leaf) {
        pki__errmsg_ssl(errmsg, errmsg_size, "TLS certificate is not PEM");
        return -EINVAL;
    }
    int ok = SSL_CTX_use_certificate(ctx, leaf);
    X509_free(leaf);
    if (!ok) {
        pki__errmsg_ssl(errmsg, errmsg_size, "cannot use the TLS certificate");
        return -EINVAL;
    }
    X509 *extra;
    while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!SSL_CTX_add0_chain_cert(ctx, extra)) {
            X509_free(extra);
            pki__errmsg_ssl(errmsg, errmsg_size, "cannot add a chain certificate");
            return -EINVAL;
        }
    }
    ERR_clear_error();
    return 0;
}

static int ctx_new(bool server, const char *bundle_pem, size_t bundle_len, const char *cert_pem,
                   size_t cert_len, const pki_key *key, SSL_CTX **ret, char *errmsg,
                   size_t errmsg_size)
{
    if (!ret)
        return -EINVAL;
    if ((cert_pem != NULL) != (key != NULL)) {
        pki__errmsg(errmsg, errmsg_size, "TLS certificate and key must be given together");
        return -EINVAL;
    }
    if (server && (!cert_pem || !bundle_pem)) {
        pki__errmsg(errmsg, errmsg_size, "TLS server needs a certificate, key and root bundle");
        return -EINVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx) {
        pki__errmsg_ssl(errmsg, errmsg_size, "cannot create a TLS context");
        return -ENOMEM;
    }
    int r = -EINVAL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set1_groups_list(ctx, "P-256") ||
        !SSL_CTX_set1_sigalgs_list(ctx, "ECDSA+SHA256")) {
        pki__errmsg_ssl(errmsg, errmsg_size, "cannot configure TLS 1.3 with P-256");
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
    /* No resumption: a resumed session would skip the certificate check against the current
     * roots and clock (an expired or rotated-out certificate would keep working). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (server && !SSL_CTX_set_num_tickets(ctx, 0)) {
        pki__errmsg_ssl(errmsg, errmsg_size, "cannot disable TLS session tickets");
        goto fail;
    }
    if (cert_pem) {
        r = use_cert_chain(ctx, cert_pem, cert_len, errmsg, errmsg_size);
        if (r < 0)
            goto fail;
        r = -EINVAL;
        if (!key->pkey || !SSL_CTX_use_PrivateKey(ctx, key->pkey) ||
            !SSL_CTX_check_private_key(ctx)) {
            pki__errmsg_ssl(errmsg, errmsg_size, "TLS key does not match the certificate");
            goto fail;
        }
    }
    if (bundle_pem) {
        r = pki__store_add_bundle(SSL_CTX_get_cert_store(ctx), bundle_pem, bundle_len);
        if (r < 0) {
            pki__errmsg(errmsg, errmsg_size, "the root CA bundle holds no certificate");
            r = -EINVAL;
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_verify_depth(ctx, 4);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    ERR_clear_error();
    *ret = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return r;
}

int pki_tls_server_ctx(const char *bundle_pem, size_t bundle_len, const char *cert_pem,
                       size_t cert_len, const pki_key *key, SSL_CTX **ret, char *errmsg,
                       size_t errmsg_size)
{
    return ctx_new(true, bundle_pem, bundle_len, cert_pem, cert_len, key, ret, errmsg, errmsg_size);
}

int pki_tls_client_ctx(const char *bundle_pem, size_t bundle_len, const char *cert_pem,
                       size_t cert_len, const pki_key *key, SSL_CTX **ret, char *errmsg,
                       size_t errmsg_size)
{
    return ctx_new(false, bundle_pem, bundle_len, cert_pem, cert_len, key, ret, errmsg,
                   errmsg_size);
}

void pki_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}
