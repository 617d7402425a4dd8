/* pki internals shared by the pki/ source files: key and CA structs, small helpers. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "pki/pki.h"

struct pki_key {
    EVP_PKEY *pkey;
};

struct pki_ca {
    X509 *cert;
    char *cert_pem;
    pki_key *key;
    char *chain_pem; /* sent after every leaf it signs (a rotation's cross-signed root) */
};

/* Write a formatted one-line message into errmsg (may be NULL): sw_errmsg, and
 * pki_errmsg_ssl (pki.h) with the OpenSSL error queue appended. */
#define pki__errmsg sw_errmsg
#define pki__errmsg_ssl pki_errmsg_ssl

/* True if pkey is an EC key on P-256. */
bool pki__pkey_is_p256(const EVP_PKEY *pkey);
/* Copy a memory BIO's contents into a new NUL-terminated buffer. */
int pki__bio_to_string(BIO *bio, char **ret, size_t *ret_len);
/* First certificate of a PEM buffer. -EINVAL. */
int pki__x509_from_pem(const char *pem, size_t len, X509 **ret);
/* A PEM CSR (64 KiB at most) whose self-signature verifies; -EINVAL with errmsg if not. */
int pki__csr_read(const char *csr_pem, size_t csr_len, X509_REQ **ret, char *errmsg,
                  size_t errmsg_size);
/* Certificate to PEM (malloc'd). */
int pki__x509_to_pem(X509 *x, char **ret, size_t *ret_len);
/* Add every certificate of bundle_pem to store; -EINVAL if there is none. */
int pki__store_add_bundle(X509_STORE *store, const char *bundle_pem, size_t bundle_len);
/* ASN1_TIME to unix ns (0 before the epoch). */
int pki__asn1_time_to_ns(const ASN1_TIME *t, uint64_t *ret_ns);

static inline void pki__bio_freep(BIO **b)
{
    if (*b)
        BIO_free_all(*b);
}
#define _cleanup_bio_ __attribute__((cleanup(pki__bio_freep)))

static inline void pki__x509_freep(X509 **x)
{
    if (*x)
        X509_free(*x);
}
#define _cleanup_x509_ __attribute__((cleanup(pki__x509_freep)))

static inline void pki__pkey_freep(EVP_PKEY **p)
{
    if (*p)
        EVP_PKEY_free(*p);
}
#define _cleanup_pkey_ __attribute__((cleanup(pki__pkey_freep)))

/* ---- KEK file and unlock keys (kek.c, unlock.c) */
/* HKDF-SHA256 of the unlock key with this salt: the key sealing a locked KEK file. */
int pki__unlock_wrapping_key(const struct pki_unlock_key *u, const uint8_t *salt, size_t salt_len,
                             struct pki_aead_key *ret);
/* The process's unlock key, or NULL. */
const struct pki_unlock_key *pki__unlock_key(void);
/* An AEAD key on disk: id (4 bytes, big-endian) | key. */
void pki__key_encode(const struct pki_aead_key *k, uint8_t out[4 + PKI_KEY_BYTES]);
void pki__key_decode(const uint8_t in[4 + PKI_KEY_BYTES], struct pki_aead_key *k);
bool pki__kek_is_locked(const void *buf, size_t len);
/* Decode a KEK file's bytes (u: the unlock key for a locked one, may be NULL). -ENOKEY:
 * locked and no key; -EKEYREJECTED: the key does not open it; -EINVAL: damaged. */
int pki__kek_decode(const uint8_t *buf, size_t len, const struct pki_unlock_key *u,
                    struct pki_aead_key *ret, bool *ret_locked);
/* Read and decode path, with a one-line errmsg naming it. */
int pki__kek_read(const char *path, const struct pki_unlock_key *u, struct pki_aead_key *ret,
                  bool *ret_locked, char *errmsg, size_t size);
/* Write the KEK in clear (u NULL) or locked under u (SW_WRITE_NOSYNC in flags or not). */
int pki__kek_write(const char *path, const struct pki_aead_key *kek, const struct pki_unlock_key *u,
                   unsigned flags);
