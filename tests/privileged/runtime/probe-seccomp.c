/* The in-task probe's seccomp checks: named system calls and the errno each answers
 * under the default profile, with CAP_SYS_ADMIN, and unconfined. */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "probe.h"

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void seccomp_mode(const char *want)
{
    const char *v = status_field("Seccomp");
    check(strcmp(v, want) == 0, "Seccomp", "%s (expected %s)", v, want);
}

/* Named system calls whose errno the seccomp checks compare ("keyctl=EPERM"). Arguments
 * are invalid or harmless where the call is let through: the filter answers first. */
static int c_unshare(void)
{
    return SYSERR(SYS_unshare, CLONE_NEWUTS);
}
static int c_clone_newns(void)
{
    long pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        waitpid((pid_t)pid, NULL, 0);
        return 0;
    }
    return errno;
}
static int c_mount(void)
{
    return SYSERR(SYS_mount, "none", "/tmp", "tmpfs", 0, "size=8k");
}
static int c_umount2(void)
{
    return SYSERR(SYS_umount2, "/tmp", 0);
}
static int c_sethostname(void)
{
    char h[256] = "";
    gethostname(h, sizeof(h) - 1); /* set it to what it is */
    return SYSERR(SYS_sethostname, h, strlen(h));
}
static int c_reboot(void)
{
    return SYSERR(SYS_reboot, 0, 0, 0, NULL); /* bad magic: EINVAL when allowed */
}
static int c_bpf(void)
{
    return SYSERR(SYS_bpf, 0, NULL, 0);
}
static int c_setns(void)
{
    int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
    int e = SYSERR(SYS_setns, fd, CLONE_NEWUTS);
    if (fd >= 0)
        close(fd);
    return e;
}
static int c_clock_settime(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 2000000000L}; /* invalid: EINVAL if allowed */
    return SYSERR(SYS_clock_settime, CLOCK_REALTIME, &ts);
}
static int c_perf_event_open(void)
{
    return SYSERR(SYS_perf_event_open, NULL, 0, -1, -1, 0);
}
static int c_keyctl(void)
{
    return SYSERR(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
}
static int c_add_key(void)
{
    return SYSERR(SYS_add_key, "user", "probe", "x", 1, -3);
}
static int c_request_key(void)
{
    return SYSERR(SYS_request_key, "user", "probe", NULL, 0);
}
static int c_io_uring_setup(void)
{
    return SYSERR(SYS_io_uring_setup, 1, NULL);
}
static int c_kexec_load(void)
{
    return SYSERR(SYS_kexec_load, 0, 0, NULL, 0);
}
static int c_clone3(void)
{
    return SYSERR(SYS_clone3, NULL, 0);
}
static int try_socket(int family, int type)
{
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}
static int c_af_alg(void)
{
    return try_socket(AF_ALG, SOCK_SEQPACKET);
}
static int c_af_vsock(void)
{
    return try_socket(AF_VSOCK, SOCK_STREAM);
}
static int c_af_inet(void)
{
    return try_socket(AF_INET, SOCK_STREAM);
}

static const struct call {
    const char *name;
    int (*fn)(void);
} calls[] = {
    {"unshare", c_unshare},
    {"clone_newns", c_clone_newns},
    {"mount", c_mount},
    {"umount2", c_umount2},
    {"sethostname", c_sethostname},
    {"reboot", c_reboot},
    {"bpf", c_bpf},
    {"setns", c_setns},
    {"clock_settime", c_clock_settime},
    {"perf_event_open", c_perf_event_open},
    {"keyctl", c_keyctl},
    {"add_key", c_add_key},
    {"request_key", c_request_key},
    {"io_uring_setup", c_io_uring_setup},
    {"kexec_load", c_kexec_load},
    {"clone3", c_clone3},
    {"af_alg", c_af_alg},
    {"af_vsock", c_af_vsock},
    {"af_inet", c_af_inet},
};

/* "EPERM" -> 1; "0" or "success" -> 0; -1 if unknown. */
static int errno_of(const char *name)
{
    if (!strcmp(name, "0") || !strcmp(name, "success"))
        return 0;
    for (int e = 1; e < 200; e++) {
        const char *n = strerrorname_np(e);
        if (n && !strcmp(n, name))
            return e;
    }
    return -1;
}

/* Each spec NAME=ERRNO: the call answers ERRNO (0/success: it was let through). */
void expect_calls(int n, const char *const *specs)
{
    for (int i = 0; i < n; i++) {
        char name[64];
        const char *eq = strchr(specs[i], '=');
        int want = eq ? errno_of(eq + 1) : -1;
        snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - specs[i]) : 0, specs[i]);
        const struct call *c = NULL;
        for (size_t j = 0; j < sizeof(calls) / sizeof(calls[0]); j++)
            if (!strcmp(calls[j].name, name))
                c = &calls[j];
        if (!c || want < 0) {
            fail("sys", "bad spec %s", specs[i]);
            continue;
        }
        expect_errno(c->name, c->fn(), want);
    }
}

static void fork_works(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int st = 0;
    if (pid < 0) {
        fail("fork", "%m");
        return;
    }
    waitpid(pid, &st, 0);
    check(WIFEXITED(st) && WEXITSTATUS(st) == 7, "fork", "child status %#x", st);
}

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Refused whatever the capabilities: keyrings, io_uring, kexec, AF_ALG/AF_VSOCK. */
static const char *const always_refused[] = {
    "keyctl=EPERM",     "add_key=EPERM", "request_key=EPERM", "io_uring_setup=EPERM",
    "kexec_load=EPERM", "af_alg=EPERM",  "af_vsock=EPERM",    "af_inet=0",
};

/* The default profile with the default capabilities (no SYS_ADMIN, SYS_BOOT, SYS_TIME). */
void cmd_seccomp(void)
{
    static const char *const specs[] = {
        "unshare=EPERM",       "clone_newns=EPERM",     "mount=EPERM",   "umount2=EPERM",
        "sethostname=EPERM",   "reboot=EPERM",          "bpf=EPERM",     "setns=EPERM",
        "clock_settime=EPERM", "perf_event_open=EPERM", "clone3=ENOSYS",
    };
    seccomp_mode("2");
    const char *f = status_field("Seccomp_filters");
    check(strcmp(f, "1") == 0, "Seccomp_filters", "%s", f);
    expect_calls(N_OF(specs), specs);
    expect_calls(N_OF(always_refused), always_refused);
    fork_works();
}

/* The default profile with CAP_SYS_ADMIN added: the calls it gates are let through
 * (clone3 too, as in Docker's profile), the rest is still refused. */
void cmd_seccomp_admin(void)
{
    static const char *const specs[] = {
        "sethostname=0", "unshare=0", "mount=0", "umount2=0", "setns=0", "clone3=EINVAL",
    };
    seccomp_mode("2");
    expect_calls(N_OF(specs), specs);
    expect_calls(N_OF(always_refused), always_refused);
    fork_works();
}

/* No filter at all (--privileged, --seccomp unconfined). */
void cmd_unconfined(void)
{
    seccomp_mode("0");
    static const char *const specs[] = {"clone3=EINVAL"};
    expect_calls(N_OF(specs), specs);
    int e = c_keyctl();
    check(e != EPERM, "keyctl", "%s (not refused)", errname(e));
}
