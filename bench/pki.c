/* bench-pki: CSR signing rate against `openssl speed ecdsap256`, and full TLS 1.3
 * mutual-auth handshakes per second over TCP on 127.0.0.1. Not a test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/ids.h"
#include "net/cfssl-client.h"
#include "pki/pki.h"

#define BENCH_SECONDS 2.0

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    char err[256];
    pki_openssl_error(err, sizeof(err));
    fprintf(stderr, "bench-pki: %s%s%s\n", what, err[0] ? ": " : "", err);
    exit(1);
}

struct node {
    pki_key *key;
    char *cert;
};

static void issue(const pki_ca *ca, const char *cluster, enum pki_role role, struct node *ret)
{
    char id[SW_ID_LEN + 1], err[256];
    char *csr = NULL;
    if (pki_key_generate(&ret->key) < 0 || sw_id_generate(id) < 0 ||
        pki_csr_create(ret->key, &csr) < 0)
        die("key/CSR");
    struct pki_sign_request req = {id, cluster, role, 0};
    if (pki_ca_sign_csr(ca, csr, strlen(csr), &req, &ret->cert, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench-pki: sign: %s\n", err);
        exit(1);
    }
    free(csr);
}

static double bench_csr_sign(const pki_ca *ca, const char *cluster)
{
    pki_key *k = NULL;
    char *csr = NULL;
    char id[SW_ID_LEN + 1], err[256];
    if (pki_key_generate(&k) < 0 || pki_csr_create(k, &csr) < 0 || sw_id_generate(id) < 0)
        die("key/CSR");
    struct pki_sign_request req = {id, cluster, PKI_ROLE_WORKER, 0};
    size_t len = strlen(csr);
    long n = 0;
    double start = now_s(), elapsed;
    do {
        for (int i = 0; i < 50; i++, n++) {
            char *cert = NULL;
            if (pki_ca_sign_csr(ca, csr, len, &req, &cert, err, sizeof(err)) < 0) {
                fprintf(stderr, "bench-pki: sign: %s\n", err);
                exit(1);
            }
            free(cert);
        }
        elapsed = now_s() - start;
    } while (elapsed < BENCH_SECONDS);
    free(csr);
    pki_key_free(k);
    return (double)n / elapsed;
}

/* sign/s of `openssl speed ecdsap256`, or a negative value if it cannot be run. */
static double openssl_speed(void)
{
    FILE *p = popen("openssl speed -seconds 2 ecdsap256 2>/dev/null", "r");
    if (!p)
        return -1;
    char line[512];
    double sign = -1;
    while (fgets(line, sizeof(line), p)) {
        const char *tag = strstr(line, "ecdsa (nistp256)");
        if (!tag)
            continue;
        double t_sign, t_verify, s, v;
        if (sscanf(tag + strlen("ecdsa (nistp256)"), " %lfs %lfs %lf %lf", &t_sign, &t_verify, &s,
                   &v) == 4)
            sign = s;
    }
    int status = pclose(p);
    if (status != 0)
        return -1;
    return sign;
}

struct server {
    int listen_fd;
    SSL_CTX *ctx;
    atomic_long accepted;
    atomic_long verified;
    atomic_bool stop;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (atomic_load(&s->stop)) {
            close(fd);
            break;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        SSL *ssl = SSL_new(s->ctx);
        if (ssl && SSL_set_fd(ssl, fd) && SSL_accept(ssl) == 1) {
            X509 *peer = SSL_get1_peer_certificate(ssl);
            if (peer && SSL_get_verify_result(ssl) == X509_V_OK)
                atomic_fetch_add(&s->verified, 1);
            X509_free(peer);
            /* One byte so the client knows the server side completed too. */
            SSL_write(ssl, "k", 1);
            atomic_fetch_add(&s->accepted, 1);
            SSL_shutdown(ssl);
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
    }
    return NULL;
}

static double bench_mtls(const pki_ca *ca, const char *cluster, long *ret_n, long *ret_verified)
{
    struct node srv, cli;
    issue(ca, cluster, PKI_ROLE_MANAGER, &srv);
    issue(ca, cluster, PKI_ROLE_WORKER, &cli);
    const char *bundle = pki_ca_cert_pem(ca);
    char err[256];
    struct server s = {.listen_fd = -1};
    SSL_CTX *cctx = NULL;
    if (pki_tls_server_ctx(bundle, strlen(bundle), srv.cert, strlen(srv.cert), srv.key, &s.ctx, err,
                           sizeof(err)) < 0 ||
        pki_tls_client_ctx(bundle, strlen(bundle), cli.cert, strlen(cli.cert), cli.key, &cctx, err,
                           sizeof(err)) < 0) {
        fprintf(stderr, "bench-pki: TLS context: %s\n", err);
        exit(1);
    }
    s.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int one = 1;
    setsockopt(s.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (s.listen_fd < 0 || bind(s.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(s.listen_fd, 128) < 0 || getsockname(s.listen_fd, (struct sockaddr *)&sa, &sl) < 0) {
        perror("bench-pki: listen");
        exit(1);
    }
    pthread_t th;
    if (pthread_create(&th, NULL, server_main, &s) != 0) {
        fprintf(stderr, "bench-pki: pthread_create failed\n");
        exit(1);
    }

    long n = 0;
    double start = now_s(), elapsed;
    do {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            perror("bench-pki: connect");
            exit(1);
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        SSL *ssl = SSL_new(cctx);
        char b;
        if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1 || SSL_read(ssl, &b, 1) != 1)
            die("client handshake");
        SSL_shutdown(ssl);
        SSL_free(ssl);
        close(fd);
        n++;
        elapsed = now_s() - start;
    } while (elapsed < BENCH_SECONDS);

    /* Wake the acceptor with one last connection and let it exit. */
    atomic_store(&s.stop, true);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            perror("bench-pki: wake connect");
        close(fd);
    }
    pthread_join(th, NULL);
    close(s.listen_fd);
    *ret_n = n;
    *ret_verified = atomic_load(&s.verified);
    if (atomic_load(&s.accepted) != n)
        fprintf(stderr, "bench-pki: warning: server completed %ld of %ld handshakes\n",
                atomic_load(&s.accepted), n);
    pki_tls_ctx_free(s.ctx);
    pki_tls_ctx_free(cctx);
    pki_key_free(srv.key);
    free(srv.cert);
    pki_key_free(cli.key);
    free(cli.cert);
    return (double)n / elapsed;
}

/* Issuance through an external CA: a real `cfssl serve` on loopback (started here, when
 * cfssl is installed), one signing request at a time, each answer checked as the manager
 * checks it. Returns signatures per second, or a negative value if cfssl is missing. */
static double bench_external(const char *cluster)
{
    char dir[] = "/tmp/bench-pki-cfssl.XXXXXX", cmd[1024], url[64], *root = NULL;
    if (system("command -v cfssl >/dev/null && command -v cfssljson >/dev/null") != 0 ||
        !mkdtemp(dir))
        return -1;
    snprintf(cmd, sizeof(cmd),
             "cd %s && echo '{\"CN\":\"bench-root\",\"key\":{\"algo\":\"ecdsa\",\"size\":256}}' "
             ">csr.json && cfssl gencert -initca csr.json 2>/dev/null | cfssljson -bare ca && "
             "echo '{\"signing\":{\"default\":{\"expiry\":\"2160h\",\"usages\":[\"signing\","
             "\"key encipherment\",\"server auth\",\"client auth\"]}}}' >cfg.json",
             dir);
    double rate = -1;
    pid_t pid = -1;
    if (system(cmd) != 0)
        goto out;
    int port = 20000 + (int)(getpid() % 20000);
    pid = fork();
    if (pid == 0) {
        char p[16], ca[128], key[128], cfg[128];
        snprintf(p, sizeof(p), "%d", port);
        snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
        snprintf(key, sizeof(key), "%s/ca-key.pem", dir);
        snprintf(cfg, sizeof(cfg), "%s/cfg.json", dir);
        freopen("/dev/null", "w", stderr);
        execlp("cfssl", "cfssl", "serve", "-address", "127.0.0.1", "-port", p, "-ca", ca, "-ca-key",
               key, "-config", cfg, (char *)NULL);
        _exit(127);
    }
    snprintf(cmd, sizeof(cmd), "%s/ca.pem", dir);
    FILE *f = fopen(cmd, "r");
    size_t cap = 0;
    if (!f || getdelim(&root, &cap, '\0', f) < 0) {
        if (f)
            fclose(f);
        goto out;
    }
    fclose(f);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    pki_key *k = NULL;
    char *csr = NULL, id[SW_ID_LEN + 1], err[512];
    if (pki_key_generate(&k) < 0 || pki_csr_create(k, &csr) < 0 || sw_id_generate(id) < 0)
        die("key/CSR");
    struct pki_sign_request req = {id, cluster, PKI_ROLE_WORKER, 0};
    for (int i = 0; i < 100; i++) { /* until cfssl listens */
        char *cert = NULL;
        if (net_cfssl_sign(url, NULL, NULL, NULL, NULL, 2000, csr, &req, root, &cert, err,
                           sizeof(err)) >= 0) {
            free(cert);
            break;
        }
        usleep(50000);
    }
    long n = 0;
    double start = now_s(), elapsed;
    do {
        char *cert = NULL;
        if (net_cfssl_sign(url, NULL, NULL, NULL, NULL, 2000, csr, &req, root, &cert, err,
                           sizeof(err)) < 0) {
            fprintf(stderr, "bench-pki: external CA: %s\n", err);
            break;
        }
        free(cert);
        n++;
        elapsed = now_s() - start;
    } while (elapsed < BENCH_SECONDS);
    elapsed = now_s() - start;
    if (n > 0)
        rate = (double)n / elapsed;
    free(csr);
    pki_key_free(k);
out:
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    free(root);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench-pki: cannot remove %s\n", dir);
    return rate;
}

int main(void)
{
    pki_ca *ca = NULL;
    char cluster[SW_ID_LEN + 1];
    if (pki_ca_create(&ca) < 0 || sw_id_generate(cluster) < 0)
        die("CA");

    double sign = bench_csr_sign(ca, cluster);
    double ref = openssl_speed();
    if (ref > 0)
        printf("pki: csr-sign %.0f/s   openssl ecdsap256 sign %.0f/s   ratio %.2f\n", sign, ref,
               sign / ref);
    else
        printf("pki: csr-sign %.0f/s   openssl ecdsap256 sign n/a (openssl CLI missing)\n", sign);
    fflush(stdout);

    double ext = bench_external(cluster);
    if (ext > 0)
        printf(
            "pki: external-ca issuance %.0f/s (cfssl serve on loopback, http, one request at a "
            "time, each answer checked)   local signer %.0f/s   ratio %.2f\n",
            ext, sign, ext / sign);
    else
        printf(
            "pki: external-ca issuance n/a (cfssl not installed: tests/deps.sh installs "
            "golang-cfssl)\n");
    fflush(stdout);

    long n = 0, verified = 0;
    double hs = bench_mtls(ca, cluster, &n, &verified);
    printf(
        "pki: mtls-handshake %.0f/s   (%ld full handshakes, %ld client certificates "
        "verified by the server)\n",
        hs, n, verified);
    pki_ca_free(ca);
    return 0;
}
