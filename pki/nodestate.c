/* A node's identity on disk: node.conf, the KEK, the wrapped DEK, the node key (encrypted
 * under the KEK), the node certificate and the root CA bundle. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "pki/pki.h"

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

/* A key on disk: id (4 bytes, big-endian) | key bytes. */
static void key_encode(const struct pki_aead_key *k, uint8_t out[KEK_FILE_LEN])
{
    out[0] = (uint8_t)(k->id >> 24);
    out[1] = (uint8_t)(k->id >> 16);
    out[2] = (uint8_t)(k->id >> 8);
    out[3] = (uint8_t)k->id;
    memcpy(out + 4, k->key, PKI_KEY_BYTES);
}

static void key_decode(const uint8_t in[KEK_FILE_LEN], struct pki_aead_key *k)
{
    k->id = ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
    memcpy(k->key, in + 4, PKI_KEY_BYTES);
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
    memset(st, 0, sizeof(*st));
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

    /* KEK: id | key, 0600 (autolock, in the HA issue, replaces this file) */
    uint8_t kekbuf[KEK_FILE_LEN];
    key_encode(&st->kek, kekbuf);
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    r = sw_write_file_atomic_flags(path, kekbuf, sizeof(kekbuf), 0600, SW_WRITE_NOSYNC);
    sw_erase(kekbuf, sizeof(kekbuf));
    if (r < 0)
        goto fail_write;

    if (st->role == PKI_ROLE_MANAGER) {
        uint8_t dekbuf[KEK_FILE_LEN];
        char aad[64];
        _cleanup_free_ uint8_t *sealed = NULL;
        size_t sealed_len;
        key_encode(&st->dek, dekbuf);
        dek_aad(st->cluster_id, aad, sizeof(aad));
        r = pki_seal(&st->kek, aad, strlen(aad), dekbuf, sizeof(dekbuf), &sealed, &sealed_len);
        sw_erase(dekbuf, sizeof(dekbuf));
        if (r < 0)
            goto fail_write;
        path_of(path, sizeof(path), dir, PKI_NODE_DEK_FILE);
        r = sw_write_file_atomic_flags(path, sealed, sealed_len, 0600, SW_WRITE_NOSYNC);
        if (r < 0)
            goto fail_write;
    }

    {
        char pass[2 * PKI_KEY_BYTES + 1];
        _cleanup_free_ char *pem = NULL;
        size_t pem_len;
        kek_passphrase(&st->kek, pass);
        r = pki_key_to_pem_encrypted(st->node_key, (const uint8_t *)pass, strlen(pass), &pem,
                                     &pem_len);
        sw_erase(pass, sizeof(pass));
        if (r < 0)
            goto fail_write;
        path_of(path, sizeof(path), dir, PKI_NODE_KEY_FILE);
        r = sw_write_file_atomic_flags(path, pem, pem_len, 0600, SW_WRITE_NOSYNC);
        if (r < 0)
            goto fail_write;
    }
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
    _cleanup_free_ char *kek = NULL;
    size_t kek_len = 0;
    path_of(path, sizeof(path), dir, PKI_NODE_KEK_FILE);
    int r = sw_read_file(path, 4096, &kek, &kek_len);
    if (r < 0 || kek_len != KEK_FILE_LEN) {
        snprintf(errmsg, size, "cannot read the key-encryption key %s: %s", path,
                 r < 0 ? strerror(-r) : "wrong size");
        if (kek)
            sw_erase(kek, kek_len);
        return r < 0 ? r : -EINVAL;
    }
    key_decode((const uint8_t *)kek, ret);
    sw_erase(kek, kek_len);
    return 0;
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

    r = read_kek(dir, &st->kek, errmsg, size);
    if (r < 0)
        return r;

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
            return r;
        }
        dek_aad(st->cluster_id, aad, sizeof(aad));
        r = pki_open(&st->kek, aad, strlen(aad), sealed, sealed_len, &plain, &plain_len);
        if (r < 0 || plain_len != KEK_FILE_LEN) {
            snprintf(errmsg, size,
                     "cannot unwrap the data key %s with the key-encryption key (wrong or "
                     "damaged key file)",
                     path);
            if (plain) {
                sw_erase(plain, plain_len);
                free(plain);
            }
            return r < 0 ? r : -EINVAL;
        }
        key_decode(plain, &st->dek);
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
            return r;
        }
        kek_passphrase(&st->kek, pass);
        r = pki_key_from_pem_encrypted(pem, pem_len, (const uint8_t *)pass, strlen(pass),
                                       &st->node_key);
        sw_erase(pass, sizeof(pass));
        if (r < 0) {
            snprintf(errmsg, size, "cannot decrypt the node key %s (wrong or damaged key file)",
                     path);
            return r;
        }
    }
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
