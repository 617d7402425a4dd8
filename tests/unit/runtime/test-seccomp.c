/* Unit tests for runtime seccomp: the default profile and JSON profiles, compiled here and
 * loaded in a forked child (no_new_privs only, no root), which tries syscalls and reports
 * each result to the parent through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <seccomp.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "runtime/internal.h"

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

#define CAPB(c) (1ULL << (c))

/* What a task tries. Each returns 0 on success or the errno it got. */
enum probe {
    P_GETPID,
    P_FORK,
    P_UNSHARE_UTS,
    P_CLONE_NEWUTS,
    P_MOUNT,
    P_SETHOSTNAME,
    P_REBOOT,
    P_KEYCTL,
    P_ADD_KEY,
    P_BPF,
    P_KEXEC,
    P_SETNS,
    P_CLOCK_SETTIME,
    P_SOCKET_ALG,
    P_SOCKET_ALG_HIGH,
    P_SOCKET_VSOCK,
    P_SOCKET_INET,
    P_SOCKET_UNIX,
    P_CLONE3,
    P_IO_URING,
    P_USERFAULTFD,
    P_PERSONALITY_QUERY,
    P_PERSONALITY_BSD,
    P_CHROOT,
    P_PTRACE_KCMP,
    P_NEWER_SYSCALL,
    P_I386_GETPID,
    P_I386_KEYCTL,
    P_I386_MOUNT,
    P_I386_UNSHARE,
    P_I386_SOCKET_ALG,
    P_I386_SOCKET_INET,
    P_I386_CLONE3,
    P_X32_KEYCTL,
    N_PROBES,
};

static const char *const probe_names[N_PROBES] = {
    "getpid",
    "fork",
    "unshare(NEWUTS)",
    "clone(NEWUTS)",
    "mount",
    "sethostname",
    "reboot",
    "keyctl",
    "add_key",
    "bpf",
    "kexec_load",
    "setns",
    "clock_settime",
    "socket(AF_ALG)",
    "socket(AF_ALG|hi)",
    "socket(AF_VSOCK)",
    "socket(AF_INET)",
    "socket(AF_UNIX)",
    "clone3",
    "io_uring_setup",
    "userfaultfd",
    "personality(query)",
    "personality(BSD)",
    "chroot",
    "kcmp",
    "a syscall newer than libseccomp",
    "i386 getpid",
    "i386 keyctl",
    "i386 mount",
    "i386 unshare",
    "i386 socket(AF_ALG)",
    "i386 socket(AF_INET)",
    "i386 clone3",
    "x32 keyctl",
};

/* The first syscall number past libseccomp's x86_64 table. */
static long newer_nr = 1000;

#ifdef __x86_64__
/* A syscall through the i386 ABI (int 0x80), as a 32-bit binary in a task makes it. */
static long sys_i386(long nr, long a, long b, long c)
{
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return r;
}

/* A syscall through the x32 ABI (bit 30 set on the x86_64 number). */
static long sys_x32(long nr, long a, long b, long c)
{
    long r;
    register long r10 __asm__("r10") = 0;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr | 0x40000000L), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

static int raw_errno(long r)
{
    return r < 0 && r > -4096 ? (int)-r : 0;
}
#endif

static int ret_errno(long r)
{
    return r < 0 ? errno : 0;
}

static int run_probe(enum probe p)
{
    long r;
    switch (p) {
        case P_GETPID:
            return getpid() > 0 ? 0 : EIO;
        case P_FORK: {
            pid_t pid = fork();
            if (pid < 0)
                return errno;
            if (pid == 0)
                _exit(7);
            int st;
            if (waitpid(pid, &st, 0) < 0)
                return errno;
            return WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : EIO;
        }
        case P_UNSHARE_UTS:
            /* Harmless either way: this child's own namespace. */
            return ret_errno(unshare(CLONE_NEWUTS));
        case P_CLONE_NEWUTS: {
            r = syscall(SYS_clone, (unsigned long)(CLONE_NEWUTS | SIGCHLD), 0, 0, 0, 0);
            if (r == 0)
                _exit(0);
            if (r > 0) {
                waitpid((pid_t)r, NULL, 0);
                return 0;
            }
            return errno;
        }
        case P_MOUNT:
            return ret_errno(mount("none", "/nonexistent-swarmd-test", "tmpfs", 0, NULL));
        case P_SETHOSTNAME:
            /* Only ever tried under a filter that refuses it (see the tests). */
            return ret_errno(sethostname("x", 1));
        case P_REBOOT:
            return ret_errno(syscall(SYS_reboot, 0x1, 0x2, 0x3, NULL)); /* bad magic */
        case P_KEYCTL:
            return ret_errno(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
        case P_ADD_KEY:
            return ret_errno(syscall(SYS_add_key, "user", "swarmd-test", "x", 1, -3));
        case P_BPF:
            return ret_errno(syscall(SYS_bpf, 9999, NULL, 0));
        case P_KEXEC:
            return ret_errno(syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL));
        case P_SETNS:
            return ret_errno(syscall(SYS_setns, -1, 0));
        case P_CLOCK_SETTIME: {
            /* CLOCK_MONOTONIC cannot be set: the kernel says EINVAL when it lets us try. */
            struct timespec ts = {1, 0};
            return ret_errno(syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts));
        }
        case P_SOCKET_ALG:
        case P_SOCKET_ALG_HIGH:
        case P_SOCKET_VSOCK:
        case P_SOCKET_INET:
        case P_SOCKET_UNIX: {
            unsigned long fam = p == P_SOCKET_ALG        ? AF_ALG
                                : p == P_SOCKET_ALG_HIGH ? (1UL << 32) | AF_ALG
                                : p == P_SOCKET_VSOCK    ? AF_VSOCK
                                : p == P_SOCKET_INET     ? AF_INET
                                                         : AF_UNIX;
            int type =
                fam == AF_ALG || fam == ((1UL << 32) | AF_ALG) ? SOCK_SEQPACKET : SOCK_STREAM;
            r = syscall(SYS_socket, fam, type, 0);
            if (r >= 0) {
                close((int)r);
                return 0;
            }
            return errno;
        }
        case P_CLONE3:
            return ret_errno(syscall(SYS_clone3, NULL, 0));
        case P_IO_URING:
            return ret_errno(syscall(SYS_io_uring_setup, 0, NULL));
        case P_USERFAULTFD:
            return ret_errno(syscall(SYS_userfaultfd, 0));
        case P_PERSONALITY_QUERY:
            return ret_errno(syscall(SYS_personality, 0xffffffffUL));
        case P_PERSONALITY_BSD:
            return ret_errno(syscall(SYS_personality, 0x0006UL));
        case P_CHROOT:
            return ret_errno(chroot("/nonexistent-swarmd-test"));
        case P_PTRACE_KCMP:
            return ret_errno(syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0));
        case P_NEWER_SYSCALL:
            /* The kernel may know it (EFAULT, EINVAL...) or not (ENOSYS). */
            return ret_errno(syscall(newer_nr, 0, 0, 0, 0, 0));
#ifdef __x86_64__
        case P_I386_GETPID:
            return raw_errno(sys_i386(20, 0, 0, 0));
        case P_I386_KEYCTL:
            return raw_errno(sys_i386(288, 0, -3, 0));
        case P_I386_MOUNT:
            return raw_errno(sys_i386(21, 0, 0, 0));
        case P_I386_UNSHARE:
            return raw_errno(sys_i386(310, CLONE_NEWUTS, 0, 0));
        case P_I386_SOCKET_ALG:
        case P_I386_SOCKET_INET:
            r = sys_i386(359, p == P_I386_SOCKET_ALG ? AF_ALG : AF_INET,
                         p == P_I386_SOCKET_ALG ? SOCK_SEQPACKET : SOCK_STREAM, 0);
            if (r >= 0)
                close((int)r);
            return raw_errno(r);
        case P_I386_CLONE3:
            return raw_errno(sys_i386(435, 0, 0, 0));
        case P_X32_KEYCTL:
            return raw_errno(sys_x32(250, 0, -3, 0));
#else
        case P_I386_GETPID:
        case P_I386_KEYCTL:
        case P_I386_MOUNT:
        case P_I386_UNSHARE:
        case P_I386_SOCKET_ALG:
        case P_I386_SOCKET_INET:
        case P_I386_CLONE3:
        case P_X32_KEYCTL:
            return EIO;
#endif
        case N_PROBES:
            break;
    }
    return EIO;
}

/* Fork; in the child set no_new_privs, load s (NULL: none), run the probes in order, and
 * write each result to the parent. results[i] = 0 or errno; -1 if the child died first. */
static void run_in_child(const rt_seccomp *s, const enum probe *probes, size_t n, int *results)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        int load = 0;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            _exit(2);
        if (s && (load = rt_seccomp_load(s)) < 0)
            _exit(3);
        for (size_t i = 0; i < n; i++) {
            int res = run_probe(probes[i]);
            if (write(p[1], &res, sizeof(res)) != (ssize_t)sizeof(res))
                _exit(4);
        }
        _exit(0);
    }
    close(p[1]);
    for (size_t i = 0; i < n; i++) {
        results[i] = -1;
        int res;
        ssize_t k;
        do
            k = read(p[0], &res, sizeof(res));
        while (k < 0 && errno == EINTR);
        if (k == (ssize_t)sizeof(res))
            results[i] = res;
    }
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("probe child ended with status 0x%x", st);
}

struct expect {
    enum probe p;
    int err; /* 0: allowed and succeeds; -1: allowed (the kernel's own answer) */
};

/* Run the expectations under s and compare; "allowed" probes must answer what they
 * answer with no filter at all. */
static void check(const rt_seccomp *s, const struct expect *ex, size_t n)
{
    enum probe probes[N_PROBES];
    int got[N_PROBES], base[N_PROBES];
    assert_true(n <= N_PROBES);
    size_t nb = 0;
    enum probe bprobes[N_PROBES];
    for (size_t i = 0; i < n; i++) {
        probes[i] = ex[i].p;
        if (ex[i].err == -1)
            bprobes[nb++] = ex[i].p;
    }
    run_in_child(s, probes, n, got);
    if (nb)
        run_in_child(NULL, bprobes, nb, base);
    size_t bi = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        int want = ex[i].err == -1 ? base[bi++] : ex[i].err;
        if (got[i] != want) {
            print_error("%s: got %s (%d), want %s (%d)\n", probe_names[ex[i].p],
                        got[i] ? strerror(got[i]) : "success", got[i],
                        want ? strerror(want) : "success", want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const struct expect default_refusals[] = {
    {P_GETPID, 0},
    {P_FORK, 0},
    {P_UNSHARE_UTS, EPERM},
    {P_CLONE_NEWUTS, EPERM},
    {P_MOUNT, EPERM},
    {P_SETHOSTNAME, EPERM},
    {P_REBOOT, EPERM},
    {P_KEYCTL, EPERM},
    {P_ADD_KEY, EPERM},
    {P_BPF, EPERM},
    {P_KEXEC, EPERM},
    {P_SETNS, EPERM},
    {P_CLOCK_SETTIME, EPERM},
    {P_SOCKET_ALG, EPERM},
    {P_SOCKET_ALG_HIGH, EPERM},
    {P_SOCKET_VSOCK, EPERM},
    {P_SOCKET_INET, 0},
    {P_SOCKET_UNIX, 0},
    {P_CLONE3, ENOSYS},
    {P_IO_URING, EPERM},
    {P_USERFAULTFD, EPERM},
    {P_PERSONALITY_QUERY, 0},
    {P_PERSONALITY_BSD, EPERM},
    {P_CHROOT, -1},
    {P_PTRACE_KCMP, EPERM},
#ifdef __x86_64__
    {P_NEWER_SYSCALL, ENOSYS},
#endif
};

static void test_default_compiles(void **state)
{
    rt_seccomp *s = NULL;
    char err[256] = "";
    double t0 = now_ms();
    int r = rt_seccomp_default(RT_CAPS_DEFAULT, &s, err, sizeof(err));
    double t1 = now_ms();
    if (r < 0)
        fail_msg("rt_seccomp_default: %s", err);
    assert_non_null(s);
    assert_non_null(s->filter);
    assert_true(s->len > 10);
    print_message("default profile: compiled in %.2f ms, %u BPF instructions\n", t1 - t0, s->len);
    double t2 = now_ms();
    for (int i = 0; i < 10; i++) {
        rt_seccomp *x = NULL;
        assert_int_equal(rt_seccomp_default(RT_CAPS_DEFAULT, &x, err, sizeof(err)), 0);
        rt_seccomp_free(x);
    }
    print_message("default profile: %.2f ms per compile (mean of 10)\n", (now_ms() - t2) / 10);
    /* Loading, as a task pays it: in a fresh child after no_new_privs. */
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        double ms = -1;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) {
            double l0 = now_ms();
            if (rt_seccomp_load(s) == 0)
                ms = now_ms() - l0;
        }
        _exit(write(p[1], &ms, sizeof(ms)) == (ssize_t)sizeof(ms) ? 0 : 1);
    }
    close(p[1]);
    double load_ms = -1;
    assert_int_equal(read(p[0], &load_ms, sizeof(load_ms)), (ssize_t)sizeof(load_ms));
    close(p[0]);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_true(load_ms >= 0);
    print_message("default profile: loaded in %.3f ms\n", load_ms);
    rt_seccomp_free(s);
    rt_seccomp_free(NULL);
}

static void test_default_refuses(void **state)
{
    rt_seccomp *s = NULL;
    char err[256] = "";
    if (rt_seccomp_default(RT_CAPS_DEFAULT, &s, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    check(s, default_refusals, SW_ARRAY_SIZE(default_refusals));
    rt_seccomp_free(s);
}

/* With CAP_SYS_ADMIN (and the other gates) the filter steps aside: the kernel answers as
 * it would with no filter. */
static void test_default_sys_admin(void **state)
{
    rt_seccomp *s = NULL;
    char err[256] = "";
    uint64_t caps = RT_CAPS_DEFAULT | CAPB(CAP_SYS_ADMIN) | CAPB(CAP_SYS_BOOT) |
                    CAPB(CAP_SYS_TIME) | CAPB(CAP_SYS_PTRACE);
    if (rt_seccomp_default(caps, &s, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    static const struct expect ex[] = {
        {P_GETPID, 0},         {P_FORK, 0},         {P_UNSHARE_UTS, -1}, {P_CLONE_NEWUTS, -1},
        {P_MOUNT, -1},         {P_REBOOT, -1},      {P_BPF, -1},         {P_SETNS, -1},
        {P_CLOCK_SETTIME, -1}, {P_PTRACE_KCMP, -1}, {P_KEYCTL, EPERM},   {P_KEXEC, EPERM},
        {P_SOCKET_ALG, EPERM}, {P_SOCKET_INET, 0},
    };
    check(s, ex, SW_ARRAY_SIZE(ex));
    rt_seccomp_free(s);
}

/* Without CAP_SYS_CHROOT, chroot is refused by the filter too. */
static void test_default_no_chroot(void **state)
{
    rt_seccomp *s = NULL;
    char err[256] = "";
    if (rt_seccomp_default(RT_CAPS_DEFAULT & ~CAPB(CAP_SYS_CHROOT), &s, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    static const struct expect ex[] = {{P_CHROOT, EPERM}, {P_GETPID, 0}};
    check(s, ex, SW_ARRAY_SIZE(ex));
    rt_seccomp_free(s);
}

/* ------------------------------------------------------------------ JSON profiles */

/* The profiles sit beside this source file; __FILE__ is relative to the build root, which
 * is three levels above this test binary. */
static void profile_path(const char *name, char *buf, size_t size)
{
    char dir[4096];
    const char *src = __FILE__;
    const char *slash = strrchr(src, '/');
    int n;
    if (src[0] == '/') {
        n = snprintf(buf, size, "%.*s/profiles/%s", (int)(slash - src), src, name);
    } else {
        ssize_t k = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
        assert_true(k > 0);
        dir[k] = '\0';
        *strrchr(dir, '/') = '\0';
        n = snprintf(buf, size, "%s/../../../%.*s/profiles/%s", dir, slash ? (int)(slash - src) : 1,
                     slash ? src : ".", name);
    }
    assert_true(n > 0 && (size_t)n < size);
}

static int compile_profile(const char *name, uint64_t caps, rt_seccomp **ret, char *err,
                           size_t err_size)
{
    char path[4096];
    profile_path(name, path, sizeof(path));
    _cleanup_free_ char *json = NULL;
    size_t len;
    int r = sw_read_file(path, 2 * 1024 * 1024, &json, &len);
    if (r < 0)
        fail_msg("read %s: %s", path, strerror(-r));
    return rt_seccomp_from_json(json, len, caps, ret, err, err_size);
}

static void test_json_allowlist(void **state)
{
    rt_seccomp *s = NULL;
    char err[256] = "";
    double t0 = now_ms();
    if (compile_profile("allowlist.json", RT_CAPS_DEFAULT, &s, err, sizeof(err)) < 0)
        fail_msg("allowlist.json: %s", err);
    print_message("allowlist.json: compiled in %.2f ms, %u BPF instructions\n", now_ms() - t0,
                  s->len);
    check(s, default_refusals, SW_ARRAY_SIZE(default_refusals));
    rt_seccomp_free(s);

    /* includes/excludes caps follow the task's capabilities. */
    uint64_t caps = RT_CAPS_DEFAULT | CAPB(CAP_SYS_ADMIN) | CAPB(CAP_SYS_BOOT) |
                    CAPB(CAP_SYS_TIME) | CAPB(CAP_SYS_PTRACE) | CAPB(CAP_BPF);
    if (compile_profile("allowlist.json", caps, &s, err, sizeof(err)) < 0)
        fail_msg("allowlist.json: %s", err);
    static const struct expect ex[] = {
        {P_GETPID, 0},         {P_FORK, 0},         {P_UNSHARE_UTS, -1}, {P_CLONE_NEWUTS, -1},
        {P_MOUNT, -1},         {P_REBOOT, -1},      {P_BPF, -1},         {P_SETNS, -1},
        {P_CLOCK_SETTIME, -1}, {P_PTRACE_KCMP, -1}, {P_KEYCTL, EPERM},   {P_KEXEC, EPERM},
        {P_SOCKET_ALG, EPERM}, {P_SOCKET_INET, 0},  {P_CLONE3, -1},
    };
    check(s, ex, SW_ARRAY_SIZE(ex));
    rt_seccomp_free(s);
}

static void test_json_denylist(void **state)
{
    rt_seccomp *s = NULL;
    char err[256] = "";
    if (compile_profile("denylist.json", RT_CAPS_DEFAULT, &s, err, sizeof(err)) < 0)
        fail_msg("denylist.json: %s", err);
    static const struct expect ex[] = {
        {P_GETPID, 0},           {P_FORK, 0},
        {P_UNSHARE_UTS, EPERM},  {P_MOUNT, EPERM},
        {P_SETHOSTNAME, EPERM},  {P_REBOOT, EPERM},
        {P_KEYCTL, EPERM},       {P_ADD_KEY, EPERM},
        {P_BPF, EPERM},          {P_KEXEC, EPERM},
        {P_SETNS, EPERM},        {P_CLOCK_SETTIME, EPERM},
        {P_SOCKET_ALG, EPERM},   {P_SOCKET_INET, 0},
        {P_SOCKET_UNIX, 0},      {P_CLONE3, ENOSYS},
        {P_PERSONALITY_BSD, -1}, {P_IO_URING, -1},
#ifdef __x86_64__
        {P_USERFAULTFD, EINVAL},
#endif
    };
    check(s, ex, SW_ARRAY_SIZE(ex));
    rt_seccomp_free(s);

    if (compile_profile("denylist.json", RT_CAPS_DEFAULT | CAPB(CAP_SYS_ADMIN), &s, err,
                        sizeof(err)) < 0)
        fail_msg("denylist.json: %s", err);
    static const struct expect ex2[] = {{P_UNSHARE_UTS, -1}, {P_MOUNT, EPERM}, {P_GETPID, 0}};
    check(s, ex2, SW_ARRAY_SIZE(ex2));
    rt_seccomp_free(s);
}

static void test_json_broken(void **state)
{
    static const struct {
        const char *file, *want;
    } cases[] = {
        {"bad-action.json", "syscalls[1].action: unknown action SCMP_ACT_FOO"},
        {"bad-op.json", "syscalls[0].args[0].op: unknown operator SCMP_CMP_FOO"},
        {"bad-arch.json", "architectures[1]: unknown architecture SCMP_ARCH_FOO"},
        {"bad-type.json", "syscalls[0].names: expected an array, got string"},
        {"bad-syntax.json", "not valid JSON: line 2, column "},
        {"bad-field.json", "syscalls[0].nmes: unknown field"},
        {"bad-errno.json", "syscalls[0].errnoRet: expected an integer from 0 to 4095"},
        {"bad-index.json", "syscalls[0].args[0].index: expected an integer from 0 to 5"},
        {"bad-cap.json", "syscalls[0].includes.caps[0]: unknown capability CAP_FOO"},
        {"bad-kernel.json", "syscalls[0].includes.minKernel: bad kernel version \"four\""},
        {"bad-default.json", "defaultAction: missing"},
        {"bad-notify.json", "syscalls[0].action: SCMP_ACT_NOTIFY is not supported"},
        {"bad-value.json",
         "syscalls[0].args[0].value: expected an integer from 0 to 18446744073709551615"},
        {"bad-names.json", "syscalls[0]: no names"},
        {"bad-utf8.json", "invalid UTF-8"},
    };
    for (size_t i = 0; i < SW_ARRAY_SIZE(cases); i++) {
        rt_seccomp *s = (rt_seccomp *)0x1;
        char err[256] = "";
        int r = compile_profile(cases[i].file, RT_CAPS_DEFAULT, &s, err, sizeof(err));
        if (r != -EINVAL || !strstr(err, cases[i].want))
            fail_msg("%s: got %d \"%s\", want -EINVAL \"%s\"", cases[i].file, r, err,
                     cases[i].want);
        assert_ptr_equal(s, (rt_seccomp *)0x1);
        assert_null(strchr(err, '\n'));
    }
}

static void test_json_inline(void **state)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"[]", "profile: expected an object, got array"},
        {"", "not valid JSON: line 1, column 1: unexpected end of input"},
        {"{\"defaultAction\": 1}", "defaultAction: expected a string, got number"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 1.5}",
         "defaultErrnoRet: expected an integer from 0 to 4095"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": [\"SCMP_ARCH_X86_64\"],"
         " \"archMap\": [{\"architecture\": \"SCMP_ARCH_X86_64\"}]}",
         "give either architectures or archMap"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": {}}",
         "syscalls: expected an array, got object"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\", 7],"
         " \"action\": \"SCMP_ACT_ALLOW\"}]}",
         "syscalls[0].names[1]: expected a string, got number"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"],"
         " \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}",
         "syscalls[0].args[0].index: missing"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": [\"read\"],"
         " \"action\": \"SCMP_ACT_ALLOW\", \"includes\": {\"caps\": [\"ALL\"]}}]}",
         "syscalls[0].includes.caps[0]: unknown capability ALL"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"listenerPath\": \"/run/agent.sock\"}",
         "listenerPath: seccomp agents are not supported"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"flags\": [\"SECCOMP_FILTER_FLAG_NOPE\"]}",
         "flags[0]: unknown flag SECCOMP_FILTER_FLAG_NOPE"},
        {"{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"bogus\": 1}", "bogus: unknown field"},
    };
    for (size_t i = 0; i < SW_ARRAY_SIZE(cases); i++) {
        rt_seccomp *s = NULL;
        char err[256] = "";
        int r = rt_seccomp_from_json(cases[i].json, strlen(cases[i].json), RT_CAPS_DEFAULT, &s, err,
                                     sizeof(err));
        if (r != -EINVAL || !strstr(err, cases[i].want))
            fail_msg("case %zu: got %d \"%s\", want -EINVAL \"%s\"", i, r, err, cases[i].want);
    }
    /* Oversize input is refused before parsing. */
    size_t n = 1024 * 1024 + 1;
    _cleanup_free_ char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    rt_seccomp *s = NULL;
    char err[256] = "";
    assert_int_equal(rt_seccomp_from_json(big, n, RT_CAPS_DEFAULT, &s, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "more than the 1048576 allowed"));
    /* A minimal valid profile: everything allowed but one call. */
    static const char ok[] =
        "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":"
        "[\"mount\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":13}]}";
    assert_int_equal(rt_seccomp_from_json(ok, strlen(ok), 0, &s, err, sizeof(err)), 0);
    static const struct expect ex[] = {{P_MOUNT, EACCES}, {P_GETPID, 0}, {P_KEYCTL, -1}};
    check(s, ex, SW_ARRAY_SIZE(ex));
    rt_seccomp_free(s);
}

/* 32-bit binaries in a task meet the same rules through the i386 ABI, and the x32 ABI
 * does too (where the kernel lacks x32, the allowed calls answer ENOSYS). */
static bool have_ia32(void)
{
#ifdef __x86_64__
    pid_t pid = fork();
    if (pid == 0)
        _exit(sys_i386(20, 0, 0, 0) == getpid() ? 0 : 1);
    int st;
    return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
#else
    return false;
#endif
}

static void test_default_compat_abis(void **state)
{
    if (!have_ia32()) {
        print_message("no i386 ABI on this kernel: skipped\n");
        skip();
    }
    rt_seccomp *s = NULL;
    char err[256] = "";
    if (rt_seccomp_default(RT_CAPS_DEFAULT, &s, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    static const struct expect ex[] = {
        {P_I386_GETPID, 0},      {P_I386_KEYCTL, EPERM},     {P_I386_MOUNT, EPERM},
        {P_I386_UNSHARE, EPERM}, {P_I386_SOCKET_ALG, EPERM}, {P_I386_SOCKET_INET, -1},
        {P_I386_CLONE3, ENOSYS}, {P_X32_KEYCTL, EPERM},      {P_GETPID, 0},
    };
    check(s, ex, SW_ARRAY_SIZE(ex));
    rt_seccomp_free(s);
}

static void test_load_rejects_empty(void **state)
{
    assert_int_equal(rt_seccomp_load(NULL), -EINVAL);
    rt_seccomp empty = {NULL, 0};
    assert_int_equal(rt_seccomp_load(&empty), -EINVAL);
}

int main(void)
{
    for (int nr = 0; nr < 1024; nr++) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
        if (name)
            newer_nr = nr + 1;
        free(name);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_compiles),    cmocka_unit_test(test_default_refuses),
        cmocka_unit_test(test_default_sys_admin),   cmocka_unit_test(test_default_no_chroot),
        cmocka_unit_test(test_default_compat_abis), cmocka_unit_test(test_load_rejects_empty),
        cmocka_unit_test(test_json_allowlist),      cmocka_unit_test(test_json_denylist),
        cmocka_unit_test(test_json_broken),         cmocka_unit_test(test_json_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
