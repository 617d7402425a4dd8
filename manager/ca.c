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

int mgr__ca_reload(struct mgr *m)
{
    Swarm__Cluster *c = NULL;
    pki_ca *ca = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return r;
    const Swarm__RootCA *rc = c->root_ca;
    if (rc->ca_key_pem.len == 0 && c->spec && c->spec->external_ca_url[0]) {
        /* an external CA signs: no root key here */
        char *url = strdup(c->spec->external_ca_url);
        char *chain = strdup(rc->cross_signed_pem); /* a rotation to it: sent after leaves */
        mgr__cluster_free(c);
        if (!url || !chain) {
            free(url);
            free(chain);
            return -ENOMEM;
        }
        free(m->external_ca_url);
        m->external_ca_url = url;
        free(m->external_ca_chain);
        m->external_ca_chain = chain;
        pki_ca_free(m->ca);
        m->ca = NULL;
        return 0;
    }
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
    char hostname[256];
    char addr[80];
    bool rejoin; /* node_id is an existing node's, kept (swarmd join --rejoin) */
};

static void issue_committed(struct mgr *m, int status, void *userdata)
{
    struct issue_call *ic = userdata;
    if (status < 0) {
        char err[256];
        if (ic->rejoin && status == -EPERM)
            snprintf(err, sizeof(err),
                     "node %s may no longer join again with its ID (it came back in session, "
                     "or was promoted, meanwhile)",
                     ic->node_id);
        else
            snprintf(err, sizeof(err), "cannot record the %s: %s",
                     ic->rejoin ? "node's new certificate" : "new node", mgr__strerror(status));
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
            if (ic->rejoin)
                log_info("node %s joined again with its node ID (allowed by the operator)",
                         ic->node_id);
            else
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
    Swarm__Cluster *c = NULL;
    int r = pki_token_parse(token, &t, err, size);
    if (r < 0)
        return -EINVAL;
    r = mgr__get_cluster(m, &c);
    if (r < 0) {
        sw_erase(&t, sizeof(t));
        return r;
    }
    /* the digest of the cluster's trust bundle (it changes with a root rotation) */
    bool digest_ok = strcmp(t.digest, c->root_ca->digest) == 0;
    sw_erase(&t, sizeof(t));
    bool is_worker = digest_ok && pki_token_equal(token, c->join_tokens->worker);
    bool is_manager = digest_ok && pki_token_equal(token, c->join_tokens->manager);
    mgr__cluster_free(c);
    if (!digest_ok) {
        snprintf(err, size,
                 "the join token is for another swarm or an older root CA (CA digest mismatch); "
                 "get a current token with 'swarmctl join-token'");
        return -EPERM;
    }
    if (!is_worker && !is_manager) {
        snprintf(err, size,
                 "the join token is invalid or has been rotated; get a current token with "
                 "'swarmctl join-token'");
        return -EPERM;
    }
    *ret = is_manager ? PKI_ROLE_MANAGER : PKI_ROLE_WORKER;
    return 0;
}

/* swarmd join --rejoin: a node keeps its ID if the operator allowed it (node update
 * --allow-rejoin), it was a worker and joins with a worker token, and its CSR is signed with
 * the key of the last certificate the swarm recorded for it or of the one before (expired,
 * or of a root no longer trusted: that is why it joins again). */
static int rejoin_check(struct mgr *m, const Swarm__IssueNodeCertificateRequest *req,
                        enum pki_role role, char *err, size_t size)
{
    const char *id = req->rejoin_node_id;
    if (!sw_id_valid(id)) {
        snprintf(err, size, "invalid node ID to rejoin as");
        return -EINVAL;
    }
    if (role != PKI_ROLE_WORKER) {
        snprintf(err, size,
                 "a node joins again with its ID as the worker it was: use a worker token "
                 "(promote it afterwards)");
        return -EINVAL;
    }
    Swarm__Node *n = NULL;
    int r = mgr__get_node(m, id, &n);
    if (r < 0 || strcmp(n->id, id) != 0) {
        if (n)
            swarm__node__free_unpacked(n, NULL);
        snprintf(err, size,
                 "node %s is not in this swarm (removed?): join as a new node, without --rejoin",
                 id);
        return -ENOENT;
    }
    char why[200] = "";
    if (n->role != SWARM__NODE_ROLE__ROLE_WORKER ||
        n->desired_role != SWARM__NODE_ROLE__ROLE_WORKER) {
        snprintf(err, size,
                 "node %s is a manager: only a worker joins again with its ID (demote it "
                 "first: 'swarmctl node demote %s')",
                 id, id);
        r = -EPERM;
    } else if (!n->rejoin_allowed) {
        snprintf(err, size,
                 "node %s may not join again with its ID: on a manager, run 'swarmctl node "
                 "update --allow-rejoin %s' first",
                 id, id);
        r = -EPERM;
    } else {
        const char *certs[] = {n->certificate ? n->certificate->cert_pem : NULL,
                               n->previous_cert_pem};
        r = pki_rejoin_check(req->csr_pem, strlen(req->csr_pem), certs, SW_ARRAY_SIZE(certs), why,
                             sizeof(why));
        if (r < 0)
            snprintf(err, size,
                     "cannot join again as node %s: %s (a node without its key file comes back "
                     "as a new node: 'swarmctl node rm %s', then join without --rejoin)",
                     id, why, id);
    }
    swarm__node__free_unpacked(n, NULL);
    return r;
}

/* A new certificate for n (renewal, rejoin): the current one becomes the previous one (the
 * node still holds it if the answer is lost), an asked renewal is done. */
static int set_certificate(Swarm__Node *n, const char *cert_pem)
{
    /* (a failure fails the update, which then writes nothing) */
    Swarm__NodeCertificate *cert = calloc(1, sizeof(*cert));
    if (!cert ||
        mgr__set_str(&n->previous_cert_pem, n->certificate ? n->certificate->cert_pem : "") < 0) {
        free(cert);
        return -ENOMEM;
    }
    swarm__node_certificate__init(cert);
    mgr__fill_cert_info(cert, cert_pem);
    if (!cert->cert_pem) {
        swarm__node_certificate__free_unpacked(cert, NULL);
        return -ENOMEM;
    }
    if (n->certificate)
        swarm__node_certificate__free_unpacked(n->certificate, NULL);
    n->certificate = cert;
    n->cert_rotated = n->cert_rotate;
    return 0;
}

/* The rejoined node's object: its new certificate, where it is now. The permission stays
 * until the node is in session (a lost answer: the node runs the join again). */
static int record_rejoin(struct mgr *m, Swarm__Node *n, void *userdata)
{
    struct issue_call *ic = userdata;
    if (!n->rejoin_allowed || n->role != SWARM__NODE_ROLE__ROLE_WORKER ||
        n->desired_role != SWARM__NODE_ROLE__ROLE_WORKER)
        return -EPERM; /* changed since the check: back in session, or promoted */
    int r = set_certificate(n, ic->cert_pem);
    if (r >= 0)
        r = mgr__set_str(&n->hostname, ic->hostname);
    if (r >= 0 && ic->addr[0])
        r = mgr__set_str(&n->addr, ic->addr);
    return r;
}

/* The node object of a new node (known, not yet connected), proposed with its
 * certificate; issue_committed answers. A rejoining node's object is updated instead. */
static void issue_signed(struct mgr *m, int status, char *cert_pem, const char *err, void *userdata)
{
    struct issue_call *ic = userdata;
    _cleanup_free_ uint8_t *buf = NULL;
    Swarm__Node *n = NULL;
    int r = status;
    char why[256] = "";
    ic->cert_pem = cert_pem;
    if (r < 0) {
        snprintf(why, sizeof(why), "%s", err && err[0] ? err : strerror(-r));
        goto out;
    }
    if (ic->rejoin) {
        r = mgr__node_update(m, ic->node_id, record_rejoin, issue_committed, ic);
        if (r < 0) {
            snprintf(why, sizeof(why), "cannot record the node: %s", strerror(-r));
            goto out;
        }
        ic = NULL;
        goto out;
    }
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
    n->hostname = strdup(ic->hostname);
    n->addr = strdup(ic->addr);
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
        snprintf(why, sizeof(why), "cannot record the new node: %s", strerror(-r));
        goto out;
    }
    ic = NULL; /* owned by the proposal now */
out:
    if (n)
        swarm__node__free_unpacked(n, NULL);
    if (ic) {
        net_call_reply(ic->call, r, why[0] ? why : strerror(-r), NULL, 0);
        free(ic->cert_pem);
        free(ic);
    }
}

static void h_issue_node_certificate(net_call *call, const uint8_t *payload, size_t len,
                                     void *userdata)
{
    struct mgr *m = userdata;
    char err[256] = "";
    int r;

    if (!m->serving || !mgr__can_sign(m))
        return net_call_reply(call, -EAGAIN, "the manager is starting; try again", NULL, 0);
    Swarm__IssueNodeCertificateRequest *req = (Swarm__IssueNodeCertificateRequest *)mgr__request(
        call, &swarm__issue_node_certificate_request__descriptor, payload, len);
    if (!req)
        return;

    struct issue_call *ic = calloc(1, sizeof(*ic));
    if (!ic) {
        r = -ENOMEM;
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    ic->call = call;
    r = token_role(m, req->token, &ic->role, err, sizeof(err));
    if (r < 0)
        goto fail;
    if (!sw_hostname_valid(req->hostname)) {
        r = -EINVAL;
        snprintf(err, sizeof(err), "invalid hostname");
        goto fail;
    }
    struct sw_addr addr;
    if (req->addr[0] && sw_addr_parse(req->addr, 2377, 1, &addr) < 0) {
        r = -EINVAL;
        snprintf(err, sizeof(err), "invalid node address %.64s", req->addr);
        goto fail;
    }
    if (req->addr[0])
        sw_addr_format(&addr, ic->addr, sizeof(ic->addr));
    snprintf(ic->hostname, sizeof(ic->hostname), "%s", req->hostname);
    if (req->rejoin_node_id[0]) {
        r = rejoin_check(m, req, ic->role, err, sizeof(err));
        if (r < 0)
            goto fail;
        snprintf(ic->node_id, sizeof(ic->node_id), "%s", req->rejoin_node_id);
        ic->rejoin = true;
    } else if ((r = sw_id_generate(ic->node_id)) < 0) {
        goto fail;
    }
    if (req->token)
        sw_erase(req->token, strlen(req->token));
    char *csr = strdup(req->csr_pem);
    swarm__issue_node_certificate_request__free_unpacked(req, NULL);
    if (!csr) {
        free(ic);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    mgr__sign(m, csr, ic->node_id, ic->role, issue_signed, ic);
    free(csr);
    return;
fail:
    if (req->token)
        sw_erase(req->token, strlen(req->token));
    swarm__issue_node_certificate_request__free_unpacked(req, NULL);
    if (!err[0])
        snprintf(err, sizeof(err), "%s", strerror(-r));
    net_call_reply(call, r, err, NULL, 0);
    free(ic);
}

/* ------------------------------------------------------------------ renewal */

struct renew_call {
    net_call *call;
    enum pki_role role;
    char *cert_pem;
    char node_id[SW_ID_LEN + 1];
};

static int record_cert(struct mgr *m, Swarm__Node *n, void *userdata)
{
    struct renew_call *rc = userdata;
    return set_certificate(n, rc->cert_pem);
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
        mgr__rootca_renewed(m);
    }
    free(rc->cert_pem);
    free(rc);
}

/* A node renews its certificate over its mTLS connection: no token, the node ID comes from
 * the certificate it connected with, the role from the store (the node may have been
 * promoted or demoted since its last certificate). */
/* The renewed certificate goes into the node object (renew_committed answers). */
static void renew_signed(struct mgr *m, int status, char *cert_pem, const char *err, void *userdata)
{
    struct renew_call *rc = userdata;
    char why[256] = "";
    rc->cert_pem = cert_pem;
    int r = status;
    if (r >= 0) {
        r = mgr__node_update(m, rc->node_id, record_cert, renew_committed, rc);
        if (r >= 0)
            return; /* the update owns rc */
        snprintf(why, sizeof(why), "cannot record the renewed certificate: %s", strerror(-r));
    }
    net_call_reply(rc->call, r, why[0] ? why : err && err[0] ? err : strerror(-r), NULL, 0);
    free(rc->cert_pem);
    free(rc);
}

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
    if (!mgr__can_sign(m))
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
    snprintf(rc->node_id, sizeof(rc->node_id), "%s", peer->id.node_id);
    mgr__sign(m, req->csr_pem, peer->id.node_id, rc->role, renew_signed, rc);
    rc = NULL; /* renew_signed owns it */
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
