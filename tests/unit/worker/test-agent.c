/* worker/ agent: the session and heartbeats against a fake dispatcher built on net_server
 * (ready, heartbeat pace, managers adopted, reconnect after the server comes back, refusal),
 * and against the real manager (the node becomes Ready). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../manager/harness.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/swtime.h"
#include "worker/agent.h"
#include "wt.h"

#define PERIOD_NS (200ULL * SW_NSEC_PER_MSEC)
#define MAX_HB 256

/* ------------------------------------------------------------------ a worker's state dir */

struct cluster {
    pki_ca *ca;
    char cluster_id[SW_ID_LEN + 1];
    char worker_id[SW_ID_LEN + 1];
    char dir[192];
};

static char *sign(struct cluster *c, const char *node_id, const char *cluster_id,
                  enum pki_role role, pki_key **ret_key)
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
static void write_managers(const struct cluster *c, const struct sw_addr *manager, char *path,
                           size_t path_size, char *line, size_t line_size)
{
    char a[80];
    sw_addr_format(manager, a, sizeof(a));
    snprintf(line, line_size, "%s\n", a);
    snprintf(path, path_size, "%s/managers", c->dir);
    assert_int_equal(sw_write_file_atomic(path, line, strlen(line), 0600), 0);
}

/* A node's state dir as wrk_join leaves it, made directly with pki/, naming managers. */
static void cluster_init(struct cluster *c, struct mt *t, enum pki_role role,
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
    st.node_cert_pem = sign(c, c->worker_id, c->cluster_id, role, &st.node_key);
    st.root_ca_pem = strdup(pki_ca_cert_pem(c->ca));
    if (pki_node_state_write_keys(c->dir, &st, err, sizeof(err)) < 0 ||
        pki_node_state_save_conf(c->dir, &st, err, sizeof(err)) < 0)
        fail_msg("state: %s", err);
    pki_node_state_finish(&st);
    char path[256], line[100];
    write_managers(c, manager, path, sizeof(path), line, sizeof(line));
}

static void cluster_finish(struct cluster *c)
{
    pki_ca_free(c->ca);
    c->ca = NULL;
}

/* ------------------------------------------------------------------ the fake dispatcher */

struct fake {
    struct mt *t;
    net_server *srv;
    SSL_CTX *ctx;
    struct sw_addr bound;
    net_call *open[8];
    unsigned sessions;
    char session_id[32];
    char hostname[64], arch[32], os[16], addr[80];
    int64_t nano_cpus, memory;
    const char *extra_manager; /* a second manager named in the session message */
    unsigned heartbeats, bad_heartbeats;
    uint64_t hb_ms[MAX_HB];
    char hb_session[MAX_HB][32];
};

static void forget(struct fake *f, net_call *call)
{
    for (size_t i = 0; i < SW_ARRAY_SIZE(f->open); i++)
        if (f->open[i] == call)
            f->open[i] = NULL;
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

/* Serve on addr (port 0 first, then the same port again) with a manager certificate of
 * cluster_id. */
static void fake_listen(struct fake *f, const struct sw_addr *addr)
{
    char err[256];
    struct net_server_config cfg = {0};
    assert_int_equal(net_server_create(&f->t->loop, &cfg, &f->srv), 0);
    assert_int_equal(net_server_register(f->srv, "Dispatcher.Session", NET_AUTH_NODE, h_session, f),
                     0);
    assert_int_equal(
        net_server_register(f->srv, "Dispatcher.Heartbeat", NET_AUTH_NODE, h_heartbeat, f), 0);
    if (net_server_listen_tcp(f->srv, addr, f->ctx, &f->bound, err, sizeof(err)) < 0)
        fail_msg("listen: %s", err);
}

static void fake_init(struct fake *f, struct mt *t, struct cluster *c, const char *cluster_id)
{
    char err[256];
    char mid[SW_ID_LEN + 1];
    pki_key *key = NULL;
    memset(f, 0, sizeof(*f));
    f->t = t;
    assert_int_equal(sw_id_generate(mid), 0);
    char *cert = sign(c, mid, cluster_id, PKI_ROLE_MANAGER, &key);
    const char *root = pki_ca_cert_pem(c->ca);
    if (pki_tls_server_ctx(root, strlen(root), cert, strlen(cert), key, &f->ctx, err, sizeof(err)) <
        0)
        fail_msg("tls: %s", err);
    free(cert);
    pki_key_free(key);
    struct sw_addr any;
    sw_addr_parse("127.0.0.1:0", -1, 1, &any);
    fake_listen(f, &any);
}

static void flag_cb(void *ud)
{
    *(bool *)ud = true;
}

static void fake_close(struct fake *f)
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
    net_server_close(f->srv, flag_cb, &closed);
    f->srv = NULL;
    assert_true(mt_run_until(f->t, &closed, MT_WAIT_MS));
}

static void fake_finish(struct fake *f)
{
    fake_close(f);
    pki_tls_ctx_free(f->ctx);
    f->ctx = NULL;
}

/* ------------------------------------------------------------------ the agent */

struct agent_run {
    wrk_agent *a;
    unsigned ready_calls;
    bool ready;
    int status;
    char err[512];
};

static void on_ready(wrk_agent *a, int status, const char *errmsg, void *ud)
{
    struct agent_run *ar = ud;
    ar->ready_calls++;
    ar->ready = true;
    ar->status = status;
    snprintf(ar->err, sizeof(ar->err), "%s", errmsg ? errmsg : "");
}

static void agent_start(struct agent_run *ar, struct mt *t, const char *dir)
{
    char err[512];
    struct wrk_config cfg = {.state_dir = dir};
    memset(ar, 0, sizeof(*ar));
    if (wrk_agent_start(&t->loop, &cfg, on_ready, ar, &ar->a, err, sizeof(err)) < 0)
        fail_msg("wrk_agent_start: %s", err);
}

static void agent_stop(struct agent_run *ar, struct mt *t)
{
    bool stopped = false;
    wrk_agent_stop(ar->a, flag_cb, &stopped);
    ar->a = NULL;
    assert_true(mt_run_until(t, &stopped, MT_WAIT_MS));
}

/* ------------------------------------------------------------------ tests */

static void test_agent_session_heartbeats(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct fake f;
    /* state dir naming the fake, which shows a manager certificate of this cluster */
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    cluster_init(&c, t, PKI_ROLE_WORKER, &placeholder);
    fake_init(&f, t, &c, c.cluster_id);
    f.extra_manager = "127.0.0.2:2377";
    char path[256], line[100];
    write_managers(&c, &f.bound, path, sizeof(path), line, sizeof(line));

    struct agent_run ar;
    agent_start(&ar, t, c.dir);
    assert_string_equal(wrk_agent_node_id(ar.a), c.worker_id);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    if (ar.status != 0)
        fail_msg("ready: %d %s", ar.status, ar.err);
    assert_int_equal(f.sessions, 1);
    assert_string_equal(f.hostname, "wt-agent");
    assert_string_equal(f.os, "linux");
    assert_string_equal(f.addr, "127.0.0.1:2377");
    assert_true(f.arch[0] != '\0');
    assert_true(f.nano_cpus >= 1000000000LL && f.nano_cpus % 1000000000LL == 0);
    assert_true(f.memory > 0);

    /* heartbeats at about the period (200 ms ± 20%) */
    uint64_t t0 = sw_now_monotonic_ns() / SW_NSEC_PER_MSEC;
    mt_run_for(t, 1500);
    unsigned n = f.heartbeats;
    if (n < 5 || n > 10)
        fail_msg("%u heartbeats in 1.5 s at a 200 ms period", n);
    assert_int_equal(f.bad_heartbeats, 0);
    assert_true(f.hb_ms[0] - t0 < 300);
    for (unsigned i = 1; i < n; i++) {
        uint64_t gap = f.hb_ms[i] - f.hb_ms[i - 1];
        if (gap < 140 || gap > 320)
            fail_msg("heartbeat %u came %llu ms after the previous one", i,
                     (unsigned long long)gap);
    }

    /* the managers the session named are kept for the next start */
    char *text = NULL;
    assert_int_equal(sw_read_file(path, 4096, &text, NULL), 0);
    char want[200];
    snprintf(want, sizeof(want), "%s127.0.0.2:2377\n", line);
    assert_string_equal(text, want);
    free(text);

    agent_stop(&ar, t);
    unsigned after = f.heartbeats;
    mt_run_for(t, 500);
    assert_int_equal(f.heartbeats, after); /* stopped means silent */
    assert_int_equal(ar.ready_calls, 1);
    fake_finish(&f);
    cluster_finish(&c);
}

static void test_agent_reconnects(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct fake f;
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    cluster_init(&c, t, PKI_ROLE_WORKER, &placeholder);
    fake_init(&f, t, &c, c.cluster_id);
    char path[256], line[100];
    write_managers(&c, &f.bound, path, sizeof(path), line, sizeof(line));

    struct agent_run ar;
    agent_start(&ar, t, c.dir);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    assert_int_equal(ar.status, 0);
    mt_run_for(t, 450);
    assert_true(f.heartbeats >= 1);

    /* the manager goes away for a while, then comes back on the same port */
    struct sw_addr port = f.bound;
    fake_close(&f);
    mt_run_for(t, 700);
    unsigned before = f.heartbeats;
    fake_listen(&f, &port);
    uint64_t t0 = sw_now_monotonic_ns();
    struct {
        bool flag;
    } w = {0};
    while (!w.flag && sw_now_monotonic_ns() - t0 < 10 * SW_NSEC_PER_SEC) {
        mt_run_for(t, 50);
        w.flag = f.sessions == 2 && f.heartbeats > before + 1;
    }
    if (!w.flag)
        fail_msg("no new session after the manager came back (%u sessions, %u heartbeats)",
                 f.sessions, f.heartbeats - before);
    /* heartbeats name the new session; ready fired once */
    unsigned last = SW_MIN(f.heartbeats, (unsigned)MAX_HB) - 1;
    assert_string_equal(f.hb_session[last], "session-2");
    assert_int_equal(f.bad_heartbeats, 0);
    assert_int_equal(ar.ready_calls, 1);

    agent_stop(&ar, t);
    fake_finish(&f);
    cluster_finish(&c);
}

static void test_agent_refused(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct fake f;
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    cluster_init(&c, t, PKI_ROLE_WORKER, &placeholder);
    /* a manager of another cluster under the same root: not ours */
    char other[SW_ID_LEN + 1];
    assert_int_equal(sw_id_generate(other), 0);
    fake_init(&f, t, &c, other);
    char path[256], line[100];
    write_managers(&c, &f.bound, path, sizeof(path), line, sizeof(line));

    struct agent_run ar;
    agent_start(&ar, t, c.dir);
    assert_true(mt_run_until(t, &ar.ready, 5000));
    assert_int_equal(ar.status, -EPERM);
    print_message("%s\n", ar.err);
    assert_true(ar.err[0] != '\0');
    assert_int_equal(f.sessions, 0);
    agent_stop(&ar, t);
    fake_finish(&f);
    cluster_finish(&c);
}

static void test_agent_not_a_worker(void **state)
{
    struct mt *t = *state;
    struct cluster c;
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    cluster_init(&c, t, PKI_ROLE_MANAGER, &placeholder);
    struct wrk_config cfg = {.state_dir = c.dir};
    wrk_agent *a = NULL;
    char err[512];
    assert_int_equal(wrk_agent_start(&t->loop, &cfg, on_ready, NULL, &a, err, sizeof(err)),
                     -EINVAL);
    assert_null(a);
    assert_non_null(strstr(err, "not a worker"));
    /* and a dir without a node */
    cfg.state_dir = t->dir;
    assert_int_equal(wrk_agent_start(&t->loop, &cfg, on_ready, NULL, &a, err, sizeof(err)),
                     -ENOENT);
    cluster_finish(&c);
}

const struct CMUnitTest wt_agent_tests[] = {
    cmocka_unit_test_setup_teardown(test_agent_session_heartbeats, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_agent_reconnects, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_agent_refused, mt_setup, mt_teardown),
    cmocka_unit_test_setup_teardown(test_agent_not_a_worker, mt_setup, mt_teardown),
};
const size_t wt_agent_n = SW_ARRAY_SIZE(wt_agent_tests);
