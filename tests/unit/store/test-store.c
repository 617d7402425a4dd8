/* store/: proposals and their semantics, replay after restart, indexes, watchers, sealing
 * (wrong cluster/key, nothing readable on disk), snapshots, batched applies. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <lmdb.h>

#include "proto/swarm.pb-c.h"
#include "store/store.h"

#define CLUSTER "c0000000000000000000000001"

struct fix {
    char dir[64];
    char dir2[64];
    struct pki_aead_key dek;
    store *s;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static store *open_store(const char *dir, const char *cluster, const struct pki_aead_key *dek)
{
    char err[256] = "";
    store *s = NULL;
    int r = store_open(dir, cluster, dek, &s, err, sizeof(err));
    if (r < 0)
        fail_msg("store_open %s: %d %s", dir, r, err);
    return s;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-store-XXXXXX");
    snprintf(f->dir2, sizeof(f->dir2), "/tmp/test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_non_null(mkdtemp(f->dir2));
    assert_int_equal(pki_aead_key_generate(&f->dek), 0);
    f->s = open_store(f->dir, CLUSTER, &f->dek);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    store_close(f->s);
    rm_rf(f->dir);
    rm_rf(f->dir2);
    free(f);
    return 0;
}

static void reopen(struct fix *f)
{
    store_close(f->s);
    f->s = open_store(f->dir, CLUSTER, &f->dek);
}

/* Seal then apply; returns store_apply's result. */
static int propose_rid(store *s, uint64_t index, uint64_t rid, const struct store_action *a,
                       size_t n, uint64_t *ret_rid)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256] = "";
    int r;

    assert_int_equal(store_proposal_seal(s, rid, a, n, &buf, &len), 0);
    r = store_apply(s, index, buf, len, ret_rid, err, sizeof(err));
    if (r < 0 && r != -EBADMSG)
        assert_true(err[0] != '\0'); /* failures explain themselves */
    free(buf);
    return r;
}

static int propose(store *s, uint64_t index, const struct store_action *a, size_t n)
{
    return propose_rid(s, index, 7, a, n, NULL);
}

static size_t slen(const char *v)
{
    return v ? strlen(v) : 0;
}
#define ACT(k, t, i, v) ((struct store_action){(k), (t), (i), (const uint8_t *)(v), slen(v)})

/* The value of table/id as a string, or NULL if missing. */
static char *get_str(store *s, enum store_table t, const char *id)
{
    store_txn *txn = NULL;
    uint8_t *v = NULL;
    size_t len = 0;
    char *out = NULL;
    int r;

    assert_int_equal(store_read_begin(s, &txn), 0);
    r = store_get(txn, t, id, &v, &len);
    store_read_end(txn);
    if (r == -ENOENT)
        return NULL;
    assert_int_equal(r, 0);
    out = strndup((const char *)v, len);
    free(v);
    return out;
}

static void assert_value(store *s, enum store_table t, const char *id, const char *want)
{
    char *got = get_str(s, t, id);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_create_get_reopen(void **state)
{
    struct fix *f = *state;
    struct stat st;
    char path[128];

    assert_int_equal(store_applied_index(f->s), 0);
    struct store_action a[] = {ACT(STORE_CREATE, STORE_NODES, "n1", "node one"),
                               ACT(STORE_CREATE, STORE_CLUSTER, "c1", "the cluster")};
    assert_int_equal(propose(f->s, 1, a, 2), 0);
    assert_int_equal(store_applied_index(f->s), 1);
    assert_value(f->s, STORE_NODES, "n1", "node one");
    assert_value(f->s, STORE_CLUSTER, "c1", "the cluster");
    assert_value(f->s, STORE_NODES, "c1", NULL); /* tables are separate */

    reopen(f);
    assert_int_equal(store_applied_index(f->s), 1);
    assert_value(f->s, STORE_NODES, "n1", "node one");
    assert_value(f->s, STORE_CLUSTER, "c1", "the cluster");

    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);
}

static void test_open_creates_private_dir(void **state)
{
    struct fix *f = *state;
    char sub[128];
    struct stat st;

    snprintf(sub, sizeof(sub), "%s/store", f->dir2);
    store *s = open_store(sub, CLUSTER, &f->dek);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    store_close(s);
}

static void test_semantics(void **state)
{
    struct fix *f = *state;
    uint64_t idx = 0;

    struct store_action c1[] = {ACT(STORE_CREATE, STORE_SERVICES, "s1", "v1")};
    assert_int_equal(propose(f->s, ++idx, c1, 1), 0);

    /* create of an existing key fails, changes nothing, advances the index */
    struct store_action c2[] = {ACT(STORE_CREATE, STORE_SERVICES, "s1", "v2")};
    assert_int_equal(propose(f->s, ++idx, c2, 1), -EEXIST);
    assert_int_equal(store_applied_index(f->s), idx);
    assert_value(f->s, STORE_SERVICES, "s1", "v1");

    /* update/delete of a missing key */
    struct store_action u[] = {ACT(STORE_UPDATE, STORE_SERVICES, "nope", "x")};
    assert_int_equal(propose(f->s, ++idx, u, 1), -ENOENT);
    assert_value(f->s, STORE_SERVICES, "nope", NULL);
    struct store_action d[] = {ACT(STORE_DELETE, STORE_SERVICES, "nope", NULL)};
    assert_int_equal(propose(f->s, ++idx, d, 1), -ENOENT);
    assert_int_equal(store_applied_index(f->s), idx);

    /* a batch is all or nothing: the first action is undone by the second's failure */
    struct store_action batch[] = {ACT(STORE_UPDATE, STORE_SERVICES, "s1", "v3"),
                                   ACT(STORE_CREATE, STORE_SERVICES, "s2", "new"),
                                   ACT(STORE_DELETE, STORE_SERVICES, "missing", NULL)};
    assert_int_equal(propose(f->s, ++idx, batch, 3), -ENOENT);
    assert_value(f->s, STORE_SERVICES, "s1", "v1");
    assert_value(f->s, STORE_SERVICES, "s2", NULL);
    assert_int_equal(store_applied_index(f->s), idx);

    /* update, put (create and replace), delete */
    struct store_action ok[] = {
        ACT(STORE_UPDATE, STORE_SERVICES, "s1", "v4"), ACT(STORE_PUT, STORE_SERVICES, "s2", "p1"),
        ACT(STORE_PUT, STORE_SERVICES, "s2", "p2"), ACT(STORE_CREATE, STORE_SECRETS, "k1", ""),
        ACT(STORE_CREATE, STORE_SERVICES, "s3", "gone")};
    assert_int_equal(propose(f->s, ++idx, ok, 5), 0);
    assert_value(f->s, STORE_SERVICES, "s1", "v4");
    assert_value(f->s, STORE_SERVICES, "s2", "p2");
    assert_value(f->s, STORE_SECRETS, "k1", ""); /* an empty value is a value */
    struct store_action del[] = {ACT(STORE_DELETE, STORE_SERVICES, "s3", NULL)};
    assert_int_equal(propose(f->s, ++idx, del, 1), 0);
    assert_value(f->s, STORE_SERVICES, "s3", NULL);

    /* an undecodable task value is rejected */
    struct store_action bad[] = {ACT(STORE_CREATE, STORE_TASKS, "t1", "\xff\xff\xff")};
    assert_int_equal(propose(f->s, ++idx, bad, 1), -EINVAL);
    assert_value(f->s, STORE_TASKS, "t1", NULL);
    assert_int_equal(store_applied_index(f->s), idx);

    /* invalid actions are refused when sealing */
    char longid[STORE_ID_MAX + 2];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    uint8_t *buf = NULL;
    size_t len;
    struct store_action inv[] = {ACT(STORE_CREATE, STORE_NODES, "", "x"),
                                 ACT(STORE_CREATE, STORE_NODES, longid, "x"),
                                 ACT(STORE_CREATE, 9, "x", "x"), ACT(7, STORE_NODES, "x", "x")};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(store_proposal_seal(f->s, 1, &inv[i], 1, &buf, &len), -EINVAL);
    longid[STORE_ID_MAX] = '\0'; /* exactly the maximum is fine */
    struct store_action maxid[] = {ACT(STORE_CREATE, STORE_NODES, longid, "x")};
    assert_int_equal(propose(f->s, ++idx, maxid, 1), 0);
    assert_value(f->s, STORE_NODES, longid, "x");
}

static void test_replay_skipped(void **state)
{
    struct fix *f = *state;
    uint64_t rid = 0;

    struct store_action a1[] = {ACT(STORE_CREATE, STORE_NODES, "n1", "one")};
    struct store_action a2[] = {ACT(STORE_UPDATE, STORE_NODES, "n1", "two")};
    assert_int_equal(propose(f->s, 1, a1, 1), 0);
    assert_int_equal(propose_rid(f->s, 2, 42, a2, 1, &rid), 0);
    assert_int_equal(rid, 42);

    reopen(f); /* raft re-applies entries 1..2 after a restart */
    assert_int_equal(store_applied_index(f->s), 2);
    rid = 0;
    assert_int_equal(propose_rid(f->s, 1, 41, a1, 1, &rid), 1);
    assert_int_equal(rid, 0); /* skipped unopened: no request id */
    assert_int_equal(propose(f->s, 2, a2, 1), 1);
    struct store_action a3[] = {ACT(STORE_UPDATE, STORE_NODES, "n1", "three")};
    assert_int_equal(propose(f->s, 2, a3, 1), 1);
    assert_value(f->s, STORE_NODES, "n1", "two");
    assert_int_equal(store_applied_index(f->s), 2);

    assert_int_equal(propose(f->s, 3, a3, 1), 0);
    assert_value(f->s, STORE_NODES, "n1", "three");

    /* An old entry is skipped without being opened: after a data key rotation the log
     * still holds entries sealed with the previous key, and replaying them must not fail. */
    char d_old[128], err[256] = "";
    struct pki_aead_key old_key;
    uint8_t *buf = NULL;
    size_t len = 0;
    snprintf(d_old, sizeof(d_old), "%s/oldkey", f->dir2);
    assert_int_equal(pki_aead_key_generate(&old_key), 0);
    store *old = open_store(d_old, CLUSTER, &old_key);
    assert_int_equal(store_proposal_seal(old, 5, a3, 1, &buf, &len), 0);
    assert_int_equal(store_apply(f->s, 3, buf, len, NULL, err, sizeof(err)), 1);
    assert_int_equal(store_apply(f->s, 2, (const uint8_t *)"junk", 4, &rid, err, sizeof(err)), 1);
    assert_int_equal(store_apply(f->s, 4, buf, len, NULL, err, sizeof(err)), -EBADMSG);
    assert_int_equal(store_applied_index(f->s), 3);
    free(buf);
    store_close(old);
    pki_aead_key_clear(&old_key);

    /* a failed proposal reports its request id too (the caller answers the client) */
    rid = 0;
    assert_int_equal(propose_rid(f->s, 4, 99, a1, 1, &rid), -EEXIST);
    assert_int_equal(rid, 99);
    reopen(f);
    assert_int_equal(store_applied_index(f->s), 4);
}

/* ------------------------------------------------------------------ indexes */

static char *task_value(const char *id, const char *service, const char *node, size_t *ret_len)
{
    Swarm__Task t = SWARM__TASK__INIT;
    t.id = (char *)id;
    t.service_id = (char *)service;
    t.node_id = (char *)node;
    t.slot = 1;
    size_t len = swarm__task__get_packed_size(&t);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    swarm__task__pack(&t, buf);
    *ret_len = len;
    return (char *)buf;
}

static struct store_action task_act(enum store_action_kind k, const char *id, const char *service,
                                    const char *node)
{
    struct store_action a = {k, STORE_TASKS, id, NULL, 0};
    if (k != STORE_DELETE)
        a.value = (const uint8_t *)task_value(id, service, node, &a.len);
    return a;
}

static void free_acts(struct store_action *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)a[i].value);
}

struct idlist {
    char ids[512];
};

static int collect_ids(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    struct idlist *l = userdata;
    Swarm__Task *t = swarm__task__unpack(NULL, len, value);
    assert_non_null(t);
    assert_string_equal(t->id, id); /* the value handed over is the opened task */
    swarm__task__free_unpacked(t, NULL);
    size_t n = strlen(l->ids);
    snprintf(l->ids + n, sizeof(l->ids) - n, "%s%s", n ? "," : "", id);
    return 0;
}

static void assert_index(store *s, enum store_index idx, const char *key, const char *want)
{
    struct idlist l = {""};
    store_txn *t = NULL;
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_foreach_index(t, idx, key, collect_ids, &l), 0);
    store_read_end(t);
    assert_string_equal(l.ids, want);
}

static void test_indexes(void **state)
{
    struct fix *f = *state;

    struct store_action c[] = {task_act(STORE_CREATE, "t1", "svcA", "nodeX"),
                               task_act(STORE_CREATE, "t2", "svcA", "nodeY"),
                               task_act(STORE_CREATE, "t3", "svcB", "nodeX"),
                               task_act(STORE_CREATE, "t4", "svcB", "")};
    assert_int_equal(propose(f->s, 1, c, 4), 0);
    free_acts(c, 4);
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "svcA", "t1,t2");
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "svcB", "t3,t4");
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeX", "t1,t3");
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeY", "t2");
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeZ", "");

    /* t1 moves to nodeY; t4 gets assigned */
    struct store_action u[] = {task_act(STORE_UPDATE, "t1", "svcA", "nodeY"),
                               task_act(STORE_PUT, "t4", "svcB", "nodeZ")};
    assert_int_equal(propose(f->s, 2, u, 2), 0);
    free_acts(u, 2);
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeX", "t3");
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeY", "t1,t2");
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeZ", "t4");
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "svcA", "t1,t2");

    /* a failed proposal leaves the indexes alone */
    struct store_action bad[] = {task_act(STORE_UPDATE, "t3", "svcC", "nodeQ"),
                                 task_act(STORE_CREATE, "t2", "svcA", "nodeY")};
    assert_int_equal(propose(f->s, 3, bad, 2), -EEXIST);
    free_acts(bad, 2);
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "svcC", "");
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeX", "t3");

    struct store_action d[] = {task_act(STORE_DELETE, "t2", NULL, NULL)};
    assert_int_equal(propose(f->s, 4, d, 1), 0);
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "svcA", "t1");
    assert_index(f->s, STORE_TASKS_BY_NODE, "nodeY", "t1");

    reopen(f);
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "svcA", "t1");
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "svcB", "t3,t4");

    store_txn *t = NULL;
    struct idlist l = {""};
    assert_int_equal(store_read_begin(f->s, &t), 0);
    assert_int_equal(store_foreach(t, STORE_TASKS, collect_ids, &l), 0);
    assert_int_equal(store_foreach_index(t, 9, "svcA", collect_ids, &l), -EINVAL);
    store_read_end(t);
    assert_string_equal(l.ids, "t1,t3,t4");
}

static int stop_at_second(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    int *count = userdata;
    return ++*count == 2 ? 5 : 0;
}

static void test_foreach_stop(void **state)
{
    struct fix *f = *state;
    struct store_action a[] = {ACT(STORE_CREATE, STORE_NODES, "a", "1"),
                               ACT(STORE_CREATE, STORE_NODES, "b", "2"),
                               ACT(STORE_CREATE, STORE_NODES, "c", "3")};
    assert_int_equal(propose(f->s, 1, a, 3), 0);
    store_txn *t = NULL;
    int count = 0;
    assert_int_equal(store_read_begin(f->s, &t), 0);
    assert_int_equal(store_foreach(t, STORE_NODES, stop_at_second, &count), 5);
    assert_int_equal(count, 2);
    store_read_end(t);
}

/* ------------------------------------------------------------------ watch */

struct rec {
    struct fix *f;
    char log[1024];
    store_watch *self;
    store_watch *added;
    struct rec *child;
    int remove_after; /* remove self after this many events (0 = never) */
    int add_after;    /* add child after this many events */
    int n;
    bool read_back; /* read the event's id from the store inside the callback */
    int seen_n2;
};

static const char *kind_name(enum store_action_kind k)
{
    switch (k) {
        case STORE_CREATE:
            return "C";
        case STORE_UPDATE:
            return "U";
        case STORE_DELETE:
            return "D";
        default:
            return "?";
    }
}

static void on_event(const struct store_event *ev, void *userdata)
{
    struct rec *r = userdata;
    size_t n = strlen(r->log);

    snprintf(r->log + n, sizeof(r->log) - n, "%s%s:%d:%s:%.*s>%.*s@%llu", n ? " " : "",
             kind_name(ev->kind), (int)ev->table, ev->id, ev->old_value ? (int)ev->old_len : 1,
             ev->old_value ? (const char *)ev->old_value : "-", ev->value ? (int)ev->len : 1,
             ev->value ? (const char *)ev->value : "-", (unsigned long long)ev->index);
    if (!ev->old_value)
        assert_int_equal(ev->kind, STORE_CREATE);
    if (!ev->value)
        assert_int_equal(ev->kind, STORE_DELETE);
    r->n++;
    if (r->read_back) {
        /* the whole batch is committed before the first callback, and readable from it */
        char *v = get_str(r->f->s, STORE_NODES, "n2");
        if (v)
            r->seen_n2++;
        free(v);
    }
    if (r->remove_after && r->n == r->remove_after) {
        store_watch_remove(r->self);
        r->self = NULL;
    }
    if (r->add_after && r->n == r->add_after)
        assert_int_equal(store_watch_add(r->f->s, on_event, r->child, &r->child->self), 0);
}

static void test_watch(void **state)
{
    struct fix *f = *state;
    struct rec all = {.f = f, .read_back = true};
    struct rec once = {.f = f, .remove_after = 1};
    struct rec later = {.f = f};
    struct rec adder = {.f = f, .add_after = 1, .child = &later};

    assert_int_equal(store_watch_add(f->s, on_event, &all, &all.self), 0);
    assert_int_equal(store_watch_add(f->s, on_event, &once, &once.self), 0);
    assert_int_equal(store_watch_add(f->s, on_event, &adder, &adder.self), 0);

    struct store_action a[] = {
        ACT(STORE_CREATE, STORE_NODES, "n1", "a"), ACT(STORE_PUT, STORE_NODES, "n1", "b"),
        ACT(STORE_PUT, STORE_NODES, "n2", "c"), ACT(STORE_DELETE, STORE_NODES, "n1", NULL)};
    assert_int_equal(propose(f->s, 1, a, 4), 0);
    assert_string_equal(all.log, "C:1:n1:->a@1 U:1:n1:a>b@1 C:1:n2:->c@1 D:1:n1:b>-@1");
    assert_string_equal(once.log, "C:1:n1:->a@1");
    assert_int_equal(all.seen_n2, 4);
    assert_string_equal(later.log, ""); /* added during the batch: sees only later ones */

    /* failed proposals and replays emit nothing */
    struct store_action bad[] = {ACT(STORE_UPDATE, STORE_NODES, "n2", "z"),
                                 ACT(STORE_CREATE, STORE_NODES, "n2", "dup")};
    assert_int_equal(propose(f->s, 2, bad, 2), -EEXIST);
    assert_int_equal(propose(f->s, 1, a, 1), 1);
    assert_int_equal(all.n, 4);

    struct store_action u[] = {ACT(STORE_UPDATE, STORE_NODES, "n2", "d")};
    assert_int_equal(propose(f->s, 3, u, 1), 0);
    assert_string_equal(later.log, "U:1:n2:c>d@3");
    assert_int_equal(once.n, 1);
    assert_int_equal(all.n, 5);

    store_watch_remove(all.self);
    store_watch_remove(adder.self);
    store_watch_remove(later.self);
    assert_int_equal(propose(f->s, 4, u, 1), 0);
    assert_int_equal(all.n, 5);
    assert_int_equal(later.n, 1);
}

/* ------------------------------------------------------------------ sealing */

static void test_wrong_cluster_or_key(void **state)
{
    struct fix *f = *state;
    char err[256] = "";
    char d_other[128], d_key[128];
    struct pki_aead_key k2;
    uint8_t *buf = NULL;
    size_t len = 0;

    snprintf(d_other, sizeof(d_other), "%s/other", f->dir2);
    snprintf(d_key, sizeof(d_key), "%s/key", f->dir2);
    assert_int_equal(pki_aead_key_generate(&k2), 0);
    store *other = open_store(d_other, "c0000000000000000000000002", &f->dek);
    store *keyed = open_store(d_key, CLUSTER, &k2);

    struct store_action a[] = {ACT(STORE_CREATE, STORE_NODES, "n1", "x")};
    assert_int_equal(store_proposal_seal(f->s, 1, a, 1, &buf, &len), 0);
    assert_int_equal(store_apply(other, 1, buf, len, NULL, err, sizeof(err)), -EBADMSG);
    assert_true(err[0] != '\0');
    assert_int_equal(store_apply(keyed, 1, buf, len, NULL, err, sizeof(err)), -EBADMSG);
    assert_int_equal(store_applied_index(other), 0);
    assert_int_equal(store_applied_index(keyed), 0);
    /* a flipped bit */
    buf[len / 2] ^= 1;
    assert_int_equal(store_apply(f->s, 1, buf, len, NULL, err, sizeof(err)), -EBADMSG);
    buf[len / 2] ^= 1;
    assert_int_equal(store_apply(f->s, 1, buf, len, NULL, err, sizeof(err)), 0);
    free(buf);

    /* snapshots are bound to the cluster and key as well */
    assert_int_equal(store_snapshot(f->s, &buf, &len), 0);
    assert_int_equal(store_restore(other, buf, len, err, sizeof(err)), -EBADMSG);
    assert_int_equal(store_restore(keyed, buf, len, err, sizeof(err)), -EBADMSG);
    free(buf);
    store_close(other);
    store_close(keyed);

    /* reopening a store with another key or cluster is refused */
    store *s = NULL;
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->dir, CLUSTER, &k2, &s, err, sizeof(err)), -EBADMSG);
    assert_int_equal(
        store_open(f->dir, "c0000000000000000000000002", &f->dek, &s, err, sizeof(err)), -EBADMSG);
    assert_null(s);
    f->s = open_store(f->dir, CLUSTER, &f->dek);
    assert_value(f->s, STORE_NODES, "n1", "x");
    pki_aead_key_clear(&k2);
}

/* Copy the raw (sealed) value of from_db/from_key to to_db/to_key, bypassing store/. */
static void raw_copy(const char *dir, const char *from_db, const char *from_key, const char *to_db,
                     const char *to_key)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi a, b;
    MDB_val k = {strlen(from_key), (void *)from_key}, v, k2 = {strlen(to_key), (void *)to_key};

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, from_db, 0, &a), 0);
    assert_int_equal(mdb_dbi_open(txn, to_db, 0, &b), 0);
    assert_int_equal(mdb_get(txn, a, &k, &v), 0);
    assert_int_equal(mdb_put(txn, b, &k2, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int count_one(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    ++*(int *)userdata;
    return 0;
}

/* A sealed value is bound to its table and key: moved elsewhere, it does not open. */
static void test_moved_value_rejected(void **state)
{
    struct fix *f = *state;
    store_txn *t = NULL;
    uint8_t *v = NULL;
    size_t len;
    int count = 0;

    struct store_action a[] = {ACT(STORE_CREATE, STORE_SECRETS, "k1", "secret"),
                               ACT(STORE_CREATE, STORE_NODES, "n1", "node")};
    assert_int_equal(propose(f->s, 1, a, 2), 0);
    store_close(f->s);
    f->s = NULL;
    raw_copy(f->dir, "secrets", "k1", "secrets", "k2");
    raw_copy(f->dir, "secrets", "k1", "nodes", "k1");
    f->s = open_store(f->dir, CLUSTER, &f->dek);

    assert_value(f->s, STORE_SECRETS, "k1", "secret"); /* the original still opens */
    assert_int_equal(store_read_begin(f->s, &t), 0);
    assert_int_equal(store_get(t, STORE_SECRETS, "k2", &v, &len), -EBADMSG);
    assert_int_equal(store_get(t, STORE_NODES, "k1", &v, &len), -EBADMSG);
    assert_int_equal(store_foreach(t, STORE_SECRETS, count_one, &count), -EBADMSG);
    store_read_end(t);
    assert_int_equal(count, 1); /* k1 was visited, k2 stopped the walk */

    /* the caller cannot write over a value that does not open either */
    struct store_action u[] = {ACT(STORE_UPDATE, STORE_SECRETS, "k2", "x")};
    assert_int_equal(propose(f->s, 2, u, 1), -EBADMSG);
    assert_int_equal(store_applied_index(f->s), 1);
}

#define MARKER "SECRET-MARKER-7c1e9a"

static void assert_no_marker(const void *buf, size_t len)
{
    assert_null(memmem(buf, len, MARKER, strlen(MARKER)));
}

static void assert_file_no_marker(const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
    while ((n = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(fp);
    assert_true(len > 0);
    assert_no_marker(buf, len);
    free(buf);
}

static void test_nothing_readable(void **state)
{
    struct fix *f = *state;
    char path[128];
    uint8_t *buf = NULL;
    size_t len = 0;

    struct store_action a[] = {ACT(STORE_CREATE, STORE_SECRETS, "k1", "data=" MARKER),
                               ACT(STORE_CREATE, STORE_NODES, "n1", MARKER " in a node")};
    assert_int_equal(store_proposal_seal(f->s, 1, a, 2, &buf, &len), 0);
    assert_no_marker(buf, len); /* the raft entry */
    free(buf);
    assert_int_equal(propose(f->s, 1, a, 2), 0);
    assert_value(f->s, STORE_SECRETS, "k1", "data=" MARKER); /* the marker is really there */
    assert_int_equal(store_sync(f->s), 0);

    assert_int_equal(store_snapshot(f->s, &buf, &len), 0);
    assert_no_marker(buf, len);
    free(buf);

    store_close(f->s);
    f->s = NULL;
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    assert_file_no_marker(path);
    f->s = open_store(f->dir, CLUSTER, &f->dek);
}

/* ------------------------------------------------------------------ snapshots */

static int dump_one(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    char *out = userdata;
    size_t n = strlen(out);
    snprintf(out + n, 4096 - n, "%s=%zu:", id, len);
    n = strlen(out);
    for (size_t i = 0; i < len && n + 3 < 4096; i++, n += 2)
        snprintf(out + n, 4096 - n, "%02x", value[i]);
    snprintf(out + n, 4096 - n, ";");
    return 0;
}

/* Every table, as text. */
static void dump(store *s, char out[4096])
{
    store_txn *t = NULL;
    out[0] = '\0';
    assert_int_equal(store_read_begin(s, &t), 0);
    for (int tab = STORE_NODES; tab <= STORE_TABLE_MAX; tab++) {
        size_t n = strlen(out);
        snprintf(out + n, 4096 - n, "[%d]", tab);
        assert_int_equal(store_foreach(t, tab, dump_one, out), 0);
    }
    store_read_end(t);
}

static void test_snapshot_restore(void **state)
{
    struct fix *f = *state;
    char err[256] = "", a_dump[4096], b_dump[4096];
    uint8_t *buf = NULL;
    size_t len = 0;

    struct store_action a[] = {ACT(STORE_CREATE, STORE_NODES, "n1", "node"),
                               ACT(STORE_CREATE, STORE_SERVICES, "s1", "svc"),
                               ACT(STORE_CREATE, STORE_SECRETS, "k1", "secret"),
                               ACT(STORE_CREATE, STORE_CLUSTER, "c", "cluster"),
                               task_act(STORE_CREATE, "t1", "s1", "n1"),
                               task_act(STORE_CREATE, "t2", "s1", "n2")};
    assert_int_equal(propose(f->s, 5, a, 6), 0);
    free_acts(&a[4], 2);
    assert_int_equal(store_snapshot(f->s, &buf, &len), 0);

    /* a fresh store with other content: restore replaces everything */
    store *b = open_store(f->dir2, CLUSTER, &f->dek);
    struct store_action junk[] = {ACT(STORE_CREATE, STORE_NODES, "zz", "junk"),
                                  task_act(STORE_CREATE, "t9", "s1", "n1")};
    assert_int_equal(propose(b, 9, junk, 2), 0);
    free_acts(&junk[1], 1);
    assert_int_equal(store_restore(b, buf, len, err, sizeof(err)), 0);
    free(buf);
    assert_int_equal(store_applied_index(b), 5);
    dump(f->s, a_dump);
    dump(b, b_dump);
    assert_string_equal(a_dump, b_dump);
    assert_non_null(strstr(b_dump, "t2="));
    assert_index(b, STORE_TASKS_BY_SERVICE, "s1", "t1,t2");
    assert_index(b, STORE_TASKS_BY_NODE, "n1", "t1");

    /* it survives a restart, and later entries apply on top */
    store_close(b);
    b = open_store(f->dir2, CLUSTER, &f->dek);
    assert_int_equal(store_applied_index(b), 5);
    dump(b, b_dump);
    assert_string_equal(a_dump, b_dump);
    struct store_action more[] = {ACT(STORE_UPDATE, STORE_NODES, "n1", "node2")};
    assert_int_equal(propose(b, 5, more, 1), 1);
    assert_int_equal(propose(b, 6, more, 1), 0);
    assert_value(b, STORE_NODES, "n1", "node2");
    store_close(b);

    /* garbage is refused and changes nothing */
    uint8_t junkbuf[64] = {1};
    assert_int_equal(store_restore(f->s, junkbuf, sizeof(junkbuf), err, sizeof(err)), -EBADMSG);
    dump(f->s, b_dump);
    assert_string_equal(a_dump, b_dump);
}

/* ------------------------------------------------------------------ batched applies */

/* One shared log of what the watchers and the deferred callbacks saw, in order. */
struct blog {
    char log[1024];
    int canceled;
};

static void blog_add(struct blog *b, const char *what)
{
    size_t n = strlen(b->log);
    snprintf(b->log + n, sizeof(b->log) - n, "%s%s", n ? " " : "", what);
}

static void batch_event(const struct store_event *ev, void *userdata)
{
    char what[96];
    snprintf(what, sizeof(what), "%s:%s@%llu", kind_name(ev->kind), ev->id,
             (unsigned long long)ev->index);
    blog_add(userdata, what);
}

struct bcb {
    struct blog *b;
    int n;
};

static void batch_cb(int status, void *userdata)
{
    struct bcb *c = userdata;
    char what[32];
    snprintf(what, sizeof(what), "cb%d=%d", c->n, status);
    blog_add(c->b, what);
    if (status == -ECANCELED)
        c->b->canceled++;
}

#define N_ENTRIES 7

/* Entries 1..N_ENTRIES as raft would hold them, sealed once and applied to several stores. */
struct entries {
    uint8_t *buf[N_ENTRIES + 1];
    size_t len[N_ENTRIES + 1];
    int want[N_ENTRIES + 1]; /* store_apply's result for each */
};

static void entries_make(store *s, struct entries *e)
{
    struct store_action t1 = task_act(STORE_CREATE, "t1", "s1", "n1");
    struct store_action t1b = task_act(STORE_UPDATE, "t1", "s2", "n1");
    struct store_action acts[N_ENTRIES + 1][2] = {
        [1] = {ACT(STORE_CREATE, STORE_NODES, "n1", "one")},
        [2] = {t1},
        /* reads what entry 1 wrote in the same batch (-ENOENT otherwise) */
        [3] = {ACT(STORE_UPDATE, STORE_NODES, "n1", "two")},
        [4] = {ACT(STORE_CREATE, STORE_NODES, "n1", "dup")},
        /* fails on its second action: its first is undone, the batch's earlier ones kept */
        [5] = {ACT(STORE_UPDATE, STORE_NODES, "n1", "lost"),
               ACT(STORE_CREATE, STORE_NODES, "n1", "dup")},
        [6] = {t1b, ACT(STORE_PUT, STORE_SECRETS, "k1", "s3cr3t")},
        [7] = {ACT(STORE_DELETE, STORE_NODES, "n1", NULL)},
    };
    size_t n[N_ENTRIES + 1] = {0, 1, 1, 1, 1, 2, 2, 1};
    int want[N_ENTRIES + 1] = {0, 0, 0, 0, -EEXIST, -EEXIST, 0, 0};
    for (int i = 1; i <= N_ENTRIES; i++) {
        assert_int_equal(store_proposal_seal(s, 100 + i, acts[i], n[i], &e->buf[i], &e->len[i]), 0);
        e->want[i] = want[i];
    }
    free_acts(&t1, 1);
    free_acts(&t1b, 1);
}

static void entries_free(struct entries *e)
{
    for (int i = 1; i <= N_ENTRIES; i++)
        free(e->buf[i]);
}

/* Apply entries from..to into the open batch, each followed by a deferred callback. */
static void apply_batched(store *s, const struct entries *e, int from, int to, struct bcb *cbs)
{
    char err[256];
    for (int i = from; i <= to; i++) {
        uint64_t rid = 0;
        err[0] = '\0';
        assert_int_equal(
            store_apply_batched(s, (uint64_t)i, e->buf[i], e->len[i], &rid, err, sizeof(err)),
            e->want[i]);
        assert_int_equal(rid, 100 + i);
        assert_true(store_batch_open(s));
        assert_int_equal(store_applied_index(s), (uint64_t)i);
        if (cbs)
            assert_int_equal(store_batch_defer(s, batch_cb, &cbs[i]), 0);
    }
}

static void test_batch_one_commit(void **state)
{
    struct fix *f = *state;
    struct blog b = {0};
    struct bcb cbs[N_ENTRIES + 1];
    struct entries e;
    char err[256] = "", want[4096], got[4096];

    for (int i = 0; i <= N_ENTRIES; i++)
        cbs[i] = (struct bcb){.b = &b, .n = i};
    entries_make(f->s, &e);
    assert_int_equal(store_watch_add(f->s, batch_event, &b, NULL), 0);
    assert_false(store_batch_open(f->s));
    assert_int_equal(store_batch_defer(f->s, batch_cb, &cbs[0]), 1); /* nothing to wait for */

    apply_batched(f->s, &e, 1, N_ENTRIES, cbs);
    /* nothing is visible, announced or answered before the commit */
    assert_value(f->s, STORE_SECRETS, "k1", NULL);
    assert_value(f->s, STORE_TASKS, "t1", NULL);
    assert_string_equal(b.log, "");
    /* an entry that does not open leaves the batch as it was */
    assert_int_equal(store_apply_batched(f->s, N_ENTRIES + 1, (const uint8_t *)"junk", 4, NULL, err,
                                         sizeof(err)),
                     -EBADMSG);
    assert_true(store_batch_open(f->s));
    assert_int_equal(store_applied_index(f->s), N_ENTRIES);

    assert_int_equal(store_batch_commit(f->s, err, sizeof(err)), 0);
    assert_false(store_batch_open(f->s));
    /* each proposal's events, then the answer deferred after it, in apply order */
    assert_string_equal(b.log,
                        "C:n1@1 cb1=0 C:t1@2 cb2=0 U:n1@3 cb3=0 cb4=0 cb5=0 "
                        "U:t1@6 C:k1@6 cb6=0 D:n1@7 cb7=0");
    assert_int_equal(store_batch_commit(f->s, err, sizeof(err)), 0); /* nothing open: no-op */
    assert_value(f->s, STORE_NODES, "n1", NULL);
    assert_value(f->s, STORE_SECRETS, "k1", "s3cr3t");
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "s2", "t1");
    assert_index(f->s, STORE_TASKS_BY_SERVICE, "s1", "");
    dump(f->s, want);

    /* A crash after the batch's applies but before its commit (the commit lost): nothing of
     * it is on disk, and raft's replay of the same entries gives the same store. */
    store *c = open_store(f->dir2, CLUSTER, &f->dek);
    struct blog cb_log = {0};
    for (int i = 0; i <= N_ENTRIES; i++)
        cbs[i] = (struct bcb){.b = &cb_log, .n = i};
    apply_batched(c, &e, 1, 3, NULL);
    assert_int_equal(store_batch_commit(c, err, sizeof(err)), 0); /* 1..3 committed */
    apply_batched(c, &e, 4, N_ENTRIES, cbs);
    store_close(c);                                   /* the crash: 4..7 were never committed */
    assert_int_equal(cb_log.canceled, N_ENTRIES - 3); /* their proposers are not answered OK */
    c = open_store(f->dir2, CLUSTER, &f->dek);
    assert_int_equal(store_applied_index(c), 3);
    assert_value(c, STORE_NODES, "n1", "two");
    assert_value(c, STORE_SECRETS, "k1", NULL);
    for (int i = 1; i <= N_ENTRIES; i++) {
        uint64_t rid = 0;
        int r = store_apply_batched(c, (uint64_t)i, e.buf[i], e.len[i], &rid, err, sizeof(err));
        assert_int_equal(r, i <= 3 ? 1 : e.want[i]); /* 1..3 skipped unopened */
        assert_int_equal(rid, i <= 3 ? 0 : 100 + i);
    }
    assert_int_equal(store_batch_commit(c, err, sizeof(err)), 0);
    assert_int_equal(store_applied_index(c), N_ENTRIES);
    dump(c, got);
    assert_string_equal(got, want);
    assert_index(c, STORE_TASKS_BY_SERVICE, "s2", "t1");
    store_close(c);
    c = open_store(f->dir2, CLUSTER, &f->dek);
    assert_int_equal(store_applied_index(c), N_ENTRIES);
    dump(c, got);
    assert_string_equal(got, want);
    store_close(c);

    /* the same entries applied one commit each give the same store too */
    rm_rf(f->dir2);
    c = open_store(f->dir2, CLUSTER, &f->dek);
    for (int i = 1; i <= N_ENTRIES; i++)
        assert_int_equal(store_apply(c, (uint64_t)i, e.buf[i], e.len[i], NULL, err, sizeof(err)),
                         e.want[i]);
    assert_false(store_batch_open(c));
    dump(c, got);
    assert_string_equal(got, want);
    store_close(c);
    entries_free(&e);
}

static void test_batch_snapshot_and_apply_commit(void **state)
{
    struct fix *f = *state;
    struct blog b = {0};
    struct bcb cb = {.b = &b, .n = 1};
    struct entries e;
    char err[256] = "", want[4096], got[4096];
    uint8_t *snap = NULL;
    size_t snap_len = 0;

    entries_make(f->s, &e);
    apply_batched(f->s, &e, 1, 3, NULL);
    assert_int_equal(store_batch_defer(f->s, batch_cb, &cb), 0);
    /* a snapshot holds everything applied: it commits the batch first */
    assert_int_equal(store_snapshot(f->s, &snap, &snap_len), 0);
    assert_false(store_batch_open(f->s));
    assert_string_equal(b.log, "cb1=0");
    assert_int_equal(store_sync(f->s), 0);

    /* a plain store_apply commits an open batch with its own proposal */
    apply_batched(f->s, &e, 4, 5, NULL);
    assert_int_equal(store_apply(f->s, 6, e.buf[6], e.len[6], NULL, err, sizeof(err)), 0);
    assert_false(store_batch_open(f->s));
    reopen(f);
    assert_int_equal(store_applied_index(f->s), 6);
    assert_value(f->s, STORE_SECRETS, "k1", "s3cr3t");

    /* restoring commits an open batch, then replaces everything with the snapshot */
    apply_batched(f->s, &e, 7, 7, NULL);
    assert_int_equal(store_restore(f->s, snap, snap_len, err, sizeof(err)), 0);
    assert_false(store_batch_open(f->s));
    assert_int_equal(store_applied_index(f->s), 3);
    store *c = open_store(f->dir2, CLUSTER, &f->dek);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(store_apply(c, (uint64_t)i, e.buf[i], e.len[i], NULL, err, sizeof(err)),
                         0);
    dump(c, want);
    dump(f->s, got);
    assert_string_equal(got, want);
    store_close(c);
    free(snap);
    entries_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_creates_private_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_semantics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreach_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_cluster_or_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_value_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_readable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_one_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_snapshot_and_apply_commit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
