/* bench-init: wall time of `swarmd init` until `node ls` answers, over fresh state dirs.
 * Prints the median and p90, and Docker Swarm's `docker swarm init` + `docker node ls`
 * from the same run when a Docker engine answers on this machine.
 *   bench-init [-n RUNS] [--swarmd PATH]   (default: the swarmd built beside it) */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int run_once(const char *swarmd, uint64_t *ret_ns)
{
    char dir[] = "/tmp/bench-init.XXXXXX", state[128], sock[160];
    if (!mkdtemp(dir))
        return -errno;
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(sock, sizeof(sock), "%s/swarmd.sock", state);
    uint64_t t0 = sw_now_monotonic_ns();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(swarmd, swarmd, "init", "--state-dir", state, "--listen-addr", "127.0.0.1:0",
              "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    int r = -ETIMEDOUT;
    while (sw_now_monotonic_ns() - t0 < 10 * SW_NSEC_PER_SEC) {
        if (access(sock, F_OK) == 0 && node_ls(sock) == 0) {
            *ret_ns = sw_now_monotonic_ns() - t0;
            r = 0;
            break;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            r = -ECHILD;
            pid = -1;
            break;
        }
        struct timespec ts = {0, 200000}; /* 0.2 ms */
        nanosleep(&ts, NULL);
    }
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench-init: could not remove %s\n", dir);
    return r;
}

/* docker swarm init + docker node ls, when an engine is up and not in a swarm. */
static double docker_init_ms(void)
{
    if (system(
            "docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null | grep -qx inactive") !=
        0)
        return -1;
    uint64_t t0 = sw_now_monotonic_ns();
    int r = system(
        "docker swarm init --advertise-addr 127.0.0.1 >/dev/null 2>&1 && "
        "docker node ls >/dev/null 2>&1");
    uint64_t dt = sw_now_monotonic_ns() - t0;
    if (system("docker swarm leave --force >/dev/null 2>&1") != 0)
        fprintf(stderr, "bench-init: docker swarm leave failed\n");
    return r == 0 ? (double)dt / 1e6 : -1;
}

int main(int argc, char **argv)
{
    const char *swarmd = NULL;
    int runs = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            runs = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--swarmd") == 0 && i + 1 < argc)
            swarmd = argv[++i];
        else {
            fprintf(stderr, "usage: bench-init [-n RUNS] [--swarmd PATH]\n");
            return 2;
        }
    }
    if (!swarmd)
        swarmd = getenv("SWARMD");
#ifdef BENCH_SWARMD
    if (!swarmd)
        swarmd = BENCH_SWARMD;
#endif
    if (!swarmd || runs < 1 || runs > 1000) {
        fprintf(stderr, "bench-init: give --swarmd PATH (or SWARMD) and 1..1000 runs\n");
        return 2;
    }
    uint64_t *t = calloc((size_t)runs, sizeof(*t));
    if (!t)
        return 1;
    for (int i = 0; i < runs; i++) {
        int r = run_once(swarmd, &t[i]);
        if (r < 0) {
            fprintf(stderr, "bench-init: run %d failed: %s\n", i, strerror(-r));
            return 1;
        }
    }
    qsort(t, (size_t)runs, sizeof(*t), cmp_u64);
    double med = (double)t[runs / 2] / 1e6,
           p90 = (double)t[(runs * 9) / 10 < runs ? (runs * 9) / 10 : runs - 1] / 1e6;
    printf(
        "init: swarmd init until node ls answers: median %.1f ms, p90 %.1f ms, min %.1f ms (%d "
        "runs)\n",
        med, p90, (double)t[0] / 1e6, runs);
    double d = docker_init_ms();
    if (d > 0)
        printf("init: docker swarm init + node ls %.0f ms (same run)   ratio %.3f\n", d, med / d);
    else
        printf(
            "init: docker swarm init: no Docker engine running here (PEERS.md figure: ~740 ms)   "
            "ratio vs 740 ms %.3f\n",
            med / 740.0);
    free(t);
    return 0;
}
