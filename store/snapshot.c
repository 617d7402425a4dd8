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

/* The objects collected for a snapshot; values are plaintexts, wiped on free. */
struct collect {
    Swarm__StoreAction **objs;
    size_t n, cap;
    enum store_table table;
};

static void collect_free(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++) {
        store__free_plain(c->objs[i]->value.data, c->objs[i]->value.len);
        free(c->objs[i]->id);
        free(c->objs[i]);
    }
    free(c->objs);
    c->objs = NULL;
    c->n = c->cap = 0;
}

static int collect_one(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    struct collect *c = userdata;
    Swarm__StoreAction *a;

    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        Swarm__StoreAction **objs = realloc(c->objs, cap * sizeof(*objs));
        if (!objs)
            return -ENOMEM;
        c->objs = objs;
        c->cap = cap;
    }
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    swarm__store_action__init(a);
    a->kind = SWARM__STORE_ACTION_KIND__ACTION_PUT;
    a->table = (Swarm__StoreTable)c->table;
    a->id = strdup(id);
    a->value.data = malloc(len ? len : 1);
    if (!a->id || !a->value.data) {
        free(a->id);
        free(a->value.data);
        free(a);
        return -ENOMEM;
    }
    memcpy(a->value.data, value, len);
    a->value.len = len;
    c->objs[c->n++] = a;
    return 0;
}

int store_snapshot(store *s, uint8_t **ret_buf, size_t *ret_len)
{
    Swarm__StoreSnapshot snap = SWARM__STORE_SNAPSHOT__INIT;
    struct collect c = {0};
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
        r = store_foreach(t, c.table, collect_one, &c);
    }
    store_read_end(t);
    if (r < 0)
        goto out;
    snap.applied_index = applied;
    snap.n_objects = c.n;
    snap.objects = c.objs;
    packed_len = swarm__store_snapshot__get_packed_size(&snap);
    packed = malloc(packed_len ? packed_len : 1);
    if (!packed) {
        r = -ENOMEM;
        goto out;
    }
    swarm__store_snapshot__pack(&snap, packed);
    r = pki_seal(&s->dek, aad, aad_len, packed, packed_len, ret_buf, ret_len);
out:
    store__free_plain(packed, packed_len);
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
    snap = swarm__store_snapshot__unpack(NULL, plain_len, plain);
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
        r = store__write_object(s, txn, (enum store_table)a->table, a->id, NULL, 0,
                                a->value.data ? a->value.data : (const uint8_t *)"", a->value.len,
                                errmsg, errmsg_size);
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
