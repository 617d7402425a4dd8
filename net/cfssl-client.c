/* External CA client: the one blocking "sign over HTTP(S)" call — request (pki/cfssl.c),
 * POST (net/http.c), strict parse and check of the answer (pki/cfssl.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "net/cfssl-client.h"
#include "net/http.h"
#include "pki/cfssl.h"

/* url with the sign path appended, unless it already ends with it. */
static int sign_url(const char *url, char **ret)
{
    size_t n = strlen(url), p = strlen(PKI_CFSSL_SIGN_PATH);
    if (n >= p && strcmp(url + n - p, PKI_CFSSL_SIGN_PATH) == 0) {
        *ret = strdup(url);
        return *ret ? 0 : -ENOMEM;
    }
    while (n > 0 && url[n - 1] == '/')
        n--;
    char *s = malloc(n + p + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, url, n);
    memcpy(s + n, PKI_CFSSL_SIGN_PATH, p + 1);
    *ret = s;
    return 0;
}

int net_cfssl_sign(const char *url, const char *ca_pem, const char *client_cert_pem,
                   const pki_key *client_key, const char *profile, uint64_t timeout_ms,
                   const char *csr_pem, const struct pki_sign_request *req, const char *root_pem,
                   char **ret_cert_pem, char *errmsg, size_t size)
{
    if (!url || !ret_cert_pem || !root_pem) {
        sw_errmsg(errmsg, size, "internal error: missing signer URL or root");
        return -EINVAL;
    }
    _cleanup_free_ char *json = NULL;
    int r = pki_cfssl_sign_request(csr_pem, req, profile, &json, errmsg, size);
    if (r < 0)
        return r;
    _cleanup_free_ char *full = NULL;
    r = sign_url(url, &full);
    if (r < 0)
        return r;
    bool https = strncmp(full, "https://", 8) == 0;
    int status = 0;
    _cleanup_free_ char *body = NULL;
    size_t len = 0;
    r = net_http_post(full, json, https ? (ca_pem ? ca_pem : root_pem) : NULL,
                      https ? client_cert_pem : NULL, https ? client_key : NULL, timeout_ms,
                      PKI_CFSSL_MAX_RESPONSE, &status, &body, &len, errmsg, size);
    if (r < 0)
        return r;
    _cleanup_free_ char *cert = NULL;
    r = pki_cfssl_parse_response(body, len, &cert, errmsg, size);
    if (r < 0 && status != 200 && r != -EREMOTEIO) {
        sw_errmsg(errmsg, size, "the external CA answered HTTP %d without a cfssl answer", status);
        return -EREMOTEIO;
    }
    if (r < 0)
        return r;
    if (status != 200) {
        sw_errmsg(errmsg, size, "the external CA answered HTTP %d", status);
        return -EREMOTEIO;
    }
    r = pki_cfssl_check(cert, root_pem, csr_pem, req, errmsg, size);
    if (r < 0)
        return r;
    *ret_cert_pem = TAKE_PTR(cert);
    return 0;
}
