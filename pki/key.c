/* ECDSA P-256 keys (generation, PEM, passphrase-encrypted PEM) and shared OpenSSL helpers. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/cleanup.h"
#include "pki/internal.h"

void pki_openssl_error(char *buf, size_t size)
{
    if (!buf || size == 0) {
        ERR_clear_error();
        return;
    }
    buf[0] = '\0';
    size_t off = 0;
    unsigned long e;
    /* Most recent errors last in the queue; the first is usually the root cause. */
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof(one));
        if (off + 1 < size) {
            int n = snprintf(buf + off, size - off, "%s%s", off ? "; " : "", one);
            if (n < 0 || (size_t)n >= size - off)
                off = size - 1;
            else
                off += (size_t)n;
        }
    }
}

__attribute__((format(printf, 3, 0))) static void vformat(char *errmsg, size_t size,
                                                          const char *fmt, va_list ap)
{
    int n = vsnprintf(errmsg, size, fmt, ap);
    if (n < 0)
        errmsg[0] = '\0';
}

void pki_errmsg_ssl(char *errmsg, size_t size, const char *fmt, ...)
{
    if (!errmsg || size == 0) {
        ERR_clear_error();
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vformat(errmsg, size, fmt, ap);
    va_end(ap);
    size_t off = strlen(errmsg);
    if (off + 3 < size && ERR_peek_error() != 0) {
        memcpy(errmsg + off, ": ", 3);
        off += 2;
        pki_openssl_error(errmsg + off, size - off);
    } else {
        ERR_clear_error();
    }
}

void pki_sha256_hex(const void *data, size_t len, char ret[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        /* Only on a broken libcrypto; never hand back a stale buffer. */
        memset(md, 0, sizeof(md));
        ERR_clear_error();
    }
    for (size_t i = 0; i < 32; i++) {
        ret[2 * i] = hex[md[i] >> 4];
        ret[2 * i + 1] = hex[md[i] & 0xf];
    }
    ret[64] = '\0';
}

bool pki__pkey_is_p256(const EVP_PKEY *pkey)
{
    if (!pkey || !EVP_PKEY_is_a(pkey, "EC"))
        return false;
    char name[64];
    size_t n = 0;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &n)) {
        ERR_clear_error();
        return false;
    }
    int nid = OBJ_txt2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    ERR_clear_error();
    return nid == NID_X9_62_prime256v1;
}

int pki__bio_to_string(BIO *bio, char **ret, size_t *ret_len)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n < 0 || (n > 0 && !data))
        return -EIO;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return -ENOMEM;
    if (n > 0)
        memcpy(s, data, (size_t)n);
    s[n] = '\0';
    *ret = s;
    if (ret_len)
        *ret_len = (size_t)n;
    return 0;
}

static int no_password_cb(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

struct pass {
    const uint8_t *data;
    size_t len;
};

static int password_cb(char *buf, int size, int rwflag, void *u)
{
    const struct pass *p = u;
    if (size < 0 || p->len > (size_t)size)
        return -1;
    memcpy(buf, p->data, p->len);
    return (int)p->len;
}

int pki_key_generate(pki_key **ret)
{
    pki_key *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!k->pkey) {
        free(k);
        ERR_clear_error();
        return -EIO;
    }
    *ret = k;
    return 0;
}

int pki_key_dup(const pki_key *k, pki_key **ret)
{
    pki_key *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    if (!EVP_PKEY_up_ref(k->pkey)) {
        free(d);
        return -ENOMEM;
    }
    d->pkey = k->pkey;
    *ret = d;
    return 0;
}

void pki_key_free(pki_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

static int key_wrap(EVP_PKEY *pkey, pki_key **ret)
{
    if (!pki__pkey_is_p256(pkey)) {
        EVP_PKEY_free(pkey);
        return -EINVAL;
    }
    pki_key *k = calloc(1, sizeof(*k));
    if (!k) {
        EVP_PKEY_free(pkey);
        return -ENOMEM;
    }
    k->pkey = pkey;
    *ret = k;
    return 0;
}

/* Copy a secure-memory BIO into a buffer; the BIO wipes itself when freed. */
static int secret_bio_to_string(BIO *bio, char **ret, size_t *ret_len)
{
    return pki__bio_to_string(bio, ret, ret_len);
}

int pki_key_to_pem(const pki_key *k, char **ret_pem, size_t *ret_len)
{
    if (!k || !k->pkey)
        return -EINVAL;
    _cleanup_bio_ BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return -ENOMEM;
    if (!PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)) {
        ERR_clear_error();
        return -EIO;
    }
    return secret_bio_to_string(bio, ret_pem, ret_len);
}

int pki_key_from_pem(const char *pem, size_t len, pki_key **ret)
{
    if (!pem || len == 0 || len > INT_MAX)
        return -EINVAL;
    _cleanup_bio_ BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return -ENOMEM;
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password_cb, NULL);
    ERR_clear_error();
    if (!pkey)
        return -EINVAL;
    return key_wrap(pkey, ret);
}

int pki_key_to_pem_encrypted(const pki_key *k, const uint8_t *pass, size_t pass_len, char **ret_pem,
                             size_t *ret_len)
{
    if (!k || !k->pkey || !pass || pass_len == 0 || pass_len > 1024)
        return -EINVAL;
    _cleanup_bio_ BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return -ENOMEM;
    if (!PEM_write_bio_PKCS8PrivateKey(bio, k->pkey, EVP_aes_256_cbc(), (const char *)pass,
                                       (int)pass_len, NULL, NULL)) {
        ERR_clear_error();
        return -EIO;
    }
    return secret_bio_to_string(bio, ret_pem, ret_len);
}

int pki_key_from_pem_encrypted(const char *pem, size_t len, const uint8_t *pass, size_t pass_len,
                               pki_key **ret)
{
    if (!pem || len == 0 || len > INT_MAX || !pass || pass_len == 0 || pass_len > 1024)
        return -EINVAL;
    /* Only an encrypted PKCS#8 key is accepted: a plaintext key here means someone
     * replaced the sealed file. The encrypted block must come first (after whitespace):
     * OpenSSL takes the first private key block it meets, so a plaintext one put in front
     * would otherwise be loaded instead. */
    static const char tag[] = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    size_t skip = 0;
    while (skip < len &&
           (pem[skip] == ' ' || pem[skip] == '\t' || pem[skip] == '\r' || pem[skip] == '\n'))
        skip++;
    if (len - skip < sizeof(tag) - 1 || memcmp(pem + skip, tag, sizeof(tag) - 1) != 0)
        return -EINVAL;
    _cleanup_bio_ BIO *bio = BIO_new_mem_buf(pem + skip, (int)(len - skip));
    if (!bio)
        return -ENOMEM;
    struct pass p = {pass, pass_len};
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, password_cb, &p);
    ERR_clear_error();
    if (!pkey)
        return -EBADMSG;
    return key_wrap(pkey, ret);
}
