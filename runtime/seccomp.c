/* runtime/seccomp.c: the default seccomp profile (Docker's semantics, our own allowlist
 * written from the kernel syscall table), export to BPF, and loading it in a task. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/internal.h"

#define CAP_BIT(c) (1ULL << (c))
/* A 64-bit comparison on argument 0 with every field named (libseccomp's SCMP_A0_64 leaves
 * datum_b out when it is not needed, which clang's -Wmissing-field-initializers flags). */
#define ARG0(cmp, a, b) \
    ((struct scmp_arg_cmp){.arg = 0, .op = (cmp), .datum_a = (a), .datum_b = (b)})
/* Linux capability numbers (linux/capability.h), kept here so the tables read plainly. */
enum {
    C_DAC_READ_SEARCH = 2,
    C_SYS_MODULE = 16,
    C_SYS_RAWIO = 17,
    C_SYS_CHROOT = 18,
    C_SYS_PTRACE = 19,
    C_SYS_PACCT = 20,
    C_SYS_ADMIN = 21,
    C_SYS_BOOT = 22,
    C_SYS_NICE = 23,
    C_SYS_TIME = 25,
    C_SYS_TTY_CONFIG = 26,
    C_SYSLOG = 34,
    C_PERFMON = 38,
    C_BPF = 39,
};

/* Ordinary syscalls every task may make: the kernel refuses what needs privilege itself.
 * Grouped by what they do; 32-bit (i386) and time64 spellings sit beside the native ones.
 * Names libseccomp does not know on an arch are skipped there. */
static const char *const allow_always[] = {
    /* process life */
    "exit",
    "exit_group",
    "execve",
    "execveat",
    "fork",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
    "restart_syscall",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "getpgrp",
    "setpgid",
    "getsid",
    "setsid",
    "prctl",
    "arch_prctl",
    "seccomp",
    "capget",
    "capset",
    "uname",
    "sysinfo",
    "getcpu",
    "set_thread_area",
    "get_thread_area",
    "modify_ldt",
    "membarrier",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "pidfd_open",
    "pidfd_send_signal",
    "process_mrelease",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    /* credentials */
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getresuid",
    "getresgid",
    "getgroups",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "setfsuid",
    "setfsgid",
    "getuid32",
    "geteuid32",
    "getgid32",
    "getegid32",
    "getresuid32",
    "getresgid32",
    "getgroups32",
    "setuid32",
    "setgid32",
    "setreuid32",
    "setregid32",
    "setresuid32",
    "setresgid32",
    "setgroups32",
    "setfsuid32",
    "setfsgid32",
    /* limits, priorities, scheduling (policy changes are checked by the kernel) */
    "getrlimit",
    "setrlimit",
    "ugetrlimit",
    "prlimit64",
    "getrusage",
    "getpriority",
    "setpriority",
    "ioprio_get",
    "ioprio_set",
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getattr",
    "sched_setattr",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    /* signals */
    "kill",
    "tkill",
    "tgkill",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "sigaction",
    "sigpending",
    "sigsuspend",
    "signal",
    "pause",
    "alarm",
    /* time (reading; adjtimex/clock_adjtime only read without CAP_SYS_TIME) */
    "time",
    "gettimeofday",
    "clock_gettime",
    "clock_gettime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "nanosleep",
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "times",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    /* memory */
    "brk",
    "mmap",
    "mmap2",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "mincore",
    "msync",
    "mlock",
    "mlock2",
    "mlockall",
    "munlock",
    "munlockall",
    "remap_file_pages",
    "memfd_create",
    "memfd_secret",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "map_shadow_stack",
    /* futexes and waiting */
    "futex",
    "futex_time64",
    "futex_waitv",
    "futex_wait",
    "futex_wake",
    "futex_requeue",
    "poll",
    "ppoll",
    "ppoll_time64",
    "select",
    "_newselect",
    "pselect6",
    "pselect6_time64",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_wait",
    "epoll_wait_old",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    /* file descriptors and I/O */
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "lseek",
    "_llseek",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "pipe",
    "pipe2",
    "fcntl",
    "fcntl64",
    "ioctl",
    "flock",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "sync_file_range2",
    "fadvise64",
    "fadvise64_64",
    "readahead",
    "fallocate",
    "sendfile",
    "sendfile64",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "cachestat",
    "io_setup",
    "io_destroy",
    "io_submit",
    "io_cancel",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    /* paths, metadata, directories */
    "open",
    "openat",
    "openat2",
    "creat",
    "access",
    "faccessat",
    "faccessat2",
    "stat",
    "lstat",
    "fstat",
    "newfstatat",
    "stat64",
    "lstat64",
    "fstat64",
    "fstatat64",
    "statx",
    "statfs",
    "fstatfs",
    "statfs64",
    "fstatfs64",
    "readlink",
    "readlinkat",
    "getcwd",
    "chdir",
    "fchdir",
    "mkdir",
    "mkdirat",
    "rmdir",
    "mknod",
    "mknodat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "truncate",
    "ftruncate",
    "truncate64",
    "ftruncate64",
    "getdents",
    "getdents64",
    "umask",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "chown32",
    "fchown32",
    "lchown32",
    "utime",
    "utimes",
    "utimensat",
    "utimensat_time64",
    "futimesat",
    "name_to_handle_at",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "fanotify_mark",
    /* extended attributes */
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    /* sockets (socket itself: see below) */
    "socketpair",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "shutdown",
    "send",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "recv",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "recvmmsg_time64",
    "socketcall",
    /* System V and POSIX IPC (private to the task's ipc namespace) */
    "ipc",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "semctl",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_notify",
    "mq_getsetattr",
    /* randomness */
    "getrandom",
};

/* Allowed only when the task holds the capability (any one listed bit). */
struct gated {
    uint64_t caps;
    const char *names[12];
};

static const struct gated allow_gated[] = {
    {CAP_BIT(C_SYS_ADMIN),
     {"mount", "umount", "umount2", "unshare", "setns", "sethostname", "setdomainname",
      "fanotify_init", "lookup_dcookie", "quotactl", "quotactl_fd", "clone3"}},
    {CAP_BIT(C_SYS_ADMIN),
     {"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
      "pivot_root", "syslog"}},
    {CAP_BIT(C_SYS_ADMIN) | CAP_BIT(C_BPF), {"bpf"}},
    {CAP_BIT(C_SYS_ADMIN) | CAP_BIT(C_PERFMON), {"perf_event_open"}},
    {CAP_BIT(C_SYSLOG), {"syslog"}},
    {CAP_BIT(C_DAC_READ_SEARCH), {"open_by_handle_at"}},
    {CAP_BIT(C_SYS_BOOT), {"reboot"}},
    {CAP_BIT(C_SYS_CHROOT), {"chroot"}},
    {CAP_BIT(C_SYS_MODULE), {"init_module", "finit_module", "delete_module"}},
    {CAP_BIT(C_SYS_PTRACE), {"kcmp", "pidfd_getfd", "process_madvise"}},
    {CAP_BIT(C_SYS_PACCT), {"acct"}},
    {CAP_BIT(C_SYS_RAWIO), {"iopl", "ioperm"}},
    {CAP_BIT(C_SYS_TIME), {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
    {CAP_BIT(C_SYS_TTY_CONFIG), {"vhangup"}},
    {CAP_BIT(C_SYS_NICE),
     {"get_mempolicy", "set_mempolicy", "mbind", "set_mempolicy_home_node", "migrate_pages",
      "move_pages"}},
};

/* The namespace flags that clone may not carry without CAP_SYS_ADMIN. */
#define NS_CLONE_FLAGS                                                                         \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
     CLONE_NEWCGROUP)

/* personality(2) values that change nothing dangerous: Linux, Linux32, UNAME26 and the
 * query value. */
static const uint64_t personality_ok[] = {0x0, 0x0008, 0x20000, 0x20008, 0xffffffff};

static int set_err(char *errmsg, size_t errmsg_size, int r, const char *what)
{
    if (errmsg && errmsg_size)
        snprintf(errmsg, errmsg_size, "seccomp: %s: %s", what, strerror(-r));
    return r;
}

static int add_native_arches(scmp_filter_ctx ctx, char *errmsg, size_t errmsg_size)
{
    /* Tasks may run 32-bit and x32 binaries on x86_64, as under Docker. Every other
     * arch keeps only its native ABI; a foreign ABI answers the bad-arch action. */
    if (seccomp_arch_native() != SCMP_ARCH_X86_64)
        return 0;
    static const uint32_t subs[] = {SCMP_ARCH_X86, SCMP_ARCH_X32};
    for (size_t i = 0; i < SW_ARRAY_SIZE(subs); i++) {
        int r = seccomp_arch_add(ctx, subs[i]);
        if (r < 0 && r != -EEXIST)
            return set_err(errmsg, errmsg_size, r, "add the x86/x32 arches");
    }
    return 0;
}

static int add_names(scmp_filter_ctx ctx, uint32_t action, const char *const *names, size_t n,
                     char *errmsg, size_t errmsg_size)
{
    for (size_t i = 0; i < n && names[i]; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to libseccomp: skipped, as Docker does */
        int r = seccomp_rule_add(ctx, action, nr, 0);
        /* -EEXIST: already there with this action; -EDOM etc.: not on this arch. */
        if (r < 0 && r != -EEXIST && r != -EDOM && r != -EOPNOTSUPP) {
            char what[96];
            snprintf(what, sizeof(what), "add a rule for %s", names[i]);
            return set_err(errmsg, errmsg_size, r, what);
        }
    }
    return 0;
}

/* The highest syscall number libseccomp knows on arch. */
static unsigned highest_known(uint32_t arch)
{
    unsigned max = 0;
    for (unsigned nr = 0; nr < 1024; nr++) {
        char *name = seccomp_syscall_resolve_num_arch(arch, (int)nr);
        if (name)
            max = nr;
        free(name);
    }
    return max;
}

#define PROLOGUE_LEN 9

/* Syscalls newer than libseccomp's table answer ENOSYS, not the default EPERM, so that
 * libc falls back to the older call (as runc does). x86_64 and i386 only; the program
 * that follows reloads everything it needs. */
static void write_prologue(struct sock_filter *p)
{
    static unsigned cached64, cached32; /* the same answer from every thread */
    unsigned max64 = __atomic_load_n(&cached64, __ATOMIC_RELAXED);
    unsigned max32 = __atomic_load_n(&cached32, __ATOMIC_RELAXED);
    if (!max64 || !max32) {
        max64 = highest_known(SCMP_ARCH_X86_64);
        max32 = highest_known(SCMP_ARCH_X86);
        __atomic_store_n(&cached64, max64, __ATOMIC_RELAXED);
        __atomic_store_n(&cached32, max32, __ATOMIC_RELAXED);
    }
    const unsigned enosys = 8, main_start = 9;
    struct sock_filter pro[PROLOGUE_LEN] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 5 - 2),
        /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* 3: x32 calls carry bit 30 and are left to the program */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, main_start - 4, 0),
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, max64, enosys - 5, main_start - 5),
        /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, main_start - 6),
        /* 6 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, max32, enosys - 8, main_start - 8),
        /* 8 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    };
    memcpy(p, pro, sizeof(pro));
}

/* Export the filter as BPF through a memfd into a malloc'd program; with enosys_new (on
 * x86_64), behind the prologue above. */
int rt__seccomp_export(scmp_filter_ctx ctx, bool enosys_new, rt_seccomp **ret, char *errmsg,
                       size_t errmsg_size)
{
    if (seccomp_arch_native() != SCMP_ARCH_X86_64)
        enosys_new = false;
    size_t pro = enosys_new ? PROLOGUE_LEN : 0;
    _cleanup_close_ int fd = memfd_create("swarmd-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return set_err(errmsg, errmsg_size, -errno, "memfd_create");
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0)
        return set_err(errmsg, errmsg_size, r, "export the filter");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return set_err(errmsg, errmsg_size, -errno, "fstat the exported filter");
    size_t n = (size_t)st.st_size;
    if (n == 0 || n % sizeof(struct sock_filter) != 0 ||
        n / sizeof(struct sock_filter) + pro > BPF_MAXINSNS)
        return set_err(errmsg, errmsg_size, -E2BIG, "the exported filter has a bad size");
    _cleanup_free_ struct sock_filter *prog = malloc(n + pro * sizeof(struct sock_filter));
    if (!prog)
        return set_err(errmsg, errmsg_size, -ENOMEM, "allocate the filter");
    if (pro)
        write_prologue(prog);
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)(prog + pro) + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return set_err(errmsg, errmsg_size, k < 0 ? -errno : -EIO, "read the exported filter");
        got += (size_t)k;
    }
    rt_seccomp *s = calloc(1, sizeof(*s));
    if (!s)
        return set_err(errmsg, errmsg_size, -ENOMEM, "allocate the filter");
    s->filter = TAKE_PTR(prog);
    s->len = (unsigned short)(n / sizeof(struct sock_filter) + pro);
    *ret = s;
    return 0;
}

static void ctx_releasep(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}

/* socket(2): every family but AF_ALG (38) and AF_VSOCK (40). The family is an int, but
 * the kernel ignores the upper half of the register, so every rule compares all 64 bits
 * against values whose upper half is zero: a value with upper bits set is refused. */
static int add_socket_rules(scmp_filter_ctx ctx)
{
    int nr = seccomp_syscall_resolve_name("socket");
    if (nr == __NR_SCMP_ERROR)
        return 0;
    _Static_assert(AF_ALG == 38 && AF_VSOCK == 40, "address family numbers");
    const struct scmp_arg_cmp cmps[] = {
        ARG0(SCMP_CMP_LT, AF_ALG, 0),                /* 0..37 */
        ARG0(SCMP_CMP_EQ, AF_ALG + 1, 0),            /* 39 */
        ARG0(SCMP_CMP_EQ, 41, 0),                    /* 41 */
        ARG0(SCMP_CMP_EQ, 42, 0),                    /* 42 */
        ARG0(SCMP_CMP_EQ, 43, 0),                    /* 43 */
        ARG0(SCMP_CMP_MASKED_EQ, ~(uint64_t)3, 44),  /* 44..47 */
        ARG0(SCMP_CMP_MASKED_EQ, ~(uint64_t)15, 48), /* 48..63 */
    };
    for (size_t i = 0; i < SW_ARRAY_SIZE(cmps); i++) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, cmps[i]);
        if (r < 0 && r != -EEXIST)
            return r;
    }
    return 0;
}

int rt_seccomp_default(uint64_t caps, rt_seccomp **ret, char *errmsg, size_t errmsg_size)
{
    int r;
    uint32_t native = seccomp_arch_native();
    if (native == 0)
        return set_err(errmsg, errmsg_size, -EOPNOTSUPP, "this architecture is not supported");

    _cleanup_(ctx_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return set_err(errmsg, errmsg_size, -ENOMEM, "seccomp_init");
    r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(EPERM));
    if (r < 0)
        return set_err(errmsg, errmsg_size, r, "set the bad-arch action");
    /* Name-sorted binary search instead of a linear chain: loading is what is paid per
     * syscall; the cost at compile time is small. */
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    r = add_native_arches(ctx, errmsg, errmsg_size);
    if (r < 0)
        return r;

    r = add_names(ctx, SCMP_ACT_ALLOW, allow_always, SW_ARRAY_SIZE(allow_always), errmsg,
                  errmsg_size);
    if (r < 0)
        return r;
    for (size_t g = 0; g < SW_ARRAY_SIZE(allow_gated); g++) {
        if (!(caps & allow_gated[g].caps))
            continue;
        r = add_names(ctx, SCMP_ACT_ALLOW, allow_gated[g].names,
                      SW_ARRAY_SIZE(allow_gated[g].names), errmsg, errmsg_size);
        if (r < 0)
            return r;
    }

    bool sys_admin = caps & CAP_BIT(C_SYS_ADMIN);
    /* clone: without CAP_SYS_ADMIN, only without namespace flags. The flags are the first
     * argument on every arch but s390, where they are the second. */
    unsigned flags_arg = (native == SCMP_ARCH_S390 || native == SCMP_ARCH_S390X) ? 1 : 0;
    if (sys_admin)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 0);
    else
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                             SCMP_CMP64(flags_arg, SCMP_CMP_MASKED_EQ, NS_CLONE_FLAGS, 0));
    if (r < 0)
        return set_err(errmsg, errmsg_size, r, "add the clone rule");
    /* clone3 passes its flags in memory, out of a filter's sight: ENOSYS makes libc fall
     * back to clone, whose flags the rule above checks. */
    int clone3_nr = seccomp_syscall_resolve_name("clone3");
    if (!sys_admin && clone3_nr != __NR_SCMP_ERROR) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3_nr, 0);
        if (r < 0 && r != -EDOM)
            return set_err(errmsg, errmsg_size, r, "add the clone3 rule");
    }

    for (size_t i = 0; i < SW_ARRAY_SIZE(personality_ok); i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                             ARG0(SCMP_CMP_EQ, personality_ok[i], 0));
        if (r < 0 && r != -EEXIST)
            return set_err(errmsg, errmsg_size, r, "add the personality rules");
    }

    r = add_socket_rules(ctx);
    if (r < 0)
        return set_err(errmsg, errmsg_size, r, "add the socket rules");

    /* keyctl, add_key, request_key, io_uring_*, kexec_*, userfaultfd, bpf and the rest not
     * named above answer the default action, EPERM. */
    return rt__seccomp_export(ctx, true, ret, errmsg, errmsg_size);
}

void rt_seccomp_free(rt_seccomp *s)
{
    if (!s)
        return;
    free(s->filter);
    free(s);
}

/* Async-signal-safe: no allocation, no locks, no libseccomp; one raw syscall. */
int rt_seccomp_load(const rt_seccomp *s)
{
    if (!s || !s->filter || s->len == 0)
        return -EINVAL;
    struct sock_fprog prog = {.len = s->len, .filter = s->filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return -errno;
    return 0;
}
