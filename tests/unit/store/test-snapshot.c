/* store/ snapshots: values travel sealed (values an older data key sealed are sealed again
 * under the current one), nothing readable in the blob, format 1 (plaintext values) still
 * restores, task indexes rebuilt on restore. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "proto/swarm.pb-c.h"
#include "store/store.h"

#define CLUSTER "c0000000000000000000000002"

struct fix {
    char dir[64], dir2[64];
    struct pki_aead_key k1, k2;
    store *a;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static store *open_store(const char *dir, const struct pki_aead_key *k)
{
    char err[256] = "";
    store *s = NULL;
    if (store_open(dir, CLUSTER, k, &s, err, sizeof(err)) < 0)
        fail_msg("store_open %s: %s", dir, err);
    return s;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test-snap-XXXXXX");
    snprintf(f->dir2, sizeof(f->dir2), "/tmp/test-snap-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_non_null(mkdtemp(f->dir2));
    assert_int_equal(pki_aead_key_generate(&f->k1), 0);
    do
        assert_int_equal(pki_aead_key_generate(&f->k2), 0);
    while (f->k2.id == f->k1.id);
    f->a = open_store(f->dir, &f->k1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    store_close(f->a);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    nftw(f->dir2, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static uint8_t *task_value(const char *id, const char *service, const char *node, size_t *ret_len)
{
    Swarm__Task t = SWARM__TASK__INIT;
    t.id = (char *)id;
    t.service_id = (char *)service;
    t.node_id = (char *)node;
    size_t len = swarm__task__get_packed_size(&t);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    swarm__task__pack(&t, buf);
    *ret_len = len;
    return buf;
}

static void apply(store *s, uint64_t index, const struct store_action *a, size_t n)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256] = "";
    assert_int_equal(store_proposal_seal(s, index, a, n, &buf, &len), 0);
    assert_int_equal(store_apply(s, index, buf, len, NULL, err, sizeof(err)), 0);
    free(buf);
}

static char *get(store *s, enum store_table t, const char *id)
{
    store_txn *txn = NULL;
    uint8_t *v = NULL;
    size_t len = 0;
    assert_int_equal(store_read_begin(s, &txn), 0);
    int r = store_get(txn, t, id, &v, &len);
    store_read_end(txn);
    if (r == -ENOENT)
        return NULL;
    assert_int_equal(r, 0);
    char *out = strndup((const char *)v, len);
    free(v);
    return out;
}

static void assert_value(store *s, enum store_table t, const char *id, const char *want)
{
    char *got = get(s, t, id);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static int count_one(const char *id, const uint8_t *value, size_t len, void *userdata)
{
    (void)id, (void)value, (void)len;
    (*(int *)userdata)++;
    return 0;
}

static int count_index(store *s, enum store_index idx, const char *key)
{
    store_txn *txn = NULL;
    int n = 0;
    assert_int_equal(store_read_begin(s, &txn), 0);
    assert_int_equal(store_foreach_index(txn, idx, key, count_one, &n), 0);
    store_read_end(txn);
    return n;
}

static bool contains(const uint8_t *buf, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, needle, n) == 0)
            return true;
    return false;
}

/* A value sealed before a data key rotation travels re-sealed under the current key: a store
 * that holds only that key restores it (and nothing readable is in the blob). */
static void test_snapshot_after_rotation(void **state)
{
    struct fix *f = *state;
    char err[256] = "";
    size_t tlen = 0;
    uint8_t *t1 = task_value("t1", "svc1", "node1", &tlen);
    struct store_action before[] = {
        {STORE_CREATE, STORE_SECRETS, "k1", (const uint8_t *)"old-s3cr3t", 10},
        {STORE_CREATE, STORE_TASKS, "t1", t1, tlen},
    };
    apply(f->a, 1, before, 2);
    assert_int_equal(store_add_key(f->a, &f->k2, false), 0);
    assert_int_equal(store_use_key(f->a, f->k2.id), 0);
    struct store_action after[] = {
        {STORE_CREATE, STORE_SECRETS, "k2", (const uint8_t *)"new-s3cr3t", 10}};
    apply(f->a, 2, after, 1);

    uint8_t *snap = NULL;
    size_t snap_len = 0;
    assert_int_equal(store_snapshot(f->a, &snap, &snap_len), 0);
    assert_false(contains(snap, snap_len, "s3cr3t"));
    assert_false(contains(snap, snap_len, "svc1"));

    store *b = open_store(f->dir2, &f->k2); /* never held k1 */
    assert_int_equal(store_restore(b, snap, snap_len, err, sizeof(err)), 0);
    assert_int_equal(store_applied_index(b), 2);
    assert_value(b, STORE_SECRETS, "k1", "old-s3cr3t");
    assert_value(b, STORE_SECRETS, "k2", "new-s3cr3t");
    assert_int_equal(count_index(b, STORE_TASKS_BY_SERVICE, "svc1"), 1);
    assert_int_equal(count_index(b, STORE_TASKS_BY_NODE, "node1"), 1);
    store_close(b);

    /* a store that holds neither key refuses it, naming the object */
    struct pki_aead_key k3;
    assert_int_equal(pki_aead_key_generate(&k3), 0);
    nftw(f->dir2, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    b = open_store(f->dir2, &k3);
    assert_int_not_equal(store_restore(b, snap, snap_len, err, sizeof(err)), 0);
    store_close(b);
    free(snap);
    free(t1);
}

/* Format 1 snapshots (plaintext values in the sealed blob, no magic) still restore. */
static void test_restore_format1(void **state)
{
    struct fix *f = *state;
    char err[256] = "", aad[128];
    size_t tlen = 0;
    uint8_t *t1 = task_value("t1", "svc1", "node1", &tlen);
    Swarm__StoreAction objs[2], *ptrs[2];
    for (int i = 0; i < 2; i++) {
        swarm__store_action__init(&objs[i]);
        objs[i].kind = SWARM__STORE_ACTION_KIND__ACTION_PUT;
        ptrs[i] = &objs[i];
    }
    objs[0].table = SWARM__STORE_TABLE__TABLE_NODES;
    objs[0].id = "n1";
    objs[0].value.data = (uint8_t *)"node-one";
    objs[0].value.len = 8;
    objs[1].table = SWARM__STORE_TABLE__TABLE_TASKS;
    objs[1].id = "t1";
    objs[1].value.data = t1;
    objs[1].value.len = tlen;
    Swarm__StoreSnapshot snap = SWARM__STORE_SNAPSHOT__INIT;
    snap.applied_index = 9;
    snap.n_objects = 2;
    snap.objects = ptrs;
    size_t packed_len = swarm__store_snapshot__get_packed_size(&snap);
    uint8_t *packed = malloc(packed_len);
    assert_non_null(packed);
    swarm__store_snapshot__pack(&snap, packed);
    int n = snprintf(aad, sizeof(aad), "snapshot/%s", CLUSTER);
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(pki_seal(&f->k1, aad, (size_t)n, packed, packed_len, &blob, &blob_len), 0);

    assert_int_equal(store_restore(f->a, blob, blob_len, err, sizeof(err)), 0);
    assert_int_equal(store_applied_index(f->a), 9);
    assert_value(f->a, STORE_NODES, "n1", "node-one");
    assert_int_equal(count_index(f->a, STORE_TASKS_BY_SERVICE, "svc1"), 1);
    /* and a format 2 snapshot of it restores to the same content */
    uint8_t *snap2 = NULL;
    size_t snap2_len = 0;
    assert_int_equal(store_snapshot(f->a, &snap2, &snap2_len), 0);
    store *b = open_store(f->dir2, &f->k1);
    assert_int_equal(store_restore(b, snap2, snap2_len, err, sizeof(err)), 0);
    assert_value(b, STORE_NODES, "n1", "node-one");
    assert_int_equal(count_index(b, STORE_TASKS_BY_NODE, "node1"), 1);
    store_close(b);
    free(snap2);
    free(blob);
    free(packed);
    free(t1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_after_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_format1, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
