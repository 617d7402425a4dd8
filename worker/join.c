/* swarmd join: pin the root CA by the token's digest, get a certificate for a fresh key with
 * the token, and write the node's state dir (blocking, before any loop runs). */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/swtime.h"
#include "net/rpc.h"
#include "proto/frame.h"
#include "worker/agent.h"
#include "worker/internal.h"

#define JOIN_TIMEOUT_DEFAULT_MS 30000u
#define JOIN_ATTEMPT_MAX_MS 5000u
#define JOIN_BACKOFF_MIN_MS 100u
#define JOIN_BACKOFF_MAX_MS 2000u

/* Everything one join carries between attempts. */
struct join {
    const struct wrk_join_request *req;
    struct sw_addr manager; /* whom to ask (the leader, once a manager learns where it is) */
    char target[80];        /* the manager, "IP:PORT" */
    struct pki_token token;
    char *root_pem; /* pinned root bundle */
    pki_key *key;
    char *csr;
    char hostname[256];
    struct sw_addr listen; /* port 0 in the request: a free one */
    struct sw_addr advertise;
    char advertise_s[80];
    Swarm__IssueNodeCertificateResponse *issued;
    uint64_t deadline_ms;
    const char *cert; /* this node's certificate, and its cluster (for Raft.Join) */
    const char *cluster;
    struct pki_node_state old; /* --rejoin: the node the state dir holds */
    /* a manager: what Raft.Join answered */
    struct pki_aead_key dek;
    struct pki_aead_key dek_old[PKI_DEK_OLD_MAX]; /* a data key rotation: retired first */
    unsigned n_dek_old, n_dek_retired;
    uint64_t raft_id;
};

static uint64_t now_ms(void)
{
    return sw_now_monotonic_ns() / SW_NSEC_PER_MSEC;
}

/* Errors worth another attempt: the manager is not there (yet) or is starting. */
static bool transient(int r)
{
    switch (-r) {
        case ECONNREFUSED:
        case ETIMEDOUT:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case ECONNRESET:
        case ECONNABORTED:
        case EPIPE:
        case EAGAIN:
            return true;
        default:
            return false;
    }
}

/* "cannot connect to X: why" -> "why" (the caller names the manager itself). */
static const char *reason_of(const char *err)
{
    static const char prefix[] = "cannot connect to ";
    if (strncmp(err, prefix, sizeof(prefix) - 1) == 0) {
        const char *p = strstr(err + sizeof(prefix) - 1, ": ");
        if (p)
            return p + 2;
    }
    return err;
}

static uint64_t attempt_timeout(const struct join *j)
{
    uint64_t now = now_ms();
    uint64_t left = j->deadline_ms > now ? j->deadline_ms - now : 1;
    return SW_MAX(SW_MIN(left, (uint64_t)JOIN_ATTEMPT_MAX_MS), 1);
}

/* One unary call on a fresh connection. *ret_status is the server's answer. */
static int call_once(const struct join *j, SSL_CTX *ctx, const struct net_expect *expect,
                     const char *method, const ProtobufCMessage *msg, int *ret_status,
                     uint8_t **ret_out, size_t *ret_len, char *err, size_t errsize)
{
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    net_sync *c = NULL;
    int r = proto_pack(msg, &buf, &len);
    if (r < 0) {
        snprintf(err, errsize, "out of memory");
        return r;
    }
    r = net_sync_connect_tcp_expect(&j->manager, ctx, expect, attempt_timeout(j), &c, err, errsize);
    if (r >= 0) {
        r = net_sync_call(c, method, buf, len, ret_status, err, errsize, ret_out, ret_len);
        net_sync_close(c);
    }
    sw_erase(buf, len); /* may hold the token */
    return r;
}

/* GetRootCA without trusting anyone, then pin it by the token's digest. */
static int fetch_root(struct join *j, char *err, size_t errsize)
{
    SSL_CTX *ctx = NULL;
    _cleanup_free_ uint8_t *out = NULL;
    size_t out_len = 0;
    int status = 0;
    int r = pki_tls_client_ctx(NULL, 0, NULL, 0, NULL, &ctx, err, errsize);
    if (r < 0)
        return r;
    Swarm__GetRootCARequest req = SWARM__GET_ROOT_CAREQUEST__INIT;
    r = call_once(j, ctx, NULL, "CA.GetRootCA", &req.base, &status, &out, &out_len, err, errsize);
    pki_tls_ctx_free(ctx);
    if (r < 0)
        return r;
    if (status < 0)
        return status; /* err holds the server's text */
    Swarm__GetRootCAResponse *resp = swarm__get_root_caresponse__unpack(NULL, out_len, out);
    if (!resp || !resp->ca_cert_pem[0]) {
        if (resp)
            swarm__get_root_caresponse__free_unpacked(resp, NULL);
        snprintf(err, errsize, "%s sent a malformed root CA answer", j->target);
        return -EPROTO;
    }
    /* certificates are backdated by PKI_BACKDATE_NS: a clock off by more is refused later
     * with an opaque "not yet valid" or "expired"; say it now */
    uint64_t now = sw_now_realtime_ns();
    uint64_t skew = resp->now_ns > now ? resp->now_ns - now : now - resp->now_ns;
    if (resp->now_ns && skew > PKI_BACKDATE_NS) {
        char d[64];
        sw_duration_format((skew + 500000000ULL) / 1000000000ULL * 1000000000ULL, d, sizeof(d));
        snprintf(err, errsize,
                 "clock skew detected: this machine's clock is %s %s the clock of %s (more than "
                 "the 1h certificates allow); set the time (NTP) and join again",
                 d, resp->now_ns > now ? "behind" : "ahead of", j->target);
        swarm__get_root_caresponse__free_unpacked(resp, NULL);
        return -ERANGE;
    }
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    r = pki_ca_digest(resp->ca_cert_pem, strlen(resp->ca_cert_pem), digest);
    if (r >= 0 && strcmp(digest, j->token.digest) != 0) {
        snprintf(err, errsize,
                 "the token's CA digest does not match the root CA of %s — wrong swarm or stale "
                 "token (get one with 'swarmctl join-token worker' on a manager)",
                 j->target);
        r = -EPERM;
    }
    if (r >= 0) {
        j->root_pem = strdup(resp->ca_cert_pem);
        if (!j->root_pem)
            r = -ENOMEM;
    }
    swarm__get_root_caresponse__free_unpacked(resp, NULL);
    return r;
}

/* CSR + token to the CA, now verifying the manager against the pinned root. */
static int issue(struct join *j, const char *token, char *err, size_t errsize)
{
    SSL_CTX *ctx = NULL;
    _cleanup_free_ uint8_t *out = NULL;
    size_t out_len = 0;
    int status = 0;
    int r = pki_tls_client_ctx(j->root_pem, strlen(j->root_pem), NULL, 0, NULL, &ctx, err, errsize);
    if (r < 0)
        return r;
    Swarm__IssueNodeCertificateRequest req = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    req.token = (char *)token;
    req.csr_pem = j->csr;
    req.hostname = j->hostname;
    req.addr = j->advertise_s;
    if (j->req->rejoin)
        req.rejoin_node_id = j->old.node_id;
    struct net_expect expect = {.manager = true};
    char serr[400] = "";
    r = call_once(j, ctx, &expect, "CA.IssueNodeCertificate", &req.base, &status, &out, &out_len,
                  serr, sizeof(serr));
    pki_tls_ctx_free(ctx);
    if (r < 0) {
        snprintf(err, errsize, "%s", serr);
        return r;
    }
    if (status < 0) {
        if (status == -EAGAIN)
            snprintf(err, errsize, "%s", serr);
        else
            snprintf(err, errsize, "%s refused the join: %s", j->target,
                     serr[0] ? serr : strerror(-status));
        return status;
    }
    j->issued = swarm__issue_node_certificate_response__unpack(NULL, out_len, out);
    if (!j->issued || !j->issued->cert_pem[0]) {
        snprintf(err, errsize, "%s sent a malformed certificate answer", j->target);
        return -EPROTO;
    }
    return 0;
}

/* A manager: with its new certificate, ask to be added to raft; the answer carries the
 * cluster data key (over mutual TLS only). */
static int raft_join(struct join *j, const char *unused, char *err, size_t errsize)
{
    SSL_CTX *ctx = NULL;
    _cleanup_free_ uint8_t *out = NULL;
    size_t out_len = 0;
    int status = 0;
    const char *cert = j->cert;
    int r = pki_tls_client_ctx(j->root_pem, strlen(j->root_pem), cert, strlen(cert), j->key, &ctx,
                               err, errsize);
    if (r < 0)
        return r;
    Swarm__RaftJoinRequest req = SWARM__RAFT_JOIN_REQUEST__INIT;
    struct net_expect expect = {.cluster_id = j->cluster, .manager = true};
    char serr[400] = "";
    r = call_once(j, ctx, &expect, "Raft.Join", &req.base, &status, &out, &out_len, serr,
                  sizeof(serr));
    pki_tls_ctx_free(ctx);
    if (r < 0) {
        snprintf(err, errsize, "%s", serr);
        return r;
    }
    struct sw_addr leader;
    if (status == -EAGAIN && wrk__leader_hint(serr, &leader) >= 0) {
        /* only the leader adds managers: ask it (same cluster, checked at the handshake) */
        j->manager = leader;
        sw_addr_format(&leader, j->target, sizeof(j->target));
        snprintf(err, errsize, "%s", serr);
        return -EAGAIN;
    }
    if (status < 0) {
        snprintf(err, errsize, "%s did not add this manager to raft: %s", j->target,
                 serr[0] ? serr : strerror(-status));
        return status;
    }
    Swarm__RaftJoinResponse *resp = swarm__raft_join_response__unpack(NULL, out_len, out);
    if (out)
        sw_erase(out, out_len);
    bool bad = !resp || resp->dek.len != PKI_KEY_BYTES || !resp->dek_id || !resp->raft_id ||
               resp->n_old_keys > PKI_DEK_OLD_MAX;
    for (size_t i = 0; !bad && i < resp->n_old_keys; i++)
        bad = !resp->old_keys[i]->id || resp->old_keys[i]->key.len != PKI_KEY_BYTES;
    if (bad) {
        if (resp) {
            sw_erase(resp->dek.data, resp->dek.len);
            for (size_t i = 0; i < resp->n_old_keys; i++)
                sw_erase(resp->old_keys[i]->key.data, resp->old_keys[i]->key.len);
            swarm__raft_join_response__free_unpacked(resp, NULL);
        }
        snprintf(err, errsize, "%s sent a malformed answer to the raft join", j->target);
        return -EPROTO;
    }
    j->dek.id = resp->dek_id;
    memcpy(j->dek.key, resp->dek.data, PKI_KEY_BYTES);
    j->raft_id = resp->raft_id;
    j->n_dek_old = j->n_dek_retired = 0;
    for (int pass = 0; pass < 2; pass++) /* retired keys first */
        for (size_t i = 0; i < resp->n_old_keys; i++) {
            if (resp->old_keys[i]->retired != (pass == 0))
                continue;
            struct pki_aead_key *k = &j->dek_old[j->n_dek_old++];
            k->id = resp->old_keys[i]->id;
            memcpy(k->key, resp->old_keys[i]->key.data, PKI_KEY_BYTES);
            j->n_dek_retired += pass == 0;
        }
    for (size_t i = 0; i < resp->n_old_keys; i++)
        sw_erase(resp->old_keys[i]->key.data, PKI_KEY_BYTES);
    sw_erase(resp->dek.data, resp->dek.len);
    swarm__raft_join_response__free_unpacked(resp, NULL);
    return 0;
}

/* Retry fn while the manager is unreachable, with exponential backoff and jitter. */
static int with_retries(struct join *j, int (*fn)(struct join *, const char *, char *, size_t),
                        const char *token, char *errmsg, size_t size)
{
    uint64_t start = now_ms(), backoff = JOIN_BACKOFF_MIN_MS;
    unsigned tries = 0;
    char err[512];
    for (;;) {
        err[0] = '\0';
        tries++;
        int r = fn(j, token, err, sizeof(err));
        if (r >= 0)
            return r;
        if (!transient(r)) {
            snprintf(errmsg, size, "%s", err[0] ? err : strerror(-r));
            return r;
        }
        log_debug("join: %s unreachable (%s), retrying", j->target, err);
        uint64_t now = now_ms();
        if (now >= j->deadline_ms) {
            uint64_t spent = now - start;
            snprintf(errmsg, size,
                     "cannot reach the manager at %s: %s (tried %u times over %llu.%01llu s)",
                     j->target, err[0] ? reason_of(err) : strerror(-r), tries,
                     (unsigned long long)(spent / 1000), (unsigned long long)(spent % 1000 / 100));
            return r == -EAGAIN ? -EAGAIN : -EHOSTUNREACH;
        }
        /* the last attempt comes at the deadline */
        uint64_t wait = SW_MIN(wrk__jitter_ms(backoff, 20), j->deadline_ms - now);
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000),
                              .tv_nsec = (long)(wait % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        backoff = SW_MIN(backoff * 2, (uint64_t)JOIN_BACKOFF_MAX_MS);
    }
}

static int fetch_root_fn(struct join *j, const char *token, char *err, size_t size)
{
    return fetch_root(j, err, size);
}

/* The local address the kernel would use to reach the manager (no packet is sent). */
/* A free TCP port on host (listen port 0: a manager's raft address must be known before
 * it listens, so the port is chosen now). */
static int free_port(const struct sw_addr *host, uint16_t *ret)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    struct sw_addr any = *host;
    any.port = 0;
    if (sw_addr_sockaddr(&any, &ss, &slen) < 0)
        return -EINVAL;
    _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0)
        return -errno;
    struct sockaddr_storage local = {0};
    socklen_t llen = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        return -errno;
    *ret = ntohs(local.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&local)->sin6_port
                                             : ((struct sockaddr_in *)&local)->sin_port);
    return 0;
}

static int local_addr_towards(const struct sw_addr *to, struct sw_addr *ret)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    if (sw_addr_sockaddr(to, &ss, &slen) < 0)
        return -EINVAL;
    _cleanup_close_ int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&ss, slen) < 0)
        return -errno;
    struct sockaddr_storage local = {0};
    socklen_t llen = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        return -errno;
    struct sw_addr a = {.family = local.ss_family};
    const void *src = local.ss_family == AF_INET6
                          ? (const void *)&((struct sockaddr_in6 *)&local)->sin6_addr
                          : (const void *)&((struct sockaddr_in *)&local)->sin_addr;
    if (!inet_ntop(local.ss_family, src, a.host, sizeof(a.host)))
        return -errno;
    *ret = a;
    return 0;
}

/* node_id of an existing node.conf ("?" if it cannot be read). */
static void existing_node_id(const char *path, char *buf, size_t size)
{
    _cleanup_free_ char *text = NULL;
    snprintf(buf, size, "?");
    if (sw_read_file(path, 64 * 1024, &text, NULL) < 0)
        return;
    const char *p = strstr(text, "\nnode_id=");
    if (!p)
        return;
    p += strlen("\nnode_id=");
    size_t n = strcspn(p, "\n");
    snprintf(buf, size, "%.*s", (int)SW_MIN(n, (size_t)SW_ID_LEN), p);
}

static int write_state(struct join *j, const struct pki_identity *id, char *errmsg, size_t size)
{
    const struct wrk_join_request *req = j->req;
    struct pki_node_state st = {0};
    int r;

    memcpy(st.node_id, id->node_id, sizeof(st.node_id));
    memcpy(st.cluster_id, id->cluster_id, sizeof(st.cluster_id));
    st.role = id->role;
    if (st.role == PKI_ROLE_MANAGER) {
        st.raft_id = j->raft_id;
        st.dek = j->dek;
        st.n_dek_old = j->n_dek_old;
        st.n_dek_retired = j->n_dek_retired;
        memcpy(st.dek_old, j->dek_old, sizeof(st.dek_old));
    }
    st.listen_addr = j->listen;
    st.advertise_addr = j->advertise;
    snprintf(st.hostname, sizeof(st.hostname), "%s", j->hostname);
    r = pki_aead_key_generate(&st.kek);
    if (r < 0) {
        snprintf(errmsg, size, "cannot generate the key-encryption key: %s", strerror(-r));
        goto out;
    }
    st.node_key = j->key; /* borrowed: pki_node_state_finish must not free it */
    st.node_cert_pem = j->issued->cert_pem;
    st.root_ca_pem = j->root_pem;

    r = sw_mkdir_p(req->state_dir, 0700);
    if (r < 0) {
        snprintf(errmsg, size, "cannot create state directory %s: %s", req->state_dir,
                 strerror(-r));
        goto out;
    }
    r = pki_node_state_write_keys(req->state_dir, &st, errmsg, size);
    if (r < 0)
        goto out;
    r = wrk__managers_save(req->state_dir, &req->manager, 1, errmsg, size);
    if (r < 0)
        goto out;
    r = pki_node_state_save_conf(req->state_dir, &st, errmsg, size);
out:
    pki_aead_key_clear(&st.kek);
    sw_erase(&st, sizeof(st));
    return r;
}

/* --rejoin: the node the state dir holds, its addresses and hostname. */
static int rejoin_load(struct join *j, char *errmsg, size_t size)
{
    const struct wrk_join_request *req = j->req;
    char lerr[300] = "";
    int r = pki_node_state_load(req->state_dir, &j->old, lerr, sizeof(lerr));
    if (r < 0) {
        snprintf(errmsg, size, "--rejoin: %s", lerr);
        return r;
    }
    /* a manager's state dir too: the swarm must have demoted it (the manager checks), and
     * the node comes back as a worker */
    snprintf(j->hostname, sizeof(j->hostname), "%s", j->old.hostname);
    j->listen = j->old.listen_addr;
    j->advertise = j->old.advertise_addr;
    sw_addr_format(&j->advertise, j->advertise_s, sizeof(j->advertise_s));
    return 0;
}

/* --rejoin: the new certificate, then the root bundle it chains to (a crash between the
 * two leaves a certificate the swarm records as this node's: running it again mends it). */
static int rejoin_save(struct join *j, const struct pki_identity *id, char *errmsg, size_t size)
{
    const struct wrk_join_request *req = j->req;
    if (strcmp(id->cluster_id, j->old.cluster_id) != 0) {
        snprintf(errmsg, size, "--rejoin: %s answered for another swarm (cluster %s, not %s)",
                 j->target, id->cluster_id, j->old.cluster_id);
        return -EPROTO;
    }
    int r = pki_node_state_replace_cert(req->state_dir, j->issued->cert_pem, j->key, errmsg, size);
    if (r >= 0)
        r = pki_node_state_replace_root(req->state_dir, j->root_pem, errmsg, size);
    if (r >= 0 && j->old.role == PKI_ROLE_MANAGER) /* demoted while it was down */
        return wrk_become_worker(req->state_dir, &req->manager, errmsg, size);
    if (r >= 0)
        r = wrk__managers_save(req->state_dir, &req->manager, 1, errmsg, size);
    return r;
}

static int join_run(struct join *j, char ret_node_id[SW_ID_LEN + 1], enum pki_role *ret_role,
                    char *errmsg, size_t size)
{
    const struct wrk_join_request *req = j->req;
    char path[4096];
    int r;

    if (!req->state_dir || !req->state_dir[0] || !req->token) {
        snprintf(errmsg, size, "a state directory and a join token are required");
        return -EINVAL;
    }
    r = sw_path_join(path, sizeof(path), req->state_dir, PKI_NODE_STATE_FILE);
    if (r < 0) {
        snprintf(errmsg, size, "state directory path too long");
        return r;
    }
    if (req->rejoin) {
        if (!sw_file_exists(path)) {
            snprintf(errmsg, size, "--rejoin: %s holds no node to join again as", req->state_dir);
            return -ENOENT;
        }
    } else if (sw_file_exists(path)) {
        char id[SW_ID_LEN + 2];
        existing_node_id(path, id, sizeof(id));
        snprintf(errmsg, size, "%s already holds node %s; start it with 'swarmd --state-dir %s'",
                 req->state_dir, id, req->state_dir);
        return -EEXIST;
    }
    char perr[200] = "";
    r = pki_token_parse(req->token, &j->token, perr, sizeof(perr));
    if (r < 0) {
        snprintf(errmsg, size, "invalid join token: %s", perr);
        return -EINVAL;
    }
    sw_addr_format(&req->manager, j->target, sizeof(j->target));

    if (req->rejoin) {
        r = rejoin_load(j, errmsg, size);
        if (r < 0)
            return r;
    } else if (req->hostname) {
        snprintf(j->hostname, sizeof(j->hostname), "%s", req->hostname);
    } else if (gethostname(j->hostname, sizeof(j->hostname) - 1) < 0) {
        r = -errno;
        snprintf(errmsg, size, "cannot read the hostname: %s", strerror(errno));
        return r;
    }
    if (req->rejoin) {
        /* addresses: the node's, as node.conf has them */
    } else if (!sw_hostname_valid(j->hostname)) {
        snprintf(errmsg, size, "invalid hostname '%.64s' (letters, digits, '.', '_', '-')",
                 j->hostname);
        return -EINVAL;
    }
    if (req->rejoin) {
        /* as recorded */
    } else if (req->advertise_set) {
        j->advertise = req->advertise_addr;
    } else {
        r = local_addr_towards(&req->manager, &j->advertise);
        if (r < 0) {
            snprintf(errmsg, size,
                     "cannot find the local address towards %s: %s; give "
                     "--advertise-addr",
                     j->target, strerror(-r));
            return r;
        }
    }
    if (!req->rejoin)
        j->listen = req->listen_addr;
    if (j->listen.port == 0 && (r = free_port(&j->listen, &j->listen.port)) < 0) {
        snprintf(errmsg, size, "cannot find a free port on %s: %s", j->listen.host, strerror(-r));
        return r;
    }
    if (j->advertise.port == 0)
        j->advertise.port = j->listen.port;
    sw_addr_format(&j->advertise, j->advertise_s, sizeof(j->advertise_s));

    j->deadline_ms = now_ms() + (req->timeout_ms ? req->timeout_ms : JOIN_TIMEOUT_DEFAULT_MS);
    r = with_retries(j, fetch_root_fn, NULL, errmsg, size);
    if (r < 0)
        return r;

    if (req->rejoin) /* the node's own key: the proof it is that node */
        r = pki_key_dup(j->old.node_key, &j->key);
    else
        r = pki_key_generate(&j->key);
    if (r >= 0)
        r = pki_csr_create(j->key, &j->csr);
    if (r < 0) {
        snprintf(errmsg, size, "cannot create the node key: %s", strerror(-r));
        return r;
    }
    r = with_retries(j, issue, req->token, errmsg, size);
    if (r < 0)
        return r;

    Swarm__IssueNodeCertificateResponse *is = j->issued;
    struct pki_identity id;
    char verr[256] = "";
    r = pki_verify_cert(j->root_pem, strlen(j->root_pem), is->cert_pem, strlen(is->cert_pem), &id,
                        verr, sizeof(verr));
    if (r < 0) {
        snprintf(errmsg, size, "the certificate from %s does not verify against its root CA: %s",
                 j->target, verr);
        return -EPROTO;
    }
    enum pki_role want_role =
        is->role == SWARM__NODE_ROLE__ROLE_MANAGER ? PKI_ROLE_MANAGER : PKI_ROLE_WORKER;
    if (strcmp(id.node_id, is->node_id) != 0 || id.role != want_role ||
        (req->rejoin && (strcmp(id.node_id, j->old.node_id) != 0 || id.role != PKI_ROLE_WORKER)) ||
        (is->cluster_id[0] && strcmp(id.cluster_id, is->cluster_id) != 0) ||
        !pki_cert_matches_key(is->cert_pem, strlen(is->cert_pem), j->key)) {
        snprintf(errmsg, size,
                 "the certificate from %s does not match what it answered (node id, role, "
                 "cluster or key)",
                 j->target);
        return -EPROTO;
    }
    if (id.role == PKI_ROLE_MANAGER) {
        j->cert = is->cert_pem;
        j->cluster = id.cluster_id;
        r = with_retries(j, raft_join, NULL, errmsg, size);
        if (r < 0)
            return r;
    }
    r = req->rejoin ? rejoin_save(j, &id, errmsg, size) : write_state(j, &id, errmsg, size);
    if (r < 0)
        return r;
    memcpy(ret_node_id, id.node_id, SW_ID_LEN + 1);
    *ret_role = id.role;
    return 0;
}

int wrk_join(const struct wrk_join_request *req, char ret_node_id[SW_ID_LEN + 1],
             enum pki_role *ret_role, char *errmsg, size_t errmsg_size)
{
    struct join j = {.req = req, .manager = req->manager};
    int r = join_run(&j, ret_node_id, ret_role, errmsg, errmsg_size);
    sw_erase(&j.token, sizeof(j.token));
    pki_aead_key_clear(&j.dek);
    sw_erase(j.dek_old, sizeof(j.dek_old));
    free(j.root_pem);
    pki_key_free(j.key);
    free(j.csr);
    pki_node_state_finish(&j.old);
    if (j.issued)
        swarm__issue_node_certificate_response__free_unpacked(j.issued, NULL);
    return r;
}

/* ------------------------------------------------------------------ role changes */

int wrk_become_manager(const char *state_dir, uint64_t timeout_ms, char *errmsg, size_t errmsg_size)
{
    struct pki_node_state st;
    struct sw_addr list[WRK_MANAGERS_MAX];
    size_t n = 0;
    int r = pki_node_state_load(state_dir, &st, errmsg, errmsg_size);
    if (r < 0)
        return r;
    r = wrk__managers_load(state_dir, list, WRK_MANAGERS_MAX, &n, errmsg, errmsg_size);
    if (r < 0 || n == 0) {
        snprintf(errmsg, errmsg_size, "%s names no manager to ask", state_dir);
        pki_node_state_finish(&st);
        return r < 0 ? r : -ENOENT;
    }
    struct wrk_join_request req = {.state_dir = state_dir, .manager = list[0]};
    struct join j = {.req = &req, .manager = list[0]};
    sw_addr_format(&list[0], j.target, sizeof(j.target));
    j.cert = st.node_cert_pem;
    j.cluster = st.cluster_id;
    j.key = st.node_key;
    j.root_pem = st.root_ca_pem;
    j.deadline_ms = now_ms() + (timeout_ms ? timeout_ms : JOIN_TIMEOUT_DEFAULT_MS);
    r = with_retries(&j, raft_join, NULL, errmsg, errmsg_size);
    if (r >= 0) {
        st.role = PKI_ROLE_MANAGER;
        st.raft_id = j.raft_id;
        st.dek = j.dek;
        st.n_dek_old = j.n_dek_old;
        st.n_dek_retired = j.n_dek_retired;
        memcpy(st.dek_old, j.dek_old, sizeof(st.dek_old));
        r = pki_node_state_write_keys(state_dir, &st, errmsg, errmsg_size);
        if (r >= 0)
            r = pki_node_state_save_conf(state_dir, &st, errmsg, errmsg_size);
    }
    pki_aead_key_clear(&j.dek);
    sw_erase(j.dek_old, sizeof(j.dek_old));
    pki_node_state_finish(&st); /* frees key, cert and root */
    return r;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

void wrk__drop_manager_data(const char *state_dir)
{
    char path[4096];
    static const char *const gone[] = {PKI_NODE_DEK_FILE, "raft", "store"};
    for (size_t i = 0; i < SW_ARRAY_SIZE(gone); i++)
        if (sw_path_join(path, sizeof(path), state_dir, gone[i]) >= 0)
            (void)nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int wrk_become_worker(const char *state_dir, const struct sw_addr *leader, char *errmsg,
                      size_t errmsg_size)
{
    struct pki_node_state st;
    char path[4096];
    int r = pki_node_state_load(state_dir, &st, errmsg, errmsg_size);
    if (r < 0)
        return r;
    st.role = PKI_ROLE_WORKER;
    st.raft_id = 0;
    pki_aead_key_clear(&st.dek);
    /* the data key goes first: a crash after it leaves nothing readable (the raft log and
     * the store are sealed with it); a worker's start removes what is left */
    if (sw_path_join(path, sizeof(path), state_dir, PKI_NODE_DEK_FILE) >= 0 && unlink(path) < 0 &&
        errno != ENOENT) {
        r = -errno;
        snprintf(errmsg, errmsg_size, "cannot remove %s: %s", path, strerror(-r));
        pki_node_state_finish(&st);
        return r;
    }
    r = pki_node_state_save_conf(state_dir, &st, errmsg, errmsg_size);
    pki_node_state_finish(&st);
    /* a worker is never locked (autolock is the managers'): its KEK back in clear */
    if (r >= 0 && pki_node_state_locked(state_dir) >= 1)
        r = pki_node_state_set_lock(state_dir, NULL, errmsg, errmsg_size);
    if (r < 0)
        return r;
    wrk__drop_manager_data(state_dir);
    if (leader && leader->port)
        return wrk__managers_save(state_dir, leader, 1, errmsg, errmsg_size);
    return 0;
}
