/* attack: the attacker's client for the security tests (tests/security/): joins with a chosen
 * CSR, skips the CA pinning, calls any method with or without a certificate, and holds a
 * dispatcher session printing every assignment (secrets included) it is sent.
 *
 *   attack join [--no-pin] [--csr F --key F] [--hostname H] [--rejoin ID] ADDR TOKEN OUTDIR
 *       GetRootCA (pinned against the token unless --no-pin), then IssueNodeCertificate with
 *       the CSR (default: a fresh key's), asking to keep node ID with --rejoin; prints "node=<id>
 * role=<role>", writes OUTDIR/node.crt node.key ca.crt. Refusal: "refused: <error>" on stderr,
 * exit 1. attack call [--cert F --key F] [--ca F] [--payload-size N] [--renew-csr F --out F] ADDR
 * METHOD... one connection and one call per METHOD; prints "METHOD status=<n> error=<text>", or
 *       "METHOD connect-error=<text>" when the server refuses the connection. Without --ca
 *       the server is not verified. --payload-size: N zero bytes; --renew-csr: a
 *       RenewNodeCertificateRequest, the returned certificate written to --out.
 *       --pause FILE: all calls on ONE connection; after the first, print "paused" and wait
 *       (60 s at most) until FILE exists, then make the others (a connection held open
 *       across a change made meanwhile: a demotion, a removal).
 *   attack session [--seconds N] [--report TASK_ID:STATE] ADDR CERT KEY CA
 *       Dispatcher.Session with heartbeats; prints "session id=<id>", then per assignment
 *       "task id=<id> node=<node> service=<id> action=<n>" or
 *       "secret id=<id> name=<name> data=<bytes> action=<n>"; after the first message sends
 *       the --report status updates and prints "report status=<n> error=<text>". Exits after
 *       N seconds (default 60) or when the manager ends the session ("ended status=<n>").
 * Exit 0 on a completed run, 1 on a failed operation, 2 on usage. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "net/rpc.h"
#include "pki/pki.h"
#include "proto/frame.h"

#define TIMEOUT_MS 5000
#define FILE_MAX (1u << 20)

static int die(const char *what, const char *msg)
{
    fprintf(stderr, "attack: %s: %s\n", what, msg);
    return 1;
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len;
    if (!path || sw_read_file(path, FILE_MAX, &data, &len) < 0)
        return NULL;
    return data;
}

static int write_out(const char *dir, const char *name, const char *data, mode_t mode)
{
    char path[4096];
    if (sw_path_join(path, sizeof(path), dir, name) < 0)
        return -ENAMETOOLONG;
    return sw_write_file_atomic(path, data, strlen(data), mode);
}

/* ------------------------------------------------------------------ join */

static int sync_call(const struct sw_addr *addr, SSL_CTX *ctx, const char *method,
                     const ProtobufCMessage *req, int *status, char *err, size_t errsize,
                     uint8_t **out, size_t *out_len)
{
    net_sync *c = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = net_sync_connect_tcp(addr, ctx, TIMEOUT_MS, &c, err, errsize);
    if (r < 0)
        return r;
    if (req && proto_pack(req, &buf, &len) < 0) {
        net_sync_close(c);
        return -ENOMEM;
    }
    r = net_sync_call(c, method, buf, len, status, err, errsize, out, out_len);
    free(buf);
    net_sync_close(c);
    return r;
}

static int do_join(int argc, char **argv)
{
    static const struct option opts[] = {
        {"no-pin", no_argument, NULL, 'n'},       {"csr", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},    {"hostname", required_argument, NULL, 'h'},
        {"rejoin", required_argument, NULL, 'r'}, {0}};
    bool pin = true;
    const char *csr_path = NULL, *key_path = NULL, *hostname = "attacker";
    const char *rejoin_id = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
            case 'n':
                pin = false;
                break;
            case 'c':
                csr_path = optarg;
                break;
            case 'k':
                key_path = optarg;
                break;
            case 'h':
                hostname = optarg;
                break;
            case 'r':
                rejoin_id = optarg;
                break;
            default:
                return 2;
        }
    }
    if (argc - optind != 3 || !csr_path != !key_path)
        return die("join", "usage: join [--no-pin] [--csr F --key F] ADDR TOKEN OUTDIR"), 2;
    const char *addr_s = argv[optind], *token = argv[optind + 1], *outdir = argv[optind + 2];

    struct sw_addr addr;
    char err[512] = "";
    SSL_CTX *ctx = NULL;
    int status = 0;
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (sw_addr_parse(addr_s, 2377, 0, &addr) < 0)
        return die("join", "bad address");
    if (pki_tls_client_ctx(NULL, 0, NULL, 0, NULL, &ctx, err, sizeof(err)) < 0)
        return die("tls", err);
    Swarm__GetRootCARequest rreq = SWARM__GET_ROOT_CAREQUEST__INIT;
    int r = sync_call(&addr, ctx, "CA.GetRootCA", &rreq.base, &status, err, sizeof(err), &out,
                      &out_len);
    if (r < 0 || status < 0)
        return die("GetRootCA", err);
    Swarm__GetRootCAResponse *ca = swarm__get_root_caresponse__unpack(NULL, out_len, out);
    free(out);
    if (!ca)
        return die("GetRootCA", "malformed response");
    if (pin) {
        struct pki_token t;
        char digest[PKI_TOKEN_DIGEST_LEN + 1];
        if (pki_token_parse(token, &t, err, sizeof(err)) < 0)
            return die("invalid token", err);
        pki_ca_digest(ca->ca_cert_pem, strlen(ca->ca_cert_pem), digest);
        if (strcmp(digest, t.digest) != 0)
            return die("join", "CA digest mismatch: no CSR sent");
        /* pinned: the second connection verifies the manager against that root */
        pki_tls_ctx_free(ctx);
        if (pki_tls_client_ctx(ca->ca_cert_pem, strlen(ca->ca_cert_pem), NULL, 0, NULL, &ctx, err,
                               sizeof(err)) < 0)
            return die("tls", err);
    }

    pki_key *key = NULL;
    _cleanup_free_ char *csr = NULL, *kpem = NULL;
    size_t klen;
    if (csr_path) {
        csr = slurp(csr_path);
        kpem = slurp(key_path);
        if (!csr || !kpem)
            return die("join", "cannot read the CSR or the key");
    } else {
        if (pki_key_generate(&key) < 0 || pki_csr_create(key, &csr) < 0 ||
            pki_key_to_pem(key, &kpem, &klen) < 0)
            return die("join", "cannot create a key");
        pki_key_free(key);
    }
    Swarm__IssueNodeCertificateRequest ireq = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    ireq.token = (char *)token;
    ireq.csr_pem = csr;
    ireq.hostname = (char *)hostname;
    ireq.addr = "127.0.0.1:1";
    if (rejoin_id)
        ireq.rejoin_node_id = (char *)rejoin_id;
    r = sync_call(&addr, ctx, "CA.IssueNodeCertificate", &ireq.base, &status, err, sizeof(err),
                  &out, &out_len);
    pki_tls_ctx_free(ctx);
    if (r < 0)
        return die("IssueNodeCertificate", err);
    if (status < 0) {
        fprintf(stderr, "refused: %s\n", err);
        return 1;
    }
    Swarm__IssueNodeCertificateResponse *resp =
        swarm__issue_node_certificate_response__unpack(NULL, out_len, out);
    free(out);
    if (!resp)
        return die("IssueNodeCertificate", "malformed response");
    struct pki_identity id;
    if (pki_identity_from_pem(resp->cert_pem, strlen(resp->cert_pem), &id) < 0)
        return die("issued certificate", "not a swarm node certificate");
    printf("node=%s role=%s\n", id.node_id, id.role == PKI_ROLE_MANAGER ? "manager" : "worker");
    sw_mkdir_p(outdir, 0700);
    if (write_out(outdir, "node.crt", resp->cert_pem, 0644) < 0 ||
        write_out(outdir, "node.key", kpem, 0600) < 0 ||
        write_out(outdir, "ca.crt", ca->ca_cert_pem, 0644) < 0)
        return die("join", "cannot write the certificate files");
    swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
    swarm__get_root_caresponse__free_unpacked(ca, NULL);
    return 0;
}

/* ------------------------------------------------------------------ call */

/* A TLS client context: server verified against ca_path (or not), client certificate
 * from cert_path/key_path (or none). */
static int client_ctx(const char *ca_path, const char *cert_path, const char *key_path,
                      SSL_CTX **ret, char *err, size_t errsize)
{
    _cleanup_free_ char *ca = NULL, *cert = NULL, *kpem = NULL;
    pki_key *key = NULL;
    if ((ca_path && !(ca = slurp(ca_path))) || (cert_path && !(cert = slurp(cert_path))) ||
        (key_path && !(kpem = slurp(key_path)))) {
        snprintf(err, errsize, "cannot read a certificate, key or CA file");
        return -ENOENT;
    }
    if (kpem && pki_key_from_pem(kpem, strlen(kpem), &key) < 0) {
        snprintf(err, errsize, "cannot parse the key");
        return -EINVAL;
    }
    int r = pki_tls_client_ctx(ca, ca ? strlen(ca) : 0, cert, cert ? strlen(cert) : 0, key, ret,
                               err, errsize);
    pki_key_free(key);
    return r;
}

static int do_call(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cert", required_argument, NULL, 'c'},      {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},        {"payload-size", required_argument, NULL, 'p'},
        {"renew-csr", required_argument, NULL, 'r'}, {"out", required_argument, NULL, 'o'},
        {"pause", required_argument, NULL, 'w'},     {0}};
    const char *cert_path = NULL, *key_path = NULL, *ca_path = NULL, *renew = NULL, *outp = NULL;
    const char *pause = NULL;
    size_t payload_size = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
            case 'c':
                cert_path = optarg;
                break;
            case 'k':
                key_path = optarg;
                break;
            case 'a':
                ca_path = optarg;
                break;
            case 'p':
                payload_size = strtoul(optarg, NULL, 10);
                break;
            case 'r':
                renew = optarg;
                break;
            case 'o':
                outp = optarg;
                break;
            case 'w':
                pause = optarg;
                break;
            default:
                return 2;
        }
    }
    if (argc - optind < 2 || !cert_path != !key_path)
        return die("call", "usage: call [--cert F --key F] [--ca F] ADDR METHOD..."), 2;
    struct sw_addr addr;
    if (sw_addr_parse(argv[optind], 2377, 0, &addr) < 0)
        return die("call", "bad address");
    char err[512] = "";
    SSL_CTX *ctx = NULL;
    if (client_ctx(ca_path, cert_path, key_path, &ctx, err, sizeof(err)) < 0)
        return die("tls", err);

    _cleanup_free_ uint8_t *payload = NULL;
    size_t len = payload_size;
    if (renew) {
        _cleanup_free_ char *csr = slurp(renew);
        if (!csr)
            return die("call", "cannot read the CSR");
        Swarm__RenewNodeCertificateRequest req = SWARM__RENEW_NODE_CERTIFICATE_REQUEST__INIT;
        req.csr_pem = csr;
        if (proto_pack(&req.base, &payload, &len) < 0)
            return die("call", "out of memory");
    } else if (payload_size) {
        payload = calloc(1, payload_size);
        if (!payload)
            return die("call", "out of memory");
    }
    net_sync *held = NULL;
    for (int i = optind + 1; i < argc; i++) {
        const char *method = argv[i];
        net_sync *c = held;
        int status = 0;
        uint8_t *out = NULL;
        size_t out_len = 0;
        err[0] = '\0';
        if (!c && net_sync_connect_tcp(&addr, ctx, TIMEOUT_MS, &c, err, sizeof(err)) < 0) {
            printf("%s connect-error=%s\n", method, err);
            if (pause)
                break;
            continue;
        }
        int r = net_sync_call(c, method, payload, len, &status, err, sizeof(err), &out, &out_len);
        if (pause && i == optind + 1) {
            held = c;
            printf("%s status=%d error=%s\npaused\n", method, status, err);
            fflush(stdout);
            for (int k = 0; k < 1200 && access(pause, F_OK) != 0; k++)
                usleep(50000);
            free(out);
            continue;
        }
        if (!held)
            net_sync_close(c);
        if (r < 0) {
            printf("%s transport-error=%s\n", method, err);
        } else {
            printf("%s status=%d error=%s\n", method, status, err);
            if (outp && status == 0 && out) {
                Swarm__IssueNodeCertificateResponse *resp =
                    swarm__issue_node_certificate_response__unpack(NULL, out_len, out);
                if (resp && resp->cert_pem)
                    sw_write_file_atomic(outp, resp->cert_pem, strlen(resp->cert_pem), 0644);
                if (resp)
                    swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
            }
        }
        free(out);
    }
    if (held)
        net_sync_close(held);
    fflush(stdout);
    pki_tls_ctx_free(ctx);
    return 0;
}

/* ------------------------------------------------------------------ session */

struct report {
    char *task_id;
    int state;
};

struct sess {
    uv_loop_t *loop;
    net_client *client;
    uv_timer_t heartbeat, deadline;
    char session_id[64];
    uint64_t period_ms;
    struct report *reports;
    size_t n_reports;
    bool reported, done;
    int rc;
};

static void sess_stop(struct sess *s, int rc)
{
    if (s->done)
        return;
    s->done = true;
    s->rc = rc;
    fflush(stdout);
    uv_timer_stop(&s->heartbeat);
    uv_timer_stop(&s->deadline);
    uv_close((uv_handle_t *)&s->heartbeat, NULL);
    uv_close((uv_handle_t *)&s->deadline, NULL);
    if (s->client)
        net_client_close(s->client);
    s->client = NULL;
}

static void print_bytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        putchar(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.');
}

static void on_simple_reply(net_client *c, int status, const char *error, const uint8_t *payload,
                            size_t len, bool final, void *userdata)
{
    const char *what = userdata;
    if (final && what)
        printf("%s status=%d error=%s\n", what, status, error ? error : "");
    fflush(stdout);
}

static void send_reports(struct sess *s)
{
    Swarm__UpdateTaskStatusRequest req = SWARM__UPDATE_TASK_STATUS_REQUEST__INIT;
    Swarm__TaskStatusUpdate *ups = calloc(s->n_reports, sizeof(*ups));
    Swarm__TaskStatusUpdate **pv = calloc(s->n_reports, sizeof(*pv));
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len;
    if (!ups || !pv) {
        free(ups);
        free(pv);
        return;
    }
    for (size_t i = 0; i < s->n_reports; i++) {
        swarm__task_status_update__init(&ups[i]);
        ups[i].task_id = s->reports[i].task_id;
        ups[i].state = s->reports[i].state;
        ups[i].message = "forged by attack";
        pv[i] = &ups[i];
    }
    req.session_id = s->session_id;
    req.n_updates = s->n_reports;
    req.updates = pv;
    if (proto_pack(&req.base, &buf, &len) >= 0)
        net_client_call(s->client, "Dispatcher.UpdateTaskStatus", buf, len, on_simple_reply,
                        "report", NULL);
    free(ups);
    free(pv);
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    struct sess *s = t->data;
    Swarm__HeartbeatRequest req = SWARM__HEARTBEAT_REQUEST__INIT;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len;
    req.session_id = s->session_id;
    if (s->client && proto_pack(&req.base, &buf, &len) >= 0)
        net_client_call(s->client, "Dispatcher.Heartbeat", buf, len, on_simple_reply, NULL, NULL);
}

static void on_session(net_client *c, int status, const char *error, const uint8_t *payload,
                       size_t len, bool final, void *userdata)
{
    struct sess *s = userdata;
    if (final) {
        printf("ended status=%d error=%s\n", status, error ? error : "");
        sess_stop(s, status < 0 ? 1 : 0);
        return;
    }
    Swarm__SessionMessage *msg = swarm__session_message__unpack(NULL, len, payload);
    if (!msg) {
        printf("malformed session message\n");
        return;
    }
    if (!s->session_id[0]) {
        snprintf(s->session_id, sizeof(s->session_id), "%s", msg->session_id);
        printf("session id=%s\n", s->session_id);
        uint64_t ms = msg->heartbeat_period_ns / 1000000 / 2;
        s->period_ms = ms ? ms : 100;
        uv_timer_start(&s->heartbeat, on_heartbeat_timer, s->period_ms, s->period_ms);
    }
    printf("message full=%d assignments=%zu\n", msg->full, msg->n_assignments);
    for (size_t i = 0; i < msg->n_assignments; i++) {
        const Swarm__Assignment *a = msg->assignments[i];
        if (a->task)
            printf("task id=%s node=%s service=%s action=%d\n", a->task->id, a->task->node_id,
                   a->task->service_id, a->action);
        if (a->secret) {
            printf("secret id=%s name=%s data=", a->secret->id, a->secret->name);
            print_bytes(a->secret->data.data, a->secret->data.len);
            printf(" action=%d\n", a->action);
        }
    }
    fflush(stdout);
    swarm__session_message__free_unpacked(msg, NULL);
    if (!s->reported && s->n_reports) {
        s->reported = true;
        send_reports(s);
    }
}

static void on_connected(net_client *c, int status, const char *error, void *userdata)
{
    struct sess *s = userdata;
    if (status < 0) {
        printf("connect-error=%s\n", error ? error : "");
        sess_stop(s, 1);
        return;
    }
    Swarm__NodeDescription d = SWARM__NODE_DESCRIPTION__INIT;
    Swarm__Resources res = SWARM__RESOURCES__INIT;
    Swarm__SessionRequest req = SWARM__SESSION_REQUEST__INIT;
    res.nano_cpus = 4000000000;
    res.memory_bytes = 4ll << 30;
    d.hostname = "attacker";
    d.resources = &res;
    d.os = "linux";
    d.arch = "x86_64";
    req.description = &d;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len;
    if (proto_pack(&req.base, &buf, &len) < 0 ||
        net_client_call(c, "Dispatcher.Session", buf, len, on_session, s, NULL) < 0) {
        printf("connect-error=cannot open a session\n");
        sess_stop(s, 1);
    }
}

static void on_deadline(uv_timer_t *t)
{
    sess_stop(t->data, 0);
}

static int parse_state(const char *name)
{
    static const char *names[] = {"new",      "pending",  "assigned", "accepted",
                                  "starting", "running",  "complete", "shutdown",
                                  "failed",   "rejected", "orphaned"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

static int do_session(int argc, char **argv)
{
    static const struct option opts[] = {
        {"seconds", required_argument, NULL, 's'}, {"report", required_argument, NULL, 'r'}, {0}};
    struct sess s = {.rc = 0};
    unsigned seconds = 60;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
            case 's':
                seconds = (unsigned)strtoul(optarg, NULL, 10);
                break;
            case 'r': {
                char *colon = strchr(optarg, ':');
                int st = colon ? parse_state(colon + 1) : -1;
                if (st < 0)
                    return die("session", "--report TASK_ID:STATE"), 2;
                *colon = '\0';
                struct report *n = realloc(s.reports, (s.n_reports + 1) * sizeof(*n));
                if (!n)
                    return die("session", "out of memory");
                s.reports = n;
                s.reports[s.n_reports++] = (struct report){.task_id = optarg, .state = st};
                break;
            }
            default:
                return 2;
        }
    }
    if (argc - optind != 4)
        return die("session", "usage: session [--seconds N] ADDR CERT KEY CA"), 2;
    struct sw_addr addr;
    if (sw_addr_parse(argv[optind], 2377, 0, &addr) < 0)
        return die("session", "bad address");
    char err[512] = "";
    SSL_CTX *ctx = NULL;
    if (client_ctx(argv[optind + 3], argv[optind + 1], argv[optind + 2], &ctx, err, sizeof(err)) <
        0)
        return die("tls", err);
    uv_loop_t loop;
    uv_loop_init(&loop);
    s.loop = &loop;
    uv_timer_init(&loop, &s.heartbeat);
    uv_timer_init(&loop, &s.deadline);
    s.heartbeat.data = s.deadline.data = &s;
    uv_timer_start(&s.deadline, on_deadline, (uint64_t)seconds * 1000, 0);
    if (net_client_connect_tcp(&loop, &addr, ctx, TIMEOUT_MS, on_connected, &s, &s.client) < 0)
        return die("session", "cannot connect");
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    pki_tls_ctx_free(ctx);
    free(s.reports);
    return s.rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "join") == 0)
        return do_join(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "call") == 0)
        return do_call(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "session") == 0)
        return do_session(argc - 1, argv + 1);
    fprintf(stderr, "usage: attack join|call|session ... (see the top of attack.c)\n");
    return 2;
}

/* A test tool that exits on its error paths without freeing: no leak reports from it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}
