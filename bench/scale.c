/* bench-scale: one `swarmd init` manager (drained) against N simulated nodes in this process
 * over real mTLS sessions (scale-nodes.c): time until all N are Ready, time from
 * `swarmctl service create --replicas T` until the manager sees T tasks RUNNING, and the
 * manager's RSS. No Docker peer: Swarm's published largest test (~2,000 nodes / ~95,000 tasks
 * with 3 managers) is the reference.
 *   bench-scale [-n NODES] [-t TASKS] [-j INFLIGHT] [--poll-ms MS] [--timeout SECS]
 *               [--settle SECS] [--heartbeat DURATION] [--swarmd PATH] [--swarmctl PATH]
 *               [--keep] */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/scale.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "net/rpc.h"
#include "proto/frame.h"

#define SERVICE_NAME "bench-scale"
#define MANAGER_MAX_CONN 1024u /* net_server's default; swarmd sets no other */
#define TARGET_MS 10000.0
#define TARGET_RSS_MIB 200.0

/* The manager we started, for the exit paths (the signal handler too). */
static volatile pid_t g_pid = -1;
static char g_dir[64];
static char g_sock[160];
static bool g_keep;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static double ms_since(uint64_t t0)
{
    return (double)(sw_now_monotonic_ns() - t0) / 1e6;
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

static void swarmd_stop(void)
{
    pid_t pid = g_pid;
    if (pid > 0) {
        kill(pid, SIGTERM);
        int st;
        uint64_t t0 = sw_now_monotonic_ns();
        while (waitpid(pid, &st, WNOHANG) == 0) {
            if (ms_since(t0) > 15000) {
                fprintf(stderr, "bench-scale: swarmd %d ignored SIGTERM for 15 s, killing it\n",
                        (int)pid);
                kill(pid, SIGKILL);
                waitpid(pid, &st, 0);
                break;
            }
            sleep_ms(20);
        }
        g_pid = -1;
    }
    if (g_dir[0]) {
        if (g_keep)
            fprintf(stderr, "bench-scale: state and log kept in %s\n", g_dir);
        else
            remove_dir(g_dir);
        g_dir[0] = '\0';
    }
}

/* The last lines of the manager's log, on a failure. */
static void show_log(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "tail -n 8 %s/swarmd.log >&2", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench-scale: (no log)\n");
}

/* False (and says so) once the manager has exited. */
static bool manager_alive(void)
{
    int st;
    if (g_pid > 0 && waitpid(g_pid, &st, WNOHANG) == g_pid) {
        g_pid = -1;
        fprintf(stderr, "bench-scale: swarmd exited (%s %d); its log:\n",
                WIFEXITED(st) ? "status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        show_log();
    }
    return g_pid > 0;
}

/* ------------------------------------------------------------------ control socket */

/* One unary call on the control socket; out is malloc'd (NULL when empty). */
static int ctl_call(const char *method, const ProtobufCMessage *msg, uint8_t **out, size_t *len,
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

static Swarm__ListNodesResponse *list_nodes(char *err, size_t errsize)
{
    uint8_t *out = NULL;
    size_t len = 0;
    if (ctl_call("Control.ListNodes", NULL, &out, &len, err, errsize) < 0)
        return NULL;
    Swarm__ListNodesResponse *resp = swarm__list_nodes_response__unpack(NULL, len, out);
    free(out);
    if (!resp)
        snprintf(err, errsize, "malformed ListNodes answer");
    return resp;
}

/* Start `swarmd init` in a fresh temp dir and wait until the control socket answers. */
static int swarmd_start(const char *swarmd, const char *heartbeat, char *self_id, size_t id_size)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/bench-scale.XXXXXX");
    if (!mkdtemp(g_dir)) {
        int r = -errno;
        g_dir[0] = '\0';
        fprintf(stderr, "bench-scale: mkdtemp: %s\n", strerror(-r));
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
        fprintf(stderr, "bench-scale: fork: %s\n", strerror(-r));
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
    while (ms_since(t0) < 15000) {
        if (access(g_sock, F_OK) == 0) {
            Swarm__ListNodesResponse *resp = list_nodes(err, sizeof(err));
            if (resp && resp->n_nodes == 1) {
                snprintf(self_id, id_size, "%s", resp->nodes[0]->id);
                swarm__list_nodes_response__free_unpacked(resp, NULL);
                return 0;
            }
            if (resp)
                swarm__list_nodes_response__free_unpacked(resp, NULL);
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            g_pid = -1;
            fprintf(stderr, "bench-scale: swarmd init exited (status %d); its log:\n",
                    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            show_log();
            return -ECHILD;
        }
        sleep_ms(5);
    }
    fprintf(stderr, "bench-scale: swarmd init did not answer in 15 s (%s)\n", err);
    show_log();
    return -ETIMEDOUT;
}

/* ------------------------------------------------------------------ swarmctl */

/* Run swarmctl -H unix://SOCK args...; stdout discarded, the first line of stderr into err.
 * Returns the exit status or -errno. */
static int swarmctl(const char *path, char *const args[], char *err, size_t errsize)
{
    char host[192];
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

/* ------------------------------------------------------------------ measurements */

/* VmRSS and VmHWM of a process (0: this one) in MiB (-1 when gone or unreadable). */
static void proc_rss(pid_t pid, double *rss, double *hwm)
{
    char path[64], line[256];
    *rss = *hwm = -1;
    if (pid < 0)
        return;
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long kib;
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1)
            *rss = (double)kib / 1024.0;
        else if (sscanf(line, "VmHWM: %llu kB", &kib) == 1)
            *hwm = (double)kib / 1024.0;
    }
    fclose(f);
}

/* CPU time (user + system) a process used so far, in ms (-1 if gone). */
static double proc_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "re") : NULL;
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* comm may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* Ready simulated nodes in node ls. */
static int count_ready(char *err, size_t errsize)
{
    Swarm__ListNodesResponse *resp = list_nodes(err, errsize);
    if (!resp)
        return -1;
    int n = 0;
    for (size_t i = 0; i < resp->n_nodes; i++)
        n += resp->nodes[i]->state == SWARM__NODE_STATE__NODE_READY &&
             strncmp(resp->nodes[i]->hostname, "scale-n", 7) == 0;
    swarm__list_nodes_response__free_unpacked(resp, NULL);
    return n;
}

/* The service's running count as the manager reports it (Control.GetService). */
static int64_t service_running(char *err, size_t errsize)
{
    Swarm__GetServiceRequest req = SWARM__GET_SERVICE_REQUEST__INIT;
    req.id = SERVICE_NAME;
    uint8_t *out = NULL;
    size_t len = 0;
    if (ctl_call("Control.GetService", &req.base, &out, &len, err, errsize) < 0)
        return -1;
    Swarm__ServiceResponse *resp = swarm__service_response__unpack(NULL, len, out);
    free(out);
    if (!resp) {
        snprintf(err, errsize, "malformed GetService answer");
        return -1;
    }
    int64_t running = (int64_t)resp->running;
    swarm__service_response__free_unpacked(resp, NULL);
    return running;
}

static int get_token(char *token, size_t tsize, struct sw_addr *addr)
{
    Swarm__GetJoinTokenRequest req = SWARM__GET_JOIN_TOKEN_REQUEST__INIT;
    req.role = SWARM__NODE_ROLE__ROLE_WORKER;
    uint8_t *out = NULL;
    size_t len = 0;
    char err[256];
    if (ctl_call("Control.GetJoinToken", &req.base, &out, &len, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench-scale: GetJoinToken: %s\n", err);
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
        fprintf(stderr, "bench-scale: malformed GetJoinToken answer\n");
    if (resp) {
        sw_erase(resp->token, strlen(resp->token));
        swarm__get_join_token_response__free_unpacked(resp, NULL);
    }
    return r;
}

/* ------------------------------------------------------------------ main */

struct opts {
    unsigned nodes, tasks, inflight, poll_ms, timeout_s, settle_s;
    const char *swarmd, *swarmctl, *heartbeat;
};

static int usage(void)
{
    fprintf(
        stderr,
        "usage: bench-scale [-n NODES] [-t TASKS] [-j INFLIGHT] [--poll-ms MS] [--timeout SECS]\n"
        "                   [--settle SECS] [--heartbeat DURATION] [--swarmd PATH]\n"
        "                   [--swarmctl PATH] [--keep]\n");
    return 2;
}

static bool parse_uint(const char *s, unsigned max, unsigned *ret)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || s[0] == '-' || v < 1 || v > max)
        return false;
    *ret = (unsigned)v;
    return true;
}

/* --swarmctl, $SWARMCTL, -DBENCH_SWARMCTL, else the swarmctl beside swarmd. */
static const char *find_swarmctl(const char *arg, const char *swarmd, char *buf, size_t size)
{
    if (arg)
        return arg;
    if (getenv("SWARMCTL"))
        return getenv("SWARMCTL");
#ifdef BENCH_SWARMCTL
    return BENCH_SWARMCTL;
#endif
    const char *slash = strrchr(swarmd, '/');
    if (!slash)
        return NULL;
    int n = snprintf(buf, size, "%.*s/swarmctl", (int)(slash - swarmd), swarmd);
    return n > 0 && (size_t)n < size && access(buf, X_OK) == 0 ? buf : NULL;
}

/* Enough descriptors for N sessions here and in the manager (it inherits the limit). */
static int raise_nofile(unsigned nodes)
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

/* Wait until every node has a session (or gave up). */
static int wait_ready(scale_nodes *s, unsigned n, struct scale_stats *st)
{
    uint64_t t0 = sw_now_monotonic_ns(), limit_ms = 60000 + (uint64_t)n * 60;
    for (;;) {
        scale_nodes_stats(s, st);
        if (st->ready + st->failed >= n)
            return st->failed ? -1 : 0;
        if (!manager_alive())
            return -1;
        if (ms_since(t0) > (double)limit_ms) {
            fprintf(stderr, "bench-scale: %llu of %u nodes Ready after %llu s\n",
                    (unsigned long long)st->ready, n, (unsigned long long)(limit_ms / 1000));
            return -1;
        }
        sleep_ms(2);
    }
}

static int run(const struct opts *o)
{
    char self[64], token[160], err[256];
    struct sw_addr mgr;
    double rss0, hwm0, rss1, hwm1, brss, bhwm;
    struct scale_stats st;

    if (swarmd_start(o->swarmd, o->heartbeat, self, sizeof(self)) < 0)
        return 1;
    char *drain[] = {"node", "update", "--availability", "drain", self, NULL};
    int r = swarmctl(o->swarmctl, drain, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "bench-scale: swarmctl node update --availability drain: %s\n",
                r < 0 ? strerror(-r) : err);
        return 1;
    }
    if (get_token(token, sizeof(token), &mgr) < 0)
        return 1;

    struct scale_nodes_config cfg = {
        .n = o->nodes, .inflight = o->inflight, .manager = mgr, .token = token};
    scale_nodes *s = NULL;
    uint64_t tk = sw_now_monotonic_ns();
    r = scale_nodes_create(&cfg, &s, err, sizeof(err));
    sw_erase(token, sizeof(token));
    if (r < 0) {
        fprintf(stderr, "bench-scale: %s\n", err);
        return 1;
    }
    double keys_ms = ms_since(tk);

    /* (1) all nodes joined and Ready */
    uint64_t t0 = sw_now_monotonic_ns();
    r = scale_nodes_start(s);
    if (r < 0) {
        fprintf(stderr, "bench-scale: cannot start the node thread: %s\n", strerror(-r));
        scale_nodes_destroy(s);
        return 1;
    }
    int failed = 0;
    if (wait_ready(s, o->nodes, &st) < 0) {
        fprintf(stderr, "bench-scale: %llu nodes Ready, %llu gave up; last error: %s\n",
                (unsigned long long)st.ready, (unsigned long long)st.failed, st.last_error);
        if (g_pid > 0)
            show_log();
        scale_nodes_destroy(s);
        return 1;
    }
    double ready_ms = (double)(st.last_ready_ns - t0) / 1e6;
    double certs_ms = (double)(st.last_cert_ns - t0) / 1e6;
    /* the first session message follows the Ready commit: node ls must agree */
    int listed = count_ready(err, sizeof(err));
    if (listed != (int)o->nodes) {
        fprintf(stderr, "bench-scale: node ls shows %d Ready simulated nodes, expected %u%s%s\n",
                listed, o->nodes, listed < 0 ? ": " : "", listed < 0 ? err : "");
        failed = 1;
    }
    printf(
        "scale: nodes=%u ready_ms=%.0f (last certificate at %.0f ms; %u joins in flight; "
        "keys+CSRs made before, untimed: %.0f ms)\n",
        o->nodes, ready_ms, certs_ms, o->inflight, keys_ms);

    /* (3) idle after the join */
    sleep_ms(2000);
    proc_rss(g_pid > 0 ? g_pid : -1, &rss0, &hwm0);

    /* (2) T tasks RUNNING as the manager sees them */
    char replicas[16];
    snprintf(replicas, sizeof(replicas), "%u", o->tasks);
    char *create[] = {"service", "create", "--name",     SERVICE_NAME, "--replicas",
                      replicas,  "--",     "/bin/sleep", "3600",       NULL};
    uint64_t t1 = sw_now_monotonic_ns();
    r = swarmctl(o->swarmctl, create, err, sizeof(err));
    double create_ms = ms_since(t1);
    if (r != 0) {
        fprintf(stderr, "bench-scale: swarmctl service create: %s\n", r < 0 ? strerror(-r) : err);
        scale_nodes_destroy(s);
        return 1;
    }
    int64_t running = 0;
    double converge_ms = -1;
    uint64_t limit_ms =
        o->timeout_s ? (uint64_t)o->timeout_s * 1000 : 60000 + (uint64_t)o->tasks * 10;
    while (ms_since(t1) < (double)limit_ms && manager_alive()) {
        int64_t now = service_running(err, sizeof(err));
        running = now >= 0 ? now : running;
        if (now >= (int64_t)o->tasks) {
            converge_ms = ms_since(t1);
            break;
        }
        sleep_ms(o->poll_ms);
    }
    proc_rss(g_pid > 0 ? g_pid : -1, &rss1, &hwm1);
    proc_rss(0, &brss, &bhwm);
    /* (5) what the converged cluster costs the manager while nothing changes */
    double idle_cpu = -1;
    if (converge_ms >= 0 && o->settle_s) {
        double c0 = proc_cpu_ms(g_pid);
        uint64_t ts = sw_now_monotonic_ns();
        sleep_ms(o->settle_s * 1000);
        double c1 = proc_cpu_ms(g_pid);
        if (c0 >= 0 && c1 >= 0)
            idle_cpu = 100.0 * (c1 - c0) / ms_since(ts);
    }
    scale_nodes_stats(s, &st);
    double acked_ms = st.last_running_ns > t1 ? (double)(st.last_running_ns - t1) / 1e6 : -1;
    if (converge_ms < 0) {
        fprintf(stderr,
                "bench-scale: %lld of %u tasks RUNNING after %.0f s (%llu assignments seen, "
                "%llu RUNNING answered); last error: %s\n",
                (long long)running, o->tasks, ms_since(t1) / 1000,
                (unsigned long long)st.assignments, (unsigned long long)st.running_acked,
                st.last_error[0] ? st.last_error : "none");
        if (g_pid > 0)
            show_log();
        failed = 1;
    }

    bool met = converge_ms >= 0 && converge_ms < TARGET_MS && ready_ms < TARGET_MS &&
               hwm1 < TARGET_RSS_MIB;
    printf(
        "scale: nodes=%u ready_ms=%.0f tasks=%u converge_ms=%.0f manager_rss_mib=%.1f "
        "(idle after join %.1f) hwm_mib=%.1f   target ready+converge < %.0f s each, "
        "manager < %.0f MiB: %s (no Docker peer: Swarm's published largest test is ~2,000 "
        "nodes / ~95,000 tasks with 3 managers)\n",
        o->nodes, ready_ms, o->tasks, converge_ms, rss1, rss0, hwm1, TARGET_MS / 1000,
        TARGET_RSS_MIB, met ? "met" : "MISSED");
    printf(
        "scale: create answered in %.0f ms; last RUNNING committed %.0f ms after create (as the "
        "nodes saw it); %llu assignments, %llu status calls; sessions lost %llu, heartbeats "
        "%llu answered / %llu late / %llu refused; bench process RSS %.1f MiB (hwm %.1f); "
        "polled every %u ms; manager CPU %.0f%% of a core over %u s after convergence\n",
        create_ms, acked_ms, (unsigned long long)st.assignments,
        (unsigned long long)st.status_calls, (unsigned long long)st.sessions_lost,
        (unsigned long long)st.heartbeats, (unsigned long long)st.hb_late,
        (unsigned long long)st.hb_errors, brss, bhwm, o->poll_ms, idle_cpu, o->settle_s);
    if (st.sessions_lost || st.hb_errors || st.status_errors)
        printf("scale: last error seen by a node: %s\n", st.last_error);
    scale_nodes_destroy(s);
    return failed;
}

int main(int argc, char **argv)
{
    struct opts o = {.nodes = 1000, .tasks = 10000, .inflight = 16, .poll_ms = 100, .settle_s = 3};
    const char *swarmctl_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--keep") == 0) {
            g_keep = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return usage();
        if (strcmp(a, "-n") == 0) {
            if (!parse_uint(v, 100000, &o.nodes))
                return usage();
        } else if (strcmp(a, "-t") == 0) {
            if (!parse_uint(v, 1000000, &o.tasks))
                return usage();
        } else if (strcmp(a, "-j") == 0) {
            if (!parse_uint(v, 10000, &o.inflight))
                return usage();
        } else if (strcmp(a, "--timeout") == 0) {
            if (!parse_uint(v, 86400, &o.timeout_s))
                return usage();
        } else if (strcmp(a, "--settle") == 0) {
            if (strcmp(v, "0") == 0)
                o.settle_s = 0;
            else if (!parse_uint(v, 3600, &o.settle_s))
                return usage();
        } else if (strcmp(a, "--poll-ms") == 0) {
            if (!parse_uint(v, 10000, &o.poll_ms))
                return usage();
        } else if (strcmp(a, "--heartbeat") == 0)
            o.heartbeat = v;
        else if (strcmp(a, "--swarmd") == 0)
            o.swarmd = v;
        else if (strcmp(a, "--swarmctl") == 0)
            swarmctl_arg = v;
        else
            return usage();
    }
    if (!o.swarmd)
        o.swarmd = getenv("SWARMD");
#ifdef BENCH_SWARMD
    if (!o.swarmd)
        o.swarmd = BENCH_SWARMD;
#endif
    if (!o.swarmd || access(o.swarmd, X_OK) < 0) {
        fprintf(stderr, "bench-scale: no swarmd at %s (give --swarmd PATH or SWARMD)\n",
                o.swarmd ? o.swarmd : "(none)");
        return 2;
    }
    char ctlbuf[PATH_MAX];
    o.swarmctl = find_swarmctl(swarmctl_arg, o.swarmd, ctlbuf, sizeof(ctlbuf));
    if (!o.swarmctl) {
        fprintf(stderr, "bench-scale: no swarmctl beside %s (give --swarmctl PATH or SWARMCTL)\n",
                o.swarmd);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (o.nodes + o.inflight + 1 > MANAGER_MAX_CONN)
        printf(
            "scale: warning: the manager accepts at most %u TCP connections (net_server's "
            "default; swarmd sets no other) and its own agent holds one: with %u nodes + %u "
            "joins in flight some will be refused\n",
            MANAGER_MAX_CONN, o.nodes, o.inflight);
    int r = raise_nofile(o.nodes + o.inflight);
    if (r < 0) {
        fprintf(stderr, "bench-scale: cannot raise RLIMIT_NOFILE for %u nodes: %s\n", o.nodes,
                strerror(-r));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int failed = run(&o);
    swarmd_stop();
    return failed ? 1 : 0;
}
