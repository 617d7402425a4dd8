/* bench-raft's swarmd cluster: three managers on loopback in a temp dir (init + 2 joins with
 * the manager token), their leader and readiness through the control socket, kill/restart. */
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

#include "bench/raft.h"
#include "common/swtime.h"
#include "net/rpc.h"
#include "proto/frame.h"

#define START_TIMEOUT_MS 20000
#define READY_TIMEOUT_MS 30000

void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

double ms_since(uint64_t t0_ns)
{
    return (double)(sw_now_monotonic_ns() - t0_ns) / 1e6;
}

int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ processes */

#define MAX_PIDS 16
static volatile pid_t g_pids[MAX_PIDS];

void cluster_register_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (g_pids[i] <= 0) {
            g_pids[i] = pid;
            return;
        }
}

void cluster_forget_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (g_pids[i] == pid)
            g_pids[i] = 0;
}

/* Async-signal-safe: SIGKILL whatever is left. */
void cluster_kill_all(void)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
        }
}

/* fork/exec swarmd with argv (argv[0] is replaced by the path); output appended to log. */
static pid_t spawn(const char *swarmd, char **argv, const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
        if (pid > 0)
            cluster_register_pid(pid);
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed bench */
    if (getppid() != parent)
        _exit(127);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (in < 0 || fd < 0)
        _exit(127);
    dup2(in, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    argv[0] = (char *)swarmd;
    execv(swarmd, argv);
    _exit(127);
}

static bool alive(struct mgr_proc *p)
{
    if (p->pid <= 0)
        return false;
    if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
        cluster_forget_pid(p->pid);
        p->pid = -1;
        return false;
    }
    return true;
}

void cluster_show_log(struct cluster *c, int i)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "tail -n 15 '%s' >&2", c->m[i].log);
    fprintf(stderr, "--- %s (last lines)\n", c->m[i].log);
    if (system(cmd) != 0)
        fprintf(stderr, "(cannot show it)\n");
}

/* ------------------------------------------------------------------ control calls */

/* One unary call over a fresh sync connection; the unpacked answer into *ret. */
static int ctl_call(const char *sock, const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *desc, uint64_t timeout_ms,
                    ProtobufCMessage **ret, char *err, size_t err_size)
{
    net_sync *c;
    uint8_t buf[2048];
    size_t n = 0;
    if (req) {
        n = protobuf_c_message_get_packed_size(req);
        if (n > sizeof(buf)) {
            snprintf(err, err_size, "request too large");
            return -EMSGSIZE;
        }
        protobuf_c_message_pack(req, buf);
    }
    int r = net_sync_connect_unix(sock, timeout_ms, &c, err, err_size);
    if (r < 0)
        return r;
    int status = 0;
    uint8_t *out = NULL;
    size_t len = 0;
    r = net_sync_call(c, method, buf, n, &status, err, err_size, &out, &len);
    net_sync_close(c);
    if (r < 0) {
        free(out);
        return r;
    }
    if (status < 0) {
        free(out);
        return status;
    }
    if (desc) {
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, out);
        if (!m) {
            free(out);
            snprintf(err, err_size, "malformed answer to %s", method);
            return -EBADMSG;
        }
        *ret = m;
    }
    free(out);
    return 0;
}

int secret_create_sync(const char *sock, const char *name, size_t payload, uint64_t timeout_ms,
                       char *err, size_t err_size)
{
    uint8_t data[1024];
    if (payload > sizeof(data))
        payload = sizeof(data);
    memset(data, 'x', payload);
    Swarm__CreateSecretRequest req = SWARM__CREATE_SECRET_REQUEST__INIT;
    req.name = (char *)name;
    req.data.data = data;
    req.data.len = payload;
    return ctl_call(sock, "Control.CreateSecret", &req.base, NULL, timeout_ms, NULL, err, err_size);
}

static Swarm__ListNodesResponse *list_nodes(const char *sock, uint64_t timeout_ms)
{
    ProtobufCMessage *m = NULL;
    char err[256];
    if (ctl_call(sock, "Control.ListNodes", NULL, &swarm__list_nodes_response__descriptor,
                 timeout_ms, &m, err, sizeof(err)) < 0)
        return NULL;
    return (Swarm__ListNodesResponse *)m;
}

bool control_answers(const char *sock, uint64_t timeout_ms)
{
    Swarm__ListNodesResponse *r = list_nodes(sock, timeout_ms);
    if (r)
        swarm__list_nodes_response__free_unpacked(r, NULL);
    return r != NULL;
}

int cluster_leader(struct cluster *c, int via)
{
    Swarm__ListNodesResponse *r = list_nodes(c->m[via].sock, 1000);
    if (!r)
        return -1;
    int leader = -1;
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Swarm__Node *n = r->nodes[i];
        if (n->role != SWARM__NODE_ROLE__ROLE_MANAGER || !n->manager_status ||
            !n->manager_status->leader)
            continue;
        for (int j = 0; j < RAFT_MANAGERS; j++)
            if (strcmp(n->hostname, c->m[j].hostname) == 0)
                leader = j;
    }
    swarm__list_nodes_response__free_unpacked(r, NULL);
    return leader;
}

bool cluster_ready(struct cluster *c, int via, int n)
{
    Swarm__ListNodesResponse *r = list_nodes(c->m[via].sock, 1000);
    if (!r)
        return false;
    int managers = 0, ready = 0, leaders = 0, reachable = 0;
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Swarm__Node *nd = r->nodes[i];
        if (nd->role != SWARM__NODE_ROLE__ROLE_MANAGER)
            continue;
        managers++;
        ready += nd->state == SWARM__NODE_STATE__NODE_READY;
        if (nd->manager_status) {
            leaders += nd->manager_status->leader;
            reachable += nd->manager_status->reachability == SWARM__REACHABILITY__REACH_REACHABLE;
        }
    }
    swarm__list_nodes_response__free_unpacked(r, NULL);
    return managers == n && ready == n && leaders == 1 && reachable == n;
}

void cluster_describe(struct cluster *c, int via)
{
    Swarm__ListNodesResponse *r = list_nodes(c->m[via].sock, 1000);
    if (!r) {
        fprintf(stderr, "bench-raft: %s does not answer ListNodes\n", c->m[via].hostname);
        return;
    }
    static const char *states[] = {"unknown", "down", "ready", "disconnected"};
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Swarm__Node *n = r->nodes[i];
        const Swarm__ManagerStatus *ms = n->manager_status;
        fprintf(stderr, "bench-raft: via %s: %s %s state=%s%s%s%s leader=%d reachability=%d\n",
                c->m[via].hostname, n->hostname, n->id,
                (unsigned)n->state < 4 ? states[n->state] : "?", n->state_message[0] ? " (" : "",
                n->state_message, n->state_message[0] ? ")" : "", ms ? ms->leader : -1,
                ms ? (int)ms->reachability : -1);
    }
    swarm__list_nodes_response__free_unpacked(r, NULL);
}

/* ------------------------------------------------------------------ lifecycle */

static int wait_answers(struct cluster *c, int i, char *errmsg, size_t errmsg_size)
{
    uint64_t t0 = sw_now_monotonic_ns();
    while (ms_since(t0) < START_TIMEOUT_MS) {
        if (!alive(&c->m[i])) {
            snprintf(errmsg, errmsg_size, "%s exited (log: %s)", c->m[i].hostname, c->m[i].log);
            return -ECHILD;
        }
        if (access(c->m[i].sock, F_OK) == 0 && control_answers(c->m[i].sock, 1000))
            return 0;
        sleep_ms(5);
    }
    snprintf(errmsg, errmsg_size, "%s did not answer in %d s (log: %s)", c->m[i].hostname,
             START_TIMEOUT_MS / 1000, c->m[i].log);
    return -ETIMEDOUT;
}

int cluster_start(struct cluster *c, char *errmsg, size_t errmsg_size)
{
    snprintf(c->dir, sizeof(c->dir), "/tmp/bench-raft.XXXXXX");
    if (!mkdtemp(c->dir)) {
        int r = -errno;
        c->dir[0] = '\0';
        snprintf(errmsg, errmsg_size, "mkdtemp: %s", strerror(-r));
        return r;
    }
    for (int i = 0; i < RAFT_MANAGERS; i++) {
        struct mgr_proc *p = &c->m[i];
        p->pid = -1;
        snprintf(p->state, sizeof(p->state), "%s/m%d", c->dir, i + 1);
        snprintf(p->sock, sizeof(p->sock), "%s/swarmd.sock", p->state);
        snprintf(p->log, sizeof(p->log), "%s/m%d.log", c->dir, i + 1);
        snprintf(p->hostname, sizeof(p->hostname), "mgr-%d", i + 1);
    }
    char *argv[16] = {
        NULL,          "init",       "--state-dir",    c->m[0].state, "--listen-addr",
        "127.0.0.1:0", "--hostname", c->m[0].hostname, "--log-level", (char *)c->log_level,
        NULL};
    c->m[0].pid = spawn(c->swarmd, argv, c->m[0].log);
    if (c->m[0].pid < 0) {
        snprintf(errmsg, errmsg_size, "fork: %s", strerror(errno));
        return -errno;
    }
    int r = wait_answers(c, 0, errmsg, errmsg_size);
    if (r < 0)
        return r;
    Swarm__GetJoinTokenRequest req = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    req.role = SWARM__NODE_ROLE__ROLE_MANAGER;
    ProtobufCMessage *m = NULL;
    char err[256];
    r = ctl_call(c->m[0].sock, "Control.GetJoinToken", &req.base,
                 &swarm__get_join_token_response__descriptor, 2000, &m, err, sizeof(err));
    if (r < 0) {
        snprintf(errmsg, errmsg_size, "join-token: %s", err);
        return r;
    }
    Swarm__GetJoinTokenResponse *tok = (Swarm__GetJoinTokenResponse *)m;
    char token[256], addr[80];
    snprintf(token, sizeof(token), "%s", tok->token);
    snprintf(addr, sizeof(addr), "%s", tok->manager_addr);
    swarm__get_join_token_response__free_unpacked(tok, NULL);
    if (!token[0] || !addr[0]) {
        snprintf(errmsg, errmsg_size, "no manager token or address from the first manager");
        return -EPROTO;
    }
    for (int i = 1; i < RAFT_MANAGERS; i++) {
        char *jargv[16] = {NULL,
                           "join",
                           "--state-dir",
                           c->m[i].state,
                           "--listen-addr",
                           "127.0.0.1:0",
                           "--hostname",
                           c->m[i].hostname,
                           "--log-level",
                           (char *)c->log_level,
                           token,
                           addr,
                           NULL};
        c->m[i].pid = spawn(c->swarmd, jargv, c->m[i].log);
        if (c->m[i].pid < 0) {
            snprintf(errmsg, errmsg_size, "fork: %s", strerror(errno));
            return -errno;
        }
        r = wait_answers(c, i, errmsg, errmsg_size);
        if (r < 0)
            return r;
    }
    uint64_t t0 = sw_now_monotonic_ns();
    while (!cluster_ready(c, 0, RAFT_MANAGERS)) {
        if (ms_since(t0) > READY_TIMEOUT_MS) {
            snprintf(errmsg, errmsg_size, "the 3 managers were not all Ready in %d s",
                     READY_TIMEOUT_MS / 1000);
            return -ETIMEDOUT;
        }
        sleep_ms(20);
    }
    return 0;
}

int cluster_restart(struct cluster *c, int i)
{
    char *argv[8] = {NULL, "--state-dir", c->m[i].state, "--log-level", (char *)c->log_level, NULL};
    c->m[i].pid = spawn(c->swarmd, argv, c->m[i].log);
    return c->m[i].pid < 0 ? -errno : 0;
}

void cluster_kill(struct cluster *c, int i, int sig)
{
    struct mgr_proc *p = &c->m[i];
    if (p->pid <= 0)
        return;
    kill(p->pid, sig);
    if (sig == SIGKILL) {
        waitpid(p->pid, NULL, 0);
        cluster_forget_pid(p->pid);
        p->pid = -1;
    }
}

void cluster_stop(struct cluster *c, bool keep)
{
    for (int i = 0; i < RAFT_MANAGERS; i++)
        if (c->m[i].pid > 0)
            kill(c->m[i].pid, SIGTERM);
    for (int i = 0; i < RAFT_MANAGERS; i++) {
        struct mgr_proc *p = &c->m[i];
        if (p->pid <= 0)
            continue;
        for (int t = 0; t < 100 && alive(p); t++)
            sleep_ms(50);
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            cluster_forget_pid(p->pid);
            p->pid = -1;
        }
    }
    if (!c->dir[0])
        return;
    if (keep) {
        fprintf(stderr, "bench-raft: kept %s (state dirs and logs)\n", c->dir);
        return;
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench-raft: could not remove %s\n", c->dir);
    c->dir[0] = '\0';
}
