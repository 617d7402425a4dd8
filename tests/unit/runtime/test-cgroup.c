/* runtime/cgroup.c without root: layout detection from fixture files, and the exact bytes
 * written into a fake cgroup tree (regular files standing in for the control files). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime/internal.h"

#define ID "7de90b1719fb716c17c6d2c550ca876b"

static char tmp[256];
static char errmsg[512];
static pid_t stray = -1; /* a child a failed test may leave */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    snprintf(tmp, sizeof(tmp), "/tmp/test-cgroup-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    errmsg[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    if (stray > 0) {
        kill(stray, SIGKILL);
        waitpid(stray, NULL, 0);
        stray = -1;
    }
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A path under tmp (a few rotating buffers). */
static const char *P(const char *fmt, ...)
{
    static char bufs[8][2 * RT_CGROUP_PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    char rel[RT_CGROUP_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    int n = snprintf(b, 2 * RT_CGROUP_PATH_MAX, "%s%s", tmp, rel);
    assert_true(n > 0 && n < 2 * RT_CGROUP_PATH_MAX);
    return b;
}

static void put(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static const char *get(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return "<missing>";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void mkdirs(const char *path)
{
    char b[RT_CGROUP_PATH_MAX];
    snprintf(b, sizeof(b), "%s", path);
    for (char *p = b + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(b, 0755);
            *p = '/';
        }
    mkdir(b, 0755);
}

/* A directory with empty control files. */
static void fake_cgroup(const char *dir, const char *files)
{
    mkdirs(dir);
    char list[1024];
    snprintf(list, sizeof(list), "%s", files);
    char *save = NULL;
    for (char *f = strtok_r(list, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
        char path[RT_CGROUP_PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, f);
        put(path, "");
    }
}

static void unlink_all(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* This machine: v1 controllers under a tmpfs, cgroup2 at unified with hugetlb only. */
static void write_hybrid_fixture(void)
{
    char mi[4096];
    snprintf(mi, sizeof(mi),
             "23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
             "31 23 0:28 / %s rw,relatime - tmpfs tmpfs rw,mode=755\n"
             "32 31 0:29 / %s/cpu rw,relatime - cgroup cgroup rw,cpu\n"
             "33 31 0:30 / %s/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
             "34 31 0:31 / %s/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
             "35 31 0:32 / %s/memory rw,relatime - cgroup cgroup rw,memory\n"
             "36 31 0:33 / %s/devices rw,relatime - cgroup cgroup rw,devices\n"
             "39 31 0:36 / %s/pids rw,relatime - cgroup cgroup rw,pids\n"
             "40 31 0:37 / %s/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
             "41 31 0:38 / %s/unified rw,relatime - cgroup2 cgroup2 rw\n",
             P("/cg"), P("/cg"), P("/cg"), P("/cg"), P("/cg"), P("/cg"), P("/cg"), P("/cg"),
             P("/cg"));
    put(P("/mountinfo"), mi);
    put(P("/self"),
        "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/" ID
        "\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n");
    mkdirs(P("/cg/unified"));
    put(P("/cg/unified/cgroup.controllers"), "hugetlb\n");
}

/* A systemd v1 machine: cpu,cpuacct co-mounted, a container's bind-mounted memory root. */
static void write_v1_fixture(void)
{
    char mi[4096];
    snprintf(mi, sizeof(mi),
             "25 20 0:23 / %s ro,nosuid - tmpfs tmpfs ro,mode=755\n"
             "28 25 0:26 / %s/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
             "29 25 0:27 /docker/abc %s/memory rw - cgroup cgroup rw,memory\n"
             "30 25 0:28 / %s/pids rw - cgroup cgroup rw,pids\n",
             P("/cg"), P("/cg"), P("/cg"), P("/cg"));
    put(P("/mountinfo"), mi);
    put(P("/self"),
        "5:pids:/system.slice/swarmd.service\n4:memory:/docker/abc\n"
        "3:cpu,cpuacct:/system.slice/swarmd.service\n1:name=systemd:/system.slice/"
        "swarmd.service\n");
}

static void write_v2_fixture(const char *controllers, const char *self)
{
    char mi[4096];
    snprintf(mi, sizeof(mi),
             "22 1 0:20 / /proc rw - proc proc rw\n"
             "30 24 0:26 / %s rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate\n",
             P("/cg"));
    put(P("/mountinfo"), mi);
    char s[512];
    snprintf(s, sizeof(s), "0::%s\n", self);
    put(P("/self"), s);
    char dir[RT_CGROUP_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s%s", P("/cg"), self);
    fake_cgroup(dir, "cgroup.subtree_control cgroup.procs");
    char path[RT_CGROUP_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
    put(path, controllers);
}

static int detect(enum rt_cgroup_mode mode, struct rt_cgroup_layout *l)
{
    errmsg[0] = '\0';
    return rt__cgroup_detect(P("/cg"), mode, P("/self"), P("/mountinfo"), l, errmsg,
                             sizeof(errmsg));
}

/* ------------------------------------------------------------------ detection */

static void test_detect_hybrid(void **state)
{
    write_hybrid_fixture();
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    assert_int_equal(l.mode, RT_CGROUP_V1);
    assert_string_equal(l.root, P("/cg"));
    assert_string_equal(l.v1_memory, P("/cg/memory"));
    assert_string_equal(l.v1_cpu, P("/cg/cpu")); /* not cpuacct, not cpuset */
    assert_string_equal(l.v1_pids, P("/cg/pids"));
    assert_string_equal(l.self_memory, "/process_api/" ID);
    assert_string_equal(l.self_cpu, "/");
    assert_string_equal(l.self_pids, "/");

    /* forcing v2 here uses the unified mount, which lacks the controllers */
    assert_int_equal(detect(RT_CGROUP_V2, &l), -ENOTSUP);
    assert_non_null(strstr(errmsg, "memory controller is not available"));
    assert_non_null(strstr(errmsg, "/cg/unified"));
    assert_non_null(strstr(errmsg, "hugetlb"));
}

static void test_detect_v1(void **state)
{
    write_v1_fixture();
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    assert_int_equal(l.mode, RT_CGROUP_V1);
    assert_string_equal(l.v1_cpu, P("/cg/cpu,cpuacct"));
    assert_string_equal(l.self_cpu, "/system.slice/swarmd.service");
    /* the mount's root is this process's cgroup: relative path "/" */
    assert_string_equal(l.v1_memory, P("/cg/memory"));
    assert_string_equal(l.self_memory, "/");
    assert_string_equal(l.self_pids, "/system.slice/swarmd.service");

    /* forced v2 with no cgroup2 mount */
    assert_int_equal(detect(RT_CGROUP_V2, &l), -ENOENT);
    assert_non_null(strstr(errmsg, "no cgroup2 mount"));
}

static void test_detect_v1_missing_controller(void **state)
{
    char mi[1024];
    snprintf(mi, sizeof(mi),
             "28 25 0:26 / %s/cpu rw - cgroup cgroup rw,cpu\n"
             "29 25 0:27 / %s/memory rw - cgroup cgroup rw,memory\n",
             P("/cg"), P("/cg"));
    put(P("/mountinfo"), mi);
    put(P("/self"), "2:memory:/\n1:cpu:/\n");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), -ENOTSUP);
    assert_non_null(strstr(errmsg, "no pids controller mounted"));
}

static void test_detect_v1_outside_mount(void **state)
{
    write_v1_fixture();
    put(P("/self"), "5:pids:/\n4:memory:/elsewhere\n3:cpu,cpuacct:/\n");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), -EXDEV);
    assert_non_null(strstr(errmsg, "memory cgroup /elsewhere is not visible"));
    /* a cgroup namespace's "/.." paths are refused, never joined */
    put(P("/self"), "5:pids:/../x\n4:memory:/docker/abc\n3:cpu,cpuacct:/\n");
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), -EXDEV);
}

static void test_detect_v2(void **state)
{
    write_v2_fixture("cpuset cpu io memory hugetlb pids rdma misc\n",
                     "/system.slice/swarmd.service");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    assert_int_equal(l.mode, RT_CGROUP_V2);
    assert_string_equal(l.v2_mount, P("/cg"));
    assert_string_equal(l.self_v2, "/system.slice/swarmd.service");

    /* the daemon leaf made by prepare_parent is not a new base */
    put(P("/self"), "0::/system.slice/swarmd.service/" RT_CGROUP_DAEMON_LEAF "\n");
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    assert_string_equal(l.self_v2, "/system.slice/swarmd.service");

    /* forced v1 on a pure v2 machine */
    assert_int_equal(detect(RT_CGROUP_V1, &l), -ENOTSUP);
    assert_non_null(strstr(errmsg, "cgroup v1: no memory controller"));
}

static void test_detect_v2_missing_controller(void **state)
{
    write_v2_fixture("cpuset cpu io memory\n", "/user.slice");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), -ENOTSUP);
    assert_non_null(strstr(errmsg, "the pids controller is not available"));
    assert_non_null(strstr(errmsg, "/cg/user.slice"));
}

static void test_detect_nothing(void **state)
{
    put(P("/mountinfo"), "22 1 0:20 / /proc rw - proc proc rw\n");
    put(P("/self"), "0::/\n");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), -ENOENT);
    assert_non_null(strstr(errmsg, "no cgroup v2 mount at"));
    /* a cgroup2 mount elsewhere (not under root) is not ours */
    put(P("/mountinfo"), "30 24 0:26 / /elsewhere rw - cgroup2 cgroup2 rw\n");
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), -ENOENT);
    /* missing files are named */
    assert_int_equal(rt__cgroup_detect(P("/cg"), RT_CGROUP_AUTO, P("/self"), P("/nope"), &l, errmsg,
                                       sizeof(errmsg)),
                     -ENOENT);
    assert_non_null(strstr(errmsg, "/nope"));
}

static void test_detect_escaped_mountpoint(void **state)
{
    mkdirs(P("/c g"));
    char mi[1024], root[RT_CGROUP_PATH_MAX];
    snprintf(mi, sizeof(mi), "30 24 0:26 / %s\\040g rw - cgroup2 cgroup2 rw\n", P("/c"));
    put(P("/mountinfo"), mi);
    put(P("/self"), "0::/\n");
    put(P("/c g/cgroup.controllers"), "cpu memory pids\n");
    snprintf(root, sizeof(root), "%s", P("/c g"));
    struct rt_cgroup_layout l;
    assert_int_equal(rt__cgroup_detect(root, RT_CGROUP_AUTO, P("/self"), P("/mountinfo"), &l,
                                       errmsg, sizeof(errmsg)),
                     0);
    assert_int_equal(l.mode, RT_CGROUP_V2);
    assert_string_equal(l.v2_mount, root);
}

/* ------------------------------------------------------------------ v1 tree */

static void v1_task_files(const char *parent_rel, const char *name, bool memsw)
{
    fake_cgroup(P("/cg/memory/process_api/" ID "/%s/%s", parent_rel, name),
                memsw ? "memory.limit_in_bytes memory.memsw.limit_in_bytes memory.oom_control "
                        "cgroup.procs"
                      : "memory.limit_in_bytes memory.oom_control cgroup.procs");
    fake_cgroup(P("/cg/cpu/%s/%s", parent_rel, name),
                "cpu.cfs_period_us cpu.cfs_quota_us cgroup.procs");
    fake_cgroup(P("/cg/pids/%s/%s", parent_rel, name), "pids.max cgroup.procs");
}

static void test_v1_create_limits_destroy(void **state)
{
    write_hybrid_fixture();
    mkdirs(P("/cg/memory/process_api/" ID));
    mkdirs(P("/cg/cpu"));
    mkdirs(P("/cg/pids"));
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    assert_int_equal(rt__cgroup_prepare_parent(&l, "swarmd", errmsg, sizeof(errmsg)), 0);
    /* nested under this process's cgroup, never at the hierarchy's root */
    assert_true(is_dir(P("/cg/memory/process_api/" ID "/swarmd")));
    assert_true(is_dir(P("/cg/cpu/swarmd")));
    assert_true(is_dir(P("/cg/pids/swarmd")));
    /* idempotent */
    assert_int_equal(rt__cgroup_prepare_parent(&l, "swarmd", errmsg, sizeof(errmsg)), 0);

    v1_task_files("swarmd", "t1", true);
    struct rt_cgroup_limits lim = {.memory_bytes = 64 << 20, .nano_cpus = 500000000, .pids = 64};
    struct rt_cgroup cg;
    assert_int_equal(rt__cgroup_create(&l, "swarmd", "t1", &lim, &cg, errmsg, sizeof(errmsg)), 0);
    assert_int_equal(cg.mode, RT_CGROUP_V1);
    assert_int_equal(cg.v2_fd, -1);
    assert_string_equal(cg.v2, "");
    assert_string_equal(cg.memory, P("/cg/memory/process_api/" ID "/swarmd/t1"));
    assert_string_equal(cg.cpu, P("/cg/cpu/swarmd/t1"));
    assert_string_equal(cg.pids, P("/cg/pids/swarmd/t1"));
    assert_string_equal(
        get(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1/memory.limit_in_bytes")), "67108864");
    assert_string_equal(
        get(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1/memory.memsw.limit_in_bytes")),
        "67108864");
    assert_string_equal(get(P("/cg/cpu/swarmd/t1/cpu.cfs_period_us")), "100000");
    assert_string_equal(get(P("/cg/cpu/swarmd/t1/cpu.cfs_quota_us")), "50000");
    assert_string_equal(get(P("/cg/pids/swarmd/t1/pids.max")), "64");

    assert_int_equal(rt__cgroup_attach(&cg, 4242, errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1/cgroup.procs")),
                        "4242");
    assert_string_equal(get(P("/cg/cpu/swarmd/t1/cgroup.procs")), "4242");
    assert_string_equal(get(P("/cg/pids/swarmd/t1/cgroup.procs")), "4242");

    put(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
    assert_int_equal(rt__cgroup_oom_killed(&cg), 0);
    put(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
    assert_int_equal(rt__cgroup_oom_killed(&cg), 1);

    /* the kernel removes control files with the directory; here the test does */
    unlink_all(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1"));
    unlink_all(P("/cg/cpu/swarmd/t1"));
    unlink_all(P("/cg/pids/swarmd/t1"));
    mkdirs(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1"));
    mkdirs(P("/cg/cpu/swarmd/t1"));
    mkdirs(P("/cg/pids/swarmd/t1"));
    assert_int_equal(rt__cgroup_destroy(&cg), 0);
    assert_false(is_dir(P("%s", "/cg/memory/process_api/" ID "/swarmd/t1")));
    assert_false(is_dir(P("/cg/cpu/swarmd/t1")));
    assert_false(is_dir(P("/cg/pids/swarmd/t1")));
    assert_string_equal(cg.memory, "");
    assert_int_equal(rt__cgroup_destroy(&cg), 0); /* twice is harmless */
    assert_int_equal(rt__cgroup_oom_killed(&cg), -ENOENT);

    assert_int_equal(rt__cgroup_release_parent(&l, "swarmd"), 0);
    assert_false(is_dir(P("%s", "/cg/memory/process_api/" ID "/swarmd")));
    assert_true(is_dir(P("%s", "/cg/memory/process_api/" ID)));
    assert_false(is_dir(P("/cg/pids/swarmd")));
    assert_true(is_dir(P("/cg/pids")));
}

static void test_v1_cpu_quota_and_no_memsw(void **state)
{
    write_hybrid_fixture();
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    struct {
        int64_t nano;
        const char *quota;
    } cases[] = {{1500000000, "150000"}, {1000000, "1000"}, {4000000000, "400000"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char name[16];
        snprintf(name, sizeof(name), "q%zu", i);
        v1_task_files("p/q", name, false);
        struct rt_cgroup_limits lim = {.memory_bytes = 1 << 30, .nano_cpus = cases[i].nano};
        struct rt_cgroup cg;
        assert_int_equal(rt__cgroup_create(&l, "p/q", name, &lim, &cg, errmsg, sizeof(errmsg)), 0);
        assert_string_equal(get(P("/cg/cpu/p/q/%s/cpu.cfs_quota_us", name)), cases[i].quota);
        assert_string_equal(
            get(P("/cg/memory/process_api/" ID "/p/q/%s/memory.limit_in_bytes", name)),
            "1073741824");
        /* no memsw file (swapaccount off): none created, no error */
        assert_string_equal(
            get(P("/cg/memory/process_api/" ID "/p/q/%s/memory.memsw.limit_in_bytes", name)),
            "<missing>");
        /* no pids limit: pids.max untouched */
        assert_string_equal(get(P("/cg/pids/p/q/%s/pids.max", name)), "");
    }
    /* no limits at all: nothing written */
    v1_task_files("p/q", "none", true);
    struct rt_cgroup cg;
    assert_int_equal(rt__cgroup_create(&l, "p/q", "none", NULL, &cg, errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("/cg/cpu/p/q/none/cpu.cfs_period_us")), "");
    assert_string_equal(
        get(P("%s", "/cg/memory/process_api/" ID "/p/q/none/memory.limit_in_bytes")), "");
}

static void test_v1_write_error_names_file(void **state)
{
    write_hybrid_fixture();
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    /* memory and cpu ready; the pids directory is created by create() but has no pids.max */
    fake_cgroup(P("%s", "/cg/memory/process_api/" ID "/swarmd/t2"),
                "memory.limit_in_bytes cgroup.procs");
    fake_cgroup(P("/cg/cpu/swarmd/t2"), "cpu.cfs_period_us cpu.cfs_quota_us");
    mkdirs(P("/cg/pids/swarmd"));
    struct rt_cgroup_limits lim = {.memory_bytes = 1 << 20, .pids = 10};
    struct rt_cgroup cg;
    memset(&cg, 0x5a, sizeof(cg));
    assert_int_equal(rt__cgroup_create(&l, "swarmd", "t2", &lim, &cg, errmsg, sizeof(errmsg)),
                     -ENOENT);
    char want[1024];
    snprintf(want, sizeof(want), "cgroup: write %s: No such file or directory",
             P("/cg/pids/swarmd/t2/pids.max"));
    assert_string_equal(errmsg, want);
    /* ret untouched; what create() made is gone */
    assert_int_equal(cg.v2_fd, 0x5a5a5a5a);
    assert_false(is_dir(P("/cg/pids/swarmd/t2")));
}

static void test_names_and_lengths(void **state)
{
    write_hybrid_fixture();
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    struct rt_cgroup cg;
    const char *bad_names[] = {"", ".", "..", "a/b", "../x", "a b", "x\n"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        assert_int_equal(
            rt__cgroup_create(&l, "swarmd", bad_names[i], NULL, &cg, errmsg, sizeof(errmsg)),
            -EINVAL);
    const char *bad_parents[] = {"", "/swarmd", "a//b", "a/../b", "a/", ".."};
    for (size_t i = 0; i < sizeof(bad_parents) / sizeof(bad_parents[0]); i++) {
        assert_int_equal(rt__cgroup_prepare_parent(&l, bad_parents[i], errmsg, sizeof(errmsg)),
                         -EINVAL);
        assert_int_equal(
            rt__cgroup_create(&l, bad_parents[i], "t", NULL, &cg, errmsg, sizeof(errmsg)), -EINVAL);
    }
    struct rt_cgroup_limits neg = {.pids = -1};
    assert_int_equal(rt__cgroup_create(&l, "swarmd", "t", &neg, &cg, errmsg, sizeof(errmsg)),
                     -EINVAL);
    /* a path that does not fit is refused, not truncated */
    char longname[256];
    memset(longname, 'a', 255);
    longname[255] = '\0';
    snprintf(l.self_memory, sizeof(l.self_memory), "/%s", longname);
    assert_int_equal(rt__cgroup_create(&l, "swarmd", longname, NULL, &cg, errmsg, sizeof(errmsg)),
                     -ENAMETOOLONG);
    assert_non_null(strstr(errmsg, "path too long"));
}

/* ------------------------------------------------------------------ v2 tree */

static void test_v2_create_limits_destroy(void **state)
{
    write_v2_fixture("cpuset cpu io memory pids\n", "/system.slice/swarmd.service");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    fake_cgroup(P("/cg/system.slice/swarmd.service/swarmd"), "cgroup.subtree_control");
    assert_int_equal(rt__cgroup_prepare_parent(&l, "swarmd", errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/cgroup.subtree_control")),
                        "+memory +cpu +pids");
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/cgroup.subtree_control")),
                        "+memory +cpu +pids");
    /* where already enabled (the kernel lists them without '+'), nothing is written */
    put(P("/cg/system.slice/swarmd.service/cgroup.subtree_control"), "cpu memory pids\n");
    put(P("/cg/system.slice/swarmd.service/swarmd/cgroup.subtree_control"), "memory\n");
    assert_int_equal(rt__cgroup_prepare_parent(&l, "swarmd", errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/cgroup.subtree_control")),
                        "cpu memory pids\n");
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/cgroup.subtree_control")),
                        "+cpu +pids");

    const char *t1 = P("/cg/system.slice/swarmd.service/swarmd/t1");
    char t1dir[RT_CGROUP_PATH_MAX];
    snprintf(t1dir, sizeof(t1dir), "%s", t1);
    fake_cgroup(t1dir, "memory.max memory.swap.max cpu.max pids.max cgroup.procs memory.events");
    struct rt_cgroup_limits lim = {.memory_bytes = 64 << 20, .nano_cpus = 500000000, .pids = 64};
    struct rt_cgroup cg;
    assert_int_equal(rt__cgroup_create(&l, "swarmd", "t1", &lim, &cg, errmsg, sizeof(errmsg)), 0);
    assert_int_equal(cg.mode, RT_CGROUP_V2);
    assert_string_equal(cg.v2, t1dir);
    assert_string_equal(cg.memory, "");
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/t1/memory.max")), "67108864");
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/t1/memory.swap.max")), "0");
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/t1/cpu.max")),
                        "50000 100000");
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/t1/pids.max")), "64");

    /* the fd for CLONE_INTO_CGROUP is the cgroup's directory, close-on-exec */
    assert_true(cg.v2_fd >= 0);
    struct stat a, b;
    assert_int_equal(fstat(cg.v2_fd, &a), 0);
    assert_int_equal(stat(t1dir, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    assert_true(fcntl(cg.v2_fd, F_GETFD) & FD_CLOEXEC);

    assert_int_equal(rt__cgroup_attach(&cg, 777, errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/t1/cgroup.procs")), "777");

    put(P("/cg/system.slice/swarmd.service/swarmd/t1/memory.events"),
        "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\noom_group_kill 0\n");
    assert_int_equal(rt__cgroup_oom_killed(&cg), 0);
    put(P("/cg/system.slice/swarmd.service/swarmd/t1/memory.events"),
        "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n");
    assert_int_equal(rt__cgroup_oom_killed(&cg), 1);
    put(P("/cg/system.slice/swarmd.service/swarmd/t1/memory.events"), "garbage");
    assert_true(rt__cgroup_oom_killed(&cg) < 0);

    /* cgroup.kill, when the kernel has it, is written before the removal */
    put(P("/cg/system.slice/swarmd.service/swarmd/t1/cgroup.kill"), "");
    int fd = cg.v2_fd;
    assert_int_equal(rt__cgroup_destroy(&cg), -ENOTEMPTY); /* regular files stay here */
    assert_string_equal(get(P("/cg/system.slice/swarmd.service/swarmd/t1/cgroup.kill")), "1");
    assert_int_equal(cg.v2_fd, -1);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    unlink_all(t1dir);
    mkdirs(t1dir);
    assert_int_equal(rt__cgroup_destroy(&cg), 0);
    assert_false(is_dir(t1dir));
    assert_string_equal(cg.v2, "");
}

static void test_v2_cpu_only(void **state)
{
    /* a v2 tree without swap accounting: memory.swap.max absent, not required */
    write_v2_fixture("cpu memory pids\n", "/");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    assert_string_equal(l.self_v2, "/");
    fake_cgroup(P("/cg/swarmd"), "cgroup.subtree_control");
    assert_int_equal(rt__cgroup_prepare_parent(&l, "swarmd", errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("/cg/cgroup.subtree_control")), "+memory +cpu +pids");
    fake_cgroup(P("/cg/swarmd/t"), "memory.max cpu.max pids.max");
    struct rt_cgroup_limits lim = {.memory_bytes = 32 << 20, .nano_cpus = 2000000000};
    struct rt_cgroup cg;
    assert_int_equal(rt__cgroup_create(&l, "swarmd", "t", &lim, &cg, errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("/cg/swarmd/t/cpu.max")), "200000 100000");
    assert_string_equal(get(P("/cg/swarmd/t/memory.max")), "33554432");
    assert_string_equal(get(P("/cg/swarmd/t/pids.max")), "");
    assert_string_equal(get(P("/cg/swarmd/t/memory.swap.max")), "<missing>");
    close(cg.v2_fd);
}

/* ------------------------------------------------------------------ destroy */

static void test_destroy_kills_listed_processes(void **state)
{
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (;;)
            pause();
    }
    stray = child;
    const char *dir = P("/cg/memory/t");
    fake_cgroup(dir, "cgroup.procs");
    char pid[32];
    snprintf(pid, sizeof(pid), "%d\n", (int)child);
    put(P("/cg/memory/t/cgroup.procs"), pid);
    struct rt_cgroup cg;
    rt__cgroup_init(&cg);
    cg.mode = RT_CGROUP_V1;
    snprintf(cg.memory, sizeof(cg.memory), "%s", dir);
    /* the fake directory cannot be removed (it holds a regular file) */
    assert_int_equal(rt__cgroup_destroy(&cg), -ENOTEMPTY);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    stray = -1;
}

static void test_live_cgroup_not_adopted(void **state)
{
    write_v2_fixture("cpu memory pids\n", "/");
    struct rt_cgroup_layout l;
    assert_int_equal(detect(RT_CGROUP_AUTO, &l), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (;;)
            pause();
    }
    stray = child;
    fake_cgroup(P("/cg/swarmd/t"), "memory.max cgroup.procs");
    char pid[32];
    snprintf(pid, sizeof(pid), "%d\n", (int)child);
    put(P("/cg/swarmd/t/cgroup.procs"), pid);
    struct rt_cgroup_limits lim = {.memory_bytes = 1 << 20};
    struct rt_cgroup cg;
    assert_int_equal(rt__cgroup_create(&l, "swarmd", "t", &lim, &cg, errmsg, sizeof(errmsg)),
                     -EEXIST);
    assert_non_null(strstr(errmsg, "already exists and holds processes"));
    /* neither written to, nor removed, nor its process killed */
    assert_string_equal(get(P("/cg/swarmd/t/memory.max")), "");
    assert_int_equal(waitpid(child, NULL, WNOHANG), 0);
    /* an empty leftover is reused */
    put(P("/cg/swarmd/t/cgroup.procs"), "");
    assert_int_equal(rt__cgroup_create(&l, "swarmd", "t", &lim, &cg, errmsg, sizeof(errmsg)), 0);
    assert_string_equal(get(P("/cg/swarmd/t/memory.max")), "1048576");
    close(cg.v2_fd);
}

static void test_destroy_safety(void **state)
{
    struct rt_cgroup cg;
    /* zeroed (e.g. calloc'd task whose create failed): nothing happens, fd 0 untouched */
    memset(&cg, 0, sizeof(cg));
    assert_int_equal(rt__cgroup_destroy(&cg), 0);
    assert_int_equal(rt__cgroup_destroy(NULL), 0);

    /* ".." is never followed */
    mkdirs(P("/victim"));
    mkdirs(P("/cg/x"));
    rt__cgroup_init(&cg);
    cg.mode = RT_CGROUP_V1;
    snprintf(cg.memory, sizeof(cg.memory), "%s", P("/cg/x/../../victim"));
    assert_int_equal(rt__cgroup_destroy(&cg), -EINVAL);
    assert_true(is_dir(P("/victim")));

    /* a symlink in place of the cgroup is not removed nor followed */
    assert_int_equal(symlink(P("/victim"), P("/cg/link")), 0);
    rt__cgroup_init(&cg);
    cg.mode = RT_CGROUP_V1;
    snprintf(cg.pids, sizeof(cg.pids), "%s", P("/cg/link"));
    assert_int_equal(rt__cgroup_destroy(&cg), -ENOTDIR);
    assert_true(is_dir(P("/victim")));

    /* half-created: only some paths set, one already gone */
    mkdirs(P("/cg/half"));
    rt__cgroup_init(&cg);
    cg.mode = RT_CGROUP_V1;
    snprintf(cg.memory, sizeof(cg.memory), "%s", P("/cg/half"));
    snprintf(cg.cpu, sizeof(cg.cpu), "%s", P("/cg/gone"));
    assert_int_equal(rt__cgroup_destroy(&cg), 0);
    assert_false(is_dir(P("/cg/half")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_detect_hybrid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detect_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detect_v1_missing_controller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detect_v1_outside_mount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detect_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detect_v2_missing_controller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detect_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detect_escaped_mountpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_create_limits_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_cpu_quota_and_no_memsw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_write_error_names_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_and_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_create_limits_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_cpu_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_kills_listed_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_cgroup_not_adopted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_safety, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
