/* Seed corpus generator for fuzz-rpc and fuzz-manager: valid encodings of each request
 * (selector byte first, in the order of the targets' tables) plus truncated and garbage
 * ones. Usage: gen-corpus RPC_DIR MANAGER_DIR (existing directories; files are replaced). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

/* fuzz-rpc.c's table order */
enum rpc_sel {
    R_FRAME,
    R_GET_NODE,
    R_JOIN_TOKEN,
    R_ISSUE,
    R_CREATE_SVC,
    R_GET_SVC,
    R_UPDATE_SVC,
    R_LIST_TASKS,
    R_CREATE_SECRET,
    R_GET_SECRET,
    R_UPDATE_NODE,
    R_SESSION,
    R_HEARTBEAT,
    R_TASK_STATUS,
    R_REMOVE_NODE,
    R_UPDATE_CLUSTER,
    R_RENEW,
    R_UPDATE_SECRET,
    R_RAFT_CONNECT,
    R_RAFT_JOIN,
    R_UNLOCK_KEY,
    R_UNLOCK,
    R_DATA_KEY,
    R_ROTATE_CA,
};
/* fuzz-manager.c's table order; bit 7 asks for live values */
enum mgr_sel {
    M_LIST_NODES,
    M_GET_NODE,
    M_GET_CLUSTER,
    M_JOIN_TOKEN,
    M_CREATE_SVC,
    M_GET_SVC,
    M_LIST_SVCS,
    M_UPDATE_SVC,
    M_REMOVE_SVC,
    M_LIST_TASKS,
    M_CREATE_SECRET,
    M_GET_SECRET,
    M_LIST_SECRETS,
    M_REMOVE_SECRET,
    M_UPDATE_NODE,
    M_ROOT_CA,
    M_ISSUE,
    M_SESSION,
    M_HEARTBEAT,
    M_TASK_STATUS,
    M_NO_SUCH,
    M_REMOVE_NODE,
    M_UPDATE_CLUSTER,
    M_RENEW,
    M_UPDATE_SECRET,
    M_RAFT_CONNECT,
    M_RAFT_JOIN,
    M_UNLOCK_KEY,
    M_UNLOCK,
    M_ADD_DATA_KEY,
    M_ROTATE_CA,
};
#define LIVE 0x80

static const char *rpc_dir, *mgr_dir;

static void write_file(const char *dir, const char *name, uint8_t sel, const uint8_t *buf,
                       size_t len)
{
    char path[512];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        abort();
    FILE *f = fopen(path, "wb");
    if (!f || fputc(sel, f) == EOF || (len && fwrite(buf, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* The encoding of m, and (when trunc) the same cut in the middle. */
static void emit(const char *dir, const char *name, uint8_t sel, const ProtobufCMessage *m,
                 bool trunc)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_pack(m, &buf, &len) < 0)
        abort();
    write_file(dir, name, sel, buf, len);
    if (trunc && len > 2) {
        char tname[256];
        snprintf(tname, sizeof(tname), "%s-truncated", name);
        write_file(dir, tname, sel, buf, len / 2 + 1);
    }
    free(buf);
}

static void raw(const char *dir, const char *name, uint8_t sel, const char *bytes, size_t len)
{
    write_file(dir, name, sel, (const uint8_t *)bytes, len);
}

static const char csr_stub[] =
    "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"
    "-----END CERTIFICATE REQUEST-----\n";

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s RPC_DIR MANAGER_DIR\n", argv[0]);
        return 2;
    }
    rpc_dir = argv[1];
    mgr_dir = argv[2];

    /* ---- shared request values */
    Swarm__Label lab1 = SWARM__LABEL__INIT, lab2 = SWARM__LABEL__INIT;
    lab1.key = "tier";
    lab1.value = "web";
    lab2.key = "env";
    lab2.value = "";
    Swarm__Label *labels[] = {&lab1, &lab2};

    Swarm__SecretRef sref = SWARM__SECRET_REF__INIT;
    sref.secret_name = "db_pw";
    sref.target = "db_pw";
    sref.mode = 0400;
    sref.uid = 1000;
    Swarm__SecretRef *srefs[] = {&sref};
    char *cmd[] = {"/bin/sleep", "3600"};
    char *env[] = {"A=1", "B="};
    char *cons[] = {"node.role==worker"};
    char *caps[] = {"CAP_NET_ADMIN"};
    Swarm__TaskSpec ts = SWARM__TASK_SPEC__INIT;
    ts.n_command = 2;
    ts.command = cmd;
    ts.n_env = 2;
    ts.env = env;
    ts.workdir = "/tmp";
    ts.user = "1000:1000";
    ts.hostname = "web";
    ts.read_only = true;
    ts.n_cap_add = 1;
    ts.cap_add = caps;
    ts.limit_memory = 64 << 20;
    ts.limit_nano_cpus = 500000000;
    ts.limit_pids = 64;
    ts.reserve_memory = 16 << 20;
    ts.n_constraints = 1;
    ts.constraints = cons;
    ts.restart_condition = "on-failure";
    ts.restart_delay_ns = 1000000000;
    ts.restart_max_attempts = 3;
    Swarm__TaskSpec ts_plain = SWARM__TASK_SPEC__INIT;
    ts_plain.n_command = 2;
    ts_plain.command = cmd;

    Swarm__CreateServiceRequest cs = SWARM__CREATE_SERVICE_REQUEST__INIT;
    cs.name = "web";
    cs.n_labels = 2;
    cs.labels = labels;
    cs.replicas = 2;
    cs.task = &ts_plain;
    Swarm__CreateServiceRequest cs_full = cs;
    cs_full.name = "api";
    cs_full.task = &ts;
    Swarm__TaskSpec ts_secret = ts;
    ts_secret.n_secrets = 1;
    ts_secret.secrets = srefs;
    Swarm__CreateServiceRequest cs_secret = cs;
    cs_secret.name = "db";
    cs_secret.task = &ts_secret;
    Swarm__CreateServiceRequest cs_global = SWARM__CREATE_SERVICE_REQUEST__INIT;
    cs_global.name = "agent";
    cs_global.global = true;
    cs_global.task = &ts_plain;

    Swarm__GetServiceRequest gs = SWARM__GET_SERVICE_REQUEST__INIT;
    gs.id = "web";
    Swarm__UpdateServiceRequest us = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    us.id = "web";
    us.set_replicas = true;
    us.replicas = 3;
    Swarm__UpdateServiceRequest us_task = SWARM__UPDATE_SERVICE_REQUEST__INIT;
    us_task.id = "api";
    us_task.task = &ts;
    Swarm__ListTasksRequest lt = SWARM__LIST_TASKS_REQUEST__INIT;
    lt.service = "web";
    Swarm__ListTasksRequest lt_all = SWARM__LIST_TASKS_REQUEST__INIT;
    Swarm__CreateSecretRequest csec = SWARM__CREATE_SECRET_REQUEST__INIT;
    csec.name = "db_pw";
    csec.data.data = (uint8_t *)"s3cret\0\xff";
    csec.data.len = 8;
    csec.n_labels = 1;
    csec.labels = labels;
    Swarm__GetSecretRequest gsec = SWARM__GET_SECRET_REQUEST__INIT;
    gsec.id = "db_pw";
    Swarm__GetNodeRequest gn = SWARM__GET_NODE_REQUEST__INIT;
    gn.id = "fuzz-worker";
    Swarm__GetNodeRequest gn_mgr = SWARM__GET_NODE_REQUEST__INIT;
    gn_mgr.id = "fuzz-manager";
    Swarm__GetJoinTokenRequest jt = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    Swarm__GetJoinTokenRequest jt_rot = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    jt_rot.role = SWARM__NODE_ROLE__ROLE_MANAGER;
    jt_rot.rotate = true;
    Swarm__IssueNodeCertificateRequest in = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    in.token =
        "SWMTKN-1-00000000000000000000000000000000000000000000000000-abcdefghijklmnopqrstuvwxy";
    in.csr_pem = (char *)csr_stub;
    in.hostname = "node-1";
    in.addr = "10.0.0.2:2377";
    Swarm__IssueNodeCertificateRequest in_live = SWARM__ISSUE_NODE_CERTIFICATE_REQUEST__INIT;
    in_live.hostname = "node-2"; /* even first char: worker token; empty csr: a real one */
    in_live.addr = "127.0.0.1";
    Swarm__IssueNodeCertificateRequest in_rejoin = in_live; /* swarmd join --rejoin */
    in_rejoin.rejoin_node_id = "0123456789abcdefghijklmno";
    char *rm[] = {"env"};
    Swarm__UpdateNodeRequest un = SWARM__UPDATE_NODE_REQUEST__INIT;
    un.id = "fuzz-worker";
    un.set_availability = true;
    un.availability = SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN;
    un.n_label_add = 2;
    un.label_add = labels;
    un.n_label_rm = 1;
    un.label_rm = rm;
    Swarm__UpdateNodeRequest un_active = SWARM__UPDATE_NODE_REQUEST__INIT;
    un_active.id = "fuzz-worker";
    un_active.set_availability = true;
    Swarm__UpdateNodeRequest un_rejoin = SWARM__UPDATE_NODE_REQUEST__INIT;
    un_rejoin.id = "fuzz-worker";
    un_rejoin.allow_rejoin = true;
    Swarm__Resources res = SWARM__RESOURCES__INIT;
    res.nano_cpus = 4000000000;
    res.memory_bytes = 1 << 30;
    Swarm__NodeDescription nd = SWARM__NODE_DESCRIPTION__INIT;
    nd.hostname = "fuzz-worker";
    nd.addr = "127.0.0.1:1";
    nd.resources = &res;
    nd.os = "linux";
    nd.arch = "x86_64";
    Swarm__SessionRequest sr = SWARM__SESSION_REQUEST__INIT;
    sr.description = &nd;
    Swarm__HeartbeatRequest hb = SWARM__HEARTBEAT_REQUEST__INIT;
    hb.session_id = "0123456789abcdef";
    Swarm__TaskStatusUpdate u1 = SWARM__TASK_STATUS_UPDATE__INIT,
                            u2 = SWARM__TASK_STATUS_UPDATE__INIT;
    u1.task_id = "";
    u1.state = SWARM__TASK_STATE__TASK_RUNNING;
    u1.pid = 1234;
    u2.task_id = "\x01";
    u2.state = SWARM__TASK_STATE__TASK_FAILED;
    u2.err = "exit status 1";
    u2.exit_code = 1;
    Swarm__TaskStatusUpdate *ups[] = {&u1, &u2};
    Swarm__UpdateTaskStatusRequest uts = SWARM__UPDATE_TASK_STATUS_REQUEST__INIT;
    uts.session_id = "0123456789abcdef";
    uts.n_updates = 2;
    uts.updates = ups;
    Swarm__Empty empty = SWARM__EMPTY__INIT;
    Swarm__RemoveNodeRequest rn = SWARM__REMOVE_NODE_REQUEST__INIT;
    rn.id = "nosuchnode";
    rn.force = true;
    Swarm__RemoveNodeRequest rn_live = SWARM__REMOVE_NODE_REQUEST__INIT;
    rn_live.force = true;
    Swarm__UpdateClusterRequest uc = SWARM__UPDATE_CLUSTER_REQUEST__INIT;
    uc.set_cert_expiry = true;
    uc.cert_expiry_ns = 2ull * 3600 * 1000000000ull;
    uc.set_heartbeat_period = true;
    uc.heartbeat_period_ns = 3600ull * 1000000000ull;
    Swarm__RenewNodeCertificateRequest renew = SWARM__RENEW_NODE_CERTIFICATE_REQUEST__INIT;
    renew.csr_pem = (char *)csr_stub;
    Swarm__RenewNodeCertificateRequest renew_live = SWARM__RENEW_NODE_CERTIFICATE_REQUEST__INIT;
    Swarm__Label usl = SWARM__LABEL__INIT;
    usl.key = "team";
    usl.value = "db";
    Swarm__Label *usl_v[] = {&usl};
    char *usrm[] = {"old"};
    Swarm__UpdateSecretRequest usec = SWARM__UPDATE_SECRET_REQUEST__INIT;
    usec.id = "db_pw";
    usec.n_label_add = 1;
    usec.label_add = usl_v;
    usec.n_label_rm = 1;
    usec.label_rm = usrm;

    /* ---- fuzz-rpc: each type, valid and truncated */
    Swarm__Frame fr = SWARM__FRAME__INIT;
    fr.id = 7;
    fr.method = "Control.GetNode";
    uint8_t *gnbuf = NULL;
    size_t gnlen = 0;
    proto_pack(&gn.base, &gnbuf, &gnlen);
    fr.payload.data = gnbuf;
    fr.payload.len = gnlen;
    emit(rpc_dir, "frame-request", R_FRAME, &fr.base, true);
    Swarm__Frame fresp = SWARM__FRAME__INIT;
    fresp.id = 7;
    fresp.kind = SWARM__FRAME_KIND__FRAME_RESPONSE;
    fresp.status = -22;
    fresp.error = "malformed";
    emit(rpc_dir, "frame-response", R_FRAME, &fresp.base, false);
    emit(rpc_dir, "get-node", R_GET_NODE, &gn.base, false);
    emit(rpc_dir, "join-token-rotate", R_JOIN_TOKEN, &jt_rot.base, false);
    emit(rpc_dir, "issue", R_ISSUE, &in.base, true);
    emit(rpc_dir, "create-service", R_CREATE_SVC, &cs_full.base, true);
    emit(rpc_dir, "create-service-secret", R_CREATE_SVC, &cs_secret.base, false);
    emit(rpc_dir, "get-service", R_GET_SVC, &gs.base, false);
    emit(rpc_dir, "update-service", R_UPDATE_SVC, &us_task.base, true);
    emit(rpc_dir, "list-tasks", R_LIST_TASKS, &lt.base, false);
    emit(rpc_dir, "create-secret", R_CREATE_SECRET, &csec.base, true);
    emit(rpc_dir, "get-secret", R_GET_SECRET, &gsec.base, false);
    emit(rpc_dir, "update-node", R_UPDATE_NODE, &un.base, true);
    emit(rpc_dir, "session", R_SESSION, &sr.base, true);
    emit(rpc_dir, "heartbeat", R_HEARTBEAT, &hb.base, false);
    emit(rpc_dir, "task-status", R_TASK_STATUS, &uts.base, true);
    emit(rpc_dir, "empty-session", R_SESSION, &empty.base, false);
    emit(rpc_dir, "remove-node", R_REMOVE_NODE, &rn.base, true);
    emit(rpc_dir, "update-cluster", R_UPDATE_CLUSTER, &uc.base, true);
    emit(rpc_dir, "renew", R_RENEW, &renew.base, true);
    emit(rpc_dir, "update-secret", R_UPDATE_SECRET, &usec.base, true);
    Swarm__RaftConnectRequest rc = SWARM__RAFT_CONNECT_REQUEST__INIT;
    rc.raft_id = 12345;
    rc.address = "127.0.0.1:2377";
    rc.target_raft_id = 678;
    emit(rpc_dir, "raft-connect", R_RAFT_CONNECT, &rc.base, true);
    emit(rpc_dir, "raft-join", R_RAFT_JOIN, &empty.base, false);
    Swarm__UnlockKeyRequest ukr = SWARM__UNLOCK_KEY_REQUEST__INIT;
    ukr.rotate = true;
    emit(rpc_dir, "unlock-key-rotate", R_UNLOCK_KEY, &ukr.base, false);
    Swarm__UnlockRequest ur = SWARM__UNLOCK_REQUEST__INIT;
    ur.unlock_key = "SWMKEY-1-00000000000000000000000000000000000000000000000001";
    emit(rpc_dir, "unlock", R_UNLOCK, &ur.base, true);
    static uint8_t dk_bytes[32] = {1, 2, 3};
    Swarm__DataKey dk = SWARM__DATA_KEY__INIT;
    dk.id = 0x1234;
    dk.key.data = dk_bytes;
    dk.key.len = sizeof(dk_bytes);
    emit(rpc_dir, "data-key", R_DATA_KEY, &dk.base, true);
    Swarm__RotateCARequest rca = SWARM__ROTATE_CAREQUEST__INIT;
    rca.set_cert_expiry = true;
    rca.cert_expiry_ns = 1; /* below the minimum: refused */
    emit(rpc_dir, "rotate-ca", R_ROTATE_CA, &rca.base, true);
    /* wire-format oddities: unknown field, wrong wire type, overlong varint, length past
     * the end, a field repeated (last wins), negative enum, group tags */
    raw(rpc_dir, "unknown-field", R_GET_NODE, "\x0a\x01x\xf8\x07\x05", 6);
    raw(rpc_dir, "wrong-wire-type", R_GET_NODE, "\x08\x01", 2);
    raw(rpc_dir, "overlong-varint", R_JOIN_TOKEN, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
        11);
    raw(rpc_dir, "length-past-end", R_CREATE_SECRET,
        "\x12\xff\x01"
        "ab",
        5);
    raw(rpc_dir, "repeated-scalar", R_UPDATE_SVC,
        "\x0a\x01"
        "a\x0a\x02"
        "bc\x18\x05\x18\x07",
        11);
    raw(rpc_dir, "negative-enum", R_JOIN_TOKEN, "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
    raw(rpc_dir, "group-tag", R_TASK_STATUS, "\x13\x0a\x01x\x14", 5);
    raw(rpc_dir, "nested-bad", R_CREATE_SVC, "\x2a\x03\x0a\x05x", 5);
    raw(rpc_dir, "utf8-invalid", R_GET_SECRET, "\x0a\x02\xc3\x28", 4);
    raw(rpc_dir, "empty", R_HEARTBEAT, "", 0);

    /* ---- fuzz-manager: each method with a valid request, then garbage */
    emit(mgr_dir, "list-nodes", M_LIST_NODES, &empty.base, false);
    emit(mgr_dir, "get-node", M_GET_NODE, &gn.base, false);
    emit(mgr_dir, "get-node-manager", M_GET_NODE, &gn_mgr.base, false);
    emit(mgr_dir, "get-cluster", M_GET_CLUSTER, &empty.base, false);
    emit(mgr_dir, "join-token", M_JOIN_TOKEN, &jt.base, false);
    emit(mgr_dir, "join-token-rotate", M_JOIN_TOKEN, &jt_rot.base, false);
    emit(mgr_dir, "create-service", M_CREATE_SVC, &cs.base, true);
    emit(mgr_dir, "create-service-full", M_CREATE_SVC, &cs_full.base, false);
    emit(mgr_dir, "create-service-secret", M_CREATE_SVC, &cs_secret.base, false);
    emit(mgr_dir, "create-service-global", M_CREATE_SVC, &cs_global.base, false);
    emit(mgr_dir, "get-service", M_GET_SVC, &gs.base, false);
    emit(mgr_dir, "list-services", M_LIST_SVCS, &empty.base, false);
    emit(mgr_dir, "update-service", M_UPDATE_SVC, &us.base, false);
    emit(mgr_dir, "update-service-task", M_UPDATE_SVC, &us_task.base, true);
    emit(mgr_dir, "remove-service", M_REMOVE_SVC, &gs.base, false);
    emit(mgr_dir, "list-tasks", M_LIST_TASKS, &lt.base, false);
    emit(mgr_dir, "list-tasks-all", M_LIST_TASKS, &lt_all.base, false);
    emit(mgr_dir, "create-secret", M_CREATE_SECRET, &csec.base, true);
    emit(mgr_dir, "get-secret", M_GET_SECRET, &gsec.base, false);
    emit(mgr_dir, "list-secrets", M_LIST_SECRETS, &empty.base, false);
    emit(mgr_dir, "remove-secret", M_REMOVE_SECRET, &gsec.base, false);
    emit(mgr_dir, "update-node-drain", M_UPDATE_NODE, &un.base, true);
    emit(mgr_dir, "update-node-active", M_UPDATE_NODE, &un_active.base, false);
    emit(mgr_dir, "update-node-rejoin", M_UPDATE_NODE, &un_rejoin.base, false);
    emit(mgr_dir, "root-ca", M_ROOT_CA, &empty.base, false);
    emit(mgr_dir, "issue-bad-token", M_ISSUE, &in.base, false);
    emit(mgr_dir, "issue-live", M_ISSUE | LIVE, &in_live.base, false);
    emit(mgr_dir, "issue-rejoin", M_ISSUE | LIVE, &in_rejoin.base, false);
    emit(mgr_dir, "session", M_SESSION, &sr.base, false);
    emit(mgr_dir, "session-no-description", M_SESSION, &empty.base, false);
    emit(mgr_dir, "heartbeat-stale", M_HEARTBEAT, &hb.base, false);
    emit(mgr_dir, "heartbeat-live", M_HEARTBEAT | LIVE, &empty.base, false);
    emit(mgr_dir, "task-status-stale", M_TASK_STATUS, &uts.base, false);
    emit(mgr_dir, "task-status-live", M_TASK_STATUS | LIVE, &uts.base, true);
    emit(mgr_dir, "no-such-method", M_NO_SUCH, &empty.base, false);
    emit(mgr_dir, "remove-node-unknown", M_REMOVE_NODE, &rn.base, false);
    emit(mgr_dir, "remove-node-live", M_REMOVE_NODE | LIVE, &rn_live.base, false);
    emit(mgr_dir, "update-cluster", M_UPDATE_CLUSTER, &uc.base, true);
    emit(mgr_dir, "renew-stub", M_RENEW, &renew.base, false);
    emit(mgr_dir, "renew-live", M_RENEW | LIVE, &renew_live.base, false);
    raw(mgr_dir, "renew-garbage", M_RENEW, "\x0a\x01x\x48\x01", 5);
    emit(mgr_dir, "update-secret", M_UPDATE_SECRET, &usec.base, true);
    emit(mgr_dir, "raft-connect-as-worker", M_RAFT_CONNECT, &rc.base, false);
    emit(mgr_dir, "raft-join-as-worker", M_RAFT_JOIN, &empty.base, false);
    emit(mgr_dir, "unlock-key", M_UNLOCK_KEY, &empty.base, false);
    emit(mgr_dir, "unlock-key-rotate", M_UNLOCK_KEY, &ukr.base, false);
    emit(mgr_dir, "unlock-not-locked", M_UNLOCK, &ur.base, false);
    emit(mgr_dir, "add-data-key-as-worker", M_ADD_DATA_KEY, &dk.base, false);
    emit(mgr_dir, "rotate-ca-bad-expiry", M_ROTATE_CA, &rca.base, false);
    raw(mgr_dir, "get-node-garbage", M_GET_NODE, "\xff\xff\xff", 3);
    raw(mgr_dir, "create-service-garbage", M_CREATE_SVC, "\x2a\x03\x0a\x05x", 5);
    raw(mgr_dir, "create-secret-past-end", M_CREATE_SECRET,
        "\x12\xff\x01"
        "ab",
        5);
    raw(mgr_dir, "update-node-bad-enum", M_UPDATE_NODE, "\x0a\x01x\x10\x01\x18\x63", 7);
    raw(mgr_dir, "issue-garbage", M_ISSUE, "\x0a\xff", 2);
    raw(mgr_dir, "session-garbage", M_SESSION, "\x0a\x05\x0a\x03\xff\xfe\xfd", 7);
    raw(mgr_dir, "task-status-garbage", M_TASK_STATUS | LIVE, "\x12\x04\x10\x63\x0a\x00", 6);
    raw(mgr_dir, "get-service-empty-id", M_GET_SVC, "", 0);
    raw(mgr_dir, "list-tasks-prefix", M_LIST_TASKS,
        "\x12\x01"
        "a",
        3);
    free(gnbuf);
    return 0;
}
