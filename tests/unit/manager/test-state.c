/* manager/ state dir: raft snapshots and resume, repeated resumes, damaged or foreign
 * state, the state-dir lock, and no secret in the clear on disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "harness.h"
#include "tests.h"

/* Resume keeps the stored addresses and hostname. */
static void resume_cfg(struct mt *t)
{
    t->cfg.listen_addr_set = false;
    t->cfg.advertise_addr_set = false;
    t->cfg.hostname = NULL;
}

static unsigned count_snapshots(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, MGR_RAFT_DIR);
    DIR *d = opendir(path);
    assert_non_null(d);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "snapshot-", 9) == 0 && !strstr(e->d_name, ".meta"))
            n++;
    closedir(d);
    return n;
}

static Swarm__Node *self_node(struct mt *t)
{
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    Swarm__Node *found = NULL;
    for (size_t i = 0; i < l->n_nodes; i++)
        if (strcmp(l->nodes[i]->id, mgr_node_id(t->m)) == 0) {
            found = l->nodes[i];
            l->nodes[i] = l->nodes[--l->n_nodes];
            break;
        }
    swarm__list_nodes_response__free_unpacked(l, NULL);
    assert_non_null(found);
    return found;
}

/* ------------------------------------------------------------------ snapshots */

static void test_snapshots_and_resume(void **state)
{
    struct mt *t = *state;
    char w[PKI_TOKEN_LEN + 1], m[PKI_TOKEN_LEN + 1], cur[PKI_TOKEN_LEN + 1];
    char node_id[SW_ID_LEN + 1];
    t->cfg.snapshot_threshold = 4;
    t->cfg.snapshot_trailing = 2;
    mt_start_ok(t, true);
    snprintf(node_id, sizeof(node_id), "%s", mgr_node_id(t->m));

    for (int i = 0; i < 30; i++)
        mt_join_token(t, i % 2, true, i % 2 ? m : w, sizeof(w));
    assert_true(count_snapshots(t->dir) >= 1);
    uint64_t applied = store_applied_index(t->m->store);
    assert_true(applied >= 31);

    for (int round = 0; round < 2; round++) {
        mt_stop(t);
        resume_cfg(t);
        mt_start_ok(t, false);
        assert_string_equal(mgr_node_id(t->m), node_id);
        /* the store came back through the snapshot and the log after it */
        assert_true(store_applied_index(t->m->store) > applied);
        mt_join_token(t, 0, false, cur, sizeof(cur));
        assert_string_equal(cur, w);
        mt_join_token(t, 1, false, cur, sizeof(cur));
        assert_string_equal(cur, m);
        Swarm__ListNodesResponse *l = mt_list_nodes(t);
        assert_int_equal(l->n_nodes, 1);
        assert_string_equal(l->nodes[0]->id, node_id);
        assert_int_equal(l->nodes[0]->state, SWARM__NODE_STATE__NODE_READY);
        assert_true(l->nodes[0]->manager_status->leader);
        swarm__list_nodes_response__free_unpacked(l, NULL);
        /* the CA key survived the snapshot: the CA can be reloaded */
        assert_int_equal(mgr__ca_reload(t->m), 0);

        /* more writes after the restore, enough for further snapshots */
        for (int i = 0; i < 9; i++)
            mt_join_token(t, i % 2, true, i % 2 ? m : w, sizeof(w));
        mt_join_token(t, 0, false, cur, sizeof(cur));
        assert_string_equal(cur, w);
        applied = store_applied_index(t->m->store);
    }
    mt_stop(t);
    mt_start_ok(t, false);
    mt_join_token(t, 0, false, cur, sizeof(cur));
    assert_string_equal(cur, w);
    mt_join_token(t, 1, false, cur, sizeof(cur));
    assert_string_equal(cur, m);
}

/* ------------------------------------------------------------------ resume */

static void test_resume_keeps_state(void **state)
{
    struct mt *t = *state;
    char w0[PKI_TOKEN_LEN + 1], m0[PKI_TOKEN_LEN + 1], cur[PKI_TOKEN_LEN + 1];
    char addr0[80], addr[80];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, w0, sizeof(w0));
    mt_join_token(t, 1, false, m0, sizeof(m0));
    mgr_listen_addr(t->m, addr0, sizeof(addr0));
    Swarm__GetClusterResponse *c0 = mt_get_cluster(t);
    Swarm__Node *n0 = self_node(t);
    uint64_t applied = store_applied_index(t->m->store);
    uint64_t updated = n0->meta->updated_at;
    resume_cfg(t);

    for (int i = 0; i < 3; i++) {
        mt_stop(t);
        mt_start_ok(t, false);
        /* same port as the first run (an ephemeral port is kept for good) */
        mgr_listen_addr(t->m, addr, sizeof(addr));
        assert_string_equal(addr, addr0);
        assert_true(store_applied_index(t->m->store) >= applied);
        applied = store_applied_index(t->m->store);

        Swarm__GetClusterResponse *c = mt_get_cluster(t);
        assert_string_equal(c->cluster->id, c0->cluster->id);
        assert_int_equal(c->cluster->meta->created_at, c0->cluster->meta->created_at);
        assert_int_equal(c->cluster->meta->updated_at, c0->cluster->meta->updated_at);
        assert_string_equal(c->cluster->root_ca->ca_cert_pem, c0->cluster->root_ca->ca_cert_pem);
        assert_string_equal(c->cluster->root_ca->digest, c0->cluster->root_ca->digest);
        assert_string_equal(c->worker_token_digest, c0->worker_token_digest);
        assert_string_equal(c->manager_token_digest, c0->manager_token_digest);
        assert_int_equal(c->ca_cert_not_after, c0->ca_cert_not_after);
        swarm__get_cluster_response__free_unpacked(c, NULL);
        mt_join_token(t, 0, false, cur, sizeof(cur));
        assert_string_equal(cur, w0);
        mt_join_token(t, 1, false, cur, sizeof(cur));
        assert_string_equal(cur, m0);

        Swarm__ListNodesResponse *l = mt_list_nodes(t);
        assert_int_equal(l->n_nodes, 1);
        swarm__list_nodes_response__free_unpacked(l, NULL);
        Swarm__Node *n = self_node(t);
        assert_string_equal(n->id, n0->id);
        assert_string_equal(n->hostname, n0->hostname);
        assert_string_equal(n->addr, n0->addr);
        assert_string_equal(n->certificate->cert_pem, n0->certificate->cert_pem);
        assert_int_equal(n->manager_status->raft_id, n0->manager_status->raft_id);
        assert_int_equal(n->state, SWARM__NODE_STATE__NODE_READY);
        assert_true(n->manager_status->leader);
        assert_int_equal(n->meta->created_at, n0->meta->created_at);
        assert_true(n->meta->updated_at > updated);
        updated = n->meta->updated_at;
        swarm__node__free_unpacked(n, NULL);
    }
    swarm__get_cluster_response__free_unpacked(c0, NULL);

    /* a new hostname on resume is recorded and kept by later resumes */
    mt_stop(t);
    t->cfg.hostname = "mt-host-2";
    mt_start_ok(t, false);
    Swarm__Node *n = self_node(t);
    assert_string_equal(n->hostname, "mt-host-2");
    assert_int_equal(n->meta->created_at, n0->meta->created_at);
    swarm__node__free_unpacked(n, NULL);
    mt_stop(t);
    t->cfg.hostname = NULL;
    mt_start_ok(t, false);
    n = self_node(t);
    assert_string_equal(n->hostname, "mt-host-2");
    swarm__node__free_unpacked(n, NULL);
    swarm__node__free_unpacked(n0, NULL);
}

/* Nothing in the state dir is readable by others: keys, node.conf, the socket. */
static void test_permissions(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    static const struct {
        const char *name;
        unsigned mode;
    } want[] = {
        {".", 0700},
        {MGR_KEYS_DIR, 0700},
        {MGR_KEK_FILE, 0600},
        {MGR_DEK_FILE, 0600},
        {MGR_NODE_KEY_FILE, 0600},
        {MGR_STATE_FILE, 0600},
        {MGR_SOCKET_FILE, 0600},
        {MGR_RAFT_DIR, 0700},
        {MGR_STORE_DIR, 0700},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char path[256];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", t->dir, want[i].name);
        if (stat(path, &st) < 0)
            fail_msg("%s: %s", path, strerror(errno));
        if ((st.st_mode & 0777) != want[i].mode)
            fail_msg("%s has mode %o, wanted %o", want[i].name, st.st_mode & 0777, want[i].mode);
    }
    /* nothing under store/ or raft/ is open to group or others either */
    const char *subs[] = {MGR_STORE_DIR, MGR_RAFT_DIR, MGR_KEYS_DIR};
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", t->dir, subs[i]);
        DIR *d = opendir(path);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d))) {
            char f[512];
            struct stat st;
            if (e->d_name[0] == '.')
                continue;
            snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
            assert_int_equal(stat(f, &st), 0);
            if (st.st_mode & 0077)
                fail_msg("%s has mode %o", f, st.st_mode & 0777);
        }
        closedir(d);
    }
}

/* ------------------------------------------------------------------ damaged state */

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(sw_write_file_atomic(path, data, len, 0600), 0);
}

static void expect_start_fails(struct mt *t, bool init, int want, const char *needle)
{
    char err[512];
    int r = mt_start(t, init, err, sizeof(err));
    if (r >= 0)
        fail_msg("mgr_start(init=%d) succeeded; wanted %d", init, want);
    if (want)
        assert_int_equal(r, want);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    assert_null(t->m);
}

static void test_damaged_node_conf(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    mt_stop(t);
    resume_cfg(t);
    static const char garbled[] = "version=1\nnode_id=not an id\n\x01\x02\x03 garbage\n";
    write_file(t->dir, MGR_STATE_FILE, garbled, sizeof(garbled) - 1);
    expect_start_fails(t, false, -EINVAL, "node.conf");
    /* a future version is named as such */
    static const char future[] = "version=9\n";
    write_file(t->dir, MGR_STATE_FILE, future, sizeof(future) - 1);
    expect_start_fails(t, false, -EINVAL, "unsupported version");
}

static void test_damaged_kek(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    mt_stop(t);
    resume_cfg(t);
    uint8_t junk[4 + PKI_KEY_BYTES];
    int fd = open("/dev/urandom", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, junk, sizeof(junk)), sizeof(junk));
    close(fd);
    write_file(t->dir, MGR_KEK_FILE, junk, sizeof(junk));
    expect_start_fails(t, false, 0, "unwrap the data key");
    /* a KEK of the wrong size */
    write_file(t->dir, MGR_KEK_FILE, junk, 7);
    expect_start_fails(t, false, -EINVAL, "key-encryption key");
}

static void test_damaged_dek(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    mt_stop(t);
    resume_cfg(t);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", t->dir, MGR_DEK_FILE);
    assert_int_equal(unlink(path), 0);
    expect_start_fails(t, false, -ENOENT, "wrapped data key");
}

static void test_init_on_existing_node(void **state)
{
    struct mt *t = *state;
    char node_id[SW_ID_LEN + 1];
    mt_start_ok(t, true);
    snprintf(node_id, sizeof(node_id), "%s", mgr_node_id(t->m));
    mt_stop(t);
    expect_start_fails(t, true, -EEXIST, node_id);
    /* the node is untouched: it still resumes */
    resume_cfg(t);
    mt_start_ok(t, false);
    assert_string_equal(mgr_node_id(t->m), node_id);
}

static void test_resume_empty_dir(void **state)
{
    struct mt *t = *state;
    resume_cfg(t);
    expect_start_fails(t, false, -ENOENT, "swarmd init");
}

static void test_second_manager_on_same_dir(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    struct mgr_config cfg = t->cfg;
    cfg.listen_addr_set = false;
    cfg.advertise_addr_set = false;
    cfg.hostname = NULL;
    char err[512] = "";
    mgr *m2 = NULL;
    int r = mgr_start(&t->loop, &cfg, false, NULL, NULL, &m2, err, sizeof(err));
    assert_true(r < 0);
    assert_non_null(strstr(err, "already running"));
    mt_run_for(t, 50); /* let the failed start finish its closes */
    /* the first one still serves */
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    assert_int_equal(l->n_nodes, 1);
    swarm__list_nodes_response__free_unpacked(l, NULL);
}

/* An init whose node.conf never got written leaves raft data behind: a new init must not
 * silently build a second cluster on top of it. */
static void test_init_over_incomplete_init(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    mt_stop(t);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", t->dir, MGR_STATE_FILE);
    assert_int_equal(unlink(path), 0);
    char err[512];
    int r = mt_start(t, true, err, sizeof(err));
    assert_true(r < 0);
    assert_true(strstr(err, "incomplete init") || strstr(err, "store"));
}

/* A TCP socket holding port on 127.0.0.1 (0: any); returns the port. */
static uint16_t block_port(struct mt *t, uv_tcp_t *h, uint16_t port)
{
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    assert_int_equal(uv_ip4_addr("127.0.0.1", port, &sa), 0);
    assert_int_equal(uv_tcp_init(&t->loop, h), 0);
    assert_int_equal(uv_tcp_bind(h, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)h, 1, NULL), 0);
    uv_unref((uv_handle_t *)h); /* a failed start's drain does not wait for it */
    assert_int_equal(uv_tcp_getsockname(h, (struct sockaddr *)&bound, &blen), 0);
    return ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

/* A busy port fails init with a message naming it, and leaves the dir reusable; a busy
 * stored port fails resume, and a new --listen-addr gets around it. */
static void test_busy_port(void **state)
{
    struct mt *t = *state;
    uv_tcp_t blocker;
    char err[512], want[64], addr[80];
    uint16_t port = block_port(t, &blocker, 0);
    t->cfg.listen_addr.port = port;
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    int r = mt_start(t, true, err, sizeof(err));
    assert_true(r < 0);
    if (!strstr(err, "cannot listen on") || !strstr(err, want))
        fail_msg("error '%s' does not name %s", err, want);
    enum mgr_state_kind kind;
    assert_int_equal(mgr_state_probe(t->dir, &kind, NULL, NULL), 0);
    assert_int_equal(kind, MGR_STATE_EMPTY);
    uv_close((uv_handle_t *)&blocker, NULL);
    mt_run_for(t, 5);

    /* the same init now works and keeps that port */
    mt_start_ok(t, true);
    mgr_listen_addr(t->m, addr, sizeof(addr));
    assert_string_equal(addr, want);
    mt_stop(t);

    /* resume on the stored port while something else holds it */
    block_port(t, &blocker, port);
    resume_cfg(t);
    r = mt_start(t, false, err, sizeof(err));
    assert_true(r < 0);
    assert_non_null(strstr(err, want));
    /* a new listen address on resume */
    t->cfg.listen_addr.port = 0;
    t->cfg.listen_addr_set = true;
    mt_start_ok(t, false);
    mgr_listen_addr(t->m, addr, sizeof(addr));
    assert_string_not_equal(addr, want);
    mt_stop(t);
    uv_close((uv_handle_t *)&blocker, NULL);
    mt_run_for(t, 5);
    /* the new one is stored: a plain resume uses it */
    char again[80];
    resume_cfg(t);
    mt_start_ok(t, false);
    mgr_listen_addr(t->m, again, sizeof(again));
    assert_string_equal(again, addr);
}

/* Was a bug (manager/manager.c mgr_start, init branch), fixed: when <dir>/store and <dir>/raft
 * are left by an init that never wrote node.conf, init fails at store_open with "the store
 * does not open with this data key (wrong key or another cluster)" — misleading; the
 * "incomplete init; remove the state directory" message of mgr__raft_start is never
 * reached. */
static void test_incomplete_init_message(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    mt_stop(t);
    char path[256], err[512];
    snprintf(path, sizeof(path), "%s/%s", t->dir, MGR_STATE_FILE);
    assert_int_equal(unlink(path), 0);
    assert_true(mt_start(t, true, err, sizeof(err)) < 0);
    if (!strstr(err, "incomplete init"))
        fail_msg("error '%s' does not say the dir holds an incomplete init", err);
}

/* Was a bug (manager/manager.c mgr_state_probe + mgr_start), fixed: init on a dir whose node.conf
 * is damaged says "already holds node ? of cluster ?" (the probe's placeholders). */
static void test_init_on_damaged_conf_message(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    mt_stop(t);
    write_file(t->dir, MGR_STATE_FILE, "garbage\n", 8);
    char err[512];
    assert_int_equal(mt_start(t, true, err, sizeof(err)), -EEXIST);
    if (strstr(err, "node ?") || !strstr(err, "node.conf"))
        fail_msg("error '%s' should name the damaged node.conf", err);
}

/* ------------------------------------------------------------------ secrets on disk */

struct secrets {
    char tokens[64][PKI_TOKEN_LEN + 1];
    unsigned n_tokens;
    char *ca_key_pem; /* the CA private key, unencrypted PEM */
    char *node_key_pem;
    uint8_t dek[PKI_KEY_BYTES];
    unsigned hits;
};

/* The base64 body of a PEM: its second line (64 characters of key material). */
static const char *pem_body_line(const char *pem, size_t *ret_len)
{
    const char *nl = strchr(pem, '\n');
    assert_non_null(nl);
    const char *end = strchr(nl + 1, '\n');
    assert_non_null(end);
    *ret_len = (size_t)(end - (nl + 1));
    assert_true(*ret_len >= 40);
    return nl + 1;
}

static void scan_file(const char *path, const uint8_t *data, size_t len, void *ud)
{
    struct secrets *s = ud;
    for (unsigned i = 0; i < s->n_tokens; i++) {
        const char *secret = s->tokens[i] + PKI_TOKEN_LEN - PKI_TOKEN_SECRET_LEN;
        if (memmem(data, len, secret, PKI_TOKEN_SECRET_LEN)) {
            print_error("%s holds the secret of token %s\n", path, s->tokens[i]);
            s->hits++;
        }
    }
    size_t bl;
    const char *body = pem_body_line(s->ca_key_pem, &bl);
    if (memmem(data, len, body, bl)) {
        print_error("%s holds the CA private key\n", path);
        s->hits++;
    }
    body = pem_body_line(s->node_key_pem, &bl);
    if (memmem(data, len, body, bl)) {
        print_error("%s holds the node private key in the clear\n", path);
        s->hits++;
    }
    if (memmem(data, len, s->dek, sizeof(s->dek))) {
        print_error("%s holds the data key in the clear\n", path);
        s->hits++;
    }
    for (const uint8_t *p = data; (p = memmem(p, len - (size_t)(p - data), "PRIVATE KEY-----", 16));
         p += 16) {
        if (p - data < 10 || memcmp(p - 10, "ENCRYPTED ", 10) != 0) {
            print_error("%s holds an unencrypted PEM private key\n", path);
            s->hits++;
        }
    }
}

static void add_token(struct secrets *s, const char *tok)
{
    assert_true(s->n_tokens < 64);
    snprintf(s->tokens[s->n_tokens++], PKI_TOKEN_LEN + 1, "%s", tok);
}

static void test_no_secret_in_the_clear(void **state)
{
    struct mt *t = *state;
    struct secrets *s = calloc(1, sizeof(*s));
    char tok[PKI_TOKEN_LEN + 1];
    size_t len;
    assert_non_null(s);
    t->cfg.snapshot_threshold = 4;
    t->cfg.snapshot_trailing = 2;
    mt_start_ok(t, true);
    assert_int_equal(pki_key_to_pem(pki_ca_key(t->m->ca), &s->ca_key_pem, &len), 0);
    assert_int_equal(pki_key_to_pem(t->m->st.node_key, &s->node_key_pem, &len), 0);
    memcpy(s->dek, t->m->st.dek.key, sizeof(s->dek));
    assert_non_null(strstr(s->ca_key_pem, "PRIVATE KEY"));
    mt_join_token(t, 0, false, tok, sizeof(tok));
    add_token(s, tok);
    mt_join_token(t, 1, false, tok, sizeof(tok));
    add_token(s, tok);
    /* rotations, a joined node and snapshots: every secret passes through raft */
    for (int i = 0; i < 12; i++) {
        mt_join_token(t, i % 2, true, tok, sizeof(tok));
        add_token(s, tok);
    }
    char *csr = mt_csr();
    struct mt_reply r;
    Swarm__IssueNodeCertificateRequest req = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    req.token = s->tokens[s->n_tokens - 2];
    req.csr_pem = csr;
    req.hostname = "w1";
    assert_int_equal(mt_call(t, "CA.IssueNodeCertificate", &req.base, &r), 0);
    mt_reply_clear(&r);
    free(csr);
    assert_true(count_snapshots(t->dir) >= 1);

    mt_foreach_file(t->dir, scan_file, s); /* while running */
    mt_stop(t);
    resume_cfg(t);
    mt_start_ok(t, false); /* restore from the snapshot, rewrite nothing in the clear */
    mt_join_token(t, 0, true, tok, sizeof(tok));
    add_token(s, tok);
    mt_stop(t);
    mt_foreach_file(t->dir, scan_file, s);
    unsigned hits = s->hits;
    sw_erase(s->ca_key_pem, strlen(s->ca_key_pem));
    sw_erase(s->node_key_pem, strlen(s->node_key_pem));
    free(s->ca_key_pem);
    free(s->node_key_pem);
    free(s);
    assert_int_equal(hits, 0);
}

const struct CMUnitTest mt_state_tests[] = {
    cmocka_unit_test_setup_teardown(test_snapshots_and_resume, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_resume_keeps_state, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_permissions, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_damaged_node_conf, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_damaged_kek, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_damaged_dek, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_init_on_existing_node, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_resume_empty_dir, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_second_manager_on_same_dir, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_init_over_incomplete_init, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_busy_port, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_incomplete_init_message, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_init_on_damaged_conf_message, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_no_secret_in_the_clear, mt_setup, mt_teardown),
};
const size_t mt_state_n = sizeof(mt_state_tests) / sizeof(mt_state_tests[0]);
