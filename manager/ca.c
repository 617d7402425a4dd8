/* The CA server: hands out the root CA bundle and issues node certificates to holders of a
 * valid join token (both open to peers without a certificate), and renews a node's
 * certificate over its mTLS connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

#define CSR_MAX 16384

int mgr__ca_reload(struct mgr *m)
{
    Swarm__Cluster *c = NULL;
    pki_ca *ca = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return r;
    const Swarm__RootCA *rc = c->root_ca;
    r = pki_ca_load(rc->ca_cert_pem, strlen(rc->ca_cert_pem), (const char *)rc->ca_key_pem.data,
                    rc->ca_key_pem.len, &ca);
    if (r >= 0) /* during a root rotation leaves go out with the cross-signed new root */
        r = pki_ca_set_chain(ca, rc->cross_signed_pem);
    mgr__cluster_free(c);
    if (r < 0)
        return r;
    pki_ca_free(m->ca);
    m->ca = ca;
    return 0;
}

static void h_get_root_ca(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    Swarm__GetRootCAResponse resp = SWARM__GET_ROOT_CARESPONSE__INIT;
    _cleanup_free_ char *bundle = mgr__trust_bundle(m);
    resp.ca_cert_pem = bundle ? bundle : m->st.root_ca_pem;
    resp.now_ns = sw_now_realtime_ns();
    uint8_t *buf;
    size_t n;
    if (proto_pack(&resp.base, &buf, &n) < 0)
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    net_call_reply(call, 0, NULL, buf, n);
    free(buf);
}

struct issue_call {
    net_call *call;
    char node_id[SW_ID_LEN + 1];
    enum pki_role role;
    char *cert_pem;
};

static void issue_committed(struct mgr *m, int status, void *userdata)
{
    struct issue_call *ic = userdata;
    if (status < 0) {
        char err[256];
        snprintf(err, sizeof(err), "cannot record the new node: %s", mgr__strerror(status));
        net_call_reply(ic->call, status, err, NULL, 0);
    } else {
        Swarm__IssueNodeCertificateResponse resp = SWARM__ISSUE_NODE_CERTIFICATE_RESPONSE__INIT;
        resp.node_id = ic->node_id;
        resp.cluster_id = m->st.cluster_id;
        resp.role = ic->role == PKI_ROLE_MANAGER ? SWARM__NODE_ROLE__ROLE_MANAGER
                                                 : SWARM__NODE_ROLE__ROLE_WORKER;
        resp.cert_pem = ic->cert_pem;
        _cleanup_free_ char *bundle = mgr__trust_bundle(m);
        resp.ca_cert_pem = bundle ? bundle : m->st.root_ca_pem;
        uint8_t *buf;
        size_t n;
        if (proto_pack(&resp.base, &buf, &n) < 0) {
            net_call_reply(ic->call, -ENOMEM, "out of memory", NULL, 0);
        } else {
            log_info("issued a %s certificate to new node %s",
                     ic->role == PKI_ROLE_MANAGER ? "manager" : "worker", ic->node_id);
            net_call_reply(ic->call, 0, NULL, buf, n);
            free(buf);
        }
    }
    free(ic->cert_pem);
    free(ic);
}

/* Which role a presented token grants, checked in constant time against both. */
static int token_role(struct mgr *m, const char *token, enum pki_role *ret, char *err, size_t size)
{
    struct pki_token t;
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    int r = pki_token_parse(token, &t, err, size);
    if (r < 0)
        return -EINVAL;
    _cleanup_free_ char *bundle = mgr__trust_bundle(m); /* the cluster's, after a rotation */
    const char *b = bundle ? bundle : m->st.root_ca_pem;
    r = pki_ca_digest(b, strlen(b), digest);
    if (r < 0)
        return r;
    if (strcmp(t.digest, digest) != 0) {
        snprintf(err, size,
                 "the join token is for another swarm or an older root CA (CA digest mismatch); "
                 "get a current token with 'swarmctl join-token'");
        sw_erase(&t, sizeof(t));
        return -EPERM;
    }
    sw_erase(&t, sizeof(t));
    Swarm__Cluster *c = NULL;
    r = mgr__get_cluster(m, &c);
    if (r < 0)
        return r;
    bool is_worker = pki_token_equal(token, c->join_tokens->worker);
    bool is_manager = pki_token_equal(token, c->join_tokens->manager);
    mgr__cluster_free(c);
    if (!is_worker && !is_manager) {
        snprintf(err, size,
                 "the join token is invalid or has been rotated; get a current token with "
                 "'swarmctl join-token'");
        return -EPERM;
    }
    *ret = is_manager ? PKI_ROLE_MANAGER : PKI_ROLE_WORKER;
    return 0;
}

/* Sign a node's CSR: subject from node_id and role, validity the cluster's current
 * cert expiry (a changed --cert-expiry applies from the next issuance on). */
static int sign_for(struct mgr *m, const char *csr_pem, const char *node_id, enum pki_role role,
                    char **ret_cert, char *err, size_t size)
{
    size_t csr_len = strlen(csr_pem);
    if (csr_len == 0 || csr_len > CSR_MAX) {
        snprintf(err, size, "a certificate signing request of at most %d bytes is required",
                 CSR_MAX);
        return -EINVAL;
    }
    Swarm__Cluster *c = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0) {
        snprintf(err, size, "cannot read the cluster: %s", strerror(-r));
        return r;
    }
    struct pki_sign_request sr = {.node_id = node_id,
                                  .cluster_id = m->st.cluster_id,
                                  .role = role,
                                  .validity_ns = c->spec->cert_expiry_ns};
    mgr__cluster_free(c);
    return pki_ca_sign_csr(m->ca, csr_pem, csr_len, &sr, ret_cert, err, size);
}

static void h_issue_node_certificate(net_call *call, const uint8_t *payload, size_t len,
                                     void *userdata)
{
    struct mgr *m = userdata;
    char err[256] = "";
    Swarm__Node *n = NULL;
    _cleanup_free_ uint8_t *buf = NULL;
    bool handed = false;
    int r;

    if (!m->serving || !m->ca)
        return net_call_reply(call, -EAGAIN, "the manager is starting; try again", NULL, 0);
    Swarm__IssueNodeCertificateRequest *req = (Swarm__IssueNodeCertificateRequest *)mgr__request(
        call, &swarm__issue_node_certificate_request__descriptor, payload, len);
    if (!req)
        return;

    struct issue_call *ic = calloc(1, sizeof(*ic));
    if (!ic) {
        r = -ENOMEM;
        snprintf(err, sizeof(err), "out of memory");
        goto out;
    }
    ic->call = call;
    r = token_role(m, req->token, &ic->role, err, sizeof(err));
    if (r < 0)
        goto out;
    if (!sw_hostname_valid(req->hostname)) {
        r = -EINVAL;
        snprintf(err, sizeof(err), "invalid hostname");
        goto out;
    }
    struct sw_addr addr;
    if (req->addr[0] && sw_addr_parse(req->addr, 2377, 1, &addr) < 0) {
        r = -EINVAL;
        snprintf(err, sizeof(err), "invalid node address %.64s", req->addr);
        goto out;
    }
    r = sw_id_generate(ic->node_id);
    if (r < 0)
        goto out;
    r = sign_for(m, req->csr_pem, ic->node_id, ic->role, &ic->cert_pem, err, sizeof(err));
    if (r < 0)
        goto out;

    /* the node object: known, not yet connected */
    n = calloc(1, sizeof(*n));
    Swarm__Meta *meta = calloc(1, sizeof(*meta));
    Swarm__NodeCertificate *cert = calloc(1, sizeof(*cert));
    if (!n || !meta || !cert) {
        free(n);
        free(meta);
        free(cert);
        n = NULL;
        r = -ENOMEM;
        goto out;
    }
    swarm__node__init(n);
    swarm__meta__init(meta);
    swarm__node_certificate__init(cert);
    meta->created_at = meta->updated_at = sw_now_realtime_ns();
    n->meta = meta;
    n->id = strdup(ic->node_id);
    n->role = n->desired_role = ic->role == PKI_ROLE_MANAGER ? SWARM__NODE_ROLE__ROLE_MANAGER
                                                             : SWARM__NODE_ROLE__ROLE_WORKER;
    n->hostname = strdup(req->hostname);
    char abuf[80] = "";
    if (req->addr[0])
        sw_addr_format(&addr, abuf, sizeof(abuf));
    n->addr = strdup(abuf);
    n->state = SWARM__NODE_STATE__NODE_UNKNOWN;
    mgr__fill_cert_info(cert, ic->cert_pem);
    n->certificate = cert;
    if (!n->id || !n->hostname || !n->addr) {
        r = -ENOMEM;
        goto out;
    }
    size_t blen;
    r = proto_pack(&n->base, &buf, &blen);
    if (r < 0)
        goto out;
    struct store_action a = {
        .kind = STORE_CREATE, .table = STORE_NODES, .id = ic->node_id, .value = buf, .len = blen};
    r = mgr__propose(m, &a, 1, issue_committed, ic);
    if (r < 0) {
        snprintf(err, sizeof(err), "cannot record the new node: %s", strerror(-r));
        goto out;
    }
    handed = true; /* ic is owned by the proposal now */
out:
    if (n)
        swarm__node__free_unpacked(n, NULL);
    if (req->token)
        sw_erase(req->token, strlen(req->token));
    swarm__issue_node_certificate_request__free_unpacked(req, NULL);
    if (!handed) {
        if (!err[0])
            snprintf(err, sizeof(err), "%s", strerror(-r));
        net_call_reply(call, r, err, NULL, 0);
        if (ic)
            free(ic->cert_pem);
        free(ic);
    }
}

/* ------------------------------------------------------------------ renewal */

struct renew_call {
    net_call *call;
    enum pki_role role;
    char *cert_pem;
};

static int record_cert(struct mgr *m, Swarm__Node *n, void *userdata)
{
    struct renew_call *rc = userdata;
    Swarm__NodeCertificate *cert = calloc(1, sizeof(*cert));
    if (!cert)
        return -ENOMEM;
    swarm__node_certificate__init(cert);
    mgr__fill_cert_info(cert, rc->cert_pem);
    if (!cert->cert_pem) {
        swarm__node_certificate__free_unpacked(cert, NULL);
        return -ENOMEM;
    }
    if (n->certificate)
        swarm__node_certificate__free_unpacked(n->certificate, NULL);
    n->certificate = cert;
    n->cert_rotated = n->cert_rotate; /* a forced rotation is done */
    return 0;
}

static void renew_committed(struct mgr *m, int status, void *userdata)
{
    struct renew_call *rc = userdata;
    const struct net_peer *peer = net_call_peer(rc->call);
    if (status == -ENOENT) {
        net_call_reply(rc->call, -EPERM, "this node has been removed from the swarm", NULL, 0);
    } else if (status < 0) {
        mgr__reply_errno(rc->call, status, "cannot record the renewed certificate");
    } else {
        Swarm__IssueNodeCertificateResponse resp = SWARM__ISSUE_NODE_CERTIFICATE_RESPONSE__INIT;
        resp.node_id = (char *)peer->id.node_id;
        resp.cluster_id = m->st.cluster_id;
        resp.role = rc->role == PKI_ROLE_MANAGER ? SWARM__NODE_ROLE__ROLE_MANAGER
                                                 : SWARM__NODE_ROLE__ROLE_WORKER;
        resp.cert_pem = rc->cert_pem;
        _cleanup_free_ char *bundle = mgr__trust_bundle(m);
        resp.ca_cert_pem = bundle ? bundle : m->st.root_ca_pem;
        log_debug("renewed the certificate of node %s", peer->id.node_id);
        mgr__reply_msg(rc->call, &resp.base);
    }
    free(rc->cert_pem);
    free(rc);
}

/* A node renews its certificate over its mTLS connection: no token, the node ID comes from
 * the certificate it connected with, the role from the store (the node may have been
 * promoted or demoted since its last certificate). */
static void h_renew_node_certificate(net_call *call, const uint8_t *payload, size_t len,
                                     void *userdata)
{
    struct mgr *m = userdata;
    const struct net_peer *peer = net_call_peer(call);
    char err[256] = "";
    Swarm__Node *n = NULL;
    struct renew_call *rc = NULL;
    int r;

    if (!mgr__serving(m, call))
        return;
    if (!m->ca)
        return net_call_reply(call, -EAGAIN, "the manager is starting; try again", NULL, 0);
    if (peer->kind != NET_PEER_NODE)
        return net_call_reply(call, -EPERM, "only a node can renew its certificate", NULL, 0);
    Swarm__RenewNodeCertificateRequest *req = (Swarm__RenewNodeCertificateRequest *)mgr__request(
        call, &swarm__renew_node_certificate_request__descriptor, payload, len);
    if (!req)
        return;
    r = mgr__get_node(m, peer->id.node_id, &n);
    if (r == -ENOENT) {
        r = -EPERM;
        snprintf(err, sizeof(err), "this node has been removed from the swarm");
        goto out;
    }
    if (r < 0)
        goto out;
    rc = calloc(1, sizeof(*rc));
    if (!rc) {
        r = -ENOMEM;
        goto out;
    }
    rc->call = call;
    /* the role the operator wants: a promoted node gets its manager certificate this way
     * (then joins raft), a demoted one its worker certificate (after it left raft) */
    rc->role =
        n->desired_role == SWARM__NODE_ROLE__ROLE_MANAGER ? PKI_ROLE_MANAGER : PKI_ROLE_WORKER;
    r = sign_for(m, req->csr_pem, peer->id.node_id, rc->role, &rc->cert_pem, err, sizeof(err));
    if (r < 0)
        goto out;
    r = mgr__node_update(m, peer->id.node_id, record_cert, renew_committed, rc);
    if (r < 0) {
        snprintf(err, sizeof(err), "cannot record the renewed certificate: %s", strerror(-r));
        goto out;
    }
    rc = NULL; /* the update owns it */
out:
    if (n)
        swarm__node__free_unpacked(n, NULL);
    swarm__renew_node_certificate_request__free_unpacked(req, NULL);
    if (rc) {
        free(rc->cert_pem);
        free(rc);
    }
    if (r < 0)
        net_call_reply(call, r, err[0] ? err : strerror(-r), NULL, 0);
}

int mgr__ca_register(struct mgr *m)
{
    int r = net_server_register(m->server, "CA.GetRootCA", NET_AUTH_ANY, h_get_root_ca, m);
    if (r >= 0)
        r = mgr__register_leader_only(m, "CA.IssueNodeCertificate", NET_AUTH_ANY,
                                      h_issue_node_certificate);
    if (r >= 0)
        r = net_server_register(m->server, "CA.RenewNodeCertificate", NET_AUTH_NODE,
                                h_renew_node_certificate, m);
    return r;
}
