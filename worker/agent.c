/* The worker agent: one mTLS session with a manager (Dispatcher.Session), heartbeats at the
 * period the manager asks for, reconnection with backoff and failover between managers;
 * assignments go to the executor, whose status updates go back batched. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "net/rpc.h"
#include "proto/frame.h"
#include "worker/agent.h"
#include "worker/internal.h"

#define CONNECT_TIMEOUT_MS 5000u
#define SESSION_WAIT_MS 10000u  /* connected, first SessionMessage still missing */
#define FIRST_SESSION_MS 30000u /* ready(<0) if no session by then */
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define PERIOD_DEFAULT_NS (5ULL * SW_NSEC_PER_SEC)
#define PERIOD_MIN_NS (10ULL * SW_NSEC_PER_MSEC)
#define STATUS_FLUSH_MS 50u
#define STATUS_BATCH 64u
#define STATUS_RETRY_MS 1000u /* after the manager refused a batch */
#define RENEW_RETRY_MIN_MS 1000u
#define RENEW_RETRY_MAX_MS (10u * 60u * 1000u)

enum agent_state {
    AGENT_IDLE = 0,   /* waiting to reconnect (backoff) or given up */
    AGENT_CONNECTING, /* TLS connect in progress */
    AGENT_OPENING,    /* Session called, first message pending */
    AGENT_ACTIVE,     /* session up, heartbeating */
    AGENT_STOPPED,
};

struct wrk_agent {
    uv_loop_t *loop;
    char *state_dir;
    char node_id[SW_ID_LEN + 1];
    char cluster_id[SW_ID_LEN + 1];
    char hostname[256];
    char advertise[80];
    SSL_CTX *ctx;
    enum pki_role role;
    char *root_ca_pem;
    struct sw_addr managers[WRK_MANAGERS_MAX];
    size_t n_managers, cur;

    enum agent_state state;
    net_client *client;
    char *session_id;
    uint64_t period_ns;
    bool hb_in_flight;
    uint64_t backoff_ms;
    char last_error[256];

    wrk_ready_fn ready;
    void *userdata;
    bool ready_done;
    bool keep_trying;

    uv_timer_t timer;        /* backoff, session wait, heartbeats */
    uv_timer_t first_timer;  /* FIRST_SESSION_MS */
    uv_timer_t status_timer; /* STATUS_FLUSH_MS after the first unsent update */
    uv_timer_t renew_timer;  /* the renewal point, then retries */

    /* certificate renewal */
    uint64_t cert_not_before, cert_not_after; /* of the certificate in ctx */
    bool renew_due;                           /* time to renew, waiting for a session */
    bool renew_in_flight;
    uint64_t renew_backoff_ms;
    unsigned renewals;
    wrk_renewed_fn renewed;
    void *renewed_userdata;
    enum pki_role cert_role; /* the role of the certificate it loaded */
    void (*role_changed)(wrk_agent *a, enum pki_role role, void *userdata);
    wrk__exec *exec;
    int handles_open; /* the timers and the executor */
    void (*stop_cb)(void *userdata);
    void *stop_userdata;
};

static void connect_next(wrk_agent *a);
static void fail_session(wrk_agent *a, int status, const char *why);

/* ------------------------------------------------------------------ helpers */

static void report_ready(wrk_agent *a, int status, const char *errmsg)
{
    if (a->ready_done)
        return;
    a->ready_done = true;
    uv_timer_stop(&a->first_timer);
    if (a->ready)
        a->ready(a, status, errmsg, a->userdata);
    if (status >= 0 && a->cert_role != a->role && a->role_changed) {
        /* the certificate is of the other role: a promotion or demotion stopped between the
         * renewal and the node's change of state (a crash); it goes on now */
        log_info("agent: this node's certificate is a %s's: finishing the change of role",
                 a->cert_role == PKI_ROLE_MANAGER ? "manager" : "worker");
        a->role = a->cert_role;
        a->role_changed(a, a->role, a->renewed_userdata);
    }
}

static void drop_client(wrk_agent *a)
{
    net_client *c = a->client;
    a->client = NULL; /* callbacks run inside the close see it is not ours any more */
    if (c)
        net_client_close(c);
    if (a->exec)
        wrk__exec_updates_done(a->exec, false); /* what was in flight goes again */
    free(a->session_id);
    a->session_id = NULL;
    a->hb_in_flight = false;
}

static uint64_t period_ms(const wrk_agent *a)
{
    return SW_MAX(a->period_ns, PERIOD_MIN_NS) / SW_NSEC_PER_MSEC;
}

/* ------------------------------------------------------------------ reconnecting */

static void timer_reconnect(uv_timer_t *t)
{
    wrk_agent *a = t->data;
    if (a->state == AGENT_IDLE)
        connect_next(a);
}

static void fail_session(wrk_agent *a, int status, const char *why)
{
    if (a->state == AGENT_STOPPED)
        return;
    char target[80];
    sw_addr_format(&a->managers[a->cur], target, sizeof(target));
    snprintf(a->last_error, sizeof(a->last_error), "%s", why);
    log_debug("agent: session with %s lost: %s", target, why);
    bool had_session = a->state == AGENT_ACTIVE;
    drop_client(a);
    uv_timer_stop(&a->timer);
    a->state = AGENT_IDLE;
    if (!a->ready_done && (status == -EPERM || status == -EKEYREJECTED || status == -EKEYEXPIRED)) {
        /* refused by the manager or not a manager of this cluster: no point waiting */
        char msg[900];
        if (status == -EKEYREJECTED)
            snprintf(msg, sizeof(msg),
                     "no session with a manager: %s: the swarm's root CA was rotated while "
                     "this node was down, or that is not a manager of its swarm. To come back as "
                     "node %s: on a manager 'swarmctl node update --allow-rejoin %s', then here "
                     "'swarmd join --rejoin --state-dir %s WORKER-TOKEN MANAGER'; or 'swarmctl "
                     "node rm %s' and join as a new node",
                     why, a->node_id, a->node_id, a->state_dir, a->node_id);
        else
            snprintf(msg, sizeof(msg), "no session with a manager: %s", why);
        report_ready(a, status, msg);
        if (!a->keep_trying)
            return;
    }
    if (had_session)
        a->backoff_ms = BACKOFF_MIN_MS;
    a->cur = (a->cur + 1) % a->n_managers;
    /* a manager that is not the leader says where the leader is: go there next */
    struct sw_addr leader;
    if (wrk__leader_hint(why, &leader) >= 0) {
        size_t k;
        for (k = 0; k < a->n_managers; k++)
            if (strcmp(a->managers[k].host, leader.host) == 0 && a->managers[k].port == leader.port)
                break;
        if (k == a->n_managers && a->n_managers < WRK_MANAGERS_MAX)
            a->managers[a->n_managers++] = leader;
        if (k < a->n_managers) {
            a->cur = k;
            a->backoff_ms = BACKOFF_MIN_MS;
        }
    }
    uint64_t wait = wrk__jitter_ms(a->backoff_ms, 20);
    a->backoff_ms = SW_MIN(a->backoff_ms * 2, (uint64_t)BACKOFF_MAX_MS);
    uv_timer_start(&a->timer, timer_reconnect, wait, 0);
}

static void first_timeout(uv_timer_t *t)
{
    wrk_agent *a = t->data;
    if (a->ready_done || a->state == AGENT_ACTIVE)
        return; /* in session: ready as soon as the runtime is set up */
    char msg[400];
    snprintf(msg, sizeof(msg), "no session with a manager within %u s: %s", FIRST_SESSION_MS / 1000,
             a->last_error[0] ? a->last_error : "no answer");
    if (a->keep_trying) {
        report_ready(a, -ETIMEDOUT, msg); /* and go on trying */
        return;
    }
    drop_client(a);
    uv_timer_stop(&a->timer);
    a->state = AGENT_IDLE; /* given up: the caller stops the agent */
    report_ready(a, -ETIMEDOUT, msg);
}

/* ------------------------------------------------------------------ heartbeats */

static void heartbeat_send(wrk_agent *a);

static void timer_heartbeat(uv_timer_t *t)
{
    wrk_agent *a = t->data;
    if (a->state != AGENT_ACTIVE)
        return;
    if (a->hb_in_flight) {
        fail_session(a, -ETIMEDOUT, "the manager did not answer a heartbeat within a period");
        return;
    }
    heartbeat_send(a);
}

static void on_heartbeat(net_client *c, int status, const char *error, const uint8_t *payload,
                         size_t len, bool final, void *userdata)
{
    wrk_agent *a = userdata;
    if (c != a->client || !final)
        return;
    a->hb_in_flight = false;
    if (status < 0) {
        char why[300];
        snprintf(why, sizeof(why), "heartbeat refused: %s", error ? error : strerror(-status));
        fail_session(a, status, why);
        return;
    }
    Swarm__HeartbeatResponse *resp = swarm__heartbeat_response__unpack(NULL, len, payload);
    if (!resp) {
        fail_session(a, -EPROTO, "malformed heartbeat answer");
        return;
    }
    if (resp->period_ns)
        a->period_ns = resp->period_ns;
    swarm__heartbeat_response__free_unpacked(resp, NULL);
}

static void heartbeat_send(wrk_agent *a)
{
    Swarm__HeartbeatRequest req = SWARM__HEARTBEAT_REQUEST__INIT;
    req.session_id = a->session_id;
    const char *rt_error = wrk__exec_runtime_error(a->exec);
    if (rt_error)
        req.runtime_error = (char *)rt_error;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(&req.base, &buf, &len);
    if (r >= 0)
        r = net_client_call(a->client, "Dispatcher.Heartbeat", buf, len, on_heartbeat, a, NULL);
    if (r < 0) {
        fail_session(a, r, "cannot send a heartbeat");
        return;
    }
    a->hb_in_flight = true;
    uv_timer_start(&a->timer, timer_heartbeat, wrk__jitter_ms(period_ms(a), 20), 0);
}

/* ------------------------------------------------------------------ task status */

static void status_flush(wrk_agent *a);

static void timer_status(uv_timer_t *t)
{
    status_flush(t->data);
}

static void on_status(net_client *c, int status, const char *error, const uint8_t *payload,
                      size_t len, bool final, void *userdata)
{
    wrk_agent *a = userdata;
    (void)payload;
    (void)len;
    if (c != a->client || !final)
        return;
    if (status < 0)
        log_debug("agent: task status not taken: %s", error ? error : strerror(-status));
    /* answered once the updates are committed; else they are kept */
    wrk__exec_updates_done(a->exec, status >= 0);
    if (wrk__exec_updates_unsent(a->exec) == 0)
        return;
    uv_timer_stop(&a->status_timer);
    if (status >= 0)
        status_flush(a);
    else
        uv_timer_start(&a->status_timer, timer_status, STATUS_RETRY_MS, 0);
}

static void status_flush(wrk_agent *a)
{
    if (a->state != AGENT_ACTIVE || !a->client)
        return; /* sent once a session is up */
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0, n = 0;
    int r = wrk__exec_updates_pack(a->exec, a->session_id, STATUS_BATCH, &buf, &len, &n);
    if (r < 0 || n == 0)
        return;
    r = net_client_call(a->client, "Dispatcher.UpdateTaskStatus", buf, len, on_status, a, NULL);
    if (r < 0) {
        log_debug("agent: cannot send task status: %s", strerror(-r));
        wrk__exec_updates_done(a->exec, false);
    }
}

/* An update was queued: send at STATUS_BATCH unsent, else within STATUS_FLUSH_MS. */
static void status_kick(void *userdata)
{
    wrk_agent *a = userdata;
    if (a->state == AGENT_STOPPED)
        return;
    if (wrk__exec_updates_unsent(a->exec) >= STATUS_BATCH) {
        uv_timer_stop(&a->status_timer);
        status_flush(a);
    } else if (!uv_is_active((uv_handle_t *)&a->status_timer)) {
        uv_timer_start(&a->status_timer, timer_status, STATUS_FLUSH_MS, 0);
    }
}

/* ------------------------------------------------------------------ certificate renewal */

static void renew_try(wrk_agent *a);

static void timer_renew(uv_timer_t *t)
{
    wrk_agent *a = t->data;
    a->renew_due = true;
    renew_try(a);
}

/* Arm the timer for the renewal point of the current certificate. */
static void renew_schedule(wrk_agent *a)
{
    uint32_t rnd = 0;
    (void)sw_random_bytes(&rnd, sizeof(rnd));
    uint64_t at = wrk__renew_at_ns(a->cert_not_before, a->cert_not_after, rnd);
    uint64_t now = sw_now_realtime_ns();
    uint64_t delay_ms = at > now ? (at - now) / SW_NSEC_PER_MSEC : 0;
    log_debug("agent: certificate valid until %llu, renewal in %llu s",
              (unsigned long long)(a->cert_not_after / SW_NSEC_PER_SEC),
              (unsigned long long)(delay_ms / 1000));
    uv_timer_start(&a->renew_timer, timer_renew, delay_ms, 0);
}

static void renew_retry(wrk_agent *a, const char *why)
{
    log_debug("agent: certificate renewal failed (%s); retrying in %llu ms", why,
              (unsigned long long)a->renew_backoff_ms);
    uv_timer_start(&a->renew_timer, timer_renew, wrk__jitter_ms(a->renew_backoff_ms, 20), 0);
    a->renew_backoff_ms = SW_MIN(a->renew_backoff_ms * 2, (uint64_t)RENEW_RETRY_MAX_MS);
}

/* Check what the manager issued, store it, and present it from the next connection on. */
static int renew_adopt(wrk_agent *a, const Swarm__IssueNodeCertificateResponse *resp,
                       const pki_key *key, char *err, size_t size)
{
    struct pki_identity id;
    size_t len = strlen(resp->cert_pem);
    SSL_CTX *ctx = NULL;
    /* a root rotation: the manager (over the connection this node trusts) hands out the
     * cluster's new bundle with the certificate; the certificate must chain to it */
    const char *bundle =
        resp->ca_cert_pem && resp->ca_cert_pem[0] ? resp->ca_cert_pem : a->root_ca_pem;
    bool new_bundle = strcmp(bundle, a->root_ca_pem) != 0;
    int r = pki_verify_cert(bundle, strlen(bundle), resp->cert_pem, len, &id, err, size);
    if (r < 0)
        return r;
    if (strcmp(id.node_id, a->node_id) != 0 || strcmp(id.cluster_id, a->cluster_id) != 0 ||
        !pki_cert_matches_key(resp->cert_pem, len, key)) {
        snprintf(err, size, "the manager issued a certificate for another node or key");
        return -EPROTO;
    }
    if (id.role != a->role && !a->role_changed) {
        snprintf(err, size, "the new certificate is for another role");
        return -EOPNOTSUPP;
    }
    char *bundle_copy = new_bundle ? strdup(bundle) : NULL;
    if (new_bundle && !bundle_copy)
        return -ENOMEM;
    r = pki_tls_client_ctx(bundle, strlen(bundle), resp->cert_pem, len, key, &ctx, err, size);
    if (r < 0) {
        free(bundle_copy);
        return r;
    }
    /* the bundle first: the new certificate needs it, the old one is trusted by it too */
    if (new_bundle && (r = pki_node_state_replace_root(a->state_dir, bundle, err, size)) < 0) {
        free(bundle_copy);
        pki_tls_ctx_free(ctx);
        return r;
    }
    if (new_bundle) {
        free(a->root_ca_pem);
        a->root_ca_pem = bundle_copy;
        log_info("agent: the swarm's root CA bundle changed (a root rotation): trusting it");
    }
    r = pki_node_state_replace_cert(a->state_dir, resp->cert_pem, key, err, size);
    if (r < 0) {
        pki_tls_ctx_free(ctx);
        return r;
    }
    pki_tls_ctx_free(a->ctx); /* the open connection keeps its own reference */
    a->ctx = ctx;
    a->cert_not_before = id.not_before_ns;
    a->cert_not_after = id.not_after_ns;
    a->cert_role = id.role;
    return 0;
}

struct renew_req {
    wrk_agent *a;
    pki_key *key;
};

static void on_renew(net_client *c, int status, const char *error, const uint8_t *payload,
                     size_t len, bool final, void *userdata)
{
    struct renew_req *rq = userdata;
    wrk_agent *a = rq->a;
    char err[300];
    if (!final)
        return;
    a->renew_in_flight = false;
    if (a->state == AGENT_STOPPED)
        goto out;
    if (c != a->client) {
        /* the session ended first: renew_due stays set, the next session asks again */
        goto out;
    }
    if (status < 0) {
        snprintf(err, sizeof(err), "%s", error ? error : strerror(-status));
        renew_retry(a, err);
        goto out;
    }
    Swarm__IssueNodeCertificateResponse *resp =
        swarm__issue_node_certificate_response__unpack(NULL, len, payload);
    if (!resp) {
        renew_retry(a, "malformed answer");
        goto out;
    }
    int r = renew_adopt(a, resp, rq->key, err, sizeof(err));
    if (r == -EOPNOTSUPP) {
        /* asking again gets the same answer: keep the certificate until its next point */
        log_debug("agent: certificate renewal refused here: %s", err);
        a->renew_due = false;
        uv_timer_start(&a->renew_timer, timer_renew, RENEW_RETRY_MAX_MS, 0);
    } else if (r < 0) {
        renew_retry(a, err);
    } else {
        a->renew_due = false;
        a->renew_backoff_ms = RENEW_RETRY_MIN_MS;
        a->renewals++;
        log_debug("agent: certificate renewed");
        renew_schedule(a);
        enum pki_role role =
            resp->role == SWARM__NODE_ROLE__ROLE_MANAGER ? PKI_ROLE_MANAGER : PKI_ROLE_WORKER;
        if (a->renewed)
            a->renewed(a, resp->cert_pem, rq->key, a->renewed_userdata);
        if (role != a->role && a->role_changed) {
            a->role = role;
            a->role_changed(a, role, a->renewed_userdata);
        }
    }
    swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
out:
    pki_key_free(rq->key);
    free(rq);
}

/* Ask for a new certificate if one is due and a session is up. */
static void renew_try(wrk_agent *a)
{
    if (!a->renew_due || a->renew_in_flight || a->state != AGENT_ACTIVE || !a->client)
        return;
    _cleanup_free_ char *csr = NULL;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    struct renew_req *rq = calloc(1, sizeof(*rq));
    int r = rq ? pki_key_generate(&rq->key) : -ENOMEM;
    if (r >= 0)
        r = pki_csr_create(rq->key, &csr);
    if (r >= 0) {
        Swarm__RenewNodeCertificateRequest req = SWARM__RENEW_NODE_CERTIFICATE_REQUEST__INIT;
        req.csr_pem = csr;
        r = proto_pack(&req.base, &buf, &len);
    }
    if (r >= 0) {
        rq->a = a;
        r = net_client_call(a->client, "CA.RenewNodeCertificate", buf, len, on_renew, rq, NULL);
    }
    if (r < 0) {
        if (rq)
            pki_key_free(rq->key);
        free(rq);
        renew_retry(a, strerror(-r));
        return;
    }
    a->renew_in_flight = true;
}

void wrk_agent_renew_now(wrk_agent *a)
{
    if (a->state == AGENT_STOPPED)
        return;
    uv_timer_stop(&a->renew_timer);
    a->renew_due = true;
    renew_try(a);
}

uint64_t wrk_agent_cert_not_after(const wrk_agent *a)
{
    return a->cert_not_after;
}

unsigned wrk_agent_renewals(const wrk_agent *a)
{
    return a->renewals;
}

/* Wipe the secrets a session message carried before it is freed. */
static void wipe_secrets(Swarm__SessionMessage *m)
{
    for (size_t i = 0; i < m->n_assignments; i++)
        if (m->assignments[i]->secret)
            sw_erase(m->assignments[i]->secret->data.data, m->assignments[i]->secret->data.len);
}

/* ------------------------------------------------------------------ session */

/* Adopt the managers a session message names; rewrite the file when the set changed. */
static void adopt_managers(wrk_agent *a, const Swarm__SessionMessage *m)
{
    struct sw_addr list[WRK_MANAGERS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < m->n_managers && n < WRK_MANAGERS_MAX; i++) {
        if (m->managers[i]->addr && sw_addr_parse(m->managers[i]->addr, 2377, 0, &list[n]) >= 0)
            n++;
    }
    if (n == 0)
        return;
    bool same = n == a->n_managers;
    for (size_t i = 0; same && i < n; i++)
        same =
            strcmp(list[i].host, a->managers[i].host) == 0 && list[i].port == a->managers[i].port;
    if (same)
        return;
    /* keep talking to the one we reached: it goes first */
    struct sw_addr cur = a->managers[a->cur];
    memcpy(a->managers, list, n * sizeof(list[0]));
    a->n_managers = n;
    a->cur = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].host, cur.host) == 0 && list[i].port == cur.port) {
            a->cur = i;
            break;
        }
    }
    char err[300];
    if (wrk__managers_save(a->state_dir, a->managers, a->n_managers, err, sizeof(err)) < 0)
        log_debug("agent: %s", err);
}

static void on_session(net_client *c, int status, const char *error, const uint8_t *payload,
                       size_t len, bool final, void *userdata)
{
    wrk_agent *a = userdata;
    if (c != a->client)
        return;
    if (final) {
        char why[300];
        if (status < 0)
            snprintf(why, sizeof(why), "session ended: %s", error ? error : strerror(-status));
        else
            snprintf(why, sizeof(why), "the manager ended the session");
        fail_session(a, status < 0 ? status : -ECONNRESET, why);
        return;
    }
    Swarm__SessionMessage *m = swarm__session_message__unpack(NULL, len, payload);
    if (!m || (a->state == AGENT_OPENING && !m->session_id[0])) {
        if (m) {
            wipe_secrets(m);
            swarm__session_message__free_unpacked(m, NULL);
        }
        fail_session(a, -EPROTO, "malformed session message");
        return;
    }
    if (m->heartbeat_period_ns)
        a->period_ns = m->heartbeat_period_ns;
    adopt_managers(a, m);
    bool opened = a->state == AGENT_OPENING;
    if (opened) {
        a->session_id = strdup(m->session_id);
        if (!a->session_id) {
            wipe_secrets(m);
            swarm__session_message__free_unpacked(m, NULL);
            fail_session(a, -ENOMEM, "out of memory");
            return;
        }
        a->state = AGENT_ACTIVE;
        a->backoff_ms = BACKOFF_MIN_MS;
        a->last_error[0] = '\0';
        char target[80];
        sw_addr_format(&a->managers[a->cur], target, sizeof(target));
        log_debug("agent: session %s with %s, heartbeat every %llu ms", a->session_id, target,
                  (unsigned long long)period_ms(a));
        uv_timer_stop(&a->timer);
        uv_timer_start(&a->timer, timer_heartbeat, wrk__jitter_ms(period_ms(a), 20), 0);
    }
    wrk__exec_apply(a->exec, m);
    bool renew = m->renew_certificate;
    wipe_secrets(m);
    swarm__session_message__free_unpacked(m, NULL);
    if (opened) {
        /* what the last session did not get committed goes now, with this one's news */
        uv_timer_stop(&a->status_timer);
        status_flush(a);
        renew_try(a);
        if (wrk__exec_settled(a->exec))
            report_ready(a, 0, NULL);
    }
    if (renew && !a->renew_in_flight) {
        log_debug("agent: the manager asks for a certificate renewal");
        wrk_agent_renew_now(a);
    }
}

/* The runtime is set up (or known unusable): a node with a session is ready now. */
static void exec_settled(void *userdata)
{
    wrk_agent *a = userdata;
    if (a->state != AGENT_ACTIVE)
        return;
    /* the session opened before the runtime was known: a runtime that cannot run tasks is
     * told at once (the next heartbeat), so no task is scheduled here meanwhile */
    if (wrk__exec_runtime_error(a->exec) && !a->hb_in_flight) {
        uv_timer_stop(&a->timer);
        heartbeat_send(a);
    }
    report_ready(a, 0, NULL);
}

static void timer_session_wait(uv_timer_t *t)
{
    wrk_agent *a = t->data;
    if (a->state == AGENT_OPENING)
        fail_session(a, -ETIMEDOUT, "the manager opened no session");
}

static void describe(const wrk_agent *a, Swarm__NodeDescription *d, Swarm__Resources *res,
                     struct utsname *u)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    res->nano_cpus = (int64_t)(ncpu > 0 ? ncpu : 1) * 1000000000LL;
    res->memory_bytes = pages > 0 && psize > 0 ? (int64_t)pages * psize : 0;
    if (uname(u) < 0)
        snprintf(u->machine, sizeof(u->machine), "unknown");
    d->hostname = (char *)a->hostname;
    d->addr = (char *)a->advertise;
    d->resources = res;
    d->os = "linux";
    d->arch = u->machine;
    const char *rt_error = wrk__exec_runtime_error(a->exec);
    if (rt_error)
        d->runtime_error = (char *)rt_error;
}

static void on_connect(net_client *c, int status, const char *error, void *userdata)
{
    wrk_agent *a = userdata;
    if (c != a->client)
        return;
    if (status < 0) {
        fail_session(a, status, error ? error : strerror(-status));
        return;
    }
    Swarm__NodeDescription d = SWARM__NODE_DESCRIPTION__INIT;
    Swarm__Resources res = SWARM__RESOURCES__INIT;
    Swarm__SessionRequest req = SWARM__SESSION_REQUEST__INIT;
    struct utsname u;
    describe(a, &d, &res, &u);
    req.description = &d;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    int r = proto_pack(&req.base, &buf, &len);
    if (r >= 0)
        r = net_client_call(c, "Dispatcher.Session", buf, len, on_session, a, NULL);
    if (r < 0) {
        fail_session(a, r, "cannot open a session");
        return;
    }
    a->state = AGENT_OPENING;
    uv_timer_stop(&a->timer);
    uv_timer_start(&a->timer, timer_session_wait, SESSION_WAIT_MS, 0);
}

static void connect_next(wrk_agent *a)
{
    struct net_expect expect = {.cluster_id = a->cluster_id, .manager = true};
    net_client *c = NULL;
    a->state = AGENT_CONNECTING;
    int r = net_client_connect_tcp_expect(a->loop, &a->managers[a->cur], a->ctx, &expect,
                                          CONNECT_TIMEOUT_MS, on_connect, a, &c);
    if (r < 0) {
        char why[200];
        snprintf(why, sizeof(why), "cannot connect: %s", strerror(-r));
        fail_session(a, r, why);
        return;
    }
    a->client = c;
}

/* ------------------------------------------------------------------ lifecycle */

static void agent_free(wrk_agent *a)
{
    if (!a)
        return;
    if (a->exec)
        wrk__exec_close(a->exec, NULL, NULL); /* only on a failed start: no handle open */
    pki_tls_ctx_free(a->ctx);
    free(a->root_ca_pem);
    free(a->session_id);
    free(a->state_dir);
    free(a);
}

int wrk_agent_start(uv_loop_t *loop, const struct wrk_config *cfg, wrk_ready_fn ready,
                    void *userdata, wrk_agent **ret, char *errmsg, size_t errmsg_size)
{
    struct pki_node_state st;
    wrk_agent *a = NULL;
    int r;

    if (!loop || !cfg || !cfg->state_dir || !ret) {
        snprintf(errmsg, errmsg_size, "a loop and a state directory are required");
        return -EINVAL;
    }
    r = pki_node_state_load(cfg->state_dir, &st, errmsg, errmsg_size);
    if (r < 0)
        return r;
    if (st.role == PKI_ROLE_WORKER)
        wrk__drop_manager_data(cfg->state_dir); /* left by an interrupted demotion */
    if (st.role != PKI_ROLE_WORKER && !cfg->allow_manager) {
        snprintf(errmsg, errmsg_size, "%s holds node %s, a manager, not a worker", cfg->state_dir,
                 st.node_id);
        r = -EINVAL;
        goto out;
    }
    a = calloc(1, sizeof(*a));
    if (!a || !(a->state_dir = strdup(cfg->state_dir))) {
        snprintf(errmsg, errmsg_size, "out of memory");
        r = -ENOMEM;
        goto out;
    }
    a->loop = loop;
    memcpy(a->node_id, st.node_id, sizeof(a->node_id));
    memcpy(a->cluster_id, st.cluster_id, sizeof(a->cluster_id));
    snprintf(a->hostname, sizeof(a->hostname), "%s", cfg->hostname ? cfg->hostname : st.hostname);
    sw_addr_format(&st.advertise_addr, a->advertise, sizeof(a->advertise));
    a->period_ns = PERIOD_DEFAULT_NS;
    a->backoff_ms = BACKOFF_MIN_MS;
    a->ready = ready;
    a->userdata = userdata;
    a->keep_trying = cfg->keep_trying;
    a->renewed = cfg->renewed;
    a->role_changed = cfg->role_changed;
    a->renewed_userdata = cfg->renewed_userdata;
    a->role = st.role;
    a->renew_backoff_ms = RENEW_RETRY_MIN_MS;
    struct pki_identity id;
    if (pki_identity_from_pem(st.node_cert_pem, strlen(st.node_cert_pem), &id) < 0) {
        snprintf(errmsg, errmsg_size, "the node certificate in %s is not a swarm certificate",
                 cfg->state_dir);
        r = -EINVAL;
        goto out;
    }
    a->cert_not_before = id.not_before_ns;
    a->cert_not_after = id.not_after_ns;
    a->cert_role = id.role;
    if (id.not_after_ns <= sw_now_realtime_ns() && st.role == PKI_ROLE_WORKER) {
        char when[64];
        sw_time_format(id.not_after_ns, when, sizeof(when));
        snprintf(errmsg, errmsg_size,
                 "this node's certificate expired on %s (it was down longer than its validity) "
                 "and managers refuse it. To come back as node %s: on a manager 'swarmctl node "
                 "update --allow-rejoin %s', then here 'swarmd join --rejoin --state-dir %s "
                 "WORKER-TOKEN MANAGER'; or join as a new node ('swarmd join --state-dir NEWDIR "
                 "TOKEN MANAGER', and 'swarmctl node rm %s' removes the old one)",
                 when, id.node_id, id.node_id, cfg->state_dir, id.node_id);
        r = -EKEYEXPIRED;
        goto out;
    }
    if (!(a->root_ca_pem = strdup(st.root_ca_pem))) {
        snprintf(errmsg, errmsg_size, "out of memory");
        r = -ENOMEM;
        goto out;
    }

    if (cfg->manager_set && cfg->manager.port != 0)
        a->managers[a->n_managers++] = cfg->manager;
    {
        struct sw_addr list[WRK_MANAGERS_MAX];
        size_t n = 0;
        char lerr[300];
        r = wrk__managers_load(cfg->state_dir, list, WRK_MANAGERS_MAX, &n, lerr, sizeof(lerr));
        if (r < 0 && a->n_managers == 0) {
            snprintf(errmsg, errmsg_size, "%s", lerr);
            goto out;
        }
        for (size_t i = 0; r >= 0 && i < n && a->n_managers < WRK_MANAGERS_MAX; i++) {
            bool dup = false;
            for (size_t k = 0; k < a->n_managers; k++)
                dup |= strcmp(a->managers[k].host, list[i].host) == 0 &&
                       a->managers[k].port == list[i].port;
            if (!dup)
                a->managers[a->n_managers++] = list[i];
        }
    }
    r = pki_tls_client_ctx(st.root_ca_pem, strlen(st.root_ca_pem), st.node_cert_pem,
                           strlen(st.node_cert_pem), st.node_key, &a->ctx, errmsg, errmsg_size);
    if (r < 0)
        goto out;

    char run_dir[256], parent[64];
    if (!cfg->run_dir)
        snprintf(run_dir, sizeof(run_dir), "/run/swarmd/%s", a->node_id);
    snprintf(parent, sizeof(parent), "swarmd-%.12s", a->node_id);
    struct wrk__exec_config xc = {
        .run_dir = cfg->run_dir ? cfg->run_dir : run_dir,
        .cgroup_parent = cfg->cgroup_parent ? cfg->cgroup_parent : parent,
        .stop_grace_ms = cfg->stop_grace_ms,
        .settled = exec_settled,
    };
    r = wrk__exec_create(loop, &xc, status_kick, a, &a->exec);
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "out of memory");
        goto out;
    }

    uv_timer_init(loop, &a->timer);
    uv_timer_init(loop, &a->first_timer);
    uv_timer_init(loop, &a->status_timer);
    uv_timer_init(loop, &a->renew_timer);
    a->timer.data = a->first_timer.data = a->status_timer.data = a->renew_timer.data = a;
    a->handles_open = 5; /* four timers and the executor */
    uv_timer_start(&a->first_timer, first_timeout, FIRST_SESSION_MS, 0);
    renew_schedule(a);
    connect_next(a);
    *ret = TAKE_PTR(a);
    r = 0;
out:
    pki_node_state_finish(&st);
    agent_free(a);
    return r;
}

static void agent_closed_one(wrk_agent *a)
{
    if (--a->handles_open > 0)
        return;
    void (*cb)(void *) = a->stop_cb;
    void *ud = a->stop_userdata;
    agent_free(a);
    if (cb)
        cb(ud);
}

static void handle_closed(uv_handle_t *h)
{
    agent_closed_one(h->data);
}

static void exec_closed(void *userdata)
{
    agent_closed_one(userdata);
}

void wrk_agent_stop(wrk_agent *a, void (*cb)(void *userdata), void *userdata)
{
    if (!a || a->state == AGENT_STOPPED)
        return;
    a->state = AGENT_STOPPED;
    a->ready_done = true; /* no callback after stop */
    a->stop_cb = cb;
    a->stop_userdata = userdata;
    drop_client(a);
    uv_close((uv_handle_t *)&a->timer, handle_closed);
    uv_close((uv_handle_t *)&a->first_timer, handle_closed);
    uv_close((uv_handle_t *)&a->status_timer, handle_closed);
    uv_close((uv_handle_t *)&a->renew_timer, handle_closed);
    /* every task killed, reaped and its cgroup gone before the agent is */
    wrk__exec *x = TAKE_PTR(a->exec);
    wrk__exec_close(x, exec_closed, a);
}

const char *wrk_agent_runtime_error(const wrk_agent *a)
{
    return a->exec ? wrk__exec_runtime_error(a->exec) : NULL;
}

unsigned wrk_agent_leftovers_killed(const wrk_agent *a)
{
    return a->exec ? wrk__exec_leftovers_killed(a->exec) : 0;
}

const char *wrk_agent_node_id(const wrk_agent *a)
{
    return a->node_id;
}
