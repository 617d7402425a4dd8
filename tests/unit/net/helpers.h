/* Shared helpers for the net/ unit tests: loop driving, temp dirs, test handlers. */
#pragma once

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "net/rpc.h"

/* Run the loop until *flag becomes true or ms pass; returns the flag. */
static void th_tick(uv_timer_t *t)
{
    (void)t;
}

static inline bool th_run_until(uv_loop_t *loop, const atomic_bool *flag, uint64_t ms)
{
    uv_timer_t tick;
    uint64_t deadline = uv_now(loop) + ms;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, th_tick, 5, 5);
    while (!atomic_load(flag)) {
        uv_update_time(loop);
        if (uv_now(loop) >= deadline)
            break;
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return atomic_load(flag);
}

/* Let the loop run for ms. */
static inline void th_run_for(uv_loop_t *loop, uint64_t ms)
{
    atomic_bool never = false;
    th_run_until(loop, &never, ms);
}

/* Run the loop until the server has n open connections (at most 3 s). */
static inline bool th_wait_conns(uv_loop_t *loop, const net_server *s, unsigned n)
{
    for (int i = 0; i < 600 && net_server_connections(s) != n; i++)
        th_run_for(loop, 5);
    return net_server_connections(s) == n;
}

static int th_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void th_rm_rf(const char *dir)
{
    nftw(dir, th_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---------------------------------------------------------------- async client results */

struct th_conn_result {
    atomic_bool done;
    int status;
    char error[300];
};

static inline void th_on_connect(net_client *c, int status, const char *error, void *ud)
{
    struct th_conn_result *r = ud;
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    atomic_store(&r->done, true);
}

struct th_reply {
    atomic_bool done;
    int status;
    char error[300];
    unsigned n_msgs;
    char msgs[16][64];
    uint8_t payload[256];
    size_t len;   /* bytes kept in payload */
    size_t total; /* the reply's full length */
};

static inline void th_on_reply(net_client *c, int status, const char *error, const uint8_t *payload,
                               size_t len, bool final, void *ud)
{
    struct th_reply *r = ud;
    if (!final) {
        if (r->n_msgs < 16)
            snprintf(r->msgs[r->n_msgs], sizeof(r->msgs[0]), "%.*s", (int)len,
                     (const char *)payload);
        r->n_msgs++;
        return;
    }
    r->status = status;
    snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
    r->total = len;
    r->len = len < sizeof(r->payload) ? len : sizeof(r->payload);
    if (payload && r->len)
        memcpy(r->payload, payload, r->len);
    atomic_store(&r->done, true);
}

/* ---------------------------------------------------------------- test handlers */

static inline void th_echo(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    net_call_reply(call, 0, NULL, p, len);
}

/* Sends "msg0".."msgN-1" (N = first payload byte) then replies "end". */
static inline void th_stream(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    unsigned n = len ? p[0] : 3;
    for (unsigned i = 0; i < n; i++) {
        char m[16];
        int k = snprintf(m, sizeof(m), "msg%u", i);
        assert_int_equal(net_call_send(call, (const uint8_t *)m, (size_t)k), 0);
    }
    net_call_reply(call, 0, NULL, (const uint8_t *)"end", 3);
}

struct th_deferred {
    uv_timer_t timer;
    net_call *call;
};

static inline void th_deferred_closed(uv_handle_t *h)
{
    free(h->data);
}

static inline void th_deferred_fire(uv_timer_t *t)
{
    struct th_deferred *d = t->data;
    net_call_reply(d->call, 0, NULL, (const uint8_t *)"later", 5);
    uv_close((uv_handle_t *)&d->timer, th_deferred_closed);
}

/* Replies "later" from a timer 20 ms after the request. */
static inline void th_deferred(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    struct th_deferred *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->call = call;
    uv_timer_init((uv_loop_t *)ud, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, th_deferred_fire, 20, 0);
}

/* Never replies until the peer goes away, then replies (which only frees). */
static atomic_int th_hang_gone;
static inline void th_hang_on_gone(net_call *call, void *ud)
{
    atomic_fetch_add(&th_hang_gone, 1);
    assert_true(net_call_gone(call));
    assert_int_equal(net_call_send(call, (const uint8_t *)"x", 1), -EPIPE);
    net_call_reply(call, 0, NULL, NULL, 0);
}
static inline void th_hang(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    net_call_on_gone(call, th_hang_on_gone, NULL);
    if (len)
        net_call_send(call, p, len);
}

/* Replies with the peer's kind and node id / uid: "kind:NODEID" or "local:UID". */
static inline void th_whoami(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    const struct net_peer *peer = net_call_peer(call);
    char buf[128];
    int k;
    if (peer->kind == NET_PEER_LOCAL)
        k = snprintf(buf, sizeof(buf), "local:%u", (unsigned)peer->uid);
    else if (peer->kind == NET_PEER_NODE)
        k = snprintf(buf, sizeof(buf), "node:%s:%s", peer->id.node_id,
                     peer->id.role == PKI_ROLE_MANAGER ? "manager" : "worker");
    else
        k = snprintf(buf, sizeof(buf), "anonymous");
    net_call_reply(call, 0, NULL, (const uint8_t *)buf, (size_t)k);
}

static inline void th_register_all(net_server *s, uv_loop_t *loop)
{
    assert_int_equal(net_server_register(s, "Test.Echo", NET_AUTH_ANY, th_echo, NULL), 0);
    assert_int_equal(net_server_register(s, "Test.Stream", NET_AUTH_ANY, th_stream, NULL), 0);
    assert_int_equal(net_server_register(s, "Test.Deferred", NET_AUTH_ANY, th_deferred, loop), 0);
    assert_int_equal(net_server_register(s, "Test.Hang", NET_AUTH_ANY, th_hang, NULL), 0);
    assert_int_equal(net_server_register(s, "Test.WhoAmI", NET_AUTH_ANY, th_whoami, NULL), 0);
    assert_int_equal(net_server_register(s, "Test.Node", NET_AUTH_NODE, th_whoami, NULL), 0);
    assert_int_equal(net_server_register(s, "Control.ListNodes", NET_AUTH_MANAGER, th_whoami, NULL),
                     0);
    assert_int_equal(net_server_register(s, "Test.Local", NET_AUTH_LOCAL, th_whoami, NULL), 0);
    assert_int_equal(net_server_register(s, "Test.Echo", NET_AUTH_ANY, th_echo, NULL), -EEXIST);
}

static inline void th_server_closed(void *ud)
{
    atomic_store((atomic_bool *)ud, true);
}

/* Close the server and run the loop until everything is freed, then close the loop. */
static inline void th_teardown_loop(uv_loop_t *loop, net_server *s)
{
    atomic_bool closed = false;
    if (s) {
        net_server_close(s, th_server_closed, &closed);
        assert_true(th_run_until(loop, &closed, 5000));
    }
    uv_run(loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---------------------------------------------------------------- blocking-client jobs */

/* Blocking clients run on a thread while the test thread drives the server's loop. fn
 * counts what went wrong in failures (and says what in err). */
struct th_job {
    void (*fn)(struct th_job *j);
    struct sw_addr addr; /* the TCP server, or */
    const char *path;    /* the Unix socket */
    atomic_bool done;
    int failures;
    char err[300];
};

static inline void *th_job_main(void *arg)
{
    struct th_job *j = arg;
    j->fn(j);
    atomic_store(&j->done, true);
    return NULL;
}

/* Run j on a thread, serving loop meanwhile (at most ms); assert it saw no failure. */
static inline void th_run_job(uv_loop_t *loop, struct th_job *j, uint64_t ms)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, th_job_main, j), 0);
    bool ok = th_run_until(loop, &j->done, ms);
    pthread_join(th, NULL);
    assert_true(ok);
    if (j->failures)
        fprintf(stderr, "blocking client: %d failures: %s\n", j->failures, j->err);
    assert_int_equal(j->failures, 0);
}
