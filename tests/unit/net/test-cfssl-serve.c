/* External CA against a real `cfssl serve` (Debian golang-cfssl) started here on loopback:
 * plain HTTP, HTTPS with a client certificate required, a signer of another CA, a profile.
 * Exit 77 (skipped) when cfssl is not installed; cfssl is killed on every exit path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/ids.h"
#include "../pki/helpers.h"
#include "net/cfssl-client.h"
#include "pki/cfssl.h"
#include "pki/pki.h"
#include "../pki/test-cfssl-serve.h"

#define MAX_SIGNERS 4

static char dir[] = "/tmp/swarmd-cfssl-XXXXXX";
static bool have_dir;
static pid_t signers[MAX_SIGNERS];
static pki_ca *ca, *other_ca;
static char cluster[SW_ID_LEN + 1];
static char *tls_cert; /* the signer's HTTPS certificate (IP 127.0.0.1, from ca) */
static EVP_PKEY *tls_key;
static struct node manager; /* the mTLS client */

static const char config_json[] =
    "{\"signing\":{\"default\":{\"expiry\":\"2h\",\"usages\":[\"signing\",\"key encipherment\","
    "\"server auth\",\"client auth\"]},\"profiles\":{\"node\":{\"expiry\":\"3h\",\"usages\":["
    "\"signing\",\"key encipherment\",\"server auth\",\"client auth\"]},\"clientonly\":{"
    "\"expiry\":\"1h\",\"usages\":[\"signing\",\"client auth\"]}}}}";

static bool cfssl_installed(void)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    for (const char *d = path; *d;) {
        const char *end = strchr(d, ':');
        size_t n = end ? (size_t)(end - d) : strlen(d);
        char p[4096];
        int w = snprintf(p, sizeof(p), "%.*s/cfssl", (int)n, d);
        if (n > 0 && w > 0 && w < (int)sizeof(p) && access(p, X_OK) == 0)
            return true;
        d += n + (end ? 1 : 0);
    }
    return false;
}

static void kill_signers(void)
{
    for (int i = 0; i < MAX_SIGNERS; i++)
        if (signers[i] > 0) {
            kill(signers[i], SIGKILL);
            waitpid(signers[i], NULL, 0);
            signers[i] = 0;
        }
}

static const char *const files[] = {
    "main-ca.pem", "main-ca-key.pem", "other-ca.pem", "other-ca-key.pem",
    "tls.pem",     "tls-key.pem",     "config.json",  "cfssl-0.log",
    "cfssl-1.log", "cfssl-2.log",     "cfssl-3.log",
};

/* Async-signal-safe: kill, reap, unlink the files this test writes, remove the dir. */
static void cleanup_all(void)
{
    for (int i = 0; i < MAX_SIGNERS; i++)
        if (signers[i] > 0) {
            kill(signers[i], SIGKILL);
            waitpid(signers[i], NULL, 0);
            signers[i] = 0;
        }
    if (!have_dir)
        return;
    char p[128];
    size_t dl = strlen(dir);
    for (size_t i = 0; i < SW_ARRAY_SIZE(files); i++) {
        size_t fl = strlen(files[i]);
        if (dl + 1 + fl + 1 > sizeof(p))
            continue;
        memcpy(p, dir, dl);
        p[dl] = '/';
        memcpy(p + dl + 1, files[i], fl + 1);
        unlink(p);
    }
    rmdir(dir);
    have_dir = false;
}

/* meson's timeout (SIGTERM) or an ASan abort: clean up, then die of the signal. */
static void on_signal(int sig)
{
    cleanup_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Start `cfssl serve` signing with the CA files prefix-ca.pem/prefix-ca-key.pem; https with
 * our TLS certificate, requiring client certificates of ca when mtls. Returns the port. */
static int start_signer(int slot, const char *prefix, bool https)
{
    char ca_arg[600], key_arg[600], cfg[600], tc[600], tk[600], mca[600], log[600];
    snprintf(ca_arg, sizeof(ca_arg), "%s/%s-ca.pem", dir, prefix);
    snprintf(key_arg, sizeof(key_arg), "%s/%s-ca-key.pem", dir, prefix);
    snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
    snprintf(tc, sizeof(tc), "%s/tls.pem", dir);
    snprintf(tk, sizeof(tk), "%s/tls-key.pem", dir);
    snprintf(mca, sizeof(mca), "%s/main-ca.pem", dir);
    snprintf(log, sizeof(log), "%s/cfssl-%d.log", dir, slot);
    for (int attempt = 0; attempt < 3; attempt++) {
        int port = srv_free_port();
        assert_true(port > 0);
        char port_s[8];
        snprintf(port_s, sizeof(port_s), "%d", port);
        pid_t parent = getpid();
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(127);
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            const char *argv[] = {"cfssl",     "serve", "-address", "127.0.0.1", "-port",   port_s,
                                  "-ca",       ca_arg,  "-ca-key",  key_arg,     "-config", cfg,
                                  "-loglevel", "1",     NULL,       NULL,        NULL,      NULL,
                                  NULL,        NULL,    NULL};
            if (https) {
                argv[14] = "-tls-cert";
                argv[15] = tc;
                argv[16] = "-tls-key";
                argv[17] = tk;
                argv[18] = "-mutual-tls-ca";
                argv[19] = mca;
            }
            execvp("cfssl", (char *const *)argv);
            _exit(127);
        }
        signers[slot] = pid;
        /* Ready when it accepts connections; gone if it exited (port taken: try another). */
        for (int i = 0; i < 600; i++) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid) {
                signers[slot] = 0;
                break;
            }
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)port),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            int c = connect(fd, (struct sockaddr *)&a, sizeof(a));
            close(fd);
            if (c == 0)
                return port;
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (signers[slot] > 0)
            break;
    }
    kill_signers();
    char text[600] = "";
    FILE *f = fopen(log, "re");
    if (f) {
        text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
        fclose(f);
    }
    fail_msg("cfssl serve did not start: %s", text);
    return -1;
}

static int setup(void **state)
{
    if (!mkdtemp(dir))
        return -1;
    have_dir = true;
    if (pki_ca_create(&ca) < 0 || pki_ca_create(&other_ca) < 0 || sw_id_generate(cluster) < 0 ||
        node_issue(ca, cluster, PKI_ROLE_MANAGER, 0, &manager) < 0 ||
        srv_make_cert(ca, "IP:127.0.0.1", &tls_cert, &tls_key) < 0)
        return -1;
    _cleanup_free_ char *k1 = srv_key_pem(pki_ca_key(ca)->pkey);
    _cleanup_free_ char *k2 = srv_key_pem(pki_ca_key(other_ca)->pkey);
    _cleanup_free_ char *tk = srv_key_pem(tls_key);
    if (!k1 || !k2 || !tk || srv_write_file(dir, "main-ca.pem", pki_ca_cert_pem(ca)) < 0 ||
        srv_write_file(dir, "main-ca-key.pem", k1) < 0 ||
        srv_write_file(dir, "other-ca.pem", pki_ca_cert_pem(other_ca)) < 0 ||
        srv_write_file(dir, "other-ca-key.pem", k2) < 0 ||
        srv_write_file(dir, "tls.pem", tls_cert) < 0 ||
        srv_write_file(dir, "tls-key.pem", tk) < 0 ||
        srv_write_file(dir, "config.json", config_json) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    cleanup_all();
    node_finish(&manager);
    pki_ca_free(ca);
    pki_ca_free(other_ca);
    EVP_PKEY_free(tls_key);
    free(tls_cert);
    return 0;
}

struct csr {
    pki_key *key;
    char *pem;
    char id[SW_ID_LEN + 1];
};

static void csr_new(struct csr *c)
{
    assert_int_equal(pki_key_generate(&c->key), 0);
    assert_int_equal(pki_csr_create(c->key, &c->pem), 0);
    assert_int_equal(sw_id_generate(c->id), 0);
}

static void csr_finish(struct csr *c)
{
    pki_key_free(c->key);
    free(c->pem);
}

static char *url(const char *scheme, int port)
{
    char *u = NULL;
    assert_true(asprintf(&u, "%s://127.0.0.1:%d", scheme, port) > 0);
    return u;
}

/* Over plain HTTP: a worker and a manager certificate, CN/OU/O from the request (the CSR
 * has an empty subject), SANs, the profile's validity. */
static void test_http_sign(void **state)
{
    int port = start_signer(0, "main", false);
    _cleanup_free_ char *u = url("http", port);
    char err[256];
    struct csr c;
    csr_new(&c);
    for (int role = 0; role < 2; role++) {
        struct pki_sign_request req = {c.id, cluster, (enum pki_role)role, 0};
        char *cert = NULL;
        int r = net_cfssl_sign(u, NULL, NULL, NULL, role ? "node" : NULL, 10000, c.pem, &req,
                               pki_ca_cert_pem(ca), &cert, err, sizeof(err));
        if (r < 0)
            fail_msg("%d: %s", r, err);
        struct pki_identity id;
        assert_int_equal(pki_verify_cert(pki_ca_cert_pem(ca), strlen(pki_ca_cert_pem(ca)), cert,
                                         strlen(cert), &id, err, sizeof(err)),
                         0);
        assert_string_equal(id.node_id, c.id);
        assert_string_equal(id.cluster_id, cluster);
        assert_int_equal(id.role, (enum pki_role)role);
        assert_true(pki_cert_matches_key(cert, strlen(cert), c.key));
        /* 2h by default, 3h with the "node" profile (cfssl backdates a few minutes). */
        uint64_t hours = (id.not_after_ns - id.not_before_ns) / 3600000000000ULL;
        assert_int_equal(hours, role ? 3 : 2);
        /* The SANs asked for. */
        X509 *x = NULL;
        assert_int_equal(pki__x509_from_pem(cert, strlen(cert), &x), 0);
        assert_int_equal(X509_check_host(x, c.id, 0, 0, NULL), 1);
        assert_int_equal(X509_check_host(x, "swarm-ca", 0, 0, NULL), role ? 1 : 0);
        X509_free(x);
        free(cert);
    }
    /* A profile without server auth: the certificate is refused by the check. */
    struct pki_sign_request req = {c.id, cluster, PKI_ROLE_WORKER, 0};
    char *cert = NULL;
    assert_int_equal(net_cfssl_sign(u, NULL, NULL, NULL, "clientonly", 10000, c.pem, &req,
                                    pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -EPERM);
    assert_non_null(strstr(err, "server auth"));
    /* cfssl refuses a broken CSR: its message comes back. */
    assert_int_equal(net_cfssl_sign(u, NULL, NULL, NULL, NULL, 10000,
                                    "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END "
                                    "CERTIFICATE REQUEST-----\n",
                                    &req, pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -EREMOTEIO);
    assert_non_null(strstr(err, "the external CA refused to sign: "));
    assert_null(cert);
    kill_signers();
    /* Signer down now: connection refused, named. */
    assert_int_equal(net_cfssl_sign(u, NULL, NULL, NULL, NULL, 10000, c.pem, &req,
                                    pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -ECONNREFUSED);
    assert_non_null(strstr(err, "Connection refused"));
    csr_finish(&c);
}

/* HTTPS: the signer is verified against the root, and requires our manager certificate. */
static void test_https_mtls(void **state)
{
    int port = start_signer(1, "main", true);
    _cleanup_free_ char *u = url("https", port);
    char err[256];
    struct csr c;
    csr_new(&c);
    struct pki_sign_request req = {c.id, cluster, PKI_ROLE_WORKER, 0};
    char *cert = NULL;
    int r = net_cfssl_sign(u, NULL, manager.cert, manager.key, NULL, 10000, c.pem, &req,
                           pki_ca_cert_pem(ca), &cert, err, sizeof(err));
    if (r < 0)
        fail_msg("%d: %s", r, err);
    free(cert);
    cert = NULL;
    /* No client certificate: the signer refuses the connection. */
    r = net_cfssl_sign(u, NULL, NULL, NULL, NULL, 10000, c.pem, &req, pki_ca_cert_pem(ca), &cert,
                       err, sizeof(err));
    assert_true(r < 0);
    assert_non_null(strstr(err, "127.0.0.1"));
    /* A bundle that does not hold the signer's issuer. */
    r = net_cfssl_sign(u, pki_ca_cert_pem(other_ca), manager.cert, manager.key, NULL, 10000, c.pem,
                       &req, pki_ca_cert_pem(ca), &cert, err, sizeof(err));
    assert_int_equal(r, -EPERM);
    assert_non_null(strstr(err, "not trusted"));
    assert_null(cert);
    csr_finish(&c);
    kill_signers();
}

/* A real signer holding another CA: what it returns does not chain to the declared root. */
static void test_wrong_ca(void **state)
{
    int port = start_signer(2, "other", false);
    _cleanup_free_ char *u = url("http", port);
    char err[256];
    struct csr c;
    csr_new(&c);
    struct pki_sign_request req = {c.id, cluster, PKI_ROLE_MANAGER, 0};
    char *cert = NULL;
    assert_int_equal(net_cfssl_sign(u, NULL, NULL, NULL, NULL, 10000, c.pem, &req,
                                    pki_ca_cert_pem(ca), &cert, err, sizeof(err)),
                     -EPERM);
    assert_non_null(strstr(err, "does not chain to the declared root"));
    assert_null(cert);
    csr_finish(&c);
    kill_signers();
}

int main(void)
{
    if (!cfssl_installed()) {
        printf("cfssl is not installed (Debian: apt-get install golang-cfssl): skipped\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGABRT, on_signal);
    atexit(cleanup_all);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_sign),
        cmocka_unit_test(test_https_mtls),
        cmocka_unit_test(test_wrong_ca),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
