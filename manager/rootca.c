/* Root CA rotation (swarmctl ca --rotate): a new root, cross-signed by the current one; the
 * leader signs leaves with the new key and sends the cross-signed root after them, so they
 * chain to either root; every node is asked to renew (and takes the two-root bundle with
 * it); once every node holds a leaf of the new key the new root alone is trusted, the old
 * key is gone, both join tokens change, and the nodes renew once more to drop the old root. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "manager/internal.h"
#include "proto/frame.h"

char *mgr__trust_bundle(struct mgr *m)
{
    Swarm__Cluster *c = NULL;
    char *b = NULL;
    if (m->store && mgr__get_cluster(m, &c) >= 0 && c->root_ca && c->root_ca->ca_cert_pem[0])
        b = strdup(c->root_ca->ca_cert_pem);
    if (c)
        mgr__cluster_free(c);
    return b;
}

/* The first certificate of a PEM bundle (malloc'd). */
static char *first_cert(const char *pem)
{
    static const char end[] = "-----END CERTIFICATE-----";
    const char *e = strstr(pem, end);
    if (!e)
        return NULL;
    size_t n = (size_t)(e - pem) + sizeof(end) - 1;
    char *s = malloc(n + 2);
    if (!s)
        return NULL;
    memcpy(s, pem, n);
    s[n] = '\n';
    s[n + 1] = '\0';
    return s;
}

static void set_bytes(ProtobufCBinaryData *b, uint8_t *data, size_t len)
{
    if (b->data) {
        sw_erase(b->data, b->len);
        free(b->data);
    }
    b->data = data;
    b->len = len;
}

/* New tokens for the new bundle (their digest part changes with it). */
static int new_tokens(Swarm__Cluster *c)
{
    const char *bundle = c->root_ca->ca_cert_pem;
    char digest[PKI_TOKEN_DIGEST_LEN + 1], w[PKI_TOKEN_LEN + 1], mt[PKI_TOKEN_LEN + 1];
    int r = pki_ca_digest(bundle, strlen(bundle), digest);
    if (r >= 0)
        r = pki_token_generate(bundle, strlen(bundle), w);
    if (r >= 0)
        r = pki_token_generate(bundle, strlen(bundle), mt);
    if (r >= 0 && (r = mgr__set_str(&c->root_ca->digest, digest)) >= 0 &&
        (r = mgr__set_str(&c->join_tokens->worker, w)) >= 0)
        r = mgr__set_str(&c->join_tokens->manager, mt);
    sw_erase(w, sizeof(w));
    sw_erase(mt, sizeof(mt));
    return r;
}

/* ------------------------------------------------------------------ start */

struct rotate_call {
    net_call *call;
    bool set_expiry;
    uint64_t expiry_ns;
    pki_ca *given;                      /* --ca-cert/--ca-key, or NULL: a new root */
    char *external_url, *external_root; /* --external-ca: the signer and its root */
    char err[200];
};

static void rotate_call_free(struct rotate_call *rc)
{
    pki_ca_free(rc->given);
    free(rc->external_url);
    free(rc->external_root);
    free(rc);
}

static int rotate_mutate(struct mgr *m, Swarm__Cluster *c, void *userdata)
{
    struct rotate_call *rc = userdata;
    Swarm__RootCA *ca = c->root_ca;
    pki_ca *old = NULL, *fresh = NULL;
    _cleanup_free_ char *old_cert = NULL, *cross = NULL, *bundle = NULL;
    uint8_t *old_key = NULL, *new_key = NULL;
    size_t old_key_len = 0, new_key_len = 0;
    char kid[65];
    int r;
    bool again = ca->rotation_key_id[0] != '\0';
    if (ca->ca_key_pem.len == 0) {
        snprintf(rc->err, sizeof(rc->err),
                 "an external CA signs for this swarm: its root is rotated by its owner, not by "
                 "swarmd");
        return -EOPNOTSUPP;
    }
    /* the root being replaced: the one every node trusts from before (started again while
     * one runs: still that one, the last new root wins) */
    if (again) {
        old_cert = strdup(ca->rotation_old_cert_pem);
        old_key = malloc(ca->rotation_old_key_pem.len ? ca->rotation_old_key_pem.len : 1);
        if (old_key) {
            memcpy(old_key, ca->rotation_old_key_pem.data, ca->rotation_old_key_pem.len);
            old_key_len = ca->rotation_old_key_pem.len;
        }
    } else {
        old_cert = first_cert(ca->ca_cert_pem);
        old_key = malloc(ca->ca_key_pem.len ? ca->ca_key_pem.len : 1);
        if (old_key) {
            memcpy(old_key, ca->ca_key_pem.data, ca->ca_key_pem.len);
            old_key_len = ca->ca_key_pem.len;
        }
    }
    if (!old_cert || !old_key) {
        r = -ENOMEM;
        goto out;
    }
    if ((r = pki_ca_load(old_cert, strlen(old_cert), (const char *)old_key, old_key_len, &old)) <
            0 ||
        (!rc->given && !rc->external_root && (r = pki_ca_create(&fresh)) < 0))
        goto out;
    const pki_ca *next = rc->given ? rc->given : fresh;
    const char *next_pem = next ? pki_ca_cert_pem(next) : rc->external_root;
    if (strcmp(next_pem, old_cert) == 0) {
        snprintf(rc->err, sizeof(rc->err), "the given root is the current one");
        r = -EINVAL;
        goto out;
    }
    if ((r = pki_ca_cross_sign(old, next_pem, &cross, rc->err, sizeof(rc->err))) < 0 ||
        (r = pki_cert_key_id(next_pem, strlen(next_pem), kid)) < 0 ||
        (next && (r = pki_key_to_pem(pki_ca_key(next), (char **)&new_key, &new_key_len)) < 0))
        goto out;
    /* to an external CA: no root key here, the signer signs (and its leaves get the
     * cross-signed root appended until the rotation ends) */
    if (rc->external_url && c->spec &&
        (r = mgr__set_str(&c->spec->external_ca_url, rc->external_url)) < 0)
        goto out;
    size_t a = strlen(next_pem), b = strlen(old_cert);
    if (!(bundle = malloc(a + b + 1))) {
        r = -ENOMEM;
        goto out;
    }
    memcpy(bundle, next_pem, a); /* the first signs */
    memcpy(bundle + a, old_cert, b + 1);
    if ((r = mgr__set_str(&ca->ca_cert_pem, bundle)) < 0 ||
        (r = mgr__set_str(&ca->cross_signed_pem, cross)) < 0 ||
        (r = mgr__set_str(&ca->rotation_key_id, kid)) < 0 ||
        (r = mgr__set_str(&ca->rotation_old_cert_pem, old_cert)) < 0)
        goto out;
    set_bytes(&ca->ca_key_pem, new_key, new_key_len);
    new_key = NULL;
    set_bytes(&ca->rotation_old_key_pem, old_key, old_key_len);
    old_key = NULL;
    if ((r = new_tokens(c)) < 0)
        goto out;
    if (rc->set_expiry && c->spec)
        c->spec->cert_expiry_ns = rc->expiry_ns;
out:
    if (old_key) {
        sw_erase(old_key, old_key_len);
        free(old_key);
    }
    if (new_key) {
        sw_erase(new_key, new_key_len);
        free(new_key);
    }
    pki_ca_free(old);
    pki_ca_free(fresh);
    return r;
}

/* Every node renews (the dispatcher tells it at its next heartbeat). */
static int ask_all_to_renew(struct mgr *m, struct mgr_batch *b, void *userdata)
{
    struct mgr_objs nodes = {0};
    int r = mgr__list(m, STORE_NODES, &swarm__node__descriptor, &nodes);
    for (size_t i = 0; r >= 0 && i < nodes.n; i++) {
        Swarm__Node *n = (Swarm__Node *)nodes.v[i];
        n->cert_rotate = SW_MAX(n->cert_rotate, n->cert_rotated) + 1;
        r = mgr__batch_add(b, STORE_UPDATE, STORE_NODES, n->id, &n->base);
    }
    mgr__objs_free(&nodes);
    return r;
}

/* The node holds a leaf the root with key id kid signed. */
static bool on_root(const Swarm__Node *n, const char *kid)
{
    return n->certificate && n->certificate->authority_key_id &&
           strcmp(n->certificate->authority_key_id, kid) == 0;
}

/* A rotation asks the nodes not yet on the new root to renew in batches: at most
 * ROTATION_BATCH asked and not yet renewed at a time (the rest as those finish). */
#define ROTATION_BATCH 100

static int ask_next_batch(struct mgr *m, struct mgr_batch *b, void *userdata)
{
    m->rootca_renewed = 0;
    Swarm__Cluster *c = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0)
        return r;
    char kid[65];
    snprintf(kid, sizeof(kid), "%s", c->root_ca ? c->root_ca->rotation_key_id : "");
    mgr__cluster_free(c);
    if (!kid[0])
        return 0;
    struct mgr_objs nodes = {0};
    r = mgr__list(m, STORE_NODES, &swarm__node__descriptor, &nodes);
    unsigned in_flight = 0;
    for (size_t i = 0; r >= 0 && i < nodes.n; i++) {
        const Swarm__Node *n = (const Swarm__Node *)nodes.v[i];
        in_flight += !on_root(n, kid) && !n->rejoin_allowed && n->cert_rotate > n->cert_rotated;
    }
    for (size_t i = 0; r >= 0 && i < nodes.n && in_flight < ROTATION_BATCH; i++) {
        Swarm__Node *n = (Swarm__Node *)nodes.v[i];
        if (on_root(n, kid) || n->rejoin_allowed || n->cert_rotate > n->cert_rotated)
            continue;
        n->cert_rotate = n->cert_rotated + 1;
        r = mgr__batch_add(b, STORE_UPDATE, STORE_NODES, n->id, &n->base);
        in_flight++;
    }
    mgr__objs_free(&nodes);
    return r;
}

static void renewals_asked(struct mgr *m, int status, void *userdata)
{
    if (status < 0)
        log_warn("root CA: cannot ask the nodes to renew: %s", mgr__strerror(status));
}

static void next_asked(struct mgr *m, int status, void *userdata)
{
    m->rootca_asking = false;
    renewals_asked(m, status, userdata);
}

void mgr__rootca_renewed(struct mgr *m)
{
    if (!m->leading || m->rootca_asking || ++m->rootca_renewed < ROTATION_BATCH / 2)
        return;
    m->rootca_asking = true; /* ask_next_batch finds nothing to do outside a rotation */
    if (mgr__batch_update(m, ask_next_batch, next_asked, NULL) < 0)
        m->rootca_asking = false;
}

static void renewals_forced(struct mgr *m, int status, void *userdata)
{
    net_call *call = userdata;
    if (status < 0)
        return mgr__reply_errno(call, status, "cannot ask the nodes to renew");
    log_info("every node was asked to renew its certificate");
    Swarm__GetClusterResponse resp = SWARM__GET_CLUSTER_RESPONSE__INIT;
    mgr__reply_msg(call, &resp.base);
}

static void rotate_committed(struct mgr *m, int status, void *userdata)
{
    struct rotate_call *rc = userdata;
    net_call *call = rc->call;
    if (status < 0) {
        if (rc->err[0])
            net_call_reply(call, status, rc->err, NULL, 0);
        else
            mgr__reply_errno(call, status, "cannot start the root CA rotation");
        rotate_call_free(rc);
        return;
    }
    rotate_call_free(rc);
    int r = mgr__ca_reload(m);
    if (r < 0)
        log_warn("root CA: cannot load the new root: %s", strerror(-r));
    log_info("root CA rotation started: every node renews into the new root, %d at a time",
             ROTATION_BATCH);
    if (mgr__batch_update(m, ask_next_batch, renewals_asked, NULL) < 0)
        log_warn("root CA: cannot ask the nodes to renew");
    Swarm__GetClusterResponse resp = SWARM__GET_CLUSTER_RESPONSE__INIT;
    resp.root_rotation = true;
    mgr__reply_msg(call, &resp.base);
}

static void h_rotate_ca(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    struct mgr *m = userdata;
    if (!mgr__serving(m, call))
        return;
    Swarm__RotateCARequest *req = (Swarm__RotateCARequest *)mgr__request(
        call, &swarm__rotate_carequest__descriptor, payload, len);
    if (!req)
        return;
    struct rotate_call *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        swarm__rotate_carequest__free_unpacked(req, NULL);
        return net_call_reply(call, -ENOMEM, "out of memory", NULL, 0);
    }
    rc->call = call;
    rc->set_expiry = req->set_cert_expiry;
    rc->expiry_ns = req->cert_expiry_ns;
    const char *bad = NULL;
    if (req->external_ca_url[0]) {
        /* to an external CA: its root, no key */
        uint64_t na = 0;
        char kid[65];
        if (!req->ca_cert_pem[0] || req->ca_key_pem.len)
            bad = "--external-ca takes the signer's root certificate (--ca-cert) and no key";
        else if (pki_cert_key_id(req->ca_cert_pem, strlen(req->ca_cert_pem), kid) < 0 ||
                 pki_cert_not_after(req->ca_cert_pem, strlen(req->ca_cert_pem), &na) < 0 ||
                 na <= sw_now_realtime_ns() + PKI_CERT_VALIDITY_MIN_NS)
            bad =
                "the external CA's root must be a CA certificate with a subject key id, valid "
                "beyond the hour";
        else if (!(rc->external_url = strdup(req->external_ca_url)) ||
                 !(rc->external_root = strdup(req->ca_cert_pem)))
            bad = "out of memory";
    } else if (req->ca_cert_pem[0] || req->ca_key_pem.len) {
        /* bring your own root: a CA certificate valid an hour from now, with its P-256 key */
        uint64_t na = 0;
        if (pki_ca_load(req->ca_cert_pem, strlen(req->ca_cert_pem),
                        (const char *)req->ca_key_pem.data, req->ca_key_pem.len, &rc->given) < 0)
            bad = "the given root CA is not a CA certificate with its matching ECDSA P-256 key";
        else if (pki_cert_not_after(req->ca_cert_pem, strlen(req->ca_cert_pem), &na) < 0 ||
                 na <= sw_now_realtime_ns() + PKI_CERT_VALIDITY_MIN_NS)
            bad = "the given root CA expires within the hour";
    }
    if (req->ca_key_pem.data)
        sw_erase(req->ca_key_pem.data, req->ca_key_pem.len);
    bool force_renew = req->force_renew;
    swarm__rotate_carequest__free_unpacked(req, NULL);
    if (!bad && rc->set_expiry && rc->expiry_ns < PKI_CERT_VALIDITY_MIN_NS)
        bad = "the certificate expiry must be at least 1h";
    if (!bad && force_renew && (rc->given || rc->external_url || rc->set_expiry))
        bad =
            "--force-rotate renews the certificates under the current root; it takes no root "
            "or expiry";
    if (bad) {
        rotate_call_free(rc);
        return net_call_reply(call, -EINVAL, bad, NULL, 0);
    }
    if (force_renew) {
        rotate_call_free(rc);
        int r = mgr__batch_update(m, ask_all_to_renew, renewals_forced, call);
        if (r < 0)
            mgr__reply_errno(call, r, "cannot ask the nodes to renew");
        return;
    }
    int r = mgr__cluster_update(m, rotate_mutate, rotate_committed, rc);
    if (r < 0) {
        rotate_call_free(rc);
        mgr__reply_errno(call, r, "cannot start the root CA rotation");
    }
}

/* ------------------------------------------------------------------ progress, the end */

int mgr__rootca_progress(struct mgr *m, const Swarm__Cluster *c, unsigned *ret_done,
                         unsigned *ret_total)
{
    const char *kid = c->root_ca ? c->root_ca->rotation_key_id : "";
    *ret_done = *ret_total = 0;
    if (!kid[0])
        return 0;
    struct mgr_objs nodes = {0};
    int r = mgr__list(m, STORE_NODES, &swarm__node__descriptor, &nodes);
    for (size_t i = 0; r >= 0 && i < nodes.n; i++) {
        const Swarm__Node *n = (const Swarm__Node *)nodes.v[i];
        if (n->rejoin_allowed)
            continue; /* down; it joins again on the new root (swarmd join --rejoin) */
        (*ret_total)++;
        *ret_done += on_root(n, kid);
    }
    mgr__objs_free(&nodes);
    return r < 0 ? r : 1;
}

static int finish_mutate(struct mgr *m, Swarm__Cluster *c, void *userdata)
{
    Swarm__RootCA *ca = c->root_ca;
    if (!ca->rotation_key_id[0])
        return -EALREADY;
    _cleanup_free_ char *root = first_cert(ca->ca_cert_pem);
    if (!root)
        return -EBADMSG;
    int r;
    if ((r = mgr__set_str(&ca->ca_cert_pem, root)) < 0 ||
        (r = mgr__set_str(&ca->cross_signed_pem, "")) < 0 ||
        (r = mgr__set_str(&ca->rotation_key_id, "")) < 0 ||
        (r = mgr__set_str(&ca->rotation_old_cert_pem, "")) < 0)
        return r;
    set_bytes(&ca->rotation_old_key_pem, NULL, 0); /* the old key is gone */
    return new_tokens(c);
}

static void finished(struct mgr *m, int status, void *userdata)
{
    m->rootca_finishing = false;
    if (status == -EALREADY)
        return;
    if (status < 0) {
        log_warn("root CA: cannot finish the rotation: %s", mgr__strerror(status));
        return;
    }
    int r = mgr__ca_reload(m);
    if (r < 0)
        log_warn("root CA: cannot load the root: %s", strerror(-r));
    log_info(
        "root CA rotation complete: the new root alone is trusted, the old key is gone, "
        "the join tokens changed");
    /* once more, so that every node trusts the new root alone */
    if (mgr__batch_update(m, ask_all_to_renew, renewals_asked, NULL) < 0)
        log_warn("root CA: cannot ask the nodes to renew");
}

void mgr__rootca_tick(struct mgr *m)
{
    Swarm__Cluster *c = NULL;
    unsigned done = 0, total = 0;
    if (mgr__get_cluster(m, &c) < 0)
        return;
    /* any manager signs renewals: with the root (and chain) the cluster names now */
    if (c->root_ca && strcmp(c->root_ca->digest, m->ca_digest) != 0 && mgr__ca_reload(m) >= 0)
        snprintf(m->ca_digest, sizeof(m->ca_digest), "%s", c->root_ca->digest);
    if (!m->leading || m->rootca_finishing) {
        mgr__cluster_free(c);
        return;
    }
    int r = mgr__rootca_progress(m, c, &done, &total);
    mgr__cluster_free(c);
    if (r > 0 && done < total) /* the next nodes, as the earlier ones renewed */
        (void)mgr__batch_update(m, ask_next_batch, renewals_asked, NULL);
    if (r <= 0 || done < total)
        return;
    m->rootca_finishing = true;
    if (mgr__cluster_update(m, finish_mutate, finished, NULL) < 0)
        m->rootca_finishing = false;
}

int mgr__rootca_register(struct mgr *m)
{
    return mgr__register_leader_only(m, "Control.RotateCA", NET_AUTH_MANAGER, h_rotate_ca);
}
