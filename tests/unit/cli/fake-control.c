/* A fake control socket for swarmctl's output tests: answers Control.* calls with fixed
 * nodes (availability and labels can be updated), a cluster (whose secrets it deliberately
 * does not strip), join tokens, and services, tasks and secrets (fake-objects.c).
 * Usage: fake-control SOCKET [fail]  ("fail": every call gets -EPERM). Serves
 * connections one at a time until SIGTERM, or 60 s at most. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "proto/frame.h"
#include "proto/swarm.pb-c.h"
#include "tests/unit/cli/fake.h"

#define NS 1000000000ULL
#define T0 (1767225600ULL * NS) /* 2026-01-01T00:00:00Z */

static bool rotated[2];

static const char *token_for(int role)
{
    static const char *const tokens[2][2] = {
        {"SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-workerworkerworkerworke",
         "SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-workerrotatedrotatedrot"},
        {"SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-managermanagermanagerma",
         "SWMTKN-1-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd-managerrotatedrotatedro"},
    };
    return tokens[role][rotated[role]];
}

struct fake_node {
    const char *id, *hostname, *addr;
    Swarm__NodeRole role;
    Swarm__NodeState state;
    Swarm__NodeAvailability availability;
    bool leader;
    Swarm__Reachability reach;
};

static const struct fake_node fake_nodes[] = {
    {"wrkb000000000000000000002", "wrk-b", "10.0.0.4:2377", SWARM__NODE_ROLE__ROLE_WORKER,
     SWARM__NODE_STATE__NODE_DOWN, SWARM__NODE_AVAILABILITY__AVAILABILITY_DRAIN, false, 0},
    {"mgr1000000000000000000001", "mgr-1", "10.0.0.1:2377", SWARM__NODE_ROLE__ROLE_MANAGER,
     SWARM__NODE_STATE__NODE_READY, SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE, true,
     SWARM__REACHABILITY__REACH_REACHABLE},
    {"wrka000000000000000000001", "wrk-\"a\"", "10.0.0.3:2377", SWARM__NODE_ROLE__ROLE_WORKER,
     SWARM__NODE_STATE__NODE_READY, SWARM__NODE_AVAILABILITY__AVAILABILITY_PAUSE, false, 0},
    {"mgr2000000000000000000002", "mgr-2", "10.0.0.2:2377", SWARM__NODE_ROLE__ROLE_MANAGER,
     SWARM__NODE_STATE__NODE_DISCONNECTED, SWARM__NODE_AVAILABILITY__AVAILABILITY_ACTIVE, false,
     SWARM__REACHABILITY__REACH_UNREACHABLE},
};

#define MAX_LABELS 8

/* What node update changed, per node of fake_nodes. */
struct node_state {
    bool availability_set;
    Swarm__NodeAvailability availability;
    Swarm__Label labels[MAX_LABELS];
    Swarm__Label *label_ptrs[MAX_LABELS];
    size_t n_labels;
};
static struct node_state node_states[SW_ARRAY_SIZE(fake_nodes)];

/* Storage for one node message and its submessages. */
struct node_buf {
    Swarm__Node n;
    Swarm__Meta meta;
    Swarm__ManagerStatus ms;
    Swarm__NodeCertificate cert;
    Swarm__Resources res;
};

static void fill_node(struct node_buf *b, const struct fake_node *f)
{
    swarm__node__init(&b->n);
    swarm__meta__init(&b->meta);
    swarm__manager_status__init(&b->ms);
    swarm__node_certificate__init(&b->cert);
    swarm__resources__init(&b->res);
    b->meta.version = 7;
    b->meta.created_at = T0;
    b->meta.updated_at = T0 + 90 * NS;
    b->n.meta = &b->meta;
    b->n.id = (char *)f->id;
    b->n.hostname = (char *)f->hostname;
    b->n.addr = (char *)f->addr;
    b->n.role = b->n.desired_role = f->role;
    b->n.state = f->state;
    b->n.availability = f->availability;
    b->n.os = "linux";
    b->n.arch = "x86_64";
    b->res.nano_cpus = 2000000000;
    b->res.memory_bytes = 25165824000;
    b->n.resources = &b->res;
    if (f->role == SWARM__NODE_ROLE__ROLE_MANAGER) {
        b->ms.raft_id = 1;
        b->ms.addr = (char *)f->addr;
        b->ms.leader = f->leader;
        b->ms.reachability = f->reach;
        b->n.manager_status = &b->ms;
    }
    b->cert.issuer = "CN=swarm-ca";
    b->cert.serial = "0a1b2c";
    b->cert.not_before = T0 - 3600 * NS;
    b->cert.not_after = T0 + 90 * 24 * 3600 * NS;
    b->cert.cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    b->n.certificate = &b->cert;
    struct node_state *st = &node_states[f - fake_nodes];
    if (st->availability_set)
        b->n.availability = st->availability;
    for (size_t i = 0; i < st->n_labels; i++)
        st->label_ptrs[i] = &st->labels[i];
    b->n.labels = st->label_ptrs;
    b->n.n_labels = st->n_labels;
}

/* Apply a node update; an errno and message for a bad one. */
static int update_node(const Swarm__UpdateNodeRequest *req, const struct fake_node *f,
                       const char **error)
{
    struct node_state *st = &node_states[f - fake_nodes];
    if (req->set_availability) {
        st->availability_set = true;
        st->availability = req->availability;
    }
    for (size_t i = 0; i < req->n_label_rm; i++) {
        for (size_t k = 0; k < st->n_labels; k++) {
            if (strcmp(st->labels[k].key, req->label_rm[i]) == 0) {
                free(st->labels[k].key);
                free(st->labels[k].value);
                st->labels[k] = st->labels[--st->n_labels];
                break;
            }
        }
    }
    for (size_t i = 0; i < req->n_label_add; i++) {
        size_t k = 0;
        while (k < st->n_labels && strcmp(st->labels[k].key, req->label_add[i]->key) != 0)
            k++;
        if (k == st->n_labels) {
            if (k == MAX_LABELS) {
                *error = "too many labels";
                return -ENOSPC;
            }
            swarm__label__init(&st->labels[k]);
            st->labels[k].key = strdup(req->label_add[i]->key);
            st->labels[k].value = NULL;
            st->n_labels++;
        }
        free(st->labels[k].value);
        st->labels[k].value = strdup(req->label_add[i]->value);
    }
    return 0;
}

static const struct fake_node *find_node(const char *key)
{
    const struct fake_node *found = NULL;
    for (size_t i = 0; i < SW_ARRAY_SIZE(fake_nodes); i++)
        if (strcmp(fake_nodes[i].id, key) == 0 || strcmp(fake_nodes[i].hostname, key) == 0)
            return &fake_nodes[i];
    for (size_t i = 0; i < SW_ARRAY_SIZE(fake_nodes); i++) {
        if (key[0] && strncmp(fake_nodes[i].id, key, strlen(key)) == 0) {
            if (found)
                return NULL;
            found = &fake_nodes[i];
        }
    }
    return found;
}

/* Answer one request: status, error text and packed payload. */
static void handle(const char *method, const uint8_t *in, size_t in_len, bool fail, int *status,
                   const char **error, uint8_t **out, size_t *out_len)
{
    *status = 0;
    *error = "";
    if (fail) {
        *status = -EPERM;
        *error = "this node is not a swarm manager";
        return;
    }
    if (strcmp(method, "Control.ListNodes") == 0) {
        struct node_buf bufs[SW_ARRAY_SIZE(fake_nodes)];
        Swarm__Node *ptrs[SW_ARRAY_SIZE(fake_nodes)];
        for (size_t i = 0; i < SW_ARRAY_SIZE(fake_nodes); i++) {
            fill_node(&bufs[i], &fake_nodes[i]);
            ptrs[i] = &bufs[i].n;
        }
        Swarm__ListNodesResponse resp = SWARM__LIST_NODES_RESPONSE__INIT;
        resp.n_nodes = SW_ARRAY_SIZE(fake_nodes);
        resp.nodes = ptrs;
        proto_pack(&resp.base, out, out_len);
    } else if (strcmp(method, "Control.GetNode") == 0) {
        Swarm__GetNodeRequest *req = swarm__get_node_request__unpack(NULL, in_len, in);
        const struct fake_node *f = req ? find_node(req->id) : NULL;
        if (req)
            swarm__get_node_request__free_unpacked(req, NULL);
        if (!f) {
            *status = -ENOENT;
            *error = "node not found";
            return;
        }
        struct node_buf b;
        fill_node(&b, f);
        Swarm__GetNodeResponse resp = SWARM__GET_NODE_RESPONSE__INIT;
        resp.node = &b.n;
        proto_pack(&resp.base, out, out_len);
    } else if (strcmp(method, "Control.UpdateNode") == 0) {
        Swarm__UpdateNodeRequest *req = swarm__update_node_request__unpack(NULL, in_len, in);
        const struct fake_node *f = req ? find_node(req->id) : NULL;
        if (!f) {
            if (req)
                swarm__update_node_request__free_unpacked(req, NULL);
            *status = -ENOENT;
            *error = "node not found";
            return;
        }
        *status = update_node(req, f, error);
        swarm__update_node_request__free_unpacked(req, NULL);
        if (*status < 0)
            return;
        struct node_buf b;
        fill_node(&b, f);
        Swarm__GetNodeResponse resp = SWARM__GET_NODE_RESPONSE__INIT;
        resp.node = &b.n;
        proto_pack(&resp.base, out, out_len);
    } else if (strcmp(method, "Control.GetCluster") == 0) {
        Swarm__Meta meta = SWARM__META__INIT;
        meta.version = 3;
        meta.created_at = T0;
        meta.updated_at = T0;
        Swarm__ClusterSpec spec = SWARM__CLUSTER_SPEC__INIT;
        spec.name = "default";
        spec.cert_expiry_ns = 90ULL * 24 * 3600 * NS;
        spec.heartbeat_period_ns = 5 * NS;
        spec.snapshot_interval = 10000;
        spec.task_history_limit = 5;
        Swarm__RootCA ca = SWARM__ROOT_CA__INIT;
        ca.ca_cert_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        static char key[] = "-----BEGIN PRIVATE KEY-----\nSECRETCAKEMATERIAL\n";
        ca.ca_key_pem.data = (uint8_t *)key;
        ca.ca_key_pem.len = strlen(key);
        ca.digest = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd";
        Swarm__JoinTokens tokens = SWARM__JOIN_TOKENS__INIT;
        tokens.worker = (char *)token_for(0);
        tokens.manager = (char *)token_for(1);
        Swarm__Cluster cl = SWARM__CLUSTER__INIT;
        cl.id = "clu0000000000000000000001";
        cl.meta = &meta;
        cl.spec = &spec;
        cl.root_ca = &ca;
        cl.join_tokens = &tokens;
        Swarm__GetClusterResponse resp = SWARM__GET_CLUSTER_RESPONSE__INIT;
        resp.cluster = &cl;
        resp.worker_token_digest =
            "1111111111111111111111111111111111111111111111111111111111111111";
        resp.manager_token_digest =
            "2222222222222222222222222222222222222222222222222222222222222222";
        resp.ca_cert_not_after = T0 + 20ULL * 365 * 24 * 3600 * NS;
        proto_pack(&resp.base, out, out_len);
    } else if (strcmp(method, "Control.GetJoinToken") == 0) {
        Swarm__GetJoinTokenRequest *req = swarm__get_join_token_request__unpack(NULL, in_len, in);
        if (!req) {
            *status = -EINVAL;
            *error = "bad request";
            return;
        }
        int role = req->role == SWARM__NODE_ROLE__ROLE_MANAGER ? 1 : 0;
        if (req->rotate)
            rotated[role] = true;
        swarm__get_join_token_request__free_unpacked(req, NULL);
        Swarm__GetJoinTokenResponse resp = SWARM__GET_JOIN_TOKEN_RESPONSE__INIT;
        resp.token = (char *)token_for(role);
        resp.manager_addr = "10.0.0.1:2377";
        proto_pack(&resp.base, out, out_len);
    } else if (!fake_objects_handle(method, in, in_len, status, error, out, out_len)) {
        *status = -ENOSYS;
        *error = "unknown method";
    }
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void serve(int fd, bool fail)
{
    struct proto_frame_decoder d;
    proto_frame_decoder_init(&d, PROTO_FRAME_MAX_DEFAULT);
    /* net's greeting: RESPONSE id 0 status 0 says the peer was accepted */
    struct proto_frame hello = {.kind = SWARM__FRAME_KIND__FRAME_RESPONSE};
    uint8_t *greeting = NULL;
    size_t greeting_len = 0;
    if (proto_frame_encode(&hello, PROTO_FRAME_MAX_DEFAULT, &greeting, &greeting_len) < 0 ||
        write_all(fd, greeting, greeting_len) < 0) {
        free(greeting);
        proto_frame_decoder_finish(&d);
        return;
    }
    free(greeting);
    for (;;) {
        uint8_t buf[4096];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || proto_frame_decoder_feed(&d, buf, (size_t)n) < 0)
            break;
        Swarm__Frame *f = NULL;
        int r;
        while ((r = proto_frame_decoder_next(&d, &f)) == 1) {
            int status;
            const char *error;
            uint8_t *payload = NULL;
            size_t payload_len = 0;
            handle(f->method, f->payload.data, f->payload.len, fail, &status, &error, &payload,
                   &payload_len);
            struct proto_frame resp = {.id = f->id,
                                       .kind = SWARM__FRAME_KIND__FRAME_RESPONSE,
                                       .status = status,
                                       .error = error,
                                       .payload = payload,
                                       .payload_len = payload_len};
            uint8_t *wire = NULL;
            size_t wire_len = 0;
            if (proto_frame_encode(&resp, PROTO_FRAME_MAX_DEFAULT, &wire, &wire_len) == 0)
                write_all(fd, wire, wire_len);
            free(wire);
            free(payload);
            swarm__frame__free_unpacked(f, NULL);
        }
        if (r < 0)
            break;
    }
    proto_frame_decoder_finish(&d);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: fake-control SOCKET [fail]\n");
        return 2;
    }
    bool fail = argc == 3 && strcmp(argv[2], "fail") == 0;
    alarm(60); /* never outlive a test that forgot us */
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "fake-control: socket path too long\n");
        return 1;
    }
    memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
    char dir[sizeof(sa.sun_path)];
    memcpy(dir, argv[1], strlen(argv[1]) + 1);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    fake_objects_init(slash ? dir : ".");
    _cleanup_close_ int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0) {
        perror("fake-control");
        return 1;
    }
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            perror("fake-control: accept");
            return 1;
        }
        serve(fd, fail);
        close(fd);
    }
}
