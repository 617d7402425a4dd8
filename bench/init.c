/* bench-init: `swarmd init` until `node ls` answers, and `swarmctl join-token --rotate`, next to
 * Docker Swarm's `docker swarm init` and `docker swarm join-token --rotate` from the same run.
 *   bench-init [-n RUNS] [-r ROTATIONS] [-d DOCKER_RUNS] [--swarmd PATH] [--swarmctl PATH]
 *              [--docker PATH] [--docker-host URL]
 * The Docker engine is the one DOCKER_HOST names (bench/peer-docker.sh starts an isolated one);
 * an engine that is already in a swarm is left alone. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/swtime.h"
#include "net/rpc.h"
#include "proto/frame.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* One ListNodes over the control socket; 0 when it answered with nodes. */
static int node_ls(const char *sock)
{
    net_sync *c;
    char err[256];
    int status = -1;
    uint8_t *out = NULL;
    size_t len = 0;
    if (net_sync_connect_unix(sock, 1000, &c, err, sizeof(err)) < 0)
        return -1;
    int r = net_sync_call(c, "Control.ListNodes", NULL, 0, &status, err, sizeof(err), &out, &len);
    net_sync_close(c);
    Swarm__ListNodesResponse *resp =
        r >= 0 && status == 0 ? swarm__list_nodes_response__unpack(NULL, len, out) : NULL;
    free(out);
    int ok = resp && resp->n_nodes == 1 ? 0 : -1;
    if (resp)
        swarm__list_nodes_response__free_unpacked(resp, NULL);
    return ok;
}

static double ms_at(const uint64_t *sorted, int n, int pct)
{
    int i = (n * pct) / 100;
    return (double)sorted[i < n ? i : n - 1] / 1e6;
}

/* A swarmd started by `swarmd init` in a fresh temp dir. */
struct daemon {
    pid_t pid;
    char dir[32];
    char sock[160];
};

static void swarmd_stop(struct daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        waitpid(d->pid, NULL, 0);
        d->pid = -1;
    }
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench-init: could not remove %s\n", d->dir);
}

/* Start `swarmd init` and wait until node ls answers; *ret_ns is the time that took. */
static int swarmd_start(const char *swarmd, struct daemon *d, uint64_t *ret_ns)
{
    char state[96];
    snprintf(d->dir, sizeof(d->dir), "/tmp/bench-init.XXXXXX");
    d->pid = -1;
    if (!mkdtemp(d->dir))
        return -errno;
    snprintf(state, sizeof(state), "%s/state", d->dir);
    snprintf(d->sock, sizeof(d->sock), "%s/swarmd.sock", state);
    uint64_t t0 = sw_now_monotonic_ns();
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        swarmd_stop(d);
        return r;
    }
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(swarmd, swarmd, "init", "--state-dir", state, "--listen-addr", "127.0.0.1:0",
              "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    int r = -ETIMEDOUT;
    while (sw_now_monotonic_ns() - t0 < 10 * SW_NSEC_PER_SEC) {
        if (access(d->sock, F_OK) == 0 && node_ls(d->sock) == 0) {
            *ret_ns = sw_now_monotonic_ns() - t0;
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            r = -ECHILD;
            d->pid = -1;
            break;
        }
        struct timespec ts = {0, 200000}; /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
    swarmd_stop(d);
    return r;
}

static int run_once(const char *swarmd, uint64_t *ret_ns)
{
    struct daemon d;
    int r = swarmd_start(swarmd, &d, ret_ns);
    if (r < 0)
        return r;
    swarmd_stop(&d);
    return 0;
}

/* Output of one command: stdout and stderr, each cut at its buffer's size. */
struct cmd_out {
    char out[512];
    char err[512];
};

static void drain(int *fd, char *buf, size_t size, size_t *len)
{
    char tmp[4096];
    ssize_t n = read(*fd, tmp, sizeof(tmp));
    if (n <= 0) {
        if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(*fd);
            *fd = -1;
        }
        return;
    }
    size_t room = size - 1 - *len, k = (size_t)n < room ? (size_t)n : room;
    memcpy(buf + *len, tmp, k);
    *len += k;
    buf[*len] = '\0';
}

/* fork/exec argv (PATH searched), stdin from /dev/null, both outputs captured; *ret_ns is the
 * wall time from fork to reaping. Returns the exit status, or -errno (-ETIMEDOUT, killed). */
static int run_cmd(char *const argv[], int timeout_ms, struct cmd_out *o, uint64_t *ret_ns)
{
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(pe, O_CLOEXEC) < 0) {
        int r = -errno;
        close(po[0]);
        close(po[1]);
        return r;
    }
    o->out[0] = o->err[0] = '\0';
    uint64_t t0 = sw_now_monotonic_ns();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        dup2(fd, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int r = pid < 0 ? -errno : 0;
    close(po[1]);
    close(pe[1]);
    if (r < 0) {
        close(po[0]);
        close(pe[0]);
        return r;
    }
    int pfd = pidfd_open(pid, 0);
    size_t lo = 0, le = 0;
    int fo = po[0], fe = pe[0];
    bool exited = false;
    uint64_t deadline = t0 + (uint64_t)timeout_ms * SW_NSEC_PER_MSEC;
    int st = 0;
    while (!exited || fo >= 0 || fe >= 0) {
        uint64_t now = sw_now_monotonic_ns();
        if (now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        struct pollfd p[3] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}, {exited ? -1 : pfd, POLLIN, 0}};
        /* Without a pidfd, wake up every 0.2 ms to reap. */
        int wait_ms = pfd >= 0 ? (int)((deadline - now) / SW_NSEC_PER_MSEC) + 1 : 0;
        if (poll(p, 3, wait_ms) < 0 && errno != EINTR) {
            r = -errno;
            break;
        }
        if (fo >= 0 && p[0].revents)
            drain(&fo, o->out, sizeof(o->out), &lo);
        if (fe >= 0 && p[1].revents)
            drain(&fe, o->err, sizeof(o->err), &le);
        if (!exited && waitpid(pid, &st, WNOHANG) == pid) {
            *ret_ns = sw_now_monotonic_ns() - t0;
            exited = true;
        } else if (pfd < 0 && !exited) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    if (fo >= 0)
        close(fo);
    if (fe >= 0)
        close(fe);
    if (pfd >= 0)
        close(pfd);
    if (r < 0)
        return r;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Copy src into dst, cut to fit. */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* First line of s, for one-line error messages. */
static const char *first_line(char *s)
{
    s[strcspn(s, "\n")] = '\0';
    return s;
}

/* Run `argv` n times; each must exit 0 and print a join token different from the last one. */
static int rotate_runs(char *const argv[], int n, uint64_t *t, const char *who)
{
    char prev[sizeof(((struct cmd_out *)0)->out)] = "";
    struct cmd_out o;
    for (int i = 0; i < n; i++) {
        int r = run_cmd(argv, 30000, &o, &t[i]);
        if (r != 0) {
            if (r < 0)
                fprintf(stderr, "bench-init: %s rotation %d: %s\n", who, i, strerror(-r));
            else if (r == 127 && !o.err[0])
                fprintf(stderr, "bench-init: %s rotation %d: cannot execute %s\n", who, i, argv[0]);
            else
                fprintf(stderr, "bench-init: %s rotation %d: exit status %d: %s\n", who, i, r,
                        first_line(o.err));
            return -1;
        }
        first_line(o.out);
        if (strncmp(o.out, "SWMTKN-1-", 9) != 0 || strcmp(o.out, prev) == 0) {
            fprintf(stderr, "bench-init: %s rotation %d printed no new token: '%s'\n", who, i,
                    o.out);
            return -1;
        }
        copy_str(prev, sizeof(prev), o.out);
    }
    qsort(t, (size_t)n, sizeof(*t), cmp_u64);
    return 0;
}

/* `swarmctl -H unix://SOCK join-token --rotate -q worker` against one running swarmd. */
static int swarmctl_rotations(const char *swarmd, const char *swarmctl, int n, uint64_t *t)
{
    struct daemon d;
    uint64_t ns;
    int r = swarmd_start(swarmd, &d, &ns);
    if (r < 0) {
        fprintf(stderr, "bench-init: swarmd init for rotation: %s\n", strerror(-r));
        return -1;
    }
    char host[192];
    snprintf(host, sizeof(host), "unix://%s", d.sock);
    char *argv[] = {(char *)swarmctl, "-H", host, "join-token", "--rotate", "-q", "worker", NULL};
    r = rotate_runs(argv, n, t, "swarmctl");
    swarmd_stop(&d);
    return r;
}

static const char *docker_cli = "docker";

static int docker(const char *a1, const char *a2, const char *a3, const char *a4, struct cmd_out *o,
                  uint64_t *ret_ns)
{
    char *argv[] = {(char *)docker_cli, (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    uint64_t ns;
    return run_cmd(argv, 60000, o, ret_ns ? ret_ns : &ns);
}

/* The engine's swarm state ("inactive", "active", ...) into buf; -1 if no engine answers. */
static int docker_state(char *buf, size_t size)
{
    struct cmd_out o;
    if (docker("info", "--format", "{{.Swarm.LocalNodeState}}", NULL, &o, NULL) != 0)
        return -1;
    copy_str(buf, size, first_line(o.out));
    return buf[0] ? 0 : -1;
}

static void docker_leave(void)
{
    struct cmd_out o;
    if (docker("swarm", "leave", "--force", NULL, &o, NULL) != 0)
        fprintf(stderr, "bench-init: docker swarm leave --force: %s\n", first_line(o.err));
}

/* n x (`docker swarm init` + `docker node ls`), each followed by an untimed leave. */
static int docker_inits(int n, uint64_t *t)
{
    struct cmd_out o;
    for (int i = 0; i < n; i++) {
        uint64_t a, b;
        int r = docker("swarm", "init", "--advertise-addr", "127.0.0.1", &o, &a);
        if (r != 0) {
            fprintf(stderr, "bench-init: docker swarm init: %s\n", first_line(o.err));
            return -1;
        }
        r = docker("node", "ls", NULL, NULL, &o, &b);
        docker_leave();
        if (r != 0) {
            fprintf(stderr, "bench-init: docker node ls: %s\n", first_line(o.err));
            return -1;
        }
        t[i] = a + b;
    }
    qsort(t, (size_t)n, sizeof(*t), cmp_u64);
    return 0;
}

static int docker_rotations(int n, uint64_t *t)
{
    struct cmd_out o;
    if (docker("swarm", "init", "--advertise-addr", "127.0.0.1", &o, NULL) != 0) {
        fprintf(stderr, "bench-init: docker swarm init: %s\n", first_line(o.err));
        return -1;
    }
    char *argv[] = {(char *)docker_cli, "swarm", "join-token", "--rotate", "-q", "worker", NULL};
    int r = rotate_runs(argv, n, t, "docker");
    docker_leave();
    return r;
}

/* swarmctl: --swarmctl, $SWARMCTL, -DBENCH_SWARMCTL, else the swarmctl beside swarmd. */
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

static int usage(void)
{
    fprintf(stderr,
            "usage: bench-init [-n RUNS] [-r ROTATIONS] [-d DOCKER_RUNS] [--swarmd PATH]\n"
            "                  [--swarmctl PATH] [--docker PATH] [--docker-host URL]\n");
    return 2;
}

static bool parse_count(const char *s, int max, int *ret)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 1 || v > max)
        return false;
    *ret = (int)v;
    return true;
}

int main(int argc, char **argv)
{
    const char *swarmd = NULL, *swarmctl_arg = NULL;
    int runs = 20, rots = 20, druns = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        i++;
        if (strcmp(a, "-n") == 0) {
            if (!parse_count(v, 1000, &runs))
                return usage();
        } else if (strcmp(a, "-r") == 0) {
            if (!parse_count(v, 1000, &rots))
                return usage();
        } else if (strcmp(a, "-d") == 0) {
            if (!parse_count(v, 100, &druns))
                return usage();
        } else if (strcmp(a, "--swarmd") == 0)
            swarmd = v;
        else if (strcmp(a, "--swarmctl") == 0)
            swarmctl_arg = v;
        else if (strcmp(a, "--docker") == 0)
            docker_cli = v;
        else if (strcmp(a, "--docker-host") == 0)
            setenv("DOCKER_HOST", v, 1);
        else
            return usage();
    }
    if (!swarmd)
        swarmd = getenv("SWARMD");
#ifdef BENCH_SWARMD
    if (!swarmd)
        swarmd = BENCH_SWARMD;
#endif
    if (!swarmd) {
        fprintf(stderr, "bench-init: give --swarmd PATH (or SWARMD)\n");
        return 2;
    }
    /* Debian's CLI matches Debian's engine; another docker on PATH is used otherwise. */
    if (strcmp(docker_cli, "docker") == 0 && access("/usr/bin/docker", X_OK) == 0)
        docker_cli = "/usr/bin/docker";
    char ctlbuf[PATH_MAX];
    const char *swarmctl = find_swarmctl(swarmctl_arg, swarmd, ctlbuf, sizeof(ctlbuf));
    int failed = 0, most = runs > rots ? runs : rots;
    uint64_t *t = calloc((size_t)(most > druns ? most : druns), sizeof(*t));
    if (!t)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);

    char state[64];
    const char *dhost = getenv("DOCKER_HOST") ? getenv("DOCKER_HOST") : "(default socket)";
    bool engine = docker_state(state, sizeof(state)) == 0;
    bool dock = engine && strcmp(state, "inactive") == 0;
    if (!engine)
        printf(
            "docker: no Docker engine answers at DOCKER_HOST=%s (start one with "
            "bench/peer-docker.sh start); swarmd figures only\n",
            dhost);
    else if (!dock)
        printf(
            "docker: the engine at %s is in swarm state '%s'; left alone, swarmd figures "
            "only\n",
            dhost, state);

    for (int i = 0; i < runs; i++) {
        int r = run_once(swarmd, &t[i]);
        if (r < 0) {
            fprintf(stderr, "bench-init: run %d failed: %s\n", i, strerror(-r));
            free(t);
            return 1;
        }
    }
    qsort(t, (size_t)runs, sizeof(*t), cmp_u64);
    double med = ms_at(t, runs, 50);
    printf(
        "init: swarmd init until node ls answers: median %.1f ms, p90 %.1f ms, min %.1f ms "
        "(%d runs)\n",
        med, ms_at(t, runs, 90), (double)t[0] / 1e6, runs);
    if (dock && docker_inits(druns, t) == 0)
        printf(
            "init: docker swarm init + node ls: median %.1f ms, min %.1f ms (%d runs, same "
            "run)   ratio swarmd/docker %.3f\n",
            ms_at(t, druns, 50), (double)t[0] / 1e6, druns, med / ms_at(t, druns, 50));
    else if (dock && ++failed)
        printf("init: docker swarm init failed (see above)\n");

    if (!swarmctl) {
        printf("rotate: no swarmctl found beside %s (give --swarmctl PATH or SWARMCTL)\n", swarmd);
    } else if (swarmctl_rotations(swarmd, swarmctl, rots, t) == 0) {
        med = ms_at(t, rots, 50);
        printf(
            "rotate: swarmctl join-token --rotate -q worker: median %.1f ms, p90 %.1f ms, "
            "min %.1f ms (%d runs)\n",
            med, ms_at(t, rots, 90), (double)t[0] / 1e6, rots);
        if (dock && docker_rotations(rots, t) == 0)
            printf(
                "rotate: docker swarm join-token --rotate -q worker: median %.1f ms, p90 "
                "%.1f ms (%d runs, same run)   ratio swarmctl/docker %.3f\n",
                ms_at(t, rots, 50), ms_at(t, rots, 90), rots, med / ms_at(t, rots, 50));
        else if (dock && ++failed)
            printf("rotate: docker swarm join-token --rotate failed (see above)\n");
    } else {
        printf("rotate: swarmctl join-token --rotate failed (see above)\n");
        failed++;
    }
    free(t);
    return failed ? 1 : 0;
}
