/* bench-raft write load: N clients on one libuv loop, each with one write in flight, against
 * swarmd's control socket (Control.CreateSecret) or etcd's gRPC-JSON gateway (kv/put). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bench/raft.h"
#include "common/swtime.h"
#include "net/rpc.h"

#define LOAD_GRACE_MS 30000 /* after the duration, in-flight writes get this long */
#define CONNECT_TIMEOUT_MS 5000
#define RETRY_MS 10 /* a write answered with an error is retried after this long */

/* What both kinds of load share: the loop, the clock and the samples. */
struct load {
    uv_loop_t loop;
    uv_timer_t guard; /* ends everything if answers stop coming */
    unsigned n, connected, open;
    uint64_t t0, deadline, t_last;
    bool started, failed;
    uint64_t *lat;
    size_t nlat, cap;
    uint64_t errors;
    char first_error[160];
    char conn_error[200];
    const char *prefix;
    uint64_t max_ok; /* stop issuing after this many acknowledged writes (0: no limit) */
    uint8_t *data;
    size_t payload;
};

static void note_error(struct load *L, const char *what)
{
    L->errors++;
    if (!L->first_error[0])
        snprintf(L->first_error, sizeof(L->first_error), "%s", what);
}

static void record(struct load *L, uint64_t ns)
{
    if (L->nlat == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 4096;
        uint64_t *v = realloc(L->lat, cap * sizeof(*v));
        if (!v) {
            note_error(L, "out of memory for samples");
            return;
        }
        L->lat = v;
        L->cap = cap;
    }
    L->lat[L->nlat++] = ns;
}

static int load_init(struct load *L, unsigned clients, size_t payload, const char *prefix)
{
    memset(L, 0, sizeof(*L));
    L->n = clients;
    L->prefix = prefix;
    L->payload = payload;
    L->data = malloc(payload ? payload : 1);
    if (!L->data)
        return -ENOMEM;
    for (size_t i = 0; i < payload; i++)
        L->data[i] = (uint8_t)('a' + (i * 7 + 3) % 26);
    int r = uv_loop_init(&L->loop);
    if (r < 0) {
        free(L->data);
        return r;
    }
    uv_timer_init(&L->loop, &L->guard);
    return 0;
}

static void load_result_fill(struct load *L, struct load_result *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->ok = L->nlat;
    ret->errors = L->errors;
    ret->secs = L->started ? (double)(L->t_last - L->t0) / 1e9 : 0;
    if (L->nlat) {
        qsort(L->lat, L->nlat, sizeof(*L->lat), cmp_u64);
        ret->p50_ms = (double)L->lat[L->nlat / 2] / 1e6;
        size_t i99 = (L->nlat * 99) / 100;
        ret->p99_ms = (double)L->lat[i99 < L->nlat ? i99 : L->nlat - 1] / 1e6;
    }
    snprintf(ret->first_error, sizeof(ret->first_error), "%s", L->first_error);
}

static void load_fini(struct load *L)
{
    uv_close((uv_handle_t *)&L->guard, NULL);
    uv_run(&L->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&L->loop) < 0)
        fprintf(stderr, "bench-raft: a load loop still had handles open\n");
    free(L->lat);
    free(L->data);
}

static bool load_running(struct load *L)
{
    return !L->failed && sw_now_monotonic_ns() < L->deadline && (!L->max_ok || L->nlat < L->max_ok);
}

/* ------------------------------------------------------------------ swarmd */

struct sclient {
    struct load *L;
    net_client *c;
    uv_timer_t retry;
    unsigned idx;
    uint64_t seq, t_sent;
    bool closed;
};

static void s_close(struct sclient *s)
{
    if (s->closed)
        return;
    s->closed = true;
    s->L->open--;
    if (s->L->open == 0)
        uv_timer_stop(&s->L->guard);
    uv_close((uv_handle_t *)&s->retry, NULL);
    net_client_close(s->c);
}

static void s_issue(struct sclient *s);

static void s_retry(uv_timer_t *t)
{
    struct sclient *s = t->data;
    if (s->closed)
        return;
    if (load_running(s->L))
        s_issue(s);
    else
        s_close(s);
}

static void s_reply(net_client *c, int status, const char *error, const uint8_t *payload,
                    size_t len, bool final, void *userdata)
{
    (void)c;
    (void)payload;
    (void)len;
    struct sclient *s = userdata;
    if (!final)
        return;
    uint64_t now = sw_now_monotonic_ns();
    s->L->t_last = now;
    if (status == 0) {
        record(s->L, now - s->t_sent);
    } else {
        char why[160];
        snprintf(why, sizeof(why), "%s", error ? error : strerror(-status));
        note_error(s->L, why);
        if (status == -EPIPE || status == -ECANCELED) {
            s_close(s);
            return;
        }
        uv_timer_start(&s->retry, s_retry, RETRY_MS, 0);
        return;
    }
    if (load_running(s->L))
        s_issue(s);
    else
        s_close(s);
}

static void s_issue(struct sclient *s)
{
    char name[64];
    snprintf(name, sizeof(name), "%s-%u-%llu", s->L->prefix, s->idx, (unsigned long long)s->seq++);
    Swarm__CreateSecretRequest req = SWARM__CREATE_SECRET_REQUEST__INIT;
    req.name = name;
    req.data.data = s->L->data;
    req.data.len = s->L->payload;
    uint8_t buf[1024];
    size_t n = swarm__create_secret_request__get_packed_size(&req);
    if (n > sizeof(buf)) {
        note_error(s->L, "payload too large for the bench's buffer");
        s_close(s);
        return;
    }
    swarm__create_secret_request__pack(&req, buf);
    s->t_sent = sw_now_monotonic_ns();
    int r = net_client_call(s->c, "Control.CreateSecret", buf, n, s_reply, s, NULL);
    if (r < 0) {
        char why[96];
        snprintf(why, sizeof(why), "call: %s", strerror(-r));
        note_error(s->L, why);
        s_close(s);
    }
}

static void on_guard(uv_timer_t *t)
{
    struct load *L = t->data;
    note_error(L, "writes stopped being answered");
    L->failed = true;
    uv_stop(&L->loop);
}

static void s_connected(net_client *c, int status, const char *error, void *userdata)
{
    (void)c;
    struct sclient *s = userdata;
    struct load *L = s->L;
    if (status < 0) {
        if (!L->conn_error[0])
            snprintf(L->conn_error, sizeof(L->conn_error), "connect: %s",
                     error ? error : strerror(-status));
        L->failed = true;
        s_close(s);
        return;
    }
    L->connected++;
}

int load_swarmd(const char *sock, unsigned clients, double secs, uint64_t max_ok, size_t payload,
                const char *prefix, struct load_result *ret, char *errmsg, size_t errmsg_size)
{
    struct load L;
    int r = load_init(&L, clients, payload, prefix);
    L.max_ok = max_ok;
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "loop: %s", strerror(-r));
        return r;
    }
    struct sclient *cl = calloc(clients, sizeof(*cl));
    if (!cl) {
        load_fini(&L);
        snprintf(errmsg, errmsg_size, "out of memory");
        return -ENOMEM;
    }
    L.guard.data = &L;
    for (unsigned i = 0; i < clients; i++) {
        cl[i].L = &L;
        cl[i].idx = i;
        uv_timer_init(&L.loop, &cl[i].retry);
        cl[i].retry.data = &cl[i];
        L.open++;
        r = net_client_connect_unix(&L.loop, sock, CONNECT_TIMEOUT_MS, s_connected, &cl[i],
                                    &cl[i].c);
        if (r < 0) {
            L.open--;
            cl[i].closed = true;
            uv_close((uv_handle_t *)&cl[i].retry, NULL);
            snprintf(L.conn_error, sizeof(L.conn_error), "connect %s: %s", sock, strerror(-r));
            L.failed = true;
            for (unsigned j = i + 1; j < clients; j++)
                cl[j].closed = true;
            break;
        }
    }
    /* Connect every client first, then start the clock. */
    while (!L.failed && L.connected < clients && uv_run(&L.loop, UV_RUN_ONCE))
        ;
    if (!L.failed) {
        L.started = true;
        L.t0 = L.t_last = sw_now_monotonic_ns();
        L.deadline = L.t0 + (uint64_t)(secs * 1e9);
        uv_timer_start(&L.guard, on_guard, (uint64_t)(secs * 1000) + LOAD_GRACE_MS, 0);
        for (unsigned i = 0; i < clients; i++)
            s_issue(&cl[i]);
        uv_run(&L.loop, UV_RUN_DEFAULT);
    }
    for (unsigned i = 0; i < clients; i++)
        if (!cl[i].closed)
            s_close(&cl[i]);
    load_result_fill(&L, ret);
    r = L.failed && L.conn_error[0] ? -ECONNREFUSED : L.failed ? -ETIMEDOUT : 0;
    if (r < 0)
        snprintf(errmsg, errmsg_size, "%s", L.conn_error[0] ? L.conn_error : L.first_error);
    load_fini(&L);
    free(cl);
    return r;
}

/* ------------------------------------------------------------------ etcd (HTTP/1.1 + JSON) */

#define HTTP_BUF 8192

struct eclient {
    struct load *L;
    uv_tcp_t tcp;
    uv_timer_t retry;
    uv_connect_t conn;
    uv_write_t wr;
    unsigned idx, port;
    uint64_t seq, t_sent;
    bool closed, busy;
    char req[1024];
    char in[HTTP_BUF];
    size_t in_len;
};

static void b64(const uint8_t *src, size_t n, char *dst)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)src[i + 1] << 8;
        if (i + 2 < n)
            v |= src[i + 2];
        dst[o++] = tbl[(v >> 18) & 63];
        dst[o++] = tbl[(v >> 12) & 63];
        dst[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        dst[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    dst[o] = '\0';
}

static void e_closed(uv_handle_t *h)
{
    (void)h;
}

static void e_close(struct eclient *e)
{
    if (e->closed)
        return;
    e->closed = true;
    e->L->open--;
    if (e->L->open == 0)
        uv_timer_stop(&e->L->guard);
    uv_close((uv_handle_t *)&e->tcp, e_closed);
    uv_close((uv_handle_t *)&e->retry, NULL);
}

static void e_written(uv_write_t *w, int status)
{
    struct eclient *e = w->data;
    if (status < 0 && !e->closed) {
        char why[96];
        snprintf(why, sizeof(why), "write: %s", uv_strerror(status));
        note_error(e->L, why);
        e_close(e);
    }
}

static void e_issue(struct eclient *e)
{
    char key[96], k64[140], v64[700 * 4 / 3 + 8];
    int kn = snprintf(key, sizeof(key), "%s/%u/%llu", e->L->prefix, e->idx,
                      (unsigned long long)e->seq++);
    b64((const uint8_t *)key, (size_t)kn, k64);
    b64(e->L->data, e->L->payload, v64);
    char body[1024];
    int bn = snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64);
    int n = snprintf(e->req, sizeof(e->req),
                     "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     e->port, bn, body);
    if (bn < 0 || (size_t)bn >= sizeof(body) || n < 0 || (size_t)n >= sizeof(e->req)) {
        note_error(e->L, "request too large for the bench's buffer");
        e_close(e);
        return;
    }
    uv_buf_t b = uv_buf_init(e->req, (unsigned)n);
    e->wr.data = e;
    e->busy = true;
    e->t_sent = sw_now_monotonic_ns();
    int r = uv_write(&e->wr, (uv_stream_t *)&e->tcp, &b, 1, e_written);
    if (r < 0) {
        note_error(e->L, uv_strerror(r));
        e_close(e);
    }
}

static void e_retry(uv_timer_t *t)
{
    struct eclient *e = t->data;
    if (e->closed)
        return;
    if (load_running(e->L))
        e_issue(e);
    else
        e_close(e);
}

static void e_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct eclient *e = h->data;
    *buf = uv_buf_init(e->in + e->in_len, (unsigned)(sizeof(e->in) - e->in_len));
}

/* Length of one complete HTTP response at the start of in (0: not complete yet, -1: bad);
 * *status gets its code. Content-Length or chunked bodies. */
static long http_response(const char *in, size_t len, int *status)
{
    const char *end = memmem(in, len, "\r\n\r\n", 4);
    if (!end)
        return len >= HTTP_BUF ? -1 : 0;
    size_t hlen = (size_t)(end - in) + 4;
    if (len < 12 || memcmp(in, "HTTP/1.", 7) != 0)
        return -1;
    *status = (in[9] - '0') * 100 + (in[10] - '0') * 10 + (in[11] - '0');
    const char *cl = memmem(in, hlen, "\r\nContent-Length:", 17);
    if (!cl)
        cl = memmem(in, hlen, "\r\ncontent-length:", 17);
    if (cl) {
        long body = strtol(cl + 17, NULL, 10);
        return len >= hlen + (size_t)body ? (long)(hlen + (size_t)body) : 0;
    }
    if (!memmem(in, hlen, "chunked", 7))
        return -1;
    size_t off = hlen;
    for (;;) { /* size CRLF data CRLF ... 0 CRLF CRLF */
        const char *crlf = memmem(in + off, len - off, "\r\n", 2);
        if (!crlf)
            return 0;
        long sz = strtol(in + off, NULL, 16);
        off = (size_t)(crlf - in) + 2 + (size_t)sz + 2;
        if (off > len)
            return 0;
        if (sz == 0)
            return (long)off;
    }
}

static void e_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct eclient *e = st->data;
    if (n < 0) {
        if (e->busy)
            note_error(e->L, n == UV_EOF ? "etcd closed the connection" : uv_strerror((int)n));
        e_close(e);
        return;
    }
    e->in_len += (size_t)n;
    int status = 0;
    long used = http_response(e->in, e->in_len, &status);
    if (used == 0)
        return;
    if (used < 0) {
        note_error(e->L, "malformed HTTP response from etcd");
        e_close(e);
        return;
    }
    uint64_t now = sw_now_monotonic_ns();
    e->L->t_last = now;
    e->busy = false;
    if (status == 200) {
        record(e->L, now - e->t_sent);
    } else {
        char why[160];
        snprintf(why, sizeof(why), "HTTP %d: %.100s", status, e->in + strcspn(e->in, "\n") + 1);
        note_error(e->L, why);
    }
    memmove(e->in, e->in + used, e->in_len - (size_t)used);
    e->in_len -= (size_t)used;
    if (status != 200 && !e->closed)
        uv_timer_start(&e->retry, e_retry, RETRY_MS, 0);
    else if (load_running(e->L))
        e_issue(e);
    else
        e_close(e);
}

static void e_connected(uv_connect_t *req, int status)
{
    struct eclient *e = req->data;
    struct load *L = e->L;
    if (status < 0) {
        if (!L->conn_error[0])
            snprintf(L->conn_error, sizeof(L->conn_error), "connect 127.0.0.1:%u: %s", e->port,
                     uv_strerror(status));
        L->failed = true;
        e_close(e);
        return;
    }
    uv_tcp_nodelay(&e->tcp, 1);
    uv_read_start((uv_stream_t *)&e->tcp, e_alloc, e_read);
    L->connected++;
}

int load_etcd(unsigned port, unsigned clients, double secs, size_t payload, const char *prefix,
              struct load_result *ret, char *errmsg, size_t errmsg_size)
{
    struct load L;
    if (payload > 500) {
        snprintf(errmsg, errmsg_size, "etcd payload at most 500 bytes here");
        return -EINVAL;
    }
    int r = load_init(&L, clients, payload, prefix);
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "loop: %s", strerror(-r));
        return r;
    }
    struct eclient *cl = calloc(clients, sizeof(*cl));
    if (!cl) {
        load_fini(&L);
        snprintf(errmsg, errmsg_size, "out of memory");
        return -ENOMEM;
    }
    L.guard.data = &L;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", (int)port, &sa);
    for (unsigned i = 0; i < clients; i++) {
        struct eclient *e = &cl[i];
        e->L = &L;
        e->idx = i;
        e->port = port;
        uv_tcp_init(&L.loop, &e->tcp);
        uv_timer_init(&L.loop, &e->retry);
        e->retry.data = e;
        e->tcp.data = e;
        e->conn.data = e;
        L.open++;
        r = uv_tcp_connect(&e->conn, &e->tcp, (const struct sockaddr *)&sa, e_connected);
        if (r < 0) {
            snprintf(L.conn_error, sizeof(L.conn_error), "connect: %s", uv_strerror(r));
            L.failed = true;
            e_close(e);
            for (unsigned j = i + 1; j < clients; j++)
                cl[j].closed = true;
            break;
        }
    }
    uv_timer_start(&L.guard, on_guard, CONNECT_TIMEOUT_MS, 0);
    while (!L.failed && L.connected < clients && uv_run(&L.loop, UV_RUN_ONCE))
        ;
    if (!L.failed) {
        L.started = true;
        L.t0 = L.t_last = sw_now_monotonic_ns();
        L.deadline = L.t0 + (uint64_t)(secs * 1e9);
        uv_timer_start(&L.guard, on_guard, (uint64_t)(secs * 1000) + LOAD_GRACE_MS, 0);
        for (unsigned i = 0; i < clients; i++)
            e_issue(&cl[i]);
        uv_run(&L.loop, UV_RUN_DEFAULT);
    }
    for (unsigned i = 0; i < clients; i++)
        if (!cl[i].closed)
            e_close(&cl[i]);
    load_result_fill(&L, ret);
    r = L.failed && L.conn_error[0] ? -ECONNREFUSED : L.failed ? -ETIMEDOUT : 0;
    if (r < 0)
        snprintf(errmsg, errmsg_size, "%s", L.conn_error[0] ? L.conn_error : L.first_error);
    load_fini(&L);
    free(cl);
    return r;
}
