/* pki: the cluster's root CA, node keys and certificates, join tokens, AES-256-GCM
 * sealing, and OpenSSL 3 TLS 1.3 contexts. No I/O beyond the files it is handed.
 * OpenSSL stays behind this header and net/ (which takes the SSL_CTX). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/ids.h"

typedef struct ssl_ctx_st SSL_CTX; /* OpenSSL's, opaque here */
typedef struct x509_st X509;

enum pki_role {
    PKI_ROLE_WORKER = 0,
    PKI_ROLE_MANAGER = 1,
};

#define PKI_OU_WORKER "swarm-worker"
#define PKI_OU_MANAGER "swarm-manager"
#define PKI_CA_CN "swarm-ca"
#define PKI_CA_VALIDITY_NS (20ULL * 365 * 24 * 3600 * 1000000000ULL)
#define PKI_CERT_VALIDITY_DEFAULT_NS (90ULL * 24 * 3600 * 1000000000ULL)
#define PKI_CERT_VALIDITY_MIN_NS (3600ULL * 1000000000ULL)
#define PKI_BACKDATE_NS (3600ULL * 1000000000ULL)

/* ------------------------------------------------------------------ keys */

/* An ECDSA P-256 private key. */
typedef struct pki_key pki_key;

int pki_key_generate(pki_key **ret);
void pki_key_free(pki_key *k);
/* Another handle on the same key (a reference; free each with pki_key_free). */
int pki_key_dup(const pki_key *k, pki_key **ret);
/* PKCS#8 PEM, unencrypted; the caller seals it and wipes it (sw_erase) before free. */
int pki_key_to_pem(const pki_key *k, char **ret_pem, size_t *ret_len);
int pki_key_from_pem(const char *pem, size_t len, pki_key **ret);
/* PKCS#8 PEM encrypted with AES-256-CBC under a passphrase (the KEK), and back. The
 * passphrase is binary (1..1024 bytes). Reading: -EINVAL for anything but an ENCRYPTED
 * PRIVATE KEY block, -EBADMSG for a wrong passphrase or a damaged key. */
int pki_key_to_pem_encrypted(const pki_key *k, const uint8_t *pass, size_t pass_len, char **ret_pem,
                             size_t *ret_len);
int pki_key_from_pem_encrypted(const char *pem, size_t len, const uint8_t *pass, size_t pass_len,
                               pki_key **ret);

/* ------------------------------------------------------------------ CA */

/* A root CA able to sign: its certificate (PEM) and key. */
typedef struct pki_ca pki_ca;

/* New self-signed root: ECDSA P-256, CN swarm-ca, validity PKI_CA_VALIDITY_NS, backdated. */
int pki_ca_create(pki_ca **ret);
/* Load from the signing certificate PEM and its key PEM. -EINVAL if they do not match. */
int pki_ca_load(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                pki_ca **ret);
void pki_ca_free(pki_ca *ca);
/* The CA certificate PEM (owned by ca) and its key. */
const char *pki_ca_cert_pem(const pki_ca *ca);
const pki_key *pki_ca_key(const pki_ca *ca);

/* What a signed node certificate says. */
struct pki_sign_request {
    const char *node_id;    /* CN, SW_ID_LEN chars */
    const char *cluster_id; /* O */
    enum pki_role role;     /* OU */
    uint64_t validity_ns;   /* clamped to [VALIDITY_MIN, CA_VALIDITY]; 0 = default */
};

/* Verify the CSR's self-signature and key type (EC P-256 only), then issue a leaf:
 * subject CN/OU/O from req (never from the CSR), SAN DNS role name + node ID (+ swarm-ca
 * for managers), EKU serverAuth+clientAuth, KU digitalSignature+keyEncipherment,
 * NotBefore now-1h, NotAfter now+validity, random 128-bit serial.
 * -EINVAL with an errmsg for a malformed/badly signed CSR or bad request fields. */
int pki_ca_sign_csr(const pki_ca *ca, const char *csr_pem, size_t csr_len,
                    const struct pki_sign_request *req, char **ret_cert_pem, char *errmsg,
                    size_t errmsg_size);

/* Root rotation. The certificate that lets a node still trusting signer's root trust
 * root_pem's: root_pem's subject and public key (SKI), issued and signed by signer, CA:TRUE,
 * valid as long as both. -EINVAL (errmsg) for a root that is not a P-256 CA certificate. */
int pki_ca_cross_sign(const pki_ca *signer, const char *root_pem, char **ret_pem, char *errmsg,
                      size_t errmsg_size);
/* Certificates (PEM) that go after every leaf ca signs from now on (the cross-signed root
 * while a rotation runs, so a leaf chains to both roots); NULL or "": none. */
int pki_ca_set_chain(pki_ca *ca, const char *chain_pem);

/* A CSR for key (subject is left for the CA to decide). */
int pki_csr_create(const pki_key *key, char **ret_csr_pem);

/* ------------------------------------------------------------------ certificates */

struct pki_identity {
    char node_id[SW_ID_LEN + 1];
    char cluster_id[SW_ID_LEN + 1];
    enum pki_role role;
    uint64_t not_before_ns; /* unix ns */
    uint64_t not_after_ns;
    char serial[80];           /* hex */
    char issuer[256];          /* one-line DN */
    char authority_key_id[65]; /* hex of the signing key's identifier ("" if absent) */
};

/* Read CN/OU/O and validity from a certificate; -EINVAL if it is not a swarm node cert
 * (CN not an ID, OU not one of the two roles, O not an ID). */
int pki_identity_from_x509(X509 *cert, struct pki_identity *ret);
int pki_identity_from_pem(const char *cert_pem, size_t len, struct pki_identity *ret);
/* Verify cert_pem chains to one of the roots in bundle_pem at the current time, then
 * read its identity (ret may be NULL). -EPERM with errmsg if the chain does not verify,
 * -EINVAL if the certificate is not PEM or not a swarm node certificate. Certificates after
 * the first in cert_pem are used as untrusted intermediates. */
int pki_verify_cert(const char *bundle_pem, size_t bundle_len, const char *cert_pem,
                    size_t cert_len, struct pki_identity *ret, char *errmsg, size_t errmsg_size);
/* The subject key identifier of the first certificate in a PEM (a root's: what leaves it
 * signs name as their authority key id), lowercase hex. -ENOENT without one. */
int pki_cert_key_id(const char *pem, size_t len, char ret[65]);
/* NotAfter of the first certificate in a PEM (unix ns). */
int pki_cert_not_after(const char *pem, size_t len, uint64_t *ret_ns);
/* True if the public key in cert_pem belongs to key. */
bool pki_cert_matches_key(const char *cert_pem, size_t len, const pki_key *key);
/* A node joining again with its node ID (swarmd join --rejoin): csr_pem must verify and be
 * signed with the key of one of certs (the certificates the swarm recorded for that node:
 * the last one issued and the one before it; expiry and root do not matter), the proof the
 * caller holds the node's key. -EPERM (errmsg) if not, -EINVAL for a malformed CSR. */
int pki_rejoin_check(const char *csr_pem, size_t csr_len, const char *const *certs, size_t n_certs,
                     char *errmsg, size_t errmsg_size);

/* ------------------------------------------------------------------ join tokens */

#define PKI_TOKEN_PREFIX "SWMTKN-1-"
#define PKI_TOKEN_DIGEST_LEN 50
#define PKI_TOKEN_SECRET_LEN 25
/* SWMTKN-1- + 50 + - + 25 */
#define PKI_TOKEN_LEN \
    (sizeof(PKI_TOKEN_PREFIX) - 1 + PKI_TOKEN_DIGEST_LEN + 1 + PKI_TOKEN_SECRET_LEN)

struct pki_token {
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    char secret[PKI_TOKEN_SECRET_LEN + 1];
};

/* base36(SHA-256(bundle_pem bytes)), zero-padded to 50 chars. */
int pki_ca_digest(const char *bundle_pem, size_t len, char ret[PKI_TOKEN_DIGEST_LEN + 1]);
/* A new token for the root bundle, with a fresh 128-bit secret. ret holds PKI_TOKEN_LEN+1. */
int pki_token_generate(const char *bundle_pem, size_t len, char ret[PKI_TOKEN_LEN + 1]);
/* Parse and validate: prefix, version, exact lengths, base36 alphabet. -EINVAL with a
 * one-line reason in errmsg ("token must start with SWMTKN-", "unsupported token version 2",
 * "token digest must be 50 characters", ...). */
int pki_token_parse(const char *s, struct pki_token *ret, char *errmsg, size_t errmsg_size);
/* Constant-time comparison of two token strings (lengths are public). */
bool pki_token_equal(const char *a, const char *b);

/* ------------------------------------------------------------------ sealing */

#define PKI_KEY_BYTES 32
#define PKI_SEAL_VERSION 1
#define PKI_SEAL_NONCE 12
#define PKI_SEAL_TAG 16
/* version(1) | key id(4, big-endian) | nonce(12) | ciphertext | tag(16) */
#define PKI_SEAL_OVERHEAD (1 + 4 + PKI_SEAL_NONCE + PKI_SEAL_TAG)

struct pki_aead_key {
    uint32_t id;
    uint8_t key[PKI_KEY_BYTES];
};

/* Fresh random key with a random nonzero id. */
int pki_aead_key_generate(struct pki_aead_key *ret);
/* Wipe. */
void pki_aead_key_clear(struct pki_aead_key *k);

/* AES-256-GCM with a random 96-bit nonce. *ret_out is malloc'd (len + PKI_SEAL_OVERHEAD). */
int pki_seal(const struct pki_aead_key *k, const void *aad, size_t aad_len, const void *pt,
             size_t pt_len, uint8_t **ret_out, size_t *ret_len);
/* Open a sealed record. -EBADMSG on wrong version, wrong key id (-ENOKEY), bad tag, wrong
 * AAD or a truncated record. *ret_out is malloc'd (may be 1 byte for an empty plaintext);
 * the caller wipes it if it held a secret. */
int pki_open(const struct pki_aead_key *k, const void *aad, size_t aad_len, const void *in,
             size_t in_len, uint8_t **ret_out, size_t *ret_len);
/* The key id of a sealed record without opening it; -EBADMSG if too short/bad version. */
int pki_sealed_key_id(const void *in, size_t in_len, uint32_t *ret_id);

/* ------------------------------------------------------------------ unlock keys (autolock) */

#define PKI_UNLOCK_KEY_PREFIX "SWMKEY-1-"
#define PKI_UNLOCK_KEY_DIGITS 50
#define PKI_UNLOCK_KEY_LEN (sizeof(PKI_UNLOCK_KEY_PREFIX) - 1 + PKI_UNLOCK_KEY_DIGITS)

/* 256 random bits; shown to the operator as SWMKEY-1-<base36, 50>. */
struct pki_unlock_key {
    uint8_t key[32];
};

int pki_unlock_key_generate(struct pki_unlock_key *ret);
int pki_unlock_key_format(const struct pki_unlock_key *k, char ret[PKI_UNLOCK_KEY_LEN + 1]);
/* -EINVAL with a one-line reason for anything but SWMKEY-1- and 50 base36 characters. */
int pki_unlock_key_parse(const char *s, struct pki_unlock_key *ret, char *errmsg,
                         size_t errmsg_size);
/* Constant time. */
bool pki_unlock_key_equal(const struct pki_unlock_key *a, const struct pki_unlock_key *b);
void pki_unlock_key_clear(struct pki_unlock_key *k);

/* ------------------------------------------------------------------ TLS */

/* TLS 1.3 only, P-256, verify against bundle_pem.
 * Server: presents cert/key, requests a client certificate but accepts none
 * (SSL_VERIFY_PEER without FAIL_IF_NO_PEER_CERT); a presented certificate must chain to
 * the bundle or the handshake fails.
 * Client: presents cert/key if given (NULL for a joining node); if bundle_pem is NULL the
 * server is not verified (join bootstrap: the caller pins the CA digest instead).
 * cert_pem may carry chain certificates after the leaf. The server needs all of bundle,
 * cert and key; cert and key come together or not at all. -EINVAL with errmsg. */
int pki_tls_server_ctx(const char *bundle_pem, size_t bundle_len, const char *cert_pem,
                       size_t cert_len, const pki_key *key, SSL_CTX **ret, char *errmsg,
                       size_t errmsg_size);
int pki_tls_client_ctx(const char *bundle_pem, size_t bundle_len, const char *cert_pem,
                       size_t cert_len, const pki_key *key, SSL_CTX **ret, char *errmsg,
                       size_t errmsg_size);
void pki_tls_ctx_free(SSL_CTX *ctx);

/* Drain OpenSSL's error queue into buf as one line ("" if empty). */
void pki_openssl_error(char *buf, size_t size);
/* A formatted one-line message in errmsg (may be NULL), with ": <openssl error queue>"
 * appended when the queue holds an error (the queue is drained either way). */
void pki_errmsg_ssl(char *errmsg, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* SHA-256 of data as 64 lowercase hex chars + NUL. */
void pki_sha256_hex(const void *data, size_t len, char ret[65]);

/* ------------------------------------------------------------------ a node's state dir */

/* Every node (manager or worker) keeps its identity under its state dir:
 * node.conf (ids, role, addresses, hostname; no secrets), keys/kek (the key-encryption key,
 * 0600), keys/dek (managers: the cluster data key sealed under the KEK), the node key
 * (PKCS#8 encrypted under the KEK, 0600), its certificate and the root CA bundle. */
#define PKI_NODE_STATE_FILE "node.conf"
#define PKI_NODE_CERT_DIR "certificates"
#define PKI_NODE_ROOT_CA_FILE "certificates/swarm-root-ca.crt"
#define PKI_NODE_CERT_FILE "certificates/swarm-node.crt"
#define PKI_NODE_KEY_FILE "certificates/swarm-node.key"
#define PKI_NODE_CERT_NEW_FILE "certificates/swarm-node.crt.new" /* during a renewal */
#define PKI_NODE_KEY_NEW_FILE "certificates/swarm-node.key.new"
#define PKI_NODE_KEYS_DIR "keys"
#define PKI_NODE_KEK_FILE "keys/kek"
#define PKI_NODE_DEK_FILE "keys/dek"
#define PKI_NODE_KEK_NEW_FILE "keys/kek.new" /* while the KEK changes (autolock) */

#define PKI_DEK_OLD_MAX 4 /* data keys kept besides the current one */

struct pki_node_state {
    char node_id[SW_ID_LEN + 1];
    char cluster_id[SW_ID_LEN + 1];
    uint64_t raft_id; /* managers */
    enum pki_role role;
    struct sw_addr listen_addr;
    struct sw_addr advertise_addr;
    char hostname[256];
    struct pki_aead_key kek;
    struct pki_aead_key dek; /* managers: the current data key */
    /* a data key rotation: keys besides the current one; the first n_dek_retired of them
     * once sealed (they open what they sealed until a snapshot supersedes it), the others
     * are the next key, handed out before it takes over */
    struct pki_aead_key dek_old[PKI_DEK_OLD_MAX];
    unsigned n_dek_old, n_dek_retired;
    pki_key *node_key;
    char *node_cert_pem;
    char *root_ca_pem;
};

/* Load everything; -ENOENT (with a message suggesting init/join) when there is no node.
 * On failure st holds nothing (finishing it again is harmless). */
int pki_node_state_load(const char *dir, struct pki_node_state *st, char *errmsg, size_t size);
/* Everything but node.conf: KEK, wrapped DEK (managers), encrypted node key, certificates.
 * Blocking (fsyncs). node.conf comes last (pki_node_state_save_conf): its presence means
 * the node is complete. */
int pki_node_state_write_keys(const char *dir, const struct pki_node_state *st, char *errmsg,
                              size_t size);
int pki_node_state_save_conf(const char *dir, const struct pki_node_state *st, char *errmsg,
                             size_t size);
/* Replace the node certificate and key after a renewal (the key encrypted under the KEK
 * read from dir). Crash-safe: both go to .new files first, then the key and the
 * certificate are renamed in that order; a load that finds the new key next to the old
 * certificate finishes the swap. Blocking (fsyncs). */
int pki_node_state_replace_cert(const char *dir, const char *cert_pem, const pki_key *key,
                                char *errmsg, size_t size);
/* Replace keys/dek (durably) with these data keys (retired[i]: old[i] once sealed), sealed
 * under the KEK on disk now. */
int pki_node_state_save_deks(const char *dir, const char *cluster_id,
                             const struct pki_aead_key *current, const struct pki_aead_key *old,
                             const bool *retired, unsigned n_old, char *errmsg, size_t size);
/* Replace the root CA bundle (a root rotation), durably. */
int pki_node_state_replace_root(const char *dir, const char *bundle_pem, char *errmsg, size_t size);
/* Wipe keys and free. */
void pki_node_state_finish(struct pki_node_state *st);
/* Autolock. A manager's KEK file is either in clear or locked: sealed under a key derived
 * (HKDF) from the cluster's unlock key. The process keeps the unlock key it was given
 * (swarmd unlock) and every load or write of the state dir uses it; NULL forgets it. */
void pki_node_state_set_unlock_key(const struct pki_unlock_key *k);
/* The unlock key the process holds (false: none). */
bool pki_node_state_unlock_key(struct pki_unlock_key *ret);
/* 1 if the node's KEK is locked (it cannot be loaded without the unlock key), 2 if locked
 * with a change of KEK left unfinished (keys/kek.new: the next load finishes it), 0 if not. */
int pki_node_state_locked(const char *dir);
/* 0 if k opens the node's KEK; -EKEYREJECTED (wrong key) or another error, with errmsg. */
int pki_node_state_check_unlock_key(const char *dir, const struct pki_unlock_key *k, char *errmsg,
                                    size_t size);
/* Lock the node's keys under k, or (k NULL) keep the KEK in clear. Going from clear to
 * locked makes a new KEK and re-encrypts the data key and the node key under it (the old
 * KEK sat on disk in clear); changing k re-seals the KEK only. Crash-safe: a new KEK goes
 * to keys/kek.new first and a load finishes an interrupted change. The process's unlock
 * key becomes k. Blocking (fsyncs). */
int pki_node_state_set_lock(const char *dir, const struct pki_unlock_key *k, char *errmsg,
                            size_t size);
