/* bench-scale: one `swarmd init` manager (drained) against N simulated nodes in this process
 * over real mTLS sessions (scale-nodes.c): time until all N are Ready, time from
 * `swarmctl service create --replicas T` until the manager sees T tasks RUNNING, and the
 * manager's RSS. No Docker peer: Swarm's published largest test (~2,000 nodes / ~95,000 tasks
 * with 3 managers) is the reference.
 *   bench-scale [-n NODES] [-t TASKS] [-j INFLIGHT] [--poll-ms MS] [--timeout SECS]
 *               [--settle SECS] [--heartbeat DURATION] [--swarmd PATH] [--swarmctl PATH]
 *               [--keep] */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/scale-mgr.h"
#include "bench/scale.h"
#include "common/cleanup.h"
#include "common/swtime.h"
#include "net/rpc.h"
#include "proto/frame.h"

#define SERVICE_NAME "bench-scale"
#define MANAGER_MAX_CONN 1024u /* net_server's default; swarmd sets no other */
#define TARGET_MS 10000.0
#define TARGET_RSS_MIB 200.0

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

/* The service's running count as the manager reports it (Control.GetService). */
static int64_t service_running(char *err, size_t errsize)
{
    Swarm__GetServiceRequest req = SWARM__GET_SERVICE_REQUEST__INIT;
    req.id = SERVICE_NAME;
    uint8_t *out = NULL;
    size_t len = 0;
    if (scale_mgr_call("Control.GetService", &req.base, &out, &len, err, errsize) < 0)
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

/* Wait until every node has a session (or gave up). */
static int wait_ready(scale_nodes *s, unsigned n, struct scale_stats *st)
{
    uint64_t t0 = sw_now_monotonic_ns(), limit_ms = 60000 + (uint64_t)n * 60;
    for (;;) {
        scale_nodes_stats(s, st);
        if (st->ready + st->failed >= n)
            return st->failed ? -1 : 0;
        if (!scale_mgr_alive())
            return -1;
        if (scale_mgr_ms_since(t0) > (double)limit_ms) {
            fprintf(stderr, "bench-scale: %llu of %u nodes Ready after %llu s\n",
                    (unsigned long long)st->ready, n, (unsigned long long)(limit_ms / 1000));
            return -1;
        }
        scale_mgr_sleep_ms(2);
    }
}

static int run(const struct opts *o)
{
    char self[64], token[160], err[256];
    struct sw_addr mgr;
    double rss0, hwm0, rss1, hwm1, brss, bhwm;
    struct scale_stats st;

    if (scale_mgr_start(o->swarmd, o->heartbeat, self, sizeof(self)) < 0)
        return 1;
    char *drain[] = {"node", "update", "--availability", "drain", self, NULL};
    int r = scale_mgr_swarmctl(o->swarmctl, drain, err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "bench-scale: swarmctl node update --availability drain: %s\n",
                r < 0 ? strerror(-r) : err);
        return 1;
    }
    if (scale_mgr_get_token(token, sizeof(token), &mgr) < 0)
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
    double keys_ms = scale_mgr_ms_since(tk);

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
        if (scale_mgr_pid() > 0)
            scale_mgr_show_log();
        scale_nodes_destroy(s);
        return 1;
    }
    double ready_ms = (double)(st.last_ready_ns - t0) / 1e6;
    double certs_ms = (double)(st.last_cert_ns - t0) / 1e6;
    /* the first session message follows the Ready commit: node ls must agree */
    int listed = scale_mgr_count_ready("scale-n", err, sizeof(err));
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
    scale_mgr_sleep_ms(2000);
    proc_rss(scale_mgr_pid() > 0 ? scale_mgr_pid() : -1, &rss0, &hwm0);

    /* (2) T tasks RUNNING as the manager sees them */
    char replicas[16];
    snprintf(replicas, sizeof(replicas), "%u", o->tasks);
    char *create[] = {"service", "create", "--name",     SERVICE_NAME, "--replicas",
                      replicas,  "--",     "/bin/sleep", "3600",       NULL};
    uint64_t t1 = sw_now_monotonic_ns();
    r = scale_mgr_swarmctl(o->swarmctl, create, err, sizeof(err));
    double create_ms = scale_mgr_ms_since(t1);
    if (r != 0) {
        fprintf(stderr, "bench-scale: swarmctl service create: %s\n", r < 0 ? strerror(-r) : err);
        scale_nodes_destroy(s);
        return 1;
    }
    int64_t running = 0;
    double converge_ms = -1;
    uint64_t limit_ms =
        o->timeout_s ? (uint64_t)o->timeout_s * 1000 : 60000 + (uint64_t)o->tasks * 10;
    while (scale_mgr_ms_since(t1) < (double)limit_ms && scale_mgr_alive()) {
        int64_t now = service_running(err, sizeof(err));
        running = now >= 0 ? now : running;
        if (now >= (int64_t)o->tasks) {
            converge_ms = scale_mgr_ms_since(t1);
            break;
        }
        scale_mgr_sleep_ms(o->poll_ms);
    }
    proc_rss(scale_mgr_pid() > 0 ? scale_mgr_pid() : -1, &rss1, &hwm1);
    proc_rss(0, &brss, &bhwm);
    /* (5) what the converged cluster costs the manager while nothing changes */
    double idle_cpu = -1;
    if (converge_ms >= 0 && o->settle_s) {
        double c0 = proc_cpu_ms(scale_mgr_pid());
        uint64_t ts = sw_now_monotonic_ns();
        scale_mgr_sleep_ms(o->settle_s * 1000);
        double c1 = proc_cpu_ms(scale_mgr_pid());
        if (c0 >= 0 && c1 >= 0)
            idle_cpu = 100.0 * (c1 - c0) / scale_mgr_ms_since(ts);
    }
    scale_nodes_stats(s, &st);
    double acked_ms = st.last_running_ns > t1 ? (double)(st.last_running_ns - t1) / 1e6 : -1;
    if (converge_ms < 0) {
        fprintf(stderr,
                "bench-scale: %lld of %u tasks RUNNING after %.0f s (%llu assignments seen, "
                "%llu RUNNING answered); last error: %s\n",
                (long long)running, o->tasks, scale_mgr_ms_since(t1) / 1000,
                (unsigned long long)st.assignments, (unsigned long long)st.running_acked,
                st.last_error[0] ? st.last_error : "none");
        if (scale_mgr_pid() > 0)
            scale_mgr_show_log();
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
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--keep") == 0) {
            keep = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return usage();
        if (strcmp(a, "-n") == 0) {
            if (!scale_mgr_parse_uint(v, 100000, &o.nodes))
                return usage();
        } else if (strcmp(a, "-t") == 0) {
            if (!scale_mgr_parse_uint(v, 1000000, &o.tasks))
                return usage();
        } else if (strcmp(a, "-j") == 0) {
            if (!scale_mgr_parse_uint(v, 10000, &o.inflight))
                return usage();
        } else if (strcmp(a, "--timeout") == 0) {
            if (!scale_mgr_parse_uint(v, 86400, &o.timeout_s))
                return usage();
        } else if (strcmp(a, "--settle") == 0) {
            if (strcmp(v, "0") == 0)
                o.settle_s = 0;
            else if (!scale_mgr_parse_uint(v, 3600, &o.settle_s))
                return usage();
        } else if (strcmp(a, "--poll-ms") == 0) {
            if (!scale_mgr_parse_uint(v, 10000, &o.poll_ms))
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
    o.swarmctl = scale_mgr_find_swarmctl(swarmctl_arg, o.swarmd, ctlbuf, sizeof(ctlbuf));
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
    int r = scale_mgr_raise_nofile(o.nodes + o.inflight);
    if (r < 0) {
        fprintf(stderr, "bench-scale: cannot raise RLIMIT_NOFILE for %u nodes: %s\n", o.nodes,
                strerror(-r));
        return 1;
    }
    scale_mgr_signals(keep);
    int failed = run(&o);
    scale_mgr_stop();
    return failed ? 1 : 0;
}
