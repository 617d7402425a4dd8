/* worker/ test helpers: a worker's state dir, a fake dispatcher (sessions, heartbeats,
 * assignments, task status), and the agent on the harness's loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "fake.h"

/* ------------------------------------------------------------------ a worker's state dir */

char *wt_sign(struct cluster *c, const char *node_id, const char *cluster_id, enum pki_role role,
              pki_key **ret_key)
{
    char *csr = NULL, *cert = NULL, err[256];
    assert_int_equal(pki_key_generate(ret_key), 0);
    assert_int_equal(pki_csr_create(*ret_key, &csr), 0);
    struct pki_sign_request sr = {.node_id = node_id, .cluster_id = cluster_id, .role = role};
    if (pki_ca_sign_csr(c->ca, csr, strlen(csr), &sr, &cert, err, sizeof(err)) < 0)
        fail_msg("sign: %s", err);
    free(csr);
    return cert;
}

/* Point the node at one manager; path gets the managers file, line its content. */
void wt_write_managers(const struct cluster *c, const struct sw_addr *manager, char *path,
                       size_t path_size, char *line, size_t line_size)
{
    char a[80];
    sw_addr_format(manager, a, sizeof(a));
    snprintf(line, line_size, "%s\n", a);
    snprintf(path, path_size, "%s/managers", c->dir);
    assert_int_equal(sw_write_file_atomic(path, line, strlen(line), 0600), 0);
}

/* A node's state dir as wrk_join leaves it, made directly with pki/, naming managers. */
void wt_cluster_init(struct cluster *c, struct mt *t, enum pki_role role,
                     const struct sw_addr *manager)
{
    char err[256];
    memset(c, 0, sizeof(*c));
    assert_int_equal(pki_ca_create(&c->ca), 0);
    assert_int_equal(sw_id_generate(c->cluster_id), 0);
    assert_int_equal(sw_id_generate(c->worker_id), 0);
    snprintf(c->dir, sizeof(c->dir), "%s/worker", t->dir);

    struct pki_node_state st = {0};
    memcpy(st.node_id, c->worker_id, sizeof(st.node_id));
    memcpy(st.cluster_id, c->cluster_id, sizeof(st.cluster_id));
    st.role = role;
    /* pki_node_state_load insists on a raft id even for workers; a worker ignores it */
    st.raft_id = 1;
    sw_addr_parse("0.0.0.0:2377", -1, 0, &st.listen_addr);
    sw_addr_parse("127.0.0.1:2377", -1, 0, &st.advertise_addr);
    snprintf(st.hostname, sizeof(st.hostname), "wt-agent");
    assert_int_equal(pki_aead_key_generate(&st.kek), 0);
    if (role == PKI_ROLE_MANAGER)
        assert_int_equal(pki_aead_key_generate(&st.dek), 0);
    st.node_cert_pem = wt_sign(c, c->worker_id, c->cluster_id, role, &st.node_key);
    st.root_ca_pem = strdup(pki_ca_cert_pem(c->ca));
    if (pki_node_state_write_keys(c->dir, &st, err, sizeof(err)) < 0 ||
        pki_node_state_save_conf(c->dir, &st, err, sizeof(err)) < 0)
        fail_msg("state: %s", err);
    pki_node_state_finish(&st);
    char path[256], line[100];
    wt_write_managers(c, manager, path, sizeof(path), line, sizeof(line));
}

void wt_cluster_finish(struct cluster *c)
{
    pki_ca_free(c->ca);
    c->ca = NULL;
}

/* ------------------------------------------------------------------ the fake dispatcher */

static void forget(struct fake *f, net_call *call)
{
    for (size_t i = 0; i < SW_ARRAY_SIZE(f->open); i++)
        if (f->open[i] == call)
            f->open[i] = NULL;
    if (f->last == call)
        f->last = NULL;
}

static void session_gone(net_call *call, void *ud)
{
    forget(ud, call);
    net_call_reply(call, -ECANCELED, "gone", NULL, 0);
}

static void h_session(net_call *call, const uint8_t *payload, size_t len, void *ud)
{
    struct fake *f = ud;
    Swarm__SessionRequest *req = swarm__session_request__unpack(NULL, len, payload);
    if (!req || !req->description) {
        if (req)
            swarm__session_request__free_unpacked(req, NULL);
        net_call_reply(call, -EINVAL, "no description", NULL, 0);
        return;
    }
    const Swarm__NodeDescription *d = req->description;
    snprintf(f->hostname, sizeof(f->hostname), "%s", d->hostname);
    snprintf(f->arch, sizeof(f->arch), "%s", d->arch);
    snprintf(f->os, sizeof(f->os), "%s", d->os);
    snprintf(f->addr, sizeof(f->addr), "%s", d->addr);
    f->nano_cpus = d->resources ? d->resources->nano_cpus : 0;
    f->memory = d->resources ? d->resources->memory_bytes : 0;
    swarm__session_request__free_unpacked(req, NULL);

    f->sessions++;
    snprintf(f->session_id, sizeof(f->session_id), "session-%u", f->sessions);
    char self[80];
    sw_addr_format(&f->bound, self, sizeof(self));
    Swarm__ManagerPeer p0 = SWARM__MANAGER_PEER__INIT, p1 = SWARM__MANAGER_PEER__INIT;
    p0.node_id = "fake-manager";
    p0.addr = self;
    p1.node_id = "other-manager";
    p1.addr = (char *)f->extra_manager;
    Swarm__ManagerPeer *peers[] = {&p0, &p1};
    Swarm__SessionMessage msg = SWARM__SESSION_MESSAGE__INIT;
    msg.session_id = f->session_id;
    msg.heartbeat_period_ns = PERIOD_NS;
    msg.managers = peers;
    msg.n_managers = f->extra_manager ? 2 : 1;
    msg.full = true;
    msg.assignments = f->first;
    msg.n_assignments = f->n_first;
    uint8_t *buf = NULL;
    size_t n = 0;
    assert_int_equal(proto_pack(&msg.base, &buf, &n), 0);
    int r = net_call_send(call, buf, n);
    free(buf);
    if (r < 0) {
        net_call_reply(call, r, "cannot send", NULL, 0);
        return;
    }
    for (size_t i = 0; i < SW_ARRAY_SIZE(f->open); i++) {
        if (!f->open[i]) {
            f->open[i] = call;
            f->last = call;
            net_call_on_gone(call, session_gone, f);
            if (net_call_gone(call))
                session_gone(call, f);
            return;
        }
    }
    net_call_reply(call, -EBUSY, "too many sessions", NULL, 0);
}

static void h_heartbeat(net_call *call, const uint8_t *payload, size_t len, void *ud)
{
    struct fake *f = ud;
    Swarm__HeartbeatRequest *req = swarm__heartbeat_request__unpack(NULL, len, payload);
    if (!req) {
        f->bad_heartbeats++;
        net_call_reply(call, -EINVAL, "malformed", NULL, 0);
        return;
    }
    if (f->heartbeats < MAX_HB) {
        f->hb_ms[f->heartbeats] = sw_now_monotonic_ns() / SW_NSEC_PER_MSEC;
        snprintf(f->hb_session[f->heartbeats], sizeof(f->hb_session[0]), "%s", req->session_id);
    }
    f->heartbeats++;
    if (strcmp(req->session_id, f->session_id) != 0)
        f->bad_heartbeats++;
    swarm__heartbeat_request__free_unpacked(req, NULL);
    Swarm__HeartbeatResponse resp = SWARM__HEARTBEAT_RESPONSE__INIT;
    resp.period_ns = PERIOD_NS;
    uint8_t *buf = NULL;
    size_t n = 0;
    assert_int_equal(proto_pack(&resp.base, &buf, &n), 0);
    net_call_reply(call, 0, NULL, buf, n);
    free(buf);
}

static void h_status(net_call *call, const uint8_t *payload, size_t len, void *ud)
{
    struct fake *f = ud;
    f->status_calls++;
    Swarm__UpdateTaskStatusRequest *req =
        swarm__update_task_status_request__unpack(NULL, len, payload);
    if (!req) {
        f->bad_status++;
        net_call_reply(call, -EINVAL, "malformed", NULL, 0);
        return;
    }
    if (strcmp(req->session_id, f->session_id) != 0)
        f->bad_status++;
    if (f->refuse_status) {
        f->status_refused++;
        swarm__update_task_status_request__free_unpacked(req, NULL);
        net_call_reply(call, -EAGAIN, "not committed", NULL, 0);
        return;
    }
    if (req->n_updates > f->max_batch)
        f->max_batch = req->n_updates;
    for (size_t i = 0; i < req->n_updates && f->n_status < MAX_STATUS; i++) {
        const Swarm__TaskStatusUpdate *u = req->updates[i];
        struct wt_status *s = &f->status[f->n_status++];
        snprintf(s->task_id, sizeof(s->task_id), "%s", u->task_id);
        s->state = u->state;
        snprintf(s->err, sizeof(s->err), "%s", u->err);
        s->exit_code = u->exit_code;
        s->pid = u->pid;
    }
    swarm__update_task_status_request__free_unpacked(req, NULL);
    Swarm__Empty e = SWARM__EMPTY__INIT;
    uint8_t *buf = NULL;
    size_t n = 0;
    assert_int_equal(proto_pack(&e.base, &buf, &n), 0);
    net_call_reply(call, 0, NULL, buf, n);
    free(buf);
}

void wt_fake_send(struct fake *f, bool full, Swarm__Assignment **a, size_t n)
{
    assert_non_null(f->last);
    Swarm__SessionMessage msg = SWARM__SESSION_MESSAGE__INIT;
    msg.session_id = f->session_id;
    msg.heartbeat_period_ns = PERIOD_NS;
    msg.full = full;
    msg.assignments = a;
    msg.n_assignments = n;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(proto_pack(&msg.base, &buf, &len), 0);
    assert_int_equal(net_call_send(f->last, buf, len), 0);
    free(buf);
}

const struct wt_status *wt_fake_last(const struct fake *f, const char *task_id)
{
    for (size_t i = f->n_status; i-- > 0;)
        if (strcmp(f->status[i].task_id, task_id) == 0)
            return &f->status[i];
    return NULL;
}

const struct wt_status *wt_fake_wait(struct fake *f, const char *task_id, Swarm__TaskState state,
                                     uint64_t ms)
{
    uint64_t t0 = sw_now_monotonic_ns();
    for (;;) {
        const struct wt_status *s = wt_fake_last(f, task_id);
        if (s && s->state == state)
            return s;
        if (sw_now_monotonic_ns() - t0 > ms * SW_NSEC_PER_MSEC)
            return NULL;
        mt_run_for(f->t, 20);
    }
}

/* Serve on addr (port 0 first, then the same port again) with a manager certificate of
 * cluster_id. */
void wt_fake_listen(struct fake *f, const struct sw_addr *addr)
{
    char err[256];
    struct net_server_config cfg = {0};
    assert_int_equal(net_server_create(&f->t->loop, &cfg, &f->srv), 0);
    assert_int_equal(net_server_register(f->srv, "Dispatcher.Session", NET_AUTH_NODE, h_session, f),
                     0);
    assert_int_equal(
        net_server_register(f->srv, "Dispatcher.Heartbeat", NET_AUTH_NODE, h_heartbeat, f), 0);
    assert_int_equal(
        net_server_register(f->srv, "Dispatcher.UpdateTaskStatus", NET_AUTH_NODE, h_status, f), 0);
    if (net_server_listen_tcp(f->srv, addr, f->ctx, &f->bound, err, sizeof(err)) < 0)
        fail_msg("listen: %s", err);
}

void wt_fake_init(struct fake *f, struct mt *t, struct cluster *c, const char *cluster_id)
{
    char err[256];
    char mid[SW_ID_LEN + 1];
    pki_key *key = NULL;
    memset(f, 0, sizeof(*f));
    f->t = t;
    assert_int_equal(sw_id_generate(mid), 0);
    char *cert = wt_sign(c, mid, cluster_id, PKI_ROLE_MANAGER, &key);
    const char *root = pki_ca_cert_pem(c->ca);
    if (pki_tls_server_ctx(root, strlen(root), cert, strlen(cert), key, &f->ctx, err, sizeof(err)) <
        0)
        fail_msg("tls: %s", err);
    free(cert);
    pki_key_free(key);
    struct sw_addr any;
    sw_addr_parse("127.0.0.1:0", -1, 1, &any);
    wt_fake_listen(f, &any);
}

void wt_flag_cb(void *ud)
{
    *(bool *)ud = true;
}

void wt_fake_close(struct fake *f)
{
    if (!f->srv)
        return;
    for (size_t i = 0; i < SW_ARRAY_SIZE(f->open); i++) {
        net_call *call = f->open[i];
        f->open[i] = NULL;
        if (call)
            net_call_reply(call, -ESHUTDOWN, "the manager is shutting down", NULL, 0);
    }
    bool closed = false;
    net_server_close(f->srv, wt_flag_cb, &closed);
    f->srv = NULL;
    assert_true(mt_run_until(f->t, &closed, MT_WAIT_MS));
}

void wt_fake_finish(struct fake *f)
{
    wt_fake_close(f);
    pki_tls_ctx_free(f->ctx);
    f->ctx = NULL;
}

/* ------------------------------------------------------------------ the agent */

void wt_on_ready(wrk_agent *a, int status, const char *errmsg, void *ud)
{
    struct agent_run *ar = ud;
    ar->ready_calls++;
    ar->ready = true;
    ar->status = status;
    snprintf(ar->err, sizeof(ar->err), "%s", errmsg ? errmsg : "");
}

void wt_agent_start_cfg(struct agent_run *ar, struct mt *t, const struct wrk_config *cfg)
{
    char err[512];
    memset(ar, 0, sizeof(*ar));
    if (wrk_agent_start(&t->loop, cfg, wt_on_ready, ar, &ar->a, err, sizeof(err)) < 0)
        fail_msg("wrk_agent_start: %s", err);
}

void wt_agent_start(struct agent_run *ar, struct mt *t, const char *dir)
{
    char run[256];
    snprintf(run, sizeof(run), "%s/run", t->dir);
    struct wrk_config cfg = {.state_dir = dir, .run_dir = run};
    wt_agent_start_cfg(ar, t, &cfg);
}

void wt_agent_stop(struct agent_run *ar, struct mt *t)
{
    bool stopped = false;
    wrk_agent_stop(ar->a, wt_flag_cb, &stopped);
    ar->a = NULL;
    assert_true(mt_run_until(t, &stopped, MT_WAIT_MS));
}
