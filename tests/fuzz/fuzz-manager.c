/* Fuzz target: a real in-process manager, started once, fed each input as the payload of
 * one RPC (Control and CA over the Unix control socket, Dispatcher over mutual TLS with a
 * worker certificate); it must answer, and still list nodes, services, secrets and tasks.
 * Input: one byte choosing the method (bit 7: put the live session id / join token /
 * a known task id into the decoded request first), then the payload. */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "common/log.h"
#include "manager/manager.h"
#include "net/rpc.h"
#include "pki/pki.h"
#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WAIT_MS 20000
#define MAX_TASK_IDS 64

enum via { VIA_UNIX, VIA_TLS };

/* Index = (first byte & 0x7f) modulo the count; gen-corpus.c uses the same order. */
static const struct {
    const char *method;
    enum via via;
} methods[] = {
    {"Control.ListNodes", VIA_UNIX},
    {"Control.GetNode", VIA_UNIX},
    {"Control.GetCluster", VIA_UNIX},
    {"Control.GetJoinToken", VIA_UNIX},
    {"Control.CreateService", VIA_UNIX},
    {"Control.GetService", VIA_UNIX},
    {"Control.ListServices", VIA_UNIX},
    {"Control.UpdateService", VIA_UNIX},
    {"Control.RemoveService", VIA_UNIX},
    {"Control.ListTasks", VIA_UNIX},
    {"Control.CreateSecret", VIA_UNIX},
    {"Control.GetSecret", VIA_UNIX},
    {"Control.ListSecrets", VIA_UNIX},
    {"Control.RemoveSecret", VIA_UNIX},
    {"Control.UpdateNode", VIA_UNIX},
    {"CA.GetRootCA", VIA_UNIX},
    {"CA.IssueNodeCertificate", VIA_UNIX},
    {"Dispatcher.Session", VIA_TLS},
    {"Dispatcher.Heartbeat", VIA_TLS},
    {"Dispatcher.UpdateTaskStatus", VIA_TLS},
    {"Control.NoSuchMethod", VIA_UNIX},
    {"Control.RemoveNode", VIA_UNIX},
    {"Control.UpdateCluster", VIA_UNIX},
    {"CA.RenewNodeCertificate", VIA_TLS},
    {"Control.UpdateSecret", VIA_UNIX},
    {"Raft.Connect", VIA_UNIX},
    {"Raft.Join", VIA_TLS},
    {"Control.GetUnlockKey", VIA_UNIX},
    {"Control.Unlock", VIA_UNIX},
    {"Raft.AddDataKey", VIA_TLS},
    {"Control.RotateCA", VIA_UNIX},
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

struct wait {
    bool done; /* final reply, or (stream) the first message */
    bool final;
    int status;
    char error[256];
};

static struct fuzz {
    bool started;
    uv_loop_t loop;
    char dir[64];
    char sock[128];
    struct mgr_config cfg;
    mgr *m;
    net_client *uc; /* Unix control socket */
    net_client *tc; /* mutual TLS as a worker */
    SSL_CTX *tls;
    struct sw_addr tcp_addr;
    /* the worker's own session, kept open between inputs */
    bool session_open;
    uint64_t session_call;
    struct wait session;
    char session_id[64];
    char task_ids[MAX_TASK_IDS][64];
    unsigned ntask_ids;
} F;

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz-manager: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    /* the state dir goes now: abort skips atexit */
    if (F.started)
        nftw(F.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    abort();
}

/* ------------------------------------------------------------------ loop */

static void watchdog_cb(uv_timer_t *timer)
{
    *(bool *)timer->data = true;
}

static bool run_until(const bool *flag, uint64_t ms)
{
    bool fired = false;
    uv_timer_t wd;
    uv_timer_init(&F.loop, &wd);
    wd.data = &fired;
    uv_timer_start(&wd, watchdog_cb, ms, 0);
    while (!*flag && !fired)
        uv_run(&F.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&F.loop, UV_RUN_NOWAIT);
    return *flag;
}

static void run_for(uint64_t ms)
{
    bool never = false;
    run_until(&never, ms);
}

/* ------------------------------------------------------------------ calls */

static void on_connect(net_client *c, int status, const char *error, void *ud)
{
    struct wait *w = ud;
    w->status = status;
    snprintf(w->error, sizeof(w->error), "%s", error ? error : "");
    w->final = w->done = true;
}

static void on_reply(net_client *c, int status, const char *error, const uint8_t *payload,
                     size_t len, bool final, void *ud)
{
    struct wait *w = ud;
    if (w->final)
        return;
    w->status = status;
    snprintf(w->error, sizeof(w->error), "%s", error ? error : "");
    w->final = final;
    w->done = true;
}

/* A unary call that must be answered; returns the status, *ret_payload (malloc'd). */
static int call(net_client *c, const char *method, const uint8_t *buf, size_t len,
                uint8_t **ret_payload, size_t *ret_len);

struct reply_copy {
    struct wait w;
    uint8_t *payload;
    size_t len;
};

static void on_reply_copy(net_client *c, int status, const char *error, const uint8_t *payload,
                          size_t len, bool final, void *ud)
{
    struct reply_copy *r = ud;
    if (!final)
        return;
    r->w.status = status;
    snprintf(r->w.error, sizeof(r->w.error), "%s", error ? error : "");
    r->w.final = r->w.done = true;
    if (len) {
        r->payload = malloc(len);
        if (!r->payload)
            abort();
        memcpy(r->payload, payload, len);
        r->len = len;
    }
}

static int call(net_client *c, const char *method, const uint8_t *buf, size_t len,
                uint8_t **ret_payload, size_t *ret_len)
{
    struct reply_copy r = {0};
    if (net_client_call(c, method, buf, len, on_reply_copy, &r, NULL) < 0)
        die("cannot send %s", method);
    if (!run_until(&r.w.done, WAIT_MS))
        die("no answer to %s within the wait", method);
    if (ret_payload) {
        *ret_payload = r.payload;
        *ret_len = r.len;
    } else {
        free(r.payload);
    }
    return r.w.status;
}

static net_client *connect_unix(void)
{
    struct wait w = {0};
    net_client *c = NULL;
    if (net_client_connect_unix(&F.loop, F.sock, WAIT_MS, on_connect, &w, &c) < 0 ||
        !run_until(&w.done, WAIT_MS) || w.status < 0)
        die("cannot connect to %s: %s", F.sock, w.error);
    return c;
}

static net_client *connect_tls(void)
{
    struct wait w = {0};
    net_client *c = NULL;
    if (net_client_connect_tcp(&F.loop, &F.tcp_addr, F.tls, WAIT_MS, on_connect, &w, &c) < 0 ||
        !run_until(&w.done, WAIT_MS) || w.status < 0)
        die("cannot connect over TLS: %s", w.error);
    return c;
}

/* ------------------------------------------------------------------ the worker's session */

static void remember_tasks(const uint8_t *payload, size_t len)
{
    Swarm__SessionMessage *sm = swarm__session_message__unpack(NULL, len, payload);
    if (!sm)
        die("the manager sent a SessionMessage that does not decode");
    if (sm->session_id[0])
        snprintf(F.session_id, sizeof(F.session_id), "%s", sm->session_id);
    for (size_t i = 0; i < sm->n_assignments; i++) {
        const Swarm__Task *t = sm->assignments[i]->task;
        if (t && t->id[0]) {
            snprintf(F.task_ids[F.ntask_ids % MAX_TASK_IDS], sizeof(F.task_ids[0]), "%s", t->id);
            F.ntask_ids++;
        }
    }
    swarm__session_message__free_unpacked(sm, NULL);
}

static void on_session(net_client *c, int status, const char *error, const uint8_t *payload,
                       size_t len, bool final, void *ud)
{
    if (final) {
        F.session_open = false;
        F.session.final = true;
    } else {
        remember_tasks(payload, len);
    }
    F.session.status = status;
    F.session.done = true;
}

static void open_session(void)
{
    if (!F.tc)
        F.tc = connect_tls();
    Swarm__NodeDescription desc = SWARM__NODE_DESCRIPTION__INIT;
    desc.hostname = "fuzz-worker";
    desc.addr = "127.0.0.1:1";
    Swarm__SessionRequest req = SWARM__SESSION_REQUEST__INIT;
    req.description = &desc;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_pack(&req.base, &buf, &len) < 0)
        abort();
    memset(&F.session, 0, sizeof(F.session));
    F.session_id[0] = '\0';
    F.session_open = true;
    if (net_client_call(F.tc, "Dispatcher.Session", buf, len, on_session, NULL, &F.session_call) <
        0)
        die("cannot open a session");
    free(buf);
    if (!run_until(&F.session.done, WAIT_MS) || F.session.final || !F.session_id[0])
        die("the session did not open (status %s)", F.session.final ? "final" : "none");
}

/* ------------------------------------------------------------------ setup */

static void on_ready(mgr *m, int status, const char *errmsg, void *ud)
{
    struct wait *w = ud;
    w->status = status;
    snprintf(w->error, sizeof(w->error), "%s", errmsg ? errmsg : "");
    w->done = true;
}

static void on_stopped(void *ud)
{
    *(bool *)ud = true;
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void teardown(void)
{
    if (!F.started)
        return;
    F.started = false;
    if (F.uc)
        net_client_close(F.uc);
    if (F.tc)
        net_client_close(F.tc);
    F.uc = F.tc = NULL;
    if (F.m) {
        bool stopped = false;
        mgr_stop(F.m, on_stopped, &stopped);
        run_until(&stopped, WAIT_MS);
        F.m = NULL;
    }
    pki_tls_ctx_free(F.tls);
    uv_walk(&F.loop, close_walk_cb, NULL);
    for (int i = 0; i < 1000 && uv_loop_alive(&F.loop); i++)
        uv_run(&F.loop, UV_RUN_NOWAIT);
    uv_loop_close(&F.loop);
    nftw(F.dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A worker certificate from the manager's CA, as a joining node gets it. */
static void join_as_worker(void)
{
    char token[PKI_TOKEN_LEN + 1], err[256];
    if (mgr_join_token(F.m, 0, token, sizeof(token)) < 0)
        die("no worker token");
    pki_key *key = NULL;
    char *csr = NULL;
    if (pki_key_generate(&key) < 0 || pki_csr_create(key, &csr) < 0)
        abort();
    Swarm__IssueNodeCertificateRequest req = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    req.token = token;
    req.csr_pem = csr;
    req.hostname = "fuzz-worker";
    req.addr = "127.0.0.1:1";
    uint8_t *buf = NULL, *out = NULL;
    size_t len = 0, out_len = 0;
    if (proto_pack(&req.base, &buf, &len) < 0)
        abort();
    int r = call(F.uc, "CA.IssueNodeCertificate", buf, len, &out, &out_len);
    free(buf);
    free(csr);
    if (r != 0)
        die("IssueNodeCertificate refused");
    Swarm__IssueNodeCertificateResponse *resp =
        swarm__issue_node_certificate_response__unpack(NULL, out_len, out);
    free(out);
    if (!resp)
        abort();
    if (pki_tls_client_ctx(resp->ca_cert_pem, strlen(resp->ca_cert_pem), resp->cert_pem,
                           strlen(resp->cert_pem), key, &F.tls, err, sizeof(err)) < 0)
        die("TLS context: %s", err);
    swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
    pki_key_free(key);
}

static void setup(void)
{
    char err[512], addr[96];
    signal(SIGPIPE, SIG_IGN);
    sw_log_set_level(SW_LOG_ERROR);
    if (uv_loop_init(&F.loop) != 0)
        abort();
    snprintf(F.dir, sizeof(F.dir), "/tmp/fuzz-manager-XXXXXX");
    if (!mkdtemp(F.dir))
        abort();
    F.started = true;
    atexit(teardown);
    snprintf(F.sock, sizeof(F.sock), "%s/%s", F.dir, "swarmd.sock");
    F.cfg.state_dir = F.dir;
    sw_addr_parse("127.0.0.1:0", -1, 1, &F.cfg.listen_addr);
    F.cfg.listen_addr_set = true;
    sw_addr_parse("127.0.0.1", 0, 1, &F.cfg.advertise_addr);
    F.cfg.advertise_addr_set = true;
    F.cfg.hostname = "fuzz-manager";
    F.cfg.heartbeat_period_ns = 3600ull * 1000000000ull; /* the worker never goes Down */

    struct wait ready = {0};
    if (mgr_start(&F.loop, &F.cfg, true, on_ready, &ready, &F.m, err, sizeof(err)) < 0)
        die("mgr_start: %s", err);
    if (!run_until(&ready.done, WAIT_MS) || ready.status < 0)
        die("the manager did not become ready: %s", ready.error);
    mgr_listen_addr(F.m, addr, sizeof(addr));
    if (sw_addr_parse(addr, -1, 0, &F.tcp_addr) < 0)
        die("bad listen address %s", addr);
    /* The control socket is named by the manager: find it. */
    struct stat st;
    if (stat(F.sock, &st) < 0 || !S_ISSOCK(st.st_mode))
        die("no control socket at %s", F.sock);
    F.uc = connect_unix();
    join_as_worker();
    open_session();
}

/* ------------------------------------------------------------------ one input */

/* Bit 7 of the selector: put live values where the fuzzer cannot guess them. Returns a
 * new encoding (malloc'd) or NULL to send the input as it is. */
static uint8_t *substitute(const char *method, const uint8_t *data, size_t size, size_t *ret_len)
{
    uint8_t *out = NULL;
    if (strcmp(method, "Dispatcher.Heartbeat") == 0) {
        Swarm__HeartbeatRequest *req = swarm__heartbeat_request__unpack(NULL, size, data);
        if (!req)
            return NULL;
        char *saved = req->session_id;
        req->session_id = F.session_id;
        if (proto_pack(&req->base, &out, ret_len) < 0)
            abort();
        req->session_id = saved;
        swarm__heartbeat_request__free_unpacked(req, NULL);
    } else if (strcmp(method, "Dispatcher.UpdateTaskStatus") == 0) {
        Swarm__UpdateTaskStatusRequest *req =
            swarm__update_task_status_request__unpack(NULL, size, data);
        if (!req)
            return NULL;
        char *saved = req->session_id;
        req->session_id = F.session_id;
        size_t n = req->n_updates < 64 ? req->n_updates : 64;
        char *ids[64];
        for (size_t i = 0; i < n; i++) {
            ids[i] = req->updates[i]->task_id;
            /* a one-byte task id picks one of the tasks assigned to this worker */
            if (F.ntask_ids && strlen(ids[i]) <= 1) {
                unsigned k = (unsigned)(unsigned char)ids[i][0];
                unsigned have = F.ntask_ids < MAX_TASK_IDS ? F.ntask_ids : MAX_TASK_IDS;
                req->updates[i]->task_id = F.task_ids[k % have];
            }
        }
        if (proto_pack(&req->base, &out, ret_len) < 0)
            abort();
        for (size_t i = 0; i < n; i++)
            req->updates[i]->task_id = ids[i];
        req->session_id = saved;
        swarm__update_task_status_request__free_unpacked(req, NULL);
    } else if (strcmp(method, "CA.RenewNodeCertificate") == 0) {
        Swarm__RenewNodeCertificateRequest *req =
            swarm__renew_node_certificate_request__unpack(NULL, size, data);
        if (!req)
            return NULL;
        char *saved = req->csr_pem, *csr = NULL;
        if (!req->csr_pem[0]) {
            pki_key *key = NULL;
            if (pki_key_generate(&key) < 0 || pki_csr_create(key, &csr) < 0)
                abort();
            pki_key_free(key);
            req->csr_pem = csr;
        }
        if (proto_pack(&req->base, &out, ret_len) < 0)
            abort();
        req->csr_pem = saved;
        free(csr);
        swarm__renew_node_certificate_request__free_unpacked(req, NULL);
    } else if (strcmp(method, "Control.RemoveNode") == 0) {
        Swarm__RemoveNodeRequest *req = swarm__remove_node_request__unpack(NULL, size, data);
        if (!req)
            return NULL;
        char *saved = req->id;
        req->id = "fuzz-worker"; /* the worker itself: it joins again after */
        if (proto_pack(&req->base, &out, ret_len) < 0)
            abort();
        req->id = saved;
        swarm__remove_node_request__free_unpacked(req, NULL);
    } else if (strcmp(method, "CA.IssueNodeCertificate") == 0) {
        Swarm__IssueNodeCertificateRequest *req =
            swarm__issue_node_certificate_request__unpack(NULL, size, data);
        if (!req)
            return NULL;
        char token[PKI_TOKEN_LEN + 1];
        char *saved_token = req->token, *saved_csr = req->csr_pem, *csr = NULL;
        if (mgr_join_token(F.m, req->hostname[0] & 1, token, sizeof(token)) < 0)
            abort();
        req->token = token;
        if (!req->csr_pem[0]) {
            pki_key *key = NULL;
            if (pki_key_generate(&key) < 0 || pki_csr_create(key, &csr) < 0)
                abort();
            pki_key_free(key);
            req->csr_pem = csr;
        }
        if (proto_pack(&req->base, &out, ret_len) < 0)
            abort();
        req->token = saved_token;
        req->csr_pem = saved_csr;
        free(csr);
        swarm__issue_node_certificate_request__free_unpacked(req, NULL);
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!F.started)
        setup();
    unsigned idx = (data[0] & 0x7fu) % NMETHODS;
    bool subst = data[0] & 0x80u;
    const char *method = methods[idx].method;
    data++;
    size--;

    size_t len = size;
    uint8_t *mine = subst ? substitute(method, data, size, &len) : NULL;
    const uint8_t *payload = mine ? mine : data;
    if (!mine)
        len = size;

    net_client *c = methods[idx].via == VIA_TLS ? F.tc : F.uc;
    struct wait w = {0};
    uint64_t id = 0;
    if (net_client_call(c, method, payload, len, on_reply, &w, &id) < 0)
        die("cannot send %s", method);
    free(mine);
    if (!run_until(&w.done, WAIT_MS))
        die("no answer to %s within the wait", method);
    if (getenv("FUZZ_MANAGER_TRACE"))
        fprintf(stderr, "%s%s: %s %d %s\n", subst ? "live " : "", method,
                w.final ? "answered" : "streaming", w.status, w.error);
    if (!w.final) {
        /* a session opened (it replaced the worker's own): stop it */
        if (net_client_cancel(c, id) < 0)
            die("cannot cancel %s", method);
    }

    /* The worker was removed: it joins again as a new node. */
    if (strcmp(method, "Control.RemoveNode") == 0 && w.final && w.status == 0) {
        net_client_close(F.tc);
        F.tc = NULL;
        pki_tls_ctx_free(F.tls);
        F.tls = NULL;
        run_for(1);
        join_as_worker();
        F.session_open = false;
    }

    /* The manager still serves, and every object it stores still reads back: the lists
     * answer (ListNodes with this worker and the manager at least). */
    uint8_t *out = NULL;
    size_t out_len = 0;
    int r = call(F.uc, "Control.ListNodes", NULL, 0, &out, &out_len);
    if (r != 0)
        die("ListNodes failed after %s: %d", method, r);
    Swarm__ListNodesResponse *nodes = swarm__list_nodes_response__unpack(NULL, out_len, out);
    free(out);
    if (!nodes || nodes->n_nodes < 2)
        die("ListNodes answered no list after %s", method);
    swarm__list_nodes_response__free_unpacked(nodes, NULL);
    static const char *const lists[] = {"Control.ListServices", "Control.ListSecrets",
                                        "Control.ListTasks"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        r = call(F.uc, lists[i], NULL, 0, NULL, NULL);
        if (r != 0)
            die("%s failed after %s: %d", lists[i], method, r);
    }

    /* Put the worker's own session back if the input ended it. */
    if (!F.session_open) {
        net_client_close(F.tc);
        F.tc = NULL;
        run_for(1);
        open_session();
    }
    return 0;
}
