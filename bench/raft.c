/* bench-raft: replicated writes on a real 3-manager swarmd cluster (Control.CreateSecret on
 * the leader's control socket, acknowledged after raft commit + apply) next to a 3-member
 * etcd 3.4 from the same run; failover time after SIGKILL of the leader; restart time of a
 * manager whose store holds many objects.
 *   bench-raft [-d SECS] [-c CLIENTS,...] [-s BYTES] [-f ROUNDS] [-o OBJECTS] [--no-etcd]
 *              [--swarmd PATH] [--etcd-script PATH] [--log-level LEVEL] [--keep] */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/raft.h"
#include "common/swtime.h"

#define MAX_LEVELS 8
#define FAILOVER_GIVE_UP_MS 30000
#define READY_AGAIN_MS 60000
#define TARGET_RATIO 2.5
#define TARGET_P50_MS 1.0
#define TARGET_FAILOVER_MS 2000.0

struct opts {
    double secs;
    unsigned levels[MAX_LEVELS];
    int nlevels;
    size_t payload;
    int rounds;
    unsigned objects;
    bool etcd, keep;
    const char *swarmd, *etcd_script, *log_level;
};

static struct cluster g_cluster;
static bool g_keep;
static bool g_verbose = true;
static char g_etcd_dir[96]; /* the etcd members' dir (the peer script's) */
static char g_etcd_top[64]; /* our temp dir around it */
static pid_t g_etcd_pids[RAFT_MANAGERS];
static const char *g_etcd_script;

static void etcd_stop(void)
{
    if (!g_etcd_dir[0])
        return;
    pid_t p = fork();
    if (p == 0) {
        execl(g_etcd_script, g_etcd_script, "stop", g_etcd_dir, (char *)NULL);
        _exit(127);
    }
    if (p > 0)
        waitpid(p, NULL, 0);
    for (int i = 0; i < RAFT_MANAGERS; i++)
        if (g_etcd_pids[i] > 0) {
            cluster_forget_pid(g_etcd_pids[i]);
            g_etcd_pids[i] = 0;
        }
    g_etcd_dir[0] = '\0';
    if (g_etcd_top[0])
        rmdir(g_etcd_top);
    g_etcd_top[0] = '\0';
}

static void on_signal(int sig)
{
    cluster_kill_all();
    etcd_stop();
    if (g_cluster.dir[0] && !g_keep) {
        pid_t p = fork();
        if (p == 0) {
            execl("/bin/rm", "rm", "-rf", g_cluster.dir, (char *)NULL);
            _exit(127);
        }
        if (p > 0)
            waitpid(p, NULL, 0);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ------------------------------------------------------------------ etcd peer */

struct etcd_peer {
    bool up;
    unsigned leader_port;
    char why[200]; /* why it is not up */
};

/* Run the peer script with args; its output (stdout and stderr) into out. Exit status. */
static int script(const char *a1, const char *a2, char *out, size_t size)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "'%s' %s %s 2>&1", g_etcd_script, a1, a2 ? a2 : "");
    FILE *f = popen(cmd, "r");
    if (!f) {
        snprintf(out, size, "popen: %s", strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void first_line(char *s)
{
    s[strcspn(s, "\n")] = '\0';
}

static void etcd_start(const char *dir, struct etcd_peer *e)
{
    char out[2048];
    memset(e, 0, sizeof(*e));
    if (access(g_etcd_script, X_OK) != 0) {
        snprintf(e->why, sizeof(e->why), "no peer script at %s", g_etcd_script);
        return;
    }
    if (script("install", NULL, out, sizeof(out)) != 0) {
        first_line(out);
        snprintf(e->why, sizeof(e->why), "etcd not installed (%.150s)", out);
        return;
    }
    snprintf(g_etcd_dir, sizeof(g_etcd_dir), "%s/etcd", dir);
    int st = script("start", g_etcd_dir, out, sizeof(out));
    /* "member NAME PID PORT" lines: the pids, for the exit paths */
    for (char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char name[16];
        int pid;
        unsigned port;
        if (sscanf(l, "member %15s %d %u", name, &pid, &port) == 3 && pid > 0 &&
            (name[1] - '1') >= 0 && (name[1] - '1') < RAFT_MANAGERS) {
            cluster_register_pid(pid); /* killed by the signal handler */
            g_etcd_pids[name[1] - '1'] = pid;
        }
    }
    if (st != 0) {
        first_line(out);
        snprintf(e->why, sizeof(e->why), "etcd cluster did not start: %.150s", out);
        return;
    }
    for (int i = 0; i < 50; i++) {
        if (script("leader", g_etcd_dir, out, sizeof(out)) == 0) {
            e->leader_port = (unsigned)strtoul(out, NULL, 10);
            break;
        }
        sleep_ms(100);
    }
    if (!e->leader_port) {
        snprintf(e->why, sizeof(e->why), "no etcd leader found");
        return;
    }
    e->up = true;
}

/* ------------------------------------------------------------------ writes */

static void print_lat(const char *who, const struct load_result *r)
{
    printf(" %s=%.0f w/s p50=%.2f ms p99=%.2f ms", who, r->secs > 0 ? (double)r->ok / r->secs : 0,
           r->p50_ms, r->p99_ms);
}

static double rate(const struct load_result *r)
{
    return r->secs > 0 ? (double)r->ok / r->secs : 0;
}

static int any_alive(void)
{
    for (int i = 0; i < RAFT_MANAGERS; i++)
        if (g_cluster.m[i].pid > 0)
            return i;
    return -1;
}

static int wait_leader(int via, unsigned ms)
{
    uint64_t t0 = sw_now_monotonic_ns();
    int l;
    while ((l = cluster_leader(&g_cluster, via)) < 0 && ms_since(t0) < ms)
        sleep_ms(20);
    return l;
}

/* A fresh 3-manager cluster in g_cluster; its leader's index, or -1 (said why). */
static int fresh_cluster(const char *what)
{
    char err[512];
    uint64_t t0 = sw_now_monotonic_ns();
    if (cluster_start(&g_cluster, err, sizeof(err)) < 0) {
        printf("raft: %s: cannot start the 3-manager cluster: %s\n", what, err);
        for (int i = 0; i < RAFT_MANAGERS; i++)
            cluster_show_log(&g_cluster, i);
        return -1;
    }
    int leader = wait_leader(0, 10000);
    if (leader < 0)
        printf("raft: %s: the cluster names no leader\n", what);
    else if (g_verbose)
        printf("raft: %s: a fresh cluster of 3 managers Ready in %.0f ms, leader %s\n", what,
               ms_since(t0), g_cluster.m[leader].hostname);
    return leader;
}

/* Each level on a fresh cluster (CreateSecret's cost grows with the secrets already stored),
 * the etcd level right after it, on one etcd cluster. */
static int bench_writes(const struct opts *o)
{
    struct load_result sw[MAX_LEVELS], et[MAX_LEVELS];
    char err[256], prefix[32];
    int failed = 0;
    struct etcd_peer e = {0};
    if (o->etcd) {
        char dir[] = "/tmp/bench-raft-etcd.XXXXXX";
        if (!mkdtemp(dir)) {
            snprintf(e.why, sizeof(e.why), "mkdtemp: %s", strerror(errno));
        } else {
            snprintf(g_etcd_top, sizeof(g_etcd_top), "%s", dir);
            etcd_start(dir, &e);
        }
        if (!e.up)
            printf("raft: etcd peer skipped: %s\n", e.why);
    } else {
        printf("raft: etcd peer skipped (--no-etcd)\n");
    }
    printf(
        "raft: swarmd: 3 managers on 127.0.0.1 (raft over mTLS), a fresh cluster per level; "
        "clients on the LEADER's local Unix control socket: Control.CreateSecret, %zu-byte "
        "payload, unique names, one write in flight per client, %.1f s per level\n",
        o->payload, o->secs);
    if (e.up)
        printf(
            "raft: etcd 3.4: 3 members on 127.0.0.1 (plain http between members, one cluster "
            "for all levels), clients on the leader (port %u) through its gRPC-JSON gateway "
            "(POST /v3/kv/put, HTTP/1.1 keep-alive, one put in flight per connection), same "
            "payload\n",
            e.leader_port);
    for (int i = 0; i < o->nlevels; i++) {
        int leader = fresh_cluster("writes");
        if (leader < 0) {
            cluster_stop(&g_cluster, g_keep);
            failed = 1;
            break;
        }
        snprintf(prefix, sizeof(prefix), "w%d-%u", i, o->levels[i]);
        int r = load_swarmd(g_cluster.m[leader].sock, o->levels[i], o->secs, 0, o->payload, prefix,
                            &sw[i], err, sizeof(err));
        if (r < 0) {
            printf("raft: writes clients=%u swarmd failed: %s\n", o->levels[i], err);
            for (int j = 0; j < RAFT_MANAGERS; j++)
                cluster_show_log(&g_cluster, j);
            cluster_stop(&g_cluster, g_keep);
            failed = 1;
            break;
        }
        int after = cluster_leader(&g_cluster, leader);
        if (after != leader)
            printf("raft: writes clients=%u: leadership moved during the level (%s led, now %s)\n",
                   o->levels[i], g_cluster.m[leader].hostname,
                   after >= 0 ? g_cluster.m[after].hostname : "none");
        cluster_stop(&g_cluster, false);
        if (sw[i].errors)
            printf("raft: writes clients=%u swarmd: %llu writes failed (first: %s)\n", o->levels[i],
                   (unsigned long long)sw[i].errors, sw[i].first_error);
        snprintf(prefix, sizeof(prefix), "bench/w%d-%u", i, o->levels[i]);
        if (e.up && load_etcd(e.leader_port, o->levels[i], o->secs, o->payload, prefix, &et[i], err,
                              sizeof(err)) < 0) {
            printf("raft: writes clients=%u etcd failed: %s\n", o->levels[i], err);
            e.up = false;
        } else if (e.up && et[i].errors) {
            printf("raft: writes clients=%u etcd: %llu puts failed (first: %s)\n", o->levels[i],
                   (unsigned long long)et[i].errors, et[i].first_error);
        }
        printf("raft: writes clients=%u", o->levels[i]);
        print_lat("swarmd", &sw[i]);
        if (e.up) {
            print_lat("etcd", &et[i]);
            printf(" ratio=%.2f", rate(&et[i]) > 0 ? rate(&sw[i]) / rate(&et[i]) : 0);
        }
        printf(" (%llu secrets stored by the end)\n", (unsigned long long)sw[i].ok);
        if (o->levels[i] == 1)
            printf("raft: target single-client p50 < %.1f ms: %.2f ms %s\n", TARGET_P50_MS,
                   sw[i].p50_ms, sw[i].p50_ms < TARGET_P50_MS ? "met" : "MISSED");
        if (o->levels[i] == 64 && e.up) {
            double ratio = rate(&et[i]) > 0 ? rate(&sw[i]) / rate(&et[i]) : 0;
            printf("raft: target >= %.1fx etcd at 64 clients: %.2fx %s\n", TARGET_RATIO, ratio,
                   ratio >= TARGET_RATIO ? "met" : "MISSED");
        }
    }
    etcd_stop();
    return failed;
}

/* ------------------------------------------------------------------ failover */

/* Every manager answers and lists 3 Ready, reachable managers with one leader. */
static bool all_ready(void)
{
    for (int i = 0; i < RAFT_MANAGERS; i++)
        if (!cluster_ready(&g_cluster, i, RAFT_MANAGERS))
            return false;
    return true;
}

static int bench_failover(const struct opts *o)
{
    double *t = calloc((size_t)o->rounds, sizeof(*t));
    double *back = calloc((size_t)o->rounds, sizeof(*back));
    if (!t || !back) {
        free(t);
        free(back);
        return 1;
    }
    unsigned errors = 0, slow_calls = 0;
    char last_err[256] = "";
    int done = 0, failed = 0;
    for (int round = 0; round < o->rounds; round++) {
        int leader = wait_leader(any_alive(), 10000);
        if (leader < 0) {
            printf("raft: failover round %d: no leader known\n", round);
            failed = 1;
            break;
        }
        int s[2], k = 0;
        for (int i = 0; i < RAFT_MANAGERS; i++)
            if (i != leader)
                s[k++] = i;
        uint64_t t0 = sw_now_monotonic_ns();
        cluster_kill(&g_cluster, leader, SIGKILL);
        bool ok = false;
        char err[256];
        for (unsigned a = 0; ms_since(t0) < FAILOVER_GIVE_UP_MS; a++) {
            char name[64];
            snprintf(name, sizeof(name), "fo-%d-%u", round, a);
            uint64_t c0 = sw_now_monotonic_ns();
            if (secret_create_sync(g_cluster.m[s[a % 2]].sock, name, o->payload, 1000, err,
                                   sizeof(err)) == 0) {
                ok = true;
                break;
            }
            errors++;
            slow_calls += ms_since(c0) > 500;
            snprintf(last_err, sizeof(last_err), "%s", err);
            sleep_ms(10);
        }
        if (!ok) {
            printf(
                "raft: failover round %d: no write acknowledged within %d s after killing "
                "%s (last error: %s)\n",
                round, FAILOVER_GIVE_UP_MS / 1000, g_cluster.m[leader].hostname, last_err);
            failed = 1;
            break;
        }
        t[done] = ms_since(t0);
        uint64_t r0 = sw_now_monotonic_ns();
        if (cluster_restart(&g_cluster, leader) < 0) {
            printf("raft: failover round %d: cannot restart %s\n", round,
                   g_cluster.m[leader].hostname);
            failed = 1;
            break;
        }
        while (!all_ready() && ms_since(r0) < READY_AGAIN_MS)
            sleep_ms(20);
        if (!all_ready()) {
            printf(
                "raft: failover round %d: %s restarted but 3 Ready managers not listed in "
                "%d s\n",
                round, g_cluster.m[leader].hostname, READY_AGAIN_MS / 1000);
            cluster_describe(&g_cluster, leader);
            failed = 1;
            break;
        }
        back[done++] = ms_since(r0);
    }
    if (done > 0) {
        qsort(t, (size_t)done, sizeof(*t), cmp_double);
        qsort(back, (size_t)done, sizeof(*back), cmp_double);
        double med = t[done / 2];
        int i90 = (done * 9) / 10;
        printf(
            "raft: failover median=%.0f ms p90=%.0f ms max=%.0f ms min=%.0f ms (%d rounds; "
            "target < 2 s: %s)\n",
            med, t[i90 < done ? i90 : done - 1], t[done - 1], t[0], done,
            med < TARGET_FAILOVER_MS ? "met" : "MISSED");
        printf(
            "raft: failover: SIGKILL of the leader until a CreateSecret through a survivor's "
            "socket is acknowledged (retried every 10 ms, alternating survivors; %u refused "
            "attempts, %u took > 0.5 s%s%s); the killed manager back with 3 Ready managers "
            "listed: median %.0f ms\n",
            errors, slow_calls, last_err[0] ? ", last error: " : "", last_err, back[done / 2]);
    }
    free(t);
    free(back);
    return failed;
}

/* ------------------------------------------------------------------ recovery */

static int bench_recovery(const struct opts *o)
{
    int leader = wait_leader(any_alive(), 10000);
    if (leader < 0) {
        printf("raft: recovery: no leader known\n");
        return 1;
    }
    struct load_result r;
    char err[256];
    uint64_t f0 = sw_now_monotonic_ns();
    if (load_swarmd(g_cluster.m[leader].sock, 64, 3600, o->objects, o->payload, "rec", &r, err,
                    sizeof(err)) < 0 ||
        r.ok < o->objects) {
        printf("raft: recovery: filling the store failed after %llu secrets: %s\n",
               (unsigned long long)r.ok, err[0] ? err : r.first_error);
        return 1;
    }
    printf(
        "raft: recovery: %u more secrets created through %s's socket in %.1f s (%.0f w/s, "
        "64 clients; %llu refused and retried%s%s)\n",
        o->objects, g_cluster.m[leader].hostname, ms_since(f0) / 1000, rate(&r),
        (unsigned long long)r.errors, r.errors ? ", first: " : "", r.first_error);
    int after = wait_leader(leader, 10000);
    if (after != leader)
        printf("raft: recovery: leadership moved while filling the store (%s led, now %s)\n",
               g_cluster.m[leader].hostname, after >= 0 ? g_cluster.m[after].hostname : "none");
    if (after >= 0)
        leader = after;
    int f = (leader + 1) % RAFT_MANAGERS;
    struct mgr_proc *p = &g_cluster.m[f];
    cluster_kill(&g_cluster, f, SIGKILL);
    char cmd[300], du[64] = "?";
    snprintf(cmd, sizeof(cmd), "du -sh '%s' | cut -f1", p->state);
    FILE *d = popen(cmd, "r");
    if (d) {
        if (fgets(du, sizeof(du), d))
            first_line(du);
        pclose(d);
    }
    uint64_t t0 = sw_now_monotonic_ns();
    if (cluster_restart(&g_cluster, f) < 0) {
        printf("raft: recovery: cannot restart %s\n", p->hostname);
        return 1;
    }
    double serving = -1, ready = -1;
    while (ms_since(t0) < READY_AGAIN_MS) {
        if (serving < 0 && access(p->sock, F_OK) == 0 && control_answers(p->sock, 1000))
            serving = ms_since(t0);
        if (serving >= 0 && cluster_ready(&g_cluster, f, RAFT_MANAGERS) &&
            cluster_ready(&g_cluster, leader, RAFT_MANAGERS)) {
            ready = ms_since(t0);
            break;
        }
        sleep_ms(5);
    }
    if (ready < 0) {
        printf("raft: recovery: %s did not come back within %d s (serving: %s)\n", p->hostname,
               READY_AGAIN_MS / 1000, serving >= 0 ? "yes" : "no");
        cluster_describe(&g_cluster, f);
        cluster_show_log(&g_cluster, f);
        return 1;
    }
    printf(
        "raft: recovery objects=%u restart of a follower after SIGKILL (state dir %s): "
        "control socket answers after %.0f ms, listed Ready and reachable after %.0f ms\n",
        o->objects, du, serving, ready);
    return 0;
}

/* ------------------------------------------------------------------ main */

static int usage(void)
{
    fprintf(stderr,
            "usage: bench-raft [-d SECS] [-c CLIENTS,...] [-s BYTES] [-f ROUNDS] [-o OBJECTS]\n"
            "                  [--no-etcd] [--swarmd PATH] [--etcd-script PATH]\n"
            "                  [--log-level LEVEL] [--keep]\n");
    return 2;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > max || s[0] == '-')
        return false;
    *ret = v;
    return true;
}

static bool parse_levels(const char *s, struct opts *o)
{
    o->nlevels = 0;
    for (const char *t = s; *t;) {
        char part[16];
        size_t n = strcspn(t, ",");
        unsigned long v;
        if (o->nlevels == MAX_LEVELS || n == 0 || n >= sizeof(part))
            return false;
        memcpy(part, t, n);
        part[n] = '\0';
        if (!parse_uint(part, 1000, &v) || v == 0)
            return false;
        o->levels[o->nlevels++] = (unsigned)v;
        t += n + (t[n] == ',');
    }
    return o->nlevels > 0;
}

int main(int argc, char **argv)
{
    struct opts o = {.secs = 5,
                     .levels = {1, 16, 64},
                     .nlevels = 3,
                     .payload = 100,
                     .rounds = 20,
                     .objects = 5000,
                     .etcd = true,
                     .log_level = "info"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        unsigned long v;
        if (strcmp(a, "--no-etcd") == 0) {
            o.etcd = false;
            continue;
        }
        if (strcmp(a, "--keep") == 0) {
            o.keep = true;
            continue;
        }
        const char *val = i + 1 < argc ? argv[++i] : NULL;
        if (!val)
            return usage();
        if (strcmp(a, "-d") == 0) {
            char *end;
            o.secs = strtod(val, &end);
            if (*end || !(o.secs >= 0.1 && o.secs <= 600))
                return usage();
        } else if (strcmp(a, "-c") == 0) {
            if (strcmp(val, "0") == 0)
                o.nlevels = 0;
            else if (!parse_levels(val, &o))
                return usage();
        } else if (strcmp(a, "-s") == 0) {
            if (!parse_uint(val, 500, &v) || v == 0)
                return usage();
            o.payload = v;
        } else if (strcmp(a, "-f") == 0) {
            if (!parse_uint(val, 1000, &v))
                return usage();
            o.rounds = (int)v;
        } else if (strcmp(a, "-o") == 0) {
            if (!parse_uint(val, 10000000, &v))
                return usage();
            o.objects = (unsigned)v;
        } else if (strcmp(a, "--swarmd") == 0) {
            o.swarmd = val;
        } else if (strcmp(a, "--etcd-script") == 0) {
            o.etcd_script = val;
        } else if (strcmp(a, "--log-level") == 0) {
            o.log_level = val;
        } else {
            return usage();
        }
    }
    if (!o.swarmd)
        o.swarmd = getenv("SWARMD");
#ifdef BENCH_SWARMD
    if (!o.swarmd)
        o.swarmd = BENCH_SWARMD;
#endif
    if (!o.etcd_script) {
#ifdef BENCH_RAFT_ETCD
        o.etcd_script = BENCH_RAFT_ETCD;
#else
        o.etcd_script = "bench/raft-peer-etcd.sh";
#endif
    }
    if (!o.swarmd) {
        fprintf(stderr, "bench-raft: give --swarmd PATH (or SWARMD)\n");
        return 2;
    }
    g_etcd_script = o.etcd_script;
    g_keep = o.keep;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    g_cluster.swarmd = o.swarmd;
    g_cluster.log_level = o.log_level;
    printf("raft: swarmd %s (a release build), managers log at level %s into the temp dir\n",
           o.swarmd, o.log_level);
    int failed = 0;
    if (o.nlevels > 0)
        failed |= bench_writes(&o);
    g_verbose = false;
    if (!failed && (o.rounds > 0 || o.objects > 0)) {
        if (fresh_cluster("failover") < 0) {
            failed = 1;
        } else {
            if (o.rounds > 0)
                failed |= bench_failover(&o);
            if (!failed && o.objects > 0)
                failed |= bench_recovery(&o);
            for (int i = 0; failed && i < RAFT_MANAGERS; i++)
                cluster_show_log(&g_cluster, i);
        }
    }
    etcd_stop();
    cluster_stop(&g_cluster, o.keep);
    return failed ? 1 : 0;
}
