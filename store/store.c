/* store: the LMDB environment (open/close, error translation, sealed values, the meta
 * table) and read transactions (get, foreach, index lookups). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "store/internal.h"

static const char *const table_names[STORE_TABLE_MAX + 1] = {
    [STORE_NODES] = "nodes",     [STORE_SERVICES] = "services", [STORE_TASKS] = "tasks",
    [STORE_SECRETS] = "secrets", [STORE_CLUSTER] = "cluster",
};

#define META_APPLIED "applied_index"
#define META_FORMAT "format"
#define META_KEYCHECK "keycheck"
#define KEYCHECK_AAD "meta/keycheck"

int store__lmdb_err(int rc, char *errmsg, size_t errmsg_size, const char *what)
{
    int r;

    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        r = -ENOENT;
    else if (rc == MDB_MAP_FULL)
        r = -ENOSPC;
    else if (rc == MDB_KEYEXIST)
        r = -EEXIST;
    else if (rc > 0)
        r = -rc; /* a system errno passed through by LMDB */
    else
        r = -EIO;
    if (errmsg && errmsg_size > 0)
        snprintf(errmsg, errmsg_size, "%s: %s", what, mdb_strerror(rc));
    return r;
}

const char *store__table_name(enum store_table t)
{
    if (!store__table_valid((int)t))
        return NULL;
    return table_names[t];
}

bool store__table_valid(int t)
{
    return t >= STORE_NODES && t <= STORE_TABLE_MAX;
}

bool store__id_valid(const char *id, size_t len)
{
    return id && len > 0 && len <= STORE_ID_MAX && memchr(id, '\0', len) == NULL;
}

static int value_aad(enum store_table t, const char *id, size_t id_len, char *buf, size_t size,
                     size_t *ret_len)
{
    const char *name = store__table_name(t);
    int n;

    if (!name || !store__id_valid(id, id_len))
        return -EINVAL;
    n = snprintf(buf, size, "%s/%.*s", name, (int)id_len, id);
    if (n < 0 || (size_t)n >= size)
        return -EINVAL;
    *ret_len = (size_t)n;
    return 0;
}

int store__open_blob(const store *s, const char *aad, size_t aad_len, const void *in, size_t in_len,
                     uint8_t **ret, size_t *ret_len, const char *what, char *errmsg,
                     size_t errmsg_size)
{
    const struct pki_aead_key *k = store__key_for(s, in, in_len);
    int r = k ? pki_open(k, aad, aad_len, in, in_len, ret, ret_len) : -ENOKEY;
    if (r >= 0 || r == -ENOMEM)
        return r;
    if (what)
        snprintf(errmsg, errmsg_size,
                 "%s does not open with this cluster's data key (another cluster or key)", what);
    return -EBADMSG;
}

int store__value_crypt(const store *s, bool seal, enum store_table t, const char *id, size_t id_len,
                       const void *in, size_t in_len, uint8_t **ret, size_t *ret_len)
{
    char aad[32 + STORE_ID_MAX];
    size_t aad_len;
    int r;

    r = value_aad(t, id, id_len, aad, sizeof(aad), &aad_len);
    if (r < 0)
        return r;
    if (seal)
        return pki_seal(&s->dek, aad, aad_len, in, in_len, ret, ret_len);
    return store__open_blob(s, aad, aad_len, in, in_len, ret, ret_len, NULL, NULL, 0);
}

void store__free_plain(uint8_t *p, size_t len)
{
    if (!p)
        return;
    sw_erase(p, len);
    free(p);
}

int store__get_plain(const store *s, MDB_txn *txn, enum store_table t, const char *id,
                     uint8_t **ret, size_t *ret_len, char *errmsg, size_t errmsg_size)
{
    size_t id_len = id ? strlen(id) : 0;
    MDB_val key, data;
    int rc, r;

    if (!store__table_valid((int)t) || !store__id_valid(id, id_len))
        return -EINVAL;
    key.mv_data = (void *)id;
    key.mv_size = id_len;
    rc = mdb_get(txn, s->tables[t], &key, &data);
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    if (rc != 0)
        return store__lmdb_err(rc, errmsg, errmsg_size, "mdb_get");
    r = store__value_crypt(s, false, t, id, id_len, data.mv_data, data.mv_size, ret, ret_len);
    if (r < 0 && errmsg && errmsg_size > 0)
        snprintf(errmsg, errmsg_size, "%s/%s: stored value does not open with the data key",
                 store__table_name(t), id);
    return r;
}

/* ------------------------------------------------------------------ meta */

static void be64_put(uint8_t b[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t be64_get(const uint8_t b[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

static int meta_put(const store *s, MDB_txn *txn, const char *name, const void *data, size_t len,
                    char *errmsg, size_t errmsg_size)
{
    MDB_val key = {.mv_size = strlen(name), .mv_data = (void *)name};
    MDB_val val = {.mv_size = len, .mv_data = (void *)data};
    return store__lmdb_err(mdb_put(txn, s->meta, &key, &val, 0), errmsg, errmsg_size,
                           "writing the store's meta table");
}

static int meta_get(const store *s, MDB_txn *txn, const char *name, MDB_val *ret, char *errmsg,
                    size_t errmsg_size)
{
    MDB_val key = {.mv_size = strlen(name), .mv_data = (void *)name};
    int rc = mdb_get(txn, s->meta, &key, ret);
    if (rc == MDB_NOTFOUND)
        return -ENOENT;
    return store__lmdb_err(rc, errmsg, errmsg_size, "reading the store's meta table");
}

int store__meta_put_applied(const store *s, MDB_txn *txn, uint64_t index, char *errmsg,
                            size_t errmsg_size)
{
    uint8_t b[8];
    be64_put(b, index);
    return meta_put(s, txn, META_APPLIED, b, sizeof(b), errmsg, errmsg_size);
}

int store__meta_get_applied(const store *s, MDB_txn *txn, uint64_t *ret, char *errmsg,
                            size_t errmsg_size)
{
    MDB_val v;
    int r = meta_get(s, txn, META_APPLIED, &v, errmsg, errmsg_size);
    if (r == -ENOENT) {
        *ret = 0;
        return 0;
    }
    if (r < 0)
        return r;
    if (v.mv_size != 8) {
        snprintf(errmsg, errmsg_size, "store meta: applied index has %zu bytes", v.mv_size);
        return -EBADMSG;
    }
    *ret = be64_get(v.mv_data);
    return 0;
}

int store__keycheck_write(const store *s, MDB_txn *txn, char *errmsg, size_t errmsg_size)
{
    _cleanup_free_ uint8_t *sealed = NULL;
    size_t sealed_len;
    int r = pki_seal(&s->dek, KEYCHECK_AAD, strlen(KEYCHECK_AAD), s->cluster_id,
                     strlen(s->cluster_id), &sealed, &sealed_len);
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "sealing the store's key check: %s", strerror(-r));
        return r;
    }
    return meta_put(s, txn, META_KEYCHECK, sealed, sealed_len, errmsg, errmsg_size);
}

/* First open: write the format version and a key check; later opens: verify both. */
static int meta_init(store *s, MDB_txn *txn, char *errmsg, size_t errmsg_size)
{
    uint8_t *plain = NULL;
    size_t plain_len;
    const uint8_t fmt[4] = {0, 0, 0, STORE_FORMAT_VERSION};
    MDB_val v;
    int r;

    r = meta_get(s, txn, META_FORMAT, &v, errmsg, errmsg_size);
    if (r == -ENOENT) {
        r = meta_put(s, txn, META_FORMAT, fmt, sizeof(fmt), errmsg, errmsg_size);
        if (r < 0)
            return r;
        return store__keycheck_write(s, txn, errmsg, errmsg_size);
    }
    if (r < 0)
        return r;
    if (v.mv_size != sizeof(fmt) || memcmp(v.mv_data, fmt, sizeof(fmt)) != 0) {
        snprintf(errmsg, errmsg_size,
                 "the store was written by an unsupported swarmd version (format mismatch)");
        return -EPROTONOSUPPORT;
    }
    r = meta_get(s, txn, META_KEYCHECK, &v, errmsg, errmsg_size);
    if (r < 0) {
        if (r == -ENOENT)
            snprintf(errmsg, errmsg_size, "the store has no key check record");
        return r == -ENOENT ? -EBADMSG : r;
    }
    const struct pki_aead_key *k = store__key_for(s, v.mv_data, v.mv_size);
    r = k ? pki_open(k, KEYCHECK_AAD, strlen(KEYCHECK_AAD), v.mv_data, v.mv_size, &plain,
                     &plain_len)
          : -ENOKEY;
    if (r < 0) {
        snprintf(errmsg, errmsg_size,
                 "the store does not open with this data key (wrong key or another cluster)");
        return -EBADMSG;
    }
    if (plain_len != strlen(s->cluster_id) || memcmp(plain, s->cluster_id, plain_len) != 0)
        r = -EBADMSG;
    store__free_plain(plain, plain_len);
    if (r < 0)
        snprintf(errmsg, errmsg_size, "the store belongs to another cluster");
    return r;
}

/* ------------------------------------------------------------------ open/close */

static int open_dbs(store *s, char *errmsg, size_t errmsg_size)
{
    MDB_txn *txn = NULL;
    int rc, r;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_begin");
    for (int t = STORE_NODES; t <= STORE_TABLE_MAX; t++) {
        rc = mdb_dbi_open(txn, table_names[t], MDB_CREATE, &s->tables[t]);
        if (rc != 0)
            goto fail;
    }
    rc = mdb_dbi_open(txn, "tasks_by_service", MDB_CREATE | MDB_DUPSORT, &s->by_service);
    if (rc != 0)
        goto fail;
    rc = mdb_dbi_open(txn, "tasks_by_node", MDB_CREATE | MDB_DUPSORT, &s->by_node);
    if (rc != 0)
        goto fail;
    rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
    if (rc != 0)
        goto fail;
    r = meta_init(s, txn, errmsg, errmsg_size);
    if (r < 0) {
        mdb_txn_abort(txn);
        return r;
    }
    r = store__meta_get_applied(s, txn, &s->applied, errmsg, errmsg_size);
    if (r < 0) {
        mdb_txn_abort(txn);
        return r;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_commit");
    return 0;
fail:
    mdb_txn_abort(txn);
    return store__lmdb_err(rc, errmsg, errmsg_size, "mdb_dbi_open");
}

int store_open(const char *dir, const char *cluster_id, const struct pki_aead_key *dek, store **ret,
               char *errmsg, size_t errmsg_size)
{
    return store_open_keys(dir, cluster_id, dek, NULL, NULL, 0, 0, ret, errmsg, errmsg_size);
}

#define OPEN_MARK_FILE \
    "open.boot" /* while a rebuildable store is open: the boot it was opened in */
#define BOOT_ID_FILE "/proc/sys/kernel/random/boot_id"

/* A rebuildable store runs without flushing (MDB_NOSYNC): a process that dies leaves its
 * writes in the page cache, whole; only an OS crash or a power loss can lose or tear them.
 * The mark says "open since boot X": found at open from another boot, the store is emptied
 * and its owner rebuilds it (raft restores its snapshot and applies the log again). */
static int open_mark(store *s, const char *dir, char *errmsg, size_t errmsg_size)
{
    char path[4096], data[4096];
    _cleanup_free_ char *boot = NULL, *mark = NULL;
    int r = sw_read_file(BOOT_ID_FILE, 128, &boot, NULL);
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "cannot read %s: %s", BOOT_ID_FILE, strerror(-r));
        return r;
    }
    if ((r = sw_path_join(path, sizeof(path), dir, OPEN_MARK_FILE)) < 0)
        return r;
    if (sw_read_file(path, 128, &mark, NULL) >= 0 && strcmp(mark, boot) != 0) {
        /* open when the machine went down: what the store holds may be torn */
        for (const char *f = "data.mdb";; f = "lock.mdb") {
            if (sw_path_join(data, sizeof(data), dir, f) >= 0 && unlink(data) < 0 &&
                errno != ENOENT) {
                r = -errno;
                snprintf(errmsg, errmsg_size, "cannot empty the store %s: %s", data, strerror(-r));
                return r;
            }
            if (strcmp(f, "lock.mdb") == 0)
                break;
        }
        s->reset = true;
    }
    r = sw_write_file_atomic(path, boot, strlen(boot), 0600); /* durable before any write */
    if (r < 0)
        snprintf(errmsg, errmsg_size, "cannot write %s: %s", path, strerror(-r));
    s->mark_path = strdup(path);
    return r;
}

bool store_was_reset(const store *s)
{
    return s->reset;
}

int store_open_keys(const char *dir, const char *cluster_id, const struct pki_aead_key *dek,
                    const struct pki_aead_key *old, const bool *retired, unsigned n_old,
                    unsigned flags, store **ret, char *errmsg, size_t errmsg_size)
{
    store *s;
    int rc, r;

    if (!dir || !cluster_id || !*cluster_id || !dek || !ret || n_old > STORE_OLD_KEYS_MAX ||
        (n_old && (!old || !retired))) {
        snprintf(errmsg, errmsg_size, "store_open: missing argument");
        return -EINVAL;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "creating the store directory %s: %s", dir, strerror(-r));
        return r;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->dek = *dek;
    for (unsigned i = 0; i < n_old; i++) { /* before the key check: any of them may open it */
        s->old_keys[i] = old[i];
        s->old_retired[i] = retired[i];
    }
    s->n_old_keys = n_old;
    s->cluster_id = strdup(cluster_id);
    if (!s->cluster_id) {
        store_close(s);
        return -ENOMEM;
    }
    rc = mdb_env_create(&s->env);
    if (rc != 0) {
        s->env = NULL;
        store_close(s);
        return store__lmdb_err(rc, errmsg, errmsg_size, "mdb_env_create");
    }
    rc = mdb_env_set_mapsize(s->env, STORE_MAPSIZE);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
    if (rc != 0) {
        store_close(s);
        return store__lmdb_err(rc, errmsg, errmsg_size, "configuring the LMDB environment");
    }
    /* NOMETASYNC: one flush per transaction instead of two. An OS crash may then undo the
     * last transaction (never corrupt the store); its raft entry is still in the raft log,
     * and the applied index, kept in the same transaction, makes raft apply it again.
     * Rebuildable: no flush at all (see open_mark). */
    if ((flags & STORE_OPEN_REBUILDABLE) && (r = open_mark(s, dir, errmsg, errmsg_size)) < 0) {
        store_close(s);
        return r;
    }
    rc = mdb_env_open(s->env, dir,
                      MDB_NOTLS | (flags & STORE_OPEN_REBUILDABLE ? MDB_NOSYNC : MDB_NOMETASYNC),
                      0600);
    if (rc != 0) {
        char what[512];
        snprintf(what, sizeof(what), "opening the store in %s", dir);
        store_close(s);
        return store__lmdb_err(rc, errmsg, errmsg_size, what);
    }
    mdb_reader_check(s->env, NULL); /* clear reader slots left by a crashed process */
    r = open_dbs(s, errmsg, errmsg_size);
    if (r < 0) {
        store_close(s);
        return r;
    }
    s->committed = s->applied;
    *ret = s;
    return 0;
}

void store_close(store *s)
{
    if (!s)
        return;
    store__batch_abort(s, -ECANCELED);
    free(s->pending);
    store__watch_free_all(s);
    if (s->env && s->mark_path && mdb_env_sync(s->env, 1) == 0)
        (void)unlink(s->mark_path); /* closed cleanly: whole on disk */
    free(s->mark_path);
    if (s->env)
        mdb_env_close(s->env);
    free(s->cluster_id);
    sw_erase(&s->dek, sizeof(s->dek));
    sw_erase(s->old_keys, sizeof(s->old_keys));
    free(s);
}

uint64_t store_applied_index(const store *s)
{
    return s->applied;
}

int store_sync(store *s)
{
    return store__lmdb_err(mdb_env_sync(s->env, 1), NULL, 0, "mdb_env_sync");
}

/* ------------------------------------------------------------------ reads */

int store_read_begin(store *s, store_txn **ret)
{
    store_txn *t;
    int rc;

    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->s = s;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn);
    if (rc != 0) {
        free(t);
        return store__lmdb_err(rc, NULL, 0, "mdb_txn_begin");
    }
    *ret = t;
    return 0;
}

void store_read_end(store_txn *t)
{
    if (!t)
        return;
    if (t->txn)
        mdb_txn_abort(t->txn);
    free(t);
}

int store_get(store_txn *t, enum store_table table, const char *id, uint8_t **ret_value,
              size_t *ret_len)
{
    return store__get_plain(t->s, t->txn, table, id, ret_value, ret_len, NULL, 0);
}

/* Open data (stored under table/key) and hand it to fn; the plaintext is wiped after. */
static int visit(const store *s, enum store_table table, const MDB_val *key, const MDB_val *data,
                 store_iter_fn fn, void *userdata)
{
    char id[STORE_ID_MAX + 1];
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    int r;

    if (!store__id_valid(key->mv_data, key->mv_size))
        return -EBADMSG;
    memcpy(id, key->mv_data, key->mv_size);
    id[key->mv_size] = '\0';
    r = store__value_crypt(s, false, table, id, key->mv_size, data->mv_data, data->mv_size, &plain,
                           &plain_len);
    if (r < 0)
        return r;
    r = fn(id, plain, plain_len, userdata);
    store__free_plain(plain, plain_len);
    return r;
}

int store_foreach(store_txn *t, enum store_table table, store_iter_fn fn, void *userdata)
{
    MDB_cursor *cur = NULL;
    MDB_val key, data;
    int rc, r = 0;

    if (!store__table_valid((int)table) || !fn)
        return -EINVAL;
    rc = mdb_cursor_open(t->txn, t->s->tables[table], &cur);
    if (rc != 0)
        return store__lmdb_err(rc, NULL, 0, "mdb_cursor_open");
    for (rc = mdb_cursor_get(cur, &key, &data, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT)) {
        r = visit(t->s, table, &key, &data, fn, userdata);
        if (r != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (r != 0)
        return r;
    if (rc != MDB_NOTFOUND)
        return store__lmdb_err(rc, NULL, 0, "mdb_cursor_get");
    return 0;
}

int store_foreach_index(store_txn *t, enum store_index index, const char *key_id, store_iter_fn fn,
                        void *userdata)
{
    MDB_cursor *cur = NULL;
    MDB_val key, data, tkey, tdata;
    MDB_dbi dbi;
    int rc, r = 0;

    if (index == STORE_TASKS_BY_SERVICE)
        dbi = t->s->by_service;
    else if (index == STORE_TASKS_BY_NODE)
        dbi = t->s->by_node;
    else
        return -EINVAL;
    if (!fn || !key_id || !store__id_valid(key_id, strlen(key_id)))
        return -EINVAL;
    key.mv_data = (void *)key_id;
    key.mv_size = strlen(key_id);
    rc = mdb_cursor_open(t->txn, dbi, &cur);
    if (rc != 0)
        return store__lmdb_err(rc, NULL, 0, "mdb_cursor_open");
    for (rc = mdb_cursor_get(cur, &key, &data, MDB_SET_KEY); rc == 0;
         rc = mdb_cursor_get(cur, &key, &data, MDB_NEXT_DUP)) {
        tkey = data;
        rc = mdb_get(t->txn, t->s->tables[STORE_TASKS], &tkey, &tdata);
        if (rc == MDB_NOTFOUND)
            continue; /* cannot happen: the index is written with the task */
        if (rc != 0)
            break;
        r = visit(t->s, STORE_TASKS, &tkey, &tdata, fn, userdata);
        if (r != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (r != 0)
        return r;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__lmdb_err(rc, NULL, 0, "mdb_cursor_get");
    return 0;
}
