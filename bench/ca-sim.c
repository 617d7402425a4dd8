/* bench-ca-sim: a root CA rotation across N simulated nodes (scale-nodes.c) on one manager:
 * the nodes join, `swarmctl ca --rotate --detach` starts the rotation, and the manager is polled
 * until it is complete (the old root gone: every node holds a leaf of the new root), then until
 * every node trusts the new root alone; meanwhile it samples how many nodes were asked to renew
 * and had not moved yet (the manager asks at most 100 at a time), and counts the batches.
 * Then it checks what the operator relies on: every node holds a certificate of the new root
 * and trusts it alone, the manager refuses a leaf of the old root, and every node opens a
 * session again with what it renewed into (nodes Ready).
 *   bench-ca-sim [-n NODES] [-j INFLIGHT] [--poll-ms MS] [--timeout SECS]
 *                [--heartbeat DURATION] [--swarmd PATH] [--swarmctl PATH]
 *                [--sock PATH] [--no-reconnect] [--hold] [--keep]
 * --sock: use a running manager (its control socket) instead of starting one; --hold: after
 * the report, keep every session open until SIGTERM or SIGINT (for a test's own checks).
 * Exit status 0 when every check held, 1 otherwise, 2 on a usage error. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/scale-mgr.h"
#include "bench/scale.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "pki/pki.h"

#define PROG "bench-ca-sim"
#define HOST_PREFIX "scale-n"
#define ROTATION_BATCH 100u /* manager/rootca.c: nodes asked and not yet moved, at most */
#define MANAGER_MAX_CONN 1024u

struct opts {
    unsigned nodes, inflight, poll_ms, timeout_s;
    const char *swarmd, *swarmctl, *heartbeat, *sock;
    bool reconnect, hold;
};

/* What the polls of the store saw while the rotation ran. */
struct progress {
    unsigned max_asked;  /* nodes asked to renew and not on the new root, at one poll */
    unsigned batches;    /* polls that found more nodes asked than the one before */
    unsigned polls;      /* polls while rotating */
    uint64_t asked_prev; /* sum of the nodes' cert_rotate at the last poll */
};

static unsigned failures;

static void check(bool ok, const char *what)
{
    if (!ok) {
        printf("ca-sim: FAIL: %s\n", what);
        failures++;
    }
}

static unsigned count_certs(const char *pem)
{
    unsigned k = 0;
    for (const char *p = pem; (p = strstr(p, "-----BEGIN CERTIFICATE-----")); p++)
        k++;
    return k;
}

static bool on_root(const Swarm__Node *n, const char *kid)
{
    return n->certificate && n->certificate->authority_key_id &&
           strcmp(n->certificate->authority_key_id, kid) == 0;
}

/* One poll: the nodes first, then the cluster (a rotation that ended in between is not
 * counted). ret_cluster: the cluster as the manager shows it. */
static int poll_once(struct progress *p, Swarm__GetClusterResponse **ret_cluster, char *err,
                     size_t errsize)
{
    Swarm__ListNodesResponse *nodes = scale_mgr_list_nodes(err, errsize);
    if (!nodes)
        return -EIO;
    Swarm__GetClusterResponse *c = scale_mgr_get_cluster(err, errsize);
    if (!c) {
        swarm__list_nodes_response__free_unpacked(nodes, NULL);
        return -EIO;
    }
    const char *kid = c->cluster->root_ca->rotation_key_id;
    unsigned asked = 0;
    uint64_t sum = 0;
    for (size_t i = 0; i < nodes->n_nodes; i++) {
        const Swarm__Node *n = nodes->nodes[i];
        sum += n->cert_rotate;
        asked +=
            kid[0] && !n->rejoin_allowed && n->cert_rotate > n->cert_rotated && !on_root(n, kid);
    }
    if (kid[0]) {
        p->polls++;
        p->max_asked = SW_MAX(p->max_asked, asked);
        p->batches += sum > p->asked_prev;
    }
    p->asked_prev = sum;
    swarm__list_nodes_response__free_unpacked(nodes, NULL);
    *ret_cluster = c;
    return 0;
}

/* Every simulated node in the store: Ready, on a leaf the root with key id kid signed. */
static void store_nodes(const char *kid, unsigned *ret_ready, unsigned *ret_on_root)
{
    char err[256];
    *ret_ready = *ret_on_root = 0;
    Swarm__ListNodesResponse *nodes = scale_mgr_list_nodes(err, sizeof(err));
    if (!nodes) {
        printf("ca-sim: node list: %s\n", err);
        return;
    }
    for (size_t i = 0; i < nodes->n_nodes; i++) {
        const Swarm__Node *n = nodes->nodes[i];
        if (strncmp(n->hostname, HOST_PREFIX, strlen(HOST_PREFIX)) != 0)
            continue;
        *ret_ready += n->state == SWARM__NODE_STATE__NODE_READY;
        *ret_on_root += on_root(n, kid);
    }
    swarm__list_nodes_response__free_unpacked(nodes, NULL);
}

static int wait_ready(scale_nodes *s, unsigned n, struct scale_stats *st)
{
    uint64_t t0 = sw_now_monotonic_ns(), limit_ms = 60000 + (uint64_t)n * 60;
    for (;;) {
        scale_nodes_stats(s, st);
        if (st->ready + st->failed >= n)
            return st->failed ? -1 : 0;
        if (!scale_mgr_alive())
            return -1;
        if (scale_mgr_ms_since(t0) > (double)limit_ms) {
            fprintf(stderr, PROG ": %llu of %u nodes Ready after %llu s\n",
                    (unsigned long long)st->ready, n, (unsigned long long)(limit_ms / 1000));
            return -1;
        }
        scale_mgr_sleep_ms(2);
    }
}

static volatile sig_atomic_t g_release;

static void on_release(int sig)
{
    (void)sig;
    g_release = 1;
}

/* After the report: every session stays open until SIGTERM/SIGINT. */
static void hold(void)
{
    struct sigaction sa = {.sa_handler = on_release};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    printf("ca-sim: holding every session open until SIGTERM\n");
    while (!g_release)
        scale_mgr_sleep_ms(50);
}

/* Rotate and watch: 0 once every node trusts the new root alone (*ret_final: its PEM). */
static int rotate(const struct opts *o, scale_nodes *s, const char *old_digest, struct progress *p,
                  double *ret_complete_ms, double *ret_trusted_ms, char **ret_final)
{
    char err[256];
    Swarm__GetClusterResponse *c = NULL;
    if (poll_once(p, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    swarm__get_cluster_response__free_unpacked(c, NULL);
    char *argv[] = {"ca", "--rotate", "--detach", NULL};
    uint64_t t0 = sw_now_monotonic_ns();
    int r = scale_mgr_swarmctl(o->swarmctl, argv, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, PROG ": swarmctl ca --rotate: %s\n", r < 0 ? strerror(-r) : err);
        return -1;
    }
    uint64_t limit_ms = o->timeout_s ? (uint64_t)o->timeout_s * 1000 : 60000 + o->nodes * 100ull;
    double complete_ms = -1;
    char *final = NULL;
    while (scale_mgr_ms_since(t0) < (double)limit_ms && scale_mgr_alive()) {
        if (poll_once(p, &c, err, sizeof(err)) < 0) {
            fprintf(stderr, PROG ": %s\n", err);
            break;
        }
        const Swarm__RootCA *ca = c->cluster->root_ca;
        if (complete_ms < 0 && !c->root_rotation && strcmp(ca->digest, old_digest) != 0) {
            complete_ms = scale_mgr_ms_since(t0);
            final = strdup(ca->ca_cert_pem);
        }
        char digest[PKI_TOKEN_DIGEST_LEN + 1];
        snprintf(digest, sizeof(digest), "%s", ca->digest);
        swarm__get_cluster_response__free_unpacked(c, NULL);
        if (final && scale_nodes_count_trusting(s, digest) == o->nodes) {
            *ret_complete_ms = complete_ms;
            *ret_trusted_ms = scale_mgr_ms_since(t0);
            *ret_final = final;
            return 0;
        }
        scale_mgr_sleep_ms(o->poll_ms);
    }
    struct scale_stats st;
    scale_nodes_stats(s, &st);
    fprintf(stderr,
            PROG
            ": the rotation did not finish in %llu s (%s; %llu renewals, %llu asks, %llu "
            "pending, %llu errors; last error: %s)\n",
            (unsigned long long)(limit_ms / 1000),
            complete_ms < 0 ? "the old root is still trusted by the manager"
                            : "some nodes do not trust the new root alone",
            (unsigned long long)st.renewals, (unsigned long long)st.renew_asks,
            (unsigned long long)st.renew_pending, (unsigned long long)st.renew_errors,
            st.last_error[0] ? st.last_error : "none");
    scale_mgr_show_log();
    free(final);
    return -1;
}

/* Every session ends and opens again with what the node renewed into. */
static double reconnect_all(scale_nodes *s, unsigned n)
{
    struct scale_stats st;
    scale_nodes_stats(s, &st);
    uint64_t want = st.sessions_opened + n, t0 = sw_now_monotonic_ns();
    scale_nodes_reconnect(s);
    while (scale_mgr_ms_since(t0) < 60000.0 + n * 60.0 && scale_mgr_alive()) {
        scale_nodes_stats(s, &st);
        if (st.sessions_opened >= want)
            return scale_mgr_ms_since(t0);
        scale_mgr_sleep_ms(5);
    }
    printf("ca-sim: %llu of %u sessions opened again; last error: %s\n",
           (unsigned long long)(st.sessions_opened + n - want), n, st.last_error);
    return -1;
}

static int run(const struct opts *o)
{
    char self[64], token[160], err[256];
    struct sw_addr mgr;
    struct scale_stats st;
    int r;

    if (o->sock)
        r = scale_mgr_attach(o->sock);
    else
        r = scale_mgr_start(o->swarmd, o->heartbeat, self, sizeof(self));
    if (r < 0)
        return 1;
    if (scale_mgr_get_token(token, sizeof(token), &mgr) < 0)
        return 1;
    Swarm__GetClusterResponse *c0 = scale_mgr_get_cluster(err, sizeof(err));
    if (!c0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    char old_digest[PKI_TOKEN_DIGEST_LEN + 1];
    snprintf(old_digest, sizeof(old_digest), "%s", c0->cluster->root_ca->digest);
    _cleanup_free_ char *old_bundle = strdup(c0->cluster->root_ca->ca_cert_pem);
    bool rotating = c0->root_rotation;
    swarm__get_cluster_response__free_unpacked(c0, NULL);
    if (!old_bundle || rotating) {
        fprintf(stderr, PROG ": %s\n", rotating ? "a root rotation is under way already" : "oom");
        return 1;
    }

    struct scale_nodes_config cfg = {
        .n = o->nodes, .inflight = o->inflight, .manager = mgr, .token = token};
    scale_nodes *s = NULL;
    r = scale_nodes_create(&cfg, &s, err, sizeof(err));
    sw_erase(token, sizeof(token));
    if (r < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return 1;
    }
    uint64_t tj = sw_now_monotonic_ns();
    r = scale_nodes_start(s);
    if (r < 0 || wait_ready(s, o->nodes, &st) < 0) {
        scale_nodes_stats(s, &st);
        fprintf(stderr, PROG ": %llu nodes Ready, %llu gave up; last error: %s\n",
                (unsigned long long)st.ready, (unsigned long long)st.failed, st.last_error);
        scale_mgr_show_log();
        scale_nodes_destroy(s);
        return 1;
    }
    printf("ca-sim: %u simulated nodes Ready in %.0f ms\n", o->nodes, scale_mgr_ms_since(tj));
    r = scale_nodes_try_first_identity(s, old_bundle, err, sizeof(err));
    if (r < 0)
        printf("ca-sim: node 0's certificate is refused before the rotation: %s\n", err);
    check(r >= 0, "a node's first certificate is accepted before the rotation");

    struct progress p = {0};
    double complete_ms = -1, trusted_ms = -1, reconnect_ms = -1;
    _cleanup_free_ char *final = NULL;
    if (rotate(o, s, old_digest, &p, &complete_ms, &trusted_ms, &final) < 0) {
        scale_nodes_destroy(s);
        return 1;
    }
    char kid[65] = "";
    check(count_certs(final) == 1 && strcmp(final, old_bundle) != 0,
          "the manager trusts one root, a new one");
    check(pki_cert_key_id(final, strlen(final), kid) >= 0, "the new root has a key id");
    struct scale_trust t;
    scale_nodes_check_trust(s, final, &t);
    check(t.trusting == o->nodes, "every node trusts the new root alone");
    check(t.chained == o->nodes, "every node's certificate chains to the new root");
    check(t.renew_min >= 1, "every node renewed");
    unsigned ready = 0, moved = 0;
    store_nodes(kid, &ready, &moved);
    check(moved == o->nodes, "the manager records a leaf of the new root for every node");
    r = scale_nodes_try_first_identity(s, final, err, sizeof(err));
    check(r < 0, "the manager refuses a leaf of the old root");
    check(p.max_asked <= ROTATION_BATCH,
          "at most 100 nodes asked and not moved at once (as sampled)");
    if (o->reconnect) {
        reconnect_ms = reconnect_all(s, o->nodes);
        check(reconnect_ms >= 0, "every node opens a session again with its new certificate");
    }
    for (unsigned i = 0; i < 200; i++) { /* Ready is committed before the session answers */
        store_nodes(kid, &ready, &moved);
        if (ready == o->nodes)
            break;
        scale_mgr_sleep_ms(50);
    }
    check(ready == o->nodes, "every simulated node is Ready");

    scale_nodes_stats(s, &st);
    printf(
        "ca: rotation simulated nodes=%u complete_ms=%.0f batches_seen=%u "
        "max_asked_not_moved=%u trusted_ms=%.0f renewed=%u/%u renewals_per_node=%u..%u "
        "renew_asks=%llu renew_errors=%llu reconnect_ms=%.0f ready=%u/%u (from `swarmctl ca "
        "--rotate` to: complete = the old root gone, every node on a leaf of the new root; "
        "trusted = every node trusts the new root alone; store polled every %u ms, %u polls "
        "while rotating)\n",
        o->nodes, complete_ms, p.batches, p.max_asked, trusted_ms, t.chained, o->nodes, t.renew_min,
        t.renew_max, (unsigned long long)st.renew_asks, (unsigned long long)st.renew_errors,
        reconnect_ms, ready, o->nodes, o->poll_ms, p.polls);
    if (st.renew_errors)
        printf("ca-sim: last error seen by a node: %s\n", st.last_error);
    printf("ca-sim: %s\n", failures ? "some checks FAILED" : "every check held");
    if (o->hold)
        hold();
    scale_nodes_destroy(s);
    return failures ? 1 : 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: " PROG
                    " [-n NODES] [-j INFLIGHT] [--poll-ms MS] [--timeout SECS]\n"
                    "                    [--heartbeat DURATION] [--swarmd PATH] [--swarmctl PATH]\n"
                    "                    [--sock PATH] [--no-reconnect] [--hold] [--keep]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct opts o = {.nodes = 100, .inflight = 16, .poll_ms = 100, .reconnect = true};
    const char *swarmctl_arg = NULL;
    bool keep = false;
    scale_mgr_prog = PROG;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--keep") == 0) {
            keep = true;
            continue;
        } else if (strcmp(a, "--hold") == 0) {
            o.hold = true;
            continue;
        } else if (strcmp(a, "--no-reconnect") == 0) {
            o.reconnect = false;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return usage();
        if (strcmp(a, "-n") == 0) {
            if (!scale_mgr_parse_uint(v, 100000, &o.nodes))
                return usage();
        } else if (strcmp(a, "-j") == 0) {
            if (!scale_mgr_parse_uint(v, 10000, &o.inflight))
                return usage();
        } else if (strcmp(a, "--timeout") == 0) {
            if (!scale_mgr_parse_uint(v, 86400, &o.timeout_s))
                return usage();
        } else if (strcmp(a, "--poll-ms") == 0) {
            if (!scale_mgr_parse_uint(v, 10000, &o.poll_ms))
                return usage();
        } else if (strcmp(a, "--heartbeat") == 0) {
            o.heartbeat = v;
        } else if (strcmp(a, "--swarmd") == 0) {
            o.swarmd = v;
        } else if (strcmp(a, "--swarmctl") == 0) {
            swarmctl_arg = v;
        } else if (strcmp(a, "--sock") == 0) {
            o.sock = v;
        } else {
            return usage();
        }
    }
    if (!o.swarmd)
        o.swarmd = getenv("SWARMD");
#ifdef BENCH_SWARMD
    if (!o.swarmd)
        o.swarmd = BENCH_SWARMD;
#endif
    if (!o.sock && (!o.swarmd || access(o.swarmd, X_OK) < 0)) {
        fprintf(stderr, PROG ": no swarmd at %s (give --swarmd PATH or SWARMD)\n",
                o.swarmd ? o.swarmd : "(none)");
        return 2;
    }
    char ctlbuf[PATH_MAX];
    o.swarmctl = scale_mgr_find_swarmctl(swarmctl_arg, o.swarmd, ctlbuf, sizeof(ctlbuf));
    if (!o.swarmctl) {
        fprintf(stderr, PROG ": no swarmctl (give --swarmctl PATH or SWARMCTL)\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (o.nodes + o.inflight + 1 > MANAGER_MAX_CONN)
        printf("ca-sim: warning: the manager accepts at most %u TCP connections\n",
               MANAGER_MAX_CONN);
    int r = scale_mgr_raise_nofile(o.nodes + o.inflight);
    if (r < 0) {
        fprintf(stderr, PROG ": cannot raise RLIMIT_NOFILE for %u nodes: %s\n", o.nodes,
                strerror(-r));
        return 1;
    }
    scale_mgr_signals(keep);
    int failed = run(&o);
    scale_mgr_stop();
    return failed ? 1 : 0;
}
