/* store/ data key rotation: a second key opens nothing until it is added; once current it
 * seals new proposals, values and snapshots while entries sealed under the old key still
 * apply; re-sealing leaves no value under the old key, after which it can be dropped and
 * the store reopens with the new key alone. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fileio.h"
#include "store/store.h"

static const char cluster[] = "0123456789abcdefghijklmno";

struct fix {
    char dir[64];
    struct pki_aead_key k1, k2;
    store *s;
};

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static store *open_with(struct fix *f, const struct pki_aead_key *k, int *ret_r)
{
    store *s = NULL;
    char err[256];
    *ret_r = store_open(f->dir, cluster, k, &s, err, sizeof(err));
    return s;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    int r;
    snprintf(f->dir, sizeof(f->dir), "/tmp/swarmd-keys-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(pki_aead_key_generate(&f->k1), 0);
    assert_int_equal(pki_aead_key_generate(&f->k2), 0);
    f->s = open_with(f, &f->k1, &r);
    assert_int_equal(r, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    if (f->s)
        store_close(f->s);
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* Seal a proposal creating secret id=value with s's current key. */
static void seal_secret(store *s, const char *id, const char *value, uint8_t **buf, size_t *len)
{
    struct store_action a = {.kind = STORE_CREATE,
                             .table = STORE_SECRETS,
                             .id = id,
                             .value = (const uint8_t *)value,
                             .len = strlen(value)};
    assert_int_equal(store_proposal_seal(s, 1, &a, 1, buf, len), 0);
}

static void apply(store *s, uint64_t index, uint8_t *buf, size_t len, int want)
{
    char err[256];
    int r = store_apply(s, index, buf, len, NULL, err, sizeof(err));
    if (r != want)
        fail_msg("apply %llu: %d (%s), wanted %d", (unsigned long long)index, r, err, want);
    free(buf);
}

static void assert_secret(store *s, const char *id, const char *want)
{
    store_txn *t;
    uint8_t *v = NULL;
    size_t n = 0;
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_get(t, STORE_SECRETS, id, &v, &n), 0);
    store_read_end(t);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(v, want, n);
    free(v);
}

static void test_rotation(void **state)
{
    struct fix *f = *state;
    uint8_t *buf, *old_entry, *snap;
    size_t len, old_len, snap_len;
    char err[256];
    int r;

    seal_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa1", "one", &buf, &len);
    apply(f->s, 1, buf, len, 0);
    /* an entry sealed under k1 that is applied only after the switch (a lagging replica) */
    seal_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa2", "two", &old_entry, &old_len);

    assert_int_equal(store_use_key(f->s, f->k2.id), -ENOKEY);
    assert_int_equal(store_add_key(f->s, &f->k2, false), 0);
    assert_int_equal(store_add_key(f->s, &f->k2, false), -EEXIST);
    assert_int_equal(store_key_id(f->s), f->k1.id);
    assert_int_equal(store_use_key(f->s, f->k2.id), 0);
    assert_int_equal(store_key_id(f->s), f->k2.id);

    apply(f->s, 2, old_entry, old_len, 0);
    seal_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa3", "three", &buf, &len);
    uint32_t id = 0;
    assert_int_equal(pki_sealed_key_id(buf, len, &id), 0);
    assert_int_equal(id, f->k2.id);
    apply(f->s, 3, buf, len, 0);
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa1", "one");
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa2", "two");
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa3", "three");

    /* re-seal: the values k1 sealed (one; two was written after the switch) */
    r = store_reseal(f->s, err, sizeof(err));
    assert_int_equal(r, 1);
    assert_int_equal(store_reseal(f->s, err, sizeof(err)), 0);
    struct pki_aead_key old[STORE_OLD_KEYS_MAX];
    assert_int_equal(store_old_keys(f->s, old, NULL, STORE_OLD_KEYS_MAX), 1);
    assert_int_equal(old[0].id, f->k1.id);
    assert_int_equal(store_snapshot(f->s, &snap, &snap_len), 0);
    assert_int_equal(pki_sealed_key_id(snap, snap_len, &id), 0);
    assert_int_equal(id, f->k2.id);
    /* the next key of a rotation under way is not dropped with the retired ones */
    struct pki_aead_key k3;
    bool retired[STORE_OLD_KEYS_MAX];
    assert_int_equal(pki_aead_key_generate(&k3), 0);
    assert_int_equal(store_add_key(f->s, &k3, false), 0);
    store_drop_old_keys(f->s);
    assert_int_equal(store_old_keys(f->s, old, retired, STORE_OLD_KEYS_MAX), 1);
    assert_int_equal(old[0].id, k3.id);
    assert_false(retired[0]);
    assert_int_equal(store_use_key(f->s, k3.id), 0);
    assert_int_equal(store_old_keys(f->s, old, retired, STORE_OLD_KEYS_MAX), 1);
    assert_int_equal(old[0].id, f->k2.id);
    assert_true(retired[0]);
    assert_int_equal(store_use_key(f->s, f->k2.id), 0); /* back, for what follows */
    store_drop_old_keys(f->s);
    assert_int_equal(store_old_keys(f->s, old, NULL, STORE_OLD_KEYS_MAX), 0);
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa1", "one");
    store_close(f->s);

    /* the old key alone no longer opens the store; the new one alone does */
    f->s = open_with(f, &f->k1, &r);
    assert_true(r < 0);
    f->s = open_with(f, &f->k2, &r);
    assert_int_equal(r, 0);
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa1", "one");
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa3", "three");
    assert_int_equal(store_restore(f->s, snap, snap_len, err, sizeof(err)), 0);
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaa2", "two");
    free(snap);
}

/* A store that never got the next key refuses an entry sealed under it: no silent skip. */
static void test_unknown_key(void **state)
{
    struct fix *f = *state;
    char dir2[64];
    int r;
    uint8_t *buf;
    size_t len;
    snprintf(dir2, sizeof(dir2), "/tmp/swarmd-keys-XXXXXX");
    assert_non_null(mkdtemp(dir2));
    store *other = NULL;
    char err[256];
    assert_int_equal(store_open(dir2, cluster, &f->k1, &other, err, sizeof(err)), 0);
    assert_int_equal(store_add_key(other, &f->k2, false), 0);
    assert_int_equal(store_use_key(other, f->k2.id), 0);
    seal_secret(other, "aaaaaaaaaaaaaaaaaaaaaaaa9", "nine", &buf, &len);
    r = store_apply(f->s, 1, buf, len, NULL, err, sizeof(err));
    free(buf);
    assert_true(r < 0);
    assert_non_null(strstr(err, "data key"));
    store_close(other);
    rm_rf(dir2);
    /* a full key ring says so */
    for (int i = 0; i < STORE_OLD_KEYS_MAX; i++) {
        struct pki_aead_key k;
        assert_int_equal(pki_aead_key_generate(&k), 0);
        assert_int_equal(store_add_key(f->s, &k, false), 0);
    }
    struct pki_aead_key k;
    assert_int_equal(pki_aead_key_generate(&k), 0);
    assert_int_equal(store_add_key(f->s, &k, false), -E2BIG);
}

/* Stopped after the switch, before the re-seal: the key check is still under the old key;
 * opened with the new key current and the old one held, the store opens and reads. */
static void test_reopen_before_reseal(void **state)
{
    struct fix *f = *state;
    uint8_t *buf;
    size_t len;
    int r;
    seal_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaaa", "one", &buf, &len);
    apply(f->s, 1, buf, len, 0);
    assert_int_equal(store_add_key(f->s, &f->k2, false), 0);
    assert_int_equal(store_use_key(f->s, f->k2.id), 0);
    store_close(f->s);
    f->s = open_with(f, &f->k2, &r);
    assert_true(r < 0); /* the new key alone does not open it */
    store *s = NULL;
    char err[256];
    bool retired = true;
    assert_int_equal(
        store_open_keys(f->dir, cluster, &f->k2, &f->k1, &retired, 1, 0, &s, err, sizeof(err)), 0);
    f->s = s;
    assert_secret(f->s, "aaaaaaaaaaaaaaaaaaaaaaaaa", "one");
    assert_int_equal(store_reseal(f->s, err, sizeof(err)), 1);
}

static void write_mark(struct fix *f, const char *boot)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/open.boot", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(boot, fp);
    fclose(fp);
}

/* A rebuildable store (not flushed): found open from another boot (the machine went down
 * while it was open) it is emptied, for raft to rebuild; open from this boot (only the
 * process died: its writes are whole in the page cache) it is kept. */
static void test_rebuildable(void **state)
{
    struct fix *f = *state;
    uint8_t *buf;
    size_t len;
    char err[256], path[128], *boot = NULL;
    store *s = NULL;
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open_keys(f->dir, cluster, &f->k1, NULL, NULL, 0, STORE_OPEN_REBUILDABLE,
                                     &s, err, sizeof(err)),
                     0);
    assert_false(store_was_reset(s));
    snprintf(path, sizeof(path), "%s/open.boot", f->dir);
    assert_true(access(path, F_OK) == 0); /* marked open */
    seal_secret(s, "aaaaaaaaaaaaaaaaaaaaaaaaa", "one", &buf, &len);
    apply(s, 1, buf, len, 0);
    store_close(s);
    assert_true(access(path, F_OK) != 0); /* a clean close removes the mark */

    /* the process died (same boot): kept */
    assert_int_equal(sw_read_file("/proc/sys/kernel/random/boot_id", 128, &boot, NULL), 0);
    write_mark(f, boot);
    free(boot);
    assert_int_equal(store_open_keys(f->dir, cluster, &f->k1, NULL, NULL, 0, STORE_OPEN_REBUILDABLE,
                                     &s, err, sizeof(err)),
                     0);
    assert_false(store_was_reset(s));
    assert_int_equal(store_applied_index(s), 1);
    assert_secret(s, "aaaaaaaaaaaaaaaaaaaaaaaaa", "one");
    store_close(s);

    /* the machine went down while it was open: emptied */
    write_mark(f, "00000000-0000-0000-0000-000000000000\n");
    assert_int_equal(store_open_keys(f->dir, cluster, &f->k1, NULL, NULL, 0, STORE_OPEN_REBUILDABLE,
                                     &s, err, sizeof(err)),
                     0);
    assert_true(store_was_reset(s));
    assert_int_equal(store_applied_index(s), 0);
    f->s = s;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_before_reseal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuildable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
