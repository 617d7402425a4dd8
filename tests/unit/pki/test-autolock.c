/* pki/ autolock: unlock keys (SWMKEY-1-...) and a manager's keys locked under one — locked
 * state refuses to load without the key, a wrong key is told apart, rotation re-seals, off
 * goes back to clear, and a lock interrupted half-way is finished by the next load. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fileio.h"
#include "helpers.h"

struct fx {
    char dir[64];
    pki_ca *ca;
    char cluster[SW_ID_LEN + 1];
    struct node n;
    struct pki_aead_key kek, dek;
};

static void rm_rf(const char *dir)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void cp_file(const char *from_dir, const char *to_dir, const char *name, const char *to_name)
{
    char a[256], b[256], *data = NULL;
    size_t len;
    assert_int_equal(sw_path_join(a, sizeof(a), from_dir, name), 0);
    assert_int_equal(sw_path_join(b, sizeof(b), to_dir, to_name ? to_name : name), 0);
    assert_int_equal(sw_read_file(a, 1 << 20, &data, &len), 0);
    assert_int_equal(sw_write_file_atomic(b, data, len, 0600), 0);
    free(data);
}

static void write_manager(struct fx *f, const char *dir)
{
    struct pki_node_state st;
    char err[256];
    memset(&st, 0, sizeof(st));
    memcpy(st.node_id, f->n.id, sizeof(st.node_id));
    memcpy(st.cluster_id, f->cluster, sizeof(st.cluster_id));
    st.role = PKI_ROLE_MANAGER;
    st.raft_id = 7;
    sw_addr_parse("127.0.0.1:2377", -1, 0, &st.listen_addr);
    st.advertise_addr = st.listen_addr;
    snprintf(st.hostname, sizeof(st.hostname), "m1");
    st.kek = f->kek;
    st.dek = f->dek;
    st.node_key = f->n.key;
    st.node_cert_pem = f->n.cert;
    st.root_ca_pem = (char *)pki_ca_cert_pem(f->ca);
    assert_int_equal(pki_node_state_write_keys(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(pki_node_state_save_conf(dir, &st, err, sizeof(err)), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/swarmd-autolock-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(pki_ca_create(&f->ca), 0);
    assert_int_equal(sw_id_generate(f->cluster), 0);
    assert_int_equal(node_issue(f->ca, f->cluster, PKI_ROLE_MANAGER, 0, &f->n), 0);
    assert_int_equal(pki_aead_key_generate(&f->kek), 0);
    assert_int_equal(pki_aead_key_generate(&f->dek), 0);
    pki_node_state_set_unlock_key(NULL);
    write_manager(f, f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    pki_node_state_set_unlock_key(NULL);
    rm_rf(f->dir);
    pki_key_free(f->n.key);
    free(f->n.cert);
    pki_ca_free(f->ca);
    free(f);
    return 0;
}

/* Loads with the process's current unlock key; returns the status, checks the data key. */
static int load_check(struct fx *f, const char *dir, char *err, size_t size)
{
    struct pki_node_state st;
    int r = pki_node_state_load(dir, &st, err, size);
    if (r < 0)
        return r;
    assert_int_equal(st.dek.id, f->dek.id);
    assert_memory_equal(st.dek.key, f->dek.key, PKI_KEY_BYTES);
    assert_true(pki_cert_matches_key(st.node_cert_pem, strlen(st.node_cert_pem), st.node_key));
    pki_node_state_finish(&st);
    return 0;
}

static bool file_has(const char *dir, const char *name, const void *needle, size_t n)
{
    char path[256], *data = NULL;
    size_t len;
    assert_int_equal(sw_path_join(path, sizeof(path), dir, name), 0);
    assert_int_equal(sw_read_file(path, 1 << 20, &data, &len), 0);
    bool found = memmem(data, len, needle, n) != NULL;
    free(data);
    return found;
}

static void test_key_format(void **state)
{
    (void)state;
    struct pki_unlock_key k, back;
    char s[PKI_UNLOCK_KEY_LEN + 1], err[160];
    assert_int_equal(pki_unlock_key_generate(&k), 0);
    assert_int_equal(pki_unlock_key_format(&k, s), 0);
    assert_int_equal(strlen(s), PKI_UNLOCK_KEY_LEN);
    assert_memory_equal(s, "SWMKEY-1-", 9);
    assert_int_equal(pki_unlock_key_parse(s, &back, err, sizeof(err)), 0);
    assert_true(pki_unlock_key_equal(&k, &back));

    char bad[80];
    snprintf(bad, sizeof(bad), "SWMTKN-1-%s", s + 9);
    assert_int_equal(pki_unlock_key_parse(bad, &back, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "SWMKEY-1-"));
    snprintf(bad, sizeof(bad), "SWMKEY-2-%s", s + 9);
    assert_int_equal(pki_unlock_key_parse(bad, &back, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "version"));
    snprintf(bad, sizeof(bad), "%.*s", (int)PKI_UNLOCK_KEY_LEN - 1, s);
    assert_int_equal(pki_unlock_key_parse(bad, &back, err, sizeof(err)), -EINVAL);
    snprintf(bad, sizeof(bad), "%sa", s);
    assert_int_equal(pki_unlock_key_parse(bad, &back, err, sizeof(err)), -EINVAL);
    snprintf(bad, sizeof(bad), "%s", s);
    bad[20] = 'A';
    assert_int_equal(pki_unlock_key_parse(bad, &back, err, sizeof(err)), -EINVAL);
    /* 50 'z' overflow 256 bits */
    snprintf(bad, sizeof(bad), "SWMKEY-1-%s", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
    assert_int_equal(pki_unlock_key_parse(bad, &back, err, sizeof(err)), -EINVAL);
    assert_int_equal(pki_unlock_key_parse(NULL, &back, err, sizeof(err)), -EINVAL);
}

static void test_lock_cycle(void **state)
{
    struct fx *f = *state;
    struct pki_unlock_key u1, u2;
    char err[256];
    assert_int_equal(pki_unlock_key_generate(&u1), 0);
    assert_int_equal(pki_unlock_key_generate(&u2), 0);
    assert_int_equal(pki_node_state_locked(f->dir), 0);

    /* on: a new KEK, locked; the old one is no longer on disk anywhere */
    assert_int_equal(pki_node_state_set_lock(f->dir, &u1, err, sizeof(err)), 0);
    assert_int_equal(pki_node_state_locked(f->dir), 1);
    assert_true(file_has(f->dir, PKI_NODE_KEK_FILE, "SWLK", 4));
    assert_false(file_has(f->dir, PKI_NODE_KEK_FILE, f->kek.key, PKI_KEY_BYTES));
    assert_false(file_has(f->dir, PKI_NODE_DEK_FILE, f->dek.key, PKI_KEY_BYTES));
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), 0);

    /* a restarted process has no key: locked, and says what to do */
    pki_node_state_set_unlock_key(NULL);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), -ENOKEY);
    assert_non_null(strstr(err, "swarmd unlock"));
    assert_int_equal(pki_node_state_check_unlock_key(f->dir, &u2, err, sizeof(err)), -EKEYREJECTED);
    assert_non_null(strstr(err, "wrong unlock key"));
    assert_int_equal(pki_node_state_check_unlock_key(f->dir, &u1, err, sizeof(err)), 0);
    pki_node_state_set_unlock_key(&u1);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), 0);

    /* rotation: only the new key opens it */
    assert_int_equal(pki_node_state_set_lock(f->dir, &u2, err, sizeof(err)), 0);
    pki_node_state_set_unlock_key(&u1);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), -EKEYREJECTED);
    pki_node_state_set_unlock_key(&u2);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), 0);

    /* off: in clear again, loads without a key */
    assert_int_equal(pki_node_state_set_lock(f->dir, NULL, err, sizeof(err)), 0);
    assert_int_equal(pki_node_state_locked(f->dir), 0);
    pki_node_state_set_unlock_key(NULL);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), 0);

    /* a worker-style write while the process holds a key keeps the lock */
    assert_int_equal(pki_node_state_set_lock(f->dir, &u1, err, sizeof(err)), 0);
    struct pki_node_state st;
    assert_int_equal(pki_node_state_load(f->dir, &st, err, sizeof(err)), 0);
    assert_int_equal(pki_node_state_write_keys(f->dir, &st, err, sizeof(err)), 0);
    pki_node_state_finish(&st);
    assert_int_equal(pki_node_state_locked(f->dir), 1);
}

/* Turning autolock on was interrupted after the data key was re-encrypted under the new
 * KEK and before the node key was: keys/kek is the old KEK in clear, kek.new the new one,
 * locked. Locked it is; with the unlock key the load finishes the change. */
static void test_lock_interrupted(void **state)
{
    struct fx *f = *state;
    struct pki_unlock_key u;
    char err[256], copy[64];
    assert_int_equal(pki_unlock_key_generate(&u), 0);
    snprintf(copy, sizeof(copy), "/tmp/swarmd-autolock-XXXXXX");
    assert_non_null(mkdtemp(copy));
    write_manager(f, copy);
    assert_int_equal(pki_node_state_set_lock(copy, &u, err, sizeof(err)), 0);
    cp_file(copy, f->dir, PKI_NODE_KEK_FILE, PKI_NODE_KEK_NEW_FILE);
    cp_file(copy, f->dir, PKI_NODE_DEK_FILE, NULL);
    rm_rf(copy);

    pki_node_state_set_unlock_key(NULL);
    assert_int_equal(pki_node_state_locked(f->dir), 2);
    assert_true(load_check(f, f->dir, err, sizeof(err)) < 0);
    assert_int_equal(pki_node_state_check_unlock_key(f->dir, &u, err, sizeof(err)), 0);
    pki_node_state_set_unlock_key(&u);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), 0);
    char path[256];
    assert_int_equal(sw_path_join(path, sizeof(path), f->dir, PKI_NODE_KEK_NEW_FILE), 0);
    assert_false(sw_file_exists(path));
    assert_false(file_has(f->dir, PKI_NODE_KEK_FILE, f->kek.key, PKI_KEY_BYTES));
    /* and every key now opens with the locked KEK alone */
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), 0);
    pki_node_state_set_unlock_key(NULL);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), -ENOKEY);
}

/* A damaged locked file is told apart from a missing key. */
static void test_damaged(void **state)
{
    struct fx *f = *state;
    struct pki_unlock_key u;
    char err[256], path[256];
    assert_int_equal(pki_unlock_key_generate(&u), 0);
    assert_int_equal(pki_node_state_set_lock(f->dir, &u, err, sizeof(err)), 0);
    assert_int_equal(sw_path_join(path, sizeof(path), f->dir, PKI_NODE_KEK_FILE), 0);
    assert_int_equal(truncate(path, 30), 0);
    assert_int_equal(load_check(f, f->dir, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "damaged"));
}

/* keys/dek keeps the keys of a data key rotation: retired ones, then the next one. */
static void test_data_keys(void **state)
{
    struct fx *f = *state;
    struct pki_aead_key cur, old[2];
    bool retired[2] = {false, true}; /* given next first: stored retired first */
    char err[256];
    struct pki_node_state st;
    assert_int_equal(pki_aead_key_generate(&cur), 0);
    assert_int_equal(pki_aead_key_generate(&old[0]), 0);
    assert_int_equal(pki_aead_key_generate(&old[1]), 0);
    assert_int_equal(
        pki_node_state_save_deks(f->dir, f->cluster, &cur, old, retired, 2, err, sizeof(err)), 0);
    assert_int_equal(pki_node_state_load(f->dir, &st, err, sizeof(err)), 0);
    assert_int_equal(st.dek.id, cur.id);
    assert_int_equal(st.n_dek_old, 2);
    assert_int_equal(st.n_dek_retired, 1);
    assert_int_equal(st.dek_old[0].id, old[1].id);
    assert_int_equal(st.dek_old[1].id, old[0].id);
    pki_node_state_finish(&st);
    /* locked, the same */
    struct pki_unlock_key u;
    assert_int_equal(pki_unlock_key_generate(&u), 0);
    assert_int_equal(pki_node_state_set_lock(f->dir, &u, err, sizeof(err)), 0);
    assert_int_equal(pki_node_state_load(f->dir, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n_dek_old, 2);
    assert_memory_equal(st.dek_old[1].key, old[0].key, PKI_KEY_BYTES);
    pki_node_state_finish(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_format),
        cmocka_unit_test_setup_teardown(test_lock_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
