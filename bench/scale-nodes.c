/* bench-scale's simulated nodes: N lightweight agents on one libuv loop in one thread, each with
 * its own key and certificate (CA.IssueNodeCertificate with the join token), an mTLS
 * Dispatcher.Session, heartbeats at the period the manager gives (jittered), every assigned
 * task answered as RUNNING with a fake pid (batched, as worker/agent.c does) without running
 * anything, and a certificate renewal whenever the session asks for one (a new key and CSR,
 * CA.RenewNodeCertificate over the session's connection, then the new certificate and trust
 * bundle from the next connection on, as worker/agent.c does). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench/scale.h"
#include "common/cleanup.h"
#include "common/ids.h"
#include "common/swtime.h"
#include "net/rpc.h"
#include "pki/pki.h"
#include "proto/frame.h"

#define CONNECT_TIMEOUT_MS 30000u
#define RETRY_MS 500u
#define JOIN_TRIES 20u
#define STATUS_FLUSH_MS 50u /* as worker/agent.c */
#define STATUS_BATCH 64u
#define STATUS_RETRY_MS 1000u
#define FAKE_PID_BASE 100000

enum phase { PH_IDLE, PH_JOINING, PH_CONNECTING, PH_OPENING, PH_ACTIVE, PH_FAILED };

struct stask {
    char id[SW_ID_LEN + 1];
    bool stopped; /* SHUTDOWN reported */
};

struct supdate {
    char id[SW_ID_LEN + 1];
    Swarm__TaskState state;
    int32_t pid;
};

struct node {
    scale_nodes *s;
    unsigned idx;
    char hostname[32];
    char node_id[SW_ID_LEN + 1];
    enum phase phase;
    bool ever_ready;
    unsigned tries;
    pki_key *key;
    char *csr;
    char *cert;   /* cert, bundle, digest, renewals: written under s->lock (the driver reads) */
    char *bundle; /* the roots this node trusts */
    char digest[PKI_TOKEN_DIGEST_LEN + 1]; /* of bundle */
    unsigned renewals;
    SSL_CTX *ctx;             /* with this node's certificate and bundle */
    bool renew_due;           /* the manager asked; not renewed yet */
    pki_key *renew_key;       /* the renewal in flight: its key */
    net_client *renew_client; /* …and the connection it went on (NULL: none in flight) */
    net_client *client;
    char session_id[SW_ID_LEN + 8];
    uint64_t period_ns;
    bool hb_in_flight;
    uv_timer_t timer;        /* retry, heartbeat */
    uv_timer_t status_timer; /* flush, retry */
    struct stask *tasks;
    size_t n_tasks, cap_tasks;
    struct supdate *q; /* q[0..sent) are in the call in flight */
    size_t nq, capq, sent;
};

struct scale_nodes {
    struct scale_nodes_config cfg;
    char *token;
    uv_loop_t loop;
    uv_async_t stop;
    uv_async_t reconnect;
    pthread_t thread;
    bool loop_ready; /* loop, stop and every node's timers initialized */
    bool thread_started;
    bool stopping;
    SSL_CTX *anon_ctx; /* joining: no certificate, server not verified (no pinning here) */
    char *root_pem;
    char cluster_id[SW_ID_LEN + 1];
    char *first_cert; /* node 0's first certificate and key (scale_nodes_try_first_identity) */
    pki_key *first_key;
    struct node *nodes;
    unsigned next, inflight;
    uint64_t rng;
    int32_t next_pid;
    /* read by the driver thread */
    _Atomic uint64_t certs, ready, failed, last_cert_ns, last_ready_ns, sessions_lost, heartbeats,
        hb_late, hb_errors, assignments, running_acked, last_running_ns, status_calls,
        status_errors, sessions_opened, renew_asks, renewals, renew_errors, renew_pending;
    pthread_mutex_t lock; /* last_error, and what the driver reads of the nodes */
    char last_error[256];
};

static void set_error(scale_nodes *s, const struct node *n, const char *what, int status,
                      const char *error)
{
    pthread_mutex_lock(&s->lock);
    snprintf(s->last_error, sizeof(s->last_error), "%s: %s: %s", n->hostname, what,
             error && error[0] ? error : strerror(status < 0 ? -status : EIO));
    pthread_mutex_unlock(&s->lock);
}

/* period_ms minus up to 20%, so that the nodes do not beat in step. */
static uint64_t jitter_ms(scale_nodes *s, uint64_t period_ms)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    uint64_t span = period_ms / 5;
    return SW_MAX(period_ms - (span ? s->rng % span : 0), (uint64_t)1);
}

static void pump(scale_nodes *s);
static void start_join(struct node *n);
static void session_connect(struct node *n);
static void status_flush(struct node *n);

static void release_slot(struct node *n)
{
    n->s->inflight--;
    pump(n->s);
}

static void drop_client(struct node *n)
{
    if (n->client) {
        net_client *c = n->client;
        n->client = NULL;
        net_client_close(c);
    }
}

static void timer_retry(uv_timer_t *t)
{
    struct node *n = t->data;
    if (n->s->stopping)
        return;
    if (n->ctx)
        session_connect(n);
    else
        start_join(n);
}

/* Something failed: try again after RETRY_MS; a node that never got a session gives up after
 * JOIN_TRIES attempts. */
static void retry(struct node *n, const char *what, int status, const char *error)
{
    scale_nodes *s = n->s;
    drop_client(n);
    uv_timer_stop(&n->timer);
    uv_timer_stop(&n->status_timer);
    n->hb_in_flight = false;
    n->sent = 0;
    if (s->stopping)
        return;
    set_error(s, n, what, status, error);
    if (!n->ever_ready && ++n->tries >= JOIN_TRIES) {
        n->phase = PH_FAILED;
        atomic_fetch_add(&s->failed, 1);
        release_slot(n);
        return;
    }
    n->phase = PH_IDLE;
    uv_timer_start(&n->timer, timer_retry, RETRY_MS, 0);
}

/* ------------------------------------------------------------------ join */

/* Take a certificate and the bundle it chains to: the TLS context of the next connections. */
static int adopt(struct node *n, const char *cert_pem, const char *bundle, pki_key *key, char *err,
                 size_t size)
{
    scale_nodes *s = n->s;
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    SSL_CTX *ctx = NULL;
    int r = pki_ca_digest(bundle, strlen(bundle), digest);
    if (r < 0) {
        snprintf(err, size, "the trust bundle is not PEM");
        return r;
    }
    char *cert = strdup(cert_pem), *b = strdup(bundle);
    if (!cert || !b) {
        free(cert);
        free(b);
        return -ENOMEM;
    }
    r = pki_tls_client_ctx(b, strlen(b), cert, strlen(cert), key, &ctx, err, size);
    if (r < 0) {
        free(cert);
        free(b);
        return r;
    }
    pki_key *old_key = n->key;
    SSL_CTX *old_ctx = n->ctx;
    pthread_mutex_lock(&s->lock);
    char *old_cert = n->cert, *old_bundle = n->bundle;
    n->cert = cert;
    n->bundle = b;
    memcpy(n->digest, digest, sizeof(n->digest));
    pthread_mutex_unlock(&s->lock);
    n->key = key;
    n->ctx = ctx;
    free(old_cert);
    free(old_bundle);
    if (old_key != key)
        pki_key_free(old_key);
    if (old_ctx)
        pki_tls_ctx_free(old_ctx); /* an open connection keeps its own reference */
    return 0;
}

static void on_issued(net_client *c, int status, const char *error, const uint8_t *payload,
                      size_t len, bool final, void *userdata)
{
    struct node *n = userdata;
    scale_nodes *s = n->s;
    if (c != n->client || !final)
        return;
    drop_client(n);
    if (status < 0)
        return retry(n, "join refused", status, error);
    Swarm__IssueNodeCertificateResponse *resp =
        swarm__issue_node_certificate_response__unpack(NULL, len, payload);
    if (!resp || !resp->cert_pem[0] || !resp->ca_cert_pem[0] || !resp->node_id[0] ||
        strlen(resp->node_id) > SW_ID_LEN || strlen(resp->cluster_id) > SW_ID_LEN) {
        if (resp)
            swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
        return retry(n, "join", -EPROTO, "malformed certificate answer");
    }
    int r = 0;
    if (!s->root_pem) {
        s->root_pem = strdup(resp->ca_cert_pem);
        snprintf(s->cluster_id, sizeof(s->cluster_id), "%s", resp->cluster_id);
        r = s->root_pem ? 0 : -ENOMEM;
    }
    snprintf(n->node_id, sizeof(n->node_id), "%s", resp->node_id);
    char err[256] = "";
    if (r >= 0)
        r = adopt(n, resp->cert_pem, resp->ca_cert_pem, n->key, err, sizeof(err));
    if (r >= 0 && n->idx == 0 && !s->first_cert) {
        s->first_cert = strdup(n->cert);
        r = s->first_cert ? pki_key_dup(n->key, &s->first_key) : -ENOMEM;
    }
    swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
    if (r < 0)
        return retry(n, "TLS context", r, err);
    atomic_fetch_add(&s->certs, 1);
    atomic_store(&s->last_cert_ns, sw_now_monotonic_ns());
    session_connect(n);
}

static void on_join_connect(net_client *c, int status, const char *error, void *userdata)
{
    struct node *n = userdata;
    if (c != n->client)
        return;
    if (status < 0)
        return retry(n, "join connect", status, error);
    Swarm__IssueNodeCertificateRequest req = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    req.token = n->s->token;
    req.csr_pem = n->csr;
    req.hostname = n->hostname;
    req.addr = "127.0.0.1";
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(&req.base, &buf, &len);
    if (r >= 0)
        r = net_client_call(c, "CA.IssueNodeCertificate", buf, len, on_issued, n, NULL);
    if (buf)
        sw_erase(buf, len); /* holds the token */
    if (r < 0)
        retry(n, "join call", r, NULL);
}

static void start_join(struct node *n)
{
    n->phase = PH_JOINING;
    int r = net_client_connect_tcp(&n->s->loop, &n->s->cfg.manager, n->s->anon_ctx,
                                   CONNECT_TIMEOUT_MS, on_join_connect, n, &n->client);
    if (r < 0)
        retry(n, "join connect", r, NULL);
}

static void pump(scale_nodes *s)
{
    while (!s->stopping && s->inflight < s->cfg.inflight && s->next < s->cfg.n) {
        struct node *n = &s->nodes[s->next++];
        s->inflight++;
        start_join(n);
    }
}

/* ------------------------------------------------------------------ certificate renewal */

static void renew_failed(struct node *n, const char *what, int status, const char *error)
{
    atomic_fetch_add(&n->s->renew_errors, 1);
    set_error(n->s, n, what, status, error);
    /* still due: tried again at the next heartbeat answer or session */
}

static void on_renew(net_client *c, int status, const char *error, const uint8_t *payload,
                     size_t len, bool final, void *userdata)
{
    struct node *n = userdata;
    scale_nodes *s = n->s;
    if (c != n->renew_client || !final)
        return;
    n->renew_client = NULL;
    pki_key *key = n->renew_key;
    n->renew_key = NULL;
    if (s->stopping) {
        pki_key_free(key);
        return;
    }
    if (status < 0) {
        pki_key_free(key);
        return renew_failed(n, "renewal refused", status, error);
    }
    Swarm__IssueNodeCertificateResponse *resp =
        swarm__issue_node_certificate_response__unpack(NULL, len, payload);
    char err[256] = "";
    int r = resp && resp->cert_pem[0] ? 0 : -EPROTO;
    if (r < 0)
        snprintf(err, sizeof(err), "malformed renewal answer");
    /* a root rotation: the bundle comes with the certificate, which must chain to it */
    const char *bundle = r >= 0 && resp->ca_cert_pem[0] ? resp->ca_cert_pem : n->bundle;
    struct pki_identity id;
    if (r >= 0)
        r = pki_verify_cert(bundle, strlen(bundle), resp->cert_pem, strlen(resp->cert_pem), &id,
                            err, sizeof(err));
    if (r >= 0 && (strcmp(id.node_id, n->node_id) != 0 || strcmp(id.cluster_id, s->cluster_id) ||
                   !pki_cert_matches_key(resp->cert_pem, strlen(resp->cert_pem), key))) {
        snprintf(err, sizeof(err), "the manager issued a certificate for another node or key");
        r = -EPROTO;
    }
    if (r >= 0)
        r = adopt(n, resp->cert_pem, bundle, key, err, sizeof(err));
    if (resp)
        swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
    if (r < 0) {
        pki_key_free(key);
        return renew_failed(n, "renewal", r, err);
    }
    pthread_mutex_lock(&s->lock);
    n->renewals++;
    pthread_mutex_unlock(&s->lock);
    n->renew_due = false;
    atomic_fetch_add(&s->renewals, 1);
    atomic_fetch_sub(&s->renew_pending, 1);
}

/* Renew if asked and a session is up: a new key and CSR over the session's connection. */
static void renew_try(struct node *n)
{
    if (!n->renew_due || n->renew_client || n->phase != PH_ACTIVE || !n->client || n->s->stopping)
        return;
    _cleanup_free_ char *csr = NULL;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    pki_key *key = NULL;
    int r = pki_key_generate(&key);
    if (r >= 0)
        r = pki_csr_create(key, &csr);
    if (r >= 0) {
        Swarm__RenewNodeCertificateRequest req = SWARM__RENEW_NODE_CERTIFICATE_REQUEST__INIT;
        req.csr_pem = csr;
        r = proto_pack(&req.base, &buf, &len);
    }
    if (r >= 0)
        r = net_client_call(n->client, "CA.RenewNodeCertificate", buf, len, on_renew, n, NULL);
    if (r < 0) {
        pki_key_free(key);
        return renew_failed(n, "renewal", r, NULL);
    }
    n->renew_key = key;
    n->renew_client = n->client;
}

/* The session says: renew now. */
static void renew_asked(struct node *n)
{
    atomic_fetch_add(&n->s->renew_asks, 1);
    if (!n->renew_due) {
        n->renew_due = true;
        atomic_fetch_add(&n->s->renew_pending, 1);
    }
    renew_try(n);
}

/* ------------------------------------------------------------------ heartbeats */

static void heartbeat_send(struct node *n);

static void timer_heartbeat(uv_timer_t *t)
{
    struct node *n = t->data;
    if (n->phase != PH_ACTIVE || n->s->stopping)
        return;
    if (n->hb_in_flight) {
        /* the manager is slow: count it, keep waiting (the real agent would reconnect) */
        atomic_fetch_add(&n->s->hb_late, 1);
        uv_timer_start(&n->timer, timer_heartbeat, jitter_ms(n->s, n->period_ns / 1000000), 0);
        return;
    }
    heartbeat_send(n);
}

static void on_heartbeat(net_client *c, int status, const char *error, const uint8_t *payload,
                         size_t len, bool final, void *userdata)
{
    struct node *n = userdata;
    if (c != n->client || !final)
        return;
    n->hb_in_flight = false;
    if (status < 0) {
        atomic_fetch_add(&n->s->hb_errors, 1);
        set_error(n->s, n, "heartbeat", status, error);
        return; /* a dead session ends its stream too */
    }
    atomic_fetch_add(&n->s->heartbeats, 1);
    Swarm__HeartbeatResponse *resp = swarm__heartbeat_response__unpack(NULL, len, payload);
    if (resp && resp->period_ns)
        n->period_ns = resp->period_ns;
    if (resp)
        swarm__heartbeat_response__free_unpacked(resp, NULL);
    renew_try(n); /* one that failed before */
}

static void heartbeat_send(struct node *n)
{
    Swarm__HeartbeatRequest req = SWARM__HEARTBEAT_REQUEST__INIT;
    req.session_id = n->session_id;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(&req.base, &buf, &len);
    if (r >= 0)
        r = net_client_call(n->client, "Dispatcher.Heartbeat", buf, len, on_heartbeat, n, NULL);
    if (r < 0)
        return retry(n, "heartbeat", r, NULL);
    n->hb_in_flight = true;
    uv_timer_start(&n->timer, timer_heartbeat, jitter_ms(n->s, n->period_ns / 1000000), 0);
}

/* ------------------------------------------------------------------ task status */

static void timer_status(uv_timer_t *t)
{
    status_flush(t->data);
}

static void on_status(net_client *c, int status, const char *error, const uint8_t *payload,
                      size_t len, bool final, void *userdata)
{
    struct node *n = userdata;
    scale_nodes *s = n->s;
    (void)payload;
    (void)len;
    if (c != n->client || !final)
        return;
    atomic_fetch_add(&s->status_calls, 1);
    if (status < 0) {
        atomic_fetch_add(&s->status_errors, 1);
        set_error(s, n, "task status", status, error);
        n->sent = 0; /* kept: sent again */
        uv_timer_start(&n->status_timer, timer_status, STATUS_RETRY_MS, 0);
        return;
    }
    uint64_t running = 0;
    for (size_t i = 0; i < n->sent; i++)
        running += n->q[i].state == SWARM__TASK_STATE__TASK_RUNNING;
    memmove(n->q, n->q + n->sent, (n->nq - n->sent) * sizeof(n->q[0]));
    n->nq -= n->sent;
    n->sent = 0;
    if (running) {
        atomic_fetch_add(&s->running_acked, running);
        atomic_store(&s->last_running_ns, sw_now_monotonic_ns());
    }
    if (n->nq) {
        uv_timer_stop(&n->status_timer);
        status_flush(n);
    }
}

static void status_flush(struct node *n)
{
    if (n->phase != PH_ACTIVE || n->sent || !n->nq || n->s->stopping)
        return;
    size_t k = SW_MIN(n->nq, (size_t)STATUS_BATCH);
    Swarm__TaskStatusUpdate *items = calloc(k, sizeof(*items));
    Swarm__TaskStatusUpdate **ptrs = calloc(k, sizeof(*ptrs));
    int r = items && ptrs ? 0 : -ENOMEM;
    for (size_t i = 0; r >= 0 && i < k; i++) {
        swarm__task_status_update__init(&items[i]);
        items[i].task_id = n->q[i].id;
        items[i].state = n->q[i].state;
        items[i].message =
            n->q[i].state == SWARM__TASK_STATE__TASK_RUNNING ? "started" : "shutdown";
        items[i].pid = n->q[i].pid;
        ptrs[i] = &items[i];
    }
    Swarm__UpdateTaskStatusRequest req = SWARM__UPDATE_TASK_STATUS_REQUEST__INIT;
    req.session_id = n->session_id;
    req.updates = ptrs;
    req.n_updates = k;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    if (r >= 0)
        r = proto_pack(&req.base, &buf, &len);
    free(items);
    free(ptrs);
    if (r >= 0)
        r = net_client_call(n->client, "Dispatcher.UpdateTaskStatus", buf, len, on_status, n, NULL);
    if (r < 0) {
        set_error(n->s, n, "task status", r, NULL);
        uv_timer_start(&n->status_timer, timer_status, STATUS_RETRY_MS, 0);
        return;
    }
    n->sent = k;
}

static int queue_update(struct node *n, const char *id, Swarm__TaskState state)
{
    if (n->nq == n->capq) {
        size_t cap = n->capq ? n->capq * 2 : 16;
        struct supdate *q = realloc(n->q, cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        n->q = q;
        n->capq = cap;
    }
    struct supdate *u = &n->q[n->nq++];
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->state = state;
    u->pid = state == SWARM__TASK_STATE__TASK_RUNNING ? n->s->next_pid++ : 0;
    if (n->nq - n->sent >= STATUS_BATCH && !n->sent) {
        uv_timer_stop(&n->status_timer);
        status_flush(n);
    } else if (!uv_is_active((uv_handle_t *)&n->status_timer)) {
        uv_timer_start(&n->status_timer, timer_status, STATUS_FLUSH_MS, 0);
    }
    return 0;
}

static struct stask *task_find(struct node *n, const char *id)
{
    for (size_t i = 0; i < n->n_tasks; i++)
        if (strcmp(n->tasks[i].id, id) == 0)
            return &n->tasks[i];
    return NULL;
}

static struct stask *task_add(struct node *n, const char *id)
{
    if (n->n_tasks == n->cap_tasks) {
        size_t cap = n->cap_tasks ? n->cap_tasks * 2 : 16;
        struct stask *t = realloc(n->tasks, cap * sizeof(*t));
        if (!t)
            return NULL;
        n->tasks = t;
        n->cap_tasks = cap;
    }
    struct stask *t = &n->tasks[n->n_tasks++];
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->stopped = false;
    return t;
}

/* One assignment: a new task is reported RUNNING at once; one the manager wants stopped is
 * reported SHUTDOWN; a removed one is forgotten. */
static void apply(struct node *n, const Swarm__Assignment *a)
{
    const Swarm__Task *m = a->task;
    if (!m || !m->id || strlen(m->id) > SW_ID_LEN)
        return;
    atomic_fetch_add(&n->s->assignments, 1);
    struct stask *t = task_find(n, m->id);
    if (a->action == SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE) {
        if (t)
            *t = n->tasks[--n->n_tasks];
        return;
    }
    bool stop = m->desired_state >= SWARM__TASK_STATE__TASK_SHUTDOWN;
    if (!t) {
        t = task_add(n, m->id);
        if (!t)
            return;
        if (!stop && m->state < SWARM__TASK_STATE__TASK_RUNNING)
            queue_update(n, m->id, SWARM__TASK_STATE__TASK_RUNNING);
    }
    if (stop && !t->stopped && m->state < SWARM__TASK_STATE__TASK_COMPLETE) {
        t->stopped = true;
        queue_update(n, m->id, SWARM__TASK_STATE__TASK_SHUTDOWN);
    }
}

/* ------------------------------------------------------------------ session */

static void on_session(net_client *c, int status, const char *error, const uint8_t *payload,
                       size_t len, bool final, void *userdata)
{
    struct node *n = userdata;
    scale_nodes *s = n->s;
    if (c != n->client)
        return;
    if (final) {
        if (n->phase == PH_ACTIVE)
            atomic_fetch_add(&s->sessions_lost, 1);
        return retry(n, "session ended", status < 0 ? status : -ECONNRESET, error);
    }
    Swarm__SessionMessage *m = swarm__session_message__unpack(NULL, len, payload);
    if (!m || (n->phase == PH_OPENING &&
               (!m->session_id[0] || strlen(m->session_id) >= sizeof(n->session_id)))) {
        if (m)
            swarm__session_message__free_unpacked(m, NULL);
        return retry(n, "session", -EPROTO, "malformed session message");
    }
    if (m->heartbeat_period_ns)
        n->period_ns = m->heartbeat_period_ns;
    if (n->phase == PH_OPENING) {
        snprintf(n->session_id, sizeof(n->session_id), "%s", m->session_id);
        n->phase = PH_ACTIVE;
        n->tries = 0;
        uv_timer_stop(&n->timer);
        uv_timer_start(&n->timer, timer_heartbeat, jitter_ms(s, n->period_ns / 1000000), 0);
        atomic_fetch_add(&s->sessions_opened, 1);
        if (!n->ever_ready) {
            n->ever_ready = true;
            atomic_fetch_add(&s->ready, 1);
            atomic_store(&s->last_ready_ns, sw_now_monotonic_ns());
            release_slot(n);
        }
    }
    for (size_t i = 0; i < m->n_assignments; i++)
        apply(n, m->assignments[i]);
    bool renew = m->renew_certificate;
    swarm__session_message__free_unpacked(m, NULL);
    if (renew)
        renew_asked(n);
    else
        renew_try(n); /* asked before this session */
    if (n->nq && !n->sent && !uv_is_active((uv_handle_t *)&n->status_timer))
        status_flush(n); /* what a lost session did not get answered */
}

static void on_session_connect(net_client *c, int status, const char *error, void *userdata)
{
    struct node *n = userdata;
    if (c != n->client)
        return;
    if (status < 0)
        return retry(n, "session connect", status, error);
    Swarm__Resources res = SWARM__RESOURCES__INIT;
    res.nano_cpus = 64LL * 1000000000LL;
    res.memory_bytes = 256LL << 30;
    Swarm__NodeDescription d = SWARM__NODE_DESCRIPTION__INIT;
    d.hostname = n->hostname;
    d.addr = "127.0.0.1:0";
    d.resources = &res;
    d.os = "linux";
    d.arch = "x86_64";
    Swarm__SessionRequest req = SWARM__SESSION_REQUEST__INIT;
    req.description = &d;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(&req.base, &buf, &len);
    if (r >= 0)
        r = net_client_call(c, "Dispatcher.Session", buf, len, on_session, n, NULL);
    if (r < 0)
        return retry(n, "session open", r, NULL);
    n->phase = PH_OPENING;
}

static void session_connect(struct node *n)
{
    struct net_expect expect = {.cluster_id = n->s->cluster_id, .manager = true};
    n->phase = PH_CONNECTING;
    n->session_id[0] = '\0';
    int r = net_client_connect_tcp_expect(&n->s->loop, &n->s->cfg.manager, n->ctx, &expect,
                                          CONNECT_TIMEOUT_MS, on_session_connect, n, &n->client);
    if (r < 0)
        retry(n, "session connect", r, NULL);
}

/* ------------------------------------------------------------------ lifecycle */

/* Every session ends here and opens again with the node's current TLS context. */
static void on_reconnect(uv_async_t *a)
{
    scale_nodes *s = a->data;
    for (unsigned i = 0; i < s->cfg.n && !s->stopping; i++) {
        struct node *n = &s->nodes[i];
        if (n->phase != PH_ACTIVE)
            continue;
        drop_client(n);
        uv_timer_stop(&n->timer);
        uv_timer_stop(&n->status_timer);
        n->hb_in_flight = false;
        n->sent = 0;
        session_connect(n);
    }
}

static void on_stop(uv_async_t *a)
{
    scale_nodes *s = a->data;
    s->stopping = true;
    for (unsigned i = 0; i < s->cfg.n; i++) {
        struct node *n = &s->nodes[i];
        drop_client(n);
        uv_close((uv_handle_t *)&n->timer, NULL);
        uv_close((uv_handle_t *)&n->status_timer, NULL);
    }
    uv_close((uv_handle_t *)&s->stop, NULL);
    uv_close((uv_handle_t *)&s->reconnect, NULL);
}

static void *thread_main(void *userdata)
{
    scale_nodes *s = userdata;
    pump(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

int scale_nodes_create(const struct scale_nodes_config *cfg, scale_nodes **ret, char *errmsg,
                       size_t errmsg_size)
{
    scale_nodes *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->cfg = *cfg;
    pthread_mutex_init(&s->lock, NULL);
    s->next_pid = FAKE_PID_BASE;
    s->rng = sw_now_monotonic_ns() | 1;
    s->token = strdup(cfg->token);
    s->nodes = calloc(cfg->n, sizeof(*s->nodes));
    int r = s->token && s->nodes ? 0 : -ENOMEM;
    if (r >= 0 && (r = uv_loop_init(&s->loop)) >= 0) {
        r = uv_async_init(&s->loop, &s->stop, on_stop);
        if (r >= 0 && (r = uv_async_init(&s->loop, &s->reconnect, on_reconnect)) < 0) {
            uv_close((uv_handle_t *)&s->stop, NULL);
            uv_run(&s->loop, UV_RUN_DEFAULT);
        }
        if (r < 0)
            uv_loop_close(&s->loop);
    }
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "cannot set up the loop: %s", strerror(-r));
        scale_nodes_destroy(s);
        return r;
    }
    s->stop.data = s->reconnect.data = s;
    for (unsigned i = 0; i < cfg->n; i++) {
        struct node *n = &s->nodes[i];
        n->s = s;
        n->idx = i;
        n->period_ns = 5 * SW_NSEC_PER_SEC;
        snprintf(n->hostname, sizeof(n->hostname), "scale-n%05u", i);
        uv_timer_init(&s->loop, &n->timer);
        uv_timer_init(&s->loop, &n->status_timer);
        n->timer.data = n->status_timer.data = n;
    }
    s->loop_ready = true;
    r = pki_tls_client_ctx(NULL, 0, NULL, 0, NULL, &s->anon_ctx, errmsg, errmsg_size);
    for (unsigned i = 0; r >= 0 && i < cfg->n; i++) {
        struct node *n = &s->nodes[i];
        r = pki_key_generate(&n->key);
        if (r >= 0)
            r = pki_csr_create(n->key, &n->csr);
        if (r < 0)
            snprintf(errmsg, errmsg_size, "node key %u: %s", i, strerror(-r));
    }
    if (r < 0) {
        scale_nodes_destroy(s);
        return r;
    }
    *ret = s;
    return 0;
}

int scale_nodes_start(scale_nodes *s)
{
    int r = -pthread_create(&s->thread, NULL, thread_main, s);
    if (r >= 0)
        s->thread_started = true;
    return r;
}

void scale_nodes_stats(scale_nodes *s, struct scale_stats *ret)
{
    ret->certs = atomic_load(&s->certs);
    ret->ready = atomic_load(&s->ready);
    ret->failed = atomic_load(&s->failed);
    ret->last_cert_ns = atomic_load(&s->last_cert_ns);
    ret->last_ready_ns = atomic_load(&s->last_ready_ns);
    ret->sessions_lost = atomic_load(&s->sessions_lost);
    ret->heartbeats = atomic_load(&s->heartbeats);
    ret->hb_late = atomic_load(&s->hb_late);
    ret->hb_errors = atomic_load(&s->hb_errors);
    ret->assignments = atomic_load(&s->assignments);
    ret->running_acked = atomic_load(&s->running_acked);
    ret->last_running_ns = atomic_load(&s->last_running_ns);
    ret->status_calls = atomic_load(&s->status_calls);
    ret->status_errors = atomic_load(&s->status_errors);
    ret->sessions_opened = atomic_load(&s->sessions_opened);
    ret->renew_asks = atomic_load(&s->renew_asks);
    ret->renewals = atomic_load(&s->renewals);
    ret->renew_errors = atomic_load(&s->renew_errors);
    ret->renew_pending = atomic_load(&s->renew_pending);
    pthread_mutex_lock(&s->lock);
    memcpy(ret->last_error, s->last_error, sizeof(ret->last_error));
    pthread_mutex_unlock(&s->lock);
}

void scale_nodes_destroy(scale_nodes *s)
{
    if (!s)
        return;
    if (s->loop_ready) {
        if (s->thread_started) {
            uv_async_send(&s->stop);
            pthread_join(s->thread, NULL);
        } else {
            on_stop(&s->stop);
        }
        /* the handles closed above (and the clients' own) finish here */
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
    }
    for (unsigned i = 0; s->nodes && i < s->cfg.n; i++) {
        struct node *n = &s->nodes[i];
        pki_key_free(n->key);
        free(n->csr);
        free(n->cert);
        free(n->bundle);
        pki_key_free(n->renew_key);
        if (n->ctx)
            pki_tls_ctx_free(n->ctx);
        free(n->tasks);
        free(n->q);
    }
    if (s->anon_ctx)
        pki_tls_ctx_free(s->anon_ctx);
    if (s->token) {
        sw_erase(s->token, strlen(s->token));
        free(s->token);
    }
    free(s->root_pem);
    free(s->first_cert);
    pki_key_free(s->first_key);
    free(s->nodes);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void scale_nodes_reconnect(scale_nodes *s)
{
    uv_async_send(&s->reconnect);
}

unsigned scale_nodes_count_trusting(scale_nodes *s, const char *digest)
{
    unsigned k = 0;
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->cfg.n; i++)
        k += strcmp(s->nodes[i].digest, digest) == 0;
    pthread_mutex_unlock(&s->lock);
    return k;
}

void scale_nodes_check_trust(scale_nodes *s, const char *bundle, struct scale_trust *ret)
{
    char digest[PKI_TOKEN_DIGEST_LEN + 1] = "";
    struct scale_trust t = {.renew_min = UINT32_MAX};
    (void)pki_ca_digest(bundle, strlen(bundle), digest);
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < s->cfg.n; i++) {
        const struct node *n = &s->nodes[i];
        char err[64];
        t.trusting += digest[0] && strcmp(n->digest, digest) == 0;
        t.chained += n->cert && pki_verify_cert(bundle, strlen(bundle), n->cert, strlen(n->cert),
                                                NULL, err, sizeof(err)) >= 0;
        t.renew_min = SW_MIN(t.renew_min, n->renewals);
        t.renew_max = SW_MAX(t.renew_max, n->renewals);
    }
    pthread_mutex_unlock(&s->lock);
    if (!s->cfg.n)
        t.renew_min = 0;
    *ret = t;
}

int scale_nodes_try_first_identity(scale_nodes *s, const char *bundle, char *errmsg,
                                   size_t errmsg_size)
{
    if (!s->first_cert || !s->first_key) {
        snprintf(errmsg, errmsg_size, "node 0 never had a certificate");
        return -ENOENT;
    }
    SSL_CTX *ctx = NULL;
    int r = pki_tls_client_ctx(bundle, strlen(bundle), s->first_cert, strlen(s->first_cert),
                               s->first_key, &ctx, errmsg, errmsg_size);
    if (r < 0)
        return r;
    struct net_expect expect = {.cluster_id = s->cluster_id, .manager = true};
    net_sync *c = NULL;
    r = net_sync_connect_tcp_expect(&s->cfg.manager, ctx, &expect, 10000, &c, errmsg, errmsg_size);
    if (c)
        net_sync_close(c);
    pki_tls_ctx_free(ctx);
    return r;
}
