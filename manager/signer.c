/* Signing a node's certificate: with the root key the cluster holds (at once, on the loop),
 * or through an external cfssl CA (a blocking HTTP(S) exchange, on libuv's thread pool, with
 * a timeout; the answer must chain to the cluster's root and say what was asked). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "manager/internal.h"
#include "net/cfssl-client.h"

#define CSR_MAX (16 * 1024)
#define EXTERNAL_TIMEOUT_MS 10000u

bool mgr__can_sign(const struct mgr *m)
{
    return m->ca || m->external_ca_url;
}

struct sign_job {
    uv_work_t work;
    struct mgr *m;
    mgr_signed_fn done;
    void *userdata;
    /* inputs, owned: the thread touches nothing of m */
    char *url, *root, *csr, *client_cert, *chain;
    pki_key *client_key;
    char node_id[SW_ID_LEN + 1], cluster_id[SW_ID_LEN + 1];
    enum pki_role role;
    uint64_t validity_ns;
    /* outputs */
    int status;
    char *cert;
    char err[512];
};

static void job_free(struct sign_job *j)
{
    free(j->url);
    free(j->root);
    free(j->csr);
    free(j->client_cert);
    free(j->chain);
    pki_key_free(j->client_key);
    free(j->cert);
    free(j);
}

static void sign_work(uv_work_t *w)
{
    struct sign_job *j = w->data;
    struct pki_sign_request req = {.node_id = j->node_id,
                                   .cluster_id = j->cluster_id,
                                   .role = j->role,
                                   .validity_ns = j->validity_ns};
    /* the manager's own certificate for a signer that asks for one (mTLS) */
    j->status =
        net_cfssl_sign(j->url, NULL, j->client_cert, j->client_key, NULL, EXTERNAL_TIMEOUT_MS,
                       j->csr, &req, j->root, &j->cert, j->err, sizeof(j->err));
    if (j->status >= 0 && j->chain && j->chain[0]) {
        size_t a = strlen(j->cert), b = strlen(j->chain);
        char *both = realloc(j->cert, a + b + 2);
        if (!both) {
            j->status = -ENOMEM;
            return;
        }
        if (a && both[a - 1] != '\n')
            both[a++] = '\n';
        memcpy(both + a, j->chain, b + 1);
        j->cert = both;
    }
}

static void sign_done(uv_work_t *w, int status)
{
    struct sign_job *j = w->data;
    struct mgr *m = j->m;
    char err[600] = "";
    if ((status < 0 || m->stopping) && j->status >= 0)
        j->status = -ECANCELED; /* stopping: the caller must not touch the store */
    if (j->status < 0)
        snprintf(err, sizeof(err), "the external CA did not sign the certificate: %s",
                 j->err[0] ? j->err : strerror(-j->status));
    char *cert = j->status >= 0 ? j->cert : NULL;
    if (cert)
        j->cert = NULL;
    /* whatever went wrong with the signer, the caller is told the signing failed (a
     * -ECONNREFUSED passed on would read as this manager being unreachable) */
    j->done(m, j->status < 0 ? (j->status == -ECANCELED ? -ECANCELED : -EREMOTEIO) : 0, cert, err,
            j->userdata);
    job_free(j);
    mgr__close_done(m); /* the job held m */
}

void mgr__sign(struct mgr *m, const char *csr_pem, const char *node_id, enum pki_role role,
               mgr_signed_fn done, void *userdata)
{
    char err[256] = "";
    size_t csr_len = csr_pem ? strlen(csr_pem) : 0;
    if (csr_len == 0 || csr_len > CSR_MAX) {
        snprintf(err, sizeof(err), "a certificate signing request of at most %d bytes is required",
                 CSR_MAX);
        return done(m, -EINVAL, NULL, err, userdata);
    }
    Swarm__Cluster *c = NULL;
    int r = mgr__get_cluster(m, &c);
    if (r < 0) {
        snprintf(err, sizeof(err), "cannot read the cluster: %s", strerror(-r));
        return done(m, r, NULL, err, userdata);
    }
    struct pki_sign_request sr = {.node_id = node_id,
                                  .cluster_id = m->st.cluster_id,
                                  .role = role,
                                  .validity_ns = c->spec->cert_expiry_ns};
    if (m->ca) {
        char *cert = NULL;
        mgr__cluster_free(c);
        r = pki_ca_sign_csr(m->ca, csr_pem, csr_len, &sr, &cert, err, sizeof(err));
        return done(m, r < 0 ? r : 0, cert, err, userdata);
    }
    if (!m->external_ca_url) {
        mgr__cluster_free(c);
        return done(m, -EAGAIN, NULL, "the manager is starting; try again", userdata);
    }
    struct sign_job *j = calloc(1, sizeof(*j));
    if (j) {
        j->url = strdup(m->external_ca_url);
        j->root = strdup(c->root_ca->ca_cert_pem);
        j->csr = strdup(csr_pem);
        j->client_cert = strdup(m->st.node_cert_pem);
        j->chain = strdup(m->external_ca_chain ? m->external_ca_chain : "");
    }
    mgr__cluster_free(c);
    if (!j || !j->url || !j->root || !j->csr || !j->client_cert || !j->chain ||
        pki_key_dup(m->st.node_key, &j->client_key) < 0) {
        if (j)
            job_free(j);
        return done(m, -ENOMEM, NULL, "out of memory", userdata);
    }
    j->m = m;
    j->done = done;
    j->userdata = userdata;
    snprintf(j->node_id, sizeof(j->node_id), "%s", node_id);
    snprintf(j->cluster_id, sizeof(j->cluster_id), "%s", m->st.cluster_id);
    j->role = role;
    j->validity_ns = sr.validity_ns;
    j->work.data = j;
    m->pending_closes++; /* m stays until the job is done */
    r = uv_queue_work(m->loop, &j->work, sign_work, sign_done);
    if (r < 0) {
        m->pending_closes--;
        job_free(j);
        snprintf(err, sizeof(err), "cannot queue the signing: %s", uv_strerror(r));
        done(m, -EIO, NULL, err, userdata);
    }
}
