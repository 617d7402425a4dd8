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
    char last_error[256];     /* the last error a node saw ("" if none) */
};

/* Keys and CSRs for n nodes (the slow part of an agent's start, done before any timing). */
int scale_nodes_create(const struct scale_nodes_config *cfg, scale_nodes **ret, char *errmsg,
                       size_t errmsg_size);
/* Start the loop thread: nodes join (cfg.inflight at a time), open sessions, heartbeat and
 * answer their assignments until scale_nodes_destroy. */
int scale_nodes_start(scale_nodes *s);
void scale_nodes_stats(scale_nodes *s, struct scale_stats *ret);
/* Close every session, stop the thread, free. Accepts NULL. */
void scale_nodes_destroy(scale_nodes *s);
