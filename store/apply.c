/* store: proposals (encode+seal, open+apply in one write transaction) and object writes
 * that keep the task indexes in step. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "proto/swarm.pb-c.h"
#include "common/swtime.h"
#include "store/internal.h"

/* ------------------------------------------------------------------ task indexes */

static int index_key_valid(const char *s)
{
    size_t n = strlen(s);
    return n == 0 || store__id_valid(s, n);
}

static int index_op(MDB_txn *txn, MDB_dbi dbi, const char *key_id, const char *task_id, bool add,
                    char *errmsg, size_t errmsg_size)
{
    MDB_val key = {.mv_size = strlen(key_id), .mv_data = (void *)key_id};
    MDB_val val = {.mv_size = strlen(task_id), .mv_data = (void *)task_id};
    int rc;

    if (key.mv_size == 0)
        return 0;
    if (add)
        rc = mdb_put(txn, dbi, &key, &val, 0);
    else {
        rc = mdb_del(txn, dbi, &key, &val);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    return store__lmdb_err(rc, errmsg, errmsg_size, "updating a task index");
}

static int index_update(const store *s, MDB_txn *txn, const char *id, const uint8_t *old,
                        size_t old_len, const uint8_t *value, size_t len, char *errmsg,
                        size_t errmsg_size)
{
    Swarm__Task *o = NULL, *n = NULL;
    int r = 0;

    if (value) {
        n = swarm__task__unpack(NULL, len, value);
        if (!n || !index_key_valid(n->service_id) || !index_key_valid(n->node_id)) {
            snprintf(errmsg, errmsg_size, "tasks/%s: the value is not a valid Task", id);
            r = -EINVAL;
            goto out;
        }
    }
    if (old)
        o = swarm__task__unpack(NULL, old_len, old); /* undecodable: no entries to remove */
    if (o) {
        r = index_op(txn, s->by_service, o->service_id, id, false, errmsg, errmsg_size);
        if (r == 0)
            r = index_op(txn, s->by_node, o->node_id, id, false, errmsg, errmsg_size);
        if (r < 0)
            goto out;
    }
    if (n) {
        r = index_op(txn, s->by_service, n->service_id, id, true, errmsg, errmsg_size);
        if (r == 0)
            r = index_op(txn, s->by_node, n->node_id, id, true, errmsg, errmsg_size);
    }
out:
    if (o)
        swarm__task__free_unpacked(o, NULL);
    if (n)
        swarm__task__free_unpacked(n, NULL);
    return r;
}

int store__write_object(const store *s, MDB_txn *txn, enum store_table t, const char *id,
                        const uint8_t *old, size_t old_len, const uint8_t *value, size_t len,
                        char *errmsg, size_t errmsg_size)
{
    _cleanup_free_ uint8_t *sealed = NULL;
    size_t sealed_len, id_len = strlen(id);
    MDB_val key = {.mv_size = id_len, .mv_data = (void *)id};
    MDB_val val;
    int rc, r;

    if (t == STORE_TASKS) {
        r = index_update(s, txn, id, old, old_len, value, len, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
    if (!value) {
        rc = mdb_del(txn, s->tables[t], &key, NULL);
        return store__lmdb_err(rc, errmsg, errmsg_size, "deleting an object");
    }
    r = store__value_crypt(s, true, t, id, id_len, value, len, &sealed, &sealed_len);
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "sealing %s/%s: %s", store__table_name(t), id, strerror(-r));
        return r;
    }
    val.mv_size = sealed_len;
    val.mv_data = sealed;
    rc = mdb_put(txn, s->tables[t], &key, &val, 0);
    return store__lmdb_err(rc, errmsg, errmsg_size, "writing an object");
}

int store__put_sealed(const store *s, MDB_txn *txn, enum store_table t, const char *id,
                      const uint8_t *sealed, size_t len, char *errmsg, size_t errmsg_size)
{
    size_t id_len = strlen(id);
    MDB_val key = {.mv_size = id_len, .mv_data = (void *)id};
    MDB_val val = {.mv_size = len, .mv_data = (void *)sealed};
    int r;

    if (t == STORE_TASKS) {
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        r = store__value_crypt(s, false, t, id, id_len, sealed, len, &plain, &plain_len);
        if (r < 0) {
            snprintf(errmsg, errmsg_size, "tasks/%s does not open with this cluster's data keys",
                     id);
            return r == -ENOMEM ? r : -EBADMSG;
        }
        r = index_update(s, txn, id, NULL, 0, plain, plain_len, errmsg, errmsg_size);
        store__free_plain(plain, plain_len);
        if (r < 0)
            return r;
    }
    return store__lmdb_err(mdb_put(txn, s->tables[t], &key, &val, 0), errmsg, errmsg_size,
                           "writing an object");
}

/* ------------------------------------------------------------------ proposals */

/* key_id: the data key's that seals (or sealed) the proposal */
static int proposal_aad(const store *s, uint32_t key_id, char *buf, size_t size, size_t *ret_len)
{
    int n = snprintf(buf, size, "proposal/%s/%08" PRIx32, s->cluster_id, key_id);
    if (n < 0 || (size_t)n >= size)
        return -EINVAL;
    *ret_len = (size_t)n;
    return 0;
}

static bool action_kind_valid(int k)
{
    return k >= STORE_CREATE && k <= STORE_PUT;
}

int store_proposal_seal(store *s, uint64_t request_id, const struct store_action *actions, size_t n,
                        uint8_t **ret_buf, size_t *ret_len)
{
    Swarm__Proposal p = SWARM__PROPOSAL__INIT;
    _cleanup_free_ Swarm__StoreAction *acts = NULL;
    _cleanup_free_ Swarm__StoreAction **ptrs = NULL;
    uint8_t *packed = NULL;
    size_t packed_len;
    char aad[512];
    size_t aad_len;
    int r;

    if (n > 0 && !actions)
        return -EINVAL;
    r = proposal_aad(s, s->dek.id, aad, sizeof(aad), &aad_len);
    if (r < 0)
        return r;
    if (n > 0) {
        acts = calloc(n, sizeof(*acts));
        ptrs = calloc(n, sizeof(*ptrs));
        if (!acts || !ptrs)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct store_action *a = &actions[i];
        if (!action_kind_valid((int)a->kind) || !store__table_valid((int)a->table) || !a->id ||
            !store__id_valid(a->id, strlen(a->id)))
            return -EINVAL;
        if (a->kind != STORE_DELETE && !a->value && a->len > 0)
            return -EINVAL;
        swarm__store_action__init(&acts[i]);
        acts[i].kind = (Swarm__StoreActionKind)a->kind;
        acts[i].table = (Swarm__StoreTable)a->table;
        acts[i].id = (char *)a->id;
        if (a->kind != STORE_DELETE && a->value) {
            acts[i].value.data = (uint8_t *)a->value;
            acts[i].value.len = a->len;
        }
        ptrs[i] = &acts[i];
    }
    p.request_id = request_id;
    p.n_actions = n;
    p.actions = ptrs;
    packed_len = swarm__proposal__get_packed_size(&p);
    packed = malloc(packed_len ? packed_len : 1);
    if (!packed)
        return -ENOMEM;
    swarm__proposal__pack(&p, packed);
    r = pki_seal(&s->dek, aad, aad_len, packed, packed_len, ret_buf, ret_len);
    store__free_plain(packed, packed_len);
    return r;
}

/* Free the events of applied actions; their old values are opened plaintexts. */
static void events_free(struct store_event *evs, size_t n)
{
    if (!evs)
        return;
    for (size_t i = 0; i < n; i++)
        store__free_plain((uint8_t *)evs[i].old_value, evs[i].old_len);
    free(evs);
}

/* Apply one action inside txn; fills *ev (which then owns the old plaintext). */
static int apply_action(const store *s, MDB_txn *txn, size_t i, const Swarm__StoreAction *a,
                        struct store_event *ev, char *errmsg, size_t errmsg_size)
{
    const char *id = a->id ? a->id : "";
    const char *tname;
    uint8_t *old = NULL;
    size_t old_len = 0;
    bool exists;
    int kind = (int)a->kind;
    int r;

    if (!store__table_valid((int)a->table) || !action_kind_valid(kind) ||
        !store__id_valid(id, strlen(id))) {
        snprintf(errmsg, errmsg_size, "action %zu: invalid table, kind or id", i);
        return -EINVAL;
    }
    tname = store__table_name((enum store_table)a->table);
    r = store__get_plain(s, txn, (enum store_table)a->table, id, &old, &old_len, errmsg,
                         errmsg_size);
    if (r < 0 && r != -ENOENT)
        return r;
    exists = r == 0;
    if (kind == STORE_CREATE && exists) {
        snprintf(errmsg, errmsg_size, "create %s/%s: already exists", tname, id);
        r = -EEXIST;
        goto fail;
    }
    if ((kind == STORE_UPDATE || kind == STORE_DELETE) && !exists) {
        snprintf(errmsg, errmsg_size, "%s %s/%s: not found",
                 kind == STORE_UPDATE ? "update" : "delete", tname, id);
        return -ENOENT;
    }
    if (kind == STORE_DELETE)
        r = store__write_object(s, txn, (enum store_table)a->table, id, old, old_len, NULL, 0,
                                errmsg, errmsg_size);
    else
        r = store__write_object(s, txn, (enum store_table)a->table, id, old, old_len,
                                a->value.data ? a->value.data : (const uint8_t *)"", a->value.len,
                                errmsg, errmsg_size);
    if (r < 0)
        goto fail;

    ev->kind =
        kind == STORE_PUT ? (exists ? STORE_UPDATE : STORE_CREATE) : (enum store_action_kind)kind;
    ev->table = (enum store_table)a->table;
    ev->id = id;
    ev->old_value = old;
    ev->old_len = old_len;
    if (kind != STORE_DELETE) {
        ev->value = a->value.data ? a->value.data : (const uint8_t *)"";
        ev->len = a->value.len;
    }
    return 0;
fail:
    store__free_plain(old, old_len);
    return r;
}

/* Free a decoded proposal, wiping the values (they may hold secrets). */
static void proposal_free(Swarm__Proposal *p)
{
    for (size_t i = 0; i < p->n_actions; i++)
        sw_erase(p->actions[i]->value.data, p->actions[i]->value.len);
    swarm__proposal__free_unpacked(p, NULL);
}

static bool is_proposal_error(int r)
{
    return r == -EEXIST || r == -ENOENT || r == -EINVAL;
}

/* ------------------------------------------------------------------ batches */

/* Room for n more pending steps (an apply reserves one for its proposal and one for the
 * callback its proposer defers, so that deferring right after an apply cannot fail). */
static int pending_reserve(store *s, size_t n)
{
    if (s->cap_pending - s->n_pending >= n)
        return 0;
    size_t cap = s->cap_pending ? s->cap_pending * 2 : 64;
    while (cap - s->n_pending < n)
        cap *= 2;
    struct store_pending *p = realloc(s->pending, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    s->pending = p;
    s->cap_pending = cap;
    return 0;
}

/* Hand the pending steps over, in order: each proposal's events to the watchers (status 0
 * only), each deferred callback its status. The list is detached first: a callback may open
 * and commit another batch. */
static void pending_deliver(store *s, int status)
{
    struct store_pending *steps = s->pending;
    size_t n = s->n_pending, cap = s->cap_pending;

    s->pending = NULL;
    s->n_pending = s->cap_pending = 0;
    for (size_t i = 0; i < n; i++) {
        struct store_pending *st = &steps[i];
        if (st->proposal) {
            if (status == 0)
                store__watch_dispatch(s, st->evs, st->n_evs);
            events_free(st->evs, st->n_evs);
            proposal_free(st->proposal);
        } else if (st->fn) {
            st->fn(status, st->userdata);
        }
    }
    if (!s->pending) {
        s->pending = steps; /* keep the allocation for the next batch */
        s->cap_pending = cap;
    } else {
        free(steps);
    }
}

void store__batch_abort(store *s, int status)
{
    if (s->batch) {
        mdb_txn_abort(s->batch);
        s->batch = NULL;
    }
    s->applied = s->committed;
    pending_deliver(s, status);
}

bool store_batch_open(const store *s)
{
    return s->batch != NULL;
}

size_t store_batch_entries(const store *s)
{
    return s->batch ? s->batch_entries : 0;
}

uint64_t store_batch_begun(const store *s)
{
    return s->batch ? s->batch_begun : 0;
}

int store_batch_defer(store *s, store_commit_fn fn, void *userdata)
{
    if (!fn)
        return -EINVAL;
    if (!s->batch)
        return 1;
    if (pending_reserve(s, 1) < 0)
        return -ENOMEM;
    s->pending[s->n_pending++] = (struct store_pending){.fn = fn, .userdata = userdata};
    return 0;
}

int store_batch_commit(store *s, char *errmsg, size_t errmsg_size)
{
    int rc, r;

    if (!s->batch)
        return 0;
    r = store__meta_put_applied(s, s->batch, s->applied, errmsg, errmsg_size);
    if (r < 0) {
        store__batch_abort(s, r);
        return r;
    }
    rc = mdb_txn_commit(s->batch); /* frees the transaction, committed or not */
    s->batch = NULL;
    if (rc != 0) {
        r = store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_commit");
        store__batch_abort(s, r);
        return r;
    }
    s->committed = s->applied;
    pending_deliver(s, 0);
    return 0;
}

int store_apply_batched(store *s, uint64_t index, const uint8_t *buf, size_t len,
                        uint64_t *ret_request_id, char *errmsg, size_t errmsg_size)
{
    Swarm__Proposal *p = NULL;
    struct store_event *evs = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0, n_done = 0;
    MDB_txn *txn, *child = NULL;
    char aad[512];
    size_t aad_len;
    int rc, r, result = 0;

    /* Already applied (raft replaying after a restart): skip before opening, since an old
     * entry may be sealed with a data key this store no longer holds once keys rotate.
     * Hence a skipped entry yields no request id (nobody waits for it on replay). */
    if (index <= s->applied)
        return 1;
    uint32_t key_id = 0;
    (void)pki_sealed_key_id(buf, len, &key_id); /* a bad header fails the open below */
    r = proposal_aad(s, key_id, aad, sizeof(aad), &aad_len);
    if (r < 0)
        return r;
    char what[48];
    snprintf(what, sizeof(what), "raft entry %" PRIu64, index);
    r = store__open_blob(s, aad, aad_len, buf, len, &plain, &plain_len, what, errmsg, errmsg_size);
    if (r == -ENOMEM)
        snprintf(errmsg, errmsg_size, "raft entry %" PRIu64 ": out of memory", index);
    if (r < 0)
        goto fail;
    if (key_id != s->dek.id && index > s->retired_used)
        s->retired_used = index; /* an older data key is still needed up to here */
    p = swarm__proposal__unpack(NULL, plain_len, plain);
    store__free_plain(plain, plain_len);
    if (!p) {
        snprintf(errmsg, errmsg_size, "raft entry %" PRIu64 " is not a valid proposal", index);
        return -EBADMSG; /* nothing applied; the batch stays as it was */
    }
    if (pending_reserve(s, 2) < 0 ||
        (p->n_actions > 0 && !(evs = calloc(p->n_actions, sizeof(*evs))))) {
        snprintf(errmsg, errmsg_size, "raft entry %" PRIu64 ": out of memory", index);
        result = -ENOMEM;
        goto abort;
    }
    if (!s->batch) {
        s->batch_entries = 0;
        s->batch_begun = sw_now_monotonic_ns();
        rc = mdb_txn_begin(s->env, NULL, 0, &s->batch);
        if (rc != 0) {
            s->batch = NULL;
            result = store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_begin");
            goto abort;
        }
    }
    txn = s->batch;
    /* A proposal applies all its actions or none. One action fails, if at all, before it
     * writes anything; several need a nested transaction to undo the first ones. */
    if (p->n_actions > 1) {
        rc = mdb_txn_begin(s->env, s->batch, 0, &child);
        if (rc != 0) {
            result = store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_begin (nested)");
            goto abort;
        }
        txn = child;
    }
    for (size_t i = 0; i < p->n_actions; i++) {
        r = apply_action(s, txn, i, p->actions[i], &evs[i], errmsg, errmsg_size);
        if (r < 0) {
            result = r;
            break;
        }
        n_done++;
    }
    if (result < 0) {
        if (child)
            mdb_txn_abort(child);
        if (!is_proposal_error(result))
            goto abort; /* I/O, no space, no memory: the batch is unusable, undo it all */
        events_free(evs, n_done);
        evs = NULL;
        n_done = 0;
    } else if (child) {
        rc = mdb_txn_commit(child);
        if (rc != 0) {
            result = store__lmdb_err(rc, errmsg, errmsg_size, "mdb_txn_commit (nested)");
            goto abort;
        }
    }
    s->applied = index;
    s->batch_entries++;
    for (size_t i = 0; i < n_done; i++)
        evs[i].index = index;
    if (ret_request_id)
        *ret_request_id = p->request_id;
    s->pending[s->n_pending++] = (struct store_pending){.proposal = p, .evs = evs, .n_evs = n_done};
    return result;
abort:
    events_free(evs, n_done);
    proposal_free(p);
    r = result;
fail:
    if (r != -EBADMSG)
        store__batch_abort(s, r);
    return r;
}

int store_apply(store *s, uint64_t index, const uint8_t *buf, size_t len, uint64_t *ret_request_id,
                char *errmsg, size_t errmsg_size)
{
    int result = store_apply_batched(s, index, buf, len, ret_request_id, errmsg, errmsg_size);
    if (result == 1 || (result < 0 && !is_proposal_error(result)))
        return result; /* skipped, or nothing applied (the batch undone on a local error) */
    int r = store_batch_commit(s, errmsg, errmsg_size);
    return r < 0 ? r : result;
}
