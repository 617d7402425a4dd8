/* Unlock keys (SWMKEY-1-<base36, 50>) and the key-encryption key they wrap: parsing,
 * formatting, and the HKDF that turns an unlock key into the key sealing a manager's KEK. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "common/ids.h"
#include "pki/internal.h"

int pki_unlock_key_generate(struct pki_unlock_key *ret)
{
    struct pki_unlock_key k;
    int r = sw_random_bytes(k.key, sizeof(k.key));
    if (r < 0)
        return r;
    *ret = k;
    OPENSSL_cleanse(&k, sizeof(k));
    return 0;
}

int pki_unlock_key_format(const struct pki_unlock_key *k, char ret[PKI_UNLOCK_KEY_LEN + 1])
{
    char digits[PKI_UNLOCK_KEY_DIGITS + 1];
    int r = sw_base36_encode(k->key, sizeof(k->key), PKI_UNLOCK_KEY_DIGITS, digits);
    if (r < 0)
        return r;
    memcpy(ret, PKI_UNLOCK_KEY_PREFIX, sizeof(PKI_UNLOCK_KEY_PREFIX) - 1);
    memcpy(ret + sizeof(PKI_UNLOCK_KEY_PREFIX) - 1, digits, PKI_UNLOCK_KEY_DIGITS + 1);
    OPENSSL_cleanse(digits, sizeof(digits));
    return 0;
}

int pki_unlock_key_parse(const char *s, struct pki_unlock_key *ret, char *errmsg,
                         size_t errmsg_size)
{
    size_t plen = sizeof(PKI_UNLOCK_KEY_PREFIX) - 1;
    if (!s || strncmp(s, "SWMKEY-", 7) != 0) {
        pki__errmsg(errmsg, errmsg_size, "an unlock key starts with " PKI_UNLOCK_KEY_PREFIX);
        return -EINVAL;
    }
    if (strncmp(s, PKI_UNLOCK_KEY_PREFIX, plen) != 0) {
        pki__errmsg(errmsg, errmsg_size,
                    "unsupported unlock key version (this swarmd reads " PKI_UNLOCK_KEY_PREFIX
                    "...)");
        return -EINVAL;
    }
    const char *digits = s + plen;
    size_t n = strlen(digits);
    if (n != PKI_UNLOCK_KEY_DIGITS || !sw_base36_valid(digits, n)) {
        pki__errmsg(errmsg, errmsg_size,
                    "an unlock key is " PKI_UNLOCK_KEY_PREFIX " and 50 characters of [0-9a-z]");
        return -EINVAL;
    }
    struct pki_unlock_key k;
    if (sw_base36_decode(digits, k.key, sizeof(k.key)) < 0) {
        pki__errmsg(errmsg, errmsg_size, "the unlock key is out of range");
        return -EINVAL;
    }
    *ret = k;
    OPENSSL_cleanse(&k, sizeof(k));
    return 0;
}

bool pki_unlock_key_equal(const struct pki_unlock_key *a, const struct pki_unlock_key *b)
{
    return CRYPTO_memcmp(a->key, b->key, sizeof(a->key)) == 0;
}

void pki_unlock_key_clear(struct pki_unlock_key *k)
{
    if (k)
        OPENSSL_cleanse(k, sizeof(*k));
}

int pki__unlock_wrapping_key(const struct pki_unlock_key *u, const uint8_t *salt, size_t salt_len,
                             struct pki_aead_key *ret)
{
    /* The unlock key is 256 random bits: HKDF suffices (no password stretching needed). */
    static const char info[] = "swarmd kek wrapping v1";
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (!kdf)
        return -ENOSYS;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (!ctx)
        return -ENOMEM;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)u->key, sizeof(u->key)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, sizeof(info) - 1),
        OSSL_PARAM_construct_end(),
    };
    struct pki_aead_key k = {.id = 1};
    int ok = EVP_KDF_derive(ctx, k.key, sizeof(k.key), params);
    EVP_KDF_CTX_free(ctx);
    if (ok != 1) {
        OPENSSL_cleanse(&k, sizeof(k));
        return -EIO;
    }
    *ret = k;
    OPENSSL_cleanse(&k, sizeof(k));
    return 0;
}
