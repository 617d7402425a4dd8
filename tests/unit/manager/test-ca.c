/* manager/ CA server: certificates for holders of a join token over the (open) control
 * socket, refusals of bad tokens and requests, the new nodes in the node list, and the
 * TLS listener refusing certificates of nodes the cluster does not know. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/swtime.h"
#include "harness.h"
#include "tests.h"

struct issued {
    int status;
    char error[512];
    Swarm__IssueNodeCertificateResponse *resp;
};

static int issue(struct mt *t, const char *token, const char *csr, const char *hostname,
                 const char *addr, struct issued *out)
{
    struct mt_reply r;
    Swarm__IssueNodeCertificateRequest req = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    req.token = (char *)token;
    req.csr_pem = (char *)csr;
    req.hostname = (char *)hostname;
    req.addr = (char *)(addr ? addr : "");
    memset(out, 0, sizeof(*out));
    out->status = mt_call(t, "CA.IssueNodeCertificate", &req.base, &r);
    snprintf(out->error, sizeof(out->error), "%s", r.error);
    if (out->status == 0) {
        out->resp = swarm__issue_node_certificate_response__unpack(NULL, r.len, r.payload);
        assert_non_null(out->resp);
    }
    mt_reply_clear(&r);
    return out->status;
}

static void issued_clear(struct issued *i)
{
    if (i->resp)
        swarm__issue_node_certificate_response__free_unpacked(i->resp, NULL);
    i->resp = NULL;
}

static void expect_refused(struct mt *t, const char *token, const char *csr, const char *hostname,
                           const char *addr, int want, const char *needle)
{
    struct issued i;
    int r = issue(t, token, csr, hostname, addr, &i);
    issued_clear(&i);
    if (r != want)
        fail_msg("IssueNodeCertificate: got %d '%s', wanted %d", r, i.error, want);
    if (needle && !strstr(i.error, needle))
        fail_msg("error '%s' does not mention '%s'", i.error, needle);
}

static size_t count_nodes(struct mt *t)
{
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    size_t n = l->n_nodes;
    swarm__list_nodes_response__free_unpacked(l, NULL);
    return n;
}

static Swarm__Node *find_node(struct mt *t, const char *id)
{
    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    Swarm__Node *found = NULL;
    for (size_t i = 0; i < l->n_nodes; i++)
        if (strcmp(l->nodes[i]->id, id) == 0) {
            found = l->nodes[i];
            l->nodes[i] = l->nodes[--l->n_nodes];
            break;
        }
    swarm__list_nodes_response__free_unpacked(l, NULL);
    return found;
}

/* Check an issued certificate: chains to the root, names the node, role and cluster,
 * and holds the CSR's key. */
static void check_cert(struct mt *t, const struct issued *i, pki_key *key, enum pki_role role)
{
    const Swarm__IssueNodeCertificateResponse *resp = i->resp;
    struct pki_identity id;
    char err[256];
    assert_int_equal(strlen(resp->node_id), SW_ID_LEN);
    assert_string_equal(resp->cluster_id, mgr_cluster_id(t->m));
    assert_int_equal(resp->role, role == PKI_ROLE_MANAGER ? SWARM__NODE_ROLE__ROLE_MANAGER
                                                          : SWARM__NODE_ROLE__ROLE_WORKER);
    assert_string_equal(resp->ca_cert_pem, t->m->st.root_ca_pem);
    int r = pki_verify_cert(resp->ca_cert_pem, strlen(resp->ca_cert_pem), resp->cert_pem,
                            strlen(resp->cert_pem), &id, err, sizeof(err));
    if (r < 0)
        fail_msg("issued certificate does not verify: %s", err);
    assert_string_equal(id.node_id, resp->node_id);
    assert_string_equal(id.cluster_id, mgr_cluster_id(t->m));
    assert_int_equal(id.role, role);
    assert_true(pki_cert_matches_key(resp->cert_pem, strlen(resp->cert_pem), key));
}

static void test_issue_worker_and_manager(void **state)
{
    struct mt *t = *state;
    char wtok[PKI_TOKEN_LEN + 1], mtok[PKI_TOKEN_LEN + 1];
    pki_key *wkey = NULL, *mkey = NULL;
    char *wcsr = NULL, *mcsr = NULL;
    struct issued wi, mi;
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, wtok, sizeof(wtok));
    mt_join_token(t, 1, false, mtok, sizeof(mtok));
    assert_int_equal(pki_key_generate(&wkey), 0);
    assert_int_equal(pki_csr_create(wkey, &wcsr), 0);
    assert_int_equal(pki_key_generate(&mkey), 0);
    assert_int_equal(pki_csr_create(mkey, &mcsr), 0);

    if (issue(t, wtok, wcsr, "worker-1", "192.0.2.10", &wi) != 0)
        fail_msg("worker: %d %s", wi.status, wi.error);
    check_cert(t, &wi, wkey, PKI_ROLE_WORKER);
    if (issue(t, mtok, mcsr, "manager-2", NULL, &mi) != 0)
        fail_msg("manager: %d %s", mi.status, mi.error);
    check_cert(t, &mi, mkey, PKI_ROLE_MANAGER);
    assert_string_not_equal(wi.resp->node_id, mi.resp->node_id);

    /* both are in the node list, known but not yet seen */
    assert_int_equal(count_nodes(t), 3);
    Swarm__Node *n = find_node(t, wi.resp->node_id);
    assert_non_null(n);
    assert_int_equal(n->role, SWARM__NODE_ROLE__ROLE_WORKER);
    assert_int_equal(n->desired_role, SWARM__NODE_ROLE__ROLE_WORKER);
    assert_int_equal(n->state, SWARM__NODE_STATE__NODE_UNKNOWN);
    assert_string_equal(n->hostname, "worker-1");
    assert_string_equal(n->addr, "192.0.2.10:2377");
    assert_null(n->manager_status);
    assert_non_null(n->certificate);
    assert_string_equal(n->certificate->cert_pem, wi.resp->cert_pem);
    assert_true(n->certificate->not_after > n->certificate->not_before);
    assert_true(n->meta && n->meta->created_at > 0);
    swarm__node__free_unpacked(n, NULL);
    n = find_node(t, mi.resp->node_id);
    assert_non_null(n);
    assert_int_equal(n->role, SWARM__NODE_ROLE__ROLE_MANAGER);
    assert_int_equal(n->state, SWARM__NODE_STATE__NODE_UNKNOWN);
    assert_string_equal(n->addr, "");
    swarm__node__free_unpacked(n, NULL);

    /* GetNode finds the worker by hostname */
    struct mt_reply r;
    Swarm__GetNodeRequest gq = SWARM__GET_NODE_REQUEST__INIT;
    gq.id = "worker-1";
    assert_int_equal(mt_call(t, "Control.GetNode", &gq.base, &r), 0);
    Swarm__GetNodeResponse *g = swarm__get_node_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(g);
    assert_string_equal(g->node->id, wi.resp->node_id);
    swarm__get_node_response__free_unpacked(g, NULL);

    /* the same token may be used again (several workers join with one token) */
    struct issued again;
    assert_int_equal(issue(t, wtok, wcsr, "worker-1", NULL, &again), 0);
    assert_string_not_equal(again.resp->node_id, wi.resp->node_id);
    issued_clear(&again);
    /* two nodes called worker-1: a hostname lookup is ambiguous, not a guess */
    assert_int_equal(mt_call(t, "Control.GetNode", &gq.base, &r), -EINVAL);
    assert_non_null(strstr(r.error, "ambiguous"));
    mt_reply_clear(&r);

    /* the new nodes outlive a restart */
    char wid[SW_ID_LEN + 1];
    snprintf(wid, sizeof(wid), "%s", wi.resp->node_id);
    mt_stop(t);
    t->cfg.listen_addr_set = false;
    mt_start_ok(t, false);
    assert_int_equal(count_nodes(t), 4);
    n = find_node(t, wid);
    assert_non_null(n);
    assert_int_equal(n->role, SWARM__NODE_ROLE__ROLE_WORKER);
    swarm__node__free_unpacked(n, NULL);

    issued_clear(&wi);
    issued_clear(&mi);
    free(wcsr);
    free(mcsr);
    pki_key_free(wkey);
    pki_key_free(mkey);
}

static void test_issue_refusals(void **state)
{
    struct mt *t = *state;
    char wtok[PKI_TOKEN_LEN + 1], old[PKI_TOKEN_LEN + 1], foreign[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    char *csr = mt_csr();
    mt_join_token(t, 0, false, old, sizeof(old));
    mt_join_token(t, 0, true, wtok, sizeof(wtok));
    size_t before = count_nodes(t);

    /* a rotated token */
    expect_refused(t, old, csr, "w", NULL, -EPERM, "rotated");
    /* a token of another swarm: same shape, another CA digest */
    snprintf(foreign, sizeof(foreign), "%s", wtok);
    size_t d = strlen(PKI_TOKEN_PREFIX);
    foreign[d + 10] = foreign[d + 10] == 'a' ? 'b' : 'a';
    expect_refused(t, foreign, csr, "w", NULL, -EPERM, "digest");
    /* another swarm's real token */
    pki_ca *other = NULL;
    char otok[PKI_TOKEN_LEN + 1];
    assert_int_equal(pki_ca_create(&other), 0);
    const char *ob = pki_ca_cert_pem(other);
    assert_int_equal(pki_token_generate(ob, strlen(ob), otok), 0);
    pki_ca_free(other);
    expect_refused(t, otok, csr, "w", NULL, -EPERM, "digest");
    /* malformed tokens */
    expect_refused(t, "SWMTKN-1-abc", csr, "w", NULL, -EINVAL, NULL);
    expect_refused(t, "", csr, "w", NULL, -EINVAL, NULL);
    expect_refused(t, "not a token at all", csr, "w", NULL, -EINVAL, NULL);
    /* a secret of the right shape that is neither token */
    snprintf(foreign, sizeof(foreign), "%s", wtok);
    foreign[PKI_TOKEN_LEN - 1] = foreign[PKI_TOKEN_LEN - 1] == 'a' ? 'b' : 'a';
    expect_refused(t, foreign, csr, "w", NULL, -EPERM, "rotated");

    /* bad CSRs */
    static const char garbage[] =
        "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n";
    struct issued i;
    assert_true(issue(t, wtok, garbage, "w", NULL, &i) < 0);
    issued_clear(&i);
    assert_true(issue(t, wtok, "hello", "w", NULL, &i) < 0);
    issued_clear(&i);
    expect_refused(t, wtok, "", "w", NULL, -EINVAL, NULL);
    size_t big_len = 16 * 1024 + 100;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    snprintf(big, big_len + 1, "%s", csr);
    for (size_t k = strlen(csr); k < big_len; k++)
        big[k] = k % 65 == 64 ? '\n' : 'A';
    big[big_len] = '\0';
    expect_refused(t, wtok, big, "w", NULL, -EINVAL, "16384");
    free(big);

    /* bad hostnames and addresses */
    expect_refused(t, wtok, csr, "", NULL, -EINVAL, "hostname");
    expect_refused(t, wtok, csr, "bad host!", NULL, -EINVAL, "hostname");
    expect_refused(t, wtok, csr, "a/b", NULL, -EINVAL, "hostname");
    char longname[300];
    memset(longname, 'h', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect_refused(t, wtok, csr, longname, NULL, -EINVAL, "hostname");
    expect_refused(t, wtok, csr, "w", "not-an-ip", -EINVAL, "address");
    expect_refused(t, wtok, csr, "w", "192.0.2.1:99999", -EINVAL, "address");

    /* an undecodable request */
    struct mt_reply r;
    assert_int_equal(
        mt_call_raw(t, "CA.IssueNodeCertificate", (const uint8_t *)"\xff\xff\xff", 3, &r), -EINVAL);
    mt_reply_clear(&r);

    /* none of these left a node behind */
    assert_int_equal(count_nodes(t), before);
    /* and the current token still works */
    assert_int_equal(issue(t, wtok, csr, "w", NULL, &i), 0);
    issued_clear(&i);
    assert_int_equal(count_nodes(t), before + 1);
    free(csr);
}

/* Many joins at once, with a token rotation queued among them: every call is answered,
 * every issued node is recorded once, and the rotation takes effect. */
static void test_concurrent_issues(void **state)
{
    struct mt *t = *state;
    enum { N = 16 };
    char tok[PKI_TOKEN_LEN + 1], fresh[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, tok, sizeof(tok));
    char *csr = mt_csr();
    struct mt_reply r[N], rot;
    char host[N][16];
    for (int i = 0; i < N; i++) {
        Swarm__IssueNodeCertificateRequest req = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
        snprintf(host[i], sizeof(host[i]), "w%02d", i);
        req.token = tok;
        req.csr_pem = csr;
        req.hostname = host[i];
        mt_call_async(t, "CA.IssueNodeCertificate", &req.base, &r[i]);
        if (i == N / 2) {
            Swarm__GetJoinTokenRequest q = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
            q.role = SWARM__NODE_ROLE__ROLE_MANAGER;
            q.rotate = true;
            mt_call_async(t, "Control.GetJoinToken", &q.base, &rot);
        }
    }
    for (int i = 0; i < N; i++) {
        assert_true(mt_run_until(t, &r[i].done, MT_WAIT_MS));
        if (r[i].status != 0)
            fail_msg("issue %d: %d %s", i, r[i].status, r[i].error);
        mt_reply_clear(&r[i]);
    }
    assert_true(mt_run_until(t, &rot.done, MT_WAIT_MS));
    assert_int_equal(rot.status, 0);
    mt_reply_clear(&rot);
    free(csr);

    Swarm__ListNodesResponse *l = mt_list_nodes(t);
    assert_int_equal(l->n_nodes, N + 1);
    for (int i = 0; i < N; i++) {
        int seen = 0;
        for (size_t k = 0; k < l->n_nodes; k++)
            seen += strcmp(l->nodes[k]->hostname, host[i]) == 0;
        assert_int_equal(seen, 1);
    }
    swarm__list_nodes_response__free_unpacked(l, NULL);
    mt_join_token(t, 0, false, fresh, sizeof(fresh));
    assert_string_equal(fresh, tok); /* the worker token was not touched */
}

/* ------------------------------------------------------------------ TLS listener */

struct conn {
    bool done;
    int status;
    char error[512];
};

static void on_conn(net_client *c, int status, const char *error, void *ud)
{
    struct conn *r = ud;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    r->done = true;
}

static void on_call(net_client *c, int status, const char *error, const uint8_t *payload,
                    size_t len, bool final, void *ud)
{
    struct conn *r = ud;
    if (!final)
        return;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    r->done = true;
}

/* Connect over TLS with a certificate for node_id (signed by the cluster CA) and call
 * Control.ListNodes; returns the connect status, or the call's. */
static int tls_list_nodes(struct mt *t, const char *cert, const pki_key *key, char *err,
                          size_t size)
{
    SSL_CTX *ctx = NULL;
    const char *bundle = t->m->st.root_ca_pem;
    assert_int_equal(
        pki_tls_client_ctx(bundle, strlen(bundle), cert, strlen(cert), key, &ctx, err, size), 0);
    struct sw_addr addr = t->m->bound_addr;
    struct conn cr = {0};
    net_client *c = NULL;
    assert_int_equal(net_client_connect_tcp(&t->loop, &addr, ctx, 5000, on_conn, &cr, &c), 0);
    pki_tls_ctx_free(ctx);
    assert_true(mt_run_until(t, &cr.done, MT_WAIT_MS));
    int r = cr.status;
    if (r == 0) {
        struct conn call = {0};
        if (net_client_call(c, "Control.ListNodes", NULL, 0, on_call, &call, NULL) == 0) {
            assert_true(mt_run_until(t, &call.done, MT_WAIT_MS));
            r = call.status;
            snprintf(err, size, "%s", call.error);
        }
    } else {
        snprintf(err, size, "%s", cr.error);
    }
    net_client_close(c);
    mt_run_for(t, 10);
    return r;
}

static char *sign_for(struct mt *t, const char *node_id, enum pki_role role, pki_key **ret_key)
{
    char *csr = NULL, *cert = NULL, err[256];
    assert_int_equal(pki_key_generate(ret_key), 0);
    assert_int_equal(pki_csr_create(*ret_key, &csr), 0);
    struct pki_sign_request sr = {
        .node_id = node_id, .cluster_id = mgr_cluster_id(t->m), .role = role};
    assert_int_equal(pki_ca_sign_csr(t->m->ca, csr, strlen(csr), &sr, &cert, err, sizeof(err)), 0);
    free(csr);
    return cert;
}

static void test_tls_known_and_unknown_nodes(void **state)
{
    struct mt *t = *state;
    char tok[PKI_TOKEN_LEN + 1], err[512];
    mt_start_ok(t, true);

    /* a manager certificate of a node the cluster knows: control calls work over TLS */
    pki_key *key = NULL;
    char *csr = NULL;
    struct issued mi;
    mt_join_token(t, 1, false, tok, sizeof(tok));
    assert_int_equal(pki_key_generate(&key), 0);
    assert_int_equal(pki_csr_create(key, &csr), 0);
    assert_int_equal(issue(t, tok, csr, "m2", NULL, &mi), 0);
    int r = tls_list_nodes(t, mi.resp->cert_pem, key, err, sizeof(err));
    if (r != 0)
        fail_msg("known manager over TLS: %d %s", r, err);
    issued_clear(&mi);
    free(csr);
    pki_key_free(key);

    /* a worker certificate: the control API is for managers */
    mt_join_token(t, 0, false, tok, sizeof(tok));
    assert_int_equal(pki_key_generate(&key), 0);
    assert_int_equal(pki_csr_create(key, &csr), 0);
    struct issued wi;
    assert_int_equal(issue(t, tok, csr, "w2", NULL, &wi), 0);
    r = tls_list_nodes(t, wi.resp->cert_pem, key, err, sizeof(err));
    assert_int_equal(r, -EPERM);
    issued_clear(&wi);
    free(csr);
    pki_key_free(key);

    /* a valid manager certificate of a node the store does not hold (removed): refused */
    char ghost[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(ghost), 0);
    char *cert = sign_for(t, ghost, PKI_ROLE_MANAGER, &key);
    r = tls_list_nodes(t, cert, key, err, sizeof(err));
    assert_true(r < 0);
    free(cert);
    pki_key_free(key);
}

/* ------------------------------------------------------------------ renewal */

struct tls_session {
    net_client *c;
};

static void tls_open(struct mt *t, const char *cert, const pki_key *key, struct tls_session *ts)
{
    SSL_CTX *ctx = NULL;
    char err[256];
    const char *bundle = t->m->st.root_ca_pem;
    assert_int_equal(
        pki_tls_client_ctx(bundle, strlen(bundle), cert, strlen(cert), key, &ctx, err, sizeof(err)),
        0);
    struct sw_addr addr = t->m->bound_addr;
    struct conn cr = {0};
    assert_int_equal(net_client_connect_tcp(&t->loop, &addr, ctx, 5000, on_conn, &cr, &ts->c), 0);
    pki_tls_ctx_free(ctx);
    assert_true(mt_run_until(t, &cr.done, MT_WAIT_MS));
    if (cr.status != 0)
        fail_msg("connect: %d %s", cr.status, cr.error);
}

static void tls_close(struct mt *t, struct tls_session *ts)
{
    net_client_close(ts->c);
    mt_run_for(t, 10);
}

struct renewed {
    bool done;
    int status;
    char error[512];
    Swarm__IssueNodeCertificateResponse *resp;
};

static void on_renew(net_client *c, int status, const char *error, const uint8_t *payload,
                     size_t len, bool final, void *ud)
{
    struct renewed *r = ud;
    if (!final)
        return;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    if (status == 0)
        r->resp = swarm__issue_node_certificate_response__unpack(NULL, len, payload);
    r->done = true;
}

/* CA.RenewNodeCertificate over ts with a CSR (NULL: a fresh key's, returned in *ret_key). */
static int renew(struct mt *t, struct tls_session *ts, const char *csr_in, pki_key **ret_key,
                 struct renewed *out)
{
    char *csr = NULL;
    pki_key *key = NULL;
    if (!csr_in) {
        assert_int_equal(pki_key_generate(&key), 0);
        assert_int_equal(pki_csr_create(key, &csr), 0);
    }
    Swarm__RenewNodeCertificateRequest req = SWARM__RENEW_NODE_CERTIFICATE_REQUEST__INIT;
    req.csr_pem = (char *)(csr_in ? csr_in : csr);
    uint8_t *buf;
    size_t len;
    assert_int_equal(proto_pack(&req.base, &buf, &len), 0);
    memset(out, 0, sizeof(*out));
    assert_int_equal(
        net_client_call(ts->c, "CA.RenewNodeCertificate", buf, len, on_renew, out, NULL), 0);
    free(buf);
    free(csr);
    assert_true(mt_run_until(t, &out->done, MT_WAIT_MS));
    if (ret_key && out->status == 0)
        *ret_key = key;
    else
        pki_key_free(key);
    return out->status;
}

static void renewed_clear(struct renewed *r)
{
    if (r->resp)
        swarm__issue_node_certificate_response__free_unpacked(r->resp, NULL);
    r->resp = NULL;
}

/* A node renews over its mTLS connection without a token: same node ID and role, a new key,
 * the validity the cluster says now, and the node object records the new certificate. */
static void test_renew(void **state)
{
    struct mt *t = *state;
    char tok[PKI_TOKEN_LEN + 1];
    mt_start_ok(t, true);
    mt_join_token(t, 0, false, tok, sizeof(tok));
    pki_key *key = NULL, *key2 = NULL;
    char *csr = NULL;
    struct issued wi;
    assert_int_equal(pki_key_generate(&key), 0);
    assert_int_equal(pki_csr_create(key, &csr), 0);
    assert_int_equal(issue(t, tok, csr, "w1", NULL, &wi), 0);
    char node_id[SW_ID_LEN + 1];
    snprintf(node_id, sizeof(node_id), "%s", wi.resp->node_id);

    /* a changed --cert-expiry applies to the next issuance */
    const uint64_t two_hours = 2ULL * 3600 * SW_NSEC_PER_SEC;
    Swarm__UpdateClusterRequest uc = SWARM__UPDATE_CLUSTER_REQUEST__INIT;
    uc.set_cert_expiry = true;
    uc.cert_expiry_ns = two_hours;
    struct mt_reply r;
    assert_int_equal(mt_call(t, "Control.UpdateCluster", &uc.base, &r), 0);
    mt_reply_clear(&r);

    struct tls_session ts;
    tls_open(t, wi.resp->cert_pem, key, &ts);
    struct renewed rn;
    uint64_t before = sw_now_realtime_ns();
    if (renew(t, &ts, NULL, &key2, &rn) != 0)
        fail_msg("renew: %d %s", rn.status, rn.error);
    assert_string_equal(rn.resp->node_id, node_id);
    assert_int_equal(rn.resp->role, SWARM__NODE_ROLE__ROLE_WORKER);
    struct pki_identity id;
    char err[256];
    const char *bundle = t->m->st.root_ca_pem;
    assert_int_equal(pki_verify_cert(bundle, strlen(bundle), rn.resp->cert_pem,
                                     strlen(rn.resp->cert_pem), &id, err, sizeof(err)),
                     0);
    assert_string_equal(id.node_id, node_id);
    assert_string_equal(id.cluster_id, mgr_cluster_id(t->m));
    assert_int_equal(id.role, PKI_ROLE_WORKER);
    assert_true(pki_cert_matches_key(rn.resp->cert_pem, strlen(rn.resp->cert_pem), key2));
    assert_false(pki_cert_matches_key(rn.resp->cert_pem, strlen(rn.resp->cert_pem), key));
    assert_true(id.not_after_ns >= before + two_hours - 60 * SW_NSEC_PER_SEC);
    assert_true(id.not_after_ns <= sw_now_realtime_ns() + two_hours + 60 * SW_NSEC_PER_SEC);

    /* the node object shows the new certificate */
    Swarm__Node *n = find_node(t, node_id);
    assert_non_null(n);
    assert_string_equal(n->certificate->serial, id.serial);
    assert_string_equal(n->certificate->cert_pem, rn.resp->cert_pem);
    swarm__node__free_unpacked(n, NULL);

    /* a bad CSR is refused with the reason, and the connection keeps serving */
    struct renewed bad;
    assert_int_equal(renew(t, &ts, "not a csr", NULL, &bad), -EINVAL);
    assert_int_equal(renew(t, &ts, "", NULL, &bad), -EINVAL);
    assert_non_null(strstr(bad.error, "signing request"));
    /* a request with a field it does not know (field 9) */
    memset(&bad, 0, sizeof(bad));
    assert_int_equal(net_client_call(ts.c, "CA.RenewNodeCertificate",
                                     (const uint8_t *)"\x0a\x01x\x48\x01", 5, on_renew, &bad, NULL),
                     0);
    assert_true(mt_run_until(t, &bad.done, MT_WAIT_MS));
    assert_int_equal(bad.status, -EINVAL);
    tls_close(t, &ts);

    /* the renewed certificate works for the next connection, and renews again */
    tls_open(t, rn.resp->cert_pem, key2, &ts);
    struct renewed again;
    assert_int_equal(renew(t, &ts, NULL, NULL, &again), 0);
    assert_string_equal(again.resp->node_id, node_id);
    renewed_clear(&again);
    tls_close(t, &ts);

    /* the local socket is not a node: nothing to renew */
    Swarm__RenewNodeCertificateRequest req = SWARM__RENEW_NODE_CERTIFICATE_REQUEST__INIT;
    req.csr_pem = csr;
    assert_int_equal(mt_call(t, "CA.RenewNodeCertificate", &req.base, &r), -EPERM);
    mt_reply_clear(&r);

    renewed_clear(&rn);
    issued_clear(&wi);
    free(csr);
    pki_key_free(key);
    pki_key_free(key2);
}

/* A peer without a certificate cannot renew anything. */
static void test_renew_needs_certificate(void **state)
{
    struct mt *t = *state;
    mt_start_ok(t, true);
    SSL_CTX *ctx = NULL;
    char err[256];
    const char *bundle = t->m->st.root_ca_pem;
    assert_int_equal(
        pki_tls_client_ctx(bundle, strlen(bundle), NULL, 0, NULL, &ctx, err, sizeof(err)), 0);
    struct sw_addr addr = t->m->bound_addr;
    struct conn cr = {0};
    struct tls_session ts;
    assert_int_equal(net_client_connect_tcp(&t->loop, &addr, ctx, 5000, on_conn, &cr, &ts.c), 0);
    pki_tls_ctx_free(ctx);
    assert_true(mt_run_until(t, &cr.done, MT_WAIT_MS));
    assert_int_equal(cr.status, 0);
    struct renewed rn;
    assert_int_equal(renew(t, &ts, NULL, NULL, &rn), -EPERM);
    tls_close(t, &ts);
}

/* A manager's renewed certificate is presented from the next connection on. */
static void test_manager_presents_renewed(void **state)
{
    struct mt *t = *state;
    char err[256];
    mt_start_ok(t, true);
    pki_key *key = NULL;
    char *cert = sign_for(t, mgr_node_id(t->m), PKI_ROLE_MANAGER, &key);
    struct pki_identity want;
    assert_int_equal(pki_identity_from_pem(cert, strlen(cert), &want), 0);
    assert_int_equal(mgr_set_certificate(t->m, cert, key, err, sizeof(err)), 0);
    free(cert);
    pki_key_free(key); /* the manager keeps its own reference */

    /* a joining node's view: the server certificate is the new one */
    SSL_CTX *ctx = NULL;
    assert_int_equal(pki_tls_client_ctx(NULL, 0, NULL, 0, NULL, &ctx, err, sizeof(err)), 0);
    struct sw_addr addr = t->m->bound_addr;
    struct conn cr = {0};
    struct tls_session ts;
    assert_int_equal(net_client_connect_tcp(&t->loop, &addr, ctx, 5000, on_conn, &cr, &ts.c), 0);
    pki_tls_ctx_free(ctx);
    assert_true(mt_run_until(t, &cr.done, MT_WAIT_MS));
    assert_int_equal(cr.status, 0);
    const char *pem = net_client_server_cert_pem(ts.c);
    assert_non_null(pem);
    struct pki_identity got;
    assert_int_equal(pki_identity_from_pem(pem, strlen(pem), &got), 0);
    assert_string_equal(got.serial, want.serial);
    tls_close(t, &ts);

    /* a certificate that does not match the key is refused; the listener keeps the last */
    pki_key *other = NULL;
    assert_int_equal(pki_key_generate(&other), 0);
    cert = sign_for(t, mgr_node_id(t->m), PKI_ROLE_MANAGER, &key);
    assert_true(mgr_set_certificate(t->m, cert, other, err, sizeof(err)) < 0);
    free(cert);
    pki_key_free(key);
    pki_key_free(other);
    assert_int_equal(tls_list_nodes(t, t->m->st.node_cert_pem, t->m->st.node_key, err, sizeof(err)),
                     0);
}

const struct CMUnitTest mt_ca_tests[] = {
    cmocka_unit_test_setup_teardown(test_issue_worker_and_manager, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_issue_refusals, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_concurrent_issues, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_tls_known_and_unknown_nodes, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_renew, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_renew_needs_certificate, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_manager_presents_renewed, mt_setup, mt_teardown),
};
const size_t mt_ca_n = sizeof(mt_ca_tests) / sizeof(mt_ca_tests[0]);
