/* pki external CA: a cfssl-compatible signer (POST /api/v1/cfssl/sign) over HTTP(S) —
 * the request and response codec, the check of what comes back, a blocking HTTP client. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"

#define PKI_CFSSL_SIGN_PATH "/api/v1/cfssl/sign"
#define PKI_CFSSL_MAX_RESPONSE (1024 * 1024) /* bytes of a signer's answer */
#define PKI_CFSSL_MAX_CERT (64 * 1024)       /* bytes of the certificate PEM in it */
#define PKI_CFSSL_TIMEOUT_MS_DEFAULT 10000

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

/* Blocking HTTP/1.1 POST of body (Content-Type: application/json) to url
 * ("http://host[:port][/path]" or "https://..."; host a name, an IPv4 or a [IPv6] literal;
 * nothing else is accepted: -EINVAL). https verifies the server against ca_pem (required
 * for https, must be NULL for http) and the URL's host name or IP; it presents
 * client_cert_pem/client_key if given (together or neither) when the server asks.
 * timeout_ms bounds the whole exchange, connect included (name resolution is not bounded:
 * use an IP literal where that matters); 0 means PKI_CFSSL_TIMEOUT_MS_DEFAULT. The body is
 * read by Content-Length, chunked encoding or until close, up to max_response bytes
 * (-EFBIG beyond). Any HTTP status is returned (*ret_status); *ret_body is malloc'd and
 * NUL-terminated. Errors (errmsg names host:port): -ECONNREFUSED and other connect errnos,
 * -ETIMEDOUT, -EPERM (server certificate not trusted), -EPROTO (TLS or HTTP failure),
 * -EFBIG. No global state: safe on any thread. */
int pki_http_post(const char *url, const char *body, const char *ca_pem,
                  const char *client_cert_pem, const pki_key *client_key, uint64_t timeout_ms,
                  size_t max_response, int *ret_status, char **ret_body, size_t *ret_len,
                  char *errmsg, size_t size);

/* Everything the manager needs, in one blocking call (run it on a worker thread):
 * build the request, POST it to url (base URL of the signer, e.g. "https://ca:8888"; the
 * sign path is appended unless url already ends with it), parse the answer, check the
 * certificate against root_pem and req and the CSR's key. ca_pem verifies an https
 * signer (NULL: use root_pem). *ret_cert_pem is what the signer returned (leaf and any
 * intermediates). Errors as the functions above, with a one-line errmsg. */
int pki_cfssl_sign(const char *url, const char *ca_pem, const char *client_cert_pem,
                   const pki_key *client_key, const char *profile, uint64_t timeout_ms,
                   const char *csr_pem, const struct pki_sign_request *req, const char *root_pem,
                   char **ret_cert_pem, char *errmsg, size_t size);
