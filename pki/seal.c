/* AES-256-GCM sealing of records: version | key id | nonce | ciphertext | tag. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/cleanup.h"
#include "common/ids.h"
#include "pki/internal.h"

#define HDR (1 + 4) /* version + key id, authenticated as AAD before the caller's */

/* AES-256-GCM fetched once: EVP_aes_256_gcm() makes OpenSSL 3 look the implementation up
 * again at every init (a few writes' worth of CPU per thousand seals). */
static EVP_CIPHER *gcm_fetched;
static pthread_once_t gcm_once = PTHREAD_ONCE_INIT;

static void gcm_fetch(void)
{
    gcm_fetched = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *gcm(void)
{
    pthread_once(&gcm_once, gcm_fetch);
    return gcm_fetched ? gcm_fetched : EVP_aes_256_gcm();
}

int pki_aead_key_generate(struct pki_aead_key *ret)
{
    struct pki_aead_key k;
    int r = sw_random_bytes(k.key, sizeof(k.key));
    if (r < 0)
        return r;
    do {
        uint8_t id[4];
        r = sw_random_bytes(id, sizeof(id));
        if (r < 0) {
            sw_erase(&k, sizeof(k));
            return r;
        }
        k.id = ((uint32_t)id[0] << 24) | ((uint32_t)id[1] << 16) | ((uint32_t)id[2] << 8) | id[3];
    } while (k.id == 0);
    *ret = k;
    sw_erase(&k, sizeof(k));
    return 0;
}

void pki_aead_key_clear(struct pki_aead_key *k)
{
    if (k)
        OPENSSL_cleanse(k, sizeof(*k));
}

int pki_sealed_key_id(const void *in, size_t in_len, uint32_t *ret_id)
{
    const uint8_t *p = in;
    if (!p || in_len < PKI_SEAL_OVERHEAD || p[0] != PKI_SEAL_VERSION)
        return -EBADMSG;
    *ret_id = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 8) | p[4];
    return 0;
}

static int feed_aad(EVP_CIPHER_CTX *c, bool enc, const uint8_t *hdr, const void *aad,
                    size_t aad_len)
{
    int n;
    if (!(enc ? EVP_EncryptUpdate : EVP_DecryptUpdate)(c, NULL, &n, hdr, HDR))
        return -EIO;
    const uint8_t *a = aad;
    while (aad_len > 0) {
        int chunk = aad_len > INT_MAX ? INT_MAX : (int)aad_len;
        if (!(enc ? EVP_EncryptUpdate : EVP_DecryptUpdate)(c, NULL, &n, a, chunk))
            return -EIO;
        a += chunk;
        aad_len -= (size_t)chunk;
    }
    return 0;
}

int pki_seal(const struct pki_aead_key *k, const void *aad, size_t aad_len, const void *pt,
             size_t pt_len, uint8_t **ret_out, size_t *ret_len)
{
    if (!k || (!aad && aad_len) || (!pt && pt_len) || pt_len > INT_MAX - PKI_SEAL_OVERHEAD)
        return -EINVAL;
    size_t total = pt_len + PKI_SEAL_OVERHEAD;
    uint8_t *out = malloc(total);
    if (!out)
        return -ENOMEM;
    out[0] = PKI_SEAL_VERSION;
    out[1] = (uint8_t)(k->id >> 24);
    out[2] = (uint8_t)(k->id >> 16);
    out[3] = (uint8_t)(k->id >> 8);
    out[4] = (uint8_t)k->id;
    uint8_t *nonce = out + HDR;
    uint8_t *ct = nonce + PKI_SEAL_NONCE;
    uint8_t *tag = ct + pt_len;
    int r = sw_random_bytes(nonce, PKI_SEAL_NONCE);
    if (r < 0) {
        free(out);
        return r;
    }
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) {
        free(out);
        return -ENOMEM;
    }
    r = -EIO;
    int n = 0;
    if (!EVP_EncryptInit_ex(c, gcm(), NULL, NULL, NULL) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, PKI_SEAL_NONCE, NULL) ||
        !EVP_EncryptInit_ex(c, NULL, NULL, k->key, nonce))
        goto out;
    if (feed_aad(c, true, out, aad, aad_len) < 0)
        goto out;
    if (pt_len > 0 && (!EVP_EncryptUpdate(c, ct, &n, pt, (int)pt_len) || (size_t)n != pt_len))
        goto out;
    if (!EVP_EncryptFinal_ex(c, ct + pt_len, &n) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, PKI_SEAL_TAG, tag))
        goto out;
    r = 0;
out:
    EVP_CIPHER_CTX_free(c);
    if (r < 0) {
        ERR_clear_error();
        OPENSSL_cleanse(out, total);
        free(out);
        return r;
    }
    *ret_out = out;
    *ret_len = total;
    return 0;
}

int pki_open(const struct pki_aead_key *k, const void *aad, size_t aad_len, const void *in,
             size_t in_len, uint8_t **ret_out, size_t *ret_len)
{
    if (!k || (!aad && aad_len))
        return -EINVAL;
    uint32_t id;
    int r = pki_sealed_key_id(in, in_len, &id);
    if (r < 0)
        return r;
    if (id != k->id)
        return -ENOKEY;
    if (in_len - PKI_SEAL_OVERHEAD > INT_MAX)
        return -EBADMSG;
    const uint8_t *p = in;
    const uint8_t *nonce = p + HDR;
    const uint8_t *ct = nonce + PKI_SEAL_NONCE;
    size_t ct_len = in_len - PKI_SEAL_OVERHEAD;
    const uint8_t *tag = ct + ct_len;
    uint8_t *out = malloc(ct_len ? ct_len : 1);
    if (!out)
        return -ENOMEM;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c) {
        free(out);
        return -ENOMEM;
    }
    r = -EBADMSG;
    int n = 0;
    uint8_t tagbuf[PKI_SEAL_TAG];
    memcpy(tagbuf, tag, sizeof(tagbuf));
    if (!EVP_DecryptInit_ex(c, gcm(), NULL, NULL, NULL) ||
        !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, PKI_SEAL_NONCE, NULL) ||
        !EVP_DecryptInit_ex(c, NULL, NULL, k->key, nonce)) {
        r = -EIO;
        goto out;
    }
    if (feed_aad(c, false, p, aad, aad_len) < 0) {
        r = -EIO;
        goto out;
    }
    if (ct_len > 0 && (!EVP_DecryptUpdate(c, out, &n, ct, (int)ct_len) || (size_t)n != ct_len))
        goto out;
    if (!EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, PKI_SEAL_TAG, tagbuf))
        goto out;
    if (EVP_DecryptFinal_ex(c, out + ct_len, &n) != 1)
        goto out;
    r = 0;
out:
    EVP_CIPHER_CTX_free(c);
    if (r < 0) {
        ERR_clear_error();
        OPENSSL_cleanse(out, ct_len ? ct_len : 1);
        free(out);
        return r;
    }
    *ret_out = out;
    *ret_len = ct_len;
    return 0;
}
