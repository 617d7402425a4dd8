/* pki/ node state dir: a worker's state written and loaded back, a renewed certificate
 * replacing the old one, and a renewal interrupted between its two renames finished by
 * the next load (never a key that does not match its certificate). */
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
};

static int rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/swarmd-nodestate-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(pki_ca_create(&f->ca), 0);
    assert_int_equal(sw_id_generate(f->cluster), 0);
    assert_int_equal(node_issue(f->ca, f->cluster, PKI_ROLE_WORKER, 0, &f->n), 0);

    struct pki_node_state st;
    memset(&st, 0, sizeof(st));
    memcpy(st.node_id, f->n.id, sizeof(st.node_id));
    memcpy(st.cluster_id, f->cluster, sizeof(st.cluster_id));
    st.role = PKI_ROLE_WORKER;
    sw_addr_parse("127.0.0.1:2377", -1, 0, &st.listen_addr);
    st.advertise_addr = st.listen_addr;
    snprintf(st.hostname, sizeof(st.hostname), "w1");
    assert_int_equal(pki_aead_key_generate(&st.kek), 0);
    st.node_key = f->n.key;
    st.node_cert_pem = f->n.cert;
    st.root_ca_pem = (char *)pki_ca_cert_pem(f->ca);
    assert_int_equal(pki_node_state_write_keys(f->dir, &st, err, sizeof(err)), 0);
    assert_int_equal(pki_node_state_save_conf(f->dir, &st, err, sizeof(err)), 0);
    pki_aead_key_clear(&st.kek);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rm_rf(f->dir);
    pki_key_free(f->n.key);
    free(f->n.cert);
    pki_ca_free(f->ca);
    free(f);
    return 0;
}

static char *load_cert(struct fx *f, pki_key **ret_key)
{
    struct pki_node_state st;
    char err[256];
    int r = pki_node_state_load(f->dir, &st, err, sizeof(err));
    if (r < 0)
        fail_msg("load: %s", err);
    char *cert = strdup(st.node_cert_pem);
    assert_true(pki_cert_matches_key(cert, strlen(cert), st.node_key));
    if (ret_key) {
        assert_int_equal(pki_key_dup(st.node_key, ret_key), 0);
    }
    pki_node_state_finish(&st);
    return cert;
}

static void path_in(struct fx *f, const char *name, char *buf, size_t size)
{
    assert_int_equal(sw_path_join(buf, size, f->dir, name), 0);
}

static void test_load_written(void **state)
{
    struct fx *f = *state;
    char *cert = load_cert(f, NULL);
    assert_string_equal(cert, f->n.cert);
    free(cert);
}

static void test_replace(void **state)
{
    struct fx *f = *state;
    char err[256], path[256];
    struct node n2 = {0};
    assert_int_equal(node_issue(f->ca, f->cluster, PKI_ROLE_WORKER, 0, &n2), 0);
    assert_int_equal(pki_node_state_replace_cert(f->dir, n2.cert, n2.key, err, sizeof(err)), 0);
    char *cert = load_cert(f, NULL);
    assert_string_equal(cert, n2.cert);
    free(cert);
    path_in(f, PKI_NODE_CERT_NEW_FILE, path, sizeof(path));
    assert_false(sw_file_exists(path));
    path_in(f, PKI_NODE_KEY_NEW_FILE, path, sizeof(path));
    assert_false(sw_file_exists(path));
    /* the key is stored encrypted, never in the clear */
    char *data = NULL;
    path_in(f, PKI_NODE_KEY_FILE, path, sizeof(path));
    assert_int_equal(sw_read_file(path, 1 << 20, &data, NULL), 0);
    assert_non_null(strstr(data, "ENCRYPTED PRIVATE KEY"));
    free(data);
    /* a dir without a KEK: refused with the reason, nothing replaced */
    path_in(f, PKI_NODE_KEK_FILE, path, sizeof(path));
    char *kek = NULL;
    size_t kek_len;
    assert_int_equal(sw_read_file(path, 4096, &kek, &kek_len), 0);
    assert_int_equal(unlink(path), 0);
    assert_true(pki_node_state_replace_cert(f->dir, f->n.cert, f->n.key, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "key-encryption key"));
    assert_int_equal(sw_write_file_atomic(path, kek, kek_len, 0600), 0);
    free(kek);
    cert = load_cert(f, NULL);
    assert_string_equal(cert, n2.cert);
    free(cert);
    pki_key_free(n2.key);
    free(n2.cert);
}

/* Interrupted after the key was renamed: the new key sits next to the old certificate and
 * the new certificate is still in .new; the load finishes the swap. */
static void test_interrupted_after_key(void **state)
{
    struct fx *f = *state;
    char err[256], cpath[256], npath[256];
    struct node n2 = {0};
    assert_int_equal(node_issue(f->ca, f->cluster, PKI_ROLE_WORKER, 0, &n2), 0);
    assert_int_equal(pki_node_state_replace_cert(f->dir, n2.cert, n2.key, err, sizeof(err)), 0);
    path_in(f, PKI_NODE_CERT_FILE, cpath, sizeof(cpath));
    path_in(f, PKI_NODE_CERT_NEW_FILE, npath, sizeof(npath));
    assert_int_equal(rename(cpath, npath), 0);
    assert_int_equal(sw_write_file_atomic(cpath, f->n.cert, strlen(f->n.cert), 0644), 0);

    char *cert = load_cert(f, NULL);
    assert_string_equal(cert, n2.cert);
    free(cert);
    assert_false(sw_file_exists(npath));
    pki_key_free(n2.key);
    free(n2.cert);
}

/* Interrupted before the key was renamed: the old pair is whole; stale .new files are
 * ignored. A .new certificate that does not match the key is never adopted. */
static void test_interrupted_before_key(void **state)
{
    struct fx *f = *state;
    char npath[256], cpath[256];
    struct node n2 = {0};
    assert_int_equal(node_issue(f->ca, f->cluster, PKI_ROLE_WORKER, 0, &n2), 0);
    path_in(f, PKI_NODE_CERT_NEW_FILE, npath, sizeof(npath));
    assert_int_equal(sw_write_file_atomic(npath, n2.cert, strlen(n2.cert), 0644), 0);
    char *cert = load_cert(f, NULL);
    assert_string_equal(cert, f->n.cert);
    free(cert);

    /* a certificate that matches neither: refused, the .new one is not taken */
    path_in(f, PKI_NODE_CERT_FILE, cpath, sizeof(cpath));
    assert_int_equal(sw_write_file_atomic(cpath, n2.cert, strlen(n2.cert), 0644), 0);
    struct pki_node_state st;
    char err[256];
    assert_int_equal(pki_node_state_load(f->dir, &st, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "does not match"));
    pki_key_free(n2.key);
    free(n2.cert);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_after_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_before_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
