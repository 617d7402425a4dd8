/* net/ over TLS 1.3 on loopback: peer identities and per-method authorization, refused
 * certificates, streams and large payloads, limits, closing with calls in flight, and the
 * blocking TLS client. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "common/cleanup.h"
#include "common/ids.h"
#include "helpers.h"
#include "pki/pki.h"

struct cert {
    char node_id[SW_ID_LEN + 1];
    char *pem;
    pki_key *key;
};

/* Everything a test needs: two CAs, certificates, contexts. Built once (keygen is slow
 * under ASan). */
static struct {
    pki_ca *ca, *other_ca;
    char cluster[SW_ID_LEN + 1];
    struct cert server, manager, worker, foreign, wrong_cluster;
    SSL_CTX *server_ctx;
    SSL_CTX *anon_ctx, *manager_ctx, *worker_ctx, *foreign_ctx, *wrong_cluster_ctx;
} G;

static void make_cert(pki_ca *ca, const char *cluster, enum pki_role role, struct cert *ret)
{
    char err[256];
    char *csr = NULL;
    assert_int_equal(sw_id_generate(ret->node_id), 0);
    assert_int_equal(pki_key_generate(&ret->key), 0);
    assert_int_equal(pki_csr_create(ret->key, &csr), 0);
    struct pki_sign_request req = {.node_id = ret->node_id, .cluster_id = cluster, .role = role};
    assert_int_equal(pki_ca_sign_csr(ca, csr, strlen(csr), &req, &ret->pem, err, sizeof(err)), 0);
    free(csr);
}

static SSL_CTX *client_ctx(const struct cert *c)
{
    const char *bundle = pki_ca_cert_pem(G.ca);
    SSL_CTX *ctx = NULL;
    char err[256];
    assert_int_equal(
        pki_tls_client_ctx(bundle, strlen(bundle), c ? c->pem : NULL, c ? strlen(c->pem) : 0,
                           c ? c->key : NULL, &ctx, err, sizeof(err)),
        0);
    return ctx;
}

static int group_setup(void **state)
{
    char other_cluster[SW_ID_LEN + 1];
    char err[256];
    assert_int_equal(pki_ca_create(&G.ca), 0);
    assert_int_equal(pki_ca_create(&G.other_ca), 0);
    assert_int_equal(sw_id_generate(G.cluster), 0);
    assert_int_equal(sw_id_generate(other_cluster), 0);
    make_cert(G.ca, G.cluster, PKI_ROLE_MANAGER, &G.server);
    make_cert(G.ca, G.cluster, PKI_ROLE_MANAGER, &G.manager);
    make_cert(G.ca, G.cluster, PKI_ROLE_WORKER, &G.worker);
    make_cert(G.other_ca, G.cluster, PKI_ROLE_MANAGER, &G.foreign);
    make_cert(G.ca, other_cluster, PKI_ROLE_MANAGER, &G.wrong_cluster);
    const char *bundle = pki_ca_cert_pem(G.ca);
    assert_int_equal(pki_tls_server_ctx(bundle, strlen(bundle), G.server.pem, strlen(G.server.pem),
                                        G.server.key, &G.server_ctx, err, sizeof(err)),
                     0);
    G.anon_ctx = client_ctx(NULL);
    G.manager_ctx = client_ctx(&G.manager);
    G.worker_ctx = client_ctx(&G.worker);
    G.foreign_ctx = client_ctx(&G.foreign);
    G.wrong_cluster_ctx = client_ctx(&G.wrong_cluster);
    return 0;
}

static void cert_free(struct cert *c)
{
    free(c->pem);
    pki_key_free(c->key);
}

static int group_teardown(void **state)
{
    SSL_CTX *ctxs[] = {G.server_ctx, G.anon_ctx,    G.manager_ctx,
                       G.worker_ctx, G.foreign_ctx, G.wrong_cluster_ctx};
    for (size_t i = 0; i < SW_ARRAY_SIZE(ctxs); i++)
        pki_tls_ctx_free(ctxs[i]);
    cert_free(&G.server);
    cert_free(&G.manager);
    cert_free(&G.worker);
    cert_free(&G.foreign);
    cert_free(&G.wrong_cluster);
    pki_ca_free(G.ca);
    pki_ca_free(G.other_ca);
    return 0;
}

/* ---------------------------------------------------------------- per-test fixture */

struct fx {
    uv_loop_t loop;
    net_server *s;
    struct sw_addr addr;
    char dir[64]; /* a temp dir removed at teardown, if a test made one */
};

static struct fx *fx_new(const struct net_server_config *cfg_in)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct net_server_config cfg = cfg_in ? *cfg_in : (struct net_server_config){0};
    cfg.cluster_id = G.cluster;
    assert_int_equal(net_server_create(&f->loop, &cfg, &f->s), 0);
    th_register_all(f->s, &f->loop);
    struct sw_addr any;
    char err[256];
    assert_int_equal(sw_addr_parse("127.0.0.1:0", -1, 1, &any), 0);
    assert_int_equal(net_server_listen_tcp(f->s, &any, G.server_ctx, &f->addr, err, sizeof(err)),
                     0);
    assert_true(f->addr.port != 0);
    return f;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (!f)
        return 0;
    th_teardown_loop(&f->loop, f->s);
    if (f->dir[0])
        th_rm_rf(f->dir);
    free(f);
    *state = NULL;
    return 0;
}

static int tls_connect(struct fx *f, SSL_CTX *ctx, struct th_conn_result *cr, net_client **ret)
{
    memset(cr, 0, sizeof(*cr));
    assert_int_equal(net_client_connect_tcp(&f->loop, &f->addr, ctx, 3000, th_on_connect, cr, ret),
                     0);
    assert_true(th_run_until(&f->loop, &cr->done, 5000));
    return cr->status;
}

static net_client *connect_ok(struct fx *f, SSL_CTX *ctx)
{
    struct th_conn_result cr;
    net_client *c = NULL;
    int r = tls_connect(f, ctx, &cr, &c);
    if (r != 0)
        fprintf(stderr, "connect: %s\n", cr.error);
    assert_int_equal(r, 0);
    return c;
}

static void call(struct fx *f, net_client *c, const char *method, const void *payload, size_t len,
                 struct th_reply *r)
{
    memset(r, 0, sizeof(*r));
    assert_int_equal(net_client_call(c, method, payload, len, th_on_reply, r, NULL), 0);
    assert_true(th_run_until(&f->loop, &r->done, 5000));
}

static void assert_payload(const struct th_reply *r, const char *want)
{
    assert_int_equal(r->status, 0);
    assert_int_equal(r->len, strlen(want));
    assert_memory_equal(r->payload, want, r->len);
}

/* ---------------------------------------------------------------- raw streams */

/* One side of a raw stream: what it received, and how it ended. */
struct raw_side {
    net_raw *r;
    uint8_t *got;
    size_t len, cap;
    atomic_bool ended;
    int end_status;
    bool echo; /* server: send every chunk back */
};

static struct raw_side raw_srv;

static void raw_on_bytes(net_raw *r, int status, const char *error, const uint8_t *data, size_t len,
                         void *ud)
{
    struct raw_side *side = ud;
    if (status < 0) {
        side->end_status = status;
        side->r = NULL;
        atomic_store(&side->ended, true);
        return;
    }
    if (side->len + len > side->cap) {
        side->cap = (side->len + len) * 2;
        side->got = realloc(side->got, side->cap);
        assert_non_null(side->got);
    }
    memcpy(side->got + side->len, data, len);
    side->len += len;
    if (side->echo)
        assert_int_equal(net_raw_write(r, data, len), 0);
}

/* Replies "ok" and switches to raw bytes; says "hello" at once, then echoes. */
static void th_raw(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    free(raw_srv.got);
    memset(&raw_srv, 0, sizeof(raw_srv));
    raw_srv.echo = true;
    assert_int_equal(
        net_call_reply_raw(call, (const uint8_t *)"ok", 2, raw_on_bytes, &raw_srv, &raw_srv.r), 0);
    assert_int_equal(net_raw_write(raw_srv.r, (const uint8_t *)"hello", 5), 0);
}

/* A refused raw call: the connection stays framed. */
static void th_raw_refused(net_call *call, const uint8_t *p, size_t len, void *ud)
{
    net_call_reply(call, -EPERM, "not you", NULL, 0);
}

struct raw_client {
    struct th_reply reply;
    struct raw_side side;
};

static void raw_open(struct fx *f, net_client *c, struct raw_client *rc, const char *method)
{
    memset(rc, 0, sizeof(*rc));
    assert_int_equal(
        net_client_call_raw(c, method, NULL, 0, th_on_reply, &rc->reply, raw_on_bytes, &rc->side),
        0);
    assert_true(th_run_until(&f->loop, &rc->reply.done, 5000));
    rc->side.r = rc->reply.status == 0 ? net_client_raw(c) : NULL;
}

static bool raw_has(struct fx *f, struct raw_side *side, size_t n)
{
    for (int i = 0; i < 1000 && side->len < n && !atomic_load(&side->ended); i++)
        th_run_for(&f->loop, 5);
    return side->len >= n;
}

/* After one call a connection carries raw bytes both ways: the server's first bytes (sent
 * with its reply) arrive, a large transfer comes back intact, bytes that look like frames
 * are just bytes, the other pending call is cancelled, and either side's close reaches the
 * other. A refused call leaves the connection framed. */
static void test_raw_stream(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    assert_int_equal(net_server_register(f->s, "Test.Raw", NET_AUTH_NODE, th_raw, NULL), 0);
    assert_int_equal(
        net_server_register(f->s, "Test.RawRefused", NET_AUTH_NODE, th_raw_refused, NULL), 0);
    net_client *c = connect_ok(f, G.worker_ctx);

    struct raw_client rc;
    raw_open(f, c, &rc, "Test.RawRefused");
    assert_int_equal(rc.reply.status, -EPERM);
    assert_null(net_client_raw(c));
    struct th_reply r;
    call(f, c, "Test.Echo", "still framed", 12, &r);
    assert_payload(&r, "still framed");

    struct th_reply hang;
    memset(&hang, 0, sizeof(hang));
    assert_int_equal(net_client_call(c, "Test.Hang", NULL, 0, th_on_reply, &hang, NULL), 0);
    raw_open(f, c, &rc, "Test.Raw");
    assert_payload(&rc.reply, "ok");
    assert_non_null(rc.side.r);
    assert_true(atomic_load(&hang.done));
    assert_int_equal(hang.status, -ECANCELED);
    assert_true(raw_has(f, &rc.side, 5));
    assert_memory_equal(rc.side.got, "hello", 5);
    /* no more calls on it */
    assert_int_equal(net_client_call(c, "Test.Echo", NULL, 0, th_on_reply, &r, NULL), -EPIPE);

    /* 2 MiB, with a frame-shaped start: echoed back byte for byte */
    size_t big = 2u << 20;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        buf[i] = (uint8_t)(i * 13 + 1);
    memcpy(buf, "\x00\x00\x00\x05\x08\x01\x10\x01\x1a", 9);
    for (size_t off = 0; off < big; off += 65536)
        assert_int_equal(net_raw_write(rc.side.r, buf + off, 65536), 0);
    assert_true(raw_has(f, &raw_srv, big));
    assert_true(raw_has(f, &rc.side, 5 + big));
    assert_memory_equal(raw_srv.got, buf, big);
    assert_memory_equal(rc.side.got + 5, buf, big);
    free(buf);

    /* the client closes: the server side ends */
    net_raw_close(rc.side.r);
    assert_true(th_run_until(&f->loop, &raw_srv.ended, 3000));
    assert_true(raw_srv.end_status < 0);
    assert_false(atomic_load(&rc.side.ended)); /* no callback after its own close */

    /* the server closes: the client side ends */
    free(rc.side.got);
    c = connect_ok(f, G.worker_ctx);
    raw_open(f, c, &rc, "Test.Raw");
    assert_true(raw_has(f, &rc.side, 5));
    net_raw_close(raw_srv.r);
    assert_true(th_run_until(&f->loop, &rc.side.ended, 3000));
    assert_true(rc.side.end_status < 0);
    assert_int_equal(net_raw_write(net_client_raw(c), (const uint8_t *)"x", 1), -EPIPE);
    net_client_close(c);
    free(rc.side.got);
    free(raw_srv.got);
    memset(&raw_srv, 0, sizeof(raw_srv));
}

/* ---------------------------------------------------------------- tests */

static void test_identity_and_auth(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    struct th_reply r;
    char want[128];

    /* anonymous (joining node): only NET_AUTH_ANY methods */
    net_client *anon = connect_ok(f, G.anon_ctx);
    const struct net_peer *sp = net_client_server_peer(anon);
    assert_int_equal(sp->kind, NET_PEER_NODE);
    assert_string_equal(sp->id.node_id, G.server.node_id);
    assert_int_equal(sp->id.role, PKI_ROLE_MANAGER);
    assert_string_equal(sp->id.cluster_id, G.cluster);
    assert_non_null(strstr(net_client_server_cert_pem(anon), "BEGIN CERTIFICATE"));
    call(f, anon, "Test.WhoAmI", NULL, 0, &r);
    assert_payload(&r, "anonymous");
    call(f, anon, "Test.Node", NULL, 0, &r);
    assert_int_equal(r.status, -EPERM);
    assert_string_equal(r.error, "Test.Node requires a node certificate");
    call(f, anon, "Control.ListNodes", NULL, 0, &r);
    assert_int_equal(r.status, -EPERM);
    assert_string_equal(r.error, "Control.ListNodes requires a manager certificate");
    /* denied calls leave the connection open */
    call(f, anon, "Test.Echo", "hi", 2, &r);
    assert_payload(&r, "hi");

    /* worker: NODE yes, MANAGER and LOCAL no */
    net_client *worker = connect_ok(f, G.worker_ctx);
    call(f, worker, "Test.Node", NULL, 0, &r);
    snprintf(want, sizeof(want), "node:%s:worker", G.worker.node_id);
    assert_payload(&r, want);
    call(f, worker, "Control.ListNodes", NULL, 0, &r);
    assert_int_equal(r.status, -EPERM);
    assert_string_equal(r.error, "Control.ListNodes requires a manager certificate");
    call(f, worker, "Test.Local", NULL, 0, &r);
    assert_int_equal(r.status, -EPERM);

    /* manager: NODE and MANAGER, never LOCAL */
    net_client *mgr = connect_ok(f, G.manager_ctx);
    call(f, mgr, "Control.ListNodes", NULL, 0, &r);
    snprintf(want, sizeof(want), "node:%s:manager", G.manager.node_id);
    assert_payload(&r, want);
    call(f, mgr, "Test.Local", NULL, 0, &r);
    assert_int_equal(r.status, -EPERM);
    assert_string_equal(r.error, "Test.Local requires the local control socket");
    call(f, mgr, "Missing.Method", NULL, 0, &r);
    assert_int_equal(r.status, -ENOSYS);

    assert_int_equal(net_server_connections(f->s), 3);
    net_client_close(anon);
    net_client_close(worker);
    net_client_close(mgr);
    assert_true(th_wait_conns(&f->loop, f->s, 0));
}

static void test_refused_certificates(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    struct th_conn_result cr;
    net_client *c = NULL;

    /* a certificate from another CA: refused at the handshake */
    assert_true(tls_connect(f, G.foreign_ctx, &cr, &c) < 0);
    assert_non_null(strstr(cr.error, "TLS"));
    net_client_close(c);

    /* right CA, another cluster: closed with a reason */
    assert_true(tls_connect(f, G.wrong_cluster_ctx, &cr, &c) < 0);
    assert_int_equal(cr.status, -EPERM);
    assert_non_null(strstr(cr.error, "cluster"));
    net_client_close(c);

    /* a client that does not trust the server's CA */
    const char *other = pki_ca_cert_pem(G.other_ca);
    SSL_CTX *ctx = NULL;
    char err[256];
    assert_int_equal(
        pki_tls_client_ctx(other, strlen(other), NULL, 0, NULL, &ctx, err, sizeof(err)), 0);
    assert_true(tls_connect(f, ctx, &cr, &c) < 0);
    assert_int_equal(cr.status, -EKEYREJECTED); /* told apart from other TLS failures */
    assert_non_null(strstr(cr.error, "the peer's certificate does not verify"));
    net_client_close(c);
    pki_tls_ctx_free(ctx);

    assert_true(th_wait_conns(&f->loop, f->s, 0));
    /* the server still serves */
    net_client *ok = connect_ok(f, G.worker_ctx);
    net_client_close(ok);
}

static int deny_worker(struct net_peer *peer, void *ud)
{
    (*(int *)ud)++;
    return peer->id.role == PKI_ROLE_WORKER ? -EPERM : 0;
}

static void test_authorize_hook(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    int seen = 0;
    net_server_set_authorize(f->s, deny_worker, &seen);
    struct th_conn_result cr;
    net_client *c = NULL;
    assert_int_equal(tls_connect(f, G.worker_ctx, &cr, &c), -EPERM);
    assert_non_null(strstr(cr.error, "refused"));
    net_client_close(c);
    net_client *m = connect_ok(f, G.manager_ctx);
    /* anonymous peers are not run through the hook */
    net_client *a = connect_ok(f, G.anon_ctx);
    assert_int_equal(seen, 2);
    net_client_close(m);
    net_client_close(a);
}

static void test_streams_and_large(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *c = connect_ok(f, G.worker_ctx);
    struct th_reply r, d;

    uint8_t n = 7;
    memset(&d, 0, sizeof(d));
    assert_int_equal(net_client_call(c, "Test.Deferred", NULL, 0, th_on_reply, &d, NULL), 0);
    call(f, c, "Test.Stream", &n, 1, &r);
    assert_payload(&r, "end");
    assert_int_equal(r.n_msgs, 7);
    assert_string_equal(r.msgs[6], "msg6");
    assert_true(th_run_until(&f->loop, &d.done, 3000));
    assert_payload(&d, "later");

    /* 3 MiB each way: many TLS records and reads */
    size_t big = 3u << 20;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    for (size_t i = 0; i < big; i++)
        buf[i] = (uint8_t)(i * 7);
    call(f, c, "Test.Echo", buf, big, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.total, big);
    assert_memory_equal(r.payload, buf, sizeof(r.payload));
    free(buf);
    net_client_close(c);
}

static void test_oversize_frame(void **state)
{
    struct net_server_config cfg = {.max_frame = 4096};
    struct fx *f = *state = fx_new(&cfg);
    net_client *good = connect_ok(f, G.worker_ctx);
    net_client *bad = connect_ok(f, G.worker_ctx);
    struct th_reply r;
    uint8_t buf[8192] = {0};
    call(f, bad, "Test.Echo", buf, sizeof(buf), &r);
    assert_true(r.status < 0);
    assert_non_null(strstr(r.error, "frame larger than 4096"));
    call(f, good, "Test.Echo", "fine", 4, &r);
    assert_payload(&r, "fine");
    assert_int_equal(net_server_connections(f->s), 1);
    net_client_close(bad);
    net_client_close(good);
}

/* A peer without a certificate may only join: its frames are capped far below max_frame,
 * so 1024 anonymous connections cannot make the server buffer 16 MiB each. */
static void test_anonymous_frame_cap(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *anon = connect_ok(f, G.anon_ctx);
    net_client *node = connect_ok(f, G.worker_ctx);
    size_t big = NET_ANONYMOUS_MAX_FRAME + 1024;
    uint8_t *buf = calloc(1, big);
    assert_non_null(buf);
    struct th_reply r;
    call(f, node, "Test.Echo", buf, big, &r); /* a node certificate: the full limit */
    assert_int_equal(r.status, 0);
    assert_int_equal(r.total, big);
    call(f, anon, "Test.Echo", buf, 4096, &r); /* small join-sized calls are fine */
    assert_int_equal(r.status, 0);
    call(f, anon, "Test.Echo", buf, big, &r);
    assert_true(r.status < 0);
    char want[64];
    snprintf(want, sizeof(want), "frame larger than %u", (unsigned)NET_ANONYMOUS_MAX_FRAME);
    assert_non_null(strstr(r.error, want));
    assert_true(th_wait_conns(&f->loop, f->s, 1));
    free(buf);
    net_client_close(anon);
    net_client_close(node);
}

/* ---------------------------------------------------------------- raw TCP peers */

static int raw_tcp(const struct sw_addr *a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(a->port)};
    inet_pton(AF_INET, a->host, &sin.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void test_handshake_limits(void **state)
{
    struct net_server_config cfg = {.handshake_timeout_ms = 100, .max_connections = 3};
    struct fx *f = *state = fx_new(&cfg);
    net_client *good = connect_ok(f, G.worker_ctx);

    /* silent peer: closed after the handshake timeout */
    int silent = raw_tcp(&f->addr);
    assert_true(th_wait_conns(&f->loop, f->s, 2));
    uint64_t t0 = uv_now(&f->loop);
    assert_true(th_wait_conns(&f->loop, f->s, 1));
    assert_true(uv_now(&f->loop) - t0 >= 80);
    char b[64];
    assert_int_equal(recv(silent, b, sizeof(b), MSG_DONTWAIT), 0); /* EOF */
    close(silent);

    /* garbage instead of a ClientHello: closed at once */
    int junk = raw_tcp(&f->addr);
    assert_true(th_wait_conns(&f->loop, f->s, 2));
    assert_int_equal(send(junk, "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL), 18);
    assert_true(th_wait_conns(&f->loop, f->s, 1));
    close(junk);

    /* a truncated ClientHello followed by EOF */
    int trunc = raw_tcp(&f->addr);
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
    assert_true(th_wait_conns(&f->loop, f->s, 2));
    assert_int_equal(send(trunc, hello, sizeof(hello), MSG_NOSIGNAL), (ssize_t)sizeof(hello));
    shutdown(trunc, SHUT_WR);
    assert_true(th_wait_conns(&f->loop, f->s, 1));
    close(trunc);

    /* max_connections = 3: the fourth is refused */
    net_client *b2 = connect_ok(f, G.worker_ctx);
    net_client *b3 = connect_ok(f, G.anon_ctx);
    struct th_conn_result cr;
    net_client *b4 = NULL;
    assert_true(tls_connect(f, G.worker_ctx, &cr, &b4) < 0);
    net_client_close(b4);

    struct th_reply r;
    call(f, good, "Test.Echo", "alive", 5, &r);
    assert_payload(&r, "alive");
    net_client_close(good);
    net_client_close(b2);
    net_client_close(b3);
}

/* Unauthenticated TCP peers filling max_connections must not lock the operator out of
 * the local control socket: the two kinds of listener have separate budgets. */
static void test_tcp_flood_spares_unix(void **state)
{
    struct net_server_config cfg = {.max_connections = 2};
    struct fx *f = *state = fx_new(&cfg);
    char path[96], err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/net-tls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/ctl.sock", f->dir);
    assert_int_equal(net_server_listen_unix(f->s, path, 0600, err, sizeof(err)), 0);

    int flood[2] = {raw_tcp(&f->addr), raw_tcp(&f->addr)}; /* never handshake */
    assert_true(th_wait_conns(&f->loop, f->s, 2));

    struct th_conn_result cr = {0};
    net_client *local = NULL;
    assert_int_equal(net_client_connect_unix(&f->loop, path, 3000, th_on_connect, &cr, &local), 0);
    assert_true(th_run_until(&f->loop, &cr.done, 5000));
    if (cr.status != 0)
        fprintf(stderr, "unix connect: %s\n", cr.error);
    assert_int_equal(cr.status, 0);
    struct th_reply r;
    call(f, local, "Test.Local", NULL, 0, &r);
    assert_int_equal(r.status, 0);
    net_client_close(local);

    /* and the TCP budget itself still holds: a third TCP peer is refused */
    struct th_conn_result cr3;
    net_client *third = NULL;
    assert_true(tls_connect(f, G.worker_ctx, &cr3, &third) < 0);
    net_client_close(third);

    close(flood[0]);
    close(flood[1]);
}

static void test_idle_timeout(void **state)
{
    struct net_server_config cfg = {.idle_timeout_ms = 100};
    struct fx *f = *state = fx_new(&cfg);
    net_client *idle = connect_ok(f, G.worker_ctx);
    net_client *streaming = connect_ok(f, G.worker_ctx);
    struct th_reply hang = {0};
    assert_int_equal(net_client_call(streaming, "Test.Hang", NULL, 0, th_on_reply, &hang, NULL), 0);
    assert_true(th_wait_conns(&f->loop, f->s, 1));
    th_run_for(&f->loop, 250); /* well past the idle timeout: the open stream keeps it */
    assert_int_equal(net_server_connections(f->s), 1);
    assert_false(atomic_load(&hang.done));
    struct th_reply r = {0};
    assert_int_equal(net_client_call(idle, "Test.Echo", NULL, 0, th_on_reply, &r, NULL), -EPIPE);
    net_client_close(idle);
    net_client_close(streaming);
    assert_int_equal(hang.status, -ECANCELED);
}

static void test_connect_timeout(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    /* a listener that never answers the TLS handshake */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    socklen_t sl = sizeof(sin);
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    struct sw_addr mute = f->addr;
    mute.port = ntohs(sin.sin_port);

    struct th_conn_result cr = {0};
    net_client *c = NULL;
    assert_int_equal(
        net_client_connect_tcp(&f->loop, &mute, G.worker_ctx, 100, th_on_connect, &cr, &c), 0);
    assert_true(th_run_until(&f->loop, &cr.done, 3000));
    assert_int_equal(cr.status, -ETIMEDOUT);
    net_client_close(c);

    /* connection refused */
    close(lfd);
    memset(&cr, 0, sizeof(cr));
    assert_int_equal(
        net_client_connect_tcp(&f->loop, &mute, G.worker_ctx, 1000, th_on_connect, &cr, &c), 0);
    assert_true(th_run_until(&f->loop, &cr.done, 3000));
    assert_int_equal(cr.status, -ECONNREFUSED);
    net_client_close(c);
    th_run_for(&f->loop, 10);
}

/* Server shuts down with calls in flight on several connections. */
static void test_server_close_in_flight(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *a = connect_ok(f, G.worker_ctx);
    net_client *b = connect_ok(f, G.manager_ctx);
    struct th_reply ra = {0}, rb = {0}, rd = {0};
    atomic_store(&th_hang_gone, 0);
    assert_int_equal(
        net_client_call(a, "Test.Hang", (const uint8_t *)"m", 1, th_on_reply, &ra, NULL), 0);
    assert_int_equal(net_client_call(b, "Test.Hang", NULL, 0, th_on_reply, &rb, NULL), 0);
    assert_int_equal(net_client_call(b, "Test.Deferred", NULL, 0, th_on_reply, &rd, NULL), 0);
    th_run_for(&f->loop, 5);
    atomic_bool closed = false;
    net_server_close(f->s, th_server_closed, &closed);
    f->s = NULL;
    assert_true(th_run_until(&f->loop, &closed, 3000));
    assert_int_equal(atomic_load(&th_hang_gone), 2);
    assert_true(th_run_until(&f->loop, &ra.done, 3000));
    assert_true(th_run_until(&f->loop, &rb.done, 3000));
    assert_true(th_run_until(&f->loop, &rd.done, 3000));
    assert_true(ra.status < 0 && rb.status < 0 && rd.status < 0);
    assert_int_equal(ra.n_msgs, 1);
    th_run_for(&f->loop, 50);
    net_client_close(a);
    net_client_close(b);
    th_run_for(&f->loop, 10);
}

/* Certificate renewal: new connections get the new context, open ones keep working. */
static void test_tls_ctx_swap(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    net_client *before = connect_ok(f, G.worker_ctx);
    /* the server now presents the manager certificate */
    const char *bundle = pki_ca_cert_pem(G.ca);
    SSL_CTX *ctx = NULL;
    char err[256];
    assert_int_equal(
        pki_tls_server_ctx(bundle, strlen(bundle), G.manager.pem, strlen(G.manager.pem),
                           G.manager.key, &ctx, err, sizeof(err)),
        0);
    net_server_set_tls_ctx(f->s, ctx);
    pki_tls_ctx_free(ctx); /* the server holds its own reference */
    net_client *after = connect_ok(f, G.worker_ctx);
    assert_string_equal(net_client_server_peer(after)->id.node_id, G.manager.node_id);
    assert_string_equal(net_client_server_peer(before)->id.node_id, G.server.node_id);
    struct th_reply r;
    call(f, before, "Test.Echo", "old", 3, &r);
    assert_payload(&r, "old");
    call(f, after, "Test.Echo", "new", 3, &r);
    assert_payload(&r, "new");
    net_client_close(before);
    net_client_close(after);
}

static void test_ipv6(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    struct sw_addr any6, bound;
    char err[256];
    assert_int_equal(sw_addr_parse("[::1]:0", -1, 1, &any6), 0);
    int r = net_server_listen_tcp(f->s, &any6, G.server_ctx, &bound, err, sizeof(err));
    if (r < 0) {
        skip(); /* no IPv6 loopback here */
        return;
    }
    assert_int_equal(bound.family, AF_INET6);
    assert_true(bound.port != 0);
    struct th_conn_result cr;
    net_client *c = NULL;
    memset(&cr, 0, sizeof(cr));
    assert_int_equal(
        net_client_connect_tcp(&f->loop, &bound, G.manager_ctx, 3000, th_on_connect, &cr, &c), 0);
    assert_true(th_run_until(&f->loop, &cr.done, 5000));
    assert_int_equal(cr.status, 0);
    struct th_reply rep;
    call(f, c, "Test.WhoAmI", NULL, 0, &rep);
    assert_int_equal(rep.status, 0);
    net_client_close(c);

    /* a port already in use: a clear error */
    r = net_server_listen_tcp(f->s, &bound, G.server_ctx, NULL, err, sizeof(err));
    assert_true(r < 0);
    assert_non_null(strstr(err, "cannot listen on [::1]:"));
}

/* ---------------------------------------------------------------- blocking TLS client */

static void sync_thread(struct th_job *j)
{
    net_sync *c = NULL;
    int status;
    char err[300];
    uint8_t *out = NULL;
    size_t len = 0;

    if (net_sync_connect_tcp(&j->addr, G.manager_ctx, 3000, &c, j->err, sizeof(j->err)) < 0) {
        j->failures += 100;
        return;
    }
    if (net_sync_call(c, "Control.ListNodes", NULL, 0, &status, err, sizeof(err), &out, &len) < 0 ||
        status != 0 || len < 5 || memcmp(out, "node:", 5) != 0)
        j->failures++;
    free(out);
    out = NULL;
    if (net_sync_call(c, "Test.Echo", (const uint8_t *)"tls", 3, &status, err, sizeof(err), &out,
                      &len) < 0 ||
        status != 0 || len != 3)
        j->failures++;
    free(out);
    out = NULL;
    net_sync_close(c);
    c = NULL;

    /* anonymous: denied, with the server's reason */
    if (net_sync_connect_tcp(&j->addr, G.anon_ctx, 3000, &c, j->err, sizeof(j->err)) < 0) {
        j->failures += 100;
        return;
    }
    if (net_sync_call(c, "Control.ListNodes", NULL, 0, &status, err, sizeof(err), &out, &len) < 0 ||
        status != -EPERM || strcmp(err, "Control.ListNodes requires a manager certificate") != 0)
        j->failures++;
    free(out);
    net_sync_close(c);
    c = NULL;

    /* a call the server never answers: the per-call timeout */
    if (net_sync_connect_tcp(&j->addr, G.worker_ctx, 200, &c, j->err, sizeof(j->err)) < 0) {
        j->failures += 100;
        return;
    }
    out = NULL;
    if (net_sync_call(c, "Test.Hang", NULL, 0, &status, err, sizeof(err), &out, &len) !=
            -ETIMEDOUT ||
        !strstr(err, "no answer within 200 ms")) {
        snprintf(j->err, sizeof(j->err), "hang: %.200s", err);
        j->failures++;
    }
    net_sync_close(c);
    c = NULL;

    /* foreign CA: the connect fails with a TLS reason */
    if (net_sync_connect_tcp(&j->addr, G.foreign_ctx, 3000, &c, err, sizeof(err)) >= 0 ||
        !strstr(err, "TLS")) {
        snprintf(j->err, sizeof(j->err), "foreign: %.200s", err);
        j->failures++;
    }
    net_sync_close(c);
}

static void test_sync_tls(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    struct th_job j = {.fn = sync_thread, .addr = f->addr};
    th_run_job(&f->loop, &j, 20000);
}

/* ---------------------------------------------------------------- server expectations */

/* Connect with an expectation of the server's certificate. */
static int expect_connect(struct fx *f, const struct net_expect *e, struct th_conn_result *cr,
                          net_client **ret)
{
    memset(cr, 0, sizeof(*cr));
    assert_int_equal(net_client_connect_tcp_expect(&f->loop, &f->addr, G.worker_ctx, e, 3000,
                                                   th_on_connect, cr, ret),
                     0);
    assert_true(th_run_until(&f->loop, &cr->done, 5000));
    return cr->status;
}

static void expect_sync_job(struct th_job *j)
{
    struct net_expect manager = {.cluster_id = G.cluster, .manager = true};
    net_sync *c = NULL;
    int r = net_sync_connect_tcp_expect(&j->addr, G.worker_ctx, &manager, 3000, &c, j->err,
                                        sizeof(j->err));
    if (r != -EPERM || !strstr(j->err, "worker certificate, not a manager's"))
        j->failures++;
    net_sync_close(c);
    c = NULL;
    struct net_expect any_role = {.cluster_id = G.cluster};
    if (net_sync_connect_tcp_expect(&j->addr, G.worker_ctx, &any_role, 3000, &c, j->err,
                                    sizeof(j->err)) < 0)
        j->failures++;
    net_sync_close(c);
}

/* Every node's certificate chains to the cluster root: a client that must reach a manager
 * of its cluster checks the server's role and cluster too. */
static void test_server_expectation(void **state)
{
    struct fx *f = *state = fx_new(NULL);
    char other[SW_ID_LEN + 1];
    struct th_conn_result cr;
    net_client *c = NULL;

    struct net_expect manager = {.cluster_id = G.cluster, .manager = true};
    assert_int_equal(expect_connect(f, &manager, &cr, &c), 0);
    assert_string_equal(net_client_server_peer(c)->id.node_id, G.server.node_id);
    net_client_close(c);

    assert_int_equal(sw_id_generate(other), 0);
    struct net_expect elsewhere = {.cluster_id = other, .manager = true};
    assert_int_equal(expect_connect(f, &elsewhere, &cr, &c), -EPERM);
    assert_non_null(strstr(cr.error, "the server's certificate is of another cluster"));
    net_client_close(c);

    /* the server now presents a worker's certificate */
    const char *bundle = pki_ca_cert_pem(G.ca);
    SSL_CTX *ctx = NULL;
    char err[256];
    assert_int_equal(pki_tls_server_ctx(bundle, strlen(bundle), G.worker.pem, strlen(G.worker.pem),
                                        G.worker.key, &ctx, err, sizeof(err)),
                     0);
    net_server_set_tls_ctx(f->s, ctx);
    pki_tls_ctx_free(ctx);
    assert_int_equal(expect_connect(f, &manager, &cr, &c), -EPERM);
    assert_non_null(
        strstr(cr.error, "the server's certificate is a worker certificate, not a manager's"));
    net_client_close(c);
    struct net_expect any_role = {.cluster_id = G.cluster};
    assert_int_equal(expect_connect(f, &any_role, &cr, &c), 0);
    net_client_close(c);
    assert_int_equal(expect_connect(f, NULL, &cr, &c), 0); /* no expectation: as before */
    net_client_close(c);

    struct th_job j = {.fn = expect_sync_job, .addr = f->addr};
    th_run_job(&f->loop, &j, 10000);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_identity_and_auth, fx_teardown),
        cmocka_unit_test_teardown(test_refused_certificates, fx_teardown),
        cmocka_unit_test_teardown(test_authorize_hook, fx_teardown),
        cmocka_unit_test_teardown(test_streams_and_large, fx_teardown),
        cmocka_unit_test_teardown(test_oversize_frame, fx_teardown),
        cmocka_unit_test_teardown(test_anonymous_frame_cap, fx_teardown),
        cmocka_unit_test_teardown(test_handshake_limits, fx_teardown),
        cmocka_unit_test_teardown(test_tcp_flood_spares_unix, fx_teardown),
        cmocka_unit_test_teardown(test_idle_timeout, fx_teardown),
        cmocka_unit_test_teardown(test_connect_timeout, fx_teardown),
        cmocka_unit_test_teardown(test_server_close_in_flight, fx_teardown),
        cmocka_unit_test_teardown(test_tls_ctx_swap, fx_teardown),
        cmocka_unit_test_teardown(test_ipv6, fx_teardown),
        cmocka_unit_test_teardown(test_sync_tls, fx_teardown),
        cmocka_unit_test_teardown(test_server_expectation, fx_teardown),
        cmocka_unit_test_teardown(test_raw_stream, fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
