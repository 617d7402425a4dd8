/* bench-scale, bench-ca-sim: the manager under test, its control socket and swarmctl. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/scale-mgr.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "net/rpc.h"

const char *scale_mgr_prog = "bench-scale";

/* The manager we started, for the exit paths (the signal handler too). */
static volatile pid_t g_pid = -1;
static bool g_attached;
static char g_dir[64];
static char g_sock[PATH_MAX];
static bool g_keep;

void scale_mgr_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

double scale_mgr_ms_since(uint64_t t0)
{
    return (double)(sw_now_monotonic_ns() - t0) / 1e6;
}

bool scale_mgr_parse_uint(const char *s, unsigned max, unsigned *ret)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || s[0] == '-' || v < 1 || v > max)
        return false;
    *ret = (unsigned)v;
    return true;
}

/* rm -rf dir, async-signal-safe. */
static void remove_dir(const char *dir)
{
    pid_t p = fork();
    if (p == 0) {
        execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    if (p > 0)
        waitpid(p, NULL, 0);
}

static void on_signal(int sig)
{
    (void)sig;
    if (g_pid > 0)
        kill(g_pid, SIGKILL);
    if (g_dir[0] && !g_keep)
        remove_dir(g_dir);
    _exit(130);
}

void scale_mgr_signals(bool keep)
{
    g_keep = keep;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

pid_t scale_mgr_pid(void)
{
    return g_pid;
}

void scale_mgr_stop(void)
{
    pid_t pid = g_pid;
    if (pid > 0) {
        kill(pid, SIGTERM);
        int st;
        uint64_t t0 = sw_now_monotonic_ns();
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (scale_mgr_ms_since(t0) > 15000) {
                fprintf(stderr, "%s: swarmd %d ignored SIGTERM for 15 s, killing it\n",
                        scale_mgr_prog, (int)pid);
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                break;
            }
            scale_mgr_sleep_ms(20);
        }
        g_pid = -1;
    }
    if (g_dir[0]) {
        if (g_keep)
            fprintf(stderr, "%s: state and log kept in %s\n", scale_mgr_prog, g_dir);
        else
            remove_dir(g_dir);
        g_dir[0] = '\0';
    }
}

void scale_mgr_show_log(void)
{
    if (!g_dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "tail -n 8 %s/swarmd.log >&2", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "%s: (no log)\n", scale_mgr_prog);
}

bool scale_mgr_alive(void)
{
    int st;
    if (g_attached)
        return true;
    if (g_pid > 0 && waitpid(g_pid, &st, WNOHANG) == g_pid) {
        g_pid = -1;
        fprintf(stderr, "%s: swarmd exited (%s %d); its log:\n", scale_mgr_prog,
                WIFEXITED(st) ? "status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        scale_mgr_show_log();
    }
    return g_pid > 0;
}

/* ------------------------------------------------------------------ control socket */

int scale_mgr_call(const char *method, const ProtobufCMessage *msg, uint8_t **out, size_t *len,
                   char *err, size_t errsize)
{
    uint8_t *buf = NULL;
    size_t blen = 0;
    int r = msg ? proto_pack(msg, &buf, &blen) : 0;
    if (r < 0) {
        snprintf(err, errsize, "out of memory");
        return r;
    }
    net_sync *c;
    int status = 0;
    r = net_sync_connect_unix(g_sock, 10000, &c, err, errsize);
    if (r >= 0) {
        r = net_sync_call(c, method, buf, blen, &status, err, errsize, out, len);
        net_sync_close(c);
    }
    free(buf);
    if (r >= 0 && status < 0) {
        free(*out);
        *out = NULL;
        r = status;
    }
    return r;
}

Swarm__ListNodesResponse *scale_mgr_list_nodes(char *err, size_t errsize)
{
    uint8_t *out = NULL;
    size_t len = 0;
    if (scale_mgr_call("Control.ListNodes", NULL, &out, &len, err, errsize) < 0)
        return NULL;
    Swarm__ListNodesResponse *resp = swarm__list_nodes_response__unpack(NULL, len, out);
    free(out);
    if (!resp)
        snprintf(err, errsize, "malformed ListNodes answer");
    return resp;
}

Swarm__GetClusterResponse *scale_mgr_get_cluster(char *err, size_t errsize)
{
    Swarm__GetClusterRequest req = SWARM__GET_CLUSTER_REQUEST__INIT;
    uint8_t *out = NULL;
    size_t len = 0;
    if (scale_mgr_call("Control.GetCluster", &req.base, &out, &len, err, errsize) < 0)
        return NULL;
    Swarm__GetClusterResponse *resp = swarm__get_cluster_response__unpack(NULL, len, out);
    free(out);
    if (!resp || !resp->cluster || !resp->cluster->root_ca) {
        snprintf(err, errsize, "malformed GetCluster answer");
        if (resp)
            swarm__get_cluster_response__free_unpacked(resp, NULL);
        return NULL;
    }
    return resp;
}

int scale_mgr_count_ready(const char *prefix, char *err, size_t errsize)
{
    Swarm__ListNodesResponse *resp = scale_mgr_list_nodes(err, errsize);
    if (!resp)
        return -1;
    int n = 0;
    for (size_t i = 0; i < resp->n_nodes; i++)
        n += resp->nodes[i]->state == SWARM__NODE_STATE__NODE_READY &&
             strncmp(resp->nodes[i]->hostname, prefix, strlen(prefix)) == 0;
    swarm__list_nodes_response__free_unpacked(resp, NULL);
    return n;
}

int scale_mgr_get_token(char *token, size_t tsize, struct sw_addr *addr)
{
    Swarm__GetJoinTokenRequest req = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    req.role = SWARM__NODE_ROLE__ROLE_WORKER;
    uint8_t *out = NULL;
    size_t len = 0;
    char err[256];
    if (scale_mgr_call("Control.GetJoinToken", &req.base, &out, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: GetJoinToken: %s\n", scale_mgr_prog, err);
        return -1;
    }
    Swarm__GetJoinTokenResponse *resp = swarm__get_join_token_response__unpack(NULL, len, out);
    free(out);
    int r = resp && resp->token[0] && strlen(resp->token) < tsize &&
                    sw_addr_parse(resp->manager_addr, -1, 0, addr) >= 0
                ? 0
                : -1;
    if (r == 0)
        snprintf(token, tsize, "%s", resp->token);
    else
        fprintf(stderr, "%s: malformed GetJoinToken answer\n", scale_mgr_prog);
    if (resp) {
        sw_erase(resp->token, strlen(resp->token));
        swarm__get_join_token_response__free_unpacked(resp, NULL);
    }
    return r;
}

/* ------------------------------------------------------------------ the process */

int scale_mgr_attach(const char *sock)
{
    int n = snprintf(g_sock, sizeof(g_sock), "%s", sock);
    if (n < 0 || (size_t)n >= sizeof(g_sock))
        return -ENAMETOOLONG;
    g_attached = true;
    return 0;
}

int scale_mgr_start(const char *swarmd, const char *heartbeat, char *ret_self, size_t self_size)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/%s.XXXXXX", scale_mgr_prog);
    if (!mkdtemp(g_dir)) {
        int r = -errno;
        g_dir[0] = '\0';
        fprintf(stderr, "%s: mkdtemp: %s\n", scale_mgr_prog, strerror(-r));
        return r;
    }
    char state[96], log[96];
    snprintf(state, sizeof(state), "%s/state", g_dir);
    snprintf(log, sizeof(log), "%s/swarmd.log", g_dir);
    snprintf(g_sock, sizeof(g_sock), "%s/swarmd.sock", state);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        fprintf(stderr, "%s: fork: %s\n", scale_mgr_prog, strerror(-r));
        return r;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed bench */
        if (getppid() != parent)
            _exit(127);
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (in < 0 || fd < 0)
            _exit(127);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        char *argv[16];
        int a = 0;
        argv[a++] = (char *)swarmd;
        argv[a++] = "init";
        argv[a++] = "--state-dir";
        argv[a++] = state;
        argv[a++] = "--listen-addr";
        argv[a++] = "127.0.0.1:0";
        argv[a++] = "--hostname";
        argv[a++] = "scale-manager";
        argv[a++] = "--log-level";
        argv[a++] = "warn";
        if (heartbeat) {
            argv[a++] = "--dispatcher-heartbeat";
            argv[a++] = (char *)heartbeat;
        }
        argv[a] = NULL;
        execv(swarmd, argv);
        _exit(127);
    }
    g_pid = pid;
    uint64_t t0 = sw_now_monotonic_ns();
    char err[256] = "";
    while (scale_mgr_ms_since(t0) < 15000) {
        if (access(g_sock, F_OK) == 0) {
            Swarm__ListNodesResponse *resp = scale_mgr_list_nodes(err, sizeof(err));
            if (resp && resp->n_nodes == 1) {
                snprintf(ret_self, self_size, "%s", resp->nodes[0]->id);
                swarm__list_nodes_response__free_unpacked(resp, NULL);
                return 0;
            }
            if (resp)
                swarm__list_nodes_response__free_unpacked(resp, NULL);
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            g_pid = -1;
            fprintf(stderr, "%s: swarmd init exited (status %d); its log:\n", scale_mgr_prog,
                    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            scale_mgr_show_log();
            return -ECHILD;
        }
        scale_mgr_sleep_ms(5);
    }
    fprintf(stderr, "%s: swarmd init did not answer in 15 s (%s)\n", scale_mgr_prog, err);
    scale_mgr_show_log();
    return -ETIMEDOUT;
}

/* ------------------------------------------------------------------ swarmctl */

int scale_mgr_swarmctl(const char *path, char *const args[], char *err, size_t errsize)
{
    char host[PATH_MAX + 8];
    snprintf(host, sizeof(host), "unix://%s", g_sock);
    char *argv[24];
    int a = 0;
    argv[a++] = (char *)path;
    argv[a++] = "-H";
    argv[a++] = host;
    for (int i = 0; args[i] && a < 23; i++)
        argv[a++] = args[i];
    argv[a] = NULL;
    int pe[2];
    if (pipe2(pe, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(pe[1], 2);
        execv(path, argv);
        _exit(127);
    }
    close(pe[1]);
    if (pid < 0) {
        close(pe[0]);
        return -errno;
    }
    size_t n = 0;
    ssize_t k;
    char tmp[512];
    err[0] = '\0';
    while ((k = read(pe[0], tmp, sizeof(tmp))) != 0) {
        if (k < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        size_t take = SW_MIN((size_t)k, errsize - 1 - n);
        memcpy(err + n, tmp, take);
        n += take;
        err[n] = '\0';
    }
    close(pe[0]);
    err[strcspn(err, "\n")] = '\0';
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *scale_mgr_find_swarmctl(const char *arg, const char *swarmd, char *buf, size_t size)
{
    if (arg)
        return arg;
    if (getenv("SWARMCTL"))
        return getenv("SWARMCTL");
#ifdef BENCH_SWARMCTL
    return BENCH_SWARMCTL;
#endif
    const char *slash = swarmd ? strrchr(swarmd, '/') : NULL;
    if (!slash)
        return NULL;
    int n = snprintf(buf, size, "%.*s/swarmctl", (int)(slash - swarmd), swarmd);
    return n > 0 && (size_t)n < size && access(buf, X_OK) == 0 ? buf : NULL;
}

int scale_mgr_raise_nofile(unsigned nodes)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)nodes * 2 + 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max < want) {
        struct rlimit up = {want, want};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            return 0;
        want = rl.rlim_max;
    }
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    return rl.rlim_cur >= (rlim_t)nodes + 256 ? 0 : -EMFILE;
}
