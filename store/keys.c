/* The store's data keys: the current one seals, older ones (a rotation) still open what
 * they sealed until the store is re-sealed and a snapshot supersedes them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "store/internal.h"

/* Forget the keys besides the current one that are retired (or, retired false, the
 * others: next keys of rotations that never took over). */
static void drop_keys(store *s, bool retired)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < s->n_old_keys; i++) {
        if (s->old_retired[i] == retired)
            continue;
        s->old_keys[kept] = s->old_keys[i];
        s->old_retired[kept++] = s->old_retired[i];
    }
    for (unsigned i = kept; i < STORE_OLD_KEYS_MAX; i++) {
        pki_aead_key_clear(&s->old_keys[i]);
        s->old_retired[i] = false;
    }
    s->n_old_keys = kept;
}

const struct pki_aead_key *store__key_for(const store *s, const void *sealed, size_t len)
{
    uint32_t id;
    if (pki_sealed_key_id(sealed, len, &id) < 0)
        return NULL;
    if (id == s->dek.id)
        return &s->dek;
    for (unsigned i = 0; i < s->n_old_keys; i++)
        if (s->old_keys[i].id == id)
            return &s->old_keys[i];
    return NULL;
}

static bool held(const store *s, uint32_t id)
{
    if (s->dek.id == id)
        return true;
    for (unsigned i = 0; i < s->n_old_keys; i++)
        if (s->old_keys[i].id == id)
            return true;
    return false;
}

int store_add_key(store *s, const struct pki_aead_key *k, bool retired)
{
    if (!k || k->id == 0)
        return -EINVAL;
    if (held(s, k->id))
        return -EEXIST;
    if (s->n_old_keys == STORE_OLD_KEYS_MAX)
        return -E2BIG;
    s->old_retired[s->n_old_keys] = retired;
    s->old_keys[s->n_old_keys++] = *k;
    return 0;
}

int store_use_key(store *s, uint32_t id)
{
    if (s->dek.id == id)
        return 0;
    for (unsigned i = 0; i < s->n_old_keys; i++) {
        if (s->old_keys[i].id != id)
            continue;
        struct pki_aead_key former = s->dek;
        s->dek = s->old_keys[i];
        s->old_keys[i] = former;
        s->old_retired[i] = true;
        pki_aead_key_clear(&former);
        return 0;
    }
    return -ENOKEY;
}

uint32_t store_key_id(const store *s)
{
    return s->dek.id;
}

uint64_t store_retired_used(const store *s)
{
    return s->retired_used;
}

void store_drop_next_keys(store *s)
{
    drop_keys(s, false);
}

void store_current_key(const store *s, struct pki_aead_key *ret)
{
    *ret = s->dek;
}

unsigned store_old_keys(const store *s, struct pki_aead_key *out, bool *ret_retired, unsigned max)
{
    for (unsigned i = 0; i < s->n_old_keys && i < max; i++) {
        out[i] = s->old_keys[i];
        if (ret_retired)
            ret_retired[i] = s->old_retired[i];
    }
    return s->n_old_keys;
}

void store_drop_old_keys(store *s)
{
    drop_keys(s, true);
}

/* Re-seal the values of one table that the current key did not seal. */
static int reseal_table(store *s, MDB_txn *txn, enum store_table t, unsigned *count, char *errmsg,
                        size_t size)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->tables[t], &cur);
    if (rc != 0)
        return store__lmdb_err(rc, errmsg, size, "mdb_cursor_open");
    int r = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t id = 0;
        if (pki_sealed_key_id(v.mv_data, v.mv_size, &id) >= 0 && id == s->dek.id)
            continue;
        uint8_t *plain = NULL, *sealed = NULL;
        size_t plain_len = 0, sealed_len = 0;
        r = store__value_crypt(s, false, t, k.mv_data, k.mv_size, v.mv_data, v.mv_size, &plain,
                               &plain_len);
        if (r < 0) {
            snprintf(errmsg, size, "%s/%.*s does not open with any data key held",
                     store__table_name(t), (int)k.mv_size, (const char *)k.mv_data);
            break;
        }
        r = store__value_crypt(s, true, t, k.mv_data, k.mv_size, plain, plain_len, &sealed,
                               &sealed_len);
        store__free_plain(plain, plain_len);
        if (r < 0) {
            snprintf(errmsg, size, "sealing %s: %s", store__table_name(t), strerror(-r));
            break;
        }
        MDB_val nv = {.mv_size = sealed_len, .mv_data = sealed};
        rc = mdb_cursor_put(cur, &k, &nv, MDB_CURRENT);
        free(sealed);
        if (rc != 0) {
            r = store__lmdb_err(rc, errmsg, size, "mdb_cursor_put");
            break;
        }
        (*count)++;
    }
    if (r >= 0 && rc != 0 && rc != MDB_NOTFOUND)
        r = store__lmdb_err(rc, errmsg, size, "mdb_cursor_get");
    mdb_cursor_close(cur);
    return r;
}

int store_reseal(store *s, char *errmsg, size_t errmsg_size)
{
    MDB_txn *txn;
    unsigned count = 0;
    int r = store_batch_commit(s, errmsg, errmsg_size); /* one write transaction at a time */
    if (r < 0)
        return r;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_begin");
    for (int t = 0; t <= STORE_TABLE_MAX && r >= 0; t++)
        if (store__table_valid(t))
            r = reseal_table(s, txn, (enum store_table)t, &count, errmsg, errmsg_size);
    if (r >= 0)
        r = store__keycheck_write(s, txn, errmsg, errmsg_size);
    if (r < 0) {
        mdb_txn_abort(txn);
        return r;
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0)
        return store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_commit");
    return (int)count;
}
