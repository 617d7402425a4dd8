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
