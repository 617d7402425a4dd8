/* net HTTP client: a small blocking HTTP/1.1 POST with a deadline, a size cap and optional
 * (m)TLS — the external CA's transport (pki/ does no network I/O). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pki/pki.h"

#define NET_HTTP_TIMEOUT_MS_DEFAULT 10000

/* Blocking HTTP/1.1 POST of body (Content-Type: application/json) to url
 * ("http://host[:port][/path]" or "https://..."; host a name, an IPv4 or a [IPv6] literal;
 * nothing else is accepted: -EINVAL). https verifies the server against ca_pem (required
 * for https, must be NULL for http) and the URL's host name or IP; it presents
 * client_cert_pem/client_key if given (together or neither) when the server asks.
 * timeout_ms bounds the whole exchange, connect included (name resolution is not bounded:
 * use an IP literal where that matters); 0 means NET_HTTP_TIMEOUT_MS_DEFAULT. The body is
 * read by Content-Length, chunked encoding or until close, up to max_response bytes
 * (-EFBIG beyond). Any HTTP status is returned (*ret_status); *ret_body is malloc'd and
 * NUL-terminated. Errors (errmsg names host:port): -ECONNREFUSED and other connect errnos,
 * -ETIMEDOUT, -EPERM (server certificate not trusted), -EPROTO (TLS or HTTP failure),
 * -EFBIG. No global state: safe on any thread. */
int net_http_post(const char *url, const char *body, const char *ca_pem,
                  const char *client_cert_pem, const pki_key *client_key, uint64_t timeout_ms,
                  size_t max_response, int *ret_status, char **ret_body, size_t *ret_len,
                  char *errmsg, size_t size);
