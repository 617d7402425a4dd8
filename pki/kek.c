/* The key-encryption key file (keys/kek): in clear (id | key, 0600) without autolock, or
 * locked (sealed under a key derived from the unlock key) with it; and the process's unlock
 * key, given once by `swarmd unlock`, that opens a locked file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/ids.h"
#include "pki/internal.h"

#define KEK_PLAIN_LEN (4 + PKI_KEY_BYTES)
#define KEK_LOCKED_MAGIC "SWLK"
#define KEK_LOCKED_VERSION 1
#define KEK_SALT_LEN 16
#define KEK_LOCKED_HDR (4 + 1 + KEK_SALT_LEN)
#define KEK_LOCKED_LEN (KEK_LOCKED_HDR + PKI_SEAL_OVERHEAD + KEK_PLAIN_LEN)
#define KEK_AAD "swarmd-kek/v1"

/* The process's unlock key: set by an unlocked manager, used wherever a locked KEK file is
 * read or written. Process memory only; wiped when cleared. */
static struct pki_unlock_key unlock_key;
static bool unlock_key_set;

void pki_node_state_set_unlock_key(const struct pki_unlock_key *k)
{
    if (k) {
        unlock_key = *k;
        unlock_key_set = true;
    } else {
        pki_unlock_key_clear(&unlock_key);
        unlock_key_set = false;
    }
}

bool pki_node_state_unlock_key(struct pki_unlock_key *ret)
{
    if (unlock_key_set)
        *ret = unlock_key;
    return unlock_key_set;
}

const struct pki_unlock_key *pki__unlock_key(void)
{
    return unlock_key_set ? &unlock_key : NULL;
}

void pki__key_encode(const struct pki_aead_key *k, uint8_t out[4 + PKI_KEY_BYTES])
{
    out[0] = (uint8_t)(k->id >> 24);
    out[1] = (uint8_t)(k->id >> 16);
    out[2] = (uint8_t)(k->id >> 8);
    out[3] = (uint8_t)k->id;
    memcpy(out + 4, k->key, PKI_KEY_BYTES);
}

void pki__key_decode(const uint8_t in[4 + PKI_KEY_BYTES], struct pki_aead_key *k)
{
    k->id = ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
    memcpy(k->key, in + 4, PKI_KEY_BYTES);
}

bool pki__kek_is_locked(const void *buf, size_t len)
{
    /* 36 bytes are a KEK in clear, whatever its id's bytes spell */
    return len != KEK_PLAIN_LEN && len >= 4 && memcmp(buf, KEK_LOCKED_MAGIC, 4) == 0;
}

static int encode(const struct pki_aead_key *kek, const struct pki_unlock_key *u, uint8_t **ret,
                  size_t *ret_len)
{
    uint8_t plain[KEK_PLAIN_LEN];
    pki__key_encode(kek, plain);
    if (!u) {
        uint8_t *out = malloc(KEK_PLAIN_LEN);
        if (!out) {
            OPENSSL_cleanse(plain, sizeof(plain));
            return -ENOMEM;
        }
        memcpy(out, plain, KEK_PLAIN_LEN);
        OPENSSL_cleanse(plain, sizeof(plain));
        *ret = out;
        *ret_len = KEK_PLAIN_LEN;
        return 0;
    }
    uint8_t salt[KEK_SALT_LEN];
    struct pki_aead_key wrap;
    _cleanup_free_ uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    int r = sw_random_bytes(salt, sizeof(salt));
    if (r >= 0)
        r = pki__unlock_wrapping_key(u, salt, sizeof(salt), &wrap);
    if (r >= 0) {
        r = pki_seal(&wrap, KEK_AAD, strlen(KEK_AAD), plain, sizeof(plain), &sealed, &sealed_len);
        pki_aead_key_clear(&wrap);
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    if (r < 0)
        return r;
    uint8_t *out = malloc(KEK_LOCKED_HDR + sealed_len);
    if (!out)
        return -ENOMEM;
    memcpy(out, KEK_LOCKED_MAGIC, 4);
    out[4] = KEK_LOCKED_VERSION;
    memcpy(out + 5, salt, KEK_SALT_LEN);
    memcpy(out + KEK_LOCKED_HDR, sealed, sealed_len);
    *ret = out;
    *ret_len = KEK_LOCKED_HDR + sealed_len;
    return 0;
}

int pki__kek_decode(const uint8_t *buf, size_t len, const struct pki_unlock_key *u,
                    struct pki_aead_key *ret, bool *ret_locked)
{
    if (len == KEK_PLAIN_LEN && !pki__kek_is_locked(buf, len)) {
        pki__key_decode(buf, ret);
        if (ret_locked)
            *ret_locked = false;
        return 0;
    }
    if (len != KEK_LOCKED_LEN || !pki__kek_is_locked(buf, len) || buf[4] != KEK_LOCKED_VERSION)
        return -EINVAL;
    if (ret_locked)
        *ret_locked = true;
    if (!u)
        return -ENOKEY;
    struct pki_aead_key wrap;
    int r = pki__unlock_wrapping_key(u, buf + 5, KEK_SALT_LEN, &wrap);
    if (r < 0)
        return r;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    r = pki_open(&wrap, KEK_AAD, strlen(KEK_AAD), buf + KEK_LOCKED_HDR, len - KEK_LOCKED_HDR,
                 &plain, &plain_len);
    pki_aead_key_clear(&wrap);
    if (r < 0 || plain_len != KEK_PLAIN_LEN) {
        if (plain) {
            OPENSSL_cleanse(plain, plain_len);
            free(plain);
        }
        /* the tag does not verify: another unlock key (a damaged file looks the same) */
        return -EKEYREJECTED;
    }
    pki__key_decode(plain, ret);
    OPENSSL_cleanse(plain, plain_len);
    free(plain);
    return 0;
}

int pki__kek_read(const char *path, const struct pki_unlock_key *u, struct pki_aead_key *ret,
                  bool *ret_locked, char *errmsg, size_t size)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = sw_read_file(path, 4096, &buf, &len);
    if (r < 0) {
        pki__errmsg(errmsg, size, "cannot read the key-encryption key %s: %s", path, strerror(-r));
        return r;
    }
    r = pki__kek_decode((const uint8_t *)buf, len, u, ret, ret_locked);
    OPENSSL_cleanse(buf, len);
    switch (r) {
        case 0:
            return 0;
        case -ENOKEY:
            pki__errmsg(errmsg, size,
                        "this manager is locked (autolock): its key-encryption key %s opens "
                        "only with the unlock key; run 'swarmd unlock'",
                        path);
            return r;
        case -EKEYREJECTED:
            pki__errmsg(errmsg, size,
                        "the unlock key does not open the key-encryption key %s (wrong key, or "
                        "the file is damaged)",
                        path);
            return r;
        default:
            pki__errmsg(errmsg, size, "the key-encryption key %s is damaged (%zu bytes)", path,
                        len);
            return r < 0 ? r : -EINVAL;
    }
}

int pki__kek_write(const char *path, const struct pki_aead_key *kek, const struct pki_unlock_key *u,
                   unsigned flags)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = encode(kek, u, &buf, &len);
    if (r < 0)
        return r;
    r = sw_write_file_atomic_flags(path, buf, len, 0600, flags);
    OPENSSL_cleanse(buf, len);
    free(buf);
    return r;
}
