/* net external CA client: one blocking call that asks a cfssl signer for a node certificate
 * (the pki/cfssl.h codec and check around a net/http.h POST). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pki/cfssl.h"
#include "pki/pki.h"

/* Everything the manager needs, in one blocking call (run it on a worker thread):
 * build the request, POST it to url (base URL of the signer, e.g. "https://ca:8888"; the
 * sign path is appended unless url already ends with it), parse the answer, check the
 * certificate against root_pem and req and the CSR's key. ca_pem verifies an https
 * signer (NULL: use root_pem). timeout_ms as net_http_post's (0: its default).
 * *ret_cert_pem is what the signer returned (leaf and any intermediates). Errors as
 * pki_cfssl_sign_request, net_http_post, pki_cfssl_parse_response and pki_cfssl_check,
 * with a one-line errmsg; -EREMOTEIO for an HTTP status other than 200. */
int net_cfssl_sign(const char *url, const char *ca_pem, const char *client_cert_pem,
                   const pki_key *client_key, const char *profile, uint64_t timeout_ms,
                   const char *csr_pem, const struct pki_sign_request *req, const char *root_pem,
                   char **ret_cert_pem, char *errmsg, size_t size);
