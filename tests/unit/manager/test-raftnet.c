/* manager/ raft between managers over mTLS: who may open a raft stream (Raft.Connect) and
 * join raft (Raft.Join): a worker certificate, no certificate, another cluster's manager,
 * a manager claiming another node's raft ID or asking for the wrong member, a malformed
 * request — each refused with the reason; the right manager gets a raw byte stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "manager/internal.h"
#include "tests.h"

struct wait {
    bool done;
    int status;
    char error[512];
};

static void on_conn(net_client *c, int status, const char *error, void *ud)
{
    struct wait *w = ud;
    w->status = status;
    snprintf(w->error, sizeof(w->error), "%s", error ? error : "");
    w->done = true;
}

static void on_reply(net_client *c, int status, const char *error, const uint8_t *payload,
                     size_t len, bool final, void *ud)
{
    struct wait *w = ud;
    if (!final)
        return;
    w->status = status;
    snprintf(w->error, sizeof(w->error), "%s", error ? error : "");
    w->done = true;
}

static void on_raw(net_raw *r, int status, const char *error, const uint8_t *data, size_t len,
                   void *ud)
{
}

/* A node certificate of t's cluster (or of ca) for a fresh node id. */
static char *cert_for(struct mt *t, pki_ca *ca, const char *cluster, enum pki_role role,
                      char node_id[SW_ID_LEN + 1], pki_key **ret_key)
{
    char *csr = NULL, *cert = NULL, err[256];
    assert_int_equal(sw_id_generate(node_id), 0);
    assert_int_equal(pki_key_generate(ret_key), 0);
    assert_int_equal(pki_csr_create(*ret_key, &csr), 0);
    struct pki_sign_request sr = {.node_id = node_id, .cluster_id = cluster, .role = role};
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &sr, &cert, err, sizeof(err)), 0);
    free(csr);
    return cert;
}

/* Connect with cert/key (NULL: none) and its root; the connect status. */
static int connect_as(struct mt *t, const char *root, const char *cert, pki_key *key,
                      net_client **ret)
{
    SSL_CTX *ctx = NULL;
    char err[256];
    assert_int_equal(pki_tls_client_ctx(root, strlen(root), cert, cert ? strlen(cert) : 0, key,
                                        &ctx, err, sizeof(err)),
                     0);
    struct wait w = {0};
    struct sw_addr addr = t->m->bound_addr;
    assert_int_equal(net_client_connect_tcp(&t->loop, &addr, ctx, 5000, on_conn, &w, ret), 0);
    pki_tls_ctx_free(ctx);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    return w.status;
}

/* Raft.Connect with these fields over c; the answer's status (and error). */
static int raft_connect(struct mt *t, net_client *c, uint64_t raft_id, uint64_t target, char *err,
                        size_t size)
{
    Swarm__RaftConnectRequest req = SWARM__RAFT_CONNECT_REQUEST__INIT;
    req.raft_id = raft_id;
    req.address = "127.0.0.1:1";
    req.target_raft_id = target;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(proto_pack(&req.base, &buf, &len), 0);
    struct wait w = {0};
    assert_int_equal(net_client_call_raw(c, "Raft.Connect", buf, len, on_reply, &w, on_raw, NULL),
                     0);
    free(buf);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    snprintf(err, size, "%s", w.error);
    return w.status;
}

/* A certificate issued with the join token of role (0 worker, 1 manager), as a joining node
 * gets it; *ret_key is its key. */
static Swarm__IssueNodeCertificateResponse *issue_as(struct mt *t, int role, const char *host,
                                                     pki_key **ret_key)
{
    char tok[PKI_TOKEN_LEN + 1];
    char *csr = NULL;
    mt_join_token(t, role, false, tok, sizeof(tok));
    assert_int_equal(pki_key_generate(ret_key), 0);
    assert_int_equal(pki_csr_create(*ret_key, &csr), 0);
    Swarm__IssueNodeCertificateRequest ireq = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    ireq.token = tok;
    ireq.csr_pem = csr;
    ireq.hostname = (char *)host;
    ireq.addr = "127.0.0.1:1";
    struct mt_reply r;
    assert_int_equal(mt_call(t, "CA.IssueNodeCertificate", &ireq.base, &r), 0);
    Swarm__IssueNodeCertificateResponse *ir =
        swarm__issue_node_certificate_response__unpack(NULL, r.len, r.payload);
    assert_non_null(ir);
    mt_reply_clear(&r);
    free(csr);
    return ir;
}

static void test_raft_connect_refusals(void **state)
{
    struct mt *t = *state;
    char err[512], id[SW_ID_LEN + 1];
    mt_start_ok(t, true);
    const char *root = t->m->st.root_ca_pem;
    uint64_t self = t->m->st.raft_id;
    net_client *c = NULL;
    pki_key *key = NULL;

    /* no certificate */
    assert_int_equal(connect_as(t, root, NULL, NULL, &c), 0);
    assert_int_equal(raft_connect(t, c, 1, self, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "manager certificate"));
    net_client_close(c);

    /* a manager of another cluster: refused at the handshake */
    pki_ca *other = NULL;
    char other_cluster[SW_ID_LEN + 1];
    assert_int_equal(pki_ca_create(&other), 0);
    assert_int_equal(sw_id_generate(other_cluster), 0);
    char *cert = cert_for(t, other, other_cluster, PKI_ROLE_MANAGER, id, &key);
    SSL_CTX *ctx = NULL;
    const char *oroot = pki_ca_cert_pem(other);
    assert_int_equal(
        pki_tls_client_ctx(oroot, strlen(oroot), cert, strlen(cert), key, &ctx, err, sizeof(err)),
        0);
    struct wait w = {0};
    struct sw_addr addr = t->m->bound_addr;
    assert_int_equal(net_client_connect_tcp(&t->loop, &addr, ctx, 5000, on_conn, &w, &c), 0);
    pki_tls_ctx_free(ctx);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    assert_true(w.status < 0);
    net_client_close(c);
    free(cert);
    pki_key_free(key);
    pki_ca_free(other);

    /* a manager this cluster knows (it joined with the manager token) */
    Swarm__IssueNodeCertificateResponse *ir = issue_as(t, 1, "m2", &key);
    uint64_t mine = mgr__raft_id_from_node_id(ir->node_id);

    assert_int_equal(connect_as(t, root, ir->cert_pem, key, &c), 0);
    /* claiming another node's raft id */
    assert_int_equal(raft_connect(t, c, mine + 1, self, err, sizeof(err)), -EPERM);
    assert_non_null(strstr(err, "is not node"));
    /* asking for a member this manager is not */
    assert_int_equal(raft_connect(t, c, mine, self + 1, err, sizeof(err)), -ENOENT);
    /* a request that does not decode */
    w = (struct wait){0};
    assert_int_equal(net_client_call_raw(c, "Raft.Connect", (const uint8_t *)"\xff\xff", 2,
                                         on_reply, &w, on_raw, NULL),
                     0);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    assert_int_equal(w.status, -EINVAL);
    /* and the right one: a raw stream */
    assert_int_equal(raft_connect(t, c, mine, self, err, sizeof(err)), 0);
    assert_non_null(net_client_raw(c));
    net_client_close(c);
    mt_run_for(t, 20);
    swarm__issue_node_certificate_response__free_unpacked(ir, NULL);
    pki_key_free(key);
}

/* Raft.Join: the leader adds a manager it issued a certificate to; a worker may not. */
static void test_raft_join_needs_manager(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    const char *root = t->m->st.root_ca_pem;
    pki_key *key = NULL;
    Swarm__IssueNodeCertificateResponse *ir = issue_as(t, 0, "w1", &key);
    net_client *c = NULL;
    assert_int_equal(connect_as(t, root, ir->cert_pem, key, &c), 0);
    struct wait w = {0};
    assert_int_equal(net_client_call(c, "Raft.Join", NULL, 0, on_reply, &w, NULL), 0);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    assert_int_equal(w.status, -EPERM);
    w = (struct wait){0};
    assert_int_equal(net_client_call(c, "Raft.Connect", NULL, 0, on_reply, &w, NULL), 0);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    assert_int_equal(w.status, -EPERM);
    net_client_close(c);
    mt_run_for(t, 20);
    swarm__issue_node_certificate_response__free_unpacked(ir, NULL);
    pki_key_free(key);
}

static int make_worker(struct mgr *m, Swarm__Node *n, void *ud)
{
    n->role = n->desired_role = SWARM__NODE_ROLE__ROLE_WORKER;
    return 0;
}

static void edited(struct mgr *m, int status, void *ud)
{
    *(int *)ud = status < 0 ? status : 1;
}

/* A demoted manager's old certificate (still valid) is a worker's from then on: no control
 * API, no raft, no data key. */
static void test_demoted_certificate(void **state)
{
    struct mt *t = *state;
    char err[512];
    mt_start_ok(t, true);
    const char *root = t->m->st.root_ca_pem;
    pki_key *key = NULL;
    Swarm__IssueNodeCertificateResponse *ir = issue_as(t, 1, "m2", &key);
    int done = 0;
    assert_int_equal(mgr__node_update(t->m, ir->node_id, make_worker, edited, &done), 0);
    for (int i = 0; i < 500 && !done; i++)
        mt_run_for(t, 5);
    assert_int_equal(done, 1);

    net_client *c = NULL;
    assert_int_equal(connect_as(t, root, ir->cert_pem, key, &c), 0);
    struct wait w = {0};
    assert_int_equal(net_client_call(c, "Control.ListNodes", NULL, 0, on_reply, &w, NULL), 0);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    assert_int_equal(w.status, -EPERM);
    w = (struct wait){0};
    assert_int_equal(net_client_call(c, "Raft.Join", NULL, 0, on_reply, &w, NULL), 0);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    assert_int_equal(w.status, -EPERM);
    uint64_t mine = mgr__raft_id_from_node_id(ir->node_id);
    assert_int_equal(raft_connect(t, c, mine, t->m->st.raft_id, err, sizeof(err)), -EPERM);
    net_client_close(c);
    mt_run_for(t, 20);
    swarm__issue_node_certificate_response__free_unpacked(ir, NULL);
    pki_key_free(key);
}

const struct CMUnitTest mt_raftnet_tests[] = {
    cmocka_unit_test_setup_teardown(test_raft_connect_refusals, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_raft_join_needs_manager, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_demoted_certificate, mt_setup, mt_teardown),
};
const size_t mt_raftnet_n = sizeof(mt_raftnet_tests) / sizeof(mt_raftnet_tests[0]);
