/* probe: a test client that speaks swarmd's wire as a joining node or as a holder of a
 * given certificate would. Used by the integration tests.
 *
 *   probe join ADDR TOKEN [OUTDIR]   GetRootCA, pin the digest, CSR + IssueNodeCertificate;
 *                                    prints "node=<id> role=<role>", writes
 * node.crt/node.key/ca.crt probe call ADDR CERT KEY CA METHOD   one call with an empty payload over
 * mTLS; prints "status=<n> error=<text>" Exit 0 on success, 1 on a refused/failed operation
 * (message on stderr), 2 on usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "net/rpc.h"
#include "pki/pki.h"
#include "proto/frame.h"

#define TIMEOUT_MS 5000

static int die(const char *what, const char *msg)
{
    fprintf(stderr, "probe: %s: %s\n", what, msg);
    return 1;
}

static int call(net_sync *c, const char *method, const ProtobufCMessage *req, int *status,
                char *err, size_t errsize, uint8_t **out, size_t *out_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (req && proto_pack(req, &buf, &len) < 0)
        return -ENOMEM;
    int r = net_sync_call(c, method, buf, len, status, err, errsize, out, out_len);
    free(buf);
    return r;
}

static int do_join(const char *addr_s, const char *token, const char *outdir)
{
    struct sw_addr addr;
    struct pki_token t;
    char err[512] = "";
    SSL_CTX *ctx = NULL;
    net_sync *c = NULL;
    int status = 0, r;
    uint8_t *out = NULL;
    size_t out_len = 0;

    if (sw_addr_parse(addr_s, 2377, 0, &addr) < 0)
        return die("join", "bad address");
    if (pki_token_parse(token, &t, err, sizeof(err)) < 0)
        return die("invalid token", err);
    if (pki_tls_client_ctx(NULL, 0, NULL, 0, NULL, &ctx, err, sizeof(err)) < 0)
        return die("tls", err);
    r = net_sync_connect_tcp(&addr, ctx, TIMEOUT_MS, &c, err, sizeof(err));
    if (r < 0)
        return die("connect", err);
    Swarm__GetRootCARequest rreq = SWARM__GET_ROOT_CAREQUEST__INIT;
    r = call(c, "CA.GetRootCA", &rreq.base, &status, err, sizeof(err), &out, &out_len);
    net_sync_close(c);
    pki_tls_ctx_free(ctx);
    if (r < 0 || status < 0)
        return die("GetRootCA", err);
    Swarm__GetRootCAResponse *ca = swarm__get_root_caresponse__unpack(NULL, out_len, out);
    free(out);
    if (!ca)
        return die("GetRootCA", "malformed response");
    char digest[PKI_TOKEN_DIGEST_LEN + 1];
    pki_ca_digest(ca->ca_cert_pem, strlen(ca->ca_cert_pem), digest);
    if (strcmp(digest, t.digest) != 0)
        return die("join",
                   "the token's CA digest does not match the manager's root CA — wrong "
                   "swarm or stale token");

    /* from here on the manager must prove it holds a certificate under the pinned root */
    pki_key *key = NULL;
    _cleanup_free_ char *csr = NULL;
    if (pki_key_generate(&key) < 0 || pki_csr_create(key, &csr) < 0)
        return die("join", "cannot create a key");
    if (pki_tls_client_ctx(ca->ca_cert_pem, strlen(ca->ca_cert_pem), NULL, 0, NULL, &ctx, err,
                           sizeof(err)) < 0)
        return die("tls", err);
    r = net_sync_connect_tcp(&addr, ctx, TIMEOUT_MS, &c, err, sizeof(err));
    if (r < 0)
        return die("connect (verified)", err);
    Swarm__IssueNodeCertificateRequest ireq = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    ireq.token = (char *)token;
    ireq.csr_pem = csr;
    ireq.hostname = "probe";
    ireq.addr = "127.0.0.1:1";
    r = call(c, "CA.IssueNodeCertificate", &ireq.base, &status, err, sizeof(err), &out, &out_len);
    net_sync_close(c);
    pki_tls_ctx_free(ctx);
    if (r < 0)
        return die("IssueNodeCertificate", err);
    if (status < 0)
        return die("join refused", err);
    Swarm__IssueNodeCertificateResponse *resp =
        swarm__issue_node_certificate_response__unpack(NULL, out_len, out);
    free(out);
    if (!resp)
        return die("IssueNodeCertificate", "malformed response");
    struct pki_identity id;
    if (pki_verify_cert(ca->ca_cert_pem, strlen(ca->ca_cert_pem), resp->cert_pem,
                        strlen(resp->cert_pem), &id, err, sizeof(err)) < 0)
        return die("issued certificate", err);
    printf("node=%s role=%s\n", id.node_id, id.role == PKI_ROLE_MANAGER ? "manager" : "worker");
    if (outdir) {
        char path[4096];
        _cleanup_free_ char *kpem = NULL;
        size_t klen;
        pki_key_to_pem(key, &kpem, &klen);
        sw_mkdir_p(outdir, 0700);
        sw_path_join(path, sizeof(path), outdir, "node.crt");
        sw_write_file_atomic(path, resp->cert_pem, strlen(resp->cert_pem), 0644);
        sw_path_join(path, sizeof(path), outdir, "node.key");
        sw_write_file_atomic(path, kpem, klen, 0600);
        sw_path_join(path, sizeof(path), outdir, "ca.crt");
        sw_write_file_atomic(path, ca->ca_cert_pem, strlen(ca->ca_cert_pem), 0644);
    }
    swarm__issue_node_certificate_response__free_unpacked(resp, NULL);
    swarm__get_root_caresponse__free_unpacked(ca, NULL);
    pki_key_free(key);
    return 0;
}

static int do_call(const char *addr_s, const char *cert_path, const char *key_path,
                   const char *ca_path, const char *method)
{
    struct sw_addr addr;
    _cleanup_free_ char *cert = NULL, *kpem = NULL, *ca = NULL;
    size_t cert_len, key_len, ca_len;
    pki_key *key = NULL;
    SSL_CTX *ctx = NULL;
    net_sync *c = NULL;
    char err[512] = "";
    int status = 0;
    uint8_t *out = NULL;
    size_t out_len = 0;

    if (sw_addr_parse(addr_s, 2377, 0, &addr) < 0)
        return die("call", "bad address");
    if (sw_read_file(cert_path, 1 << 20, &cert, &cert_len) < 0 ||
        sw_read_file(key_path, 1 << 20, &kpem, &key_len) < 0 ||
        sw_read_file(ca_path, 1 << 20, &ca, &ca_len) < 0)
        return die("call", "cannot read certificate, key or CA file");
    if (pki_key_from_pem(kpem, key_len, &key) < 0)
        return die("call", "cannot parse the key");
    if (pki_tls_client_ctx(ca, ca_len, cert, cert_len, key, &ctx, err, sizeof(err)) < 0)
        return die("tls", err);
    int r = net_sync_connect_tcp(&addr, ctx, TIMEOUT_MS, &c, err, sizeof(err));
    if (r >= 0) {
        r = net_sync_call(c, method, NULL, 0, &status, err, sizeof(err), &out, &out_len);
        net_sync_close(c);
    }
    pki_tls_ctx_free(ctx);
    pki_key_free(key);
    free(out);
    if (r < 0)
        return die("call", err);
    printf("status=%d error=%s\n", status, err);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && argc <= 5 && strcmp(argv[1], "join") == 0)
        return do_join(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    if (argc == 7 && strcmp(argv[1], "call") == 0)
        return do_call(argv[2], argv[3], argv[4], argv[5], argv[6]);
    fprintf(stderr, "usage: probe join ADDR TOKEN [OUTDIR] | probe call ADDR CERT KEY CA METHOD\n");
    return 2;
}

/* A test tool that exits on its error paths without freeing: no leak reports from it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}
