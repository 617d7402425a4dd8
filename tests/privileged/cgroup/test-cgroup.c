/* runtime/cgroup.c as root on the real hierarchies: limits read back, attach, OOM kill,
 * fork bomb stopped at pids.max, nothing left after destroy. Argument "v1" or "v2". */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"

static int failures;
static char parent[64];
static char errmsg[1024];

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, "\n");                                          \
            failures++;                                                     \
        }                                                                   \
    } while (0)

static const char *slurp_all(const char *dir, const char *file)
{
    static char buf[8192];
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return "<missing>";
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* The first line. */
static const char *slurp(const char *dir, const char *file)
{
    char *buf = (char *)slurp_all(dir, file);
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

static bool gone(const char *path)
{
    struct stat st;
    return path[0] == '\0' || (stat(path, &st) < 0 && errno == ENOENT);
}

/* Does /proc/<pid>/cgroup put pid in a cgroup ending in /<parent>/<name> for key? */
static bool in_cgroup(pid_t pid, const char *key, const char *name)
{
    char path[64], line[1024], want[256];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    snprintf(want, sizeof(want), "/%s/%s", parent, name);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool found = false;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        size_t l = strlen(c2 + 1), wl = strlen(want);
        bool match = l >= wl && strcmp(c2 + 1 + l - wl, want) == 0;
        if (strcmp(c1 + 1, key) == 0 || (key[0] && strstr(c1 + 1, key)))
            found = found || match;
    }
    fclose(f);
    return found;
}

/* A child stopped at a pipe until the parent attached it; then runs body. */
static pid_t spawn(int *release_fd, int (*body)(void))
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(p[1]);
        if (read(p[0], &c, 1) != 1)
            _exit(99);
        _exit(body());
    }
    close(p[0]);
    *release_fd = p[1];
    return pid;
}

static void release(int fd)
{
    if (write(fd, "x", 1) != 1)
        perror("release");
    close(fd);
}

static int body_pause(void)
{
    for (;;)
        pause();
    return 0;
}

static int body_hog(void)
{
    size_t size = 256u << 20;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 2;
    for (size_t i = 0; i < size; i += 4096)
        p[i] = 1;
    return 0; /* survived: the limit did not hold */
}

static int body_bomb(void)
{
    for (int n = 0; n < 1000; n++) {
        pid_t c = fork();
        if (c == 0) {
            for (;;)
                pause();
        }
        if (c < 0)
            return errno == EAGAIN && n > 0 && n < 16 ? 0 : 10 + (errno == EAGAIN);
    }
    return 3; /* never stopped */
}

static int body_spin(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 600000000L);
    return 0;
}

static int wait_status(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

static void reap_all(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static void check_destroyed(struct rt_cgroup *cg)
{
    char saved[4][RT_CGROUP_PATH_MAX];
    const char *paths[4] = {cg->v2, cg->memory, cg->cpu, cg->pids};
    for (int i = 0; i < 4; i++)
        snprintf(saved[i], sizeof(saved[i]), "%s", paths[i]);
    int r = rt__cgroup_destroy(cg);
    CHECK(r == 0, "destroy: %s", strerror(-r));
    for (int i = 0; i < 4; i++)
        CHECK(gone(saved[i]), "%s still exists", saved[i]);
}

/* The whole test on a layout with memory, cpu and pids (v1 or pure v2). */
static void full_test(const struct rt_cgroup_layout *l)
{
    bool v2 = l->mode == RT_CGROUP_V2;
    int r = rt__cgroup_prepare_parent(l, parent, errmsg, sizeof(errmsg));
    CHECK(r == 0, "prepare_parent: %s", errmsg);
    if (r < 0)
        return;

    /* limits read back; attach shows in /proc/<pid>/cgroup */
    struct rt_cgroup_limits lim = {.memory_bytes = 32 << 20, .nano_cpus = 500000000, .pids = 16};
    struct rt_cgroup cg;
    r = rt__cgroup_create(l, parent, "limits", &lim, &cg, errmsg, sizeof(errmsg));
    CHECK(r == 0, "create: %s", errmsg);
    if (r == 0) {
        if (v2) {
            CHECK(strcmp(slurp(cg.v2, "memory.max"), "33554432") == 0, "%s",
                  slurp(cg.v2, "memory.max"));
            CHECK(strcmp(slurp(cg.v2, "cpu.max"), "50000 100000") == 0, "%s",
                  slurp(cg.v2, "cpu.max"));
            CHECK(strcmp(slurp(cg.v2, "pids.max"), "16") == 0, "%s", slurp(cg.v2, "pids.max"));
            CHECK(cg.v2_fd >= 0, "v2_fd");
        } else {
            CHECK(strcmp(slurp(cg.memory, "memory.limit_in_bytes"), "33554432") == 0, "%s",
                  slurp(cg.memory, "memory.limit_in_bytes"));
            const char *sw = slurp(cg.memory, "memory.memsw.limit_in_bytes");
            CHECK(strcmp(sw, "<missing>") == 0 || strcmp(sw, "33554432") == 0, "memsw %s", sw);
            CHECK(strcmp(slurp(cg.cpu, "cpu.cfs_period_us"), "100000") == 0, "period");
            CHECK(strcmp(slurp(cg.cpu, "cpu.cfs_quota_us"), "50000") == 0, "%s",
                  slurp(cg.cpu, "cpu.cfs_quota_us"));
            CHECK(strcmp(slurp(cg.pids, "pids.max"), "16") == 0, "%s", slurp(cg.pids, "pids.max"));
            CHECK(cg.v2_fd == -1, "v2_fd on v1");
        }
        int rel;
        pid_t pid = spawn(&rel, body_spin);
        r = rt__cgroup_attach(&cg, pid, errmsg, sizeof(errmsg));
        CHECK(r == 0, "attach: %s", errmsg);
        if (v2) {
            CHECK(in_cgroup(pid, "", "limits"), "pid %d not in the v2 cgroup", (int)pid);
        } else {
            CHECK(in_cgroup(pid, "memory", "limits"), "pid %d not in memory cgroup", (int)pid);
            CHECK(in_cgroup(pid, "cpu", "limits"), "pid %d not in cpu cgroup", (int)pid);
            CHECK(in_cgroup(pid, "pids", "limits"), "pid %d not in pids cgroup", (int)pid);
        }
        release(rel);
        int st = wait_status(pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "spinner status %#x", st);
        /* half a CPU: a 600 ms spin was throttled */
        const char *stat = slurp_all(v2 ? cg.v2 : cg.cpu, "cpu.stat");
        CHECK(strstr(stat, "nr_throttled 0") == NULL && strstr(stat, "nr_throttled") != NULL,
              "cpu.stat shows no throttling: %s", stat);
        CHECK(rt__cgroup_oom_killed(&cg) == 0, "oom before any hog");
        check_destroyed(&cg);
    }

    /* memory hog: 256 MiB touched under a 32 MiB limit is OOM-killed */
    r = rt__cgroup_create(l, parent, "hog", &lim, &cg, errmsg, sizeof(errmsg));
    CHECK(r == 0, "create hog: %s", errmsg);
    if (r == 0) {
        int rel;
        pid_t pid = spawn(&rel, body_hog);
        CHECK(rt__cgroup_attach(&cg, pid, errmsg, sizeof(errmsg)) == 0, "attach: %s", errmsg);
        release(rel);
        int st = wait_status(pid);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "hog status %#x", st);
        CHECK(rt__cgroup_oom_killed(&cg) == 1, "oom_killed %d", rt__cgroup_oom_killed(&cg));
        check_destroyed(&cg);
    }

    /* fork bomb: fork fails with EAGAIN at pids.max; destroy kills what it left */
    r = rt__cgroup_create(l, parent, "bomb", &lim, &cg, errmsg, sizeof(errmsg));
    CHECK(r == 0, "create bomb: %s", errmsg);
    if (r == 0) {
        int rel;
        pid_t pid = spawn(&rel, body_bomb);
        CHECK(rt__cgroup_attach(&cg, pid, errmsg, sizeof(errmsg)) == 0, "attach: %s", errmsg);
        release(rel);
        int st = wait_status(pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bomb status %#x", st);
        check_destroyed(&cg); /* 15 paused children are still in there */
        reap_all();
    }

    r = rt__cgroup_release_parent(l, parent);
    CHECK(r == 0, "release_parent: %s", strerror(-r));
}

/* Detection on a real cgroup2 mount: in a private mount namespace, mount cgroup2 on a temp
 * dir; AUTO must choose V2 there and name the controller the unified hierarchy lacks. */
static void private_mount_detection(void)
{
    char dir[] = "/tmp/swarmd-cg2-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("cgroup2", dir, "cgroup2", 0, NULL) < 0)
            _exit(2);
        struct rt_cgroup_layout l;
        int r = rt__cgroup_detect(dir, RT_CGROUP_AUTO, NULL, NULL, &l, errmsg, sizeof(errmsg));
        bool ok = r == -ENOTSUP && strstr(errmsg, "the memory controller is not available") &&
                  strstr(errmsg, dir);
        if (!ok)
            fprintf(stderr, "detect on %s: %d %s\n", dir, r, errmsg);
        _exit(ok ? 0 : 1);
    }
    int st = wait_status(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "private cgroup2 mount detection: %#x", st);
    rmdir(dir);
}

/* The hybrid layout's unified hierarchy has no memory/cpu/pids controller: exercise the v2
 * mechanics that do not need them (mkdir, CLONE_INTO_CGROUP via v2_fd, attach,
 * cgroup.kill, rmdir) and the refusal to pretend limits exist. */
static void unified_test(const char *mount)
{
    struct rt_cgroup_layout l;
    int r = rt__cgroup_detect(NULL, RT_CGROUP_V2, NULL, NULL, &l, errmsg, sizeof(errmsg));
    CHECK(r == -ENOTSUP && strstr(errmsg, "controller is not available"),
          "forced v2 on the hybrid layout: %d %s", r, errmsg);

    memset(&l, 0, sizeof(l));
    l.mode = RT_CGROUP_V2;
    snprintf(l.root, sizeof(l.root), "/sys/fs/cgroup");
    snprintf(l.v2_mount, sizeof(l.v2_mount), "%s", mount);
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[RT_CGROUP_PATH_MAX];
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            memcpy(l.self_v2, line + 3, strlen(line + 3) + 1);
        }
    if (f)
        fclose(f);
    CHECK(l.self_v2[0] == '/', "no 0:: line");

    r = rt__cgroup_prepare_parent(&l, parent, errmsg, sizeof(errmsg));
    CHECK(r == 0, "prepare_parent: %s", errmsg);
    if (r < 0)
        return;

    /* a limit the hierarchy cannot hold is an error naming the file, and leaves nothing */
    struct rt_cgroup_limits mem = {.memory_bytes = 32 << 20};
    struct rt_cgroup cg;
    r = rt__cgroup_create(&l, parent, "nomem", &mem, &cg, errmsg, sizeof(errmsg));
    CHECK(r == -ENOENT && strstr(errmsg, "/nomem/memory.max: No such file or directory"),
          "memory limit on a controller-less v2: %d %s", r, errmsg);
    char nomem[2 * RT_CGROUP_PATH_MAX];
    snprintf(nomem, sizeof(nomem), "%s%s/%s/nomem", mount, strcmp(l.self_v2, "/") ? l.self_v2 : "",
             parent);
    CHECK(gone(nomem), "%s left behind", nomem);

    r = rt__cgroup_create(&l, parent, "t", NULL, &cg, errmsg, sizeof(errmsg));
    CHECK(r == 0, "create: %s", errmsg);
    if (r < 0)
        return;
    CHECK(cg.v2_fd >= 0 && (fcntl(cg.v2_fd, F_GETFD) & FD_CLOEXEC), "v2_fd");

    /* clone3 straight into the cgroup */
    struct clone_args args = {
        .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (unsigned long long)cg.v2_fd};
    pid_t a = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
    if (a == 0) {
        for (;;)
            pause();
    }
    CHECK(a > 0, "clone3 CLONE_INTO_CGROUP: %s", strerror(errno));
    if (a > 0)
        CHECK(in_cgroup(a, "", "t"), "clone3 child %d not in the cgroup", (int)a);

    /* attach moves another */
    int rel;
    pid_t b = spawn(&rel, body_pause);
    r = rt__cgroup_attach(&cg, b, errmsg, sizeof(errmsg));
    CHECK(r == 0, "attach: %s", errmsg);
    CHECK(in_cgroup(b, "", "t"), "attached child %d not in the cgroup", (int)b);
    release(rel);
    CHECK(rt__cgroup_oom_killed(&cg) < 0, "oom_killed without memory.events");

    /* destroy: cgroup.kill ends both, the directory goes */
    check_destroyed(&cg);
    if (a > 0) {
        int st = wait_status(a);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "clone3 child status %#x", st);
    }
    int st = wait_status(b);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "attached child status %#x", st);
    CHECK(cg.v2_fd == -1, "v2_fd closed");

    r = rt__cgroup_release_parent(&l, parent);
    CHECK(r == 0, "release_parent: %s", strerror(-r));
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "v1") && strcmp(argv[1], "v2"))) {
        fprintf(stderr, "usage: %s v1|v2\n", argv[0]);
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root\n");
        return 77;
    }
    snprintf(parent, sizeof(parent), "swarmd-test-%d", (int)getpid());
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* the fork bomb's orphans come back to us */

    struct rt_cgroup_layout l;
    int r = rt__cgroup_detect(NULL, RT_CGROUP_AUTO, NULL, NULL, &l, errmsg, sizeof(errmsg));
    if (r < 0) {
        fprintf(stderr, "SKIP: %s\n", errmsg);
        return 77;
    }
    if (strcmp(argv[1], "v1") == 0) {
        if (l.mode != RT_CGROUP_V1) {
            fprintf(stderr, "SKIP: not a v1 machine\n");
            return 77;
        }
        full_test(&l);
    } else if (l.mode == RT_CGROUP_V2) {
        full_test(&l);
    } else {
        struct stat st;
        if (stat("/sys/fs/cgroup/unified/cgroup.procs", &st) < 0) {
            fprintf(stderr, "SKIP: no cgroup2 mount\n");
            return 77;
        }
        fprintf(stderr, "hybrid layout: v2 mechanics on /sys/fs/cgroup/unified only\n");
        private_mount_detection();
        unified_test("/sys/fs/cgroup/unified");
    }
    reap_all();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
