/* manager/ control API: init to ready, node listing and lookup, the cluster as shown to
 * operators, join tokens and concurrent rotations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tests.h"

static int get_node(struct mt *t, const char *id, Swarm__Node **ret, struct mt_reply *r)
{
    Swarm__GetNodeRequest req = SWARM__GET_NODE_REQUEST__INIT;
    req.id = (char *)id;
    int s = mt_call(t, "Control.GetNode", &req.base, r);
    if (s == 0 && ret) {
        Swarm__GetNodeResponse *resp = swarm__get_node_response__unpack(NULL, r->len, r->payload);
        assert_non_null(resp);
        assert_non_null(resp->node);
        *ret = resp->node;
        resp->node = NULL;
        swarm__get_node_response__free_unpacked(resp, NULL);
    }
    return s;
}

static void test_init_ready_one_manager(void **state)
{
    struct mt *t = *state;
    enum mgr_state_kind kind;
    assert_int_equal(mgr_state_probe(t->dir, &kind, NULL, NULL), 0);
    assert_int_equal(kind, MGR_STATE_EMPTY);

    mt_start_ok(t, true);
    const char *node_id = mgr_node_id(t->m);
    assert_int_equal(strlen(node_id), SW_ID_LEN);
    assert_int_equal(strlen(mgr_cluster_id(t->m)), SW_ID_LEN);
    char addr[80];
    mgr_listen_addr(t->m, addr, sizeof(addr));
    assert_int_equal(strncmp(addr, "127.0.0.1:", 10), 0);
    assert_string_not_equal(addr, "127.0.0.1:0");
    char adv[80];
    mgr_advertise_addr(t->m, adv, sizeof(adv));
    assert_string_equal(adv, addr); /* the advertised port follows the bound one */

    /* the state dir now holds the node */
    char probe_id[SW_ID_LEN + 1], probe_cluster[SW_ID_LEN + 1];
    assert_int_equal(mgr_state_probe(t->dir, &kind, probe_id, probe_cluster), 0);
    assert_int_equal(kind, MGR_STATE_NODE);
    assert_string_equal(probe_id, node_id);
    assert_string_equal(probe_cluster, mgr_cluster_id(t->m));

    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    assert_int_equal(l->n_nodes, 1);
    Swarm__Node *n = l->nodes[0];
    assert_string_equal(n->id, node_id);
    assert_string_equal(n->hostname, "mt-host");
    assert_string_equal(n->addr, addr);
    assert_int_equal(n->role, SWARM__NODE_ROLE__ROLE_MANAGER);
    assert_int_equal(n->desired_role, SWARM__NODE_ROLE__ROLE_MANAGER);
    assert_int_equal(n->state, SWARM__NODE_STATE__NODE_READY);
    assert_int_equal(n->availability, SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE);
    assert_non_null(n->manager_status);
    assert_true(n->manager_status->leader);
    assert_int_equal(n->manager_status->reachability, SWARM__REACHABILITY__REACH_REACHABLE);
    assert_int_equal(n->manager_status->raft_id, mgr__raft_id_from_node_id(node_id));
    assert_non_null(n->meta);
    assert_true(n->meta->created_at > 0);
    assert_non_null(n->certificate);
    assert_non_null(strstr(n->certificate->cert_pem, "BEGIN CERTIFICATE"));
    assert_true(n->certificate->not_after > n->certificate->not_before);
    swarm__list_nodes_response__free_unpacked(l, NULL);

    /* GetRootCA is the bundle on disk */
    struct mt_reply r;
    Swarm__GetRootCARequest rq = SWARM__GET_ROOT_CAREQUEST__INIT;
    assert_int_equal(mt_call(t, "CA.GetRootCA", &rq.base, &r), 0);
    Swarm__GetRootCAResponse *ca = swarm__get_root_caresponse__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(ca);
    assert_non_null(strstr(ca->ca_cert_pem, "BEGIN CERTIFICATE"));
    assert_string_equal(ca->ca_cert_pem, t->m->st.root_ca_pem);
    swarm__get_root_caresponse__free_unpacked(ca, NULL);
}

static void test_get_node(void **state)
{
    struct mt *t = *state;
    struct mt_reply r;
    Swarm__Node *n = NULL;
    mt_start_ok(t, true);
    const char *id = mgr_node_id(t->m);

    /* full id */
    assert_int_equal(get_node(t, id, &n, &r), 0);
    mt_reply_clear(&r);
    assert_string_equal(n->id, id);
    assert_true(n->manager_status && n->manager_status->leader);
    swarm__node__free_unpacked(n, NULL);

    /* unique prefix */
    char prefix[8];
    snprintf(prefix, sizeof(prefix), "%.5s", id);
    assert_int_equal(get_node(t, prefix, &n, &r), 0);
    mt_reply_clear(&r);
    assert_string_equal(n->id, id);
    swarm__node__free_unpacked(n, NULL);

    /* hostname */
    assert_int_equal(get_node(t, "mt-host", &n, &r), 0);
    mt_reply_clear(&r);
    assert_string_equal(n->id, id);
    swarm__node__free_unpacked(n, NULL);

    /* unknown: an id that is no prefix of ours, and a hostname nobody has */
    char other[SW_ID_LEN + 1];
    snprintf(other, sizeof(other), "%s", id);
    other[0] = other[0] == 'z' ? 'y' : 'z';
    const char *unknown[] = {other, "no-such-host", "zzzzzzzzzzzzzzzzzzzzzzzzzz"};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_int_equal(get_node(t, unknown[i], NULL, &r), -ENOENT);
        assert_non_null(strstr(r.error, "no such node"));
        mt_reply_clear(&r);
    }

    /* empty id */
    assert_int_equal(get_node(t, "", NULL, &r), -EINVAL);
    mt_reply_clear(&r);

    /* an undecodable request */
    assert_int_equal(mt_call_raw(t, "Control.GetNode", (const uint8_t *)"\xff\xff\xff", 3, &r),
                     -EINVAL);
    assert_non_null(strstr(r.error, "malformed"));
    mt_reply_clear(&r);
}

static void test_get_cluster_hides_secrets(void **state)
{
    struct mt *t = *state;
    char wtok[PKI_TOKEN_LEN + 1], mtok[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, wtok, sizeof(wtok));
    mt_join_token(t, 1, false, mtok, sizeof(mtok));
    assert_string_not_equal(wtok, mtok);

    struct mt_reply r;
    Swarm__GetClusterRequest req = SWARM__GET_CLUSTER_REQUEST__INIT;
    assert_int_equal(mt_call(t, "Control.GetCluster", &req.base, &r), 0);
    /* nothing secret anywhere in the raw answer */
    assert_null(memmem(r.payload, r.len, wtok, strlen(wtok)));
    assert_null(memmem(r.payload, r.len, mtok, strlen(mtok)));
    assert_null(
        memmem(r.payload, r.len, wtok + strlen(wtok) - PKI_TOKEN_SECRET_LEN, PKI_TOKEN_SECRET_LEN));
    assert_null(
        memmem(r.payload, r.len, mtok + strlen(mtok) - PKI_TOKEN_SECRET_LEN, PKI_TOKEN_SECRET_LEN));
    assert_null(memmem(r.payload, r.len, "PRIVATE KEY", 11));
    Swarm__GetClusterResponse *c = swarm__get_cluster_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(c);
    assert_non_null(c->cluster);
    assert_string_equal(c->cluster->id, mgr_cluster_id(t->m));
    assert_non_null(c->cluster->root_ca);
    assert_int_equal(c->cluster->root_ca->ca_key_pem.len, 0);
    assert_non_null(strstr(c->cluster->root_ca->ca_cert_pem, "BEGIN CERTIFICATE"));
    assert_int_equal(strlen(c->cluster->root_ca->digest), PKI_TOKEN_DIGEST_LEN);
    /* the tokens carry the CA digest */
    assert_non_null(strstr(wtok, c->cluster->root_ca->digest));
    assert_true(!c->cluster->join_tokens ||
                (!c->cluster->join_tokens->worker[0] && !c->cluster->join_tokens->manager[0]));
    char wd[65], md[65];
    pki_sha256_hex(wtok, strlen(wtok), wd);
    pki_sha256_hex(mtok, strlen(mtok), md);
    assert_string_equal(c->worker_token_digest, wd);
    assert_string_equal(c->manager_token_digest, md);
    assert_true(c->ca_cert_not_after > c->cluster->meta->created_at);
    assert_int_equal(c->cluster->spec->cert_expiry_ns, PKI_CERT_VALIDITY_DEFAULT_NS);
    swarm__get_cluster_response__free_unpacked(c, NULL);

    /* a bad role */
    Swarm__GetJoinTokenRequest jr = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    jr.role = 7;
    assert_int_equal(mt_call(t, "Control.GetJoinToken", &jr.base, &r), -EINVAL);
    mt_reply_clear(&r);
}

static const char *token_of(struct mt_reply *r, char *buf, size_t size)
{
    assert_int_equal(r->status, 0);
    Swarm__GetJoinTokenResponse *resp =
        swarm__get_join_token_response__unpack(NULL, r->len, r->payload);
    assert_non_null(resp);
    snprintf(buf, size, "%s", resp->token);
    assert_int_equal(strncmp(resp->manager_addr, "127.0.0.1:", 10), 0);
    swarm__get_join_token_response__free_unpacked(resp, NULL);
    return buf;
}

/* A token rotation through mgr__cluster_update, as the control handler does it. */
struct tok_edit {
    int role;
    bool done;
    int status;
};

static int edit_mutate(struct mgr *m, Swarm__Cluster *c, void *ud)
{
    struct tok_edit *e = ud;
    char tok[PKI_TOKEN_LEN + 1];
    int r = pki_token_generate(c->root_ca->ca_cert_pem, strlen(c->root_ca->ca_cert_pem), tok);
    if (r < 0)
        return r;
    char **slot = e->role ? &c->join_tokens->manager : &c->join_tokens->worker;
    if (*slot != protobuf_c_empty_string)
        free(*slot);
    *slot = strdup(tok);
    return *slot ? 0 : -ENOMEM;
}

static void edit_done(struct mgr *m, int status, void *ud)
{
    struct tok_edit *e = ud;
    e->status = status;
    e->done = true;
}

/* Both rotations are sent before either can commit: the second must see the first's
 * result (the cluster edits are serialised), so both new tokens are current. */
static void test_concurrent_rotations(void **state)
{
    struct mt *t = *state;
    char w0[PKI_TOKEN_LEN + 1], m0[PKI_TOKEN_LEN + 1];
    char w1[PKI_TOKEN_LEN + 1], m1[PKI_TOKEN_LEN + 1];
    char w2[PKI_TOKEN_LEN + 1], m2[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, w0, sizeof(w0));
    mt_join_token(t, 1, false, m0, sizeof(m0));
    Swarm__GetClusterResponse *before = mt_get_cluster(t);

    for (int round = 0; round < 3; round++) {
        struct mt_reply rw, rm;
        Swarm__GetJoinTokenRequest qw = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
        Swarm__GetJoinTokenRequest qm = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
        qw.role = SWARM__NODE_ROLE__ROLE_WORKER;
        qw.rotate = true;
        qm.role = SWARM__NODE_ROLE__ROLE_MANAGER;
        qm.rotate = true;
        /* alternate which goes first */
        if (round % 2 == 0) {
            mt_call_async(t, "Control.GetJoinToken", &qw.base, &rw);
            mt_call_async(t, "Control.GetJoinToken", &qm.base, &rm);
        } else {
            mt_call_async(t, "Control.GetJoinToken", &qm.base, &rm);
            mt_call_async(t, "Control.GetJoinToken", &qw.base, &rw);
        }
        assert_true(mt_run_until(t, &rw.done, MT_WAIT_MS));
        assert_true(mt_run_until(t, &rm.done, MT_WAIT_MS));
        token_of(&rw, w1, sizeof(w1));
        token_of(&rm, m1, sizeof(m1));
        mt_reply_clear(&rw);
        mt_reply_clear(&rm);
        assert_string_not_equal(w1, w0);
        assert_string_not_equal(m1, m0);
        assert_string_not_equal(w1, m1);

        mt_join_token(t, 0, false, w2, sizeof(w2));
        mt_join_token(t, 1, false, m2, sizeof(m2));
        assert_string_equal(w2, w1);
        assert_string_equal(m2, m1);
        memcpy(w0, w1, sizeof(w0));
        memcpy(m0, m1, sizeof(m0));
    }

    /* the same through the internal queue: two edits queued in one tick */
    struct tok_edit e1 = {.role = 0}, e2 = {.role = 1};
    assert_int_equal(mgr__cluster_update(t->m, edit_mutate, edit_done, &e1), 0);
    assert_int_equal(mgr__cluster_update(t->m, edit_mutate, edit_done, &e2), 0);
    /* the first is proposed, the second waits for its commit */
    assert_true(t->m->cluster_op_running);
    assert_non_null(t->m->cluster_ops_head);
    assert_false(e1.done);
    assert_true(mt_run_until(t, &e1.done, MT_WAIT_MS));
    assert_true(mt_run_until(t, &e2.done, MT_WAIT_MS));
    assert_int_equal(e1.status, 0);
    assert_int_equal(e2.status, 0);
    mt_join_token(t, 0, false, w2, sizeof(w2));
    mt_join_token(t, 1, false, m2, sizeof(m2));
    assert_string_not_equal(w2, w0);
    assert_string_not_equal(m2, m0);

    /* the cluster object kept everything else; updated_at moved, created_at did not */
    Swarm__GetClusterResponse *after = mt_get_cluster(t);
    assert_string_equal(after->cluster->id, before->cluster->id);
    assert_string_equal(after->cluster->root_ca->ca_cert_pem,
                        before->cluster->root_ca->ca_cert_pem);
    assert_int_equal(after->cluster->meta->created_at, before->cluster->meta->created_at);
    assert_true(after->cluster->meta->updated_at > before->cluster->meta->updated_at);
    assert_string_not_equal(after->worker_token_digest, before->worker_token_digest);
    assert_string_not_equal(after->manager_token_digest, before->manager_token_digest);
    assert_int_equal(after->cluster->root_ca->ca_key_pem.len, 0);
    swarm__get_cluster_response__free_unpacked(before, NULL);
    swarm__get_cluster_response__free_unpacked(after, NULL);

    /* the CA key is still in the store and still signs (rotations must not drop it) */
    assert_int_equal(mgr__ca_reload(t->m), 0);
}

const struct CMUnitTest mt_control_tests[] = {
    cmocka_unit_test_setup_teardown(test_init_ready_one_manager, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_get_node, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_get_cluster_hides_secrets, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_rotations, mt_setup, mt_teardown),
};
const size_t mt_control_n = sizeof(mt_control_tests) / sizeof(mt_control_tests[0]);
