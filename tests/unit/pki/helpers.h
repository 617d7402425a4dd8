/* Shared fixtures for the pki unit tests: a CA and freshly issued node certificates. */
#pragma once

#include <stdlib.h>
#include <string.h>

#include "common/ids.h"
#include "pki/pki.h"

struct node {
    pki_key *key;
    char *cert;
    char id[SW_ID_LEN + 1];
};

static inline int node_issue(const pki_ca *ca, const char *cluster, enum pki_role role,
                             uint64_t validity_ns, struct node *ret)
{
    struct node n;
    memset(&n, 0, sizeof(n));
    char *csr = NULL;
    char err[256];
    int r = pki_key_generate(&n.key);
    if (r < 0)
        return r;
    r = sw_id_generate(n.id);
    if (r >= 0)
        r = pki_csr_create(n.key, &csr);
    if (r >= 0) {
        struct pki_sign_request req = {n.id, cluster, role, validity_ns};
        r = pki_ca_sign_csr(ca, csr, strlen(csr), &req, &n.cert, err, sizeof(err));
    }
    free(csr);
    if (r < 0) {
        pki_key_free(n.key);
        return r;
    }
    *ret = n;
    return 0;
}

static inline void node_finish(struct node *n)
{
    pki_key_free(n->key);
    free(n->cert);
    memset(n, 0, sizeof(*n));
}
