/* External CA (cfssl): the sign request's JSON, the strict reading of the answer, the
 * check of the returned certificate, and the TLS context for an https signer. No network
 * I/O: the HTTP exchange and the one-call sign are net/http.c and net/cfssl-client.c. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/cleanup.h"
#include "common/ids.h"
#include "common/json.h"
#include "pki/cfssl.h"
#include "pki/internal.h"

/* ------------------------------------------------------------------ request */

struct buf {
    char *data;
    size_t len, cap;
};

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len - 1)
        return -ENOMEM;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int buf_puts(struct buf *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

/* s as a JSON string, quotes included. The caller checked s is ASCII. */
static int buf_put_json_string(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int r = buf_put(b, "\"", 1);
    for (const char *p = s; r >= 0 && *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[7];
        switch (c) {
            case '"':
                r = buf_put(b, "\\\"", 2);
                break;
            case '\\':
                r = buf_put(b, "\\\\", 2);
                break;
            case '\n':
                r = buf_put(b, "\\n", 2);
                break;
            case '\r':
                r = buf_put(b, "\\r", 2);
                break;
            case '\t':
                r = buf_put(b, "\\t", 2);
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    memcpy(esc, "\\u00", 4);
                    esc[4] = hex[c >> 4];
                    esc[5] = hex[c & 15];
                    r = buf_put(b, esc, 6);
                } else {
                    r = buf_put(b, (const char *)&c, 1);
                }
        }
    }
    return r < 0 ? r : buf_put(b, "\"", 1);
}

static bool is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
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

static int check_request(const struct pki_sign_request *req, char *errmsg, size_t size)
{
    if (!req) {
        pki__errmsg(errmsg, size, "internal error: missing sign request");
        return -EINVAL;
    }
    if (!req->node_id || !sw_id_valid(req->node_id)) {
        pki__errmsg(errmsg, size, "node ID must be %d characters of [0-9a-z]", SW_ID_LEN);
        return -EINVAL;
    }
    if (!req->cluster_id || !sw_id_valid(req->cluster_id)) {
        pki__errmsg(errmsg, size, "cluster ID must be %d characters of [0-9a-z]", SW_ID_LEN);
        return -EINVAL;
    }
    if (!role_ou(req->role)) {
        pki__errmsg(errmsg, size, "unknown node role %d", (int)req->role);
        return -EINVAL;
    }
    return 0;
}

int pki_cfssl_sign_request(const char *csr_pem, const struct pki_sign_request *req,
                           const char *profile, char **ret_json, char *errmsg, size_t size)
{
    if (!ret_json)
        return -EINVAL;
    int r = check_request(req, errmsg, size);
    if (r < 0)
        return r;
    if (!csr_pem || !*csr_pem || !is_ascii(csr_pem)) {
        pki__errmsg(errmsg, size, "the CSR must be non-empty ASCII PEM");
        return -EINVAL;
    }
    if (profile && (has_control(profile) || !is_ascii(profile) || strlen(profile) > 256)) {
        pki__errmsg(errmsg, size, "the cfssl profile name must be printable ASCII, at most 256");
        return -EINVAL;
    }
    const char *ou = role_ou(req->role);
    struct buf b = {NULL, 0, 0};
    r = buf_puts(&b, "{\"certificate_request\":");
    if (r >= 0)
        r = buf_put_json_string(&b, csr_pem);
    /* The SANs pki_ca_sign_csr would put: role name, node ID, swarm-ca for managers. */
    if (r >= 0)
        r = buf_puts(&b, ",\"hosts\":[");
    if (r >= 0)
        r = buf_put_json_string(&b, ou);
    if (r >= 0)
        r = buf_puts(&b, ",");
    if (r >= 0)
        r = buf_put_json_string(&b, req->node_id);
    if (r >= 0 && req->role == PKI_ROLE_MANAGER)
        r = buf_puts(&b, ",\"" PKI_CA_CN "\"");
    if (r >= 0)
        r = buf_puts(&b, "],\"subject\":{\"CN\":");
    if (r >= 0)
        r = buf_put_json_string(&b, req->node_id);
    if (r >= 0)
        r = buf_puts(&b, ",\"names\":[{\"O\":");
    if (r >= 0)
        r = buf_put_json_string(&b, req->cluster_id);
    if (r >= 0)
        r = buf_puts(&b, ",\"OU\":");
    if (r >= 0)
        r = buf_put_json_string(&b, ou);
    if (r >= 0)
        r = buf_puts(&b, "}]}");
    if (r >= 0 && profile && *profile) {
        r = buf_puts(&b, ",\"profile\":");
        if (r >= 0)
            r = buf_put_json_string(&b, profile);
    }
    if (r >= 0)
        r = buf_puts(&b, "}");
    if (r < 0) {
        free(b.data);
        return r;
    }
    *ret_json = b.data;
    return 0;
}

/* ------------------------------------------------------------------ response */

SW_DEFINE_FREEP(sw_json, sw_json_free)

/* Copy s into out as one printable line (control bytes become '?'), truncated. */
static void printable(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; s && *s && o + 1 < size; s++) {
        unsigned char c = (unsigned char)*s;
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[o] = '\0';
}

static int remote_error(const sw_json *errors, char *errmsg, size_t size)
{
    const sw_json *first = sw_json_at(errors, 0);
    const char *msg = sw_json_get_string(sw_json_get(first, "message"), NULL);
    int64_t code = 0;
    bool has_code = sw_json_get_int64(sw_json_get(first, "code"), &code);
    char text[160];
    printable(msg, text, sizeof(text));
    if (!msg || !*text)
        pki__errmsg(errmsg, size, "the external CA refused to sign (no error message)");
    else if (has_code)
        pki__errmsg(errmsg, size, "the external CA refused to sign: %s (cfssl code %lld)", text,
                    (long long)code);
    else
        pki__errmsg(errmsg, size, "the external CA refused to sign: %s", text);
    return -EREMOTEIO;
}

int pki_cfssl_parse_response(const char *body, size_t len, char **ret_cert_pem, char *errmsg,
                             size_t size)
{
    if (!ret_cert_pem || (!body && len))
        return -EINVAL;
    if (len > PKI_CFSSL_MAX_RESPONSE) {
        pki__errmsg(errmsg, size, "the external CA's answer is larger than %d bytes",
                    PKI_CFSSL_MAX_RESPONSE);
        return -EFBIG;
    }
    struct sw_json_limits lim = {PKI_CFSSL_MAX_RESPONSE, 16, 4096};
    _cleanup_(sw_json_freep) sw_json *doc = NULL;
    char jerr[160];
    int r = sw_json_parse(body ? body : "", len, &lim, &doc, jerr, sizeof(jerr));
    if (r == -ENOMEM)
        return r;
    if (r < 0) {
        pki__errmsg(errmsg, size, "the external CA's answer is not JSON: %s", jerr);
        return -EBADMSG;
    }
    if (sw_json_type_of(doc) != SW_JSON_OBJECT) {
        pki__errmsg(errmsg, size, "the external CA's answer is a JSON %s, not an object",
                    sw_json_type_name(sw_json_type_of(doc)));
        return -EBADMSG;
    }
    bool success;
    if (!sw_json_get_bool(sw_json_get(doc, "success"), &success)) {
        pki__errmsg(errmsg, size, "the external CA's answer has no boolean \"success\"");
        return -EBADMSG;
    }
    const sw_json *errors = sw_json_get(doc, "errors");
    const sw_json *messages = sw_json_get(doc, "messages");
    if ((errors && sw_json_type_of(errors) != SW_JSON_ARRAY) ||
        (messages && sw_json_type_of(messages) != SW_JSON_ARRAY)) {
        pki__errmsg(errmsg, size, "the external CA's \"errors\"/\"messages\" are not arrays");
        return -EBADMSG;
    }
    for (size_t i = 0; i < sw_json_count(errors); i++)
        if (sw_json_type_of(sw_json_at(errors, i)) != SW_JSON_OBJECT) {
            pki__errmsg(errmsg, size, "the external CA's \"errors\" hold a non-object");
            return -EBADMSG;
        }
    if (!success)
        return remote_error(errors, errmsg, size);
    if (sw_json_count(errors) > 0) {
        pki__errmsg(errmsg, size, "the external CA's answer says success but lists errors");
        return -EBADMSG;
    }
    const sw_json *result = sw_json_get(doc, "result");
    if (sw_json_type_of(result) != SW_JSON_OBJECT || !result) {
        pki__errmsg(errmsg, size, "the external CA's answer has no \"result\" object");
        return -EBADMSG;
    }
    const sw_json *cert = sw_json_get(result, "certificate");
    size_t cert_len = 0;
    const char *pem = sw_json_get_string(cert, &cert_len);
    if (!pem) {
        pki__errmsg(errmsg, size, "the external CA's answer has no \"result.certificate\" string");
        return -EBADMSG;
    }
    if (cert_len > PKI_CFSSL_MAX_CERT) {
        pki__errmsg(errmsg, size, "the external CA's certificate is larger than %d bytes",
                    PKI_CFSSL_MAX_CERT);
        return -EFBIG;
    }
    if (!strstr(pem, "-----BEGIN CERTIFICATE-----")) {
        pki__errmsg(errmsg, size,
                    "the external CA's \"result.certificate\" is not a PEM certificate");
        return -EBADMSG;
    }
    char *copy = strndup(pem, cert_len);
    if (!copy)
        return -ENOMEM;
    *ret_cert_pem = copy;
    return 0;
}

/* ------------------------------------------------------------------ check */

SW_DEFINE_FREEP(X509_REQ, X509_REQ_free)

static int csr_key_matches(X509 *cert, const char *csr_pem, char *errmsg, size_t size)
{
    size_t len = strlen(csr_pem);
    if (len > INT_MAX)
        return -EINVAL;
    _cleanup_bio_ BIO *bio = BIO_new_mem_buf(csr_pem, (int)len);
    if (!bio)
        return -ENOMEM;
    _cleanup_(X509_REQ_freep) X509_REQ *csr = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    if (!csr) {
        pki__errmsg_ssl(errmsg, size, "the CSR is not PEM");
        return -EINVAL;
    }
    EVP_PKEY *want = X509_REQ_get0_pubkey(csr);
    EVP_PKEY *got = X509_get0_pubkey(cert);
    int eq = (want && got) ? EVP_PKEY_eq(want, got) : 0;
    ERR_clear_error();
    if (eq != 1) {
        pki__errmsg(errmsg, size, "the external CA's certificate is not for the CSR's key");
        return -EPERM;
    }
    return 0;
}

int pki_cfssl_check(const char *cert_pem, const char *root_pem, const char *csr_pem,
                    const struct pki_sign_request *want, char *errmsg, size_t size)
{
    if (!cert_pem || !root_pem || !*root_pem) {
        pki__errmsg(errmsg, size, "internal error: missing certificate or root");
        return -EINVAL;
    }
    int r = check_request(want, errmsg, size);
    if (r < 0)
        return r;
    size_t cert_len = strlen(cert_pem);
    _cleanup_x509_ X509 *leaf = NULL;
    if (pki__x509_from_pem(cert_pem, cert_len, &leaf) < 0) {
        ERR_clear_error();
        pki__errmsg(errmsg, size, "the external CA's certificate is not PEM");
        return -EPERM;
    }
    ERR_clear_error();
    if (X509_check_ca(leaf) != 0) {
        pki__errmsg(errmsg, size, "the external CA returned a CA certificate, not a node's");
        return -EPERM;
    }
    if (X509_check_purpose(leaf, X509_PURPOSE_SSL_CLIENT, 0) != 1 ||
        X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) != 1) {
        ERR_clear_error();
        pki__errmsg(errmsg, size,
                    "the external CA's certificate is not valid for TLS client and server auth "
                    "(the cfssl profile needs usages \"client auth\" and \"server auth\")");
        return -EPERM;
    }
    struct pki_identity id;
    char verr[200];
    r = pki_verify_cert(root_pem, strlen(root_pem), cert_pem, cert_len, &id, verr, sizeof(verr));
    if (r == -ENOMEM)
        return r;
    if (r == -EINVAL) {
        pki__errmsg(errmsg, size,
                    "the external CA's certificate does not carry a swarm node subject "
                    "(CN node ID, OU role, O cluster ID)");
        return -EPERM;
    }
    if (r < 0) {
        pki__errmsg(errmsg, size,
                    "the external CA's certificate does not chain to the declared "
                    "root CA: %s",
                    verr);
        return -EPERM;
    }
    if (strcmp(id.node_id, want->node_id) != 0) {
        pki__errmsg(errmsg, size, "the external CA's certificate has CN %s, asked for %s",
                    id.node_id, want->node_id);
        return -EPERM;
    }
    if (id.role != want->role) {
        pki__errmsg(errmsg, size, "the external CA's certificate has OU %s, asked for %s",
                    role_ou(id.role), role_ou(want->role));
        return -EPERM;
    }
    if (strcmp(id.cluster_id, want->cluster_id) != 0) {
        pki__errmsg(errmsg, size, "the external CA's certificate has O %s, asked for %s",
                    id.cluster_id, want->cluster_id);
        return -EPERM;
    }
    if (csr_pem)
        return csr_key_matches(leaf, csr_pem, errmsg, size);
    return 0;
}

/* ------------------------------------------------------------------ TLS to the signer */

SW_DEFINE_FREEP(SSL_CTX, SSL_CTX_free)

int pki_cfssl_tls_ctx(const char *ca_pem, const char *client_cert_pem, const pki_key *client_key,
                      SSL_CTX **ret, char *errmsg, size_t size)
{
    if (!ca_pem || !ret || (client_cert_pem != NULL) != (client_key != NULL)) {
        pki__errmsg(errmsg, size, "internal error: bad TLS material for the external CA");
        return -EINVAL;
    }
    _cleanup_(SSL_CTX_freep) SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        pki__errmsg_ssl(errmsg, size, "cannot create a TLS context");
        return -ENOMEM;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        pki__errmsg_ssl(errmsg, size, "cannot configure TLS");
        return -EINVAL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (pki__store_add_bundle(SSL_CTX_get_cert_store(ctx), ca_pem, strlen(ca_pem)) < 0) {
        ERR_clear_error();
        pki__errmsg(errmsg, size, "the external CA's trust bundle holds no certificate");
        return -EINVAL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (client_cert_pem) {
        size_t len = strlen(client_cert_pem);
        if (len > INT_MAX)
            return -EINVAL;
        _cleanup_bio_ BIO *bio = BIO_new_mem_buf(client_cert_pem, (int)len);
        if (!bio)
            return -ENOMEM;
        X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!leaf || !SSL_CTX_use_certificate(ctx, leaf)) {
            X509_free(leaf);
            pki__errmsg_ssl(errmsg, size, "cannot use the client certificate");
            return -EINVAL;
        }
        X509_free(leaf);
        X509 *extra;
        while ((extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
            if (!SSL_CTX_add0_chain_cert(ctx, extra)) {
                X509_free(extra);
                pki__errmsg_ssl(errmsg, size, "cannot add a client chain certificate");
                return -EINVAL;
            }
        ERR_clear_error();
        if (!client_key->pkey || !SSL_CTX_use_PrivateKey(ctx, client_key->pkey) ||
            !SSL_CTX_check_private_key(ctx)) {
            pki__errmsg_ssl(errmsg, size, "the client key does not match its certificate");
            return -EINVAL;
        }
    }
    ERR_clear_error();
    *ret = TAKE_PTR(ctx);
    return 0;
}
