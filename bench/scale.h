/* bench-scale: the simulated nodes (scale-nodes.c) as seen by the driver (scale.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

typedef struct scale_nodes scale_nodes;

struct scale_nodes_config {
    unsigned n;        /* simulated nodes */
    unsigned inflight; /* nodes between join start and open session at once */
    struct sw_addr manager;
    const char *token; /* worker join token */
};

/* What the nodes did so far (monotonic ns for times, 0: not yet). */
struct scale_stats {
    uint64_t certs;           /* certificates issued */
    uint64_t ready;           /* nodes whose first session opened (committed Ready) */
    uint64_t failed;          /* nodes that gave up joining */
    uint64_t last_cert_ns;    /* when the last certificate arrived */
    uint64_t last_ready_ns;   /* when the last first session opened */
    uint64_t sessions_lost;   /* sessions that ended while the bench ran */
    uint64_t heartbeats;      /* heartbeats answered */
    uint64_t hb_late;         /* timer fired with the previous heartbeat unanswered */
    uint64_t hb_errors;       /* heartbeats answered with an error */
    uint64_t assignments;     /* task assignments received */
    uint64_t running_acked;   /* RUNNING updates the manager answered (committed) */
    uint64_t last_running_ns; /* when the last of those answers arrived */
    uint64_t status_calls;    /* UpdateTaskStatus calls answered */
    uint64_t status_errors;   /* UpdateTaskStatus calls answered with an error */
    uint64_t sessions_opened; /* sessions opened (first ones and after a loss) */
    uint64_t renew_asks;      /* session messages asking for a certificate renewal */
    uint64_t renewals;        /* renewed certificates taken */
    uint64_t renew_errors;    /* renewals refused, failed or cut off (retried) */
    uint64_t renew_pending;   /* nodes asked and not renewed yet */
    char last_error[256];     /* the last error a node saw ("" if none) */
};

/* Keys and CSRs for n nodes (the slow part of an agent's start, done before any timing). */
int scale_nodes_create(const struct scale_nodes_config *cfg, scale_nodes **ret, char *errmsg,
                       size_t errmsg_size);
/* Start the loop thread: nodes join (cfg.inflight at a time), open sessions, heartbeat and
 * answer their assignments until scale_nodes_destroy. */
int scale_nodes_start(scale_nodes *s);
void scale_nodes_stats(scale_nodes *s, struct scale_stats *ret);
/* End every open session: each opens again with the node's current certificate and bundle. */
void scale_nodes_reconnect(scale_nodes *s);
/* Nodes whose trust bundle has this digest (pki_ca_digest). */
unsigned scale_nodes_count_trusting(scale_nodes *s, const char *digest);

struct scale_trust {
    unsigned trusting;             /* nodes trusting exactly bundle */
    unsigned chained;              /* nodes whose certificate chains to bundle */
    unsigned renew_min, renew_max; /* renewals per node */
};
void scale_nodes_check_trust(scale_nodes *s, const char *bundle, struct scale_trust *ret);
/* Connect to the manager as node 0 did when it joined (its first certificate and key),
 * trusting bundle: 0 if the manager accepted it, else -errno and why. */
int scale_nodes_try_first_identity(scale_nodes *s, const char *bundle, char *errmsg,
                                   size_t errmsg_size);
/* Close every session, stop the thread, free. Accepts NULL. */
void scale_nodes_destroy(scale_nodes *s);
