/* pki external CA: a cfssl-compatible signer (POST /api/v1/cfssl/sign) — the request and
 * response codec, the check of what comes back, the TLS context for an https signer. Pure:
 * the HTTP exchange is net/http.h, the one-call sign net/cfssl-client.h. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"

#define PKI_CFSSL_SIGN_PATH "/api/v1/cfssl/sign"
#define PKI_CFSSL_MAX_RESPONSE (1024 * 1024) /* bytes of a signer's answer */
#define PKI_CFSSL_MAX_CERT (64 * 1024)       /* bytes of the certificate PEM in it */

/* The JSON body asking a cfssl signer to sign csr_pem as req says: CN node ID, OU role,
 * O cluster ID (cfssl's "subject" overrides the CSR's), SANs as the local signer puts
 * them (role name, node ID, swarm-ca for managers: "hosts"), and the signer's profile
 * (NULL or "": its default). The certificate's validity is the profile's (req->validity_ns
 * is not sent: cfssl has no field for it). -EINVAL with errmsg for a bad ID, an empty or
 * non-ASCII CSR, a profile with control characters. */
int pki_cfssl_sign_request(const char *csr_pem, const struct pki_sign_request *req,
                           const char *profile, char **ret_json, char *errmsg, size_t size);

/* Strict parse of a signer's answer {"success":..,"result":{"certificate":".."},
 * "errors":[{"code":..,"message":".."}],"messages":[..]}. *ret_cert_pem is malloc'd.
 * -EREMOTEIO: success false (errmsg carries cfssl's first error message and code);
 * -EFBIG: len over PKI_CFSSL_MAX_RESPONSE or a certificate over PKI_CFSSL_MAX_CERT;
 * -EBADMSG: not JSON, wrong types, missing fields, a certificate that is not PEM. */
int pki_cfssl_parse_response(const char *body, size_t len, char **ret_cert_pem, char *errmsg,
                             size_t size);

/* What the signer returned must be a node certificate (not a CA) chaining to root_pem
 * (intermediates after the leaf in cert_pem are used, untrusted), valid now, usable for TLS
 * client and server auth, with exactly want's CN/OU/O, and, if csr_pem is not NULL, for the
 * CSR's public key. -EPERM with the reason otherwise (-EINVAL for arguments). */
int pki_cfssl_check(const char *cert_pem, const char *root_pem, const char *csr_pem,
                    const struct pki_sign_request *want, char *errmsg, size_t size);

/* The TLS client context for an https signer: TLS 1.2 or later, no tickets, compression or
 * renegotiation, the server verified against ca_pem (the caller sets the host name or IP per
 * connection); client_cert_pem (leaf, then any chain certificates) and client_key presented
 * when the server asks, if given (together or neither). -EINVAL or -ENOMEM with errmsg.
 * Free with pki_tls_ctx_free. */
int pki_cfssl_tls_ctx(const char *ca_pem, const char *client_cert_pem, const pki_key *client_key,
                      SSL_CTX **ret, char *errmsg, size_t size);
