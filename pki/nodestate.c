/* A node's identity on disk: node.conf, the KEK, the wrapped DEK, the node key (encrypted
 * under the KEK), the node certificate and the root CA bundle. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "pki/internal.h"

#define KEK_FILE_LEN (4 + PKI_KEY_BYTES)

static int path_of(char *buf, size_t size, const char *dir, const char *name)
{
    return sw_path_join(buf, size, dir, name);
}

static void kek_passphrase(const struct pki_aead_key *kek, char out[2 * PKI_KEY_BYTES + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < PKI_KEY_BYTES; i++) {
        out[2 * i] = hex[kek->key[i] >> 4];
        out[2 * i + 1] = hex[kek->key[i] & 15];
    }
    out[2 * PKI_KEY_BYTES] = '\0';
}

static void dek_aad(const char *cluster_id, char *buf, size_t size)
{
    snprintf(buf, size, "swarmd-dek/%s", cluster_id);
}

void pki_node_state_finish(struct pki_node_state *st)
{
    pki_key_free(st->node_key);
    free(st->node_cert_pem);
    free(st->root_ca_pem);
    pki_aead_key_clear(&st->kek);
    pki_aead_key_clear(&st->dek);
    for (unsigned i = 0; i < PKI_DEK_OLD_MAX; i++)
        pki_aead_key_clear(&st->dek_old[i]);
    memset(st, 0, sizeof(*st));
}

/* The data key, sealed under kek. */
static int write_dek(const char *dir, const struct pki_node_state *st,
                     const struct pki_aead_key *kek, unsigned flags)
{
    char path[4096], aad[64];
    /* how many of the others are retired (1 byte), the current key, then the others (a
     * data key rotation): retired ones first */
    uint8_t dekbuf[1 + (1 + PKI_DEK_OLD_MAX) * KEK_FILE_LEN];
    _cleanup_free_ uint8_t *sealed = NULL;
    size_t sealed_len;
    unsigned n = st->n_dek_old > PKI_DEK_OLD_MAX ? PKI_DEK_OLD_MAX : st->n_dek_old;
    dekbuf[0] = (uint8_t)(st->n_dek_retired > n ? n : st->n_dek_retired);
    pki__key_encode(&st->dek, dekbuf + 1);
    for (unsigned i = 0; i < n; i++)
        pki__key_encode(&st->dek_old[i], dekbuf + 1 + (1 + i) * KEK_FILE_LEN);
    dek_aad(st->cluster_id, aad, sizeof(aad));
    int r =
        pki_seal(kek, aad, strlen(aad), dekbuf, 1 + (1 + n) * KEK_FILE_LEN, &sealed, &sealed_len);
    sw_erase(dekbuf, sizeof(dekbuf));
    if (r < 0)
        return r;
    path_of(path, sizeof(path), dir, PKI_NODE_DEK_FILE);
    return sw_write_file_atomic_flags(path, sealed, sealed_len, 0600, flags);
}

/* A node key as PKCS#8 encrypted under kek. */
static int write_node_key(const char *dir, const char *name, const pki_key *key,
                          const struct pki_aead_key *kek, unsigned flags)
{
    char path[4096], pass[2 * PKI_KEY_BYTES + 1];
    _cleanup_free_ char *pem = NULL;
    size_t pem_len;
    kek_passphrase(kek, pass);
    int r = pki_key_to_pem_encrypted(key, (const uint8_t *)pass, strlen(pass), &pem, &pem_len);
    sw_erase(pass, sizeof(pass));
    if (r < 0)
        return r;
    path_of(path, sizeof(path), dir, name);
    return sw_write_file_atomic_flags(path, pem, pem_len, 0600, flags);
}

static int write_conf(const char *dir, const struct pki_node_state *st)
{
    char path[4096], buf[2048], la[80], aa[80];
    sw_addr_format(&st->listen_addr, la, sizeof(la));
    sw_addr_format(&st->advertise_addr, aa, sizeof(aa));
    int n =
        snprintf(buf, sizeof(buf),
                 "# swarmd node state (written by swarmd; do not edit)\n"
                 "version=1\nnode_id=%s\ncluster_id=%s\nrole=%s\nraft_id=%" PRIu64
                 "\nlisten_addr=%s\nadvertise_addr=%s\nhostname=%s\n",
                 st->node_id, st->cluster_id, st->role == PKI_ROLE_MANAGER ? "manager" : "worker",
                 st->raft_id, la, aa, st->hostname);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return -ENAMETOOLONG;
    int r = path_of(path, sizeof(path), dir, PKI_NODE_STATE_FILE);
    if (r < 0)
        return r;
    return sw_write_file_atomic(path, buf, (size_t)n, 0600);
}

int pki_node_state_save_conf(const char *dir, const struct pki_node_state *st, char *errmsg,
                             size_t size)
{
    int r = write_conf(dir, st);
    if (r < 0)
        snprintf(errmsg, size, "cannot write %s/%s: %s", dir, PKI_NODE_STATE_FILE, strerror(-r));
    return r;
}

int pki_node_state_write_keys(const char *dir, const struct pki_node_state *st, char *errmsg,
                              size_t size)
{
    char path[4096];
    int r;

    r = sw_mkdir_p(dir, 0700);
    if (r < 0)
        goto fail_dir;
    for (const char *sub = PKI_NODE_CERT_DIR;; sub = PKI_NODE_KEYS_DIR) {
        if ((r = path_of(path, sizeof(path), dir, sub)) < 0 || (r = sw_mkdir_p(path, 0700)) < 0)
            goto fail_dir;
        if (strcmp(sub, PKI_NODE_KEYS_DIR) == 0)
            break;
    }

    /* KEK: in clear, or locked under the unlock key this process holds (autolock) */
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    r = pki__kek_write(path, &st->kek, pki__unlock_key(), SW_WRITE_NOSYNC);
    if (r < 0)
        goto fail_write;
    if (st->role == PKI_ROLE_MANAGER && (r = write_dek(dir, st, &st->kek, SW_WRITE_NOSYNC)) < 0)
        goto fail_write;
    if ((r = write_node_key(dir, PKI_NODE_KEY_FILE, st->node_key, &st->kek, SW_WRITE_NOSYNC)) < 0)
        goto fail_write;
    path_of(path, sizeof(path), dir, PKI_NODE_CERT_FILE);
    r = sw_write_file_atomic_flags(path, st->node_cert_pem, strlen(st->node_cert_pem), 0644,
                                   SW_WRITE_NOSYNC);
    if (r < 0)
        goto fail_write;
    path_of(path, sizeof(path), dir, PKI_NODE_ROOT_CA_FILE);
    r = sw_write_file_atomic_flags(path, st->root_ca_pem, strlen(st->root_ca_pem), 0644,
                                   SW_WRITE_NOSYNC);
    if (r < 0)
        goto fail_write;
    /* one flush for all of the above, before node.conf (written durably) says they exist */
    r = sw_syncfs(dir);
    if (r < 0)
        goto fail_write;
    return 0;

fail_dir:
    snprintf(errmsg, size, "cannot create state directory %s: %s", dir, strerror(-r));
    return r;
fail_write:
    snprintf(errmsg, size, "cannot write node state in %s: %s", dir, strerror(-r));
    return r;
}

static int parse_conf(const char *dir, char *text, struct pki_node_state *st, char *errmsg,
                      size_t size)
{
    bool have_id = false, have_cluster = false;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        char *eq = strchr(line, '=');
        if (!eq)
            goto bad;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (strcmp(k, "version") == 0) {
            if (strcmp(v, "1") != 0) {
                snprintf(errmsg, size, "%s/%s has unsupported version %s", dir, PKI_NODE_STATE_FILE,
                         v);
                return -EINVAL;
            }
        } else if (strcmp(k, "node_id") == 0) {
            if (!sw_id_valid(v))
                goto bad;
            memcpy(st->node_id, v, SW_ID_LEN + 1);
            have_id = true;
        } else if (strcmp(k, "cluster_id") == 0) {
            if (!sw_id_valid(v))
                goto bad;
            memcpy(st->cluster_id, v, SW_ID_LEN + 1);
            have_cluster = true;
        } else if (strcmp(k, "role") == 0) {
            if (strcmp(v, "manager") == 0)
                st->role = PKI_ROLE_MANAGER;
            else if (strcmp(v, "worker") == 0)
                st->role = PKI_ROLE_WORKER;
            else
                goto bad;
        } else if (strcmp(k, "raft_id") == 0) {
            char *end;
            errno = 0;
            unsigned long long id = strtoull(v, &end, 10);
            if (errno || *end)
                goto bad;
            st->raft_id = id;
        } else if (strcmp(k, "listen_addr") == 0) {
            if (sw_addr_parse(v, -1, 1, &st->listen_addr) < 0)
                goto bad;
        } else if (strcmp(k, "advertise_addr") == 0) {
            if (sw_addr_parse(v, -1, 1, &st->advertise_addr) < 0)
                goto bad;
        } else if (strcmp(k, "hostname") == 0) {
            snprintf(st->hostname, sizeof(st->hostname), "%s", v);
        }
    }
    /* a manager has a raft id; a worker has none (0) */
    if (!have_id || !have_cluster || (st->role == PKI_ROLE_MANAGER && !st->raft_id))
        goto bad;
    return 0;
bad:
    snprintf(errmsg, size, "%s/%s is damaged; restore it from a backup or re-join the node", dir,
             PKI_NODE_STATE_FILE);
    return -EINVAL;
}

static int read_kek(const char *dir, struct pki_aead_key *ret, char *errmsg, size_t size)
{
    char path[4096];
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    return pki__kek_read(path, pki__unlock_key(), ret, NULL, errmsg, size);
}

/* The KEKs a load may meet: keys/kek, and keys/kek.new while a change of KEK (autolock
 * turned on) was interrupted. Returns how many (1 or 2). */
static int read_keks(const char *dir, struct pki_aead_key keks[2], char *errmsg, size_t size)
{
    char path[4096];
    int r = read_kek(dir, &keks[0], errmsg, size);
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_NEW_FILE);
    if (!sw_file_exists(path))
        return r < 0 ? r : 1;
    /* keys/kek is the old KEK in clear, kek.new the new one, locked */
    int r2 = pki__kek_read(path, pki__unlock_key(), &keks[1], NULL, errmsg, size);
    if (r2 < 0) {
        pki_aead_key_clear(&keks[0]);
        return r2;
    }
    if (r < 0) {
        keks[0] = keks[1];
        return 1;
    }
    return 2;
}

/* A renewal writes the new certificate and key as .new files, renames the key, then the
 * certificate. Interrupted after the key: the certificate is in .new; finish the swap. */
static int finish_replace(const char *dir, const pki_key *key, char **cert_pem, size_t *cert_len)
{
    char path[4096], newpath[4096];
    _cleanup_free_ char *pem = NULL;
    size_t len;
    path_of(newpath, sizeof(newpath), dir, PKI_NODE_CERT_NEW_FILE);
    path_of(path, sizeof(path), dir, PKI_NODE_CERT_FILE);
    int r = sw_read_file(newpath, 256 * 1024, &pem, &len);
    if (r < 0)
        return r;
    if (!pki_cert_matches_key(pem, len, key))
        return -EINVAL;
    if (rename(newpath, path) < 0)
        return -errno;
    (void)sw_fsync_dir_of(path);
    free(*cert_pem);
    *cert_pem = TAKE_PTR(pem);
    *cert_len = len;
    return 0;
}

int pki_node_state_replace_cert(const char *dir, const char *cert_pem, const pki_key *key,
                                char *errmsg, size_t size)
{
    char path[4096], keynew[4096], certnew[4096];
    struct pki_aead_key kek;
    int r = read_kek(dir, &kek, errmsg, size);
    if (r < 0)
        return r;
    char pass[2 * PKI_KEY_BYTES + 1];
    _cleanup_free_ char *pem = NULL;
    size_t pem_len;
    kek_passphrase(&kek, pass);
    pki_aead_key_clear(&kek);
    r = pki_key_to_pem_encrypted(key, (const uint8_t *)pass, strlen(pass), &pem, &pem_len);
    sw_erase(pass, sizeof(pass));
    if (r < 0)
        goto fail;
    path_of(certnew, sizeof(certnew), dir, PKI_NODE_CERT_NEW_FILE);
    path_of(keynew, sizeof(keynew), dir, PKI_NODE_KEY_NEW_FILE);
    if ((r = sw_write_file_atomic(certnew, cert_pem, strlen(cert_pem), 0644)) < 0 ||
        (r = sw_write_file_atomic(keynew, pem, pem_len, 0600)) < 0)
        goto fail;
    path_of(path, sizeof(path), dir, PKI_NODE_KEY_FILE);
    if (rename(keynew, path) < 0) {
        r = -errno;
        goto fail;
    }
    (void)sw_fsync_dir_of(path);
    path_of(path, sizeof(path), dir, PKI_NODE_CERT_FILE);
    if (rename(certnew, path) < 0) {
        r = -errno;
        goto fail;
    }
    (void)sw_fsync_dir_of(path);
    return 0;
fail:
    snprintf(errmsg, size, "cannot write the renewed certificate in %s: %s", dir, strerror(-r));
    return r;
}

/* Everything under st->kek (the new KEK, from keys/kek.new): the data key, the node key,
 * then kek.new replaces kek. Each step is atomic and a load accepts both KEKs until the
 * rename, so an interruption anywhere is finished by the next load. */
static int finish_rekey(const char *dir, const struct pki_node_state *st, char *errmsg, size_t size)
{
    char path[4096], newpath[4096];
    int r = 0;
    if (st->role == PKI_ROLE_MANAGER)
        r = write_dek(dir, st, &st->kek, SW_WRITE_NOSYNC);
    if (r >= 0)
        r = write_node_key(dir, PKI_NODE_KEY_FILE, st->node_key, &st->kek, SW_WRITE_NOSYNC);
    if (r >= 0)
        r = sw_syncfs(dir);
    path_of(newpath, sizeof(newpath), dir, PKI_NODE_KEK_NEW_FILE);
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    if (r >= 0 && rename(newpath, path) < 0)
        r = -errno;
    if (r >= 0)
        r = sw_fsync_dir_of(path);
    if (r < 0)
        snprintf(errmsg, size,
                 "cannot re-encrypt the keys in %s under the new key-encryption key: %s", dir,
                 strerror(-r));
    return r;
}

static int load(const char *dir, struct pki_node_state *st, char *errmsg, size_t size)
{
    char path[4096];
    _cleanup_free_ char *text = NULL;
    int r;

    memset(st, 0, sizeof(*st));
    path_of(path, sizeof(path), dir, PKI_NODE_STATE_FILE);
    r = sw_read_file(path, 64 * 1024, &text, NULL);
    if (r == -ENOENT) {
        snprintf(errmsg, size,
                 "%s holds no swarm node; create a swarm with 'swarmd init' or join one with "
                 "'swarmd join'",
                 dir);
        return r;
    }
    if (r < 0) {
        snprintf(errmsg, size, "cannot read %s: %s", path, strerror(-r));
        return r;
    }
    r = parse_conf(dir, text, st, errmsg, size);
    if (r < 0)
        return r;

    struct pki_aead_key keks[2];
    int nkeks = read_keks(dir, keks, errmsg, size);
    if (nkeks < 0)
        return nkeks;
    st->kek = keks[nkeks - 1];

    if (st->role == PKI_ROLE_MANAGER) {
        _cleanup_free_ char *sealed = NULL;
        size_t sealed_len;
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        char aad[64];
        path_of(path, sizeof(path), dir, PKI_NODE_DEK_FILE);
        r = sw_read_file(path, 4096, &sealed, &sealed_len);
        if (r < 0) {
            snprintf(errmsg, size, "cannot read the wrapped data key %s: %s", path, strerror(-r));
            goto out;
        }
        dek_aad(st->cluster_id, aad, sizeof(aad));
        for (int i = nkeks - 1; i >= 0; i--) {
            r = pki_open(&keks[i], aad, strlen(aad), sealed, sealed_len, &plain, &plain_len);
            if (r >= 0)
                break;
        }
        /* one key (the first format), or a count of retired keys and 1 to 5 keys */
        bool counted = plain_len % KEK_FILE_LEN == 1;
        size_t nkeys = plain_len / KEK_FILE_LEN;
        if (r >= 0 && (nkeys == 0 || nkeys > 1 + PKI_DEK_OLD_MAX ||
                       (plain_len % KEK_FILE_LEN && !counted) || (counted && plain[0] > nkeys - 1)))
            r = -EBADMSG;
        if (r < 0) {
            snprintf(errmsg, size,
                     "cannot unwrap the data key %s with the key-encryption key (wrong or "
                     "damaged key file)",
                     path);
            if (plain) {
                sw_erase(plain, plain_len);
                free(plain);
            }
            r = r < 0 ? r : -EINVAL;
            goto out;
        }
        const uint8_t *k = plain + (counted ? 1 : 0);
        pki__key_decode(k, &st->dek);
        st->n_dek_old = (unsigned)nkeys - 1;
        st->n_dek_retired = counted ? plain[0] : st->n_dek_old;
        for (unsigned i = 0; i < st->n_dek_old; i++)
            pki__key_decode(k + (1 + i) * KEK_FILE_LEN, &st->dek_old[i]);
        sw_erase(plain, plain_len);
        free(plain);
    }

    {
        _cleanup_free_ char *pem = NULL;
        size_t pem_len;
        char pass[2 * PKI_KEY_BYTES + 1];
        path_of(path, sizeof(path), dir, PKI_NODE_KEY_FILE);
        r = sw_read_file(path, 64 * 1024, &pem, &pem_len);
        if (r < 0) {
            snprintf(errmsg, size, "cannot read the node key %s: %s", path, strerror(-r));
            goto out;
        }
        for (int i = nkeks - 1; i >= 0; i--) {
            kek_passphrase(&keks[i], pass);
            r = pki_key_from_pem_encrypted(pem, pem_len, (const uint8_t *)pass, strlen(pass),
                                           &st->node_key);
            sw_erase(pass, sizeof(pass));
            if (r >= 0)
                break;
        }
        if (r < 0) {
            snprintf(errmsg, size, "cannot decrypt the node key %s (wrong or damaged key file)",
                     path);
            goto out;
        }
    }
    r = nkeks == 2 ? finish_rekey(dir, st, errmsg, size) : 0;
out:
    pki_aead_key_clear(&keks[0]);
    pki_aead_key_clear(&keks[1]);
    if (r < 0)
        return r;
    size_t cert_len;
    path_of(path, sizeof(path), dir, PKI_NODE_CERT_FILE);
    r = sw_read_file(path, 256 * 1024, &st->node_cert_pem, &cert_len);
    if (r < 0) {
        snprintf(errmsg, size, "cannot read the node certificate %s: %s", path, strerror(-r));
        return r;
    }
    if (!pki_cert_matches_key(st->node_cert_pem, cert_len, st->node_key) &&
        finish_replace(dir, st->node_key, &st->node_cert_pem, &cert_len) < 0) {
        snprintf(errmsg, size, "the node certificate %s does not match the node key", path);
        return -EINVAL;
    }
    path_of(path, sizeof(path), dir, PKI_NODE_ROOT_CA_FILE);
    r = sw_read_file(path, 1024 * 1024, &st->root_ca_pem, NULL);
    if (r < 0) {
        snprintf(errmsg, size, "cannot read the root CA bundle %s: %s", path, strerror(-r));
        return r;
    }
    return 0;
}

int pki_node_state_load(const char *dir, struct pki_node_state *st, char *errmsg, size_t size)
{
    int r = load(dir, st, errmsg, size);
    if (r < 0)
        pki_node_state_finish(st); /* nothing half-loaded stays behind */
    return r;
}

/* ------------------------------------------------------------------ autolock */

int pki_node_state_locked(const char *dir)
{
    char path[4096];
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_NEW_FILE);
    if (sw_file_exists(path))
        return 2; /* only turning autolock on writes kek.new: locked, the change unfinished */
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    int r = sw_read_file(path, 4096, &buf, &len);
    if (r < 0)
        return r;
    bool locked = pki__kek_is_locked(buf, len);
    sw_erase(buf, len);
    return locked ? 1 : 0;
}

int pki_node_state_check_unlock_key(const char *dir, const struct pki_unlock_key *k, char *errmsg,
                                    size_t size)
{
    char path[4096];
    struct pki_aead_key kek;
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_NEW_FILE);
    if (!sw_file_exists(path))
        path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    int r = pki__kek_read(path, k, &kek, NULL, errmsg, size);
    pki_aead_key_clear(&kek);
    if (r == -EKEYREJECTED)
        snprintf(errmsg, size, "wrong unlock key: it does not open this manager's keys");
    return r;
}

int pki_node_state_set_lock(const char *dir, const struct pki_unlock_key *k, char *errmsg,
                            size_t size)
{
    char path[4096], newpath[4096];
    struct pki_node_state st;
    bool locked = false;
    int r = pki_node_state_load(dir, &st, errmsg, size); /* finishes an interrupted change */
    if (r < 0)
        return r;
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    path_of(newpath, sizeof(newpath), dir, PKI_NODE_KEK_NEW_FILE);
    {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        if ((r = sw_read_file(path, 4096, &buf, &len)) < 0)
            goto fail;
        locked = pki__kek_is_locked(buf, len);
        sw_erase(buf, len);
    }
    if (k && !locked) {
        /* the KEK was on disk in clear: a new one, that never was */
        struct pki_aead_key old = st.kek;
        r = pki_aead_key_generate(&st.kek);
        pki_aead_key_clear(&old);
        if (r >= 0)
            r = pki__kek_write(newpath, &st.kek, k, 0);
        if (r >= 0) {
            pki_node_state_set_unlock_key(k);
            r = finish_rekey(dir, &st, errmsg, size);
            pki_node_state_finish(&st);
            return r;
        }
    } else {
        r = pki__kek_write(path, &st.kek, k, 0);
        if (r >= 0)
            pki_node_state_set_unlock_key(k);
    }
fail:
    if (r < 0)
        snprintf(errmsg, size, "cannot write the key-encryption key in %s: %s", dir, strerror(-r));
    pki_node_state_finish(&st);
    return r;
}

int pki_node_state_save_deks(const char *dir, const char *cluster_id,
                             const struct pki_aead_key *current, const struct pki_aead_key *old,
                             const bool *retired, unsigned n_old, char *errmsg, size_t size)
{
    struct pki_node_state st;
    memset(&st, 0, sizeof(st));
    if (n_old > PKI_DEK_OLD_MAX) {
        snprintf(errmsg, size, "too many data keys (%u older ones, at most %d)", n_old,
                 PKI_DEK_OLD_MAX);
        return -E2BIG;
    }
    snprintf(st.cluster_id, sizeof(st.cluster_id), "%s", cluster_id);
    int r = read_kek(dir, &st.kek, errmsg, size); /* the KEK on disk now (autolock changes it) */
    if (r < 0)
        return r;
    st.dek = *current;
    for (int pass = 0; pass < 2; pass++) /* retired first */
        for (unsigned i = 0; i < n_old; i++)
            if (retired[i] == (pass == 0)) {
                st.dek_old[st.n_dek_old++] = old[i];
                st.n_dek_retired += pass == 0;
            }
    r = write_dek(dir, &st, &st.kek, 0);
    if (r < 0)
        snprintf(errmsg, size, "cannot write the data keys in %s: %s", dir, strerror(-r));
    pki_node_state_finish(&st);
    return r;
}

int pki_node_state_replace_root(const char *dir, const char *bundle_pem, char *errmsg, size_t size)
{
    char path[4096];
    path_of(path, sizeof(path), dir, PKI_NODE_ROOT_CA_FILE);
    int r = sw_write_file_atomic(path, bundle_pem, strlen(bundle_pem), 0644);
    if (r < 0)
        snprintf(errmsg, size, "cannot write %s: %s", path, strerror(-r));
    return r;
}
