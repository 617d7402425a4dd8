/* Test harness for manager/: loop, temp state dir, in-process manager, control client. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "harness.h"

/* ------------------------------------------------------------------ loop */

static void watchdog_cb(uv_timer_t *timer)
{
    bool *fired = timer->data;
    *fired = true;
}

bool mt_run_until(struct mt *t, const bool *flag, uint64_t ms)
{
    bool fired = false;
    uv_timer_t wd;
    uv_timer_init(&t->loop, &wd);
    wd.data = &fired;
    uv_timer_start(&wd, watchdog_cb, ms, 0);
    while (!*flag && !fired)
        uv_run(&t->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT); /* finish the close before wd leaves scope */
    return *flag;
}

void mt_run_for(struct mt *t, uint64_t ms)
{
    bool never = false;
    mt_run_until(t, &never, ms);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* ------------------------------------------------------------------ setup */

int mt_setup(void **state)
{
    struct mt *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    if (uv_loop_init(&t->loop) != 0) {
        free(t);
        return -1;
    }
    snprintf(t->dir, sizeof(t->dir), "/tmp/mgr-test-XXXXXX");
    if (!mkdtemp(t->dir)) {
        uv_loop_close(&t->loop);
        free(t);
        return -1;
    }
    snprintf(t->sock, sizeof(t->sock), "%s/%s", t->dir, MGR_SOCKET_FILE);
    t->cfg.state_dir = t->dir;
    sw_addr_parse("127.0.0.1:0", -1, 1, &t->cfg.listen_addr);
    t->cfg.listen_addr_set = true;
    sw_addr_parse("127.0.0.1", 0, 1, &t->cfg.advertise_addr);
    t->cfg.advertise_addr_set = true;
    t->cfg.hostname = "mt-host";
    *state = t;
    return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

int mt_teardown(void **state)
{
    struct mt *t = *state;
    if (!t)
        return 0;
    mt_stop(t);
    /* anything left (a failed test's client or manager half-way) is closed by force */
    uv_walk(&t->loop, close_walk_cb, NULL);
    for (int i = 0; i < 1000 && uv_loop_alive(&t->loop); i++)
        uv_run(&t->loop, UV_RUN_NOWAIT);
    int r = uv_loop_close(&t->loop);
    if (r != 0) {
        print_error("loop not closed (%s); handles left:\n", uv_strerror(r));
        uv_print_all_handles(&t->loop, stderr);
    }
    nftw(t->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    *state = NULL;
    return r == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ manager */

struct ready_result {
    bool done;
    int status;
    char error[512];
};

static void on_ready(mgr *m, int status, const char *errmsg, void *ud)
{
    struct ready_result *r = ud;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", errmsg ? errmsg : "");
    r->done = true;
}

static void on_stopped(void *ud)
{
    *(bool *)ud = true;
}

/* Run the loop until a failed start has finished: no referenced handle, request or close
 * is left (handles the test keeps, e.g. a socket holding a port, are unreferenced). */
static void drain(struct mt *t)
{
    bool fired = false;
    uv_timer_t wd;
    uv_timer_init(&t->loop, &wd);
    wd.data = &fired;
    uv_timer_start(&wd, watchdog_cb, MT_WAIT_MS, 0);
    uv_unref((uv_handle_t *)&wd);
    while (!fired && uv_run(&t->loop, UV_RUN_ONCE) != 0)
        ;
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT);
}

int mt_start(struct mt *t, bool init, char *errmsg, size_t size)
{
    struct ready_result rr = {0};
    mgr *m = NULL;
    errmsg[0] = '\0';
    int r = mgr_start(&t->loop, &t->cfg, init, on_ready, &rr, &m, errmsg, size);
    if (r < 0) {
        drain(t);
        return r;
    }
    if (!mt_run_until(t, &rr.done, MT_WAIT_MS)) {
        snprintf(errmsg, size, "manager not ready within %d ms", MT_WAIT_MS);
        rr.status = -ETIMEDOUT;
    }
    if (rr.status < 0) {
        if (!errmsg[0] || rr.done)
            snprintf(errmsg, size, "%s", rr.error);
        bool stopped = false;
        mgr_stop(m, on_stopped, &stopped);
        mt_run_until(t, &stopped, MT_WAIT_MS);
        return rr.status;
    }
    t->m = m;
    return 0;
}

void mt_start_ok(struct mt *t, bool init)
{
    char err[512];
    int r = mt_start(t, init, err, sizeof(err));
    if (r < 0)
        fail_msg("mgr_start(init=%d): %d %s", init, r, err);
}

void mt_stop(struct mt *t)
{
    if (t->c) {
        net_client_close(t->c);
        t->c = NULL;
    }
    if (t->m) {
        bool stopped = false;
        mgr_stop(t->m, on_stopped, &stopped);
        t->m = NULL;
        assert_true(mt_run_until(t, &stopped, MT_WAIT_MS));
    }
    mt_run_for(t, 5);
}

/* ------------------------------------------------------------------ calls */

struct connect_result {
    bool done;
    int status;
    char error[512];
};

static void on_connect(net_client *c, int status, const char *error, void *ud)
{
    struct connect_result *r = ud;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    r->done = true;
}

static void on_reply(net_client *c, int status, const char *error, const uint8_t *payload,
                     size_t len, bool final, void *ud)
{
    struct mt_reply *r = ud;
    if (!final)
        return;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    r->len = len;
    r->payload = NULL;
    if (len) {
        r->payload = malloc(len);
        assert_non_null(r->payload);
        memcpy(r->payload, payload, len);
    }
    r->done = true;
}

static void ensure_client(struct mt *t)
{
    if (t->c)
        return;
    struct connect_result cr = {0};
    assert_int_equal(net_client_connect_unix(&t->loop, t->sock, 5000, on_connect, &cr, &t->c), 0);
    assert_true(mt_run_until(t, &cr.done, MT_WAIT_MS));
    if (cr.status < 0)
        fail_msg("connect %s: %d %s", t->sock, cr.status, cr.error);
}

void mt_call_async(struct mt *t, const char *method, const ProtobufCMessage *req,
                   struct mt_reply *r)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(r, 0, sizeof(*r));
    ensure_client(t);
    if (req)
        assert_int_equal(proto_pack(req, &buf, &len), 0);
    assert_int_equal(net_client_call(t->c, method, buf, len, on_reply, r, NULL), 0);
    free(buf);
}

int mt_call_raw(struct mt *t, const char *method, const uint8_t *buf, size_t len,
                struct mt_reply *r)
{
    memset(r, 0, sizeof(*r));
    ensure_client(t);
    assert_int_equal(net_client_call(t->c, method, buf, len, on_reply, r, NULL), 0);
    assert_true(mt_run_until(t, &r->done, MT_WAIT_MS));
    return r->status;
}

int mt_call(struct mt *t, const char *method, const ProtobufCMessage *req, struct mt_reply *r)
{
    mt_call_async(t, method, req, r);
    assert_true(mt_run_until(t, &r->done, MT_WAIT_MS));
    return r->status;
}

void mt_reply_clear(struct mt_reply *r)
{
    free(r->payload);
    memset(r, 0, sizeof(*r));
}

Swarm__ListNodesResponse *mt_list_nodes(struct mt *t)
{
    struct mt_reply r;
    Swarm__ListNodesRequest req = SWARM__LIST_NODES_REQUEST__INIT;
    if (mt_call(t, "Control.ListNodes", &req.base, &r) != 0)
        fail_msg("ListNodes: %d %s", r.status, r.error);
    Swarm__ListNodesResponse *resp = swarm__list_nodes_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(resp);
    return resp;
}

Swarm__GetClusterResponse *mt_get_cluster(struct mt *t)
{
    struct mt_reply r;
    Swarm__GetClusterRequest req = SWARM__GET_CLUSTER_REQUEST__INIT;
    if (mt_call(t, "Control.GetCluster", &req.base, &r) != 0)
        fail_msg("GetCluster: %d %s", r.status, r.error);
    Swarm__GetClusterResponse *resp = swarm__get_cluster_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(resp);
    return resp;
}

void mt_join_token(struct mt *t, int role, bool rotate, char *buf, size_t size)
{
    struct mt_reply r;
    Swarm__GetJoinTokenRequest req = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    req.role = role ? SWARM__NODE_ROLE__ROLE_MANAGER : SWARM__NODE_ROLE__ROLE_WORKER;
    req.rotate = rotate;
    if (mt_call(t, "Control.GetJoinToken", &req.base, &r) != 0)
        fail_msg("GetJoinToken: %d %s", r.status, r.error);
    Swarm__GetJoinTokenResponse *resp =
        swarm__get_join_token_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(resp);
    assert_int_equal(strlen(resp->token), PKI_TOKEN_LEN);
    snprintf(buf, size, "%s", resp->token);
    swarm__get_join_token_response__free_unpacked(resp, NULL);
}

char *mt_csr(void)
{
    pki_key *k = NULL;
    char *csr = NULL;
    assert_int_equal(pki_key_generate(&k), 0);
    assert_int_equal(pki_csr_create(k, &csr), 0);
    pki_key_free(k);
    return csr;
}

/* ------------------------------------------------------------------ files */

static void (*walk_fn)(const char *, const uint8_t *, size_t, void *);
static void *walk_ud;

static int walk_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (flag != FTW_F || !S_ISREG(sb->st_mode))
        return 0;
    char *data = NULL;
    size_t len = 0;
    int r = sw_read_file(path, 256u * 1024 * 1024, &data, &len);
    if (r < 0)
        fail_msg("cannot read %s: %s", path, strerror(-r));
    walk_fn(path, (const uint8_t *)data, len, walk_ud);
    free(data);
    return 0;
}

void mt_foreach_file(const char *dir,
                     void (*fn)(const char *path, const uint8_t *data, size_t len, void *ud),
                     void *ud)
{
    walk_fn = fn;
    walk_ud = ud;
    assert_int_equal(nftw(dir, walk_cb, 16, FTW_PHYS), 0);
}

/* ------------------------------------------------------------------ fake nodes */

static struct mt_node *nodes_head;

struct mt_node *mt_node_add(struct mt *t, const char *hostname)
{
    char tok[PKI_TOKEN_LEN + 1];
    mt_join_token(t, 0, false, tok, sizeof(tok));
    struct mt_node *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    n->t = t;
    n->ended = true;
    snprintf(n->hostname, sizeof(n->hostname), "%s", hostname);
    n->next = nodes_head;
    nodes_head = n;

    char *csr = NULL;
    assert_int_equal(pki_key_generate(&n->key), 0);
    assert_int_equal(pki_csr_create(n->key, &csr), 0);
    Swarm__IssueNodeCertificateRequest req = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    req.token = tok;
    req.csr_pem = csr;
    req.hostname = n->hostname;
    struct mt_reply r;
    int s = mt_call(t, "CA.IssueNodeCertificate", &req.base, &r);
    free(csr);
    if (s != 0)
        fail_msg("IssueNodeCertificate %s: %d %s", hostname, s, r.error);
    Swarm__IssueNodeCertificateResponse *resp =
        swarm__issue_node_certificate_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(resp);
    snprintf(n->id, sizeof(n->id), "%s", resp->node_id);
    n->cert = strdup(resp->cert_pem);
    assert_non_null(n->cert);
    swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
    return n;
}

struct node_call {
    struct mt_node *n;
    bool done;
    int status;
    bool owned; /* freed by its callback (fire and forget) */
};

static void node_call_cb(net_client *c, int status, const char *error, const uint8_t *payload,
                         size_t len, bool final, void *ud)
{
    struct node_call *nc = ud;
    if (!final)
        return;
    nc->n->in_flight--;
    nc->status = status;
    nc->done = true;
    if (nc->owned)
        free(nc);
}

/* Send a call on the node's connection; ret NULL: fire and forget. */
static void node_send(struct mt_node *n, const char *method, const ProtobufCMessage *msg,
                      struct node_call *ret)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(proto_pack(msg, &buf, &len), 0);
    struct node_call *nc = ret;
    if (!nc) {
        nc = calloc(1, sizeof(*nc));
        assert_non_null(nc);
        nc->owned = true;
    }
    nc->n = n;
    int r = net_client_call(n->c, method, buf, len, node_call_cb, nc, NULL);
    free(buf);
    if (r < 0) {
        if (nc->owned)
            free(nc);
        fail_msg("%s: %d", method, r);
    }
    n->in_flight++;
}

static void send_status(struct mt_node *n, const char *const *ids, size_t count,
                        const Swarm__TaskState *states, const int32_t *codes, struct node_call *ret)
{
    Swarm__TaskStatusUpdate *u = calloc(count ? count : 1, sizeof(*u));
    Swarm__TaskStatusUpdate **v = calloc(count ? count : 1, sizeof(*v));
    assert_true(u && v);
    for (size_t i = 0; i < count; i++) {
        swarm__task_status_update__init(&u[i]);
        u[i].task_id = (char *)ids[i];
        u[i].state = states[i];
        u[i].exit_code = codes ? codes[i] : 0;
        u[i].pid = states[i] == SWARM__TASK_STATE__TASK_RUNNING ? 4242 : 0;
        u[i].message = states[i] == SWARM__TASK_STATE__TASK_FAILED ? "failed" : "";
        v[i] = &u[i];
    }
    Swarm__UpdateTaskStatusRequest req = SWARM__UPDATE_TASK_STATUS_REQUEST__INIT;
    req.session_id = n->session_id;
    req.updates = v;
    req.n_updates = count;
    node_send(n, "Dispatcher.UpdateTaskStatus", &req.base, ret);
    free(u);
    free(v);
}

/* What an agent would report for these assignments (auto_run). */
static void auto_report(struct mt_node *n, const Swarm__SessionMessage *msg)
{
    const char *ids[64];
    Swarm__TaskState states[64];
    size_t k = 0;
    for (size_t i = 0; i < msg->n_assignments && k < 64; i++) {
        const Swarm__Assignment *a = msg->assignments[i];
        const Swarm__Task *task = a->task;
        if (!task || a->action != SWARM__ASSIGNMENT_ACTION__ASSIGN_UPDATE ||
            task->state >= SWARM__TASK_STATE__TASK_COMPLETE)
            continue;
        /* as worker/executor.c does: whatever it is sent wanted running, it starts */
        if (task->desired_state <= SWARM__TASK_STATE__TASK_RUNNING &&
            task->state < SWARM__TASK_STATE__TASK_RUNNING)
            states[k] = SWARM__TASK_STATE__TASK_RUNNING;
        else if (task->desired_state > SWARM__TASK_STATE__TASK_RUNNING)
            states[k] = SWARM__TASK_STATE__TASK_SHUTDOWN;
        else
            continue;
        ids[k++] = task->id;
    }
    if (k)
        send_status(n, ids, k, states, NULL, NULL);
}

static void session_cb(net_client *c, int status, const char *error, const uint8_t *payload,
                       size_t len, bool final, void *ud)
{
    struct mt_node *n = ud;
    if (final) {
        n->ended = true;
        n->end_status = status;
        return;
    }
    Swarm__SessionMessage *msg = swarm__session_message__unpack(NULL, len, payload);
    assert_non_null(msg);
    if (n->n_msgs == n->cap_msgs) {
        n->cap_msgs = n->cap_msgs ? n->cap_msgs * 2 : 16;
        n->msgs = realloc(n->msgs, n->cap_msgs * sizeof(*n->msgs));
        assert_non_null(n->msgs);
    }
    n->msgs[n->n_msgs++] = msg;
    snprintf(n->session_id, sizeof(n->session_id), "%s", msg->session_id);
    if (n->auto_run && n->c)
        auto_report(n, msg);
}

static void hb_cb(uv_timer_t *h)
{
    struct mt_node *n = h->data;
    if (!n->c || n->ended || !n->session_id[0] || n->in_flight > 4)
        return;
    Swarm__HeartbeatRequest req = SWARM__HEARTBEAT_REQUEST__INIT;
    req.session_id = n->session_id;
    req.runtime_error = (char *)(n->runtime_error ? n->runtime_error : "");
    node_send(n, "Dispatcher.Heartbeat", &req.base, NULL);
}

struct node_conn {
    bool done;
    int status;
    char error[256];
};

static void node_conn_cb(net_client *c, int status, const char *error, void *ud)
{
    struct node_conn *r = ud;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    r->done = true;
}

static bool first_message(struct mt *t, void *ud)
{
    struct mt_node *n = ud;
    return n->n_msgs > n->session_start || n->ended;
}

void mt_node_connect(struct mt_node *n, int64_t nano_cpus, int64_t memory_bytes)
{
    struct mt *t = n->t;
    char err[256];
    SSL_CTX *ctx = NULL;
    const char *bundle = t->m->st.root_ca_pem;
    assert_null(n->c);
    if (pki_tls_client_ctx(bundle, strlen(bundle), n->cert, strlen(n->cert), n->key, &ctx, err,
                           sizeof(err)) < 0)
        fail_msg("client ctx: %s", err);
    struct node_conn cr = {0};
    struct sw_addr addr = t->m->bound_addr;
    assert_int_equal(net_client_connect_tcp(&t->loop, &addr, ctx, 5000, node_conn_cb, &cr, &n->c),
                     0);
    pki_tls_ctx_free(ctx);
    assert_true(mt_run_until(t, &cr.done, MT_WAIT_MS));
    if (cr.status < 0)
        fail_msg("node %s: connect: %d %s", n->hostname, cr.status, cr.error);

    Swarm__Resources res = SWARM__RESOURCES__INIT;
    res.nano_cpus = nano_cpus;
    res.memory_bytes = memory_bytes;
    Swarm__NodeDescription d = SWARM__NODE_DESCRIPTION__INIT;
    d.hostname = n->hostname;
    d.os = "linux";
    d.arch = "x86_64";
    d.resources = &res;
    d.runtime_error = (char *)(n->runtime_error ? n->runtime_error : "");
    Swarm__SessionRequest req = SWARM__SESSION_REQUEST__INIT;
    req.description = &d;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(proto_pack(&req.base, &buf, &len), 0);
    n->session_start = n->n_msgs;
    n->session_id[0] = '\0';
    n->ended = false;
    assert_int_equal(net_client_call(n->c, "Dispatcher.Session", buf, len, session_cb, n, NULL), 0);
    free(buf);
    if (!mt_wait_for(t, first_message, n, MT_WAIT_MS) || n->n_msgs == n->session_start)
        fail_msg("node %s: no session (ended %d, status %d)", n->hostname, n->ended, n->end_status);
    assert_true(n->msgs[n->session_start]->full);
    if (!n->hb_inited) {
        uv_timer_init(&t->loop, &n->hb);
        n->hb.data = n;
        n->hb_inited = true;
        uv_timer_start(&n->hb, hb_cb, 1000, 1000);
    }
}

static bool node_quiet(struct mt *t, void *ud)
{
    struct mt_node *n = ud;
    return n->in_flight == 0 && n->ended;
}

void mt_node_disconnect(struct mt_node *n)
{
    if (!n->c)
        return;
    net_client_close(n->c);
    n->c = NULL;
    mt_wait_for(n->t, node_quiet, n, MT_WAIT_MS);
}

int mt_node_report_many(struct mt_node *n, const char *const *task_ids, size_t count,
                        const Swarm__TaskState *states, const int32_t *exit_codes)
{
    struct node_call nc = {0};
    assert_non_null(n->c);
    send_status(n, task_ids, count, states, exit_codes, &nc);
    assert_true(mt_run_until(n->t, &nc.done, MT_WAIT_MS));
    return nc.status;
}

int mt_node_report(struct mt_node *n, const char *task_id, Swarm__TaskState state,
                   int32_t exit_code)
{
    return mt_node_report_many(n, &task_id, 1, &state, &exit_code);
}

void mt_node_heartbeat(struct mt_node *n)
{
    Swarm__HeartbeatRequest req = SWARM__HEARTBEAT_REQUEST__INIT;
    req.session_id = n->session_id;
    req.runtime_error = (char *)(n->runtime_error ? n->runtime_error : "");
    struct node_call nc = {0};
    node_send(n, "Dispatcher.Heartbeat", &req.base, &nc);
    assert_true(mt_run_until(n->t, &nc.done, MT_WAIT_MS));
    assert_int_equal(nc.status, 0);
}

static void hb_closed_cb(uv_handle_t *h)
{
    struct mt_node *n = h->data;
    n->hb_closed = true;
}

void mt_nodes_close(struct mt *t)
{
    for (struct mt_node **p = &nodes_head; *p;) {
        struct mt_node *n = *p;
        if (n->t != t) {
            p = &n->next;
            continue;
        }
        *p = n->next;
        mt_node_disconnect(n);
        if (n->hb_inited) {
            uv_close((uv_handle_t *)&n->hb, hb_closed_cb);
            assert_true(mt_run_until(t, &n->hb_closed, MT_WAIT_MS));
        }
        for (size_t i = 0; i < n->n_msgs; i++)
            swarm__session_message__free_unpacked(n->msgs[i], NULL);
        free(n->msgs);
        free(n->cert);
        pki_key_free(n->key);
        free(n);
    }
}

int mt_node_teardown(void **state)
{
    struct mt *t = *state;
    if (t)
        mt_nodes_close(t);
    return mt_teardown(state);
}

/* ------------------------------------------------------------------ waiting on the store */

struct wait_pred {
    struct mt *t;
    bool (*pred)(struct mt *t, void *ud);
    void *ud;
    bool ok;
};

static void wait_check_cb(uv_check_t *h)
{
    struct wait_pred *w = h->data;
    if (!w->ok && w->pred(w->t, w->ud))
        w->ok = true;
}

bool mt_wait_for(struct mt *t, bool (*pred)(struct mt *t, void *ud), void *ud, uint64_t ms)
{
    struct wait_pred w = {.t = t, .pred = pred, .ud = ud};
    if (pred(t, ud))
        return true;
    uv_check_t check;
    uv_check_init(&t->loop, &check);
    check.data = &w;
    uv_check_start(&check, wait_check_cb);
    mt_run_until(t, &w.ok, ms);
    uv_close((uv_handle_t *)&check, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT);
    return w.ok;
}

void mt_service_tasks(struct mt *t, const char *service_id, struct mgr_objs *ret)
{
    assert_int_equal(mgr__list_index(t->m, STORE_TASKS_BY_SERVICE, service_id, ret), 0);
}

Swarm__Node *mt_store_node(struct mt *t, const char *node_id)
{
    Swarm__Node *n = NULL;
    assert_int_equal(mgr__get_node(t->m, node_id, &n), 0);
    return n;
}

struct node_state_write {
    Swarm__NodeState state;
    bool done;
    int status;
};

static int write_state(struct mgr *m, Swarm__Node *n, void *ud)
{
    n->state = ((struct node_state_write *)ud)->state;
    return 0;
}

static void state_written(struct mgr *m, int status, void *ud)
{
    struct node_state_write *w = ud;
    w->status = status;
    w->done = true;
}

void mt_set_node_state(struct mt *t, const char *node_id, Swarm__NodeState state)
{
    struct node_state_write w = {.state = state};
    assert_int_equal(mgr__node_update(t->m, node_id, write_state, state_written, &w), 0);
    assert_true(mt_run_until(t, &w.done, MT_WAIT_MS));
    assert_int_equal(w.status, 0);
}

/* ------------------------------------------------------------------ control calls */

static Swarm__ServiceResponse *service_call(struct mt *t, const char *method,
                                            const ProtobufCMessage *req)
{
    struct mt_reply r;
    if (mt_call(t, method, req, &r) != 0)
        fail_msg("%s: %d %s", method, r.status, r.error);
    Swarm__ServiceResponse *resp = swarm__service_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(resp);
    assert_non_null(resp->service);
    return resp;
}

void mt_service_create(struct mt *t, Swarm__CreateServiceRequest *req, char *ret_id)
{
    Swarm__ServiceResponse *resp = service_call(t, "Control.CreateService", &req->base);
    snprintf(ret_id, SW_ID_LEN + 1, "%s", resp->service->id);
    swarm__service_response__free_unpacked(resp, NULL);
}

void mt_service_update(struct mt *t, Swarm__UpdateServiceRequest *req)
{
    swarm__service_response__free_unpacked(service_call(t, "Control.UpdateService", &req->base),
                                           NULL);
}

void mt_service_remove(struct mt *t, const char *id)
{
    struct mt_reply r;
    Swarm__GetServiceRequest req = SWARM__GET_SERVICE_REQUEST__INIT;
    req.id = (char *)id;
    if (mt_call(t, "Control.RemoveService", &req.base, &r) != 0)
        fail_msg("RemoveService: %d %s", r.status, r.error);
    mt_reply_clear(&r);
}

void mt_node_update(struct mt *t, Swarm__UpdateNodeRequest *req)
{
    struct mt_reply r;
    if (mt_call(t, "Control.UpdateNode", &req->base, &r) != 0)
        fail_msg("UpdateNode: %d %s", r.status, r.error);
    mt_reply_clear(&r);
}

void mt_node_availability(struct mt *t, const char *node_id, Swarm__NodeAvailability a)
{
    Swarm__UpdateNodeRequest req = SWARM__UPDATE_NODE_REQUEST__INIT;
    req.id = (char *)node_id;
    req.set_availability = true;
    req.availability = a;
    mt_node_update(t, &req);
}

void mt_secret_create(struct mt *t, const char *name, const char *data, char *ret_id)
{
    struct mt_reply r;
    Swarm__CreateSecretRequest req = SWARM__CREATE_SECRET_REQUEST__INIT;
    req.name = (char *)name;
    req.data.data = (uint8_t *)data;
    req.data.len = strlen(data);
    if (mt_call(t, "Control.CreateSecret", &req.base, &r) != 0)
        fail_msg("CreateSecret: %d %s", r.status, r.error);
    Swarm__SecretResponse *resp = swarm__secret_response__unpack(NULL, r.len, r.payload);
    mt_reply_clear(&r);
    assert_non_null(resp);
    assert_non_null(resp->secret);
    snprintf(ret_id, SW_ID_LEN + 1, "%s", resp->secret->id);
    swarm__secret_response__free_unpacked(resp, NULL);
}

/* ------------------------------------------------------------------ services in short */

Swarm__TaskSpec *mt_svc_spec(const struct mt_svc *s)
{
    Swarm__TaskSpec *spec = calloc(1, sizeof(*spec));
    assert_non_null(spec);
    swarm__task_spec__init(spec);
    static char *cmd[] = {"/bin/true"};
    spec->command = cmd;
    spec->n_command = 1;
    if (s->env) {
        spec->env = calloc(1, sizeof(char *));
        assert_non_null(spec->env);
        spec->env[0] = (char *)s->env;
        spec->n_env = 1;
    }
    size_t nc = 0, ns = 0;
    while (nc < 4 && s->constraints[nc])
        nc++;
    while (ns < 4 && s->secrets[ns])
        ns++;
    spec->constraints = (char **)s->constraints;
    spec->n_constraints = nc;
    if (ns) {
        spec->secrets = calloc(ns, sizeof(*spec->secrets));
        assert_non_null(spec->secrets);
        for (size_t i = 0; i < ns; i++) {
            spec->secrets[i] = calloc(1, sizeof(Swarm__SecretRef));
            assert_non_null(spec->secrets[i]);
            swarm__secret_ref__init(spec->secrets[i]);
            spec->secrets[i]->secret_name = (char *)s->secrets[i];
        }
        spec->n_secrets = ns;
    }
    spec->reserve_memory = s->reserve_memory;
    spec->reserve_nano_cpus = s->reserve_nano_cpus;
    if (s->restart)
        spec->restart_condition = (char *)s->restart;
    spec->restart_max_attempts = s->max_attempts;
    return spec;
}

void mt_svc_spec_free(Swarm__TaskSpec *spec)
{
    if (!spec)
        return;
    for (size_t i = 0; i < spec->n_secrets; i++)
        free(spec->secrets[i]);
    free(spec->secrets);
    free(spec->env);
    free(spec);
}

void mt_svc_create(struct mt *t, const struct mt_svc *s, char *ret_id)
{
    Swarm__CreateServiceRequest req = SWARM__CREATE_SERVICE_REQUEST__INIT;
    req.name = (char *)s->name;
    req.global = s->global;
    req.replicas = s->replicas;
    req.task = mt_svc_spec(s);
    mt_service_create(t, &req, ret_id);
    mt_svc_spec_free(req.task);
}

void mt_count_tasks(struct mt *t, const char *service_id, struct mt_count *ret)
{
    struct mgr_objs o;
    struct mt_count c = {0};
    mt_service_tasks(t, service_id, &o);
    for (size_t i = 0; i < o.n; i++) {
        const Swarm__Task *task = (const Swarm__Task *)o.v[i];
        c.total++;
        if (task->desired_state > SWARM__TASK_STATE__TASK_RUNNING ||
            task->state >= SWARM__TASK_STATE__TASK_COMPLETE)
            continue;
        c.live++;
        if (task->state == SWARM__TASK_STATE__TASK_RUNNING)
            c.running++;
        else if (task->state <= SWARM__TASK_STATE__TASK_PENDING)
            c.pending++;
        else
            c.assigned++;
    }
    mgr__objs_free(&o);
    *ret = c;
}

struct running_want {
    const char *service_id;
    size_t n;
};

static bool n_running(struct mt *t, void *ud)
{
    struct running_want *w = ud;
    struct mt_count c;
    mt_count_tasks(t, w->service_id, &c);
    return c.live == w->n && c.running == w->n;
}

bool mt_wait_running(struct mt *t, const char *service_id, size_t n)
{
    struct running_want w = {service_id, n};
    return mt_wait_for(t, n_running, &w, MT_WAIT_MS);
}
