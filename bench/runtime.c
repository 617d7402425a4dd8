/* bench-runtime: wall time per isolated task of runtime/ (namespaces, cgroup limits, caps,
 * seccomp, a secret) next to crun, runc and bare unshare+chroot from the same run, and the
 * memory a running task adds to the daemon.
 *   bench-runtime [-n RUNS] [-s SPORADIC_RUNS] [-g GAP_MS] [-p PEER_RUNS] [-k RSS_TASKS]
 *                 [--no-peers] [--peers-script PATH]
 * Needs root. Peers run an OCI bundle made by bench/runtime-peers.sh (busybox rootfs, Docker's
 * caps, masked paths, seccomp, memory/pids/cpu limits, a /run/secrets tmpfs with one secret). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "runtime/task.h" /* rt__cgroup_release_parent on rt->cg: remove the bench's parent */

#ifndef BENCH_RUNTIME_PEERS
#define BENCH_RUNTIME_PEERS "bench/runtime-peers.sh"
#endif
#define CGROUP_PARENT "swarmd-bench"
#define WARMUP 5

extern char **environ;

static const char secret_bytes[16] = "0123456789abcdef";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v in place; pct of n samples, in ms. */
static double pct_ms(uint64_t *v, int n, int pct)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_u64);
    int i = (n * pct) / 100;
    return (double)v[i < n ? i : n - 1] / 1e6;
}

static bool fmt(char *buf, size_t size, const char *f, ...) __attribute__((format(printf, 3, 4)));
static bool fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int r = vsnprintf(buf, size, f, ap);
    va_end(ap);
    return r >= 0 && (size_t)r < size;
}

/* ------------------------------------------------------------------ our tasks */

struct our_runs {
    uint64_t *total, *start, *run, *cleanup; /* start call -> cleanup done, and its phases */
};

static void spec_defaults(struct rt_task_spec *spec, const struct rt_secret *secret)
{
    *spec = (struct rt_task_spec){
        .network = RT_NET_NONE,
        .caps = RT_CAPS_DEFAULT,
        .seccomp_choice = RT_SECCOMP_DEFAULT,
        .memory_limit = 64LL << 20,
        .pids_limit = 64,
        .nano_cpus = 500000000,
        .secrets = secret,
        .n_secrets = 1,
        .stdio = {-1, -1, -1},
    };
}

/* One task to the end; phases in ns when out is given. */
static int run_one(rt_runtime *rt, const struct rt_task_spec *base, const char *id,
                   struct our_runs *out, int i)
{
    struct rt_task_spec spec = *base;
    char err[512] = "";
    rt_task *t;
    struct rt_exit ex;
    spec.id = id;

    uint64_t t0 = now_ns();
    int r = rt_task_start(rt, &spec, &t, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "runtime: task %s: %s\n", id, err);
        return r;
    }
    uint64_t t1 = now_ns();
    struct pollfd p = {.fd = rt_task_pidfd(t), .events = POLLIN};
    while ((r = rt_task_reap(t, &ex)) == -EAGAIN)
        if (poll(&p, 1, 10000) < 0 && errno != EINTR)
            break;
    uint64_t t2 = now_ns();
    int rc = rt_task_cleanup(t);
    uint64_t t3 = now_ns();
    if (r < 0 || rc < 0 || ex.exit_code != 0) {
        fprintf(stderr, "runtime: task %s: reap %d, cleanup %d, exit code %d\n", id, r, rc,
                ex.exit_code);
        return r < 0 ? r : rc < 0 ? rc : -EIO;
    }
    if (out) {
        out->total[i] = t3 - t0;
        out->start[i] = t1 - t0;
        out->run[i] = t2 - t1;
        out->cleanup[i] = t3 - t2;
    }
    return 0;
}

/* n timed runs of /bin/true (after WARMUP untimed ones); the median total, or < 0. */
static double bench_ours(rt_runtime *rt, const char *rootfs, const char *label, int n, int gap_ms)
{
    static char *const argv[] = {"/bin/true", NULL};
    struct rt_secret secret = {.name = "s",
                               .data = (const uint8_t *)secret_bytes,
                               .len = sizeof(secret_bytes),
                               .mode = 0400};
    struct rt_task_spec spec;
    char id[64];
    spec_defaults(&spec, &secret);
    spec.argv = argv;
    spec.rootfs = rootfs;

    struct our_runs o = {calloc((size_t)n, 8), calloc((size_t)n, 8), calloc((size_t)n, 8),
                         calloc((size_t)n, 8)};
    double median = -1;
    if (!o.total || !o.start || !o.run || !o.cleanup)
        goto out;
    for (int i = 0; i < WARMUP + n; i++) {
        fmt(id, sizeof(id), "bench-%d-%d", (int)getpid(), i);
        if (gap_ms > 0) /* idle between starts, as a daemon's sporadic ones */
            nanosleep(&(struct timespec){gap_ms / 1000, (long)(gap_ms % 1000) * 1000000L}, NULL);
        if (run_one(rt, &spec, id, i < WARMUP ? NULL : &o, i - WARMUP) < 0)
            goto out;
    }
    double p90 = pct_ms(o.total, n, 90);
    median = pct_ms(o.total, n, 50);
    printf("runtime: swarmd%s median %.2f ms p90 %.2f ms (%d runs, full isolation)\n", label,
           median, p90, n);
    printf(
        "runtime: swarmd%s phases (median): start->exec %.2f ms, exec->exit seen %.2f ms, "
        "exit->cleanup done %.2f ms\n",
        label, pct_ms(o.start, n, 50), pct_ms(o.run, n, 50), pct_ms(o.cleanup, n, 50));
    fflush(stdout);
out:
    free(o.total);
    free(o.start);
    free(o.run);
    free(o.cleanup);
    return median;
}

/* ------------------------------------------------------------------ RSS per running task */

static long vm_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* The processes below `top` (children, grandchildren, ...), from /proc/<pid>/stat. */
static int descendants(pid_t top, pid_t *out, int max, int *ret_total)
{
    enum { MAXP = 65536 };
    static pid_t pid[MAXP], ppid[MAXP];
    int n = 0, total = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    if (!d)
        return -errno;
    while ((e = readdir(d)) && n < MAXP) {
        char path[64], buf[512];
        if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
            !fmt(path, sizeof(path), "/proc/%s/stat", e->d_name))
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        const char *rp = strrchr(buf, ')'); /* comm may hold spaces */
        int pp;
        char state;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &pp) != 2)
            continue;
        pid[n] = (pid_t)strtol(e->d_name, NULL, 10);
        ppid[n++] = (pid_t)pp;
        total++;
    }
    closedir(d);
    int found = 0;
    out[found++] = top;
    for (int grew = 1; grew;) { /* transitive closure: few levels */
        grew = 0;
        for (int i = 0; i < n; i++) {
            bool parent_in = false, self_in = false;
            for (int j = 0; j < found; j++) {
                parent_in |= out[j] == ppid[i];
                self_in |= out[j] == pid[i];
            }
            if (parent_in && !self_in && found < max) {
                out[found++] = pid[i];
                grew = 1;
            }
        }
    }
    *ret_total = total;
    return found - 1; /* without top */
}

static int bench_rss(rt_runtime *rt, int k)
{
    static char *const argv[] = {"/bin/sleep", "30", NULL};
    struct rt_secret secret = {.name = "s",
                               .data = (const uint8_t *)secret_bytes,
                               .len = sizeof(secret_bytes),
                               .mode = 0400};
    struct rt_task_spec spec;
    char id[64], err[512] = "";
    int max = k + 64, started = 0, ret = -1, before_n, after_n, total_before, total_after;
    rt_task **tasks = calloc((size_t)k, sizeof(*tasks));
    pid_t *before = calloc((size_t)max, sizeof(pid_t)), *after = calloc((size_t)max, sizeof(pid_t));
    spec_defaults(&spec, &secret);
    spec.argv = argv;
    if (!tasks || !before || !after)
        goto out;

    before_n = descendants(getpid(), before, max, &total_before);
    long rss0 = vm_rss_kib();
    size_t heap0 = mallinfo2().uordblks;
    for (; started < k; started++) {
        fmt(id, sizeof(id), "bench-rss-%d-%d", (int)getpid(), started);
        spec.id = id;
        if (rt_task_start(rt, &spec, &tasks[started], err, sizeof(err)) < 0) {
            fprintf(stderr, "runtime: rss task %d: %s\n", started, err);
            goto out;
        }
    }
    long rss1 = vm_rss_kib();
    size_t heap1 = mallinfo2().uordblks;
    after_n = descendants(getpid(), after, max, &total_after);

    printf(
        "runtime: RSS added per running task: %.1f KiB (no per-task process besides the "
        "task; VmRSS %ld -> %ld KiB over %d tasks; heap in use +%.2f KiB per task)\n",
        (double)(rss1 - rss0) / k, rss0, rss1, k, ((double)heap1 - (double)heap0) / 1024.0 / k);
    /* every new process below us is one of the tasks, and every task is a direct child */
    int tasks_seen = 0, others = 0;
    for (int i = 1; i <= after_n; i++) {
        bool is_task = false;
        for (int j = 0; j < k && !is_task; j++)
            is_task = rt_task_pid(tasks[j]) == after[i];
        tasks_seen += is_task;
        others += !is_task;
    }
    printf(
        "runtime: processes below bench-runtime: %d before, %d with %d tasks running "
        "(%d of them the tasks, %d other); system-wide %+d (other users of the machine "
        "included)\n",
        before_n, after_n, k, tasks_seen, others - before_n, total_after - total_before);
    ret = tasks_seen == k && others == before_n ? 0 : -1;
    if (ret < 0)
        fprintf(stderr, "runtime: unexpected processes besides the tasks\n");
out:
    for (int i = 0; i < started; i++)
        rt_task_signal(tasks[i], SIGKILL);
    for (int i = 0; i < started; i++)
        rt_task_cleanup(tasks[i]);
    free(tasks);
    free(before);
    free(after);
    return ret;
}

/* ------------------------------------------------------------------ peers */

/* Run argv to its exit with stdout to /dev/null and stderr to errfile; wall time in ns, or
 * -1 (errno-style) when it could not run or did not exit 0. */
static int64_t timed_spawn(char *const *argv, const char *errfile)
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    uint64_t t0 = now_ns();
    int r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0)
        return -r;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    uint64_t t1 = now_ns();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -EIO;
    return (int64_t)(t1 - t0);
}

static void first_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, (int)size, f))
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
}

struct peer {
    const char *name; /* as printed */
    const char *note; /* after the figure */
    char cmd[8192];   /* sh -c script, when the peer goes through sh */
    char *argv[16];
};

/* The command line of run i of a peer. */
static bool peer_setup(struct peer *p, int which, const char *bundle, const char *rootfs, int i)
{
    int n = 0;
    switch (which) {
        case 0: /* crun refuses the hybrid layout: hide the v2 mount in a private mount ns */
        case 1: /* the same wrapper without crun, to subtract */
            if (which == 0
                    ? !fmt(p->cmd, sizeof(p->cmd),
                           "umount /sys/fs/cgroup/unified; crun run --bundle %s swbench-%d-%d",
                           bundle, (int)getpid(), i)
                    : !fmt(p->cmd, sizeof(p->cmd), "umount /sys/fs/cgroup/unified"))
                return false;
            p->name = which == 0 ? "crun" : "crun's wrapper (unshare -m sh -c umount)";
            p->argv[n++] = "unshare";
            p->argv[n++] = "-m";
            p->argv[n++] = "--propagation";
            p->argv[n++] = "private";
            p->argv[n++] = "sh";
            p->argv[n++] = "-c";
            p->argv[n++] = p->cmd;
            break;
        case 2:
            if (!fmt(p->cmd, sizeof(p->cmd), "swbench-%d-%d", (int)getpid(), i))
                return false;
            p->name = "runc";
            p->argv[n++] = "runc";
            p->argv[n++] = "run";
            p->argv[n++] = "--bundle";
            p->argv[n++] = (char *)bundle;
            p->argv[n++] = p->cmd;
            break;
        default:
            p->name = "unshare+chroot";
            p->argv[n++] = "unshare";
            p->argv[n++] = "--fork";
            p->argv[n++] = "--pid";
            p->argv[n++] = "--mount";
            p->argv[n++] = "--uts";
            p->argv[n++] = "--ipc";
            p->argv[n++] = "--net";
            p->argv[n++] = "chroot";
            p->argv[n++] = (char *)rootfs;
            p->argv[n++] = "/bin/true";
            break;
    }
    p->argv[n] = NULL;
    return true;
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    if (!path)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        int n = end ? (int)(end - p) : (int)strlen(p);
        if (fmt(buf, sizeof(buf), "%.*s/%s", n, p, prog) && access(buf, X_OK) == 0)
            return true;
        if (!end)
            return false;
        p = end + 1;
    }
}

/* Median wall time of n runs of peer `which` in ms, or < 0 (a line says why). */
static double bench_peer(int which, const char *bundle, const char *rootfs, const char *tmp, int n,
                         double ours, double sporadic, double wrapper)
{
    static const char *const needs[] = {"crun", "unshare", "runc", "unshare"};
    struct peer p;
    char errfile[4200], why[512];
    double median = -1;
    uint64_t *v = calloc((size_t)n, sizeof(*v));
    memset(&p, 0, sizeof(p));
    peer_setup(&p, which, bundle, rootfs, 0);
    if (!v || !fmt(errfile, sizeof(errfile), "%s/peer.err", tmp))
        goto out;
    if (!on_path(needs[which])) {
        printf("runtime: %s skipped: %s is not installed (apt-get install %s)\n", p.name,
               needs[which], needs[which] == needs[1] ? "util-linux" : needs[which]);
        goto out;
    }
    for (int i = 0; i < 3 + n; i++) {
        if (!peer_setup(&p, which, bundle, rootfs, i))
            goto out;
        int64_t ns = timed_spawn(p.argv, errfile);
        if (ns < 0) {
            first_line(errfile, why, sizeof(why));
            printf("runtime: %s skipped: run %d failed: %s\n", p.name, i,
                   why[0] ? why : strerror((int)-ns));
            goto out;
        }
        if (i >= 3)
            v[i - 3] = (uint64_t)ns;
    }
    double p90 = pct_ms(v, n, 90);
    median = pct_ms(v, n, 50);
    if (which == 1)
        printf("runtime: %s median %.2f ms (%d runs, same run; included in crun's figure)\n",
               p.name, median, n);
    else {
        char extra[160] = "";
        if (which == 3)
            fmt(extra, sizeof(extra),
                "   (floor: namespaces + chroot only; no cgroup, caps, "
                "seccomp, secret or /proc)");
        else if (sporadic > 0) /* each peer run migrates into its v1 cgroups from idle */
            fmt(extra, sizeof(extra), ", sporadic swarmd/%s %.3f", p.name, sporadic / median);
        printf(
            "runtime: %s median %.2f ms p90 %.2f ms (%d runs, same run)   ratio swarmd/%s "
            "%.3f%s\n",
            p.name, median, p90, n, p.name, ours / median, extra);
    }
    if (which == 0 && wrapper > 0 && median > wrapper)
        printf("runtime: crun less its wrapper %.2f ms   ratio swarmd/(crun - wrapper) %.3f\n",
               median - wrapper, ours / (median - wrapper));
    fflush(stdout);
out:
    free(v);
    return median;
}

/* ------------------------------------------------------------------ main */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static const char usage[] =
    "Usage: bench-runtime [-n RUNS] [-s SPORADIC_RUNS] [-g GAP_MS] [-p PEER_RUNS] [-k RSS_TASKS]\n"
    "                     [--no-peers] [--peers-script PATH]\n"
    "  -n RUNS         timed runs of /bin/true through runtime/, back to back (200)\n"
    "  -s SPORADIC     timed runs with GAP_MS idle before each, as a daemon starts tasks (20)\n"
    "  -g GAP_MS       the idle time before each sporadic run (100)\n"
    "  -b BALLAST_MB   touch this much heap first, as a daemon's own RSS (0)\n"
    "  -p PEER_RUNS    timed runs of each peer: crun, runc, unshare+chroot (50)\n"
    "  -k RSS_TASKS    tasks kept running for the RSS figure (50)\n"
    "  --no-peers      runtime/ only\n"
    "  --peers-script  bench/runtime-peers.sh, which builds the peers' OCI bundle\n";

static int positive(const char *s, int *ret)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > 1000000)
        return -EINVAL;
    *ret = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"no-peers", no_argument, NULL, 'N'},
        {"peers-script", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int n = 200, peer_runs = 50, k = 50, sporadic = 20, gap_ms = 100, ballast_mb = 0, c, status = 0;
    bool peers = true;
    const char *script = getenv("RUNTIME_PEERS") ? getenv("RUNTIME_PEERS") : BENCH_RUNTIME_PEERS;
    while ((c = getopt_long(argc, argv, "n:p:k:s:g:b:h", opts, NULL)) != -1) {
        switch (c) {
            case 'n':
            case 'p':
            case 'k':
            case 's':
            case 'g':
            case 'b':
                if (positive(optarg, c == 'n'   ? &n
                                     : c == 'p' ? &peer_runs
                                     : c == 'k' ? &k
                                     : c == 's' ? &sporadic
                                     : c == 'g' ? &gap_ms
                                                : &ballast_mb) < 0) {
                    fprintf(stderr, "bench-runtime: -%c wants a positive number\n", c);
                    return 2;
                }
                break;
            case 'N':
                peers = false;
                break;
            case 'S':
                script = optarg;
                break;
            case 'h':
                fputs(usage, stdout);
                return 0;
            default:
                fputs(usage, stderr);
                return 2;
        }
    }
    char *ballast = NULL;
    if (ballast_mb > 0) { /* the caller's memory is what a fork copies page tables of */
        ballast = malloc((size_t)ballast_mb << 20);
        if (!ballast) {
            fprintf(stderr, "bench-runtime: no memory for %d MiB of ballast\n", ballast_mb);
            return 1;
        }
        memset(ballast, 1, (size_t)ballast_mb << 20);
        printf("runtime: ballast: %d MiB of touched heap in this process\n", ballast_mb);
    }
    if (geteuid() != 0) {
        printf("runtime: skipped: needs root (namespaces, cgroups, mounts)\n");
        return 1;
    }

    /* a tmpfs-backed scratch dir: the run dir of runtime/, the peers' bundle and secret */
    char tmp[64] = "/run/swarmd-bench-rt.XXXXXX", run_dir[128], bundle[128], rootfs[160];
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "bench-runtime: mkdtemp %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    fmt(run_dir, sizeof(run_dir), "%s/run", tmp);
    fmt(bundle, sizeof(bundle), "%s/bundle", tmp);
    fmt(rootfs, sizeof(rootfs), "%s/rootfs", bundle);

    bool have_bundle = false;
    if (peers) {
        char cmd[4400], line[512] = "";
        if (fmt(cmd, sizeof(cmd), "'%s' install >&2 && mkdir -p '%s' && '%s' bundle '%s'", script,
                bundle, script, bundle)) {
            FILE *f = popen(cmd, "re");
            if (f) {
                if (!fgets(line, sizeof(line), f))
                    line[0] = '\0';
                have_bundle = pclose(f) == 0;
            }
        }
        line[strcspn(line, "\n")] = '\0';
        if (!have_bundle)
            printf("runtime: peers skipped: no OCI bundle (%s: %s)\n", script,
                   line[0] ? line : "failed");
    }

    struct rt_config cfg = {.run_dir = run_dir, .cgroup_parent = CGROUP_PARENT};
    rt_runtime *rt = NULL;
    char err[512] = "";
    if (rt_runtime_create(&cfg, &rt, err, sizeof(err)) < 0) {
        printf("runtime: skipped: %s\n", err);
        rm_rf(tmp);
        return 1;
    }
    const char *mode = rt_runtime_cgroup_mode(rt) == RT_CGROUP_V2 ? "v2" : "v1";
    printf(
        "runtime: cgroup %s; each task: pid, mount, uts, ipc, net, cgroup namespaces; "
        "memory 64M, pids 64, cpu 0.5; Docker's 14 caps; default seccomp; one 16-byte "
        "secret\n",
        mode);
    double ours = bench_ours(rt, NULL, "", n, 0);
    if (ours < 0)
        status = 1;
    char label[96];
    fmt(label, sizeof(label), " sporadic (%d ms idle before each start)", gap_ms);
    double ours_sporadic = -1;
    if (ours > 0 && sporadic > 0 &&
        (ours_sporadic = bench_ours(rt, NULL, label, sporadic, gap_ms)) < 0)
        status = 1;
    if (have_bundle && ours > 0 && bench_ours(rt, rootfs, " (the peers' busybox rootfs)", n, 0) < 0)
        status = 1;

    if (have_bundle && ours > 0) {
        double wrapper = bench_peer(1, bundle, rootfs, tmp, peer_runs, ours, -1, -1);
        bench_peer(0, bundle, rootfs, tmp, peer_runs, ours, ours_sporadic, wrapper);
        bench_peer(2, bundle, rootfs, tmp, peer_runs, ours, ours_sporadic, -1);
        bench_peer(3, bundle, rootfs, tmp, peer_runs, ours, -1, -1);
    }
    if (bench_rss(rt, k) < 0)
        status = 1;

    rt__cgroup_release_parent(&rt->cg, CGROUP_PARENT);
    rt_runtime_free(rt);
    rm_rf(tmp);
    free(ballast);
    return status;
}
