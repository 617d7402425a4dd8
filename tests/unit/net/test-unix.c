/* net/ over the Unix control socket: calls, streams, deferred replies, local auth, bad
 * frames and limits, closing with calls in flight, and the blocking client. */
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "helpers.h"
#include "proto/frame.h"

struct fx {
    uv_loop_t loop;
    net_server *s;
    char dir[64];
    char path[128];
};

static struct fx *fx_new(const struct net_server_config *cfg)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/net-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ctl.sock", f->dir);
    struct net_server_config def = {0};
    assert_int_equal(net_server_create(&f->loop, cfg ? cfg : &def, &f->s), 0);
    th_register_all(f->s, &f->loop);
    char err[256];
    assert_int_equal(net_server_listen_unix(f->s, f->path, 0600, err, sizeof(err)), 0);
    return f;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (!f)
        return 0;
    th_teardown_loop(&f->loop, f->s);
    th_rm_rf(f->dir);
    free(f);
    return 0;
}

static net_client *connect_ok(struct fx *f)
{
    struct th_conn_result cr = {0};
    net_client *c = NULL;
    assert_int_equal(net_client_connect_unix(&f->loop, f->path, 2000, th_on_connect, &cr, &c), 0);
    assert_true(th_run_until(&f->loop, &cr.done, 3000));
    assert_int_equal(cr.status, 0);
    assert_int_equal(net_client_server_peer(c)->kind, NET_PEER_LOCAL);
    return c;
}

static void call_ok(struct fx *f, net_client *c, const char *method, const char *payload,
                    struct th_reply *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(net_client_call(c, method, (const uint8_t *)payload,
                                     payload ? strlen(payload) : 0, th_on_reply, r, NULL),
                     0);
    assert_true(th_run_until(&f->loop, &r->done, 3000));
}

static void test_socket_mode_and_stale(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a second server on the same live socket is refused */
    net_server *s2;
    char err[256];
    assert_int_equal(net_server_create(&f->loop, NULL, &s2), 0);
    assert_int_equal(net_server_listen_unix(s2, f->path, 0600, err, sizeof(err)), -EADDRINUSE);
    assert_non_null(strstr(err, f->path));

    /* a stale socket file (no listener) is replaced */
    char stale[160];
    snprintf(stale, sizeof(stale), "%s/stale.sock", f->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, stale, strlen(stale) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(net_server_listen_unix(s2, stale, 0660, err, sizeof(err)), 0);
    assert_int_equal(stat(stale, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);

    /* a regular file is not replaced */
    char regular[160];
    snprintf(regular, sizeof(regular), "%s/file", f->dir);
    FILE *fp = fopen(regular, "w");
    fclose(fp);
    assert_int_equal(net_server_listen_unix(s2, regular, 0600, err, sizeof(err)), -EEXIST);

    atomic_bool closed = false;
    net_server_close(s2, th_server_closed, &closed);
    assert_true(th_run_until(&f->loop, &closed, 2000));
    /* closing removes the socket file */
    assert_int_equal(access(stale, F_OK), -1);
}

static void test_unary_and_auth(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *c = connect_ok(f);
    struct th_reply r;

    call_ok(f, c, "Test.Echo", "hello", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.payload, "hello", 5);

    /* empty payload */
    call_ok(f, c, "Test.Echo", NULL, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 0);

    /* a local peer passes NODE, MANAGER and LOCAL checks, with its uid */
    char want[32];
    snprintf(want, sizeof(want), "local:%u", (unsigned)getuid());
    const char *methods[] = {"Test.Node", "Control.ListNodes", "Test.Local"};
    for (size_t i = 0; i < 3; i++) {
        call_ok(f, c, methods[i], NULL, &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, strlen(want));
        assert_memory_equal(r.payload, want, r.len);
    }

    call_ok(f, c, "No.Such", NULL, &r);
    assert_int_equal(r.status, -ENOSYS);
    assert_string_equal(r.error, "unknown method No.Such");

    /* the connection is still usable */
    call_ok(f, c, "Test.Echo", "again", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(net_server_connections(f->s), 1);
    net_client_close(c);
    assert_true(th_wait_conns(&f->loop, f->s, 0));
}

static void test_stream_and_deferred(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *c = connect_ok(f);
    struct th_reply r, d;

    uint8_t n = 5;
    memset(&r, 0, sizeof(r));
    assert_int_equal(net_client_call(c, "Test.Stream", &n, 1, th_on_reply, &r, NULL), 0);
    /* a deferred call in parallel on the same connection */
    memset(&d, 0, sizeof(d));
    assert_int_equal(net_client_call(c, "Test.Deferred", NULL, 0, th_on_reply, &d, NULL), 0);
    assert_true(th_run_until(&f->loop, &r.done, 3000));
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n_msgs, 5);
    for (unsigned i = 0; i < 5; i++) {
        char m[16];
        snprintf(m, sizeof(m), "msg%u", i);
        assert_string_equal(r.msgs[i], m);
    }
    assert_memory_equal(r.payload, "end", 3);
    assert_true(th_run_until(&f->loop, &d.done, 3000));
    assert_int_equal(d.status, 0);
    assert_int_equal(d.n_msgs, 0);
    assert_memory_equal(d.payload, "later", 5);
    net_client_close(c);
}

/* A hanging stream is cancelled by the client: the server sees the call gone. */
static void test_cancel(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *c = connect_ok(f);
    struct th_reply r = {0};
    uint64_t id;
    atomic_store(&th_hang_gone, 0);
    assert_int_equal(
        net_client_call(c, "Test.Hang", (const uint8_t *)"first", 5, th_on_reply, &r, &id), 0);
    th_run_for(&f->loop, 50);
    assert_int_equal(r.n_msgs, 1);
    assert_string_equal(r.msgs[0], "first");
    assert_int_equal(net_client_cancel(c, id), 0);
    assert_int_equal(net_client_cancel(c, id), -ENOENT);
    th_run_for(&f->loop, 50);
    assert_int_equal(atomic_load(&th_hang_gone), 1);
    assert_false(atomic_load(&r.done));
    /* the same connection still serves */
    struct th_reply e;
    call_ok(f, c, "Test.Echo", "ok", &e);
    assert_int_equal(e.status, 0);
    net_client_close(c);
}

/* Server closes with calls in flight: every pending call fails, handlers see gone. */
static void test_server_close_with_calls(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *c = connect_ok(f);
    struct th_reply r[3];
    atomic_store(&th_hang_gone, 0);
    for (int i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        assert_int_equal(net_client_call(c, "Test.Hang", NULL, 0, th_on_reply, &r[i], NULL), 0);
    }
    /* a deferred reply whose connection is gone by then: the reply is dropped */
    struct th_reply d = {0};
    assert_int_equal(net_client_call(c, "Test.Deferred", NULL, 0, th_on_reply, &d, NULL), 0);
    th_run_for(&f->loop, 10);
    atomic_bool closed = false;
    net_server_close(f->s, th_server_closed, &closed);
    f->s = NULL;
    assert_int_equal(atomic_load(&th_hang_gone), 3);
    assert_true(th_run_until(&f->loop, &closed, 3000));
    for (int i = 0; i < 3; i++) {
        assert_true(th_run_until(&f->loop, &r[i].done, 3000));
        assert_true(r[i].status < 0);
        assert_non_null(strstr(r[i].error, f->path));
    }
    assert_true(th_run_until(&f->loop, &d.done, 3000));
    assert_true(d.status < 0);
    /* new calls on the dead client fail at once */
    struct th_reply x = {0};
    assert_int_equal(net_client_call(c, "Test.Echo", NULL, 0, th_on_reply, &x, NULL), -EPIPE);
    th_run_for(&f->loop, 50); /* the deferred timer fires and frees its gone call */
    net_client_close(c);
    th_run_for(&f->loop, 10);
}

/* The client closes with calls in flight: callbacks get -ECANCELED, nothing leaks. */
static void test_client_close_with_calls(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *c = connect_ok(f);
    struct th_reply r = {0}, d = {0};
    atomic_store(&th_hang_gone, 0);
    assert_int_equal(net_client_call(c, "Test.Hang", NULL, 0, th_on_reply, &r, NULL), 0);
    assert_int_equal(net_client_call(c, "Test.Deferred", NULL, 0, th_on_reply, &d, NULL), 0);
    th_run_for(&f->loop, 5);
    net_client_close(c);
    assert_true(atomic_load(&r.done));
    assert_int_equal(r.status, -ECANCELED);
    assert_int_equal(d.status, -ECANCELED);
    th_run_for(&f->loop, 60);
    assert_int_equal(atomic_load(&th_hang_gone), 1);
    assert_int_equal(net_server_connections(f->s), 0);
}

static void test_connect_errors(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    struct th_conn_result cr = {0};
    net_client *c = NULL;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing.sock", f->dir);
    assert_int_equal(net_client_connect_unix(&f->loop, missing, 1000, th_on_connect, &cr, &c), 0);
    assert_true(th_run_until(&f->loop, &cr.done, 3000));
    assert_true(cr.status < 0);
    assert_non_null(strstr(cr.error, missing));
    struct th_reply x = {0};
    assert_true(net_client_call(c, "Test.Echo", NULL, 0, th_on_reply, &x, NULL) < 0);
    net_client_close(c);

    /* closing before the connection completes: -ECANCELED */
    memset(&cr, 0, sizeof(cr));
    assert_int_equal(net_client_connect_unix(&f->loop, f->path, 1000, th_on_connect, &cr, &c), 0);
    net_client_close(c);
    assert_true(atomic_load(&cr.done));
    assert_int_equal(cr.status, -ECANCELED);
    th_run_for(&f->loop, 20);

    /* sync client: a clear message */
    net_sync *sc = NULL;
    char err[300];
    assert_int_equal(net_sync_connect_unix(missing, 1000, &sc, err, sizeof(err)), -ENOENT);
    assert_null(sc);
    assert_non_null(strstr(err, "cannot connect to"));
    assert_non_null(strstr(err, "is swarmd running?"));
}

/* ---------------------------------------------------------------- raw sockets */

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Read until EOF (with the loop running); returns the bytes read. */
struct raw_reader {
    uv_poll_t poll;
    int fd;
    uint8_t buf[4096];
    size_t len;
    atomic_bool eof;
};

static void raw_on_poll(uv_poll_t *p, int status, int events)
{
    struct raw_reader *r = p->data;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, MSG_DONTWAIT);
    if (n > 0) {
        r->len += (size_t)n;
        return;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        atomic_store(&r->eof, true);
        uv_poll_stop(p);
    }
}

static void raw_watch(uv_loop_t *loop, struct raw_reader *r, int fd)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    assert_int_equal(uv_poll_init(loop, &r->poll, fd), 0);
    r->poll.data = r;
    assert_int_equal(uv_poll_start(&r->poll, UV_READABLE, raw_on_poll), 0);
}

static void raw_unwatch(uv_loop_t *loop, struct raw_reader *r)
{
    uv_close((uv_handle_t *)&r->poll, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    close(r->fd);
}

/* The frames the server sent before closing: greeting, then maybe a final error. */
static void assert_closed_with(struct raw_reader *r, int status)
{
    struct proto_frame_decoder d;
    Swarm__Frame *fr = NULL;
    proto_frame_decoder_init(&d, 0);
    assert_int_equal(proto_frame_decoder_feed(&d, r->buf, r->len), 0);
    assert_int_equal(proto_frame_decoder_next(&d, &fr), 1);
    assert_int_equal(fr->id, 0);
    assert_int_equal(fr->status, 0);
    swarm__frame__free_unpacked(fr, NULL);
    int k = proto_frame_decoder_next(&d, &fr);
    if (status) {
        assert_int_equal(k, 1);
        assert_int_equal(fr->id, 0);
        assert_int_equal(fr->status, status);
        assert_true(strlen(fr->error) > 0);
        swarm__frame__free_unpacked(fr, NULL);
    }
    proto_frame_decoder_finish(&d);
}

static void bad_bytes_case(struct fx *f, const uint8_t *bytes, size_t n, bool shut, int status)
{
    /* an already-open good connection */
    net_client *good = connect_ok(f);
    struct raw_reader rr;
    int fd = raw_connect(f->path);
    raw_watch(&f->loop, &rr, fd);
    assert_true(th_wait_conns(&f->loop, f->s, 2));
    assert_int_equal(send(fd, bytes, n, MSG_NOSIGNAL), (ssize_t)n);
    if (shut)
        shutdown(fd, SHUT_WR);
    assert_true(th_run_until(&f->loop, &rr.eof, 3000));
    assert_closed_with(&rr, status);
    raw_unwatch(&f->loop, &rr);
    assert_true(th_wait_conns(&f->loop, f->s, 1));
    struct th_reply r;
    call_ok(f, good, "Test.Echo", "still", &r);
    assert_int_equal(r.status, 0);
    net_client_close(good);
    th_run_for(&f->loop, 20);
}

static void test_bad_frames(void **state)
{
    struct net_server_config cfg = {.max_frame = 1024};
    struct fx *f = *state = fx_new(&cfg);

    /* oversize: announces 1 MiB */
    const uint8_t big[] = {0x00, 0x10, 0x00, 0x00, 0x01, 0x02};
    bad_bytes_case(f, big, sizeof(big), false, -EMSGSIZE);

    /* truncated frame, then EOF */
    struct proto_frame pf = {.id = 1,
                             .kind = SWARM__FRAME_KIND__FRAME_REQUEST,
                             .method = "Test.Echo",
                             .payload = (const uint8_t *)"abcdef",
                             .payload_len = 6};
    uint8_t *buf;
    size_t len;
    assert_int_equal(proto_frame_encode(&pf, 1024, &buf, &len), 0);
    bad_bytes_case(f, buf, len - 3, true, 0);
    free(buf);

    /* garbage that does not decode */
    const uint8_t junk[] = {0x00, 0x00, 0x00, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    bad_bytes_case(f, junk, sizeof(junk), false, -EBADMSG);

    /* a duplicate in-flight id closes the connection */
    pf.method = "Test.Hang";
    pf.payload = NULL;
    pf.payload_len = 0;
    assert_int_equal(proto_frame_encode(&pf, 1024, &buf, &len), 0);
    uint8_t two[256];
    memcpy(two, buf, len);
    memcpy(two + len, buf, len);
    atomic_store(&th_hang_gone, 0);
    bad_bytes_case(f, two, 2 * len, false, -EPROTO);
    assert_int_equal(atomic_load(&th_hang_gone), 1);
    free(buf);
}

/* A handler streams to a peer that never reads: the connection is closed once too much
 * is queued, the stream sees -EPIPE, the server keeps serving. */
static int flood_result;
static unsigned flood_sent;
static void flood(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    uint8_t msg[900];
    memset(msg, 'f', sizeof(msg));
    flood_result = 0;
    for (flood_sent = 0; flood_sent < 20000; flood_sent++) {
        int r = net_call_send(call, msg, sizeof(msg));
        if (r < 0) {
            flood_result = r;
            break;
        }
    }
    net_call_reply(call, 0, NULL, NULL, 0);
}

static void test_slow_reader(void **state)
{
    struct net_server_config cfg = {.max_frame = 1024};
    struct fx *f = *state = fx_new(&cfg);
    assert_int_equal(net_server_register(f->s, "Test.Flood", NET_AUTH_ANY, flood, NULL), 0);
    net_client *good = connect_ok(f);
    int fd = raw_connect(f->path);
    struct proto_frame pf = {
        .id = 1, .kind = SWARM__FRAME_KIND__FRAME_REQUEST, .method = "Test.Flood"};
    uint8_t *buf;
    size_t len;
    assert_int_equal(proto_frame_encode(&pf, 1024, &buf, &len), 0);
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
    free(buf);
    for (int i = 0; i < 300 && flood_result == 0; i++)
        th_run_for(&f->loop, 10);
    assert_int_equal(flood_result, -EPIPE);
    assert_true(flood_sent > 100);
    assert_int_equal(net_server_connections(f->s), 1);
    close(fd);
    struct th_reply r;
    call_ok(f, good, "Test.Echo", "ok", &r);
    assert_int_equal(r.status, 0);
    net_client_close(good);
}

static void test_idle_timeout(void **state)
{
    struct net_server_config cfg = {.idle_timeout_ms = 100};
    struct fx *f = *state = fx_new(&cfg);
    net_client *idle = connect_ok(f);
    net_client *busy = connect_ok(f);
    struct th_reply r = {0};
    /* an open stream keeps its connection alive past the idle timeout */
    assert_int_equal(net_client_call(busy, "Test.Hang", NULL, 0, th_on_reply, &r, NULL), 0);
    assert_true(th_wait_conns(&f->loop, f->s, 1));
    th_run_for(&f->loop, 250); /* well past the idle timeout: the open stream keeps it */
    assert_int_equal(net_server_connections(f->s), 1);
    assert_false(atomic_load(&r.done));
    struct th_reply e;
    call_ok(f, busy, "Test.Echo", "x", &e);
    assert_int_equal(e.status, 0);
    e.done = false;
    assert_int_equal(net_client_call(idle, "Test.Echo", NULL, 0, th_on_reply, &e, NULL), -EPIPE);
    net_client_close(idle);
    net_client_close(busy);
    assert_int_equal(r.status, -ECANCELED);
}

static void test_max_connections(void **state)
{
    struct net_server_config cfg = {.max_connections = 2};
    struct fx *f = *state = fx_new(&cfg);
    net_client *a = connect_ok(f);
    net_client *b = connect_ok(f);
    struct th_conn_result cr = {0};
    net_client *c = NULL;
    assert_int_equal(net_client_connect_unix(&f->loop, f->path, 2000, th_on_connect, &cr, &c), 0);
    assert_true(th_run_until(&f->loop, &cr.done, 3000));
    assert_true(cr.status < 0);
    net_client_close(c);
    assert_int_equal(net_server_connections(f->s), 2);
    struct th_reply r;
    call_ok(f, a, "Test.Echo", "a", &r);
    assert_int_equal(r.status, 0);
    /* once one leaves, a new one gets in */
    net_client_close(b);
    th_run_for(&f->loop, 20);
    net_client *d = connect_ok(f);
    net_client_close(d);
    net_client_close(a);
}

/* Calls in flight on one connection are capped: the extra one gets -EBUSY, the connection
 * and its calls go on, and a slot frees when a call ends. */
static void test_max_calls_per_connection(void **state)
{
    struct net_server_config cfg = {.max_calls_per_connection = 2};
    struct fx *f = *state = fx_new(&cfg);
    net_client *c = connect_ok(f);
    struct th_reply h1 = {0}, h2 = {0}, r;
    assert_int_equal(net_client_call(c, "Test.Hang", NULL, 0, th_on_reply, &h1, NULL), 0);
    assert_int_equal(net_client_call(c, "Test.Deferred", NULL, 0, th_on_reply, &h2, NULL), 0);
    call_ok(f, c, "Test.Echo", "three", &r);
    assert_int_equal(r.status, -EBUSY);
    assert_string_equal(r.error, "too many calls in flight on this connection");
    assert_false(atomic_load(&h1.done));
    /* the deferred call ends: there is room again */
    assert_true(th_run_until(&f->loop, &h2.done, 3000));
    assert_int_equal(h2.status, 0);
    call_ok(f, c, "Test.Echo", "four", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 4);
    /* other connections have their own budget */
    net_client *d = connect_ok(f);
    struct th_reply d1 = {0}, d2 = {0};
    assert_int_equal(net_client_call(d, "Test.Hang", NULL, 0, th_on_reply, &d1, NULL), 0);
    assert_int_equal(net_client_call(d, "Test.Hang", NULL, 0, th_on_reply, &d2, NULL), 0);
    call_ok(f, d, "Test.Echo", "x", &r);
    assert_int_equal(r.status, -EBUSY);
    net_client_close(d);
    net_client_close(c);
    assert_int_equal(h1.status, -ECANCELED);
}

/* net/'s calloc (wrapped with -Wl,--wrap=calloc) fails while this is set. */
static atomic_bool fail_calloc;
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size)
{
    if (atomic_load(&fail_calloc))
        return NULL;
    return __real_calloc(n, size);
}

/* A raw peer: connected (the kernel queues it), not yet accepted. */
static int raw_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(fd >= 0);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Run the loop until the server has closed fd's connection (EOF), at most 2 s. */
static bool closed_by_server(struct fx *f, int fd)
{
    char b[64];
    for (int i = 0; i < 200; i++) {
        th_run_for(&f->loop, 10);
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

/* Out of memory while refusing (or accepting) connections: each one is still accepted and
 * closed, and the listener keeps serving once memory is back. */
static void test_reject_without_memory(void **state)
{
    struct net_server_config cfg = {.max_connections = 1};
    struct fx *f = *state = fx_new(&cfg);
    net_client *a = connect_ok(f);

    /* over the limit, and no memory for a reject handle: two in a row, so the second
     * waits for the first's close */
    atomic_store(&fail_calloc, true);
    int p1 = raw_unix(f->path), p2 = raw_unix(f->path);
    bool c1 = closed_by_server(f, p1), c2 = closed_by_server(f, p2);
    atomic_store(&fail_calloc, false);
    assert_true(c1);
    assert_true(c2);
    close(p1);
    close(p2);

    /* under the limit, no memory for the connection itself */
    net_client_close(a);
    assert_true(th_wait_conns(&f->loop, f->s, 0));
    atomic_store(&fail_calloc, true);
    int p3 = raw_unix(f->path);
    bool c3 = closed_by_server(f, p3);
    atomic_store(&fail_calloc, false);
    assert_true(c3);
    close(p3);

    /* the listener still serves */
    net_client *b = connect_ok(f);
    struct th_reply r;
    call_ok(f, b, "Test.Echo", "back", &r);
    assert_int_equal(r.status, 0);
    net_client_close(b);
}

/* ---------------------------------------------------------------- blocking client */

static void sync_thread(struct th_job *j)
{
    net_sync *c = NULL;
    int status;
    char err[300];
    uint8_t *out = NULL;
    size_t len = 0;

    if (net_sync_connect_unix(j->path, 2000, &c, j->err, sizeof(j->err)) < 0) {
        j->failures++;
        return;
    }
    if (net_sync_call(c, "Test.Echo", (const uint8_t *)"sync", 4, &status, err, sizeof(err), &out,
                      &len) < 0 ||
        status != 0 || len != 4 || memcmp(out, "sync", 4) != 0)
        j->failures++;
    free(out);
    out = NULL;
    /* a stream's messages are skipped by the unary client; the final reply counts */
    if (net_sync_call(c, "Test.Stream", NULL, 0, &status, err, sizeof(err), &out, &len) < 0 ||
        status != 0 || len != 3 || memcmp(out, "end", 3) != 0)
        j->failures++;
    free(out);
    out = NULL;
    if (net_sync_call(c, "Test.Deferred", NULL, 0, &status, err, sizeof(err), &out, &len) < 0 ||
        status != 0 || len != 5)
        j->failures++;
    free(out);
    out = NULL;
    if (net_sync_call(c, "Nope", NULL, 0, &status, err, sizeof(err), &out, &len) < 0 ||
        status != -ENOSYS || strcmp(err, "unknown method Nope") != 0 || out != NULL)
        j->failures++;
    free(out);
    net_sync_close(c);
}

static void test_sync_client(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    struct th_job j = {.fn = sync_thread, .path = f->path};
    th_run_job(&f->loop, &j, 10000);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_socket_mode_and_stale, fx_teardown),
        cmocka_unit_test_teardown(test_unary_and_auth, fx_teardown),
        cmocka_unit_test_teardown(test_stream_and_deferred, fx_teardown),
        cmocka_unit_test_teardown(test_cancel, fx_teardown),
        cmocka_unit_test_teardown(test_server_close_with_calls, fx_teardown),
        cmocka_unit_test_teardown(test_client_close_with_calls, fx_teardown),
        cmocka_unit_test_teardown(test_connect_errors, fx_teardown),
        cmocka_unit_test_teardown(test_bad_frames, fx_teardown),
        cmocka_unit_test_teardown(test_slow_reader, fx_teardown),
        cmocka_unit_test_teardown(test_idle_timeout, fx_teardown),
        cmocka_unit_test_teardown(test_max_connections, fx_teardown),
        cmocka_unit_test_teardown(test_reject_without_memory, fx_teardown),
        cmocka_unit_test_teardown(test_max_calls_per_connection, fx_teardown),
        cmocka_unit_test_teardown(test_sync_client, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
