/* store: sealed snapshots of every table (raft FSM snapshot) and restoring from one. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "proto/swarm.pb-c.h"
#include "store/internal.h"

static int snapshot_aad(const store *s, char *buf, size_t size, size_t *ret_len)
{
    int n = snprintf(buf, size, "snapshot/%s", s->cluster_id);
    if (n < 0 || (size_t)n >= size)
        return -EINVAL;
    *ret_len = (size_t)n;
    return 0;
}

/* A snapshot is one sealed blob (AAD "snapshot/<cluster>") of a StoreSnapshot. Format 2
 * (the blob starts with SNAPSHOT_MAGIC) carries every value as the store holds it, sealed
 * under the current data key (AAD "<table>/<id>"), so taking one opens nothing but values an
 * older key sealed; format 1 (no magic) carried plaintext values and is still restored. The
 * magic cannot start a StoreSnapshot encoding ('S' would be field 10 as a group). */
#define SNAPSHOT_MAGIC "SSV2"
#define SNAPSHOT_MAGIC_LEN 4

/* The objects collected for a snapshot: each action and its id in one allocation; values
 * point into the read transaction's pages, or (resealed) into owned memory. */
struct collect {
    const store *s;
    Swarm__StoreAction **objs;
    uint8_t **owned; /* values resealed under the current key, freed with the collection */
    size_t n, cap, n_owned, cap_owned;
    enum store_table table;
};

static void collect_free(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->objs[i]);
    for (size_t i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->objs);
    free(c->owned);
    memset(c, 0, sizeof(*c));
}

static int grow(void *pv, size_t *cap, size_t n, size_t size)
{
    void **p = pv;
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 256;
    void *q = realloc(*p, ncap * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = ncap;
    return 0;
}

/* A value sealed under an older key, sealed again under the current one (a rotation not yet
 * re-sealed in the store): the snapshot must open with the keys every manager holds. */
static int reseal(struct collect *c, const char *id, size_t id_len, const MDB_val *val,
                  uint8_t **ret, size_t *ret_len)
{
    uint8_t *plain = NULL, *sealed = NULL;
    size_t plain_len = 0, sealed_len = 0;
    int r = store__value_crypt(c->s, false, c->table, id, id_len, val->mv_data, val->mv_size,
                               &plain, &plain_len);
    if (r < 0)
        return r;
    r = store__value_crypt(c->s, true, c->table, id, id_len, plain, plain_len, &sealed,
                           &sealed_len);
    store__free_plain(plain, plain_len);
    if (r < 0)
        return r;
    if (grow(&c->owned, &c->cap_owned, c->n_owned, sizeof(*c->owned)) < 0) {
        free(sealed);
        return -ENOMEM;
    }
    c->owned[c->n_owned++] = sealed;
    *ret = sealed;
    *ret_len = sealed_len;
    return 0;
}

static int collect_one(struct collect *c, const MDB_val *key, const MDB_val *val)
{
    uint32_t key_id;
    uint8_t *value = val->mv_data;
    size_t len = val->mv_size;
    int r;

    if (!store__id_valid(key->mv_data, key->mv_size))
        return -EBADMSG;
    if (pki_sealed_key_id(val->mv_data, val->mv_size, &key_id) < 0)
        return -EBADMSG;
    if (key_id != c->s->dek.id) {
        r = reseal(c, key->mv_data, key->mv_size, val, &value, &len);
        if (r < 0)
            return r;
    }
    if (grow(&c->objs, &c->cap, c->n, sizeof(*c->objs)) < 0)
        return -ENOMEM;
    Swarm__StoreAction *a = malloc(sizeof(*a) + key->mv_size + 1);
    if (!a)
        return -ENOMEM;
    swarm__store_action__init(a);
    a->kind = SWARM__STORE_ACTION_KIND__ACTION_PUT;
    a->table = (Swarm__StoreTable)c->table;
    a->id = (char *)(a + 1);
    memcpy(a->id, key->mv_data, key->mv_size);
    a->id[key->mv_size] = '\0';
    a->value.data = value;
    a->value.len = len;
    c->objs[c->n++] = a;
    return 0;
}

static int collect_table(struct collect *c, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    int rc, r = 0;

    rc = mdb_cursor_open(txn, c->s->tables[c->table], &cur);
    if (rc != 0)
        return store__lmdb_err(rc, NULL, 0, "mdb_cursor_open");
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        r = collect_one(c, &key, &val);
        if (r < 0)
            break;
    }
    mdb_cursor_close(cur);
    if (r < 0)
        return r;
    if (rc != MDB_NOTFOUND)
        return store__lmdb_err(rc, NULL, 0, "mdb_cursor_get");
    return 0;
}

int store_snapshot(store *s, uint8_t **ret_buf, size_t *ret_len)
{
    Swarm__StoreSnapshot snap = SWARM__STORE_SNAPSHOT__INIT;
    struct collect c = {.s = s};
    store_txn *t = NULL;
    uint8_t *packed = NULL;
    size_t packed_len = 0;
    char aad[256];
    size_t aad_len;
    uint64_t applied;
    int r;

    r = snapshot_aad(s, aad, sizeof(aad), &aad_len);
    if (r < 0)
        return r;
    r = store_batch_commit(s, NULL, 0); /* the snapshot holds everything applied */
    if (r < 0)
        return r;
    r = store_read_begin(s, &t);
    if (r < 0)
        return r;
    r = store__meta_get_applied(s, t->txn, &applied, NULL, 0);
    for (int tab = STORE_NODES; r >= 0 && tab <= STORE_TABLE_MAX; tab++) {
        c.table = (enum store_table)tab;
        r = collect_table(&c, t->txn);
    }
    if (r < 0)
        goto out;
    /* packed while the read transaction holds the pages the values point into */
    snap.applied_index = applied;
    snap.n_objects = c.n;
    snap.objects = c.objs;
    packed_len = SNAPSHOT_MAGIC_LEN + swarm__store_snapshot__get_packed_size(&snap);
    packed = malloc(packed_len);
    if (!packed) {
        r = -ENOMEM;
        goto out;
    }
    memcpy(packed, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN);
    swarm__store_snapshot__pack(&snap, packed + SNAPSHOT_MAGIC_LEN);
    r = pki_seal(&s->dek, aad, aad_len, packed, packed_len, ret_buf, ret_len);
out:
    store_read_end(t);
    free(packed); /* sealed values only */
    collect_free(&c);
    return r < 0 ? r : 0;
}

static void snapshot_free(Swarm__StoreSnapshot *snap)
{
    for (size_t i = 0; i < snap->n_objects; i++)
        sw_erase(snap->objects[i]->value.data, snap->objects[i]->value.len);
    swarm__store_snapshot__free_unpacked(snap, NULL);
}

int store_restore(store *s, const uint8_t *buf, size_t len, char *errmsg, size_t errmsg_size)
{
    Swarm__StoreSnapshot *snap;
    MDB_txn *txn = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    char aad[256];
    size_t aad_len;
    int rc, r;

    r = snapshot_aad(s, aad, sizeof(aad), &aad_len);
    if (r < 0)
        return r;
    r = store_batch_commit(s, errmsg, errmsg_size); /* its callbacks before the content goes */
    if (r < 0)
        return r;
    r = store__open_blob(s, aad, aad_len, buf, len, &plain, &plain_len, "the snapshot", errmsg,
                         errmsg_size);
    if (r < 0)
        return r;
    bool sealed =
        plain_len >= SNAPSHOT_MAGIC_LEN && memcmp(plain, SNAPSHOT_MAGIC, SNAPSHOT_MAGIC_LEN) == 0;
    size_t skip = sealed ? SNAPSHOT_MAGIC_LEN : 0;
    snap = swarm__store_snapshot__unpack(NULL, plain_len - skip, plain + skip);
    store__free_plain(plain, plain_len);
    if (!snap) {
        snprintf(errmsg, errmsg_size, "the snapshot does not decode");
        return -EBADMSG;
    }
    for (size_t i = 0; i < snap->n_objects; i++) {
        const Swarm__StoreAction *a = snap->objects[i];
        if (!store__table_valid((int)a->table) || !a->id ||
            !store__id_valid(a->id, strlen(a->id))) {
            snprintf(errmsg, errmsg_size, "snapshot object %zu: invalid table or id", i);
            r = -EBADMSG;
            goto out;
        }
        if (sealed && !store__key_for(s, a->value.data, a->value.len)) {
            snprintf(errmsg, errmsg_size,
                     "snapshot object %s/%s is sealed under a data key this manager does not hold",
                     store__table_name((enum store_table)a->table), a->id);
            r = -EBADMSG;
            goto out;
        }
    }
    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        r = store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_begin");
        goto out;
    }
    for (int t = STORE_NODES; rc == 0 && t <= STORE_TABLE_MAX; t++)
        rc = mdb_drop(txn, s->tables[t], 0);
    if (rc == 0)
        rc = mdb_drop(txn, s->by_service, 0);
    if (rc == 0)
        rc = mdb_drop(txn, s->by_node, 0);
    if (rc != 0) {
        r = store__lmdb_err(rc, errmsg, errmsg_size, "emptying the store");
        goto abort;
    }
    for (size_t i = 0; i < snap->n_objects; i++) {
        const Swarm__StoreAction *a = snap->objects[i];
        const uint8_t *v = a->value.data ? a->value.data : (const uint8_t *)"";
        if (sealed)
            r = store__put_sealed(s, txn, (enum store_table)a->table, a->id, v, a->value.len,
                                  errmsg, errmsg_size);
        else
            r = store__write_object(s, txn, (enum store_table)a->table, a->id, NULL, 0, v,
                                    a->value.len, errmsg, errmsg_size);
        if (r < 0) {
            if (r == -EINVAL)
                r = -EBADMSG;
            goto abort;
        }
    }
    r = store__meta_put_applied(s, txn, snap->applied_index, errmsg, errmsg_size);
    if (r < 0)
        goto abort;
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        r = store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_commit");
        goto out;
    }
    s->applied = s->committed = snap->applied_index;
    r = 0;
    goto out;
abort:
    mdb_txn_abort(txn);
out:
    snapshot_free(snap);
    return r;
}
